/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Binary size units, defined once for every part of the tree.  64-bit, so
 * that a product such as 4 * GIB or a count of pages times MIB never wraps
 * in 32 bits; print them with PRIu64 or cast.
 */
#ifndef HAK_SIZE_H
#define HAK_SIZE_H

#include <stdint.h>

#define KIB UINT64_C(1024)
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)

#endif
