/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The zeroing kernels (rep stosb, non-temporal stores, memset): one copy,
 * run by the daemon's zeroing workers and measured by hakbench.
 */
#ifndef HAK_ZERO_KERNELS_H
#define HAK_ZERO_KERNELS_H

#include <stdbool.h>
#include <stddef.h>

enum zero_method {
	ZERO_AUTO,	/* measure at start-up, take the fastest */
	ZERO_REP_STOSB, /* x86-64 "rep stosb" (fast with ERMS/FSRM) */
	ZERO_NT,	/* non-temporal stores (AVX2 or SSE2), no cache pollution */
	ZERO_MEMSET,	/* the C library's memset */
	ZERO_METHOD_NR,
};

const char *zero_method_name(enum zero_method m);
/* "auto", "rep-stosb", "nt", "memset" -> method, or -EINVAL. */
int zero_method_parse(const char *name);
bool zero_method_supported(enum zero_method m);

/* Zeroes [p, p + len) with method m (not ZERO_AUTO).  Returns 0, or
 * -EOPNOTSUPP for a method this CPU lacks.  Stores are globally visible
 * (fenced) when it returns. */
int zero_range(enum zero_method m, void *p, size_t len);
/* The same without the fence: for zeroing many slots, then zero_fence()
 * once.  A fence after every 4 KiB slot waits each time for the
 * non-temporal stores to drain, which costs more than the stores. */
int zero_range_unfenced(enum zero_method m, void *p, size_t len);
/* Makes every store of zero_range_unfenced before it globally visible. */
void zero_fence(void);

#endif
