/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* `page`: its regimes and results, shared with its report. */
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

extern const char *const regime_names[R_NR];
extern const size_t class_sizes[BENCH_MAX_CLASSES];

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

/* The result of one cell of the matrix, or NULL when it did not run. */
const struct page_result *page_result(enum regime rg, unsigned threads, unsigned cls,
				      enum method_id m);

/* page-report.c: what the tables mean, once; then one table (and JSON
 * rows) per regime and thread count. */
void page_print_head(const struct options *o);
void page_report(struct bench *b, enum regime rg, unsigned threads);

#endif
