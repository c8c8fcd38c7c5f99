/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A session is one client: its pool memfd and control segment, both mapped
 * in the daemon, its doorbell, and the daemon's private state of every slot.
 * Nothing here is ever read back from shared memory except the client's ring
 * index (once per batch, checked) and the descriptors it pushed (once each,
 * checked); the layout the daemon computed stays in private memory.
 *
 * A session never ends itself: when its client must be cut off, the call
 * that found out returns a verdict saying why, and the session's owner (the
 * client list, clients.c) ends it.  It knows nothing of the server: what
 * configuration it needs comes as plain values.
 *
 * Sessions are reference counted: the client list holds one reference,
 * every zeroing job and io_uring operation in flight holds one; the pool
 * stays mapped until the last is dropped.  All on the main thread.
 */
#ifndef HAKD_SESSION_H
#define HAKD_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "bucket.h"
#include "hak_geom.h"
#include "hak_layout.h"
#include "hak_ring.h"
#include "log.h"
#include "loop.h"

struct conf;
struct zero_job;

/* Daemon-private slot states.  The daemon cannot tell a slot waiting in the
 * ready ring from one the client took: both are OUT. */
enum slot_state {
	SLOT_UNBACKED,	/* no memory behind it (fresh, or trimmed): reads as zero */
	SLOT_IDLE_ZERO, /* zeroed, not queued */
	SLOT_OUT,	/* queued to the client, or taken by it */
	SLOT_RETURNED,	/* accepted from the return ring, dirty */
	SLOT_ZEROING,	/* in a zeroing job (being backed or zeroed) */
	SLOT_TRIMMING,	/* a hole is being punched under it */
	SLOT_NSTATES,
};

struct slot {
	uint32_t gen; /* bumped each time the slot is queued */
	uint8_t state;
	uint8_t mapped; /* the daemon's mapping has its pages (no fault on zeroing) */
};

/* A stack of slot indices with room for every slot of the class. */
struct slot_stack {
	uint32_t *v;
	uint32_t n;
};

struct session_class {
	uint64_t slot_size;
	uint64_t pool_off;
	uint32_t nslots;
	char *base; /* slot 0 in the daemon's mapping */
	struct hak_ring ready, ret;
	uint32_t ready_tail; /* private: the daemon's producer index */
	uint32_t ret_head;   /* private: the daemon's consumer index */
	uint32_t low, high;  /* watermarks, in slots */
	/* Elastic (hak_geom.h): the slots kept ready now, in [initial, high];
	 * how many were on the ring after the last fill; when the client
	 * last drained it (the idle period that shrinks the target starts). */
	uint32_t target, initial, filled;
	uint64_t demand_ns;
	struct slot *slot;
	struct slot_stack idle, unbacked, returned;
	uint32_t count[SLOT_NSTATES];
	uint64_t excess_since; /* when idle slots went above what refills need */
};

/* A session's counters; the daemon's totals are their sums (clients.c). */
struct session_stats {
	uint64_t returned; /* slots accepted back */
	uint64_t zeroed;   /* slots zeroed */
	uint64_t queued;   /* slots put on ready rings */
	uint64_t queued_bytes; /* their bytes */
	uint64_t offences;
	uint64_t trimmed_bytes;
	uint64_t doorbells;
	uint64_t trims_idle; /* classes trimmed for staying idle */
	uint64_t deferred;   /* times over its budget (budget.c) */
};

/* What a call on a session found: go on, or cut the client off for this. */
enum session_verdict {
	SESSION_OK,
	SESSION_BAD_DESCRIPTORS, /* more than SESSION_MAX_OFFENCES */
	SESSION_BAD_INDICES,	 /* an impossible ring index (one offence) */
	SESSION_POOL_FAULT,	 /* its pool faulted while being zeroed */
	SESSION_BELL_FLOOD,	 /* rang its doorbell far beyond its armings */
	SESSION_SPOKE,		 /* sent a datagram after WELCOME (one offence) */
};

struct session {
	struct session *prev, *next; /* the client list (clients.c) */
	struct session *grave_next;  /* closed, dropped by the list once idle */
	unsigned ref;
	bool dead;
	uint32_t id;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	int sock, pool_fd, ctrl_fd, bell_fd;
	struct watch sock_w, bell_w;
	char *pool;
	uint64_t pool_size;
	void *ctrl;
	uint64_t ctrl_size;
	struct hak_ctrl_hdr layout; /* private copy: never read from ctrl */
	struct hak_ctrl_sync *sync;
	const struct hak_ctrl_counters *counters;
	unsigned nclasses;
	struct session_class cls[HAK_MAX_CLASSES];
	unsigned jobs; /* zeroing jobs in flight */
	struct session_stats st;
	uint64_t connected_ns;
	uint64_t offence_log; /* rate limit */
	/* Doorbell accounting: armings the client took (each allows one ring)
	 * and rings heard, the latter reset when a flood was counted; how far
	 * floods went, in offences' worth (capped), which weighs on the
	 * cut-off but not on the offences counted. */
	uint64_t bell_tokens, bell_rings, bell_weight;
	/* What it may cost the daemon (budget.c); deferred_until: 0, or
	 * when it is served again. */
	struct bucket wake_bucket, zero_bucket;
	uint64_t deferred_until, defer_log;
	bool huge;
	bool queued_unbacked; /* this service queued unpopulated slots: tell the client */
	bool welcomed;	      /* WELCOME sent: other messages may follow */
};

/* Cut off a client after this many bad descriptors. */
#define SESSION_MAX_OFFENCES 1000
/* Zeroing jobs one session may have in flight: the others' turn comes. */
#define SESSION_MAX_JOBS 4
/* What one client may cost the daemon (budget.c).  Unbounded, a client
 * ringing on every arming made ~15,000 wakeups a second here, 23% of a
 * core; at this rate it costs about 1.5%, while a whole hakbench page run
 * rings a few hundred times (the doorbell waits while zeroing is in
 * flight, and the tick serves every client each 10 ms anyway).  Zeroing
 * is the daemon's purpose: its bound only keeps one client from taking
 * every worker, above what one worker zeroes (~4 GB/s here). */
#define SESSION_WAKE_RATE 1000 /* doorbell wakeups per second */
#define SESSION_WAKE_BURST 1000
#define SESSION_ZERO_RATE (8 * GIB) /* bytes zeroed per second */
#define SESSION_ZERO_BURST (1 * GIB)

static inline void slot_set_state(struct session_class *c, uint32_t slot, enum slot_state st)
{
	c->count[c->slot[slot].state]--;
	c->slot[slot].state = (uint8_t)st;
	c->count[st]++;
}

static inline void slot_push(struct slot_stack *st, uint32_t slot)
{
	st->v[st->n++] = slot;
}

/* log_client about a session. */
#define log_session(level, s, ...)                                                                 \
	log_client(level, &(const struct log_peer){(s)->pid, (s)->uid, (s)->id}, __VA_ARGS__)

/* ---- session.c: lifetime ---- */

/* The layout of a pool of about pool_bytes under config c: its pool_size is
 * what the client's quota is charged.  Returns 0 or -EINVAL. */
int session_layout(const struct conf *c, uint64_t pool_bytes, uint32_t id, struct hak_ctrl_hdr *h);
/* Creates the pool and control segment of client id asking for pool_bytes
 * (already checked against the limits) under config c, and queues the first
 * ready slots.  hugepage_size: the system's (0: none). */
int session_new(const struct conf *c, uint64_t hugepage_size, uint32_t id, int sock,
		const struct ucred *cred, uint64_t pool_bytes, struct session **out);
/* Sends WELCOME with [pool, ctrl, doorbell]; then the ctrl fd is closed. */
int session_welcome(struct session *s);
/* Ends the session: dead from now on, its socket and doorbell closed (the
 * client sees the end); the pool stays mapped while references hold it. */
void session_close(struct session *s);
struct session *session_ref(struct session *s);
void session_unref(struct session *s);
/* Why a client is cut off, for the log. */
const char *session_verdict_reason(enum session_verdict v);
/* Watermarks from the config's percentages. */
void session_set_watermarks(struct session *s, unsigned low_pct, unsigned high_pct);

/* Tells the client that unpopulated slots were queued (HAK_MSG_QUEUED);
 * never blocks, a full socket drops the hint. */
void session_notify_queued(struct session *s);

/* ---- slots.c: the slot state machine ---- */

/* Takes returns, starts zeroing, refills the ready rings, arms the doorbell
 * (a dead session: nothing, SESSION_OK). */
enum session_verdict session_service(struct session *s);
/* The first step of session_service: accepts what the client pushed on its
 * return rings, at most one ring's worth per class.  Returns 0, or -EBADMSG
 * when a ring index is impossible.  On its own so that a fuzzer can drive
 * the daemon's reading of shared memory without zeroing workers. */
int session_collect_returns(struct session *s);
/* A zeroing job of this session completed (main thread): takes its slots
 * back and services the session.  Drops the job's reference: the caller
 * holds its own when it needs the session after. */
enum session_verdict session_zero_done(struct zero_job *job);

/* ---- budget.c ---- */

/* Full buckets at now. */
void session_budget_init(struct session *s, uint64_t now);
/* Charges cost to bucket b of s (its wake_bucket or zero_bucket): false,
 * charging nothing, when s is deferred or b ran dry (s is then deferred
 * until b holds a quarter of its burst again). */
bool session_afford(struct session *s, struct bucket *b, uint64_t cost, uint64_t now);
/* Whether s is deferred still (past its time, it is not any more). */
bool session_deferred(struct session *s);

/* ---- doorbell.c ---- */

/* The client rang its doorbell rings times (the eventfd's value): counts
 * them against the armings it took, then services the session. */
enum session_verdict session_doorbell(struct session *s, uint64_t rings);

/* ---- trim.c ---- */

/* Periodic: service, and trim the slots of classes that stayed above what
 * refills need for trim_idle_ns (0: never). */
enum session_verdict session_tick(struct session *s, uint64_t now, uint64_t trim_idle_ns);
/* Punches holes under idle zeroed slots (all, or those above what refills
 * need).  Returns the bytes submitted. */
uint64_t session_trim(struct session *s, bool all);
/* Elastic: the low level that goes with class c's ready target, published
 * to the client (it rings below it). */
uint32_t session_target_low(const struct session_class *c);
void session_publish_low(struct session *s, unsigned cls);

struct session_class_counts {
	uint64_t slot_size;
	uint32_t nslots, ready, out, idle, unbacked, returned, busy;
	uint32_t ready_target;
};
void session_class_counts(const struct session *s, unsigned c, struct session_class_counts *out);
/* Slots waiting in ready rings, as 4 KiB pages. */
uint64_t session_ready_pages(const struct session *s);
/* The client's own counters, summed over shards: display only. */
void session_client_counters(const struct session *s, uint64_t v[HAK_CNT_NR]);

#endif
