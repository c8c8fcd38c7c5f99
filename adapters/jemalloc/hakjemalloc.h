/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libhakjemalloc: jemalloc's extents from libhakclient.
 *
 * Installs extent hooks on every jemalloc arena so that the extents jemalloc
 * maps for itself come from hakzerod's pool (or a local pool): pages that
 * are already mapped and, when jemalloc needs zeroes, already zeroed.  Used
 * with no code change through LD_PRELOAD (see libhakjemalloc(3)), or linked:
 * the hooks are installed when the library is loaded.
 *
 * Every function returns 0 or a non-negative value on success and a negative
 * errno value on failure; none sets errno.
 */
#ifndef HAKJEMALLOC_H
#define HAKJEMALLOC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct hak_jemalloc_stats {
	uint64_t extents_pool;	    /* extents served from pool slots */
	uint64_t extents_zeroed;    /* of those, handed over zero-filled (calloc skips memset) */
	uint64_t bytes_asked;	    /* bytes those extents asked for */
	uint64_t bytes_slots;	    /* bytes of the slots that served them: waste = slots - asked */
	uint64_t extents_forwarded; /* served by jemalloc's own hooks (too large, pool dry) */
	uint64_t grows_declined;    /* retained-growth requests declined: extents come one by one */
	uint64_t slots_returned;    /* slots handed back to the pool, every piece freed */
	uint64_t errors;	    /* frees of pool memory the adapter never handed out */
	uint64_t pool;		    /* pool in use now: 0 none, 1 hakzerod's, 2 local */
};

int hak_jemalloc_install(void);
int hak_jemalloc_get_stats(struct hak_jemalloc_stats *st, size_t st_size);

#ifdef __cplusplus
}
#endif

#endif
