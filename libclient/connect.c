/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The handshake with hakzerod (DESIGN "Shared mode" 1): HELLO, then WELCOME
 * with the pool, control and doorbell descriptors, or REFUSE.  Used by
 * hak_client_connect and by the monitor thread when it reconnects.
 */
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

/* How long a connect waits for the daemon's answer. */
#define HAK_HANDSHAKE_TIMEOUT_MS 1000

/* Non-blocking: a full listen backlog fails at once instead of stalling an
 * allocator; every later receive is MSG_DONTWAIT after poll anyway. */
static int open_socket(const char *path, int *out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, r;

	strcpy(sa.sun_path, path);
	fd = HAK_SYSCALL(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
	if (fd < 0)
		return fd;
	r = HAK_SYSCALL(connect(fd, (struct sockaddr *)&sa, sizeof(sa)));
	if (r < 0) {
		close(fd);
		return r;
	}
	*out = fd;
	return 0;
}

static int send_hello(int sock, uint64_t pool_bytes)
{
	struct hak_msg_hello m;
	int saved = errno;
	int r;

	memset(&m, 0, sizeof(m));
	hak_proto_hdr_init(&m.h, HAK_MSG_HELLO, sizeof(m));
	m.pool_bytes = pool_bytes;
	m.flags = HAK_HELLO_F_NONE;
	r = hak_sock_send(sock, &m, sizeof(m), NULL, 0);
	errno = saved;
	return r;
}

static int wait_readable(int sock, int timeout_ms)
{
	struct pollfd pfd = {.fd = sock, .events = POLLIN};
	uint64_t deadline = hak_now_ns() + (uint64_t)timeout_ms * 1000000u;

	for (;;) {
		int r = HAK_SYSCALL(poll(&pfd, 1, timeout_ms));
		uint64_t now;

		if (r > 0)
			return 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (r != -EINTR)
			return r;
		now = hak_now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		timeout_ms = (int)((deadline - now) / 1000000u) + 1;
	}
}

static int take_refuse(struct hak_client *c, const void *buf, ssize_t n)
{
	struct hak_msg_refuse m;
	int r = hak_proto_decode_refuse(buf, (size_t)n, &m);

	if (r < 0)
		return r;
	hak_err(c, "hakzerod refused the connection: %s (%d)", m.reason, -m.error);
	return m.error;
}

/* Receives the daemon's answer: on WELCOME fills *w and fds (3 of them). */
static int recv_answer(struct hak_client *c, int sock, struct hak_msg_welcome *w, int fds[3])
{
	/* On the stack, not malloc: see internal.h. */
	union {
		char buf[HAK_MSG_MAX];
		uint64_t align;
	} u;
	int saved = errno, nfds = 0, r;
	ssize_t n;

	r = wait_readable(sock, HAK_HANDSHAKE_TIMEOUT_MS);
	if (r < 0)
		return r;
	n = hak_sock_recv(sock, u.buf, sizeof(u.buf), fds, HAK_WELCOME_NFDS, &nfds, MSG_DONTWAIT);
	errno = saved;
	if (n <= 0)
		return n == 0 ? -ECONNRESET : (int)n;
	r = hak_proto_check(u.buf, (size_t)n);
	if (r == HAK_MSG_REFUSE)
		r = take_refuse(c, u.buf, n);
	else if (r == HAK_MSG_WELCOME)
		r = hak_proto_decode_welcome(u.buf, (size_t)n, w);
	else if (r >= 0)
		r = -EPROTO;
	if (r == 0 && nfds != HAK_WELCOME_NFDS)
		r = -EBADMSG;
	if (r < 0)
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
	return r;
}

static int handshake(struct hak_client *c, int *sock, struct hak_pool **pool)
{
	struct hak_msg_welcome w;
	int fds[HAK_WELCOME_NFDS];
	int r;

	if (c->socket_path_err < 0)
		return c->socket_path_err;
	r = open_socket(c->socket_path, sock);
	if (r < 0)
		return r;
	r = send_hello(*sock, c->pool_bytes);
	if (r == 0)
		r = recv_answer(c, *sock, &w, fds);
	if (r == 0)
		r = hak_pool_create(c, &w, fds, pool);
	if (r < 0) {
		close(*sock);
		*sock = -1;
	}
	return r;
}

static void publish_pool(struct hak_client *c, struct hak_pool *p, int sock)
{
	unsigned n = c->npools;

	c->pools[n] = p;
	/* Pairs with hak_npools: pools[n] is set before a reader may look. */
	__atomic_store_n(&c->npools, n + 1, __ATOMIC_RELEASE);
	if (n > 0)
		__atomic_add_fetch(&c->reconnects, 1, __ATOMIC_RELAXED);
	c->sock = sock;
	/* Pairs with hak_pool_current: the pool is complete before it is seen. */
	__atomic_store_n(&c->cur, p, __ATOMIC_RELEASE);
}

/* Auto mode, a daemon pool now live: the local pool that stood in for it
 * is retired like a dead daemon's (its held slots stay valid until freed). */
static void retire_local(struct hak_client *c, struct hak_pool *old)
{
	if (!old)
		return;
	hak_pool_retire(c, old);
	hak_local_retire(c, old);
	hak_info(c, "hakzerod answers: leaving local mode");
}

static int connect_shared(struct hak_client *c)
{
	struct hak_pool *p, *old = c->cur;
	int sock, r;

	if (c->npools >= HAK_MAX_POOLS) {
		hak_err(c, "%d pools used up (daemon restarted too often); not reconnecting",
			HAK_MAX_POOLS);
		return -ENOSPC;
	}
	r = handshake(c, &sock, &p);
	if (r < 0) {
		hak_dbg(c, "connecting to %s failed: %s", c->socket_path, strerror(-r));
		return r;
	}
	publish_pool(c, p, sock);
	c->mon.retry = false;
	hak_info(c, "connected to %s: pool of %zu bytes, %u classes", c->socket_path, p->size,
		 p->nclasses);
	retire_local(c, old);
	hak_prefault_start(c, p);
	hak_monitor_wake(c);
	return 0;
}

int hak_connect_locked(struct hak_client *c)
{
	int r;

	if (c->mode == HAK_MODE_LOCAL) {
		r = hak_local_ensure_locked(c);
		if (r == 0)
			c->mon.retry = false;
		return r;
	}
	if (c->cur && !c->cur->local)
		return 0;
	r = connect_shared(c);
	/* Auto: no daemon, so a local pool meanwhile; the monitor keeps
	 * trying the daemon. */
	if (r < 0 && c->mode == HAK_MODE_AUTO)
		hak_local_ensure_locked(c);
	return r;
}

HAK_EXPORT int hak_client_connect(struct hak_client *c)
{
	int saved = errno, r;

	if (!c)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	c->want_connect = true;
	/* The monitor first: without it a daemon's death would go unseen. */
	r = hak_monitor_start_locked(c);
	if (r == 0)
		r = hak_connect_locked(c);
	if (r < 0 && r != -ENOSPC && c->mon.running)
		hak_monitor_schedule_retry(c, false);
	/* Auto mode with a local pool standing in: the handle works. */
	if (r < 0 && c->mode == HAK_MODE_AUTO && c->cur)
		r = 0;
	pthread_mutex_unlock(&c->lock);
	errno = saved; /* liburing and pthread calls may have set it */
	return r;
}
