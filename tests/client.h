/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hak-client's parts: one libhakclient scenario per run (see client.c).
 *
 *   client.c          the command table, the options, main
 *   client-lib.c      output, clock, the library: connect, stats, alloc/free
 *   client-check.c    what a page must hold: zero, our tagged words, our byte
 *   client-scan.c     stale, guard, cycles, hold: pages checked under load
 *   client-crash.c    victim, holder, fork: crashes, daemon deaths, fork()
 *   client-churn.c    churn, threads, hotpath: the hot path in rounds
 *   client-restart.c  restart: a client through a daemon restart
 */
#ifndef HAK_TEST_CLIENT_H
#define HAK_TEST_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hakclient.h"
#include "testutil.h"

#define PROG "hak-client"

#define PAGE 4096u
#define MAX_CLASSES 8
#define MAX_THREADS 8
#define WINDOW_MAX 64
#define REACT_MS 5000
#define REASON_MAX 256
/* Pause while polling a state no fd or signal reports (is_connected). */
#define POLL_STEP_MS 10
/* Byte-pattern scenarios (churn, threads, restart): --pattern is a byte
 * that is not 0, so that it tells ours from zeroed. */
#define PATTERN_MIN 1
#define PATTERN_MAX 255

enum mode { MODE_ZERO, MODE_DIRTY, MODE_MIXED };

struct opts {
	const char *socket;
	const char *state;
	enum mode mode;
	unsigned pattern;
	unsigned threads;
	unsigned pages;
	unsigned rounds;
	unsigned seconds;
	unsigned window;
	uint64_t count;
	uint64_t seed;
	uint64_t pool;
	uint64_t progress;
	unsigned batch[MAX_CLASSES]; /* churn: slots per class per round, 0: default */
	bool sync;
	unsigned pause_after; /* churn: after this round, "paused" until "go" */
	bool expect_recycle;
};

/* Words we write carry a 16-bit tag of ours in the top bits, so that a
 * stray word says whose it is. */
#define TAG_SHIFT 48
#define TAG_MASK 0xffffull

struct held {
	void *p;
	size_t size;
	uint64_t first; /* the first word we wrote */
};

extern struct hak_client *client;
extern size_t classes[MAX_CLASSES];
extern unsigned nclasses;
extern char refusal[REASON_MAX];

/* ---- client-lib.c: the library (output: tu_say, tu_fail) ---- */

/* Clock: tu_now_ms, tu_sleep_ms (testutil.h); finer: */
void sleep_us(unsigned us);
/* Spreads a small seed over all bits. */
uint64_t mix_seed(uint64_t x);
uint64_t xorshift(uint64_t *s);

struct hak_client_stats stats(void);
/* "stats TAG k=v ..." (tag may be NULL). */
void print_stats(const char *tag);
/* Returns hak_client_connect's result; the handle works either way. */
int open_client(const struct opts *o);
void connect_or_fail(const struct opts *o);
/* connect_or_fail, and the library says it is connected. */
void connect_checked(const struct opts *o);

void *alloc_or_fail(size_t size, unsigned flags, int *how);
void free_or_fail(void *p, size_t size);
/* One command line from stdin; "" at end of input. */
void read_cmd(char *line, size_t size);
/* The driver's next line on stdin must be word; EOF means it died. */
void wait_word(const char *word);
/* HAK_ALLOC_DIRTY_OK or 0 for the i-th allocation in this mode. */
unsigned mode_flags(enum mode mode, unsigned i);
/* --pattern as a fill byte; a usage error (exit 2) when it is not one. */
unsigned char pattern_byte(const struct opts *o);

/* ---- client-check.c: tagged words ---- */

size_t page_round(size_t n);
void fail_nonzero(const char *what, const void *p, size_t size, long off);
void check_zero(const char *what, const void *p, size_t size);
/* A dirty page may hold only words of ours (or zero). */
void check_own(const void *p, size_t size, uint64_t tag);
void fill_random(void *p, size_t size, uint64_t tag, uint64_t *rng);
void fill_stamp(void *p, size_t size, uint64_t stamp);
void check_stamp(const void *p, size_t size, uint64_t stamp, const char *what);
/* An allocation answered r: zeroed when it says so, and always when we
 * did not allow dirty memory; otherwise only our own words. */
void check_fresh(const void *p, size_t size, unsigned flags, int r, uint64_t tag);

/* A held page still holds what we wrote (its first word). */
void check_held(const struct held *h, const char *what);
/* n pages, one class after the other, checked, filled with our words. */
unsigned hold_n(struct held *h, unsigned n, uint64_t tag, uint64_t *rng);
/* Every word of every held page still carries our tag. */
void check_held_all(const struct held *h, unsigned n, uint64_t tag, const char *what);

/* ---- client-check.c: a fill byte ---- */

/* Offset of the first byte that is neither 0 nor own (own 0: only zero
 * allowed), or -1. */
long find_foreign(const void *p, size_t len, unsigned char own);
/* check_fresh for a page filled with one byte. */
void check_fresh_byte(const void *p, size_t size, unsigned flags, int r, unsigned char own);
/* A page we filled still holds exactly our byte. */
void check_filled(const void *p, size_t len, unsigned char own, const char *what);
/* alloc_or_fail, then check_fresh_byte; *how (may be NULL) gets r. */
void *alloc_checked(size_t size, unsigned flags, unsigned char own, int *how);

/* ---- the scenarios ---- */

int cmd_stale(const struct opts *o);
int cmd_guard(const struct opts *o);
int cmd_cycles(const struct opts *o);
int cmd_hold(const struct opts *o);

int cmd_victim(const struct opts *o);
int cmd_holder(const struct opts *o);
int cmd_fork(const struct opts *o);

int cmd_churn(const struct opts *o);
int cmd_threads(const struct opts *o);
int cmd_hotpath(const struct opts *o);

int cmd_restart(const struct opts *o);

#endif
