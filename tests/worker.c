/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hak-worker: a well-behaved libhakclient client for the real-daemon tests
 * and the soak.  One scenario per run:
 *
 *   guard    allocates, checks and frees on command, proving the daemon
 *            still serves (alloc_ready grows) while others attack it
 *   stale    N handoffs with random fill patterns; every page handed out
 *            as zeroed must read zero, every dirty one only our own bytes
 *   victim   allocates and frees in tight loops, publishing in a file
 *            whether it is inside hak_alloc or hak_free, to be SIGKILLed
 *   holder   threads that stamp every page they hold and check the stamp
 *            before freeing it (no page has two holders), through daemon
 *            deaths and restarts
 *   fork     fork() isolation in shared mode
 *   cycles   hak_client_new / connect / alloc / free / unref, N times
 *   hold     connects (reporting a refusal), holds pages, answers commands
 *
 * Output, one fact a line on stdout: progress lines, "stats k=v...",
 * "ok ..." (exit 0) or "fail WHY" (exit 1).  Commands come on stdin.
 *
 * This file: output, the library, checking pages, the command line; the
 * scenarios are in worker-scan.c and worker-crash.c.
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
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "worker.h"

#define PROG "hak-worker"

struct hak_client *client;
size_t classes[MAX_CLASSES];
unsigned nclasses;
char refusal[REASON_MAX];

/* ---------------------------------------------------------------- output */

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

void say(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&out_lock);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	pthread_mutex_unlock(&out_lock);
}

void fail(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&out_lock);
	fputs("fail ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	_exit(1);
}

uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t now_ms(void)
{
	return now_us() / 1000;
}

void sleep_us(unsigned us)
{
	struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Spreads a small seed over all bits (splitmix64's finaliser): xorshift
 * from seeds 1, 2, 3 would otherwise run in lockstep. */
uint64_t mix_seed(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return (x ^ (x >> 31)) | 1;
}

uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* ------------------------------------------------------------- library */

/* Keeps the daemon's refusal (the library logs it) for the driver. */
static void log_fn(void *data, int priority, const char *file, int line, const char *fn,
		   const char *format, va_list args) __attribute__((format(printf, 6, 0)));

static void log_fn(void *data, int priority, const char *file, int line, const char *fn,
		   const char *format, va_list args)
{
	char msg[REASON_MAX];

	vsnprintf(msg, sizeof(msg), format, args);
	if (strstr(msg, "refused"))
		snprintf(refusal, sizeof(refusal), "%s", msg);
	fprintf(stderr, "hak-worker[%d] libhakclient: %s\n", (int)getpid(), msg);
}

struct hak_client_stats stats(void)
{
	struct hak_client_stats st;
	int r = hak_client_get_stats(client, &st, sizeof(st));

	if (r < 0)
		fail("hak_client_get_stats: %s", strerror(-r));
	return st;
}

void print_stats(const char *tag)
{
	struct hak_client_stats st = stats();

	say("stats %s alloc_ready=%llu alloc_dirty=%llu alloc_inline_zero=%llu alloc_mmap=%llu "
	    "alloc_large=%llu free_pool=%llu free_mmap=%llu returned=%llu doorbells=%llu "
	    "reconnects=%llu pool_bytes=%llu connected=%llu",
	    tag, (unsigned long long)st.alloc_ready, (unsigned long long)st.alloc_dirty,
	    (unsigned long long)st.alloc_inline_zero, (unsigned long long)st.alloc_mmap,
	    (unsigned long long)st.alloc_large, (unsigned long long)st.free_pool,
	    (unsigned long long)st.free_mmap, (unsigned long long)st.returned,
	    (unsigned long long)st.doorbells, (unsigned long long)st.reconnects,
	    (unsigned long long)st.pool_bytes, (unsigned long long)st.connected);
}

/* The classes, from the library: the class of 1 byte, then of one byte
 * more than each class, until E2BIG. */
static void learn_classes(void)
{
	size_t want = 1, cls;

	nclasses = 0;
	while (nclasses < MAX_CLASSES && hak_client_class_size(client, want, &cls) == 0) {
		classes[nclasses++] = cls;
		want = cls + 1;
	}
}

/* Returns hak_client_connect's result; the handle works either way. */
int open_client(const struct opts *o)
{
	int r = hak_client_new(&client);

	if (r < 0)
		fail("hak_client_new: %s", strerror(-r));
	hak_client_set_log_fn(client, log_fn, NULL);
	hak_client_set_log_priority(client, LOG_INFO);
	if (o->socket && (r = hak_client_set_socket(client, o->socket)) < 0)
		fail("hak_client_set_socket: %s", strerror(-r));
	if (o->pool && (r = hak_client_set_pool_size(client, o->pool)) < 0)
		fail("hak_client_set_pool_size: %s", strerror(-r));
	r = hak_client_connect(client);
	learn_classes();
	return r;
}

void connect_or_fail(const struct opts *o)
{
	int r = open_client(o);

	if (r < 0)
		fail("hak_client_connect: %s (%s)", strerror(-r), refusal);
	if (nclasses == 0)
		fail("connected but no size classes");
}

/* ---------------------------------------------------------- checking */

size_t page_round(size_t n)
{
	return (n + PAGE - 1) / PAGE * PAGE;
}

/* Offset of the first non-zero 64-bit word, or -1. */
static long first_nonzero(const void *p, size_t len)
{
	const uint64_t *w = p;
	size_t n = len / sizeof(*w);

	for (size_t i = 0; i < n; i += 8) {
		uint64_t any = 0;

		for (size_t k = i; k < i + 8 && k < n; k++)
			any |= w[k];
		if (!any)
			continue;
		for (size_t k = i; k < i + 8 && k < n; k++)
			if (w[k])
				return (long)(k * sizeof(*w));
	}
	return -1;
}

void fail_nonzero(const char *what, const void *p, size_t size, long off)
{
	uint64_t w = *(const uint64_t *)((const char *)p + off);

	fail("%s of %zu bytes at %p: word at offset %ld is %#llx (tag %#llx)", what, size, p, off,
	     (unsigned long long)w, (unsigned long long)(w >> TAG_SHIFT));
}

void check_zero(const char *what, const void *p, size_t size)
{
	long off = first_nonzero(p, page_round(size));

	if (off >= 0)
		fail_nonzero(what, p, size, off);
}

/* A dirty page may hold only words of ours (or zero). */
void check_own(const void *p, size_t size, uint64_t tag)
{
	const uint64_t *w = p;

	for (size_t i = 0; i < page_round(size) / sizeof(*w); i++)
		if (w[i] && (w[i] >> TAG_SHIFT) != tag)
			fail_nonzero("dirty page", p, size, (long)(i * sizeof(*w)));
}

/* Random words, each tagged; returns the first, which fill_check uses. */
void fill_random(void *p, size_t size, uint64_t tag, uint64_t *rng)
{
	uint64_t *w = p, t = tag << TAG_SHIFT, mask = (1ull << TAG_SHIFT) - 1;

	for (size_t i = 0; i < page_round(size) / sizeof(*w); i++)
		w[i] = t | (xorshift(rng) & mask);
}

void fill_stamp(void *p, size_t size, uint64_t stamp)
{
	uint64_t *w = p;

	for (size_t i = 0; i < page_round(size) / sizeof(*w); i++)
		w[i] = stamp;
}

void check_stamp(const void *p, size_t size, uint64_t stamp, const char *what)
{
	const uint64_t *w = p;

	for (size_t i = 0; i < page_round(size) / sizeof(*w); i++)
		if (w[i] != stamp)
			fail("%s: %p+%zu holds %#llx, not our stamp %#llx", what, p, i * sizeof(*w),
			     (unsigned long long)w[i], (unsigned long long)stamp);
}

/* An allocation answered r: zeroed when it says so, and always when we
 * did not allow dirty memory; otherwise only our own words. */
void check_fresh(const void *p, size_t size, unsigned flags, int r, uint64_t tag)
{
	if (!(flags & HAK_ALLOC_DIRTY_OK) && !(r & HAK_ALLOC_ZEROED))
		fail("hak_alloc(%zu, 0) answered %d: not zeroed", size, r);
	if (r & HAK_ALLOC_ZEROED)
		check_zero("page handed out as zeroed", p, size);
	else
		check_own(p, size, tag);
}

void *alloc_or_fail(size_t size, unsigned flags, int *how)
{
	void *p = NULL;
	int r = hak_alloc(client, size, flags, &p);

	if (r < 0 || !p)
		fail("hak_alloc(%zu, %#x): %s", size, flags, r < 0 ? strerror(-r) : "NULL");
	*how = r;
	return p;
}

void free_or_fail(void *p, size_t size)
{
	int r = hak_free(client, p, size);

	if (r < 0)
		fail("hak_free(%p, %zu): %s", p, size, strerror(-r));
}

/* Reads one command word from stdin; "" at end of input. */
void read_cmd(char *line, size_t size)
{
	if (!fgets(line, (int)size, stdin)) {
		line[0] = '\0';
		return;
	}
	line[strcspn(line, "\n")] = '\0';
}

/* ---------------------------------------------------------- held pages */

/* A page we filled still holds what we wrote (its first word, and it is
 * not zero: nobody zeroed it under us). */
void check_held(const struct held *h, const char *what)
{
	if (*(const uint64_t *)h->p != h->first)
		fail("%s: page %p of %zu bytes changed under us: %#llx, wrote %#llx", what, h->p,
		     h->size, (unsigned long long)*(const uint64_t *)h->p,
		     (unsigned long long)h->first);
}

unsigned hold_n(struct held *h, unsigned n, uint64_t tag, uint64_t *rng)
{
	for (unsigned i = 0; i < n; i++) {
		int how;

		h[i].size = classes[i % nclasses];
		h[i].p = alloc_or_fail(h[i].size, 0, &how);
		check_fresh(h[i].p, h[i].size, 0, how, tag);
		fill_random(h[i].p, h[i].size, tag, rng);
		h[i].first = *(uint64_t *)h[i].p;
	}
	return n;
}

/* Every word of a held page still carries our tag. */
void check_held_all(const struct held *h, unsigned n, uint64_t tag, const char *what)
{
	for (unsigned i = 0; i < n; i++) {
		const uint64_t *w = h[i].p;

		check_held(&h[i], what);
		for (size_t k = 0; k < page_round(h[i].size) / sizeof(*w); k++)
			if ((w[k] >> TAG_SHIFT) != tag)
				fail("%s: %p+%zu holds %#llx, not tag %#llx", what, h[i].p,
				     k * sizeof(*w), (unsigned long long)w[k],
				     (unsigned long long)tag);
	}
}

/* ------------------------------------------------------------ options */

static void usage(FILE *f)
{
	fprintf(f, "Usage: hak-worker COMMAND --socket PATH [options]\n"
		   "  guard | stale | victim | holder | fork | cycles | hold\n"
		   "  --count N --seed N --mode zero|dirty|mixed --threads N --pages N\n"
		   "  --rounds N --seconds N --window N --pool BYTES --progress N\n"
		   "  --pattern N --state FILE\n");
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, 's'},
		{"count", required_argument, NULL, 'n'},
		{"seed", required_argument, NULL, 'r'},
		{"mode", required_argument, NULL, 'm'},
		{"threads", required_argument, NULL, 'T'},
		{"pages", required_argument, NULL, 'p'},
		{"rounds", required_argument, NULL, 'R'},
		{"seconds", required_argument, NULL, 't'},
		{"window", required_argument, NULL, 'w'},
		{"pool", required_argument, NULL, 'P'},
		{"progress", required_argument, NULL, 'g'},
		{"pattern", required_argument, NULL, 'x'},
		{"state", required_argument, NULL, 'S'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	int c;

	*o = (struct opts){.mode = "zero", .seconds = 60, .seed = 1, .count = 1000};
	while ((c = getopt_long(argc, argv, "s:n:r:m:T:p:R:t:w:P:g:x:S:h", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			o->socket = optarg;
			break;
		case 'n':
			o->count = tu_parse_u64(PROG, "--count", optarg, 0, UINT64_MAX);
			break;
		case 'r':
			o->seed = tu_parse_u64(PROG, "--seed", optarg, 0, UINT64_MAX);
			break;
		case 'm':
			o->mode = optarg;
			break;
		case 'T':
			o->threads = tu_parse_uint(PROG, "--threads", optarg, 0, UINT_MAX);
			break;
		case 'p':
			o->pages = tu_parse_uint(PROG, "--pages", optarg, 0, UINT_MAX);
			break;
		case 'R':
			o->rounds = tu_parse_uint(PROG, "--rounds", optarg, 0, UINT_MAX);
			break;
		case 't':
			o->seconds = tu_parse_uint(PROG, "--seconds", optarg, 0, UINT_MAX);
			break;
		case 'w':
			o->window = tu_parse_uint(PROG, "--window", optarg, 0, UINT_MAX);
			break;
		case 'P':
			o->pool = tu_parse_size(PROG, "--pool", optarg);
			break;
		case 'g':
			o->progress = tu_parse_u64(PROG, "--progress", optarg, 0, UINT64_MAX);
			break;
		case 'x':
			o->pattern = tu_parse_uint(PROG, "--pattern", optarg, 0, TAG_MASK);
			break;
		case 'S':
			o->state = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (o->window > WINDOW_MAX)
		o->window = WINDOW_MAX;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(const struct opts *o);
	} cmds[] = {
		{"guard", cmd_guard},	{"stale", cmd_stale}, {"victim", cmd_victim},
		{"holder", cmd_holder}, {"fork", cmd_fork},   {"cycles", cmd_cycles},
		{"hold", cmd_hold},
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
