/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Connections.  A new connection is nobody until its first datagram: HELLO
 * makes it a client (a session, handed to the client list), ADMIN an admin
 * request.  Anything else, nothing within CONN_HELLO_TIMEOUT_NS, or passed
 * descriptors, and it is cut off and counted.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clients.h"
#include "conf.h"
#include "hak_proto.h"
#include "log.h"
#include "loop.h"
#include "server.h"
#include "session.h"
#include "strbuf.h"
#include "util.h"

#define CONN_HELLO_TIMEOUT_NS (2 * NSEC_PER_SEC)
#define CONN_REPLY_TIMEOUT_NS (5 * NSEC_PER_SEC)
/* Connections that have not said who they are: beyond this, new ones are
 * closed at once, so nobody can hold all our descriptors. */
#define CONN_MAX_PENDING 256
#define ACCEPTS_PER_WAKEUP 64
#define ACCEPT_PAUSE_NS (100 * NSEC_PER_MSEC)

struct conn {
	struct conn *prev, *next;
	struct conn *grave_next;
	struct watch w;
	struct ucred cred;
	uint64_t deadline;
	bool dead;
	/* an admin reply being sent */
	struct strbuf out;
	size_t sent;
	int status;
};

static void conn_list_del(struct server *srv, struct conn *cn)
{
	if (cn->prev)
		cn->prev->next = cn->next;
	else
		srv->conns = cn->next;
	if (cn->next)
		cn->next->prev = cn->prev;
	srv->nconns--;
}

/* The fd either moved to a session (fd < 0 then) or is closed here; the
 * memory goes at the end of the loop turn (events may still name it). */
static void conn_close(struct server *srv, struct conn *cn)
{
	if (cn->dead)
		return;
	cn->dead = true;
	loop_close(&srv->loop, &cn->w);
	conn_list_del(srv, cn);
	cn->grave_next = srv->conn_grave;
	srv->conn_grave = cn;
}

static void cut_off(struct server *srv, struct conn *cn, const char *why)
{
	srv->st.offences++;
	log_msg(LOG_NOTICE, "connection from pid %d uid %u cut off: %s", (int)cn->cred.pid,
		(unsigned)cn->cred.uid, why);
	conn_close(srv, cn);
}

/* ---- refusing ---- */

__attribute__((format(printf, 4, 5))) static void refuse(struct server *srv, struct conn *cn,
							 int err, const char *fmt, ...)
{
	struct hak_msg_refuse m;
	va_list ap;

	memset(&m, 0, sizeof(m));
	hak_proto_hdr_init(&m.h, HAK_MSG_REFUSE, sizeof(m));
	m.error = err;
	va_start(ap, fmt);
	vsnprintf(m.reason, sizeof(m.reason), fmt, ap);
	va_end(ap);
	srv->st.refused++;
	log_msg(LOG_NOTICE, "refused pid %d uid %u: %s", (int)cn->cred.pid, (unsigned)cn->cred.uid,
		m.reason);
	hak_sock_send(cn->w.fd, &m, sizeof(m), NULL, 0);
	conn_close(srv, cn);
}

/* Returns true when the limits let a pool of bytes in; refuses otherwise. */
static bool within_limits(struct server *srv, struct conn *cn, uint64_t want, uint64_t bytes)
{
	const struct conf *c = srv->conf;
	const struct clients_limits lim = {c->max_clients, c->uid_limit, server_budget(srv)};
	char a[16], b[16];
	int r;

	if (want > c->pool_size_max) {
		refuse(srv, cn, -E2BIG, "pool_size %s above pool_size_max %s",
		       conf_format_size(a, sizeof(a), want),
		       conf_format_size(b, sizeof(b), c->pool_size_max));
		return false;
	}
	r = clients_admit(&srv->clients, &lim, cn->cred.uid, bytes);
	if (r == -EUSERS)
		refuse(srv, cn, r, "too many clients (%u)", c->max_clients);
	else if (r == -EDQUOT)
		refuse(srv, cn, r, "uid %u limit %s reached", (unsigned)cn->cred.uid,
		       conf_format_size(a, sizeof(a), c->uid_limit));
	else if (r < 0)
		refuse(srv, cn, r, "global budget reached");
	return r == 0;
}

/* ---- becoming a client ---- */

static void conn_hello(struct server *srv, struct conn *cn, const struct hak_msg_hello *h)
{
	uint64_t want = h->pool_bytes ? h->pool_bytes : srv->conf->pool_size;
	struct hak_ctrl_hdr layout;
	struct session *s;
	char size[16];
	int r;

	if (session_layout(srv->conf, min_u64(want, srv->conf->pool_size_max), 0, &layout) < 0) {
		refuse(srv, cn, -EINVAL, "no pool geometry for %" PRIu64 " bytes", want);
		return;
	}
	if (!within_limits(srv, cn, want, layout.pool_size))
		return;
	r = session_new(srv->conf, srv->hugepage_size, clients_new_id(&srv->clients), cn->w.fd,
			&cn->cred, want, &s);
	if (r < 0) {
		refuse(srv, cn, r, "cannot create a pool: %s", strerror(-r));
		return;
	}
	cn->w.fd = -1; /* the session owns the socket now */
	conn_close(srv, cn);
	r = clients_add(&srv->clients, s);
	if (r < 0) {
		log_msg(LOG_WARNING, "cannot welcome pid %d: %s", (int)s->pid, strerror(-r));
		return;
	}
	srv->st.clients_total++;
	log_session(LOG_INFO, s, "connected, pool %s",
		    conf_format_size(size, sizeof(size), s->pool_size));
}

/* ---- admin requests ---- */

static void conn_reply_next(struct server *srv, struct conn *cn);

static void on_conn_writable(struct watch *w, uint32_t events)
{
	struct conn *cn = container_of(w, struct conn, w);
	struct server *srv = w->data;

	if (cn->dead)
		return;
	if (events & (EPOLLHUP | EPOLLERR))
		conn_close(srv, cn);
	else
		conn_reply_next(srv, cn);
}

/* How much text the next datagram carries: a whole number of lines when
 * they fit, so a reader may process lines as they come. */
static size_t chunk_len(const struct conn *cn)
{
	size_t left = cn->out.len - cn->sent,
	       n = left < HAK_ADMIN_TEXT_MAX ? left : HAK_ADMIN_TEXT_MAX;
	const char *nl;

	if (n == left)
		return n;
	nl = memrchr(cn->out.buf + cn->sent, '\n', n);
	return nl ? (size_t)(nl - (cn->out.buf + cn->sent)) + 1 : n;
}

static int send_chunk(struct conn *cn)
{
	char buf[HAK_MSG_MAX];
	struct hak_msg_admin_reply *m = (struct hak_msg_admin_reply *)buf;
	size_t n = chunk_len(cn);
	int r;

	memset(m, 0, sizeof(*m));
	hak_proto_hdr_init(&m->h, HAK_MSG_ADMIN_REPLY, (uint32_t)(sizeof(*m) + n));
	m->status = cn->status;
	m->flags = cn->sent + n == cn->out.len ? HAK_ADMIN_F_LAST : 0;
	memcpy(m->text, cn->out.buf + cn->sent, n);
	r = hak_sock_send(cn->w.fd, buf, sizeof(*m) + n, NULL, 0);
	if (r == 0)
		cn->sent += n;
	return r;
}

/* Sends as much as the socket takes; waits for EPOLLOUT for the rest. */
static void conn_reply_next(struct server *srv, struct conn *cn)
{
	int r = 0;

	do {
		r = send_chunk(cn);
	} while (r == 0 && cn->sent < cn->out.len);
	if (r == -EAGAIN) {
		cn->w.fn = on_conn_writable;
		loop_mod(&srv->loop, &cn->w, EPOLLOUT);
		return;
	}
	conn_close(srv, cn);
}

static void conn_admin(struct server *srv, struct conn *cn, const struct hak_msg_admin *a)
{
	srv->st.admin_requests++;
	cn->status = admin_handle(srv, cn->w.fd, &cn->cred, a->cmd, a->flags, a->pid, &cn->out);
	if (cn->out.oom) {
		strbuf_reset(&cn->out);
		cn->status = -ENOMEM;
		strbuf_printf(&cn->out, "out of memory");
	}
	if (cn->out.len == 0)
		strbuf_printf(&cn->out, "\n");
	cn->deadline = now_ns() + CONN_REPLY_TIMEOUT_NS;
	conn_reply_next(srv, cn);
}

/* ---- new connections ---- */

static void conn_first_message(struct server *srv, struct conn *cn, const char *buf, size_t n)
{
	struct hak_msg_hello hello;
	struct hak_msg_admin admin;
	int type = hak_proto_check(buf, n);

	if (type == -EPROTONOSUPPORT) {
		/* Worth telling: likely a client library of another release. */
		srv->st.offences++;
		refuse(srv, cn, -EPROTONOSUPPORT, "protocol version not supported (want %d)",
		       HAK_PROTO_VERSION);
	} else if (type == HAK_MSG_HELLO && hak_proto_decode_hello(buf, n, &hello) == 0)
		conn_hello(srv, cn, &hello);
	else if (type == HAK_MSG_ADMIN && hak_proto_decode_admin(buf, n, &admin) == 0)
		conn_admin(srv, cn, &admin);
	else
		cut_off(srv, cn, "malformed first message");
}

static void on_conn(struct watch *w, uint32_t events)
{
	struct conn *cn = container_of(w, struct conn, w);
	struct server *srv = w->data;
	char buf[HAK_MSG_MAX];
	int nfds = 0, fds[1];
	ssize_t n;

	if (cn->dead)
		return;
	n = hak_sock_recv(w->fd, buf, sizeof(buf), fds, 1, &nfds, MSG_DONTWAIT);
	if (nfds > 0) {
		close(fds[0]);
		cut_off(srv, cn, "passed file descriptors");
	} else if (n == -EAGAIN && !(events & (EPOLLHUP | EPOLLERR))) {
		return;
	} else if (n <= 0 && n != -EMSGSIZE) {
		conn_close(srv, cn); /* gone before a word: not an offence */
	} else if (n < 0) {
		cut_off(srv, cn, "message too long");
	} else {
		conn_first_message(srv, cn, buf, (size_t)n);
	}
}

static void conn_new(struct server *srv, int fd)
{
	struct conn *cn = calloc(1, sizeof(*cn));
	socklen_t len = sizeof(cn->cred);

	if (!cn || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cn->cred, &len) < 0) {
		log_msg(LOG_ERR, "new connection: %s", cn ? strerror(errno) : "out of memory");
		free(cn);
		close(fd);
		return;
	}
	cn->w = (struct watch){fd, on_conn, srv};
	cn->deadline = now_ns() + CONN_HELLO_TIMEOUT_NS;
	if (loop_add(&srv->loop, &cn->w, EPOLLIN) < 0) {
		free(cn);
		close(fd);
		return;
	}
	cn->next = srv->conns;
	if (cn->next)
		cn->next->prev = cn;
	srv->conns = cn;
	srv->nconns++;
	srv->st.connections++;
}

/* Out of descriptors: the connection stays in the backlog and the socket
 * stays readable, so stop watching it for a while instead of spinning. */
static void pause_accepting(struct server *srv, struct watch *w)
{
	static uint64_t last_log;

	if (log_ratelimit(&last_log, NSEC_PER_SEC))
		log_msg(LOG_ERR, "accept: %m; pausing new connections");
	loop_mod(&srv->loop, w, 0);
	srv->listen_paused_until = now_ns() + ACCEPT_PAUSE_NS;
}

void conn_accept(struct watch *w, uint32_t events)
{
	struct server *srv = w->data;

	for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
		int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0 &&
		    (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)) {
			pause_accepting(srv, w);
			return;
		}
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_msg(LOG_ERR, "accept: %m");
			return;
		}
		if (srv->nconns >= CONN_MAX_PENDING) {
			srv->st.refused++;
			close(fd);
			continue;
		}
		conn_new(srv, fd);
	}
}

void conn_tick(struct server *srv, uint64_t now)
{
	struct conn *next;

	if (srv->listen_paused_until && now >= srv->listen_paused_until) {
		srv->listen_paused_until = 0;
		loop_mod(&srv->loop, &srv->listen_w, EPOLLIN);
	}
	for (struct conn *cn = srv->conns; cn; cn = next) {
		next = cn->next;
		if (now >= cn->deadline)
			cut_off(srv, cn, "timed out");
	}
}

void conn_close_all(struct server *srv)
{
	while (srv->conns)
		conn_close(srv, srv->conns);
}

void conn_bury(struct server *srv)
{
	while (srv->conn_grave) {
		struct conn *cn = srv->conn_grave;

		srv->conn_grave = cn->grave_next;
		strbuf_fini(&cn->out);
		free(cn);
	}
}
