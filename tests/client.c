/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hak-client: a well-behaved libhakclient client for the tests that start
 * a real hakzerod (the drivers start it through the harness) and for the
 * soak and the valgrind run.  One scenario per run:
 *
 *   stale    N handoffs with random fill patterns; every page handed out
 *            as zeroed must read zero, every dirty one only our own bytes
 *   guard    allocates, checks and frees on command, proving the daemon
 *            still serves (alloc_ready grows) while others attack it
 *   cycles   hak_client_new / connect / alloc / free / unref, N times
 *   hold     connects (reporting a refusal), holds pages, answers commands
 *   victim   allocates and frees in tight loops, publishing in a file
 *            whether it is inside hak_alloc or hak_free, to be SIGKILLed
 *   holder   threads that stamp every page they hold and check the stamp
 *            before freeing it (no page has two holders), through daemon
 *            deaths and restarts
 *   fork     fork() isolation in shared mode
 *   churn    allocate, check, fill, free in rounds, until the daemon has
 *            zeroed slots over again
 *   threads  threads allocating from one handle, none sees another's page
 *   hotpath  steady-state alloc/free: page faults, blocking, doorbells
 *   restart  survive a daemon SIGKILL and a new daemon, stepped by "go"
 *
 * Output, one fact a line on stdout: progress lines, "stats k=v...",
 * "ok ..." (exit 0) or "fail WHY" (exit 1).  Commands come on stdin.
 * A bad option is a usage error (exit 2).
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "testutil.h"

/* The defaults of the scenarios that tag words (stale, guard, hold, ...). */
static const struct opts tagged_defaults = {
	.mode = MODE_ZERO, .seconds = 60, .seed = 1, .count = 1000};
/* The defaults of the scenarios that fill pages with one byte. */
static const struct opts byte_defaults = {
	.pattern = 0xa5, .rounds = 10, .seconds = 10, .threads = 4, .pages = 4};

static const struct command {
	const char *name;
	int (*fn)(const struct opts *o);
	const struct opts *defaults;
} commands[] = {
	{"stale", cmd_stale, &tagged_defaults},	  {"guard", cmd_guard, &tagged_defaults},
	{"cycles", cmd_cycles, &tagged_defaults}, {"hold", cmd_hold, &tagged_defaults},
	{"victim", cmd_victim, &tagged_defaults}, {"holder", cmd_holder, &tagged_defaults},
	{"fork", cmd_fork, &tagged_defaults},	  {"churn", cmd_churn, &byte_defaults},
	{"threads", cmd_threads, &byte_defaults}, {"hotpath", cmd_hotpath, &byte_defaults},
	{"restart", cmd_restart, &byte_defaults},
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: " PROG " COMMAND --socket PATH [options]\n"
		   "  stale | guard | cycles | hold | victim | holder | fork\n"
		   "  churn | threads | hotpath | restart\n"
		   "  --count N --seed N --mode zero|dirty|mixed --threads N --pages N\n"
		   "  --rounds N --seconds N --window N --pool BYTES --progress N\n"
		   "  --pattern N (a tag; churn, threads, restart: a byte 1..255)\n"
		   "  --state FILE --batch N,N,.. --expect-recycle --sync --pause-after N\n");
}

static enum mode parse_mode(const char *s)
{
	if (strcmp(s, "zero") == 0)
		return MODE_ZERO;
	if (strcmp(s, "dirty") == 0)
		return MODE_DIRTY;
	if (strcmp(s, "mixed") == 0)
		return MODE_MIXED;
	fprintf(stderr, PROG ": --mode: bad mode '%s'\n", s);
	exit(TU_EXIT_USAGE);
}

/* --batch 900,60,4: slots per class, smallest class first. */
static void parse_batch(const char *s, struct opts *o)
{
	char buf[128], *save = NULL, *tok;
	unsigned c = 0;

	snprintf(buf, sizeof(buf), "%s", s);
	for (tok = strtok_r(buf, ",", &save); tok && c < MAX_CLASSES;
	     tok = strtok_r(NULL, ",", &save))
		o->batch[c++] = tu_parse_uint(PROG, "--batch", tok, 0, UINT_MAX);
}

static const struct option longopts[] = {
	{"socket", required_argument, NULL, 's'},
	{"count", required_argument, NULL, 'n'},
	{"seed", required_argument, NULL, 'r'},
	{"mode", required_argument, NULL, 'm'},
	{"threads", required_argument, NULL, 'T'},
	{"pages", required_argument, NULL, 'p'},
	{"rounds", required_argument, NULL, 'R'},
	{"seconds", required_argument, NULL, 't'},
	{"window", required_argument, NULL, 'w'},
	{"pool", required_argument, NULL, 'P'},
	{"progress", required_argument, NULL, 'g'},
	{"pattern", required_argument, NULL, 'x'},
	{"state", required_argument, NULL, 'S'},
	{"batch", required_argument, NULL, 'b'},
	{"sync", no_argument, NULL, 'y'},
	{"expect-recycle", no_argument, NULL, 'e'},
	{"pause-after", required_argument, NULL, 'A'},
	{"help", no_argument, NULL, 'h'},
	{0},
};

/* One option into o; false for an unknown one. */
static bool parse_one(int c, struct opts *o)
{
	switch (c) {
	case 's':
		o->socket = optarg;
		break;
	case 'n':
		o->count = tu_parse_u64(PROG, "--count", optarg, 0, UINT64_MAX);
		break;
	case 'r':
		o->seed = tu_parse_u64(PROG, "--seed", optarg, 0, UINT64_MAX);
		break;
	case 'm':
		o->mode = parse_mode(optarg);
		break;
	case 'T':
		o->threads = tu_parse_uint(PROG, "--threads", optarg, 0, UINT_MAX);
		break;
	case 'p':
		o->pages = tu_parse_uint(PROG, "--pages", optarg, 0, UINT_MAX);
		break;
	case 'R':
		o->rounds = tu_parse_uint(PROG, "--rounds", optarg, 0, UINT_MAX);
		break;
	case 't':
		o->seconds = tu_parse_uint(PROG, "--seconds", optarg, 0, UINT_MAX);
		break;
	case 'w':
		o->window = tu_parse_uint(PROG, "--window", optarg, 0, UINT_MAX);
		break;
	case 'P':
		o->pool = tu_parse_size(PROG, "--pool", optarg);
		break;
	case 'g':
		o->progress = tu_parse_u64(PROG, "--progress", optarg, 0, UINT64_MAX);
		break;
	case 'x':
		o->pattern = tu_parse_uint(PROG, "--pattern", optarg, 0, TAG_MASK);
		break;
	case 'S':
		o->state = optarg;
		break;
	case 'b':
		parse_batch(optarg, o);
		break;
	case 'y':
		o->sync = true;
		break;
	case 'e':
		o->expect_recycle = true;
		break;
	case 'A':
		o->pause_after = tu_parse_uint(PROG, "--pause-after", optarg, 1, UINT_MAX);
		break;
	default:
		return false;
	}
	return true;
}

static void parse_opts(int argc, char **argv, const struct command *cmd, struct opts *o)
{
	int c;

	*o = *cmd->defaults;
	while ((c = getopt_long(argc, argv, "s:n:r:m:T:p:R:t:w:P:g:x:S:b:yeh", longopts, NULL)) !=
	       -1) {
		if (c == 'h') {
			usage(stdout);
			exit(0);
		}
		if (!parse_one(c, o)) {
			usage(stderr);
			exit(TU_EXIT_USAGE);
		}
	}
	if (o->window > WINDOW_MAX)
		o->window = WINDOW_MAX;
}

int main(int argc, char **argv)
{
	struct opts o;

	if (argc < 2) {
		usage(stderr);
		return TU_EXIT_USAGE;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0) {
			parse_opts(argc - 1, argv + 1, &commands[i], &o);
			return commands[i].fn(&o);
		}
	fprintf(stderr, PROG ": unknown command '%s'\n", argv[1]);
	usage(stderr);
	return TU_EXIT_USAGE;
}
