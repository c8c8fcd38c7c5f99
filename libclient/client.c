/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The handle: lifetime, settings, logging, counters and statistics. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define HAK_LOG_ENV "HAKCLIENT_LOG"
#define HAK_LOG_DEFAULT LOG_ERR
#define HAK_LOG_LINE_MAX 512

__thread unsigned hak_tls_shard __attribute__((tls_model("initial-exec")));
static unsigned next_shard;

unsigned hak_shard_pick(void)
{
	/* Round robin: threads created together land on different shards. */
	unsigned s = __atomic_fetch_add(&next_shard, 1, __ATOMIC_RELAXED) % HAK_COUNTER_SHARDS;

	hak_tls_shard = s + 1;
	return s + 1;
}

void *hak_map_private(size_t size, int extra_flags)
{
	int saved = errno;
	void *m = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0);

	errno = saved;
	return m == MAP_FAILED ? NULL : m;
}

void hak_log_impl(struct hak_client *c, int prio, const char *file, int line, const char *fn,
		  const char *fmt, ...)
{
	hak_log_fn log_fn = __atomic_load_n(&c->log_fn, __ATOMIC_RELAXED);
	void *data = __atomic_load_n(&c->log_data, __ATOMIC_RELAXED);
	int saved = errno;
	va_list ap;

	if (!log_fn)
		return;
	va_start(ap, fmt);
	log_fn(data, prio, file, line, fn, fmt, ap);
	va_end(ap);
	errno = saved;
}

static const struct {
	const char *name;
	int prio;
} log_names[] = {
	{"emerg", LOG_EMERG},  {"alert", LOG_ALERT},   {"crit", LOG_CRIT},
	{"err", LOG_ERR},      {"error", LOG_ERR},     {"warning", LOG_WARNING},
	{"warn", LOG_WARNING}, {"notice", LOG_NOTICE}, {"info", LOG_INFO},
	{"debug", LOG_DEBUG},
};

static const char *const prio_names[] = {"emerg",   "alert",  "crit", "err",
					 "warning", "notice", "info", "debug"};

/*
 * The log function while the application has installed none and
 * $HAKCLIENT_LOG is set: the operator asked to see why a program went
 * local, and the program may not know this library.  One write(2) of a
 * line formatted on the stack: no stdio lock, no malloc (this may run
 * inside an allocator).
 */
__attribute__((format(printf, 6, 0))) static void log_stderr(void *data, int prio, const char *file,
							     int line, const char *fn,
							     const char *fmt, va_list ap)
{
	char msg[HAK_LOG_LINE_MAX];
	int n = snprintf(msg, sizeof(msg), "libhakclient[%d]: %s: ", (int)getpid(),
			 prio >= LOG_EMERG && prio <= LOG_DEBUG ? prio_names[prio] : "?");

	if (n < 0 || (size_t)n >= sizeof(msg) - 1)
		return;
	vsnprintf(msg + n, sizeof(msg) - (size_t)n - 1, fmt, ap);
	n = (int)strlen(msg);
	msg[n++] = '\n';
	if (write(STDERR_FILENO, msg, (size_t)n) < 0)
		return; /* nowhere left to say it */
}

/* $HAKCLIENT_LOG: a syslog level name or number; anything else is ignored. */
static int log_priority_from_env(void)
{
	const char *v = secure_getenv(HAK_LOG_ENV);
	char *end;
	long n;

	if (!v || !*v)
		return HAK_LOG_DEFAULT;
	for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++)
		if (strcasecmp(v, log_names[i].name) == 0)
			return log_names[i].prio;
	n = strtol(v, &end, 10);
	if (*end == '\0' && n >= LOG_EMERG && n <= LOG_DEBUG)
		return (int)n;
	return HAK_LOG_DEFAULT;
}

static const struct {
	const char *name;
	int mode;
} mode_names[] = {
	{"shared", HAK_MODE_SHARED},
	{"auto", HAK_MODE_AUTO},
	{"local", HAK_MODE_LOCAL},
};

/* $HAK_MODE: auto, shared or local; anything else is ignored (shared, the
 * behaviour of version 0.1). */
static int mode_from_env(void)
{
	const char *v = secure_getenv(HAK_MODE_ENV);

	for (size_t i = 0; v && i < sizeof(mode_names) / sizeof(mode_names[0]); i++)
		if (strcasecmp(v, mode_names[i].name) == 0)
			return mode_names[i].mode;
	return HAK_MODE_SHARED;
}

static int store_socket_path(struct hak_client *c, const char *path)
{
	if (strlen(path) >= sizeof(c->socket_path))
		return -ENAMETOOLONG;
	strcpy(c->socket_path, path);
	return 0;
}

/* $HAKZEROD_SOCKET, else the compiled-in default. */
static void default_socket_path(struct hak_client *c)
{
	const char *env = secure_getenv(HAK_SOCKET_ENV);

	c->socket_path_err = 0;
	if (env && *env)
		c->socket_path_err = store_socket_path(c, env);
	else
		store_socket_path(c, HAK_DEFAULT_SOCKET);
}

HAK_EXPORT int hak_client_new(struct hak_client **out)
{
	struct hak_client *c;
	int saved = errno, r;

	if (!out)
		return -EINVAL;
	/* The counters are cache-line aligned: page alignment covers it. */
	c = hak_map_private(sizeof(*c), 0);
	if (!c)
		return -ENOMEM;
	c->refcount = 1;
	c->id = hak_tcache_next_id();
	pthread_mutex_init(&c->lock, NULL);
	hak_fallback_init(c);
	c->log_priority = log_priority_from_env();
	if (secure_getenv(HAK_LOG_ENV))
		c->log_fn = log_stderr;
	c->mode = mode_from_env();
	errno = saved; /* strtol may have set it */
	c->sock = -1;
	c->mon.wake_fd = -1;
	c->pf.efd = -1;
	default_socket_path(c);
	r = hak_fork_register(c);
	if (r < 0) {
		hak_fallback_fini(c);
		pthread_mutex_destroy(&c->lock);
		HAK_SYSCALL(munmap(c, sizeof(*c)));
		return r;
	}
	*out = c;
	return 0;
}

HAK_EXPORT struct hak_client *hak_client_ref(struct hak_client *c)
{
	if (c)
		__atomic_add_fetch(&c->refcount, 1, __ATOMIC_RELAXED);
	return c;
}

static void client_free(struct hak_client *c)
{
	int saved = errno;

	hak_fork_unregister(c);
	hak_monitor_stop(c);
	pthread_mutex_lock(&c->lock);
	hak_prefault_fini(c);
	if (c->sock >= 0)
		close(c->sock);
	if (c->mon.wake_fd >= 0)
		close(c->mon.wake_fd);
	pthread_mutex_unlock(&c->lock);
	for (unsigned i = 0; i < c->npools; i++)
		hak_pool_destroy(c->pools[i]);
	/* The fallbacks themselves stay mapped: the caller holds them. */
	hak_fallback_fini(c);
	pthread_mutex_destroy(&c->lock);
	munmap(c, sizeof(*c));
	errno = saved;
}

HAK_EXPORT struct hak_client *hak_client_unref(struct hak_client *c)
{
	if (!c)
		return NULL;
	/* acq_rel: whatever other owners did with the handle happens before
	 * the last one tears it down. */
	if (__atomic_sub_fetch(&c->refcount, 1, __ATOMIC_ACQ_REL) > 0)
		return c;
	client_free(c);
	return NULL;
}

HAK_EXPORT int hak_client_set_log_fn(struct hak_client *c, hak_log_fn fn, void *data)
{
	if (!c)
		return -EINVAL;
	__atomic_store_n(&c->log_data, data, __ATOMIC_RELAXED);
	__atomic_store_n(&c->log_fn, fn, __ATOMIC_RELAXED);
	return 0;
}

HAK_EXPORT int hak_client_set_log_priority(struct hak_client *c, int priority)
{
	if (!c || priority < LOG_EMERG || priority > LOG_DEBUG)
		return -EINVAL;
	__atomic_store_n(&c->log_priority, priority, __ATOMIC_RELAXED);
	return 0;
}

HAK_EXPORT int hak_client_set_socket(struct hak_client *c, const char *path)
{
	int r = 0;

	if (!c || (path && !*path))
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	if (path) {
		r = store_socket_path(c, path);
		if (r == 0)
			c->socket_path_err = 0;
	} else {
		default_socket_path(c);
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}

HAK_EXPORT int hak_client_set_pool_size(struct hak_client *c, size_t bytes)
{
	if (!c)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	c->pool_bytes = bytes;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

HAK_EXPORT int hak_client_set_mode(struct hak_client *c, int mode)
{
	int r = 0;

	if (!c || mode < HAK_MODE_SHARED || mode > HAK_MODE_LOCAL)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	/* Fixed once connected: the pools and the monitor follow the mode. */
	if (c->want_connect)
		r = -EBUSY;
	else
		c->mode = mode;
	pthread_mutex_unlock(&c->lock);
	return r;
}

HAK_EXPORT int hak_client_is_connected(struct hak_client *c)
{
	struct hak_pool *p;

	if (!c)
		return -EINVAL;
	p = hak_pool_current(c);
	return p && !p->local;
}

static void sum_shards(const struct hak_ctrl_counters *sh, uint64_t v[HAK_CNT_NR])
{
	for (unsigned s = 0; s < HAK_COUNTER_SHARDS; s++)
		for (unsigned k = 0; k < HAK_CNT_NR; k++)
			v[k] += hak_load64_relaxed(&sh[s].v[k]);
}

HAK_EXPORT int hak_client_get_stats(struct hak_client *c, struct hak_client_stats *st,
				    size_t st_size)
{
	uint64_t v[HAK_CNT_NR] = {0};
	struct hak_client_stats all = {0};
	struct hak_pool *cur;
	unsigned n;

	if (!c || !st)
		return -EINVAL;
	hak_tcache_count_flush_for(c);
	sum_shards(c->priv, v);
	n = hak_npools(c);
	for (unsigned i = 0; i < n; i++) {
		struct hak_pool *p = c->pools[i];

		/* A fork child has no mapping of its parent's counters. */
		if (!__atomic_load_n(&p->absent, __ATOMIC_RELAXED))
			sum_shards(p->counters, v);
		all.local_pools += p->local;
		all.local_zeroed += hak_local_zeroed(p);
	}
	all.alloc_ready = v[HAK_CNT_ALLOC_READY];
	all.alloc_dirty = v[HAK_CNT_ALLOC_DIRTY];
	all.alloc_inline_zero = v[HAK_CNT_ALLOC_INLINE_ZERO];
	all.alloc_mmap = v[HAK_CNT_ALLOC_MMAP];
	all.alloc_large = v[HAK_CNT_ALLOC_LARGE];
	all.free_pool = v[HAK_CNT_FREE_POOL];
	all.free_mmap = v[HAK_CNT_FREE_MMAP];
	all.returned = v[HAK_CNT_RETURNED];
	all.doorbells = v[HAK_CNT_DOORBELLS];
	all.reconnects = __atomic_load_n(&c->reconnects, __ATOMIC_RELAXED);
	cur = hak_pool_current(c);
	all.pool_bytes = cur ? cur->size : 0;
	all.connected = cur && !cur->local;
	all.local = cur && cur->local;
	memcpy(st, &all, st_size < sizeof(all) ? st_size : sizeof(all));
	return 0;
}
