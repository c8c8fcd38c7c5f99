/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The cmocka side of the harness: the setups and teardowns every
 * real-daemon driver uses.  Apart from harness.c: hak-soak uses the
 * harness without cmocka.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

/* h_fail ends the current test only. */
static void fail_cmocka(const char *msg)
{
	fail_msg("%s", msg);
}

int h_test_setup(void **state)
{
	(void)state;
	h_fail_hook = fail_cmocka;
	return 0;
}

int h_test_teardown(void **state)
{
	(void)state;
	h_fail_hook = NULL;
	h_log_flush();
	return 0;
}

int h_group_setup(void **state)
{
	(void)state;
	h_daemon_start();
	return 0;
}

int h_group_teardown(void **state)
{
	int r;

	(void)state;
	h_procs_release_all();
	r = h_daemon_finish();
	h_cleanup();
	return r;
}

int h_run_finish(int failed)
{
	h_cleanup();
	return failed == 0 ? 0 : 1;
}
