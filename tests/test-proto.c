/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Tests for shared/proto.c: message encoding and the checks that protect
 * the daemon from whatever bytes a peer sends, and fd passing that never
 * leaks a descriptor a peer pushes at us.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "hak_proto.h"

/* Room for any message plus slack, to build over-long datagrams. */
#define BUF_SIZE (HAK_MSG_MAX + 64)
/* More descriptors than hak_sock_recv has control-buffer room for. */
#define TOO_MANY_FDS 12

union msgbuf {
	struct hak_msg_hdr h;
	struct hak_msg_hello hello;
	struct hak_msg_welcome welcome;
	struct hak_msg_refuse refuse;
	struct hak_msg_admin admin;
	struct hak_msg_admin_reply reply;
	unsigned char bytes[BUF_SIZE];
};

static void make_hello(union msgbuf *m)
{
	memset(m, 0, sizeof(*m));
	hak_proto_hdr_init(&m->h, HAK_MSG_HELLO, sizeof(m->hello));
	m->hello.pool_bytes = 64ull << 20;
	m->hello.flags = HAK_HELLO_F_NONE;
}

static void make_welcome(union msgbuf *m)
{
	memset(m, 0, sizeof(*m));
	hak_proto_hdr_init(&m->h, HAK_MSG_WELCOME, sizeof(m->welcome));
	m->welcome.pool_size = 32ull << 20;
	m->welcome.ctrl_size = 64 << 10;
	m->welcome.client_id = 7;
	m->welcome.nclasses = 3;
}

static void make_refuse(union msgbuf *m)
{
	memset(m, 0, sizeof(*m));
	hak_proto_hdr_init(&m->h, HAK_MSG_REFUSE, sizeof(m->refuse));
	m->refuse.error = -EDQUOT;
	strcpy(m->refuse.reason, "per-uid limit reached");
}

static void make_admin(union msgbuf *m, uint32_t cmd)
{
	memset(m, 0, sizeof(*m));
	hak_proto_hdr_init(&m->h, HAK_MSG_ADMIN, sizeof(m->admin));
	m->admin.cmd = cmd;
	m->admin.flags = HAK_ADMIN_F_JSON;
	m->admin.pid = 1234;
}

static size_t make_reply(union msgbuf *m, const char *text)
{
	size_t n = sizeof(m->reply) + strlen(text);

	memset(m, 0, sizeof(*m));
	hak_proto_hdr_init(&m->h, HAK_MSG_ADMIN_REPLY, (uint32_t)n);
	m->reply.flags = HAK_ADMIN_F_LAST;
	memcpy(m->reply.text, text, strlen(text));
	return n;
}

/* ------------------------------------------------------------ round trips */

static void test_hdr_init(void **state)
{
	struct hak_msg_hdr h;

	memset(&h, 0xff, sizeof(h));
	hak_proto_hdr_init(&h, HAK_MSG_ADMIN, 40);
	assert_int_equal(h.magic, HAK_PROTO_MAGIC);
	assert_int_equal(h.version, HAK_PROTO_VERSION);
	assert_int_equal(h.type, HAK_MSG_ADMIN);
	assert_int_equal(h.len, 40);
	assert_int_equal(h.reserved, 0);
}

static void test_roundtrip_hello(void **state)
{
	union msgbuf m;
	struct hak_msg_hello out;

	make_hello(&m);
	assert_int_equal(hak_proto_check(&m, sizeof(m.hello)), HAK_MSG_HELLO);
	assert_int_equal(hak_proto_decode_hello(&m, sizeof(m.hello), &out), 0);
	assert_memory_equal(&out, &m.hello, sizeof(out));
	m.hello.pool_bytes = 0; /* "the daemon's default" is valid */
	assert_int_equal(hak_proto_decode_hello(&m, sizeof(m.hello), &out), 0);
	assert_int_equal(out.pool_bytes, 0);
}

static void test_roundtrip_welcome(void **state)
{
	union msgbuf m;
	struct hak_msg_welcome out;

	make_welcome(&m);
	assert_int_equal(hak_proto_check(&m, sizeof(m.welcome)), HAK_MSG_WELCOME);
	assert_int_equal(hak_proto_decode_welcome(&m, sizeof(m.welcome), &out), 0);
	assert_memory_equal(&out, &m.welcome, sizeof(out));
}

static void test_roundtrip_refuse(void **state)
{
	union msgbuf m;
	struct hak_msg_refuse out;

	make_refuse(&m);
	assert_int_equal(hak_proto_check(&m, sizeof(m.refuse)), HAK_MSG_REFUSE);
	assert_int_equal(hak_proto_decode_refuse(&m, sizeof(m.refuse), &out), 0);
	assert_memory_equal(&out, &m.refuse, sizeof(out));
	assert_string_equal(out.reason, "per-uid limit reached");
	/* A reason using the whole field, NUL last, is fine. */
	memset(m.refuse.reason, 'x', HAK_REASON_MAX - 1);
	m.refuse.reason[HAK_REASON_MAX - 1] = '\0';
	assert_int_equal(hak_proto_decode_refuse(&m, sizeof(m.refuse), &out), 0);
}

static void test_roundtrip_admin(void **state)
{
	union msgbuf m;
	struct hak_msg_admin out;

	for (uint32_t cmd = HAK_ADMIN_STATUS; cmd <= HAK_ADMIN_TRIM; cmd++) {
		make_admin(&m, cmd);
		assert_int_equal(hak_proto_check(&m, sizeof(m.admin)), HAK_MSG_ADMIN);
		assert_int_equal(hak_proto_decode_admin(&m, sizeof(m.admin), &out), 0);
		assert_memory_equal(&out, &m.admin, sizeof(out));
	}
	m.admin.flags = 0;
	m.admin.pid = 0;
	assert_int_equal(hak_proto_decode_admin(&m, sizeof(m.admin), &out), 0);
}

/* ADMIN_REPLY has a variable tail: fixed part .. HAK_MSG_MAX. */
static void test_admin_reply_sizes(void **state)
{
	union msgbuf m;
	size_t n = make_reply(&m, "{\"clients\":0}");

	assert_int_equal(hak_proto_check(&m, n), HAK_MSG_ADMIN_REPLY);
	n = make_reply(&m, "");
	assert_int_equal(n, sizeof(struct hak_msg_admin_reply));
	assert_int_equal(hak_proto_check(&m, n), HAK_MSG_ADMIN_REPLY);
	m.h.len = HAK_MSG_MAX;
	assert_int_equal(hak_proto_check(&m, HAK_MSG_MAX), HAK_MSG_ADMIN_REPLY);
	m.h.len = HAK_MSG_MAX + 1;
	assert_int_equal(hak_proto_check(&m, HAK_MSG_MAX + 1), -EBADMSG);
	m.h.len = sizeof(struct hak_msg_admin_reply) - 1;
	assert_int_equal(hak_proto_check(&m, m.h.len), -EBADMSG);
}

/* -------------------------------------------------------------- rejection */

/* Every fixed-size message, built valid, for the generic rejection tests. */
static size_t make_any(union msgbuf *m, int which)
{
	switch (which) {
	case 0:
		make_hello(m);
		return sizeof(m->hello);
	case 1:
		make_welcome(m);
		return sizeof(m->welcome);
	case 2:
		make_refuse(m);
		return sizeof(m->refuse);
	case 3:
		make_admin(m, HAK_ADMIN_STATUS);
		return sizeof(m->admin);
	default:
		return make_reply(m, "some text");
	}
}

#define NR_KINDS 5

static void test_reject_truncated(void **state)
{
	union msgbuf m;

	for (int k = 0; k < NR_KINDS; k++) {
		size_t n = make_any(&m, k);

		/* Consistent len, too short for the type. */
		m.h.len = (uint32_t)n - 1;
		assert_int_equal(hak_proto_check(&m, n - 1),
				 k == 4 ? HAK_MSG_ADMIN_REPLY : -EBADMSG);
		/* Shorter than a header: nothing in it can be trusted. */
		for (size_t s = 0; s < sizeof(struct hak_msg_hdr); s++)
			assert_int_equal(hak_proto_check(&m, s), -EBADMSG);
	}
	/* An ADMIN_REPLY shorter than its fixed part. */
	make_reply(&m, "");
	m.h.len = sizeof(struct hak_msg_hdr);
	assert_int_equal(hak_proto_check(&m, m.h.len), -EBADMSG);
}

/* QUEUED (daemon -> client, elastic pools) is a bare header, exactly. */
static void test_queued(void **state)
{
	char buf[sizeof(struct hak_msg_hdr) + 1] = {0};
	struct hak_msg_hdr h;

	hak_proto_hdr_init(&h, HAK_MSG_QUEUED, sizeof(h));
	memcpy(buf, &h, sizeof(h));
	assert_int_equal(hak_proto_check(buf, sizeof(h)), HAK_MSG_QUEUED);
	h.len = sizeof(buf);
	memcpy(buf, &h, sizeof(h));
	assert_int_equal(hak_proto_check(buf, sizeof(buf)), -EBADMSG);
}

static void test_reject_long(void **state)
{
	union msgbuf m;

	for (int k = 0; k < 4; k++) {
		size_t n = make_any(&m, k);

		/* Consistent len, longer than the type. */
		m.h.len = (uint32_t)n + 8;
		assert_int_equal(hak_proto_check(&m, n + 8), -EBADMSG);
		m.h.len = BUF_SIZE;
		assert_int_equal(hak_proto_check(&m, BUF_SIZE), -EBADMSG);
	}
}

static void test_reject_len_mismatch(void **state)
{
	union msgbuf m;

	for (int k = 0; k < NR_KINDS; k++) {
		size_t n = make_any(&m, k);

		m.h.len = (uint32_t)n + 1;
		assert_int_equal(hak_proto_check(&m, n), -EBADMSG);
		m.h.len = (uint32_t)n - 1;
		assert_int_equal(hak_proto_check(&m, n), -EBADMSG);
		m.h.len = 0;
		assert_int_equal(hak_proto_check(&m, n), -EBADMSG);
		m.h.len = UINT32_MAX;
		assert_int_equal(hak_proto_check(&m, n), -EBADMSG);
	}
}

static void test_reject_magic(void **state)
{
	union msgbuf m;

	for (int k = 0; k < NR_KINDS; k++) {
		size_t n = make_any(&m, k);

		m.h.magic ^= 1;
		assert_int_equal(hak_proto_check(&m, n), -EPROTO);
		m.h.magic = 0;
		assert_int_equal(hak_proto_check(&m, n), -EPROTO);
	}
}

static void test_reject_version(void **state)
{
	union msgbuf m;
	struct hak_msg_hello hello;
	size_t n = make_any(&m, 0);

	m.h.version = HAK_PROTO_VERSION + 1;
	assert_int_equal(hak_proto_check(&m, n), -EPROTONOSUPPORT);
	assert_int_equal(hak_proto_decode_hello(&m, n, &hello), -EPROTONOSUPPORT);
	m.h.version = 0;
	assert_int_equal(hak_proto_check(&m, n), -EPROTONOSUPPORT);
}

static void test_reject_reserved(void **state)
{
	union msgbuf m;
	struct hak_msg_hello hello;
	struct hak_msg_admin admin;
	struct hak_msg_refuse refuse;

	for (int k = 0; k < NR_KINDS; k++) {
		size_t n = make_any(&m, k);

		m.h.reserved = 1;
		assert_int_equal(hak_proto_check(&m, n), -EBADMSG);
	}
	/* Reserved fields inside the bodies. */
	make_hello(&m);
	m.hello.reserved = 0x100;
	assert_int_equal(hak_proto_decode_hello(&m, sizeof(m.hello), &hello), -EINVAL);
	make_admin(&m, HAK_ADMIN_STATUS);
	m.admin.reserved = 1;
	assert_int_equal(hak_proto_decode_admin(&m, sizeof(m.admin), &admin), -EINVAL);
	/* A refuse must carry a negative errno. */
	make_refuse(&m);
	m.refuse.error = 0;
	assert_int_equal(hak_proto_decode_refuse(&m, sizeof(m.refuse), &refuse), -EINVAL);
	m.refuse.error = EPERM;
	assert_int_equal(hak_proto_decode_refuse(&m, sizeof(m.refuse), &refuse), -EINVAL);
}

static void test_reject_unknown_type(void **state)
{
	const uint16_t types[] = {0, 4, 15, 18, 255, UINT16_MAX};
	union msgbuf m;

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		size_t n = make_any(&m, 0);

		m.h.type = types[i];
		assert_int_equal(hak_proto_check(&m, n), -EPROTO);
	}
}

/* Each decoder refuses a valid message of another type. */
static void test_reject_wrong_type(void **state)
{
	union msgbuf m;
	struct hak_msg_hello hello;
	struct hak_msg_welcome welcome;
	struct hak_msg_refuse refuse;
	struct hak_msg_admin admin;
	size_t n;

	n = make_any(&m, 1);
	assert_int_equal(hak_proto_decode_hello(&m, n, &hello), -EBADMSG);
	assert_int_equal(hak_proto_decode_refuse(&m, n, &refuse), -EBADMSG);
	n = make_any(&m, 0);
	assert_int_equal(hak_proto_decode_welcome(&m, n, &welcome), -EBADMSG);
	assert_int_equal(hak_proto_decode_admin(&m, n, &admin), -EBADMSG);
	n = make_any(&m, 4);
	assert_int_equal(hak_proto_decode_admin(&m, n, &admin), -EBADMSG);
}

static void test_reject_unknown_flags(void **state)
{
	union msgbuf m;
	struct hak_msg_hello hello;
	struct hak_msg_admin admin;

	for (unsigned bit = 0; bit < 32; bit++) {
		make_hello(&m);
		m.hello.flags = 1u << bit;
		if (!(m.hello.flags & HAK_HELLO_F_KNOWN))
			assert_int_equal(hak_proto_decode_hello(&m, sizeof(m.hello), &hello),
					 -EINVAL);
		make_admin(&m, HAK_ADMIN_STATS);
		m.admin.flags = 1u << bit;
		assert_int_equal(hak_proto_decode_admin(&m, sizeof(m.admin), &admin),
				 m.admin.flags == HAK_ADMIN_F_JSON ? 0 : -EINVAL);
	}
}

static void test_reject_reason_not_terminated(void **state)
{
	union msgbuf m;
	struct hak_msg_refuse out;

	make_refuse(&m);
	memset(m.refuse.reason, 'A', sizeof(m.refuse.reason));
	assert_int_equal(hak_proto_decode_refuse(&m, sizeof(m.refuse), &out), -EINVAL);
}

static void test_reject_admin_cmd(void **state)
{
	const uint32_t bad[] = {0, HAK_ADMIN_TRIM + 1, 100, UINT32_MAX};
	union msgbuf m;
	struct hak_msg_admin out;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		make_admin(&m, bad[i]);
		assert_int_equal(hak_proto_decode_admin(&m, sizeof(m.admin), &out), -EINVAL);
	}
	make_admin(&m, HAK_ADMIN_TRIM);
	m.admin.pid = -1;
	assert_int_equal(hak_proto_decode_admin(&m, sizeof(m.admin), &out), -EINVAL);
}

static void test_reject_welcome_empty(void **state)
{
	union msgbuf m;
	struct hak_msg_welcome out;

	make_welcome(&m);
	m.welcome.pool_size = 0;
	assert_int_equal(hak_proto_decode_welcome(&m, sizeof(m.welcome), &out), -EINVAL);
	make_welcome(&m);
	m.welcome.ctrl_size = 0;
	assert_int_equal(hak_proto_decode_welcome(&m, sizeof(m.welcome), &out), -EINVAL);
	make_welcome(&m);
	m.welcome.nclasses = 0;
	assert_int_equal(hak_proto_decode_welcome(&m, sizeof(m.welcome), &out), -EINVAL);
}

/* ------------------------------------------------------------ fd passing */

static int count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void seqpacket_pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
}

/* n eventfds: cheap, and each has its own inode to tell them apart. */
static void open_fds(int *fds, int n)
{
	for (int i = 0; i < n; i++) {
		fds[i] = eventfd(0, EFD_CLOEXEC);
		assert_true(fds[i] >= 0);
	}
}

static void close_fds(const int *fds, int n)
{
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

static void assert_same_file(int a, int b)
{
	struct stat sa, sb;

	assert_int_equal(fstat(a, &sa), 0);
	assert_int_equal(fstat(b, &sb), 0);
	assert_int_equal(sa.st_dev, sb.st_dev);
	assert_int_equal(sa.st_ino, sb.st_ino);
}

static void test_sock_fds_arrive(void **state)
{
	int sv[2], sent[HAK_WELCOME_NFDS], got[HAK_WELCOME_NFDS], nfds = -1;
	union msgbuf m, in;
	int base = count_open_fds();
	ssize_t n;

	seqpacket_pair(sv);
	open_fds(sent, HAK_WELCOME_NFDS);
	make_welcome(&m);
	assert_int_equal(hak_sock_send(sv[0], &m, sizeof(m.welcome), sent, HAK_WELCOME_NFDS), 0);
	n = hak_sock_recv(sv[1], &in, sizeof(in), got, HAK_WELCOME_NFDS, &nfds, 0);
	assert_int_equal(n, sizeof(m.welcome));
	assert_memory_equal(&in, &m, sizeof(m.welcome));
	assert_int_equal(nfds, HAK_WELCOME_NFDS);
	for (int i = 0; i < HAK_WELCOME_NFDS; i++) {
		assert_same_file(got[i], sent[i]);
		/* MSG_CMSG_CLOEXEC: a fork+exec in the client leaks nothing. */
		assert_true(fcntl(got[i], F_GETFD) & FD_CLOEXEC);
	}
	close_fds(got, HAK_WELCOME_NFDS);
	close_fds(sent, HAK_WELCOME_NFDS);
	close_fds(sv, 2);
	assert_int_equal(count_open_fds(), base);
}

static void test_sock_no_fds(void **state)
{
	int sv[2], got[1] = {-1}, nfds = -1;
	union msgbuf m, in;

	seqpacket_pair(sv);
	make_hello(&m);
	assert_int_equal(hak_sock_send(sv[0], &m, sizeof(m.hello), NULL, 0), 0);
	assert_int_equal(hak_sock_recv(sv[1], &in, sizeof(in), got, 1, &nfds, 0), sizeof(m.hello));
	assert_int_equal(nfds, 0);
	assert_int_equal(got[0], -1);
	close_fds(sv, 2);
}

static void test_sock_extra_fds_closed(void **state)
{
	int sv[2], sent[3], got[3] = {-1, -1, -1}, nfds = -1;
	union msgbuf m, in;
	int base;

	seqpacket_pair(sv);
	open_fds(sent, 3);
	base = count_open_fds();
	make_welcome(&m);
	assert_int_equal(hak_sock_send(sv[0], &m, sizeof(m.welcome), sent, 3), 0);
	assert_int_equal(hak_sock_recv(sv[1], &in, sizeof(in), got, 1, &nfds, 0),
			 sizeof(m.welcome));
	assert_int_equal(nfds, 1);
	assert_same_file(got[0], sent[0]);
	assert_int_equal(got[1], -1); /* nothing written past max_fds */
	/* Exactly the one kept descriptor is new. */
	assert_int_equal(count_open_fds(), base + 1);
	close(got[0]);
	close_fds(sent, 3);
	close_fds(sv, 2);
}

static void test_sock_null_fds_closed(void **state)
{
	int sv[2], sent[3], nfds = -1;
	union msgbuf m, in;
	int base;

	seqpacket_pair(sv);
	open_fds(sent, 3);
	base = count_open_fds();
	make_hello(&m);
	assert_int_equal(hak_sock_send(sv[0], &m, sizeof(m.hello), sent, 3), 0);
	assert_int_equal(hak_sock_recv(sv[1], &in, sizeof(in), NULL, 0, &nfds, 0), sizeof(m.hello));
	assert_int_equal(nfds, 0);
	assert_int_equal(count_open_fds(), base);
	/* nfds may be NULL too. */
	assert_int_equal(hak_sock_send(sv[0], &m, sizeof(m.hello), sent, 2), 0);
	assert_int_equal(hak_sock_recv(sv[1], &in, sizeof(in), NULL, 0, NULL, 0), sizeof(m.hello));
	assert_int_equal(count_open_fds(), base);
	close_fds(sent, 3);
	close_fds(sv, 2);
}

static void test_sock_truncated_datagram(void **state)
{
	int sv[2], sent[2], got[2], nfds = -1;
	union msgbuf m, in;
	int base;

	seqpacket_pair(sv);
	open_fds(sent, 2);
	base = count_open_fds();
	make_welcome(&m);
	assert_int_equal(hak_sock_send(sv[0], &m, sizeof(m.welcome), sent, 2), 0);
	assert_int_equal(hak_sock_recv(sv[1], &in, sizeof(m.welcome) - 1, got, 2, &nfds, 0),
			 -EMSGSIZE);
	assert_int_equal(nfds, 0);
	assert_int_equal(count_open_fds(), base);
	/* The datagram is gone: the next read sees the next message. */
	make_hello(&m);
	assert_int_equal(hak_sock_send(sv[0], &m, sizeof(m.hello), NULL, 0), 0);
	assert_int_equal(hak_sock_recv(sv[1], &in, sizeof(in), got, 2, &nfds, 0), sizeof(m.hello));
	close_fds(sent, 2);
	close_fds(sv, 2);
}

/* sendmsg with more fds than hak_sock_send allows, so the receiver's
 * control buffer overflows (MSG_CTRUNC). */
static void raw_send_fds(int sock, const void *buf, size_t len, const int *fds, int n)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * TOO_MANY_FDS)];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = CMSG_SPACE(sizeof(int) * n)};
	struct cmsghdr *cm;

	memset(&u, 0, sizeof(u));
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
	memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
	assert_int_equal(sendmsg(sock, &msg, MSG_NOSIGNAL), (ssize_t)len);
}

static void test_sock_ctrunc_closes_all(void **state)
{
	int sv[2], sent[TOO_MANY_FDS], got[TOO_MANY_FDS], nfds = -1;
	union msgbuf m, in;
	int base;

	seqpacket_pair(sv);
	open_fds(sent, TOO_MANY_FDS);
	base = count_open_fds();
	make_hello(&m);
	raw_send_fds(sv[0], &m, sizeof(m.hello), sent, TOO_MANY_FDS);
	assert_int_equal(hak_sock_recv(sv[1], &in, sizeof(in), got, TOO_MANY_FDS, &nfds, 0),
			 -EMSGSIZE);
	assert_int_equal(nfds, 0);
	assert_int_equal(count_open_fds(), base);
	close_fds(sent, TOO_MANY_FDS);
	close_fds(sv, 2);
}

static void test_sock_eof(void **state)
{
	int sv[2], got[1], nfds = -1;
	union msgbuf in;

	seqpacket_pair(sv);
	close(sv[0]);
	assert_int_equal(hak_sock_recv(sv[1], &in, sizeof(in), got, 1, &nfds, 0), 0);
	assert_int_equal(nfds, 0);
	close(sv[1]);
}

static void test_sock_errors(void **state)
{
	int sv[2], fds[9] = {0}, nfds;
	union msgbuf m, in;

	seqpacket_pair(sv);
	make_hello(&m);
	assert_int_equal(hak_sock_send(sv[0], &m, sizeof(m.hello), fds, -1), -EINVAL);
	assert_int_equal(hak_sock_send(sv[0], &m, sizeof(m.hello), fds, 9), -EINVAL);
	assert_int_equal(hak_sock_recv(sv[1], &in, sizeof(in), NULL, 0, &nfds, MSG_DONTWAIT),
			 -EAGAIN);
	/* A dead peer is an error, never SIGPIPE. */
	close(sv[1]);
	assert_int_equal(hak_sock_send(sv[0], &m, sizeof(m.hello), NULL, 0), -EPIPE);
	close(sv[0]);
	assert_int_equal(hak_sock_send(sv[0], &m, sizeof(m.hello), NULL, 0), -EBADF);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hdr_init),
		cmocka_unit_test(test_roundtrip_hello),
		cmocka_unit_test(test_roundtrip_welcome),
		cmocka_unit_test(test_roundtrip_refuse),
		cmocka_unit_test(test_roundtrip_admin),
		cmocka_unit_test(test_admin_reply_sizes),
		cmocka_unit_test(test_reject_truncated),
		cmocka_unit_test(test_queued),
		cmocka_unit_test(test_reject_long),
		cmocka_unit_test(test_reject_len_mismatch),
		cmocka_unit_test(test_reject_magic),
		cmocka_unit_test(test_reject_version),
		cmocka_unit_test(test_reject_reserved),
		cmocka_unit_test(test_reject_unknown_type),
		cmocka_unit_test(test_reject_wrong_type),
		cmocka_unit_test(test_reject_unknown_flags),
		cmocka_unit_test(test_reject_reason_not_terminated),
		cmocka_unit_test(test_reject_admin_cmd),
		cmocka_unit_test(test_reject_welcome_empty),
		cmocka_unit_test(test_sock_fds_arrive),
		cmocka_unit_test(test_sock_no_fds),
		cmocka_unit_test(test_sock_extra_fds_closed),
		cmocka_unit_test(test_sock_null_fds_closed),
		cmocka_unit_test(test_sock_truncated_datagram),
		cmocka_unit_test(test_sock_ctrunc_closes_all),
		cmocka_unit_test(test_sock_eof),
		cmocka_unit_test(test_sock_errors),
	};

	/* 0 pass, 1 fail: not the count of failures, which could read as 77. */
	return cmocka_run_group_tests(tests, NULL, NULL) ? 1 : 0;
}
