/*
 * store_pg.c - the PostgreSQL backend (DESIGN §10): the schema, opening,
 * connections and reconnecting, statements, the libpq plumbing (plain and
 * pipelined), error mapping, the small reads (revision, data version,
 * integrity check), changes_wait and the vtable. Get/List/changes live in
 * store_pg_read.c, the write rules and batches in store_pg_write.c.
 *
 * Schema (version 1), the SQLite v5 layout translated:
 *   - meta: one row (id 0): schema_version, revision, fencing,
 *     compact_revision. Every write transaction (batch, sweep,
 *     compaction) first locks it (SELECT ... FOR UPDATE), so writers of
 *     every node serialise on it and revisions are assigned gapless in
 *     commit order; no sequence is used (a sequence value can commit out
 *     of order or not at all: the research notes' kine lesson).
 *   - records: the head row per key (tombstones and lock placeholders
 *     included, as in SQLite v4+). Keys are bytea: bytea compares
 *     bytewise (memcmp, shorter first), so ORDER BY key is List's byte
 *     order and prefix || '\xff' bounds a prefix, with no collation to
 *     get wrong. The primary key serves point reads, List's range scans
 *     and the ON CONFLICT of a write. records_lock_expiry, a partial index
 *     over unswept leases, serves the sweep and the next expiry; the key
 *     in it orders leases expiring in the same ms as SQLite's index does,
 *     so both backends give their EXPIRE events the same revisions.
 *   - versions (key, version): every version's value, written once; the
 *     history is the rows below the head. Its primary key serves Get of a
 *     version, the trim's point delete and the change log's values.
 *   - requests (caller, id): one table (SQLite's two generation tables
 *     exist to keep B-tree churn down there); each batch prunes a few
 *     entries older than request_id_ttl_ms through requests_created.
 *   - changes: one row per revision (its primary key is the log order),
 *     changes_key (key, revision) for one-key watches.
 *   - v2: tokens (store_pg_auth.c), one row per token ever made, and
 *     meta.auth_gen, moved by every create and revoke.
 * Integers are int8 throughout (one binary decoder), flags bool.
 *
 * Creating and migrating: store_open runs it in one transaction that
 * first takes pg_advisory_xact_lock(STORE_PG_SCHEMA_LOCK), so N nodes
 * starting at once on an empty database create the schema once; the
 * others wait, then see it. A newer schema_version is refused.
 *
 * The clock. With the wall clock every "now" is the database server's
 * clock_timestamp() (one clock for N nodes: leases, timestamps,
 * request-id ttl and the log's `at`); otherwise the store's clock (a
 * test's fake) is read here and sent: every such statement takes a "now"
 * parameter that is NULL for the wall clock (STORE_PG_NOW).
 *
 * Connections. One libpq connection per store_conn, application_name
 * datasyncd, client_encoding UTF8, lock_timeout = busy_timeout_ms (a
 * lock wait past it is SQLSTATE 55P03: STORE_EBUSY; 0 becomes 1 ms,
 * since PostgreSQL's 0 means "wait forever"), synchronous_commit on for
 * durability FULL and off for NORMAL (a commit then survives a datasyncd
 * crash but not a PostgreSQL crash, which may lose the last few hundred
 * ms of acknowledged commits). Losing the server fails the call with
 * STORE_EUNAVAILABLE and marks the connection broken; the next call on it
 * reconnects once (a new session: statements are prepared again, LISTEN
 * is sent again).
 *
 * store_cancel_waits: a batch, sweep or compaction started after it locks
 * meta with NOWAIT, so it fails at once (STORE_EBUSY) when another node
 * holds the writer's lock. A wait already in progress is not interrupted;
 * it ends at lock_timeout.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds_alloc.h"
#include "ds_text.h"
#include "store_pg_int.h"

#define STORE_PG_SCHEMA_VERSION 2

/* How long a (re)connect may take, and how long sent data may stay
 * unacknowledged before the connection counts as lost (libpq strings). */
#define STORE_PG_CONNECT_TIMEOUT_S "10"
#define STORE_PG_TCP_USER_TIMEOUT_MS "10000"

/* The advisory lock key of schema creation and migration: 'dsyc'. */
#define STORE_PG_SCHEMA_LOCK 1685289315

#define STORE_PG_STR_(x) #x
#define STORE_PG_STR(x) STORE_PG_STR_(x)

/* The clock parameter $n: NULL = the server's clock, in ms. */
#define STORE_PG_NOW(n)                                                       \
	"coalesce(" n "::int8,"                                               \
	" floor(extract(epoch FROM clock_timestamp()) * 1000)::int8)"

/* STORE_PG_NOW_STABLE is STORE_PG_NOW as a bound an index can use: an
 * int8 (a numeric would cast the column and skip its index) from the
 * statement's start time (stable, where clock_timestamp() is volatile and
 * makes the planner read every row). For the request-id prune, whose
 * bound may be a few milliseconds old. */
#define STORE_PG_NOW_STABLE(n)                                                \
	"coalesce(" n "::int8,"                                               \
	" floor(extract(epoch FROM statement_timestamp()) * 1000)::int8)"

static const char store_pg_schema_v1[] =
    "CREATE TABLE meta ("
    " id int8 PRIMARY KEY CHECK (id = 0),"
    " schema_version int8 NOT NULL,"
    " revision int8 NOT NULL,"
    " fencing int8 NOT NULL,"
    " compact_revision int8 NOT NULL);"
    "INSERT INTO meta (id, schema_version, revision, fencing,"
    " compact_revision) VALUES (0, 1, 0, 0, 0);"
    "CREATE TABLE records ("
    " key bytea PRIMARY KEY,"
    " version int8 NOT NULL,"
    " revision int8 NOT NULL,"
    " deleted bool NOT NULL,"
    " created_at int8 NOT NULL,"
    " updated_at int8 NOT NULL,"
    " content_type text NOT NULL,"
    " updated_by text NOT NULL,"
    " lock_owner text,"
    " lock_token bytea,"
    " lock_expires_at int8,"
    " lock_fencing int8,"
    " kept int8 NOT NULL);"
    "CREATE INDEX records_lock_expiry ON records (lock_expires_at, key)"
    " WHERE lock_owner IS NOT NULL;"
    "CREATE TABLE versions ("
    " key bytea NOT NULL,"
    " version int8 NOT NULL,"
    " revision int8 NOT NULL,"
    " deleted bool NOT NULL,"
    " created_at int8 NOT NULL,"
    " updated_at int8 NOT NULL,"
    " content_type text NOT NULL,"
    " updated_by text NOT NULL,"
    " value bytea,"
    " PRIMARY KEY (key, version));"
    "CREATE TABLE requests ("
    " caller bytea NOT NULL,"
    " id bytea NOT NULL,"
    " hash int8 NOT NULL,"
    " created_at int8 NOT NULL,"
    " version int8 NOT NULL,"
    " revision int8 NOT NULL,"
    " rec_created_at int8 NOT NULL,"
    " rec_updated_at int8 NOT NULL,"
    " flags int8 NOT NULL,"
    " content_type text NOT NULL,"
    " updated_by text NOT NULL,"
    " lock_owner text,"
    " lock_expires_at int8,"
    " lock_fencing int8,"
    " token bytea,"
    " PRIMARY KEY (caller, id));"
    "CREATE INDEX requests_created ON requests (created_at);"
    "CREATE TABLE changes ("
    " revision int8 PRIMARY KEY,"
    " key bytea NOT NULL,"
    " type int8 NOT NULL,"
    " at int8 NOT NULL,"
    " version int8 NOT NULL,"
    " deleted bool NOT NULL,"
    " created_at int8 NOT NULL,"
    " updated_at int8 NOT NULL,"
    " content_type text NOT NULL,"
    " updated_by text NOT NULL,"
    " lock_owner text,"
    " lock_expires_at int8,"
    " lock_fencing int8);"
    "CREATE INDEX changes_key ON changes (key, revision);";

/* 1 -> 2: tokens (store_pg_auth.c). A name is never reused; a hash names
 * one token; auth_gen moves with every create and revoke. */
static const char store_pg_schema_v2[] =
    "CREATE TABLE tokens ("
    " name text PRIMARY KEY,"
    " hash bytea NOT NULL UNIQUE,"
    " grants text NOT NULL,"
    " created_at_ms int8 NOT NULL,"
    " revoked_at_ms int8);"
    "ALTER TABLE meta ADD COLUMN auth_gen int8 NOT NULL DEFAULT 0;"
    "UPDATE meta SET schema_version = 2 WHERE id = 0;";

#define STORE_PG_REQ_COLUMNS                                                  \
	"q.hash, q.created_at, q.version, q.revision, q.rec_created_at,"      \
	" q.rec_updated_at, q.flags, q.content_type, q.updated_by,"           \
	" q.lock_owner, q.lock_expires_at, q.lock_fencing, q.token"

#define STORE_PG_CHG_SELECT(where)                                            \
	"SELECT m.revision, m.compact_revision, e.* FROM meta m"              \
	" LEFT JOIN LATERAL (SELECT c.revision, c.key, c.type, c.version,"    \
	" c.deleted, c.created_at, c.updated_at, c.content_type,"             \
	" c.updated_by, c.lock_owner, c.lock_expires_at, c.lock_fencing,"     \
	" (v.key IS NOT NULL) AS has_value,"                                  \
	/* A value only while the page is under max_value_bytes: the ones     \
	 * past it would be dropped anyway (store_pg_read.c). */              \
	" CASE WHEN $5::int8 = 0 OR coalesce(sum(octet_length(v.value))"      \
	" OVER (ORDER BY c.revision ROWS BETWEEN UNBOUNDED PRECEDING"         \
	" AND 1 PRECEDING), 0) < $5::int8 THEN v.value END AS value"          \
	" FROM (SELECT * FROM changes WHERE " where                           \
	" ORDER BY revision LIMIT $3::int8) c"                                \
	" LEFT JOIN versions v ON $4::int8 <> 0 AND NOT c.deleted"            \
	" AND c.version > 0 AND v.key = c.key AND v.version = c.version) e"   \
	" ON true WHERE m.id = 0 ORDER BY e.revision"

#define STORE_PG_LIST(op)                                                     \
	"SELECT m.revision, n.now, l.* FROM meta m"                           \
	" CROSS JOIN (SELECT " STORE_PG_NOW("$4") " AS now) n"                \
	" LEFT JOIN LATERAL (SELECT r.key, " STORE_PG_ROW_COLUMNS             \
	" FROM records r WHERE r.key " op " $1::bytea AND r.key < $2::bytea"  \
	" AND NOT r.deleted ORDER BY r.key LIMIT $3::int8) l ON true"         \
	" WHERE m.id = 0 ORDER BY l.key"

/* Every statement is constant text, prepared once per session. */
static const char *const store_pg_sql[STORE_PG_STMT_COUNT] = {
    [STORE_PG_BEGIN] = "BEGIN",
    [STORE_PG_BEGIN_READ] = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    [STORE_PG_COMMIT] = "COMMIT",
    [STORE_PG_ROLLBACK] = "ROLLBACK",
    [STORE_PG_SAVEPOINT] = "SAVEPOINT store_write",
    [STORE_PG_RELEASE] = "RELEASE store_write",
    [STORE_PG_ROLLBACK_TO] = "ROLLBACK TO store_write",
    /* The writers' lock: see the file comment. It also reads the clock
     * once for the transaction's own needs (sweep, compaction). */
    [STORE_PG_META_LOCK] =
        "SELECT revision, fencing, compact_revision, " STORE_PG_NOW("$1")
        " FROM meta WHERE id = 0 FOR UPDATE",
    [STORE_PG_META_LOCK_NOWAIT] =
        "SELECT revision, fencing, compact_revision, " STORE_PG_NOW("$1")
        " FROM meta WHERE id = 0 FOR UPDATE NOWAIT",
    [STORE_PG_META_SET] =
        "UPDATE meta SET revision = $1::int8, fencing = $2::int8"
        " WHERE id = 0",
    [STORE_PG_META_GET] =
        "SELECT revision, compact_revision, schema_version FROM meta"
        " WHERE id = 0",
    [STORE_PG_META_COMPACT_SET] =
        "UPDATE meta SET compact_revision = $1::int8 WHERE id = 0",
    /* Delivered at COMMIT, to every node's listener. */
    [STORE_PG_NOTIFY] =
        "SELECT pg_notify('" STORE_PG_CHANNEL "', $1::text)",
    /* A write's one read: the clock, the head row and the request id's
     * entry, in one statement. No row lock: writers hold meta's. */
    [STORE_PG_WRITE_READ] =
        "SELECT n.now, " STORE_PG_ROW_COLUMNS ", " STORE_PG_REQ_COLUMNS
        " FROM (SELECT " STORE_PG_NOW("$4") " AS now) n"
        " LEFT JOIN records r ON r.key = $1::bytea"
        " LEFT JOIN requests q ON q.caller = $2::bytea AND q.id = $3::bytea",
    [STORE_PG_ROW_VALUE] =
        "SELECT value FROM versions WHERE key = $1::bytea"
        " AND version = $2::int8",
    /* Insert, or update keeping the lock columns. */
    [STORE_PG_ROW_PUT] =
        "INSERT INTO records (key, version, revision, deleted, created_at,"
        " updated_at, content_type, updated_by, kept) VALUES ($1::bytea,"
        " $2::int8, $3::int8, $4::int8 <> 0, $5::int8, $6::int8, $7::text,"
        " $8::text, $9::int8) ON CONFLICT (key) DO UPDATE SET"
        " version = EXCLUDED.version, revision = EXCLUDED.revision,"
        " deleted = EXCLUDED.deleted, created_at = EXCLUDED.created_at,"
        " updated_at = EXCLUDED.updated_at,"
        " content_type = EXCLUDED.content_type,"
        " updated_by = EXCLUDED.updated_by, kept = EXCLUDED.kept",
    /* A key locked before it was written: version 0, not live. */
    [STORE_PG_ROW_PLACEHOLDER] =
        "INSERT INTO records (key, version, revision, deleted, created_at,"
        " updated_at, content_type, updated_by, kept, lock_owner,"
        " lock_token, lock_expires_at, lock_fencing) VALUES ($1::bytea, 0,"
        " $2::int8, true, 0, 0, '', '', 0, $3::text, $4::bytea, $5::int8,"
        " $6::int8)",
    [STORE_PG_ROW_SET_LOCK] =
        "UPDATE records SET lock_owner = $2::text, lock_token = $3::bytea,"
        " lock_expires_at = $4::int8, lock_fencing = $5::int8,"
        " revision = $6::int8 WHERE key = $1::bytea",
    [STORE_PG_ROW_DELETE] = "DELETE FROM records WHERE key = $1::bytea",
    /* The token, expiry and fencing token stay (LOCK_EXPIRED later). */
    [STORE_PG_ROW_SWEEP] =
        "UPDATE records SET lock_owner = NULL, revision = $2::int8"
        " WHERE key = $1::bytea",
    [STORE_PG_VER_PUT] =
        "INSERT INTO versions (key, version, revision, deleted, created_at,"
        " updated_at, content_type, updated_by, value) VALUES ($1::bytea,"
        " $2::int8, $3::int8, $4::int8 <> 0, $5::int8, $6::int8, $7::text,"
        " $8::text, $9::bytea)",
    [STORE_PG_VER_TRIM] =
        "DELETE FROM versions WHERE key = $1::bytea AND version = $2::int8",
    [STORE_PG_VER_TRIM_RANGE] =
        "DELETE FROM versions WHERE key = $1::bytea AND version <= $2::int8",
    [STORE_PG_CHG_PUT] =
        "INSERT INTO changes (revision, key, type, at, version, deleted,"
        " created_at, updated_at, content_type, updated_by, lock_owner,"
        " lock_expires_at, lock_fencing) VALUES ($1::int8, $2::bytea,"
        " $3::int8, $4::int8, $5::int8, $6::int8 <> 0, $7::int8, $8::int8,"
        " $9::text, $10::text, $11::text, $12::int8, $13::int8)",
    /* An expired entry under the same (caller, id) is replaced. */
    [STORE_PG_REQ_PUT] =
        "INSERT INTO requests (caller, id, hash, created_at, version,"
        " revision, rec_created_at, rec_updated_at, flags, content_type,"
        " updated_by, lock_owner, lock_expires_at, lock_fencing, token)"
        " VALUES ($1::bytea, $2::bytea, $3::int8, $4::int8, $5::int8,"
        " $6::int8, $7::int8, $8::int8, $9::int8, $10::text, $11::text,"
        " $12::text, $13::int8, $14::int8, $15::bytea)"
        " ON CONFLICT (caller, id) DO UPDATE SET hash = EXCLUDED.hash,"
        " created_at = EXCLUDED.created_at, version = EXCLUDED.version,"
        " revision = EXCLUDED.revision,"
        " rec_created_at = EXCLUDED.rec_created_at,"
        " rec_updated_at = EXCLUDED.rec_updated_at, flags = EXCLUDED.flags,"
        " content_type = EXCLUDED.content_type,"
        " updated_by = EXCLUDED.updated_by, lock_owner = EXCLUDED.lock_owner,"
        " lock_expires_at = EXCLUDED.lock_expires_at,"
        " lock_fencing = EXCLUDED.lock_fencing, token = EXCLUDED.token",
    /* numeric: now - ttl must not overflow int8 for any ttl. */
    [STORE_PG_REQ_PRUNE] =
        "DELETE FROM requests WHERE (caller, id) IN (SELECT caller, id"
        " FROM requests WHERE created_at < " STORE_PG_NOW_STABLE("$1")
        " - $2::int8 ORDER BY created_at"
        " LIMIT " STORE_PG_STR(STORE_PG_PRUNE_MAX) ")",
    [STORE_PG_REQ_SEEN] =
        "SELECT 1 FROM requests WHERE caller = $1::bytea AND id = $2::bytea",
    /* Get, current or historical, and the store's revision: one
     * statement, one snapshot. No row: no such key. */
    [STORE_PG_GET] =
        "SELECT n.now, m.revision, " STORE_PG_ROW_COLUMNS ", v.revision,"
        " v.deleted, v.created_at, v.updated_at, v.content_type,"
        " v.updated_by, v.value, (v.key IS NOT NULL) FROM meta m"
        " CROSS JOIN (SELECT " STORE_PG_NOW("$3") " AS now) n"
        " JOIN records r ON r.key = $1::bytea"
        " LEFT JOIN versions v ON v.key = r.key AND v.version ="
        " CASE WHEN $2::int8 = 0 THEN r.version ELSE $2::int8 END"
        " WHERE m.id = 0",
    /* A page and the revision: one statement (an empty page is one row
     * with a NULL key). */
    [STORE_PG_LIST_FROM] = STORE_PG_LIST(">="),
    [STORE_PG_LIST_AFTER] = STORE_PG_LIST(">"),
    [STORE_PG_CHG_KEY] =
        STORE_PG_CHG_SELECT("key = $1::bytea AND revision > $2::int8"),
    [STORE_PG_CHG_RANGE] = STORE_PG_CHG_SELECT(
        "revision > $2::int8 AND key >= $1::bytea AND key < $6::bytea"),
    [STORE_PG_SWEEP_FIND] =
        "SELECT r.key, " STORE_PG_ROW_COLUMNS " FROM records r"
        " WHERE r.lock_owner IS NOT NULL AND r.lock_expires_at <= $1::int8"
        " ORDER BY r.lock_expires_at, r.key LIMIT $2::int8",
    [STORE_PG_SWEEP_NEXT] =
        "SELECT min(lock_expires_at) FROM records"
        " WHERE lock_owner IS NOT NULL",
    [STORE_PG_CHG_COMPACT_SCAN] =
        "SELECT revision, at FROM changes WHERE revision > $1::int8"
        " ORDER BY revision LIMIT $2::int8",
    [STORE_PG_CHG_COMPACT_DEL] =
        "DELETE FROM changes WHERE revision <= $1::int8",
};

/* --- parameters and results --- */

void
store_pg_p_init(store_pg_params *p)
{
	p->n = 0;
}

static void
store_pg_p_add(store_pg_params *p, const char *v, int len)
{
	if (DS_NEVER(p->n >= STORE_PG_MAX_PARAMS)) {
		return; /* the statement then fails: too few parameters */
	}
	p->v[p->n] = v;
	p->len[p->n] = len;
	p->fmt[p->n] = 1;
	p->n++;
}

void
store_pg_p_bytes(store_pg_params *p, const void *b, size_t n)
{
	/* An empty value is '' (not NULL): libpq needs a pointer. */
	store_pg_p_add(p, n > 0 ? b : "", (int) n);
}

void
store_pg_p_i64(store_pg_params *p, int64_t v)
{
	uint64_t u = (uint64_t) v;
	char *b;

	if (DS_NEVER(p->n >= STORE_PG_MAX_PARAMS)) {
		return;
	}
	b = p->ibuf[p->n];
	for (int i = 0; i < 8; i++) {
		b[i] = (char) (u >> (56 - 8 * i));
	}
	store_pg_p_add(p, b, 8);
}

void
store_pg_p_null(store_pg_params *p)
{
	store_pg_p_add(p, NULL, 0);
}

void
store_pg_p_now(store_pg_params *p, const store *s)
{
	if (s->clock == ds_clock_wall()) {
		store_pg_p_null(p);
	} else {
		store_pg_p_i64(p, ds_clock_now_ms(s->clock));
	}
}

bool
store_pg_null(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) != 0;
}

int64_t
store_pg_i64(const PGresult *r, int row, int col)
{
	const unsigned char *b;
	uint64_t u = 0;

	if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != 8) {
		return 0;
	}
	b = (const unsigned char *) PQgetvalue(r, row, col);
	for (int i = 0; i < 8; i++) {
		u = (u << 8) | b[i];
	}
	return (int64_t) u;
}

uint64_t
store_pg_u64(const PGresult *r, int row, int col)
{
	return (uint64_t) store_pg_i64(r, row, col);
}

bool
store_pg_bool(const PGresult *r, int row, int col)
{
	return !PQgetisnull(r, row, col) && PQgetlength(r, row, col) == 1 &&
	    PQgetvalue(r, row, col)[0] != 0;
}

store_err
store_pg_text(const PGresult *r, int row, int col, char **out)
{
	if (PQgetisnull(r, row, col)) {
		return store_record_set_text(out, "", 0);
	}
	return store_record_set_text(out, PQgetvalue(r, row, col),
	    (size_t) PQgetlength(r, row, col));
}

store_err
store_pg_value(const PGresult *r, int row, int col, store_record *rec)
{
	size_t n = PQgetisnull(r, row, col)
	    ? 0
	    : (size_t) PQgetlength(r, row, col);

	rec->value = NULL;
	rec->value_len = 0;
	if (n == 0) {
		return STORE_OK;
	}
	if ((rec->value = ds_alloc(n)) == NULL) {
		return STORE_ENOMEM;
	}
	memcpy(rec->value, PQgetvalue(r, row, col), n);
	rec->value_len = n;
	return STORE_OK;
}

void
store_pg_row_read(const PGresult *r, int i, int base, store_pg_row *row)
{
	store_lease *l = &row->lease;

	memset(row, 0, sizeof(*row));
	if (store_pg_null(r, i, base + STORE_PG_COL_VERSION)) {
		return; /* no head row */
	}
	row->exists = true;
	row->version = store_pg_u64(r, i, base + STORE_PG_COL_VERSION);
	row->revision = store_pg_u64(r, i, base + STORE_PG_COL_REVISION);
	row->deleted = store_pg_bool(r, i, base + STORE_PG_COL_DELETED);
	row->created_at = store_pg_i64(r, i, base + STORE_PG_COL_CREATED_AT);
	row->updated_at = store_pg_i64(r, i, base + STORE_PG_COL_UPDATED_AT);
	row->kept = store_pg_u64(r, i, base + STORE_PG_COL_KEPT);
	if (PQgetlength(r, i, base + STORE_PG_COL_LOCK_TOKEN) !=
	        STORE_TOKEN_BYTES ||
	    store_pg_null(r, i, base + STORE_PG_COL_LOCK_TOKEN)) {
		return;
	}
	l->held = true;
	/* The sweep cleared only the owner (see the schema comment). */
	l->swept = store_pg_null(r, i, base + STORE_PG_COL_LOCK_OWNER);
	memcpy(l->token.b, PQgetvalue(r, i, base + STORE_PG_COL_LOCK_TOKEN),
	    STORE_TOKEN_BYTES);
	l->expires_at_ms =
	    store_pg_i64(r, i, base + STORE_PG_COL_LOCK_EXPIRES_AT);
	l->fencing_token = store_pg_u64(r, i, base + STORE_PG_COL_LOCK_FENCING);
}

store_err
store_pg_record_lock(store_record *rec, const PGresult *r, int i, int col,
    int64_t expires, uint64_t fencing)
{
	store_err rv;

	if ((rv = store_pg_text(r, i, col, &rec->lock.owner)) != STORE_OK) {
		return rv;
	}
	rec->locked = true;
	rec->lock.expires_at_ms = expires;
	rec->lock.fencing_token = fencing;
	return STORE_OK;
}

store_err
store_pg_record_from_row(store_record *rec, const PGresult *r, int i,
    int base, const store_pg_row *row, const char *key, size_t key_len,
    int64_t now)
{
	store_err rv;

	if ((rv = store_record_set_text(&rec->key, key, key_len)) != STORE_OK) {
		return rv;
	}
	rec->key_len = key_len;
	if (!row->exists) {
		if ((rv = store_record_set_text(&rec->content_type, "", 0)) !=
		        STORE_OK ||
		    (rv = store_record_set_text(&rec->updated_by, "", 0)) !=
		        STORE_OK) {
			return rv;
		}
		return STORE_OK;
	}
	if ((rv = store_pg_text(r, i, base + STORE_PG_COL_CONTENT_TYPE,
	         &rec->content_type)) != STORE_OK ||
	    (rv = store_pg_text(r, i, base + STORE_PG_COL_UPDATED_BY,
	         &rec->updated_by)) != STORE_OK) {
		return rv;
	}
	rec->version = row->version;
	rec->revision = row->revision;
	rec->created_at_ms = row->created_at;
	rec->updated_at_ms = row->updated_at;
	/* A lock placeholder is "never existed", not a tombstone. */
	rec->deleted = row->deleted && row->version > 0;
	if (store_lease_live(&row->lease, now)) {
		return store_pg_record_lock(rec, r, i,
		    base + STORE_PG_COL_LOCK_OWNER, row->lease.expires_at_ms,
		    row->lease.fencing_token);
	}
	return STORE_OK;
}

/* --- errors --- */

/* store_pg_first_line copies the first line of a libpq message. */
static void
store_pg_first_line(const char *msg, char *out, size_t n)
{
	size_t len = 0;

	if (msg == NULL) {
		msg = "";
	}
	while (msg[len] != '\0' && msg[len] != '\n' && len + 1 < n) {
		len++;
	}
	memcpy(out, msg, len);
	out[len] = '\0';
}

/* store_pg_unavailable fills err for a lost or unreachable server,
 * naming it (socket directory or host, port, database: never the URI,
 * which may hold a password) and libpq's reason. */
store_err
store_pg_unavailable(PGconn *pg, store_error *err, const char *what,
    const char *why)
{
	char line[128];
	const char *host = pg != NULL ? PQhost(pg) : NULL;
	const char *port = pg != NULL ? PQport(pg) : NULL;
	const char *db = pg != NULL ? PQdb(pg) : NULL;

	store_pg_first_line(why != NULL ? why
	                                : (pg != NULL ? PQerrorMessage(pg) : ""),
	    line, sizeof(line));
	return store_error_set(err, STORE_EUNAVAILABLE, "",
	    "%s: PostgreSQL at %s:%s (database %s) is unavailable: %s", what,
	    host != NULL ? host : "?", port != NULL ? port : "?",
	    db != NULL ? db : "?", line[0] != '\0' ? line : "no answer");
}

/* store_pg_lost says whether a failure means the session is gone:
 * connection exceptions (08...), the server shutting down or not yet
 * accepting (57P01..57P03), or libpq's own view. */
static bool
store_pg_lost(PGconn *pg, const char *state)
{
	if (PQstatus(pg) != CONNECTION_OK) {
		return true;
	}
	/* Every error the server sends has an SQLSTATE; one without is
	 * libpq's own ("server closed the connection unexpectedly"), seen
	 * while the status may still say OK: the connection is gone. */
	if (state == NULL) {
		return true;
	}
	return strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
	    strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0;
}

store_err
store_pg_fail(store_pg_conn *c, const PGresult *res, store_error *err,
    const char *what)
{
	const char *state =
	    res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res != NULL
	    ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
	    : NULL;
	char line[160];

	if (store_pg_lost(c->pg, state) || (res == NULL &&
	        PQstatus(c->pg) != CONNECTION_OK)) {
		c->broken = true;
		return store_pg_unavailable(c->pg, err, what,
		    msg != NULL ? msg : NULL);
	}
	if (state != NULL && strcmp(state, "55P03") == 0) {
		return store_busy_error(c->base.s, err, what);
	}
	if (msg == NULL) {
		msg = res != NULL ? PQresultErrorMessage(res)
		                  : PQerrorMessage(c->pg);
	}
	store_pg_first_line(msg, line, sizeof(line));
	return store_error_set(err, STORE_EIO, "", "%s: %s%s%s", what, line,
	    state != NULL ? " (SQLSTATE " : "", state != NULL ? ")" : "");
}

/* --- connecting --- */

static const char *
store_pg_stmt_name(store_pg_stmt id, char buf[16])
{
	(void) snprintf(buf, 16, "ds%d", (int) id); /* fits */
	return buf;
}

/* store_pg_quiet drops the server's notices: libpq would print them to
 * stderr; nothing we run asks for one, and errors reach us as results. */
static void
store_pg_quiet(void *arg, const char *message)
{
	(void) arg;
	(void) message;
}

/* store_pg_connect opens a session with the store's settings. */
static store_err
store_pg_connect(const store *s, PGconn **out, store_error *err)
{
	const store_pg *sp = s->be_data;
	/* Before dbname: defaults the URI may override. A server that
	 * vanishes without a word (a dead host, a cut network) must end a
	 * call in bounded time, not hang it until the kernel gives up: TCP
	 * keepalives and tcp_user_timeout bound a lost connection to ~10 s,
	 * connect_timeout a reconnect (Unix sockets ignore all of them). */
	const char *const kw[] = {"connect_timeout", "keepalives_idle",
	    "keepalives_interval", "keepalives_count", "tcp_user_timeout",
	    "dbname", "application_name", "options", "client_encoding", NULL};
	const char *const val[] = {STORE_PG_CONNECT_TIMEOUT_S, "5", "2", "3",
	    STORE_PG_TCP_USER_TIMEOUT_MS, sp->uri, "datasyncd", sp->options,
	    "UTF8", NULL};
	PGconn *pg;
	store_err rv;

	/* expand_dbname: the URI's settings override those before dbname;
	 * the ones after it override the URI's. */
	if ((pg = PQconnectdbParams(kw, val, 1)) == NULL) {
		return store_error_set(err, STORE_ENOMEM, "",
		    "out of memory connecting to PostgreSQL");
	}
	if (PQstatus(pg) != CONNECTION_OK) {
		rv = store_pg_unavailable(pg, err, "connecting", NULL);
		PQfinish(pg);
		return rv;
	}
	(void) PQsetNoticeProcessor(pg, store_pg_quiet, NULL);
	*out = pg;
	return STORE_OK;
}

/* store_pg_prepare prepares every statement on c's (new) session. */
static store_err
store_pg_prepare(store_pg_conn *c, store_error *err)
{
	char name[16];

	for (int i = 0; i < STORE_PG_STMT_COUNT; i++) {
		PGresult *res = PQprepare(c->pg,
		    store_pg_stmt_name((store_pg_stmt) i, name), store_pg_sql[i],
		    0, NULL);
		store_err rv = STORE_OK;

		if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
			rv = store_pg_fail(c, res, err, "preparing a statement");
		}
		PQclear(res);
		if (rv != STORE_OK) {
			return rv;
		}
	}
	return STORE_OK;
}

store_err
store_pg_ready(store_pg_conn *c, store_error *err)
{
	PGconn *pg = NULL;
	store_err rv;

	if (!c->broken && PQstatus(c->pg) == CONNECTION_OK) {
		return STORE_OK;
	}
	/* A new session rather than PQreset: nothing of the old one (its
	 * pipeline state, its prepared statements) carries over. */
	if ((rv = store_pg_connect(c->base.s, &pg, err)) != STORE_OK) {
		c->broken = true;
		return rv;
	}
	PQfinish(c->pg);
	c->pg = pg;
	c->broken = false;
	c->listening = false;
	c->pipeline = false;
	c->pending = 0;
	if ((rv = store_pg_prepare(c, err)) != STORE_OK) {
		c->broken = true;
	}
	return rv;
}

/* --- executing --- */

store_err
store_pg_exec(store_pg_conn *c, store_pg_stmt id, const store_pg_params *p,
    PGresult **out, store_error *err, const char *what)
{
	char name[16];
	PGresult *res;
	ExecStatusType st;
	store_err rv;

	res = PQexecPrepared(c->pg, store_pg_stmt_name(id, name),
	    p != NULL ? p->n : 0, p != NULL ? p->v : NULL,
	    p != NULL ? p->len : NULL, p != NULL ? p->fmt : NULL, 1);
	st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
		if (out != NULL) {
			*out = res;
		} else {
			PQclear(res);
		}
		return STORE_OK;
	}
	rv = store_pg_fail(c, res, err, what);
	PQclear(res);
	return rv;
}

store_err
store_pg_exec_read(store_pg_conn *c, store_pg_stmt id,
    const store_pg_params *p, PGresult **out, store_error *err,
    const char *what)
{
	store_err rv = store_pg_exec(c, id, p, out, err, what);

	/* A read has no effect to repeat; a dead session is not an answer. */
	if (rv == STORE_EUNAVAILABLE && c->broken &&
	    store_pg_ready(c, err) == STORE_OK) {
		rv = store_pg_exec(c, id, p, out, err, what);
	}
	return rv;
}

store_err
store_pg_pipe_begin(store_pg_conn *c, store_error *err)
{
	if (PQenterPipelineMode(c->pg) != 1) {
		return store_pg_fail(c, NULL, err, "entering pipeline mode");
	}
	c->pipeline = true;
	c->pending = 0;
	return STORE_OK;
}

store_err
store_pg_send(store_pg_conn *c, store_pg_stmt id, const store_pg_params *p,
    store_error *err)
{
	char name[16];

	if (PQsendQueryPrepared(c->pg, store_pg_stmt_name(id, name),
	        p != NULL ? p->n : 0, p != NULL ? p->v : NULL,
	        p != NULL ? p->len : NULL, p != NULL ? p->fmt : NULL,
	        1) != 1) {
		return store_pg_fail(c, NULL, err, "sending a statement");
	}
	c->pending++;
	return STORE_OK;
}

/* store_pg_take reads the outcome of the oldest queued statement: its
 * result (into *out when out is not NULL and it succeeded) and the NULL
 * that ends it. */
static store_err
store_pg_take(store_pg_conn *c, PGresult **out, store_error *err,
    const char *what)
{
	PGresult *res;
	PGresult *extra;
	ExecStatusType st;
	store_err rv;

	c->pending--;
	if ((res = PQgetResult(c->pg)) == NULL) {
		c->broken = true;
		return store_pg_unavailable(c->pg, err, what, NULL);
	}
	st = PQresultStatus(res);
	while ((extra = PQgetResult(c->pg)) != NULL) {
		PQclear(extra); /* the end of this statement's results */
	}
	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
		if (out != NULL) {
			*out = res;
		} else {
			PQclear(res);
		}
		return STORE_OK;
	}
	if (st == PGRES_PIPELINE_ABORTED) {
		PQclear(res);
		if (PQstatus(c->pg) != CONNECTION_OK) {
			c->broken = true;
			return store_pg_unavailable(c->pg, err, what, NULL);
		}
		return store_error_set(err, STORE_EIO, "",
		    "%s: skipped: an earlier statement of the transaction "
		    "failed", what);
	}
	rv = store_pg_fail(c, res, err, what);
	PQclear(res);
	return rv;
}

/* store_pg_flush asks the server to send what it has buffered and sends
 * ours. */
static store_err
store_pg_flush(store_pg_conn *c, store_error *err)
{
	if (PQsendFlushRequest(c->pg) != 1 || PQflush(c->pg) != 0) {
		return store_pg_fail(c, NULL, err, "sending to the server");
	}
	return STORE_OK;
}

store_err
store_pg_drain(store_pg_conn *c, store_error *err, const char *what)
{
	store_err first = STORE_OK;
	store_error e;
	store_err rv;

	if (c->pending == 0) {
		return STORE_OK;
	}
	if ((rv = store_pg_flush(c, err)) != STORE_OK) {
		return rv;
	}
	while (c->pending > 0) {
		rv = store_pg_take(c, NULL, first == STORE_OK ? err : &e, what);
		if (rv != STORE_OK && first == STORE_OK) {
			first = rv;
		}
		if (c->broken) {
			c->pending = 0;
			return STORE_EUNAVAILABLE;
		}
	}
	return first;
}

store_err
store_pg_query(store_pg_conn *c, store_pg_stmt id, const store_pg_params *p,
    PGresult **out, store_error *err, const char *what)
{
	store_err first = STORE_OK;
	store_error e;
	store_err rv;

	*out = NULL;
	if ((rv = store_pg_send(c, id, p, err)) != STORE_OK ||
	    (rv = store_pg_flush(c, err)) != STORE_OK) {
		return rv;
	}
	while (c->pending > 1) {
		rv = store_pg_take(c, NULL, first == STORE_OK ? err : &e, what);
		if (rv != STORE_OK && first == STORE_OK) {
			first = rv;
		}
		if (c->broken) {
			c->pending = 0;
			return STORE_EUNAVAILABLE;
		}
	}
	rv = store_pg_take(c, first == STORE_OK ? out : NULL,
	    first == STORE_OK ? err : &e, what);
	if (c->broken) {
		c->pending = 0;
		return STORE_EUNAVAILABLE;
	}
	return first != STORE_OK ? first : rv;
}

store_err
store_pg_collect(store_pg_conn *c, int skip, PGresult **out, int n,
    store_error *err, const char *what)
{
	store_err first = STORE_OK;
	store_error e;
	store_err rv;
	int got = 0;

	if ((rv = store_pg_flush(c, err)) != STORE_OK) {
		return rv;
	}
	for (int i = 0; i < skip + n; i++) {
		PGresult *res = NULL;

		rv = store_pg_take(c, i >= skip && first == STORE_OK ? &res : NULL,
		    first == STORE_OK ? err : &e, what);
		if (rv != STORE_OK && first == STORE_OK) {
			first = rv;
		}
		if (res != NULL) {
			out[got++] = res;
		}
		if (c->broken) {
			c->pending = 0;
			first = STORE_EUNAVAILABLE;
			break;
		}
	}
	if (first != STORE_OK) {
		for (int i = 0; i < got; i++) {
			PQclear(out[i]);
		}
	}
	return first;
}

store_err
store_pg_pipe_sync(store_pg_conn *c, store_error *err, const char *what)
{
	store_err first = STORE_OK;
	store_error e;
	PGresult *res;
	store_err rv;

	if (PQpipelineSync(c->pg) != 1) {
		return store_pg_fail(c, NULL, err, what);
	}
	while (c->pending > 0) {
		rv = store_pg_take(c, NULL, first == STORE_OK ? err : &e, what);
		if (rv != STORE_OK && first == STORE_OK) {
			first = rv;
		}
		if (c->broken) {
			c->pending = 0;
			return STORE_EUNAVAILABLE;
		}
	}
	if ((res = PQgetResult(c->pg)) == NULL ||
	    PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
		PQclear(res);
		c->broken = true; /* lost track of the protocol: start over */
		return store_pg_unavailable(c->pg, first == STORE_OK ? err : &e,
		    what, NULL);
	}
	PQclear(res);
	return first;
}

void
store_pg_pipe_abort(store_pg_conn *c)
{
	store_error e;
	PGresult *res;

	if (!c->pipeline) {
		return;
	}
	if (!c->broken && PQstatus(c->pg) == CONNECTION_OK) {
		(void) store_pg_pipe_sync(c, &e, "ending a failed batch");
	}
	c->pipeline = false;
	if (c->broken || PQexitPipelineMode(c->pg) != 1) {
		c->broken = true; /* the next call starts a new session */
		return;
	}
	/* Outside the pipeline: end whatever transaction is still open. */
	res = PQexec(c->pg, "ROLLBACK");
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
		c->broken = true;
	}
	PQclear(res);
}

/* --- schema --- */

/* store_pg_simple runs SQL with the simple protocol (text results). */
static store_err
store_pg_simple(store_pg_conn *c, const char *sql, PGresult **out,
    store_error *err, const char *what)
{
	PGresult *res = PQexec(c->pg, sql);
	ExecStatusType st = res != NULL ? PQresultStatus(res)
	                                : PGRES_FATAL_ERROR;
	store_err rv;

	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
		if (out != NULL) {
			*out = res;
		} else {
			PQclear(res);
		}
		return STORE_OK;
	}
	rv = store_pg_fail(c, res, err, what);
	PQclear(res);
	return rv;
}

/* store_pg_schema creates (or checks) the schema in one transaction under
 * the advisory lock. */
static store_err
store_pg_schema(store_pg_conn *c, store_error *err)
{
	char sql[96];
	PGresult *res = NULL;
	bool has_meta;
	bool has_records;
	long version;
	store_err rv;

	(void) snprintf(sql, sizeof(sql), "SELECT pg_advisory_xact_lock(%d)",
	    STORE_PG_SCHEMA_LOCK); /* fits */
	if ((rv = store_pg_simple(c, "BEGIN", NULL, err, "creating the "
	         "schema")) != STORE_OK ||
	    (rv = store_pg_simple(c, sql, NULL, err,
	         "locking the schema")) != STORE_OK ||
	    (rv = store_pg_simple(c,
	         "SELECT to_regclass('meta') IS NOT NULL,"
	         " to_regclass('records') IS NOT NULL",
	         &res, err, "reading the schema")) != STORE_OK) {
		goto out;
	}
	has_meta = PQgetvalue(res, 0, 0)[0] == 't';
	has_records = PQgetvalue(res, 0, 1)[0] == 't';
	PQclear(res);
	res = NULL;
	if (!has_meta && has_records) {
		rv = store_error_set(err, STORE_EIO, "path",
		    "the database has a records table but is not a datasync "
		    "one (no meta table)");
		goto out;
	}
	if (!has_meta) {
		if ((rv = store_pg_simple(c, store_pg_schema_v1, NULL, err,
		         "creating the schema")) != STORE_OK) {
			goto out;
		}
		version = 1;
		goto migrate;
	}
	if ((rv = store_pg_simple(c,
	         "SELECT schema_version FROM meta WHERE id = 0", &res, err,
	         "reading the schema version")) != STORE_OK) {
		goto out;
	}
	if (PQntuples(res) != 1) {
		rv = store_error_set(err, STORE_EIO, "path",
		    "the meta table has no row: not a datasync database");
		goto out;
	}
	version = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	if (version > STORE_PG_SCHEMA_VERSION) {
		rv = store_error_set(err, STORE_EIO, "path",
		    "the database schema (version %ld) is newer than this "
		    "build (version %d)",
		    version, STORE_PG_SCHEMA_VERSION);
		goto out;
	}
	/* Migrations from older versions, one step each, in this
	 * transaction. Version 1 is the first. */
migrate:
	if (version < 2 &&
	    (rv = store_pg_simple(c, store_pg_schema_v2, NULL, err,
	         "migrating the schema to version 2")) != STORE_OK) {
		goto out;
	}
	if (rv == STORE_OK) {
		rv = store_pg_simple(c, "COMMIT", NULL, err,
		    "committing the schema");
	}
out:
	PQclear(res);
	if (rv != STORE_OK && PQstatus(c->pg) == CONNECTION_OK) {
		PQclear(PQexec(c->pg, "ROLLBACK")); /* nothing to keep */
	}
	return rv;
}

/* --- opening --- */

static void
store_pg_free(store_pg *sp)
{
	if (sp != NULL) {
		ds_free(sp->uri);
		ds_free(sp);
	}
}

static store_err
store_pg_open(store *s, store_error *err)
{
	store_pg_conn c;
	store_pg *sp;
	store_err rv;
	long long lock_ms = s->limits.busy_timeout_ms > 0
	    ? (long long) s->limits.busy_timeout_ms
	    : 1; /* 0 would mean "wait forever" to PostgreSQL */

	if ((sp = ds_calloc(1, sizeof(*sp))) == NULL ||
	    (sp->uri = ds_strdup(s->path)) == NULL) {
		store_pg_free(sp);
		return store_error_set(err, STORE_ENOMEM, "",
		    "out of memory opening the store");
	}
	(void) snprintf(sp->options, sizeof(sp->options),
	    "-c lock_timeout=%lld -c synchronous_commit=%s", lock_ms,
	    s->durability == STORE_DURABILITY_NORMAL ? "off" : "on");
	s->be_data = sp;
	memset(&c, 0, sizeof(c));
	c.base.s = s;
	if ((rv = store_pg_connect(s, &c.pg, err)) == STORE_OK) {
		rv = store_pg_schema(&c, err);
		PQfinish(c.pg);
	}
	if (rv != STORE_OK) {
		s->be_data = NULL;
		store_pg_free(sp);
	}
	return rv;
}

static void
store_pg_close(store *s)
{
	store_pg_free(s->be_data);
	s->be_data = NULL;
}

static store_err
store_pg_conn_open(store *s, store_conn **out, store_error *err)
{
	store_pg_conn *c;
	store_err rv;

	if ((c = ds_calloc(1, sizeof(*c))) == NULL) {
		return store_error_set(err, STORE_ENOMEM, "",
		    "out of memory opening a connection");
	}
	c->base.s = s;
	if ((rv = store_pg_connect(s, &c->pg, err)) != STORE_OK) {
		ds_free(c);
		return rv;
	}
	if ((rv = store_pg_prepare(c, err)) != STORE_OK) {
		PQfinish(c->pg);
		ds_free(c);
		return rv;
	}
	*out = &c->base;
	return STORE_OK;
}

static void
store_pg_conn_close(store_conn *bc)
{
	store_pg_conn *c = (store_pg_conn *) bc;

	PQfinish(c->pg);
	ds_free(c);
}

/* --- small reads --- */

static store_err
store_pg_revision(store_conn *bc, uint64_t *out, store_error *err)
{
	store_pg_conn *c = (store_pg_conn *) bc;
	PGresult *res = NULL;
	store_err rv;

	if ((rv = store_pg_ready(c, err)) != STORE_OK ||
	    (rv = store_pg_exec(c, STORE_PG_META_GET, NULL, &res, err,
	         "reading the revision")) != STORE_OK) {
		return rv;
	}
	*out = store_pg_u64(res, 0, 0);
	PQclear(res);
	store_error_clear(err);
	return STORE_OK;
}

/* store_pg_integrity_check: PostgreSQL checks its own pages (checksums,
 * amcheck are the DBA's tools); what we can check cheaply is that the
 * session works and that the schema is ours and not newer. */
static store_err
store_pg_integrity_check(store_conn *bc, store_error *err)
{
	store_pg_conn *c = (store_pg_conn *) bc;
	PGresult *res = NULL;
	int64_t version;
	store_err rv;

	if ((rv = store_pg_ready(c, err)) != STORE_OK ||
	    (rv = store_pg_exec(c, STORE_PG_META_GET, NULL, &res, err,
	         "integrity_check")) != STORE_OK) {
		return rv;
	}
	version = PQntuples(res) == 1 ? store_pg_i64(res, 0, 2) : -1;
	PQclear(res);
	if (version != STORE_PG_SCHEMA_VERSION) {
		return store_error_set(err, STORE_EIO, "",
		    "integrity_check: schema version %lld, expected %d",
		    (long long) version, STORE_PG_SCHEMA_VERSION);
	}
	store_error_clear(err);
	return STORE_OK;
}

/* store_pg_peek: the data version is the store's revision minus the
 * revisions this connection's own commits took, so it moves exactly when
 * another connection (any node's) committed a change; every change takes
 * a revision. seen[] and the revision come from one REPEATABLE READ
 * transaction. */
static store_err
store_pg_peek(store_conn *bc, const store_write *const *ws, size_t n,
    uint64_t *data_version, bool *seen, store_error *err)
{
	store_pg_conn *c = (store_pg_conn *) bc;
	PGresult *res = NULL;
	store_pg_params p;
	store_err rv;

	if ((rv = store_pg_ready(c, err)) != STORE_OK) {
		return rv;
	}
	if (n > 0 && (rv = store_pg_exec(c, STORE_PG_BEGIN_READ, NULL, NULL,
	                  err, "beginning a read")) != STORE_OK) {
		return rv;
	}
	if ((rv = store_pg_exec(c, STORE_PG_META_GET, NULL, &res, err,
	         "reading the revision")) != STORE_OK) {
		goto out;
	}
	*data_version = store_pg_u64(res, 0, 0) - c->own_revs;
	PQclear(res);
	res = NULL;
	for (size_t i = 0; i < n; i++) {
		const store_write *w = ws[i];

		seen[i] = false;
		if (w->request_id_len == 0) {
			continue;
		}
		store_pg_p_init(&p);
		store_pg_p_bytes(&p, w->caller, w->caller_len);
		store_pg_p_bytes(&p, w->request_id, w->request_id_len);
		if ((rv = store_pg_exec(c, STORE_PG_REQ_SEEN, &p, &res, err,
		         "looking up request_id")) != STORE_OK) {
			goto out;
		}
		seen[i] = PQntuples(res) > 0;
		PQclear(res);
		res = NULL;
	}
out:
	if (n > 0 && !c->broken) {
		store_error e;

		/* A read-only transaction: ending it cannot lose data. */
		if (store_pg_exec(c, rv == STORE_OK ? STORE_PG_COMMIT
		                                    : STORE_PG_ROLLBACK,
		        NULL, NULL, rv == STORE_OK ? err : &e,
		        "ending a read") != STORE_OK &&
		    rv == STORE_OK) {
			rv = err != NULL ? err->code : STORE_EIO;
		}
	}
	if (rv == STORE_OK) {
		store_error_clear(err);
	}
	return rv;
}

/* --- waiting for other nodes' commits --- */

/* store_pg_notified consumes queued notifications: true if any. */
static bool
store_pg_notified(PGconn *pg)
{
	PGnotify *nt;
	bool any = false;

	while ((nt = PQnotifies(pg)) != NULL) {
		any = true;
		PQfreemem(nt);
	}
	return any;
}

static store_err
store_pg_changes_wait(store_conn *bc, int timeout_ms, bool *woke,
    store_error *err)
{
	store_pg_conn *c = (store_pg_conn *) bc;
	int64_t deadline;
	bool resumed = c->broken;
	store_err rv;

	*woke = false;
	if ((rv = store_pg_ready(c, err)) != STORE_OK) {
		return rv;
	}
	if (!c->listening) {
		if ((rv = store_pg_simple(c, "LISTEN " STORE_PG_CHANNEL, NULL,
		         err, "subscribing to changes")) != STORE_OK) {
			return rv;
		}
		c->listening = true;
		if (resumed) {
			/* Commits while we were away were not heard: the
			 * caller rereads the log. */
			*woke = true;
			store_error_clear(err);
			return STORE_OK;
		}
	}
	deadline = ds_clock_now_ms(ds_clock_monotonic()) + timeout_ms;
	for (;;) {
		struct pollfd pfd;
		int64_t left;
		int prc;

		if (PQconsumeInput(c->pg) != 1 ||
		    PQstatus(c->pg) != CONNECTION_OK) {
			c->broken = true;
			return store_pg_unavailable(c->pg, err,
			    "waiting for changes", NULL);
		}
		if (store_pg_notified(c->pg)) {
			*woke = true;
			break;
		}
		left = deadline - ds_clock_now_ms(ds_clock_monotonic());
		if (left <= 0) {
			break;
		}
		pfd.fd = PQsocket(c->pg);
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (pfd.fd < 0) {
			c->broken = true;
			return store_pg_unavailable(c->pg, err,
			    "waiting for changes", NULL);
		}
		prc = poll(&pfd, 1, left > INT32_MAX ? INT32_MAX : (int) left);
		if (prc < 0 && errno != EINTR) {
			return store_error_set(err, STORE_EIO, "",
			    "waiting for changes: poll: %s", strerror(errno));
		}
	}
	store_error_clear(err);
	return STORE_OK;
}

/* --- the vtable --- */

const store_backend store_pg_backend = {
    .name = "postgresql",
    .shared = true,
    .open = store_pg_open,
    .close = store_pg_close,
    .conn_open = store_pg_conn_open,
    .conn_close = store_pg_conn_close,
    .get = store_pg_get,
    .list = store_pg_list,
    .apply_batch = store_pg_apply_batch,
    .revision = store_pg_revision,
    .integrity_check = store_pg_integrity_check,
    .peek = store_pg_peek,
    .changes_read = store_pg_changes_read,
    .sweep_expired = store_pg_sweep_expired,
    .compact_changes = store_pg_compact_changes,
    .changes_wait = store_pg_changes_wait,
    .auth_create = store_pg_auth_create,
    .auth_revoke = store_pg_auth_revoke,
    .auth_list = store_pg_auth_list,
    .auth_generation = store_pg_auth_generation,
};
