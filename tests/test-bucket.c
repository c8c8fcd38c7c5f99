/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Tests of the token bucket (daemon/bucket.c) on a clock of our own: what
 * one client may cost the daemon per second.  It must let a burst through,
 * refill at its rate and no faster, never hold more than its burst however
 * long it sat, say how long to wait when dry, repay debt before letting
 * anything through, and not overflow on any elapsed time or rate.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bucket.h"
#include "util.h"

#define RATE 1000 /* tokens per second: one per millisecond */
#define BURST 100
#define T0 (5 * NSEC_PER_SEC)
#define TOKEN_NS (NSEC_PER_SEC / RATE)

static void take_all(struct bucket *b, uint64_t now)
{
	for (unsigned i = 0; i < BURST; i++) {
		assert_int_equal(bucket_wait(b, 1, now), 0);
		bucket_take(b, 1);
	}
}

static void test_burst_then_dry(void **state)
{
	struct bucket b;

	bucket_init(&b, RATE, BURST, T0);
	take_all(&b, T0);
	/* Dry: the next token is one token's time away. */
	assert_int_equal(bucket_wait(&b, 1, T0), TOKEN_NS);
	assert_int_equal(bucket_wait(&b, BURST / 2, T0), BURST / 2 * TOKEN_NS);
}

static void test_refill_at_rate(void **state)
{
	struct bucket b;
	unsigned got = 0;

	bucket_init(&b, RATE, BURST, T0);
	take_all(&b, T0);
	/* Asked every 100 us for one second: exactly RATE tokens, no fraction
	 * lost to the frequent asking. */
	for (uint64_t t = T0; t <= T0 + NSEC_PER_SEC; t += TOKEN_NS / 10) {
		if (bucket_wait(&b, 1, t) == 0) {
			bucket_take(&b, 1);
			got++;
		}
	}
	assert_int_equal(got, RATE);
	/* Part way to the next token: the wait is what is left of it. */
	assert_int_equal(bucket_wait(&b, 1, T0 + NSEC_PER_SEC + TOKEN_NS / 4),
			 TOKEN_NS - TOKEN_NS / 4);
}

static void test_burst_is_the_cap(void **state)
{
	struct bucket b;

	bucket_init(&b, RATE, BURST, T0);
	/* An hour of idling earns one burst, not 3.6 million tokens. */
	take_all(&b, T0 + 3600 * NSEC_PER_SEC);
	assert_true(bucket_wait(&b, 1, T0 + 3600 * NSEC_PER_SEC) > 0);
	/* Nor does a full bucket bank the time it spent full. */
	bucket_init(&b, RATE, BURST, T0);
	assert_int_equal(bucket_wait(&b, 1, T0 + NSEC_PER_SEC), 0);
	take_all(&b, T0 + NSEC_PER_SEC);
	assert_int_equal(bucket_wait(&b, 1, T0 + NSEC_PER_SEC), TOKEN_NS);
	/* Asking for more than the burst means the burst. */
	assert_int_equal(bucket_wait(&b, 10 * BURST, T0 + NSEC_PER_SEC), BURST * TOKEN_NS);
}

static void test_debt_repaid_first(void **state)
{
	struct bucket b;

	bucket_init(&b, RATE, BURST, T0);
	bucket_take(&b, BURST / 2);
	assert_int_equal(bucket_wait(&b, 1, T0), 0);
	/* A job bigger than what is left: taken, into debt. */
	bucket_take(&b, BURST);
	assert_int_equal(bucket_wait(&b, 1, T0), (BURST / 2 + 1) * TOKEN_NS);
	/* A charge is capped at the burst: debt at most one burst. */
	bucket_take(&b, UINT64_MAX);
	bucket_take(&b, UINT64_MAX);
	assert_int_equal(bucket_wait(&b, 1, T0), (BURST + 1) * TOKEN_NS);
	assert_int_equal(bucket_wait(&b, 1, T0 + (BURST + 1) * TOKEN_NS), 0);
}

static void test_no_overflow(void **state)
{
	struct bucket b;

	/* The largest rate and burst, the longest elapsed time. */
	bucket_init(&b, UINT64_MAX, UINT64_MAX, 0);
	assert_int_equal(b.burst, BUCKET_MAX_BURST);
	bucket_take(&b, UINT64_MAX);
	bucket_take(&b, UINT64_MAX);
	assert_int_equal(b.tokens, -(int64_t)BUCKET_MAX_BURST);
	assert_int_equal(bucket_wait(&b, UINT64_MAX, UINT64_MAX), 0);
	assert_int_equal(b.tokens, (int64_t)BUCKET_MAX_BURST);
	/* The slowest rate, deepest in debt: a wait that does not wrap. */
	bucket_init(&b, 1, BUCKET_MAX_BURST, 0);
	bucket_take(&b, UINT64_MAX);
	bucket_take(&b, UINT64_MAX);
	assert_int_equal(bucket_wait(&b, UINT64_MAX, 0), UINT64_MAX);
	/* A clock that went backwards (or a bucket from the future): no
	 * refill, no wrap. */
	bucket_init(&b, RATE, BURST, T0);
	take_all(&b, T0);
	assert_int_equal(bucket_wait(&b, 1, 0), TOKEN_NS);
	assert_int_equal(b.tokens, 0);
}

static void test_rate_zero_is_unbounded(void **state)
{
	struct bucket b;

	bucket_init(&b, 0, BURST, T0);
	for (unsigned i = 0; i < 10 * BURST; i++) {
		assert_int_equal(bucket_wait(&b, 1, T0), 0);
		bucket_take(&b, UINT64_MAX);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_then_dry),
		cmocka_unit_test(test_refill_at_rate),
		cmocka_unit_test(test_burst_is_the_cap),
		cmocka_unit_test(test_debt_repaid_first),
		cmocka_unit_test(test_no_overflow),
		cmocka_unit_test(test_rate_zero_is_unbounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
