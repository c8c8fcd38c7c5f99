/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Large buffers: a program that reads a file or builds an image takes a
 * buffer of 4..24 MiB, fills it and lets it go, one after another.
 * jemalloc gives extents of 8 MiB and more back to the kernel at once, so
 * each such buffer faults its pages in again; an allocator that keeps them
 * does not.
 */
#include <stdio.h>
#include <stdlib.h>

#include "workload.h"

#define BIGBUF_MIN (4 * WL_MIB)
#define BIGBUF_MAX (24 * WL_MIB)
#define BIGBUF_SEED 7u

int wl_bigbuf(uint64_t ops)
{
	uint32_t rng = BIGBUF_SEED;

	for (uint64_t i = 0; i < ops; i++) {
		size_t n = wl_size(&rng, BIGBUF_MIN, BIGBUF_MAX, 1);
		char *p = malloc(n);

		if (!p) {
			fprintf(stderr, "bigbuf: malloc(%zu) failed\n", n);
			return 1;
		}
		wl_touch(p, n);
		free(p);
	}
	return 0;
}
