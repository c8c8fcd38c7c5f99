/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hakbench: what a page from hakzerod costs against what a fresh anonymous
 * page costs.
 *
 *   hakbench page   for the 4 KiB, 64 KiB and 2 MiB classes, a steady-state
 *                   loop of allocate -> write one byte in every 4 KiB page
 *                   -> free, through libhakclient (method "hak", zero-filled
 *                   pages) and through mmap/munmap (method "mmap").
 *
 * A "page" below is always 4 KiB: ns_per_page and faults_per_page divide by
 * the number of 4 KiB pages touched, whatever the class.  Each timed run
 * touches --pages pages; the result is the median of --repeat runs, after
 * one untimed warm-up run.  The hak lines say how the library served the
 * timed allocations (ready ring, zeroed inline, mmap fallback), and, when
 * the daemon's pid is known, how much CPU the daemon spent per page: its
 * zeroing is the cost the client no longer pays, and it is not free.
 *
 * Nothing is reported for a measurement that failed: an error stops the
 * run with a message and a non-zero exit.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "hak_proto.h"
#include "hakclient.h"
#include "workloads.h"

#define PAGE 4096u
#define KIB 1024u
#define MIB (1024u * KIB)
/* 64 MiB per run: long enough that one run is not noise, short enough
 * that the mmap side of the 4 KiB class stays well under a second. */
#define DEFAULT_PAGES 16384u
#define DEFAULT_REPEATS 5u
#define MAX_REPEATS 1000u
/* Bytes of slots held at once (default): an allocator takes a run of
 * extents, then frees them; holding a batch, not one slot, keeps the loop
 * from being a same-slot ping-pong that no real program does. */
#define DEFAULT_BATCH_BYTES (256u * KIB)
#define BATCH_MAX 4096u
/* The target for the 4 KiB class. */
#define TARGET_CLASS (4 * KIB)
#define TARGET_FAULTS_PER_PAGE 0.01
#define TARGET_SPEEDUP 10.0
#define ADMIN_TIMEOUT_MS 2000
#define EXIT_FAIL 1
#define EXIT_USAGE 2

static const size_t class_sizes[] = {4 * KIB, 64 * KIB, 2 * MIB};
#define NR_CLASSES (sizeof(class_sizes) / sizeof(class_sizes[0]))

enum method { METHOD_MMAP, METHOD_HAK };
static const char *const method_names[] = {"mmap", "hak"};

struct options {
	const char *socket;
	bool json;
	bool allow_fallback;
	unsigned pages;
	unsigned repeats;
	unsigned batch_bytes;
};

/* One timed method on one class. */
struct result {
	enum method method;
	size_t class_bytes;
	double ns_median, ns_min, ns_max; /* per 4 KiB page */
	double faults_per_page;
	/* hak only: */
	struct hak_client_stats served; /* deltas over the timed runs */
	bool connected;			/* at the end of the timed runs */
	double daemon_cpu_ns;		/* per page; < 0: unknown */
};

struct bench {
	const struct options *o;
	struct hak_client *client;
	pid_t daemon_pid; /* 0: unknown */
	void *slots[BATCH_MAX];
};

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("hakbench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_FAIL);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t faults_now(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)ru.ru_minflt + (uint64_t)ru.ru_majflt;
}

/* ------------------------------------------------------- daemon CPU */

/* The daemon's pid from an admin STATUS (root or its admin group only;
 * without it the daemon's CPU is reported as unknown, not as zero). */
static pid_t daemon_pid_from_status(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct hak_msg_admin m;
	union {
		struct hak_msg_admin_reply r;
		char buf[HAK_MSG_MAX + 1];
	} u;
	struct pollfd pfd;
	const char *pid;
	ssize_t n;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return 0;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	memset(&m, 0, sizeof(m));
	hak_proto_hdr_init(&m.h, HAK_MSG_ADMIN, sizeof(m));
	m.cmd = HAK_ADMIN_STATUS;
	m.flags = HAK_ADMIN_F_JSON;
	pfd = (struct pollfd){.fd = fd, .events = POLLIN};
	n = -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    hak_sock_send(fd, &m, sizeof(m), NULL, 0) == 0 && poll(&pfd, 1, ADMIN_TIMEOUT_MS) == 1)
		n = hak_sock_recv(fd, u.buf, HAK_MSG_MAX, NULL, 0, NULL, 0);
	close(fd);
	if (n <= 0 || hak_proto_check(u.buf, (size_t)n) != HAK_MSG_ADMIN_REPLY || u.r.status != 0)
		return 0;
	u.buf[n] = '\0';
	pid = strstr(u.r.text, "\"pid\":");
	return pid ? (pid_t)strtol(pid + 6, NULL, 10) : 0;
}

/* CPU time of every thread of pid, in ns (schedstat: ns precision, where
 * /proc/PID/stat counts in clock ticks).  Returns -1 when unreadable. */
static int64_t process_cpu_ns(pid_t pid)
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
		f = fopen(path, "r");
		if (!f)
			continue; /* the thread just ended */
		if (fscanf(f, "%llu", &ns) == 1)
			total += (int64_t)ns;
		fclose(f);
	}
	closedir(d);
	return total;
}

/* ------------------------------------------------------------ the loop */

static unsigned batch_of(const struct options *o, size_t class_bytes)
{
	unsigned b = (unsigned)(o->batch_bytes / class_bytes);

	if (b < 1)
		b = 1;
	return b > BATCH_MAX ? BATCH_MAX : b;
}

/* Writes one byte in every 4 KiB page: the touch that faults on fresh
 * anonymous memory and not on a pool page. */
static void touch(void *p, size_t len)
{
	volatile char *c = p;

	for (size_t off = 0; off < len; off += PAGE)
		c[off] = 1;
}

static void take_hak(struct bench *b, size_t size, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		int r = hak_alloc(b->client, size, 0, &b->slots[i]);

		if (r < 0)
			die("hak_alloc(%zu): %s", size, strerror(-r));
		if (!(r & HAK_ALLOC_ZEROED))
			die("hak_alloc(%zu, 0) returned memory not marked zeroed", size);
	}
}

static void give_hak(struct bench *b, size_t size, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		int r = hak_free(b->client, b->slots[i], size);

		if (r < 0)
			die("hak_free(%zu): %s", size, strerror(-r));
	}
}

static void take_mmap(struct bench *b, size_t size, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		b->slots[i] = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				   -1, 0);
		if (b->slots[i] == MAP_FAILED)
			die("mmap(%zu): %s", size, strerror(errno));
	}
}

static void give_mmap(struct bench *b, size_t size, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (munmap(b->slots[i], size) < 0)
			die("munmap(%zu): %s", size, strerror(errno));
}

/* One run: pages 4 KiB pages' worth of slots, a batch at a time. */
static void run_once(struct bench *b, enum method m, size_t size, unsigned pages)
{
	size_t allocs = ((size_t)pages * PAGE + size - 1) / size;
	unsigned batch = batch_of(b->o, size);

	while (allocs > 0) {
		unsigned n = allocs < batch ? (unsigned)allocs : batch;

		if (m == METHOD_HAK)
			take_hak(b, size, n);
		else
			take_mmap(b, size, n);
		for (unsigned i = 0; i < n; i++)
			touch(b->slots[i], size);
		if (m == METHOD_HAK)
			give_hak(b, size, n);
		else
			give_mmap(b, size, n);
		allocs -= n;
	}
}

/* Pages a run really touches (whole slots). */
static uint64_t run_pages(size_t size, unsigned pages)
{
	size_t allocs = ((size_t)pages * PAGE + size - 1) / size;

	return (uint64_t)allocs * (size / PAGE);
}

static struct hak_client_stats stats_now(struct bench *b)
{
	struct hak_client_stats st = {0};

	if (b->client)
		hak_client_get_stats(b->client, &st, sizeof(st));
	return st;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void stats_delta(struct hak_client_stats *d, const struct hak_client_stats *a,
			const struct hak_client_stats *z)
{
	d->alloc_ready = z->alloc_ready - a->alloc_ready;
	d->alloc_dirty = z->alloc_dirty - a->alloc_dirty;
	d->alloc_inline_zero = z->alloc_inline_zero - a->alloc_inline_zero;
	d->alloc_mmap = z->alloc_mmap - a->alloc_mmap;
	d->alloc_large = z->alloc_large - a->alloc_large;
	d->doorbells = z->doorbells - a->doorbells;
}

static void measure(struct bench *b, enum method m, size_t size, struct result *res)
{
	const struct options *o = b->o;
	double ns[MAX_REPEATS];
	uint64_t pages = run_pages(size, o->pages), faults = 0;
	struct hak_client_stats st0, st1;
	int64_t cpu0 = -1, cpu1 = -1;

	run_once(b, m, size, o->pages); /* warm-up: not timed */
	st0 = stats_now(b);
	if (m == METHOD_HAK && b->daemon_pid)
		cpu0 = process_cpu_ns(b->daemon_pid);
	for (unsigned r = 0; r < o->repeats; r++) {
		uint64_t f0 = faults_now(), t0 = now_ns(), t1;

		run_once(b, m, size, o->pages);
		t1 = now_ns();
		faults += faults_now() - f0;
		ns[r] = (double)(t1 - t0) / (double)pages;
	}
	if (cpu0 >= 0)
		cpu1 = process_cpu_ns(b->daemon_pid);
	st1 = stats_now(b);
	qsort(ns, o->repeats, sizeof(ns[0]), cmp_double);
	*res = (struct result){.method = m, .class_bytes = size, .daemon_cpu_ns = -1};
	res->ns_min = ns[0];
	res->ns_max = ns[o->repeats - 1];
	res->ns_median = o->repeats % 2 ? ns[o->repeats / 2]
					: (ns[o->repeats / 2 - 1] + ns[o->repeats / 2]) / 2;
	res->faults_per_page = (double)faults / (double)(pages * o->repeats);
	if (m == METHOD_HAK) {
		stats_delta(&res->served, &st0, &st1);
		res->connected = b->client && hak_client_is_connected(b->client) == 1;
		if (cpu0 >= 0 && cpu1 >= cpu0)
			res->daemon_cpu_ns = (double)(cpu1 - cpu0) / (double)(pages * o->repeats);
	}
}

/* ------------------------------------------------------------- output */

static const char *size_name(size_t bytes, char *buf, size_t len)
{
	if (bytes % MIB == 0)
		snprintf(buf, len, "%zu MiB", bytes / MIB);
	else
		snprintf(buf, len, "%zu KiB", bytes / KIB);
	return buf;
}

static void print_json(const struct bench *b, const struct result *r, const struct result *mm)
{
	const struct options *o = b->o;

	printf("{\"scenario\":\"page\",\"method\":\"%s\",\"class_bytes\":%zu,\"pages\":%" PRIu64
	       ",\"repeats\":%u,\"ns_per_page\":%.1f,\"min_ns_per_page\":%.1f,"
	       "\"max_ns_per_page\":%.1f,\"faults_per_page\":%.4f",
	       method_names[r->method], r->class_bytes, run_pages(r->class_bytes, o->pages),
	       o->repeats, r->ns_median, r->ns_min, r->ns_max, r->faults_per_page);
	if (r->method == METHOD_HAK) {
		const struct hak_client_stats *s = &r->served;

		printf(",\"alloc_ready\":%" PRIu64 ",\"alloc_inline_zero\":%" PRIu64
		       ",\"alloc_mmap\":%" PRIu64 ",\"alloc_dirty\":%" PRIu64
		       ",\"alloc_large\":%" PRIu64 ",\"doorbells\":%" PRIu64 ",\"connected\":%s",
		       s->alloc_ready, s->alloc_inline_zero, s->alloc_mmap, s->alloc_dirty,
		       s->alloc_large, s->doorbells, r->connected ? "true" : "false");
		if (r->daemon_cpu_ns >= 0)
			printf(",\"daemon_cpu_ns_per_page\":%.1f", r->daemon_cpu_ns);
		else
			printf(",\"daemon_cpu_ns_per_page\":null");
		printf(",\"mmap_over_hak\":%.2f", mm->ns_median / r->ns_median);
	}
	printf("}\n");
}

static void print_table_head(const struct options *o)
{
	printf("hakbench page: %u pages of 4 KiB per run, %u KiB held at once, median of %u runs "
	       "after a warm-up\n(a page is 4 KiB in every column, whatever the class)\n\n",
	       o->pages, o->batch_bytes / KIB, o->repeats);
	printf("%-8s %-6s %10s %21s %12s  %s\n", "class", "method", "ns/page", "(min .. max)",
	       "faults/page", "served by (hak)");
}

static void print_served(const struct result *r)
{
	const struct hak_client_stats *s = &r->served;
	double all = (double)(s->alloc_ready + s->alloc_inline_zero + s->alloc_mmap +
			      s->alloc_dirty + s->alloc_large);

	if (all == 0) {
		printf("nothing\n");
		return;
	}
	printf("ready %.0f%%, zeroed inline %.0f%%, mmap %.0f%%", 100.0 * s->alloc_ready / all,
	       100.0 * s->alloc_inline_zero / all, 100.0 * (s->alloc_mmap + s->alloc_large) / all);
	if (r->daemon_cpu_ns >= 0)
		printf("; daemon CPU %.0f ns/page", r->daemon_cpu_ns);
	if (!r->connected)
		printf("  [NOT CONNECTED: fallback only]");
	printf("\n");
}

static void print_row(const struct result *r)
{
	char name[32], range[32];

	snprintf(range, sizeof(range), "(%.1f .. %.1f)", r->ns_min, r->ns_max);
	printf("%-8s %-6s %10.1f %21s %12.4f  ", size_name(r->class_bytes, name, sizeof(name)),
	       method_names[r->method], r->ns_median, range, r->faults_per_page);
	if (r->method == METHOD_HAK)
		print_served(r);
	else
		printf("-\n");
}

static void report(const struct bench *b, const struct result *mm, const struct result *hak)
{
	if (b->o->json) {
		print_json(b, mm, mm);
		print_json(b, hak, mm);
	} else {
		print_row(mm);
		print_row(hak);
		printf("%-8s mmap/hak = %.1fx\n\n", "", mm->ns_median / hak->ns_median);
	}
	fflush(stdout);
}

/* Says plainly whether the 4 KiB class meets the target, with the numbers. */
static void print_target(const struct result *mm, const struct result *hak)
{
	double speedup = mm->ns_median / hak->ns_median;
	bool faults_ok = hak->faults_per_page <= TARGET_FAULTS_PER_PAGE;
	bool speed_ok = speedup >= TARGET_SPEEDUP;

	printf("target, 4 KiB class: faults/page <= %.2f: %s (%.4f); at least %.0fx faster than "
	       "mmap: %s (%.1fx)\n",
	       TARGET_FAULTS_PER_PAGE, faults_ok ? "met" : "NOT met", hak->faults_per_page,
	       TARGET_SPEEDUP, speed_ok ? "met" : "NOT met", speedup);
}

/* --------------------------------------------------------------- setup */

static void log_stderr(void *data, int priority, const char *file, int line, const char *fn,
		       const char *format, va_list args)
{
	fputs("hakbench: libhakclient: ", stderr);
	vfprintf(stderr, format, args);
	fputc('\n', stderr);
}

static const char *socket_path(const struct options *o)
{
	const char *env = getenv(HAK_SOCKET_ENV);

	if (o->socket)
		return o->socket;
	return env && *env ? env : HAK_DEFAULT_SOCKET;
}

static void open_client(struct bench *b)
{
	const struct options *o = b->o;
	int r = hak_client_new(&b->client);

	if (r < 0)
		die("hak_client_new: %s", strerror(-r));
	hak_client_set_log_fn(b->client, log_stderr, NULL);
	if (o->socket && (r = hak_client_set_socket(b->client, o->socket)) < 0)
		die("--socket %s: %s", o->socket, strerror(-r));
	r = hak_client_connect(b->client);
	if (r < 0 && !o->allow_fallback)
		die("cannot connect to hakzerod at %s: %s\n"
		    "Start the daemon (or point --socket / $%s at it); --allow-fallback measures "
		    "the library's fallback path without a daemon.",
		    socket_path(o), strerror(-r), HAK_SOCKET_ENV);
	if (r < 0)
		fprintf(stderr,
			"hakbench: no daemon at %s (%s): measuring the fallback path, "
			"as --allow-fallback asks\n",
			socket_path(o), strerror(-r));
	else
		b->daemon_pid = daemon_pid_from_status(socket_path(o));
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: hakbench page [--socket PATH] [--json] [--pages N] [--repeat R]\n"
		"                     [--allow-fallback]\n"
		"\n"
		"For the 4 KiB, 64 KiB and 2 MiB classes, times allocate -> write one byte in\n"
		"every 4 KiB page -> free, through libhakclient (zero-filled pages) and through\n"
		"mmap/munmap, and reports ns and page faults per 4 KiB page (median of R runs).\n"
		"\n"
		"  -s, --socket PATH     hakzerod's socket (default $%s or %s)\n"
		"  -j, --json            one JSON object per line\n"
		"  -n, --pages N         4 KiB pages per timed run (default %u)\n"
		"  -r, --repeat R        timed runs per measurement, median reported (default %u)\n"
		"  -b, --batch-bytes B   bytes of slots held at once, at least one slot\n"
		"                        (default %u)\n"
		"      --allow-fallback  measure even without a daemon (the fallback path)\n"
		"  -h, --help            print this help and exit\n",
		HAK_SOCKET_ENV, HAK_DEFAULT_SOCKET, DEFAULT_PAGES, DEFAULT_REPEATS,
		DEFAULT_BATCH_BYTES);
}

static unsigned parse_count(const char *s, const char *what, unsigned max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || end == s || v == 0 || v > max) {
		fprintf(stderr, "hakbench: %s must be 1..%u, not '%s'\n", what, max, s);
		exit(EXIT_USAGE);
	}
	return (unsigned)v;
}

#define OPT_ALLOW_FALLBACK 256

static void parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, 's'},
		{"json", no_argument, NULL, 'j'},
		{"pages", required_argument, NULL, 'n'},
		{"repeat", required_argument, NULL, 'r'},
		{"batch-bytes", required_argument, NULL, 'b'},
		{"allow-fallback", no_argument, NULL, OPT_ALLOW_FALLBACK},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;

	*o = (struct options){.pages = DEFAULT_PAGES,
			      .repeats = DEFAULT_REPEATS,
			      .batch_bytes = DEFAULT_BATCH_BYTES};
	while ((c = getopt_long(argc, argv, "s:jn:r:b:h", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			o->socket = optarg;
			break;
		case 'j':
			o->json = true;
			break;
		case 'n':
			o->pages = parse_count(optarg, "--pages", 1u << 24);
			break;
		case 'r':
			o->repeats = parse_count(optarg, "--repeat", MAX_REPEATS);
			break;
		case 'b':
			o->batch_bytes = parse_count(optarg, "--batch-bytes", 1u << 30);
			break;
		case OPT_ALLOW_FALLBACK:
			o->allow_fallback = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(EXIT_USAGE);
		}
	}
	if (optind >= argc || strcmp(argv[optind], "page") != 0 || optind + 1 != argc) {
		fprintf(stderr, "hakbench: the one scenario is 'page'\n");
		usage(stderr);
		exit(EXIT_USAGE);
	}
}

int main(int argc, char **argv)
{
	struct options o;
	struct bench b = {.o = &o};
	struct result target[2];
	bool have_target = false;

	if (argc > 1 && bench_workload_known(argv[1]))
		return bench_workload_main(argv[1], argc - 1, argv + 1);
	parse_options(argc, argv, &o);
	open_client(&b);
	if (!o.json)
		print_table_head(&o);
	for (size_t i = 0; i < NR_CLASSES; i++) {
		struct result mm, hak;

		measure(&b, METHOD_MMAP, class_sizes[i], &mm);
		measure(&b, METHOD_HAK, class_sizes[i], &hak);
		report(&b, &mm, &hak);
		if (!o.json && class_sizes[i] == TARGET_CLASS) {
			target[0] = mm;
			target[1] = hak;
			have_target = true;
		}
	}
	if (have_target)
		print_target(&target[0], &target[1]);
	hak_client_unref(b.client);
	return 0;
}
