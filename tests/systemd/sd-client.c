/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The client check-systemd.sh runs inside the container: connects through
 * libhakclient to the default socket (socket activation starts the daemon),
 * takes and returns one slot of each size it is given, and fails unless the
 * pool was in use and every slot read as zero.
 *
 *   sd-client SIZE...
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hakclient.h>

#define FILL_BYTE 0x5a

static int zero_filled(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static int one_slot(struct hak_client *c, size_t size)
{
	void *p;
	int r = hak_alloc(c, size, 0, &p);

	if (r < 0) {
		fprintf(stderr, "hak_alloc(%zu): %s\n", size, strerror(-r));
		return -1;
	}
	if (!(r & HAK_ALLOC_ZEROED) || !zero_filled(p, size)) {
		fprintf(stderr, "hak_alloc(%zu): not zero-filled\n", size);
		return -1;
	}
	memset(p, FILL_BYTE, size);
	r = hak_free(c, p, size);
	if (r < 0) {
		fprintf(stderr, "hak_free(%zu): %s\n", size, strerror(-r));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct hak_client_stats st;
	struct hak_client *c;
	int r, fail = 0;

	r = hak_client_new(&c);
	if (r < 0) {
		fprintf(stderr, "hak_client_new: %s\n", strerror(-r));
		return 1;
	}
	r = hak_client_connect(c);
	if (r < 0) {
		fprintf(stderr, "hak_client_connect: %s\n", strerror(-r));
		hak_client_unref(c);
		return 1;
	}
	for (int i = 1; i < argc; i++)
		fail |= one_slot(c, strtoull(argv[i], NULL, 0)) < 0;
	r = hak_client_get_stats(c, &st, sizeof(st));
	if (r < 0) {
		fprintf(stderr, "hak_client_get_stats: %s\n", strerror(-r));
		fail = 1;
	} else {
		printf("connected %llu, pool %llu bytes, from the ready ring %llu, mmap fallbacks "
		       "%llu, larger than every class %llu\n",
		       (unsigned long long)st.connected, (unsigned long long)st.pool_bytes,
		       (unsigned long long)st.alloc_ready, (unsigned long long)st.alloc_mmap,
		       (unsigned long long)st.alloc_large);
		fail |= !st.connected;
	}
	hak_client_unref(c);
	return fail;
}
