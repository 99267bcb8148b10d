/*
 * store_sqlite_changes.c - the SQLite backend's change log (DESIGN §9):
 * reading it, logging lease expiries (the sweep) and compacting it. The
 * writes append their own entries (store_log_change, in
 * store_sqlite_write.c); the layout is store_schema.c's v5.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "ds_alloc.h"
#include "store_sqlite_int.h"

/* --- reading --- */

/* store_chg_value reads the value of ev's (key, version) from versions,
 * or marks it omitted when the history no longer holds it. */
static store_err
store_chg_value(store_sqlite_conn *c, store_event *ev, store_error *err)
{
	sqlite3_stmt *vs = c->st[STORE_STMT_ROW_VALUE];
	store_record *r = &ev->record;
	store_err rv = STORE_OK;
	int rc = SQLITE_OK;

	if (r->deleted || r->version == 0) {
		return STORE_OK; /* no value to send or to omit */
	}
	store_bind_blob(vs, 1, r->key, r->key_len, &rc);
	store_bind_i64(vs, 2, (int64_t) r->version, &rc);
	if (rc == SQLITE_OK) {
		rc = store_sqlite_step(vs);
	}
	if (rc == SQLITE_ROW) {
		if ((rv = store_col_value(vs, 0, r)) != STORE_OK) {
			(void) store_error_set(err, rv, "", "out of memory");
		}
	} else if (rc == SQLITE_DONE) {
		ev->value_omitted = true;
	} else {
		rv = store_sqlite_err(c->db, rc, err, "reading a value");
	}
	store_sqlite_done(vs);
	return rv;
}

/* store_chg_row fills ev from the CHG_KEY / CHG_RANGE row st is on. */
static store_err
store_chg_row(sqlite3_stmt *st, store_event *ev)
{
	store_record *r = &ev->record;
	const void *key = sqlite3_column_blob(st, STORE_CHG_KEY);
	size_t key_len = (size_t) sqlite3_column_bytes(st, STORE_CHG_KEY);
	store_err rv;

	if ((rv = store_record_set_text(&r->key, key, key_len)) != STORE_OK ||
	    (rv = store_col_text(st, STORE_CHG_CONTENT_TYPE,
	         &r->content_type)) != STORE_OK ||
	    (rv = store_col_text(st, STORE_CHG_UPDATED_BY, &r->updated_by)) !=
	        STORE_OK) {
		return rv;
	}
	ev->type = (store_event_type) sqlite3_column_int(st, STORE_CHG_TYPE);
	ev->revision = store_col_u64(st, STORE_CHG_REVISION);
	r->key_len = key_len;
	r->revision = ev->revision;
	r->version = store_col_u64(st, STORE_CHG_VERSION);
	r->deleted = sqlite3_column_int(st, STORE_CHG_DELETED) != 0;
	r->created_at_ms = sqlite3_column_int64(st, STORE_CHG_CREATED_AT);
	r->updated_at_ms = sqlite3_column_int64(st, STORE_CHG_UPDATED_AT);
	if (sqlite3_column_type(st, STORE_CHG_LOCK_OWNER) != SQLITE_NULL) {
		return store_record_lock(r, st, STORE_CHG_LOCK_OWNER,
		    sqlite3_column_int64(st, STORE_CHG_LOCK_EXPIRES_AT),
		    store_col_u64(st, STORE_CHG_LOCK_FENCING));
	}
	return STORE_OK;
}

/* store_chg_read_tx reads the page inside the read transaction. */
static store_err
store_chg_read_tx(store_sqlite_conn *c, const store_changes_req *req,
    store_changes_page *page, store_error *err)
{
	sqlite3_stmt *ms = c->st[STORE_STMT_META_LOG_GET];
	uint8_t upper[STORE_MAX_KEY_BYTES_HARD + 1];
	sqlite3_stmt *st;
	size_t cap = 0;
	size_t bytes = 0;  /* of values read */
	store_err rv = STORE_OK;
	int rc;

	if ((rc = store_sqlite_step(ms)) != SQLITE_ROW) {
		rv = store_sqlite_err(c->db, rc, err, "reading the revision");
		store_sqlite_done(ms);
		return rv;
	}
	page->revision = store_col_u64(ms, 0);
	page->compact_revision = store_col_u64(ms, 1);
	store_sqlite_done(ms);
	if (req->after < page->compact_revision) {
		return store_error_set(err, STORE_EREV_COMPACTED,
		    "after_revision",
		    "after_revision %llu was compacted: the change log serves "
		    "cursors from compact_revision %llu on",
		    (unsigned long long) req->after,
		    (unsigned long long) page->compact_revision);
	}

	rc = SQLITE_OK;
	if (!req->prefix) {
		st = c->st[STORE_STMT_CHG_KEY];
		store_bind_blob(st, 1, req->key, req->key_len, &rc);
		store_bind_i64(st, 2, (int64_t) req->after, &rc);
		store_bind_i64(st, 3, (int64_t) req->limit + 1, &rc);
	} else {
		/* As List: no UTF-8 key contains 0xff, so prefix||ff bounds
		 * every key that starts with prefix. */
		if (req->key_len > 0) {
			memcpy(upper, req->key, req->key_len);
		}
		upper[req->key_len] = 0xff;
		st = c->st[STORE_STMT_CHG_RANGE];
		store_bind_i64(st, 1, (int64_t) req->after, &rc);
		store_bind_blob(st, 2, req->key, req->key_len, &rc);
		store_bind_blob(st, 3, upper, req->key_len + 1, &rc);
		store_bind_i64(st, 4, (int64_t) req->limit + 1, &rc);
	}
	/* One row more than the limit tells whether more follow. */
	while (rc == SQLITE_OK) {
		store_event *ev;

		if ((rc = store_sqlite_step(st)) != SQLITE_ROW) {
			break;
		}
		rc = SQLITE_OK;
		if (page->n == req->limit ||
		    (req->max_value_bytes > 0 && bytes >= req->max_value_bytes)) {
			page->more = true;
			break;
		}
		if (page->n == cap) {
			size_t ncap = cap == 0 ? 16 : 2 * cap;
			store_event *ne;

			if (ncap > req->limit) {
				ncap = req->limit;
			}
			if ((ne = ds_realloc(page->events,
			         ncap * sizeof(*ne))) == NULL) {
				rv = STORE_ENOMEM;
				break;
			}
			memset(ne + cap, 0, (ncap - cap) * sizeof(*ne));
			page->events = ne;
			cap = ncap;
		}
		ev = &page->events[page->n++]; /* counted: freed if partial */
		if ((rv = store_chg_row(st, ev)) != STORE_OK) {
			break;
		}
		if (req->with_values &&
		    (rv = store_chg_value(c, ev, err)) != STORE_OK) {
			goto out; /* err is filled */
		}
		bytes += ev->record.value_len;
	}
	if (rv == STORE_ENOMEM) {
		(void) store_error_set(err, rv, "", "out of memory");
	} else if (rv == STORE_OK && rc != SQLITE_OK && rc != SQLITE_DONE) {
		rv = store_sqlite_err(c->db, rc, err,
		    "reading the change log");
	}
out:
	store_sqlite_done(st);
	return rv;
}

store_err
store_sqlite_changes_read(store_conn *bc, const store_changes_req *req,
    store_changes_page *out, store_error *err)
{
	store_sqlite_conn *c = (store_sqlite_conn *) bc;
	store_changes_page page;
	store_err rv;
	int rc;

	memset(&page, 0, sizeof(page));
	store_sqlite_read_lock(c);
	if ((rc = store_sqlite_run(c, STORE_STMT_BEGIN_READ)) != SQLITE_OK) {
		rv = store_sqlite_err(c->db, rc, err, "beginning a read");
		store_sqlite_read_unlock(c);
		return rv;
	}
	rv = store_chg_read_tx(c, req, &page, err);
	if ((rc = store_sqlite_run(c, STORE_STMT_COMMIT)) != SQLITE_OK) {
		/* A read-only transaction: ending it cannot lose data. */
		(void) store_sqlite_run(c, STORE_STMT_ROLLBACK);
	}
	store_sqlite_read_unlock(c);
	if (rv == STORE_EREV_COMPACTED) {
		/* The caller tells the client where the log starts. */
		out->revision = page.revision;
		out->compact_revision = page.compact_revision;
	}
	if (rv != STORE_OK) {
		store_changes_page_fini(&page);
		return rv;
	}
	store_error_clear(err);
	*out = page;
	return STORE_OK;
}

/* --- sweeping expired leases --- */

/* store_sweep_one: an expired lease found by SWEEP_FIND, as its EXPIRE
 * event's record (no lock: the state after). */
typedef struct store_sweep_one {
	store_record rec;
	bool placeholder; /* version 0: the row existed only for the lock */
} store_sweep_one;

/* store_sweep_collect reads up to max expired leases into *out (owned
 * array, *n entries). The rows change afterwards: SQLite does not define
 * what a statement sees of rows changed while it steps. */
static store_err
store_sweep_collect(store_wctx *x, size_t max, store_sweep_one **out,
    size_t *n, store_error *err)
{
	sqlite3_stmt *st = x->c->st[STORE_STMT_SWEEP_FIND];
	store_sweep_one *v = NULL;
	size_t cap = 0;
	store_err rv = STORE_OK;
	int rc = SQLITE_OK;

	*n = 0;
	store_bind_i64(st, 1, x->now, &rc);
	store_bind_i64(st, 2, (int64_t) max, &rc);
	while (rc == SQLITE_OK) {
		enum { K = STORE_COL_VALUE }; /* the key, as in LIST */
		store_record *r;

		if ((rc = store_sqlite_step(st)) != SQLITE_ROW) {
			break;
		}
		rc = SQLITE_OK;
		if (*n == cap) {
			size_t ncap = cap == 0 ? 16 : 2 * cap;
			store_sweep_one *nv;

			if ((nv = ds_realloc(v, ncap * sizeof(*nv))) == NULL) {
				rv = STORE_ENOMEM;
				break;
			}
			memset(nv + cap, 0, (ncap - cap) * sizeof(*nv));
			v = nv;
			cap = ncap;
		}
		r = &v[*n].rec;
		(*n)++; /* counted: freed if partial */
		if ((rv = store_record_set_text(&r->key,
		         sqlite3_column_blob(st, K),
		         (size_t) sqlite3_column_bytes(st, K))) != STORE_OK ||
		    (rv = store_col_text(st, STORE_COL_CONTENT_TYPE,
		         &r->content_type)) != STORE_OK ||
		    (rv = store_col_text(st, STORE_COL_UPDATED_BY,
		         &r->updated_by)) != STORE_OK) {
			break;
		}
		r->key_len = (size_t) sqlite3_column_bytes(st, K);
		r->version = store_col_u64(st, STORE_COL_VERSION);
		/* A lock placeholder is "never existed", not a tombstone. */
		r->deleted = sqlite3_column_int(st, STORE_COL_DELETED) != 0 &&
		    r->version > 0;
		r->created_at_ms = sqlite3_column_int64(st, STORE_COL_CREATED_AT);
		r->updated_at_ms = sqlite3_column_int64(st, STORE_COL_UPDATED_AT);
		v[*n - 1].placeholder = r->version == 0;
	}
	store_sqlite_done(st);
	if (rv == STORE_ENOMEM) {
		(void) store_error_set(err, rv, "", "out of memory");
	} else if (rv == STORE_OK && rc != SQLITE_OK && rc != SQLITE_DONE) {
		rv = store_sqlite_err(x->c->db, rc, err,
		    "finding expired leases");
	}
	*out = v;
	return rv;
}

/* store_sweep_apply clears one lease (or removes its placeholder row)
 * and logs its EXPIRE with the next revision. */
static store_err
store_sweep_apply(store_wctx *x, store_sweep_one *one, store_error *err)
{
	store_record *r = &one->rec;
	sqlite3_stmt *st = x->c->st[one->placeholder ? STORE_STMT_ROW_DELETE
	                                             : STORE_STMT_ROW_SWEEP];
	int rc = SQLITE_OK;

	r->revision = x->cnt.revision + 1;
	store_bind_blob(st, 1, r->key, r->key_len, &rc);
	if (!one->placeholder) {
		store_bind_i64(st, 2, (int64_t) r->revision, &rc);
	}
	if (rc == SQLITE_OK) {
		rc = store_sqlite_step(st);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	store_sqlite_done(st);
	if (rc == SQLITE_OK) {
		rc = store_log_change(x, STORE_EV_EXPIRE, r);
	}
	if (rc != SQLITE_OK) {
		return store_sqlite_err(x->c->db, rc, err,
		    "logging a lease's expiry");
	}
	x->cnt.revision = r->revision;
	x->cnt.dirty = true;
	return STORE_OK;
}

/* store_sweep_next reads the earliest expiry of a lease not swept yet,
 * INT64_MAX when there is none. */
static store_err
store_sweep_next(store_wctx *x, int64_t *next, store_error *err)
{
	sqlite3_stmt *st = x->c->st[STORE_STMT_SWEEP_NEXT];
	store_err rv = STORE_OK;
	int rc = store_sqlite_step(st);

	if (rc != SQLITE_ROW) {
		rv = store_sqlite_err(x->c->db, rc, err,
		    "reading the next lease expiry");
	} else if (sqlite3_column_type(st, 0) == SQLITE_NULL) {
		*next = INT64_MAX;
	} else {
		*next = sqlite3_column_int64(st, 0);
	}
	store_sqlite_done(st);
	return rv;
}

store_err
store_sqlite_sweep_expired(store_conn *bc, size_t max, size_t *n,
    int64_t *next_expiry_ms, store_error *err)
{
	store_sqlite_conn *c = (store_sqlite_conn *) bc;
	store_sqlite *sq = bc->s->be_data;
	store_sweep_one *found = NULL;
	size_t nfound = 0;
	int64_t next = INT64_MAX;
	store_wctx x;
	store_err rv;

	memset(&x, 0, sizeof(x));
	x.c = c;
	x.lim = &bc->s->limits;
	x.now = ds_clock_now_ms(bc->s->clock);
	(void) pthread_mutex_lock(&sq->write_mu); /* cannot fail: not held */
	if ((rv = store_batch_begin(&x, err)) != STORE_OK ||
	    (rv = store_sweep_collect(&x, max, &found, &nfound, err)) !=
	        STORE_OK) {
		goto out;
	}
	for (size_t i = 0; i < nfound; i++) {
		if ((rv = store_sweep_apply(&x, &found[i], err)) != STORE_OK) {
			goto out;
		}
	}
	if ((rv = store_sweep_next(&x, &next, err)) != STORE_OK ||
	    (rv = store_batch_finish(&x, err)) != STORE_OK) {
		goto out;
	}
	*n = nfound;
	*next_expiry_ms = next;
	store_error_clear(err);
out:
	if (rv != STORE_OK && !sqlite3_get_autocommit(c->db)) {
		/* If even ROLLBACK fails the next write retries it first. */
		(void) store_sqlite_run(c, STORE_STMT_ROLLBACK);
	}
	(void) pthread_mutex_unlock(&sq->write_mu); /* held */
	for (size_t i = 0; i < nfound; i++) {
		store_record_fini(&found[i].rec);
	}
	ds_free(found);
	return rv;
}

/* --- compaction --- */

/* store_compact_tx finds, inside the write transaction, the newest
 * revision both rules let go (scanning from the oldest entry, at most
 * max), deletes up to it and raises compact_revision. */
static store_err
store_compact_tx(store_wctx *x, uint64_t retain_revisions, int64_t retain_ms,
    size_t max, size_t *n, store_error *err)
{
	sqlite3_stmt *ms = x->c->st[STORE_STMT_META_LOG_GET];
	sqlite3_stmt *st;
	uint64_t compact;
	uint64_t rev_cut;
	uint64_t last = 0;
	int64_t time_cut;
	size_t count = 0;
	int rc;

	if ((rc = store_sqlite_step(ms)) != SQLITE_ROW) {
		store_sqlite_done(ms);
		return store_sqlite_err(x->c->db, rc, err,
		    "reading compact_revision");
	}
	compact = store_col_u64(ms, 1);
	store_sqlite_done(ms);
	/* The newest retain_revisions are (revision - retain, revision]. */
	if (x->cnt.revision <= retain_revisions) {
		*n = 0;
		return STORE_OK;
	}
	rev_cut = x->cnt.revision - retain_revisions;
	/* Logged more than retain_ms ago: at < now - retain_ms. */
	time_cut = x->now >= INT64_MIN + retain_ms ? x->now - retain_ms
	                                           : INT64_MIN;

	st = x->c->st[STORE_STMT_CHG_COMPACT_SCAN];
	rc = SQLITE_OK;
	store_bind_i64(st, 1, (int64_t) compact, &rc);
	store_bind_i64(st, 2, (int64_t) max, &rc);
	while (rc == SQLITE_OK) {
		uint64_t rev;

		if ((rc = store_sqlite_step(st)) != SQLITE_ROW) {
			break;
		}
		rc = SQLITE_OK;
		rev = store_col_u64(st, 0);
		if (rev > rev_cut || sqlite3_column_int64(st, 1) >= time_cut) {
			break; /* kept, and so is everything after it */
		}
		last = rev;
		count++;
	}
	store_sqlite_done(st);
	if (rc != SQLITE_OK && rc != SQLITE_DONE) {
		return store_sqlite_err(x->c->db, rc, err,
		    "scanning the change log");
	}
	if (count > 0) {
		rc = SQLITE_OK;
		st = x->c->st[STORE_STMT_CHG_COMPACT_DEL];
		store_bind_i64(st, 1, (int64_t) last, &rc);
		if (rc == SQLITE_OK) {
			rc = store_sqlite_step(st);
			rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
		}
		store_sqlite_done(st);
		if (rc == SQLITE_OK) {
			st = x->c->st[STORE_STMT_META_COMPACT_SET];
			store_bind_i64(st, 1, (int64_t) last, &rc);
			if (rc == SQLITE_OK) {
				rc = store_sqlite_step(st);
				rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
			}
			store_sqlite_done(st);
		}
		if (rc != SQLITE_OK) {
			return store_sqlite_err(x->c->db, rc, err,
			    "compacting the change log");
		}
	}
	*n = count;
	return STORE_OK;
}

store_err
store_sqlite_compact_changes(store_conn *bc, uint64_t retain_revisions,
    int64_t retain_ms, size_t max, size_t *n, store_error *err)
{
	store_sqlite_conn *c = (store_sqlite_conn *) bc;
	store_sqlite *sq = bc->s->be_data;
	size_t count = 0;
	store_wctx x;
	store_err rv;

	memset(&x, 0, sizeof(x));
	x.c = c;
	x.lim = &bc->s->limits;
	x.now = ds_clock_now_ms(bc->s->clock);
	(void) pthread_mutex_lock(&sq->write_mu); /* cannot fail: not held */
	if ((rv = store_batch_begin(&x, err)) != STORE_OK ||
	    (rv = store_compact_tx(&x, retain_revisions, retain_ms, max,
	         &count, err)) != STORE_OK ||
	    (rv = store_batch_finish(&x, err)) != STORE_OK) {
		goto out;
	}
	*n = count;
	store_error_clear(err);
out:
	if (rv != STORE_OK && !sqlite3_get_autocommit(c->db)) {
		(void) store_sqlite_run(c, STORE_STMT_ROLLBACK);
	}
	(void) pthread_mutex_unlock(&sq->write_mu); /* held */
	return rv;
}
