/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A client's session: creating its pool and control segment, handing them
 * over, and reclaiming them. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conf.h"
#include "hak_proto.h"
#include "log.h"
#include "session.h"
#include "util.h"

#define MEMFD_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

int session_layout(const struct conf *c, uint64_t pool_bytes, uint32_t id, struct hak_ctrl_hdr *h)
{
	struct hak_class_geom g[HAK_MAX_CLASSES];
	unsigned n = conf_geometry(c, pool_bytes, g);

	return hak_layout_compute(h, g, n, id);
}

/* Huge pages only when every slot is made of whole huge pages: a hole
 * punched under one slot must not reach into its neighbour. */
static bool can_use_huge(const struct conf *c, uint64_t hugepage_size, const struct hak_ctrl_hdr *h)
{
	if (!c->huge_pages || hugepage_size == 0)
		return false;
	for (unsigned i = 0; i < h->nclasses; i++)
		if (h->cls[i].slot_size % hugepage_size)
			return false;
	return true;
}

/* A sealed memfd of size bytes: the client holds the fd too, and must not
 * be able to shrink it under the daemon's mapping (SIGBUS). */
static int make_memfd(const char *name, uint64_t size, unsigned flags)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | flags);
	int r;

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0 || fcntl(fd, F_ADD_SEALS, MEMFD_SEALS) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

static int make_pool(struct session *s, bool huge)
{
	int fd;

	if (huge) {
		fd = make_memfd("hakzerod-pool", s->pool_size, MFD_HUGETLB);
		if (fd >= 0) {
			s->huge = true;
			return fd;
		}
		log_session(LOG_WARNING, s, "no huge pages for the pool (%s); using normal pages",
			    strerror(-fd));
	}
	return make_memfd("hakzerod-pool", s->pool_size, 0);
}

static void *map_shared(int fd, uint64_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	return p == MAP_FAILED ? NULL : p;
}

/*
 * The daemon runs under mlockall(MCL_FUTURE|MCL_ONFAULT), so a new mapping
 * would lock every page the daemon touches.  The pool's pages belong to the
 * client (charged to it, trimmed under pressure): locking them from here
 * would make the client's memory unevictable behind its back.  So the pool
 * mapping is unlocked before any page of it is touched.  The control
 * segment stays locked: it is small and the daemon's own working set.
 */
static int map_segments(struct session *s)
{
	s->pool = map_shared(s->pool_fd, s->pool_size);
	if (!s->pool && s->huge) {
		/* Mapping reserves the huge pages: none left. */
		log_session(LOG_WARNING, s, "no huge pages for the pool (%m); using normal pages");
		close(s->pool_fd);
		s->huge = false;
		s->pool_fd = make_memfd("hakzerod-pool", s->pool_size, 0);
		if (s->pool_fd < 0)
			return s->pool_fd;
		s->pool = map_shared(s->pool_fd, s->pool_size);
	}
	if (!s->pool)
		return -errno;
	munlock(s->pool, s->pool_size);
	s->ctrl = map_shared(s->ctrl_fd, s->ctrl_size);
	if (!s->ctrl)
		return -errno;
	memcpy(s->ctrl, &s->layout, sizeof(s->layout));
	s->sync = hak_ctrl_at(s->ctrl, s->layout.sync_off);
	s->counters = hak_ctrl_at(s->ctrl, s->layout.counters_off);
	return 0;
}

static int stack_init(struct slot_stack *st, uint32_t n)
{
	st->v = calloc(n, sizeof(st->v[0]));
	st->n = 0;
	return st->v ? 0 : -ENOMEM;
}

static int class_init(struct session *s, unsigned i)
{
	const struct hak_class_layout *cl = &s->layout.cls[i];
	struct session_class *c = &s->cls[i];

	c->slot_size = cl->slot_size;
	c->pool_off = cl->pool_offset;
	c->nslots = cl->nslots;
	c->base = s->pool + cl->pool_offset;
	hak_layout_ring(&s->layout, s->ctrl, i, 0, &c->ready);
	hak_layout_ring(&s->layout, s->ctrl, i, 1, &c->ret);
	c->slot = calloc(c->nslots, sizeof(c->slot[0]));
	if (!c->slot || stack_init(&c->idle, c->nslots) < 0 ||
	    stack_init(&c->unbacked, c->nslots) < 0 || stack_init(&c->returned, c->nslots) < 0)
		return -ENOMEM;
	/* A fresh memfd reads as zero: every slot can be queued as it is.
	 * Pushed backwards so that slots go out in address order. */
	for (uint32_t k = c->nslots; k-- > 0;)
		c->unbacked.v[c->unbacked.n++] = k;
	c->count[SLOT_UNBACKED] = c->nslots;
	return 0;
}

static int make_segments(struct session *s, bool huge)
{
	int r;

	s->pool_fd = make_pool(s, huge);
	if (s->pool_fd < 0)
		return s->pool_fd;
	s->ctrl_fd = make_memfd("hakzerod-ctrl", s->ctrl_size, 0);
	if (s->ctrl_fd < 0)
		return s->ctrl_fd;
	s->bell_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->bell_fd < 0)
		return -errno;
	r = map_segments(s);
	for (unsigned i = 0; r == 0 && i < s->nclasses; i++)
		r = class_init(s, i);
	return r;
}

static struct session *session_alloc(int sock, const struct ucred *cred)
{
	struct session *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->ref = 1;
	s->sock = sock;
	s->pool_fd = s->ctrl_fd = s->bell_fd = -1;
	s->pid = cred->pid;
	s->uid = cred->uid;
	s->gid = cred->gid;
	s->sock_w.fd = s->bell_w.fd = -1;
	s->connected_ns = now_ns();
	session_budget_init(s, s->connected_ns);
	return s;
}

int session_new(const struct conf *c, uint64_t hugepage_size, uint32_t id, int sock,
		const struct ucred *cred, uint64_t pool_bytes, struct session **out)
{
	struct session *s = session_alloc(sock, cred);
	int r;

	if (!s)
		return -ENOMEM;
	s->id = id;
	r = session_layout(c, pool_bytes, s->id, &s->layout);
	if (r == 0) {
		s->pool_size = s->layout.pool_size;
		s->ctrl_size = s->layout.ctrl_size;
		s->nclasses = s->layout.nclasses;
		r = make_segments(s, can_use_huge(c, hugepage_size, &s->layout));
	}
	if (r < 0) {
		s->sock = -1; /* the caller still owns it */
		session_unref(s);
		return r;
	}
	session_set_watermarks(s, c->ready_low, c->ready_high);
	session_service(s);
	*out = s;
	return 0;
}

int session_welcome(struct session *s)
{
	struct hak_msg_welcome w;
	int fds[HAK_WELCOME_NFDS] = {s->pool_fd, s->ctrl_fd, s->bell_fd};
	int r;

	hak_proto_hdr_init(&w.h, HAK_MSG_WELCOME, sizeof(w));
	w.pool_size = s->pool_size;
	w.ctrl_size = s->ctrl_size;
	w.client_id = s->id;
	w.nclasses = s->nclasses;
	r = hak_sock_send(s->sock, &w, sizeof(w), fds, HAK_WELCOME_NFDS);
	if (r == 0) {
		/* Mapped already; the daemon never needs it again. */
		close(s->ctrl_fd);
		s->ctrl_fd = -1;
		s->welcomed = true;
	}
	return r;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void session_close(struct session *s)
{
	s->dead = true;
	close_fd(&s->sock);
	close_fd(&s->bell_fd);
	s->sock_w.fd = s->bell_w.fd = -1;
}

struct session *session_ref(struct session *s)
{
	s->ref++;
	return s;
}

static void session_free(struct session *s)
{
	for (unsigned i = 0; i < s->nclasses; i++) {
		free(s->cls[i].slot);
		free(s->cls[i].idle.v);
		free(s->cls[i].unbacked.v);
		free(s->cls[i].returned.v);
	}
	if (s->pool)
		munmap(s->pool, s->pool_size);
	if (s->ctrl)
		munmap(s->ctrl, s->ctrl_size);
	close_fd(&s->sock);
	close_fd(&s->pool_fd);
	close_fd(&s->ctrl_fd);
	close_fd(&s->bell_fd);
	free(s);
}

void session_unref(struct session *s)
{
	if (s && --s->ref == 0)
		session_free(s);
}

const char *session_verdict_reason(enum session_verdict v)
{
	static const char *const reasons[] = {
		[SESSION_OK] = "nothing",
		[SESSION_BAD_DESCRIPTORS] = "too many bad descriptors",
		[SESSION_BAD_INDICES] = "corrupted its ring indices",
		[SESSION_POOL_FAULT] = "its pool faulted while being zeroed",
		[SESSION_BELL_FLOOD] = "flooded its doorbell",
		[SESSION_SPOKE] = "sent a message after WELCOME",
	};

	return (unsigned)v < ARRAY_SIZE(reasons) && reasons[v] ? reasons[v] : "?";
}

void session_notify_queued(struct session *s)
{
	struct hak_msg_hdr m;

	hak_proto_hdr_init(&m, HAK_MSG_QUEUED, sizeof(m));
	/* Before WELCOME the client waits for WELCOME alone; it looks at its
	 * rings when it maps them anyway. */
	if (s->welcomed && s->sock >= 0 &&
	    send(s->sock, &m, sizeof(m), MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno != EAGAIN)
		log_msg(LOG_DEBUG, "client %u: cannot send QUEUED: %s", s->id, strerror(errno));
}

void session_set_watermarks(struct session *s, unsigned low_pct, unsigned high_pct)
{
	for (unsigned i = 0; i < s->nclasses; i++) {
		struct session_class *c = &s->cls[i];

		c->low = conf_watermark(low_pct, c->nslots);
		c->high = conf_watermark(high_pct, c->nslots);
		/* A reload keeps the target the client grew, within the new
		 * bounds. */
		c->initial = hak_geom_initial_target(c->slot_size, s->nclasses, c->high);
		if (c->target < c->initial)
			c->target = c->initial;
		if (c->target > c->high)
			c->target = c->high;
		session_publish_low(s, i);
	}
}

void session_class_counts(const struct session *s, unsigned i, struct session_class_counts *out)
{
	const struct session_class *c = &s->cls[i];
	int64_t space = hak_ring_sp_space(&c->ready, c->ready_tail);
	uint32_t queued = space < 0 ? 0 : hak_ring_entries(&c->ready) - (uint32_t)space;

	/* The client's head says how many it took: display only, clamped. */
	queued = queued < c->count[SLOT_OUT] ? queued : c->count[SLOT_OUT];
	out->slot_size = c->slot_size;
	out->nslots = c->nslots;
	out->ready = queued;
	out->out = c->count[SLOT_OUT] - queued;
	out->idle = c->count[SLOT_IDLE_ZERO];
	out->unbacked = c->count[SLOT_UNBACKED];
	out->returned = c->count[SLOT_RETURNED];
	out->busy = c->count[SLOT_ZEROING] + c->count[SLOT_TRIMMING];
	out->ready_target = c->target;
}

uint64_t session_ready_pages(const struct session *s)
{
	uint64_t pages = 0;

	for (unsigned i = 0; i < s->nclasses; i++) {
		struct session_class_counts cc;

		session_class_counts(s, i, &cc);
		pages += cc.ready * (cc.slot_size / HAK_PAGE_SIZE);
	}
	return pages;
}

void session_client_counters(const struct session *s, uint64_t v[HAK_CNT_NR])
{
	memset(v, 0, sizeof(v[0]) * HAK_CNT_NR);
	for (unsigned sh = 0; sh < HAK_COUNTER_SHARDS; sh++)
		for (unsigned k = 0; k < HAK_CNT_NR; k++)
			v[k] += hak_load64_relaxed(&s->counters[sh].v[k]);
}
