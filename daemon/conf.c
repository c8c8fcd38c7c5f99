/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The configuration file parser: lines, defaults, whole-file checks. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf-internal.h"
#include "hak_proto.h"
#include "log.h"
#include "util.h"

#define CONF_LINE_MAX 4096
#define PSI_WINDOW_MIN_US (500 * USEC_PER_MSEC) /* what the kernel accepts */
#define PSI_WINDOW_MAX_US (10 * USEC_PER_SEC)

/* ---- defaults ---- */

#define DEFAULT_POOL_SIZE_MAX GIB
/* Each doorbell costs a wakeup of the daemon (and a system call in the
 * client): several microseconds, tens on a VM, against ~0.1 us to zero a
 * 4 KiB slot.  Returns are not urgent while the ready ring is stocked (the
 * client rings when it runs low, the tick collects them anyway), so a
 * class rings after a quarter of its slots, at most this many. */
#define DEFAULT_RETURN_BATCH 1024
#define DEFAULT_ZERO_NICE 19
#define DEFAULT_TRIM_IDLE_MS (30 * MSEC_PER_SEC)
/* 2 s: the shortest window the kernel takes from a process without
 * CAP_SYS_RESOURCE (the hardened unit has none), so the default works as is. */
#define DEFAULT_PSI_THRESHOLD_US (200 * USEC_PER_MSEC)
#define DEFAULT_PSI_WINDOW_US (2 * USEC_PER_SEC)
#define DEFAULT_GLOBAL_BUDGET_PCT 25
#define DEFAULT_UID_LIMIT (4 * GIB)
#define DEFAULT_MAX_CLIENTS 1024
#define DEFAULT_SOCKET_MODE 0666

struct conf *conf_new_defaults(void)
{
	struct conf *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	*c = (struct conf){
		.socket_mode = DEFAULT_SOCKET_MODE,
		.pool_size = HAK_DEFAULT_POOL_SIZE,
		.pool_size_max = DEFAULT_POOL_SIZE_MAX,
		.nclasses = HAK_DEFAULT_NCLASSES,
		.ready_low = HAK_DEFAULT_READY_LOW_PCT,
		.ready_high = HAK_DEFAULT_READY_HIGH_PCT,
		.return_batch = DEFAULT_RETURN_BATCH,
		.zero_threads = 1,
		.zero_method = ZERO_AUTO,
		.zero_nice = DEFAULT_ZERO_NICE,
		.trim_idle_ms = DEFAULT_TRIM_IDLE_MS,
		.psi_threshold_us = DEFAULT_PSI_THRESHOLD_US,
		.psi_window_us = DEFAULT_PSI_WINDOW_US,
		.global_budget_pct = DEFAULT_GLOBAL_BUDGET_PCT,
		.uid_limit = DEFAULT_UID_LIMIT,
		.max_clients = DEFAULT_MAX_CLIENTS,
		.log_level = LOG_INFO,
	};
	memcpy(c->cls, hak_default_classes, sizeof(hak_default_classes));
	c->path = strdup("(defaults)");
	c->socket = strdup(HAK_DEFAULT_SOCKET);
	if (!c->path || !c->socket) {
		conf_free(c);
		return NULL;
	}
	return c;
}

void conf_free(struct conf *c)
{
	if (!c)
		return;
	free(c->path);
	free(c->socket);
	free(c->socket_group);
	free(c->admin_group);
	free(c);
}

int conf_set_socket(struct conf *c, const char *path)
{
	char *dup = strdup(path);

	if (!dup)
		return -ENOMEM;
	free(c->socket);
	c->socket = dup;
	return 0;
}

static int dup_opt(char **dst, const char *src)
{
	char *dup = src ? strdup(src) : NULL;

	if (src && !dup)
		return -ENOMEM;
	free(*dst);
	*dst = dup;
	return 0;
}

int conf_keep_restart_settings(struct conf *c, const struct conf *old)
{
	if (dup_opt(&c->socket, old->socket) < 0 ||
	    dup_opt(&c->socket_group, old->socket_group) < 0)
		return -ENOMEM;
	c->socket_mode = old->socket_mode;
	c->socket_gid = old->socket_gid;
	c->nclasses = old->nclasses;
	memcpy(c->cls, old->cls, sizeof(c->cls));
	c->zero_threads = old->zero_threads;
	c->zero_method = old->zero_method;
	c->huge_pages = old->huge_pages;
	return 0;
}

/* ---- the parser ---- */

struct parser {
	const char *name;
	unsigned line;
	unsigned errors;
	conf_report_fn report;
	void *data;
	unsigned seen[CONF_MAX_DIRECTIVES]; /* line of each directive, 0: not given */
};

__attribute__((format(printf, 3, 4))) static void report(struct parser *p, unsigned line,
							 const char *fmt, ...)
{
	char msg[CONF_ERR_MAX], full[CONF_ERR_MAX + PATH_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line)
		snprintf(full, sizeof(full), "%s:%u: %s", p->name, line, msg);
	else
		snprintf(full, sizeof(full), "%s: %s", p->name, msg);
	p->errors++;
	if (p->report)
		p->report(p->data, full);
}

static const struct conf_directive *find_directive(const char *name, size_t *idx)
{
	for (size_t i = 0; i < conf_ndirectives; i++) {
		if (strcmp(conf_directives[i].name, name) == 0) {
			*idx = i;
			return &conf_directives[i];
		}
	}
	return NULL;
}

/* Splits a line into blank-separated words; a word starting with '#'
 * starts a comment.  Returns the word count (may exceed max). */
static unsigned split(char *line, char **w, unsigned max)
{
	unsigned n = 0;
	char *save = NULL;

	for (char *t = strtok_r(line, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save)) {
		if (t[0] == '#')
			break;
		if (n < max)
			w[n] = t;
		n++;
	}
	return n;
}

static void parse_line(struct parser *p, struct conf *c, char *line)
{
	char *w[CONF_MAX_ARGS + 1];
	unsigned n = split(line, w, ARRAY_SIZE(w));
	const struct conf_directive *d;
	struct conf_arg a;
	size_t idx;

	if (n == 0)
		return;
	d = find_directive(w[0], &idx);
	if (!d) {
		report(p, p->line, "unknown directive '%s'", w[0]);
		return;
	}
	if (n - 1 != d->nargs) {
		report(p, p->line, "'%s' takes %u value%s, got %u", d->name, d->nargs,
		       d->nargs == 1 ? "" : "s", n - 1);
		return;
	}
	if (p->seen[idx] && !d->repeat) {
		report(p, p->line, "duplicate '%s' (first at line %u)", d->name, p->seen[idx]);
		return;
	}
	/* The first class line replaces the default classes. */
	if (!p->seen[idx] && d->repeat)
		c->nclasses = 0;
	p->seen[idx] = p->line;
	memset(&a, 0, sizeof(a));
	memcpy(a.v, &w[1], sizeof(a.v[0]) * d->nargs);
	if (d->parse(c, &a) < 0)
		report(p, p->line, "%s: %s", d->name, a.err);
}

/* The line a whole-file error is blamed on: the later of two directives
 * (0 when both are defaults). */
static unsigned blame(const struct parser *p, const char *k1, const char *k2)
{
	size_t i1 = 0, i2 = 0;

	find_directive(k1, &i1);
	find_directive(k2, &i2);
	return p->seen[i1] > p->seen[i2] ? p->seen[i1] : p->seen[i2];
}

static void check_classes(struct parser *p, const struct conf *c)
{
	unsigned sum = 0;
	struct hak_class_geom g[HAK_MAX_CLASSES];

	for (unsigned i = 0; i < c->nclasses; i++)
		sum += c->cls[i].share;
	if (sum != 100)
		report(p, blame(p, "class", "class"), "class shares add up to %u%%, not 100%%",
		       sum);
	conf_geometry(c, c->pool_size_max, g);
	for (unsigned i = 0; i < c->nclasses; i++)
		if (g[i].nslots > CONF_MAX_SLOTS)
			report(p, blame(p, "class", "pool_size_max"),
			       "class %u gets %u slots at pool_size_max, more than %u", i + 1,
			       g[i].nslots, CONF_MAX_SLOTS);
}

static void check_whole(struct parser *p, const struct conf *c)
{
	char a[16], b[16];

	check_classes(p, c);
	if (c->ready_low >= c->ready_high)
		report(p, blame(p, "ready_low", "ready_high"),
		       "ready_low (%u%%) must be below ready_high (%u%%)", c->ready_low,
		       c->ready_high);
	if (c->pool_size > c->pool_size_max)
		report(p, blame(p, "pool_size", "pool_size_max"),
		       "pool_size %s is above pool_size_max %s",
		       conf_format_size(a, sizeof(a), c->pool_size),
		       conf_format_size(b, sizeof(b), c->pool_size_max));
	if (c->psi_threshold_us &&
	    (c->psi_window_us < PSI_WINDOW_MIN_US || c->psi_window_us > PSI_WINDOW_MAX_US))
		report(p, blame(p, "psi_window", "psi_threshold"),
		       "psi_window must be 500ms to 10s");
	else if (c->psi_threshold_us > c->psi_window_us)
		report(p, blame(p, "psi_window", "psi_threshold"),
		       "psi_threshold must not exceed psi_window");
}

int conf_parse(FILE *f, const char *name, conf_report_fn report_fn, void *data, struct conf **out)
{
	struct parser p = {.name = name, .report = report_fn, .data = data};
	struct conf *c = conf_new_defaults();
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	if (!c || dup_opt(&c->path, name) < 0) {
		conf_free(c);
		return -ENOMEM;
	}
	while ((len = getline(&line, &cap, f)) >= 0) {
		p.line++;
		if (len > CONF_LINE_MAX)
			report(&p, p.line, "line too long");
		else
			parse_line(&p, c, line);
	}
	free(line);
	if (ferror(f))
		report(&p, 0, "read error");
	/* After a bad line the whole-file checks would only echo it. */
	if (p.errors == 0)
		check_whole(&p, c);
	if (p.errors) {
		conf_free(c);
		return -EINVAL;
	}
	*out = c;
	return 0;
}

int conf_load(const char *path, conf_report_fn report_fn, void *data, struct conf **out)
{
	FILE *f = fopen(path, "re");
	int r;

	if (!f) {
		char msg[CONF_ERR_MAX + PATH_MAX];

		r = -errno;
		snprintf(msg, sizeof(msg), "%s: cannot open: %s", path, strerror(-r));
		if (report_fn)
			report_fn(data, msg);
		return r;
	}
	r = conf_parse(f, path, report_fn, data, out);
	fclose(f);
	return r;
}

int conf_load_default(const char *path, conf_report_fn report_fn, void *data, struct conf **out)
{
	if (!path && access(CONF_DEFAULT_PATH, F_OK) == 0)
		path = CONF_DEFAULT_PATH;
	if (!path) {
		*out = conf_new_defaults();
		return *out ? 0 : -ENOMEM;
	}
	return conf_load(path, report_fn, data, out);
}
