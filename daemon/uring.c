/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* io_uring for backing and trimming, with a synchronous fallback. */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "uring.h"

enum uring_op { OP_POPULATE, OP_PUNCH };

struct op {
	struct op *next; /* synchronous mode: the list of done operations */
	uring_cb cb;
	void *arg;
	enum uring_op kind;
	uint64_t len;
	int res;
};

static struct {
	struct io_uring ring;
	bool async;
	int efd;
	unsigned inflight, max_inflight;
	unsigned unsubmitted;
	struct op *done, **done_tail; /* synchronous mode */
	struct uring_stats stats;
} u = {.efd = -1};

static int setup_ring(unsigned entries)
{
	int r = io_uring_queue_init(entries, &u.ring, 0);

	if (r < 0)
		return r;
	u.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (u.efd < 0) {
		r = -errno;
		io_uring_queue_exit(&u.ring);
		return r;
	}
	r = io_uring_register_eventfd(&u.ring, u.efd);
	if (r < 0) {
		close(u.efd);
		u.efd = -1;
		io_uring_queue_exit(&u.ring);
	}
	return r;
}

int uring_init(unsigned entries)
{
	int r;

	u.done = NULL;
	u.done_tail = &u.done;
	u.inflight = 0;
	/* The completion queue is twice the submission queue: never more in
	 * flight than it holds, so nothing depends on overflow handling. */
	u.max_inflight = 2 * entries;
	r = setup_ring(entries);
	u.async = r == 0;
	if (r < 0)
		log_msg(LOG_NOTICE,
			"io_uring unavailable (%s): backing and trimming run synchronously",
			strerror(-r));
	return 0;
}

int uring_fd(void)
{
	return u.efd;
}

bool uring_async(void)
{
	return u.async;
}

static struct op *op_new(enum uring_op kind, uint64_t len, uring_cb cb, void *arg)
{
	struct op *o;

	if (u.inflight >= u.max_inflight)
		return NULL;
	o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->kind = kind;
	o->len = len;
	o->cb = cb;
	o->arg = arg;
	return o;
}

static struct io_uring_sqe *get_sqe(void)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u.ring);

	if (!sqe) {
		uring_flush();
		sqe = io_uring_get_sqe(&u.ring);
	}
	return sqe;
}

/* Synchronous mode: run now, deliver at the next uring_reap(). */
static void run_sync(struct op *o, int (*fn)(const void *), const void *args)
{
	o->res = fn(args);
	o->next = NULL;
	*u.done_tail = o;
	u.done_tail = &o->next;
}

struct populate_args {
	void *addr;
	size_t len;
};

struct punch_args {
	int fd;
	uint64_t off, len;
};

static int do_populate(const void *p)
{
	const struct populate_args *a = p;

	return madvise(a->addr, a->len, MADV_POPULATE_WRITE) < 0 ? -errno : 0;
}

static int do_punch(const void *p)
{
	const struct punch_args *a = p;

	return fallocate(a->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)a->off,
			 (off_t)a->len) < 0
		       ? -errno
		       : 0;
}

static int queue(struct op *o, struct io_uring_sqe *sqe)
{
	io_uring_sqe_set_data(sqe, o);
	u.inflight++;
	u.unsubmitted++;
	return 0;
}

int uring_populate(void *addr, size_t len, uring_cb cb, void *arg)
{
	struct populate_args a = {addr, len};
	struct op *o = op_new(OP_POPULATE, len, cb, arg);
	struct io_uring_sqe *sqe;

	if (!o)
		return -EBUSY;
	if (!u.async) {
		run_sync(o, do_populate, &a);
		return 0;
	}
	sqe = get_sqe();
	if (!sqe) {
		free(o);
		return -EBUSY;
	}
	io_uring_prep_madvise(sqe, addr, (off_t)len, MADV_POPULATE_WRITE);
	return queue(o, sqe);
}

int uring_punch(int fd, uint64_t off, uint64_t len, uring_cb cb, void *arg)
{
	struct punch_args a = {fd, off, len};
	struct op *o = op_new(OP_PUNCH, len, cb, arg);
	struct io_uring_sqe *sqe;

	if (!o)
		return -EBUSY;
	if (!u.async) {
		run_sync(o, do_punch, &a);
		return 0;
	}
	sqe = get_sqe();
	if (!sqe) {
		free(o);
		return -EBUSY;
	}
	io_uring_prep_fallocate(sqe, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
				(off_t)len);
	return queue(o, sqe);
}

void uring_flush(void)
{
	int r;

	if (!u.async || u.unsubmitted == 0)
		return;
	r = io_uring_submit(&u.ring);
	if (r < 0)
		log_msg(LOG_ERR, "io_uring_submit: %s", strerror(-r));
	else
		u.unsubmitted = 0;
}

static void deliver(struct op *o)
{
	u.stats.ops++;
	if (o->res < 0)
		u.stats.failed++;
	else if (o->kind == OP_POPULATE)
		u.stats.populated_bytes += o->len;
	else
		u.stats.punched_bytes += o->len;
	o->cb(o->arg, o->res);
	free(o);
}

static void reap_sync(void)
{
	struct op *list = u.done;

	u.done = NULL;
	u.done_tail = &u.done;
	while (list) {
		struct op *o = list;

		list = o->next;
		deliver(o);
	}
}

void uring_reap(void)
{
	struct io_uring_cqe *cqe;
	uint64_t v;

	if (!u.async) {
		reap_sync();
		return;
	}
	if (read(u.efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_msg(LOG_ERR, "io_uring eventfd: %m");
	while (io_uring_peek_cqe(&u.ring, &cqe) == 0) {
		struct op *o = io_uring_cqe_get_data(cqe);

		o->res = cqe->res;
		io_uring_cqe_seen(&u.ring, cqe);
		u.inflight--;
		deliver(o);
	}
}

void uring_fini(void)
{
	struct io_uring_cqe *cqe;

	if (!u.async) {
		reap_sync();
		return;
	}
	uring_flush();
	while (u.inflight > 0 && io_uring_wait_cqe(&u.ring, &cqe) == 0)
		uring_reap();
	io_uring_queue_exit(&u.ring);
	close(u.efd);
	u.efd = -1;
	u.async = false;
}

void uring_get_stats(struct uring_stats *st)
{
	*st = u.stats;
}
