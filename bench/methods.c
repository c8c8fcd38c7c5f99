/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The methods.  None is weakened to make another look good: each is what a
 * process that wants zero-filled memory of that size would plausibly do on
 * its own, with the cost where that method puts it.
 *
 *   hak              hak_alloc(0): a zero-filled slot from libhakclient
 *   hak-dirty        hak_alloc(HAK_ALLOC_DIRTY_OK): its own freed slot as it
 *                    is, for a caller that overwrites what it gets anyway
 *   mmap             a fresh anonymous mapping, munmap on free: the kernel
 *                    faults and clears every page on first write
 *   mmap-populate    the same with MAP_POPULATE: faults and clearing happen
 *                    inside mmap instead of on first write
 *   retain-dontneed  keeps freed ranges mapped but gives their pages back
 *                    (MADV_DONTNEED): the next write faults a zeroed page in
 *   retain-free      keeps freed ranges, MADV_FREE: the kernel may or may not
 *                    have reclaimed a page, so reused memory cannot be known
 *                    to be zero and is cleared on allocation, as jemalloc does
 *   retain-memset    keeps freed ranges and clears a reused one with memset
 *                    in the allocating thread: the best a process does alone
 *   calloc           glibc's calloc/free
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench.h"
#include "methods.h"

static void *map_fresh(size_t size, int extra)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | extra, -1,
		       0);

	if (p == MAP_FAILED)
		die("mmap(%zu): %s", size, strerror(errno));
	return p;
}

static void unmap(void *p, size_t size)
{
	if (munmap(p, size) < 0)
		die("munmap(%zu): %s", size, strerror(errno));
}

/* ---- libhakclient ---- */

static void *hak_take_flags(struct mstate *s, unsigned flags)
{
	void *p;
	int r = hak_alloc(s->client, s->size, flags, &p);

	if (r < 0)
		die("hak_alloc(%zu): %s", s->size, strerror(-r));
	if (!flags && !(r & HAK_ALLOC_ZEROED))
		die("hak_alloc(%zu, 0) returned memory not marked zeroed", s->size);
	return p;
}

static void *hak_take(struct mstate *s)
{
	return hak_take_flags(s, 0);
}

static void *hak_take_dirty(struct mstate *s)
{
	return hak_take_flags(s, HAK_ALLOC_DIRTY_OK);
}

static void hak_give(struct mstate *s, void *p)
{
	int r = hak_free(s->client, p, s->size);

	if (r < 0)
		die("hak_free(%zu): %s", s->size, strerror(-r));
}

/* ---- the kernel ---- */

static void *mmap_take(struct mstate *s)
{
	return map_fresh(s->size, 0);
}

static void *mmap_populate_take(struct mstate *s)
{
	return map_fresh(s->size, MAP_POPULATE);
}

static void mmap_give(struct mstate *s, void *p)
{
	unmap(p, s->size);
}

/* ---- retaining ---- */

/* A kept range, or a fresh mapping (which reads as zero) when none is. */
static void *retain_pop(struct mstate *s, bool *reused)
{
	*reused = s->nkept > 0;
	return *reused ? s->kept[--s->nkept] : map_fresh(s->size, 0);
}

static void retain_push(struct mstate *s, void *p)
{
	if (s->nkept < BATCH_MAX)
		s->kept[s->nkept++] = p;
	else
		unmap(p, s->size);
}

static void *retain_zeroed_take(struct mstate *s)
{
	bool reused;

	return retain_pop(s, &reused);
}

static void *retain_memset_take(struct mstate *s)
{
	bool reused;
	void *p = retain_pop(s, &reused);

	if (reused)
		memset(p, 0, s->size);
	return p;
}

static void retain_keep_give(struct mstate *s, void *p)
{
	retain_push(s, p);
}

static void retain_advise_give(struct mstate *s, void *p, int advice, const char *name)
{
	if (madvise(p, s->size, advice) < 0)
		die("madvise(%s): %s", name, strerror(errno));
	retain_push(s, p);
}

static void retain_dontneed_give(struct mstate *s, void *p)
{
	retain_advise_give(s, p, MADV_DONTNEED, "MADV_DONTNEED");
}

static void retain_free_give(struct mstate *s, void *p)
{
	retain_advise_give(s, p, MADV_FREE, "MADV_FREE");
}

/* ---- glibc ---- */

static void *calloc_take(struct mstate *s)
{
	void *p = calloc(1, s->size);

	if (!p)
		die("calloc(%zu): out of memory", s->size);
	return p;
}

static void calloc_give(struct mstate *s, void *p)
{
	free(p);
}

const struct method methods[M_NR] = {
	[M_HAK] = {"hak", "libhakclient, zero-filled", true, hak_take, hak_give},
	[M_HAK_DIRTY] = {"hak-dirty", "libhakclient, own dirty slots accepted", true,
			 hak_take_dirty, hak_give},
	[M_MMAP] = {"mmap", "mmap / munmap", false, mmap_take, mmap_give},
	[M_MMAP_POPULATE] = {"mmap-populate", "mmap(MAP_POPULATE) / munmap", false,
			     mmap_populate_take, mmap_give},
	[M_RETAIN_DONTNEED] = {"retain-dontneed", "kept mapped, MADV_DONTNEED on free", false,
			       retain_zeroed_take, retain_dontneed_give},
	[M_RETAIN_FREE] = {"retain-free", "kept mapped, MADV_FREE on free, memset on reuse", false,
			   retain_memset_take, retain_free_give},
	[M_RETAIN_MEMSET] = {"retain-memset", "kept mapped, memset on reuse", false,
			     retain_memset_take, retain_keep_give},
	[M_CALLOC] = {"calloc", "glibc calloc / free", false, calloc_take, calloc_give},
};

void mstate_reset(struct mstate *s)
{
	while (s->nkept > 0)
		unmap(s->kept[--s->nkept], s->size);
}

int method_parse(const char *name)
{
	for (int m = 0; m < M_NR; m++)
		if (strcmp(name, methods[m].name) == 0)
			return m;
	return -1;
}
