/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Many short-lived threads (the shape of a thread-per-request server and
 * of threadtest): threads started a few at a time, each taking and
 * freeing small blocks of 16 B..4 KiB in a table of its own, then
 * freeing what it holds and exiting.  Each new thread costs its allocator
 * a thread cache (or an arena) and gives it back.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "workload.h"

#define TH_AT_ONCE 4
#define TH_STEPS 4000u
#define TH_TABLE 256u
#define TH_MIN 16u
#define TH_MAX (4 * WL_KIB)

static void *worker(void *arg)
{
	uint32_t rng = (uint32_t)(uintptr_t)arg | 1u;
	char *table[TH_TABLE] = {0};
	uintptr_t failed = 0;

	for (unsigned i = 0; i < TH_STEPS; i++) {
		char **s = &table[wl_rand(&rng) % TH_TABLE];

		if (*s) {
			free(*s);
			*s = NULL;
			continue;
		}
		*s = malloc(wl_size(&rng, TH_MIN, TH_MAX, 0));
		if (*s)
			(*s)[0] = 1;
		failed |= !*s;
	}
	for (unsigned i = 0; i < TH_TABLE; i++)
		free(table[i]);
	return (void *)failed;
}

/* ops: threads started in all, TH_AT_ONCE at a time. */
int wl_threads(uint64_t ops)
{
	int ret = 0;

	for (uint64_t done = 0; done < ops; done += TH_AT_ONCE) {
		pthread_t t[TH_AT_ONCE];
		unsigned n = 0;
		void *res;

		for (; n < TH_AT_ONCE && done + n < ops; n++)
			if (pthread_create(&t[n], NULL, worker, (void *)(uintptr_t)(done + n)) != 0)
				break;
		if (n == 0) {
			fprintf(stderr, "threads: pthread_create failed\n");
			return 1;
		}
		for (unsigned i = 0; i < n; i++) {
			pthread_join(t[i], &res);
			ret |= res != NULL;
		}
	}
	if (ret)
		fprintf(stderr, "threads: an allocation failed\n");
	return ret;
}
