/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Zeroing: the methods (rep stosb, non-temporal stores, memset), their
 * measurement, and the low-priority worker threads that zero returned slots
 * in place through the daemon's mapping of a pool.
 */
#ifndef HAKD_ZERO_H
#define HAKD_ZERO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum zero_method {
	ZERO_AUTO,	/* measure at start-up, take the fastest */
	ZERO_REP_STOSB, /* x86-64 "rep stosb" (fast with ERMS/FSRM) */
	ZERO_NT,	/* non-temporal stores (AVX2 or SSE2), no cache pollution */
	ZERO_MEMSET,	/* the C library's memset */
	ZERO_METHOD_NR,
};

/* Scratch buffer zero_measure() zeroes: larger than a last-level cache, so
 * that the numbers are those of zeroing memory, not cache. */
#define ZERO_MEASURE_BYTES (32u << 20)
#define ZERO_MEASURE_ROUNDS 3

const char *zero_method_name(enum zero_method m);
/* "auto", "rep-stosb", "nt", "memset" -> method, or -EINVAL. */
int zero_method_parse(const char *name);
bool zero_method_supported(enum zero_method m);

/* Zeroes [p, p + len) with method m (not ZERO_AUTO).  Returns 0, or
 * -EOPNOTSUPP for a method this CPU lacks.  Stores are globally visible
 * (fenced) when it returns. */
int zero_range(enum zero_method m, void *p, size_t len);

/* Measures every supported method on a scratch buffer, best of
 * ZERO_MEASURE_ROUNDS; gbps[m] is in GB/s (10^9 bytes), 0 for ZERO_AUTO and
 * unsupported methods.  Returns 0 or -errno. */
int zero_measure(double gbps[ZERO_METHOD_NR]);
/* The fastest measured method. */
enum zero_method zero_fastest(const double gbps[ZERO_METHOD_NR]);

/* ---- workers (zero-workers.c) ---- */

#define ZERO_JOB_SLOTS 64
#define ZERO_MAX_THREADS 64

/* A batch of slots of one class of one pool.  The submitter holds a
 * reference on owner for the job's lifetime; workers never touch owner. */
struct zero_job {
	struct zero_job *next;
	void *owner;
	char *base; /* slot 0 of the class in the daemon's mapping */
	uint64_t slot_size;
	unsigned cls;
	unsigned n;
	unsigned pending; /* backing operations still running (uring) */
	int error;	  /* set by the worker: 0, -EFAULT, -ECANCELED */
	uint64_t ns;	  /* time spent zeroing */
	uint32_t slot[ZERO_JOB_SLOTS];
};

struct zero_stats {
	uint64_t jobs;
	uint64_t pages; /* 4 KiB pages zeroed */
	uint64_t ns;
	uint64_t failed; /* jobs that faulted (SIGBUS) */
};

/* Starts threads workers zeroing with method (ZERO_AUTO: measure and pick)
 * at nice value nice.  Returns 0 or -errno. */
int zero_init(unsigned threads, enum zero_method method, int nice);
/* Joins the workers; jobs not started complete with -ECANCELED. */
void zero_stop(void);
void zero_fini(void);

/* Readable (eventfd) when jobs have completed. */
int zero_fd(void);
void zero_set_nice(int nice);
void zero_submit(struct zero_job *job);
/* Takes the list of completed jobs (linked by next), or NULL. */
struct zero_job *zero_take_done(void);

void zero_get_stats(struct zero_stats *st);
enum zero_method zero_current_method(void);
double zero_current_gbps(void);
const double *zero_measured_gbps(void);

#endif
