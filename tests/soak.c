/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hak-soak (`make soak SOAK_SECONDS=N`): a real hakzerod under a mixed
 * multi-client load for N seconds, with kills and restarts:
 *
 *   stale workers    scan every page for stale bytes (hak-client stale),
 *                    each SIGKILLed after a few seconds and replaced
 *   a holder         threads stamping every page they hold, through daemon
 *                    deaths; replaced now and then by a clean exit
 *   fork runs        fork() isolation, again and again
 *   attacks          one hak-hostile attack after another, at random
 *   the daemon       SIGKILLed or stopped and restarted every 15-25 s,
 *                    reloaded (SIGHUP) in between
 *
 * It samples the daemon's CPU time and memory twice a second, and fails
 * (exit 1) on any stale byte or other client failure, a well-behaved client
 * cut off, an attack that did not end as it should (unless a restart came
 * in between), an unplanned daemon death, or CPU or memory past the
 * bounds below.  It prints a summary of everything it did, with counts.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hak_proto.h"
#include "harness.h"

#define DEFAULT_SECONDS 600
#define STALE_WORKERS 3
#define STALE_LIFE_MS 2000
#define STALE_LIFE_SPREAD_MS 6000
#define HOLDER_LIFE_MS 25000
#define FORK_EVERY_MS 8000
#define ATTACK_GAP_MS 1000
#define TRIM_EVERY_MS 10000
#define RESTART_MS 15000
#define RESTART_SPREAD_MS 10000
#define RELOAD_EVERY_MS 7000
#define SAMPLE_MS 500
#define LOOP_MS 20
#define REPORT_EVERY_MS 10000
/* An attack or fork run that takes longer than this is stuck. */
#define RUN_LIMIT_MS 30000
/* Bounds on the daemon: its private memory (about 1 MiB in steady state;
 * room for scratch buffers such as the zeroing measurements', and more in
 * its first seconds, when it measures), its shared memory (what it mapped
 * of the pools: every pool at once would be max_clients x pool_size_max,
 * 2G; the load uses some 35M), and its CPU time per wall time, in
 * thousandths of one core (about 100-250 here). */
#define MAX_ANON (128ull << 20)
#define MAX_ANON_STARTUP (256ull << 20)
#define STARTUP_MS 3000
#define MAX_SHMEM (256ull << 20)
#define MAX_CPU_PERMILLE 1000
/* Every this many restarts, the daemon is stopped (SIGTERM), not killed. */
#define STOP_EVERY 3
#define MAX_GOOD 256
/* Counts and times a stale worker never reaches: the soak ends it.  Its
 * --seconds is an unsigned int (some 136 years at most). */
#define BIG "1000000000000"
#define BIG_SECONDS "4000000000"

/* ------------------------------------------------------------ attacks */

struct attack {
	const char *name;
	const char *args[6];
	unsigned runs, ok, interrupted;
};

static struct attack attacks[] = {
	{.name = "garbage", .args = {"--count", "50"}},
	{.name = "malformed"},
	{.name = "sizes", .args = {"--max", "33554432"}},
	{.name = "fds"},
	{.name = "after-welcome"},
	{.name = "silent", .args = {"--count", "20"}},
	{.name = "cycles", .args = {"--count", "100"}},
	{.name = "cycles", .args = {"--count", "50", "--variant", "abort"}},
	{.name = "descs"},
	{.name = "offence-flood"},
	{.name = "ring"},
	{.name = "hoard", .args = {"--seconds", "1"}},
	{.name = "bell-flood", .args = {"--seconds", "1"}},
	{.name = "seals"},
};
#define NATTACKS (sizeof(attacks) / sizeof(attacks[0]))

/* -------------------------------------------------------------- state */

struct life {
	uint64_t cpu_ms; /* of this daemon life so far */
	uint64_t start_ms;
	int fds; /* descriptors with no client connected */
};

static struct {
	uint64_t end_ms, now_ms;
	unsigned seconds;
	uint64_t rng;
	/* the daemon */
	struct life life;
	uint64_t cpu_ms_total, lives_ms, max_anon, max_shmem, max_anon_startup;
	uint64_t start_ms;
	unsigned restarts, kills, stops, reloads, unplanned;
	uint64_t restart_epoch; /* bumped at each restart */
	uint64_t next_restart, next_reload, next_sample, next_report, next_trim;
	unsigned trims;
	/* the daemon's counters, summed over its lives */
	uint64_t offences, cut_off, refused, clients_total, trimmed, psi_events, doorbells;
	/* clients */
	struct h_proc *stale[STALE_WORKERS];
	uint64_t stale_end[STALE_WORKERS], stale_last[STALE_WORKERS], stale_epoch[STALE_WORKERS];
	unsigned stale_started, stale_killed;
	uint64_t handoffs;
	struct h_proc *holder;
	uint64_t holder_end, holder_epoch;
	unsigned connects_interrupted;
	unsigned holders, holder_ok;
	uint64_t holder_allocs;
	struct h_proc *forker;
	uint64_t fork_epoch, fork_start, next_fork;
	unsigned forks, forks_ok, forks_interrupted;
	struct h_proc *attacker;
	struct attack *attack;
	uint64_t attack_epoch, attack_start, next_attack;
	pid_t good[MAX_GOOD];
	unsigned ngood;
	unsigned failures;
} S;

/* ---------------------------------------------------------------- util */

static uint64_t rnd(uint64_t n)
{
	uint64_t x = S.rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	S.rng = x;
	return n ? x % n : x;
}

__attribute__((format(printf, 1, 2))) static void problem(const char *fmt, ...)
{
	va_list ap;

	printf("soak: FAIL: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	S.failures++;
}

static void remember_good(pid_t pid)
{
	if (S.ngood < MAX_GOOD)
		S.good[S.ngood++] = pid;
}

/* Reads every line a process has for us now; calls fn on each.  Returns
 * false once its output has ended. */
static bool drain(struct h_proc *p, void (*fn)(struct h_proc *p, const char *line))
{
	char line[H_LINE];
	int r;

	while ((r = h_proc_try_line(p, line, sizeof(line))) == 1)
		if (fn)
			fn(p, line);
	return r != 0;
}

/* ------------------------------------------------------------- daemon */

static void sample(void)
{
	struct h_mem m;
	uint64_t cpu;

	if (!h_daemon_alive() || !h_pid_mem(h_daemon->pid, &m))
		return;
	cpu = h_pid_cpu_ms(h_daemon->pid);
	if (cpu > S.life.cpu_ms)
		S.life.cpu_ms = cpu;
	/* The first seconds of a life include the zeroing measurements and
	 * their scratch buffers: reported, bounded apart. */
	if (S.now_ms - S.life.start_ms < STARTUP_MS) {
		if (m.anon > S.max_anon_startup)
			S.max_anon_startup = m.anon;
		return;
	}
	if (m.anon > S.max_anon)
		S.max_anon = m.anon;
	if (m.shmem > S.max_shmem)
		S.max_shmem = m.shmem;
}

/* The counters of this daemon life, added before it goes. */
static void collect_counters(void)
{
	char json[H_JSON];

	if (h_admin(HAK_ADMIN_STATS, 0, json, sizeof(json)) < 0)
		return;
	S.offences += h_json_u64(json, "offences");
	S.cut_off += h_json_u64(json, "cut_off");
	S.refused += h_json_u64(json, "refused");
	S.clients_total += h_json_u64(json, "clients_total");
	S.trimmed += h_json_u64(json, "trimmed_bytes");
	S.psi_events += h_json_u64(json, "psi_events");
	S.doorbells += h_json_u64(json, "doorbells");
}

static void end_life(void)
{
	sample();
	S.cpu_ms_total += S.life.cpu_ms;
	S.lives_ms += S.now_ms - S.life.start_ms;
}

static void start_life(void)
{
	h_daemon_start();
	S.life = (struct life){0, tu_now_ms(), h_pid_fds(h_daemon->pid)};
	S.restart_epoch++;
}

static void restart_daemon(void)
{
	bool stop = (S.restarts + 1) % STOP_EVERY == 0;

	collect_counters();
	end_life();
	if (stop) {
		kill(h_daemon->pid, SIGTERM);
		if (h_proc_reap(h_daemon, H_REACT_MS) != 0)
			problem("hakzerod did not stop cleanly on SIGTERM");
		S.stops++;
	} else {
		h_proc_kill(h_daemon, SIGKILL);
		S.kills++;
	}
	h_proc_release(h_daemon);
	h_daemon = NULL;
	start_life();
	S.restarts++;
	S.next_restart = S.now_ms + RESTART_MS + rnd(RESTART_SPREAD_MS);
}

static void check_daemon(void)
{
	if (h_daemon_alive())
		return;
	problem("hakzerod died unplanned (wait status %#x)", h_daemon->status);
	S.unplanned++;
	end_life();
	h_proc_release(h_daemon);
	start_life();
}

/* ------------------------------------------------------ stale workers */

/* A client started just as the daemon was killed may find nobody to
 * connect to (its library retries, but a worker insists on a pool at
 * start): not a failure of the daemon. */
static bool connect_interrupted(const struct h_proc *p, uint64_t epoch)
{
	if (epoch == S.restart_epoch || strncmp(p->last_fail, "fail hak_client_connect", 23) != 0)
		return false;
	S.connects_interrupted++;
	return true;
}

static void stale_line(struct h_proc *p, const char *line)
{
	if (strncmp(line, "progress", 8) == 0) {
		uint64_t h = h_line_u64(line, "handoffs");

		for (int i = 0; i < STALE_WORKERS; i++)
			if (S.stale[i] == p) {
				S.handoffs += h - S.stale_last[i];
				S.stale_last[i] = h;
			}
	}
}

static void stale_start(int i)
{
	char seed[24];

	snprintf(seed, sizeof(seed), "%llu", (unsigned long long)rnd(0) >> 1);
	S.stale[i] =
		h_client("stale", "stale", "--count", BIG, "--seconds", BIG_SECONDS, "--mode",
			 rnd(2) ? "mixed" : "zero", "--seed", seed, "--progress", "20000", NULL);
	S.stale[i]->quiet = true;
	S.stale_end[i] = S.now_ms + STALE_LIFE_MS + rnd(STALE_LIFE_SPREAD_MS);
	S.stale_last[i] = 0;
	S.stale_epoch[i] = S.restart_epoch;
	S.stale_started++;
	remember_good(S.stale[i]->pid);
}

static void stale_tick(int i)
{
	struct h_proc *p = S.stale[i];

	if (!drain(p, stale_line) || p->last_fail[0]) {
		if (!connect_interrupted(p, S.stale_epoch[i]))
			problem("stale worker %d: %s", (int)p->pid,
				p->last_fail[0] ? p->last_fail : "exited by itself");
		h_proc_release(p);
		stale_start(i);
		return;
	}
	if (S.now_ms < S.stale_end[i])
		return;
	h_proc_kill(p, SIGKILL);
	S.stale_killed++;
	h_proc_release(p);
	stale_start(i);
}

/* -------------------------------------------------------------- holder */

static void holder_start(void)
{
	S.holder = h_client("holder", "holder", "--threads", "2", "--window", "16", NULL);
	S.holder->quiet = true;
	S.holder_end = S.now_ms + HOLDER_LIFE_MS;
	S.holder_epoch = S.restart_epoch;
	S.holders++;
	remember_good(S.holder->pid);
}

static void holder_tick(void)
{
	char line[H_LINE] = "";

	if (!drain(S.holder, NULL) || S.holder->last_fail[0]) {
		if (!connect_interrupted(S.holder, S.holder_epoch))
			problem("holder %d: %s", (int)S.holder->pid,
				S.holder->last_fail[0] ? S.holder->last_fail : "exited by itself");
		h_proc_release(S.holder);
		holder_start();
		return;
	}
	if (S.now_ms < S.holder_end)
		return;
	h_proc_say(S.holder, "exit");
	h_proc_expect(S.holder, "ok", 2 * H_REACT_MS, line, sizeof(line));
	S.holder_allocs += h_line_u64(line, "allocs");
	S.holder_ok++;
	h_proc_release(S.holder);
	holder_start();
}

/* ---------------------------------------------------------------- fork */

static void fork_tick(void)
{
	int st;

	if (!S.forker) {
		if (S.now_ms < S.next_fork)
			return;
		S.forker = h_client("fork", "fork", "--rounds", "2", NULL);
		S.forker->quiet = true;
		S.fork_epoch = S.restart_epoch;
		S.fork_start = S.now_ms;
		S.forks++;
		remember_good(S.forker->pid);
		return;
	}
	if (drain(S.forker, NULL) && S.now_ms - S.fork_start < RUN_LIMIT_MS)
		return;
	st = h_proc_reap(S.forker, H_REACT_MS);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && !S.forker->last_fail[0])
		S.forks_ok++;
	else if (S.fork_epoch != S.restart_epoch)
		S.forks_interrupted++;
	else
		problem("fork run %d: %s (status %#x)", (int)S.forker->pid, S.forker->last_fail,
			st);
	h_proc_release(S.forker);
	S.forker = NULL;
	S.next_fork = S.now_ms + FORK_EVERY_MS;
}

/* ------------------------------------------------------------- attacks */

static void attack_line(struct h_proc *p, const char *line)
{
	/* descs waits for our word once its offences are counted. */
	if (strncmp(line, "pushed offences", 15) == 0)
		h_proc_say(p, "check");
}

/* In turn, so that every attack runs within a minute. */
static void attack_start(void)
{
	static unsigned next;
	struct attack *a = &attacks[next++ % NATTACKS];
	char *argv[16], seed[24];
	int n = 0;

	argv[n++] = (char *)h_env.hostile;
	argv[n++] = (char *)a->name;
	argv[n++] = "--socket";
	argv[n++] = h_env.sock;
	snprintf(seed, sizeof(seed), "%llu", (unsigned long long)rnd(1000000));
	argv[n++] = "--seed";
	argv[n++] = seed;
	for (int i = 0; i < 6 && a->args[i]; i++)
		argv[n++] = (char *)a->args[i];
	argv[n] = NULL;
	S.attacker = h_proc_start(a->name, argv);
	S.attacker->quiet = true;
	S.attack = a;
	S.attack_epoch = S.restart_epoch;
	S.attack_start = S.now_ms;
	a->runs++;
}

static void attack_tick(void)
{
	int st;

	if (!S.attacker) {
		if (S.now_ms >= S.next_attack)
			attack_start();
		return;
	}
	if (drain(S.attacker, attack_line) && S.now_ms - S.attack_start < RUN_LIMIT_MS)
		return;
	st = h_proc_reap(S.attacker, H_REACT_MS);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		S.attack->ok++;
	else if (S.attack_epoch != S.restart_epoch)
		S.attack->interrupted++;
	else
		problem("attack %s: %s (status %#x)", S.attack->name, S.attacker->last_fail, st);
	h_proc_release(S.attacker);
	S.attacker = NULL;
	S.next_attack = S.now_ms + ATTACK_GAP_MS;
}

/* ---------------------------------------------------------------- loop */

static void periodic(void)
{
	if (S.now_ms >= S.next_sample) {
		sample();
		S.next_sample = S.now_ms + SAMPLE_MS;
	}
	if (S.now_ms >= S.next_trim) {
		char out[H_JSON];

		if (h_admin(HAK_ADMIN_TRIM, 0, out, sizeof(out)) == 0)
			S.trims++;
		S.next_trim = S.now_ms + TRIM_EVERY_MS;
	}
	if (S.now_ms >= S.next_reload) {
		kill(h_daemon->pid, SIGHUP);
		S.reloads++;
		S.next_reload = S.now_ms + RELOAD_EVERY_MS;
	}
	if (S.now_ms >= S.next_report) {
		unsigned runs = 0;

		for (size_t i = 0; i < NATTACKS; i++)
			runs += attacks[i].runs;
		printf("soak: %llu s: %llu handoffs, %u restarts, %u attacks, %u fork runs, "
		       "%u failures\n",
		       (unsigned long long)(S.now_ms - (S.end_ms - S.seconds * 1000ull)) / 1000,
		       (unsigned long long)S.handoffs, S.restarts, runs, S.forks, S.failures);
		fflush(stdout);
		S.next_report = S.now_ms + REPORT_EVERY_MS;
	}
	if (S.now_ms >= S.next_restart)
		restart_daemon();
}

static void run(void)
{
	for (int i = 0; i < STALE_WORKERS; i++)
		stale_start(i);
	holder_start();
	while ((S.now_ms = tu_now_ms()) < S.end_ms) {
		check_daemon();
		for (int i = 0; i < STALE_WORKERS; i++)
			stale_tick(i);
		holder_tick();
		fork_tick();
		attack_tick();
		periodic();
		tu_sleep_ms(LOOP_MS);
	}
}

/* Every descriptor of the daemon, to say which one leaked. */
static void list_fds(pid_t pid)
{
	char dir[64], path[PATH_MAX], target[PATH_MAX];
	struct dirent *e;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	d = opendir(dir);
	while (d && (e = readdir(d))) {
		ssize_t n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = '\0';
		printf("    fd %s -> %s\n", e->d_name, target);
	}
	if (d)
		closedir(d);
}

/* With no client left, the daemon holds what it held when it started
 * (closing a session may wait for its zeroing jobs: a moment). */
static void check_fds(void)
{
	uint64_t deadline = tu_now_ms() + H_REACT_MS;

	while (h_pid_fds(h_daemon->pid) > S.life.fds && tu_now_ms() < deadline)
		tu_sleep_ms(H_POLL_MS);
	if (h_pid_fds(h_daemon->pid) <= S.life.fds)
		return;
	problem("the daemon holds %d descriptors with no client, %d when it started",
		h_pid_fds(h_daemon->pid), S.life.fds);
	list_fds(h_daemon->pid);
}

/* Lets the runs in flight end, stops the clients, then the daemon. */
static void wind_down(void)
{
	char line[H_LINE] = "";

	for (S.next_attack = S.next_fork = UINT64_MAX; S.attacker || S.forker;
	     S.now_ms = tu_now_ms()) {
		attack_tick();
		fork_tick();
		tu_sleep_ms(LOOP_MS);
	}
	for (int i = 0; i < STALE_WORKERS; i++) {
		drain(S.stale[i], stale_line);
		h_proc_release(S.stale[i]);
	}
	h_proc_say(S.holder, "exit");
	h_proc_expect(S.holder, "ok", 2 * H_REACT_MS, line, sizeof(line));
	S.holder_allocs += h_line_u64(line, "allocs");
	S.holder_ok++;
	h_proc_release(S.holder);
	h_wait_clients(0, "at the end of the soak");
	check_fds();
	collect_counters();
	end_life();
	h_daemon_stop();
}

/* ------------------------------------------------------------- checks */

/* A well-behaved client cut off or taken for an offender: the daemon's
 * log names its pid. */
static void check_cut_offs(void)
{
	FILE *f = fopen(h_env.log, "re");
	char line[H_LINE], pat[32];

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (!strstr(line, "cut off") && !strstr(line, "doorbell flood") &&
		    !strstr(line, "bad return descriptor"))
			continue;
		for (unsigned i = 0; i < S.ngood; i++) {
			snprintf(pat, sizeof(pat), "(pid %d ", (int)S.good[i]);
			if (strstr(line, pat))
				problem("a well-behaved client was taken for an offender: %s",
					line);
		}
	}
	fclose(f);
}

static void check_bounds(void)
{
	uint64_t permille = S.lives_ms ? S.cpu_ms_total * 1000 / S.lives_ms : 0;

	if (S.max_anon > MAX_ANON)
		problem("daemon private memory reached %llu MiB",
			(unsigned long long)(S.max_anon >> 20));
	if (S.max_anon_startup > MAX_ANON_STARTUP)
		problem("daemon private memory reached %llu MiB while starting",
			(unsigned long long)(S.max_anon_startup >> 20));
	if (S.max_shmem > MAX_SHMEM)
		problem("daemon shared memory reached %llu MiB",
			(unsigned long long)(S.max_shmem >> 20));
	if (permille > MAX_CPU_PERMILLE)
		problem("daemon CPU %llu.%llu cores on average",
			(unsigned long long)permille / 1000, (unsigned long long)permille % 1000);
}

static void summary(void)
{
	uint64_t permille = S.lives_ms ? S.cpu_ms_total * 1000 / S.lives_ms : 0;

	printf("\nsoak summary (%u s asked, %llu s run)\n", S.seconds,
	       (unsigned long long)(tu_now_ms() - S.start_ms) / 1000);
	printf("  daemon: %u restarts (%u SIGKILL, %u SIGTERM), %u reloads, %u admin trims, "
	       "%u unplanned deaths\n",
	       S.restarts, S.kills, S.stops, S.reloads, S.trims, S.unplanned);
	printf("  daemon CPU: %llu ms in %llu ms alive (%llu.%03llu cores); max RssAnon %llu kB "
	       "(%llu kB in its first %d s), max RssShmem %llu kB\n",
	       (unsigned long long)S.cpu_ms_total, (unsigned long long)S.lives_ms,
	       (unsigned long long)permille / 1000, (unsigned long long)permille % 1000,
	       (unsigned long long)S.max_anon >> 10, (unsigned long long)S.max_anon_startup >> 10,
	       STARTUP_MS / 1000, (unsigned long long)S.max_shmem >> 10);
	printf("  daemon counters: %llu clients welcomed, %llu refused, %llu offences, %llu cut "
	       "off, "
	       "%llu doorbells, %llu kB trimmed, %llu PSI events\n",
	       (unsigned long long)S.clients_total, (unsigned long long)S.refused,
	       (unsigned long long)S.offences, (unsigned long long)S.cut_off,
	       (unsigned long long)S.doorbells, (unsigned long long)S.trimmed >> 10,
	       (unsigned long long)S.psi_events);
	printf("  stale scan: %llu handoffs checked, %u workers started, %u SIGKILLed mid-run\n",
	       (unsigned long long)S.handoffs, S.stale_started, S.stale_killed);
	printf("  holders: %u started, %u exited clean, %llu stamped pages checked\n", S.holders,
	       S.holder_ok, (unsigned long long)S.holder_allocs);
	printf("  fork runs: %u, %u ok, %u interrupted by a restart\n", S.forks, S.forks_ok,
	       S.forks_interrupted);
	printf("  clients that started as the daemon was killed (no pool at start): %u\n",
	       S.connects_interrupted);
	printf("  attacks (hak-hostile):\n");
	for (size_t i = 0; i < NATTACKS; i++) {
		char args[64] = "";

		for (int k = 0; k < 6 && attacks[i].args[k]; k++)
			snprintf(args + strlen(args), sizeof(args) - strlen(args), " %s",
				 attacks[i].args[k]);
		printf("    %-14s%-28s %3u runs, %3u as expected, %u interrupted by a restart\n",
		       attacks[i].name, args, attacks[i].runs, attacks[i].ok,
		       attacks[i].interrupted);
	}
	printf("  result: %s (%u failures)\n", S.failures ? "FAIL" : "PASS", S.failures);
}

/* The clients' stderr goes to a file next to the daemon's log: both are
 * shown (their ends) only when something failed. */
static void quiet_children(void)
{
	char path[PATH_MAX + 16];

	snprintf(path, sizeof(path), "%s/clients.log", h_env.dir);
	h_child_stderr = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

static void show_tail(const char *name, unsigned lines)
{
	char path[PATH_MAX + 16], cmd[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/%s", h_env.dir, name);
	snprintf(cmd, sizeof(cmd), "tail -n %u '%s' >&2", lines, path);
	fprintf(stderr, "---- last %u lines of %s\n", lines, name);
	fflush(stderr);
	if (system(cmd) != 0)
		fprintf(stderr, "(cannot show %s)\n", path);
}

int main(int argc, char **argv)
{
	const char *env = getenv("SOAK_SECONDS");
	int r = h_init("soak", argv[0]);

	if (r)
		return r;
	quiet_children();
	S.seconds = env && atoi(env) > 0 ? (unsigned)atoi(env) : DEFAULT_SECONDS;
	/* Whatever happens, the soak ends: its own time, then some. */
	alarm(S.seconds + 120);
	S.rng = 0x2545f4914f6cdd1dull ^ (uint64_t)getpid();
	h_write_conf("pool_size 8M\n"
		     "pool_size_max 32M\n"
		     "class 4K 25%%\n"
		     "class 64K 25%%\n"
		     "class 2M 50%%\n"
		     "zero_threads 1\n"
		     "trim_idle 2s\n"
		     "max_clients 64\n");
	S.start_ms = S.now_ms = tu_now_ms();
	S.end_ms = S.now_ms + S.seconds * 1000ull;
	S.next_restart = S.now_ms + RESTART_MS + rnd(RESTART_SPREAD_MS);
	S.next_reload = S.now_ms + RELOAD_EVERY_MS;
	S.next_trim = S.now_ms + TRIM_EVERY_MS;
	S.next_report = S.now_ms + REPORT_EVERY_MS;
	S.next_fork = S.now_ms + FORK_EVERY_MS / 2;
	printf("soak: %u s against %s\n", S.seconds, h_env.hakzerod);
	start_life();
	run();
	wind_down();
	check_cut_offs();
	check_bounds();
	summary();
	if (S.failures) {
		show_tail("hakzerod.log", 100);
		show_tail("clients.log", 100);
	}
	h_log_skip();
	h_cleanup();
	return S.failures ? 1 : 0;
}
