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
};

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
