/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Tests of the adapter's per-slot piece table (adapters/jemalloc/pieces.c),
 * linked in directly: a slot goes back when its last piece does and not
 * before, an unknown slot or a put of more than is held is refused, slots
 * whose entries collide (2 GiB apart) are kept apart, and the table costs
 * pages in proportion to the pool in use: adjacent slots share a page of
 * it, so 2,048 slots of 4 KiB touch a few pages, not one page each.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "adapter.h"

#define SLOT 4096u
#define GIB (1ull << 30)

static const void *slot_at(uintptr_t a)
{
	return (const void *)a;
}

static void test_last_piece_returns(void **state)
{
	const void *s = slot_at(0x7f0000100000ull);

	assert_true(hj_pieces_set(s, 3 * SLOT));
	assert_int_equal(hj_pieces_put(s, SLOT), 0);
	assert_int_equal(hj_pieces_put(s, SLOT), 0);
	assert_int_equal(hj_pieces_put(s, SLOT), 1);
	/* Handed out again later: counted afresh. */
	assert_true(hj_pieces_set(s, SLOT));
	assert_int_equal(hj_pieces_put(s, SLOT), 1);
}

static void test_refusals(void **state)
{
	const void *s = slot_at(0x7f0000200000ull);

	assert_int_equal(hj_pieces_put(slot_at(0x7f0000300000ull), SLOT), -ENOENT);
	assert_true(hj_pieces_set(s, SLOT));
	assert_int_equal(hj_pieces_put(s, 2 * SLOT), -ENOENT);
	assert_int_equal(hj_pieces_put(s, SLOT), 1);
}

/* Entries are the slot's page number modulo the table: slots 2 GiB apart
 * land on one entry and must still be told apart. */
static void test_colliding_slots(void **state)
{
	uintptr_t base = 0x7e0000400000ull;

	for (unsigned i = 0; i < 8; i++)
		assert_true(hj_pieces_set(slot_at(base + i * 2 * GIB), (i + 1) * SLOT));
	for (unsigned i = 0; i < 8; i++) {
		assert_int_equal(hj_pieces_put(slot_at(base + i * 2 * GIB), i * SLOT), 0);
		assert_int_equal(hj_pieces_put(slot_at(base + i * 2 * GIB), SLOT), 1);
	}
}

static long minor_faults(void)
{
	struct rusage ru;

	assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
	return ru.ru_minflt;
}

/* 2,048 adjacent 4 KiB slots (8 MiB of pool) fill 32 KiB of entries: at
 * most 9 pages.  A hash that scatters them faults about one page per slot. */
static void test_table_pages_follow_pool(void **state)
{
	uintptr_t base = 0x7d0000000000ull;
	long before;

	/* The table is mapped on first use; make that happen first. */
	assert_true(hj_pieces_set(slot_at(base - SLOT), SLOT));
	before = minor_faults();
	for (unsigned i = 0; i < 2048; i++)
		assert_true(hj_pieces_set(slot_at(base + (uintptr_t)i * SLOT), SLOT));
	assert_in_range(minor_faults() - before, 0, 16);
	for (unsigned i = 0; i < 2048; i++)
		assert_int_equal(hj_pieces_put(slot_at(base + (uintptr_t)i * SLOT), SLOT), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_last_piece_returns),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_colliding_slots),
		cmocka_unit_test(test_table_pages_follow_pool),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
