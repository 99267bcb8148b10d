/*
 * store_sqlite_write.c - the SQLite backend's write rules: Update and
 * Delete (data), Lock and Unlock, each checked against the stored row.
 * Every change takes the next revision and appends its change-log row
 * (store_log_change) in the write's transaction; a refusal returns before
 * either, and a replay never gets here (store_write_one).
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

/* store_log_change appends the change-log row of r's change (r's
 * revision, the record's metadata after the change, its lock when
 * r->locked): the one statement DESIGN §9 adds to a write. */
int
store_log_change(store_wctx *x, store_event_type type, const store_record *r)
{
	sqlite3_stmt *st = x->c->st[STORE_STMT_CHG_PUT];
	int rc = SQLITE_OK;

	store_bind_i64(st, 1, (int64_t) r->revision, &rc);
	store_bind_blob(st, 2, r->key, r->key_len, &rc);
	store_bind_i64(st, 3, (int64_t) type, &rc);
	store_bind_i64(st, 4, x->now, &rc);
	store_bind_i64(st, 5, (int64_t) r->version, &rc);
	store_bind_i64(st, 6, r->deleted ? 1 : 0, &rc);
	store_bind_i64(st, 7, r->created_at_ms, &rc);
	store_bind_i64(st, 8, r->updated_at_ms, &rc);
	store_bind_text(st, 9, r->content_type, strlen(r->content_type), &rc);
	store_bind_text(st, 10, r->updated_by, strlen(r->updated_by), &rc);
	if (r->locked) {
		store_bind_text(st, 11, r->lock.owner, strlen(r->lock.owner),
		    &rc);
		store_bind_i64(st, 12, r->lock.expires_at_ms, &rc);
		store_bind_i64(st, 13, (int64_t) r->lock.fencing_token, &rc);
	} else {
		for (int i = 11; i <= 13; i++) {
			store_bind_null(st, i, &rc);
		}
	}
	if (rc == SQLITE_OK) {
		rc = store_sqlite_step(st);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	store_sqlite_done(st);
	return rc;
}

/* store_put_data writes the new version r of w's key: its row in
 * versions (the value, written once), then the head row (UPDATE keeping
 * the lock columns, or INSERT without a lock), then the point delete of
 * the version that fell out of the history window. A head whose versions
 * were trimmed to a larger window (the history setting shrank since)
 * trims the whole range once instead. */
static int
store_put_data(store_wctx *x, const store_write *w, const store_row *row,
    const store_record *r)
{
	uint64_t keep = x->lim->history > 1 ? x->lim->history : 1;
	sqlite3_stmt *st = x->c->st[STORE_STMT_VER_PUT];
	int rc = SQLITE_OK;

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
	if (rc == SQLITE_OK) {
		rc = store_sqlite_step(st);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	store_sqlite_done(st);
	if (rc != SQLITE_OK) {
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
	store_bind_i64(st, 9, (int64_t) keep, &rc);
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
	if (rc != SQLITE_OK || r->version <= keep) {
		return rc;
	}
	/* Kept: (version - keep, version]. */
	return store_exec_key(x->c,
	    row->exists && row->kept > keep ? STORE_STMT_VER_TRIM_RANGE
	                                    : STORE_STMT_VER_TRIM,
	    w, true, (int64_t) (r->version - keep));
}

/* store_put_lock sets (owner != NULL) or clears the lock columns; a key
 * without a row gets a lock placeholder (version 0, not live). */
static int
store_put_lock(store_wctx *x, const store_write *w, const store_row *row,
    const store_token *token, int64_t expires, uint64_t fencing,
    uint64_t revision)
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
		store_bind_i64(st, 6, (int64_t) revision, &rc);
	} else {
		if (DS_NEVER(!set)) {
			return SQLITE_INTERNAL; /* unlock needs a live lease */
		}
		st = x->c->st[STORE_STMT_ROW_INSERT];
		store_bind_blob(st, 1, w->key, w->key_len, &rc);
		store_bind_i64(st, 2, 0, &rc);  /* version: never existed */
		store_bind_i64(st, 3, (int64_t) revision, &rc);
		store_bind_i64(st, 4, 1, &rc);  /* not live */
		store_bind_i64(st, 5, 0, &rc);  /* created_at */
		store_bind_i64(st, 6, 0, &rc);  /* updated_at */
		store_bind_text(st, 7, "", 0, &rc);
		store_bind_text(st, 8, "", 0, &rc);
		store_bind_i64(st, 9, 0, &rc);  /* kept: no versions yet */
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
		store_bind_i64(vs, 2, (int64_t) row->version, &rc);
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
		/* The writer's head cache answers with the same words. */
		return store_conflict_error(&res->error, row->version);
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
	r->revision = x->cnt.revision + 1;
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
	if ((rc = store_put_data(x, w, &row, r)) != SQLITE_OK ||
	    (rc = store_log_change(x, is_delete ? STORE_EV_DELETE : STORE_EV_PUT,
	         r)) != SQLITE_OK) {
		rv = store_sqlite_err(x->c->db, rc, &res->error,
		    is_delete ? "deleting" : "updating");
		goto out;
	}
	x->cnt.revision = r->revision;
	x->cnt.dirty = true;
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
		fencing = x->cnt.fencing + 1;
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
	r->revision = x->cnt.revision + 1;
	store_sqlite_done(st);
	if ((rc = store_put_lock(x, w, &row, &token, expires, fencing,
	         r->revision)) != SQLITE_OK ||
	    (rc = store_log_change(x, STORE_EV_LOCK, r)) != SQLITE_OK) {
		rv = store_sqlite_err(x->c->db, rc, &res->error, "locking");
		goto out;
	}
	if (action == STORE_LEASE_ACQUIRE) {
		x->cnt.fencing = fencing;
	}
	x->cnt.revision = r->revision;
	x->cnt.dirty = true;
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
	res->record.revision = x->cnt.revision + 1;
	store_sqlite_done(st);
	/* A placeholder only existed to carry the lock. */
	rc = row.version == 0
	    ? store_exec_key(x->c, STORE_STMT_ROW_DELETE, w, false, 0)
	    : store_put_lock(x, w, &row, NULL, 0, 0, res->record.revision);
	if (rc == SQLITE_OK) {
		rc = store_log_change(x, STORE_EV_UNLOCK, &res->record);
	}
	if (rc != SQLITE_OK) {
		rv = store_sqlite_err(x->c->db, rc, &res->error, "unlocking");
		goto out;
	}
	x->cnt.revision = res->record.revision;
	x->cnt.dirty = true;
out:
	store_sqlite_done(st);
	return rv;
}

/* store_write_one applies a validated write inside the current savepoint:
 * request-id replay, then the op's own checks and mutations, then
 * remembering the request id. On failure nothing it did may survive:
 * the caller rolls the savepoint back. */
store_err
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
