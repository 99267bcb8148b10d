/*
 * gw_routes_test.c - request-target routing, percent-encoding, query
 * strings and body limits of the gateway, without sockets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ds_alloc.h"
#include "gw_int.h"

static gw_route
route_of(const char *uri, gw_target *t)
{
	nrpc_status st;

	memset(&st, 0, sizeof(st));
	assert_int_equal(gw_target_parse(uri, t, &st), 0);
	nrpc_status_fini(&st);
	return t->route;
}

static void
assert_key(const gw_target *t, const char *raw)
{
	assert_int_equal(t->key_len, strlen(raw));
	assert_memory_equal(t->key, raw, t->key_len);
}

static void
test_target_routes_records_list_rpc_and_static(void **state)
{
	gw_target t;

	(void) state;
	assert_int_equal(route_of("/v1/records", &t), GW_ROUTE_LIST);
	assert_int_equal(route_of("/v1/records?prefix=a", &t), GW_ROUTE_LIST);
	assert_int_equal(t.query_len, strlen("prefix=a"));
	assert_int_equal(
	    route_of("/v1/records/greeting", &t), GW_ROUTE_RECORD);
	assert_key(&t, "greeting");
	assert_int_equal(
	    route_of("/rpc/datasync.v1.DataSync/Get", &t), GW_ROUTE_RPC);
	assert_int_equal(t.rpc_len, strlen("/datasync.v1.DataSync/Get"));
	assert_memory_equal(t.rpc, "/datasync.v1.DataSync/Get", t.rpc_len);
	assert_int_equal(route_of("/healthz", &t), GW_ROUTE_HEALTHZ);
	assert_int_equal(route_of("/metrics", &t), GW_ROUTE_METRICS);
	assert_int_equal(route_of("/", &t), GW_ROUTE_STATIC);
	assert_int_equal(route_of("/datasync.js", &t), GW_ROUTE_STATIC);
	assert_int_equal(route_of("/v1/recordsx", &t), GW_ROUTE_OTHER);
	assert_int_equal(route_of("/v1/other", &t), GW_ROUTE_OTHER);
	assert_int_equal(route_of("/healthzz", &t), GW_ROUTE_STATIC);
}

static void
test_target_lock_suffix_is_matched_before_decoding(void **state)
{
	gw_target t;

	(void) state;
	assert_int_equal(route_of("/v1/records/a/b/lock", &t), GW_ROUTE_LOCK);
	assert_key(&t, "a/b");
	assert_int_equal(
	    route_of("/v1/records/doc/unlock", &t), GW_ROUTE_UNLOCK);
	assert_key(&t, "doc");
	/* The slash of a key ending in "/lock" arrives encoded. */
	assert_int_equal(
	    route_of("/v1/records/doc%2Flock", &t), GW_ROUTE_RECORD);
	assert_key(&t, "doc%2Flock");
	/* A key named "lock" is a record, not a lock of "". */
	assert_int_equal(route_of("/v1/records/lock", &t), GW_ROUTE_RECORD);
	assert_key(&t, "lock");
	assert_int_equal(
	    route_of("/v1/records/x/lock?y=1", &t), GW_ROUTE_LOCK);
	assert_key(&t, "x");
}

static void
test_target_refuses_bytes_no_uri_may_hold(void **state)
{
	static const char *const bad[] = {
	    "/v1/records/a b",
	    "/v1/records/a\\b",
	    "/x#frag",
	    "/a\tb",
	    "/a\x7f",
	    "relative",
	    "",
	};
	gw_target t;
	nrpc_status st;

	(void) state;
	memset(&st, 0, sizeof(st));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(gw_target_parse(bad[i], &t, &st), 400);
		assert_string_equal(st.reason, "INVALID_PATH");
	}
	assert_int_equal(gw_target_parse(NULL, &t, &st), 400);
	nrpc_status_fini(&st);
}

static void
test_target_uri_at_limit_and_over(void **state)
{
	char *uri = malloc(GW_MAX_URI_BYTES + 2);
	gw_target t;
	nrpc_status st;

	(void) state;
	memset(&st, 0, sizeof(st));
	memset(uri, 'a', GW_MAX_URI_BYTES + 1);
	uri[0] = '/';
	uri[GW_MAX_URI_BYTES] = '\0';
	assert_int_equal(gw_target_parse(uri, &t, &st), 0);
	uri[GW_MAX_URI_BYTES] = 'a';
	uri[GW_MAX_URI_BYTES + 1] = '\0';
	assert_int_equal(gw_target_parse(uri, &t, &st), 414);
	assert_string_equal(st.reason, "TOO_LARGE");
	assert_non_null(strstr(st.message, "max_uri_bytes"));
	nrpc_status_fini(&st);
	free(uri);
}

static void
decode_ok(const char *in, bool plus, const char *want, size_t want_len)
{
	char out[256];
	size_t n = 0;

	assert_int_equal(
	    gw_pct_decode(in, strlen(in), plus, out, &n), GW_PCT_OK);
	assert_int_equal(n, want_len);
	assert_memory_equal(out, want, n);
}

static void
test_pct_decode_valid_input(void **state)
{
	(void) state;
	decode_ok("a%2Fb%2fc", false, "a/b/c", 5);
	decode_ok("a+b", false, "a+b", 3);
	decode_ok("a+b", true, "a b", 3);
	decode_ok("%C3%A9t%C3%A9", false, "\xc3\xa9t\xc3\xa9", 5);
	decode_ok("", false, "", 0);
	decode_ok("%25", false, "%", 1);
}

static void
test_pct_decode_refuses_bad_escapes_nul_and_bad_utf8(void **state)
{
	static const struct {
		const char *in;
		gw_pct_err want;
	} cases[] = {
	    {"%", GW_PCT_EESCAPE},
	    {"%4", GW_PCT_EESCAPE},
	    {"%G1", GW_PCT_EESCAPE},
	    {"a%zz", GW_PCT_EESCAPE},
	    {"%00", GW_PCT_ENUL},
	    {"a%00b", GW_PCT_ENUL},
	    {"%FF", GW_PCT_EUTF8},
	    {"%C0%AF", GW_PCT_EUTF8},
	    {"%ED%A0%80", GW_PCT_EUTF8},
	    {"\xc3", GW_PCT_EUTF8},
	};
	char out[64];
	size_t n;

	(void) state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(gw_pct_decode(cases[i].in,
		                     strlen(cases[i].in), false, out, &n),
		    cases[i].want);
	}
}

static void
test_decode_dup_names_the_field(void **state)
{
	nrpc_status st;
	char *out = NULL;

	(void) state;
	memset(&st, 0, sizeof(st));
	assert_int_equal(
	    gw_decode_dup("a%zz", 4, false, "key", &out, NULL, &st), 400);
	assert_null(out);
	assert_string_equal(st.field, "key");
	assert_string_equal(st.reason, "INVALID_ENCODING");
	assert_int_equal(
	    gw_decode_dup("a%2Fb", 5, false, "key", &out, NULL, &st), 0);
	assert_string_equal(out, "a/b");
	ds_free(out);
	nrpc_status_fini(&st);
}

static void
test_pct_encode_escapes_controls_non_ascii_and_percent(void **state)
{
	ds_buf b;
	const char in[] = "J\xc3\xbcrgen 100%\r\nX";

	(void) state;
	ds_buf_init(&b, 1024);
	assert_int_equal(gw_pct_encode(&b, in, strlen(in)), DS_OK);
	assert_string_equal((char *) b.ptr, "J%C3%BCrgen 100%25%0D%0AX");
	ds_buf_fini(&b);
	ds_buf_init(&b, 1024);
	assert_int_equal(gw_pct_encode(&b, "alice", 5), DS_OK);
	assert_string_equal((char *) b.ptr, "alice");
	ds_buf_fini(&b);
}

static void
test_query_get_decodes_and_refuses_duplicates(void **state)
{
	const char *q = "prefix=a+b%2F&pageSize=10&&flag&page_token=t";
	gw_query gq;
	nrpc_status st;
	char *v;

	(void) state;
	memset(&st, 0, sizeof(st));
	assert_int_equal(gw_query_parse(q, strlen(q), &gq, &st), 0);
	assert_int_equal(gq.n, 4);
	assert_int_equal(gw_query_get(&gq, "prefix", NULL, &v, &st), 0);
	assert_string_equal(v, "a b/");
	ds_free(v);
	assert_int_equal(
	    gw_query_get(&gq, "pageToken", "page_token", &v, &st), 0);
	assert_string_equal(v, "t");
	ds_free(v);
	assert_int_equal(gw_query_get(&gq, "flag", NULL, &v, &st), 0);
	assert_string_equal(v, "");
	ds_free(v);
	assert_int_equal(gw_query_get(&gq, "missing", NULL, &v, &st), 0);
	assert_null(v);

	q = "version=1&version=2";
	assert_int_equal(gw_query_parse(q, strlen(q), &gq, &st), 0);
	assert_int_equal(gw_query_get(&gq, "version", NULL, &v, &st), 400);
	assert_string_equal(st.field, "version");
	nrpc_status_fini(&st);
}

static void
test_query_params_at_limit_and_over(void **state)
{
	char q[GW_MAX_QUERY_PARAMS * 4 + 8] = "";
	gw_query gq;
	nrpc_status st;

	(void) state;
	memset(&st, 0, sizeof(st));
	for (int i = 0; i < GW_MAX_QUERY_PARAMS; i++) {
		strcat(q, i == 0 ? "a=1" : "&a=1");
	}
	assert_int_equal(gw_query_parse(q, strlen(q), &gq, &st), 0);
	assert_int_equal(gq.n, GW_MAX_QUERY_PARAMS);
	strcat(q, "&b");
	assert_int_equal(gw_query_parse(q, strlen(q), &gq, &st), 400);
	assert_non_null(strstr(st.message, "max_query_params"));
	nrpc_status_fini(&st);
}

static void
test_parse_u64_bounds(void **state)
{
	uint64_t v;

	(void) state;
	assert_true(gw_parse_u64("0", 1, &v));
	assert_int_equal(v, 0);
	assert_true(gw_parse_u64("18446744073709551615", 20, &v));
	assert_true(v == UINT64_MAX);
	assert_false(gw_parse_u64("18446744073709551616", 20, &v));
	assert_false(gw_parse_u64("", 0, &v));
	assert_false(gw_parse_u64("-1", 2, &v));
	assert_false(gw_parse_u64("1 ", 2, &v));
}

static void
test_body_check_limit_and_limit_plus_one(void **state)
{
	nrpc_status st;
	size_t len = 99;

	(void) state;
	memset(&st, 0, sizeof(st));
	assert_int_equal(
	    gw_body_check(NULL, NULL, 10, "max_value_bytes", &len, &st), 0);
	assert_int_equal(len, 0);
	assert_int_equal(
	    gw_body_check("10", NULL, 10, "max_value_bytes", &len, &st), 0);
	assert_int_equal(len, 10);
	assert_int_equal(
	    gw_body_check("11", NULL, 10, "max_value_bytes", &len, &st), 413);
	assert_string_equal(st.reason, "TOO_LARGE");
	assert_non_null(strstr(st.message, "max_value_bytes (10)"));
	assert_int_equal(gw_body_check("1x", NULL, 10, "m", &len, &st), 400);
	assert_int_equal(gw_body_check("5, 5", NULL, 10, "m", &len, &st), 400);
	assert_int_equal(
	    gw_body_check(NULL, "chunked", 10, "m", &len, &st), 411);
	assert_string_equal(st.reason, "LENGTH_REQUIRED");
	nrpc_status_fini(&st);
}

static void
test_methods_and_allow_lists(void **state)
{
	(void) state;
	assert_int_equal(gw_method_parse("GET"), GW_M_GET);
	assert_int_equal(gw_method_parse("get"), GW_M_OTHER);
	assert_int_equal(gw_method_parse("PATCH"), GW_M_OTHER);
	assert_int_equal(gw_method_parse(NULL), GW_M_OTHER);
	assert_true(gw_route_allows(GW_ROUTE_RECORD, GW_M_PUT));
	assert_false(gw_route_allows(GW_ROUTE_RECORD, GW_M_POST));
	assert_false(gw_route_allows(GW_ROUTE_RECORD, GW_M_OTHER));
	assert_true(gw_route_allows(GW_ROUTE_LOCK, GW_M_DELETE));
	assert_false(gw_route_allows(GW_ROUTE_UNLOCK, GW_M_DELETE));
	assert_string_equal(gw_route_allow(GW_ROUTE_RECORD),
	    "GET, HEAD, PUT, DELETE, OPTIONS");
	assert_string_equal(gw_route_allow(GW_ROUTE_RPC), "POST, OPTIONS");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_target_routes_records_list_rpc_and_static),
	    cmocka_unit_test(
	        test_target_lock_suffix_is_matched_before_decoding),
	    cmocka_unit_test(test_target_refuses_bytes_no_uri_may_hold),
	    cmocka_unit_test(test_target_uri_at_limit_and_over),
	    cmocka_unit_test(test_pct_decode_valid_input),
	    cmocka_unit_test(
	        test_pct_decode_refuses_bad_escapes_nul_and_bad_utf8),
	    cmocka_unit_test(test_decode_dup_names_the_field),
	    cmocka_unit_test(
	        test_pct_encode_escapes_controls_non_ascii_and_percent),
	    cmocka_unit_test(test_query_get_decodes_and_refuses_duplicates),
	    cmocka_unit_test(test_query_params_at_limit_and_over),
	    cmocka_unit_test(test_parse_u64_bounds),
	    cmocka_unit_test(test_body_check_limit_and_limit_plus_one),
	    cmocka_unit_test(test_methods_and_allow_lists),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
