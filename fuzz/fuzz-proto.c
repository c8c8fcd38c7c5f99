/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzzes what a peer sends on the socket (shared/proto.c) and what the
 * daemon makes of a HELLO (session_layout), plus the client's check of a
 * control-segment header (shared/layout.c).
 *
 * Input: one mode byte, then the datagram (or, in layout mode, a header
 * followed by the segment and pool sizes).  Mode bits:
 *   MODE_SOCKET  also send the datagram through a SOCK_SEQPACKET pair with
 *                MODE_NFDS descriptors attached and receive it as the
 *                daemon does (hak_sock_recv, room for one descriptor)
 *   MODE_LAYOUT  the rest is a struct hak_ctrl_hdr and two uint64_t
 * Invariants: the checker and the decoders agree, every accepted message
 * has the size and field values the protocol fixes, the layout the daemon
 * computes for any HELLO is one the client accepts and stays within the
 * requested size plus one slot per class, no descriptor a peer sends stays
 * open, and a header hak_layout_validate accepts keeps every ring and class
 * inside its segment (touched here, so ASan sees any overrun).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf.h"
#include "fuzz.h"
#include "hak_layout.h"
#include "hak_proto.h"
#include "session.h"
#include "util.h"

#define MODE_NFDS 3u
#define MODE_SOCKET 4u
#define MODE_LAYOUT 8u
/* How long the last copy of a descriptor may take to go away. */
#define HUP_WAIT_MS 2000
/* Control segments this harness maps to touch their rings. */
#define LAYOUT_MAP_MAX (1u << 20)

static struct conf *defaults;
/* Where ring words are read to: the reads must happen. */
static volatile uint64_t sink;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	defaults = conf_new_defaults();
	FUZZ_CHECK(defaults, "out of memory");
	return 0;
}

/* ---- messages ---- */

static void check_hello_layout(const struct hak_msg_hello *m)
{
	const struct conf *c = defaults;
	uint64_t want = m->pool_bytes ? m->pool_bytes : c->pool_size, slack = 0;
	struct hak_ctrl_hdr h;
	int r;

	/* As conn_hello: the geometry is computed for at most pool_size_max. */
	want = min_u64(want, c->pool_size_max);
	r = session_layout(c, want, 1, &h);
	FUZZ_CHECK(r == 0, "no layout for %llu bytes: %d", (unsigned long long)want, r);
	FUZZ_CHECK(hak_layout_validate(&h, h.ctrl_size, h.pool_size) == 0,
		   "the client would refuse the layout for %llu bytes", (unsigned long long)want);
	for (unsigned i = 0; i < c->nclasses; i++)
		slack += c->cls[i].size;
	FUZZ_CHECK(h.pool_size <= want + slack, "pool of %llu bytes for %llu asked",
		   (unsigned long long)h.pool_size, (unsigned long long)want);
}

static void check_decoders(const uint8_t *buf, size_t n, int type)
{
	struct hak_msg_hello hello;
	struct hak_msg_welcome welcome;
	struct hak_msg_refuse refuse;
	struct hak_msg_admin admin;

	if (hak_proto_decode_hello(buf, n, &hello) == 0) {
		FUZZ_CHECK(type == HAK_MSG_HELLO, "HELLO decoded from type %d", type);
		FUZZ_CHECK(!(hello.flags & ~HAK_HELLO_F_KNOWN) && hello.reserved == 0, "bad HELLO");
		check_hello_layout(&hello);
	}
	if (hak_proto_decode_welcome(buf, n, &welcome) == 0)
		FUZZ_CHECK(type == HAK_MSG_WELCOME && welcome.nclasses && welcome.pool_size,
			   "bad WELCOME accepted");
	if (hak_proto_decode_refuse(buf, n, &refuse) == 0)
		FUZZ_CHECK(type == HAK_MSG_REFUSE && refuse.error < 0 &&
				   strnlen(refuse.reason, HAK_REASON_MAX) < HAK_REASON_MAX,
			   "bad REFUSE accepted");
	if (hak_proto_decode_admin(buf, n, &admin) == 0)
		FUZZ_CHECK(type == HAK_MSG_ADMIN && admin.cmd >= HAK_ADMIN_STATUS &&
				   admin.cmd <= HAK_ADMIN_TRIM && admin.pid >= 0,
			   "bad ADMIN accepted");
}

static void check_datagram(const uint8_t *buf, size_t n)
{
	int type = hak_proto_check(buf, n);
	struct hak_msg_hdr h;

	FUZZ_CHECK(type > 0 || type == -EBADMSG || type == -EPROTO || type == -EPROTONOSUPPORT,
		   "hak_proto_check returned %d", type);
	if (type > 0) {
		memcpy(&h, buf, sizeof(h));
		FUZZ_CHECK(h.magic == HAK_PROTO_MAGIC && h.version == HAK_PROTO_VERSION &&
				   h.len == n && h.reserved == 0 && h.type == type &&
				   n <= HAK_MSG_MAX,
			   "malformed message of type %d accepted", type);
	}
	check_decoders(buf, n, type);
}

/* ---- the socket ---- */

/* Whether every copy of the pipe's write end is closed: a peer's
 * descriptors must never stay open in the receiver.  Waited for: another
 * process looking into /proc/PID/fd holds a file for a moment, and then
 * the last close happens in that process, just after ours. */
static bool all_closed(int rfd)
{
	struct pollfd p = {.fd = rfd, .events = POLLIN};
	int r;

	do
		r = poll(&p, 1, HUP_WAIT_MS);
	while (r < 0 && errno == EINTR);
	return r == 1 && (p.revents & POLLHUP);
}

static void check_socket(const uint8_t *buf, size_t n, unsigned nfds)
{
	int sv[2], pfd[2], fds[MODE_NFDS], kept = -1, got[1];
	char rbuf[HAK_MSG_MAX];
	ssize_t r;

	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0 &&
			   pipe2(pfd, O_CLOEXEC) == 0,
		   "socketpair/pipe: %s", strerror(errno));
	for (unsigned i = 0; i < nfds; i++)
		fds[i] = pfd[1];
	if (hak_sock_send(sv[0], buf, n, fds, (int)nfds) < 0)
		goto out; /* larger than the socket takes: nothing to receive */
	close(pfd[1]);
	pfd[1] = -1;
	/* As the daemon reads a new connection's first message (conn.c). */
	r = hak_sock_recv(sv[1], rbuf, sizeof(rbuf), got, 1, &kept, MSG_DONTWAIT);
	if (n > sizeof(rbuf)) {
		FUZZ_CHECK(r == -EMSGSIZE && kept == 0, "truncated datagram: %zd, %d fds", r, kept);
	} else {
		FUZZ_CHECK(r == (ssize_t)n && kept == (nfds > 0), "received %zd of %zu bytes", r,
			   n);
		check_datagram((const uint8_t *)rbuf, (size_t)r);
	}
	if (kept > 0)
		close(got[0]);
	FUZZ_CHECK(all_closed(pfd[0]), "a descriptor the peer sent is still open");
out:
	close(sv[0]);
	close(sv[1]);
	close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
}

/* ---- the control segment header ---- */

static bool ring_inside(const struct hak_class_layout *cl, uint64_t off, uint64_t ents_off,
			uint64_t ctrl_size)
{
	uint64_t ents_end = ents_off + (uint64_t)cl->ring_entries * sizeof(hak_desc_t);

	return off + sizeof(struct hak_ring_shared) <= ctrl_size && ents_end <= ctrl_size &&
	       ents_end >= ents_off;
}

/* Reads the first and last entry and the indices of each ring of a
 * segment mapped at exactly ctrl_size bytes. */
static void touch_rings(const struct hak_ctrl_hdr *h, uint64_t ctrl_size)
{
	char *ctrl = calloc(1, ctrl_size);

	FUZZ_CHECK(ctrl, "out of memory");
	for (unsigned i = 0; i < h->nclasses; i++) {
		for (int ret = 0; ret < 2; ret++) {
			struct hak_ring r;

			hak_layout_ring(h, ctrl, i, ret, &r);
			sink += hak_ring_load_entry(&r, 0) + hak_ring_load_entry(&r, r.mask);
			sink += hak_ring_count(&r) + hak_load_relaxed(&r.s->reserve);
		}
	}
	free(ctrl);
}

static void check_layout(const uint8_t *buf, size_t n)
{
	struct hak_ctrl_hdr h;
	uint64_t sizes[2];
	uint64_t pool_end = 0;

	if (n < sizeof(h) + sizeof(sizes))
		return;
	memcpy(&h, buf, sizeof(h));
	memcpy(sizes, buf + sizeof(h), sizeof(sizes));
	if (hak_layout_validate(&h, sizes[0], sizes[1]) < 0)
		return;
	for (unsigned i = 0; i < h.nclasses; i++) {
		const struct hak_class_layout *cl = &h.cls[i];
		uint64_t bytes;

		FUZZ_CHECK(cl->ring_entries >= cl->nslots &&
				   !(cl->ring_entries & (cl->ring_entries - 1)),
			   "class %u: %u ring entries for %u slots", i, cl->ring_entries,
			   cl->nslots);
		FUZZ_CHECK(ring_inside(cl, cl->ready_off, cl->ready_ents_off, sizes[0]) &&
				   ring_inside(cl, cl->ret_off, cl->ret_ents_off, sizes[0]),
			   "class %u: a ring outside the segment", i);
		FUZZ_CHECK(!__builtin_mul_overflow(cl->slot_size, cl->nslots, &bytes) &&
				   cl->pool_offset == pool_end && bytes <= sizes[1] - pool_end,
			   "class %u: slots outside the pool", i);
		pool_end += bytes;
	}
	if (sizes[0] <= LAYOUT_MAP_MAX)
		touch_rings(&h, sizes[0]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned mode;

	if (size == 0)
		return 0;
	mode = data[0];
	data++;
	size--;
	if (mode & MODE_LAYOUT) {
		check_layout(data, size);
		return 0;
	}
	check_datagram(data, size);
	if (mode & MODE_SOCKET)
		check_socket(data, size, mode & MODE_NFDS);
	return 0;
}
