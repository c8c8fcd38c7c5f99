/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hak-testclient: one libhakclient scenario per run, for the integration
 * test (tests/test-integration.c), which starts a real hakzerod and drives
 * several of these as separate processes.
 *
 * Output is machine-readable, one fact per line on stdout:
 *   ready | held ... | disconnected ... | reconnected ...   progress
 *   stats key=value ...                                       counters
 *   ok ...                                                    success (exit 0)
 *   fail REASON                                               failure (exit 1)
 * The driver answers on stdin with one word a line ("go", "check", "exit")
 * where a scenario has to wait for it (a daemon killed, a peer started).
 *
 * Pages are filled with a pattern byte given by the driver, distinct per
 * process: finding any byte that is neither 0 nor our own pattern means we
 * were handed someone else's memory (DESIGN rules 1 and 2).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "hakclient.h"
#include "testutil.h"

#define PROG "hak-testclient"

#define PAGE 4096u
/* --pattern: a byte that is not 0, so that it tells ours from zeroed. */
#define PATTERN_MIN 1
#define PATTERN_MAX 255
#define MAX_CLASSES 8
/* Requests above the largest class are served by mmap; test one of those. */
#define LARGE_EXTRA PAGE
/* How long a scenario waits for the daemon or library to react. */
#define REACT_TIMEOUT_MS 5000
/* Pause while polling a state no fd or signal reports (is_connected). */
#define POLL_STEP_MS 10
/* churn: slots of one class held at once per round, and the share of the
 * pool they may take, so the rest of the pool keeps the daemon busy. */
#define CHURN_BATCH_MAX 64u
/* churn --batch: at most this many slots of one class at once. */
#define CHURN_HELD_MAX 4096u
#define CHURN_POOL_SHARE 4u
/* churn --expect-recycle: a short idle time between rounds lets the
 * daemon's zeroing thread refill the ready rings (it zeroes when idle). */
#define CHURN_IDLE_MS 3
/* hotpath: slots held per round; no more than the library's local cache,
 * so that a dry ready ring is covered by inline zeroing, never mmap. */
#define HOTPATH_BATCH 32u
#define HOTPATH_WARMUP_ROUNDS 20u
/* fork: allocations in the child after it freed the parent's pages, more
 * than the local cache holds, so frees reach the return ring if the child
 * (wrongly) still has the parent's pool. */
#define FORK_CHILD_CHURN 256u
#define THREADS_MAX 8
#define THREAD_WINDOW 8
#define HOLD_MAX 64

struct opts {
	const char *socket;
	unsigned pattern;
	unsigned rounds;
	unsigned seconds;
	unsigned threads;
	unsigned pages;
	unsigned flags_mode;	     /* MODE_* */
	unsigned batch[MAX_CLASSES]; /* churn: slots per class per round, 0: default */
	bool sync;
	bool expect_recycle;
};

enum { MODE_ZERO, MODE_DIRTY, MODE_MIXED };

static struct hak_client *client;
static size_t classes[MAX_CLASSES];
static unsigned nclasses;

/* ------------------------------------------------------------- output */

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

__attribute__((format(printf, 1, 2), noreturn)) static void fail(const char *fmt, ...)
{
	va_list ap;

	fputs("fail ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	exit(1);
}

static void log_to_stderr(void *data, int priority, const char *file, int line, const char *fn,
			  const char *format, va_list args) __attribute__((format(printf, 6, 0)));

static void log_to_stderr(void *data, int priority, const char *file, int line, const char *fn,
			  const char *format, va_list args)
{
	fprintf(stderr, "hak-testclient[%d] libhakclient: ", (int)getpid());
	vfprintf(stderr, format, args);
	fputc('\n', stderr);
}

/* Waits for the driver's next word on stdin; EOF means the driver died. */
static void wait_word(const char *word)
{
	char line[64];

	if (!fgets(line, sizeof(line), stdin))
		fail("stdin closed while waiting for '%s'", word);
	line[strcspn(line, "\n")] = '\0';
	if (strcmp(line, word) != 0)
		fail("expected '%s' on stdin, got '%s'", word, line);
}

/* --------------------------------------------------------------- stats */

static struct hak_client_stats stats(void)
{
	struct hak_client_stats st;
	int r = hak_client_get_stats(client, &st, sizeof(st));

	if (r < 0)
		fail("hak_client_get_stats: %s", strerror(-r));
	return st;
}

static void print_stats(const char *tag)
{
	struct hak_client_stats st = stats();

	say("stats%s%s alloc_ready=%llu alloc_dirty=%llu alloc_inline_zero=%llu alloc_mmap=%llu "
	    "alloc_large=%llu free_pool=%llu free_mmap=%llu returned=%llu doorbells=%llu "
	    "reconnects=%llu pool_bytes=%llu connected=%llu",
	    tag ? " " : "", tag ? tag : "", (unsigned long long)st.alloc_ready,
	    (unsigned long long)st.alloc_dirty, (unsigned long long)st.alloc_inline_zero,
	    (unsigned long long)st.alloc_mmap, (unsigned long long)st.alloc_large,
	    (unsigned long long)st.free_pool, (unsigned long long)st.free_mmap,
	    (unsigned long long)st.returned, (unsigned long long)st.doorbells,
	    (unsigned long long)st.reconnects, (unsigned long long)st.pool_bytes,
	    (unsigned long long)st.connected);
}

/* ------------------------------------------------------------ checking */

/*
 * Returns the offset of the first byte of p[0..len) that is neither 0 nor
 * `own` (own == 0: only zeroes allowed), or -1.  Word-sized fast path: a
 * 2 MiB slot is checked many times per run.
 */
static long find_foreign(const void *p, size_t len, unsigned char own)
{
	const uint64_t *w = p;
	const unsigned char *b = p;
	uint64_t own_word = 0x0101010101010101ull * own;

	for (size_t i = 0; i < len / 8; i++) {
		if (w[i] == 0 || w[i] == own_word)
			continue;
		for (size_t j = i * 8; j < i * 8 + 8; j++)
			if (b[j] != 0 && b[j] != own)
				return (long)j;
	}
	for (size_t j = len / 8 * 8; j < len; j++)
		if (b[j] != 0 && b[j] != own)
			return (long)j;
	return -1;
}

static size_t page_round(size_t n)
{
	return (n + PAGE - 1) / PAGE * PAGE;
}

/* Checks a fresh allocation of size bytes that hak_alloc answered r for,
 * asked with flags: zeroed when it says so (and always when flags == 0),
 * otherwise nothing but our own pattern. */
static void check_fresh(const void *p, size_t size, unsigned flags, int r, unsigned char own)
{
	size_t len = page_round(size);
	long bad;

	if (!(flags & HAK_ALLOC_DIRTY_OK) && !(r & HAK_ALLOC_ZEROED))
		fail("hak_alloc(%zu, flags 0) answered %d: not zeroed", size, r);
	bad = find_foreign(p, len, (r & HAK_ALLOC_ZEROED) ? 0 : own);
	if (bad >= 0)
		fail("%s page of %zu bytes at %p has byte 0x%02x at offset %ld (own pattern "
		     "0x%02x)",
		     (r & HAK_ALLOC_ZEROED) ? "zeroed" : "dirty", size, p,
		     ((const unsigned char *)p)[bad], bad, own);
}

/* A page we filled must still hold exactly our byte. */
static void check_filled(const void *p, size_t len, unsigned char own, const char *what)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i] != own)
			fail("%s: %p+%zu holds 0x%02x, not 0x%02x", what, p, i, b[i], own);
}

/* ---------------------------------------------------------- allocation */

static void *alloc_checked(size_t size, unsigned flags, unsigned char own, int *how)
{
	void *p = NULL;
	int r = hak_alloc(client, size, flags, &p);

	if (r < 0)
		fail("hak_alloc(%zu, %#x): %s", size, flags, strerror(-r));
	if (!p)
		fail("hak_alloc(%zu) succeeded with a NULL pointer", size);
	check_fresh(p, size, flags, r, own);
	if (how)
		*how = r;
	return p;
}

static void free_checked(void *p, size_t size)
{
	int r = hak_free(client, p, size);

	if (r < 0)
		fail("hak_free(%p, %zu): %s", p, size, strerror(-r));
}

/* Learns the classes from the library: the class of 1 byte, then of one
 * byte more than each class, until the library says E2BIG. */
static void learn_classes(void)
{
	size_t want = 1, cls;
	int r;

	nclasses = 0;
	while (nclasses < MAX_CLASSES && (r = hak_client_class_size(client, want, &cls)) == 0) {
		classes[nclasses++] = cls;
		want = cls + 1;
	}
	if (nclasses == 0)
		fail("no size classes (hak_client_class_size: %s)", strerror(-r));
}

static void connect_client(const struct opts *o)
{
	int r = hak_client_new(&client);

	if (r < 0)
		fail("hak_client_new: %s", strerror(-r));
	hak_client_set_log_fn(client, log_to_stderr, NULL);
	hak_client_set_log_priority(client, LOG_INFO);
	if (o->socket && (r = hak_client_set_socket(client, o->socket)) < 0)
		fail("hak_client_set_socket: %s", strerror(-r));
	r = hak_client_connect(client);
	if (r < 0)
		fail("hak_client_connect: %s", strerror(-r));
	if (hak_client_is_connected(client) != 1)
		fail("hak_client_connect succeeded but not connected");
	learn_classes();
}

/* --------------------------------------------------------------- churn */

struct held {
	void *p;
	size_t size;
};

static unsigned flags_for(unsigned mode, unsigned i)
{
	if (mode == MODE_DIRTY)
		return HAK_ALLOC_DIRTY_OK;
	if (mode == MODE_MIXED)
		return (i & 1) ? HAK_ALLOC_DIRTY_OK : 0;
	return 0;
}

/* Slots of class c taken per round: --batch, or a share of the pool, at
 * most a batch. */
static unsigned churn_batch(const struct opts *o, unsigned c, uint64_t pool_bytes)
{
	uint64_t n = pool_bytes / CHURN_POOL_SHARE / nclasses / classes[c];

	if (o->batch[c])
		return o->batch[c] > CHURN_HELD_MAX ? CHURN_HELD_MAX : o->batch[c];

	if (n < 1)
		n = 1;
	return n > CHURN_BATCH_MAX ? CHURN_BATCH_MAX : (unsigned)n;
}

struct churn_result {
	uint64_t allocs;
	uint64_t ready_bytes;  /* bytes of slots that came from the ready ring */
	uint64_t dirty_reused; /* dirty slots that still held our pattern */
};

/* Allocates one slot, noting whether the ready ring served it. */
static void churn_one(struct held *h, size_t size, unsigned flags, unsigned char own,
		      struct churn_result *res)
{
	uint64_t before = stats().alloc_ready;
	int how;

	h->p = alloc_checked(size, flags, own, &how);
	h->size = size;
	if (stats().alloc_ready > before)
		res->ready_bytes += page_round(size);
	if (!(how & HAK_ALLOC_ZEROED) && find_foreign(h->p, size, 0) >= 0)
		res->dirty_reused++;
	res->allocs++;
	memset(h->p, own, size);
}

/* One round: per class a batch allocated, checked, filled; one request of
 * an odd size and one above the largest class; then everything freed. */
static void churn_round(const struct opts *o, unsigned round, uint64_t pool_bytes,
			struct churn_result *res)
{
	static struct held held[MAX_CLASSES * CHURN_HELD_MAX + 2];
	unsigned n = 0, i = round;

	for (unsigned c = 0; c < nclasses; c++)
		for (unsigned k = churn_batch(o, c, pool_bytes); k > 0; k--)
			churn_one(&held[n++], classes[c], flags_for(o->flags_mode, i++), o->pattern,
				  res);
	/* Not a class size: served by the class above, only size bytes used. */
	churn_one(&held[n++], classes[0] + PAGE, flags_for(o->flags_mode, i++), o->pattern, res);
	churn_one(&held[n++], classes[nclasses - 1] + LARGE_EXTRA, 0, o->pattern, res);
	for (unsigned k = 0; k < n; k++) {
		check_filled(held[k].p, held[k].size, o->pattern, "held page changed");
		free_checked(held[k].p, held[k].size);
	}
}

/* Rounds until --rounds are done and, with --expect-recycle, more bytes
 * came from the ready ring than the pool holds (so slots went round through
 * the daemon's zeroing), within --seconds. */
static int cmd_churn(const struct opts *o)
{
	struct churn_result res = {0};
	uint64_t pool_bytes, deadline;
	unsigned round = 0;

	connect_client(o);
	pool_bytes = stats().pool_bytes;
	if (o->sync) {
		say("ready");
		wait_word("go");
	}
	deadline = tu_now_ms() + o->seconds * 1000ull;
	while (round < o->rounds || (o->expect_recycle && res.ready_bytes <= pool_bytes)) {
		if (tu_now_ms() > deadline)
			break;
		churn_round(o, round++, pool_bytes, &res);
		if (o->expect_recycle)
			tu_sleep_ms(CHURN_IDLE_MS);
	}
	print_stats(NULL);
	say("churn rounds=%u allocs=%llu ready_bytes=%llu pool_bytes=%llu dirty_reused=%llu", round,
	    (unsigned long long)res.allocs, (unsigned long long)res.ready_bytes,
	    (unsigned long long)pool_bytes, (unsigned long long)res.dirty_reused);
	if (o->expect_recycle && res.ready_bytes <= pool_bytes)
		fail("only %llu bytes came from the ready ring in %u s, pool is %llu: "
		     "no slot came back zeroed by the daemon",
		     (unsigned long long)res.ready_bytes, o->seconds,
		     (unsigned long long)pool_bytes);
	say("ok");
	hak_client_unref(client);
	return 0;
}

/* ---------------------------------------------------------------- hold */

static unsigned hold_pages(struct held *h, unsigned per_class, unsigned char own)
{
	unsigned n = 0;

	for (unsigned c = 0; c < nclasses; c++)
		for (unsigned k = 0; k < per_class && n < HOLD_MAX; k++) {
			h[n].size = classes[c];
			h[n].p = alloc_checked(classes[c], 0, own, NULL);
			memset(h[n].p, own, h[n].size);
			n++;
		}
	return n;
}

static void check_held(const struct held *h, unsigned n, unsigned char own)
{
	for (unsigned i = 0; i < n; i++)
		check_filled(h[i].p, h[i].size, own, "held page changed");
}

/* Holds pages until told to exit (or killed, which is the point). */
static int cmd_hold(const struct opts *o)
{
	static struct held h[HOLD_MAX];
	char line[64];
	unsigned n;

	connect_client(o);
	n = hold_pages(h, o->pages, o->pattern);
	print_stats(NULL);
	say("held pages=%u", n);
	while (fgets(line, sizeof(line), stdin)) {
		if (strncmp(line, "check", 5) == 0) {
			check_held(h, n, o->pattern);
			say("ok check");
		} else if (strncmp(line, "exit", 4) == 0) {
			break;
		}
	}
	for (unsigned i = 0; i < n; i++)
		free_checked(h[i].p, h[i].size);
	say("ok");
	hak_client_unref(client);
	return 0;
}

/* ------------------------------------------------------------- restart */

/* Allocates and frees one slot of each class, checking zeroes: the
 * allocations the daemon's absence or return must not break. */
static void alloc_each_class(unsigned char own)
{
	for (unsigned c = 0; c < nclasses; c++) {
		void *p = alloc_checked(classes[c], 0, own, NULL);

		memset(p, own, classes[c]);
		free_checked(p, classes[c]);
	}
}

/* Polls (allocating meanwhile, as a real program would) until
 * hak_client_is_connected() == want, or fails after REACT_TIMEOUT_MS. */
static void wait_connected(int want, unsigned char own)
{
	uint64_t deadline = tu_now_ms() + REACT_TIMEOUT_MS;

	while (hak_client_is_connected(client) != want) {
		if (tu_now_ms() > deadline)
			fail("hak_client_is_connected() did not become %d within %d ms", want,
			     REACT_TIMEOUT_MS);
		alloc_each_class(own);
		tu_sleep_ms(POLL_STEP_MS);
	}
}

/* After a reconnect the new daemon's ready ring may still be filling. */
static void wait_alloc_ready_grows(unsigned char own)
{
	uint64_t before = stats().alloc_ready, deadline = tu_now_ms() + REACT_TIMEOUT_MS;

	for (;;) {
		alloc_each_class(own);
		if (stats().alloc_ready > before)
			return;
		if (tu_now_ms() > deadline)
			fail("no allocation came from the new daemon's ready ring within %d ms",
			     REACT_TIMEOUT_MS);
		tu_sleep_ms(POLL_STEP_MS);
	}
}

/*
 * The driver SIGKILLs the daemon after "held" and says "go"; starts a new
 * one after "disconnected" and says "go" again (DESIGN rule 5).
 */
static int cmd_restart(const struct opts *o)
{
	static struct held h[HOLD_MAX];
	struct hak_client_stats before, st;
	unsigned n;

	connect_client(o);
	n = hold_pages(h, o->pages, o->pattern);
	print_stats("connected");
	say("held pages=%u", n);
	wait_word("go");

	/* The daemon is dead: allocations go on, whether or not the library
	 * has noticed yet. */
	alloc_each_class(o->pattern);
	wait_connected(0, o->pattern);
	before = stats();
	alloc_each_class(o->pattern);
	st = stats();
	if (st.alloc_mmap + st.alloc_inline_zero <= before.alloc_mmap + before.alloc_inline_zero)
		fail("disconnected, but allocations were not counted as fallbacks");
	check_held(h, n, o->pattern);
	print_stats("disconnected");
	say("disconnected");
	wait_word("go");

	wait_connected(1, o->pattern);
	if (stats().reconnects != 1)
		fail("reconnects is %llu, not 1", (unsigned long long)stats().reconnects);
	wait_alloc_ready_grows(o->pattern);
	check_held(h, n, o->pattern);
	/* Slots of the dead daemon's pool are freed like any other. */
	for (unsigned i = 0; i < n; i++)
		free_checked(h[i].p, h[i].size);
	alloc_each_class(o->pattern);
	print_stats("reconnected");
	say("ok");
	hak_client_unref(client);
	return 0;
}

/* ------------------------------------------------------------- threads */

struct thread_arg {
	const struct opts *o;
	unsigned char id; /* the byte this thread writes */
	pthread_barrier_t *start;
	uint64_t allocs;
};

static unsigned char thread_byte(unsigned t)
{
	return (unsigned char)(0x10 + t);
}

/* A dirty slot may hold any of this process's thread bytes (the local
 * cache is per process), never anything else. */
static void check_thread_dirty(const unsigned char *p, size_t len, unsigned nthreads)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != 0 && (p[i] < thread_byte(0) || p[i] >= thread_byte(nthreads)))
			fail("dirty page %p+%zu holds 0x%02x: no thread of ours wrote it", p, i,
			     p[i]);
}

/* Mostly small classes, where slots are many and contention is highest:
 * class c about 4^-c of the time. */
static size_t thread_size(unsigned i)
{
	unsigned c = (unsigned)__builtin_ctz(i + 1) / 2;

	return classes[c < nclasses ? c : nclasses - 1];
}

static void thread_take(struct thread_arg *a, struct held *h, unsigned i)
{
	size_t size = thread_size(i);
	/* Flags uncorrelated with the class. */
	unsigned flags = (i * 2654435761u) >> 31 ? HAK_ALLOC_DIRTY_OK : 0;
	int r = hak_alloc(client, size, flags, &h->p);

	if (r < 0)
		fail("thread %u: hak_alloc(%zu): %s", a->id, size, strerror(-r));
	if (r & HAK_ALLOC_ZEROED)
		check_fresh(h->p, size, flags, r, 0);
	else if (flags == 0)
		fail("thread %u: hak_alloc(%zu, 0) not zeroed", a->id, size);
	else
		check_thread_dirty(h->p, size, a->o->threads);
	h->size = size;
	memset(h->p, a->id, size);
	a->allocs++;
}

/* Each thread keeps a window of pages it holds; before freeing one it
 * checks that no other thread wrote into it meanwhile (rule 2). */
static void *thread_main(void *arg)
{
	struct thread_arg *a = arg;
	struct held win[THREAD_WINDOW] = {{0}};

	pthread_barrier_wait(a->start);
	for (unsigned i = 0; i < a->o->rounds; i++) {
		struct held *h = &win[i % THREAD_WINDOW];

		if (h->p) {
			check_filled(h->p, h->size, a->id, "page shared between threads");
			free_checked(h->p, h->size);
		}
		thread_take(a, h, i);
	}
	for (unsigned k = 0; k < THREAD_WINDOW; k++)
		if (win[k].p) {
			check_filled(win[k].p, win[k].size, a->id, "page shared between threads");
			free_checked(win[k].p, win[k].size);
		}
	return NULL;
}

static int cmd_threads(const struct opts *o)
{
	struct thread_arg args[THREADS_MAX];
	pthread_t th[THREADS_MAX];
	pthread_barrier_t start;
	uint64_t total = 0;

	if (o->threads < 2 || o->threads > THREADS_MAX)
		fail("--threads must be 2..%d", THREADS_MAX);
	connect_client(o);
	pthread_barrier_init(&start, NULL, o->threads);
	for (unsigned t = 0; t < o->threads; t++) {
		args[t] = (struct thread_arg){.o = o, .id = thread_byte(t), .start = &start};
		if (pthread_create(&th[t], NULL, thread_main, &args[t]) != 0)
			fail("pthread_create");
	}
	for (unsigned t = 0; t < o->threads; t++) {
		pthread_join(th[t], NULL);
		total += args[t].allocs;
	}
	print_stats(NULL);
	say("ok threads=%u allocs=%llu", o->threads, (unsigned long long)total);
	hak_client_unref(client);
	return 0;
}

/* ---------------------------------------------------------------- fork */

static void write_byte(int fd, char c)
{
	if (write(fd, &c, 1) != 1)
		fail("pipe write: %s", strerror(errno));
}

static void read_byte(int fd, char want)
{
	char c;

	if (read(fd, &c, 1) != 1 || c != want)
		fail("pipe: the other side of the fork went away");
}

/* In the child: allocate and write after fork, free the parent's pages
 * (which must not touch them), and check our own pages after the parent
 * has written to its own. */
static void fork_child(const struct opts *o, struct held *parent, unsigned n, int rd, int wr)
{
	static struct held mine[HOLD_MAX];
	unsigned char own = (unsigned char)~o->pattern;
	unsigned m;

	m = hold_pages(mine, o->pages, own);
	/* The child's handle must not hand the parent's slots back to the
	 * parent's daemon, nor write into them. */
	for (unsigned i = 0; i < n; i++)
		hak_free(client, parent[i].p, parent[i].size);
	for (unsigned i = 0; i < FORK_CHILD_CHURN; i++)
		alloc_each_class(own);
	write_byte(wr, '1');
	read_byte(rd, '2');
	check_held(mine, m, own);
	print_stats("child");
	for (unsigned i = 0; i < m; i++)
		free_checked(mine[i].p, mine[i].size);
	exit(0);
}

static void wait_child(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid)
		fail("waitpid: %s", strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail("fork child failed (status %#x)", status);
}

static int cmd_fork(const struct opts *o)
{
	static struct held h[HOLD_MAX], more[HOLD_MAX];
	/* Not our first pattern: a slot we still hold handed to us again
	 * would be overwritten visibly. */
	unsigned char own2 = (unsigned char)(o->pattern ^ 0x0f);
	int p2c[2], c2p[2];
	unsigned n, m;
	pid_t pid;

	connect_client(o);
	n = hold_pages(h, o->pages, o->pattern);
	if (pipe(p2c) < 0 || pipe(c2p) < 0)
		fail("pipe: %s", strerror(errno));
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		fail("fork: %s", strerror(errno));
	if (pid == 0) {
		close(p2c[1]);
		close(c2p[0]);
		fork_child(o, h, n, p2c[0], c2p[1]);
	}
	/* Our copies of the child's ends closed: a dead child reads as EOF. */
	close(p2c[0]);
	close(c2p[1]);
	read_byte(c2p[0], '1');
	/* The child has allocated, written and freed: nothing of ours moved,
	 * and what we get now is zeroed (not the child's, not our own). */
	check_held(h, n, o->pattern);
	m = hold_pages(more, o->pages, own2);
	write_byte(p2c[1], '2');
	wait_child(pid);
	check_held(h, n, o->pattern);
	check_held(more, m, own2);
	for (unsigned i = 0; i < n; i++)
		free_checked(h[i].p, h[i].size);
	for (unsigned i = 0; i < m; i++)
		free_checked(more[i].p, more[i].size);
	alloc_each_class(o->pattern);
	print_stats("parent");
	say("ok");
	hak_client_unref(client);
	return 0;
}

/* ------------------------------------------------------------- hotpath */

struct thread_usage {
	uint64_t faults, vcsw;
};

/* This thread only: the library's own thread may block and fault as it
 * likes, the caller's must not (DESIGN rule 4). */
static struct thread_usage thread_usage(void)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	return (struct thread_usage){(uint64_t)ru.ru_minflt + (uint64_t)ru.ru_majflt,
				     (uint64_t)ru.ru_nvcsw};
}

static void hotpath_round(size_t size)
{
	static void *p[HOTPATH_BATCH];

	for (unsigned i = 0; i < HOTPATH_BATCH; i++) {
		int r = hak_alloc(client, size, 0, &p[i]);

		if (r < 0)
			fail("hak_alloc: %s", strerror(-r));
		((volatile char *)p[i])[0] = 1;
	}
	for (unsigned i = 0; i < HOTPATH_BATCH; i++)
		free_checked(p[i], size);
}

/* Steady-state allocate/touch/free of the smallest class: reports the
 * calling thread's page faults, voluntary context switches (a blocking
 * call) and doorbells per allocation. */
static int cmd_hotpath(const struct opts *o)
{
	struct hak_client_stats st0, st1;
	struct thread_usage u0, u1;
	uint64_t allocs = (uint64_t)o->rounds * HOTPATH_BATCH;

	connect_client(o);
	for (unsigned r = 0; r < HOTPATH_WARMUP_ROUNDS; r++)
		hotpath_round(classes[0]);
	st0 = stats();
	u0 = thread_usage();
	for (unsigned r = 0; r < o->rounds; r++)
		hotpath_round(classes[0]);
	u1 = thread_usage();
	st1 = stats();
	print_stats(NULL);
	say("hotpath allocs=%llu faults=%llu vcsw=%llu doorbells=%llu ready=%llu inline=%llu "
	    "mmap=%llu",
	    (unsigned long long)allocs, (unsigned long long)(u1.faults - u0.faults),
	    (unsigned long long)(u1.vcsw - u0.vcsw),
	    (unsigned long long)(st1.doorbells - st0.doorbells),
	    (unsigned long long)(st1.alloc_ready - st0.alloc_ready),
	    (unsigned long long)(st1.alloc_inline_zero - st0.alloc_inline_zero),
	    (unsigned long long)(st1.alloc_mmap - st0.alloc_mmap));
	say("ok");
	hak_client_unref(client);
	return 0;
}

/* ------------------------------------------------------------- options */

static void usage(FILE *f)
{
	fprintf(f, "Usage: hak-testclient COMMAND --socket PATH [options]\n"
		   "  churn    allocate, check, fill, free in rounds  (--rounds --seconds --mode\n"
		   "           zero|dirty|mixed --batch N,N,.. --expect-recycle --sync)\n"
		   "  hold     hold --pages per class until 'exit' on stdin ('check' verifies)\n"
		   "  restart  survive a daemon restart, stepped by 'go' on stdin\n"
		   "  threads  --threads T allocate/verify/free --rounds times each\n"
		   "  fork     allocate in a fork child and in the parent, check isolation\n"
		   "  hotpath  --rounds of steady-state alloc/free: faults, blocking, doorbells\n"
		   "  --pattern BYTE  this process's fill byte (1..255)\n");
}

static unsigned parse_mode(const char *s)
{
	if (strcmp(s, "zero") == 0)
		return MODE_ZERO;
	if (strcmp(s, "dirty") == 0)
		return MODE_DIRTY;
	if (strcmp(s, "mixed") == 0)
		return MODE_MIXED;
	fprintf(stderr, PROG ": bad mode '%s'\n", s);
	exit(2);
}

/* --batch 900,60,4: slots per class, smallest class first. */
static void parse_batch(const char *s, struct opts *o)
{
	char buf[128], *save = NULL, *tok;
	unsigned c = 0;

	snprintf(buf, sizeof(buf), "%s", s);
	for (tok = strtok_r(buf, ",", &save); tok && c < MAX_CLASSES;
	     tok = strtok_r(NULL, ",", &save))
		o->batch[c++] = tu_parse_uint(PROG, "--batch", tok, 0, UINT_MAX);
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, 's'},
		{"pattern", required_argument, NULL, 'p'},
		{"rounds", required_argument, NULL, 'r'},
		{"seconds", required_argument, NULL, 't'},
		{"threads", required_argument, NULL, 'T'},
		{"pages", required_argument, NULL, 'n'},
		{"mode", required_argument, NULL, 'm'},
		{"batch", required_argument, NULL, 'b'},
		{"sync", no_argument, NULL, 'S'},
		{"expect-recycle", no_argument, NULL, 'R'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	int c;

	*o = (struct opts){.pattern = 0xa5, .rounds = 10, .seconds = 10, .threads = 4, .pages = 4};
	while ((c = getopt_long(argc, argv, "s:p:r:t:T:n:m:b:SRh", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			o->socket = optarg;
			break;
		case 'p':
			o->pattern =
				tu_parse_uint(PROG, "--pattern", optarg, PATTERN_MIN, PATTERN_MAX);
			break;
		case 'r':
			o->rounds = tu_parse_uint(PROG, "--rounds", optarg, 0, UINT_MAX);
			break;
		case 't':
			o->seconds = tu_parse_uint(PROG, "--seconds", optarg, 0, UINT_MAX);
			break;
		case 'T':
			o->threads = tu_parse_uint(PROG, "--threads", optarg, 0, UINT_MAX);
			break;
		case 'n':
			o->pages = tu_parse_uint(PROG, "--pages", optarg, 0, UINT_MAX);
			break;
		case 'm':
			o->flags_mode = parse_mode(optarg);
			break;
		case 'b':
			parse_batch(optarg, o);
			break;
		case 'S':
			o->sync = true;
			break;
		case 'R':
			o->expect_recycle = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(const struct opts *o);
	} cmds[] = {
		{"churn", cmd_churn},	  {"hold", cmd_hold}, {"restart", cmd_restart},
		{"threads", cmd_threads}, {"fork", cmd_fork}, {"hotpath", cmd_hotpath},
	};
	struct opts o;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	parse_opts(argc - 1, argv + 1, &o);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[1], cmds[i].name) == 0)
			return cmds[i].fn(&o);
	fprintf(stderr, PROG ": unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
