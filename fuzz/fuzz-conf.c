/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzzes the configuration parser (daemon/conf*.c) on arbitrary file
 * contents, and what the daemon does with a config it accepted.
 *
 * Invariants: a file is accepted exactly when no error was reported; every
 * error names the file; an accepted config satisfies every whole-file rule
 * (the daemon relies on them without checking again); every pool size it
 * allows has a layout the client accepts; reload helpers and size
 * formatting work on it.
 */
#include <errno.h>
#include <string.h>

#include "conf.h"
#include "fuzz.h"
#include "hak_layout.h"
#include "session.h"

#define NAME "fuzz.conf"
#define PERCENT 100u

static struct conf *defaults;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	defaults = conf_new_defaults();
	FUZZ_CHECK(defaults, "out of memory");
	return 0;
}

static void on_error(void *data, const char *msg)
{
	unsigned *n = data;

	FUZZ_CHECK(strncmp(msg, NAME ":", strlen(NAME ":")) == 0, "error without the file: %s",
		   msg);
	(*n)++;
}

static void on_diff(void *data, const char *key, const char *was, const char *now, bool live)
{
	FUZZ_CHECK(key && *key, "conf_diff named no directive");
	FUZZ_CHECK(was && now && strcmp(was, now) != 0, "conf_diff: %s changed to the same text",
		   key);
}

static void check_classes(const struct conf *c)
{
	unsigned sum = 0;

	FUZZ_CHECK(c->nclasses >= 1 && c->nclasses <= HAK_MAX_CLASSES, "%u classes", c->nclasses);
	for (unsigned i = 0; i < c->nclasses; i++) {
		FUZZ_CHECK(c->cls[i].size >= HAK_PAGE_SIZE && c->cls[i].size % HAK_PAGE_SIZE == 0 &&
				   c->cls[i].size <= CONF_MAX_CLASS_SIZE,
			   "class %u of %llu bytes", i, (unsigned long long)c->cls[i].size);
		FUZZ_CHECK(i == 0 || c->cls[i].size > c->cls[i - 1].size, "classes not ascending");
		sum += c->cls[i].share;
	}
	FUZZ_CHECK(sum == PERCENT, "shares add up to %u", sum);
}

static void check_values(const struct conf *c)
{
	check_classes(c);
	FUZZ_CHECK(c->ready_low < c->ready_high && c->ready_high <= PERCENT, "watermarks %u/%u",
		   c->ready_low, c->ready_high);
	FUZZ_CHECK(c->pool_size >= HAK_PAGE_SIZE && c->pool_size <= c->pool_size_max &&
			   c->pool_size_max <= CONF_MAX_POOL,
		   "pool sizes");
	FUZZ_CHECK(c->zero_threads >= 1 && c->zero_threads <= ZERO_MAX_THREADS, "zero_threads");
	FUZZ_CHECK(c->zero_method >= ZERO_AUTO && c->zero_method < ZERO_METHOD_NR, "zero_method");
	FUZZ_CHECK(c->max_clients >= 1 && c->max_clients <= CONF_MAX_CLIENTS, "max_clients");
	FUZZ_CHECK(c->return_batch >= 1 && c->return_batch <= CONF_MAX_RETURN_BATCH,
		   "return_batch");
	FUZZ_CHECK(c->global_budget_pct <= PERCENT, "global_budget");
	FUZZ_CHECK(c->socket && c->socket[0] == '/' && c->socket_mode <= 0777, "socket");
	FUZZ_CHECK(!c->psi_threshold_us || c->psi_threshold_us <= c->psi_window_us, "psi");
}

/* What the daemon computes from an accepted config: layouts for the default
 * and the largest pool (conn_hello), the reload helpers (SIGHUP). */
static void check_use(const struct conf *c)
{
	uint64_t sizes[] = {HAK_PAGE_SIZE, c->pool_size, c->pool_size_max};
	struct conf *copy = conf_new_defaults();
	char buf[32];

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct hak_ctrl_hdr h;

		FUZZ_CHECK(session_layout(c, sizes[i], 1, &h) == 0, "no layout for %llu bytes",
			   (unsigned long long)sizes[i]);
		FUZZ_CHECK(hak_layout_validate(&h, h.ctrl_size, h.pool_size) == 0,
			   "the client would refuse the layout for %llu bytes",
			   (unsigned long long)sizes[i]);
		FUZZ_CHECK(conf_format_size(buf, sizeof(buf), h.pool_size)[0], "empty size");
	}
	FUZZ_CHECK(copy && conf_keep_restart_settings(copy, c) == 0, "out of memory");
	conf_diff(defaults, c, on_diff, NULL);
	conf_diff(copy, c, on_diff, NULL);
	conf_free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* fmemopen takes no empty buffer: an empty file is /dev/null. */
	FILE *f = size ? fmemopen((void *)data, size, "r") : fopen("/dev/null", "re");
	struct conf *c = NULL;
	unsigned errors = 0;
	int r;

	FUZZ_CHECK(f, "cannot open the input: %s", strerror(errno));
	r = conf_parse(f, NAME, on_error, &errors, &c);
	fclose(f);
	FUZZ_CHECK(r == 0 || r == -EINVAL, "conf_parse returned %d", r);
	FUZZ_CHECK((r == 0) == (errors == 0), "returned %d after %u errors", r, errors);
	FUZZ_CHECK((r == 0) == (c != NULL), "a config returned with an error, or none without");
	if (c) {
		check_values(c);
		check_use(c);
		conf_free(c);
	}
	return 0;
}
