/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Pool geometry shared by the daemon and local mode. */
#include "hak_geom.h"

#define PERCENT 100u
/* A class of few slots still rings for its returns: it batches at most a
 * quarter of them. */
#define RETURN_BATCH_DIVISOR 4u

const struct hak_class_spec hak_default_classes[HAK_DEFAULT_NCLASSES] = {
	{4ull << 10, 15},
	{16ull << 10, 10},
	{32ull << 10, 15},
	{64ull << 10, 10},
	{2ull << 20, 25},
	{(2ull << 20) + (4ull << 10), 25},
};

uint32_t hak_geom_watermark(unsigned pct, uint32_t nslots)
{
	uint64_t n = (uint64_t)nslots * pct / PERCENT;

	return (uint32_t)(n == 0 && pct > 0 ? 1 : n);
}

static uint32_t min_u32(uint64_t a, uint32_t b)
{
	return a < b ? (uint32_t)a : b;
}

unsigned hak_geometry(const struct hak_class_spec *cls, unsigned n, uint64_t pool_bytes,
		      const struct hak_geom_params *p, struct hak_class_geom *g)
{
	for (unsigned i = 0; i < n; i++) {
		uint64_t share = pool_bytes * cls[i].share / PERCENT;
		uint64_t slots = share / cls[i].size;
		uint32_t quarter;

		g[i].slot_size = cls[i].size;
		g[i].nslots = slots == 0 ? 1 : min_u32(slots, p->max_slots);
		g[i].ready_low = hak_geom_watermark(p->ready_low_pct, g[i].nslots);
		quarter = g[i].nslots / RETURN_BATCH_DIVISOR;
		g[i].ret_batch = min_u32(p->return_batch, quarter ? quarter : 1);
	}
	return n;
}

uint32_t hak_geom_initial_target(uint64_t slot_size, unsigned nclasses, uint32_t high)
{
	uint64_t n = HAK_POOL_INITIAL / (nclasses ? nclasses : 1) / slot_size;

	if (n == 0)
		n = 1;
	return n < high ? (uint32_t)n : high;
}

uint32_t hak_geom_target_low(uint32_t target, uint32_t low, uint32_t high)
{
	uint64_t n = high ? (uint64_t)target * low / high : low;

	if (n == 0)
		n = 1;
	return n < low ? (uint32_t)n : low;
}

uint32_t hak_geom_target_step(uint32_t target, bool grow, uint32_t initial, uint32_t high)
{
	uint64_t n = grow ? (uint64_t)target * HAK_READY_GROW : target / HAK_READY_GROW;

	if (n < initial)
		n = initial;
	return n < high ? (uint32_t)n : high;
}
