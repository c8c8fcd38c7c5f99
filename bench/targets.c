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

void targets_report(struct bench *b, const char *scenario, const struct target_line *t,
		    unsigned n)
{
	static struct table tab;
	unsigned missed = 0;

	table_init(&tab, "target|>measured|>limit|met");
	for (unsigned i = 0; i < n; i++) {
		bool known = t[i].value >= 0;
		bool met = known && (t[i].at_most ? t[i].value <= t[i].limit
						  : t[i].value >= t[i].limit);
		struct json j;

		missed += known && !met;
		table_row(&tab, "%s|%.3g|%s %.3g|%s", t[i].what, t[i].value,
			  t[i].at_most ? "<=" : ">=", t[i].limit,
			  !known ? "not measured" : met ? "yes" : "**NO**");
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

static const struct page_target page_targets_spec[] = {
	{"burst, 4 KiB: hak faster than mmap per page (x)", R_BURST, 1, SPEED, M_MMAP, 50, false,
	 "REASON", "PROPOSAL"},
	{"burst, 4 KiB: hak faster than retain-memset per page (x)", R_BURST, 1, SPEED,
	 M_RETAIN_MEMSET, 2, false, "REASON", "PROPOSAL"},
	{"burst, 4 KiB: hak page faults per page", R_BURST, 1, FAULTS, M_HAK, 0.01, true,
	 "REASON", "PROPOSAL"},
	{"sustained, 4 KiB: hak pages/s over retain-memset", R_SUSTAINED, 1, PPS,
	 M_RETAIN_MEMSET, 1.5, false, "REASON", "PROPOSAL"},
	{"sustained, 4 KiB: hak pages/s over mmap", R_SUSTAINED, 1, PPS, M_MMAP, 15, false,
	 "REASON", "PROPOSAL"},
	{"sustained, 2 threads, 4 KiB: hak pages/s over retain-memset (never below)", R_SUSTAINED,
	 2, PPS, M_RETAIN_MEMSET, 1, false, "REASON", "PROPOSAL"},
	{"stalled daemon, 4 KiB: hak pages/s over retain-memset (never below)", R_STALLED, 1, PPS,
	 M_RETAIN_MEMSET, 1, false, "REASON", "PROPOSAL"},
	{"stalled daemon, 2 threads, 4 KiB: hak pages/s over retain-memset (never below)",
	 R_STALLED, 2, PPS, M_RETAIN_MEMSET, 1, false, "REASON", "PROPOSAL"},
	{"burst, 4 KiB: whole-system CPU per page, hak over mmap", R_BURST, 1, CPU, M_MMAP, 0.2,
	 true, "REASON", "PROPOSAL"},
	{"burst, 4 KiB: whole-system CPU per page, hak over retain-memset", R_BURST, 1, CPU,
	 M_RETAIN_MEMSET, 1.2, true, "REASON", "PROPOSAL"},
	{"sustained, 4 KiB: whole-system CPU per page, hak over mmap", R_SUSTAINED, 1, CPU, M_MMAP,
	 0.2, true, "REASON", "PROPOSAL"},
	{"sustained, 4 KiB: whole-system CPU per page, hak over retain-memset", R_SUSTAINED, 1,
	 CPU, M_RETAIN_MEMSET, 1.2, true, "REASON", "PROPOSAL"},
	{"burst, 4 KiB: hak pages/s, 2 threads over 1", R_BURST, 2, SCALE, M_HAK, 1.6, false,
	 "REASON", "PROPOSAL"},
	{"sustained, 4 KiB: hak pages/s, 2 threads over 1", R_SUSTAINED, 2, SCALE, M_HAK, 1.6,
	 false, "REASON", "PROPOSAL"},
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

		t[i] = (struct target_line){s->what, page_value(s), s->limit, s->at_most, s->why,
					    s->proposal};
	}
	targets_report(b, "page", t, NR_PAGE_TARGETS);
}
