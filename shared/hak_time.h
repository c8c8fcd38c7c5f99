/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The monotonic clock in nanoseconds: one definition for the daemon, the
 * library, the zeroing measurement and the adapter. */
#ifndef HAK_TIME_H
#define HAK_TIME_H

#include <stdint.h>
#include <time.h>

static inline uint64_t hak_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

#endif
