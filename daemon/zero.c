/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the workers need of a pool before they zero: its pages resident.
 * The kernels are in shared/zero-kernels.c, their measurement in
 * shared/zero-pick.c. */
#include <stdint.h>
#include <sys/mman.h>

#include "hak_layout.h"
#include "zero.h"

/* mincore() vector bytes read at a time. */
#define RESIDENT_CHUNK 512

bool zero_all_resident(void *p, size_t len)
{
	unsigned char v[RESIDENT_CHUNK];

	for (size_t done = 0; done < len;) {
		size_t n = len - done;

		if (n > sizeof(v) * HAK_PAGE_SIZE)
			n = sizeof(v) * HAK_PAGE_SIZE;
		if (mincore((char *)p + done, n, v) < 0)
			return false;
		for (size_t i = 0; i < n / HAK_PAGE_SIZE; i++)
			if (!(v[i] & 1))
				return false;
		done += n;
	}
	return true;
}
