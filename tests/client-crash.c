/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hak-client's scenarios under crashes and forks: victim, holder, fork. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client.h"
#include "testutil.h"

/* ------------------------------------------------------------ victim */

/* Shared with the driver through a file: where each thread is. */
enum { OP_NONE, OP_ALLOC, OP_FREE };

struct victim_state {
	uint32_t op[MAX_THREADS];
	uint32_t inside[MAX_THREADS];
	uint64_t calls[MAX_THREADS];
};

struct victim_arg {
	struct victim_state *st;
	unsigned t;
	unsigned batch;
};

static void mark(struct victim_state *st, unsigned t, uint32_t op, uint32_t inside)
{
	__atomic_store_n(&st->op[t], op, __ATOMIC_RELAXED);
	__atomic_store_n(&st->inside[t], inside, __ATOMIC_RELEASE);
}

/* Allocate a batch, touch it, free it; forever (the driver kills us). */
static void *victim_main(void *arg)
{
	struct victim_arg *a = arg;
	void **p = calloc(a->batch, sizeof(*p));
	size_t size = classes[(a->t & 1) && nclasses > 1 ? 1 : 0];

	if (!p)
		tu_fail("out of memory");
	for (;;) {
		for (unsigned i = 0; i < a->batch; i++) {
			int how;

			mark(a->st, a->t, OP_ALLOC, 1);
			p[i] = alloc_or_fail(size, i & 1 ? HAK_ALLOC_DIRTY_OK : 0, &how);
			mark(a->st, a->t, OP_ALLOC, 0);
			*(volatile char *)p[i] = 1;
			__atomic_add_fetch(&a->st->calls[a->t], 1, __ATOMIC_RELAXED);
		}
		for (unsigned i = 0; i < a->batch; i++) {
			mark(a->st, a->t, OP_FREE, 1);
			free_or_fail(p[i], size);
			mark(a->st, a->t, OP_FREE, 0);
			__atomic_add_fetch(&a->st->calls[a->t], 1, __ATOMIC_RELAXED);
		}
	}
	return NULL;
}

int cmd_victim(const struct opts *o)
{
	static struct victim_arg args[MAX_THREADS];
	pthread_t th[MAX_THREADS];
	unsigned n = o->threads ? o->threads : 1;
	struct victim_state *st;
	int fd;

	if (!o->state || n > MAX_THREADS)
		tu_fail("victim needs --state FILE and at most %d threads", MAX_THREADS);
	fd = open(o->state, O_RDWR | O_CLOEXEC);
	st = fd < 0 ? MAP_FAILED
		    : mmap(NULL, sizeof(*st), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (st == MAP_FAILED)
		tu_fail("mapping %s: %s", o->state, strerror(errno));
	close(fd);
	connect_or_fail(o);
	for (unsigned t = 0; t < n; t++) {
		args[t] = (struct victim_arg){st, t, o->count ? (unsigned)o->count : 256};
		if (pthread_create(&th[t], NULL, victim_main, &args[t]) != 0)
			tu_fail("pthread_create");
	}
	tu_say("running threads=%u", n);
	for (unsigned t = 0; t < n; t++)
		pthread_join(th[t], NULL);
	return 0;
}

/* ------------------------------------------------------------ holder */

struct holder_arg {
	unsigned t;
	unsigned window;
	volatile bool *stop;
	uint64_t allocs, dirty;
};

static uint64_t holder_stamp(unsigned t, uint64_t seq)
{
	return ((uint64_t)(getpid() & 0xffffff) << 40) | ((uint64_t)t << 32) | (seq & 0xffffffff) |
	       1;
}

/* A dirty page may hold a stamp of this process (any thread), or zero. */
static void check_dirty_stamps(const void *p, size_t size)
{
	const uint64_t *w = p;
	uint64_t mine = (uint64_t)(getpid() & 0xffffff);

	for (size_t i = 0; i < page_round(size) / sizeof(*w); i++)
		if (w[i] && (w[i] >> 40) != mine)
			fail_nonzero("dirty page", p, size, (long)(i * sizeof(*w)));
}

static void *holder_main(void *arg)
{
	struct holder_arg *a = arg;
	struct held win[WINDOW_MAX] = {{0}};
	uint64_t rng = a->t * 0x9e3779b97f4a7c15ull + 1, seq = 0;

	while (!*a->stop) {
		struct held *h = &win[seq % a->window];
		unsigned flags = xorshift(&rng) & 1 ? HAK_ALLOC_DIRTY_OK : 0;
		int how;

		if (h->p) {
			check_stamp(h->p, h->size, h->first, "page with two holders");
			free_or_fail(h->p, h->size);
		}
		h->size = classes[xorshift(&rng) % 8 == 0 && nclasses > 1 ? 1 : 0];
		h->p = alloc_or_fail(h->size, flags, &how);
		if (how & HAK_ALLOC_ZEROED)
			check_zero("page handed out as zeroed", h->p, h->size);
		else
			check_dirty_stamps(h->p, h->size);
		h->first = holder_stamp(a->t, ++seq);
		fill_stamp(h->p, h->size, h->first);
		a->allocs++;
		a->dirty += !(how & HAK_ALLOC_ZEROED);
	}
	for (unsigned i = 0; i < a->window; i++)
		if (win[i].p) {
			check_stamp(win[i].p, win[i].size, win[i].first, "page with two holders");
			free_or_fail(win[i].p, win[i].size);
		}
	return NULL;
}

int cmd_holder(const struct opts *o)
{
	static struct holder_arg args[MAX_THREADS];
	pthread_t th[MAX_THREADS];
	unsigned n = o->threads ? o->threads : 2;
	volatile bool stop = false;
	uint64_t allocs = 0, dirty = 0;
	char line[64];

	if (n > MAX_THREADS)
		tu_fail("at most %d threads", MAX_THREADS);
	connect_or_fail(o);
	for (unsigned t = 0; t < n; t++) {
		args[t] = (struct holder_arg){t, o->window ? o->window : 16, &stop, 0, 0};
		if (pthread_create(&th[t], NULL, holder_main, &args[t]) != 0)
			tu_fail("pthread_create");
	}
	tu_say("running threads=%u", n);
	for (read_cmd(line, sizeof(line)); line[0] && strcmp(line, "exit");
	     read_cmd(line, sizeof(line)))
		if (strcmp(line, "report") == 0)
			print_stats("holder");
	stop = true;
	for (unsigned t = 0; t < n; t++) {
		pthread_join(th[t], NULL);
		allocs += args[t].allocs;
		dirty += args[t].dirty;
	}
	print_stats("end");
	tu_say("ok allocs=%llu dirty=%llu", (unsigned long long)allocs, (unsigned long long)dirty);
	hak_client_unref(client);
	return 0;
}

/* -------------------------------------------------------------- fork */

/* Slots the fork child holds at once after it freed the parent's pages. */
#define FORK_CHILD_CHURN 256u

static void pipe_write(int fd, char c)
{
	if (write(fd, &c, 1) != 1)
		tu_fail("pipe write: %s", strerror(errno));
}

static void pipe_read(int fd, char want)
{
	char c;

	if (read(fd, &c, 1) != 1 || c != want)
		tu_fail("pipe: the other side of the fork went away");
}

/* In a grandchild: touching a pool page of the parent must fault (the
 * mapping is not inherited), never reach the parent's memory. */
static void check_parent_page_faults(void *p)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		tu_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL);
		*(volatile uint64_t *)p = 0xbadbadbadbadbadull;
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid)
		tu_fail("waitpid: %s", strerror(errno));
	if (!WIFSIGNALED(status) || (WTERMSIG(status) != SIGSEGV && WTERMSIG(status) != SIGBUS))
		tu_fail("a fork child wrote into its parent's pool page %p (status %#x)", p,
			status);
}

/* Allocates until one allocation came from the child's own pool. */
static void child_wait_pool(uint64_t tag, uint64_t *rng)
{
	uint64_t deadline = tu_now_ms() + REACT_MS;

	while (stats().alloc_ready == 0) {
		struct held h;

		if (tu_now_ms() > deadline)
			tu_fail("the fork child got no page from a pool of its own in %d ms",
				REACT_MS);
		hold_n(&h, 1, tag, rng);
		free_or_fail(h.p, h.size);
		tu_sleep_ms(1);
	}
}

/* More slots held at once than the library's local cache holds, so that
 * their frees reach the return ring: if the child (wrongly) still had the
 * parent's pool, the parent's daemon would take back slots the parent
 * holds.  The smallest class: the most slots for the least time. */
static void child_churn(uint64_t tag)
{
	static struct held h[FORK_CHILD_CHURN];

	for (unsigned i = 0; i < FORK_CHILD_CHURN; i++) {
		int how;

		h[i].size = classes[0];
		h[i].p = alloc_or_fail(h[i].size, 0, &how);
		check_fresh(h[i].p, h[i].size, 0, how, tag);
		*(uint64_t *)h[i].p = tag << TAG_SHIFT;
	}
	for (unsigned i = 0; i < FORK_CHILD_CHURN; i++)
		free_or_fail(h[i].p, h[i].size);
}

struct fork_ctx {
	struct held parent[MAX_CLASSES * 2];
	unsigned np;
	struct held large; /* an mmap fallback: private, copy-on-write */
	uint64_t ptag;
	int p2c[2], c2p[2];
};

static void fork_child(struct fork_ctx *x)
{
	struct held mine[MAX_CLASSES * 2];
	uint64_t tag = x->ptag ^ 0x5a5a, rng = tag;
	unsigned m;

	check_parent_page_faults(x->parent[0].p);
	/* Our copy of a private mapping: writing it must not reach the
	 * parent. */
	fill_random(x->large.p, x->large.size, tag, &rng);
	m = hold_n(mine, x->np, tag, &rng);
	child_wait_pool(tag, &rng);
	for (unsigned i = 0; i < x->np; i++)
		hak_free(client, x->parent[i].p, x->parent[i].size);
	child_churn(tag);
	pipe_write(x->c2p[1], '1');
	pipe_read(x->p2c[0], '2');
	check_held_all(mine, m, tag, "fork child's page");
	for (unsigned i = 0; i < m; i++)
		free_or_fail(mine[i].p, mine[i].size);
	_exit(0);
}

static void fork_round(struct fork_ctx *x, uint64_t *rng)
{
	struct held more[MAX_CLASSES * 2];
	unsigned m;
	int status;
	pid_t pid;

	if (pipe(x->p2c) < 0 || pipe(x->c2p) < 0)
		tu_fail("pipe: %s", strerror(errno));
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		tu_fail("fork: %s", strerror(errno));
	if (pid == 0)
		fork_child(x);
	pipe_read(x->c2p[0], '1');
	/* The child wrote into its own pages and its copy of ours. */
	check_held_all(x->parent, x->np, x->ptag, "parent's page after the child wrote");
	check_held_all(&x->large, 1, x->ptag, "parent's private page after the child wrote");
	m = hold_n(more, x->np, x->ptag, rng);
	pipe_write(x->p2c[1], '2');
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		tu_fail("fork child failed (status %#x)", status);
	check_held_all(more, m, x->ptag, "parent's page allocated after fork");
	for (unsigned i = 0; i < m; i++)
		free_or_fail(more[i].p, more[i].size);
	close(x->p2c[0]);
	close(x->p2c[1]);
	close(x->c2p[0]);
	close(x->c2p[1]);
}

/* Allocates and frees while the main thread forks: the atfork handlers
 * must cope with a hot path in flight. */
static void *fork_noise(void *arg)
{
	volatile bool *stop = arg;

	while (!*stop) {
		int how;
		void *p = alloc_or_fail(classes[0], 0, &how);

		check_fresh(p, classes[0], 0, how, 0);
		free_or_fail(p, classes[0]);
	}
	return NULL;
}

int cmd_fork(const struct opts *o)
{
	static struct fork_ctx x;
	uint64_t rng = 0x1234567;
	volatile bool stop = false;
	pthread_t noise;
	int how;

	connect_or_fail(o);
	x.ptag = (o->pattern ? o->pattern : 0x3c) & TAG_MASK;
	x.np = hold_n(x.parent, nclasses * 2, x.ptag, &rng);
	x.large.size = classes[nclasses - 1] + PAGE;
	x.large.p = alloc_or_fail(x.large.size, 0, &how);
	fill_random(x.large.p, x.large.size, x.ptag, &rng);
	x.large.first = *(uint64_t *)x.large.p;
	if (pthread_create(&noise, NULL, fork_noise, (void *)&stop) != 0)
		tu_fail("pthread_create");
	for (unsigned r = 0; r < (o->rounds ? o->rounds : 4); r++)
		fork_round(&x, &rng);
	stop = true;
	pthread_join(noise, NULL);
	check_held_all(x.parent, x.np, x.ptag, "parent's page at the end");
	for (unsigned i = 0; i < x.np; i++)
		free_or_fail(x.parent[i].p, x.parent[i].size);
	free_or_fail(x.large.p, x.large.size);
	print_stats("parent");
	tu_say("ok rounds=%u", o->rounds ? o->rounds : 4);
	hak_client_unref(client);
	return 0;
}
