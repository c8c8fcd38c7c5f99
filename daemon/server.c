/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The event loop: one thread, one epoll.  Signals arrive through a signalfd
 * (no asynchronous handlers), a timerfd ticks every 10 ms to service every
 * session (a safety net for doorbells a client failed to ring) and to run
 * the periodic work: deadlines, idle trimming, sd_notify status and
 * watchdog.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "server.h"
#include "session.h"
#include "uring.h"
#include "util.h"
#include "zero.h"

#define TICK_NS (10 * NSEC_PER_MSEC)
/* With no client and no connection nothing needs the 10 ms safety net:
 * tick slowly enough to leave an idle machine alone, fast enough for the
 * status and the watchdog. */
#define IDLE_TICK_NS (500 * NSEC_PER_MSEC)
#define STATUS_INTERVAL_NS NSEC_PER_SEC
#define MAX_EVENTS 64
#define PERCENT 100u

int server_watch_add(struct server *srv, struct watch *w, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};

	return epoll_ctl(srv->epfd, EPOLL_CTL_ADD, w->fd, &ev) < 0 ? -errno : 0;
}

int server_watch_mod(struct server *srv, struct watch *w, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};

	return epoll_ctl(srv->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0 ? -errno : 0;
}

void server_watch_del(struct server *srv, struct watch *w)
{
	if (w->fd >= 0)
		epoll_ctl(srv->epfd, EPOLL_CTL_DEL, w->fd, NULL);
}

static void close_watch(struct server *srv, struct watch *w)
{
	server_watch_del(srv, w);
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
}

uint64_t server_budget(const struct server *srv)
{
	const struct conf *c = srv->conf;

	if (c->global_budget_bytes)
		return c->global_budget_bytes;
	return srv->memtotal / PERCENT * c->global_budget_pct;
}

uint64_t server_uid_bytes(const struct server *srv, uid_t uid)
{
	uint64_t bytes = 0;

	for (const struct session *s = srv->sessions; s; s = s->next)
		if (s->uid == uid)
			bytes += s->pool_size;
	return bytes;
}

uint64_t server_ready_pages(const struct server *srv)
{
	uint64_t pages = 0;

	for (const struct session *s = srv->sessions; s; s = s->next)
		pages += session_ready_pages(s);
	return pages;
}

/* A "Key:   N kB" line of /proc/meminfo, in bytes (0 when absent). */
static uint64_t meminfo(const char *key)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[256];
	size_t klen = strlen(key);
	unsigned long long kb = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, klen) == 0 && sscanf(line + klen, " %llu", &kb) == 1)
			break;
	fclose(f);
	return kb * KIB;
}

/* ---- periodic work ---- */

static void update_status(struct server *srv, uint64_t now)
{
	struct zero_stats zs;
	char pool[32];
	double dt = (double)(now - srv->last_status_ns) / (double)NSEC_PER_SEC;

	zero_get_stats(&zs);
	if (srv->last_status_ns && dt > 0)
		srv->zero_rate = (double)(zs.pages - srv->last_zeroed_pages) / dt;
	srv->last_zeroed_pages = zs.pages;
	srv->last_status_ns = now;
	sd_notifyf(0,
		   "STATUS=%u clients, %s in pools, %" PRIu64 " pages ready, %.0f pages/s zeroed",
		   srv->nclients, conf_format_size(pool, sizeof(pool), srv->pool_bytes),
		   server_ready_pages(srv), srv->zero_rate);
}

static void periodic(struct server *srv, uint64_t now)
{
	if (now - srv->last_status_ns >= STATUS_INTERVAL_NS)
		update_status(srv, now);
	if (srv->watchdog_ns && now - srv->last_watchdog_ns >= srv->watchdog_ns / 2) {
		sd_notify(0, "WATCHDOG=1");
		srv->last_watchdog_ns = now;
	}
}

static void on_tick(struct server *srv, struct watch *w, uint32_t events)
{
	uint64_t expirations, now = now_ns();
	struct session *next;

	if (read(w->fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		log_msg(LOG_ERR, "timerfd: %m");
	for (struct session *s = srv->sessions; s; s = next) {
		next = s->next;
		session_tick(s, now);
	}
	conn_tick(srv, now);
	periodic(srv, now);
}

static int set_tick(struct server *srv, uint64_t ns)
{
	struct itimerspec its = {
		.it_interval = {.tv_sec = ns / NSEC_PER_SEC, .tv_nsec = ns % NSEC_PER_SEC},
		.it_value = {.tv_sec = ns / NSEC_PER_SEC, .tv_nsec = ns % NSEC_PER_SEC},
	};

	if (timerfd_settime(srv->tick_w.fd, 0, &its, NULL) < 0)
		return -errno;
	srv->tick_ns = ns;
	return 0;
}

/* The tick the server needs now (see IDLE_TICK_NS). */
static void adjust_tick(struct server *srv)
{
	uint64_t want =
		srv->nclients || srv->nconns || srv->listen_paused_until ? TICK_NS : IDLE_TICK_NS;

	if (srv->watchdog_ns && want > srv->watchdog_ns / 4)
		want = srv->watchdog_ns / 4;
	if (want != srv->tick_ns && set_tick(srv, want) < 0)
		log_msg(LOG_ERR, "timerfd_settime: %m");
}

static int setup_tick(struct server *srv)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	srv->tick_w = (struct watch){fd, on_tick};
	if (set_tick(srv, TICK_NS) < 0)
		return -errno;
	return server_watch_add(srv, &srv->tick_w, EPOLLIN);
}

/* ---- completions ---- */

static void on_zero_done(struct server *srv, struct watch *w, uint32_t events)
{
	struct zero_job *job = zero_take_done(), *next;

	for (; job; job = next) {
		next = job->next;
		session_zero_done(job);
	}
}

static void on_uring(struct server *srv, struct watch *w, uint32_t events)
{
	uring_reap();
}

static int setup_workers(struct server *srv)
{
	const struct conf *c = srv->conf;
	int r = zero_init(c->zero_threads, c->zero_method, c->zero_nice);

	if (r == 0) {
		srv->zero_w = (struct watch){zero_fd(), on_zero_done};
		r = server_watch_add(srv, &srv->zero_w, EPOLLIN);
	}
	if (r < 0) {
		log_msg(LOG_ERR, "cannot start zeroing threads: %s", strerror(-r));
		return r;
	}
	uring_init(URING_ENTRIES);
	srv->uring_w = (struct watch){uring_fd(), on_uring};
	return srv->uring_w.fd >= 0 ? server_watch_add(srv, &srv->uring_w, EPOLLIN) : 0;
}

/* ---- signals and reload ---- */

static void report_to_log(void *data, const char *msg)
{
	log_msg(LOG_ERR, "%s", msg);
}

static void log_changed(void *data, const char *key, const char *was, const char *now, bool live)
{
	if (live)
		log_msg(LOG_INFO, "reload: %s changed from %s to %s", key, was, now);
	else
		log_msg(LOG_WARNING,
			"reload: %s changed from %s to %s; it takes effect after a restart", key,
			was, now);
}

/* The file to read: --config, else the default path when it exists. */
static int load_conf(const struct server *srv, struct conf **out)
{
	const char *path = srv->conf_path;

	if (!path && access(CONF_DEFAULT_PATH, F_OK) == 0)
		path = CONF_DEFAULT_PATH;
	if (!path) {
		*out = conf_new_defaults();
		return *out ? 0 : -ENOMEM;
	}
	return conf_load(path, report_to_log, NULL, out);
}

static void apply_conf(struct server *srv, struct conf *c)
{
	struct conf *old = srv->conf;
	bool psi_changed = old->psi_threshold_us != c->psi_threshold_us ||
			   old->psi_window_us != c->psi_window_us;

	srv->conf = c;
	if (!srv->verbose)
		log_set_level(c->log_level);
	zero_set_nice(c->zero_nice);
	for (struct session *s = srv->sessions; s; s = s->next)
		session_set_watermarks(s, c->ready_low, c->ready_high);
	if (psi_changed) {
		psi_fini(srv);
		psi_init(srv);
	}
	srv->memtotal = meminfo("MemTotal:");
	conf_free(old);
}

static int reload(struct server *srv)
{
	struct conf *c = NULL;
	int r = load_conf(srv, &c);

	if (r == 0 && srv->socket_override)
		r = conf_set_socket(c, srv->socket_override);
	if (r == 0) {
		conf_diff(srv->conf, c, log_changed, NULL);
		r = conf_keep_restart_settings(c, srv->conf);
	}
	if (r < 0) {
		conf_free(c);
		return r;
	}
	apply_conf(srv, c);
	return 0;
}

static void server_reload(struct server *srv)
{
	int r;

	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64, now_ns() / NSEC_PER_USEC);
	r = reload(srv);
	if (r < 0) {
		srv->st.reload_failures++;
		log_msg(LOG_ERR, "reload failed (%s); keeping the running configuration",
			strerror(-r));
	} else {
		srv->st.reloads++;
		log_msg(LOG_NOTICE, "configuration reloaded from %s", srv->conf->path);
	}
	sd_notify(0, "READY=1");
}

static void on_signal(struct server *srv, struct watch *w, uint32_t events)
{
	struct signalfd_siginfo si;

	while (read(w->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			server_reload(srv);
		} else {
			log_msg(LOG_NOTICE, "stopping on %s", strsignal((int)si.ssi_signo));
			srv->stopping = true;
		}
	}
}

static int setup_signals(struct server *srv)
{
	sigset_t ss;
	int fd;

	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGHUP);
	/* Blocked before any thread starts, so every thread inherits it and
	 * the signals wait for the signalfd. */
	if (sigprocmask(SIG_BLOCK, &ss, NULL) < 0)
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	fd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	srv->signal_w = (struct watch){fd, on_signal};
	return server_watch_add(srv, &srv->signal_w, EPOLLIN);
}

/* ---- start and stop ---- */

static void server_clear(struct server *srv)
{
	memset(srv, 0, sizeof(*srv));
	srv->epfd = -1;
	srv->listen_w.fd = srv->signal_w.fd = srv->tick_w.fd = -1;
	srv->zero_w.fd = srv->uring_w.fd = srv->psi_w.fd = -1;
}

static void setup_watchdog(struct server *srv)
{
	uint64_t usec;

	if (sd_watchdog_enabled(0, &usec) > 0)
		srv->watchdog_ns = usec * NSEC_PER_USEC;
}

int server_init(struct server *srv, struct conf *conf, const char *conf_path,
		const char *socket_override, bool verbose)
{
	int r;

	server_clear(srv);
	srv->conf = conf;
	srv->conf_path = conf_path;
	srv->socket_override = socket_override;
	srv->verbose = verbose;
	srv->start_ns = now_ns();
	srv->memtotal = meminfo("MemTotal:");
	srv->hugepage_size = meminfo("Hugepagesize:");
	srv->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (srv->epfd < 0) {
		log_msg(LOG_ERR, "epoll_create1: %m");
		return -errno;
	}
	r = setup_signals(srv);
	if (r < 0)
		log_msg(LOG_ERR, "cannot set up signal handling: %s", strerror(-r));
	if (r == 0)
		r = setup_workers(srv); /* logs its errors */
	if (r == 0)
		r = listen_init(srv); /* logs its errors */
	if (r == 0 && (r = setup_tick(srv)) < 0)
		log_msg(LOG_ERR, "cannot set up the timer: %s", strerror(-r));
	if (r < 0)
		return r;
	psi_init(srv);
	setup_watchdog(srv);
	return 0;
}

static void log_started(const struct server *srv)
{
	char pool[16], max[16], budget[16];
	const struct conf *c = srv->conf;

	log_msg(LOG_INFO,
		"ready: pool %s (max %s), global budget %s, %u classes, %u zeroing threads",
		conf_format_size(pool, sizeof(pool), c->pool_size),
		conf_format_size(max, sizeof(max), c->pool_size_max),
		server_budget(srv) ? conf_format_size(budget, sizeof(budget), server_budget(srv))
				   : "none",
		c->nclasses, c->zero_threads);
}

int server_run(struct server *srv)
{
	struct epoll_event ev[MAX_EVENTS];

	log_started(srv);
	sd_notify(0, "READY=1");
	update_status(srv, now_ns());
	while (!srv->stopping) {
		int n = epoll_wait(srv->epfd, ev, MAX_EVENTS, -1);

		if (n < 0 && errno != EINTR) {
			log_msg(LOG_ERR, "epoll_wait: %m");
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			struct watch *w = ev[i].data.ptr;

			w->fn(srv, w, ev[i].events);
		}
		if (!uring_async())
			uring_reap();
		uring_flush();
		server_bury(srv);
		adjust_tick(srv);
	}
	sd_notify(0, "STOPPING=1");
	return 0;
}

void server_fini(struct server *srv)
{
	struct zero_job *job, *next;

	conn_close_all(srv);
	while (srv->sessions)
		server_close_session(srv, srv->sessions, NULL);
	zero_stop();
	for (job = zero_take_done(); job; job = next) {
		next = job->next;
		session_zero_done(job);
	}
	uring_fini();
	server_bury(srv);
	zero_fini();
	psi_fini(srv);
	listen_fini(srv);
	close_watch(srv, &srv->tick_w);
	close_watch(srv, &srv->signal_w);
	srv->zero_w.fd = srv->uring_w.fd = -1; /* owned by their modules */
	if (srv->epfd >= 0)
		close(srv->epfd);
	srv->epfd = -1;
	conf_free(srv->conf);
	srv->conf = NULL;
}
