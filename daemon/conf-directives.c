/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The configuration directives: one parser per directive, and the table. */
#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "conf-internal.h"
#include "log.h"
#include "util.h"

#define GROUP_BUF_MAX 65536
#define NICE_MIN -20
#define NICE_MAX 19

__attribute__((format(printf, 2, 3))) static int fail(struct conf_arg *a, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(a->err, sizeof(a->err), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int parse_uint(struct conf_arg *a, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return fail(a, "'%s' is not a number", s);
	errno = 0;
	*out = strtoull(s, &end, 10);
	if (*end != '\0')
		return fail(a, "'%s' is not a number", s);
	if (errno == ERANGE || *out < min || *out > max)
		return fail(a, "%s is out of range (%llu to %llu)", s, (unsigned long long)min,
			    (unsigned long long)max);
	return 0;
}

static int parse_percent(struct conf_arg *a, const char *s, unsigned min, unsigned max,
			 unsigned *out)
{
	char buf[32];
	size_t len = strlen(s);
	uint64_t v;
	int r;

	if (len == 0 || len >= sizeof(buf))
		return fail(a, "'%s' is not a percentage", s);
	memcpy(buf, s, len + 1);
	if (buf[len - 1] == '%')
		buf[len - 1] = '\0';
	r = parse_uint(a, buf, min, max, &v);
	*out = (unsigned)v;
	return r;
}

static int parse_size_arg(struct conf_arg *a, const char *s, uint64_t min, uint64_t max,
			  uint64_t *out)
{
	char lo[16], hi[16];

	if (conf_parse_size(s, out) < 0)
		return fail(a, "'%s' is not a size (a number with K, M or G)", s);
	if (*out < min || *out > max)
		return fail(a, "size %s is out of range (%s to %s)", s,
			    conf_format_size(lo, sizeof(lo), min),
			    conf_format_size(hi, sizeof(hi), max));
	return 0;
}

static int parse_duration_arg(struct conf_arg *a, const char *s, uint64_t *out_us)
{
	if (conf_parse_duration_us(s, out_us) < 0)
		return fail(a, "'%s' is not a time (a number with ms or s)", s);
	return 0;
}

static int replace_str(struct conf_arg *a, char **dst, const char *s)
{
	char *dup = strdup(s);

	if (!dup)
		return fail(a, "out of memory");
	free(*dst);
	*dst = dup;
	return 0;
}

static int lookup_group(struct conf_arg *a, const char *name, gid_t *gid)
{
	struct group gr, *res = NULL;
	char *buf = malloc(GROUP_BUF_MAX);
	int r;

	if (!buf)
		return fail(a, "out of memory");
	r = getgrnam_r(name, &gr, buf, GROUP_BUF_MAX, &res);
	if (res)
		*gid = gr.gr_gid;
	free(buf);
	if (!res)
		return fail(a, "unknown group '%s'%s%s", name, r ? ": " : "", r ? strerror(r) : "");
	return 0;
}

/* ---- directives ---- */

static int d_socket(struct conf *c, struct conf_arg *a)
{
	if (a->v[0][0] != '/')
		return fail(a, "socket path must be absolute");
	if (strlen(a->v[0]) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return fail(a, "socket path is too long");
	return replace_str(a, &c->socket, a->v[0]);
}

#define MODE_MAX 0777

static int d_socket_mode(struct conf *c, struct conf_arg *a)
{
	char *end;
	unsigned long m;

	errno = 0;
	m = strtoul(a->v[0], &end, 8);
	if (a->v[0][0] < '0' || a->v[0][0] > '7' || *end || errno || m > MODE_MAX)
		return fail(a, "'%s' is not an octal mode (0000 to 0777)", a->v[0]);
	c->socket_mode = (unsigned)m;
	return 0;
}

static int d_socket_group(struct conf *c, struct conf_arg *a)
{
	int r = lookup_group(a, a->v[0], &c->socket_gid);

	return r < 0 ? r : replace_str(a, &c->socket_group, a->v[0]);
}

static int d_admin_group(struct conf *c, struct conf_arg *a)
{
	int r = lookup_group(a, a->v[0], &c->admin_gid);

	return r < 0 ? r : replace_str(a, &c->admin_group, a->v[0]);
}

static int d_pool_size(struct conf *c, struct conf_arg *a)
{
	return parse_size_arg(a, a->v[0], HAK_PAGE_SIZE, CONF_MAX_POOL, &c->pool_size);
}

static int d_pool_size_max(struct conf *c, struct conf_arg *a)
{
	return parse_size_arg(a, a->v[0], HAK_PAGE_SIZE, CONF_MAX_POOL, &c->pool_size_max);
}

static int d_class(struct conf *c, struct conf_arg *a)
{
	struct hak_class_spec cl;
	int r = parse_size_arg(a, a->v[0], HAK_PAGE_SIZE, CONF_MAX_CLASS_SIZE, &cl.size);

	if (r < 0)
		return r;
	if (cl.size % HAK_PAGE_SIZE)
		return fail(a, "class size %s is not a multiple of 4K", a->v[0]);
	r = parse_percent(a, a->v[1], 1, 100, &cl.share);
	if (r < 0)
		return r;
	if (c->nclasses == HAK_MAX_CLASSES)
		return fail(a, "too many classes (at most %d)", HAK_MAX_CLASSES);
	if (c->nclasses > 0 && cl.size <= c->cls[c->nclasses - 1].size)
		return fail(a, "class sizes must be strictly ascending");
	c->cls[c->nclasses++] = cl;
	return 0;
}

static int d_ready_low(struct conf *c, struct conf_arg *a)
{
	return parse_percent(a, a->v[0], 0, 100, &c->ready_low);
}

static int d_ready_high(struct conf *c, struct conf_arg *a)
{
	return parse_percent(a, a->v[0], 1, 100, &c->ready_high);
}

static int d_uint(struct conf_arg *a, uint64_t min, uint64_t max, unsigned *out)
{
	uint64_t v;
	int r = parse_uint(a, a->v[0], min, max, &v);

	*out = (unsigned)v;
	return r;
}

static int d_return_batch(struct conf *c, struct conf_arg *a)
{
	return d_uint(a, 1, CONF_MAX_RETURN_BATCH, &c->return_batch);
}

static int d_zero_threads(struct conf *c, struct conf_arg *a)
{
	return d_uint(a, 1, ZERO_MAX_THREADS, &c->zero_threads);
}

static int d_max_clients(struct conf *c, struct conf_arg *a)
{
	return d_uint(a, 1, CONF_MAX_CLIENTS, &c->max_clients);
}

static int d_zero_method(struct conf *c, struct conf_arg *a)
{
	int m = zero_method_parse(a->v[0]);

	if (m < 0)
		return fail(a, "unknown zero_method '%s' (auto, rep-stosb, nt, memset)", a->v[0]);
	c->zero_method = m;
	return 0;
}

static int d_zero_nice(struct conf *c, struct conf_arg *a)
{
	const char *s = a->v[0];
	bool neg = s[0] == '-';
	uint64_t v;
	int r = parse_uint(a, s + neg, 0, neg ? -NICE_MIN : NICE_MAX, &v);

	if (r < 0)
		return fail(a, "zero_nice must be %d to %d", NICE_MIN, NICE_MAX);
	c->zero_nice = neg ? -(int)v : (int)v;
	return 0;
}

static int d_trim_idle(struct conf *c, struct conf_arg *a)
{
	uint64_t us;
	int r = parse_duration_arg(a, a->v[0], &us);

	c->trim_idle_ms = us / USEC_PER_MSEC;
	return r;
}

static int d_psi_threshold(struct conf *c, struct conf_arg *a)
{
	return parse_duration_arg(a, a->v[0], &c->psi_threshold_us);
}

static int d_psi_window(struct conf *c, struct conf_arg *a)
{
	return parse_duration_arg(a, a->v[0], &c->psi_window_us);
}

static int d_global_budget(struct conf *c, struct conf_arg *a)
{
	const char *s = a->v[0];

	c->global_budget_pct = 0;
	c->global_budget_bytes = 0;
	if (s[0] && s[strlen(s) - 1] == '%')
		return parse_percent(a, s, 1, 100, &c->global_budget_pct);
	return parse_size_arg(a, s, 0, UINT64_MAX, &c->global_budget_bytes);
}

static int d_uid_limit(struct conf *c, struct conf_arg *a)
{
	return parse_size_arg(a, a->v[0], 0, UINT64_MAX, &c->uid_limit);
}

static int d_huge_pages(struct conf *c, struct conf_arg *a)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};

	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcmp(a->v[0], yes[i]) == 0 || strcmp(a->v[0], no[i]) == 0) {
			c->huge_pages = strcmp(a->v[0], yes[i]) == 0;
			return 0;
		}
	}
	return fail(a, "'%s' is not yes or no", a->v[0]);
}

static int d_log_level(struct conf *c, struct conf_arg *a)
{
	int l = log_level_parse(a->v[0]);

	if (l < 0)
		return fail(a, "unknown log_level '%s' (err, warning, notice, info, debug)",
			    a->v[0]);
	c->log_level = l;
	return 0;
}

const struct conf_directive conf_directives[] = {
	{"socket", 1, false, d_socket},
	{"socket_mode", 1, false, d_socket_mode},
	{"socket_group", 1, false, d_socket_group},
	{"admin_group", 1, false, d_admin_group},
	{"pool_size", 1, false, d_pool_size},
	{"pool_size_max", 1, false, d_pool_size_max},
	{"class", 2, true, d_class},
	{"ready_low", 1, false, d_ready_low},
	{"ready_high", 1, false, d_ready_high},
	{"return_batch", 1, false, d_return_batch},
	{"zero_threads", 1, false, d_zero_threads},
	{"zero_method", 1, false, d_zero_method},
	{"zero_nice", 1, false, d_zero_nice},
	{"trim_idle", 1, false, d_trim_idle},
	{"psi_threshold", 1, false, d_psi_threshold},
	{"psi_window", 1, false, d_psi_window},
	{"global_budget", 1, false, d_global_budget},
	{"uid_limit", 1, false, d_uid_limit},
	{"max_clients", 1, false, d_max_clients},
	{"huge_pages", 1, false, d_huge_pages},
	{"log_level", 1, false, d_log_level},
};

const size_t conf_ndirectives = ARRAY_SIZE(conf_directives);
_Static_assert(ARRAY_SIZE(conf_directives) <= CONF_MAX_DIRECTIVES, "raise CONF_MAX_DIRECTIVES");
