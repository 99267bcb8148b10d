/*
 * store_sqlite_read.c - the SQLite backend's reads: Get (current and
 * historical), List, the revision and the integrity check.
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

/* --- reads --- */

/* ":memory:" has no WAL: its readers take turns with writers. */
void
store_sqlite_read_lock(store_sqlite_conn *c)
{
	store_sqlite *sq = c->base.s->be_data;

	if (sq->memory) {
		(void) pthread_mutex_lock(&sq->write_mu); /* cannot fail */
	}
}

void
store_sqlite_read_unlock(store_sqlite_conn *c)
{
	store_sqlite *sq = c->base.s->be_data;

	if (sq->memory) {
		(void) pthread_mutex_unlock(&sq->write_mu); /* we hold it */
	}
}

/* store_sqlite_get_current reads the live record with its value and,
 * when revision is not NULL, the store's revision in the same statement
 * (so the same snapshot). */
static store_err
store_sqlite_get_current(store_sqlite_conn *c, const char *key,
    size_t key_len, int64_t now, store_record *out, uint64_t *revision,
    store_error *err)
{
	store_stmt_id id =
	    revision != NULL ? STORE_STMT_READ_GET_REV : STORE_STMT_READ_GET;
	sqlite3_stmt *st = c->st[id];
	store_record r;
	store_row row;
	store_err rv;
	int rc;

	memset(&r, 0, sizeof(r));
	if ((rc = store_row_read(c, id, key, key_len, &row)) != SQLITE_OK) {
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
	if (revision != NULL) {
		*revision = store_col_u64(st, STORE_COL_STORE_REVISION);
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
    uint64_t *revision, store_error *err)
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
		    revision, err);
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
	if (revision != NULL) {
		/* Inside the read transaction: the same snapshot. */
		sqlite3_stmt *ms = c->st[STORE_STMT_META_GET];

		if ((rc = store_sqlite_step(ms)) != SQLITE_ROW) {
			rv = store_sqlite_err(c->db, rc, err,
			    "reading the revision");
			store_sqlite_done(ms);
			goto out;
		}
		*revision = store_col_u64(ms, 0);
		store_sqlite_done(ms);
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

store_err
store_sqlite_get(store_conn *bc, const char *key, size_t key_len,
    uint64_t version, store_record *out, uint64_t *revision,
    store_error *err)
{
	store_sqlite_conn *c = (store_sqlite_conn *) bc;
	int64_t now = ds_clock_now_ms(bc->s->clock);
	store_err rv;
	int rc;

	store_sqlite_read_lock(c);
	if (version == 0) {
		/* One statement is one snapshot: no transaction needed. */
		rv = store_sqlite_get_current(c, key, key_len, now, out,
		    revision, err);
		goto out;
	}
	if ((rc = store_sqlite_run(c, STORE_STMT_BEGIN_READ)) != SQLITE_OK) {
		rv = store_sqlite_err(c->db, rc, err, "beginning a read");
		goto out;
	}
	rv = store_sqlite_get_version(c, key, key_len, version, now, out,
	    revision, err);
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

/* store_list_row turns the current LIST row into r. LIST's columns are
 * the ROW_GET columns followed by the key. */
static store_err
store_list_row(sqlite3_stmt *st, int64_t now, store_record *r)
{
	enum { K = STORE_COL_VALUE };
	const void *key = sqlite3_column_blob(st, K);
	size_t key_len = (size_t) sqlite3_column_bytes(st, K);
	store_lease lease;
	store_err rv;

	if ((rv = store_record_set_text(&r->key, key, key_len)) != STORE_OK ||
	    (rv = store_col_text(st, STORE_COL_CONTENT_TYPE,
	         &r->content_type)) != STORE_OK ||
	    (rv = store_col_text(st, STORE_COL_UPDATED_BY, &r->updated_by)) !=
	        STORE_OK) {
		return rv;
	}
	r->key_len = key_len;
	r->version = store_col_u64(st, STORE_COL_VERSION);
	r->revision = store_col_u64(st, STORE_COL_REVISION);
	r->created_at_ms = sqlite3_column_int64(st, STORE_COL_CREATED_AT);
	r->updated_at_ms = sqlite3_column_int64(st, STORE_COL_UPDATED_AT);
	store_col_lease(st, &lease);
	if (store_lease_live(&lease, now)) {
		return store_record_lock(r, st, STORE_COL_LOCK_OWNER,
		    lease.expires_at_ms, lease.fencing_token);
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

store_err
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

store_err
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

/* store_sqlite_peek: in one read transaction, PRAGMA data_version (SQLite's
 * counter that moves when another connection, of this process or another,
 * committed since this connection last asked, and not for its own
 * commits) and, per write with a request id, whether either generation
 * table holds a row for it (expired or not: the caller then goes to the
 * full write path, which decides). */
store_err
store_sqlite_peek(store_conn *bc, const store_write *const *ws, size_t n,
    uint64_t *data_version, bool *seen, store_error *err)
{
	store_sqlite_conn *c = (store_sqlite_conn *) bc;
	sqlite3_stmt *dv = c->st[STORE_STMT_DATA_VERSION];
	sqlite3_stmt *rq = c->st[STORE_STMT_REQ_GET];
	store_err rv = STORE_OK;
	int rc;

	store_sqlite_read_lock(c);
	if ((rc = store_sqlite_run(c, STORE_STMT_BEGIN_READ)) != SQLITE_OK) {
		rv = store_sqlite_err(c->db, rc, err, "beginning a read");
		store_sqlite_read_unlock(c);
		return rv;
	}
	if ((rc = store_sqlite_step(dv)) != SQLITE_ROW) {
		rv = store_sqlite_err(c->db, rc, err, "reading data_version");
	} else {
		*data_version = store_col_u64(dv, 0);
	}
	store_sqlite_done(dv);
	for (size_t i = 0; rv == STORE_OK && i < n; i++) {
		const store_write *w = ws[i];

		seen[i] = false;
		if (w->request_id_len == 0) {
			continue;
		}
		rc = SQLITE_OK;
		store_bind_blob(rq, 1, w->caller != NULL ? w->caller : "",
		    w->caller_len, &rc);
		store_bind_blob(rq, 2, w->request_id, w->request_id_len, &rc);
		if (rc == SQLITE_OK) {
			rc = store_sqlite_step(rq);
		}
		if (rc == SQLITE_ROW) {
			seen[i] = true;
		} else if (rc != SQLITE_DONE) {
			rv = store_sqlite_err(c->db, rc, err,
			    "looking up request_id");
		}
		store_sqlite_done(rq);
	}
	if ((rc = store_sqlite_run(c, STORE_STMT_COMMIT)) != SQLITE_OK) {
		/* A read-only transaction: ending it cannot lose data. */
		(void) store_sqlite_run(c, STORE_STMT_ROLLBACK);
	}
	store_sqlite_read_unlock(c);
	if (rv == STORE_OK) {
		store_error_clear(err);
	}
	return rv;
}

store_err
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
