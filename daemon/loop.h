/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The event loop: one epoll, and watches on it.  A watch is a descriptor
 * and the function to call with its events; it knows nothing of what the
 * descriptor is for.  The owner of a watch embeds it and finds itself again
 * with container_of, or through the watch's opaque data.  Timers are watches
 * on a timerfd.  All on one thread.
 */
#ifndef HAKD_LOOP_H
#define HAKD_LOOP_H

#include <stdint.h>

struct watch;
typedef void watch_fn(struct watch *w, uint32_t events);

struct watch {
	int fd; /* -1: none */
	watch_fn *fn;
	void *data; /* the owner's, untouched here */
};

struct loop {
	int epfd;
	uint64_t wakeups; /* returns from the wait with events */
};

int loop_init(struct loop *l);
void loop_fini(struct loop *l);

int loop_add(struct loop *l, struct watch *w, uint32_t events);
int loop_mod(struct loop *l, struct watch *w, uint32_t events);
/* Stops watching (a watch with fd -1: nothing). */
void loop_del(struct loop *l, struct watch *w);
/* Stops watching and closes the descriptor. */
void loop_close(struct loop *l, struct watch *w);

/* Waits for events and calls their watches' functions once each.  A
 * function may delete any watch, and free its own (a descriptor is in a
 * round's events once), but must not free another before the call
 * returns: later events of this round may still name it.  Returns 0 or
 * -errno (not -EINTR: a signal ends the wait with 0). */
int loop_dispatch(struct loop *l);

/* A periodic timer: w gets a CLOCK_MONOTONIC timerfd firing every
 * interval_ns, watched for EPOLLIN.  Returns 0 or -errno. */
int loop_timer_add(struct loop *l, struct watch *w, watch_fn *fn, void *data, uint64_t interval_ns);
int loop_timer_set(struct watch *w, uint64_t interval_ns);
/* Consumes the expirations (call from the timer's function). */
void loop_timer_ack(struct watch *w);

#endif
