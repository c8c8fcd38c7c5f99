/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The client list.  A session enters it with its WELCOME and leaves it when
 * its client goes away or is cut off; it stays in the grave until nothing
 * else (a zeroing job, an io_uring operation) holds it, so that what those
 * still count is in its counters when they are folded into the totals of
 * departed clients.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/sockios.h>

#include "clients.h"
#include "conf.h"
#include "hak_proto.h"
#include "log.h"
#include "session.h"
#include "util.h"
#include "zero.h"

#define LINGER_LOG_INTERVAL_NS NSEC_PER_SEC

struct lingering {
	struct lingering *prev, *next;
	struct watch w;
	uid_t uid;
	uint64_t pool_size;
};

void clients_init(struct clients *cl, struct loop *loop)
{
	*cl = (struct clients){.loop = loop};
}

uint32_t clients_new_id(struct clients *cl)
{
	return ++cl->last_id;
}

/* ---- counting ---- */

static void stats_add(struct session_stats *sum, const struct session_stats *st)
{
	sum->returned += st->returned;
	sum->zeroed += st->zeroed;
	sum->queued += st->queued;
	sum->queued_bytes += st->queued_bytes;
	sum->offences += st->offences;
	sum->trimmed_bytes += st->trimmed_bytes;
	sum->doorbells += st->doorbells;
	sum->trims_idle += st->trims_idle;
	sum->deferred += st->deferred;
}

void clients_totals(const struct clients *cl, struct clients_totals *t)
{
	t->st = cl->departed;
	t->cut_off = cl->cut_off;
	for (const struct session *s = cl->list; s; s = s->next)
		stats_add(&t->st, &s->st);
	for (const struct session *s = cl->grave; s; s = s->grave_next)
		stats_add(&t->st, &s->st);
}

uint64_t clients_uid_bytes(const struct clients *cl, uid_t uid)
{
	uint64_t bytes = 0;

	for (const struct session *s = cl->list; s; s = s->next)
		if (s->uid == uid)
			bytes += s->pool_size;
	for (const struct lingering *lg = cl->lingering; lg; lg = lg->next)
		if (lg->uid == uid)
			bytes += lg->pool_size;
	return bytes;
}

uint64_t clients_ready_pages(const struct clients *cl)
{
	uint64_t pages = 0;

	for (const struct session *s = cl->list; s; s = s->next)
		pages += session_ready_pages(s);
	return pages;
}

int clients_admit(const struct clients *cl, const struct clients_limits *lim, uid_t uid,
		  uint64_t bytes)
{
	if (cl->n + cl->nlinger >= lim->max_clients)
		return -EUSERS;
	if (lim->uid_bytes && clients_uid_bytes(cl, uid) + bytes > lim->uid_bytes)
		return -EDQUOT;
	if (lim->budget && cl->pool_bytes + cl->linger_bytes + bytes > lim->budget)
		return -ENOMEM;
	return 0;
}

/* ---- sockets whose WELCOME is unread ---- */

static void linger_del(struct clients *cl, struct lingering *lg)
{
	if (lg->prev)
		lg->prev->next = lg->next;
	else
		cl->lingering = lg->next;
	if (lg->next)
		lg->next->prev = lg->prev;
	cl->nlinger--;
	cl->linger_bytes -= lg->pool_size;
	loop_close(cl->loop, &lg->w);
	free(lg);
}

/* The client closed its socket: what was in flight is gone.  Freeing the
 * watch here is safe: its descriptor is in this round's events once. */
static void on_linger_hup(struct watch *w, uint32_t events)
{
	linger_del(w->data, container_of(w, struct lingering, w));
}

/* Whether the client has not read its WELCOME yet: on a unix socket the
 * bytes the sender has queued stay charged to it until they are read. */
static bool welcome_unread(int sock)
{
	int queued = 0;

	return sock >= 0 && ioctl(sock, SIOCOUTQ, &queued) == 0 && queued > 0;
}

/* Keeps the socket of an ending session while its WELCOME is unread (it
 * is then not closed with the session). */
static void linger(struct clients *cl, struct session *s)
{
	static uint64_t last_log;
	struct lingering *lg;

	if (!welcome_unread(s->sock))
		return;
	lg = cl->nlinger < CLIENTS_MAX_LINGERING ? calloc(1, sizeof(*lg)) : NULL;
	if (!lg) {
		if (log_ratelimit(&last_log, LINGER_LOG_INTERVAL_NS))
			log_session(LOG_WARNING, s,
				    "too many unread WELCOMEs; closing without waiting");
		return;
	}
	*lg = (struct lingering){
		.w = {s->sock, on_linger_hup, cl}, .uid = s->uid, .pool_size = s->pool_size};
	if (loop_add(cl->loop, &lg->w, EPOLLRDHUP) < 0) {
		free(lg);
		return;
	}
	s->sock = -1;
	lg->next = cl->lingering;
	if (lg->next)
		lg->next->prev = lg;
	cl->lingering = lg;
	cl->nlinger++;
	cl->linger_bytes += lg->pool_size;
}

/* ---- coming and going ---- */

void clients_close(struct clients *cl, struct session *s, const char *why)
{
	char size[16];

	if (s->dead)
		return;
	if (why) {
		cl->cut_off++;
		log_session(LOG_WARNING, s, "cut off: %s", why);
	} else {
		log_session(LOG_INFO, s, "disconnected, pool %s, %" PRIu64 " slots zeroed",
			    conf_format_size(size, sizeof(size), s->pool_size), s->st.zeroed);
	}
	loop_del(cl->loop, &s->sock_w);
	loop_del(cl->loop, &s->bell_w);
	if (s->prev)
		s->prev->next = s->next;
	else
		cl->list = s->next;
	if (s->next)
		s->next->prev = s->prev;
	cl->n--;
	cl->pool_bytes -= s->pool_size;
	linger(cl, s);
	session_close(s);
	s->grave_next = cl->grave;
	cl->grave = s;
}

void clients_judge(struct clients *cl, struct session *s, enum session_verdict v)
{
	if (v != SESSION_OK)
		clients_close(cl, s, session_verdict_reason(v));
}

/* After WELCOME the socket carries nothing: any datagram is an offence. */
static void on_session_sock(struct watch *w, uint32_t events)
{
	struct session *s = container_of(w, struct session, sock_w);
	char buf[HAK_MSG_MAX];
	ssize_t n;

	if (s->dead)
		return;
	if (events & EPOLLIN) {
		n = hak_sock_recv(w->fd, buf, sizeof(buf), NULL, 0, NULL, MSG_DONTWAIT);
		if (n > 0 || n == -EMSGSIZE) {
			s->st.offences++;
			clients_judge(w->data, s, SESSION_SPOKE);
			return;
		}
		if (n == -EAGAIN && !(events & (EPOLLHUP | EPOLLRDHUP | EPOLLERR)))
			return;
	}
	clients_close(w->data, s, NULL);
}

static void on_doorbell(struct watch *w, uint32_t events)
{
	struct session *s = container_of(w, struct session, bell_w);
	uint64_t rings;

	if (s->dead)
		return;
	if (read(w->fd, &rings, sizeof(rings)) == (ssize_t)sizeof(rings))
		clients_judge(w->data, s, session_doorbell(s, rings));
	else
		clients_judge(w->data, s, session_service(s));
}

/* The socket is in the loop already: the connection that said HELLO on it
 * was watching it. */
static int start(struct clients *cl, struct session *s)
{
	int r;

	s->sock_w = (struct watch){s->sock, on_session_sock, cl};
	s->bell_w = (struct watch){s->bell_fd, on_doorbell, cl};
	r = loop_mod(cl->loop, &s->sock_w, EPOLLIN | EPOLLRDHUP);
	if (r == 0)
		r = loop_add(cl->loop, &s->bell_w, EPOLLIN);
	if (r == 0)
		r = session_welcome(s);
	return r;
}

int clients_add(struct clients *cl, struct session *s)
{
	int r;

	s->next = cl->list;
	if (s->next)
		s->next->prev = s;
	cl->list = s;
	cl->n++;
	cl->pool_bytes += s->pool_size;
	r = start(cl, s);
	if (r < 0)
		clients_close(cl, s, NULL);
	return r;
}

/* Drops the closed sessions nothing else holds, or all when force. */
static void bury(struct clients *cl, bool force)
{
	struct session **pp = &cl->grave;

	while (*pp) {
		struct session *s = *pp;

		if (s->ref > 1 && !force) {
			pp = &s->grave_next;
			continue;
		}
		*pp = s->grave_next;
		stats_add(&cl->departed, &s->st);
		session_unref(s);
	}
}

void clients_bury(struct clients *cl)
{
	bury(cl, false);
}

void clients_fini(struct clients *cl)
{
	while (cl->list)
		clients_close(cl, cl->list, NULL);
	while (cl->lingering)
		linger_del(cl, cl->lingering);
	bury(cl, true);
}

/* ---- work on every client ---- */

void clients_zero_done(struct clients *cl, struct zero_job *job)
{
	struct session *s = session_ref(job->owner);

	clients_judge(cl, s, session_zero_done(job));
	session_unref(s);
}

void clients_tick(struct clients *cl, uint64_t now, uint64_t trim_idle_ns)
{
	struct session *next;

	for (struct session *s = cl->list; s; s = next) {
		next = s->next;
		clients_judge(cl, s, session_tick(s, now, trim_idle_ns));
	}
}

void clients_set_watermarks(struct clients *cl, unsigned low_pct, unsigned high_pct)
{
	for (struct session *s = cl->list; s; s = s->next)
		session_set_watermarks(s, low_pct, high_pct);
}

uint64_t clients_trim(struct clients *cl, pid_t pid, unsigned *matched)
{
	uint64_t bytes = 0;

	*matched = 0;
	for (struct session *s = cl->list; s; s = s->next) {
		if (pid != 0 && s->pid != pid)
			continue;
		bytes += session_trim(s, true);
		(*matched)++;
	}
	return bytes;
}
