/*
 * store.h - the versioned record store.
 *
 * The store owns every rule of DESIGN.md §3-§4 that concerns data:
 * versions that are never reused (tombstones), the store-wide revision,
 * history, preconditions, leased locks with fencing tokens, request-id
 * idempotency and the limits. Callers (the RPC handlers, tests, a future
 * PostgreSQL backend's users) see plain C structs only: no protobuf, no
 * nng.
 *
 * Threads and connections. A `store` is the shared, thread-safe handle
 * (configuration, clock). Each thread that touches the database opens its
 * own `store_conn`; a connection must be used by one thread at a time.
 * Reads on different connections run in parallel (WAL snapshots). Writes
 * on different connections serialise inside the backend. A lock held by
 * another process is waited for at most limits.busy_timeout_ms per call;
 * then the call fails with STORE_EBUSY and changes nothing. The server
 * funnels writes through one connection and store_apply_batch() so that
 * many writes share one commit (group commit).
 *
 * Errors. Every fallible function returns a store_err. Functions that take
 * a `store_error *` fill it on failure with the field at fault and a human
 * message that names the limit ("key exceeds max_key_bytes (512)"). A
 * NULL `store_error *` is allowed.
 *
 * Ownership. Request structs are borrowed for the duration of the call.
 * Result structs (store_record, store_write_result, store_list_page) are
 * written by the store, own their memory, and are released with their
 * _fini function; a zeroed result is valid input to _fini. On failure a
 * result holds only what the function documents (the current record on a
 * conflict, the lock on LOCKED) and must still be finished.
 */
#ifndef STORE_H
#define STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ds_clock.h"
#include "store_limits.h"

/* --- errors --- */

typedef enum store_err {
	STORE_OK = 0,
	STORE_EPRECONDITION_REQUIRED, /* write without a precondition */
	STORE_ECONFLICT,              /* precondition failed: VERSION_CONFLICT */
	STORE_ELOCKED,                /* somebody else holds a live lease */
	STORE_ELOCK_EXPIRED,          /* the caller's lease ran out */
	STORE_ETOKEN_MISMATCH,        /* Unlock with a token that is not held */
	STORE_ENOT_LOCKED,            /* Unlock/renew with nothing held */
	STORE_ENOTFOUND,              /* no live record (or no such version) */
	STORE_ECOMPACTED,             /* that version left the history */
	STORE_EINVAL,                 /* bad argument; error.field names it */
	STORE_ETOOLARGE,              /* a limit was exceeded; field names it */
	STORE_EREQUEST_ID_REUSED,     /* same request_id, different request */
	STORE_ENOMEM,                 /* allocation failed */
	STORE_EIO,                    /* the database failed (disk, corrupt) */
	STORE_ECLOSED,                /* the store is shutting down */
	STORE_EBUSY,                  /* another connection held the
	                               * database's lock past
	                               * limits.busy_timeout_ms: DB_BUSY */
	STORE_EREV_COMPACTED,         /* a watch cursor older than the
	                               * change log keeps:
	                               * REVISION_COMPACTED */
	STORE_EUNAVAILABLE,           /* the database server cannot be
	                               * reached (connection lost, server
	                               * restarting): DB_UNAVAILABLE. Nothing
	                               * was applied, or (a batch whose COMMIT
	                               * got no answer) the outcome is unknown;
	                               * either way the write was not
	                               * acknowledged and a retry with the same
	                               * request_id is safe. The connection
	                               * reconnects by itself on a later call */
} store_err;

/* store_strerror returns a static human name for e; never NULL. */
const char *store_strerror(store_err e);

/* store_reason returns the machine-readable reason of DESIGN §4 for e
 * ("VERSION_CONFLICT", "LOCKED", "INVALID_ARGUMENT", ...); static, never
 * NULL; "" for STORE_OK. */
const char *store_reason(store_err e);

/* store_error: the detail of a failure. Fixed-size so filling it cannot
 * fail. */
typedef struct store_error {
	store_err code;
	char field[32];    /* request field at fault ("key"), or "" */
	char message[192]; /* one line, names the field or limit */
} store_error;

/* --- configuration --- */

typedef enum store_durability {
	STORE_DURABILITY_FULL = 0, /* fsync the WAL on every commit */
	STORE_DURABILITY_NORMAL,   /* survive a process crash, not power loss */
} store_durability;

typedef struct store_config {
	const char *path;        /* database file, or ":memory:", or a
	                          * libpq connection URI (postgresql://...
	                          * or postgres://...), which selects the
	                          * PostgreSQL backend (DESIGN §10); borrowed
	                          * during store_open only. ":memory:" is a
	                          * private database shared by this store's
	                          * connections; it has no WAL, so there
	                          * reads take turns with writes */
	const ds_clock *clock;   /* wall clock for leases and timestamps;
	                          * borrowed for the store's lifetime; NULL =
	                          * ds_clock_wall(). On PostgreSQL the wall
	                          * clock means the DATABASE SERVER's clock
	                          * (so N nodes agree on every lease); any
	                          * other clock (a test's fake clock) is read
	                          * in this process and sent with each
	                          * statement */
	store_durability durability;
	store_limits limits;     /* start from store_limits_default() */
} store_config;

/* store_limits_check validates limits as store_open does: every value
 * within its hard maximum, minimums above zero where a zero would refuse
 * every request, default_page_size <= max_page_size and lock_ttl_min_ms
 * <= lock_ttl_default_ms <= lock_ttl_max_ms. STORE_EINVAL with field and
 * message naming the limit ("max_key_bytes (5000) exceeds its hard
 * maximum (4096)"). Pure; lets a program reject its flags before opening
 * anything. */
store_err store_limits_check(const store_limits *lim, store_error *err);

/* store_config_default fills cfg with the defaults of DESIGN §4 and §7
 * (path "./datasync.db", wall clock, full durability, default limits). */
void store_config_default(store_config *cfg);

/* --- records --- */

typedef struct store_lock_info {
	char *owner;            /* owned, NUL-terminated */
	int64_t expires_at_ms;  /* wall clock, ms since the epoch */
	uint64_t fencing_token; /* store-wide, grows on every acquisition */
} store_lock_info;

typedef struct store_record {
	char *key;               /* owned, NUL-terminated; key_len bytes */
	size_t key_len;
	uint8_t *value;          /* owned; may be NULL when value_len == 0 or
	                          * when the operation omits values (List) */
	size_t value_len;
	char *content_type;      /* owned, NUL-terminated, may be "" */
	char *updated_by;        /* owned, NUL-terminated, may be "" */
	uint64_t version;        /* per key, never reused */
	uint64_t revision;       /* store-wide revision of the last change */
	int64_t created_at_ms;
	int64_t updated_at_ms;
	bool deleted;            /* a tombstone (conflict details only) */
	bool locked;             /* lock is valid only when true */
	store_lock_info lock;
} store_record;

/* store_record_fini frees what r owns and zeroes it; NULL or zeroed is a
 * no-op. */
void store_record_fini(store_record *r);

/* --- handle and connections --- */

typedef struct store store;
typedef struct store_conn store_conn;

/* store_open validates cfg (limits above their hard maxima are rejected
 * with STORE_EINVAL naming the limit), creates or migrates the database
 * and returns the handle in *out (owned; store_close). On failure *out is
 * untouched and err says why (unwritable path, corrupt file). */
store_err store_open(const store_config *cfg, store **out, store_error *err);

/* store_close releases the handle. Every connection must be closed first
 * (a debug build asserts it). NULL is a no-op. */
void store_close(store *s);

/* store_cancel_waits makes every wait for a lock held by another
 * connection, current and future, give up at once with STORE_EBUSY, as if
 * busy_timeout_ms had passed (a shutdown that must not wait for a foreign
 * holder). Calls that need no wait are unaffected. Thread-safe; cannot be
 * undone. */
void store_cancel_waits(store *s);

/* store_backend_name returns "sqlite" or "postgresql"; static. */
const char *store_backend_name(const store *s);

/* store_is_shared is true when other processes write to the same
 * database as a matter of course (PostgreSQL: N datasyncd nodes). Then
 * nothing a process remembers about the data may be trusted without
 * asking the database (the writer's head cache is not used), and a watch
 * hub learns of other nodes' commits through store_changes_wait(). */
bool store_is_shared(const store *s);

/* store_limits_of returns the limits in force; borrowed for the store's
 * lifetime. */
const store_limits *store_limits_of(const store *s);

/* store_conn_open opens a connection for the calling thread (owned;
 * store_conn_close). Its prepared statements live as long as it does. */
store_err store_conn_open(store *s, store_conn **out, store_error *err);

/* store_conn_close finalizes the connection; NULL is a no-op. */
void store_conn_close(store_conn *c);

/* --- reads --- */

/* store_get reads the latest live version of key (version == 0) or a
 * historical one. On STORE_OK *out holds the record (caller finishes it).
 * Errors: STORE_EINVAL (key), STORE_ENOTFOUND (absent, deleted, or a
 * version never written), STORE_ECOMPACTED (older than the history keeps).
 * The record's lock reflects live leases only: an expired lease is no
 * lock. A historical version carries the key's current lock. */
store_err store_get(store_conn *c, const char *key, size_t key_len,
    uint64_t version, store_record *out, store_error *err);

/* store_get_rev is store_get that also sets *revision to the store's
 * revision in the snapshot the record was read in (on STORE_OK only;
 * untouched otherwise): GetResponse.revision, a cursor from which a
 * watch sees every later change of the record. Same errors. */
store_err store_get_rev(store_conn *c, const char *key, size_t key_len,
    uint64_t version, store_record *out, uint64_t *revision,
    store_error *err);

typedef struct store_list_req {
	const char *prefix;      /* borrowed; may be NULL = every key */
	size_t prefix_len;
	uint32_t page_size;      /* 0 = limits.default_page_size */
	const char *page_token;  /* borrowed; NULL or "" = first page */
	size_t page_token_len;
} store_list_req;

typedef struct store_list_page {
	store_record *records;   /* owned array of n live records, key order,
	                          * values omitted (value == NULL); NULL
	                          * when n == 0 */
	size_t n;
	char *next_page_token;   /* owned; NULL on the last page */
	uint64_t revision;       /* store revision the page was read at */
} store_list_page;

/* store_list returns one page of live keys under a prefix in byte order.
 * The page token is opaque to callers; it resumes strictly after the last
 * key returned, so a key present throughout a paging session is returned
 * exactly once even when writes happen between pages. Errors:
 * STORE_EINVAL (prefix, page_token), STORE_ETOOLARGE (page_size). */
store_err store_list(store_conn *c, const store_list_req *req,
    store_list_page *out, store_error *err);

/* store_list_page_fini frees a page; zeroed is a no-op. */
void store_list_page_fini(store_list_page *p);

/* --- writes --- */

typedef enum store_op {
	STORE_OP_UPDATE = 1,
	STORE_OP_DELETE,
	STORE_OP_LOCK,
	STORE_OP_UNLOCK,
} store_op;

typedef enum store_precond_kind {
	STORE_PRECOND_NONE = 0,     /* refused: PRECONDITION_REQUIRED */
	STORE_PRECOND_IF_VERSION,   /* current version must equal .version */
	STORE_PRECOND_IF_ABSENT,    /* no live record may exist */
	STORE_PRECOND_IF_EXISTS,    /* a live record must exist, any version */
	STORE_PRECOND_UNCONDITIONAL,
	STORE_PRECOND_IF_VERSION_IN, /* current version must be one of
	                              * .versions (an If-Match list) */
} store_precond_kind;

typedef struct store_precond {
	store_precond_kind kind;
	uint64_t version;          /* for STORE_PRECOND_IF_VERSION */
	const uint64_t *versions;  /* for STORE_PRECOND_IF_VERSION_IN:
	                            * borrowed; 1..limits.max_if_version_in
	                            * entries, each >= 1; duplicates allowed.
	                            * The request_id's identity covers the
	                            * list as given (order included): a retry
	                            * resends the same list */
	size_t n_versions;
} store_precond;

/* A lock token: 128 random bits from getrandom(2), shown only to the
 * holder (and to a request_id replay of the Lock that issued it). The
 * store keeps it raw, compared in constant time: a replay must be able to
 * return it, and the file's readers can read the data anyway. */
#define STORE_TOKEN_BYTES 16
#define STORE_TOKEN_HEX_LEN (2 * STORE_TOKEN_BYTES)

typedef struct store_token {
	uint8_t b[STORE_TOKEN_BYTES];
} store_token;

/* store_token_parse reads the 32-hex-digit text form. STORE_EINVAL with
 * field "lock_token" when it is not exactly that. */
store_err store_token_parse(const char *s, size_t len, store_token *out,
    store_error *err);

/* store_token_format writes the 32 hex digits and a NUL into out. */
void store_token_format(const store_token *t,
    char out[STORE_TOKEN_HEX_LEN + 1]);

/* store_write: one write. Every pointer is borrowed for the call. Which
 * fields matter depends on op:
 *   UPDATE  key, value, content_type, precond, token?, request_id?, author?
 *   DELETE  key, precond, token?, request_id?, author?
 *   LOCK    key, owner, ttl_ms (0 = default), token? (renew), request_id?
 *   UNLOCK  key, token, request_id?
 * Fields an op does not use are ignored (not validated, not part of the
 * request_id's identity). A renewal sets the owner to the request's.
 *
 * Request ids are scoped by caller: the store remembers (caller,
 * request_id), so the same id from two callers is two requests, and a
 * Lock replayed by another caller is a new Lock attempt (it never returns
 * the first caller's token). caller is who sent the write as far as the
 * transport knows (the RPC envelope's client name today, the
 * authenticated principal once there is one); NULL or "" is one more
 * caller. It is read only when request_id is given. */
typedef struct store_write {
	store_op op;
	const char *key;
	size_t key_len;
	const uint8_t *value;
	size_t value_len;
	const char *content_type; /* NULL = "" */
	size_t content_type_len;
	store_precond precond;
	bool has_token;
	store_token token;
	const char *owner;
	size_t owner_len;
	int64_t ttl_ms;
	const char *request_id;   /* NULL or "" = not idempotent */
	size_t request_id_len;
	const char *caller;       /* request_id's scope; NULL = ""; UTF-8,
	                           * <= limits.max_caller_bytes */
	size_t caller_len;
	const char *author;       /* stored as updated_by; NULL = "" */
	size_t author_len;
	/* Work done once, where the write is received, so that the single
	 * writer thread does not repeat it. Set only by store_prepare() (the
	 * RPC handlers call it on the thread that decoded the request): then
	 * validated = store_validate() accepted this write against the
	 * store's limits, and request_hash = store_request_hash() of it (0
	 * when there is no request_id). store_apply* TRUST both: they neither
	 * validate nor hash a write that says validated, so a caller must not
	 * set these by hand nor change the write after store_prepare(). A
	 * write with validated = false (a zeroed struct: store tests, tools)
	 * is validated and hashed by the store as before. */
	bool validated;
	uint64_t request_hash;
} store_write;

/* store_write_result: what one write did.
 *   OK:        record = the record as written (UPDATE: its value borrows
 *              the write's value bytes, value_borrowed = true, so it is
 *              valid only while the request is; DELETE:
 *              the tombstone's version and revision; LOCK/UNLOCK: the
 *              record's metadata with the lock state after the call);
 *              token = the lock token (LOCK only, also on renew);
 *              renewed (LOCK); replayed = this is the stored result of an
 *              earlier write with the same request_id.
 *   ECONFLICT: record = the current record with value (deleted = true for
 *              a tombstone; version 0 if the key never existed).
 *   ELOCKED:   record = the current metadata with its lock (owner,
 *              expiry, fencing token); version 0 for a key locked
 *              before it existed.
 *   other:     error only.
 * A replay (same request_id, same request) returns the stored outcome of
 * the first write, token included, with replayed = true; UPDATE's value
 * is the request's (borrowed as above), identical by construction. */
typedef struct store_write_result {
	store_error error;   /* error.code is the outcome; STORE_OK = applied */
	store_record record; /* owned (but see value_borrowed); finish with
	                      * store_write_result_fini, never
	                      * store_record_fini */
	bool value_borrowed; /* record.value points into the store_write's
	                      * value (UPDATE applied or replayed): the store
	                      * copies no value into a result; _fini does not
	                      * free it */
	store_token token;
	bool renewed;
	bool replayed;
} store_write_result;

/* store_write_result_fini frees what r owns; zeroed is a no-op. */
void store_write_result_fini(store_write_result *r);

/* store_validate checks w against the limits and the rules that need no
 * database (precondition present, key well-formed, ttl bounds) without
 * touching SQL. Returns the error it also writes to err. Pure; used by
 * store_apply* and by callers that want to reject early. */
store_err store_validate(const store_limits *lim, const store_write *w,
    store_error *err);

/* store_prepare validates w as store_validate does and, when it passes,
 * records the outcome in w (validated, request_hash) so that store_apply*
 * skip both on the writer. Run it where the write is received, after the
 * last change to w. On failure w->validated is false and err says why. */
store_err store_prepare(const store_limits *lim, store_write *w,
    store_error *err);

/* store_apply applies one write in its own transaction and returns
 * result->error.code. result must be zeroed by the caller; it is filled
 * on every outcome (see store_write_result). */
store_err store_apply(store_conn *c, const store_write *w,
    store_write_result *result);

/* store_apply_batch applies n writes in ONE transaction, in order, each
 * seeing the effects of those before it. Each write gets its own result:
 * a failed precondition fails that write only. The function returns
 * STORE_OK when the transaction committed (whatever the individual
 * outcomes), or the error that made the whole batch fail (STORE_EIO,
 * STORE_ENOMEM): then nothing was applied and every result carries that
 * error. Besides a failed COMMIT, this happens when SQLite itself rolls
 * the transaction back (some I/O and out-of-memory errors do); a write
 * that fails midway otherwise is undone alone (its own SAVEPOINT) with
 * STORE_EIO or STORE_ENOMEM in its result. results[0..n) must be zeroed
 * by the caller. When the call returns STORE_OK the commit is durable to
 * the configured level. */
store_err store_apply_batch(store_conn *c, const store_write *ws, size_t n,
    store_write_result *results);

/* --- the change log (DESIGN §9) ---
 *
 * Every change takes the next store revision and appends one change-log
 * entry in the same transaction: UPDATE -> PUT, DELETE -> DELETE, LOCK
 * (acquire or renew) -> LOCK, UNLOCK -> UNLOCK, and a lease that runs out
 * -> EXPIRE, written by store_sweep_expired(). A replayed write (same
 * request_id) changes nothing and logs nothing. One change per revision,
 * so a revision is never split. */

typedef enum store_event_type {
	STORE_EV_PUT = 1,
	STORE_EV_DELETE,
	STORE_EV_LOCK,
	STORE_EV_UNLOCK,
	STORE_EV_EXPIRE,
} store_event_type;

/* store_event: one change-log entry. record is the record's metadata
 * after the change (key, version, revision = the event's, content_type,
 * updated_by, timestamps, deleted, lock as it was right after the
 * change: set for LOCK, and for PUT/DELETE by a lock holder; never for
 * UNLOCK and EXPIRE); record.value only when the read asked with_values
 * and that version is still in the history, else value_omitted = (with_
 * values asked). An event of a record with no value (DELETE, or a lock
 * change of a deleted or never written key: version 0) has none to omit:
 * value NULL, value_omitted false. An UNLOCK or EXPIRE of a key locked
 * before it was ever written carries version 0. */
typedef struct store_event {
	store_event_type type;
	uint64_t revision;
	store_record record;  /* owned */
	bool value_omitted;
} store_event;

/* store_changes_req: which events to read. key/key_len is one key, or,
 * with prefix = true, every key that starts with it (key_len 0 = all).
 * Events with revision > after, oldest first, at most limit (1 ..
 * STORE_CHANGES_LIMIT_MAX). Borrowed for the call. */
typedef struct store_changes_req {
	const char *key;
	size_t key_len;
	bool prefix;
	uint64_t after;
	size_t limit;
	bool with_values;
	size_t max_value_bytes; /* with_values: stop after the event whose
	                         * value brings the page to this many value
	                         * bytes (more = true then); 0 = no bound */
} store_changes_req;

/* store_changes_page: what store_changes_read found, in one read
 * transaction. events in revision order; revision = the store's revision
 * in that snapshot; compact_revision = the oldest cursor the log still
 * serves (after >= compact_revision is served; after < it is
 * STORE_EREV_COMPACTED); more = there are matching events past the last
 * one returned (limit reached). */
typedef struct store_changes_page {
	store_event *events;  /* owned, n entries */
	size_t n;
	uint64_t revision;
	uint64_t compact_revision;
	bool more;
} store_changes_page;

#define STORE_CHANGES_LIMIT_MAX 10000

/* store_changes_read reads the log. STORE_EREV_COMPACTED (field
 * "after_revision", the message naming compact_revision) when after <
 * compact_revision: page->revision and page->compact_revision are still
 * filled. STORE_EINVAL for a bad key or limit. after > revision is
 * valid (no events yet). */
store_err store_changes_read(store_conn *c, const store_changes_req *req,
    store_changes_page *page, store_error *err);

/* store_changes_wait blocks up to timeout_ms (>= 0) until a change may
 * have committed through any connection to the database, this process's
 * or another node's (PostgreSQL: a NOTIFY sent by every committing
 * transaction; the first call on c subscribes, so changes committed
 * before it are not waited for: read the log after subscribing).
 * *woke = true when woken, false on timeout. A wake is a hint only: the
 * change log is the truth. STORE_EUNAVAILABLE while the server cannot be
 * reached (the caller retries later; the next call reconnects and
 * resubscribes, and sets *woke = true so that the caller rereads the log
 * for what it may have missed). Only when store_is_shared(); otherwise
 * STORE_EINVAL (a single-process store's commits are known to the
 * process that makes them). c must be used for nothing else. */
store_err store_changes_wait(store_conn *c, int timeout_ms, bool *woke,
    store_error *err);

/* store_changes_page_fini frees what p owns; zeroed is a no-op. */
void store_changes_page_fini(store_changes_page *p);

/* store_sweep_expired, on the writing connection, in ONE transaction:
 * for up to `max` keys whose lease expired at or before the store's
 * clock, clears the lock, appends an EXPIRE event (own revision), and
 * deletes the placeholder head row of a key that was locked but never
 * written. *n = leases swept; *next_expiry_ms = the earliest remaining
 * lease expiry, INT64_MAX when none (the caller sleeps until then).
 * Reads and writes already treat an expired lease as absent; the sweep
 * only makes the expiry visible in the log. */
store_err store_sweep_expired(store_conn *c, size_t max, size_t *n,
    int64_t *next_expiry_ms, store_error *err);

/* The most leases one sweep, and change-log entries one compaction,
 * handles (max above it is STORE_EINVAL, field "max"): each call is one
 * write transaction that holds the writer. */
#define STORE_SWEEP_MAX 10000
#define STORE_COMPACT_MAX 100000

/* store_compact_changes, on the writing connection: deletes change-log
 * entries that are both older than the newest retain_revisions and
 * older than retain_ms by the store's clock, at most max per call (so
 * the writer is not held long), and raises compact_revision to match.
 * *n = entries deleted. Deletes from the oldest entry up and stops at
 * the first one either rule keeps, so the log stays gapless: after it,
 * compact_revision = the newest revision deleted. "Older than
 * retain_ms" = logged more than retain_ms before now. */
store_err store_compact_changes(store_conn *c, uint64_t retain_revisions,
    int64_t retain_ms, size_t max, size_t *n, store_error *err);

/* --- authentication tokens (DESIGN §11) ---
 *
 * The store keeps tokens so that every node of a cluster agrees on them:
 * name, SHA-256 of the secret (never the secret), canonical grants text
 * (auth_grants_format: one grant per line), when made, when revoked. A
 * name is never reused, a revoked token stays listed. Every create and
 * revoke moves the auth generation, so a node that caches the tokens
 * reloads them when it changed (revocation within a second on every
 * node). These are rare admin writes: each runs in its own transaction
 * on the calling connection, not through store_apply_batch. */

#define STORE_AUTH_TOKENS_MAX 10000 /* tokens, revoked ones included */

typedef struct store_auth_token {
	char *name;           /* owned, NUL-terminated */
	uint8_t hash[32];     /* SHA-256 of the secret's text */
	char *grants;         /* owned, canonical text */
	int64_t created_at_ms;
	bool revoked;
	int64_t revoked_at_ms;
} store_auth_token;

/* store_auth_create adds a token. STORE_ECONFLICT (field "name") when the
 * name exists (revoked or not), STORE_ETOOLARGE (field "name") past
 * STORE_AUTH_TOKENS_MAX, STORE_EINVAL for an empty name or grants (the
 * caller validated both with auth.h). created_at = the store's clock. */
store_err store_auth_create(store_conn *c, const char *name,
    const uint8_t hash[32], const char *grants, store_auth_token *out,
    store_error *err);

/* store_auth_revoke marks name revoked (revoked_at = the store's clock)
 * and fills *out. STORE_ENOTFOUND (field "name"); revoking a revoked
 * token is STORE_OK and changes nothing. */
store_err store_auth_revoke(store_conn *c, const char *name,
    store_auth_token *out, store_error *err);

/* store_auth_list reads every token, by name, in one read transaction,
 * and the auth generation they are at. *out owned: store_auth_tokens_free
 * (NULL when *n == 0). */
store_err store_auth_list(store_conn *c, store_auth_token **out, size_t *n,
    uint64_t *generation, store_error *err);

/* store_auth_generation reads the number every create and revoke moves
 * (0 for a store that never had a token): one small read. */
store_err store_auth_generation(store_conn *c, uint64_t *generation,
    store_error *err);

/* store_auth_token_fini / _tokens_free release what they own; zeroed or
 * NULL is a no-op. */
void store_auth_token_fini(store_auth_token *t);
void store_auth_tokens_free(store_auth_token *t, size_t n);

/* --- maintenance --- */

/* store_revision reads the current store-wide revision. */
store_err store_revision(store_conn *c, uint64_t *out, store_error *err);

/* store_data_version reads a number that changes when ANOTHER connection
 * (of this process or another process on the same file) has committed a
 * write since the previous call on c; c's own commits leave it alone. A
 * caller that remembers what c wrote compares it before trusting its
 * memory (the writer's head cache, dsh_headcache.c). One read
 * transaction, no row read. */
store_err store_data_version(store_conn *c, uint64_t *out, store_error *err);

/* store_peek_requests reads, in ONE read transaction on c (no row of a
 * record, no write lock), *data_version as store_data_version() does and,
 * for each of the n writes, seen[i] = the store holds an entry for its
 * (caller, request_id), live or expired; false for a write without a
 * request id. A write with seen[i] = false would neither be replayed nor
 * refused as REQUEST_ID_REUSED at that moment. */
store_err store_peek_requests(store_conn *c, const store_write *const *ws,
    size_t n, uint64_t *data_version, bool *seen, store_error *err);

/* store_now_ms reads the store's clock (the one leases and timestamps
 * use). */
int64_t store_now_ms(const store *s);

/* store_conflict_error fills err (may be NULL) with the VERSION_CONFLICT
 * store_apply* give a write whose precondition a LIVE record at version
 * `version` refused (field "precondition", the message naming the
 * version). Returns STORE_ECONFLICT. */
store_err store_conflict_error(store_error *err, uint64_t version);

/* store_integrity_check runs PRAGMA integrity_check; STORE_OK when the
 * database reports "ok", STORE_EIO with the first problem otherwise. */
store_err store_integrity_check(store_conn *c, store_error *err);

#endif /* STORE_H */
