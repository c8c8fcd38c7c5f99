/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The figures of `hakbench apps`: for each program, figure and setup, the
 * median over the rounds of its score, of its ratio to stock jemalloc
 * taken within each round (so that a slow stretch of a shared machine
 * hits both sides of a ratio), the range of that ratio, page faults, max
 * RSS and the daemon's counters; then the best peer.  Markdown tables,
 * or one JSON object per line.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps.h"

#define KIB_PER_MIB 1024.0
/* Scores from here up are printed as whole numbers. */
#define SCORE_WHOLE 100.0
#define STR(x) #x
#define XSTR(x) STR(x)
#define APPS_TIMEOUT_TEXT XSTR(APPS_RUN_TIMEOUT_S) " s"

struct row_figs {
	unsigned n;				   /* rounds that ran */
	double score, ratio, ratio_min, ratio_max; /* ratio < 0: no baseline */
	double faults, maxrss_kib;
	double zeroed, returned; /* < 0: unknown */
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Sorts v; the middle value (the mean of the two middle ones for an even
 * count), or -1 for none. */
static double median(double *v, unsigned n)
{
	if (!n)
		return -1;
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void figs(const struct apps_report *r, const struct apps_cell *cell,
		 const struct apps_cell *base, struct row_figs *f)
{
	double score[APPS_ROUNDS_MAX], ratio[APPS_ROUNDS_MAX], faults[APPS_ROUNDS_MAX],
		rss[APPS_ROUNDS_MAX], zeroed[APPS_ROUNDS_MAX], returned[APPS_ROUNDS_MAX];
	unsigned nr = 0, nz = 0;

	memset(f, 0, sizeof(*f));
	for (unsigned k = 0; k < r->rounds; k++) {
		const struct apps_sample *s = &cell->s[k];

		if (!cell->ok[k])
			continue;
		score[f->n] = s->score;
		faults[f->n] = (double)s->faults;
		rss[f->n] = (double)s->maxrss_kib;
		if (s->zeroed >= 0) {
			zeroed[nz] = (double)s->zeroed;
			returned[nz++] = (double)s->returned;
		}
		f->n++;
		if (base->ok[k] && base->s[k].score > 0)
			ratio[nr++] = s->score / base->s[k].score;
	}
	f->score = median(score, f->n);
	f->faults = median(faults, f->n);
	f->maxrss_kib = median(rss, f->n);
	f->ratio = median(ratio, nr);
	f->ratio_min = nr ? ratio[0] : -1;
	f->ratio_max = nr ? ratio[nr - 1] : -1;
	f->zeroed = nz == f->n ? median(zeroed, nz) : -1;
	f->returned = nz == f->n ? median(returned, nz) : -1;
}

/* ---- output ---- */

__attribute__((format(printf, 2, 3))) static void json_line(const struct apps_report *r,
							    const char *fmt, ...)
{
	va_list ap;

	if (r->json) {
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		putchar('\n');
	}
	if (r->json_file) {
		va_start(ap, fmt);
		vfprintf(r->json_file, fmt, ap);
		va_end(ap);
		fputc('\n', r->json_file);
	}
}

/* A number for JSON: null when unknown. */
static const char *jnum(char *buf, size_t len, double v, int decimals)
{
	if (v < 0)
		snprintf(buf, len, "null");
	else
		snprintf(buf, len, "%.*f", decimals, v);
	return buf;
}

static void text(const struct apps_report *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void text(const struct apps_report *r, const char *fmt, ...)
{
	va_list ap;

	if (r->json)
		return;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}

static const char *fig_name(const struct apps_job *j, unsigned m)
{
	return j->metrics[m] ? j->metrics[m] : "";
}

static const char *status(const struct apps_report *r, const struct apps_job *j, enum apps_setup s,
			  const struct apps_cell *cell, const struct row_figs *f)
{
	if (j->skip)
		return j->skip;
	if (r->c->skip[s])
		return r->c->skip[s];
	if (cell->timed_out)
		return "hung: killed after " APPS_TIMEOUT_TEXT ", not run again";
	if (!f->n)
		return "failed";
	return cell->failures ? "some runs failed" : "ok";
}

static void row_text(const struct apps_report *r, const struct apps_job *j, unsigned m,
		     enum apps_setup s, const struct row_figs *f, const char *st)
{
	text(r, "| %s | %s |", fig_name(j, m), apps_setups[s].name);
	if (!f->n) {
		text(r, " %s | | | | | | |\n", st);
		return;
	}
	text(r, f->score >= SCORE_WHOLE ? " %.0f |" : " %.3g |", f->score);
	if (f->ratio >= 0)
		text(r, " %.2fx | %.2f-%.2fx |", f->ratio, f->ratio_min, f->ratio_max);
	else
		text(r, " - | - |");
	text(r, " %.0f | %.1f |", f->faults, f->maxrss_kib / KIB_PER_MIB);
	if (f->zeroed >= 0)
		text(r, " %.0f | %.0f |", f->zeroed, f->returned);
	else
		text(r, " - | - |");
	text(r, " %s |\n", strcmp(st, "ok") == 0 ? "" : st);
}

static void row_json(const struct apps_report *r, const struct apps_job *j, unsigned m,
		     enum apps_setup s, const struct row_figs *f, const char *st)
{
	char a[32], b[32], c[32], d[32], e[32], g[32], h[32], i[32];

	json_line(r,
		  "{\"scenario\":\"apps\",\"workload\":\"%s\",\"figure\":\"%s\",\"setup\":\"%s\","
		  "\"unit\":\"%s\",\"runs\":%u,\"median\":%s,\"ratio\":%s,\"ratio_min\":%s,"
		  "\"ratio_max\":%s,\"faults\":%s,\"maxrss_kib\":%s,\"zeroed_pages\":%s,"
		  "\"returned_slots\":%s,\"status\":\"%s\"}",
		  j->name, fig_name(j, m), apps_setups[s].name, j->unit, f->n,
		  jnum(a, sizeof(a), f->n ? f->score : -1, 2),
		  jnum(b, sizeof(b), f->n ? f->ratio : -1, 4),
		  jnum(c, sizeof(c), f->n ? f->ratio_min : -1, 4),
		  jnum(d, sizeof(d), f->n ? f->ratio_max : -1, 4),
		  jnum(e, sizeof(e), f->n ? f->faults : -1, 0),
		  jnum(g, sizeof(g), f->n ? f->maxrss_kib : -1, 0),
		  jnum(h, sizeof(h), f->n ? f->zeroed : -1, 0),
		  jnum(i, sizeof(i), f->n ? f->returned : -1, 0), st);
}

/* The best of the peers a user would pick instead, and where the adapter
 * stands against it. */
static void best_peer(const struct apps_report *r, const struct apps_job *j, unsigned m,
		      const struct row_figs *f)
{
	int best = -1;
	char a[32], b[32], c[32];
	double shared, local;

	for (int s = 0; s < SETUP_NR; s++)
		if (apps_setups[s].peer && f[s].n && f[s].ratio > 0 &&
		    (best < 0 || f[s].ratio > f[best].ratio))
			best = s;
	if (best < 0)
		return;
	shared = f[SETUP_HAK_SHARED].n ? f[SETUP_HAK_SHARED].ratio / f[best].ratio : -1;
	local = f[SETUP_HAK_LOCAL].n ? f[SETUP_HAK_LOCAL].ratio / f[best].ratio : -1;
	text(r, "\n%s%s%s: best peer **%s**, %.2fx stock jemalloc; jemalloc+hak shared ", j->name,
	     *fig_name(j, m) ? " " : "", fig_name(j, m), apps_setups[best].name, f[best].ratio);
	text(r, shared >= 0 ? "%.2fx of it" : "not run", shared);
	text(r, local >= 0 ? ", local %.2fx of it.\n" : ", local not run.\n", local);
	json_line(
		r,
		"{\"scenario\":\"apps\",\"workload\":\"%s\",\"figure\":\"%s\",\"best_peer\":\"%s\","
		"\"best_peer_ratio\":%s,\"hak_shared_vs_best\":%s,\"hak_local_vs_best\":%s}",
		j->name, fig_name(j, m), apps_setups[best].name,
		jnum(a, sizeof(a), f[best].ratio, 4), jnum(b, sizeof(b), shared, 4),
		jnum(c, sizeof(c), local, 4));
}

static void job_head(const struct apps_report *r, const struct apps_job *j)
{
	text(r,
	     "\n### apps: %s\n\n%s.  Median of %u interleaved rounds; ratios to stock jemalloc "
	     "taken within each round; %s.\n",
	     j->name, j->what, r->rounds, j->unit);
	if (j->metrics[0] && strncmp(j->name, "redis", 5) == 0)
		text(r,
		     "Faults and max RSS are the server's.  redis-server links Debian's jemalloc: "
		     "the glibc row runs that linked jemalloc, not glibc; the jemalloc row "
		     "preloads the same library; the adapter rows preload it and "
		     "libhakjemalloc, which puts the linked jemalloc's extents on the pool; "
		     "the tcmalloc and mimalloc rows replace malloc/free over the linked "
		     "jemalloc, which works but is not how anyone deploys them.\n");
	if (j->run && strcmp(j->unit, "starts/s") == 0)
		text(r, "Faults per start; max RSS the largest of one start.\n");
	text(r,
	     "\n| figure | setup | %s | vs jemalloc | range | faults | max RSS MiB "
	     "| daemon zeroed pages | slots returned | |\n",
	     j->unit);
	text(r, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n");
}

void apps_report_job(const struct apps_report *r, const struct apps_job *j,
		     const struct apps_results *res)
{
	unsigned nm = apps_job_metrics(j);

	job_head(r, j);
	for (unsigned m = 0; m < nm; m++) {
		struct row_figs f[SETUP_NR];

		for (int s = 0; s < SETUP_NR; s++) {
			const struct apps_cell *cell = &res->cell[m][s];
			const char *st;

			figs(r, cell, &res->cell[m][SETUP_JEMALLOC], &f[s]);
			st = status(r, j, (enum apps_setup)s, cell, &f[s]);
			row_text(r, j, m, (enum apps_setup)s, &f[s], st);
			row_json(r, j, m, (enum apps_setup)s, &f[s], st);
		}
		best_peer(r, j, m, f);
		if (m + 1 < nm)
			text(r,
			     "\n| figure | setup | %s | vs jemalloc | range | faults | max RSS "
			     "MiB | daemon zeroed pages | slots returned | |\n"
			     "|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
			     j->unit);
	}
}

void apps_report_head(const struct apps_report *r)
{
	text(r,
	     "\n## apps: unchanged programs against the allocators a user could pick\n\n"
	     "Each program runs unchanged under every setup, each on its defaults unless "
	     "the row says otherwise (MALLOC_CONF, HAK_MODE and the other allocator "
	     "variables are cleared in the children).  A round runs every setup once, in "
	     "an order shuffled afresh (seeded); the A/A control is stock jemalloc again: "
	     "its spread is the noise floor, and differences inside it are ties.  "
	     "\"daemon zeroed pages\" and \"slots returned\" are the hakzerod's own "
	     "counters (admin STATS) before and after each run: in the shared rows they "
	     "say whether the daemon zeroed anything or the client cleared its slots "
	     "inline.\n\n"
	     "load average at the start: %s\n",
	     r->load_start);
	json_line(r, "{\"scenario\":\"apps\",\"rounds\":%u,\"quick\":%s,\"loadavg_start\":\"%s\"}",
		  r->rounds, r->c->quick ? "true" : "false", r->load_start);
}

void apps_report_tail(const struct apps_report *r)
{
	text(r, "\nload average at the end: %s\n", r->load_end);
	json_line(r, "{\"scenario\":\"apps\",\"loadavg_end\":\"%s\"}", r->load_end);
}
