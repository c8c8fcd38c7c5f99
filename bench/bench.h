/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hakbench's scenarios and what they share.
 *
 *   hakbench.c   command line, the scenario table, `all`
 *   common.c     clocks, CPU time of a process, the daemon (pid, counters,
 *                waiting for it to go idle, stopping it), the client
 *   output.c     padded Markdown tables and one-JSON-object-per-line output
 *   methods.c    the ways of getting zero-filled memory that `page` compares
 *   page.h       `page`'s matrix: regimes, classes, one result per cell
 *   page.c       `page`: allocate -> write -> free, ns and CPU per page
 *   page-report.c  its tables and JSON rows
 *   zerobw.c     `zero`: the daemon's zeroing against one core's bandwidth
 *   latency.c    `latency`: the distribution of one allocation's latency
 *   profile.c    `profile`: perf samples in page faults and clear_page*
 *
 * A "page" is always 4 KiB: per-page figures divide by the number of 4 KiB
 * pages touched, whatever the size class.
 *
 * hakbench prints measurements and their ratios within one run.  Which
 * ratios are targets, whether they are met, and why not, is the report's
 * business: bench/targets.py reads the JSON lines (`make bench`).
 */
#ifndef HAKBENCH_BENCH_H
#define HAKBENCH_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "hak_size.h"
#include "hakclient.h"

#define PAGE 4096u
#define NS_PER_SEC 1000000000ull
#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define EXIT_SKIP 77

#define BENCH_MAX_CLASSES 3
#define BENCH_MAX_THREADS 2
#define MAX_REPEATS 31

struct options {
	const char *socket;
	const char *json_file; /* JSON lines also go here (the report reads them) */
	bool json;	       /* JSON lines instead of tables on stdout */
	bool allow_fallback;
	bool quick;	   /* fewer pages and repeats: a smoke run */
	bool stall_daemon; /* page, latency: may SIGSTOP the daemon for a while */
	unsigned pages;
	unsigned repeats;
	unsigned batch_bytes;
	pid_t daemon_pid; /* --daemon-pid; else asked with an admin STATUS */
	/* page: which parts of the matrix (bit masks; 0 = all) */
	unsigned methods, classes, regimes, threads;
};

struct bench {
	const struct options *o;
	struct hak_client *client;
	pid_t daemon_pid; /* 0: unknown */
	FILE *json_file;
	const char *self; /* this program, for perf's child runs */
};

/* ---- common.c ---- */

__attribute__((format(printf, 1, 2), noreturn)) void die(const char *fmt, ...);
/* A number in 1..max from an option's argument, or exit 2 naming the option. */
uint64_t parse_count(const char *s, const char *what, uint64_t max);
uint64_t now_ns(void);
uint64_t thread_cpu_ns(void);
uint64_t process_faults(void);
/* CPU time of every thread of pid (ns), or -1 when it cannot be read. */
int64_t process_cpu_ns(pid_t pid);
void sleep_ns(uint64_t ns);
double median(double *v, unsigned n); /* sorts v */
const char *size_name(size_t bytes, char *buf, size_t len);

const char *bench_socket_path(const struct options *o);
/* One admin request (HAK_ADMIN_*) in JSON; the reply's text, NUL-terminated,
 * in out.  Root or the admin group only: anyone else gets false. */
bool bench_admin_request(const char *path, uint32_t cmd, char *out, size_t len);
/* "key":NUMBER in a flat JSON object. */
bool bench_json_u64(const char *text, const char *key, uint64_t *v);
/* Connects b->client (or dies, unless --allow-fallback) and finds the
 * daemon's pid. */
void bench_open(struct bench *b, const struct options *o);
void bench_close(struct bench *b);
bool bench_connected(const struct bench *b);
struct hak_client_stats bench_stats(const struct bench *b);
/* sum += z - a, for the allocation counters. */
void stats_add_delta(struct hak_client_stats *sum, const struct hak_client_stats *a,
		     const struct hak_client_stats *z);

/* The daemon's CPU time (ns), -1 when unknown. */
int64_t daemon_cpu_ns(const struct bench *b);
/* Waits until the daemon has gone idle (its CPU time stops growing), at
 * most a bounded time; returns its CPU time then, or -1 when unknown. */
int64_t daemon_quiesce(const struct bench *b);
/* Stops (true) or continues (false) the daemon; false when not allowed. */
bool daemon_pause(const struct bench *b, bool stop);

struct daemon_counters {
	uint64_t zeroed_pages; /* 4 KiB pages its workers zeroed */
	uint64_t zero_ns;      /* time its workers spent zeroing */
	char zero_method[16];
	bool ok;
};
/* From an admin STATS and STATUS (root or the admin group). */
struct daemon_counters daemon_counters(const struct bench *b);

/* ---- output.c ---- */

#define TABLE_MAX_COLS 14
#define TABLE_MAX_ROWS 128
#define TABLE_CELL 96

struct table {
	unsigned ncols, nrows;
	char head[TABLE_MAX_COLS][TABLE_CELL];
	bool right[TABLE_MAX_COLS]; /* numbers: right-aligned */
	char cell[TABLE_MAX_ROWS][TABLE_MAX_COLS][TABLE_CELL];
};

/* spec: "Name|>Number|..." ('>' = right-aligned). */
void table_init(struct table *t, const char *spec);
/* Cells in column order, separated by '|'. */
__attribute__((format(printf, 2, 3))) void table_row(struct table *t, const char *fmt, ...);
void table_print(const struct table *t);

/* One JSON object: json_begin, fields, json_end (stdout with --json, and
 * the --json-file). */
struct json {
	char buf[2048];
	size_t len;
};
void json_begin(struct json *j, const char *scenario);
void json_str(struct json *j, const char *key, const char *v);
void json_u64(struct json *j, const char *key, uint64_t v);
void json_num(struct json *j, const char *key, double v, int decimals); /* < 0 -> null */
void json_bool(struct json *j, const char *key, bool v);
void json_end(struct json *j, const struct bench *b);

/* ---- scenarios ---- */

int scenario_page(struct bench *b);
int scenario_zero(struct bench *b);
int scenario_latency(struct bench *b);
int scenario_profile(struct bench *b);

#endif
