/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hak_alloc / hak_free: the hot path (DESIGN "Shared mode" 4, rules 1, 2, 4).
 *
 * In steady state an allocation is a pop from a ring and a free a push onto
 * one: plain loads, stores and compare-and-swap, no lock, no system call, no
 * page fault.  The order of resort when the pool has nothing ready:
 *
 *   zeroes needed    ready ring -> own freed slot zeroed here -> mmap
 *   dirty is fine    own freed slot -> ready ring -> mmap
 *
 * A fallback mapping is recorded (fallback.c) and unmapped only whole, at
 * the length it was mapped with.
 *
 * Each resort is tried first in the calling thread's own cache (tcache.c),
 * then in the pool's shared one.
 *
 * A slot's life on this side: handed out (slot_state HELD, with the
 * generation it came with) -> freed into the thread's cache -> spilled in a
 * batch into the pool's shared dirty cache -> returned to the daemon in a
 * batch, with that generation, when that cache is full.
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

static int class_for(const struct hak_pool *p, size_t size)
{
	for (unsigned i = 0; i < p->nclasses; i++)
		if (size <= p->cls[i].slot_size)
			return (int)i;
	return -1;
}

/* A full fence.  ThreadSanitizer does not model fences (gcc -Wtsan): there
 * a seq_cst read-modify-write, which it does model, stands in for one. */
static inline void full_fence(void)
{
#ifdef __SANITIZE_THREAD__
	static uint32_t fence_word;

	__atomic_fetch_add(&fence_word, 0, __ATOMIC_SEQ_CST);
#else
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

/* Rings the doorbell if the daemon asked for one (it stored 1 when it went
 * idle).  The relaxed peek keeps the common case to a read of a line the
 * daemon rarely writes; the exchange makes sure one thread rings, once.
 * Called only at thresholds, never on every allocation. */
static bool doorbell(struct hak_client *c, struct hak_pool *p)
{
	uint64_t one = 1;

	/* A fork child still on its local pool: the monitor that services it
	 * must be started. */
	hak_monitor_child_restart(c);

	/* Full fence, as before io_uring's SQ_NEED_WAKEUP check: orders our
	 * ring update before the load of want_doorbell.  Pairs with the
	 * daemon's fence between its store of 1 and its last look at the
	 * rings; without both, each side could miss the other's store. */
	full_fence();
	if (hak_load_relaxed(&p->sync->want_doorbell) != 1)
		return false;
	/* acq_rel: our ring updates are visible to the daemon once it sees
	 * the exchange; pairs with its store of 1 before it sleeps. */
	if (hak_xchg_acq_rel(&p->sync->want_doorbell, 0) != 1)
		return false;
	HAK_SYSCALL(write(p->doorbell_fd, &one, sizeof(one)));
	hak_count(c, p, HAK_CNT_DOORBELLS);
	return true;
}

static void *slot_addr(const struct hak_class_rt *k, uint32_t slot)
{
	return k->base + (uint64_t)slot * k->slot_size;
}

/* The caller won the pop, so it alone owns the slot; the store is atomic
 * because hak_free may read it from any thread. */
static void *hand_out(struct hak_class_rt *k, hak_desc_t d)
{
	uint32_t slot = hak_desc_slot(d);

	__atomic_store_n(&k->slot_state[slot], HAK_SLOT_HELD | hak_desc_gen(d), __ATOMIC_RELAXED);
	return slot_addr(k, slot);
}

static bool ready_pop(struct hak_client *c, struct hak_pool *p, struct hak_class_rt *k,
		      hak_desc_t *d)
{
	/* The client trusts the daemon, but a slot number out of range would
	 * hand out memory outside the class: such a descriptor is dropped. */
	bool ok = hak_ring_pop_mc(&k->ready, d) && hak_desc_slot(*d) < k->nslots;

	/* Running dry is the lowest the ring gets: ring then too (still only
	 * when armed, so at most once per daemon idle period). */
	if (!ok || hak_ring_count(&k->ready) < hak_class_low(k))
		doorbell(c, p);
	return ok;
}

/* Returns HAK_ALLOC_ZEROED, 0 (dirty), or -EAGAIN when the class has
 * nothing for this request. */
static int pool_take(struct hak_client *c, struct hak_pool *p, struct hak_class_rt *k, size_t size,
		     unsigned flags, void **out)
{
	hak_desc_t d;

	/* Lazy zeroing (rule 1): a caller that does not need zeroes gets its
	 * own freed slot back, and nobody zeroes it. */
	if ((flags & HAK_ALLOC_DIRTY_OK) && hak_ring_pop_mc(&k->local, &d)) {
		*out = hand_out(k, d);
		hak_count(c, p, HAK_CNT_ALLOC_DIRTY);
		return 0;
	}
	if (ready_pop(c, p, k, &d)) {
		*out = hand_out(k, d);
		hak_count(c, p, HAK_CNT_ALLOC_READY);
		return HAK_ALLOC_ZEROED;
	}
	if (!(flags & HAK_ALLOC_DIRTY_OK) && hak_ring_pop_mc(&k->local, &d)) {
		/* What a retain-and-memset allocator would do: no worse.  Only
		 * what was asked for must read as zero (the whole slot is
		 * zeroed when it goes back for good). */
		*out = hand_out(k, d);
		memset(*out, 0, hak_page_round(size));
		hak_count(c, p, HAK_CNT_ALLOC_INLINE_ZERO);
		return HAK_ALLOC_ZEROED;
	}
	return -EAGAIN;
}

/* ---- the calling thread's cache (tcache.c) ---- */

/* One compare-and-swap for up to rbatch zeroed descriptors. */
static bool tc_refill(struct hak_client *c, struct hak_pool *p, struct hak_class_rt *k,
		      struct hak_tc_class *tk, bool have_own)
{
	uint32_t n, kept = 0;

	/* Only while the thread has slots of its own to fall back on: the
	 * shared path looks at the ring every time. */
	if (have_own && tk->dry > 0) {
		tk->dry--;
		return false;
	}
	n = hak_ring_pop_mc_n(&k->ready, tk->ready, tk->rbatch);
	tk->dry = n == 0 ? HAK_TC_DRY_SKIP : 0;

	/* As in ready_pop: a slot number out of range is dropped. */
	for (uint32_t i = 0; i < n; i++)
		if (hak_desc_slot(tk->ready[i]) < k->nslots)
			tk->ready[kept++] = tk->ready[i];
	tk->nready = kept;
	if (n == 0 || hak_ring_count(&k->ready) < hak_class_low(k))
		doorbell(c, p);
	return kept > 0;
}

/* pool_take's order of resort, served from the thread's own stacks; what
 * they cannot serve goes to the shared path. */
static int tc_take(struct hak_client *c, struct hak_pool *p, struct hak_tcache *t, unsigned ci,
		   size_t size, unsigned flags, void **out)
{
	struct hak_class_rt *k = &p->cls[ci];
	struct hak_tc_class *tk = &t->cls[ci];
	bool dirty_ok = flags & HAK_ALLOC_DIRTY_OK;
	hak_desc_t d;

	if (dirty_ok && tk->ndirty) {
		*out = hand_out(k, tk->dirty[--tk->ndirty]);
		hak_tc_count(t, HAK_CNT_ALLOC_DIRTY);
		return 0;
	}
	/* Then the process's own freed slots in the shared cache, before a
	 * zeroed one, as pool_take does: what other threads freed (or left
	 * when they exited) is taken back as it is instead of going to be
	 * zeroed while this thread takes zeroed slots.  Measured on threads
	 * started 4 at a time, each giving its jemalloc arena's extents back
	 * when it exits (hakbench apps, short-lived threads). */
	if (dirty_ok && hak_ring_pop_mc(&k->local, &d)) {
		*out = hand_out(k, d);
		hak_tc_count(t, HAK_CNT_ALLOC_DIRTY);
		return 0;
	}
	if (tk->nready || tc_refill(c, p, k, tk, tk->ndirty > 0)) {
		*out = hand_out(k, tk->ready[--tk->nready]);
		hak_tc_count(t, HAK_CNT_ALLOC_READY);
		return HAK_ALLOC_ZEROED;
	}
	if (!dirty_ok && tk->ndirty) {
		/* The slot freed last: most likely still in this core's cache. */
		*out = hand_out(k, tk->dirty[--tk->ndirty]);
		memset(*out, 0, hak_page_round(size));
		hak_tc_count(t, HAK_CNT_ALLOC_INLINE_ZERO);
		return HAK_ALLOC_ZEROED;
	}
	return pool_take(c, p, k, size, flags, out);
}

static int take(struct hak_client *c, struct hak_pool *p, unsigned ci, size_t size, unsigned flags,
		void **out)
{
	struct hak_tcache *t = hak_tcache_of(c, p);

	/* A pool being retired keeps nothing in thread caches; pairs with
	 * the release store in hak_pool_retire. */
	if (t && t->cls[ci].cap && !__atomic_load_n(&p->dead, __ATOMIC_ACQUIRE))
		return tc_take(c, p, t, ci, size, flags, out);
	return pool_take(c, p, &p->cls[ci], size, flags, out);
}

/* A plain mapping, recorded so that hak_free unmaps it only whole. */
static int map_fallback(struct hak_client *c, struct hak_pool *p, size_t size, enum hak_counter why,
			void **out)
{
	uint64_t len;
	void *m;

	if (size > SIZE_MAX - HAK_PAGE_SIZE)
		return -ENOMEM;
	len = hak_page_round(size);
	m = hak_map_private(len, 0);
	if (!m)
		return -ENOMEM;
	if (hak_fallback_add(c, m, len) < 0) {
		HAK_SYSCALL(munmap(m, len));
		return -ENOMEM;
	}
	hak_count(c, p, why);
	hak_monitor_child_restart(c);
	*out = m;
	return HAK_ALLOC_ZEROED;
}

/* What a request the pool cannot serve gets: a plain mapping, or for
 * HAK_ALLOC_POOL_ONLY an error the caller falls back on by itself. */
static int no_slot(struct hak_client *c, struct hak_pool *p, size_t size, unsigned flags,
		   enum hak_counter why, void **out)
{
	if (!(flags & HAK_ALLOC_POOL_ONLY))
		return map_fallback(c, p, size, why, out);
	hak_monitor_child_restart(c);
	return why == HAK_CNT_ALLOC_LARGE ? -E2BIG : -EAGAIN;
}

HAK_EXPORT int hak_alloc(struct hak_client *c, size_t size, unsigned flags, void **out)
{
	struct hak_pool *p;
	int ci, r;

	if (!c || !out || size == 0 || (flags & ~HAK_ALLOC_KNOWN_FLAGS))
		return -EINVAL;
	p = hak_pool_current(c);
	if (!p)
		return no_slot(c, NULL, size, flags, HAK_CNT_ALLOC_MMAP, out);
	ci = class_for(p, size);
	if (ci < 0)
		return no_slot(c, p, size, flags, HAK_CNT_ALLOC_LARGE, out);
	r = take(c, p, (unsigned)ci, size, flags, out);
	if (r != -EAGAIN)
		return r;
	return no_slot(c, p, size, flags, HAK_CNT_ALLOC_MMAP, out);
}

HAK_EXPORT int hak_client_class_size(struct hak_client *c, size_t size, size_t *class_size)
{
	struct hak_pool *p;
	int ci;

	if (!c || !class_size || size == 0)
		return -EINVAL;
	p = hak_pool_current(c);
	if (!p)
		return -ENOTCONN;
	ci = class_for(p, size);
	if (ci < 0)
		return -E2BIG;
	*class_size = p->cls[ci].slot_size;
	return 0;
}

/* ---- free ---- */

static bool in_pool(const struct hak_pool *p, const void *ptr)
{
	uintptr_t a = (uintptr_t)ptr, b = (uintptr_t)p->base;

	return a >= b && a - b < p->size;
}

static struct hak_pool *pool_of(struct hak_client *c, const void *ptr)
{
	struct hak_pool *p = hak_pool_current(c);
	unsigned n;

	if (p && in_pool(p, ptr))
		return p;
	n = hak_npools(c);
	for (unsigned i = 0; i < n; i++)
		if (in_pool(c->pools[i], ptr))
			return c->pools[i];
	return NULL;
}

/* Every free divides by the slot size: a shift where it is a power of two
 * (a 64-bit division costs tens of cycles). */
static uint32_t slot_div(const struct hak_class_rt *k, uint64_t rel)
{
	return (uint32_t)(k->slot_shift ? rel >> k->slot_shift : rel / k->slot_size);
}

static uint64_t slot_rem(const struct hak_class_rt *k, uint64_t rel)
{
	return k->slot_shift ? rel & (k->slot_size - 1) : rel % k->slot_size;
}

/* Finds the class and slot ptr starts; -EINVAL when it is not the start of
 * a slot or size does not fit it. */
static int slot_of(struct hak_pool *p, const void *ptr, size_t size, struct hak_class_rt **kp,
		   uint32_t *slot)
{
	uint64_t off = (uintptr_t)ptr - (uintptr_t)p->base;

	for (unsigned i = 0; i < p->nclasses; i++) {
		struct hak_class_rt *k = &p->cls[i];
		uint64_t start = p->hdr.cls[i].pool_offset;

		if (off < start || off - start >= k->slot_size * k->nslots)
			continue;
		if (slot_rem(k, off - start) || size > k->slot_size)
			return -EINVAL;
		*kp = k;
		*slot = slot_div(k, off - start);
		return 0;
	}
	return -EINVAL;
}

HAK_EXPORT int hak_slot_of(struct hak_client *c, const void *ptr, void **base, size_t *size)
{
	struct hak_pool *p;
	uint64_t off;

	if (!c || !base || !size)
		return -EINVAL;
	p = pool_of(c, ptr);
	if (!p)
		return -ENOENT;
	off = (uintptr_t)ptr - (uintptr_t)p->base;
	for (unsigned i = 0; i < p->nclasses; i++) {
		const struct hak_class_rt *k = &p->cls[i];
		uint64_t start = p->hdr.cls[i].pool_offset;

		if (off < start || off - start >= k->slot_size * k->nslots)
			continue;
		*base = k->base + (off - start) / k->slot_size * k->slot_size;
		*size = k->slot_size;
		return 0;
	}
	return -ENOENT;
}

/* Takes the slot back from the caller; a slot not held (freed twice, or
 * never handed out) is refused, so it cannot enter a ring twice. */
static int slot_release(struct hak_class_rt *k, uint32_t slot, hak_desc_t *d)
{
	uint64_t st = __atomic_load_n(&k->slot_state[slot], __ATOMIC_RELAXED);

	do {
		if (!(st & HAK_SLOT_HELD))
			return -EINVAL;
	} while (!__atomic_compare_exchange_n(&k->slot_state[slot], &st, st & ~HAK_SLOT_HELD, 0,
					      __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	*d = hak_desc_make(slot, (uint32_t)st);
	return 0;
}

static void after_returns(struct hak_client *c, struct hak_pool *p, struct hak_class_rt *k,
			  uint32_t n)
{
	uint32_t since = __atomic_add_fetch(&k->since_bell, n, __ATOMIC_RELAXED);

	if (since >= k->ret_batch && doorbell(c, p))
		__atomic_store_n(&k->since_bell, 0, __ATOMIC_RELAXED);
}

/*
 * The local cache keeps half its capacity for this client's own use (zeroed
 * inline when the ready ring runs dry, handed back as is to dirty-ok
 * callers) and sends what is above that to the daemon in batches of
 * return_batch, or RETURN_PUSH_MAX if fewer, oldest first.  Returning only
 * on overflow would starve the daemon: once the ready ring is dry,
 * allocations drain the cache, frees refill it, and nothing would ever go
 * back to be zeroed off this thread.  The doorbell waits for return_batch
 * returns (after_returns), which may be many pushes: the daemon also finds
 * them when it looks by itself.
 */
#define RETURN_PUSH_MAX 32u

static uint32_t cache_keep(const struct hak_class_rt *k)
{
	return hak_ring_entries(&k->local) / 2;
}

static uint32_t cache_return_at(const struct hak_class_rt *k)
{
	uint32_t n = hak_ring_entries(&k->local) - cache_keep(k);

	if (k->ret_batch && k->ret_batch < n)
		n = k->ret_batch;
	return cache_keep(k) + (n < RETURN_PUSH_MAX ? n : RETURN_PUSH_MAX);
}

/* Moves cached slots above the keep mark, plus *extra (a slot the full
 * cache could not take) if given, to the return ring in one push. */
static void return_batch(struct hak_client *c, struct hak_pool *p, struct hak_class_rt *k,
			 const hak_desc_t *extra)
{
	hak_desc_t batch[HAK_LOCAL_CACHE_MAX / 2 + 1];
	uint32_t n = 0, want = cache_return_at(k) - cache_keep(k);

	uint32_t above = hak_ring_count(&k->local);

	above = above > cache_keep(k) ? above - cache_keep(k) : 0;
	if (want > above)
		want = above;
	if (want)
		n = hak_ring_pop_mc_n(&k->local, batch, want);
	if (extra)
		batch[n++] = *extra;
	if (n == 0)
		return;
	if (hak_ring_push_mp(&k->ret, batch, n)) {
		hak_count_n(c, p, HAK_CNT_RETURNED, n);
		after_returns(c, p, k, n);
		return;
	}
	/* The return ring holds every slot of the class, so it is only full
	 * when the daemon has stopped consuming: give the memory back. */
	for (uint32_t i = 0; i < n; i++)
		hak_pool_remove_slot(k, hak_desc_slot(batch[i]));
}

static void cache_put(struct hak_client *c, struct hak_pool *p, struct hak_class_rt *k,
		      hak_desc_t d)
{
	if (!hak_ring_push_mp(&k->local, &d, 1))
		return_batch(c, p, k, &d);
	else if (hak_ring_count(&k->local) >= cache_return_at(k))
		return_batch(c, p, k, NULL);
}

void hak_tc_spill(struct hak_client *c, struct hak_pool *p, struct hak_class_rt *k,
		  const hak_desc_t *d, uint32_t n)
{
	if (n == 0)
		return;
	/* One push for the whole spill when the shared cache has room. */
	if (!hak_ring_push_mp(&k->local, d, n)) {
		for (uint32_t i = 0; i < n; i++)
			cache_put(c, p, k, d[i]);
		return;
	}
	/* Each batch moves at least one slot: bounded by n. */
	for (uint32_t i = 0; i < n && hak_ring_count(&k->local) >= cache_return_at(k); i++)
		return_batch(c, p, k, NULL);
}

/* A full stack sends its older half to the shared cache in one push. */
static void tc_put(struct hak_client *c, struct hak_pool *p, struct hak_class_rt *k,
		   struct hak_tc_class *tk, hak_desc_t d)
{
	if (tk->ndirty == tk->cap) {
		uint32_t half = tk->cap / 2;

		hak_tc_spill(c, p, k, tk->dirty, half);
		memmove(tk->dirty, tk->dirty + half, (tk->ndirty - half) * sizeof(d));
		tk->ndirty -= half;
	}
	tk->dirty[tk->ndirty++] = d;
}

static int pool_free(struct hak_client *c, struct hak_pool *p, void *ptr, size_t size)
{
	struct hak_tcache *t;
	struct hak_class_rt *k;
	hak_desc_t d;
	uint32_t slot;
	int r;

	/* Fork child: the parent's pool is not mapped here; nothing to do. */
	if (__atomic_load_n(&p->absent, __ATOMIC_RELAXED))
		return 0;
	r = slot_of(p, ptr, size, &k, &slot);
	if (r == 0)
		r = slot_release(k, slot, &d);
	if (r < 0)
		return r;
	/* Pairs with the release store in hak_pool_retire. */
	if (__atomic_load_n(&p->dead, __ATOMIC_ACQUIRE)) {
		hak_count(c, p, HAK_CNT_FREE_POOL);
		hak_pool_remove_slot(k, slot);
		return 0;
	}
	t = hak_tcache_of(c, p);
	if (t && t->cls[k - p->cls].cap) {
		hak_tc_count(t, HAK_CNT_FREE_POOL);
		tc_put(c, p, k, &t->cls[k - p->cls], d);
		return 0;
	}
	hak_count(c, p, HAK_CNT_FREE_POOL);
	cache_put(c, p, k, d);
	return 0;
}

HAK_EXPORT int hak_free(struct hak_client *c, void *ptr, size_t size)
{
	struct hak_pool *p;
	int r;

	if (!c)
		return -EINVAL;
	if (!ptr)
		return 0;
	if (size == 0)
		return -EINVAL;
	p = pool_of(c, ptr);
	if (p)
		return pool_free(c, p, ptr, size);
	if (size > SIZE_MAX - HAK_PAGE_SIZE)
		return -EINVAL;
	/* Outside every pool: only a fallback this handle mapped, whole. */
	r = hak_fallback_unmap(c, ptr, hak_page_round(size));
	if (r < 0)
		return r;
	hak_count(c, hak_pool_current(c), HAK_CNT_FREE_MMAP);
	return 0;
}
