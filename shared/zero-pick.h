/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * zero_method auto: the kernels of zero-kernels.h measured, by raw
 * bandwidth and end to end, and the cheapest picked.  The daemon picks with
 * it at start-up; hakbench prints what it measures.
 */
#ifndef HAK_ZERO_PICK_H
#define HAK_ZERO_PICK_H

#include <stdbool.h>

#include "zero-kernels.h"

/* Scratch buffer zero_measure() zeroes: larger than a last-level cache, so
 * that the numbers are those of zeroing memory, not cache. */
#define ZERO_MEASURE_BYTES (32u << 20)
#define ZERO_MEASURE_ROUNDS 3

/* Measures every supported method on a scratch buffer, best of
 * ZERO_MEASURE_ROUNDS; gbps[m] is in GB/s (10^9 bytes), 0 for ZERO_AUTO and
 * unsupported methods.  Returns 0 or -errno. */
int zero_measure(double gbps[ZERO_METHOD_NR]);
/* The fastest measured method. */
enum zero_method zero_fastest(const double gbps[ZERO_METHOD_NR]);

/* Slots from this size up are "large": auto picks a method for them apart. */
#define ZERO_LARGE_SLOT (256u << 10)
/* The slot sizes auto measures for small and for large slots. */
#define ZERO_PICK_SMALL (4u << 10)
#define ZERO_PICK_LARGE (2u << 20)

struct zero_pick {
	double gbps[ZERO_METHOD_NR];	 /* zero_measure: raw bandwidth */
	double small_ns[ZERO_METHOD_NR]; /* end to end, ns per 4 KiB page; 0: not measured */
	double large_ns[ZERO_METHOD_NR];
	enum zero_method small, large; /* the cheapest for each */
	bool end_to_end;	       /* false: picked by bandwidth (one CPU only) */
	/* The choice kept from before (the daemon's cache), ZERO_AUTO: none;
	 * a near-tie keeps it. */
	enum zero_method prev_small, prev_large;
	bool cached; /* loaded from the state directory, not measured */
};

/* Methods within this many percent of the cheapest are a tie: runs on one
 * machine differ by about as much (nt and rep stosb traded places from
 * run to run). */
#define ZERO_PICK_MARGIN_PCT 10

/* The method with the lowest positive cost[] (fallback when none has
 * one), except that a near-tie (within ZERO_PICK_MARGIN_PCT) goes to prev
 * when it is among the tied, else to the first tied in enum order. */
enum zero_method zero_pick_cheapest(const double cost[ZERO_METHOD_NR], enum zero_method fallback,
				    enum zero_method prev);

/* Measures every supported method end to end (zeroing on this CPU a region
 * another CPU dirtied, plus that CPU's writes afterwards) for small and
 * large slots, and picks the cheapest of each; p->small and p->large stay
 * as they were when it cannot (-ENOTSUP: no second CPU).  Takes some
 * 10-50 ms, and pins the calling thread meanwhile.  Returns 0 or -errno. */
int zero_pick_end_to_end(struct zero_pick *p);
/* The bandwidths (zero_measure) and the picks by bandwidth, then
 * zero_pick_end_to_end. */
int zero_pick_measure(struct zero_pick *p);

#endif
