/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Encoding and checking of protocol messages; fd passing. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hak_proto.h"

void hak_proto_hdr_init(struct hak_msg_hdr *h, enum hak_msg_type type, uint32_t len)
{
	memset(h, 0, sizeof(*h));
	h->magic = HAK_PROTO_MAGIC;
	h->version = HAK_PROTO_VERSION;
	h->type = (uint16_t)type;
	h->len = len;
}

/* Exact size of each fixed-size message type, 0 for unknown types. */
static size_t fixed_size(uint16_t type)
{
	switch (type) {
	case HAK_MSG_HELLO:
		return sizeof(struct hak_msg_hello);
	case HAK_MSG_WELCOME:
		return sizeof(struct hak_msg_welcome);
	case HAK_MSG_REFUSE:
		return sizeof(struct hak_msg_refuse);
	case HAK_MSG_QUEUED:
		return sizeof(struct hak_msg_hdr);
	case HAK_MSG_ADMIN:
		return sizeof(struct hak_msg_admin);
	default:
		return 0;
	}
}

int hak_proto_check(const void *buf, size_t n)
{
	struct hak_msg_hdr h;
	size_t want;

	if (n < sizeof(h))
		return -EBADMSG;
	memcpy(&h, buf, sizeof(h));
	if (h.magic != HAK_PROTO_MAGIC)
		return -EPROTO;
	if (h.version != HAK_PROTO_VERSION)
		return -EPROTONOSUPPORT;
	if (h.reserved != 0 || h.len != n)
		return -EBADMSG;
	if (h.type == HAK_MSG_ADMIN_REPLY)
		return n >= sizeof(struct hak_msg_admin_reply) && n <= HAK_MSG_MAX ? h.type
										   : -EBADMSG;
	want = fixed_size(h.type);
	if (want == 0)
		return -EPROTO;
	return n == want ? h.type : -EBADMSG;
}

/* Checks buf as a message of the given type and copies it out. */
static int decode_fixed(const void *buf, size_t n, uint16_t type, void *out, size_t size)
{
	int r = hak_proto_check(buf, n);

	if (r < 0)
		return r;
	if (r != type)
		return -EBADMSG;
	memcpy(out, buf, size);
	return 0;
}

int hak_proto_decode_hello(const void *buf, size_t n, struct hak_msg_hello *out)
{
	int r = decode_fixed(buf, n, HAK_MSG_HELLO, out, sizeof(*out));

	if (r < 0)
		return r;
	if (out->flags & ~HAK_HELLO_F_KNOWN || out->reserved != 0)
		return -EINVAL;
	return 0;
}

int hak_proto_decode_welcome(const void *buf, size_t n, struct hak_msg_welcome *out)
{
	int r = decode_fixed(buf, n, HAK_MSG_WELCOME, out, sizeof(*out));

	if (r < 0)
		return r;
	if (out->pool_size == 0 || out->ctrl_size == 0 || out->nclasses == 0)
		return -EINVAL;
	return 0;
}

int hak_proto_decode_refuse(const void *buf, size_t n, struct hak_msg_refuse *out)
{
	int r = decode_fixed(buf, n, HAK_MSG_REFUSE, out, sizeof(*out));

	if (r < 0)
		return r;
	if (out->error >= 0 || !memchr(out->reason, '\0', sizeof(out->reason)))
		return -EINVAL;
	return 0;
}

int hak_proto_decode_admin(const void *buf, size_t n, struct hak_msg_admin *out)
{
	int r = decode_fixed(buf, n, HAK_MSG_ADMIN, out, sizeof(*out));

	if (r < 0)
		return r;
	if (out->cmd < HAK_ADMIN_STATUS || out->cmd > HAK_ADMIN_TRIM)
		return -EINVAL;
	if (out->flags & ~HAK_ADMIN_F_JSON || out->reserved != 0 || out->pid < 0)
		return -EINVAL;
	return 0;
}

#define HAK_MAX_PASSED_FDS 8

int hak_sock_send(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * HAK_MAX_PASSED_FDS)];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;

	if (nfds < 0 || nfds > HAK_MAX_PASSED_FDS)
		return -EINVAL;
	if (nfds > 0) {
		struct cmsghdr *cm;

		memset(&u, 0, sizeof(u));
		msg.msg_control = u.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EMSGSIZE;
}

/* Takes the fds out of every SCM_RIGHTS message: keeps up to max_fds, closes
 * the rest.  Returns how many were kept. */
static int collect_fds(struct msghdr *msg, int *fds, int max_fds)
{
	int kept = 0;

	for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		size_t n;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (fds && kept < max_fds)
				fds[kept++] = fd;
			else
				close(fd);
		}
	}
	return kept;
}

ssize_t hak_sock_recv(int sock, void *buf, size_t len, int *fds, int max_fds, int *nfds, int flags)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * HAK_MAX_PASSED_FDS)];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf)};
	ssize_t n;
	int kept;

	if (nfds)
		*nfds = 0;
	do
		n = recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	kept = collect_fds(&msg, fds, max_fds);
	if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		for (int i = 0; i < kept; i++)
			close(fds[i]);
		return -EMSGSIZE;
	}
	if (nfds)
		*nfds = kept;
	return n;
}
