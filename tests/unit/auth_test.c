/*
 * auth_test.c - token names, grants and their rules, secrets, hashes,
 * bearer values and the failure limiter (auth.h), on a fake clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "auth.h"
#include "ds_alloc.h"
#include "ds_test.h"

#define S(s) (s), (sizeof(s) - 1)

/* parse_ok parses n grants that must be accepted. */
static void
parse_ok(const char *const *specs, size_t n, auth_grants *g)
{
	auth_error err = {0};

	assert_int_equal(auth_grants_parse(specs, n, g, &err), 0);
}

/* parse_refused: the grants are refused with field "grants" and a
 * message containing want. */
static void
parse_refused(const char *const *specs, size_t n, const char *want)
{
	auth_grants g = {0};
	auth_error err = {0};

	assert_int_equal(auth_grants_parse(specs, n, &g, &err), -1);
	assert_string_equal(err.field, "grants");
	if (strstr(err.message, want) == NULL) {
		fail_msg("message \"%s\" lacks \"%s\"", err.message, want);
	}
	assert_null(g.g);
	assert_int_equal(g.n, 0);
}

/* --- names --- */

static void
test_name_accepts_the_allowed_bytes_up_to_the_limit(void **state)
{
	char name[AUTH_NAME_MAX + 1];

	(void) state;
	assert_true(auth_name_valid(S("ci"), NULL));
	assert_true(auth_name_valid(S("a.b_c@d-E9"), NULL));
	memset(name, 'x', sizeof(name));
	assert_true(auth_name_valid(name, AUTH_NAME_MAX, NULL));
}

static void
test_name_refuses_empty_long_and_foreign_bytes(void **state)
{
	char name[AUTH_NAME_MAX + 1];
	auth_error err = {0};

	(void) state;
	memset(name, 'x', sizeof(name));
	assert_false(auth_name_valid(name, AUTH_NAME_MAX + 1, &err));
	assert_string_equal(err.field, "name");
	assert_non_null(strstr(err.message, "64"));
	assert_false(auth_name_valid(S(""), &err));
	assert_false(auth_name_valid(S("a b"), &err));
	assert_false(auth_name_valid(S("a/b"), &err));
	assert_false(auth_name_valid(S("caf\xc3\xa9"), &err));
	assert_false(auth_name_valid("a\0b", 3, &err));
	assert_string_equal(err.field, "name");
}

/* --- grants --- */

static void
test_grants_round_trip_in_canonical_order(void **state)
{
	const char *specs[] = {"lock:docs/", "read:", "write:docs/",
	    "read:docs/", "admin", "read:docs/", "write:a"};
	auth_grants g = {0}, h = {0};
	char *text = NULL, *again = NULL;

	(void) state;
	parse_ok(specs, 7, &g);
	assert_true(g.admin);
	assert_int_equal(g.n, 3); /* "", "a", "docs/": duplicates merged */
	assert_string_equal(g.g[0].prefix, "");
	assert_string_equal(g.g[1].prefix, "a");
	assert_string_equal(g.g[2].prefix, "docs/");
	assert_int_equal(g.g[2].rights, AUTH_READ | AUTH_WRITE | AUTH_LOCK);
	assert_int_equal(auth_grants_format(&g, &text), 0);
	assert_string_equal(text,
	    "admin\nread:\nwrite:a\nread:docs/\nwrite:docs/\nlock:docs/");
	assert_int_equal(auth_grants_parse_text(text, &h, NULL), 0);
	assert_int_equal(auth_grants_format(&h, &again), 0);
	assert_string_equal(text, again);
	ds_free(text);
	ds_free(again);
	auth_grants_fini(&g);
	auth_grants_fini(&h);
	auth_grants_fini(&h); /* fini of a finished (zeroed) value: no-op */
}

static void
test_grants_text_allows_one_trailing_newline_only(void **state)
{
	auth_grants g = {0};
	auth_error err = {0};

	(void) state;
	assert_int_equal(auth_grants_parse_text("read:x\n", &g, &err), 0);
	assert_int_equal(g.n, 1);
	auth_grants_fini(&g);
	assert_int_equal(auth_grants_parse_text("read:x\n\n", &g, &err), -1);
	assert_int_equal(auth_grants_parse_text("", &g, &err), -1);
	assert_non_null(strstr(err.message, "AUTH_GRANTS_MAX"));
	assert_int_equal(auth_grants_parse_text("\n", &g, &err), -1);
}

static void
test_grants_refuse_each_malformed_form(void **state)
{
	char long_prefix[6 + AUTH_PREFIX_MAX + 2];
	const char *spec[1];

	(void) state;
	spec[0] = "delete:x";
	parse_refused(spec, 1, "grant 1 \"delete:x\" has an unknown right");
	spec[0] = "read";
	parse_refused(spec, 1, "needs ':'");
	spec[0] = "admin:x";
	parse_refused(spec, 1, "unknown right");
	spec[0] = "Read:x";
	parse_refused(spec, 1, "unknown right");
	spec[0] = "read:a\xff";
	parse_refused(spec, 1, "grant 1: its prefix is not UTF-8");
	spec[0] = "read:a\tb";
	parse_refused(spec, 1, "control character");
	spec[0] = NULL;
	parse_refused(spec, 1, "missing");
	{
		const char *two[] = {"read:a", "write"};

		parse_refused(two, 2, "grant 2 \"write\" needs ':'");
	}
	parse_refused(spec, 0, "AUTH_GRANTS_MAX");

	/* The prefix limit: AUTH_PREFIX_MAX bytes pass, one more does not. */
	memcpy(long_prefix, "write:", 6);
	memset(long_prefix + 6, 'p', AUTH_PREFIX_MAX + 1);
	long_prefix[6 + AUTH_PREFIX_MAX + 1] = '\0';
	spec[0] = long_prefix;
	parse_refused(spec, 1, "AUTH_PREFIX_MAX");
	long_prefix[6 + AUTH_PREFIX_MAX] = '\0';
	{
		auth_grants g = {0};

		parse_ok(spec, 1, &g);
		assert_int_equal(g.g[0].prefix_len, AUTH_PREFIX_MAX);
		auth_grants_fini(&g);
	}
}

static void
test_grants_count_limit_is_exact(void **state)
{
	const char *specs[AUTH_GRANTS_MAX + 1];
	auth_grants g = {0};
	char text[(AUTH_GRANTS_MAX + 1) * 8];
	size_t i, at = 0;

	(void) state;
	for (i = 0; i < AUTH_GRANTS_MAX + 1; i++) {
		specs[i] = "read:a";
		at += (size_t) snprintf(text + at, sizeof(text) - at,
		    "%sread:%zu", i > 0 ? "\n" : "", i % 10);
	}
	parse_ok(specs, AUTH_GRANTS_MAX, &g);
	auth_grants_fini(&g);
	parse_refused(specs, AUTH_GRANTS_MAX + 1, "AUTH_GRANTS_MAX");
	assert_int_equal(auth_grants_parse_text(text, &g, NULL), -1);
}

static void
test_grants_parse_out_of_memory_leaks_nothing(void **state)
{
	const char *specs[] = {"read:a", "write:b", "lock:c", "admin"};
	auth_grants g = {0};
	auth_error err = {0};
	char *text = NULL;
	long n;
	int rv;

	(void) state;
	for (n = 0;; n++) {
		ds_alloc_fail_after(n);
		rv = auth_grants_parse(specs, 4, &g, &err);
		ds_alloc_fail_reset();
		if (rv == 0) {
			break;
		}
		assert_int_equal(rv, -2);
		assert_string_equal(err.message, "out of memory");
		assert_null(g.g);
	}
	assert_true(n > 0);
	ds_alloc_fail_after(0);
	assert_int_equal(auth_grants_format(&g, &text), -2);
	ds_alloc_fail_reset();
	assert_null(text);
	auth_grants_fini(&g);
}

/* --- rights --- */

static void
test_longest_prefix_decides_and_rights_on_one_prefix_add_up(void **state)
{
	const char *specs[] = {"read:", "write:docs/", "read:docs/",
	    "lock:docs/", "read:docs/secret/"};
	auth_grants g = {0};
	const char *why = "unset";

	(void) state;
	parse_ok(specs, 5, &g);
	/* The empty prefix covers every key. */
	assert_true(auth_allows(&g, AUTH_READ, S("anything"), NULL));
	assert_false(auth_allows(&g, AUTH_WRITE, S("anything"), &why));
	assert_string_equal(why, "");
	/* docs/ holds read, write and lock together. */
	assert_true(auth_allows(&g, AUTH_READ, S("docs/a"), NULL));
	assert_true(auth_allows(&g, AUTH_WRITE, S("docs/a"), NULL));
	assert_true(auth_allows(&g, AUTH_LOCK, S("docs/a"), NULL));
	/* The longer docs/secret/ decides alone: read only. */
	assert_true(auth_allows(&g, AUTH_READ, S("docs/secret/x"), NULL));
	assert_false(auth_allows(&g, AUTH_WRITE, S("docs/secret/x"), &why));
	assert_string_equal(why, "docs/secret/");
	/* A key shorter than a prefix is not under it. */
	assert_true(auth_allows(&g, AUTH_WRITE, S("docs/secret"), NULL));
	assert_false(auth_allows(&g, AUTH_ADMIN, S("docs/a"), &why));
	assert_null(why);
	auth_grants_fini(&g);
}

static void
test_no_matching_prefix_is_no_right(void **state)
{
	const char *specs[] = {"write:docs/"};
	auth_grants g = {0};
	const char *why = "unset";

	(void) state;
	parse_ok(specs, 1, &g);
	assert_false(auth_allows(&g, AUTH_WRITE, S("doc"), &why));
	assert_null(why);
	assert_false(auth_allows(&g, AUTH_READ, S("docs/a"), &why));
	assert_string_equal(why, "docs/");
	auth_grants_fini(&g);
}

static void
test_admin_has_every_right_everywhere(void **state)
{
	const char *specs[] = {"admin"};
	auth_grants g = {0};

	(void) state;
	parse_ok(specs, 1, &g);
	assert_int_equal(g.n, 0);
	assert_true(auth_allows(&g, AUTH_WRITE, S("x"), NULL));
	assert_true(auth_allows(&g, AUTH_ADMIN, S(""), NULL));
	assert_true(auth_allows_range(&g, AUTH_READ, S(""), NULL));
	auth_grants_fini(&g);
}

static void
test_range_needs_the_right_on_every_longer_grant_inside(void **state)
{
	const char *specs[] = {
	    "read:", "read:docs/", "write:docs/private/", "read:docs/public/"};
	auth_grants g = {0};
	const char *why = "unset";

	(void) state;
	parse_ok(specs, 4, &g);
	assert_true(auth_allows_range(&g, AUTH_READ, S("docs/public/"), NULL));
	assert_true(auth_allows_range(&g, AUTH_READ, S("other/"), NULL));
	/* docs/private/ inside docs/ has write but not read. */
	assert_false(auth_allows_range(&g, AUTH_READ, S("docs/"), &why));
	assert_string_equal(why, "docs/private/");
	assert_false(auth_allows_range(&g, AUTH_READ, S(""), &why));
	assert_string_equal(why, "docs/private/");
	/* The range's own decider lacking the right refuses with it. */
	assert_false(auth_allows_range(&g, AUTH_WRITE, S("docs/"), &why));
	assert_string_equal(why, "docs/");
	/* Inside the write-only prefix: its decider decides. */
	assert_false(
	    auth_allows_range(&g, AUTH_READ, S("docs/private/a"), &why));
	assert_string_equal(why, "docs/private/");
	auth_grants_fini(&g);
}

static void
test_range_without_a_decider_is_refused(void **state)
{
	const char *specs[] = {"read:docs/a", "read:docs/b"};
	auth_grants g = {0};
	const char *why = "unset";

	(void) state;
	parse_ok(specs, 2, &g);
	/* "docs/" itself and "docs/c" are under no grant. */
	assert_false(auth_allows_range(&g, AUTH_READ, S("docs/"), &why));
	assert_null(why);
	assert_true(auth_allows_range(&g, AUTH_READ, S("docs/a"), NULL));
	auth_grants_fini(&g);
}

/* --- secrets and hashes --- */

static void
test_new_secrets_are_well_formed_and_differ(void **state)
{
	char a[AUTH_SECRET_TEXT_LEN + 1], b[AUTH_SECRET_TEXT_LEN + 1];

	(void) state;
	assert_int_equal(auth_secret_new(a), 0);
	assert_int_equal(auth_secret_new(b), 0);
	assert_int_equal(strlen(a), AUTH_SECRET_TEXT_LEN);
	assert_true(auth_secret_well_formed(a, strlen(a)));
	assert_true(strncmp(a, "dst_", 4) == 0);
	assert_string_not_equal(a, b);
}

static void
test_secret_form_is_exact(void **state)
{
	char s[AUTH_SECRET_TEXT_LEN + 2];

	(void) state;
	memcpy(s, "dst_", 4);
	memset(s + 4, 'a', 2 * AUTH_SECRET_BYTES);
	s[AUTH_SECRET_TEXT_LEN] = '\0';
	assert_true(auth_secret_well_formed(s, AUTH_SECRET_TEXT_LEN));
	assert_false(auth_secret_well_formed(s, AUTH_SECRET_TEXT_LEN - 1));
	s[AUTH_SECRET_TEXT_LEN] = 'a';
	assert_false(auth_secret_well_formed(s, AUTH_SECRET_TEXT_LEN + 1));
	s[10] = 'A'; /* upper case hex is not the form */
	assert_false(auth_secret_well_formed(s, AUTH_SECRET_TEXT_LEN));
	s[10] = 'g';
	assert_false(auth_secret_well_formed(s, AUTH_SECRET_TEXT_LEN));
	s[10] = 'a';
	s[0] = 'x';
	assert_false(auth_secret_well_formed(s, AUTH_SECRET_TEXT_LEN));
	assert_false(auth_secret_well_formed(NULL, 0));
}

static void
test_hash_is_sha256_of_the_text(void **state)
{
	/* FIPS 180-2 test vectors. */
	static const uint8_t abc[AUTH_HASH_BYTES] = {0xba, 0x78, 0x16, 0xbf,
	    0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22,
	    0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10,
	    0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
	static const uint8_t empty[AUTH_HASH_BYTES] = {0xe3, 0xb0, 0xc4, 0x42,
	    0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9,
	    0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95,
	    0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};
	uint8_t h[AUTH_HASH_BYTES], other[AUTH_HASH_BYTES];

	(void) state;
	auth_hash(S("abc"), h);
	assert_memory_equal(h, abc, AUTH_HASH_BYTES);
	assert_true(auth_hash_equal(h, abc));
	auth_hash("", 0, h);
	assert_memory_equal(h, empty, AUTH_HASH_BYTES);
	memcpy(other, h, sizeof(other));
	other[AUTH_HASH_BYTES - 1] ^= 1;
	assert_false(auth_hash_equal(h, other));
	other[AUTH_HASH_BYTES - 1] ^= 1;
	other[0] ^= 0x80;
	assert_false(auth_hash_equal(h, other));
}

/* --- bearer --- */

static void
test_bearer_extracts_the_secret(void **state)
{
	const char *s = NULL;
	size_t n = 0;

	(void) state;
	assert_true(auth_bearer("Bearer dst_abc", &s, &n));
	assert_int_equal(n, 7);
	assert_memory_equal(s, "dst_abc", 7);
	assert_true(auth_bearer("bEARER    tok  ", &s, &n));
	assert_int_equal(n, 3);
	assert_memory_equal(s, "tok", 3);
}

static void
test_bearer_refuses_anything_else(void **state)
{
	const char *s = "unset";
	size_t n = 99;

	(void) state;
	assert_false(auth_bearer(NULL, &s, &n));
	assert_false(auth_bearer("", &s, &n));
	assert_false(auth_bearer("Bearer", &s, &n));
	assert_false(auth_bearer("Bearer ", &s, &n));
	assert_false(auth_bearer("Bearer    ", &s, &n));
	assert_false(auth_bearer("Bearerdst_abc", &s, &n));
	assert_false(auth_bearer("Basic dXNlcjpwYXNz", &s, &n));
	assert_false(auth_bearer("dst_abc", &s, &n));
	assert_false(auth_bearer("Bearer a b", &s, &n));
	assert_false(auth_bearer("Bearer a\x01", &s, &n));
	assert_false(auth_bearer(" Bearer a", &s, &n));
	/* Nothing written on a refusal. */
	assert_string_equal(s, "unset");
	assert_int_equal(n, 99);
}

/* --- limiter --- */

static void
test_limiter_blocks_after_n_failures_until_the_block_expires(void **state)
{
	ds_fake_clock fc;
	auth_limiter *l;
	int64_t left = -1;
	int i;

	(void) state;
	ds_fake_clock_init(&fc, 1000000);
	assert_non_null(l = auth_limiter_new(&fc.base));
	for (i = 0; i < AUTH_LIMIT_FAILURES - 1; i++) {
		assert_false(auth_limiter_fail(l, "10.0.0.1"));
		ds_fake_clock_advance(&fc, 10);
	}
	assert_false(auth_limiter_blocked(l, "10.0.0.1", &left));
	assert_int_equal(left, 0);
	assert_true(auth_limiter_fail(l, "10.0.0.1"));
	assert_true(auth_limiter_blocked(l, "10.0.0.1", &left));
	assert_int_equal(left, AUTH_LIMIT_BLOCK_MS);
	/* Another peer is not affected. */
	assert_false(auth_limiter_blocked(l, "10.0.0.2", NULL));
	/* A failure while blocked does not extend the block. */
	ds_fake_clock_advance(&fc, AUTH_LIMIT_BLOCK_MS - 1);
	assert_true(auth_limiter_fail(l, "10.0.0.1"));
	assert_true(auth_limiter_blocked(l, "10.0.0.1", &left));
	assert_int_equal(left, 1);
	ds_fake_clock_advance(&fc, 1);
	assert_false(auth_limiter_blocked(l, "10.0.0.1", &left));
	/* After the block the count starts again from nothing. */
	assert_false(auth_limiter_fail(l, "10.0.0.1"));
	assert_false(auth_limiter_blocked(l, "10.0.0.1", NULL));
	auth_limiter_free(l);
}

static void
test_limiter_counts_only_failures_within_the_window(void **state)
{
	ds_fake_clock fc;
	auth_limiter *l;
	int i;

	(void) state;
	ds_fake_clock_init(&fc, 0);
	assert_non_null(l = auth_limiter_new(&fc.base));
	/* N failures spread just wider than the window never block. */
	for (i = 0; i < 3 * AUTH_LIMIT_FAILURES; i++) {
		assert_false(auth_limiter_fail(l, "p"));
		ds_fake_clock_advance(
		    &fc, AUTH_LIMIT_WINDOW_MS / (AUTH_LIMIT_FAILURES - 1) + 1);
	}
	/* The window slides: N-1 late in one window and one early in the
	 * next still block. */
	for (i = 0; i < AUTH_LIMIT_FAILURES - 1; i++) {
		assert_false(auth_limiter_fail(l, "q"));
	}
	ds_fake_clock_advance(&fc, AUTH_LIMIT_WINDOW_MS - 1);
	assert_true(auth_limiter_fail(l, "q"));
	auth_limiter_free(l);
}

static void
test_limiter_ok_forgets_failures_but_not_a_block(void **state)
{
	ds_fake_clock fc;
	auth_limiter *l;
	int i;

	(void) state;
	ds_fake_clock_init(&fc, 0);
	assert_non_null(l = auth_limiter_new(&fc.base));
	for (i = 0; i < AUTH_LIMIT_FAILURES - 1; i++) {
		assert_false(auth_limiter_fail(l, "p"));
	}
	auth_limiter_ok(l, "p");
	for (i = 0; i < AUTH_LIMIT_FAILURES - 1; i++) {
		assert_false(auth_limiter_fail(l, "p"));
	}
	assert_true(auth_limiter_fail(l, "p"));
	auth_limiter_ok(l, "p");
	assert_true(auth_limiter_blocked(l, "p", NULL));
	auth_limiter_ok(l, "never-seen");
	auth_limiter_free(l);
}

static void
test_limiter_evicts_the_oldest_peer_when_full(void **state)
{
	ds_fake_clock fc;
	auth_limiter *l;
	char peer[32];
	int i;

	(void) state;
	ds_fake_clock_init(&fc, 0);
	assert_non_null(l = auth_limiter_new(&fc.base));
	for (i = 0; i < AUTH_LIMIT_FAILURES; i++) {
		(void) auth_limiter_fail(l, "first"); /* blocked at the end */
	}
	for (i = 0; i < AUTH_LIMIT_FAILURES; i++) {
		(void) auth_limiter_fail(l, "second");
	}
	assert_true(auth_limiter_blocked(l, "first", NULL));
	/* Fill the table: "first" is now the least recent, then "second". */
	for (i = 0; i < AUTH_LIMIT_PEERS - 2; i++) {
		(void) snprintf(
		    peer, sizeof(peer), "10.9.%d.%d", i / 256, i % 256);
		assert_false(auth_limiter_fail(l, peer));
	}
	assert_true(auth_limiter_blocked(l, "first", NULL));
	/* Touching "first" again makes "second" the oldest; blocked, it is
	 * passed over: the oldest peer not blocked (10.9.0.0) goes. */
	assert_true(auth_limiter_fail(l, "first"));
	assert_false(auth_limiter_fail(l, "one-more"));
	assert_true(auth_limiter_blocked(l, "second", NULL));
	assert_true(auth_limiter_blocked(l, "first", NULL));
	for (i = 0; i < AUTH_LIMIT_FAILURES - 2; i++) {
		assert_false(auth_limiter_fail(l, "one-more"));
	}
	assert_true(auth_limiter_fail(l, "one-more")); /* remembered */
	/* Forgotten entries are re-used without evicting anyone. */
	auth_limiter_ok(l, "10.9.0.5");
	assert_false(auth_limiter_fail(l, "and-another"));
	assert_true(auth_limiter_blocked(l, "first", NULL));
	/* Once "second"'s block is over it is evicted like anyone. */
	ds_fake_clock_advance(&fc, AUTH_LIMIT_BLOCK_MS);
	assert_false(auth_limiter_blocked(l, "second", NULL));
	assert_false(auth_limiter_fail(l, "after"));
	auth_limiter_free(l);
}

static void
test_limiter_one_off_failures_do_not_flush_a_block(void **state)
{
	ds_fake_clock fc;
	auth_limiter *l;
	char peer[32];
	int i, k;

	(void) state;
	ds_fake_clock_init(&fc, 0);
	assert_non_null(l = auth_limiter_new(&fc.base));
	for (i = 0; i < AUTH_LIMIT_FAILURES; i++) {
		(void) auth_limiter_fail(l, "attacker");
	}
	assert_true(auth_limiter_blocked(l, "attacker", NULL));
	/* Twice the table's size of one-off failures from fresh addresses
	 * (the attacker's other addresses, trying to make it forget). */
	for (i = 0; i < 2 * AUTH_LIMIT_PEERS; i++) {
		(void) snprintf(peer, sizeof(peer), "f%d", i);
		assert_false(auth_limiter_fail(l, peer));
	}
	assert_true(auth_limiter_blocked(l, "attacker", NULL));

	/* A table of running blocks only: a new peer is not remembered,
	 * and no block is lifted. */
	for (k = 0; k < AUTH_LIMIT_PEERS - 1; k++) {
		(void) snprintf(peer, sizeof(peer), "b%d", k);
		for (i = 0; i < AUTH_LIMIT_FAILURES; i++) {
			(void) auth_limiter_fail(l, peer);
		}
		assert_true(auth_limiter_blocked(l, peer, NULL));
	}
	for (i = 0; i < AUTH_LIMIT_FAILURES + 1; i++) {
		assert_false(auth_limiter_fail(l, "newcomer"));
	}
	assert_false(auth_limiter_blocked(l, "newcomer", NULL));
	assert_true(auth_limiter_blocked(l, "attacker", NULL));
	for (k = 0; k < AUTH_LIMIT_PEERS - 1; k++) {
		(void) snprintf(peer, sizeof(peer), "b%d", k);
		assert_true(auth_limiter_blocked(l, peer, NULL));
	}
	/* When the blocks end, new peers are remembered again. */
	ds_fake_clock_advance(&fc, AUTH_LIMIT_BLOCK_MS);
	for (i = 0; i < AUTH_LIMIT_FAILURES - 1; i++) {
		assert_false(auth_limiter_fail(l, "newcomer"));
	}
	assert_true(auth_limiter_fail(l, "newcomer"));
	assert_true(auth_limiter_blocked(l, "newcomer", NULL));
	auth_limiter_free(l);
}

static void
test_limiter_treats_long_peer_keys_by_their_first_bytes(void **state)
{
	char a[AUTH_PEER_MAX + 8], b[AUTH_PEER_MAX + 8];
	auth_limiter *l;
	int i;

	(void) state;
	memset(a, 'a', sizeof(a));
	a[sizeof(a) - 1] = '\0';
	memcpy(b, a, sizeof(b));
	b[AUTH_PEER_MAX + 2] = 'b';
	assert_non_null(l = auth_limiter_new(NULL));
	for (i = 0; i < AUTH_LIMIT_FAILURES; i++) {
		(void) auth_limiter_fail(l, a);
	}
	assert_true(auth_limiter_blocked(l, b, NULL));
	auth_limiter_free(l);
	auth_limiter_free(NULL);
}

static void
test_limiter_new_out_of_memory_is_null_and_leaks_nothing(void **state)
{
	auth_limiter *l;
	long k;

	(void) state;
	for (k = 0;; k++) {
		ds_alloc_fail_after(k);
		l = auth_limiter_new(NULL);
		ds_alloc_fail_reset();
		if (l != NULL) {
			break;
		}
	}
	assert_int_equal(k, 3); /* the limiter, its peers, its buckets */
	auth_limiter_free(l);
}

struct limiter_thread {
	auth_limiter *l;
	int id;
	int blocked;
};

static void *
limiter_thread_run(void *arg)
{
	struct limiter_thread *t = arg;
	char peer[32];
	int i;

	for (i = 0; i < 2000; i++) {
		(void) snprintf(peer, sizeof(peer), "t%d-%d", t->id, i % 50);
		if (auth_limiter_fail(t->l, peer)) {
			t->blocked++;
		}
		(void) auth_limiter_blocked(t->l, peer, NULL);
		if (i % 50 >= 45) {
			auth_limiter_ok(t->l, peer); /* these never block */
		}
	}
	return NULL;
}

static void
test_limiter_is_safe_from_many_threads(void **state)
{
	struct limiter_thread t[4];
	pthread_t th[4];
	ds_fake_clock fc;
	auth_limiter *l;
	int i;

	(void) state;
	ds_fake_clock_init(&fc, 0);
	assert_non_null(l = auth_limiter_new(&fc.base));
	for (i = 0; i < 4; i++) {
		t[i] = (struct limiter_thread){l, i, 0};
		assert_int_equal(
		    pthread_create(&th[i], NULL, limiter_thread_run, &t[i]),
		    0);
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		/* 40 failures each on peers 0..44 at one instant: blocks. */
		assert_true(t[i].blocked > 0);
	}
	auth_limiter_free(l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
	        test_name_accepts_the_allowed_bytes_up_to_the_limit),
	    cmocka_unit_test(test_name_refuses_empty_long_and_foreign_bytes),
	    cmocka_unit_test(test_grants_round_trip_in_canonical_order),
	    cmocka_unit_test(
	        test_grants_text_allows_one_trailing_newline_only),
	    cmocka_unit_test(test_grants_refuse_each_malformed_form),
	    cmocka_unit_test(test_grants_count_limit_is_exact),
	    cmocka_unit_test(test_grants_parse_out_of_memory_leaks_nothing),
	    cmocka_unit_test(
	        test_longest_prefix_decides_and_rights_on_one_prefix_add_up),
	    cmocka_unit_test(test_no_matching_prefix_is_no_right),
	    cmocka_unit_test(test_admin_has_every_right_everywhere),
	    cmocka_unit_test(
	        test_range_needs_the_right_on_every_longer_grant_inside),
	    cmocka_unit_test(test_range_without_a_decider_is_refused),
	    cmocka_unit_test(test_new_secrets_are_well_formed_and_differ),
	    cmocka_unit_test(test_secret_form_is_exact),
	    cmocka_unit_test(test_hash_is_sha256_of_the_text),
	    cmocka_unit_test(test_bearer_extracts_the_secret),
	    cmocka_unit_test(test_bearer_refuses_anything_else),
	    cmocka_unit_test(
	        test_limiter_blocks_after_n_failures_until_the_block_expires),
	    cmocka_unit_test(
	        test_limiter_counts_only_failures_within_the_window),
	    cmocka_unit_test(test_limiter_ok_forgets_failures_but_not_a_block),
	    cmocka_unit_test(test_limiter_evicts_the_oldest_peer_when_full),
	    cmocka_unit_test(test_limiter_one_off_failures_do_not_flush_a_block),
	    cmocka_unit_test(
	        test_limiter_treats_long_peer_keys_by_their_first_bytes),
	    cmocka_unit_test(
	        test_limiter_new_out_of_memory_is_null_and_leaks_nothing),
	    cmocka_unit_test(test_limiter_is_safe_from_many_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
