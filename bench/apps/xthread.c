/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Cross-thread frees, producer/consumer (the shape of xmalloc-test and of
 * a server handing requests to workers): one thread mallocs blocks of
 * 64 B..32 KiB and writes them, another reads and frees them.  Every free
 * lands in a thread other than the one that allocated the block, which
 * allocators with per-thread caches handle each in their own way.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "workload.h"

#define XT_MIN 64u
#define XT_MAX (32 * WL_KIB)
/* Blocks in flight at most: enough that the two threads rarely wait. */
#define XT_RING 1024u
#define XT_SEED 17u

struct xt_ring {
	char *slot[XT_RING];
	_Atomic uint64_t head; /* written by the producer */
	_Atomic uint64_t tail; /* written by the consumer */
	uint64_t ops;
	_Atomic int failed;
};

static void *consumer(void *arg)
{
	struct xt_ring *r = arg;
	uint64_t sum = 0;

	for (uint64_t i = 0; i < r->ops; i++) {
		char *p;

		/* Pairs with the producer's release store of head. */
		while (atomic_load_explicit(&r->head, memory_order_acquire) == i) {
			if (atomic_load_explicit(&r->failed, memory_order_relaxed))
				return NULL;
			sched_yield();
		}
		p = r->slot[i % XT_RING];
		sum += (unsigned char)p[0];
		free(p);
		atomic_store_explicit(&r->tail, i + 1, memory_order_release);
	}
	return (void *)(uintptr_t)(r->ops && sum == 0);
}

static int produce(struct xt_ring *r)
{
	uint32_t rng = XT_SEED;

	for (uint64_t i = 0; i < r->ops; i++) {
		size_t n = wl_size(&rng, XT_MIN, XT_MAX, 0);
		char *p;

		/* Pairs with the consumer's release store of tail. */
		while (i - atomic_load_explicit(&r->tail, memory_order_acquire) >= XT_RING)
			sched_yield();
		p = malloc(n);
		if (!p) {
			atomic_store(&r->failed, 1);
			fprintf(stderr, "xthread: malloc(%zu) failed\n", n);
			return 1;
		}
		p[0] = 1;
		p[n - 1] = 1;
		r->slot[i % XT_RING] = p;
		atomic_store_explicit(&r->head, i + 1, memory_order_release);
	}
	return 0;
}

int wl_xthread(uint64_t ops)
{
	static struct xt_ring r;
	pthread_t t;
	void *res;
	int ret;

	r.ops = ops;
	if (pthread_create(&t, NULL, consumer, &r) != 0) {
		fprintf(stderr, "xthread: pthread_create failed\n");
		return 1;
	}
	ret = produce(&r);
	pthread_join(t, &res);
	/* Every block's first byte was written 1: a sum of 0 read garbage. */
	if (!ret && res) {
		fprintf(stderr, "xthread: the consumer read what the producer did not write\n");
		ret = 1;
	}
	return ret;
}
