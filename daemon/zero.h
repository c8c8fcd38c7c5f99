/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Zeroing: the low-priority worker threads that zero returned slots in
 * place through the daemon's mapping of a pool.  The methods (rep stosb,
 * non-temporal stores, memset) and their measurement are in shared/, one
 * copy for the daemon and hakbench.
 */
#ifndef HAKD_ZERO_H
#define HAKD_ZERO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zero-kernels.h"
#include "zero-pick.h"

/* Whether every page of [p, p + len) is in its file's page cache (mincore);
 * false on error.  p is page-aligned. */
bool zero_all_resident(void *p, size_t len);

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
/* Times a sleeping worker was woken to a job (all workers). */
uint64_t zero_wakeups(void);
/* The method for slots below ZERO_LARGE_SLOT (the one status reports). */
enum zero_method zero_current_method(void);
/* The method for slots of slot_size bytes. */
enum zero_method zero_method_for(uint64_t slot_size);
double zero_current_gbps(void);
const double *zero_measured_gbps(void);

#endif
