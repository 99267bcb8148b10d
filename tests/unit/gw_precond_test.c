/*
 * gw_precond_test.c - entity-tag lists, If-Match / If-None-Match ->
 * precondition, RPC status -> HTTP status, Retry-After.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "gw_int.h"

static nrpc_status st;

static int
setup(void **state)
{
	(void) state;
	memset(&st, 0, sizeof(st));
	return 0;
}

static int
teardown(void **state)
{
	(void) state;
	nrpc_status_fini(&st);
	return 0;
}

static void
test_etags_single_strong_weak_and_star(void **state)
{
	gw_etags l;

	(void) state;
	assert_int_equal(gw_etags_parse("\"3\"", "If-Match", &l, &st), 0);
	assert_int_equal(l.n, 1);
	assert_false(l.any);
	assert_false(l.tags[0].weak);
	assert_true(l.tags[0].numeric);
	assert_int_equal(l.tags[0].version, 3);

	assert_int_equal(gw_etags_parse("W/\"3\"", "If-Match", &l, &st), 0);
	assert_true(l.tags[0].weak);

	assert_int_equal(gw_etags_parse(" * ", "If-Match", &l, &st), 0);
	assert_true(l.any);
	assert_int_equal(l.n, 0);
}

static void
test_etags_lists_with_empty_elements_and_foreign_tags(void **state)
{
	gw_etags l;

	(void) state;
	assert_int_equal(gw_etags_parse(" \"1\" ,, W/\"2\",\"abc\",\"03\" ,",
	                     "If-Match", &l, &st),
	    0);
	assert_int_equal(l.n, 4);
	assert_true(l.tags[0].numeric);
	assert_true(l.tags[1].weak);
	assert_false(l.tags[2].numeric); /* somebody else's tag */
	assert_false(l.tags[3].numeric); /* "03" is not our "3" */
	assert_true(gw_etags_match_strong(&l, 1));
	assert_false(gw_etags_match_strong(&l, 2)); /* weak never matches */
	assert_false(gw_etags_match_strong(&l, 3));
	assert_true(gw_etags_match_weak(&l, 2));
	assert_false(gw_etags_match_weak(&l, 3));
}

static void
test_etags_refuses_malformed_values(void **state)
{
	static const char *const bad[] = {
	    "3",           /* unquoted */
	    "\"3",         /* unterminated */
	    "\"3\" \"4\"", /* no comma */
	    "*, \"3\"",    /* star in a list */
	    "\"3\", *",
	    "w/\"3\"", /* W is case-sensitive */
	    "\"a b\"", /* space inside */
	    "",
	    " , ",
	};
	gw_etags l;

	(void) state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(
		    gw_etags_parse(bad[i], "If-Match", &l, &st), 400);
		assert_string_equal(st.field, "If-Match");
	}
}

static void
test_etags_count_at_limit_and_over(void **state)
{
	char v[GW_MAX_ETAGS * 8 + 16] = "";
	gw_etags l;

	(void) state;
	for (int i = 0; i < GW_MAX_ETAGS; i++) {
		char one[16];

		(void) snprintf(
		    one, sizeof(one), "%s\"%d\"", i ? "," : "", i + 1);
		strcat(v, one);
	}
	assert_int_equal(gw_etags_parse(v, "If-Match", &l, &st), 0);
	assert_int_equal(l.n, GW_MAX_ETAGS);
	strcat(v, ",\"99\"");
	assert_int_equal(gw_etags_parse(v, "If-Match", &l, &st), 400);
	assert_non_null(strstr(st.message, "max_etags"));
}

static void
test_etags_header_length_at_limit_and_over(void **state)
{
	char v[GW_MAX_PRECOND_HEADER_BYTES + 2];
	gw_etags l;

	(void) state;
	memset(v, ' ', sizeof(v));
	v[0] = '"';
	v[1] = '7';
	v[2] = '"';
	v[GW_MAX_PRECOND_HEADER_BYTES] = '\0';
	assert_int_equal(gw_etags_parse(v, "If-Match", &l, &st), 0);
	v[GW_MAX_PRECOND_HEADER_BYTES] = ' ';
	v[GW_MAX_PRECOND_HEADER_BYTES + 1] = '\0';
	assert_int_equal(gw_etags_parse(v, "If-Match", &l, &st), 400);
	assert_string_equal(st.reason, "TOO_LARGE");
}

static void
test_precond_maps_headers_to_kinds(void **state)
{
	gw_precond pc;

	(void) state;
	assert_int_equal(gw_precond_parse(NULL, NULL, &pc, &st), 0);
	assert_int_equal(pc.kind, GW_PRECOND_NONE);
	assert_int_equal(gw_precond_parse("\"5\"", NULL, &pc, &st), 0);
	assert_int_equal(pc.kind, GW_PRECOND_IF_VERSION);
	assert_int_equal(pc.version, 5);
	assert_int_equal(gw_precond_parse("*", NULL, &pc, &st), 0);
	assert_int_equal(pc.kind, GW_PRECOND_IF_EXISTS);
	assert_int_equal(gw_precond_parse(NULL, "*", &pc, &st), 0);
	assert_int_equal(pc.kind, GW_PRECOND_IF_ABSENT);
	assert_int_equal(gw_precond_parse("\"5\", \"6\"", NULL, &pc, &st), 0);
	assert_int_equal(pc.kind, GW_PRECOND_IF_MATCH_LIST);
	/* A weak tag alone can never match: it goes the list way, which
	 * reads the current record to put it into the 412. */
	assert_int_equal(gw_precond_parse("W/\"5\"", NULL, &pc, &st), 0);
	assert_int_equal(pc.kind, GW_PRECOND_IF_MATCH_LIST);
	assert_int_equal(gw_precond_parse("\"x\"", NULL, &pc, &st), 0);
	assert_int_equal(pc.kind, GW_PRECOND_IF_MATCH_LIST);
}

static void
test_precond_refuses_both_headers_and_if_none_match_tags(void **state)
{
	gw_precond pc;

	(void) state;
	assert_int_equal(gw_precond_parse("\"1\"", "*", &pc, &st), 400);
	assert_int_equal(gw_precond_parse(NULL, "\"1\"", &pc, &st), 400);
	assert_string_equal(st.field, "If-None-Match");
	assert_int_equal(gw_precond_parse("\"1", NULL, &pc, &st), 400);
}

static int
status_of(nrpc_code code, const char *reason, const char *field, bool precond)
{
	nrpc_status s;
	int http;

	memset(&s, 0, sizeof(s));
	nrpc_status_set(&s, code, reason, field, "x");
	http = gw_http_status(&s, precond);
	nrpc_status_fini(&s);
	return http;
}

static void
test_status_mapping_by_reason(void **state)
{
	(void) state;
	assert_int_equal(
	    status_of(NRPC_ABORTED, "VERSION_CONFLICT", NULL, true), 412);
	assert_int_equal(
	    status_of(NRPC_ABORTED, "VERSION_CONFLICT", NULL, false), 409);
	assert_int_equal(
	    status_of(NRPC_FAILED_PRECONDITION, "LOCKED", NULL, true), 423);
	assert_int_equal(status_of(NRPC_FAILED_PRECONDITION,
	                     "PRECONDITION_REQUIRED", NULL, false),
	    428);
	assert_int_equal(
	    status_of(NRPC_NOT_FOUND, "NOT_FOUND", NULL, false), 404);
	assert_int_equal(
	    status_of(NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT", "key", false),
	    400);
	assert_int_equal(
	    status_of(NRPC_INVALID_ARGUMENT, "TOO_LARGE", "value", false),
	    413);
	assert_int_equal(
	    status_of(NRPC_RESOURCE_EXHAUSTED, "TOO_LARGE", NULL, false), 413);
	assert_int_equal(
	    status_of(NRPC_INVALID_ARGUMENT, "TOO_LARGE", "page_size", false),
	    400);
	assert_int_equal(status_of(NRPC_PERMISSION_DENIED,
	                     "LOCK_TOKEN_MISMATCH", NULL, false),
	    403);
	assert_int_equal(
	    status_of(NRPC_OUT_OF_RANGE, "VERSION_COMPACTED", NULL, false),
	    410);
	assert_int_equal(
	    status_of(NRPC_FAILED_PRECONDITION, "NOT_LOCKED", NULL, false),
	    409);
	assert_int_equal(
	    status_of(NRPC_FAILED_PRECONDITION, "LOCK_EXPIRED", NULL, true),
	    409);
	assert_int_equal(
	    status_of(NRPC_INVALID_ARGUMENT, "REQUEST_ID_REUSED", NULL, false),
	    422);
}

static void
test_status_mapping_by_code_is_grpc_gateways(void **state)
{
	static const struct {
		nrpc_code code;
		int http;
	} table[] = {
	    {NRPC_OK, 200},
	    {NRPC_CANCELLED, 499},
	    {NRPC_UNKNOWN, 500},
	    {NRPC_INVALID_ARGUMENT, 400},
	    {NRPC_DEADLINE_EXCEEDED, 504},
	    {NRPC_NOT_FOUND, 404},
	    {NRPC_ALREADY_EXISTS, 409},
	    {NRPC_PERMISSION_DENIED, 403},
	    {NRPC_RESOURCE_EXHAUSTED, 429},
	    {NRPC_FAILED_PRECONDITION, 400},
	    {NRPC_ABORTED, 409},
	    {NRPC_OUT_OF_RANGE, 400},
	    {NRPC_UNIMPLEMENTED, 501},
	    {NRPC_INTERNAL, 500},
	    {NRPC_UNAVAILABLE, 503},
	    {NRPC_DATA_LOSS, 500},
	    {NRPC_UNAUTHENTICATED, 401},
	};

	(void) state;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		assert_int_equal(
		    status_of(table[i].code, "SOMETHING", NULL, true),
		    table[i].http);
	}
}

static void
test_retry_after_rounds_up_and_is_at_least_one(void **state)
{
	(void) state;
	assert_int_equal(gw_retry_after_s(10000, 0), 10);
	assert_int_equal(gw_retry_after_s(10001, 0), 11);
	assert_int_equal(gw_retry_after_s(1, 0), 1);
	assert_int_equal(gw_retry_after_s(0, 0), 1);
	assert_int_equal(gw_retry_after_s(5, 100), 1);
}

static void
test_reason_phrases(void **state)
{
	(void) state;
	assert_string_equal(gw_http_reason(412), "Precondition Failed");
	assert_string_equal(gw_http_reason(423), "Locked");
	assert_string_equal(gw_http_reason(428), "Precondition Required");
	assert_string_equal(gw_http_reason(299), "Unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_etags_single_strong_weak_and_star),
	    cmocka_unit_test(
	        test_etags_lists_with_empty_elements_and_foreign_tags),
	    cmocka_unit_test(test_etags_refuses_malformed_values),
	    cmocka_unit_test(test_etags_count_at_limit_and_over),
	    cmocka_unit_test(test_etags_header_length_at_limit_and_over),
	    cmocka_unit_test(test_precond_maps_headers_to_kinds),
	    cmocka_unit_test(
	        test_precond_refuses_both_headers_and_if_none_match_tags),
	    cmocka_unit_test(test_status_mapping_by_reason),
	    cmocka_unit_test(test_status_mapping_by_code_is_grpc_gateways),
	    cmocka_unit_test(test_retry_after_rounds_up_and_is_at_least_one),
	    cmocka_unit_test(test_reason_phrases),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
