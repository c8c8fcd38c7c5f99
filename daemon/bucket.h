/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A token bucket: what one client may cost the daemon per second, with a
 * burst.  Pure accounting on a clock the caller passes, so that it can be
 * tested without one.
 *
 * Work is charged after it is decided on, possibly more than the bucket
 * holds (a zeroing job of one large slot): the bucket then goes into debt,
 * repaid by the refill before it lets anything through again.  A charge
 * is capped at the burst, so the debt is too.
 */
#ifndef HAKD_BUCKET_H
#define HAKD_BUCKET_H

#include <stdint.h>

struct bucket {
	int64_t tokens;	  /* may be negative: debt */
	uint64_t last_ns; /* when tokens were last refilled */
	uint64_t rate;	  /* tokens per second; 0: no bound */
	uint64_t burst;	  /* the most tokens held */
};

/* Tokens and debt, down to minus the burst, fit in an int64_t. */
#define BUCKET_MAX_BURST (UINT64_C(1) << 62)

/* A full bucket at now (burst capped at BUCKET_MAX_BURST, at least 1). */
void bucket_init(struct bucket *b, uint64_t rate, uint64_t burst, uint64_t now);
/* Nanoseconds from now until the bucket holds at least want tokens (at
 * least one, at most its burst): 0 when it does already. */
uint64_t bucket_wait(struct bucket *b, uint64_t want, uint64_t now);
/* Takes cost tokens, into debt if need be. */
void bucket_take(struct bucket *b, uint64_t cost);

#endif
