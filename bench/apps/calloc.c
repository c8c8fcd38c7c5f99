/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * calloc of 64 KiB..2 MiB, four live at a time: each new buffer's pages
 * are checked to read zero (the first byte of each) and written, the
 * oldest one freed.  What zeroed memory costs an allocator: fresh pages
 * fault, reused ones must be cleared.
 */
#include <stdio.h>
#include <stdlib.h>

#include "workload.h"

#define CALLOC_MIN (64 * WL_KIB)
#define CALLOC_MAX (2 * WL_MIB)
#define CALLOC_LIVE 4
#define CALLOC_SEED 11u

/* 0 when every page's first byte reads zero, then writes each. */
static int check_and_touch(char *p, size_t n)
{
	for (size_t off = 0; off < n; off += WL_PAGE) {
		if (p[off])
			return 1;
		p[off] = 1;
	}
	return 0;
}

int wl_calloc(uint64_t ops)
{
	char *live[CALLOC_LIVE] = {0};
	uint32_t rng = CALLOC_SEED;
	int ret = 0;

	for (uint64_t i = 0; i < ops && !ret; i++) {
		unsigned k = (unsigned)(i % CALLOC_LIVE);
		size_t n = wl_size(&rng, CALLOC_MIN, CALLOC_MAX, 1);

		free(live[k]);
		live[k] = calloc(1, n);
		if (!live[k]) {
			fprintf(stderr, "calloc: calloc(%zu) failed\n", n);
			ret = 1;
		} else if (check_and_touch(live[k], n)) {
			fprintf(stderr, "calloc: a calloc'd page did not read as zero\n");
			ret = 1;
		}
	}
	for (unsigned k = 0; k < CALLOC_LIVE; k++)
		free(live[k]);
	return ret;
}
