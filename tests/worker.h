/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hak-worker's parts: see worker.c. */
#ifndef HAK_TEST_WORKER_H
#define HAK_TEST_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hakclient.h"

#define PAGE 4096u
#define MAX_CLASSES 8
#define MAX_THREADS 8
#define WINDOW_MAX 64
#define REACT_MS 5000
#define REASON_MAX 256

struct opts {
	const char *socket;
	const char *state;
	const char *mode;
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

/* ---- worker.c: output, the library, checking ---- */

__attribute__((format(printf, 1, 2))) void say(const char *fmt, ...);
__attribute__((format(printf, 1, 2), noreturn)) void fail(const char *fmt, ...);
uint64_t now_us(void);
uint64_t now_ms(void);
void sleep_us(unsigned us);
/* Spreads a small seed over all bits. */
uint64_t mix_seed(uint64_t x);
uint64_t xorshift(uint64_t *s);

struct hak_client_stats stats(void);
void print_stats(const char *tag);
/* Returns hak_client_connect's result; the handle works either way. */
int open_client(const struct opts *o);
void connect_or_fail(const struct opts *o);

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
void *alloc_or_fail(size_t size, unsigned flags, int *how);
void free_or_fail(void *p, size_t size);
/* One command line from stdin; "" at end of input. */
void read_cmd(char *line, size_t size);

/* A held page still holds what we wrote (its first word). */
void check_held(const struct held *h, const char *what);
/* n pages, one class after the other, checked, filled with our words. */
unsigned hold_n(struct held *h, unsigned n, uint64_t tag, uint64_t *rng);
/* Every word of every held page still carries our tag. */
void check_held_all(const struct held *h, unsigned n, uint64_t tag, const char *what);

/* ---- worker-scan.c ---- */

int cmd_stale(const struct opts *o);
int cmd_guard(const struct opts *o);
int cmd_cycles(const struct opts *o);
int cmd_hold(const struct opts *o);

/* ---- worker-crash.c ---- */

int cmd_victim(const struct opts *o);
int cmd_holder(const struct opts *o);
int cmd_fork(const struct opts *o);

#endif
