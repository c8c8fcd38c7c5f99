/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * `page`'s matrix: its regimes, classes and one result per cell.  Data
 * only: page.c fills a struct page_results, page-report.c prints one.
 */
#ifndef HAKBENCH_PAGE_H
#define HAKBENCH_PAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench.h"
#include "methods.h"

enum regime {
	/* The pool has ready pages: a batch of allocations, one byte written
	 * per page, freed, then a pause in which the daemon catches up. */
	R_BURST,
	/* Back to back, every byte of every page written, no pause. */
	R_SUSTAINED,
	/* As sustained, with the daemon stopped (SIGSTOP): the ready ring runs
	 * dry and every hak allocation takes a fallback. */
	R_STALLED,
	R_NR,
};

/* The pause after each burst: the daemon needs ~10-40 us to zero what a
 * burst returned, and a few more to be woken. */
#define BURST_GAP_NS (300 * 1000ull)

static inline const char *regime_name(enum regime rg)
{
	static const char *const names[R_NR] = {"burst", "sustained", "stalled"};

	return (unsigned)rg < R_NR ? names[rg] : "?";
}

/* The slot size of class cls (0 .. BENCH_MAX_CLASSES - 1). */
static inline size_t class_size(unsigned cls)
{
	static const size_t sizes[BENCH_MAX_CLASSES] = {4 * KIB, 64 * KIB, 2 * MIB};

	return sizes[cls];
}

struct page_result {
	bool done;
	uint64_t pages; /* per timed run, all threads */
	unsigned repeats;
	double ns, ns_min, ns_max; /* per page, for one allocating thread */
	double pps;		   /* pages per second, all threads */
	double cpu;		   /* whole system (client + daemon) per page */
	double client_cpu;
	double daemon_cpu; /* < 0: not counted (not hak) or unknown */
	double faults;	   /* per page */
	struct hak_client_stats served;
	bool connected;
};

struct page_results {
	struct page_result cell[R_NR][BENCH_MAX_THREADS][BENCH_MAX_CLASSES][M_NR];
};

/* The result of one cell of the matrix, or NULL when it did not run. */
static inline const struct page_result *page_result(const struct page_results *all, enum regime rg,
						    unsigned threads, unsigned cls,
						    enum method_id m)
{
	const struct page_result *r = &all->cell[rg][threads - 1][cls][m];

	return r->done ? r : NULL;
}

#endif
