/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Descriptor rings in shared memory.
 *
 * A ring is a power-of-two array of 64-bit descriptors {slot, generation}
 * plus three 32-bit free-running indices.  Rings hold slot numbers, never
 * pointers.  Per size class there are two rings in a client's control
 * segment:
 *
 *   ready ring   daemon (single producer) -> client threads (many consumers)
 *   return ring  client threads (many producers) -> daemon (single consumer)
 *
 * The daemon trusts nothing it reads from shared memory: it keeps its own
 * index (ready tail, return head) in private memory, writes it out but never
 * reads it back, reads the client's index once per batch and checks it, and
 * reads each descriptor exactly once.  The client side (many threads, no
 * locks) uses compare-and-swap on the shared indices; the client trusts the
 * daemon.
 */
#ifndef HAK_RING_H
#define HAK_RING_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "hak_atomic.h"

typedef uint64_t hak_desc_t;

static inline hak_desc_t hak_desc_make(uint32_t slot, uint32_t gen)
{
	return ((uint64_t)gen << 32) | slot;
}

static inline uint32_t hak_desc_slot(hak_desc_t d)
{
	return (uint32_t)d;
}

static inline uint32_t hak_desc_gen(hak_desc_t d)
{
	return (uint32_t)(d >> 32);
}

/* The shared part of a ring.  Each index sits on its own cache line so the
 * producer and the consumer do not bounce one line between cores. */
struct hak_ring_shared {
	_Alignas(HAK_CACHELINE) uint32_t head; /* consumer: next entry to take */
	_Alignas(HAK_CACHELINE) uint32_t tail; /* producer: end of published entries */
	uint32_t reserve;		       /* multi-producer: end of reserved entries */
	_Alignas(HAK_CACHELINE) uint8_t pad_[1];
};

/* A process-local view.  mask comes from a trusted source (the daemon's own
 * layout, or the layout the client validated at connect), never re-read. */
struct hak_ring {
	struct hak_ring_shared *s;
	hak_desc_t *e;
	uint32_t mask; /* entries - 1; entries is a power of two */
};

static inline uint32_t hak_ring_entries(const struct hak_ring *r)
{
	return r->mask + 1;
}

static inline hak_desc_t hak_ring_load_entry(const struct hak_ring *r, uint32_t idx)
{
	return __atomic_load_n(&r->e[idx & r->mask], __ATOMIC_RELAXED);
}

static inline void hak_ring_store_entry(struct hak_ring *r, uint32_t idx, hak_desc_t d)
{
	__atomic_store_n(&r->e[idx & r->mask], d, __ATOMIC_RELAXED);
}

/* ---- many consumers (client threads popping the ready ring) ---- */

/* Takes one descriptor.  Returns false when the ring is empty. */
static inline bool hak_ring_pop_mc(struct hak_ring *r, hak_desc_t *out)
{
	uint32_t head = hak_load_relaxed(&r->s->head);

	for (;;) {
		/* Pairs with the producer's release store of tail, made after it
		 * wrote the entries below tail. */
		uint32_t tail = hak_load_acquire(&r->s->tail);
		hak_desc_t d;

		if (tail == head)
			return false;
		d = hak_ring_load_entry(r, head);
		/* The entry was read while head still pointed at it, so the
		 * producer could not have reused it; success publishes that we
		 * are done reading (pairs with the producer's acquire of head). */
		if (hak_cas_release(&r->s->head, &head, head + 1)) {
			*out = d;
			return true;
		}
	}
}

/* Takes up to max descriptors with one compare-and-swap: a thread that
 * keeps a few ready slots for itself pays one contended operation per
 * batch, not per slot.  Returns how many it took (0: the ring is empty). */
static inline uint32_t hak_ring_pop_mc_n(struct hak_ring *r, hak_desc_t *out, uint32_t max)
{
	uint32_t head = hak_load_relaxed(&r->s->head);

	for (;;) {
		/* Pairs with the producer's release store of tail. */
		uint32_t tail = hak_load_acquire(&r->s->tail);
		uint32_t n = tail - head < max ? tail - head : max;

		if (n == 0)
			return 0;
		for (uint32_t i = 0; i < n; i++)
			out[i] = hak_ring_load_entry(r, head + i);
		/* As in hak_ring_pop_mc: the entries were read while head still
		 * covered them; success publishes that we are done reading. */
		if (hak_cas_release(&r->s->head, &head, head + n))
			return n;
	}
}

/* Number of entries a consumer could take now (a snapshot). */
static inline uint32_t hak_ring_count(const struct hak_ring *r)
{
	uint32_t head = hak_load_relaxed(&r->s->head);
	/* Pairs with the producer's release store of tail. */
	uint32_t tail = hak_load_acquire(&r->s->tail);

	return tail - head;
}

/* ---- many producers (client threads pushing the return ring) ---- */

/* Pushes n descriptors as one batch.  Returns false, pushing nothing, when
 * fewer than n entries are free. */
static inline bool hak_ring_push_mp(struct hak_ring *r, const hak_desc_t *d, uint32_t n)
{
	uint32_t res = hak_load_relaxed(&r->s->reserve);
	unsigned spins = 0;

	if (n == 0 || n > hak_ring_entries(r))
		return false;
	do {
		/* Pairs with the consumer's release store of head: entries
		 * below head have been read and may be overwritten. */
		uint32_t head = hak_load_acquire(&r->s->head);

		if (res - head > hak_ring_entries(r) - n)
			return false;
	} while (!hak_cas_relaxed(&r->s->reserve, &res, res + n));

	for (uint32_t i = 0; i < n; i++)
		hak_ring_store_entry(r, res + i, d[i]);
	/* Publish in reservation order: wait for earlier producers.  Acquire
	 * (pairs with the earlier producer's release store of tail): our
	 * release below then also carries that producer's entries (and its
	 * writes before the push) to a consumer that reads our tail; a
	 * relaxed load would break that chain in the C11 model. */
	while (hak_load_acquire(&r->s->tail) != res)
		hak_backoff(&spins);
	/* Pairs with the consumer's acquire load of tail. */
	hak_store_release(&r->s->tail, res + n);
	return true;
}

/* ---- the daemon's side: one producer / one consumer, private index ---- */

/*
 * Free entries in a ring the daemon produces into, given the daemon's own
 * tail.  Returns -EBADMSG when the consumer's head is impossible (a client
 * wrote garbage into it).
 */
static inline int64_t hak_ring_sp_space(const struct hak_ring *r, uint32_t my_tail)
{
	/* Pairs with the consumer's release CAS of head in hak_ring_pop_mc. */
	uint32_t head = hak_load_acquire(&r->s->head);
	uint32_t used = my_tail - head;

	if (used > hak_ring_entries(r))
		return -EBADMSG;
	return hak_ring_entries(r) - used;
}

static inline void hak_ring_sp_put(struct hak_ring *r, uint32_t *my_tail, hak_desc_t d)
{
	hak_ring_store_entry(r, *my_tail, d);
	(*my_tail)++;
}

static inline void hak_ring_sp_publish(struct hak_ring *r, uint32_t my_tail)
{
	/* Pairs with the consumers' acquire load of tail. */
	hak_store_release(&r->s->tail, my_tail);
}

/*
 * Entries waiting in a ring the daemon consumes, given its own head.  The
 * shared tail is read once here; returns -EBADMSG when it is impossible.
 */
static inline int64_t hak_ring_sc_avail(const struct hak_ring *r, uint32_t my_head)
{
	/* Pairs with the producers' release store of tail in hak_ring_push_mp. */
	uint32_t tail = hak_load_acquire(&r->s->tail);
	uint32_t n = tail - my_head;

	if (n > hak_ring_entries(r))
		return -EBADMSG;
	return n;
}

static inline void hak_ring_sc_release(struct hak_ring *r, uint32_t my_head)
{
	/* Pairs with the producers' acquire load of head in hak_ring_push_mp. */
	hak_store_release(&r->s->head, my_head);
}

#endif
