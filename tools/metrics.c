/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The daemon's counters and gauges in the Prometheus text format. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

#define PREFIX "hakzerod_"
#define KEY_MAX 64
#define NS_PER_S 1e9

enum kind { COUNTER, GAUGE };

struct metric {
	const char *key;  /* in the JSON reply */
	const char *name; /* after PREFIX, with its unit and _total */
	enum kind kind;
	double scale; /* 0: as is */
	const char *help;
};

static const struct metric known[] = {
	/* stats */
	{"connections", "connections_total", COUNTER, 0, "Connections accepted on the socket."},
	{"clients_total", "clients_total", COUNTER, 0, "Clients that completed the handshake."},
	{"refused", "refused_total", COUNTER, 0, "Clients refused (limits, budget, full)."},
	{"offences", "offences_total", COUNTER, 0,
	 "Protocol or shared-memory offences by clients."},
	{"cut_off", "cut_off_total", COUNTER, 0, "Clients disconnected for their offences."},
	{"admin_requests", "admin_requests_total", COUNTER, 0, "hakctl requests answered."},
	{"admin_denied", "admin_denied_total", COUNTER, 0, "hakctl requests refused."},
	{"doorbells", "doorbells_total", COUNTER, 0, "Doorbell wakeups from clients."},
	{"deferred", "deferred_total", COUNTER, 0,
	 "Times a client's work was deferred for going over its budget."},
	{"returned_slots", "returned_slots_total", COUNTER, 0, "Slots clients gave back."},
	{"queued_slots", "queued_slots_total", COUNTER, 0, "Zeroed slots put on ready rings."},
	{"queued_bytes", "queued_bytes_total", COUNTER, 0, "Bytes of slots put on ready rings."},
	{"wakeups", "wakeups_total", COUNTER, 0,
	 "Wakeups of the main loop and of the zeroing workers."},
	{"wakeups_per_mib", "wakeups_per_mib", GAUGE, 0,
	 "Wakeups per MiB of zeroed slots served, since the start."},
	{"zero_jobs", "zero_jobs_total", COUNTER, 0, "Zeroing jobs the workers ran."},
	{"zeroed_pages", "zeroed_pages_total", COUNTER, 0, "4 KiB pages zeroed."},
	{"zero_ns", "zero_seconds_total", COUNTER, NS_PER_S, "Time the workers spent zeroing."},
	{"zero_faults", "zero_faults_total", COUNTER, 0, "Zeroing jobs that hit a hole."},
	{"uring_ops", "uring_ops_total", COUNTER, 0, "io_uring memory operations."},
	{"uring_failed", "uring_failed_total", COUNTER, 0,
	 "io_uring memory operations that failed."},
	{"populated_bytes", "populated_bytes_total", COUNTER, 0,
	 "Bytes of pools backed by the daemon."},
	{"trimmed_bytes", "trimmed_bytes_total", COUNTER, 0,
	 "Bytes of pools given back to the kernel."},
	{"trims_idle", "trims_idle_total", COUNTER, 0, "Trims of pools idle for trim_idle."},
	{"trims_psi", "trims_psi_total", COUNTER, 0, "Trims on memory pressure (PSI)."},
	{"trims_admin", "trims_admin_total", COUNTER, 0, "Trims asked for with hakctl trim."},
	{"psi_events", "psi_events_total", COUNTER, 0, "Memory-pressure (PSI) events."},
	{"reloads", "reloads_total", COUNTER, 0, "Configuration reloads."},
	{"reload_failures", "reload_failures_total", COUNTER, 0, "Reloads refused (bad file)."},
	/* status */
	{"uptime_s", "uptime_seconds", GAUGE, 0, "Seconds since the daemon started."},
	{"clients", "clients", GAUGE, 0, "Clients connected now."},
	{"pool_bytes", "pool_bytes", GAUGE, 0, "Bytes of all pools now."},
	{"ready_pages", "ready_pages", GAUGE, 0, "Zeroed 4 KiB pages on ready rings now."},
	{"zeroed_pages_per_s", "zeroed_pages_per_second", GAUGE, 0, "Recent zeroing rate."},
	{"zero_gbps", "zero_bandwidth_bytes_per_second", GAUGE, 1e-9,
	 "Measured bandwidth of the zeroing method."},
	{"budget_bytes", "budget_bytes", GAUGE, 0, "Global budget for all pools (0: none)."},
};

/* In status, what stats already has (the same counter twice would be two
 * series for one thing). */
static bool in_stats(const char *key)
{
	return strcmp(key, "zeroed_pages") == 0 || strcmp(key, "offences") == 0 ||
	       strcmp(key, "refused") == 0 || strcmp(key, "trimmed_bytes") == 0 ||
	       strcmp(key, "pid") == 0;
}

static const struct metric *find(const char *key)
{
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(known[i].key, key) == 0)
			return &known[i];
	return NULL;
}

/* A name Prometheus accepts: [a-zA-Z0-9_], else '_'. */
static void sanitize(char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_'))
			*s = '_';
}

static void print_one(FILE *out, const char *key, double v)
{
	const struct metric *m = find(key);
	char name[KEY_MAX + sizeof("_total")];

	if (m) {
		snprintf(name, sizeof(name), "%s", m->name);
		if (m->scale)
			v /= m->scale;
	} else {
		snprintf(name, sizeof(name), "%s_total", key);
		sanitize(name);
	}
	fprintf(out, "# HELP " PREFIX "%s %s\n", name, m ? m->help : "A counter of hakzerod.");
	fprintf(out, "# TYPE " PREFIX "%s %s\n", name, m && m->kind == GAUGE ? "gauge" : "counter");
	fprintf(out, PREFIX "%s %.17g\n", name, v);
}

/* One "key":value of a flat object; *p after it.  Returns 1 with a number
 * in *v, 0 for a string (skipped), -EBADMSG otherwise. */
static int next_pair(const char **p, char key[KEY_MAX], double *v)
{
	const char *s = *p, *end;
	char *num_end;
	size_t len;

	s += strspn(s, " \t\n,{");
	if (*s != '"' || !(end = strchr(s + 1, '"')) || (len = (size_t)(end - s - 1)) >= KEY_MAX)
		return -EBADMSG;
	memcpy(key, s + 1, len);
	key[len] = '\0';
	s = end + 1;
	if (*s++ != ':')
		return -EBADMSG;
	if (*s == '"') {
		end = strchr(s + 1, '"');
		if (!end)
			return -EBADMSG;
		*p = end + 1;
		return 0;
	}
	*v = strtod(s, &num_end);
	if (num_end == s)
		return -EBADMSG;
	*p = num_end;
	return 1;
}

static int print_object(FILE *out, const char *json, bool status)
{
	const char *p = json + strspn(json, " \t\n");
	char key[KEY_MAX];
	double v;
	int r;

	if (*p++ != '{')
		return -EBADMSG;
	while (*(p += strspn(p, " \t\n,")) != '}') {
		r = next_pair(&p, key, &v);
		if (r < 0)
			return r;
		if (r == 1 && !(status && in_stats(key)))
			print_one(out, key, v);
	}
	return 0;
}

int metrics_print(FILE *out, const char *stats, const char *status)
{
	int r = print_object(out, stats, false);

	return r < 0 ? r : print_object(out, status, true);
}
