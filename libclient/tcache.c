/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Per-thread caches in front of a pool's rings (the hot path's first
 * resort, alloc.c).  A thread keeps, per class, a LIFO of the slots it
 * freed itself and a few zeroed descriptors it took from the ready ring in
 * one batch: a free is a store into thread-private memory, and most
 * allocations are a load from it.
 *
 * A cache is bound to one pool of one handle.  Whatever it holds goes back
 * to that pool's shared cache (or is punched, or dropped) before it binds
 * to anything else, so nothing it holds outlives its pool's guarantees:
 *
 *   pool retired (daemon gone)  the next bind punches the slots, as the
 *                               retirement did with every shared ring
 *   fork child, shared pool     the pool is absent: the slots are dropped
 *   handle freed                the slots are dropped with the pool
 *   thread exit                 the destructor flushes into the pool
 *
 * The cache itself comes from mmap (allocators call us from malloc), its
 * pointer from initial-exec TLS, and its destructor from a pthread key.
 * An exited thread's cache, emptied, waits on a short spare list for the
 * next thread: unmapping it would make the kernel shoot down the TLB
 * entry on every CPU the process runs on, an interrupt each (on a VM an
 * exit to the hypervisor), once per thread exit.
 */
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

__thread struct hak_tcache *hak_tc_self __attribute__((tls_model("initial-exec")));

static pthread_key_t tc_key;
static pthread_once_t tc_once = PTHREAD_ONCE_INIT;
static bool tc_key_ok;
static uint64_t last_client_id;

/* Spare caches, at most HAK_TC_SPARE_MAX.  Only ever try-locked: a fork
 * child whose parent held the lock maps and unmaps as before. */
#define HAK_TC_SPARE_MAX 64u
static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hak_tcache *spare;
static unsigned nspare;

static struct hak_tcache *spare_take(void)
{
	struct hak_tcache *t = NULL;

	if (pthread_mutex_trylock(&spare_lock) != 0)
		return NULL;
	if (spare) {
		t = spare;
		spare = t->next_spare;
		nspare--;
	}
	pthread_mutex_unlock(&spare_lock);
	return t;
}

static bool spare_put(struct hak_tcache *t)
{
	bool kept = false;

	if (pthread_mutex_trylock(&spare_lock) != 0)
		return false;
	if (nspare < HAK_TC_SPARE_MAX) {
		t->next_spare = spare;
		spare = t;
		nspare++;
		kept = true;
	}
	pthread_mutex_unlock(&spare_lock);
	return kept;
}

/* A cache no thread uses: kept for the next thread, or unmapped. */
static void cache_release(struct hak_tcache *t)
{
	if (!spare_put(t))
		HAK_SYSCALL(munmap(t, sizeof(*t)));
}

uint64_t hak_tcache_next_id(void)
{
	return __atomic_add_fetch(&last_client_id, 1, __ATOMIC_RELAXED);
}

void hak_tc_count_flush(struct hak_tcache *t)
{
	struct hak_ctrl_counters *sh;

	if (t->npend == 0)
		return;
	/* A fork child has no mapping of its parent's counters. */
	if (!__atomic_load_n(&t->p->absent, __ATOMIC_RELAXED)) {
		sh = &t->p->counters[hak_shard()];
		for (unsigned k = 0; k < HAK_CNT_NR; k++)
			if (t->pend[k])
				hak_add64_relaxed(&sh->v[k], t->pend[k]);
	}
	memset(t->pend, 0, sizeof(t->pend));
	t->npend = 0;
}

void hak_tcache_count_flush_for(struct hak_client *c)
{
	struct hak_tcache *t = hak_tc_self;

	if (t != NULL && t != HAK_TC_OFF && t->c == c && t->cid == c->id)
		hak_tc_count_flush(t);
}

static void drop(struct hak_tcache *t)
{
	for (unsigned i = 0; i < HAK_MAX_CLASSES; i++) {
		t->cls[i].ndirty = 0;
		t->cls[i].nready = 0;
	}
	memset(t->pend, 0, sizeof(t->pend));
	t->npend = 0;
	t->c = NULL;
	t->p = NULL;
}

static void punch(struct hak_class_rt *k, const hak_desc_t *d, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		hak_pool_remove_slot(k, hak_desc_slot(d[i]));
}

/* Gives what t holds back to its pool, which belongs to the live handle c. */
static void flush_into(struct hak_client *c, void *arg)
{
	struct hak_tcache *t = arg;
	struct hak_pool *p = t->p;
	/* Pairs with the release store in hak_pool_retire: a retired pool's
	 * rings are no longer drained by anyone. */
	bool dead = __atomic_load_n(&p->dead, __ATOMIC_ACQUIRE);

	hak_tc_count_flush(t);
	/* A fork child has no mapping of a shared pool: nothing to give. */
	if (__atomic_load_n(&p->absent, __ATOMIC_RELAXED))
		return;
	for (unsigned i = 0; i < p->nclasses; i++) {
		struct hak_tc_class *tk = &t->cls[i];
		struct hak_class_rt *k = &p->cls[i];

		if (dead) {
			punch(k, tk->ready, tk->nready);
			punch(k, tk->dirty, tk->ndirty);
			continue;
		}
		/* Zeroed slots cannot go back to the ready ring (the daemon is
		 * its only producer): they join the dirty ones. */
		hak_tc_spill(c, p, k, tk->ready, tk->nready);
		hak_tc_spill(c, p, k, tk->dirty, tk->ndirty);
	}
}

/* Empties t.  caller is a handle the calling thread holds a reference on;
 * any other handle may be gone, and is only touched when it is not. */
static void unbind(struct hak_client *caller, struct hak_tcache *t)
{
	if (!t->c)
		return;
	if (t->c == caller && t->cid == caller->id)
		flush_into(caller, t);
	else
		hak_fork_call_if_live(t->c, t->cid, flush_into, t);
	drop(t);
}

static void tc_destroy(void *arg)
{
	struct hak_tcache *t = arg;

	/* Frees later in this thread's exit (other keys' destructors) take
	 * the shared path. */
	hak_tc_self = HAK_TC_OFF;
	if (t->c)
		hak_fork_call_if_live(t->c, t->cid, flush_into, t);
	drop(t);
	cache_release(t);
}

static void key_init(void)
{
	tc_key_ok = pthread_key_create(&tc_key, tc_destroy) == 0;
}

static struct hak_tcache *create(void)
{
	struct hak_tcache *t;

	/* pthread_setspecific may allocate, and an allocator may call us
	 * from there: such a call finds HAK_TC_OFF and takes the shared
	 * path. */
	hak_tc_self = HAK_TC_OFF;
	pthread_once(&tc_once, key_init);
	if (!tc_key_ok)
		return NULL;
	/* Populated: the hot path must not fault on it. */
	t = spare_take();
	if (!t)
		t = hak_map_private(sizeof(*t), MAP_POPULATE);
	if (!t) {
		hak_tc_self = NULL; /* try again on a later call */
		return NULL;
	}
	if (pthread_setspecific(tc_key, t) != 0) {
		cache_release(t);
		return NULL;
	}
	hak_tc_self = t;
	return t;
}

static void class_setup(struct hak_tc_class *tk, const struct hak_class_rt *k)
{
	uint64_t cap = k->nslots / HAK_TC_CLASS_DIV;

	if (cap > HAK_TC_BYTES / k->slot_size)
		cap = HAK_TC_BYTES / k->slot_size;
	if (cap > HAK_TC_DIRTY_MAX)
		cap = HAK_TC_DIRTY_MAX;
	tk->cap = cap < HAK_TC_MIN ? 0 : (uint32_t)cap;
	tk->rbatch = tk->cap / 2 < HAK_TC_READY_MAX ? tk->cap / 2 : HAK_TC_READY_MAX;
	tk->ndirty = 0;
	tk->nready = 0;
	tk->dry = 0;
}

struct hak_tcache *hak_tcache_bind(struct hak_client *c, struct hak_pool *p)
{
	struct hak_tcache *t = hak_tc_self;

	if (t == HAK_TC_OFF)
		return NULL;
	if (!t) {
		t = create();
		if (!t)
			return NULL;
	}
	unbind(c, t);
	/* Pairs with the release store in hak_pool_retire. */
	if (__atomic_load_n(&p->dead, __ATOMIC_ACQUIRE) ||
	    __atomic_load_n(&p->absent, __ATOMIC_RELAXED))
		return NULL;
	for (unsigned i = 0; i < p->nclasses; i++)
		class_setup(&t->cls[i], &p->cls[i]);
	t->c = c;
	t->cid = c->id;
	t->p = p;
	return t;
}
