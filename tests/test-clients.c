/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Tests of the client list (daemon/clients.c) without a daemon: real
 * sessions on socketpairs, watched by a real loop, this program holding the
 * clients' ends.  What the list must do: register and count pools per uid,
 * apply max_clients, the per-uid limit and the budget, end a session once
 * (cut off or gone), and keep the totals of departed clients.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "clients.h"
#include "conf.h"
#include "hak_proto.h"
#include "hak_ring.h"
#include "log.h"
#include "loop.h"
#include "session.h"
#include "util.h"

#define SLOT (4 * KIB)
#define POOL (16 * SLOT)
#define UID_A 1000
#define UID_B 1001
#define MAX_SESSIONS 4

static const struct hak_class_spec one_class[] = {{SLOT, 100}};

struct fixture {
	struct conf *conf;
	struct loop loop;
	struct clients cl;
	struct session *s[MAX_SESSIONS];
	int peer[MAX_SESSIONS]; /* the clients' ends */
	unsigned n;
};

/* No one watches a client's socket before HELLO but its connection: here,
 * a watch that must never fire. */
static void unexpected(struct watch *w, uint32_t events)
{
	fail_msg("a connection's watch ran for a registered client");
}

/* The client reads its WELCOME and closes the descriptors it got. */
static void read_welcome(int peer)
{
	char buf[HAK_MSG_MAX];
	int fds[HAK_WELCOME_NFDS], nfds = 0;

	assert_true(hak_sock_recv(peer, buf, sizeof(buf), fds, HAK_WELCOME_NFDS, &nfds, 0) > 0);
	assert_int_equal(nfds, HAK_WELCOME_NFDS);
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
}

/* A client of uid: a session on a socketpair, registered; the client has
 * not read its WELCOME. */
static struct session *add_unread(struct fixture *fx, uid_t uid)
{
	struct ucred cred = {.pid = getpid(), .uid = uid, .gid = getgid()};
	struct watch conn_w;
	int sv[2];
	struct session *s;

	assert_true(fx->n < MAX_SESSIONS);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	conn_w = (struct watch){sv[0], unexpected, NULL};
	assert_int_equal(loop_add(&fx->loop, &conn_w, EPOLLIN), 0);
	assert_int_equal(session_new(fx->conf, 0, clients_new_id(&fx->cl), sv[0], &cred, POOL, &s),
			 0);
	assert_int_equal(clients_add(&fx->cl, s), 0);
	fx->s[fx->n] = s;
	fx->peer[fx->n++] = sv[1];
	return s;
}

/* A client of uid that read its WELCOME, as a client does. */
static struct session *add(struct fixture *fx, uid_t uid)
{
	struct session *s = add_unread(fx, uid);

	read_welcome(fx->peer[fx->n - 1]);
	return s;
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	fx->conf = conf_new_defaults();
	assert_non_null(fx->conf);
	fx->conf->nclasses = 1;
	memcpy(fx->conf->cls, one_class, sizeof(one_class));
	assert_int_equal(loop_init(&fx->loop), 0);
	clients_init(&fx->cl, &fx->loop);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	clients_fini(&fx->cl);
	assert_null(fx->cl.list);
	assert_null(fx->cl.grave);
	for (unsigned i = 0; i < fx->n; i++)
		close(fx->peer[i]);
	loop_fini(&fx->loop);
	conf_free(fx->conf);
	free(fx);
	return 0;
}

/* One round of the loop, with a timeout so a missing event fails. */
static void dispatch_one(struct fixture *fx)
{
	struct epoll_event ev;

	/* Something is ready: the dispatch below will not block. */
	assert_int_equal(epoll_wait(fx->loop.epfd, &ev, 1, 5000), 1);
	assert_int_equal(loop_dispatch(&fx->loop), 0);
}

static struct clients_totals totals(const struct fixture *fx)
{
	struct clients_totals t;

	clients_totals(&fx->cl, &t);
	return t;
}

/* A client pushes a descriptor it was never given; the tick finds it. */
static void offend(struct fixture *fx, struct session *s)
{
	hak_desc_t bad = hak_desc_make(UINT32_MAX >> 8, 0);

	assert_true(hak_ring_push_mp(&s->cls[0].ret, &bad, 1));
	clients_tick(&fx->cl, now_ns(), 0);
}

/* ---- tests ---- */

static void test_register_and_uid_bytes(void **state)
{
	struct fixture *fx = *state;
	struct session *a = add(fx, UID_A), *b = add(fx, UID_B), *a2 = add(fx, UID_A);

	assert_int_equal(fx->cl.n, 3);
	assert_int_equal(fx->cl.pool_bytes, a->pool_size + b->pool_size + a2->pool_size);
	assert_int_equal(clients_uid_bytes(&fx->cl, UID_A), a->pool_size + a2->pool_size);
	assert_int_equal(clients_uid_bytes(&fx->cl, UID_B), b->pool_size);
	assert_int_equal(clients_uid_bytes(&fx->cl, UID_B + 1), 0);
	assert_true(a->id != b->id && b->id != a2->id && a->id != a2->id);
	assert_true(clients_ready_pages(&fx->cl) > 0);
}

static void test_admit_limits(void **state)
{
	struct fixture *fx = *state;
	struct session *a = add(fx, UID_A);
	uint64_t pool = a->pool_size;
	struct clients_limits lim = {.max_clients = 2};

	assert_int_equal(clients_admit(&fx->cl, &lim, UID_A, pool), 0);
	add(fx, UID_B);
	assert_int_equal(clients_admit(&fx->cl, &lim, UID_A, pool), -EUSERS);
	lim = (struct clients_limits){.max_clients = 8, .uid_bytes = 2 * pool};
	assert_int_equal(clients_admit(&fx->cl, &lim, UID_A, pool), 0);
	assert_int_equal(clients_admit(&fx->cl, &lim, UID_A, pool + 1), -EDQUOT);
	assert_int_equal(clients_admit(&fx->cl, &lim, UID_B + 1, 2 * pool), 0);
	lim = (struct clients_limits){.max_clients = 8, .budget = 3 * pool};
	assert_int_equal(clients_admit(&fx->cl, &lim, UID_A, pool), 0);
	assert_int_equal(clients_admit(&fx->cl, &lim, UID_A, pool + 1), -ENOMEM);
}

/* Closing takes the session out of every count at once; burying keeps its
 * counters in the totals. */
static void test_close_and_bury(void **state)
{
	struct fixture *fx = *state;
	struct session *a = add(fx, UID_A), *b = add(fx, UID_B);

	offend(fx, a);
	offend(fx, b);
	assert_int_equal(totals(fx).st.offences, 2);
	clients_close(&fx->cl, a, "testing");
	assert_true(a->dead);
	assert_int_equal(fx->cl.n, 1);
	assert_int_equal(fx->cl.pool_bytes, b->pool_size);
	assert_int_equal(clients_uid_bytes(&fx->cl, UID_A), 0);
	assert_int_equal(totals(fx).cut_off, 1);
	clients_close(&fx->cl, a, "again"); /* once only */
	assert_int_equal(totals(fx).cut_off, 1);
	clients_close(&fx->cl, b, NULL); /* gone, not cut off */
	assert_int_equal(totals(fx).cut_off, 1);
	assert_int_equal(totals(fx).st.offences, 2);
	clients_bury(&fx->cl);
	assert_null(fx->cl.grave);
	assert_int_equal(totals(fx).st.offences, 2);
	assert_int_equal(totals(fx).st.queued, fx->cl.departed.queued);
	assert_true(totals(fx).st.queued > 0);
}

/* A session something else still holds stays in the grave, counted once,
 * until it is let go. */
static void test_bury_waits_for_references(void **state)
{
	struct fixture *fx = *state;
	struct session *a = add(fx, UID_A);

	session_ref(a);
	offend(fx, a);
	clients_close(&fx->cl, a, NULL);
	clients_bury(&fx->cl);
	assert_ptr_equal(fx->cl.grave, a);
	assert_int_equal(totals(fx).st.offences, 1);
	a->st.trimmed_bytes += SLOT; /* what an operation in flight still counts */
	session_unref(a);
	clients_bury(&fx->cl);
	assert_null(fx->cl.grave);
	assert_int_equal(totals(fx).st.offences, 1);
	assert_int_equal(totals(fx).st.trimmed_bytes, SLOT);
}

static void test_verdicts_cut_off(void **state)
{
	struct fixture *fx = *state;
	struct session *a = add(fx, UID_A);

	clients_judge(&fx->cl, a, SESSION_OK);
	assert_false(a->dead);
	assert_int_equal(fx->cl.n, 1);
	clients_judge(&fx->cl, a, SESSION_BAD_INDICES);
	assert_true(a->dead);
	assert_int_equal(fx->cl.n, 0);
	assert_int_equal(totals(fx).cut_off, 1);
}

/* Through the loop: a client that hangs up is gone; one that speaks after
 * WELCOME is cut off with one offence. */
static void test_hangup_and_speaking(void **state)
{
	struct fixture *fx = *state;
	struct session *a = add(fx, UID_A), *b = add(fx, UID_B);
	char junk[] = "junk";

	close(fx->peer[0]);
	fx->peer[0] = -1;
	dispatch_one(fx);
	assert_true(a->dead);
	assert_int_equal(totals(fx).cut_off, 0);
	assert_int_equal(send(fx->peer[1], junk, sizeof(junk), 0), (ssize_t)sizeof(junk));
	dispatch_one(fx);
	assert_true(b->dead);
	assert_int_equal(totals(fx).cut_off, 1);
	assert_int_equal(totals(fx).st.offences, 1);
	assert_int_equal(fx->cl.n, 0);
}

/* A doorbell flood through the loop ends in a cut-off, and counts as one
 * offence in the totals whatever the value written. */
static void test_doorbell_flood(void **state)
{
	struct fixture *fx = *state;
	struct session *a = add(fx, UID_A);
	uint64_t rings = UINT64_MAX / 2;

	assert_int_equal(write(a->bell_fd, &rings, sizeof(rings)), (ssize_t)sizeof(rings));
	dispatch_one(fx);
	assert_true(a->dead);
	assert_int_equal(totals(fx).cut_off, 1);
	assert_int_equal(totals(fx).st.doorbells, 1);
	assert_int_equal(totals(fx).st.offences, 1);
	clients_bury(&fx->cl);
	assert_int_equal(totals(fx).st.offences, 1);
}

/* A client ringing through the loop past its wakeup budget is deferred:
 * not cut off, no offence, and its deferral stays in the totals after it
 * left. */
static void test_deferred_not_cut_off(void **state)
{
	struct fixture *fx = *state;
	struct session *a = add(fx, UID_A);
	uint64_t one = 1;

	bucket_init(&a->wake_bucket, 1, 1, now_ns());
	for (int i = 0; i < 2; i++) {
		/* As a client rings: only after taking the arming. */
		hak_xchg_acq_rel(&a->sync->want_doorbell, 0);
		assert_int_equal(write(a->bell_fd, &one, sizeof(one)), (ssize_t)sizeof(one));
		dispatch_one(fx);
	}
	assert_false(a->dead);
	assert_int_equal(totals(fx).st.doorbells, 2);
	assert_int_equal(totals(fx).st.deferred, 1);
	assert_int_equal(totals(fx).st.offences, 0);
	assert_int_equal(totals(fx).cut_off, 0);
	clients_close(&fx->cl, a, NULL);
	clients_bury(&fx->cl);
	assert_int_equal(totals(fx).st.deferred, 1);
}

/* A client cut off before it read its WELCOME holds the WELCOME's
 * descriptors in flight, charged to the daemon's user: until it closes its
 * socket it still counts against its uid and max_clients. */
static void test_unread_welcome_lingers(void **state)
{
	struct fixture *fx = *state;
	struct session *a = add_unread(fx, UID_A);
	uint64_t pool = a->pool_size;
	struct clients_limits lim = {.max_clients = 1};

	clients_close(&fx->cl, a, "testing");
	clients_bury(&fx->cl);
	assert_int_equal(fx->cl.n, 0);
	assert_int_equal(fx->cl.nlinger, 1);
	assert_int_equal(clients_uid_bytes(&fx->cl, UID_A), pool);
	assert_int_equal(clients_admit(&fx->cl, &lim, UID_B, pool), -EUSERS);
	lim = (struct clients_limits){.max_clients = 8, .uid_bytes = pool};
	assert_int_equal(clients_admit(&fx->cl, &lim, UID_A, pool), -EDQUOT);
	lim = (struct clients_limits){.max_clients = 8, .budget = pool};
	assert_int_equal(clients_admit(&fx->cl, &lim, UID_B, pool), -ENOMEM);
	close(fx->peer[0]);
	fx->peer[0] = -1;
	dispatch_one(fx);
	assert_int_equal(fx->cl.nlinger, 0);
	assert_int_equal(clients_uid_bytes(&fx->cl, UID_A), 0);
	lim = (struct clients_limits){.max_clients = 1, .uid_bytes = pool, .budget = pool};
	assert_int_equal(clients_admit(&fx->cl, &lim, UID_A, pool), 0);
}

/* A client that read its WELCOME holds nothing of the daemon's: its
 * session's end frees everything at once. */
static void test_read_welcome_does_not_linger(void **state)
{
	struct fixture *fx = *state;
	struct session *a = add(fx, UID_A);

	clients_close(&fx->cl, a, "testing");
	assert_int_equal(fx->cl.nlinger, 0);
	assert_int_equal(clients_uid_bytes(&fx->cl, UID_A), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_register_and_uid_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_admit_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_and_bury, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bury_waits_for_references, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verdicts_cut_off, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hangup_and_speaking, setup, teardown),
		cmocka_unit_test_setup_teardown(test_doorbell_flood, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deferred_not_cut_off, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unread_welcome_lingers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_welcome_does_not_linger, setup, teardown),
	};

	log_set_level(LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
