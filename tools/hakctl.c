/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hakctl: admin requests to hakzerod over its socket. */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "hak_proto.h"
#include "metrics.h"

#define EXIT_FAIL 1
#define EXIT_USAGE 2
/* The daemon answers from its event loop; longer means it is stuck. */
#define REPLY_TIMEOUT_S 10

enum format { FORMAT_TEXT, FORMAT_JSON, FORMAT_OPENMETRICS };

struct options {
	const char *socket;
	enum format format;
	int32_t pid;
	uint32_t cmd;
};

/* Errors under --json are JSON too, on stdout where the answer would be:
 * a script reads one stream and finds {"error": ...} there. */
static bool json_errors;

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < ' ')
			fprintf(f, "\\u%04x", (unsigned)(unsigned char)*s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

/* Reports an error: "hakctl: MESSAGE" on stderr, or under --json
 * {"error":"MESSAGE","errno":N} on stdout (errno 0: not a system error). */
__attribute__((format(printf, 2, 3))) static void fail(int err, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!json_errors) {
		fprintf(stderr, "hakctl: %s\n", msg);
		return;
	}
	printf("{\"error\":");
	json_string(stdout, msg);
	printf(",\"errno\":%d}\n", err);
	fflush(stdout);
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: hakctl [--socket PATH] [--json] status|clients|stats\n"
		   "       hakctl [--socket PATH] --format openmetrics stats\n"
		   "       hakctl [--socket PATH] [--json] trim [--client PID]\n"
		   "\n"
		   "  -s, --socket PATH   the daemon's socket (default $" HAK_SOCKET_ENV
		   " or " HAK_DEFAULT_SOCKET ")\n"
		   "  -j, --json          print JSON (errors too)\n"
		   "  -f, --format FMT    text, json, or openmetrics (stats only: the\n"
		   "                      Prometheus text format, for node_exporter)\n"
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

static int parse_format(const char *s, enum format *f)
{
	static const char *const names[] = {[FORMAT_TEXT] = "text",
					    [FORMAT_JSON] = "json",
					    [FORMAT_OPENMETRICS] = "openmetrics"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i]) == 0) {
			*f = (enum format)i;
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, 's'},
		{"json", no_argument, NULL, 'j'},
		{"format", required_argument, NULL, 'f'},
		{"client", required_argument, NULL, 'p'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "s:jf:p:Vh", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			o->socket = optarg;
			break;
		case 'j':
			o->format = FORMAT_JSON;
			break;
		case 'f':
			if (parse_format(optarg, &o->format) < 0) {
				fprintf(stderr, "hakctl: unknown format '%s'\n", optarg);
				return EXIT_USAGE;
			}
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
	json_errors = o->format != FORMAT_TEXT;
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
	if (o->format == FORMAT_OPENMETRICS && o->cmd != HAK_ADMIN_STATS) {
		fprintf(stderr, "hakctl: --format openmetrics goes with stats only\n");
		return EXIT_USAGE;
	}
	if (!o->socket)
		o->socket = getenv(HAK_SOCKET_ENV);
	if (!o->socket || !*o->socket)
		o->socket = HAK_DEFAULT_SOCKET;
	return -1;
}

/* Why connect() failed, in the operator's terms. */
static void connect_failed(const char *path, int err)
{
	struct stat st;
	struct group *gr;

	switch (err) {
	case ENOENT:
	case ECONNREFUSED:
		fail(err,
		     "cannot connect to %s: %s (is hakzerod running? systemctl start "
		     "hakzerod.socket)",
		     path, strerror(err));
		return;
	case EACCES:
	case EPERM:
		if (stat(path, &st) < 0) {
			fail(err, "cannot reach %s: a directory on the way is closed to you", path);
			return;
		}
		gr = getgrgid(st.st_gid);
		fail(err,
		     "permission denied on %s: only root and the members of group %s may "
		     "connect (usermod -aG %s USER, then log in again)",
		     path, gr ? gr->gr_name : "(unknown)", gr ? gr->gr_name : "GROUP");
		return;
	default:
		fail(err, "cannot connect to %s: %s", path, strerror(err));
	}
}

static int connect_daemon(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = REPLY_TIMEOUT_S};
	int fd, err;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fail(ENAMETOOLONG, "socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = errno;
		connect_failed(path, err);
		if (fd >= 0)
			close(fd);
		return -err;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static int send_request(int fd, const struct options *o, uint32_t cmd, bool json)
{
	struct hak_msg_admin m;
	int r;

	memset(&m, 0, sizeof(m));
	hak_proto_hdr_init(&m.h, HAK_MSG_ADMIN, sizeof(m));
	m.cmd = cmd;
	m.flags = json ? HAK_ADMIN_F_JSON : 0;
	m.pid = o->pid;
	r = hak_sock_send(fd, &m, sizeof(m), NULL, 0);
	if (r < 0)
		fail(-r, "cannot send the request: %s", strerror(-r));
	return r;
}

/* Receives one reply part and writes its text to out (an error's is
 * reported).  Returns 1 when it was the last part, 0 when more follow, or
 * -errno. */
static int recv_part(int fd, FILE *out, int32_t *status)
{
	char buf[HAK_MSG_MAX];
	const struct hak_msg_admin_reply *m = (const void *)buf;
	ssize_t n = hak_sock_recv(fd, buf, sizeof(buf), NULL, 0, NULL, 0);

	if (n == 0 || n == -EAGAIN) {
		fail(n == 0 ? EPIPE : ETIMEDOUT, "%s",
		     n == 0 ? "the daemon closed the connection without an answer"
			    : "no answer from the daemon");
		return n == 0 ? -EPIPE : -ETIMEDOUT;
	}
	if (n < 0 || hak_proto_check(buf, (size_t)n) != HAK_MSG_ADMIN_REPLY) {
		fail(n < 0 ? (int)-n : EBADMSG, "bad reply from the daemon%s%s", n < 0 ? ": " : "",
		     n < 0 ? strerror((int)-n) : "");
		return -EBADMSG;
	}
	*status = m->status;
	if (m->status < 0)
		fail(-m->status, "%.*s", (int)((size_t)n - sizeof(*m)), m->text);
	else
		fwrite(m->text, 1, (size_t)n - sizeof(*m), out);
	return m->flags & HAK_ADMIN_F_LAST ? 1 : 0;
}

/* One request, its answer written to out.  Returns 0 or -errno (reported). */
static int ask(const struct options *o, uint32_t cmd, bool json, FILE *out)
{
	int32_t status = 0;
	int fd = connect_daemon(o->socket), r;

	if (fd < 0)
		return fd;
	r = send_request(fd, o, cmd, json);
	while (r == 0)
		r = recv_part(fd, out, &status);
	close(fd);
	return r < 0 ? r : status < 0 ? status : 0;
}

/* The answer of cmd in JSON, in a string the caller frees. */
static int ask_json(const struct options *o, uint32_t cmd, char **text)
{
	size_t len;
	FILE *f = open_memstream(text, &len);
	int r;

	if (!f) {
		fail(errno, "out of memory");
		return -ENOMEM;
	}
	r = ask(o, cmd, true, f);
	if (fclose(f) != 0 && r == 0)
		r = -ENOMEM;
	return r;
}

/* stats and status, the two in one exposition: counters and gauges. */
static int openmetrics(const struct options *o)
{
	char *stats = NULL, *status = NULL;
	int r = ask_json(o, HAK_ADMIN_STATS, &stats);

	if (r == 0)
		r = ask_json(o, HAK_ADMIN_STATUS, &status);
	if (r == 0) {
		r = metrics_print(stdout, stats, status);
		if (r < 0)
			fail(-r, "cannot read the daemon's stats");
	}
	free(stats);
	free(status);
	return r;
}

static int request(const struct options *o)
{
	int r = o->format == FORMAT_OPENMETRICS ? openmetrics(o)
						: ask(o, o->cmd, o->format == FORMAT_JSON, stdout);

	return r < 0 ? EXIT_FAIL : EXIT_SUCCESS;
}

int main(int argc, char **argv)
{
	struct options o = {0};
	int r = parse_args(argc, argv, &o);

	if (r >= 0)
		return r;
	return request(&o);
}
