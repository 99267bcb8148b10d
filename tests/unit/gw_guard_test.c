/*
 * gw_guard_test.c - DESIGN §11's browser rules as plain functions: what a
 * page on another origin, a rebound DNS name or a mislabelled body gets,
 * and that the requests a legitimate page or tool sends still plan their
 * RPC. No sockets (it_http.sh and the Chromium test do it for real).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "datasync/v1/datasync.nrpc.h"
#include "ds_test.h"
#include "gw_int.h"

static gw_core core;
static gw_metrics metrics;
static ds_fake_clock fclock;
static const nrpc_service_desc *services[] = {&datasync_v1_data_sync_service};
static const char *const cors[] = {"https://app.example"};
static const char *const hosts[] = {"datasync.internal"};

static int
setup(void **state)
{
	(void) state;
	ds_fake_clock_init(&fclock, INT64_C(1700000000000));
	gw_metrics_init(&metrics);
	gw_core_init(&core, services, 1, cors, 1, 0, &fclock.base, &metrics);
	gw_core_set_hosts(&core, "127.0.0.1:8080", hosts, 1);
	return 0;
}

#define H(...) ((const gw_header[]){__VA_ARGS__, {NULL, NULL}})

/* run plans one request the way gw_http.c does (precheck, then make). */
static void
run(gw_plan *p, const char *method, const char *uri, const char *body,
    const gw_header *hs)
{
	gw_request req;
	size_t n = 0;

	while (hs[n].name != NULL) {
		n++;
	}
	memset(&req, 0, sizeof(req));
	req.method = method;
	req.uri = uri;
	req.headers = hs;
	req.n_headers = n;
	req.body = (const uint8_t *) body;
	req.body_len = body != NULL ? strlen(body) : 0;
	gw_plan_init(p);
	gw_plan_request(&core, &req, p);
}

/* refused: answered at once with status and reason, naming field, and
 * no RPC planned. */
static void
assert_refused(gw_plan *p, int status, const char *reason, const char *field)
{
	json_error_t e;
	json_t *j;

	assert_int_equal(p->kind, GW_PLAN_RESPOND);
	assert_null(p->rpc);
	if (p->resp.status != status) {
		fail_msg("status %d, want %d: %.*s", p->resp.status, status,
		    (int) p->resp.body_len, (const char *) p->resp.body);
	}
	j = json_loadb((const char *) p->resp.body, p->resp.body_len, 0, &e);
	assert_non_null(j);
	assert_string_equal(
	    json_string_value(json_object_get(j, "reason")), reason);
	assert_string_equal(
	    json_string_value(json_object_get(j, "field")), field);
	json_decref(j);
	gw_plan_fini(p);
}

static void
assert_planned(gw_plan *p)
{
	if (p->kind != GW_PLAN_RPC) {
		fail_msg("not planned: %d %.*s", p->resp.status,
		    (int) p->resp.body_len, (const char *) p->resp.body);
	}
	gw_plan_fini(p);
}

#define LOCK_BODY  "{\"owner\": \"mallory\", \"ttlMs\": 3600000}"
#define RPC_UPDATE "/rpc/datasync.v1.DataSync/Update"
#define RPC_BODY                                                              \
	"{\"key\":\"k\",\"value\":\"\",\"precondition\":{\"unconditional\":"   \
	"true}}"

static void
test_cross_origin_simple_requests_are_refused_before_they_run(void **state)
{
	gw_plan p;

	(void) state;
	/* no-cors fetch with text/plain: no preflight, so only we stop it */
	run(&p, "POST", RPC_UPDATE, RPC_BODY,
	    H({"Host", "127.0.0.1:8080"}, {"Origin", "http://evil.test"},
	        {"Content-Type", "text/plain"}));
	assert_refused(&p, 403, "ORIGIN_NOT_ALLOWED", "Origin");
	/* an HTML form */
	run(&p, "POST", "/v1/records/victim/lock", "owner=x",
	    H({"Host", "127.0.0.1:8080"}, {"Origin", "http://evil.test"},
	        {"Content-Type", "application/x-www-form-urlencoded"}));
	assert_refused(&p, 403, "ORIGIN_NOT_ALLOWED", "Origin");
	/* sendBeacon to the unlock route */
	run(&p, "POST", "/v1/records/victim/unlock", "{\"lockToken\":\"t\"}",
	    H({"Host", "127.0.0.1:8080"}, {"Origin", "http://evil.test"},
	        {"Content-Type", "text/plain;charset=UTF-8"}));
	assert_refused(&p, 403, "ORIGIN_NOT_ALLOWED", "Origin");
	/* a sandboxed frame's opaque origin */
	run(&p, "DELETE", "/v1/records/victim",
	    NULL, H({"Origin", "null"}, {"If-Match", "*"}));
	assert_refused(&p, 403, "ORIGIN_NOT_ALLOWED", "Origin");
}

static void
test_cross_origin_refusal_happens_before_the_body_is_read(void **state)
{
	gw_request req;
	gw_plan p;
	size_t len = 0;
	const gw_header *hs =
	    H({"Origin", "http://evil.test"}, {"Content-Type", "text/plain"},
	        {"Content-Length", "100"});

	(void) state;
	memset(&req, 0, sizeof(req));
	req.method = "POST";
	req.uri = RPC_UPDATE;
	req.headers = hs;
	req.n_headers = 3;
	gw_plan_init(&p);
	assert_false(gw_plan_precheck(&core, &req, &len, &p));
	assert_true(p.resp.close); /* the unread body: close after */
	assert_refused(&p, 403, "ORIGIN_NOT_ALLOWED", "Origin");
}

static void
test_own_and_configured_origins_may_write(void **state)
{
	gw_plan p;

	(void) state;
	run(&p, "POST", RPC_UPDATE, RPC_BODY,
	    H({"Host", "127.0.0.1:8080"}, {"Origin", "http://127.0.0.1:8080"},
	        {"Content-Type", "application/json"}));
	assert_planned(&p);
	run(&p, "POST", RPC_UPDATE, RPC_BODY,
	    H({"Host", "localhost:8080"}, {"Origin", "http://LOCALHOST:8080"},
	        {"Content-Type", "application/json"}));
	assert_planned(&p);
	run(&p, "PUT", "/v1/records/k", "v",
	    H({"Host", "127.0.0.1:8080"}, {"Origin", "https://app.example"},
	        {"If-Match", "*"}, {"Content-Type", "text/plain"}));
	assert_planned(&p);
	/* Same host, other port: another origin. */
	run(&p, "PUT", "/v1/records/k", "v",
	    H({"Host", "127.0.0.1:8080"}, {"Origin", "http://127.0.0.1:9999"},
	        {"If-Match", "*"}));
	assert_refused(&p, 403, "ORIGIN_NOT_ALLOWED", "Origin");
	/* Reads from anywhere are served (the browser hides the answer). */
	run(&p, "GET", "/v1/records/k", NULL,
	    H({"Host", "127.0.0.1:8080"}, {"Origin", "http://evil.test"}));
	assert_planned(&p);
}

static void
test_json_routes_need_a_json_content_type(void **state)
{
	gw_plan p;

	(void) state;
	run(&p, "POST", RPC_UPDATE, RPC_BODY, H({"Content-Type", "text/plain"}));
	assert_refused(&p, 415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type");
	run(&p, "POST", RPC_UPDATE, RPC_BODY, H({"Host", "127.0.0.1"}));
	assert_refused(&p, 415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type");
	run(&p, "POST", "/v1/records/k/lock", LOCK_BODY,
	    H({"Content-Type", "application/jsonx"}));
	assert_refused(&p, 415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type");
	run(&p, "DELETE", "/v1/records/k/lock", "{\"lockToken\":\"t\"}",
	    H({"Content-Type", "multipart/form-data; boundary=x"}));
	assert_refused(&p, 415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type");
	run(&p, "POST", "/v1/records/k/lock", LOCK_BODY,
	    H({"Content-Type", "Application/JSON; charset=utf-8"}));
	assert_planned(&p);
	/* The beacon route takes text/plain (it needs the secret token). */
	run(&p, "POST", "/v1/records/k/unlock", "{\"lockToken\":\"t\"}",
	    H({"Content-Type", "text/plain;charset=UTF-8"}));
	assert_planned(&p);
	/* A PUT's body is the value, with the value's own type. */
	run(&p, "PUT", "/v1/records/k", "v",
	    H({"If-Match", "*"}, {"Content-Type", "text/plain"}));
	assert_planned(&p);
	/* No body, nothing to label. */
	run(&p, "POST", "/rpc/datasync.v1.DataSync/List", NULL,
	    H({"Content-Length", "0"}));
	assert_planned(&p);
}

static void
test_host_must_be_ours_a_literal_or_allowed(void **state)
{
	gw_plan p;
	static const char *const ok[] = {"127.0.0.1:8080", "127.0.0.1",
	    "localhost", "LocalHost:8080", "[::1]:8080", "10.1.2.3:80",
	    "datasync.internal", "DataSync.Internal:443"};
	static const char *const bad[] = {"evil.example", "evil.example:8080",
	    "localhost.evil.example", "127.0.0.1.nip.io", "::1", "[::1",
	    "0x7f.1", "2130706433", ""};

	(void) state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		run(&p, "GET", "/v1/records/k", NULL, H({"Host", ok[i]}));
		if (p.kind != GW_PLAN_RPC) {
			fail_msg("Host '%s' refused", ok[i]);
		}
		gw_plan_fini(&p);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		run(&p, "GET", "/v1/records/k", NULL, H({"Host", bad[i]}));
		if (p.resp.status != 421) {
			fail_msg("Host '%s' answered %d", bad[i], p.resp.status);
		}
		assert_refused(&p, 421, "HOST_NOT_ALLOWED", "Host");
	}
	/* Host is checked before Origin: a rebound page is same-origin
	 * with itself. */
	run(&p, "PUT", "/v1/records/k", "v",
	    H({"Host", "evil.example"}, {"Origin", "http://evil.example"},
	        {"If-Match", "*"}));
	assert_refused(&p, 421, "HOST_NOT_ALLOWED", "Host");
	/* Static files too: a rebound name reads nothing. */
	run(&p, "GET", "/index.html", NULL, H({"Host", "evil.example"}));
	assert_refused(&p, 421, "HOST_NOT_ALLOWED", "Host");
}

static void
test_listen_name_and_star_widen_the_hosts(void **state)
{
	static const char *const star[] = {"*"};
	gw_plan p;

	(void) state;
	gw_core_set_hosts(&core, "myhost:8080", NULL, 0);
	run(&p, "GET", "/v1/records/k", NULL, H({"Host", "myhost:8080"}));
	assert_planned(&p);
	run(&p, "GET", "/v1/records/k", NULL, H({"Host", "datasync.internal"}));
	assert_refused(&p, 421, "HOST_NOT_ALLOWED", "Host");
	gw_core_set_hosts(&core, "127.0.0.1:8080", star, 1);
	run(&p, "GET", "/v1/records/k", NULL, H({"Host", "anything.example"}));
	assert_planned(&p);
	gw_core_set_hosts(&core, "127.0.0.1:8080", hosts, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(
	        test_cross_origin_simple_requests_are_refused_before_they_run,
	        setup),
	    cmocka_unit_test_setup(
	        test_cross_origin_refusal_happens_before_the_body_is_read, setup),
	    cmocka_unit_test_setup(
	        test_own_and_configured_origins_may_write, setup),
	    cmocka_unit_test_setup(
	        test_json_routes_need_a_json_content_type, setup),
	    cmocka_unit_test_setup(
	        test_host_must_be_ours_a_literal_or_allowed, setup),
	    cmocka_unit_test_setup(
	        test_listen_name_and_star_widen_the_hosts, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
