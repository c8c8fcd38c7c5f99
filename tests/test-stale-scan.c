/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The stale-data scan (DESIGN rules 1 and 2) against a real hakzerod: more
 * than a million handoffs of slots the daemon zeroed, within one client and
 * between clients, every page filled with random words before it goes
 * back.  Every byte of every page handed out as zeroed must read zero;
 * every page handed out dirty (HAK_ALLOC_DIRTY_OK) must hold nothing but
 * words of the same client (each word carries its writer's tag); every
 * page held must keep what its holder wrote.
 *
 *   one client     a zero-only run, then a mixed zeroed/dirty run: slots go
 *                  round through the same pool many times
 *   between        three clients at once, twice over (new processes, new
 *                  pools), half of them mixed: the daemon serves several
 *                  pools at once and never crosses them
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define TEST_ALARM_S 240
#define RUN_MS 120000
#define MILLION 1000000ull
#define CONCURRENT 3
#define GENERATIONS 2

static struct {
	uint64_t handoffs, checked, zeroed, dirty, bytes;
} total;

static void add(const char *ok)
{
	total.handoffs += h_line_u64(ok, "handoffs");
	total.checked += h_line_u64(ok, "checked");
	total.zeroed += h_line_u64(ok, "zeroed");
	total.dirty += h_line_u64(ok, "dirty");
	total.bytes += h_line_u64(ok, "bytes");
}

static struct h_proc *scan(const char *name, const char *count, const char *mode, const char *seed)
{
	struct h_proc *p = h_client(name, "stale", "--count", count, "--mode", mode, "--seed", seed,
				    "--seconds", "100", "--progress", "100000", NULL);

	p->quiet = true;
	return p;
}

static void finish(struct h_proc *p)
{
	char ok[H_LINE];

	h_proc_finish(p, RUN_MS, "ok", ok, sizeof(ok));
	fprintf(stderr, "  [%s] %s\n", p->name, ok);
	add(ok);
	h_proc_release(p);
}

static void test_one_client(void **state)
{
	finish(scan("one-zero", "300000", "zero", "11"));
	finish(scan("one-mixed", "200000", "mixed", "12"));
	h_daemon_assert_alive();
}

static void test_between_clients(void **state)
{
	static const char *const modes[] = {"zero", "mixed"};
	struct h_proc *p[CONCURRENT];
	char name[32], seed[16];

	for (int g = 0; g < GENERATIONS; g++) {
		for (int i = 0; i < CONCURRENT; i++) {
			snprintf(name, sizeof(name), "gen%d-%d", g, i);
			snprintf(seed, sizeof(seed), "%d", 100 + g * CONCURRENT + i);
			p[i] = scan(name, "100000", modes[(g + i) % 2], seed);
		}
		for (int i = 0; i < CONCURRENT; i++)
			finish(p[i]);
	}
	h_daemon_assert_alive();
	h_wait_clients(0, "after the scan");
}

static void test_total(void **state)
{
	fprintf(stderr,
		"stale-data scan: %llu handoffs from ready rings, %llu pages checked "
		"(%llu zeroed, %llu dirty), %llu MiB read, no stale byte\n",
		(unsigned long long)total.handoffs, (unsigned long long)total.checked,
		(unsigned long long)total.zeroed, (unsigned long long)total.dirty,
		(unsigned long long)(total.bytes >> 20));
	assert_true(total.handoffs >= MILLION);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_one_client, h_test_setup, h_test_teardown),
		cmocka_unit_test_setup_teardown(test_between_clients, h_test_setup,
						h_test_teardown),
		cmocka_unit_test(test_total),
	};
	int r = h_init("stale", argv[0]);

	if (r)
		return r;
	alarm(TEST_ALARM_S);
	h_write_conf("pool_size 16M\n"
		     "class 4K 25%%\n"
		     "class 64K 25%%\n"
		     "class 2M 50%%\n"
		     "zero_threads 1\n");
	return h_run_tests(tests, h_group_setup, h_group_teardown);
}
