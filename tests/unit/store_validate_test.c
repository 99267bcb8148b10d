/*
 * store_validate_test.c - the rules that need no database: every limit at
 * its edge, preconditions, ttl bounds, tokens, error names, and store_open
 * refusing limits above their hard maxima.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "store_test_util.h"

/* stv_check validates w with lim and asserts code and field. */
static void
stv_check(const store_limits *lim, const store_write *w, store_err code,
    const char *field)
{
	store_error err;

	memset(&err, 0x5a, sizeof(err)); /* must be overwritten */
	assert_int_equal(store_validate(lim, w, &err), code);
	assert_int_equal(err.code, code);
	if (field != NULL) {
		assert_string_equal(err.field, field);
	}
	if (code != STORE_OK) {
		assert_true(strlen(err.message) > 0);
	}
}

static void
test_strerror_and_reason_name_every_code(void **state)
{
	static const struct {
		store_err e;
		const char *reason;
	} want[] = {
	    {STORE_OK, ""},
	    {STORE_EPRECONDITION_REQUIRED, "PRECONDITION_REQUIRED"},
	    {STORE_ECONFLICT, "VERSION_CONFLICT"},
	    {STORE_ELOCKED, "LOCKED"},
	    {STORE_ELOCK_EXPIRED, "LOCK_EXPIRED"},
	    {STORE_ETOKEN_MISMATCH, "LOCK_TOKEN_MISMATCH"},
	    {STORE_ENOT_LOCKED, "NOT_LOCKED"},
	    {STORE_ENOTFOUND, "NOT_FOUND"},
	    {STORE_ECOMPACTED, "VERSION_COMPACTED"},
	    {STORE_EINVAL, "INVALID_ARGUMENT"},
	    {STORE_ETOOLARGE, "TOO_LARGE"},
	    {STORE_EREQUEST_ID_REUSED, "REQUEST_ID_REUSED"},
	    {STORE_ENOMEM, "RESOURCE_EXHAUSTED"},
	    {STORE_EIO, "INTERNAL"},
	    {STORE_ECLOSED, "UNAVAILABLE"},
	    {STORE_EBUSY, "DB_BUSY"},
	    {STORE_EREV_COMPACTED, "REVISION_COMPACTED"},
	};

	(void) state;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		assert_string_equal(store_reason(want[i].e), want[i].reason);
		assert_non_null(store_strerror(want[i].e));
		assert_true(strlen(store_strerror(want[i].e)) > 0);
	}
	assert_non_null(store_strerror((store_err) 999));
	assert_non_null(store_reason((store_err) 999));
}

static void
test_key_empty_is_invalid(void **state)
{
	store_limits lim = store_limits_default();
	store_write w = stt_update("", "v", STORE_PRECOND_UNCONDITIONAL, 0);

	(void) state;
	stv_check(&lim, &w, STORE_EINVAL, "key");
}

static void
test_key_at_max_passes_and_one_more_is_too_large(void **state)
{
	store_limits lim = store_limits_default();
	char *k = ds_test_str(STORE_MAX_KEY_BYTES_DEFAULT + 1, 'k');
	store_write w = stt_update(k, "v", STORE_PRECOND_UNCONDITIONAL, 0);
	store_error err;

	(void) state;
	w.key_len = STORE_MAX_KEY_BYTES_DEFAULT;
	stv_check(&lim, &w, STORE_OK, "");
	w.key_len = STORE_MAX_KEY_BYTES_DEFAULT + 1;
	assert_int_equal(store_validate(&lim, &w, &err), STORE_ETOOLARGE);
	assert_string_equal(err.field, "key");
	assert_string_equal(err.message,
	    "key exceeds max_key_bytes (512)");
	w.key_len = 1;
	stv_check(&lim, &w, STORE_OK, "");
	free(k);
}

static void
test_key_invalid_utf8_or_control_is_invalid(void **state)
{
	store_limits lim = store_limits_default();
	store_write w = stt_update("a\xc3", "v", STORE_PRECOND_UNCONDITIONAL,
	    0);

	(void) state;
	stv_check(&lim, &w, STORE_EINVAL, "key");
	w = stt_update("\xed\xa0\x80", "v", STORE_PRECOND_UNCONDITIONAL, 0);
	stv_check(&lim, &w, STORE_EINVAL, "key"); /* surrogate */
	w = stt_update("a\tb", "v", STORE_PRECOND_UNCONDITIONAL, 0);
	stv_check(&lim, &w, STORE_EINVAL, "key");
	w = stt_update("a\x7f", "v", STORE_PRECOND_UNCONDITIONAL, 0);
	stv_check(&lim, &w, STORE_EINVAL, "key");
	w = stt_update("a\xc2\x85", "v", STORE_PRECOND_UNCONDITIONAL, 0);
	stv_check(&lim, &w, STORE_EINVAL, "key"); /* C1 control */
	w = stt_update("x", "v", STORE_PRECOND_UNCONDITIONAL, 0);
	w.key = "a\0b";
	w.key_len = 3;
	stv_check(&lim, &w, STORE_EINVAL, "key"); /* NUL */
	w = stt_update("caf\xc3\xa9/\xf0\x9f\x98\x80",
	    "v", STORE_PRECOND_UNCONDITIONAL, 0);
	stv_check(&lim, &w, STORE_OK, "");
}

static void
test_value_at_max_passes_and_one_more_is_too_large(void **state)
{
	store_limits lim = store_limits_default();
	char *v = ds_test_str(STORE_MAX_VALUE_BYTES_DEFAULT + 1, 'v');
	store_write w = stt_update("k", v, STORE_PRECOND_UNCONDITIONAL, 0);
	store_error err;

	(void) state;
	w.value_len = STORE_MAX_VALUE_BYTES_DEFAULT;
	stv_check(&lim, &w, STORE_OK, "");
	w.value_len = STORE_MAX_VALUE_BYTES_DEFAULT + 1;
	assert_int_equal(store_validate(&lim, &w, &err), STORE_ETOOLARGE);
	assert_string_equal(err.field, "value");
	assert_string_equal(err.message,
	    "value exceeds max_value_bytes (1048576)");
	w.value_len = 0;
	w.value = NULL;
	stv_check(&lim, &w, STORE_OK, ""); /* empty value is a value */
	w.value_len = 3;
	stv_check(&lim, &w, STORE_EINVAL, "value"); /* NULL with a length */
	free(v);
}

static void
test_content_type_limit_and_printable_ascii(void **state)
{
	store_limits lim = store_limits_default();
	char *ct = ds_test_str(STORE_MAX_CONTENT_TYPE_BYTES_DEFAULT + 1, 't');
	store_write w = stt_update("k", "v", STORE_PRECOND_UNCONDITIONAL, 0);

	(void) state;
	w.content_type = ct;
	w.content_type_len = STORE_MAX_CONTENT_TYPE_BYTES_DEFAULT;
	stv_check(&lim, &w, STORE_OK, "");
	w.content_type_len = STORE_MAX_CONTENT_TYPE_BYTES_DEFAULT + 1;
	stv_check(&lim, &w, STORE_ETOOLARGE, "content_type");
	w.content_type = "text/plain; charset=\xc3\xa9";
	w.content_type_len = strlen(w.content_type);
	stv_check(&lim, &w, STORE_EINVAL, "content_type");
	w.content_type = "text/\nplain";
	w.content_type_len = strlen(w.content_type);
	stv_check(&lim, &w, STORE_EINVAL, "content_type");
	w.content_type = NULL;
	w.content_type_len = 0;
	stv_check(&lim, &w, STORE_OK, "");
	free(ct);
}

static void
test_missing_precondition_is_precondition_required(void **state)
{
	store_limits lim = store_limits_default();
	store_write w = stt_update("k", "v", STORE_PRECOND_NONE, 0);

	(void) state;
	stv_check(&lim, &w, STORE_EPRECONDITION_REQUIRED, "precondition");
	w = stt_delete("k", STORE_PRECOND_NONE, 0);
	stv_check(&lim, &w, STORE_EPRECONDITION_REQUIRED, "precondition");
	w.precond.kind = (store_precond_kind) 42;
	stv_check(&lim, &w, STORE_EINVAL, "precondition");
}

static void
test_delete_if_absent_is_invalid(void **state)
{
	store_limits lim = store_limits_default();
	store_write w = stt_delete("k", STORE_PRECOND_IF_ABSENT, 0);

	(void) state;
	stv_check(&lim, &w, STORE_EINVAL, "precondition");
	w.precond.kind = STORE_PRECOND_IF_EXISTS;
	stv_check(&lim, &w, STORE_OK, "");
}

static void
test_lock_owner_is_required_and_bounded(void **state)
{
	store_limits lim = store_limits_default();
	char *o = ds_test_str(STORE_MAX_OWNER_BYTES_DEFAULT + 1, 'o');
	store_write w = stt_lock("k", "", 0);

	(void) state;
	stv_check(&lim, &w, STORE_EINVAL, "owner");
	w.owner = o;
	w.owner_len = STORE_MAX_OWNER_BYTES_DEFAULT;
	stv_check(&lim, &w, STORE_OK, "");
	w.owner_len = STORE_MAX_OWNER_BYTES_DEFAULT + 1;
	stv_check(&lim, &w, STORE_ETOOLARGE, "owner");
	w.owner = "ann\x01";
	w.owner_len = 4;
	stv_check(&lim, &w, STORE_EINVAL, "owner");
	w.owner = "\xff";
	w.owner_len = 1;
	stv_check(&lim, &w, STORE_EINVAL, "owner");
	free(o);
}

static void
test_author_is_bounded_like_owner(void **state)
{
	store_limits lim = store_limits_default();
	char *a = ds_test_str(STORE_MAX_OWNER_BYTES_DEFAULT + 1, 'a');
	store_write w = stt_update("k", "v", STORE_PRECOND_UNCONDITIONAL, 0);

	(void) state;
	w.author = a;
	w.author_len = STORE_MAX_OWNER_BYTES_DEFAULT;
	stv_check(&lim, &w, STORE_OK, "");
	w.author_len = STORE_MAX_OWNER_BYTES_DEFAULT + 1;
	stv_check(&lim, &w, STORE_ETOOLARGE, "author");
	w.author = "a\nb";
	w.author_len = 3;
	stv_check(&lim, &w, STORE_EINVAL, "author");
	w = stt_with_author(stt_delete("k", STORE_PRECOND_IF_EXISTS, 0), "\t");
	stv_check(&lim, &w, STORE_EINVAL, "author");
	free(a);
}

static void
test_ttl_bounds_are_inclusive_and_name_the_bound(void **state)
{
	store_limits lim = store_limits_default();
	store_write w = stt_lock("k", "ann", STORE_LOCK_TTL_MIN_MS - 1);
	store_error err;

	(void) state;
	assert_int_equal(store_validate(&lim, &w, &err), STORE_EINVAL);
	assert_string_equal(err.field, "ttl_ms");
	assert_non_null(strstr(err.message, "lock_ttl_min_ms (1000)"));
	w.ttl_ms = STORE_LOCK_TTL_MIN_MS;
	stv_check(&lim, &w, STORE_OK, "");
	w.ttl_ms = STORE_LOCK_TTL_MAX_MS;
	stv_check(&lim, &w, STORE_OK, "");
	w.ttl_ms = STORE_LOCK_TTL_MAX_MS + 1;
	assert_int_equal(store_validate(&lim, &w, &err), STORE_EINVAL);
	assert_string_equal(err.field, "ttl_ms");
	assert_non_null(strstr(err.message, "lock_ttl_max_ms (3600000)"));
	w.ttl_ms = 0; /* the default */
	stv_check(&lim, &w, STORE_OK, "");
	w.ttl_ms = -5;
	stv_check(&lim, &w, STORE_EINVAL, "ttl_ms");
}

static void
test_request_id_is_bounded_printable_ascii(void **state)
{
	store_limits lim = store_limits_default();
	char *r = ds_test_str(STORE_MAX_REQUEST_ID_BYTES_DEFAULT + 1, 'r');
	store_write w = stt_update("k", "v", STORE_PRECOND_UNCONDITIONAL, 0);

	(void) state;
	w.request_id = r;
	w.request_id_len = STORE_MAX_REQUEST_ID_BYTES_DEFAULT;
	stv_check(&lim, &w, STORE_OK, "");
	w.request_id_len = STORE_MAX_REQUEST_ID_BYTES_DEFAULT + 1;
	stv_check(&lim, &w, STORE_ETOOLARGE, "request_id");
	w.request_id = "id with\ttab";
	w.request_id_len = strlen(w.request_id);
	stv_check(&lim, &w, STORE_EINVAL, "request_id");
	w.request_id = "";
	w.request_id_len = 0;
	stv_check(&lim, &w, STORE_OK, "");
	free(r);
}

static void
test_unlock_requires_a_token(void **state)
{
	store_limits lim = store_limits_default();
	store_token t;
	store_write w;

	(void) state;
	memset(&t, 0, sizeof(t));
	w = stt_unlock("k", &t);
	stv_check(&lim, &w, STORE_OK, "");
	w.has_token = false;
	stv_check(&lim, &w, STORE_EINVAL, "lock_token");
}

static void
test_unknown_op_is_invalid(void **state)
{
	store_limits lim = store_limits_default();
	store_write w = stt_update("k", "v", STORE_PRECOND_UNCONDITIONAL, 0);

	(void) state;
	w.op = (store_op) 0;
	stv_check(&lim, &w, STORE_EINVAL, "op");
	w.op = (store_op) 9;
	stv_check(&lim, &w, STORE_EINVAL, "op");
}

static void
test_validate_accepts_null_error(void **state)
{
	store_limits lim = store_limits_default();
	store_write w = stt_update("", "v", STORE_PRECOND_UNCONDITIONAL, 0);

	(void) state;
	assert_int_equal(store_validate(&lim, &w, NULL), STORE_EINVAL);
}

static void
test_token_parse_round_trips_and_rejects_malformed(void **state)
{
	store_token t;
	store_token u;
	char hex[STORE_TOKEN_HEX_LEN + 1];
	store_error err;

	(void) state;
	for (int i = 0; i < STORE_TOKEN_BYTES; i++) {
		t.b[i] = (uint8_t) (i * 17 + 3);
	}
	store_token_format(&t, hex);
	assert_int_equal(strlen(hex), STORE_TOKEN_HEX_LEN);
	assert_int_equal(store_token_parse(hex, strlen(hex), &u, &err),
	    STORE_OK);
	assert_memory_equal(t.b, u.b, STORE_TOKEN_BYTES);
	assert_int_equal(store_token_parse(hex, 31, &u, &err), STORE_EINVAL);
	assert_string_equal(err.field, "lock_token");
	hex[5] = 'g';
	assert_int_equal(store_token_parse(hex, 32, &u, &err), STORE_EINVAL);
	assert_int_equal(store_token_parse(NULL, 0, &u, &err), STORE_EINVAL);
	assert_int_equal(store_token_parse("", 0, &u, NULL), STORE_EINVAL);
}

/* stv_limit_refused asserts that store_limits_check and store_open both
 * refuse lim, naming field. */
static void
stv_limit_refused(const store_limits *lim, const char *field)
{
	store_config cfg;
	store *s = NULL;
	store_error err;

	assert_int_equal(store_limits_check(lim, &err), STORE_EINVAL);
	assert_string_equal(err.field, field);
	assert_non_null(strstr(err.message, field));
	store_config_default(&cfg);
	cfg.path = ":memory:";
	cfg.limits = *lim;
	memset(&err, 0, sizeof(err));
	assert_int_equal(store_open(&cfg, &s, &err), STORE_EINVAL);
	assert_null(s);
	assert_string_equal(err.field, field);
}

static void
test_open_rejects_limits_above_hard_maxima(void **state)
{
	store_limits d = store_limits_default();
	store_limits l;

	(void) state;
	assert_int_equal(store_limits_check(&d, NULL), STORE_OK);
#define STV_EDGE(f, hard)                                                     \
	do {                                                                  \
		l = d;                                                        \
		l.f = hard;                                                   \
		assert_int_equal(store_limits_check(&l, NULL), STORE_OK);     \
		l.f = (hard) + 1;                                             \
		stv_limit_refused(&l, #f);                                    \
	} while (0)
	STV_EDGE(max_key_bytes, STORE_MAX_KEY_BYTES_HARD);
	STV_EDGE(max_value_bytes, STORE_MAX_VALUE_BYTES_HARD);
	STV_EDGE(max_content_type_bytes, STORE_MAX_CONTENT_TYPE_BYTES_HARD);
	STV_EDGE(max_owner_bytes, STORE_MAX_OWNER_BYTES_HARD);
	STV_EDGE(max_request_id_bytes, STORE_MAX_REQUEST_ID_BYTES_HARD);
	STV_EDGE(max_page_size, STORE_MAX_PAGE_SIZE_HARD);
	STV_EDGE(history, STORE_HISTORY_HARD);
	STV_EDGE(lock_ttl_max_ms, STORE_LOCK_TTL_HARD_MAX_MS);
	STV_EDGE(busy_timeout_ms, STORE_BUSY_TIMEOUT_HARD_MS);
#undef STV_EDGE
}

static void
test_open_rejects_inconsistent_limits(void **state)
{
	store_limits d = store_limits_default();
	store_limits l;

	(void) state;
	l = d;
	l.lock_ttl_min_ms = l.lock_ttl_max_ms + 1;
	stv_limit_refused(&l, "lock_ttl_min_ms");
	l = d;
	l.lock_ttl_default_ms = l.lock_ttl_max_ms + 1;
	stv_limit_refused(&l, "lock_ttl_default_ms");
	l = d;
	l.lock_ttl_default_ms = l.lock_ttl_min_ms - 1;
	stv_limit_refused(&l, "lock_ttl_default_ms");
	l = d;
	l.default_page_size = l.max_page_size + 1;
	stv_limit_refused(&l, "default_page_size");
	l = d;
	l.max_key_bytes = 0;
	stv_limit_refused(&l, "max_key_bytes");
	l = d;
	l.request_id_ttl_ms = -1;
	stv_limit_refused(&l, "request_id_ttl_ms");
	l = d;
	l.lock_ttl_min_ms = 0;
	stv_limit_refused(&l, "lock_ttl_min_ms");
	l = d;
	l.busy_timeout_ms = -1;
	stv_limit_refused(&l, "busy_timeout_ms");
	l.busy_timeout_ms = 0; /* allowed: give up at the first refusal */
	assert_int_equal(store_limits_check(&l, NULL), STORE_OK);
}

static void
test_open_rejects_bad_config(void **state)
{
	store_config cfg;
	store *s = NULL;
	store_error err;

	(void) state;
	store_config_default(&cfg);
	assert_string_equal(cfg.path, "./datasync.db");
	assert_int_equal(cfg.durability, STORE_DURABILITY_FULL);
	cfg.path = "";
	assert_int_equal(store_open(&cfg, &s, &err), STORE_EINVAL);
	assert_string_equal(err.field, "path");
	cfg.path = ":memory:";
	cfg.durability = (store_durability) 7;
	assert_int_equal(store_open(&cfg, &s, &err), STORE_EINVAL);
	assert_string_equal(err.field, "durability");
	assert_null(s);
	store_close(NULL); /* no-op */
	store_conn_close(NULL);
	store_record_fini(NULL);
	store_write_result_fini(NULL);
	store_list_page_fini(NULL);
}

static void
test_limits_in_force_are_the_configured_ones(void **state)
{
	store_limits l = store_limits_default();
	stt_fx *fx;

	(void) state;
	l.max_key_bytes = 8;
	l.history = 0;
	fx = stt_fx_new(&l, false);
	assert_int_equal(store_limits_of(fx->s)->max_key_bytes, 8);
	assert_int_equal(store_limits_of(fx->s)->history, 0);
	/* The configured limit, not the default, applies to writes. */
	assert_int_equal(stt_apply0(fx->c,
	                     stt_update("123456789", "v",
	                         STORE_PRECOND_UNCONDITIONAL, 0)),
	    STORE_ETOOLARGE);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_update("12345678", "v",
	                         STORE_PRECOND_UNCONDITIONAL, 0)),
	    STORE_OK);
	stt_fx_free(fx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_strerror_and_reason_name_every_code),
	    cmocka_unit_test(test_key_empty_is_invalid),
	    cmocka_unit_test(test_key_at_max_passes_and_one_more_is_too_large),
	    cmocka_unit_test(test_key_invalid_utf8_or_control_is_invalid),
	    cmocka_unit_test(test_value_at_max_passes_and_one_more_is_too_large),
	    cmocka_unit_test(test_content_type_limit_and_printable_ascii),
	    cmocka_unit_test(test_missing_precondition_is_precondition_required),
	    cmocka_unit_test(test_delete_if_absent_is_invalid),
	    cmocka_unit_test(test_lock_owner_is_required_and_bounded),
	    cmocka_unit_test(test_author_is_bounded_like_owner),
	    cmocka_unit_test(test_ttl_bounds_are_inclusive_and_name_the_bound),
	    cmocka_unit_test(test_request_id_is_bounded_printable_ascii),
	    cmocka_unit_test(test_unlock_requires_a_token),
	    cmocka_unit_test(test_unknown_op_is_invalid),
	    cmocka_unit_test(test_validate_accepts_null_error),
	    cmocka_unit_test(test_token_parse_round_trips_and_rejects_malformed),
	    cmocka_unit_test(test_open_rejects_limits_above_hard_maxima),
	    cmocka_unit_test(test_open_rejects_inconsistent_limits),
	    cmocka_unit_test(test_open_rejects_bad_config),
	    cmocka_unit_test(test_limits_in_force_are_the_configured_ones),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
