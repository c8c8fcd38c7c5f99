/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fork(): a MAP_SHARED pool is not copy-on-write, so a child must never
 * touch it.  The pool and control mappings are MADV_DONTFORK (the child has
 * no such pages at all); here the child's copy of every handle forgets its
 * pools, sockets and threads, and reconnects afresh on first need.
 *
 * One pthread_atfork registration serves every handle: a list of live
 * handles under a mutex.  prepare takes the list lock and then each handle's
 * lock, so no connect or reconnect is half done when the address space is
 * copied, and each handle's fallback table lock, so no fallback table is
 * half rewritten; the parent unlocks, the child re-initialises the locks (the
 * thread that held them in the parent does not exist in the child).
 */
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#include "internal.h"

static pthread_mutex_t fork_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hak_client *fork_list;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static int fork_once_err;

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* From the atfork child handler: only this thread exists.  The child keeps
 * nothing of the parent's connection: the socket is closed (or the daemon
 * would not see the parent die), the pools become absent. */
static void hak_client_reset_in_child(struct hak_client *c)
{
	c->mon.running = false;
	c->mon.stopping = false;
	c->mon.retry = false;
	close_fd(&c->mon.wake_fd);
	close_fd(&c->sock);
	hak_prefault_forget(c);
	/* A local pool is private memory, copy-on-write: the child keeps it,
	 * and the monitor it restarts services it.  Shared pools are gone. */
	if (c->cur && !c->cur->local)
		__atomic_store_n(&c->cur, NULL, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < c->npools; i++) {
		if (c->pools[i]->local)
			hak_local_reset_in_child(c->pools[i]);
		else
			hak_pool_forget(c->pools[i]);
	}
	__atomic_store_n(&c->child_restart, c->want_connect, __ATOMIC_RELAXED);
}

static void atfork_prepare(void)
{
	pthread_mutex_lock(&fork_lock);
	for (struct hak_client *c = fork_list; c; c = c->fork_next) {
		pthread_mutex_lock(&c->lock);
		pthread_mutex_lock(&c->fb.lock);
	}
}

static void atfork_parent(void)
{
	for (struct hak_client *c = fork_list; c; c = c->fork_next) {
		pthread_mutex_unlock(&c->fb.lock);
		pthread_mutex_unlock(&c->lock);
	}
	pthread_mutex_unlock(&fork_lock);
}

static void atfork_child(void)
{
	int saved = errno;

	for (struct hak_client *c = fork_list; c; c = c->fork_next) {
		hak_client_reset_in_child(c);
		hak_fallback_reset_in_child(c);
		pthread_mutex_init(&c->lock, NULL);
	}
	pthread_mutex_init(&fork_lock, NULL);
	errno = saved;
}

static void fork_init(void)
{
	fork_once_err = -pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

int hak_fork_register(struct hak_client *c)
{
	pthread_once(&fork_once, fork_init);
	if (fork_once_err < 0)
		return fork_once_err;
	pthread_mutex_lock(&fork_lock);
	c->fork_next = fork_list;
	fork_list = c;
	pthread_mutex_unlock(&fork_lock);
	return 0;
}

void hak_fork_unregister(struct hak_client *c)
{
	pthread_mutex_lock(&fork_lock);
	for (struct hak_client **pp = &fork_list; *pp; pp = &(*pp)->fork_next) {
		if (*pp == c) {
			*pp = c->fork_next;
			break;
		}
	}
	pthread_mutex_unlock(&fork_lock);
}

bool hak_fork_call_if_live(struct hak_client *c, uint64_t id,
			   void (*fn)(struct hak_client *c, void *arg), void *arg)
{
	bool live = false;

	pthread_mutex_lock(&fork_lock);
	/* client_free unregisters before it tears anything down, and waits for
	 * this lock to do so.  The id tells a new handle at the same address
	 * from the one that was bound. */
	for (struct hak_client *x = fork_list; x && !live; x = x->fork_next)
		live = x == c && x->id == id;
	if (live)
		fn(c, arg);
	pthread_mutex_unlock(&fork_lock);
	return live;
}
