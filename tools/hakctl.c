/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hakctl: admin requests to hakzerod over its socket. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "hak_proto.h"

#define EXIT_FAIL 1
#define EXIT_USAGE 2
/* The daemon answers from its event loop; longer means it is stuck. */
#define REPLY_TIMEOUT_S 10

struct options {
	const char *socket;
	bool json;
	int32_t pid;
	uint32_t cmd;
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: hakctl [--socket PATH] [--json] status|clients|stats\n"
		   "       hakctl [--socket PATH] [--json] trim [--client PID]\n"
		   "\n"
		   "  -s, --socket PATH   the daemon's socket (default $" HAK_SOCKET_ENV
		   " or " HAK_DEFAULT_SOCKET ")\n"
		   "  -j, --json          print JSON\n"
		   "  -p, --client PID    trim: only the client with this pid\n"
		   "  -V, --version       print the version and exit\n"
		   "  -h, --help          print this help and exit\n");
}

static int parse_command(const char *name, uint32_t *cmd)
{
	static const struct {
		const char *name;
		uint32_t cmd;
	} cmds[] = {
		{"status", HAK_ADMIN_STATUS},
		{"clients", HAK_ADMIN_CLIENTS},
		{"stats", HAK_ADMIN_STATS},
		{"trim", HAK_ADMIN_TRIM},
	};

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(name, cmds[i].name) == 0) {
			*cmd = cmds[i].cmd;
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_pid(const char *s, int32_t *pid)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno || v <= 0 || v > INT32_MAX)
		return -EINVAL;
	*pid = (int32_t)v;
	return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, 's'}, {"json", no_argument, NULL, 'j'},
		{"client", required_argument, NULL, 'p'}, {"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},	  {NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "s:jp:Vh", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			o->socket = optarg;
			break;
		case 'j':
			o->json = true;
			break;
		case 'p':
			if (parse_pid(optarg, &o->pid) < 0) {
				fprintf(stderr, "hakctl: bad pid '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'V':
			printf("hakctl %s\n", PACKAGE_VERSION);
			return EXIT_SUCCESS;
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	return -1;
}

/* Returns -1 to go on, or an exit code. */
static int parse_args(int argc, char **argv, struct options *o)
{
	int r = parse_options(argc, argv, o);

	if (r >= 0)
		return r;
	if (optind != argc - 1) {
		fprintf(stderr, "hakctl: %s\n",
			optind >= argc ? "no command given" : "one command only");
		usage(stderr);
		return EXIT_USAGE;
	}
	if (parse_command(argv[optind], &o->cmd) < 0) {
		fprintf(stderr, "hakctl: unknown command '%s'\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (o->pid && o->cmd != HAK_ADMIN_TRIM) {
		fprintf(stderr, "hakctl: --client goes with trim only\n");
		return EXIT_USAGE;
	}
	if (!o->socket)
		o->socket = getenv(HAK_SOCKET_ENV);
	if (!o->socket || !*o->socket)
		o->socket = HAK_DEFAULT_SOCKET;
	return -1;
}

static int connect_daemon(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = REPLY_TIMEOUT_S};
	int fd, err;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "hakctl: socket path too long: %s\n", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = errno;
		fprintf(stderr, "hakctl: cannot connect to %s: %s (is hakzerod running?)\n", path,
			strerror(err));
		if (fd >= 0)
			close(fd);
		return -err;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static int send_request(int fd, const struct options *o)
{
	struct hak_msg_admin m;
	int r;

	memset(&m, 0, sizeof(m));
	hak_proto_hdr_init(&m.h, HAK_MSG_ADMIN, sizeof(m));
	m.cmd = o->cmd;
	m.flags = o->json ? HAK_ADMIN_F_JSON : 0;
	m.pid = o->pid;
	r = hak_sock_send(fd, &m, sizeof(m), NULL, 0);
	if (r < 0)
		fprintf(stderr, "hakctl: cannot send the request: %s\n", strerror(-r));
	return r;
}

/* Receives one reply part and prints its text (an error's to stderr).
 * Returns 1 when it was the last part, 0 when more follow, or -errno. */
static int recv_part(int fd, int32_t *status)
{
	char buf[HAK_MSG_MAX];
	const struct hak_msg_admin_reply *m = (const void *)buf;
	ssize_t n = hak_sock_recv(fd, buf, sizeof(buf), NULL, 0, NULL, 0);

	if (n == 0 || n == -EAGAIN) {
		fprintf(stderr, "hakctl: %s\n",
			n == 0 ? "the daemon closed the connection without an answer"
			       : "no answer from the daemon");
		return n == 0 ? -EPIPE : -ETIMEDOUT;
	}
	if (n < 0 || hak_proto_check(buf, (size_t)n) != HAK_MSG_ADMIN_REPLY) {
		fprintf(stderr, "hakctl: bad reply from the daemon%s%s\n", n < 0 ? ": " : "",
			n < 0 ? strerror((int)-n) : "");
		return -EBADMSG;
	}
	*status = m->status;
	if (m->status < 0)
		fprintf(stderr, "hakctl: %.*s\n", (int)((size_t)n - sizeof(*m)), m->text);
	else
		fwrite(m->text, 1, (size_t)n - sizeof(*m), stdout);
	return m->flags & HAK_ADMIN_F_LAST ? 1 : 0;
}

static int request(const struct options *o)
{
	int32_t status = 0;
	int fd = connect_daemon(o->socket), r;

	if (fd < 0)
		return EXIT_FAIL;
	r = send_request(fd, o);
	while (r == 0)
		r = recv_part(fd, &status);
	close(fd);
	return r < 0 || status < 0 ? EXIT_FAIL : EXIT_SUCCESS;
}

int main(int argc, char **argv)
{
	struct options o = {0};
	int r = parse_args(argc, argv, &o);

	if (r >= 0)
		return r;
	return request(&o);
}
