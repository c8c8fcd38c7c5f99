/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A real hakzerod for a test: started on its embedded defaults on a socket
 * in a fresh temporary directory, stopped with SIGTERM.  The binary comes
 * from $HAKZEROD (make check sets it).
 */
#ifndef HAK_TEST_HAKD_SPAWN_H
#define HAK_TEST_HAKD_SPAWN_H

#include <stdbool.h>
#include <sys/types.h>
#include <sys/un.h>

struct hakd {
	char dir[64];
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	pid_t pid; /* 0: not running */
};

/* Makes the directory; no daemon yet.  false when $HAKZEROD is unset. */
bool hakd_init(struct hakd *d);
/* Starts it and waits until its socket accepts.  false on failure. */
bool hakd_start(struct hakd *d);
void hakd_stop(struct hakd *d);
/* Stops it if running and removes the directory. */
void hakd_fini(struct hakd *d);

#endif
