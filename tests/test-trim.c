/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Trimming against a real hakzerod (DESIGN rule 6), the paths that do not
 * need memory pressure (test-pressure drives that one):
 *
 *   admin_trim  `hakctl trim --client PID` punches every idle zeroed slot
 *               of that client out of its pool: trimmed_bytes grows by
 *               what was idle, the memory leaves both the daemon's and
 *               the client's RSS, the client's held pages are intact and
 *               what it is handed afterwards is zero
 *   idle_trim   trim_idle, switched on by a reload (SIGHUP): idle slots
 *               above what refills need are trimmed by themselves
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define TEST_ALARM_S 120
/* Small watermarks: most returned slots stay idle, so there is much to
 * trim.  No PSI trigger and no idle trimming unless a test turns it on. */
#define CONF                                                                                       \
	"pool_size 16M\n"                                                                          \
	"class 4K 25%%\n"                                                                          \
	"class 64K 25%%\n"                                                                         \
	"class 2M 50%%\n"                                                                          \
	"ready_low 5%%\n"                                                                          \
	"ready_high 10%%\n"                                                                        \
	"zero_threads 1\n"                                                                         \
	"psi_threshold 0\n"
/* Slots of each class the client takes and frees to make them idle. */
#define IDLE_ROUND "idle 600"

static struct h_proc *client;

static int group_setup(void **state)
{
	h_write_conf(CONF "trim_idle 0\n");
	h_daemon_start();
	client = h_client("client", "hold", "--pages", "6", "--pattern", "0x31", NULL);
	h_proc_expect(client, "held", H_REACT_MS, NULL, 0);
	return 0;
}

/* Once every slot the client gave back is taken and zeroed: its idle
 * bytes (its line in json). */
static uint64_t wait_settled(char *json, size_t size)
{
	h_client_settled(client->pid, json, size);
	return h_client_class_bytes(json, "idle");
}

static void make_idle(void)
{
	h_proc_say(client, IDLE_ROUND);
	h_proc_expect(client, "ok idle", H_REACT_MS, NULL, 0);
}

/* Held pages intact, new ones zero. */
static void client_ok(void)
{
	h_proc_say(client, "check");
	h_proc_expect(client, "ok check", H_REACT_MS, NULL, 0);
	h_proc_say(client, "fresh 50");
	h_proc_expect(client, "ok fresh", H_REACT_MS, NULL, 0);
}

static uint64_t shmem(pid_t pid)
{
	struct h_mem m;

	h_check(h_pid_mem(pid, &m), "no /proc numbers for %d", (int)pid);
	return m.shmem;
}

/* RSS counters are per-CPU and folded lazily: what /proc shows may lag
 * the punch a little. */
static void wait_shrunk(const char *who, pid_t pid, uint64_t before, uint64_t by)
{
	uint64_t deadline = tu_now_ms() + H_REACT_MS;

	while (shmem(pid) + by > before) {
		h_check(tu_now_ms() < deadline,
			"%s: RssShmem %llu kB, %llu kB before a trim of "
			"%llu kB or more",
			who, (unsigned long long)shmem(pid) / 1024,
			(unsigned long long)before / 1024, (unsigned long long)by / 1024);
		tu_sleep_ms(H_POLL_MS);
	}
}

static void test_admin_trim(void **state)
{
	char json[H_JSON], out[H_JSON], pid[16];
	uint64_t idle, t0 = h_stats_u64("trimmed_bytes"), a0 = h_stats_u64("trims_admin");
	uint64_t dshm, cshm, unbacked;

	make_idle();
	idle = wait_settled(json, sizeof(json));
	h_check(idle > 0, "nothing idle to trim: %s", json);
	unbacked = h_client_class_sum(json, "unbacked");
	dshm = shmem(h_daemon_pid());
	cshm = shmem(client->pid);
	snprintf(pid, sizeof(pid), "%d", (int)client->pid);
	assert_int_equal(h_hakctl(out, sizeof(out), "trim", "--client", pid, NULL), 0);
	assert_int_equal(h_json_u64(out, "clients"), 1);
	assert_int_equal(h_json_u64(out, "trimmed_bytes"), idle);
	h_wait_stat("trimmed_bytes", t0 + idle, H_REACT_MS);
	assert_int_equal(h_stats_u64("trims_admin"), a0 + 1);
	wait_settled(json, sizeof(json));
	assert_int_equal(h_client_class_sum(json, "idle"), 0);
	h_check(h_client_class_sum(json, "unbacked") > unbacked, "nothing became unbacked");
	/* The pages left the memfd: out of both mappings. */
	wait_shrunk("the daemon", h_daemon_pid(), dshm, idle / 2);
	wait_shrunk("the client", client->pid, cshm, idle / 2);
	fprintf(stderr,
		"  trimmed %llu kB; RssShmem daemon %llu -> %llu kB, client %llu -> %llu kB\n",
		(unsigned long long)idle / 1024, (unsigned long long)dshm / 1024,
		(unsigned long long)shmem(h_daemon_pid()) / 1024, (unsigned long long)cshm / 1024,
		(unsigned long long)shmem(client->pid) / 1024);
	client_ok();
	/* All clients, and a client that is not there. */
	assert_int_equal(h_hakctl(out, sizeof(out), "trim", NULL), 0);
	assert_int_equal(h_json_u64(out, "clients"), 1);
	assert_int_equal(h_hakctl(out, sizeof(out), "trim", "--client", "999999999", NULL), 1);
}

static void reload(void)
{
	unsigned n = h_log_count("configuration reloaded");

	kill(h_daemon_pid(), SIGHUP);
	h_log_wait("configuration reloaded", n + 1, H_REACT_MS);
}

static void test_idle_trim(void **state)
{
	char json[H_JSON];
	uint64_t t0 = h_stats_u64("trimmed_bytes"), i0 = h_stats_u64("trims_idle");
	uint64_t deadline;

	h_write_conf(CONF "trim_idle 300ms\n");
	reload();
	make_idle();
	deadline = tu_now_ms() + 2 * H_REACT_MS;
	for (;;) {
		h_check(h_client_json(client->pid, json, sizeof(json)), "client not listed");
		if (h_stats_u64("trims_idle") > i0 && h_client_class_sum(json, "idle") == 0)
			break;
		h_check(tu_now_ms() < deadline, "no idle trim in %d ms: %s", 2 * H_REACT_MS, json);
		tu_sleep_ms(50);
	}
	/* trimmed_bytes counts a punch when io_uring completes it, after the
	 * slots left the idle list and trims_idle was counted. */
	h_wait_stat("trimmed_bytes", t0 + 1, H_REACT_MS);
	client_ok();
	h_write_conf(CONF "trim_idle 0\n");
	reload();
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_admin_trim, h_test_setup, h_test_teardown),
		cmocka_unit_test_setup_teardown(test_idle_trim, h_test_setup, h_test_teardown),
	};
	int r = h_init("trim", argv[0]);

	if (r)
		return r;
	alarm(TEST_ALARM_S);
	return h_run_tests(tests, group_setup, h_group_teardown);
}
