/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * zero_method auto: which method costs the whole system least per page,
 * measured end to end at start-up (and, first, by raw bandwidth, the
 * fallback without a second CPU).
 *
 * Raw bandwidth picks the wrong method.  A slot comes back dirty in the
 * client's cache; the daemon zeroes it on another core; the client later
 * writes it.  Non-temporal stores skip reading the dirty lines but leave
 * the page in memory only, so the client's first writes miss (the reason
 * FreeBSD and NetBSD dropped idle page zeroing: it "only shifted the
 * time"); temporal stores (rep stosb, memset) pull the lines over but leave
 * them in a cache level the client reaches sooner.  Which is cheaper in
 * total depends on the machine, so both sides are timed:
 *
 *   1. a "client" thread on another CPU writes a region (its slots, dirty)
 *   2. this thread zeroes it slot by slot with the method (timed)
 *   3. the client writes it again (timed): every byte of a small slot, as a
 *      program filling a fresh 4 KiB or 64 KiB allocation does; one byte
 *      per page of a large slot, whose pages a program uses gradually
 *
 * The score is the sum, per 4 KiB page, best of a few rounds.  The region
 * is larger than an L2 and smaller than the L3, as a class of a default
 * pool is: a slot is taken again while what zeroing left in the cache is
 * still there, and `hakbench page` agrees with the pick this makes.  (In a
 * pool much larger than the L3, large slots come back cold and are reused
 * after their lines are gone; there non-temporal stores can cost less,
 * and zero_method nt says so.)  Without a second CPU for the client, the
 * bandwidth measurement decides.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "hak_layout.h"
#include "hak_time.h"
#include "zero-pick.h"

#define PICK_REGION (8u << 20)
#define PICK_ROUNDS 5
#define PICK_FILL 0x5a

static inline void cpu_relax(void)
{
#if defined(__x86_64__)
	__builtin_ia32_pause();
#endif
}

/* Best of rounds, in GB/s. */
static double measure_one(enum zero_method m, char *buf, size_t len)
{
	uint64_t best = UINT64_MAX;

	for (int i = 0; i < ZERO_MEASURE_ROUNDS; i++) {
		uint64_t t0 = hak_now_ns(), dt;

		buf[0] = 1; /* keep the stores from looking redundant */
		zero_range(m, buf, len);
		dt = hak_now_ns() - t0;
		best = dt < best ? dt : best;
	}
	return (double)len / (double)(best ? best : 1);
}

int zero_measure(double gbps[ZERO_METHOD_NR])
{
	size_t len = ZERO_MEASURE_BYTES;
	char *buf;

	buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return -errno;
	/* Pools are in 4 KiB pages; and faults must not be part of the score. */
	madvise(buf, len, MADV_NOHUGEPAGE);
	memset(buf, 1, len);
	for (int m = 0; m < ZERO_METHOD_NR; m++)
		gbps[m] = zero_method_supported(m) ? measure_one(m, buf, len) : 0.0;
	munmap(buf, len);
	return 0;
}

enum zero_method zero_fastest(const double gbps[ZERO_METHOD_NR])
{
	enum zero_method best = ZERO_MEMSET;

	for (int m = 0; m < ZERO_METHOD_NR; m++)
		if (zero_method_supported(m) && gbps[m] > gbps[best])
			best = m;
	return best;
}

/* The client thread: it waits, spinning (a client is busy on its own CPU,
 * and a sleeping thread would give that CPU and its caches to whatever
 * else runs; it lasts some 50 ms), for a command, carries it out and
 * times it. */
enum pick_cmd { CMD_NONE, CMD_FILL, CMD_TOUCH, CMD_EXIT, CMD_DONE };

struct pick_client {
	char *region;
	int cmd; /* atomic: enum pick_cmd */
	uint64_t ns;
};

static void client_run(struct pick_client *c, int cmd)
{
	uint64_t t0 = hak_now_ns();

	if (cmd == CMD_FILL) {
		memset(c->region, PICK_FILL, PICK_REGION);
	} else {
		for (size_t off = 0; off < PICK_REGION; off += HAK_PAGE_SIZE)
			((volatile char *)c->region)[off] = PICK_FILL;
	}
	c->ns = hak_now_ns() - t0;
}

static void *client_main(void *arg)
{
	struct pick_client *c = arg;
	int cmd;

	for (;;) {
		/* Pairs with the release store in command(). */
		while ((cmd = __atomic_load_n(&c->cmd, __ATOMIC_ACQUIRE)) == CMD_NONE ||
		       cmd == CMD_DONE)
			cpu_relax();
		if (cmd == CMD_EXIT)
			return NULL;
		client_run(c, cmd);
		/* Pairs with the acquire load in command(): ns and the writes. */
		__atomic_store_n(&c->cmd, CMD_DONE, __ATOMIC_RELEASE);
	}
}

/* Has the client carry out cmd and waits for it. */
static void command(struct pick_client *c, int cmd)
{
	__atomic_store_n(&c->cmd, cmd, __ATOMIC_RELEASE);
	if (cmd == CMD_EXIT)
		return;
	while (__atomic_load_n(&c->cmd, __ATOMIC_ACQUIRE) != CMD_DONE)
		cpu_relax();
	__atomic_store_n(&c->cmd, CMD_NONE, __ATOMIC_RELAXED);
}

/* Starts the client thread on CPU cpu. */
static int client_start(struct pick_client *c, int cpu, pthread_t *t)
{
	pthread_attr_t attr;
	cpu_set_t set;
	int r;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_attr_init(&attr);
	r = pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
	if (r == 0)
		r = pthread_create(t, &attr, client_main, c);
	pthread_attr_destroy(&attr);
	return -r;
}

/* Another CPU this process may run on, with this thread pinned to the one
 * it is on (saved: its mask before); -ENOTSUP when there is none, -errno
 * when pinning is refused (a system-call filter without
 * sched_setaffinity). */
static int other_cpu(cpu_set_t *saved)
{
	int me = sched_getcpu();
	cpu_set_t one;

	if (me < 0 || sched_getaffinity(0, sizeof(*saved), saved) < 0)
		return -ENOTSUP;
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (cpu == me || !CPU_ISSET(cpu, saved))
			continue;
		CPU_ZERO(&one);
		CPU_SET(me, &one);
		return sched_setaffinity(0, sizeof(one), &one) < 0 ? -errno : cpu;
	}
	return -ENOTSUP;
}

/* One round of one method and slot size: ns per 4 KiB page. */
static int64_t round_ns(enum zero_method m, struct pick_client *c, size_t slot)
{
	uint64_t t0, zero;

	command(c, CMD_FILL);
	t0 = hak_now_ns();
	for (size_t off = 0; off < PICK_REGION; off += slot)
		zero_range_unfenced(m, c->region + off, slot);
	zero_fence();
	zero = hak_now_ns() - t0;
	command(c, slot < ZERO_LARGE_SLOT ? CMD_FILL : CMD_TOUCH);
	return (int64_t)((zero + c->ns) / (PICK_REGION / HAK_PAGE_SIZE));
}

/* Keeps the lowest: whatever else the machine does only adds time. */
static void keep_best(double *best, int64_t v)
{
	if (v > 0 && (*best <= 0 || (double)v < *best))
		*best = (double)v;
}

enum zero_method zero_pick_cheapest(const double cost[ZERO_METHOD_NR], enum zero_method fallback,
				    enum zero_method prev)
{
	enum zero_method best = fallback;

	for (int m = ZERO_AUTO + 1; m < ZERO_METHOD_NR; m++)
		if (cost[m] > 0 && (cost[best] <= 0 || cost[m] < cost[best]))
			best = m;
	if (cost[best] <= 0)
		return best;
	/* A near-tie is noise: it keeps the previous choice, or else goes
	 * to the first method in enum order, never to whichever won this
	 * run by a few percent. */
	if (prev != ZERO_AUTO && cost[prev] > 0 &&
	    cost[prev] * 100 <= cost[best] * (100 + ZERO_PICK_MARGIN_PCT))
		return prev;
	for (int m = ZERO_AUTO + 1; m < ZERO_METHOD_NR; m++)
		if (cost[m] > 0 && cost[m] * 100 <= cost[best] * (100 + ZERO_PICK_MARGIN_PCT))
			return m;
	return best;
}

/* Rounds go over every method in turn, so that a busy spell of the
 * machine lands on all of them rather than on one method's rounds. */
static void measure_all(struct zero_pick *p, char *region, int cpu)
{
	struct pick_client c = {.region = region};
	pthread_t t;

	if (client_start(&c, cpu, &t) < 0)
		return;
	for (int i = 0; i < PICK_ROUNDS; i++) {
		for (int m = ZERO_AUTO + 1; m < ZERO_METHOD_NR; m++) {
			if (!zero_method_supported(m))
				continue;
			keep_best(&p->small_ns[m], round_ns(m, &c, ZERO_PICK_SMALL));
			keep_best(&p->large_ns[m], round_ns(m, &c, ZERO_PICK_LARGE));
		}
	}
	command(&c, CMD_EXIT);
	pthread_join(t, NULL);
	p->small = zero_pick_cheapest(p->small_ns, p->small, p->prev_small);
	p->large = zero_pick_cheapest(p->large_ns, p->large, p->prev_large);
	p->end_to_end = p->small_ns[p->small] > 0 && p->large_ns[p->large] > 0;
}

int zero_pick_end_to_end(struct zero_pick *p)
{
	cpu_set_t saved;
	int cpu = other_cpu(&saved);
	char *region;

	if (cpu < 0)
		return cpu;
	region =
		mmap(NULL, PICK_REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region != MAP_FAILED) {
		/* Pools are in 4 KiB pages; and faults must not be part of it. */
		madvise(region, PICK_REGION, MADV_NOHUGEPAGE);
		memset(region, 1, PICK_REGION);
		measure_all(p, region, cpu);
		munmap(region, PICK_REGION);
	}
	sched_setaffinity(0, sizeof(saved), &saved);
	if (region == MAP_FAILED)
		return -ENOMEM;
	return p->end_to_end ? 0 : -EIO;
}

int zero_pick_measure(struct zero_pick *p)
{
	memset(p, 0, sizeof(*p));
	if (zero_measure(p->gbps) < 0)
		memset(p->gbps, 0, sizeof(p->gbps));
	p->small = p->large = zero_fastest(p->gbps);
	return zero_pick_end_to_end(p);
}
