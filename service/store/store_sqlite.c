/*
 * store_sqlite.c - the SQLite backend: connections, pragmas, prepared
 * statements, busy handling, the checkpointer and the vtable. Reads,
 * request ids, the write rules and batches live in the other
 * store_sqlite_*.c files (see store_sqlite_int.h).
 *
 * Concurrency model. Each store_conn is one sqlite3 handle used by one
 * thread at a time (opened NOMUTEX). On a file the journal is WAL, so a
 * reader works on a snapshot and never waits for a writer. Writers take
 * the store's write_mu and then BEGIN IMMEDIATE: within a process they
 * queue on the mutex instead of polling SQLite's lock, and against other
 * processes the busy handler retries with short sleeps until the call's
 * busy_timeout_ms has passed (or store_cancel_waits was called); then the
 * call fails with STORE_EBUSY. A batch meets BUSY at BEGIN, before it
 * changed anything, so nothing is half applied. Because every write
 * transaction takes the RESERVED lock up front, a writer can never be
 * refused for holding a stale snapshot (SQLITE_BUSY_SNAPSHOT).
 *
 * ":memory:" is a private, named shared-cache in-memory database (so every
 * connection of the store sees the same data). It has no WAL; its tables
 * are locked per connection, so there reads take write_mu as well and
 * simply take turns with writes. A "keeper" connection holds the database
 * alive between connections.
 *
 * Writes. A batch is one transaction (store_sqlite_batch.c). Its writes
 * run without savepoints: every refusal (conflict, lock, request id)
 * happens before a write changes anything. A write that fails after
 * changing something (out of memory, disk full) makes the batch roll back
 * and run again with a savepoint per write, so that write fails alone.
 * The store-wide revision and fencing counters are read once at BEGIN,
 * advanced in memory, and written back once before COMMIT. Per write (an
 * Update with a request id, schema 4): one request-id lookup, one read
 * of the head row, the version's INSERT (the value, once), the head's
 * UPDATE, the point delete of the version that left the history window,
 * the request-id insert. Lock and Unlock: the lookup, the head read, the
 * head's UPDATE, the insert.
 *
 * Lock tokens are stored raw and compared with ds_ct_equal. A hash would
 * protect a stolen database file, but a request_id replay of a Lock must
 * return the token itself, and whoever can read the file can read (and
 * write) the data anyway.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ds_alloc.h"
#include "ds_text.h"
#include "store_sqlite_int.h"

/* Every statement is constant text, prepared once per connection. */
static const char *const store_sql[STORE_STMT_COUNT] = {
    [STORE_STMT_BEGIN_WRITE] = "BEGIN IMMEDIATE",
    [STORE_STMT_BEGIN_READ] = "BEGIN",
    [STORE_STMT_COMMIT] = "COMMIT",
    [STORE_STMT_ROLLBACK] = "ROLLBACK",
    [STORE_STMT_SAVEPOINT] = "SAVEPOINT store_write",
    [STORE_STMT_RELEASE] = "RELEASE store_write",
    [STORE_STMT_ROLLBACK_TO] = "ROLLBACK TO store_write",
    [STORE_STMT_META_GET] =
        "SELECT revision, fencing, req_gen FROM meta WHERE id = 0",
    [STORE_STMT_META_SET] =
        "UPDATE meta SET revision = ?1, fencing = ?2, req_gen = ?3"
        " WHERE id = 0",
    [STORE_STMT_ROW_GET] =
        "SELECT " STORE_ROW_COLUMNS " FROM records WHERE key = ?1",
    /* The head row and its version's value: one statement, one snapshot
     * (a tombstone's value is NULL). */
    [STORE_STMT_READ_GET] =
        "SELECT " STORE_ROW_COLUMNS ", (SELECT v.value FROM versions v"
        " WHERE v.key = records.key AND v.version = records.version)"
        " FROM records WHERE key = ?1",
    [STORE_STMT_ROW_VALUE] =
        "SELECT value FROM versions WHERE key = ?1 AND version = ?2",
    [STORE_STMT_ROW_INSERT] =
        "INSERT INTO records (key, version, revision, deleted, created_at,"
        " updated_at, content_type, updated_by, kept, lock_owner,"
        " lock_token, lock_expires_at, lock_fencing)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    [STORE_STMT_ROW_UPDATE] =
        "UPDATE records SET version = ?2, revision = ?3, deleted = ?4,"
        " created_at = ?5, updated_at = ?6, content_type = ?7,"
        " updated_by = ?8, kept = ?9 WHERE key = ?1",
    /* A lock change is a change: it takes a revision (DESIGN §9). */
    [STORE_STMT_ROW_SET_LOCK] =
        "UPDATE records SET lock_owner = ?2, lock_token = ?3,"
        " lock_expires_at = ?4, lock_fencing = ?5, revision = ?6"
        " WHERE key = ?1",
    [STORE_STMT_ROW_DELETE] = "DELETE FROM records WHERE key = ?1",
    /* Each version's value is written once, here. */
    [STORE_STMT_VER_PUT] =
        "INSERT INTO versions (key, version, revision, deleted, created_at,"
        " updated_at, content_type, updated_by, value)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    /* The version that fell out of the window: a point delete. */
    [STORE_STMT_VER_TRIM] =
        "DELETE FROM versions WHERE key = ?1 AND version = ?2",
    /* Once per key after the window shrank (see store_put_data). */
    [STORE_STMT_VER_TRIM_RANGE] =
        "DELETE FROM versions WHERE key = ?1 AND version <= ?2",
    [STORE_STMT_HIST_GET] =
        "SELECT revision, deleted, created_at, updated_at, content_type,"
        " updated_by, value FROM versions WHERE key = ?1 AND version = ?2",
    [STORE_STMT_LIST_FROM] =
        "SELECT " STORE_ROW_COLUMNS ", key FROM records"
        " WHERE key >= ?1 AND key < ?2 AND deleted = 0"
        " ORDER BY key LIMIT ?3",
    [STORE_STMT_LIST_AFTER] =
        "SELECT " STORE_ROW_COLUMNS ", key FROM records"
        " WHERE key > ?1 AND key < ?2 AND deleted = 0"
        " ORDER BY key LIMIT ?3",
    /* One statement over both generation tables: UNION ALL without
     * ORDER BY builds no sorter, and stepping stops at the first live
     * row (store_req_lookup skips an expired one). */
#define STORE_REQ_GET_COLUMNS                                                 \
	"hash, created_at, version, revision, rec_created_at, rec_updated_at," \
	" flags, content_type, updated_by, lock_owner, lock_expires_at,"      \
	" lock_fencing, token"
    [STORE_STMT_REQ_GET] =
        "SELECT " STORE_REQ_GET_COLUMNS " FROM requests0"
        " WHERE caller = ?1 AND id = ?2"
        " UNION ALL SELECT " STORE_REQ_GET_COLUMNS " FROM requests1"
        " WHERE caller = ?1 AND id = ?2",
#define STORE_REQ_PUT(table)                                                  \
	"INSERT OR REPLACE INTO " table " (id, hash, created_at, version,"    \
	" revision, rec_created_at, rec_updated_at, flags, content_type,"     \
	" updated_by, lock_owner, lock_expires_at, lock_fencing, token,"     \
	" caller)"                                                            \
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14," \
	" ?15)"
    [STORE_STMT_REQ_PUT0] = STORE_REQ_PUT("requests0"),
    [STORE_STMT_REQ_PUT1] = STORE_REQ_PUT("requests1"),
    /* Without a WHERE clause SQLite empties the table wholesale. */
    [STORE_STMT_REQ_CLEAR0] = "DELETE FROM requests0",
    [STORE_STMT_REQ_CLEAR1] = "DELETE FROM requests1",
    [STORE_STMT_DATA_VERSION] = "PRAGMA data_version",
    /* READ_GET and the store's revision: one statement, one snapshot. */
    [STORE_STMT_READ_GET_REV] =
        "SELECT " STORE_ROW_COLUMNS ", (SELECT v.value FROM versions v"
        " WHERE v.key = records.key AND v.version = records.version),"
        " (SELECT revision FROM meta WHERE id = 0)"
        " FROM records WHERE key = ?1",
    [STORE_STMT_META_LOG_GET] =
        "SELECT revision, compact_revision FROM meta WHERE id = 0",
    [STORE_STMT_META_COMPACT_SET] =
        "UPDATE meta SET compact_revision = ?1 WHERE id = 0",
    /* The one statement every change adds: an append at the end of the
     * rowid tree plus one changes_key entry. */
    [STORE_STMT_CHG_PUT] =
        "INSERT INTO changes (revision, key, type, at, version, deleted,"
        " created_at, updated_at, content_type, updated_by, lock_owner,"
        " lock_expires_at, lock_fencing)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    /* One key: changes_key (key, revision) from the cursor on. */
    [STORE_STMT_CHG_KEY] =
        "SELECT " STORE_CHG_COLUMNS " FROM changes"
        " WHERE key = ?1 AND revision > ?2 ORDER BY revision LIMIT ?3",
    /* A prefix (or every key): the rowid from the cursor on, filtering
     * keys on the way. The unary + keeps the planner off changes_key,
     * whose key range would have to be sorted by revision afterwards:
     * a watch's cursor is usually near the head, so few rows follow
     * it. */
    [STORE_STMT_CHG_RANGE] =
        "SELECT " STORE_CHG_COLUMNS " FROM changes"
        " WHERE revision > ?1 AND +key >= ?2 AND +key < ?3"
        " ORDER BY revision LIMIT ?4",
    [STORE_STMT_CHG_COMPACT_SCAN] =
        "SELECT revision, at FROM changes WHERE revision > ?1"
        " ORDER BY revision LIMIT ?2",
    [STORE_STMT_CHG_COMPACT_DEL] =
        "DELETE FROM changes WHERE revision <= ?1",
    /* Leases not swept yet, by expiry: records_lock_expiry. */
    [STORE_STMT_SWEEP_FIND] =
        "SELECT " STORE_ROW_COLUMNS ", key FROM records"
        " WHERE lock_owner IS NOT NULL AND lock_expires_at <= ?1"
        " ORDER BY lock_expires_at LIMIT ?2",
    [STORE_STMT_SWEEP_NEXT] =
        "SELECT min(lock_expires_at) FROM records"
        " WHERE lock_owner IS NOT NULL",
    /* The token, expiry and fencing token stay: see store_schema.c. */
    [STORE_STMT_ROW_SWEEP] =
        "UPDATE records SET lock_owner = NULL, revision = ?2"
        " WHERE key = ?1",
};

/* Per-connection settings. Each says why. */
static const char store_sqlite_pragmas[] =
    /* 8 MiB of page cache per connection (negative = KiB): the inner
     * pages of records and history for millions of keys stay hot, and
     * the total stays bounded because the server opens one connection
     * per worker thread. */
    "PRAGMA cache_size = -8192;"
    /* Statement journals (one per write's SAVEPOINT) and temporary
     * B-trees stay in memory: they hold one write's pages, and writing
     * them to disk would cost more than the write itself. */
    "PRAGMA temp_store = MEMORY;"
    /* No mmap: under mmap an I/O error or a file truncated underneath
     * becomes SIGBUS instead of an error code, and the server must not
     * crash on the disk's behalf. A cached point read is ~2 us anyway. */
    "PRAGMA mmap_size = 0;"
    /* No checkpoint on the committing thread: that thread is the
     * group-commit writer, the service's one serial bottleneck. A
     * background thread checkpoints instead (store_sqlite_ckpt_main);
     * file databases install a WAL hook that wakes it. */
    "PRAGMA wal_autocheckpoint = 0;"
    /* A WAL a burst grew past 64 MiB is truncated after a checkpoint. */
    "PRAGMA journal_size_limit = 67108864;"
    /* Debian builds SQLite with SECURE_DELETE on, which zeroes every freed
     * page: trimming a 1 MiB version out of the history window would write
     * another 1 MiB of zeros. FAST still purges deleted content from the
     * B-tree pages a write touches anyway, and leaves freed overflow pages
     * on the freelist as they are until the next value reuses them: they
     * hold old values of this database, which whoever can read the file
     * can read anyway. */
    "PRAGMA secure_delete = FAST;";

/* --- SQLite plumbing --- */

/* store_sqlite_backoff sleeps 20 us doubling to 2 ms: long enough not to
 * spin against another process's commit (an fsync is ~0.5 ms here), short
 * enough that a waiter notices the lock is free soon after. */
static void
store_sqlite_backoff(int attempt)
{
	long us = 20L << (attempt < 7 ? attempt : 7);
	struct timespec ts;

	if (us > 2000) {
		us = 2000;
	}
	ts.tv_sec = 0;
	ts.tv_nsec = us * 1000;
	(void) nanosleep(&ts, NULL); /* a signal only makes us retry sooner */
}

/* The lock-wait bound of the store call running on this thread. Every
 * backend entry point (open, conn_open, get, list, apply_batch, revision,
 * integrity_check) sets it, so the busy handler and store_sqlite_step
 * share one deadline per call: a call waits busy_timeout_ms in all, not
 * per statement. A connection is used by one thread at a time, so a
 * thread-local is the call's own state. */
typedef struct store_sqlite_wait {
	const store *s;      /* the store of the running call, or NULL */
	int64_t deadline_ms; /* monotonic */
} store_sqlite_wait;

static _Thread_local store_sqlite_wait store_sqlite_tls;

/* store_sqlite_wait_begin starts the bound of a call on s; it lasts until
 * store_sqlite_wait_end. */
static void
store_sqlite_wait_begin(const store *s)
{
	store_sqlite_tls.s = s;
	store_sqlite_tls.deadline_ms =
	    ds_clock_now_ms(ds_clock_monotonic()) + s->limits.busy_timeout_ms;
}

static void
store_sqlite_wait_end(void)
{
	store_sqlite_tls.s = NULL;
}

/* store_sqlite_slept_us is how long store_sqlite_backoff slept over
 * attempts 0..count-1: 20 us doubling for 7 attempts (2540 us), then
 * 2 ms each. */
static int64_t
store_sqlite_slept_us(int count)
{
	if (count <= 7) {
		return 20 * ((INT64_C(1) << count) - 1);
	}
	return 2540 + (int64_t) (count - 7) * 2000;
}

/* store_sqlite_may_wait says whether a waiter on s that has already
 * retried count times may sleep and retry again. Inside a store call the
 * call's deadline decides; a wait outside one (a statement SQLite runs on
 * its own) is bounded by the time it has slept. */
static bool
store_sqlite_may_wait(const store *s, int count)
{
	if (atomic_load(&s->waits_cancelled)) {
		return false;
	}
	if (store_sqlite_tls.s == s) {
		return ds_clock_now_ms(ds_clock_monotonic()) <
		    store_sqlite_tls.deadline_ms;
	}
	return store_sqlite_slept_us(count) < s->limits.busy_timeout_ms * 1000;
}

/* store_sqlite_busy is the busy handler (arg: the store): retry with
 * short sleeps while store_sqlite_may_wait allows it, then let the
 * statement fail with SQLITE_BUSY, which store_sqlite_err reports as
 * STORE_EBUSY naming busy_timeout_ms. A stuck foreign writer must not
 * stall the server forever: DESIGN §8, no unbounded waits. */
static int
store_sqlite_busy(void *arg, int count)
{
	if (!store_sqlite_may_wait(arg, count)) {
		return 0;
	}
	store_sqlite_backoff(count);
	return 1;
}

/* store_sqlite_step steps st, retrying the cases the busy handler does not
 * cover: SQLITE_BUSY returned without consulting it (recovery, a racing
 * WAL restart) and shared-cache table locks of ":memory:". Only the first
 * step of a statement can meet either, so restarting it is safe. It gives
 * up, returning the busy code, when the running call's bound has passed
 * (see store_sqlite_may_wait); outside a store call it does not retry. */
int
store_sqlite_step(sqlite3_stmt *st)
{
	for (int attempt = 0;; attempt++) {
		int rc = sqlite3_step(st);

		if ((rc & 0xff) != SQLITE_BUSY &&
		    rc != SQLITE_LOCKED_SHAREDCACHE) {
			return rc;
		}
		if (store_sqlite_tls.s == NULL ||
		    !store_sqlite_may_wait(store_sqlite_tls.s, attempt)) {
			return rc;
		}
		(void) sqlite3_reset(st); /* returns the busy code again */
		store_sqlite_backoff(attempt);
	}
}

/* store_sqlite_done resets st for its next use and drops its bindings,
 * which point into the caller's (borrowed) request. */
void
store_sqlite_done(sqlite3_stmt *st)
{
	(void) sqlite3_reset(st);          /* the step's code was handled */
	(void) sqlite3_clear_bindings(st); /* always SQLITE_OK */
}

/* store_sqlite_run runs a statement that returns no rows. */
int
store_sqlite_run(store_sqlite_conn *c, store_stmt_id id)
{
	sqlite3_stmt *st = c->st[id];
	int rc = store_sqlite_step(st);

	store_sqlite_done(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* store_sqlite_err fills err for SQLite result rc. */
store_err
store_sqlite_err(sqlite3 *db, int rc, store_error *err, const char *what)
{
	store_err code;

	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		/* The wait for another connection's lock gave up (see
		 * store_sqlite_busy). Every entry point sets the call's
		 * store; without one the message cannot name the bound. */
		if (store_sqlite_tls.s != NULL) {
			return store_busy_error(store_sqlite_tls.s, err, what);
		}
		code = STORE_EBUSY;
		break;
	case SQLITE_NOMEM:
		code = STORE_ENOMEM;
		break;
	case SQLITE_TOOBIG:
		code = STORE_ETOOLARGE;
		break;
	default:
		code = STORE_EIO;
		break;
	}
	return store_error_set(err, code, "", "%s: %s (%s)", what,
	    db != NULL ? sqlite3_errmsg(db) : "", sqlite3_errstr(rc));
}

/* Binding helpers: each does nothing once *rc holds an error, so a run
 * of binds is checked once. Pointers are bound SQLITE_STATIC: they are
 * borrowed until store_sqlite_done() clears them. */
void
store_bind_blob(sqlite3_stmt *st, int i, const void *p, size_t n, int *rc)
{
	if (*rc == SQLITE_OK) {
		*rc = sqlite3_bind_blob64(st, i, n > 0 ? p : "", n,
		    SQLITE_STATIC);
	}
}

void
store_bind_text(sqlite3_stmt *st, int i, const char *p, size_t n, int *rc)
{
	if (*rc == SQLITE_OK) {
		*rc = sqlite3_bind_text64(st, i, n > 0 ? p : "", n,
		    SQLITE_STATIC, SQLITE_UTF8);
	}
}

void
store_bind_i64(sqlite3_stmt *st, int i, int64_t v, int *rc)
{
	if (*rc == SQLITE_OK) {
		*rc = sqlite3_bind_int64(st, i, (sqlite3_int64) v);
	}
}

void
store_bind_null(sqlite3_stmt *st, int i, int *rc)
{
	if (*rc == SQLITE_OK) {
		*rc = sqlite3_bind_null(st, i);
	}
}

uint64_t
store_col_u64(sqlite3_stmt *st, int i)
{
	return (uint64_t) sqlite3_column_int64(st, i);
}

/* store_col_text copies a TEXT (or BLOB) column into an owned C string;
 * NULL reads as "". */
store_err
store_col_text(sqlite3_stmt *st, int i, char **out)
{
	const void *p;

	if (sqlite3_column_type(st, i) == SQLITE_NULL) {
		return store_record_set_text(out, "", 0);
	}
	/* Stored as TEXT/BLOB, so no conversion (and no allocation) happens
	 * here; NULL then only means out of memory. */
	if ((p = sqlite3_column_blob(st, i)) == NULL &&
	    sqlite3_column_bytes(st, i) > 0) {
		return STORE_ENOMEM;
	}
	return store_record_set_text(out, p,
	    (size_t) sqlite3_column_bytes(st, i));
}

/* store_col_value copies a BLOB column into r->value (NULL when empty). */
store_err
store_col_value(sqlite3_stmt *st, int i, store_record *r)
{
	const void *p = sqlite3_column_blob(st, i);
	size_t n = (size_t) sqlite3_column_bytes(st, i);
	uint8_t *v;

	if (n == 0) {
		r->value = NULL;
		r->value_len = 0;
		return STORE_OK;
	}
	if (p == NULL || (v = ds_alloc(n)) == NULL) {
		return STORE_ENOMEM;
	}
	memcpy(v, p, n);
	r->value = v;
	r->value_len = n;
	return STORE_OK;
}

/* store_col_lease reads the lock columns at col0 (owner, token, expires,
 * fencing) of ROW_GET/READ_GET. */
void
store_col_lease(sqlite3_stmt *st, store_lease *l)
{
	memset(l, 0, sizeof(*l));
	if (sqlite3_column_bytes(st, STORE_COL_LOCK_TOKEN) !=
	    STORE_TOKEN_BYTES) {
		return;
	}
	l->held = true;
	/* The sweep cleared only the owner (see store_schema.c, v5). */
	l->swept = sqlite3_column_type(st, STORE_COL_LOCK_OWNER) == SQLITE_NULL;
	memcpy(l->token.b, sqlite3_column_blob(st, STORE_COL_LOCK_TOKEN),
	    STORE_TOKEN_BYTES);
	l->expires_at_ms = sqlite3_column_int64(st, STORE_COL_LOCK_EXPIRES_AT);
	l->fencing_token = store_col_u64(st, STORE_COL_LOCK_FENCING);
}

/* store_record_lock sets r's lock from a live lease whose owner is column
 * owner_col of st. */
store_err
store_record_lock(store_record *r, sqlite3_stmt *st, int owner_col,
    int64_t expires, uint64_t fencing)
{
	store_err rv;

	if ((rv = store_col_text(st, owner_col, &r->lock.owner)) != STORE_OK) {
		return rv;
	}
	r->locked = true;
	r->lock.expires_at_ms = expires;
	r->lock.fencing_token = fencing;
	return STORE_OK;
}

/* store_record_from_row fills r with the metadata of the row ROW_GET or
 * READ_GET is positioned on (or just the key and version 0 when the key
 * has no row) and its lock when the lease is live. */
store_err
store_record_from_row(store_record *r, sqlite3_stmt *st, const store_row *row,
    const char *key, size_t key_len, int64_t now)
{
	store_err rv;

	if ((rv = store_record_set_text(&r->key, key, key_len)) != STORE_OK) {
		return rv;
	}
	r->key_len = key_len;
	if (!row->exists) {
		if ((rv = store_record_set_text(&r->content_type, "", 0)) !=
		        STORE_OK ||
		    (rv = store_record_set_text(&r->updated_by, "", 0)) !=
		        STORE_OK) {
			return rv;
		}
		return STORE_OK;
	}
	if ((rv = store_col_text(st, STORE_COL_CONTENT_TYPE,
	         &r->content_type)) != STORE_OK ||
	    (rv = store_col_text(st, STORE_COL_UPDATED_BY, &r->updated_by)) !=
	        STORE_OK) {
		return rv;
	}
	r->version = row->version;
	r->revision = row->revision;
	r->created_at_ms = row->created_at;
	r->updated_at_ms = row->updated_at;
	/* A lock placeholder is "never existed", not a tombstone. */
	r->deleted = row->deleted && row->version > 0;
	if (store_lease_live(&row->lease, now)) {
		return store_record_lock(r, st, STORE_COL_LOCK_OWNER,
		    row->lease.expires_at_ms, row->lease.fencing_token);
	}
	return STORE_OK;
}

/* store_row_read positions ROW_GET (or READ_GET) on key and fills row.
 * The statement stays positioned for column reads: the caller must
 * store_sqlite_done() it on every path. */
int
store_row_read(store_sqlite_conn *c, store_stmt_id id, const char *key,
    size_t key_len, store_row *row)
{
	sqlite3_stmt *st = c->st[id];
	int rc = SQLITE_OK;

	memset(row, 0, sizeof(*row));
	store_bind_blob(st, 1, key, key_len, &rc);
	if (rc != SQLITE_OK) {
		return rc;
	}
	rc = store_sqlite_step(st);
	if (rc == SQLITE_DONE) {
		return SQLITE_OK;
	}
	if (rc != SQLITE_ROW) {
		return rc;
	}
	row->exists = true;
	row->version = store_col_u64(st, STORE_COL_VERSION);
	row->revision = store_col_u64(st, STORE_COL_REVISION);
	row->deleted = sqlite3_column_int(st, STORE_COL_DELETED) != 0;
	row->created_at = sqlite3_column_int64(st, STORE_COL_CREATED_AT);
	row->updated_at = sqlite3_column_int64(st, STORE_COL_UPDATED_AT);
	row->kept = store_col_u64(st, STORE_COL_KEPT);
	store_col_lease(st, &row->lease);
	return SQLITE_OK;
}

/* --- opening and closing --- */

static void
store_sqlite_conn_free(store_sqlite_conn *c)
{
	for (int i = 0; i < STORE_STMT_COUNT; i++) {
		(void) sqlite3_finalize(c->st[i]); /* NULL is a no-op */
	}
	/* Statements are finalized, so close cannot report SQLITE_BUSY. */
	(void) sqlite3_close(c->db);
	ds_free(c);
}

/* store_sqlite_wal_hook runs after every commit with the WAL's size in
 * frames; it only wakes the checkpointer. */
static int
store_sqlite_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	store_sqlite *sq = arg;

	if (frames >= STORE_SQLITE_CKPT_EMERGENCY) {
		(void) sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE,
		    NULL, NULL); /* best effort; the thread retries */
	}
	if (frames >= STORE_SQLITE_CKPT_FRAMES) {
		pthread_mutex_lock(&sq->ckpt_mu);
		if (!sq->ckpt_wanted) {
			sq->ckpt_wanted = true;
			pthread_cond_signal(&sq->ckpt_cv);
		}
		pthread_mutex_unlock(&sq->ckpt_mu);
	}
	return SQLITE_OK;
}

static void *
store_sqlite_ckpt_main(void *arg)
{
	store_sqlite *sq = arg;

	for (;;) {
		pthread_mutex_lock(&sq->ckpt_mu);
		while (!sq->ckpt_wanted && !sq->ckpt_stop) {
			pthread_cond_wait(&sq->ckpt_cv, &sq->ckpt_mu);
		}
		if (sq->ckpt_stop) {
			pthread_mutex_unlock(&sq->ckpt_mu);
			break;
		}
		sq->ckpt_wanted = false;
		pthread_mutex_unlock(&sq->ckpt_mu);
		/* PASSIVE never waits for readers or the writer: it copies what
		 * it can; the next wake-up continues. */
		(void) sqlite3_wal_checkpoint_v2(sq->ckpt_db, NULL,
		    SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	}
	return NULL;
}

/* store_sqlite_connect opens a handle on the store's database with the
 * busy handler and the per-connection pragmas. */
static store_err
store_sqlite_connect(store *s, sqlite3 **out, store_error *err)
{
	store_sqlite *sq = s->be_data;
	sqlite3 *db = NULL;
	int rc;
	char *msg = NULL;
	store_err rv;
	const char *sync = s->durability == STORE_DURABILITY_NORMAL
	    ? "PRAGMA synchronous = NORMAL"
	    : "PRAGMA synchronous = FULL";

	if ((rc = sqlite3_open_v2(sq->uri, &db, sq->open_flags, NULL)) !=
	    SQLITE_OK) {
		rv = store_error_set(err,
		    db == NULL ? STORE_ENOMEM : STORE_EIO, "path",
		    "cannot open %s: %s", s->path,
		    db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		(void) sqlite3_close(db); /* NULL is a no-op */
		return rv;
	}
	(void) sqlite3_extended_result_codes(db, 1); /* always SQLITE_OK */
	(void) sqlite3_busy_handler(db, store_sqlite_busy, s);
	/* DEFENSIVE: nothing we run needs to write the schema by hand, so
	 * corrupting it through SQL is ruled out. */
	(void) sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	if ((rc = sqlite3_exec(db, store_sqlite_pragmas, NULL, NULL, &msg)) !=
	        SQLITE_OK ||
	    (rc = sqlite3_exec(db, sync, NULL, NULL, &msg)) != SQLITE_OK) {
		rv = store_error_set(err,
		    (rc & 0xff) == SQLITE_NOMEM ? STORE_ENOMEM : STORE_EIO,
		    "path", "cannot configure %s: %s", s->path,
		    msg != NULL ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		(void) sqlite3_close(db);
		return rv;
	}
	if (!sq->memory) {
		(void) sqlite3_wal_hook(db, store_sqlite_wal_hook, sq);
	}
	*out = db;
	return STORE_OK;
}

/* store_sqlite_wal switches a file database to WAL (persistent in the
 * file, so once per open suffices). */
static store_err
store_sqlite_wal(store *s, sqlite3 *db, store_error *err)
{
	sqlite3_stmt *st = NULL;
	const char *mode;
	int rc;
	store_err rv = STORE_OK;

	if ((rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &st,
	         NULL)) != SQLITE_OK ||
	    (rc = store_sqlite_step(st)) != SQLITE_ROW) {
		rv = store_sqlite_err(db, rc, err, "enabling WAL");
	} else if ((mode = (const char *) sqlite3_column_text(st, 0)) ==
	        NULL ||
	    sqlite3_stricmp(mode, "wal") != 0) {
		/* e.g. a file system without shared memory support */
		rv = store_error_set(err, STORE_EIO, "path",
		    "%s cannot use WAL journaling", s->path);
	}
	(void) sqlite3_finalize(st); /* errors were handled above */
	return rv;
}

static void
store_sqlite_free(store_sqlite *sq)
{
	if (sq == NULL) {
		return;
	}
	if (sq->ckpt_started) {
		pthread_mutex_lock(&sq->ckpt_mu);
		sq->ckpt_stop = true;
		pthread_cond_signal(&sq->ckpt_cv);
		pthread_mutex_unlock(&sq->ckpt_mu);
		pthread_join(sq->ckpt_thread, NULL);
	}
	/* The last connection to close checkpoints and removes the WAL. */
	(void) sqlite3_close(sq->ckpt_db); /* no statements: cannot be busy */
	(void) pthread_cond_destroy(&sq->ckpt_cv);
	(void) pthread_mutex_destroy(&sq->ckpt_mu);
	(void) sqlite3_close(sq->keeper); /* no statements: cannot be busy */
	ds_free(sq->uri);
	(void) pthread_mutex_destroy(&sq->write_mu); /* unlocked by now */
	ds_free(sq);
}

static store_err
store_sqlite_open(store *s, store_error *err)
{
	store_sqlite *sq;
	sqlite3 *db = NULL;
	store_err rv;

	if ((sq = ds_calloc(1, sizeof(*sq))) == NULL) {
		return store_error_set(err, STORE_ENOMEM, "",
		    "out of memory opening the store");
	}
	if (pthread_mutex_init(&sq->write_mu, NULL) != 0) {
		ds_free(sq);
		return store_error_set(err, STORE_ENOMEM, "",
		    "cannot create a mutex");
	}
	if (pthread_mutex_init(&sq->ckpt_mu, NULL) != 0) {
		(void) pthread_mutex_destroy(&sq->write_mu);
		ds_free(sq);
		return store_error_set(err, STORE_ENOMEM, "",
		    "cannot create a mutex");
	}
	(void) pthread_cond_init(&sq->ckpt_cv, NULL); /* default: cannot fail */
	sq->open_flags =
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
	if (strcmp(s->path, ":memory:") == 0) {
		uint8_t id[8];
		char hex[2 * sizeof(id) + 1];
		char uri[64];

		/* A name no other store in the process can hit: plain
		 * ":memory:" would give each connection its own database. */
		if (ds_random_bytes(id, sizeof(id)) != DS_OK) {
			rv = store_error_set(err, STORE_EIO, "",
			    "getrandom failed");
			goto fail;
		}
		ds_hex_encode(id, sizeof(id), hex);
		(void) snprintf(uri, sizeof(uri),
		    "file:datasync-%s?mode=memory&cache=shared", hex); /* fits */
		sq->memory = true;
		sq->open_flags |= SQLITE_OPEN_URI;
		sq->uri = ds_strdup(uri);
	} else {
		sq->uri = ds_strdup(s->path);
	}
	if (sq->uri == NULL) {
		rv = store_error_set(err, STORE_ENOMEM, "",
		    "out of memory opening the store");
		goto fail;
	}
	s->be_data = sq;
	if ((rv = store_sqlite_connect(s, &db, err)) != STORE_OK ||
	    (!sq->memory && (rv = store_sqlite_wal(s, db, err)) != STORE_OK) ||
	    (rv = store_schema_migrate(db, err)) != STORE_OK) {
		goto fail;
	}
	if (sq->memory) {
		sq->keeper = db;
		return STORE_OK;
	}
	/* The migration connection becomes the checkpointer's. */
	sq->ckpt_db = db;
	if (pthread_create(&sq->ckpt_thread, NULL, store_sqlite_ckpt_main, sq) !=
	    0) {
		rv = store_error_set(err, STORE_ENOMEM, "",
		    "cannot start the checkpoint thread");
		goto fail;
	}
	sq->ckpt_started = true;
	return STORE_OK;
fail:
	if (sq->ckpt_db == db) {
		sq->ckpt_db = NULL;
	}
	(void) sqlite3_close(db); /* NULL is a no-op */
	s->be_data = NULL;
	store_sqlite_free(sq);
	return rv;
}

static void
store_sqlite_close(store *s)
{
	store_sqlite_free(s->be_data);
	s->be_data = NULL;
}

static store_err
store_sqlite_conn_open(store *s, store_conn **out, store_error *err)
{
	store_sqlite_conn *c;
	store_err rv;
	int rc;

	if ((c = ds_calloc(1, sizeof(*c))) == NULL) {
		return store_error_set(err, STORE_ENOMEM, "",
		    "out of memory opening a connection");
	}
	c->base.s = s;
	if ((rv = store_sqlite_connect(s, &c->db, err)) != STORE_OK) {
		ds_free(c);
		return rv;
	}
	for (int i = 0; i < STORE_STMT_COUNT; i++) {
		if ((rc = sqlite3_prepare_v3(c->db, store_sql[i], -1,
		         SQLITE_PREPARE_PERSISTENT, &c->st[i], NULL)) !=
		    SQLITE_OK) {
			rv = store_sqlite_err(c->db, rc, err,
			    "preparing a statement");
			store_sqlite_conn_free(c);
			return rv;
		}
	}
	*out = &c->base;
	return STORE_OK;
}

static void
store_sqlite_conn_close(store_conn *bc)
{
	store_sqlite_conn_free((store_sqlite_conn *) bc);
}

/* --- entry points: each call runs under its own lock-wait bound --- */

static store_err
store_sqlite_open_bounded(store *s, store_error *err)
{
	store_err rv;

	store_sqlite_wait_begin(s);
	rv = store_sqlite_open(s, err);
	store_sqlite_wait_end();
	return rv;
}

static store_err
store_sqlite_conn_open_bounded(store *s, store_conn **out, store_error *err)
{
	store_err rv;

	store_sqlite_wait_begin(s);
	rv = store_sqlite_conn_open(s, out, err);
	store_sqlite_wait_end();
	return rv;
}

static store_err
store_sqlite_get_bounded(store_conn *c, const char *key, size_t key_len,
    uint64_t version, store_record *out, uint64_t *revision,
    store_error *err)
{
	store_err rv;

	store_sqlite_wait_begin(c->s);
	rv = store_sqlite_get(c, key, key_len, version, out, revision, err);
	store_sqlite_wait_end();
	return rv;
}

static store_err
store_sqlite_list_bounded(store_conn *c, const store_list_req *req,
    store_list_page *out, store_error *err)
{
	store_err rv;

	store_sqlite_wait_begin(c->s);
	rv = store_sqlite_list(c, req, out, err);
	store_sqlite_wait_end();
	return rv;
}

static store_err
store_sqlite_apply_batch_bounded(store_conn *c, const store_write *ws,
    size_t n, store_write_result *results)
{
	store_err rv;

	store_sqlite_wait_begin(c->s);
	rv = store_sqlite_apply_batch(c, ws, n, results);
	store_sqlite_wait_end();
	return rv;
}

static store_err
store_sqlite_revision_bounded(store_conn *c, uint64_t *out, store_error *err)
{
	store_err rv;

	store_sqlite_wait_begin(c->s);
	rv = store_sqlite_revision(c, out, err);
	store_sqlite_wait_end();
	return rv;
}

static store_err
store_sqlite_peek_bounded(store_conn *c, const store_write *const *ws,
    size_t n, uint64_t *data_version, bool *seen, store_error *err)
{
	store_err rv;

	store_sqlite_wait_begin(c->s);
	rv = store_sqlite_peek(c, ws, n, data_version, seen, err);
	store_sqlite_wait_end();
	return rv;
}

static store_err
store_sqlite_integrity_check_bounded(store_conn *c, store_error *err)
{
	store_err rv;

	store_sqlite_wait_begin(c->s);
	rv = store_sqlite_integrity_check(c, err);
	store_sqlite_wait_end();
	return rv;
}

static store_err
store_sqlite_changes_read_bounded(store_conn *c, const store_changes_req *req,
    store_changes_page *page, store_error *err)
{
	store_err rv;

	store_sqlite_wait_begin(c->s);
	rv = store_sqlite_changes_read(c, req, page, err);
	store_sqlite_wait_end();
	return rv;
}

static store_err
store_sqlite_sweep_expired_bounded(store_conn *c, size_t max, size_t *n,
    int64_t *next_expiry_ms, store_error *err)
{
	store_err rv;

	store_sqlite_wait_begin(c->s);
	rv = store_sqlite_sweep_expired(c, max, n, next_expiry_ms, err);
	store_sqlite_wait_end();
	return rv;
}

static store_err
store_sqlite_compact_changes_bounded(store_conn *c, uint64_t retain_revisions,
    int64_t retain_ms, size_t max, size_t *n, store_error *err)
{
	store_err rv;

	store_sqlite_wait_begin(c->s);
	rv = store_sqlite_compact_changes(c, retain_revisions, retain_ms, max,
	    n, err);
	store_sqlite_wait_end();
	return rv;
}

static store_err
store_sqlite_auth_create_bounded(store_conn *c, const char *name,
    const uint8_t hash[32], const char *grants, store_auth_token *out,
    store_error *err)
{
	store_err rv;

	store_sqlite_wait_begin(c->s);
	rv = store_sqlite_auth_create(c, name, hash, grants, out, err);
	store_sqlite_wait_end();
	return rv;
}

static store_err
store_sqlite_auth_revoke_bounded(store_conn *c, const char *name,
    store_auth_token *out, store_error *err)
{
	store_err rv;

	store_sqlite_wait_begin(c->s);
	rv = store_sqlite_auth_revoke(c, name, out, err);
	store_sqlite_wait_end();
	return rv;
}

static store_err
store_sqlite_auth_list_bounded(store_conn *c, store_auth_token **out,
    size_t *n, uint64_t *generation, store_error *err)
{
	store_err rv;

	store_sqlite_wait_begin(c->s);
	rv = store_sqlite_auth_list(c, out, n, generation, err);
	store_sqlite_wait_end();
	return rv;
}

static store_err
store_sqlite_auth_generation_bounded(store_conn *c, uint64_t *generation,
    store_error *err)
{
	store_err rv;

	store_sqlite_wait_begin(c->s);
	rv = store_sqlite_auth_generation(c, generation, err);
	store_sqlite_wait_end();
	return rv;
}

/* --- the vtable --- */

const store_backend store_sqlite_backend = {
    .name = "sqlite",
    .open = store_sqlite_open_bounded,
    .close = store_sqlite_close,
    .conn_open = store_sqlite_conn_open_bounded,
    .conn_close = store_sqlite_conn_close,
    .get = store_sqlite_get_bounded,
    .list = store_sqlite_list_bounded,
    .apply_batch = store_sqlite_apply_batch_bounded,
    .revision = store_sqlite_revision_bounded,
    .integrity_check = store_sqlite_integrity_check_bounded,
    .peek = store_sqlite_peek_bounded,
    .changes_read = store_sqlite_changes_read_bounded,
    .sweep_expired = store_sqlite_sweep_expired_bounded,
    .compact_changes = store_sqlite_compact_changes_bounded,
    .auth_create = store_sqlite_auth_create_bounded,
    .auth_revoke = store_sqlite_auth_revoke_bounded,
    .auth_list = store_sqlite_auth_list_bounded,
    .auth_generation = store_sqlite_auth_generation_bounded,
};
