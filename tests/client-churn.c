/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hak-client's scenarios that drive the hot path in rounds: churn,
 * threads, hotpath.
 *
 * Pages are filled with a pattern byte given by the driver, distinct per
 * process: finding any byte that is neither 0 nor our own pattern means we
 * were handed someone else's memory (DESIGN rules 1 and 2).
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "client.h"
#include "testutil.h"

/* Requests above the largest class are served by mmap; test one of those. */
#define LARGE_EXTRA PAGE
/* churn: slots of one class held at once per round, and the share of the
 * pool they may take, so the rest of the pool keeps the daemon busy. */
#define CHURN_BATCH_MAX 64u
/* churn --batch: at most this many slots of one class at once. */
#define CHURN_HELD_MAX 4096u
#define CHURN_POOL_SHARE 4u
/* churn --expect-recycle: a short idle time between rounds lets the
 * daemon's zeroing thread refill the ready rings (it zeroes when idle). */
#define CHURN_IDLE_MS 3
/* hotpath: slots held per round; no more than the library's local cache,
 * so that a dry ready ring is covered by inline zeroing, never mmap. */
#define HOTPATH_BATCH 32u
#define HOTPATH_WARMUP_ROUNDS 20u
#define THREAD_WINDOW 8

/* --------------------------------------------------------------- churn */

/* Slots of class c taken per round: --batch, or a share of the pool, at
 * most a batch. */
static unsigned churn_batch(const struct opts *o, unsigned c, uint64_t pool_bytes)
{
	uint64_t n = pool_bytes / CHURN_POOL_SHARE / nclasses / classes[c];

	if (o->batch[c])
		return o->batch[c] > CHURN_HELD_MAX ? CHURN_HELD_MAX : o->batch[c];

	if (n < 1)
		n = 1;
	return n > CHURN_BATCH_MAX ? CHURN_BATCH_MAX : (unsigned)n;
}

struct churn_result {
	uint64_t allocs;
	uint64_t ready_bytes;  /* bytes of slots that came from the ready ring */
	uint64_t dirty_reused; /* dirty slots that still held our pattern */
};

/* Allocates one slot, noting whether the ready ring served it. */
static void churn_one(struct held *h, size_t size, unsigned flags, unsigned char own,
		      struct churn_result *res)
{
	uint64_t before = stats().alloc_ready;
	int how;

	h->p = alloc_checked(size, flags, own, &how);
	h->size = size;
	if (stats().alloc_ready > before)
		res->ready_bytes += page_round(size);
	if (!(how & HAK_ALLOC_ZEROED) && find_foreign(h->p, size, 0) >= 0)
		res->dirty_reused++;
	res->allocs++;
	memset(h->p, own, size);
}

/* One round: per class a batch allocated, checked, filled; one request of
 * an odd size and one above the largest class; then everything freed. */
static void churn_round(const struct opts *o, unsigned round, uint64_t pool_bytes,
			struct churn_result *res)
{
	static struct held held[MAX_CLASSES * CHURN_HELD_MAX + 2];
	unsigned char own = pattern_byte(o);
	unsigned n = 0, i = round;

	for (unsigned c = 0; c < nclasses; c++)
		for (unsigned k = churn_batch(o, c, pool_bytes); k > 0; k--)
			churn_one(&held[n++], classes[c], mode_flags(o->mode, i++), own, res);
	/* Not a class size: served by the class above, only size bytes used. */
	churn_one(&held[n++], classes[0] + PAGE, mode_flags(o->mode, i++), own, res);
	churn_one(&held[n++], classes[nclasses - 1] + LARGE_EXTRA, 0, own, res);
	for (unsigned k = 0; k < n; k++) {
		check_filled(held[k].p, held[k].size, own, "held page changed");
		free_or_fail(held[k].p, held[k].size);
	}
}

/* Rounds until --rounds are done and, with --expect-recycle, more bytes
 * came from the ready ring than the pool holds (so slots went round through
 * the daemon's zeroing), within --seconds. */
int cmd_churn(const struct opts *o)
{
	struct churn_result res = {0};
	uint64_t pool_bytes, deadline;
	unsigned round = 0;

	pattern_byte(o);
	connect_checked(o);
	pool_bytes = stats().pool_bytes;
	if (o->sync) {
		tu_say("ready");
		wait_word("go");
	}
	deadline = tu_now_ms() + o->seconds * 1000ull;
	while (round < o->rounds || (o->expect_recycle && res.ready_bytes <= pool_bytes)) {
		if (tu_now_ms() > deadline)
			break;
		churn_round(o, round++, pool_bytes, &res);
		/* Holding nothing but the library's caches: the driver may
		 * look at the daemon's side of the pool now. */
		if (round == o->pause_after) {
			tu_say("paused");
			wait_word("go");
		}
		if (o->expect_recycle)
			tu_sleep_ms(CHURN_IDLE_MS);
	}
	print_stats(NULL);
	tu_say("churn rounds=%u allocs=%llu ready_bytes=%llu pool_bytes=%llu dirty_reused=%llu",
	       round, (unsigned long long)res.allocs, (unsigned long long)res.ready_bytes,
	       (unsigned long long)pool_bytes, (unsigned long long)res.dirty_reused);
	if (o->expect_recycle && res.ready_bytes <= pool_bytes)
		tu_fail("only %llu bytes came from the ready ring in %u s, pool is %llu: "
			"no slot came back zeroed by the daemon",
			(unsigned long long)res.ready_bytes, o->seconds,
			(unsigned long long)pool_bytes);
	tu_say("ok");
	hak_client_unref(client);
	return 0;
}

/* ------------------------------------------------------------- threads */

struct thread_arg {
	const struct opts *o;
	unsigned char id; /* the byte this thread writes */
	pthread_barrier_t *start;
	uint64_t allocs;
};

static unsigned char thread_byte(unsigned t)
{
	return (unsigned char)(0x10 + t);
}

/* A dirty slot may hold any of this process's thread bytes (the local
 * cache is per process), never anything else. */
static void check_thread_dirty(const unsigned char *p, size_t len, unsigned nthreads)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != 0 && (p[i] < thread_byte(0) || p[i] >= thread_byte(nthreads)))
			tu_fail("dirty page %p+%zu holds 0x%02x: no thread of ours wrote it", p, i,
				p[i]);
}

/* Mostly small classes, where slots are many and contention is highest:
 * class c about 4^-c of the time. */
static size_t thread_size(unsigned i)
{
	unsigned c = (unsigned)__builtin_ctz(i + 1) / 2;

	return classes[c < nclasses ? c : nclasses - 1];
}

static void thread_take(struct thread_arg *a, struct held *h, unsigned i)
{
	size_t size = thread_size(i);
	/* Flags uncorrelated with the class. */
	unsigned flags = (i * 2654435761u) >> 31 ? HAK_ALLOC_DIRTY_OK : 0;
	int r = hak_alloc(client, size, flags, &h->p);

	if (r < 0)
		tu_fail("thread %u: hak_alloc(%zu): %s", a->id, size, strerror(-r));
	if (r & HAK_ALLOC_ZEROED)
		check_fresh_byte(h->p, size, flags, r, 0);
	else if (flags == 0)
		tu_fail("thread %u: hak_alloc(%zu, 0) not zeroed", a->id, size);
	else
		check_thread_dirty(h->p, size, a->o->threads);
	h->size = size;
	memset(h->p, a->id, size);
	a->allocs++;
}

/* Each thread keeps a window of pages it holds; before freeing one it
 * checks that no other thread wrote into it meanwhile (rule 2). */
static void *thread_main(void *arg)
{
	struct thread_arg *a = arg;
	struct held win[THREAD_WINDOW] = {{0}};

	pthread_barrier_wait(a->start);
	for (unsigned i = 0; i < a->o->rounds; i++) {
		struct held *h = &win[i % THREAD_WINDOW];

		if (h->p) {
			check_filled(h->p, h->size, a->id, "page shared between threads");
			free_or_fail(h->p, h->size);
		}
		thread_take(a, h, i);
	}
	for (unsigned k = 0; k < THREAD_WINDOW; k++)
		if (win[k].p) {
			check_filled(win[k].p, win[k].size, a->id, "page shared between threads");
			free_or_fail(win[k].p, win[k].size);
		}
	return NULL;
}

int cmd_threads(const struct opts *o)
{
	struct thread_arg args[MAX_THREADS];
	pthread_t th[MAX_THREADS];
	pthread_barrier_t start;
	uint64_t total = 0;

	if (o->threads < 2 || o->threads > MAX_THREADS)
		tu_fail("--threads must be 2..%d", MAX_THREADS);
	connect_checked(o);
	pthread_barrier_init(&start, NULL, o->threads);
	for (unsigned t = 0; t < o->threads; t++) {
		args[t] = (struct thread_arg){.o = o, .id = thread_byte(t), .start = &start};
		if (pthread_create(&th[t], NULL, thread_main, &args[t]) != 0)
			tu_fail("pthread_create");
	}
	for (unsigned t = 0; t < o->threads; t++) {
		pthread_join(th[t], NULL);
		total += args[t].allocs;
	}
	print_stats(NULL);
	tu_say("ok threads=%u allocs=%llu", o->threads, (unsigned long long)total);
	hak_client_unref(client);
	return 0;
}

/* ------------------------------------------------------------- hotpath */

struct thread_usage {
	uint64_t faults, vcsw;
};

/* This thread only: the library's own thread may block and fault as it
 * likes, the caller's must not (DESIGN rule 4). */
static struct thread_usage thread_usage(void)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	return (struct thread_usage){(uint64_t)ru.ru_minflt + (uint64_t)ru.ru_majflt,
				     (uint64_t)ru.ru_nvcsw};
}

static void hotpath_round(size_t size)
{
	static void *p[HOTPATH_BATCH];

	for (unsigned i = 0; i < HOTPATH_BATCH; i++) {
		int r = hak_alloc(client, size, 0, &p[i]);

		if (r < 0)
			tu_fail("hak_alloc: %s", strerror(-r));
		((volatile char *)p[i])[0] = 1;
	}
	for (unsigned i = 0; i < HOTPATH_BATCH; i++)
		free_or_fail(p[i], size);
}

/* Steady-state allocate/touch/free of the smallest class: reports the
 * calling thread's page faults, voluntary context switches (a blocking
 * call) and doorbells per allocation. */
int cmd_hotpath(const struct opts *o)
{
	struct hak_client_stats st0, st1;
	struct thread_usage u0, u1;
	uint64_t allocs = (uint64_t)o->rounds * HOTPATH_BATCH;

	connect_checked(o);
	for (unsigned r = 0; r < HOTPATH_WARMUP_ROUNDS; r++)
		hotpath_round(classes[0]);
	st0 = stats();
	u0 = thread_usage();
	for (unsigned r = 0; r < o->rounds; r++)
		hotpath_round(classes[0]);
	u1 = thread_usage();
	st1 = stats();
	print_stats(NULL);
	tu_say("hotpath allocs=%llu faults=%llu vcsw=%llu doorbells=%llu ready=%llu inline=%llu "
	       "mmap=%llu",
	       (unsigned long long)allocs, (unsigned long long)(u1.faults - u0.faults),
	       (unsigned long long)(u1.vcsw - u0.vcsw),
	       (unsigned long long)(st1.doorbells - st0.doorbells),
	       (unsigned long long)(st1.alloc_ready - st0.alloc_ready),
	       (unsigned long long)(st1.alloc_inline_zero - st0.alloc_inline_zero),
	       (unsigned long long)(st1.alloc_mmap - st0.alloc_mmap));
	tu_say("ok");
	hak_client_unref(client);
	return 0;
}
