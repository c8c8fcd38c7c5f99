/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What one client may cost the daemon per second.  A client that follows
 * the protocol to the letter can still keep the daemon busy: take every
 * doorbell arming and ring at once, and each ring is a wakeup and a
 * service (a review measured 22-33k a second, about 28% of a core).  So each
 * session draws on two token buckets, one of doorbell wakeups and one of
 * bytes to zero.  When one runs dry the session is deferred: neither its
 * doorbell nor its returns are serviced until the bucket holds a quarter
 * of its burst again, which the 10 ms tick notices (session_tick), so a
 * deferral costs no timer of its own.  That is no offence: the client is
 * served later, and falls back meanwhile as it would with an empty ready
 * ring.
 */
#include <inttypes.h>

#include "log.h"
#include "session.h"
#include "util.h"

#define DEFER_LOG_INTERVAL_NS (10 * NSEC_PER_SEC)
/* A deferred session resumes once its bucket holds 1/RESUME_DIVISOR of
 * its burst: resuming at one token would cost a resume per wakeup. */
#define RESUME_DIVISOR 4

void session_budget_init(struct session *s, uint64_t now)
{
	bucket_init(&s->wake_bucket, SESSION_WAKE_RATE, SESSION_WAKE_BURST, now);
	bucket_init(&s->zero_bucket, SESSION_ZERO_RATE, SESSION_ZERO_BURST, now);
	s->deferred_until = 0;
}

static void defer(struct session *s, struct bucket *b, const char *what, uint64_t now)
{
	uint64_t until = now + bucket_wait(b, b->burst / RESUME_DIVISOR, now);

	if (s->deferred_until == 0) {
		s->st.deferred++;
		if (log_ratelimit(&s->defer_log, DEFER_LOG_INTERVAL_NS))
			log_session(LOG_INFO, s,
				    "over its %s budget: deferred for %" PRIu64 " ms (%" PRIu64
				    " times)",
				    what, (until - now) / NSEC_PER_MSEC, s->st.deferred);
	}
	s->deferred_until = max_u64(s->deferred_until, until);
}

bool session_afford(struct session *s, struct bucket *b, uint64_t cost, uint64_t now)
{
	if (session_deferred(s))
		return false;
	if (bucket_wait(b, 1, now) > 0) {
		defer(s, b, b == &s->wake_bucket ? "wakeup" : "zeroing", now);
		return false;
	}
	bucket_take(b, cost);
	return true;
}

bool session_deferred(struct session *s)
{
	/* The clock is read only while deferred. */
	if (s->deferred_until && now_ns() >= s->deferred_until)
		s->deferred_until = 0;
	return s->deferred_until != 0;
}
