/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * `zero`: how fast the daemon zeroes returned slots, against how fast one
 * core of this machine zeroes memory, both measured in this run.
 *
 * One core: the daemon's own zeroing code (zero_range: memset, rep stosb,
 * non-temporal stores) on a buffer several times the size of the L3 (what
 * zeroing memory costs), and on slot-sized buffers zeroed over and over
 * (the same slot hot in cache: the cheapest zeroing there is).
 *
 * The daemon: a client allocates, touches and frees slots of one class as
 * fast as it can, so that returns never stop coming; the daemon's counters
 * (admin STATS) give the pages its workers zeroed and the time they spent
 * zeroing, and /proc its CPU time, all threads (event loop included),
 * until it has gone idle after the load.  Its throughput is reported two
 * ways: per second of worker zeroing (the zeroing loop alone) and per
 * second of daemon CPU (everything the daemon does per page), and the
 * latter, the daemon's cost, as a share of the large-buffer memset.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench.h"
#include "methods.h"
#include "zero-pick.h"

#define ROUNDS 3
#define HOT_BYTES_PER_ROUND (256u * MIB)
#define L3_FALLBACK (32u * MIB)
#define LARGE_MIN (128u * MIB)
#define LARGE_L3_MULT 4u
#define LOAD_NS (NS_PER_SEC * 6 / 10)

static const size_t hot_sizes[] = {4 * KIB, 64 * KIB, 2 * MIB};
#define NR_HOT (sizeof(hot_sizes) / sizeof(hot_sizes[0]))
#define NR_CASES (NR_HOT + 1)

static size_t l3_bytes(void)
{
	FILE *f = fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "re");
	unsigned long kb = 0;

	if (f) {
		if (fscanf(f, "%luK", &kb) != 1)
			kb = 0;
		fclose(f);
	}
	return kb ? kb * KIB : L3_FALLBACK;
}

/* Best of ROUNDS, in GB/s: len bytes zeroed reps times per round. */
static double bandwidth(enum zero_method m, char *buf, size_t len, unsigned reps)
{
	uint64_t best = UINT64_MAX;

	for (int r = 0; r < ROUNDS; r++) {
		uint64_t t0 = now_ns(), dt;

		for (unsigned i = 0; i < reps; i++) {
			buf[0] = 1; /* keep the stores from looking redundant */
			zero_range(m, buf, len);
		}
		dt = now_ns() - t0;
		best = dt < best ? dt : best;
	}
	return (double)len * reps / (double)(best ? best : 1);
}

struct core_bw {
	size_t large;
	double gbps[ZERO_METHOD_NR][NR_CASES]; /* [method][hot sizes..., large] */
};

static void measure_core(struct core_bw *c)
{
	size_t len = l3_bytes() * LARGE_L3_MULT;
	char *buf;

	c->large = len < LARGE_MIN ? LARGE_MIN : len;
	buf = mmap(NULL, c->large, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		die("mmap(%zu): out of memory", c->large);
	/* Pools are in 4 KiB pages; and faults must not be part of the score. */
	madvise(buf, c->large, MADV_NOHUGEPAGE);
	memset(buf, 1, c->large);
	for (int m = ZERO_AUTO + 1; m < ZERO_METHOD_NR; m++) {
		if (!zero_method_supported(m))
			continue;
		for (size_t i = 0; i < NR_HOT; i++)
			c->gbps[m][i] =
				bandwidth(m, buf, hot_sizes[i], HOT_BYTES_PER_ROUND / hot_sizes[i]);
		c->gbps[m][NR_HOT] = bandwidth(m, buf, c->large, 1);
	}
	munmap(buf, c->large);
}

/* ---- the daemon under load ---- */

struct daemon_bw {
	size_t size;
	uint64_t pages, zero_ns;
	int64_t cpu_ns;
	bool counters;	    /* pages and zero_ns from the daemon's own counters */
	double worker_gbps; /* per second of worker zeroing */
	double cpu_gbps;    /* per second of daemon CPU */
};

static void load(struct bench *b, size_t size)
{
	struct mstate st = {.client = b->client, .size = size};
	unsigned batch = (unsigned)(b->o->batch_bytes / size);
	void *slot[BATCH_MAX];
	uint64_t t0 = now_ns();

	batch = batch < 1 ? 1 : batch > BATCH_MAX ? BATCH_MAX : batch;
	while (now_ns() - t0 < LOAD_NS) {
		for (unsigned i = 0; i < batch; i++) {
			slot[i] = methods[M_HAK].take(&st);
			*(volatile char *)slot[i] = 1;
		}
		for (unsigned i = 0; i < batch; i++)
			methods[M_HAK].give(&st, slot[i]);
	}
}

static void measure_daemon(struct bench *b, size_t size, struct daemon_bw *d)
{
	struct daemon_counters c0, c1;
	struct hak_client_stats s0, s1, served = {0};
	int64_t cpu0;

	daemon_quiesce(b);
	c0 = daemon_counters(b);
	s0 = bench_stats(b);
	cpu0 = daemon_cpu_ns(b);
	load(b, size);
	d->cpu_ns = daemon_quiesce(b) - cpu0;
	c1 = daemon_counters(b);
	s1 = bench_stats(b);
	stats_add_delta(&served, &s0, &s1);
	d->size = size;
	d->counters = c0.ok && c1.ok;
	/* Without admin access: every slot the ring served was zeroed (after
	 * the warm-up, no slot is fresh any more). */
	d->pages = d->counters ? c1.zeroed_pages - c0.zeroed_pages
			       : served.alloc_ready * (size / PAGE);
	d->zero_ns = d->counters ? c1.zero_ns - c0.zero_ns : 0;
	d->worker_gbps = d->zero_ns ? (double)d->pages * PAGE / (double)d->zero_ns : -1;
	d->cpu_gbps = d->cpu_ns > 0 ? (double)d->pages * PAGE / (double)d->cpu_ns : -1;
}

/* ---- output ---- */

static void print_core(struct bench *b, const struct core_bw *c)
{
	static struct table t;
	char name[16], spec[128];

	snprintf(spec, sizeof(spec), "method|>4 KiB hot|>64 KiB hot|>2 MiB hot|>%s (> L3)",
		 size_name(c->large, name, sizeof(name)));
	table_init(&t, spec);
	for (int m = ZERO_AUTO + 1; m < ZERO_METHOD_NR; m++) {
		struct json j;

		if (!zero_method_supported(m))
			continue;
		table_row(&t, "%s|%.1f|%.1f|%.1f|%.1f", zero_method_name(m), c->gbps[m][0],
			  c->gbps[m][1], c->gbps[m][2], c->gbps[m][3]);
		json_begin(&j, "zero");
		json_str(&j, "what", "core");
		json_str(&j, "method", zero_method_name(m));
		for (size_t i = 0; i < NR_CASES; i++) {
			char key[32];

			snprintf(key, sizeof(key), "gbps_%zu",
				 i < NR_HOT ? hot_sizes[i] : c->large);
			json_num(&j, key, c->gbps[m][i], 2);
		}
		json_u64(&j, "large_bytes", c->large);
		json_end(&j, b);
	}
	if (b->o->json)
		return;
	printf("### zero: one core, GB/s (10^9 bytes/s), best of %d\n\n"
	       "Hot: the same buffer zeroed over and over (in cache).  Large: %s, %zu times "
	       "the L3.\n\n",
	       ROUNDS, size_name(c->large, name, sizeof(name)), c->large / l3_bytes());
	table_print(&t);
}

static void print_daemon(struct bench *b, const struct daemon_bw *d, unsigned n,
			 const struct core_bw *c, const char *method)
{
	static struct table t;
	double memset_large = c->gbps[ZERO_MEMSET][NR_HOT];

	table_init(&t, "class|>pages zeroed|>daemon CPU ns/page|>GB/s per worker second"
		       "|>GB/s per daemon CPU second|>of memset, large|>of memset, hot slot");
	for (unsigned i = 0; i < n; i++) {
		double hot = c->gbps[ZERO_MEMSET][i];
		char name[16];
		struct json j;

		table_row(&t, "%s|%llu|%.1f|%.1f|%.1f|%.2f|%.2f", size_name(d[i].size, name, 16),
			  (unsigned long long)d[i].pages,
			  d[i].pages ? (double)d[i].cpu_ns / (double)d[i].pages : -1,
			  d[i].worker_gbps, d[i].cpu_gbps, d[i].cpu_gbps / memset_large,
			  d[i].cpu_gbps / hot);
		json_begin(&j, "zero");
		json_str(&j, "what", "daemon");
		json_str(&j, "zero_method", method);
		json_u64(&j, "class_bytes", d[i].size);
		json_u64(&j, "pages", d[i].pages);
		json_num(&j, "daemon_cpu_ns_per_page",
			 d[i].pages ? (double)d[i].cpu_ns / (double)d[i].pages : -1, 1);
		json_num(&j, "worker_gbps", d[i].worker_gbps, 2);
		json_num(&j, "cpu_gbps", d[i].cpu_gbps, 2);
		json_num(&j, "of_memset_large", d[i].cpu_gbps / memset_large, 3);
		json_num(&j, "of_memset_hot", d[i].cpu_gbps / hot, 3);
		json_end(&j, b);
	}
	if (b->o->json)
		return;
	printf("### zero: the daemon (zero_method %s), under a client returning slots "
	       "as fast as it can\n\n",
	       method);
	table_print(&t);
}

/* What zero_method auto weighs (shared/zero-pick.c), measured here. */
static void print_end_to_end(struct bench *b)
{
	static struct table t;
	static const char *const what[] = {"small (4 KiB, zero + fill)",
					   "large (2 MiB, zero + touch)"};
	struct zero_pick p;

	if (zero_pick_measure(&p) < 0 || !p.end_to_end) {
		fprintf(stderr, "hakbench: zero: no end-to-end measure (one CPU only)\n");
		return;
	}
	table_init(&t, "slots|method|>ns per page, end to end|cheapest");
	for (int s = 0; s < 2; s++) {
		const double *ns = s ? p.large_ns : p.small_ns;
		enum zero_method pick = s ? p.large : p.small;

		for (int m = ZERO_AUTO + 1; m < ZERO_METHOD_NR; m++) {
			struct json j;

			if (ns[m] <= 0)
				continue;
			table_row(&t, "%s|%s|%.0f|%s", what[s], zero_method_name(m), ns[m],
				  m == (int)pick ? "yes" : "");
			json_begin(&j, "zero");
			json_str(&j, "what", "end_to_end");
			json_str(&j, "slots", s ? "large" : "small");
			json_str(&j, "method", zero_method_name(m));
			json_num(&j, "ns_per_page", ns[m], 1);
			json_bool(&j, "cheapest", m == (int)pick);
			json_end(&j, b);
		}
	}
	if (b->o->json)
		return;
	printf("### zero: end to end, as zero_method auto measures it\n\n"
	       "Per 4 KiB page, best of a few rounds (shared/zero-pick.c): zeroing on this "
	       "CPU an 8 MiB region another CPU dirtied, plus that CPU writing it again "
	       "afterwards: every byte for small slots, one byte per page for large ones.  "
	       "The daemon measured the same at its start (its pick is in its log; the "
	       "method for 4 KiB slots is in the table below).\n\n");
	table_print(&t);
}

int scenario_zero(struct bench *b)
{
	static struct core_bw core;
	struct daemon_bw d[NR_HOT];
	struct daemon_counters dc;

	measure_core(&core);
	print_core(b, &core);
	print_end_to_end(b);
	if (!bench_connected(b) || !b->daemon_pid) {
		fprintf(stderr, "hakbench: zero: no daemon (or its pid is unknown): "
				"only one core's bandwidth measured\n");
		return 0;
	}
	dc = daemon_counters(b);
	for (size_t i = 0; i < NR_HOT; i++) {
		load(b, hot_sizes[i]); /* warm-up: every slot backed and dirty once */
		measure_daemon(b, hot_sizes[i], &d[i]);
	}
	print_daemon(b, d, NR_HOT, &core, dc.zero_method[0] ? dc.zero_method : "?");
	return 0;
}
