/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Command-line, output and clock helpers of the test programs the drivers start
 * (hak-client, hak-hostile).  A bad value is a usage error: said on
 * stderr as "PROG: OPTION: ..." and exit 2, before anything is connected,
 * so that a driver's typo cannot pass for a daemon failure.
 */
#ifndef HAK_TEST_TESTUTIL_H
#define HAK_TEST_TESTUTIL_H

#include <stdint.h>

#define TU_EXIT_USAGE 2

/* An unsigned number, decimal or 0x hex (strtoull's base 0), from min to
 * max: prog and opt (e.g. "hak-client", "--count") name it in the error. */
uint64_t tu_parse_u64(const char *prog, const char *opt, const char *s, uint64_t min, uint64_t max);
/* The same for an unsigned int. */
unsigned tu_parse_uint(const char *prog, const char *opt, const char *s, unsigned min,
		       unsigned max);
/* A byte count: a number with an optional K, M or G (times 1024 each). */
uint64_t tu_parse_size(const char *prog, const char *opt, const char *s);

/* One fact a line on stdout, flushed at once, whole lines even from
 * several threads. */
__attribute__((format(printf, 1, 2))) void tu_say(const char *fmt, ...);
/* "fail WHY" on stdout, then exit 1 (the driver reads the line). */
__attribute__((format(printf, 1, 2), noreturn)) void tu_fail(const char *fmt, ...);

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t tu_now_ms(void);
/* Sleeps ms milliseconds, through signals. */
void tu_sleep_ms(unsigned ms);

#endif
