/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A small harness for the tests that run a real hakzerod and real client
 * processes (integration, hostile, crash, limits, pressure, fork, stale
 * scan, soak).
 *
 *   h_init       a fresh temporary directory with the socket and config
 *   h_daemon_*   start, signal and inspect hakzerod (its log goes to a file
 *                the tests grep; h_log_flush copies it to our stderr)
 *   h_proc_*     child processes with stdin/stdout pipes, line by line
 *   h_admin_*    admin requests over the protocol, JSON values out of them
 *   h_pid_*      /proc numbers of a process: memory, CPU, descriptors
 *
 * Everything fails through h_fail(), which calls the hook a test installs
 * (cmocka's fail_msg) or exits 1.  Every child gets PR_SET_PDEATHSIG so that
 * nothing outlives a test that dies.
 */
#ifndef HAK_TEST_HARNESS_H
#define HAK_TEST_HARNESS_H

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/un.h>

#include "testutil.h"

#define H_EXIT_SKIP 77
/* Built with a sanitizer (the daemon too, then): its allocator keeps freed
 * memory in quarantine, so resident-memory bounds mean nothing. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define H_SANITIZED 1
#else
#define H_SANITIZED 0
#endif
/* How long the daemon or a client gets to react to something. */
#define H_REACT_MS 5000
/* How long a starting daemon gets until it answers: it measures its
 * zeroing methods first, which takes seconds on a loaded machine. */
#define H_START_MS 30000
/* Pause between polls of a state nothing signals (a counter in a reply). */
#define H_POLL_MS 10
#define H_LINE 1024
#define H_JSON 16384
#define H_MAX_PROCS 48

/* ---- failing ---- */

/* Installed by a cmocka test (h_test_setup) so that h_fail ends the
 * current test only. */
extern void (*h_fail_hook)(const char *msg);
__attribute__((format(printf, 1, 2), noreturn)) void h_fail(const char *fmt, ...);
#define h_check(cond, ...)                                                                         \
	do {                                                                                       \
		if (!(cond))                                                                       \
			h_fail(__VA_ARGS__);                                                       \
	} while (0)

/* ---- time: tu_now_ms, tu_sleep_ms (testutil.h) ---- */

/* ---- environment ---- */

struct h_env {
	const char *hakzerod, *hakctl, *client, *hostile;
	char dir[80]; /* short: dir/s.sock must fit a sun_path */
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char conf[PATH_MAX];
	char log[PATH_MAX];
};
extern struct h_env h_env;

/* The client programs a test drives, besides hakzerod. */
enum {
	H_NEED_CLIENT = 1u << 0,
	H_NEED_HOSTILE = 1u << 1,
};

/* Reads $HAKZEROD, $HAKCTL and the test programs next to this one
 * ($HAK_CLIENT, $HAK_HOSTILE name others); makes the temporary
 * directory.  Returns 0, or 77 with the reason printed when hakzerod or a
 * program in need is not there (not run through `make check`). */
int h_init_need(const char *name, const char *argv0, unsigned need);
/* h_init_need for hak-client and hak-hostile. */
int h_init(const char *name, const char *argv0);
/* Kills every process, removes the directory. */
void h_cleanup(void);

/* Writes the config: the text given, plus admin_group so that admin
 * requests work without root, plus log_level info unless the text sets it. */
__attribute__((format(printf, 1, 2))) void h_write_conf(const char *fmt, ...);

/* ---- processes ---- */

struct h_proc {
	bool used;
	char name[32];
	pid_t pid;   /* 0: not running */
	int in, out; /* -1 when not piped */
	int status;  /* wait status once reaped */
	size_t len;
	char buf[16384];
	char last_fail[H_LINE];	 /* the first "fail" line */
	char last_stats[H_LINE]; /* the latest "stats" line */
	bool quiet;		 /* do not echo its lines to stderr */
};

/* Where children's stderr goes: ours (-1, the default) or this fd. */
extern int h_child_stderr;
/* Starts argv[0] with stdin/stdout piped (stderr: h_child_stderr). */
struct h_proc *h_proc_start(const char *name, char *const argv[]);
/* Starts hak-client or hak-hostile: prog COMMAND --socket S ARGS... NULL. */
struct h_proc *h_client(const char *name, const char *cmd, ...) __attribute__((sentinel));
struct h_proc *h_hostile(const char *name, const char *cmd, ...) __attribute__((sentinel));
/* The same for any such program, with the arguments in ap. */
struct h_proc *h_prog_va(const char *prog, const char *name, const char *cmd, va_list ap);
/* h_client as another user (we must be root); it exits 126 at once when
 * it cannot switch, 127 when it cannot exec. */
struct h_proc *h_client_as(uid_t uid, gid_t gid, const char *name, const char *cmd, ...)
	__attribute__((sentinel));
/* Next line of output: 1, 0 at end of output, -ETIMEDOUT. */
int h_proc_line(struct h_proc *p, char *line, size_t size, uint64_t deadline_ms);
/* Non-blocking: a whole line already read, or what poll now delivers. */
int h_proc_try_line(struct h_proc *p, char *line, size_t size);
/* Reads until a line starting with prefix; a "fail" line, the end or the
 * timeout fail the test. */
void h_proc_expect(struct h_proc *p, const char *prefix, unsigned timeout_ms, char *line,
		   size_t size);
void h_proc_say(struct h_proc *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reads to the end, reaps; fails unless it exited 0 without a "fail" line.
 * The last line starting with last_prefix (may be NULL) goes to line. */
void h_proc_finish(struct h_proc *p, unsigned timeout_ms, const char *last_prefix, char *line,
		   size_t size);
/* Reaps, waiting up to timeout_ms before SIGKILL.  Returns the status. */
int h_proc_reap(struct h_proc *p, unsigned timeout_ms);
void h_proc_kill(struct h_proc *p, int sig);
void h_proc_release(struct h_proc *p);
/* Releases every process but the daemon. */
void h_procs_release_all(void);

/* key=value out of a line; fails when the key is missing. */
uint64_t h_line_u64(const char *line, const char *key);

/* ---- the daemon ---- */

extern struct h_proc *h_daemon;
/* Called in the daemon's process just before exec, when set: a test gives
 * it descriptors to inherit, or a socket as systemd passes one. */
extern void (*h_daemon_pre_exec)(void);

void h_daemon_start(void);
/* Also starts it when it was not running. */
void h_daemon_restart(void);
bool h_daemon_alive(void);
void h_daemon_assert_alive(void);
/* SIGKILL and reap. */
void h_daemon_kill(void);
/* SIGTERM, and a clean exit within H_REACT_MS. */
void h_daemon_stop(void);
/* The same for teardowns, which must not fail by longjmp: returns 0, or
 * -1 (said on stderr) when the daemon had died, did not exit in time or
 * exited non-zero (in a sanitizer build: LeakSanitizer found leaks). */
int h_daemon_finish(void);
pid_t h_daemon_pid(void);

/* Copies the daemon log written since the last flush to stderr. */
void h_log_flush(void);
/* Marks the log as flushed without copying it. */
void h_log_skip(void);
/* Occurrences of needle in the daemon log (all of it). */
unsigned h_log_count(const char *needle);
/* Waits up to timeout_ms until the log has at least n occurrences. */
void h_log_wait(const char *needle, unsigned n, unsigned timeout_ms);

/* ---- cmocka (harness-cmocka.c) ---- */

/* Per test: h_fail ends the current test only (the hook), and after it
 * the daemon log so far goes to stderr. */
int h_test_setup(void **state);
int h_test_teardown(void **state);
/* Per group: starts hakzerod on the config h_write_conf wrote; at the end
 * releases every process, stops the daemon (h_daemon_finish) and removes
 * the temporary directory (h_cleanup). */
int h_group_setup(void **state);
int h_group_teardown(void **state);
/* cmocka_run_group_tests, then h_cleanup; the exit status of the test. */
#define h_run_tests(tests, group_setup, group_teardown)                                            \
	h_run_finish(cmocka_run_group_tests(tests, group_setup, group_teardown))
int h_run_finish(int failed);

/* ---- admin ---- */

int h_connect(void);
/* A listening socket at h_env.sock, open to every user: what systemd
 * passes a socket-activated daemon (LISTEN_FDS).  Not close-on-exec. */
int h_listen(int backlog);
/* One admin request in JSON; the whole reply text in out.  Returns the
 * reply status (0 or -errno) or a transport error. */
int h_admin(uint32_t cmd, int32_t pid, char *out, size_t size);
/* The same on a connection of the caller's (h_connect()); closes fd. */
int h_admin_on(int fd, uint32_t cmd, int32_t pid, char *out, size_t size);
/* A number out of JSON text; fails when missing. */
uint64_t h_json_u64(const char *json, const char *key);
/* Whether key is in json. */
bool h_json_has(const char *json, const char *key);
uint64_t h_status_u64(const char *key);
uint64_t h_stats_u64(const char *key);
/* The `clients` line of the client with this pid, or false. */
bool h_client_json(pid_t pid, char *out, size_t size);
/* Sum of one per-class key (e.g. "idle") over the client's classes, in
 * slots, or in bytes (times each class's slot size). */
uint64_t h_client_class_sum(const char *json, const char *key);
uint64_t h_client_class_bytes(const char *json, const char *key);
/* Polls until the daemon has taken every slot the client pushed back
 * (its own "returned" equals the client's) and zeroed them all (no class
 * has returned or busy slots); the client's line in json. */
void h_client_settled(pid_t pid, char *json, size_t size);
/* Polls until status says `clients` clients, up to H_REACT_MS. */
void h_wait_clients(uint64_t clients, const char *why);
/* Polls until stats[key] >= value, up to timeout_ms; returns the value. */
uint64_t h_wait_stat(const char *key, uint64_t value, unsigned timeout_ms);
/* `hakctl --socket S --json ARGS...` (NULL-terminated); its stdout in out.
 * Returns its exit status. */
int h_hakctl(char *out, size_t size, ...) __attribute__((sentinel));

/* ---- /proc ---- */

struct h_mem {
	uint64_t rss, anon, shmem, file; /* bytes, from /proc/PID/status */
};
bool h_pid_mem(pid_t pid, struct h_mem *m);
/* user + system CPU time of every thread, in ms. */
uint64_t h_pid_cpu_ms(pid_t pid);
/* Open descriptors. */
int h_pid_fds(pid_t pid);

#endif
