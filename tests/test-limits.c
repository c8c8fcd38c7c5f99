/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Memory limits against a real hakzerod (DESIGN rule 6): the per-client
 * quota (pool_size_max), the per-uid limit, the global budget and
 * max_clients, each with its own small config.  A client over a limit is
 * refused with a clear reason that libhakclient passes to its log function
 * and hak_client_connect returns as -errno (E2BIG, EDQUOT, ENOMEM, EUSERS);
 * it still works on fallbacks (zeroed pages), and gets a pool on its own
 * once room is made.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "hak_size.h"
#include "harness.h"

#define TEST_ALARM_S 120
/* uid and gid of the second user (nobody) for the per-uid limit. */
#define OTHER_ID 65534
/* A refused client retries with back-off up to 2 s. */
#define RETRY_MS (3 * H_REACT_MS)

/* Each test starts a daemon of its own. */
static int test_teardown(void **state)
{
	h_test_teardown(state);
	h_procs_release_all();
	return h_daemon_finish();
}

/* Small pools of two classes, so that sizes are exact: 4M and 8M pools are
 * charged exactly 4M and 8M. */
#define CLASSES "class 4K 50%%\nclass 64K 50%%\nzero_threads 1\npool_size 4M\n"

struct client {
	struct h_proc *p;
	int rc;
	int connected;
	char reason[H_LINE];
};

/* hak-client hold --pool SIZE: its connect result and the refusal the
 * library logged; it holds 3 pages either way. */
static void client_start(struct client *c, const char *name, const char *pool)
{
	char line[H_LINE];
	const char *r;

	c->p = h_client(name, "hold", "--pool", pool, "--pages", "3", NULL);
	h_proc_expect(c->p, "connect", H_REACT_MS, line, sizeof(line));
	c->rc = (int)strtol(strstr(line, "rc=") + 3, NULL, 10);
	c->connected = (int)h_line_u64(line, "connected");
	r = strstr(line, "reason=\"");
	snprintf(c->reason, sizeof(c->reason), "%s", r ? r + 8 : "");
	c->reason[strcspn(c->reason, "\"")] = '\0';
	h_proc_expect(c->p, "held", H_REACT_MS, NULL, 0);
}

static void expect_connected(const struct client *c)
{
	h_check(c->rc == 0 && c->connected == 1, "%s: connect rc=%d connected=%d (%s)", c->p->name,
		c->rc, c->connected, c->reason);
}

/* Refused with -err and a reason naming the limit; and still working:
 * fresh allocations are zeroed fallbacks. */
static void expect_refused(const struct client *c, int err, const char *why)
{
	char line[H_LINE];

	h_check(c->rc == -err && c->connected == 0, "%s: connect rc=%d connected=%d, expected %d",
		c->p->name, c->rc, c->connected, -err);
	h_check(strstr(c->reason, why), "%s: refusal reason '%s' does not say '%s'", c->p->name,
		c->reason, why);
	fprintf(stderr, "  %s refused: %s\n", c->p->name, c->reason);
	h_proc_say(c->p, "fresh 8");
	h_proc_expect(c->p, "ok fresh", H_REACT_MS, line, sizeof(line));
	h_check(h_line_u64(line, "mmap") > 0, "%s: refused but not on fallbacks: %s", c->p->name,
		line);
}

static void client_exit(struct client *c)
{
	h_proc_say(c->p, "exit");
	h_proc_finish(c->p, H_REACT_MS, NULL, NULL, 0);
	h_proc_release(c->p);
}

/* Polls a refused client until its monitor got it a pool. */
static void wait_connected_later(struct client *c)
{
	uint64_t deadline = tu_now_ms() + RETRY_MS;
	char line[H_LINE];

	for (;;) {
		h_proc_say(c->p, "connected");
		h_proc_expect(c->p, "connected", H_REACT_MS, line, sizeof(line));
		if (strcmp(line, "connected 1") == 0)
			return;
		h_check(tu_now_ms() < deadline, "%s: no pool %d ms after room was made", c->p->name,
			RETRY_MS);
		tu_sleep_ms(50);
	}
}

static void test_quota(void **state)
{
	struct client big, max;
	uint64_t refused0;
	char line[H_LINE];

	h_write_conf(CLASSES "pool_size_max 8M\n");
	h_daemon_start();
	refused0 = h_stats_u64("refused");
	client_start(&big, "16M", "16M");
	expect_refused(&big, E2BIG, "pool_size 16M above pool_size_max 8M");
	client_start(&max, "8M", "8M");
	expect_connected(&max);
	h_proc_say(max.p, "stats");
	h_proc_expect(max.p, "stats hold", H_REACT_MS, line, sizeof(line));
	assert_int_equal(h_line_u64(line, "pool_bytes"), 8 * MIB);
	assert_int_equal(h_status_u64("pool_bytes"), 8 * MIB);
	h_check(h_stats_u64("refused") > refused0, "refusal not counted");
	h_check(h_log_count("above pool_size_max") > 0, "refusal not logged");
	client_exit(&big);
	client_exit(&max);
}

/* Starts a hold client as another user, or skips that part. */
static bool other_user_client(struct client *c)
{
	char line[H_LINE];

	if (geteuid() != 0) {
		fprintf(stderr, "  (not root: the per-uid limit is checked for one uid only)\n");
		return false;
	}
	/* The directory mkdtemp made is ours alone; the other user needs to
	 * reach the socket in it (socket_mode 0666 does the rest). */
	h_check(chmod(h_env.dir, 0711) == 0, "chmod %s: %s", h_env.dir, strerror(errno));
	c->p = h_client_as(OTHER_ID, OTHER_ID, "nobody-8M", "hold", "--pool", "8M", "--pages", "3",
			   NULL);
	if (h_proc_line(c->p, line, sizeof(line), tu_now_ms() + H_REACT_MS) != 1) {
		int st = h_proc_reap(c->p, H_REACT_MS);

		fprintf(stderr,
			"  (cannot run hak-client as uid %d: wait status %#x; per-uid "
			"check for one uid only)\n",
			OTHER_ID, st);
		h_proc_release(c->p);
		return false;
	}
	c->rc = (int)strtol(strstr(line, "rc=") + 3, NULL, 10);
	c->connected = (int)h_line_u64(line, "connected");
	h_proc_expect(c->p, "held", H_REACT_MS, NULL, 0);
	return true;
}

static void test_uid_limit(void **state)
{
	struct client a, b, c, d, other;
	char reason[64], json[H_JSON];
	bool have_other;

	h_write_conf(CLASSES "pool_size_max 8M\nuid_limit 20M\nglobal_budget 0\n");
	h_daemon_start();
	client_start(&a, "uid-a-8M", "8M");
	client_start(&b, "uid-b-8M", "8M");
	expect_connected(&a);
	expect_connected(&b);
	client_start(&c, "uid-c-8M", "8M");
	snprintf(reason, sizeof(reason), "uid %u limit 20M reached", (unsigned)geteuid());
	expect_refused(&c, EDQUOT, reason);
	/* 16M + 4M is the limit exactly: in. */
	client_start(&d, "uid-d-4M", "4M");
	expect_connected(&d);
	/* Another user has a limit of its own. */
	have_other = other_user_client(&other);
	if (have_other) {
		expect_connected(&other);
		h_check(h_client_json(other.p->pid, json, sizeof(json)) &&
				h_json_u64(json, "uid") == OTHER_ID,
			"the other user's session is not listed as uid %d", OTHER_ID);
	}
	assert_int_equal(h_status_u64("pool_bytes"), (have_other ? 28 : 20) * MIB);
	/* Room made: the refused client gets its pool by itself. */
	client_exit(&a);
	wait_connected_later(&c);
	h_proc_say(c.p, "check");
	h_proc_expect(c.p, "ok check", H_REACT_MS, NULL, 0);
	client_exit(&b);
	client_exit(&c);
	client_exit(&d);
	if (have_other)
		client_exit(&other);
}

static void test_global_budget(void **state)
{
	struct client a, b, c, d;

	h_write_conf(CLASSES "pool_size_max 8M\nuid_limit 0\nglobal_budget 20M\n");
	h_daemon_start();
	assert_int_equal(h_status_u64("budget_bytes"), 20 * MIB);
	client_start(&a, "budget-a-8M", "8M");
	client_start(&b, "budget-b-8M", "8M");
	expect_connected(&a);
	expect_connected(&b);
	client_start(&c, "budget-c-8M", "8M");
	expect_refused(&c, ENOMEM, "global budget reached");
	client_start(&d, "budget-d-4M", "4M");
	expect_connected(&d);
	assert_int_equal(h_status_u64("pool_bytes"), 20 * MIB);
	client_exit(&b);
	wait_connected_later(&c);
	assert_int_equal(h_status_u64("pool_bytes"), 20 * MIB);
	client_exit(&a);
	client_exit(&c);
	client_exit(&d);
}

#define MAX_CLIENTS 3

static void test_max_clients(void **state)
{
	struct client c[MAX_CLIENTS + 1];
	char names[MAX_CLIENTS + 1][16];

	h_write_conf(CLASSES "max_clients %d\n", MAX_CLIENTS);
	h_daemon_start();
	for (int i = 0; i <= MAX_CLIENTS; i++) {
		snprintf(names[i], sizeof(names[i]), "max-%d", i);
		client_start(&c[i], names[i], "4M");
		if (i < MAX_CLIENTS)
			expect_connected(&c[i]);
	}
	expect_refused(&c[MAX_CLIENTS], EUSERS, "too many clients (3)");
	assert_int_equal(h_status_u64("clients"), MAX_CLIENTS);
	client_exit(&c[0]);
	wait_connected_later(&c[MAX_CLIENTS]);
	for (int i = 1; i <= MAX_CLIENTS; i++)
		client_exit(&c[i]);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_quota, h_test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_uid_limit, h_test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_global_budget, h_test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_max_clients, h_test_setup, test_teardown),
	};
	int r = h_init("limits", argv[0]);

	if (r)
		return r;
	alarm(TEST_ALARM_S);
	return h_run_tests(tests, NULL, NULL);
}
