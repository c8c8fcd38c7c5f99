/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Asynchronous prefault of a new pool (DESIGN "Shared mode" 2): the pool
 * mapping is populated with MADV_POPULATE_WRITE in chunks through the
 * handle's own small io_uring, so the page tables are in place before the
 * hot path touches the slots, and the memory is charged to this process.
 * The connecting thread only submits; the monitor thread reaps completions
 * and submits the next chunks.  Without io_uring (an old kernel, a seccomp
 * filter, io_uring_disabled) the monitor madvises one chunk per loop turn.
 *
 * Everything here runs with c->lock held.
 */
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

/* Submission queue depth: enough to keep the io-wq workers busy on a small
 * machine without pinning much memory. */
#define HAK_URING_DEPTH 8u
/* Bytes one request populates: large enough that submission costs nothing,
 * small enough that a request does not hold the mm lock for long. */
#define HAK_PREFAULT_CHUNK (2ull << 20)

static bool use_uring(const struct hak_prefault *pf)
{
	return pf->uring_ready && !pf->uring_failed;
}

bool hak_prefault_sync_pending(struct hak_client *c)
{
	return c->pf.pool && !use_uring(&c->pf);
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

static uint64_t chunk_len(const struct hak_pool *p, uint64_t off)
{
	uint64_t left = p->size - off;

	return left < HAK_PREFAULT_CHUNK ? left : HAK_PREFAULT_CHUNK;
}

/* Queues chunks while there is room in the ring, then submits them all at
 * once; never waits. */
static void prefault_submit(struct hak_client *c)
{
	struct hak_prefault *pf = &c->pf;
	uint64_t start = pf->next;
	unsigned queued = 0;
	int saved = errno, r;

	while (pf->pool && pf->next < pf->pool->size && pf->inflight + queued < HAK_URING_DEPTH) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&pf->ring);
		uint64_t len = chunk_len(pf->pool, pf->next);

		if (!sqe)
			break;
		io_uring_prep_madvise(sqe, pf->pool->base + pf->next, (off_t)len,
				      MADV_POPULATE_WRITE);
		pf->next += len;
		queued++;
	}
	if (queued == 0)
		return;
	r = io_uring_submit(&pf->ring);
	errno = saved;
	if (r < 0) {
		/* Nothing was submitted: the monitor does these chunks itself. */
		pf->next = start;
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
	uint64_t off = pf->next, len = chunk_len(p, off);
	int r;

	pf->next += len;
	if (pf->next >= p->size)
		pf->pool = NULL;
	pthread_mutex_unlock(&c->lock);
	r = HAK_SYSCALL(madvise(p->base + off, len, MADV_POPULATE_WRITE));
	pthread_mutex_lock(&c->lock);
	if (r < 0 && pf->pool == p) {
		hak_dbg(c, "prefault stopped (error %d)", -r);
		pf->pool = NULL;
	}
}

void hak_prefault_start(struct hak_client *c, struct hak_pool *p)
{
	struct hak_prefault *pf = &c->pf;

	pf->pool = p;
	pf->next = 0;
	if (!pf->uring_ready && !pf->uring_failed)
		uring_setup(c);
	if (use_uring(pf))
		prefault_submit(c);
}

/* The handle dies: wait for what is in flight (it writes into mappings we
 * are about to remove), then close the ring. */
void hak_prefault_fini(struct hak_client *c)
{
	struct hak_prefault *pf = &c->pf;
	struct io_uring_cqe *cqe;
	int saved = errno;

	pf->pool = NULL;
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
