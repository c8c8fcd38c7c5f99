/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Values in the config file (sizes, durations) and what follows from a
 * config (class geometry, watermarks, what changed between two). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
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

static bool str_differs(const char *a, const char *b)
{
	if (!a || !b)
		return a != b;
	return strcmp(a, b) != 0;
}

static bool classes_differ(const struct conf *a, const struct conf *b)
{
	if (a->nclasses != b->nclasses)
		return true;
	return memcmp(a->cls, b->cls, sizeof(a->cls[0]) * a->nclasses) != 0;
}

void conf_diff(const struct conf *a, const struct conf *b,
	       void (*fn)(void *data, const char *key, bool live), void *data)
{
	const struct {
		const char *key;
		bool differs, live;
	} d[] = {
		{"socket", str_differs(a->socket, b->socket), false},
		{"socket_mode", a->socket_mode != b->socket_mode, false},
		{"socket_group", str_differs(a->socket_group, b->socket_group), false},
		{"admin_group", str_differs(a->admin_group, b->admin_group), true},
		{"pool_size", a->pool_size != b->pool_size, true},
		{"pool_size_max", a->pool_size_max != b->pool_size_max, true},
		{"class", classes_differ(a, b), false},
		{"ready_low", a->ready_low != b->ready_low, true},
		{"ready_high", a->ready_high != b->ready_high, true},
		{"return_batch", a->return_batch != b->return_batch, true},
		{"zero_threads", a->zero_threads != b->zero_threads, false},
		{"zero_method", a->zero_method != b->zero_method, false},
		{"zero_nice", a->zero_nice != b->zero_nice, true},
		{"trim_idle", a->trim_idle_ms != b->trim_idle_ms, true},
		{"psi_threshold", a->psi_threshold_us != b->psi_threshold_us, true},
		{"psi_window", a->psi_window_us != b->psi_window_us, true},
		{"global_budget",
		 a->global_budget_pct != b->global_budget_pct ||
			 a->global_budget_bytes != b->global_budget_bytes,
		 true},
		{"uid_limit", a->uid_limit != b->uid_limit, true},
		{"max_clients", a->max_clients != b->max_clients, true},
		{"huge_pages", a->huge_pages != b->huge_pages, false},
		{"log_level", a->log_level != b->log_level, true},
	};

	for (size_t i = 0; i < ARRAY_SIZE(d); i++)
		if (d[i].differs)
			fn(data, d[i].key, d[i].live);
}
