/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A session is one client: its pool memfd and control segment, both mapped
 * in the daemon, its doorbell, and the daemon's private state of every slot.
 * Nothing here is ever read back from shared memory except the client's ring
 * index (once per batch, checked) and the descriptors it pushed (once each,
 * checked); the layout the daemon computed stays in private memory.
 *
 * Sessions are reference counted: the server's list holds one reference,
 * every zeroing job and io_uring operation in flight holds one; the pool
 * stays mapped until the last is dropped.  All on the main thread.
 */
#ifndef HAKD_SESSION_H
#define HAKD_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "hak_layout.h"
#include "hak_ring.h"
#include "server.h"

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
	struct slot *slot;
	struct slot_stack idle, unbacked, returned;
	uint32_t count[SLOT_NSTATES];
	uint64_t excess_since; /* when idle slots went above what refills need */
};

struct session_stats {
	uint64_t returned; /* slots accepted back */
	uint64_t zeroed;   /* slots zeroed */
	uint64_t queued;   /* slots put on ready rings */
	uint64_t offences;
	uint64_t trimmed_bytes;
	uint64_t doorbells;
};

struct session {
	struct server *srv;
	struct session *prev, *next; /* the server's list */
	struct session *grave_next;  /* closed, unreferenced after this loop turn */
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
	 * and rings heard, the latter reset when a flood was counted. */
	uint64_t bell_tokens, bell_rings;
	bool huge;
};

/* Cut off a client after this many bad descriptors. */
#define SESSION_MAX_OFFENCES 1000
/* Zeroing jobs one session may have in flight: the others' turn comes. */
#define SESSION_MAX_JOBS 4

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

/* ---- session.c: lifetime ---- */

/* The layout of a pool of about pool_bytes under config c: its pool_size is
 * what the client's quota is charged.  Returns 0 or -EINVAL. */
int session_layout(const struct conf *c, uint64_t pool_bytes, uint32_t id, struct hak_ctrl_hdr *h);
/* Creates the pool and control segment for a client asking for pool_bytes
 * (already checked against the limits), and queues the first ready slots. */
int session_new(struct server *srv, int sock, const struct ucred *cred, uint64_t pool_bytes,
		struct session **out);
/* Sends WELCOME with [pool, ctrl, doorbell]; then the ctrl fd is closed. */
int session_welcome(struct session *s);
struct session *session_ref(struct session *s);
void session_unref(struct session *s);

/* ---- slots.c: the slot state machine ---- */

/* Takes returns, starts zeroing, refills the ready rings, arms the doorbell.
 * Returns 0, or -EBADMSG / -EPROTO when the client must be cut off. */
int session_service(struct session *s);
/* The first step of session_service: accepts what the client pushed on its
 * return rings, at most one ring's worth per class.  Returns 0, or -EBADMSG
 * when a ring index is impossible.  On its own so that a fuzzer can drive
 * the daemon's reading of shared memory without zeroing workers. */
int session_collect_returns(struct session *s);
/* session_service, cutting the client off when it must be. */
void session_service_or_close(struct session *s);
/* Periodic: service, and trim idle slots that stayed idle long enough. */
void session_tick(struct session *s, uint64_t now);
/* Punches holes under idle zeroed slots (all, or those above what refills
 * need).  Returns the bytes submitted. */
uint64_t session_trim(struct session *s, bool all);
/* A zeroing job of this session completed (main thread). */
void session_zero_done(struct zero_job *job);
/* Watermarks from the config's percentages. */
void session_set_watermarks(struct session *s, unsigned low_pct, unsigned high_pct);

struct session_class_counts {
	uint64_t slot_size;
	uint32_t nslots, ready, out, idle, unbacked, returned, busy;
};
void session_class_counts(const struct session *s, unsigned c, struct session_class_counts *out);
/* Slots waiting in ready rings, as 4 KiB pages. */
uint64_t session_ready_pages(const struct session *s);
/* The client's own counters, summed over shards: display only. */
void session_client_counters(const struct session *s, uint64_t v[HAK_CNT_NR]);

#endif
