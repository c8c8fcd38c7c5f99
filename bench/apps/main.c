/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hakbench-workload NAME OPS: runs one workload and prints
 * "RESULT ops=N ns=T" (T: wall time of the workload's loop, without the
 * program's start-up and exit, which `hakbench apps` measures around it).
 * Exit status 0, 1 when the workload failed, 2 on bad usage.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "workload.h"

#define NS_PER_SEC 1000000000ull
#define EXIT_USAGE 2

static const struct {
	const char *name;
	int (*run)(uint64_t ops);
} workloads[] = {
	{"bigbuf", wl_bigbuf}, {"xthread", wl_xthread}, {"threads", wl_threads},
	{"calloc", wl_calloc}, {"short", wl_short},
};

#define NR_WORKLOADS (sizeof(workloads) / sizeof(workloads[0]))

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	char *end;
	uint64_t ops, t0;
	int ret;

	if (argc != 3 || (ops = strtoull(argv[2], &end, 10)) == 0 || *end) {
		fprintf(stderr,
			"Usage: hakbench-workload bigbuf|xthread|threads|calloc|short OPS\n");
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < NR_WORKLOADS; i++) {
		if (strcmp(argv[1], workloads[i].name) != 0)
			continue;
		t0 = now_ns();
		ret = workloads[i].run(ops);
		if (ret == 0)
			printf("RESULT ops=%" PRIu64 " ns=%" PRIu64 "\n", ops, now_ns() - t0);
		return ret;
	}
	fprintf(stderr, "hakbench-workload: unknown workload '%s'\n", argv[1]);
	return EXIT_USAGE;
}
