/*
 * nrpc_envelope_test.c - the envelope codec, the decode arena, and the
 * server's request path without sockets (nrpc_server_process: what the
 * fuzz harness drives), including allocation failures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ds_alloc.h"
#include "nrpc_int.h"

/* --- a hand-written service in the plugin's shape --- */

typedef void (*test_md_fn)(nrpc_call *call, const Nrpc__V1__Metadata *req,
    void *arg);

typedef struct test_handlers {
	test_md_fn echo;
	test_md_fn missing;
	test_md_fn conflict;
} test_handlers;

static const nrpc_method test_methods[] = {
    {"/nrpc.test.Test/Echo", "Echo", &nrpc__v1__metadata__descriptor,
	&nrpc__v1__metadata__descriptor, true},
    {"/nrpc.test.Test/Missing", "Missing", &nrpc__v1__metadata__descriptor,
	&nrpc__v1__metadata__descriptor, false},
    {"/nrpc.test.Test/Fail", "Fail", &nrpc__v1__metadata__descriptor,
	&nrpc__v1__metadata__descriptor, false},
};

static const nrpc_service_desc test_service = {
    "nrpc.test.Test", "Test", 3, test_methods};

static nrpc_code
test_dispatch(const void *table, size_t method_index, nrpc_call *call,
    const ProtobufCMessage *req, void *arg)
{
	const test_handlers *h = table;

	switch (method_index) {
	case 0:
		if (h->echo == NULL) {
			return NRPC_UNIMPLEMENTED;
		}
		h->echo(call, (const Nrpc__V1__Metadata *) req, arg);
		return NRPC_OK;
	case 1:
		if (h->missing == NULL) {
			return NRPC_UNIMPLEMENTED;
		}
		h->missing(call, (const Nrpc__V1__Metadata *) req, arg);
		return NRPC_OK;
	case 2:
		if (h->conflict == NULL) {
			return NRPC_UNIMPLEMENTED;
		}
		h->conflict(call, (const Nrpc__V1__Metadata *) req, arg);
		return NRPC_OK;
	default:
		return NRPC_UNIMPLEMENTED;
	}
}

static void
test_echo(nrpc_call *call, const Nrpc__V1__Metadata *req, void *arg)
{
	(void) arg;
	nrpc_call_reply(call, &req->base);
}

static void
test_fail(nrpc_call *call, const Nrpc__V1__Metadata *req, void *arg)
{
	nrpc_status st = {0};

	(void) arg;
	nrpc_status_set(&st, NRPC_ABORTED, "VERSION_CONFLICT", "key",
	    "conflict on %s", req->key);
	if (nrpc_status_set_detail(&st, &req->base) != NRPC_OK) {
		/* out of memory (fault injection): fail without detail */
		nrpc_call_fail(call, NRPC_ABORTED, "VERSION_CONFLICT", "key",
		    "conflict on %s", req->key);
		return;
	}
	nrpc_call_finish(call, &st, NULL);
	nrpc_status_fini(&st);
}

static const test_handlers test_table = {test_echo, NULL, test_fail};

/* --- helpers --- */

/* pack_request packs an envelope with protobuf-c (the reference
 * encoder); owned result. */
static uint8_t *
pack_request(const char *method, const uint8_t *body, size_t body_len,
    size_t *len)
{
	Nrpc__V1__Request r = NRPC__V1__REQUEST__INIT;
	uint8_t *out;

	r.method = (char *) method;
	r.body.data = (uint8_t *) body;
	r.body.len = body_len;
	*len = nrpc__v1__request__get_packed_size(&r);
	out = malloc(*len + 1);
	assert_non_null(out);
	assert_int_equal(nrpc__v1__request__pack(&r, out), *len);
	return out;
}

static uint8_t *
pack_md(const char *key, const char *value, size_t *len)
{
	Nrpc__V1__Metadata md = NRPC__V1__METADATA__INIT;
	uint8_t *out;

	md.key = (char *) key;
	md.value = (char *) value;
	*len = nrpc__v1__metadata__get_packed_size(&md);
	out = malloc(*len + 1);
	assert_non_null(out);
	assert_int_equal(nrpc__v1__metadata__pack(&md, out), *len);
	return out;
}

static nrpc_server *
make_server(void)
{
	nrpc_server_config cfg;
	nrpc_server *srv = NULL;
	nrpc_status st = {0};

	nrpc_server_config_default(&cfg);
	cfg.max_message_bytes = 4096;
	assert_int_equal(nrpc_server_create(&cfg, &srv, &st), NRPC_OK);
	assert_int_equal(nrpc_server_add_service(srv, &test_service,
	    test_dispatch, &test_table, NULL, &st), NRPC_OK);
	return srv;
}

/* process runs an envelope through nrpc_server_process and decodes the
 * reply as the client would. */
static nrpc_code
process(nrpc_server *srv, const uint8_t *buf, size_t len,
    Nrpc__V1__Metadata **resp, nrpc_status *st)
{
	uint8_t *reply = NULL;
	size_t reply_len = 0;
	ProtobufCMessage *m = NULL;
	nrpc_code rc;

	assert_int_equal(nrpc_server_process(srv, buf, len, &reply,
	    &reply_len), NRPC_OK);
	rc = nrpc_envelope_decode_reply(reply, reply_len, 1 << 20,
	    &nrpc__v1__metadata__descriptor, &m, st);
	ds_free(reply);
	*resp = (Nrpc__V1__Metadata *) m;
	return rc;
}

/* --- varints and arena --- */

static void
test_varint_lengths_match_protobuf(void **state)
{
	uint8_t buf[10];

	(void) state;
	assert_int_equal(nrpc_varint_len(0), 1);
	assert_int_equal(nrpc_varint_len(127), 1);
	assert_int_equal(nrpc_varint_len(128), 2);
	assert_int_equal(nrpc_varint_len(UINT64_MAX), 10);
	assert_int_equal(nrpc_varint_put(buf, 300), 2);
	assert_int_equal(buf[0], 0xac);
	assert_int_equal(buf[1], 0x02);
}

static void
test_arena_refuses_past_its_max_and_reset_clears(void **state)
{
	nrpc_arena a;
	void *p;

	(void) state;
	nrpc_arena_init(&a, 1000);
	assert_non_null(a.pa.alloc(&a, 500));
	assert_non_null(p = a.pa.alloc(&a, 400));
	assert_null(a.pa.alloc(&a, 200));
	assert_true(a.over_max);
	nrpc_arena_reset(&a);
	assert_false(a.over_max);
	assert_non_null(a.pa.alloc(&a, 900));
	nrpc_arena_fini(&a);
	nrpc_arena_fini(&a);
	(void) p;
}

/* --- encode / decode --- */

static void
test_request_written_by_plan_decodes_with_protobuf_c(void **state)
{
	Nrpc__V1__Metadata body = NRPC__V1__METADATA__INIT;
	const char *md[] = {"authorization", "Bearer t", "trace", "x1"};
	nrpc_request_plan plan;
	nrpc_status st = {0};
	Nrpc__V1__Request *r;
	Nrpc__V1__Metadata *b;
	uint8_t *buf;

	(void) state;
	body.key = "k";
	body.value = "value";
	assert_int_equal(nrpc_envelope_plan_request(&plan,
	    "/nrpc.test.Test/Echo", &body.base, 1500, "rid-1", "tester", md, 2,
	    &st), NRPC_OK);
	buf = malloc(plan.total);
	assert_non_null(buf);
	nrpc_envelope_write_request(&plan, buf);
	r = nrpc__v1__request__unpack(NULL, plan.total, buf);
	assert_non_null(r);
	assert_string_equal(r->method, "/nrpc.test.Test/Echo");
	assert_int_equal(r->timeout_ms, 1500);
	assert_string_equal(r->request_id, "rid-1");
	assert_string_equal(r->client_name, "tester");
	assert_int_equal(r->n_metadata, 2);
	assert_string_equal(r->metadata[1]->key, "trace");
	assert_string_equal(r->metadata[1]->value, "x1");
	b = nrpc__v1__metadata__unpack(NULL, r->body.len, r->body.data);
	assert_non_null(b);
	assert_string_equal(b->key, "k");
	assert_string_equal(b->value, "value");
	nrpc__v1__metadata__free_unpacked(b, NULL);
	nrpc__v1__request__free_unpacked(r, NULL);
	free(buf);
}

static void
test_plan_request_rejects_fields_over_their_limits(void **state)
{
	Nrpc__V1__Metadata body = NRPC__V1__METADATA__INIT;
	nrpc_request_plan plan;
	nrpc_status st = {0};
	char id[NRPC_MAX_REQUEST_ID_BYTES + 2];
	const char *md[2 * (NRPC_MAX_METADATA + 1)];

	(void) state;
	memset(id, 'x', sizeof(id) - 1);
	id[sizeof(id) - 1] = '\0';
	assert_int_equal(nrpc_envelope_plan_request(&plan, "/a/B", &body.base,
	    0, id, NULL, NULL, 0, &st), NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.reason, "INVALID_ARGUMENT");
	assert_string_equal(st.field, "request_id");
	assert_string_equal(st.message,
	    "request_id exceeds max_request_id_bytes (128)");
	id[NRPC_MAX_REQUEST_ID_BYTES] = '\0'; /* exactly at the limit */
	assert_int_equal(nrpc_envelope_plan_request(&plan, "/a/B", &body.base,
	    0, id, NULL, NULL, 0, &st), NRPC_OK);
	for (size_t i = 0; i < 2 * (NRPC_MAX_METADATA + 1); i++) {
		md[i] = "v";
	}
	assert_int_equal(nrpc_envelope_plan_request(&plan, "/a/B", &body.base,
	    0, NULL, NULL, md, NRPC_MAX_METADATA, &st), NRPC_OK);
	assert_int_equal(nrpc_envelope_plan_request(&plan, "/a/B", &body.base,
	    0, NULL, NULL, md, NRPC_MAX_METADATA + 1, &st),
	    NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.field, "metadata");
	assert_int_equal(nrpc_envelope_plan_request(&plan, "/a/B", &body.base,
	    0, NULL, "bad\xff", NULL, 0, &st), NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.field, "client_name");
	nrpc_status_fini(&st);
}

static void
test_reply_round_trips_the_retry_hint(void **state)
{
	nrpc_status st = {0};
	nrpc_status got;
	nrpc_reply_plan plan;
	ProtobufCMessage *resp = NULL;
	uint8_t *buf;

	(void) state;
	nrpc_status_set(&st, NRPC_UNAVAILABLE, "DB_BUSY", NULL,
	    "gave up after busy_timeout_ms (5000)");
	st.retry_after_ms = 1500;
	nrpc_envelope_plan_reply(&plan, &st, NULL);
	buf = malloc(plan.total);
	assert_non_null(buf);
	nrpc_envelope_write_reply(&plan, buf);
	assert_int_equal(nrpc_envelope_decode_reply(buf, plan.total, 4096,
	    &nrpc__v1__metadata__descriptor, &resp, &got), NRPC_UNAVAILABLE);
	assert_string_equal(got.reason, "DB_BUSY");
	assert_int_equal(got.retry_after_ms, 1500);
	/* Setting a status again clears the hint. */
	nrpc_status_set(&got, NRPC_ABORTED, "VERSION_CONFLICT", NULL, "x");
	assert_int_equal(got.retry_after_ms, 0);
	nrpc_status_fini(&got);
	nrpc_status_fini(&st);
	free(buf);
}

static void
test_reply_round_trips_status_and_detail(void **state)
{
	nrpc_status st = {0};
	nrpc_status got;
	nrpc_reply_plan plan;
	ProtobufCMessage *resp = (ProtobufCMessage *) 1;
	uint8_t detail[3] = {0xde, 0xad, 0x01};
	uint8_t *buf;

	(void) state;
	nrpc_status_set(&st, NRPC_ABORTED, "VERSION_CONFLICT", "key",
	    "stale version");
	assert_int_equal(nrpc_status_set_detail_bytes(&st, "x.Record", detail,
	    3), NRPC_OK);
	nrpc_envelope_plan_reply(&plan, &st, NULL);
	buf = malloc(plan.total);
	assert_non_null(buf);
	nrpc_envelope_write_reply(&plan, buf);
	assert_int_equal(nrpc_envelope_decode_reply(buf, plan.total, 4096,
	    &nrpc__v1__metadata__descriptor, &resp, &got), NRPC_ABORTED);
	assert_null(resp);
	assert_int_equal(got.code, NRPC_ABORTED);
	assert_string_equal(got.reason, "VERSION_CONFLICT");
	assert_string_equal(got.message, "stale version");
	assert_string_equal(got.field, "key");
	assert_string_equal(got.detail_type, "x.Record");
	assert_int_equal(got.detail_len, 3);
	assert_memory_equal(got.detail, detail, 3);
	nrpc_status_fini(&got);
	nrpc_status_fini(&st);
	free(buf);
}

static void
test_ok_reply_with_body_decodes_to_the_message(void **state)
{
	static const nrpc_status ok = {0};
	Nrpc__V1__Metadata md = NRPC__V1__METADATA__INIT;
	Nrpc__V1__Metadata *out;
	nrpc_reply_plan plan;
	nrpc_status got;
	ProtobufCMessage *resp = NULL;
	uint8_t *buf;

	(void) state;
	md.key = "a";
	md.value = "b";
	nrpc_envelope_plan_reply(&plan, &ok, &md.base);
	buf = malloc(plan.total);
	assert_non_null(buf);
	nrpc_envelope_write_reply(&plan, buf);
	assert_int_equal(nrpc_envelope_decode_reply(buf, plan.total, 4096,
	    &nrpc__v1__metadata__descriptor, &resp, &got), NRPC_OK);
	out = (Nrpc__V1__Metadata *) resp;
	assert_string_equal(out->key, "a");
	assert_string_equal(out->value, "b");
	protobuf_c_message_free_unpacked(resp, NULL);
	/* The limit applies to replies too. */
	assert_int_equal(nrpc_envelope_decode_reply(buf, plan.total,
	    plan.total - 1, &nrpc__v1__metadata__descriptor, &resp, &got),
	    NRPC_RESOURCE_EXHAUSTED);
	assert_string_equal(got.reason, "TOO_LARGE");
	free(buf);
}

static void
test_garbage_reply_is_internal_malformed_reply(void **state)
{
	static const uint8_t junk[] = {0xff, 0xff, 0xff};
	/* status OK, body field holding bytes that are no Metadata */
	static const uint8_t badbody[] = {0x12, 0x02, 0x0a, 0x05};
	ProtobufCMessage *resp = NULL;
	nrpc_status got;

	(void) state;
	assert_int_equal(nrpc_envelope_decode_reply(junk, sizeof(junk), 4096,
	    &nrpc__v1__metadata__descriptor, &resp, &got), NRPC_INTERNAL);
	assert_string_equal(got.reason, "MALFORMED_REPLY");
	assert_int_equal(nrpc_envelope_decode_reply(badbody, sizeof(badbody),
	    4096, &nrpc__v1__metadata__descriptor, &resp, &got),
	    NRPC_INTERNAL);
	assert_string_equal(got.reason, "MALFORMED_REPLY");
	assert_null(resp);
}

static void
test_decode_request_rejects_garbage_and_missing_method(void **state)
{
	static const uint8_t junk[] = {0x0a, 0x7f, 'a'};
	nrpc_arena a;
	nrpc_status st = {0};
	Nrpc__V1__Request *r = NULL;

	(void) state;
	nrpc_arena_init(&a, 1 << 16);
	assert_int_equal(nrpc_envelope_decode_request(junk, sizeof(junk), 4096,
	    &a, &r, &st), NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.reason, "MALFORMED_ENVELOPE");
	assert_null(r);
	nrpc_arena_reset(&a);
	assert_int_equal(nrpc_envelope_decode_request(junk, 0, 4096, &a, &r,
	    &st), NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.reason, "MALFORMED_ENVELOPE");
	assert_string_equal(st.field, "method");
	nrpc_arena_fini(&a);
	nrpc_status_fini(&st);
}

static void
test_decode_request_amplification_is_capped_by_the_arena(void **state)
{
	/* 1000 empty metadata entries: 2 wire bytes, ~48 decoded each. */
	uint8_t buf[2 + 2000];
	nrpc_arena a;
	nrpc_status st = {0};
	Nrpc__V1__Request *r = NULL;

	(void) state;
	buf[0] = 0x0a; /* method = "m" */
	buf[1] = 0x01;
	memset(buf + 2, 0, sizeof(buf) - 2);
	buf[2] = 'm';
	for (size_t i = 3; i + 1 < sizeof(buf); i += 2) {
		buf[i] = 0x32; /* metadata, length 0 */
		buf[i + 1] = 0x00;
	}
	nrpc_arena_init(&a, 8192);
	assert_int_equal(nrpc_envelope_decode_request(buf, sizeof(buf) - 1,
	    4096, &a, &r, &st), NRPC_RESOURCE_EXHAUSTED);
	assert_string_equal(st.reason, "TOO_LARGE");
	nrpc_arena_fini(&a);
	/* With room it decodes, then fails the metadata count limit. */
	nrpc_arena_init(&a, 1 << 20);
	assert_int_equal(nrpc_envelope_decode_request(buf, sizeof(buf) - 1,
	    4096, &a, &r, &st), NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.reason, "MALFORMED_ENVELOPE");
	assert_string_equal(st.field, "metadata");
	nrpc_arena_fini(&a);
	nrpc_status_fini(&st);
}

/* --- the request path without sockets --- */

static void
test_process_echo_replies_with_the_request(void **state)
{
	nrpc_server *srv = make_server();
	uint8_t *body;
	uint8_t *env;
	size_t blen;
	size_t elen;
	Nrpc__V1__Metadata *resp = NULL;
	nrpc_status st;

	(void) state;
	body = pack_md("k", "v", &blen);
	env = pack_request("/nrpc.test.Test/Echo", body, blen, &elen);
	assert_int_equal(process(srv, env, elen, &resp, &st), NRPC_OK);
	assert_string_equal(resp->key, "k");
	assert_string_equal(resp->value, "v");
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	free(env);
	free(body);
	nrpc_server_destroy(srv);
}

static void
test_process_unknown_and_null_handler_are_unimplemented(void **state)
{
	nrpc_server *srv = make_server();
	uint8_t *env;
	size_t elen;
	Nrpc__V1__Metadata *resp = NULL;
	nrpc_status st;
	nrpc_server_stats stats;

	(void) state;
	env = pack_request("/nrpc.test.Test/Nope\n", NULL, 0, &elen);
	assert_int_equal(process(srv, env, elen, &resp, &st),
	    NRPC_UNIMPLEMENTED);
	assert_string_equal(st.reason, "UNIMPLEMENTED");
	/* The name is quoted, made printable. */
	assert_string_equal(st.message, "unknown method /nrpc.test.Test/Nope?");
	free(env);
	env = pack_request("/nrpc.test.Test/Missing", NULL, 0, &elen);
	assert_int_equal(process(srv, env, elen, &resp, &st),
	    NRPC_UNIMPLEMENTED);
	assert_string_equal(st.reason, "UNIMPLEMENTED");
	assert_string_equal(st.message,
	    "method /nrpc.test.Test/Missing has no handler");
	free(env);
	nrpc_server_stats_get(srv, &stats);
	assert_int_equal(stats.unimplemented, 2);
	assert_int_equal(stats.in_flight, 0);
	nrpc_server_destroy(srv);
}

static void
test_process_malformed_envelope_and_body_are_invalid_argument(void **state)
{
	static const uint8_t junk[] = {0xff, 0x01, 0x02};
	static const uint8_t badbody[] = {0x0a, 0x09, 'x'};
	nrpc_server *srv = make_server();
	uint8_t *env;
	size_t elen;
	Nrpc__V1__Metadata *resp = NULL;
	nrpc_status st;

	(void) state;
	assert_int_equal(process(srv, junk, sizeof(junk), &resp, &st),
	    NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.reason, "MALFORMED_ENVELOPE");
	env = pack_request("/nrpc.test.Test/Echo", badbody, sizeof(badbody),
	    &elen);
	assert_int_equal(process(srv, env, elen, &resp, &st),
	    NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.reason, "MALFORMED_BODY");
	assert_string_equal(st.message,
	    "body is not a valid nrpc.v1.Metadata (3 bytes)");
	free(env);
	nrpc_server_destroy(srv);
}

static void
test_process_enforces_max_message_bytes_exactly(void **state)
{
	nrpc_server *srv = make_server(); /* max_message_bytes 4096 */
	uint8_t *buf = calloc(1, 4097);
	Nrpc__V1__Metadata *resp = NULL;
	nrpc_status st;

	(void) state;
	assert_non_null(buf);
	/* 4096 zero bytes: within the limit, so decoded (and malformed:
	 * field number 0 is invalid). */
	assert_int_equal(process(srv, buf, 4096, &resp, &st),
	    NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.reason, "MALFORMED_ENVELOPE");
	assert_int_equal(process(srv, buf, 4097, &resp, &st),
	    NRPC_RESOURCE_EXHAUSTED);
	assert_string_equal(st.reason, "TOO_LARGE");
	assert_string_equal(st.message,
	    "message exceeds max_message_bytes (4096)");
	free(buf);
	nrpc_server_destroy(srv);
}

static void
test_process_survives_every_allocation_failure(void **state)
{
	nrpc_server *srv = make_server();
	uint8_t *body;
	uint8_t *env;
	size_t blen;
	size_t elen;
	int ok_seen = 0;

	(void) state;
	body = pack_md("key", "a value", &blen);
	env = pack_request("/nrpc.test.Test/Fail", body, blen, &elen);
	for (long n = 0; n < 20; n++) {
		uint8_t *reply = NULL;
		size_t reply_len = 0;
		nrpc_code rc;

		ds_alloc_fail_after(n);
		rc = nrpc_server_process(srv, env, elen, &reply, &reply_len);
		ds_alloc_fail_reset();
		if (rc == NRPC_OK) {
			ProtobufCMessage *resp = NULL;
			nrpc_status st;

			/* Whatever failed, the reply is a well-formed status. */
			assert_int_not_equal(nrpc_envelope_decode_reply(reply,
			    reply_len, 1 << 20, &nrpc__v1__metadata__descriptor,
			    &resp, &st), NRPC_OK);
			assert_int_not_equal(st.code, NRPC_INTERNAL);
			if (st.code == NRPC_ABORTED && st.detail_len > 0) {
				ok_seen++;
			}
			nrpc_status_fini(&st);
			ds_free(reply);
		} else {
			assert_int_equal(rc, NRPC_RESOURCE_EXHAUSTED);
		}
	}
	assert_true(ok_seen > 0);
	free(env);
	free(body);
	nrpc_server_destroy(srv);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_varint_lengths_match_protobuf),
	    cmocka_unit_test(test_arena_refuses_past_its_max_and_reset_clears),
	    cmocka_unit_test(
		test_request_written_by_plan_decodes_with_protobuf_c),
	    cmocka_unit_test(test_plan_request_rejects_fields_over_their_limits),
	    cmocka_unit_test(test_reply_round_trips_status_and_detail),
	    cmocka_unit_test(test_reply_round_trips_the_retry_hint),
	    cmocka_unit_test(test_ok_reply_with_body_decodes_to_the_message),
	    cmocka_unit_test(test_garbage_reply_is_internal_malformed_reply),
	    cmocka_unit_test(
		test_decode_request_rejects_garbage_and_missing_method),
	    cmocka_unit_test(
		test_decode_request_amplification_is_capped_by_the_arena),
	    cmocka_unit_test(test_process_echo_replies_with_the_request),
	    cmocka_unit_test(
		test_process_unknown_and_null_handler_are_unimplemented),
	    cmocka_unit_test(
		test_process_malformed_envelope_and_body_are_invalid_argument),
	    cmocka_unit_test(test_process_enforces_max_message_bytes_exactly),
	    cmocka_unit_test(test_process_survives_every_allocation_failure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
