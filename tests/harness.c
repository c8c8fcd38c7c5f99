/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The harness of the real-daemon tests: see harness.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hak_proto.h"
#include "harness.h"

#define ARGS_MAX 40
/* The test programs h_init looks for: hak-client, hak-hostile. */
#define SIBLINGS_MAX 2

void (*h_fail_hook)(const char *msg);
int h_child_stderr = -1;
struct h_env h_env;
struct h_proc *h_daemon;
void (*h_daemon_pre_exec)(void);
static struct h_proc procs[H_MAX_PROCS];
static off_t log_flushed;

/* ------------------------------------------------------------ failing */

void h_fail(const char *fmt, ...)
{
	char msg[2 * H_LINE];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	h_log_flush();
	if (h_fail_hook)
		h_fail_hook(msg);
	fprintf(stderr, "FAIL: %s\n", msg);
	exit(1);
}

/* -------------------------------------------------------- environment */

static const char *exe_env(const char *name)
{
	const char *v = getenv(name);

	return v && *v && access(v, X_OK) == 0 ? v : NULL;
}

/* A program built next to this test (tests/), unless the environment
 * names another. */
static const char *sibling(const char *env, const char *prog)
{
	static char paths[SIBLINGS_MAX][PATH_MAX];
	static unsigned n;
	char self[PATH_MAX];
	ssize_t len;

	if (exe_env(env))
		return exe_env(env);
	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len <= 0 || n >= SIBLINGS_MAX)
		return NULL;
	self[len] = '\0';
	snprintf(paths[n], sizeof(paths[n]), "%s/%s", dirname(self), prog);
	return access(paths[n], X_OK) == 0 ? paths[n++] : NULL;
}

/* Whether every program in need was found. */
static bool have_programs(unsigned need)
{
	return h_env.hakzerod && (!(need & H_NEED_CLIENT) || h_env.client) &&
	       (!(need & H_NEED_HOSTILE) || h_env.hostile);
}

int h_init_need(const char *name, const char *argv0, unsigned need)
{
	const char *tmp = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";

	h_env.hakzerod = exe_env("HAKZEROD");
	h_env.hakctl = exe_env("HAKCTL");
	h_env.client = sibling("HAK_CLIENT", "hak-client");
	h_env.hostile = sibling("HAK_HOSTILE", "hak-hostile");
	if (!have_programs(need)) {
		printf("SKIP: %s: $HAKZEROD and the test programs%s%s must be built (run "
		       "through `make check`)\n",
		       argv0, need & H_NEED_CLIENT ? " hak-client" : "",
		       need & H_NEED_HOSTILE ? " hak-hostile" : "");
		return H_EXIT_SKIP;
	}
	if ((size_t)snprintf(h_env.dir, sizeof(h_env.dir), "%s/hak-%s-XXXXXX", tmp, name) >=
	    sizeof(h_env.dir)) {
		printf("SKIP: TMPDIR %s is too long for a socket path\n", tmp);
		return H_EXIT_SKIP;
	}
	if (!mkdtemp(h_env.dir)) {
		printf("mkdtemp %s: %s\n", h_env.dir, strerror(errno));
		return 1;
	}
	snprintf(h_env.sock, sizeof(h_env.sock), "%s/s.sock", h_env.dir);
	snprintf(h_env.conf, sizeof(h_env.conf), "%s/test.conf", h_env.dir);
	snprintf(h_env.log, sizeof(h_env.log), "%s/hakzerod.log", h_env.dir);
	/* A client that dies while we write to its stdin is reported as a
	 * failure by the test, not as a SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

int h_init(const char *name, const char *argv0)
{
	return h_init_need(name, argv0, H_NEED_CLIENT | H_NEED_HOSTILE);
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

void h_cleanup(void)
{
	for (int i = 0; i < H_MAX_PROCS; i++)
		if (procs[i].used)
			h_proc_release(&procs[i]);
	h_daemon = NULL;
	h_log_flush();
	if (h_env.dir[0])
		remove_dir(h_env.dir);
	h_env.dir[0] = '\0';
}

void h_write_conf(const char *fmt, ...)
{
	struct group *gr = getgrgid(getegid());
	FILE *f = fopen(h_env.conf, "w");
	char text[4096];
	va_list ap;

	h_check(f, "cannot write %s: %s", h_env.conf, strerror(errno));
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	fputs(text, f);
	if (gr)
		fprintf(f, "\nadmin_group %s\n", gr->gr_name);
	if (!strstr(text, "log_level"))
		fprintf(f, "log_level info\n");
	h_check(fclose(f) == 0, "writing %s: %s", h_env.conf, strerror(errno));
}

/* ---------------------------------------------------------- processes */

static struct h_proc *proc_new(const char *name)
{
	for (int i = 0; i < H_MAX_PROCS; i++)
		if (!procs[i].used) {
			memset(&procs[i], 0, sizeof(procs[i]));
			procs[i].used = true;
			snprintf(procs[i].name, sizeof(procs[i].name), "%s", name);
			procs[i].in = procs[i].out = -1;
			return &procs[i];
		}
	h_fail("more than %d processes", H_MAX_PROCS);
}

/* Set by h_client_as for the next spawn only. */
static struct {
	bool set;
	uid_t uid;
	gid_t gid;
} spawn_as;

/* In the child before exec: die with the test; stdio wired up. */
static void child_setup(pid_t parent, const int in[2], const int out[2], int err_fd)
{
	if (spawn_as.set &&
	    (setgroups(0, NULL) < 0 || setgid(spawn_as.gid) < 0 || setuid(spawn_as.uid) < 0))
		_exit(126);
	/* After setuid, which clears it. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	signal(SIGPIPE, SIG_DFL);
	dup2(in[0], STDIN_FILENO);
	dup2(out[1], STDOUT_FILENO);
	if (err_fd >= 0)
		dup2(err_fd, STDERR_FILENO);
}

static struct h_proc *spawn(const char *name, char *const argv[], int err_fd,
			    void (*pre_exec)(void))
{
	int in[2], out[2];
	pid_t parent = getpid();
	struct h_proc *p = proc_new(name);

	h_check(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0, "pipe: %s",
		strerror(errno));
	fflush(NULL);
	p->pid = fork();
	h_check(p->pid >= 0, "fork: %s", strerror(errno));
	if (p->pid == 0) {
		child_setup(parent, in, out, err_fd);
		if (pre_exec)
			pre_exec();
		execv(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	p->in = in[1];
	p->out = out[0];
	return p;
}

struct h_proc *h_proc_start(const char *name, char *const argv[])
{
	return spawn(name, argv, h_child_stderr, NULL);
}

struct h_proc *h_prog_va(const char *prog, const char *name, const char *cmd, va_list ap)
{
	char *argv[ARGS_MAX];
	const char *a;
	int n = 0;

	h_check(prog, "%s: its program was not found (not built, or not asked of h_init_need)",
		name);
	argv[n++] = (char *)prog;
	argv[n++] = (char *)cmd;
	argv[n++] = "--socket";
	argv[n++] = h_env.sock;
	while ((a = va_arg(ap, const char *)) && n < ARGS_MAX - 1)
		argv[n++] = (char *)a;
	argv[n] = NULL;
	return h_proc_start(name, argv);
}

struct h_proc *h_client(const char *name, const char *cmd, ...)
{
	struct h_proc *p;
	va_list ap;

	va_start(ap, cmd);
	p = h_prog_va(h_env.client, name, cmd, ap);
	va_end(ap);
	return p;
}

struct h_proc *h_client_as(uid_t uid, gid_t gid, const char *name, const char *cmd, ...)
{
	struct h_proc *p;
	va_list ap;

	spawn_as.set = true;
	spawn_as.uid = uid;
	spawn_as.gid = gid;
	va_start(ap, cmd);
	p = h_prog_va(h_env.client, name, cmd, ap);
	va_end(ap);
	spawn_as.set = false;
	return p;
}

struct h_proc *h_hostile(const char *name, const char *cmd, ...)
{
	struct h_proc *p;
	va_list ap;

	va_start(ap, cmd);
	p = h_prog_va(h_env.hostile, name, cmd, ap);
	va_end(ap);
	return p;
}

static void close_pipes(struct h_proc *p)
{
	if (p->in >= 0)
		close(p->in);
	if (p->out >= 0)
		close(p->out);
	p->in = p->out = -1;
}

/* Takes one whole line out of the buffer. */
static bool take_line(struct h_proc *p, char *line, size_t size)
{
	char *nl = memchr(p->buf, '\n', p->len);
	size_t l;

	if (!nl)
		return false;
	l = (size_t)(nl - p->buf);
	snprintf(line, size, "%.*s", (int)l, p->buf);
	memmove(p->buf, nl + 1, p->len - l - 1);
	p->len -= l + 1;
	if (!p->quiet)
		fprintf(stderr, "  [%s] %s\n", p->name, line);
	if (strncmp(line, "stats", 5) == 0)
		snprintf(p->last_stats, sizeof(p->last_stats), "%s", line);
	if (strncmp(line, "fail", 4) == 0 && !p->last_fail[0])
		snprintf(p->last_fail, sizeof(p->last_fail), "%s", line);
	return true;
}

/* Reads what is there; false at end of output. */
static bool fill(struct h_proc *p)
{
	ssize_t n = read(p->out, p->buf + p->len, sizeof(p->buf) - 1 - p->len);

	if (n > 0) {
		p->len += (size_t)n;
		return true;
	}
	if (n < 0 && errno == EINTR)
		return true;
	close(p->out);
	p->out = -1;
	return false;
}

int h_proc_line(struct h_proc *p, char *line, size_t size, uint64_t deadline_ms)
{
	for (;;) {
		struct pollfd pfd = {.fd = p->out, .events = POLLIN};
		uint64_t now;
		int r;

		if (take_line(p, line, size))
			return 1;
		if (p->len == sizeof(p->buf) - 1) {
			/* A line longer than the buffer: hand it out cut. */
			p->buf[p->len++] = '\n';
			continue;
		}
		if (p->out < 0)
			return 0;
		/* At least one look, even past the deadline (try_line). */
		now = tu_now_ms();
		r = poll(&pfd, 1, now < deadline_ms ? (int)(deadline_ms - now) : 0);
		if (r > 0)
			fill(p);
		else if (r == 0)
			return -ETIMEDOUT;
	}
}

int h_proc_try_line(struct h_proc *p, char *line, size_t size)
{
	return h_proc_line(p, line, size, tu_now_ms());
}

void h_proc_expect(struct h_proc *p, const char *prefix, unsigned timeout_ms, char *line,
		   size_t size)
{
	uint64_t deadline = tu_now_ms() + timeout_ms;
	char buf[H_LINE];
	int r;

	if (!line) {
		line = buf;
		size = sizeof(buf);
	}
	while ((r = h_proc_line(p, line, size, deadline)) == 1) {
		if (strncmp(line, prefix, strlen(prefix)) == 0)
			return;
		if (p->last_fail[0])
			h_fail("%s: %s", p->name, p->last_fail);
	}
	h_fail("%s: %s while waiting for '%s'", p->name, r == 0 ? "output ended" : "timed out",
	       prefix);
}

void h_proc_say(struct h_proc *p, const char *fmt, ...)
{
	char line[H_LINE];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	line[n++] = '\n';
	h_check(p->in >= 0 && write(p->in, line, (size_t)n) == n, "%s: cannot write its stdin",
		p->name);
}

int h_proc_reap(struct h_proc *p, unsigned timeout_ms)
{
	uint64_t deadline = tu_now_ms() + timeout_ms;

	if (p->pid <= 0)
		return p->status;
	/* Rare path, no SIGCHLD plumbing: poll the exit. */
	while (waitpid(p->pid, &p->status, WNOHANG) == 0) {
		if (tu_now_ms() >= deadline) {
			kill(p->pid, SIGKILL);
			waitpid(p->pid, &p->status, 0);
			break;
		}
		tu_sleep_ms(1);
	}
	p->pid = 0;
	close_pipes(p);
	return p->status;
}

void h_proc_finish(struct h_proc *p, unsigned timeout_ms, const char *last_prefix, char *line,
		   size_t size)
{
	uint64_t deadline = tu_now_ms() + timeout_ms;
	char buf[H_LINE];
	int r;

	if (p->in >= 0) {
		close(p->in);
		p->in = -1;
	}
	while ((r = h_proc_line(p, buf, sizeof(buf), deadline)) == 1)
		if (last_prefix && strncmp(buf, last_prefix, strlen(last_prefix)) == 0)
			snprintf(line, size, "%s", buf);
	h_proc_reap(p, r == 0 ? H_REACT_MS : 0);
	if (p->last_fail[0])
		h_fail("%s: %s", p->name, p->last_fail);
	if (r != 0)
		h_fail("%s: did not finish within %u ms (killed)", p->name, timeout_ms);
	if (!WIFEXITED(p->status) || WEXITSTATUS(p->status) != 0)
		h_fail("%s: exited with wait status %#x", p->name, p->status);
}

void h_proc_kill(struct h_proc *p, int sig)
{
	if (p->pid <= 0)
		return;
	kill(p->pid, sig);
	if (sig == SIGKILL) {
		waitpid(p->pid, &p->status, 0);
		p->pid = 0;
		close_pipes(p);
	}
}

void h_proc_release(struct h_proc *p)
{
	h_proc_kill(p, SIGKILL);
	p->used = false;
}

void h_procs_release_all(void)
{
	for (int i = 0; i < H_MAX_PROCS; i++)
		if (procs[i].used && &procs[i] != h_daemon)
			h_proc_release(&procs[i]);
}

uint64_t h_line_u64(const char *line, const char *key)
{
	char pat[64];
	const char *s;

	snprintf(pat, sizeof(pat), "%s=", key);
	for (s = strstr(line, pat); s; s = strstr(s + 1, pat))
		if (s == line || s[-1] == ' ')
			return strtoull(s + strlen(pat), NULL, 0);
	h_fail("no %s= in '%s'", key, line);
}

/* ------------------------------------------------------------- daemon */

/* The daemon replied to a status request, whatever the reply said. */
static bool answers(void)
{
	char reply[H_JSON];
	int r = h_admin(HAK_ADMIN_STATUS, 0, reply, sizeof(reply));

	return r == 0 || r == -EPERM || r == -EACCES;
}

void h_daemon_start(void)
{
	char *argv[] = {(char *)h_env.hakzerod,
			"--foreground",
			"--socket",
			h_env.sock,
			"--config",
			h_env.conf,
			NULL};
	uint64_t deadline = tu_now_ms() + H_START_MS;
	int log = open(h_env.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

	h_check(log >= 0, "open %s: %s", h_env.log, strerror(errno));
	h_daemon = spawn("hakzerod", argv, log, h_daemon_pre_exec);
	close(log);
	/* Nothing tells us when it serves, and a connection is not enough: a
	 * passed socket listens before the daemon runs, and the daemon binds
	 * its own before it measures its zeroing methods, which a loaded
	 * machine stretches past a client's 1 s handshake.  A reply to a
	 * request says its loop runs. */
	while (!answers()) {
		if (!h_daemon_alive())
			h_fail("hakzerod exited (wait status %#x) before serving",
			       h_daemon->status);
		if (tu_now_ms() > deadline)
			h_fail("hakzerod does not serve on %s after %d ms", h_env.sock, H_START_MS);
		tu_sleep_ms(H_POLL_MS);
	}
}

void h_daemon_restart(void)
{
	if (h_daemon)
		h_proc_release(h_daemon);
	h_daemon_start();
}

bool h_daemon_alive(void)
{
	struct h_proc *d = h_daemon;

	if (!d || d->pid <= 0)
		return false;
	if (waitpid(d->pid, &d->status, WNOHANG) == d->pid) {
		d->pid = 0;
		close_pipes(d);
		return false;
	}
	return true;
}

void h_daemon_assert_alive(void)
{
	if (!h_daemon_alive())
		h_fail("hakzerod died (wait status %#x)", h_daemon ? h_daemon->status : 0);
}

void h_daemon_kill(void)
{
	h_daemon_assert_alive();
	h_proc_kill(h_daemon, SIGKILL);
}

void h_daemon_stop(void)
{
	int st;

	h_daemon_assert_alive();
	kill(h_daemon->pid, SIGTERM);
	st = h_proc_reap(h_daemon, H_REACT_MS);
	h_check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "hakzerod did not stop cleanly: %#x", st);
}

int h_daemon_finish(void)
{
	int st;

	if (!h_daemon)
		return 0;
	if (!h_daemon_alive()) {
		fprintf(stderr, "FAIL: hakzerod died before the end (wait status %#x)\n",
			h_daemon->status);
		h_proc_release(h_daemon);
		h_daemon = NULL;
		h_log_flush();
		return -1;
	}
	kill(h_daemon->pid, SIGTERM);
	st = h_proc_reap(h_daemon, H_REACT_MS);
	h_proc_release(h_daemon);
	h_daemon = NULL;
	h_log_flush();
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	fprintf(stderr, "FAIL: hakzerod did not exit cleanly on SIGTERM (wait status %#x)\n", st);
	return -1;
}

pid_t h_daemon_pid(void)
{
	h_daemon_assert_alive();
	return h_daemon->pid;
}

/* --------------------------------------------------------------- logs */

void h_log_flush(void)
{
	char buf[8192];
	int fd = h_env.log[0] ? open(h_env.log, O_RDONLY | O_CLOEXEC) : -1;
	ssize_t n;

	if (fd < 0)
		return;
	if (lseek(fd, log_flushed, SEEK_SET) == log_flushed)
		while ((n = read(fd, buf, sizeof(buf))) > 0) {
			fwrite(buf, 1, (size_t)n, stderr);
			log_flushed += n;
		}
	close(fd);
}

void h_log_skip(void)
{
	struct stat st;

	if (h_env.log[0] && stat(h_env.log, &st) == 0)
		log_flushed = st.st_size;
}

unsigned h_log_count(const char *needle)
{
	FILE *f = fopen(h_env.log, "re");
	char line[H_LINE];
	unsigned n = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, needle))
			n++;
	fclose(f);
	return n;
}

void h_log_wait(const char *needle, unsigned n, unsigned timeout_ms)
{
	uint64_t deadline = tu_now_ms() + timeout_ms;
	unsigned got;

	while ((got = h_log_count(needle)) < n) {
		if (tu_now_ms() > deadline)
			h_fail("the daemon logged '%s' %u times, expected %u", needle, got, n);
		tu_sleep_ms(H_POLL_MS);
	}
}
