/*
 * store_int.h - private to service/store: the handle, the backend vtable
 * and the pure helpers the backends share (validation, leases, request
 * hashing, error filling). Nothing outside service/store includes it.
 *
 * The split: store.c owns everything that needs no database (validation,
 * limits, result lifetimes, tokens, dispatch); a backend (store_sqlite.c
 * today, PostgreSQL later) owns connections, transactions and the rules
 * that must be checked against stored state, and calls the pure lease
 * decisions of store_lease.c so both backends decide identically.
 */
#ifndef STORE_INT_H
#define STORE_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ds_assert.h"
#include "store.h"

typedef struct store_backend store_backend;

/* store: the shared handle. Everything but nconns is written once by
 * store_open and read-only afterwards, so any thread may read it without
 * a lock; the backend's own shared state (be_data) documents its locks. */
struct store {
	const store_backend *be; /* static vtable */
	void *be_data;           /* owned by the backend: be->close frees it */
	const ds_clock *clock;   /* borrowed from the config */
	store_durability durability;
	store_limits limits;
	char *path;              /* owned copy of config.path */
	atomic_int nconns;       /* open connections; 0 at store_close */
	atomic_bool waits_cancelled; /* store_cancel_waits was called */
};

/* store_conn: what every backend connection starts with. The backend
 * allocates its own larger struct with this as the first member. */
struct store_conn {
	store *s; /* borrowed: the store outlives its connections */
};

/* store_backend: the operations a backend implements. Arguments are
 * already checked for NULL by store.c; reads validate their own input
 * through the helpers below, writes through store_validate(). */
struct store_backend {
	const char *name;
	bool shared; /* store_is_shared() */
	/* open creates or migrates the database and sets s->be_data. On
	 * failure it leaves s->be_data NULL and fills err. */
	store_err (*open)(store *s, store_error *err);
	/* close frees s->be_data; no connection is open. */
	void (*close)(store *s);
	store_err (*conn_open)(store *s, store_conn **out, store_error *err);
	void (*conn_close)(store_conn *c);
	/* get: revision (may be NULL) = the store's revision in the
	 * snapshot the record was read in, on STORE_OK. */
	store_err (*get)(store_conn *c, const char *key, size_t key_len,
	    uint64_t version, store_record *out, uint64_t *revision,
	    store_error *err);
	store_err (*list)(store_conn *c, const store_list_req *req,
	    store_list_page *out, store_error *err);
	store_err (*apply_batch)(store_conn *c, const store_write *ws,
	    size_t n, store_write_result *results);
	store_err (*revision)(store_conn *c, uint64_t *out, store_error *err);
	store_err (*integrity_check)(store_conn *c, store_error *err);
	store_err (*peek)(store_conn *c, const store_write *const *ws,
	    size_t n, uint64_t *data_version, bool *seen, store_error *err);
	/* The change log (DESIGN §9); arguments checked by store.c. */
	store_err (*changes_read)(store_conn *c, const store_changes_req *req,
	    store_changes_page *page, store_error *err);
	store_err (*sweep_expired)(store_conn *c, size_t max, size_t *n,
	    int64_t *next_expiry_ms, store_error *err);
	store_err (*compact_changes)(store_conn *c, uint64_t retain_revisions,
	    int64_t retain_ms, size_t max, size_t *n, store_error *err);
	/* changes_wait: NULL when !shared (store.c answers STORE_EINVAL). */
	store_err (*changes_wait)(store_conn *c, int timeout_ms, bool *woke,
	    store_error *err);
	/* Tokens (store.h); arguments checked by store.c. */
	store_err (*auth_create)(store_conn *c, const char *name,
	    const uint8_t hash[32], const char *grants, store_auth_token *out,
	    store_error *err);
	store_err (*auth_revoke)(store_conn *c, const char *name,
	    store_auth_token *out, store_error *err);
	store_err (*auth_list)(store_conn *c, store_auth_token **out,
	    size_t *n, uint64_t *generation, store_error *err);
	store_err (*auth_generation)(store_conn *c, uint64_t *generation,
	    store_error *err);
};

extern const store_backend store_sqlite_backend;
extern const store_backend store_pg_backend; /* store_pg.c */

/* --- errors (store.c) --- */

/* store_error_set fills err (may be NULL) and returns code. The message
 * is truncated to fit; filling cannot fail. */
store_err store_error_set(store_error *err, store_err code, const char *field,
    const char *fmt, ...) DS_PRINTF(4, 5);

/* store_busy_error fills err (may be NULL) with STORE_EBUSY for a lock
 * wait on s that gave up while doing `what`, naming busy_timeout_ms (or
 * the shutdown that cancelled waits). Returns STORE_EBUSY. */
store_err store_busy_error(const store *s, store_error *err,
    const char *what);

/* store_error_clear sets err (may be NULL) to STORE_OK with no text. */
void store_error_clear(store_error *err);

/* --- validation (store.c), pure --- */

/* store_validate_key checks a key against the limits (field "key"). */
store_err store_validate_key(const store_limits *lim, const char *key,
    size_t key_len, store_error *err);

/* store_validate_changes checks a change-log read: the key (field
 * "key") or prefix (field "prefix") and limit (field "limit"). */
store_err store_validate_changes(const store_limits *lim,
    const store_changes_req *req, store_error *err);

/* store_list_args: a List request after validation. cursor points into
 * cursor_buf (decoded page token) or is NULL on the first page. */
typedef struct store_list_args {
	uint32_t page_size; /* resolved: never 0 */
	const uint8_t *cursor;
	size_t cursor_len;
	uint8_t cursor_buf[STORE_MAX_KEY_BYTES_HARD];
} store_list_args;

/* store_validate_list checks req (prefix, page_size, page_token) and
 * decodes the page token into args. */
store_err store_validate_list(const store_limits *lim,
    const store_list_req *req, store_list_args *args, store_error *err);

/* store_page_token_format returns an owned page token resuming after key
 * (free with ds_free), or NULL when out of memory. */
char *store_page_token_format(const uint8_t *key, size_t key_len);

/* store_effective_ttl resolves ttl 0 to the default. The write must have
 * passed store_validate. */
int64_t store_effective_ttl(const store_limits *lim, int64_t ttl_ms);

/* store_request_hash is the 64-bit hash of the canonical encoding of w:
 * only the fields that matter for w->op, each length-prefixed, so two
 * requests that mean the same write hash the same. A word-wise hash (see
 * store.c for why collisions do not matter); stable across releases. */
uint64_t store_request_hash(const store_limits *lim, const store_write *w);

/* store_request_hash_fnv is the same encoding hashed with FNV-1a, as
 * releases before the word-wise hash stored it. */
uint64_t store_request_hash_fnv(const store_limits *lim,
    const store_write *w);

/* store_request_hash_matches says whether the hash stored under w's
 * request id (stored) is w's: its hash (store_write_hash) or, for an
 * entry stored by an earlier release, its FNV-1a hash. */
bool store_request_hash_matches(const store_limits *lim,
    const store_write *w, uint64_t hash, uint64_t stored);

/* store_write_hash is w's request hash: the one store_prepare recorded
 * (trusted as is), else computed now. */
uint64_t store_write_hash(const store_limits *lim, const store_write *w);

/* store_write_check is store_validate for the write path: STORE_OK
 * without looking when store_prepare accepted w already (clearing err). */
store_err store_write_check(const store_limits *lim, const store_write *w,
    store_error *err);

/* store_result_borrow_value points res->record's value at w's value bytes
 * (UPDATE with a value; otherwise a no-op) and sets value_borrowed: a
 * result never copies the value it was sent. Cannot fail. */
void store_result_borrow_value(store_write_result *res, const store_write *w);

/* store_record_set_text copies n bytes (p may be NULL when n == 0) into
 * *out as an owned C string. STORE_ENOMEM leaves *out untouched. */
DS_WUR store_err store_record_set_text(char **out, const void *p, size_t n);

/* --- leases (store_lease.c), pure and clock-injected --- */

/* store_lease: a record's lock columns as the rules see them. A lease
 * whose expires_at_ms has passed is kept (held stays true) only so that
 * its former holder can be told LOCK_EXPIRED; it is no lock at all. */
typedef struct store_lease {
	bool held;              /* lock columns are set (live or expired) */
	bool swept;             /* store_sweep_expired logged its expiry:
	                         * never live again, even if the clock
	                         * steps back; the token is still known */
	int64_t expires_at_ms;  /* live while now < expires_at_ms */
	uint64_t fencing_token;
	store_token token;      /* the secret; compared in constant time */
} store_lease;

typedef enum store_lease_action {
	STORE_LEASE_ACQUIRE = 1, /* new token, next fencing token */
	STORE_LEASE_RENEW,       /* same token and fencing token, new expiry */
} store_lease_action;

/* store_lease_live is true while l is held, not swept and now <
 * expires_at. */
bool store_lease_live(const store_lease *l, int64_t now_ms);

/* store_lease_check_write decides whether an Update/Delete presenting
 * (has_token, token) may proceed: STORE_OK, STORE_ELOCKED (live lease,
 * no or wrong token), STORE_ELOCK_EXPIRED (no live lease, the token is
 * the expired lease's) or STORE_ENOT_LOCKED (no live lease, another
 * token). */
store_err store_lease_check_write(const store_lease *l, int64_t now_ms,
    bool has_token, const store_token *token);

/* store_lease_check_lock decides a Lock: STORE_OK with *action, or
 * STORE_ELOCKED / STORE_ELOCK_EXPIRED / STORE_ENOT_LOCKED as for writes
 * (a Lock without a token acquires unless a live lease exists). */
store_err store_lease_check_lock(const store_lease *l, int64_t now_ms,
    bool has_token, const store_token *token, store_lease_action *action);

/* store_lease_check_unlock decides an Unlock: STORE_OK, STORE_ENOT_LOCKED
 * (no live lease) or STORE_ETOKEN_MISMATCH (live, another token). */
store_err store_lease_check_unlock(const store_lease *l, int64_t now_ms,
    const store_token *token);

/* store_lease_expiry is now + ttl, saturating instead of overflowing. */
int64_t store_lease_expiry(int64_t now_ms, int64_t ttl_ms);

/* store_lease_error fills err for a lease refusal (code from the checks
 * above), naming the holder and expiry where they are known. owner may be
 * NULL. Returns code. */
store_err store_lease_error(store_error *err, store_err code,
    const char *owner, const store_lease *l);

#endif /* STORE_INT_H */
