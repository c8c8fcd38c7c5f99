/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Runs a workload once per allocator configuration, each in a child started
 * afresh from this same program with the allocator preloaded (LD_PRELOAD of
 * libjemalloc.so.2, then libhakjemalloc) and jemalloc's options in
 * MALLOC_CONF, optionally under `perf record -e cpu-clock`, and prints one
 * table: throughput and its ratio to stock jemalloc at the same decay
 * setting, page faults of the timed thread per operation, CPU of the whole
 * system and of the process per operation (the daemon's or the local
 * zeroing thread's work included), and the share of cpu-clock samples in
 * page-fault handling and in clear_page*.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "hakclient.h"
#include "workloads.h"

#ifndef JEMALLOC_SO
#define JEMALLOC_SO "libjemalloc.so.2"
#endif
#ifndef HAK_LIBDIR
#define HAK_LIBDIR "/usr/local/lib"
#endif
#define ADAPTER_SO "libhakjemalloc.so"
#define ADAPTER_SONAME "libhakjemalloc.so.0"
#define WARM_MS 300
#define MAX_ROWS 16
#define MIXED_WIDTHS 2
static const uint32_t mixed_widths[MIXED_WIDTHS] = {256, 8192};

/* ALLOC_JEMALLOC_AA: stock jemalloc again, an A/A control: its ratio to the
 * baseline is the run-to-run noise of the machine, the floor under which
 * no other row's difference means anything. */
enum alloc_kind {
	ALLOC_GLIBC,
	ALLOC_JEMALLOC,
	ALLOC_JEMALLOC_AA,
	ALLOC_HAK_SHARED,
	ALLOC_HAK_LOCAL,
	ALLOC_NR
};
static const char *const alloc_names[ALLOC_NR] = {"glibc", "jemalloc", "jemalloc (A/A control)",
						  "jemalloc+hak shared", "jemalloc+hak local"};

struct config {
	enum alloc_kind kind;
	bool decay0; /* MALLOC_CONF=dirty_decay_ms:0 */
};

/* Timed runs per configuration: the machine is shared and noisy, so each
 * figure is the median of several runs, interleaved across configurations
 * (round 1 of every configuration, in an order of its own, then round 2,
 * ...), with the range. */
#define REPEAT_DEFAULT 5
#define REPEAT_MAX 31

struct row {
	struct config cf;
	struct wl_result r;	 /* the run of median throughput */
	double ops_min, ops_max; /* throughput range over the runs */
	struct wl_result runs[REPEAT_MAX];
	unsigned nruns;		  /* runs that succeeded */
	unsigned failures;	  /* runs that did not */
	double pf_pct, clear_pct; /* negative: not measured */
	bool ok;
};

struct opts {
	struct wl_params p;
	unsigned repeat;
	bool width_given, perf, child, no_shared;
	char exe[PATH_MAX];
	char jemalloc[PATH_MAX];
	char adapter[PATH_MAX];
};

/* ---- where the libraries are ---- */

static bool readable(const char *path)
{
	return access(path, R_OK) == 0;
}

/* $HAKBENCH_ADAPTER; next to this program (uninstalled: libtool keeps both
 * in .libs/); the installed one. */
static void find_adapter(struct opts *o)
{
	const char *env = getenv("HAKBENCH_ADAPTER");
	/* Room for the longest suffix below within PATH_MAX. */
	char dir[PATH_MAX - 32];

	if (env && *env) {
		snprintf(o->adapter, sizeof(o->adapter), "%s", env);
		return;
	}
	/* A program path too long to leave room: only the installed one. */
	if (snprintf(dir, sizeof(dir), "%s", o->exe) < (int)sizeof(dir)) {
		dirname(dir);
		snprintf(o->adapter, sizeof(o->adapter), "%s/%s", dir, ADAPTER_SO);
		if (readable(o->adapter))
			return;
		snprintf(o->adapter, sizeof(o->adapter), "%s/.libs/%s", dir, ADAPTER_SO);
		if (readable(o->adapter))
			return;
	}
	snprintf(o->adapter, sizeof(o->adapter), "%s/%s", HAK_LIBDIR, ADAPTER_SONAME);
}

static void find_libraries(struct opts *o)
{
	const char *env = getenv("HAKBENCH_JEMALLOC");
	ssize_t n = readlink("/proc/self/exe", o->exe, sizeof(o->exe) - 1);

	o->exe[n > 0 ? n : 0] = '\0';
	snprintf(o->jemalloc, sizeof(o->jemalloc), "%s", env && *env ? env : JEMALLOC_SO);
	find_adapter(o);
}

/* Whether a daemon answers: without one the shared rows are skipped. */
static bool daemon_answers(void)
{
	struct hak_client *c;
	bool yes;

	if (hak_client_new(&c) < 0)
		return false;
	hak_client_set_mode(c, HAK_MODE_SHARED);
	yes = hak_client_connect(c) == 0 && hak_client_is_connected(c) == 1;
	hak_client_unref(c);
	return yes;
}

/* ---- one child ---- */

struct argv_buf {
	char *v[40];
	int n;
	char store[8][64];
};

static void push(struct argv_buf *a, const char *s)
{
	a->v[a->n++] = (char *)s;
	a->v[a->n] = NULL;
}

static const char *num(struct argv_buf *a, int i, uint64_t v)
{
	snprintf(a->store[i], sizeof(a->store[i]), "%" PRIu64, v);
	return a->store[i];
}

static void child_env(const struct opts *o, const struct config *cf, char *preload, size_t len)
{
	snprintf(preload, len, "LD_PRELOAD=%s%s%s", cf->kind == ALLOC_GLIBC ? "" : o->jemalloc,
		 cf->kind >= ALLOC_HAK_SHARED ? " " : "",
		 cf->kind >= ALLOC_HAK_SHARED ? o->adapter : "");
}

/* [perf record ... --] env LD_PRELOAD=.. [MALLOC_CONF=..] [HAK_MODE=..] exe NAME --child .. */
static void build_argv(const struct opts *o, const struct config *cf, const char *perf_data,
		       char *preload, struct argv_buf *a)
{
	a->n = 0;
	if (perf_data) {
		push(a, "perf");
		push(a, "record");
		push(a, "-q");
		push(a, "-e");
		push(a, "cpu-clock");
		push(a, "-g");
		push(a, "-o");
		push(a, perf_data);
		push(a, "--");
	}
	push(a, "env");
	/* The default rows are jemalloc's defaults, whatever the caller's
	 * environment says. */
	push(a, "-u");
	push(a, "MALLOC_CONF");
	push(a, preload);
	if (cf->decay0)
		push(a, "MALLOC_CONF=dirty_decay_ms:0");
	if (cf->kind == ALLOC_HAK_SHARED)
		push(a, "HAK_MODE=shared");
	if (cf->kind == ALLOC_HAK_LOCAL)
		push(a, "HAK_MODE=local");
	push(a, o->exe);
	push(a, o->p.name);
	push(a, "--child");
	push(a, "--steps");
	push(a, num(a, 0, o->p.steps));
	push(a, "--width");
	push(a, num(a, 1, o->p.width));
	push(a, "--seed");
	push(a, num(a, 2, o->p.seed));
}

/* Runs argv with its stdout into a pipe; fills r from its RESULT line. */
static int run_child(char **argv, struct wl_result *r)
{
	int fds[2], status, ret = -EPROTO;
	char line[1024];
	FILE *f;
	pid_t pid;

	if (pipe(fds) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		close(fds[0]);
		close(fds[1]);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	f = fdopen(fds[0], "r");
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "RESULT ", 7) == 0 && wl_parse_result(line, r) == 0)
			ret = 0;
	if (f)
		fclose(f);
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		ret = -ECHILD;
	return ret;
}

/* ---- perf ---- */

static bool have_perf(void)
{
	return system("perf --version >/dev/null 2>&1") == 0;
}

/* Children (inclusive) share of the page-fault entry; self share of
 * clear_page* (a leaf). */
static void perf_shares(const char *data, struct row *rw)
{
	char cmd[PATH_MAX + 128], line[512], sym[256];
	double children, self;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "perf report -i '%s' --children --sort sym --stdio 2>/dev/null",
		 data);
	f = popen(cmd, "r");
	if (!f)
		return;
	rw->pf_pct = rw->clear_pct = 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, " %lf%% %lf%% %*s %255s", &children, &self, sym) != 3)
			continue;
		if (strstr(sym, "exc_page_fault") && children > rw->pf_pct)
			rw->pf_pct = children;
		if (strncmp(sym, "clear_page", 10) == 0)
			rw->clear_pct += self;
	}
	pclose(f);
}

/* One more timed run of a configuration, or with perf_run one under
 * perf record, whose samples give the shares and whose times are not
 * counted (perf's own cost would land in them). */
static void run_config(const struct opts *o, const struct config *cf, struct row *rw, bool perf_run)
{
	char preload[2 * PATH_MAX + 16], data[PATH_MAX];
	struct wl_result r;
	struct argv_buf a;
	bool ok;
	int fd = -1;

	snprintf(data, sizeof(data), "%s/hakbench-perf-XXXXXX", P_tmpdir);
	rw->cf = *cf;
	if (perf_run) {
		fd = mkstemp(data);
		if (fd < 0)
			return;
	}
	child_env(o, cf, preload, sizeof(preload));
	build_argv(o, cf, fd >= 0 ? data : NULL, preload, &a);
	ok = run_child(a.v, &r) == 0;
	if (ok && !perf_run)
		rw->runs[rw->nruns++] = r;
	if (!ok)
		rw->failures++;
	if (fd >= 0) {
		if (ok)
			perf_shares(data, rw);
		close(fd);
		unlink(data);
	}
}

/* ---- the table ---- */

static double per_op(uint64_t v, const struct wl_result *r)
{
	return r->ops ? (double)v / (double)r->ops : 0;
}

static double ops_per_s(const struct wl_result *r)
{
	return r->ns ? (double)r->ops * 1e9 / (double)r->ns : 0;
}

static int by_throughput(const void *a, const void *b)
{
	double x = ops_per_s(a), y = ops_per_s(b);

	return (x > y) - (x < y);
}

/* The row's figures: the run of median throughput (the lower middle one
 * for an even count), and the range. */
static void row_settle(struct row *rw)
{
	rw->ok = rw->nruns > 0;
	if (!rw->ok)
		return;
	qsort(rw->runs, rw->nruns, sizeof(rw->runs[0]), by_throughput);
	rw->r = rw->runs[(rw->nruns - 1) / 2];
	rw->ops_min = ops_per_s(&rw->runs[0]);
	rw->ops_max = ops_per_s(&rw->runs[rw->nruns - 1]);
}

static const struct row *baseline(const struct row *rows, int n, bool decay0)
{
	for (int i = 0; i < n; i++)
		if (rows[i].ok && rows[i].cf.kind == ALLOC_JEMALLOC && rows[i].cf.decay0 == decay0)
			return &rows[i];
	return NULL;
}

static void print_pct(double v)
{
	if (v < 0)
		printf(" - |");
	else
		printf(" %.1f%% |", v);
}

static void print_row(const struct opts *o, const struct row *rw, const struct row *base)
{
	const struct wl_result *r = &rw->r;
	double b = base ? ops_per_s(&base->r) : 0;

	printf("| %s", o->p.name);
	if (strcmp(o->p.name, "mixed") == 0)
		printf(" W=%" PRIu32, o->p.width);
	printf(" | %s | %s |", alloc_names[rw->cf.kind],
	       rw->cf.kind == ALLOC_GLIBC ? "n/a"
	       : rw->cf.decay0		  ? "0"
					  : "default");
	if (!rw->ok) {
		printf(" failed | | | | | | | | |\n");
		return;
	}
	printf(" %.0f | %.2fx | %.2f-%.2fx | %.2f | %.2f | %.2f |", ops_per_s(r),
	       b ? ops_per_s(r) / b : 0, b ? rw->ops_min / b : 0, b ? rw->ops_max / b : 0,
	       per_op(r->faults, r), per_op(r->sys_busy_ns, r) / 1000,
	       per_op(r->proc_cpu_ns, r) / 1000);
	print_pct(rw->pf_pct);
	print_pct(rw->clear_pct);
	if (r->bytes_slots)
		printf(" %" PRIu64 " (%.0f%%) |\n", r->pool_extents,
		       100.0 * (double)(r->bytes_slots - r->bytes_asked) / (double)r->bytes_slots);
	else
		printf(" - |\n");
}

static void print_table(const struct opts *o, const struct row *rows, int n)
{
	printf("\n| workload | allocator | dirty_decay_ms | ops/s | vs jemalloc | range "
	       "| faults/op | system CPU us/op | process CPU us/op | samples in page faults "
	       "| samples in clear_page* | pool extents (waste) |\n");
	printf("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
	for (int i = 0; i < n; i++)
		print_row(o, &rows[i], baseline(rows, n, rows[i].cf.decay0));
	fflush(stdout);
}

/* ---- the matrix ---- */

static int build_configs(const struct opts *o, struct config *cf)
{
	int n = 0;

	cf[n++] = (struct config){ALLOC_GLIBC, false};
	for (int d = 0; d < 2; d++)
		for (int k = ALLOC_JEMALLOC; k < ALLOC_NR; k++)
			if (k != ALLOC_HAK_SHARED || !o->no_shared)
				cf[n++] = (struct config){(enum alloc_kind)k, d == 1};
	return n;
}

static void progress(const struct opts *o, const struct config *cf, const char *what, unsigned k)
{
	fprintf(stderr, "hakbench: %s, %s%s, %s %u of %u...\n", o->p.name, alloc_names[cf->kind],
		cf->decay0 ? ", dirty_decay_ms:0" : "", what, k + 1, o->repeat);
}

/* The configurations of round k in an order of their own (Fisher-Yates,
 * xorshift32 seeded by the round): a configuration's place in the round
 * must not bias it.  Two configurations that are the same for the timed
 * loop (shared and local when the adapter never makes its pool) differed
 * by 9% at the median of 15 runs in a fixed order. */
static void shuffle(int *order, int n, unsigned k)
{
	uint32_t x = 2654435761u * (k + 1);

	for (int i = 0; i < n; i++)
		order[i] = i;
	for (int i = n - 1; i > 0; i--) {
		int j = (int)(wl_xorshift32(&x) % (uint32_t)(i + 1)), t;

		t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
}

/* Returns the number of runs that failed. */
static unsigned run_matrix(struct opts *o)
{
	static struct row rows[MAX_ROWS];
	struct config cf[MAX_ROWS];
	int n = build_configs(o, cf);
	unsigned failed = 0;

	memset(rows, 0, sizeof(rows));
	for (int i = 0; i < n; i++)
		rows[i].pf_pct = rows[i].clear_pct = -1;
	for (int i = 0; o->perf && i < n; i++) {
		progress(o, &cf[i], "perf run", 0);
		run_config(o, &cf[i], &rows[i], true);
	}
	for (unsigned k = 0; k < o->repeat; k++) {
		int order[MAX_ROWS];

		shuffle(order, n, k);
		for (int j = 0; j < n; j++) {
			int i = order[j];

			progress(o, &cf[i], "run", k);
			run_config(o, &cf[i], &rows[i], false);
		}
	}
	for (int i = 0; i < n; i++) {
		row_settle(&rows[i]);
		failed += rows[i].failures;
	}
	print_table(o, rows, n);
	return failed;
}

static int run_parent(struct opts *o)
{
	unsigned failed = 0;

	find_libraries(o);
	if (!readable(o->adapter) || !readable(o->jemalloc)) {
		fprintf(stderr,
			"hakbench: need %s and %s (set HAKBENCH_JEMALLOC, HAKBENCH_ADAPTER)\n",
			o->jemalloc, o->adapter);
		return EXIT_SKIP;
	}
	if (o->perf && !have_perf()) {
		fprintf(stderr, "hakbench: perf is not installed: no sample shares "
				"(on Debian: apt-get install linux-perf)\n");
		o->perf = false;
	}
	o->no_shared = !daemon_answers();
	if (o->no_shared)
		fprintf(stderr, "hakbench: no hakzerod answers: skipping the shared-mode rows\n");
	printf("# %s: %" PRIu64 " steps, seed %" PRIu32 ", median of %u runs; %s, %s\n", o->p.name,
	       o->p.steps, o->p.seed, o->repeat, o->jemalloc, o->adapter);
	if (strcmp(o->p.name, "mixed") == 0 && !o->width_given) {
		for (int i = 0; i < MIXED_WIDTHS; i++) {
			o->p.width = mixed_widths[i];
			failed += run_matrix(o);
		}
	} else {
		failed = run_matrix(o);
	}
	if (failed) {
		fprintf(stderr, "hakbench: %u run(s) failed (their rows say so)\n", failed);
		return 1;
	}
	return 0;
}

static int run_in_child(const struct opts *o)
{
	struct wl_result r;
	int ret = wl_run(&o->p, &r);

	if (ret < 0) {
		fprintf(stderr, "hakbench: %s failed: %s\n", o->p.name, strerror(-ret));
		return 1;
	}
	wl_print_result(&r);
	return 0;
}

/* ---- options ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: hakbench mixed|calloc|churn [--steps N] [--width W] [--seed S]\n"
		"                                   [--repeat R] [--socket PATH] [--perf]\n"
		"\n"
		"Runs the workload under glibc malloc, stock jemalloc (twice: the second, an\n"
		"A/A control, shows the machine's noise), and jemalloc with\n"
		"libhakjemalloc in shared mode (needs a running hakzerod) and in local mode,\n"
		"jemalloc with dirty_decay_ms at its default and at 0, each in a fresh process,\n"
		"and prints a table: median throughput over R runs (interleaved across the\n"
		"configurations), its ratio to stock jemalloc and the range, page faults per\n"
		"operation in the timed loop, whole-system and process CPU per operation, and\n"
		"with --perf the share of cpu-clock samples in page faults and clear_page*.\n"
		"\n"
		"  mixed   W slots; per step free the slot r mod W if full, else malloc\n"
		"          16 + (r & 1023) bytes and write its first byte (1M steps; W 256 and "
		"8192)\n"
		"  calloc  calloc 64 KiB..2 MiB, write every page, free; 4 live (5000 steps)\n"
		"  churn   malloc 1..2 MiB slabs, write every page, free; 2 live (2000 steps)\n"
		"\n"
		"  -n, --steps N   timed steps\n"
		"  -w, --width W   mixed: table slots (default: both 256 and 8192)\n"
		"  -S, --seed S    xorshift32 seed, not 0 (default 1)\n"
		"  -r, --repeat R  timed runs per configuration, median reported (default 5)\n"
		"  -s, --socket P  hakzerod's socket (default $HAKZEROD_SOCKET or\n"
		"                  /run/hakzerod/hakzerod.sock)\n"
		"  -p, --perf      one more run per configuration under perf record -e\n"
		"                  cpu-clock, not timed: the sample shares\n"
		"Environment: HAKBENCH_JEMALLOC, HAKBENCH_ADAPTER: the libraries to preload.\n"
		"MALLOC_CONF is cleared in the children: default rows run on jemalloc's defaults.\n"
		"Exit status: 0, 1 when a run failed (its row says so), 2 on bad usage, 77 when\n"
		"jemalloc or the adapter is missing.\n");
}

static uint64_t default_steps(const char *name)
{
	if (strcmp(name, "mixed") == 0)
		return 1000000;
	return strcmp(name, "calloc") == 0 ? 5000 : 2000;
}

#define OPT_CHILD 256
#define MAX_STEPS (UINT32_MAX * 64ull)
/* mixed's table: 16M pointers, 128 MiB. */
#define MAX_WIDTH (1u << 24)

static void parse(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{"steps", required_argument, NULL, 'n'},
		{"width", required_argument, NULL, 'w'},
		{"seed", required_argument, NULL, 'S'},
		{"repeat", required_argument, NULL, 'r'},
		{"perf", no_argument, NULL, 'p'},
		{"child", no_argument, NULL, OPT_CHILD},
		{"socket", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;

	o->p = (struct wl_params){.name = argv[0],
				  .steps = default_steps(argv[0]),
				  .width = mixed_widths[0],
				  .seed = 1,
				  .warm_ms = WARM_MS};
	o->repeat = REPEAT_DEFAULT;
	optind = 1;
	while ((c = getopt_long(argc, argv, "n:w:S:r:s:ph", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			o->p.steps = parse_count(optarg, "--steps", MAX_STEPS);
			break;
		case 'w':
			o->p.width = (uint32_t)parse_count(optarg, "--width", MAX_WIDTH);
			o->width_given = true;
			break;
		case 'S':
			o->p.seed = (uint32_t)parse_count(optarg, "--seed", UINT32_MAX);
			break;
		case 'r':
			o->repeat = (unsigned)parse_count(optarg, "--repeat", REPEAT_MAX);
			break;
		case 's':
			/* The children and the probe find the daemon here. */
			if (setenv("HAKZEROD_SOCKET", optarg, 1) < 0) {
				perror("hakbench: setenv");
				exit(EXIT_USAGE);
			}
			break;
		case 'p':
			o->perf = true;
			break;
		case OPT_CHILD:
			o->child = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(EXIT_USAGE);
		}
	}
	if (optind != argc || o->p.seed == 0) {
		usage(stderr);
		exit(EXIT_USAGE);
	}
}

bool bench_workload_known(const char *name)
{
	return name && (strcmp(name, "mixed") == 0 || strcmp(name, "calloc") == 0 ||
			strcmp(name, "churn") == 0);
}

int bench_workload_main(const char *name, int argc, char **argv)
{
	static struct opts o;

	if (!bench_workload_known(name))
		return EXIT_USAGE;
	parse(argc, argv, &o);
	return o.child ? run_in_child(&o) : run_parent(&o);
}
