/*
 * store_migrate_test.c - opening a database written by an older build
 * migrates it to the current schema in one transaction and keeps every
 * record, version, history entry, tombstone, lock placeholder, lease and
 * request id (DESIGN §4's rules hold across the upgrade).
 *
 * The fixtures are real files: tests/fixtures/schema2.db was written by
 * the release 80a70b6 (schema 2), schema3.db by main at 0175b77
 * (schema 3), schema5.db by main at bd98d66 (schema 5, before tokens),
 * all by tests/fixtures/make-schema2.sh driving datasyncd with the CLI.
 * Each holds the same history (see that script).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store_test_util.h"

#ifndef DS_FIXTURE_DIR
#error "DS_FIXTURE_DIR must name tests/fixtures"
#endif

/* The CLI names itself this way in the RPC envelope: v3 ids are its. */
#define SMT_CLI_CALLER "datasync-cli"

/* smt_copy copies fixture name into dir/store.db. */
static void
smt_copy(const char *name, const char *dst)
{
	char src[512];
	char buf[4096];
	FILE *in;
	FILE *out;
	size_t n;

	(void) snprintf(src, sizeof(src), "%s/%s", DS_FIXTURE_DIR, name);
	assert_non_null(in = fopen(src, "rb"));
	assert_non_null(out = fopen(dst, "wb"));
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
		assert_int_equal(fwrite(buf, 1, n, out), n);
	}
	assert_int_equal(fclose(out), 0);
	(void) fclose(in);
}

/* smt_sql_blob reads a one-blob query (exactly STORE_TOKEN_BYTES). */
static void
smt_token_of(const char *path, const char *key, store_token *out)
{
	sqlite3 *db;
	sqlite3_stmt *st;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
	                     "SELECT lock_token FROM records"
	                     " WHERE key = CAST(?1 AS BLOB)",
	                     -1, &st, NULL),
	    SQLITE_OK);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_bytes(st, 0), STORE_TOKEN_BYTES);
	memcpy(out->b, sqlite3_column_blob(st, 0), STORE_TOKEN_BYTES);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static int
smt_query_int(const char *path, const char *sql, char *text, size_t cap)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int v;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int(st, 0);
	if (text != NULL) {
		(void) snprintf(text, cap, "%s",
		    (const char *) sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* smt_open opens a copy of fixture name with the fake clock moved to just
 * after the fixture was written (its leases and ids are then live), and
 * returns the lock token "doc" carried before the upgrade. */
static stt_fx *
smt_open(const char *name, store_token *doc_token)
{
	stt_fx *fx = calloc(1, sizeof(*fx));
	store_record rec;
	store_error err;

	assert_non_null(fx);
	ds_fake_clock_init(&fx->clock, STT_T0);
	store_config_default(&fx->cfg);
	fx->cfg.clock = &fx->clock.base;
	assert_int_equal(ds_test_tmpdir(fx->dir, sizeof(fx->dir)), 0);
	(void) snprintf(fx->path, sizeof(fx->path), "%s/store.db", fx->dir);
	fx->cfg.path = fx->path;
	smt_copy(name, fx->path);
	smt_token_of(fx->path, "doc", doc_token);
	if (store_open(&fx->cfg, &fx->s, &err) != STORE_OK) {
		fail_msg("store_open: %s", err.message);
	}
	assert_int_equal(store_conn_open(fx->s, &fx->c, &err), STORE_OK);
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(store_get(fx->c, "doc", 3, 0, &rec, NULL), STORE_OK);
	ds_fake_clock_advance(&fx->clock, rec.updated_at_ms - STT_T0 + 1000);
	store_record_fini(&rec);
	return fx;
}

static void
smt_assert_get(store_conn *c, const char *key, uint64_t v, store_err code,
    const char *value)
{
	store_record rec;

	memset(&rec, 0, sizeof(rec));
	assert_int_equal(store_get(c, key, strlen(key), v, &rec, NULL), code);
	if (code == STORE_OK) {
		stt_assert_value(&rec, value);
	}
	store_record_fini(&rec);
}

/* smt_changes reads the whole change log after `after` and checks the
 * outcome, the store revision, that compact_revision is the migrated
 * revision (8) and that n events follow `after` without a gap. */
static void
smt_changes(store_conn *c, uint64_t after, store_err want, uint64_t revision,
    size_t n)
{
	store_changes_req req;
	store_changes_page page;

	memset(&req, 0, sizeof(req));
	memset(&page, 0, sizeof(page));
	req.prefix = true;
	req.after = after;
	req.limit = 100;
	assert_int_equal(store_changes_read(c, &req, &page, NULL), want);
	assert_int_equal(page.revision, revision);
	assert_int_equal(page.compact_revision, 8);
	assert_int_equal(page.n, n);
	for (size_t i = 0; i < page.n; i++) {
		assert_int_equal(page.events[i].revision, after + 1 + i);
	}
	store_changes_page_fini(&page);
}

/* smt_check_schema: the file is at the current schema, sound, and has
 * the (empty) token table of v6 at auth generation 0, which works. */
static void
smt_check_schema(stt_fx *fx)
{
	store_auth_token *ts = NULL;
	uint8_t hash[32] = {1, 2, 3};
	uint64_t gen = 99;
	size_t n = 99;
	char text[64];

	assert_int_equal(smt_query_int(fx->path, "PRAGMA user_version", NULL,
	                     0),
	    6);
	(void) smt_query_int(fx->path, "PRAGMA integrity_check", text,
	    sizeof(text));
	assert_string_equal(text, "ok");
	assert_int_equal(store_integrity_check(fx->c, NULL), STORE_OK);
	assert_int_equal(store_auth_list(fx->c, &ts, &n, &gen, NULL), STORE_OK);
	assert_int_equal(n, 0);
	assert_int_equal(gen, 0);
	assert_int_equal(store_auth_create(fx->c, "ci", hash, "read:", NULL,
	                     NULL),
	    STORE_OK);
	assert_int_equal(store_auth_generation(fx->c, &gen, NULL), STORE_OK);
	assert_int_equal(gen, 1);
}

/* smt_check_data checks what both fixtures hold, then that the rules go
 * on from there: versions, revision and fencing continue, tombstones and
 * leases are enforced. */
static void
smt_check_data(stt_fx *fx, const store_token *doc_token)
{
	store_write_result r;
	store_record rec;

	smt_check_schema(fx);
	assert_int_equal(stt_revision(fx->c), 8);
	/* The change log starts at the migrated store's revision: nothing
	 * before it was logged, so older cursors are compacted. */
	smt_changes(fx->c, 8, STORE_OK, 8, 0);
	smt_changes(fx->c, 7, STORE_EREV_COMPACTED, 8, 0);
	smt_changes(fx->c, 0, STORE_EREV_COMPACTED, 8, 0);

	/* doc: three versions, the last by carol, locked by ann. */
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(store_get(fx->c, "doc", 3, 0, &rec, NULL), STORE_OK);
	assert_int_equal(rec.version, 3);
	assert_int_equal(rec.revision, 3);
	stt_assert_value(&rec, "v3");
	assert_string_equal(rec.content_type, "text/plain");
	assert_string_equal(rec.updated_by, "carol");
	assert_true(rec.locked);
	assert_string_equal(rec.lock.owner, "ann");
	assert_int_equal(rec.lock.fencing_token, 1);
	store_record_fini(&rec);
	smt_assert_get(fx->c, "doc", 1, STORE_OK, "v1");
	smt_assert_get(fx->c, "doc", 2, STORE_OK, "v2");
	smt_assert_get(fx->c, "doc", 4, STORE_ENOTFOUND, NULL);

	/* gone: created, deleted, created again; dead: a tombstone. */
	smt_assert_get(fx->c, "gone", 0, STORE_OK, "back");
	assert_int_equal(stt_version(fx->c, "gone"), 3);
	smt_assert_get(fx->c, "gone", 1, STORE_OK, "x");
	smt_assert_get(fx->c, "gone", 2, STORE_ENOTFOUND, NULL);
	smt_assert_get(fx->c, "dead", 0, STORE_ENOTFOUND, NULL);
	smt_assert_get(fx->c, "dead", 1, STORE_OK, "x");
	assert_int_equal(stt_apply(fx->c,
	                     stt_update("dead", "y", STORE_PRECOND_IF_VERSION,
	                         2),
	                     &r),
	    STORE_ECONFLICT);
	assert_non_null(strstr(r.error.message, "deleted at version 2"));
	store_write_result_fini(&r);

	/* ghost: a lock placeholder, bob's lease live. */
	smt_assert_get(fx->c, "ghost", 0, STORE_ENOTFOUND, NULL);
	assert_int_equal(stt_apply(fx->c, stt_lock("ghost", "eve", 1000), &r),
	    STORE_ELOCKED);
	store_write_result_fini(&r);

	/* The lease is enforced: no write without the token, one with it. */
	assert_int_equal(stt_apply0(fx->c,
	                     stt_update("doc", "v4", STORE_PRECOND_IF_VERSION,
	                         3)),
	    STORE_ELOCKED);
	assert_int_equal(stt_apply(fx->c,
	                     stt_with_token(stt_update("doc", "v4",
	                                        STORE_PRECOND_IF_VERSION, 3),
	                         doc_token),
	                     &r),
	    STORE_OK);
	assert_int_equal(r.record.version, 4);
	assert_int_equal(r.record.revision, 9);
	store_write_result_fini(&r);
	smt_assert_get(fx->c, "doc", 3, STORE_OK, "v3");
	assert_int_equal(stt_apply0(fx->c, stt_unlock("doc", doc_token)),
	    STORE_OK);

	/* Versions are never reused; fencing continues after bob's 2. */
	assert_int_equal(stt_apply(fx->c,
	                     stt_update("dead", "again", STORE_PRECOND_IF_ABSENT,
	                         0),
	                     &r),
	    STORE_OK);
	assert_int_equal(r.record.version, 3);
	store_write_result_fini(&r);
	assert_int_equal(stt_apply(fx->c, stt_lock("gone", "dan", 1000), &r),
	    STORE_OK);
	assert_int_equal(r.record.lock.fencing_token, 3);
	store_write_result_fini(&r);
	/* Update, Unlock, Update, Lock: logged from the migrated revision
	 * on, gapless. */
	smt_changes(fx->c, 8, STORE_OK, 12, 4);
	assert_int_equal(store_integrity_check(fx->c, NULL), STORE_OK);
}

static void
test_a_release_schema2_file_keeps_everything(void **state)
{
	store_token tok;
	store_write_result r;
	stt_fx *fx;

	(void) state;
	fx = smt_open("schema2.db", &tok);
	smt_check_data(fx, &tok);
	/* v2's ids had no caller; v3 forgot them (store_schema.c): the lock
	 * under rid-lock-ghost is not replayed but decided afresh. */
	assert_int_equal(stt_apply(fx->c,
	                     stt_with_rid(stt_lock("ghost", "bob", 3600000),
	                         "rid-lock-ghost"),
	                     &r),
	    STORE_ELOCKED);
	assert_false(r.replayed);
	store_write_result_fini(&r);
	stt_fx_free(fx);
}

static void
test_a_schema3_file_keeps_everything_and_replays_its_ids(void **state)
{
	store_token tok;
	store_write_result r;
	stt_fx *fx;

	(void) state;
	fx = smt_open("schema3.db", &tok);
	/* Replays first: the checks below change doc and ghost. */
	assert_int_equal(stt_apply(fx->c,
	                     stt_with_caller(stt_with_rid(stt_lock("ghost",
	                                                      "bob", 3600000),
	                                         "rid-lock-ghost"),
	                         SMT_CLI_CALLER),
	                     &r),
	    STORE_OK);
	assert_true(r.replayed);
	assert_int_equal(r.record.version, 0);
	assert_int_equal(r.record.lock.fencing_token, 2);
	store_write_result_fini(&r);
	assert_int_equal(stt_apply(fx->c,
	                     stt_with_caller(stt_with_rid(stt_lock("doc", "ann",
	                                                      3600000),
	                                         "rid-lock-doc"),
	                         SMT_CLI_CALLER),
	                     &r),
	    STORE_OK);
	assert_true(r.replayed);
	assert_memory_equal(r.token.b, tok.b, STORE_TOKEN_BYTES);
	store_write_result_fini(&r);
	assert_int_equal(stt_apply(fx->c,
	                     stt_with_caller(
	                         stt_with_rid(stt_with_author(
	                                          stt_update("doc", "v3",
	                                              STORE_PRECOND_IF_VERSION,
	                                              2),
	                                          "carol"),
	                             "rid-doc-3"),
	                         SMT_CLI_CALLER),
	                     &r),
	    STORE_OK);
	assert_true(r.replayed);
	assert_int_equal(r.record.version, 3);
	store_write_result_fini(&r);
	/* Another request under a remembered id is refused... */
	assert_int_equal(stt_apply(fx->c,
	                     stt_with_caller(stt_with_rid(stt_update("doc", "no",
	                                                      STORE_PRECOND_IF_VERSION,
	                                                      1),
	                                         "rid-doc-1"),
	                         SMT_CLI_CALLER),
	                     &r),
	    STORE_EREQUEST_ID_REUSED);
	store_write_result_fini(&r);
	/* ...and another caller's id is its own. */
	assert_int_equal(stt_apply(fx->c,
	                     stt_with_caller(stt_with_rid(stt_lock("doc", "ann",
	                                                      3600000),
	                                         "rid-lock-doc"),
	                         "someone-else"),
	                     &r),
	    STORE_ELOCKED);
	assert_false(r.replayed);
	store_write_result_fini(&r);
	smt_check_data(fx, &tok);
	stt_fx_free(fx);
}

/* A schema 5 file (the change log, no tokens) gains the token table and
 * keeps its log: every revision since the start, nothing compacted. */
static void
test_a_schema5_file_keeps_its_log_and_gains_tokens(void **state)
{
	store_changes_req req;
	store_changes_page page;
	store_write_result r;
	store_record rec;
	store_token tok;
	stt_fx *fx;

	(void) state;
	fx = smt_open("schema5.db", &tok);
	smt_check_schema(fx);
	assert_int_equal(stt_revision(fx->c), 10);
	memset(&req, 0, sizeof(req));
	memset(&page, 0, sizeof(page));
	req.prefix = true;
	req.limit = 100;
	assert_int_equal(store_changes_read(fx->c, &req, &page, NULL),
	    STORE_OK);
	assert_int_equal(page.compact_revision, 0);
	assert_int_equal(page.n, 10);
	for (size_t i = 0; i < page.n; i++) {
		assert_int_equal(page.events[i].revision, 1 + i);
	}
	store_changes_page_fini(&page);
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(store_get(fx->c, "doc", 3, 0, &rec, NULL), STORE_OK);
	assert_int_equal(rec.version, 3);
	stt_assert_value(&rec, "v3");
	assert_string_equal(rec.updated_by, "carol");
	assert_true(rec.locked);
	assert_string_equal(rec.lock.owner, "ann");
	store_record_fini(&rec);
	smt_assert_get(fx->c, "doc", 1, STORE_OK, "v1");
	smt_assert_get(fx->c, "dead", 0, STORE_ENOTFOUND, NULL);
	/* Its request ids replay. */
	assert_int_equal(stt_apply(fx->c,
	                     stt_with_caller(stt_with_rid(stt_lock("doc", "ann",
	                                                      3600000),
	                                         "rid-lock-doc"),
	                         SMT_CLI_CALLER),
	                     &r),
	    STORE_OK);
	assert_true(r.replayed);
	assert_memory_equal(r.token.b, tok.b, STORE_TOKEN_BYTES);
	store_write_result_fini(&r);
	/* Writes go on from there, logged without a gap. */
	assert_int_equal(stt_apply(fx->c,
	                     stt_with_token(stt_update("doc", "v4",
	                                        STORE_PRECOND_IF_VERSION, 3),
	                         &tok),
	                     &r),
	    STORE_OK);
	assert_int_equal(r.record.version, 4);
	assert_int_equal(r.record.revision, 11);
	store_write_result_fini(&r);
	stt_fx_free(fx);
}

/* A file whose migration fails midway is left as it was: one
 * transaction. A history row at the head's version (impossible in a
 * sound file) makes 3 -> 4 fail on versions' primary key. */
static void
test_a_migration_that_fails_changes_nothing(void **state)
{
	char dir[256];
	char path[320];
	store_config cfg;
	store_error err;
	sqlite3 *db;
	store *s = NULL;

	(void) state;
	assert_int_equal(ds_test_tmpdir(dir, sizeof(dir)), 0);
	(void) snprintf(path, sizeof(path), "%s/store.db", dir);
	smt_copy("schema3.db", path);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
	                     "INSERT INTO history SELECT key, version, revision,"
	                     " deleted, created_at, updated_at, content_type,"
	                     " updated_by, value FROM records"
	                     " WHERE key = CAST('doc' AS BLOB)",
	                     NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	store_config_default(&cfg);
	cfg.path = path;
	assert_int_equal(store_open(&cfg, &s, &err), STORE_EIO);
	assert_null(s);
	assert_non_null(strstr(err.message, "migrating the schema"));
	assert_int_equal(smt_query_int(path, "PRAGMA user_version", NULL, 0),
	    3);
	assert_int_equal(smt_query_int(path,
	                     "SELECT count(*) FROM sqlite_schema"
	                     " WHERE name IN ('versions', 'heads')",
	                     NULL, 0),
	    0);
	assert_int_equal(smt_query_int(path,
	                     "SELECT count(*) FROM history", NULL, 0),
	    6);
	ds_test_rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_a_release_schema2_file_keeps_everything),
	    cmocka_unit_test(
	        test_a_schema3_file_keeps_everything_and_replays_its_ids),
	    cmocka_unit_test(test_a_schema5_file_keeps_its_log_and_gains_tokens),
	    cmocka_unit_test(test_a_migration_that_fails_changes_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
