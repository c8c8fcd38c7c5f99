/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Tests for shared/hak_ring.h: the client-side lock-free operations, the
 * daemon-side private-index helpers, and their behaviour under concurrency
 * and against indices a hostile client could write.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "hak_ring.h"

#define SMALL_RING_ENTRIES 8u
/* Small enough that the race tests hit "full" and "empty" often. */
#define RACE_RING_ENTRIES 64u
#define RACE_MAX_THREADS 3u
#define RACE_MAX_BATCH 4u
/*
 * Each race runs for a fixed time rather than a fixed count: how often two
 * threads really overlap on a 2-vCPU machine depends on the scheduler, and
 * a fixed count takes anywhere from 0.1 s to 5 s.  In RACE_RUN_MS a correct
 * ring moves a few million values (well above the ~1e6 operations needed
 * to catch races); RACE_MAX_VALUES bounds the bookkeeping arrays.
 */
#define RACE_RUN_MS 700
#define RACE_MAX_VALUES (16u << 20)
/* A broken ring tends to hang (a publication lost, a reservation doubled)
 * rather than crash: give up after this long and fail instead. */
#define RACE_DEADLINE_MS 20000
/* Every descriptor of the SPMC race carries its value twice, so a torn or
 * stale entry read by a consumer is told apart from a real one. */
#define RACE_GEN_KEY 0x5a5a5a5au

struct test_ring {
	struct hak_ring r;
	struct hak_ring_shared *shared;
	hak_desc_t *ents;
};

static struct test_ring *ring_new(uint32_t entries)
{
	struct test_ring *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	t->shared = aligned_alloc(HAK_CACHELINE, sizeof(*t->shared));
	t->ents = aligned_alloc(HAK_CACHELINE, entries * sizeof(hak_desc_t));
	assert_non_null(t->shared);
	assert_non_null(t->ents);
	memset(t->shared, 0, sizeof(*t->shared));
	/* Garbage, so a test reading an entry never written does not pass by
	 * luck of calloc's zeroes. */
	memset(t->ents, 0xee, entries * sizeof(hak_desc_t));
	t->r.s = t->shared;
	t->r.e = t->ents;
	t->r.mask = entries - 1;
	return t;
}

static void ring_free(struct test_ring *t)
{
	free(t->shared);
	free(t->ents);
	free(t);
}

/* Puts every shared index at start, as if the ring had run that long. */
static void ring_set_indices(struct test_ring *t, uint32_t start)
{
	t->shared->head = start;
	t->shared->tail = start;
	t->shared->reserve = start;
}

static void push_one(struct hak_ring *r, hak_desc_t d)
{
	assert_true(hak_ring_push_mp(r, &d, 1));
}

static hak_desc_t pop_one(struct hak_ring *r)
{
	hak_desc_t d = 0;

	assert_true(hak_ring_pop_mc(r, &d));
	return d;
}

/* ------------------------------------------------------------ descriptors */

static void test_desc_roundtrip(void **state)
{
	hak_desc_t d = hak_desc_make(0xdeadbeefu, 0x12345678u);

	assert_int_equal(hak_desc_slot(d), 0xdeadbeefu);
	assert_int_equal(hak_desc_gen(d), 0x12345678u);
	d = hak_desc_make(UINT32_MAX, 0);
	assert_int_equal(hak_desc_slot(d), UINT32_MAX);
	assert_int_equal(hak_desc_gen(d), 0);
}

/* ------------------------------------------------------ single-threaded */

static void test_push_pop_fifo(void **state)
{
	struct test_ring *t = ring_new(SMALL_RING_ENTRIES);

	assert_int_equal(hak_ring_entries(&t->r), SMALL_RING_ENTRIES);
	for (uint32_t round = 0; round < 5; round++) {
		for (uint32_t i = 0; i < 5; i++)
			push_one(&t->r, hak_desc_make(i, round));
		assert_int_equal(hak_ring_count(&t->r), 5);
		for (uint32_t i = 0; i < 5; i++)
			assert_int_equal(pop_one(&t->r), hak_desc_make(i, round));
		assert_int_equal(hak_ring_count(&t->r), 0);
	}
	ring_free(t);
}

static void test_full_and_empty(void **state)
{
	struct test_ring *t = ring_new(SMALL_RING_ENTRIES);
	hak_desc_t d = 42;

	assert_false(hak_ring_pop_mc(&t->r, &d));
	assert_int_equal(d, 42); /* untouched on failure */
	for (uint32_t i = 0; i < SMALL_RING_ENTRIES; i++)
		push_one(&t->r, i);
	assert_int_equal(hak_ring_count(&t->r), SMALL_RING_ENTRIES);
	d = 99;
	assert_false(hak_ring_push_mp(&t->r, &d, 1));
	assert_int_equal(t->shared->reserve, SMALL_RING_ENTRIES);
	assert_int_equal(t->shared->tail, SMALL_RING_ENTRIES);

	/* One pop frees exactly one entry. */
	assert_int_equal(pop_one(&t->r), 0);
	push_one(&t->r, 99);
	assert_false(hak_ring_push_mp(&t->r, &d, 1));
	for (uint32_t i = 1; i < SMALL_RING_ENTRIES; i++)
		assert_int_equal(pop_one(&t->r), i);
	assert_int_equal(pop_one(&t->r), 99);
	assert_false(hak_ring_pop_mc(&t->r, &d));
	ring_free(t);
}

/* A batch pop takes what there is, up to max, in ring order, across the
 * wrap; an empty ring leaves the output untouched. */
static void test_pop_batch(void **state)
{
	struct test_ring *t = ring_new(SMALL_RING_ENTRIES);
	hak_desc_t d[SMALL_RING_ENTRIES] = {42};

	assert_int_equal(hak_ring_pop_mc_n(&t->r, d, SMALL_RING_ENTRIES), 0);
	assert_int_equal(d[0], 42);
	ring_set_indices(t, UINT32_MAX - 2);
	for (uint32_t i = 0; i < 6; i++)
		push_one(&t->r, hak_desc_make(i, 7));
	assert_int_equal(hak_ring_pop_mc_n(&t->r, d, 4), 4);
	for (uint32_t i = 0; i < 4; i++)
		assert_int_equal(d[i], hak_desc_make(i, 7));
	assert_int_equal(hak_ring_count(&t->r), 2);
	assert_int_equal(hak_ring_pop_mc_n(&t->r, d, SMALL_RING_ENTRIES), 2);
	assert_int_equal(d[0], hak_desc_make(4, 7));
	assert_int_equal(d[1], hak_desc_make(5, 7));
	assert_int_equal(t->shared->head, t->shared->tail);
	ring_free(t);
}

static void test_batch_all_or_nothing(void **state)
{
	struct test_ring *t = ring_new(SMALL_RING_ENTRIES);
	hak_desc_t batch[SMALL_RING_ENTRIES + 1];

	for (uint32_t i = 0; i <= SMALL_RING_ENTRIES; i++)
		batch[i] = hak_desc_make(i, 7);
	assert_false(hak_ring_push_mp(&t->r, batch, 0));
	assert_false(hak_ring_push_mp(&t->r, batch, SMALL_RING_ENTRIES + 1));
	assert_int_equal(hak_ring_count(&t->r), 0);

	assert_true(hak_ring_push_mp(&t->r, batch, 5));
	/* 3 free: a batch of 4 must push nothing at all. */
	assert_false(hak_ring_push_mp(&t->r, batch, 4));
	assert_int_equal(hak_ring_count(&t->r), 5);
	assert_int_equal(t->shared->reserve, 5);
	assert_int_equal(t->shared->tail, 5);
	assert_true(hak_ring_push_mp(&t->r, batch + 5, 3));
	assert_int_equal(hak_ring_count(&t->r), SMALL_RING_ENTRIES);
	for (uint32_t i = 0; i < SMALL_RING_ENTRIES; i++)
		assert_int_equal(pop_one(&t->r), batch[i]);

	/* A batch as large as the ring fits an empty ring. */
	assert_true(hak_ring_push_mp(&t->r, batch, SMALL_RING_ENTRIES));
	assert_int_equal(hak_ring_count(&t->r), SMALL_RING_ENTRIES);
	ring_free(t);
}

/* Indices are free-running 32-bit counters: they must work across 2^32. */
static void test_wraparound_mc_mp(void **state)
{
	struct test_ring *t = ring_new(SMALL_RING_ENTRIES);
	hak_desc_t batch[3];
	hak_desc_t d;

	ring_set_indices(t, UINT32_MAX - 5);
	for (uint32_t round = 0; round < 4 * SMALL_RING_ENTRIES; round++) {
		for (uint32_t i = 0; i < 3; i++)
			batch[i] = hak_desc_make(round, i);
		assert_true(hak_ring_push_mp(&t->r, batch, 3));
		assert_int_equal(hak_ring_count(&t->r), 3);
		for (uint32_t i = 0; i < 3; i++)
			assert_int_equal(pop_one(&t->r), batch[i]);
		assert_false(hak_ring_pop_mc(&t->r, &d));
	}
	/* Crossed zero: head is small again, and full/empty still hold. */
	assert_true(t->shared->head < SMALL_RING_ENTRIES * 16);
	for (uint32_t i = 0; i < SMALL_RING_ENTRIES; i++)
		push_one(&t->r, i);
	assert_false(hak_ring_push_mp(&t->r, batch, 1));
	ring_free(t);
}

static void test_wraparound_sp_sc(void **state)
{
	struct test_ring *t = ring_new(SMALL_RING_ENTRIES);
	uint32_t start = UINT32_MAX - 2;
	uint32_t my_tail = start, my_head = start;

	ring_set_indices(t, start);
	assert_int_equal(hak_ring_sp_space(&t->r, my_tail), SMALL_RING_ENTRIES);
	for (uint32_t i = 0; i < SMALL_RING_ENTRIES; i++)
		hak_ring_sp_put(&t->r, &my_tail, i);
	hak_ring_sp_publish(&t->r, my_tail);
	assert_int_equal(my_tail, start + SMALL_RING_ENTRIES);
	assert_int_equal(hak_ring_sp_space(&t->r, my_tail), 0);
	assert_int_equal(hak_ring_count(&t->r), SMALL_RING_ENTRIES);

	/* The same entries read back through the consumer-side helpers. */
	assert_int_equal(hak_ring_sc_avail(&t->r, my_head), SMALL_RING_ENTRIES);
	for (uint32_t i = 0; i < SMALL_RING_ENTRIES; i++)
		assert_int_equal(hak_ring_load_entry(&t->r, my_head + i), i);
	my_head += SMALL_RING_ENTRIES;
	hak_ring_sc_release(&t->r, my_head);
	assert_int_equal(hak_ring_sc_avail(&t->r, my_head), 0);
	assert_int_equal(hak_ring_sp_space(&t->r, my_tail), SMALL_RING_ENTRIES);
	ring_free(t);
}

/* ------------------------------------------------- daemon-side helpers */

static void test_sp_helpers(void **state)
{
	struct test_ring *t = ring_new(SMALL_RING_ENTRIES);
	uint32_t my_tail = 0;

	assert_int_equal(hak_ring_sp_space(&t->r, my_tail), SMALL_RING_ENTRIES);
	for (uint32_t i = 0; i < 5; i++)
		hak_ring_sp_put(&t->r, &my_tail, hak_desc_make(i, 1));
	/* Not published yet: consumers see nothing. */
	assert_int_equal(hak_ring_count(&t->r), 0);
	hak_ring_sp_publish(&t->r, my_tail);
	assert_int_equal(hak_ring_count(&t->r), 5);
	assert_int_equal(hak_ring_sp_space(&t->r, my_tail), SMALL_RING_ENTRIES - 5);
	assert_int_equal(pop_one(&t->r), hak_desc_make(0, 1));
	assert_int_equal(pop_one(&t->r), hak_desc_make(1, 1));
	assert_int_equal(hak_ring_sp_space(&t->r, my_tail), SMALL_RING_ENTRIES - 3);
	ring_free(t);
}

/* A client owns the head of the ready ring: any value it writes must give a
 * sane answer or -EBADMSG, never a space larger than the ring. */
static void test_sp_space_hostile_head(void **state)
{
	struct test_ring *t = ring_new(SMALL_RING_ENTRIES);
	const uint32_t starts[] = {0, 1000, UINT32_MAX - 3, UINT32_MAX};

	for (size_t k = 0; k < sizeof(starts) / sizeof(starts[0]); k++) {
		uint32_t my_tail = starts[k];

		t->shared->head = my_tail; /* empty */
		assert_int_equal(hak_ring_sp_space(&t->r, my_tail), SMALL_RING_ENTRIES);
		t->shared->head = my_tail - SMALL_RING_ENTRIES; /* exactly full */
		assert_int_equal(hak_ring_sp_space(&t->r, my_tail), 0);
		t->shared->head = my_tail - SMALL_RING_ENTRIES - 1; /* more than full */
		assert_int_equal(hak_ring_sp_space(&t->r, my_tail), -EBADMSG);
		t->shared->head = my_tail + 1; /* consumed what was never produced */
		assert_int_equal(hak_ring_sp_space(&t->r, my_tail), -EBADMSG);
		t->shared->head = my_tail + 0x80000000u;
		assert_int_equal(hak_ring_sp_space(&t->r, my_tail), -EBADMSG);
	}
	ring_free(t);
}

static void test_sc_helpers(void **state)
{
	struct test_ring *t = ring_new(SMALL_RING_ENTRIES);
	hak_desc_t batch[3] = {11, 12, 13};
	uint32_t my_head = 0;

	assert_int_equal(hak_ring_sc_avail(&t->r, my_head), 0);
	assert_true(hak_ring_push_mp(&t->r, batch, 3));
	assert_int_equal(hak_ring_sc_avail(&t->r, my_head), 3);
	assert_int_equal(hak_ring_load_entry(&t->r, my_head), 11);
	my_head++;
	/* Not released: producers still see the ring as holding 3. */
	assert_true(hak_ring_push_mp(&t->r, batch, 3));
	assert_true(hak_ring_push_mp(&t->r, batch, 2));
	assert_false(hak_ring_push_mp(&t->r, batch, 1));
	hak_ring_sc_release(&t->r, my_head);
	assert_true(hak_ring_push_mp(&t->r, batch, 1));
	assert_int_equal(hak_ring_sc_avail(&t->r, my_head), SMALL_RING_ENTRIES);
	ring_free(t);
}

/* A client owns the tail of the return ring. */
static void test_sc_avail_hostile_tail(void **state)
{
	struct test_ring *t = ring_new(SMALL_RING_ENTRIES);
	const uint32_t starts[] = {0, 77, UINT32_MAX - 1, UINT32_MAX};

	for (size_t k = 0; k < sizeof(starts) / sizeof(starts[0]); k++) {
		uint32_t my_head = starts[k];

		t->shared->tail = my_head;
		assert_int_equal(hak_ring_sc_avail(&t->r, my_head), 0);
		t->shared->tail = my_head + SMALL_RING_ENTRIES;
		assert_int_equal(hak_ring_sc_avail(&t->r, my_head), SMALL_RING_ENTRIES);
		t->shared->tail = my_head + SMALL_RING_ENTRIES + 1;
		assert_int_equal(hak_ring_sc_avail(&t->r, my_head), -EBADMSG);
		t->shared->tail = my_head - 1; /* behind what we already consumed */
		assert_int_equal(hak_ring_sc_avail(&t->r, my_head), -EBADMSG);
		t->shared->tail = my_head ^ 0x80000000u;
		assert_int_equal(hak_ring_sc_avail(&t->r, my_head), -EBADMSG);
	}
	ring_free(t);
}

/* ---------------------------------------------------------- concurrency */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint32_t load_u32(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void store_u32(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* Joins th, or fails: a thread spinning inside a ring function cannot be
 * stopped, it dies with the process. */
static void join_or_fail(pthread_t th, int64_t deadline_ms)
{
	struct timespec ts;
	int64_t left = deadline_ms - now_ms() + 1000;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += left / 1000;
	if (pthread_timedjoin_np(th, NULL, &ts) != 0)
		fail_msg("a thread is stuck in a ring operation");
}

/* State shared by the threads of one race.  Static in the tests: after a
 * failure a stuck thread may outlive the test's frame. */
struct race {
	struct test_ring *t;
	unsigned nthreads;
	uint32_t go;	  /* threads spin on it so they really overlap */
	uint32_t stop;	  /* time is up, or the other side failed */
	uint32_t running; /* threads not yet finished */
	uint32_t pushed[RACE_MAX_THREADS];
	uint32_t popped_total;
	uint32_t bad; /* a consumer saw a value that was never pushed */
	uint8_t *times_popped;
};

struct race_thread {
	struct race *race;
	uint32_t id;
};

static void race_init(struct race *r, unsigned nthreads)
{
	*r = (struct race){.t = ring_new(RACE_RING_ENTRIES), .nthreads = nthreads};
	r->running = nthreads;
	r->times_popped = calloc(RACE_MAX_VALUES, 1);
	assert_non_null(r->times_popped);
}

static void race_fini(struct race *r)
{
	assert_int_equal(hak_ring_count(&r->t->r), 0);
	free(r->times_popped);
	ring_free(r->t);
}

static void race_start(struct race *r, struct race_thread *rt, pthread_t *th, void *(*fn)(void *))
{
	for (uint32_t i = 0; i < r->nthreads; i++) {
		rt[i] = (struct race_thread){.race = r, .id = i};
		assert_int_equal(pthread_create(&th[i], NULL, fn, &rt[i]), 0);
	}
	store_u32(&r->go, 1);
}

static void race_join(struct race *r, pthread_t *th, int64_t deadline_ms)
{
	store_u32(&r->stop, 1);
	for (uint32_t i = 0; i < r->nthreads; i++)
		join_or_fail(th[i], deadline_ms);
}

static void wait_go(struct race *r)
{
	unsigned spins = 0;

	while (!load_u32(&r->go))
		hak_backoff(&spins);
}

/* --- many producers (hak_ring_push_mp), one consumer (sc helpers) --- */

/* Values are {sequence, producer}: the consumer checks that each
 * producer's values arrive complete and in order, hence each exactly once. */
static void *mpsc_producer(void *arg)
{
	struct race_thread *rt = arg;
	struct race *r = rt->race;
	hak_desc_t batch[RACE_MAX_BATCH];
	uint32_t seq = 0;
	unsigned spins = 0;

	wait_go(r);
	while (!load_u32(&r->stop) && seq < RACE_MAX_VALUES - RACE_MAX_BATCH) {
		/* Vary the batch size so batches of different producers
		 * interleave in the reservation order. */
		uint32_t n = 1 + (seq + rt->id) % RACE_MAX_BATCH;

		for (uint32_t i = 0; i < n; i++)
			batch[i] = hak_desc_make(seq + i, rt->id);
		if (hak_ring_push_mp(&r->t->r, batch, n)) {
			seq += n;
			store_u32(&r->pushed[rt->id], seq); /* progress, for mpsc_time_up */
			spins = 0;
		} else {
			hak_backoff(&spins);
		}
	}
	store_u32(&r->pushed[rt->id], seq);
	__atomic_fetch_sub(&r->running, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Checks one batch of entries the way the daemon reads them. */
static const char *mpsc_check(struct race *r, uint32_t my_head, int64_t n, uint32_t *next_seq)
{
	for (int64_t i = 0; i < n; i++) {
		hak_desc_t d = hak_ring_load_entry(&r->t->r, my_head + (uint32_t)i);
		uint32_t p = hak_desc_gen(d), s = hak_desc_slot(d);

		if (p >= r->nthreads)
			return "a value never pushed";
		if (s != next_seq[p]++)
			return "a producer's value lost, repeated or out of order";
	}
	return NULL;
}

/* Time is up once RACE_RUN_MS have passed and every producer has pushed
 * something: the ring does not share itself fairly, and under TSan on a
 * loaded machine one producer can get nothing in for that long.  At the
 * deadline it is up whatever happened. */
static bool mpsc_time_up(struct race *r, int64_t stop_at, int64_t deadline_ms)
{
	int64_t now = now_ms();

	if (now > deadline_ms)
		return true;
	if (now <= stop_at)
		return false;
	for (uint32_t p = 0; p < r->nthreads; p++)
		if (load_u32(&r->pushed[p]) == 0)
			return false;
	return true;
}

/* The consumer drains until the producers have stopped and everything they
 * pushed has arrived. */
static const char *mpsc_consume(struct race *r, uint32_t *next_seq, int64_t deadline_ms)
{
	int64_t stop_at = now_ms() + RACE_RUN_MS;
	uint32_t my_head = 0;
	unsigned spins = 0;

	for (;;) {
		int64_t n = hak_ring_sc_avail(&r->t->r, my_head);
		const char *err;

		if (n < 0)
			return "impossible tail";
		if (n == 0) {
			if (load_u32(&r->running) == 0 && hak_ring_sc_avail(&r->t->r, my_head) == 0)
				return NULL;
			if (now_ms() > deadline_ms)
				return "values never published (timed out)";
			if (mpsc_time_up(r, stop_at, deadline_ms))
				store_u32(&r->stop, 1);
			hak_backoff(&spins);
			continue;
		}
		err = mpsc_check(r, my_head, n, next_seq);
		if (err)
			return err;
		my_head += (uint32_t)n;
		hak_ring_sc_release(&r->t->r, my_head);
		if (mpsc_time_up(r, stop_at, deadline_ms))
			store_u32(&r->stop, 1);
	}
}

static void race_mpsc(unsigned nproducers)
{
	static struct race r;
	static struct race_thread rt[RACE_MAX_THREADS];
	pthread_t th[RACE_MAX_THREADS];
	uint32_t next_seq[RACE_MAX_THREADS] = {0};
	int64_t deadline_ms = now_ms() + RACE_DEADLINE_MS;
	const char *err;

	race_init(&r, nproducers);
	race_start(&r, rt, th, mpsc_producer);
	err = mpsc_consume(&r, next_seq, deadline_ms);
	race_join(&r, th, deadline_ms);
	if (err)
		fail_msg("consumer: %s", err);
	for (uint32_t p = 0; p < nproducers; p++) {
		/* Nothing lost at the end either. */
		assert_int_equal(next_seq[p], r.pushed[p]);
		assert_true(r.pushed[p] > 0);
	}
	race_fini(&r);
}

/* Two producers on two vCPUs run truly at once... */
static void test_race_mp_push_sc_consume_2(void **state)
{
	race_mpsc(2);
}

/* ...three get preempted between reserving and publishing. */
static void test_race_mp_push_sc_consume_3(void **state)
{
	race_mpsc(3);
}

/* --- one producer (sp helpers), many consumers (hak_ring_pop_mc) --- */

/* Odd consumers take batches (hak_ring_pop_mc_n), even ones single
 * descriptors: both kinds race for the same head. */
#define RACE_POP_BATCH 3u

static uint32_t spmc_pop(struct race_thread *rt, hak_desc_t *d)
{
	if (rt->id & 1)
		return hak_ring_pop_mc_n(&rt->race->t->r, d, RACE_POP_BATCH);
	return hak_ring_pop_mc(&rt->race->t->r, d) ? 1 : 0;
}

static void spmc_check(struct race *r, hak_desc_t d)
{
	uint32_t v = hak_desc_slot(d);

	if (v >= RACE_MAX_VALUES || hak_desc_gen(d) != (v ^ RACE_GEN_KEY)) {
		store_u32(&r->bad, 1);
		v = 0;
	}
	__atomic_fetch_add(&r->times_popped[v], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&r->popped_total, 1, __ATOMIC_RELEASE);
}

static void *spmc_consumer(void *arg)
{
	struct race_thread *rt = arg;
	struct race *r = rt->race;
	unsigned spins = 0;

	wait_go(r);
	/* pushed[0] is the producer's final count, valid once stop is set. */
	while (!load_u32(&r->stop) || load_u32(&r->popped_total) < load_u32(&r->pushed[0])) {
		hak_desc_t d[RACE_POP_BATCH];
		uint32_t n = spmc_pop(rt, d);

		if (n == 0) {
			hak_backoff(&spins);
			continue;
		}
		spins = 0;
		for (uint32_t i = 0; i < n; i++)
			spmc_check(r, d[i]);
	}
	return NULL;
}

/* The daemon's producer loop, with the daemon's helpers.  Returns the
 * number of values pushed, or -1 on an impossible head. */
static int64_t spmc_produce(struct race *r)
{
	int64_t stop_at = now_ms() + RACE_RUN_MS;
	uint32_t my_tail = 0, v = 0;
	unsigned spins = 0;

	while (v < RACE_MAX_VALUES && now_ms() < stop_at) {
		int64_t space = hak_ring_sp_space(&r->t->r, my_tail);

		if (space < 0)
			return -1;
		if (space == 0) {
			hak_backoff(&spins);
			continue;
		}
		for (; space > 0 && v < RACE_MAX_VALUES; space--, v++)
			hak_ring_sp_put(&r->t->r, &my_tail, hak_desc_make(v, v ^ RACE_GEN_KEY));
		hak_ring_sp_publish(&r->t->r, my_tail);
	}
	return v;
}

/* Consumers stop once they have popped everything; when a pop was lost
 * they never get there. */
static const char *spmc_wait_consumers(struct race *r, int64_t deadline_ms)
{
	unsigned spins = 0;

	while (load_u32(&r->popped_total) < load_u32(&r->pushed[0])) {
		if (now_ms() > deadline_ms)
			return "values lost (timed out)";
		hak_backoff(&spins);
	}
	return NULL;
}

static void race_spmc(unsigned nconsumers)
{
	static struct race r;
	static struct race_thread rt[RACE_MAX_THREADS];
	pthread_t th[RACE_MAX_THREADS];
	int64_t deadline_ms = now_ms() + RACE_DEADLINE_MS;
	const char *err = NULL;
	int64_t pushed;

	race_init(&r, nconsumers);
	race_start(&r, rt, th, spmc_consumer);
	pushed = spmc_produce(&r);
	if (pushed < 0) {
		err = "impossible head";
		pushed = 0;
	}
	/* pushed before stop: consumers read it only after they see stop. */
	store_u32(&r.pushed[0], (uint32_t)pushed);
	if (!err)
		err = spmc_wait_consumers(&r, deadline_ms);
	race_join(&r, th, deadline_ms);
	if (err)
		fail_msg("producer: %s", err);
	assert_int_equal(r.bad, 0);
	assert_int_equal(r.popped_total, pushed);
	assert_true(pushed > 0);
	for (int64_t v = 0; v < pushed; v++)
		if (r.times_popped[v] != 1)
			fail_msg("value %lld popped %u times", (long long)v, r.times_popped[v]);
	race_fini(&r);
}

static void test_race_sp_produce_mc_pop_2(void **state)
{
	race_spmc(2);
}

static void test_race_sp_produce_mc_pop_3(void **state)
{
	race_spmc(3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_desc_roundtrip),
		cmocka_unit_test(test_push_pop_fifo),
		cmocka_unit_test(test_full_and_empty),
		cmocka_unit_test(test_batch_all_or_nothing),
		cmocka_unit_test(test_pop_batch),
		cmocka_unit_test(test_wraparound_mc_mp),
		cmocka_unit_test(test_wraparound_sp_sc),
		cmocka_unit_test(test_sp_helpers),
		cmocka_unit_test(test_sp_space_hostile_head),
		cmocka_unit_test(test_sc_helpers),
		cmocka_unit_test(test_sc_avail_hostile_tail),
		cmocka_unit_test(test_race_mp_push_sc_consume_2),
		cmocka_unit_test(test_race_mp_push_sc_consume_3),
		cmocka_unit_test(test_race_sp_produce_mc_pop_2),
		cmocka_unit_test(test_race_sp_produce_mc_pop_3),
	};

	/* 0 pass, 1 fail: not the count of failures, which could read as 77. */
	return cmocka_run_group_tests(tests, NULL, NULL) ? 1 : 0;
}
