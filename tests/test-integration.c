/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Integration tests: a real hakzerod in a fresh temporary directory and
 * real client processes (tests/hak-testclient) driven through pipes; for
 * the limits, a raw client speaking the protocol itself.  One test per
 * DESIGN rule at least (rule 3, hostile clients: tests/test-hostile.c):
 *
 *   zero_*, dirty_*      rule 1  zeroed pages read 0 after recycling, when
 *                                the ready ring runs dry, after trims;
 *                                dirty pages hold only our own bytes
 *   clients_isolated     rule 2  concurrent clients never see each other
 *   threads              rule 2  no page held by two threads at once
 *   hot_path             rule 4  no fault, no blocking, few doorbells
 *   client_killed        rule 5  a dead client's pool is reclaimed
 *   daemon_restart       rule 5  a client lives through a daemon restart
 *   quota, budget, trim  rule 6  memory is bounded and given back
 *   fork                 fork()  parent and child never share a byte
 *
 * Binaries come from $HAKZEROD, $HAKCTL and $HAK_TESTCLIENT (set by
 * `make check`); without them the test is skipped (77).  Every process
 * started here dies with the test: PR_SET_PDEATHSIG, and a teardown that
 * kills whatever is left even after a failed assertion.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hak_layout.h"
#include "hak_proto.h"

#define EXIT_SKIP 77
/* How long the daemon or a client gets to react to something. */
#define REACT_MS 5000
/* A scenario run of hak-testclient, from start to exit. */
#define CLIENT_RUN_MS 30000
/* Pause between polls of a state nothing signals (a socket that is not
 * there yet, a counter in a status reply). */
#define POLL_STEP_MS 10
#define MAX_PROCS 16
#define LINE_LEN 1024
#define STATUS_LEN 8192
/* The test config's pool: 16 MiB as 4 KiB x 1024, 64 KiB x 64, 2 MiB x 4;
 * at most 96 MiB for all pools together (6 clients). */
#define TEST_POOL (16ull << 20)
#define TEST_POOL_MAX (64ull << 20)
#define TEST_BUDGET (96ull << 20)
/* churn --batch holding nearly every slot of each class: the ready ring
 * cannot give them all (the slots in the library's local cache of freed
 * slots are not in it), so some are zeroed inline (or mmapped). */
#define PRESSURE_BATCH "1000,62,4"
#define TMP_DIR_MAX 80

/* ------------------------------------------------------------ processes */

struct proc {
	bool used;
	const char *name;
	pid_t pid;   /* 0: not running (reaped or never started) */
	int in, out; /* its stdin / stdout, -1 when not piped */
	int status;  /* wait status once reaped */
	size_t len;
	char buf[8192]; /* stdout not yet split into lines */
	char last_stats[LINE_LEN];
	char first_fail[LINE_LEN];
};

/* Static, not on a test's stack: after a failed assertion the teardown
 * still finds (and kills) every process a test started. */
static struct proc procs[MAX_PROCS];

static struct {
	const char *hakzerod, *hakctl, *testclient;
	/* Short enough that dir/s.sock fits a sun_path. */
	char dir[TMP_DIR_MAX];
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char conf[PATH_MAX];
	struct proc *daemon;
} env;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static struct proc *proc_new(const char *name)
{
	for (int i = 0; i < MAX_PROCS; i++)
		if (!procs[i].used) {
			memset(&procs[i], 0, sizeof(procs[i]));
			procs[i].used = true;
			procs[i].name = name;
			procs[i].in = procs[i].out = -1;
			return &procs[i];
		}
	fail_msg("more than %d processes", MAX_PROCS);
	return NULL;
}

/* In the child, before exec: die with the test, stdio wired up. */
static void child_setup(pid_t parent, const int in[2], const int out[2])
{
	int null;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	signal(SIGPIPE, SIG_DFL);
	if (in[0] >= 0) {
		dup2(in[0], STDIN_FILENO);
		dup2(out[1], STDOUT_FILENO);
		return;
	}
	/* Not piped: no stdin; stdout joins stderr, away from cmocka's
	 * report on our stdout. */
	null = open("/dev/null", O_RDONLY);
	dup2(null, STDIN_FILENO);
	dup2(STDERR_FILENO, STDOUT_FILENO);
}

static struct proc *proc_start(const char *name, char *const argv[], bool piped)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1};
	pid_t parent = getpid();
	struct proc *p = proc_new(name);

	if (piped)
		assert_true(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0);
	p->pid = fork();
	assert_true(p->pid >= 0);
	if (p->pid == 0) {
		child_setup(parent, in, out);
		execv(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (piped) {
		close(in[0]);
		close(out[1]);
		p->in = in[1];
		p->out = out[0];
	}
	return p;
}

static void proc_close_pipes(struct proc *p)
{
	if (p->in >= 0)
		close(p->in);
	if (p->out >= 0)
		close(p->out);
	p->in = p->out = -1;
}

/* Waits for p to exit, up to timeout_ms, then kills it.  Returns whether
 * it exited by itself. */
static bool proc_reap(struct proc *p, unsigned timeout_ms)
{
	uint64_t deadline = now_ms() + timeout_ms;
	bool exited = true;

	if (p->pid <= 0)
		return true;
	/* No pidfd/SIGCHLD plumbing for this rare path: the process has
	 * closed its stdout already, so it is exiting. */
	while (waitpid(p->pid, &p->status, WNOHANG) == 0) {
		if (now_ms() > deadline) {
			kill(p->pid, SIGKILL);
			waitpid(p->pid, &p->status, 0);
			exited = false;
			break;
		}
		sleep_ms(POLL_STEP_MS);
	}
	p->pid = 0;
	proc_close_pipes(p);
	return exited;
}

static void proc_kill(struct proc *p)
{
	if (p->pid <= 0)
		return;
	kill(p->pid, SIGKILL);
	waitpid(p->pid, &p->status, 0);
	p->pid = 0;
	proc_close_pipes(p);
}

static void proc_release(struct proc *p)
{
	proc_kill(p);
	p->used = false;
}

static void kill_all(void)
{
	for (int i = 0; i < MAX_PROCS; i++)
		if (procs[i].used)
			proc_release(&procs[i]);
}

/* One line of p's stdout: 1, 0 at end of output, -ETIMEDOUT. */
static int proc_line(struct proc *p, char *line, size_t size, uint64_t deadline)
{
	for (;;) {
		char *nl = memchr(p->buf, '\n', p->len);
		struct pollfd pfd = {.fd = p->out, .events = POLLIN};
		ssize_t n;

		if (nl) {
			size_t l = (size_t)(nl - p->buf);

			snprintf(line, size, "%.*s", (int)l, p->buf);
			memmove(p->buf, nl + 1, p->len - l - 1);
			p->len -= l + 1;
			fprintf(stderr, "  [%s] %s\n", p->name, line);
			if (strncmp(line, "stats", 5) == 0)
				snprintf(p->last_stats, sizeof(p->last_stats), "%s", line);
			if (strncmp(line, "fail", 4) == 0 && !p->first_fail[0])
				snprintf(p->first_fail, sizeof(p->first_fail), "%s", line);
			return 1;
		}
		if (p->out < 0 || p->len == sizeof(p->buf))
			return 0;
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
		if (poll(&pfd, 1, (int)(deadline - now_ms())) <= 0)
			continue;
		n = read(p->out, p->buf + p->len, sizeof(p->buf) - p->len);
		if (n <= 0) {
			close(p->out);
			p->out = -1;
		} else {
			p->len += (size_t)n;
		}
	}
}

/* Reads lines until one starts with prefix; a "fail" line, the end of
 * output or the timeout fail the test. */
static void proc_expect(struct proc *p, const char *prefix, unsigned timeout_ms, char *line,
			size_t size)
{
	uint64_t deadline = now_ms() + timeout_ms;
	char buf[LINE_LEN];
	int r;

	if (!line) {
		line = buf;
		size = sizeof(buf);
	}
	while ((r = proc_line(p, line, size, deadline)) == 1) {
		if (strncmp(line, prefix, strlen(prefix)) == 0)
			return;
		if (p->first_fail[0])
			fail_msg("%s: %s", p->name, p->first_fail);
	}
	fail_msg("%s: %s while waiting for '%s'", p->name, r == 0 ? "output ended" : "timed out",
		 prefix);
}

static void proc_say(struct proc *p, const char *word)
{
	char line[64];
	int n = snprintf(line, sizeof(line), "%s\n", word);

	assert_int_equal(write(p->in, line, (size_t)n), n);
}

/* Reads p's output to the end, reaps it, and fails unless it said no
 * "fail" and exited 0. */
static void proc_finish(struct proc *p, unsigned timeout_ms)
{
	uint64_t deadline = now_ms() + timeout_ms;
	char line[LINE_LEN];
	int r;

	while ((r = proc_line(p, line, sizeof(line), deadline)) == 1)
		;
	if (!proc_reap(p, r == 0 ? REACT_MS : 0))
		fail_msg("%s: did not exit within %u ms (killed)", p->name, timeout_ms);
	if (p->first_fail[0])
		fail_msg("%s: %s", p->name, p->first_fail);
	if (!WIFEXITED(p->status) || WEXITSTATUS(p->status) != 0)
		fail_msg("%s: exited with wait status %#x", p->name, p->status);
}

/* key=value from a "stats" (or any key=value) line. */
static uint64_t line_value(const char *line, const char *key)
{
	char pat[64];
	const char *s;

	snprintf(pat, sizeof(pat), " %s=", key);
	s = strstr(line, pat);
	if (!s)
		fail_msg("no %s in '%s'", key, line);
	return strtoull(s + strlen(pat), NULL, 10);
}

/* ------------------------------------------------------------- clients */

#define CLIENT_ARGS_MAX 24

/* Starts hak-testclient CMD --socket S ARGS...; args end with NULL. */
static struct proc *client_start(const char *name, const char *cmd, ...)
{
	char *argv[CLIENT_ARGS_MAX];
	const char *a;
	va_list ap;
	int n = 0;

	argv[n++] = (char *)env.testclient;
	argv[n++] = (char *)cmd;
	argv[n++] = "--socket";
	argv[n++] = env.sock;
	va_start(ap, cmd);
	while ((a = va_arg(ap, const char *)) && n < CLIENT_ARGS_MAX - 1)
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	fprintf(stderr, "starting %s: hak-testclient %s\n", name, cmd);
	return proc_start(name, argv, true);
}

/* -------------------------------------------------------------- daemon */

static bool daemon_alive(void)
{
	struct proc *d = env.daemon;

	if (!d || d->pid <= 0)
		return false;
	if (waitpid(d->pid, &d->status, WNOHANG) == d->pid) {
		d->pid = 0;
		return false;
	}
	return true;
}

static int connect_sock(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", env.sock);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	return fd;
}

/* Retries connect until the daemon listens (up to REACT_MS): nothing tells
 * us when it has bound its socket. */
static void daemon_wait_ready(void)
{
	uint64_t deadline = now_ms() + REACT_MS;
	int fd;

	while ((fd = connect_sock()) < 0) {
		if (!daemon_alive())
			fail_msg("hakzerod exited (wait status %#x) before listening",
				 env.daemon->status);
		if (now_ms() > deadline)
			fail_msg("hakzerod does not answer on %s after %d ms", env.sock, REACT_MS);
		sleep_ms(POLL_STEP_MS);
	}
	close(fd);
}

static void daemon_start(void)
{
	char *argv[] = {(char *)env.hakzerod, "--foreground", "--socket", env.sock,
			"--config",	      env.conf,	      NULL};

	if (env.daemon)
		proc_release(env.daemon);
	env.daemon = proc_start("hakzerod", argv, false);
	daemon_wait_ready();
}

static void assert_daemon_alive(void)
{
	if (!daemon_alive())
		fail_msg("hakzerod died (wait status %#x)", env.daemon->status);
}

/* ---------------------------------------------------------- admin status */

/* One admin request over the protocol itself; the JSON text in out. */
static int admin_direct(uint32_t cmd, char *out, size_t size)
{
	struct hak_msg_admin m;
	union {
		struct hak_msg_admin_reply r;
		char buf[HAK_MSG_MAX];
	} u;
	size_t used = 0;
	int fd = connect_sock(), r = 0;

	if (fd < 0)
		return fd;
	memset(&m, 0, sizeof(m));
	hak_proto_hdr_init(&m.h, HAK_MSG_ADMIN, sizeof(m));
	m.cmd = cmd;
	m.flags = HAK_ADMIN_F_JSON;
	r = hak_sock_send(fd, &m, sizeof(m), NULL, 0);
	while (r == 0) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		ssize_t n;
		size_t text;

		if (poll(&pfd, 1, REACT_MS) <= 0) {
			r = -ETIMEDOUT;
			break;
		}
		n = hak_sock_recv(fd, u.buf, sizeof(u.buf), NULL, 0, NULL, 0);
		if (n <= 0 || hak_proto_check(u.buf, (size_t)n) != HAK_MSG_ADMIN_REPLY) {
			r = n < 0 ? (int)n : -EPROTO;
			break;
		}
		text = (size_t)n - sizeof(u.r);
		if (used + text >= size)
			text = size - used - 1;
		memcpy(out + used, u.r.text, text);
		used += text;
		if (u.r.status < 0)
			r = u.r.status;
		if (u.r.flags & HAK_ADMIN_F_LAST)
			break;
	}
	out[used] = '\0';
	close(fd);
	return r;
}

/* `hakctl --socket S --json CMD`, its stdout in out. */
static int admin_hakctl(const char *cmd, char *out, size_t size)
{
	char *argv[] = {(char *)env.hakctl, "--socket", env.sock, "--json", (char *)cmd, NULL};
	struct proc *p = proc_start("hakctl", argv, true);
	char line[LINE_LEN];
	size_t used = 0;
	int status;

	out[0] = '\0';
	close(p->in);
	p->in = -1;
	while (proc_line(p, line, sizeof(line), now_ms() + REACT_MS) == 1)
		if (used < size)
			used += (size_t)snprintf(out + used, size - used, "%s\n", line);
	proc_reap(p, REACT_MS);
	status = p->status;
	proc_release(p);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

static bool have_hakctl(void)
{
	return env.hakctl && access(env.hakctl, X_OK) == 0;
}

static const char *admin_name(uint32_t cmd)
{
	switch (cmd) {
	case HAK_ADMIN_STATUS:
		return "status";
	case HAK_ADMIN_STATS:
		return "stats";
	case HAK_ADMIN_TRIM:
		return "trim";
	default:
		return "clients";
	}
}

/* An admin request's JSON: through hakctl when it is built, else directly. */
static void admin_json(uint32_t cmd, char *out, size_t size)
{
	const char *name = admin_name(cmd);
	int r = have_hakctl() ? admin_hakctl(name, out, size) : admin_direct(cmd, out, size);

	if (r < 0)
		fail_msg("admin %s failed: %s (%s)", name, strerror(-r), out);
}

static uint64_t json_value(const char *json, const char *key)
{
	char pat[64];
	const char *s;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	s = strstr(json, pat);
	if (!s)
		fail_msg("no \"%s\" in %s", key, json);
	return strtoull(s + strlen(pat), NULL, 10);
}

struct status {
	uint64_t clients, pool_bytes;
};

static struct status status_now(void)
{
	char json[STATUS_LEN];

	admin_json(HAK_ADMIN_STATUS, json, sizeof(json));
	return (struct status){json_value(json, "clients"), json_value(json, "pool_bytes")};
}

static uint64_t stat_now(const char *key)
{
	char json[STATUS_LEN];

	admin_json(HAK_ADMIN_STATS, json, sizeof(json));
	return json_value(json, key);
}

/* Polls the status until it says `clients` clients (and, unless
 * pool_bytes is UINT64_MAX, that pool total), up to REACT_MS. */
static struct status status_wait(uint64_t clients, uint64_t pool_bytes, const char *why)
{
	uint64_t deadline = now_ms() + REACT_MS;
	struct status st;

	for (;;) {
		st = status_now();
		if (st.clients == clients &&
		    (pool_bytes == UINT64_MAX || st.pool_bytes == pool_bytes))
			return st;
		if (now_ms() > deadline)
			fail_msg("%s: status says clients=%llu pool_bytes=%llu after %d ms, "
				 "expected clients=%llu pool_bytes=%lld",
				 why, (unsigned long long)st.clients,
				 (unsigned long long)st.pool_bytes, REACT_MS,
				 (unsigned long long)clients,
				 pool_bytes == UINT64_MAX ? -1ll : (long long)pool_bytes);
		sleep_ms(POLL_STEP_MS);
	}
}

/* ----------------------------------------------------------- test setup */

/* A small pool so that slots go round quickly; the admin group is ours so
 * that status works without root. */
static void write_config(void)
{
	struct group *gr = getgrgid(getegid());
	FILE *f = fopen(env.conf, "w");

	assert_non_null(f);
	fprintf(f,
		"# written by test-integration\n"
		"pool_size %llu\n"
		"pool_size_max %llu\n"
		"global_budget %llu\n"
		"class 4K 25%%\n"
		"class 64K 25%%\n"
		"class 2M 50%%\n"
		"zero_threads 1\n"
		"log_level info\n",
		(unsigned long long)TEST_POOL, (unsigned long long)TEST_POOL_MAX,
		(unsigned long long)TEST_BUDGET);
	if (gr)
		fprintf(f, "admin_group %s\n", gr->gr_name);
	assert_int_equal(fclose(f), 0);
}

static int group_setup(void **state)
{
	const char *tmp = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	size_t n = (size_t)snprintf(env.dir, sizeof(env.dir), "%s/hak-integration-XXXXXX", tmp);

	if (n >= sizeof(env.dir)) {
		fprintf(stderr, "TMPDIR %s is too long for a socket path\n", tmp);
		return -1;
	}
	if (!mkdtemp(env.dir)) {
		fprintf(stderr, "mkdtemp %s: %s\n", env.dir, strerror(errno));
		return -1;
	}
	snprintf(env.sock, sizeof(env.sock), "%s/s.sock", env.dir);
	snprintf(env.conf, sizeof(env.conf), "%s/test.conf", env.dir);
	write_config();
	daemon_start();
	return 0;
}

static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[PATH_MAX * 2];

	if (!d)
		return;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			unlink(path);
		}
	closedir(d);
	rmdir(dir);
}

static int group_teardown(void **state)
{
	kill_all();
	remove_dir(env.dir);
	return 0;
}

static void raw_close_all(void);

/* After each test: no client left over, the daemon still alive (rule 3:
 * nothing a client does kills it). */
static int test_teardown(void **state)
{
	raw_close_all();
	for (int i = 0; i < MAX_PROCS; i++)
		if (procs[i].used && &procs[i] != env.daemon)
			proc_release(&procs[i]);
	if (!daemon_alive()) {
		fprintf(stderr, "hakzerod died (wait status %#x); restarting it\n",
			env.daemon ? env.daemon->status : 0);
		daemon_start();
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------- rule 1 */

/* Zero-filled allocations after many rounds of fill-and-free: slots come
 * back through the daemon's zeroing (ready_bytes beyond the pool), and
 * every byte of every page handed out as zeroed reads 0. */
static void test_zero_after_pattern(void **state)
{
	struct proc *c;
	char line[LINE_LEN];

	c = client_start("zero", "churn", "--pattern", "0xa5", "--mode", "zero", "--rounds", "100",
			 "--seconds", "20", "--expect-recycle", NULL);
	proc_expect(c, "churn", CLIENT_RUN_MS, line, sizeof(line));
	assert_true(line_value(line, "ready_bytes") > line_value(line, "pool_bytes"));
	proc_finish(c, REACT_MS);
	assert_true(line_value(c->last_stats, "alloc_ready") > 0);
	assert_int_equal(line_value(c->last_stats, "alloc_dirty"), 0);
	assert_daemon_alive();
}

/* HAK_ALLOC_DIRTY_OK: a page that is not zeroed holds our own pattern
 * and nothing else; the dirty path must really have been taken. */
static void test_dirty_only_own_pattern(void **state)
{
	struct proc *c;

	c = client_start("dirty", "churn", "--pattern", "0x5a", "--mode", "dirty", "--rounds", "20",
			 "--seconds", "15", NULL);
	proc_finish(c, CLIENT_RUN_MS);
	assert_true(line_value(c->last_stats, "alloc_dirty") > 0);
	assert_daemon_alive();
}

/* Holding more than the ready rings can give: allocations come zeroed
 * inline from our own freed slots, or from mmap, and still read 0. */
static void test_zero_ring_dry(void **state)
{
	struct proc *c = client_start("dry", "churn", "--pattern", "0x96", "--mode", "zero",
				      "--rounds", "40", "--batch", PRESSURE_BATCH, NULL);

	proc_finish(c, CLIENT_RUN_MS);
	/* The path under test was taken. */
	assert_true(line_value(c->last_stats, "alloc_inline_zero") > 0);
	assert_daemon_alive();
}

/* Trimming while a client churns: trimmed slots come back zeroed. */
static void test_zero_through_trims(void **state)
{
	struct proc *c;
	char json[STATUS_LEN], line[LINE_LEN];
	uint64_t trimmed = 0;
	int r;

	c = client_start("trimmed", "churn", "--pattern", "0x69", "--mode", "mixed", "--rounds",
			 "60", "--sync", NULL);
	proc_expect(c, "ready", REACT_MS, NULL, 0);
	proc_say(c, "go");
	/* Trim over and over until the client is done; nothing tells when
	 * a trim would find idle slots, so ask often. */
	do {
		admin_json(HAK_ADMIN_TRIM, json, sizeof(json));
		trimmed += json_value(json, "trimmed_bytes");
		r = proc_line(c, line, sizeof(line), now_ms() + POLL_STEP_MS);
	} while (r != 0 && !c->first_fail[0]);
	proc_finish(c, CLIENT_RUN_MS);
	if (trimmed == 0)
		fail_msg("no trim ever gave memory back while the client churned");
	assert_true(stat_now("trimmed_bytes") >= trimmed);
	assert_daemon_alive();
}

/* Rule 4 in the caller's thread: per allocation at most 0.01 page faults,
 * no voluntary context switch (nothing blocked) and doorbells amortised. */
static void test_hot_path(void **state)
{
	struct proc *c = client_start("hotpath", "hotpath", "--rounds", "3000", NULL);
	char line[LINE_LEN];
	uint64_t allocs;

	proc_expect(c, "hotpath", CLIENT_RUN_MS, line, sizeof(line));
	proc_finish(c, REACT_MS);
	allocs = line_value(line, "allocs");
	if (line_value(line, "faults") * 100 > allocs)
		fail_msg("more than 0.01 page faults per allocation: %s", line);
	if (line_value(line, "vcsw") * 1000 > allocs)
		fail_msg("the allocating thread blocked: %s", line);
	if (line_value(line, "doorbells") * 10 > allocs)
		fail_msg("more than one doorbell per 10 allocations: %s", line);
	assert_int_equal(line_value(line, "mmap"), 0);
	assert_daemon_alive();
}

/* ------------------------------------------------------------- rule 2 */

#define ISOLATED_CLIENTS 3

static void test_clients_isolated(void **state)
{
	static const char *patterns[ISOLATED_CLIENTS] = {"0xa1", "0xb2", "0xc3"};
	static const char *names[ISOLATED_CLIENTS] = {"A", "B", "C"};
	struct proc *c[ISOLATED_CLIENTS];

	for (int i = 0; i < ISOLATED_CLIENTS; i++)
		c[i] = client_start(names[i], "churn", "--pattern", patterns[i], "--mode", "mixed",
				    "--rounds", "40", "--seconds", "15", "--sync", NULL);
	/* All connected before any starts: they really run at once. */
	for (int i = 0; i < ISOLATED_CLIENTS; i++)
		proc_expect(c[i], "ready", REACT_MS, NULL, 0);
	for (int i = 0; i < ISOLATED_CLIENTS; i++)
		proc_say(c[i], "go");
	for (int i = 0; i < ISOLATED_CLIENTS; i++)
		proc_finish(c[i], CLIENT_RUN_MS);
	assert_daemon_alive();
}

static void test_threads(void **state)
{
	struct proc *c =
		client_start("threads", "threads", "--threads", "4", "--rounds", "6000", NULL);

	proc_finish(c, CLIENT_RUN_MS);
	assert_daemon_alive();
}

/* ------------------------------------------------------------- rule 5 */

/* A client SIGKILLed while it holds pages: the daemon notices, reclaims
 * the pool (clients and pool_bytes back where they were), and the next
 * client sees nothing of the dead one's bytes. */
static void test_client_killed(void **state)
{
	struct proc *c, *next;
	struct status base, held;

	base = status_wait(0, UINT64_MAX, "before the test");
	c = client_start("victim", "hold", "--pattern", "0xd4", "--pages", "4", NULL);
	proc_expect(c, "held", REACT_MS, NULL, 0);
	held = status_wait(base.clients + 1, UINT64_MAX, "with the victim connected");
	assert_true(held.pool_bytes > base.pool_bytes);
	proc_say(c, "check");
	proc_expect(c, "ok check", REACT_MS, NULL, 0);
	proc_kill(c);
	status_wait(base.clients, base.pool_bytes, "after SIGKILL of the victim");

	next = client_start("next", "churn", "--pattern", "0xe6", "--mode", "mixed", "--rounds",
			    "10", NULL);
	proc_finish(next, CLIENT_RUN_MS);
	assert_daemon_alive();
}

/* The daemon SIGKILLed while a client holds pages; a new daemon on the
 * same socket; the client goes on throughout and reconnects. */
static void test_daemon_restart(void **state)
{
	struct proc *c;
	uint64_t ready_before;

	c = client_start("survivor", "restart", "--pattern", "0x7e", "--pages", "2", NULL);
	proc_expect(c, "held", REACT_MS, NULL, 0);
	ready_before = line_value(c->last_stats, "alloc_ready");
	proc_kill(env.daemon);
	proc_say(c, "go");
	proc_expect(c, "disconnected", 2 * REACT_MS, NULL, 0);
	assert_int_equal(line_value(c->last_stats, "connected"), 0);
	daemon_start();
	proc_say(c, "go");
	proc_finish(c, CLIENT_RUN_MS);
	assert_int_equal(line_value(c->last_stats, "reconnects"), 1);
	assert_int_equal(line_value(c->last_stats, "connected"), 1);
	assert_true(line_value(c->last_stats, "alloc_ready") > ready_before);
	assert_daemon_alive();
}

/* --------------------------------------------------------------- fork */

static void test_fork(void **state)
{
	struct proc *c = client_start("fork", "fork", "--pattern", "0x3c", "--pages", "4", NULL);

	proc_finish(c, CLIENT_RUN_MS);
	assert_daemon_alive();
}

/* ---------------------------------------------------------- raw clients */

/* A client that speaks the protocol itself, to ask for what libhakclient
 * would not (pool sizes, many pools).  Static,
 * as the processes: the teardown closes what a failed test left open, so
 * that one failure does not hold a pool into the next test. */
struct raw_client {
	bool used;
	int sock;
	int fds[HAK_WELCOME_NFDS]; /* pool, control, doorbell */
	void *ctrl;
	size_t ctrl_size;
	struct hak_ctrl_hdr hdr;
};

#define MAX_RAW 16

static struct raw_client raws[MAX_RAW];

static struct raw_client *raw_new(void)
{
	for (int i = 0; i < MAX_RAW; i++)
		if (!raws[i].used) {
			memset(&raws[i], 0, sizeof(raws[i]));
			raws[i].used = true;
			raws[i].sock = -1;
			for (int k = 0; k < HAK_WELCOME_NFDS; k++)
				raws[i].fds[k] = -1;
			return &raws[i];
		}
	fail_msg("more than %d raw clients", MAX_RAW);
	return NULL;
}

static void raw_close(struct raw_client *rc)
{
	if (!rc->used)
		return;
	if (rc->ctrl)
		munmap(rc->ctrl, rc->ctrl_size);
	for (int i = 0; i < HAK_WELCOME_NFDS; i++)
		if (rc->fds[i] >= 0)
			close(rc->fds[i]);
	if (rc->sock >= 0)
		close(rc->sock);
	rc->used = false;
}

static void raw_close_all(void)
{
	for (int i = 0; i < MAX_RAW; i++)
		raw_close(&raws[i]);
}

/* HELLO asking pool_bytes (0: the default): 0 and, in *out, a client with
 * its control segment mapped on WELCOME; the REFUSE's error otherwise. */
static int raw_hello(uint64_t pool_bytes, struct raw_client **out)
{
	struct raw_client *rc = raw_new();
	struct hak_msg_hello hello;
	struct hak_msg_welcome w;
	struct hak_msg_refuse refuse;
	char buf[HAK_MSG_MAX];
	int nfds = 0;
	ssize_t n;

	rc->sock = connect_sock();
	assert_true(rc->sock >= 0);
	memset(&hello, 0, sizeof(hello));
	hak_proto_hdr_init(&hello.h, HAK_MSG_HELLO, sizeof(hello));
	hello.pool_bytes = pool_bytes;
	assert_int_equal(hak_sock_send(rc->sock, &hello, sizeof(hello), NULL, 0), 0);
	n = hak_sock_recv(rc->sock, buf, sizeof(buf), rc->fds, HAK_WELCOME_NFDS, &nfds, 0);
	assert_true(n > 0);
	if (hak_proto_decode_refuse(buf, (size_t)n, &refuse) == 0) {
		assert_int_equal(nfds, 0);
		raw_close(rc);
		return refuse.error;
	}
	assert_int_equal(hak_proto_decode_welcome(buf, (size_t)n, &w), 0);
	assert_int_equal(nfds, HAK_WELCOME_NFDS);
	rc->ctrl_size = w.ctrl_size;
	rc->ctrl = mmap(NULL, rc->ctrl_size, PROT_READ | PROT_WRITE, MAP_SHARED, rc->fds[1], 0);
	if (rc->ctrl == MAP_FAILED) {
		rc->ctrl = NULL;
		fail_msg("mmap of the control segment: %s", strerror(errno));
	}
	memcpy(&rc->hdr, rc->ctrl, sizeof(rc->hdr));
	assert_int_equal(hak_layout_validate(&rc->hdr, w.ctrl_size, w.pool_size), 0);
	*out = rc;
	return 0;
}

/* ------------------------------------------------------------- rule 6 */

/* A client asking more than pool_size_max is refused; one asking within
 * it gets what it asked for, no more. */
static void test_quota(void **state)
{
	struct raw_client *rc;

	assert_true(raw_hello(TEST_POOL_MAX * 4, &rc) < 0);
	assert_int_equal(raw_hello(TEST_POOL_MAX, &rc), 0);
	assert_true(rc->hdr.pool_size <= TEST_POOL_MAX);
	raw_close(rc);
	status_wait(0, 0, "after the quota test");
	assert_daemon_alive();
}

#define BUDGET_TRIES 16

/* Clients of the default pool size until the global budget refuses one:
 * the pools together never exceed it, and all of it comes back. */
static void test_budget(void **state)
{
	struct raw_client *rc[BUDGET_TRIES];
	unsigned n = 0;
	int r = 0;

	status_wait(0, 0, "before the budget test");
	while (n < BUDGET_TRIES && (r = raw_hello(0, &rc[n])) == 0)
		n++;
	if (r == 0)
		fail_msg("%u pools of %llu bytes, no refusal: no global budget", n,
			 (unsigned long long)TEST_POOL);
	assert_true(n >= 1);
	assert_true(status_now().pool_bytes <= TEST_BUDGET);
	assert_true(n * TEST_POOL <= TEST_BUDGET);
	for (unsigned i = 0; i < n; i++)
		raw_close(rc[i]);
	status_wait(0, 0, "after closing every pool");
	assert_daemon_alive();
}

/* ----------------------------------------------------------------- main */

static const char *exe_env(const char *name)
{
	const char *v = getenv(name);

	return v && access(v, X_OK) == 0 ? v : NULL;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_zero_after_pattern, test_teardown),
		cmocka_unit_test_teardown(test_dirty_only_own_pattern, test_teardown),
		cmocka_unit_test_teardown(test_zero_ring_dry, test_teardown),
		cmocka_unit_test_teardown(test_zero_through_trims, test_teardown),
		cmocka_unit_test_teardown(test_hot_path, test_teardown),
		cmocka_unit_test_teardown(test_clients_isolated, test_teardown),
		cmocka_unit_test_teardown(test_threads, test_teardown),
		cmocka_unit_test_teardown(test_fork, test_teardown),
		cmocka_unit_test_teardown(test_client_killed, test_teardown),
		cmocka_unit_test_teardown(test_quota, test_teardown),
		cmocka_unit_test_teardown(test_budget, test_teardown),
		/* Last: it replaces the daemon. */
		cmocka_unit_test_teardown(test_daemon_restart, test_teardown),
	};
	int r;

	env.hakzerod = exe_env("HAKZEROD");
	env.testclient = exe_env("HAK_TESTCLIENT");
	env.hakctl = exe_env("HAKCTL");
	if (!env.hakzerod || !env.testclient) {
		printf("SKIP: $HAKZEROD and $HAK_TESTCLIENT must name built programs "
		       "(run through `make check`)\n");
		return EXIT_SKIP;
	}
	/* A client that dies while we write to its stdin is a test failure,
	 * reported as such, not a SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	atexit(kill_all);
	r = cmocka_run_group_tests(tests, group_setup, group_teardown);
	return r == 0 ? 0 : 1;
}
