/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The workload loops and what a child measures around them.  The loops use
 * plain malloc/calloc/free: the allocator under test is whatever the
 * process was started with (LD_PRELOAD), with no change to this code.
 *
 *   mixed   a table of W slots; each step draws r (xorshift32), picks slot
 *           r mod W, frees it if full, else mallocs 16 + (r & 1023) bytes
 *           and writes its first byte
 *   calloc  calloc of 64 KiB..2 MiB, one byte written per 4 KiB page (the
 *           first checked to read zero), freed; 4 buffers live
 *   churn   an allocator taking and returning 1..2 MiB slabs with malloc,
 *           every page written; 2 live
 */
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "hak_size.h"
#include "workloads.h"

#define PAGE (4 * KIB)
#define CALLOC_MIN (64 * KIB)
#define CALLOC_MAX (2 * MIB)
#define CALLOC_LIVE 4
#define CHURN_MIN MIB
#define CHURN_MAX (2 * MIB)
#define CHURN_LIVE 2
#define MIXED_SIZE_BASE 16u
#define MIXED_SIZE_MASK 1023u
#define MAX_LIVE 8
/* Warm-up: this share of the timed steps, run first and not timed. */
#define WARM_DIV 10
#define NS_PER_SEC 1000000000ull

uint32_t wl_xorshift32(uint32_t *s)
{
	uint32_t x = *s;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

static uint64_t tv_ns(struct timeval tv)
{
	return (uint64_t)tv.tv_sec * NS_PER_SEC + (uint64_t)tv.tv_usec * 1000u;
}

/* Busy time of all cores (/proc/stat "cpu" minus idle and iowait), in ns. */
static uint64_t system_busy_ns(void)
{
	unsigned long long v[8] = {0};
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f = fopen("/proc/stat", "re");
	int n = 0;

	if (f) {
		n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
			   &v[3], &v[4], &v[5], &v[6], &v[7]);
		fclose(f);
	}
	if (n < 8 || hz <= 0)
		return 0;
	/* user nice system [idle iowait] irq softirq steal */
	return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) * (NS_PER_SEC / (uint64_t)hz);
}

struct snap {
	uint64_t t, faults, proc_cpu, sys_busy;
};

static void snap_take(struct snap *s)
{
	struct rusage th, pr;

	getrusage(RUSAGE_THREAD, &th);
	getrusage(RUSAGE_SELF, &pr);
	s->sys_busy = system_busy_ns();
	s->faults = (uint64_t)(th.ru_minflt + th.ru_majflt);
	s->proc_cpu = tv_ns(pr.ru_utime) + tv_ns(pr.ru_stime);
	s->t = now_ns();
}

/* ---- the loops: each returns a checksum, or UINT64_MAX on a bad read ---- */

struct mixed_state {
	char **slot;
	uint32_t width;
	uint32_t rng;
};

static uint64_t mixed_steps(struct mixed_state *m, uint64_t steps)
{
	uint64_t sum = 0;

	for (uint64_t i = 0; i < steps; i++) {
		uint32_t r = wl_xorshift32(&m->rng);
		char **s = &m->slot[r % m->width];

		if (*s) {
			sum += (unsigned char)(*s)[0];
			free(*s);
			*s = NULL;
		} else {
			*s = malloc(MIXED_SIZE_BASE + (r & MIXED_SIZE_MASK));
			if (*s)
				(*s)[0] = (char)r;
		}
	}
	return sum;
}

struct ring_state {
	char *buf[MAX_LIVE];
	size_t size[MAX_LIVE];
	unsigned live;
	uint32_t rng;
	size_t min, max;
	bool zeroed; /* calloc, checked; else malloc */
	uint64_t i;
};

/* One byte written per page, as a program filling a buffer touches each.
 * Only the first byte is read (calloc: must be zero): reading every page
 * first would map the zero page and fault twice where a program faults
 * once. */
static uint64_t touch(char *p, size_t n, bool check)
{
	uint64_t bad = check && p[0];

	for (size_t off = 0; off < n; off += PAGE)
		p[off] = 1;
	return bad;
}

static uint64_t ring_steps(struct ring_state *s, uint64_t steps)
{
	for (uint64_t n = 0; n < steps; n++, s->i++) {
		unsigned k = (unsigned)(s->i % s->live);
		size_t size =
			s->min + (wl_xorshift32(&s->rng) % (s->max - s->min + 1)) / PAGE * PAGE;

		free(s->buf[k]);
		s->buf[k] = s->zeroed ? calloc(1, size) : malloc(size);
		s->size[k] = size;
		if (!s->buf[k] || touch(s->buf[k], size, s->zeroed))
			return UINT64_MAX;
	}
	return s->i;
}

static void ring_free(struct ring_state *s)
{
	for (unsigned k = 0; k < s->live; k++)
		free(s->buf[k]);
}

/* ---- the adapter's counters, when it is loaded ---- */

struct hj_stats {
	uint64_t extents_pool, extents_zeroed, bytes_asked, bytes_slots, extents_forwarded,
		grows_declined, slots_returned, errors, pool;
};

static void adapter_stats(struct wl_result *r)
{
	int (*get)(struct hj_stats *, size_t) =
		(int (*)(struct hj_stats *, size_t))dlsym(RTLD_DEFAULT, "hak_jemalloc_get_stats");
	struct hj_stats st = {0};

	if (!get || get(&st, sizeof(st)) < 0)
		return;
	r->pool_extents = st.extents_pool;
	r->bytes_asked = st.bytes_asked;
	r->bytes_slots = st.bytes_slots;
	r->pool = st.pool;
}

/* ---- running one workload ---- */

static void pause_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

static void finish(const struct snap *a, uint64_t ops, uint64_t sum, struct wl_result *r)
{
	struct snap b;

	snap_take(&b);
	r->ops = ops;
	r->ns = b.t - a->t;
	r->faults = b.faults - a->faults;
	r->proc_cpu_ns = b.proc_cpu - a->proc_cpu;
	r->sys_busy_ns = b.sys_busy - a->sys_busy;
	r->checksum = sum;
}

static int run_mixed(const struct wl_params *p, struct wl_result *r)
{
	struct mixed_state m = {.width = p->width, .rng = p->seed};
	struct snap a;
	uint64_t sum;

	m.slot = calloc(p->width, sizeof(*m.slot));
	if (!m.slot)
		return -ENOMEM;
	mixed_steps(&m, p->steps / WARM_DIV);
	pause_ms(p->warm_ms);
	snap_take(&a);
	sum = mixed_steps(&m, p->steps);
	finish(&a, p->steps, sum, r);
	for (uint32_t i = 0; i < m.width; i++)
		free(m.slot[i]);
	free(m.slot);
	return 0;
}

static int run_ring(const struct wl_params *p, bool zeroed, struct wl_result *r)
{
	struct ring_state s = {.rng = p->seed, .zeroed = zeroed};
	struct snap a;
	uint64_t sum;

	s.live = zeroed ? CALLOC_LIVE : CHURN_LIVE;
	s.min = zeroed ? CALLOC_MIN : CHURN_MIN;
	s.max = zeroed ? CALLOC_MAX : CHURN_MAX;
	if (ring_steps(&s, p->steps / WARM_DIV) == UINT64_MAX)
		return -EIO;
	pause_ms(p->warm_ms);
	snap_take(&a);
	sum = ring_steps(&s, p->steps);
	finish(&a, p->steps, sum, r);
	ring_free(&s);
	return sum == UINT64_MAX ? -EIO : 0;
}

int wl_run(const struct wl_params *p, struct wl_result *r)
{
	int ret;

	memset(r, 0, sizeof(*r));
	if (strcmp(p->name, "mixed") == 0)
		ret = run_mixed(p, r);
	else if (strcmp(p->name, "calloc") == 0)
		ret = run_ring(p, true, r);
	else if (strcmp(p->name, "churn") == 0)
		ret = run_ring(p, false, r);
	else
		ret = -EINVAL;
	adapter_stats(r);
	return ret;
}

void wl_print_result(const struct wl_result *r)
{
	printf("RESULT ops=%" PRIu64 " ns=%" PRIu64 " faults=%" PRIu64 " proc_cpu_ns=%" PRIu64
	       " sys_busy_ns=%" PRIu64 " pool_extents=%" PRIu64 " bytes_asked=%" PRIu64
	       " bytes_slots=%" PRIu64 " pool=%" PRIu64 "\n",
	       r->ops, r->ns, r->faults, r->proc_cpu_ns, r->sys_busy_ns, r->pool_extents,
	       r->bytes_asked, r->bytes_slots, r->pool);
	fflush(stdout);
}

int wl_parse_result(const char *line, struct wl_result *r)
{
	memset(r, 0, sizeof(*r));
	if (sscanf(line,
		   "RESULT ops=%" SCNu64 " ns=%" SCNu64 " faults=%" SCNu64 " proc_cpu_ns=%" SCNu64
		   " sys_busy_ns=%" SCNu64 " pool_extents=%" SCNu64 " bytes_asked=%" SCNu64
		   " bytes_slots=%" SCNu64 " pool=%" SCNu64,
		   &r->ops, &r->ns, &r->faults, &r->proc_cpu_ns, &r->sys_busy_ns, &r->pool_extents,
		   &r->bytes_asked, &r->bytes_slots, &r->pool) != 9)
		return -EINVAL;
	return 0;
}
