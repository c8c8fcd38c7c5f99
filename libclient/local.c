/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Local mode (DESIGN "Local mode"): the pool, rings and hot path of shared
 * mode over private anonymous memory, with the daemon's side of the rings
 * played by this library's monitor thread, at low priority: it takes the
 * slots the hot path returned, zeroes them in place, and keeps each ready
 * ring at its ready target, which starts small and grows between the
 * watermarks as the hot path drains it (elastic, hak_geom.h).  What is
 * queued is populated in the background with MADV_POPULATE_WRITE through
 * the handle's io_uring (prefault.c), so the hot path finds its page
 * tables in place and never zeroes, and the process holds what it uses.
 *
 * Private memory is copy-on-write across fork(): a child keeps its local
 * pool, and the monitor it restarts on first need services it.
 *
 * Everything here runs with c->lock held, except the child reset (only one
 * thread exists then) and the destruction of the handle.
 */
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hak_geom.h"
#include "hak_size.h"
#include "internal.h"

/* Pool size, classes and watermarks when hak_client_set_pool_size() left
 * them to the daemon: the daemon's defaults (hak_geom.h), so that both modes
 * hold the same memory.  The hot path rings below the low watermark, the
 * monitor queues up to the high one. */
#define HAK_LOCAL_RETURN_BATCH 32u
/* Bytes the monitor zeroes per round before it looks at its other work
 * (and lets a fork or a connect take the lock): about a millisecond. */
#define HAK_LOCAL_ZERO_BUDGET (8 * MIB)
/* The pool is mapped at this alignment, so that classes whose slots are
 * huge-page multiples start on huge-page boundaries. */
#define HAK_LOCAL_ALIGN (2 * MIB)

/* The daemon side of one class: private, never in a ring's shared part. */
struct hak_local_class {
	uint32_t ready_tail; /* our producer index of the ready ring */
	uint32_t ret_head;   /* our consumer index of the return ring */
	uint32_t low, high;  /* ready ring watermarks, in slots */
	uint32_t target;     /* elastic: slots kept ready now, in [initial, high] */
	uint32_t initial;
	uint32_t filled;    /* slots on the ring after the last fill */
	uint32_t *gen;	    /* generation each slot was last queued with */
	uint32_t *returned; /* stack: taken back, dirty */
	uint32_t nreturned;
	uint32_t *clean; /* stack: zeroed or never touched, not queued */
	uint32_t nclean;
};

struct hak_local {
	size_t priv_size; /* bytes of the mapping this struct starts */
	void *map;	  /* the pool reservation, alignment slack included */
	size_t map_size;
	uint64_t zeroed; /* slots zeroed, for hak_client_get_stats */
	struct hak_local_class cls[HAK_MAX_CLASSES];
};

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static unsigned local_geometry(uint64_t pool_bytes, struct hak_class_geom *g)
{
	static const struct hak_geom_params p = {
		.ready_low_pct = HAK_DEFAULT_READY_LOW_PCT,
		.return_batch = HAK_LOCAL_RETURN_BATCH,
		.max_slots = HAK_LOCAL_MAX_SLOTS,
	};

	if (pool_bytes == 0)
		pool_bytes = HAK_DEFAULT_POOL_SIZE;
	return hak_geometry(hak_default_classes, HAK_DEFAULT_NCLASSES, pool_bytes, &p, g);
}

/* ---- the daemon side's state ---- */

static size_t local_state_size(const struct hak_ctrl_hdr *h)
{
	size_t off = align_up(sizeof(struct hak_local), HAK_CACHELINE);

	for (unsigned i = 0; i < h->nclasses; i++)
		off += 3 * align_up((size_t)h->cls[i].nslots * sizeof(uint32_t), HAK_CACHELINE);
	return (size_t)hak_page_round(off);
}

static uint32_t *carve(char **cursor, uint32_t n)
{
	uint32_t *v = (uint32_t *)*cursor;

	*cursor += align_up((size_t)n * sizeof(uint32_t), HAK_CACHELINE);
	return v;
}

/* A fresh private mapping reads as zero: every slot starts clean, pushed
 * backwards so that slots go out in address order. */
static struct hak_local *local_state_new(const struct hak_ctrl_hdr *h)
{
	size_t size = local_state_size(h);
	struct hak_local *loc = hak_map_private(size, MAP_POPULATE);
	char *cursor;

	if (!loc)
		return NULL;
	loc->priv_size = size;
	cursor = (char *)loc + align_up(sizeof(*loc), HAK_CACHELINE);
	for (unsigned i = 0; i < h->nclasses; i++) {
		struct hak_local_class *lc = &loc->cls[i];
		uint32_t n = h->cls[i].nslots;

		lc->gen = carve(&cursor, n);
		lc->returned = carve(&cursor, n);
		lc->clean = carve(&cursor, n);
		for (uint32_t k = n; k-- > 0;)
			lc->clean[lc->nclean++] = k;
		lc->low = h->cls[i].ready_low;
		lc->high = hak_geom_watermark(HAK_DEFAULT_READY_HIGH_PCT, n);
		lc->initial = hak_geom_initial_target(h->cls[i].slot_size, h->nclasses, lc->high);
		lc->target = lc->initial;
	}
	return loc;
}

/* ---- servicing: what hakzerod does for a shared pool ---- */

/* The hot path is trusted (it is this process), but a descriptor is still
 * checked: a stale one must never queue a slot twice. */
static void collect_returns(struct hak_pool *p, unsigned i)
{
	struct hak_class_rt *k = &p->cls[i];
	struct hak_local_class *lc = &p->loc->cls[i];
	int64_t n = hak_ring_sc_avail(&k->ret, lc->ret_head);

	for (int64_t j = 0; j < n; j++) {
		hak_desc_t d = hak_ring_load_entry(&k->ret, lc->ret_head + (uint32_t)j);
		uint32_t slot = hak_desc_slot(d);

		if (slot < k->nslots && hak_desc_gen(d) == lc->gen[slot] &&
		    lc->nreturned < k->nslots)
			lc->returned[lc->nreturned++] = slot;
	}
	if (n > 0) {
		lc->ret_head += (uint32_t)n;
		hak_ring_sc_release(&k->ret, lc->ret_head);
	}
}

/* Zeroes returned slots in place, at most budget bytes; returns what is
 * left of the budget.  The pages stay mapped: the next user does not
 * fault. */
static uint64_t zero_returned(struct hak_pool *p, unsigned i, uint64_t budget)
{
	struct hak_class_rt *k = &p->cls[i];
	struct hak_local_class *lc = &p->loc->cls[i];

	while (lc->nreturned > 0 && budget >= k->slot_size) {
		uint32_t slot = lc->returned[--lc->nreturned];

		memset(k->base + (uint64_t)slot * k->slot_size, 0, k->slot_size);
		lc->clean[lc->nclean++] = slot;
		/* Read without the lock by hak_client_get_stats. */
		__atomic_store_n(&p->loc->zeroed, p->loc->zeroed + 1, __ATOMIC_RELAXED);
		budget -= k->slot_size;
	}
	return budget;
}

static uint32_t ready_queued(struct hak_pool *p, unsigned i)
{
	int64_t space = hak_ring_sp_space(&p->cls[i].ready, p->loc->cls[i].ready_tail);

	return space < 0 ? 0 : hak_ring_entries(&p->cls[i].ready) - (uint32_t)space;
}

/* Elastic: the hot path took the ring below the low level of the target
 * since the last fill, so the target doubles (up to high) and the level
 * at which it rings with it. */
static void grow_target(struct hak_pool *p, unsigned i, uint32_t queued)
{
	struct hak_local_class *lc = &p->loc->cls[i];

	if (queued < lc->filled && queued < hak_geom_target_low(lc->target, lc->low, lc->high))
		lc->target = hak_geom_target_step(lc->target, true, lc->initial, lc->high);
	hak_store_relaxed(&p->sync->ready_low[i],
			  hak_geom_target_low(lc->target, lc->low, lc->high));
}

static void fill_ready(struct hak_pool *p, unsigned i)
{
	struct hak_class_rt *k = &p->cls[i];
	struct hak_local_class *lc = &p->loc->cls[i];
	uint32_t queued = ready_queued(p, i), n = 0;

	grow_target(p, i, queued);
	while (queued + n < lc->target && lc->nclean > 0) {
		uint32_t slot = lc->clean[--lc->nclean];

		lc->gen[slot]++;
		hak_ring_sp_put(&k->ready, &lc->ready_tail, hak_desc_make(slot, lc->gen[slot]));
		n++;
	}
	if (n > 0)
		hak_ring_sp_publish(&k->ready, lc->ready_tail);
	lc->filled = queued + n;
}

static bool class_pending(struct hak_pool *p, unsigned i)
{
	struct hak_local_class *lc = &p->loc->cls[i];

	return hak_ring_sc_avail(&p->cls[i].ret, lc->ret_head) != 0 || lc->nreturned > 0 ||
	       (ready_queued(p, i) < hak_geom_target_low(lc->target, lc->low, lc->high) &&
		lc->nclean > 0);
}

static bool pool_pending(struct hak_pool *p)
{
	for (unsigned i = 0; i < p->nclasses; i++)
		if (class_pending(p, i))
			return true;
	return false;
}

static struct hak_pool *live_local(struct hak_client *c)
{
	struct hak_pool *p = c->cur;

	return p && p->local ? p : NULL;
}

bool hak_local_service(struct hak_client *c)
{
	struct hak_pool *p = live_local(c);
	uint64_t budget = HAK_LOCAL_ZERO_BUDGET;

	if (!p)
		return false;
	for (unsigned i = 0; i < p->nclasses; i++)
		collect_returns(p, i);
	/* Largest classes last: small slots are asked for most often. */
	for (unsigned i = 0; i < p->nclasses; i++)
		budget = zero_returned(p, i, budget);
	for (unsigned i = 0; i < p->nclasses; i++)
		fill_ready(p, i);
	/* Arm the doorbell, then look again, as hakzerod does (see
	 * session_service): a free that pushed between our last look and this
	 * exchange saw 0 and did not ring.  Pairs with the hot path's
	 * exchange in doorbell(). */
	hak_xchg_acq_rel(&p->sync->want_doorbell, 1);
	return pool_pending(p);
}

bool hak_local_pending(struct hak_client *c)
{
	struct hak_pool *p = live_local(c);

	return p && pool_pending(p);
}

int hak_local_fd(struct hak_client *c)
{
	struct hak_pool *p = live_local(c);

	return p ? p->doorbell_fd : -1;
}

/* ---- creating, retiring, destroying ---- */

static void local_unmap(void *ctrl, size_t ctrl_size, void *map, size_t map_size)
{
	if (ctrl)
		HAK_SYSCALL(munmap(ctrl, ctrl_size));
	if (map)
		HAK_SYSCALL(munmap(map, map_size));
}

/* The pool, aligned: the slack stays reserved and is never touched. */
static void *map_pool(uint64_t size, void **map, size_t *map_size)
{
	*map_size = (size_t)(size + HAK_LOCAL_ALIGN);
	*map = hak_map_private(*map_size, MAP_NORESERVE);
	if (!*map)
		return NULL;
	return (void *)align_up((uintptr_t)*map, HAK_LOCAL_ALIGN);
}

static struct hak_pool *local_build(const struct hak_ctrl_hdr *h, void *ctrl, void *base,
				    struct hak_local *loc)
{
	struct hak_pool *p = hak_pool_build(h, ctrl, base);
	int fd;

	if (!p)
		return NULL;
	fd = HAK_SYSCALL(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
	if (fd < 0) {
		HAK_SYSCALL(munmap(p, p->priv_size));
		return NULL;
	}
	p->doorbell_fd = fd;
	p->local = true;
	p->loc = loc;
	for (unsigned i = 0; i < p->nclasses; i++)
		p->cls[i].punch_advice = MADV_DONTNEED;
	return p;
}

static int local_create(struct hak_client *c, struct hak_pool **out)
{
	struct hak_class_geom g[HAK_MAX_CLASSES];
	struct hak_ctrl_hdr h;
	struct hak_local *loc = NULL;
	void *ctrl, *map = NULL, *base = NULL;
	size_t map_size = 0;
	int r = hak_layout_compute(&h, g, local_geometry(c->pool_bytes, g), 0);

	if (r < 0)
		return r;
	ctrl = hak_map_private(h.ctrl_size, MAP_POPULATE);
	if (ctrl)
		base = map_pool(h.pool_size, &map, &map_size);
	if (base)
		loc = local_state_new(&h);
	if (loc) {
		memcpy(ctrl, &h, sizeof(h));
		*out = local_build(&h, ctrl, base, loc);
		if (*out) {
			loc->map = map;
			loc->map_size = map_size;
			return 0;
		}
		HAK_SYSCALL(munmap(loc, loc->priv_size));
	}
	local_unmap(ctrl, h.ctrl_size, map, map_size);
	return -ENOMEM;
}

static void publish(struct hak_client *c, struct hak_pool *p)
{
	unsigned n = c->npools;

	c->pools[n] = p;
	/* Pairs with hak_npools: pools[n] is set before a reader may look. */
	__atomic_store_n(&c->npools, n + 1, __ATOMIC_RELEASE);
	/* Pairs with hak_pool_current: the pool is complete before it is seen. */
	__atomic_store_n(&c->cur, p, __ATOMIC_RELEASE);
}

int hak_local_ensure_locked(struct hak_client *c)
{
	struct hak_pool *p;
	int r;

	if (c->cur)
		return 0;
	if (c->npools >= HAK_MAX_POOLS) {
		hak_err(c, "%d pools used up; no local pool", HAK_MAX_POOLS);
		return -ENOSPC;
	}
	r = local_create(c, &p);
	if (r < 0) {
		hak_err(c, "cannot make a local pool (error %d)", -r);
		return r;
	}
	for (unsigned i = 0; i < p->nclasses; i++)
		fill_ready(p, i);
	publish(c, p);
	hak_info(c, "local pool of %zu bytes, %u classes", p->size, p->nclasses);
	hak_prefault_start(c, p);
	hak_monitor_wake(c);
	return 0;
}

/* Called after hak_pool_retire emptied the rings: the slots the monitor
 * still holds (dirty or clean) give their memory back too.  Only those: a
 * slot a thread may have popped is not ours to drop. */
void hak_local_retire(struct hak_client *c, struct hak_pool *p)
{
	for (unsigned i = 0; i < p->nclasses; i++) {
		struct hak_local_class *lc = &p->loc->cls[i];

		while (lc->nreturned > 0)
			hak_pool_remove_slot(&p->cls[i], lc->returned[--lc->nreturned]);
		while (lc->nclean > 0)
			hak_pool_remove_slot(&p->cls[i], lc->clean[--lc->nclean]);
	}
	hak_prefault_stop(c, p);
}

/* Producers of a parent thread that reserved ring entries but had not
 * published them when fork() copied the memory do not exist here: drop
 * their entries (the slots leak in the child), or the next push would
 * wait for them forever. */
static void repair_ring(struct hak_ring *r)
{
	uint32_t tail = hak_load_relaxed(&r->s->tail);

	hak_store_relaxed(&r->s->reserve, tail);
}

void hak_local_reset_in_child(struct hak_pool *p)
{
	for (unsigned i = 0; i < p->nclasses; i++) {
		repair_ring(&p->cls[i].ret);
		repair_ring(&p->cls[i].local);
	}
	/* The eventfd is the parent's object too: its monitor must not hear
	 * our doorbells. */
	if (p->doorbell_fd >= 0)
		close(p->doorbell_fd);
	p->doorbell_fd = HAK_SYSCALL(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
	/* The monitor that will service the pool starts with a round of
	 * work: until then, frees need not ring. */
	hak_store_relaxed(&p->sync->want_doorbell, 0);
}

uint64_t hak_local_zeroed(const struct hak_pool *p)
{
	return p->local ? __atomic_load_n(&p->loc->zeroed, __ATOMIC_RELAXED) : 0;
}

void hak_local_pool_destroy(struct hak_pool *p)
{
	struct hak_local *loc = p->loc;

	if (p->doorbell_fd >= 0)
		close(p->doorbell_fd);
	local_unmap(p->ctrl, p->ctrl_size, loc->map, loc->map_size);
	HAK_SYSCALL(munmap(loc, loc->priv_size));
	HAK_SYSCALL(munmap(p, p->priv_size));
}
