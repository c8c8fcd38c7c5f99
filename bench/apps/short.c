/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A short-lived program: a few thousand small blocks and a few larger
 * buffers, about 2 MiB in all, used once, then exit.  What each process on
 * a host pays for its allocator's start-up (and for a pool it would not
 * use); `hakbench apps` starts it many times in a row.
 */
#include <stdio.h>
#include <stdlib.h>

#include "workload.h"

#define SHORT_SMALL 4096
#define SHORT_SMALL_MIN 16u
#define SHORT_SMALL_MAX 512u
#define SHORT_BUFS 4
#define SHORT_BUF_SIZE (256 * WL_KIB)
#define SHORT_SEED 13u

static int short_once(uint32_t *rng)
{
	static char *small[SHORT_SMALL];
	char *buf[SHORT_BUFS];
	int ret = 0;

	for (unsigned i = 0; i < SHORT_SMALL; i++) {
		small[i] = malloc(wl_size(rng, SHORT_SMALL_MIN, SHORT_SMALL_MAX, 0));
		ret |= !small[i];
		if (small[i])
			small[i][0] = 1;
	}
	for (unsigned i = 0; i < SHORT_BUFS; i++) {
		buf[i] = i % 2 ? calloc(1, SHORT_BUF_SIZE) : malloc(SHORT_BUF_SIZE);
		ret |= !buf[i];
		if (buf[i])
			wl_touch(buf[i], SHORT_BUF_SIZE);
	}
	for (unsigned i = 0; i < SHORT_BUFS; i++)
		free(buf[i]);
	for (unsigned i = 0; i < SHORT_SMALL; i++)
		free(small[i]);
	return ret;
}

/* ops: times the whole set is taken and given back (1 for a real short
 * program; more only to time it alone). */
int wl_short(uint64_t ops)
{
	uint32_t rng = SHORT_SEED;

	for (uint64_t i = 0; i < ops; i++)
		if (short_once(&rng)) {
			fprintf(stderr, "short: an allocation failed\n");
			return 1;
		}
	return 0;
}
