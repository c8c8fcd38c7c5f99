/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A multi-threaded malloc program for test-jemalloc-adapter: it knows
 * nothing of hakzerod.  Threads allocate (malloc, calloc: small, slab-sized
 * and large up to 3 MiB), fill each block with a pattern of their own,
 * reallocate (grow and shrink, contents kept), check, and pass blocks to
 * each other through a shared exchange so that blocks are freed by a thread
 * other than the one that allocated them.  Exit 0 when every check held.
 *
 * "hak-jemalloc-prog [expect-pool]": with expect-pool, also fail unless
 * libhakjemalloc is loaded, served extents from a pool, and saw no bad free.
 *
 * "hak-jemalloc-prog churn": one thread takes and returns 1-2 MiB slabs, two
 * live, every page written; once warm, every extent jemalloc asks for must
 * come from the pool (none forwarded to jemalloc's own path, which faults).
 * Fails when jemalloc's metadata pins the large classes' slots (its base
 * blocks ask for 2 MiB alignment) or when the client's cache of its own
 * freed slots is too small to cycle two slabs without the zeroing side.
 *
 * "hak-jemalloc-prog xthread": producer threads allocate blocks (small,
 * 64 KiB-2 MiB, and over 8 MiB, which jemalloc serves from its own path),
 * consumer threads that never allocate check and free them.  Such a thread
 * keeps jemalloc's minimal thread state, so a hook that calls back into
 * jemalloc from there (its default merge hook does) makes it allocate under
 * the lock the free holds: the program hangs.  Fresh consumers every round.
 *
 * "hak-jemalloc-prog arenas": the adapter made no arena of jemalloc's when
 * it was loaded (arena 1 does not exist yet), and a new thread's arena has
 * the adapter's hooks before the thread allocates: its large blocks come
 * from the pool.  pthread_create is the adapter's.
 *
 * "hak-jemalloc-prog young": a program of about 2 MiB (the shape of
 * hakbench's short program) makes no handle and takes nothing from a pool;
 * once it holds more (2 MiB blocks, kept), the pool is made and serves it.
 *
 * "hak-jemalloc-prog outgrow": 2,000 blocks of 20 KiB kept (each its own
 * extent, in a 32 KiB slot: the default pool has 307), every page
 * written.  The pool serves the first ones; once it has no slot left,
 * jemalloc grows by itself, in large regions, not by one forwarded extent
 * per block.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NTHREADS 4
#define ITERS 6000
#define LIVE 16
#define XCHG 64
#define MAX_LARGE (3u << 20)

struct block {
	unsigned char *p;
	size_t n;
	unsigned char tag;
};

static struct block xchg[XCHG];
static pthread_mutex_t xchg_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long errors;

static uint32_t rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static size_t pick_size(uint32_t *s)
{
	uint32_t r = rnd(s);

	switch (r % 4) {
	case 0:
		return 1 + r % 4096; /* small: slabs */
	case 1:
		return 8192 + r % (256u << 10);
	case 2:
		return (1u << 20) + r % (1u << 20); /* around the 2 MiB classes */
	default:
		return 64 + r % MAX_LARGE;
	}
}

/* Pattern: tag at the start, the end and every 4 KiB. */
static void fill(struct block *b)
{
	b->p[0] = b->tag;
	b->p[b->n - 1] = b->tag;
	for (size_t off = 4096; off < b->n; off += 4096)
		b->p[off] = b->tag;
}

static bool intact(const struct block *b, size_t upto)
{
	if (b->p[0] != b->tag || (upto == b->n && b->p[b->n - 1] != b->tag))
		return false;
	for (size_t off = 4096; off < upto; off += 4096)
		if (b->p[off] != b->tag)
			return false;
	return true;
}

static bool zeroed(const unsigned char *p, size_t n)
{
	for (size_t off = 0; off < n; off += 512)
		if (p[off])
			return false;
	return p[n - 1] == 0;
}

static void fail(const char *what)
{
	__atomic_add_fetch(&errors, 1, __ATOMIC_RELAXED);
	fprintf(stderr, "hak-jemalloc-prog: %s\n", what);
}

static void make(struct block *b, uint32_t *s, unsigned char tag)
{
	b->n = pick_size(s);
	b->tag = tag;
	if (rnd(s) & 1) {
		b->p = calloc(1, b->n);
		if (b->p && !zeroed(b->p, b->n))
			fail("calloc memory is not zero");
	} else {
		b->p = malloc(b->n);
	}
	if (!b->p) {
		fail("out of memory");
		b->n = 0;
		return;
	}
	fill(b);
}

static void resize(struct block *b, uint32_t *s)
{
	size_t n = pick_size(s), keep = n < b->n ? n : b->n;
	unsigned char *p = realloc(b->p, n);

	if (!p) {
		fail("realloc failed");
		return;
	}
	b->p = p;
	if (p[0] != b->tag || (keep > 4096 && p[4096] != b->tag))
		fail("realloc lost the contents");
	b->n = n;
	fill(b);
}

static void drop(struct block *b)
{
	if (b->p && !intact(b, b->n))
		fail("a block changed under its owner");
	free(b->p);
	b->p = NULL;
}

/* Swap with the exchange: the block another thread left there is ours to
 * check and free. */
static void trade(struct block *b, uint32_t *s)
{
	struct block other;
	unsigned k = rnd(s) % XCHG;

	pthread_mutex_lock(&xchg_lock);
	other = xchg[k];
	xchg[k] = *b;
	pthread_mutex_unlock(&xchg_lock);
	*b = other;
}

static void *worker(void *arg)
{
	uint32_t s = (uint32_t)(uintptr_t)arg * 2654435761u + 1;
	unsigned char tag = (unsigned char)(0x40 + (uintptr_t)arg);
	struct block live[LIVE] = {{0}};

	for (int i = 0; i < ITERS; i++) {
		struct block *b = &live[rnd(&s) % LIVE];

		switch (rnd(&s) % 4) {
		case 0:
			if (b->p)
				resize(b, &s);
			break;
		case 1:
			trade(b, &s);
			break;
		default:
			drop(b);
			make(b, &s, tag);
		}
	}
	for (int k = 0; k < LIVE; k++)
		drop(&live[k]);
	return NULL;
}

struct hj_stats {
	uint64_t extents_pool, extents_zeroed, bytes_asked, bytes_slots, extents_forwarded,
		grows_declined, slots_returned, errors, pool;
};

static bool adapter_stats(struct hj_stats *st)
{
	int (*get)(struct hj_stats *, size_t) =
		(int (*)(struct hj_stats *, size_t))dlsym(RTLD_DEFAULT, "hak_jemalloc_get_stats");

	memset(st, 0, sizeof(*st));
	if (!get || get(st, sizeof(*st)) < 0) {
		fprintf(stderr, "hak-jemalloc-prog: libhakjemalloc is not loaded\n");
		return false;
	}
	return true;
}

static int check_adapter(void)
{
	struct hj_stats st;

	if (!adapter_stats(&st))
		return 1;
	printf("pool %llu: %llu extents from it (%llu zeroed), %llu forwarded, %llu slots back, "
	       "%llu bad frees\n",
	       (unsigned long long)st.pool, (unsigned long long)st.extents_pool,
	       (unsigned long long)st.extents_zeroed, (unsigned long long)st.extents_forwarded,
	       (unsigned long long)st.slots_returned, (unsigned long long)st.errors);
	return st.extents_pool == 0 || st.errors != 0;
}

/* Past the adapter's youth (4 MiB that jemalloc took or gave back on its
 * own): 2 MiB blocks, written and kept, until a pool is live; then freed.
 * Returns whether it came. */
#define GROWN_BLOCK (2u << 20)
#define GROWN_MAX 32

static bool grow_up(void)
{
	void *b[GROWN_MAX];
	struct hj_stats st = {0};
	int n = 0;

	while (n < GROWN_MAX && adapter_stats(&st) && !st.pool) {
		b[n] = malloc(GROWN_BLOCK);
		if (!b[n])
			break;
		memset(b[n++], 0x3c, GROWN_BLOCK);
	}
	while (n > 0)
		free(b[--n]);
	return st.pool != 0;
}

#define YOUNG_SMALL 4096
#define YOUNG_SMALL_MAX 512u
#define YOUNG_BUF (256u << 10)
#define YOUNG_BUFS 4

static int young(void)
{
	static char *small[YOUNG_SMALL];
	char *buf[YOUNG_BUFS];
	struct hj_stats a, b;
	void *p;

	for (unsigned i = 0; i < YOUNG_SMALL; i++) {
		small[i] = malloc(16 + i % YOUNG_SMALL_MAX);
		if (small[i])
			small[i][0] = 1;
	}
	for (int i = 0; i < YOUNG_BUFS; i++) {
		buf[i] = calloc(1, YOUNG_BUF);
		if (buf[i])
			memset(buf[i], 0x11, YOUNG_BUF);
	}
	if (!adapter_stats(&a))
		return 1;
	printf("young: pool %llu, %llu extents from it, %llu forwarded\n",
	       (unsigned long long)a.pool, (unsigned long long)a.extents_pool,
	       (unsigned long long)a.extents_forwarded);
	if (a.pool != 0 || a.extents_pool != 0)
		fail("young: a program of 2 MiB made a pool");
	for (int i = 0; i < YOUNG_BUFS; i++)
		free(buf[i]);
	for (unsigned i = 0; i < YOUNG_SMALL; i++)
		free(small[i]);
	if (!grow_up())
		fail("young: no pool after more than 4 MiB held");
	p = malloc(GROWN_BLOCK);
	if (!p || !adapter_stats(&b))
		return 1;
	memset(p, 0x77, GROWN_BLOCK);
	free(p);
	printf("grown: pool %llu, %llu extents from it\n", (unsigned long long)b.pool,
	       (unsigned long long)b.extents_pool);
	if (b.extents_pool == 0)
		fail("young: once grown, no extent came from the pool");
	return errors ? 1 : 0;
}

#define OUTGROW_BLOCKS 2000
#define OUTGROW_SIZE (20u << 10)

static int outgrow(void)
{
	static char *b[OUTGROW_BLOCKS];
	struct hj_stats a, z;

	if (!grow_up() || !adapter_stats(&a)) {
		fail("outgrow: no pool");
		return 1;
	}
	for (int i = 0; i < OUTGROW_BLOCKS; i++) {
		b[i] = malloc(OUTGROW_SIZE);
		if (!b[i]) {
			fail("outgrow: malloc failed");
			break;
		}
		memset(b[i], 0x42, OUTGROW_SIZE);
	}
	if (!adapter_stats(&z))
		return 1;
	for (int i = 0; i < OUTGROW_BLOCKS; i++)
		free(b[i]);
	printf("outgrow: %d blocks, %llu extents from the pool, %llu forwarded, %llu growths "
	       "declined\n",
	       OUTGROW_BLOCKS, (unsigned long long)(z.extents_pool - a.extents_pool),
	       (unsigned long long)(z.extents_forwarded - a.extents_forwarded),
	       (unsigned long long)(z.grows_declined - a.grows_declined));
	if (z.extents_pool == a.extents_pool)
		fail("outgrow: the pool served none of the blocks");
	if ((z.extents_forwarded - a.extents_forwarded) * 10 > OUTGROW_BLOCKS)
		fail("outgrow: past the pool, extents were forwarded one by one");
	return errors ? 1 : 0;
}

#define CHURN_WARM 200
#define CHURN_STEPS 2000
#define CHURN_LIVE 2

static void churn_steps(unsigned char **buf, uint32_t *s, int steps)
{
	for (int i = 0; i < steps; i++) {
		unsigned char **b = &buf[i % CHURN_LIVE];
		size_t n = ((1u << 20) + rnd(s) % (1u << 20)) & ~(size_t)4095;

		free(*b);
		*b = malloc(n);
		if (!*b) {
			fail("out of memory");
			return;
		}
		for (size_t off = 0; off < n; off += 4096)
			(*b)[off] = 1;
	}
}

static int churn(void)
{
	unsigned char *buf[CHURN_LIVE] = {NULL};
	struct hj_stats a, b;
	uint32_t s = 1;

	churn_steps(buf, &s, CHURN_WARM);
	if (!adapter_stats(&a))
		return 1;
	churn_steps(buf, &s, CHURN_STEPS);
	if (!adapter_stats(&b))
		return 1;
	for (int k = 0; k < CHURN_LIVE; k++)
		free(buf[k]);
	printf("churn: pool %llu, %llu extents from it, %llu forwarded, %llu growths declined\n",
	       (unsigned long long)b.pool, (unsigned long long)(b.extents_pool - a.extents_pool),
	       (unsigned long long)(b.extents_forwarded - a.extents_forwarded),
	       (unsigned long long)(b.grows_declined - a.grows_declined));
	if (b.pool == 0 || b.extents_forwarded != a.extents_forwarded ||
	    b.extents_pool - a.extents_pool < CHURN_STEPS || b.errors || errors) {
		fprintf(stderr, "hak-jemalloc-prog: churn: extents left the pool\n");
		return 1;
	}
	return 0;
}

#define XT_PRODUCERS 3
#define XT_CONSUMERS 3
#define XT_ROUNDS 4
#define XT_BLOCKS 300 /* per producer and round */
#define XT_DEPTH 4    /* blocks in flight per consumer */
/* Up to jemalloc's thread cache limit: freed straight to the arena by a
 * thread that never allocated, and merged there with their neighbours. */
#define XT_SMALL_MAX (32u << 10)
#define XT_MID_MIN (64u << 10)
#define XT_MID_MAX (2u << 20)
#define XT_HUGE_MIN (8u << 20) /* from here jemalloc purges at once */
#define XT_HUGE_SPAN (4u << 20)
#define XT_HUGE_EVERY 16 /* one block in so many is over 8 MiB */

struct xt_queue {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct block b[XT_DEPTH];
	unsigned head, tail; /* head - tail blocks queued */
	bool done;
	bool zero[XT_DEPTH]; /* calloc'd: must still read as zero */
};

static struct xt_queue xt_q[XT_CONSUMERS];

static size_t xt_size(uint32_t *s)
{
	uint32_t r = rnd(s);

	if (r % XT_HUGE_EVERY == 0)
		return XT_HUGE_MIN + rnd(s) % XT_HUGE_SPAN;
	if (r & 1)
		return 1 + rnd(s) % XT_SMALL_MAX;
	return XT_MID_MIN + rnd(s) % (XT_MID_MAX - XT_MID_MIN);
}

/* calloc'd blocks are left as they came, so that the consumer reads them
 * back zeroed; the others carry the producer's pattern. */
static void xt_make(struct block *b, bool *zero, uint32_t *s, unsigned char tag)
{
	b->n = xt_size(s);
	b->tag = tag;
	*zero = rnd(s) & 1;
	b->p = *zero ? calloc(1, b->n) : malloc(b->n);
	if (!b->p) {
		fail("xthread: out of memory");
		b->n = 0;
	} else if (*zero && !zeroed(b->p, b->n)) {
		fail("xthread: calloc memory is not zero");
	} else if (!*zero) {
		fill(b);
	}
}

static void xt_push(struct xt_queue *q, const struct block *b, bool zero)
{
	pthread_mutex_lock(&q->lock);
	while (q->head - q->tail == XT_DEPTH)
		pthread_cond_wait(&q->cond, &q->lock);
	q->b[q->head % XT_DEPTH] = *b;
	q->zero[q->head % XT_DEPTH] = zero;
	q->head++;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

/* false once the queue is done and empty. */
static bool xt_pop(struct xt_queue *q, struct block *b, bool *zero)
{
	bool got;

	pthread_mutex_lock(&q->lock);
	while (q->head == q->tail && !q->done)
		pthread_cond_wait(&q->cond, &q->lock);
	got = q->head != q->tail;
	if (got) {
		*b = q->b[q->tail % XT_DEPTH];
		*zero = q->zero[q->tail % XT_DEPTH];
		q->tail++;
		pthread_cond_broadcast(&q->cond);
	}
	pthread_mutex_unlock(&q->lock);
	return got;
}

static void *xt_producer(void *arg)
{
	uintptr_t id = (uintptr_t)arg;
	uint32_t s = (uint32_t)id * 2654435761u + 7;
	unsigned char tag = (unsigned char)(0x60 + id);

	for (unsigned i = 0; i < XT_BLOCKS; i++) {
		struct block b;
		bool zero;

		xt_make(&b, &zero, &s, tag);
		if (b.p)
			xt_push(&xt_q[(id + i) % XT_CONSUMERS], &b, zero);
	}
	return NULL;
}

/* Never allocates: no stdio unless a check fails. */
static void *xt_consumer(void *arg)
{
	struct xt_queue *q = arg;
	struct block b;
	bool zero;

	while (xt_pop(q, &b, &zero)) {
		if (zero ? !zeroed(b.p, b.n) : !intact(&b, b.n))
			fail(zero ? "xthread: a calloc'd block is not zero when freed"
				  : "xthread: a block changed between its threads");
		free(b.p);
	}
	return NULL;
}

static bool xt_round(void)
{
	pthread_t prod[XT_PRODUCERS], cons[XT_CONSUMERS];
	bool ok = true;

	for (uintptr_t k = 0; k < XT_CONSUMERS; k++) {
		xt_q[k].head = xt_q[k].tail = 0;
		xt_q[k].done = false;
		ok &= pthread_create(&cons[k], NULL, xt_consumer, &xt_q[k]) == 0;
	}
	for (uintptr_t k = 1; k < XT_PRODUCERS; k++)
		ok &= pthread_create(&prod[k], NULL, xt_producer, (void *)k) == 0;
	if (!ok)
		return false;
	/* The main thread produces too: its arena holds what jemalloc took
	 * for itself before the pool was there, in pieces of one mapping. */
	xt_producer((void *)0);
	for (int k = 1; k < XT_PRODUCERS; k++)
		pthread_join(prod[k], NULL);
	for (int k = 0; k < XT_CONSUMERS; k++) {
		pthread_mutex_lock(&xt_q[k].lock);
		xt_q[k].done = true;
		pthread_cond_broadcast(&xt_q[k].cond);
		pthread_mutex_unlock(&xt_q[k].lock);
		pthread_join(cons[k], NULL);
	}
	return true;
}

static int xthread(void)
{
	for (int k = 0; k < XT_CONSUMERS; k++) {
		pthread_mutex_init(&xt_q[k].lock, NULL);
		pthread_cond_init(&xt_q[k].cond, NULL);
	}
	for (int r = 0; r < XT_ROUNDS; r++)
		if (!xt_round()) {
			fail("xthread: pthread_create failed");
			return 1;
		}
	return errors ? 1 : check_adapter();
}

typedef int mallctl_fn(const char *, void *, size_t *, void *, size_t);

#define ARENA_BLOCKS 8
#define ARENA_BLOCK (256u << 10)

struct arena_probe {
	mallctl_fn *ctl;
	unsigned ind;
	void *hooks;
	int errors;
};

static void *arena_hooks(mallctl_fn *ctl, unsigned ind)
{
	char name[64];
	void *h = NULL;
	size_t len = sizeof(h);

	snprintf(name, sizeof(name), "arena.%u.extent_hooks", ind);
	return ctl(name, &h, &len, NULL, 0) == 0 ? h : NULL;
}

static void *arena_thread(void *arg)
{
	struct arena_probe *a = arg;
	size_t len = sizeof(a->ind);
	unsigned char *b[ARENA_BLOCKS];

	/* Hooked before this thread ran: read them before allocating. */
	a->errors += a->ctl("thread.arena", &a->ind, &len, NULL, 0) != 0;
	a->hooks = arena_hooks(a->ctl, a->ind);
	for (int i = 0; i < ARENA_BLOCKS; i++) {
		b[i] = malloc(ARENA_BLOCK);
		a->errors += !b[i];
		if (b[i])
			memset(b[i], 0x5a, ARENA_BLOCK);
	}
	for (int i = 0; i < ARENA_BLOCKS; i++)
		free(b[i]);
	return NULL;
}

static int arenas(void)
{
	struct arena_probe a = {.ctl = (mallctl_fn *)dlsym(RTLD_DEFAULT, "mallctl")};
	void *create = dlsym(RTLD_DEFAULT, "pthread_create");
	struct hj_stats before, after;
	bool made = true;
	size_t len = sizeof(made);
	Dl_info where;
	pthread_t th;

	if (!a.ctl || !adapter_stats(&before)) {
		fail("arenas: no mallctl or no adapter");
		return 1;
	}
	if (!create || !dladdr(create, &where) || !strstr(where.dli_fname, "libhakjemalloc"))
		fail("arenas: pthread_create is not the adapter's");
	/* jemalloc answers as of the last epoch: refresh first. */
	if (a.ctl("epoch", &(uint64_t){1}, &(size_t){sizeof(uint64_t)}, &(uint64_t){1},
		  sizeof(uint64_t)) != 0 ||
	    a.ctl("arena.1.initialized", &made, &len, NULL, 0) != 0 || made)
		fail("arenas: arena 1 was made before any thread needed it");
	/* Then a pool, for the thread's blocks to come from (its monitor
	 * thread may take arena 1). */
	if (!grow_up() || !adapter_stats(&before)) {
		fail("arenas: no pool");
		return 1;
	}
	if (pthread_create(&th, NULL, arena_thread, &a) != 0 || pthread_join(th, NULL) != 0) {
		fail("arenas: pthread_create failed");
		return 1;
	}
	if (!adapter_stats(&after))
		return 1;
	printf("thread on arena %u, hooks %p (arena 0: %p), pool extents %llu -> %llu\n", a.ind,
	       a.hooks, arena_hooks(a.ctl, 0), (unsigned long long)before.extents_pool,
	       (unsigned long long)after.extents_pool);
	if (a.errors)
		fail("arenas: the thread's allocations failed");
	if (a.ind == 0)
		fail("arenas: the thread shares arena 0; nothing to check");
	if (!a.hooks || a.hooks != arena_hooks(a.ctl, 0))
		fail("arenas: the new thread's arena does not have the adapter's hooks");
	if (after.extents_pool <= before.extents_pool)
		fail("arenas: the new thread's large blocks did not come from the pool");
	return errors ? 1 : 0;
}

int main(int argc, char **argv)
{
	pthread_t th[NTHREADS];

	if (argc > 1 && strcmp(argv[1], "churn") == 0)
		return churn();
	if (argc > 1 && strcmp(argv[1], "xthread") == 0)
		return xthread();
	if (argc > 1 && strcmp(argv[1], "arenas") == 0)
		return arenas();
	if (argc > 1 && strcmp(argv[1], "young") == 0)
		return young();
	if (argc > 1 && strcmp(argv[1], "outgrow") == 0)
		return outgrow();
	for (uintptr_t i = 0; i < NTHREADS; i++)
		if (pthread_create(&th[i], NULL, worker, (void *)(i + 1)) != 0)
			return 1;
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	for (int k = 0; k < XCHG; k++)
		drop(&xchg[k]);
	if (errors)
		return 1;
	if (argc > 1 && strcmp(argv[1], "expect-pool") == 0)
		return check_adapter();
	return 0;
}
