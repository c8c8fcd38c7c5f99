/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Elastic pools against a real hakzerod (DESIGN "Shared mode" 2): a pool
 * costs what its client uses.
 *
 *   small_shared  a client holding a few pages of a 64 MiB pool has far
 *                 less than the pool resident: only what its ready rings
 *                 hold was populated
 *   grows         a client that keeps allocating gets its 4 KiB ready
 *                 target grown (hakctl clients: ready_target), and every
 *                 page it is handed reads zero
 *   shrinks       once it stops, the target goes back to where it started
 *                 after the idle period
 *   small_local   the same bound in local mode (no daemon involved)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "hak_size.h"
#include "harness.h"

#define TEST_ALARM_S 120

/* One class of 4 KiB and the default watermarks: 16384 slots, at most
 * 12288 ready, 512 (2 MiB) at first.  One class only, so that a round of
 * allocations drains it until the round ends, and the target read right
 * after cannot have shrunk meanwhile; trim_idle long enough for that read
 * on a loaded machine, short enough to see two halvings. */
#define POOL (64 * MIB)
#define CONF                                                                                       \
	"pool_size 64M\n"                                                                          \
	"class 4K 100%%\n"                                                                         \
	"zero_threads 1\n"                                                                         \
	"psi_threshold 0\n"                                                                        \
	"trim_idle 1s\n"
#define INITIAL_4K 512u
/* What a client that holds a few pages may have resident of its pool and
 * control segment (shared): the first ready target is 2 MiB, the rest is
 * slack.  Before elastic pools, the whole 64 MiB was
 * populated. */
#define SMALL_MAX (12 * MIB)
/* Local mode cuts the default classes: the four pages held include one
 * 2 MiB and one 2 MiB + 4 KiB slot, touched whole (4 MiB), but no slot of
 * those classes is populated ahead for a single take; plus 1 MiB of the
 * small classes and the program's own anonymous memory.  Before: the
 * whole 64 MiB. */
#define SMALL_MAX_LOCAL (12 * MIB)
/* Pages of each class the growing client takes and frees, one at a time:
 * many times the first target, so the ring is drained over and over. */
#define GROW_ROUND "fresh 3000"
/* How long the population of what was queued at connect may take. */
#define SETTLE_MS 300

static struct h_proc *client;

static int group_setup(void **state)
{
	h_write_conf(CONF);
	h_daemon_start();
	client = h_client("client", "hold", "--pages", "4", "--pattern", "0x33", NULL);
	h_proc_expect(client, "held", H_REACT_MS, NULL, 0);
	return 0;
}

static struct h_mem mem_of(pid_t pid)
{
	struct h_mem m;

	h_check(h_pid_mem(pid, &m), "no /proc numbers for %d", (int)pid);
	return m;
}

static uint64_t target_of(pid_t pid)
{
	char json[H_JSON];

	h_check(h_client_json(pid, json, sizeof(json)), "client %d not listed", (int)pid);
	/* The first class's: 4 KiB. */
	return h_json_u64(json, "ready_target");
}

static uint64_t target_4k(void)
{
	return target_of(client->pid);
}

static void test_small_shared(void **state)
{
	struct h_mem m;

	if (H_SANITIZED)
		skip();
	tu_sleep_ms(SETTLE_MS);
	m = mem_of(client->pid);
	fprintf(stderr, "  shared: RssShmem %llu kB, RSS %llu kB, pool %llu kB\n",
		(unsigned long long)m.shmem / 1024, (unsigned long long)m.rss / 1024,
		(unsigned long long)POOL / 1024);
	h_check(m.shmem <= SMALL_MAX, "RssShmem %llu kB > %llu kB",
		(unsigned long long)m.shmem / 1024, (unsigned long long)SMALL_MAX / 1024);
	assert_int_equal(target_4k(), INITIAL_4K);
}

/* The highest ready target seen while the round runs and right after: on a
 * loaded machine the round may outlast trim_idle after the target grew,
 * and the target shrink back before the round ends. */
static uint64_t round_max_target(char *line, size_t size)
{
	uint64_t deadline = tu_now_ms() + 4 * H_REACT_MS, max = 0, t;
	int r;

	h_proc_say(client, GROW_ROUND);
	do {
		t = target_4k();
		max = t > max ? t : max;
		r = h_proc_line(client, line, size, tu_now_ms() + H_POLL_MS);
		h_check(r != 0, "the client ended during %s", GROW_ROUND);
		h_check(r < 0 || strncmp(line, "fail", strlen("fail")) != 0, "client: %s", line);
		h_check(tu_now_ms() < deadline, "%s still running", GROW_ROUND);
	} while (r < 0 || strncmp(line, "ok fresh", strlen("ok fresh")) != 0);
	t = target_4k();
	return t > max ? t : max;
}

static void test_grows(void **state)
{
	char line[H_LINE];
	uint64_t t;

	t = round_max_target(line, sizeof(line));
	fprintf(stderr, "  during %s: 4 KiB ready_target up to %llu (%s)\n", GROW_ROUND,
		(unsigned long long)t, line);
	h_check(t > INITIAL_4K, "the ready target did not grow: %llu", (unsigned long long)t);
	h_check(h_line_u64(line, "ready") > 0, "nothing came from the ready rings: %s", line);
	h_proc_say(client, "check");
	h_proc_expect(client, "ok check", H_REACT_MS, NULL, 0);
}

static void test_shrinks(void **state)
{
	uint64_t deadline = tu_now_ms() + 3 * H_REACT_MS, t;

	while ((t = target_4k()) > INITIAL_4K) {
		h_check(tu_now_ms() < deadline, "the ready target stays at %llu after idling",
			(unsigned long long)t);
		tu_sleep_ms(50);
	}
	assert_int_equal(t, INITIAL_4K);
	/* And it still serves zeroed pages. */
	h_proc_say(client, "fresh 50");
	h_proc_expect(client, "ok fresh", H_REACT_MS, NULL, 0);
}

static void test_small_local(void **state)
{
	struct h_proc *local;
	struct h_mem m;

	if (H_SANITIZED)
		skip();
	setenv("HAK_MODE", "local", 1);
	local = h_client("local", "hold", "--pages", "4", "--pattern", "0x34", NULL);
	unsetenv("HAK_MODE");
	h_proc_expect(local, "held", H_REACT_MS, NULL, 0);
	tu_sleep_ms(SETTLE_MS);
	m = mem_of(local->pid);
	fprintf(stderr, "  local: RSS %llu kB, anonymous %llu kB, pool %llu kB\n",
		(unsigned long long)m.rss / 1024, (unsigned long long)m.anon / 1024,
		(unsigned long long)POOL / 1024);
	h_check(m.anon <= SMALL_MAX_LOCAL, "RssAnon %llu kB > %llu kB",
		(unsigned long long)m.anon / 1024, (unsigned long long)SMALL_MAX_LOCAL / 1024);
	h_proc_say(local, "fresh 2000");
	h_proc_expect(local, "ok fresh", 4 * H_REACT_MS, NULL, 0);
	h_proc_say(local, "exit");
	h_proc_finish(local, H_REACT_MS, NULL, NULL, 0);
}

/* A client killed while its pool grows (its target just went up, the
 * daemon populating and queueing for it): the daemon buries it and goes
 * on, and the other client keeps being served. */
static void test_killed_mid_growth(void **state)
{
	struct h_proc *g = h_client("grower", "hold", "--pages", "4", "--pattern", "0x35", NULL);
	uint64_t deadline = tu_now_ms() + 4 * H_REACT_MS;

	h_proc_expect(g, "held", H_REACT_MS, NULL, 0);
	h_check(h_status_u64("clients") == 2, "the grower is not listed");
	h_proc_say(g, "fresh 100000");
	while (target_of(g->pid) <= INITIAL_4K) {
		h_check(tu_now_ms() < deadline, "the grower's target never grew");
		tu_sleep_ms(1);
	}
	h_proc_kill(g, SIGKILL);
	deadline = tu_now_ms() + H_REACT_MS;
	while (h_status_u64("clients") != 1 || h_status_u64("pool_bytes") != POOL) {
		h_check(tu_now_ms() < deadline,
			"the killed client's pool is still held: %llu bytes",
			(unsigned long long)h_status_u64("pool_bytes"));
		tu_sleep_ms(H_POLL_MS);
	}
	h_daemon_assert_alive();
	h_proc_say(client, "fresh 50");
	h_proc_expect(client, "ok fresh", H_REACT_MS, NULL, 0);
	h_proc_say(client, "check");
	h_proc_expect(client, "ok check", H_REACT_MS, NULL, 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_small_shared, h_test_setup, h_test_teardown),
		cmocka_unit_test_setup_teardown(test_grows, h_test_setup, h_test_teardown),
		cmocka_unit_test_setup_teardown(test_shrinks, h_test_setup, h_test_teardown),
		cmocka_unit_test_setup_teardown(test_killed_mid_growth, h_test_setup,
						h_test_teardown),
		cmocka_unit_test_setup_teardown(test_small_local, h_test_setup, h_test_teardown),
	};
	int r = h_init("elastic", argv[0]);

	if (r)
		return r;
	alarm(TEST_ALARM_S);
	return h_run_tests(tests, group_setup, h_group_teardown);
}
