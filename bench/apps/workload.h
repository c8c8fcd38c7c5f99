/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hakbench-workload: plain programs in the shape of the classic allocator
 * benchmarks, for `hakbench apps`.  They use malloc, calloc and free only
 * (no libhakclient): the allocator under test is whatever the process was
 * started with (LD_PRELOAD), as for any unchanged program.
 *
 *   main.c     the command line, the clock, the RESULT line
 *   bigbuf.c   large buffers of 4..24 MiB, every page written
 *   xthread.c  producer/consumer: blocks malloc'd on one thread, freed on another
 *   threads.c  many short-lived threads, each with its own short-lived blocks
 *   calloc.c   calloc of 64 KiB..2 MiB, checked to read zero
 *   short.c    a small program's whole life: about 2 MiB, then exit
 */
#ifndef HAKBENCH_WORKLOAD_H
#define HAKBENCH_WORKLOAD_H

#include <stddef.h>
#include <stdint.h>

#define WL_KIB 1024u
#define WL_MIB (1024u * WL_KIB)
#define WL_PAGE (4 * WL_KIB)

/* One step of xorshift32 (Marsaglia); *s must not be 0. */
static inline uint32_t wl_rand(uint32_t *s)
{
	uint32_t x = *s;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

/* A size in [min, max], rounded down to whole pages when page is set. */
static inline size_t wl_size(uint32_t *s, size_t min, size_t max, int page)
{
	size_t v = min + wl_rand(s) % (max - min + 1);

	return page ? v / WL_PAGE * WL_PAGE : v;
}

/* Writes one byte per page, as a program filling a buffer touches each. */
static inline void wl_touch(char *p, size_t n)
{
	for (size_t off = 0; off < n; off += WL_PAGE)
		p[off] = 1;
}

/* Each workload runs `ops` operations and returns 0, or 1 on a failed
 * allocation or a calloc'd page that did not read as zero (said on
 * stderr). */
int wl_bigbuf(uint64_t ops);
int wl_xthread(uint64_t ops);
int wl_threads(uint64_t ops);
int wl_calloc(uint64_t ops);
int wl_short(uint64_t ops);

#endif
