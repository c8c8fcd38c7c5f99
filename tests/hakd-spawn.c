/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hakd-spawn.h"

#define START_WAIT_MS 5000
#define POLL_MS 10

static void nap_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

bool hakd_init(struct hakd *d)
{
	const char *tmp = getenv("TMPDIR");

	memset(d, 0, sizeof(*d));
	if (!getenv("HAKZEROD"))
		return false;
	snprintf(d->dir, sizeof(d->dir), "%s/hakd-XXXXXX",
		 tmp && strlen(tmp) < 32 ? tmp : P_tmpdir);
	if (!mkdtemp(d->dir))
		return false;
	snprintf(d->sock, sizeof(d->sock), "%s/s.sock", d->dir);
	return true;
}

static bool answers(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	bool ok;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

bool hakd_start(struct hakd *d)
{
	const char *exe = getenv("HAKZEROD");
	pid_t pid = fork();

	if (pid < 0)
		return false;
	if (pid == 0) {
		/* The daemon must not outlive a test that dies. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execl(exe, exe, "--foreground", "--config", "/dev/null", "--socket", d->sock,
		      (char *)NULL);
		_exit(127);
	}
	d->pid = pid;
	for (unsigned t = 0; t < START_WAIT_MS; t += POLL_MS) {
		if (answers(d->sock))
			return true;
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			d->pid = 0;
			return false;
		}
		nap_ms(POLL_MS);
	}
	hakd_stop(d);
	return false;
}

void hakd_stop(struct hakd *d)
{
	if (d->pid <= 0)
		return;
	kill(d->pid, SIGTERM);
	waitpid(d->pid, NULL, 0);
	d->pid = 0;
	unlink(d->sock);
}

void hakd_fini(struct hakd *d)
{
	hakd_stop(d);
	if (d->dir[0])
		rmdir(d->dir);
}
