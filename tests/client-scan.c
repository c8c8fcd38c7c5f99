/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hak-client's scenarios that check pages under load: stale, guard, cycles,
 * hold. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "testutil.h"

/* stale: a fallback instead of a ready slot means the daemon is behind;
 * give it this long before the next allocation. */
#define STALE_BACKOFF_US 50
/* One in this many stale allocations is of the largest class, one in
 * MID_EVERY of the middle one: large slots cost most to fill and check. */
#define LARGE_EVERY 512
#define MID_EVERY 16

/* ------------------------------------------------------------- stale */

static size_t stale_size(uint64_t *rng)
{
	uint64_t x = xorshift(rng);

	if (nclasses > 2 && x % LARGE_EVERY == 0)
		return classes[nclasses - 1];
	if (nclasses > 1 && x % MID_EVERY == 1)
		return (x >> 8) & 1 ? classes[1] : classes[0] + PAGE;
	return classes[0];
}

static unsigned stale_flags(enum mode mode, uint64_t *rng)
{
	if (mode == MODE_DIRTY)
		return HAK_ALLOC_DIRTY_OK;
	if (mode == MODE_MIXED)
		return xorshift(rng) & 1 ? HAK_ALLOC_DIRTY_OK : 0;
	return 0;
}

struct stale_count {
	uint64_t allocs, zeroed_checked, dirty_checked, bytes_checked;
};

/* Returns the flags the allocation was made with. */
static unsigned stale_step(const struct opts *o, struct held *h, uint64_t tag, uint64_t *rng,
			   struct stale_count *c)
{
	unsigned flags = stale_flags(o->mode, rng);
	size_t size = stale_size(rng);
	int how;

	if (h->p) {
		check_held(h, "held page");
		free_or_fail(h->p, h->size);
	}
	h->p = alloc_or_fail(size, flags, &how);
	h->size = size;
	check_fresh(h->p, size, flags, how, tag);
	if (how & HAK_ALLOC_ZEROED)
		c->zeroed_checked++;
	else
		c->dirty_checked++;
	c->bytes_checked += page_round(size);
	fill_random(h->p, size, tag, rng);
	h->first = *(uint64_t *)h->p;
	c->allocs++;
	return flags;
}

/* --count handoffs from the ready ring (alloc_ready), each page checked;
 * a fallback means the daemon is behind, so we give it a moment. */
int cmd_stale(const struct opts *o)
{
	static struct held win[WINDOW_MAX];
	uint64_t rng = mix_seed(o->seed ^ ((uint64_t)getpid() << 32)), tag = rng >> TAG_SHIFT;
	uint64_t start, ready = 0, next_progress = o->progress, deadline;
	unsigned w = o->window ? o->window : 8;
	struct stale_count c = {0};

	if (tag == 0)
		tag = 1;
	connect_or_fail(o);
	start = stats().alloc_ready;
	deadline = tu_now_ms() + o->seconds * 1000ull;
	tu_say("ready tag=%#llx", (unsigned long long)tag);
	for (uint64_t i = 0; ready < o->count; i++) {
		uint64_t before = ready;
		unsigned flags = stale_step(o, &win[i % w], tag, &rng, &c);

		ready = stats().alloc_ready - start;
		/* A dirty request is served from our own cache first: only a
		 * zeroed one that missed the ring says the daemon is behind. */
		if (ready == before && !(flags & HAK_ALLOC_DIRTY_OK))
			sleep_us(STALE_BACKOFF_US);
		if (o->progress && ready >= next_progress) {
			tu_say("progress handoffs=%llu checked=%llu", (unsigned long long)ready,
			       (unsigned long long)c.allocs);
			next_progress += o->progress;
		}
		if (tu_now_ms() > deadline)
			tu_fail("only %llu of %llu handoffs in %u s", (unsigned long long)ready,
				(unsigned long long)o->count, o->seconds);
	}
	for (unsigned k = 0; k < w; k++)
		if (win[k].p) {
			check_held(&win[k], "held page");
			free_or_fail(win[k].p, win[k].size);
		}
	print_stats("end");
	tu_say("ok handoffs=%llu checked=%llu zeroed=%llu dirty=%llu bytes=%llu",
	       (unsigned long long)ready, (unsigned long long)c.allocs,
	       (unsigned long long)c.zeroed_checked, (unsigned long long)c.dirty_checked,
	       (unsigned long long)c.bytes_checked);
	hak_client_unref(client);
	return 0;
}

/* ------------------------------------------------------------- guard */

/* Pages held through the whole run, to check nothing wrote into them. */
#define GUARD_HELD 4

static void guard_round(uint64_t want, uint64_t tag, struct held *keep)
{
	struct hak_client_stats st0 = stats(), st;
	uint64_t deadline = tu_now_ms() + 2 * REACT_MS, rng = tag * 7 + 1, n = 0;
	struct held h = {0};

	do {
		int how;

		h.size = classes[n++ % (nclasses > 1 ? 2 : 1)];
		h.p = alloc_or_fail(h.size, 0, &how);
		check_fresh(h.p, h.size, 0, how, tag);
		fill_random(h.p, h.size, tag, &rng);
		free_or_fail(h.p, h.size);
		st = stats();
		if (st.alloc_ready - st0.alloc_ready < want && (n & 63) == 0)
			tu_sleep_ms(1);
		if (tu_now_ms() > deadline)
			tu_fail("the daemon served %llu of %llu slots in %d ms",
				(unsigned long long)(st.alloc_ready - st0.alloc_ready),
				(unsigned long long)want, 2 * REACT_MS);
	} while (st.alloc_ready - st0.alloc_ready < want);
	for (unsigned i = 0; i < GUARD_HELD; i++)
		check_held(&keep[i], "guard's held page");
	tu_say("ok round ready=%llu allocs=%llu mmap=%llu inline=%llu",
	       (unsigned long long)(st.alloc_ready - st0.alloc_ready), (unsigned long long)n,
	       (unsigned long long)(st.alloc_mmap - st0.alloc_mmap),
	       (unsigned long long)(st.alloc_inline_zero - st0.alloc_inline_zero));
}

int cmd_guard(const struct opts *o)
{
	struct held keep[GUARD_HELD];
	uint64_t tag = (o->pattern ? o->pattern : 0x6a) & TAG_MASK, rng = tag;
	char line[64];

	connect_or_fail(o);
	for (unsigned i = 0; i < GUARD_HELD; i++) {
		int how;

		keep[i].size = classes[i % nclasses];
		keep[i].p = alloc_or_fail(keep[i].size, 0, &how);
		check_fresh(keep[i].p, keep[i].size, 0, how, tag);
		fill_random(keep[i].p, keep[i].size, tag, &rng);
		keep[i].first = *(uint64_t *)keep[i].p;
	}
	tu_say("ready");
	for (read_cmd(line, sizeof(line)); line[0]; read_cmd(line, sizeof(line))) {
		if (strncmp(line, "round", 5) == 0)
			guard_round(strtoull(line + 5, NULL, 10), tag, keep);
		else if (strcmp(line, "stats") == 0)
			print_stats("guard");
		else if (strcmp(line, "exit") == 0)
			break;
	}
	for (unsigned i = 0; i < GUARD_HELD; i++) {
		check_held(&keep[i], "guard's held page");
		free_or_fail(keep[i].p, keep[i].size);
	}
	tu_say("ok");
	hak_client_unref(client);
	return 0;
}

/* ------------------------------------------------------------ cycles */

int cmd_cycles(const struct opts *o)
{
	uint64_t connected = 0;

	for (uint64_t i = 0; i < o->count; i++) {
		void *p;
		int how;

		if (open_client(o) == 0)
			connected++;
		if (nclasses == 0)
			classes[nclasses++] = PAGE;
		p = alloc_or_fail(classes[0], 0, &how);
		check_fresh(p, classes[0], 0, how, 0);
		memset(p, 0x77, classes[0]);
		free_or_fail(p, classes[0]);
		hak_client_unref(client);
	}
	tu_say("ok cycles=%llu connected=%llu", (unsigned long long)o->count,
	       (unsigned long long)connected);
	return 0;
}

/* -------------------------------------------------------------- hold */

/* How long make_idle waits for the daemon to queue more slots of a class
 * before it takes the pool as out of them (a loaded machine zeroes late). */
#define IDLE_REFILL_WAIT_MS 500

static bool in_pool(const void *p)
{
	void *base;
	size_t size;

	return hak_slot_of(client, p, &base, &size) == 0;
}

/* Allocates up to n slots of every class (until the pool has no more of
 * it) and frees them, so that they come back, are zeroed and sit idle in
 * the daemon.  A fallback is freed at once and the daemon given time to
 * queue more, so that a slow daemon does not end the round early. */
static void make_idle(unsigned n, uint64_t tag, uint64_t *rng)
{
	struct held *h = calloc(n, sizeof(*h));
	unsigned k;

	if (!h)
		tu_fail("out of memory");
	for (unsigned c = 0; c < nclasses; c++) {
		uint64_t give_up = 0;

		for (k = 0; k < n;) {
			int how;

			h[k].size = classes[c];
			h[k].p = alloc_or_fail(h[k].size, 0, &how);
			check_fresh(h[k].p, h[k].size, 0, how, tag);
			if (!in_pool(h[k].p)) {
				free_or_fail(h[k].p, h[k].size);
				if (!give_up)
					give_up = tu_now_ms() + IDLE_REFILL_WAIT_MS;
				else if (tu_now_ms() > give_up)
					break;
				tu_sleep_ms(1);
				continue;
			}
			give_up = 0;
			fill_random(h[k].p, h[k].size, tag, rng);
			k++;
		}
		for (unsigned i = 0; i < k; i++)
			free_or_fail(h[i].p, h[i].size);
	}
	free(h);
}

static void fresh_round(unsigned n, uint64_t tag)
{
	struct hak_client_stats st0 = stats(), st;

	for (unsigned c = 0; c < nclasses; c++)
		for (unsigned i = 0; i < n; i++) {
			int how;
			void *p = alloc_or_fail(classes[c], 0, &how);

			check_fresh(p, classes[c], 0, how, tag);
			free_or_fail(p, classes[c]);
		}
	st = stats();
	tu_say("ok fresh allocs=%u ready=%llu mmap=%llu", n * nclasses,
	       (unsigned long long)(st.alloc_ready - st0.alloc_ready),
	       (unsigned long long)(st.alloc_mmap - st0.alloc_mmap));
}

static void hold_command(const char *line, struct held *h, unsigned n, uint64_t tag, uint64_t *rng)
{
	if (strcmp(line, "check") == 0) {
		check_held_all(h, n, tag, "held page");
		tu_say("ok check pages=%u", n);
	} else if (strncmp(line, "idle", 4) == 0) {
		make_idle((unsigned)strtoul(line + 4, NULL, 10), tag, rng);
		tu_say("ok idle");
	} else if (strncmp(line, "fresh", 5) == 0) {
		fresh_round((unsigned)strtoul(line + 5, NULL, 10), tag);
	} else if (strcmp(line, "stats") == 0) {
		print_stats("hold");
	} else if (strcmp(line, "connected") == 0) {
		tu_say("connected %d", hak_client_is_connected(client));
	}
}

int cmd_hold(const struct opts *o)
{
	struct held h[WINDOW_MAX];
	uint64_t tag = (o->pattern ? o->pattern : 0x42) & TAG_MASK, rng = tag | 1;
	unsigned n = o->pages < WINDOW_MAX ? o->pages : WINDOW_MAX;
	int r = open_client(o);
	char line[64];

	tu_say("connect rc=%d connected=%d reason=\"%s\"", r, hak_client_is_connected(client),
	       refusal);
	if (nclasses == 0)
		classes[nclasses++] = PAGE; /* not connected: any size works */
	hold_n(h, n, tag, &rng);
	tu_say("held pages=%u", n);
	for (read_cmd(line, sizeof(line)); line[0] && strcmp(line, "exit");
	     read_cmd(line, sizeof(line)))
		hold_command(line, h, n, tag, &rng);
	check_held_all(h, n, tag, "held page");
	for (unsigned i = 0; i < n; i++)
		free_or_fail(h[i].p, h[i].size);
	tu_say("ok");
	hak_client_unref(client);
	return 0;
}
