/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libhakjemalloc internals.
 *
 *   client.c  the libhakclient handle, made on first need; install; stats
 *   hooks.c   the extent hooks: pool slots, or jemalloc's own hooks
 *   pieces.c  per slot, the bytes jemalloc still holds of it
 *   threads.c pthread_create: a new thread's arena gets the hooks
 *
 * Nothing here calls malloc: the hooks run inside jemalloc, and memory of
 * our own comes from mmap.
 */
#ifndef HAKJEMALLOC_ADAPTER_H
#define HAKJEMALLOC_ADAPTER_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include <jemalloc/jemalloc.h>

#include "hakclient.h"
#include "hakjemalloc.h"

#define HJ_EXPORT __attribute__((visibility("default")))
#define HJ_PAGE 4096u
/* Bytes jemalloc takes through its own hooks before the handle and its
 * pool are made (hooks.c). */
#define HJ_POOL_AFTER (4u << 20)

enum hj_counter {
	HJ_EXTENTS_POOL,
	HJ_EXTENTS_ZEROED,
	HJ_BYTES_ASKED,
	HJ_BYTES_SLOTS,
	HJ_EXTENTS_FORWARDED,
	HJ_GROWS_DECLINED,
	HJ_SLOTS_RETURNED,
	HJ_ERRORS,
	HJ_NCOUNTERS,
};

void hj_count(enum hj_counter k, uint64_t n);

/* ---- client.c ---- */

/* The handle once it is ready, else NULL (not yet made, being made by
 * another thread or by this one further up the stack, or failed). */
struct hak_client *hj_client(void);
/* The handle if it is ready, never making it: for the hooks that may run
 * with jemalloc's locks held (only pool memory the handle handed out can
 * be passed to them, and then it is ready). */
struct hak_client *hj_client_ready(void);
/* Whether the handle is still to be made: nobody has tried yet. */
bool hj_client_untried(void);
/* Whether the handle (NULL: none) has a pool, hakzerod's or a local one, now. */
bool hj_pool_live(struct hak_client *c);
/* The hooks an arena had before ours: jemalloc's own. */
extent_hooks_t *hj_orig(unsigned arena_ind);
/* Whether hooks are jemalloc's own default ones (not another library's). */
bool hj_orig_is_jemallocs(const extent_hooks_t *h);

/* Hooks the calling thread's arena, choosing it now (threads.c). */
void hj_hook_thread_arena(void);

/* ---- hooks.c ---- */

extern extent_hooks_t hj_hooks;

/* ---- pieces.c ---- */

/* A slot was handed to jemalloc for an extent of size bytes.  false when
 * the table is full (the slot must not be used). */
bool hj_pieces_set(const void *slot, uint64_t size);
/* size bytes of a slot went back.  1 when none is left (the slot is free),
 * 0 when some are, -ENOENT when the slot was not handed out by us. */
int hj_pieces_put(const void *slot, uint64_t size);

#endif
