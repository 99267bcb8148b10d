/*
 * gw_cors_test.c - CORS decisions: which origins get headers, preflights
 * allowed and denied, Vary.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gw_int.h"

static const char *const origins[] = {
    "https://app.example", "http://localhost:3000"};

static void
core_with(gw_core *core, const char *const *o, size_t n)
{
	gw_core_init(core, NULL, 0, o, n, 0, NULL, NULL);
}

static void
test_origin_syntax(void **state)
{
	(void) state;
	assert_true(gw_cors_origin_valid("https://app.example"));
	assert_true(gw_cors_origin_valid("http://localhost:3000"));
	assert_true(gw_cors_origin_valid("*"));
	assert_true(gw_cors_origin_valid("chrome-extension://abc"));
	assert_false(gw_cors_origin_valid("https://app.example/"));
	assert_false(gw_cors_origin_valid("https://app.example/path"));
	assert_false(gw_cors_origin_valid("app.example"));
	assert_false(gw_cors_origin_valid("https://"));
	assert_false(gw_cors_origin_valid("https://a b"));
	assert_false(gw_cors_origin_valid("https://u@host"));
	assert_false(gw_cors_origin_valid("1http://host"));
	assert_false(gw_cors_origin_valid(""));
	assert_false(gw_cors_origin_valid(NULL));
}

static void
test_check_exact_match_only(void **state)
{
	gw_core core;

	(void) state;
	core_with(&core, origins, 2);
	assert_int_equal(gw_cors_check(&core, NULL), GW_CORS_NONE);
	assert_int_equal(
	    gw_cors_check(&core, "https://app.example"), GW_CORS_ALLOWED);
	assert_int_equal(
	    gw_cors_check(&core, "https://app.example:443"), GW_CORS_DENIED);
	assert_int_equal(
	    gw_cors_check(&core, "https://evil.example"), GW_CORS_DENIED);
	assert_int_equal(gw_cors_check(&core, "null"), GW_CORS_DENIED);
	core_with(&core, NULL, 0);
	assert_int_equal(
	    gw_cors_check(&core, "https://app.example"), GW_CORS_DENIED);
	core_with(&core, (const char *const[]){"*"}, 1);
	assert_int_equal(
	    gw_cors_check(&core, "https://any.example"), GW_CORS_ALLOWED);
}

static void
test_decorate_allowed_exposes_headers_and_varies(void **state)
{
	gw_core core;
	gw_response r;

	(void) state;
	core_with(&core, origins, 2);
	gw_response_init(&r);
	gw_cors_decorate(&core, GW_CORS_ALLOWED, "https://app.example", &r);
	assert_string_equal(
	    gw_response_get_header(&r, "Access-Control-Allow-Origin"),
	    "https://app.example");
	assert_string_equal(gw_response_get_header(&r, "Vary"), "Origin");
	assert_string_equal(
	    gw_response_get_header(&r, "Access-Control-Expose-Headers"),
	    "ETag, Lock-Token, Lock-Owner, Lock-Expires-At, "
	    "Lock-Fencing-Token, Record-Revision, Record-Updated-At, "
	    "Record-Updated-By, Record-Created-At, Retry-After, "
	    "WWW-Authenticate");
	gw_response_fini(&r);
}

static void
test_decorate_denied_origin_gets_no_cors_headers(void **state)
{
	gw_core core;
	gw_response r;

	(void) state;
	core_with(&core, origins, 2);
	gw_response_init(&r);
	gw_cors_decorate(&core, GW_CORS_DENIED, "https://evil.example", &r);
	assert_null(gw_response_get_header(&r, "Access-Control-Allow-Origin"));
	assert_null(
	    gw_response_get_header(&r, "Access-Control-Expose-Headers"));
	assert_string_equal(gw_response_get_header(&r, "Vary"), "Origin");
	gw_response_fini(&r);

	/* Without configured origins, nothing at all. */
	core_with(&core, NULL, 0);
	gw_response_init(&r);
	gw_cors_decorate(&core, GW_CORS_DENIED, "https://evil.example", &r);
	assert_int_equal(r.n_headers, 0);
	gw_response_fini(&r);
}

static void
options(const gw_core *core, const char *origin, const char *method,
    gw_route route, gw_response *r)
{
	gw_header h[2];
	gw_request req;
	size_t n = 0;

	if (origin != NULL) {
		h[n++] = (gw_header){"Origin", origin};
	}
	if (method != NULL) {
		h[n++] = (gw_header){"Access-Control-Request-Method", method};
	}
	memset(&req, 0, sizeof(req));
	req.method = "OPTIONS";
	req.uri = "/v1/records/x";
	req.headers = h;
	req.n_headers = n;
	gw_response_init(r);
	gw_cors_options(core, &req, route, r);
}

static void
test_preflight_from_allowed_origin(void **state)
{
	gw_core core;
	gw_response r;

	(void) state;
	core_with(&core, origins, 2);
	options(&core, "http://localhost:3000", "PUT", GW_ROUTE_RECORD, &r);
	assert_int_equal(r.status, 204);
	assert_string_equal(
	    gw_response_get_header(&r, "Access-Control-Allow-Origin"),
	    "http://localhost:3000");
	assert_string_equal(
	    gw_response_get_header(&r, "Access-Control-Allow-Methods"),
	    "GET, HEAD, PUT, DELETE, OPTIONS");
	assert_string_equal(
	    gw_response_get_header(&r, "Access-Control-Allow-Headers"),
	    "Content-Type, If-Match, If-None-Match, Lock-Token, "
	    "Idempotency-Key, Author, Last-Event-ID, Authorization");
	assert_string_equal(
	    gw_response_get_header(&r, "Access-Control-Max-Age"), "600");
	assert_non_null(strstr(gw_response_get_header(&r, "Vary"), "Origin"));
	gw_response_fini(&r);
}

static void
test_preflight_from_other_origin_is_403_without_cors(void **state)
{
	gw_core core;
	gw_response r;

	(void) state;
	core_with(&core, origins, 2);
	options(&core, "https://evil.example", "PUT", GW_ROUTE_RECORD, &r);
	assert_int_equal(r.status, 403);
	assert_null(gw_response_get_header(&r, "Access-Control-Allow-Origin"));
	assert_null(
	    gw_response_get_header(&r, "Access-Control-Allow-Methods"));
	assert_non_null(strstr((const char *) r.body, "CORS_ORIGIN_DENIED"));
	gw_response_fini(&r);
}

static void
test_plain_options_answers_allow(void **state)
{
	gw_core core;
	gw_response r;

	(void) state;
	core_with(&core, NULL, 0);
	options(&core, NULL, NULL, GW_ROUTE_LOCK, &r);
	assert_int_equal(r.status, 204);
	assert_string_equal(
	    gw_response_get_header(&r, "Allow"), "POST, DELETE, OPTIONS");
	gw_response_fini(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_origin_syntax),
	    cmocka_unit_test(test_check_exact_match_only),
	    cmocka_unit_test(test_decorate_allowed_exposes_headers_and_varies),
	    cmocka_unit_test(test_decorate_denied_origin_gets_no_cors_headers),
	    cmocka_unit_test(test_preflight_from_allowed_origin),
	    cmocka_unit_test(
	        test_preflight_from_other_origin_is_403_without_cors),
	    cmocka_unit_test(test_plain_options_answers_allow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
