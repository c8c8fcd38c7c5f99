/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A session's doorbell.  A conforming client rings only after taking an
 * arming (want_doorbell 1 -> 0), once per arming, and session_service
 * counts the armings taken: rings beyond them are a client ignoring the
 * protocol to keep the daemon busy.  Past a little slack, that is a flood:
 * one offence however many rings, since the eventfd's value is the
 * client's to choose (one write of 2^64 - 2 must not add 2^58 to the
 * daemon's totals).  How far floods went, every DOORBELL_RINGS_MAX rings
 * worth one offence, still brings the cut-off nearer.
 */
#include <inttypes.h>

#include "log.h"
#include "session.h"
#include "util.h"

#define DOORBELL_RINGS_MAX 64
#define FLOOD_LOG_INTERVAL_NS NSEC_PER_SEC

static uint64_t add_capped(uint64_t a, uint64_t b, uint64_t cap)
{
	return a >= cap || b >= cap - a ? cap : a + b;
}

/* Counts a flood; returns whether the client must be cut off. */
static bool flood(struct session *s, uint64_t excess)
{
	s->st.offences++;
	s->bell_weight =
		add_capped(s->bell_weight, excess / DOORBELL_RINGS_MAX, SESSION_MAX_OFFENCES + 1);
	s->bell_rings = s->bell_tokens;
	if (log_ratelimit(&s->offence_log, FLOOD_LOG_INTERVAL_NS))
		log_session(LOG_WARNING, s,
			    "doorbell flood: %" PRIu64 " rings it was not armed for (%" PRIu64
			    " offences)",
			    excess, s->st.offences);
	return s->st.offences > SESSION_MAX_OFFENCES ||
	       s->bell_weight >
		       SESSION_MAX_OFFENCES - min_u64(s->st.offences, SESSION_MAX_OFFENCES);
}

enum session_verdict session_doorbell(struct session *s, uint64_t rings)
{
	if (s->dead)
		return SESSION_OK;
	s->st.doorbells++;
	/* rings is what the client added since our last read: any value. */
	s->bell_rings = add_capped(s->bell_rings, rings, UINT64_MAX);
	if (s->bell_rings > s->bell_tokens + DOORBELL_RINGS_MAX &&
	    flood(s, s->bell_rings - s->bell_tokens))
		return SESSION_BELL_FLOOD;
	/* Counted above in any case; served only within its budget. */
	if (!session_afford(s, &s->wake_bucket, 1, now_ns()))
		return SESSION_OK;
	return session_service(s);
}
