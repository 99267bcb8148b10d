/*
 * store_schema.c - the SQLite schema and its versioned migrations.
 *
 * PRAGMA user_version holds the schema version; migration i turns version
 * i into i+1 and sets user_version in the same transaction, so a crash
 * mid-migration leaves the previous version intact. application_id marks
 * the file as ours: opening some other application's database fails
 * instead of adding our tables to it. A database newer than this build is
 * refused rather than guessed at.
 *
 * Layout decisions (v1):
 *   - Keys are BLOBs so that ORDER BY and range scans compare with
 *     memcmp: List's byte order and its prefix bound (prefix || x'ff',
 *     valid since UTF-8 never contains 0xff) need exactly that.
 *   - records and history are WITHOUT ROWID: one B-tree keyed by the key
 *     instead of a rowid table plus a unique index, so a write touches
 *     one tree per table. `value` is the last column so that reading the
 *     metadata of a row never walks a large value's overflow pages.
 *   - records keeps one row per key forever: deleting leaves a tombstone
 *     (deleted = 1) carrying the last version, so versions are never
 *     reused. A key that was locked before it existed has a placeholder
 *     row with version 0 and deleted = 1 (not live, not listed).
 *   - history holds superseded versions (tombstones included, so a
 *     missing row means "compacted", never "was a tombstone").
 *   - meta is a single row: the store-wide revision and fencing counters.
 *
 * v2: request ids live in two generation tables, requests0 and requests1,
 * each a WITHOUT ROWID B-tree keyed by the id. Generation g = now / ttl
 * writes into requests{g % 2}; moving to a new generation empties the
 * table it takes over, which holds ids at least one ttl old. A write
 * touches one B-tree (v1: a rowid table plus a unique index, and a
 * pruning query per commit), and clients' ids (a prefix and a counter)
 * land on neighbouring pages. meta.req_gen is the current generation.
 *
 * v3: request ids are scoped by caller (the RPC envelope's client name
 * today, the authenticated principal later): the generation tables are
 * keyed (caller, id), so the same id from two callers is two requests
 * and a replayed Lock never hands its token to another caller. A caller's
 * ids still share neighbouring pages.
 *
 * v4: values leave the WITHOUT ROWID tables (SQLite's guidance: rows
 * there should stay under ~1/20 of a page). records becomes a small head
 * row per key: metadata, lock columns, the head version, the tombstone
 * flag and `kept`, the history window its versions were last trimmed to.
 * Every version, the head's included, is one row of the rowid table
 * versions (key, version) holding its value, written once. History is
 * the rows of versions below the head; a write adds one row, updates the
 * head and point-deletes the version that fell out of the window. Lock
 * and Unlock update only the head row, so they never rewrite a value.
 * Migrating keeps every record, version, history entry, tombstone, lock
 * placeholder, lease and request id (a v2 file's ids were already
 * forgotten by 2 -> 3).
 *
 * v5: the change log of DESIGN §9. changes holds one row per revision
 * (revision is the rowid, so appending is one B-tree append plus one
 * index entry): the key, the event type (store_event_type), the store
 * clock at the change (`at`, what compaction's retain_ms compares) and
 * the record's metadata after the change, lock included, but no value:
 * a read with_values takes it from versions (key, version) while the
 * history keeps it. changes_key (key, revision) serves a one-key watch
 * without scanning other keys' events; a prefix or all-keys watch walks
 * the rowid from its cursor. meta.compact_revision is the oldest cursor
 * the log serves; a migrated store starts it at its revision (nothing
 * older was logged). records_lock_expiry, a partial index over leases
 * not yet swept (lock_owner set), lets store_sweep_expired find expired
 * leases and the next expiry without a scan; Update and Delete never
 * change its columns, so it costs them nothing. A swept lease keeps its
 * token, expiry and fencing token with lock_owner NULL, so its former
 * holder is still told LOCK_EXPIRED.
 *
 * v6: authentication tokens (DESIGN §11). tokens holds one row per token
 * ever made (a name is never reused, so revoking only sets
 * revoked_at_ms): the SHA-256 of its secret, never the secret, UNIQUE so
 * that a secret names one token; its canonical grants text. meta.auth_gen
 * moves with every create and revoke, in the same transaction, so a node
 * caching the tokens re-reads them only when it moved.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "store_sqlite_int.h"

/* 'dsyc' */
#define STORE_SCHEMA_APPLICATION_ID 0x64737963

static const char *const store_schema_migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE meta ("
    " id INTEGER PRIMARY KEY CHECK (id = 0),"
    " revision INTEGER NOT NULL,"
    " fencing INTEGER NOT NULL);"
    "INSERT INTO meta (id, revision, fencing) VALUES (0, 0, 0);"
    "CREATE TABLE records ("
    " key BLOB NOT NULL PRIMARY KEY,"
    " version INTEGER NOT NULL,"
    " revision INTEGER NOT NULL,"
    " deleted INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL,"
    " content_type TEXT NOT NULL,"
    " updated_by TEXT NOT NULL,"
    " lock_owner TEXT,"
    " lock_token BLOB,"
    " lock_expires_at INTEGER,"
    " lock_fencing INTEGER,"
    " value BLOB"
    ") WITHOUT ROWID;"
    "CREATE TABLE history ("
    " key BLOB NOT NULL,"
    " version INTEGER NOT NULL,"
    " revision INTEGER NOT NULL,"
    " deleted INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL,"
    " content_type TEXT NOT NULL,"
    " updated_by TEXT NOT NULL,"
    " value BLOB,"
    " PRIMARY KEY (key, version)"
    ") WITHOUT ROWID;"
    "CREATE TABLE requests ("
    " seq INTEGER PRIMARY KEY,"
    " id BLOB NOT NULL UNIQUE,"
    " hash INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " version INTEGER NOT NULL,"
    " revision INTEGER NOT NULL,"
    " rec_created_at INTEGER NOT NULL,"
    " rec_updated_at INTEGER NOT NULL,"
    " flags INTEGER NOT NULL,"
    " content_type TEXT NOT NULL,"
    " updated_by TEXT NOT NULL,"
    " lock_owner TEXT,"
    " lock_expires_at INTEGER,"
    " lock_fencing INTEGER,"
    " token BLOB);"
    "PRAGMA application_id = 1685289315;" /* STORE_SCHEMA_APPLICATION_ID */
    "PRAGMA user_version = 1;",
    /* 1 -> 2 */
#define STORE_SCHEMA_REQ_COLUMNS                                              \
	" id BLOB NOT NULL PRIMARY KEY,"                                      \
	" hash INTEGER NOT NULL,"                                             \
	" created_at INTEGER NOT NULL,"                                       \
	" version INTEGER NOT NULL,"                                          \
	" revision INTEGER NOT NULL,"                                         \
	" rec_created_at INTEGER NOT NULL,"                                   \
	" rec_updated_at INTEGER NOT NULL,"                                   \
	" flags INTEGER NOT NULL,"                                            \
	" content_type TEXT NOT NULL,"                                        \
	" updated_by TEXT NOT NULL,"                                          \
	" lock_owner TEXT,"                                                   \
	" lock_expires_at INTEGER,"                                           \
	" lock_fencing INTEGER,"                                              \
	" token BLOB"
    "CREATE TABLE requests0 (" STORE_SCHEMA_REQ_COLUMNS ") WITHOUT ROWID;"
    "CREATE TABLE requests1 (" STORE_SCHEMA_REQ_COLUMNS ") WITHOUT ROWID;"
    "INSERT INTO requests0 SELECT id, hash, created_at, version, revision,"
    " rec_created_at, rec_updated_at, flags, content_type, updated_by,"
    " lock_owner, lock_expires_at, lock_fencing, token FROM requests;"
    "DROP TABLE requests;"
    /* -1: no generation yet; the first write sets it (and may empty the
     * table it takes, forgetting ids from before the upgrade early). */
    "ALTER TABLE meta ADD COLUMN req_gen INTEGER NOT NULL DEFAULT -1;"
    "PRAGMA user_version = 2;",
    /* 2 -> 3 */
#define STORE_SCHEMA_REQ_COLUMNS_V3                                           \
	" caller BLOB NOT NULL,"                                              \
	" id BLOB NOT NULL,"                                                  \
	" hash INTEGER NOT NULL,"                                             \
	" created_at INTEGER NOT NULL,"                                       \
	" version INTEGER NOT NULL,"                                          \
	" revision INTEGER NOT NULL,"                                         \
	" rec_created_at INTEGER NOT NULL,"                                   \
	" rec_updated_at INTEGER NOT NULL,"                                   \
	" flags INTEGER NOT NULL,"                                            \
	" content_type TEXT NOT NULL,"                                        \
	" updated_by TEXT NOT NULL,"                                          \
	" lock_owner TEXT,"                                                   \
	" lock_expires_at INTEGER,"                                           \
	" lock_fencing INTEGER,"                                              \
	" token BLOB,"                                                        \
	" PRIMARY KEY (caller, id)"
    /* The ids remembered before the upgrade are forgotten: nobody knows
     * whose they were, and handing one to the wrong caller is what this
     * version fixes. */
    "DROP TABLE requests0;"
    "DROP TABLE requests1;"
    "CREATE TABLE requests0 (" STORE_SCHEMA_REQ_COLUMNS_V3 ") WITHOUT ROWID;"
    "CREATE TABLE requests1 (" STORE_SCHEMA_REQ_COLUMNS_V3 ") WITHOUT ROWID;"
    "PRAGMA user_version = 3;",
    /* 3 -> 4 */
    "CREATE TABLE versions ("
    " key BLOB NOT NULL,"
    " version INTEGER NOT NULL,"
    " revision INTEGER NOT NULL,"
    " deleted INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL,"
    " content_type TEXT NOT NULL,"
    " updated_by TEXT NOT NULL,"
    " value BLOB,"
    " PRIMARY KEY (key, version));"
    "INSERT INTO versions (key, version, revision, deleted, created_at,"
    " updated_at, content_type, updated_by, value)"
    " SELECT key, version, revision, deleted, created_at, updated_at,"
    " content_type, updated_by, value FROM history;"
    /* Every head version but a lock placeholder's (version 0). */
    "INSERT INTO versions (key, version, revision, deleted, created_at,"
    " updated_at, content_type, updated_by, value)"
    " SELECT key, version, revision, deleted, created_at, updated_at,"
    " content_type, updated_by, value FROM records WHERE version > 0;"
    "CREATE TABLE heads ("
    " key BLOB NOT NULL PRIMARY KEY,"
    " version INTEGER NOT NULL,"
    " revision INTEGER NOT NULL,"
    " deleted INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL,"
    " content_type TEXT NOT NULL,"
    " updated_by TEXT NOT NULL,"
    " lock_owner TEXT,"
    " lock_token BLOB,"
    " lock_expires_at INTEGER,"
    " lock_fencing INTEGER,"
    " kept INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    /* kept: the old history was trimmed to a window nobody recorded, so
     * the largest one: each key's next write trims its range once. */
    "INSERT INTO heads (key, version, revision, deleted, created_at,"
    " updated_at, content_type, updated_by, lock_owner, lock_token,"
    " lock_expires_at, lock_fencing, kept)"
    " SELECT key, version, revision, deleted, created_at, updated_at,"
    " content_type, updated_by, lock_owner, lock_token, lock_expires_at,"
    " lock_fencing, 9223372036854775807 FROM records;"
    "DROP TABLE history;"
    "DROP TABLE records;"
    "ALTER TABLE heads RENAME TO records;"
    "PRAGMA user_version = 4;",
    /* 4 -> 5 */
    "CREATE TABLE changes ("
    " revision INTEGER PRIMARY KEY,"
    " key BLOB NOT NULL,"
    " type INTEGER NOT NULL,"
    " at INTEGER NOT NULL,"
    " version INTEGER NOT NULL,"
    " deleted INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL,"
    " content_type TEXT NOT NULL,"
    " updated_by TEXT NOT NULL,"
    " lock_owner TEXT,"
    " lock_expires_at INTEGER,"
    " lock_fencing INTEGER);"
    "CREATE INDEX changes_key ON changes (key, revision);"
    "CREATE INDEX records_lock_expiry ON records (lock_expires_at)"
    " WHERE lock_owner IS NOT NULL;"
    /* The changes before the upgrade were never logged: a cursor from
     * before it is compacted. */
    "ALTER TABLE meta ADD COLUMN compact_revision INTEGER NOT NULL"
    " DEFAULT 0;"
    "UPDATE meta SET compact_revision = revision;"
    "PRAGMA user_version = 5;",
    /* 5 -> 6 */
    "CREATE TABLE tokens ("
    " name TEXT NOT NULL PRIMARY KEY,"
    " hash BLOB NOT NULL UNIQUE,"
    " grants TEXT NOT NULL,"
    " created_at_ms INTEGER NOT NULL,"
    " revoked_at_ms INTEGER);"
    "ALTER TABLE meta ADD COLUMN auth_gen INTEGER NOT NULL DEFAULT 0;"
    "PRAGMA user_version = 6;",
};

#define STORE_SCHEMA_VERSION                                                  \
	((int) (sizeof(store_schema_migrations) /                             \
	    sizeof(store_schema_migrations[0])))

/* store_schema_int runs a one-integer query. */
static store_err
store_schema_int(sqlite3 *db, const char *sql, int *out, store_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if ((rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL)) != SQLITE_OK ||
	    (rc = sqlite3_step(st)) != SQLITE_ROW) {
		store_err rv = store_error_set(err,
		    (rc & 0xff) == SQLITE_NOMEM ? STORE_ENOMEM : STORE_EIO, "",
		    "reading the schema: %s", sqlite3_errmsg(db));

		(void) sqlite3_finalize(st); /* the error is reported */
		return rv;
	}
	*out = sqlite3_column_int(st, 0);
	(void) sqlite3_finalize(st); /* a finished query cannot fail here */
	return STORE_OK;
}

static store_err
store_schema_exec(sqlite3 *db, const char *sql, store_error *err)
{
	char *msg = NULL;
	int rc;
	store_err rv = STORE_OK;

	if ((rc = sqlite3_exec(db, sql, NULL, NULL, &msg)) != SQLITE_OK) {
		rv = store_error_set(err,
		    (rc & 0xff) == SQLITE_NOMEM ? STORE_ENOMEM : STORE_EIO, "",
		    "migrating the schema: %s",
		    msg != NULL ? msg : sqlite3_errstr(rc));
	}
	sqlite3_free(msg);
	return rv;
}

store_err
store_schema_migrate(sqlite3 *db, store_error *err)
{
	int version;
	int app_id;
	int ntables;
	store_err rv;

	/* IMMEDIATE: two processes opening a new file at once must not both
	 * run migration 0 -> 1. */
	if ((rv = store_schema_exec(db, "BEGIN IMMEDIATE", err)) != STORE_OK) {
		return rv;
	}
	if ((rv = store_schema_int(db, "PRAGMA user_version", &version,
	         err)) != STORE_OK ||
	    (rv = store_schema_int(db, "PRAGMA application_id", &app_id,
	         err)) != STORE_OK ||
	    (rv = store_schema_int(db, "SELECT count(*) FROM sqlite_schema",
	         &ntables, err)) != STORE_OK) {
		goto out;
	}
	if (app_id != 0 && app_id != STORE_SCHEMA_APPLICATION_ID) {
		rv = store_error_set(err, STORE_EIO, "path",
		    "the file belongs to another application (application_id "
		    "%d)", app_id);
		goto out;
	}
	if (version == 0 && ntables > 0) {
		rv = store_error_set(err, STORE_EIO, "path",
		    "the file is an SQLite database but not a datasync one");
		goto out;
	}
	if (version > STORE_SCHEMA_VERSION) {
		rv = store_error_set(err, STORE_EIO, "path",
		    "the database schema (version %d) is newer than this "
		    "build (version %d)",
		    version, STORE_SCHEMA_VERSION);
		goto out;
	}
	for (int v = version; v < STORE_SCHEMA_VERSION; v++) {
		if ((rv = store_schema_exec(db, store_schema_migrations[v],
		         err)) != STORE_OK) {
			goto out;
		}
	}
	rv = store_schema_exec(db, "COMMIT", err);
out:
	if (rv != STORE_OK && !sqlite3_get_autocommit(db)) {
		/* Best effort: closing the connection rolls back anyway. */
		(void) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	}
	return rv;
}
