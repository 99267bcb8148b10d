/*
 * store_request_id_test.c - retries are safe (DESIGN §4 rule 6): a write
 * retried with its request_id after it was applied returns the original
 * result and applies nothing; the same id with another request is
 * refused; failed writes are not remembered; ids expire.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store_test_util.h"

static void
test_replay_after_success_returns_the_original_result(void **state)
{
	stt_fx *fx = *state;
	store_write w = stt_with_author(
	    stt_with_rid(stt_update("doc", "v1", STORE_PRECOND_IF_ABSENT, 0),
	        "req-1"),
	    "ann");
	store_write_result a;
	store_write_result b;

	assert_int_equal(stt_apply(fx->c, w, &a), STORE_OK);
	assert_false(a.replayed);
	ds_fake_clock_advance(&fx->clock, 50);
	/* The reply was lost; the client (or nng's REQ) sends it again.
	 * Without the id this would be a VERSION_CONFLICT. */
	assert_int_equal(stt_apply(fx->c, w, &b), STORE_OK);
	assert_true(b.replayed);
	assert_int_equal(b.record.version, a.record.version);
	assert_int_equal(b.record.revision, a.record.revision);
	assert_true(b.record.created_at_ms == a.record.created_at_ms);
	assert_true(b.record.updated_at_ms == a.record.updated_at_ms);
	assert_string_equal(b.record.key, "doc");
	assert_string_equal(b.record.content_type, "text/plain");
	assert_string_equal(b.record.updated_by, "ann");
	stt_assert_value(&b.record, "v1");
	/* Nothing was applied twice. */
	assert_int_equal(stt_revision(fx->c), 1);
	assert_int_equal(stt_version(fx->c, "doc"), 1);
	store_write_result_fini(&a);
	store_write_result_fini(&b);
}

static void
test_replay_returns_the_original_even_after_later_writes(void **state)
{
	stt_fx *fx = *state;
	store_write w = stt_with_rid(
	    stt_update("doc", "mine", STORE_PRECOND_IF_VERSION, 1), "req-2");
	store_write_result r;

	(void) stt_put(fx->c, "doc", "v1");
	assert_int_equal(stt_apply0(fx->c, w), STORE_OK);
	(void) stt_put(fx->c, "doc", "someone else");
	assert_int_equal(stt_apply(fx->c, w, &r), STORE_OK);
	assert_true(r.replayed);
	assert_int_equal(r.record.version, 2);
	assert_int_equal(r.record.revision, 2);
	store_write_result_fini(&r);
	assert_int_equal(stt_version(fx->c, "doc"), 3);
	assert_int_equal(stt_revision(fx->c), 3);
}

static void
test_same_request_id_for_another_request_is_refused(void **state)
{
	stt_fx *fx = *state;
	store_write w = stt_with_rid(
	    stt_update("doc", "v1", STORE_PRECOND_UNCONDITIONAL, 0), "req-3");
	store_write_result r;

	assert_int_equal(stt_apply0(fx->c, w), STORE_OK);
	/* Another value. */
	assert_int_equal(stt_apply(fx->c,
	                     stt_with_rid(stt_update("doc", "v2",
	                                      STORE_PRECOND_UNCONDITIONAL, 0),
	                         "req-3"),
	                     &r),
	    STORE_EREQUEST_ID_REUSED);
	assert_string_equal(r.error.field, "request_id");
	assert_string_equal(store_reason(r.error.code), "REQUEST_ID_REUSED");
	assert_null(r.record.key);
	store_write_result_fini(&r);
	/* Another key, another op, another precondition, an author. */
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_rid(stt_update("doc2", "v1",
	                                      STORE_PRECOND_UNCONDITIONAL, 0),
	                         "req-3")),
	    STORE_EREQUEST_ID_REUSED);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_rid(stt_delete("doc",
	                                      STORE_PRECOND_UNCONDITIONAL, 0),
	                         "req-3")),
	    STORE_EREQUEST_ID_REUSED);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_rid(stt_update("doc", "v1",
	                                      STORE_PRECOND_IF_EXISTS, 0),
	                         "req-3")),
	    STORE_EREQUEST_ID_REUSED);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_author(stt_with_rid(w, "req-3"), "x")),
	    STORE_EREQUEST_ID_REUSED);
	assert_int_equal(stt_revision(fx->c), 1);
}

static void
test_failed_writes_are_not_remembered(void **state)
{
	stt_fx *fx = *state;
	store_write w = stt_with_rid(
	    stt_update("doc", "v2", STORE_PRECOND_IF_VERSION, 1), "req-4");
	store_write_result r;

	/* Fails: the key does not exist yet. */
	assert_int_equal(stt_apply0(fx->c, w), STORE_ECONFLICT);
	(void) stt_put(fx->c, "doc", "v1");
	/* The same request now applies: the failure changed nothing. */
	assert_int_equal(stt_apply(fx->c, w, &r), STORE_OK);
	assert_false(r.replayed);
	assert_int_equal(r.record.version, 2);
	store_write_result_fini(&r);
	/* A different request may also reuse an id whose write failed. */
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_rid(stt_update("x", "y",
	                                      STORE_PRECOND_IF_VERSION, 5),
	                         "req-5")),
	    STORE_ECONFLICT);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_rid(stt_update("x", "y",
	                                      STORE_PRECOND_IF_ABSENT, 0),
	                         "req-5")),
	    STORE_OK);
}

static void
test_lock_replay_returns_the_same_token(void **state)
{
	stt_fx *fx = *state;
	store_write w = stt_with_rid(stt_lock("doc", "ann", 5000), "lock-1");
	store_write_result a;
	store_write_result b;

	(void) stt_put(fx->c, "doc", "v1");
	assert_int_equal(stt_apply(fx->c, w, &a), STORE_OK);
	assert_int_equal(stt_apply(fx->c, w, &b), STORE_OK);
	assert_true(b.replayed);
	assert_memory_equal(a.token.b, b.token.b, STORE_TOKEN_BYTES);
	assert_int_equal(b.record.lock.fencing_token,
	    a.record.lock.fencing_token);
	assert_true(b.record.lock.expires_at_ms == a.record.lock.expires_at_ms);
	assert_string_equal(b.record.lock.owner, "ann");
	assert_true(b.record.locked);
	/* A second Lock without the id is refused: the first one holds. */
	assert_int_equal(stt_apply0(fx->c, stt_lock("doc", "ann", 5000)),
	    STORE_ELOCKED);
	/* ttl 0 and the default ttl are the same request. */
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_rid(stt_lock("k2", "ann", 0), "lock-2")),
	    STORE_OK);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_rid(stt_lock("k2", "ann",
	                                      STORE_LOCK_TTL_DEFAULT_MS),
	                         "lock-2")),
	    STORE_OK);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_rid(stt_lock("k2", "ann", 2000),
	                         "lock-2")),
	    STORE_EREQUEST_ID_REUSED);
	store_write_result_fini(&a);
	store_write_result_fini(&b);
}

static void
test_delete_and_unlock_replay(void **state)
{
	stt_fx *fx = *state;
	store_write_result l;
	store_write_result r;
	store_write d;
	store_write u;

	(void) stt_put(fx->c, "doc", "v1");
	assert_int_equal(stt_apply(fx->c, stt_lock("doc", "ann", 5000), &l),
	    STORE_OK);
	d = stt_with_rid(stt_with_token(stt_delete("doc",
	                                    STORE_PRECOND_IF_VERSION, 1),
	                     &l.token),
	    "del-1");
	assert_int_equal(stt_apply0(fx->c, d), STORE_OK);
	assert_int_equal(stt_apply(fx->c, d, &r), STORE_OK);
	assert_true(r.replayed);
	assert_true(r.record.deleted);
	assert_int_equal(r.record.version, 2);
	store_write_result_fini(&r);
	u = stt_with_rid(stt_unlock("doc", &l.token), "unl-1");
	assert_int_equal(stt_apply0(fx->c, u), STORE_OK);
	assert_int_equal(stt_apply(fx->c, u, &r), STORE_OK);
	assert_true(r.replayed);
	assert_false(r.record.locked);
	store_write_result_fini(&r);
	/* Put, lock, delete, unlock: each once, the replays not at all. */
	assert_int_equal(stt_revision(fx->c), 4);
	store_write_result_fini(&l);
}

static void
test_request_ids_expire_after_their_ttl(void **state)
{
	store_limits lim = store_limits_default();
	store_write w = stt_with_rid(
	    stt_update("doc", "v", STORE_PRECOND_UNCONDITIONAL, 0), "old");
	store_write_result r;
	stt_fx *fx;

	(void) state;
	lim.request_id_ttl_ms = 60000;
	fx = stt_fx_new(&lim, false);
	assert_int_equal(stt_apply0(fx->c, w), STORE_OK);
	ds_fake_clock_advance(&fx->clock, 59999);
	assert_int_equal(stt_apply(fx->c, w, &r), STORE_OK);
	assert_true(r.replayed);
	store_write_result_fini(&r);
	ds_fake_clock_advance(&fx->clock, 1);
	/* Forgotten: the same id applies afresh, even to another write. */
	assert_int_equal(stt_apply(fx->c, w, &r), STORE_OK);
	assert_false(r.replayed);
	assert_int_equal(r.record.version, 2);
	store_write_result_fini(&r);
	assert_int_equal(stt_apply(fx->c, w, &r), STORE_OK);
	assert_true(r.replayed);
	assert_int_equal(r.record.version, 2);
	store_write_result_fini(&r);
	stt_fx_free(fx);
}

/* srt_count_requests counts the remembered request ids in the file. */
static int
srt_count_requests(const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int n;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY,
	                     NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
	                     "SELECT (SELECT count(*) FROM requests0) +"
	                     " (SELECT count(*) FROM requests1)",
	                     -1, &st, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

static store_err
srt_put_rid(stt_fx *fx, const char *rid)
{
	return stt_apply0(fx->c,
	    stt_with_rid(stt_update("k", "v", STORE_PRECOND_UNCONDITIONAL, 0),
	        rid));
}

/* Request ids live in two generation tables of one ttl each: moving to a
 * generation empties the table it takes over, so memory is bounded by
 * two ttls of writes and nothing is forgotten before one ttl. */
static void
test_expired_request_ids_are_dropped_when_their_generation_is_reused(
    void **state)
{
	store_limits lim = store_limits_default();
	char rid[32];
	stt_fx *fx;

	(void) state;
	lim.request_id_ttl_ms = 1000;
	fx = stt_fx_new(&lim, true);
	/* Start on a generation boundary so the steps below are exact. */
	ds_fake_clock_advance(&fx->clock,
	    1000 - atomic_load(&fx->clock.now_ms) % 1000);
	for (int i = 0; i < 200; i++) {
		(void) snprintf(rid, sizeof(rid), "r%d", i);
		assert_int_equal(srt_put_rid(fx, rid), STORE_OK);
	}
	assert_int_equal(srt_count_requests(fx->path), 200);
	/* Next generation: the other table; the 200 are kept... */
	ds_fake_clock_advance(&fx->clock, 1000);
	assert_int_equal(srt_put_rid(fx, "g1"), STORE_OK);
	assert_int_equal(srt_count_requests(fx->path), 201);
	/* ...until their table is taken over by the generation after. */
	ds_fake_clock_advance(&fx->clock, 1000);
	assert_int_equal(srt_put_rid(fx, "g2"), STORE_OK);
	assert_int_equal(srt_count_requests(fx->path), 2);
	/* After a long pause both tables are stale. */
	ds_fake_clock_advance(&fx->clock, 10000);
	assert_int_equal(srt_put_rid(fx, "g12"), STORE_OK);
	assert_int_equal(srt_count_requests(fx->path), 1);
	stt_fx_free(fx);
}

static void
test_request_ids_are_remembered_across_keys_and_ops(void **state)
{
	stt_fx *fx = *state;
	store_write_result r;

	/* Ids are store-wide: the same id cannot name two writes. */
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_rid(stt_lock("a", "ann", 0), "shared")),
	    STORE_OK);
	assert_int_equal(stt_apply(fx->c,
	                     stt_with_rid(stt_update("b", "x",
	                                      STORE_PRECOND_IF_ABSENT, 0),
	                         "shared"),
	                     &r),
	    STORE_EREQUEST_ID_REUSED);
	store_write_result_fini(&r);
	assert_int_equal(stt_version(fx->c, "b"), 0);
}

/* --- request ids are scoped by caller (issue 9 item 5, review #4) --- */

static void
test_same_request_id_from_two_callers_is_two_requests(void **state)
{
	stt_fx *fx = *state;
	store_write a = stt_with_caller(
	    stt_with_rid(stt_update("doc", "from ann", STORE_PRECOND_UNCONDITIONAL,
	                     0),
	        "k"),
	    "ann-client");
	store_write b = stt_with_caller(
	    stt_with_rid(stt_update("doc", "from bob", STORE_PRECOND_UNCONDITIONAL,
	                     0),
	        "k"),
	    "bob-client");
	store_write_result ra;
	store_write_result rb;

	assert_int_equal(stt_apply(fx->c, a, &ra), STORE_OK);
	assert_false(ra.replayed);
	assert_int_equal(ra.record.version, 1);
	store_write_result_fini(&ra);
	/* Another request under the same id, from someone else: applied,
	 * not REQUEST_ID_REUSED. */
	assert_int_equal(stt_apply(fx->c, b, &rb), STORE_OK);
	assert_false(rb.replayed);
	assert_int_equal(rb.record.version, 2);
	store_write_result_fini(&rb);
	/* Each caller's retry replays its own answer. */
	assert_int_equal(stt_apply(fx->c, a, &ra), STORE_OK);
	assert_true(ra.replayed);
	assert_int_equal(ra.record.version, 1);
	stt_assert_value(&ra.record, "from ann");
	assert_int_equal(stt_apply(fx->c, b, &rb), STORE_OK);
	assert_true(rb.replayed);
	assert_int_equal(rb.record.version, 2);
	stt_assert_value(&rb.record, "from bob");
	store_write_result_fini(&ra);
	store_write_result_fini(&rb);
	assert_int_equal(stt_revision(fx->c), 2);
	/* The unscoped caller ("") is one more caller. */
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_rid(stt_update("doc", "anon",
	                                      STORE_PRECOND_IF_VERSION, 2),
	                         "k")),
	    STORE_OK);
	assert_int_equal(stt_version(fx->c, "doc"), 3);
}

static void
test_lock_replayed_by_another_caller_is_a_new_lock_attempt(void **state)
{
	stt_fx *fx = *state;
	store_write w = stt_with_rid(stt_lock("doc", "ann", 5000), "lock-doc");
	store_write_result a;
	store_write_result b;
	store_write_result again;
	static const store_token zero;

	(void) stt_put(fx->c, "doc", "v1");
	assert_int_equal(
	    stt_apply(fx->c, stt_with_caller(w, "ann-client"), &a), STORE_OK);
	/* Same id, same owner, same ttl: the whole identity of the Lock, but
	 * from another caller. It must not get ann's token. */
	assert_int_equal(stt_apply(fx->c, stt_with_caller(w, "mallory"), &b),
	    STORE_ELOCKED);
	assert_string_equal(store_reason(b.error.code), "LOCKED");
	assert_false(b.replayed);
	assert_memory_equal(b.token.b, zero.b, STORE_TOKEN_BYTES);
	assert_true(b.record.locked);
	assert_string_equal(b.record.lock.owner, "ann");
	/* The holder's own retry still gets its answer. */
	assert_int_equal(
	    stt_apply(fx->c, stt_with_caller(w, "ann-client"), &again),
	    STORE_OK);
	assert_true(again.replayed);
	assert_memory_equal(again.token.b, a.token.b, STORE_TOKEN_BYTES);
	assert_int_equal(again.record.lock.fencing_token,
	    a.record.lock.fencing_token);
	store_write_result_fini(&a);
	store_write_result_fini(&b);
	store_write_result_fini(&again);
}

static void
test_caller_is_checked_against_max_caller_bytes(void **state)
{
	store_limits lim = store_limits_default();
	stt_fx *fx;
	char name[9];
	store_write_result r;

	(void) state;
	lim.max_caller_bytes = 8;
	fx = stt_fx_new(&lim, false);
	memset(name, 'c', sizeof(name));
	/* At the limit. */
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_caller(stt_with_rid(stt_update("doc",
	                                                      "v",
	                                                      STORE_PRECOND_UNCONDITIONAL,
	                                                      0),
	                                         "r1"),
	                         "cccccccc")),
	    STORE_OK);
	/* One past it. */
	memset(&r, 0, sizeof(r));
	{
		store_write w = stt_with_rid(
		    stt_update("doc", "v", STORE_PRECOND_UNCONDITIONAL, 0),
		    "r2");

		w.caller = name;
		w.caller_len = sizeof(name);
		assert_int_equal(store_apply(fx->c, &w, &r), STORE_ETOOLARGE);
	}
	assert_string_equal(r.error.field, "caller");
	assert_non_null(strstr(r.error.message, "max_caller_bytes (8)"));
	store_write_result_fini(&r);
	/* Without a request_id the caller is not used, hence not checked. */
	{
		store_write w =
		    stt_update("doc", "v", STORE_PRECOND_UNCONDITIONAL, 0);

		w.caller = name;
		w.caller_len = sizeof(name);
		assert_int_equal(stt_apply0(fx->c, w), STORE_OK);
	}
	stt_fx_free(fx);
}

#define T(f) cmocka_unit_test_setup_teardown(f, stt_setup_mem, stt_teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_replay_after_success_returns_the_original_result),
	    T(test_replay_returns_the_original_even_after_later_writes),
	    T(test_same_request_id_for_another_request_is_refused),
	    T(test_failed_writes_are_not_remembered),
	    T(test_lock_replay_returns_the_same_token),
	    T(test_delete_and_unlock_replay),
	    cmocka_unit_test(test_request_ids_expire_after_their_ttl),
	    cmocka_unit_test(
	        test_expired_request_ids_are_dropped_when_their_generation_is_reused),
	    T(test_request_ids_are_remembered_across_keys_and_ops),
	    T(test_same_request_id_from_two_callers_is_two_requests),
	    T(test_lock_replayed_by_another_caller_is_a_new_lock_attempt),
	    cmocka_unit_test(test_caller_is_checked_against_max_caller_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
