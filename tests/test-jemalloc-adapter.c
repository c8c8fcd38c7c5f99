/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libhakjemalloc keeps jemalloc correct: hak-jemalloc-prog (threads that
 * allocate, reallocate, write, check and free across threads, knowing
 * nothing of hakzerod) runs clean under LD_PRELOAD of libjemalloc and the
 * adapter, in local mode, against a real hakzerod, and in auto mode with no
 * daemon; each with jemalloc's dirty_decay_ms at its default and at 0 (every
 * freed extent back to the pool at once).  With dirty_decay_ms at 0, a
 * single thread cycling two 1-2 MiB slabs must get every extent from the
 * pool once warm, in both modes.  Producers and consumers that never
 * allocate, blocks of every size freed across threads, must finish and
 * read back zeroed where calloc promised, in both modes: a hook that calls
 * jemalloc's own from such a thread hangs it.  Every run has a time limit,
 * so a hang fails.  Under AddressSanitizer the
 * program cannot run on jemalloc (ASan brings its own malloc): skipped.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

/* A run that takes longer hangs (a few seconds each on a loaded 2-core
 * machine). */
#define PROG_TIMEOUT_S 120

/* Whether the harness found hakzerod ($HAKZEROD, set by make check). */
static bool have_daemon;

struct run {
	const char *what;  /* the program's argument */
	const char *mode;  /* HAK_MODE */
	const char *decay; /* MALLOC_CONF, or NULL */
	const char *sock;  /* HAKZEROD_SOCKET, or NULL */
};

static int run_prog(const struct run *r)
{
	char preload[2048];
	int status;
	pid_t pid;

	snprintf(preload, sizeof(preload), "%s %s", JEMALLOC_SO, ADAPTER_SO);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		setenv("LD_PRELOAD", preload, 1);
		setenv("HAK_MODE", r->mode, 1);
		if (r->decay)
			setenv("MALLOC_CONF", r->decay, 1);
		if (r->sock)
			setenv("HAKZEROD_SOCKET", r->sock, 1);
		/* Survives exec: SIGALRM ends a hung program. */
		alarm(PROG_TIMEOUT_S);
		execl(PROG, PROG, r->what ? r->what : "expect-pool", (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid)
		return -errno;
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
		print_message("%s %s: still running after %d s, hung\n", r->mode,
			      r->what ? r->what : "", PROG_TIMEOUT_S);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void both_decays(const char *mode, const char *sock)
{
	struct run r = {.mode = mode, .sock = sock};

	assert_int_equal(run_prog(&r), 0);
	r.decay = "dirty_decay_ms:0";
	assert_int_equal(run_prog(&r), 0);
}

/* At dirty_decay_ms:0, once warm, every extent from the pool. */
static void churn(const char *mode, const char *sock)
{
	struct run r = {.what = "churn", .mode = mode, .decay = "dirty_decay_ms:0", .sock = sock};

	assert_int_equal(run_prog(&r), 0);
}

/* Cross-thread frees by threads that never allocate. */
static void xthread(const char *mode, const char *sock)
{
	struct run r = {.what = "xthread", .mode = mode, .sock = sock};

	assert_int_equal(run_prog(&r), 0);
}

/* A hakzerod of the test's own (on the harness's socket), or the test is
 * skipped. */
static void daemon_start(void)
{
	if (!have_daemon) {
		print_message("skip: $HAKZEROD is not set (make check sets it)\n");
		skip();
	}
	h_daemon_restart();
}

static void test_local(void **state)
{
	both_decays("local", NULL);
}

static void test_local_churn(void **state)
{
	churn("local", NULL);
}

static void test_local_xthread(void **state)
{
	xthread("local", NULL);
}

/* No arena made at load; a new thread's arena hooked before it runs. */
static void test_local_arenas(void **state)
{
	struct run r = {.what = "arenas", .mode = "local"};

	assert_int_equal(run_prog(&r), 0);
}

/* A short program makes no pool; one that grows does (hooks.c, youth). */
static void test_local_young(void **state)
{
	struct run r = {.what = "young", .mode = "local"};

	assert_int_equal(run_prog(&r), 0);
}

/* Past its pool a program grows as fast as without it (hooks.c). */
static void test_local_outgrow(void **state)
{
	struct run r = {.what = "outgrow", .mode = "local"};

	assert_int_equal(run_prog(&r), 0);
}

static void test_auto_without_daemon(void **state)
{
	both_decays("auto", "/nonexistent/hak.sock");
}

/* jemalloc through the adapter is a normal client: never over what one
 * client may cost the daemon. */
static void assert_never_deferred(void)
{
	assert_int_equal(h_stats_u64("deferred"), 0);
}

static void test_shared(void **state)
{
	daemon_start();
	both_decays("shared", h_env.sock);
	assert_never_deferred();
	h_daemon_stop();
}

static void test_shared_churn(void **state)
{
	daemon_start();
	churn("shared", h_env.sock);
	assert_never_deferred();
	h_daemon_stop();
}

static void test_shared_xthread(void **state)
{
	daemon_start();
	xthread("shared", h_env.sock);
	h_daemon_stop();
}

static void test_shared_young(void **state)
{
	struct run r = {.what = "young", .mode = "shared"};

	daemon_start();
	r.sock = h_env.sock;
	assert_int_equal(run_prog(&r), 0);
	h_daemon_stop();
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_local),
		cmocka_unit_test(test_local_churn),
		cmocka_unit_test(test_local_xthread),
		cmocka_unit_test(test_local_arenas),
		cmocka_unit_test(test_local_young),
		cmocka_unit_test(test_local_outgrow),
		cmocka_unit_test(test_auto_without_daemon),
		cmocka_unit_test_setup_teardown(test_shared, h_test_setup, h_test_teardown),
		cmocka_unit_test_setup_teardown(test_shared_churn, h_test_setup, h_test_teardown),
		cmocka_unit_test_setup_teardown(test_shared_xthread, h_test_setup, h_test_teardown),
		cmocka_unit_test_setup_teardown(test_shared_young, h_test_setup, h_test_teardown),
	};
	int r;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	printf("SKIP: a sanitizer's runtime replaces malloc; jemalloc cannot be preloaded\n");
	return H_EXIT_SKIP;
#endif
	if (access(JEMALLOC_SO, R_OK) != 0 || access(ADAPTER_SO, R_OK) != 0) {
		printf("SKIP: %s or %s is missing\n", JEMALLOC_SO, ADAPTER_SO);
		return H_EXIT_SKIP;
	}
	/* Without hakzerod only the tests that need it are skipped. */
	r = h_init_need("jemalloc", argv[0], 0);
	if (r != 0 && r != H_EXIT_SKIP)
		return r;
	have_daemon = r == 0;
	if (have_daemon)
		h_write_conf("# hakzerod's defaults\n");
	return h_run_tests(tests, NULL, NULL);
}
