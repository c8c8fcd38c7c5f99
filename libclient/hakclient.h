/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libhakclient: pre-zeroed, pre-mapped pages from hakzerod.
 *
 * An allocator asks for a run of pages of a given size; the library hands out
 * a slot of the smallest size class that fits from a shared-memory ring that
 * hakzerod keeps filled with zeroed pages, with no system call, no page fault
 * and no zeroing in the calling thread.  When the ring is empty, or there is
 * no daemon, it falls back (own freed slot, zeroed inline if need be, then a
 * plain anonymous mmap) and counts each.
 *
 * Every function returns 0 or a non-negative value on success and a negative
 * errno value on failure; none sets errno.  A handle may be used from many
 * threads at once.  See libhakclient(3).
 */
#ifndef HAKCLIENT_H
#define HAKCLIENT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct hak_client;

/* hak_alloc() flags */
#define HAK_ALLOC_DIRTY_OK (1u << 0)  /* caller does not need zero-filled memory */
#define HAK_ALLOC_POOL_ONLY (1u << 1) /* a pool slot or -EAGAIN/-E2BIG, never mmap (since 0.2) */

/* hak_client_set_mode() modes (since 0.2) */
#define HAK_MODE_SHARED 0 /* hakzerod's pool; mmap fallbacks while there is none */
#define HAK_MODE_AUTO 1	  /* hakzerod's pool when it answers, a local pool meanwhile */
#define HAK_MODE_LOCAL 2  /* a private pool the library keeps itself, no daemon */

/* hak_alloc() positive return bits */
#define HAK_ALLOC_ZEROED (1 << 0) /* the memory reads as zero */

/* Log function: priority is a syslog(3) level (LOG_ERR ... LOG_DEBUG). */
typedef void (*hak_log_fn)(void *data, int priority, const char *file, int line, const char *fn,
			   const char *format, va_list args);

struct hak_client_stats {
	uint64_t alloc_ready;	    /* zeroed slots taken from the ready ring */
	uint64_t alloc_dirty;	    /* own freed slots handed out unzeroed (HAK_ALLOC_DIRTY_OK) */
	uint64_t alloc_inline_zero; /* own freed slots zeroed in the calling thread */
	uint64_t alloc_mmap;	    /* fallbacks to anonymous mmap (no slot available) */
	uint64_t alloc_large;	    /* larger than the largest class: anonymous mmap */
	uint64_t free_pool;	    /* frees of pool slots */
	uint64_t free_mmap;	    /* frees of mmap fallbacks (munmap) */
	uint64_t returned;	    /* slots handed back to the daemon for zeroing */
	uint64_t doorbells;	    /* doorbell (eventfd) writes */
	uint64_t reconnects;	    /* successful connections after the first */
	uint64_t pool_bytes;	    /* size of the current pool, 0 when not connected */
	uint64_t connected;	    /* 1 when a daemon pool is in use */
	/* since 0.2 (a caller built against 0.1 passes a smaller st_size) */
	uint64_t local;	       /* 1 when a local pool is in use */
	uint64_t local_pools;  /* local pools made so far (one per switch to local) */
	uint64_t local_zeroed; /* slots the library zeroed in the background (local mode) */
};

int hak_client_new(struct hak_client **out);
struct hak_client *hak_client_ref(struct hak_client *c);
struct hak_client *hak_client_unref(struct hak_client *c);

int hak_client_set_log_fn(struct hak_client *c, hak_log_fn fn, void *data);
int hak_client_set_log_priority(struct hak_client *c, int priority);
int hak_client_set_socket(struct hak_client *c, const char *path);
int hak_client_set_pool_size(struct hak_client *c, size_t bytes);

int hak_client_connect(struct hak_client *c);
int hak_client_is_connected(struct hak_client *c);

int hak_alloc(struct hak_client *c, size_t size, unsigned flags, void **out);
int hak_free(struct hak_client *c, void *ptr, size_t size);
int hak_client_class_size(struct hak_client *c, size_t size, size_t *class_size);

int hak_client_get_stats(struct hak_client *c, struct hak_client_stats *st, size_t st_size);

/* since 0.2 */
int hak_client_set_mode(struct hak_client *c, int mode);
int hak_slot_of(struct hak_client *c, const void *ptr, void **base, size_t *size);

#ifdef __cplusplus
}
#endif

#endif
