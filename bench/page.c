/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * `page`: allocate -> write -> free, for each class, method, regime and
 * thread count.
 *
 * A run is --pages 4 KiB pages per thread, taken --batch-bytes at a time
 * (an allocator takes a run of extents, then frees them; a same-slot
 * ping-pong is no real program).  Every method first has one untimed
 * warm-up run; then the timed runs of all methods alternate, repeat after
 * repeat, so that whatever else the machine does lands on every method
 * alike, and each figure is the median over the repeats.
 *
 * What is measured per run:
 *   ns/page      time of the allocating thread per page: the timed part of
 *                its loop (bursts only, in the burst regime) / its pages
 *   pages/s      all threads together
 *   CPU/page     whole system: the allocating threads' CPU time in the
 *                timed part, plus for hak methods the daemon's CPU from the
 *                start of the run until it has gone idle again (the
 *                zeroing a run causes is charged to that run)
 *   faults/page  page faults of the process in the run
 */
#include <pthread.h>
#include <string.h>

#include "bench.h"
#include "methods.h"
#include "page-report.h"
#include "page.h"

#define FILL_BYTE 0xa5

static struct page_results results;

/* One cell being measured. */
struct cell {
	struct bench *b;
	const struct method *m;
	enum regime rg;
	size_t size;
	unsigned allocs;  /* per thread and run */
	unsigned batch;	  /* slots held at once */
	unsigned threads; /* allocating threads */
	pthread_barrier_t bar;
};

struct worker {
	struct cell *c;
	struct mstate *st;
	uint64_t busy_ns, cpu_ns;
	void *slot[BATCH_MAX];
};

/* One run's figures. */
struct sample {
	double ns, pps, client_cpu, daemon_cpu;
	uint64_t faults;
};

/* ---- the loop ---- */

/* burst: one byte in every page, the touch that faults on fresh memory and
 * not on a pool page; otherwise every byte, as a program filling new
 * memory would.  The empty asm keeps the compiler from dropping stores to
 * memory that is freed next. */
static void write_slot(void *p, size_t size, bool every_byte)
{
	if (every_byte) {
		memset(p, FILL_BYTE, size);
	} else {
		volatile char *c = p;

		for (size_t off = 0; off < size; off += PAGE)
			c[off] = 1;
	}
	__asm__ __volatile__("" : : "r"(p) : "memory");
}

static void one_batch(struct worker *w, unsigned n)
{
	const struct method *m = w->c->m;
	size_t size = w->c->size;
	bool every_byte = w->c->rg != R_BURST;

	for (unsigned i = 0; i < n; i++)
		w->slot[i] = m->take(w->st);
	for (unsigned i = 0; i < n; i++)
		write_slot(w->slot[i], size, every_byte);
	for (unsigned i = 0; i < n; i++)
		m->give(w->st, w->slot[i]);
}

static unsigned next_batch(const struct cell *c, unsigned left)
{
	return left < c->batch ? left : c->batch;
}

/* Bursts start together on every thread (the barrier), so that two
 * threads really allocate at the same time. */
static void loop_bursts(struct worker *w)
{
	const struct cell *c = w->c;

	for (unsigned left = c->allocs, n; left > 0; left -= n) {
		uint64_t c0, t0;

		n = next_batch(c, left);
		pthread_barrier_wait(&w->c->bar);
		c0 = thread_cpu_ns();
		t0 = now_ns();
		one_batch(w, n);
		w->busy_ns += now_ns() - t0;
		w->cpu_ns += thread_cpu_ns() - c0;
		sleep_ns(BURST_GAP_NS);
	}
}

static void loop_sustained(struct worker *w)
{
	const struct cell *c = w->c;
	uint64_t c0, t0;

	pthread_barrier_wait(&w->c->bar);
	c0 = thread_cpu_ns();
	t0 = now_ns();
	for (unsigned left = c->allocs, n; left > 0; left -= n) {
		n = next_batch(c, left);
		one_batch(w, n);
	}
	w->busy_ns = now_ns() - t0;
	w->cpu_ns = thread_cpu_ns() - c0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	w->busy_ns = w->cpu_ns = 0;
	if (w->c->rg == R_BURST)
		loop_bursts(w);
	else
		loop_sustained(w);
	return NULL;
}

/* ---- one run ---- */

static uint64_t pages_per_thread(const struct cell *c)
{
	return (uint64_t)c->allocs * (c->size / PAGE);
}

static void spawn_and_join(struct cell *c, struct worker *w)
{
	pthread_t t[BENCH_MAX_THREADS];

	for (unsigned i = 0; i < c->threads; i++)
		if (pthread_create(&t[i], NULL, worker_main, &w[i]) != 0)
			die("pthread_create failed");
	for (unsigned i = 0; i < c->threads; i++)
		pthread_join(t[i], NULL);
}

static void run_once(struct cell *c, struct worker *w, struct sample *s)
{
	uint64_t pages = pages_per_thread(c), f0 = process_faults(), cpu = 0;
	int64_t d0 = c->m->hak ? daemon_cpu_ns(c->b) : -1, d1 = -1;

	spawn_and_join(c, w);
	s->faults = process_faults() - f0;
	if (d0 >= 0)
		d1 = daemon_quiesce(c->b);
	s->ns = s->pps = 0;
	for (unsigned i = 0; i < c->threads; i++) {
		double busy = (double)(w[i].busy_ns ? w[i].busy_ns : 1);

		s->ns += busy / (double)pages / c->threads;
		s->pps += (double)pages * 1e9 / busy;
		cpu += w[i].cpu_ns;
	}
	s->client_cpu = (double)cpu / (double)(pages * c->threads);
	s->daemon_cpu = d1 >= d0 && d0 >= 0 ? (double)(d1 - d0) / (double)(pages * c->threads) : -1;
}

/* ---- one cell of the matrix: all methods, one class ---- */

struct group {
	struct cell cell[M_NR];
	struct worker w[M_NR][BENCH_MAX_THREADS];
	struct sample s[M_NR][MAX_REPEATS];
	struct hak_client_stats served[M_NR];
};

static struct mstate states[M_NR][BENCH_MAX_THREADS];

static bool method_wanted(const struct bench *b, enum regime rg, int m)
{
	if (b->o->methods && !(b->o->methods & (1u << m)))
		return false;
	/* Stalled: only what the daemon's absence changes, and the reference. */
	return rg != R_STALLED || m == M_HAK || m == M_HAK_DIRTY || m == M_RETAIN_MEMSET;
}

static unsigned batch_of(const struct options *o, size_t size)
{
	unsigned n = (unsigned)(o->batch_bytes / size);

	return n < 1 ? 1 : n > BATCH_MAX ? BATCH_MAX : n;
}

static void cell_init(struct bench *b, struct group *g, int m, enum regime rg, unsigned threads,
		      size_t size)
{
	struct cell *c = &g->cell[m];
	size_t allocs = ((size_t)b->o->pages * PAGE + size - 1) / size;

	*c = (struct cell){.b = b,
			   .m = &methods[m],
			   .rg = rg,
			   .size = size,
			   .allocs = (unsigned)allocs,
			   .batch = batch_of(b->o, size),
			   .threads = threads};
	pthread_barrier_init(&c->bar, NULL, threads);
	for (unsigned i = 0; i < threads; i++) {
		states[m][i].client = b->client;
		states[m][i].size = size;
		g->w[m][i] = (struct worker){.c = c, .st = &states[m][i]};
	}
}

static void summarize(struct group *g, int m, unsigned repeats, struct page_result *r)
{
	double ns[MAX_REPEATS], v[4][MAX_REPEATS];
	uint64_t faults = 0;

	for (unsigned i = 0; i < repeats; i++) {
		const struct sample *s = &g->s[m][i];

		ns[i] = s->ns;
		v[0][i] = s->pps;
		v[1][i] = s->client_cpu;
		v[2][i] = s->daemon_cpu;
		v[3][i] = s->client_cpu + (s->daemon_cpu > 0 ? s->daemon_cpu : 0);
		faults += s->faults;
	}
	r->pages = pages_per_thread(&g->cell[m]) * g->cell[m].threads;
	r->repeats = repeats;
	r->ns = median(ns, repeats);
	r->ns_min = ns[0];
	r->ns_max = ns[repeats - 1];
	r->pps = median(v[0], repeats);
	r->client_cpu = median(v[1], repeats);
	r->daemon_cpu = g->cell[m].m->hak ? median(v[2], repeats) : -1;
	r->cpu = median(v[3], repeats);
	r->faults = (double)faults / (double)(r->pages * repeats);
	r->served = g->served[m];
	r->done = true;
}

static void run_cell(struct bench *b, struct group *g, enum regime rg, unsigned threads,
		     unsigned cls)
{
	unsigned repeats = b->o->repeats;

	for (int m = 0; m < M_NR; m++) {
		if (!method_wanted(b, rg, m))
			continue;
		cell_init(b, g, m, rg, threads, class_size(cls));
		run_once(&g->cell[m], g->w[m], &g->s[m][0]); /* warm-up: not kept */
	}
	for (unsigned r = 0; r < repeats; r++)
		for (int m = 0; m < M_NR; m++)
			if (method_wanted(b, rg, m)) {
				struct hak_client_stats a = bench_stats(b), z;

				run_once(&g->cell[m], g->w[m], &g->s[m][r]);
				z = bench_stats(b);
				stats_add_delta(&g->served[m], &a, &z);
			}
	for (int m = 0; m < M_NR; m++) {
		struct page_result *r = &results.cell[rg][threads - 1][cls][m];

		if (!method_wanted(b, rg, m))
			continue;
		summarize(g, m, repeats, r);
		r->connected = bench_connected(b);
		for (unsigned i = 0; i < threads; i++)
			mstate_reset(&states[m][i]);
		pthread_barrier_destroy(&g->cell[m].bar);
	}
}

/* ---- the scenario ---- */

static bool regime_possible(struct bench *b, enum regime rg)
{
	if (rg != R_STALLED)
		return true;
	if (!b->o->stall_daemon) {
		fprintf(stderr, "hakbench: page, stalled: skipped (--stall-daemon lets hakbench "
				"stop the daemon for it)\n");
		return false;
	}
	if (!bench_connected(b) || !daemon_pause(b, true)) {
		fprintf(stderr, "hakbench: page, stalled: skipped (cannot stop the daemon)\n");
		return false;
	}
	return true;
}

static bool wanted(unsigned mask, unsigned bit)
{
	return !mask || (mask & (1u << bit));
}

int scenario_page(struct bench *b)
{
	static struct group g;
	const struct options *o = b->o;

	if (o->repeats > MAX_REPEATS)
		die("page: at most %u repeats", MAX_REPEATS);
	if (!o->json)
		page_print_head(o);
	for (int rg = 0; rg < R_NR; rg++) {
		if (!wanted(o->regimes, rg) || !regime_possible(b, rg))
			continue;
		for (unsigned th = 1; th <= BENCH_MAX_THREADS; th++) {
			if (!wanted(o->threads, th - 1))
				continue;
			for (unsigned cls = 0; cls < BENCH_MAX_CLASSES; cls++)
				if (wanted(o->classes, cls)) {
					fprintf(stderr,
						"hakbench: page, %s, %u thread(s), class %zu\n",
						regime_name(rg), th, class_size(cls));
					run_cell(b, &g, rg, th, cls);
					memset(&g, 0, sizeof(g));
				}
			page_report(b, &results, rg, th);
		}
		if (rg == R_STALLED) {
			daemon_pause(b, false);
			daemon_quiesce(b);
		}
	}
	return 0;
}
