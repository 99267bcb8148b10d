/*
 * store_pg_auth.c - tokens on PostgreSQL (store.h, schema v2 of
 * store_pg.c): the tokens table and meta.auth_gen.
 *
 * A create or revoke is its own transaction that first locks the meta
 * row (as every writer does), so token writes of all nodes serialise with
 * each other and with batches: the count against STORE_AUTH_TOKENS_MAX
 * and the name check cannot race, and auth_gen moves in the same commit
 * as the change, so a node that reads a generation and then the tokens
 * (one REPEATABLE READ snapshot, store_auth_list) sees that change.
 *
 * These are rare statements, sent unprepared (PQexecParams, binary
 * results) so the connection's prepared set, which every reconnect
 * prepares again, stays the data path's. A read that finds its session
 * dead reconnects and runs once more, as store_pg_exec_read does.
 */
#include <stdio.h>
#include <string.h>

#include "ds_alloc.h"
#include "store_pg_int.h"

#define STORE_PG_AUTH_COLUMNS                                                 \
	"name, hash, grants, created_at_ms, revoked_at_ms"

/* "now" as store_pg.c's STORE_PG_NOW: $n = NULL is the server's clock. */
#define STORE_PG_AUTH_NOW(n)                                                  \
	"coalesce(" n "::int8,"                                               \
	" floor(extract(epoch FROM clock_timestamp()) * 1000)::int8)"

/* store_pg_auth_q runs sql with p (may be NULL); on success *out (may be
 * NULL) holds the binary result, for the caller to PQclear(). */
static store_err
store_pg_auth_q(store_pg_conn *c, const char *sql, const store_pg_params *p,
    PGresult **out, store_error *err, const char *what)
{
	PGresult *res = PQexecParams(c->pg, sql, p != NULL ? p->n : 0, NULL,
	    p != NULL ? p->v : NULL, p != NULL ? p->len : NULL,
	    p != NULL ? p->fmt : NULL, 1);
	ExecStatusType st =
	    res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
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

/* store_pg_auth_end commits (rv == STORE_OK) or rolls back the running
 * transaction. */
static store_err
store_pg_auth_end(store_pg_conn *c, store_err rv, store_error *err)
{
	if (rv == STORE_OK) {
		rv = store_pg_auth_q(
		    c, "COMMIT", NULL, NULL, err, "committing a token");
	}
	if (rv != STORE_OK && !c->broken) {
		PQclear(PQexec(c->pg, "ROLLBACK")); /* nothing to keep */
	}
	return rv;
}

/* store_pg_auth_row reads row i of STORE_PG_AUTH_COLUMNS into *t (owned;
 * on failure it holds what was read, to finish). */
static store_err
store_pg_auth_row(
    const PGresult *r, int i, store_auth_token *t, store_error *err)
{
	store_err rv;

	if (PQgetlength(r, i, 1) != 32) {
		return store_error_set(err, STORE_EIO, "",
		    "a token's hash is %d bytes, not 32: the database is "
		    "corrupt",
		    PQgetlength(r, i, 1));
	}
	memcpy(t->hash, PQgetvalue(r, i, 1), 32);
	if ((rv = store_pg_text(r, i, 0, &t->name)) != STORE_OK ||
	    (rv = store_pg_text(r, i, 2, &t->grants)) != STORE_OK) {
		return store_error_set(
		    err, rv, "", "out of memory reading a token");
	}
	t->created_at_ms = store_pg_i64(r, i, 3);
	t->revoked = !store_pg_null(r, i, 4);
	t->revoked_at_ms = t->revoked ? store_pg_i64(r, i, 4) : 0;
	return STORE_OK;
}

/* store_pg_auth_begin starts a token write: BEGIN, lock meta, *now. */
static store_err
store_pg_auth_begin(store_pg_conn *c, int64_t *now, store_error *err)
{
	PGresult *res = NULL;
	store_pg_params p;
	store_err rv;

	if ((rv = store_pg_ready(c, err)) != STORE_OK ||
	    (rv = store_pg_auth_q(c, "BEGIN", NULL, NULL, err,
	         "beginning a write")) != STORE_OK) {
		return rv;
	}
	store_pg_p_init(&p);
	store_pg_p_now(&p, c->base.s);
	if ((rv = store_pg_auth_q(c,
	         "SELECT " STORE_PG_AUTH_NOW(
	             "$1") " FROM meta WHERE id = 0 FOR UPDATE",
	         &p, &res, err, "locking the store for a token")) !=
	    STORE_OK) {
		return store_pg_auth_end(c, rv, err);
	}
	*now = store_pg_i64(res, 0, 0);
	PQclear(res);
	return STORE_OK;
}

static store_err
store_pg_auth_bump(store_pg_conn *c, store_error *err)
{
	return store_pg_auth_q(c,
	    "UPDATE meta SET auth_gen = auth_gen + 1 WHERE id = 0", NULL, NULL,
	    err, "moving the auth generation");
}

store_err
store_pg_auth_create(store_conn *bc, const char *name, const uint8_t hash[32],
    const char *grants, store_auth_token *out, store_error *err)
{
	store_pg_conn *c = (store_pg_conn *) bc;
	store_auth_token t = {0};
	PGresult *res = NULL;
	store_pg_params p;
	int64_t now = 0, count;
	store_err rv;

	if ((rv = store_pg_auth_begin(c, &now, err)) != STORE_OK) {
		return rv;
	}
	store_pg_p_init(&p);
	store_pg_p_bytes(&p, name, strlen(name));
	store_pg_p_bytes(&p, hash, 32);
	if ((rv = store_pg_auth_q(c,
	         "SELECT (SELECT count(*) FROM tokens),"
	         " EXISTS (SELECT 1 FROM tokens WHERE name = $1::text),"
	         " EXISTS (SELECT 1 FROM tokens WHERE hash = $2::bytea)",
	         &p, &res, err, "reading the tokens")) != STORE_OK) {
		goto out;
	}
	count = store_pg_i64(res, 0, 0);
	if (store_pg_bool(res, 0, 1)) {
		rv = store_error_set(err, STORE_ECONFLICT, "name",
		    "a token named \"%s\" exists or existed: names are never "
		    "reused",
		    name);
		goto out;
	}
	if (store_pg_bool(res, 0, 2)) {
		rv = store_error_set(err, STORE_ECONFLICT, "hash",
		    "another token has that secret");
		goto out;
	}
	if (count >= STORE_AUTH_TOKENS_MAX) {
		rv = store_error_set(err, STORE_ETOOLARGE, "name",
		    "the store holds %lld tokens, revoked ones included: "
		    "STORE_AUTH_TOKENS_MAX (%d)",
		    (long long) count, STORE_AUTH_TOKENS_MAX);
		goto out;
	}
	store_pg_p_bytes(&p, grants, strlen(grants));
	store_pg_p_i64(&p, now);
	if ((rv = store_pg_auth_q(c,
	         "INSERT INTO tokens (" STORE_PG_AUTH_COLUMNS ") VALUES"
	         " ($1::text, $2::bytea, $3::text, $4::int8, NULL)",
	         &p, NULL, err, "adding a token")) != STORE_OK ||
	    (rv = store_pg_auth_bump(c, err)) != STORE_OK) {
		goto out;
	}
	if (out != NULL) {
		if ((t.name = ds_strdup(name)) == NULL ||
		    (t.grants = ds_strdup(grants)) == NULL) {
			rv = store_error_set(err, STORE_ENOMEM, "",
			    "out of memory returning a token");
			goto out;
		}
		memcpy(t.hash, hash, 32);
		t.created_at_ms = now;
	}
out:
	PQclear(res);
	rv = store_pg_auth_end(c, rv, err);
	if (rv == STORE_OK) {
		if (out != NULL) {
			*out = t;
			t = (store_auth_token){0};
		}
		store_error_clear(err);
	}
	store_auth_token_fini(&t);
	return rv;
}

store_err
store_pg_auth_revoke(
    store_conn *bc, const char *name, store_auth_token *out, store_error *err)
{
	store_pg_conn *c = (store_pg_conn *) bc;
	store_auth_token t = {0};
	PGresult *res = NULL;
	store_pg_params p;
	int64_t now = 0;
	store_err rv;

	if ((rv = store_pg_auth_begin(c, &now, err)) != STORE_OK) {
		return rv;
	}
	store_pg_p_init(&p);
	store_pg_p_bytes(&p, name, strlen(name));
	if ((rv = store_pg_auth_q(c,
	         "SELECT " STORE_PG_AUTH_COLUMNS " FROM tokens"
	         " WHERE name = $1::text",
	         &p, &res, err, "reading a token")) != STORE_OK) {
		goto out;
	}
	if (PQntuples(res) == 0) {
		rv = store_error_set(err, STORE_ENOTFOUND, "name",
		    "no token is named \"%s\"", name);
		goto out;
	}
	if ((rv = store_pg_auth_row(res, 0, &t, err)) != STORE_OK ||
	    t.revoked) {
		goto out; /* revoking a revoked token changes nothing */
	}
	store_pg_p_i64(&p, now);
	if ((rv = store_pg_auth_q(c,
	         "UPDATE tokens SET revoked_at_ms = $2::int8"
	         " WHERE name = $1::text",
	         &p, NULL, err, "revoking a token")) != STORE_OK ||
	    (rv = store_pg_auth_bump(c, err)) != STORE_OK) {
		goto out;
	}
	t.revoked = true;
	t.revoked_at_ms = now;
out:
	PQclear(res);
	rv = store_pg_auth_end(c, rv, err);
	if (rv == STORE_OK) {
		if (out != NULL) {
			*out = t;
			t = (store_auth_token){0};
		}
		store_error_clear(err);
	}
	store_auth_token_fini(&t);
	return rv;
}

/* store_pg_auth_list_once: one attempt of store_pg_auth_list. */
static store_err
store_pg_auth_list_once(store_pg_conn *c, store_auth_token **out, size_t *n,
    uint64_t *generation, store_error *err)
{
	store_auth_token *ts = NULL;
	PGresult *gen = NULL, *res = NULL;
	size_t count = 0;
	store_err rv;

	if ((rv = store_pg_auth_q(c,
	         "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", NULL, NULL,
	         err, "beginning a read")) != STORE_OK) {
		return rv;
	}
	if ((rv = store_pg_auth_q(c, "SELECT auth_gen FROM meta WHERE id = 0",
	         NULL, &gen, err, "reading the auth generation")) !=
	        STORE_OK ||
	    (rv = store_pg_auth_q(c,
	         "SELECT " STORE_PG_AUTH_COLUMNS " FROM tokens"
	         " ORDER BY name COLLATE \"C\"",
	         NULL, &res, err, "listing tokens")) != STORE_OK) {
		goto out;
	}
	count = (size_t) PQntuples(res);
	if (count > 0 && (ts = ds_calloc(count, sizeof(*ts))) == NULL) {
		count = 0;
		rv = store_error_set(
		    err, STORE_ENOMEM, "", "out of memory listing tokens");
		goto out;
	}
	for (size_t i = 0; i < count; i++) {
		if ((rv = store_pg_auth_row(res, (int) i, &ts[i], err)) !=
		    STORE_OK) {
			goto out;
		}
	}
out:
	/* A read-only transaction: ending it either way loses nothing. */
	rv = store_pg_auth_end(c, rv, err);
	if (rv == STORE_OK) {
		*out = ts;
		*n = count;
		*generation = store_pg_u64(gen, 0, 0);
		ts = NULL;
		store_error_clear(err);
	}
	store_auth_tokens_free(ts, count);
	PQclear(gen);
	PQclear(res);
	return rv;
}

store_err
store_pg_auth_list(store_conn *bc, store_auth_token **out, size_t *n,
    uint64_t *generation, store_error *err)
{
	store_pg_conn *c = (store_pg_conn *) bc;
	store_err rv;

	if ((rv = store_pg_ready(c, err)) != STORE_OK) {
		return rv;
	}
	rv = store_pg_auth_list_once(c, out, n, generation, err);
	/* A read has no effect to repeat; a dead session is not an answer. */
	if (rv == STORE_EUNAVAILABLE && c->broken &&
	    store_pg_ready(c, err) == STORE_OK) {
		rv = store_pg_auth_list_once(c, out, n, generation, err);
	}
	return rv;
}

store_err
store_pg_auth_generation(
    store_conn *bc, uint64_t *generation, store_error *err)
{
	static const char sql[] = "SELECT auth_gen FROM meta WHERE id = 0";
	store_pg_conn *c = (store_pg_conn *) bc;
	PGresult *res = NULL;
	store_err rv;

	if ((rv = store_pg_ready(c, err)) != STORE_OK) {
		return rv;
	}
	rv = store_pg_auth_q(
	    c, sql, NULL, &res, err, "reading the auth generation");
	if (rv == STORE_EUNAVAILABLE && c->broken &&
	    store_pg_ready(c, err) == STORE_OK) {
		rv = store_pg_auth_q(
		    c, sql, NULL, &res, err, "reading the auth generation");
	}
	if (rv == STORE_OK) {
		*generation = store_pg_u64(res, 0, 0);
		store_error_clear(err);
	}
	PQclear(res);
	return rv;
}
