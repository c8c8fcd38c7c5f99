/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hak-hostile's attacks on shared memory: return descriptors, ring
 * indices, hoarding, the doorbell, the memfds themselves. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hostile.h"

/* Ready slots the descriptor attack takes: well under what lies between
 * the watermarks of the test pool, so the daemon does not refill. */
#define DESCS_TAKE 16

static void fill_pattern(struct session *s, unsigned cls, uint32_t slot)
{
	memset(slot_addr(s, cls, slot), 0x5c, s->hdr.cls[cls].slot_size);
}

/* Pushes descriptor(s) that must each count as one offence. */
static unsigned push_bad(struct session *s, unsigned cls, const hak_desc_t *d, unsigned n,
			 const char *what)
{
	push_returns(s, cls, d, n);
	tu_say("pushed %s n=%u", what, n);
	return n;
}

/*
 * Every kind of bad return descriptor in one session, and how many
 * offences that must make.  Then the legitimately returned slots come back
 * zeroed (we wrote them full of a pattern), and the slot returned twice is
 * queued once.
 */
int cmd_descs(const struct opts *o)
{
	static hak_desc_t got[TAKE_MAX];
	static uint8_t times[TAKE_MAX];
	struct session s;
	unsigned n, more, offences = 0;
	uint32_t nslots, nslots1, never;
	hak_desc_t d[4], a, b;
	char line[64];

	if (!session_open(&s, 0))
		tu_fail("refused");
	nslots = s.hdr.cls[0].nslots;
	nslots1 = s.hdr.nclasses > 1 ? s.hdr.cls[1].nslots : 0;
	/* Only a few: draining the ring below its low watermark would make the
	 * daemon queue more, in the end the slot used as never queued. */
	n = take_ready(&s, 0, got, DESCS_TAKE, REACT_MS);
	if (n < 3 || n >= nslots || nslots > TAKE_MAX)
		tu_fail("need 3 or more queued slots of class 0 and some not queued (got %u of %u)",
			n, nslots);
	for (unsigned i = 0; i < n; i++) {
		times[hak_desc_slot(got[i])]++;
		fill_pattern(&s, 0, hak_desc_slot(got[i]));
	}
	a = got[0];
	b = got[1];
	/* A slot never queued: the daemon queues up to its high watermark,
	 * and hands slots out in address order. */
	never = nslots - 1;

	d[0] = hak_desc_make(nslots, 1);
	d[1] = hak_desc_make(nslots + 5, hak_desc_gen(a));
	d[2] = hak_desc_make(UINT32_MAX, hak_desc_gen(a));
	offences += push_bad(&s, 0, d, 3, "out-of-range");
	d[0] = hak_desc_make(hak_desc_slot(b), hak_desc_gen(b) - 1);
	d[1] = hak_desc_make(hak_desc_slot(b), hak_desc_gen(b) + 1);
	offences += push_bad(&s, 0, d, 2, "wrong-generation");
	d[0] = hak_desc_make(never, 0);
	d[1] = hak_desc_make(never, 1);
	offences += push_bad(&s, 0, d, 2, "never-queued");
	/* Legitimate once, then again in the same batch. */
	d[0] = a;
	d[1] = a;
	push_returns(&s, 0, d, 2);
	offences++;
	tu_say("pushed double-return n=1");
	if (nslots1 && nslots1 < nslots) {
		/* Valid in class 0, out of range in class 1. */
		d[0] = hak_desc_make(nslots1 + (nslots - nslots1) / 2, hak_desc_gen(a));
		offences += push_bad(&s, 1, d, 1, "cross-class");
	}
	doorbell(&s);
	tu_say("pushed offences=%u", offences);
	/* The driver checks the counters, then says check. */
	if (!fgets(line, sizeof(line), stdin))
		tu_fail("stdin closed");
	/* The slot returned in the double return, long ago re-queued: its
	 * old descriptor is stale now. */
	push_returns(&s, 0, &a, 1);
	doorbell(&s);
	tu_say("pushed stale-after-requeue n=1");
	if (cut_off(&s, QUIET_MS))
		tu_fail("cut off for %u offences", offences + 1);
	more = take_ready(&s, 0, got, TAKE_MAX, REACT_MS);
	for (unsigned i = 0; i < more; i++)
		times[hak_desc_slot(got[i])]++;
	for (uint32_t k = 0; k < nslots; k++)
		if (times[k] > (k == hak_desc_slot(a) ? 2 : 1))
			tu_fail("slot %u queued %u times", k, times[k]);
	tu_say("ok offences=%u requeued=%u", offences + 1, more);
	session_close(&s);
	return 0;
}

/* Bad descriptors until the daemon has had enough. */
int cmd_offence_flood(const struct opts *o)
{
	struct session s;
	struct hak_ring r;
	unsigned pushed = 0;
	uint64_t deadline = tu_now_ms() + 2 * REACT_MS;
	bool cut = false;

	if (!session_open(&s, 0))
		tu_fail("refused");
	ring_of(&s, 0, 1, &r);
	while (!cut && tu_now_ms() < deadline) {
		hak_desc_t d = hak_desc_make(s.hdr.cls[0].nslots + (uint32_t)(rnd() % 1000),
					     (uint32_t)rnd());

		if (hak_ring_push_mp(&r, &d, 1))
			pushed++;
		else
			doorbell(&s);
		cut = cut_off(&s, 0);
	}
	if (!cut)
		cut = cut_off(&s, REACT_MS);
	tu_say("ok pushed=%u cut_off=%d", pushed, cut);
	session_close(&s);
	return cut ? 0 : 1;
}

/* Corrupted ring indices and header fields, one per session. */
struct ring_case {
	const char *name;
	bool cut; /* the daemon must cut the client off */
	void (*fn)(struct session *s);
};

static void rc_ready_head_ahead(struct session *s)
{
	struct hak_ring r;

	ring_of(s, 0, 0, &r);
	hak_store_release(&r.s->head, hak_load_acquire(&r.s->tail) + 0x40000000u);
}

static void rc_ready_head_ahead_1(struct session *s)
{
	struct hak_ring r;

	ring_of(s, 0, 0, &r);
	hak_store_release(&r.s->head, hak_load_acquire(&r.s->tail) + 1);
}

static void rc_ret_tail_ahead(struct session *s)
{
	struct hak_ring r;

	ring_of(s, 1, 1, &r);
	hak_store_release(&r.s->tail, hak_ring_entries(&r) * 3 + 7);
}

static void rc_ret_tail_back(struct session *s)
{
	struct hak_ring r;

	ring_of(s, 0, 1, &r);
	hak_store_release(&r.s->tail, hak_load_acquire(&r.s->head) - 1);
}

/* Fields the daemon never reads back: nothing may change for it. */
static void rc_ignored_fields(struct session *s)
{
	struct hak_ctrl_hdr *h = s->ctrl;
	struct hak_ctrl_sync *sync = hak_ctrl_at(s->ctrl, s->hdr.sync_off);
	struct hak_ctrl_counters *cnt = hak_ctrl_at(s->ctrl, s->hdr.counters_off);

	for (unsigned c = 0; c < s->hdr.nclasses; c++) {
		struct hak_ring ready, ret;

		ring_of(s, c, 0, &ready);
		ring_of(s, c, 1, &ret);
		hak_store_release(&ready.s->tail, 0xdeadbeef);
		hak_store_release(&ready.s->reserve, 0xfeedface);
		hak_store_release(&ret.s->head, 0x12345678);
		hak_store_release(&ret.s->reserve, 0x87654321);
	}
	hak_store_release(&sync->want_doorbell, 0xabcdef01);
	for (unsigned sh = 0; sh < HAK_COUNTER_SHARDS; sh++)
		for (unsigned k = 0; k < HAK_CNT_NR; k++)
			hak_store64_relaxed(&cnt[sh].v[k], UINT64_MAX - k);
	memset(h, 0xff, sizeof(*h));
}

/* A push reserved and never published, as by a client killed mid-push. */
static void rc_reserved_unpublished(struct session *s)
{
	struct hak_ring r;

	ring_of(s, 0, 1, &r);
	hak_store_release(&r.s->reserve, hak_load_acquire(&r.s->reserve) + 5);
}

int cmd_ring(const struct opts *o)
{
	static const struct ring_case cases[] = {
		{"ready-head-far-ahead", true, rc_ready_head_ahead},
		{"ready-head-one-ahead", true, rc_ready_head_ahead_1},
		{"return-tail-far-ahead", true, rc_ret_tail_ahead},
		{"return-tail-behind-head", true, rc_ret_tail_back},
		{"ignored-fields", false, rc_ignored_fields},
		{"reserved-unpublished", false, rc_reserved_unpublished},
	};
	unsigned bad = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct session s;
		bool cut;

		if (!session_open(&s, 0))
			tu_fail("refused");
		cases[i].fn(&s);
		doorbell(&s);
		cut = cut_off(&s, cases[i].cut ? REACT_MS : QUIET_MS);
		tu_say("case %s cut_off=%d", cases[i].name, cut);
		if (cut != cases[i].cut)
			bad++;
		session_close(&s);
	}
	tu_say("ok cases=%zu unexpected=%u", sizeof(cases) / sizeof(cases[0]), bad);
	return bad ? 1 : 0;
}

/* Takes every slot the daemon queues and never gives one back. */
int cmd_hoard(const struct opts *o)
{
	struct session s;
	uint64_t end = tu_now_ms() + o->seconds * 1000ull;
	unsigned held = 0;

	if (!session_open(&s, 0))
		tu_fail("refused");
	while (tu_now_ms() < end) {
		for (unsigned c = 0; c < s.hdr.nclasses; c++)
			held += take_ready(&s, c, NULL, TAKE_MAX, 0);
		doorbell(&s);
		tu_sleep_ms(1);
		if (cut_off(&s, 0))
			tu_fail("cut off for hoarding");
	}
	tu_say("ok held=%u", held);
	session_close(&s);
	return 0;
}

int cmd_bell_flood(const struct opts *o)
{
	struct session s;
	uint64_t end = tu_now_ms() + o->seconds * 1000ull, writes = 0, one = 1;
	bool cut = false;

	if (!session_open(&s, 0))
		tu_fail("refused");
	while (!cut && tu_now_ms() < end) {
		for (int i = 0; i < 1000; i++)
			if (write(s.bell_fd, &one, sizeof(one)) == sizeof(one))
				writes++;
		cut = cut_off(&s, 0);
	}
	tu_say("ok writes=%llu cut_off=%d", (unsigned long long)writes, cut);
	session_close(&s);
	return 0;
}

/* Follows the doorbell protocol to the letter and rings as often as it
 * lets: takes every arming the moment the daemon makes it and rings at
 * once.  No offence; what it may cost the daemon is bounded instead. */
int cmd_bell_armed(const struct opts *o)
{
	struct hak_ctrl_sync *sync;
	struct session s;
	uint64_t end = tu_now_ms() + o->seconds * 1000ull, rings = 0, one = 1;
	bool cut = false;

	if (!session_open(&s, 0))
		tu_fail("refused");
	sync = hak_ctrl_at(s.ctrl, s.hdr.sync_off);
	while (!cut && tu_now_ms() < end) {
		for (int i = 0; i < 1000; i++) {
			if (hak_xchg_acq_rel(&sync->want_doorbell, 0) != 1)
				continue;
			if (write(s.bell_fd, &one, sizeof(one)) != sizeof(one))
				tu_fail("doorbell: %s", strerror(errno));
			rings++;
		}
		cut = cut_off(&s, 0);
	}
	tu_say("ok rings=%llu cut_off=%d", (unsigned long long)rings, cut);
	session_close(&s);
	return 0;
}

/* The memfds are sealed: shrinking the pool under the daemon's mapping
 * would SIGBUS it.  Punching holes is allowed (it is our memory): the
 * daemon must take that too. */
int cmd_seals(const struct opts *o)
{
	static hak_desc_t got[TAKE_MAX];
	struct session s;
	unsigned bad = 0, n;

	if (!session_open(&s, 0))
		tu_fail("refused");
	bad += ftruncate(s.pool_fd, 0) == 0;
	bad += ftruncate(s.pool_fd, (off_t)s.w.pool_size / 2) == 0;
	bad += ftruncate(s.pool_fd, (off_t)s.w.pool_size * 2) == 0;
	bad += ftruncate(s.ctrl_fd, 0) == 0;
	bad += fcntl(s.pool_fd, F_ADD_SEALS, F_SEAL_WRITE) == 0;
	bad += fcntl(s.ctrl_fd, F_ADD_SEALS, F_SEAL_WRITE) == 0;
	tu_say("case resize-and-seal unexpected_successes=%u", bad);
	/* Return everything while punching the whole pool again and again. */
	for (int round = 0; round < 20; round++) {
		n = take_ready(&s, 0, got, TAKE_MAX, REACT_MS);
		for (unsigned i = 0; i < n; i++)
			fill_pattern(&s, 0, hak_desc_slot(got[i]));
		if (n)
			push_returns(&s, 0, got, n);
		doorbell(&s);
		fallocate(s.pool_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
			  (off_t)s.w.pool_size);
	}
	if (cut_off(&s, QUIET_MS))
		tu_fail("cut off for punching holes in its own pool");
	tu_say("ok unexpected=%u", bad);
	session_close(&s);
	return bad ? 1 : 0;
}
