/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Trimming: idle zeroed slots are given back to the kernel by punching a
 * hole in the pool memfd under them.  The slot then reads as zero again
 * (UNBACKED) and can be queued without zeroing.  Only IDLE_ZERO slots are
 * trimmed, never queued or taken ones: the client may be writing those.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "session.h"
#include "uring.h"
#include "util.h"

#define TRIM_LOG_INTERVAL_NS NSEC_PER_SEC

struct punch {
	struct session *s;
	unsigned cls;
	uint32_t first, n;
};

static void punched(void *arg, int res)
{
	struct punch *p = arg;
	struct session *s = p->s;
	struct session_class *c = &s->cls[p->cls];
	bool ok = res == 0;

	if (!ok && log_ratelimit(&s->offence_log, TRIM_LOG_INTERVAL_NS))
		log_session(LOG_WARNING, s, "cannot punch a hole in the pool: %s", strerror(-res));
	for (uint32_t k = p->first; !s->dead && k < p->first + p->n; k++) {
		slot_set_state(c, k, ok ? SLOT_UNBACKED : SLOT_IDLE_ZERO);
		if (ok)
			c->slot[k].mapped = 0;
		slot_push(ok ? &c->unbacked : &c->idle, k);
	}
	if (ok)
		s->st.trimmed_bytes += p->n * c->slot_size;
	session_unref(s);
	free(p);
}

static int punch_run(struct session *s, unsigned cls, uint32_t first, uint32_t n)
{
	struct session_class *c = &s->cls[cls];
	struct punch *p = malloc(sizeof(*p));
	int r;

	if (!p)
		return -ENOMEM;
	*p = (struct punch){session_ref(s), cls, first, n};
	r = uring_punch(s->pool_fd, c->pool_off + first * c->slot_size, n * c->slot_size, punched,
			p);
	if (r < 0) {
		session_unref(s);
		free(p);
	}
	return r;
}

/* Takes the n coldest idle slots (the bottom of the stack), sorted so that
 * adjacent slots make one hole. */
static uint32_t *take_coldest(struct session_class *c, uint32_t n)
{
	uint32_t *v = malloc(n * sizeof(*v));

	if (!v)
		return NULL;
	memcpy(v, c->idle.v, n * sizeof(*v));
	memmove(c->idle.v, c->idle.v + n, (c->idle.n - n) * sizeof(*v));
	c->idle.n -= n;
	qsort(v, n, sizeof(*v), cmp_u32);
	for (uint32_t i = 0; i < n; i++)
		slot_set_state(c, v[i], SLOT_TRIMMING);
	return v;
}

/* Slots of v[i..n) that could not be submitted go back to idle. */
static void untake(struct session_class *c, const uint32_t *v, uint32_t i, uint32_t n)
{
	for (; i < n; i++) {
		slot_set_state(c, v[i], SLOT_IDLE_ZERO);
		slot_push(&c->idle, v[i]);
	}
}

static uint64_t trim_class(struct session *s, unsigned cls, uint32_t n)
{
	struct session_class *c = &s->cls[cls];
	uint32_t *v = n ? take_coldest(c, n) : NULL;
	uint64_t bytes = 0;
	uint32_t i = 0;

	if (!v)
		return 0;
	while (i < n) {
		uint32_t k = i + 1;

		while (k < n && v[k] == v[k - 1] + 1)
			k++;
		if (punch_run(s, cls, v[i], k - i) < 0)
			break; /* too much in flight: the rest waits */
		bytes += (k - i) * c->slot_size;
		i = k;
	}
	untake(c, v, i, n);
	free(v);
	return bytes;
}

/* Idle slots beyond what refilling the ready ring up to its target needs:
 * when the target shrinks, the slots it no longer keeps ready are these. */
static uint32_t idle_excess(const struct session_class *c)
{
	int64_t space = hak_ring_sp_space(&c->ready, c->ready_tail);
	uint32_t queued = space < 0 ? 0 : hak_ring_entries(&c->ready) - (uint32_t)space;
	uint32_t need = queued < c->target ? c->target - queued : 0;

	return c->idle.n > need ? c->idle.n - need : 0;
}

uint64_t session_trim(struct session *s, bool all)
{
	uint64_t bytes = 0;

	if (s->dead)
		return 0;
	for (unsigned i = 0; i < s->nclasses; i++) {
		struct session_class *c = &s->cls[i];

		bytes += trim_class(s, i, all ? c->idle.n : idle_excess(c));
		c->excess_since = 0;
	}
	return bytes;
}

static bool idle_too_long(struct session_class *c, uint64_t now, uint64_t trim_idle_ns)
{
	if (idle_excess(c) == 0) {
		c->excess_since = 0;
		return false;
	}
	if (c->excess_since == 0)
		c->excess_since = now;
	return trim_idle_ns > 0 && now - c->excess_since >= trim_idle_ns;
}

/* Elastic: a class the client has not drained for trim_idle_ns keeps half
 * as many slots ready (down to its first target); the idle ones beyond go
 * to the trim below once they stayed so for the idle time too. */
static void shrink_target(struct session *s, unsigned cls, uint64_t now, uint64_t trim_idle_ns)
{
	struct session_class *c = &s->cls[cls];

	if (trim_idle_ns == 0 || c->target <= c->initial || now - c->demand_ns < trim_idle_ns)
		return;
	c->target = hak_geom_target_step(c->target, false, c->initial, c->high);
	c->demand_ns = now;
	session_publish_low(s, cls);
}

enum session_verdict session_tick(struct session *s, uint64_t now, uint64_t trim_idle_ns)
{
	enum session_verdict v = session_service(s);

	if (v != SESSION_OK || s->dead)
		return v;
	for (unsigned i = 0; i < s->nclasses; i++) {
		struct session_class *c = &s->cls[i];

		shrink_target(s, i, now, trim_idle_ns);
		if (idle_too_long(c, now, trim_idle_ns)) {
			trim_class(s, i, idle_excess(c));
			c->excess_since = 0;
			s->st.trims_idle++;
		}
	}
	return SESSION_OK;
}
