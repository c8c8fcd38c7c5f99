/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Pool geometry: how a pool of some size is cut into size classes, and the
 * defaults both sides start from.  The daemon (its configuration) and local
 * mode (the library alone) cut pools the same way from here, so that both
 * modes hold the same memory for the same request.
 */
#ifndef HAK_GEOM_H
#define HAK_GEOM_H

#include <stdbool.h>
#include <stdint.h>

#include "hak_layout.h"

/* One size class: slots of size bytes, share percent of each pool. */
struct hak_class_spec {
	uint64_t size;
	unsigned share;
};

/* Pool size when neither the client nor the configuration names one. */
#define HAK_DEFAULT_POOL_SIZE (64ull << 20)
/* Ready ring watermarks, percent of a class's slots: a client rings below
 * LOW, the daemon queues up to HIGH. */
#define HAK_DEFAULT_READY_LOW_PCT 25
#define HAK_DEFAULT_READY_HIGH_PCT 75
#define HAK_DEFAULT_NCLASSES 6

/*
 * Elastic pools: a class does not keep its high watermark ready from the
 * start.  Its ready target starts at its share of HAK_POOL_INITIAL bytes
 * (split evenly between the classes, at least one slot) and grows by
 * HAK_READY_GROW each time the client drains the ring below the low level
 * that goes with the target, up to the high watermark; after an idle period
 * it shrinks back by the same factor.  The client populates only what is
 * queued, so a small program holds about this much, not the pool.
 */
#define HAK_POOL_INITIAL (2ull << 20)
#define HAK_READY_GROW 2u

/* The first ready target of a class of slot_size bytes, one of nclasses,
 * whose high watermark is high slots. */
uint32_t hak_geom_initial_target(uint64_t slot_size, unsigned nclasses, uint32_t high);
/* The low level that goes with a target: the client rings below it.  The
 * same proportion to the target as low to high, at least one slot. */
uint32_t hak_geom_target_low(uint32_t target, uint32_t low, uint32_t high);
/* The next target up (grow) or down (shrink), within [initial, high]. */
uint32_t hak_geom_target_step(uint32_t target, bool grow, uint32_t initial, uint32_t high);

/* The default classes (hakzerod.conf(5)): 4 KiB pages and 64 KiB runs for
 * small extents, 2 MiB, and 2 MiB + 4 KiB for what jemalloc asks for a 2 MiB
 * allocation (its size class plus one page of cache-oblivious offset);
 * without the last, such requests would find no class and fall back. */
extern const struct hak_class_spec hak_default_classes[HAK_DEFAULT_NCLASSES];

/*
 * Local mode keeps three private stacks of 4 bytes per slot for each class
 * in its own mapping: at most this many slots per class bounds them to
 * 12 MiB a class; a bigger local pool has that many slots per class and
 * its classes' shares are not met.
 */
#define HAK_LOCAL_MAX_SLOTS (1u << 20)
/* The daemon caps nothing here: its configuration check refuses classes of
 * more than HAK_MAX_SLOTS at pool_size_max and reports how many they got. */
#define HAK_GEOM_UNCAPPED UINT32_MAX

/* How classes are cut beyond their sizes and shares. */
struct hak_geom_params {
	unsigned ready_low_pct;
	uint32_t return_batch; /* most returns a client batches before ringing */
	uint32_t max_slots;    /* per class; more are not made */
};

/* pct percent of nslots, at least one slot when pct is not 0. */
uint32_t hak_geom_watermark(unsigned pct, uint32_t nslots);

/* Fills g[0..n) for a pool of pool_bytes (at most 2^40: no overflow) cut
 * into the n classes of cls.  Returns n. */
unsigned hak_geometry(const struct hak_class_spec *cls, unsigned n, uint64_t pool_bytes,
		      const struct hak_geom_params *p, struct hak_class_geom *g);

#endif
