/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Helpers of the libhakclient unit tests (test-client.c, test-client-local.c).
 * Include after <cmocka.h> and "hakclient.h".
 */
#ifndef HAK_TEST_CLIENT_UNIT_H
#define HAK_TEST_CLIENT_UNIT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define MS_PER_S 1000
#define NS_PER_MS 1000000L

static inline void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / MS_PER_S,
			      .tv_nsec = (long)(ms % MS_PER_S) * NS_PER_MS};

	nanosleep(&ts, NULL);
}

static inline bool all_zero(const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/* The handle's counters; a failing get_stats fails the test. */
static inline struct hak_client_stats stats(struct hak_client *c)
{
	struct hak_client_stats st;

	assert_int_equal(hak_client_get_stats(c, &st, sizeof(st)), 0);
	return st;
}

#endif
