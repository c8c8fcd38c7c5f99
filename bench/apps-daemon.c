/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The hakzerod the shared rows of `hakbench apps` run against: whether it
 * answers, and its counters before and after each run, so that a row says
 * whether the daemon zeroed anything or the client cleared its own slots.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "apps.h"
#include "hak_proto.h"
#include "hakclient.h"

#define ADMIN_TIMEOUT_MS 2000

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

/* An admin STATS in JSON; its text in out.  Root or the admin group. */
static bool admin_stats(const char *path, char *out, size_t len)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct hak_msg_admin m = {0};
	union {
		struct hak_msg_admin_reply r;
		char buf[HAK_MSG_MAX + 1];
	} u;
	struct pollfd pfd;
	ssize_t n = -1;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return false;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	hak_proto_hdr_init(&m.h, HAK_MSG_ADMIN, sizeof(m));
	m.cmd = HAK_ADMIN_STATS;
	m.flags = HAK_ADMIN_F_JSON;
	pfd = (struct pollfd){.fd = fd, .events = POLLIN};
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    hak_sock_send(fd, &m, sizeof(m), NULL, 0) == 0 && poll(&pfd, 1, ADMIN_TIMEOUT_MS) == 1)
		n = hak_sock_recv(fd, u.buf, HAK_MSG_MAX, NULL, 0, NULL, 0);
	close(fd);
	if (n <= 0 || hak_proto_check(u.buf, (size_t)n) != HAK_MSG_ADMIN_REPLY || u.r.status != 0)
		return false;
	u.buf[n] = '\0';
	snprintf(out, len, "%s", u.r.text);
	return true;
}

/* "key":NUMBER in a flat JSON object. */
static bool field(const char *text, const char *key, uint64_t *v)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(text, pat);
	if (!p)
		return false;
	*v = strtoull(p + strlen(pat), NULL, 10);
	return true;
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
	return admin_stats(path, text, sizeof(text)) && field(text, "zeroed_pages", zeroed) &&
	       field(text, "returned_slots", returned);
}
