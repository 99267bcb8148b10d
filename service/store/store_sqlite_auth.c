/*
 * store_sqlite_auth.c - tokens on SQLite (store.h, schema v6): the
 * tokens table and meta.auth_gen.
 *
 * These are rare admin writes and a small read every 250 ms per node, so
 * the statements are prepared per call instead of joining the
 * connection's persistent set: nothing is paid by the data path. Each
 * write is its own IMMEDIATE transaction under write_mu, like a batch, so
 * it never interleaves with one; it moves auth_gen in the same
 * transaction, so a reader that sees the generation sees the change.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <string.h>

#include "ds_alloc.h"
#include "store_sqlite_int.h"

#define STORE_AUTH_COLUMNS "name, hash, grants, created_at_ms, revoked_at_ms"

/* store_auth_prepare prepares sql on c (st owned: sqlite3_finalize). */
static store_err
store_auth_prepare(
    store_sqlite_conn *c, const char *sql, sqlite3_stmt **st, store_error *err)
{
	int rc;

	if ((rc = sqlite3_prepare_v2(c->db, sql, -1, st, NULL)) != SQLITE_OK) {
		*st = NULL;
		return store_sqlite_err(
		    c->db, rc, err, "preparing a token query");
	}
	return STORE_OK;
}

/* store_auth_row reads a row of STORE_AUTH_COLUMNS into *t (owned;
 * store_auth_token_fini). On failure *t holds what was read, to finish. */
static store_err
store_auth_row(sqlite3_stmt *st, store_auth_token *t, store_error *err)
{
	store_err rv;

	if (sqlite3_column_bytes(st, 1) != 32) {
		return store_error_set(err, STORE_EIO, "",
		    "a token's hash is %d bytes, not 32: the database is "
		    "corrupt",
		    sqlite3_column_bytes(st, 1));
	}
	memcpy(t->hash, sqlite3_column_blob(st, 1), 32);
	if ((rv = store_col_text(st, 0, &t->name)) != STORE_OK ||
	    (rv = store_col_text(st, 2, &t->grants)) != STORE_OK) {
		return store_error_set(
		    err, rv, "", "out of memory reading a token");
	}
	t->created_at_ms = sqlite3_column_int64(st, 3);
	t->revoked = sqlite3_column_type(st, 4) != SQLITE_NULL;
	t->revoked_at_ms = t->revoked ? sqlite3_column_int64(st, 4) : 0;
	return STORE_OK;
}

/* store_auth_gen_bump moves meta.auth_gen in the running transaction. */
static store_err
store_auth_gen_bump(store_sqlite_conn *c, store_error *err)
{
	char *msg = NULL;
	store_err rv = STORE_OK;
	int rc;

	if ((rc = sqlite3_exec(c->db,
	         "UPDATE meta SET auth_gen = auth_gen + 1 WHERE id = 0", NULL,
	         NULL, &msg)) != SQLITE_OK) {
		rv = store_sqlite_err(
		    c->db, rc, err, "moving the auth generation");
	}
	sqlite3_free(msg);
	return rv;
}

/* store_auth_write_begin takes write_mu and begins a write transaction;
 * store_auth_write_end commits (rv == STORE_OK) or rolls back, and
 * releases write_mu. */
static store_err
store_auth_write_begin(store_sqlite_conn *c, store_error *err)
{
	store_sqlite *sq = c->base.s->be_data;
	int rc;

	(void) pthread_mutex_lock(&sq->write_mu); /* cannot fail: not held */
	if (!sqlite3_get_autocommit(c->db)) {
		/* Only a failed ROLLBACK can leave one open; clear it. */
		(void) store_sqlite_run(c, STORE_STMT_ROLLBACK);
	}
	if ((rc = store_sqlite_run(c, STORE_STMT_BEGIN_WRITE)) != SQLITE_OK) {
		(void) pthread_mutex_unlock(&sq->write_mu); /* held */
		return store_sqlite_err(c->db, rc, err, "beginning a write");
	}
	return STORE_OK;
}

static store_err
store_auth_write_end(store_sqlite_conn *c, store_err rv, store_error *err)
{
	store_sqlite *sq = c->base.s->be_data;
	int rc;

	if (rv == STORE_OK &&
	    (rc = store_sqlite_run(c, STORE_STMT_COMMIT)) != SQLITE_OK) {
		rv = store_sqlite_err(c->db, rc, err, "committing a token");
	}
	if (rv != STORE_OK && !sqlite3_get_autocommit(c->db)) {
		/* Best effort: the next write clears a failed one. */
		(void) store_sqlite_run(c, STORE_STMT_ROLLBACK);
	}
	(void) pthread_mutex_unlock(&sq->write_mu); /* held */
	return rv;
}

/* store_auth_taken: how many tokens there are, and whether name or hash
 * is taken (*name_taken, *hash_taken). */
static store_err
store_auth_taken(store_sqlite_conn *c, const char *name, const uint8_t *hash,
    int64_t *count, bool *name_taken, bool *hash_taken, store_error *err)
{
	sqlite3_stmt *st = NULL;
	store_err rv;
	int rc = SQLITE_OK;

	if ((rv = store_auth_prepare(c,
	         /* count(*) alone walks pages, not rows; the others are
	          * index look-ups. */
	         "SELECT (SELECT count(*) FROM tokens),"
	         " EXISTS (SELECT 1 FROM tokens WHERE name = ?1),"
	         " EXISTS (SELECT 1 FROM tokens WHERE hash = ?2)",
	         &st, err)) != STORE_OK) {
		return rv;
	}
	store_bind_text(st, 1, name, strlen(name), &rc);
	store_bind_blob(st, 2, hash, 32, &rc);
	if (rc != SQLITE_OK || (rc = store_sqlite_step(st)) != SQLITE_ROW) {
		rv = store_sqlite_err(c->db, rc, err, "reading the tokens");
		goto out;
	}
	*count = sqlite3_column_int64(st, 0);
	*name_taken = sqlite3_column_int64(st, 1) > 0;
	*hash_taken = sqlite3_column_int64(st, 2) > 0;
out:
	(void) sqlite3_finalize(st); /* its error was reported */
	return rv;
}

store_err
store_sqlite_auth_create(store_conn *bc, const char *name,
    const uint8_t hash[32], const char *grants, store_auth_token *out,
    store_error *err)
{
	store_sqlite_conn *c = (store_sqlite_conn *) bc;
	int64_t now = ds_clock_now_ms(bc->s->clock);
	store_auth_token t = {0};
	sqlite3_stmt *st = NULL;
	bool name_taken = false, hash_taken = false;
	int64_t count = 0;
	store_err rv;
	int rc = SQLITE_OK;

	if ((rv = store_auth_write_begin(c, err)) != STORE_OK) {
		return rv;
	}
	if ((rv = store_auth_taken(c, name, hash, &count, &name_taken,
	         &hash_taken, err)) != STORE_OK) {
		goto out;
	}
	if (name_taken) {
		rv = store_error_set(err, STORE_ECONFLICT, "name",
		    "a token named \"%s\" exists or existed: names are never "
		    "reused",
		    name);
		goto out;
	}
	if (hash_taken) {
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
	if ((rv = store_auth_prepare(c,
	         "INSERT INTO tokens (" STORE_AUTH_COLUMNS ")"
	         " VALUES (?1, ?2, ?3, ?4, NULL)",
	         &st, err)) != STORE_OK) {
		goto out;
	}
	store_bind_text(st, 1, name, strlen(name), &rc);
	store_bind_blob(st, 2, hash, 32, &rc);
	store_bind_text(st, 3, grants, strlen(grants), &rc);
	store_bind_i64(st, 4, now, &rc);
	if (rc != SQLITE_OK || (rc = store_sqlite_step(st)) != SQLITE_DONE) {
		rv = store_sqlite_err(c->db, rc, err, "adding a token");
		goto out;
	}
	if ((rv = store_auth_gen_bump(c, err)) != STORE_OK) {
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
	(void) sqlite3_finalize(st); /* its error was reported */
	rv = store_auth_write_end(c, rv, err);
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
store_sqlite_auth_revoke(
    store_conn *bc, const char *name, store_auth_token *out, store_error *err)
{
	store_sqlite_conn *c = (store_sqlite_conn *) bc;
	int64_t now = ds_clock_now_ms(bc->s->clock);
	store_auth_token t = {0};
	sqlite3_stmt *st = NULL;
	store_err rv;
	int rc = SQLITE_OK;

	if ((rv = store_auth_write_begin(c, err)) != STORE_OK) {
		return rv;
	}
	if ((rv = store_auth_prepare(c,
	         "SELECT " STORE_AUTH_COLUMNS " FROM tokens WHERE name = ?1",
	         &st, err)) != STORE_OK) {
		goto out;
	}
	store_bind_text(st, 1, name, strlen(name), &rc);
	if (rc != SQLITE_OK || ((rc = store_sqlite_step(st)) != SQLITE_ROW &&
	                           rc != SQLITE_DONE)) {
		rv = store_sqlite_err(c->db, rc, err, "reading a token");
		goto out;
	}
	if (rc == SQLITE_DONE) {
		rv = store_error_set(err, STORE_ENOTFOUND, "name",
		    "no token is named \"%s\"", name);
		goto out;
	}
	if ((rv = store_auth_row(st, &t, err)) != STORE_OK || t.revoked) {
		goto out; /* revoking a revoked token changes nothing */
	}
	(void) sqlite3_finalize(st);
	rc = SQLITE_OK;
	if ((rv = store_auth_prepare(c,
	         "UPDATE tokens SET revoked_at_ms = ?2 WHERE name = ?1", &st,
	         err)) != STORE_OK) {
		goto out;
	}
	store_bind_text(st, 1, name, strlen(name), &rc);
	store_bind_i64(st, 2, now, &rc);
	if (rc != SQLITE_OK || (rc = store_sqlite_step(st)) != SQLITE_DONE) {
		rv = store_sqlite_err(c->db, rc, err, "revoking a token");
		goto out;
	}
	if ((rv = store_auth_gen_bump(c, err)) != STORE_OK) {
		goto out;
	}
	t.revoked = true;
	t.revoked_at_ms = now;
out:
	(void) sqlite3_finalize(st); /* its error was reported */
	rv = store_auth_write_end(c, rv, err);
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

/* store_auth_gen_read reads meta.auth_gen on c (in the caller's
 * transaction, if any). */
static store_err
store_auth_gen_read(
    store_sqlite_conn *c, uint64_t *generation, store_error *err)
{
	sqlite3_stmt *st = NULL;
	store_err rv;
	int rc;

	if ((rv = store_auth_prepare(
	         c, "SELECT auth_gen FROM meta WHERE id = 0", &st, err)) !=
	    STORE_OK) {
		return rv;
	}
	if ((rc = store_sqlite_step(st)) != SQLITE_ROW) {
		rv = store_sqlite_err(
		    c->db, rc, err, "reading the auth generation");
	} else {
		*generation = store_col_u64(st, 0);
	}
	(void) sqlite3_finalize(st); /* its error was reported */
	return rv;
}

store_err
store_sqlite_auth_list(store_conn *bc, store_auth_token **out, size_t *n,
    uint64_t *generation, store_error *err)
{
	store_sqlite_conn *c = (store_sqlite_conn *) bc;
	store_auth_token *ts = NULL;
	sqlite3_stmt *st = NULL;
	size_t count = 0, cap = 0;
	uint64_t gen = 0;
	store_err rv;
	int rc;

	store_sqlite_read_lock(c);
	if ((rc = store_sqlite_run(c, STORE_STMT_BEGIN_READ)) != SQLITE_OK) {
		rv = store_sqlite_err(c->db, rc, err, "beginning a read");
		goto unlock;
	}
	if ((rv = store_auth_gen_read(c, &gen, err)) != STORE_OK ||
	    (rv = store_auth_prepare(c,
	         "SELECT " STORE_AUTH_COLUMNS " FROM tokens ORDER BY name",
	         &st, err)) != STORE_OK) {
		goto out;
	}
	while ((rc = store_sqlite_step(st)) == SQLITE_ROW) {
		if (count == cap) {
			/* Bounded by STORE_AUTH_TOKENS_MAX rows. */
			size_t ncap = cap == 0 ? 16 : 2 * cap;
			store_auth_token *nt =
			    ds_realloc(ts, ncap * sizeof(*ts));

			if (nt == NULL) {
				rv = store_error_set(err, STORE_ENOMEM, "",
				    "out of memory listing tokens");
				goto out;
			}
			ts = nt;
			cap = ncap;
		}
		memset(&ts[count], 0, sizeof(ts[count]));
		count++;
		if ((rv = store_auth_row(st, &ts[count - 1], err)) !=
		    STORE_OK) {
			goto out;
		}
	}
	if (rc != SQLITE_DONE) {
		rv = store_sqlite_err(c->db, rc, err, "listing tokens");
	}
out:
	(void) sqlite3_finalize(st); /* its error was reported */
	/* A read transaction: ending it cannot lose anything. */
	(void) store_sqlite_run(
	    c, rv == STORE_OK ? STORE_STMT_COMMIT : STORE_STMT_ROLLBACK);
unlock:
	store_sqlite_read_unlock(c);
	if (rv == STORE_OK) {
		if (count == 0) {
			ds_free(ts);
			ts = NULL;
		}
		*out = ts;
		*n = count;
		*generation = gen;
		store_error_clear(err);
	} else {
		store_auth_tokens_free(ts, count);
	}
	return rv;
}

store_err
store_sqlite_auth_generation(
    store_conn *bc, uint64_t *generation, store_error *err)
{
	store_sqlite_conn *c = (store_sqlite_conn *) bc;
	store_err rv;

	store_sqlite_read_lock(c);
	rv = store_auth_gen_read(c, generation, err);
	store_sqlite_read_unlock(c);
	if (rv == STORE_OK) {
		store_error_clear(err);
	}
	return rv;
}
