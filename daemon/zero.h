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
/* The same without the fence: for zeroing many slots, then zero_fence()
 * once.  A fence after every 4 KiB slot waits each time for the
 * non-temporal stores to drain, which costs more than the stores. */
int zero_range_unfenced(enum zero_method m, void *p, size_t len);
/* Makes every store of zero_range_unfenced before it globally visible. */
void zero_fence(void);
/* Whether every page of [p, p + len) is in its file's page cache (mincore);
 * false on error.  p is page-aligned. */
bool zero_all_resident(void *p, size_t len);

/* Measures every supported method on a scratch buffer, best of
 * ZERO_MEASURE_ROUNDS; gbps[m] is in GB/s (10^9 bytes), 0 for ZERO_AUTO and
 * unsupported methods.  Returns 0 or -errno. */
int zero_measure(double gbps[ZERO_METHOD_NR]);
/* The fastest measured method. */
enum zero_method zero_fastest(const double gbps[ZERO_METHOD_NR]);

/* ---- zero_method auto (zero-pick.c) ---- */

/* Slots from this size up are "large": auto picks a method for them apart. */
#define ZERO_LARGE_SLOT (256u << 10)
/* The slot sizes auto measures for small and for large slots. */
#define ZERO_PICK_SMALL (4u << 10)
#define ZERO_PICK_LARGE (2u << 20)

struct zero_pick {
	double gbps[ZERO_METHOD_NR];	 /* zero_measure: raw bandwidth */
	double small_ns[ZERO_METHOD_NR]; /* end to end, ns per 4 KiB page; 0: not measured */
	double large_ns[ZERO_METHOD_NR];
	enum zero_method small, large; /* the cheapest for each */
	bool end_to_end;	       /* false: picked by bandwidth (one CPU only) */
	/* The choice kept from before (zero-cache.c), ZERO_AUTO: none; a
	 * near-tie keeps it. */
	enum zero_method prev_small, prev_large;
	bool cached; /* loaded from the state directory, not measured */
};

/* Methods within this many percent of the cheapest are a tie: runs on one
 * machine differ by about as much (nt and rep stosb traded places from
 * run to run). */
#define ZERO_PICK_MARGIN_PCT 10

/* The method with the lowest positive cost[] (fallback when none has
 * one), except that a near-tie (within ZERO_PICK_MARGIN_PCT) goes to prev
 * when it is among the tied, else to the first tied in enum order. */
enum zero_method zero_pick_cheapest(const double cost[ZERO_METHOD_NR], enum zero_method fallback,
				    enum zero_method prev);

/* ---- the choice kept across starts (zero-cache.c) ---- */

/* This machine's CPU, as the cache is keyed: the model name and the
 * number of CPUs (a second CPU is what the end-to-end measurement needs). */
#define ZERO_CPU_MAX 512
int zero_cache_cpu(char *buf, size_t len);
/* Loads into p the figures and the choice saved in dir for cpu, with
 * p->cached set: 0; -ESTALE when the file is for another CPU, -ENOENT or
 * -EINVAL when there is none or it is unreadable (p untouched). */
int zero_cache_load(const char *dir, const char *cpu, struct zero_pick *p);
/* Saves p's figures and picks for cpu in dir (atomically: a temporary
 * file renamed).  Returns 0 or -errno. */
int zero_cache_save(const char *dir, const char *cpu, const struct zero_pick *p);

/* Measures every supported method end to end (zeroing on this CPU a region
 * another CPU dirtied, plus that CPU's writes afterwards) for small and
 * large slots, and picks the cheapest of each; p->small and p->large stay
 * as they were when it cannot (-ENOTSUP: no second CPU).  Takes some
 * 10-50 ms, and pins the calling thread meanwhile.  Returns 0 or -errno. */
int zero_pick_end_to_end(struct zero_pick *p);
/* The bandwidths (zero_measure) and the picks by bandwidth, then
 * zero_pick_end_to_end. */
int zero_pick_measure(struct zero_pick *p);

/* ---- workers (zero-workers.c) ---- */

/* A job is at most ZERO_JOB_SLOTS slots and, past its first slot, at most
 * ZERO_JOB_BYTES: big enough that the wakeups around a job (the worker's,
 * the main loop's: several microseconds each, more on a VM) cost little
 * next to zeroing it, small enough (a few hundred microseconds of zeroing)
 * that a job of large slots does not keep other clients waiting long. */
#define ZERO_JOB_SLOTS 256
#define ZERO_JOB_BYTES (8u << 20)
#define ZERO_MAX_THREADS 64
/* A worker wakes the main loop at least once per this many finished jobs
 * (and whenever its queue runs empty). */
#define ZERO_SIGNAL_JOBS 4

/* A batch of slots of one class of one pool.  The submitter holds a
 * reference on owner for the job's lifetime; workers never touch owner. */
struct zero_job {
	struct zero_job *next;
	void *owner;
	char *base;	   /* slot 0 of the class in the daemon's mapping */
	int fd;		   /* the pool memfd, to punch pages that are not there */
	uint64_t file_off; /* offset of slot 0 of the class in the memfd */
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
/* The method for slots below ZERO_LARGE_SLOT (the one status reports). */
enum zero_method zero_current_method(void);
/* The method for slots of slot_size bytes. */
enum zero_method zero_method_for(uint64_t slot_size);
double zero_current_gbps(void);
const double *zero_measured_gbps(void);

#endif
