/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Control segment layout: computed by the daemon, validated by the client. */
#include <errno.h>
#include <string.h>

#include "hak_layout.h"

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static uint32_t pow2_at_least(uint32_t n)
{
	uint32_t p = 1;

	while (p < n)
		p <<= 1;
	return p;
}

static int check_geom(const struct hak_class_geom *g)
{
	if (g->slot_size == 0 || g->slot_size % HAK_PAGE_SIZE)
		return -EINVAL;
	if (g->nslots == 0 || g->nslots > HAK_MAX_SLOTS)
		return -EINVAL;
	return 0;
}

static uint64_t place_ring(uint64_t *off, uint32_t entries, uint64_t *ents_off)
{
	uint64_t ring_off = align_up(*off, HAK_CACHELINE);

	*ents_off = align_up(ring_off + sizeof(struct hak_ring_shared), HAK_CACHELINE);
	*off = *ents_off + (uint64_t)entries * sizeof(hak_desc_t);
	return ring_off;
}

int hak_layout_compute(struct hak_ctrl_hdr *h, const struct hak_class_geom *g, unsigned n,
		       uint32_t client_id)
{
	uint64_t off, pool_off = 0;

	if (n == 0 || n > HAK_MAX_CLASSES)
		return -EINVAL;
	memset(h, 0, sizeof(*h));
	h->magic = HAK_CTRL_MAGIC;
	h->version = HAK_LAYOUT_VERSION;
	h->hdr_size = sizeof(*h);
	h->nclasses = n;
	h->client_id = client_id;
	off = align_up(sizeof(*h), HAK_CACHELINE);
	h->sync_off = off;
	off += align_up(sizeof(struct hak_ctrl_sync), HAK_CACHELINE);
	h->counters_off = off;
	off += (uint64_t)HAK_COUNTER_SHARDS * sizeof(struct hak_ctrl_counters);
	for (unsigned i = 0; i < n; i++) {
		struct hak_class_layout *cl = &h->cls[i];
		int r = check_geom(&g[i]);

		if (r < 0)
			return r;
		/* Callers pick the smallest class that fits: sizes ascend. */
		if (i > 0 && g[i].slot_size <= g[i - 1].slot_size)
			return -EINVAL;
		cl->slot_size = g[i].slot_size;
		cl->nslots = g[i].nslots;
		cl->ring_entries = pow2_at_least(g[i].nslots);
		cl->ready_low = g[i].ready_low;
		cl->ret_batch = g[i].ret_batch;
		cl->pool_offset = pool_off;
		pool_off += cl->slot_size * cl->nslots;
		cl->ready_off = place_ring(&off, cl->ring_entries, &cl->ready_ents_off);
		cl->ret_off = place_ring(&off, cl->ring_entries, &cl->ret_ents_off);
	}
	h->ctrl_size = align_up(off, HAK_PAGE_SIZE);
	h->pool_size = pool_off;
	return 0;
}

static int inside(uint64_t off, uint64_t len, uint64_t size)
{
	return off <= size && len <= size - off;
}

static int ring_inside(const struct hak_class_layout *cl, uint64_t ring_off, uint64_t ents_off,
		       uint64_t ctrl_size)
{
	return ring_off % HAK_CACHELINE == 0 && ents_off % sizeof(hak_desc_t) == 0 &&
	       inside(ring_off, sizeof(struct hak_ring_shared), ctrl_size) &&
	       inside(ents_off, (uint64_t)cl->ring_entries * sizeof(hak_desc_t), ctrl_size);
}

static int class_ok(const struct hak_class_layout *cl, uint64_t expect_off, uint64_t ctrl_size,
		    uint64_t pool_size)
{
	if (cl->slot_size == 0 || cl->slot_size % HAK_PAGE_SIZE || cl->nslots == 0 ||
	    cl->nslots > HAK_MAX_SLOTS)
		return 0;
	if (cl->ring_entries < cl->nslots || (cl->ring_entries & (cl->ring_entries - 1)))
		return 0;
	if (cl->pool_offset != expect_off || cl->slot_size > pool_size / cl->nslots ||
	    !inside(cl->pool_offset, cl->slot_size * cl->nslots, pool_size))
		return 0;
	return ring_inside(cl, cl->ready_off, cl->ready_ents_off, ctrl_size) &&
	       ring_inside(cl, cl->ret_off, cl->ret_ents_off, ctrl_size);
}

int hak_layout_validate(const struct hak_ctrl_hdr *h, uint64_t ctrl_size, uint64_t pool_size)
{
	uint64_t pool_off = 0;

	if (ctrl_size < sizeof(*h) || h->magic != HAK_CTRL_MAGIC ||
	    h->version != HAK_LAYOUT_VERSION || h->hdr_size != sizeof(*h))
		return -EBADMSG;
	if (h->ctrl_size != ctrl_size || h->pool_size != pool_size)
		return -EBADMSG;
	if (h->nclasses == 0 || h->nclasses > HAK_MAX_CLASSES)
		return -EBADMSG;
	if (h->sync_off % HAK_CACHELINE ||
	    !inside(h->sync_off, sizeof(struct hak_ctrl_sync), ctrl_size))
		return -EBADMSG;
	if (h->counters_off % HAK_CACHELINE ||
	    !inside(h->counters_off, HAK_COUNTER_SHARDS * sizeof(struct hak_ctrl_counters),
		    ctrl_size))
		return -EBADMSG;
	for (unsigned i = 0; i < h->nclasses; i++) {
		const struct hak_class_layout *cl = &h->cls[i];

		if (!class_ok(cl, pool_off, ctrl_size, pool_size))
			return -EBADMSG;
		if (i > 0 && cl->slot_size <= h->cls[i - 1].slot_size)
			return -EBADMSG;
		pool_off += cl->slot_size * cl->nslots;
	}
	return pool_off == pool_size ? 0 : -EBADMSG;
}
