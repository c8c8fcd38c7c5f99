/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The server: what runs on the loop.  Signals arrive through a signalfd
 * (no asynchronous handlers), a timer ticks every 10 ms to service every
 * session (a safety net for doorbells a client failed to ring) and to run
 * the periodic work: deadlines, idle trimming, sd_notify status and
 * watchdog.  Reloads the configuration on SIGHUP.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "clients.h"
#include "conf.h"
#include "log.h"
#include "loop.h"
#include "server.h"
#include "uring.h"
#include "util.h"
#include "zero.h"

#define TICK_NS (10 * NSEC_PER_MSEC)
/* With no client and no connection nothing needs the 10 ms safety net:
 * tick slowly enough to leave an idle machine alone, fast enough for the
 * status and the watchdog. */
#define IDLE_TICK_NS (500 * NSEC_PER_MSEC)
#define STATUS_INTERVAL_NS NSEC_PER_SEC
#define PERCENT 100u

uint64_t server_budget(const struct server *srv)
{
	const struct conf *c = srv->conf;

	if (c->global_budget_bytes)
		return c->global_budget_bytes;
	return srv->memtotal / PERCENT * c->global_budget_pct;
}

void server_stats(const struct server *srv, struct server_stats *out)
{
	struct clients_totals t;

	clients_totals(&srv->clients, &t);
	*out = srv->st;
	out->offences += t.st.offences;
	out->cut_off += t.cut_off;
	out->doorbells += t.st.doorbells;
	out->deferred += t.st.deferred;
	out->returned += t.st.returned;
	out->queued += t.st.queued;
	out->queued_bytes += t.st.queued_bytes;
	out->wakeups += srv->loop.wakeups + zero_wakeups();
	out->trimmed_bytes += t.st.trimmed_bytes;
	out->trims_idle += t.st.trims_idle;
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
		   srv->clients.n, conf_format_size(pool, sizeof(pool), srv->clients.pool_bytes),
		   clients_ready_pages(&srv->clients), srv->zero_rate);
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

static void on_tick(struct watch *w, uint32_t events)
{
	struct server *srv = w->data;
	uint64_t now = now_ns();

	loop_timer_ack(w);
	clients_tick(&srv->clients, now, srv->conf->trim_idle_ms * NSEC_PER_MSEC);
	conn_tick(srv, now);
	periodic(srv, now);
}

static int set_tick(struct server *srv, uint64_t ns)
{
	int r = loop_timer_set(&srv->tick_w, ns);

	if (r == 0)
		srv->tick_ns = ns;
	return r;
}

/* The tick the server needs now (see IDLE_TICK_NS). */
static void adjust_tick(struct server *srv)
{
	uint64_t want =
		srv->clients.n || srv->nconns || srv->listen_paused_until ? TICK_NS : IDLE_TICK_NS;

	if (srv->watchdog_ns && want > srv->watchdog_ns / 4)
		want = srv->watchdog_ns / 4;
	if (want != srv->tick_ns && set_tick(srv, want) < 0)
		log_msg(LOG_ERR, "timerfd_settime: %m");
}

static int setup_tick(struct server *srv)
{
	srv->tick_ns = TICK_NS;
	return loop_timer_add(&srv->loop, &srv->tick_w, on_tick, srv, TICK_NS);
}

/* ---- completions ---- */

static void zero_done_all(struct server *srv)
{
	struct zero_job *job = zero_take_done(), *next;

	for (; job; job = next) {
		next = job->next;
		clients_zero_done(&srv->clients, job);
	}
}

static void on_zero_done(struct watch *w, uint32_t events)
{
	zero_done_all(w->data);
}

static void on_uring(struct watch *w, uint32_t events)
{
	uring_reap();
}

static int setup_workers(struct server *srv)
{
	const struct conf *c = srv->conf;
	int r = zero_init(c->zero_threads, c->zero_method, c->zero_nice);

	if (r == 0) {
		srv->zero_w = (struct watch){zero_fd(), on_zero_done, srv};
		r = loop_add(&srv->loop, &srv->zero_w, EPOLLIN);
	}
	if (r < 0) {
		log_msg(LOG_ERR, "cannot start zeroing threads: %s", strerror(-r));
		return r;
	}
	uring_init(URING_ENTRIES);
	srv->uring_w = (struct watch){uring_fd(), on_uring, srv};
	return srv->uring_w.fd >= 0 ? loop_add(&srv->loop, &srv->uring_w, EPOLLIN) : 0;
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

static void apply_conf(struct server *srv, struct conf *c)
{
	struct conf *old = srv->conf;
	bool psi_changed = old->psi_threshold_us != c->psi_threshold_us ||
			   old->psi_window_us != c->psi_window_us;

	srv->conf = c;
	if (!srv->verbose)
		log_set_level(c->log_level);
	zero_set_nice(c->zero_nice);
	clients_set_watermarks(&srv->clients, c->ready_low, c->ready_high);
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
	int r = conf_load_default(srv->conf_path, report_to_log, NULL, &c);

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

static void on_signal(struct watch *w, uint32_t events)
{
	struct server *srv = w->data;
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
	srv->signal_w = (struct watch){fd, on_signal, srv};
	return loop_add(&srv->loop, &srv->signal_w, EPOLLIN);
}

/* ---- start and stop ---- */

static void server_clear(struct server *srv)
{
	memset(srv, 0, sizeof(*srv));
	srv->loop.epfd = -1;
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
	clients_init(&srv->clients, &srv->loop);
	r = loop_init(&srv->loop);
	if (r < 0) {
		log_msg(LOG_ERR, "epoll_create1: %s", strerror(-r));
		return r;
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
	log_started(srv);
	sd_notify(0, "READY=1");
	update_status(srv, now_ns());
	while (!srv->stopping) {
		int r = loop_dispatch(&srv->loop);

		if (r < 0) {
			log_msg(LOG_ERR, "epoll_wait: %s", strerror(-r));
			return r;
		}
		if (!uring_async())
			uring_reap();
		uring_flush();
		conn_bury(srv);
		clients_bury(&srv->clients);
		adjust_tick(srv);
	}
	sd_notify(0, "STOPPING=1");
	return 0;
}

void server_fini(struct server *srv)
{
	conn_close_all(srv);
	while (srv->clients.list)
		clients_close(&srv->clients, srv->clients.list, NULL);
	zero_stop();
	zero_done_all(srv);
	uring_fini();
	conn_bury(srv);
	clients_fini(&srv->clients);
	zero_fini();
	psi_fini(srv);
	listen_fini(srv);
	loop_close(&srv->loop, &srv->tick_w);
	loop_close(&srv->loop, &srv->signal_w);
	srv->zero_w.fd = srv->uring_w.fd = -1; /* owned by their modules */
	loop_fini(&srv->loop);
	conf_free(srv->conf);
	srv->conf = NULL;
}
