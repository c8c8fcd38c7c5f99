/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Named ordering helpers for memory shared between processes.
 *
 * Every load or store of an index that another process (or thread) reads goes
 * through one of these, and the call site says in a comment which store a
 * load pairs with.  Plain C accesses are never used on shared indices.
 */
#ifndef HAK_ATOMIC_H
#define HAK_ATOMIC_H

#include <sched.h>
#include <stdint.h>

#define HAK_CACHELINE 64

static inline uint32_t hak_load_acquire(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void hak_store_release(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static inline uint32_t hak_load_relaxed(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static inline void hak_store_relaxed(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

static inline uint64_t hak_load64_relaxed(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static inline void hak_store64_relaxed(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

static inline void hak_add64_relaxed(uint64_t *p, uint64_t v)
{
	__atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}

/* Compare-and-swap; on failure *expected is refreshed with a relaxed load. */
static inline int hak_cas_release(uint32_t *p, uint32_t *expected, uint32_t desired)
{
	return __atomic_compare_exchange_n(p, expected, desired, 0, __ATOMIC_RELEASE,
					   __ATOMIC_RELAXED);
}

static inline int hak_cas_relaxed(uint32_t *p, uint32_t *expected, uint32_t desired)
{
	return __atomic_compare_exchange_n(p, expected, desired, 0, __ATOMIC_RELAXED,
					   __ATOMIC_RELAXED);
}

static inline uint32_t hak_xchg_acq_rel(uint32_t *p, uint32_t v)
{
	return __atomic_exchange_n(p, v, __ATOMIC_ACQ_REL);
}

static inline void hak_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/* Spins before a waiter gives its core away (2 vCPUs: the thread it waits
 * for may be preempted, and spinning then only delays it). */
#define HAK_SPINS_BEFORE_YIELD 256

static inline void hak_backoff(unsigned *spins)
{
	if (++*spins < HAK_SPINS_BEFORE_YIELD) {
		hak_cpu_relax();
	} else {
		*spins = 0;
		sched_yield();
	}
}

#endif
