/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hak-hostile's parts: see hostile.c. */
#ifndef HAK_TEST_HOSTILE_H
#define HAK_TEST_HOSTILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hak_layout.h"
#include "hak_proto.h"
#include "hak_ring.h"
#include "testutil.h"

/* How long the daemon gets to answer or to close a connection. */
#define REACT_MS 5000
/* How long a session is watched for a cut-off that should not come. */
#define QUIET_MS 300
/* Linux accepts at most this many descriptors in one SCM_RIGHTS message. */
#define SCM_MAX_FDS 253
#define MAX_SESSIONS 1024
#define TAKE_MAX 65536

struct opts {
	const char *socket;
	const char *variant;
	unsigned count;
	unsigned seconds;
	unsigned seed;
	uint64_t max; /* the daemon's pool_size_max */
};

enum outcome { OUT_CLOSED, OUT_REFUSED, OUT_WELCOME, OUT_REPLY, OUT_OPEN, OUT_OTHER };

extern const char *const outcome_names[];

struct answer {
	enum outcome out;
	int error; /* REFUSE's error or ADMIN_REPLY's status */
	char reason[HAK_REASON_MAX];
	struct hak_msg_welcome w;
	int fds[HAK_WELCOME_NFDS];
	int nfds;
};

struct session {
	int sock;
	int pool_fd, ctrl_fd, bell_fd;
	char *pool;
	void *ctrl;
	struct hak_msg_welcome w;
	struct hak_ctrl_hdr hdr; /* validated private copy */
};

/* ---- hostile.c: sockets, sessions (output: tu_say, tu_fail) ---- */

uint64_t rnd(void);

extern const char *sock_path;
int open_conn(void);
/* Sends with any number of descriptors (hak_sock_send stops at 8). */
int send_fds(int fd, const void *buf, size_t len, const int *fds, int nfds);
/* Waits up to timeout_ms for what the daemon does with a connection. */
void read_answer(int fd, unsigned timeout_ms, struct answer *a);
void close_answer_fds(struct answer *a);
/* One connection, one datagram (with fds), and what came of it. */
enum outcome one_shot(const char *name, const void *buf, size_t len, const int *fds, int nfds);
void hello_init(struct hak_msg_hello *m, uint64_t pool_bytes);

/* HELLO, WELCOME, mapped.  Returns false when refused (reason printed). */
bool session_open(struct session *s, uint64_t pool_bytes);
void session_close(struct session *s);
void ring_of(struct session *s, unsigned cls, int ret, struct hak_ring *r);
void doorbell(struct session *s);
/* Whether the daemon closed our session within timeout_ms. */
bool cut_off(struct session *s, unsigned timeout_ms);
char *slot_addr(struct session *s, unsigned cls, uint32_t slot);
bool all_zero(const char *p, size_t len);
/* Pops every queued descriptor of a class (waiting up to wait_ms for the
 * first), checking that each slot is in range and reads zero. */
unsigned take_ready(struct session *s, unsigned cls, hak_desc_t *out, unsigned max,
		    unsigned wait_ms);
void push_returns(struct session *s, unsigned cls, const hak_desc_t *d, uint32_t n);

/* ---- hostile-socket.c: attacks on the socket ---- */

int cmd_garbage(const struct opts *o);
int cmd_malformed(const struct opts *o);
int cmd_sizes(const struct opts *o);
int cmd_fds(const struct opts *o);
int cmd_after_welcome(const struct opts *o);
int cmd_silent(const struct opts *o);
int cmd_cycles(const struct opts *o);
int cmd_sessions(const struct opts *o);

/* ---- hostile-shm.c: attacks on shared memory ---- */

int cmd_descs(const struct opts *o);
int cmd_offence_flood(const struct opts *o);
int cmd_ring(const struct opts *o);
int cmd_hoard(const struct opts *o);
int cmd_bell_flood(const struct opts *o);
int cmd_bell_armed(const struct opts *o);
int cmd_seals(const struct opts *o);

#endif
