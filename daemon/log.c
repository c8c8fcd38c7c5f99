/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Logging to the journal or stderr. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <systemd/sd-journal.h>

#include "log.h"
#include "util.h"

#define LOG_LINE_MAX 1024

static int log_level = LOG_INFO;
static bool log_journal;

static const char *const level_names[] = {
	[LOG_ERR] = "err",   [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
	[LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

/* systemd sets JOURNAL_STREAM to "DEV:INODE" of the stream it connected to
 * stderr; if stderr is still that stream, structured logging is possible. */
static bool stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!env || sscanf(env, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return st.st_dev == (dev_t)dev && st.st_ino == (ino_t)ino;
}

int log_init(void)
{
	log_journal = stderr_is_journal();
	return 0;
}

void log_fini(void)
{
	fflush(stderr);
}

void log_set_level(int level)
{
	if (level >= LOG_ERR && level <= LOG_DEBUG)
		log_level = level;
}

int log_get_level(void)
{
	return log_level;
}

int log_level_parse(const char *name)
{
	for (int l = LOG_ERR; l <= LOG_DEBUG; l++)
		if (strcmp(name, level_names[l]) == 0)
			return l;
	if (strcmp(name, "error") == 0)
		return LOG_ERR;
	return -EINVAL;
}

const char *log_level_name(int level)
{
	if (level < LOG_ERR || level > LOG_DEBUG)
		return "?";
	return level_names[level];
}

/* How a line on stderr starts, per level. */
static const char *const level_prefixes[] = {
	[LOG_ERR] = "error", [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
	[LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

static void emit(int level, const struct log_peer *s, const char *msg)
{
	if (!log_journal) {
		fprintf(stderr, "hakzerod: %s: %s\n", level_prefixes[level], msg);
		return;
	}
	if (!s) {
		sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", level, NULL);
		return;
	}
	sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", level, "HAK_CLIENT_PID=%d", (int)s->pid,
			"HAK_CLIENT_UID=%u", (unsigned)s->uid, "HAK_CLIENT_ID=%" PRIu32, s->id,
			NULL);
}

__attribute__((format(printf, 3, 0))) static void vlog(int level, const struct log_peer *s,
						       const char *fmt, va_list ap)
{
	char msg[LOG_LINE_MAX];
	int errno_saved = errno;

	if (level > log_level)
		return;
	level = level < LOG_ERR ? LOG_ERR : level;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	emit(level, s, msg);
	errno = errno_saved;
}

void log_msg(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(level, NULL, fmt, ap);
	va_end(ap);
}

void log_client(int level, const struct log_peer *s, const char *fmt, ...)
{
	char prefixed[LOG_LINE_MAX];
	va_list ap;

	/* The prefix goes into the text too: stderr has no fields. */
	snprintf(prefixed, sizeof(prefixed), "client %" PRIu32 " (pid %d uid %u): %s", s->id,
		 (int)s->pid, (unsigned)s->uid, fmt);
	va_start(ap, fmt);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	vlog(level, s, prefixed, ap);
#pragma GCC diagnostic pop
	va_end(ap);
}

bool log_ratelimit(uint64_t *last, uint64_t interval_ns)
{
	uint64_t now = now_ns();

	if (*last != 0 && now - *last < interval_ns)
		return false;
	*last = now;
	return true;
}
