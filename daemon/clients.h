/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The clients: every session, from the WELCOME that registers it to the
 * end of its last reference.  The one place a client is cut off (the
 * sessions' verdicts come here), the per-uid accounting and the budget, and
 * the daemon's totals of the sessions' counters, those of departed clients
 * included.
 *
 * A client whose session ended before it read its WELCOME keeps the
 * WELCOME's descriptors in flight in its socket, and the kernel counts
 * those against the daemon's user (RLIMIT_NOFILE; past it every WELCOME
 * fails with ETOOMANYREFS).  So such a socket lingers: kept open, watched
 * until the client closes it, and counted against its uid's limits and
 * max_clients meanwhile.
 */
#ifndef HAKD_CLIENTS_H
#define HAKD_CLIENTS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "loop.h"
#include "session.h"

struct zero_job;
struct lingering;

/* Sockets lingering at most, beyond max_clients: each holds a descriptor
 * here and three in flight. */
#define CLIENTS_MAX_LINGERING 4096

struct clients {
	struct loop *loop;
	struct session *list; /* live sessions, newest first */
	unsigned n;
	uint64_t pool_bytes; /* of the live sessions */
	/* Closed; dropped once nothing else holds them, their counters then
	 * final and folded into departed. */
	struct session *grave;
	struct session_stats departed;
	uint64_t cut_off;
	uint32_t last_id;
	/* Sockets of ended sessions whose WELCOME is unread. */
	struct lingering *lingering;
	unsigned nlinger;
	uint64_t linger_bytes; /* their pools: the memfds in flight */
};

/* Limits a new pool must fit in (0: none, for uid_bytes and budget). */
struct clients_limits {
	unsigned max_clients;
	uint64_t uid_bytes;
	uint64_t budget;
};

/* The daemon's totals: sums over live and departed sessions. */
struct clients_totals {
	struct session_stats st;
	uint64_t cut_off;
};

void clients_init(struct clients *cl, struct loop *loop);
/* Closes every session and drops them, waiting for nothing: call after
 * the zeroing workers and io_uring are stopped. */
void clients_fini(struct clients *cl);

/* An id for the next session. */
uint32_t clients_new_id(struct clients *cl);
/* Whether a pool of bytes for uid fits, counting lingering sockets as
 * clients: 0, or -EUSERS (max_clients), -EDQUOT (the uid's limit) or
 * -ENOMEM (the global budget). */
int clients_admit(const struct clients *cl, const struct clients_limits *lim, uid_t uid,
		  uint64_t bytes);
/* Registers s (taking the caller's reference), watches its socket and
 * doorbell and sends WELCOME.  On failure s is closed and -errno returned. */
int clients_add(struct clients *cl, struct session *s);
/* Ends a session: out of the loop and the list, closed (its socket
 * lingering while its WELCOME is unread).  why != NULL: cut off for that
 * reason (counted). */
void clients_close(struct clients *cl, struct session *s, const char *why);
/* Acts on a verdict: cuts the client off unless it is SESSION_OK. */
void clients_judge(struct clients *cl, struct session *s, enum session_verdict v);
/* Drops the closed sessions nothing else holds (end of a loop turn). */
void clients_bury(struct clients *cl);

/* A zeroing job completed: the session takes it back, verdict acted on. */
void clients_zero_done(struct clients *cl, struct zero_job *job);
/* The periodic work of every session. */
void clients_tick(struct clients *cl, uint64_t now, uint64_t trim_idle_ns);
void clients_set_watermarks(struct clients *cl, unsigned low_pct, unsigned high_pct);
/* Trims every idle zeroed slot of the clients with pid (0: all).  Returns
 * the bytes submitted; *matched: how many clients. */
uint64_t clients_trim(struct clients *cl, pid_t pid, unsigned *matched);

/* Bytes of all pools of one uid, lingering ones included. */
uint64_t clients_uid_bytes(const struct clients *cl, uid_t uid);
/* Pages waiting in all ready rings. */
uint64_t clients_ready_pages(const struct clients *cl);
void clients_totals(const struct clients *cl, struct clients_totals *t);

#endif
