/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Memory is charged to the client (DESIGN, "Why"): a real hakzerod in one
 * memory cgroup, a client in another that takes and writes 12 MiB of pool
 * slots.  The client's cgroup must hold those pages as shmem, the daemon's
 * must grow by no more than its own control segment.  A client in a cgroup
 * whose limit is below what it writes must be stopped by that limit (the
 * OOM killer, or a failure it reports), not hold the slots, which would
 * mean their pages were charged elsewhere; the daemon must go on, with no
 * OOM kill in its cgroup, and serve the next client.
 *
 * Needs root and a memory cgroup it may make children in: the legacy
 * memory hierarchy, or cgroup v2 with the memory controller enabled below
 * this process's cgroup.  Skips (77) otherwise.  tests/systemd/cgroup.sh
 * checks the same with systemd units where the container has their cgroups.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hak_size.h"
#include "hakclient.h"
#include "harness.h"

#define SLOT (64 * 1024)
/* 96 slots of 64 KiB: within that class's 10% of the default pool. */
#define HOLD_BYTES (6 * MIB)
#define OVER_LIMIT (4 * MIB)
/* What the daemon writes itself for one client: its control segment. */
#define DAEMON_SLACK (4 * MIB)
#define HOLD_WAIT_MS 20000
#define RETRY_NS 1000000
#define RETRY_MAX 10000
#define FILL 0x5a
#define EXIT_NO_POOL 3

/* Where the memory controller's files are and what they are called. */
static struct {
	char base[PATH_MAX / 4]; /* this process's memory cgroup */
	const char *usage, *limit, *swap_limit, *oom;
} cg;

struct group {
	char path[PATH_MAX / 2];
};

static bool read_line_with(const char *path, const char *prefix, char *out, size_t size)
{
	FILE *f = fopen(path, "re");
	bool found = false;
	char line[PATH_MAX];

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		if (strncmp(line, prefix, strlen(prefix)) == 0) {
			snprintf(out, size, "%s", line + strlen(prefix));
			out[strcspn(out, "\n")] = '\0';
			found = true;
		}
	fclose(f);
	return found;
}

static bool write_str(const char *dir, const char *file, const char *s)
{
	char path[PATH_MAX];
	int fd, n;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = (int)write(fd, s, strlen(s));
	close(fd);
	return n == (int)strlen(s);
}

/* The value of KEY in dir/file ("key value" lines), or a lone number. */
static uint64_t value_of(const char *dir, const char *file, const char *key)
{
	char path[PATH_MAX + 64], v[64], prefix[64];

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	snprintf(prefix, sizeof(prefix), "%s%s", key, key[0] ? " " : "");
	if (!read_line_with(path, prefix, v, sizeof(v)))
		return 0;
	return strtoull(v, NULL, 10);
}

static bool find_cgroup(void)
{
	char own[PATH_MAX / 8];

	if (geteuid() != 0)
		return false;
	/* Legacy hierarchy: our path is on the line naming the controller. */
	if (access("/sys/fs/cgroup/memory/memory.stat", F_OK) == 0) {
		FILE *f = fopen("/proc/self/cgroup", "re");
		char line[PATH_MAX / 8];

		own[0] = '\0';
		while (f && fgets(line, sizeof(line), f)) {
			char *p = strstr(line, ":memory:");

			if (p) {
				snprintf(own, sizeof(own), "%s", p + strlen(":memory:"));
				own[strcspn(own, "\n")] = '\0';
			}
		}
		if (f)
			fclose(f);
		snprintf(cg.base, sizeof(cg.base), "/sys/fs/cgroup/memory%s", own);
		cg.usage = "memory.usage_in_bytes";
		cg.limit = "memory.limit_in_bytes";
		cg.swap_limit = "memory.memsw.limit_in_bytes";
		cg.oom = "memory.oom_control";
		return true;
	}
	if (!read_line_with("/proc/self/cgroup", "0::", own, sizeof(own)))
		return false;
	snprintf(cg.base, sizeof(cg.base), "/sys/fs/cgroup%s", own);
	cg.usage = "memory.current";
	cg.limit = "memory.max";
	cg.swap_limit = "memory.swap.max";
	cg.oom = "memory.events";
	/* v2: children of our cgroup get the controller only if it is
	 * enabled there, which fails while we are in it (no internal
	 * processes): then skip. */
	return write_str(cg.base, "cgroup.subtree_control", "+memory");
}

static bool group_make(struct group *g, const char *name)
{
	snprintf(g->path, sizeof(g->path), "%s/hak-test-%s-%d", cg.base, name, (int)getpid());
	return mkdir(g->path, 0755) == 0;
}

static bool group_enter(const struct group *g, pid_t pid)
{
	char s[24];

	snprintf(s, sizeof(s), "%d", (int)pid);
	return write_str(g->path, "cgroup.procs", s);
}

static void group_remove(const struct group *g)
{
	for (int i = 0; i < 100 && rmdir(g->path) < 0 && errno == EBUSY; i++)
		usleep(10000);
}

static uint64_t shmem_of(const struct group *g)
{
	return value_of(g->path, "memory.stat", "shmem");
}

/* ---- the client, in a child ---- */

static int take(struct hak_client *c, void **p)
{
	struct timespec nap = {0, RETRY_NS};
	int r = -EAGAIN;

	for (int i = 0; i < RETRY_MAX && r == -EAGAIN; i++) {
		r = hak_alloc(c, SLOT, HAK_ALLOC_POOL_ONLY, p);
		if (r == -EAGAIN)
			nanosleep(&nap, NULL);
	}
	return r;
}

/* Takes and writes HOLD_BYTES of slots, says so on fd, holds them. */
static void hold(const char *sock, int fd)
{
	struct hak_client *c;
	void *p;

	if (hak_client_new(&c) < 0 || hak_client_set_mode(c, HAK_MODE_SHARED) < 0 ||
	    hak_client_set_socket(c, sock) < 0 || hak_client_connect(c) < 0 ||
	    hak_client_is_connected(c) != 1)
		_exit(EXIT_NO_POOL);
	for (unsigned i = 0; i < HOLD_BYTES / SLOT; i++) {
		if (take(c, &p) < 0)
			_exit(1);
		memset(p, FILL, SLOT);
	}
	if (write(fd, "h", 1) != 1)
		_exit(1);
	for (;;)
		pause();
}

/* A child in group g holding slots; *held says whether it said so. */
static pid_t client_in(const struct group *g, const char *sock, bool *held)
{
	struct pollfd pfd = {.events = POLLIN};
	int pipefd[2];
	pid_t pid;
	char ch;

	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pipefd[0]);
		if (!group_enter(g, getpid()))
			_exit(2);
		hold(sock, pipefd[1]);
	}
	close(pipefd[1]);
	pfd.fd = pipefd[0];
	*held = poll(&pfd, 1, HOLD_WAIT_MS) == 1 && read(pipefd[0], &ch, 1) == 1;
	close(pipefd[0]);
	return pid;
}

/* ---- the tests ---- */

struct fixture {
	struct group daemon;
};

static int setup(void **state)
{
	static struct fixture f;

	if (!find_cgroup()) {
		print_message("skip: needs root and a memory cgroup to make children in\n");
		h_cleanup();
		exit(77);
	}
	if (!group_make(&f.daemon, "daemon")) {
		print_message("skip: cannot make a memory cgroup in %s: %s\n", cg.base,
			      strerror(errno));
		h_cleanup();
		exit(77);
	}
	h_daemon_start();
	/* Its later pages are charged here (what it charged before stays). */
	assert_true(group_enter(&f.daemon, h_daemon_pid()));
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int r = h_daemon_finish();

	group_remove(&f->daemon);
	return r;
}

static void test_charged_to_client(void **state)
{
	struct fixture *f = *state;
	struct group client;
	uint64_t before = shmem_of(&f->daemon), after, mine, usage;
	bool held;
	pid_t pid;

	assert_true(group_make(&client, "client"));
	pid = client_in(&client, h_env.sock, &held);
	mine = shmem_of(&client);
	usage = value_of(client.path, cg.usage, "");
	after = shmem_of(&f->daemon);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	print_message("client cgroup: shmem %llu, usage %llu; daemon cgroup: shmem %llu before, "
		      "%llu while the client held %llu\n",
		      (unsigned long long)mine, (unsigned long long)usage,
		      (unsigned long long)before, (unsigned long long)after,
		      (unsigned long long)HOLD_BYTES);
	group_remove(&client);
	assert_true(held);
	assert_true(mine >= HOLD_BYTES);
	assert_true(after < before + DAEMON_SLACK);
}

static void test_over_limit(void **state)
{
	struct fixture *f = *state;
	uint64_t ooms = value_of(f->daemon.path, cg.oom, "oom_kill");
	struct group over;
	char limit[32];
	int status;
	bool held;
	pid_t pid;

	assert_true(group_make(&over, "over"));
	snprintf(limit, sizeof(limit), "%llu", (unsigned long long)OVER_LIMIT);
	assert_true(write_str(over.path, cg.limit, limit));
	/* No swap to hide in (the file exists only with swap accounting). */
	write_str(over.path, cg.swap_limit, strcmp(cg.swap_limit, "memory.swap.max") ? limit : "0");
	pid = client_in(&over, h_env.sock, &held);
	if (held)
		kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	group_remove(&over);
	print_message(
		"over its %llu limit: %s %d; daemon cgroup oom_kill %llu before, %llu after\n",
		(unsigned long long)OVER_LIMIT, WIFSIGNALED(status) ? "killed by signal" : "exit",
		WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
		(unsigned long long)ooms,
		(unsigned long long)value_of(f->daemon.path, cg.oom, "oom_kill"));
	assert_false(held);
	/* Killed by its limit's OOM killer, or a failure it reported. */
	assert_true((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ||
		    (WIFEXITED(status) && WEXITSTATUS(status) == 1));
	/* The daemon goes on: alive, no OOM kill in its cgroup, serving. */
	assert_int_equal(waitpid(h_daemon_pid(), NULL, WNOHANG), 0);
	assert_int_equal(value_of(f->daemon.path, cg.oom, "oom_kill"), ooms);
	{
		struct group next;

		assert_true(group_make(&next, "next"));
		pid = client_in(&next, h_env.sock, &held);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		group_remove(&next);
		assert_true(held);
	}
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_charged_to_client, h_test_setup,
						h_test_teardown),
		cmocka_unit_test_setup_teardown(test_over_limit, h_test_setup, h_test_teardown),
	};
	int r = h_init_need("cgroup-charge", argv[0], 0);

	(void)argc;
	if (r)
		return r;
	h_write_conf("%s", "");
	return h_run_tests(tests, setup, teardown);
}
