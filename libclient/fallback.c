/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The mmap fallbacks a handle has handed out (DESIGN "Fallbacks"), so that
 * hak_free unmaps only what hak_alloc mapped, at the length it mapped.
 * Trusting the caller's size let a 3 MiB fallback freed as 4 MiB unmap the
 * next mapping, whatever it held (the library's own pool state, say).
 *
 * A fallback is already a system call, so a mutex and an open-addressing
 * hash table (linear probing, keyed by address) cost nothing that matters;
 * the pool's hot path never comes here.  The table lives in anonymous
 * memory, never malloc (see internal.h), grows by doubling, and is private:
 * a fork child inherits it along with the mappings it describes, which are
 * copy-on-write too, so the child frees them as the parent would.  It
 * belongs to the handle, not to a pool: a fallback made with no pool, a
 * shared one or a local one is freed the same way whatever the handle uses
 * by then.
 */
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

/* One page of entries to start with; grown before it is 3/4 full, so that
 * probe runs stay short. */
#define FB_INITIAL_ENTRIES (HAK_PAGE_SIZE / sizeof(struct hak_fallback_entry))
#define FB_LOAD_NUM 3
#define FB_LOAD_DEN 4
/* Fibonacci hashing: spreads page-aligned addresses over the table. */
#define FB_HASH_MUL 0x9e3779b97f4a7c15ull

void hak_fallback_init(struct hak_client *c)
{
	pthread_mutex_init(&c->fb.lock, NULL);
}

void hak_fallback_fini(struct hak_client *c)
{
	if (c->fb.tab)
		HAK_SYSCALL(munmap(c->fb.tab, c->fb.cap * sizeof(*c->fb.tab)));
	pthread_mutex_destroy(&c->fb.lock);
}

/* A fork child: the thread that held the lock in the parent does not exist
 * here; atfork_prepare took it, so the table is consistent. */
void hak_fallback_reset_in_child(struct hak_client *c)
{
	pthread_mutex_init(&c->fb.lock, NULL);
}

static size_t home(uintptr_t addr, size_t cap)
{
	return (size_t)(((uint64_t)addr / HAK_PAGE_SIZE * FB_HASH_MUL) >> 32) & (cap - 1);
}

/* The slot holding addr, or the empty slot that ends its probe run. */
static size_t probe(const struct hak_fallback_entry *tab, size_t cap, uintptr_t addr)
{
	size_t i = home(addr, cap);

	while (tab[i].addr && tab[i].addr != addr)
		i = (i + 1) & (cap - 1);
	return i;
}

static int grow(struct hak_fallbacks *fb)
{
	size_t cap = fb->cap ? fb->cap * 2 : FB_INITIAL_ENTRIES;
	struct hak_fallback_entry *tab = hak_map_private(cap * sizeof(*tab), 0);

	if (!tab)
		return -ENOMEM;
	for (size_t i = 0; i < fb->cap; i++)
		if (fb->tab[i].addr)
			tab[probe(tab, cap, fb->tab[i].addr)] = fb->tab[i];
	if (fb->tab)
		HAK_SYSCALL(munmap(fb->tab, fb->cap * sizeof(*fb->tab)));
	fb->tab = tab;
	fb->cap = cap;
	return 0;
}

static int insert_locked(struct hak_fallbacks *fb, uintptr_t addr, uint64_t len)
{
	size_t i;
	int r;

	if ((fb->n + 1) * FB_LOAD_DEN > fb->cap * FB_LOAD_NUM) {
		r = grow(fb);
		if (r < 0)
			return r;
	}
	i = probe(fb->tab, fb->cap, addr);
	fb->n += !fb->tab[i].addr;
	fb->tab[i] = (struct hak_fallback_entry){addr, len};
	return 0;
}

/* Backward-shift deletion: moves later members of the probe run into the
 * hole, so that no lookup stops early at it. */
static void remove_at(struct hak_fallbacks *fb, size_t hole)
{
	size_t mask = fb->cap - 1;

	for (size_t j = (hole + 1) & mask; fb->tab[j].addr; j = (j + 1) & mask) {
		size_t h = home(fb->tab[j].addr, fb->cap);

		/* Entry j may fill the hole when its home is not in (hole, j]. */
		if (((j - h) & mask) >= ((j - hole) & mask)) {
			fb->tab[hole] = fb->tab[j];
			hole = j;
		}
	}
	fb->tab[hole] = (struct hak_fallback_entry){0, 0};
	fb->n--;
}

int hak_fallback_add(struct hak_client *c, void *addr, uint64_t len)
{
	int r;

	pthread_mutex_lock(&c->fb.lock);
	r = insert_locked(&c->fb, (uintptr_t)addr, len);
	pthread_mutex_unlock(&c->fb.lock);
	return r;
}

/* Takes addr out of the table if it is a fallback of exactly len bytes. */
static int take(struct hak_fallbacks *fb, uintptr_t addr, uint64_t len)
{
	size_t i;

	if (!fb->tab)
		return -EINVAL;
	i = probe(fb->tab, fb->cap, addr);
	if (fb->tab[i].addr != addr || fb->tab[i].len != len)
		return -EINVAL;
	remove_at(fb, i);
	return 0;
}

int hak_fallback_unmap(struct hak_client *c, void *addr, uint64_t len)
{
	int r;

	pthread_mutex_lock(&c->fb.lock);
	r = take(&c->fb, (uintptr_t)addr, len);
	pthread_mutex_unlock(&c->fb.lock);
	if (r < 0)
		return r;
	/* Out of the table, still mapped: no other thread can free it nor be
	 * given its addresses, so the unmap needs no lock. */
	r = HAK_SYSCALL(munmap(addr, len));
	if (r < 0)
		hak_fallback_add(c, addr, len); /* still mapped: still ours */
	return r;
}
