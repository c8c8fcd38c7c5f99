/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hakzerod closes the descriptors it inherits: started with files open at
 * fds 10 and 251 (no close-on-exec, as a shell leaves them), it must hold
 * neither once it serves a client; stdin, stdout, stderr and the socket
 * systemd passes (LISTEN_FDS) stay, and the passed socket still serves.
 * The files are told apart by name, not number: the daemon's own
 * descriptors may reuse the numbers.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hakclient.h"
#include "hakd-spawn.h"

#define LISTEN_FD 3 /* SD_LISTEN_FDS_START */
#define LISTEN_BACKLOG 16
#define WAIT_MS 10000
#define POLL_MS 20

static const int inherited[] = {10, 251};

struct spawn {
	struct hakd d;
	char file[2][sizeof(((struct hakd *)0)->dir) + 32];
};

static void nap_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

static int listen_on(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, LISTEN_BACKLOG), 0);
	return fd;
}

/* In the child, before exec: fds at the numbers wanted, none close-on-exec. */
static void child_exec(const struct spawn *s, int lfd)
{
	const char *exe = getenv("HAKZEROD");
	char pid[16];

	prctl(PR_SET_PDEATHSIG, SIGTERM);
	for (unsigned i = 0; i < 2; i++) {
		int fd = open(s->file[i], O_RDONLY);

		if (fd < 0 || dup2(fd, inherited[i]) < 0)
			_exit(126);
	}
	if (lfd >= 0) {
		if (dup2(lfd, LISTEN_FD) < 0)
			_exit(126);
		snprintf(pid, sizeof(pid), "%d", (int)getpid());
		setenv("LISTEN_FDS", "1", 1);
		setenv("LISTEN_PID", pid, 1);
		execl(exe, exe, "--foreground", "--config", "/dev/null", "--socket", s->d.sock,
		      (char *)NULL);
	} else {
		/* Not a passed socket: an fd 3 left open by accident. */
		if (dup2(inherited[0], LISTEN_FD) < 0)
			_exit(126);
		execl(exe, exe, "--foreground", "--config", "/dev/null", "--socket", s->d.sock,
		      (char *)NULL);
	}
	_exit(127);
}

/* A client that got a pool: the daemon is up and past its start-up. */
static bool serves(const char *sock)
{
	struct hak_client *c;
	bool ok;

	assert_int_equal(hak_client_new(&c), 0);
	assert_int_equal(hak_client_set_mode(c, HAK_MODE_SHARED), 0);
	assert_int_equal(hak_client_set_socket(c, sock), 0);
	ok = hak_client_connect(c) == 0 && hak_client_is_connected(c) == 1;
	hak_client_unref(c);
	return ok;
}

static void spawn(struct spawn *s, bool activated)
{
	int lfd = -1;
	pid_t pid;

	if (!hakd_init(&s->d)) {
		print_message("skip: $HAKZEROD is not set (make check sets it)\n");
		skip();
	}
	for (unsigned i = 0; i < 2; i++) {
		int fd;

		snprintf(s->file[i], sizeof(s->file[i]), "%s/inherited-%d", s->d.dir, inherited[i]);
		fd = open(s->file[i], O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		assert_true(fd >= 0);
		close(fd);
	}
	if (activated)
		lfd = listen_on(s->d.sock);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		child_exec(s, lfd);
	s->d.pid = pid;
	if (lfd >= 0)
		close(lfd);
	for (unsigned t = 0; !serves(s->d.sock); t += POLL_MS) {
		assert_true(t < WAIT_MS);
		assert_int_equal(waitpid(pid, NULL, WNOHANG), 0); /* still running */
		nap_ms(POLL_MS);
	}
}

static void finish(struct spawn *s)
{
	hakd_stop(&s->d);
	for (unsigned i = 0; i < 2; i++)
		unlink(s->file[i]);
	hakd_fini(&s->d);
}

/* What the daemon's fd refers to, "" when it has no such fd. */
static void link_of(pid_t pid, const char *name, char *buf, size_t size)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/fd/%s", (int)pid, name);
	n = readlink(path, buf, size - 1);
	buf[n > 0 ? n : 0] = '\0';
}

/* Fails on any descriptor of the daemon open on one of our files. */
static void check_fds(const struct spawn *s, bool activated)
{
	char dir[64], target[PATH_MAX], fd3[PATH_MAX];
	unsigned nfds = 0;
	struct dirent *e;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)s->d.pid);
	d = opendir(dir);
	assert_non_null(d);
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		link_of(s->d.pid, e->d_name, target, sizeof(target));
		for (unsigned i = 0; i < 2; i++) {
			if (strcmp(target, s->file[i]) == 0)
				print_message("hakzerod kept fd %s: %s\n", e->d_name, target);
			assert_string_not_equal(target, s->file[i]);
		}
		nfds++;
	}
	closedir(d);
	assert_true(nfds > 3);
	for (unsigned i = 0; i < 3; i++) {
		char name[2] = {(char)('0' + i), '\0'};

		link_of(s->d.pid, name, target, sizeof(target));
		assert_true(target[0] != '\0'); /* stdin, stdout, stderr kept */
	}
	link_of(s->d.pid, "3", fd3, sizeof(fd3));
	if (activated)
		assert_true(strncmp(fd3, "socket:", strlen("socket:")) == 0);
}

static void test_inherited_closed(void **state)
{
	struct spawn s;

	(void)state;
	spawn(&s, false);
	check_fds(&s, false);
	finish(&s);
}

static void test_listen_fds_kept(void **state)
{
	struct spawn s;

	(void)state;
	spawn(&s, true);
	check_fds(&s, true);
	/* The passed socket is the one it serves on. */
	assert_true(serves(s.d.sock));
	finish(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inherited_closed),
		cmocka_unit_test(test_listen_fds_kept),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
