/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hakbench apps [--quick] [--rounds R] [--seed S] [--only NAME] [--socket P]
 *               [--json] [--json-file FILE]
 *
 * Runs every program of apps-jobs.c under every setup of apps-setups.c,
 * round after round, each round in an order of its own, and prints a table
 * per program (apps-report.c).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apps.h"
#include "bench.h"

#define EXIT_USAGE 2
#define DEFAULT_SEED 1u
#define MAX_JOBS 16
/* Waiting for the daemon's counters to stop moving after a run. */
#define SETTLE_STEP_MS 50
#define SETTLE_TRIES 40

struct apps_opts {
	unsigned rounds;
	uint32_t seed;
	const char *only;
	const char *json_file;
	bool json, quick, rounds_given;
};

static uint32_t xorshift32(uint32_t *s)
{
	uint32_t x = *s;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

/* The setups of one round of one program in an order of their own
 * (Fisher-Yates): a setup's place in the round must not bias it (the
 * cache, the page cache and the daemon's state after the previous run). */
static void shuffle(int *order, uint32_t seed, unsigned round, unsigned job)
{
	uint32_t x = (seed * 2654435761u) ^ ((round + 1) * 40503u) ^ ((job + 1) * 9973u);

	if (!x)
		x = 1;
	for (int i = 0; i < SETUP_NR; i++)
		order[i] = i;
	for (int i = SETUP_NR - 1; i > 0; i--) {
		int j = (int)(xorshift32(&x) % (uint32_t)(i + 1)), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
}

static void loadavg(char *out, size_t len)
{
	FILE *f = fopen("/proc/loadavg", "re");

	if (!f || !fgets(out, (int)len, f))
		snprintf(out, len, "unknown");
	if (f)
		fclose(f);
	out[strcspn(out, "\n")] = '\0';
}

/* The daemon's counters once they stop moving: a client that exits
 * returns its slots, and the daemon zeroes them after it is gone; that
 * work belongs to the run that returned them, not to the next one. */
static bool settle(const struct apps_ctx *c, uint64_t *zeroed, uint64_t *returned)
{
	uint64_t z, r;

	if (!apps_daemon_counters(c->socket, zeroed, returned))
		return false;
	for (int i = 0; i < SETTLE_TRIES; i++) {
		struct timespec ts = {.tv_nsec = SETTLE_STEP_MS * 1000000L};

		nanosleep(&ts, NULL);
		if (!apps_daemon_counters(c->socket, &z, &r))
			return false;
		if (z == *zeroed && r == *returned)
			return true;
		*zeroed = z;
		*returned = r;
	}
	return true;
}

/* One run of program j under setup s, into round k of res. */
static void run_one(const struct apps_ctx *c, const struct apps_job *j, enum apps_setup s,
		    unsigned k, struct apps_results *res)
{
	struct apps_sample out[APPS_MAX_METRICS] = {0};
	uint64_t z0 = 0, r0 = 0, z1 = 0, r1 = 0;
	bool counted = c->admin && apps_daemon_counters(c->socket, &z0, &r0);
	struct apps_env env;
	int ret;

	apps_env_build(c, s, &env);
	ret = j->run(c, j, &env, out);
	counted = counted && settle(c, &z1, &r1);
	for (unsigned m = 0; m < apps_job_metrics(j); m++) {
		struct apps_cell *cell = &res->cell[m][s];

		out[m].zeroed = counted ? (int64_t)(z1 - z0) : -1;
		out[m].returned = counted ? (int64_t)(r1 - r0) : -1;
		cell->s[k] = out[m];
		cell->ok[k] = ret == 0;
		cell->failures += ret != 0;
		cell->timed_out |= ret == -ETIME;
	}
	if (ret < 0)
		fprintf(stderr, "hakbench apps: %s under %s failed: %s\n", j->name,
			apps_setups[s].name, strerror(-ret));
}

static bool selected(const struct apps_opts *o, const struct apps_job *j)
{
	return !o->only || strstr(j->name, o->only);
}

static void run_rounds(const struct apps_opts *o, const struct apps_ctx *c,
		       struct apps_results *res)
{
	for (unsigned k = 0; k < o->rounds; k++)
		for (unsigned i = 0; i < apps_njobs; i++) {
			const struct apps_job *j = &apps_jobs[i];
			int order[SETUP_NR];

			if (j->skip || !selected(o, j))
				continue;
			fprintf(stderr, "hakbench apps: round %u of %u: %s\n", k + 1, o->rounds,
				j->name);
			shuffle(order, o->seed, k, i);
			for (int n = 0; n < SETUP_NR; n++)
				if (!c->skip[order[n]] && !res[i].cell[0][order[n]].timed_out)
					run_one(c, j, (enum apps_setup)order[n], k, &res[i]);
		}
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: hakbench apps [--quick] [--rounds R] [--seed S] [--only NAME]\n"
		"                     [--socket PATH] [--json] [--json-file FILE]\n"
		"\n"
		"Unchanged programs (redis-server with redis-benchmark, numpy temporaries,\n"
		"hakbench-workload: large buffers, calloc, producer/consumer, short-lived\n"
		"threads, a short program started 50 times) under glibc, jemalloc, jemalloc\n"
		"+ libhakjemalloc shared and local, tcmalloc, mimalloc, jemalloc with and\n"
		"without the adapter at dirty_decay_ms:0,muzzy_decay_ms:0, and an A/A control.\n"
		"\n"
		"  -q, --quick        %d rounds of shorter runs: a smoke run, not a measurement\n"
		"  -r, --rounds R     interleaved rounds, medians reported (default %d)\n"
		"  -S, --seed S       the shuffle's seed (default %u)\n"
		"  -o, --only NAME    only the programs whose name contains NAME\n"
		"  -s, --socket PATH  hakzerod's socket (default $HAKZEROD_SOCKET or\n"
		"                     /run/hakzerod/hakzerod.sock); without a daemon the\n"
		"                     shared rows are skipped\n"
		"  -j, --json         one JSON object per line instead of tables\n"
		"      --json-file F  also write the JSON lines to F\n"
		"Environment: HAKBENCH_JEMALLOC, HAKBENCH_ADAPTER, HAKBENCH_TCMALLOC,\n"
		"HAKBENCH_MIMALLOC, HAKBENCH_WORKLOAD, HAKBENCH_PYTHON.\n"
		"Exit status: 0, 1 when a run failed (its row says so), 2 on bad usage.\n",
		APPS_ROUNDS_QUICK, APPS_ROUNDS_DEFAULT, DEFAULT_SEED);
}

#define OPT_JSON_FILE 256

static void parse(int argc, char **argv, struct apps_opts *o, struct apps_ctx *c)
{
	static const struct option longopts[] = {
		{"quick", no_argument, NULL, 'q'},
		{"rounds", required_argument, NULL, 'r'},
		{"seed", required_argument, NULL, 'S'},
		{"only", required_argument, NULL, 'o'},
		{"socket", required_argument, NULL, 's'},
		{"json", no_argument, NULL, 'j'},
		{"json-file", required_argument, NULL, OPT_JSON_FILE},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int ch;

	*o = (struct apps_opts){.rounds = APPS_ROUNDS_DEFAULT, .seed = DEFAULT_SEED};
	optind = 1;
	while ((ch = getopt_long(argc, argv, "qr:S:o:s:jh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'q':
			o->quick = c->quick = true;
			break;
		case 'r':
			o->rounds = (unsigned)parse_count(optarg, "--rounds", APPS_ROUNDS_MAX);
			o->rounds_given = true;
			break;
		case 'S':
			o->seed = (uint32_t)parse_count(optarg, "--seed", UINT32_MAX);
			break;
		case 'o':
			o->only = optarg;
			break;
		case 's':
			/* The children (the shared rows) find the daemon here too. */
			c->socket = optarg;
			setenv("HAKZEROD_SOCKET", optarg, 1);
			break;
		case 'j':
			o->json = true;
			break;
		case OPT_JSON_FILE:
			o->json_file = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(EXIT_USAGE);
		}
	}
	if (optind != argc) {
		usage(stderr);
		exit(EXIT_USAGE);
	}
	if (o->quick && !o->rounds_given)
		o->rounds = APPS_ROUNDS_QUICK;
}

static unsigned report(const struct apps_opts *o, const struct apps_results *res,
		       struct apps_report *r)
{
	unsigned failed = 0;

	apps_report_head(r);
	for (unsigned i = 0; i < apps_njobs; i++) {
		if (!selected(o, &apps_jobs[i]))
			continue;
		apps_report_job(r, &apps_jobs[i], &res[i]);
		for (unsigned m = 0; m < APPS_MAX_METRICS; m++)
			for (int s = 0; s < SETUP_NR; s++)
				failed += res[i].cell[m][s].failures;
	}
	apps_report_tail(r);
	return failed;
}

int bench_apps_main(int argc, char **argv)
{
	static struct apps_ctx c;
	static struct apps_results res[MAX_JOBS];
	struct apps_report r = {.c = &c};
	struct apps_opts o;
	unsigned failed;

	parse(argc, argv, &o, &c);
	c.daemon = apps_daemon_answers(c.socket);
	if (c.daemon) {
		uint64_t z, ret;

		c.admin = apps_daemon_counters(c.socket, &z, &ret);
	}
	apps_find(&c);
	snprintf(c.tmpdir, sizeof(c.tmpdir), "%s/hakbench-apps-XXXXXX",
		 getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(c.tmpdir)) {
		perror("hakbench apps: mkdtemp");
		return 1;
	}
	apps_jobs_probe(&c);
	if (!c.daemon)
		fprintf(stderr,
			"hakbench apps: no hakzerod answers: the shared rows are skipped\n");
	r.rounds = o.rounds;
	r.json = o.json;
	if (o.json_file && !(r.json_file = fopen(o.json_file, "we"))) {
		fprintf(stderr, "hakbench apps: --json-file %s: %s\n", o.json_file,
			strerror(errno));
		return 1;
	}
	loadavg(r.load_start, sizeof(r.load_start));
	run_rounds(&o, &c, res);
	loadavg(r.load_end, sizeof(r.load_end));
	failed = report(&o, res, &r);
	if (r.json_file)
		fclose(r.json_file);
	rmdir(c.tmpdir);
	if (failed)
		fprintf(stderr, "hakbench apps: %u run(s) failed (their rows say so)\n", failed);
	return failed ? 1 : 0;
}
