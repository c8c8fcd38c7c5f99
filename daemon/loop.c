/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The epoll loop: watches and timers, and nothing they are for. */
#include <errno.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "util.h"

#define MAX_EVENTS 64

int loop_init(struct loop *l)
{
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	return l->epfd < 0 ? -errno : 0;
}

void loop_fini(struct loop *l)
{
	if (l->epfd >= 0)
		close(l->epfd);
	l->epfd = -1;
}

static int ctl(struct loop *l, int op, struct watch *w, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};

	return epoll_ctl(l->epfd, op, w->fd, &ev) < 0 ? -errno : 0;
}

int loop_add(struct loop *l, struct watch *w, uint32_t events)
{
	return ctl(l, EPOLL_CTL_ADD, w, events);
}

int loop_mod(struct loop *l, struct watch *w, uint32_t events)
{
	return ctl(l, EPOLL_CTL_MOD, w, events);
}

void loop_del(struct loop *l, struct watch *w)
{
	if (w->fd >= 0 && l->epfd >= 0)
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
}

void loop_close(struct loop *l, struct watch *w)
{
	loop_del(l, w);
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
}

int loop_dispatch(struct loop *l)
{
	struct epoll_event ev[MAX_EVENTS];
	int n = epoll_wait(l->epfd, ev, MAX_EVENTS, -1);

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	l->wakeups += n > 0;
	for (int i = 0; i < n; i++) {
		struct watch *w = ev[i].data.ptr;

		w->fn(w, ev[i].events);
	}
	return 0;
}

int loop_timer_set(struct watch *w, uint64_t ns)
{
	struct itimerspec its = {
		.it_interval = {.tv_sec = ns / NSEC_PER_SEC, .tv_nsec = ns % NSEC_PER_SEC},
		.it_value = {.tv_sec = ns / NSEC_PER_SEC, .tv_nsec = ns % NSEC_PER_SEC},
	};

	return timerfd_settime(w->fd, 0, &its, NULL) < 0 ? -errno : 0;
}

int loop_timer_add(struct loop *l, struct watch *w, watch_fn *fn, void *data, uint64_t interval_ns)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC), r;

	if (fd < 0)
		return -errno;
	*w = (struct watch){fd, fn, data};
	r = loop_timer_set(w, interval_ns);
	return r < 0 ? r : loop_add(l, w, EPOLLIN);
}

void loop_timer_ack(struct watch *w)
{
	uint64_t expirations;

	if (read(w->fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		log_msg(LOG_ERR, "timerfd: %m");
}
