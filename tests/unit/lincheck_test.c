/*
 * lincheck_test.c - the linearizability checker on hand-made histories
 * that are, and are not, linearizable. A checker that accepts everything
 * would make the live linearizability test worthless, so the negative
 * cases matter most.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ds_lincheck.h"

#define P DS_LIN_PENDING

/* Shorthands: times are small integers. */
static ds_lin_op
get(int64_t c, int64_t r, bool found, uint64_t version, uint64_t value)
{
	ds_lin_op o = {c, r, DS_LIN_GET, false, 0, 0, found, version, value};
	return o;
}

static ds_lin_op
cas(int64_t c, int64_t r, uint64_t if_version, uint64_t val, bool ok,
    uint64_t version)
{
	ds_lin_op o = {c, r, DS_LIN_CAS, if_version == 0, if_version, val, ok,
	    version, 0};
	return o;
}

static ds_lin_op
del(int64_t c, int64_t r, uint64_t if_version, bool ok, uint64_t version)
{
	ds_lin_op o = {c, r, DS_LIN_DELETE, false, if_version, 0, ok, version, 0};
	return o;
}

static bool
check(const ds_lin_op *ops, size_t n)
{
	ds_lin_result r;

	assert_int_equal(ds_lin_check(ops, n, 0, &r), 0);
	assert_false(r.gave_up);
	return r.linearizable;
}

#define CHECK(...)                                                        \
	check((const ds_lin_op[]){__VA_ARGS__},                               \
	    sizeof((const ds_lin_op[]){__VA_ARGS__}) / sizeof(ds_lin_op))

static void
test_sequential_legal_history_is_linearizable(void **state)
{
	(void) state;
	assert_true(CHECK(get(0, 1, false, 0, 0), cas(2, 3, 0, 100, true, 1),
	    get(4, 5, true, 1, 100), cas(6, 7, 1, 200, true, 2),
	    cas(8, 9, 1, 300, false, 2), del(10, 11, 2, true, 3),
	    get(12, 13, false, 0, 0), cas(14, 15, 0, 400, true, 4),
	    get(16, 17, true, 4, 400)));
}

static void
test_stale_read_after_completed_write_is_not(void **state)
{
	(void) state;
	assert_false(CHECK(cas(0, 1, 0, 100, true, 1),
	    cas(2, 3, 1, 200, true, 2), get(4, 5, true, 1, 100)));
}

static void
test_read_overlapping_a_write_may_see_either_value(void **state)
{
	(void) state;
	assert_true(CHECK(cas(0, 1, 0, 100, true, 1),
	    cas(2, 10, 1, 200, true, 2), get(3, 4, true, 1, 100)));
	assert_true(CHECK(cas(0, 1, 0, 100, true, 1),
	    cas(2, 10, 1, 200, true, 2), get(3, 4, true, 2, 200)));
}

static void
test_new_then_old_value_in_real_time_order_is_not(void **state)
{
	(void) state;
	/* Both reads overlap the write, but the first sees the new value and
	 * the later one the old: no single point works for the write. */
	assert_false(CHECK(cas(0, 1, 0, 100, true, 1),
	    cas(2, 20, 1, 200, true, 2), get(3, 4, true, 2, 200),
	    get(5, 6, true, 1, 100)));
}

static void
test_two_successful_cas_on_one_version_is_not(void **state)
{
	(void) state;
	assert_false(CHECK(cas(0, 1, 0, 100, true, 1),
	    cas(2, 5, 1, 200, true, 2), cas(3, 6, 1, 300, true, 2)));
	assert_true(CHECK(cas(0, 1, 0, 100, true, 1),
	    cas(2, 5, 1, 200, true, 2), cas(3, 6, 1, 300, false, 2)));
}

static void
test_pending_write_may_or_may_not_take_effect(void **state)
{
	(void) state;
	assert_true(CHECK(cas(0, 1, 0, 100, true, 1), cas(2, P, 1, 200, false, 0),
	    get(5, 6, true, 2, 200)));
	assert_true(CHECK(cas(0, 1, 0, 100, true, 1), cas(2, P, 1, 200, false, 0),
	    get(5, 6, true, 1, 100)));
	/* ...but a value nobody wrote cannot appear. */
	assert_false(CHECK(cas(0, 1, 0, 100, true, 1),
	    cas(2, P, 1, 200, false, 0), get(5, 6, true, 2, 999)));
}

static void
test_read_after_delete_finding_the_record_is_not(void **state)
{
	(void) state;
	assert_false(CHECK(cas(0, 1, 0, 100, true, 1), del(2, 3, 1, true, 2),
	    get(4, 5, true, 1, 100)));
}

static void
test_wrong_versions_in_replies_are_caught(void **state)
{
	(void) state;
	/* A successful write that reports a skipped version. */
	assert_false(CHECK(cas(0, 1, 0, 100, true, 2)));
	/* A conflict that reports a version the record never had. */
	assert_false(CHECK(cas(0, 1, 0, 100, true, 1),
	    cas(2, 3, 7, 200, false, 5)));
	/* Re-create after delete continues the version. */
	assert_true(CHECK(cas(0, 1, 0, 100, true, 1), del(2, 3, 1, true, 2),
	    cas(4, 5, 0, 300, true, 3)));
	assert_false(CHECK(cas(0, 1, 0, 100, true, 1), del(2, 3, 1, true, 2),
	    cas(4, 5, 0, 300, true, 1)));
}

static void
test_many_concurrent_operations_are_checked_quickly(void **state)
{
	ds_lin_op ops[400];
	size_t n = 0;
	uint64_t v = 0;

	(void) state;
	/* 100 rounds of: a winning CAS, a losing CAS and two reads, all
	 * overlapping each other within the round. */
	for (int64_t r = 0; r < 100; r++) {
		int64_t t = r * 10;

		ops[n++] = cas(t, t + 5, v, 1000 + (uint64_t) r, true, v + 1);
		ops[n++] = cas(t + 1, t + 6, v, 5000 + (uint64_t) r, false, v + 1);
		ops[n++] = get(t + 2, t + 7, v > 0, v, v > 0 ? 1000 + (uint64_t) r - 1
		                                              : 0);
		ops[n++] = get(t + 3, t + 8, true, v + 1, 1000 + (uint64_t) r);
		v++;
	}
	assert_true(check(ops, n));
	/* Swap two winners' values: no longer explainable. */
	ops[0].write_value = 4242;
	assert_false(check(ops, n));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sequential_legal_history_is_linearizable),
	    cmocka_unit_test(test_stale_read_after_completed_write_is_not),
	    cmocka_unit_test(test_read_overlapping_a_write_may_see_either_value),
	    cmocka_unit_test(test_new_then_old_value_in_real_time_order_is_not),
	    cmocka_unit_test(test_two_successful_cas_on_one_version_is_not),
	    cmocka_unit_test(test_pending_write_may_or_may_not_take_effect),
	    cmocka_unit_test(test_read_after_delete_finding_the_record_is_not),
	    cmocka_unit_test(test_wrong_versions_in_replies_are_caught),
	    cmocka_unit_test(test_many_concurrent_operations_are_checked_quickly),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
