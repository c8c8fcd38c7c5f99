/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Memory pressure: a PSI trigger on /proc/pressure/memory.  When tasks
 * stall on memory for psi_threshold within psi_window, the kernel wakes us
 * (EPOLLPRI) and every session's idle zeroed slots are trimmed at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "clients.h"
#include "conf.h"
#include "log.h"
#include "server.h"
#include "util.h"

#define PSI_MEMORY "/proc/pressure/memory"

static void trim_all(struct server *srv)
{
	char size[16];
	unsigned matched;
	uint64_t bytes = clients_trim(&srv->clients, 0, &matched);

	srv->st.trims_psi++;
	log_msg(LOG_NOTICE, "memory pressure: trimming %s of idle zeroed slots",
		conf_format_size(size, sizeof(size), bytes));
}

static void on_psi(struct watch *w, uint32_t events)
{
	struct server *srv = w->data;

	if (events & EPOLLERR) {
		/* The trigger is gone (e.g. its cgroup was removed). */
		log_msg(LOG_WARNING, "memory pressure trigger failed; trimming on pressure is off");
		psi_fini(srv);
		return;
	}
	if (events & EPOLLPRI) {
		srv->st.psi_events++;
		trim_all(srv);
	}
}

/* Without CAP_SYS_RESOURCE the kernel takes only windows that are whole
 * multiples of this (and says EINVAL otherwise). */
#define PSI_UNPRIV_WINDOW_US (2 * USEC_PER_SEC)

static int arm(uint64_t threshold_us, uint64_t window_us)
{
	char trig[64];
	int fd = open(PSI_MEMORY, O_RDWR | O_NONBLOCK | O_CLOEXEC), n, r;

	if (fd < 0)
		return -errno;
	n = snprintf(trig, sizeof(trig), "some %" PRIu64 " %" PRIu64, threshold_us, window_us);
	/* The kernel wants the terminating NUL written too. */
	if (write(fd, trig, (size_t)n + 1) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

/* Arms the configured trigger; unprivileged, with the window stretched to
 * what the kernel allows and the threshold in proportion. */
static int arm_scaled(const struct conf *c)
{
	uint64_t w = c->psi_window_us, t = c->psi_threshold_us, w2;
	int fd = arm(t, w);

	if (fd >= 0)
		log_msg(LOG_DEBUG, "memory pressure trigger: some %" PRIu64 "us in %" PRIu64 "us",
			t, w);
	if (fd != -EINVAL || w % PSI_UNPRIV_WINDOW_US == 0)
		return fd;
	w2 = (w + PSI_UNPRIV_WINDOW_US - 1) / PSI_UNPRIV_WINDOW_US * PSI_UNPRIV_WINDOW_US;
	fd = arm(t * w2 / w, w2);
	if (fd >= 0)
		log_msg(LOG_NOTICE,
			"memory pressure trigger: window stretched to %" PRIu64
			"ms (no CAP_SYS_RESOURCE), threshold %" PRIu64 "ms",
			w2 / USEC_PER_MSEC, t * w2 / w / USEC_PER_MSEC);
	return fd;
}

void psi_init(struct server *srv)
{
	const struct conf *c = srv->conf;
	int fd;

	if (c->psi_threshold_us == 0)
		return;
	fd = arm_scaled(c);
	if (fd < 0) {
		log_msg(LOG_NOTICE,
			"no memory pressure trigger (%s: %s); trimming on pressure is off",
			PSI_MEMORY, strerror(-fd));
		return;
	}
	srv->psi_w = (struct watch){fd, on_psi, srv};
	if (loop_add(&srv->loop, &srv->psi_w, EPOLLPRI) < 0) {
		close(fd);
		srv->psi_w.fd = -1;
		return;
	}
}

void psi_fini(struct server *srv)
{
	loop_close(&srv->loop, &srv->psi_w);
}
