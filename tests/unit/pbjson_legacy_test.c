/*
 * pbjson_legacy_test.c - proto2 field semantics (optional with has_
 * flags, default values, required fields) and the map heuristic, through
 * a descriptor written by hand the way protoc-c writes one.
 *
 * Why by hand: protoc-c 1.4.1 refuses proto3 `optional`, and the test
 * proto is proto3, so nothing generated here has LABEL_OPTIONAL or
 * LABEL_REQUIRED fields. The descriptor below is what protoc-c emits for
 *
 *   syntax = "proto2";
 *   package pbjson.test;
 *   message Legacy {
 *     message PairEntry { optional string key = 1; optional int32 value = 2; }
 *     optional int32 count = 1 [default = 7];
 *     optional string label = 2 [default = "dflt"];
 *     optional bytes blob = 3;
 *     optional Inner inner = 4;
 *     required int64 id = 5;
 *     repeated string tags = 6;
 *     repeated PairEntry pair = 7;   // named as protoc names map entries
 *     repeated PairEntry pairs = 8;  // not: stays an array
 *   }
 *
 * except that PairEntry's fields are written as proto3 would write them
 * (LABEL_NONE), as protoc-c does for a real map's entry.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ds_alloc.h"
#include "pbjson.h"
#include "pbjson_test.pb-c.h"

/* --- the hand-written descriptors --- */

typedef struct legacy_pair {
	ProtobufCMessage base;
	char *key;
	int32_t value;
} legacy_pair;

typedef struct legacy {
	ProtobufCMessage base;
	protobuf_c_boolean has_count;
	int32_t count;
	char *label;
	protobuf_c_boolean has_blob;
	ProtobufCBinaryData blob;
	Pbjson__Test__Inner *inner;
	int64_t id;
	size_t n_tags;
	char **tags;
	size_t n_pair;
	legacy_pair **pair;
	size_t n_pairs;
	legacy_pair **pairs;
} legacy;

static const ProtobufCMessageDescriptor legacy_pair_descriptor;
static const ProtobufCMessageDescriptor legacy_descriptor;

static const int32_t legacy_count_default = 7;
static char legacy_label_default[] = "dflt";

static void
legacy_pair_init(ProtobufCMessage *m)
{
	static const legacy_pair init = {
	    PROTOBUF_C_MESSAGE_INIT(&legacy_pair_descriptor),
	    (char *) protobuf_c_empty_string, 0};

	*(legacy_pair *) m = init;
}

static void
legacy_init(ProtobufCMessage *m)
{
	static const legacy init = {
	    PROTOBUF_C_MESSAGE_INIT(&legacy_descriptor),
	    0,
	    7,
	    legacy_label_default,
	    0,
	    {0, NULL},
	    NULL,
	    0,
	    0,
	    NULL,
	    0,
	    NULL,
	    0,
	    NULL};

	*(legacy *) m = init;
}

static const ProtobufCFieldDescriptor legacy_pair_fields[] = {
    {"key", 1, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_STRING, 0,
     offsetof(legacy_pair, key), NULL, &protobuf_c_empty_string, 0, 0, NULL,
     NULL},
    {"value", 2, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_INT32, 0,
     offsetof(legacy_pair, value), NULL, NULL, 0, 0, NULL, NULL},
};
static const unsigned legacy_pair_by_name[] = {0, 1};
static const ProtobufCIntRange legacy_pair_ranges[] = {{1, 0}, {0, 2}};
static const ProtobufCMessageDescriptor legacy_pair_descriptor = {
    PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
    "pbjson.test.Legacy.PairEntry",
    "PairEntry",
    "Legacy__PairEntry",
    "pbjson.test",
    sizeof(legacy_pair),
    2,
    legacy_pair_fields,
    legacy_pair_by_name,
    1,
    legacy_pair_ranges,
    legacy_pair_init,
    NULL,
    NULL,
    NULL};

static const ProtobufCFieldDescriptor legacy_fields[] = {
    {"count", 1, PROTOBUF_C_LABEL_OPTIONAL, PROTOBUF_C_TYPE_INT32,
     offsetof(legacy, has_count), offsetof(legacy, count), NULL,
     &legacy_count_default, 0, 0, NULL, NULL},
    {"label", 2, PROTOBUF_C_LABEL_OPTIONAL, PROTOBUF_C_TYPE_STRING, 0,
     offsetof(legacy, label), NULL, legacy_label_default, 0, 0, NULL, NULL},
    {"blob", 3, PROTOBUF_C_LABEL_OPTIONAL, PROTOBUF_C_TYPE_BYTES,
     offsetof(legacy, has_blob), offsetof(legacy, blob), NULL, NULL, 0, 0,
     NULL, NULL},
    {"inner", 4, PROTOBUF_C_LABEL_OPTIONAL, PROTOBUF_C_TYPE_MESSAGE, 0,
     offsetof(legacy, inner), &pbjson__test__inner__descriptor, NULL, 0, 0,
     NULL, NULL},
    {"id", 5, PROTOBUF_C_LABEL_REQUIRED, PROTOBUF_C_TYPE_INT64, 0,
     offsetof(legacy, id), NULL, NULL, 0, 0, NULL, NULL},
    {"tags", 6, PROTOBUF_C_LABEL_REPEATED, PROTOBUF_C_TYPE_STRING,
     offsetof(legacy, n_tags), offsetof(legacy, tags), NULL, NULL, 0, 0, NULL,
     NULL},
    {"pair", 7, PROTOBUF_C_LABEL_REPEATED, PROTOBUF_C_TYPE_MESSAGE,
     offsetof(legacy, n_pair), offsetof(legacy, pair), &legacy_pair_descriptor,
     NULL, 0, 0, NULL, NULL},
    {"pairs", 8, PROTOBUF_C_LABEL_REPEATED, PROTOBUF_C_TYPE_MESSAGE,
     offsetof(legacy, n_pairs), offsetof(legacy, pairs),
     &legacy_pair_descriptor, NULL, 0, 0, NULL, NULL},
};
/* blob, count, id, inner, label, pair, pairs, tags */
static const unsigned legacy_by_name[] = {2, 0, 4, 3, 1, 6, 7, 5};
static const ProtobufCIntRange legacy_ranges[] = {{1, 0}, {0, 8}};
static const ProtobufCMessageDescriptor legacy_descriptor = {
    PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
    "pbjson.test.Legacy",
    "Legacy",
    "Legacy",
    "pbjson.test",
    sizeof(legacy),
    8,
    legacy_fields,
    legacy_by_name,
    1,
    legacy_ranges,
    legacy_init,
    NULL,
    NULL,
    NULL};

/* --- helpers --- */

static void
assert_encodes_to(const legacy *m, const char *want)
{
	char *got = NULL;
	pbjson_error err;

	if (pbjson_encode(&m->base, NULL, &got, NULL, &err) != PBJSON_OK) {
		fail_msg("encode: %s", err.message);
	}
	assert_string_equal(got, want);
	ds_free(got);
}

static legacy *
decode_ok(const char *json)
{
	ProtobufCMessage *m = NULL;
	pbjson_error err;

	if (pbjson_decode(&legacy_descriptor, json, strlen(json), NULL, &m,
	                  &err) != PBJSON_OK) {
		fail_msg("decode %s: %s", json, err.message);
	}
	assert_true(protobuf_c_message_check(m));
	return (legacy *) m;
}

/* --- tests --- */

static void
test_proto2_optional_fields_encode_only_when_present(void **state)
{
	legacy m;
	Pbjson__Test__Inner in = PBJSON__TEST__INNER__INIT;

	(void) state;
	legacy_init(&m.base);
	m.id = 3;
	/* count holds its default 7 and label its default pointer: unset. */
	assert_encodes_to(&m, "{\"id\":\"3\"}");
	m.has_count = 1;
	m.count = 0;
	m.has_blob = 1;
	m.inner = &in;
	assert_encodes_to(
	    &m, "{\"count\":0,\"blob\":\"\",\"inner\":{},\"id\":\"3\"}");
	m.label = "";
	m.has_blob = 0;
	m.inner = NULL;
	assert_encodes_to(&m, "{\"count\":0,\"label\":\"\",\"id\":\"3\"}");
}

static void
test_proto2_absent_fields_keep_their_defaults(void **state)
{
	legacy *m;

	(void) state;
	m = decode_ok("{\"id\":\"5\"}");
	assert_false(m->has_count);
	assert_int_equal(m->count, 7);
	/* The default pointer stays: free_unpacked must not free it (ASan
	 * would report freeing a static array). */
	assert_ptr_equal(m->label, legacy_label_default);
	assert_false(m->has_blob);
	assert_null(m->inner);
	assert_true(m->id == 5);
	protobuf_c_message_free_unpacked(&m->base, NULL);
}

static void
test_proto2_present_fields_are_set_and_owned(void **state)
{
	legacy *m;
	legacy *wire;
	uint8_t *buf;
	size_t len;
	char *a = NULL;
	char *b = NULL;

	(void) state;
	m = decode_ok(
	    "{\"id\":\"-1\",\"count\":0,\"label\":\"\",\"blob\":\"\","
	    "\"inner\":{},\"tags\":[\"a\",\"\"]}");
	assert_true(m->has_count);
	assert_int_equal(m->count, 0);
	assert_ptr_not_equal(m->label, legacy_label_default);
	assert_string_equal(m->label, "");
	assert_true(m->has_blob);
	assert_null(m->blob.data);
	assert_non_null(m->inner);
	assert_int_equal(m->n_tags, 2);
	/* protobuf-c's own codec agrees on what is present. */
	len = protobuf_c_message_get_packed_size(&m->base);
	buf = malloc(len);
	assert_non_null(buf);
	assert_int_equal(protobuf_c_message_pack(&m->base, buf), len);
	wire = (legacy *) protobuf_c_message_unpack(&legacy_descriptor, NULL,
	                                            len, buf);
	assert_non_null(wire);
	assert_int_equal(pbjson_encode(&m->base, NULL, &a, NULL, NULL),
	                 PBJSON_OK);
	assert_int_equal(pbjson_encode(&wire->base, NULL, &b, NULL, NULL),
	                 PBJSON_OK);
	assert_string_equal(a, b);
	assert_string_equal(
	    a, "{\"count\":0,\"label\":\"\",\"blob\":\"\",\"inner\":{},\"id\":"
	       "\"-1\",\"tags\":[\"a\",\"\"]}");
	ds_free(a);
	ds_free(b);
	free(buf);
	protobuf_c_message_free_unpacked(&wire->base, NULL);
	protobuf_c_message_free_unpacked(&m->base, NULL);
}

static void
test_proto2_missing_required_field_is_refused(void **state)
{
	ProtobufCMessage *m = NULL;
	pbjson_error err;

	(void) state;
	assert_int_equal(pbjson_decode(&legacy_descriptor, "{\"count\":1}", 11,
	                               NULL, &m, &err),
	                 PBJSON_EREQUIRED);
	assert_string_equal(err.path, "");
	assert_string_equal(
	    err.message,
	    "missing required field \"id\" of pbjson.test.Legacy");
	/* null does not count as given. */
	assert_int_equal(pbjson_decode(&legacy_descriptor, "{\"id\":null}", 11,
	                               NULL, &m, &err),
	                 PBJSON_EREQUIRED);
	assert_null(m);
}

static void
test_map_shape_is_a_map_only_under_protocs_entry_name(void **state)
{
	legacy m;
	legacy_pair p = {PROTOBUF_C_MESSAGE_INIT(&legacy_pair_descriptor), "k",
	                 1};
	legacy_pair *ps[] = {&p};
	legacy *back;

	(void) state;
	legacy_init(&m.base);
	m.n_pair = 1;
	m.pair = ps;
	m.n_pairs = 1;
	m.pairs = ps;
	/* "pair" -> "PairEntry" is protoc's entry name: a map. "pairs"
	 * would be "PairsEntry": an ordinary repeated message. */
	assert_encodes_to(
	    &m, "{\"id\":\"0\",\"pair\":{\"k\":1},\"pairs\":[{\"key\":\"k\","
	        "\"value\":1}]}");
	back = decode_ok("{\"id\":0,\"pair\":{\"k\":1,\"\":2},"
	                 "\"pairs\":[{\"key\":\"k\",\"value\":1}]}");
	assert_int_equal(back->n_pair, 2);
	assert_string_equal(back->pair[0]->key, "k");
	assert_ptr_equal(back->pair[1]->key, protobuf_c_empty_string);
	assert_int_equal(back->pair[1]->value, 2);
	assert_int_equal(back->n_pairs, 1);
	assert_int_equal(back->pairs[0]->value, 1);
	protobuf_c_message_free_unpacked(&back->base, NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
	        test_proto2_optional_fields_encode_only_when_present),
	    cmocka_unit_test(test_proto2_absent_fields_keep_their_defaults),
	    cmocka_unit_test(test_proto2_present_fields_are_set_and_owned),
	    cmocka_unit_test(test_proto2_missing_required_field_is_refused),
	    cmocka_unit_test(
	        test_map_shape_is_a_map_only_under_protocs_entry_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
