/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The programs of `hakbench apps`, each run unchanged under a setup's
 * environment: the workload programs (bench/apps/), numpy temporaries in
 * Debian's python3, a short program started many times, and Debian's
 * redis-server driven by redis-benchmark.  Page faults and max RSS come
 * from wait4() on the program itself (for redis, on the server, not on
 * redis-benchmark, which runs with no preload).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "apps.h"

#define NS_PER_SEC 1000000000ull
#define OUT_MAX 4096
#define REDIS_WAIT_STEP_MS 20
#define REDIS_WAIT_TRIES 250 /* 5 s for the server to listen */

/* numpy temporaries: np.zeros (calloc), np.ones (malloc and a fill) and
 * arithmetic making new arrays, on arrays of 1..64 MiB; the result is
 * checked so that a wrong page shows.  argv[1]: passes over the sizes. */
static const char numpy_script[] = "import sys, time, math\n"
				   "import numpy as np\n"
				   "reps = int(sys.argv[1])\n"
				   "sizes = [1, 2, 4, 8, 16, 32, 64]\n"
				   "s = 0.0\n"
				   "t0 = time.monotonic_ns()\n"
				   "for _ in range(reps):\n"
				   "    for mib in sizes:\n"
				   "        n = mib * 131072\n"
				   "        a = np.zeros(n)\n"
				   "        b = np.ones(n)\n"
				   "        c = a + b\n"
				   "        c *= 3.0\n"
				   "        d = np.sqrt(c) - b\n"
				   "        s += float(d[0]) + float(d[-1]) + float(a.max())\n"
				   "        del a, b, c, d\n"
				   "ns = time.monotonic_ns() - t0\n"
				   "want = reps * len(sizes) * 2 * (math.sqrt(3.0) - 1.0)\n"
				   "if abs(s - want) > 1e-6:\n"
				   "    sys.exit('numpy: wrong result %r, want %r' % (s, want))\n"
				   "print('RESULT ops=%d ns=%d' % (reps * len(sizes), ns))\n";

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/* ---- children ---- */

/* Starts argv under envp; its stdout into *out (a pipe) when out is set,
 * else to /dev/null; stderr to /dev/null when quiet. */
static pid_t spawn(char *const argv[], char *const envp[], int *out, bool quiet)
{
	int fds[2] = {-1, -1};
	pid_t pid;

	if (out && pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		pid = -errno;
	} else if (pid == 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		dup2(out ? fds[1] : null, STDOUT_FILENO);
		if (quiet)
			dup2(null, STDERR_FILENO);
		execve(argv[0], argv, envp);
		_exit(127);
	}
	if (out) {
		close(fds[1]);
		*out = pid > 0 ? fds[0] : -1;
		if (pid < 0)
			close(fds[0]);
	}
	return pid;
}

static uint64_t deadline(void)
{
	return now_ns() + (uint64_t)APPS_RUN_TIMEOUT_S * NS_PER_SEC;
}

/* Milliseconds until the deadline, for poll(). */
static int left_ms(uint64_t until)
{
	uint64_t t = now_ns();

	return t >= until ? 0 : (int)((until - t) / 1000000u) + 1;
}

/* Waits for pid; 0 when it exited 0, -ETIME when it was still running at
 * the deadline (it is killed: a program that hangs under one allocator
 * must not stop the suite), else -ECHILD. */
static int reap(pid_t pid, struct rusage *ru, uint64_t until)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0), status, ret = 0;
	struct pollfd p = {.fd = pidfd, .events = POLLIN};

	if (pidfd >= 0) {
		while (poll(&p, 1, left_ms(until)) < 0 && errno == EINTR)
			;
		if (!(p.revents & POLLIN)) {
			kill(pid, SIGKILL);
			ret = -ETIME;
		}
		close(pidfd);
	}
	while (wait4(pid, &status, 0, ru) < 0)
		if (errno != EINTR)
			return -errno;
	if (ret)
		return ret;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ECHILD;
}

/* Reads fd to its end, or -ETIME at the deadline. */
static int read_all(int fd, char *buf, size_t len, uint64_t until)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	size_t n = 0;
	ssize_t r = 1;
	int ret = 0;

	while (n + 1 < len && r != 0) {
		if (poll(&p, 1, left_ms(until)) == 0) {
			ret = -ETIME;
			break;
		}
		r = read(fd, buf + n, len - 1 - n);
		if (r < 0 && errno != EINTR && errno != EAGAIN)
			break;
		if (r > 0)
			n += (size_t)r;
	}
	buf[n] = '\0';
	close(fd);
	return ret;
}

/* Runs argv to its end; its stdout in out, its rusage in ru. */
static int run_capture(char *const argv[], const struct apps_env *env, char *out, size_t len,
		       struct rusage *ru)
{
	uint64_t until = deadline();
	int fd;
	pid_t pid = spawn(argv, env->v, &fd, false);

	if (pid < 0)
		return (int)pid;
	if (read_all(fd, out, len, until) < 0)
		kill(pid, SIGKILL);
	return reap(pid, ru, until);
}

static void sample_rusage(struct apps_sample *s, const struct rusage *ru)
{
	s->faults = (uint64_t)(ru->ru_minflt + ru->ru_majflt);
	s->maxrss_kib = (uint64_t)ru->ru_maxrss;
}

/* "RESULT ops=N ns=T" -> operations per second. */
static int parse_result(const char *out, struct apps_sample *s)
{
	const char *p = strstr(out, "RESULT ");
	uint64_t ops, ns;

	if (!p || sscanf(p, "RESULT ops=%" SCNu64 " ns=%" SCNu64, &ops, &ns) != 2 || !ns)
		return -EPROTO;
	s->score = (double)ops * (double)NS_PER_SEC / (double)ns;
	return 0;
}

static const char *num(char *buf, size_t len, uint64_t v)
{
	snprintf(buf, len, "%" PRIu64, v);
	return buf;
}

/* ---- the workload programs and numpy ---- */

/* Runs argv, its rusage and the result line it prints into out. */
static int run_measured(char *const argv[], const struct apps_env *env, struct apps_sample *out)
{
	char buf[OUT_MAX];
	struct rusage ru;
	int r = run_capture(argv, env, buf, sizeof(buf), &ru);

	if (r < 0)
		return r;
	sample_rusage(out, &ru);
	return parse_result(buf, out);
}

static int run_workload(const struct apps_ctx *c, const struct apps_job *j,
			const struct apps_env *env, struct apps_sample *out)
{
	char ops[24];
	char *argv[] = {(char *)c->workload, (char *)j->arg,
			(char *)num(ops, sizeof(ops), c->quick ? j->quick_ops : j->ops), NULL};

	return run_measured(argv, env, out);
}

static int run_numpy(const struct apps_ctx *c, const struct apps_job *j, const struct apps_env *env,
		     struct apps_sample *out)
{
	char ops[24];
	char *argv[] = {(char *)c->python, "-c", (char *)numpy_script,
			(char *)num(ops, sizeof(ops), c->quick ? j->quick_ops : j->ops), NULL};

	return run_measured(argv, env, out);
}

/* The same small program started ops times in a row: starts per second
 * of wall time (start-up and exit included), faults per start, the
 * largest max RSS. */
static int run_short(const struct apps_ctx *c, const struct apps_job *j, const struct apps_env *env,
		     struct apps_sample *out)
{
	char *argv[] = {(char *)c->workload, (char *)j->arg, "1", NULL};
	uint64_t starts = c->quick ? j->quick_ops : j->ops, faults = 0, t0 = now_ns();

	out->maxrss_kib = 0;
	for (uint64_t i = 0; i < starts; i++) {
		struct rusage ru;
		pid_t pid = spawn(argv, env->v, NULL, false);
		int r = pid < 0 ? (int)pid : reap(pid, &ru, deadline());

		if (r < 0)
			return r;
		faults += (uint64_t)(ru.ru_minflt + ru.ru_majflt);
		if ((uint64_t)ru.ru_maxrss > out->maxrss_kib)
			out->maxrss_kib = (uint64_t)ru.ru_maxrss;
	}
	out->score = (double)starts * (double)NS_PER_SEC / (double)(now_ns() - t0);
	out->faults = faults / starts;
	return 0;
}

/* ---- redis ---- */

/* name in $PATH, into out; false when it is not there. */
static bool which(const char *name, char *out, size_t len)
{
	const char *path = getenv("PATH");
	char copy[4096], *save = NULL;

	snprintf(copy, sizeof(copy), "%s", path && *path ? path : "/usr/bin:/bin");
	for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(out, len, "%s/%s", d, name);
		if (access(out, X_OK) == 0)
			return true;
	}
	return false;
}

static bool can_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (strlen(path) >= sizeof(sa.sun_path) || fd < 0) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* redis-benchmark --csv: "SET","12345.67",... per test. */
static int parse_redis(const char *out, const struct apps_job *j, struct apps_sample *s)
{
	unsigned found = 0;

	for (const char *l = out; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		char test[32];
		double rps;

		if (sscanf(l, "\"%31[^\"]\",\"%lf\"", test, &rps) != 2)
			continue;
		for (unsigned m = 0; m < APPS_MAX_METRICS && j->metrics[m]; m++)
			if (strcmp(test, j->metrics[m]) == 0 && rps > 0) {
				s[m].score = rps;
				found++;
			}
	}
	return found == apps_job_metrics(j) ? 0 : -EPROTO;
}

static int redis_bench(const struct apps_ctx *c, const struct apps_job *j, const char *sock,
		       char *out, size_t len)
{
	char bench[PATH_MAX], n[24];
	char *argv[] = {bench, "-s", (char *)sock, "-t", "set,get,lpush", "-d", (char *)j->arg,
			"-n",  n,    "--csv",	   NULL};
	struct apps_env clean;
	struct rusage ru;

	if (!which("redis-benchmark", bench, sizeof(bench)))
		return -ENOENT;
	num(n, sizeof(n), c->quick ? j->quick_ops : j->ops);
	apps_env_clean(&clean);
	return run_capture(argv, &clean, out, len, &ru);
}

static int run_redis(const struct apps_ctx *c, const struct apps_job *j, const struct apps_env *env,
		     struct apps_sample *out)
{
	char server[PATH_MAX], sock[PATH_MAX], buf[OUT_MAX];
	char *argv[] = {server,
			"--port",
			"0",
			"--unixsocket",
			sock,
			"--save",
			"",
			"--appendonly",
			"no",
			"--dir",
			(char *)c->tmpdir,
			"--daemonize",
			"no",
			"--logfile",
			"",
			NULL};
	struct rusage ru;
	pid_t pid;
	int r = -ETIMEDOUT, r2;

	if (!which("redis-server", server, sizeof(server)))
		return -ENOENT;
	if (snprintf(sock, sizeof(sock), "%s/redis.sock", c->tmpdir) >= (int)sizeof(sock))
		return -ENAMETOOLONG;
	unlink(sock);
	pid = spawn(argv, env->v, NULL, true);
	if (pid < 0)
		return (int)pid;
	for (int i = 0; i < REDIS_WAIT_TRIES && r == -ETIMEDOUT; i++) {
		if (can_connect(sock))
			r = 0;
		else if (waitpid(pid, NULL, WNOHANG) == pid)
			return -ECHILD;
		else
			sleep_ms(REDIS_WAIT_STEP_MS);
	}
	if (r == 0)
		r = redis_bench(c, j, sock, buf, sizeof(buf));
	/* No persistence: SIGTERM makes it exit at once, saving nothing. */
	kill(pid, SIGTERM);
	r2 = reap(pid, &ru, deadline());
	if (r == 0)
		r = r2 < 0 ? r2 : parse_redis(buf, j, out);
	for (unsigned m = 0; m < apps_job_metrics(j); m++)
		sample_rusage(&out[m], &ru);
	return r;
}

/* ---- the table of programs ---- */

#define REDIS_WHAT                                                                                 \
	"Debian's redis-server (linked with the system jemalloc), unix socket, "                   \
	"--save '' --appendonly no, redis-benchmark -t set,get,lpush (50 clients)"

struct apps_job apps_jobs[] = {
	{"redis 16 KiB",
	 REDIS_WHAT ", 16 KiB values",
	 {"SET", "GET", "LPUSH"},
	 "requests/s",
	 run_redis,
	 "16384",
	 3000,
	 1000,
	 false,
	 NULL},
	{"redis 256 KiB",
	 REDIS_WHAT ", 256 KiB values",
	 {"SET", "GET", "LPUSH"},
	 "requests/s",
	 run_redis,
	 "262144",
	 150,
	 50,
	 false,
	 NULL},
	{"numpy temporaries",
	 "Debian's python3 and python3-numpy: np.zeros, np.ones, a + b, *=, np.sqrt on "
	 "float64 arrays of 1, 2, 4 ... 64 MiB",
	 {NULL},
	 "passes/s",
	 run_numpy,
	 NULL,
	 1,
	 1,
	 true,
	 NULL},
	{"large buffers",
	 "malloc of 4..24 MiB, every page written, free, one at a time",
	 {NULL},
	 "buffers/s",
	 run_workload,
	 "bigbuf",
	 12,
	 4,
	 true,
	 NULL},
	{"calloc",
	 "calloc of 64 KiB..2 MiB, each page checked to read 0 and written; 4 live",
	 {NULL},
	 "callocs/s",
	 run_workload,
	 "calloc",
	 400,
	 100,
	 true,
	 NULL},
	{"producer/consumer",
	 "blocks of 64 B..32 KiB malloc'd on one thread, freed on another",
	 {NULL},
	 "blocks/s",
	 run_workload,
	 "xthread",
	 40000,
	 10000,
	 false,
	 NULL},
	{"short-lived threads",
	 "threads started 4 at a time, each 4,000 malloc/free of 16 B..4 KiB, then exit",
	 {NULL},
	 "threads/s",
	 run_workload,
	 "threads",
	 120,
	 40,
	 false,
	 NULL},
	{"short program",
	 "a program using about 2 MiB (4,096 small blocks, 4 x 256 KiB), "
	 "started 50 times in a row (10 with --quick)",
	 {NULL},
	 "starts/s",
	 run_short,
	 "short",
	 50,
	 10,
	 false,
	 NULL},
};

const unsigned apps_njobs = sizeof(apps_jobs) / sizeof(apps_jobs[0]);

unsigned apps_job_metrics(const struct apps_job *j)
{
	unsigned n = 0;

	while (n < APPS_MAX_METRICS && j->metrics[n])
		n++;
	return n ? n : 1;
}

/* Whether python can import numpy, with no preload. */
static bool have_numpy(const struct apps_ctx *c)
{
	char *argv[] = {(char *)c->python, "-c", "import numpy", NULL};
	struct apps_env clean;
	struct rusage ru;
	pid_t pid;

	if (access(c->python, X_OK) != 0)
		return false;
	apps_env_clean(&clean);
	pid = spawn(argv, clean.v, NULL, true);
	return pid > 0 && reap(pid, &ru, deadline()) == 0;
}

void apps_jobs_probe(const struct apps_ctx *c)
{
	char path[PATH_MAX];
	bool redis = which("redis-server", path, sizeof(path)) &&
		     which("redis-benchmark", path, sizeof(path));
	bool workload = access(c->workload, X_OK) == 0;

	for (unsigned i = 0; i < apps_njobs; i++) {
		struct apps_job *j = &apps_jobs[i];

		if (j->run == run_redis && !redis)
			j->skip = "skipped: not installed (redis-server, redis-tools)";
		else if (j->run == run_numpy && !have_numpy(c))
			j->skip = "skipped: not installed (python3-numpy)";
		else if ((j->run == run_workload || j->run == run_short) && !workload)
			j->skip = "skipped: hakbench-workload not found";
	}
}
