/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Holds pages through a package upgrade (packages.sh builds it in the
 * container against the installed libhakclient-dev):
 *
 *   pkg-upgrade PAGES    prints "held", waits for a line on stdin (the
 *                        upgrade is under way), then for the daemon to go
 *                        and come back
 *
 * Nothing lost: every held page still holds what was written to it.
 * Nothing given twice: the new pool's pages are zeroed and none is a page
 * still held.  Exit 0 with "ok ...", else 1 with the reason.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hakclient.h>

#define PAGE 4096
#define MAX_PAGES 1024
#define WAIT_MS 60000 /* the daemon leaving, then coming back */
#define POLL_MS 1

static struct hak_client *c;
static unsigned char *held[MAX_PAGES], *fresh[MAX_PAGES];

static int fail(const char *what, long i)
{
	printf("fail %s (%ld)\n", what, i);
	return 1;
}

static int alloc_zeroed(unsigned char **p)
{
	if (hak_alloc(c, PAGE, 0, (void **)p) <= 0) /* <= 0: not HAK_ALLOC_ZEROED */
		return -1;
	for (size_t j = 0; j < PAGE; j++)
		if ((*p)[j])
			return -1;
	return 0;
}

/* Polls hak_client_is_connected() until it says want. */
static int wait_connected(int want)
{
	struct timespec step = {0, POLL_MS * 1000000L};

	for (int ms = 0; ms < WAIT_MS; ms += POLL_MS, nanosleep(&step, NULL))
		if (hak_client_is_connected(c) == want)
			return 0;
	return -1;
}

static int page_byte(long i)
{
	return 1 + i % 255; /* never 0: tells a written page from a zeroed one */
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 0) : 0;
	struct hak_client_stats st;
	char line[64];

	if (n < 1 || n > MAX_PAGES || hak_client_new(&c) < 0 || hak_client_connect(c) < 0)
		return fail("usage: pkg-upgrade PAGES (1..1024), connected to hakzerod", n);
	for (long i = 0; i < n; i++) {
		if (alloc_zeroed(&held[i]) < 0)
			return fail("a page not zeroed", i);
		memset(held[i], page_byte(i), PAGE);
	}
	printf("held %ld\n", n);
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return fail("no go on stdin", 0);
	if (wait_connected(0) < 0)
		return fail("the daemon was not restarted", 0);
	printf("disconnected\n");
	if (wait_connected(1) < 0)
		return fail("no reconnection", 0);
	for (long i = 0; i < n; i++)
		for (size_t j = 0; j < PAGE; j++)
			if (held[i][j] != page_byte(i))
				return fail("a held page lost its bytes", i);
	for (long i = 0; i < n; i++) {
		if (alloc_zeroed(&fresh[i]) < 0)
			return fail("a new page not zeroed", i);
		for (long k = 0; k < n; k++)
			if (fresh[i] == held[k])
				return fail("a held page given again", i);
	}
	for (long i = 0; i < n; i++) {
		hak_free(c, held[i], PAGE);
		hak_free(c, fresh[i], PAGE);
	}
	if (hak_client_get_stats(c, &st, sizeof(st)) < 0 || st.reconnects != 1)
		return fail("reconnects is not 1", (long)st.reconnects);
	printf("ok reconnected once, %ld held pages intact, %ld new pages zeroed and distinct\n", n,
	       n);
	hak_client_unref(c);
	return 0;
}
