/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Tests for shared/layout.c: the daemon computes a control-segment layout,
 * the client validates what it finds in the segment before trusting any
 * offset in it.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hak_layout.h"
#include "hak_size.h"

/* Classes like the default ones: 4 KiB, 64 KiB, 2 MiB (a 64 MiB pool or so). */
static const struct hak_class_geom default_geom[] = {
	{.slot_size = 4 * KIB, .nslots = 1000, .ready_low = 64, .ret_batch = 32},
	{.slot_size = 64 * KIB, .nslots = 200, .ready_low = 16, .ret_batch = 8},
	{.slot_size = 2 * MIB, .nslots = 24, .ready_low = 4, .ret_batch = 1},
};
#define NR_DEFAULT (sizeof(default_geom) / sizeof(default_geom[0]))

struct region {
	uint64_t off, len;
	const char *what;
};

static uint64_t pow2_at_least(uint32_t n)
{
	uint64_t p = 1;

	while (p < n)
		p <<= 1;
	return p;
}

/* Every region of the control segment: header, sync, counters, rings. */
static unsigned ctrl_regions(const struct hak_ctrl_hdr *h, struct region *r)
{
	unsigned n = 0;

	r[n++] = (struct region){0, sizeof(*h), "header"};
	r[n++] = (struct region){h->sync_off, sizeof(struct hak_ctrl_sync), "sync"};
	r[n++] = (struct region){h->counters_off,
				 HAK_COUNTER_SHARDS * sizeof(struct hak_ctrl_counters), "counters"};
	for (unsigned c = 0; c < h->nclasses; c++) {
		const struct hak_class_layout *cl = &h->cls[c];
		uint64_t ents = (uint64_t)cl->ring_entries * sizeof(hak_desc_t);

		r[n++] = (struct region){cl->ready_off, sizeof(struct hak_ring_shared), "ready"};
		r[n++] = (struct region){cl->ready_ents_off, ents, "ready entries"};
		r[n++] = (struct region){cl->ret_off, sizeof(struct hak_ring_shared), "return"};
		r[n++] = (struct region){cl->ret_ents_off, ents, "return entries"};
	}
	return n;
}

static void assert_disjoint_inside(const struct region *r, unsigned n, uint64_t size)
{
	for (unsigned i = 0; i < n; i++) {
		if (r[i].off + r[i].len > size)
			fail_msg("%s outside the segment", r[i].what);
		for (unsigned j = i + 1; j < n; j++)
			if (r[i].off < r[j].off + r[j].len && r[j].off < r[i].off + r[i].len)
				fail_msg("%s overlaps %s", r[i].what, r[j].what);
	}
}

/* Everything a correct layout promises, checked independently of
 * hak_layout_validate. */
static void assert_layout_sane(const struct hak_ctrl_hdr *h, const struct hak_class_geom *g,
			       unsigned n)
{
	struct region r[3 + 4 * HAK_MAX_CLASSES];
	uint64_t pool_off = 0;

	assert_int_equal(h->magic, HAK_CTRL_MAGIC);
	assert_int_equal(h->version, HAK_LAYOUT_VERSION);
	assert_int_equal(h->hdr_size, sizeof(*h));
	assert_int_equal(h->nclasses, n);
	assert_int_equal(h->ctrl_size % HAK_PAGE_SIZE, 0);
	assert_int_equal(h->sync_off % HAK_CACHELINE, 0);
	assert_int_equal(h->counters_off % HAK_CACHELINE, 0);
	for (unsigned c = 0; c < n; c++) {
		const struct hak_class_layout *cl = &h->cls[c];

		assert_int_equal(cl->slot_size, g[c].slot_size);
		assert_int_equal(cl->nslots, g[c].nslots);
		assert_int_equal(cl->ready_low, g[c].ready_low);
		assert_int_equal(cl->ret_batch, g[c].ret_batch);
		assert_int_equal(cl->ring_entries, pow2_at_least(g[c].nslots));
		/* Back to back in the pool, in ascending order. */
		assert_int_equal(cl->pool_offset, pool_off);
		assert_int_equal(cl->pool_offset % HAK_PAGE_SIZE, 0);
		pool_off += cl->slot_size * cl->nslots;
		/* Indices and entries on their own cache lines. */
		assert_int_equal(cl->ready_off % HAK_CACHELINE, 0);
		assert_int_equal(cl->ret_off % HAK_CACHELINE, 0);
		assert_int_equal(cl->ready_ents_off % HAK_CACHELINE, 0);
		assert_int_equal(cl->ret_ents_off % HAK_CACHELINE, 0);
	}
	for (unsigned c = n; c < HAK_MAX_CLASSES; c++)
		assert_int_equal(h->cls[c].nslots, 0);
	assert_int_equal(h->pool_size, pool_off);
	assert_disjoint_inside(r, ctrl_regions(h, r), h->ctrl_size);
}

static void compute_default(struct hak_ctrl_hdr *h)
{
	assert_int_equal(hak_layout_compute(h, default_geom, NR_DEFAULT, 42), 0);
}

/* --------------------------------------------------------------- compute */

static void test_compute_default_classes(void **state)
{
	struct hak_ctrl_hdr h;

	compute_default(&h);
	assert_layout_sane(&h, default_geom, NR_DEFAULT);
	assert_int_equal(h.client_id, 42);
	assert_int_equal(h.pool_size, 1000 * 4 * KIB + 200 * 64 * KIB + 24 * 2 * MIB);
	assert_int_equal(h.cls[0].ring_entries, 1024);
	assert_int_equal(h.cls[1].ring_entries, 256);
	assert_int_equal(h.cls[2].ring_entries, 32);
	assert_int_equal(h.cls[1].pool_offset, 1000 * 4 * KIB);
	assert_int_equal(h.cls[2].pool_offset, 1000 * 4 * KIB + 200 * 64 * KIB);
}

static void test_compute_edge_geometries(void **state)
{
	struct hak_class_geom g[HAK_MAX_CLASSES];
	struct hak_ctrl_hdr h;

	/* One class, one slot: a one-entry ring. */
	g[0] = (struct hak_class_geom){.slot_size = HAK_PAGE_SIZE, .nslots = 1};
	assert_int_equal(hak_layout_compute(&h, g, 1, 0), 0);
	assert_layout_sane(&h, g, 1);
	assert_int_equal(h.cls[0].ring_entries, 1);

	/* The maximum number of classes, slot counts at and off powers of two,
	 * a jemalloc-style "2 MiB + one page" class. */
	for (unsigned i = 0; i < HAK_MAX_CLASSES; i++)
		g[i] = (struct hak_class_geom){.slot_size = (uint64_t)HAK_PAGE_SIZE << i,
					       .nslots = 64 + i * 7,
					       .ready_low = i,
					       .ret_batch = i + 1};
	g[HAK_MAX_CLASSES - 1].slot_size = 2 * MIB + HAK_PAGE_SIZE;
	assert_int_equal(hak_layout_compute(&h, g, HAK_MAX_CLASSES, UINT32_MAX), 0);
	assert_layout_sane(&h, g, HAK_MAX_CLASSES);

	/* The largest slot count accepted. */
	g[0] = (struct hak_class_geom){.slot_size = HAK_PAGE_SIZE, .nslots = 1u << 24};
	assert_int_equal(hak_layout_compute(&h, g, 1, 0), 0);
	assert_int_equal(h.cls[0].ring_entries, 1u << 24);
	assert_int_equal(h.pool_size, (1ull << 24) * HAK_PAGE_SIZE);
}

static void test_compute_rejects_bad_geometry(void **state)
{
	struct hak_class_geom g[HAK_MAX_CLASSES + 1];
	struct hak_ctrl_hdr h;

	for (unsigned i = 0; i <= HAK_MAX_CLASSES; i++)
		g[i] = (struct hak_class_geom){.slot_size = (uint64_t)HAK_PAGE_SIZE << i,
					       .nslots = 4};
	assert_int_equal(hak_layout_compute(&h, g, 0, 0), -EINVAL);
	assert_int_equal(hak_layout_compute(&h, g, HAK_MAX_CLASSES + 1, 0), -EINVAL);

	memcpy(g, default_geom, sizeof(default_geom));
	g[1].slot_size = 0;
	assert_int_equal(hak_layout_compute(&h, g, NR_DEFAULT, 0), -EINVAL);
	g[1].slot_size = 64 * KIB + 1; /* not a page multiple */
	assert_int_equal(hak_layout_compute(&h, g, NR_DEFAULT, 0), -EINVAL);
	g[1].slot_size = 2048;
	assert_int_equal(hak_layout_compute(&h, g, NR_DEFAULT, 0), -EINVAL);

	memcpy(g, default_geom, sizeof(default_geom));
	g[2].nslots = 0;
	assert_int_equal(hak_layout_compute(&h, g, NR_DEFAULT, 0), -EINVAL);
	g[2].nslots = (1u << 24) + 1;
	assert_int_equal(hak_layout_compute(&h, g, NR_DEFAULT, 0), -EINVAL);

	/* Sizes must strictly ascend. */
	memcpy(g, default_geom, sizeof(default_geom));
	g[1].slot_size = g[0].slot_size;
	assert_int_equal(hak_layout_compute(&h, g, NR_DEFAULT, 0), -EINVAL);
	memcpy(g, default_geom, sizeof(default_geom));
	g[2].slot_size = 32 * KIB;
	assert_int_equal(hak_layout_compute(&h, g, NR_DEFAULT, 0), -EINVAL);
}

/* -------------------------------------------------------------- validate */

static void test_validate_accepts_computed(void **state)
{
	struct hak_class_geom g[HAK_MAX_CLASSES];
	struct hak_ctrl_hdr h;

	compute_default(&h);
	assert_int_equal(hak_layout_validate(&h, h.ctrl_size, h.pool_size), 0);
	for (unsigned n = 1; n <= HAK_MAX_CLASSES; n++) {
		for (unsigned i = 0; i < n; i++)
			g[i] = (struct hak_class_geom){
				.slot_size = (uint64_t)HAK_PAGE_SIZE << (2 * i), .nslots = 3 + i};
		assert_int_equal(hak_layout_compute(&h, g, n, n), 0);
		assert_int_equal(hak_layout_validate(&h, h.ctrl_size, h.pool_size), 0);
	}
}

/*
 * Computes the default layout, lets mutate() corrupt it, expects -EBADMSG.
 * The sizes passed to validate are what the client measures on the memfds;
 * a mutation that describes a consistent pool of another size changes
 * *pool_size too, so that only the corruption it means is left.
 */
typedef void (*mutate_fn)(struct hak_ctrl_hdr *h, uint64_t *pool_size);

static void expect_corrupt(mutate_fn mutate, const char *what)
{
	struct hak_ctrl_hdr h;
	uint64_t ctrl_size, pool_size;

	compute_default(&h);
	ctrl_size = h.ctrl_size;
	pool_size = h.pool_size;
	mutate(&h, &pool_size);
	if (hak_layout_validate(&h, ctrl_size, pool_size) != -EBADMSG)
		fail_msg("corruption accepted: %s", what);
}

static void bad_magic(struct hak_ctrl_hdr *h, uint64_t *pool_size)
{
	h->magic ^= 1ull << 40;
}

static void bad_version(struct hak_ctrl_hdr *h, uint64_t *pool_size)
{
	h->version = HAK_LAYOUT_VERSION + 1;
}

static void bad_hdr_size(struct hak_ctrl_hdr *h, uint64_t *pool_size)
{
	h->hdr_size -= 8;
}

static void bad_ctrl_size(struct hak_ctrl_hdr *h, uint64_t *pool_size)
{
	h->ctrl_size += HAK_PAGE_SIZE;
}

static void bad_pool_size(struct hak_ctrl_hdr *h, uint64_t *pool_size)
{
	h->pool_size -= HAK_PAGE_SIZE;
}

/* No classes and, consistently, an empty pool. */
static void nclasses_zero(struct hak_ctrl_hdr *h, uint64_t *pool_size)
{
	h->nclasses = 0;
	h->pool_size = 0;
	*pool_size = 0;
}

static void nclasses_too_many(struct hak_ctrl_hdr *h, uint64_t *pool_size)
{
	h->nclasses = HAK_MAX_CLASSES + 1;
}

/* Claims a class the geometry never filled in (all zero). */
static void nclasses_more_than_filled(struct hak_ctrl_hdr *h, uint64_t *pool_size)
{
	h->nclasses++;
}

static void sync_outside(struct hak_ctrl_hdr *h, uint64_t *pool_size)
{
	h->sync_off = h->ctrl_size;
}

static void sync_misaligned(struct hak_ctrl_hdr *h, uint64_t *pool_size)
{
	h->sync_off += 8;
}

static void counters_outside(struct hak_ctrl_hdr *h, uint64_t *pool_size)
{
	h->counters_off = h->ctrl_size - HAK_CACHELINE;
}

static void counters_wrap(struct hak_ctrl_hdr *h, uint64_t *pool_size)
{
	h->counters_off = UINT64_MAX - (UINT64_MAX % HAK_CACHELINE);
}

static void ready_ring_outside(struct hak_ctrl_hdr *h, uint64_t *pool_size)
{
	h->cls[1].ready_off = h->ctrl_size;
}

static void ready_ring_misaligned(struct hak_ctrl_hdr *h, uint64_t *pool_size)
{
	h->cls[1].ready_off += 4;
}

static void return_entries_outside(struct hak_ctrl_hdr *h, uint64_t *pool_size)
{
	h->cls[2].ret_ents_off = h->ctrl_size - 8;
}

static void entries_misaligned(struct hak_ctrl_hdr *h, uint64_t *pool_size)
{
	h->cls[0].ready_ents_off += 1;
}

static void ring_entries_not_pow2(struct hak_ctrl_hdr *h, uint64_t *pool_size)
{
	h->cls[0].ring_entries = 1000; /* == nslots, fits, but not a power of two */
}

static void ring_entries_below_nslots(struct hak_ctrl_hdr *h, uint64_t *pool_size)
{
	h->cls[0].ring_entries = 512; /* nslots is 1000 */
}

/* A huge ring whose entries would run far past the segment. */
static void ring_entries_huge(struct hak_ctrl_hdr *h, uint64_t *pool_size)
{
	h->cls[2].ring_entries = 1u << 31;
}

/* 64 KiB before 4 KiB, with pool offsets that are otherwise consistent. */
static void classes_out_of_order(struct hak_ctrl_hdr *h, uint64_t *pool_size)
{
	struct hak_class_layout t = h->cls[0];

	h->cls[0] = h->cls[1];
	h->cls[1] = t;
	h->cls[0].pool_offset = 0;
	h->cls[1].pool_offset = h->cls[0].slot_size * h->cls[0].nslots;
}

/* The same size twice, everything else consistent. */
static void classes_equal_size(struct hak_ctrl_hdr *h, uint64_t *pool_size)
{
	h->cls[1].slot_size = h->cls[0].slot_size;
	h->cls[1].nslots = h->cls[1].ring_entries;
	h->cls[2].pool_offset = h->cls[1].pool_offset + h->cls[1].slot_size * h->cls[1].nslots;
	h->pool_size = h->cls[2].pool_offset + h->cls[2].slot_size * h->cls[2].nslots;
	*pool_size = h->pool_size;
}

/* Two classes sharing slots. */
static void classes_overlap(struct hak_ctrl_hdr *h, uint64_t *pool_size)
{
	h->cls[1].pool_offset -= HAK_PAGE_SIZE;
}

static void class_gap(struct hak_ctrl_hdr *h, uint64_t *pool_size)
{
	h->cls[2].pool_offset += 2 * MIB;
}

/* Pool bytes no class owns. */
static void pool_larger_than_classes(struct hak_ctrl_hdr *h, uint64_t *pool_size)
{
	h->pool_size += HAK_PAGE_SIZE;
	*pool_size = h->pool_size;
}

static void class_beyond_pool(struct hak_ctrl_hdr *h, uint64_t *pool_size)
{
	h->cls[2].nslots++;
}

static void slot_not_page_multiple(struct hak_ctrl_hdr *h, uint64_t *pool_size)
{
	h->cls[0].slot_size = 4000;
}

static void slot_size_zero(struct hak_ctrl_hdr *h, uint64_t *pool_size)
{
	h->cls[0].slot_size = 0;
}

static void nslots_zero(struct hak_ctrl_hdr *h, uint64_t *pool_size)
{
	h->cls[0].nslots = 0;
}

/* slot_size * nslots wraps to 0 (2^59 * 32 = 2^64), so the class would
 * seem to take no room while its slots run past the pool. */
static void class_size_overflow(struct hak_ctrl_hdr *h, uint64_t *pool_size)
{
	h->cls[2].slot_size = 1ull << 59;
	h->cls[2].nslots = 32;
	h->pool_size = h->cls[2].pool_offset;
	*pool_size = h->pool_size;
}

#define CORRUPT(fn)                                                                                \
	{                                                                                          \
		fn, #fn                                                                            \
	}

static void test_validate_rejects_corruption(void **state)
{
	static const struct {
		mutate_fn mutate;
		const char *what;
	} cases[] = {
		CORRUPT(bad_magic),
		CORRUPT(bad_version),
		CORRUPT(bad_hdr_size),
		CORRUPT(bad_ctrl_size),
		CORRUPT(bad_pool_size),
		CORRUPT(nclasses_zero),
		CORRUPT(nclasses_too_many),
		CORRUPT(nclasses_more_than_filled),
		CORRUPT(sync_outside),
		CORRUPT(sync_misaligned),
		CORRUPT(counters_outside),
		CORRUPT(counters_wrap),
		CORRUPT(ready_ring_outside),
		CORRUPT(ready_ring_misaligned),
		CORRUPT(return_entries_outside),
		CORRUPT(entries_misaligned),
		CORRUPT(ring_entries_not_pow2),
		CORRUPT(ring_entries_below_nslots),
		CORRUPT(ring_entries_huge),
		CORRUPT(classes_out_of_order),
		CORRUPT(classes_equal_size),
		CORRUPT(classes_overlap),
		CORRUPT(class_gap),
		CORRUPT(class_beyond_pool),
		CORRUPT(pool_larger_than_classes),
		CORRUPT(slot_not_page_multiple),
		CORRUPT(slot_size_zero),
		CORRUPT(nslots_zero),
		CORRUPT(class_size_overflow),
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_corrupt(cases[i].mutate, cases[i].what);
}

/* The sizes the client measured (fstat of the memfds) must match. */
static void test_validate_rejects_size_mismatch(void **state)
{
	struct hak_ctrl_hdr h;

	compute_default(&h);
	assert_int_equal(hak_layout_validate(&h, h.ctrl_size - HAK_PAGE_SIZE, h.pool_size),
			 -EBADMSG);
	assert_int_equal(hak_layout_validate(&h, h.ctrl_size, h.pool_size + HAK_PAGE_SIZE),
			 -EBADMSG);
	assert_int_equal(hak_layout_validate(&h, sizeof(h) - 1, h.pool_size), -EBADMSG);
	assert_int_equal(hak_layout_validate(&h, 0, 0), -EBADMSG);
}

/* The ring views a validated layout gives point where the layout says. */
static void test_layout_ring_view(void **state)
{
	static _Alignas(HAK_PAGE_SIZE) unsigned char ctrl[256 * 1024];
	struct hak_ctrl_hdr h;
	struct hak_ring r;

	compute_default(&h);
	assert_true(h.ctrl_size <= sizeof(ctrl));
	for (unsigned c = 0; c < NR_DEFAULT; c++) {
		hak_layout_ring(&h, ctrl, c, 0, &r);
		assert_ptr_equal(r.s, ctrl + h.cls[c].ready_off);
		assert_ptr_equal(r.e, ctrl + h.cls[c].ready_ents_off);
		assert_int_equal(hak_ring_entries(&r), h.cls[c].ring_entries);
		hak_layout_ring(&h, ctrl, c, 1, &r);
		assert_ptr_equal(r.s, ctrl + h.cls[c].ret_off);
		assert_ptr_equal(r.e, ctrl + h.cls[c].ret_ents_off);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_compute_default_classes),
		cmocka_unit_test(test_compute_edge_geometries),
		cmocka_unit_test(test_compute_rejects_bad_geometry),
		cmocka_unit_test(test_validate_accepts_computed),
		cmocka_unit_test(test_validate_rejects_corruption),
		cmocka_unit_test(test_validate_rejects_size_mismatch),
		cmocka_unit_test(test_layout_ring_view),
	};

	/* 0 pass, 1 fail: not the count of failures, which could read as 77. */
	return cmocka_run_group_tests(tests, NULL, NULL) ? 1 : 0;
}
