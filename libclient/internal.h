/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libhakclient internals: the handle, the per-connection pool, and what the
 * files of the library call in each other.
 *
 *   client.c   handle, refcount, setters, stats, log, counters
 *   fork.c     pthread_atfork: the child forgets every pool
 *   connect.c  handshake with hakzerod, connect / reconnect
 *   pool.c     mapping, validating and retiring a pool
 *   monitor.c  the monitor thread: daemon death, back-off, fork child restart
 *   prefault.c populating what the ready rings hold through io_uring, off the
 *              caller's thread
 *   local.c    local mode: a private pool whose daemon side is the monitor
 *   alloc.c    hak_alloc / hak_free: the hot path and its fallbacks
 *   fallback.c the mmap fallbacks handed out, so hak_free unmaps only those
 *   tcache.c   per-thread caches in front of the rings: binding, flushing,
 *              thread exit
 *
 * Memory the library needs for itself (the handle, a pool's private state)
 * comes from anonymous mmap, never malloc: allocators link this library and
 * may call it from inside their own malloc.
 */
#ifndef HAK_INTERNAL_H
#define HAK_INTERNAL_H

#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/un.h>
#include <syslog.h>

#include "hakclient.h"
#include "hak_layout.h"
#include "hak_proto.h"
#include "hak_time.h"
#include "hak_ring.h"

#define HAK_EXPORT __attribute__((visibility("default")))
#define HAK_HIDDEN __attribute__((visibility("hidden")))

#define hak_likely(x) __builtin_expect(!!(x), 1)
#define hak_unlikely(x) __builtin_expect(!!(x), 0)

/* Pools one handle may ever have: a retired pool stays mapped until the
 * handle dies (a thread may still be inside it), so this bounds what a
 * daemon that keeps restarting can make us hold.  In auto mode each daemon
 * restart costs two (the local pool meanwhile, then the new shared one). */
#define HAK_MAX_POOLS 64
/* Local dirty cache per class: at most this many slots, and no more than
 * 1/HAK_LOCAL_CACHE_DIV of the class, so most slots go back to the daemon.
 * Large enough that a caller holding a few hundred 4 KiB pages at once
 * still finds its own slots to zero inline when the ready ring runs dry
 * (2 MiB of 4 KiB slots). */
#define HAK_LOCAL_CACHE_MAX 512u
#define HAK_LOCAL_CACHE_DIV 8u
/* ...but classes of few (large) slots keep this many, or half the class
 * rounded up to a power of two when that is less (a class of 7 keeps 4): the
 * zeroing side needs tens of microseconds per 2 MiB slot and its wakeup can
 * take a scheduler tick (4 ms measured at nice 19), so an allocator cycling
 * a few large extents reuses its own instead of falling back to faulting
 * memory. */
#define HAK_LOCAL_CACHE_MIN 4u
/* slot_state bit: the slot is in the caller's hands.  Low 32 bits: the
 * generation the slot was handed out with. */
#define HAK_SLOT_HELD (1ull << 32)

/* Runs a system call expression (returning -1 and errno on failure) and
 * gives back its result or -errno, leaving errno as it was. */
#define HAK_SYSCALL(expr)                                                                          \
	({                                                                                         \
		int saved_errno_ = errno;                                                          \
		long r_ = (long)(expr);                                                            \
		if (r_ < 0)                                                                        \
			r_ = -errno;                                                               \
		errno = saved_errno_;                                                              \
		r_;                                                                                \
	})

static inline uint64_t hak_page_round(uint64_t n)
{
	return (n + HAK_PAGE_SIZE - 1) & ~(uint64_t)(HAK_PAGE_SIZE - 1);
}

/* One size class of a pool, as this process sees it. */
struct hak_class_rt {
	char *base; /* slot 0 in our mapping */
	uint64_t slot_size;
	unsigned slot_shift; /* log2(slot_size), 0 when that is not a power of two */
	uint32_t nslots;
	uint32_t ready_low;
	uint32_t ret_batch;
	uint32_t since_bell;	  /* slots returned since the last doorbell */
	int punch_advice;	  /* gives a slot's memory back: MADV_REMOVE, MADV_DONTNEED */
	const uint32_t *live_low; /* shared: the daemon's current ready_low (0: ready_low) */
	/* Prefault (prefault.c, monitor only): the ready ring index looked at
	 * up to, the head when the pool came, and per slot a bit: populated. */
	uint32_t pf_seen;
	uint32_t pf_head0;
	uint8_t *pf_done;
	struct hak_ring ready;
	struct hak_ring ret;
	struct hak_ring local; /* private: own freed slots, not yet returned */
	uint64_t *slot_state;  /* private, per slot: gen | HAK_SLOT_HELD */
};

/* One connection's pool.  Allocated with mmap, never unmapped before the
 * handle dies. */
struct hak_pool {
	struct hak_ctrl_hdr hdr; /* private copy, validated; the shared one is never re-read */
	void *ctrl;
	size_t ctrl_size;
	char *base;
	size_t size;
	struct hak_ctrl_sync *sync;
	struct hak_ctrl_counters *counters; /* HAK_COUNTER_SHARDS, in ctrl */
	int doorbell_fd;
	int dead;	       /* atomic: the daemon is gone; frees punch holes */
	int absent;	       /* atomic: in a fork child, the mappings do not exist */
	int reserved;	       /* in a fork child: the pool range holds a PROT_NONE reservation */
	bool local;	       /* private memory, serviced by our own monitor (local.c) */
	struct hak_local *loc; /* local pools: the daemon side's private state */
	size_t priv_size;      /* bytes of the private mapping this struct starts */
	unsigned nclasses;
	struct hak_class_rt cls[HAK_MAX_CLASSES];
};

/* Populate requests waiting for room in the io_uring: runs of adjacent
 * slots seen in the ready rings.  When full, the scan stops and resumes
 * there next time. */
#define HAK_PF_QUEUE 64u

/* A range of the pool to populate, as offsets into the pool. */
struct hak_pf_range {
	uint64_t off, len;
};

/* Asynchronous prefault of what the newest pool's ready rings hold
 * (DESIGN "Shared mode" 2, elastic). */
struct hak_prefault {
	struct hak_pool *pool; /* NULL: nothing (more) to follow */
	struct hak_pf_range q[HAK_PF_QUEUE];
	unsigned qhead, qn;    /* FIFO: the slots the hot path takes first go first */
	unsigned inflight;     /* io_uring requests not yet reaped */
	unsigned scan_ms;      /* current interval between looks at the ready rings */
	uint64_t next_scan_ns; /* CLOCK_MONOTONIC */
	uint64_t populated;    /* bytes submitted for populating, for tests and stats */
	bool uring_ready;
	bool uring_failed; /* io_uring unusable here: the monitor madvises itself */
	int efd;	   /* eventfd the ring signals completions on */
	struct io_uring ring;
};

struct hak_monitor {
	pthread_t thread;
	bool running;
	bool stopping;
	bool retry;	      /* a reconnect is pending */
	int wake_fd;	      /* eventfd: new socket, or stop */
	unsigned backoff_ms;  /* wait before the next attempt after a failure */
	uint64_t next_try_ns; /* CLOCK_MONOTONIC */
};

/* One mmap fallback handed out: its address and page-rounded length. */
struct hak_fallback_entry {
	uintptr_t addr; /* 0: empty */
	uint64_t len;
};

/* Every fallback of a handle still mapped (fallback.c). */
struct hak_fallbacks {
	pthread_mutex_t lock; /* never taken on the pool's path */
	struct hak_fallback_entry *tab;
	size_t cap; /* entries, a power of two; 0 before the first fallback */
	size_t n;
};

/* hak_alloc() flags this version knows; any other bit is refused. */
#define HAK_ALLOC_KNOWN_FLAGS (HAK_ALLOC_DIRTY_OK | HAK_ALLOC_POOL_ONLY)

/* The mode asked for: hak_client_set_mode, else $HAK_MODE, else shared. */
#define HAK_MODE_ENV "HAK_MODE"

struct hak_client {
	/* Counters of allocations made with no pool mapped. */
	struct hak_ctrl_counters priv[HAK_COUNTER_SHARDS];
	int refcount;
	uint64_t id; /* unique in the process: a per-thread cache names its handle by it */
	/* Guards connection state (socket, pools, monitor, prefault, settings);
	 * never taken by hak_alloc / hak_free in steady state. */
	pthread_mutex_t lock;
	struct hak_client *fork_next; /* list of live handles, for fork() */

	hak_log_fn log_fn;
	void *log_data;
	int log_priority;

	char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int socket_path_err; /* -ENAMETOOLONG when the environment's path does not fit */
	uint64_t pool_bytes; /* asked for in HELLO; 0 = the daemon's default */
	bool want_connect;   /* hak_client_connect was called */
	int mode;	     /* HAK_MODE_*, fixed at the first connect */
	int child_restart;   /* atomic: fork child, the monitor must be restarted */

	int sock;
	struct hak_pool *cur;		       /* atomic, acquire/release: the live pool or NULL */
	struct hak_pool *pools[HAK_MAX_POOLS]; /* append-only */
	unsigned npools;		       /* atomic, release after pools[n] is set */
	uint64_t reconnects;

	struct hak_monitor mon;
	struct hak_prefault pf;
	struct hak_fallbacks fb;
};

/* ---- client.c ---- */

void hak_log_impl(struct hak_client *c, int prio, const char *file, int line, const char *fn,
		  const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static inline bool hak_log_wanted(struct hak_client *c, int prio)
{
	return __atomic_load_n(&c->log_fn, __ATOMIC_RELAXED) &&
	       prio <= __atomic_load_n(&c->log_priority, __ATOMIC_RELAXED);
}

#define hak_log_cond(c, prio, ...)                                                                 \
	do {                                                                                       \
		if (hak_log_wanted(c, prio))                                                       \
			hak_log_impl(c, prio, __FILE__, __LINE__, __func__, __VA_ARGS__);          \
	} while (0)

#define hak_err(c, ...) hak_log_cond(c, LOG_ERR, __VA_ARGS__)
#define hak_info(c, ...) hak_log_cond(c, LOG_INFO, __VA_ARGS__)
#define hak_dbg(c, ...) hak_log_cond(c, LOG_DEBUG, __VA_ARGS__)

/* 1 + the counter shard of the calling thread, 0 before it has one.
 * initial-exec: the general-dynamic model may call malloc on first access,
 * and an allocator calling us from malloc must not recurse. */
extern __thread unsigned hak_tls_shard HAK_HIDDEN __attribute__((tls_model("initial-exec")));
unsigned hak_shard_pick(void);

static inline unsigned hak_shard(void)
{
	unsigned s = hak_tls_shard;

	if (hak_unlikely(s == 0))
		s = hak_shard_pick();
	return s - 1;
}

/* Counts into the pool's shared counters, or the handle's own without one. */
static inline void hak_count_n(struct hak_client *c, struct hak_pool *p, enum hak_counter k,
			       uint64_t n)
{
	struct hak_ctrl_counters *sh = p ? p->counters : c->priv;

	hak_add64_relaxed(&sh[hak_shard()].v[k], n);
}

static inline void hak_count(struct hak_client *c, struct hak_pool *p, enum hak_counter k)
{
	hak_count_n(c, p, k, 1);
}

/* The ready level below which the hot path rings: the daemon's current
 * one, which follows the class's ready target (elastic pools). */
static inline uint32_t hak_class_low(const struct hak_class_rt *k)
{
	uint32_t low = hak_load_relaxed(k->live_low);

	return low ? low : k->ready_low;
}

static inline struct hak_pool *hak_pool_current(struct hak_client *c)
{
	/* Pairs with the release store in hak_publish_pool: the pool's private
	 * state is complete before anyone sees the pointer. */
	return __atomic_load_n(&c->cur, __ATOMIC_ACQUIRE);
}

static inline unsigned hak_npools(struct hak_client *c)
{
	/* Pairs with the release store after pools[n] was written. */
	return __atomic_load_n(&c->npools, __ATOMIC_ACQUIRE);
}

void *hak_map_private(size_t size, int extra_flags);

/* ---- fork.c ---- */

int hak_fork_register(struct hak_client *c);
void hak_fork_unregister(struct hak_client *c);
/* Calls fn(c, arg) with the list of live handles locked, so c cannot be
 * torn down meanwhile, if c is still the live handle numbered id.  Returns
 * whether it did. */
bool hak_fork_call_if_live(struct hak_client *c, uint64_t id,
			   void (*fn)(struct hak_client *c, void *arg), void *arg);

/* ---- fallback.c ---- */

void hak_fallback_init(struct hak_client *c);
void hak_fallback_fini(struct hak_client *c);
void hak_fallback_reset_in_child(struct hak_client *c);
/* Records a mapping of len (page-rounded) bytes at addr: 0, or -ENOMEM. */
int hak_fallback_add(struct hak_client *c, void *addr, uint64_t len);
/* Unmaps a recorded fallback: 0; -EINVAL, touching nothing, unless addr is
 * one and len its recorded length; or munmap's error. */
int hak_fallback_unmap(struct hak_client *c, void *addr, uint64_t len);

/* ---- pool.c ---- */

/* The private half of a pool, laid out after the validated header h. */
struct hak_pool *hak_pool_build(const struct hak_ctrl_hdr *h, void *ctrl, void *base);

/* Maps and validates the pool described by WELCOME.  Takes ownership of
 * fds[0..2] (closes them on failure; keeps the doorbell on success). */
int hak_pool_create(struct hak_client *c, const struct hak_msg_welcome *w, int fds[3],
		    struct hak_pool **out);
void hak_pool_retire(struct hak_client *c, struct hak_pool *p);
void hak_pool_forget(struct hak_pool *p);
void hak_pool_destroy(struct hak_pool *p);
void hak_pool_remove_slot(struct hak_class_rt *k, uint32_t slot);

/* ---- connect.c ---- */

/* With c->lock held.  0 when a pool is live afterwards, else -errno. */
int hak_connect_locked(struct hak_client *c);

/* ---- local.c (with c->lock held unless said) ---- */

/* Makes a local pool the current one if there is none.  0 or -errno. */
int hak_local_ensure_locked(struct hak_client *c);
/* Its doorbell, for the monitor's poll; -1 without a live local pool. */
int hak_local_fd(struct hak_client *c);
/* One bounded round of the daemon's work; true when more is left. */
bool hak_local_service(struct hak_client *c);
bool hak_local_pending(struct hak_client *c);
/* After hak_pool_retire: the slots the monitor held give their memory back. */
void hak_local_retire(struct hak_client *c, struct hak_pool *p);
uint64_t hak_local_zeroed(const struct hak_pool *p);
/* Fork child: the local pools stay (copy-on-write), their rings are made
 * consistent and their doorbells replaced. */
void hak_local_reset_in_child(struct hak_pool *p);
/* Local pools give a slot's memory back with MADV_DONTNEED. */
void hak_local_pool_destroy(struct hak_pool *p);

/* ---- tcache.c: the calling thread's cache ---- */

/* Per class, a thread keeps at most this many of its own freed slots
 * (a LIFO: the slot freed last is reused first, still in this core's
 * cache), no more than HAK_TC_BYTES of them, and no more than
 * 1/HAK_TC_CLASS_DIV of the class, so that threads do not hoard a class
 * between them.  Classes that would get fewer than HAK_TC_MIN get no
 * thread cache: their slots are too few or too large for a per-thread
 * stack to pay. */
#define HAK_TC_DIRTY_MAX 64u
#define HAK_TC_BYTES (256u * 1024u)
#define HAK_TC_CLASS_DIV 32u
#define HAK_TC_MIN 4u
/* Zeroed descriptors taken from the ready ring with one compare-and-swap,
 * at most half the dirty capacity: a small batch leaves the rest of the
 * ring to the other threads. */
#define HAK_TC_READY_MAX 8u
/* After the ready ring was found empty, allocations served from the
 * thread's own slots skip it this many times: looking costs a full fence
 * and a read of a line the daemon writes, as much as zeroing a quarter of
 * a page, and the daemon needs longer than that to catch up anyway. */
#define HAK_TC_DRY_SKIP 16u
/* Counts a thread adds to its pool's shared counters at once: an atomic
 * add per 64 operations, not one per allocation and one per free.  A
 * thread's statistics are exact for itself (hak_client_get_stats adds its
 * own), and at most this far behind for the others. */
#define HAK_TC_COUNT_BATCH 64u

struct hak_tc_class {
	uint32_t cap;	 /* dirty slots kept; 0: no thread cache for this class */
	uint32_t rbatch; /* ready descriptors taken per pop */
	uint32_t ndirty;
	uint32_t nready;
	uint32_t dry; /* allocations left that do not look at an empty ready ring */
	hak_desc_t dirty[HAK_TC_DIRTY_MAX]; /* own freed slots, LIFO, not held */
	hak_desc_t ready[HAK_TC_READY_MAX]; /* zeroed slots taken from the ready ring */
};

/* One thread's cache, bound to one pool of one handle at a time.  Only its
 * thread reads or writes it (the thread-exit destructor runs on that
 * thread too); it comes from mmap, never malloc. */
struct hak_tcache {
	struct hak_client *c; /* NULL: bound to nothing, holds nothing */
	uint64_t cid;	      /* c->id when bound: c may be gone since */
	struct hak_pool *p;
	uint32_t npend;		   /* counts not yet in p's counters */
	uint32_t pend[HAK_CNT_NR]; /* per counter */
	struct hak_tc_class cls[HAK_MAX_CLASSES];
	struct hak_tcache *next_spare; /* on the spare list (tcache.c) */
};

/* The calling thread's cache: NULL before its first use, HAK_TC_OFF where
 * it must not be used (being set up, thread exiting, no key). */
extern __thread struct hak_tcache *hak_tc_self HAK_HIDDEN
	__attribute__((tls_model("initial-exec")));
#define HAK_TC_OFF ((struct hak_tcache *)1)

uint64_t hak_tcache_next_id(void);
/* Flushes what the thread's cache holds and binds it to (c, p); NULL when
 * the thread has no usable cache or p is going away. */
struct hak_tcache *hak_tcache_bind(struct hak_client *c, struct hak_pool *p);

/* Adds t's pending counts to its pool's counters. */
void hak_tc_count_flush(struct hak_tcache *t);
/* Before reading the counters: the calling thread's own pending counts
 * for c go in first. */
void hak_tcache_count_flush_for(struct hak_client *c);

static inline void hak_tc_count(struct hak_tcache *t, enum hak_counter k)
{
	t->pend[k]++;
	if (hak_unlikely(++t->npend >= HAK_TC_COUNT_BATCH))
		hak_tc_count_flush(t);
}

static inline struct hak_tcache *hak_tcache_of(struct hak_client *c, struct hak_pool *p)
{
	struct hak_tcache *t = hak_tc_self;

	if (hak_likely(t != NULL && t != HAK_TC_OFF && t->p == p && t->c == c && t->cid == c->id))
		return t;
	return hak_tcache_bind(c, p);
}

/* ---- alloc.c ---- */

/* Hands n slots a thread cache no longer keeps to the pool's shared cache
 * (and from there, in batches, to the daemon). */
void hak_tc_spill(struct hak_client *c, struct hak_pool *p, struct hak_class_rt *k,
		  const hak_desc_t *d, uint32_t n);

/* ---- monitor.c ---- */

int hak_monitor_start_locked(struct hak_client *c);
void hak_monitor_stop(struct hak_client *c);
void hak_monitor_wake(struct hak_client *c);
void hak_monitor_schedule_retry(struct hak_client *c, bool immediately);
void hak_monitor_child_restart(struct hak_client *c);

/* ---- prefault.c (all with c->lock held) ---- */

void hak_prefault_start(struct hak_client *c, struct hak_pool *p);
/* p goes away (retired): nothing more is populated in it. */
void hak_prefault_stop(struct hak_client *c, struct hak_pool *p);
/* Looks at the ready rings when it is time (or now, when force): queues and
 * submits the slots not yet populated.  Returns the milliseconds until the
 * next look, -1 for none. */
int hak_prefault_tick(struct hak_client *c, bool force);
bool hak_prefault_sync_pending(struct hak_client *c);
int hak_prefault_fd(struct hak_client *c);
void hak_prefault_reap(struct hak_client *c);
void hak_prefault_sync_step(struct hak_client *c);
void hak_prefault_fini(struct hak_client *c);
void hak_prefault_forget(struct hak_client *c);

#endif
