/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Tests of a session's slot state machine (daemon/slots.c, doorbell.c)
 * without a daemon: a real session (sealed memfds, the daemon's mappings),
 * real zeroing workers, and this program playing the client on its rings.
 * What the session must do: queue zeroed slots, take back only what it
 * handed out, count every other descriptor as an offence that changes
 * nothing, and report the clients it must cut off in a verdict.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"
#include "hak_ring.h"
#include "log.h"
#include "session.h"
#include "uring.h"
#include "util.h"
#include "zero.h"

/* One class of 4 KiB slots, 16 of them; half are kept queued. */
#define SLOT (4 * KIB)
#define NSLOTS 16
#define POOL (NSLOTS * SLOT)
#define HIGH_PCT 50
#define LOW_PCT 25
#define QUEUED (NSLOTS * HIGH_PCT / 100)
#define DRAIN_TIMEOUT_MS 10000
#define DRAIN_POLL_MS 10
/* Doorbell rings beyond the armings taken that count as one offence
 * (doorbell.c). */
#define RINGS_PER_OFFENCE 64

static const struct hak_class_spec one_class[] = {{SLOT, 100}};

struct fixture {
	struct conf *conf;
	struct session *s;
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct ucred cred = {.pid = getpid(), .uid = getuid(), .gid = getgid()};

	assert_non_null(fx);
	fx->conf = conf_new_defaults();
	assert_non_null(fx->conf);
	fx->conf->nclasses = 1;
	memcpy(fx->conf->cls, one_class, sizeof(one_class));
	fx->conf->ready_high = HIGH_PCT;
	fx->conf->ready_low = LOW_PCT;
	assert_int_equal(session_new(fx->conf, 0, 1, -1, &cred, POOL, &fx->s), 0);
	assert_int_equal(fx->s->cls[0].nslots, NSLOTS);
	*state = fx;
	return 0;
}

/* Delivers zeroing and io_uring completions until nothing but the test
 * holds the session; returns the first verdict that was not SESSION_OK. */
static enum session_verdict drain(struct session *s)
{
	uint64_t deadline = now_ns() + DRAIN_TIMEOUT_MS * NSEC_PER_MSEC;
	enum session_verdict v = SESSION_OK;

	uring_flush();
	while (s->ref > 1) {
		struct pollfd p[2] = {{.fd = zero_fd(), .events = POLLIN},
				      {.fd = uring_fd(), .events = POLLIN}};
		struct zero_job *job, *next;

		poll(p, uring_fd() >= 0 ? 2 : 1, DRAIN_POLL_MS);
		for (job = zero_take_done(); job; job = next) {
			enum session_verdict jv;

			next = job->next;
			jv = session_zero_done(job);
			if (v == SESSION_OK)
				v = jv;
		}
		uring_reap();
		uring_flush();
		assert_true(now_ns() < deadline);
	}
	return v;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	session_close(fx->s);
	drain(fx->s);
	assert_int_equal(fx->s->ref, 1);
	session_unref(fx->s);
	conf_free(fx->conf);
	free(fx);
	return 0;
}

/* ---- the client's side ---- */

static struct session_class *cls0(void **state)
{
	return &((struct fixture *)*state)->s->cls[0];
}

static hak_desc_t take(struct session_class *c)
{
	hak_desc_t d = 0;

	assert_true(hak_ring_pop_mc(&c->ready, &d));
	return d;
}

static void give_back(struct session_class *c, hak_desc_t d)
{
	assert_true(hak_ring_push_mp(&c->ret, &d, 1));
}

static void snapshot(const struct session_class *c, struct slot *out)
{
	memcpy(out, c->slot, NSLOTS * sizeof(*out));
}

/* ---- tests ---- */

static void test_queues_up_to_high(void **state)
{
	struct fixture *fx = *state;
	struct session_class *c = cls0(state);

	assert_int_equal(c->count[SLOT_OUT], QUEUED);
	assert_int_equal(c->count[SLOT_UNBACKED], NSLOTS - QUEUED);
	assert_int_equal(fx->s->st.queued, QUEUED);
	for (unsigned i = 0; i < QUEUED; i++) {
		hak_desc_t d = take(c);
		uint32_t k = hak_desc_slot(d);

		assert_true(k < NSLOTS);
		assert_int_equal(c->slot[k].state, SLOT_OUT);
		assert_int_equal(hak_desc_gen(d), c->slot[k].gen);
	}
}

static void test_return_accepted(void **state)
{
	struct fixture *fx = *state;
	struct session_class *c = cls0(state);
	hak_desc_t d = take(c);

	give_back(c, d);
	assert_int_equal(session_collect_returns(fx->s), 0);
	assert_int_equal(c->slot[hak_desc_slot(d)].state, SLOT_RETURNED);
	assert_int_equal(c->count[SLOT_RETURNED], 1);
	assert_int_equal(fx->s->st.returned, 1);
	assert_int_equal(fx->s->st.offences, 0);
}

/* Out of range, never handed out, a stale generation: each an offence,
 * none changes a slot. */
static void test_bad_descriptors_change_nothing(void **state)
{
	struct fixture *fx = *state;
	struct session_class *c = cls0(state);
	hak_desc_t d = take(c);
	uint32_t k = hak_desc_slot(d);
	struct slot before[NSLOTS];
	uint32_t unbacked = c->unbacked.v[0];

	snapshot(c, before);
	give_back(c, hak_desc_make(NSLOTS, 1));
	give_back(c, hak_desc_make(UINT32_MAX >> 8, 0));
	give_back(c, hak_desc_make(unbacked, c->slot[unbacked].gen));
	give_back(c, hak_desc_make(k, hak_desc_gen(d) + 1));
	give_back(c, hak_desc_make(k, hak_desc_gen(d) - 1));
	assert_int_equal(session_collect_returns(fx->s), 0);
	assert_int_equal(fx->s->st.offences, 5);
	assert_int_equal(fx->s->st.returned, 0);
	assert_memory_equal(before, c->slot, sizeof(before));
	assert_int_equal(c->count[SLOT_RETURNED], 0);
}

static void test_double_return(void **state)
{
	struct fixture *fx = *state;
	struct session_class *c = cls0(state);
	hak_desc_t d = take(c);

	give_back(c, d);
	give_back(c, d);
	assert_int_equal(session_collect_returns(fx->s), 0);
	assert_int_equal(fx->s->st.returned, 1);
	assert_int_equal(fx->s->st.offences, 1);
	assert_int_equal(c->count[SLOT_RETURNED], 1);
}

/* A returned slot is zeroed by the workers and queued again with a new
 * generation: its old descriptor is stale from then on. */
static void test_zeroed_and_requeued(void **state)
{
	struct fixture *fx = *state;
	struct session_class *c = cls0(state);
	hak_desc_t d = take(c);
	uint32_t k = hak_desc_slot(d);

	memset(c->base + k * SLOT, 0xd1, SLOT);
	give_back(c, d);
	assert_int_equal(session_service(fx->s), SESSION_OK);
	assert_int_equal(drain(fx->s), SESSION_OK);
	assert_int_equal(fx->s->st.zeroed, 1);
	assert_int_equal(c->slot[k].state == SLOT_OUT || c->slot[k].state == SLOT_IDLE_ZERO, 1);
	for (unsigned i = 0; i < SLOT; i++)
		assert_int_equal(c->base[k * SLOT + i], 0);
	give_back(c, d);
	assert_int_equal(session_collect_returns(fx->s), 0);
	assert_int_equal(fx->s->st.offences, 1);
}

static void test_verdict_too_many_offences(void **state)
{
	struct fixture *fx = *state;
	struct session_class *c = cls0(state);
	enum session_verdict v = SESSION_OK;
	unsigned rounds = 0;

	/* One ring's worth per service: keep pushing until the verdict. */
	while (v == SESSION_OK && rounds++ < 2 * SESSION_MAX_OFFENCES) {
		give_back(c, hak_desc_make(NSLOTS + 1, 0));
		v = session_service(fx->s);
	}
	assert_int_equal(v, SESSION_BAD_DESCRIPTORS);
	assert_int_equal(fx->s->st.offences, SESSION_MAX_OFFENCES + 1);
	assert_false(fx->s->dead); /* the verdict's owner ends it, not the session */
}

static void test_verdict_impossible_index(void **state)
{
	struct fixture *fx = *state;
	struct session_class *c = cls0(state);

	/* More entries than the ring holds: no producer could have pushed them. */
	hak_store_release(&c->ret.s->tail, c->ret_head + 2 * hak_ring_entries(&c->ret));
	assert_int_equal(session_service(fx->s), SESSION_BAD_INDICES);
	assert_int_equal(fx->s->st.offences, 1);
	assert_int_equal(fx->s->st.returned, 0);
}

static void test_verdict_doorbell_flood(void **state)
{
	struct fixture *fx = *state;

	/* Within the armings taken and a little slack: not an offence. */
	assert_int_equal(session_doorbell(fx->s, 1), SESSION_OK);
	assert_int_equal(fx->s->st.offences, 0);
	assert_int_equal(session_doorbell(fx->s, (SESSION_MAX_OFFENCES + 2) * RINGS_PER_OFFENCE),
			 SESSION_BELL_FLOOD);
	assert_int_equal(fx->s->st.doorbells, 2);
}

/* However many rings one write claims, a flood is one offence: the
 * eventfd's value is the client's to choose. */
static void test_doorbell_flood_counts_once(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(session_doorbell(fx->s, 4 * RINGS_PER_OFFENCE), SESSION_OK);
	assert_int_equal(fx->s->st.offences, 1);
	assert_int_equal(session_doorbell(fx->s, 4 * RINGS_PER_OFFENCE), SESSION_OK);
	assert_int_equal(fx->s->st.offences, 2);
	/* The largest value an eventfd holds. */
	assert_int_equal(session_doorbell(fx->s, UINT64_MAX - 1), SESSION_BELL_FLOOD);
	assert_int_equal(fx->s->st.offences, 3);
}

/* Rings that wrap the count around are still a flood. */
static void test_doorbell_flood_no_wrap(void **state)
{
	struct fixture *fx = *state;

	/* Within the slack, then enough to wrap a plain sum back below it. */
	assert_int_equal(session_doorbell(fx->s, 3), SESSION_OK);
	assert_int_equal(session_doorbell(fx->s, UINT64_MAX - 1), SESSION_BELL_FLOOD);
	assert_int_equal(fx->s->st.offences, 1);
}

/* ---- what a client may cost (budget.c) ---- */

/* Small buckets, so that a test runs one dry in a few calls and sees it
 * refill in some milliseconds. */
#define TEST_WAKE_RATE 100 /* per second: 10 ms a token */
#define TEST_WAKE_BURST 4
#define TEST_ZERO_RATE (10 * SLOT) /* bytes per second */
#define TEST_ZERO_BURST (2 * SLOT)

/* Sleeps until the session's deferral is over. */
static void wait_deferral(const struct session *s)
{
	while (now_ns() < s->deferred_until)
		poll(NULL, 0, 1);
}

/* A client ringing on every arming: served while its wakeup budget lasts,
 * then deferred (no offence, no verdict), its returns left on the ring
 * until the bucket refilled. */
static void test_wakeups_over_budget_deferred(void **state)
{
	struct fixture *fx = *state;
	struct session *s = fx->s;
	struct session_class *c = cls0(state);

	bucket_init(&s->wake_bucket, TEST_WAKE_RATE, TEST_WAKE_BURST, now_ns());
	for (unsigned i = 0; i < TEST_WAKE_BURST; i++)
		assert_int_equal(session_doorbell(s, 1), SESSION_OK);
	assert_int_equal(s->st.deferred, 0);
	give_back(c, take(c));
	assert_int_equal(session_doorbell(s, 1), SESSION_OK);
	assert_int_equal(s->st.deferred, 1);
	assert_true(s->deferred_until > now_ns());
	/* Deferred: neither the doorbell nor the tick serves it. */
	assert_int_equal(session_doorbell(s, 1), SESSION_OK);
	assert_int_equal(session_tick(s, now_ns(), 0), SESSION_OK);
	assert_int_equal(s->st.returned, 0);
	assert_int_equal(s->st.deferred, 1); /* one deferral, however many calls */
	assert_int_equal(s->st.offences, 0);
	assert_false(s->dead);
	/* Refilled: served again, from the tick. */
	wait_deferral(s);
	assert_int_equal(session_tick(s, now_ns(), 0), SESSION_OK);
	assert_int_equal(s->st.returned, 1);
	assert_int_equal(s->deferred_until, 0);
	assert_int_equal(drain(s), SESSION_OK);
}

/* Rings beyond the armings still count while deferred: a deferral does
 * not hide a flood. */
static void test_deferral_does_not_hide_a_flood(void **state)
{
	struct fixture *fx = *state;
	struct session *s = fx->s;

	bucket_init(&s->wake_bucket, TEST_WAKE_RATE, 1, now_ns());
	assert_int_equal(session_doorbell(s, 1), SESSION_OK);
	assert_int_equal(session_doorbell(s, 1), SESSION_OK);
	assert_int_equal(s->st.deferred, 1);
	assert_int_equal(session_doorbell(s, (SESSION_MAX_OFFENCES + 2) * RINGS_PER_OFFENCE),
			 SESSION_BELL_FLOOD);
}

/* Zeroing is charged by bytes: past the budget, returned slots wait
 * (RETURNED, not zeroed) until the bucket refilled, then are zeroed. */
static void test_zeroing_over_budget_deferred(void **state)
{
	struct fixture *fx = *state;
	struct session *s = fx->s;
	struct session_class *c = cls0(state);

	bucket_init(&s->zero_bucket, TEST_ZERO_RATE, TEST_ZERO_BURST, now_ns());
	/* One slot, then a job of two with one slot's worth left: taken, into
	 * debt. */
	give_back(c, take(c));
	assert_int_equal(session_service(s), SESSION_OK);
	give_back(c, take(c));
	give_back(c, take(c));
	assert_int_equal(session_service(s), SESSION_OK);
	assert_int_equal(drain(s), SESSION_OK);
	assert_int_equal(s->st.zeroed, 3);
	assert_int_equal(s->st.deferred, 0);
	/* In debt: the next return waits. */
	give_back(c, take(c));
	assert_int_equal(session_service(s), SESSION_OK);
	assert_int_equal(drain(s), SESSION_OK);
	assert_int_equal(s->st.deferred, 1);
	assert_int_equal(c->count[SLOT_RETURNED], 1);
	assert_int_equal(s->st.zeroed, 3);
	assert_int_equal(s->st.offences, 0);
	wait_deferral(s);
	assert_int_equal(session_service(s), SESSION_OK);
	assert_int_equal(drain(s), SESSION_OK);
	assert_int_equal(c->count[SLOT_RETURNED], 0);
	assert_int_equal(s->st.zeroed, 4);
}

/* The defaults never defer a client that rings once per arming at a few
 * hundred wakeups a second. */
static void test_default_budget_serves_normal_rates(void **state)
{
	struct fixture *fx = *state;
	struct session *s = fx->s;

	for (unsigned i = 0; i < SESSION_WAKE_BURST / 2; i++)
		assert_int_equal(session_doorbell(s, 1), SESSION_OK);
	assert_int_equal(s->st.deferred, 0);
	assert_int_equal(s->deferred_until, 0);
}

static void test_verdict_pool_fault(void **state)
{
	struct fixture *fx = *state;
	struct zero_job *job = calloc(1, sizeof(*job));

	assert_non_null(job);
	job->owner = session_ref(fx->s);
	job->error = -EFAULT;
	fx->s->jobs++;
	assert_int_equal(session_zero_done(job), SESSION_POOL_FAULT);
	assert_int_equal(fx->s->jobs, 0);
}

static void test_dead_session_does_nothing(void **state)
{
	struct fixture *fx = *state;
	struct session_class *c = cls0(state);

	session_close(fx->s);
	give_back(c, take(c));
	assert_int_equal(session_service(fx->s), SESSION_OK);
	assert_int_equal(session_doorbell(fx->s, UINT64_MAX / 2), SESSION_OK);
	assert_int_equal(fx->s->st.returned + fx->s->st.offences, 0);
}

static int group_setup(void **state)
{
	log_set_level(LOG_ERR); /* offences are what these tests are made of */
	assert_int_equal(zero_init(1, ZERO_MEMSET, 0), 0);
	assert_int_equal(uring_init(URING_ENTRIES), 0);
	return 0;
}

static int group_teardown(void **state)
{
	zero_stop();
	uring_fini();
	zero_fini();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_queues_up_to_high, setup, teardown),
		cmocka_unit_test_setup_teardown(test_return_accepted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_descriptors_change_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_double_return, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zeroed_and_requeued, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verdict_too_many_offences, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verdict_impossible_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verdict_doorbell_flood, setup, teardown),
		cmocka_unit_test_setup_teardown(test_doorbell_flood_counts_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_doorbell_flood_no_wrap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wakeups_over_budget_deferred, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deferral_does_not_hide_a_flood, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_zeroing_over_budget_deferred, setup, teardown),
		cmocka_unit_test_setup_teardown(test_default_budget_serves_normal_rates, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_verdict_pool_fault, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_session_does_nothing, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
