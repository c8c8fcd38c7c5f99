/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The control segment: one memfd per client, created and laid out by the
 * daemon, mapped MAP_SHARED by both.  It holds a header describing the
 * layout, per size class a ready ring and a return ring, a doorbell-arming
 * word, and the client's counters.  All offsets are from the start of the
 * segment; the pool memfd holds the slots themselves.
 *
 *   pool memfd:    | class 0 slots | class 1 slots | ... |
 *   control memfd: | hak_ctrl_hdr | hak_ctrl_sync | counters | rings ... |
 */
#ifndef HAK_LAYOUT_H
#define HAK_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "hak_atomic.h"
#include "hak_ring.h"

#define HAK_CTRL_MAGIC 0x314c5254434b4148ULL /* "HAKCTRL1" little-endian */
#define HAK_LAYOUT_VERSION 1
#define HAK_MAX_CLASSES 8
/* Largest slot count a class may have: ring indices are 32-bit and a ring
 * has a power-of-two number of entries. */
#define HAK_MAX_SLOTS (1u << 24)
#define HAK_PAGE_SIZE 4096u
/* Counter shards: threads add to their own shard so that counting does not
 * bounce one cache line between cores. */
#define HAK_COUNTER_SHARDS 16

struct hak_class_layout {
	uint64_t slot_size;   /* bytes, multiple of HAK_PAGE_SIZE */
	uint64_t pool_offset; /* offset of slot 0 of this class in the pool */
	uint32_t nslots;
	uint32_t ring_entries; /* power of two, >= nslots */
	uint64_t ready_off;    /* struct hak_ring_shared, in the control segment */
	uint64_t ready_ents_off;
	uint64_t ret_off;
	uint64_t ret_ents_off;
	uint32_t ready_low; /* client rings the doorbell when ready drops below */
	uint32_t ret_batch; /* client rings the doorbell after this many returns */
};

struct hak_ctrl_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t hdr_size; /* sizeof(struct hak_ctrl_hdr) */
	uint64_t ctrl_size;
	uint64_t pool_size;
	uint32_t nclasses;
	uint32_t client_id;
	uint64_t sync_off;     /* struct hak_ctrl_sync */
	uint64_t counters_off; /* struct hak_ctrl_counters[HAK_COUNTER_SHARDS] */
	struct hak_class_layout cls[HAK_MAX_CLASSES];
};

/*
 * Doorbell arming, as io_uring's SQ_NEED_WAKEUP: the daemon stores 1 into
 * want_doorbell when it has gone idle for this client; a client that has
 * work for the daemon exchanges it to 0 and, if it was 1, writes the
 * eventfd.  So at most one doorbell per daemon idle period, never per call.
 */
struct hak_ctrl_sync {
	_Alignas(HAK_CACHELINE) uint32_t want_doorbell;
	/* Elastic pools: per class, the ready level the client rings below
	 * now, written by the daemon as it grows or shrinks the class's ready
	 * target (0: the header's ready_low).  On its own line: the hot path
	 * reads it on every pop, the daemon writes it only when the target
	 * changes. */
	_Alignas(HAK_CACHELINE) uint32_t ready_low[HAK_MAX_CLASSES];
	_Alignas(HAK_CACHELINE) uint8_t pad_[1];
};

/* What the client counts, per shard; written by the client with relaxed
 * adds, summed by readers (the client's stats call, the daemon's reports,
 * which never trust them for anything but display). */
enum hak_counter {
	HAK_CNT_ALLOC_READY,	   /* zeroed slot from the ready ring */
	HAK_CNT_ALLOC_DIRTY,	   /* own returned slot, not zeroed (caller allowed) */
	HAK_CNT_ALLOC_INLINE_ZERO, /* own returned slot zeroed in the caller */
	HAK_CNT_ALLOC_MMAP,	   /* no slot: plain anonymous mmap */
	HAK_CNT_ALLOC_LARGE,	   /* larger than the largest class: mmap */
	HAK_CNT_FREE_POOL,	   /* frees of pool slots */
	HAK_CNT_FREE_MMAP,	   /* frees of mmap fallbacks (munmap) */
	HAK_CNT_RETURNED,	   /* slots pushed to the return ring */
	HAK_CNT_DOORBELLS,	   /* eventfd writes */
	HAK_CNT_NR,
};

struct hak_ctrl_counters {
	_Alignas(HAK_CACHELINE) uint64_t v[HAK_CNT_NR];
};

static inline void *hak_ctrl_at(void *ctrl, uint64_t off)
{
	return (char *)ctrl + off;
}

/* Geometry of one class, as the daemon's config decides it. */
struct hak_class_geom {
	uint64_t slot_size;
	uint32_t nslots;
	uint32_t ready_low;
	uint32_t ret_batch;
};

/*
 * Fills *h with the layout for n classes (the first class at pool offset 0,
 * each next class right after the previous), rings sized to the next power
 * of two of nslots.  Returns 0, or -EINVAL for n == 0, n > HAK_MAX_CLASSES,
 * a slot size that is zero or not a page multiple, slot sizes not strictly
 * ascending, or zero slots.
 */
int hak_layout_compute(struct hak_ctrl_hdr *h, const struct hak_class_geom *g, unsigned n,
		       uint32_t client_id);

/*
 * Checks that a header read from a mapped control segment of ctrl_size bytes
 * describes a pool of pool_size bytes consistently: magic, version, every
 * offset and ring inside the segment, every class inside the pool, classes
 * not overlapping.  Returns 0 or -EBADMSG.
 */
int hak_layout_validate(const struct hak_ctrl_hdr *h, uint64_t ctrl_size, uint64_t pool_size);

/* Builds a ring view of class c's ready (ret == 0) or return ring. */
static inline void hak_layout_ring(const struct hak_ctrl_hdr *h, void *ctrl, unsigned c, int ret,
				   struct hak_ring *r)
{
	const struct hak_class_layout *cl = &h->cls[c];

	r->s = hak_ctrl_at(ctrl, ret ? cl->ret_off : cl->ready_off);
	r->e = hak_ctrl_at(ctrl, ret ? cl->ret_ents_off : cl->ready_ents_off);
	r->mask = cl->ring_entries - 1;
}

#endif
