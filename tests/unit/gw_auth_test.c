/*
 * gw_auth_test.c - the gateway's side of authentication as plain
 * functions (gw_auth.c): where the credential comes from (Authorization
 * over the ds_session cookie, among several cookies), what is forwarded
 * upstream, how UNAUTHENTICATED / PERMISSION_DENIED / TOO_MANY_AUTH_
 * FAILURES render, the /v1/session routes and their cookie, and the
 * per-peer limiter answering 429 before any call. No sockets:
 * it_auth_http.sh and the Chromium tests do it against a real datasyncd.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "auth.h"
#include "datasync/v1/datasync.nrpc.h"
#include "ds_test.h"
#include "gw_int.h"

static gw_core core;
static gw_metrics metrics;
static ds_fake_clock fclock;
static auth_limiter *limiter;
static const nrpc_service_desc *services[] = {&datasync_v1_data_sync_service};

#define SECRET                                                                \
	"dst_"                                                                \
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define SECRET2                                                               \
	"dst_"                                                                \
	"fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

static int
setup(void **state)
{
	(void) state;
	ds_fake_clock_init(&fclock, INT64_C(1700000000000));
	gw_metrics_init(&metrics);
	gw_core_init(&core, services, 1, NULL, 0, 0, &fclock.base, &metrics);
	gw_core_set_hosts(&core, "127.0.0.1:8080", NULL, 0);
	limiter = auth_limiter_new(&fclock.base);
	assert_non_null(limiter);
	core.limiter = limiter;
	return 0;
}

static int
teardown(void **state)
{
	(void) state;
	auth_limiter_free(limiter);
	limiter = NULL;
	return 0;
}

#define H(...)     ((const gw_header[]){__VA_ARGS__, {NULL, NULL}})
#define NO_HEADERS ((const gw_header[]){{NULL, NULL}})

static void
request(gw_request *req, const char *method, const char *uri, const char *body,
    const gw_header *hs, const char *peer)
{
	size_t n = 0;

	while (hs[n].name != NULL) {
		n++;
	}
	memset(req, 0, sizeof(*req));
	req->method = method;
	req->uri = uri;
	req->headers = hs;
	req->n_headers = n;
	req->body = (const uint8_t *) body;
	req->body_len = body != NULL ? strlen(body) : 0;
	req->peer = peer;
}

/* run plans one request the way gw_http.c does (precheck, then make). */
static void
run(gw_plan *p, const char *method, const char *uri, const char *body,
    const gw_header *hs, const char *peer)
{
	gw_request req;

	request(&req, method, uri, body, hs, peer);
	gw_plan_init(p);
	gw_plan_request(&core, &req, p);
}

/* answer feeds the planned call an error status. */
static void
answer_error(
    gw_plan *p, nrpc_code code, const char *reason, uint32_t retry_after_ms)
{
	nrpc_status st;

	assert_int_equal(p->kind, GW_PLAN_RPC);
	memset(&st, 0, sizeof(st));
	nrpc_status_set(&st, code, reason, NULL, "refused by the test");
	st.retry_after_ms = retry_after_ms;
	assert_int_equal(gw_plan_step(&core, p, NULL, &st), GW_PLAN_RESPOND);
	nrpc_status_fini(&st);
}

static void
answer_whoami(gw_plan *p, bool required, bool authenticated)
{
	Datasync__V1__WhoAmIResponse w = DATASYNC__V1__WHO_AM_IRESPONSE__INIT;
	Datasync__V1__Token t = DATASYNC__V1__TOKEN__INIT;
	char *grants[] = {"read:docs/", "write:docs/"};
	nrpc_status st;

	assert_int_equal(p->kind, GW_PLAN_RPC);
	assert_ptr_equal(p->rpc, core.ops[GW_OP_WHOAMI]);
	w.auth_required = required;
	w.authenticated = authenticated;
	if (authenticated) {
		t.name = "ci";
		t.grants = grants;
		t.n_grants = 2;
		w.token = &t;
	}
	memset(&st, 0, sizeof(st));
	assert_int_equal(
	    gw_plan_step(&core, p, &w.base, &st), GW_PLAN_RESPOND);
}

static const char *
header(const gw_plan *p, const char *name)
{
	return gw_response_get_header(&p->resp, name);
}

static json_t *
body_json(const gw_plan *p)
{
	json_error_t e;
	json_t *j =
	    json_loadb((const char *) p->resp.body, p->resp.body_len, 0, &e);

	if (j == NULL) {
		fail_msg("body is not JSON: %.*s", (int) p->resp.body_len,
		    (const char *) p->resp.body);
	}
	return j;
}

static void
assert_reason(const gw_plan *p, int status, const char *reason)
{
	json_t *j;

	if (p->resp.status != status) {
		fail_msg("status %d, want %d: %.*s", p->resp.status, status,
		    (int) p->resp.body_len, (const char *) p->resp.body);
	}
	j = body_json(p);
	assert_string_equal(
	    json_string_value(json_object_get(j, "reason")), reason);
	json_decref(j);
}

/* no_secret: neither the body nor a header but Set-Cookie holds s. */
static void
assert_no_secret(const gw_plan *p, const char *s)
{
	assert_null(memmem(p->resp.body, p->resp.body_len, s, strlen(s)));
	for (size_t i = 0; i < p->resp.n_headers; i++) {
		if (strcmp(p->resp.headers[i].name, "Set-Cookie") != 0) {
			assert_null(strstr(p->resp.headers[i].value, s));
		}
	}
}

/* --- parsing --- */

static void
test_cookie_found_among_several(void **state)
{
	const char *v;
	size_t n;

	(void) state;
	assert_true(gw_cookie_get("ds_session=abc", "ds_session", &v, &n));
	assert_int_equal(n, 3);
	assert_memory_equal(v, "abc", 3);
	assert_true(gw_cookie_get(
	    "theme=dark; xds_session=no; ds_session_old=no; ds_session=yes; "
	    "z=1",
	    "ds_session", &v, &n));
	assert_int_equal(n, 3);
	assert_memory_equal(v, "yes", 3);
	/* two Cookie headers, joined by gw_http.c with ", " */
	assert_true(
	    gw_cookie_get("a=1; b=2, ds_session=two", "ds_session", &v, &n));
	assert_int_equal(n, 3);
	assert_memory_equal(v, "two", 3);
	/* quoted, loose whitespace, the first of repeated names */
	assert_true(gw_cookie_get(
	    "  ds_session = \"q\" ;ds_session=r", "ds_session", &v, &n));
	assert_int_equal(n, 1);
	assert_memory_equal(v, "q", 1);
	assert_true(gw_cookie_get("ds_session=", "ds_session", &v, &n));
	assert_int_equal(n, 0);
	assert_false(gw_cookie_get(
	    "session=x; ds_sessionx=y; =z; ds_session", "ds_session", &v, &n));
	assert_false(gw_cookie_get("", "ds_session", &v, &n));
	assert_false(gw_cookie_get(NULL, "ds_session", &v, &n));
}

static void
test_authorization_wins_over_the_cookie(void **state)
{
	gw_request req;
	gw_cred c;

	(void) state;
	request(&req, "GET", "/v1/records/a", NULL,
	    H({"Authorization", "Bearer " SECRET},
	        {"Cookie", "ds_session=" SECRET2}),
	    NULL);
	gw_auth_cred(&req, &c);
	assert_int_equal(c.from, GW_CRED_HEADER);
	assert_true(c.bearer);
	assert_int_equal(c.len, strlen(SECRET));
	assert_memory_equal(c.value, SECRET, c.len);

	/* the scheme is case-insensitive, spaces around are not part of it */
	request(&req, "GET", "/", NULL,
	    H({"Authorization", "  bEaReR   " SECRET "  "}), NULL);
	gw_auth_cred(&req, &c);
	assert_int_equal(c.from, GW_CRED_HEADER);
	assert_true(c.bearer);
	assert_int_equal(c.len, strlen(SECRET));

	/* another scheme travels whole: datasyncd says it is malformed */
	request(
	    &req, "GET", "/", NULL, H({"Authorization", "Basic YTpi"}), NULL);
	gw_auth_cred(&req, &c);
	assert_int_equal(c.from, GW_CRED_HEADER);
	assert_false(c.bearer);
	assert_int_equal(c.len, strlen("Basic YTpi"));

	/* an empty header leaves the cookie */
	request(&req, "GET", "/", NULL,
	    H({"Authorization", " "}, {"Cookie", "x=1; ds_session=" SECRET2}),
	    NULL);
	gw_auth_cred(&req, &c);
	assert_int_equal(c.from, GW_CRED_COOKIE);
	assert_memory_equal(c.value, SECRET2, c.len);

	request(&req, "GET", "/", NULL, H({"Cookie", "ds_session="}), NULL);
	gw_auth_cred(&req, &c);
	assert_int_equal(c.from, GW_CRED_NONE);
}

static void
test_the_credential_is_forwarded_as_bearer_metadata(void **state)
{
	gw_plan p;

	(void) state;
	run(&p, "GET", "/v1/records/a", NULL,
	    H({"Cookie", "a=b; ds_session=" SECRET}), "10.0.0.1");
	assert_int_equal(p.kind, GW_PLAN_RPC);
	assert_int_equal(p.cred_from, GW_CRED_COOKIE);
	assert_string_equal(p.authorization, "Bearer " SECRET);
	gw_plan_fini(&p);

	run(&p, "GET", "/v1/watch?prefix=docs/", NULL,
	    H({"Authorization", "bearer " SECRET2}), "10.0.0.1");
	assert_int_equal(p.kind, GW_PLAN_RPC);
	assert_string_equal(p.authorization, "Bearer " SECRET2);
	gw_plan_fini(&p);

	run(&p, "GET", "/v1/records/a", NULL, NO_HEADERS, "10.0.0.1");
	assert_int_equal(p.kind, GW_PLAN_RPC);
	assert_null(p.authorization);
	gw_plan_fini(&p);
}

static void
test_an_oversized_credential_is_refused(void **state)
{
	char big[GW_MAX_AUTH_BYTES + 32];
	gw_plan p;

	(void) state;
	memcpy(big, "Bearer ", 7);
	memset(big + 7, 'a', sizeof(big) - 8);
	big[sizeof(big) - 1] = '\0';
	run(&p, "GET", "/v1/records/a", NULL, H({"Authorization", big}),
	    "10.0.0.1");
	assert_int_equal(p.kind, GW_PLAN_RESPOND);
	assert_reason(&p, 400, "TOO_LARGE");
	gw_plan_fini(&p);
}

/* --- status mapping --- */

static void
test_unauthenticated_is_401_with_www_authenticate(void **state)
{
	gw_plan p;

	(void) state;
	run(&p, "GET", "/v1/records/a", NULL, NO_HEADERS, "10.0.0.1");
	answer_error(&p, NRPC_UNAUTHENTICATED, "TOKEN_MISSING", 0);
	assert_reason(&p, 401, "TOKEN_MISSING");
	assert_string_equal(
	    header(&p, "WWW-Authenticate"), "Bearer realm=\"datasync\"");
	assert_null(header(&p, "Set-Cookie"));
	gw_plan_fini(&p);

	run(&p, "PUT", "/v1/records/a", "v",
	    H({"Authorization", "Bearer " SECRET}, {"If-Match", "*"}),
	    "10.0.0.1");
	answer_error(&p, NRPC_UNAUTHENTICATED, "TOKEN_REVOKED", 0);
	assert_reason(&p, 401, "TOKEN_REVOKED");
	assert_string_equal(header(&p, "WWW-Authenticate"),
	    "Bearer realm=\"datasync\", error=\"invalid_token\"");
	assert_null(header(&p, "Set-Cookie")); /* a header is not ours */
	assert_no_secret(&p, SECRET);
	gw_plan_fini(&p);

	/* a refused cookie is dropped, so a revoked session goes away */
	run(&p, "GET", "/v1/records", NULL,
	    H({"Cookie", "ds_session=" SECRET}), "10.0.0.1");
	answer_error(&p, NRPC_UNAUTHENTICATED, "TOKEN_UNKNOWN", 0);
	assert_reason(&p, 401, "TOKEN_UNKNOWN");
	assert_non_null(strstr(header(&p, "Set-Cookie"), "Max-Age=0"));
	assert_no_secret(&p, SECRET);
	gw_plan_fini(&p);

	/* but an event stream's 401 keeps it: EventSource cannot show the
	 * reason, the long poll that asks next must meet the same cookie */
	run(&p, "GET", "/v1/events?prefix=a", NULL,
	    H({"Cookie", "ds_session=" SECRET}), "10.0.0.1");
	answer_error(&p, NRPC_UNAUTHENTICATED, "TOKEN_REVOKED", 0);
	assert_reason(&p, 401, "TOKEN_REVOKED");
	assert_null(header(&p, "Set-Cookie"));
	assert_no_secret(&p, SECRET);
	gw_plan_fini(&p);
}

static void
test_permission_denied_is_403_and_auth_failures_429(void **state)
{
	gw_plan p;

	(void) state;
	run(&p, "DELETE", "/v1/records/docs%2Fa", NULL,
	    H({"Authorization", "Bearer " SECRET}, {"If-Match", "*"}),
	    "10.0.0.1");
	answer_error(&p, NRPC_PERMISSION_DENIED, "PERMISSION_DENIED", 0);
	assert_reason(&p, 403, "PERMISSION_DENIED");
	assert_null(header(&p, "WWW-Authenticate"));
	gw_plan_fini(&p);

	run(&p, "GET", "/v1/records/a", NULL,
	    H({"Authorization", "Bearer " SECRET}), "10.0.0.1");
	answer_error(
	    &p, NRPC_RESOURCE_EXHAUSTED, "TOO_MANY_AUTH_FAILURES", 2500);
	assert_reason(&p, 429, "TOO_MANY_AUTH_FAILURES");
	assert_string_equal(header(&p, "Retry-After"), "3");
	gw_plan_fini(&p);
}

/* --- the limiter --- */

static void
test_repeated_401s_from_one_peer_are_429_before_any_call(void **state)
{
	gw_plan p;

	(void) state;
	for (int i = 0; i < AUTH_LIMIT_FAILURES; i++) {
		run(&p, "GET", "/v1/records/a", NULL,
		    H({"Authorization", "Bearer " SECRET}), "192.0.2.7");
		answer_error(&p, NRPC_UNAUTHENTICATED, "TOKEN_UNKNOWN", 0);
		assert_int_equal(p.resp.status, 401);
		gw_plan_fini(&p);
	}
	/* blocked: answered without a call, on every API route */
	run(&p, "GET", "/v1/records/a", NULL,
	    H({"Authorization", "Bearer " SECRET}), "192.0.2.7");
	assert_int_equal(p.kind, GW_PLAN_RESPOND);
	assert_reason(&p, 429, "TOO_MANY_AUTH_FAILURES");
	assert_non_null(header(&p, "Retry-After"));
	assert_true(atoi(header(&p, "Retry-After")) >= 1);
	assert_true(
	    atoi(header(&p, "Retry-After")) <= AUTH_LIMIT_BLOCK_MS / 1000);
	gw_plan_fini(&p);
	run(&p, "POST", "/v1/session", "{\"token\":\"" SECRET2 "\"}",
	    H({"Content-Type", "application/json"}), "192.0.2.7");
	assert_int_equal(p.kind, GW_PLAN_RESPOND);
	assert_reason(&p, 429, "TOO_MANY_AUTH_FAILURES");
	assert_no_secret(&p, SECRET2);
	gw_plan_fini(&p);

	/* another peer, and the same peer without a credential, go on */
	run(&p, "GET", "/v1/records/a", NULL,
	    H({"Authorization", "Bearer " SECRET}), "192.0.2.8");
	assert_int_equal(p.kind, GW_PLAN_RPC);
	gw_plan_fini(&p);
	run(&p, "GET", "/v1/records/a", NULL, NO_HEADERS, "192.0.2.7");
	assert_int_equal(p.kind, GW_PLAN_RPC);
	gw_plan_fini(&p);

	/* missing tokens are not guesses: they never block */
	for (int i = 0; i < 2 * AUTH_LIMIT_FAILURES; i++) {
		run(&p, "GET", "/v1/records/a", NULL, NO_HEADERS, "192.0.2.9");
		answer_error(&p, NRPC_UNAUTHENTICATED, "TOKEN_MISSING", 0);
		gw_plan_fini(&p);
	}
	run(&p, "GET", "/v1/records/a", NULL,
	    H({"Authorization", "Bearer " SECRET}), "192.0.2.9");
	assert_int_equal(p.kind, GW_PLAN_RPC);
	gw_plan_fini(&p);

	/* the block ends */
	ds_fake_clock_advance(&fclock, AUTH_LIMIT_BLOCK_MS + 1);
	run(&p, "GET", "/v1/records/a", NULL,
	    H({"Authorization", "Bearer " SECRET}), "192.0.2.7");
	assert_int_equal(p.kind, GW_PLAN_RPC);
	gw_plan_fini(&p);
}

/* --- /v1/session --- */

static void
test_sign_in_sets_the_session_cookie(void **state)
{
	gw_plan p;
	const char *c;
	json_t *j;

	(void) state;
	/* the body's token, not the session it replaces */
	run(&p, "POST", "/v1/session", "{\"token\": \"" SECRET "\"}",
	    H({"Content-Type", "application/json"},
	        {"Cookie", "ds_session=" SECRET2},
	        {"Origin", "http://127.0.0.1:8080"},
	        {"Host", "127.0.0.1:8080"}),
	    "10.0.0.1");
	assert_int_equal(p.kind, GW_PLAN_RPC);
	assert_string_equal(p.authorization, "Bearer " SECRET);
	answer_whoami(&p, true, true);
	assert_int_equal(p.resp.status, 200);
	c = header(&p, "Set-Cookie");
	assert_non_null(c);
	assert_string_equal(
	    c, "ds_session=" SECRET "; Path=/; HttpOnly; SameSite=Strict");
	assert_string_equal(header(&p, "Cache-Control"), "no-store");
	j = body_json(&p);
	assert_true(json_is_true(json_object_get(j, "authRequired")));
	assert_true(json_is_true(json_object_get(j, "authenticated")));
	assert_string_equal(json_string_value(json_object_get(
	                        json_object_get(j, "token"), "name")),
	    "ci");
	assert_int_equal(json_array_size(json_object_get(
	                     json_object_get(j, "token"), "grants")),
	    2);
	json_decref(j);
	assert_no_secret(&p, SECRET);
	gw_plan_fini(&p);

	/* over HTTPS the cookie is Secure; Authorization works too */
	core.tls = true;
	run(&p, "POST", "/v1/session", NULL,
	    H({"Authorization", "Bearer " SECRET}), "10.0.0.1");
	answer_whoami(&p, true, true);
	assert_string_equal(header(&p, "Set-Cookie"),
	    "ds_session=" SECRET
	    "; Path=/; HttpOnly; SameSite=Strict; Secure");
	gw_plan_fini(&p);
	core.tls = false;

	/* another scheme, even one the server took: no cookie from it */
	run(&p, "POST", "/v1/session", NULL, H({"Authorization", "x"}),
	    "10.0.0.1");
	answer_whoami(&p, true, true);
	assert_int_equal(p.resp.status, 200);
	assert_null(header(&p, "Set-Cookie"));
	gw_plan_fini(&p);
	/* a token a cookie cannot carry unquoted is not made into one */
	run(&p, "POST", "/v1/session", "{\"token\": \"a;b=c\"}",
	    H({"Content-Type", "application/json"}), "10.0.0.1");
	answer_whoami(&p, true, true);
	assert_null(header(&p, "Set-Cookie"));
	gw_plan_fini(&p);
}

static void
test_sign_in_refusals(void **state)
{
	gw_plan p;

	(void) state;
	/* no token at all; a cookie alone does not sign in */
	run(&p, "POST", "/v1/session", "{}",
	    H({"Content-Type", "application/json"},
	        {"Cookie", "ds_session=" SECRET}),
	    "10.0.0.1");
	assert_int_equal(p.kind, GW_PLAN_RESPOND);
	assert_reason(&p, 401, "TOKEN_MISSING");
	assert_string_equal(
	    header(&p, "WWW-Authenticate"), "Bearer realm=\"datasync\"");
	gw_plan_fini(&p);
	/* an invalid token: the server's 401, no cookie set */
	run(&p, "POST", "/v1/session", "{\"token\":\"dst_nope\"}",
	    H({"Content-Type", "application/json"}), "10.0.0.1");
	answer_error(&p, NRPC_UNAUTHENTICATED, "TOKEN_MALFORMED", 0);
	assert_reason(&p, 401, "TOKEN_MALFORMED");
	assert_null(header(&p, "Set-Cookie"));
	assert_non_null(
	    strstr(header(&p, "WWW-Authenticate"), "invalid_token"));
	gw_plan_fini(&p);
	/* a server without authentication has no session to give */
	run(&p, "POST", "/v1/session", "{\"token\":\"" SECRET "\"}",
	    H({"Content-Type", "application/json"}), "10.0.0.1");
	answer_whoami(&p, false, false);
	assert_reason(&p, 401, "AUTH_DISABLED");
	assert_null(header(&p, "Set-Cookie"));
	gw_plan_fini(&p);
	/* another origin may not sign in (or out) */
	run(&p, "POST", "/v1/session", "{\"token\":\"" SECRET "\"}",
	    H({"Content-Type", "application/json"},
	        {"Origin", "http://evil.test"}, {"Host", "127.0.0.1:8080"}),
	    "10.0.0.1");
	assert_reason(&p, 403, "ORIGIN_NOT_ALLOWED");
	assert_null(p.rpc);
	gw_plan_fini(&p);
	run(&p, "DELETE", "/v1/session", NULL,
	    H({"Origin", "http://evil.test"}, {"Host", "127.0.0.1:8080"}),
	    "10.0.0.1");
	assert_reason(&p, 403, "ORIGIN_NOT_ALLOWED");
	assert_null(header(&p, "Set-Cookie"));
	gw_plan_fini(&p);
	/* a form post cannot sign in either */
	run(&p, "POST", "/v1/session", "token=" SECRET,
	    H({"Content-Type", "application/x-www-form-urlencoded"}),
	    "10.0.0.1");
	assert_reason(&p, 415, "UNSUPPORTED_MEDIA_TYPE");
	gw_plan_fini(&p);
	run(&p, "POST", "/v1/session", "[1]",
	    H({"Content-Type", "application/json"}), "10.0.0.1");
	assert_reason(&p, 400, "INVALID_ARGUMENT");
	gw_plan_fini(&p);
	run(&p, "POST", "/v1/session",
	    "{\"token\":", H({"Content-Type", "application/json"}),
	    "10.0.0.1");
	assert_reason(&p, 400, "MALFORMED_JSON");
	gw_plan_fini(&p);
	run(&p, "PUT", "/v1/session", NULL, NO_HEADERS, "10.0.0.1");
	assert_int_equal(p.resp.status, 405);
	gw_plan_fini(&p);
}

static void
test_session_get_and_sign_out(void **state)
{
	gw_plan p;
	json_t *j;

	(void) state;
	run(&p, "GET", "/v1/session", NULL, NO_HEADERS, "10.0.0.1");
	assert_null(p.authorization);
	answer_whoami(&p, true, false);
	assert_int_equal(p.resp.status, 200);
	assert_null(header(&p, "Set-Cookie"));
	j = body_json(&p);
	assert_true(json_is_true(json_object_get(j, "authRequired")));
	assert_true(json_is_false(json_object_get(j, "authenticated")));
	assert_true(json_is_null(json_object_get(j, "token")));
	json_decref(j);
	gw_plan_fini(&p);

	run(&p, "GET", "/v1/session", NULL,
	    H({"Cookie", "ds_session=" SECRET}), "10.0.0.1");
	assert_string_equal(p.authorization, "Bearer " SECRET);
	answer_whoami(&p, true, true);
	assert_int_equal(p.resp.status, 200);
	assert_null(header(&p, "Set-Cookie")); /* GET never sets one */
	assert_no_secret(&p, SECRET);
	gw_plan_fini(&p);

	run(&p, "DELETE", "/v1/session", NULL,
	    H({"Cookie", "ds_session=" SECRET}), "10.0.0.1");
	assert_int_equal(p.kind, GW_PLAN_RESPOND);
	assert_int_equal(p.resp.status, 204);
	assert_string_equal(header(&p, "Set-Cookie"),
	    "ds_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
	gw_plan_fini(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cookie_found_among_several),
	    cmocka_unit_test(test_authorization_wins_over_the_cookie),
	    cmocka_unit_test_setup_teardown(
	        test_the_credential_is_forwarded_as_bearer_metadata, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_an_oversized_credential_is_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_unauthenticated_is_401_with_www_authenticate, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_permission_denied_is_403_and_auth_failures_429, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_repeated_401s_from_one_peer_are_429_before_any_call,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_sign_in_sets_the_session_cookie, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_sign_in_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_session_get_and_sign_out, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
