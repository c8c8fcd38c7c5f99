/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hakzerod: command line, configuration, memory locking, then the server.
 *
 * The daemon's floor plan.  Each file holds one idea; a file calls only
 * the files on its floor or below, never above.
 *
 *   main.c         command line, memory locking, descriptor limit; runs:
 *   server.c       the server: signals, the tick, reload, sd_notify; starts
 *                  and stops everything below.  Its parts, which read the
 *                  server's state: listen.c (the listening socket), psi.c
 *                  (the memory-pressure trigger), conn.c (a connection until
 *                  HELLO hands it to the client list, or an admin request),
 *                  admin.c (the answers to admin requests)
 *   clients.c      the client list: registration, limits and budget,
 *                  cut-offs (acting on the sessions' verdicts), totals,
 *                  sockets of ended sessions whose WELCOME is unread
 *   session.c      one client: its pool and control segment, WELCOME, close;
 *                  slots.c (its slot state machine), doorbell.c (its
 *                  doorbell), trim.c (its trimming and tick), budget.c
 *                  (what it may cost per second).  These return
 *                  verdicts and never end a session; they know nothing of
 *                  the server or the client list
 *   zero*.c        the zeroing workers;  uring.c  io_uring operations
 *   loop.c         the epoll loop, watches and timers, for any owner
 *   conf*.c, log.c, strbuf.c, bucket.c, util.h   configuration, logging,
 *                  text, token buckets, helpers
 *
 * Upward calls go only through watches (the loop calls their owner's
 * function) and completions (zeroing jobs and io_uring operations call
 * back the session that submitted them).
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "server.h"
#include "zero.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2
/* A configuration error, as sysexits.h's EX_CONFIG: distinct from every
 * other failure, so that the unit's RestartPreventExitStatus= does not
 * restart a daemon that would only fail the same way again. */
#define EXIT_CONFIG 78

enum { OPT_CHECK_CONFIG = 256, OPT_BENCH_ZERO };

struct options {
	const char *config;
	const char *socket;
	bool check_config;
	bool bench_zero;
	bool verbose;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: hakzerod [--config FILE] [--socket PATH] [--foreground] [--verbose]\n"
		"       hakzerod --check-config [--config FILE]\n"
		"       hakzerod --bench-zero\n"
		"       hakzerod --version | --help\n"
		"\n"
		"Keeps pools of pre-zeroed, pre-mapped pages for allocators.\n"
		"\n"
		"  -c, --config FILE   configuration (default " CONF_DEFAULT_PATH " if it exists)\n"
		"  -s, --socket PATH   listen on PATH instead of the configured socket\n"
		"  -f, --foreground    accepted for clarity: hakzerod never forks\n"
		"      --check-config  check the configuration and exit\n"
		"      --bench-zero    measure the zeroing methods and exit\n"
		"  -v, --verbose       log at debug level\n"
		"  -V, --version       print the version and exit\n"
		"  -h, --help          print this help and exit\n");
}

/* Returns -1 to go on, or an exit code. */
static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"socket", required_argument, NULL, 's'},
		{"foreground", no_argument, NULL, 'f'},
		{"check-config", no_argument, NULL, OPT_CHECK_CONFIG},
		{"bench-zero", no_argument, NULL, OPT_BENCH_ZERO},
		{"verbose", no_argument, NULL, 'v'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "c:s:fvVh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config = optarg;
			break;
		case 's':
			o->socket = optarg;
			break;
		case 'f':
			break;
		case OPT_CHECK_CONFIG:
			o->check_config = true;
			break;
		case OPT_BENCH_ZERO:
			o->bench_zero = true;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'V':
			printf("hakzerod %s\n", PACKAGE_VERSION);
			return EXIT_SUCCESS;
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "hakzerod: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	return -1;
}

/* At err priority: under systemd, `journalctl -p warning` shows it. */
static void report_err(void *data, const char *msg)
{
	log_msg(LOG_ERR, "%s", msg);
}

static int bench_zero(void)
{
	double gbps[ZERO_METHOD_NR];
	int r = zero_measure(gbps);

	if (r < 0) {
		fprintf(stderr, "hakzerod: cannot measure: %s\n", strerror(-r));
		return EXIT_RUNTIME;
	}
	printf("zeroing %u MiB, best of %d:\n", ZERO_MEASURE_BYTES >> 20, ZERO_MEASURE_ROUNDS);
	for (int m = ZERO_AUTO + 1; m < ZERO_METHOD_NR; m++)
		if (zero_method_supported(m))
			printf("  %-10s %6.2f GB/s\n", zero_method_name(m), gbps[m]);
	printf("fastest: %s\n", zero_method_name(zero_fastest(gbps)));
	return EXIT_SUCCESS;
}

#ifndef MCL_ONFAULT
#define MCL_ONFAULT 4
#endif

#define CAP_IPC_LOCK_BIT 14 /* linux/capability.h */

/* Whether mappings made while MCL_FUTURE is on can exceed RLIMIT_MEMLOCK:
 * with CAP_IPC_LOCK, or an unlimited limit. */
static bool can_lock_future(void)
{
	struct rlimit rl;
	unsigned long long caps = 0;
	char line[256];
	FILE *f;

	if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur == RLIM_INFINITY)
		return true;
	f = fopen("/proc/self/status", "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &caps) == 1)
			break;
	fclose(f);
	return caps & (1ull << CAP_IPC_LOCK_BIT);
}

/*
 * A memory daemon must not be paged out when memory is short, which is
 * when it is needed.  Pages are locked as they are touched (ONFAULT), so
 * reserved-but-unused memory costs nothing; the pools are unlocked again
 * as they are mapped (see session.c).  Without CAP_IPC_LOCK, MCL_FUTURE
 * would make every later mmap (a client's pool) count against
 * RLIMIT_MEMLOCK and fail: then only what is mapped now is locked.
 */
static void lock_memory(void)
{
	bool future = can_lock_future();
	int flags = MCL_CURRENT | MCL_ONFAULT | (future ? MCL_FUTURE : 0);

	if (mlockall(flags) < 0)
		log_msg(LOG_NOTICE, "cannot lock the daemon in memory (mlockall: %m); going on");
	else if (!future)
		log_msg(LOG_NOTICE,
			"no CAP_IPC_LOCK: only the memory mapped at start-up is locked");
}

/* Every client holds three descriptors here (socket, pool, doorbell):
 * max_clients 1024 needs more than the usual soft limit of 1024. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_msg(LOG_NOTICE, "cannot raise the descriptor limit: %m");
	}
}

static int run(const struct options *o, struct conf *c)
{
	struct server srv;
	int r;

	if (o->socket && conf_set_socket(c, o->socket) < 0) {
		conf_free(c);
		return EXIT_RUNTIME;
	}
	if (!o->verbose)
		log_set_level(c->log_level);
	if (listen_check_free(c->socket) < 0) {
		conf_free(c);
		return EXIT_RUNTIME;
	}
	lock_memory();
	raise_nofile();
	r = server_init(&srv, c, o->config, o->socket, o->verbose);
	if (r == 0)
		r = server_run(&srv);
	server_fini(&srv);
	return r < 0 ? EXIT_RUNTIME : EXIT_SUCCESS;
}

/* Closes every descriptor from first up, without close_range(2) (before
 * Linux 5.9, or refused by a seccomp filter). */
static void close_from_listed(int first)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name);

		if (fd >= first && fd != dirfd(d))
			close(fd);
	}
	closedir(d);
}

/*
 * A descriptor inherited from whoever started us (a shell's fd 10 or 251,
 * say) would stay open for the daemon's whole life, whatever it refers to.
 * Kept: stdin, stdout, stderr and the sockets systemd passes (listen.c
 * takes them later; sd_listen_fds(0) leaves the environment for it).
 */
static void close_inherited_fds(void)
{
	int n = sd_listen_fds(0);
	int first = SD_LISTEN_FDS_START + (n > 0 ? n : 0);

#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned)first, ~0u, 0u) == 0)
		return;
#endif
	close_from_listed(first);
}

int main(int argc, char **argv)
{
	struct options o = {0};
	struct conf *c = NULL;
	int r = parse_args(argc, argv, &o);

	if (r >= 0)
		return r;
	close_inherited_fds();
	log_init();
	if (o.verbose)
		log_set_level(LOG_DEBUG);
	if (o.bench_zero)
		return bench_zero();
	r = conf_load_default(o.config, report_err, NULL, &c);
	if (o.check_config) {
		if (r == 0)
			printf("%s: OK\n", c->path);
		conf_free(c);
		return r == 0 ? EXIT_SUCCESS : EXIT_CONFIG;
	}
	if (r < 0) {
		r = listen_drain_passed();
		if (r > 0)
			log_msg(LOG_NOTICE,
				"closed %d waiting connection%s: clients run in local mode until "
				"the configuration is fixed",
				r, r == 1 ? "" : "s");
		return EXIT_CONFIG;
	}
	r = run(&o, c);
	log_fini();
	return r;
}
