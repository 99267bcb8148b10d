/*
 * util_text_test.c - UTF-8 validation, hex, constant-time compare, the
 * bounded buffer and allocator fault injection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ds_alloc.h"
#include "ds_buf.h"
#include "ds_text.h"

#define U8(s) ((const uint8_t *) (s)), (sizeof(s) - 1)

static void
test_utf8_accepts_well_formed_text(void **state)
{
	(void) state;
	assert_true(ds_utf8_valid(U8("")));
	assert_true(ds_utf8_valid(U8("plain ascii/key")));
	assert_true(ds_utf8_valid(U8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80")));
	assert_true(ds_utf8_valid(U8("\xf4\x8f\xbf\xbf"))); /* U+10FFFF */
}

static void
test_utf8_rejects_malformed_sequences(void **state)
{
	(void) state;
	assert_false(ds_utf8_valid(U8("\x80")));             /* lone continuation */
	assert_false(ds_utf8_valid(U8("\xc0\xaf")));         /* overlong '/' */
	assert_false(ds_utf8_valid(U8("\xe0\x80\xaf")));     /* overlong */
	assert_false(ds_utf8_valid(U8("\xed\xa0\x80")));     /* surrogate */
	assert_false(ds_utf8_valid(U8("\xf4\x90\x80\x80"))); /* > U+10FFFF */
	assert_false(ds_utf8_valid(U8("ab\xc3")));           /* truncated */
	assert_false(ds_utf8_valid(U8("\xff")));
}

static void
test_utf8_control_characters_are_found(void **state)
{
	(void) state;
	assert_false(ds_utf8_has_control(U8("tab-free key")));
	assert_true(ds_utf8_has_control(U8("a\tb")));
	assert_true(ds_utf8_has_control(U8("a\x7f")));
	assert_true(ds_utf8_has_control(U8("a\xc2\x85"))); /* NEL, C1 */
	assert_false(ds_utf8_has_control(U8("\xc2\xa0"))); /* NBSP is fine */
	assert_true(ds_utf8_has_control((const uint8_t *) "a\0b", 3));
}

static void
test_hex_round_trips_and_rejects_bad_digits(void **state)
{
	uint8_t in[4] = {0x00, 0xab, 0x7f, 0xff};
	uint8_t out[4];
	char hex[9];

	(void) state;
	ds_hex_encode(in, 4, hex);
	assert_string_equal(hex, "00ab7fff");
	assert_int_equal(ds_hex_decode(hex, 8, out, 4), DS_OK);
	assert_memory_equal(in, out, 4);
	assert_int_equal(ds_hex_decode("00AB7FFF", 8, out, 4), DS_OK);
	assert_memory_equal(in, out, 4);
	assert_int_equal(ds_hex_decode("00ab7ff", 7, out, 4), DS_EINVAL);
	assert_int_equal(ds_hex_decode("00ab7fgf", 8, out, 4), DS_EINVAL);
}

static void
test_ct_equal_compares_every_byte(void **state)
{
	(void) state;
	assert_true(ds_ct_equal("abcdef", "abcdef", 6));
	assert_false(ds_ct_equal("abcdef", "abcdeg", 6));
	assert_false(ds_ct_equal("xbcdef", "abcdef", 6));
}

static void
test_random_bytes_differ_between_calls(void **state)
{
	uint8_t a[16];
	uint8_t b[16];

	(void) state;
	assert_int_equal(ds_random_bytes(a, sizeof(a)), DS_OK);
	assert_int_equal(ds_random_bytes(b, sizeof(b)), DS_OK);
	assert_memory_not_equal(a, b, sizeof(a));
}

static void
test_buf_refuses_to_grow_past_max(void **state)
{
	ds_buf b;

	(void) state;
	ds_buf_init(&b, 10);
	assert_int_equal(ds_buf_append(&b, "0123456789", 10), DS_OK);
	assert_int_equal(ds_buf_append(&b, "x", 1), DS_ETOOLARGE);
	assert_int_equal(b.len, 10);
	assert_string_equal((char *) b.ptr, "0123456789");
	ds_buf_reset(&b);
	assert_int_equal(ds_buf_printf(&b, "%d-%s", 42, "abc"), DS_OK);
	assert_string_equal((char *) b.ptr, "42-abc");
	assert_int_equal(ds_buf_printf(&b, "%s", "toolong"), DS_ETOOLARGE);
	assert_int_equal(b.len, 6);
	ds_buf_fini(&b);
	ds_buf_fini(&b); /* finishing twice is a no-op */
}

static void
test_alloc_fault_injection_fails_the_nth_allocation(void **state)
{
	void *p1;
	void *p2;
	ds_buf b;

	(void) state;
	ds_alloc_fail_after(1);
	p1 = ds_alloc(8);
	p2 = ds_alloc(8);
	ds_alloc_fail_reset();
	assert_non_null(p1);
	assert_null(p2);
	ds_free(p1);

	ds_buf_init(&b, 100);
	ds_alloc_fail_after(0);
	assert_int_equal(ds_buf_append(&b, "abc", 3), DS_ENOMEM);
	ds_alloc_fail_reset();
	assert_int_equal(b.len, 0);
	assert_int_equal(ds_buf_append(&b, "abc", 3), DS_OK);
	ds_buf_fini(&b);
}

static void
test_uri_redact_hides_every_password(void **state)
{
	char out[128];

	(void) state;

	ds_uri_redact("postgresql://alice:s3cret@db.example:5432/ds", out,
	    sizeof(out));
	assert_string_equal(out, "postgresql://alice:***@db.example:5432/ds");
	ds_uri_redact("postgresql:///ds?host=/tmp/x&password=hunter2&user=u",
	    out, sizeof(out));
	assert_string_equal(out, "postgresql:///ds?host=/tmp/x&password=***&user=u");
	ds_uri_redact("postgres://bob@h/d?password=p", out, sizeof(out));
	assert_string_equal(out, "postgres://bob@h/d?password=***");
	ds_uri_redact("host=h password=pw dbname=d", out, sizeof(out));
	assert_string_equal(out, "host=h password=*** dbname=d");
	/* Not a password parameter, nothing to hide. */
	ds_uri_redact("./data/mypassword=x.db", out, sizeof(out));
	assert_string_equal(out, "./data/mypassword=x.db");
	ds_uri_redact("postgresql://u:p@h", out, 12);
	assert_string_equal(out, "postgresql:");
}

/* Protected mode's loopback rule, shared by datasyncd and
 * datasync-gateway: only 127.0.0.1, ::1 and localhost stay on this
 * machine; a wildcard or an empty host is every interface. */
static void
test_loopback_rule_of_protected_mode(void **state)
{
	(void) state;
	assert_true(ds_hostport_loopback("127.0.0.1:8080"));
	assert_true(ds_hostport_loopback("localhost:0"));
	assert_true(ds_hostport_loopback("[::1]:8080"));
	assert_false(ds_hostport_loopback("0.0.0.0:8080"));
	assert_false(ds_hostport_loopback("[::]:8080"));
	assert_false(ds_hostport_loopback(":8080"));
	assert_false(ds_hostport_loopback("192.168.1.2:8080"));
	assert_false(ds_hostport_loopback("127.0.0.1.example:80"));
	assert_true(ds_url_local("ipc:///tmp/ds.sock"));
	assert_true(ds_url_local("inproc://gw"));
	assert_true(ds_url_local("tcp://127.0.0.1:7000"));
	assert_true(ds_url_local("tls+tcp://localhost:7000"));
	assert_true(ds_url_local("tcp://[::1]:7000"));
	assert_false(ds_url_local("tcp://0.0.0.0:7000"));
	assert_false(ds_url_local("tcp://*:7000"));
	assert_false(ds_url_local("tls+tcp://10.0.0.1:7000"));
	assert_false(ds_url_local("127.0.0.1:7000"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_utf8_accepts_well_formed_text),
	    cmocka_unit_test(test_utf8_rejects_malformed_sequences),
	    cmocka_unit_test(test_utf8_control_characters_are_found),
	    cmocka_unit_test(test_hex_round_trips_and_rejects_bad_digits),
	    cmocka_unit_test(test_ct_equal_compares_every_byte),
	    cmocka_unit_test(test_random_bytes_differ_between_calls),
	    cmocka_unit_test(test_buf_refuses_to_grow_past_max),
	    cmocka_unit_test(test_alloc_fault_injection_fails_the_nth_allocation),
	    cmocka_unit_test(test_uri_redact_hides_every_password),
	    cmocka_unit_test(test_loopback_rule_of_protected_mode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
