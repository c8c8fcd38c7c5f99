/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Crashes against a real hakzerod (DESIGN rule 5):
 *
 *   kill_mid_alloc, kill_mid_free
 *       a client SIGKILLed while one of its threads is inside hak_alloc or
 *       hak_free (it says so in a file we read after its death): the
 *       daemon reclaims its whole pool, the daemon's memory returns to its
 *       level before the client, and the next client sees only zeroes
 *   kill_daemon_under_load
 *       hakzerod SIGKILLed (and once stopped with SIGTERM) while clients
 *       hammer it from several threads: they keep the pages they hold, fall
 *       back, reconnect to the new daemon and are served by it; every page
 *       carries its holder's stamp, checked before it is freed, so no page
 *       is ever held by two at once
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define TEST_ALARM_S 180
#define MAX_THREADS 8
/* Kills per operation and thread count, each confirmed to have landed
 * inside the call. */
#define KILLS 4
/* Attempts to land one confirmed kill. */
#define KILL_ATTEMPTS 20
/* What the daemon may keep of a dead client: nothing of its pool; a
 * little private memory (malloc keeps freed chunks). */
#define SHMEM_SLACK (64u << 10)
#define ANON_SLACK (1u << 20)
#define DAEMON_KILLS 3
#define HOLDERS 2

enum { OP_NONE, OP_ALLOC, OP_FREE };

/* Written by hak-client victim: see client-crash.c. */
struct victim_state {
	uint32_t op[MAX_THREADS];
	uint32_t inside[MAX_THREADS];
	uint64_t calls[MAX_THREADS];
};

/* A test that killed the daemon may have left it dead. */
static int test_setup(void **state)
{
	h_test_setup(state);
	if (!h_daemon_alive())
		h_daemon_restart();
	return 0;
}

static int test_teardown(void **state)
{
	h_procs_release_all();
	return h_test_teardown(state);
}

/* ------------------------------------------------------ client killed */

static struct victim_state *map_state(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	struct victim_state *st;

	h_check(fd >= 0 && ftruncate(fd, sizeof(*st)) == 0, "%s: %s", path, strerror(errno));
	st = mmap(NULL, sizeof(*st), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	h_check(st != MAP_FAILED, "mmap %s: %s", path, strerror(errno));
	return st;
}

static bool inside(const struct victim_state *st, uint32_t op)
{
	return __atomic_load_n(&st->inside[0], __ATOMIC_ACQUIRE) == 1 &&
	       __atomic_load_n(&st->op[0], __ATOMIC_RELAXED) == op;
}

/* Starts a victim, kills it the moment thread 0 is inside op, and says
 * whether it died there (the file keeps its last word). */
static bool kill_inside(const char *path, struct victim_state *st, uint32_t op, const char *threads,
			struct h_mem *alive)
{
	struct h_proc *v = h_client("victim", "victim", "--state", path, "--threads", threads,
				    "--count", "512", NULL);
	uint64_t deadline;
	bool landed;

	memset(st, 0, sizeof(*st));
	h_proc_expect(v, "running", H_REACT_MS, NULL, 0);
	/* Well into its loop: the pool in use, not only fallbacks. */
	while (__atomic_load_n(&st->calls[0], __ATOMIC_RELAXED) < 2048) {
		h_check(waitpid(v->pid, &v->status, WNOHANG) == 0, "the victim died by itself");
		tu_sleep_ms(1);
	}
	h_check(h_pid_mem(h_daemon_pid(), alive), "no /proc numbers for the daemon");
	deadline = tu_now_ms() + H_REACT_MS;
	while (!inside(st, op))
		h_check(tu_now_ms() < deadline, "the victim never entered operation %u", op);
	h_proc_kill(v, SIGKILL);
	landed = inside(st, op);
	h_check(WIFSIGNALED(v->status), "the victim exited by itself: %#x", v->status);
	h_proc_release(v);
	return landed;
}

/* The daemon's memory is back where it was without the client. */
static void wait_memory_back(const struct h_mem *m0, struct h_mem *m, const char *why)
{
	uint64_t deadline = tu_now_ms() + H_REACT_MS;

	for (;;) {
		h_check(h_pid_mem(h_daemon_pid(), m), "no /proc numbers for the daemon");
		if (m->shmem <= m0->shmem + SHMEM_SLACK && m->anon <= m0->anon + ANON_SLACK)
			break;
		if (tu_now_ms() > deadline)
			h_fail("%s: daemon RssShmem %llu kB RssAnon %llu kB, before %llu and %llu "
			       "kB",
			       why, (unsigned long long)m->shmem / 1024,
			       (unsigned long long)m->anon / 1024,
			       (unsigned long long)m0->shmem / 1024,
			       (unsigned long long)m0->anon / 1024);
		tu_sleep_ms(H_POLL_MS);
	}
}

/* The next client gets only zeroes. */
static void next_client_clean(void)
{
	struct h_proc *w = h_client("next", "stale", "--count", "3000", "--mode", "mixed", "--seed",
				    "3", NULL);

	h_proc_finish(w, 60000, NULL, NULL, 0);
	h_proc_release(w);
}

static void kill_client_inside(uint32_t op, const char *threads)
{
	char path[PATH_MAX];
	struct victim_state *st;
	struct h_mem m0, alive, after;
	unsigned landed = 0, tries = 0;

	snprintf(path, sizeof(path), "%s/victim.state", h_env.dir);
	st = map_state(path);
	h_wait_clients(0, "before the victim");
	h_check(h_pid_mem(h_daemon_pid(), &m0), "no /proc numbers for the daemon");
	while (landed < KILLS) {
		h_check(++tries <= KILL_ATTEMPTS, "only %u of %u kills landed inside the call",
			landed, KILLS);
		landed += kill_inside(path, st, op, threads, &alive);
		h_wait_clients(0, "after the victim's death");
		h_check(h_status_u64("pool_bytes") == 0, "pool bytes left after the victim died");
		wait_memory_back(&m0, &after, "after the victim's death");
		h_daemon_assert_alive();
	}
	fprintf(stderr,
		"  %u kills inside %s (%s threads) in %u tries; daemon RssShmem/RssAnon "
		"%llu/%llu kB before, %llu/%llu kB with the victim, %llu/%llu kB after\n",
		landed, op == OP_ALLOC ? "hak_alloc" : "hak_free", threads, tries,
		(unsigned long long)m0.shmem / 1024, (unsigned long long)m0.anon / 1024,
		(unsigned long long)alive.shmem / 1024, (unsigned long long)alive.anon / 1024,
		(unsigned long long)after.shmem / 1024, (unsigned long long)after.anon / 1024);
	munmap(st, sizeof(*st));
	next_client_clean();
}

static void test_kill_mid_alloc(void **state)
{
	kill_client_inside(OP_ALLOC, "1");
	kill_client_inside(OP_ALLOC, "3");
}

static void test_kill_mid_free(void **state)
{
	kill_client_inside(OP_FREE, "1");
	kill_client_inside(OP_FREE, "3");
}

/* ------------------------------------------------------ daemon killed */

/* A "stats holder ..." line after "report". */
static void holder_report(struct h_proc *h, char *line, size_t size)
{
	h_proc_say(h, "report");
	h_proc_expect(h, "stats holder", H_REACT_MS, line, size);
}

/* Polls a holder until its stats say connected (1) or not (0), and with
 * more allocations from the ready ring than min_ready. */
static uint64_t holder_wait(struct h_proc *h, uint64_t connected, uint64_t min_ready)
{
	uint64_t deadline = tu_now_ms() + 2 * H_REACT_MS;
	char line[H_LINE];

	for (;;) {
		holder_report(h, line, sizeof(line));
		if (h_line_u64(line, "connected") == connected &&
		    h_line_u64(line, "alloc_ready") > min_ready)
			return h_line_u64(line, "alloc_ready");
		h_check(tu_now_ms() < deadline, "%s: not %s after %d ms: %s", h->name,
			connected ? "reconnected and served" : "disconnected", 2 * H_REACT_MS,
			line);
		tu_sleep_ms(50);
	}
}

/* Allocations go on while the daemon is away: fallbacks grow. */
static void holder_falls_back(struct h_proc *h)
{
	char a[H_LINE], b[H_LINE];
	uint64_t deadline = tu_now_ms() + H_REACT_MS;

	holder_report(h, a, sizeof(a));
	do {
		h_check(tu_now_ms() < deadline, "%s: no fallback allocations without a daemon",
			h->name);
		tu_sleep_ms(20);
		holder_report(h, b, sizeof(b));
	} while (h_line_u64(b, "alloc_mmap") + h_line_u64(b, "alloc_inline_zero") <=
		 h_line_u64(a, "alloc_mmap") + h_line_u64(a, "alloc_inline_zero"));
}

static void test_kill_daemon_under_load(void **state)
{
	struct h_proc *h[HOLDERS];
	uint64_t ready[HOLDERS];
	char line[H_LINE];

	for (int i = 0; i < HOLDERS; i++) {
		h[i] = h_client(i ? "holder-b" : "holder-a", "holder", "--threads", "3", "--window",
				"24", NULL);
		h_proc_expect(h[i], "running", H_REACT_MS, NULL, 0);
		ready[i] = holder_wait(h[i], 1, 0);
	}
	for (int k = 0; k <= DAEMON_KILLS; k++) {
		/* The last round stops it cleanly: clients see the same. */
		if (k < DAEMON_KILLS)
			h_daemon_kill();
		else
			h_daemon_stop();
		for (int i = 0; i < HOLDERS; i++) {
			holder_wait(h[i], 0, 0);
			holder_falls_back(h[i]);
		}
		h_daemon_restart();
		for (int i = 0; i < HOLDERS; i++)
			ready[i] = holder_wait(h[i], 1, ready[i]);
	}
	for (int i = 0; i < HOLDERS; i++) {
		h_proc_say(h[i], "exit");
		h_proc_finish(h[i], 2 * H_REACT_MS, "stats end", line, sizeof(line));
		assert_int_equal(h_line_u64(line, "reconnects"), DAEMON_KILLS + 1);
		h_proc_release(h[i]);
	}
	h_wait_clients(0, "after the holders exited");
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kill_mid_alloc, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_kill_mid_free, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_kill_daemon_under_load, test_setup,
						test_teardown),
	};
	int r = h_init("crash", argv[0]);

	if (r)
		return r;
	alarm(TEST_ALARM_S);
	h_write_conf("pool_size 8M\n"
		     "class 4K 25%%\n"
		     "class 64K 25%%\n"
		     "class 2M 50%%\n"
		     "zero_threads 1\n");
	return h_run_tests(tests, h_group_setup, h_group_teardown);
}
