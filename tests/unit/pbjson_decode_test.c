/*
 * pbjson_decode_test.c - proto3 JSON text -> protobuf-c messages: what is
 * accepted in which forms, and every kind of bad input with its error
 * code, path and message.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "datasync/v1/datasync.pb-c.h"
#include "ds_alloc.h"
#include "pbjson.h"
#include "pbjson_test.pb-c.h"

/* decode_ok decodes the C string json as a d, asserting success. */
static void *
decode_ok(const ProtobufCMessageDescriptor *d, const char *json,
          const pbjson_options *o)
{
	ProtobufCMessage *m = NULL;
	pbjson_error err;
	pbjson_err rv;

	rv = pbjson_decode(d, json, strlen(json), o, &m, &err);
	if (rv != PBJSON_OK) {
		fail_msg("pbjson_decode(%s): %s: %s", json,
		         pbjson_strerror(rv), err.message);
	}
	assert_non_null(m);
	assert_ptr_equal(m->descriptor, d);
	/* protobuf-c's own consistency check of the built message. */
	assert_true(protobuf_c_message_check(m));
	return m;
}

static void
free_msg(void *m)
{
	protobuf_c_message_free_unpacked(m, NULL);
}

/* decode_err decodes json expecting failure with code want and a message
 * that contains want_text; the output must stay untouched. */
static void
decode_err(const ProtobufCMessageDescriptor *d, const char *json,
           const pbjson_options *o, pbjson_err want, const char *want_path,
           const char *want_text)
{
	ProtobufCMessage *sentinel = (ProtobufCMessage *) &sentinel;
	ProtobufCMessage *m = sentinel;
	pbjson_error err;
	pbjson_err rv;

	rv = pbjson_decode(d, json, strlen(json), o, &m, &err);
	if (rv != want) {
		fail_msg("pbjson_decode(%s): got %s (%s), want %s", json,
		         pbjson_strerror(rv),
		         rv == PBJSON_OK ? "" : err.message,
		         pbjson_strerror(want));
	}
	assert_ptr_equal(m, sentinel);
	if (want_path != NULL) {
		assert_string_equal(err.path, want_path);
	}
	if (strstr(err.message, want_text) == NULL) {
		fail_msg("message \"%s\" lacks \"%s\"", err.message,
		         want_text);
	}
	/* A NULL err is allowed too. */
	assert_int_equal(pbjson_decode(d, json, strlen(json), o, &m, NULL),
	                 want);
	assert_ptr_equal(m, sentinel);
}

#define SCALARS  (&pbjson__test__scalars__descriptor)
#define REPEATED (&pbjson__test__repeated__descriptor)
#define CHOICE   (&pbjson__test__choice__descriptor)
#define MAPS     (&pbjson__test__maps__descriptor)
#define INNER    (&pbjson__test__inner__descriptor)

/* --- what is accepted --- */

static void
test_decode_accepts_json_names_and_proto_names(void **state)
{
	Pbjson__Test__Scalars *s;

	(void) state;
	s = decode_ok(
	    SCALARS,
	    "{\"fInt32\":1,\"a_long_field_2_name\":2,\"f_string\":\"x\","
	    "\"fInner\":{\"n\":3}}",
	    NULL);
	assert_int_equal(s->f_int32, 1);
	assert_int_equal(s->a_long_field_2_name, 2);
	assert_string_equal(s->f_string, "x");
	assert_int_equal(s->f_inner->n, 3);
	free_msg(s);
	s = decode_ok(SCALARS, "{\"aLongField2Name\":7}", NULL);
	assert_int_equal(s->a_long_field_2_name, 7);
	free_msg(s);
}

static void
test_decode_64_bit_integers_are_exact(void **state)
{
	Pbjson__Test__Scalars *s;

	(void) state;
	/* 2^53 + 1 is not a double: strings and plain numbers stay exact. */
	s = decode_ok(
	    SCALARS,
	    "{\"fInt64\":\"9007199254740993\",\"fSint64\":9007199254740993,"
	    "\"fSfixed64\":\"-9223372036854775808\","
	    "\"fUint64\":\"18446744073709551615\","
	    "\"fFixed64\":\"18446744073709551615\"}",
	    NULL);
	assert_true(s->f_int64 == INT64_C(9007199254740993));
	assert_true(s->f_sint64 == INT64_C(9007199254740993));
	assert_true(s->f_sfixed64 == INT64_MIN);
	assert_true(s->f_uint64 == UINT64_MAX);
	assert_true(s->f_fixed64 == UINT64_MAX);
	free_msg(s);
	s = decode_ok(
	    SCALARS,
	    "{\"fInt64\":-9223372036854775808,\"fUint64\":9223372036854775807,"
	    "\"fSint64\":\"-0\"}",
	    NULL);
	assert_true(s->f_int64 == INT64_MIN);
	assert_true(s->f_uint64 == (uint64_t) INT64_MAX);
	assert_true(s->f_sint64 == 0);
	free_msg(s);
}

static void
test_decode_integers_accept_exact_exponent_forms(void **state)
{
	Pbjson__Test__Scalars *s;

	(void) state;
	s = decode_ok(
	    SCALARS,
	    "{\"fInt32\":1e3,\"fInt64\":\"1.50e1\",\"fUint64\":"
	    "\"123456789012345678e1\",\"fUint32\":\"4294967295\","
	    "\"fSint32\":-2147483648,\"fSfixed32\":2.0,\"fFixed32\":\"0e5\"}",
	    NULL);
	assert_int_equal(s->f_int32, 1000);
	assert_true(s->f_int64 == 15);
	assert_true(s->f_uint64 == UINT64_C(1234567890123456780));
	assert_true(s->f_uint32 == UINT32_MAX);
	assert_true(s->f_sint32 == INT32_MIN);
	assert_int_equal(s->f_sfixed32, 2);
	assert_int_equal(s->f_fixed32, 0);
	free_msg(s);
}

static void
test_decode_floats_accept_numbers_strings_and_specials(void **state)
{
	Pbjson__Test__Scalars *s;

	(void) state;
	s = decode_ok(SCALARS,
	              "{\"fDouble\":\"NaN\",\"fFloat\":\"-Infinity\"}", NULL);
	assert_true(isnan(s->f_double));
	assert_true(isinf(s->f_float) && s->f_float < 0);
	free_msg(s);
	s = decode_ok(SCALARS, "{\"fDouble\":\"Infinity\",\"fFloat\":\"NaN\"}",
	              NULL);
	assert_true(isinf(s->f_double) && s->f_double > 0);
	assert_true(isnan(s->f_float));
	free_msg(s);
	s = decode_ok(SCALARS, "{\"fDouble\":\"1.5e3\",\"fFloat\":2}", NULL);
	assert_true(s->f_double == 1500.0);
	assert_true(s->f_float == 2.0f);
	free_msg(s);
	s = decode_ok(SCALARS, "{\"fDouble\":-0.1,\"fFloat\":3.4028235e38}",
	              NULL);
	assert_true(s->f_double == -0.1);
	assert_true(s->f_float == 3.4028235e38f);
	free_msg(s);
}

static void
test_decode_bytes_accept_standard_and_url_safe_base64(void **state)
{
	static const char *forms[] = {
	    "\"+/8=\"", /* standard, padded */
	    "\"+/8\"",  /* standard, unpadded */
	    "\"-_8=\"", /* URL-safe, padded */
	    "\"-_8\"",  /* URL-safe, unpadded */
	};
	Pbjson__Test__Scalars *s;
	char json[64];
	size_t i;

	(void) state;
	for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		(void) snprintf(json, sizeof(json), "{\"fBytes\":%s}",
		                forms[i]);
		s = decode_ok(SCALARS, json, NULL);
		assert_int_equal(s->f_bytes.len, 2);
		assert_memory_equal(s->f_bytes.data, "\xfb\xff", 2);
		free_msg(s);
	}
	s = decode_ok(SCALARS, "{\"fBytes\":\"AP8Q\",\"fString\":\"\"}", NULL);
	assert_int_equal(s->f_bytes.len, 3);
	assert_memory_equal(s->f_bytes.data, "\x00\xff\x10", 3);
	free_msg(s);
	/* Empty bytes: data NULL, as protobuf-c's unpacker leaves it. */
	s = decode_ok(SCALARS, "{\"fBytes\":\"\"}", NULL);
	assert_int_equal(s->f_bytes.len, 0);
	assert_null(s->f_bytes.data);
	free_msg(s);
}

static void
test_decode_enums_by_name_or_number(void **state)
{
	Pbjson__Test__Repeated *r;

	(void) state;
	r = decode_ok(
	    REPEATED,
	    "{\"rEnum\":[\"COLOR_RED\",2,99,-1,\"COLOR_UNSPECIFIED\"]}", NULL);
	assert_int_equal(r->n_r_enum, 5);
	assert_int_equal(r->r_enum[0], PBJSON__TEST__COLOR__COLOR_RED);
	assert_int_equal(r->r_enum[1], PBJSON__TEST__COLOR__COLOR_GREEN);
	assert_int_equal(r->r_enum[2], 99); /* open enum: kept */
	assert_int_equal((int) r->r_enum[3], -1);
	assert_int_equal(r->r_enum[4], 0);
	free_msg(r);
}

static void
test_decode_null_leaves_the_default(void **state)
{
	Pbjson__Test__Scalars *s;
	Pbjson__Test__Choice *c;

	(void) state;
	s = decode_ok(SCALARS,
	              "{\"fInt32\":null,\"fInner\":null,\"fString\":null,"
	              "\"fBytes\":null,\"fEnum\":null}",
	              NULL);
	assert_int_equal(s->f_int32, 0);
	assert_null(s->f_inner);
	assert_ptr_equal(s->f_string, protobuf_c_empty_string);
	free_msg(s);
	/* A null oneof member does not count as set. */
	c = decode_ok(CHOICE, "{\"pickText\":null,\"pickNumber\":\"5\"}",
	              NULL);
	assert_int_equal(c->pick_case, PBJSON__TEST__CHOICE__PICK_PICK_NUMBER);
	assert_true(c->pick_number == 5);
	free_msg(c);
}

static void
test_decode_empty_strings_follow_protobuf_c_presence(void **state)
{
	Pbjson__Test__Scalars *s;
	Pbjson__Test__Choice *c;
	uint8_t buf[16];

	(void) state;
	/* A plain proto3 string keeps the shared default "". */
	s = decode_ok(SCALARS, "{\"fString\":\"\"}", NULL);
	assert_ptr_equal(s->f_string, protobuf_c_empty_string);
	free_msg(s);
	/* A oneof string gets its own "", so the packer sees it as set. */
	c = decode_ok(CHOICE, "{\"pickText\":\"\",\"maybeCount\":0}", NULL);
	assert_int_equal(c->pick_case, PBJSON__TEST__CHOICE__PICK_PICK_TEXT);
	assert_ptr_not_equal(c->pick_text, protobuf_c_empty_string);
	assert_string_equal(c->pick_text, "");
	assert_int_equal(c->_maybe_count_case,
	                 PBJSON__TEST__CHOICE___MAYBE_COUNT_MAYBE_COUNT);
	assert_int_equal(protobuf_c_message_get_packed_size(&c->base), 4);
	assert_int_equal(protobuf_c_message_pack(&c->base, buf), 4);
	assert_memory_equal(buf, "\x1a\x00\x38\x00", 4);
	free_msg(c);
}

static void
test_decode_repeated_fields_and_maps(void **state)
{
	Pbjson__Test__Repeated *r;
	Pbjson__Test__Maps *m;

	(void) state;
	r = decode_ok(
	    REPEATED,
	    "{\"rInt32\":[1,\"-2\"],\"r_int32_unpacked\":[],\"rString\":[\"\","
	    "\"b\"],\"rBytes\":[\"\",\"AQ\"],\"rInner\":[{},{\"n\":1}],"
	    "\"rBool\":[true,false],\"rDouble\":[\"NaN\",1],"
	    "\"rUint64\":[\"18446744073709551615\"]}",
	    NULL);
	assert_int_equal(r->n_r_int32, 2);
	assert_int_equal(r->r_int32[1], -2);
	assert_int_equal(r->n_r_int32_unpacked, 0);
	assert_null(r->r_int32_unpacked);
	assert_int_equal(r->n_r_string, 2);
	/* Repeated strings are always copied, "" included. */
	assert_ptr_not_equal(r->r_string[0], protobuf_c_empty_string);
	assert_string_equal(r->r_string[1], "b");
	assert_null(r->r_bytes[0].data);
	assert_int_equal(r->r_bytes[1].len, 1);
	assert_int_equal(r->r_inner[1]->n, 1);
	assert_true(r->r_bool[0] && !r->r_bool[1]);
	assert_true(isnan(r->r_double[0]));
	assert_true(r->r_uint64[0] == UINT64_MAX);
	free_msg(r);

	m = decode_ok(
	    MAPS,
	    "{\"counts\":{\"a\":1,\"\":2},\"by_id\":{\"-9223372036854775808\":"
	    "{\"n\":5}},\"flags\":{\"true\":\"t\",\"false\":\"\"},"
	    "\"colors\":{\"4294967295\":\"COLOR_GREEN\"},"
	    "\"blobs\":{\"k\":\"AQID\"}}",
	    NULL);
	assert_int_equal(m->n_counts, 2);
	assert_string_equal(m->counts[0]->key, "a");
	assert_int_equal(m->counts[0]->value, 1);
	assert_ptr_equal(m->counts[1]->key, protobuf_c_empty_string);
	assert_true(m->by_id[0]->key == INT64_MIN);
	assert_int_equal(m->by_id[0]->value->n, 5);
	assert_true(m->flags[0]->key && !m->flags[1]->key);
	assert_true(m->colors[0]->key == UINT32_MAX);
	assert_int_equal(m->colors[0]->value,
	                 PBJSON__TEST__COLOR__COLOR_GREEN);
	assert_int_equal(m->blobs[0]->value.len, 3);
	free_msg(m);
}

static void
test_decode_ignore_unknown_skips_unknown_fields(void **state)
{
	pbjson_options o = {.ignore_unknown = true};
	Pbjson__Test__Scalars *s;

	(void) state;
	s = decode_ok(SCALARS,
	              "{\"nope\":[1,{\"deep\":true}],\"fInt32\":4,"
	              "\"fInner\":{\"zz\":null,\"n\":1}}",
	              &o);
	assert_int_equal(s->f_int32, 4);
	assert_int_equal(s->f_inner->n, 1);
	free_msg(s);
	/* Unknown enum names are still errors. */
	decode_err(SCALARS, "{\"fEnum\":\"COLOR_BLUE\"}", &o, PBJSON_EENUM,
	           "fEnum", "unknown value \"COLOR_BLUE\"");
}

static void
test_decode_reads_exactly_len_bytes(void **state)
{
	const char text[] = "{\"fInt32\":5}{garbage";
	ProtobufCMessage *m = NULL;
	char buf[12];

	(void) state;
	/* No NUL after the JSON: the buffer ends where the object does. */
	memcpy(buf, text, sizeof(buf));
	assert_int_equal(
	    pbjson_decode(SCALARS, buf, sizeof(buf), NULL, &m, NULL),
	    PBJSON_OK);
	assert_int_equal(((Pbjson__Test__Scalars *) m)->f_int32, 5);
	free_msg(m);
}

static void
test_decode_from_json_leaves_the_value_untouched(void **state)
{
	json_t *j =
	    json_pack("{s:i, s:{s:s}}", "fInt32", 3, "fInner", "s", "in");
	ProtobufCMessage *m = NULL;
	Pbjson__Test__Scalars *s;
	char *before = json_dumps(j, JSON_COMPACT);
	char *after;

	(void) state;
	assert_int_equal(pbjson_from_json(SCALARS, j, NULL, &m, NULL),
	                 PBJSON_OK);
	s = (Pbjson__Test__Scalars *) m;
	assert_int_equal(s->f_int32, 3);
	assert_string_equal(s->f_inner->s, "in");
	assert_int_equal(j->refcount, 1);
	after = json_dumps(j, JSON_COMPACT);
	assert_string_equal(before, after);
	free(before); /* jansson's allocations */
	free(after);
	free_msg(m);
	json_decref(j);
}

static void
test_decode_datasync_update_request(void **state)
{
	Datasync__V1__UpdateRequest *u;

	(void) state;
	u = decode_ok(
	    &datasync__v1__update_request__descriptor,
	    "{\"key\":\"doc/1\",\"value\":\"aGVsbG8=\",\"contentType\":"
	    "\"text/plain\",\"precondition\":{\"ifVersion\":\"7\"},"
	    "\"lockToken\":\"t\",\"request_id\":\"r1\"}",
	    NULL);
	assert_string_equal(u->key, "doc/1");
	assert_int_equal(u->value.len, 5);
	assert_memory_equal(u->value.data, "hello", 5);
	assert_int_equal(u->precondition->kind_case,
	                 DATASYNC__V1__PRECONDITION__KIND_IF_VERSION);
	assert_true(u->precondition->if_version == 7);
	assert_string_equal(u->request_id, "r1");
	/* The generated destructor works as well. */
	datasync__v1__update_request__free_unpacked(u, NULL);
}

/* --- what is refused --- */

static void
test_decode_malformed_json_reports_line_and_column(void **state)
{
	const char *text = "{\n  \"fInt32\": 1,\n  oops\n}";
	ProtobufCMessage *m = NULL;
	pbjson_error err;

	(void) state;
	assert_int_equal(
	    pbjson_decode(SCALARS, text, strlen(text), NULL, &m, &err),
	    PBJSON_EPARSE);
	assert_null(m);
	/* jansson points just past the token it could not use. */
	assert_int_equal(err.line, 3);
	assert_int_equal(err.column, 6);
	assert_int_equal(err.position, 23);
	assert_string_equal(err.path, "");
	assert_string_equal(
	    err.message,
	    "malformed JSON at line 3, column 6: string or '}' expected near "
	    "'oops'");
	decode_err(SCALARS, "", NULL, PBJSON_EPARSE, "", "malformed JSON");
	decode_err(SCALARS, "{\"fInt32\":1", NULL, PBJSON_EPARSE, "",
	           "line 1, column 11");
	decode_err(SCALARS, "{} {}", NULL, PBJSON_EPARSE, "",
	           "end of file expected");
	decode_err(SCALARS, "{\"fString\":\"\xff\"}", NULL, PBJSON_EPARSE, "",
	           "malformed JSON at line 1");
	/* jansson refuses \u0000 in strings on its own. */
	decode_err(SCALARS, "{\"fString\":\"a\\u0000\"}", NULL, PBJSON_EPARSE,
	           "", "\\u0000 is not allowed");
}

static void
test_decode_top_level_must_be_an_object(void **state)
{
	(void) state;
	decode_err(SCALARS, "[]", NULL, PBJSON_ETYPE, "",
	           "expected an object (pbjson.test.Scalars), got an array");
	decode_err(SCALARS, "1", NULL, PBJSON_ETYPE, "", "got number 1");
	decode_err(SCALARS, "\"x\"", NULL, PBJSON_ETYPE, "",
	           "got string \"x\"");
	decode_err(SCALARS, "null", NULL, PBJSON_ETYPE, "", "got null");
}

static void
test_decode_unknown_field_is_named(void **state)
{
	(void) state;
	decode_err(SCALARS, "{\"fInt32\":1,\"nope\":1}", NULL,
	           PBJSON_EUNKNOWN_FIELD, "nope",
	           "nope: unknown field \"nope\" in pbjson.test.Scalars");
	decode_err(SCALARS, "{\"fInner\":{\"child\":{\"zz\":{}}}}", NULL,
	           PBJSON_EUNKNOWN_FIELD, "fInner.child.zz",
	           "unknown field \"zz\" in pbjson.test.Inner");
	/* Names match exactly: no case folding. */
	decode_err(SCALARS, "{\"FInt32\":1}", NULL, PBJSON_EUNKNOWN_FIELD,
	           "FInt32", "unknown field");
	decode_err(&datasync__v1__update_request__descriptor,
	           "{\"precondition\":{\"ifversion\":1}}", NULL,
	           PBJSON_EUNKNOWN_FIELD, "precondition.ifversion",
	           "unknown field \"ifversion\" in datasync.v1.Precondition");
}

static void
test_decode_wrong_json_type_is_named(void **state)
{
	(void) state;
	decode_err(
	    SCALARS, "{\"fBool\":\"true\"}", NULL, PBJSON_ETYPE, "fBool",
	    "fBool: expected true or false (bool), got string \"true\"");
	decode_err(SCALARS, "{\"fBool\":1}", NULL, PBJSON_ETYPE, "fBool",
	           "got number 1");
	decode_err(SCALARS, "{\"fString\":5}", NULL, PBJSON_ETYPE, "fString",
	           "expected a string (string), got number 5");
	decode_err(SCALARS, "{\"fInner\":[]}", NULL, PBJSON_ETYPE, "fInner",
	           "expected an object (pbjson.test.Inner), got an array");
	decode_err(SCALARS, "{\"fInt32\":true}", NULL, PBJSON_ETYPE, "fInt32",
	           "expected an integer (int32), got true");
	decode_err(SCALARS, "{\"fInt64\":\"abc\"}", NULL, PBJSON_ETYPE,
	           "fInt64", "got string \"abc\"");
	decode_err(SCALARS, "{\"fInt64\":\" 1\"}", NULL, PBJSON_ETYPE,
	           "fInt64", "expected an integer");
	decode_err(SCALARS, "{\"fInt64\":\"+1\"}", NULL, PBJSON_ETYPE,
	           "fInt64", "expected an integer");
	decode_err(SCALARS, "{\"fDouble\":\"nan\"}", NULL, PBJSON_ETYPE,
	           "fDouble", "expected a number, \"NaN\"");
	decode_err(SCALARS, "{\"fDouble\":\"0x10\"}", NULL, PBJSON_ETYPE,
	           "fDouble", "got string \"0x10\"");
	decode_err(SCALARS, "{\"fDouble\":{}}", NULL, PBJSON_ETYPE, "fDouble",
	           "got an object");
	decode_err(SCALARS, "{\"fBytes\":1}", NULL, PBJSON_ETYPE, "fBytes",
	           "expected a base64 string");
	decode_err(SCALARS, "{\"fEnum\":true}", NULL, PBJSON_ETYPE, "fEnum",
	           "expected an enum name or number (pbjson.test.Color)");
	decode_err(REPEATED, "{\"rInt32\":{}}", NULL, PBJSON_ETYPE, "rInt32",
	           "expected an array (int32), got an object");
	decode_err(REPEATED, "{\"rInt32\":[1,null]}", NULL, PBJSON_ETYPE,
	           "rInt32[1]", "null is not allowed in a repeated field");
	decode_err(REPEATED, "{\"rInner\":[{},{\"n\":[]}]}", NULL,
	           PBJSON_ETYPE, "rInner[1].n", "got an array");
}

static void
test_decode_integer_out_of_range_is_refused(void **state)
{
	(void) state;
	decode_err(SCALARS, "{\"fInt32\":2147483648}", NULL, PBJSON_ERANGE,
	           "fInt32",
	           "fInt32: number 2147483648 is out of range for int32");
	decode_err(SCALARS, "{\"fInt32\":\"-2147483649\"}", NULL,
	           PBJSON_ERANGE, "fInt32",
	           "string \"-2147483649\" is out of range for int32");
	decode_err(SCALARS, "{\"fSfixed32\":-2147483649}", NULL, PBJSON_ERANGE,
	           "fSfixed32", "out of range for sfixed32");
	decode_err(SCALARS, "{\"fUint32\":-1}", NULL, PBJSON_ERANGE, "fUint32",
	           "number -1 is out of range for uint32");
	decode_err(SCALARS, "{\"fUint32\":4294967296}", NULL, PBJSON_ERANGE,
	           "fUint32", "out of range for uint32");
	decode_err(SCALARS, "{\"fInt64\":\"9223372036854775808\"}", NULL,
	           PBJSON_ERANGE, "fInt64", "out of range for int64");
	decode_err(SCALARS, "{\"fUint64\":\"18446744073709551616\"}", NULL,
	           PBJSON_ERANGE, "fUint64", "out of range for uint64");
	decode_err(SCALARS, "{\"fUint64\":\"-1\"}", NULL, PBJSON_ERANGE,
	           "fUint64", "out of range for uint64");
	decode_err(SCALARS, "{\"fUint64\":\"1e20\"}", NULL, PBJSON_ERANGE,
	           "fUint64", "out of range for uint64");
	decode_err(SCALARS, "{\"fEnum\":2147483648}", NULL, PBJSON_ERANGE,
	           "fEnum", "out of range for an enum (int32)");
	/* Beyond jansson's integers: caught while parsing. */
	decode_err(SCALARS, "{\"fUint64\":18446744073709551615}", NULL,
	           PBJSON_ERANGE, "",
	           "number out of range at line 1, column 31");
	/* A real above 2^53 may already be inexact. */
	decode_err(SCALARS, "{\"fInt64\":1e17}", NULL, PBJSON_ERANGE, "fInt64",
	           "number 1e+17 is not below 2^53");
	decode_err(SCALARS, "{\"fInt64\":9007199254740993.0}", NULL,
	           PBJSON_ERANGE, "fInt64", "send it as a string");
}

static void
test_decode_fraction_for_an_integer_is_refused(void **state)
{
	Pbjson__Test__Scalars *s;

	(void) state;
	/* A fraction part of zeros is no fraction. */
	s = decode_ok(SCALARS, "{\"fInt32\":0.5e1,\"fInt64\":\"-3.000\"}",
	              NULL);
	assert_int_equal(s->f_int32, 5);
	assert_true(s->f_int64 == -3);
	free_msg(s);
	decode_err(
	    &datasync__v1__update_request__descriptor,
	    "{\"precondition\":{\"ifVersion\":1.5}}", NULL, PBJSON_ETYPE,
	    "precondition.ifVersion",
	    "precondition.ifVersion: expected an integer (uint64), got number "
	    "1.5");
	decode_err(SCALARS, "{\"fInt64\":\"1.5\"}", NULL, PBJSON_ETYPE,
	           "fInt64", "got string \"1.5\"");
	decode_err(SCALARS, "{\"fInt32\":\"1e-1\"}", NULL, PBJSON_ETYPE,
	           "fInt32", "expected an integer");
}

static void
test_decode_float_out_of_range_is_refused(void **state)
{
	(void) state;
	decode_err(SCALARS, "{\"fFloat\":3.5e38}", NULL, PBJSON_ERANGE,
	           "fFloat", "number 3.5e+38 is out of range for float");
	decode_err(SCALARS, "{\"fFloat\":\"-1e39\"}", NULL, PBJSON_ERANGE,
	           "fFloat", "out of range for float");
	decode_err(SCALARS, "{\"fDouble\":\"1e400\"}", NULL, PBJSON_ERANGE,
	           "fDouble", "string \"1e400\" is out of range for double");
	decode_err(SCALARS, "{\"fDouble\":1e400}", NULL, PBJSON_ERANGE, "",
	           "real number overflow");
}

static void
test_decode_invalid_base64_is_refused(void **state)
{
	(void) state;
	decode_err(
	    SCALARS, "{\"fBytes\":\"A\"}", NULL, PBJSON_EBASE64, "fBytes",
	    "fBytes: invalid base64: 1 characters of data cannot be base64");
	decode_err(SCALARS, "{\"fBytes\":\"AP8Q!A==\"}", NULL, PBJSON_EBASE64,
	           "fBytes", "invalid character '!' at offset 4");
	decode_err(SCALARS, "{\"fBytes\":\"AP 8\"}", NULL, PBJSON_EBASE64,
	           "fBytes", "invalid byte 0x20 at offset 2");
	decode_err(SCALARS, "{\"fBytes\":\"AP8==\"}", NULL, PBJSON_EBASE64,
	           "fBytes", "wrong padding");
	decode_err(SCALARS, "{\"fBytes\":\"A=P8\"}", NULL, PBJSON_EBASE64,
	           "fBytes", "invalid character '='");
	decode_err(SCALARS, "{\"fBytes\":\"AP9=\"}", NULL, PBJSON_EBASE64,
	           "fBytes", "non-zero trailing bits");
	decode_err(REPEATED, "{\"rBytes\":[\"AA\",\"Z\"]}", NULL,
	           PBJSON_EBASE64, "rBytes[1]", "invalid base64");
}

static void
test_decode_unknown_enum_name_is_refused(void **state)
{
	(void) state;
	decode_err(
	    SCALARS, "{\"fEnum\":\"PURPLE\"}", NULL, PBJSON_EENUM, "fEnum",
	    "fEnum: unknown value \"PURPLE\" for enum pbjson.test.Color");
	decode_err(SCALARS, "{\"fEnum\":\"color_red\"}", NULL, PBJSON_EENUM,
	           "fEnum", "unknown value");
	decode_err(SCALARS, "{\"fEnum\":\"1\"}", NULL, PBJSON_EENUM, "fEnum",
	           "unknown value \"1\"");
}

static void
test_decode_two_members_of_one_oneof_are_refused(void **state)
{
	(void) state;
	decode_err(CHOICE, "{\"pickNumber\":\"1\",\"pickText\":\"x\"}", NULL,
	           PBJSON_EONEOF, "pickText",
	           "pickText: \"pickText\" and \"pickNumber\" are members of "
	           "the same "
	           "oneof");
	decode_err(CHOICE, "{\"pick_inner\":{},\"pick_bytes\":\"\"}", NULL,
	           PBJSON_EONEOF, "pick_bytes",
	           "\"pick_bytes\" and \"pickInner\"");
	decode_err(
	    &datasync__v1__update_request__descriptor,
	    "{\"precondition\":{\"ifAbsent\":true,\"unconditional\":true}}",
	    NULL, PBJSON_EONEOF, "precondition.unconditional",
	    "\"unconditional\" and \"ifAbsent\" are members of the same "
	    "oneof");
}

static void
test_decode_duplicate_keys_are_refused(void **state)
{
	(void) state;
	decode_err(SCALARS, "{\"fInt32\":1,\"fInt32\":2}", NULL,
	           PBJSON_EDUPLICATE, "",
	           "duplicate key at line 1, column 20");
	decode_err(
	    SCALARS, "{\"fInt32\":1,\"f_int32\":2}", NULL, PBJSON_EDUPLICATE,
	    "f_int32",
	    "field fInt32 is given twice, by its JSON name and by its proto "
	    "name");
	decode_err(CHOICE, "{\"pickText\":\"a\",\"pick_text\":\"b\"}", NULL,
	           PBJSON_EDUPLICATE, "pick_text", "given twice");
}

static void
test_decode_map_errors_name_the_key(void **state)
{
	(void) state;
	decode_err(
	    MAPS, "{\"byId\":{\"x\":{}}}", NULL, PBJSON_ETYPE, "byId[\"x\"]",
	    "expected an integer map key in canonical decimal form (int64), "
	    "got \"x\"");
	decode_err(MAPS, "{\"byId\":{\"1.5\":{}}}", NULL, PBJSON_ETYPE,
	           "byId[\"1.5\"]", "integer map key");
	/* One spelling per integer, so no two keys can name one entry. */
	decode_err(MAPS, "{\"byId\":{\"1\":{},\"1e0\":{}}}", NULL,
	           PBJSON_ETYPE, "byId[\"1e0\"]", "canonical decimal");
	decode_err(MAPS, "{\"byId\":{\"01\":{}}}", NULL, PBJSON_ETYPE,
	           "byId[\"01\"]", "canonical decimal");
	decode_err(MAPS, "{\"byId\":{\"-0\":{}}}", NULL, PBJSON_ETYPE,
	           "byId[\"-0\"]", "canonical decimal");
	decode_err(MAPS, "{\"byId\":{\"\":{}}}", NULL, PBJSON_ETYPE,
	           "byId[\"\"]", "canonical decimal");
	decode_err(MAPS, "{\"counts\":{\"a\":1,\"a\":2}}", NULL,
	           PBJSON_EDUPLICATE, "", "duplicate key");
	decode_err(MAPS, "{\"flags\":{\"yes\":\"a\"}}", NULL, PBJSON_ETYPE,
	           "flags[\"yes\"]", "expected map key \"true\" or \"false\"");
	decode_err(MAPS, "{\"colors\":{\"4294967296\":\"COLOR_RED\"}}", NULL,
	           PBJSON_ERANGE, "colors[\"4294967296\"]",
	           "out of range for uint32");
	decode_err(MAPS, "{\"colors\":{\"1\":\"BLUE\"}}", NULL, PBJSON_EENUM,
	           "colors[\"1\"]", "unknown value \"BLUE\"");
	decode_err(MAPS, "{\"counts\":{\"a\":null}}", NULL, PBJSON_ETYPE,
	           "counts[\"a\"]", "null is not allowed as a map value");
	decode_err(MAPS, "{\"counts\":[]}", NULL, PBJSON_ETYPE, "counts",
	           "expected an object (map), got an array");
	decode_err(MAPS, "{\"byId\":{\"1\":{\"child\":{\"q\":1}}}}", NULL,
	           PBJSON_EUNKNOWN_FIELD, "byId[\"1\"].child.q",
	           "unknown field");
}

/* nested writes {"child":{"child":...{}}} with levels objects in all. */
static char *
nested(int levels)
{
	size_t cap = (size_t) levels * 12 + 8;
	char *s = ds_alloc(cap);
	size_t n = 0;
	int i;

	assert_non_null(s);
	s[n++] = '{';
	for (i = 1; i < levels; i++) {
		memcpy(s + n, "\"child\":{", 9);
		n += 9;
	}
	for (i = 0; i < levels; i++) {
		s[n++] = '}';
	}
	s[n] = '\0';
	return s;
}

static void
test_decode_depth_is_capped_at_max_depth(void **state)
{
	Pbjson__Test__Inner *in;
	char *text;
	int depth = 0;

	(void) state;
	/* PBJSON_MAX_DEPTH messages, the outermost included: fine. */
	text = nested(PBJSON_MAX_DEPTH);
	in = decode_ok(INNER, text, NULL);
	for (Pbjson__Test__Inner *p = in; p != NULL; p = p->child) {
		depth++;
	}
	assert_int_equal(depth, PBJSON_MAX_DEPTH);
	free_msg(in);
	ds_free(text);
	/* One more: refused before the next level is read. */
	text = nested(PBJSON_MAX_DEPTH + 1);
	decode_err(INNER, text, NULL, PBJSON_EDEPTH, NULL,
	           "messages nest deeper than PBJSON_MAX_DEPTH (64)");
	ds_free(text);
	/* Far deeper than jansson parses: its own cap, same error kind. */
	text = ds_alloc(5001);
	assert_non_null(text);
	memset(text, '[', 5000);
	text[5000] = '\0';
	decode_err(INNER, text, NULL, PBJSON_EDEPTH, "", "nests too deeply");
	ds_free(text);
}

static void
test_decode_input_over_max_bytes_is_refused_before_parsing(void **state)
{
	const char *text = "{\"fString\":\"0123456789\"}";
	pbjson_options o = {.max_bytes = strlen(text)};
	Pbjson__Test__Scalars *s;

	(void) state;
	s = decode_ok(SCALARS, text, &o); /* at the limit */
	free_msg(s);
	o.max_bytes = strlen(text) - 1;
	decode_err(SCALARS, text, &o, PBJSON_ETOOLARGE, "",
	           "JSON input of 24 bytes exceeds max_bytes (23)");
	/* Too large wins over malformed: nothing is parsed. */
	decode_err(SCALARS, "[[[[[[[[[[[[[[[[[[[[[[[[[", &o, PBJSON_ETOOLARGE,
	           "", "exceeds max_bytes");
	o.max_bytes = PBJSON_MAX_BYTES_HARD + 1;
	decode_err(SCALARS, "{}", &o, PBJSON_EINVAL, "",
	           "max_bytes (268435457) exceeds PBJSON_MAX_BYTES_HARD");
}

static void
test_decode_bad_arguments_are_invalid(void **state)
{
	ProtobufCMessage *m = NULL;
	json_t *j = json_object();
	pbjson_error err;

	(void) state;
	assert_int_equal(pbjson_decode(NULL, "{}", 2, NULL, &m, &err),
	                 PBJSON_EINVAL);
	assert_int_equal(pbjson_decode(SCALARS, NULL, 2, NULL, &m, &err),
	                 PBJSON_EINVAL);
	assert_int_equal(pbjson_decode(SCALARS, "{}", 2, NULL, NULL, &err),
	                 PBJSON_EINVAL);
	assert_int_equal(
	    pbjson_decode((const ProtobufCMessageDescriptor
	                       *) &pbjson__test__color__descriptor,
	                  "{}", 2, NULL, &m, &err),
	    PBJSON_EINVAL);
	assert_int_equal(pbjson_from_json(SCALARS, NULL, NULL, &m, &err),
	                 PBJSON_EINVAL);
	assert_null(m);
	json_decref(j);
}

static void
test_from_json_refuses_strings_protobuf_c_cannot_hold(void **state)
{
	json_t *j = json_object();
	ProtobufCMessage *m = NULL;
	pbjson_error err;

	(void) state;
	/* Only a caller-built value can hold these; parsed text cannot. */
	assert_int_equal(
	    json_object_set_new(j, "fString", json_stringn("a\0b", 3)), 0);
	assert_int_equal(pbjson_from_json(SCALARS, j, NULL, &m, &err),
	                 PBJSON_ETYPE);
	assert_string_equal(
	    err.message,
	    "fString: string contains U+0000, which a protobuf-c string "
	    "cannot hold");
	assert_int_equal(json_object_set_new(j, "fString",
	                                     json_stringn_nocheck("\xc3(", 2)),
	                 0);
	assert_int_equal(pbjson_from_json(SCALARS, j, NULL, &m, &err),
	                 PBJSON_EUTF8);
	assert_string_equal(err.path, "fString");
	assert_int_equal(json_object_clear(j), 0);
	assert_int_equal(
	    json_object_setn_new(j, "fInt32\0x", 8, json_integer(1)), 0);
	assert_int_equal(pbjson_from_json(SCALARS, j, NULL, &m, &err),
	                 PBJSON_EUNKNOWN_FIELD);
	assert_string_equal(err.path, "fInt32?x");
	assert_null(m);
	json_decref(j);
}

static void
test_error_texts_are_safe_utf8_and_bounded(void **state)
{
	char text[600];
	size_t n;
	ProtobufCMessage *m = NULL;
	pbjson_error err;

	(void) state;
	/* A long key of multi-byte characters and a control character. */
	n = (size_t) snprintf(text, sizeof(text), "{\"");
	while (n < 400) {
		memcpy(text + n, "\xc3\xa9", 2);
		n += 2;
	}
	n += (size_t) snprintf(text + n, sizeof(text) - n, "\\u0001\":1}");
	assert_int_equal(pbjson_decode(SCALARS, text, n, NULL, &m, &err),
	                 PBJSON_EUNKNOWN_FIELD);
	assert_true(strlen(err.path) < PBJSON_PATH_MAX);
	assert_true(strlen(err.message) < PBJSON_MESSAGE_MAX);
	/* Cut on a character boundary, marked with "...". */
	assert_non_null(strstr(err.path, "\xc3\xa9..."));
	assert_non_null(strstr(err.message, "...\" in pbjson.test.Scalars"));
	assert_null(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_decode_accepts_json_names_and_proto_names),
	    cmocka_unit_test(test_decode_64_bit_integers_are_exact),
	    cmocka_unit_test(test_decode_integers_accept_exact_exponent_forms),
	    cmocka_unit_test(
	        test_decode_floats_accept_numbers_strings_and_specials),
	    cmocka_unit_test(
	        test_decode_bytes_accept_standard_and_url_safe_base64),
	    cmocka_unit_test(test_decode_enums_by_name_or_number),
	    cmocka_unit_test(test_decode_null_leaves_the_default),
	    cmocka_unit_test(
	        test_decode_empty_strings_follow_protobuf_c_presence),
	    cmocka_unit_test(test_decode_repeated_fields_and_maps),
	    cmocka_unit_test(test_decode_ignore_unknown_skips_unknown_fields),
	    cmocka_unit_test(test_decode_reads_exactly_len_bytes),
	    cmocka_unit_test(test_decode_from_json_leaves_the_value_untouched),
	    cmocka_unit_test(test_decode_datasync_update_request),
	    cmocka_unit_test(
	        test_decode_malformed_json_reports_line_and_column),
	    cmocka_unit_test(test_decode_top_level_must_be_an_object),
	    cmocka_unit_test(test_decode_unknown_field_is_named),
	    cmocka_unit_test(test_decode_wrong_json_type_is_named),
	    cmocka_unit_test(test_decode_integer_out_of_range_is_refused),
	    cmocka_unit_test(test_decode_fraction_for_an_integer_is_refused),
	    cmocka_unit_test(test_decode_float_out_of_range_is_refused),
	    cmocka_unit_test(test_decode_invalid_base64_is_refused),
	    cmocka_unit_test(test_decode_unknown_enum_name_is_refused),
	    cmocka_unit_test(test_decode_two_members_of_one_oneof_are_refused),
	    cmocka_unit_test(test_decode_duplicate_keys_are_refused),
	    cmocka_unit_test(test_decode_map_errors_name_the_key),
	    cmocka_unit_test(test_decode_depth_is_capped_at_max_depth),
	    cmocka_unit_test(
	        test_decode_input_over_max_bytes_is_refused_before_parsing),
	    cmocka_unit_test(test_decode_bad_arguments_are_invalid),
	    cmocka_unit_test(
	        test_from_json_refuses_strings_protobuf_c_cannot_hold),
	    cmocka_unit_test(test_error_texts_are_safe_utf8_and_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
