/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The hakzerod the shared rows of `hakbench apps` run against: whether it
 * answers, and its counters before and after each run, so that a row says
 * whether the daemon zeroed anything or the client cleared its own slots.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps.h"
#include "bench.h"
#include "hak_proto.h"
#include "hakclient.h"

bool apps_daemon_answers(const char *socket)
{
	struct hak_client *c;
	bool yes;

	if (hak_client_new(&c) < 0)
		return false;
	hak_client_set_mode(c, HAK_MODE_SHARED);
	yes = (!socket || hak_client_set_socket(c, socket) == 0) && hak_client_connect(c) == 0 &&
	      hak_client_is_connected(c) == 1;
	hak_client_unref(c);
	return yes;
}

bool apps_daemon_counters(const char *socket, uint64_t *zeroed, uint64_t *returned)
{
	char text[HAK_MSG_MAX];
	const char *path = socket;

	if (!path) {
		path = getenv(HAK_SOCKET_ENV);
		if (!path || !*path)
			path = HAK_DEFAULT_SOCKET;
	}
	return bench_admin_request(path, HAK_ADMIN_STATS, text, sizeof(text)) &&
	       bench_json_u64(text, "zeroed_pages", zeroed) &&
	       bench_json_u64(text, "returned_slots", returned);
}
