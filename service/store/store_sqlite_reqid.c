/*
 * store_sqlite_reqid.c - the SQLite backend's request ids: lookup and
 * replay, remembering a result, rotating the generation tables.
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
store_err
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
	 * only after its earlier entry expired. So the first row that has not
	 * expired is the one. */
	st = x->c->st[STORE_STMT_REQ_GET];
	rc = SQLITE_OK;
	store_bind_blob(st, 1, w->caller != NULL ? w->caller : "",
	    w->caller_len, &rc);
	store_bind_blob(st, 2, w->request_id, w->request_id_len, &rc);
	while (rc == SQLITE_OK) {
		rc = store_sqlite_step(st);
		if (rc == SQLITE_ROW &&
		    store_req_expired(sqlite3_column_int64(st, 1), x->now,
		        x->lim->request_id_ttl_ms)) {
			rc = SQLITE_OK;
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

/* store_req_rotate makes x->cnt.req_gen the generation of x->now, emptying
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
	if (g == x->cnt.req_gen) {
		return SQLITE_OK;
	}
	/* A clock that stepped back keeps writing into the current table. */
	if (x->cnt.req_gen >= 0 && g < x->cnt.req_gen) {
		*gen = x->cnt.req_gen;
		return SQLITE_OK;
	}
	if (x->cnt.req_gen < 0 || g != x->cnt.req_gen + 1 || (g & 1) == 0) {
		rc = store_sqlite_run(x->c, STORE_STMT_REQ_CLEAR0);
	}
	if (rc == SQLITE_OK &&
	    (x->cnt.req_gen < 0 || g != x->cnt.req_gen + 1 || (g & 1) == 1)) {
		rc = store_sqlite_run(x->c, STORE_STMT_REQ_CLEAR1);
	}
	if (rc == SQLITE_OK) {
		x->cnt.req_gen = g;
		x->cnt.dirty = true;
	}
	return rc;
}

/* store_req_remember stores the result of a successful write under its
 * request id, in the write's transaction. */
store_err
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
