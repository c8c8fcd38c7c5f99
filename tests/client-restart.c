/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hak-client restart: a client that holds pages while its daemon is
 * SIGKILLed and a new one starts on the same socket (DESIGN rule 5).
 * Pages are filled with the --pattern byte, as in client-churn.c.
 */
#include <stdint.h>
#include <string.h>

#include "client.h"
#include "testutil.h"

#define HOLD_MAX 64

static unsigned hold_pages(struct held *h, unsigned per_class, unsigned char own)
{
	unsigned n = 0;

	for (unsigned c = 0; c < nclasses; c++)
		for (unsigned k = 0; k < per_class && n < HOLD_MAX; k++) {
			h[n].size = classes[c];
			h[n].p = alloc_checked(classes[c], 0, own, NULL);
			memset(h[n].p, own, h[n].size);
			n++;
		}
	return n;
}

static void check_held_byte(const struct held *h, unsigned n, unsigned char own)
{
	for (unsigned i = 0; i < n; i++)
		check_filled(h[i].p, h[i].size, own, "held page changed");
}

/* ------------------------------------------------------------- restart */

/* Allocates and frees one slot of each class, checking zeroes: the
 * allocations the daemon's absence or return must not break. */
static void alloc_each_class(unsigned char own)
{
	for (unsigned c = 0; c < nclasses; c++) {
		void *p = alloc_checked(classes[c], 0, own, NULL);

		memset(p, own, classes[c]);
		free_or_fail(p, classes[c]);
	}
}

/* Polls (allocating meanwhile, as a real program would) until
 * hak_client_is_connected() == want, or fails after REACT_MS. */
static void wait_connected(int want, unsigned char own)
{
	uint64_t deadline = tu_now_ms() + REACT_MS;

	while (hak_client_is_connected(client) != want) {
		if (tu_now_ms() > deadline)
			tu_fail("hak_client_is_connected() did not become %d within %d ms", want,
				REACT_MS);
		alloc_each_class(own);
		tu_sleep_ms(POLL_STEP_MS);
	}
}

/* After a reconnect the new daemon's ready ring may still be filling. */
static void wait_alloc_ready_grows(unsigned char own)
{
	uint64_t before = stats().alloc_ready, deadline = tu_now_ms() + REACT_MS;

	for (;;) {
		alloc_each_class(own);
		if (stats().alloc_ready > before)
			return;
		if (tu_now_ms() > deadline)
			tu_fail("no allocation came from the new daemon's ready ring within %d ms",
				REACT_MS);
		tu_sleep_ms(POLL_STEP_MS);
	}
}

/*
 * The driver SIGKILLs the daemon after "held" and says "go"; starts a new
 * one after "disconnected" and says "go" again (DESIGN rule 5).
 */
int cmd_restart(const struct opts *o)
{
	static struct held h[HOLD_MAX];
	struct hak_client_stats before, st;
	unsigned char own = pattern_byte(o);
	unsigned n;

	connect_checked(o);
	n = hold_pages(h, o->pages, own);
	print_stats("connected");
	tu_say("held pages=%u", n);
	wait_word("go");

	/* The daemon is dead: allocations go on, whether or not the library
	 * has noticed yet. */
	alloc_each_class(own);
	wait_connected(0, own);
	before = stats();
	alloc_each_class(own);
	st = stats();
	if (st.alloc_mmap + st.alloc_inline_zero <= before.alloc_mmap + before.alloc_inline_zero)
		tu_fail("disconnected, but allocations were not counted as fallbacks");
	check_held_byte(h, n, own);
	print_stats("disconnected");
	tu_say("disconnected");
	wait_word("go");

	wait_connected(1, own);
	if (stats().reconnects != 1)
		tu_fail("reconnects is %llu, not 1", (unsigned long long)stats().reconnects);
	wait_alloc_ready_grows(own);
	check_held_byte(h, n, own);
	/* Slots of the dead daemon's pool are freed like any other. */
	for (unsigned i = 0; i < n; i++)
		free_or_fail(h[i].p, h[i].size);
	alloc_each_class(own);
	print_stats("reconnected");
	tu_say("ok");
	hak_client_unref(client);
	return 0;
}
