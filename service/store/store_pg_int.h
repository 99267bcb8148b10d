/*
 * store_pg_int.h - private to the PostgreSQL backend (store_pg*.c): the
 * connection struct, statement ids, the parameter builder, the libpq
 * plumbing (plain and pipelined execution, error mapping, reconnect) and
 * the entry points each file provides to the others.
 *
 *   store_pg.c         open, schema, connections, reconnect, errors, the
 *                      plumbing, revision, peek, integrity check,
 *                      changes_wait, the vtable
 *   store_pg_read.c    Get, List, the change log's reads
 *   store_pg_write.c   the write rules, batches, sweep, compaction
 *   store_pg_auth.c    tokens
 *
 * Why the rules run in C (the brief allowed a PL/pgSQL function per op
 * instead): the lease decisions, preconditions and every error message
 * then come from the same code as the SQLite backend's (store_lease.c and
 * the helpers here mirror store_sqlite_write.c line for line), so the two
 * backends cannot drift apart, and the token is compared in constant time
 * in C. The cost: a write's mutations cannot be sent before its row was
 * read, so a batch takes two round trips instead of one (see
 * store_pg_write.c: the reads of many writes share one).
 */
#ifndef STORE_PG_INT_H
#define STORE_PG_INT_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "store_int.h"

/* Request-id result flags (requests.flags), as in the SQLite backend. */
#define STORE_PG_F_DELETED 1
#define STORE_PG_F_LOCKED 2
#define STORE_PG_F_RENEWED 4

/* The NOTIFY channel every committing transaction signals. */
#define STORE_PG_CHANNEL "datasync_changes"

/* The most parameters any statement takes. */
#define STORE_PG_MAX_PARAMS 16

/* Request ids one batch prunes (expired for longer than
 * request_id_ttl_ms): bounded so that a batch after a long quiet spell
 * does not stall the writer; every batch prunes a little. */
#define STORE_PG_PRUNE_MAX 64

/* The most writes whose reads one round trip sends (store_pg_write.c):
 * bounds the results held at once and the quadratic check that their
 * keys and request ids differ. */
#define STORE_PG_GROUP_MAX 128

typedef enum store_pg_stmt {
	STORE_PG_BEGIN,
	STORE_PG_BEGIN_READ,
	STORE_PG_COMMIT,
	STORE_PG_ROLLBACK,
	STORE_PG_SAVEPOINT,
	STORE_PG_RELEASE,
	STORE_PG_ROLLBACK_TO,
	STORE_PG_META_LOCK,
	STORE_PG_META_LOCK_NOWAIT,
	STORE_PG_META_SET,
	STORE_PG_META_GET,
	STORE_PG_META_COMPACT_SET,
	STORE_PG_NOTIFY,
	STORE_PG_WRITE_READ,
	STORE_PG_ROW_VALUE,
	STORE_PG_ROW_PUT,
	STORE_PG_ROW_PLACEHOLDER,
	STORE_PG_ROW_SET_LOCK,
	STORE_PG_ROW_DELETE,
	STORE_PG_ROW_SWEEP,
	STORE_PG_VER_PUT,
	STORE_PG_VER_TRIM,
	STORE_PG_VER_TRIM_RANGE,
	STORE_PG_CHG_PUT,
	STORE_PG_REQ_PUT,
	STORE_PG_REQ_PRUNE,
	STORE_PG_REQ_SEEN,
	STORE_PG_GET,
	STORE_PG_LIST_FROM,
	STORE_PG_LIST_AFTER,
	STORE_PG_CHG_KEY,
	STORE_PG_CHG_RANGE,
	STORE_PG_SWEEP_FIND,
	STORE_PG_SWEEP_NEXT,
	STORE_PG_CHG_COMPACT_SCAN,
	STORE_PG_CHG_COMPACT_DEL,
	STORE_PG_STMT_COUNT
} store_pg_stmt;

/* The head row's columns, in this order, wherever a statement returns a
 * head row (after its leading columns: see each statement). */
#define STORE_PG_ROW_COLUMNS                                                  \
	"r.version, r.revision, r.deleted, r.created_at, r.updated_at,"       \
	" r.content_type, r.updated_by, r.lock_owner, r.lock_token,"          \
	" r.lock_expires_at, r.lock_fencing, r.kept"

enum {
	STORE_PG_COL_VERSION,
	STORE_PG_COL_REVISION,
	STORE_PG_COL_DELETED,
	STORE_PG_COL_CREATED_AT,
	STORE_PG_COL_UPDATED_AT,
	STORE_PG_COL_CONTENT_TYPE,
	STORE_PG_COL_UPDATED_BY,
	STORE_PG_COL_LOCK_OWNER,
	STORE_PG_COL_LOCK_TOKEN,
	STORE_PG_COL_LOCK_EXPIRES_AT,
	STORE_PG_COL_LOCK_FENCING,
	STORE_PG_COL_KEPT,
	STORE_PG_ROW_NCOLS
};

/* store_pg: the backend's shared state (s->be_data), immutable after
 * open. */
typedef struct store_pg {
	char *uri;        /* owned copy of the connection URI */
	char options[96]; /* libpq "options": lock_timeout, synchronous_commit */
} store_pg;

/* store_pg_conn: one libpq connection, used by one thread at a time. */
typedef struct store_pg_conn {
	store_conn base; /* first: a store_conn * is a store_pg_conn * */
	PGconn *pg;
	bool broken;      /* the server was lost: the next call reconnects */
	bool listening;   /* LISTEN sent on this session (changes_wait) */
	bool pipeline;    /* in pipeline mode (a batch is running) */
	int pending;      /* queued statements whose results are unread */
	uint64_t own_revs; /* revisions this connection's commits took:
	                    * store_data_version = revision - own_revs */
} store_pg_conn;

/* store_pg_params: the parameters of one statement, all sent in binary:
 * int8 as 8 big-endian bytes, bytea and text as their bytes, NULL as
 * NULL. Pointers are borrowed until the statement is sent (libpq copies
 * them into its buffer then). */
typedef struct store_pg_params {
	int n;
	const char *v[STORE_PG_MAX_PARAMS];
	int len[STORE_PG_MAX_PARAMS];
	int fmt[STORE_PG_MAX_PARAMS];
	char ibuf[STORE_PG_MAX_PARAMS][8];
} store_pg_params;

void store_pg_p_init(store_pg_params *p);
void store_pg_p_bytes(store_pg_params *p, const void *b, size_t n);
void store_pg_p_i64(store_pg_params *p, int64_t v);
void store_pg_p_null(store_pg_params *p);
/* store_pg_p_now adds the clock parameter every statement that needs
 * "now" takes: NULL (the server's clock_timestamp(), when the store runs
 * on the wall clock) or the store's clock read here (a test's fake). */
void store_pg_p_now(store_pg_params *p, const store *s);

/* --- results (binary format) --- */

bool store_pg_null(const PGresult *r, int row, int col);
int64_t store_pg_i64(const PGresult *r, int row, int col);
uint64_t store_pg_u64(const PGresult *r, int row, int col);
bool store_pg_bool(const PGresult *r, int row, int col);
/* store_pg_text copies a text/bytea column into an owned C string (NULL
 * reads as ""). */
store_err store_pg_text(const PGresult *r, int row, int col, char **out);
/* store_pg_value copies a bytea column into rec->value (NULL when
 * empty). */
store_err store_pg_value(const PGresult *r, int row, int col,
    store_record *rec);

/* store_pg_row: a head row as the rules see it. */
typedef struct store_pg_row {
	bool exists;
	bool deleted;
	uint64_t version;
	uint64_t revision;
	int64_t created_at;
	int64_t updated_at;
	uint64_t kept;
	store_lease lease;
} store_pg_row;

/* store_pg_row_read fills row from the head-row columns starting at base
 * of row i (all NULL: no head row). */
void store_pg_row_read(const PGresult *r, int i, int base, store_pg_row *row);

/* store_pg_record_from_row fills rec from the head row at base (or just
 * the key when there is none), with its lock when the lease is live. */
store_err store_pg_record_from_row(store_record *rec, const PGresult *r,
    int i, int base, const store_pg_row *row, const char *key,
    size_t key_len, int64_t now);

/* store_pg_record_lock sets rec's lock from a live lease whose owner is
 * column col of row i. */
store_err store_pg_record_lock(store_record *rec, const PGresult *r, int i,
    int col, int64_t expires, uint64_t fencing);

/* --- plumbing (store_pg.c) --- */

/* store_pg_ready reconnects c when its server was lost (once per call):
 * STORE_OK when c is usable, STORE_EUNAVAILABLE otherwise. */
store_err store_pg_ready(store_pg_conn *c, store_error *err);

/* store_pg_fail maps a failed result (res may be NULL: the call itself
 * failed) to a store error: STORE_EUNAVAILABLE when the connection is
 * gone (marking c broken), STORE_EBUSY for lock_timeout (55P03),
 * STORE_EIO otherwise. what names the step. */
store_err store_pg_fail(store_pg_conn *c, const PGresult *res,
    store_error *err, const char *what);

/* store_pg_unavailable fills err with STORE_EUNAVAILABLE for a lost or
 * unreachable server, naming it and why (NULL: libpq's last error). */
store_err store_pg_unavailable(PGconn *pg, store_error *err, const char *what,
    const char *why);

/* store_pg_exec_read is store_pg_exec for a read that runs alone (its
 * own snapshot, no transaction open): when the session turns out to be
 * lost (the server restarted since the connection's last call), it
 * reconnects and runs the read once more, so the first read after an
 * outage does not fail for a session that was already dead. */
store_err store_pg_exec_read(store_pg_conn *c, store_pg_stmt id,
    const store_pg_params *p, PGresult **out, store_error *err,
    const char *what);

/* store_pg_exec runs statement id outside pipeline mode; on success *out
 * holds its result (caller PQclear()s it; out may be NULL). */
store_err store_pg_exec(store_pg_conn *c, store_pg_stmt id,
    const store_pg_params *p, PGresult **out, store_error *err,
    const char *what);

/* Pipeline mode (batches). store_pg_pipe_begin enters it; store_pg_send
 * queues a statement whose result is only checked; store_pg_drain reads
 * every queued result (the first failure is the error); store_pg_query
 * queues a statement, drains what was queued before it and returns its
 * result; store_pg_pipe_commit sends the sync and reads everything up to
 * it; store_pg_pipe_abort ends a failed pipeline and rolls back. */
store_err store_pg_pipe_begin(store_pg_conn *c, store_error *err);
store_err store_pg_send(store_pg_conn *c, store_pg_stmt id,
    const store_pg_params *p, store_error *err);
store_err store_pg_drain(store_pg_conn *c, store_error *err,
    const char *what);
store_err store_pg_query(store_pg_conn *c, store_pg_stmt id,
    const store_pg_params *p, PGresult **out, store_error *err,
    const char *what);
/* store_pg_collect flushes, reads the outcome of the `skip` oldest
 * queued statements (checked only: the first failure is the error), then
 * the results of the next n into out[0..n) (caller PQclear()s each). On
 * failure out holds nothing. */
store_err store_pg_collect(store_pg_conn *c, int skip, PGresult **out,
    int n, store_error *err, const char *what);
store_err store_pg_pipe_sync(store_pg_conn *c, store_error *err,
    const char *what);
void store_pg_pipe_abort(store_pg_conn *c);

/* --- entry points --- */

store_err store_pg_get(store_conn *bc, const char *key, size_t key_len,
    uint64_t version, store_record *out, uint64_t *revision,
    store_error *err);
store_err store_pg_list(store_conn *bc, const store_list_req *req,
    store_list_page *out, store_error *err);
store_err store_pg_changes_read(store_conn *bc, const store_changes_req *req,
    store_changes_page *page, store_error *err);
store_err store_pg_apply_batch(store_conn *bc, const store_write *ws,
    size_t n, store_write_result *results);
store_err store_pg_sweep_expired(store_conn *bc, size_t max, size_t *n,
    int64_t *next_expiry_ms, store_error *err);
store_err store_pg_compact_changes(store_conn *bc, uint64_t retain_revisions,
    int64_t retain_ms, size_t max, size_t *n, store_error *err);

/* Tokens (store_pg_auth.c). */
store_err store_pg_auth_create(store_conn *bc, const char *name,
    const uint8_t hash[32], const char *grants, store_auth_token *out,
    store_error *err);
store_err store_pg_auth_revoke(store_conn *bc, const char *name,
    store_auth_token *out, store_error *err);
store_err store_pg_auth_list(store_conn *bc, store_auth_token **out,
    size_t *n, uint64_t *generation, store_error *err);
store_err store_pg_auth_generation(store_conn *bc, uint64_t *generation,
    store_error *err);

#endif /* STORE_PG_INT_H */
