/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hak-hostile's attacks on the socket: what a client sends before, with
 * and after HELLO, and how many connections it makes. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hostile.h"

static void fill_garbage(unsigned char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)rnd();
	/* Random bytes that start like our header are not garbage enough:
	 * one in 2^32, but then the case would be a different one. */
	if (len >= 4 && memcmp(buf, &(uint32_t){HAK_PROTO_MAGIC}, 4) == 0)
		buf[0] ^= 0xff;
}

int cmd_garbage(const struct opts *o)
{
	static unsigned char buf[HAK_MSG_MAX];
	unsigned closed = 0, other = 0;

	for (unsigned i = 0; i < o->count; i++) {
		size_t len = 1 + rnd() % HAK_MSG_MAX;
		struct answer a;
		int fd = open_conn();

		fill_garbage(buf, len);
		if (send_fds(fd, buf, len, NULL, 0) < 0)
			tu_fail("send: %s", strerror(errno));
		read_answer(fd, REACT_MS, &a);
		close_answer_fds(&a);
		close(fd);
		if (a.out == OUT_CLOSED)
			closed++;
		else
			other++;
	}
	tu_say("ok sent=%u closed=%u other=%u", o->count, closed, other);
	return other ? 1 : 0;
}

/* One crafted first message per case; see test-hostile for what each
 * must lead to. */
struct crafted {
	const char *name;
	enum outcome want;
};

static unsigned crafted_hello(const char *name, void (*mut)(struct hak_msg_hello *),
			      enum outcome want, unsigned *bad)
{
	struct hak_msg_hello m;

	hello_init(&m, 0);
	mut(&m);
	if (one_shot(name, &m, sizeof(m), NULL, 0) != want)
		(*bad)++;
	return 1;
}

static void mut_magic(struct hak_msg_hello *m)
{
	m->h.magic ^= 0x01000000;
}
static void mut_version2(struct hak_msg_hello *m)
{
	m->h.version = HAK_PROTO_VERSION + 1;
}
static void mut_version0(struct hak_msg_hello *m)
{
	m->h.version = 0;
}
static void mut_type99(struct hak_msg_hello *m)
{
	m->h.type = 99;
}
static void mut_type_welcome(struct hak_msg_hello *m)
{
	m->h.type = HAK_MSG_WELCOME;
}
static void mut_type_refuse(struct hak_msg_hello *m)
{
	m->h.type = HAK_MSG_REFUSE;
}
static void mut_hdr_reserved(struct hak_msg_hello *m)
{
	m->h.reserved = 1;
}
static void mut_hello_reserved(struct hak_msg_hello *m)
{
	m->reserved = 0xdead;
}
static void mut_flags(struct hak_msg_hello *m)
{
	m->flags = 0x80000001u;
}
static void mut_len_big(struct hak_msg_hello *m)
{
	m->h.len += 8;
}
static void mut_len_small(struct hak_msg_hello *m)
{
	m->h.len = sizeof(m->h);
}

static unsigned crafted_admin(const char *name, uint32_t cmd, uint32_t flags, int32_t pid,
			      unsigned *bad)
{
	struct hak_msg_admin m;

	memset(&m, 0, sizeof(m));
	hak_proto_hdr_init(&m.h, HAK_MSG_ADMIN, sizeof(m));
	m.cmd = cmd;
	m.flags = flags;
	m.pid = pid;
	if (one_shot(name, &m, sizeof(m), NULL, 0) != OUT_CLOSED)
		(*bad)++;
	return 1;
}

/* HELLO cut at every length from 1 to one byte short, and one byte long. */
static unsigned truncations(unsigned *bad)
{
	unsigned char buf[sizeof(struct hak_msg_hello) + 1] = {0};
	struct hak_msg_hello m;
	char name[32];
	unsigned n = 0;

	hello_init(&m, 0);
	memcpy(buf, &m, sizeof(m));
	for (size_t len = 1; len <= sizeof(m) + 1; len++) {
		if (len == sizeof(m))
			continue;
		snprintf(name, sizeof(name), "hello-len-%zu", len);
		if (one_shot(name, buf, len, NULL, 0) != OUT_CLOSED)
			(*bad)++;
		n++;
	}
	return n;
}

static unsigned oversize(unsigned *bad)
{
	static const size_t sizes[] = {HAK_MSG_MAX + 1, 65536};
	char name[32];
	unsigned char *buf = calloc(1, 65536);
	struct hak_msg_hello m;

	if (!buf)
		tu_fail("out of memory");
	hello_init(&m, 0);
	memcpy(buf, &m, sizeof(m));
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		snprintf(name, sizeof(name), "oversize-%zu", sizes[i]);
		if (one_shot(name, buf, sizes[i], NULL, 0) != OUT_CLOSED)
			(*bad)++;
	}
	free(buf);
	return 2;
}

int cmd_malformed(const struct opts *o)
{
	static const struct {
		const char *name;
		void (*mut)(struct hak_msg_hello *);
		enum outcome want;
	} hellos[] = {
		{"bad-magic", mut_magic, OUT_CLOSED},
		{"version-next", mut_version2, OUT_REFUSED},
		{"version-0", mut_version0, OUT_REFUSED},
		{"type-99", mut_type99, OUT_CLOSED},
		{"type-welcome", mut_type_welcome, OUT_CLOSED},
		{"type-refuse", mut_type_refuse, OUT_CLOSED},
		{"hdr-reserved", mut_hdr_reserved, OUT_CLOSED},
		{"hello-reserved", mut_hello_reserved, OUT_CLOSED},
		{"unknown-flags", mut_flags, OUT_CLOSED},
		{"len-too-big", mut_len_big, OUT_CLOSED},
		{"len-too-small", mut_len_small, OUT_CLOSED},
	};
	unsigned n = 0, bad = 0;

	for (size_t i = 0; i < sizeof(hellos) / sizeof(hellos[0]); i++)
		n += crafted_hello(hellos[i].name, hellos[i].mut, hellos[i].want, &bad);
	n += truncations(&bad);
	n += oversize(&bad);
	n += crafted_admin("admin-cmd-0", 0, 0, 0, &bad);
	n += crafted_admin("admin-cmd-99", 99, 0, 0, &bad);
	n += crafted_admin("admin-flags", HAK_ADMIN_STATUS, 0xf0, 0, &bad);
	n += crafted_admin("admin-pid-negative", HAK_ADMIN_TRIM, 0, -5, &bad);
	/* Not an offence: a peer may go before saying anything. */
	one_shot("empty", "", 0, NULL, 0);
	tu_say("ok cases=%u unexpected=%u", n, bad);
	return bad ? 1 : 0;
}

/* HELLO asking for absurd pool sizes: above the quota is refused, tiny is
 * served with one slot per class. */
int cmd_sizes(const struct opts *o)
{
	const uint64_t big[] = {UINT64_MAX, 1ull << 63, (1ull << 40) + 1, o->max + 1, o->max * 2};
	const uint64_t tiny[] = {1, 4095, 4097};
	unsigned bad = 0;
	char name[48];

	for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
		struct hak_msg_hello m;

		hello_init(&m, big[i]);
		snprintf(name, sizeof(name), "pool-%llu", (unsigned long long)big[i]);
		if (one_shot(name, &m, sizeof(m), NULL, 0) != OUT_REFUSED)
			bad++;
	}
	for (size_t i = 0; i < sizeof(tiny) / sizeof(tiny[0]); i++) {
		struct session s;

		if (!session_open(&s, tiny[i])) {
			bad++;
			continue;
		}
		tu_say("case pool-%llu outcome=welcome pool_size=%llu classes=%u",
		       (unsigned long long)tiny[i], (unsigned long long)s.w.pool_size,
		       s.hdr.nclasses);
		for (unsigned c = 0; c < s.hdr.nclasses; c++)
			take_ready(&s, c, NULL, TAKE_MAX, REACT_MS);
		session_close(&s);
	}
	tu_say("ok cases=%zu unexpected=%u", sizeof(big) / sizeof(big[0]) + 3, bad);
	return bad ? 1 : 0;
}

/* Descriptors of many kinds, to pass to the daemon. */
static int make_fds(int *fds, int n)
{
	int pipefd[2], sp[2], k = 0;

	while (k < n) {
		switch (k % 5) {
		case 0:
			fds[k++] = memfd_create("hostile", MFD_CLOEXEC);
			break;
		case 1:
			fds[k++] = eventfd(0, EFD_CLOEXEC);
			break;
		case 2:
			if (pipe2(pipefd, O_CLOEXEC) < 0)
				tu_fail("pipe: %s", strerror(errno));
			fds[k++] = pipefd[0];
			close(pipefd[1]);
			break;
		case 3:
			fds[k++] = open("/dev/null", O_RDWR | O_CLOEXEC);
			break;
		default:
			/* A socket with a descriptor of its own in flight:
			 * the kind the kernel's unix garbage collector has
			 * to untangle. */
			if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sp) < 0)
				tu_fail("socketpair: %s", strerror(errno));
			send_fds(sp[0], "x", 1, &sp[1], 1);
			close(sp[1]);
			fds[k++] = sp[0];
			break;
		}
		if (fds[k - 1] < 0)
			tu_fail("making descriptors: %s", strerror(errno));
	}
	return k;
}

static void close_fds(const int *fds, int n)
{
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

int cmd_fds(const struct opts *o)
{
	static const int counts[] = {1, 3, 8, 9, 64, SCM_MAX_FDS};
	int fds[SCM_MAX_FDS];
	struct hak_msg_hello m;
	struct hak_msg_admin a;
	unsigned bad = 0, n = 0;
	char name[32];

	hello_init(&m, 0);
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		int k = make_fds(fds, counts[i]);

		snprintf(name, sizeof(name), "hello-with-%d-fds", k);
		if (one_shot(name, &m, sizeof(m), fds, k) != OUT_CLOSED)
			bad++;
		close_fds(fds, k);
		n++;
	}
	memset(&a, 0, sizeof(a));
	hak_proto_hdr_init(&a.h, HAK_MSG_ADMIN, sizeof(a));
	a.cmd = HAK_ADMIN_STATUS;
	make_fds(fds, 2);
	if (one_shot("admin-with-2-fds", &a, sizeof(a), fds, 2) != OUT_CLOSED)
		bad++;
	close_fds(fds, 2);
	tu_say("ok cases=%u unexpected=%u", n + 1, bad);
	return bad ? 1 : 0;
}

/* After WELCOME the socket must stay silent: anything on it is cut off. */
int cmd_after_welcome(const struct opts *o)
{
	static const int nfds[] = {0, 4, 0};
	unsigned bad = 0;
	int fds[8];

	for (size_t i = 0; i < sizeof(nfds) / sizeof(nfds[0]); i++) {
		struct hak_msg_hello m;
		struct session s;
		bool cut;

		if (!session_open(&s, 0))
			tu_fail("refused");
		hello_init(&m, 0);
		make_fds(fds, nfds[i]);
		/* The last case: one garbage byte rather than a HELLO. */
		if (send_fds(s.sock, &m, i == 2 ? 1 : sizeof(m), fds, nfds[i]) < 0)
			tu_fail("send: %s", strerror(errno));
		close_fds(fds, nfds[i]);
		cut = cut_off(&s, REACT_MS);
		tu_say("case after-welcome-%zu fds=%d cut_off=%d", i, nfds[i], cut);
		bad += !cut;
		session_close(&s);
	}
	tu_say("ok cases=3 unexpected=%u", bad);
	return bad ? 1 : 0;
}

/* Connections that never say a word: the daemon times them out; beyond
 * its pending limit it closes new ones at once. */
int cmd_silent(const struct opts *o)
{
	static int fds[MAX_SESSIONS];
	unsigned n = o->count < MAX_SESSIONS ? o->count : MAX_SESSIONS, early = 0, later = 0;
	uint64_t deadline;

	for (unsigned i = 0; i < n; i++)
		fds[i] = open_conn();
	tu_sleep_ms(QUIET_MS);
	for (unsigned i = 0; i < n; i++) {
		struct pollfd pfd = {.fd = fds[i], .events = POLLIN | POLLRDHUP};

		if (poll(&pfd, 1, 0) == 1) {
			early++;
			close(fds[i]);
			fds[i] = -1;
		}
	}
	tu_say("opened=%u closed_early=%u", n, early);
	deadline = tu_now_ms() + 2 * REACT_MS;
	for (unsigned i = 0; i < n; i++) {
		struct pollfd pfd = {.fd = fds[i], .events = POLLIN | POLLRDHUP};
		uint64_t now = tu_now_ms();

		if (fds[i] < 0)
			continue;
		if (poll(&pfd, 1, now < deadline ? (int)(deadline - now) : 0) == 1)
			later++;
		close(fds[i]);
	}
	tu_say("ok opened=%u closed_early=%u timed_out=%u", n, early, later);
	return early + later == n ? 0 : 1;
}

/* Connect, HELLO, WELCOME, map, take a slot, go: count times.  With
 * variant "abort" the connection goes right after HELLO, before WELCOME
 * arrives. */
int cmd_cycles(const struct opts *o)
{
	bool abort_early = o->variant && strcmp(o->variant, "abort") == 0;
	unsigned taken = 0;

	for (unsigned i = 0; i < o->count; i++) {
		struct session s;

		if (abort_early) {
			struct hak_msg_hello m;
			int fd = open_conn();

			hello_init(&m, 0);
			hak_sock_send(fd, &m, sizeof(m), NULL, 0);
			close(fd);
			continue;
		}
		if (!session_open(&s, 0))
			tu_fail("cycle %u refused", i);
		taken += take_ready(&s, 0, NULL, 1, REACT_MS);
		session_close(&s);
	}
	tu_say("ok cycles=%u taken=%u", o->count, taken);
	return 0;
}

/* Sessions held open until stdin closes: for the client limits. */
int cmd_sessions(const struct opts *o)
{
	static struct session s[MAX_SESSIONS];
	unsigned n = o->count < MAX_SESSIONS ? o->count : MAX_SESSIONS, ok = 0;
	char line[64];

	for (unsigned i = 0; i < n; i++)
		if (session_open(&s[ok], o->max))
			ok++;
	tu_say("ok welcomed=%u refused=%u", ok, n - ok);
	while (fgets(line, sizeof(line), stdin))
		;
	for (unsigned i = 0; i < ok; i++)
		session_close(&s[i]);
	return 0;
}
