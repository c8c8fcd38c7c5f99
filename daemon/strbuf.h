/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A growing text buffer for admin replies. */
#ifndef HAKD_STRBUF_H
#define HAKD_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf {
	char *buf;
	size_t len, cap;
	bool oom; /* an append failed: the text is incomplete */
};

void strbuf_printf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strbuf_reset(struct strbuf *sb);
void strbuf_fini(struct strbuf *sb);

#endif
