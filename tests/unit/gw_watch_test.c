/*
 * gw_watch_test.c - watch over HTTP as plain functions: the query of
 * /v1/watch and /v1/events, Last-Event-ID, the Watch each plans and its
 * deadline, the JSON of a long poll, 410 for a compacted cursor, the SSE
 * framing of events, heartbeats and resets, and Lock's waitMs.
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
	gw_core_init(
	    &core, services, 1, cors, 1, 1000, &fclock.base, &metrics);
	return 0;
}

#define H(...) ((const gw_header[]){__VA_ARGS__, {NULL, NULL}})
#define NOH    ((const gw_header[]){{NULL, NULL}})

static void
plan(gw_plan *p, const char *method, const char *uri, const char *body,
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
	req.peer = "127.0.0.1";
	gw_plan_init(p);
	gw_plan_request(&core, &req, p);
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
jstr(json_t *j, const char *name)
{
	json_t *v = json_object_get(j, name);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static void
assert_error(const gw_plan *p, int http, const char *reason, const char *field)
{
	json_t *j;

	assert_int_equal(p->kind, GW_PLAN_RESPOND);
	if (p->resp.status != http) {
		fail_msg("status %d, want %d: %.*s", p->resp.status, http,
		    (int) p->resp.body_len, (const char *) p->resp.body);
	}
	j = body_json(p);
	assert_string_equal(jstr(j, "reason"), reason);
	if (field != NULL) {
		assert_non_null(jstr(j, "field"));
		assert_string_equal(jstr(j, "field"), field);
	}
	json_decref(j);
}

static const Datasync__V1__WatchRequest *
watch_req(const gw_plan *p)
{
	assert_int_equal(p->kind, GW_PLAN_RPC);
	assert_ptr_equal(p->rpc, core.ops[GW_OP_WATCH]);
	assert_string_equal(p->rpc->full_name, "/datasync.v1.DataSync/Watch");
	return (const Datasync__V1__WatchRequest *) p->req;
}

/* A reply with n PUT events at revisions first, first+1, ... */
typedef struct reply {
	Datasync__V1__WatchResponse w;
	Datasync__V1__Event ev[4];
	Datasync__V1__Event *evp[4];
	Datasync__V1__Record rec[4];
} reply;

static void
reply_init(reply *r, size_t n, uint64_t first, uint64_t revision)
{
	Datasync__V1__WatchResponse wi = DATASYNC__V1__WATCH_RESPONSE__INIT;
	Datasync__V1__Event ei = DATASYNC__V1__EVENT__INIT;
	Datasync__V1__Record ri = DATASYNC__V1__RECORD__INIT;

	memset(r, 0, sizeof(*r));
	r->w = wi;
	for (size_t i = 0; i < n; i++) {
		r->rec[i] = ri;
		r->rec[i].key = "doc";
		r->rec[i].version = i + 1;
		r->rec[i].revision = first + i;
		r->ev[i] = ei;
		r->ev[i].type = DATASYNC__V1__EVENT_TYPE__EVENT_PUT;
		r->ev[i].revision = first + i;
		r->ev[i].record = &r->rec[i];
		r->evp[i] = &r->ev[i];
	}
	r->w.n_events = n;
	r->w.events = n > 0 ? r->evp : NULL;
	r->w.revision = revision;
}

static void
status_compacted(nrpc_status *st, uint64_t compact, uint64_t revision)
{
	Datasync__V1__WatchResponse w = DATASYNC__V1__WATCH_RESPONSE__INIT;

	memset(st, 0, sizeof(*st));
	nrpc_status_set(st, NRPC_OUT_OF_RANGE, "REVISION_COMPACTED", NULL,
	    "after_revision 2 is older than the change log");
	w.compact_revision = compact;
	w.revision = revision;
	assert_int_equal(nrpc_status_set_detail(st, &w.base), NRPC_OK);
}

static const nrpc_status ok_status;

/* --- the query --- */

static void
test_args_defaults_and_every_parameter(void **state)
{
	gw_watch_args a;
	nrpc_status st;

	(void) state;
	memset(&st, 0, sizeof(st));
	assert_int_equal(gw_watch_args_parse("", 0, NULL, false, &a, &st), 0);
	assert_null(a.key);
	assert_null(a.prefix);
	assert_int_equal(a.after, 0);
	assert_true(a.from_now); /* no after: from now */
	assert_int_equal(a.timeout_ms, GW_WATCH_TIMEOUT_MS_DEFAULT);
	assert_int_equal(a.limit, 0);
	assert_false(a.with_values);
	gw_watch_args_fini(&a);

	const char *q = "prefix=docs%2F&after=17&timeout=2500&limit=50&"
	                "values=1&_=x";
	assert_int_equal(
	    gw_watch_args_parse(q, strlen(q), NULL, false, &a, &st), 0);
	assert_string_equal(a.prefix, "docs/");
	assert_int_equal(a.after, 17);
	assert_false(a.from_now);
	assert_int_equal(a.timeout_ms, 2500);
	assert_int_equal(a.limit, 50);
	assert_true(a.with_values);
	gw_watch_args_fini(&a);

	q = "key=a+b&timeout=30s&values=false";
	assert_int_equal(
	    gw_watch_args_parse(q, strlen(q), NULL, false, &a, &st), 0);
	assert_string_equal(a.key, "a b");
	assert_int_equal(a.timeout_ms, 30000);
	assert_false(a.with_values);
	gw_watch_args_fini(&a);

	/* after=0 is a cursor (an empty store's revision), not "now". */
	q = "after=0";
	assert_int_equal(
	    gw_watch_args_parse(q, strlen(q), NULL, false, &a, &st), 0);
	assert_int_equal(a.after, 0);
	assert_false(a.from_now);
	gw_watch_args_fini(&a);
	/* A stream resumed by Last-Event-ID is not from now either. */
	assert_int_equal(gw_watch_args_parse("", 0, "0", true, &a, &st), 0);
	assert_int_equal(a.after, 0);
	assert_false(a.from_now);
	gw_watch_args_fini(&a);

	q = "timeout=1m";
	assert_int_equal(
	    gw_watch_args_parse(q, strlen(q), NULL, false, &a, &st), 0);
	assert_int_equal(a.timeout_ms, 60000);
	gw_watch_args_fini(&a);
	q = "timeout=500ms";
	assert_int_equal(
	    gw_watch_args_parse(q, strlen(q), NULL, false, &a, &st), 0);
	assert_int_equal(a.timeout_ms, 500);
	gw_watch_args_fini(&a);
}

static void
expect_bad(const char *q, const char *last_event_id, bool stream,
    const char *field)
{
	gw_watch_args a;
	nrpc_status st;

	memset(&st, 0, sizeof(st));
	if (gw_watch_args_parse(q, strlen(q), last_event_id, stream, &a,
	        &st) != 400) {
		fail_msg("%s: not 400", q);
	}
	assert_int_equal(st.code, NRPC_INVALID_ARGUMENT);
	if (strcmp(st.field, field) != 0) {
		fail_msg("%s: field '%s', want '%s' (%s)", q, st.field, field,
		    st.message);
	}
	assert_null(a.key);
	assert_null(a.prefix);
	nrpc_status_fini(&st);
}

static void
test_args_errors_name_the_parameter(void **state)
{
	(void) state;
	expect_bad("key=a&prefix=b", NULL, false, "prefix");
	expect_bad("key=", NULL, false, "key");
	expect_bad("after=-1", NULL, false, "after");
	expect_bad("after=x", NULL, false, "after");
	expect_bad("after=18446744073709551616", NULL, false, "after");
	expect_bad("timeout=60001", NULL, false, "timeout");
	expect_bad("timeout=61s", NULL, false, "timeout");
	expect_bad("timeout=0", NULL, false, "timeout");
	expect_bad("timeout=soon", NULL, false, "timeout");
	expect_bad("limit=10001", NULL, false, "limit");
	expect_bad("limit=ten", NULL, false, "limit");
	expect_bad("values=yes", NULL, false, "values");
	expect_bad("after=1&after=2", NULL, false, "after");
	expect_bad("prefix=%zz", NULL, false, "prefix");
	expect_bad("after=3", "three", true, "Last-Event-ID");
}

static void
test_last_event_id_overrides_after_on_streams(void **state)
{
	gw_watch_args a;
	nrpc_status st;
	const char *q = "prefix=p&after=5&timeout=99999";

	(void) state;
	memset(&st, 0, sizeof(st));
	/* A stream has no timeout (its waits are the heartbeat): the
	 * parameter is not read at all. */
	assert_int_equal(
	    gw_watch_args_parse(q, strlen(q), "41", true, &a, &st), 0);
	assert_int_equal(a.after, 41);
	gw_watch_args_fini(&a);
	assert_int_equal(
	    gw_watch_args_parse(q, strlen(q), NULL, true, &a, &st), 0);
	assert_int_equal(a.after, 5);
	gw_watch_args_fini(&a);
	/* Even an id lower than after wins: it is what the client saw. */
	assert_int_equal(
	    gw_watch_args_parse(q, strlen(q), "2", true, &a, &st), 0);
	assert_int_equal(a.after, 2);
	gw_watch_args_fini(&a);
}

/* --- long poll --- */

static void
test_watch_plans_one_watch_with_a_deadline_above_the_wait(void **state)
{
	gw_plan p;
	const Datasync__V1__WatchRequest *w;

	(void) state;
	plan(&p, "GET", "/v1/watch?prefix=a%2F&after=7&timeout=45s&limit=3",
	    NULL, NOH);
	w = watch_req(&p);
	assert_int_equal(p.route, GW_ROUTE_WATCH);
	assert_string_equal(w->prefix, "a/");
	assert_string_equal(w->key, "");
	assert_int_equal(w->after_revision, 7);
	assert_int_equal(w->timeout_ms, 45000);
	assert_int_equal(w->limit, 3);
	assert_false(p.stream);
	assert_int_equal(gw_plan_deadline_ms(&p, 10000),
	    45000 + GW_WAIT_DEADLINE_MARGIN_MS);
	/* A gateway configured with a longer deadline keeps it. */
	assert_int_equal(gw_plan_deadline_ms(&p, 600000), 600000);
	gw_plan_fini(&p);

	plan(&p, "GET", "/v1/watch", NULL, NOH);
	w = watch_req(&p);
	assert_int_equal(w->timeout_ms, GW_WATCH_TIMEOUT_MS_DEFAULT);
	assert_int_equal(gw_plan_deadline_ms(&p, 10000),
	    GW_WATCH_TIMEOUT_MS_DEFAULT + GW_WAIT_DEADLINE_MARGIN_MS);
	gw_plan_fini(&p);

	plan(&p, "GET", "/v1/watch?key=k&prefix=p", NULL, NOH);
	assert_error(&p, 400, "INVALID_ARGUMENT", "prefix");
	gw_plan_fini(&p);
	plan(&p, "GET", "/v1/watch?timeout=2m", NULL, NOH);
	assert_error(&p, 400, "INVALID_ARGUMENT", "timeout");
	gw_plan_fini(&p);
	plan(&p, "POST", "/v1/watch", NULL, NOH);
	assert_int_equal(p.resp.status, 405);
	assert_string_equal(
	    gw_response_get_header(&p.resp, "Allow"), "GET, OPTIONS");
	gw_plan_fini(&p);
}

static void
test_watch_renders_proto3_json(void **state)
{
	gw_plan p;
	reply r;
	json_t *j, *ev;

	(void) state;
	plan(&p, "GET", "/v1/watch?key=doc&after=6", NULL,
	    H({"Origin", "https://app.example"}));
	reply_init(&r, 1, 7, 7);
	r.w.compact_revision = 3;
	assert_int_equal(gw_plan_step(&core, &p, &r.w.base, &ok_status),
	    GW_PLAN_RESPOND);
	assert_int_equal(p.resp.status, 200);
	assert_string_equal(gw_response_get_header(&p.resp, "Content-Type"),
	    "application/json");
	assert_string_equal(
	    gw_response_get_header(&p.resp, "Cache-Control"), "no-store");
	assert_string_equal(gw_response_get_header(
	                        &p.resp, "Access-Control-Allow-Origin"),
	    "https://app.example");
	j = body_json(&p);
	assert_string_equal(jstr(j, "revision"), "7");
	assert_string_equal(jstr(j, "compactRevision"), "3");
	ev = json_array_get(json_object_get(j, "events"), 0);
	assert_string_equal(jstr(ev, "type"), "EVENT_PUT");
	assert_string_equal(jstr(ev, "revision"), "7");
	assert_string_equal(
	    json_string_value(json_object_get(
	        json_object_get(ev, "record"), "key")),
	    "doc");
	json_decref(j);
	gw_plan_fini(&p);

	/* Progress: no events, the current revision. */
	plan(&p, "GET", "/v1/watch?after=9", NULL, NOH);
	reply_init(&r, 0, 0, 12);
	(void) gw_plan_step(&core, &p, &r.w.base, &ok_status);
	assert_int_equal(p.resp.status, 200);
	j = body_json(&p);
	assert_null(json_object_get(j, "events"));
	assert_string_equal(jstr(j, "revision"), "12");
	json_decref(j);
	gw_plan_fini(&p);
}

static void
test_compacted_cursor_is_410_with_compact_revision(void **state)
{
	gw_plan p;
	nrpc_status st;
	json_t *j;

	(void) state;
	plan(&p, "GET", "/v1/watch?after=2", NULL, NOH);
	status_compacted(&st, 50, 90);
	(void) gw_plan_step(&core, &p, NULL, &st);
	assert_error(&p, 410, "REVISION_COMPACTED", NULL);
	j = body_json(&p);
	assert_string_equal(jstr(j, "code"), "OUT_OF_RANGE");
	assert_string_equal(jstr(j, "compactRevision"), "50");
	assert_string_equal(jstr(j, "revision"), "90");
	assert_null(json_object_get(j, "current"));
	json_decref(j);
	gw_plan_fini(&p);

	/* The same before a stream opens: JSON, no stream. */
	plan(&p, "GET", "/v1/events?after=2", NULL, NOH);
	assert_true(p.stream);
	(void) gw_plan_step(&core, &p, NULL, &st);
	assert_error(&p, 410, "REVISION_COMPACTED", NULL);
	nrpc_status_fini(&st);
	gw_plan_fini(&p);
}

/* --- event streams --- */

static void
test_events_plans_a_probe_and_opens_the_stream(void **state)
{
	gw_plan p;
	reply r;
	const Datasync__V1__WatchRequest *w;
	const char *want;

	(void) state;
	plan(&p, "GET", "/v1/events?key=doc&after=5&values=1",
	    NULL, H({"Last-Event-ID", "6"}));
	w = watch_req(&p);
	assert_int_equal(p.route, GW_ROUTE_EVENTS);
	assert_true(p.stream);
	assert_string_equal(w->key, "doc");
	assert_int_equal(w->after_revision, 6);
	assert_true(w->with_values);
	assert_int_equal(w->timeout_ms, GW_SSE_PROBE_WAIT_MS);

	reply_init(&r, 2, 7, 8);
	assert_int_equal(gw_plan_step(&core, &p, &r.w.base, &ok_status),
	    GW_PLAN_STREAM);
	assert_int_equal(p.resp.status, 200);
	assert_string_equal(gw_response_get_header(&p.resp, "Content-Type"),
	    "text/event-stream; charset=utf-8");
	assert_string_equal(
	    gw_response_get_header(&p.resp, "Cache-Control"), "no-cache");
	assert_int_equal(p.stream_after, 8);
	want = "retry: 2000\n: datasync event stream\n\n"
	       "id: 7\nevent: put\ndata: {\"type\":\"EVENT_PUT\","
	       "\"revision\":\"7\",\"record\":{\"key\":\"doc\","
	       "\"version\":\"1\",\"revision\":\"7\"}}\n\n"
	       "id: 8\nevent: put\ndata: {\"type\":\"EVENT_PUT\","
	       "\"revision\":\"8\",\"record\":{\"key\":\"doc\","
	       "\"version\":\"2\",\"revision\":\"8\"}}\n\n";
	assert_int_equal(p.resp.body_len, strlen(want));
	assert_memory_equal(p.resp.body, want, strlen(want));
	gw_plan_fini(&p);

	/* Opened on a quiet store: the cursor moves to "now". */
	plan(&p, "GET", "/v1/events", NULL, NOH);
	reply_init(&r, 0, 0, 30);
	assert_int_equal(gw_plan_step(&core, &p, &r.w.base, &ok_status),
	    GW_PLAN_STREAM);
	assert_int_equal(p.stream_after, 30);
	want = "retry: 2000\n: datasync event stream\n\n: heartbeat\n\n";
	assert_int_equal(p.resp.body_len, strlen(want));
	assert_memory_equal(p.resp.body, want, strlen(want));
	gw_plan_fini(&p);

	plan(&p, "GET", "/v1/events?after=1", NULL,
	    H({"Last-Event-ID", "x"}));
	assert_error(&p, 400, "INVALID_ARGUMENT", "Last-Event-ID");
	gw_plan_fini(&p);
}

static void
test_sse_framing_of_each_event_type(void **state)
{
	static const struct {
		Datasync__V1__EventType type;
		const char *name;
	} types[] = {
	    {DATASYNC__V1__EVENT_TYPE__EVENT_PUT, "put"},
	    {DATASYNC__V1__EVENT_TYPE__EVENT_DELETE, "delete"},
	    {DATASYNC__V1__EVENT_TYPE__EVENT_LOCK, "lock"},
	    {DATASYNC__V1__EVENT_TYPE__EVENT_UNLOCK, "unlock"},
	    {DATASYNC__V1__EVENT_TYPE__EVENT_EXPIRE, "expire"},
	};
	reply r;
	ds_buf b;
	char want[512];

	(void) state;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		reply_init(&r, 1, 100 + i, 100 + i);
		r.ev[0].type = types[i].type;
		/* A newline in user text stays inside the JSON string. */
		r.rec[0].updated_by = "a\nb";
		ds_buf_init(&b, 1 << 20);
		assert_int_equal(gw_sse_events(&b, &r.w), DS_OK);
		(void) snprintf(want, sizeof(want),
		    "id: %zu\nevent: %s\ndata: ", 100 + i, types[i].name);
		assert_true(b.len > strlen(want));
		assert_memory_equal(b.ptr, want, strlen(want));
		/* One data line, then the blank line. */
		assert_ptr_equal(memchr(b.ptr + strlen(want), '\n',
		                     b.len - strlen(want)),
		    b.ptr + b.len - 2);
		assert_memory_equal(b.ptr + b.len - 2, "\n\n", 2);
		ds_buf_fini(&b);
	}
	assert_string_equal(gw_sse_event_name(99), "change");
}

static void
test_sse_step_moves_the_cursor_and_ends_on_reset_or_error(void **state)
{
	reply r;
	ds_buf b;
	nrpc_status st;
	uint64_t after = 10;
	const char *want;

	(void) state;
	/* Progress: heartbeat, cursor forward, never backwards. */
	ds_buf_init(&b, 1 << 20);
	reply_init(&r, 0, 0, 15);
	assert_int_equal(gw_sse_step(&core, &b, &r.w.base, &ok_status, &after),
	    GW_SSE_MORE);
	assert_int_equal(after, 15);
	assert_string_equal((const char *) b.ptr, ": heartbeat\n\n");
	ds_buf_reset(&b);
	reply_init(&r, 0, 0, 12);
	assert_int_equal(gw_sse_step(&core, &b, &r.w.base, &ok_status, &after),
	    GW_SSE_MORE);
	assert_int_equal(after, 15);
	ds_buf_reset(&b);

	/* Events: the cursor is the reply's revision. */
	reply_init(&r, 3, 16, 18);
	assert_int_equal(gw_sse_step(&core, &b, &r.w.base, &ok_status, &after),
	    GW_SSE_MORE);
	assert_int_equal(after, 18);
	assert_memory_equal(b.ptr, "id: 16\n", 7);
	ds_buf_reset(&b);

	/* Compacted mid-stream: reset, then the end. */
	status_compacted(&st, 40, 77);
	assert_int_equal(
	    gw_sse_step(&core, &b, NULL, &st, &after), GW_SSE_END);
	want = "event: reset\ndata: {\"compactRevision\":\"40\","
	       "\"revision\":\"77\"}\n\n";
	assert_string_equal((const char *) b.ptr, want);
	assert_int_equal(after, 18);
	nrpc_status_fini(&st);
	ds_buf_reset(&b);

	/* Any other failure: a comment on one line, then the end. */
	memset(&st, 0, sizeof(st));
	nrpc_status_set(&st, NRPC_UNAVAILABLE, "UNAVAILABLE", NULL,
	    "no upstream\nevent: forged");
	assert_int_equal(
	    gw_sse_step(&core, &b, NULL, &st, &after), GW_SSE_END);
	assert_string_equal((const char *) b.ptr,
	    ": error UNAVAILABLE UNAVAILABLE: no upstream event: forged\n\n");
	nrpc_status_fini(&st);
	ds_buf_fini(&b);
}

/* --- lock waits and /rpc/ deadlines --- */

static void
test_lock_wait_ms_reaches_the_request_and_the_deadline(void **state)
{
	gw_plan p;
	const Datasync__V1__LockRequest *l;

	(void) state;
	plan(&p, "POST", "/v1/records/doc/lock",
	    "{\"owner\":\"me\",\"ttlMs\":5000,\"waitMs\":20000}",
	    H({"Content-Type", "application/json"}));
	assert_int_equal(p.kind, GW_PLAN_RPC);
	l = (const Datasync__V1__LockRequest *) p.req;
	assert_int_equal(l->wait_ms, 20000);
	assert_int_equal(gw_plan_deadline_ms(&p, 10000),
	    20000 + GW_WAIT_DEADLINE_MARGIN_MS);
	gw_plan_fini(&p);

	plan(&p, "POST", "/v1/records/doc/lock",
	    "{\"owner\":\"me\",\"wait_ms\":300}",
	    H({"Content-Type", "application/json"}));
	l = (const Datasync__V1__LockRequest *) p.req;
	assert_int_equal(l->wait_ms, 300);
	assert_int_equal(gw_plan_deadline_ms(&p, 10000),
	    300 + GW_WAIT_DEADLINE_MARGIN_MS);
	gw_plan_fini(&p);

	plan(&p, "POST", "/v1/records/doc/lock", "{\"owner\":\"me\"}",
	    H({"Content-Type", "application/json"}));
	assert_int_equal(gw_plan_deadline_ms(&p, 10000), 10000);
	gw_plan_fini(&p);

	plan(&p, "POST", "/v1/records/doc/lock", "{\"waitMs\":60001}",
	    H({"Content-Type", "application/json"}));
	assert_error(&p, 400, "INVALID_ARGUMENT", "waitMs");
	gw_plan_fini(&p);
}

static void
test_rpc_watch_and_lock_get_deadlines_above_their_waits(void **state)
{
	gw_plan p;

	(void) state;
	plan(&p, "POST", "/rpc/datasync.v1.DataSync/Watch",
	    "{\"prefix\":\"a\",\"timeoutMs\":50000}",
	    H({"Content-Type", "application/json"}));
	assert_int_equal(p.kind, GW_PLAN_RPC);
	assert_int_equal(gw_plan_deadline_ms(&p, 10000),
	    50000 + GW_WAIT_DEADLINE_MARGIN_MS);
	gw_plan_fini(&p);

	/* timeout_ms 0 is the service's 30 s. */
	plan(&p, "POST", "/rpc/datasync.v1.DataSync/Watch", "{}",
	    H({"Content-Type", "application/json"}));
	assert_int_equal(gw_plan_deadline_ms(&p, 10000),
	    GW_WATCH_TIMEOUT_MS_DEFAULT + GW_WAIT_DEADLINE_MARGIN_MS);
	gw_plan_fini(&p);

	plan(&p, "POST", "/rpc/datasync.v1.DataSync/Lock",
	    "{\"key\":\"k\",\"waitMs\":40000}",
	    H({"Content-Type", "application/json"}));
	assert_int_equal(gw_plan_deadline_ms(&p, 10000),
	    40000 + GW_WAIT_DEADLINE_MARGIN_MS);
	gw_plan_fini(&p);

	plan(&p, "POST", "/rpc/datasync.v1.DataSync/Get", "{\"key\":\"k\"}",
	    H({"Content-Type", "application/json"}));
	assert_int_equal(gw_plan_deadline_ms(&p, 10000), 10000);
	gw_plan_fini(&p);
}

static void
test_watch_plans_survive_allocation_failures(void **state)
{
	(void) state;
	for (long n = 0; n < 48; n++) {
		gw_plan p;
		reply r;

		reply_init(&r, 2, 3, 4);
		ds_alloc_fail_after(n);
		plan(&p, "GET", "/v1/events?prefix=a&values=1", NULL,
		    H({"Origin", "https://app.example"},
		        {"Last-Event-ID", "2"}));
		if (p.kind == GW_PLAN_RPC) {
			(void) gw_plan_step(&core, &p, &r.w.base, &ok_status);
		}
		ds_alloc_fail_reset();
		assert_true(p.kind == GW_PLAN_STREAM ||
		            (p.kind == GW_PLAN_RESPOND &&
		                p.resp.status == 500));
		gw_plan_fini(&p);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_args_defaults_and_every_parameter),
	    cmocka_unit_test(test_args_errors_name_the_parameter),
	    cmocka_unit_test(test_last_event_id_overrides_after_on_streams),
	    cmocka_unit_test(
	        test_watch_plans_one_watch_with_a_deadline_above_the_wait),
	    cmocka_unit_test(test_watch_renders_proto3_json),
	    cmocka_unit_test(
	        test_compacted_cursor_is_410_with_compact_revision),
	    cmocka_unit_test(test_events_plans_a_probe_and_opens_the_stream),
	    cmocka_unit_test(test_sse_framing_of_each_event_type),
	    cmocka_unit_test(
	        test_sse_step_moves_the_cursor_and_ends_on_reset_or_error),
	    cmocka_unit_test(
	        test_lock_wait_ms_reaches_the_request_and_the_deadline),
	    cmocka_unit_test(
	        test_rpc_watch_and_lock_get_deadlines_above_their_waits),
	    cmocka_unit_test(test_watch_plans_survive_allocation_failures),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
