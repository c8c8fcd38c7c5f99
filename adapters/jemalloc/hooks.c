/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The extent hooks.  An extent jemalloc asks for comes from a pool slot of
 * the smallest class that fits; whatever the pool cannot serve (larger than
 * its classes, the pool dry, no pool yet) goes to the arena's own hooks,
 * jemalloc's path as if we were not there.  Every other hook tells the two
 * apart by address (hak_slot_of).
 *
 * So does any request aligned beyond a page.  Slots are only page-aligned
 * by contract, and the one caller that asks for more in practice is
 * jemalloc's metadata (base blocks, 2 MiB-aligned), which is never freed:
 * served from the pool it would pin the few 2 MiB slots for good whenever
 * the pool happens to be 2 MiB-aligned (a local pool always is).
 *
 * jemalloc with retain (its default on Linux) grows by mapping ever larger
 * regions and splitting extents off them; those regions would never come
 * back, so while a pool is live a growth request is declined and jemalloc
 * asks for each extent by itself.  Such a request has *commit false on
 * entry; every other has it true.
 *
 * A young process has no pool.  Until jemalloc has taken or given back
 * HJ_POOL_AFTER bytes through its own hooks (the extents it maps, and
 * those it decommits: a freed extent is decommitted first, and purged
 * only when that fails, so it counts once), every request goes there and
 * the handle is not made: a short program, most processes on a host,
 * costs what it costs under jemalloc alone plus the loading of this
 * library (no connection, no thread, no pool pages faulted in place of
 * jemalloc's).  Measured on a program of 2 MiB (hakbench-workload short)
 * started 150 times: making the handle at the first request cost it
 * 0.65 ms (local) to 0.9 ms (shared) a start over stock jemalloc, and
 * 0.17 ms is left (the loading of this library).  Past its youth
 * a process is treated as if its pool were live: jemalloc's own memory is
 * decommitted for real and not committed again (see remap below), so a
 * program that churns through memory jemalloc already holds (dirty decay
 * at 0) still comes to ask for new extents, and the next request makes
 * the handle.
 *
 * Pool memory is always committed and cannot be purged from here: a purge
 * fails (jemalloc then frees the extent through dalloc, which returns it to
 * the pool), a decommit fails, a commit succeeds.  jemalloc may split a
 * slot's extent and merge the pieces again, never with another slot's.
 */
#include <errno.h>
#include <stddef.h>
#include <sys/mman.h>
#include <unistd.h>

#include "adapter.h"
#include "hak_time.h"

static bool in_slot(struct hak_client *c, const void *addr, void **base, size_t *size)
{
	return c && hak_slot_of(c, addr, base, size) == 0;
}

/* A pool that had no slot for HJ_SHORT_AFTER extents in a row (hak_alloc
 * said -EAGAIN: its class is used up, or its ready ring is dry and stays
 * so) hands growth back to jemalloc for HJ_SHORT_NS, and one slot served
 * ends that.  Meanwhile growth requests are not declined, so a program
 * that outgrows its pool grows as it would without it (jemalloc maps a
 * large region and splits extents off it) instead of by one mapping per
 * extent, each faulting apart.  Measured on redis-server, LPUSH of 16 KiB
 * values (20 KiB extents, then in 64 KiB slots, of which a default pool
 * had 256), 20,000 pushes, 3 rounds: 0.85-0.97x of stock jemalloc before,
 * 0.99-1.08x after.  short_until: monotonic ns. */
#define HJ_SHORT_AFTER 8u
#define HJ_SHORT_NS (100ull * 1000 * 1000)
static uint32_t misses;
static uint64_t short_until;

static bool pool_short(void)
{
	uint64_t until = __atomic_load_n(&short_until, __ATOMIC_RELAXED);

	return until && hak_now_ns() < until;
}

/* A slot for an extent, or NULL.  Dirty is fine unless jemalloc needs
 * zeroes (calloc, or its own metadata): then the pool's zeroed slot spares
 * it the memset. */
static void *pool_extent(struct hak_client *c, size_t size, size_t alignment, bool *zero)
{
	unsigned flags = HAK_ALLOC_POOL_ONLY | (*zero ? 0 : HAK_ALLOC_DIRTY_OK);
	size_t slot_size = 0;
	void *p, *base;
	int r = hak_alloc(c, size, flags, &p);

	if (r == -EAGAIN && __atomic_add_fetch(&misses, 1, __ATOMIC_RELAXED) >= HJ_SHORT_AFTER)
		__atomic_store_n(&short_until, hak_now_ns() + HJ_SHORT_NS, __ATOMIC_RELAXED);
	if (r < 0)
		return NULL;
	if (__atomic_load_n(&misses, __ATOMIC_RELAXED)) {
		__atomic_store_n(&misses, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&short_until, 0, __ATOMIC_RELAXED);
	}
	if ((uintptr_t)p % alignment || !in_slot(c, p, &base, &slot_size) ||
	    !hj_pieces_set(p, size)) {
		hak_free(c, p, size);
		return NULL;
	}
	*zero = r & HAK_ALLOC_ZEROED;
	hj_count(HJ_EXTENTS_POOL, 1);
	hj_count(HJ_EXTENTS_ZEROED, *zero);
	hj_count(HJ_BYTES_ASKED, size);
	hj_count(HJ_BYTES_SLOTS, slot_size);
	return p;
}

static void *forward_alloc(void *new_addr, size_t size, size_t alignment, bool *zero, bool *commit,
			   unsigned ind)
{
	extent_hooks_t *o = hj_orig(ind);

	hj_count(HJ_EXTENTS_FORWARDED, 1);
	return o->alloc ? o->alloc(o, new_addr, size, alignment, zero, commit, ind) : NULL;
}

/* Bytes of its own memory jemalloc took or gave back through its hooks
 * before the handle was made (see the top); atomic. */
static uint64_t youth_bytes;

static void youth_count(size_t n)
{
	if (hj_client_untried())
		__atomic_fetch_add(&youth_bytes, n, __ATOMIC_RELAXED);
}

static bool grown(void)
{
	return __atomic_load_n(&youth_bytes, __ATOMIC_RELAXED) >= HJ_POOL_AFTER;
}

static bool young(void)
{
	return hj_client_untried() && !grown();
}

/* Whether jemalloc's own memory is to be decommitted for real and never
 * committed again: a pool is live, or about to be made. */
static bool pool_wanted(void)
{
	return hj_client_untried() ? grown() : hj_pool_live(hj_client_ready());
}

/* A growth request (see the top): declined while a pool is live and has
 * slots (pool_short), and before the handle is made, so that the next
 * request, made with no jemalloc lock held, makes it. */
static bool decline_growth(void)
{
	return hj_client_untried() || (hj_pool_live(hj_client()) && !pool_short());
}

static void *hj_alloc(extent_hooks_t *h, void *new_addr, size_t size, size_t alignment, bool *zero,
		      bool *commit, unsigned ind)
{
	struct hak_client *c;
	void *p;

	if (new_addr)
		return forward_alloc(new_addr, size, alignment, zero, commit, ind);
	/* Aligned requests (metadata) go there anyway, and do not count. */
	if (alignment <= HJ_PAGE && young()) {
		youth_count(size);
		return forward_alloc(new_addr, size, alignment, zero, commit, ind);
	}
	if (!*commit) {
		if (decline_growth()) {
			hj_count(HJ_GROWS_DECLINED, 1);
			return NULL;
		}
		return forward_alloc(new_addr, size, alignment, zero, commit, ind);
	}
	c = alignment <= HJ_PAGE ? hj_client() : NULL;
	p = c ? pool_extent(c, size, alignment, zero) : NULL;
	if (!p)
		return forward_alloc(new_addr, size, alignment, zero, commit, ind);
	*commit = true;
	return p;
}

/* Pool memory going back: 1 when it was (the caller is done), 0 when the
 * address is not the pool's. */
static int pool_release(void *addr, size_t size)
{
	struct hak_client *c = hj_client_ready();
	size_t slot_size;
	void *base;
	int r;

	if (!in_slot(c, addr, &base, &slot_size))
		return 0;
	r = hj_pieces_put(base, size);
	if (r < 0) {
		hj_count(HJ_ERRORS, 1);
	} else if (r == 1) {
		hak_free(c, base, slot_size);
		hj_count(HJ_SLOTS_RETURNED, 1);
	}
	return 1;
}

/* What is not the pool's goes to jemalloc's own dalloc, which with retain
 * keeps the mapping and purges it (unmapping it here instead breaks
 * jemalloc's bookkeeping of retained regions). */
static bool hj_dalloc(extent_hooks_t *h, void *addr, size_t size, bool committed, unsigned ind)
{
	extent_hooks_t *o = hj_orig(ind);

	if (pool_release(addr, size))
		return false;
	return o->dalloc ? o->dalloc(o, addr, size, committed, ind) : true;
}

static void hj_destroy(extent_hooks_t *h, void *addr, size_t size, bool committed, unsigned ind)
{
	extent_hooks_t *o = hj_orig(ind);

	if (!pool_release(addr, size) && o->destroy)
		o->destroy(o, addr, size, committed, ind);
}

static bool is_pool(const void *addr)
{
	size_t slot_size;
	void *base;

	return in_slot(hj_client_ready(), addr, &base, &slot_size);
}

/* jemalloc keeps its own extents it frees (retain).  While a pool is live
 * (or wanted: a process past its youth, see the top) they are decommitted
 * for real (an inaccessible, unbacked mapping in place) and never
 * committed again: jemalloc then asks for a new extent, which the pool
 * serves, instead of recycling retained pages that fault on every first
 * touch.  Without a pool, decommit is jemalloc's own (which
 * declines where the kernel overcommits, so jemalloc purges with one
 * madvise instead of two mmaps per extent reused), and committing maps back
 * what was decommitted while a pool was live. */
static bool remap(void *addr, size_t len, int prot)
{
	int saved = errno;
	void *m = mmap(addr, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1,
		       0);

	errno = saved;
	return m != addr;
}

static bool hj_commit(extent_hooks_t *h, void *addr, size_t size, size_t off, size_t len,
		      unsigned ind)
{
	if (is_pool(addr))
		return false;
	if (pool_wanted())
		return true;
	return remap((char *)addr + off, len, PROT_READ | PROT_WRITE);
}

static bool hj_decommit(extent_hooks_t *h, void *addr, size_t size, size_t off, size_t len,
			unsigned ind)
{
	extent_hooks_t *o = hj_orig(ind);

	if (is_pool(addr))
		return true;
	youth_count(len);
	if (pool_wanted())
		return remap((char *)addr + off, len, PROT_NONE);
	return o->decommit ? o->decommit(o, addr, size, off, len, ind) : true;
}

static bool hj_purge_lazy(extent_hooks_t *h, void *addr, size_t size, size_t off, size_t len,
			  unsigned ind)
{
	extent_hooks_t *o = hj_orig(ind);

	if (is_pool(addr))
		return true;
	return o->purge_lazy ? o->purge_lazy(o, addr, size, off, len, ind) : true;
}

static bool hj_purge_forced(extent_hooks_t *h, void *addr, size_t size, size_t off, size_t len,
			    unsigned ind)
{
	extent_hooks_t *o = hj_orig(ind);

	if (is_pool(addr))
		return true;
	return o->purge_forced ? o->purge_forced(o, addr, size, off, len, ind) : true;
}

static bool hj_split(extent_hooks_t *h, void *addr, size_t size, size_t size_a, size_t size_b,
		     bool committed, unsigned ind)
{
	extent_hooks_t *o = hj_orig(ind);
	struct hak_client *c = hj_client_ready();
	size_t slot_size;
	void *base;

	if (in_slot(c, addr, &base, &slot_size))
		return (char *)addr + size > (char *)base + slot_size;
	return o->split ? o->split(o, addr, size, size_a, size_b, committed, ind) : true;
}

/*
 * jemalloc's own merge hook, called as a hook, fetches the calling thread's
 * state (tsdn_fetch); jemalloc calls it with the state in hand instead.  A
 * thread that has only freed so far has a minimal state, which that fetch
 * completes by making the thread's cache: an allocation, under the extent
 * lock the free holds.  The thread deadlocks, and every other with it.
 *
 * So its answer is given here without the call.  Where mappings coalesce
 * (Linux), jemalloc's merge hook refuses only a merge across an edge of
 * its brk heap (dss); keeping apart extents of different mappings jemalloc
 * does itself, before any hook.  Both edges lie at or below the current
 * break, so refusing every merge that starts below it refuses a superset.
 */
static bool jemallocs_merge(const void *addr_a)
{
	return (uintptr_t)addr_a < (uintptr_t)sbrk(0);
}

/* Pieces of one slot merge; a slot's piece and anything else never do. */
static bool hj_merge(extent_hooks_t *h, void *addr_a, size_t size_a, void *addr_b, size_t size_b,
		     bool committed, unsigned ind)
{
	extent_hooks_t *o = hj_orig(ind);
	struct hak_client *c = hj_client_ready();
	size_t sa, sb;
	void *ba, *bb;
	bool pa = in_slot(c, addr_a, &ba, &sa), pb = in_slot(c, addr_b, &bb, &sb);

	if (pa || pb)
		return !(pa && pb && ba == bb);
	if (!o->merge)
		return true;
	if (hj_orig_is_jemallocs(o))
		return jemallocs_merge(addr_a);
	return o->merge(o, addr_a, size_a, addr_b, size_b, committed, ind);
}

extent_hooks_t hj_hooks = {
	.alloc = hj_alloc,
	.dalloc = hj_dalloc,
	.destroy = hj_destroy,
	.commit = hj_commit,
	.decommit = hj_decommit,
	.purge_lazy = hj_purge_lazy,
	.purge_forced = hj_purge_forced,
	.split = hj_split,
	.merge = hj_merge,
};
