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
 * copied; the parent unlocks, the child re-initialises the locks (the
 * thread that held them in the parent does not exist in the child).
 */
#include <errno.h>
#include <pthread.h>

#include "internal.h"

static pthread_mutex_t fork_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hak_client *fork_list;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static int fork_once_err;

static void atfork_prepare(void)
{
	pthread_mutex_lock(&fork_lock);
	for (struct hak_client *c = fork_list; c; c = c->fork_next)
		pthread_mutex_lock(&c->lock);
}

static void atfork_parent(void)
{
	for (struct hak_client *c = fork_list; c; c = c->fork_next)
		pthread_mutex_unlock(&c->lock);
	pthread_mutex_unlock(&fork_lock);
}

static void atfork_child(void)
{
	int saved = errno;

	for (struct hak_client *c = fork_list; c; c = c->fork_next) {
		hak_client_reset_in_child(c);
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
