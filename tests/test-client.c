/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of libhakclient, with no daemon and with a fake daemon run in a
 * thread of this test: a SOCK_SEQPACKET listener that answers HELLO with a
 * WELCOME laid out by hak_layout_compute, fills the ready rings itself and
 * reads the return rings back.
 *
 * The library's sources are compiled into this program so that
 * -Wl,--wrap=mmap and --wrap=io_uring_queue_init can make the kernel fail on
 * purpose.  The fake daemon calls __real_mmap: only the library's calls fail.
 */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <liburing.h>

#include "hak_size.h"
#include "hakclient.h"
#include "hak_layout.h"
#include "hak_proto.h"
#include "hak_ring.h"
#include "internal.h" /* white box: the library is compiled in */
#include "test-client.h"

#define WAIT_MS 3000
#define MAX_SESS 8

/* ---- failing kernel on demand (link-time wrapping) ---- */

void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __real_io_uring_queue_init(unsigned entries, struct io_uring *ring, unsigned flags);
int __wrap_io_uring_queue_init(unsigned entries, struct io_uring *ring, unsigned flags);

static int fail_mmap_anon;   /* fail this many private anonymous mmaps */
static int fail_mmap_shared; /* fail this many MAP_SHARED mmaps */
static int fail_uring;	     /* io_uring_queue_init fails */
static int uring_inits;

static bool take_failure(int *counter)
{
	int n = __atomic_load_n(counter, __ATOMIC_RELAXED);

	while (n > 0)
		if (__atomic_compare_exchange_n(counter, &n, n - 1, 0, __ATOMIC_RELAXED,
						__ATOMIC_RELAXED))
			return true;
	return false;
}

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if ((flags & MAP_ANONYMOUS) && !(flags & MAP_FIXED_NOREPLACE) &&
	    take_failure(&fail_mmap_anon)) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	if ((flags & MAP_SHARED) && take_failure(&fail_mmap_shared)) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	return __real_mmap(addr, len, prot, flags, fd, off);
}

int __wrap_io_uring_queue_init(unsigned entries, struct io_uring *ring, unsigned flags)
{
	__atomic_add_fetch(&uring_inits, 1, __ATOMIC_RELAXED);
	if (__atomic_load_n(&fail_uring, __ATOMIC_RELAXED))
		return -ENOSYS;
	return __real_io_uring_queue_init(entries, ring, flags);
}

/* ---- helpers ---- */

static bool wait_connected(struct hak_client *c, int want, unsigned ms)
{
	for (unsigned t = 0; t < ms; t += 5) {
		if (hak_client_is_connected(c) == want)
			return true;
		sleep_ms(5);
	}
	return hak_client_is_connected(c) == want;
}

static char logbuf[8192];
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static void test_log(void *data, int prio, const char *file, int line, const char *fn,
		     const char *fmt, va_list ap) __attribute__((format(printf, 6, 0)));

static void test_log(void *data, int prio, const char *file, int line, const char *fn,
		     const char *fmt, va_list ap)
{
	size_t len;

	pthread_mutex_lock(&log_mu);
	len = strlen(logbuf);
	if (len < sizeof(logbuf) - 2) {
		vsnprintf(logbuf + len, sizeof(logbuf) - len - 1, fmt, ap);
		strcat(logbuf, "\n");
	}
	pthread_mutex_unlock(&log_mu);
	(*(int *)data)++;
}

static bool log_has(const char *s)
{
	bool r;

	pthread_mutex_lock(&log_mu);
	r = strstr(logbuf, s) != NULL;
	pthread_mutex_unlock(&log_mu);
	return r;
}

static void log_clear(void)
{
	pthread_mutex_lock(&log_mu);
	logbuf[0] = '\0';
	pthread_mutex_unlock(&log_mu);
}

/* ---- the fake daemon ---- */

struct fake_sess {
	int fd; /* the connection; closing it is the daemon's death */
	int doorbell;
	uint64_t hello_bytes;
	struct hak_ctrl_hdr h;
	void *ctrl;
	char *pool;
	char *view; /* where fake_recycle zeroes slots: our mapping, or the client's */
	struct hak_ctrl_sync *sync;
	struct hak_ring ready[HAK_MAX_CLASSES];
	struct hak_ring ret[HAK_MAX_CLASSES];
	uint32_t ready_tail[HAK_MAX_CLASSES];
	uint32_t ret_head[HAK_MAX_CLASSES];
	uint32_t *gen[HAK_MAX_CLASSES]; /* generation each slot was last queued with */
	uint64_t bad_gen;		/* returns with a wrong generation */
};

struct fake {
	char dir[64];
	char path[108];
	int lfd;
	int stop_fd;
	pthread_t thread;
	pthread_mutex_t mu;
	struct hak_class_geom geom[HAK_MAX_CLASSES];
	unsigned ngeom;
	uint32_t prefill; /* slots queued per class at WELCOME (capped at nslots) */
	int refuse;	  /* answer REFUSE with this error */
	bool no_seal;
	struct fake_sess sess[MAX_SESS];
	int nsess;
};

static void fake_geom_default(struct fake *f)
{
	f->geom[0] = (struct hak_class_geom){4 * KIB, 64, 4, 4};
	f->geom[1] = (struct hak_class_geom){64 * KIB, 8, 1, 2};
	f->ngeom = 2;
	f->prefill = 16;
}

static void fake_queue(struct fake_sess *s, unsigned c, uint32_t slot)
{
	hak_ring_sp_put(&s->ready[c], &s->ready_tail[c], hak_desc_make(slot, s->gen[c][slot]));
}

static int fake_make_memfd(const char *name, uint64_t size, bool seal)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		return -1;
	if (seal && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		return -1;
	return fd;
}

static int fake_session(struct fake *f, struct fake_sess *s, int fds[3])
{
	if (hak_layout_compute(&s->h, f->geom, f->ngeom, (uint32_t)f->nsess + 1) < 0)
		return -1;
	fds[0] = fake_make_memfd("fake-pool", s->h.pool_size, !f->no_seal);
	fds[1] = fake_make_memfd("fake-ctrl", s->h.ctrl_size, false);
	fds[2] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fds[0] < 0 || fds[1] < 0 || fds[2] < 0)
		return -1;
	s->pool = __real_mmap(NULL, s->h.pool_size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
	s->ctrl = __real_mmap(NULL, s->h.ctrl_size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[1], 0);
	if (s->pool == MAP_FAILED || s->ctrl == MAP_FAILED)
		return -1;
	memcpy(s->ctrl, &s->h, sizeof(s->h));
	s->view = s->pool;
	s->sync = hak_ctrl_at(s->ctrl, s->h.sync_off);
	s->doorbell = fds[2];
	for (unsigned c = 0; c < f->ngeom; c++) {
		uint32_t n = f->prefill < f->geom[c].nslots ? f->prefill : f->geom[c].nslots;

		hak_layout_ring(&s->h, s->ctrl, c, 0, &s->ready[c]);
		hak_layout_ring(&s->h, s->ctrl, c, 1, &s->ret[c]);
		s->gen[c] = calloc(f->geom[c].nslots, sizeof(uint32_t));
		for (uint32_t i = 0; i < f->geom[c].nslots; i++)
			s->gen[c][i] = 1000 + i;
		for (uint32_t i = 0; i < n; i++)
			fake_queue(s, c, i);
		hak_ring_sp_publish(&s->ready[c], s->ready_tail[c]);
	}
	return 0;
}

static void fake_answer(struct fake *f, int fd, const struct hak_msg_hello *hello)
{
	struct fake_sess *s = &f->sess[f->nsess];
	int fds[3] = {-1, -1, -1};

	if (f->refuse) {
		struct hak_msg_refuse m = {0};

		hak_proto_hdr_init(&m.h, HAK_MSG_REFUSE, sizeof(m));
		m.error = f->refuse;
		snprintf(m.reason, sizeof(m.reason), "over quota for this test");
		hak_sock_send(fd, &m, sizeof(m), NULL, 0);
		close(fd);
		return;
	}
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	s->hello_bytes = hello->pool_bytes;
	if (f->nsess == MAX_SESS || fake_session(f, s, fds) < 0) {
		close(fd);
		return;
	}
	struct hak_msg_welcome w = {0};

	hak_proto_hdr_init(&w.h, HAK_MSG_WELCOME, sizeof(w));
	w.pool_size = s->h.pool_size;
	w.ctrl_size = s->h.ctrl_size;
	w.client_id = s->h.client_id;
	w.nclasses = s->h.nclasses;
	f->nsess++;
	hak_sock_send(fd, &w, sizeof(w), fds, 3);
	close(fds[0]);
	close(fds[1]);
}

static void fake_accept(struct fake *f)
{
	char buf[HAK_MSG_MAX];
	struct hak_msg_hello hello;
	struct pollfd pfd;
	int fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return;
	pfd = (struct pollfd){.fd = fd, .events = POLLIN};
	if (poll(&pfd, 1, WAIT_MS) != 1) {
		close(fd);
		return;
	}
	n = hak_sock_recv(fd, buf, sizeof(buf), NULL, 0, NULL, 0);
	if (n <= 0 || hak_proto_decode_hello(buf, (size_t)n, &hello) < 0) {
		close(fd);
		return;
	}
	pthread_mutex_lock(&f->mu);
	fake_answer(f, fd, &hello);
	pthread_mutex_unlock(&f->mu);
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;

	for (;;) {
		struct pollfd pfd[2] = {{.fd = f->lfd, .events = POLLIN},
					{.fd = f->stop_fd, .events = POLLIN}};

		if (poll(pfd, 2, -1) < 0)
			continue;
		if (pfd[1].revents)
			return NULL;
		if (pfd[0].revents)
			fake_accept(f);
	}
}

static void fake_init(struct fake *f)
{
	const char *tmp = getenv("TMPDIR");

	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->mu, NULL);
	fake_geom_default(f);
	snprintf(f->dir, sizeof(f->dir), "%s/hak-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/sock", f->dir);
	f->lfd = -1;
}

static void fake_listen(struct fake *f)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	strcpy(sa.sun_path, f->path);
	f->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	assert_true(f->lfd >= 0);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(f->lfd, 8), 0);
	f->stop_fd = eventfd(0, EFD_CLOEXEC);
	assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_start(struct fake *f)
{
	fake_init(f);
	fake_listen(f);
}

static void fake_kill(struct fake *f, int i)
{
	pthread_mutex_lock(&f->mu);
	close(f->sess[i].fd);
	f->sess[i].fd = -1;
	pthread_mutex_unlock(&f->mu);
}

static void fake_stop(struct fake *f)
{
	uint64_t one = 1;

	if (f->lfd >= 0) {
		assert_int_equal(write(f->stop_fd, &one, sizeof(one)), (ssize_t)sizeof(one));
		pthread_join(f->thread, NULL);
		close(f->lfd);
		close(f->stop_fd);
	}
	for (int i = 0; i < f->nsess; i++) {
		struct fake_sess *s = &f->sess[i];

		if (s->fd >= 0)
			close(s->fd);
		close(s->doorbell);
		munmap(s->pool, s->h.pool_size);
		munmap(s->ctrl, s->h.ctrl_size);
		for (unsigned c = 0; c < s->h.nclasses; c++)
			free(s->gen[c]);
	}
	unlink(f->path);
	rmdir(f->dir);
	pthread_mutex_destroy(&f->mu);
}

static struct fake_sess *fake_sess(struct fake *f, int i)
{
	struct fake_sess *s;

	pthread_mutex_lock(&f->mu);
	assert_true(i < f->nsess);
	s = &f->sess[i];
	pthread_mutex_unlock(&f->mu);
	return s;
}

/*
 * Makes the fake work through the client's own mappings of the same memfds.
 * The bytes are the same either way; but ThreadSanitizer keys its
 * happens-before on addresses, so it can only see the ring's acquire/release
 * pairs (and trust the zeroing) when both sides use one address.
 */
static void fake_use_client_view(struct fake_sess *s, struct hak_client *c)
{
	struct hak_pool *p = hak_pool_current(c);

	assert_non_null(p);
	for (unsigned k = 0; k < s->h.nclasses; k++) {
		hak_layout_ring(&s->h, p->ctrl, k, 0, &s->ready[k]);
		hak_layout_ring(&s->h, p->ctrl, k, 1, &s->ret[k]);
	}
	s->view = p->base;
}

/* Takes what the client returned in class c, checks each generation, and
 * (if requeue) zeroes the slot and queues it again with the next one.
 * Returns the number of returns seen. */
static uint32_t fake_recycle(struct fake_sess *s, unsigned c, bool requeue, hak_desc_t *seen,
			     uint32_t max_seen)
{
	const struct hak_class_layout *cl = &s->h.cls[c];
	int64_t n = hak_ring_sc_avail(&s->ret[c], s->ret_head[c]);
	uint32_t got = 0;

	for (int64_t i = 0; i < n; i++) {
		hak_desc_t d = hak_ring_load_entry(&s->ret[c], s->ret_head[c]++);
		uint32_t slot = hak_desc_slot(d);

		if (got < max_seen)
			seen[got] = d;
		got++;
		if (slot >= cl->nslots || hak_desc_gen(d) != s->gen[c][slot]) {
			s->bad_gen++;
			continue;
		}
		if (!requeue)
			continue;
		memset(s->view + cl->pool_offset + (uint64_t)slot * cl->slot_size, 0,
		       cl->slot_size);
		s->gen[c][slot]++;
		fake_queue(s, c, slot);
	}
	hak_ring_sc_release(&s->ret[c], s->ret_head[c]);
	hak_ring_sp_publish(&s->ready[c], s->ready_tail[c]);
	return got;
}

static uint64_t doorbell_count(struct fake_sess *s)
{
	uint64_t v = 0;

	if (read(s->doorbell, &v, sizeof(v)) != (ssize_t)sizeof(v))
		return 0;
	return v;
}

static struct hak_client *client_for(struct fake *f)
{
	struct hak_client *c;

	assert_int_equal(hak_client_new(&c), 0);
	assert_int_equal(hak_client_set_socket(c, f->path), 0);
	return c;
}

static struct hak_client *connected_client(struct fake *f)
{
	struct hak_client *c = client_for(f);

	assert_int_equal(hak_client_connect(c), 0);
	assert_int_equal(hak_client_is_connected(c), 1);
	return c;
}

/* Where the client's slot lands in the fake's mapping of the same memfd. */
static bool same_slot(struct fake_sess *s, unsigned c, uint32_t slot, void *client_ptr)
{
	const struct hak_class_layout *cl = &s->h.cls[c];
	volatile uint64_t *mine = client_ptr;
	volatile uint64_t *theirs =
		(void *)(s->pool + cl->pool_offset + (uint64_t)slot * cl->slot_size);
	uint64_t mark = 0x5eed0000u + slot;
	bool same;

	*mine = mark;
	same = *theirs == mark;
	*mine = 0;
	return same;
}

/* ---- tests: no daemon ---- */

static void test_args(void **state)
{
	struct hak_client *c;
	struct hak_client_stats st;
	char longpath[200];
	void *p;
	size_t cs;

	assert_int_equal(hak_client_new(NULL), -EINVAL);
	assert_int_equal(hak_client_new(&c), 0);
	assert_ptr_equal(hak_client_ref(c), c);
	assert_ptr_equal(hak_client_unref(c), c);
	assert_null(hak_client_ref(NULL));
	assert_null(hak_client_unref(NULL));
	assert_int_equal(hak_alloc(NULL, 1, 0, &p), -EINVAL);
	assert_int_equal(hak_alloc(c, 0, 0, &p), -EINVAL);
	assert_int_equal(hak_alloc(c, 1, 0, NULL), -EINVAL);
	assert_int_equal(hak_free(c, NULL, 10), 0);
	assert_int_equal(hak_free(NULL, NULL, 10), -EINVAL);
	assert_int_equal(hak_free(c, (char *)&st + 1, 10), -EINVAL);
	assert_int_equal(hak_client_set_log_priority(c, LOG_DEBUG + 1), -EINVAL);
	assert_int_equal(hak_client_set_log_priority(c, LOG_INFO), 0);
	assert_int_equal(hak_client_set_log_fn(NULL, NULL, NULL), -EINVAL);
	assert_int_equal(hak_client_set_pool_size(c, 8 * MIB), 0);
	memset(longpath, 'x', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(hak_client_set_socket(c, longpath), -ENAMETOOLONG);
	assert_int_equal(hak_client_set_socket(c, ""), -EINVAL);
	assert_int_equal(hak_client_set_socket(c, NULL), 0);
	assert_int_equal(hak_client_class_size(c, 4096, &cs), -ENOTCONN);
	assert_int_equal(hak_client_class_size(c, 0, &cs), -EINVAL);
	assert_int_equal(hak_client_is_connected(c), 0);
	assert_int_equal(hak_client_is_connected(NULL), -EINVAL);
	assert_int_equal(hak_client_get_stats(c, NULL, sizeof(st)), -EINVAL);
	/* An older, smaller struct gets only its part. */
	memset(&st, 0xaa, sizeof(st));
	assert_int_equal(
		hak_client_get_stats(c, &st, offsetof(struct hak_client_stats, alloc_dirty)), 0);
	assert_int_equal(st.alloc_ready, 0);
	assert_int_equal(st.alloc_dirty, 0xaaaaaaaaaaaaaaaaull);
	assert_null(hak_client_unref(c));
}

static void test_no_daemon(void **state)
{
	struct fake f;
	struct hak_client *c;
	struct hak_client_stats st;
	char *p;
	int r;

	fake_init(&f); /* a path where nobody listens */
	c = client_for(&f);
	errno = 4242;
	assert_int_equal(hak_client_connect(c), -ENOENT);
	r = hak_alloc(c, 10000, 0, (void **)&p);
	assert_int_equal(errno, 4242);
	assert_int_equal(r, HAK_ALLOC_ZEROED);
	assert_true(all_zero(p, 12288));
	memset(p, 1, 10000);
	st = stats(c);
	assert_int_equal(st.alloc_mmap, 1);
	assert_int_equal(st.connected, 0);
	assert_int_equal(st.pool_bytes, 0);
	assert_int_equal(hak_free(c, p, 10000), 0);
	assert_int_equal(stats(c).free_mmap, 1);
	assert_int_equal(errno, 4242);
	/* Failing kernel: -ENOMEM, errno untouched, nothing counted. */
	fail_mmap_anon = 1;
	assert_int_equal(hak_alloc(c, 100, 0, (void **)&p), -ENOMEM);
	assert_int_equal(errno, 4242);
	assert_int_equal(stats(c).alloc_mmap, 1);
	assert_null(hak_client_unref(c)); /* stops the retrying monitor */
	fake_stop(&f);
}

static void test_daemon_starts_later(void **state)
{
	struct fake f;
	struct hak_client *c;
	int logged = 0;

	fake_init(&f);
	c = client_for(&f);
	hak_client_set_log_fn(c, test_log, &logged);
	hak_client_set_log_priority(c, LOG_INFO);
	log_clear();
	assert_int_equal(hak_client_connect(c), -ENOENT);
	sleep_ms(120); /* a few failed attempts: 50 ms, then 100 ms */
	fake_listen(&f);
	assert_true(wait_connected(c, 1, WAIT_MS));
	assert_true(log_has("connected to"));
	assert_int_equal(stats(c).reconnects, 0);
	assert_null(hak_client_unref(c));
	fake_stop(&f);
}

static void test_refused(void **state)
{
	struct fake f;
	struct hak_client *c;
	int logged = 0;

	fake_init(&f);
	f.refuse = -EDQUOT;
	fake_listen(&f);
	c = client_for(&f);
	hak_client_set_log_fn(c, test_log, &logged);
	log_clear();
	assert_int_equal(hak_client_connect(c), -EDQUOT);
	assert_true(logged > 0);
	assert_true(log_has("over quota for this test"));
	assert_int_equal(hak_client_is_connected(c), 0);
	assert_null(hak_client_unref(c));
	fake_stop(&f);
}

static void test_unsealed_pool_refused(void **state)
{
	struct fake f;
	struct hak_client *c;

	fake_init(&f);
	f.no_seal = true;
	fake_listen(&f);
	c = client_for(&f);
	assert_int_equal(hak_client_connect(c), -EBADMSG);
	assert_null(hak_client_unref(c));
	fake_stop(&f);
}

static void test_map_failure(void **state)
{
	struct fake f;
	struct hak_client *c;

	fake_start(&f);
	c = client_for(&f);
	fail_mmap_shared = 1;
	assert_int_equal(hak_client_connect(c), -ENOMEM);
	assert_int_equal(hak_client_is_connected(c), 0);
	/* The monitor retries and succeeds once the kernel does. */
	assert_true(wait_connected(c, 1, WAIT_MS));
	assert_null(hak_client_unref(c));
	fake_stop(&f);
}

static void test_env(void **state)
{
	struct fake f;
	struct hak_client *c;
	int logged = 0;

	fake_start(&f);
	setenv("HAKZEROD_SOCKET", f.path, 1);
	setenv("HAKCLIENT_LOG", "debug", 1);
	assert_int_equal(hak_client_new(&c), 0);
	unsetenv("HAKZEROD_SOCKET");
	unsetenv("HAKCLIENT_LOG");
	hak_client_set_log_fn(c, test_log, &logged);
	assert_int_equal(hak_client_set_pool_size(c, 3 * MIB), 0);
	assert_int_equal(hak_client_connect(c), 0);
	assert_int_equal(fake_sess(&f, 0)->hello_bytes, 3 * MIB);
	assert_true(logged > 0);
	assert_null(hak_client_unref(c));
	fake_stop(&f);
}

/* HAKCLIENT_LOG with no log function installed: the operator sees on
 * stderr why the program went local. */
static void test_env_log_stderr(void **state)
{
	char path[] = "/tmp/hak-test-stderr.XXXXXX", out[1024] = "";
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	struct hak_client *c;
	ssize_t n;

	assert_true(fd >= 0 && saved >= 0);
	unlink(path);
	setenv("HAKZEROD_SOCKET", "/nonexistent/hakzerod.sock", 1);
	setenv("HAKCLIENT_LOG", "debug", 1);
	assert_int_equal(hak_client_new(&c), 0);
	unsetenv("HAKZEROD_SOCKET");
	unsetenv("HAKCLIENT_LOG");
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	assert_true(hak_client_connect(c) < 0);
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = pread(fd, out, sizeof(out) - 1, 0);
	close(fd);
	assert_true(n > 0);
	assert_non_null(strstr(out, "libhakclient["));
	assert_non_null(strstr(out, "/nonexistent/hakzerod.sock"));
	assert_non_null(strstr(out, "No such file or directory"));
	assert_null(hak_client_unref(c));
}

/* Without HAKCLIENT_LOG the library stays silent: it never prints unasked. */
static void test_silent_by_default(void **state)
{
	char path[] = "/tmp/hak-test-stderr.XXXXXX";
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	struct hak_client *c;
	struct stat st;

	assert_true(fd >= 0 && saved >= 0);
	unlink(path);
	unsetenv("HAKCLIENT_LOG");
	setenv("HAKZEROD_SOCKET", "/nonexistent/hakzerod.sock", 1);
	assert_int_equal(hak_client_new(&c), 0);
	unsetenv("HAKZEROD_SOCKET");
	hak_client_set_log_priority(c, LOG_DEBUG);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	assert_true(hak_client_connect(c) < 0);
	dup2(saved, STDERR_FILENO);
	close(saved);
	assert_int_equal(fstat(fd, &st), 0);
	close(fd);
	assert_int_equal(st.st_size, 0);
	assert_null(hak_client_unref(c));
}

/* ---- tests: with the fake daemon ---- */

static void test_ready_zero(void **state)
{
	struct fake f;
	struct hak_client *c;
	struct fake_sess *s;
	struct hak_client_stats st;
	void *p, *q;
	size_t cs;

	fake_start(&f);
	c = connected_client(&f);
	s = fake_sess(&f, 0);
	assert_int_equal(hak_client_class_size(c, 1, &cs), 0);
	assert_int_equal(cs, 4 * KIB);
	assert_int_equal(hak_client_class_size(c, 5000, &cs), 0);
	assert_int_equal(cs, 64 * KIB);
	assert_int_equal(hak_client_class_size(c, 64 * KIB + 1, &cs), -E2BIG);

	assert_int_equal(hak_alloc(c, 100, 0, &p), HAK_ALLOC_ZEROED);
	assert_true(all_zero(p, 4 * KIB));
	assert_true(same_slot(s, 0, 0, p)); /* the first slot queued */
	assert_int_equal(hak_alloc(c, 5000, 0, &q), HAK_ALLOC_ZEROED);
	assert_true(all_zero(q, 64 * KIB));
	assert_true(same_slot(s, 1, 0, q));
	st = stats(c);
	assert_int_equal(st.alloc_ready, 2);
	assert_int_equal(st.alloc_mmap, 0);
	assert_int_equal(st.connected, 1);
	assert_int_equal(st.pool_bytes, s->h.pool_size);
	/* Bad frees change nothing. */
	assert_int_equal(hak_free(c, (char *)p + 8, 100), -EINVAL);
	assert_int_equal(hak_free(c, p, 4 * KIB + 1), -EINVAL);
	assert_int_equal(hak_free(c, p, 100), 0);
	assert_int_equal(hak_free(c, p, 100), -EINVAL); /* twice */
	assert_int_equal(hak_free(c, q, 5000), 0);
	assert_int_equal(stats(c).free_pool, 2);
	/* Larger than the largest class. */
	assert_int_equal(hak_alloc(c, 64 * KIB + 1, 0, &p), HAK_ALLOC_ZEROED);
	assert_int_equal(stats(c).alloc_large, 1);
	assert_int_equal(hak_free(c, p, 64 * KIB + 1), 0);
	assert_int_equal(stats(c).free_mmap, 1);
	assert_null(hak_client_unref(c));
	fake_stop(&f);
}

/* Class 0: 64 slots, so a local cache of 8 (half kept); ret_batch 4. */
static void test_free_cache_then_return(void **state)
{
	struct fake f;
	struct hak_client *c;
	struct fake_sess *s;
	void *p[16];
	hak_desc_t seen[32];
	uint32_t n;

	fake_start(&f);
	c = connected_client(&f);
	s = fake_sess(&f, 0);
	for (int i = 0; i < 16; i++)
		assert_int_equal(hak_alloc(c, 4096, 0, &p[i]), HAK_ALLOC_ZEROED);
	for (int i = 0; i < 7; i++)
		assert_int_equal(hak_free(c, p[i], 4096), 0);
	assert_int_equal(fake_recycle(s, 0, false, seen, 32), 0); /* all cached */
	/* The eighth free fills the cache: the four oldest go back, the
	 * newest half stays for inline zeroing. */
	assert_int_equal(hak_free(c, p[7], 4096), 0);
	n = fake_recycle(s, 0, false, seen, 32);
	assert_int_equal(n, 4);
	for (uint32_t i = 0; i < 4; i++)
		assert_int_equal(seen[i], hak_desc_make(i, 1000 + i));
	/* Four more frees reach the mark again: the next four oldest. */
	for (int i = 8; i < 12; i++)
		assert_int_equal(hak_free(c, p[i], 4096), 0);
	n = fake_recycle(s, 0, false, seen, 32);
	assert_int_equal(n, 4);
	for (uint32_t i = 0; i < 4; i++)
		assert_int_equal(seen[i], hak_desc_make(4 + i, 1004 + i));
	assert_int_equal(s->bad_gen, 0);
	assert_int_equal(stats(c).returned, 8);
	assert_int_equal(stats(c).free_pool, 12);
	assert_null(hak_client_unref(c));
	fake_stop(&f);
}

static void test_generation_follows_slot(void **state)
{
	struct fake f;
	struct hak_client *c;
	struct fake_sess *s;
	hak_desc_t seen[64];
	void *p[64];

	fake_init(&f);
	f.prefill = 64;
	fake_listen(&f);
	c = connected_client(&f);
	s = fake_sess(&f, 0);
	/* Several rounds through the daemon: each return carries the
	 * generation its slot was last queued with. */
	for (int round = 0; round < 5; round++) {
		for (int i = 0; i < 40; i++)
			assert_true(hak_alloc(c, 4096, 0, &p[i]) >= 0);
		for (int i = 0; i < 40; i++)
			assert_int_equal(hak_free(c, p[i], 4096), 0);
		fake_recycle(s, 0, true, seen, 64);
	}
	assert_int_equal(s->bad_gen, 0);
	assert_true(stats(c).returned > 0);
	assert_null(hak_client_unref(c));
	fake_stop(&f);
}

static void test_dirty_ok(void **state)
{
	struct fake f;
	struct hak_client *c;
	struct hak_client_stats st;
	char *p, *q;

	fake_init(&f);
	f.prefill = 1;
	fake_listen(&f);
	c = connected_client(&f);
	assert_int_equal(hak_alloc(c, 4096, 0, (void **)&p), HAK_ALLOC_ZEROED);
	memset(p, 0x5a, 4096);
	assert_int_equal(hak_free(c, p, 4096), 0);
	/* Dirty is fine: the caller's own slot, not zeroed (rule 1). */
	assert_int_equal(hak_alloc(c, 4096, HAK_ALLOC_DIRTY_OK, (void **)&q), 0);
	assert_ptr_equal(q, p);
	assert_int_equal((unsigned char)q[100], 0x5a);
	assert_int_equal(hak_free(c, q, 4096), 0);
	/* Zeroes needed, ready ring empty: the cached slot, zeroed here. */
	assert_int_equal(hak_alloc(c, 4096, 0, (void **)&q), HAK_ALLOC_ZEROED);
	assert_ptr_equal(q, p);
	assert_true(all_zero(q, 4096));
	/* Nothing left: mmap. */
	assert_int_equal(hak_alloc(c, 4096, HAK_ALLOC_DIRTY_OK, (void **)&p), HAK_ALLOC_ZEROED);
	assert_true(all_zero(p, 4096));
	st = stats(c);
	assert_int_equal(st.alloc_ready, 1);
	assert_int_equal(st.alloc_dirty, 1);
	assert_int_equal(st.alloc_inline_zero, 1);
	assert_int_equal(st.alloc_mmap, 1);
	assert_int_equal(hak_free(c, p, 4096), 0);
	assert_int_equal(hak_free(c, q, 4096), 0);
	assert_null(hak_client_unref(c));
	fake_stop(&f);
}

static void test_doorbell(void **state)
{
	struct fake f;
	struct hak_client *c;
	struct fake_sess *s;
	void *p[32];

	fake_init(&f);
	f.prefill = 8; /* ready_low is 4 */
	fake_listen(&f);
	c = connected_client(&f);
	s = fake_sess(&f, 0);
	/* Not armed: below the low mark, yet no doorbell. */
	for (int i = 0; i < 6; i++)
		assert_int_equal(hak_alloc(c, 4096, 0, &p[i]), HAK_ALLOC_ZEROED);
	assert_int_equal(doorbell_count(s), 0);
	assert_int_equal(stats(c).doorbells, 0);
	/* Armed: exactly one, and it disarms. */
	hak_store_release(&s->sync->want_doorbell, 1);
	assert_int_equal(hak_alloc(c, 4096, 0, &p[6]), HAK_ALLOC_ZEROED);
	assert_int_equal(hak_alloc(c, 4096, 0, &p[7]), HAK_ALLOC_ZEROED);
	assert_int_equal(doorbell_count(s), 1);
	assert_int_equal(hak_load_acquire(&s->sync->want_doorbell), 0);
	assert_int_equal(stats(c).doorbells, 1);
	/* Disarmed: an empty ring does not ring either. */
	assert_int_equal(hak_alloc(c, 4096, 0, &p[8]), HAK_ALLOC_ZEROED); /* mmap */
	assert_int_equal(doorbell_count(s), 0);
	/* Armed again: running dry rings once. */
	hak_store_release(&s->sync->want_doorbell, 1);
	assert_int_equal(hak_alloc(c, 4096, 0, &p[9]), HAK_ALLOC_ZEROED);
	assert_int_equal(hak_alloc(c, 4096, 0, &p[10]), HAK_ALLOC_ZEROED);
	assert_int_equal(doorbell_count(s), 1);
	assert_int_equal(stats(c).doorbells, 2);
	assert_int_equal(stats(c).alloc_mmap, 3);
	for (int i = 0; i < 11; i++)
		assert_int_equal(hak_free(c, p[i], 4096), 0);
	assert_int_equal(doorbell_count(s), 0); /* eight frees: all cached */
	assert_null(hak_client_unref(c));
	fake_stop(&f);
}

static void test_return_doorbell(void **state)
{
	struct fake f;
	struct hak_client *c;
	struct fake_sess *s;
	void *p[16];

	fake_start(&f);
	c = connected_client(&f);
	s = fake_sess(&f, 0);
	for (int i = 0; i < 16; i++)
		assert_int_equal(hak_alloc(c, 4096, 0, &p[i]), HAK_ALLOC_ZEROED);
	doorbell_count(s); /* the ready ring went low while disarmed: nothing */
	hak_store_release(&s->sync->want_doorbell, 1);
	for (int i = 0; i < 7; i++)
		assert_int_equal(hak_free(c, p[i], 4096), 0);
	assert_int_equal(doorbell_count(s), 0);
	assert_int_equal(hak_free(c, p[7], 4096), 0); /* 4 returned >= ret_batch 4 */
	assert_int_equal(doorbell_count(s), 1);
	for (int i = 8; i < 16; i++)
		assert_int_equal(hak_free(c, p[i], 4096), 0);
	assert_int_equal(doorbell_count(s), 0); /* disarmed */
	assert_int_equal(stats(c).doorbells, 1);
	assert_null(hak_client_unref(c));
	fake_stop(&f);
}

static void test_daemon_death(void **state)
{
	struct fake f;
	struct hak_client *c;
	struct hak_client_stats st;
	void *p, *q;

	fake_start(&f);
	c = connected_client(&f);
	assert_int_equal(hak_alloc(c, 4096, 0, &p), HAK_ALLOC_ZEROED);
	memset(p, 7, 4096);
	/* Stop accepting so the client stays disconnected for a while. */
	pthread_mutex_lock(&f.mu);
	f.refuse = -EAGAIN;
	pthread_mutex_unlock(&f.mu);
	fake_kill(&f, 0);
	assert_true(wait_connected(c, 0, WAIT_MS));
	/* The slot we hold still works; its free gives the memory back. */
	assert_int_equal(((unsigned char *)p)[4095], 7);
	assert_int_equal(hak_free(c, p, 4096), 0);
	assert_int_equal(hak_alloc(c, 4096, 0, &q), HAK_ALLOC_ZEROED);
	st = stats(c);
	assert_int_equal(st.free_pool, 1);
	assert_int_equal(st.alloc_mmap, 1);
	assert_int_equal(st.connected, 0);
	assert_int_equal(hak_free(c, q, 4096), 0);
	/* The daemon is back: the monitor reconnects by itself. */
	pthread_mutex_lock(&f.mu);
	f.refuse = 0;
	pthread_mutex_unlock(&f.mu);
	assert_true(wait_connected(c, 1, WAIT_MS));
	st = stats(c);
	assert_int_equal(st.reconnects, 1);
	assert_int_equal(hak_alloc(c, 4096, 0, &q), HAK_ALLOC_ZEROED);
	assert_true(same_slot(fake_sess(&f, 1), 0, 0, q));
	assert_int_equal(hak_free(c, q, 4096), 0);
	assert_null(hak_client_unref(c));
	fake_stop(&f);
}

/* The permissions /proc/self/maps shows for the mapping holding addr
 * ("rw-s"), or "" when none holds it. */
static void perms_of(const void *addr, char perms[5])
{
	FILE *fp = fopen("/proc/self/maps", "r");
	char line[512];

	perms[0] = '\0';
	while (fp && fgets(line, sizeof(line), fp)) {
		unsigned long lo, hi;
		char pr[5];

		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, pr) == 3 && (uintptr_t)addr >= lo &&
		    (uintptr_t)addr < hi) {
			memcpy(perms, pr, 5);
			break;
		}
	}
	if (fp)
		fclose(fp);
}

/* The child: plain checks and an exit code, no cmocka (its state belongs to
 * the parent). */
static int child_checks(struct hak_client *c, char *parent_slot, size_t pool_bytes)
{
	char perms[5];
	void *p;

	if (hak_client_is_connected(c) != 0)
		return 10;
	/* Not inherited (MADV_DONTFORK); the library holds the range with an
	 * inaccessible reservation, so a stray access faults. */
	perms_of(parent_slot, perms);
	if (strcmp(perms, "---p") != 0 && strcmp(perms, "") != 0)
		return 9;
	if (hak_free(c, parent_slot, 4096) != 0) /* not mapped here: nothing to do */
		return 11;
#ifdef __SANITIZE_THREAD__
	/* The first fallback below starts a thread, and ThreadSanitizer cannot
	 * follow threads started in the child of a multi-threaded process
	 * ("dup thread with used id"): the other builds check the rest. */
	return 0;
#endif
	if (hak_alloc(c, 4096, 0, &p) != HAK_ALLOC_ZEROED || !all_zero(p, 4096))
		return 12;
	if ((char *)p >= parent_slot - pool_bytes && (char *)p < parent_slot + pool_bytes)
		return 13; /* must not be inside the parent's pool range */
	memset(p, 1, 4096);
	if (hak_free(c, p, 4096) != 0)
		return 14;
	/* The first fallback started a monitor that connects afresh. */
	if (!wait_connected(c, 1, WAIT_MS))
		return 15;
	if (hak_alloc(c, 4096, 0, &p) != HAK_ALLOC_ZEROED || !all_zero(p, 4096))
		return 16;
	if (hak_free(c, p, 4096) != 0)
		return 17;
	return 0;
}

static void test_fork(void **state)
{
	struct fake f;
	struct hak_client *c;
	char *p;
	size_t pool_bytes;
	pid_t pid;
	int status;

	fake_start(&f);
	c = connected_client(&f);
	pool_bytes = stats(c).pool_bytes;
	assert_int_equal(hak_alloc(c, 4096, 0, (void **)&p), HAK_ALLOC_ZEROED);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int rc = child_checks(c, p, pool_bytes);

		hak_client_unref(c);
		_exit(rc);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* The parent's pool is untouched. */
	assert_int_equal(hak_client_is_connected(c), 1);
	memset(p, 3, 4096);
	assert_int_equal(hak_free(c, p, 4096), 0);
	assert_int_equal(hak_alloc(c, 4096, 0, (void **)&p), HAK_ALLOC_ZEROED);
	assert_int_equal(hak_free(c, p, 4096), 0);
	assert_null(hak_client_unref(c));
	fake_stop(&f);
}

/* Rss of the mapping that holds addr, from /proc/self/smaps. */
static long rss_of_mapping(const void *addr)
{
	FILE *fp = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in = false;
	long kb = -1;

	if (!fp)
		return -1;
	while (fgets(line, sizeof(line), fp)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			in = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
			continue;
		}
		if (in && sscanf(line, "Rss: %ld kB", &kb) == 1)
			break;
	}
	fclose(fp);
	return kb;
}

/* Waits until the pool mapping around p has want_kb resident; returns what
 * it has then. */
static long wait_rss(const void *p, long want_kb)
{
	long rss = -1;

	for (int t = 0; t < WAIT_MS / 10; t++) {
		rss = rss_of_mapping(p);
		if (rss >= want_kb)
			break;
		sleep_ms(10);
	}
	/* Nothing more comes after a while: the exact amount is checked. */
	sleep_ms(50);
	return rss_of_mapping(p);
}

/* The longest the monitor waits between looks at the ready rings
 * (prefault.c). */
#define PF_SCAN_MAX_MS 256

/* Elastic pools: only what the ready rings hold is populated, a class of
 * small slots once 256 KiB of it were taken, and a class of large slots
 * once three of them were (prefault.c).  No class here is large enough for
 * thread caches (under 128 slots), so each take moves the ring by one. */
#define PF_QUEUED 80u
#define PF_SMALL_AFTER (256 * KIB)

static void take_n(struct hak_client *c, size_t size, void **p, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(hak_alloc(c, size, 0, &p[i]), HAK_ALLOC_ZEROED);
}

static void give_n(struct hak_client *c, size_t size, void **p, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(hak_free(c, p[i], size), 0);
}

static void check_prefault(bool with_uring)
{
	enum { N4K = PF_SMALL_AFTER / (4 * KIB), N64K = PF_SMALL_AFTER / (64 * KIB) };
	struct fake f;
	struct hak_client *c;
	void *small[N4K], *mid[N64K], *big[3];
	long want_kb;
	int inits0;

	fake_init(&f);
	f.geom[0] = (struct hak_class_geom){4 * KIB, 100, 4, 4};
	f.geom[1] = (struct hak_class_geom){64 * KIB, 8, 1, 2};
	f.geom[2] = (struct hak_class_geom){2 * MIB, 16, 1, 1};
	f.ngeom = 3;
	f.prefill = PF_QUEUED; /* 80, 8 and 16 slots */
	fake_listen(&f);
	/* Read by the monitor thread, which sets the ring up on first need:
	 * kept until the handle is gone. */
	__atomic_store_n(&fail_uring, !with_uring, __ATOMIC_RELAXED);
	inits0 = __atomic_load_n(&uring_inits, __ATOMIC_RELAXED);
	c = connected_client(&f);
	/* Less than 256 KiB of either small class, two large slots: two
	 * looks of the monitor at its slowest, and nothing populated. */
	take_n(c, 4 * KIB, small, N4K - 1);
	take_n(c, 64 * KIB, mid, N64K - 1);
	take_n(c, 2 * MIB, big, 2);
	sleep_ms(2 * PF_SCAN_MAX_MS + 100);
	assert_int_equal(rss_of_mapping(small[0]), 0);
	/* Nothing to populate yet: no io_uring either. */
	assert_int_equal(__atomic_load_n(&uring_inits, __ATOMIC_RELAXED), inits0);
	/* The 64th page: the 16 of 4 KiB still queued. */
	take_n(c, 4 * KIB, &small[N4K - 1], 1);
	want_kb = (long)((PF_QUEUED - N4K) * 4 * KIB / KIB);
	assert_int_equal(wait_rss(small[0], want_kb), want_kb);
	assert_int_equal(__atomic_load_n(&uring_inits, __ATOMIC_RELAXED), inits0 + 1);
	/* The fourth 64 KiB run: the other 4. */
	take_n(c, 64 * KIB, &mid[N64K - 1], 1);
	want_kb += (long)((8 - N64K) * 64 * KIB / KIB);
	assert_int_equal(wait_rss(small[0], want_kb), want_kb);
	/* The third 2 MiB take: the 13 still queued, more 2 MiB chunks than
	 * the submission queue holds. */
	take_n(c, 2 * MIB, &big[2], 1);
	want_kb += (long)(13 * 2 * MIB / KIB);
	assert_int_equal(wait_rss(small[0], want_kb), want_kb);
	give_n(c, 4 * KIB, small, N4K);
	give_n(c, 64 * KIB, mid, N64K);
	give_n(c, 2 * MIB, big, 3);
	assert_null(hak_client_unref(c));
	__atomic_store_n(&fail_uring, 0, __ATOMIC_RELAXED);
	fake_stop(&f);
}

/* Prefault needs MADV_POPULATE_WRITE (Linux 5.14) and smaps to be seen. */
static bool prefault_checkable(void)
{
	void *m = __real_mmap(NULL, HAK_PAGE_SIZE, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	bool ok = m != MAP_FAILED && madvise(m, HAK_PAGE_SIZE, MADV_POPULATE_WRITE) == 0;

	if (m != MAP_FAILED)
		munmap(m, HAK_PAGE_SIZE);
	if (!ok)
		print_message("skip: no MADV_POPULATE_WRITE in this kernel\n");
	else if (access("/proc/self/smaps", R_OK) != 0)
		print_message("skip: no /proc/self/smaps to measure the prefault\n");
	return ok && access("/proc/self/smaps", R_OK) == 0;
}

static void test_prefault_uring(void **state)
{
	struct io_uring ring;
	int r;

	if (!prefault_checkable())
		skip();
	r = __real_io_uring_queue_init(2, &ring, 0);
	if (r < 0) {
		print_message("skip: io_uring unavailable here (error %d); "
			      "test_prefault_no_uring covers the fallback\n",
			      -r);
		skip();
	}
	io_uring_queue_exit(&ring);
	check_prefault(true);
}

static void test_prefault_no_uring(void **state)
{
	if (!prefault_checkable())
		skip();
	check_prefault(false);
}

/* ---- per-thread caches ---- */

/* A class large enough for thread caches: 1024 slots, so each thread keeps
 * up to 32 of its own and takes 8 ready ones per pop. */
#define TC_NSLOTS 1024u
#define TC_CAP 32u
#define TC_BATCH 8u
#define TC_PREFILL 16u

static struct hak_client *tc_client(struct fake *f)
{
	fake_init(f);
	f->geom[0] = (struct hak_class_geom){4 * KIB, TC_NSLOTS, 4, 4};
	f->ngeom = 1;
	f->prefill = TC_PREFILL;
	fake_listen(f);
	return connected_client(f);
}

/* Frees stay in the thread (nothing goes back to the daemon); ready slots
 * are taken in batches; with nothing ready, the slot freed last is the one
 * zeroed inline, and it reads as zero. */
static void test_tc_lifo(void **state)
{
	struct fake f;
	struct hak_client *c = tc_client(&f);
	struct fake_sess *s = fake_sess(&f, 0);
	struct hak_ring *ready = &hak_pool_current(c)->cls[0].ready;
	hak_desc_t seen[4];
	struct hak_client_stats st;
	char *p[TC_PREFILL], *q;

	assert_int_equal(hak_alloc(c, 4096, 0, (void **)&p[0]), HAK_ALLOC_ZEROED);
	assert_int_equal(hak_ring_count(ready), TC_PREFILL - TC_BATCH); /* one pop, a batch */
	for (unsigned i = 1; i < TC_PREFILL; i++)
		assert_int_equal(hak_alloc(c, 4096, 0, (void **)&p[i]), HAK_ALLOC_ZEROED);
	for (unsigned i = 0; i < TC_PREFILL; i++) {
		assert_true(all_zero(p[i], 4096));
		memset(p[i], 0x5a, 4096);
		assert_int_equal(hak_free(c, p[i], 4096), 0);
	}
	assert_int_equal(fake_recycle(s, 0, false, seen, 4), 0);
	assert_int_equal(hak_free(c, p[3], 4096), -EINVAL); /* twice */
	/* Dirty is fine: the slot freed last, unzeroed. */
	assert_int_equal(hak_alloc(c, 4096, HAK_ALLOC_DIRTY_OK, (void **)&q), 0);
	assert_ptr_equal(q, p[TC_PREFILL - 1]);
	assert_int_equal((unsigned char)q[4095], 0x5a);
	assert_int_equal(hak_free(c, q, 4096), 0);
	/* Zeroes needed and nothing ready: that same slot, zeroed here. */
	assert_int_equal(hak_alloc(c, 4096, 0, (void **)&q), HAK_ALLOC_ZEROED);
	assert_ptr_equal(q, p[TC_PREFILL - 1]);
	assert_true(all_zero(q, 4096));
	st = stats(c);
	assert_int_equal(st.alloc_ready, TC_PREFILL);
	assert_int_equal(st.alloc_dirty, 1);
	assert_int_equal(st.alloc_inline_zero, 1);
	assert_int_equal(st.alloc_mmap, 0);
	assert_int_equal(st.free_pool, TC_PREFILL + 1);
	assert_int_equal(hak_free(c, q, 4096), 0);
	assert_null(hak_client_unref(c));
	fake_stop(&f);
}

/* A full thread stack sends its older half to the shared cache in one
 * push; the newer half stays. */
static void test_tc_spill(void **state)
{
	struct fake f;
	struct hak_client *c;
	struct hak_ring *local;
	void *p[TC_CAP + 1];

	fake_init(&f);
	f.geom[0] = (struct hak_class_geom){4 * KIB, TC_NSLOTS, 4, 4};
	f.ngeom = 1;
	f.prefill = TC_CAP + 1;
	fake_listen(&f);
	c = connected_client(&f);
	local = &hak_pool_current(c)->cls[0].local;
	for (unsigned i = 0; i <= TC_CAP; i++)
		assert_int_equal(hak_alloc(c, 4096, 0, &p[i]), HAK_ALLOC_ZEROED);
	for (unsigned i = 0; i < TC_CAP; i++)
		assert_int_equal(hak_free(c, p[i], 4096), 0);
	assert_int_equal(hak_ring_count(local), 0);
	assert_int_equal(hak_free(c, p[TC_CAP], 4096), 0);
	assert_int_equal(hak_ring_count(local), TC_CAP / 2);
	/* The oldest went: the shared cache hands out p[0] first. */
	assert_int_equal(hak_ring_pop_mc(local, &(hak_desc_t){0}), true);
	assert_null(hak_client_unref(c));
	fake_stop(&f);
}

struct tc_exit_arg {
	struct hak_client *c;
	void *p[TC_PREFILL];
	int errors;
	struct hak_tcache *cache; /* the thread's cache, seen from inside */
};

static void *tc_exit_main(void *arg)
{
	struct tc_exit_arg *a = arg;

	for (unsigned i = 0; i < TC_PREFILL; i++)
		a->errors += hak_alloc(a->c, 4096, 0, &a->p[i]) != HAK_ALLOC_ZEROED;
	for (unsigned i = 0; i < TC_PREFILL; i++)
		a->errors += hak_free(a->c, a->p[i], 4096) != 0;
	/* Everything is in this thread's cache now. */
	a->errors += hak_ring_count(&hak_pool_current(a->c)->cls[0].local) != 0;
	a->cache = hak_tc_self;
	return NULL;
}

static bool tc_exit_was_freed(const struct tc_exit_arg *a, const void *q)
{
	for (unsigned i = 0; i < TC_PREFILL; i++)
		if (a->p[i] == q)
			return true;
	return false;
}

/* A thread that exits hands its cache back: another thread gets its slots,
 * and each exactly once. */
static void test_tc_thread_exit(void **state)
{
	struct fake f;
	struct tc_exit_arg a = {.c = tc_client(&f)};
	struct hak_pool *pool = hak_pool_current(a.c);
	pthread_t th;
	void *q[TC_PREFILL];

	assert_int_equal(pthread_create(&th, NULL, tc_exit_main, &a), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(a.errors, 0);
	assert_int_equal(hak_ring_count(&pool->cls[0].local), TC_PREFILL);
	/* Its counts, kept in the thread, went into the pool's counters. */
	assert_int_equal(stats(a.c).alloc_ready, TC_PREFILL);
	assert_int_equal(stats(a.c).free_pool, TC_PREFILL);
	for (unsigned i = 0; i < TC_PREFILL; i++) {
		assert_int_equal(hak_alloc(a.c, 4096, HAK_ALLOC_DIRTY_OK, &q[i]), 0);
		assert_true(tc_exit_was_freed(&a, q[i]));
		for (unsigned j = 0; j < i; j++)
			assert_ptr_not_equal(q[i], q[j]);
	}
	assert_int_equal(stats(a.c).alloc_dirty, TC_PREFILL);
	for (unsigned i = 0; i < TC_PREFILL; i++)
		assert_int_equal(hak_free(a.c, q[i], 4096), 0);
	assert_null(hak_client_unref(a.c));
	fake_stop(&f);
}

/* A thread that needs no zeroes takes what an exited thread left in the
 * shared cache, as it is, before any zeroed slot: those would otherwise
 * go to be zeroed while it takes zeroed ones (rule 1). */
static void test_tc_dirty_before_ready(void **state)
{
	struct fake f;
	struct tc_exit_arg a;
	struct hak_pool *pool;
	pthread_t th;
	void *q[TC_PREFILL];

	fake_init(&f);
	f.geom[0] = (struct hak_class_geom){4 * KIB, TC_NSLOTS, 4, 4};
	f.ngeom = 1;
	f.prefill = 2 * TC_PREFILL; /* half of them left ready */
	fake_listen(&f);
	a = (struct tc_exit_arg){.c = connected_client(&f)};
	pool = hak_pool_current(a.c);
	assert_int_equal(pthread_create(&th, NULL, tc_exit_main, &a), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(a.errors, 0);
	assert_int_equal(hak_ring_count(&pool->cls[0].ready), TC_PREFILL);
	for (unsigned i = 0; i < TC_PREFILL; i++) {
		assert_int_equal(hak_alloc(a.c, 4096, HAK_ALLOC_DIRTY_OK, &q[i]), 0);
		assert_true(tc_exit_was_freed(&a, q[i]));
	}
	/* Not one zeroed slot taken. */
	assert_int_equal(hak_ring_count(&pool->cls[0].ready), TC_PREFILL);
	assert_int_equal(stats(a.c).alloc_ready, TC_PREFILL);
	assert_int_equal(stats(a.c).alloc_dirty, TC_PREFILL);
	for (unsigned i = 0; i < TC_PREFILL; i++)
		assert_int_equal(hak_free(a.c, q[i], 4096), 0);
	assert_null(hak_client_unref(a.c));
	fake_stop(&f);
}

struct tc_spare_arg {
	struct hak_client *c;
	void *q[2 * TC_PREFILL];
	int errors;
	struct hak_tcache *cache;
	uint32_t ndirty_at_bind; /* what the cache held when this thread got it */
};

static void *tc_spare_main(void *arg)
{
	struct tc_spare_arg *a = arg;

	a->errors += hak_alloc(a->c, 4096, HAK_ALLOC_DIRTY_OK, &a->q[0]) < 0;
	a->cache = hak_tc_self;
	a->ndirty_at_bind = a->cache ? a->cache->cls[0].ndirty : UINT32_MAX;
	for (unsigned i = 1; i < 2 * TC_PREFILL; i++)
		a->errors += hak_alloc(a->c, 4096, HAK_ALLOC_DIRTY_OK, &a->q[i]) < 0;
	for (unsigned i = 0; i < 2 * TC_PREFILL; i++)
		a->errors += hak_free(a->c, a->q[i], 4096) != 0;
	return NULL;
}

/* An exited thread's cache is kept for the next thread (no unmap, no TLB
 * shootdown per thread exit), and the next thread gets it empty: slots the
 * first one freed went back to the pool once and come out of it once. */
static void test_tc_spare_reused(void **state)
{
	struct fake f;
	struct tc_exit_arg a = {.c = tc_client(&f)};
	struct tc_spare_arg b = {.c = a.c};
	unsigned from_a = 0;
	pthread_t th;

	assert_int_equal(pthread_create(&th, NULL, tc_exit_main, &a), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(a.errors, 0);
	assert_int_equal(pthread_create(&th, NULL, tc_spare_main, &b), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(b.errors, 0);
	assert_non_null(a.cache);
	assert_ptr_equal(b.cache, a.cache);
	/* The first allocation popped one of what the cache held. */
	assert_int_equal(b.ndirty_at_bind, 0);
	for (unsigned i = 0; i < 2 * TC_PREFILL; i++) {
		from_a += tc_exit_was_freed(&a, b.q[i]);
		for (unsigned j = 0; j < i; j++)
			assert_ptr_not_equal(b.q[i], b.q[j]);
	}
	assert_int_equal(from_a, TC_PREFILL);
	assert_null(hak_client_unref(a.c));
	fake_stop(&f);
}

/* Reads the slot through the fake daemon's own mapping. */
static unsigned char daemon_byte(struct fake_sess *s, uint32_t slot)
{
	return (unsigned char)s->pool[s->h.cls[0].pool_offset + (uint64_t)slot * 4096 + 100];
}

/* The daemon dies with slots in this thread's cache: none is handed out
 * from the retired pool, and they are given back (punched) once the thread
 * binds to the next pool. */
static void test_tc_daemon_death(void **state)
{
	struct fake f;
	struct hak_client *c = tc_client(&f);
	struct fake_sess *s = fake_sess(&f, 0);
	char *base = hak_pool_current(c)->cls[0].base;
	uint32_t slot[4];
	char *p[4];
	void *q;

	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(hak_alloc(c, 4096, 0, (void **)&p[i]), HAK_ALLOC_ZEROED);
		memset(p[i], 7, 4096);
		slot[i] = (uint32_t)((p[i] - base) / 4096);
	}
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(hak_free(c, p[i], 4096), 0);
	pthread_mutex_lock(&f.mu);
	f.refuse = -EAGAIN;
	pthread_mutex_unlock(&f.mu);
	fake_kill(&f, 0);
	assert_true(wait_connected(c, 0, WAIT_MS));
	assert_int_equal(daemon_byte(s, slot[0]), 7); /* still cached, not yet given back */
	assert_int_equal(hak_alloc(c, 4096, HAK_ALLOC_DIRTY_OK, &q), HAK_ALLOC_ZEROED);
	for (unsigned i = 0; i < 4; i++)
		assert_ptr_not_equal(q, p[i]);
	assert_int_equal(stats(c).alloc_mmap, 1);
	assert_int_equal(hak_free(c, q, 4096), 0);
	pthread_mutex_lock(&f.mu);
	f.refuse = 0;
	pthread_mutex_unlock(&f.mu);
	assert_true(wait_connected(c, 1, WAIT_MS));
	assert_int_equal(hak_alloc(c, 4096, 0, &q), HAK_ALLOC_ZEROED);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(daemon_byte(s, slot[i]), 0);
	assert_int_equal(hak_free(c, q, 4096), 0);
	assert_null(hak_client_unref(c));
	fake_stop(&f);
}

/* A fork child inherits the forking thread's cache, full of the parent's
 * shared slots: it must hand none of them out (the pool is not mapped in
 * the child). */
static void test_tc_fork(void **state)
{
	struct fake f;
	struct hak_client *c = tc_client(&f);
	char *p;
	pid_t pid;
	int status;

	assert_int_equal(hak_alloc(c, 4096, 0, (void **)&p), HAK_ALLOC_ZEROED);
	assert_int_equal(hak_free(c, p, 4096), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		void *q = NULL;
		int rc = 0;

#ifndef __SANITIZE_THREAD__
		/* (The allocation starts the child's monitor thread, which
		 * ThreadSanitizer cannot follow after a multi-threaded fork.) */
		rc = hak_alloc(c, 4096, HAK_ALLOC_DIRTY_OK, &q) != HAK_ALLOC_ZEROED || q == p ||
		     !all_zero(q, 4096) || hak_free(c, q, 4096) != 0;
#endif
		(void)q;
		hak_client_unref(c);
		_exit(rc);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* The parent still has its slot in its cache. */
	assert_int_equal(hak_alloc(c, 4096, HAK_ALLOC_DIRTY_OK, (void **)&p), 0);
	assert_int_equal(hak_free(c, p, 4096), 0);
	assert_null(hak_client_unref(c));
	fake_stop(&f);
}

/* A cache bound to a handle that was freed must not touch it: a new handle
 * (perhaps at the same address) starts clean. */
static void test_tc_handle_gone(void **state)
{
	struct fake f;
	struct hak_client *c = tc_client(&f);
	void *p, *q;

	assert_int_equal(hak_alloc(c, 4096, 0, &p), HAK_ALLOC_ZEROED);
	assert_int_equal(hak_free(c, p, 4096), 0);
	assert_null(hak_client_unref(c));
	c = connected_client(&f);
	assert_int_equal(hak_alloc(c, 4096, HAK_ALLOC_DIRTY_OK, &q), HAK_ALLOC_ZEROED);
	assert_int_equal(stats(c).alloc_ready, 1);
	assert_int_equal(stats(c).alloc_dirty, 0);
	assert_int_equal(hak_free(c, q, 4096), 0);
	assert_null(hak_client_unref(c));
	fake_stop(&f);
}

/* ---- many threads ---- */

#define NTHREADS 4
#define ITERS 20000
#define HOLD 6
#define LIVE (1ull << 63)
#define FREED (1ull << 62)

struct worker {
	struct hak_client *c;
	uint64_t id;
	uint64_t errors;
	uint64_t doubles;
	uint64_t nonzero;
};

static bool stop_recycler;

static void *recycler(void *arg)
{
	struct fake_sess *s = arg;
	hak_desc_t seen[1];

	while (!__atomic_load_n(&stop_recycler, __ATOMIC_ACQUIRE)) {
		for (unsigned c = 0; c < s->h.nclasses; c++)
			fake_recycle(s, c, true, seen, 0);
		sched_yield();
	}
	return NULL;
}

/* The first word of a slot says who holds it: a second hand-out while one
 * thread holds it would find LIVE there. */
static void take(struct worker *w, uint64_t *m, int r)
{
	uint64_t old;

	if (r == HAK_ALLOC_ZEROED && (__atomic_load_n(&m[0], __ATOMIC_RELAXED) ||
				      __atomic_load_n(&m[511], __ATOMIC_RELAXED)))
		w->nonzero++;
	old = __atomic_exchange_n(&m[0], LIVE | w->id, __ATOMIC_RELAXED);
	if (old & LIVE)
		w->doubles++;
	m[511] = w->id;
}

static void give(struct worker *w, uint64_t *m)
{
	if (m[511] != w->id || __atomic_load_n(&m[0], __ATOMIC_RELAXED) != (LIVE | w->id))
		w->doubles++;
	__atomic_store_n(&m[0], FREED | w->id, __ATOMIC_RELAXED);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t *held[HOLD] = {0};

	for (int i = 0; i < ITERS; i++) {
		int k = i % HOLD;
		unsigned flags = (i & 1) ? HAK_ALLOC_DIRTY_OK : 0;
		int r;

		if (held[k]) {
			give(w, held[k]);
			if (hak_free(w->c, held[k], 4096) != 0)
				w->errors++;
		}
		r = hak_alloc(w->c, 4096, flags, (void **)&held[k]);
		if (r < 0) {
			w->errors++;
			held[k] = NULL;
			continue;
		}
		take(w, held[k], r);
	}
	for (int k = 0; k < HOLD; k++)
		if (held[k]) {
			give(w, held[k]);
			hak_free(w->c, held[k], 4096);
		}
	return NULL;
}

/* N threads against one pool of nslots 4 KIB slots, with a recycler in the
 * daemon's place: no slot is handed out twice, every zeroed one reads as
 * zero, every return carries the generation its slot was queued with. */
static void threads_run(uint32_t nslots)
{
	struct fake f;
	struct hak_client *c;
	struct fake_sess *s;
	struct worker w[NTHREADS];
	pthread_t th[NTHREADS], rec;
	struct hak_client_stats st;

	fake_init(&f);
	f.geom[0] = (struct hak_class_geom){4 * KIB, nslots, nslots / 4, 4};
	f.prefill = nslots;
	fake_listen(&f);
	c = connected_client(&f);
	s = fake_sess(&f, 0);
	fake_use_client_view(s, c);
	stop_recycler = false;
	assert_int_equal(pthread_create(&rec, NULL, recycler, s), 0);
	for (int i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){.c = c, .id = (uint64_t)i + 1};
		assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].errors, 0);
		assert_int_equal(w[i].doubles, 0);
		assert_int_equal(w[i].nonzero, 0);
	}
	__atomic_store_n(&stop_recycler, true, __ATOMIC_RELEASE);
	pthread_join(rec, NULL);
	assert_int_equal(s->bad_gen, 0);
	st = stats(c);
	assert_int_equal(st.alloc_ready + st.alloc_dirty + st.alloc_inline_zero + st.alloc_mmap,
			 (uint64_t)NTHREADS * ITERS);
	assert_int_equal(st.free_pool + st.free_mmap, (uint64_t)NTHREADS * ITERS);
	assert_true(st.alloc_ready > 0);
	assert_null(hak_client_unref(c));
	fake_stop(&f);
}

/* 32 slots: too few for thread caches, the shared path alone. */
static void test_threads(void **state)
{
	threads_run(32);
}

/* 1024 slots: each thread keeps 32 of its own and takes ready slots in
 * batches. */
static void test_threads_tcache(void **state)
{
	threads_run(TC_NSLOTS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_args),
		cmocka_unit_test(test_no_daemon),
		cmocka_unit_test(test_daemon_starts_later),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_unsealed_pool_refused),
		cmocka_unit_test(test_map_failure),
		cmocka_unit_test(test_env),
		cmocka_unit_test(test_env_log_stderr),
		cmocka_unit_test(test_silent_by_default),
		cmocka_unit_test(test_ready_zero),
		cmocka_unit_test(test_free_cache_then_return),
		cmocka_unit_test(test_generation_follows_slot),
		cmocka_unit_test(test_dirty_ok),
		cmocka_unit_test(test_doorbell),
		cmocka_unit_test(test_return_doorbell),
		cmocka_unit_test(test_daemon_death),
		cmocka_unit_test(test_fork),
		cmocka_unit_test(test_prefault_uring),
		cmocka_unit_test(test_prefault_no_uring),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_tc_lifo),
		cmocka_unit_test(test_tc_spill),
		cmocka_unit_test(test_tc_thread_exit),
		cmocka_unit_test(test_tc_dirty_before_ready),
		cmocka_unit_test(test_tc_spare_reused),
		cmocka_unit_test(test_tc_daemon_death),
		cmocka_unit_test(test_tc_fork),
		cmocka_unit_test(test_tc_handle_gone),
		cmocka_unit_test(test_threads_tcache),
	};
	int fd = memfd_create("probe", MFD_CLOEXEC);

	if (fd < 0) {
		printf("SKIP: memfd_create unavailable (%s)\n", strerror(errno));
		return 77;
	}
	close(fd);
	if (getenv("HAK_TEST_FILTER")) /* e.g. HAK_TEST_FILTER='test_fork' */
		cmocka_set_test_filter(getenv("HAK_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL) ? 1 : 0;
}
