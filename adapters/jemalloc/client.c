/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The adapter's libhakclient handle, made on first need from inside a hook;
 * installing the hooks on the arenas jemalloc has, and on each new thread's
 * arena (threads.c); counters.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter.h"

/* Arenas whose own hooks we remember one by one; beyond, arena 0's (all
 * automatic arenas start with jemalloc's default hooks). */
#define HJ_MAX_ARENAS 1024

enum { HJ_UNTRIED, HJ_MAKING, HJ_READY, HJ_FAILED };

static int state; /* atomic: HJ_* */
static struct hak_client *client;
static extent_hooks_t *orig_hooks[HJ_MAX_ARENAS];
static uint64_t counters[HJ_NCOUNTERS];
/* jemalloc's default hooks, once an arena is seen with them; atomic. */
static extent_hooks_t *jemallocs;

void hj_count(enum hj_counter k, uint64_t n)
{
	__atomic_fetch_add(&counters[k], n, __ATOMIC_RELAXED);
}

extent_hooks_t *hj_orig(unsigned arena_ind)
{
	extent_hooks_t *h = arena_ind < HJ_MAX_ARENAS
				    ? __atomic_load_n(&orig_hooks[arena_ind], __ATOMIC_ACQUIRE)
				    : NULL;

	return h ? h : __atomic_load_n(&orig_hooks[0], __ATOMIC_ACQUIRE);
}

bool hj_orig_is_jemallocs(const extent_hooks_t *h)
{
	return h && h == __atomic_load_n(&jemallocs, __ATOMIC_ACQUIRE);
}

/* Hooks are jemalloc's own when their merge lives in the object that
 * defines mallctl (libjemalloc, or the program it is linked into). */
static bool from_jemalloc(const extent_hooks_t *h)
{
	Dl_info hook, ctl;

	return h && h->merge && dladdr((void *)h->merge, &hook) && dladdr((void *)mallctl, &ctl) &&
	       hook.dli_fbase == ctl.dli_fbase;
}

/* Without $HAK_MODE the adapter takes whatever is there: the daemon's pool
 * when it answers, a local one meanwhile. */
static struct hak_client *make_client(void)
{
	struct hak_client *c;

	if (hak_client_new(&c) < 0)
		return NULL;
	if (!getenv("HAK_MODE"))
		hak_client_set_mode(c, HAK_MODE_AUTO);
	/* In shared mode with no daemon yet this fails and the library
	 * retries in the background: the handle is usable either way. */
	hak_client_connect(c);
	return c;
}

/* One thread makes the handle; the others, and the maker itself when
 * making it allocates (pthread_create does) and comes back here, get NULL
 * and use jemalloc's own hooks meanwhile: nothing ever waits. */
struct hak_client *hj_client(void)
{
	int s = __atomic_load_n(&state, __ATOMIC_ACQUIRE);
	struct hak_client *c;

	if (s == HJ_READY)
		return client;
	if (s != HJ_UNTRIED || !__atomic_compare_exchange_n(&state, &s, HJ_MAKING, 0,
							    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return NULL;
	c = make_client();
	client = c;
	/* Pairs with the acquire load above: client is set before READY. */
	__atomic_store_n(&state, c ? HJ_READY : HJ_FAILED, __ATOMIC_RELEASE);
	return c;
}

struct hak_client *hj_client_ready(void)
{
	/* Pairs with the release store of READY in hj_client. */
	return __atomic_load_n(&state, __ATOMIC_ACQUIRE) == HJ_READY ? client : NULL;
}

bool hj_client_untried(void)
{
	return __atomic_load_n(&state, __ATOMIC_ACQUIRE) == HJ_UNTRIED;
}

bool hj_pool_live(struct hak_client *c)
{
	size_t cs;

	/* -ENOTCONN when no pool is current, -EINVAL without a handle. */
	return hak_client_class_size(c, HJ_PAGE, &cs) == 0;
}

/* jemalloc's answers about its arenas are as of the last "epoch" write. */
static void refresh(void)
{
	uint64_t epoch = 1;
	size_t len = sizeof(epoch);

	mallctl("epoch", &epoch, &len, &epoch, len);
}

/* Whether jemalloc had made arena i at the last refresh (it makes
 * automatic arenas as threads first need them). */
static bool arena_made(unsigned i)
{
	char name[64];
	bool made = false;
	size_t len = sizeof(made);

	snprintf(name, sizeof(name), "arena.%u.initialized", i);
	return mallctl(name, &made, &len, NULL, 0) == 0 && made;
}

/* The previous hooks are stored before ours go in, so that a hook running
 * on another thread the moment they do finds them. */
static int set_hooks(unsigned i)
{
	char name[64];
	extent_hooks_t *old = NULL, *new = &hj_hooks;
	size_t len = sizeof(old);
	int r;

	snprintf(name, sizeof(name), "arena.%u.extent_hooks", i);
	r = mallctl(name, &old, &len, NULL, 0);
	if (r != 0)
		return -r;
	if (old == &hj_hooks)
		return 0;
	if (i < HJ_MAX_ARENAS)
		__atomic_store_n(&orig_hooks[i], old, __ATOMIC_RELEASE);
	/* Pairs with the acquire load in hj_orig_is_jemallocs. */
	if (from_jemalloc(old))
		__atomic_store_n(&jemallocs, old, __ATOMIC_RELEASE);
	return -mallctl(name, NULL, NULL, &new, sizeof(new));
}

void hj_hook_thread_arena(void)
{
	unsigned ind;
	size_t len = sizeof(ind);
	int saved = errno;

	/* Reading it makes jemalloc choose (and if need be make) the calling
	 * thread's arena now. */
	if (mallctl("thread.arena", &ind, &len, NULL, 0) == 0)
		set_hooks(ind);
	errno = saved;
}

HJ_EXPORT int hak_jemalloc_install(void)
{
	unsigned narenas;
	size_t len = sizeof(narenas);
	int saved = errno, r;

	refresh();
	r = -mallctl("arenas.narenas", &narenas, &len, NULL, 0);
	/* Arena 0 first: its old hooks stand in for arenas past the table.
	 * Arenas not made yet are not made here: each costs jemalloc its
	 * metadata, and a thread's arena is hooked when the thread starts. */
	for (unsigned i = 0; r == 0 && i < narenas; i++)
		if (i == 0 || arena_made(i))
			r = set_hooks(i);
	errno = saved;
	return r;
}

HJ_EXPORT int hak_jemalloc_get_stats(struct hak_jemalloc_stats *st, size_t st_size)
{
	struct hak_jemalloc_stats all = {0};
	uint64_t v[HJ_NCOUNTERS];
	/* Never makes the handle: statistics must not connect. */
	struct hak_client *c = hj_client_ready();
	struct hak_client_stats cs = {0};

	if (!st)
		return -EINVAL;
	for (unsigned k = 0; k < HJ_NCOUNTERS; k++)
		v[k] = __atomic_load_n(&counters[k], __ATOMIC_RELAXED);
	all.extents_pool = v[HJ_EXTENTS_POOL];
	all.extents_zeroed = v[HJ_EXTENTS_ZEROED];
	all.bytes_asked = v[HJ_BYTES_ASKED];
	all.bytes_slots = v[HJ_BYTES_SLOTS];
	all.extents_forwarded = v[HJ_EXTENTS_FORWARDED];
	all.grows_declined = v[HJ_GROWS_DECLINED];
	all.slots_returned = v[HJ_SLOTS_RETURNED];
	all.errors = v[HJ_ERRORS];
	if (c && hak_client_get_stats(c, &cs, sizeof(cs)) == 0)
		all.pool = cs.connected ? 1 : cs.local ? 2 : 0;
	memcpy(st, &all, st_size < sizeof(all) ? st_size : sizeof(all));
	return 0;
}

/* Loaded (LD_PRELOAD, or linked): hooks on the arenas there are (arena 0;
 * threads.c does the rest).  jemalloc is a dependency, so it is
 * initialised by now. */
__attribute__((constructor)) static void hj_init(void)
{
	hak_jemalloc_install();
}
