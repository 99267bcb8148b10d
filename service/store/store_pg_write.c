/*
 * store_pg_write.c - the PostgreSQL backend's writes: the Update, Delete,
 * Lock and Unlock rules (mirroring store_sqlite_write.c, deciding with
 * store_lease.c), request ids, batches, the lease sweep and change-log
 * compaction.
 *
 * A batch is ONE transaction in libpq pipeline mode. Round trip 1:
 * BEGIN, SELECT ... FROM meta FOR UPDATE, and the one read (head row,
 * request-id entry, clock) of every write of the first group: writes
 * whose keys and request ids all differ, so that no read depends on an
 * earlier write of the group. Each write of the group is then decided
 * here in order and its mutations queued without waiting (plus the
 * prune of a few expired request ids). A later group's reads go in one
 * more round trip (with the results of what was queued before them).
 * Last round trip: UPDATE meta, pg_notify(), COMMIT, Sync. A batch of
 * distinct keys is thus two round trips; a VERSION_CONFLICT costs one
 * more (the current value is read only then). The meta row lock makes
 * every writer of every node take turns, so the revisions a batch
 * assigns are gapless and in commit order, and no row a read sees can
 * change before COMMIT.
 *
 * A refusal (conflict, lock, request id) is decided before anything is
 * queued, so it changes nothing. A statement that FAILS (an SQL error)
 * aborts the whole transaction in PostgreSQL; then the batch is rolled
 * back and run again with a SAVEPOINT per write whose results are read
 * before the next write, so only the failing write fails (STORE_EIO).
 * Savepoints are not used on the fast path: each is a subtransaction,
 * and more than 64 in one transaction overflow PostgreSQL's per-backend
 * subtransaction cache, which slows every other session's snapshots.
 *
 * Losing the server at any point fails every write of the batch with
 * STORE_EUNAVAILABLE: before COMMIT nothing was applied; if COMMIT was
 * sent but its answer never came, the outcome is unknown (store.h), and a
 * retry with the same request_id is safe either way.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ds_alloc.h"
#include "ds_text.h"
#include "store_pg_int.h"

/* store_pg_wctx: the state of one write transaction. */
typedef struct store_pg_wctx {
	store_pg_conn *c;
	const store_limits *lim;
	int64_t now;       /* the clock at the current write */
	uint64_t revision; /* counters as advanced so far in the batch */
	uint64_t fencing;
	uint64_t compact;  /* meta.compact_revision at the lock */
	uint64_t start;    /* meta.revision at the lock */
	bool dirty;        /* differ from the meta row */
} store_pg_wctx;

/* STORE_PG_WRITE_READ's columns: the clock, the head row, the request
 * id's entry. */
enum {
	WR_NOW = 0,
	WR_ROW = 1,
	WR_Q = WR_ROW + STORE_PG_ROW_NCOLS,
	WR_Q_HASH = WR_Q,
	WR_Q_CREATED_AT,
	WR_Q_VERSION,
	WR_Q_REVISION,
	WR_Q_REC_CREATED_AT,
	WR_Q_REC_UPDATED_AT,
	WR_Q_FLAGS,
	WR_Q_CONTENT_TYPE,
	WR_Q_UPDATED_BY,
	WR_Q_LOCK_OWNER,
	WR_Q_LOCK_EXPIRES_AT,
	WR_Q_LOCK_FENCING,
	WR_Q_TOKEN,
};

/* --- request ids --- */

/* store_pg_req_expired: was a request id remembered at created_at too
 * long ago to be replayed? (As the SQLite backend decides.) */
static bool
store_pg_req_expired(int64_t created_at, int64_t now, int64_t ttl)
{
	int64_t age;

	if (created_at >= now) {
		return false; /* the clock stepped back: still fresh */
	}
	return __builtin_sub_overflow(now, created_at, &age) || age >= ttl;
}

/* store_pg_req_lookup: *found = false when w's id is new (or expired);
 * a replay fills res; STORE_EREQUEST_ID_REUSED for another request. The
 * (caller, id) is the primary key, so the hash compare is the only
 * check; entries written by earlier SQLite releases (FNV) never exist
 * here, but store_request_hash_matches is used all the same. */
static store_err
store_pg_req_lookup(store_pg_wctx *x, const store_write *w, uint64_t hash,
    const PGresult *res, store_write_result *rs, bool *found)
{
	store_record r;
	store_err rv;
	int64_t flags;

	*found = false;
	if (store_pg_null(res, 0, WR_Q_HASH) ||
	    store_pg_req_expired(store_pg_i64(res, 0, WR_Q_CREATED_AT), x->now,
	        x->lim->request_id_ttl_ms)) {
		return STORE_OK;
	}
	if (!store_request_hash_matches(x->lim, w, hash,
	        store_pg_u64(res, 0, WR_Q_HASH))) {
		return store_error_set(&rs->error, STORE_EREQUEST_ID_REUSED,
		    "request_id",
		    "request_id was already used for a different request");
	}
	memset(&r, 0, sizeof(r));
	flags = store_pg_i64(res, 0, WR_Q_FLAGS);
	if ((rv = store_record_set_text(&r.key, w->key, w->key_len)) !=
	        STORE_OK ||
	    (rv = store_pg_text(res, 0, WR_Q_CONTENT_TYPE, &r.content_type)) !=
	        STORE_OK ||
	    (rv = store_pg_text(res, 0, WR_Q_UPDATED_BY, &r.updated_by)) !=
	        STORE_OK) {
		goto nomem;
	}
	r.key_len = w->key_len;
	r.version = store_pg_u64(res, 0, WR_Q_VERSION);
	r.revision = store_pg_u64(res, 0, WR_Q_REVISION);
	r.created_at_ms = store_pg_i64(res, 0, WR_Q_REC_CREATED_AT);
	r.updated_at_ms = store_pg_i64(res, 0, WR_Q_REC_UPDATED_AT);
	r.deleted = (flags & STORE_PG_F_DELETED) != 0;
	if ((flags & STORE_PG_F_LOCKED) != 0 &&
	    (rv = store_pg_record_lock(&r, res, 0, WR_Q_LOCK_OWNER,
	         store_pg_i64(res, 0, WR_Q_LOCK_EXPIRES_AT),
	         store_pg_u64(res, 0, WR_Q_LOCK_FENCING))) != STORE_OK) {
		goto nomem;
	}
	if (w->op == STORE_OP_LOCK &&
	    PQgetlength(res, 0, WR_Q_TOKEN) == STORE_TOKEN_BYTES) {
		memcpy(rs->token.b, PQgetvalue(res, 0, WR_Q_TOKEN),
		    STORE_TOKEN_BYTES);
	}
	rs->renewed = (flags & STORE_PG_F_RENEWED) != 0;
	rs->replayed = true;
	rs->record = r;
	/* Identical to the stored write's value: the hash says so. */
	store_result_borrow_value(rs, w);
	*found = true;
	store_error_clear(&rs->error);
	return STORE_OK;
nomem:
	store_record_fini(&r);
	return store_error_set(&rs->error, rv, "", "out of memory");
}

/* store_pg_req_remember queues the entry of a successful write. */
static store_err
store_pg_req_remember(store_pg_wctx *x, const store_write *w, uint64_t hash,
    store_write_result *res)
{
	const store_record *r = &res->record;
	int64_t flags = (r->deleted ? STORE_PG_F_DELETED : 0) |
	    (r->locked ? STORE_PG_F_LOCKED : 0) |
	    (res->renewed ? STORE_PG_F_RENEWED : 0);
	store_pg_params p;

	store_pg_p_init(&p);
	store_pg_p_bytes(&p, w->caller, w->caller_len);
	store_pg_p_bytes(&p, w->request_id, w->request_id_len);
	store_pg_p_i64(&p, (int64_t) hash);
	store_pg_p_i64(&p, x->now);
	store_pg_p_i64(&p, (int64_t) r->version);
	store_pg_p_i64(&p, (int64_t) r->revision);
	store_pg_p_i64(&p, r->created_at_ms);
	store_pg_p_i64(&p, r->updated_at_ms);
	store_pg_p_i64(&p, flags);
	store_pg_p_bytes(&p, r->content_type, strlen(r->content_type));
	store_pg_p_bytes(&p, r->updated_by, strlen(r->updated_by));
	if (r->locked) {
		store_pg_p_bytes(&p, r->lock.owner, strlen(r->lock.owner));
		store_pg_p_i64(&p, r->lock.expires_at_ms);
		store_pg_p_i64(&p, (int64_t) r->lock.fencing_token);
	} else {
		store_pg_p_null(&p);
		store_pg_p_null(&p);
		store_pg_p_null(&p);
	}
	if (w->op == STORE_OP_LOCK) {
		store_pg_p_bytes(&p, res->token.b, STORE_TOKEN_BYTES);
	} else {
		store_pg_p_null(&p);
	}
	return store_pg_send(x->c, STORE_PG_REQ_PUT, &p, &res->error);
}

/* --- mutations (queued) --- */

/* store_pg_log_change queues r's change-log row. */
static store_err
store_pg_log_change(store_pg_wctx *x, store_event_type type,
    const store_record *r, store_error *err)
{
	store_pg_params p;

	store_pg_p_init(&p);
	store_pg_p_i64(&p, (int64_t) r->revision);
	store_pg_p_bytes(&p, r->key, r->key_len);
	store_pg_p_i64(&p, (int64_t) type);
	store_pg_p_i64(&p, x->now);
	store_pg_p_i64(&p, (int64_t) r->version);
	store_pg_p_i64(&p, r->deleted ? 1 : 0);
	store_pg_p_i64(&p, r->created_at_ms);
	store_pg_p_i64(&p, r->updated_at_ms);
	store_pg_p_bytes(&p, r->content_type, strlen(r->content_type));
	store_pg_p_bytes(&p, r->updated_by, strlen(r->updated_by));
	if (r->locked) {
		store_pg_p_bytes(&p, r->lock.owner, strlen(r->lock.owner));
		store_pg_p_i64(&p, r->lock.expires_at_ms);
		store_pg_p_i64(&p, (int64_t) r->lock.fencing_token);
	} else {
		store_pg_p_null(&p);
		store_pg_p_null(&p);
		store_pg_p_null(&p);
	}
	return store_pg_send(x->c, STORE_PG_CHG_PUT, &p, err);
}

/* store_pg_key_stmt queues a statement taking the key and, when has_v,
 * an integer. */
static store_err
store_pg_key_stmt(store_pg_wctx *x, store_pg_stmt id, const char *key,
    size_t key_len, bool has_v, int64_t v, store_error *err)
{
	store_pg_params p;

	store_pg_p_init(&p);
	store_pg_p_bytes(&p, key, key_len);
	if (has_v) {
		store_pg_p_i64(&p, v);
	}
	return store_pg_send(x->c, id, &p, err);
}

/* store_pg_put_data queues the new version r of w's key: its versions
 * row (the value, written once), the head row, and the trim of what fell
 * out of the history window (as store_put_data). */
static store_err
store_pg_put_data(store_pg_wctx *x, const store_write *w,
    const store_pg_row *row, const store_record *r, store_error *err)
{
	uint64_t keep = x->lim->history > 1 ? x->lim->history : 1;
	store_pg_params p;
	store_err rv;

	store_pg_p_init(&p);
	store_pg_p_bytes(&p, w->key, w->key_len);
	store_pg_p_i64(&p, (int64_t) r->version);
	store_pg_p_i64(&p, (int64_t) r->revision);
	store_pg_p_i64(&p, r->deleted ? 1 : 0);
	store_pg_p_i64(&p, r->created_at_ms);
	store_pg_p_i64(&p, r->updated_at_ms);
	store_pg_p_bytes(&p, r->content_type, strlen(r->content_type));
	store_pg_p_bytes(&p, r->updated_by, strlen(r->updated_by));
	if (r->deleted) {
		store_pg_p_null(&p);
	} else {
		store_pg_p_bytes(&p, w->value, w->value_len);
	}
	if ((rv = store_pg_send(x->c, STORE_PG_VER_PUT, &p, err)) !=
	    STORE_OK) {
		return rv;
	}
	store_pg_p_init(&p);
	store_pg_p_bytes(&p, w->key, w->key_len);
	store_pg_p_i64(&p, (int64_t) r->version);
	store_pg_p_i64(&p, (int64_t) r->revision);
	store_pg_p_i64(&p, r->deleted ? 1 : 0);
	store_pg_p_i64(&p, r->created_at_ms);
	store_pg_p_i64(&p, r->updated_at_ms);
	store_pg_p_bytes(&p, r->content_type, strlen(r->content_type));
	store_pg_p_bytes(&p, r->updated_by, strlen(r->updated_by));
	store_pg_p_i64(&p, (int64_t) keep);
	if ((rv = store_pg_send(x->c, STORE_PG_ROW_PUT, &p, err)) !=
	        STORE_OK ||
	    r->version <= keep) {
		return rv;
	}
	/* Kept: (version - keep, version]. */
	return store_pg_key_stmt(x,
	    row->exists && row->kept > keep ? STORE_PG_VER_TRIM_RANGE
	                                    : STORE_PG_VER_TRIM,
	    w->key, w->key_len, true, (int64_t) (r->version - keep), err);
}

/* store_pg_put_lock queues setting (token != NULL) or clearing the lock
 * columns; a key without a row gets a lock placeholder. */
static store_err
store_pg_put_lock(store_pg_wctx *x, const store_write *w,
    const store_pg_row *row, const store_token *token, int64_t expires,
    uint64_t fencing, uint64_t revision, store_error *err)
{
	store_pg_params p;

	store_pg_p_init(&p);
	store_pg_p_bytes(&p, w->key, w->key_len);
	if (row->exists) {
		if (token != NULL) {
			store_pg_p_bytes(&p, w->owner, w->owner_len);
			store_pg_p_bytes(&p, token->b, STORE_TOKEN_BYTES);
			store_pg_p_i64(&p, expires);
			store_pg_p_i64(&p, (int64_t) fencing);
		} else {
			for (int i = 0; i < 4; i++) {
				store_pg_p_null(&p);
			}
		}
		store_pg_p_i64(&p, (int64_t) revision);
		return store_pg_send(x->c, STORE_PG_ROW_SET_LOCK, &p, err);
	}
	if (DS_NEVER(token == NULL)) {
		return store_error_set(err, STORE_EIO, "",
		    "unlocking a key without a row");
	}
	store_pg_p_i64(&p, (int64_t) revision);
	store_pg_p_bytes(&p, w->owner, w->owner_len);
	store_pg_p_bytes(&p, token->b, STORE_TOKEN_BYTES);
	store_pg_p_i64(&p, expires);
	store_pg_p_i64(&p, (int64_t) fencing);
	return store_pg_send(x->c, STORE_PG_ROW_PLACEHOLDER, &p, err);
}

/* --- the rules --- */

static bool
store_pg_precond_ok(const store_write *w, const store_pg_row *row)
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

static store_err
store_pg_refuse_lease(store_pg_wctx *x, const store_write *w,
    const PGresult *res, const store_pg_row *row, store_err code,
    store_write_result *rs)
{
	store_err rv;

	if (code == STORE_ELOCKED &&
	    (rv = store_pg_record_from_row(&rs->record, res, 0, WR_ROW, row,
	         w->key, w->key_len, x->now)) != STORE_OK) {
		return store_error_set(&rs->error, rv, "", "out of memory");
	}
	return store_lease_error(&rs->error, code,
	    rs->record.locked ? rs->record.lock.owner : NULL, &row->lease);
}

/* store_pg_refuse_conflict fills rs with VERSION_CONFLICT and the current
 * record with its value (read only here: one more round trip on the rare
 * path). */
static store_err
store_pg_refuse_conflict(store_pg_wctx *x, const store_write *w,
    const PGresult *res, const store_pg_row *row, store_write_result *rs)
{
	bool live = row->exists && !row->deleted;
	PGresult *vr = NULL;
	store_pg_params p;
	store_err rv;

	if ((rv = store_pg_record_from_row(&rs->record, res, 0, WR_ROW, row,
	         w->key, w->key_len, x->now)) != STORE_OK) {
		return store_error_set(&rs->error, rv, "", "out of memory");
	}
	if (live) {
		store_pg_p_init(&p);
		store_pg_p_bytes(&p, w->key, w->key_len);
		store_pg_p_i64(&p, (int64_t) row->version);
		if ((rv = store_pg_query(x->c, STORE_PG_ROW_VALUE, &p, &vr,
		         &rs->error, "reading the current value")) !=
		    STORE_OK) {
			return rv;
		}
		if (PQntuples(vr) == 1 &&
		    (rv = store_pg_value(vr, 0, 0, &rs->record)) != STORE_OK) {
			PQclear(vr);
			return store_error_set(&rs->error, rv, "",
			    "out of memory");
		}
		PQclear(vr);
		return store_conflict_error(&rs->error, row->version);
	}
	if (row->exists && row->version > 0) {
		return store_error_set(&rs->error, STORE_ECONFLICT,
		    "precondition",
		    "version conflict: the key was deleted at version %llu",
		    (unsigned long long) row->version);
	}
	return store_error_set(&rs->error, STORE_ECONFLICT, "precondition",
	    "version conflict: the key does not exist");
}

static store_err
store_pg_write_data(store_pg_wctx *x, const store_write *w,
    const PGresult *res, store_write_result *rs)
{
	bool is_delete = w->op == STORE_OP_DELETE;
	store_record *r = &rs->record;
	store_pg_row row;
	store_err rv;

	store_pg_row_read(res, 0, WR_ROW, &row);
	if ((rv = store_lease_check_write(&row.lease, x->now, w->has_token,
	         &w->token)) != STORE_OK) {
		return store_pg_refuse_lease(x, w, res, &row, rv, rs);
	}
	if (!store_pg_precond_ok(w, &row) ||
	    (is_delete && (!row.exists || row.deleted))) {
		if (is_delete &&
		    w->precond.kind == STORE_PRECOND_UNCONDITIONAL) {
			return store_error_set(&rs->error, STORE_ENOTFOUND,
			    "key", "key not found");
		}
		return store_pg_refuse_conflict(x, w, res, &row, rs);
	}
	if ((rv = store_record_set_text(&r->key, w->key, w->key_len)) !=
	        STORE_OK ||
	    (rv = store_record_set_text(&r->content_type,
	         is_delete ? "" : w->content_type,
	         is_delete ? 0 : w->content_type_len)) != STORE_OK ||
	    (rv = store_record_set_text(&r->updated_by, w->author,
	         w->author_len)) != STORE_OK) {
		return store_error_set(&rs->error, rv, "", "out of memory");
	}
	r->key_len = w->key_len;
	store_result_borrow_value(rs, w); /* UPDATE: no copy */
	r->version = row.version + 1;
	r->revision = x->revision + 1;
	r->deleted = is_delete;
	r->created_at_ms = row.exists && (!row.deleted || is_delete)
	    ? row.created_at
	    : x->now;
	r->updated_at_ms = x->now;
	/* A write neither takes nor releases a lock. */
	if (store_lease_live(&row.lease, x->now) &&
	    (rv = store_pg_record_lock(r, res, 0,
	         WR_ROW + STORE_PG_COL_LOCK_OWNER, row.lease.expires_at_ms,
	         row.lease.fencing_token)) != STORE_OK) {
		return store_error_set(&rs->error, rv, "", "out of memory");
	}
	if ((rv = store_pg_put_data(x, w, &row, r, &rs->error)) != STORE_OK ||
	    (rv = store_pg_log_change(x,
	         is_delete ? STORE_EV_DELETE : STORE_EV_PUT, r, &rs->error)) !=
	        STORE_OK) {
		return rv;
	}
	x->revision = r->revision;
	x->dirty = true;
	return STORE_OK;
}

static store_err
store_pg_write_lock(store_pg_wctx *x, const store_write *w,
    const PGresult *res, store_write_result *rs)
{
	store_record *r = &rs->record;
	store_lease_action action;
	store_token token;
	uint64_t fencing;
	int64_t expires;
	store_pg_row row;
	store_err rv;

	store_pg_row_read(res, 0, WR_ROW, &row);
	if ((rv = store_lease_check_lock(&row.lease, x->now, w->has_token,
	         &w->token, &action)) != STORE_OK) {
		return store_pg_refuse_lease(x, w, res, &row, rv, rs);
	}
	if (action == STORE_LEASE_ACQUIRE) {
		if (ds_random_bytes(token.b, sizeof(token.b)) != DS_OK) {
			return store_error_set(&rs->error, STORE_EIO, "",
			    "getrandom failed");
		}
		fencing = x->fencing + 1;
	} else {
		token = w->token;
		fencing = row.lease.fencing_token;
	}
	expires = store_lease_expiry(x->now,
	    store_effective_ttl(x->lim, w->ttl_ms));
	row.lease.held = false; /* no old lock in the result */
	if ((rv = store_pg_record_from_row(r, res, 0, WR_ROW, &row, w->key,
	         w->key_len, x->now)) != STORE_OK ||
	    (rv = store_record_set_text(&r->lock.owner, w->owner,
	         w->owner_len)) != STORE_OK) {
		return store_error_set(&rs->error, rv, "", "out of memory");
	}
	r->locked = true;
	r->lock.expires_at_ms = expires;
	r->lock.fencing_token = fencing;
	r->revision = x->revision + 1;
	if ((rv = store_pg_put_lock(x, w, &row, &token, expires, fencing,
	         r->revision, &rs->error)) != STORE_OK ||
	    (rv = store_pg_log_change(x, STORE_EV_LOCK, r, &rs->error)) !=
	        STORE_OK) {
		return rv;
	}
	if (action == STORE_LEASE_ACQUIRE) {
		x->fencing = fencing;
	}
	x->revision = r->revision;
	x->dirty = true;
	rs->token = token;
	rs->renewed = action == STORE_LEASE_RENEW;
	return STORE_OK;
}

static store_err
store_pg_write_unlock(store_pg_wctx *x, const store_write *w,
    const PGresult *res, store_write_result *rs)
{
	store_pg_row row;
	store_err rv;

	store_pg_row_read(res, 0, WR_ROW, &row);
	if ((rv = store_lease_check_unlock(&row.lease, x->now, &w->token)) !=
	    STORE_OK) {
		return store_lease_error(&rs->error, rv, NULL, &row.lease);
	}
	row.lease.held = false; /* the result shows the state after */
	if ((rv = store_pg_record_from_row(&rs->record, res, 0, WR_ROW, &row,
	         w->key, w->key_len, x->now)) != STORE_OK) {
		return store_error_set(&rs->error, rv, "", "out of memory");
	}
	rs->record.revision = x->revision + 1;
	/* A placeholder only existed to carry the lock. */
	rv = row.version == 0
	    ? store_pg_key_stmt(x, STORE_PG_ROW_DELETE, w->key, w->key_len,
	          false, 0, &rs->error)
	    : store_pg_put_lock(x, w, &row, NULL, 0, 0, rs->record.revision,
	          &rs->error);
	if (rv != STORE_OK ||
	    (rv = store_pg_log_change(x, STORE_EV_UNLOCK, &rs->record,
	         &rs->error)) != STORE_OK) {
		return rv;
	}
	x->revision = rs->record.revision;
	x->dirty = true;
	return STORE_OK;
}

/* store_pg_read_send queues w's one read: its head row, its request
 * id's entry and the clock. */
static store_err
store_pg_read_send(store_pg_wctx *x, const store_write *w, store_error *err)
{
	store_pg_params p;

	store_pg_p_init(&p);
	store_pg_p_bytes(&p, w->key, w->key_len);
	store_pg_p_bytes(&p, w->caller, w->caller_len);
	if (w->request_id_len > 0) {
		store_pg_p_bytes(&p, w->request_id, w->request_id_len);
	} else {
		store_pg_p_null(&p); /* matches no entry */
	}
	store_pg_p_now(&p, x->c->base.s);
	return store_pg_send(x->c, STORE_PG_WRITE_READ, &p, err);
}

/* store_pg_write_apply applies one validated write given its read (res,
 * borrowed): request-id replay, the op's rules and queued mutations, the
 * request id's entry. x->now becomes the clock of that read. */
static store_err
store_pg_write_apply(store_pg_wctx *x, const store_write *w,
    const PGresult *res, store_write_result *rs)
{
	bool idempotent = w->request_id_len > 0;
	uint64_t hash = idempotent ? store_write_hash(x->lim, w) : 0;
	bool found = false;
	store_err rv;

	x->now = store_pg_i64(res, 0, WR_NOW);
	if (idempotent &&
	    ((rv = store_pg_req_lookup(x, w, hash, res, rs, &found)) !=
	            STORE_OK ||
	        found)) {
		return rv;
	}
	switch (w->op) {
	case STORE_OP_UPDATE:
	case STORE_OP_DELETE:
		rv = store_pg_write_data(x, w, res, rs);
		break;
	case STORE_OP_LOCK:
		rv = store_pg_write_lock(x, w, res, rs);
		break;
	case STORE_OP_UNLOCK:
		rv = store_pg_write_unlock(x, w, res, rs);
		break;
	default:
		rv = store_error_set(&rs->error, STORE_EINVAL, "op",
		    "op %d is unknown", (int) w->op);
		break;
	}
	if (rv == STORE_OK && idempotent) {
		rv = store_pg_req_remember(x, w, hash, rs);
	}
	if (rv == STORE_OK) {
		store_error_clear(&rs->error);
	}
	return rv;
}

/* store_pg_write_one reads and applies one write: a round trip of its
 * own (the safe mode's way). */
static store_err
store_pg_write_one(store_pg_wctx *x, const store_write *w,
    store_write_result *rs)
{
	PGresult *res = NULL;
	store_err rv;

	if ((rv = store_pg_read_send(x, w, &rs->error)) != STORE_OK ||
	    (rv = store_pg_collect(x->c, x->c->pending - 1, &res, 1,
	         &rs->error, "reading the record")) != STORE_OK) {
		return rv;
	}
	rv = store_pg_write_apply(x, w, res, rs);
	PQclear(res);
	return rv;
}

/* store_pg_same_target: do two writes touch the same key or the same
 * (caller, request_id)? Then the second must read after the first's
 * mutations. */
static bool
store_pg_same_target(const store_write *a, const store_write *b)
{
	if (a->key_len == b->key_len &&
	    memcmp(a->key, b->key, a->key_len) == 0) {
		return true;
	}
	return a->request_id_len > 0 && a->request_id_len == b->request_id_len &&
	    a->caller_len == b->caller_len &&
	    memcmp(a->request_id, b->request_id, a->request_id_len) == 0 &&
	    (a->caller_len == 0 ||
	        memcmp(a->caller, b->caller, a->caller_len) == 0);
}

/* store_pg_group_end returns the end of the group of writes from i whose
 * reads may all be sent at once: none touches what an earlier one of the
 * group does (so no read can depend on a mutation of the group: every
 * other writer waits on meta's lock), at most STORE_PG_GROUP_MAX valid
 * ones. Writes store_validate refused do not count. */
static size_t
store_pg_group_end(const store_write *ws, const store_write_result *results,
    size_t i, size_t n)
{
	size_t j = i;
	size_t valid = 0;

	for (; j < n && valid < STORE_PG_GROUP_MAX; j++) {
		if (results[j].error.code != STORE_OK) {
			continue;
		}
		for (size_t k = i; k < j; k++) {
			if (results[k].error.code == STORE_OK &&
			    store_pg_same_target(&ws[k], &ws[j])) {
				return j;
			}
		}
		valid++;
	}
	return j;
}

/* --- transactions --- */

/* store_pg_tx_open enters pipeline mode and queues BEGIN and the
 * writers' lock (NOWAIT once waits are cancelled), whose result the
 * caller collects and gives to store_pg_tx_locked. */
static store_err
store_pg_tx_open(store_pg_wctx *x, store_error *err)
{
	store_pg_conn *c = x->c;
	store_pg_params p;
	store_err rv;

	if ((rv = store_pg_pipe_begin(c, err)) != STORE_OK ||
	    (rv = store_pg_send(c, STORE_PG_BEGIN, NULL, err)) != STORE_OK) {
		return rv;
	}
	store_pg_p_init(&p);
	store_pg_p_now(&p, c->base.s);
	return store_pg_send(c,
	    atomic_load(&c->base.s->waits_cancelled) ? STORE_PG_META_LOCK_NOWAIT
	                                             : STORE_PG_META_LOCK,
	    &p, err);
}

/* store_pg_tx_locked loads the counters and the clock from the lock's
 * result (borrowed) and queues the prune of a few expired request ids,
 * which goes with every write transaction: after the lock, so that two
 * nodes never wait for each other's pruned rows. */
static store_err
store_pg_tx_locked(store_pg_wctx *x, const PGresult *res, store_error *err)
{
	const store *s = x->c->base.s;
	store_pg_params p;

	x->revision = store_pg_u64(res, 0, 0);
	x->fencing = store_pg_u64(res, 0, 1);
	x->compact = store_pg_u64(res, 0, 2);
	x->now = store_pg_i64(res, 0, 3);
	x->start = x->revision;
	x->dirty = false;
	store_pg_p_init(&p);
	store_pg_p_now(&p, s);
	store_pg_p_i64(&p, s->limits.request_id_ttl_ms);
	return store_pg_send(x->c, STORE_PG_REQ_PRUNE, &p, err);
}

/* store_pg_tx_begin: BEGIN and the writers' lock in one round trip. */
static store_err
store_pg_tx_begin(store_pg_wctx *x, store_error *err)
{
	PGresult *res = NULL;
	store_err rv;

	if ((rv = store_pg_tx_open(x, err)) != STORE_OK ||
	    (rv = store_pg_collect(x->c, x->c->pending - 1, &res, 1, err,
	         "locking the writer")) != STORE_OK) {
		return rv;
	}
	rv = store_pg_tx_locked(x, res, err);
	PQclear(res);
	return rv;
}

/* store_pg_tx_commit queues the counters, the notification and COMMIT,
 * and reads everything up to the sync; leaves pipeline mode. */
static store_err
store_pg_tx_commit(store_pg_wctx *x, store_error *err)
{
	store_pg_conn *c = x->c;
	char rev[24];
	store_pg_params p;
	store_err rv;

	if (x->dirty) {
		store_pg_p_init(&p);
		store_pg_p_i64(&p, (int64_t) x->revision);
		store_pg_p_i64(&p, (int64_t) x->fencing);
		if ((rv = store_pg_send(c, STORE_PG_META_SET, &p, err)) !=
		    STORE_OK) {
			return rv;
		}
		/* The payload is a hint (the new revision); listeners reread
		 * the log. */
		(void) snprintf(rev, sizeof(rev), "%" PRIu64, x->revision);
		store_pg_p_init(&p);
		store_pg_p_bytes(&p, rev, strlen(rev));
		if ((rv = store_pg_send(c, STORE_PG_NOTIFY, &p, err)) !=
		    STORE_OK) {
			return rv;
		}
	}
	if ((rv = store_pg_send(c, STORE_PG_COMMIT, NULL, err)) != STORE_OK ||
	    (rv = store_pg_pipe_sync(c, err, "committing")) != STORE_OK) {
		return rv;
	}
	c->pipeline = false;
	if (PQexitPipelineMode(c->pg) != 1) {
		c->broken = true; /* committed; the session restarts */
	}
	return STORE_OK;
}

/* --- batches --- */

/* store_pg_hard: a failure that is the database's, not the request's. */
static bool
store_pg_hard(store_err rv)
{
	return rv == STORE_EIO || rv == STORE_EUNAVAILABLE ||
	    rv == STORE_EBUSY;
}

/* store_pg_error_only frees what rs holds but its error. */
static void
store_pg_error_only(store_write_result *rs)
{
	store_error err = rs->error;

	store_write_result_fini(rs);
	rs->error = err;
}

static void
store_pg_fail_all(store_write_result *results, size_t n,
    const store_error *e)
{
	for (size_t i = 0; i < n; i++) {
		store_write_result_fini(&results[i]);
		results[i].error = *e;
	}
}

/* store_pg_safe_write runs write w in its own savepoint and reads its
 * results before returning, so a failure is w's alone: STORE_OK when the
 * batch can go on, or the error that lost the transaction (in *e). */
static store_err
store_pg_safe_write(store_pg_wctx *x, const store_write *w,
    store_write_result *rs, store_error *e)
{
	store_pg_conn *c = x->c;
	uint64_t rev = x->revision;
	uint64_t fen = x->fencing;
	bool dirty = x->dirty;
	store_error err;
	store_err rv;

	if ((rv = store_pg_send(c, STORE_PG_SAVEPOINT, NULL, &rs->error)) ==
	        STORE_OK &&
	    (rv = store_pg_write_one(x, w, rs)) == STORE_OK) {
		if ((rv = store_pg_send(c, STORE_PG_RELEASE, NULL,
		         &rs->error)) == STORE_OK &&
		    (rv = store_pg_drain(c, &rs->error, "writing")) ==
		        STORE_OK) {
			return STORE_OK;
		}
	} else if (rv != STORE_OK && !store_pg_hard(rv)) {
		/* Refused before anything was queued: nothing to undo
		 * beyond the savepoint itself. */
		if (rv == STORE_ENOMEM) {
			store_pg_error_only(rs);
		}
		(void) store_pg_send(c, STORE_PG_RELEASE, NULL, &err);
		return store_pg_drain(c, e, "writing");
	}
	x->revision = rev;
	x->fencing = fen;
	x->dirty = dirty;
	if (c->broken) {
		*e = rs->error;
		return STORE_EUNAVAILABLE;
	}
	store_pg_error_only(rs);
	if (rs->error.code == STORE_OK) {
		(void) store_error_set(&rs->error, STORE_EIO, "",
		    "the write failed");
	}
	/* The pipeline is aborted up to a sync; then the transaction is in
	 * the failed state and ROLLBACK TO the savepoint resumes it. */
	if (store_pg_pipe_sync(c, &err, "undoing a write") !=
	        STORE_EUNAVAILABLE &&
	    store_pg_send(c, STORE_PG_ROLLBACK_TO, NULL, &err) == STORE_OK &&
	    store_pg_send(c, STORE_PG_RELEASE, NULL, &err) == STORE_OK &&
	    store_pg_drain(c, &err, "undoing a write") == STORE_OK) {
		return STORE_OK;
	}
	*e = err;
	return err.code != STORE_OK ? err.code : STORE_EIO;
}

/* store_pg_batch_fast runs the writes without savepoints, group by
 * group: the reads of a group go in one round trip, then each write is
 * decided in order and its mutations queued. Returns STORE_OK to commit,
 * with *redo set when a statement failed (rerun in safe mode), or the
 * error that lost the batch (detail in *e). */
static store_err
store_pg_batch_fast(store_pg_wctx *x, const store_write *ws, size_t n,
    store_write_result *results, bool *redo, store_error *e)
{
	store_pg_conn *c = x->c;
	PGresult *got[1 + STORE_PG_GROUP_MAX];
	PGresult **reads = got + 1;
	bool locking = true; /* the lock's result comes with the first group */
	store_err rv = STORE_OK;

	for (size_t i = 0; i < n;) {
		size_t j = store_pg_group_end(ws, results, i, n);
		int before = c->pending - (locking ? 1 : 0);
		int k = 0;
		int used = 0;

		for (size_t m = i; m < j; m++) {
			if (results[m].error.code == STORE_OK &&
			    (rv = store_pg_read_send(x, &ws[m], e)) != STORE_OK) {
				return rv;
			}
			k += results[m].error.code == STORE_OK ? 1 : 0;
		}
		if (locking) {
			/* BEGIN, then [lock, reads...]: one round trip. */
			if ((rv = store_pg_collect(c, before, got, k + 1, e,
			         "locking the writer")) != STORE_OK) {
				k = 0; /* collect kept none */
				goto lost_or_redo;
			}
			locking = false;
			rv = store_pg_tx_locked(x, got[0], e);
			PQclear(got[0]);
			if (rv != STORE_OK) {
				goto lost_or_redo;
			}
		} else if (k > 0 &&
		    (rv = store_pg_collect(c, before, reads, k, e,
		         "reading the records")) != STORE_OK) {
			k = 0; /* collect kept none */
			goto lost_or_redo;
		}
		for (size_t m = i; m < j; m++) {
			if (results[m].error.code != STORE_OK) {
				continue; /* refused by store_validate */
			}
			rv = store_pg_write_apply(x, &ws[m], reads[used],
			    &results[m]);
			if (rv == STORE_ENOMEM) {
				/* Failed before queueing anything: alone, with
				 * the error only in its result. */
				store_pg_error_only(&results[m]);
			}
			used++;
			if (rv != STORE_OK && store_pg_hard(rv)) {
				*e = results[m].error;
				goto lost_or_redo;
			}
		}
		for (int u = 0; u < k; u++) {
			PQclear(reads[u]);
		}
		rv = STORE_OK; /* refusals were the writes' own */
		i = j;
		continue;
lost_or_redo:
		for (int u = 0; u < k; u++) {
			PQclear(reads[u]);
		}
		if (c->broken || rv == STORE_EBUSY) {
			return rv;
		}
		*redo = true; /* a statement failed: find which */
		return STORE_OK;
	}
	if (locking) {
		/* No write to read (the caller never sends such a batch). */
		PGresult *res = NULL;

		if ((rv = store_pg_collect(c, c->pending - 1, &res, 1, e,
		         "locking the writer")) != STORE_OK) {
			return rv;
		}
		rv = store_pg_tx_locked(x, res, e);
		PQclear(res);
	}
	return rv;
}

/* store_pg_batch_run runs one transaction over the validated writes.
 * safe: a savepoint per write. Returns STORE_OK once committed, or with
 * *redo set (fast mode) after a statement failed, or the error that lost
 * the batch (detail in *e). The pipeline is ended either way. */
static store_err
store_pg_batch_run(store_pg_conn *c, const store_write *ws, size_t n,
    store_write_result *results, bool safe, bool *redo, store_error *e)
{
	store *s = c->base.s;
	store_pg_wctx x;
	store_err rv;

	memset(&x, 0, sizeof(x));
	x.c = c;
	x.lim = &s->limits;
	if ((rv = safe ? store_pg_tx_begin(&x, e) : store_pg_tx_open(&x, e)) !=
	    STORE_OK) {
		goto fail;
	}
	if (safe) {
		for (size_t i = 0; i < n; i++) {
			if (results[i].error.code == STORE_OK &&
			    (rv = store_pg_safe_write(&x, &ws[i], &results[i],
			         e)) != STORE_OK) {
				goto fail;
			}
		}
	} else if ((rv = store_pg_batch_fast(&x, ws, n, results, redo, e)) !=
	        STORE_OK ||
	    *redo) {
		goto fail;
	}
	if ((rv = store_pg_tx_commit(&x, e)) != STORE_OK) {
		if (rv == STORE_EIO && !safe && !c->broken) {
			/* A queued statement failed: find which. */
			*redo = true;
			rv = STORE_OK;
		}
		goto fail;
	}
	c->own_revs += x.revision - x.start;
	return STORE_OK;
fail:
	store_pg_pipe_abort(c);
	if (c->broken && rv != STORE_OK) {
		rv = STORE_EUNAVAILABLE;
		if (e->code != STORE_EUNAVAILABLE) {
			(void) store_pg_unavailable(c->pg, e, "writing", NULL);
		}
	}
	return rv;
}

store_err
store_pg_apply_batch(store_conn *bc, const store_write *ws, size_t n,
    store_write_result *results)
{
	store_pg_conn *c = (store_pg_conn *) bc;
	store_error e;
	store_err rv;
	bool redo = false;
	size_t nvalid = 0;

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
	if ((rv = store_pg_ready(c, &e)) != STORE_OK) {
		store_pg_fail_all(results, n, &e);
		return rv;
	}
	rv = store_pg_batch_run(c, ws, n, results, false, &redo, &e);
	if (rv == STORE_OK && redo) {
		for (size_t i = 0; i < n; i++) {
			store_write_result_fini(&results[i]);
			memset(&results[i], 0, sizeof(results[i]));
			(void) store_write_check(&bc->s->limits, &ws[i],
			    &results[i].error);
		}
		memset(&e, 0, sizeof(e));
		rv = store_pg_batch_run(c, ws, n, results, true, &redo, &e);
	}
	if (rv != STORE_OK) {
		if (e.code == STORE_OK) {
			(void) store_error_set(&e, rv, "", "%s",
			    store_strerror(rv));
		}
		store_pg_fail_all(results, n, &e);
	}
	return rv;
}

/* --- sweeping expired leases --- */

/* SWEEP_FIND's columns: the key, then the head row. */
enum { SW_KEY = 0, SW_ROW = 1 };

static store_err
store_pg_sweep_tx(store_pg_wctx *x, size_t max, size_t *n,
    int64_t *next_expiry_ms, store_error *err)
{
	PGresult *res = NULL;
	PGresult *nr = NULL;
	store_record r;
	store_pg_params p;
	int nrows;
	store_err rv;

	memset(&r, 0, sizeof(r));
	store_pg_p_init(&p);
	store_pg_p_i64(&p, x->now);
	store_pg_p_i64(&p, (int64_t) max);
	if ((rv = store_pg_query(x->c, STORE_PG_SWEEP_FIND, &p, &res, err,
	         "finding expired leases")) != STORE_OK) {
		return rv;
	}
	nrows = PQntuples(res);
	for (int i = 0; i < nrows; i++) {
		store_pg_row row;

		store_pg_row_read(res, i, SW_ROW, &row);
		row.lease.held = false; /* the EXPIRE event shows no lock */
		memset(&r, 0, sizeof(r));
		if ((rv = store_pg_record_from_row(&r, res, i, SW_ROW, &row,
		         PQgetvalue(res, i, SW_KEY),
		         (size_t) PQgetlength(res, i, SW_KEY), x->now)) !=
		    STORE_OK) {
			(void) store_error_set(err, rv, "", "out of memory");
			goto out;
		}
		r.revision = x->revision + 1;
		if ((rv = row.version == 0
		             ? store_pg_key_stmt(x, STORE_PG_ROW_DELETE, r.key,
		                   r.key_len, false, 0, err)
		             : store_pg_key_stmt(x, STORE_PG_ROW_SWEEP, r.key,
		                   r.key_len, true, (int64_t) r.revision,
		                   err)) != STORE_OK ||
		    (rv = store_pg_log_change(x, STORE_EV_EXPIRE, &r, err)) !=
		        STORE_OK) {
			goto out;
		}
		x->revision = r.revision;
		x->dirty = true;
		store_record_fini(&r);
	}
	if ((rv = store_pg_query(x->c, STORE_PG_SWEEP_NEXT, NULL, &nr, err,
	         "reading the next lease expiry")) != STORE_OK) {
		goto out;
	}
	*next_expiry_ms = store_pg_null(nr, 0, 0) ? INT64_MAX
	                                          : store_pg_i64(nr, 0, 0);
	*n = (size_t) nrows;
out:
	store_record_fini(&r);
	PQclear(nr);
	PQclear(res);
	return rv;
}

store_err
store_pg_sweep_expired(store_conn *bc, size_t max, size_t *n,
    int64_t *next_expiry_ms, store_error *err)
{
	store_pg_conn *c = (store_pg_conn *) bc;
	size_t count = 0;
	int64_t next = INT64_MAX;
	store_pg_wctx x;
	store_err rv;

	memset(&x, 0, sizeof(x));
	x.c = c;
	x.lim = &bc->s->limits;
	if ((rv = store_pg_ready(c, err)) != STORE_OK) {
		return rv;
	}
	if ((rv = store_pg_tx_begin(&x, err)) != STORE_OK) {
		goto fail;
	}
	if ((rv = store_pg_sweep_tx(&x, max, &count, &next, err)) !=
	        STORE_OK ||
	    (rv = store_pg_tx_commit(&x, err)) != STORE_OK) {
		goto fail;
	}
	c->own_revs += x.revision - x.start;
	*n = count;
	*next_expiry_ms = next;
	store_error_clear(err);
	return STORE_OK;
fail:
	store_pg_pipe_abort(c);
	return rv;
}

/* --- compaction --- */

static store_err
store_pg_compact_tx(store_pg_wctx *x, uint64_t compact,
    uint64_t retain_revisions, int64_t retain_ms, size_t max, size_t *n,
    store_error *err)
{
	PGresult *res = NULL;
	store_pg_params p;
	uint64_t rev_cut;
	uint64_t last = 0;
	int64_t time_cut;
	size_t count = 0;
	store_err rv;

	*n = 0;
	/* The newest retain_revisions are (revision - retain, revision]. */
	if (x->revision <= retain_revisions) {
		return STORE_OK;
	}
	rev_cut = x->revision - retain_revisions;
	/* Logged more than retain_ms ago: at < now - retain_ms. */
	time_cut = x->now >= INT64_MIN + retain_ms ? x->now - retain_ms
	                                           : INT64_MIN;
	store_pg_p_init(&p);
	store_pg_p_i64(&p, (int64_t) compact);
	store_pg_p_i64(&p, (int64_t) max);
	if ((rv = store_pg_query(x->c, STORE_PG_CHG_COMPACT_SCAN, &p, &res,
	         err, "scanning the change log")) != STORE_OK) {
		return rv;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		uint64_t rev = store_pg_u64(res, i, 0);

		if (rev > rev_cut || store_pg_i64(res, i, 1) >= time_cut) {
			break; /* kept, and so is everything after it */
		}
		last = rev;
		count++;
	}
	PQclear(res);
	if (count > 0) {
		store_pg_p_init(&p);
		store_pg_p_i64(&p, (int64_t) last);
		if ((rv = store_pg_send(x->c, STORE_PG_CHG_COMPACT_DEL, &p,
		         err)) != STORE_OK ||
		    (rv = store_pg_send(x->c, STORE_PG_META_COMPACT_SET, &p,
		         err)) != STORE_OK) {
			return rv;
		}
	}
	*n = count;
	return STORE_OK;
}

store_err
store_pg_compact_changes(store_conn *bc, uint64_t retain_revisions,
    int64_t retain_ms, size_t max, size_t *n, store_error *err)
{
	store_pg_conn *c = (store_pg_conn *) bc;
	size_t count = 0;
	store_pg_wctx x;
	store_err rv;

	memset(&x, 0, sizeof(x));
	x.c = c;
	x.lim = &bc->s->limits;
	if ((rv = store_pg_ready(c, err)) != STORE_OK) {
		return rv;
	}
	if ((rv = store_pg_tx_begin(&x, err)) != STORE_OK) {
		goto fail;
	}
	if ((rv = store_pg_compact_tx(&x, x.compact, retain_revisions,
	         retain_ms, max, &count, err)) != STORE_OK ||
	    (rv = store_pg_tx_commit(&x, err)) != STORE_OK) {
		goto fail;
	}
	*n = count;
	store_error_clear(err);
	return STORE_OK;
fail:
	store_pg_pipe_abort(c);
	return rv;
}
