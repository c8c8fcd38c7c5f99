/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hak-client's common ground: one fact a line on stdout, the clock, and
 * the library with every error a failure (see client.h).
 */
#include <errno.h>
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

#include "client.h"
#include "testutil.h"

struct hak_client *client;
size_t classes[MAX_CLASSES];
unsigned nclasses;
char refusal[REASON_MAX];

/* ----------------------------------------------------------------- clock */

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
	fprintf(stderr, PROG "[%d] libhakclient: %s\n", (int)getpid(), msg);
}

struct hak_client_stats stats(void)
{
	struct hak_client_stats st;
	int r = hak_client_get_stats(client, &st, sizeof(st));

	if (r < 0)
		tu_fail("hak_client_get_stats: %s", strerror(-r));
	return st;
}

void print_stats(const char *tag)
{
	struct hak_client_stats st = stats();

	tu_say("stats%s%s alloc_ready=%llu alloc_dirty=%llu alloc_inline_zero=%llu alloc_mmap=%llu "
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
		tu_fail("hak_client_new: %s", strerror(-r));
	hak_client_set_log_fn(client, log_fn, NULL);
	hak_client_set_log_priority(client, LOG_INFO);
	if (o->socket && (r = hak_client_set_socket(client, o->socket)) < 0)
		tu_fail("hak_client_set_socket: %s", strerror(-r));
	if (o->pool && (r = hak_client_set_pool_size(client, o->pool)) < 0)
		tu_fail("hak_client_set_pool_size: %s", strerror(-r));
	r = hak_client_connect(client);
	learn_classes();
	return r;
}

void connect_or_fail(const struct opts *o)
{
	int r = open_client(o);

	if (r < 0)
		tu_fail("hak_client_connect: %s (%s)", strerror(-r), refusal);
	if (nclasses == 0)
		tu_fail("connected but no size classes");
}

void connect_checked(const struct opts *o)
{
	connect_or_fail(o);
	if (hak_client_is_connected(client) != 1)
		tu_fail("hak_client_connect succeeded but not connected");
}

void *alloc_or_fail(size_t size, unsigned flags, int *how)
{
	void *p = NULL;
	int r = hak_alloc(client, size, flags, &p);

	if (r < 0 || !p)
		tu_fail("hak_alloc(%zu, %#x): %s", size, flags, r < 0 ? strerror(-r) : "NULL");
	*how = r;
	return p;
}

void free_or_fail(void *p, size_t size)
{
	int r = hak_free(client, p, size);

	if (r < 0)
		tu_fail("hak_free(%p, %zu): %s", p, size, strerror(-r));
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

/* Waits for the driver's next word on stdin; EOF means the driver died. */
void wait_word(const char *word)
{
	char line[64];

	if (!fgets(line, sizeof(line), stdin))
		tu_fail("stdin closed while waiting for '%s'", word);
	line[strcspn(line, "\n")] = '\0';
	if (strcmp(line, word) != 0)
		tu_fail("expected '%s' on stdin, got '%s'", word, line);
}

unsigned mode_flags(enum mode mode, unsigned i)
{
	if (mode == MODE_DIRTY)
		return HAK_ALLOC_DIRTY_OK;
	if (mode == MODE_MIXED)
		return (i & 1) ? HAK_ALLOC_DIRTY_OK : 0;
	return 0;
}

unsigned char pattern_byte(const struct opts *o)
{
	if (o->pattern < PATTERN_MIN || o->pattern > PATTERN_MAX) {
		fprintf(stderr, PROG ": --pattern: %u is not a byte from %d to %d\n", o->pattern,
			PATTERN_MIN, PATTERN_MAX);
		exit(TU_EXIT_USAGE);
	}
	return (unsigned char)o->pattern;
}
