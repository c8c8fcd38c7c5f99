/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * `page`'s output: one table per regime and thread count, with each row's
 * ratios to mmap and to retain-memset in the same run, and the same rows as
 * JSON (the keys of the original `hakbench page`, plus threads, regime,
 * cpu_ns_per_page and baseline_ratio: mmap's ns/page over this method's).
 */
#include <stdio.h>

#include "bench.h"
#include "methods.h"
#include "page-report.h"
#include "page.h"

static double ratio(const struct page_result *base, double mine, bool cpu)
{
	if (!base || mine <= 0)
		return -1;
	return cpu ? mine / base->cpu : base->ns / mine;
}

static void served_text(const struct page_result *r, char *buf, size_t len)
{
	const struct hak_client_stats *s = &r->served;
	double all = (double)(s->alloc_ready + s->alloc_inline_zero + s->alloc_mmap +
			      s->alloc_dirty + s->alloc_large);

	if (all == 0) {
		snprintf(buf, len, "nothing");
		return;
	}
	snprintf(buf, len, "ready %.0f%%, own dirty %.0f%%, inline %.0f%%, mmap %.0f%%%s",
		 100.0 * (double)s->alloc_ready / all, 100.0 * (double)s->alloc_dirty / all,
		 100.0 * (double)s->alloc_inline_zero / all,
		 100.0 * (double)(s->alloc_mmap + s->alloc_large) / all,
		 r->connected ? "" : " (NOT CONNECTED)");
}

static void fmt_ratio(char *buf, size_t len, double v)
{
	if (v < 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.2f", v);
}

static void table_add(struct table *t, unsigned cls, int m, const struct page_result *r,
		      const struct page_result *mm, const struct page_result *rm)
{
	char name[16], range[40], dcpu[24], x_mm[16], x_rm[16], c_rm[16], served[64];

	snprintf(range, sizeof(range), "%.1f .. %.1f", r->ns_min, r->ns_max);
	if (r->daemon_cpu >= 0)
		snprintf(dcpu, sizeof(dcpu), "%.1f", r->daemon_cpu);
	else
		snprintf(dcpu, sizeof(dcpu), "-");
	fmt_ratio(x_mm, sizeof(x_mm), ratio(mm, r->ns, false));
	fmt_ratio(x_rm, sizeof(x_rm), ratio(rm, r->ns, false));
	fmt_ratio(c_rm, sizeof(c_rm), ratio(rm, r->cpu, true));
	if (methods[m].hak)
		served_text(r, served, sizeof(served));
	else
		snprintf(served, sizeof(served), "-");
	table_row(t, "%s|%s|%.1f|%s|%.2f|%.4f|%.1f|%s|%.1f|%s|%s|%s|%s",
		  size_name(class_size(cls), name, sizeof(name)), methods[m].name, r->ns, range,
		  r->pps / 1e6, r->faults, r->client_cpu, dcpu, r->cpu, x_mm, x_rm, c_rm, served);
}

static void json_served(struct json *j, const struct page_result *r)
{
	const struct hak_client_stats *s = &r->served;

	json_u64(j, "alloc_ready", s->alloc_ready);
	json_u64(j, "alloc_inline_zero", s->alloc_inline_zero);
	json_u64(j, "alloc_mmap", s->alloc_mmap);
	json_u64(j, "alloc_dirty", s->alloc_dirty);
	json_u64(j, "alloc_large", s->alloc_large);
	json_u64(j, "doorbells", s->doorbells);
	json_bool(j, "connected", r->connected);
}

static void json_add_row(struct bench *b, enum regime rg, unsigned threads, unsigned cls, int m,
			 const struct page_result *r, const struct page_result *mm,
			 const struct page_result *rm)
{
	struct json j;

	json_begin(&j, "page");
	json_str(&j, "method", methods[m].name);
	json_u64(&j, "class_bytes", class_size(cls));
	json_str(&j, "regime", regime_name(rg));
	json_u64(&j, "threads", threads);
	json_u64(&j, "pages", r->pages);
	json_u64(&j, "repeats", r->repeats);
	json_num(&j, "ns_per_page", r->ns, 1);
	json_num(&j, "min_ns_per_page", r->ns_min, 1);
	json_num(&j, "max_ns_per_page", r->ns_max, 1);
	json_num(&j, "pages_per_s", r->pps, 0);
	json_num(&j, "faults_per_page", r->faults, 4);
	json_num(&j, "cpu_ns_per_page", r->cpu, 1);
	json_num(&j, "client_cpu_ns_per_page", r->client_cpu, 1);
	json_num(&j, "daemon_cpu_ns_per_page", r->daemon_cpu, 1);
	json_num(&j, "baseline_ratio", ratio(mm, r->ns, false), 2);
	json_num(&j, "retain_memset_ratio", ratio(rm, r->ns, false), 2);
	json_num(&j, "cpu_vs_mmap", ratio(mm, r->cpu, true), 3);
	json_num(&j, "cpu_vs_retain_memset", ratio(rm, r->cpu, true), 3);
	if (methods[m].hak) {
		json_served(&j, r);
		json_num(&j, "mmap_over_hak", ratio(mm, r->ns, false), 2);
	}
	json_end(&j, b);
}

void page_report(struct bench *b, const struct page_results *all, enum regime rg, unsigned threads)
{
	static struct table t;
	bool any = false;

	table_init(&t, "class|method|>ns/page|>min .. max|>Mpages/s|>faults/page"
		       "|>client CPU ns/page|>daemon CPU ns/page|>CPU ns/page|>x mmap"
		       "|>x retain-memset|>CPU / retain-memset|served by (hak)");
	for (unsigned cls = 0; cls < BENCH_MAX_CLASSES; cls++) {
		const struct page_result *mm = page_result(all, rg, threads, cls, M_MMAP);
		const struct page_result *rm = page_result(all, rg, threads, cls, M_RETAIN_MEMSET);

		for (int m = 0; m < M_NR; m++) {
			const struct page_result *r = page_result(all, rg, threads, cls, m);

			if (!r)
				continue;
			any = true;
			table_add(&t, cls, m, r, mm, rm);
			json_add_row(b, rg, threads, cls, m, r, mm, rm);
		}
	}
	if (any && !b->o->json) {
		printf("### page, %s, %u thread%s\n\n", regime_name(rg), threads,
		       threads > 1 ? "s" : "");
		table_print(&t);
	}
}

void page_print_head(const struct options *o)
{
	static struct table t;

	printf("## page\n\n%u pages of 4 KiB per thread and run, %u KiB held at once, median "
	       "of %u runs after a warm-up run, the runs of all methods alternating.  A page is "
	       "4 KiB in every column, whatever the class.  ns/page: time of one allocating "
	       "thread (the bursts only, in the burst regime); CPU ns/page: whole system, the "
	       "allocating threads' CPU plus the daemon's until it is idle again; x mmap, x "
	       "retain-memset: how many times faster per page.\n\n",
	       o->pages, (unsigned)(o->batch_bytes / KIB), o->repeats);
	table_init(&t, "method|what");
	for (int m = 0; m < M_NR; m++)
		table_row(&t, "%s|%s", methods[m].name, methods[m].what);
	table_print(&t);
	printf("Regimes: burst (the pool has ready pages: a batch, one byte written per page, "
	       "freed, a %llu us pause), sustained (back to back, every byte written), stalled "
	       "(as sustained, the daemon stopped: hak's fallbacks).\n\n",
	       (unsigned long long)(BURST_GAP_NS / 1000));
}
