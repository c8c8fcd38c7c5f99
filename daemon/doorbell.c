/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A session's doorbell.  A conforming client rings only after taking an
 * arming (want_doorbell 1 -> 0), once per arming, and session_service
 * counts the armings taken: rings beyond them are a client ignoring the
 * protocol to keep the daemon busy.  Past a little slack, every
 * DOORBELL_RINGS_MAX of them count as one offence.
 */
#include <inttypes.h>

#include "log.h"
#include "session.h"
#include "util.h"

#define DOORBELL_RINGS_MAX 64
#define FLOOD_LOG_INTERVAL_NS NSEC_PER_SEC

/* Counts a flood; returns whether the client must be cut off. */
static bool flood(struct session *s, uint64_t excess)
{
	s->st.offences += excess / DOORBELL_RINGS_MAX;
	s->bell_rings = s->bell_tokens;
	if (log_ratelimit(&s->offence_log, FLOOD_LOG_INTERVAL_NS))
		log_session(LOG_WARNING, s,
			    "doorbell flood: %" PRIu64 " rings it was not armed for (%" PRIu64
			    " offences)",
			    excess, s->st.offences);
	return s->st.offences > SESSION_MAX_OFFENCES;
}

enum session_verdict session_doorbell(struct session *s, uint64_t rings)
{
	if (s->dead)
		return SESSION_OK;
	s->st.doorbells++;
	/* rings is what the client added since our last read. */
	s->bell_rings += rings;
	if (s->bell_rings > s->bell_tokens + DOORBELL_RINGS_MAX &&
	    flood(s, s->bell_rings - s->bell_tokens))
		return SESSION_BELL_FLOOD;
	return session_service(s);
}
