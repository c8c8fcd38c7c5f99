/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * jemalloc splits and merges the extents it gets: one pool slot may be in
 * several pieces, freed one by one.  Per slot, this table holds the bytes
 * jemalloc still has; the slot goes back to the pool when the last piece
 * does.
 *
 * Lock-free, so that it is safe from any hook and across fork(): a key (the
 * slot's address) is claimed once with compare-and-swap and never removed
 * (the set of slots is bounded by the pools the handle may have), and the
 * count is an atomic.  A slot belongs to jemalloc alone between the
 * hand-out and the last put, so the store at hand-out races with nobody.
 */
#include <stddef.h>
#include <sys/mman.h>

#include "adapter.h"

/* Entries: every slot of HAK_MAX_POOLS pools of 64 MiB of 4 KiB slots fits
 * at under 3/4 load; reserved, not populated: only what is touched costs. */
#define HJ_TABLE_BITS 19
#define HJ_TABLE_SIZE (1u << HJ_TABLE_BITS)
/* Probes before an insert gives up (the table counts as full). */
#define HJ_MAX_PROBES 64

struct hj_entry {
	uintptr_t key;	/* slot address; 0: free */
	uint64_t bytes; /* what jemalloc still holds of the slot */
};

static struct hj_entry *table;

static struct hj_entry *table_get(void)
{
	struct hj_entry *t = __atomic_load_n(&table, __ATOMIC_ACQUIRE);
	void *m;

	if (t)
		return t;
	m = mmap(NULL, sizeof(*t) * HJ_TABLE_SIZE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	/* Two threads may both map one: the loser unmaps its own.  Release
	 * pairs with the acquire above. */
	if (!__atomic_compare_exchange_n(&table, &t, (struct hj_entry *)m, 0, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE)) {
		munmap(m, sizeof(*t) * HJ_TABLE_SIZE);
		return t;
	}
	return m;
}

/* The slot's page number: slots next to each other share a page of the
 * table (one 4 KiB page of entries covers 1 MiB of pool), so a client pays
 * for table pages in proportion to the pool it uses.  A scattering hash
 * made every new slot fault a page of its own: 8 MiB of table for 2,000
 * slots.  Pools are mapped near each other; two pools 2 GiB apart share
 * entries and probe past each other. */
static uint32_t hash(uintptr_t key)
{
	return (uint32_t)(key / HJ_PAGE) & (HJ_TABLE_SIZE - 1);
}

/* The entry of key; claims a free one when claim is set. */
static struct hj_entry *find(uintptr_t key, bool claim)
{
	struct hj_entry *t = table_get();
	uint32_t h = hash(key);

	if (!t)
		return NULL;
	for (unsigned i = 0; i < HJ_MAX_PROBES; i++) {
		struct hj_entry *e = &t[(h + i) & (HJ_TABLE_SIZE - 1)];
		uintptr_t k = __atomic_load_n(&e->key, __ATOMIC_ACQUIRE);

		if (k == key)
			return e;
		if (k != 0)
			continue;
		if (!claim)
			return NULL;
		if (__atomic_compare_exchange_n(&e->key, &k, key, 0, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE) ||
		    k == key)
			return e;
	}
	return NULL;
}

bool hj_pieces_set(const void *slot, uint64_t size)
{
	struct hj_entry *e = find((uintptr_t)slot, true);

	if (!e)
		return false;
	__atomic_store_n(&e->bytes, size, __ATOMIC_RELEASE);
	return true;
}

int hj_pieces_put(const void *slot, uint64_t size)
{
	struct hj_entry *e = find((uintptr_t)slot, false);

	if (!e || __atomic_load_n(&e->bytes, __ATOMIC_RELAXED) < size)
		return -ENOENT;
	/* acq_rel: every earlier piece's put happens before the last one
	 * hands the slot back. */
	return __atomic_sub_fetch(&e->bytes, size, __ATOMIC_ACQ_REL) == 0;
}
