/*
 * store_pg_read.c - the PostgreSQL backend's reads: Get (current and
 * historical), List and the change log. Each is ONE statement, so one
 * snapshot (READ COMMITTED takes one per statement) holds the rows and
 * the store revision reported with them, and costs one round trip.
 */
#include <stdio.h>
#include <string.h>

#include "ds_alloc.h"
#include "store_pg_int.h"

/* STORE_PG_GET's columns: the clock, the store revision, the head row,
 * then the requested version's row. */
enum {
	GET_NOW = 0,
	GET_STORE_REV = 1,
	GET_ROW = 2,
	GET_V_REVISION = GET_ROW + STORE_PG_ROW_NCOLS,
	GET_V_DELETED,
	GET_V_CREATED_AT,
	GET_V_UPDATED_AT,
	GET_V_CONTENT_TYPE,
	GET_V_UPDATED_BY,
	GET_V_VALUE,
	GET_V_EXISTS,
};

/* store_pg_get_decide turns the GET row into the answer, as
 * store_sqlite_get does. */
static store_err
store_pg_get_decide(store_pg_conn *c, const PGresult *res, const char *key,
    size_t key_len, uint64_t v, store_record *out, store_error *err)
{
	const store_limits *lim = &c->base.s->limits;
	uint64_t keep = lim->history > 1 ? lim->history : 1;
	int64_t now = store_pg_i64(res, 0, GET_NOW);
	store_record r;
	store_pg_row row;
	store_err rv;
	bool current;

	memset(&r, 0, sizeof(r));
	store_pg_row_read(res, 0, GET_ROW, &row);
	current = v == 0 || v == row.version;
	if (v == 0 && (!row.exists || row.deleted)) {
		return store_error_set(err, STORE_ENOTFOUND, "key",
		    "key not found");
	}
	if (v > row.version) {
		return store_error_set(err, STORE_ENOTFOUND, "version",
		    "version %llu of the key was never written",
		    (unsigned long long) v);
	}
	if (current && row.deleted) {
		return store_error_set(err, STORE_ENOTFOUND, "key",
		    "key not found");
	}
	if (!current && row.version >= keep && v <= row.version - keep) {
		return store_error_set(err, STORE_ECOMPACTED, "version",
		    "version %llu was compacted (history keeps %u versions)",
		    (unsigned long long) v, (unsigned) lim->history);
	}
	if (!current && !store_pg_bool(res, 0, GET_V_EXISTS)) {
		return store_error_set(err, STORE_ECOMPACTED, "version",
		    "version %llu was compacted", (unsigned long long) v);
	}
	if (!current && store_pg_bool(res, 0, GET_V_DELETED)) {
		return store_error_set(err, STORE_ENOTFOUND, "version",
		    "version %llu of the key is a deletion",
		    (unsigned long long) v);
	}
	/* Lock state is the key's, shown with any version. */
	if ((rv = store_pg_record_from_row(&r, res, 0, GET_ROW, &row, key,
	         key_len, now)) != STORE_OK) {
		goto nomem;
	}
	if (!current) {
		ds_free(r.content_type);
		ds_free(r.updated_by);
		r.content_type = NULL;
		r.updated_by = NULL;
		r.version = v;
		r.revision = store_pg_u64(res, 0, GET_V_REVISION);
		r.deleted = false;
		r.created_at_ms = store_pg_i64(res, 0, GET_V_CREATED_AT);
		r.updated_at_ms = store_pg_i64(res, 0, GET_V_UPDATED_AT);
		if ((rv = store_pg_text(res, 0, GET_V_CONTENT_TYPE,
		         &r.content_type)) != STORE_OK ||
		    (rv = store_pg_text(res, 0, GET_V_UPDATED_BY,
		         &r.updated_by)) != STORE_OK) {
			goto nomem;
		}
	}
	if ((rv = store_pg_value(res, 0, GET_V_VALUE, &r)) != STORE_OK) {
		goto nomem;
	}
	*out = r;
	return STORE_OK;
nomem:
	store_record_fini(&r);
	return store_error_set(err, rv, "", "out of memory");
}

store_err
store_pg_get(store_conn *bc, const char *key, size_t key_len,
    uint64_t version, store_record *out, uint64_t *revision,
    store_error *err)
{
	store_pg_conn *c = (store_pg_conn *) bc;
	PGresult *res = NULL;
	store_pg_params p;
	store_err rv;

	if ((rv = store_pg_ready(c, err)) != STORE_OK) {
		return rv;
	}
	store_pg_p_init(&p);
	store_pg_p_bytes(&p, key, key_len);
	store_pg_p_i64(&p, (int64_t) version);
	store_pg_p_now(&p, bc->s);
	if ((rv = store_pg_exec_read(c, STORE_PG_GET, &p, &res, err,
	         "reading a record")) != STORE_OK) {
		return rv;
	}
	if (PQntuples(res) == 0) {
		rv = version == 0
		    ? store_error_set(err, STORE_ENOTFOUND, "key",
		          "key not found")
		    : store_error_set(err, STORE_ENOTFOUND, "version",
		          "version %llu of the key was never written",
		          (unsigned long long) version);
	} else if ((rv = store_pg_get_decide(c, res, key, key_len, version,
	                out, err)) == STORE_OK) {
		if (revision != NULL) {
			*revision = store_pg_u64(res, 0, GET_STORE_REV);
		}
		store_error_clear(err);
	}
	PQclear(res);
	return rv;
}

/* store_pg_key_cmp compares byte strings like memcmp, shorter first. */
static int
store_pg_key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	int d = memcmp(a, b, an < bn ? an : bn);

	if (d != 0 || an == bn) {
		return d;
	}
	return an < bn ? -1 : 1;
}

/* LIST's columns: revision, clock, key, then the head row. */
enum { LIST_REV = 0, LIST_NOW = 1, LIST_KEY = 2, LIST_ROW = 3 };

static store_err
store_pg_list_row(const PGresult *res, int i, int64_t now, store_record *r)
{
	store_pg_row row;

	store_pg_row_read(res, i, LIST_ROW, &row);
	return store_pg_record_from_row(r, res, i, LIST_ROW, &row,
	    PQgetvalue(res, i, LIST_KEY), (size_t) PQgetlength(res, i, LIST_KEY),
	    now);
}

store_err
store_pg_list(store_conn *bc, const store_list_req *req, store_list_page *out,
    store_error *err)
{
	store_pg_conn *c = (store_pg_conn *) bc;
	const uint8_t *prefix = (const uint8_t *) req->prefix;
	size_t plen = req->prefix_len;
	uint8_t upper[STORE_MAX_KEY_BYTES_HARD + 1];
	store_list_args args;
	store_list_page page;
	PGresult *res = NULL;
	store_pg_params p;
	store_pg_stmt id;
	int64_t now;
	int nrows;
	store_err rv;

	if ((rv = store_validate_list(&bc->s->limits, req, &args, err)) !=
	        STORE_OK ||
	    (rv = store_pg_ready(c, err)) != STORE_OK) {
		return rv;
	}
	memset(&page, 0, sizeof(page));
	if (plen > 0) {
		memcpy(upper, prefix, plen);
	}
	/* No UTF-8 key contains 0xff, so prefix||ff bounds every key that
	 * starts with prefix (and x'ff' alone bounds every key). */
	upper[plen] = 0xff;
	store_pg_p_init(&p);
	if (args.cursor != NULL &&
	    (plen == 0 || store_pg_key_cmp(args.cursor, args.cursor_len,
	                      prefix, plen) >= 0)) {
		id = STORE_PG_LIST_AFTER;
		store_pg_p_bytes(&p, args.cursor, args.cursor_len);
	} else {
		/* First page, or a cursor from before this prefix. */
		id = STORE_PG_LIST_FROM;
		store_pg_p_bytes(&p, prefix, plen);
	}
	store_pg_p_bytes(&p, upper, plen + 1);
	/* One row more than the page tells whether another page exists. */
	store_pg_p_i64(&p, (int64_t) args.page_size + 1);
	store_pg_p_now(&p, bc->s);
	if ((rv = store_pg_exec_read(c, id, &p, &res, err, "listing records")) !=
	    STORE_OK) {
		return rv;
	}
	page.revision = store_pg_u64(res, 0, LIST_REV);
	now = store_pg_i64(res, 0, LIST_NOW);
	nrows = PQntuples(res);
	if (nrows == 1 && store_pg_null(res, 0, LIST_KEY)) {
		nrows = 0; /* the empty page's one row */
	}
	if (nrows > 0) {
		size_t n = (size_t) nrows < args.page_size ? (size_t) nrows
		                                           : args.page_size;

		if ((page.records = ds_calloc(n, sizeof(*page.records))) ==
		    NULL) {
			rv = STORE_ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			page.n++; /* counted first: a partial one is freed */
			if ((rv = store_pg_list_row(res, (int) i, now,
			         &page.records[i])) != STORE_OK) {
				goto out;
			}
		}
		if ((size_t) nrows > args.page_size) {
			store_record *last = &page.records[page.n - 1];

			if ((page.next_page_token = store_page_token_format(
			         (const uint8_t *) last->key, last->key_len)) ==
			    NULL) {
				rv = STORE_ENOMEM;
				goto out;
			}
		}
	}
	rv = STORE_OK;
out:
	PQclear(res);
	if (rv != STORE_OK) {
		store_list_page_fini(&page);
		return store_error_set(err, rv, "", "out of memory");
	}
	store_error_clear(err);
	*out = page;
	return STORE_OK;
}

/* The change-log statements' columns. */
enum {
	CHG_STORE_REV = 0,
	CHG_COMPACT_REV,
	CHG_REVISION,
	CHG_KEY,
	CHG_TYPE,
	CHG_VERSION,
	CHG_DELETED,
	CHG_CREATED_AT,
	CHG_UPDATED_AT,
	CHG_CONTENT_TYPE,
	CHG_UPDATED_BY,
	CHG_LOCK_OWNER,
	CHG_LOCK_EXPIRES_AT,
	CHG_LOCK_FENCING,
	CHG_HAS_VALUE,
	CHG_VALUE,
};

static store_err
store_pg_chg_row(const PGresult *res, int i, bool with_values,
    store_event *ev)
{
	store_record *r = &ev->record;
	store_err rv;

	if ((rv = store_record_set_text(&r->key, PQgetvalue(res, i, CHG_KEY),
	         (size_t) PQgetlength(res, i, CHG_KEY))) != STORE_OK ||
	    (rv = store_pg_text(res, i, CHG_CONTENT_TYPE,
	         &r->content_type)) != STORE_OK ||
	    (rv = store_pg_text(res, i, CHG_UPDATED_BY, &r->updated_by)) !=
	        STORE_OK) {
		return rv;
	}
	ev->type = (store_event_type) store_pg_i64(res, i, CHG_TYPE);
	ev->revision = store_pg_u64(res, i, CHG_REVISION);
	r->key_len = (size_t) PQgetlength(res, i, CHG_KEY);
	r->revision = ev->revision;
	r->version = store_pg_u64(res, i, CHG_VERSION);
	r->deleted = store_pg_bool(res, i, CHG_DELETED);
	r->created_at_ms = store_pg_i64(res, i, CHG_CREATED_AT);
	r->updated_at_ms = store_pg_i64(res, i, CHG_UPDATED_AT);
	if (!store_pg_null(res, i, CHG_LOCK_OWNER) &&
	    (rv = store_pg_record_lock(r, res, i, CHG_LOCK_OWNER,
	         store_pg_i64(res, i, CHG_LOCK_EXPIRES_AT),
	         store_pg_u64(res, i, CHG_LOCK_FENCING))) != STORE_OK) {
		return rv;
	}
	if (!with_values || r->deleted || r->version == 0) {
		return STORE_OK; /* no value to send or to omit */
	}
	if (!store_pg_bool(res, i, CHG_HAS_VALUE)) {
		ev->value_omitted = true; /* left the history */
		return STORE_OK;
	}
	return store_pg_value(res, i, CHG_VALUE, r);
}

store_err
store_pg_changes_read(store_conn *bc, const store_changes_req *req,
    store_changes_page *out, store_error *err)
{
	store_pg_conn *c = (store_pg_conn *) bc;
	uint8_t upper[STORE_MAX_KEY_BYTES_HARD + 1];
	store_changes_page page;
	PGresult *res = NULL;
	store_pg_params p;
	size_t bytes = 0; /* of values read */
	int nrows;
	store_err rv;

	if ((rv = store_pg_ready(c, err)) != STORE_OK) {
		return rv;
	}
	memset(&page, 0, sizeof(page));
	store_pg_p_init(&p);
	store_pg_p_bytes(&p, req->key, req->key_len);
	store_pg_p_i64(&p, (int64_t) req->after);
	/* One row more than the limit tells whether more follow. */
	store_pg_p_i64(&p, (int64_t) req->limit + 1);
	store_pg_p_i64(&p, req->with_values ? 1 : 0);
	store_pg_p_i64(&p, (int64_t) req->max_value_bytes);
	if (req->prefix) {
		/* As List: prefix||ff bounds every key under prefix. */
		if (req->key_len > 0) {
			memcpy(upper, req->key, req->key_len);
		}
		upper[req->key_len] = 0xff;
		store_pg_p_bytes(&p, upper, req->key_len + 1);
	}
	if ((rv = store_pg_exec_read(c,
	         req->prefix ? STORE_PG_CHG_RANGE : STORE_PG_CHG_KEY, &p, &res,
	         err, "reading the change log")) != STORE_OK) {
		return rv;
	}
	page.revision = store_pg_u64(res, 0, CHG_STORE_REV);
	page.compact_revision = store_pg_u64(res, 0, CHG_COMPACT_REV);
	if (req->after < page.compact_revision) {
		out->revision = page.revision;
		out->compact_revision = page.compact_revision;
		PQclear(res);
		return store_error_set(err, STORE_EREV_COMPACTED,
		    "after_revision",
		    "after_revision %llu was compacted: the change log serves "
		    "cursors from compact_revision %llu on",
		    (unsigned long long) req->after,
		    (unsigned long long) page.compact_revision);
	}
	nrows = PQntuples(res);
	if (nrows == 1 && store_pg_null(res, 0, CHG_REVISION)) {
		nrows = 0; /* no events: the meta row alone */
	}
	if (nrows > 0) {
		size_t cap = (size_t) nrows < req->limit ? (size_t) nrows
		                                         : req->limit;

		if ((page.events = ds_calloc(cap, sizeof(*page.events))) ==
		    NULL) {
			rv = STORE_ENOMEM;
			goto out;
		}
	}
	for (int i = 0; i < nrows; i++) {
		store_event *ev;

		if (page.n == req->limit ||
		    (req->max_value_bytes > 0 && bytes >= req->max_value_bytes)) {
			page.more = true;
			break;
		}
		ev = &page.events[page.n++]; /* counted: freed if partial */
		if ((rv = store_pg_chg_row(res, i, req->with_values, ev)) !=
		    STORE_OK) {
			goto out;
		}
		bytes += ev->record.value_len;
	}
	rv = STORE_OK;
out:
	PQclear(res);
	if (rv != STORE_OK) {
		store_changes_page_fini(&page);
		return store_error_set(err, rv, "", "out of memory");
	}
	store_error_clear(err);
	*out = page;
	return STORE_OK;
}
