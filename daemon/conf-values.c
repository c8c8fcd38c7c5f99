/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Values in the config file (sizes, durations) and what follows from a
 * config (class geometry, watermarks, what changed between two). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "log.h"
#include "util.h"

/* Digits only: strtoull alone would take "-1", " 1" and "0x10". */
static int parse_digits(const char *s, const char **end, uint64_t *out)
{
	char *e;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	*out = strtoull(s, &e, 10);
	if (errno == ERANGE)
		return -ERANGE;
	*end = e;
	return 0;
}

static uint64_t size_unit(const char *suffix)
{
	if (suffix[0] == '\0')
		return 1;
	if (suffix[1] != '\0')
		return 0;
	switch (suffix[0]) {
	case 'K':
	case 'k':
		return KIB;
	case 'M':
	case 'm':
		return MIB;
	case 'G':
	case 'g':
		return GIB;
	case 'T':
	case 't':
		return TIB;
	default:
		return 0;
	}
}

int conf_parse_size(const char *s, uint64_t *out)
{
	const char *end;
	uint64_t v, unit;
	int r = parse_digits(s, &end, &v);

	if (r < 0)
		return r;
	unit = size_unit(end);
	if (unit == 0)
		return -EINVAL;
	if (v > UINT64_MAX / unit)
		return -ERANGE;
	*out = v * unit;
	return 0;
}

int conf_parse_duration_us(const char *s, uint64_t *out_us)
{
	const char *end;
	uint64_t v, unit;
	int r = parse_digits(s, &end, &v);

	if (r < 0)
		return r;
	if (strcmp(end, "s") == 0)
		unit = USEC_PER_SEC;
	else if (strcmp(end, "ms") == 0)
		unit = USEC_PER_MSEC;
	else if (*end == '\0' && v == 0)
		unit = 1; /* "0" needs no unit */
	else
		return -EINVAL;
	if (v > UINT64_MAX / unit)
		return -ERANGE;
	*out_us = v * unit;
	return 0;
}

const char *conf_format_size(char *buf, size_t len, uint64_t bytes)
{
	static const struct {
		uint64_t unit;
		char suffix;
	} units[] = {{TIB, 'T'}, {GIB, 'G'}, {MIB, 'M'}, {KIB, 'K'}};

	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (bytes != 0 && bytes % units[i].unit == 0) {
			snprintf(buf, len, "%" PRIu64 "%c", bytes / units[i].unit, units[i].suffix);
			return buf;
		}
	}
	/* Not a whole number of any unit: one decimal of the largest. */
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (bytes >= units[i].unit) {
			snprintf(buf, len, "%.1f%c", (double)bytes / (double)units[i].unit,
				 units[i].suffix);
			return buf;
		}
	}
	snprintf(buf, len, "%" PRIu64, bytes);
	return buf;
}

unsigned conf_geometry(const struct conf *c, uint64_t pool_bytes, struct hak_class_geom *g)
{
	const struct hak_geom_params p = {
		.ready_low_pct = c->ready_low,
		.return_batch = c->return_batch,
		.max_slots = HAK_GEOM_UNCAPPED,
	};

	/* pool_bytes is at most CONF_MAX_POOL: no overflow. */
	return hak_geometry(c->cls, c->nclasses, pool_bytes, &p, g);
}

uint32_t conf_watermark(unsigned pct, uint32_t nslots)
{
	return hak_geom_watermark(pct, nslots);
}

/* ---- what changed between two configs, as the file writes it ---- */

#define VALUE_MAX 256

static void fmt_str(char *buf, const char *s)
{
	snprintf(buf, VALUE_MAX, "%s", s ? s : "(unset)");
}

/* Exact: conf_format_size only for whole KiB, bytes otherwise. */
static void fmt_size(char *buf, uint64_t bytes)
{
	if (bytes % KIB == 0)
		conf_format_size(buf, VALUE_MAX, bytes);
	else
		snprintf(buf, VALUE_MAX, "%" PRIu64, bytes);
}

static void fmt_duration_us(char *buf, uint64_t us)
{
	if (us % USEC_PER_SEC == 0)
		snprintf(buf, VALUE_MAX, "%" PRIu64 "%s", us / USEC_PER_SEC, us ? "s" : "");
	else if (us % USEC_PER_MSEC == 0)
		snprintf(buf, VALUE_MAX, "%" PRIu64 "ms", us / USEC_PER_MSEC);
	else
		snprintf(buf, VALUE_MAX, "%" PRIu64 "us", us);
}

static void fmt_classes(char *buf, const struct conf *c)
{
	size_t off = 0;
	char size[16];

	buf[0] = '\0';
	for (unsigned i = 0; i < c->nclasses && off < VALUE_MAX; i++)
		off += (size_t)snprintf(buf + off, VALUE_MAX - off, "%s%s %u%%", i ? ", " : "",
					conf_format_size(size, sizeof(size), c->cls[i].size),
					c->cls[i].share);
}

static void fmt_budget(char *buf, const struct conf *c)
{
	if (c->global_budget_pct)
		snprintf(buf, VALUE_MAX, "%u%%", c->global_budget_pct);
	else
		fmt_size(buf, c->global_budget_bytes);
}

/* Directives in file order; live: a running daemon applies a change. */
enum conf_key {
	K_SOCKET,
	K_SOCKET_MODE,
	K_SOCKET_GROUP,
	K_ADMIN_GROUP,
	K_POOL_SIZE,
	K_POOL_SIZE_MAX,
	K_CLASS,
	K_READY_LOW,
	K_READY_HIGH,
	K_RETURN_BATCH,
	K_ZERO_THREADS,
	K_ZERO_METHOD,
	K_ZERO_NICE,
	K_TRIM_IDLE,
	K_PSI_THRESHOLD,
	K_PSI_WINDOW,
	K_GLOBAL_BUDGET,
	K_UID_LIMIT,
	K_MAX_CLIENTS,
	K_HUGE_PAGES,
	K_LOG_LEVEL,
	K_NR
};

static const struct {
	const char *name;
	bool live;
} conf_keys[K_NR] = {
	[K_SOCKET] = {"socket", false},
	[K_SOCKET_MODE] = {"socket_mode", false},
	[K_SOCKET_GROUP] = {"socket_group", false},
	[K_ADMIN_GROUP] = {"admin_group", true},
	[K_POOL_SIZE] = {"pool_size", true},
	[K_POOL_SIZE_MAX] = {"pool_size_max", true},
	[K_CLASS] = {"class", false},
	[K_READY_LOW] = {"ready_low", true},
	[K_READY_HIGH] = {"ready_high", true},
	[K_RETURN_BATCH] = {"return_batch", true},
	[K_ZERO_THREADS] = {"zero_threads", false},
	[K_ZERO_METHOD] = {"zero_method", false},
	[K_ZERO_NICE] = {"zero_nice", true},
	[K_TRIM_IDLE] = {"trim_idle", true},
	[K_PSI_THRESHOLD] = {"psi_threshold", true},
	[K_PSI_WINDOW] = {"psi_window", true},
	[K_GLOBAL_BUDGET] = {"global_budget", true},
	[K_UID_LIMIT] = {"uid_limit", true},
	[K_MAX_CLIENTS] = {"max_clients", true},
	[K_HUGE_PAGES] = {"huge_pages", false},
	[K_LOG_LEVEL] = {"log_level", true},
};

/* The value of directive k in c, written as the file would. */
static void format_value(const struct conf *c, enum conf_key k, char *buf)
{
	switch (k) {
	case K_SOCKET:
		fmt_str(buf, c->socket);
		break;
	case K_SOCKET_MODE:
		snprintf(buf, VALUE_MAX, "%04o", c->socket_mode);
		break;
	case K_SOCKET_GROUP:
		fmt_str(buf, c->socket_group);
		break;
	case K_ADMIN_GROUP:
		fmt_str(buf, c->admin_group);
		break;
	case K_POOL_SIZE:
		fmt_size(buf, c->pool_size);
		break;
	case K_POOL_SIZE_MAX:
		fmt_size(buf, c->pool_size_max);
		break;
	case K_CLASS:
		fmt_classes(buf, c);
		break;
	case K_READY_LOW:
		snprintf(buf, VALUE_MAX, "%u%%", c->ready_low);
		break;
	case K_READY_HIGH:
		snprintf(buf, VALUE_MAX, "%u%%", c->ready_high);
		break;
	case K_RETURN_BATCH:
		snprintf(buf, VALUE_MAX, "%u", c->return_batch);
		break;
	case K_ZERO_THREADS:
		snprintf(buf, VALUE_MAX, "%u", c->zero_threads);
		break;
	case K_ZERO_METHOD:
		fmt_str(buf, zero_method_name(c->zero_method));
		break;
	case K_ZERO_NICE:
		snprintf(buf, VALUE_MAX, "%d", c->zero_nice);
		break;
	case K_TRIM_IDLE:
		fmt_duration_us(buf, c->trim_idle_ms * USEC_PER_MSEC);
		break;
	case K_PSI_THRESHOLD:
		fmt_duration_us(buf, c->psi_threshold_us);
		break;
	case K_PSI_WINDOW:
		fmt_duration_us(buf, c->psi_window_us);
		break;
	case K_GLOBAL_BUDGET:
		fmt_budget(buf, c);
		break;
	case K_UID_LIMIT:
		fmt_size(buf, c->uid_limit);
		break;
	case K_MAX_CLIENTS:
		snprintf(buf, VALUE_MAX, "%u", c->max_clients);
		break;
	case K_HUGE_PAGES:
		fmt_str(buf, c->huge_pages ? "yes" : "no");
		break;
	case K_LOG_LEVEL:
		fmt_str(buf, log_level_name(c->log_level));
		break;
	case K_NR:
		buf[0] = '\0';
		break;
	}
}

/* Every value is written exactly (sizes fall back to bytes, durations to
 * microseconds), so two values differ exactly when their text does. */
void conf_diff(const struct conf *a, const struct conf *b, conf_diff_fn fn, void *data)
{
	char was[VALUE_MAX], now[VALUE_MAX];

	for (int k = 0; k < K_NR; k++) {
		format_value(a, k, was);
		format_value(b, k, now);
		if (strcmp(was, now) != 0)
			fn(data, conf_keys[k].name, was, now, conf_keys[k].live);
	}
}
