/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Logging: to the journal when stderr is the journal's stream (systemd), to
 * stderr with a level prefix otherwise.  Levels are syslog(3) priorities.
 */
#ifndef HAKD_LOG_H
#define HAKD_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>
#include <sys/types.h>

/* Who a message is about: one client. */
struct log_peer {
	pid_t pid;
	uid_t uid;
	uint32_t id;
};

/* Detects the journal; safe to skip (then everything goes to stderr). */
int log_init(void);
void log_fini(void);

void log_set_level(int level);
int log_get_level(void);

/* "err", "warning", "notice", "info", "debug" -> level, or -EINVAL. */
int log_level_parse(const char *name);
const char *log_level_name(int level);

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* As log_msg, about one client: adds its pid, uid and id (as journal fields
 * HAK_CLIENT_PID, HAK_CLIENT_UID, HAK_CLIENT_ID). */
void log_client(int level, const struct log_peer *s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* True at most once per interval_ns for the caller's *last (a timestamp it
 * keeps, 0 at first); for messages a peer could otherwise trigger in a loop. */
bool log_ratelimit(uint64_t *last, uint64_t interval_ns);

#endif
