/*
 * pbjson_roundtrip_test.c - message -> JSON -> message gives back the
 * same message (compared by protobuf-c's own encoding), for every type,
 * every option, the datasync messages, and under allocation failures.
 */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "datasync/v1/datasync.pb-c.h"
#include "ds_alloc.h"
#include "nrpc/v1/rpc.pb-c.h"
#include "pbjson.h"
#include "pbjson_test.pb-c.h"

static const pbjson_options option_sets[] = {
    {0},
    {.original_names = true},
    {.emit_defaults = true},
    {.pretty = true, .emit_defaults = true, .original_names = true},
};

#define N_OPTION_SETS (sizeof(option_sets) / sizeof(option_sets[0]))

/* packed returns m's protobuf encoding (owned, free) and its length. */
static uint8_t *
packed(const ProtobufCMessage *m, size_t *len)
{
	uint8_t *buf;

	*len = protobuf_c_message_get_packed_size(m);
	buf = malloc(*len + 1);
	assert_non_null(buf);
	assert_int_equal(protobuf_c_message_pack(m, buf), *len);
	return buf;
}

static void
assert_same_message(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
	size_t la;
	size_t lb;
	uint8_t *pa = packed(a, &la);
	uint8_t *pb = packed(b, &lb);

	assert_ptr_equal(a->descriptor, b->descriptor);
	assert_int_equal(la, lb);
	assert_memory_equal(pa, pb, la);
	free(pa);
	free(pb);
}

/* round_trip encodes m with o, decodes the text, checks that the result
 * packs like m and encodes to the same text, and returns the text
 * (owned, ds_free). */
static char *
round_trip(const ProtobufCMessage *m, const pbjson_options *o)
{
	char *text = NULL;
	char *again = NULL;
	size_t len = 0;
	ProtobufCMessage *back = NULL;
	pbjson_error err;
	pbjson_err rv;

	if ((rv = pbjson_encode(m, o, &text, &len, &err)) != PBJSON_OK) {
		fail_msg("encode: %s", err.message);
	}
	if ((rv = pbjson_decode(m->descriptor, text, len, o, &back, &err)) !=
	    PBJSON_OK) {
		fail_msg("decode %s: %s", text, err.message);
	}
	assert_true(protobuf_c_message_check(back));
	assert_same_message(m, back);
	assert_int_equal(pbjson_encode(back, o, &again, NULL, &err),
	                 PBJSON_OK);
	assert_string_equal(text, again);
	ds_free(again);
	protobuf_c_message_free_unpacked(back, NULL);
	return text;
}

static void
round_trip_all_options(const ProtobufCMessage *m)
{
	size_t i;

	for (i = 0; i < N_OPTION_SETS; i++) {
		ds_free(round_trip(m, &option_sets[i]));
	}
}

static void
test_every_scalar_type_round_trips(void **state)
{
	static uint8_t all_bytes[256];
	Pbjson__Test__Inner in = PBJSON__TEST__INNER__INIT;
	Pbjson__Test__Scalars s = PBJSON__TEST__SCALARS__INIT;
	int i;

	(void) state;
	for (i = 0; i < 256; i++) {
		all_bytes[i] = (uint8_t) i;
	}
	round_trip_all_options(&s.base);

	/* Maxima. */
	s.f_double = DBL_MAX;
	s.f_float = FLT_MAX;
	s.f_int32 = INT32_MAX;
	s.f_int64 = INT64_MAX;
	s.f_uint32 = UINT32_MAX;
	s.f_uint64 = UINT64_MAX;
	s.f_sint32 = INT32_MAX;
	s.f_sint64 = INT64_MAX;
	s.f_fixed32 = UINT32_MAX;
	s.f_fixed64 = UINT64_MAX;
	s.f_sfixed32 = INT32_MAX;
	s.f_sfixed64 = INT64_MAX;
	s.f_bool = 1;
	s.f_string = "\x01\x1f\x7f \"\\/ caf\xc3\xa9 \xe2\x82\xac "
	             "\xf0\x9f\x98\x80 \xef\xbf\xbf";
	s.f_bytes.len = sizeof(all_bytes);
	s.f_bytes.data = all_bytes;
	s.f_enum = PBJSON__TEST__COLOR__COLOR_GREEN;
	s.f_inner = &in;
	s.a_long_field_2_name = 1;
	round_trip_all_options(&s.base);

	/* Minima and the smallest magnitudes. */
	s.f_double = -DBL_MAX;
	s.f_float = -FLT_MAX;
	s.f_int32 = INT32_MIN;
	s.f_int64 = INT64_MIN;
	s.f_uint32 = 1;
	s.f_uint64 = 1;
	s.f_sint32 = INT32_MIN;
	s.f_sint64 = INT64_MIN;
	s.f_sfixed32 = INT32_MIN;
	s.f_sfixed64 = INT64_MIN;
	s.f_bytes.len = 1;
	s.f_enum = (Pbjson__Test__Color) 77;
	round_trip_all_options(&s.base);
	s.f_double = 4.9406564584124654e-324; /* smallest denormal */
	s.f_float = 1.17549435e-38f;          /* FLT_MIN */
	round_trip_all_options(&s.base);
	s.f_double = DBL_MIN;
	s.f_float = 1.40129846e-45f;
	round_trip_all_options(&s.base);
	s.f_double = 1.0 / 3.0;
	s.f_float = 1.0f / 3.0f;
	round_trip_all_options(&s.base);
	s.f_double = 9007199254740993.0 * 1024;
	s.f_float = 16777217.0f;
	round_trip_all_options(&s.base);

	/* Not numbers. */
	s.f_double = NAN;
	s.f_float = -INFINITY;
	round_trip_all_options(&s.base);
	s.f_double = INFINITY;
	s.f_float = NAN;
	round_trip_all_options(&s.base);
}

static void
test_nested_repeated_and_enum_messages_round_trip(void **state)
{
	int32_t ints[] = {0, -1, INT32_MIN, INT32_MAX};
	int64_t i64[] = {INT64_MIN, 0, INT64_MAX};
	uint64_t u64[] = {0, UINT64_MAX};
	double dbl[] = {-0.0, 0.1, NAN, -INFINITY, 1e300};
	float flt[] = {-0.0f, 0.1f, INFINITY, 3e-40f};
	protobuf_c_boolean bools[] = {0, 1, 1};
	char *strs[] = {"", "a", "\xe2\x82\xac"};
	ProtobufCBinaryData blobs[] = {{0, NULL}, {2, (uint8_t *) "\xff\xfe"}};
	Pbjson__Test__Color colors[] = {PBJSON__TEST__COLOR__COLOR_RED,
	                                PBJSON__TEST__COLOR__COLOR_UNSPECIFIED,
	                                (Pbjson__Test__Color) 1000};
	int64_t s64[] = {-5, 5};
	Pbjson__Test__Inner deep = PBJSON__TEST__INNER__INIT;
	Pbjson__Test__Inner i1 = PBJSON__TEST__INNER__INIT;
	Pbjson__Test__Inner i2 = PBJSON__TEST__INNER__INIT;
	Pbjson__Test__Inner *inners[] = {&i1, &i2};
	Pbjson__Test__Repeated r = PBJSON__TEST__REPEATED__INIT;

	(void) state;
	deep.s = "deep";
	i1.child = &deep;
	i2.n = -4;
	r.n_r_int32 = 4;
	r.r_int32 = ints;
	r.n_r_int32_unpacked = 4;
	r.r_int32_unpacked = ints;
	r.n_r_int64 = 3;
	r.r_int64 = i64;
	r.n_r_uint64 = 2;
	r.r_uint64 = u64;
	r.n_r_double = 5;
	r.r_double = dbl;
	r.n_r_float = 4;
	r.r_float = flt;
	r.n_r_bool = 3;
	r.r_bool = bools;
	r.n_r_string = 3;
	r.r_string = strs;
	r.n_r_bytes = 2;
	r.r_bytes = blobs;
	r.n_r_inner = 2;
	r.r_inner = inners;
	r.n_r_enum = 3;
	r.r_enum = colors;
	r.n_r_enum_unpacked = 3;
	r.r_enum_unpacked = colors;
	r.n_r_sint64_unpacked = 2;
	r.r_sint64_unpacked = s64;
	round_trip_all_options(&r.base);
}

static void
test_oneof_members_and_optional_round_trip(void **state)
{
	Pbjson__Test__Inner in = PBJSON__TEST__INNER__INIT;
	Pbjson__Test__Choice c = PBJSON__TEST__CHOICE__INIT;
	char *text;

	(void) state;
	round_trip_all_options(&c.base);
	c.name = "n";
	c.pick_case = PBJSON__TEST__CHOICE__PICK_PICK_NUMBER;
	c.pick_number = INT64_MIN;
	c._maybe_count_case = PBJSON__TEST__CHOICE___MAYBE_COUNT_MAYBE_COUNT;
	c.maybe_count = 0; /* present although zero */
	text = round_trip(&c.base, NULL);
	assert_string_equal(
	    text, "{\"name\":\"n\",\"pickNumber\":\"-9223372036854775808\","
	          "\"maybeCount\":0}");
	ds_free(text);
	c.pick_case = PBJSON__TEST__CHOICE__PICK_PICK_TEXT;
	/* The packer drops a oneof string that is the default pointer, so
	 * give it its own "" as the decoder does. */
	c.pick_text = strdup("");
	round_trip_all_options(&c.base);
	free(c.pick_text);
	c.pick_case = PBJSON__TEST__CHOICE__PICK_PICK_INNER;
	c.pick_inner = &in;
	round_trip_all_options(&c.base);
	c.pick_case = PBJSON__TEST__CHOICE__PICK_PICK_BYTES;
	c.pick_bytes.len = 0;
	c.pick_bytes.data = NULL;
	round_trip_all_options(&c.base);
	c.pick_case = PBJSON__TEST__CHOICE__PICK_PICK_COLOR;
	c.pick_color = PBJSON__TEST__COLOR__COLOR_UNSPECIFIED;
	text = round_trip(&c.base, NULL);
	assert_string_equal(
	    text, "{\"name\":\"n\",\"pickColor\":\"COLOR_UNSPECIFIED\","
	          "\"maybeCount\":0}");
	ds_free(text);
}

static void
test_maps_round_trip(void **state)
{
	Pbjson__Test__Maps__CountsEntry c1 =
	    PBJSON__TEST__MAPS__COUNTS_ENTRY__INIT;
	Pbjson__Test__Maps__CountsEntry c2 =
	    PBJSON__TEST__MAPS__COUNTS_ENTRY__INIT;
	Pbjson__Test__Maps__CountsEntry *counts[] = {&c1, &c2};
	Pbjson__Test__Maps__ByIdEntry b1 =
	    PBJSON__TEST__MAPS__BY_ID_ENTRY__INIT;
	Pbjson__Test__Maps__ByIdEntry *byid[] = {&b1};
	Pbjson__Test__Maps__FlagsEntry f1 =
	    PBJSON__TEST__MAPS__FLAGS_ENTRY__INIT;
	Pbjson__Test__Maps__FlagsEntry f2 =
	    PBJSON__TEST__MAPS__FLAGS_ENTRY__INIT;
	Pbjson__Test__Maps__FlagsEntry *flags[] = {&f1, &f2};
	Pbjson__Test__Maps__BlobsEntry l1 =
	    PBJSON__TEST__MAPS__BLOBS_ENTRY__INIT;
	Pbjson__Test__Maps__BlobsEntry *blobs[] = {&l1};
	Pbjson__Test__Inner in = PBJSON__TEST__INNER__INIT;
	Pbjson__Test__Maps m = PBJSON__TEST__MAPS__INIT;

	(void) state;
	c1.key = "x";
	c1.value = -1;
	c2.key = "\xc3\xa9\"";
	c2.value = 2;
	in.s = "v";
	b1.key = INT64_MIN;
	b1.value = &in;
	f1.key = 1;
	f1.value = "t";
	f2.key = 0;
	f2.value = "f";
	l1.key = "b";
	l1.value.len = 3;
	l1.value.data = (uint8_t *) "abc";
	m.n_counts = 2;
	m.counts = counts;
	m.n_by_id = 1;
	m.by_id = byid;
	m.n_flags = 2;
	m.flags = flags;
	m.n_blobs = 1;
	m.blobs = blobs;
	round_trip_all_options(&m.base);
}

static void
test_datasync_update_request_round_trips(void **state)
{
	Datasync__V1__Precondition pre = DATASYNC__V1__PRECONDITION__INIT;
	Datasync__V1__UpdateRequest u = DATASYNC__V1__UPDATE_REQUEST__INIT;
	char *text;

	(void) state;
	u.key = "doc/1";
	u.value.len = 5;
	u.value.data = (uint8_t *) "hello";
	u.content_type = "text/plain";
	u.precondition = &pre;
	u.lock_token = "tok";
	u.request_id = "r-1";
	pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_VERSION;
	pre.if_version = UINT64_C(18446744073709551615);
	text = round_trip(&u.base, NULL);
	/* DESIGN §6: lowerCamelCase, 64-bit integers as strings, base64. */
	assert_string_equal(
	    text, "{\"key\":\"doc/1\",\"value\":\"aGVsbG8=\",\"contentType\":"
	          "\"text/plain\",\"precondition\":{\"ifVersion\":"
	          "\"18446744073709551615\"},\"lockToken\":\"tok\","
	          "\"requestId\":\"r-1\"}");
	ds_free(text);
	round_trip_all_options(&u.base);
	/* if_version 0 is still a choice: the oneof keeps it. */
	pre.if_version = 0;
	text = round_trip(&u.base, NULL);
	assert_non_null(
	    strstr(text, "\"precondition\":{\"ifVersion\":\"0\"}"));
	ds_free(text);
	pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_ABSENT;
	pre.if_absent = 1;
	round_trip_all_options(&u.base);
	pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_UNCONDITIONAL;
	pre.unconditional = 1;
	round_trip_all_options(&u.base);
	/* The set form (an If-Match list): a message inside the oneof,
	 * versions as strings like every uint64. */
	{
		Datasync__V1__VersionSet set = DATASYNC__V1__VERSION_SET__INIT;
		uint64_t vs[] = {1, UINT64_C(18446744073709551615)};

		set.n_versions = 2;
		set.versions = vs;
		pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_VERSION_IN;
		pre.if_version_in = &set;
		text = round_trip(&u.base, NULL);
		assert_non_null(strstr(text,
		    "\"precondition\":{\"ifVersionIn\":{\"versions\":[\"1\","
		    "\"18446744073709551615\"]}}"));
		ds_free(text);
		round_trip_all_options(&u.base);
		/* Empty is representable (the store refuses it). */
		set.n_versions = 0;
		round_trip_all_options(&u.base);
		pre.if_version_in = NULL;
	}
	/* No precondition at all is representable too (and refused by the
	 * service, not by the transcoder). */
	u.precondition = NULL;
	round_trip_all_options(&u.base);
}

static void
test_datasync_list_response_round_trips(void **state)
{
	Datasync__V1__LockInfo lock = DATASYNC__V1__LOCK_INFO__INIT;
	Datasync__V1__Record r[3];
	Datasync__V1__Record *recs[3];
	Datasync__V1__ListResponse lr = DATASYNC__V1__LIST_RESPONSE__INIT;
	char *text;
	int i;

	(void) state;
	lock.owner = "alice";
	lock.expires_at_ms = INT64_C(1700000000000);
	lock.fencing_token = UINT64_C(9007199254740993);
	for (i = 0; i < 3; i++) {
		datasync__v1__record__init(&r[i]);
		recs[i] = &r[i];
		r[i].version = (uint64_t) i + 1;
		r[i].revision = UINT64_C(1) << 60;
		r[i].created_at_ms = INT64_C(1699999999999);
	}
	r[0].key = "a";
	r[1].key = "b/c";
	r[1].lock = &lock;
	r[2].key = "d";
	r[2].deleted = 1;
	r[2].updated_by = "bob";
	lr.n_records = 3;
	lr.records = recs;
	lr.next_page_token = "next";
	lr.revision = 42;
	text = round_trip(&lr.base, NULL);
	assert_non_null(strstr(
	    text,
	    "{\"key\":\"b/c\",\"version\":\"2\",\"revision\":"
	    "\"1152921504606846976\",\"createdAtMs\":\"1699999999999\","
	    "\"lock\":{\"owner\":\"alice\",\"expiresAtMs\":\"1700000000000\","
	    "\"fencingToken\":\"9007199254740993\"}}"));
	ds_free(text);
	round_trip_all_options(&lr.base);
}

static void
test_every_datasync_and_nrpc_message_round_trips_empty(void **state)
{
	static const ProtobufCMessageDescriptor *all[] = {
	    &datasync__v1__lock_info__descriptor,
	    &datasync__v1__record__descriptor,
	    &datasync__v1__precondition__descriptor,
	    &datasync__v1__get_request__descriptor,
	    &datasync__v1__get_response__descriptor,
	    &datasync__v1__update_request__descriptor,
	    &datasync__v1__update_response__descriptor,
	    &datasync__v1__delete_request__descriptor,
	    &datasync__v1__delete_response__descriptor,
	    &datasync__v1__lock_request__descriptor,
	    &datasync__v1__lock_response__descriptor,
	    &datasync__v1__unlock_request__descriptor,
	    &datasync__v1__unlock_response__descriptor,
	    &datasync__v1__list_request__descriptor,
	    &datasync__v1__list_response__descriptor,
	    &nrpc__v1__metadata__descriptor,
	    &nrpc__v1__request__descriptor,
	    &nrpc__v1__status__descriptor,
	    &nrpc__v1__response__descriptor,
	};
	size_t i;

	(void) state;
	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		ProtobufCMessage *m = NULL;
		char *text;

		assert_int_equal(
		    pbjson_decode(all[i], "{}", 2, NULL, &m, NULL), PBJSON_OK);
		text = round_trip(m, NULL);
		assert_string_equal(text, "{}");
		ds_free(text);
		round_trip_all_options(m);
		protobuf_c_message_free_unpacked(m, NULL);
	}
}

static void
test_message_unpacked_from_the_wire_encodes_like_the_original(void **state)
{
	static uint8_t raw[] = {1, 2, 3};
	Pbjson__Test__Inner in = PBJSON__TEST__INNER__INIT;
	Pbjson__Test__Scalars s = PBJSON__TEST__SCALARS__INIT;
	Pbjson__Test__Scalars *wire;
	uint8_t *buf;
	size_t len;
	char *a = NULL;
	char *b = NULL;

	(void) state;
	in.s = "in";
	s.f_string = "s";
	s.f_bytes.len = 3;
	s.f_bytes.data = raw;
	s.f_inner = &in;
	s.f_int64 = -1;
	buf = packed(&s.base, &len);
	wire = pbjson__test__scalars__unpack(NULL, len, buf);
	assert_non_null(wire);
	assert_int_equal(pbjson_encode(&s.base, NULL, &a, NULL, NULL),
	                 PBJSON_OK);
	assert_int_equal(pbjson_encode(&wire->base, NULL, &b, NULL, NULL),
	                 PBJSON_OK);
	assert_string_equal(a, b);
	ds_free(a);
	ds_free(b);
	pbjson__test__scalars__free_unpacked(wire, NULL);
	free(buf);
}

/* decode_under_oom fails each allocation in turn: every call must return
 * PBJSON_ENOMEM (and leak nothing, which ASan checks) until enough
 * allocations succeed. */
static void
decode_under_oom(const ProtobufCMessageDescriptor *d, const char *json)
{
	ProtobufCMessage *m;
	pbjson_error err;
	pbjson_err rv;
	long n;

	for (n = 0;; n++) {
		m = NULL;
		ds_alloc_fail_after(n);
		rv = pbjson_decode(d, json, strlen(json), NULL, &m, &err);
		ds_alloc_fail_reset();
		if (rv == PBJSON_OK) {
			break;
		}
		if (rv != PBJSON_ENOMEM) {
			fail_msg("allocation %ld: %s", n, err.message);
		}
		assert_null(m);
		assert_string_equal(err.message + strlen(err.message) - 13,
		                    "out of memory");
	}
	assert_true(n > 3);
	protobuf_c_message_free_unpacked(m, NULL);
}

static void
test_decode_survives_every_allocation_failing(void **state)
{
	(void) state;
	decode_under_oom(
	    &pbjson__test__maps__descriptor,
	    "{\"counts\":{\"a\":1,\"b\":2},\"byId\":{\"1\":{\"s\":\"x\","
	    "\"child\":{\"s\":\"y\"}}},\"blobs\":{\"k\":\"AQID\"}}");
	decode_under_oom(
	    &pbjson__test__repeated__descriptor,
	    "{\"rString\":[\"a\",\"\",\"c\"],\"rBytes\":[\"AQ\",\"\"],"
	    "\"rInner\":[{\"s\":\"a\"},{\"child\":{}}],\"rInt32\":[1,2]}");
	decode_under_oom(&pbjson__test__choice__descriptor,
	                 "{\"name\":\"n\",\"pickInner\":{\"s\":\"x\"}}");
	decode_under_oom(
	    &datasync__v1__list_response__descriptor,
	    "{\"records\":[{\"key\":\"a\",\"value\":\"AQ==\",\"lock\":"
	    "{\"owner\":\"o\"}},{\"key\":\"b\"}],\"nextPageToken\":\"t\"}");
}

/* concurrent_worker decodes and encodes the same document over and over
 * and counts the results that differ from the expected text. cmocka's
 * asserts are not for threads, so it only counts. */
static void *
concurrent_worker(void *arg)
{
	const char *text = arg;
	size_t len = strlen(text);
	uintptr_t bad = 0;
	int i;

	for (i = 0; i < 300; i++) {
		ProtobufCMessage *m = NULL;
		char *again = NULL;

		if (pbjson_decode(&datasync__v1__list_response__descriptor,
		                  text, len, NULL, &m, NULL) != PBJSON_OK ||
		    pbjson_encode(m, NULL, &again, NULL, NULL) != PBJSON_OK ||
		    strcmp(again, text) != 0) {
			bad++;
		}
		ds_free(again);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	return (void *) bad;
}

static void
test_concurrent_calls_share_no_state(void **state)
{
	static const char text[] =
	    "{\"records\":[{\"key\":\"a\",\"value\":\"AQID\","
	    "\"version\":\"18446744073709551615\",\"lock\":{\"owner\":"
	    "\"o\"}},{\"key\":\"b\"}],\"nextPageToken\":\"t\","
	    "\"revision\":\"9007199254740993\"}";
	pthread_t t[4];
	void *bad;
	int i;

	(void) state;
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_create(&t[i], NULL, concurrent_worker,
		                                (void *) text),
		                 0);
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], &bad), 0);
		assert_null(bad);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_scalar_type_round_trips),
	    cmocka_unit_test(
	        test_nested_repeated_and_enum_messages_round_trip),
	    cmocka_unit_test(test_oneof_members_and_optional_round_trip),
	    cmocka_unit_test(test_maps_round_trip),
	    cmocka_unit_test(test_datasync_update_request_round_trips),
	    cmocka_unit_test(test_datasync_list_response_round_trips),
	    cmocka_unit_test(
	        test_every_datasync_and_nrpc_message_round_trips_empty),
	    cmocka_unit_test(
	        test_message_unpacked_from_the_wire_encodes_like_the_original),
	    cmocka_unit_test(test_decode_survives_every_allocation_failing),
	    cmocka_unit_test(test_concurrent_calls_share_no_state),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
