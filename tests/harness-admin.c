/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The harness of the real-daemon tests, its admin requests and /proc
 * readings: see harness.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hak_proto.h"
#include "harness.h"

#define ARGS_MAX 40

/* -------------------------------------------------------------- admin */

int h_connect(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), e;

	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", h_env.sock);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

int h_listen(int backlog)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);

	h_check(fd >= 0, "socket: %s", strerror(errno));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", h_env.sock);
	h_check(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind %s: %s", h_env.sock,
		strerror(errno));
	h_check(chmod(h_env.sock, 0666) == 0 && listen(fd, backlog) == 0, "listen on %s: %s",
		h_env.sock, strerror(errno));
	return fd;
}

static int recv_reply(int fd, char *out, size_t size, size_t *used)
{
	union {
		struct hak_msg_admin_reply r;
		char buf[HAK_MSG_MAX];
	} u;
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	size_t text;
	ssize_t n;

	if (poll(&pfd, 1, H_REACT_MS) <= 0)
		return -ETIMEDOUT;
	n = hak_sock_recv(fd, u.buf, sizeof(u.buf), NULL, 0, NULL, 0);
	if (n <= 0 || hak_proto_check(u.buf, (size_t)n) != HAK_MSG_ADMIN_REPLY)
		return n < 0 ? (int)n : -EPROTO;
	text = (size_t)n - sizeof(u.r);
	if (*used + text >= size)
		text = size - *used - 1;
	memcpy(out + *used, u.r.text, text);
	*used += text;
	out[*used] = '\0';
	if (u.r.status < 0)
		return u.r.status;
	return u.r.flags & HAK_ADMIN_F_LAST ? 1 : 0;
}

int h_admin(uint32_t cmd, int32_t pid, char *out, size_t size)
{
	int fd = h_connect();

	out[0] = '\0';
	if (fd < 0)
		return fd;
	return h_admin_on(fd, cmd, pid, out, size);
}

int h_admin_on(int fd, uint32_t cmd, int32_t pid, char *out, size_t size)
{
	struct hak_msg_admin m;
	size_t used = 0;
	int r;

	out[0] = '\0';
	memset(&m, 0, sizeof(m));
	hak_proto_hdr_init(&m.h, HAK_MSG_ADMIN, sizeof(m));
	m.cmd = cmd;
	m.flags = HAK_ADMIN_F_JSON;
	m.pid = pid;
	r = hak_sock_send(fd, &m, sizeof(m), NULL, 0);
	while (r == 0)
		r = recv_reply(fd, out, size, &used);
	close(fd);
	return r < 0 ? r : 0;
}

static const char *json_find(const char *json, const char *key)
{
	char pat[64];
	const char *s;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	s = strstr(json, pat);
	return s ? s + strlen(pat) : NULL;
}

uint64_t h_json_u64(const char *json, const char *key)
{
	const char *s = json_find(json, key);

	if (!s)
		h_fail("no \"%s\" in %s", key, json);
	return strtoull(s, NULL, 10);
}

bool h_json_has(const char *json, const char *key)
{
	return json_find(json, key) != NULL;
}

static void admin_or_fail(uint32_t cmd, char *out, size_t size)
{
	int r = h_admin(cmd, 0, out, size);

	if (r < 0)
		h_fail("admin request %u failed: %s (%s)", cmd, strerror(-r), out);
}

uint64_t h_status_u64(const char *key)
{
	char json[H_JSON];

	admin_or_fail(HAK_ADMIN_STATUS, json, sizeof(json));
	return h_json_u64(json, key);
}

uint64_t h_stats_u64(const char *key)
{
	char json[H_JSON];

	admin_or_fail(HAK_ADMIN_STATS, json, sizeof(json));
	return h_json_u64(json, key);
}

bool h_client_json(pid_t pid, char *out, size_t size)
{
	static char json[H_JSON * 4];
	char pat[32];
	const char *s, *e;

	admin_or_fail(HAK_ADMIN_CLIENTS, json, sizeof(json));
	snprintf(pat, sizeof(pat), "\"pid\":%d,", (int)pid);
	s = strstr(json, pat);
	if (!s)
		return false;
	while (s > json && s[-1] != '\n')
		s--;
	e = strchr(s, '\n');
	snprintf(out, size, "%.*s", (int)(e ? e - s : (long)strlen(s)), s);
	return true;
}

/* Each class object of a client's JSON is {"slot_size":N,...}. */
static uint64_t class_sum(const char *json, const char *key, bool bytes)
{
	const char *s = strstr(json, "\"classes\":[");
	const char *end = s ? strchr(s, ']') : NULL;
	uint64_t sum = 0;

	h_check(s && end, "no classes in %s", json);
	for (s = strstr(s, "{\"slot_size\":"); s && s < end; s = strstr(s + 1, "{\"slot_size\":")) {
		const char *close = strchr(s, '}');
		char obj[512];

		snprintf(obj, sizeof(obj), "%.*s", (int)(close - s + 1), s);
		sum += h_json_u64(obj, key) * (bytes ? h_json_u64(obj, "slot_size") : 1);
	}
	return sum;
}

uint64_t h_client_class_sum(const char *json, const char *key)
{
	return class_sum(json, key, false);
}

uint64_t h_client_class_bytes(const char *json, const char *key)
{
	return class_sum(json, key, true);
}

void h_client_settled(pid_t pid, char *json, size_t size)
{
	uint64_t deadline = tu_now_ms() + H_REACT_MS;

	for (;;) {
		const char *own;

		h_check(h_client_json(pid, json, size), "client %d not listed", (int)pid);
		own = strstr(json, "\"client\":{");
		h_check(own, "no client counters in %s", json);
		if (h_json_u64(json, "returned") == h_json_u64(own, "returned") &&
		    h_client_class_sum(json, "returned") == 0 &&
		    h_client_class_sum(json, "busy") == 0)
			return;
		h_check(tu_now_ms() < deadline, "returns not taken and zeroed in %d ms: %s",
			H_REACT_MS, json);
		tu_sleep_ms(H_POLL_MS);
	}
}

void h_wait_clients(uint64_t clients, const char *why)
{
	uint64_t deadline = tu_now_ms() + H_REACT_MS, n;

	while ((n = h_status_u64("clients")) != clients) {
		if (tu_now_ms() > deadline)
			h_fail("%s: %llu clients after %d ms, expected %llu", why,
			       (unsigned long long)n, H_REACT_MS, (unsigned long long)clients);
		tu_sleep_ms(H_POLL_MS);
	}
}

uint64_t h_wait_stat(const char *key, uint64_t value, unsigned timeout_ms)
{
	uint64_t deadline = tu_now_ms() + timeout_ms, v;

	while ((v = h_stats_u64(key)) < value) {
		if (tu_now_ms() > deadline)
			h_fail("stats %s is %llu after %u ms, expected at least %llu", key,
			       (unsigned long long)v, timeout_ms, (unsigned long long)value);
		tu_sleep_ms(H_POLL_MS);
	}
	return v;
}

int h_hakctl(char *out, size_t size, ...)
{
	char *argv[ARGS_MAX];
	char line[H_LINE];
	const char *a;
	struct h_proc *p;
	size_t used = 0;
	va_list ap;
	int n = 0, st;

	h_check(h_env.hakctl, "$HAKCTL is not set");
	argv[n++] = (char *)h_env.hakctl;
	argv[n++] = "--socket";
	argv[n++] = h_env.sock;
	argv[n++] = "--json";
	va_start(ap, size);
	while ((a = va_arg(ap, const char *)) && n < ARGS_MAX - 1)
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	p = h_proc_start("hakctl", argv);
	out[0] = '\0';
	while (h_proc_line(p, line, sizeof(line), tu_now_ms() + H_REACT_MS) == 1)
		if (used < size)
			used += (size_t)snprintf(out + used, size - used, "%s\n", line);
	st = h_proc_reap(p, H_REACT_MS);
	h_proc_release(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* -------------------------------------------------------------- /proc */

static uint64_t status_kb(const char *text, const char *key)
{
	const char *s = strstr(text, key);

	return s ? strtoull(s + strlen(key), NULL, 10) * 1024 : 0;
}

bool h_pid_mem(pid_t pid, struct h_mem *m)
{
	char path[64], text[8192];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return false;
	text[n] = '\0';
	m->rss = status_kb(text, "VmRSS:");
	m->anon = status_kb(text, "RssAnon:");
	m->file = status_kb(text, "RssFile:");
	m->shmem = status_kb(text, "RssShmem:");
	return true;
}

uint64_t h_pid_cpu_ms(pid_t pid)
{
	char path[64], text[1024], *s;
	unsigned long long ut = 0, st = 0;
	long hz = sysconf(_SC_CLK_TCK);
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	text[n] = '\0';
	/* Fields after the command name (which may hold spaces): state is
	 * field 3, utime 14, stime 15. */
	s = strrchr(text, ')');
	if (!s ||
	    sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return 0;
	return (ut + st) * 1000 / (uint64_t)(hz > 0 ? hz : 100);
}

int h_pid_fds(pid_t pid)
{
	char path[64];
	DIR *d;
	struct dirent *e;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}
