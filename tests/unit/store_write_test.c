/*
 * store_write_test.c - versions, preconditions, conflicts, tombstones,
 * history and the store-wide revision (DESIGN §3, §4 rules 1-2).
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
test_create_with_if_absent_starts_at_version_1(void **state)
{
	stt_fx *fx = *state;
	store_write_result r;
	store_record rec;

	assert_int_equal(stt_apply(fx->c,
	                     stt_with_author(stt_update("doc", "hello",
	                                         STORE_PRECOND_IF_ABSENT, 0),
	                         "ann"),
	                     &r),
	    STORE_OK);
	assert_int_equal(r.error.code, STORE_OK);
	assert_string_equal(r.record.key, "doc");
	assert_int_equal(r.record.key_len, 3);
	assert_int_equal(r.record.version, 1);
	assert_int_equal(r.record.revision, 1);
	stt_assert_value(&r.record, "hello");
	assert_string_equal(r.record.content_type, "text/plain");
	assert_string_equal(r.record.updated_by, "ann");
	assert_true(r.record.created_at_ms == STT_T0);
	assert_true(r.record.updated_at_ms == STT_T0);
	assert_false(r.record.deleted);
	assert_false(r.record.locked);
	assert_false(r.replayed);
	store_write_result_fini(&r);

	memset(&rec, 0, sizeof(rec));
	assert_int_equal(store_get(fx->c, "doc", 3, 0, &rec, NULL), STORE_OK);
	assert_int_equal(rec.version, 1);
	stt_assert_value(&rec, "hello");
	assert_string_equal(rec.updated_by, "ann");
	store_record_fini(&rec);
	store_record_fini(&rec); /* finishing twice is a no-op */
}

static void
test_if_absent_on_existing_returns_conflict_with_current(void **state)
{
	stt_fx *fx = *state;
	store_write_result r;

	(void) stt_put(fx->c, "doc", "first");
	assert_int_equal(stt_apply(fx->c,
	                     stt_update("doc", "second",
	                         STORE_PRECOND_IF_ABSENT, 0),
	                     &r),
	    STORE_ECONFLICT);
	assert_int_equal(r.error.code, STORE_ECONFLICT);
	assert_string_equal(store_reason(r.error.code), "VERSION_CONFLICT");
	assert_string_equal(r.error.field, "precondition");
	assert_int_equal(r.record.version, 1);
	stt_assert_value(&r.record, "first");
	assert_false(r.record.deleted);
	store_write_result_fini(&r);
	assert_int_equal(stt_version(fx->c, "doc"), 1);
}

static void
test_stale_if_version_returns_conflict_with_current_value(void **state)
{
	stt_fx *fx = *state;
	store_write_result r;

	(void) stt_put(fx->c, "doc", "v1");
	ds_fake_clock_advance(&fx->clock, 1000);
	assert_int_equal(stt_apply(fx->c,
	                     stt_with_author(stt_update("doc", "v2",
	                                         STORE_PRECOND_IF_VERSION, 1),
	                         "bob"),
	                     &r),
	    STORE_OK);
	store_write_result_fini(&r);
	/* A writer that read version 1 is refused and sees version 2, its
	 * value and who wrote it, without another round trip. */
	assert_int_equal(stt_apply(fx->c,
	                     stt_update("doc", "mine",
	                         STORE_PRECOND_IF_VERSION, 1),
	                     &r),
	    STORE_ECONFLICT);
	assert_int_equal(r.record.version, 2);
	assert_int_equal(r.record.revision, 2);
	stt_assert_value(&r.record, "v2");
	assert_string_equal(r.record.updated_by, "bob");
	assert_string_equal(r.record.content_type, "text/plain");
	assert_true(r.record.updated_at_ms == STT_T0 + 1000);
	assert_true(r.record.created_at_ms == STT_T0);
	store_write_result_fini(&r);
	assert_int_equal(stt_version(fx->c, "doc"), 2);
	assert_int_equal(stt_revision(fx->c), 2);
}

static void
test_current_if_version_increments_version(void **state)
{
	stt_fx *fx = *state;

	(void) stt_put(fx->c, "doc", "v1");
	for (uint64_t v = 1; v < 5; v++) {
		assert_int_equal(stt_apply0(fx->c,
		                     stt_update("doc", "x",
		                         STORE_PRECOND_IF_VERSION, v)),
		    STORE_OK);
		assert_int_equal(stt_version(fx->c, "doc"), v + 1);
	}
	/* A version that was never current is a conflict too. */
	assert_int_equal(stt_apply0(fx->c,
	                     stt_update("doc", "x", STORE_PRECOND_IF_VERSION,
	                         99)),
	    STORE_ECONFLICT);
}

static void
test_if_version_on_absent_key_conflicts_with_version_0(void **state)
{
	stt_fx *fx = *state;
	store_write_result r;

	assert_int_equal(stt_apply(fx->c,
	                     stt_update("nokey", "x",
	                         STORE_PRECOND_IF_VERSION, 1),
	                     &r),
	    STORE_ECONFLICT);
	assert_string_equal(r.record.key, "nokey");
	assert_int_equal(r.record.version, 0);
	assert_false(r.record.deleted);
	assert_null(r.record.value);
	store_write_result_fini(&r);
}

static void
test_if_exists_needs_a_live_record(void **state)
{
	stt_fx *fx = *state;
	store_write_result r;

	assert_int_equal(stt_apply(fx->c,
	                     stt_update("doc", "x", STORE_PRECOND_IF_EXISTS,
	                         0),
	                     &r),
	    STORE_ECONFLICT);
	assert_int_equal(r.record.version, 0);
	store_write_result_fini(&r);
	assert_int_equal(stt_version(fx->c, "doc"), 0);
	(void) stt_put(fx->c, "doc", "v1");
	assert_int_equal(stt_apply0(fx->c,
	                     stt_update("doc", "v2", STORE_PRECOND_IF_EXISTS,
	                         0)),
	    STORE_OK);
	assert_int_equal(stt_version(fx->c, "doc"), 2);
}

static void
test_unconditional_creates_and_overwrites(void **state)
{
	stt_fx *fx = *state;

	assert_int_equal(stt_put(fx->c, "doc", "a"), 1);
	assert_int_equal(stt_put(fx->c, "doc", "b"), 2);
	assert_int_equal(stt_put(fx->c, "doc", ""), 3);
}

static void
test_missing_precondition_changes_nothing(void **state)
{
	stt_fx *fx = *state;
	store_write_result r;

	(void) stt_put(fx->c, "doc", "v1");
	assert_int_equal(stt_apply(fx->c,
	                     stt_update("doc", "x", STORE_PRECOND_NONE, 0),
	                     &r),
	    STORE_EPRECONDITION_REQUIRED);
	assert_string_equal(store_reason(r.error.code),
	    "PRECONDITION_REQUIRED");
	assert_null(r.record.key);
	store_write_result_fini(&r);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_delete("doc", STORE_PRECOND_NONE, 0)),
	    STORE_EPRECONDITION_REQUIRED);
	assert_int_equal(stt_version(fx->c, "doc"), 1);
	assert_int_equal(stt_revision(fx->c), 1);
}

static void
test_delete_leaves_a_tombstone_and_get_is_not_found(void **state)
{
	stt_fx *fx = *state;
	store_write_result r;
	store_record rec;

	(void) stt_put(fx->c, "doc", "v1");
	ds_fake_clock_advance(&fx->clock, 5);
	assert_int_equal(stt_apply(fx->c,
	                     stt_with_author(stt_delete("doc",
	                                         STORE_PRECOND_IF_VERSION, 1),
	                         "carl"),
	                     &r),
	    STORE_OK);
	assert_int_equal(r.record.version, 2);
	assert_int_equal(r.record.revision, 2);
	assert_true(r.record.deleted);
	assert_null(r.record.value);
	assert_string_equal(r.record.updated_by, "carl");
	assert_true(r.record.updated_at_ms == STT_T0 + 5);
	store_write_result_fini(&r);

	memset(&rec, 0, sizeof(rec));
	assert_int_equal(store_get(fx->c, "doc", 3, 0, &rec, NULL),
	    STORE_ENOTFOUND);
	assert_null(rec.key);
	/* Deleting again: nothing live. */
	assert_int_equal(stt_apply0(fx->c,
	                     stt_delete("doc", STORE_PRECOND_UNCONDITIONAL,
	                         0)),
	    STORE_ENOTFOUND);
	assert_int_equal(stt_revision(fx->c), 2);
}

static void
test_conflict_on_a_tombstone_reports_deleted_and_version(void **state)
{
	stt_fx *fx = *state;
	store_write_result r;

	(void) stt_put(fx->c, "doc", "v1");
	assert_int_equal(stt_apply0(fx->c,
	                     stt_delete("doc", STORE_PRECOND_IF_EXISTS, 0)),
	    STORE_OK);
	assert_int_equal(stt_apply(fx->c,
	                     stt_update("doc", "x", STORE_PRECOND_IF_VERSION,
	                         1),
	                     &r),
	    STORE_ECONFLICT);
	assert_true(r.record.deleted);
	assert_int_equal(r.record.version, 2);
	assert_null(r.record.value);
	store_write_result_fini(&r);
	assert_int_equal(stt_apply(fx->c,
	                     stt_delete("doc", STORE_PRECOND_IF_EXISTS, 0),
	                     &r),
	    STORE_ECONFLICT);
	assert_true(r.record.deleted);
	assert_int_equal(r.record.version, 2);
	store_write_result_fini(&r);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_delete("doc", STORE_PRECOND_IF_VERSION, 2)),
	    STORE_ECONFLICT);
}

static void
test_delete_of_a_key_that_never_existed(void **state)
{
	stt_fx *fx = *state;
	store_write_result r;

	assert_int_equal(stt_apply(fx->c,
	                     stt_delete("ghost", STORE_PRECOND_UNCONDITIONAL,
	                         0),
	                     &r),
	    STORE_ENOTFOUND);
	assert_string_equal(r.error.field, "key");
	assert_null(r.record.key);
	store_write_result_fini(&r);
	assert_int_equal(stt_apply(fx->c,
	                     stt_delete("ghost", STORE_PRECOND_IF_EXISTS, 0),
	                     &r),
	    STORE_ECONFLICT);
	assert_int_equal(r.record.version, 0);
	assert_false(r.record.deleted);
	store_write_result_fini(&r);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_delete("ghost", STORE_PRECOND_IF_ABSENT, 0)),
	    STORE_EINVAL);
	assert_int_equal(stt_revision(fx->c), 0);
}

static void
test_recreate_after_delete_continues_the_version(void **state)
{
	stt_fx *fx = *state;
	store_write_result r;

	(void) stt_put(fx->c, "doc", "v1");
	(void) stt_put(fx->c, "doc", "v2");
	assert_int_equal(stt_apply0(fx->c,
	                     stt_delete("doc", STORE_PRECOND_IF_VERSION, 2)),
	    STORE_OK);
	ds_fake_clock_advance(&fx->clock, 100);
	assert_int_equal(stt_apply(fx->c,
	                     stt_update("doc", "again",
	                         STORE_PRECOND_IF_ABSENT, 0),
	                     &r),
	    STORE_OK);
	assert_int_equal(r.record.version, 4); /* tombstone was 3 */
	/* A new incarnation: created now. */
	assert_true(r.record.created_at_ms == STT_T0 + 100);
	store_write_result_fini(&r);
}

static void
test_old_version_never_matches_a_new_incarnation(void **state)
{
	stt_fx *fx = *state;

	/* ABA: a client holding ETag "1" of the first incarnation must
	 * not overwrite the second one, also at version "1" in a naive
	 * store. */
	(void) stt_put(fx->c, "doc", "first");
	assert_int_equal(stt_apply0(fx->c,
	                     stt_delete("doc", STORE_PRECOND_IF_VERSION, 1)),
	    STORE_OK);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_update("doc", "second",
	                         STORE_PRECOND_IF_ABSENT, 0)),
	    STORE_OK);
	for (uint64_t v = 1; v <= 2; v++) {
		assert_int_equal(stt_apply0(fx->c,
		                     stt_update("doc", "stale",
		                         STORE_PRECOND_IF_VERSION, v)),
		    STORE_ECONFLICT);
		assert_int_equal(stt_apply0(fx->c,
		                     stt_delete("doc",
		                         STORE_PRECOND_IF_VERSION, v)),
		    STORE_ECONFLICT);
	}
	assert_int_equal(stt_apply0(fx->c,
	                     stt_update("doc", "third",
	                         STORE_PRECOND_IF_VERSION, 3)),
	    STORE_OK);
}

/* swt_get_value asserts Get(key, v) returns value. */
static void
swt_get_value(store_conn *c, const char *key, uint64_t v, const char *value)
{
	store_record rec;

	memset(&rec, 0, sizeof(rec));
	assert_int_equal(store_get(c, key, strlen(key), v, &rec, NULL),
	    STORE_OK);
	assert_int_equal(rec.version, v);
	stt_assert_value(&rec, value);
	store_record_fini(&rec);
}

static store_err
swt_get_code(store_conn *c, const char *key, uint64_t v)
{
	store_record rec;
	store_error err;
	store_err rv;

	memset(&rec, 0, sizeof(rec));
	rv = store_get(c, key, strlen(key), v, &rec, &err);
	if (rv != STORE_OK) {
		assert_int_equal(err.code, rv);
		assert_null(rec.key);
	}
	store_record_fini(&rec);
	return rv;
}

static void
test_history_keeps_the_last_h_versions(void **state)
{
	store_limits lim = store_limits_default();
	char val[16];
	stt_fx *fx;

	(void) state;
	lim.history = 3;
	fx = stt_fx_new(&lim, false);
	for (int i = 1; i <= 6; i++) {
		(void) snprintf(val, sizeof(val), "v%d", i);
		assert_int_equal(stt_put(fx->c, "doc", val), (uint64_t) i);
	}
	/* 3 kept, the current included: 4, 5, 6. */
	swt_get_value(fx->c, "doc", 6, "v6");
	swt_get_value(fx->c, "doc", 5, "v5");
	swt_get_value(fx->c, "doc", 4, "v4");
	assert_int_equal(swt_get_code(fx->c, "doc", 3), STORE_ECOMPACTED);
	assert_int_equal(swt_get_code(fx->c, "doc", 1), STORE_ECOMPACTED);
	assert_string_equal(store_reason(STORE_ECOMPACTED),
	    "VERSION_COMPACTED");
	/* Never written: beyond current. */
	assert_int_equal(swt_get_code(fx->c, "doc", 7), STORE_ENOTFOUND);
	assert_int_equal(swt_get_code(fx->c, "nodoc", 1), STORE_ENOTFOUND);
	stt_fx_free(fx);
}

/* swt_history_rows counts the stored history rows of key (its versions
 * below the head): white-box, to see that trimming happens on write and
 * not only in what reads show. */
static int
swt_history_rows(const char *path, const char *key)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int n;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY,
	                     NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
	                     "SELECT count(*) FROM versions WHERE key = ?1"
	                     " AND version < (SELECT version FROM records"
	                     " WHERE key = ?1)",
	                     -1,
	                     &st, NULL),
	    SQLITE_OK);
	sqlite3_bind_blob(st, 1, key, (int) strlen(key), SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

static void
test_history_is_trimmed_in_storage_on_every_write(void **state)
{
	store_limits lim = store_limits_default();
	stt_fx *fx;

	(void) state;
	lim.history = 3;
	fx = stt_fx_new(&lim, true);
	for (int i = 1; i <= 10; i++) {
		(void) stt_put(fx->c, "doc", "x");
		/* The current version lives in records, the rest here. */
		assert_int_equal(swt_history_rows(fx->path, "doc"),
		    i < 3 ? i - 1 : 2);
	}
	assert_int_equal(stt_apply0(fx->c,
	                     stt_delete("doc", STORE_PRECOND_IF_EXISTS, 0)),
	    STORE_OK);
	assert_int_equal(swt_history_rows(fx->path, "doc"), 2);
	/* A smaller history after a restart: the next write trims. */
	fx->cfg.limits.history = 0;
	stt_fx_reopen(fx);
	assert_int_equal(swt_history_rows(fx->path, "doc"), 2);
	(void) stt_put(fx->c, "doc", "y");
	assert_int_equal(swt_history_rows(fx->path, "doc"), 0);
	(void) stt_put(fx->c, "doc", "z");
	assert_int_equal(swt_history_rows(fx->path, "doc"), 0);
	stt_fx_free(fx);
}

static void
test_history_zero_keeps_only_the_current_version(void **state)
{
	store_limits lim = store_limits_default();
	stt_fx *fx;

	(void) state;
	lim.history = 0;
	fx = stt_fx_new(&lim, false);
	(void) stt_put(fx->c, "doc", "a");
	(void) stt_put(fx->c, "doc", "b");
	swt_get_value(fx->c, "doc", 2, "b");
	assert_int_equal(swt_get_code(fx->c, "doc", 1), STORE_ECOMPACTED);
	assert_int_equal(swt_get_code(fx->c, "doc", 3), STORE_ENOTFOUND);
	stt_fx_free(fx);
}

static void
test_historical_versions_stay_readable_after_delete(void **state)
{
	stt_fx *fx = *state;
	store_record rec;

	(void) stt_put(fx->c, "doc", "a");
	(void) stt_put(fx->c, "doc", "b");
	assert_int_equal(stt_apply0(fx->c,
	                     stt_delete("doc", STORE_PRECOND_IF_VERSION, 2)),
	    STORE_OK);
	swt_get_value(fx->c, "doc", 1, "a");
	swt_get_value(fx->c, "doc", 2, "b");
	/* The tombstone's version has no record to show. */
	assert_int_equal(swt_get_code(fx->c, "doc", 3), STORE_ENOTFOUND);
	assert_int_equal(swt_get_code(fx->c, "doc", 0), STORE_ENOTFOUND);
	/* After re-creating, the tombstone version stays unreadable and
	 * the older ones stay readable. */
	(void) stt_put(fx->c, "doc", "c");
	assert_int_equal(swt_get_code(fx->c, "doc", 3), STORE_ENOTFOUND);
	swt_get_value(fx->c, "doc", 2, "b");
	swt_get_value(fx->c, "doc", 4, "c");
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(store_get(fx->c, "doc", 3, 1, &rec, NULL), STORE_OK);
	assert_int_equal(rec.revision, 1);
	assert_false(rec.deleted);
	store_record_fini(&rec);
}

static void
test_revision_is_strictly_increasing_across_keys(void **state)
{
	stt_fx *fx = *state;
	const char *keys[] = {"a", "b", "c", "a", "c", "b"};
	uint64_t last = 0;
	store_write_result r;

	assert_int_equal(stt_revision(fx->c), 0);
	for (size_t i = 0; i < 6; i++) {
		assert_int_equal(stt_apply(fx->c,
		                     stt_update(keys[i], "x",
		                         STORE_PRECOND_UNCONDITIONAL, 0),
		                     &r),
		    STORE_OK);
		assert_true(r.record.revision == last + 1);
		last = r.record.revision;
		store_write_result_fini(&r);
	}
	assert_int_equal(stt_apply(fx->c,
	                     stt_delete("b", STORE_PRECOND_IF_EXISTS, 0), &r),
	    STORE_OK);
	assert_int_equal(r.record.revision, 7);
	store_write_result_fini(&r);
	/* Failed writes take no revision. */
	assert_int_equal(stt_apply0(fx->c,
	                     stt_update("a", "x", STORE_PRECOND_IF_ABSENT, 0)),
	    STORE_ECONFLICT);
	assert_int_equal(stt_revision(fx->c), 7);
	assert_int_equal(stt_put(fx->c, "d", "x"), 1);
	assert_int_equal(stt_revision(fx->c), 8);
}

static void
test_record_revision_is_the_revision_of_its_last_change(void **state)
{
	stt_fx *fx = *state;
	store_record rec;

	(void) stt_put(fx->c, "a", "1"); /* rev 1 */
	(void) stt_put(fx->c, "b", "1"); /* rev 2 */
	(void) stt_put(fx->c, "a", "2"); /* rev 3 */
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(store_get(fx->c, "b", 1, 0, &rec, NULL), STORE_OK);
	assert_int_equal(rec.revision, 2);
	store_record_fini(&rec);
	assert_int_equal(store_get(fx->c, "a", 1, 0, &rec, NULL), STORE_OK);
	assert_int_equal(rec.revision, 3);
	store_record_fini(&rec);
}

static void
test_updates_keep_created_at_and_move_updated_at(void **state)
{
	stt_fx *fx = *state;
	store_write_result r;

	(void) stt_put(fx->c, "doc", "a");
	ds_fake_clock_advance(&fx->clock, 2500);
	assert_int_equal(stt_apply(fx->c,
	                     stt_with_author(stt_update("doc", "b",
	                                         STORE_PRECOND_IF_VERSION, 1),
	                         "dora"),
	                     &r),
	    STORE_OK);
	assert_true(r.record.created_at_ms == STT_T0);
	assert_true(r.record.updated_at_ms == STT_T0 + 2500);
	assert_string_equal(r.record.updated_by, "dora");
	store_write_result_fini(&r);
}

static void
test_values_are_opaque_bytes(void **state)
{
	stt_fx *fx = *state;
	static const uint8_t bin[] = {0, 0xff, 0x80, 0, 7};
	store_write w = stt_update("bin", NULL, STORE_PRECOND_IF_ABSENT, 0);
	store_record rec;

	w.value = bin;
	w.value_len = sizeof(bin);
	w.content_type = "application/octet-stream";
	w.content_type_len = strlen(w.content_type);
	assert_int_equal(stt_apply0(fx->c, w), STORE_OK);
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(store_get(fx->c, "bin", 3, 0, &rec, NULL), STORE_OK);
	assert_int_equal(rec.value_len, sizeof(bin));
	assert_memory_equal(rec.value, bin, sizeof(bin));
	assert_string_equal(rec.content_type, "application/octet-stream");
	store_record_fini(&rec);
}

static void
test_large_value_at_the_limit_round_trips(void **state)
{
	stt_fx *fx = *state;
	size_t n = STORE_MAX_VALUE_BYTES_DEFAULT;
	uint8_t *big = malloc(n + 1);
	store_write w = stt_update("big", NULL, STORE_PRECOND_IF_ABSENT, 0);
	store_record rec;

	assert_non_null(big);
	for (size_t i = 0; i <= n; i++) {
		big[i] = (uint8_t) (i * 31);
	}
	w.value = big;
	w.value_len = n + 1;
	assert_int_equal(stt_apply0(fx->c, w), STORE_ETOOLARGE);
	w.value_len = n;
	assert_int_equal(stt_apply0(fx->c, w), STORE_OK);
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(store_get(fx->c, "big", 3, 0, &rec, NULL), STORE_OK);
	assert_int_equal(rec.value_len, n);
	assert_memory_equal(rec.value, big, n);
	store_record_fini(&rec);
	free(big);
}

static void
test_get_validates_the_key(void **state)
{
	stt_fx *fx = *state;
	store_record rec;
	store_error err;

	memset(&rec, 0, sizeof(rec));
	assert_int_equal(store_get(fx->c, "", 0, 0, &rec, &err), STORE_EINVAL);
	assert_string_equal(err.field, "key");
	assert_int_equal(store_get(fx->c, "a\x01", 2, 0, &rec, &err),
	    STORE_EINVAL);
	assert_int_equal(store_get(fx->c, "nope", 4, 0, &rec, &err),
	    STORE_ENOTFOUND);
	assert_string_equal(store_reason(err.code), "NOT_FOUND");
}

static void
test_keys_are_exact_bytes(void **state)
{
	stt_fx *fx = *state;

	(void) stt_put(fx->c, "caf\xc3\xa9", "1");
	(void) stt_put(fx->c, "cafe", "2");
	(void) stt_put(fx->c, "Cafe", "3");
	assert_int_equal(stt_version(fx->c, "caf\xc3\xa9"), 1);
	assert_int_equal(stt_version(fx->c, "cafe"), 1);
	assert_int_equal(stt_version(fx->c, "Cafe"), 1);
	assert_int_equal(stt_version(fx->c, "caf"), 0);
	assert_int_equal(stt_revision(fx->c), 3);
}

/* --- if_version_in: an If-Match list checked in the write's
 * transaction (issue 9 item 7, review #9) --- */

static void
test_if_version_in_applies_when_the_version_is_in_the_set(void **state)
{
	stt_fx *fx = *state;
	static const uint64_t vs[] = {7, 2, 3};
	store_write_result r;

	(void) stt_put(fx->c, "doc", "v1");
	(void) stt_put(fx->c, "doc", "v2");
	assert_int_equal(stt_apply(fx->c,
	                     stt_if_version_in(stt_update("doc", "v3", 0, 0),
	                         vs, 3),
	                     &r),
	    STORE_OK);
	assert_int_equal(r.record.version, 3);
	store_write_result_fini(&r);
	/* 3 is in the set too: still a compare-and-set per write. */
	assert_int_equal(stt_apply0(fx->c,
	                     stt_if_version_in(stt_delete("doc", 0, 0), vs, 3)),
	    STORE_OK);
	assert_int_equal(stt_version(fx->c, "doc"), 0);
}

static void
test_if_version_in_without_the_version_conflicts_with_current(void **state)
{
	stt_fx *fx = *state;
	static const uint64_t vs[] = {1, 3};
	store_write_result r;

	(void) stt_put(fx->c, "doc", "v1");
	(void) stt_put(fx->c, "doc", "current");
	assert_int_equal(stt_apply(fx->c,
	                     stt_if_version_in(stt_update("doc", "x", 0, 0),
	                         vs, 2),
	                     &r),
	    STORE_ECONFLICT);
	assert_string_equal(store_reason(r.error.code), "VERSION_CONFLICT");
	assert_int_equal(r.record.version, 2);
	assert_false(r.record.deleted);
	stt_assert_value(&r.record, "current");
	store_write_result_fini(&r);
	/* A key that never existed: version 0, which no set can name. */
	assert_int_equal(stt_apply(fx->c,
	                     stt_if_version_in(stt_update("nokey", "x", 0, 0),
	                         vs, 2),
	                     &r),
	    STORE_ECONFLICT);
	assert_int_equal(r.record.version, 0);
	store_write_result_fini(&r);
	assert_int_equal(stt_version(fx->c, "doc"), 2);
	assert_int_equal(stt_revision(fx->c), 2);
}

static void
test_if_version_in_never_matches_a_tombstone(void **state)
{
	stt_fx *fx = *state;
	static const uint64_t vs[] = {1, 2};
	store_write_result r;

	(void) stt_put(fx->c, "doc", "v1");
	assert_int_equal(stt_apply0(fx->c,
	                     stt_delete("doc", STORE_PRECOND_IF_VERSION, 1)),
	    STORE_OK);
	/* Version 2 is the tombstone's: named, but not a live record. */
	assert_int_equal(stt_apply(fx->c,
	                     stt_if_version_in(stt_update("doc", "x", 0, 0),
	                         vs, 2),
	                     &r),
	    STORE_ECONFLICT);
	assert_true(r.record.deleted);
	assert_int_equal(r.record.version, 2);
	store_write_result_fini(&r);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_if_version_in(stt_delete("doc", 0, 0), vs, 2)),
	    STORE_ECONFLICT);
	assert_int_equal(stt_revision(fx->c), 2);
}

static void
test_if_version_in_respects_a_lock(void **state)
{
	stt_fx *fx = *state;
	static const uint64_t vs[] = {5, 1};
	static const uint64_t stale[] = {5};
	store_write_result l;

	(void) stt_put(fx->c, "doc", "v1");
	assert_int_equal(stt_apply(fx->c, stt_lock("doc", "ann", 10000), &l),
	    STORE_OK);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_if_version_in(stt_update("doc", "x", 0, 0),
	                         vs, 2)),
	    STORE_ELOCKED);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_token(stt_if_version_in(stt_update("doc",
	                                                          "x", 0, 0),
	                                        stale, 1),
	                         &l.token)),
	    STORE_ECONFLICT);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_token(stt_if_version_in(stt_update("doc",
	                                                          "x", 0, 0),
	                                        vs, 2),
	                         &l.token)),
	    STORE_OK);
	assert_int_equal(stt_version(fx->c, "doc"), 2);
	store_write_result_fini(&l);
}

static void
test_if_version_in_empty_zero_or_over_the_limit_is_invalid(void **state)
{
	store_limits lim = store_limits_default();
	uint64_t vs[5] = {1, 2, 3, 4, 5};
	static const uint64_t zero[] = {1, 0};
	store_write_result r;
	stt_fx *fx;

	(void) state;
	lim.max_if_version_in = 4;
	fx = stt_fx_new(&lim, false);
	(void) stt_put(fx->c, "doc", "v1");
	assert_int_equal(stt_apply(fx->c,
	                     stt_if_version_in(stt_update("doc", "x", 0, 0),
	                         vs, 0),
	                     &r),
	    STORE_EINVAL);
	assert_string_equal(r.error.field, "precondition.if_version_in");
	assert_non_null(strstr(r.error.message, "at least one version"));
	store_write_result_fini(&r);
	/* limit + 1 */
	assert_int_equal(stt_apply(fx->c,
	                     stt_if_version_in(stt_update("doc", "x", 0, 0),
	                         vs, 5),
	                     &r),
	    STORE_EINVAL);
	assert_string_equal(r.error.field, "precondition.if_version_in");
	assert_non_null(strstr(r.error.message, "max_if_version_in (4)"));
	store_write_result_fini(&r);
	assert_int_equal(stt_apply(fx->c,
	                     stt_if_version_in(stt_update("doc", "x", 0, 0),
	                         zero, 2),
	                     &r),
	    STORE_EINVAL);
	assert_string_equal(r.error.field, "precondition.if_version_in");
	store_write_result_fini(&r);
	assert_int_equal(stt_revision(fx->c), 1);
	/* At the limit. */
	assert_int_equal(stt_apply0(fx->c,
	                     stt_if_version_in(stt_update("doc", "x", 0, 0),
	                         vs, 4)),
	    STORE_OK);
	stt_fx_free(fx);
	/* The limit itself has a hard maximum. */
	lim.max_if_version_in = STORE_MAX_IF_VERSION_IN_HARD + 1;
	assert_int_equal(store_limits_check(&lim, &r.error), STORE_EINVAL);
	assert_string_equal(r.error.field, "max_if_version_in");
	lim.max_if_version_in = STORE_MAX_IF_VERSION_IN_HARD;
	assert_int_equal(store_limits_check(&lim, &r.error), STORE_OK);
}

static void
test_if_version_in_retry_replays_after_the_version_moved(void **state)
{
	stt_fx *fx = *state;
	static const uint64_t vs[] = {1, 2};
	static const uint64_t other_order[] = {2, 1};
	store_write w;
	store_write_result r;

	(void) stt_put(fx->c, "doc", "v1");
	w = stt_with_rid(stt_if_version_in(stt_update("doc", "mine", 0, 0), vs,
	                     2),
	    "k");
	assert_int_equal(stt_apply0(fx->c, w), STORE_OK);
	/* The reply was lost. The version is now 2, which is in the set:
	 * without the replay this retry would write again. */
	assert_int_equal(stt_apply(fx->c, w, &r), STORE_OK);
	assert_true(r.replayed);
	assert_int_equal(r.record.version, 2);
	store_write_result_fini(&r);
	assert_int_equal(stt_version(fx->c, "doc"), 2);
	/* The identity is the list as given. */
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_rid(stt_if_version_in(stt_update("doc",
	                                                        "mine", 0, 0),
	                                      other_order, 2),
	                         "k")),
	    STORE_EREQUEST_ID_REUSED);
}

static void
test_integrity_check_reports_ok(void **state)
{
	stt_fx *fx = *state;

	(void) stt_put(fx->c, "doc", "x");
	assert_int_equal(store_integrity_check(fx->c, NULL), STORE_OK);
}

#define T(f) cmocka_unit_test_setup_teardown(f, stt_setup_mem, stt_teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_create_with_if_absent_starts_at_version_1),
	    T(test_if_absent_on_existing_returns_conflict_with_current),
	    T(test_stale_if_version_returns_conflict_with_current_value),
	    T(test_current_if_version_increments_version),
	    T(test_if_version_on_absent_key_conflicts_with_version_0),
	    T(test_if_exists_needs_a_live_record),
	    T(test_unconditional_creates_and_overwrites),
	    T(test_missing_precondition_changes_nothing),
	    T(test_delete_leaves_a_tombstone_and_get_is_not_found),
	    T(test_conflict_on_a_tombstone_reports_deleted_and_version),
	    T(test_delete_of_a_key_that_never_existed),
	    T(test_recreate_after_delete_continues_the_version),
	    T(test_old_version_never_matches_a_new_incarnation),
	    cmocka_unit_test(test_history_keeps_the_last_h_versions),
	    cmocka_unit_test(test_history_is_trimmed_in_storage_on_every_write),
	    cmocka_unit_test(test_history_zero_keeps_only_the_current_version),
	    T(test_historical_versions_stay_readable_after_delete),
	    T(test_revision_is_strictly_increasing_across_keys),
	    T(test_record_revision_is_the_revision_of_its_last_change),
	    T(test_updates_keep_created_at_and_move_updated_at),
	    T(test_values_are_opaque_bytes),
	    T(test_large_value_at_the_limit_round_trips),
	    T(test_get_validates_the_key),
	    T(test_keys_are_exact_bytes),
	    T(test_integrity_check_reports_ok),
	    T(test_if_version_in_applies_when_the_version_is_in_the_set),
	    T(test_if_version_in_without_the_version_conflicts_with_current),
	    T(test_if_version_in_never_matches_a_tombstone),
	    T(test_if_version_in_respects_a_lock),
	    cmocka_unit_test(
	        test_if_version_in_empty_zero_or_over_the_limit_is_invalid),
	    T(test_if_version_in_retry_replays_after_the_version_moved),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
