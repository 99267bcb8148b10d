/*
 * pbjson_encode_test.c - protobuf-c messages -> proto3 JSON text: field
 * names, which fields appear, the form of every type, options, limits.
 */
#include <float.h>
#include <locale.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ds_alloc.h"
#include "pbjson.h"
#include "pbjson_test.pb-c.h"

/* encode returns msg's JSON (owned, ds_free), asserting success. */
static char *
encode(const void *msg, const pbjson_options *o)
{
	char *out = NULL;
	size_t len = 0;
	pbjson_error err;
	pbjson_err rv;

	rv = pbjson_encode(msg, o, &out, &len, &err);
	if (rv != PBJSON_OK) {
		fail_msg("pbjson_encode: %s: %s", pbjson_strerror(rv),
		         err.message);
	}
	assert_non_null(out);
	assert_int_equal(strlen(out), len);
	return out;
}

static void
assert_encodes_to(const void *msg, const pbjson_options *o, const char *want)
{
	char *got = encode(msg, o);

	assert_string_equal(got, want);
	ds_free(got);
}

static void
test_encode_empty_message_is_empty_object(void **state)
{
	Pbjson__Test__Scalars s = PBJSON__TEST__SCALARS__INIT;

	(void) state;
	assert_encodes_to(&s, NULL, "{}");
}

static void
test_encode_every_scalar_type_in_its_proto3_form(void **state)
{
	static uint8_t raw[] = {0x00, 0xff, 0x10};
	Pbjson__Test__Inner in = PBJSON__TEST__INNER__INIT;
	Pbjson__Test__Scalars s = PBJSON__TEST__SCALARS__INIT;

	(void) state;
	in.n = 3;
	s.f_double = 1.5;
	s.f_float = 0.1f;
	s.f_int32 = -7;
	s.f_int64 = INT64_MIN;
	s.f_uint32 = UINT32_MAX;
	s.f_uint64 = UINT64_MAX;
	s.f_sint32 = -1;
	s.f_sint64 = INT64_C(9007199254740993);
	s.f_fixed32 = 7;
	s.f_fixed64 = 8;
	s.f_sfixed32 = -9;
	s.f_sfixed64 = -10;
	s.f_bool = 1;
	s.f_string = "h\xc3\xa9llo \"q\"\n";
	s.f_bytes.len = sizeof(raw);
	s.f_bytes.data = raw;
	s.f_enum = PBJSON__TEST__COLOR__COLOR_GREEN;
	s.f_inner = &in;
	s.a_long_field_2_name = 5;
	assert_encodes_to(
	    &s, NULL,
	    "{\"fDouble\":1.5,\"fFloat\":0.1,\"fInt32\":-7,"
	    "\"fInt64\":\"-9223372036854775808\",\"fUint32\":4294967295,"
	    "\"fUint64\":\"18446744073709551615\",\"fSint32\":-1,"
	    "\"fSint64\":\"9007199254740993\",\"fFixed32\":7,"
	    "\"fFixed64\":\"8\",\"fSfixed32\":-9,\"fSfixed64\":\"-10\","
	    "\"fBool\":true,\"fString\":\"h\xc3\xa9llo \\\"q\\\"\\n\","
	    "\"fBytes\":\"AP8Q\",\"fEnum\":\"COLOR_GREEN\","
	    "\"fInner\":{\"n\":3},\"aLongField2Name\":5}");
}

static void
test_encode_original_names_option_keeps_proto_names(void **state)
{
	Pbjson__Test__Scalars s = PBJSON__TEST__SCALARS__INIT;
	pbjson_options o = {.original_names = true};

	(void) state;
	s.f_int32 = 1;
	s.a_long_field_2_name = 2;
	assert_encodes_to(&s, &o, "{\"f_int32\":1,\"a_long_field_2_name\":2}");
}

static void
test_encode_emit_defaults_adds_fields_without_presence_only(void **state)
{
	Pbjson__Test__Scalars s = PBJSON__TEST__SCALARS__INIT;
	Pbjson__Test__Repeated r = PBJSON__TEST__REPEATED__INIT;
	Pbjson__Test__Maps m = PBJSON__TEST__MAPS__INIT;
	Pbjson__Test__Choice c = PBJSON__TEST__CHOICE__INIT;
	pbjson_options o = {.emit_defaults = true};
	char *got;

	(void) state;
	assert_encodes_to(
	    &s, &o,
	    "{\"fDouble\":0.0,\"fFloat\":0.0,\"fInt32\":0,\"fInt64\":\"0\","
	    "\"fUint32\":0,\"fUint64\":\"0\",\"fSint32\":0,\"fSint64\":\"0\","
	    "\"fFixed32\":0,\"fFixed64\":\"0\",\"fSfixed32\":0,"
	    "\"fSfixed64\":\"0\",\"fBool\":false,\"fString\":\"\","
	    "\"fBytes\":\"\",\"fEnum\":\"COLOR_UNSPECIFIED\","
	    "\"aLongField2Name\":0}");
	got = encode(&r, &o);
	assert_non_null(strstr(got, "\"rInt32\":[]"));
	assert_non_null(strstr(got, "\"rInner\":[]"));
	ds_free(got);
	assert_encodes_to(
	    &m, &o,
	    "{\"counts\":{},\"byId\":{},\"flags\":{},\"colors\":{},"
	    "\"blobs\":{}}");
	/* Oneof members (and so proto3 optional) have presence. */
	assert_encodes_to(&c, &o, "{\"name\":\"\"}");
}

static void
test_encode_nan_and_infinities_are_strings(void **state)
{
	Pbjson__Test__Scalars s = PBJSON__TEST__SCALARS__INIT;

	(void) state;
	s.f_double = NAN;
	s.f_float = INFINITY;
	assert_encodes_to(&s, NULL,
	                  "{\"fDouble\":\"NaN\",\"fFloat\":\"Infinity\"}");
	s.f_double = -INFINITY;
	s.f_float = NAN;
	assert_encodes_to(&s, NULL,
	                  "{\"fDouble\":\"-Infinity\",\"fFloat\":\"NaN\"}");
}

static void
test_encode_reals_use_shortest_round_trip_form(void **state)
{
	Pbjson__Test__Scalars s = PBJSON__TEST__SCALARS__INIT;

	(void) state;
	s.f_double = 0.1;
	s.f_float = 3.4028235e38f;
	assert_encodes_to(&s, NULL,
	                  "{\"fDouble\":0.1,\"fFloat\":3.4028235e+38}");
	s.f_double = 5;
	s.f_float = 1e-45f; /* the smallest denormal */
	assert_encodes_to(&s, NULL, "{\"fDouble\":5.0,\"fFloat\":1e-45}");
	s.f_double = DBL_MAX;
	s.f_float = -2.5f;
	assert_encodes_to(
	    &s, NULL, "{\"fDouble\":1.7976931348623157e+308,\"fFloat\":-2.5}");
	/* -0 equals 0: a default, omitted like protobuf-c's packer does. */
	s.f_double = -0.0;
	s.f_float = 0;
	assert_encodes_to(&s, NULL, "{}");
}

static void
test_encode_enum_without_a_name_is_its_number(void **state)
{
	Pbjson__Test__Scalars s = PBJSON__TEST__SCALARS__INIT;

	(void) state;
	s.f_enum = (Pbjson__Test__Color) 42;
	assert_encodes_to(&s, NULL, "{\"fEnum\":42}");
	s.f_enum = (Pbjson__Test__Color) -3;
	assert_encodes_to(&s, NULL, "{\"fEnum\":-3}");
}

static void
test_encode_repeated_fields_are_arrays_packed_or_not(void **state)
{
	int32_t ints[] = {1, -2, 3};
	int64_t big[] = {INT64_MAX};
	char *strs[] = {"a", ""};
	ProtobufCBinaryData blobs[] = {{1, (uint8_t *) "\xfb"}, {0, NULL}};
	Pbjson__Test__Color colors[] = {PBJSON__TEST__COLOR__COLOR_RED,
	                                (Pbjson__Test__Color) 9};
	Pbjson__Test__Inner i1 = PBJSON__TEST__INNER__INIT;
	Pbjson__Test__Inner i2 = PBJSON__TEST__INNER__INIT;
	Pbjson__Test__Inner *inners[] = {&i1, &i2};
	Pbjson__Test__Repeated r = PBJSON__TEST__REPEATED__INIT;

	(void) state;
	i1.s = "x";
	r.n_r_int32 = 3;
	r.r_int32 = ints;
	r.n_r_int32_unpacked = 2;
	r.r_int32_unpacked = ints;
	r.n_r_int64 = 1;
	r.r_int64 = big;
	r.n_r_string = 2;
	r.r_string = strs;
	r.n_r_bytes = 2;
	r.r_bytes = blobs;
	r.n_r_inner = 2;
	r.r_inner = inners;
	r.n_r_enum = 2;
	r.r_enum = colors;
	r.n_r_enum_unpacked = 1;
	r.r_enum_unpacked = colors;
	assert_encodes_to(
	    &r, NULL,
	    "{\"rInt32\":[1,-2,3],\"rInt32Unpacked\":[1,-2],"
	    "\"rInt64\":[\"9223372036854775807\"],\"rString\":[\"a\",\"\"],"
	    "\"rBytes\":[\"+w==\",\"\"],\"rInner\":[{\"s\":\"x\"},{}],"
	    "\"rEnum\":[\"COLOR_RED\",9],\"rEnumUnpacked\":[\"COLOR_RED\"]}");
}

static void
test_encode_maps_are_objects_with_string_keys(void **state)
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
	Pbjson__Test__Maps__FlagsEntry *flags[] = {&f1};
	Pbjson__Test__Maps__ColorsEntry k1 =
	    PBJSON__TEST__MAPS__COLORS_ENTRY__INIT;
	Pbjson__Test__Maps__ColorsEntry *colors[] = {&k1};
	Pbjson__Test__Inner in = PBJSON__TEST__INNER__INIT;
	Pbjson__Test__Maps m = PBJSON__TEST__MAPS__INIT;

	(void) state;
	c1.key = "a";
	c1.value = 1;
	c2.key = "b c";
	c2.value = 2;
	in.n = 4;
	b1.key = -5;
	b1.value = &in;
	f1.key = 1;
	f1.value = "yes";
	k1.key = UINT32_MAX;
	k1.value = PBJSON__TEST__COLOR__COLOR_RED;
	m.n_counts = 2;
	m.counts = counts;
	m.n_by_id = 1;
	m.by_id = byid;
	m.n_flags = 1;
	m.flags = flags;
	m.n_colors = 1;
	m.colors = colors;
	assert_encodes_to(
	    &m, NULL,
	    "{\"counts\":{\"a\":1,\"b c\":2},\"byId\":{\"-5\":{\"n\":4}},"
	    "\"flags\":{\"true\":\"yes\"},"
	    "\"colors\":{\"4294967295\":\"COLOR_RED\"}}");
	/* An entry without a value means the default value. */
	b1.value = NULL;
	m.n_counts = 0;
	m.n_flags = 0;
	m.n_colors = 0;
	assert_encodes_to(&m, NULL, "{\"byId\":{\"-5\":{}}}");
}

static void
test_encode_oneof_member_is_emitted_even_when_default(void **state)
{
	Pbjson__Test__Choice c = PBJSON__TEST__CHOICE__INIT;
	Pbjson__Test__Inner in = PBJSON__TEST__INNER__INIT;

	(void) state;
	c.pick_case = PBJSON__TEST__CHOICE__PICK_PICK_TEXT;
	c.pick_text = "";
	assert_encodes_to(&c, NULL, "{\"pickText\":\"\"}");
	c.pick_case = PBJSON__TEST__CHOICE__PICK_PICK_NUMBER;
	c.pick_number = 0;
	c._maybe_count_case = PBJSON__TEST__CHOICE___MAYBE_COUNT_MAYBE_COUNT;
	c.maybe_count = 0;
	assert_encodes_to(&c, NULL, "{\"pickNumber\":\"0\",\"maybeCount\":0}");
	c.pick_case = PBJSON__TEST__CHOICE__PICK_PICK_INNER;
	c.pick_inner = &in;
	c._maybe_count_case = PBJSON__TEST__CHOICE___MAYBE_COUNT__NOT_SET;
	assert_encodes_to(&c, NULL, "{\"pickInner\":{}}");
	c.pick_case = PBJSON__TEST__CHOICE__PICK_PICK_BYTES;
	c.pick_bytes.len = 0;
	c.pick_bytes.data = NULL;
	assert_encodes_to(&c, NULL, "{\"pickBytes\":\"\"}");
}

static void
test_encode_pretty_indents_by_two_spaces(void **state)
{
	int32_t ints[] = {1, 2};
	Pbjson__Test__Repeated r = PBJSON__TEST__REPEATED__INIT;
	Pbjson__Test__Maps m = PBJSON__TEST__MAPS__INIT;
	pbjson_options o = {.pretty = true};

	(void) state;
	r.n_r_int32 = 2;
	r.r_int32 = ints;
	assert_encodes_to(&r, &o, "{\n  \"rInt32\": [\n    1,\n    2\n  ]\n}");
	assert_encodes_to(&m, &o, "{}");
}

static void
test_to_json_value_embeds_in_a_larger_document(void **state)
{
	Pbjson__Test__Scalars s = PBJSON__TEST__SCALARS__INIT;
	json_t *body;
	json_t *msg = NULL;
	char *text = NULL;
	pbjson_error err;

	(void) state;
	s.f_int64 = 42;
	s.f_float = 0.1f;
	assert_int_equal(pbjson_to_json(&s.base, NULL, &msg, &err), PBJSON_OK);
	assert_int_equal(msg->refcount, 1);
	/* The float holds the double of its shortest form. */
	assert_true(json_real_value(json_object_get(msg, "fFloat")) == 0.1);
	body = json_pack("{s:s, s:o}", "code", "ABORTED", "current", msg);
	assert_non_null(body);
	assert_int_equal(pbjson_dump(body, NULL, &text, NULL, &err),
	                 PBJSON_OK);
	assert_string_equal(
	    text, "{\"code\":\"ABORTED\",\"current\":{\"fFloat\":0.1,"
	          "\"fInt64\":\"42\"}}");
	ds_free(text);
	json_decref(body);
}

static void
test_encode_output_over_max_bytes_is_too_large(void **state)
{
	Pbjson__Test__Scalars s = PBJSON__TEST__SCALARS__INIT;
	pbjson_options o = {0};
	char *out = (char *) "untouched";
	size_t len = 12345;
	pbjson_error err;
	char *full;

	(void) state;
	s.f_string = "0123456789";
	full = encode(&s, NULL);
	o.max_bytes = strlen(full); /* exactly at the limit: fine */
	ds_free(encode(&s, &o));
	o.max_bytes = strlen(full) - 1;
	assert_int_equal(pbjson_encode(&s.base, &o, &out, &len, &err),
	                 PBJSON_ETOOLARGE);
	assert_string_equal(out, "untouched");
	assert_int_equal(len, 12345);
	assert_string_equal(err.path, "");
	assert_non_null(strstr(err.message, "exceeds max_bytes ("));
	ds_free(full);
	o.max_bytes = PBJSON_MAX_BYTES_HARD + 1;
	assert_int_equal(pbjson_encode(&s.base, &o, &out, &len, &err),
	                 PBJSON_EINVAL);
	assert_non_null(strstr(err.message, "PBJSON_MAX_BYTES_HARD"));
}

static void
test_encode_bytes_too_large_fail_before_allocating(void **state)
{
	Pbjson__Test__Scalars s = PBJSON__TEST__SCALARS__INIT;
	pbjson_options o = {.max_bytes = 64};
	char *out = NULL;
	pbjson_error err;

	(void) state;
	/* A length no allocation could satisfy: the check comes first. */
	s.f_bytes.len = SIZE_MAX / 2;
	s.f_bytes.data = (uint8_t *) "x";
	assert_int_equal(pbjson_encode(&s.base, &o, &out, NULL, &err),
	                 PBJSON_ETOOLARGE);
	assert_string_equal(err.path, "fBytes");
	assert_null(out);
}

static void
test_encode_string_that_is_not_utf8_is_refused(void **state)
{
	Pbjson__Test__Scalars s = PBJSON__TEST__SCALARS__INIT;
	Pbjson__Test__Maps__CountsEntry c1 =
	    PBJSON__TEST__MAPS__COUNTS_ENTRY__INIT;
	Pbjson__Test__Maps__CountsEntry *counts[] = {&c1};
	Pbjson__Test__Maps m = PBJSON__TEST__MAPS__INIT;
	char *out = NULL;
	pbjson_error err;

	(void) state;
	s.f_string = "ok\xff";
	assert_int_equal(pbjson_encode(&s.base, NULL, &out, NULL, &err),
	                 PBJSON_EUTF8);
	assert_string_equal(err.path, "fString");
	assert_string_equal(err.message, "fString: string is not valid UTF-8");
	c1.key = "\xc3";
	m.n_counts = 1;
	m.counts = counts;
	assert_int_equal(pbjson_encode(&m.base, NULL, &out, NULL, &err),
	                 PBJSON_EUTF8);
	assert_string_equal(err.path, "counts[0]");
	assert_null(out);
}

static void
test_encode_depth_is_capped_at_max_depth(void **state)
{
	Pbjson__Test__Inner chain[PBJSON_MAX_DEPTH + 1];
	char *out = NULL;
	pbjson_error err;
	int i;

	(void) state;
	for (i = 0; i <= PBJSON_MAX_DEPTH; i++) {
		pbjson__test__inner__init(&chain[i]);
		chain[i].child = i < PBJSON_MAX_DEPTH ? &chain[i + 1] : NULL;
	}
	/* PBJSON_MAX_DEPTH messages, the outermost included: fine. */
	ds_free(encode(&chain[1], NULL));
	/* One more: refused, and the message names the limit. */
	assert_int_equal(pbjson_encode(&chain[0].base, NULL, &out, NULL, &err),
	                 PBJSON_EDEPTH);
	assert_non_null(strstr(err.message, "PBJSON_MAX_DEPTH (64)"));
	assert_int_equal(strncmp(err.path, "child.child.child", 17), 0);
	assert_null(out);
}

static void
test_encode_null_element_of_repeated_message_is_invalid(void **state)
{
	Pbjson__Test__Inner i1 = PBJSON__TEST__INNER__INIT;
	Pbjson__Test__Inner *inners[] = {&i1, NULL};
	Pbjson__Test__Repeated r = PBJSON__TEST__REPEATED__INIT;
	char *out = NULL;
	pbjson_error err;

	(void) state;
	r.n_r_inner = 2;
	r.r_inner = inners;
	assert_int_equal(pbjson_encode(&r.base, NULL, &out, NULL, &err),
	                 PBJSON_EINVAL);
	assert_string_equal(err.path, "rInner[1]");
	assert_null(out);
	assert_int_equal(pbjson_encode(NULL, NULL, &out, NULL, &err),
	                 PBJSON_EINVAL);
	assert_int_equal(pbjson_encode(&r.base, NULL, NULL, NULL, NULL),
	                 PBJSON_EINVAL);
}

static void
test_dump_escapes_what_json_requires(void **state)
{
	json_t *j = json_object();
	char *text = NULL;
	size_t len = 0;
	pbjson_error err;

	(void) state;
	assert_int_equal(
	    json_object_set_new(j, "k\n", json_stringn("a\x01\"\\/\t\0z", 8)),
	    0);
	assert_int_equal(json_object_set_new(j, "n", json_null()), 0);
	assert_int_equal(pbjson_dump(j, NULL, &text, &len, &err), PBJSON_OK);
	assert_string_equal(
	    text, "{\"k\\n\":\"a\\u0001\\\"\\\\/\\t\\u0000z\",\"n\":null}");
	assert_int_equal(len, strlen(text));
	ds_free(text);
	json_decref(j);
}

static void
test_dump_refuses_json_nested_past_its_cap(void **state)
{
	json_t *root = json_array();
	json_t *cur = root;
	char *text = NULL;
	pbjson_error err;
	int i;

	(void) state;
	for (i = 1; i < PBJSON_MAX_JSON_DEPTH; i++) {
		json_t *next = json_array();

		assert_int_equal(json_array_append_new(cur, next), 0);
		cur = next;
	}
	assert_int_equal(pbjson_dump(root, NULL, &text, NULL, &err),
	                 PBJSON_OK);
	ds_free(text);
	text = NULL;
	assert_int_equal(json_array_append_new(cur, json_array()), 0);
	assert_int_equal(pbjson_dump(root, NULL, &text, NULL, &err),
	                 PBJSON_EDEPTH);
	assert_null(text);
	json_decref(root);
}

static void
test_numbers_ignore_a_decimal_comma_locale(void **state)
{
	static const char *names[] = {"de_DE.UTF-8", "de_DE.utf8",
	                              "fr_FR.UTF-8", "fr_FR.utf8",
	                              "ru_RU.UTF-8", NULL};
	Pbjson__Test__Scalars s = PBJSON__TEST__SCALARS__INIT;
	const char *found = NULL;
	ProtobufCMessage *back = NULL;
	char text[16];
	int i;

	(void) state;
	for (i = 0; names[i] != NULL && found == NULL; i++) {
		found = setlocale(LC_NUMERIC, names[i]);
	}
	if (found == NULL) {
		/* No such locale installed; one can be built with
		 * `localedef -i de_DE -f UTF-8 DIR/de_DE.UTF-8` and used
		 * with LOCPATH=DIR. */
		skip();
	}
	s.f_double = 0.5;
	s.f_float = 1.25f;
	assert_encodes_to(&s, NULL, "{\"fDouble\":0.5,\"fFloat\":1.25}");
	/* Numeric strings are read with strtod, which follows the locale
	 * too. */
	assert_int_equal(pbjson_decode(&pbjson__test__scalars__descriptor,
	                               "{\"fDouble\":\"0.25\"}", 18, NULL,
	                               &back, NULL),
	                 PBJSON_OK);
	assert_true(((Pbjson__Test__Scalars *) back)->f_double == 0.25);
	protobuf_c_message_free_unpacked(back, NULL);
	/* The caller's locale is back in place afterwards. */
	(void) snprintf(text, sizeof(text), "%.1f", 0.5);
	assert_string_equal(text, "0,5");
	(void) setlocale(LC_NUMERIC, "C");
}

static void
test_encode_survives_every_allocation_failing(void **state)
{
	static uint8_t raw[300];
	Pbjson__Test__Scalars s = PBJSON__TEST__SCALARS__INIT;
	char *out;
	long n;
	pbjson_err rv;

	(void) state;
	s.f_bytes.len = sizeof(raw);
	s.f_bytes.data = raw;
	s.f_string = "a string long enough to grow the output buffer twice, "
	             "a string long enough to grow the output buffer twice";
	for (n = 0;; n++) {
		out = NULL;
		ds_alloc_fail_after(n);
		rv = pbjson_encode(&s.base, NULL, &out, NULL, NULL);
		ds_alloc_fail_reset();
		if (rv == PBJSON_OK) {
			break;
		}
		assert_int_equal(rv, PBJSON_ENOMEM);
		assert_null(out);
	}
	assert_true(n > 1);
	ds_free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_encode_empty_message_is_empty_object),
	    cmocka_unit_test(test_encode_every_scalar_type_in_its_proto3_form),
	    cmocka_unit_test(
	        test_encode_original_names_option_keeps_proto_names),
	    cmocka_unit_test(
	        test_encode_emit_defaults_adds_fields_without_presence_only),
	    cmocka_unit_test(test_encode_nan_and_infinities_are_strings),
	    cmocka_unit_test(test_encode_reals_use_shortest_round_trip_form),
	    cmocka_unit_test(test_encode_enum_without_a_name_is_its_number),
	    cmocka_unit_test(
	        test_encode_repeated_fields_are_arrays_packed_or_not),
	    cmocka_unit_test(test_encode_maps_are_objects_with_string_keys),
	    cmocka_unit_test(
	        test_encode_oneof_member_is_emitted_even_when_default),
	    cmocka_unit_test(test_encode_pretty_indents_by_two_spaces),
	    cmocka_unit_test(test_to_json_value_embeds_in_a_larger_document),
	    cmocka_unit_test(test_encode_output_over_max_bytes_is_too_large),
	    cmocka_unit_test(
	        test_encode_bytes_too_large_fail_before_allocating),
	    cmocka_unit_test(test_encode_string_that_is_not_utf8_is_refused),
	    cmocka_unit_test(test_encode_depth_is_capped_at_max_depth),
	    cmocka_unit_test(
	        test_encode_null_element_of_repeated_message_is_invalid),
	    cmocka_unit_test(test_dump_escapes_what_json_requires),
	    cmocka_unit_test(test_dump_refuses_json_nested_past_its_cap),
	    cmocka_unit_test(test_numbers_ignore_a_decimal_comma_locale),
	    cmocka_unit_test(test_encode_survives_every_allocation_failing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
