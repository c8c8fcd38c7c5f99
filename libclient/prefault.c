/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Prefault of what the ready rings hold (DESIGN "Shared mode" 2, elastic):
 * a pool starts sparse, and only the slots queued on a ready ring, that
 * is, the ones the hot path is about to take, are populated with
 * MADV_POPULATE_WRITE, in runs of adjacent slots, through the handle's own
 * small io_uring.  So the page tables are in place before the hot path
 * touches a slot, the memory is charged to this process, and the process
 * holds what it uses plus the ready target, not the whole pool.
 *
 * The monitor looks at the ready rings: in local mode after each round of
 * its own servicing, in shared mode when hakzerod says QUEUED (it queued
 * slots that were never populated) and on a timer that backs off while
 * nothing new arrives (for a daemon that does not say it).  A class is
 * followed only once the hot path has taken some of it (HAK_PREFAULT_AFTER
 * bytes, or a few large slots), and the io_uring is set up when the first
 * chunk is queued: a short program whose allocator takes a slot or two
 * pays for neither, and its first slots fault on touch as they would
 * without the pool.  A slot is populated once per pool; one the daemon
 * trimmed since faults on first touch.  Without io_uring (an old kernel,
 * a seccomp filter, io_uring_disabled) the monitor madvises one chunk per
 * loop turn.
 *
 * Everything here runs with c->lock held.
 */
#include <limits.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

/* Submission queue depth: enough to keep the io-wq workers busy on a small
 * machine without pinning much memory. */
#define HAK_URING_DEPTH 8u
/* Bytes one request populates at most: large enough that submission costs
 * nothing, small enough that a request does not hold the mm lock for long. */
#define HAK_PREFAULT_CHUNK (2ull << 20)
/* Classes of slots up to HAK_PREFAULT_SMALL_MAX are followed once the hot
 * path has taken HAK_PREFAULT_AFTER bytes of them.  Measured on a program
 * of 2 MiB started many times (hakbench apps, short program): following
 * at once populated 1 MiB of small slots it never took, and set up the
 * io_uring for it: 0.4 ms of the 1.1 ms a start cost over stock jemalloc.
 * A larger slot costs hundreds of faults to populate, worth it only if it
 * will be taken: its class is followed once the hot path has taken
 * HAK_PREFAULT_BIG_AFTER of its slots.  Measured on a program of 2 MiB
 * whose jemalloc takes two 2 MiB extents and keeps them: following at once
 * costs it 4 MiB more resident than this; the slots it takes fault as they
 * would without the pool. */
#define HAK_PREFAULT_SMALL_MAX (64ull << 10)
#define HAK_PREFAULT_AFTER (256ull << 10)
#define HAK_PREFAULT_BIG_AFTER 3u
/* Shared mode: the daemon queues slots when it likes, so the monitor looks
 * again after MIN while slots keep arriving, and backs off, doubling, to
 * MAX while none do: an idle process wakes a few times a second. */
#define HAK_SCAN_MIN_MS 1u
#define HAK_SCAN_MAX_MS 256u
#define HAK_NS_PER_MS 1000000ull

static bool use_uring(const struct hak_prefault *pf)
{
	return pf->uring_ready && !pf->uring_failed;
}

bool hak_prefault_sync_pending(struct hak_client *c)
{
	return c->pf.pool && !use_uring(&c->pf) && c->pf.qn > 0;
}

int hak_prefault_fd(struct hak_client *c)
{
	return c->pf.uring_ready ? c->pf.efd : -1;
}

static void uring_setup(struct hak_client *c)
{
	struct hak_prefault *pf = &c->pf;
	int saved = errno, r;

	r = io_uring_queue_init(HAK_URING_DEPTH, &pf->ring, 0);
	if (r < 0)
		goto fail;
	pf->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r = pf->efd < 0 ? -errno : io_uring_register_eventfd(&pf->ring, pf->efd);
	if (r < 0) {
		io_uring_queue_exit(&pf->ring);
		if (pf->efd >= 0)
			close(pf->efd);
		pf->efd = -1;
		goto fail;
	}
	pf->uring_ready = true;
	errno = saved;
	return;
fail:
	errno = saved;
	pf->uring_failed = true;
	hak_dbg(c, "no io_uring (error %d): prefaulting from the monitor thread", -r);
}

static bool pf_queue_full(const struct hak_prefault *pf)
{
	return pf->qn == HAK_PF_QUEUE;
}

static struct hak_pf_range *pf_queue_at(struct hak_prefault *pf, unsigned i)
{
	return &pf->q[(pf->qhead + i) % HAK_PF_QUEUE];
}

/* Appends [off, off + len), merged with the last range when adjacent.
 * Returns false when the queue is full. */
static bool pf_queue_add(struct hak_prefault *pf, uint64_t off, uint64_t len)
{
	if (pf->qn > 0) {
		struct hak_pf_range *last = pf_queue_at(pf, pf->qn - 1);

		if (last->off + last->len == off) {
			last->len += len;
			return true;
		}
	}
	if (pf_queue_full(pf))
		return false;
	*pf_queue_at(pf, pf->qn++) = (struct hak_pf_range){off, len};
	return true;
}

/* Takes the next chunk of at most HAK_PREFAULT_CHUNK bytes off the queue. */
static bool pf_queue_take(struct hak_prefault *pf, struct hak_pf_range *out)
{
	struct hak_pf_range *first;

	if (pf->qn == 0)
		return false;
	first = pf_queue_at(pf, 0);
	out->off = first->off;
	out->len = first->len < HAK_PREFAULT_CHUNK ? first->len : HAK_PREFAULT_CHUNK;
	first->off += out->len;
	first->len -= out->len;
	if (first->len == 0) {
		pf->qhead = (pf->qhead + 1) % HAK_PF_QUEUE;
		pf->qn--;
	}
	pf->populated += out->len;
	return true;
}

static void pf_queue_clear(struct hak_prefault *pf)
{
	pf->qhead = 0;
	pf->qn = 0;
}

static bool slot_done(const struct hak_class_rt *k, uint32_t slot)
{
	return k->pf_done[slot / CHAR_BIT] & (1u << (slot % CHAR_BIT));
}

static void slot_mark(struct hak_class_rt *k, uint32_t slot)
{
	k->pf_done[slot / CHAR_BIT] |= (uint8_t)(1u << (slot % CHAR_BIT));
}

/* Whether the hot path has taken enough of class k (head: the ready ring's
 * consumer index now) for its queued slots to be worth populating. */
static bool followed(const struct hak_class_rt *k, uint32_t head)
{
	uint32_t taken = head - k->pf_head0;

	if (k->slot_size > HAK_PREFAULT_SMALL_MAX)
		return taken >= HAK_PREFAULT_BIG_AFTER;
	return (uint64_t)taken * k->slot_size >= HAK_PREFAULT_AFTER;
}

/* Queues the slots of class k that arrived on its ready ring since the
 * last look and were never populated.  The entries are read without
 * taking them: one a thread pops meanwhile, or one the daemon writes over
 * after that, only makes us populate some other slot of ours, which
 * changes no byte.  Returns whether it queued anything. */
static bool scan_class(struct hak_pool *p, struct hak_class_rt *k, struct hak_prefault *pf)
{
	uint32_t head = hak_load_relaxed(&k->ready.s->head);
	/* Pairs with the producer's release store of tail. */
	uint32_t tail = hak_load_acquire(&k->ready.s->tail);
	uint32_t i = k->pf_seen;
	bool queued = false;

	if (!followed(k, head))
		return false;
	if (tail - head > hak_ring_entries(&k->ready))
		return false; /* a torn snapshot: next time */
	if ((int32_t)(head - i) > 0 || (int32_t)(tail - i) < 0)
		i = head;
	for (; i != tail; i++) {
		uint32_t slot = hak_desc_slot(hak_ring_load_entry(&k->ready, i));
		uint64_t off = (uint64_t)(k->base - p->base) + (uint64_t)slot * k->slot_size;

		if (slot >= k->nslots || slot_done(k, slot))
			continue;
		if (!pf_queue_add(pf, off, k->slot_size))
			break;
		slot_mark(k, slot);
		queued = true;
	}
	k->pf_seen = i;
	return queued;
}

static bool scan(struct hak_client *c)
{
	struct hak_prefault *pf = &c->pf;
	struct hak_pool *p = pf->pool;
	bool queued = false;

	for (unsigned i = 0; p && i < p->nclasses && !pf_queue_full(pf); i++)
		queued |= scan_class(p, &p->cls[i], pf);
	return queued;
}

/* Queues chunks while there is room in the ring, then submits them all at
 * once; never waits. */
static void prefault_submit(struct hak_client *c)
{
	struct hak_prefault *pf = &c->pf;
	struct hak_pf_range r;
	unsigned queued = 0;
	int saved = errno, res;

	while (pf->pool && pf->inflight + queued < HAK_URING_DEPTH && pf->qn > 0) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&pf->ring);

		if (!sqe || !pf_queue_take(pf, &r))
			break;
		io_uring_prep_madvise(sqe, pf->pool->base + r.off, (off_t)r.len,
				      MADV_POPULATE_WRITE);
		queued++;
	}
	if (queued == 0)
		return;
	res = io_uring_submit(&pf->ring);
	errno = saved;
	if (res < 0) {
		/* Nothing was submitted: those chunks stay unpopulated (they
		 * fault on first touch); the monitor does the rest itself. */
		pf->uring_failed = true;
		return;
	}
	pf->inflight += queued;
}

void hak_prefault_reap(struct hak_client *c)
{
	struct hak_prefault *pf = &c->pf;
	struct io_uring_cqe *cqe;
	uint64_t v;

	HAK_SYSCALL(read(pf->efd, &v, sizeof(v)));
	while (io_uring_peek_cqe(&pf->ring, &cqe) == 0) {
		int res = cqe->res;

		io_uring_cqe_seen(&pf->ring, cqe);
		pf->inflight--;
		if (res == -EINVAL || res == -EOPNOTSUPP) {
			/* This kernel cannot do it through io_uring. */
			pf->uring_failed = true;
		} else if (res < 0 && pf->pool) {
			/* E.g. a memory limit: the hot path faults instead. */
			hak_dbg(c, "prefault stopped (error %d)", -res);
			pf->pool = NULL;
			pf_queue_clear(pf);
		}
	}
	if (use_uring(pf))
		prefault_submit(c);
}

/* One chunk by hand; drops the lock meanwhile (a chunk takes about a
 * millisecond).  The pool stays mapped: only the handle's death, after the
 * monitor has stopped, unmaps it. */
void hak_prefault_sync_step(struct hak_client *c)
{
	struct hak_prefault *pf = &c->pf;
	struct hak_pool *p = pf->pool;
	struct hak_pf_range rg;
	int r;

	if (!p || !pf_queue_take(pf, &rg))
		return;
	pthread_mutex_unlock(&c->lock);
	r = HAK_SYSCALL(madvise(p->base + rg.off, rg.len, MADV_POPULATE_WRITE));
	pthread_mutex_lock(&c->lock);
	if (r < 0 && pf->pool == p) {
		hak_dbg(c, "prefault stopped (error %d)", -r);
		pf->pool = NULL;
		pf_queue_clear(pf);
	}
}

int hak_prefault_tick(struct hak_client *c, bool force)
{
	struct hak_prefault *pf = &c->pf;
	uint64_t now;

	if (!pf->pool)
		return -1;
	now = hak_now_ns();
	if (force || now >= pf->next_scan_ns) {
		bool found = scan(c);

		/* On first need: most short programs never get here. */
		if (found && !pf->uring_ready && !pf->uring_failed)
			uring_setup(c);
		if (found || pf->scan_ms == 0)
			pf->scan_ms = HAK_SCAN_MIN_MS;
		else if (pf->scan_ms < HAK_SCAN_MAX_MS)
			pf->scan_ms *= 2;
		pf->next_scan_ns = now + pf->scan_ms * HAK_NS_PER_MS;
		if (use_uring(pf))
			prefault_submit(c);
	}
	/* Local mode: the monitor queues the slots itself and looks after
	 * each round; no timer. */
	if (pf->pool->local)
		return -1;
	return pf->next_scan_ns <= now
		       ? 0
		       : (int)((pf->next_scan_ns - now + HAK_NS_PER_MS - 1) / HAK_NS_PER_MS);
}

void hak_prefault_start(struct hak_client *c, struct hak_pool *p)
{
	struct hak_prefault *pf = &c->pf;

	pf->pool = p;
	pf_queue_clear(pf);
	pf->scan_ms = 0;
	for (unsigned i = 0; i < p->nclasses; i++) {
		struct hak_class_rt *k = &p->cls[i];

		k->pf_head0 = hak_load_relaxed(&k->ready.s->head);
		k->pf_seen = k->pf_head0;
	}
	hak_prefault_tick(c, true);
}

void hak_prefault_stop(struct hak_client *c, struct hak_pool *p)
{
	if (c->pf.pool != p)
		return;
	c->pf.pool = NULL;
	pf_queue_clear(&c->pf);
}

/* The handle dies: wait for what is in flight (it writes into mappings we
 * are about to remove), then close the ring. */
void hak_prefault_fini(struct hak_client *c)
{
	struct hak_prefault *pf = &c->pf;
	struct io_uring_cqe *cqe;
	int saved = errno;

	pf->pool = NULL;
	pf_queue_clear(pf);
	if (!pf->uring_ready)
		return;
	while (pf->inflight > 0) {
		int r = io_uring_wait_cqe(&pf->ring, &cqe);

		if (r == -EINTR)
			continue;
		if (r < 0)
			break;
		io_uring_cqe_seen(&pf->ring, cqe);
		pf->inflight--;
	}
	io_uring_queue_exit(&pf->ring);
	close(pf->efd);
	pf->efd = -1;
	pf->uring_ready = false;
	errno = saved;
}

/* Fork child: the ring belongs to the parent.  Only its descriptors are
 * closed; its mappings are left alone, since whether they were inherited
 * depends on the kernel, and unmapping an address the child may reuse is
 * worse than leaking a few pages. */
void hak_prefault_forget(struct hak_client *c)
{
	struct hak_prefault *pf = &c->pf;

	if (pf->uring_ready) {
		close(pf->ring.ring_fd);
		close(pf->efd);
	}
	memset(pf, 0, sizeof(*pf));
	pf->efd = -1;
}
