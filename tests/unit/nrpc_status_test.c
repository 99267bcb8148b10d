/*
 * nrpc_status_test.c - status codes, names, truncation, details.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ds_alloc.h"
#include "ds_text.h"
#include "nrpc_int.h"

static void
test_code_names_follow_grpc_numbering(void **state)
{
	(void) state;
	assert_string_equal(nrpc_code_name(NRPC_OK), "OK");
	assert_string_equal(nrpc_code_name(NRPC_INVALID_ARGUMENT),
	    "INVALID_ARGUMENT");
	assert_string_equal(nrpc_code_name(NRPC_DEADLINE_EXCEEDED),
	    "DEADLINE_EXCEEDED");
	assert_string_equal(nrpc_code_name(NRPC_UNIMPLEMENTED), "UNIMPLEMENTED");
	assert_string_equal(nrpc_code_name(NRPC_UNAUTHENTICATED),
	    "UNAUTHENTICATED");
	assert_int_equal(NRPC_ABORTED, 10);
	assert_int_equal(NRPC_UNAVAILABLE, 14);
}

static void
test_code_name_outside_table_is_unknown(void **state)
{
	(void) state;
	assert_string_equal(nrpc_code_name((nrpc_code) 17), "UNKNOWN");
	assert_string_equal(nrpc_code_name((nrpc_code) -1), "UNKNOWN");
}

static void
test_status_set_fills_every_field_and_drops_detail(void **state)
{
	nrpc_status st = {0};
	const uint8_t d[3] = {1, 2, 3};

	(void) state;
	assert_int_equal(nrpc_status_set_detail_bytes(&st, "x.Y", d, 3),
	    NRPC_OK);
	nrpc_status_set(&st, NRPC_ABORTED, "VERSION_CONFLICT", "key",
	    "key %s is at version %d", "k1", 7);
	assert_int_equal(st.code, NRPC_ABORTED);
	assert_string_equal(st.reason, "VERSION_CONFLICT");
	assert_string_equal(st.field, "key");
	assert_string_equal(st.message, "key k1 is at version 7");
	assert_null(st.detail);
	assert_int_equal(st.detail_len, 0);
	assert_string_equal(st.detail_type, "");
	nrpc_status_fini(&st);
}

static void
test_status_set_truncates_long_text_at_a_character_boundary(void **state)
{
	nrpc_status st = {0};
	char big[600];
	size_t n;

	(void) state;
	/* 'a' then a run of 3-byte characters: the cut lands mid-character
	 * for one of the two alignments tried. */
	for (int shift = 0; shift < 3; shift++) {
		size_t i = 0;

		for (int k = 0; k < shift; k++) {
			big[i++] = 'a';
		}
		while (i + 3 < sizeof(big)) {
			memcpy(big + i, "\xe2\x82\xac", 3); /* euro sign */
			i += 3;
		}
		big[i] = '\0';
		nrpc_status_set(&st, NRPC_INTERNAL, big, big, "%s", big);
		n = strlen(st.message);
		assert_true(n < NRPC_MESSAGE_MAX);
		assert_true(n >= NRPC_MESSAGE_MAX - 4);
		assert_true(ds_utf8_valid((const uint8_t *) st.message, n));
		assert_true(ds_utf8_valid((const uint8_t *) st.reason,
		    strlen(st.reason)));
		assert_true(strlen(st.reason) < NRPC_REASON_MAX);
		assert_true(ds_utf8_valid((const uint8_t *) st.field,
		    strlen(st.field)));
	}
	nrpc_status_fini(&st);
}

static void
test_status_fini_zeroes_and_twice_is_a_no_op(void **state)
{
	nrpc_status st = {0};
	Nrpc__V1__Metadata md = NRPC__V1__METADATA__INIT;

	(void) state;
	md.key = "k";
	md.value = "v";
	assert_int_equal(nrpc_status_set_detail(&st, &md.base), NRPC_OK);
	assert_string_equal(st.detail_type, "nrpc.v1.Metadata");
	assert_int_equal(st.detail_len, 6);
	nrpc_status_fini(&st);
	assert_int_equal(st.code, NRPC_OK);
	assert_null(st.detail);
	nrpc_status_fini(&st);
	nrpc_status_fini(NULL);
}

static void
test_status_set_detail_out_of_memory_leaves_no_detail(void **state)
{
	nrpc_status st = {0};
	const uint8_t d[2] = {9, 9};

	(void) state;
	assert_int_equal(nrpc_status_set_detail_bytes(&st, "a.B", d, 2),
	    NRPC_OK);
	ds_alloc_fail_after(0);
	assert_int_equal(nrpc_status_set_detail_bytes(&st, "a.B", d, 2),
	    NRPC_RESOURCE_EXHAUSTED);
	ds_alloc_fail_reset();
	assert_null(st.detail);
	assert_int_equal(st.detail_len, 0);
	nrpc_status_fini(&st);
}

static void
test_check_size_accepts_limit_and_rejects_limit_plus_one(void **state)
{
	nrpc_status st = {0};

	(void) state;
	assert_int_equal(nrpc_envelope_check_size(1024, 1024, &st), NRPC_OK);
	assert_int_equal(nrpc_envelope_check_size(1025, 1024, &st),
	    NRPC_RESOURCE_EXHAUSTED);
	assert_int_equal(st.code, NRPC_RESOURCE_EXHAUSTED);
	assert_string_equal(st.reason, "TOO_LARGE");
	assert_string_equal(st.message,
	    "message exceeds max_message_bytes (1024)");
	nrpc_status_fini(&st);
}

static void
test_status_from_wire_maps_unknown_codes_and_copies_detail(void **state)
{
	Nrpc__V1__Status ws = NRPC__V1__STATUS__INIT;
	nrpc_status st;
	uint8_t d[4] = {1, 2, 3, 4};

	(void) state;
	ws.code = 99;
	ws.reason = "WHATEVER";
	ws.message = "m";
	ws.field = "f";
	ws.detail_type = "a.B";
	ws.detail.data = d;
	ws.detail.len = 4;
	nrpc_status_from_wire(&st, &ws);
	assert_int_equal(st.code, NRPC_UNKNOWN);
	assert_string_equal(st.reason, "WHATEVER");
	assert_string_equal(st.field, "f");
	assert_string_equal(st.detail_type, "a.B");
	assert_int_equal(st.detail_len, 4);
	assert_memory_equal(st.detail, d, 4);
	nrpc_status_fini(&st);
	nrpc_status_from_wire(&st, NULL);
	assert_int_equal(st.code, NRPC_OK);
}

static void
test_printable_replaces_control_and_high_bytes(void **state)
{
	char out[8];

	(void) state;
	nrpc_status_printable(out, sizeof(out), "a\nb\xff" "cdefgh", 9);
	assert_string_equal(out, "a?b?cde");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_code_names_follow_grpc_numbering),
	    cmocka_unit_test(test_code_name_outside_table_is_unknown),
	    cmocka_unit_test(test_status_set_fills_every_field_and_drops_detail),
	    cmocka_unit_test(
		test_status_set_truncates_long_text_at_a_character_boundary),
	    cmocka_unit_test(test_status_fini_zeroes_and_twice_is_a_no_op),
	    cmocka_unit_test(
		test_status_set_detail_out_of_memory_leaves_no_detail),
	    cmocka_unit_test(
		test_check_size_accepts_limit_and_rejects_limit_plus_one),
	    cmocka_unit_test(
		test_status_from_wire_maps_unknown_codes_and_copies_detail),
	    cmocka_unit_test(test_printable_replaces_control_and_high_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
