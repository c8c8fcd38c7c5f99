/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hakzerod as its unit runs it: an unprivileged user (no CAP_SYS_RESOURCE)
 * with a bounded RLIMIT_NOFILE, passed its socket (LISTEN_FDS).
 *
 * The kernel charges descriptors in flight over a unix socket to the user
 * that sent them, up to that user's RLIMIT_NOFILE; past it, every sendmsg
 * with SCM_RIGHTS fails with ETOOMANYREFS.  A WELCOME carries three.  An
 * attacker that sends HELLO, never reads the WELCOME, gets its session
 * cut off and keeps its sockets open leaves those descriptors in flight:
 * without a bound, a few dozen such sockets here (hundreds under the unit)
 * stop every later client of every user.  Its unread WELCOMEs must count
 * against its own uid's limit, so that other users are still served.
 *
 * Needs root, to run the daemon and the attacker as other users.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "hak_proto.h"
#include "hakclient.h"
#include "harness.h"

#define LISTEN_FD 3 /* SD_LISTEN_FDS_START */
#define LISTEN_BACKLOG 128
/* uids and gids: the daemon's (no other test's: the kernel counts
 * descriptors in flight per user, and test-hostile runs clients as
 * nobody), the attacker's, another user's. */
#define DAEMON_USER 4241
#define ATTACKER 4242
#define VICTIM 4243
/* The daemon's descriptor limit: small, so that a few dozen unread
 * WELCOMEs would exhaust it, as a few hundred do under the unit. */
#define DAEMON_NOFILE 64
/* Connections the attacker makes: their WELCOMEs would hold three times
 * as many descriptors in flight, more than DAEMON_NOFILE. */
#define ATTACK_CONNS 40
/* pool_size and uid_limit of the test config: 4 pools per uid. */
#define POOL "1M"
#define UID_LIMIT "4M"
#define UID_POOLS 4

static int listen_fd = -1;

/* In the daemon's process, before exec: its socket at fd 3, its limit,
 * then a user of its own (nothing of root's is left, CAP_SYS_RESOURCE
 * least). */
static void pre_exec(void)
{
	struct rlimit rl = {DAEMON_NOFILE, DAEMON_NOFILE};
	char pid[16];

	if (dup2(listen_fd, LISTEN_FD) < 0)
		_exit(126);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("LISTEN_FDS", "1", 1);
	setenv("LISTEN_PID", pid, 1);
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || setgroups(0, NULL) < 0 ||
	    setgid(DAEMON_USER) < 0 || setuid(DAEMON_USER) < 0)
		_exit(126);
}

static void become(uid_t id)
{
	if (setgroups(0, NULL) < 0 || setgid(id) < 0 || setuid(id) < 0)
		_exit(126);
}

/* A client of user id (in a child of ours) gets its pool. */
static bool served_as(uid_t id)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct hak_client *c;

		become(id);
		if (hak_client_new(&c) < 0 || hak_client_set_mode(c, HAK_MODE_SHARED) < 0 ||
		    hak_client_set_socket(c, h_env.sock) < 0)
			_exit(2);
		_exit(hak_client_connect(c) == 0 && hak_client_is_connected(c) == 1 ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* The attacker, as user ATTACKER: per connection HELLO, waits for the
 * answer without reading it, then a message after HELLO that gets the
 * session cut off; keeps every socket.  Writes how many were welcomed to
 * out, then waits to be killed. */
static void attacker(int out)
{
	struct hak_msg_hello m;
	unsigned welcomed = 0;
	int fds[ATTACK_CONNS];

	become(ATTACKER);
	memset(&m, 0, sizeof(m));
	hak_proto_hdr_init(&m.h, HAK_MSG_HELLO, sizeof(m));
	for (unsigned i = 0; i < ATTACK_CONNS; i++) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		struct pollfd p;
		struct hak_msg_hdr h;

		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", h_env.sock);
		fds[i] = socket(AF_UNIX, SOCK_SEQPACKET, 0);
		if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    send(fds[i], &m, sizeof(m), MSG_NOSIGNAL) != (ssize_t)sizeof(m))
			_exit(3);
		p = (struct pollfd){.fd = fds[i], .events = POLLIN};
		/* A peek without room for descriptors leaves them queued. */
		if (poll(&p, 1, H_REACT_MS) == 1 && (p.revents & POLLIN) &&
		    recv(fds[i], &h, sizeof(h), MSG_PEEK) == (ssize_t)sizeof(h) &&
		    h.type == HAK_MSG_WELCOME)
			welcomed++;
		/* Whatever comes after WELCOME cuts the session off. */
		send(fds[i], &m, sizeof(m), MSG_NOSIGNAL);
	}
	if (write(out, &welcomed, sizeof(welcomed)) != sizeof(welcomed))
		_exit(4);
	pause();
	_exit(0);
}

static void test_unread_welcomes_bounded_per_uid(void **state)
{
	uint64_t cut0;
	unsigned welcomed = 0;
	pid_t att;
	int pfd[2];

	(void)state;
	h_write_conf("pool_size " POOL "\n"
		     "uid_limit " UID_LIMIT "\n"
		     "class 4K 100%%\n"
		     "zero_threads 1\n");
	assert_int_equal(chmod(h_env.dir, 0755), 0);
	assert_int_equal(chmod(h_env.conf, 0644), 0);
	listen_fd = h_listen(LISTEN_BACKLOG);
	h_daemon_pre_exec = pre_exec;
	h_daemon_start();
	h_daemon_pre_exec = NULL;
	close(listen_fd);
	assert_true(served_as(VICTIM));
	cut0 = h_stats_u64("cut_off");

	assert_int_equal(pipe(pfd), 0);
	att = fork();
	assert_true(att >= 0);
	if (att == 0) {
		close(pfd[0]);
		attacker(pfd[1]);
	}
	close(pfd[1]);
	assert_int_equal(read(pfd[0], &welcomed, sizeof(welcomed)), sizeof(welcomed));
	close(pfd[0]);
	print_message("attacker: %u of %d connections welcomed\n", welcomed, ATTACK_CONNS);
	/* Its sessions are cut off (their WELCOMEs unread); once the daemon
	 * counted them, it has seen everything the attacker sent. */
	h_wait_stat("cut_off", cut0 + welcomed, H_REACT_MS);

	/* Other users are served, and so is root; the attacker's own uid had
	 * at most its limit's worth. */
	assert_true(served_as(VICTIM));
	assert_true(served_as(0));
	assert_true(welcomed >= 1);
	assert_true(welcomed <= UID_POOLS);
	/* Its sockets closed, its uid is served again. */
	kill(att, SIGKILL);
	assert_int_equal(waitpid(att, NULL, 0), att);
	for (uint64_t end = tu_now_ms() + H_REACT_MS; !served_as(ATTACKER);) {
		assert_true(tu_now_ms() < end);
		tu_sleep_ms(H_POLL_MS);
	}
	h_daemon_assert_alive();
	h_daemon_stop();
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_unread_welcomes_bounded_per_uid, h_test_setup,
						h_test_teardown),
	};
	int r;

	if (geteuid() != 0) {
		printf("SKIP: needs root, to run hakzerod and its clients as other users\n");
		return H_EXIT_SKIP;
	}
	r = h_init_need("unprivileged", argv[0], 0);
	(void)argc;
	if (r)
		return r;
	return h_run_tests(tests, NULL, NULL);
}
