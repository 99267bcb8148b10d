/*
 * store_lock_test.c - leased locks with fencing tokens, and how writes
 * meet them (DESIGN §4 rules 3-5). Time moves by the fake clock only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "store_test_util.h"

/* slk_lock locks key for owner with ttl and returns the result (caller
 * finishes it), asserting success. */
static store_write_result
slk_lock(store_conn *c, const char *key, const char *owner, int64_t ttl)
{
	store_write_result r;

	assert_int_equal(stt_apply(c, stt_lock(key, owner, ttl), &r),
	    STORE_OK);
	return r;
}

static void
test_lock_returns_a_token_and_get_shows_the_lock_not_the_token(void **state)
{
	stt_fx *fx = *state;
	store_write_result r;
	store_record rec;
	store_token zero;

	(void) stt_put(fx->c, "doc", "v1");
	r = slk_lock(fx->c, "doc", "ann", 10000);
	memset(&zero, 0, sizeof(zero));
	assert_memory_not_equal(r.token.b, zero.b, STORE_TOKEN_BYTES);
	assert_false(r.renewed);
	assert_true(r.record.locked);
	assert_string_equal(r.record.lock.owner, "ann");
	assert_true(r.record.lock.expires_at_ms == STT_T0 + 10000);
	assert_int_equal(r.record.lock.fencing_token, 1);
	assert_int_equal(r.record.version, 1);
	store_write_result_fini(&r);

	memset(&rec, 0, sizeof(rec));
	assert_int_equal(store_get(fx->c, "doc", 3, 0, &rec, NULL), STORE_OK);
	assert_true(rec.locked);
	assert_string_equal(rec.lock.owner, "ann");
	assert_true(rec.lock.expires_at_ms == STT_T0 + 10000);
	assert_int_equal(rec.lock.fencing_token, 1);
	store_record_fini(&rec);
}

static void
test_lock_held_by_another_returns_locked_with_owner_and_expiry(void **state)
{
	stt_fx *fx = *state;
	store_write_result r;

	(void) stt_put(fx->c, "doc", "v1");
	r = slk_lock(fx->c, "doc", "ann", 10000);
	store_write_result_fini(&r);
	assert_int_equal(stt_apply(fx->c, stt_lock("doc", "bob", 10000), &r),
	    STORE_ELOCKED);
	assert_string_equal(store_reason(r.error.code), "LOCKED");
	assert_true(r.record.locked);
	assert_string_equal(r.record.lock.owner, "ann");
	assert_true(r.record.lock.expires_at_ms == STT_T0 + 10000);
	assert_int_equal(r.record.lock.fencing_token, 1);
	assert_null(r.record.value);
	store_write_result_fini(&r);
	/* The same owner name without the token is somebody else too. */
	assert_int_equal(stt_apply0(fx->c, stt_lock("doc", "ann", 10000)),
	    STORE_ELOCKED);
}

static void
test_renew_extends_the_lease_and_keeps_the_fencing_token(void **state)
{
	stt_fx *fx = *state;
	store_write_result a;
	store_write_result r;

	(void) stt_put(fx->c, "doc", "v1");
	a = slk_lock(fx->c, "doc", "ann", 10000);
	ds_fake_clock_advance(&fx->clock, 9000);
	assert_int_equal(stt_apply(fx->c,
	                     stt_with_token(stt_lock("doc", "ann", 20000),
	                         &a.token),
	                     &r),
	    STORE_OK);
	assert_true(r.renewed);
	assert_memory_equal(r.token.b, a.token.b, STORE_TOKEN_BYTES);
	assert_int_equal(r.record.lock.fencing_token,
	    a.record.lock.fencing_token);
	assert_true(r.record.lock.expires_at_ms == STT_T0 + 9000 + 20000);
	store_write_result_fini(&r);
	/* Alive past the first expiry. */
	ds_fake_clock_advance(&fx->clock, 5000);
	assert_int_equal(stt_apply0(fx->c, stt_lock("doc", "bob", 0)),
	    STORE_ELOCKED);
	store_write_result_fini(&a);
}

static void
test_lease_expires_when_the_clock_passes_it(void **state)
{
	stt_fx *fx = *state;
	store_write_result r;
	store_record rec;

	(void) stt_put(fx->c, "doc", "v1");
	r = slk_lock(fx->c, "doc", "ann", 1000);
	store_write_result_fini(&r);
	ds_fake_clock_advance(&fx->clock, 999);
	assert_int_equal(stt_apply0(fx->c, stt_lock("doc", "bob", 1000)),
	    STORE_ELOCKED);
	ds_fake_clock_advance(&fx->clock, 1); /* now == expires_at */
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(store_get(fx->c, "doc", 3, 0, &rec, NULL), STORE_OK);
	assert_false(rec.locked);
	assert_null(rec.lock.owner);
	store_record_fini(&rec);
	/* An expired lease is no lock: writes without a token pass. */
	assert_int_equal(stt_apply0(fx->c,
	                     stt_update("doc", "v2", STORE_PRECOND_IF_VERSION,
	                         1)),
	    STORE_OK);
	r = slk_lock(fx->c, "doc", "bob", 1000);
	assert_string_equal(r.record.lock.owner, "bob");
	store_write_result_fini(&r);
}

static void
test_fencing_token_grows_on_every_acquisition_not_on_renew(void **state)
{
	stt_fx *fx = *state;
	store_write_result a;
	store_write_result r;

	a = slk_lock(fx->c, "a", "ann", 1000);
	assert_int_equal(a.record.lock.fencing_token, 1);
	r = slk_lock(fx->c, "b", "bob", 1000); /* store-wide counter */
	assert_int_equal(r.record.lock.fencing_token, 2);
	store_write_result_fini(&r);
	assert_int_equal(stt_apply(fx->c,
	                     stt_with_token(stt_lock("a", "ann", 1000),
	                         &a.token),
	                     &r),
	    STORE_OK);
	assert_int_equal(r.record.lock.fencing_token, 1);
	store_write_result_fini(&r);
	assert_int_equal(stt_apply0(fx->c, stt_unlock("a", &a.token)),
	    STORE_OK);
	r = slk_lock(fx->c, "a", "ann", 1000);
	assert_int_equal(r.record.lock.fencing_token, 3);
	store_write_result_fini(&r);
	ds_fake_clock_advance(&fx->clock, 1000);
	r = slk_lock(fx->c, "a", "carl", 1000); /* after expiry */
	assert_int_equal(r.record.lock.fencing_token, 4);
	store_write_result_fini(&r);
	store_write_result_fini(&a);
}

static void
test_write_without_token_on_locked_record_returns_locked(void **state)
{
	stt_fx *fx = *state;
	store_write_result a;
	store_write_result r;

	(void) stt_put(fx->c, "doc", "v1");
	a = slk_lock(fx->c, "doc", "ann", 10000);
	assert_int_equal(stt_apply(fx->c,
	                     stt_update("doc", "x", STORE_PRECOND_IF_VERSION,
	                         1),
	                     &r),
	    STORE_ELOCKED);
	assert_true(r.record.locked);
	assert_string_equal(r.record.lock.owner, "ann");
	assert_true(r.record.lock.expires_at_ms == STT_T0 + 10000);
	assert_int_equal(r.record.lock.fencing_token, 1);
	assert_int_equal(r.record.version, 1);
	store_write_result_fini(&r);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_delete("doc", STORE_PRECOND_UNCONDITIONAL,
	                         0)),
	    STORE_ELOCKED);
	/* A wrong token is no better than none. */
	a.token.b[0] ^= 0xff;
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_token(stt_update("doc", "x",
	                                        STORE_PRECOND_UNCONDITIONAL,
	                                        0),
	                         &a.token)),
	    STORE_ELOCKED);
	assert_int_equal(stt_version(fx->c, "doc"), 1);
	store_write_result_fini(&a);
}

static void
test_lock_is_checked_before_the_precondition(void **state)
{
	stt_fx *fx = *state;
	store_write_result a;

	(void) stt_put(fx->c, "doc", "v1");
	a = slk_lock(fx->c, "doc", "ann", 10000);
	/* Stale version and no token: LOCKED, not VERSION_CONFLICT. */
	assert_int_equal(stt_apply0(fx->c,
	                     stt_update("doc", "x", STORE_PRECOND_IF_VERSION,
	                         7)),
	    STORE_ELOCKED);
	/* The right token: now the precondition decides. */
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_token(stt_update("doc", "x",
	                                        STORE_PRECOND_IF_VERSION, 7),
	                         &a.token)),
	    STORE_ECONFLICT);
	store_write_result_fini(&a);
}

static void
test_write_with_the_right_token_succeeds_and_keeps_the_lock(void **state)
{
	stt_fx *fx = *state;
	store_write_result a;
	store_write_result r;
	store_record rec;

	(void) stt_put(fx->c, "doc", "v1");
	a = slk_lock(fx->c, "doc", "ann", 10000);
	assert_int_equal(stt_apply(fx->c,
	                     stt_with_token(stt_update("doc", "v2",
	                                        STORE_PRECOND_IF_VERSION, 1),
	                         &a.token),
	                     &r),
	    STORE_OK);
	assert_int_equal(r.record.version, 2);
	assert_true(r.record.locked);
	assert_string_equal(r.record.lock.owner, "ann");
	store_write_result_fini(&r);
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(store_get(fx->c, "doc", 3, 0, &rec, NULL), STORE_OK);
	assert_true(rec.locked);
	store_record_fini(&rec);
	/* Still locked against others. */
	assert_int_equal(stt_apply0(fx->c,
	                     stt_update("doc", "x", STORE_PRECOND_IF_VERSION,
	                         2)),
	    STORE_ELOCKED);
	store_write_result_fini(&a);
}

static void
test_write_with_an_expired_token_is_refused_even_if_nobody_relocked(
    void **state)
{
	stt_fx *fx = *state;
	store_write_result a;
	store_write_result r;

	(void) stt_put(fx->c, "doc", "v1");
	a = slk_lock(fx->c, "doc", "ann", 1000);
	ds_fake_clock_advance(&fx->clock, 1500); /* ann was paused */
	assert_int_equal(stt_apply(fx->c,
	                     stt_with_token(stt_update("doc", "late",
	                                        STORE_PRECOND_IF_VERSION, 1),
	                         &a.token),
	                     &r),
	    STORE_ELOCK_EXPIRED);
	assert_string_equal(store_reason(r.error.code), "LOCK_EXPIRED");
	assert_null(r.record.key);
	store_write_result_fini(&r);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_token(stt_delete("doc",
	                                        STORE_PRECOND_IF_EXISTS, 0),
	                         &a.token)),
	    STORE_ELOCK_EXPIRED);
	/* Renewing is too late as well. */
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_token(stt_lock("doc", "ann", 1000),
	                         &a.token)),
	    STORE_ELOCK_EXPIRED);
	assert_int_equal(stt_version(fx->c, "doc"), 1);
	store_write_result_fini(&a);
}

static void
test_write_with_an_old_token_after_relock_returns_locked(void **state)
{
	stt_fx *fx = *state;
	store_write_result a;
	store_write_result b;

	(void) stt_put(fx->c, "doc", "v1");
	a = slk_lock(fx->c, "doc", "ann", 1000);
	ds_fake_clock_advance(&fx->clock, 1000);
	b = slk_lock(fx->c, "doc", "bob", 1000);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_token(stt_update("doc", "late",
	                                        STORE_PRECOND_IF_VERSION, 1),
	                         &a.token)),
	    STORE_ELOCKED);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_token(stt_update("doc", "bob's",
	                                        STORE_PRECOND_IF_VERSION, 1),
	                         &b.token)),
	    STORE_OK);
	store_write_result_fini(&a);
	store_write_result_fini(&b);
}

static void
test_write_with_a_token_on_an_unlocked_record_returns_not_locked(
    void **state)
{
	stt_fx *fx = *state;
	store_token t;

	(void) stt_put(fx->c, "doc", "v1");
	memset(&t, 0x42, sizeof(t));
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_token(stt_update("doc", "x",
	                                        STORE_PRECOND_IF_VERSION, 1),
	                         &t)),
	    STORE_ENOT_LOCKED);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_token(stt_lock("doc", "ann", 0), &t)),
	    STORE_ENOT_LOCKED);
	assert_int_equal(stt_version(fx->c, "doc"), 1);
}

static void
test_unlock_with_the_wrong_token_returns_token_mismatch(void **state)
{
	stt_fx *fx = *state;
	store_write_result a;
	store_write_result r;
	store_token t;

	(void) stt_put(fx->c, "doc", "v1");
	a = slk_lock(fx->c, "doc", "ann", 10000);
	memset(&t, 0x42, sizeof(t));
	assert_int_equal(stt_apply(fx->c, stt_unlock("doc", &t), &r),
	    STORE_ETOKEN_MISMATCH);
	assert_string_equal(store_reason(r.error.code),
	    "LOCK_TOKEN_MISMATCH");
	store_write_result_fini(&r);
	assert_int_equal(stt_apply0(fx->c, stt_lock("doc", "bob", 0)),
	    STORE_ELOCKED);
	store_write_result_fini(&a);
}

static void
test_unlock_when_nothing_is_held_returns_not_locked(void **state)
{
	stt_fx *fx = *state;
	store_write_result a;
	store_write_result r;
	store_token t;

	memset(&t, 0x42, sizeof(t));
	assert_int_equal(stt_apply(fx->c, stt_unlock("nokey", &t), &r),
	    STORE_ENOT_LOCKED);
	assert_string_equal(store_reason(r.error.code), "NOT_LOCKED");
	store_write_result_fini(&r);
	(void) stt_put(fx->c, "doc", "v1");
	assert_int_equal(stt_apply0(fx->c, stt_unlock("doc", &t)),
	    STORE_ENOT_LOCKED);
	/* An expired lease holds nothing either. */
	a = slk_lock(fx->c, "doc", "ann", 1000);
	ds_fake_clock_advance(&fx->clock, 2000);
	assert_int_equal(stt_apply0(fx->c, stt_unlock("doc", &a.token)),
	    STORE_ENOT_LOCKED);
	store_write_result_fini(&a);
}

static void
test_unlock_releases_and_a_released_token_is_not_locked(void **state)
{
	stt_fx *fx = *state;
	store_write_result a;
	store_write_result r;

	(void) stt_put(fx->c, "doc", "v1");
	a = slk_lock(fx->c, "doc", "ann", 10000);
	assert_int_equal(stt_apply(fx->c, stt_unlock("doc", &a.token), &r),
	    STORE_OK);
	assert_false(r.record.locked);
	assert_int_equal(r.record.version, 1);
	store_write_result_fini(&r);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_token(stt_update("doc", "x",
	                                        STORE_PRECOND_IF_VERSION, 1),
	                         &a.token)),
	    STORE_ENOT_LOCKED);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_update("doc", "x", STORE_PRECOND_IF_VERSION,
	                         1)),
	    STORE_OK);
	r = slk_lock(fx->c, "doc", "bob", 0);
	store_write_result_fini(&r);
	store_write_result_fini(&a);
}

/* A lock change is a change (DESIGN §9): it takes the next revision,
 * which becomes the record's, but never a version. */
static void
test_lock_changes_the_revision_not_the_version(void **state)
{
	stt_fx *fx = *state;
	store_write_result a;
	store_write_result r;
	store_record rec;

	(void) stt_put(fx->c, "doc", "v1");
	a = slk_lock(fx->c, "doc", "ann", 10000);
	assert_int_equal(a.record.version, 1);
	assert_int_equal(a.record.revision, 2);
	assert_int_equal(stt_apply(fx->c,
	                     stt_with_token(stt_lock("doc", "ann", 10000),
	                         &a.token),
	                     &r),
	    STORE_OK);
	assert_true(r.renewed);
	assert_int_equal(r.record.revision, 3);
	store_write_result_fini(&r);
	assert_int_equal(stt_apply(fx->c, stt_unlock("doc", &a.token), &r),
	    STORE_OK);
	assert_int_equal(r.record.revision, 4);
	store_write_result_fini(&r);
	assert_int_equal(stt_revision(fx->c), 4);
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(store_get(fx->c, "doc", 3, 0, &rec, NULL), STORE_OK);
	assert_int_equal(rec.version, 1);
	assert_int_equal(rec.revision, 4);
	store_record_fini(&rec);
	/* The version's own revision is still its write's. */
	(void) stt_put(fx->c, "doc", "v2");
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(store_get(fx->c, "doc", 3, 1, &rec, NULL), STORE_OK);
	assert_int_equal(rec.revision, 1);
	store_record_fini(&rec);
	store_write_result_fini(&a);
}

static void
test_an_absent_key_can_be_locked_then_created_by_the_holder(void **state)
{
	stt_fx *fx = *state;
	store_write_result a;
	store_write_result r;
	store_record rec;
	store_list_req req;
	store_list_page page;

	a = slk_lock(fx->c, "new", "ann", 10000);
	assert_int_equal(a.record.version, 0);
	assert_false(a.record.deleted);
	assert_true(a.record.locked);
	/* Not a record: Get and List do not show it. */
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(store_get(fx->c, "new", 3, 0, &rec, NULL),
	    STORE_ENOTFOUND);
	memset(&req, 0, sizeof(req));
	memset(&page, 0, sizeof(page));
	assert_int_equal(store_list(fx->c, &req, &page, NULL), STORE_OK);
	assert_int_equal(page.n, 0);
	store_list_page_fini(&page);
	/* Others can neither create nor lock it. */
	assert_int_equal(stt_apply(fx->c,
	                     stt_update("new", "x", STORE_PRECOND_IF_ABSENT,
	                         0),
	                     &r),
	    STORE_ELOCKED);
	assert_int_equal(r.record.version, 0);
	assert_string_equal(r.record.lock.owner, "ann");
	store_write_result_fini(&r);
	assert_int_equal(stt_apply0(fx->c, stt_lock("new", "bob", 0)),
	    STORE_ELOCKED);
	assert_int_equal(stt_apply(fx->c,
	                     stt_with_token(stt_update("new", "mine",
	                                        STORE_PRECOND_IF_ABSENT, 0),
	                         &a.token),
	                     &r),
	    STORE_OK);
	assert_int_equal(r.record.version, 1);
	assert_true(r.record.locked);
	store_write_result_fini(&r);
	assert_int_equal(stt_revision(fx->c), 2); /* the lock, the create */
	store_write_result_fini(&a);
}

static void
test_unlocking_an_absent_key_leaves_no_trace(void **state)
{
	stt_fx *fx = *state;
	store_write_result a;

	a = slk_lock(fx->c, "new", "ann", 10000);
	assert_int_equal(stt_apply0(fx->c, stt_unlock("new", &a.token)),
	    STORE_OK);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_update("new", "x", STORE_PRECOND_IF_ABSENT,
	                         0)),
	    STORE_OK);
	assert_int_equal(stt_version(fx->c, "new"), 1);
	store_write_result_fini(&a);
}

static void
test_delete_keeps_the_lock_on_the_tombstone(void **state)
{
	stt_fx *fx = *state;
	store_write_result a;
	store_write_result r;

	(void) stt_put(fx->c, "doc", "v1");
	a = slk_lock(fx->c, "doc", "ann", 10000);
	assert_int_equal(stt_apply(fx->c,
	                     stt_with_token(stt_delete("doc",
	                                        STORE_PRECOND_IF_VERSION, 1),
	                         &a.token),
	                     &r),
	    STORE_OK);
	assert_true(r.record.deleted);
	assert_true(r.record.locked);
	store_write_result_fini(&r);
	/* Nobody else may re-create it while ann holds the lease. */
	assert_int_equal(stt_apply0(fx->c,
	                     stt_update("doc", "x", STORE_PRECOND_IF_ABSENT,
	                         0)),
	    STORE_ELOCKED);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_token(stt_update("doc", "back",
	                                        STORE_PRECOND_IF_ABSENT, 0),
	                         &a.token)),
	    STORE_OK);
	assert_int_equal(stt_version(fx->c, "doc"), 3);
	assert_int_equal(stt_apply0(fx->c, stt_unlock("doc", &a.token)),
	    STORE_OK);
	store_write_result_fini(&a);
}

static void
test_reads_are_not_blocked_by_locks(void **state)
{
	stt_fx *fx = *state;
	store_write_result a;
	store_conn *other;
	store_record rec;
	store_list_req req;
	store_list_page page;

	(void) stt_put(fx->c, "doc", "v1");
	(void) stt_put(fx->c, "doc", "v2");
	a = slk_lock(fx->c, "doc", "ann", 10000);
	assert_int_equal(store_conn_open(fx->s, &other, NULL), STORE_OK);
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(store_get(other, "doc", 3, 0, &rec, NULL), STORE_OK);
	stt_assert_value(&rec, "v2");
	assert_true(rec.locked);
	store_record_fini(&rec);
	assert_int_equal(store_get(other, "doc", 3, 1, &rec, NULL), STORE_OK);
	stt_assert_value(&rec, "v1");
	store_record_fini(&rec);
	memset(&req, 0, sizeof(req));
	memset(&page, 0, sizeof(page));
	assert_int_equal(store_list(other, &req, &page, NULL), STORE_OK);
	assert_int_equal(page.n, 1);
	assert_true(page.records[0].locked);
	assert_string_equal(page.records[0].lock.owner, "ann");
	store_list_page_fini(&page);
	store_conn_close(other);
	store_write_result_fini(&a);
}

static void
test_ttl_zero_is_the_default_and_bounds_are_enforced(void **state)
{
	stt_fx *fx = *state;
	store_write_result r;

	r = slk_lock(fx->c, "a", "ann", 0);
	assert_true(r.record.lock.expires_at_ms ==
	    STT_T0 + STORE_LOCK_TTL_DEFAULT_MS);
	store_write_result_fini(&r);
	assert_int_equal(stt_apply(fx->c,
	                     stt_lock("b", "ann", STORE_LOCK_TTL_MIN_MS - 1),
	                     &r),
	    STORE_EINVAL);
	assert_string_equal(r.error.field, "ttl_ms");
	store_write_result_fini(&r);
	r = slk_lock(fx->c, "b", "ann", STORE_LOCK_TTL_MIN_MS);
	assert_true(r.record.lock.expires_at_ms ==
	    STT_T0 + STORE_LOCK_TTL_MIN_MS);
	store_write_result_fini(&r);
	r = slk_lock(fx->c, "c", "ann", STORE_LOCK_TTL_MAX_MS);
	store_write_result_fini(&r);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_lock("d", "ann", STORE_LOCK_TTL_MAX_MS + 1)),
	    STORE_EINVAL);
}

static void
test_tokens_differ_between_acquisitions(void **state)
{
	stt_fx *fx = *state;
	store_write_result a;
	store_write_result b;

	a = slk_lock(fx->c, "a", "ann", 0);
	b = slk_lock(fx->c, "b", "ann", 0);
	assert_memory_not_equal(a.token.b, b.token.b, STORE_TOKEN_BYTES);
	/* A token is bound to its key. */
	assert_int_equal(stt_apply0(fx->c, stt_unlock("b", &a.token)),
	    STORE_ETOKEN_MISMATCH);
	store_write_result_fini(&a);
	store_write_result_fini(&b);
}

#define T(f) cmocka_unit_test_setup_teardown(f, stt_setup_mem, stt_teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_lock_returns_a_token_and_get_shows_the_lock_not_the_token),
	    T(test_lock_held_by_another_returns_locked_with_owner_and_expiry),
	    T(test_renew_extends_the_lease_and_keeps_the_fencing_token),
	    T(test_lease_expires_when_the_clock_passes_it),
	    T(test_fencing_token_grows_on_every_acquisition_not_on_renew),
	    T(test_write_without_token_on_locked_record_returns_locked),
	    T(test_lock_is_checked_before_the_precondition),
	    T(test_write_with_the_right_token_succeeds_and_keeps_the_lock),
	    T(test_write_with_an_expired_token_is_refused_even_if_nobody_relocked),
	    T(test_write_with_an_old_token_after_relock_returns_locked),
	    T(test_write_with_a_token_on_an_unlocked_record_returns_not_locked),
	    T(test_unlock_with_the_wrong_token_returns_token_mismatch),
	    T(test_unlock_when_nothing_is_held_returns_not_locked),
	    T(test_unlock_releases_and_a_released_token_is_not_locked),
	    T(test_lock_changes_the_revision_not_the_version),
	    T(test_an_absent_key_can_be_locked_then_created_by_the_holder),
	    T(test_unlocking_an_absent_key_leaves_no_trace),
	    T(test_delete_keeps_the_lock_on_the_tombstone),
	    T(test_reads_are_not_blocked_by_locks),
	    T(test_ttl_zero_is_the_default_and_bounds_are_enforced),
	    T(test_tokens_differ_between_acquisitions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
