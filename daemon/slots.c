/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The slot state machine of a session:
 *
 *   UNBACKED --queue--> OUT --return--> RETURNED --job--> ZEROING --> IDLE_ZERO
 *   IDLE_ZERO --queue--> OUT;   IDLE_ZERO --punch--> TRIMMING --> UNBACKED
 *
 * Every transition happens here, on the main thread, from private state.
 * What the client wrote (its ring index, its descriptors) is read once,
 * checked, and can only cost the client its own slots.  A client that must
 * be cut off is reported in a verdict; ending it is the caller's work.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "session.h"
#include "uring.h"
#include "util.h"
#include "zero.h"

#define OFFENCE_LOG_INTERVAL_NS NSEC_PER_SEC

/* Length of the run of consecutive slot numbers starting at v[i] whose
 * daemon mapping is (or is not, as v[i]'s) populated. */
static unsigned run_len(const struct session_class *c, const uint32_t *v, unsigned i, unsigned n)
{
	unsigned k = i + 1;

	while (k < n && v[k] == v[k - 1] + 1 && c->slot[v[k]].mapped == c->slot[v[i]].mapped)
		k++;
	return k - i;
}

/* ---- returns ---- */

static void offence(struct session *s, unsigned cls, hak_desc_t d)
{
	s->st.offences++;
	if (log_ratelimit(&s->offence_log, OFFENCE_LOG_INTERVAL_NS))
		log_session(LOG_WARNING, s,
			    "bad return descriptor: class %u slot %u generation %u (%llu offences)",
			    cls, hak_desc_slot(d), hak_desc_gen(d),
			    (unsigned long long)s->st.offences);
}

/* Only a slot the daemon handed out, with the generation it was handed out
 * with, comes back: anything else (out of range, never queued, returned
 * twice, stale) is an offence and changes nothing. */
static void accept_return(struct session *s, unsigned cls, hak_desc_t d)
{
	struct session_class *c = &s->cls[cls];
	uint32_t slot = hak_desc_slot(d);

	if (slot >= c->nslots || c->slot[slot].state != SLOT_OUT ||
	    c->slot[slot].gen != hak_desc_gen(d)) {
		offence(s, cls, d);
		return;
	}
	slot_set_state(c, slot, SLOT_RETURNED);
	slot_push(&c->returned, slot);
	s->st.returned++;
}

/* At most one ring's worth per call: bounded work per wakeup. */
static int collect_returns(struct session *s, unsigned cls)
{
	struct session_class *c = &s->cls[cls];
	int64_t avail = hak_ring_sc_avail(&c->ret, c->ret_head);

	if (avail < 0)
		return (int)avail;
	for (int64_t i = 0; i < avail; i++)
		accept_return(s, cls, hak_ring_load_entry(&c->ret, c->ret_head + (uint32_t)i));
	if (avail > 0) {
		c->ret_head += (uint32_t)avail;
		hak_ring_sc_release(&c->ret, c->ret_head);
	}
	return 0;
}

/* ---- zeroing ---- */

static void job_finish(struct zero_job *job)
{
	struct session *s = job->owner;

	s->jobs--;
	session_unref(s);
	free(job);
}

static void backed(void *arg, int res)
{
	struct zero_job *job = arg;
	struct session *s = job->owner;

	if (res < 0)
		log_msg(LOG_DEBUG, "client %u: backing for zeroing failed: %s", s->id,
			strerror(-res));
	if (--job->pending > 0)
		return;
	if (s->dead)
		job_finish(job);
	else
		zero_submit(job);
}

/* The daemon's mapping of a slot faults on first touch; let io_uring fill
 * those page tables off the worker, in runs of adjacent slots.  Only runs
 * whose pages are all in the pool already: populating a hole would
 * allocate a page charged to the daemon's cgroup, not the client's (the
 * worker punches such pages instead of writing them, see zero-workers.c). */
static void back_job(struct session *s, struct session_class *c, struct zero_job *job)
{
	for (unsigned i = 0; i < job->n;) {
		unsigned n = run_len(c, job->slot, i, job->n);
		uint32_t first = job->slot[i];
		char *at = c->base + first * c->slot_size;

		if (!c->slot[first].mapped && zero_all_resident(at, n * c->slot_size) &&
		    uring_populate(at, n * c->slot_size, backed, job) == 0)
			job->pending++;
		i += n;
	}
}

static unsigned job_slots(const struct session_class *c)
{
	uint64_t n = ZERO_JOB_BYTES / c->slot_size;

	return n < 1 ? 1 : n > ZERO_JOB_SLOTS ? ZERO_JOB_SLOTS : (unsigned)n;
}

static struct zero_job *new_job(struct session *s, unsigned cls)
{
	struct session_class *c = &s->cls[cls];
	struct zero_job *job = calloc(1, sizeof(*job));
	bool unbacked = false;

	if (!job)
		return NULL;
	job->owner = session_ref(s);
	job->base = c->base;
	job->fd = s->pool_fd;
	job->file_off = c->pool_off;
	job->slot_size = c->slot_size;
	job->cls = cls;
	while (job->n < job_slots(c) && c->returned.n > 0) {
		uint32_t slot = c->returned.v[--c->returned.n];

		slot_set_state(c, slot, SLOT_ZEROING);
		job->slot[job->n++] = slot;
		unbacked |= !c->slot[slot].mapped;
	}
	/* Sorted, slots to back make longer runs (back_job); once every slot
	 * is backed the order does not matter, and sorting costs more per
	 * slot than the bookkeeping around zeroing it. */
	if (unbacked)
		qsort(job->slot, job->n, sizeof(job->slot[0]), cmp_u32);
	s->jobs++;
	return job;
}

/* What the next job of a class will zero, for the session's budget. */
static uint64_t job_bytes(const struct session_class *c)
{
	return min_u64(c->returned.n, job_slots(c)) * c->slot_size;
}

static void dispatch_zeroing(struct session *s)
{
	uint64_t now = now_ns();

	for (unsigned i = 0; i < s->nclasses; i++) {
		while (s->cls[i].returned.n > 0 && s->jobs < SESSION_MAX_JOBS) {
			struct zero_job *job;

			if (!session_afford(s, &s->zero_bucket, job_bytes(&s->cls[i]), now))
				return; /* returns wait, RETURNED, until it is served again */
			job = new_job(s, i);
			if (!job)
				return; /* the next tick retries */
			back_job(s, &s->cls[i], job);
			if (job->pending == 0)
				zero_submit(job);
		}
	}
}

/* ---- ready rings ---- */

static uint32_t take_queueable(struct session *s, struct session_class *c)
{
	/* Zeroed slots first: their pages are in place in the client. */
	if (c->idle.n > 0)
		return c->idle.v[--c->idle.n];
	s->queued_unbacked = true;
	return c->unbacked.v[--c->unbacked.n];
}

uint32_t session_target_low(const struct session_class *c)
{
	return hak_geom_target_low(c->target, c->low, c->high);
}

void session_publish_low(struct session *s, unsigned cls)
{
	hak_store_relaxed(&s->sync->ready_low[cls], session_target_low(&s->cls[cls]));
}

/* Elastic: the client took the ring below the low level of its target
 * since the last fill, so the target grows (up to high), and with it the
 * level it rings at.  Costs the client nothing until it populates what is
 * queued, which it does only for what it takes. */
static void grow_target(struct session *s, unsigned cls, uint32_t queued)
{
	struct session_class *c = &s->cls[cls];

	if (queued >= c->filled || queued >= session_target_low(c))
		return;
	c->demand_ns = now_ns();
	if (c->target >= c->high)
		return;
	c->target = hak_geom_target_step(c->target, true, c->initial, c->high);
	session_publish_low(s, cls);
}

static int fill_ready(struct session *s, unsigned cls)
{
	struct session_class *c = &s->cls[cls];
	int64_t space = hak_ring_sp_space(&c->ready, c->ready_tail);
	uint32_t queued, n = 0;

	if (space < 0)
		return (int)space;
	queued = hak_ring_entries(&c->ready) - (uint32_t)space;
	grow_target(s, cls, queued);
	while (queued + n < c->target && c->idle.n + c->unbacked.n > 0) {
		uint32_t slot = take_queueable(s, c);

		c->slot[slot].gen++;
		slot_set_state(c, slot, SLOT_OUT);
		hak_ring_sp_put(&c->ready, &c->ready_tail, hak_desc_make(slot, c->slot[slot].gen));
		n++;
	}
	if (n > 0) {
		hak_ring_sp_publish(&c->ready, c->ready_tail);
		s->st.queued += n;
		s->st.queued_bytes += (uint64_t)n * c->slot_size;
	}
	c->filled = queued + n;
	return 0;
}

/* ---- servicing ---- */

int session_collect_returns(struct session *s)
{
	int r;

	for (unsigned i = 0; i < s->nclasses; i++)
		if ((r = collect_returns(s, i)) < 0)
			return r;
	return 0;
}

static int service_once(struct session *s)
{
	int r = session_collect_returns(s);

	if (r < 0)
		return r;
	dispatch_zeroing(s);
	for (unsigned i = 0; i < s->nclasses; i++)
		if ((r = fill_ready(s, i)) < 0)
			return r;
	/* Elastic pools: the client populates what it will take next, and
	 * without the hint would only look on its own timer. */
	if (s->queued_unbacked) {
		s->queued_unbacked = false;
		session_notify_queued(s);
	}
	return s->st.offences > SESSION_MAX_OFFENCES ? -EPROTO : 0;
}

/* Whether the client left work after the doorbell was armed. */
static bool work_pending(const struct session *s)
{
	for (unsigned i = 0; i < s->nclasses; i++) {
		const struct session_class *c = &s->cls[i];
		int64_t space = hak_ring_sp_space(&c->ready, c->ready_tail);

		if (hak_ring_sc_avail(&c->ret, c->ret_head) != 0 || space < 0)
			return true;
		if (hak_ring_entries(&c->ready) - (uint32_t)space < session_target_low(c) &&
		    c->idle.n + c->unbacked.n > 0)
			return true;
	}
	return false;
}

/* What servicing found wrong: -EPROTO, too many bad descriptors; any
 * other error, an impossible ring index (one more offence). */
static enum session_verdict verdict_of(struct session *s, int r)
{
	if (r == 0)
		return SESSION_OK;
	if (r == -EPROTO)
		return SESSION_BAD_DESCRIPTORS;
	s->st.offences++;
	return SESSION_BAD_INDICES;
}

static int service(struct session *s)
{
	int r = service_once(s);

	if (r < 0)
		return r;
	/* Arm the doorbell, then look again: a client that pushed between our
	 * last look and this store saw want_doorbell == 0 and did not ring.
	 * Both sides exchange want_doorbell (read-modify-writes, totally
	 * ordered): either the client's exchange comes later and sees 1 and
	 * rings, or ours reads its 0 and, acquiring, sees what it pushed
	 * before (pairs with the client's exchange in its doorbell path).
	 * Finding anything but 1 means the client took the last arming: one
	 * more ring it may make (on_doorbell counts those it makes beyond).
	 * While zeroing jobs are in flight their completions service the
	 * session anyway: arming then would only buy a wakeup (and a system
	 * call in the client) per return batch, so the doorbell waits until
	 * the daemon has nothing left to do for this client. */
	if (s->jobs > 0)
		return 0;
	if (hak_xchg_acq_rel(&s->sync->want_doorbell, 1) != 1)
		s->bell_tokens++;
	if (work_pending(s))
		r = service_once(s);
	return r;
}

/* A deferred session is served again once its budget allows (budget.c):
 * the tick calls here every 10 ms. */
enum session_verdict session_service(struct session *s)
{
	return s->dead || session_deferred(s) ? SESSION_OK : verdict_of(s, service(s));
}

enum session_verdict session_zero_done(struct zero_job *job)
{
	struct session *s = job->owner;
	struct session_class *c = &s->cls[job->cls];
	enum session_verdict v = SESSION_OK;

	if (!s->dead && job->error == -EFAULT) {
		/* Not zeroed: these slots must never be queued again. */
		v = SESSION_POOL_FAULT;
	} else if (!s->dead && job->error == 0) {
		for (unsigned i = 0; i < job->n; i++) {
			slot_set_state(c, job->slot[i], SLOT_IDLE_ZERO);
			c->slot[job->slot[i]].mapped = 1;
			slot_push(&c->idle, job->slot[i]);
		}
		s->st.zeroed += job->n;
	}
	/* Out of flight before the service: it arms the doorbell only when
	 * no job is. */
	s->jobs--;
	if (v == SESSION_OK)
		v = session_service(s);
	session_unref(s);
	free(job);
	return v;
}
