/*
 * store_sqlite_batch.c - the SQLite backend's write transactions: a batch
 * in one transaction, fast (no savepoints) first, redone write by write
 * in savepoints when a write failed midway.
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

/* --- writes: transactions and batches --- */

/* store_hard: a failure that says nothing about the request (the
 * database or memory failed): the result then carries the error only. */
static bool
store_hard(store_err rv)
{
	return rv == STORE_ENOMEM || rv == STORE_EIO || rv == STORE_ETOOLARGE ||
	    rv == STORE_EBUSY;
}

/* store_fail_all gives every result the batch's error, freeing whatever
 * the results already held. */
static void
store_fail_all(store_write_result *results, size_t n, const store_error *e)
{
	for (size_t i = 0; i < n; i++) {
		store_write_result_fini(&results[i]);
		results[i].error = *e;
	}
}

/* store_batch_write_fast runs write w without a savepoint. A savepoint
 * makes SQLite copy every page a write touches into a statement journal
 * first, which cost ~15 % of a write's instructions; but every refusal
 * (conflict, lock, bad request id) happens before the write changes
 * anything, so only a failure midway needs one. Returns STORE_OK to go
 * on (w succeeded or was refused alone), or STORE_SQLITE_REDO when w
 * failed after changing something: the caller then rolls the whole batch
 * back and runs it again write by write in savepoints (store_batch_write),
 * which isolates the failure. */
#define STORE_SQLITE_REDO (-1)

static int
store_batch_write_fast(store_wctx *x, const store_write *w,
    store_write_result *res)
{
	store_counters saved = x->cnt;
	sqlite3_int64 before = sqlite3_total_changes64(x->c->db);
	store_err rv;

	x->now = ds_clock_now_ms(x->c->base.s->clock);
	if ((rv = store_write_one(x, w, res)) == STORE_OK) {
		return STORE_OK;
	}
	if (store_hard(rv) || sqlite3_get_autocommit(x->c->db) ||
	    sqlite3_total_changes64(x->c->db) != before) {
		return STORE_SQLITE_REDO;
	}
	x->cnt = saved;
	return STORE_OK;
}

/* store_batch_write runs write w in its own savepoint. Returns STORE_OK
 * when the batch can go on (w succeeded or failed alone), or the error
 * that lost the whole transaction, with its detail in *e. */
static store_err
store_batch_write(store_wctx *x, const store_write *w,
    store_write_result *res, store_error *e)
{
	store_counters saved = x->cnt;
	store_err rv;
	int rc;

	x->now = ds_clock_now_ms(x->c->base.s->clock);
	if ((rc = store_sqlite_run(x->c, STORE_STMT_SAVEPOINT)) != SQLITE_OK) {
		rv = store_sqlite_err(x->c->db, rc, &res->error,
		    "opening a savepoint");
		goto lost_or_alone;
	}
	if ((rv = store_write_one(x, w, res)) == STORE_OK) {
		if ((rc = store_sqlite_run(x->c, STORE_STMT_RELEASE)) ==
		    SQLITE_OK) {
			return STORE_OK;
		}
		rv = store_sqlite_err(x->c->db, rc, &res->error,
		    "releasing a savepoint");
	}
	/* Refused or failed: undo whatever the write did. A refusal did
	 * nothing, so this is cheap; a failure midway (out of memory, disk
	 * full) leaves the batch's other writes intact. */
	x->cnt = saved;
	if (store_hard(rv)) {
		store_error err = res->error;

		store_write_result_fini(res);
		res->error = err;
	}
	if (sqlite3_get_autocommit(x->c->db)) {
		goto lost; /* SQLite already rolled everything back */
	}
	if ((rc = store_sqlite_run(x->c, STORE_STMT_ROLLBACK_TO)) !=
	        SQLITE_OK ||
	    (rc = store_sqlite_run(x->c, STORE_STMT_RELEASE)) != SQLITE_OK) {
		/* The write may be half applied: nothing of the batch may
		 * commit. */
		(void) store_sqlite_err(x->c->db, rc, &res->error,
		    "rolling back a savepoint");
		goto lost;
	}
	return STORE_OK;
lost_or_alone:
	/* Nothing of w ran. The batch goes on unless SQLite rolled the
	 * whole transaction back (it does on some I/O and memory errors). */
	if (!sqlite3_get_autocommit(x->c->db)) {
		return STORE_OK;
	}
lost:
	*e = res->error;
	if (e->code == STORE_OK) {
		(void) store_error_set(e, STORE_EIO, "",
		    "the transaction was rolled back");
	}
	return e->code;
}

/* store_batch_finish writes the counters and commits. */
store_err
store_batch_finish(store_wctx *x, store_error *e)
{
	sqlite3_stmt *st;
	int rc = SQLITE_OK;

	if (x->cnt.dirty) {
		st = x->c->st[STORE_STMT_META_SET];
		rc = SQLITE_OK;
		store_bind_i64(st, 1, (int64_t) x->cnt.revision, &rc);
		store_bind_i64(st, 2, (int64_t) x->cnt.fencing, &rc);
		store_bind_i64(st, 3, x->cnt.req_gen, &rc);
		if (rc == SQLITE_OK) {
			rc = store_sqlite_step(st);
			rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
		}
		store_sqlite_done(st);
		if (rc != SQLITE_OK) {
			return store_sqlite_err(x->c->db, rc, e,
			    "writing the revision");
		}
	}
	if ((rc = store_sqlite_run(x->c, STORE_STMT_COMMIT)) != SQLITE_OK) {
		return store_sqlite_err(x->c->db, rc, e, "committing");
	}
	return STORE_OK;
}

/* store_batch_begin starts the write transaction and loads the counters. */
store_err
store_batch_begin(store_wctx *x, store_error *e)
{
	sqlite3_stmt *st = x->c->st[STORE_STMT_META_GET];
	int rc;

	if (!sqlite3_get_autocommit(x->c->db)) {
		/* Only a failed ROLLBACK can leave one open; clear it. */
		(void) store_sqlite_run(x->c, STORE_STMT_ROLLBACK);
	}
	if ((rc = store_sqlite_run(x->c, STORE_STMT_BEGIN_WRITE)) !=
	    SQLITE_OK) {
		return store_sqlite_err(x->c->db, rc, e, "beginning a write");
	}
	if ((rc = store_sqlite_step(st)) != SQLITE_ROW) {
		store_sqlite_done(st);
		return store_sqlite_err(x->c->db, rc, e, "reading the revision");
	}
	x->cnt.revision = store_col_u64(st, 0);
	x->cnt.fencing = store_col_u64(st, 1);
	x->cnt.req_gen = sqlite3_column_int64(st, 2);
	x->cnt.dirty = false;
	store_sqlite_done(st);
	return STORE_OK;
}

/* store_batch_run runs one transaction over the validated writes of ws.
 * safe: a savepoint per write (see store_batch_write_fast). Returns
 * STORE_OK once committed, or with *redo set (fast mode only) after
 * rolling back, or the error that lost the transaction (rolled back,
 * detail in *e). Caller holds write_mu. */
static store_err
store_batch_run(store_sqlite_conn *c, store *s, const store_write *ws,
    size_t n, store_write_result *results, bool safe, bool *redo,
    store_error *e)
{
	store_wctx x;
	store_err rv;

	memset(&x, 0, sizeof(x));
	x.c = c;
	x.lim = &s->limits;
	x.now = ds_clock_now_ms(s->clock);
	if ((rv = store_batch_begin(&x, e)) != STORE_OK) {
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		if (results[i].error.code != STORE_OK) {
			continue; /* refused by store_validate */
		}
		if (!safe) {
			if (store_batch_write_fast(&x, &ws[i], &results[i]) ==
			    STORE_SQLITE_REDO) {
				*redo = true;
				rv = STORE_OK;
				goto fail;
			}
			continue;
		}
		if ((rv = store_batch_write(&x, &ws[i], &results[i], e)) !=
		    STORE_OK) {
			goto fail;
		}
	}
	if ((rv = store_batch_finish(&x, e)) != STORE_OK) {
		goto fail;
	}
	return STORE_OK;
fail:
	if (!sqlite3_get_autocommit(c->db)) {
		/* If even ROLLBACK fails the next batch retries it first. */
		(void) store_sqlite_run(c, STORE_STMT_ROLLBACK);
	}
	return rv;
}

store_err
store_sqlite_apply_batch(store_conn *bc, const store_write *ws, size_t n,
    store_write_result *results)
{
	store_sqlite_conn *c = (store_sqlite_conn *) bc;
	store_sqlite *sq = bc->s->be_data;
	store_error e;
	store_err rv;
	bool redo = false;
	size_t nvalid = 0;

	/* Validation needs no SQL: refuse bad writes before BEGIN (unless
	 * store_prepare did it where the write was received). */
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
	(void) pthread_mutex_lock(&sq->write_mu); /* cannot fail: not held */
	rv = store_batch_run(c, bc->s, ws, n, results, false, &redo, &e);
	if (rv == STORE_OK && redo) {
		/* A write failed after changing something: run the batch again
		 * with a savepoint per write, so that write fails alone. */
		for (size_t i = 0; i < n; i++) {
			store_write_result_fini(&results[i]);
			memset(&results[i], 0, sizeof(results[i]));
			(void) store_write_check(&bc->s->limits, &ws[i],
			    &results[i].error);
		}
		memset(&e, 0, sizeof(e));
		rv = store_batch_run(c, bc->s, ws, n, results, true, &redo, &e);
	}
	(void) pthread_mutex_unlock(&sq->write_mu); /* held */
	if (rv != STORE_OK) {
		store_fail_all(results, n, &e);
	}
	return rv;
}
