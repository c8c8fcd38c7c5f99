/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Token bucket arithmetic.  Refills add whole tokens and move last_ns on
 * by exactly the time those tokens took, so that frequent calls lose no
 * fraction of a token; products are taken in 128 bits, so that no elapsed
 * time, however long, overflows.
 */
#include "bucket.h"
#include "util.h"

void bucket_init(struct bucket *b, uint64_t rate, uint64_t burst, uint64_t now)
{
	if (burst > BUCKET_MAX_BURST)
		burst = BUCKET_MAX_BURST;
	if (burst == 0)
		burst = 1;
	*b = (struct bucket){
		.tokens = (int64_t)burst, .last_ns = now, .rate = rate, .burst = burst};
}

static void refill(struct bucket *b, uint64_t now)
{
	unsigned __int128 room = (unsigned __int128)((__int128)b->burst - b->tokens), add;

	if (now <= b->last_ns || b->rate == 0)
		return;
	add = (unsigned __int128)(now - b->last_ns) * b->rate / NSEC_PER_SEC;
	if (add >= room) {
		/* Full: time spent full earns nothing later. */
		b->tokens = (int64_t)b->burst;
		b->last_ns = now;
		return;
	}
	b->tokens += (int64_t)add;
	b->last_ns += (uint64_t)(add * NSEC_PER_SEC / b->rate);
}

uint64_t bucket_wait(struct bucket *b, uint64_t want, uint64_t now)
{
	unsigned __int128 need, ns;
	uint64_t accrued;

	if (b->rate == 0)
		return 0;
	want = want < 1 ? 1 : min_u64(want, b->burst);
	refill(b, now);
	if (b->tokens >= (int64_t)want)
		return 0;
	need = (unsigned __int128)((__int128)want - b->tokens);
	/* Rounded up: waking early would find the bucket still short. */
	ns = (need * NSEC_PER_SEC + b->rate - 1) / b->rate;
	/* Part of the next token has accrued since the last refill. */
	accrued = now > b->last_ns ? now - b->last_ns : 0;
	ns = ns > accrued ? ns - accrued : 1;
	return ns > UINT64_MAX ? UINT64_MAX : (uint64_t)ns;
}

void bucket_take(struct bucket *b, uint64_t cost)
{
	__int128 left = (__int128)b->tokens - (__int128)min_u64(cost, b->burst);

	if (b->rate == 0)
		return;
	b->tokens = left < -(__int128)b->burst ? -(int64_t)b->burst : (int64_t)left;
}
