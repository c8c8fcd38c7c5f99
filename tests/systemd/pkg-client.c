/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What a member of group hakzerod writes against the installed packages:
 * packages.sh builds it in the container with
 * `cc pkg-client.c $(pkg-config --cflags --libs libhakclient)`.  Fails
 * unless pages came zeroed from the daemon's pool.
 */
#include <stdio.h>
#include <unistd.h>

#include <hakclient.h>

#define PAGE 4096
#define PAGES 64
#define ROUNDS 50      /* the first pool may still be filling */
#define ROUND_US 20000 /* 50 rounds: 1 s at most */

int main(void)
{
	struct hak_client_stats st = {0};
	struct hak_client *c;
	void *p[PAGES];

	if (hak_client_new(&c) < 0 || hak_client_connect(c) < 0)
		return 1;
	for (int r = 0; r < ROUNDS && !st.alloc_ready; r++, usleep(ROUND_US)) {
		for (int i = 0; i < PAGES; i++)
			if (hak_alloc(c, PAGE, 0, &p[i]) <= 0) /* <= 0: not HAK_ALLOC_ZEROED */
				return 1;
		for (int i = 0; i < PAGES; i++)
			hak_free(c, p[i], PAGE);
		if (hak_client_get_stats(c, &st, sizeof(st)) < 0 || !st.connected)
			return 1;
	}
	printf("connected: %llu pages from the daemon's ready ring\n",
	       (unsigned long long)st.alloc_ready);
	hak_client_unref(c);
	return st.alloc_ready ? 0 : 1;
}
