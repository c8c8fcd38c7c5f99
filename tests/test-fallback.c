/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libhakclient's mmap fallbacks, through the public API: hak_free unmaps a
 * fallback only whole, at the size it was allocated with, and refuses
 * anything else with EINVAL and leaves every mapping as it was (a 3 MiB
 * fallback freed as 4 MiB used to unmap whatever came next); hak_alloc
 * refuses flag bits it does not know.  Also across fork(), many threads,
 * and fallbacks made in one mode (no pool, local, a real hakzerod's pool)
 * and freed in another.
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
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hak_size.h"
#include "hakclient.h"
#include "harness.h"

#define PAGE (4 * KIB)
/* Larger than the largest default class (2 MiB + 4 KiB): always a fallback,
 * whatever pool the handle has. */
#define BIG (3 * MIB)
#define NEIGHBOUR MIB
#define NEIGHBOUR_TRIES 16
#define FILL 0x5a
#define WAIT_MS 8000
#define NTHREADS 4
#define ROUNDS 40
/* Fallbacks each thread holds at once: together more than the table's
 * first size, so it grows while the others use it. */
#define HOLD 100

static const char *no_daemon = "/nonexistent/hakzerod-test.sock";

static void nap_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

static struct hak_client_stats stats(struct hak_client *c)
{
	struct hak_client_stats st;

	assert_int_equal(hak_client_get_stats(c, &st, sizeof(st)), 0);
	return st;
}

/* A handle with no pool: every allocation is a fallback. */
static struct hak_client *client_without_pool(void)
{
	struct hak_client *c;

	assert_int_equal(hak_client_new(&c), 0);
	assert_int_equal(hak_client_set_mode(c, HAK_MODE_SHARED), 0);
	assert_int_equal(hak_client_set_socket(c, no_daemon), 0);
	return c;
}

/* Whether any page of [p, p + len) is mapped: mincore fails with ENOMEM
 * on a range with an unmapped page. */
static bool mapped(const void *p, size_t len)
{
	unsigned char vec[(4 * MIB) / PAGE];

	assert_true(len <= sizeof(vec) * PAGE);
	return mincore((void *)p, len, vec) == 0;
}

static bool filled(const void *p, size_t n, unsigned char byte)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i] != byte)
			return false;
	return true;
}

static void *fallback(struct hak_client *c, size_t size)
{
	void *p = NULL;

	assert_int_equal(hak_alloc(c, size, 0, &p), HAK_ALLOC_ZEROED);
	assert_non_null(p);
	return p;
}

/* ---- flags ---- */

static void test_unknown_flags(void **state)
{
	struct hak_client *c = client_without_pool();
	const unsigned bad[] = {1u << 2, 0x80, 1u << 31, ~0u};
	void *p = &p;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(hak_alloc(c, PAGE, bad[i], &p), -EINVAL);
		assert_ptr_equal(p, &p); /* untouched */
		/* A known flag with an unknown one: refused too. */
		assert_int_equal(hak_alloc(c, PAGE, HAK_ALLOC_DIRTY_OK | bad[i], &p), -EINVAL);
	}
	assert_int_equal(stats(c).alloc_mmap, 0);
	/* The known ones still work. */
	assert_true(hak_alloc(c, PAGE, HAK_ALLOC_DIRTY_OK, &p) >= 0);
	assert_int_equal(hak_free(c, p, PAGE), 0);
	assert_int_equal(hak_alloc(c, PAGE, HAK_ALLOC_POOL_ONLY, &p), -EAGAIN);
	assert_null(hak_client_unref(c));
}

/* ---- size ---- */

/* A BIG fallback with a mapping of ours right after it, filled with FILL:
 * what a free of the wrong size would hit.  mmap places mappings top-down,
 * so a hole left just below the neighbour is usually where the fallback
 * lands; when it is not, the next try is made with the misses still held. */
static void *fallback_with_neighbour(struct hak_client *c, void **neighbour)
{
	void *miss[NEIGHBOUR_TRIES];
	void *p = NULL;
	int n;

	for (n = 0; n < NEIGHBOUR_TRIES; n++) {
		char *r = mmap(NULL, BIG + NEIGHBOUR, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		assert_true(r != MAP_FAILED);
		assert_int_equal(munmap(r, BIG), 0);
		p = fallback(c, BIG);
		if (p == r) {
			*neighbour = r + BIG;
			break;
		}
		munmap(r + BIG, NEIGHBOUR);
		miss[n] = p;
		p = NULL;
	}
	for (int i = 0; i < n; i++)
		assert_int_equal(hak_free(c, miss[i], BIG), 0);
	assert_non_null(p);
	memset(*neighbour, FILL, NEIGHBOUR);
	return p;
}

static void test_wrong_size(void **state)
{
	struct hak_client *c = client_without_pool();
	void *nb = NULL;
	char *p = fallback_with_neighbour(c, &nb);

	(void)state;
	memset(p, 1, BIG);
	/* Larger: would unmap the neighbour.  Smaller: would leave a tail
	 * the table no longer knows. */
	assert_int_equal(hak_free(c, p, BIG + NEIGHBOUR), -EINVAL);
	assert_int_equal(hak_free(c, p, BIG + 1), -EINVAL);
	assert_int_equal(hak_free(c, p, BIG - PAGE), -EINVAL);
	assert_int_equal(hak_free(c, p, PAGE), -EINVAL);
	/* Inside it, not its start. */
	assert_int_equal(hak_free(c, p + PAGE, BIG - PAGE), -EINVAL);
	assert_true(mapped(nb, NEIGHBOUR));
	assert_true(filled(nb, NEIGHBOUR, FILL));
	assert_true(mapped(p, BIG));
	assert_true(filled(p, BIG, 1));
	assert_int_equal(stats(c).free_mmap, 0);
	/* The right size, rounded up to a page as at allocation. */
	assert_int_equal(hak_free(c, p, BIG - 100), 0);
	assert_false(mapped(p, PAGE));
	assert_false(mapped(p + BIG - PAGE, PAGE));
	assert_true(filled(nb, NEIGHBOUR, FILL));
	assert_int_equal(stats(c).free_mmap, 1);
	/* Gone from the table: a second free is refused. */
	assert_int_equal(hak_free(c, p, BIG - 100), -EINVAL);
	assert_int_equal(stats(c).free_mmap, 1);
	assert_int_equal(munmap(nb, NEIGHBOUR), 0);
	assert_null(hak_client_unref(c));
}

/* A mapping hak_alloc did not make, or made for another handle, is not
 * unmapped. */
static void test_not_ours(void **state)
{
	struct hak_client *c = client_without_pool(), *other = client_without_pool();
	char *mine =
		mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	void *p;

	(void)state;
	assert_true(mine != MAP_FAILED);
	memset(mine, FILL, 2 * PAGE);
	assert_int_equal(hak_free(c, mine, 2 * PAGE), -EINVAL);
	assert_int_equal(hak_free(c, mine + 1, PAGE), -EINVAL);
	assert_true(filled(mine, 2 * PAGE, FILL));
	p = fallback(other, 2 * PAGE);
	assert_int_equal(hak_free(c, p, 2 * PAGE), -EINVAL);
	assert_true(mapped(p, 2 * PAGE));
	assert_int_equal(hak_free(other, p, 2 * PAGE), 0);
	assert_int_equal(munmap(mine, 2 * PAGE), 0);
	assert_null(hak_client_unref(other));
	assert_null(hak_client_unref(c));
}

/* ---- fork: the child inherits the fallbacks and their record ---- */

static void test_fork(void **state)
{
	struct hak_client *c = client_without_pool();
	char *p = fallback(c, BIG), *q = fallback(c, 2 * PAGE);
	pid_t pid;
	int status;

	(void)state;
	memset(p, FILL, BIG);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* No cmocka here: the exit status says which check failed. */
		if (hak_free(c, p, BIG + NEIGHBOUR) != -EINVAL)
			_exit(2);
		if (!filled(p, BIG, FILL))
			_exit(3);
		if (hak_free(c, p, BIG) != 0 || mapped(p, PAGE))
			_exit(4);
		/* A fallback the child makes is its own. */
		if (hak_alloc(c, BIG, 0, (void **)&p) < 0 || hak_free(c, p, BIG) != 0)
			_exit(5);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* The parent's copy is untouched and still recorded. */
	assert_true(filled(p, BIG, FILL));
	assert_int_equal(hak_free(c, p, BIG + NEIGHBOUR), -EINVAL);
	assert_int_equal(hak_free(c, p, BIG), 0);
	assert_int_equal(hak_free(c, q, 2 * PAGE), 0);
	assert_null(hak_client_unref(c));
}

/* ---- threads ---- */

struct worker {
	pthread_t thread;
	struct hak_client *c;
	unsigned id;
	int failed; /* the first check that failed, 0 if none */
};

static size_t size_of(unsigned id, unsigned i)
{
	return (size_t)(1 + (id + i) % 4) * PAGE;
}

static int hold_and_free(struct worker *w, void **held)
{
	for (unsigned i = 0; i < HOLD; i++) {
		if (hak_alloc(w->c, size_of(w->id, i), 0, &held[i]) != HAK_ALLOC_ZEROED)
			return 1;
		*(unsigned *)held[i] = w->id;
	}
	for (unsigned i = 0; i < HOLD; i++) {
		size_t size = size_of(w->id, i);

		if (hak_free(w->c, held[i], size + PAGE) != -EINVAL)
			return 2;
		if (*(unsigned *)held[i] != w->id)
			return 3;
		/* No second free here: another thread may already have been
		 * given the same address (test_wrong_size checks that one). */
		if (hak_free(w->c, held[i], size) != 0)
			return 4;
	}
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	void *held[HOLD];

	for (unsigned r = 0; r < ROUNDS && !w->failed; r++)
		w->failed = hold_and_free(w, held);
	return NULL;
}

static void test_threads(void **state)
{
	struct hak_client *c = client_without_pool();
	struct worker w[NTHREADS];
	struct hak_client_stats st;

	(void)state;
	for (unsigned i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){.c = c, .id = i};
		assert_int_equal(pthread_create(&w[i].thread, NULL, worker_main, &w[i]), 0);
	}
	for (unsigned i = 0; i < NTHREADS; i++) {
		assert_int_equal(pthread_join(w[i].thread, NULL), 0);
		if (w[i].failed)
			print_message("thread %u: check %d failed\n", i, w[i].failed);
		assert_int_equal(w[i].failed, 0);
	}
	st = stats(c);
	assert_int_equal(st.alloc_mmap, (uint64_t)NTHREADS * ROUNDS * HOLD);
	assert_int_equal(st.free_mmap, st.alloc_mmap);
	assert_null(hak_client_unref(c));
}

/* ---- modes: made with one pool (or none), freed with another ---- */

static bool wait_local(struct hak_client *c, uint64_t want)
{
	for (unsigned t = 0; t < WAIT_MS; t += 10) {
		struct hak_client_stats st = stats(c);

		if (st.local == want && st.connected == !want)
			return true;
		nap_ms(10);
	}
	return false;
}

static void free_checked(struct hak_client *c, void *p, size_t size)
{
	assert_int_equal(hak_free(c, p, size + NEIGHBOUR), -EINVAL);
	assert_true(filled(p, size, FILL));
	assert_int_equal(hak_free(c, p, size), 0);
}

/* Whether h_init found hakzerod (make check runs the test with it). */
static bool have_daemon;

static void test_across_modes(void **state)
{
	struct hak_client *c;
	void *none, *local, *shared;

	(void)state;
	if (!have_daemon) {
		print_message("skip: $HAKZEROD is not set (make check sets it)\n");
		skip();
	}
	assert_int_equal(hak_client_new(&c), 0);
	assert_int_equal(hak_client_set_mode(c, HAK_MODE_AUTO), 0);
	assert_int_equal(hak_client_set_socket(c, h_env.sock), 0);
	/* Before connecting: no pool at all. */
	none = fallback(c, BIG);
	memset(none, FILL, BIG);
	/* No daemon: a local pool. */
	assert_int_equal(hak_client_connect(c), 0);
	assert_true(wait_local(c, 1));
	local = fallback(c, BIG);
	memset(local, FILL, BIG);
	/* The daemon's pool. */
	h_daemon_start();
	assert_true(wait_local(c, 0));
	shared = fallback(c, BIG);
	memset(shared, FILL, BIG);
	free_checked(c, none, BIG);
	/* The daemon dies: a local pool again. */
	h_daemon_stop();
	assert_true(wait_local(c, 1));
	free_checked(c, shared, BIG);
	free_checked(c, local, BIG);
	assert_int_equal(stats(c).free_mmap, 3);
	assert_null(hak_client_unref(c));
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unknown_flags),
		cmocka_unit_test(test_wrong_size),
		cmocka_unit_test(test_not_ours),
		cmocka_unit_test(test_fork),
		cmocka_unit_test(test_threads),
		cmocka_unit_test_setup_teardown(test_across_modes, h_test_setup, h_test_teardown),
	};

	(void)argc;
	/* Only test_across_modes runs a daemon; the rest runs without one. */
	have_daemon = h_init_need("fallback", argv[0], 0) == 0;
	if (have_daemon)
		h_write_conf("%s", "");
	return h_run_tests(tests, NULL, NULL);
}
