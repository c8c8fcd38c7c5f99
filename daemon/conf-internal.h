/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Between the config parser (conf.c) and the directive parsers
 * (conf-directives.c). */
#ifndef HAKD_CONF_INTERNAL_H
#define HAKD_CONF_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "conf.h"

#define CONF_MAX_ARGS 2
#define CONF_ERR_MAX 256
/* Room for the directive table in the parser's bookkeeping. */
#define CONF_MAX_DIRECTIVES 32

/* What a directive parser gets: its arguments and room for an error. */
struct conf_arg {
	char *v[CONF_MAX_ARGS];
	char err[CONF_ERR_MAX];
};

struct conf_directive {
	const char *name;
	unsigned nargs;
	/* May be given more than once; its first line replaces the default
	 * list (class). */
	bool repeat;
	/* Returns 0, or -EINVAL with a message in a->err. */
	int (*parse)(struct conf *c, struct conf_arg *a);
};

extern const struct conf_directive conf_directives[];
extern const size_t conf_ndirectives;

#endif
