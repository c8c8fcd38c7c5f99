/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Command-line helpers of the test programs: see testutil.h. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

/* Each of K, M, G multiplies by this much more. */
#define SIZE_UNIT_SHIFT 10

__attribute__((format(printf, 3, 4), noreturn)) static void
usage_error(const char *prog, const char *opt, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: %s: ", prog, opt);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(TU_EXIT_USAGE);
}

/* The leading number of s in *v, *end after it: 0, -EINVAL when s does
 * not start with a digit (strtoull alone would take "-1" as its largest
 * value, and leading spaces), -ERANGE above UINT64_MAX. */
static int leading_number(const char *s, uint64_t *v, char **end)
{
	unsigned long long n;

	if (!isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	n = strtoull(s, end, 0);
	*v = n;
	return errno == ERANGE ? -ERANGE : 0;
}

uint64_t tu_parse_u64(const char *prog, const char *opt, const char *s, uint64_t min, uint64_t max)
{
	char *end = NULL;
	uint64_t v;
	int r = leading_number(s, &v, &end);

	if (r == -EINVAL || *end)
		usage_error(prog, opt, "'%s' is not a number", s);
	if (r == -ERANGE || v < min || v > max)
		usage_error(prog, opt, "%s is out of range (%llu to %llu)", s,
			    (unsigned long long)min, (unsigned long long)max);
	return v;
}

unsigned tu_parse_uint(const char *prog, const char *opt, const char *s, unsigned min, unsigned max)
{
	return (unsigned)tu_parse_u64(prog, opt, s, min, max);
}

uint64_t tu_parse_size(const char *prog, const char *opt, const char *s)
{
	static const char units[] = "KMG";
	char *end = NULL;
	const char *u;
	unsigned shift;
	uint64_t v;
	int r = leading_number(s, &v, &end);

	u = r == -EINVAL || !*end ? NULL : strchr(units, *end);
	if (r == -EINVAL || (*end && (!u || end[1])))
		usage_error(prog, opt, "'%s' is not a size (a number, then K, M or G)", s);
	shift = u ? SIZE_UNIT_SHIFT * (unsigned)(u - units + 1) : 0;
	if (r == -ERANGE || v > UINT64_MAX >> shift)
		usage_error(prog, opt, "%s is too large", s);
	return v << shift;
}

uint64_t tu_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void tu_sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Held across a whole line: threads of hak-client say things at once. */
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

void tu_say(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&out_lock);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	pthread_mutex_unlock(&out_lock);
}

/* _exit: a failing thread must not run the exit handlers under the
 * others; the lock stays held so that no line follows ours. */
void tu_fail(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&out_lock);
	fputs("fail ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	_exit(1);
}
