/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The listening socket: the one systemd passed (socket activation), or one
 * we bind ourselves.  A socket file left by a dead daemon is replaced; one
 * a live daemon answers on is not.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "server.h"

#define SOCKET_DIR_MODE 0755
#define LISTEN_BACKLOG 128

static int make_addr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	strcpy(sa->sun_path, path);
	return 0;
}

static int from_systemd(struct server *srv)
{
	int n = sd_listen_fds(1), fd = SD_LISTEN_FDS_START;

	if (n <= 0)
		return n;
	if (n > 1 || sd_is_socket_unix(fd, SOCK_SEQPACKET, 1, NULL, 0) <= 0) {
		log_msg(LOG_ERR,
			"socket activation: expected one listening SOCK_SEQPACKET "
			"unix socket, got %d descriptors",
			n);
		return -EINVAL;
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return -errno;
	srv->listen_w.fd = fd;
	srv->listen_from_systemd = true;
	log_msg(LOG_INFO, "listening on the socket systemd passed");
	return 1;
}

static int make_dir(const char *path)
{
	char *copy = strdup(path);
	int r = 0;

	if (!copy)
		return -ENOMEM;
	if (mkdir(dirname(copy), SOCKET_DIR_MODE) < 0 && errno != EEXIST)
		r = -errno;
	free(copy);
	return r;
}

/* Whether a daemon answers on path. */
static bool someone_listens(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	bool answered;

	if (fd < 0)
		return false;
	answered = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0;
	close(fd);
	return answered;
}

static int remove_stale(const char *path, const struct sockaddr_un *sa)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	if (someone_listens(sa))
		return -EADDRINUSE;
	log_msg(LOG_INFO, "removing stale socket %s", path);
	return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}

static int set_perms(const struct conf *c)
{
	if (chmod(c->socket, c->socket_mode) < 0)
		return -errno;
	if (c->socket_group && chown(c->socket, (uid_t)-1, c->socket_gid) < 0)
		return -errno;
	return 0;
}

static int bind_own(struct server *srv)
{
	const struct conf *c = srv->conf;
	struct sockaddr_un sa;
	int fd, r = make_addr(c->socket, &sa);

	if (r == 0)
		r = make_dir(c->socket);
	if (r == 0)
		r = remove_stale(c->socket, &sa);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	srv->listen_w.fd = fd;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	srv->bound_path = strdup(c->socket);
	if (!srv->bound_path)
		return -ENOMEM;
	r = set_perms(c);
	if (r == 0 && listen(fd, LISTEN_BACKLOG) < 0)
		r = -errno;
	if (r == 0)
		log_msg(LOG_INFO, "listening on %s", c->socket);
	return r;
}

/* Accepts and closes every connection waiting on systemd's socket: a
 * client gets EOF and goes on in local mode at once, and systemd, finding
 * the queue empty, does not start the daemon again for them in a loop
 * (until its trigger limit takes the socket down). */
int listen_drain_passed(void)
{
	int fd = SD_LISTEN_FDS_START, n = 0, c;

	if (sd_listen_fds(0) != 1 || fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
		return 0;
	while ((c = accept4(fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
		close(c);
		n++;
	}
	return n;
}

int listen_check_free(const char *path)
{
	struct sockaddr_un sa;

	if (sd_listen_fds(0) > 0 || make_addr(path, &sa) < 0)
		return 0; /* systemd's socket, or bind_own reports it */
	if (!someone_listens(&sa))
		return 0;
	log_msg(LOG_ERR, "cannot listen on %s: another hakzerod is running there", path);
	return -EADDRINUSE;
}

int listen_init(struct server *srv)
{
	int r = from_systemd(srv);

	if (r == 0) {
		r = bind_own(srv);
		if (r < 0)
			log_msg(LOG_ERR, "cannot listen on %s: %s", srv->conf->socket,
				r == -EADDRINUSE ? "another hakzerod is running there"
				: r == -EEXIST	 ? "the file exists and is not a socket"
						 : strerror(-r));
	}
	if (r < 0)
		return r;
	srv->listen_w.fn = conn_accept;
	srv->listen_w.data = srv;
	return loop_add(&srv->loop, &srv->listen_w, EPOLLIN);
}

void listen_fini(struct server *srv)
{
	loop_close(&srv->loop, &srv->listen_w);
	if (srv->bound_path) {
		unlink(srv->bound_path);
		free(srv->bound_path);
		srv->bound_path = NULL;
	}
}
