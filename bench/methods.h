/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The ways of getting zero-filled memory that `page` and `latency` compare.
 * Each one hands out memory that reads as zero (except hak-dirty, whose
 * caller accepts its own freed slots as they are), one slot of the class
 * size at a time, and takes it back.
 */
#ifndef HAKBENCH_METHODS_H
#define HAKBENCH_METHODS_H

#include <stdbool.h>
#include <stddef.h>

#include "hakclient.h"

enum method_id {
	M_HAK,
	M_HAK_DIRTY,
	M_MMAP,
	M_MMAP_POPULATE,
	M_RETAIN_DONTNEED,
	M_RETAIN_FREE,
	M_RETAIN_MEMSET,
	M_CALLOC,
	M_NR,
};

/* Most slots one thread holds at once. */
#define BATCH_MAX 4096u

/* One allocating thread's state for one method and one size. */
struct mstate {
	struct hak_client *client;
	size_t size;
	unsigned nkept;
	void *kept[BATCH_MAX]; /* retain-*: freed slots kept mapped */
};

struct method {
	const char *name;
	const char *what; /* one line for the legend */
	bool hak;	  /* through libhakclient: its counters and the daemon's CPU count */
	void *(*take)(struct mstate *s);
	void (*give)(struct mstate *s, void *p);
};

extern const struct method methods[M_NR];

/* Returns what a retain-* method kept; the state can then take a new size. */
void mstate_reset(struct mstate *s);
/* "hak", "mmap", ... -> id, or -1. */
int method_parse(const char *name);

#endif
