/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The server: one thread, one loop.  It owns the listening socket, the
 * connections that have not said who they are yet (conn.c), the client list
 * (clients.c), the signalfd, the 10 ms tick, the zeroing completions,
 * io_uring completions and the memory-pressure trigger (psi.c).
 */
#ifndef HAKD_SERVER_H
#define HAKD_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "clients.h"
#include "loop.h"

struct conn;
struct conf;
struct strbuf;

/* The daemon's counters, as admin STATS reports them. */
struct server_stats {
	uint64_t connections;	/* accepted */
	uint64_t clients_total; /* welcomed */
	uint64_t refused;
	uint64_t offences;
	uint64_t cut_off;
	uint64_t admin_requests;
	uint64_t admin_denied;
	uint64_t doorbells;
	uint64_t deferred; /* times a client went over its budget */
	uint64_t returned; /* slots accepted back, all clients */
	uint64_t queued;   /* slots put on ready rings, all clients */
	uint64_t queued_bytes;
	uint64_t wakeups; /* of the main loop and of the zeroing workers */
	uint64_t trimmed_bytes;
	uint64_t trims_idle, trims_psi, trims_admin;
	uint64_t psi_events;
	uint64_t reloads, reload_failures;
};

struct server {
	struct conf *conf;
	const char *conf_path;	     /* --config, or NULL */
	const char *socket_override; /* --socket, or NULL */
	bool verbose;
	struct loop loop;
	struct watch listen_w, signal_w, tick_w, zero_w, uring_w, psi_w;
	bool listen_from_systemd;
	uint64_t listen_paused_until; /* out of descriptors: accept later */
	char *bound_path;	      /* the socket we created, unlinked at exit */
	struct clients clients;
	struct conn *conns; /* not yet a client, or an admin request */
	struct conn *conn_grave;
	unsigned nconns;
	/* The server's own counters; those the sessions keep are summed in
	 * by server_stats(). */
	struct server_stats st;
	uint64_t start_ns;
	uint64_t memtotal; /* bytes, for a budget in percent */
	uint64_t hugepage_size;
	bool stopping;
	/* periodic work */
	uint64_t tick_ns;
	uint64_t last_status_ns, last_zeroed_pages;
	double zero_rate; /* pages per second */
	uint64_t watchdog_ns, last_watchdog_ns;
};

/* Takes ownership of conf.  conf_path is the file to re-read on SIGHUP
 * (NULL: the default path if it exists). */
int server_init(struct server *srv, struct conf *conf, const char *conf_path,
		const char *socket_override, bool verbose);
/* Runs until SIGTERM/SIGINT.  Returns 0 or -errno. */
int server_run(struct server *srv);
void server_fini(struct server *srv);

/* The global budget in bytes (0: none). */
uint64_t server_budget(const struct server *srv);
/* The daemon's counters: the server's own plus the clients' totals. */
void server_stats(const struct server *srv, struct server_stats *out);

/* ---- conn.c: connections until HELLO makes them clients, admin requests ---- */

/* The listening socket's watch function (data: the server). */
void conn_accept(struct watch *w, uint32_t events);
/* Cuts off connections past their deadline; resumes accepting. */
void conn_tick(struct server *srv, uint64_t now);
void conn_close_all(struct server *srv);
/* Frees the connections closed during this loop turn. */
void conn_bury(struct server *srv);

/* ---- listen.c ---- */

int listen_init(struct server *srv);
/* Before anything slow (the zeroing measurement): -EADDRINUSE, logged, when
 * a daemon already answers on path; 0 otherwise, or with a socket from
 * systemd. */
int listen_check_free(const char *path);
/* Started by systemd but unable to serve (a config error): closes the
 * connections waiting on its socket.  Returns how many. */
int listen_drain_passed(void);
void listen_fini(struct server *srv);

/* ---- psi.c: memory-pressure trigger ---- */

/* Arms the trigger the config asks for (none: nothing); failures are logged
 * and leave it off. */
void psi_init(struct server *srv);
void psi_fini(struct server *srv);

/* ---- admin.c ---- */

/* Whether the peer on fd may send admin requests: uid 0, or a member of
 * admin_group when it connected. */
bool admin_allowed(const struct server *srv, int fd, const struct ucred *cred);
/* Answers one request into out (text or JSON).  Returns the reply status:
 * 0 or -errno (with the message in out). */
int admin_handle(struct server *srv, int fd, const struct ucred *cred, uint32_t cmd, uint32_t flags,
		 int32_t pid, struct strbuf *out);

#endif
