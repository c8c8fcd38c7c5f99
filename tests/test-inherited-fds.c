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
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "hakclient.h"
#include "harness.h"

#define LISTEN_FD 3 /* SD_LISTEN_FDS_START */
#define LISTEN_BACKLOG 16

static const int inherited[] = {10, 251};

/* The files the daemon inherits open, and the socket it is passed (-1:
 * none), as the pre-exec hook finds them. */
static struct {
	char file[2][PATH_MAX];
	int lfd;
} spawn;

/* In the daemon's process, before exec: fds at the numbers wanted, none
 * close-on-exec. */
static void pre_exec(void)
{
	char pid[16];

	for (unsigned i = 0; i < 2; i++) {
		int fd = open(spawn.file[i], O_RDONLY);

		if (fd < 0 || dup2(fd, inherited[i]) < 0)
			_exit(126);
	}
	if (spawn.lfd >= 0) {
		if (dup2(spawn.lfd, LISTEN_FD) < 0)
			_exit(126);
		snprintf(pid, sizeof(pid), "%d", (int)getpid());
		setenv("LISTEN_FDS", "1", 1);
		setenv("LISTEN_PID", pid, 1);
	} else if (dup2(inherited[0], LISTEN_FD) < 0) {
		/* Not a passed socket: an fd 3 left open by accident. */
		_exit(126);
	}
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

static void start(bool activated)
{
	/* What a failed test before left behind. */
	if (h_daemon_alive())
		h_daemon_kill();
	unlink(h_env.sock);
	for (unsigned i = 0; i < 2; i++) {
		int fd;

		snprintf(spawn.file[i], sizeof(spawn.file[i]), "%s/inherited-%d", h_env.dir,
			 inherited[i]);
		fd = open(spawn.file[i], O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		assert_true(fd >= 0);
		close(fd);
	}
	spawn.lfd = activated ? h_listen(LISTEN_BACKLOG) : -1;
	h_daemon_pre_exec = pre_exec;
	h_daemon_start();
	h_daemon_pre_exec = NULL;
	if (spawn.lfd >= 0)
		close(spawn.lfd);
	assert_true(serves(h_env.sock));
}

static void finish(void)
{
	h_daemon_stop();
	unlink(h_env.sock);
	for (unsigned i = 0; i < 2; i++)
		unlink(spawn.file[i]);
}

/* What the daemon's fd refers to, "" when it has no such fd. */
static void link_of(pid_t pid, const char *name, char *buf, size_t size)
{
	char path[sizeof("/proc/-2147483648/fd/") + NAME_MAX];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/fd/%s", (int)pid, name);
	n = readlink(path, buf, size - 1);
	buf[n > 0 ? n : 0] = '\0';
}

/* Fails on any descriptor of the daemon open on one of our files. */
static void check_fds(pid_t pid, bool activated)
{
	char dir[64], target[PATH_MAX], fd3[PATH_MAX];
	unsigned nfds = 0;
	struct dirent *e;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	d = opendir(dir);
	assert_non_null(d);
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		link_of(pid, e->d_name, target, sizeof(target));
		for (unsigned i = 0; i < 2; i++) {
			if (strcmp(target, spawn.file[i]) == 0)
				print_message("hakzerod kept fd %s: %s\n", e->d_name, target);
			assert_string_not_equal(target, spawn.file[i]);
		}
		nfds++;
	}
	closedir(d);
	assert_true(nfds > 3);
	for (unsigned i = 0; i < 3; i++) {
		char name[2] = {(char)('0' + i), '\0'};

		link_of(pid, name, target, sizeof(target));
		assert_true(target[0] != '\0'); /* stdin, stdout, stderr kept */
	}
	link_of(pid, "3", fd3, sizeof(fd3));
	if (activated)
		assert_true(strncmp(fd3, "socket:", strlen("socket:")) == 0);
}

static void test_inherited_closed(void **state)
{
	(void)state;
	start(false);
	check_fds(h_daemon_pid(), false);
	finish();
}

static void test_listen_fds_kept(void **state)
{
	(void)state;
	start(true);
	check_fds(h_daemon_pid(), true);
	/* The passed socket is the one it serves on. */
	assert_true(serves(h_env.sock));
	finish();
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_inherited_closed, h_test_setup,
						h_test_teardown),
		cmocka_unit_test_setup_teardown(test_listen_fds_kept, h_test_setup,
						h_test_teardown),
	};
	int r = h_init_need("inherited-fds", argv[0], 0);

	(void)argc;
	if (r)
		return r;
	h_write_conf("%s", "");
	return h_run_tests(tests, NULL, NULL);
}
