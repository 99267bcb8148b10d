/*
 * store_sqlite.c - the SQLite backend: connections, pragmas, prepared
 * statements, busy handling, reads, writes and batches.
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
 * Writes. A batch is one transaction; each write runs inside its own
 * SAVEPOINT so a write that fails midway (out of memory, disk full) is
 * undone alone. The store-wide revision and fencing counters are read once
 * at BEGIN, advanced in memory, and written back once before COMMIT. The
 * per-write SQL is: [request-id lookup], one SELECT of the row, then on
 * success [history copy], one INSERT or UPDATE of the row, [history trim],
 * [request-id insert].
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
#include "store_int.h"

/* Request-id result flags (requests.flags). */
#define STORE_SQLITE_F_DELETED 1
#define STORE_SQLITE_F_LOCKED 2
#define STORE_SQLITE_F_RENEWED 4

/* --- statements --- */

typedef enum store_stmt_id {
	STORE_STMT_BEGIN_WRITE,
	STORE_STMT_BEGIN_READ,
	STORE_STMT_COMMIT,
	STORE_STMT_ROLLBACK,
	STORE_STMT_SAVEPOINT,
	STORE_STMT_RELEASE,
	STORE_STMT_ROLLBACK_TO,
	STORE_STMT_META_GET,
	STORE_STMT_META_SET,
	STORE_STMT_ROW_GET,
	STORE_STMT_READ_GET,
	STORE_STMT_ROW_VALUE,
	STORE_STMT_ROW_INSERT,
	STORE_STMT_ROW_UPDATE,
	STORE_STMT_ROW_SET_LOCK,
	STORE_STMT_ROW_DELETE,
	STORE_STMT_HIST_COPY,
	STORE_STMT_HIST_TRIM,
	STORE_STMT_HIST_GET,
	STORE_STMT_LIST_FROM,
	STORE_STMT_LIST_AFTER,
	STORE_STMT_REQ_GET0,
	STORE_STMT_REQ_GET1,
	STORE_STMT_REQ_PUT0,
	STORE_STMT_REQ_PUT1,
	STORE_STMT_REQ_CLEAR0,
	STORE_STMT_REQ_CLEAR1,
	STORE_STMT_COUNT
} store_stmt_id;

/* The row's metadata, in this column order, starts ROW_GET and READ_GET. */
#define STORE_ROW_COLUMNS                                                     \
	"version, revision, deleted, created_at, updated_at, content_type, "  \
	"updated_by, lock_owner, lock_token, lock_expires_at, lock_fencing"
enum {
	STORE_COL_VERSION,
	STORE_COL_REVISION,
	STORE_COL_DELETED,
	STORE_COL_CREATED_AT,
	STORE_COL_UPDATED_AT,
	STORE_COL_CONTENT_TYPE,
	STORE_COL_UPDATED_BY,
	STORE_COL_LOCK_OWNER,
	STORE_COL_LOCK_TOKEN,
	STORE_COL_LOCK_EXPIRES_AT,
	STORE_COL_LOCK_FENCING,
	STORE_COL_VALUE, /* READ_GET only */
};

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
    [STORE_STMT_READ_GET] =
        "SELECT " STORE_ROW_COLUMNS ", value FROM records WHERE key = ?1",
    [STORE_STMT_ROW_VALUE] = "SELECT value FROM records WHERE key = ?1",
    [STORE_STMT_ROW_INSERT] =
        "INSERT INTO records (key, version, revision, deleted, created_at,"
        " updated_at, content_type, updated_by, value, lock_owner,"
        " lock_token, lock_expires_at, lock_fencing)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    [STORE_STMT_ROW_UPDATE] =
        "UPDATE records SET version = ?2, revision = ?3, deleted = ?4,"
        " created_at = ?5, updated_at = ?6, content_type = ?7,"
        " updated_by = ?8, value = ?9 WHERE key = ?1",
    [STORE_STMT_ROW_SET_LOCK] =
        "UPDATE records SET lock_owner = ?2, lock_token = ?3,"
        " lock_expires_at = ?4, lock_fencing = ?5 WHERE key = ?1",
    [STORE_STMT_ROW_DELETE] = "DELETE FROM records WHERE key = ?1",
    [STORE_STMT_HIST_COPY] =
        "INSERT INTO history (key, version, revision, deleted, created_at,"
        " updated_at, content_type, updated_by, value)"
        " SELECT key, version, revision, deleted, created_at, updated_at,"
        " content_type, updated_by, value FROM records WHERE key = ?1",
    [STORE_STMT_HIST_TRIM] =
        "DELETE FROM history WHERE key = ?1 AND version < ?2",
    [STORE_STMT_HIST_GET] =
        "SELECT revision, deleted, created_at, updated_at, content_type,"
        " updated_by, value FROM history WHERE key = ?1 AND version = ?2",
    [STORE_STMT_LIST_FROM] =
        "SELECT key, " STORE_ROW_COLUMNS " FROM records"
        " WHERE key >= ?1 AND key < ?2 AND deleted = 0"
        " ORDER BY key LIMIT ?3",
    [STORE_STMT_LIST_AFTER] =
        "SELECT key, " STORE_ROW_COLUMNS " FROM records"
        " WHERE key > ?1 AND key < ?2 AND deleted = 0"
        " ORDER BY key LIMIT ?3",
    /* Two point lookups, one per generation table (a UNION with ORDER BY
     * would build a sorter per write). */
#define STORE_REQ_GET_COLUMNS                                                 \
	"hash, created_at, version, revision, rec_created_at, rec_updated_at," \
	" flags, content_type, updated_by, lock_owner, lock_expires_at,"      \
	" lock_fencing, token"
    [STORE_STMT_REQ_GET0] =
        "SELECT " STORE_REQ_GET_COLUMNS " FROM requests0"
        " WHERE caller = ?1 AND id = ?2",
    [STORE_STMT_REQ_GET1] =
        "SELECT " STORE_REQ_GET_COLUMNS " FROM requests1"
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
    "PRAGMA journal_size_limit = 67108864;";

/* --- backend state --- */

typedef struct store_sqlite {
	/* write_mu serialises this process's write transactions (and, for
	 * ":memory:", reads too). It guards no field: it orders access to
	 * the database itself. */
	pthread_mutex_t write_mu;
	char *uri;       /* what connections open; owned */
	int open_flags;  /* for sqlite3_open_v2 */
	bool memory;     /* a private in-memory database */
	sqlite3 *keeper; /* ":memory:" only: holds the database alive */

	/* The background checkpointer (file databases only). */
	pthread_t ckpt_thread;
	bool ckpt_started;
	sqlite3 *ckpt_db;         /* its own connection; its thread only */
	pthread_mutex_t ckpt_mu;  /* guards ckpt_wanted, ckpt_stop */
	pthread_cond_t ckpt_cv;
	bool ckpt_wanted;
	bool ckpt_stop;
} store_sqlite;

/* Checkpoint once the WAL holds ~8 MiB (2000 pages of 4 KiB): large
 * enough that checkpoints are rare, small enough for fast recovery and
 * readers. If the checkpointer falls 8x behind (a stalled disk), the
 * committing connection checkpoints itself so the WAL stays bounded. */
#define STORE_SQLITE_CKPT_FRAMES 2000
#define STORE_SQLITE_CKPT_EMERGENCY (8 * STORE_SQLITE_CKPT_FRAMES)

typedef struct store_sqlite_conn {
	store_conn base; /* first: a store_conn * is a store_sqlite_conn * */
	sqlite3 *db;
	sqlite3_stmt *st[STORE_STMT_COUNT];
} store_sqlite_conn;

/* store_row: a records row as the write rules see it. */
typedef struct store_row {
	bool exists;       /* a row, maybe a tombstone or lock placeholder */
	bool deleted;      /* tombstone or placeholder: not live */
	uint64_t version;  /* 0 for a lock placeholder */
	uint64_t revision;
	int64_t created_at;
	int64_t updated_at;
	store_lease lease;
} store_row;

/* store_wctx: the state of one write transaction. */
typedef struct store_wctx {
	store_sqlite_conn *c;
	const store_limits *lim;
	int64_t now;       /* clock at the current write */
	uint64_t revision; /* counters as advanced so far in this batch */
	uint64_t fencing;
	int64_t req_gen;   /* request-id generation the batch writes into */
	bool dirty;        /* counters differ from the meta row */
} store_wctx;

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
static int
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
static void
store_sqlite_done(sqlite3_stmt *st)
{
	(void) sqlite3_reset(st);          /* the step's code was handled */
	(void) sqlite3_clear_bindings(st); /* always SQLITE_OK */
}

/* store_sqlite_run runs a statement that returns no rows. */
static int
store_sqlite_run(store_sqlite_conn *c, store_stmt_id id)
{
	sqlite3_stmt *st = c->st[id];
	int rc = store_sqlite_step(st);

	store_sqlite_done(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* store_sqlite_err fills err for SQLite result rc. */
static store_err
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
static void
store_bind_blob(sqlite3_stmt *st, int i, const void *p, size_t n, int *rc)
{
	if (*rc == SQLITE_OK) {
		*rc = sqlite3_bind_blob64(st, i, n > 0 ? p : "", n,
		    SQLITE_STATIC);
	}
}

static void
store_bind_text(sqlite3_stmt *st, int i, const char *p, size_t n, int *rc)
{
	if (*rc == SQLITE_OK) {
		*rc = sqlite3_bind_text64(st, i, n > 0 ? p : "", n,
		    SQLITE_STATIC, SQLITE_UTF8);
	}
}

static void
store_bind_i64(sqlite3_stmt *st, int i, int64_t v, int *rc)
{
	if (*rc == SQLITE_OK) {
		*rc = sqlite3_bind_int64(st, i, (sqlite3_int64) v);
	}
}

static void
store_bind_null(sqlite3_stmt *st, int i, int *rc)
{
	if (*rc == SQLITE_OK) {
		*rc = sqlite3_bind_null(st, i);
	}
}

static uint64_t
store_col_u64(sqlite3_stmt *st, int i)
{
	return (uint64_t) sqlite3_column_int64(st, i);
}

/* store_col_text copies a TEXT (or BLOB) column into an owned C string;
 * NULL reads as "". */
static store_err
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
static store_err
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
static void
store_col_lease(sqlite3_stmt *st, store_lease *l)
{
	memset(l, 0, sizeof(*l));
	if (sqlite3_column_type(st, STORE_COL_LOCK_OWNER) == SQLITE_NULL ||
	    sqlite3_column_bytes(st, STORE_COL_LOCK_TOKEN) !=
	        STORE_TOKEN_BYTES) {
		return;
	}
	l->held = true;
	memcpy(l->token.b, sqlite3_column_blob(st, STORE_COL_LOCK_TOKEN),
	    STORE_TOKEN_BYTES);
	l->expires_at_ms = sqlite3_column_int64(st, STORE_COL_LOCK_EXPIRES_AT);
	l->fencing_token = store_col_u64(st, STORE_COL_LOCK_FENCING);
}

/* store_record_lock sets r's lock from a live lease whose owner is column
 * owner_col of st. */
static store_err
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
static store_err
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
static int
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

/* store_sqlite_connect opens a handle on the store's database with the
 * busy handler and the per-connection pragmas. */
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

/* --- reads --- */

/* ":memory:" has no WAL: its readers take turns with writers. */
static void
store_sqlite_read_lock(store_sqlite_conn *c)
{
	store_sqlite *sq = c->base.s->be_data;

	if (sq->memory) {
		(void) pthread_mutex_lock(&sq->write_mu); /* cannot fail */
	}
}

static void
store_sqlite_read_unlock(store_sqlite_conn *c)
{
	store_sqlite *sq = c->base.s->be_data;

	if (sq->memory) {
		(void) pthread_mutex_unlock(&sq->write_mu); /* we hold it */
	}
}

/* store_sqlite_get_current reads the live record with its value. */
static store_err
store_sqlite_get_current(store_sqlite_conn *c, const char *key,
    size_t key_len, int64_t now, store_record *out, store_error *err)
{
	sqlite3_stmt *st = c->st[STORE_STMT_READ_GET];
	store_record r;
	store_row row;
	store_err rv;
	int rc;

	memset(&r, 0, sizeof(r));
	if ((rc = store_row_read(c, STORE_STMT_READ_GET, key, key_len,
	         &row)) != SQLITE_OK) {
		rv = store_sqlite_err(c->db, rc, err, "reading a record");
		goto out;
	}
	if (!row.exists || row.deleted) {
		rv = store_error_set(err, STORE_ENOTFOUND, "key",
		    "key not found");
		goto out;
	}
	if ((rv = store_record_from_row(&r, st, &row, key, key_len, now)) !=
	        STORE_OK ||
	    (rv = store_col_value(st, STORE_COL_VALUE, &r)) != STORE_OK) {
		(void) store_error_set(err, rv, "", "out of memory");
		goto out;
	}
	*out = r;
	memset(&r, 0, sizeof(r));
out:
	store_sqlite_done(st);
	store_record_fini(&r);
	return rv;
}

/* store_sqlite_get_version reads version v: the current record, a kept
 * older version, or why not. Runs inside a read transaction so the row
 * and its history are one snapshot. */
static store_err
store_sqlite_get_version(store_sqlite_conn *c, const char *key,
    size_t key_len, uint64_t v, int64_t now, store_record *out,
    store_error *err)
{
	const store_limits *lim = &c->base.s->limits;
	sqlite3_stmt *st = c->st[STORE_STMT_ROW_GET];
	sqlite3_stmt *hs = c->st[STORE_STMT_HIST_GET];
	uint64_t keep = lim->history > 1 ? lim->history : 1;
	store_record r;
	store_row row;
	store_err rv;
	int rc;

	memset(&r, 0, sizeof(r));
	if ((rc = store_row_read(c, STORE_STMT_ROW_GET, key, key_len,
	         &row)) != SQLITE_OK) {
		rv = store_sqlite_err(c->db, rc, err, "reading a record");
		goto out;
	}
	if (!row.exists || v > row.version) {
		rv = store_error_set(err, STORE_ENOTFOUND, "version",
		    "version %llu of the key was never written",
		    (unsigned long long) v);
		goto out;
	}
	if (v == row.version) {
		store_sqlite_done(st);
		/* The current version: the same answer as a plain Get. */
		return store_sqlite_get_current(c, key, key_len, now, out,
		    err);
	}
	/* The kept versions are (current - keep, current]. History rows
	 * beyond that belong to a larger history setting and are trimmed
	 * by the next write; they must not be served meanwhile. */
	if (row.version >= keep && v <= row.version - keep) {
		rv = store_error_set(err, STORE_ECOMPACTED, "version",
		    "version %llu was compacted (history keeps %u versions)",
		    (unsigned long long) v, (unsigned) lim->history);
		goto out;
	}
	/* Lock state is the key's, shown with any version. */
	if ((rv = store_record_from_row(&r, st, &row, key, key_len, now)) !=
	    STORE_OK) {
		(void) store_error_set(err, rv, "", "out of memory");
		goto out;
	}
	rc = SQLITE_OK;
	store_bind_blob(hs, 1, key, key_len, &rc);
	store_bind_i64(hs, 2, (int64_t) v, &rc);
	if (rc == SQLITE_OK) {
		rc = store_sqlite_step(hs);
	}
	if (rc == SQLITE_DONE) {
		rv = store_error_set(err, STORE_ECOMPACTED, "version",
		    "version %llu was compacted", (unsigned long long) v);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		rv = store_sqlite_err(c->db, rc, err, "reading history");
		goto out;
	}
	if (sqlite3_column_int(hs, 1) != 0) {
		rv = store_error_set(err, STORE_ENOTFOUND, "version",
		    "version %llu of the key is a deletion",
		    (unsigned long long) v);
		goto out;
	}
	ds_free(r.content_type);
	ds_free(r.updated_by);
	r.content_type = NULL;
	r.updated_by = NULL;
	r.version = v;
	r.revision = store_col_u64(hs, 0);
	r.deleted = false;
	r.created_at_ms = sqlite3_column_int64(hs, 2);
	r.updated_at_ms = sqlite3_column_int64(hs, 3);
	if ((rv = store_col_text(hs, 4, &r.content_type)) != STORE_OK ||
	    (rv = store_col_text(hs, 5, &r.updated_by)) != STORE_OK ||
	    (rv = store_col_value(hs, 6, &r)) != STORE_OK) {
		(void) store_error_set(err, rv, "", "out of memory");
		goto out;
	}
	*out = r;
	memset(&r, 0, sizeof(r));
	rv = STORE_OK;
out:
	store_sqlite_done(hs);
	store_sqlite_done(st);
	store_record_fini(&r);
	return rv;
}

static store_err
store_sqlite_get(store_conn *bc, const char *key, size_t key_len,
    uint64_t version, store_record *out, store_error *err)
{
	store_sqlite_conn *c = (store_sqlite_conn *) bc;
	int64_t now = ds_clock_now_ms(bc->s->clock);
	store_err rv;
	int rc;

	store_sqlite_read_lock(c);
	if (version == 0) {
		/* One statement is one snapshot: no transaction needed. */
		rv = store_sqlite_get_current(c, key, key_len, now, out, err);
		goto out;
	}
	if ((rc = store_sqlite_run(c, STORE_STMT_BEGIN_READ)) != SQLITE_OK) {
		rv = store_sqlite_err(c->db, rc, err, "beginning a read");
		goto out;
	}
	rv = store_sqlite_get_version(c, key, key_len, version, now, out,
	    err);
	/* Ending a read-only transaction releases the snapshot; it has
	 * nothing to write and cannot lose anything. */
	if ((rc = store_sqlite_run(c, STORE_STMT_COMMIT)) != SQLITE_OK) {
		(void) store_sqlite_run(c, STORE_STMT_ROLLBACK); /* idem */
	}
out:
	store_sqlite_read_unlock(c);
	if (rv == STORE_OK) {
		store_error_clear(err);
	}
	return rv;
}

/* store_key_cmp compares byte strings like memcmp, shorter first. */
static int
store_key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	int d = memcmp(a, b, an < bn ? an : bn);

	if (d != 0 || an == bn) {
		return d;
	}
	return an < bn ? -1 : 1;
}

/* store_list_row turns the current LIST row into r. */
static store_err
store_list_row(sqlite3_stmt *st, int64_t now, store_record *r)
{
	/* LIST's columns are "key" followed by the ROW_GET columns. */
	enum { K = 0, O = 1 };
	const void *key = sqlite3_column_blob(st, K);
	size_t key_len = (size_t) sqlite3_column_bytes(st, K);
	store_err rv;

	if ((rv = store_record_set_text(&r->key, key, key_len)) != STORE_OK ||
	    (rv = store_col_text(st, O + STORE_COL_CONTENT_TYPE,
	         &r->content_type)) != STORE_OK ||
	    (rv = store_col_text(st, O + STORE_COL_UPDATED_BY,
	         &r->updated_by)) != STORE_OK) {
		return rv;
	}
	r->key_len = key_len;
	r->version = store_col_u64(st, O + STORE_COL_VERSION);
	r->revision = store_col_u64(st, O + STORE_COL_REVISION);
	r->created_at_ms = sqlite3_column_int64(st, O + STORE_COL_CREATED_AT);
	r->updated_at_ms = sqlite3_column_int64(st, O + STORE_COL_UPDATED_AT);
	if (sqlite3_column_type(st, O + STORE_COL_LOCK_OWNER) != SQLITE_NULL &&
	    now < sqlite3_column_int64(st, O + STORE_COL_LOCK_EXPIRES_AT)) {
		return store_record_lock(r, st, O + STORE_COL_LOCK_OWNER,
		    sqlite3_column_int64(st, O + STORE_COL_LOCK_EXPIRES_AT),
		    store_col_u64(st, O + STORE_COL_LOCK_FENCING));
	}
	return STORE_OK;
}

/* store_sqlite_list_read reads one page inside a read transaction. */
static store_err
store_sqlite_list_read(store_sqlite_conn *c, const store_list_req *req,
    const store_list_args *args, int64_t now, store_list_page *page,
    store_error *err)
{
	const uint8_t *prefix = (const uint8_t *) req->prefix;
	size_t plen = req->prefix_len;
	uint8_t upper[STORE_MAX_KEY_BYTES_HARD + 1];
	sqlite3_stmt *ms = c->st[STORE_STMT_META_GET];
	sqlite3_stmt *st;
	size_t cap = 0;
	store_err rv = STORE_OK;
	int rc;

	if (plen > 0) {
		memcpy(upper, prefix, plen);
	}
	/* No UTF-8 key contains 0xff, so prefix||ff bounds every key that
	 * starts with prefix (and x'ff' alone bounds every key). */
	upper[plen] = 0xff;

	if ((rc = store_sqlite_step(ms)) != SQLITE_ROW) {
		rv = store_sqlite_err(c->db, rc, err, "reading the revision");
		store_sqlite_done(ms);
		return rv;
	}
	page->revision = store_col_u64(ms, 0);
	store_sqlite_done(ms);

	rc = SQLITE_OK;
	if (args->cursor != NULL &&
	    (plen == 0 ||
	        store_key_cmp(args->cursor, args->cursor_len, prefix, plen) >=
	            0)) {
		st = c->st[STORE_STMT_LIST_AFTER];
		store_bind_blob(st, 1, args->cursor, args->cursor_len, &rc);
	} else {
		/* First page, or a cursor from before this prefix. */
		st = c->st[STORE_STMT_LIST_FROM];
		store_bind_blob(st, 1, prefix, plen, &rc);
	}
	store_bind_blob(st, 2, upper, plen + 1, &rc);
	/* One row more than the page tells whether another page exists. */
	store_bind_i64(st, 3, (int64_t) args->page_size + 1, &rc);
	while (rc == SQLITE_OK) {
		if ((rc = store_sqlite_step(st)) != SQLITE_ROW) {
			break;
		}
		rc = SQLITE_OK;
		if (page->n == args->page_size) {
			store_record *last = &page->records[page->n - 1];

			if ((page->next_page_token = store_page_token_format(
			         (const uint8_t *) last->key,
			         last->key_len)) == NULL) {
				rv = STORE_ENOMEM;
			}
			break;
		}
		if (page->n == cap) {
			size_t ncap = cap == 0 ? 16 : 2 * cap;
			store_record *nr;

			if (ncap > args->page_size) {
				ncap = args->page_size;
			}
			if ((nr = ds_realloc(page->records,
			         ncap * sizeof(*nr))) == NULL) {
				rv = STORE_ENOMEM;
				break;
			}
			memset(nr + cap, 0, (ncap - cap) * sizeof(*nr));
			page->records = nr;
			cap = ncap;
		}
		if ((rv = store_list_row(st, now, &page->records[page->n])) !=
		    STORE_OK) {
			page->n++; /* so that the partial record is freed */
			break;
		}
		page->n++;
	}
	if (rv == STORE_OK && rc != SQLITE_OK && rc != SQLITE_DONE) {
		rv = store_sqlite_err(c->db, rc, err, "listing records");
	} else if (rv == STORE_ENOMEM) {
		(void) store_error_set(err, rv, "", "out of memory");
	}
	store_sqlite_done(st);
	return rv;
}

static store_err
store_sqlite_list(store_conn *bc, const store_list_req *req,
    store_list_page *out, store_error *err)
{
	store_sqlite_conn *c = (store_sqlite_conn *) bc;
	store_list_args args;
	store_list_page page;
	int64_t now;
	store_err rv;
	int rc;

	if ((rv = store_validate_list(&bc->s->limits, req, &args, err)) !=
	    STORE_OK) {
		return rv;
	}
	memset(&page, 0, sizeof(page));
	now = ds_clock_now_ms(bc->s->clock);
	store_sqlite_read_lock(c);
	if ((rc = store_sqlite_run(c, STORE_STMT_BEGIN_READ)) != SQLITE_OK) {
		rv = store_sqlite_err(c->db, rc, err, "beginning a read");
		store_sqlite_read_unlock(c);
		return rv;
	}
	rv = store_sqlite_list_read(c, req, &args, now, &page, err);
	if ((rc = store_sqlite_run(c, STORE_STMT_COMMIT)) != SQLITE_OK) {
		/* A read-only transaction: ending it cannot lose data. */
		(void) store_sqlite_run(c, STORE_STMT_ROLLBACK);
	}
	store_sqlite_read_unlock(c);
	if (rv != STORE_OK) {
		store_list_page_fini(&page);
		return rv;
	}
	store_error_clear(err);
	*out = page;
	return STORE_OK;
}

static store_err
store_sqlite_revision(store_conn *bc, uint64_t *out, store_error *err)
{
	store_sqlite_conn *c = (store_sqlite_conn *) bc;
	sqlite3_stmt *st = c->st[STORE_STMT_META_GET];
	store_err rv = STORE_OK;
	int rc;

	store_sqlite_read_lock(c);
	if ((rc = store_sqlite_step(st)) != SQLITE_ROW) {
		rv = store_sqlite_err(c->db, rc, err, "reading the revision");
	} else {
		*out = store_col_u64(st, 0);
		store_error_clear(err);
	}
	store_sqlite_done(st);
	store_sqlite_read_unlock(c);
	return rv;
}

static store_err
store_sqlite_integrity_check(store_conn *bc, store_error *err)
{
	store_sqlite_conn *c = (store_sqlite_conn *) bc;
	sqlite3_stmt *st = NULL;
	const char *res;
	store_err rv = STORE_OK;
	int rc;

	store_sqlite_read_lock(c);
	/* Rare: prepared here rather than kept for the connection's life. */
	if ((rc = sqlite3_prepare_v2(c->db, "PRAGMA integrity_check", -1, &st,
	         NULL)) != SQLITE_OK ||
	    (rc = store_sqlite_step(st)) != SQLITE_ROW) {
		rv = store_sqlite_err(c->db, rc, err, "integrity_check");
	} else if ((res = (const char *) sqlite3_column_text(st, 0)) == NULL) {
		rv = store_error_set(err, STORE_ENOMEM, "",
		    "integrity_check: out of memory");
	} else if (strcmp(res, "ok") != 0) {
		rv = store_error_set(err, STORE_EIO, "", "integrity_check: %s",
		    res);
	} else {
		store_error_clear(err);
	}
	(void) sqlite3_finalize(st); /* outcome already decided */
	store_sqlite_read_unlock(c);
	return rv;
}

/* --- writes: request ids --- */

/* store_req_expired: was a request id remembered at created_at too long
 * ago to be replayed? Expired rows act as absent until pruned. */
static bool
store_req_expired(int64_t created_at, int64_t now, int64_t ttl)
{
	int64_t age;

	if (created_at >= now) {
		return false; /* the clock stepped back: still fresh */
	}
	return __builtin_sub_overflow(now, created_at, &age) || age >= ttl;
}

/* store_req_lookup finds w's request id. STORE_OK with *found = false
 * when it is new; with *found = true and res filled (replayed = true)
 * when it is the same request; STORE_EREQUEST_ID_REUSED when not. */
static store_err
store_req_lookup(store_wctx *x, const store_write *w, uint64_t hash,
    store_write_result *res, bool *found)
{
	sqlite3_stmt *st = NULL;
	store_record r;
	store_err rv;
	int flags;
	int rc = SQLITE_DONE;

	*found = false;
	memset(&r, 0, sizeof(r));
	/* An id is live in at most one generation table: it is stored again
	 * only after its earlier entry expired. */
	for (int t = 0; t < 2 && rc == SQLITE_DONE; t++) {
		st = x->c->st[t == 0 ? STORE_STMT_REQ_GET0 : STORE_STMT_REQ_GET1];
		rc = SQLITE_OK;
		store_bind_blob(st, 1, w->caller != NULL ? w->caller : "",
		    w->caller_len, &rc);
		store_bind_blob(st, 2, w->request_id, w->request_id_len, &rc);
		if (rc == SQLITE_OK) {
			rc = store_sqlite_step(st);
		}
		if (rc == SQLITE_ROW &&
		    store_req_expired(sqlite3_column_int64(st, 1), x->now,
		        x->lim->request_id_ttl_ms)) {
			rc = SQLITE_DONE;
		}
		if (rc == SQLITE_DONE) {
			store_sqlite_done(st);
		}
	}
	if (rc == SQLITE_DONE) {
		rv = STORE_OK;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		rv = store_sqlite_err(x->c->db, rc, &res->error,
		    "looking up request_id");
		goto out;
	}
	if (!store_request_hash_matches(x->lim, w, hash,
	        (uint64_t) sqlite3_column_int64(st, 0))) {
		rv = store_error_set(&res->error, STORE_EREQUEST_ID_REUSED,
		    "request_id",
		    "request_id was already used for a different request");
		goto out;
	}
	flags = sqlite3_column_int(st, 6);
	if ((rv = store_record_set_text(&r.key, w->key, w->key_len)) !=
	        STORE_OK ||
	    (rv = store_col_text(st, 7, &r.content_type)) != STORE_OK ||
	    (rv = store_col_text(st, 8, &r.updated_by)) != STORE_OK) {
		goto nomem;
	}
	r.key_len = w->key_len;
	r.version = store_col_u64(st, 2);
	r.revision = store_col_u64(st, 3);
	r.created_at_ms = sqlite3_column_int64(st, 4);
	r.updated_at_ms = sqlite3_column_int64(st, 5);
	r.deleted = (flags & STORE_SQLITE_F_DELETED) != 0;
	if ((flags & STORE_SQLITE_F_LOCKED) != 0 &&
	    (rv = store_record_lock(&r, st, 9, sqlite3_column_int64(st, 10),
	         store_col_u64(st, 11))) != STORE_OK) {
		goto nomem;
	}
	if (w->op == STORE_OP_LOCK &&
	    sqlite3_column_bytes(st, 12) == STORE_TOKEN_BYTES) {
		memcpy(res->token.b, sqlite3_column_blob(st, 12),
		    STORE_TOKEN_BYTES);
	}
	res->renewed = (flags & STORE_SQLITE_F_RENEWED) != 0;
	res->replayed = true;
	res->record = r;
	memset(&r, 0, sizeof(r));
	/* Identical to the stored write's value: the hash says so. */
	store_result_borrow_value(res, w);
	*found = true;
	store_error_clear(&res->error);
	goto out;
nomem:
	(void) store_error_set(&res->error, rv, "", "out of memory");
out:
	store_sqlite_done(st);
	store_record_fini(&r);
	return rv;
}

/* store_req_remember stores the result of a successful write under its
 * request id, in the write's transaction. */
/* store_req_rotate makes x->req_gen the generation of x->now, emptying
 * the table a new generation takes over (both, after a gap of more than
 * one generation). */
static int
store_req_rotate(store_wctx *x, int64_t *gen)
{
	int64_t ttl = x->lim->request_id_ttl_ms > 0 ? x->lim->request_id_ttl_ms
	                                            : 1;
	int64_t g = x->now >= 0 ? x->now / ttl : 0;
	int rc = SQLITE_OK;

	*gen = g;
	if (g == x->req_gen) {
		return SQLITE_OK;
	}
	/* A clock that stepped back keeps writing into the current table. */
	if (x->req_gen >= 0 && g < x->req_gen) {
		*gen = x->req_gen;
		return SQLITE_OK;
	}
	if (x->req_gen < 0 || g != x->req_gen + 1 || (g & 1) == 0) {
		rc = store_sqlite_run(x->c, STORE_STMT_REQ_CLEAR0);
	}
	if (rc == SQLITE_OK &&
	    (x->req_gen < 0 || g != x->req_gen + 1 || (g & 1) == 1)) {
		rc = store_sqlite_run(x->c, STORE_STMT_REQ_CLEAR1);
	}
	if (rc == SQLITE_OK) {
		x->req_gen = g;
		x->dirty = true;
	}
	return rc;
}

static store_err
store_req_remember(store_wctx *x, const store_write *w, uint64_t hash,
    store_write_result *res)
{
	sqlite3_stmt *st;
	const store_record *r = &res->record;
	int flags = (r->deleted ? STORE_SQLITE_F_DELETED : 0) |
	    (r->locked ? STORE_SQLITE_F_LOCKED : 0) |
	    (res->renewed ? STORE_SQLITE_F_RENEWED : 0);
	int64_t gen;
	int rc;

	if ((rc = store_req_rotate(x, &gen)) != SQLITE_OK) {
		return store_sqlite_err(x->c->db, rc, &res->error,
		    "rotating request ids");
	}
	st = x->c->st[(gen & 1) ? STORE_STMT_REQ_PUT1 : STORE_STMT_REQ_PUT0];
	store_bind_blob(st, 1, w->request_id, w->request_id_len, &rc);
	store_bind_i64(st, 2, (int64_t) hash, &rc);
	store_bind_i64(st, 3, x->now, &rc);
	store_bind_i64(st, 4, (int64_t) r->version, &rc);
	store_bind_i64(st, 5, (int64_t) r->revision, &rc);
	store_bind_i64(st, 6, r->created_at_ms, &rc);
	store_bind_i64(st, 7, r->updated_at_ms, &rc);
	store_bind_i64(st, 8, flags, &rc);
	store_bind_text(st, 9, r->content_type, strlen(r->content_type), &rc);
	store_bind_text(st, 10, r->updated_by, strlen(r->updated_by), &rc);
	if (r->locked) {
		store_bind_text(st, 11, r->lock.owner, strlen(r->lock.owner),
		    &rc);
		store_bind_i64(st, 12, r->lock.expires_at_ms, &rc);
		store_bind_i64(st, 13, (int64_t) r->lock.fencing_token, &rc);
	} else {
		store_bind_null(st, 11, &rc);
		store_bind_null(st, 12, &rc);
		store_bind_null(st, 13, &rc);
	}
	if (w->op == STORE_OP_LOCK) {
		store_bind_blob(st, 14, res->token.b, STORE_TOKEN_BYTES, &rc);
	} else {
		store_bind_null(st, 14, &rc);
	}
	store_bind_blob(st, 15, w->caller != NULL ? w->caller : "",
	    w->caller_len, &rc);
	if (rc == SQLITE_OK) {
		rc = store_sqlite_step(st);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	store_sqlite_done(st);
	if (rc != SQLITE_OK) {
		return store_sqlite_err(x->c->db, rc, &res->error,
		    "remembering request_id");
	}
	return STORE_OK;
}

/* --- writes: row mutations --- */

/* store_exec_key runs a statement whose first parameter is the key and
 * second (when has_v) an integer. */
static int
store_exec_key(store_sqlite_conn *c, store_stmt_id id, const store_write *w,
    bool has_v, int64_t v)
{
	sqlite3_stmt *st = c->st[id];
	int rc = SQLITE_OK;

	store_bind_blob(st, 1, w->key, w->key_len, &rc);
	if (has_v) {
		store_bind_i64(st, 2, v, &rc);
	}
	if (rc == SQLITE_OK) {
		rc = store_sqlite_step(st);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	store_sqlite_done(st);
	return rc;
}

/* store_put_data writes the data columns of the new version r for w's
 * key: UPDATE when a row exists (keeping its lock columns), else INSERT
 * without a lock. Before that, the superseded version moves to history,
 * and afterwards history is trimmed to the kept window. */
static int
store_put_data(store_wctx *x, const store_write *w, const store_row *row,
    const store_record *r)
{
	uint64_t keep = x->lim->history > 1 ? x->lim->history : 1;
	sqlite3_stmt *st;
	int rc = SQLITE_OK;

	if (row->exists && row->version > 0 && keep > 1 &&
	    (rc = store_exec_key(x->c, STORE_STMT_HIST_COPY, w, false, 0)) !=
	        SQLITE_OK) {
		return rc;
	}
	st = x->c->st[row->exists ? STORE_STMT_ROW_UPDATE
	                          : STORE_STMT_ROW_INSERT];
	store_bind_blob(st, 1, w->key, w->key_len, &rc);
	store_bind_i64(st, 2, (int64_t) r->version, &rc);
	store_bind_i64(st, 3, (int64_t) r->revision, &rc);
	store_bind_i64(st, 4, r->deleted ? 1 : 0, &rc);
	store_bind_i64(st, 5, r->created_at_ms, &rc);
	store_bind_i64(st, 6, r->updated_at_ms, &rc);
	store_bind_text(st, 7, r->content_type, strlen(r->content_type), &rc);
	store_bind_text(st, 8, r->updated_by, strlen(r->updated_by), &rc);
	if (r->deleted) {
		store_bind_null(st, 9, &rc);
	} else {
		/* The caller's buffer (the result borrows it too), which
		 * lives through the step. */
		store_bind_blob(st, 9, w->value, w->value_len, &rc);
	}
	if (!row->exists) {
		for (int i = 10; i <= 13; i++) {
			store_bind_null(st, i, &rc);
		}
	}
	if (rc == SQLITE_OK) {
		rc = store_sqlite_step(st);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	store_sqlite_done(st);
	if (rc != SQLITE_OK) {
		return rc;
	}
	if (r->version > keep) {
		rc = store_exec_key(x->c, STORE_STMT_HIST_TRIM, w, true,
		    (int64_t) (r->version - keep + 1));
	}
	return rc;
}

/* store_put_lock sets (owner != NULL) or clears the lock columns; a key
 * without a row gets a lock placeholder (version 0, not live). */
static int
store_put_lock(store_wctx *x, const store_write *w, const store_row *row,
    const store_token *token, int64_t expires, uint64_t fencing)
{
	bool set = token != NULL;
	sqlite3_stmt *st;
	int rc = SQLITE_OK;

	if (row->exists) {
		st = x->c->st[STORE_STMT_ROW_SET_LOCK];
		store_bind_blob(st, 1, w->key, w->key_len, &rc);
		if (set) {
			store_bind_text(st, 2, w->owner, w->owner_len, &rc);
			store_bind_blob(st, 3, token->b, STORE_TOKEN_BYTES,
			    &rc);
			store_bind_i64(st, 4, expires, &rc);
			store_bind_i64(st, 5, (int64_t) fencing, &rc);
		} else {
			for (int i = 2; i <= 5; i++) {
				store_bind_null(st, i, &rc);
			}
		}
	} else {
		if (DS_NEVER(!set)) {
			return SQLITE_INTERNAL; /* unlock needs a live lease */
		}
		st = x->c->st[STORE_STMT_ROW_INSERT];
		store_bind_blob(st, 1, w->key, w->key_len, &rc);
		store_bind_i64(st, 2, 0, &rc);  /* version: never existed */
		store_bind_i64(st, 3, 0, &rc);  /* revision */
		store_bind_i64(st, 4, 1, &rc);  /* not live */
		store_bind_i64(st, 5, 0, &rc);  /* created_at */
		store_bind_i64(st, 6, 0, &rc);  /* updated_at */
		store_bind_text(st, 7, "", 0, &rc);
		store_bind_text(st, 8, "", 0, &rc);
		store_bind_null(st, 9, &rc);
		store_bind_text(st, 10, w->owner, w->owner_len, &rc);
		store_bind_blob(st, 11, token->b, STORE_TOKEN_BYTES, &rc);
		store_bind_i64(st, 12, expires, &rc);
		store_bind_i64(st, 13, (int64_t) fencing, &rc);
	}
	if (rc == SQLITE_OK) {
		rc = store_sqlite_step(st);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	store_sqlite_done(st);
	return rc;
}

/* --- writes: the rules --- */

/* store_precond_ok: does the row satisfy w's precondition? */
static bool
store_precond_ok(const store_write *w, const store_row *row)
{
	bool live = row->exists && !row->deleted;

	switch (w->precond.kind) {
	case STORE_PRECOND_IF_VERSION:
		return live && row->version == w->precond.version;
	case STORE_PRECOND_IF_ABSENT:
		return !live;
	case STORE_PRECOND_IF_EXISTS:
		return live;
	case STORE_PRECOND_UNCONDITIONAL:
		return true;
	case STORE_PRECOND_IF_VERSION_IN:
		/* Checked here, in the write's transaction: no read-then-CAS
		 * window, and a retry hashes the same list. */
		for (size_t i = 0; live && i < w->precond.n_versions; i++) {
			if (row->version == w->precond.versions[i]) {
				return true;
			}
		}
		return false;
	case STORE_PRECOND_NONE:
		break;
	}
	return false; /* store_validate refused it already */
}

/* store_refuse_lease fills res for a lease refusal: ELOCKED carries the
 * record's metadata and lock, the others only the error. The row
 * statement must still be positioned. */
static store_err
store_refuse_lease(store_wctx *x, const store_write *w, const store_row *row,
    store_err code, store_write_result *res)
{
	sqlite3_stmt *st = x->c->st[STORE_STMT_ROW_GET];
	store_err rv;

	if (code == STORE_ELOCKED &&
	    (rv = store_record_from_row(&res->record, st, row, w->key,
	         w->key_len, x->now)) != STORE_OK) {
		return store_error_set(&res->error, rv, "", "out of memory");
	}
	return store_lease_error(&res->error, code,
	    res->record.locked ? res->record.lock.owner : NULL, &row->lease);
}

/* store_refuse_conflict fills res with VERSION_CONFLICT and the current
 * record with its value. Resets ROW_GET to read the value. */
static store_err
store_refuse_conflict(store_wctx *x, const store_write *w,
    const store_row *row, store_write_result *res)
{
	sqlite3_stmt *st = x->c->st[STORE_STMT_ROW_GET];
	sqlite3_stmt *vs = x->c->st[STORE_STMT_ROW_VALUE];
	bool live = row->exists && !row->deleted;
	store_err rv;
	int rc = SQLITE_OK;

	if ((rv = store_record_from_row(&res->record, st, row, w->key,
	         w->key_len, x->now)) != STORE_OK) {
		return store_error_set(&res->error, rv, "", "out of memory");
	}
	store_sqlite_done(st);
	if (live) {
		/* The value is read only here: the common, successful path
		 * never loads it. */
		store_bind_blob(vs, 1, w->key, w->key_len, &rc);
		if (rc == SQLITE_OK) {
			rc = store_sqlite_step(vs);
		}
		if (rc != SQLITE_ROW) {
			rv = store_sqlite_err(x->c->db, rc, &res->error,
			    "reading the current value");
		} else if ((rv = store_col_value(vs, 0, &res->record)) !=
		    STORE_OK) {
			(void) store_error_set(&res->error, rv, "",
			    "out of memory");
		}
		store_sqlite_done(vs);
		if (rv != STORE_OK) {
			return rv;
		}
	}
	if (live) {
		return store_error_set(&res->error, STORE_ECONFLICT,
		    "precondition",
		    "version conflict: the key is at version %llu",
		    (unsigned long long) row->version);
	}
	if (row->exists && row->version > 0) {
		return store_error_set(&res->error, STORE_ECONFLICT,
		    "precondition",
		    "version conflict: the key was deleted at version %llu",
		    (unsigned long long) row->version);
	}
	return store_error_set(&res->error, STORE_ECONFLICT, "precondition",
	    "version conflict: the key does not exist");
}

/* store_write_data applies an Update or Delete. */
static store_err
store_write_data(store_wctx *x, const store_write *w, store_write_result *res)
{
	sqlite3_stmt *st = x->c->st[STORE_STMT_ROW_GET];
	bool is_delete = w->op == STORE_OP_DELETE;
	store_record *r = &res->record;
	store_row row;
	store_err rv;
	int rc;

	if ((rc = store_row_read(x->c, STORE_STMT_ROW_GET, w->key, w->key_len,
	         &row)) != SQLITE_OK) {
		rv = store_sqlite_err(x->c->db, rc, &res->error,
		    "reading the record");
		goto out;
	}
	if ((rv = store_lease_check_write(&row.lease, x->now, w->has_token,
	         &w->token)) != STORE_OK) {
		rv = store_refuse_lease(x, w, &row, rv, res);
		goto out;
	}
	if (!store_precond_ok(w, &row) ||
	    (is_delete && (!row.exists || row.deleted))) {
		if (is_delete &&
		    w->precond.kind == STORE_PRECOND_UNCONDITIONAL) {
			rv = store_error_set(&res->error, STORE_ENOTFOUND,
			    "key", "key not found");
			goto out;
		}
		rv = store_refuse_conflict(x, w, &row, res);
		goto out;
	}

	/* Build the whole result before touching the database, so running
	 * out of memory here changes nothing. */
	if ((rv = store_record_set_text(&r->key, w->key, w->key_len)) !=
	        STORE_OK ||
	    (rv = store_record_set_text(&r->content_type,
	         is_delete ? "" : w->content_type,
	         is_delete ? 0 : w->content_type_len)) != STORE_OK ||
	    (rv = store_record_set_text(&r->updated_by, w->author,
	         w->author_len)) != STORE_OK) {
		goto nomem;
	}
	r->key_len = w->key_len;
	store_result_borrow_value(res, w); /* UPDATE: no copy */
	r->version = row.version + 1;
	r->revision = x->revision + 1;
	r->deleted = is_delete;
	r->created_at_ms = row.exists && (!row.deleted || is_delete)
	    ? row.created_at
	    : x->now;
	r->updated_at_ms = x->now;
	/* A write neither takes nor releases a lock. */
	if (store_lease_live(&row.lease, x->now) &&
	    (rv = store_record_lock(r, st, STORE_COL_LOCK_OWNER,
	         row.lease.expires_at_ms, row.lease.fencing_token)) !=
	        STORE_OK) {
		goto nomem;
	}
	store_sqlite_done(st);
	if ((rc = store_put_data(x, w, &row, r)) != SQLITE_OK) {
		rv = store_sqlite_err(x->c->db, rc, &res->error,
		    is_delete ? "deleting" : "updating");
		goto out;
	}
	x->revision = r->revision;
	x->dirty = true;
	rv = STORE_OK;
	goto out;
nomem:
	(void) store_error_set(&res->error, rv, "", "out of memory");
out:
	store_sqlite_done(st);
	return rv;
}

/* store_write_lock applies a Lock (acquire or renew). */
static store_err
store_write_lock(store_wctx *x, const store_write *w, store_write_result *res)
{
	sqlite3_stmt *st = x->c->st[STORE_STMT_ROW_GET];
	store_record *r = &res->record;
	store_lease_action action;
	store_token token;
	uint64_t fencing;
	int64_t expires;
	store_row row;
	store_err rv;
	int rc;

	if ((rc = store_row_read(x->c, STORE_STMT_ROW_GET, w->key, w->key_len,
	         &row)) != SQLITE_OK) {
		rv = store_sqlite_err(x->c->db, rc, &res->error,
		    "reading the record");
		goto out;
	}
	if ((rv = store_lease_check_lock(&row.lease, x->now, w->has_token,
	         &w->token, &action)) != STORE_OK) {
		rv = store_refuse_lease(x, w, &row, rv, res);
		goto out;
	}
	if (action == STORE_LEASE_ACQUIRE) {
		if (ds_random_bytes(token.b, sizeof(token.b)) != DS_OK) {
			rv = store_error_set(&res->error, STORE_EIO, "",
			    "getrandom failed");
			goto out;
		}
		fencing = x->fencing + 1;
	} else {
		token = w->token;
		fencing = row.lease.fencing_token;
	}
	expires = store_lease_expiry(x->now,
	    store_effective_ttl(x->lim, w->ttl_ms));

	/* The record's metadata with the new lock; built before writing. */
	row.lease.held = false; /* no old lock in the result */
	if ((rv = store_record_from_row(r, st, &row, w->key, w->key_len,
	         x->now)) != STORE_OK ||
	    (rv = store_record_set_text(&r->lock.owner, w->owner,
	         w->owner_len)) != STORE_OK) {
		(void) store_error_set(&res->error, rv, "", "out of memory");
		goto out;
	}
	r->locked = true;
	r->lock.expires_at_ms = expires;
	r->lock.fencing_token = fencing;
	store_sqlite_done(st);
	if ((rc = store_put_lock(x, w, &row, &token, expires, fencing)) !=
	    SQLITE_OK) {
		rv = store_sqlite_err(x->c->db, rc, &res->error, "locking");
		goto out;
	}
	if (action == STORE_LEASE_ACQUIRE) {
		x->fencing = fencing;
		x->dirty = true;
	}
	res->token = token;
	res->renewed = action == STORE_LEASE_RENEW;
out:
	store_sqlite_done(st);
	return rv;
}

/* store_write_unlock applies an Unlock. */
static store_err
store_write_unlock(store_wctx *x, const store_write *w,
    store_write_result *res)
{
	sqlite3_stmt *st = x->c->st[STORE_STMT_ROW_GET];
	store_row row;
	store_err rv;
	int rc;

	if ((rc = store_row_read(x->c, STORE_STMT_ROW_GET, w->key, w->key_len,
	         &row)) != SQLITE_OK) {
		rv = store_sqlite_err(x->c->db, rc, &res->error,
		    "reading the record");
		goto out;
	}
	if ((rv = store_lease_check_unlock(&row.lease, x->now, &w->token)) !=
	    STORE_OK) {
		rv = store_lease_error(&res->error, rv, NULL, &row.lease);
		goto out;
	}
	row.lease.held = false; /* the result shows the state after */
	if ((rv = store_record_from_row(&res->record, st, &row, w->key,
	         w->key_len, x->now)) != STORE_OK) {
		(void) store_error_set(&res->error, rv, "", "out of memory");
		goto out;
	}
	store_sqlite_done(st);
	/* A placeholder only existed to carry the lock. */
	rc = row.version == 0
	    ? store_exec_key(x->c, STORE_STMT_ROW_DELETE, w, false, 0)
	    : store_put_lock(x, w, &row, NULL, 0, 0);
	if (rc != SQLITE_OK) {
		rv = store_sqlite_err(x->c->db, rc, &res->error, "unlocking");
	}
out:
	store_sqlite_done(st);
	return rv;
}

/* store_write_one applies a validated write inside the current savepoint:
 * request-id replay, then the op's own checks and mutations, then
 * remembering the request id. On failure nothing it did may survive:
 * the caller rolls the savepoint back. */
static store_err
store_write_one(store_wctx *x, const store_write *w, store_write_result *res)
{
	bool idempotent = w->request_id_len > 0;
	uint64_t hash = 0;
	bool found;
	store_err rv;

	if (idempotent) {
		hash = store_write_hash(x->lim, w); /* store_prepare's */
		if ((rv = store_req_lookup(x, w, hash, res, &found)) !=
		        STORE_OK ||
		    found) {
			return rv;
		}
	}
	switch (w->op) {
	case STORE_OP_UPDATE:
	case STORE_OP_DELETE:
		rv = store_write_data(x, w, res);
		break;
	case STORE_OP_LOCK:
		rv = store_write_lock(x, w, res);
		break;
	case STORE_OP_UNLOCK:
		rv = store_write_unlock(x, w, res);
		break;
	default:
		rv = store_error_set(&res->error, STORE_EINVAL, "op",
		    "op %d is unknown", (int) w->op);
		break;
	}
	if (rv == STORE_OK && idempotent) {
		rv = store_req_remember(x, w, hash, res);
	}
	if (rv == STORE_OK) {
		store_error_clear(&res->error);
	}
	return rv;
}

/* --- writes: transactions and batches --- */

/* store_hard: a failure that says nothing about the request (the
 * database or memory failed): the result then carries the error only. */
static bool
store_hard(store_err rv)
{
	return rv == STORE_ENOMEM || rv == STORE_EIO || rv == STORE_ETOOLARGE ||
	    rv == STORE_EBUSY;
}

/* store_fail_all gives every result the batch's error, freeing whatever
 * the results already held. */
static void
store_fail_all(store_write_result *results, size_t n, const store_error *e)
{
	for (size_t i = 0; i < n; i++) {
		store_write_result_fini(&results[i]);
		results[i].error = *e;
	}
}

/* store_batch_write_fast runs write w without a savepoint. A savepoint
 * makes SQLite copy every page a write touches into a statement journal
 * first, which cost ~15 % of a write's instructions; but every refusal
 * (conflict, lock, bad request id) happens before the write changes
 * anything, so only a failure midway needs one. Returns STORE_OK to go
 * on (w succeeded or was refused alone), or STORE_SQLITE_REDO when w
 * failed after changing something: the caller then rolls the whole batch
 * back and runs it again write by write in savepoints (store_batch_write),
 * which isolates the failure. */
#define STORE_SQLITE_REDO (-1)

static int
store_batch_write_fast(store_wctx *x, const store_write *w,
    store_write_result *res)
{
	uint64_t revision = x->revision;
	uint64_t fencing = x->fencing;
	int64_t req_gen = x->req_gen;
	bool dirty = x->dirty;
	sqlite3_int64 before = sqlite3_total_changes64(x->c->db);
	store_err rv;

	x->now = ds_clock_now_ms(x->c->base.s->clock);
	if ((rv = store_write_one(x, w, res)) == STORE_OK) {
		return STORE_OK;
	}
	if (store_hard(rv) || sqlite3_get_autocommit(x->c->db) ||
	    sqlite3_total_changes64(x->c->db) != before) {
		return STORE_SQLITE_REDO;
	}
	x->revision = revision;
	x->fencing = fencing;
	x->req_gen = req_gen;
	x->dirty = dirty;
	return STORE_OK;
}

/* store_batch_write runs write w in its own savepoint. Returns STORE_OK
 * when the batch can go on (w succeeded or failed alone), or the error
 * that lost the whole transaction, with its detail in *e. */
static store_err
store_batch_write(store_wctx *x, const store_write *w,
    store_write_result *res, store_error *e)
{
	uint64_t revision = x->revision;
	uint64_t fencing = x->fencing;
	int64_t req_gen = x->req_gen;
	bool dirty = x->dirty;
	store_err rv;
	int rc;

	x->now = ds_clock_now_ms(x->c->base.s->clock);
	if ((rc = store_sqlite_run(x->c, STORE_STMT_SAVEPOINT)) != SQLITE_OK) {
		rv = store_sqlite_err(x->c->db, rc, &res->error,
		    "opening a savepoint");
		goto lost_or_alone;
	}
	if ((rv = store_write_one(x, w, res)) == STORE_OK) {
		if ((rc = store_sqlite_run(x->c, STORE_STMT_RELEASE)) ==
		    SQLITE_OK) {
			return STORE_OK;
		}
		rv = store_sqlite_err(x->c->db, rc, &res->error,
		    "releasing a savepoint");
	}
	/* Refused or failed: undo whatever the write did. A refusal did
	 * nothing, so this is cheap; a failure midway (out of memory, disk
	 * full) leaves the batch's other writes intact. */
	x->revision = revision;
	x->fencing = fencing;
	x->req_gen = req_gen;
	x->dirty = dirty;
	if (store_hard(rv)) {
		store_error err = res->error;

		store_write_result_fini(res);
		res->error = err;
	}
	if (sqlite3_get_autocommit(x->c->db)) {
		goto lost; /* SQLite already rolled everything back */
	}
	if ((rc = store_sqlite_run(x->c, STORE_STMT_ROLLBACK_TO)) !=
	        SQLITE_OK ||
	    (rc = store_sqlite_run(x->c, STORE_STMT_RELEASE)) != SQLITE_OK) {
		/* The write may be half applied: nothing of the batch may
		 * commit. */
		(void) store_sqlite_err(x->c->db, rc, &res->error,
		    "rolling back a savepoint");
		goto lost;
	}
	return STORE_OK;
lost_or_alone:
	/* Nothing of w ran. The batch goes on unless SQLite rolled the
	 * whole transaction back (it does on some I/O and memory errors). */
	if (!sqlite3_get_autocommit(x->c->db)) {
		return STORE_OK;
	}
lost:
	*e = res->error;
	if (e->code == STORE_OK) {
		(void) store_error_set(e, STORE_EIO, "",
		    "the transaction was rolled back");
	}
	return e->code;
}

/* store_batch_finish writes the counters and commits. */
static store_err
store_batch_finish(store_wctx *x, store_error *e)
{
	sqlite3_stmt *st;
	int rc = SQLITE_OK;

	if (x->dirty) {
		st = x->c->st[STORE_STMT_META_SET];
		rc = SQLITE_OK;
		store_bind_i64(st, 1, (int64_t) x->revision, &rc);
		store_bind_i64(st, 2, (int64_t) x->fencing, &rc);
		store_bind_i64(st, 3, x->req_gen, &rc);
		if (rc == SQLITE_OK) {
			rc = store_sqlite_step(st);
			rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
		}
		store_sqlite_done(st);
		if (rc != SQLITE_OK) {
			return store_sqlite_err(x->c->db, rc, e,
			    "writing the revision");
		}
	}
	if ((rc = store_sqlite_run(x->c, STORE_STMT_COMMIT)) != SQLITE_OK) {
		return store_sqlite_err(x->c->db, rc, e, "committing");
	}
	return STORE_OK;
}

/* store_batch_begin starts the write transaction and loads the counters. */
static store_err
store_batch_begin(store_wctx *x, store_error *e)
{
	sqlite3_stmt *st = x->c->st[STORE_STMT_META_GET];
	int rc;

	if (!sqlite3_get_autocommit(x->c->db)) {
		/* Only a failed ROLLBACK can leave one open; clear it. */
		(void) store_sqlite_run(x->c, STORE_STMT_ROLLBACK);
	}
	if ((rc = store_sqlite_run(x->c, STORE_STMT_BEGIN_WRITE)) !=
	    SQLITE_OK) {
		return store_sqlite_err(x->c->db, rc, e, "beginning a write");
	}
	if ((rc = store_sqlite_step(st)) != SQLITE_ROW) {
		store_sqlite_done(st);
		return store_sqlite_err(x->c->db, rc, e, "reading the revision");
	}
	x->revision = store_col_u64(st, 0);
	x->fencing = store_col_u64(st, 1);
	x->req_gen = sqlite3_column_int64(st, 2);
	x->dirty = false;
	store_sqlite_done(st);
	return STORE_OK;
}

/* store_batch_run runs one transaction over the validated writes of ws.
 * safe: a savepoint per write (see store_batch_write_fast). Returns
 * STORE_OK once committed, or with *redo set (fast mode only) after
 * rolling back, or the error that lost the transaction (rolled back,
 * detail in *e). Caller holds write_mu. */
static store_err
store_batch_run(store_sqlite_conn *c, store *s, const store_write *ws,
    size_t n, store_write_result *results, bool safe, bool *redo,
    store_error *e)
{
	store_wctx x;
	store_err rv;

	memset(&x, 0, sizeof(x));
	x.c = c;
	x.lim = &s->limits;
	x.now = ds_clock_now_ms(s->clock);
	if ((rv = store_batch_begin(&x, e)) != STORE_OK) {
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		if (results[i].error.code != STORE_OK) {
			continue; /* refused by store_validate */
		}
		if (!safe) {
			if (store_batch_write_fast(&x, &ws[i], &results[i]) ==
			    STORE_SQLITE_REDO) {
				*redo = true;
				rv = STORE_OK;
				goto fail;
			}
			continue;
		}
		if ((rv = store_batch_write(&x, &ws[i], &results[i], e)) !=
		    STORE_OK) {
			goto fail;
		}
	}
	if ((rv = store_batch_finish(&x, e)) != STORE_OK) {
		goto fail;
	}
	return STORE_OK;
fail:
	if (!sqlite3_get_autocommit(c->db)) {
		/* If even ROLLBACK fails the next batch retries it first. */
		(void) store_sqlite_run(c, STORE_STMT_ROLLBACK);
	}
	return rv;
}

static store_err
store_sqlite_apply_batch(store_conn *bc, const store_write *ws, size_t n,
    store_write_result *results)
{
	store_sqlite_conn *c = (store_sqlite_conn *) bc;
	store_sqlite *sq = bc->s->be_data;
	store_error e;
	store_err rv;
	bool redo = false;
	size_t nvalid = 0;

	/* Validation needs no SQL: refuse bad writes before BEGIN (unless
	 * store_prepare did it where the write was received). */
	for (size_t i = 0; i < n; i++) {
		if (store_write_check(&bc->s->limits, &ws[i],
		        &results[i].error) == STORE_OK) {
			nvalid++;
		}
	}
	if (nvalid == 0) {
		return STORE_OK;
	}
	memset(&e, 0, sizeof(e));
	(void) pthread_mutex_lock(&sq->write_mu); /* cannot fail: not held */
	rv = store_batch_run(c, bc->s, ws, n, results, false, &redo, &e);
	if (rv == STORE_OK && redo) {
		/* A write failed after changing something: run the batch again
		 * with a savepoint per write, so that write fails alone. */
		for (size_t i = 0; i < n; i++) {
			store_write_result_fini(&results[i]);
			memset(&results[i], 0, sizeof(results[i]));
			(void) store_write_check(&bc->s->limits, &ws[i],
			    &results[i].error);
		}
		memset(&e, 0, sizeof(e));
		rv = store_batch_run(c, bc->s, ws, n, results, true, &redo, &e);
	}
	(void) pthread_mutex_unlock(&sq->write_mu); /* held */
	if (rv != STORE_OK) {
		store_fail_all(results, n, &e);
	}
	return rv;
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
    uint64_t version, store_record *out, store_error *err)
{
	store_err rv;

	store_sqlite_wait_begin(c->s);
	rv = store_sqlite_get(c, key, key_len, version, out, err);
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
store_sqlite_integrity_check_bounded(store_conn *c, store_error *err)
{
	store_err rv;

	store_sqlite_wait_begin(c->s);
	rv = store_sqlite_integrity_check(c, err);
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
};
