/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * `hakbench apps`: unchanged programs under the allocators a user could
 * pick instead of hakzerod (glibc, jemalloc, tcmalloc, mimalloc) and under
 * jemalloc with libhakjemalloc, in shared and local mode, each on its
 * defaults, plus jemalloc at decay 0 with and without the adapter and an
 * A/A control (stock jemalloc twice).
 *
 *   apps.c         the command line, the rounds, the shuffle
 *   apps-setups.c  the setups: which libraries, which variables, the
 *                  children's environment
 *   apps-jobs.c    the programs: the workload programs, numpy, a short
 *                  program started many times, redis-server
 *   apps-daemon.c  whether a hakzerod answers, its counters
 *   apps-report.c  medians, ratios within a round, the tables, JSON
 */
#ifndef HAKBENCH_APPS_H
#define HAKBENCH_APPS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define APPS_ROUNDS_DEFAULT 5
#define APPS_ROUNDS_QUICK 3
#define APPS_ROUNDS_MAX 31
#define APPS_MAX_METRICS 3
#define APPS_MAX_ENV 512
/* A run still going after this long is killed, and its setup not run
 * again for that program.  Normal runs take a few seconds; at a load of
 * 36 on 2 cores stock jemalloc's calloc run passed 30 s, so the bound is
 * far above that. */
#define APPS_RUN_TIMEOUT_S 120

enum apps_setup {
	SETUP_GLIBC,
	SETUP_JEMALLOC,
	SETUP_JEMALLOC_AA,
	SETUP_HAK_SHARED,
	SETUP_HAK_LOCAL,
	SETUP_TCMALLOC,
	SETUP_MIMALLOC,
	SETUP_JEMALLOC_D0,
	SETUP_HAK_SHARED_D0,
	SETUP_NR
};

struct apps_setup_info {
	const char *name;
	bool peer;	 /* what a user would install instead of hakzerod */
	bool shared;	 /* needs a running hakzerod */
	bool adapter;	 /* libhakjemalloc preloaded */
	bool frugal;	 /* MALLOC_CONF=dirty_decay_ms:0,muzzy_decay_ms:0 */
	const char *lib; /* "jemalloc", "tcmalloc", "mimalloc" or NULL (glibc) */
};

extern const struct apps_setup_info apps_setups[SETUP_NR];

/* Paths, and what is there. */
struct apps_ctx {
	char exe[PATH_MAX];
	char jemalloc[PATH_MAX], adapter[PATH_MAX], tcmalloc[PATH_MAX], mimalloc[PATH_MAX];
	char workload[PATH_MAX]; /* hakbench-workload */
	char python[PATH_MAX];
	char tmpdir[PATH_MAX];
	const char *socket;	    /* hakzerod's, for the shared rows */
	const char *skip[SETUP_NR]; /* why a setup does not run, or NULL */
	bool daemon;		    /* a hakzerod answers */
	bool admin;		    /* its admin STATS answers us */
	bool quick;
};

/* A child's environment: the parent's without the allocator variables,
 * plus the setup's. */
struct apps_env {
	char *v[APPS_MAX_ENV];
	char preload[2 * PATH_MAX + 16];
	unsigned n;
};

/* What one run of a program gives for one of its figures. */
struct apps_sample {
	double score;	     /* higher is better: requests/s, operations/s, starts/s */
	uint64_t faults;     /* minor + major faults of the program (per start) */
	uint64_t maxrss_kib; /* max RSS of the program */
	int64_t zeroed;	     /* pages the daemon zeroed during the run, -1 unknown */
	int64_t returned;    /* slots returned to the daemon during the run, -1 unknown */
};

struct apps_job;
/* Runs the program once under env; fills out[0..nmetrics).  Returns 0,
 * or -errno when the run failed. */
typedef int (*apps_run_fn)(const struct apps_ctx *c, const struct apps_job *j,
			   const struct apps_env *env, struct apps_sample *out);

struct apps_job {
	const char *name;
	const char *what;		       /* one line: what the program does */
	const char *metrics[APPS_MAX_METRICS]; /* figure names; NULL ends */
	const char *unit;
	apps_run_fn run;
	const char *arg; /* the workload's name, redis' value size... */
	uint64_t ops, quick_ops;
	bool fault_bound; /* the fault-bound workloads */
	const char *skip; /* why it does not run, or NULL (set at start) */
};

/* ---- apps-setups.c ---- */

/* Finds the libraries and programs; fills c->skip. */
void apps_find(struct apps_ctx *c);
void apps_env_build(const struct apps_ctx *c, enum apps_setup s, struct apps_env *e);
/* The environment without the allocator variables and with no preload
 * (redis-benchmark, the probes). */
void apps_env_clean(struct apps_env *e);

/* ---- apps-jobs.c ---- */

extern struct apps_job apps_jobs[];
extern const unsigned apps_njobs;
unsigned apps_job_metrics(const struct apps_job *j);
/* Marks the jobs whose program is missing. */
void apps_jobs_probe(const struct apps_ctx *c);

/* ---- apps-daemon.c ---- */

bool apps_daemon_answers(const char *socket);
/* The daemon's zeroed_pages and returned_slots (admin STATS); false when
 * it does not answer or refuses. */
bool apps_daemon_counters(const char *socket, uint64_t *zeroed, uint64_t *returned);

/* ---- apps-report.c ---- */

struct apps_cell {
	struct apps_sample s[APPS_ROUNDS_MAX];
	bool ok[APPS_ROUNDS_MAX];
	unsigned failures;
	bool timed_out; /* killed at APPS_RUN_TIMEOUT_S: not run again */
};

struct apps_results {
	struct apps_cell cell[APPS_MAX_METRICS][SETUP_NR]; /* per figure and setup */
};

struct apps_report {
	const struct apps_ctx *c;
	unsigned rounds;
	bool json;
	FILE *json_file;
	char load_start[64], load_end[64];
};

void apps_report_head(const struct apps_report *r);
void apps_report_job(const struct apps_report *r, const struct apps_job *j,
		     const struct apps_results *res);
void apps_report_tail(const struct apps_report *r);

/* ---- apps.c ---- */

int bench_apps_main(int argc, char **argv);

#endif
