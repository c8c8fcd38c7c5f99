/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Memory pressure against a real hakzerod (DESIGN rule 6): the daemon arms
 * a PSI trigger on /proc/pressure/memory; this test makes real pressure —
 * a process thrashing a file mapping larger than the memory cgroup it is
 * locked into — and checks that the daemon trims every idle zeroed slot
 * (psi_events, trims_psi, trimmed_bytes grow; the client's idle slots go to
 * zero), that the client's held pages are intact and that the pages it is
 * handed afterwards read zero.
 *
 * Skipped (77), saying why, where that cannot happen: no PSI (a kernel
 * booted without it), no trigger for us, no memory cgroup we may create, a
 * thrash file only on tmpfs, or no stall produced.  test-trim checks the
 * trimming itself everywhere.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define TEST_ALARM_S 120
#define PSI_MEMORY "/proc/pressure/memory"
/* The cgroup's limit and the file thrashed through it: the file is four
 * times the limit, so nearly every touch refaults and reclaims. */
#define CG_LIMIT (24ull << 20)
#define THRASH_FILE (96ull << 20)
#define THRASH_CHUNK (1u << 20)
/* How long the thrashing may take to make the trigger fire. */
#define PRESSURE_MS 20000
/* How often the kernel folds stall times into the totals we read. */
#define PSI_AGGREGATION_MS 2100
/* Stall time (some, us) below which we call it "no pressure produced". */
#define MIN_STALL_US 500000

static char cgroup[PATH_MAX];
static char thrash_path[PATH_MAX];
static pid_t thrasher;

/* At exit, whatever the way out: the thrashing process, the cgroup it
 * was in (empty once it is reaped), the file. */
static void cleanup(void)
{
	if (thrasher > 0) {
		kill(thrasher, SIGKILL);
		waitpid(thrasher, NULL, 0);
		thrasher = 0;
	}
	if (cgroup[0])
		rmdir(cgroup);
	cgroup[0] = '\0';
	if (thrash_path[0])
		unlink(thrash_path);
	thrash_path[0] = '\0';
	h_cleanup();
}

/* The overall timeout: the same, with async-signal-safe calls only (the
 * daemon and clients die with us anyway). */
static void on_alarm(int sig)
{
	static const char msg[] = "FAIL: test-pressure timed out\n";

	if (write(STDOUT_FILENO, msg, sizeof(msg) - 1) < 0)
		_exit(1);
	if (thrasher > 0) {
		kill(thrasher, SIGKILL);
		waitpid(thrasher, NULL, 0);
	}
	if (cgroup[0])
		rmdir(cgroup);
	if (thrash_path[0])
		unlink(thrash_path);
	_exit(1);
}

static void skip(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void skip(const char *fmt, ...)
{
	va_list ap;

	printf("SKIP: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	exit(H_EXIT_SKIP);
}

/* ---------------------------------------------------------------- PSI */

/* The "some" total stall of /proc/pressure/memory, in microseconds. */
static uint64_t psi_some_total(void)
{
	FILE *f = fopen(PSI_MEMORY, "re");
	unsigned long long total = 0;
	char line[256];

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "some", 4) == 0 && strstr(line, "total="))
			total = strtoull(strstr(line, "total=") + 6, NULL, 10);
	fclose(f);
	return total;
}

/* ------------------------------------------------------------ cgroups */

static bool write_file(const char *dir, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static bool write_file(const char *dir, const char *name, const char *fmt, ...)
{
	char path[PATH_MAX * 2], buf[64];
	va_list ap;
	int fd, n;
	bool ok;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ok = write(fd, buf, (size_t)n) == n;
	close(fd);
	return ok;
}

static bool file_has(const char *path, const char *word)
{
	char buf[512];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, word) != NULL;
}

/* cgroup v2: a child of the root, where the memory controller is on. */
static bool make_cgroup_v2(const char *root, char *why, size_t size)
{
	char ctl[PATH_MAX];

	snprintf(ctl, sizeof(ctl), "%s/cgroup.subtree_control", root);
	if (!file_has(ctl, "memory")) {
		snprintf(why, size, "%s: no memory controller", ctl);
		return false;
	}
	if ((size_t)snprintf(cgroup, sizeof(cgroup), "%s/hak-pressure-%d", root, (int)getpid()) >=
	    sizeof(cgroup)) {
		snprintf(why, size, "cgroup2 mount path too long");
		cgroup[0] = '\0';
		return false;
	}
	if (mkdir(cgroup, 0755) < 0) {
		snprintf(why, size, "mkdir %s: %s", cgroup, strerror(errno));
		cgroup[0] = '\0';
		return false;
	}
	write_file(cgroup, "memory.swap.max", "0");
	if (write_file(cgroup, "memory.max", "%llu", CG_LIMIT))
		return true;
	snprintf(why, size, "%s/memory.max: %s", cgroup, strerror(errno));
	rmdir(cgroup);
	cgroup[0] = '\0';
	return false;
}

/* Our own memory cgroup under cgroup v1, from /proc/self/cgroup. */
static bool own_v1_memcg(char *out, size_t size)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	char line[PATH_MAX];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *ctl = strchr(line, ':'), *path = ctl ? strchr(ctl + 1, ':') : NULL;

		if (!path || strncmp(ctl + 1, "memory:", 7) != 0)
			continue;
		path[strcspn(path, "\n")] = '\0';
		snprintf(out, size, "%s", path + 1);
		found = true;
	}
	fclose(f);
	return found;
}

/* cgroup v1: a child of our own memory cgroup. */
static bool make_cgroup_v1(const char *mnt, char *why, size_t size)
{
	char own[PATH_MAX];

	if (!own_v1_memcg(own, sizeof(own))) {
		snprintf(why, size, "no memory line in /proc/self/cgroup");
		return false;
	}
	if ((size_t)snprintf(cgroup, sizeof(cgroup), "%s%s/hak-pressure-%d", mnt, own,
			     (int)getpid()) >= sizeof(cgroup)) {
		snprintf(why, size, "path of our memory cgroup too long");
		cgroup[0] = '\0';
		return false;
	}
	if (mkdir(cgroup, 0755) < 0) {
		snprintf(why, size, "mkdir %s: %s", cgroup, strerror(errno));
		cgroup[0] = '\0';
		return false;
	}
	if (write_file(cgroup, "memory.limit_in_bytes", "%llu", CG_LIMIT))
		return true;
	snprintf(why, size, "%s/memory.limit_in_bytes: %s", cgroup, strerror(errno));
	rmdir(cgroup);
	cgroup[0] = '\0';
	return false;
}

/* Where cgroup v2 and the v1 memory controller are mounted. */
static void find_mounts(char *v2, char *v1mem, size_t size)
{
	FILE *f = fopen("/proc/self/mounts", "re");
	char dev[256], dir[PATH_MAX], type[64], opts[512];

	v2[0] = v1mem[0] = '\0';
	if (!f)
		return;
	while (fscanf(f, "%255s %4095s %63s %511s %*d %*d", dev, dir, type, opts) == 4) {
		if (strcmp(type, "cgroup2") == 0 && !v2[0])
			snprintf(v2, size, "%s", dir);
		if (strcmp(type, "cgroup") == 0 && strstr(opts, "memory") && !v1mem[0])
			snprintf(v1mem, size, "%s", dir);
	}
	fclose(f);
}

static void make_cgroup(void)
{
	char v2[PATH_MAX], v1[PATH_MAX],
		why2[PATH_MAX + 64] = "no cgroup2 mount",
				why1[PATH_MAX + 64] = "no cgroup v1 memory mount";

	find_mounts(v2, v1, sizeof(v2));
	if (v2[0] && make_cgroup_v2(v2, why2, sizeof(why2)))
		return;
	if (v1[0] && make_cgroup_v1(v1, why1, sizeof(why1)))
		return;
	skip("no memory cgroup to make pressure in (cgroup2: %s; v1: %s)", why2, why1);
}

/* ------------------------------------------------------------ thrash */

/* A file on a disk, not tmpfs: tmpfs pages cannot be reclaimed without
 * swap, so they would not thrash but OOM. */
static void pick_thrash_file(void)
{
	static const char *const dirs[] = {".", NULL};
	struct statfs sf;

	if (statfs(h_env.dir, &sf) == 0 && sf.f_type != TMPFS_MAGIC && sf.f_type != RAMFS_MAGIC) {
		snprintf(thrash_path, sizeof(thrash_path), "%s/thrash", h_env.dir);
		return;
	}
	for (int i = 0; dirs[i]; i++)
		if (statfs(dirs[i], &sf) == 0 && sf.f_type != TMPFS_MAGIC &&
		    sf.f_type != RAMFS_MAGIC && access(dirs[i], W_OK) == 0) {
			snprintf(thrash_path, sizeof(thrash_path), "%s/hak-pressure-%d.thrash",
				 dirs[i], (int)getpid());
			return;
		}
	skip("no disk-backed directory for the thrash file (%s is tmpfs)", h_env.dir);
}

static void write_thrash_file(void)
{
	static char chunk[THRASH_CHUNK];
	int fd = open(thrash_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	h_check(fd >= 0, "%s: %s", thrash_path, strerror(errno));
	memset(chunk, 0x5a, sizeof(chunk));
	for (uint64_t off = 0; off < THRASH_FILE; off += sizeof(chunk))
		h_check(write(fd, chunk, sizeof(chunk)) == (ssize_t)sizeof(chunk), "write %s: %s",
			thrash_path, strerror(errno));
	/* Written back and out of the page cache: every page must be read
	 * again, inside the small cgroup. */
	fdatasync(fd);
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
}

/* In the child: into the cgroup, then random touches of the mapping
 * until killed. */
static void thrash(void)
{
	int fd = open(thrash_path, O_RDONLY | O_CLOEXEC);
	const volatile char *m;
	uint64_t x = 0x9e3779b97f4a7c15ull, pages = THRASH_FILE / 4096, sum = 0;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (fd < 0 || !write_file(cgroup, "cgroup.procs", "%d", (int)getpid()))
		_exit(2);
	m = mmap(NULL, THRASH_FILE, PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		_exit(3);
	/* No readahead: each fault reads one page, as thrashing does. */
	madvise((void *)m, THRASH_FILE, MADV_RANDOM);
	for (;;) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		sum += (uint64_t)m[(x % pages) * 4096];
	}
	_exit((int)(sum & 1));
}

static void start_thrash(void)
{
	fflush(NULL);
	thrasher = fork();
	h_check(thrasher >= 0, "fork: %s", strerror(errno));
	if (thrasher == 0)
		thrash();
}

static void stop_thrash(void)
{
	int status;

	kill(thrasher, SIGKILL);
	waitpid(thrasher, &status, 0);
	thrasher = 0;
	if (WIFEXITED(status))
		skip("the thrashing process could not start (exit %d: cgroup %s)",
		     WEXITSTATUS(status), cgroup);
}

/* ---------------------------------------------------------------- test */

static uint64_t idle_slots(pid_t pid)
{
	char json[H_JSON];

	h_check(h_client_json(pid, json, sizeof(json)), "client %d not listed", (int)pid);
	return h_client_class_sum(json, "idle");
}

/* Every slot the client gave back taken, zeroed and idle. */
static void wait_idle(pid_t pid)
{
	char json[H_JSON];

	h_client_settled(pid, json, sizeof(json));
	h_check(h_client_class_sum(json, "idle") > 0, "no idle slots: %s", json);
}

/* Until the trigger fired and every idle slot is trimmed, or the time is
 * up.  Returns whether it fired. */
static bool wait_psi_trim(pid_t client, uint64_t ev0)
{
	uint64_t deadline = tu_now_ms() + PRESSURE_MS;

	while (tu_now_ms() < deadline) {
		if (h_stats_u64("psi_events") > ev0 && idle_slots(client) == 0)
			return true;
		tu_sleep_ms(50);
	}
	return false;
}

static void setup_daemon(void)
{
	h_write_conf("pool_size 16M\n"
		     "class 4K 25%%\n"
		     "class 64K 25%%\n"
		     "class 2M 50%%\n"
		     "ready_low 5%%\n"
		     "ready_high 10%%\n"
		     "zero_threads 1\n"
		     "trim_idle 0\n"
		     "psi_threshold 100ms\n"
		     "psi_window 2s\n"
		     "log_level debug\n");
	h_daemon_start();
	if (h_log_count("memory pressure trigger: some") == 0 &&
	    h_log_count("memory pressure trigger: window stretched") == 0)
		skip("hakzerod armed no PSI trigger (%s)",
		     access(PSI_MEMORY, F_OK) ? PSI_MEMORY " does not exist" : "see its log");
}

int main(int argc, char **argv)
{
	uint64_t ev0, t0, stall0, stall;
	struct h_proc *c;
	bool fired;
	int r = h_init("pressure", argv[0]);

	if (r)
		return r;
	atexit(cleanup);
	signal(SIGALRM, on_alarm);
	alarm(TEST_ALARM_S);
	if (access(PSI_MEMORY, R_OK) < 0)
		skip("%s: %s (kernel without PSI, or booted with psi=0)", PSI_MEMORY,
		     strerror(errno));
	setup_daemon();
	pick_thrash_file();
	make_cgroup();
	write_thrash_file();

	c = h_client("client", "hold", "--pages", "6", "--pattern", "0x47", NULL);
	h_proc_expect(c, "held", H_REACT_MS, NULL, 0);
	h_proc_say(c, "idle 600");
	h_proc_expect(c, "ok idle", H_REACT_MS, NULL, 0);
	wait_idle(c->pid);
	ev0 = h_stats_u64("psi_events");
	t0 = h_stats_u64("trimmed_bytes");
	stall0 = psi_some_total();

	start_thrash();
	fired = wait_psi_trim(c->pid, ev0);
	stop_thrash();
	/* The totals are aggregated every 2 s. */
	tu_sleep_ms(PSI_AGGREGATION_MS);
	stall = psi_some_total() - stall0;
	fprintf(stderr, "  memory stall (some) during the test: %llu ms; psi_events %llu -> %llu\n",
		(unsigned long long)stall / 1000, (unsigned long long)ev0,
		(unsigned long long)h_stats_u64("psi_events"));
	if (!fired && stall < MIN_STALL_US)
		skip("no memory pressure produced (%llu ms of stall in %d ms of thrashing in %s)",
		     (unsigned long long)stall / 1000, PRESSURE_MS, cgroup);
	h_check(fired, "%llu ms of memory stall, and no trim: psi_events %llu, idle slots %llu",
		(unsigned long long)stall / 1000, (unsigned long long)h_stats_u64("psi_events"),
		(unsigned long long)idle_slots(c->pid));
	h_check(h_stats_u64("trims_psi") > 0, "psi event without a trim");
	h_wait_stat("trimmed_bytes", t0 + 1, H_REACT_MS);
	h_log_wait("memory pressure: trimming", 1, H_REACT_MS);
	fprintf(stderr, "  trimmed %llu kB under pressure\n",
		(unsigned long long)(h_stats_u64("trimmed_bytes") - t0) / 1024);
	h_proc_say(c, "check");
	h_proc_expect(c, "ok check", H_REACT_MS, NULL, 0);
	h_proc_say(c, "fresh 50");
	h_proc_expect(c, "ok fresh", H_REACT_MS, NULL, 0);
	h_proc_say(c, "exit");
	h_proc_finish(c, H_REACT_MS, NULL, NULL, 0);
	h_daemon_assert_alive();
	h_daemon_stop();
	printf("PASS: trimmed under real memory pressure\n");
	return 0;
}
