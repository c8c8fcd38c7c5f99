/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * `latency`: the distribution of one allocation's latency, measured from
 * the call until the first byte of the page is written (until the program
 * can use it: for mmap that includes the fault the first write takes).
 *
 * The load is steady: a window of slots (--batch-bytes), each step frees
 * the oldest and allocates a new one, paced at a fixed rate well below what
 * the daemon zeroes, so that its ready ring stays stocked.  Then, with
 * --stall-daemon, the same with the daemon stopped after the ring has been
 * drained: every allocation takes a fallback (own slot zeroed inline, or
 * mmap).  The max is whatever the machine did to the thread at the worst
 * moment (an interrupt, a preemption) and says more about the machine than
 * about the allocator; p99.9 is the figure with a target.
 */
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#include "bench.h"
#include "methods.h"

/* Pacing: this many ns per 4 KiB page allocated (2 GB/s), well below what
 * one zeroing thread sustains even on a busy machine, so that the ring
 * stays stocked; each case takes about SAMPLE_NS, within the bounds. */
#define PACE_NS_PER_PAGE 2000u
#define SAMPLE_NS (400 * 1000 * 1000ull)
#define MIN_SAMPLES 1000u
#define MAX_SAMPLES (64u * 1024u)
#define CALIBRATE_NS (20 * 1000 * 1000ull)

static const size_t lat_sizes[] = {4 * KIB, 64 * KIB, 2 * MIB};
#define NR_SIZES (sizeof(lat_sizes) / sizeof(lat_sizes[0]))

/* ---- a cheap clock ---- */

static double ns_per_tick = 1.0;

#if defined(__x86_64__)
/* lfence on both sides: the timed instructions neither start before the
 * first read nor end after the second. */
static inline uint64_t ticks(void)
{
	uint64_t t;

	_mm_lfence();
	t = __rdtsc();
	_mm_lfence();
	return t;
}

static inline void cpu_relax(void)
{
	_mm_pause();
}

static void calibrate(void)
{
	uint64_t n0 = now_ns(), t0 = ticks(), n1, t1;

	while ((n1 = now_ns()) - n0 < CALIBRATE_NS)
		;
	t1 = ticks();
	ns_per_tick = (double)(n1 - n0) / (double)(t1 - t0);
}
#else
static inline uint64_t ticks(void)
{
	return now_ns();
}

static inline void cpu_relax(void)
{
}

static void calibrate(void)
{
}
#endif

/* The cost of reading the clock twice, subtracted from every sample. */
static uint64_t clock_overhead(void)
{
	uint64_t best = UINT64_MAX;

	for (int i = 0; i < 1000; i++) {
		uint64_t t0 = ticks(), t1 = ticks();

		best = t1 - t0 < best ? t1 - t0 : best;
	}
	return best;
}

/* ---- one case ---- */

struct lat_case {
	int method;
	size_t size;
	const char *phase; /* "ready" or "dry" */
	unsigned n;
	double p50, p99, p999, max, mean; /* ns */
	struct hak_client_stats served;
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static double pct(const uint64_t *v, unsigned n, double p)
{
	unsigned i = (unsigned)(p * (n - 1) + 0.5);

	return (double)v[i < n ? i : n - 1] * ns_per_tick;
}

static void steps(struct mstate *st, const struct method *m, void **win, unsigned w, unsigned n,
		  uint64_t *lat)
{
	uint64_t over = clock_overhead();
	uint64_t pace = (uint64_t)((double)PACE_NS_PER_PAGE * (st->size / PAGE) / ns_per_tick);
	uint64_t next = ticks();

	for (unsigned i = 0; i < n; i++) {
		unsigned k = i % w;
		uint64_t t0, t1;

		m->give(st, win[k]);
		t0 = ticks();
		win[k] = m->take(st);
		*(volatile char *)win[k] = 1;
		t1 = ticks();
		if (lat)
			lat[i] = t1 - t0 > over ? t1 - t0 - over : 0;
		next += pace;
		while (ticks() < next)
			cpu_relax();
	}
}

static void run_case(struct bench *b, struct lat_case *c, bool drain)
{
	static uint64_t lat[MAX_SAMPLES];
	static void *win[BATCH_MAX];
	struct mstate st = {.client = b->client, .size = c->size};
	const struct method *m = &methods[c->method];
	unsigned w = (unsigned)(b->o->batch_bytes / c->size), warm;
	struct hak_client_stats s0, s1;
	double sum = 0;

	w = w < 1 ? 1 : w > BATCH_MAX ? BATCH_MAX : w;
	c->n = (unsigned)(SAMPLE_NS / PACE_NS_PER_PAGE / (c->size / PAGE));
	c->n = c->n < MIN_SAMPLES ? MIN_SAMPLES : c->n > MAX_SAMPLES ? MAX_SAMPLES : c->n;
	/* Warm-up; drained: more steps than the pool has slots of the class. */
	warm = drain ? (unsigned)(bench_stats(b).pool_bytes / c->size) + w : w;
	for (unsigned i = 0; i < w; i++)
		win[i] = m->take(&st);
	steps(&st, m, win, w, warm, NULL);
	s0 = bench_stats(b);
	steps(&st, m, win, w, c->n, lat);
	s1 = bench_stats(b);
	for (unsigned i = 0; i < w; i++)
		m->give(&st, win[i]);
	mstate_reset(&st);
	memset(&c->served, 0, sizeof(c->served));
	stats_add_delta(&c->served, &s0, &s1);
	for (unsigned i = 0; i < c->n; i++)
		sum += (double)lat[i];
	qsort(lat, c->n, sizeof(lat[0]), cmp_u64);
	c->p50 = pct(lat, c->n, 0.5);
	c->p99 = pct(lat, c->n, 0.99);
	c->p999 = pct(lat, c->n, 0.999);
	c->max = (double)lat[c->n - 1] * ns_per_tick;
	c->mean = sum / c->n * ns_per_tick;
}

/* ---- output ---- */

static void served_text(const struct lat_case *c, char *buf, size_t len)
{
	const struct hak_client_stats *s = &c->served;
	double all = (double)(s->alloc_ready + s->alloc_inline_zero + s->alloc_mmap +
			      s->alloc_dirty + s->alloc_large);

	if (!methods[c->method].hak || all == 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "ready %.0f%%, inline %.0f%%, mmap %.0f%%",
			 100.0 * (double)s->alloc_ready / all,
			 100.0 * (double)s->alloc_inline_zero / all,
			 100.0 * (double)(s->alloc_mmap + s->alloc_large) / all);
}

static void add_case(struct bench *b, struct table *t, const struct lat_case *c)
{
	char name[16], served[64];
	struct json j;

	served_text(c, served, sizeof(served));
	table_row(t, "%s|%s|%s|%u|%.0f|%.0f|%.0f|%.0f|%.0f|%s", c->phase, methods[c->method].name,
		  size_name(c->size, name, sizeof(name)), c->n, c->p50, c->p99, c->p999, c->max,
		  c->mean, served);
	json_begin(&j, "latency");
	json_str(&j, "phase", c->phase);
	json_str(&j, "method", methods[c->method].name);
	json_u64(&j, "class_bytes", c->size);
	json_u64(&j, "samples", c->n);
	json_num(&j, "p50_ns", c->p50, 1);
	json_num(&j, "p99_ns", c->p99, 1);
	json_num(&j, "p999_ns", c->p999, 1);
	json_num(&j, "max_ns", c->max, 1);
	json_num(&j, "mean_ns", c->mean, 1);
	if (methods[c->method].hak) {
		json_u64(&j, "alloc_ready", c->served.alloc_ready);
		json_u64(&j, "alloc_inline_zero", c->served.alloc_inline_zero);
		json_u64(&j, "alloc_mmap", c->served.alloc_mmap);
	}
	json_end(&j, b);
}

static void measure(struct bench *b, struct table *t, int method, size_t size, bool dry,
		    struct lat_case *out)
{
	*out = (struct lat_case){.method = method, .size = size, .phase = dry ? "dry" : "ready"};
	fprintf(stderr, "hakbench: latency, %s, %s, class %zu\n", out->phase, methods[method].name,
		size);
	run_case(b, out, dry);
	add_case(b, t, out);
	if (!dry && methods[method].hak)
		daemon_quiesce(b);
}

static void dry_cases(struct bench *b, struct table *t)
{
	struct lat_case c;

	if (!b->o->stall_daemon || !bench_connected(b) || !daemon_pause(b, true)) {
		fprintf(stderr, "hakbench: latency, dry: skipped (needs --stall-daemon and a "
				"daemon hakbench may stop)\n");
		return;
	}
	for (size_t i = 0; i < NR_SIZES; i++)
		measure(b, t, M_HAK, lat_sizes[i], true, &c);
	daemon_pause(b, false);
	daemon_quiesce(b);
}

int scenario_latency(struct bench *b)
{
	static struct table t;
	struct lat_case c;

	calibrate();
	table_init(&t, "phase|method|class|>samples|>p50 ns|>p99 ns|>p99.9 ns|>max ns|>mean ns"
		       "|served by (hak)");
	for (size_t i = 0; i < NR_SIZES; i++)
		measure(b, &t, M_HAK, lat_sizes[i], false, &c);
	measure(b, &t, M_RETAIN_MEMSET, lat_sizes[0], false, &c);
	measure(b, &t, M_MMAP, lat_sizes[0], false, &c);
	dry_cases(b, &t);
	if (!b->o->json) {
		printf("### latency: one allocation until its first byte is written, ns\n\n"
		       "Steady load, a %u KiB window, paced at %u ns per 4 KiB page.\n\n",
		       (unsigned)(b->o->batch_bytes / KIB), PACE_NS_PER_PAGE);
		table_print(&t);
	}
	return 0;
}
