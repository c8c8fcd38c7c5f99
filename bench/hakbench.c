/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hakbench: what a page from hakzerod costs, against what the other ways of
 * getting zero-filled memory cost, on this machine.
 *
 *   hakbench page      allocate -> write -> free per class, method, regime
 *   hakbench zero      the daemon's zeroing against one core's bandwidth
 *   hakbench latency   the distribution of one allocation's latency
 *   hakbench profile   perf samples in page faults and clear_page*
 *   hakbench all       the four, in this order (what `make bench` runs)
 *   hakbench mixed|calloc|churn   end-to-end allocator workloads (runner.c)
 *   hakbench apps      unchanged programs under the peers' allocators (apps.c)
 *
 * Each scenario prints Markdown tables, or with --json one JSON object per
 * line; --json-file writes those lines to a file as well.  Nothing is
 * reported for a measurement that failed: an error stops the run with a
 * message and a non-zero exit.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "apps.h"
#include "bench.h"
#include "hak_proto.h"
#include "methods.h"
#include "page.h"
#include "workloads.h"

/* 64 MiB per thread and run: long enough that one run is not noise, short
 * enough that the mmap side of the 4 KiB class stays well under a second. */
#define DEFAULT_PAGES 16384u
#define DEFAULT_REPEATS 5u
#define QUICK_PAGES 2048u
#define QUICK_REPEATS 3u
/* Bytes of slots held at once: an allocator takes a run of extents, then
 * frees them. */
/* options.batch_bytes is unsigned. */
#define DEFAULT_BATCH_BYTES ((unsigned)(256 * KIB))

struct scenario {
	const char *name;
	int (*run)(struct bench *b);
};

static const struct scenario scenarios[] = {
	{"page", scenario_page},
	{"zero", scenario_zero},
	{"latency", scenario_latency},
	{"profile", scenario_profile},
};

#define NR_SCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: hakbench page|zero|latency|profile|all [options]\n"
		"       hakbench mixed|calloc|churn [options]   (hakbench mixed --help)\n"
		"       hakbench apps [options]                 (hakbench apps --help)\n"
		"\n"
		"  page     allocate -> write -> free for the 4 KiB, 64 KiB and 2 MiB classes,\n"
		"           1 and 2 threads, burst / sustained / stalled-daemon regimes, methods\n"
		"           hak hak-dirty mmap mmap-populate retain-dontneed retain-free\n"
		"           retain-memset calloc; ns, page faults and whole-system CPU per page\n"
		"  zero     the daemon's zeroing throughput against one core's memset and\n"
		"           non-temporal-store bandwidth, slot-sized and larger than the L3\n"
		"  latency  p50 / p99 / p99.9 / max of one allocation, pool ready and run dry\n"
		"  profile  perf record -e cpu-clock over page for mmap and hak: the share of\n"
		"           samples in page faults and clear_page*\n"
		"\n"
		"  -s, --socket PATH     hakzerod's socket (default $%s or %s)\n"
		"  -j, --json            one JSON object per line instead of tables\n"
		"      --json-file FILE  also write the JSON lines to FILE\n"
		"  -n, --pages N         4 KiB pages per thread and timed run (default %u)\n"
		"  -r, --repeat R        timed runs per figure, median reported (default %u)\n"
		"  -b, --batch-bytes B   bytes of slots held at once (default %u)\n"
		"      --quick           %u pages, %u repeats: a smoke run, not a measurement\n"
		"      --daemon-pid PID  the daemon's pid (else an admin STATUS asks it)\n"
		"      --stall-daemon    page, latency: stop the daemon (SIGSTOP) to measure\n"
		"                        the fallback path; only for a daemon of your own\n"
		"      --methods LIST    page: comma-separated methods (default all)\n"
		"      --classes LIST    page: of 4K,64K,2M (default all)\n"
		"      --regimes LIST    page: of burst,sustained,stalled (default all)\n"
		"      --threads LIST    page: of 1,2 (default both)\n"
		"      --allow-fallback  measure even without a daemon (the fallback path)\n"
		"  -V, --version         print the version and exit\n"
		"  -h, --help            print this help and exit\n",
		HAK_SOCKET_ENV, HAK_DEFAULT_SOCKET, DEFAULT_PAGES, DEFAULT_REPEATS,
		DEFAULT_BATCH_BYTES, QUICK_PAGES, QUICK_REPEATS);
}

/* A comma-separated list of names -> a bit mask of their indices. */
static unsigned parse_list(const char *s, const char *what, int (*lookup)(const char *))
{
	char copy[256], *save = NULL;
	unsigned mask = 0;

	snprintf(copy, sizeof(copy), "%s", s);
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int i = lookup(tok);

		if (i < 0) {
			fprintf(stderr, "hakbench: unknown %s '%s'\n", what, tok);
			exit(EXIT_USAGE);
		}
		mask |= 1u << i;
	}
	return mask;
}

static int class_parse(const char *s)
{
	static const char *const names[BENCH_MAX_CLASSES] = {"4K", "64K", "2M"};

	for (int i = 0; i < BENCH_MAX_CLASSES; i++)
		if (strcasecmp(s, names[i]) == 0)
			return i;
	return -1;
}

static int regime_parse(const char *s)
{
	for (int i = 0; i < R_NR; i++)
		if (strcmp(s, regime_name(i)) == 0)
			return i;
	return -1;
}

static int threads_parse(const char *s)
{
	if (strcmp(s, "1") == 0)
		return 0;
	return strcmp(s, "2") == 0 ? 1 : -1;
}

enum {
	OPT_ALLOW_FALLBACK = 256,
	OPT_JSON_FILE,
	OPT_QUICK,
	OPT_DAEMON_PID,
	OPT_STALL,
	OPT_METHODS,
	OPT_CLASSES,
	OPT_REGIMES,
	OPT_THREADS,
};

static const struct option longopts[] = {
	{"socket", required_argument, NULL, 's'},
	{"json", no_argument, NULL, 'j'},
	{"json-file", required_argument, NULL, OPT_JSON_FILE},
	{"pages", required_argument, NULL, 'n'},
	{"repeat", required_argument, NULL, 'r'},
	{"batch-bytes", required_argument, NULL, 'b'},
	{"quick", no_argument, NULL, OPT_QUICK},
	{"daemon-pid", required_argument, NULL, OPT_DAEMON_PID},
	{"stall-daemon", no_argument, NULL, OPT_STALL},
	{"methods", required_argument, NULL, OPT_METHODS},
	{"classes", required_argument, NULL, OPT_CLASSES},
	{"regimes", required_argument, NULL, OPT_REGIMES},
	{"threads", required_argument, NULL, OPT_THREADS},
	{"allow-fallback", no_argument, NULL, OPT_ALLOW_FALLBACK},
	{"version", no_argument, NULL, 'V'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

static void parse_option(int c, struct options *o)
{
	switch (c) {
	case 's':
		o->socket = optarg;
		break;
	case 'j':
		o->json = true;
		break;
	case OPT_JSON_FILE:
		o->json_file = optarg;
		break;
	case 'n':
		o->pages = (unsigned)parse_count(optarg, "--pages", 1u << 24);
		break;
	case 'r':
		o->repeats = (unsigned)parse_count(optarg, "--repeat", MAX_REPEATS);
		break;
	case 'b':
		o->batch_bytes = (unsigned)parse_count(optarg, "--batch-bytes", 1u << 30);
		break;
	case OPT_QUICK:
		o->quick = true;
		break;
	case OPT_DAEMON_PID:
		o->daemon_pid = (pid_t)parse_count(optarg, "--daemon-pid", INT_MAX);
		break;
	case OPT_STALL:
		o->stall_daemon = true;
		break;
	case OPT_METHODS:
		o->methods = parse_list(optarg, "method", method_parse);
		break;
	case OPT_CLASSES:
		o->classes = parse_list(optarg, "class", class_parse);
		break;
	case OPT_REGIMES:
		o->regimes = parse_list(optarg, "regime", regime_parse);
		break;
	case OPT_THREADS:
		o->threads = parse_list(optarg, "thread count", threads_parse);
		break;
	case OPT_ALLOW_FALLBACK:
		o->allow_fallback = true;
		break;
	case 'h':
		usage(stdout);
		exit(0);
	case 'V':
		printf("hakbench %s\n", PACKAGE_VERSION);
		exit(0);
	default:
		usage(stderr);
		exit(EXIT_USAGE);
	}
}

/* Returns the scenario's name (argv's one operand). */
static const char *parse_options(int argc, char **argv, struct options *o)
{
	bool pages_given = false, repeats_given = false;
	int c;

	*o = (struct options){.pages = DEFAULT_PAGES,
			      .repeats = DEFAULT_REPEATS,
			      .batch_bytes = DEFAULT_BATCH_BYTES};
	while ((c = getopt_long(argc, argv, "s:jn:r:b:Vh", longopts, NULL)) != -1) {
		pages_given |= c == 'n';
		repeats_given |= c == 'r';
		parse_option(c, o);
	}
	if (o->quick && !pages_given)
		o->pages = QUICK_PAGES;
	if (o->quick && !repeats_given)
		o->repeats = QUICK_REPEATS;
	if (optind + 1 != argc) {
		usage(stderr);
		exit(EXIT_USAGE);
	}
	return argv[optind];
}

/* A page run of kernel and libc methods only (as profile starts for mmap)
 * does not connect: a pool's prefault would land in its profile. */
static bool needs_client(const char *name, const struct options *o)
{
	unsigned hak = 1u << M_HAK | 1u << M_HAK_DIRTY;

	return strcmp(name, "page") != 0 || !o->methods || (o->methods & hak);
}

static bool scenario_known(const char *name)
{
	if (strcmp(name, "all") == 0)
		return true;
	for (size_t i = 0; i < NR_SCENARIOS; i++)
		if (strcmp(name, scenarios[i].name) == 0)
			return true;
	return false;
}

static int run_scenario(struct bench *b, const char *name)
{
	int ret = 0;

	for (size_t i = 0; i < NR_SCENARIOS; i++) {
		if (strcmp(name, "all") != 0 && strcmp(name, scenarios[i].name) != 0)
			continue;
		ret = scenarios[i].run(b);
		if (ret != 0 && ret != EXIT_SKIP)
			return ret;
	}
	return ret;
}

int main(int argc, char **argv)
{
	static char self[PATH_MAX];
	struct options o;
	struct bench b = {0};
	const char *name;
	ssize_t n;
	int ret;

	if (argc > 1 && strcmp(argv[1], "apps") == 0)
		return bench_apps_main(argc - 1, argv + 1);
	if (argc > 1 && bench_workload_known(argv[1]))
		return bench_workload_main(argv[1], argc - 1, argv + 1);
	name = parse_options(argc, argv, &o);
	if (!scenario_known(name)) {
		fprintf(stderr, "hakbench: unknown scenario '%s'\n", name);
		usage(stderr);
		return EXIT_USAGE;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	self[n > 0 ? n : 0] = '\0';
	b.self = self;
	if (o.json_file && !(b.json_file = fopen(o.json_file, "we")))
		die("--json-file %s: %s", o.json_file, strerror(errno));
	b.o = &o;
	if (needs_client(name, &o))
		bench_open(&b, &o);
	ret = run_scenario(&b, name);
	bench_close(&b);
	if (b.json_file)
		fclose(b.json_file);
	return ret;
}
