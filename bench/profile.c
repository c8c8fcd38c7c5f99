/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * `profile`: where the CPU goes, by perf's cpu-clock samples (a software
 * event: it works in VMs without PMU access).  Runs `hakbench page` for the
 * 4 KiB class, sustained, one thread, once with mmap and once with hak,
 * each in a child under `perf record -g`; for hak the daemon is recorded
 * at the same time (`perf record -p`), since its zeroing is part of the
 * cost.  Reports the share of samples under the page-fault entry
 * (inclusive) and in clear_page* (the kernel's page zeroing), and the
 * symbols with most samples of their own.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define TOP_SYMBOLS 3
#define SYM_MAX 64
#define PROFILE_REPEATS "3"

struct profile {
	const char *method, *process;
	double cpu_ms;	  /* sampled CPU time */
	double fault_pct; /* inclusive, under exc_page_fault */
	double clear_pct; /* self, clear_page* */
	char top[TOP_SYMBOLS][SYM_MAX];
	double top_pct[TOP_SYMBOLS];
	bool ok;
};

static bool have_perf(void)
{
	return system("perf --version >/dev/null 2>&1") == 0;
}

/* Starts argv with stdout and stderr on /dev/null; returns its pid. */
static pid_t spawn(char **argv)
{
	pid_t pid = fork();

	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static int wait_ok(pid_t pid)
{
	int status;

	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -ECHILD;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ECHILD;
}

static void keep_top(struct profile *p, const char *sym, double self)
{
	for (int i = 0; i < TOP_SYMBOLS; i++) {
		if (self <= p->top_pct[i])
			continue;
		memmove(&p->top[i + 1], &p->top[i], (TOP_SYMBOLS - 1 - i) * SYM_MAX);
		memmove(&p->top_pct[i + 1], &p->top_pct[i],
			(TOP_SYMBOLS - 1 - i) * sizeof(p->top_pct[0]));
		snprintf(p->top[i], SYM_MAX, "%.*s", SYM_MAX - 1, sym);
		p->top_pct[i] = self;
		return;
	}
}

static void parse_line(struct profile *p, const char *line)
{
	double children, self;
	unsigned long long count;
	char sym[256];

	if (sscanf(line, "# Event count (approx.): %llu", &count) == 1) {
		p->cpu_ms = (double)count / 1e6; /* cpu-clock counts ns */
		return;
	}
	if (sscanf(line, " %lf%% %lf%% %*s %255s", &children, &self, sym) != 3)
		return;
	if (strcmp(sym, "exc_page_fault") == 0 && children > p->fault_pct)
		p->fault_pct = children;
	if (strncmp(sym, "clear_page", strlen("clear_page")) == 0)
		p->clear_pct += self;
	keep_top(p, sym, self);
}

static void read_report(const char *data, struct profile *p)
{
	char cmd[512], line[512];
	FILE *f;

	snprintf(cmd, sizeof(cmd),
		 "perf report -i '%s' --children --sort sym --stdio -g none 2>/dev/null", data);
	f = popen(cmd, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		parse_line(p, line);
	p->ok = pclose(f) == 0 && p->cpu_ms > 0;
}

/* perf record -p PID, stopped with SIGINT when the measured run is over. */
static pid_t record_daemon(const struct bench *b, const char *data)
{
	char pid[16];
	char *argv[] = {"perf", "record",     "-q", "-e", "cpu-clock", "-g",
			"-o",	(char *)data, "-p", pid,  NULL};

	snprintf(pid, sizeof(pid), "%d", (int)b->daemon_pid);
	return spawn(argv);
}

static int record_page(const struct bench *b, const char *method, const char *data)
{
	const char *sock = bench_socket_path(b->o);
	char pages[16];
	char *argv[] = {"perf",
			"record",
			"-q",
			"-e",
			"cpu-clock",
			"-g",
			"-o",
			(char *)data,
			"--",
			(char *)b->self,
			"page",
			"--socket",
			(char *)sock,
			"--methods",
			(char *)method,
			"--classes",
			"4K",
			"--regimes",
			"sustained",
			"--threads",
			"1",
			"--repeat",
			PROFILE_REPEATS,
			"--pages",
			pages,
			"--json",
			NULL};

	/* The caller's page count (--pages, --quick) holds here too. */
	snprintf(pages, sizeof(pages), "%u", b->o->pages);
	return wait_ok(spawn(argv));
}

static void profile_method(struct bench *b, const char *method, struct profile *client,
			   struct profile *daemon)
{
	char cdata[64], ddata[64];
	pid_t dpid = -1;
	int fd;

	snprintf(cdata, sizeof(cdata), "%s/hakbench-perf-XXXXXX", P_tmpdir);
	snprintf(ddata, sizeof(ddata), "%s/hakbench-perf-XXXXXX", P_tmpdir);
	if ((fd = mkstemp(cdata)) >= 0)
		close(fd);
	if (daemon && (fd = mkstemp(ddata)) >= 0) {
		close(fd);
		dpid = record_daemon(b, ddata);
		sleep_ns(NS_PER_SEC / 5); /* perf attaches */
	}
	fprintf(stderr, "hakbench: profile, %s\n", method);
	if (record_page(b, method, cdata) == 0)
		read_report(cdata, client);
	if (dpid > 0) {
		/* perf exits non-zero on the SIGINT that stops it: read what it
		 * wrote whatever the status. */
		kill(dpid, SIGINT);
		wait_ok(dpid);
		read_report(ddata, daemon);
		unlink(ddata);
	}
	unlink(cdata);
}

/* ---- output ---- */

static void add_row(struct bench *b, struct table *t, const struct profile *p)
{
	char top[3 * (SYM_MAX + 16)] = "";
	struct json j;

	for (int i = 0; i < TOP_SYMBOLS && p->top[i][0]; i++)
		snprintf(top + strlen(top), sizeof(top) - strlen(top), "%s%s %.0f%%", i ? ", " : "",
			 p->top[i], p->top_pct[i]);
	if (!p->ok) {
		table_row(t, "%s|%s|failed|||", p->method, p->process);
		return;
	}
	table_row(t, "%s|%s|%.0f|%.1f%%|%.1f%%|%.*s", p->method, p->process, p->cpu_ms,
		  p->fault_pct, p->clear_pct, TABLE_CELL - 1, top);
	json_begin(&j, "profile");
	json_str(&j, "method", p->method);
	json_str(&j, "process", p->process);
	json_num(&j, "cpu_ms", p->cpu_ms, 1);
	json_num(&j, "page_fault_pct", p->fault_pct, 2);
	json_num(&j, "clear_page_pct", p->clear_pct, 2);
	json_str(&j, "top_symbol", p->top[0]);
	json_end(&j, b);
}

int scenario_profile(struct bench *b)
{
	static struct table t;
	struct profile mm = {.method = "mmap", .process = "client"};
	struct profile hc = {.method = "hak", .process = "client"};
	struct profile hd = {.method = "hak", .process = "daemon"};
	bool with_daemon = bench_connected(b) && b->daemon_pid;

	if (!have_perf()) {
		if (!b->o->json)
			printf("### profile\n\nSkipped: perf is not installed (on Debian: "
			       "apt-get install linux-perf).\n\n");
		fprintf(stderr, "hakbench: profile: skipped: perf is not installed\n");
		return 0;
	}
	profile_method(b, "mmap", &mm, NULL);
	profile_method(b, "hak", &hc, with_daemon ? &hd : NULL);
	table_init(&t, "method|process|>CPU sampled, ms|>in page faults|>in clear_page*"
		       "|most samples of its own");
	add_row(b, &t, &mm);
	add_row(b, &t, &hc);
	if (with_daemon)
		add_row(b, &t, &hd);
	if (!b->o->json) {
		printf("### profile: perf record -e cpu-clock, page, 4 KiB, sustained, 1 thread, "
		       "%s runs\n\n",
		       PROFILE_REPEATS);
		table_print(&t);
	}
	return 0;
}
