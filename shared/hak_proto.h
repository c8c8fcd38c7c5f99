/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The socket protocol between libhakclient (and hakctl) and hakzerod.
 *
 * Transport: a Unix SOCK_SEQPACKET socket, so each message is one datagram
 * with its boundaries kept.  All fields are native-endian (both ends are on
 * one machine).  Every message starts with struct hak_msg_hdr.
 *
 *   client -> daemon   HELLO {wanted pool bytes, flags}
 *   daemon -> client   WELCOME {sizes, client id}  + SCM_RIGHTS [pool memfd,
 *                      control memfd, doorbell eventfd]
 *                  or  REFUSE {-errno, reason text}
 *   hakctl -> daemon   ADMIN {command, target pid}
 *   daemon -> hakctl   ADMIN_REPLY {status, text} (may span several
 *                      messages, the last with HAK_ADMIN_F_LAST)
 *
 * After WELCOME the socket stays open and carries nothing in normal
 * operation: the daemon learns of a client's death from its end of the
 * socket, the client learns of the daemon's death the same way.
 */
#ifndef HAK_PROTO_H
#define HAK_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HAK_PROTO_MAGIC 0x445a4b48u /* "HKZD" little-endian */
#define HAK_PROTO_VERSION 1
#define HAK_DEFAULT_SOCKET "/run/hakzerod/hakzerod.sock"
#define HAK_SOCKET_ENV "HAKZEROD_SOCKET"
/* Largest datagram either side sends or accepts. */
#define HAK_MSG_MAX 4096
#define HAK_REASON_MAX 128
#define HAK_WELCOME_NFDS 3

enum hak_msg_type {
	HAK_MSG_HELLO = 1,
	HAK_MSG_WELCOME = 2,
	HAK_MSG_REFUSE = 3,
	/* Daemon -> client after WELCOME, header only: slots that were never
	 * populated (or were trimmed) were queued on a ready ring.  The client
	 * populates them before its hot path gets there (elastic pools); one
	 * that does not read these loses nothing but the hint. */
	HAK_MSG_QUEUED = 5,
	HAK_MSG_ADMIN = 16,
	HAK_MSG_ADMIN_REPLY = 17,
};

struct hak_msg_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint32_t len;	   /* whole message, header included */
	uint32_t reserved; /* zero */
};

/* HELLO flags */
#define HAK_HELLO_F_NONE 0u
#define HAK_HELLO_F_KNOWN (HAK_HELLO_F_NONE)

struct hak_msg_hello {
	struct hak_msg_hdr h;
	uint64_t pool_bytes; /* 0: the daemon's default */
	uint32_t flags;	     /* HAK_HELLO_F_*; unknown bits are refused */
	uint32_t reserved;
};

struct hak_msg_welcome {
	struct hak_msg_hdr h;
	uint64_t pool_size; /* bytes of the pool memfd */
	uint64_t ctrl_size; /* bytes of the control memfd */
	uint32_t client_id;
	uint32_t nclasses;
};

struct hak_msg_refuse {
	struct hak_msg_hdr h;
	int32_t error; /* negative errno */
	uint32_t reserved;
	char reason[HAK_REASON_MAX]; /* NUL-terminated */
};

enum hak_admin_cmd {
	HAK_ADMIN_STATUS = 1,
	HAK_ADMIN_CLIENTS = 2,
	HAK_ADMIN_STATS = 3,
	HAK_ADMIN_TRIM = 4,
};

#define HAK_ADMIN_F_JSON 1u

struct hak_msg_admin {
	struct hak_msg_hdr h;
	uint32_t cmd;
	uint32_t flags;
	int32_t pid; /* HAK_ADMIN_TRIM: a client pid, 0 for all */
	uint32_t reserved;
};

#define HAK_ADMIN_F_LAST 1u
#define HAK_ADMIN_TEXT_MAX (HAK_MSG_MAX - 32)

struct hak_msg_admin_reply {
	struct hak_msg_hdr h;
	int32_t status; /* 0 or negative errno */
	uint32_t flags; /* HAK_ADMIN_F_LAST on the last part */
	char text[];	/* len - sizeof(struct hak_msg_admin_reply) bytes, not NUL-terminated */
};

/* Fills a header. */
void hak_proto_hdr_init(struct hak_msg_hdr *h, enum hak_msg_type type, uint32_t len);

/*
 * Checks a received datagram of n bytes: at least a header, right magic and
 * version, zero reserved field, h.len == n, and n exactly the size the type
 * has (or, for ADMIN_REPLY, at least the fixed part and at most HAK_MSG_MAX).
 * Returns the type (> 0), or -EBADMSG (malformed), -EPROTONOSUPPORT (wrong
 * version), -EPROTO (wrong magic or unknown type).
 */
int hak_proto_check(const void *buf, size_t n);

/* Decoders: hak_proto_check plus the type and its field rules.  Return 0 or
 * a negative errno as hak_proto_check, -EBADMSG for a wrong type, -EINVAL for
 * unknown flag bits, a reason not NUL-terminated, an out-of-range command. */
int hak_proto_decode_hello(const void *buf, size_t n, struct hak_msg_hello *out);
int hak_proto_decode_welcome(const void *buf, size_t n, struct hak_msg_welcome *out);
int hak_proto_decode_refuse(const void *buf, size_t n, struct hak_msg_refuse *out);
int hak_proto_decode_admin(const void *buf, size_t n, struct hak_msg_admin *out);

/*
 * Sends one datagram with up to nfds descriptors (SCM_RIGHTS), MSG_NOSIGNAL.
 * Returns 0 or -errno; a short send is -EMSGSIZE.
 */
int hak_sock_send(int sock, const void *buf, size_t len, const int *fds, int nfds);

/*
 * Receives one datagram into buf (len bytes).  Descriptors that arrive are
 * stored in fds (up to max_fds, count in *nfds); any beyond max_fds, and all
 * when fds is NULL, are closed at once so a peer cannot make us leak them.
 * A truncated datagram (MSG_TRUNC/MSG_CTRUNC) is -EMSGSIZE with every
 * received fd closed.  Returns the byte count (0 at end of stream) or -errno.
 * flags are passed to recvmsg (MSG_DONTWAIT); MSG_CMSG_CLOEXEC is always set.
 */
ssize_t hak_sock_recv(int sock, void *buf, size_t len, int *fds, int max_fds, int *nfds, int flags);

#endif
