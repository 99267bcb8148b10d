/*
 * store_prepare_test.c - work done once where a write is received
 * (store_prepare): the store's write path trusts a prepared write's
 * validation and request hash and does not redo them, still validates and
 * hashes a write that was not prepared, recognises request ids stored
 * with the FNV-1a hash of earlier releases, and the word-wise request
 * hash tells requests apart.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "store_int.h"
#include "store_test_util.h"

static store_write
spt_rid_update(const char *key, const char *value, const char *rid)
{
	return stt_with_rid(
	    stt_update(key, value, STORE_PRECOND_UNCONDITIONAL, 0), rid);
}

static void
test_prepare_records_the_validation_and_the_request_hash(void **state)
{
	stt_fx *fx = *state;
	const store_limits *lim = store_limits_of(fx->s);
	store_write w = spt_rid_update("doc", "v1", "req-1");
	store_write plain = stt_update("doc", "v1", STORE_PRECOND_UNCONDITIONAL, 0);
	store_error err;

	assert_int_equal(store_prepare(lim, &w, &err), STORE_OK);
	assert_true(w.validated);
	assert_int_equal(w.request_hash, store_request_hash(lim, &w));
	assert_int_not_equal(w.request_hash, 0);
	/* No request id: nothing to hash. */
	assert_int_equal(store_prepare(lim, &plain, &err), STORE_OK);
	assert_true(plain.validated);
	assert_int_equal(plain.request_hash, 0);
}

static void
test_prepare_refuses_what_validate_refuses(void **state)
{
	stt_fx *fx = *state;
	const store_limits *lim = store_limits_of(fx->s);
	store_write w = spt_rid_update("doc", "v1", "req-1");
	store_error err;

	w.precond.kind = STORE_PRECOND_NONE;
	w.validated = true; /* stale: store_prepare decides afresh */
	w.request_hash = 42;
	assert_int_equal(store_prepare(lim, &w, &err),
	    STORE_EPRECONDITION_REQUIRED);
	assert_int_equal(err.code, STORE_EPRECONDITION_REQUIRED);
	assert_false(w.validated);
	assert_int_equal(w.request_hash, 0);
}

/* The writer uses the prepared hash as given: a write whose prepared hash
 * is deliberately wrong is stored under that hash, so the same request
 * sent again unprepared (hashed by the store) no longer matches it. */
static void
test_the_write_path_trusts_the_prepared_request_hash(void **state)
{
	stt_fx *fx = *state;
	const store_limits *lim = store_limits_of(fx->s);
	store_write w = spt_rid_update("doc", "v1", "req-1");
	store_write again = spt_rid_update("doc", "v1", "req-1");
	store_write_result r;
	store_error err;

	assert_int_equal(store_prepare(lim, &w, &err), STORE_OK);
	w.request_hash ^= UINT64_C(0x5a5a5a5a5a5a5a5a);
	assert_int_equal(stt_apply0(fx->c, w), STORE_OK);
	/* The very same (wrong) prepared hash replays... */
	assert_int_equal(stt_apply(fx->c, w, &r), STORE_OK);
	assert_true(r.replayed);
	store_write_result_fini(&r);
	/* ...the store's own hash of the same request does not. */
	assert_int_equal(stt_apply(fx->c, again, &r),
	    STORE_EREQUEST_ID_REUSED);
	store_write_result_fini(&r);
	assert_int_equal(stt_version(fx->c, "doc"), 1);
}

/* A prepared write is not validated again: one marked validated that the
 * rules would refuse (no precondition) gets past validation into the
 * write rules, which refuse it as a conflict instead. */
static void
test_the_write_path_does_not_validate_a_prepared_write_again(void **state)
{
	stt_fx *fx = *state;
	store_write w = stt_update("doc", "v1", STORE_PRECOND_NONE, 0);
	store_write_result r;

	w.validated = true;
	assert_int_equal(stt_apply(fx->c, w, &r), STORE_ECONFLICT);
	assert_string_equal(r.error.field, "precondition");
	store_write_result_fini(&r);
	assert_int_equal(stt_version(fx->c, "doc"), 0);
}

static void
test_a_write_without_the_flag_is_still_validated(void **state)
{
	stt_fx *fx = *state;
	const store_limits *lim = store_limits_of(fx->s);
	store_write none = stt_update("doc", "v1", STORE_PRECOND_NONE, 0);
	store_write big = stt_update("doc", NULL, STORE_PRECOND_UNCONDITIONAL, 0);
	store_write ws[3];
	store_write_result rs[3];
	uint8_t *v = ds_alloc(lim->max_value_bytes + 1);

	assert_non_null(v);
	memset(v, 'x', lim->max_value_bytes + 1);
	big.value = v;
	big.value_len = lim->max_value_bytes + 1;
	ws[0] = none;
	ws[1] = big;
	ws[2] = stt_update("ok", "v1", STORE_PRECOND_UNCONDITIONAL, 0);
	memset(rs, 0, sizeof(rs));
	assert_int_equal(store_apply_batch(fx->c, ws, 3, rs), STORE_OK);
	assert_int_equal(rs[0].error.code, STORE_EPRECONDITION_REQUIRED);
	assert_int_equal(rs[1].error.code, STORE_ETOOLARGE);
	assert_string_equal(rs[1].error.field, "value");
	assert_int_equal(rs[2].error.code, STORE_OK);
	for (int i = 0; i < 3; i++) {
		store_write_result_fini(&rs[i]);
	}
	assert_int_equal(stt_version(fx->c, "doc"), 0);
	assert_int_equal(stt_version(fx->c, "ok"), 1);
	ds_free(v);
}

/* Prepared and unprepared writes mean the same request: the store's own
 * hash is the one store_prepare records. */
static void
test_prepared_and_unprepared_retries_replay_each_other(void **state)
{
	stt_fx *fx = *state;
	const store_limits *lim = store_limits_of(fx->s);
	store_write p = spt_rid_update("doc", "v1", "req-1");
	store_write u = spt_rid_update("doc", "v1", "req-1");
	store_write_result r;
	store_error err;

	assert_int_equal(store_prepare(lim, &p, &err), STORE_OK);
	assert_int_equal(stt_apply0(fx->c, p), STORE_OK);
	assert_int_equal(stt_apply(fx->c, u, &r), STORE_OK);
	assert_true(r.replayed);
	stt_assert_value(&r.record, "v1");
	store_write_result_fini(&r);
	assert_int_equal(stt_apply(fx->c, p, &r), STORE_OK);
	assert_true(r.replayed);
	store_write_result_fini(&r);
}

/* A request id stored by a release that hashed with FNV-1a is still
 * recognised: its retry replays, a different request is refused. */
static void
test_an_entry_hashed_with_fnv_by_an_earlier_release_still_replays(
    void **state)
{
	stt_fx *fx = *state;
	const store_limits *lim = store_limits_of(fx->s);
	store_write old = spt_rid_update("doc", "v1", "req-old");
	store_write retry = spt_rid_update("doc", "v1", "req-old");
	store_write other = spt_rid_update("doc", "v2", "req-old");
	store_write_result r;
	store_error err;

	/* What an earlier release stored: the FNV-1a hash. */
	assert_int_equal(store_prepare(lim, &old, &err), STORE_OK);
	old.request_hash = store_request_hash_fnv(lim, &old);
	assert_int_not_equal(old.request_hash, store_request_hash(lim, &old));
	assert_int_equal(stt_apply0(fx->c, old), STORE_OK);
	assert_int_equal(stt_apply(fx->c, retry, &r), STORE_OK);
	assert_true(r.replayed);
	store_write_result_fini(&r);
	assert_int_equal(stt_apply(fx->c, other, &r), STORE_EREQUEST_ID_REUSED);
	store_write_result_fini(&r);
	assert_int_equal(stt_version(fx->c, "doc"), 1);
}

/* The word-wise hash: every byte of a value counts, at every position
 * (four lanes of 32-byte blocks, 8-byte words, the tail), and so does the
 * length. */
static void
test_the_request_hash_sees_every_byte_and_the_length(void **state)
{
	stt_fx *fx = *state;
	const store_limits *lim = store_limits_of(fx->s);
	static const size_t sizes[] = {0, 1, 7, 8, 9, 31, 32, 33, 63, 64, 65,
	    100, 1024, 4099};
	uint8_t buf[4100];
	store_write w = stt_update("k", NULL, STORE_PRECOND_UNCONDITIONAL, 0);
	uint64_t seen[sizeof(sizes) / sizeof(sizes[0])];

	(void) state;
	for (size_t i = 0; i < sizeof(buf); i++) {
		buf[i] = (uint8_t) (i * 131u + 7u);
	}
	w.value = buf;
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		size_t n = sizes[s];
		uint64_t h;

		w.value_len = n;
		h = store_request_hash(lim, &w);
		assert_int_equal(h, store_request_hash(lim, &w));
		for (size_t j = 0; j < s; j++) {
			assert_int_not_equal(h, seen[j]); /* the length counts */
		}
		seen[s] = h;
		for (size_t at = 0; at < n; at++) {
			buf[at] ^= 0x01;
			assert_int_not_equal(store_request_hash(lim, &w), h);
			buf[at] ^= 0x01;
		}
	}
	/* Zero bytes are not padding: "a" and "a\0" differ. */
	buf[0] = 'a';
	buf[1] = 0;
	w.value_len = 1;
	seen[0] = store_request_hash(lim, &w);
	w.value_len = 2;
	assert_int_not_equal(store_request_hash(lim, &w), seen[0]);
}

#define T(f) cmocka_unit_test_setup_teardown(f, stt_setup_mem, stt_teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_prepare_records_the_validation_and_the_request_hash),
	    T(test_prepare_refuses_what_validate_refuses),
	    T(test_the_write_path_trusts_the_prepared_request_hash),
	    T(test_the_write_path_does_not_validate_a_prepared_write_again),
	    T(test_a_write_without_the_flag_is_still_validated),
	    T(test_prepared_and_unprepared_retries_replay_each_other),
	    T(test_an_entry_hashed_with_fnv_by_an_earlier_release_still_replays),
	    T(test_the_request_hash_sees_every_byte_and_the_length),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
