/*
 * store_lease_test.c - the pure lease decisions of store_lease.c, with
 * time as a plain number: no database, no clock, no sleeping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "store_int.h"

static store_token
slt_token(uint8_t fill)
{
	store_token t;

	memset(t.b, fill, sizeof(t.b));
	return t;
}

/* slt_lease: held with token 0xaa until 1000. */
static store_lease
slt_lease(void)
{
	store_lease l;

	memset(&l, 0, sizeof(l));
	l.held = true;
	l.expires_at_ms = 1000;
	l.fencing_token = 7;
	l.token = slt_token(0xaa);
	return l;
}

static void
test_lease_is_live_strictly_before_expiry(void **state)
{
	store_lease l = slt_lease();
	store_lease none;

	(void) state;
	memset(&none, 0, sizeof(none));
	assert_true(store_lease_live(&l, 999));
	assert_false(store_lease_live(&l, 1000));
	assert_false(store_lease_live(&l, 5000));
	assert_false(store_lease_live(&none, 0));
}

static void
test_write_rules_follow_the_lease(void **state)
{
	store_lease l = slt_lease();
	store_lease none;
	store_token mine = slt_token(0xaa);
	store_token other = slt_token(0xab);

	(void) state;
	memset(&none, 0, sizeof(none));
	/* Nothing held. */
	assert_int_equal(store_lease_check_write(&none, 0, false, NULL),
	    STORE_OK);
	assert_int_equal(store_lease_check_write(&none, 0, true, &mine),
	    STORE_ENOT_LOCKED);
	/* Live. */
	assert_int_equal(store_lease_check_write(&l, 999, false, NULL),
	    STORE_ELOCKED);
	assert_int_equal(store_lease_check_write(&l, 999, true, &other),
	    STORE_ELOCKED);
	assert_int_equal(store_lease_check_write(&l, 999, true, &mine),
	    STORE_OK);
	/* Expired: no lock at all, but its holder is told so. */
	assert_int_equal(store_lease_check_write(&l, 1000, false, NULL),
	    STORE_OK);
	assert_int_equal(store_lease_check_write(&l, 1000, true, &mine),
	    STORE_ELOCK_EXPIRED);
	assert_int_equal(store_lease_check_write(&l, 1000, true, &other),
	    STORE_ENOT_LOCKED);
}

static void
test_lock_acquires_renews_or_refuses(void **state)
{
	store_lease l = slt_lease();
	store_lease none;
	store_token mine = slt_token(0xaa);
	store_token other = slt_token(0x01);
	store_lease_action a = 0;

	(void) state;
	memset(&none, 0, sizeof(none));
	assert_int_equal(store_lease_check_lock(&none, 0, false, NULL, &a),
	    STORE_OK);
	assert_int_equal(a, STORE_LEASE_ACQUIRE);
	assert_int_equal(store_lease_check_lock(&l, 10, false, NULL, &a),
	    STORE_ELOCKED);
	assert_int_equal(store_lease_check_lock(&l, 10, true, &other, &a),
	    STORE_ELOCKED);
	assert_int_equal(store_lease_check_lock(&l, 10, true, &mine, &a),
	    STORE_OK);
	assert_int_equal(a, STORE_LEASE_RENEW);
	/* After expiry: a fresh Lock acquires; renewing is too late. */
	assert_int_equal(store_lease_check_lock(&l, 1000, false, NULL, &a),
	    STORE_OK);
	assert_int_equal(a, STORE_LEASE_ACQUIRE);
	assert_int_equal(store_lease_check_lock(&l, 1000, true, &mine, &a),
	    STORE_ELOCK_EXPIRED);
	assert_int_equal(store_lease_check_lock(&l, 1000, true, &other, &a),
	    STORE_ENOT_LOCKED);
	assert_int_equal(store_lease_check_lock(&none, 0, true, &other, &a),
	    STORE_ENOT_LOCKED);
}

static void
test_unlock_needs_the_live_token(void **state)
{
	store_lease l = slt_lease();
	store_token mine = slt_token(0xaa);
	store_token other = slt_token(0xa0);

	(void) state;
	assert_int_equal(store_lease_check_unlock(&l, 999, &mine), STORE_OK);
	assert_int_equal(store_lease_check_unlock(&l, 999, &other),
	    STORE_ETOKEN_MISMATCH);
	assert_int_equal(store_lease_check_unlock(&l, 1000, &mine),
	    STORE_ENOT_LOCKED);
}

static void
test_a_token_differing_in_the_last_byte_is_another_token(void **state)
{
	store_lease l = slt_lease();
	store_token t = slt_token(0xaa);

	(void) state;
	t.b[STORE_TOKEN_BYTES - 1] ^= 1;
	assert_int_equal(store_lease_check_write(&l, 0, true, &t),
	    STORE_ELOCKED);
	assert_int_equal(store_lease_check_unlock(&l, 0, &t),
	    STORE_ETOKEN_MISMATCH);
}

static void
test_expiry_saturates_instead_of_overflowing(void **state)
{
	(void) state;
	assert_int_equal(store_lease_expiry(1000, 30000), 31000);
	assert_true(store_lease_expiry(INT64_MAX - 5, 30000) == INT64_MAX);
}

static void
test_lease_errors_name_the_holder(void **state)
{
	store_lease l = slt_lease();
	store_error err;

	(void) state;
	assert_int_equal(store_lease_error(&err, STORE_ELOCKED, "ann", &l),
	    STORE_ELOCKED);
	assert_string_equal(err.field, "lock_token");
	assert_non_null(strstr(err.message, "ann"));
	assert_non_null(strstr(err.message, "1000"));
	assert_int_equal(store_lease_error(NULL, STORE_ENOT_LOCKED, NULL, &l),
	    STORE_ENOT_LOCKED);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lease_is_live_strictly_before_expiry),
	    cmocka_unit_test(test_write_rules_follow_the_lease),
	    cmocka_unit_test(test_lock_acquires_renews_or_refuses),
	    cmocka_unit_test(test_unlock_needs_the_live_token),
	    cmocka_unit_test(
	        test_a_token_differing_in_the_last_byte_is_another_token),
	    cmocka_unit_test(test_expiry_saturates_instead_of_overflowing),
	    cmocka_unit_test(test_lease_errors_name_the_holder),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
