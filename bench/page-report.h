/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* `page`'s output: what the tables mean, then its results as tables and
 * JSON rows. */
#ifndef HAKBENCH_PAGE_REPORT_H
#define HAKBENCH_PAGE_REPORT_H

#include "bench.h"
#include "page.h"

/* What the tables mean, once, before the first. */
void page_print_head(const struct options *o);
/* One table (and its JSON rows) for a regime and a thread count. */
void page_report(struct bench *b, const struct page_results *all, enum regime rg, unsigned threads);

#endif
