/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What a page handed to hak-client must hold.  Two ways to tell our bytes
 * from anyone else's: words tagged with 16 bits of ours in the top bits
 * (stale, guard, hold, holder, fork, ...), or one fill byte per process
 * (churn, threads, restart: --pattern).
 */
#include <stdint.h>
#include <string.h>

#include "client.h"

/* ------------------------------------------------------- tagged words */

size_t page_round(size_t n)
{
	return (n + PAGE - 1) / PAGE * PAGE;
}

/* Offset of the first non-zero 64-bit word, or -1. */
static long first_nonzero(const void *p, size_t len)
{
	const uint64_t *w = p;
	size_t n = len / sizeof(*w);

	for (size_t i = 0; i < n; i += 8) {
		uint64_t any = 0;

		for (size_t k = i; k < i + 8 && k < n; k++)
			any |= w[k];
		if (!any)
			continue;
		for (size_t k = i; k < i + 8 && k < n; k++)
			if (w[k])
				return (long)(k * sizeof(*w));
	}
	return -1;
}

void fail_nonzero(const char *what, const void *p, size_t size, long off)
{
	uint64_t w = *(const uint64_t *)((const char *)p + off);

	tu_fail("%s of %zu bytes at %p: word at offset %ld is %#llx (tag %#llx)", what, size, p,
		off, (unsigned long long)w, (unsigned long long)(w >> TAG_SHIFT));
}

void check_zero(const char *what, const void *p, size_t size)
{
	long off = first_nonzero(p, page_round(size));

	if (off >= 0)
		fail_nonzero(what, p, size, off);
}

/* A dirty page may hold only words of ours (or zero). */
void check_own(const void *p, size_t size, uint64_t tag)
{
	const uint64_t *w = p;

	for (size_t i = 0; i < page_round(size) / sizeof(*w); i++)
		if (w[i] && (w[i] >> TAG_SHIFT) != tag)
			fail_nonzero("dirty page", p, size, (long)(i * sizeof(*w)));
}

/* Random words, each tagged; returns the first, which fill_check uses. */
void fill_random(void *p, size_t size, uint64_t tag, uint64_t *rng)
{
	uint64_t *w = p, t = tag << TAG_SHIFT, mask = (1ull << TAG_SHIFT) - 1;

	for (size_t i = 0; i < page_round(size) / sizeof(*w); i++)
		w[i] = t | (xorshift(rng) & mask);
}

void fill_stamp(void *p, size_t size, uint64_t stamp)
{
	uint64_t *w = p;

	for (size_t i = 0; i < page_round(size) / sizeof(*w); i++)
		w[i] = stamp;
}

void check_stamp(const void *p, size_t size, uint64_t stamp, const char *what)
{
	const uint64_t *w = p;

	for (size_t i = 0; i < page_round(size) / sizeof(*w); i++)
		if (w[i] != stamp)
			tu_fail("%s: %p+%zu holds %#llx, not our stamp %#llx", what, p,
				i * sizeof(*w), (unsigned long long)w[i],
				(unsigned long long)stamp);
}

/* An allocation answered r: zeroed when it says so, and always when we
 * did not allow dirty memory; otherwise only our own words. */
void check_fresh(const void *p, size_t size, unsigned flags, int r, uint64_t tag)
{
	if (!(flags & HAK_ALLOC_DIRTY_OK) && !(r & HAK_ALLOC_ZEROED))
		tu_fail("hak_alloc(%zu, 0) answered %d: not zeroed", size, r);
	if (r & HAK_ALLOC_ZEROED)
		check_zero("page handed out as zeroed", p, size);
	else
		check_own(p, size, tag);
}

/* ---------------------------------------------------------- held pages */

/* A page we filled still holds what we wrote (its first word, and it is
 * not zero: nobody zeroed it under us). */
void check_held(const struct held *h, const char *what)
{
	if (*(const uint64_t *)h->p != h->first)
		tu_fail("%s: page %p of %zu bytes changed under us: %#llx, wrote %#llx", what, h->p,
			h->size, (unsigned long long)*(const uint64_t *)h->p,
			(unsigned long long)h->first);
}

unsigned hold_n(struct held *h, unsigned n, uint64_t tag, uint64_t *rng)
{
	for (unsigned i = 0; i < n; i++) {
		int how;

		h[i].size = classes[i % nclasses];
		h[i].p = alloc_or_fail(h[i].size, 0, &how);
		check_fresh(h[i].p, h[i].size, 0, how, tag);
		fill_random(h[i].p, h[i].size, tag, rng);
		h[i].first = *(uint64_t *)h[i].p;
	}
	return n;
}

/* Every word of a held page still carries our tag. */
void check_held_all(const struct held *h, unsigned n, uint64_t tag, const char *what)
{
	for (unsigned i = 0; i < n; i++) {
		const uint64_t *w = h[i].p;

		check_held(&h[i], what);
		for (size_t k = 0; k < page_round(h[i].size) / sizeof(*w); k++)
			if ((w[k] >> TAG_SHIFT) != tag)
				tu_fail("%s: %p+%zu holds %#llx, not tag %#llx", what, h[i].p,
					k * sizeof(*w), (unsigned long long)w[k],
					(unsigned long long)tag);
	}
}

/* ----------------------------------------------------------- one byte */

/* Word-sized fast path: a 2 MiB slot is checked many times per run. */
long find_foreign(const void *p, size_t len, unsigned char own)
{
	const uint64_t *w = p;
	const unsigned char *b = p;
	uint64_t own_word = 0x0101010101010101ull * own;

	for (size_t i = 0; i < len / 8; i++) {
		if (w[i] == 0 || w[i] == own_word)
			continue;
		for (size_t j = i * 8; j < i * 8 + 8; j++)
			if (b[j] != 0 && b[j] != own)
				return (long)j;
	}
	for (size_t j = len / 8 * 8; j < len; j++)
		if (b[j] != 0 && b[j] != own)
			return (long)j;
	return -1;
}

void check_fresh_byte(const void *p, size_t size, unsigned flags, int r, unsigned char own)
{
	size_t len = page_round(size);
	long bad;

	if (!(flags & HAK_ALLOC_DIRTY_OK) && !(r & HAK_ALLOC_ZEROED))
		tu_fail("hak_alloc(%zu, flags 0) answered %d: not zeroed", size, r);
	bad = find_foreign(p, len, (r & HAK_ALLOC_ZEROED) ? 0 : own);
	if (bad >= 0)
		tu_fail("%s page of %zu bytes at %p has byte 0x%02x at offset %ld (own pattern "
			"0x%02x)",
			(r & HAK_ALLOC_ZEROED) ? "zeroed" : "dirty", size, p,
			((const unsigned char *)p)[bad], bad, own);
}

void check_filled(const void *p, size_t len, unsigned char own, const char *what)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i] != own)
			tu_fail("%s: %p+%zu holds 0x%02x, not 0x%02x", what, p, i, b[i], own);
}

void *alloc_checked(size_t size, unsigned flags, unsigned char own, int *how)
{
	int r;
	void *p = alloc_or_fail(size, flags, &r);

	check_fresh_byte(p, size, flags, r, own);
	if (how)
		*how = r;
	return p;
}
