/*
 * store_fault_test.c - fault injection (STYLE rule 34): fail the Nth
 * allocation, for N = 0, 1, 2, ... until the operation succeeds, and check
 * after every failure that the database is unchanged and (under ASan)
 * that nothing leaked. Two allocators are failed: ds_alloc (the store's
 * own results) and SQLite's (so writes fail midway inside SQLite, after
 * some of their statements ran, which only the per-write SAVEPOINT can
 * undo).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store_test_util.h"

/* --- SQLite's allocator, failing on demand (this test binary only) --- */

static sqlite3_mem_methods sft_orig;
/* sft_countdown: allocations left before failures; < 0 = off.
 * sft_persistent: keep failing after the first failure. */
static atomic_long sft_countdown = -1;
static atomic_bool sft_persistent;
static atomic_long sft_failed;

static bool
sft_should_fail(void)
{
	long v = atomic_load(&sft_countdown);

	while (v >= 0) {
		if (v == 0) {
			atomic_fetch_add(&sft_failed, 1);
			if (!atomic_load(&sft_persistent)) {
				atomic_store(&sft_countdown, -1);
			}
			return true;
		}
		if (atomic_compare_exchange_weak(&sft_countdown, &v, v - 1)) {
			return false;
		}
	}
	return false;
}

static void *
sft_malloc(int n)
{
	return sft_should_fail() ? NULL : sft_orig.xMalloc(n);
}

static void *
sft_realloc(void *p, int n)
{
	return sft_should_fail() ? NULL : sft_orig.xRealloc(p, n);
}

static void
sft_sqlite_fail_after(long n, bool persistent)
{
	atomic_store(&sft_persistent, persistent);
	atomic_store(&sft_failed, 0);
	atomic_store(&sft_countdown, n);
}

static void
sft_sqlite_fail_reset(void)
{
	atomic_store(&sft_countdown, -1);
}

/* --- ds_alloc failures around store_apply --- */

static const char *const sft_probe[] = {"new", "doc", "gone", "lk", "b"};
#define SFT_NPROBE (sizeof(sft_probe) / sizeof(sft_probe[0]))

/* sft_setup: a store with some history, a tombstone and a lock. */
static stt_fx *
sft_setup(bool file, store_token *lock_token)
{
	stt_fx *fx = stt_fx_new(NULL, file);
	store_write_result r;

	(void) stt_put(fx->c, "doc", "v1");
	(void) stt_put(fx->c, "doc", "v2");
	(void) stt_put(fx->c, "gone", "x");
	assert_int_equal(stt_apply0(fx->c,
	                     stt_delete("gone", STORE_PRECOND_IF_EXISTS, 0)),
	    STORE_OK);
	(void) stt_put(fx->c, "lk", "locked");
	assert_int_equal(stt_apply(fx->c, stt_lock("lk", "ann", 0), &r),
	    STORE_OK);
	*lock_token = r.token;
	store_write_result_fini(&r);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_rid(stt_update("b", "b1",
	                                      STORE_PRECOND_IF_ABSENT, 0),
	                         "rid-b")),
	    STORE_OK);
	return fx;
}

/* sft_zero: a result that holds nothing but its error. */
static void
sft_assert_error_only(const store_write_result *r, store_err code)
{
	store_record zero;

	memset(&zero, 0, sizeof(zero));
	assert_int_equal(r->error.code, code);
	assert_memory_equal(&r->record, &zero, sizeof(zero));
	assert_false(r->replayed);
}

/* sft_apply_until_ok applies w with ds_alloc failing at the Nth
 * allocation for N = 0, 1, ... until it returns something else than
 * STORE_ENOMEM, which must be want. Returns how many runs failed. */
static int
sft_apply_until_ok(stt_fx *fx, const store_write *w, store_err want)
{
	int failures = 0;

	for (long n = 0;; n++) {
		uint64_t before = stt_digest(fx->c, sft_probe, SFT_NPROBE);
		store_write_result r;
		store_err rv;

		memset(&r, 0, sizeof(r));
		ds_alloc_fail_after(n);
		rv = store_apply(fx->c, w, &r);
		ds_alloc_fail_reset();
		if (rv != STORE_ENOMEM) {
			assert_int_equal(rv, want);
			store_write_result_fini(&r);
			return failures;
		}
		failures++;
		sft_assert_error_only(&r, STORE_ENOMEM);
		assert_string_equal(store_reason(r.error.code),
		    "RESOURCE_EXHAUSTED");
		store_write_result_fini(&r);
		assert_true(stt_digest(fx->c, sft_probe, SFT_NPROBE) ==
		    before);
		assert_true(n < 1000);
	}
}

static void
test_alloc_failures_during_apply_change_nothing(void **state)
{
	store_token tok;
	store_token bogus;
	stt_fx *fx;
	struct {
		store_write w;
		store_err want;
	} cases[12];
	size_t n = 0;

	(void) state;
	fx = sft_setup(false, &tok);
	memset(&bogus, 0x33, sizeof(bogus));
	cases[n].w = stt_with_author(stt_update("new", "n1",
	                                 STORE_PRECOND_IF_ABSENT, 0),
	    "ann");
	cases[n++].want = STORE_OK;
	cases[n].w = stt_update("doc", "v3", STORE_PRECOND_IF_VERSION, 2);
	cases[n++].want = STORE_OK;
	cases[n].w = stt_update("doc", "stale", STORE_PRECOND_IF_VERSION, 1);
	cases[n++].want = STORE_ECONFLICT;
	cases[n].w = stt_update("lk", "x", STORE_PRECOND_UNCONDITIONAL, 0);
	cases[n++].want = STORE_ELOCKED;
	cases[n].w = stt_with_token(stt_update("lk", "mine",
	                                STORE_PRECOND_IF_VERSION, 1),
	    &tok);
	cases[n++].want = STORE_OK;
	cases[n].w = stt_with_token(stt_lock("lk", "ann", 0), &tok);
	cases[n++].want = STORE_OK; /* renew */
	cases[n].w = stt_lock("doc", "bob", 0);
	cases[n++].want = STORE_OK; /* acquire */
	cases[n].w = stt_with_rid(stt_update("b", "b1",
	                              STORE_PRECOND_IF_ABSENT, 0),
	    "rid-b");
	cases[n++].want = STORE_OK; /* replay */
	cases[n].w = stt_with_token(stt_delete("lk", STORE_PRECOND_IF_EXISTS,
	                                0),
	    &tok);
	cases[n++].want = STORE_OK;
	cases[n].w = stt_unlock("lk", &tok);
	cases[n++].want = STORE_OK;
	cases[n].w = stt_with_rid(stt_update("gone", "back",
	                              STORE_PRECOND_IF_ABSENT, 0),
	    "rid-gone");
	cases[n++].want = STORE_OK;
	cases[n].w = stt_with_token(stt_delete("new",
	                                STORE_PRECOND_IF_EXISTS, 0),
	    &bogus);
	cases[n++].want = STORE_ENOT_LOCKED;
	for (size_t i = 0; i < n; i++) {
		int failures = sft_apply_until_ok(fx, &cases[i].w,
		    cases[i].want);

		/* Every case that builds a result allocates. */
		if (cases[i].want != STORE_ENOT_LOCKED) {
			assert_true(failures > 0);
		}
	}
	/* The fencing counter did not move on the failed acquisitions. */
	{
		store_write_result r;

		assert_int_equal(stt_apply(fx->c, stt_lock("new", "c", 0), &r),
		    STORE_OK);
		assert_int_equal(r.record.lock.fencing_token, 3);
		store_write_result_fini(&r);
	}
	/* Lock changes take revisions too (DESIGN §9). */
	assert_int_equal(stt_revision(fx->c), 16);
	stt_fx_free(fx);
}

/* sft_batch: independent-looking but chained writes, so a failure in one
 * changes what the following ones see. */
static size_t
sft_batch(store_write *ws, const store_token *tok)
{
	size_t n = 0;

	ws[n++] = stt_update("new", "n1", STORE_PRECOND_IF_ABSENT, 0);
	ws[n++] = stt_update("new", "n2", STORE_PRECOND_IF_VERSION, 1);
	ws[n++] = stt_update("doc", "stale", STORE_PRECOND_IF_VERSION, 1);
	ws[n++] = stt_lock("doc", "bob", 0);
	ws[n++] = stt_with_token(stt_update("lk", "mine",
	                             STORE_PRECOND_IF_EXISTS, 0),
	    tok);
	ws[n++] = stt_with_rid(stt_update("b", "b1", STORE_PRECOND_IF_ABSENT,
	                           0),
	    "rid-b");
	ws[n++] = stt_delete("gone", STORE_PRECOND_IF_VERSION, 2);
	return n;
}

static void
test_alloc_failures_during_a_batch_fail_those_writes_alone(void **state)
{
	store_write ws[8];
	store_write_result rs[8];
	store_err want[8];
	store_token tok;
	size_t nw;
	int failing_runs = 0;

	(void) state;
	/* Outcomes without faults. */
	{
		stt_fx *fx = sft_setup(false, &tok);

		nw = sft_batch(ws, &tok);
		memset(rs, 0, sizeof(rs));
		assert_int_equal(store_apply_batch(fx->c, ws, nw, rs),
		    STORE_OK);
		for (size_t i = 0; i < nw; i++) {
			want[i] = rs[i].error.code;
			store_write_result_fini(&rs[i]);
		}
		stt_fx_free(fx);
	}
	assert_int_equal(want[0], STORE_OK);
	assert_int_equal(want[1], STORE_OK);
	assert_int_equal(want[2], STORE_ECONFLICT);
	assert_int_equal(want[6], STORE_ECONFLICT);

	for (long n = 0;; n++) {
		stt_fx *fx = sft_setup(false, &tok);
		stt_fx *ref;
		store_token reftok;
		size_t k = nw;

		nw = sft_batch(ws, &tok);
		memset(rs, 0, sizeof(rs));
		ds_alloc_fail_after(n);
		assert_int_equal(store_apply_batch(fx->c, ws, nw, rs),
		    STORE_OK);
		ds_alloc_fail_reset();
		/* Writes before the first failure succeed as without
		 * faults; from there on every allocation fails. */
		for (size_t i = 0; i < nw; i++) {
			if (rs[i].error.code == STORE_ENOMEM && k == nw) {
				k = i;
			}
			if (k < nw) {
				sft_assert_error_only(&rs[i], STORE_ENOMEM);
			} else {
				assert_int_equal(rs[i].error.code, want[i]);
			}
			store_write_result_fini(&rs[i]);
		}
		/* The state is exactly that of the writes before k. */
		ref = sft_setup(false, &reftok);
		nw = sft_batch(ws, &reftok);
		memset(rs, 0, sizeof(rs));
		assert_int_equal(store_apply_batch(ref->c, ws, k, rs),
		    STORE_OK);
		for (size_t i = 0; i < k; i++) {
			store_write_result_fini(&rs[i]);
		}
		assert_true(stt_digest(fx->c, sft_probe, SFT_NPROBE) ==
		    stt_digest(ref->c, sft_probe, SFT_NPROBE));
		stt_fx_free(ref);
		stt_fx_free(fx);
		if (k == nw) {
			break;
		}
		failing_runs++;
		assert_true(n < 1000);
	}
	assert_true(failing_runs > (int) nw);
}

static void
test_alloc_failures_during_reads_leave_outputs_untouched(void **state)
{
	store_token tok;
	stt_fx *fx = sft_setup(false, &tok);
	int failures = 0;

	(void) state;
	for (long n = 0;; n++) {
		store_record rec;
		store_record zero;
		store_err rv;

		memset(&rec, 0, sizeof(rec));
		memset(&zero, 0, sizeof(zero));
		ds_alloc_fail_after(n);
		rv = store_get(fx->c, "lk", 2, 0, &rec, NULL);
		ds_alloc_fail_reset();
		if (rv == STORE_OK) {
			assert_true(rec.locked);
			store_record_fini(&rec);
			break;
		}
		assert_int_equal(rv, STORE_ENOMEM);
		assert_memory_equal(&rec, &zero, sizeof(zero));
		failures++;
	}
	for (long n = 0;; n++) {
		store_record rec;
		store_err rv;

		memset(&rec, 0, sizeof(rec));
		ds_alloc_fail_after(n);
		rv = store_get(fx->c, "doc", 3, 1, &rec, NULL);
		ds_alloc_fail_reset();
		if (rv == STORE_OK) {
			stt_assert_value(&rec, "v1");
			store_record_fini(&rec);
			break;
		}
		assert_int_equal(rv, STORE_ENOMEM);
		assert_null(rec.key);
		failures++;
	}
	for (long n = 0;; n++) {
		store_list_req req;
		store_list_page page;
		store_err rv;

		memset(&req, 0, sizeof(req));
		memset(&page, 0, sizeof(page));
		req.page_size = 2;
		ds_alloc_fail_after(n);
		rv = store_list(fx->c, &req, &page, NULL);
		ds_alloc_fail_reset();
		if (rv == STORE_OK) {
			assert_int_equal(page.n, 2);
			assert_non_null(page.next_page_token);
			store_list_page_fini(&page);
			break;
		}
		assert_int_equal(rv, STORE_ENOMEM);
		assert_null(page.records);
		assert_null(page.next_page_token);
		failures++;
	}
	assert_true(failures > 5);
	stt_fx_free(fx);
}

static void
test_alloc_failures_during_open_leak_nothing(void **state)
{
	char dir[256];
	char path[300];
	store_config cfg;
	ds_fake_clock clock;

	(void) state;
	assert_int_equal(ds_test_tmpdir(dir, sizeof(dir)), 0);
	(void) snprintf(path, sizeof(path), "%s/open.db", dir);
	ds_fake_clock_init(&clock, STT_T0);
	store_config_default(&cfg);
	cfg.clock = &clock.base;
	for (int mem = 0; mem < 2; mem++) {
		cfg.path = mem ? ":memory:" : path;
		for (long n = 0;; n++) {
			store *s = NULL;
			store_conn *c = NULL;
			store_err rv;

			ds_alloc_fail_after(n);
			rv = store_open(&cfg, &s, NULL);
			if (rv == STORE_OK) {
				rv = store_conn_open(s, &c, NULL);
			}
			ds_alloc_fail_reset();
			if (rv == STORE_OK) {
				assert_int_equal(stt_put(c, "k", "v"), 1);
				store_conn_close(c);
				store_close(s);
				break;
			}
			assert_int_equal(rv, STORE_ENOMEM);
			assert_null(c);
			store_close(s);
			assert_true(n < 100);
		}
	}
	ds_test_rmdir(dir);
}

/* --- SQLite's allocator failing inside writes --- */

/* sft_sqlite_apply_until_ok: as sft_apply_until_ok, with SQLite's
 * allocations failing (once, or from the Nth on). The digest is read on
 * another connection, so a transaction left open by mistake would show
 * as a writer blocked later rather than be hidden. */
static void
sft_sqlite_apply_until_ok(stt_fx *fx, store_conn *observer,
    const store_write *w, store_err want, bool persistent, int *failures)
{
	for (long n = 0;; n++) {
		uint64_t before = stt_digest(observer, sft_probe, SFT_NPROBE);
		store_write_result r;
		store_err rv;

		memset(&r, 0, sizeof(r));
		sft_sqlite_fail_after(n, persistent);
		rv = store_apply(fx->c, w, &r);
		sft_sqlite_fail_reset();
		if (rv == want) {
			/* Applied: either nothing failed, or SQLite absorbed
			 * the failure (an allocation it can do without). */
			store_write_result_fini(&r);
			return;
		}
		(*failures)++;
		if (rv != STORE_ENOMEM && rv != STORE_EIO) {
			fail_msg("n=%ld: got %s (%s), want %s or an error", n,
			    store_reason(rv), r.error.message,
			    store_reason(want));
		}
		sft_assert_error_only(&r, rv);
		store_write_result_fini(&r);
		assert_true(stt_digest(observer, sft_probe, SFT_NPROBE) ==
		    before);
		assert_true(n < 20000);
	}
}

static void
test_sqlite_alloc_failures_mid_write_change_nothing(void **state)
{
	store_token tok;
	int failures = 0;

	(void) state;
	for (int persistent = 0; persistent < 2; persistent++) {
		stt_fx *fx = sft_setup(true, &tok);
		store_conn *observer;
		store_write ws[4];

		assert_int_equal(store_conn_open(fx->s, &observer, NULL),
		    STORE_OK);
		ws[0] = stt_update("new", "n1", STORE_PRECOND_IF_ABSENT, 0);
		ws[1] = stt_with_rid(stt_update("doc", "v3",
		                         STORE_PRECOND_IF_VERSION, 2),
		    "rid-doc");
		ws[2] = stt_with_token(stt_delete("lk",
		                           STORE_PRECOND_IF_EXISTS, 0),
		    &tok);
		ws[3] = stt_lock("doc", "bob", 0);
		for (size_t i = 0; i < 4; i++) {
			sft_sqlite_apply_until_ok(fx, observer, &ws[i],
			    STORE_OK, persistent != 0, &failures);
		}
		/* Everything applied exactly once, and the writer's
		 * connection is healthy. */
		assert_int_equal(stt_revision(observer), 11);
		assert_int_equal(stt_version(observer, "doc"), 3);
		assert_int_equal(stt_version(fx->c, "new"), 1);
		assert_int_equal(stt_put(fx->c, "after", "x"), 1);
		assert_int_equal(store_integrity_check(observer, NULL),
		    STORE_OK);
		store_conn_close(observer);
		stt_fx_free(fx);
	}
	printf("SQLite allocation failures injected: %d failed writes, "
	       "each changed nothing\n",
	    failures);
	assert_true(failures > 10);
}

/* A batch first runs without savepoints; a write that fails after
 * changing something makes the store roll the batch back and run it again
 * with a savepoint per write. So an allocation failure ends one of three
 * ways: the whole batch fails with nothing applied (SQLite rolled the
 * transaction back itself), one write fails alone, or the rerun applies
 * everything. All three must leave exactly the committed writes. */
static void
test_sqlite_alloc_failures_in_a_batch_fail_writes_or_the_batch(void **state)
{
	store_token tok;
	int runs = 0;
	int batch_failed = 0;
	int mixed = 0;
	int recovered = 0;

	(void) state;
	for (long n = 0;; n += 3) {
		stt_fx *fx = sft_setup(true, &tok);
		store_conn *observer;
		store_write ws[3];
		store_write_result rs[3];
		uint64_t rev0;
		uint64_t applied = 0;
		store_err rv;

		assert_int_equal(store_conn_open(fx->s, &observer, NULL),
		    STORE_OK);
		rev0 = stt_revision(observer);
		/* Independent writes: each one's effect is checked alone. */
		ws[0] = stt_update("new", "n1", STORE_PRECOND_IF_ABSENT, 0);
		ws[1] = stt_update("doc", "v3", STORE_PRECOND_IF_VERSION, 2);
		ws[2] = stt_update("b", "b2", STORE_PRECOND_IF_VERSION, 1);
		memset(rs, 0, sizeof(rs));
		sft_sqlite_fail_after(n, false);
		rv = store_apply_batch(fx->c, ws, 3, rs);
		sft_sqlite_fail_reset();
		if (rv != STORE_OK) {
			batch_failed++;
			/* The whole batch failed: nothing applied. */
			for (size_t i = 0; i < 3; i++) {
				sft_assert_error_only(&rs[i], rv);
			}
		}
		for (size_t i = 0; i < 3; i++) {
			uint64_t want_v = (i == 0 ? 0 : i == 1 ? 2 : 1);

			if (rs[i].error.code == STORE_OK) {
				want_v++;
				applied++;
			} else {
				assert_true(rs[i].error.code == STORE_ENOMEM ||
				    rs[i].error.code == STORE_EIO);
				sft_assert_error_only(&rs[i],
				    rs[i].error.code);
			}
			assert_int_equal(stt_version(observer, ws[i].key),
			    want_v);
			store_write_result_fini(&rs[i]);
		}
		assert_int_equal(stt_revision(observer), rev0 + applied);
		if (rv == STORE_OK && applied > 0 && applied < 3) {
			mixed++;
		}
		if (rv == STORE_OK && applied == 3 &&
		    atomic_load(&sft_failed) > 0) {
			recovered++;
		}
		assert_int_equal(stt_put(fx->c, "after", "x"), 1);
		store_conn_close(observer);
		stt_fx_free(fx);
		runs++;
		if (applied == 3 && atomic_load(&sft_failed) == 0) {
			break;
		}
		assert_true(n < 20000);
	}
	printf("SQLite allocation failures in batches: %d runs, %d whole "
	       "batches failed, %d committed with some writes failed "
	       "alone, %d committed everything after a rerun\n",
	    runs, batch_failed, mixed, recovered);
	/* Failures were injected and the batch went on past them. */
	assert_true(mixed + recovered > 0);
}

/* sft_trigger installs, through a separate raw connection (the way a
 * corrupt or hostile file would behave), triggers that make the LAST
 * statement of a write fail with a constraint error: the request-id
 * insert for ids starting "boom". The transaction survives such an error,
 * the write's row changes are already made, and only the write's
 * SAVEPOINT can undo them. */
static void
sft_trigger(const char *path)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
	                     "CREATE TRIGGER boom0 BEFORE INSERT ON requests0 "
	                     "WHEN substr(NEW.id, 1, 4) = x'626f6f6d' BEGIN "
	                     "SELECT RAISE(ABORT, 'injected failure'); END;"
	                     "CREATE TRIGGER boom1 BEFORE INSERT ON requests1 "
	                     "WHEN substr(NEW.id, 1, 4) = x'626f6f6d' BEGIN "
	                     "SELECT RAISE(ABORT, 'injected failure'); END;",
	                     NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
}

static void
test_a_write_failing_after_its_changes_is_rolled_back_alone(void **state)
{
	store_token tok;
	stt_fx *fx = sft_setup(true, &tok);
	store_write ws[6];
	store_write_result rs[6];
	uint64_t before;

	(void) state;
	sft_trigger(fx->path);
	before = stt_digest(fx->c, sft_probe, SFT_NPROBE);
	/* Alone: nothing changes, the error is INTERNAL. */
	{
		store_write_result r;

		assert_int_equal(stt_apply(fx->c,
		                     stt_with_rid(stt_update("doc", "v3",
		                                      STORE_PRECOND_IF_VERSION,
		                                      2),
		                         "boom-1"),
		                     &r),
		    STORE_EIO);
		sft_assert_error_only(&r, STORE_EIO);
		assert_string_equal(store_reason(r.error.code), "INTERNAL");
		store_write_result_fini(&r);
		assert_true(stt_digest(fx->c, sft_probe, SFT_NPROBE) ==
		    before);
	}
	/* In a batch: the failing writes are undone, the others commit,
	 * and the counters they would have taken are not skipped. */
	ws[0] = stt_update("doc", "v3", STORE_PRECOND_IF_VERSION, 2);
	ws[1] = stt_with_rid(stt_update("new", "n1", STORE_PRECOND_IF_ABSENT,
	                         0),
	    "boom-2");
	ws[2] = stt_with_rid(stt_lock("gone", "bob", 0), "boom-3");
	ws[3] = stt_update("new", "n1", STORE_PRECOND_IF_ABSENT, 0);
	ws[4] = stt_with_rid(stt_delete("doc", STORE_PRECOND_IF_VERSION, 3),
	    "boom-4");
	ws[5] = stt_lock("doc", "bob", 0);
	memset(rs, 0, sizeof(rs));
	assert_int_equal(store_apply_batch(fx->c, ws, 6, rs), STORE_OK);
	assert_int_equal(rs[0].error.code, STORE_OK);
	assert_int_equal(rs[0].record.revision, 8);
	sft_assert_error_only(&rs[1], STORE_EIO);
	sft_assert_error_only(&rs[2], STORE_EIO);
	assert_int_equal(rs[3].error.code, STORE_OK);
	assert_int_equal(rs[3].record.version, 1);
	assert_int_equal(rs[3].record.revision, 9);
	sft_assert_error_only(&rs[4], STORE_EIO);
	assert_int_equal(rs[5].error.code, STORE_OK);
	assert_int_equal(rs[5].record.lock.fencing_token, 2);
	assert_int_equal(rs[5].record.revision, 10);
	for (size_t i = 0; i < 6; i++) {
		store_write_result_fini(&rs[i]);
	}
	assert_int_equal(stt_revision(fx->c), 10);
	assert_int_equal(stt_version(fx->c, "doc"), 3);
	/* "gone" was never locked: anyone can lock it. */
	{
		store_write_result r;

		assert_int_equal(stt_apply(fx->c, stt_lock("gone", "carl", 0),
		                     &r),
		    STORE_OK);
		assert_int_equal(r.record.lock.fencing_token, 3);
		store_write_result_fini(&r);
	}
	stt_fx_free(fx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_alloc_failures_during_apply_change_nothing),
	    cmocka_unit_test(
	        test_alloc_failures_during_a_batch_fail_those_writes_alone),
	    cmocka_unit_test(
	        test_alloc_failures_during_reads_leave_outputs_untouched),
	    cmocka_unit_test(test_alloc_failures_during_open_leak_nothing),
	    cmocka_unit_test(
	        test_sqlite_alloc_failures_mid_write_change_nothing),
	    cmocka_unit_test(
	        test_sqlite_alloc_failures_in_a_batch_fail_writes_or_the_batch),
	    cmocka_unit_test(
	        test_a_write_failing_after_its_changes_is_rolled_back_alone),
	};
	static sqlite3_mem_methods wrap;

	/* Must precede every other SQLite call in the process. */
	if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &sft_orig) != SQLITE_OK) {
		return 1;
	}
	wrap = sft_orig;
	wrap.xMalloc = sft_malloc;
	wrap.xRealloc = sft_realloc;
	if (sqlite3_config(SQLITE_CONFIG_MALLOC, &wrap) != SQLITE_OK) {
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
