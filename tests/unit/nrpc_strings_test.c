/*
 * nrpc_strings_test.c - strict protobuf strings (issue 9 item 4, review
 * 80a70b6 #5): a request whose string field, at any depth, holds a NUL
 * byte or invalid UTF-8 is refused INVALID_ARGUMENT "MALFORMED_BODY" (or
 * "MALFORMED_ENVELOPE" for the envelope's own strings) naming the field,
 * instead of being decoded cut at the NUL. Driven through the server's
 * decode functions (nrpc_envelope_decode_body / _request) with wire bytes
 * built by hand, since protobuf-c's packer stops at a NUL. Messages:
 * datasync's own, and pbjson's test proto for nesting, repeated, oneof
 * and map fields.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "datasync/v1/datasync.pb-c.h"
#include "nrpc_int.h"
#include "pbjson_test.pb-c.h"

/* --- a hand-rolled protobuf writer (length-delimited fields only) --- */

#define TEST_WIRE_MAX 4096

typedef struct test_wire {
	uint8_t b[TEST_WIRE_MAX];
	size_t n;
} test_wire;

static void
test_put_varint(test_wire *w, uint64_t v)
{
	assert_true(w->n + 10 <= TEST_WIRE_MAX);
	w->n += nrpc_varint_put(w->b + w->n, v);
}

/* test_put_len appends field `field` with wire type 2 and p[0..n). */
static void
test_put_len(test_wire *w, uint32_t field, const void *p, size_t n)
{
	test_put_varint(w, ((uint64_t) field << 3) | 2);
	test_put_varint(w, n);
	assert_true(w->n + n <= TEST_WIRE_MAX);
	if (n > 0) {
		memcpy(w->b + w->n, p, n);
	}
	w->n += n;
}

static void
test_put_msg(test_wire *w, uint32_t field, const test_wire *sub)
{
	test_put_len(w, field, sub->b, sub->n);
}

static void
test_put_uint(test_wire *w, uint32_t field, uint64_t v)
{
	test_put_varint(w, (uint64_t) field << 3);
	test_put_varint(w, v);
}

/* --- decoding through the server's functions --- */

typedef struct test_result {
	nrpc_code code;
	nrpc_status st;
	ProtobufCMessage *msg; /* in the arena; valid until the next decode */
} test_result;

static nrpc_arena test_arena;

static int
test_setup(void **state)
{
	(void) state;
	nrpc_arena_init(&test_arena, 1 << 20);
	return 0;
}

static int
test_teardown(void **state)
{
	(void) state;
	nrpc_arena_fini(&test_arena);
	return 0;
}

static test_result
test_decode(const ProtobufCMessageDescriptor *d, const test_wire *w)
{
	test_result r;

	memset(&r, 0, sizeof(r));
	nrpc_arena_reset(&test_arena);
	r.code = nrpc_envelope_decode_body(d, w->b, w->n, &test_arena, &r.msg,
	    &r.st);
	return r;
}

/* test_assert_refused checks the exact code, reason and field, and that
 * the message names the field too. */
static void
test_assert_refused(const test_result *r, const char *field,
    const char *what)
{
	assert_int_equal(r->code, NRPC_INVALID_ARGUMENT);
	assert_int_equal(r->st.code, NRPC_INVALID_ARGUMENT);
	assert_string_equal(r->st.reason, "MALFORMED_BODY");
	assert_string_equal(r->st.field, field);
	assert_non_null(strstr(r->st.message, field));
	assert_non_null(strstr(r->st.message, what));
	assert_null(r->msg);
}

/* test_update_key is an UpdateRequest of key k[0..n) and a small value. */
static void
test_update_key(test_wire *w, const void *k, size_t n)
{
	w->n = 0;
	test_put_len(w, 1, k, n);
	test_put_len(w, 2, "v", 1);
}

/* --- valid strings --- */

static void
test_valid_utf8_of_every_length_class_is_accepted(void **state)
{
	static const char *const ok[] = {
	    "",
	    "acc/plain",
	    "\x7f",                 /* U+007F, last 1-byte */
	    "\xc2\x80",             /* U+0080, first 2-byte */
	    "caf\xc3\xa9",          /* U+00E9 */
	    "\xdf\xbf",             /* U+07FF, last 2-byte */
	    "\xe0\xa0\x80",         /* U+0800, first 3-byte */
	    "\xe2\x82\xac",         /* U+20AC */
	    "\xed\x9f\xbf",         /* U+D7FF, below the surrogates */
	    "\xee\x80\x80",         /* U+E000, above them */
	    "\xef\xbf\xbf",         /* U+FFFF, last 3-byte */
	    "\xf0\x90\x80\x80",     /* U+10000, first 4-byte */
	    "\xf0\x9d\x84\x9e",     /* U+1D11E */
	    "\xf4\x8f\xbf\xbf",     /* U+10FFFF, the last code point */
	};
	test_wire w;

	(void) state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		test_result r;
		const Datasync__V1__UpdateRequest *u;

		test_update_key(&w, ok[i], strlen(ok[i]));
		r = test_decode(&datasync__v1__update_request__descriptor, &w);
		assert_int_equal(r.code, NRPC_OK);
		u = (const Datasync__V1__UpdateRequest *) r.msg;
		assert_string_equal(u->key, ok[i]);
	}
}

static void
test_bytes_and_unknown_fields_with_nul_and_bad_utf8_are_accepted(void **state)
{
	static const uint8_t junk[] = {'a', 0, 0xff, 0xc0, 0xaf, 0};
	test_wire w = {.n = 0};
	test_result r;
	const Datasync__V1__UpdateRequest *u;

	(void) state;
	test_put_len(&w, 1, "acc/ok", 6);
	test_put_len(&w, 2, junk, sizeof(junk));   /* value: bytes */
	test_put_len(&w, 99, junk, sizeof(junk));  /* unknown field */
	r = test_decode(&datasync__v1__update_request__descriptor, &w);
	assert_int_equal(r.code, NRPC_OK);
	u = (const Datasync__V1__UpdateRequest *) r.msg;
	assert_int_equal(u->value.len, sizeof(junk));
	assert_memory_equal(u->value.data, junk, sizeof(junk));
}

/* The scan looks at 8 bytes at a time: a NUL, a stray byte or a valid
 * multi-byte character at every offset of a long string, including each
 * word boundary and the tail. */
static void
test_every_offset_of_a_long_string_is_checked(void **state)
{
	char s[40];
	char want[64];
	test_wire w;

	(void) state;
	for (size_t at = 0; at + 2 <= sizeof(s); at++) {
		test_result r;

		memset(s, 'k', sizeof(s));
		s[at] = '\0';
		test_update_key(&w, s, sizeof(s));
		r = test_decode(&datasync__v1__update_request__descriptor, &w);
		(void) snprintf(want, sizeof(want), "NUL byte (at byte %zu)", at);
		test_assert_refused(&r, "key", want);

		s[at] = (char) 0xff;
		test_update_key(&w, s, sizeof(s));
		r = test_decode(&datasync__v1__update_request__descriptor, &w);
		test_assert_refused(&r, "key", "not valid UTF-8");

		s[at] = (char) 0xc3; /* U+00E9 across the next byte */
		s[at + 1] = (char) 0xa9;
		test_update_key(&w, s, sizeof(s));
		r = test_decode(&datasync__v1__update_request__descriptor, &w);
		assert_int_equal(r.code, NRPC_OK);

		s[at + 1] = 'k'; /* a lead byte without its continuation */
		test_update_key(&w, s, sizeof(s));
		r = test_decode(&datasync__v1__update_request__descriptor, &w);
		test_assert_refused(&r, "key", "not valid UTF-8");
	}
}

/* --- refused strings --- */

static void
test_update_key_with_nul_is_refused_naming_key(void **state)
{
	static const char key[] = "acc/nul\0tail";
	test_wire w;
	test_result r;

	(void) state;
	test_update_key(&w, key, sizeof(key) - 1);
	r = test_decode(&datasync__v1__update_request__descriptor, &w);
	test_assert_refused(&r, "key", "NUL byte (at byte 7)");
}

static void
test_each_invalid_utf8_class_is_refused_naming_the_field(void **state)
{
	static const struct {
		const char *s;
		const char *what;
	} bad[] = {
	    {"\x80", "lone continuation byte"},
	    {"a\xbf", "continuation byte after ASCII"},
	    {"\xc0\xaf", "overlong 2-byte (0xc0)"},
	    {"\xc1\xbf", "overlong 2-byte (0xc1)"},
	    {"\xe0\x80\xaf", "overlong 3-byte"},
	    {"\xe0\x9f\xbf", "overlong 3-byte (U+07FF)"},
	    {"\xf0\x80\x80\xaf", "overlong 4-byte"},
	    {"\xf0\x8f\xbf\xbf", "overlong 4-byte (U+FFFF)"},
	    {"\xed\xa0\x80", "high surrogate U+D800"},
	    {"\xed\xbf\xbf", "low surrogate U+DFFF"},
	    {"\xf4\x90\x80\x80", "U+110000"},
	    {"\xf5\x80\x80\x80", "lead byte 0xf5"},
	    {"\xfe", "0xfe"},
	    {"\xff", "0xff"},
	    {"\xc3", "truncated 2-byte at the end"},
	    {"\xe2\x82", "truncated 3-byte at the end"},
	    {"\xf0\x9d\x84", "truncated 4-byte at the end"},
	    {"\xe2\x82x", "truncated 3-byte before ASCII"},
	};
	test_wire w;

	(void) state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		test_result r;

		print_message("%s\n", bad[i].what);
		w.n = 0;
		test_put_len(&w, 1, "acc/ok", 6);
		test_put_len(&w, 7, bad[i].s, strlen(bad[i].s)); /* author */
		r = test_decode(&datasync__v1__update_request__descriptor, &w);
		test_assert_refused(&r, "author", "not valid UTF-8");
	}
}

static void
test_every_datasync_request_string_is_checked(void **state)
{
	static const struct {
		const ProtobufCMessageDescriptor *d;
		uint32_t field;
		const char *name;
	} cases[] = {
	    {&datasync__v1__get_request__descriptor, 1, "key"},
	    {&datasync__v1__update_request__descriptor, 3, "content_type"},
	    {&datasync__v1__update_request__descriptor, 5, "lock_token"},
	    {&datasync__v1__update_request__descriptor, 6, "request_id"},
	    {&datasync__v1__delete_request__descriptor, 1, "key"},
	    {&datasync__v1__delete_request__descriptor, 5, "author"},
	    {&datasync__v1__lock_request__descriptor, 2, "owner"},
	    {&datasync__v1__unlock_request__descriptor, 2, "lock_token"},
	    {&datasync__v1__list_request__descriptor, 1, "prefix"},
	    {&datasync__v1__list_request__descriptor, 3, "page_token"},
	};
	test_wire w;

	(void) state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		test_result r;

		w.n = 0;
		test_put_len(&w, cases[i].field, "x\0y", 3);
		r = test_decode(cases[i].d, &w);
		test_assert_refused(&r, cases[i].name, "NUL byte (at byte 1)");
	}
}

static void
test_nested_message_string_is_refused_with_its_path(void **state)
{
	test_wire inner2 = {.n = 0}, inner1 = {.n = 0}, w = {.n = 0};
	test_result r;

	(void) state;
	/* Scalars.f_inner(17).child(3).s(2) = "a\0" */
	test_put_uint(&inner2, 1, 5);
	test_put_len(&inner2, 2, "a\0", 2);
	test_put_len(&inner1, 2, "fine", 4);
	test_put_msg(&inner1, 3, &inner2);
	test_put_len(&w, 14, "top", 3);
	test_put_msg(&w, 17, &inner1);
	r = test_decode(&pbjson__test__scalars__descriptor, &w);
	test_assert_refused(&r, "f_inner.child.s", "NUL byte");

	/* The same one level up, invalid UTF-8. */
	inner1.n = 0;
	test_put_len(&inner1, 2, "\xed\xa0\x80", 3);
	w.n = 0;
	test_put_msg(&w, 17, &inner1);
	r = test_decode(&pbjson__test__scalars__descriptor, &w);
	test_assert_refused(&r, "f_inner.s", "not valid UTF-8");
}

static void
test_repeated_string_and_message_are_refused_with_their_index(void **state)
{
	test_wire inner = {.n = 0}, bad = {.n = 0}, w = {.n = 0};
	test_result r;

	(void) state;
	/* r_string(8)[2] is bad; an r_int32 (1) in between does not count. */
	test_put_len(&w, 8, "zero", 4);
	test_put_len(&w, 1, "\x01\x02", 2);
	test_put_len(&w, 8, "one", 3);
	test_put_len(&w, 8, "tw\0o", 4);
	r = test_decode(&pbjson__test__repeated__descriptor, &w);
	test_assert_refused(&r, "r_string[2]", "NUL byte (at byte 2)");

	/* r_inner(10)[1].s, with r_string elements around. */
	w.n = 0;
	test_put_len(&inner, 2, "ok", 2);
	test_put_len(&bad, 2, "\xc0\x80", 2);
	test_put_len(&w, 8, "s0", 2);
	test_put_msg(&w, 10, &inner);
	test_put_len(&w, 8, "s1", 2);
	test_put_msg(&w, 10, &bad);
	r = test_decode(&pbjson__test__repeated__descriptor, &w);
	test_assert_refused(&r, "r_inner[1].s", "not valid UTF-8");
}

static void
test_oneof_string_and_message_are_refused(void **state)
{
	test_wire inner = {.n = 0}, w = {.n = 0};
	test_result r;

	(void) state;
	test_put_len(&w, 1, "name", 4);
	test_put_len(&w, 3, "pick\0", 5); /* pick_text */
	r = test_decode(&pbjson__test__choice__descriptor, &w);
	test_assert_refused(&r, "pick_text", "NUL byte (at byte 4)");

	w.n = 0;
	test_put_len(&inner, 2, "\xf4\x90\x80\x80", 4);
	test_put_msg(&w, 4, &inner); /* pick_inner */
	r = test_decode(&pbjson__test__choice__descriptor, &w);
	test_assert_refused(&r, "pick_inner.s", "not valid UTF-8");

	/* pick_bytes may hold anything. */
	w.n = 0;
	test_put_len(&w, 5, "\0\xff", 2);
	r = test_decode(&pbjson__test__choice__descriptor, &w);
	assert_int_equal(r.code, NRPC_OK);
}

static void
test_map_entry_key_and_value_strings_are_refused(void **state)
{
	test_wire e = {.n = 0}, w = {.n = 0};
	test_result r;

	(void) state;
	/* counts (1): map<string, int32>; entry key = 1, value = 2. */
	test_put_len(&e, 1, "a", 1);
	test_put_uint(&e, 2, 1);
	test_put_msg(&w, 1, &e);
	e.n = 0;
	test_put_len(&e, 1, "b\0", 2);
	test_put_uint(&e, 2, 2);
	test_put_msg(&w, 1, &e);
	r = test_decode(&pbjson__test__maps__descriptor, &w);
	test_assert_refused(&r, "counts[1].key", "NUL byte");

	/* flags (3): map<bool, string>. */
	w.n = 0;
	e.n = 0;
	test_put_uint(&e, 1, 1);
	test_put_len(&e, 2, "\xe2\x82", 2);
	test_put_msg(&w, 3, &e);
	r = test_decode(&pbjson__test__maps__descriptor, &w);
	test_assert_refused(&r, "flags[0].value", "not valid UTF-8");
}

/* test_nest writes depth Inner messages, each the child (3) of the one
 * above, the innermost holding s (2) = "deep"; returns the wire of the
 * outermost. */
static void
test_nest(test_wire *w, unsigned depth)
{
	static test_wire tmp;

	w->n = 0;
	test_put_len(w, 2, "deep", 4);
	for (unsigned i = 1; i < depth; i++) {
		tmp = *w;
		w->n = 0;
		test_put_uint(w, 1, i);
		test_put_msg(w, 3, &tmp);
	}
}

static void
test_nesting_is_accepted_at_the_limit_and_refused_past_it(void **state)
{
	static test_wire w;
	char path[NRPC_FIELD_MAX];
	size_t n = 0;
	test_result r;
	nrpc_status st = {0};

	(void) state;
	test_nest(&w, NRPC_MAX_BODY_DEPTH_DEFAULT);
	r = test_decode(&pbjson__test__inner__descriptor, &w);
	assert_int_equal(r.code, NRPC_OK);

	/* One more level: refused before protobuf-c recurses into it,
	 * naming the field that nests too deep (child.child...., cut to
	 * NRPC_FIELD_MAX). */
	test_nest(&w, NRPC_MAX_BODY_DEPTH_DEFAULT + 1);
	r = test_decode(&pbjson__test__inner__descriptor, &w);
	path[0] = '\0';
	for (unsigned i = 0; i < NRPC_MAX_BODY_DEPTH_DEFAULT &&
	    n + 1 < sizeof(path); i++) {
		n += (size_t) snprintf(path + n, sizeof(path) - n, "%schild",
		    i > 0 ? "." : "");
	}
	assert_int_equal(r.code, NRPC_INVALID_ARGUMENT);
	assert_string_equal(r.st.reason, "MALFORMED_BODY");
	assert_string_equal(r.st.field, path);
	assert_non_null(strstr(r.st.message,
	    "nests deeper than max_body_depth (32)"));

	/* A small limit, exactly: depth 3 passes, 4 does not. */
	test_nest(&w, 3);
	assert_int_equal(nrpc_strings_check(&pbjson__test__inner__descriptor,
	    w.b, w.n, 3, "body", "MALFORMED_BODY", &st), NRPC_OK);
	test_nest(&w, 4);
	assert_int_equal(nrpc_strings_check(&pbjson__test__inner__descriptor,
	    w.b, w.n, 3, "body", "MALFORMED_BODY", &st), NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.reason, "MALFORMED_BODY");
	assert_string_equal(st.field, "child.child.child");
	assert_string_equal(st.message,
	    "child.child.child nests deeper than max_body_depth (3)");
}

static void
test_max_depth_outside_its_range_is_refused(void **state)
{
	test_wire w;
	nrpc_status st = {0};

	(void) state;
	test_nest(&w, 1);
	assert_int_equal(nrpc_strings_check(&pbjson__test__inner__descriptor,
	    w.b, w.n, 0, "body", "MALFORMED_BODY", &st), NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.field, "max_body_depth");
	assert_int_equal(nrpc_strings_check(&pbjson__test__inner__descriptor,
	    w.b, w.n, NRPC_MAX_BODY_DEPTH_HARD + 1, "body", "MALFORMED_BODY",
	    &st), NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.reason, "INVALID_ARGUMENT");
	assert_string_equal(st.field, "max_body_depth");
	assert_int_equal(nrpc_strings_check(&pbjson__test__inner__descriptor,
	    w.b, w.n, NRPC_MAX_BODY_DEPTH_HARD, "body", "MALFORMED_BODY", &st),
	    NRPC_OK);
}

static void
test_malformed_wire_is_refused_as_protobuf_c_refuses_it(void **state)
{
	static const struct {
		const char *what;
		uint8_t b[8];
		size_t n;
	} bad[] = {
	    {"length past the end", {0x0a, 0x05, 'a'}, 3},
	    {"unterminated length", {0x0a, 0x80}, 2},
	    {"unterminated tag", {0x8a}, 1},
	    {"unterminated varint", {0x10, 0x80}, 2},
	    {"short fixed64", {0x09, 1, 2, 3}, 4},
	    {"short fixed32", {0x0d, 1, 2, 3}, 4},
	    {"start group", {0x0b, 0x0c}, 2},
	    {"wire type 7", {0x0f}, 1},
	    {"tag 0", {0x02, 0x00}, 2},
	};

	(void) state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		test_wire w;
		test_result r;
		char msg[NRPC_MESSAGE_MAX];

		print_message("%s\n", bad[i].what);
		memcpy(w.b, bad[i].b, bad[i].n);
		w.n = bad[i].n;
		/* protobuf-c refuses it too. */
		assert_null(protobuf_c_message_unpack(
		    &datasync__v1__get_request__descriptor, NULL, w.n, w.b));
		r = test_decode(&datasync__v1__get_request__descriptor, &w);
		(void) snprintf(msg, sizeof(msg),
		    "body is not a valid datasync.v1.GetRequest (%zu bytes)",
		    w.n);
		assert_int_equal(r.code, NRPC_INVALID_ARGUMENT);
		assert_string_equal(r.st.reason, "MALFORMED_BODY");
		assert_string_equal(r.st.field, "");
		assert_string_equal(r.st.message, msg);
	}
}

/* --- the envelope's own strings --- */

static test_result
test_decode_envelope(const test_wire *w)
{
	test_result r;
	Nrpc__V1__Request *env = NULL;

	memset(&r, 0, sizeof(r));
	nrpc_arena_reset(&test_arena);
	r.code = nrpc_envelope_decode_request(w->b, w->n, 1 << 20,
	    &test_arena, &env, &r.st);
	r.msg = env != NULL ? &env->base : NULL;
	return r;
}

static void
test_envelope_method_and_metadata_with_nul_are_refused(void **state)
{
	static const char method[] = "/datasync.v1.DataSync/Get\0zzz";
	test_wire w = {.n = 0}, md = {.n = 0};
	test_result r;

	(void) state;
	/* Request.method = 1, metadata = 6 (key 1, value 2). */
	test_put_len(&w, 1, method, sizeof(method) - 1);
	r = test_decode_envelope(&w);
	assert_int_equal(r.code, NRPC_INVALID_ARGUMENT);
	assert_string_equal(r.st.reason, "MALFORMED_ENVELOPE");
	assert_string_equal(r.st.field, "method");
	assert_string_equal(r.st.message,
	    "method contains a NUL byte (at byte 25)");
	assert_null(r.msg);

	w.n = 0;
	test_put_len(&w, 1, method, 25);
	test_put_len(&md, 1, "authorization", 13);
	test_put_len(&md, 2, "Bearer a\0b", 10);
	test_put_msg(&w, 6, &md);
	r = test_decode_envelope(&w);
	assert_int_equal(r.code, NRPC_INVALID_ARGUMENT);
	assert_string_equal(r.st.reason, "MALFORMED_ENVELOPE");
	assert_string_equal(r.st.field, "metadata[0].value");
	assert_null(r.msg);

	/* Without the NUL the same envelope decodes. */
	w.n = 0;
	test_put_len(&w, 1, method, 25);
	r = test_decode_envelope(&w);
	assert_int_equal(r.code, NRPC_OK);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_utf8_of_every_length_class_is_accepted),
	    cmocka_unit_test(
		test_bytes_and_unknown_fields_with_nul_and_bad_utf8_are_accepted),
	    cmocka_unit_test(test_update_key_with_nul_is_refused_naming_key),
	    cmocka_unit_test(test_every_offset_of_a_long_string_is_checked),
	    cmocka_unit_test(
		test_each_invalid_utf8_class_is_refused_naming_the_field),
	    cmocka_unit_test(test_every_datasync_request_string_is_checked),
	    cmocka_unit_test(
		test_nested_message_string_is_refused_with_its_path),
	    cmocka_unit_test(
		test_repeated_string_and_message_are_refused_with_their_index),
	    cmocka_unit_test(test_oneof_string_and_message_are_refused),
	    cmocka_unit_test(test_map_entry_key_and_value_strings_are_refused),
	    cmocka_unit_test(
		test_nesting_is_accepted_at_the_limit_and_refused_past_it),
	    cmocka_unit_test(test_max_depth_outside_its_range_is_refused),
	    cmocka_unit_test(
		test_malformed_wire_is_refused_as_protobuf_c_refuses_it),
	    cmocka_unit_test(
		test_envelope_method_and_metadata_with_nul_are_refused),
	};

	return cmocka_run_group_tests(tests, test_setup, test_teardown);
}
