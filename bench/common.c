/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What every scenario needs: clocks, the CPU time of a process, the daemon
 * (its pid, its counters, waiting for it to finish what a run gave it,
 * stopping it), and the client handle.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "hak_proto.h"

#define ADMIN_TIMEOUT_MS 2000
/* The daemon is idle when it spent less than this much CPU in each of two
 * consecutive windows (its 10 ms tick costs a few microseconds). */
#define QUIET_WINDOW_NS (2 * 1000 * 1000ull)
#define QUIET_CPU_NS (20 * 1000ll)
#define QUIET_MAX_NS (500 * 1000 * 1000ull)
/* After connecting: the library prefaults the pool in the background
 * (io_uring), which must not land in the first measurements. */
#define SETTLE_NS (300 * 1000 * 1000ull)

void die(const char *fmt, ...)
{
	va_list ap;

	fputs("hakbench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_FAIL);
}

uint64_t parse_count(const char *s, const char *what, uint64_t max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || end == s || *s == '-' || v == 0 || v > max) {
		fprintf(stderr, "hakbench: %s must be 1..%" PRIu64 ", not '%s'\n", what, max, s);
		exit(EXIT_USAGE);
	}
	return v;
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

uint64_t now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t thread_cpu_ns(void)
{
	return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

uint64_t process_faults(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)ru.ru_minflt + (uint64_t)ru.ru_majflt;
}

void sleep_ns(uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / NS_PER_SEC),
			      .tv_nsec = (long)(ns % NS_PER_SEC)};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* CPU time of every thread of pid, in ns (schedstat: ns precision, where
 * /proc/PID/stat counts in clock ticks). */
int64_t process_cpu_ns(pid_t pid)
{
	char path[64];
	struct dirent *e;
	int64_t total = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		unsigned long long ns;
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%.16s/schedstat", (int)pid, e->d_name);
		f = fopen(path, "re");
		if (!f)
			continue; /* the thread just ended */
		if (fscanf(f, "%llu", &ns) == 1)
			total += (int64_t)ns;
		fclose(f);
	}
	closedir(d);
	return total;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double median(double *v, unsigned n)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(v[0]), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

const char *size_name(size_t bytes, char *buf, size_t len)
{
	if (bytes % MIB == 0)
		snprintf(buf, len, "%zu MiB", (size_t)(bytes / MIB));
	else
		snprintf(buf, len, "%zu KiB", (size_t)(bytes / KIB));
	return buf;
}

/* ---- the daemon ---- */

bool bench_admin_request(const char *path, uint32_t cmd, char *out, size_t len)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct hak_msg_admin m = {0};
	union {
		struct hak_msg_admin_reply r;
		char buf[HAK_MSG_MAX + 1];
	} u;
	struct pollfd pfd;
	ssize_t n = -1;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return false;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	hak_proto_hdr_init(&m.h, HAK_MSG_ADMIN, sizeof(m));
	m.cmd = cmd;
	m.flags = HAK_ADMIN_F_JSON;
	pfd = (struct pollfd){.fd = fd, .events = POLLIN};
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    hak_sock_send(fd, &m, sizeof(m), NULL, 0) == 0 && poll(&pfd, 1, ADMIN_TIMEOUT_MS) == 1)
		n = hak_sock_recv(fd, u.buf, HAK_MSG_MAX, NULL, 0, NULL, 0);
	close(fd);
	if (n <= 0 || hak_proto_check(u.buf, (size_t)n) != HAK_MSG_ADMIN_REPLY || u.r.status != 0)
		return false;
	u.buf[n] = '\0';
	snprintf(out, len, "%s", u.r.text);
	return true;
}

bool bench_json_u64(const char *text, const char *key, uint64_t *v)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(text, pat);
	if (!p)
		return false;
	*v = strtoull(p + strlen(pat), NULL, 10);
	return true;
}

static pid_t daemon_pid_from_status(const char *path)
{
	char text[HAK_MSG_MAX];
	uint64_t pid;

	if (!bench_admin_request(path, HAK_ADMIN_STATUS, text, sizeof(text)) ||
	    !bench_json_u64(text, "pid", &pid))
		return 0;
	return (pid_t)pid;
}

struct daemon_counters daemon_counters(const struct bench *b)
{
	struct daemon_counters dc = {0};
	char text[HAK_MSG_MAX];
	const char *m;

	if (!bench_admin_request(bench_socket_path(b->o), HAK_ADMIN_STATS, text, sizeof(text)))
		return dc;
	dc.ok = bench_json_u64(text, "zeroed_pages", &dc.zeroed_pages) &&
		bench_json_u64(text, "zero_ns", &dc.zero_ns);
	if (bench_admin_request(bench_socket_path(b->o), HAK_ADMIN_STATUS, text, sizeof(text)) &&
	    (m = strstr(text, "\"zero_method\":\"")))
		sscanf(m + strlen("\"zero_method\":\""), "%15[^\"]", dc.zero_method);
	return dc;
}

int64_t daemon_cpu_ns(const struct bench *b)
{
	return b->daemon_pid ? process_cpu_ns(b->daemon_pid) : -1;
}

int64_t daemon_quiesce(const struct bench *b)
{
	int64_t last = daemon_cpu_ns(b), cpu;
	uint64_t t0 = now_ns();
	unsigned quiet = 0;

	if (last < 0)
		return -1;
	while (quiet < 2 && now_ns() - t0 < QUIET_MAX_NS) {
		sleep_ns(QUIET_WINDOW_NS);
		cpu = daemon_cpu_ns(b);
		if (cpu < 0)
			return -1;
		quiet = cpu - last < QUIET_CPU_NS ? quiet + 1 : 0;
		last = cpu;
	}
	return last;
}

bool daemon_pause(const struct bench *b, bool stop)
{
	return b->daemon_pid && kill(b->daemon_pid, stop ? SIGSTOP : SIGCONT) == 0;
}

/* ---- the client ---- */

static void log_stderr(void *data, int priority, const char *file, int line, const char *fn,
		       const char *format, va_list args) __attribute__((format(printf, 6, 0)));

static void log_stderr(void *data, int priority, const char *file, int line, const char *fn,
		       const char *format, va_list args)
{
	fputs("hakbench: libhakclient: ", stderr);
	vfprintf(stderr, format, args);
	fputc('\n', stderr);
}

const char *bench_socket_path(const struct options *o)
{
	const char *env = getenv(HAK_SOCKET_ENV);

	if (o->socket)
		return o->socket;
	return env && *env ? env : HAK_DEFAULT_SOCKET;
}

void bench_open(struct bench *b, const struct options *o)
{
	int r = hak_client_new(&b->client);

	b->o = o;
	if (r < 0)
		die("hak_client_new: %s", strerror(-r));
	hak_client_set_log_fn(b->client, log_stderr, NULL);
	hak_client_set_mode(b->client, HAK_MODE_SHARED);
	if (o->socket && (r = hak_client_set_socket(b->client, o->socket)) < 0)
		die("--socket %s: %s", o->socket, strerror(-r));
	r = hak_client_connect(b->client);
	if (r < 0 && !o->allow_fallback)
		die("cannot connect to hakzerod at %s: %s\n"
		    "Start the daemon (or point --socket / $%s at it); --allow-fallback measures "
		    "the library's fallback path without a daemon.",
		    bench_socket_path(o), strerror(-r), HAK_SOCKET_ENV);
	if (r < 0) {
		fprintf(stderr,
			"hakbench: no daemon at %s (%s): measuring the fallback path, "
			"as --allow-fallback asks\n",
			bench_socket_path(o), strerror(-r));
		return;
	}
	b->daemon_pid =
		o->daemon_pid ? o->daemon_pid : daemon_pid_from_status(bench_socket_path(o));
	if (!b->daemon_pid)
		fprintf(stderr, "hakbench: the daemon's pid is unknown (admin STATUS refused; "
				"--daemon-pid gives it): its CPU is not counted\n");
	sleep_ns(SETTLE_NS);
	daemon_quiesce(b);
}

void bench_close(struct bench *b)
{
	hak_client_unref(b->client);
	b->client = NULL;
}

bool bench_connected(const struct bench *b)
{
	return b->client && hak_client_is_connected(b->client) == 1;
}

struct hak_client_stats bench_stats(const struct bench *b)
{
	struct hak_client_stats st = {0};

	if (b->client)
		hak_client_get_stats(b->client, &st, sizeof(st));
	return st;
}

void stats_add_delta(struct hak_client_stats *sum, const struct hak_client_stats *a,
		     const struct hak_client_stats *z)
{
	sum->alloc_ready += z->alloc_ready - a->alloc_ready;
	sum->alloc_dirty += z->alloc_dirty - a->alloc_dirty;
	sum->alloc_inline_zero += z->alloc_inline_zero - a->alloc_inline_zero;
	sum->alloc_mmap += z->alloc_mmap - a->alloc_mmap;
	sum->alloc_large += z->alloc_large - a->alloc_large;
	sum->doorbells += z->doorbells - a->doorbells;
	sum->returned += z->returned - a->returned;
}
