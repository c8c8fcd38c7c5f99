/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libhakclient's local mode, its mode switch and the 0.2 interfaces
 * (hak_client_set_mode, $HAK_MODE, HAK_ALLOC_POOL_ONLY, hak_slot_of), through
 * the public API: the pool without a daemon, zeroes (DESIGN rule 1), many
 * threads, fork() (the child keeps its copy-on-write pool), and auto mode
 * moving to a real hakzerod when it appears and back when it goes away.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hak_size.h"
#include "hakclient.h"
#include "test-client.h"
#include "harness.h"

#define WAIT_MS 8000 /* the monitor retries every 2 s at most */
#define NTHREADS 4
#define ITERS 20000
#define HOLD 6
/* test_local_threads: at most 1 allocation in this many from mmap. */
#define MMAP_SHARE_MAX 100

/* Whether the harness found hakzerod ($HAKZEROD, set by make check). */
static bool have_daemon;

static const size_t sizes[] = {4 * KIB, 64 * KIB, 2 * MIB, 2 * MIB + 4 * KIB};

static struct hak_client *client(int mode, const char *sock)
{
	struct hak_client *c;

	assert_int_equal(hak_client_new(&c), 0);
	assert_int_equal(hak_client_set_mode(c, mode), 0);
	if (sock)
		assert_int_equal(hak_client_set_socket(c, sock), 0);
	return c;
}

/* Waits until the stats say local (1) or shared (0). */
static bool wait_local(struct hak_client *c, uint64_t want)
{
	for (unsigned t = 0; t < WAIT_MS; t += 10) {
		if (stats(c).local == want && stats(c).connected == !want)
			return true;
		sleep_ms(10);
	}
	return false;
}

/* ---- modes and arguments ---- */

static void test_set_mode(void **state)
{
	struct hak_client *c;

	assert_int_equal(hak_client_set_mode(NULL, HAK_MODE_LOCAL), -EINVAL);
	assert_int_equal(hak_client_new(&c), 0);
	assert_int_equal(hak_client_set_mode(c, 3), -EINVAL);
	assert_int_equal(hak_client_set_mode(c, -1), -EINVAL);
	assert_int_equal(hak_client_set_mode(c, HAK_MODE_LOCAL), 0);
	assert_int_equal(hak_client_connect(c), 0);
	/* Fixed once connected. */
	assert_int_equal(hak_client_set_mode(c, HAK_MODE_SHARED), -EBUSY);
	assert_null(hak_client_unref(c));
}

static void test_env(void **state)
{
	struct hak_client *c;

	setenv("HAK_MODE", "LOCAL", 1);
	assert_int_equal(hak_client_new(&c), 0);
	unsetenv("HAK_MODE");
	assert_int_equal(hak_client_connect(c), 0);
	assert_int_equal(stats(c).local, 1);
	assert_null(hak_client_unref(c));
	/* Anything else: shared, as in 0.1. */
	setenv("HAK_MODE", "bogus", 1);
	assert_int_equal(hak_client_new(&c), 0);
	unsetenv("HAK_MODE");
	assert_int_equal(hak_client_set_socket(c, "/nonexistent/hak.sock"), 0);
	assert_int_equal(hak_client_connect(c), -ENOENT);
	assert_int_equal(stats(c).local, 0);
	assert_null(hak_client_unref(c));
}

static void test_pool_only_and_slot_of(void **state)
{
	struct hak_client *c = client(HAK_MODE_SHARED, "/nonexistent/hak.sock");
	void *p, *base;
	size_t size;
	int x;

	/* No pool: POOL_ONLY never maps. */
	assert_int_equal(hak_alloc(c, 4096, HAK_ALLOC_POOL_ONLY, &p), -EAGAIN);
	assert_int_equal(stats(c).alloc_mmap, 0);
	assert_int_equal(hak_slot_of(c, &x, &base, &size), -ENOENT);
	assert_int_equal(hak_slot_of(NULL, &x, &base, &size), -EINVAL);
	assert_int_equal(hak_slot_of(c, &x, NULL, &size), -EINVAL);
	assert_null(hak_client_unref(c));

	c = client(HAK_MODE_LOCAL, NULL);
	assert_int_equal(hak_client_connect(c), 0);
	assert_int_equal(hak_alloc(c, 4 * MIB, HAK_ALLOC_POOL_ONLY, &p), -E2BIG);
	assert_int_equal(hak_alloc(c, 70 * KIB, HAK_ALLOC_POOL_ONLY, &p), HAK_ALLOC_ZEROED);
	/* Any address inside the slot finds its start and class. */
	assert_int_equal(hak_slot_of(c, (char *)p + 69 * KIB, &base, &size), 0);
	assert_ptr_equal(base, p);
	assert_int_equal(size, 2 * MIB);
	assert_int_equal(hak_free(c, p, 70 * KIB), 0);
	assert_null(hak_client_unref(c));
}

/* ---- local mode ---- */

static void test_local_zeroes(void **state)
{
	struct hak_client *c = client(HAK_MODE_LOCAL, NULL);
	struct hak_client_stats st;
	size_t cs;
	void *p;

	assert_int_equal(hak_client_connect(c), 0);
	assert_int_equal(hak_client_is_connected(c), 0); /* no daemon */
	st = stats(c);
	assert_int_equal(st.local, 1);
	assert_int_equal(st.local_pools, 1);
	assert_true(st.pool_bytes > 60 * MIB); /* 64 MiB in whole slots */
	assert_int_equal(hak_client_class_size(c, 2 * MIB + 1, &cs), 0);
	assert_int_equal(cs, 2 * MIB + 4 * KIB);
	/* Dirty every class many times over: each zeroed hand-out reads as
	 * zero, whoever zeroed it (the monitor, or this thread inline). */
	for (int round = 0; round < 200; round++) {
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			int r = hak_alloc(c, sizes[i], 0, &p);

			assert_int_equal(r, HAK_ALLOC_ZEROED);
			assert_true(all_zero(p, sizes[i]));
			memset(p, 0xa5, sizes[i]);
			assert_int_equal(hak_free(c, p, sizes[i]), 0);
		}
	}
	st = stats(c);
	assert_int_equal(st.alloc_mmap, 0);
	assert_true(st.alloc_ready > 0);
	assert_true(st.local_zeroed > 0); /* the background did part of it */
	assert_true(st.returned > 0);
	assert_null(hak_client_unref(c));
}

static void test_local_dirty_ok(void **state)
{
	struct hak_client *c = client(HAK_MODE_LOCAL, NULL);
	void *p, *q;

	assert_int_equal(hak_client_connect(c), 0);
	assert_int_equal(hak_alloc(c, 64 * KIB, 0, &p), HAK_ALLOC_ZEROED);
	memset(p, 1, 64 * KIB);
	assert_int_equal(hak_free(c, p, 64 * KIB), 0);
	/* Lazy zeroing: our own freed slot, as it is. */
	assert_int_equal(hak_alloc(c, 64 * KIB, HAK_ALLOC_DIRTY_OK, &q), 0);
	assert_ptr_equal(q, p);
	assert_int_equal(stats(c).alloc_dirty, 1);
	assert_int_equal(hak_free(c, q, 64 * KIB), 0);
	assert_null(hak_client_unref(c));
}

struct worker {
	struct hak_client *c;
	uint64_t id, errors, nonzero, doubles;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t *held[HOLD] = {0};

	for (int i = 0; i < ITERS; i++) {
		int k = i % HOLD, r;

		if (held[k]) {
			if (held[k][0] != w->id)
				w->doubles++;
			w->errors += hak_free(w->c, held[k], 4096) != 0;
		}
		r = hak_alloc(w->c, 4096, (i & 1) ? HAK_ALLOC_DIRTY_OK : 0, (void **)&held[k]);
		if (r < 0) {
			w->errors++;
			held[k] = NULL;
			continue;
		}
		if (r == HAK_ALLOC_ZEROED && (held[k][0] || held[k][511]))
			w->nonzero++;
		held[k][0] = w->id;
		held[k][511] = w->id;
	}
	for (int k = 0; k < HOLD; k++)
		if (held[k])
			hak_free(w->c, held[k], 4096);
	return NULL;
}

static void test_local_threads(void **state)
{
	struct hak_client *c = client(HAK_MODE_LOCAL, NULL);
	struct worker w[NTHREADS];
	pthread_t th[NTHREADS];
	struct hak_client_stats st;

	assert_int_equal(hak_client_connect(c), 0);
	for (int i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){.c = c, .id = (uint64_t)i + 1};
		assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].errors, 0);
		assert_int_equal(w[i].nonzero, 0);
		assert_int_equal(w[i].doubles, 0);
	}
	st = stats(c);
	/* The pool served them: a ready ring starts at its elastic target
	 * and grows as it is drained, so a thread that finds it empty before
	 * the monitor (at low priority) refilled it, with no slot of its own
	 * to zero, falls back to mmap; on a loaded machine a few dozen do. */
	if (st.alloc_mmap > 0)
		print_message("%llu of %d allocations fell back to mmap\n",
			      (unsigned long long)st.alloc_mmap, NTHREADS * ITERS);
	assert_true(st.alloc_mmap <= (uint64_t)NTHREADS * ITERS / MMAP_SHARE_MAX);
	assert_int_equal(st.free_pool + st.free_mmap, (uint64_t)NTHREADS * ITERS);
	assert_int_equal(st.free_mmap, st.alloc_mmap);
	assert_null(hak_client_unref(c));
}

/* ---- fork: the child keeps its copy-on-write pool ---- */

static int child_checks(struct hak_client *c, unsigned char *p)
{
	void *q;

	if (p[0] != 0x5a || p[4095] != 0x5a)
		return 10; /* inherited contents */
	p[0] = 0x77;	   /* copy-on-write: the parent must not see it */
	if (stats(c).local != 1)
		return 11;
	if (hak_free(c, p, 4096) != 0)
		return 12;
	/* Enough traffic to need the background (restarted in the child). */
	for (int i = 0; i < 3000; i++) {
		if (hak_alloc(c, 64 * KIB, 0, &q) != HAK_ALLOC_ZEROED || !all_zero(q, 64 * KIB))
			return 13;
		memset(q, 3, 64 * KIB);
		if (hak_free(c, q, 64 * KIB) != 0)
			return 14;
	}
	if (stats(c).alloc_mmap != 0)
		return 15;
	return 0;
}

static void test_local_fork(void **state)
{
	struct hak_client *c = client(HAK_MODE_LOCAL, NULL);
	unsigned char *p;
	int status;
	pid_t pid;

	assert_int_equal(hak_client_connect(c), 0);
	assert_int_equal(hak_alloc(c, 4096, 0, (void **)&p), HAK_ALLOC_ZEROED);
	memset(p, 0x5a, 4096);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int rc = child_checks(c, p);

		hak_client_unref(c);
		_exit(rc);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(p[0], 0x5a);
	assert_int_equal(hak_free(c, p, 4096), 0);
	assert_null(hak_client_unref(c));
}

/* ---- auto: a daemon appears, then goes away ---- */

static void test_auto_switch(void **state)
{
	struct hak_client *c;
	void *p1, *p2, *p3;

	if (!have_daemon) {
		print_message("skip: $HAKZEROD is not set (make check sets it)\n");
		skip();
	}
	c = client(HAK_MODE_AUTO, h_env.sock);
	/* No daemon: a local pool, and connect says the handle works. */
	assert_int_equal(hak_client_connect(c), 0);
	assert_int_equal(stats(c).local, 1);
	assert_int_equal(hak_alloc(c, 64 * KIB, 0, &p1), HAK_ALLOC_ZEROED);
	memset(p1, 1, 64 * KIB);
	/* The daemon appears: new allocations come from its pool. */
	h_daemon_start();
	assert_true(wait_local(c, 0));
	assert_int_equal(hak_client_is_connected(c), 1);
	assert_int_equal(hak_alloc(c, 64 * KIB, 0, &p2), HAK_ALLOC_ZEROED);
	assert_true(all_zero(p2, 64 * KIB));
	memset(p2, 2, 64 * KIB);
	/* The old local slot still works and is freed where it came from. */
	assert_int_equal(((unsigned char *)p1)[100], 1);
	assert_int_equal(hak_free(c, p1, 64 * KIB), 0);
	/* The daemon goes away: back to a fresh local pool at once. */
	h_daemon_stop();
	assert_true(wait_local(c, 1));
	assert_int_equal(((unsigned char *)p2)[100], 2); /* the memfd lives while mapped */
	assert_int_equal(hak_free(c, p2, 64 * KIB), 0);
	assert_int_equal(hak_alloc(c, 64 * KIB, 0, &p3), HAK_ALLOC_ZEROED);
	assert_true(all_zero(p3, 64 * KIB));
	assert_int_equal(hak_free(c, p3, 64 * KIB), 0);
	assert_int_equal(stats(c).local_pools, 2);
	assert_int_equal(stats(c).alloc_mmap, 0);
	assert_null(hak_client_unref(c));
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_mode),
		cmocka_unit_test(test_env),
		cmocka_unit_test(test_pool_only_and_slot_of),
		cmocka_unit_test(test_local_zeroes),
		cmocka_unit_test(test_local_dirty_ok),
		cmocka_unit_test(test_local_threads),
		cmocka_unit_test(test_local_fork),
		cmocka_unit_test_setup_teardown(test_auto_switch, h_test_setup, h_test_teardown),
	};
	/* Without hakzerod only the test that needs it is skipped. */
	int r = h_init_need("client-local", argv[0], 0);

	if (r != 0 && r != H_EXIT_SKIP)
		return r;
	have_daemon = r == 0;
	if (have_daemon)
		h_write_conf("# hakzerod's defaults\n");
	return h_run_tests(tests, NULL, NULL);
}
