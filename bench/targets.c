/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The targets, as ratios within one run, with the reason and a
 * proposal printed for each one missed.  The reasons are what profiles and
 * the measurements in docs/benchmarks.md showed on the machines this was
 * tuned on; they are printed only when the target is missed on this one.
 */
#include <string.h>

#include "bench.h"
#include "page.h"

#define CLS_4K 0

static const char *verdict(bool known, bool met)
{
	if (!known)
		return "not measured";
	return met ? "yes" : "**NO**";
}

void targets_report(struct bench *b, const char *scenario, const struct target_line *t, unsigned n)
{
	static struct table tab;
	unsigned missed = 0;

	table_init(&tab, "target|>measured|>limit|met");
	for (unsigned i = 0; i < n; i++) {
		bool known = t[i].value >= 0;
		bool met = known &&
			   (t[i].at_most ? t[i].value <= t[i].limit : t[i].value >= t[i].limit);
		char value[32] = "-";
		struct json j;

		missed += known && !met;
		if (known)
			snprintf(value, sizeof(value), "%.3g", t[i].value);
		table_row(&tab, "%s|%s|%s %.3g|%s", t[i].what, value,
			  t[i].at_most ? "<=" : ">=", t[i].limit, verdict(known, met));
		json_begin(&j, "targets");
		json_str(&j, "of", scenario);
		json_str(&j, "target", t[i].what);
		json_num(&j, "value", known ? t[i].value : -1, 4);
		json_num(&j, "limit", t[i].limit, 4);
		json_bool(&j, "at_most", t[i].at_most);
		json_bool(&j, "met", met);
		json_end(&j, b);
	}
	if (b->o->json)
		return;
	printf("### targets: %s\n\n", scenario);
	table_print(&tab);
	if (!missed)
		return;
	for (unsigned i = 0; i < n; i++) {
		bool met = t[i].at_most ? t[i].value <= t[i].limit : t[i].value >= t[i].limit;

		if (t[i].value < 0 || met)
			continue;
		printf("- **Missed: %s** (%.3g against %s %.3g).  Why: %s  What would reach it: "
		       "%s\n",
		       t[i].what, t[i].value, t[i].at_most ? "<=" : ">=", t[i].limit, t[i].why,
		       t[i].proposal);
	}
	printf("\n");
	fflush(stdout);
}

/* ---- page ---- */

enum kind {
	SPEED,	/* other's ns/page over hak's */
	PPS,	/* hak's pages/s over other's */
	CPU,	/* hak's whole-system CPU per page over other's */
	FAULTS, /* hak's page faults per page */
	SCALE,	/* hak's pages/s with 2 threads over 1 */
};

struct page_target {
	const char *what;
	enum regime rg;
	unsigned threads;
	enum kind kind;
	enum method_id other;
	double limit;
	bool at_most;
	const char *why, *proposal;
};

/* Why a target is missed and what would reach it, as measured while the
 * suite was built (2-vCPU VM, other jobs running).  Shared by the rows
 * they explain. */
#define WHY_HOT_PATH                                                                               \
	"The allocating thread pays ~4 atomic read-modify-writes per page (ready pop, "            \
	"release, local push, return pop, counters) and writes return batches into the "           \
	"shared return ring, whose lines the daemon last read; its first touch of a page the "     \
	"daemon zeroed on another core misses the cache and the TLB.  retain-memset clears a "     \
	"page that is already in its own L1/L2 (~40 ns)."
#define FIX_HOT_PATH                                                                               \
	"A per-thread LIFO cache of freed slots in libhakclient (no atomics on free, returns "     \
	"and ready pops in batches with one compare-and-swap each) would leave the touch as the "  \
	"only cost; measured alone, pop + touch is ~35 ns."
#define WHY_FILL                                                                                   \
	"A program that fills the page at once writes 64 lines the daemon zeroed on another "      \
	"core; they come from the L3 or memory (140-200 ns per page here) while retain-memset "    \
	"zeroes and fills a page already in its own L1/L2.  Zeroing elsewhere only shifts the "    \
	"time when the page is filled right away (FreeBSD's and NetBSD's lesson); "                \
	"hak-dirty, which skips zeroing, shows the bound."
#define FIX_FILL                                                                                   \
	"Callers that overwrite what they get should ask HAK_ALLOC_DIRTY_OK (no zeroing "          \
	"anywhere); for zeroed pages, a short ready ring (zeroed just before use, still in "       \
	"the L3) and temporal stores; beyond that the target needs a page in the caller's own "    \
	"cache, i.e. zeroing on its own core (local mode)."
#define WHY_FALLBACK                                                                               \
	"The fallback zeroes the oldest of the ~300 slots (over 1 MiB) of a FIFO cache shared "    \
	"by all threads, out of the L2, while retain-memset reuses the slot it freed last (LIFO, " \
	"hot); and a fallback allocation still pays a failed ready pop, a fence and the "          \
	"cache's atomics."
#define FIX_FALLBACK                                                                               \
	"Reuse own freed slots last in, first out (a per-thread or per-class LIFO in front of "    \
	"the FIFO that feeds the daemon): the inline path is then retain-memset plus a pop."
#define WHY_CPU                                                                                    \
	"The daemon's zeroing of a page dirty in the client's cache costs at least the client's "  \
	"own memset of a hot page (the lines must move or go to memory), and every wakeup of the " \
	"daemon (a doorbell, a worker handoff, a completion) costs 10-50 us of CPU on this VM; "   \
	"whole-system CPU per zeroed page therefore stays above retain-memset's single memset."
#define FIX_CPU                                                                                    \
	"Zero only what must be zero (HAK_ALLOC_DIRTY_OK for allocators serving malloc); fewer, "  \
	"larger wakeups (a worker that polls briefly while returns keep coming); the remainder "   \
	"is the cost of moving the page between cores, which no scheduling removes."
#define WHY_SCALE                                                                                  \
	"On 2 vCPUs, two allocating threads leave the daemon no core of its own (it preempts "     \
	"them, and the ready ring runs dry), and both threads share the class's local cache and "  \
	"ring indices (cache lines bouncing between cores)."
#define FIX_SCALE                                                                                  \
	"Per-thread caches (no shared line per allocation); measure on a machine with a core to "  \
	"spare for the daemon."

static const struct page_target page_targets_spec[] = {
	{"burst, 4 KiB: hak faster than mmap per page (x)", R_BURST, 1, SPEED, M_MMAP, 50, false,
	 WHY_HOT_PATH, FIX_HOT_PATH},
	{"burst, 4 KiB: hak faster than retain-memset per page (x)", R_BURST, 1, SPEED,
	 M_RETAIN_MEMSET, 2, false, WHY_HOT_PATH, FIX_HOT_PATH},
	{"burst, 4 KiB: hak page faults per page", R_BURST, 1, FAULTS, M_HAK, 0.01, true,
	 "The pool was not (yet) mapped when pages were taken: mmap fallbacks.",
	 "A larger pool, or waiting for the prefault before the first allocations."},
	{"sustained, 4 KiB: hak pages/s over retain-memset", R_SUSTAINED, 1, PPS, M_RETAIN_MEMSET,
	 1.5, false, WHY_FILL, FIX_FILL},
	{"sustained, 4 KiB: hak pages/s over mmap", R_SUSTAINED, 1, PPS, M_MMAP, 15, false,
	 WHY_FILL, FIX_FILL},
	{"sustained, 2 threads, 4 KiB: hak pages/s over retain-memset (never below)", R_SUSTAINED,
	 2, PPS, M_RETAIN_MEMSET, 1, false, WHY_FILL " " WHY_FALLBACK, FIX_FALLBACK},
	{"stalled daemon, 4 KiB: hak pages/s over retain-memset (never below)", R_STALLED, 1, PPS,
	 M_RETAIN_MEMSET, 1, false, WHY_FALLBACK, FIX_FALLBACK},
	{"stalled daemon, 2 threads, 4 KiB: hak pages/s over retain-memset (never below)",
	 R_STALLED, 2, PPS, M_RETAIN_MEMSET, 1, false, WHY_FALLBACK, FIX_FALLBACK},
	{"burst, 4 KiB: whole-system CPU per page, hak over mmap", R_BURST, 1, CPU, M_MMAP, 0.2,
	 true, WHY_CPU, FIX_CPU},
	{"burst, 4 KiB: whole-system CPU per page, hak over retain-memset", R_BURST, 1, CPU,
	 M_RETAIN_MEMSET, 1.2, true, WHY_CPU, FIX_CPU},
	{"sustained, 4 KiB: whole-system CPU per page, hak over mmap", R_SUSTAINED, 1, CPU, M_MMAP,
	 0.2, true, WHY_CPU, FIX_CPU},
	{"sustained, 4 KiB: whole-system CPU per page, hak over retain-memset", R_SUSTAINED, 1, CPU,
	 M_RETAIN_MEMSET, 1.2, true, WHY_FILL " " WHY_CPU, FIX_CPU},
	{"burst, 4 KiB: hak pages/s, 2 threads over 1", R_BURST, 2, SCALE, M_HAK, 1.6, false,
	 WHY_SCALE, FIX_SCALE},
	{"sustained, 4 KiB: hak pages/s, 2 threads over 1", R_SUSTAINED, 2, SCALE, M_HAK, 1.6,
	 false, WHY_SCALE, FIX_SCALE},
};

#define NR_PAGE_TARGETS (sizeof(page_targets_spec) / sizeof(page_targets_spec[0]))

static double page_value(const struct page_target *t)
{
	const struct page_result *hak = page_result(t->rg, t->threads, CLS_4K, M_HAK);
	const struct page_result *o = page_result(t->rg, t->threads, CLS_4K, t->other);

	if (t->kind == SCALE)
		o = page_result(t->rg, 1, CLS_4K, M_HAK);
	if (!hak || !o)
		return -1;
	switch (t->kind) {
	case SPEED:
		return o->ns / hak->ns;
	case PPS:
	case SCALE:
		return hak->pps / o->pps;
	case CPU:
		return hak->cpu / o->cpu;
	case FAULTS:
		return hak->faults;
	}
	return -1;
}

void page_targets(struct bench *b)
{
	struct target_line t[NR_PAGE_TARGETS];

	for (unsigned i = 0; i < NR_PAGE_TARGETS; i++) {
		const struct page_target *s = &page_targets_spec[i];

		t[i] = (struct target_line){s->what,	page_value(s), s->limit,
					    s->at_most, s->why,	       s->proposal};
	}
	targets_report(b, "page", t, NR_PAGE_TARGETS);
}
