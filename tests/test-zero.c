/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests of the zeroing methods, their measurement and the workers
 * (daemon/zero.c, daemon/zero-workers.c). */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "zero.h"

#define GUARD 0xa5
#define GUARD_LEN 64
#define MAX_LEN (256 * 1024)
#define PAGE 4096
#define POLL_TIMEOUT_MS 10000

static const size_t lengths[] = {
	0,   1,	  7,   15,  16,	  17,	31,   32,	 33,	    63,	       64,     65,
	127, 128, 129, 255, 4095, 4096, 4097, 8192 + 13, 65536 - 1, 65536 + 7, 200000,
};

/* Zeroes [off, off + len) of a guarded buffer with m and checks that
 * exactly that range changed. */
static void check_one(enum zero_method m, unsigned char *buf, size_t off, size_t len)
{
	size_t total = GUARD_LEN + off + len + GUARD_LEN;

	memset(buf, GUARD, total);
	assert_int_equal(zero_range(m, buf + GUARD_LEN + off, len), 0);
	for (size_t i = 0; i < total; i++) {
		int inside = i >= GUARD_LEN + off && i < GUARD_LEN + off + len;
		unsigned want = inside ? 0 : GUARD;

		if (buf[i] != want)
			fail_msg("%s off %zu len %zu: byte %zu is %#x, want %#x",
				 zero_method_name(m), off, len, i, buf[i], want);
	}
}

static void test_exact_range(void **state)
{
	unsigned char *buf = aligned_alloc(PAGE, MAX_LEN + 2 * PAGE);
	unsigned methods = 0;

	assert_non_null(buf);
	for (int m = ZERO_AUTO + 1; m < ZERO_METHOD_NR; m++) {
		if (!zero_method_supported(m))
			continue;
		methods++;
		/* Every alignment the vector paths care about. */
		for (size_t off = 0; off < 64; off++)
			for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++)
				check_one(m, buf, off, lengths[i]);
	}
	assert_true(methods >= 1);
	free(buf);
}

static void test_page_aligned_slots(void **state)
{
	size_t len = 16 * PAGE;
	unsigned char *buf = mmap(NULL, len + 2 * PAGE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(buf != MAP_FAILED);
	for (int m = ZERO_AUTO + 1; m < ZERO_METHOD_NR; m++) {
		if (!zero_method_supported(m))
			continue;
		memset(buf, GUARD, len + 2 * PAGE);
		assert_int_equal(zero_range(m, buf + PAGE, len), 0);
		for (size_t i = 0; i < len + 2 * PAGE; i++)
			assert_int_equal(buf[i], i >= PAGE && i < PAGE + len ? 0 : GUARD);
	}
	munmap(buf, len + 2 * PAGE);
}

static void test_unsupported(void **state)
{
	char c = 1;

	assert_int_equal(zero_range(ZERO_AUTO, &c, 1), -EOPNOTSUPP);
	assert_int_equal(zero_range(ZERO_METHOD_NR, &c, 1), -EOPNOTSUPP);
	assert_int_equal(c, 1);
	assert_true(zero_method_supported(ZERO_MEMSET));
	assert_false(zero_method_supported(ZERO_AUTO));
}

static void test_names(void **state)
{
	for (int m = 0; m < ZERO_METHOD_NR; m++)
		assert_int_equal(zero_method_parse(zero_method_name(m)), m);
	assert_int_equal(zero_method_parse("rep-stosb"), ZERO_REP_STOSB);
	assert_int_equal(zero_method_parse("nt"), ZERO_NT);
	assert_int_equal(zero_method_parse("fast"), -EINVAL);
}

static void test_measure(void **state)
{
	double gbps[ZERO_METHOD_NR];
	enum zero_method best;

	assert_int_equal(zero_measure(gbps), 0);
	assert_true(gbps[ZERO_AUTO] == 0.0);
	for (int m = ZERO_AUTO + 1; m < ZERO_METHOD_NR; m++) {
		if (zero_method_supported(m))
			assert_true(gbps[m] > 0.0);
		else
			assert_true(gbps[m] == 0.0);
	}
	best = zero_fastest(gbps);
	assert_true(zero_method_supported(best));
	for (int m = ZERO_AUTO + 1; m < ZERO_METHOD_NR; m++)
		assert_true(gbps[best] >= gbps[m]);
}

/* Waits for the completion eventfd and takes the done list. */
static struct zero_job *wait_done(void)
{
	struct pollfd p = {.fd = zero_fd(), .events = POLLIN};

	assert_int_equal(poll(&p, 1, POLL_TIMEOUT_MS), 1);
	return zero_take_done();
}

static void test_workers(void **state)
{
	size_t slot = 2 * PAGE;
	unsigned char *pool =
		mmap(NULL, 8 * slot, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct zero_job job = {.base = (char *)pool, .slot_size = slot, .n = 3, .slot = {1, 4, 6}};
	struct zero_stats st;

	assert_true(pool != MAP_FAILED);
	memset(pool, GUARD, 8 * slot);
	assert_int_equal(zero_init(2, ZERO_MEMSET, 10), 0);
	assert_int_equal(zero_current_method(), ZERO_MEMSET);
	assert_true(zero_current_gbps() > 0.0);
	zero_submit(&job);
	assert_ptr_equal(wait_done(), &job);
	assert_int_equal(job.error, 0);
	for (size_t i = 0; i < 8 * slot; i++) {
		size_t s = i / slot;
		int zeroed = s == 1 || s == 4 || s == 6;

		assert_int_equal(pool[i], zeroed ? 0 : GUARD);
	}
	zero_get_stats(&st);
	assert_int_equal(st.jobs, 1);
	assert_int_equal(st.pages, 3 * slot / PAGE);
	zero_stop();
	zero_fini();
	munmap(pool, 8 * slot);
}

/* A pool page that would fault (SIGBUS: here, past the end of a shrunk
 * memfd) never kills the daemon: the worker sees it is not in the page
 * cache and punches instead of writing it, or, if it is written after all
 * (a race with mincore), the fault fails the job.  The worker goes on. */
static void test_worker_survives_sigbus(void **state)
{
	int fd = memfd_create("test-zero", MFD_CLOEXEC);
	char *map;
	struct zero_job job = {.slot_size = PAGE, .n = 2, .slot = {0, 1}};

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 2 * PAGE), 0);
	map = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(map != MAP_FAILED);
	assert_int_equal(ftruncate(fd, PAGE), 0);
	job.base = map;
	job.fd = fd;
	assert_int_equal(zero_init(1, ZERO_MEMSET, 0), 0);
	zero_submit(&job);
	assert_ptr_equal(wait_done(), &job);
	assert_true(job.error == 0 || job.error == -EFAULT);
	/* Still alive: a job on the page that is there zeroes it. */
	memset(map, GUARD, PAGE);
	job.n = 1;
	job.error = 1;
	zero_submit(&job);
	assert_ptr_equal(wait_done(), &job);
	assert_int_equal(job.error, 0);
	for (size_t i = 0; i < PAGE; i++)
		assert_int_equal(map[i], 0);
	zero_stop();
	zero_fini();
	munmap(map, 2 * PAGE);
	close(fd);
}

static void test_stop_cancels_queued(void **state)
{
	struct zero_job job = {.slot_size = PAGE, .n = 0};
	struct zero_job *done;

	assert_int_equal(zero_init(1, ZERO_MEMSET, 0), 0);
	zero_stop();
	zero_submit(&job); /* no worker left to take it */
	zero_stop();
	done = zero_take_done();
	assert_ptr_equal(done, &job);
	assert_int_equal(job.error, -ECANCELED);
	zero_fini();
}

/* A tie (within ZERO_PICK_MARGIN_PCT) keeps the earlier choice, else goes
 * to the first method in enum order: the pick must not follow the noise. */
static void test_pick_stable(void **state)
{
	double ns[ZERO_METHOD_NR] = {0};

	ns[ZERO_REP_STOSB] = 100;
	ns[ZERO_NT] = 95;
	ns[ZERO_MEMSET] = 300;
	/* 5% apart: a tie. */
	assert_int_equal(zero_pick_cheapest(ns, ZERO_MEMSET, ZERO_AUTO), ZERO_REP_STOSB);
	assert_int_equal(zero_pick_cheapest(ns, ZERO_MEMSET, ZERO_NT), ZERO_NT);
	/* The noise turned around: the same picks. */
	ns[ZERO_REP_STOSB] = 95;
	ns[ZERO_NT] = 100;
	assert_int_equal(zero_pick_cheapest(ns, ZERO_MEMSET, ZERO_AUTO), ZERO_REP_STOSB);
	assert_int_equal(zero_pick_cheapest(ns, ZERO_MEMSET, ZERO_NT), ZERO_NT);
	/* Beyond the margin the cheapest wins, whatever came before. */
	ns[ZERO_NT] = 50;
	assert_int_equal(zero_pick_cheapest(ns, ZERO_MEMSET, ZERO_REP_STOSB), ZERO_NT);
	/* Nothing measured: the fallback. */
	memset(ns, 0, sizeof(ns));
	assert_int_equal(zero_pick_cheapest(ns, ZERO_MEMSET, ZERO_NT), ZERO_MEMSET);
}

/* The choice kept in the state directory comes back as it was saved, for
 * the same CPU only. */
static void test_pick_cache(void **state)
{
	char dir[] = "/tmp/hak-test-state.XXXXXX", path[sizeof(dir) + 32];
	struct zero_pick p = {0}, q = {0};
	char cpu[ZERO_CPU_MAX];

	assert_non_null(mkdtemp(dir));
	assert_int_equal(zero_cache_cpu(cpu, sizeof(cpu)), 0);
	assert_non_null(strstr(cpu, "CPUs"));
	assert_int_equal(zero_cache_load(dir, cpu, &q), -ENOENT);
	p.gbps[ZERO_MEMSET] = 12.5;
	p.small_ns[ZERO_MEMSET] = 120;
	p.large_ns[ZERO_MEMSET] = 80;
	p.small = p.large = ZERO_MEMSET;
	p.end_to_end = true;
	assert_int_equal(zero_cache_save(dir, cpu, &p), 0);
	assert_int_equal(zero_cache_load(dir, cpu, &q), 0);
	assert_true(q.cached && q.end_to_end);
	assert_int_equal(q.small, ZERO_MEMSET);
	assert_int_equal(q.large, ZERO_MEMSET);
	assert_true(q.gbps[ZERO_MEMSET] == 12.5 && q.small_ns[ZERO_MEMSET] == 120 &&
		    q.large_ns[ZERO_MEMSET] == 80);
	memset(&q, 0, sizeof(q));
	assert_int_equal(zero_cache_load(dir, "another CPU, 64 CPUs", &q), -ESTALE);
	assert_false(q.cached);
	snprintf(path, sizeof(path), "%s/zero-method", dir);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_range),
		cmocka_unit_test(test_page_aligned_slots),
		cmocka_unit_test(test_unsupported),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_measure),
		cmocka_unit_test(test_workers),
		cmocka_unit_test(test_worker_survives_sigbus),
		cmocka_unit_test(test_stop_cancels_queued),
		cmocka_unit_test(test_pick_stable),
		cmocka_unit_test(test_pick_cache),
	};

	log_set_level(LOG_WARNING); /* the workers log their measurements */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
