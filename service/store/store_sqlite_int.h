/*
 * store_sqlite_int.h - private to the SQLite backend (store_sqlite*.c and
 * store_schema.c): statement ids, the row and write-context structs, the
 * SQLite plumbing and bind/column helpers, and the entry points each file
 * of the backend provides to the others.
 *
 *   store_sqlite.c        open, connect, pragmas, checkpointer, plumbing,
 *                         the vtable
 *   store_sqlite_read.c   Get, List, revision, integrity check
 *   store_sqlite_reqid.c  request ids
 *   store_sqlite_write.c  the data, lock and unlock rules
 *   store_sqlite_batch.c  batches and their redo
 *   store_sqlite_changes.c  the change log: read, sweep, compaction
 *   store_sqlite_auth.c   tokens
 *   store_schema.c        the schema and its migrations
 */
#ifndef STORE_SQLITE_INT_H
#define STORE_SQLITE_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

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
	STORE_STMT_VER_PUT,
	STORE_STMT_VER_TRIM,
	STORE_STMT_VER_TRIM_RANGE,
	STORE_STMT_HIST_GET,
	STORE_STMT_LIST_FROM,
	STORE_STMT_LIST_AFTER,
	STORE_STMT_REQ_GET,
	STORE_STMT_REQ_PUT0,
	STORE_STMT_REQ_PUT1,
	STORE_STMT_REQ_CLEAR0,
	STORE_STMT_REQ_CLEAR1,
	STORE_STMT_DATA_VERSION,
	STORE_STMT_READ_GET_REV,
	STORE_STMT_META_LOG_GET,
	STORE_STMT_META_COMPACT_SET,
	STORE_STMT_CHG_PUT,
	STORE_STMT_CHG_KEY,
	STORE_STMT_CHG_RANGE,
	STORE_STMT_CHG_COMPACT_SCAN,
	STORE_STMT_CHG_COMPACT_DEL,
	STORE_STMT_SWEEP_FIND,
	STORE_STMT_SWEEP_NEXT,
	STORE_STMT_ROW_SWEEP,
	STORE_STMT_COUNT
} store_stmt_id;

/* The head row's columns, in this order, start ROW_GET, READ_GET and
 * LIST. */
#define STORE_ROW_COLUMNS                                                     \
	"version, revision, deleted, created_at, updated_at, content_type, "  \
	"updated_by, lock_owner, lock_token, lock_expires_at, lock_fencing, " \
	"kept"
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
	STORE_COL_KEPT,
	STORE_COL_VALUE, /* READ_GET: the value; LIST: the key */
	STORE_COL_STORE_REVISION, /* READ_GET_REV: meta's revision */
};

/* The change log's columns (CHG_KEY, CHG_RANGE), in this order. */
#define STORE_CHG_COLUMNS                                                     \
	"revision, type, version, deleted, created_at, updated_at,"           \
	" content_type, updated_by, lock_owner, lock_expires_at,"             \
	" lock_fencing, key"
enum {
	STORE_CHG_REVISION,
	STORE_CHG_TYPE,
	STORE_CHG_VERSION,
	STORE_CHG_DELETED,
	STORE_CHG_CREATED_AT,
	STORE_CHG_UPDATED_AT,
	STORE_CHG_CONTENT_TYPE,
	STORE_CHG_UPDATED_BY,
	STORE_CHG_LOCK_OWNER,
	STORE_CHG_LOCK_EXPIRES_AT,
	STORE_CHG_LOCK_FENCING,
	STORE_CHG_KEY,
};

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

/* store_row: a head row (records) as the write rules see it. */
typedef struct store_row {
	bool exists;       /* a row, maybe a tombstone or lock placeholder */
	bool deleted;      /* tombstone or placeholder: not live */
	uint64_t version;  /* 0 for a lock placeholder */
	uint64_t revision;
	int64_t created_at;
	int64_t updated_at;
	uint64_t kept;     /* the history window its versions were trimmed to */
	store_lease lease;
} store_row;

/* store_counters: the meta row as advanced so far in a batch. A write
 * that is refused or undone restores a copy taken before it ran. */
typedef struct store_counters {
	uint64_t revision;
	uint64_t fencing;
	int64_t req_gen; /* request-id generation the batch writes into */
	bool dirty;      /* differs from the meta row */
} store_counters;

/* store_wctx: the state of one write transaction. */
typedef struct store_wctx {
	store_sqlite_conn *c;
	const store_limits *lim;
	int64_t now;        /* clock at the current write */
	store_counters cnt; /* counters as advanced so far in this batch */
} store_wctx;

/* --- plumbing (store_sqlite.c) --- */

/* store_sqlite_step steps st, retrying busy results the busy handler does
 * not see, within the running call's lock-wait bound. */
int store_sqlite_step(sqlite3_stmt *st);

/* store_sqlite_done resets st and drops its (borrowed) bindings. */
void store_sqlite_done(sqlite3_stmt *st);

/* store_sqlite_run runs a statement that returns no rows: SQLITE_OK or
 * the error code. */
int store_sqlite_run(store_sqlite_conn *c, store_stmt_id id);

/* store_sqlite_err fills err for SQLite result rc; what names the step. */
store_err store_sqlite_err(sqlite3 *db, int rc, store_error *err,
    const char *what);

/* Binding helpers: each does nothing once *rc holds an error. Pointers
 * are bound SQLITE_STATIC, borrowed until store_sqlite_done(). */
void store_bind_blob(sqlite3_stmt *st, int i, const void *p, size_t n,
    int *rc);
void store_bind_text(sqlite3_stmt *st, int i, const char *p, size_t n,
    int *rc);
void store_bind_i64(sqlite3_stmt *st, int i, int64_t v, int *rc);
void store_bind_null(sqlite3_stmt *st, int i, int *rc);

uint64_t store_col_u64(sqlite3_stmt *st, int i);

/* store_col_text copies a TEXT/BLOB column into an owned C string (NULL
 * reads as ""). */
store_err store_col_text(sqlite3_stmt *st, int i, char **out);

/* store_col_value copies a BLOB column into r->value (NULL when empty). */
store_err store_col_value(sqlite3_stmt *st, int i, store_record *r);

/* store_col_lease reads the lock columns of a ROW_GET/READ_GET row. */
void store_col_lease(sqlite3_stmt *st, store_lease *l);

/* store_record_lock sets r's lock from a live lease whose owner is column
 * owner_col of st. */
store_err store_record_lock(store_record *r, sqlite3_stmt *st, int owner_col,
    int64_t expires, uint64_t fencing);

/* store_record_from_row fills r with the metadata of the row st is
 * positioned on (just the key when the key has no row) and its lock when
 * the lease is live. */
store_err store_record_from_row(store_record *r, sqlite3_stmt *st,
    const store_row *row, const char *key, size_t key_len, int64_t now);

/* store_row_read positions statement id (ROW_GET or READ_GET) on key and
 * fills row; the caller must store_sqlite_done() it on every path. */
int store_row_read(store_sqlite_conn *c, store_stmt_id id, const char *key,
    size_t key_len, store_row *row);

/* --- reads (store_sqlite_read.c): the vtable's entries --- */

/* store_sqlite_read_lock / _unlock bracket a read: on ":memory:" (no
 * WAL) they take write_mu, so readers take turns with writers; on a file
 * they do nothing. */
void store_sqlite_read_lock(store_sqlite_conn *c);
void store_sqlite_read_unlock(store_sqlite_conn *c);


store_err store_sqlite_get(store_conn *bc, const char *key, size_t key_len,
    uint64_t version, store_record *out, uint64_t *revision,
    store_error *err);
store_err store_sqlite_list(store_conn *bc, const store_list_req *req,
    store_list_page *out, store_error *err);
store_err store_sqlite_revision(store_conn *bc, uint64_t *out,
    store_error *err);
store_err store_sqlite_integrity_check(store_conn *bc, store_error *err);
store_err store_sqlite_peek(store_conn *bc, const store_write *const *ws,
    size_t n, uint64_t *data_version, bool *seen, store_error *err);

/* --- request ids (store_sqlite_reqid.c) --- */

/* store_req_lookup finds w's request id: STORE_OK with *found = false
 * when it is new; with *found = true and res filled (replayed) when it is
 * the same request; STORE_EREQUEST_ID_REUSED when not. */
store_err store_req_lookup(store_wctx *x, const store_write *w, uint64_t hash,
    store_write_result *res, bool *found);

/* store_req_remember stores the result of a successful write under its
 * request id, in the write's transaction. */
store_err store_req_remember(store_wctx *x, const store_write *w,
    uint64_t hash, store_write_result *res);

/* --- the write rules (store_sqlite_write.c) --- */

/* store_write_one applies one validated write in the current transaction:
 * request-id replay, the op's checks and mutations, remembering the id.
 * On failure the caller undoes whatever it changed. */
store_err store_write_one(store_wctx *x, const store_write *w,
    store_write_result *res);

/* store_log_change appends r's change to the change log (revision
 * r->revision, x->now as its time): SQLITE_OK or the error code. */
int store_log_change(store_wctx *x, store_event_type type,
    const store_record *r);

/* --- batches (store_sqlite_batch.c): the vtable's entry --- */

store_err store_sqlite_apply_batch(store_conn *bc, const store_write *ws,
    size_t n, store_write_result *results);

/* store_batch_begin starts a write transaction on x->c (BEGIN IMMEDIATE)
 * and loads the counters into x->cnt; store_batch_finish writes them back
 * when dirty and commits. On a failure of either the caller rolls back.
 * Both need write_mu held. */
store_err store_batch_begin(store_wctx *x, store_error *e);
store_err store_batch_finish(store_wctx *x, store_error *e);

/* --- the change log (store_sqlite_changes.c): the vtable's entries --- */

store_err store_sqlite_changes_read(store_conn *bc,
    const store_changes_req *req, store_changes_page *page,
    store_error *err);
store_err store_sqlite_sweep_expired(store_conn *bc, size_t max, size_t *n,
    int64_t *next_expiry_ms, store_error *err);
store_err store_sqlite_compact_changes(store_conn *bc,
    uint64_t retain_revisions, int64_t retain_ms, size_t max, size_t *n,
    store_error *err);

/* --- tokens (store_sqlite_auth.c): the vtable's entries --- */

store_err store_sqlite_auth_create(store_conn *bc, const char *name,
    const uint8_t hash[32], const char *grants, store_auth_token *out,
    store_error *err);
store_err store_sqlite_auth_revoke(store_conn *bc, const char *name,
    store_auth_token *out, store_error *err);
store_err store_sqlite_auth_list(store_conn *bc, store_auth_token **out,
    size_t *n, uint64_t *generation, store_error *err);
store_err store_sqlite_auth_generation(store_conn *bc, uint64_t *generation,
    store_error *err);

/* --- schema (store_schema.c) --- */

/* store_schema_migrate brings the database on db to the current schema
 * in one IMMEDIATE transaction, or refuses a file that is not ours or is
 * newer than this build (STORE_EIO, field "path"). */
store_err store_schema_migrate(sqlite3 *db, store_error *err);

#endif /* STORE_SQLITE_INT_H */
