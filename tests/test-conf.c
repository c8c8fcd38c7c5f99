/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests of the daemon's configuration parser (daemon/conf.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <cmocka.h>

#include "conf.h"
#include "hak_size.h"

#define MAX_ERRORS 16
#define ERR_LEN 512

/* Collected error messages. */
struct errors {
	unsigned n;
	char msg[MAX_ERRORS][ERR_LEN];
};

static void collect(void *data, const char *msg)
{
	struct errors *e = data;

	if (e->n < MAX_ERRORS)
		snprintf(e->msg[e->n], ERR_LEN, "%s", msg);
	e->n++;
}

/* Parses text as the file "test.conf". */
static int parse(const char *text, struct errors *e, struct conf **out)
{
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	int r;

	assert_non_null(f);
	memset(e, 0, sizeof(*e));
	r = conf_parse(f, "test.conf", collect, e, out);
	fclose(f);
	return r;
}

/* The text must fail with exactly one error, naming line and a phrase, and
 * must leave *out as it was (the old config stays). */
static void expect_error(const char *text, unsigned line, const char *phrase)
{
	struct conf *old = conf_new_defaults(), *c = old;
	struct errors e;
	char prefix[64];

	assert_int_equal(parse(text, &e, &c), -EINVAL);
	assert_ptr_equal(c, old);
	if (e.n != 1)
		fail_msg("%u errors for \"%s\", first \"%s\"", e.n, text, e.msg[0]);
	if (line)
		snprintf(prefix, sizeof(prefix), "test.conf:%u: ", line);
	else
		snprintf(prefix, sizeof(prefix), "test.conf: ");
	if (strncmp(e.msg[0], prefix, strlen(prefix)) != 0 || !strstr(e.msg[0], phrase))
		fail_msg("expected \"%s...%s\", got \"%s\"", prefix, phrase, e.msg[0]);
	conf_free(old);
}

static void check_defaults(const struct conf *c)
{
	assert_string_equal(c->socket, "/run/hakzerod/hakzerod.sock");
	assert_int_equal(c->socket_mode, 0666);
	assert_null(c->socket_group);
	assert_null(c->admin_group);
	assert_int_equal(c->pool_size, 64 * MIB);
	assert_int_equal(c->pool_size_max, GIB);
	assert_int_equal(c->nclasses, 6);
	assert_int_equal(c->cls[0].size, 4 * KIB);
	assert_int_equal(c->cls[0].share, 15);
	assert_int_equal(c->cls[1].size, 16 * KIB);
	assert_int_equal(c->cls[1].share, 10);
	assert_int_equal(c->cls[2].size, 32 * KIB);
	assert_int_equal(c->cls[2].share, 15);
	assert_int_equal(c->cls[3].size, 64 * KIB);
	assert_int_equal(c->cls[3].share, 10);
	assert_int_equal(c->cls[4].size, 2 * MIB);
	assert_int_equal(c->cls[4].share, 25);
	assert_int_equal(c->cls[5].size, 2 * MIB + 4 * KIB);
	assert_int_equal(c->cls[5].share, 25);
	assert_int_equal(c->ready_low, 25);
	assert_int_equal(c->ready_high, 75);
	assert_int_equal(c->return_batch, 1024);
	assert_int_equal(c->zero_threads, 1);
	assert_int_equal(c->zero_method, ZERO_AUTO);
	assert_int_equal(c->zero_nice, 19);
	assert_int_equal(c->trim_idle_ms, 30000);
	assert_int_equal(c->psi_threshold_us, 200000);
	assert_int_equal(c->psi_window_us, 2000000);
	assert_int_equal(c->global_budget_pct, 25);
	assert_int_equal(c->global_budget_bytes, 0);
	assert_int_equal(c->uid_limit, 4 * GIB);
	assert_int_equal(c->max_clients, 1024);
	assert_false(c->huge_pages);
	assert_int_equal(c->log_level, LOG_INFO);
}

static void test_defaults(void **state)
{
	struct conf *c = conf_new_defaults();

	assert_non_null(c);
	check_defaults(c);
	conf_free(c);
}

static void test_empty_file_is_defaults(void **state)
{
	struct conf *c = NULL;
	struct errors e;

	assert_int_equal(parse("", &e, &c), 0);
	check_defaults(c);
	assert_string_equal(c->path, "test.conf");
	conf_free(c);
	assert_int_equal(parse("# only a comment\n\n   \n\t# another\n", &e, &c), 0);
	check_defaults(c);
	conf_free(c);
}

static const char every_directive[] = "# every directive, not the defaults\n"
				      "socket /tmp/hak.sock\n"
				      "socket_mode 0660\n"
				      "socket_group root\n"
				      "admin_group root   # trailing comment\n"
				      "pool_size 128M\n"
				      "pool_size_max 2G\n"
				      "class 8K 40%\n"
				      "class 1M 60\n"
				      "ready_low 10%\n"
				      "ready_high 90%\n"
				      "return_batch 64\n"
				      "zero_threads 2\n"
				      "zero_method memset\n"
				      "zero_nice -5\n"
				      "trim_idle 500ms\n"
				      "psi_threshold 150ms\n"
				      "psi_window 2s\n"
				      "global_budget 3G\n"
				      "uid_limit 0\n"
				      "max_clients 7\n"
				      "huge_pages yes\n"
				      "log_level debug\n";

static void test_every_directive(void **state)
{
	struct conf *c = NULL;
	struct errors e;

	assert_int_equal(parse(every_directive, &e, &c), 0);
	assert_string_equal(c->socket, "/tmp/hak.sock");
	assert_int_equal(c->socket_mode, 0660);
	assert_string_equal(c->socket_group, "root");
	assert_int_equal(c->socket_gid, 0);
	assert_string_equal(c->admin_group, "root");
	assert_int_equal(c->pool_size, 128 * MIB);
	assert_int_equal(c->pool_size_max, 2 * GIB);
	assert_int_equal(c->nclasses, 2);
	assert_int_equal(c->cls[0].size, 8 * KIB);
	assert_int_equal(c->cls[0].share, 40);
	assert_int_equal(c->cls[1].size, MIB);
	assert_int_equal(c->cls[1].share, 60);
	assert_int_equal(c->ready_low, 10);
	assert_int_equal(c->ready_high, 90);
	assert_int_equal(c->return_batch, 64);
	assert_int_equal(c->zero_threads, 2);
	assert_int_equal(c->zero_method, ZERO_MEMSET);
	assert_int_equal(c->zero_nice, -5);
	assert_int_equal(c->trim_idle_ms, 500);
	assert_int_equal(c->psi_threshold_us, 150000);
	assert_int_equal(c->psi_window_us, 2000000);
	assert_int_equal(c->global_budget_bytes, 3 * GIB);
	assert_int_equal(c->global_budget_pct, 0);
	assert_int_equal(c->uid_limit, 0);
	assert_int_equal(c->max_clients, 7);
	assert_true(c->huge_pages);
	assert_int_equal(c->log_level, LOG_DEBUG);
	conf_free(c);
}

static void test_budget_percent_and_disabled(void **state)
{
	struct conf *c = NULL;
	struct errors e;

	assert_int_equal(parse("global_budget 40%\ntrim_idle 0\npsi_threshold 0\n", &e, &c), 0);
	assert_int_equal(c->global_budget_pct, 40);
	assert_int_equal(c->global_budget_bytes, 0);
	assert_int_equal(c->trim_idle_ms, 0);
	assert_int_equal(c->psi_threshold_us, 0);
	conf_free(c);
}

static void test_line_errors(void **state)
{
	expect_error("pool_size 64M\nnosuchkey 1\n", 2, "unknown directive 'nosuchkey'");
	expect_error("\n\npool_size 12Q\n", 3, "not a size");
	expect_error("pool_size 64M\npool_size 32M\n", 2,
		     "duplicate 'pool_size' (first at line 1)");
	expect_error("ready_low\n", 1, "takes 1 value, got 0");
	expect_error("class 4K\n", 1, "takes 2 values, got 1");
	expect_error("socket_mode 0999\n", 1, "octal mode");
	expect_error("socket relative.sock\n", 1, "absolute");
	expect_error("socket_group no-such-group-hopefully\n", 1, "unknown group");
	expect_error("zero_method fast\n", 1, "unknown zero_method");
	expect_error("zero_nice 20\n", 1, "zero_nice");
	expect_error("zero_threads 0\n", 1, "out of range");
	expect_error("max_clients -1\n", 1, "not a number");
	expect_error("return_batch 12abc\n", 1, "not a number");
	expect_error("huge_pages maybe\n", 1, "yes or no");
	expect_error("log_level loud\n", 1, "unknown log_level");
	expect_error("trim_idle 30\n", 1, "not a time");
	expect_error("psi_window 1h\n", 1, "not a time");
	expect_error("ready_high 101%\n", 1, "out of range");
	expect_error("global_budget 0%\n", 1, "out of range");
	expect_error("pool_size 2T\n", 1, "out of range");
}

static void test_class_errors(void **state)
{
	expect_error("class 4K 50%\nclass 6K 50%\n", 2, "not a multiple of 4K");
	expect_error("class 64K 50%\nclass 4K 50%\n", 2, "strictly ascending");
	expect_error("class 4K 50%\nclass 4K 50%\n", 2, "strictly ascending");
	expect_error("class 4K 0%\n", 1, "out of range");
	expect_error("class 4K 25%\nclass 64K 25%\nclass 2M 40%\n", 3,
		     "class shares add up to 90%, not 100%");
	expect_error("class 4K 60%\nclass 8K 60%\n", 2, "add up to 120%");
	expect_error("class 4K 1%\nclass 8K 1%\nclass 12K 1%\nclass 16K 1%\nclass 20K 1%\n"
		     "class 24K 1%\nclass 28K 1%\nclass 32K 1%\nclass 36K 92%\n",
		     9, "too many classes");
}

static void test_whole_file_errors(void **state)
{
	expect_error("ready_high 20%\n", 1, "ready_low (25%) must be below ready_high (20%)");
	expect_error("ready_low 50%\n\nready_high 50%\n", 3, "must be below");
	expect_error("pool_size 2G\n", 1, "pool_size 2G is above pool_size_max 1G");
	expect_error("pool_size_max 32M\n", 1, "above pool_size_max 32M");
	expect_error("psi_window 100ms\n", 1, "psi_window must be 500ms to 10s");
	expect_error("psi_threshold 3s\npsi_window 2s\n", 2, "must not exceed");
}

static void test_several_errors_all_reported(void **state)
{
	struct conf *c = NULL;
	struct errors e;

	assert_int_equal(parse("a 1\npool_size x\nready_low 1\nready_low 2\n", &e, &c), -EINVAL);
	assert_null(c);
	assert_int_equal(e.n, 3);
	assert_non_null(strstr(e.msg[0], "test.conf:1:"));
	assert_non_null(strstr(e.msg[1], "test.conf:2:"));
	assert_non_null(strstr(e.msg[2], "test.conf:4:"));
}

static void test_sizes(void **state)
{
	static const struct {
		const char *s;
		unsigned long long v;
	} ok[] = {
		{"0", 0},	 {"4096", 4096},    {"4K", 4 * KIB},
		{"4k", 4 * KIB}, {"64M", 64 * MIB}, {"64m", 64 * MIB},
		{"1G", GIB},	 {"3g", 3 * GIB},   {"2T", 2 * GIB * 1024},
	};
	static const char *const bad[] = {
		"",	    "K", "-1", " 1", "1 K", "1KB", "1.5G", "0x10", "99999999999999999999",
		"16777216T"};
	uint64_t v;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(conf_parse_size(ok[i].s, &v), 0);
		assert_int_equal(v, ok[i].v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (conf_parse_size(bad[i], &v) == 0)
			fail_msg("'%s' parsed as a size", bad[i]);
}

static void test_durations(void **state)
{
	uint64_t us;

	assert_int_equal(conf_parse_duration_us("30s", &us), 0);
	assert_int_equal(us, 30000000);
	assert_int_equal(conf_parse_duration_us("100ms", &us), 0);
	assert_int_equal(us, 100000);
	assert_int_equal(conf_parse_duration_us("0", &us), 0);
	assert_int_equal(us, 0);
	assert_int_equal(conf_parse_duration_us("5", &us), -EINVAL);
	assert_int_equal(conf_parse_duration_us("5m", &us), -EINVAL);
	assert_int_equal(conf_parse_duration_us("ms", &us), -EINVAL);
}

static void test_format_size(void **state)
{
	char buf[32];

	assert_string_equal(conf_format_size(buf, sizeof(buf), 64 * MIB), "64M");
	assert_string_equal(conf_format_size(buf, sizeof(buf), GIB), "1G");
	assert_string_equal(conf_format_size(buf, sizeof(buf), 8 * GIB), "8G");
	assert_string_equal(conf_format_size(buf, sizeof(buf), 4 * KIB), "4K");
	assert_string_equal(conf_format_size(buf, sizeof(buf), 100), "100");
	assert_string_equal(conf_format_size(buf, sizeof(buf), 0), "0");
	assert_string_equal(conf_format_size(buf, sizeof(buf), GIB + GIB / 2 + 1), "1.5G");
}

static void test_geometry(void **state)
{
	struct conf *c = conf_new_defaults();
	struct hak_class_geom g[HAK_MAX_CLASSES];

	assert_int_equal(conf_geometry(c, 64 * MIB, g), 6);
	assert_int_equal(g[0].slot_size, 4 * KIB);
	assert_int_equal(g[0].nslots, 2457); /* 15% of 64 MiB, rounded down */
	assert_int_equal(g[1].nslots, 409);
	assert_int_equal(g[2].nslots, 307);
	assert_int_equal(g[3].nslots, 102);
	assert_int_equal(g[4].nslots, 8);
	assert_int_equal(g[5].slot_size, 2 * MIB + 4 * KIB);
	assert_int_equal(g[5].nslots, 7); /* 16 MiB / 2052 KiB, rounded down */
	assert_int_equal(g[0].ready_low, 614);
	assert_int_equal(g[0].ret_batch, 614); /* a quarter of the class */
	assert_int_equal(g[3].ret_batch, 25);
	assert_int_equal(g[4].ret_batch, 2);
	/* A tiny pool still gets one slot of every class. */
	assert_int_equal(conf_geometry(c, 4 * KIB, g), 6);
	for (unsigned i = 0; i < 6; i++)
		assert_int_equal(g[i].nslots, 1);
	assert_int_equal(g[4].ready_low, 1);
	assert_int_equal(conf_watermark(75, 16), 12);
	assert_int_equal(conf_watermark(75, 1), 1);
	assert_int_equal(conf_watermark(0, 16), 0);
	conf_free(c);
}

static void count_diff(void *data, const char *key, const char *was, const char *now, bool live)
{
	unsigned *n = data;

	n[live]++;
}

struct change {
	char key[32], was[64], now[64];
	unsigned n;
};

static void keep_change(void *data, const char *key, const char *was, const char *now, bool live)
{
	struct change *ch = data;

	snprintf(ch->key, sizeof(ch->key), "%s", key);
	snprintf(ch->was, sizeof(ch->was), "%s", was);
	snprintf(ch->now, sizeof(ch->now), "%s", now);
	ch->n++;
}

/* A reload says what a value was and what it is now, as the file writes it. */
static void test_diff_values(void **state)
{
	static const struct {
		const char *line, *key, *was, *now;
	} cases[] = {
		{"pool_size 128M\n", "pool_size", "64M", "128M"},
		{"trim_idle 1500ms\n", "trim_idle", "30s", "1500ms"},
		{"global_budget 2G\n", "global_budget", "25%", "2G"},
		{"admin_group root\n", "admin_group", "(unset)", "root"},
		{"class 4K 100%\n", "class", "4K 15%, 16K 10%, 32K 15%, 64K 10%, 2M 25%, 2052K 25%",
		 "4K 100%"},
		{"log_level debug\n", "log_level", "info", "debug"},
	};
	struct conf *old = conf_new_defaults();

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct conf *c = NULL;
		struct change ch = {0};
		struct errors e;

		assert_int_equal(parse(cases[i].line, &e, &c), 0);
		conf_diff(old, c, keep_change, &ch);
		assert_int_equal(ch.n, 1);
		assert_string_equal(ch.key, cases[i].key);
		assert_string_equal(ch.was, cases[i].was);
		assert_string_equal(ch.now, cases[i].now);
		conf_free(c);
	}
	conf_free(old);
}

static void test_reload_helpers(void **state)
{
	struct conf *old = conf_new_defaults(), *c = NULL;
	struct errors e;
	unsigned n[2] = {0, 0};

	assert_int_equal(parse("socket /tmp/other.sock\nclass 4K 100%\nready_low 5%\n", &e, &c), 0);
	conf_diff(old, c, count_diff, n);
	assert_int_equal(n[0], 2); /* socket, class: restart */
	assert_int_equal(n[1], 1); /* ready_low: live */
	assert_int_equal(conf_keep_restart_settings(c, old), 0);
	assert_string_equal(c->socket, old->socket);
	assert_int_equal(c->nclasses, 6);
	assert_int_equal(c->ready_low, 5);
	conf_free(c);
	conf_free(old);
}

static void test_load_missing_file(void **state)
{
	struct conf *c = NULL;
	struct errors e = {0};

	assert_int_equal(conf_load("/nonexistent/hakzerod.conf", collect, &e, &c), -ENOENT);
	assert_null(c);
	assert_int_equal(e.n, 1);
	assert_non_null(strstr(e.msg[0], "/nonexistent/hakzerod.conf: cannot open"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_empty_file_is_defaults),
		cmocka_unit_test(test_every_directive),
		cmocka_unit_test(test_budget_percent_and_disabled),
		cmocka_unit_test(test_line_errors),
		cmocka_unit_test(test_class_errors),
		cmocka_unit_test(test_whole_file_errors),
		cmocka_unit_test(test_several_errors_all_reported),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_format_size),
		cmocka_unit_test(test_geometry),
		cmocka_unit_test(test_reload_helpers),
		cmocka_unit_test(test_load_missing_file),
		cmocka_unit_test(test_diff_values),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
