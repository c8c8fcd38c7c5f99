/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The client tests/systemd/cgroup.sh runs in a unit of its own: connects
 * to the default socket, takes BYTES of 64 KiB pool slots (pool only, no
 * mmap fallback), writes every byte of them, says so on stdout and holds
 * them until it is stopped, so that the pages can be looked for in the
 * cgroups.  Fails when it gets no pool or not enough slots in time.
 *
 *   sd-hold BYTES
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hakclient.h>

#define SLOT (64 * 1024)
#define FILL_BYTE 0x5a
#define RETRY_NS 1000000 /* the ready ring ran dry: wait for the daemon */
#define RETRY_MAX 10000	 /* 10 s of that */

static int take(struct hak_client *c, void **p)
{
	struct timespec nap = {0, RETRY_NS};
	int r;

	for (int i = 0; i < RETRY_MAX; i++) {
		r = hak_alloc(c, SLOT, HAK_ALLOC_POOL_ONLY, p);
		if (r != -EAGAIN)
			return r;
		nanosleep(&nap, NULL);
	}
	return -EAGAIN;
}

int main(int argc, char **argv)
{
	struct hak_client *c;
	size_t n, i;
	void *p;
	int r;

	if (argc != 2) {
		fprintf(stderr, "usage: sd-hold BYTES\n");
		return 2;
	}
	n = strtoull(argv[1], NULL, 0) / SLOT;
	r = hak_client_new(&c);
	if (r == 0)
		r = hak_client_connect(c);
	if (r == 0 && hak_client_is_connected(c) != 1)
		r = -ENOTCONN;
	if (r < 0) {
		fprintf(stderr, "connect: %s\n", strerror(-r));
		return 1;
	}
	for (i = 0; i < n; i++) {
		r = take(c, &p);
		if (r < 0) {
			fprintf(stderr, "slot %zu of %zu: %s\n", i, n, strerror(-r));
			return 1;
		}
		memset(p, FILL_BYTE, SLOT);
	}
	printf("holding %zu bytes of pool slots\n", n * SLOT);
	fflush(stdout);
	for (;;)
		pause(); /* until systemd stops the unit */
}
