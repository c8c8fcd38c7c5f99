/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * jemalloc makes an automatic arena when a thread first needs one, always
 * with its default hooks: no setting makes it use ours.  Making every
 * arena up front, as hak_jemalloc_install once did, cost each process the
 * metadata of arenas it may never use: on a 2-core VM, 7 arenas, 150 page
 * faults and 1.5 ms at start.  So a thread's arena is hooked when the
 * thread starts: pthread_create is wrapped, and the new thread has jemalloc
 * choose its arena and hooks it before its start routine runs.
 *
 * Exported unversioned (the version script does not name it): a program's
 * reference to any version of glibc's pthread_create binds to it.  A
 * thread made some other way (clone) runs on unhooked arenas: jemalloc's
 * own extents, as without the adapter.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>

#include "adapter.h"

typedef int create_fn(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

struct start {
	void *(*fn)(void *);
	void *arg;
};

static create_fn *next_create(void)
{
	static create_fn *next;
	create_fn *f = __atomic_load_n(&next, __ATOMIC_ACQUIRE);

	if (!f) {
		f = (create_fn *)dlsym(RTLD_NEXT, "pthread_create");
		__atomic_store_n(&next, f, __ATOMIC_RELEASE);
	}
	return f;
}

static void *start(void *p)
{
	struct start s = *(struct start *)p;

	free(p);
	hj_hook_thread_arena();
	return s.fn(s.arg);
}

HJ_EXPORT int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*fn)(void *),
			     void *arg)
{
	create_fn *create = next_create();
	struct start *s;
	int r;

	if (!create)
		return EAGAIN;
	s = malloc(sizeof(*s));
	if (!s)
		return create(thread, attr, fn, arg);
	s->fn = fn;
	s->arg = arg;
	r = create(thread, attr, start, s);
	if (r != 0)
		free(s);
	return r;
}
