/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hakbench's end-to-end workloads (mixed, calloc, churn): plain malloc /
 * calloc / free loops, run once per allocator configuration in a child
 * process (glibc, stock jemalloc, jemalloc + libhakjemalloc in shared and
 * in local mode; jemalloc's dirty_decay_ms at its default and at 0).
 *
 *   workloads.c  the loops and what a child measures around them
 *   runner.c     the configurations, the children, perf, the table
 */
#ifndef HAKBENCH_WORKLOADS_H
#define HAKBENCH_WORKLOADS_H

#include <stdbool.h>
#include <stdint.h>

/* Whether name is one of the workloads. */
bool bench_workload_known(const char *name);
/* hakbench NAME [options]: argv[0] is NAME.  Returns the exit status. */
int bench_workload_main(const char *name, int argc, char **argv);

/* ---- shared by workloads.c and runner.c ---- */

struct wl_params {
	const char *name;
	uint64_t steps;	  /* timed steps (operations) */
	uint32_t width;	  /* mixed: table slots */
	uint32_t seed;	  /* xorshift32 seed, not 0 */
	unsigned warm_ms; /* pause after the warm-up: background prefault settles */
};

struct wl_result {
	uint64_t ops;
	uint64_t ns;	       /* wall time of the timed loop */
	uint64_t faults;       /* page faults of the timed thread in the loop */
	uint64_t proc_cpu_ns;  /* CPU of the whole process in the loop */
	uint64_t sys_busy_ns;  /* CPU of the whole system (all cores) in the loop */
	uint64_t checksum;     /* keeps the loop's reads alive; mismatches are errors */
	uint64_t pool_extents; /* adapter: extents from the pool (0 without it) */
	uint64_t bytes_asked;
	uint64_t bytes_slots;
	uint64_t pool; /* adapter: 0 none, 1 hakzerod, 2 local */
};

/* One step of xorshift32 (Marsaglia): the workloads' generator, and the
 * runner's shuffle of each round.  *s must not be 0. */
uint32_t wl_xorshift32(uint32_t *s);
/* Runs workload p in this process and fills r; -EINVAL for a bad name,
 * -EIO when a calloc'd buffer did not read as zero. */
int wl_run(const struct wl_params *p, struct wl_result *r);
/* "key=value ..." on one line, and back. */
void wl_print_result(const struct wl_result *r);
int wl_parse_result(const char *line, struct wl_result *r);

#endif
