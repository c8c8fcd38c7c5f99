/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hakctl stats --format openmetrics: the daemon's JSON replies written as
 * the Prometheus text exposition format, which node_exporter's textfile
 * collector and Prometheus read.  Names carry their unit (_bytes,
 * _seconds) and counters end in _total, as the naming conventions ask.
 */
#ifndef HAKCTL_METRICS_H
#define HAKCTL_METRICS_H

#include <stdio.h>

/*
 * Writes every number of stats (the flat object of `stats --json`) and of
 * status (that of `status --json`) to out, each with its HELP and TYPE
 * lines; a name it does not know is written as an untyped counter, so
 * that a newer daemon's counters are not lost.  Returns 0, or -EBADMSG
 * when a reply is not such an object.
 */
int metrics_print(FILE *out, const char *stats, const char *status);

#endif
