/*
 * store_persist_test.c - the database file: reopening finds everything
 * (records, versions, history, revision, fencing counter, leases, request
 * ids); foreign or broken files are refused; a foreign writer holding
 * SQLite's lock is waited out for up to busy_timeout_ms, then the write
 * fails STORE_EBUSY (DB_BUSY) having changed nothing; readers never wait
 * for a writer.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store_test_util.h"

static void
test_reopen_finds_everything(void **state)
{
	stt_fx *fx = *state;
	store_write upd = stt_with_rid(
	    stt_update("doc", "v3", STORE_PRECOND_IF_VERSION, 2), "rid-1");
	store_write_result lk;
	store_write_result expired;
	store_write_result r;
	store_record rec;

	(void) stt_put(fx->c, "doc", "v1");
	(void) stt_put(fx->c, "doc", "v2");
	assert_int_equal(stt_apply0(fx->c, upd), STORE_OK);
	(void) stt_put(fx->c, "gone", "x");
	assert_int_equal(stt_apply0(fx->c,
	                     stt_delete("gone", STORE_PRECOND_IF_EXISTS, 0)),
	    STORE_OK);
	assert_int_equal(stt_apply(fx->c, stt_lock("doc", "ann", 60000), &lk),
	    STORE_OK);
	assert_int_equal(stt_apply(fx->c, stt_lock("gone", "bob", 1000),
	                     &expired),
	    STORE_OK);
	assert_int_equal(stt_revision(fx->c), 7); /* two locks: 6, 7 */

	stt_fx_reopen(fx);
	ds_fake_clock_advance(&fx->clock, 2000); /* bob's lease ran out */

	assert_int_equal(stt_revision(fx->c), 7);
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(store_get(fx->c, "doc", 3, 0, &rec, NULL), STORE_OK);
	assert_int_equal(rec.version, 3);
	assert_int_equal(rec.revision, 6); /* ann's lock */
	stt_assert_value(&rec, "v3");
	assert_true(rec.locked);
	assert_string_equal(rec.lock.owner, "ann");
	assert_int_equal(rec.lock.fencing_token, 1);
	store_record_fini(&rec);
	assert_int_equal(store_get(fx->c, "doc", 3, 1, &rec, NULL), STORE_OK);
	stt_assert_value(&rec, "v1");
	store_record_fini(&rec);
	/* The tombstone keeps its version. */
	assert_int_equal(stt_apply(fx->c,
	                     stt_update("gone", "x", STORE_PRECOND_IF_VERSION,
	                         1),
	                     &r),
	    STORE_ECONFLICT);
	assert_true(r.record.deleted);
	assert_int_equal(r.record.version, 2);
	store_write_result_fini(&r);
	/* The lease survives with its token; the expired one is still
	 * recognised as expired. */
	assert_int_equal(stt_apply0(fx->c, stt_lock("doc", "carl", 0)),
	    STORE_ELOCKED);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_token(stt_update("gone", "late",
	                                        STORE_PRECOND_UNCONDITIONAL,
	                                        0),
	                         &expired.token)),
	    STORE_ELOCK_EXPIRED);
	/* The request id is still remembered. */
	assert_int_equal(stt_apply(fx->c, upd, &r), STORE_OK);
	assert_true(r.replayed);
	assert_int_equal(r.record.version, 3);
	store_write_result_fini(&r);
	/* Counters continue. */
	assert_int_equal(stt_apply(fx->c, stt_lock("new", "dan", 0), &r),
	    STORE_OK);
	assert_int_equal(r.record.lock.fencing_token, 3);
	store_write_result_fini(&r);
	assert_int_equal(stt_apply(fx->c,
	                     stt_with_token(stt_update("doc", "v4",
	                                        STORE_PRECOND_IF_VERSION, 3),
	                         &lk.token),
	                     &r),
	    STORE_OK);
	assert_int_equal(r.record.revision, 9); /* after dan's lock, 8 */
	store_write_result_fini(&r);
	assert_int_equal(store_integrity_check(fx->c, NULL), STORE_OK);
	store_write_result_fini(&lk);
	store_write_result_fini(&expired);
}

static void
test_durability_normal_also_persists(void **state)
{
	stt_fx *fx = *state;

	store_conn_close(fx->c);
	store_close(fx->s);
	fx->cfg.durability = STORE_DURABILITY_NORMAL;
	assert_int_equal(store_open(&fx->cfg, &fx->s, NULL), STORE_OK);
	assert_int_equal(store_conn_open(fx->s, &fx->c, NULL), STORE_OK);
	(void) stt_put(fx->c, "k", "v");
	stt_fx_reopen(fx);
	assert_int_equal(stt_version(fx->c, "k"), 1);
}

/* spt_open_path tries store_open on path. */
static store_err
spt_open_path(const char *path, store_error *err)
{
	store_config cfg;
	store *s = NULL;
	store_err rv;

	store_config_default(&cfg);
	cfg.path = path;
	rv = store_open(&cfg, &s, err);
	store_close(s);
	return rv;
}

static void
test_open_refuses_files_that_are_not_ours(void **state)
{
	stt_fx *fx = *state;
	char path[400];
	sqlite3 *db;
	FILE *f;
	store_error err;

	/* Another application's SQLite database. */
	(void) snprintf(path, sizeof(path), "%s/other.db", fx->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
	                     "CREATE TABLE t(x); INSERT INTO t VALUES (1);",
	                     NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(spt_open_path(path, &err), STORE_EIO);
	assert_string_equal(err.field, "path");
	/* Its data was not touched. */
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "SELECT * FROM records", NULL, NULL,
	                     NULL),
	    SQLITE_ERROR);
	sqlite3_close(db);

	/* A text file. */
	(void) snprintf(path, sizeof(path), "%s/notes.txt", fx->dir);
	f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i < 200; i++) {
		fputs("this is not a database at all\n", f);
	}
	fclose(f);
	assert_int_equal(spt_open_path(path, &err), STORE_EIO);
	assert_true(strlen(err.message) > 0);

	/* A directory that does not exist. */
	(void) snprintf(path, sizeof(path), "%s/no/such/dir/x.db", fx->dir);
	assert_int_equal(spt_open_path(path, &err), STORE_EIO);
	assert_string_equal(err.field, "path");
}

static void
test_open_refuses_a_schema_newer_than_this_build(void **state)
{
	stt_fx *fx = *state;
	sqlite3 *db;
	store_error err;

	store_conn_close(fx->c);
	fx->c = NULL;
	store_close(fx->s);
	fx->s = NULL;
	assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 999", NULL,
	                     NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(store_open(&fx->cfg, &fx->s, &err), STORE_EIO);
	assert_null(fx->s);
	assert_non_null(strstr(err.message, "newer"));
}

/* spt_query_int reads a one-integer query from db. */
static int
spt_query_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	int v;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Schema v2 keyed request ids by id alone; v3 keys them (caller, id). A
 * v2 file opens, keeps its records, and forgets its ids (nobody knows
 * whose they were). */
static void
test_a_v2_database_migrates_to_caller_scoped_request_ids(void **state)
{
	stt_fx *fx = *state;
	sqlite3 *db;
	store_write_result r;
	static const char v2_requests[] =
	    "DROP TABLE requests0; DROP TABLE requests1;"
	    "CREATE TABLE requests0 (id BLOB NOT NULL PRIMARY KEY,"
	    " hash INTEGER NOT NULL, created_at INTEGER NOT NULL,"
	    " version INTEGER NOT NULL, revision INTEGER NOT NULL,"
	    " rec_created_at INTEGER NOT NULL, rec_updated_at INTEGER NOT NULL,"
	    " flags INTEGER NOT NULL, content_type TEXT NOT NULL,"
	    " updated_by TEXT NOT NULL, lock_owner TEXT,"
	    " lock_expires_at INTEGER, lock_fencing INTEGER, token BLOB)"
	    " WITHOUT ROWID;"
	    "CREATE TABLE requests1 (id BLOB NOT NULL PRIMARY KEY,"
	    " hash INTEGER NOT NULL, created_at INTEGER NOT NULL,"
	    " version INTEGER NOT NULL, revision INTEGER NOT NULL,"
	    " rec_created_at INTEGER NOT NULL, rec_updated_at INTEGER NOT NULL,"
	    " flags INTEGER NOT NULL, content_type TEXT NOT NULL,"
	    " updated_by TEXT NOT NULL, lock_owner TEXT,"
	    " lock_expires_at INTEGER, lock_fencing INTEGER, token BLOB)"
	    " WITHOUT ROWID;"
	    "INSERT INTO requests0 VALUES (CAST('old-id' AS BLOB), 42, 0, 1, 1,"
	    " 0, 0, 0, 'text/plain', '', NULL, NULL, NULL, NULL);"
	    /* v2's records (value inline) and history, from v4's tables. */
	    "CREATE TABLE r2 (key BLOB NOT NULL PRIMARY KEY,"
	    " version INTEGER NOT NULL, revision INTEGER NOT NULL,"
	    " deleted INTEGER NOT NULL, created_at INTEGER NOT NULL,"
	    " updated_at INTEGER NOT NULL, content_type TEXT NOT NULL,"
	    " updated_by TEXT NOT NULL, lock_owner TEXT, lock_token BLOB,"
	    " lock_expires_at INTEGER, lock_fencing INTEGER, value BLOB)"
	    " WITHOUT ROWID;"
	    "INSERT INTO r2 SELECT key, version, revision, deleted, created_at,"
	    " updated_at, content_type, updated_by, lock_owner, lock_token,"
	    " lock_expires_at, lock_fencing, (SELECT v.value FROM versions v"
	    " WHERE v.key = records.key AND v.version = records.version)"
	    " FROM records;"
	    "CREATE TABLE history (key BLOB NOT NULL, version INTEGER NOT NULL,"
	    " revision INTEGER NOT NULL, deleted INTEGER NOT NULL,"
	    " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
	    " content_type TEXT NOT NULL, updated_by TEXT NOT NULL, value BLOB,"
	    " PRIMARY KEY (key, version)) WITHOUT ROWID;"
	    "DROP TABLE versions; DROP TABLE records;"
	    "ALTER TABLE r2 RENAME TO records;"
	    /* v6's tokens. */
	    "DROP TABLE tokens;"
	    "ALTER TABLE meta DROP COLUMN auth_gen;"
	    /* v5's change log. */
	    "DROP TABLE changes;"
	    "ALTER TABLE meta DROP COLUMN compact_revision;"
	    "PRAGMA user_version = 2;";

	(void) stt_put(fx->c, "doc", "kept");
	store_conn_close(fx->c);
	fx->c = NULL;
	store_close(fx->s);
	fx->s = NULL;
	/* Turn the file back into what a v2 build left. */
	assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db, v2_requests, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	stt_fx_reopen(fx);
	assert_int_equal(stt_version(fx->c, "doc"), 1);
	/* The old id is gone: another request under it is applied. */
	assert_int_equal(stt_apply(fx->c,
	                     stt_with_rid(stt_update("doc", "new",
	                                      STORE_PRECOND_IF_VERSION, 1),
	                         "old-id"),
	                     &r),
	    STORE_OK);
	assert_false(r.replayed);
	store_write_result_fini(&r);
	/* And ids work, scoped, after the upgrade. */
	assert_int_equal(stt_apply(fx->c,
	                     stt_with_caller(stt_with_rid(stt_update("doc",
	                                                      "new",
	                                                      STORE_PRECOND_IF_VERSION,
	                                                      1),
	                                         "old-id"),
	                         "someone"),
	                     &r),
	    STORE_ECONFLICT);
	store_write_result_fini(&r);
	assert_int_equal(stt_apply(fx->c,
	                     stt_with_rid(stt_update("doc", "new",
	                                      STORE_PRECOND_IF_VERSION, 1),
	                         "old-id"),
	                     &r),
	    STORE_OK);
	assert_true(r.replayed);
	store_write_result_fini(&r);
	assert_int_equal(store_integrity_check(fx->c, NULL), STORE_OK);

	assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
	assert_int_equal(spt_query_int(db, "PRAGMA user_version"), 6);
	assert_int_equal(spt_query_int(db,
	                     "SELECT count(*) FROM pragma_table_info('requests1')"
	                     " WHERE name = 'caller' AND pk = 1"),
	    1);
	sqlite3_close(db);
}

/* spt_holder: a foreign connection that holds SQLite's write lock for a
 * while, as another process would. */
typedef struct spt_holder {
	const char *path;
	int hold_ms;
	atomic_int locked;
	sqlite3 *db;
} spt_holder;

static void *
spt_hold(void *arg)
{
	spt_holder *h = arg;
	struct timespec ts = {0, 0};

	ts.tv_sec = h->hold_ms / 1000;
	ts.tv_nsec = (long) (h->hold_ms % 1000) * 1000000L;
	(void) nanosleep(&ts, NULL);
	assert_int_equal(sqlite3_exec(h->db, "COMMIT", NULL, NULL, NULL),
	    SQLITE_OK);
	return NULL;
}

static void
test_a_foreign_write_lock_is_waited_out_not_reported_busy(void **state)
{
	stt_fx *fx = *state;
	spt_holder h;
	pthread_t t;
	store_conn *reader;
	store_record rec;

	(void) stt_put(fx->c, "k", "v1");
	memset(&h, 0, sizeof(h));
	h.path = fx->path;
	h.hold_ms = 300;
	assert_int_equal(sqlite3_open(fx->path, &h.db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h.db,
	                     "BEGIN IMMEDIATE; UPDATE meta SET revision = "
	                     "revision WHERE id = 0;",
	                     NULL, NULL, NULL),
	    SQLITE_OK);
	assert_int_equal(pthread_create(&t, NULL, spt_hold, &h), 0);

	/* Readers do not wait for the writer (WAL snapshot). */
	assert_int_equal(store_conn_open(fx->s, &reader, NULL), STORE_OK);
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(store_get(reader, "k", 1, 0, &rec, NULL), STORE_OK);
	stt_assert_value(&rec, "v1");
	store_record_fini(&rec);
	store_conn_close(reader);

	/* The write waits until the foreign lock goes, then succeeds. */
	assert_int_equal(stt_apply0(fx->c,
	                     stt_update("k", "v2", STORE_PRECOND_IF_VERSION,
	                         1)),
	    STORE_OK);
	assert_int_equal(pthread_join(t, NULL), 0);
	sqlite3_close(h.db);
	assert_int_equal(stt_version(fx->c, "k"), 2);
}

/* spt_foreign_lock opens path as another process would and takes the
 * write lock (BEGIN IMMEDIATE plus a write, as a sqlite3 shell would). */
static sqlite3 *
spt_foreign_lock(const char *path)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
	                     "BEGIN IMMEDIATE; UPDATE meta SET revision = "
	                     "revision WHERE id = 0;",
	                     NULL, NULL, NULL),
	    SQLITE_OK);
	return db;
}

static void
test_a_foreign_write_lock_past_busy_timeout_fails_the_batch_db_busy(
    void **state)
{
	store_limits lim = store_limits_default();
	stt_fx *fx;
	sqlite3 *foreign;
	store_write ws[2];
	store_write_result res[2];
	store_record rec;

	(void) state;
	lim.busy_timeout_ms = 200;
	fx = stt_fx_new(&lim, true);
	(void) stt_put(fx->c, "k", "v1");
	foreign = spt_foreign_lock(fx->path);

	ws[0] = stt_update("k", "v2", STORE_PRECOND_IF_VERSION, 1);
	ws[1] = stt_update("new", "n1", STORE_PRECOND_IF_ABSENT, 0);
	memset(res, 0, sizeof(res));
	assert_int_equal(store_apply_batch(fx->c, ws, 2, res), STORE_EBUSY);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(res[i].error.code, STORE_EBUSY);
		assert_non_null(strstr(res[i].error.message,
		    "busy_timeout_ms (200)"));
		store_write_result_fini(&res[i]);
	}
	assert_string_equal(store_reason(STORE_EBUSY), "DB_BUSY");
	/* A single write fails the same way. */
	assert_int_equal(stt_apply0(fx->c, ws[0]), STORE_EBUSY);

	/* Reads still work meanwhile (WAL snapshot) and see nothing new. */
	assert_int_equal(stt_version(fx->c, "k"), 1);
	assert_int_equal(stt_version(fx->c, "new"), 0);

	assert_int_equal(sqlite3_exec(foreign, "ROLLBACK", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(foreign);

	/* Nothing was half applied, and the store works again. */
	assert_int_equal(stt_revision(fx->c), 1);
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(store_get(fx->c, "k", 1, 0, &rec, NULL), STORE_OK);
	stt_assert_value(&rec, "v1");
	store_record_fini(&rec);
	memset(res, 0, sizeof(res));
	assert_int_equal(store_apply_batch(fx->c, ws, 2, res), STORE_OK);
	assert_int_equal(res[0].error.code, STORE_OK);
	assert_int_equal(res[1].error.code, STORE_OK);
	store_write_result_fini(&res[0]);
	store_write_result_fini(&res[1]);
	assert_int_equal(stt_version(fx->c, "k"), 2);
	assert_int_equal(stt_version(fx->c, "new"), 1);
	stt_fx_free(fx);
}

static void
test_cancelled_waits_fail_db_busy_at_once_naming_shutdown(void **state)
{
	stt_fx *fx = *state; /* default busy_timeout_ms: 5 s */
	sqlite3 *foreign;
	store_write_result r;

	(void) stt_put(fx->c, "k", "v1");
	foreign = spt_foreign_lock(fx->path);
	store_cancel_waits(fx->s);
	memset(&r, 0, sizeof(r));
	assert_int_equal(stt_apply(fx->c,
	                     stt_update("k", "v2", STORE_PRECOND_UNCONDITIONAL,
	                         0),
	                     &r),
	    STORE_EBUSY);
	assert_non_null(strstr(r.error.message, "shutting down"));
	store_write_result_fini(&r);
	assert_int_equal(sqlite3_exec(foreign, "ROLLBACK", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(foreign);
	/* Writes that need no wait still succeed. */
	(void) stt_put(fx->c, "k", "v2");
	assert_int_equal(stt_version(fx->c, "k"), 2);
}

static void
test_two_stores_on_one_file_share_it(void **state)
{
	stt_fx *fx = *state;
	store *s2;
	store_conn *c2;

	/* As two processes would: separate handles, one file. */
	assert_int_equal(store_open(&fx->cfg, &s2, NULL), STORE_OK);
	assert_int_equal(store_conn_open(s2, &c2, NULL), STORE_OK);
	(void) stt_put(fx->c, "a", "1");
	assert_int_equal(stt_version(c2, "a"), 1);
	(void) stt_put(c2, "a", "2");
	assert_int_equal(stt_version(fx->c, "a"), 2);
	assert_int_equal(stt_revision(fx->c), 2);
	store_conn_close(c2);
	store_close(s2);
}

static void
test_memory_stores_are_private(void **state)
{
	stt_fx *a = stt_fx_new(NULL, false);
	stt_fx *b = stt_fx_new(NULL, false);
	store_conn *a2;

	(void) state;
	(void) stt_put(a->c, "k", "v");
	assert_int_equal(stt_version(b->c, "k"), 0);
	/* But all connections of one store see the same data. */
	assert_int_equal(store_conn_open(a->s, &a2, NULL), STORE_OK);
	assert_int_equal(stt_version(a2, "k"), 1);
	store_conn_close(a2);
	stt_fx_free(a);
	stt_fx_free(b);
}

#define T(f) cmocka_unit_test_setup_teardown(f, stt_setup_file, stt_teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_reopen_finds_everything),
	    T(test_durability_normal_also_persists),
	    T(test_open_refuses_files_that_are_not_ours),
	    T(test_open_refuses_a_schema_newer_than_this_build),
	    T(test_a_foreign_write_lock_is_waited_out_not_reported_busy),
	    cmocka_unit_test(
	        test_a_foreign_write_lock_past_busy_timeout_fails_the_batch_db_busy),
	    T(test_cancelled_waits_fail_db_busy_at_once_naming_shutdown),
	    T(test_two_stores_on_one_file_share_it),
	    cmocka_unit_test(test_memory_stores_are_private),
	    T(test_a_v2_database_migrates_to_caller_scoped_request_ids),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
