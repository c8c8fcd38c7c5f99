/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The monitor thread, one per handle: it watches the daemon's socket (its
 * death ends the pool), reaps prefault completions, and reconnects with
 * back-off.  The hot path never waits for it.
 *
 * Its loop calls no malloc: the log function is the caller's, buffers are on
 * the stack, a new pool's private state comes from mmap.  An allocator that
 * links this library may hold its own locks while our thread runs, and a
 * malloc from here could then deadlock against it.
 */
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "internal.h"

/* Reconnect back-off: the first attempt after a failure waits MIN, each
 * failure doubles the wait up to MAX. */
#define HAK_RECONNECT_MIN_MS 50u
#define HAK_RECONNECT_MAX_MS 2000u
#define HAK_NS_PER_MS 1000000ull
/* Nice value of the monitor when it may do local mode's zeroing: the
 * daemon's default (zero_nice), so the work takes idle cores only. */
#define HAK_LOCAL_NICE 19

enum { PFD_WAKE, PFD_SOCK, PFD_URING, PFD_LOCAL, PFD_NR };

void hak_monitor_wake(struct hak_client *c)
{
	uint64_t one = 1;

	if (c->mon.wake_fd >= 0)
		HAK_SYSCALL(write(c->mon.wake_fd, &one, sizeof(one)));
}

void hak_monitor_schedule_retry(struct hak_client *c, bool immediately)
{
	if (!c->mon.retry) {
		c->mon.retry = true;
		c->mon.backoff_ms = HAK_RECONNECT_MIN_MS;
	}
	c->mon.next_try_ns = hak_now_ns() + (immediately ? 0 : c->mon.backoff_ms * HAK_NS_PER_MS);
	hak_monitor_wake(c);
}

static void try_reconnect(struct hak_client *c)
{
	int r;

	if (!c->mon.retry || hak_now_ns() < c->mon.next_try_ns)
		return;
	r = hak_connect_locked(c);
	if (r == 0)
		return;
	if (r == -ENOSPC) {
		c->mon.retry = false;
		return;
	}
	c->mon.backoff_ms *= 2;
	if (c->mon.backoff_ms > HAK_RECONNECT_MAX_MS)
		c->mon.backoff_ms = HAK_RECONNECT_MAX_MS;
	c->mon.next_try_ns = hak_now_ns() + c->mon.backoff_ms * HAK_NS_PER_MS;
}

static void daemon_gone(struct hak_client *c, ssize_t why)
{
	struct hak_pool *p = c->cur;

	hak_info(c, "hakzerod went away (%zd); falling back to %s, reconnecting", why,
		 c->mode == HAK_MODE_AUTO ? "a local pool" : "mmap");
	close(c->sock);
	c->sock = -1;
	if (p) {
		/* Unpublish first: new allocations stop using the pool before
		 * its free slots are given back. */
		__atomic_store_n(&c->cur, NULL, __ATOMIC_RELEASE);
		hak_prefault_stop(c, p);
		hak_pool_retire(c, p);
	}
	if (c->mode == HAK_MODE_AUTO)
		hak_local_ensure_locked(c);
	hak_monitor_schedule_retry(c, false);
}

/* After WELCOME the daemon only says QUEUED (unpopulated slots were queued:
 * look at the ready rings now); end of stream or an error means it is
 * gone; anything else is ignored.  At most this many messages a turn. */
#define HAK_SOCK_MSGS_PER_TURN 16

static void check_socket(struct hak_client *c)
{
	char buf[HAK_MSG_MAX];
	bool queued = false;

	for (int i = 0; i < HAK_SOCK_MSGS_PER_TURN; i++) {
		ssize_t n = hak_sock_recv(c->sock, buf, sizeof(buf), NULL, 0, NULL, MSG_DONTWAIT);

		if (n == -EAGAIN)
			break;
		if (n <= 0) {
			daemon_gone(c, n);
			return;
		}
		if (hak_proto_check(buf, (size_t)n) == HAK_MSG_QUEUED)
			queued = true;
		else
			hak_dbg(c, "ignoring a %zd-byte message from hakzerod", n);
	}
	if (queued)
		hak_prefault_tick(c, true);
}

/* The sooner of two timeouts, -1 being none. */
static int sooner(int a, int b)
{
	return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

static int poll_timeout_ms(struct hak_client *c)
{
	int scan = hak_prefault_tick(c, false);
	uint64_t now;

	if (hak_prefault_sync_pending(c) || hak_local_pending(c))
		return 0;
	if (!c->mon.retry)
		return scan;
	now = hak_now_ns();
	if (now >= c->mon.next_try_ns)
		return 0;
	return sooner(scan, (int)((c->mon.next_try_ns - now + HAK_NS_PER_MS - 1) / HAK_NS_PER_MS));
}

static void handle_events(struct hak_client *c, const struct pollfd *pfd)
{
	uint64_t v;

	if (pfd[PFD_WAKE].revents)
		HAK_SYSCALL(read(c->mon.wake_fd, &v, sizeof(v)));
	if (c->mon.stopping)
		return;
	/* Only the monitor closes the socket, so an fd that was polled is
	 * still the connection's. */
	if (pfd[PFD_SOCK].revents && pfd[PFD_SOCK].fd == c->sock)
		check_socket(c);
	if (pfd[PFD_URING].revents && pfd[PFD_URING].fd == hak_prefault_fd(c))
		hak_prefault_reap(c);
	if (pfd[PFD_LOCAL].revents && pfd[PFD_LOCAL].fd == hak_local_fd(c))
		HAK_SYSCALL(read(pfd[PFD_LOCAL].fd, &v, sizeof(v)));
	try_reconnect(c);
	if (hak_prefault_sync_pending(c))
		hak_prefault_sync_step(c);
	/* Every turn: a doorbell is only rung at thresholds.  What it queued
	 * is populated next, before the hot path gets there. */
	hak_local_service(c);
	if (hak_local_fd(c) >= 0)
		hak_prefault_tick(c, true);
}

/* Local mode's zeroing is background work: it must take idle cores, not
 * the application's.  Only this thread's nice value changes. */
static void lower_priority(struct hak_client *c)
{
	int r;

	if (c->mode == HAK_MODE_SHARED)
		return;
	r = HAK_SYSCALL(setpriority(PRIO_PROCESS, (id_t)gettid(), HAK_LOCAL_NICE));
	if (r < 0)
		hak_dbg(c, "cannot lower the monitor's priority (error %d)", -r);
}

static void *monitor_main(void *arg)
{
	struct hak_client *c = arg;

	pthread_mutex_lock(&c->lock);
	lower_priority(c);
	while (!c->mon.stopping) {
		/* Negative fds are ignored by poll: absent sources keep
		 * their index. */
		struct pollfd pfd[PFD_NR] = {
			[PFD_WAKE] = {.fd = c->mon.wake_fd, .events = POLLIN},
			[PFD_SOCK] = {.fd = c->sock, .events = POLLIN | POLLRDHUP},
			[PFD_URING] = {.fd = hak_prefault_fd(c), .events = POLLIN},
			[PFD_LOCAL] = {.fd = hak_local_fd(c), .events = POLLIN},
		};
		int timeout = poll_timeout_ms(c);

		pthread_mutex_unlock(&c->lock);
		poll(pfd, PFD_NR, timeout);
		pthread_mutex_lock(&c->lock);
		handle_events(c, pfd);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

int hak_monitor_start_locked(struct hak_client *c)
{
	sigset_t all, old;
	int r;

	if (c->mon.running)
		return 0;
	if (c->mon.wake_fd < 0) {
		c->mon.wake_fd = HAK_SYSCALL(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
		if (c->mon.wake_fd < 0)
			return c->mon.wake_fd;
	}
	/* The thread starts with every signal blocked: the application's
	 * handlers must not run on a thread it does not know about. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&c->mon.thread, NULL, monitor_main, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		hak_err(c, "cannot start the monitor thread (error %d)", -r);
		return r;
	}
	c->mon.running = true;
	c->mon.stopping = false;
	return 0;
}

void hak_monitor_stop(struct hak_client *c)
{
	bool running;

	pthread_mutex_lock(&c->lock);
	running = c->mon.running;
	if (running) {
		c->mon.stopping = true;
		hak_monitor_wake(c);
	}
	pthread_mutex_unlock(&c->lock);
	if (!running)
		return;
	pthread_join(c->mon.thread, NULL);
	pthread_mutex_lock(&c->lock);
	c->mon.running = false;
	pthread_mutex_unlock(&c->lock);
}

/* First fallback in a fork child: start a monitor that connects afresh.
 * One thread wins the exchange; the others just fall back this time. */
void hak_monitor_child_restart(struct hak_client *c)
{
	int saved;

	if (!__atomic_load_n(&c->child_restart, __ATOMIC_RELAXED) ||
	    !__atomic_exchange_n(&c->child_restart, 0, __ATOMIC_ACQ_REL))
		return;
	saved = errno;
	pthread_mutex_lock(&c->lock);
	if (hak_monitor_start_locked(c) == 0)
		hak_monitor_schedule_retry(c, true);
	pthread_mutex_unlock(&c->lock);
	errno = saved;
}
