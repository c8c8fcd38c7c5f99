/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Admin requests (hakctl): status, clients, stats, trim.  Text for people,
 * or JSON (HAK_ADMIN_F_JSON): one object for status and stats, one object
 * per line for clients.  Trim is for root and members of admin_group;
 * status, clients and stats also for the members of the socket's group.
 */
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "clients.h"
#include "conf.h"
#include "hak_proto.h"
#include "hak_size.h"
#include "server.h"
#include "session.h"
#include "strbuf.h"
#include "uring.h"
#include "util.h"
#include "zero.h"

#define STATUS_LINE_MAX 4096
#define MAX_GROUPS 1024

/* The peer's supplementary groups as the kernel recorded them when it
 * connected (SO_PEERGROUPS, Linux 4.13), like the uid SO_PEERCRED gives:
 * 1 member, 0 not, -ENOPROTOOPT when the kernel cannot say. */
static int peer_groups_contain(int fd, gid_t gid)
{
	gid_t small[64], *groups = small;
	socklen_t len = sizeof(small);
	int r = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len);

	if (r < 0 && errno == ERANGE && len <= MAX_GROUPS * sizeof(gid_t)) {
		groups = malloc(len);
		r = groups ? getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) : -1;
	}
	if (r < 0) {
		r = errno == ENOPROTOOPT ? -ENOPROTOOPT : 0;
	} else {
		r = 0;
		for (size_t i = 0; i < len / sizeof(gid_t); i++)
			if (groups[i] == gid)
				r = 1;
	}
	if (groups != small)
		free(groups);
	return r;
}

/* Kernels without SO_PEERGROUPS: the Groups: line of /proc/PID/status, the
 * peer's supplementary groups as they are now, with no name service
 * involved (racy: the pid may be another process by now). */
static int proc_groups_contain(pid_t pid, gid_t gid)
{
	char path[64], line[STATUS_LINE_MAX];
	int found = -ENOENT;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char *p = line + strlen("Groups:"), *end;

		if (strncmp(line, "Groups:", strlen("Groups:")) != 0)
			continue;
		found = 0;
		for (unsigned long g = strtoul(p, &end, 10); end != p; g = strtoul(p, &end, 10)) {
			if ((gid_t)g == gid)
				found = 1;
			p = end;
		}
		break;
	}
	fclose(f);
	return found;
}

/* Fallback (the peer's pid is not visible here): the groups the user
 * database gives its uid. */
static bool user_in_group(uid_t uid, gid_t primary, gid_t gid)
{
	struct passwd *pw = getpwuid(uid);
	gid_t groups[MAX_GROUPS];
	int n = MAX_GROUPS;

	if (!pw || getgrouplist(pw->pw_name, primary, groups, &n) < 0)
		return false;
	for (int i = 0; i < n; i++)
		if (groups[i] == gid)
			return true;
	return false;
}

/* Whether the peer is in group gid: its primary group, else the groups the
 * kernel recorded at connect, else (old kernels) those of its pid or uid. */
static bool peer_in_group(int fd, const struct ucred *cred, gid_t gid)
{
	int r;

	if (cred->gid == gid)
		return true;
	r = peer_groups_contain(fd, gid);
	if (r != -ENOPROTOOPT)
		return r == 1;
	r = cred->pid > 0 ? proc_groups_contain(cred->pid, gid) : -ESRCH;
	if (r >= 0)
		return r == 1;
	return user_in_group(cred->uid, cred->gid, gid);
}

bool admin_allowed(const struct server *srv, int fd, const struct ucred *cred)
{
	const struct conf *c = srv->conf;

	if (cred->uid == 0)
		return true;
	return c->admin_group && peer_in_group(fd, cred, c->admin_gid);
}

/* The group of the socket file: systemd's SocketGroup=, or socket_group
 * (or else the daemon's own group).  -errno when it cannot be told. */
static int socket_group(const struct server *srv, gid_t *gid)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);
	struct stat st;

	memset(&sa, 0, sizeof(sa));
	if (getsockname(srv->listen_w.fd, (struct sockaddr *)&sa, &len) < 0)
		return -errno;
	if (sa.sun_path[0] == '\0' || stat(sa.sun_path, &st) < 0)
		return -ENOENT;
	*gid = st.st_gid;
	return 0;
}

/* Status, clients and stats: the admin, or a member of the socket's group,
 * who may use the pool anyway.  Trim stays with the admin. */
static bool reader_allowed(const struct server *srv, int fd, const struct ucred *cred)
{
	gid_t gid;

	if (admin_allowed(srv, fd, cred))
		return true;
	return socket_group(srv, &gid) == 0 && peer_in_group(fd, cred, gid);
}

/* ---- status ---- */

static void status_json(struct server *srv, struct strbuf *o)
{
	struct zero_stats zs;
	struct server_stats st;

	zero_get_stats(&zs);
	server_stats(srv, &st);
	strbuf_printf(o,
		      "{\"pid\":%d,\"version\":\"%s\",\"uptime_s\":%" PRIu64 ",\"clients\":%u,"
		      "\"pool_bytes\":%" PRIu64 ",\"ready_pages\":%" PRIu64
		      ",\"zeroed_pages\":%" PRIu64 ",\"zeroed_pages_per_s\":%.0f,"
		      "\"zero_method\":\"%s\",\"zero_gbps\":%.2f,\"offences\":%" PRIu64
		      ",\"refused\":%" PRIu64 ",\"trimmed_bytes\":%" PRIu64
		      ",\"budget_bytes\":%" PRIu64 "}\n",
		      (int)getpid(), PACKAGE_VERSION, (now_ns() - srv->start_ns) / NSEC_PER_SEC,
		      srv->clients.n, srv->clients.pool_bytes, clients_ready_pages(&srv->clients),
		      zs.pages, srv->zero_rate, zero_method_name(zero_current_method()),
		      zero_current_gbps(), st.offences, st.refused, st.trimmed_bytes,
		      server_budget(srv));
}

static void status_text(struct server *srv, struct strbuf *o)
{
	struct zero_stats zs;
	struct server_stats st;
	uint64_t up = (now_ns() - srv->start_ns) / NSEC_PER_SEC;
	char pool[16], budget[16], trimmed[16];

	zero_get_stats(&zs);
	server_stats(srv, &st);
	strbuf_printf(o, "hakzerod %s, pid %d, up %" PRIu64 "s\n", PACKAGE_VERSION, (int)getpid(),
		      up);
	strbuf_printf(o, "clients:      %u (max %u)\n", srv->clients.n, srv->conf->max_clients);
	strbuf_printf(o, "pools:        %s (budget %s)\n",
		      conf_format_size(pool, sizeof(pool), srv->clients.pool_bytes),
		      server_budget(srv)
			      ? conf_format_size(budget, sizeof(budget), server_budget(srv))
			      : "none");
	strbuf_printf(o, "ready pages:  %" PRIu64 "\n", clients_ready_pages(&srv->clients));
	strbuf_printf(o, "zeroed pages: %" PRIu64 " (%.0f/s)\n", zs.pages, srv->zero_rate);
	strbuf_printf(o, "zeroing:      %s, %.2f GB/s\n", zero_method_name(zero_current_method()),
		      zero_current_gbps());
	strbuf_printf(o, "offences:     %" PRIu64 "\nrefused:      %" PRIu64 "\n", st.offences,
		      st.refused);
	strbuf_printf(o, "trimmed:      %s\n",
		      conf_format_size(trimmed, sizeof(trimmed), st.trimmed_bytes));
}

/* ---- clients ---- */

static const char *const counter_names[HAK_CNT_NR] = {
	"alloc_ready", "alloc_dirty", "alloc_inline_zero", "alloc_mmap", "alloc_large",
	"free_pool",   "free_mmap",   "returned",	   "doorbells",
};

static void client_json(const struct session *s, struct strbuf *o)
{
	uint64_t cnt[HAK_CNT_NR];

	strbuf_printf(o,
		      "{\"id\":%" PRIu32 ",\"pid\":%d,\"uid\":%u,\"pool_bytes\":%" PRIu64
		      ",\"returned\":%" PRIu64 ",\"zeroed\":%" PRIu64 ",\"offences\":%" PRIu64
		      ",\"trimmed_bytes\":%" PRIu64 ",\"doorbells\":%" PRIu64
		      ",\"deferred\":%" PRIu64 ",\"classes\":[",
		      s->id, (int)s->pid, (unsigned)s->uid, s->pool_size, s->st.returned,
		      s->st.zeroed, s->st.offences, s->st.trimmed_bytes, s->st.doorbells,
		      s->st.deferred);
	for (unsigned i = 0; i < s->nclasses; i++) {
		struct session_class_counts cc;

		session_class_counts(s, i, &cc);
		strbuf_printf(o,
			      "%s{\"slot_size\":%" PRIu64 ",\"slots\":%u,\"ready\":%u,\"out\":%u,"
			      "\"idle\":%u,\"unbacked\":%u,\"returned\":%u,\"busy\":%u,"
			      "\"ready_target\":%u}",
			      i ? "," : "", cc.slot_size, cc.nslots, cc.ready, cc.out, cc.idle,
			      cc.unbacked, cc.returned, cc.busy, cc.ready_target);
	}
	session_client_counters(s, cnt);
	strbuf_printf(o, "],\"client\":{");
	for (unsigned k = 0; k < HAK_CNT_NR; k++)
		strbuf_printf(o, "%s\"%s\":%" PRIu64, k ? "," : "", counter_names[k], cnt[k]);
	strbuf_printf(o, "}}\n");
}

static void client_text(const struct session *s, struct strbuf *o)
{
	uint64_t cnt[HAK_CNT_NR];
	char size[16];

	strbuf_printf(o,
		      "client %" PRIu32 ": pid %d uid %u pool %s returned %" PRIu64
		      " zeroed %" PRIu64 " offences %" PRIu64 " deferred %" PRIu64 "\n",
		      s->id, (int)s->pid, (unsigned)s->uid,
		      conf_format_size(size, sizeof(size), s->pool_size), s->st.returned,
		      s->st.zeroed, s->st.offences, s->st.deferred);
	for (unsigned i = 0; i < s->nclasses; i++) {
		struct session_class_counts cc;

		session_class_counts(s, i, &cc);
		strbuf_printf(o,
			      "  class %-5s %6u slots: ready %u out %u idle %u unbacked %u "
			      "returned %u busy %u target %u\n",
			      conf_format_size(size, sizeof(size), cc.slot_size), cc.nslots,
			      cc.ready, cc.out, cc.idle, cc.unbacked, cc.returned, cc.busy,
			      cc.ready_target);
	}
	session_client_counters(s, cnt);
	strbuf_printf(o, "  client says:");
	for (unsigned k = 0; k < HAK_CNT_NR; k++)
		strbuf_printf(o, " %s %" PRIu64, counter_names[k], cnt[k]);
	strbuf_printf(o, "\n");
}

static void clients(struct server *srv, bool json, struct strbuf *o)
{
	if (!json && !srv->clients.list)
		strbuf_printf(o, "no clients\n");
	for (const struct session *s = srv->clients.list; s; s = s->next)
		(json ? client_json : client_text)(s, o);
}

/* ---- stats ---- */

static void stats(struct server *srv, bool json, struct strbuf *o)
{
	struct zero_stats zs;
	struct uring_stats us;
	struct server_stats total;
	const struct server_stats *st = &total;
	double per_mib;

	server_stats(srv, &total);
	zero_get_stats(&zs);
	uring_get_stats(&us);
	const struct {
		const char *name;
		uint64_t v;
	} f[] = {
		{"connections", st->connections},
		{"clients_total", st->clients_total},
		{"refused", st->refused},
		{"offences", st->offences},
		{"cut_off", st->cut_off},
		{"admin_requests", st->admin_requests},
		{"admin_denied", st->admin_denied},
		{"doorbells", st->doorbells},
		{"deferred", st->deferred},
		{"returned_slots", st->returned},
		{"queued_slots", st->queued},
		{"queued_bytes", st->queued_bytes},
		{"wakeups", st->wakeups},
		{"zero_jobs", zs.jobs},
		{"zeroed_pages", zs.pages},
		{"zero_ns", zs.ns},
		{"zero_faults", zs.failed},
		{"uring_ops", us.ops},
		{"uring_failed", us.failed},
		{"populated_bytes", us.populated_bytes},
		{"trimmed_bytes", st->trimmed_bytes},
		{"trims_idle", st->trims_idle},
		{"trims_psi", st->trims_psi},
		{"trims_admin", st->trims_admin},
		{"psi_events", st->psi_events},
		{"reloads", st->reloads},
		{"reload_failures", st->reload_failures},
	};

	for (size_t i = 0; i < ARRAY_SIZE(f); i++) {
		if (json)
			strbuf_printf(o, "%s\"%s\":%" PRIu64, i ? "," : "{", f[i].name, f[i].v);
		else
			strbuf_printf(o, "%-16s %" PRIu64 "\n", f[i].name, f[i].v);
	}
	/* What serving a MiB of zeroed slots cost in wakeups, the main
	 * loop's and the workers'; 0 before anything was served. */
	per_mib =
		st->queued_bytes ? (double)st->wakeups * (double)MIB / (double)st->queued_bytes : 0;
	if (json)
		strbuf_printf(o, ",\"wakeups_per_mib\":%.3f}\n", per_mib);
	else
		strbuf_printf(o, "%-16s %.3f\n", "wakeups_per_mib", per_mib);
}

/* ---- trim ---- */

static int trim(struct server *srv, int32_t pid, bool json, struct strbuf *o)
{
	unsigned matched;
	uint64_t bytes = clients_trim(&srv->clients, pid, &matched);
	char size[16];

	if (pid != 0 && matched == 0) {
		strbuf_printf(o, "no client with pid %d", (int)pid);
		return -ESRCH;
	}
	srv->st.trims_admin++;
	if (json)
		strbuf_printf(o, "{\"clients\":%u,\"trimmed_bytes\":%" PRIu64 "}\n", matched,
			      bytes);
	else
		strbuf_printf(o, "trimming %s (%" PRIu64 " bytes) from %u client%s\n",
			      conf_format_size(size, sizeof(size), bytes), bytes, matched,
			      matched == 1 ? "" : "s");
	return 0;
}

int admin_handle(struct server *srv, int fd, const struct ucred *cred, uint32_t cmd, uint32_t flags,
		 int32_t pid, struct strbuf *o)
{
	bool json = flags & HAK_ADMIN_F_JSON;

	bool reader = cmd == HAK_ADMIN_STATUS || cmd == HAK_ADMIN_CLIENTS || cmd == HAK_ADMIN_STATS;

	if (!(reader ? reader_allowed : admin_allowed)(srv, fd, cred)) {
		srv->st.admin_denied++;
		strbuf_printf(o, "permission denied: %s needs root%s%s%s",
			      reader ? "reading the daemon's state" : "trim",
			      srv->conf->admin_group ? " or group " : "",
			      srv->conf->admin_group ? srv->conf->admin_group : "",
			      reader ? " or the socket's group" : "");
		return -EPERM;
	}
	switch (cmd) {
	case HAK_ADMIN_STATUS:
		(json ? status_json : status_text)(srv, o);
		return 0;
	case HAK_ADMIN_CLIENTS:
		clients(srv, json, o);
		return 0;
	case HAK_ADMIN_STATS:
		stats(srv, json, o);
		return 0;
	case HAK_ADMIN_TRIM:
		return trim(srv, pid, json, o);
	default:
		strbuf_printf(o, "unknown command %u", cmd);
		return -EINVAL;
	}
}
