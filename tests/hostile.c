/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hak-hostile: a client that speaks shared/hak_proto.h itself and then does
 * what a real client never would (DESIGN rule 3): garbage and truncated
 * datagrams, wrong magic or version, absurd sizes, descriptors passed to the
 * daemon, bad and stale return descriptors, corrupted ring indices, hoarding,
 * a doorbell flood, connect/disconnect storms.  Driven by test-hostile and
 * the soak; one attack per run.
 *
 * Output, one fact a line: "case NAME outcome=closed|refused|welcome ...",
 * "pushed ...", and at the end "ok KEY=VALUE..." (exit 0) or "fail WHY"
 * (exit 1).  An outcome the daemon chose is reported, not judged: the driver
 * knows what to expect and checks the daemon's counters and log too.  Where
 * the attack maps a pool, every slot it pops from a ready ring must read
 * zero: hostility must never cost the daemon its rule 1.
 *
 * This file: output, connections and sessions, the command line; the
 * attacks are in hostile-socket.c and hostile-shm.c.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "hostile.h"
#include "testutil.h"

#define PROG "hak-hostile"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

uint64_t rnd(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

/* --------------------------------------------------------------- sockets */

const char *sock_path;

int open_conn(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	if (fd < 0)
		tu_fail("socket: %s", strerror(errno));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		tu_fail("connect %s: %s", sock_path, strerror(errno));
	return fd;
}

/* Sends with any number of descriptors (hak_sock_send stops at 8). */
int send_fds(int fd, const void *buf, size_t len, const int *fds, int nfds)
{
	size_t space = CMSG_SPACE(sizeof(int) * (size_t)nfds);
	char *cbuf = calloc(1, space ? space : 1);
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;

	if (!cbuf)
		tu_fail("out of memory");
	if (nfds > 0) {
		struct cmsghdr *cm;

		msg.msg_control = cbuf;
		msg.msg_controllen = space;
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
	}
	n = sendmsg(fd, &msg, MSG_NOSIGNAL);
	free(cbuf);
	return n < 0 ? -errno : 0;
}

const char *const outcome_names[] = {"closed", "refused", "welcome", "reply", "open", "other"};

/* Waits up to timeout_ms for what the daemon does with a connection. */
void read_answer(int fd, unsigned timeout_ms, struct answer *a)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	union {
		char buf[HAK_MSG_MAX];
		struct hak_msg_refuse r;
		struct hak_msg_admin_reply ar;
	} u;
	ssize_t n;

	memset(a, 0, sizeof(*a));
	a->out = OUT_OPEN;
	if (poll(&pfd, 1, (int)timeout_ms) <= 0)
		return;
	n = hak_sock_recv(fd, u.buf, sizeof(u.buf), a->fds, HAK_WELCOME_NFDS, &a->nfds,
			  MSG_DONTWAIT);
	if (n == 0 || n == -ECONNRESET) {
		a->out = OUT_CLOSED;
	} else if (n > 0 && hak_proto_decode_refuse(u.buf, (size_t)n, &u.r) == 0) {
		a->out = OUT_REFUSED;
		a->error = u.r.error;
		snprintf(a->reason, sizeof(a->reason), "%s", u.r.reason);
	} else if (n > 0 && hak_proto_decode_welcome(u.buf, (size_t)n, &a->w) == 0) {
		a->out = OUT_WELCOME;
	} else if (n > 0 && hak_proto_check(u.buf, (size_t)n) == HAK_MSG_ADMIN_REPLY) {
		a->out = OUT_REPLY;
		a->error = u.ar.status;
	} else {
		a->out = OUT_OTHER;
		a->error = (int)n;
	}
}

void close_answer_fds(struct answer *a)
{
	for (int i = 0; i < a->nfds; i++)
		close(a->fds[i]);
	a->nfds = 0;
}

/* One connection, one datagram (with fds), and what came of it. */
enum outcome one_shot(const char *name, const void *buf, size_t len, const int *fds, int nfds)
{
	struct answer a;
	int fd = open_conn(), r = send_fds(fd, buf, len, fds, nfds);

	if (r < 0)
		tu_fail("%s: send: %s", name, strerror(-r));
	read_answer(fd, REACT_MS, &a);
	close_answer_fds(&a);
	close(fd);
	if (a.out == OUT_REFUSED)
		tu_say("case %s outcome=refused error=%d reason=\"%s\"", name, a.error, a.reason);
	else
		tu_say("case %s outcome=%s", name, outcome_names[a.out]);
	return a.out;
}

void hello_init(struct hak_msg_hello *m, uint64_t pool_bytes)
{
	memset(m, 0, sizeof(*m));
	hak_proto_hdr_init(&m->h, HAK_MSG_HELLO, sizeof(*m));
	m->pool_bytes = pool_bytes;
}

/* ------------------------------------------------------------ sessions */

static void session_map(struct session *s)
{
	s->ctrl = mmap(NULL, s->w.ctrl_size, PROT_READ | PROT_WRITE, MAP_SHARED, s->ctrl_fd, 0);
	s->pool = mmap(NULL, s->w.pool_size, PROT_READ | PROT_WRITE, MAP_SHARED, s->pool_fd, 0);
	if (s->ctrl == MAP_FAILED || s->pool == MAP_FAILED)
		tu_fail("mmap: %s", strerror(errno));
	memcpy(&s->hdr, s->ctrl, sizeof(s->hdr));
	if (hak_layout_validate(&s->hdr, s->w.ctrl_size, s->w.pool_size) < 0)
		tu_fail("the daemon's control segment does not validate");
}

/* HELLO, WELCOME, mapped.  Returns false when refused (reason printed). */
bool session_open(struct session *s, uint64_t pool_bytes)
{
	struct hak_msg_hello m;
	struct answer a;

	memset(s, 0, sizeof(*s));
	s->sock = open_conn();
	hello_init(&m, pool_bytes);
	if (hak_sock_send(s->sock, &m, sizeof(m), NULL, 0) < 0)
		tu_fail("send HELLO: %s", strerror(errno));
	read_answer(s->sock, REACT_MS, &a);
	if (a.out == OUT_REFUSED) {
		tu_say("refused error=%d reason=\"%s\"", a.error, a.reason);
		close(s->sock);
		return false;
	}
	if (a.out != OUT_WELCOME || a.nfds != HAK_WELCOME_NFDS)
		tu_fail("no WELCOME (%s, %d fds)", outcome_names[a.out], a.nfds);
	s->w = a.w;
	s->pool_fd = a.fds[0];
	s->ctrl_fd = a.fds[1];
	s->bell_fd = a.fds[2];
	session_map(s);
	return true;
}

void session_close(struct session *s)
{
	munmap(s->pool, s->w.pool_size);
	munmap(s->ctrl, s->w.ctrl_size);
	close(s->pool_fd);
	close(s->ctrl_fd);
	close(s->bell_fd);
	close(s->sock);
}

void ring_of(struct session *s, unsigned cls, int ret, struct hak_ring *r)
{
	hak_layout_ring(&s->hdr, s->ctrl, cls, ret, r);
}

/* Rings as a client must, when attacks are about something else: only
 * when the daemon armed the doorbell, taking the arming.  (bell-flood
 * rings without.)  Unarmed, the daemon's tick comes within 10 ms. */
void doorbell(struct session *s)
{
	struct hak_ctrl_sync *sync = hak_ctrl_at(s->ctrl, s->hdr.sync_off);
	uint64_t one = 1;

	if (hak_xchg_acq_rel(&sync->want_doorbell, 0) != 1)
		return;
	if (write(s->bell_fd, &one, sizeof(one)) != sizeof(one))
		tu_fail("doorbell: %s", strerror(errno));
}

/* Whether the daemon closed our session within timeout_ms. */
bool cut_off(struct session *s, unsigned timeout_ms)
{
	uint64_t deadline = tu_now_ms() + timeout_ms;
	char buf[HAK_MSG_MAX];

	/* The daemon's messages after WELCOME (QUEUED) are hints, not an
	 * end: they are read past, and only end of stream or an error within
	 * the timeout (or already there, for a timeout of 0) is a cut-off. */
	for (;;) {
		struct pollfd pfd = {.fd = s->sock, .events = POLLIN | POLLRDHUP};
		uint64_t now = tu_now_ms();
		ssize_t n;

		if (poll(&pfd, 1, now < deadline ? (int)(deadline - now) : 0) <= 0)
			return false;
		n = hak_sock_recv(s->sock, buf, sizeof(buf), NULL, 0, NULL, MSG_DONTWAIT);
		if (n <= 0 && n != -EAGAIN)
			return true;
	}
}

char *slot_addr(struct session *s, unsigned cls, uint32_t slot)
{
	const struct hak_class_layout *cl = &s->hdr.cls[cls];

	return s->pool + cl->pool_offset + (uint64_t)slot * cl->slot_size;
}

bool all_zero(const char *p, size_t len)
{
	const uint64_t *w = (const uint64_t *)p;

	for (size_t i = 0; i < len / sizeof(*w); i++)
		if (w[i])
			return false;
	return true;
}

/* Pops every queued descriptor of a class (waiting up to wait_ms for the
 * first), checking that each slot is in range and reads zero. */
unsigned take_ready(struct session *s, unsigned cls, hak_desc_t *out, unsigned max,
		    unsigned wait_ms)
{
	struct hak_ring r;
	uint64_t deadline = tu_now_ms() + wait_ms;
	unsigned n = 0;
	hak_desc_t d;

	ring_of(s, cls, 0, &r);
	while (hak_ring_count(&r) == 0 && tu_now_ms() < deadline)
		tu_sleep_ms(1);
	while (n < max && hak_ring_pop_mc(&r, &d)) {
		uint32_t slot = hak_desc_slot(d);

		if (slot >= s->hdr.cls[cls].nslots)
			tu_fail("the daemon queued slot %u of class %u (%u slots)", slot, cls,
				s->hdr.cls[cls].nslots);
		if (!all_zero(slot_addr(s, cls, slot), s->hdr.cls[cls].slot_size))
			tu_fail("class %u slot %u came from the ready ring not zeroed", cls, slot);
		if (out)
			out[n] = d;
		n++;
	}
	return n;
}

void push_returns(struct session *s, unsigned cls, const hak_desc_t *d, uint32_t n)
{
	struct hak_ring r;

	ring_of(s, cls, 1, &r);
	if (!hak_ring_push_mp(&r, d, n))
		tu_fail("return ring of class %u full", cls);
}

/* ------------------------------------------------------------- options */

static void usage(FILE *f)
{
	fprintf(f, "Usage: hak-hostile ATTACK --socket PATH [--count N] [--seconds S]\n"
		   "                  [--seed N] [--max BYTES] [--variant NAME]\n"
		   "attacks: garbage malformed sizes fds after-welcome silent cycles sessions\n"
		   "         descs offence-flood ring hoard bell-flood bell-armed seals\n");
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, 's'},
		{"count", required_argument, NULL, 'n'},
		{"seconds", required_argument, NULL, 't'},
		{"seed", required_argument, NULL, 'r'},
		{"max", required_argument, NULL, 'm'},
		{"variant", required_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	int c;

	*o = (struct opts){.count = 100, .seconds = 1, .seed = 1, .max = 1ull << 30};
	while ((c = getopt_long(argc, argv, "s:n:t:r:m:v:h", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			o->socket = optarg;
			break;
		case 'n':
			o->count = tu_parse_uint(PROG, "--count", optarg, 0, UINT_MAX);
			break;
		case 't':
			o->seconds = tu_parse_uint(PROG, "--seconds", optarg, 0, UINT_MAX);
			break;
		case 'r':
			o->seed = tu_parse_uint(PROG, "--seed", optarg, 0, UINT_MAX);
			break;
		case 'm':
			o->max = tu_parse_u64(PROG, "--max", optarg, 0, UINT64_MAX);
			break;
		case 'v':
			o->variant = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (!o->socket) {
		usage(stderr);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(const struct opts *o);
	} cmds[] = {
		{"garbage", cmd_garbage},
		{"malformed", cmd_malformed},
		{"sizes", cmd_sizes},
		{"fds", cmd_fds},
		{"after-welcome", cmd_after_welcome},
		{"silent", cmd_silent},
		{"cycles", cmd_cycles},
		{"sessions", cmd_sessions},
		{"descs", cmd_descs},
		{"offence-flood", cmd_offence_flood},
		{"ring", cmd_ring},
		{"hoard", cmd_hoard},
		{"bell-flood", cmd_bell_flood},
		{"bell-armed", cmd_bell_armed},
		{"seals", cmd_seals},
	};
	struct opts o;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	parse_opts(argc - 1, argv + 1, &o);
	sock_path = o.socket;
	rng_state ^= (uint64_t)o.seed * 0x2545f4914f6cdd1dull;
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[1], cmds[i].name) == 0)
			return cmds[i].fn(&o);
	fprintf(stderr, PROG ": unknown attack '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
