/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "strbuf.h"

#define STRBUF_MIN 256

static bool grow(struct strbuf *sb, size_t need)
{
	size_t cap = sb->cap ? sb->cap : STRBUF_MIN;
	char *p;

	while (cap < need)
		cap *= 2;
	if (cap == sb->cap)
		return true;
	p = realloc(sb->buf, cap);
	if (!p)
		return false;
	sb->buf = p;
	sb->cap = cap;
	return true;
}

void strbuf_printf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !grow(sb, sb->len + (size_t)n + 1)) {
		sb->oom = true;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, ap);
	va_end(ap);
	sb->len += (size_t)n;
}

void strbuf_reset(struct strbuf *sb)
{
	sb->len = 0;
	sb->oom = false;
}

void strbuf_fini(struct strbuf *sb)
{
	free(sb->buf);
	*sb = (struct strbuf){0};
}
