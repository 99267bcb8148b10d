/*
 * gw_plan_test.c - every route of the gateway as plain functions: request
 * -> plan (the RPC message it would send, or the immediate answer) ->
 * render (the HTTP answer to a given RPC outcome). No sockets, no server.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <jansson.h>

#include "datasync/v1/datasync.nrpc.h"
#include "ds_alloc.h"
#include "ds_test.h"
#include "gw_int.h"

#define NOW_MS INT64_C(1700000000000)

static gw_core core;
static gw_metrics metrics;
static ds_fake_clock fclock;
static const nrpc_service_desc *services[] = {&datasync_v1_data_sync_service};
static const char *const cors[] = {"https://app.example"};

static int
setup(void **state)
{
	(void) state;
	ds_fake_clock_init(&fclock, NOW_MS);
	gw_metrics_init(&metrics);
	/* A small value limit, so the limit tests stay small. */
	gw_core_init(
	    &core, services, 1, cors, 1, 1000, &fclock.base, &metrics);
	return 0;
}

/* --- helpers --- */

#define H(...) ((const gw_header[]){__VA_ARGS__, {NULL, NULL}})
#define NOH    ((const gw_header[]){{NULL, NULL}})

static void
plan(gw_plan *p, const char *method, const char *uri, const char *body,
    const gw_header *hs)
{
	gw_request req;
	gw_header with_ct[16];
	size_t n = 0;
	bool has_ct = false;

	while (hs[n].name != NULL) {
		has_ct |= strcasecmp(hs[n].name, "Content-Type") == 0;
		n++;
	}
	memset(&req, 0, sizeof(req));
	req.method = method;
	req.uri = uri;
	req.headers = hs;
	req.n_headers = n;
	/* A body goes out labelled as JSON unless the test labels it, as
	 * datasync.js and curl users do (DESIGN §11: /rpc/ and the lock
	 * route refuse other types; gw_guard_test covers that). A PUT's
	 * Content-Type is the value's, so it stays as the test gives it. */
	if (body != NULL && !has_ct && n < 15 &&
	    (strncmp(uri, "/rpc/", 5) == 0 || strstr(uri, "/lock") != NULL)) {
		memcpy(with_ct, hs, n * sizeof(*hs));
		with_ct[n].name = "Content-Type";
		with_ct[n].value = "application/json";
		req.headers = with_ct;
		req.n_headers = n + 1;
	}
	req.body = (const uint8_t *) body;
	req.body_len = body != NULL ? strlen(body) : 0;
	gw_plan_init(p);
	gw_plan_request(&core, &req, p);
}

static const char *
hdr(const gw_plan *p, const char *name)
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

static const char *
jstr(json_t *j, const char *path)
{
	char buf[128];
	char *save = NULL, *tok;
	json_t *v = j;

	(void) snprintf(buf, sizeof(buf), "%s", path);
	for (tok = strtok_r(buf, ".", &save); tok != NULL && v != NULL;
	     tok = strtok_r(NULL, ".", &save)) {
		v = json_object_get(v, tok);
	}
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* assert_error: status, code and reason of a JSON error answer. */
static void
assert_error(const gw_plan *p, int http, const char *code, const char *reason)
{
	json_t *j;

	assert_int_equal(p->kind, GW_PLAN_RESPOND);
	if (p->resp.status != http) {
		fail_msg("status %d, want %d: %.*s", p->resp.status, http,
		    (int) p->resp.body_len, (const char *) p->resp.body);
	}
	assert_string_equal(hdr(p, "Content-Type"), "application/json");
	j = body_json(p);
	assert_string_equal(jstr(j, "code"), code);
	assert_string_equal(jstr(j, "reason"), reason);
	assert_non_null(jstr(j, "message"));
	json_decref(j);
}

static void
status_set(
    nrpc_status *st, nrpc_code code, const char *reason, const char *field)
{
	memset(st, 0, sizeof(*st));
	nrpc_status_set(st, code, reason, field, "from the service");
}

static void
status_detail(nrpc_status *st, const Datasync__V1__Record *rec)
{
	size_t n = datasync__v1__record__get_packed_size(rec);

	st->detail = ds_alloc(n);
	assert_non_null(st->detail);
	(void) datasync__v1__record__pack(rec, st->detail);
	st->detail_len = n;
	(void) snprintf(st->detail_type, sizeof(st->detail_type), "%s",
	    "datasync.v1.Record");
}

static const nrpc_status ok_status;

static void
record_init(Datasync__V1__Record *rec, const char *key, uint64_t version)
{
	Datasync__V1__Record init = DATASYNC__V1__RECORD__INIT;

	*rec = init;
	rec->key = (char *) key;
	rec->version = version;
	rec->revision = 42;
	rec->created_at_ms = NOW_MS - 5000;
	rec->updated_at_ms = NOW_MS - 1000;
	rec->updated_by = "J\xc3\xbcrgen";
	rec->content_type = "text/plain";
	rec->value.data = (uint8_t *) "hello";
	rec->value.len = 5;
}

/* --- GET / HEAD --- */

static void
test_get_plans_get_with_decoded_key_and_version(void **state)
{
	gw_plan p;
	const Datasync__V1__GetRequest *g;

	(void) state;
	plan(&p, "GET", "/v1/records/a/b%2Fc%20d?version=3&_=cachebuster",
	    NULL, NOH);
	assert_int_equal(p.kind, GW_PLAN_RPC);
	assert_ptr_equal(p.rpc, core.ops[GW_OP_GET]);
	assert_string_equal(p.rpc->full_name, "/datasync.v1.DataSync/Get");
	g = (const Datasync__V1__GetRequest *) p.req;
	assert_string_equal(g->key, "a/b/c d");
	assert_int_equal(g->version, 3);
	assert_int_equal(p.route, GW_ROUTE_RECORD);
	gw_plan_fini(&p);
}

static void
test_get_renders_raw_value_and_record_headers(void **state)
{
	gw_plan p;
	Datasync__V1__Record rec;
	Datasync__V1__LockInfo lock = DATASYNC__V1__LOCK_INFO__INIT;
	Datasync__V1__GetResponse resp = DATASYNC__V1__GET_RESPONSE__INIT;

	(void) state;
	record_init(&rec, "doc", 7);
	lock.owner = "alice";
	lock.expires_at_ms = NOW_MS + 30000;
	lock.fencing_token = 9;
	rec.lock = &lock;
	resp.record = &rec;
	plan(&p, "GET", "/v1/records/doc", NULL,
	    H({"Origin", "https://app.example"}));
	assert_int_equal(
	    gw_plan_step(&core, &p, &resp.base, &ok_status), GW_PLAN_RESPOND);
	assert_int_equal(p.resp.status, 200);
	assert_int_equal(p.resp.body_len, 5);
	assert_memory_equal(p.resp.body, "hello", 5);
	assert_string_equal(hdr(&p, "Content-Type"), "text/plain");
	assert_string_equal(hdr(&p, "ETag"), "\"7\"");
	assert_string_equal(hdr(&p, "Record-Revision"), "42");
	assert_string_equal(hdr(&p, "Record-Updated-At"), "1699999999000");
	assert_string_equal(hdr(&p, "Record-Created-At"), "1699999995000");
	assert_string_equal(hdr(&p, "Record-Updated-By"), "J%C3%BCrgen");
	assert_string_equal(hdr(&p, "Lock-Owner"), "alice");
	assert_string_equal(hdr(&p, "Lock-Expires-At"), "1700000030000");
	assert_string_equal(hdr(&p, "Lock-Fencing-Token"), "9");
	assert_string_equal(hdr(&p, "Cache-Control"), "no-cache");
	assert_string_equal(hdr(&p, "Content-Security-Policy"), "sandbox");
	assert_string_equal(
	    hdr(&p, "Access-Control-Allow-Origin"), "https://app.example");
	assert_string_equal(hdr(&p, "Vary"), "Origin");
	gw_plan_fini(&p);
}

static void
test_get_empty_or_unsafe_content_type_is_octet_stream(void **state)
{
	gw_plan p;
	Datasync__V1__Record rec;
	Datasync__V1__GetResponse resp = DATASYNC__V1__GET_RESPONSE__INIT;

	(void) state;
	record_init(&rec, "doc", 1);
	rec.content_type = "";
	resp.record = &rec;
	plan(&p, "GET", "/v1/records/doc", NULL, NOH);
	gw_plan_step(&core, &p, &resp.base, &ok_status);
	assert_string_equal(
	    hdr(&p, "Content-Type"), "application/octet-stream");
	gw_plan_fini(&p);

	rec.content_type = "text/html\r\nSet-Cookie: x=1";
	plan(&p, "GET", "/v1/records/doc", NULL, NOH);
	gw_plan_step(&core, &p, &resp.base, &ok_status);
	assert_string_equal(
	    hdr(&p, "Content-Type"), "application/octet-stream");
	assert_null(hdr(&p, "Set-Cookie"));
	gw_plan_fini(&p);
}

static void
test_get_if_none_match_hit_is_304_with_etag_and_lock(void **state)
{
	static const char *const hits[] = {
	    "\"7\"", "W/\"7\"", "\"1\", \"7\"", "*"};
	Datasync__V1__Record rec;
	Datasync__V1__LockInfo lock = DATASYNC__V1__LOCK_INFO__INIT;
	Datasync__V1__GetResponse resp = DATASYNC__V1__GET_RESPONSE__INIT;
	gw_plan p;

	(void) state;
	record_init(&rec, "doc", 7);
	lock.owner = "bob";
	rec.lock = &lock;
	resp.record = &rec;
	for (size_t i = 0; i < sizeof(hits) / sizeof(hits[0]); i++) {
		plan(&p, "GET", "/v1/records/doc", NULL,
		    H({"If-None-Match", hits[i]}));
		gw_plan_step(&core, &p, &resp.base, &ok_status);
		assert_int_equal(p.resp.status, 304);
		assert_int_equal(p.resp.body_len, 0);
		assert_string_equal(hdr(&p, "ETag"), "\"7\"");
		assert_string_equal(hdr(&p, "Lock-Owner"), "bob");
		gw_plan_fini(&p);
	}
	plan(
	    &p, "GET", "/v1/records/doc", NULL, H({"If-None-Match", "\"6\""}));
	gw_plan_step(&core, &p, &resp.base, &ok_status);
	assert_int_equal(p.resp.status, 200);
	gw_plan_fini(&p);
}

static void
test_head_plans_like_get(void **state)
{
	gw_plan p;

	(void) state;
	plan(&p, "HEAD", "/v1/records/doc", NULL, NOH);
	assert_int_equal(p.kind, GW_PLAN_RPC);
	assert_true(p.head);
	assert_ptr_equal(p.rpc, core.ops[GW_OP_GET]);
	gw_plan_fini(&p);
}

static void
test_get_errors_map_to_404_410_and_bad_input_to_400(void **state)
{
	gw_plan p;
	nrpc_status st;

	(void) state;
	plan(&p, "GET", "/v1/records/nope", NULL, NOH);
	status_set(&st, NRPC_NOT_FOUND, "NOT_FOUND", "key");
	gw_plan_step(&core, &p, NULL, &st);
	assert_error(&p, 404, "NOT_FOUND", "NOT_FOUND");
	nrpc_status_fini(&st);
	gw_plan_fini(&p);

	plan(&p, "GET", "/v1/records/doc?version=1", NULL, NOH);
	status_set(&st, NRPC_OUT_OF_RANGE, "VERSION_COMPACTED", "version");
	gw_plan_step(&core, &p, NULL, &st);
	assert_error(&p, 410, "OUT_OF_RANGE", "VERSION_COMPACTED");
	nrpc_status_fini(&st);
	gw_plan_fini(&p);

	plan(&p, "GET", "/v1/records/doc?version=x", NULL, NOH);
	assert_error(&p, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT");
	gw_plan_fini(&p);
	plan(&p, "GET", "/v1/records/a%zz", NULL, NOH);
	assert_error(&p, 400, "INVALID_ARGUMENT", "INVALID_ENCODING");
	gw_plan_fini(&p);
	plan(&p, "GET", "/v1/records/a%00b", NULL, NOH);
	assert_error(&p, 400, "INVALID_ARGUMENT", "INVALID_ENCODING");
	gw_plan_fini(&p);
	plan(&p, "GET", "/v1/records/%FF", NULL, NOH);
	assert_error(&p, 400, "INVALID_ARGUMENT", "INVALID_ENCODING");
	gw_plan_fini(&p);
	plan(&p, "GET", "/v1/records/", NULL, NOH);
	assert_error(&p, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT");
	gw_plan_fini(&p);
}

/* --- PUT --- */

static void
test_put_without_precondition_is_428(void **state)
{
	gw_plan p;

	(void) state;
	plan(&p, "PUT", "/v1/records/doc", "v", NOH);
	assert_error(&p, 428, "FAILED_PRECONDITION", "PRECONDITION_REQUIRED");
	gw_plan_fini(&p);
}

static void
test_put_if_match_plans_update_with_every_header(void **state)
{
	gw_plan p;
	const Datasync__V1__UpdateRequest *u;

	(void) state;
	plan(&p, "PUT", "/v1/records/doc", "new value",
	    H({"If-Match", "\"3\""}, {"Content-Type", "text/markdown"},
	        {"Lock-Token", "0123456789abcdef0123456789abcdef"},
	        {"Idempotency-Key", "req-1"}, {"Author", "J%C3%BCrgen"},
	        {"Content-Length", "9"}));
	assert_int_equal(p.kind, GW_PLAN_RPC);
	assert_ptr_equal(p.rpc, core.ops[GW_OP_UPDATE]);
	u = (const Datasync__V1__UpdateRequest *) p.req;
	assert_string_equal(u->key, "doc");
	assert_int_equal(u->value.len, 9);
	assert_memory_equal(u->value.data, "new value", 9);
	assert_string_equal(u->content_type, "text/markdown");
	assert_string_equal(u->lock_token, "0123456789abcdef0123456789abcdef");
	assert_string_equal(u->request_id, "req-1");
	assert_string_equal(u->author, "J\xc3\xbcrgen");
	assert_int_equal(u->precondition->kind_case,
	    DATASYNC__V1__PRECONDITION__KIND_IF_VERSION);
	assert_int_equal(u->precondition->if_version, 3);
	gw_plan_fini(&p);
}

static void
test_put_star_and_if_none_match_star(void **state)
{
	gw_plan p;
	const Datasync__V1__UpdateRequest *u;

	(void) state;
	plan(&p, "PUT", "/v1/records/doc", "v", H({"If-Match", "*"}));
	u = (const Datasync__V1__UpdateRequest *) p.req;
	assert_int_equal(u->precondition->kind_case,
	    DATASYNC__V1__PRECONDITION__KIND_IF_EXISTS);
	assert_true(u->precondition->if_exists);
	assert_string_equal(u->content_type, "");
	gw_plan_fini(&p);

	plan(&p, "PUT", "/v1/records/doc", "v", H({"If-None-Match", "*"}));
	u = (const Datasync__V1__UpdateRequest *) p.req;
	assert_int_equal(u->precondition->kind_case,
	    DATASYNC__V1__PRECONDITION__KIND_IF_ABSENT);
	gw_plan_fini(&p);

	plan(&p, "PUT", "/v1/records/doc", "v", H({"If-None-Match", "\"1\""}));
	assert_error(&p, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT");
	gw_plan_fini(&p);
	plan(&p, "PUT", "/v1/records/doc", "v",
	    H({"If-Match", "\"1\""}, {"If-None-Match", "*"}));
	assert_error(&p, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT");
	gw_plan_fini(&p);
	plan(&p, "PUT", "/v1/records/doc", "v",
	    H({"Author", "100%"}, {"If-Match", "*"}));
	assert_error(&p, 400, "INVALID_ARGUMENT", "INVALID_ENCODING");
	gw_plan_fini(&p);
}

static void
test_put_success_renders_record_json_without_value(void **state)
{
	gw_plan p;
	Datasync__V1__Record rec;
	Datasync__V1__UpdateResponse resp =
	    DATASYNC__V1__UPDATE_RESPONSE__INIT;
	json_t *j;

	(void) state;
	record_init(&rec, "doc", 4);
	resp.record = &rec;
	plan(&p, "PUT", "/v1/records/doc", "hello", H({"If-Match", "\"3\""}));
	gw_plan_step(&core, &p, &resp.base, &ok_status);
	assert_int_equal(p.resp.status, 200);
	assert_string_equal(hdr(&p, "ETag"), "\"4\"");
	assert_string_equal(hdr(&p, "Content-Type"), "application/json");
	j = body_json(&p);
	assert_string_equal(jstr(j, "key"), "doc");
	assert_string_equal(jstr(j, "version"), "4");
	assert_string_equal(jstr(j, "contentType"), "text/plain");
	assert_null(json_object_get(j, "value"));
	json_decref(j);
	gw_plan_fini(&p);

	/* Created: 201. */
	rec.version = 1;
	plan(&p, "PUT", "/v1/records/doc", "hello", H({"If-None-Match", "*"}));
	gw_plan_step(&core, &p, &resp.base, &ok_status);
	assert_int_equal(p.resp.status, 201);
	assert_string_equal(hdr(&p, "ETag"), "\"1\"");
	gw_plan_fini(&p);
}

static void
test_put_conflict_is_412_with_current_record_and_its_etag(void **state)
{
	gw_plan p;
	Datasync__V1__Record cur;
	nrpc_status st;
	json_t *j;

	(void) state;
	record_init(&cur, "doc", 5);
	plan(&p, "PUT", "/v1/records/doc", "mine", H({"If-Match", "\"3\""}));
	status_set(&st, NRPC_ABORTED, "VERSION_CONFLICT", NULL);
	status_detail(&st, &cur);
	gw_plan_step(&core, &p, NULL, &st);
	assert_error(&p, 412, "ABORTED", "VERSION_CONFLICT");
	assert_string_equal(hdr(&p, "ETag"), "\"5\"");
	j = body_json(&p);
	assert_string_equal(jstr(j, "current.version"), "5");
	assert_string_equal(jstr(j, "current.value"), "aGVsbG8=");
	assert_string_equal(jstr(j, "current.updatedBy"), "J\xc3\xbcrgen");
	json_decref(j);
	assert_true(p.resp.events & GW_EV_CONFLICT);
	nrpc_status_fini(&st);
	gw_plan_fini(&p);
}

static void
test_put_locked_is_423_with_owner_expiry_and_retry_after(void **state)
{
	gw_plan p;
	Datasync__V1__Record cur;
	Datasync__V1__LockInfo lock = DATASYNC__V1__LOCK_INFO__INIT;
	nrpc_status st;
	json_t *j;

	(void) state;
	record_init(&cur, "doc", 5);
	cur.value.len = 0;
	lock.owner = "alice";
	lock.expires_at_ms = NOW_MS + 12500;
	lock.fencing_token = 77;
	cur.lock = &lock;
	plan(&p, "PUT", "/v1/records/doc", "mine", H({"If-Match", "\"5\""}));
	status_set(&st, NRPC_FAILED_PRECONDITION, "LOCKED", NULL);
	status_detail(&st, &cur);
	gw_plan_step(&core, &p, NULL, &st);
	assert_error(&p, 423, "FAILED_PRECONDITION", "LOCKED");
	assert_string_equal(hdr(&p, "Lock-Owner"), "alice");
	assert_string_equal(hdr(&p, "Lock-Expires-At"), "1700000012500");
	assert_string_equal(hdr(&p, "Retry-After"), "13");
	j = body_json(&p);
	assert_string_equal(jstr(j, "current.lock.owner"), "alice");
	assert_string_equal(
	    jstr(j, "current.lock.expiresAtMs"), "1700000012500");
	json_decref(j);
	assert_true(p.resp.events & GW_EV_LOCK_REFUSED);
	nrpc_status_fini(&st);
	gw_plan_fini(&p);
}

static void
test_put_if_match_list_plans_one_update_with_the_version_set(void **state)
{
	gw_plan p;
	const Datasync__V1__UpdateRequest *u;
	const Datasync__V1__DeleteRequest *d;

	(void) state;
	/* Weak tags and tags that are not ours can never match strongly:
	 * they are left out of the set. No Get first: the store checks the
	 * set inside the write, so a retry with the same Idempotency-Key
	 * hashes the same request and replays. */
	plan(&p, "PUT", "/v1/records/doc", "v",
	    H({"If-Match", "\"4\", \"6\", W/\"7\", \"x\", \"0\""},
	        {"Idempotency-Key", "k"}));
	assert_int_equal(p.kind, GW_PLAN_RPC);
	assert_ptr_equal(p.rpc, core.ops[GW_OP_UPDATE]);
	assert_false(p.read_current);
	u = (const Datasync__V1__UpdateRequest *) p.req;
	assert_string_equal(u->key, "doc");
	assert_string_equal(u->request_id, "k");
	assert_int_equal(u->precondition->kind_case,
	    DATASYNC__V1__PRECONDITION__KIND_IF_VERSION_IN);
	assert_non_null(u->precondition->if_version_in);
	assert_int_equal(u->precondition->if_version_in->n_versions, 2);
	assert_int_equal(u->precondition->if_version_in->versions[0], 4);
	assert_int_equal(u->precondition->if_version_in->versions[1], 6);
	gw_plan_fini(&p);

	plan(&p, "DELETE", "/v1/records/doc", NULL,
	    H({"If-Match", "\"1\",\"2\""}));
	assert_ptr_equal(p.rpc, core.ops[GW_OP_DELETE]);
	d = (const Datasync__V1__DeleteRequest *) p.req;
	assert_int_equal(d->precondition->kind_case,
	    DATASYNC__V1__PRECONDITION__KIND_IF_VERSION_IN);
	assert_int_equal(d->precondition->if_version_in->n_versions, 2);
	gw_plan_fini(&p);
}

static void
test_put_if_match_list_conflict_is_412_with_current_record(void **state)
{
	gw_plan p;
	Datasync__V1__Record cur;
	nrpc_status st;
	json_t *j;

	(void) state;
	record_init(&cur, "doc", 5);
	plan(&p, "PUT", "/v1/records/doc", "mine",
	    H({"If-Match", "\"3\", \"4\""}));
	status_set(&st, NRPC_ABORTED, "VERSION_CONFLICT", NULL);
	status_detail(&st, &cur);
	assert_int_equal(gw_plan_step(&core, &p, NULL, &st), GW_PLAN_RESPOND);
	assert_error(&p, 412, "ABORTED", "VERSION_CONFLICT");
	assert_string_equal(hdr(&p, "ETag"), "\"5\"");
	j = body_json(&p);
	assert_string_equal(jstr(j, "current.version"), "5");
	json_decref(j);
	nrpc_status_fini(&st);
	gw_plan_fini(&p);
}

static void
test_writes_carry_the_peer_as_caller_and_the_gateway_as_author(void **state)
{
	gw_plan p;
	gw_request req;
	const gw_header hs[] = {{"If-Match", "\"1\""}, {NULL, NULL}};

	(void) state;
	memset(&req, 0, sizeof(req));
	req.method = "PUT";
	req.uri = "/v1/records/doc";
	req.headers = hs;
	req.n_headers = 1;
	req.peer = "192.0.2.7";
	gw_plan_init(&p);
	gw_plan_request(&core, &req, &p);
	assert_int_equal(p.kind, GW_PLAN_RPC);
	assert_string_equal(p.caller, "http:192.0.2.7");
	/* Without an Author header updated_by stays the gateway's name, not
	 * the peer's address (shown to every reader). */
	assert_string_equal(
	    ((const Datasync__V1__UpdateRequest *) p.req)->author,
	    GW_DEFAULT_AUTHOR);
	gw_plan_fini(&p);

	req.peer = "2001:db8::1";
	req.method = "GET";
	req.n_headers = 0;
	gw_plan_init(&p);
	gw_plan_request(&core, &req, &p);
	assert_string_equal(p.caller, "http:2001:db8::1");
	gw_plan_fini(&p);

	/* Unknown peer: no override, the gateway's own client name. */
	req.peer = NULL;
	gw_plan_init(&p);
	gw_plan_request(&core, &req, &p);
	assert_int_equal(p.kind, GW_PLAN_RPC);
	assert_null(p.caller);
	gw_plan_fini(&p);
}

static void
test_put_if_match_list_or_weak_tag_without_match_is_412(void **state)
{
	gw_plan p;
	Datasync__V1__Record cur;
	Datasync__V1__GetResponse got = DATASYNC__V1__GET_RESPONSE__INIT;
	nrpc_status nf;
	json_t *j;

	(void) state;
	record_init(&cur, "doc", 7);
	got.record = &cur;
	/* W/"7" names the current version but never matches strongly. */
	plan(&p, "PUT", "/v1/records/doc", "v", H({"If-Match", "W/\"7\""}));
	assert_int_equal(
	    gw_plan_step(&core, &p, &got.base, &ok_status), GW_PLAN_RESPOND);
	assert_error(&p, 412, "ABORTED", "VERSION_CONFLICT");
	assert_string_equal(hdr(&p, "ETag"), "\"7\"");
	j = body_json(&p);
	assert_string_equal(jstr(j, "current.version"), "7");
	json_decref(j);
	gw_plan_fini(&p);

	/* Only tags that cannot match, on a key that does not exist. */
	plan(&p, "PUT", "/v1/records/doc", "v",
	    H({"If-Match", "W/\"1\", \"x\""}));
	assert_true(p.read_current);
	status_set(&nf, NRPC_NOT_FOUND, "NOT_FOUND", NULL);
	gw_plan_step(&core, &p, NULL, &nf);
	assert_error(&p, 412, "ABORTED", "VERSION_CONFLICT");
	assert_null(hdr(&p, "ETag"));
	nrpc_status_fini(&nf);
	gw_plan_fini(&p);
}

static void
test_put_body_over_max_value_bytes_is_413_unread(void **state)
{
	gw_plan p;
	char body[1002];

	(void) state;
	memset(body, 'x', sizeof(body));
	body[1000] = '\0';
	plan(&p, "PUT", "/v1/records/doc", body,
	    H({"If-Match", "*"}, {"Content-Length", "1000"}));
	assert_int_equal(p.kind, GW_PLAN_RPC);
	gw_plan_fini(&p);
	body[1000] = 'x';
	body[1001] = '\0';
	plan(&p, "PUT", "/v1/records/doc", body,
	    H({"If-Match", "*"}, {"Content-Length", "1001"}));
	assert_error(&p, 413, "INVALID_ARGUMENT", "TOO_LARGE");
	assert_true(p.resp.close);
	gw_plan_fini(&p);

	plan(&p, "PUT", "/v1/records/doc", "x",
	    H({"If-Match", "*"}, {"Transfer-Encoding", "chunked"}));
	assert_error(&p, 411, "INVALID_ARGUMENT", "LENGTH_REQUIRED");
	gw_plan_fini(&p);
}

static void
test_put_store_too_large_value_is_413_other_fields_400(void **state)
{
	gw_plan p;
	nrpc_status st;

	(void) state;
	plan(&p, "PUT", "/v1/records/doc", "v", H({"If-Match", "*"}));
	status_set(&st, NRPC_INVALID_ARGUMENT, "TOO_LARGE", "value");
	gw_plan_step(&core, &p, NULL, &st);
	assert_error(&p, 413, "INVALID_ARGUMENT", "TOO_LARGE");
	nrpc_status_fini(&st);
	gw_plan_fini(&p);

	plan(&p, "PUT", "/v1/records/doc", "v", H({"If-Match", "*"}));
	status_set(&st, NRPC_INVALID_ARGUMENT, "TOO_LARGE", "content_type");
	gw_plan_step(&core, &p, NULL, &st);
	assert_error(&p, 400, "INVALID_ARGUMENT", "TOO_LARGE");
	nrpc_status_fini(&st);
	gw_plan_fini(&p);
}

/* --- DELETE --- */

static void
test_delete_plans_and_renders_204_with_tombstone_etag(void **state)
{
	gw_plan p;
	Datasync__V1__DeleteResponse resp =
	    DATASYNC__V1__DELETE_RESPONSE__INIT;
	const Datasync__V1__DeleteRequest *d;

	(void) state;
	plan(&p, "DELETE", "/v1/records/doc", NULL,
	    H({"If-Match", "\"4\""}, {"Lock-Token", "t"}));
	assert_ptr_equal(p.rpc, core.ops[GW_OP_DELETE]);
	d = (const Datasync__V1__DeleteRequest *) p.req;
	assert_string_equal(d->key, "doc");
	assert_string_equal(d->lock_token, "t");
	assert_int_equal(d->precondition->if_version, 4);
	resp.version = 5;
	resp.revision = 99;
	gw_plan_step(&core, &p, &resp.base, &ok_status);
	assert_int_equal(p.resp.status, 204);
	assert_int_equal(p.resp.body_len, 0);
	assert_string_equal(hdr(&p, "ETag"), "\"5\"");
	gw_plan_fini(&p);

	plan(&p, "DELETE", "/v1/records/doc", NULL, NOH);
	assert_error(&p, 428, "FAILED_PRECONDITION", "PRECONDITION_REQUIRED");
	gw_plan_fini(&p);
}

/* --- locks --- */

static void
test_lock_plans_from_json_body_and_renders_token(void **state)
{
	gw_plan p;
	const Datasync__V1__LockRequest *l;
	Datasync__V1__LockResponse resp = DATASYNC__V1__LOCK_RESPONSE__INIT;
	Datasync__V1__LockInfo info = DATASYNC__V1__LOCK_INFO__INIT;
	json_t *j;

	(void) state;
	plan(&p, "POST", "/v1/records/a%2Fb/lock",
	    "{\"owner\": \"alice\", \"ttlMs\": 30000}", NOH);
	assert_int_equal(p.kind, GW_PLAN_RPC);
	assert_ptr_equal(p.rpc, core.ops[GW_OP_LOCK]);
	l = (const Datasync__V1__LockRequest *) p.req;
	assert_string_equal(l->key, "a/b");
	assert_string_equal(l->owner, "alice");
	assert_int_equal(l->ttl_ms, 30000);
	assert_string_equal(l->lock_token, "");
	info.owner = "alice";
	info.expires_at_ms = NOW_MS + 30000;
	info.fencing_token = 12;
	resp.lock_token = "00112233445566778899aabbccddeeff";
	resp.lock = &info;
	resp.version = 3;
	gw_plan_step(&core, &p, &resp.base, &ok_status);
	assert_int_equal(p.resp.status, 200);
	assert_string_equal(
	    hdr(&p, "Lock-Token"), "00112233445566778899aabbccddeeff");
	assert_string_equal(hdr(&p, "Lock-Fencing-Token"), "12");
	assert_string_equal(hdr(&p, "Cache-Control"), "no-store");
	j = body_json(&p);
	assert_string_equal(
	    jstr(j, "lockToken"), "00112233445566778899aabbccddeeff");
	assert_string_equal(jstr(j, "lock.fencingToken"), "12");
	assert_string_equal(jstr(j, "version"), "3");
	json_decref(j);
	assert_true(p.resp.events & GW_EV_LOCK_ACQUIRED);
	gw_plan_fini(&p);
}

static void
test_lock_renewal_token_from_header_and_original_names(void **state)
{
	gw_plan p;
	const Datasync__V1__LockRequest *l;

	(void) state;
	plan(&p, "POST", "/v1/records/doc/lock",
	    "{\"owner\": \"alice\", \"ttl_ms\": \"5000\"}",
	    H({"Lock-Token", "tok"}));
	l = (const Datasync__V1__LockRequest *) p.req;
	assert_string_equal(l->lock_token, "tok");
	assert_int_equal(l->ttl_ms, 5000);
	gw_plan_fini(&p);

	plan(&p, "POST", "/v1/records/doc/lock", "{\"lockToken\": \"a\"}",
	    H({"Lock-Token", "b"}));
	assert_error(&p, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT");
	gw_plan_fini(&p);
	plan(&p, "POST", "/v1/records/doc/lock", "{\"key\": \"other\"}", NOH);
	assert_error(&p, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT");
	gw_plan_fini(&p);
}

static void
test_lock_body_errors_name_position_and_field(void **state)
{
	gw_plan p;
	json_t *j;

	(void) state;
	plan(&p, "POST", "/v1/records/doc/lock", "{\"owner\": ", NOH);
	assert_error(&p, 400, "INVALID_ARGUMENT", "MALFORMED_JSON");
	j = body_json(&p);
	assert_non_null(strstr(jstr(j, "message"), "position"));
	json_decref(j);
	gw_plan_fini(&p);

	plan(&p, "POST", "/v1/records/doc/lock", "{\"ownr\": \"x\"}", NOH);
	assert_error(&p, 400, "INVALID_ARGUMENT", "UNKNOWN_FIELD");
	j = body_json(&p);
	assert_non_null(strstr(jstr(j, "message"), "ownr"));
	assert_string_equal(jstr(j, "field"), "ownr");
	json_decref(j);
	gw_plan_fini(&p);
}

static void
test_lock_held_by_other_is_423(void **state)
{
	gw_plan p;
	nrpc_status st;

	(void) state;
	plan(&p, "POST", "/v1/records/doc/lock", "{\"owner\":\"bob\"}", NOH);
	status_set(&st, NRPC_FAILED_PRECONDITION, "LOCKED", NULL);
	gw_plan_step(&core, &p, NULL, &st);
	assert_error(&p, 423, "FAILED_PRECONDITION", "LOCKED");
	assert_string_equal(hdr(&p, "Retry-After"), "1");
	nrpc_status_fini(&st);
	gw_plan_fini(&p);
}

static void
test_unlock_by_header_body_and_post_unlock(void **state)
{
	gw_plan p;
	const Datasync__V1__UnlockRequest *u;
	Datasync__V1__UnlockResponse resp =
	    DATASYNC__V1__UNLOCK_RESPONSE__INIT;

	(void) state;
	plan(&p, "DELETE", "/v1/records/doc/lock", NULL,
	    H({"Lock-Token", "t1"}));
	assert_ptr_equal(p.rpc, core.ops[GW_OP_UNLOCK]);
	u = (const Datasync__V1__UnlockRequest *) p.req;
	assert_string_equal(u->key, "doc");
	assert_string_equal(u->lock_token, "t1");
	gw_plan_step(&core, &p, &resp.base, &ok_status);
	assert_int_equal(p.resp.status, 204);
	gw_plan_fini(&p);

	plan(&p, "DELETE", "/v1/records/doc/lock", "{\"lockToken\":\"t2\"}",
	    NOH);
	u = (const Datasync__V1__UnlockRequest *) p.req;
	assert_string_equal(u->lock_token, "t2");
	gw_plan_fini(&p);

	/* navigator.sendBeacon: POST, text/plain, no custom headers. */
	plan(&p, "POST", "/v1/records/doc/unlock", "{\"lockToken\":\"t3\"}",
	    H({"Content-Type", "text/plain;charset=UTF-8"}));
	u = (const Datasync__V1__UnlockRequest *) p.req;
	assert_string_equal(u->lock_token, "t3");
	gw_plan_fini(&p);

	plan(&p, "POST", "/v1/records/doc/unlock", NULL, NOH);
	assert_error(&p, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT");
	gw_plan_fini(&p);
}

static void
test_unlock_refusals_are_403_and_409(void **state)
{
	gw_plan p;
	nrpc_status st;

	(void) state;
	plan(&p, "DELETE", "/v1/records/doc/lock", NULL,
	    H({"Lock-Token", "x"}));
	status_set(&st, NRPC_PERMISSION_DENIED, "LOCK_TOKEN_MISMATCH", NULL);
	gw_plan_step(&core, &p, NULL, &st);
	assert_error(&p, 403, "PERMISSION_DENIED", "LOCK_TOKEN_MISMATCH");
	nrpc_status_fini(&st);
	gw_plan_fini(&p);

	plan(&p, "DELETE", "/v1/records/doc/lock", NULL,
	    H({"Lock-Token", "x"}));
	status_set(&st, NRPC_FAILED_PRECONDITION, "NOT_LOCKED", NULL);
	gw_plan_step(&core, &p, NULL, &st);
	assert_error(&p, 409, "FAILED_PRECONDITION", "NOT_LOCKED");
	nrpc_status_fini(&st);
	gw_plan_fini(&p);
}

/* --- list --- */

static void
test_list_plans_query_and_renders_json(void **state)
{
	gw_plan p;
	const Datasync__V1__ListRequest *l;
	Datasync__V1__ListResponse resp = DATASYNC__V1__LIST_RESPONSE__INIT;
	Datasync__V1__Record rec, *recs[1] = {&rec};
	json_t *j;

	(void) state;
	plan(&p, "GET",
	    "/v1/records?prefix=my+docs%2F&pageSize=2&pageToken=abc", NULL,
	    NOH);
	assert_ptr_equal(p.rpc, core.ops[GW_OP_LIST]);
	l = (const Datasync__V1__ListRequest *) p.req;
	assert_string_equal(l->prefix, "my docs/");
	assert_int_equal(l->page_size, 2);
	assert_string_equal(l->page_token, "abc");
	record_init(&rec, "my docs/a", 2);
	rec.value.len = 0;
	resp.records = recs;
	resp.n_records = 1;
	resp.next_page_token = "next";
	gw_plan_step(&core, &p, &resp.base, &ok_status);
	assert_int_equal(p.resp.status, 200);
	j = body_json(&p);
	assert_string_equal(jstr(j, "nextPageToken"), "next");
	assert_string_equal(
	    json_string_value(json_object_get(
	        json_array_get(json_object_get(j, "records"), 0), "key")),
	    "my docs/a");
	json_decref(j);
	gw_plan_fini(&p);

	plan(&p, "GET", "/v1/records?pageSize=4294967296", NULL, NOH);
	assert_error(&p, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT");
	gw_plan_fini(&p);
	plan(&p, "GET", "/v1/records", NULL, NOH);
	l = (const Datasync__V1__ListRequest *) p.req;
	assert_string_equal(l->prefix, "");
	assert_int_equal(l->page_size, 0);
	gw_plan_fini(&p);
}

/* --- /rpc/ --- */

static void
test_rpc_decodes_body_with_the_methods_input_type(void **state)
{
	gw_plan p;
	const Datasync__V1__UpdateRequest *u;

	(void) state;
	plan(&p, "POST", "/rpc/datasync.v1.DataSync/Update",
	    "{\"key\":\"k\",\"value\":\"aGk=\",\"precondition\":{"
	    "\"ifVersion\":\"2\"}}",
	    H({"Idempotency-Key", "abc"}));
	assert_int_equal(p.kind, GW_PLAN_RPC);
	assert_string_equal(p.rpc->full_name, "/datasync.v1.DataSync/Update");
	assert_ptr_equal(
	    p.req->descriptor, &datasync__v1__update_request__descriptor);
	u = (const Datasync__V1__UpdateRequest *) p.req;
	assert_string_equal(u->key, "k");
	assert_int_equal(u->value.len, 2);
	assert_int_equal(u->precondition->if_version, 2);
	assert_string_equal(p.call_request_id, "abc");
	gw_plan_fini(&p);

	/* An empty body is an empty message. */
	plan(&p, "POST", "/rpc/datasync.v1.DataSync/List", NULL, NOH);
	assert_int_equal(p.kind, GW_PLAN_RPC);
	gw_plan_fini(&p);
}

static void
test_rpc_renders_proto3_json_and_conflicts_as_409(void **state)
{
	gw_plan p;
	Datasync__V1__Record rec;
	Datasync__V1__GetResponse resp = DATASYNC__V1__GET_RESPONSE__INIT;
	nrpc_status st;
	json_t *j;

	(void) state;
	record_init(&rec, "k", 3);
	resp.record = &rec;
	plan(&p, "POST", "/rpc/datasync.v1.DataSync/Get", "{\"key\":\"k\"}",
	    NOH);
	gw_plan_step(&core, &p, &resp.base, &ok_status);
	assert_int_equal(p.resp.status, 200);
	j = body_json(&p);
	assert_string_equal(jstr(j, "record.version"), "3");
	assert_string_equal(jstr(j, "record.value"), "aGVsbG8=");
	json_decref(j);
	gw_plan_fini(&p);

	plan(&p, "POST", "/rpc/datasync.v1.DataSync/Update",
	    "{\"key\":\"k\",\"precondition\":{\"ifVersion\":\"1\"}}", NOH);
	status_set(&st, NRPC_ABORTED, "VERSION_CONFLICT", NULL);
	status_detail(&st, &rec);
	gw_plan_step(&core, &p, NULL, &st);
	assert_error(&p, 409, "ABORTED", "VERSION_CONFLICT");
	j = body_json(&p);
	assert_string_equal(jstr(j, "current.version"), "3");
	json_decref(j);
	nrpc_status_fini(&st);
	gw_plan_fini(&p);
}

static void
test_rpc_unknown_method_malformed_json_and_unknown_field(void **state)
{
	gw_plan p;
	json_t *j;

	(void) state;
	plan(&p, "POST", "/rpc/datasync.v1.DataSync/Frob", "{}", NOH);
	assert_error(&p, 404, "UNIMPLEMENTED", "UNKNOWN_METHOD");
	gw_plan_fini(&p);
	plan(&p, "POST", "/rpc/nope", "{}", NOH);
	assert_error(&p, 404, "UNIMPLEMENTED", "UNKNOWN_METHOD");
	gw_plan_fini(&p);

	plan(
	    &p, "POST", "/rpc/datasync.v1.DataSync/Get", "{\"key\": 1,}", NOH);
	assert_int_equal(p.resp.status, 400);
	gw_plan_fini(&p);
	plan(&p, "POST", "/rpc/datasync.v1.DataSync/Get", "{\"key\" \"k\"}",
	    NOH);
	assert_error(&p, 400, "INVALID_ARGUMENT", "MALFORMED_JSON");
	j = body_json(&p);
	assert_non_null(strstr(jstr(j, "message"), "line 1"));
	json_decref(j);
	gw_plan_fini(&p);

	plan(&p, "POST", "/rpc/datasync.v1.DataSync/Get",
	    "{\"key\":\"k\",\"bogus\":1}", NOH);
	assert_error(&p, 400, "INVALID_ARGUMENT", "UNKNOWN_FIELD");
	j = body_json(&p);
	assert_string_equal(jstr(j, "field"), "bogus");
	json_decref(j);
	gw_plan_fini(&p);

	plan(&p, "GET", "/rpc/datasync.v1.DataSync/Get", NULL, NOH);
	assert_error(&p, 405, "UNIMPLEMENTED", "METHOD_NOT_ALLOWED");
	assert_string_equal(hdr(&p, "Allow"), "POST, OPTIONS");
	gw_plan_fini(&p);
}

static void
test_rpc_call_failures_map_by_code(void **state)
{
	gw_plan p;
	nrpc_status st;

	(void) state;
	plan(&p, "POST", "/rpc/datasync.v1.DataSync/Get", "{}", NOH);
	status_set(&st, NRPC_UNAVAILABLE, "UNAVAILABLE", NULL);
	gw_plan_fail(&core, &p, &st);
	assert_error(&p, 503, "UNAVAILABLE", "UNAVAILABLE");
	assert_string_equal(hdr(&p, "Retry-After"), "1");
	nrpc_status_fini(&st);
	gw_plan_fini(&p);

	plan(&p, "POST", "/rpc/datasync.v1.DataSync/Get", "{}", NOH);
	status_set(&st, NRPC_DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED", NULL);
	gw_plan_step(&core, &p, NULL, &st);
	assert_error(&p, 504, "DEADLINE_EXCEEDED", "DEADLINE_EXCEEDED");
	nrpc_status_fini(&st);
	gw_plan_fini(&p);
}

/* --- the rest --- */

static void
test_wrong_method_is_405_with_allow(void **state)
{
	gw_plan p;

	(void) state;
	plan(&p, "POST", "/v1/records/doc", "x", NOH);
	assert_error(&p, 405, "UNIMPLEMENTED", "METHOD_NOT_ALLOWED");
	assert_string_equal(
	    hdr(&p, "Allow"), "GET, HEAD, PUT, DELETE, OPTIONS");
	gw_plan_fini(&p);
	plan(&p, "GET", "/v1/records/doc/lock", NULL, NOH);
	assert_error(&p, 405, "UNIMPLEMENTED", "METHOD_NOT_ALLOWED");
	assert_string_equal(hdr(&p, "Allow"), "POST, DELETE, OPTIONS");
	gw_plan_fini(&p);
	plan(&p, "PATCH", "/v1/records", NULL, NOH);
	assert_error(&p, 405, "UNIMPLEMENTED", "METHOD_NOT_ALLOWED");
	assert_string_equal(hdr(&p, "Allow"), "GET, HEAD, OPTIONS");
	gw_plan_fini(&p);
}

static void
test_options_preflight_on_api_routes(void **state)
{
	gw_plan p;

	(void) state;
	plan(&p, "OPTIONS", "/v1/records/doc", NULL,
	    H({"Origin", "https://app.example"},
	        {"Access-Control-Request-Method", "PUT"},
	        {"Access-Control-Request-Headers", "if-match"}));
	assert_int_equal(p.kind, GW_PLAN_RESPOND);
	assert_int_equal(p.resp.status, 204);
	assert_string_equal(
	    hdr(&p, "Access-Control-Allow-Origin"), "https://app.example");
	assert_non_null(hdr(&p, "Access-Control-Allow-Headers"));
	gw_plan_fini(&p);

	plan(&p, "OPTIONS", "/v1/records/doc", NULL,
	    H({"Origin", "https://evil.example"},
	        {"Access-Control-Request-Method", "PUT"}));
	assert_int_equal(p.resp.status, 403);
	assert_null(hdr(&p, "Access-Control-Allow-Origin"));
	gw_plan_fini(&p);
}

static void
test_healthz_metrics_static_and_unknown_routes(void **state)
{
	gw_plan p;

	(void) state;
	plan(&p, "GET", "/healthz", NULL, NOH);
	assert_int_equal(p.resp.status, 200);
	assert_int_equal(p.resp.body_len, 3);
	assert_memory_equal(p.resp.body, "ok\n", 3);
	gw_plan_fini(&p);

	gw_metrics_begin(&metrics);
	gw_metrics_end(&metrics, GW_ROUTE_RECORD, GW_M_GET, 200, 10, 0);
	plan(&p, "GET", "/metrics", NULL, NOH);
	assert_int_equal(p.resp.status, 200);
	assert_non_null(strstr(hdr(&p, "Content-Type"), "version=0.0.4"));
	assert_non_null(memmem(p.resp.body, p.resp.body_len,
	    "datasync_gateway_requests_total{route=\"record\"",
	    strlen("datasync_gateway_requests_total{route=\"record\"")));
	gw_plan_fini(&p);

	plan(&p, "GET", "/css/app.css?v=2", NULL, NOH);
	assert_int_equal(p.kind, GW_PLAN_STATIC);
	assert_string_equal(p.static_rel, "css/app.css");
	gw_plan_fini(&p);
	plan(&p, "GET", "/", NULL, NOH);
	assert_string_equal(p.static_rel, "index.html");
	gw_plan_fini(&p);
	plan(&p, "GET", "/%2e%2e/secret", NULL, NOH);
	assert_error(&p, 400, "INVALID_ARGUMENT", "INVALID_PATH");
	gw_plan_fini(&p);
	plan(&p, "PUT", "/index.html", "x", NOH);
	assert_error(&p, 405, "UNIMPLEMENTED", "METHOD_NOT_ALLOWED");
	gw_plan_fini(&p);
	plan(&p, "GET", "/v1/nothing", NULL, NOH);
	assert_error(&p, 404, "NOT_FOUND", "NOT_FOUND");
	gw_plan_fini(&p);
	plan(&p, "GET", "*", NULL, NOH);
	assert_error(&p, 400, "INVALID_ARGUMENT", "INVALID_PATH");
	gw_plan_fini(&p);
}

static void
test_rest_routes_without_datasync_are_501(void **state)
{
	gw_core bare;
	gw_plan p;
	gw_request req;

	(void) state;
	gw_core_init(&bare, NULL, 0, NULL, 0, 0, NULL, NULL);
	memset(&req, 0, sizeof(req));
	req.method = "GET";
	req.uri = "/v1/records/doc";
	gw_plan_init(&p);
	gw_plan_request(&bare, &req, &p);
	assert_error(&p, 501, "UNIMPLEMENTED", "UNIMPLEMENTED");
	gw_plan_fini(&p);
	req.uri = "/metrics";
	gw_plan_init(&p);
	gw_plan_request(&bare, &req, &p);
	assert_int_equal(p.resp.status, 404);
	gw_plan_fini(&p);
}

static void
test_header_values_stay_one_line(void **state)
{
	gw_response r;
	Datasync__V1__Record rec;
	Datasync__V1__LockInfo lock = DATASYNC__V1__LOCK_INFO__INIT;

	(void) state;
	gw_response_init(&r);
	gw_response_header(&r, "X-Test", "a\r\nSet-Cookie: b\x7f");
	assert_string_equal(
	    gw_response_get_header(&r, "X-Test"), "a??Set-Cookie: b?");
	/* Stored user text is percent-encoded before it gets there. */
	record_init(&rec, "doc", 1);
	rec.updated_by = "eve\r\nX: y";
	lock.owner = "mallory\n";
	rec.lock = &lock;
	gw_render_record_headers(&r, &rec, true);
	assert_string_equal(
	    gw_response_get_header(&r, "Record-Updated-By"), "eve%0D%0AX: y");
	assert_string_equal(
	    gw_response_get_header(&r, "Lock-Owner"), "mallory%0A");
	gw_response_fini(&r);
}

static void
test_find_message_walks_the_service_descriptors(void **state)
{
	(void) state;
	assert_ptr_equal(gw_find_message(&core, "datasync.v1.Record"),
	    &datasync__v1__record__descriptor);
	assert_ptr_equal(gw_find_message(&core, "datasync.v1.LockInfo"),
	    &datasync__v1__lock_info__descriptor);
	assert_null(gw_find_message(&core, "datasync.v1.Nope"));
}

static void
test_plans_survive_allocation_failures(void **state)
{
	/* Fail the Nth allocation for every N a PUT takes: the plan must
	 * come out as some answer (at worst a 500), never crash or leak
	 * (the sanitizer build checks leaks). */
	(void) state;
	for (long n = 0; n < 64; n++) {
		gw_plan p;
		Datasync__V1__Record cur;
		nrpc_status st;

		record_init(&cur, "doc", 5);
		status_set(&st, NRPC_ABORTED, "VERSION_CONFLICT", NULL);
		status_detail(&st, &cur);
		ds_alloc_fail_after(n);
		plan(&p, "PUT", "/v1/records/doc", "v",
		    H({"If-Match", "\"3\""}, {"Author", "me"},
		        {"Origin", "https://app.example"}));
		if (p.kind == GW_PLAN_RPC) {
			gw_plan_step(&core, &p, NULL, &st);
		}
		ds_alloc_fail_reset();
		assert_int_equal(p.kind, GW_PLAN_RESPOND);
		assert_true(p.resp.status == 412 || p.resp.status == 500);
		nrpc_status_fini(&st);
		gw_plan_fini(&p);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_get_plans_get_with_decoded_key_and_version),
	    cmocka_unit_test(test_get_renders_raw_value_and_record_headers),
	    cmocka_unit_test(
	        test_get_empty_or_unsafe_content_type_is_octet_stream),
	    cmocka_unit_test(
	        test_get_if_none_match_hit_is_304_with_etag_and_lock),
	    cmocka_unit_test(test_head_plans_like_get),
	    cmocka_unit_test(
	        test_get_errors_map_to_404_410_and_bad_input_to_400),
	    cmocka_unit_test(test_put_without_precondition_is_428),
	    cmocka_unit_test(test_put_if_match_plans_update_with_every_header),
	    cmocka_unit_test(test_put_star_and_if_none_match_star),
	    cmocka_unit_test(
	        test_put_success_renders_record_json_without_value),
	    cmocka_unit_test(
	        test_put_conflict_is_412_with_current_record_and_its_etag),
	    cmocka_unit_test(
	        test_put_locked_is_423_with_owner_expiry_and_retry_after),
	    cmocka_unit_test(
	        test_put_if_match_list_plans_one_update_with_the_version_set),
	    cmocka_unit_test(
	        test_put_if_match_list_conflict_is_412_with_current_record),
	    cmocka_unit_test(
	        test_writes_carry_the_peer_as_caller_and_the_gateway_as_author),
	    cmocka_unit_test(
	        test_put_if_match_list_or_weak_tag_without_match_is_412),
	    cmocka_unit_test(test_put_body_over_max_value_bytes_is_413_unread),
	    cmocka_unit_test(
	        test_put_store_too_large_value_is_413_other_fields_400),
	    cmocka_unit_test(
	        test_delete_plans_and_renders_204_with_tombstone_etag),
	    cmocka_unit_test(test_lock_plans_from_json_body_and_renders_token),
	    cmocka_unit_test(
	        test_lock_renewal_token_from_header_and_original_names),
	    cmocka_unit_test(test_lock_body_errors_name_position_and_field),
	    cmocka_unit_test(test_lock_held_by_other_is_423),
	    cmocka_unit_test(test_unlock_by_header_body_and_post_unlock),
	    cmocka_unit_test(test_unlock_refusals_are_403_and_409),
	    cmocka_unit_test(test_list_plans_query_and_renders_json),
	    cmocka_unit_test(
	        test_rpc_decodes_body_with_the_methods_input_type),
	    cmocka_unit_test(
	        test_rpc_renders_proto3_json_and_conflicts_as_409),
	    cmocka_unit_test(
	        test_rpc_unknown_method_malformed_json_and_unknown_field),
	    cmocka_unit_test(test_rpc_call_failures_map_by_code),
	    cmocka_unit_test(test_wrong_method_is_405_with_allow),
	    cmocka_unit_test(test_options_preflight_on_api_routes),
	    cmocka_unit_test(test_healthz_metrics_static_and_unknown_routes),
	    cmocka_unit_test(test_rest_routes_without_datasync_are_501),
	    cmocka_unit_test(test_header_values_stay_one_line),
	    cmocka_unit_test(test_find_message_walks_the_service_descriptors),
	    cmocka_unit_test(test_plans_survive_allocation_failures),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
