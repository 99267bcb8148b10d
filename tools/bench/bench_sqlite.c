/*
 * bench_sqlite.c - the raw SQLite loops that bound the store:
 * prepared CAS updates (--baseline sqlite) and point reads
 * (--baseline sqlite-read).
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "bench.h"
#include "ds_alloc.h"

static const char bench_sqlite_pragmas[] =
    "PRAGMA cache_size = -8192;"
    "PRAGMA temp_store = MEMORY;"
    "PRAGMA wal_autocheckpoint = 2000;"
    "PRAGMA journal_size_limit = 67108864;"
    "CREATE TABLE IF NOT EXISTS bench_records ("
    " key BLOB NOT NULL PRIMARY KEY,"
    " version INTEGER NOT NULL,"
    " value BLOB) WITHOUT ROWID;";

static int
bench_sqlite_fail(sqlite3 *db, const char *what)
{
	fprintf(stderr, "datasync bench: sqlite: %s: %s\n", what,
	    db != NULL ? sqlite3_errmsg(db) : "out of memory");
	return BENCH_EXIT_ERROR;
}

static int
bench_sqlite_open(const bench_opts *o, sqlite3 **out)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	char *msg = NULL;
	int rc;

	if (sqlite3_open_v2(o->db, &db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		rc = bench_sqlite_fail(db, o->db);
		goto fail;
	}
	if (sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &s,
	    NULL) != SQLITE_OK || sqlite3_step(s) != SQLITE_ROW ||
	    sqlite3_stricmp((const char *) sqlite3_column_text(s, 0),
	    "wal") != 0) {
		rc = bench_sqlite_fail(db, "cannot switch to WAL");
		goto fail;
	}
	sqlite3_finalize(s);
	s = NULL;
	if (sqlite3_exec(db, o->durability_full ? "PRAGMA synchronous = FULL" :
	    "PRAGMA synchronous = NORMAL", NULL, NULL, &msg) != SQLITE_OK ||
	    sqlite3_exec(db, bench_sqlite_pragmas, NULL, NULL, &msg) !=
	    SQLITE_OK) {
		fprintf(stderr, "datasync bench: sqlite: %s\n",
		    msg != NULL ? msg : "pragmas failed");
		sqlite3_free(msg);
		rc = BENCH_EXIT_ERROR;
		goto fail;
	}
	*out = db;
	return BENCH_EXIT_OK;
fail:
	sqlite3_finalize(s);
	(void) sqlite3_close(db); /* nothing else is open on it */
	return rc;
}

/* bench_sqlite_preload inserts the keys that do not exist and reads
 * every key's version into versions[]. */
static int
bench_sqlite_preload(sqlite3 *db, bench_run *r)
{
	sqlite3_stmt *ins = NULL;
	sqlite3_stmt *sel = NULL;
	int rc = BENCH_EXIT_ERROR;

	if (sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO bench_records "
	    "(key, version, value) VALUES (?1, 1, ?2)", -1, &ins, NULL) !=
	    SQLITE_OK || sqlite3_prepare_v2(db, "SELECT version FROM "
	    "bench_records WHERE key = ?1", -1, &sel, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		rc = bench_sqlite_fail(db, "preload");
		goto out;
	}
	for (size_t i = 0; i < r->n_keys; i++) {
		const char *k = bench_key(r, i);

		sqlite3_bind_blob(ins, 1, k, (int) strlen(k), SQLITE_STATIC);
		sqlite3_bind_blob(ins, 2, r->value, (int) r->o->value_bytes,
		    SQLITE_STATIC);
		if (sqlite3_step(ins) != SQLITE_DONE) {
			rc = bench_sqlite_fail(db, "preload insert");
			(void) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			goto out;
		}
		sqlite3_reset(ins);
		sqlite3_bind_blob(sel, 1, k, (int) strlen(k), SQLITE_STATIC);
		if (sqlite3_step(sel) != SQLITE_ROW) {
			rc = bench_sqlite_fail(db, "preload select");
			(void) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			goto out;
		}
		atomic_store(&r->versions[i],
		    (uint64_t) sqlite3_column_int64(sel, 0));
		sqlite3_reset(sel);
	}
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		rc = bench_sqlite_fail(db, "preload commit");
		goto out;
	}
	rc = BENCH_EXIT_OK;
out:
	sqlite3_finalize(ins);
	sqlite3_finalize(sel);
	return rc;
}

/* bench_sqlite_progress prints the progress line once a second. */
static void
bench_sqlite_progress(const bench_run *r, uint64_t now,
    uint64_t *next, uint64_t *last_t, uint64_t done, uint64_t *last_done)
{
	if (now < *next) {
		return;
	}
	fprintf(stderr, "bench: %-8s %10.0f ops/s\n",
	    now < r->t_begin_ns ? "warmup" : "measure",
	    (double) (done - *last_done) * 1e9 / (double) (now - *last_t));
	*last_done = done;
	*last_t = now;
	*next = now + 1000000000u;
}

int
bench_sqlite(const bench_opts *o)
{
	bench_run r;
	bench_machine *m;
	bench_result *res = NULL;
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	bool read = o->mode == BENCH_MODE_SQLITE_READ;
	uint64_t done = 0;
	uint64_t last_done = 0;
	uint64_t next;
	uint64_t last_t;
	int rc;

	if ((rc = bench_run_init(&r, o)) != BENCH_EXIT_OK) {
		goto out;
	}
	m = &r.m[0];
	if ((rc = bench_sqlite_open(o, &db)) != BENCH_EXIT_OK ||
	    (rc = bench_sqlite_preload(db, &r)) != BENCH_EXIT_OK) {
		goto out;
	}
	rc = BENCH_EXIT_ERROR;
	if (sqlite3_prepare_v2(db, read ?
	    "SELECT value, version FROM bench_records WHERE key = ?1" :
	    "UPDATE bench_records SET value = ?1, version = version + 1 "
	    "WHERE key = ?2 AND version = ?3", -1, &s, NULL) != SQLITE_OK) {
		rc = bench_sqlite_fail(db, "prepare");
		goto out;
	}
	bench_window(&r);
	last_t = bench_now_ns();
	next = last_t + 1000000000u;
	for (;;) {
		uint64_t t0 = bench_now_ns();
		uint64_t t1;
		unsigned n = read ? 1 : o->batch;

		if (t0 >= r.t_end_ns) {
			break;
		}
		if (!read && sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL,
		    NULL) != SQLITE_OK) {
			rc = bench_sqlite_fail(db, "BEGIN");
			goto out;
		}
		for (unsigned i = 0; i < n; i++) {
			size_t k = (size_t) (bench_rand(&m->rng) % r.n_keys);
			const char *key = bench_key(&r, k);
			int step;

			if (read) {
				sqlite3_bind_blob(s, 1, key, (int) strlen(key),
				    SQLITE_STATIC);
				step = sqlite3_step(s);
				if (step == SQLITE_ROW) {
					/* Read what a Get would copy out. */
					(void) sqlite3_column_blob(s, 0);
					(void) sqlite3_column_bytes(s, 0);
					(void) sqlite3_column_int64(s, 1);
				} else {
					bench_count(&m->errors);
				}
			} else {
				uint64_t v = atomic_load(&r.versions[k]);

				sqlite3_bind_blob(s, 1, r.value, (int) o->value_bytes,
				    SQLITE_STATIC);
				sqlite3_bind_blob(s, 2, key, (int) strlen(key),
				    SQLITE_STATIC);
				sqlite3_bind_int64(s, 3, (sqlite3_int64) v);
				step = sqlite3_step(s);
				if (step != SQLITE_DONE) {
					bench_count(&m->errors);
				} else if (sqlite3_changes(db) == 1) {
					atomic_store(&r.versions[k], v + 1);
				} else {
					bench_count(&m->conflicts);
				}
			}
			sqlite3_reset(s);
		}
		if (!read && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) !=
		    SQLITE_OK) {
			rc = bench_sqlite_fail(db, "COMMIT");
			goto out;
		}
		t1 = bench_now_ns();
		done += n;
		if (bench_in_window(&r, t1)) {
			/* Each write of a batch waits for the whole commit. */
			for (unsigned i = 0; i < n; i++) {
				bench_hist_record(m->hist, t1 - t0);
			}
			atomic_fetch_add(&m->ops, n);
		}
		bench_sqlite_progress(&r, t1, &next, &last_t, done,
		    &last_done);
	}
	if ((res = ds_calloc(1, sizeof(*res))) == NULL) {
		fprintf(stderr, "datasync bench: out of memory\n");
		goto out;
	}
	r.n_machines = 1;
	bench_collect(&r, res, read ? "sqlite-read" : "sqlite-update");
	res->url = o->db;
	rc = bench_report(o, res);
out:
	ds_free(res);
	sqlite3_finalize(s);
	(void) sqlite3_close(db); /* statements are finalized */
	bench_run_fini(&r);
	return rc;
}
