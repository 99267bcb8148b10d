/*
 * store_changes_test.c - the change log of DESIGN §9: every change takes
 * the next revision and logs exactly one event in its transaction
 * (Update -> PUT, Delete -> DELETE, Lock and renewal -> LOCK, Unlock ->
 * UNLOCK, a swept lease -> EXPIRE); replays and refusals log nothing;
 * store_changes_read by key, prefix or everything, with limit, more and
 * values; the sweep; compaction; the log survives a reopen; store_get_rev.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store_test_util.h"

/* sct_read reads the log: key (prefix when prefix), after, limit. */
static store_err
sct_read(store_conn *c, const char *key, bool prefix, uint64_t after,
    size_t limit, bool with_values, store_changes_page *page,
    store_error *err)
{
	store_changes_req req;

	memset(&req, 0, sizeof(req));
	memset(page, 0, sizeof(*page));
	req.key = key;
	req.key_len = key != NULL ? strlen(key) : 0;
	req.prefix = prefix;
	req.after = after;
	req.limit = limit;
	req.with_values = with_values;
	return store_changes_read(c, &req, page, err);
}

/* sct_all reads every event after `after` (at most 1000). */
static void
sct_all(store_conn *c, uint64_t after, store_changes_page *page)
{
	assert_int_equal(sct_read(c, "", true, after, 1000, false, page, NULL),
	    STORE_OK);
	assert_false(page->more);
}

/* sct_count is the number of events in the whole log after 0. */
static size_t
sct_count(store_conn *c)
{
	store_changes_page page;
	size_t n;

	sct_all(c, 0, &page);
	n = page.n;
	store_changes_page_fini(&page);
	return n;
}

static void
sct_assert_event(const store_event *ev, store_event_type type,
    const char *key, uint64_t version, uint64_t revision)
{
	assert_int_equal(ev->type, type);
	assert_string_equal(ev->record.key, key);
	assert_int_equal(ev->record.key_len, strlen(key));
	assert_int_equal(ev->record.version, version);
	assert_int_equal(ev->revision, revision);
	assert_int_equal(ev->record.revision, revision);
}

/* sct_assert_gapless: events are revisions first, first+1, ... */
static void
sct_assert_gapless(const store_changes_page *page, uint64_t first)
{
	for (size_t i = 0; i < page->n; i++) {
		assert_int_equal(page->events[i].revision, first + i);
	}
}

static void
test_every_change_logs_one_event(void **state)
{
	stt_fx *fx = *state;
	store_write_result r;
	store_write_result lk;
	store_write_result gh;
	store_changes_page page;
	const store_event *ev;

	/* 1, 2: two Updates. */
	assert_int_equal(stt_apply(fx->c,
	                     stt_with_author(stt_update("doc", "v1",
	                                         STORE_PRECOND_IF_ABSENT, 0),
	                         "ann"),
	                     &r),
	    STORE_OK);
	store_write_result_fini(&r);
	assert_int_equal(stt_put(fx->c, "doc", "v2"), 2);
	/* 3: Lock; 4: renew; 5: the holder's Update; 6: Unlock. */
	assert_int_equal(stt_apply(fx->c, stt_lock("doc", "bob", 10000), &lk),
	    STORE_OK);
	assert_int_equal(lk.record.revision, 3);
	assert_int_equal(stt_apply(fx->c,
	                     stt_with_token(stt_lock("doc", "bob", 20000),
	                         &lk.token),
	                     &r),
	    STORE_OK);
	assert_true(r.renewed);
	assert_int_equal(r.record.revision, 4);
	store_write_result_fini(&r);
	assert_int_equal(stt_apply(fx->c,
	                     stt_with_token(stt_update("doc", "v3",
	                                        STORE_PRECOND_IF_VERSION, 2),
	                         &lk.token),
	                     &r),
	    STORE_OK);
	assert_int_equal(r.record.revision, 5);
	store_write_result_fini(&r);
	assert_int_equal(stt_apply(fx->c, stt_unlock("doc", &lk.token), &r),
	    STORE_OK);
	assert_int_equal(r.record.revision, 6);
	store_write_result_fini(&r);
	/* 7: Delete. */
	assert_int_equal(stt_apply(fx->c,
	                     stt_delete("doc", STORE_PRECOND_IF_VERSION, 3),
	                     &r),
	    STORE_OK);
	assert_int_equal(r.record.revision, 7);
	store_write_result_fini(&r);
	/* 8, 9: Lock and Unlock of a key never written. */
	assert_int_equal(stt_apply(fx->c, stt_lock("ghost", "eve", 0), &gh),
	    STORE_OK);
	assert_int_equal(gh.record.revision, 8);
	assert_int_equal(stt_apply0(fx->c, stt_unlock("ghost", &gh.token)),
	    STORE_OK);
	assert_int_equal(stt_revision(fx->c), 9);

	sct_all(fx->c, 0, &page);
	assert_int_equal(page.n, 9);
	assert_int_equal(page.revision, 9);
	assert_int_equal(page.compact_revision, 0);
	sct_assert_gapless(&page, 1);
	ev = page.events;
	sct_assert_event(&ev[0], STORE_EV_PUT, "doc", 1, 1);
	assert_string_equal(ev[0].record.updated_by, "ann");
	assert_string_equal(ev[0].record.content_type, "text/plain");
	assert_int_equal(ev[0].record.created_at_ms, STT_T0);
	assert_false(ev[0].record.locked);
	assert_false(ev[0].record.deleted);
	assert_null(ev[0].record.value);
	assert_false(ev[0].value_omitted);
	sct_assert_event(&ev[1], STORE_EV_PUT, "doc", 2, 2);
	sct_assert_event(&ev[2], STORE_EV_LOCK, "doc", 2, 3);
	assert_true(ev[2].record.locked);
	assert_string_equal(ev[2].record.lock.owner, "bob");
	assert_int_equal(ev[2].record.lock.fencing_token, 1);
	assert_int_equal(ev[2].record.lock.expires_at_ms, STT_T0 + 10000);
	sct_assert_event(&ev[3], STORE_EV_LOCK, "doc", 2, 4);
	assert_int_equal(ev[3].record.lock.expires_at_ms, STT_T0 + 20000);
	assert_int_equal(ev[3].record.lock.fencing_token, 1);
	sct_assert_event(&ev[4], STORE_EV_PUT, "doc", 3, 5);
	assert_true(ev[4].record.locked); /* written by the holder */
	sct_assert_event(&ev[5], STORE_EV_UNLOCK, "doc", 3, 6);
	assert_false(ev[5].record.locked);
	sct_assert_event(&ev[6], STORE_EV_DELETE, "doc", 4, 7);
	assert_true(ev[6].record.deleted);
	sct_assert_event(&ev[7], STORE_EV_LOCK, "ghost", 0, 8);
	assert_true(ev[7].record.locked);
	assert_false(ev[7].record.deleted);
	sct_assert_event(&ev[8], STORE_EV_UNLOCK, "ghost", 0, 9);
	store_changes_page_fini(&page);
	store_changes_page_fini(&page); /* finished twice: a no-op */
	store_write_result_fini(&lk);
	store_write_result_fini(&gh);
}

static void
test_replays_and_refusals_log_nothing(void **state)
{
	stt_fx *fx = *state;
	store_write put = stt_with_rid(
	    stt_update("doc", "v1", STORE_PRECOND_IF_ABSENT, 0), "rid-1");
	store_write_result lk;
	store_write_result r;
	store_token bogus;
	store_write lock;

	memset(&bogus, 0x5a, sizeof(bogus));
	assert_int_equal(stt_apply0(fx->c, put), STORE_OK);
	lock = stt_with_rid(stt_lock("doc", "ann", 0), "rid-lock");
	assert_int_equal(stt_apply(fx->c, lock, &lk), STORE_OK);
	assert_int_equal(sct_count(fx->c), 2);

	/* Replays. */
	assert_int_equal(stt_apply(fx->c, put, &r), STORE_OK);
	assert_true(r.replayed);
	assert_int_equal(r.record.revision, 1);
	store_write_result_fini(&r);
	assert_int_equal(stt_apply(fx->c, lock, &r), STORE_OK);
	assert_true(r.replayed);
	assert_int_equal(r.record.revision, 2);
	store_write_result_fini(&r);
	/* Refusals of every kind. */
	assert_int_equal(stt_apply0(fx->c,
	                     stt_update("doc", "x", STORE_PRECOND_IF_VERSION,
	                         7)),
	    STORE_ELOCKED);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_token(stt_update("doc", "x",
	                                        STORE_PRECOND_IF_VERSION, 7),
	                         &lk.token)),
	    STORE_ECONFLICT);
	assert_int_equal(stt_apply0(fx->c, stt_lock("doc", "bob", 0)),
	    STORE_ELOCKED);
	assert_int_equal(stt_apply0(fx->c, stt_unlock("doc", &bogus)),
	    STORE_ETOKEN_MISMATCH);
	assert_int_equal(stt_apply0(fx->c, stt_unlock("other", &bogus)),
	    STORE_ENOT_LOCKED);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_delete("other", STORE_PRECOND_IF_EXISTS, 0)),
	    STORE_ECONFLICT);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_update("other", "x", STORE_PRECOND_NONE, 0)),
	    STORE_EPRECONDITION_REQUIRED);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_rid(stt_update("doc", "other",
	                                      STORE_PRECOND_UNCONDITIONAL, 0),
	                         "rid-1")),
	    STORE_EREQUEST_ID_REUSED);
	assert_int_equal(stt_revision(fx->c), 2);
	assert_int_equal(sct_count(fx->c), 2);
	store_write_result_fini(&lk);
}

static void
test_a_batch_logs_its_changes_in_order(void **state)
{
	stt_fx *fx = *state;
	store_write ws[7];
	store_write_result rs[7];
	store_changes_page page;

	(void) stt_put(fx->c, "a", "a1"); /* rev 1 */
	ws[0] = stt_update("a", "a2", STORE_PRECOND_IF_VERSION, 1);
	ws[1] = stt_update("a", "stale", STORE_PRECOND_IF_VERSION, 1);
	ws[2] = stt_lock("b", "ann", 0);
	ws[3] = stt_with_rid(stt_update("c", "c1", STORE_PRECOND_IF_ABSENT, 0),
	    "r1");
	ws[4] = ws[3]; /* replayed inside the batch */
	ws[5] = stt_delete("a", STORE_PRECOND_IF_VERSION, 2);
	ws[6] = stt_update("", "bad", STORE_PRECOND_UNCONDITIONAL, 0);
	memset(rs, 0, sizeof(rs));
	assert_int_equal(store_apply_batch(fx->c, ws, 7, rs), STORE_OK);
	assert_int_equal(rs[1].error.code, STORE_ECONFLICT);
	assert_true(rs[4].replayed);
	assert_int_equal(rs[6].error.code, STORE_EINVAL);
	for (size_t i = 0; i < 7; i++) {
		store_write_result_fini(&rs[i]);
	}
	sct_all(fx->c, 1, &page);
	assert_int_equal(page.n, 4);
	sct_assert_gapless(&page, 2);
	sct_assert_event(&page.events[0], STORE_EV_PUT, "a", 2, 2);
	sct_assert_event(&page.events[1], STORE_EV_LOCK, "b", 0, 3);
	sct_assert_event(&page.events[2], STORE_EV_PUT, "c", 1, 4);
	sct_assert_event(&page.events[3], STORE_EV_DELETE, "a", 3, 5);
	assert_int_equal(page.revision, 5);
	store_changes_page_fini(&page);
}

static void
test_reads_by_key_prefix_or_everything(void **state)
{
	stt_fx *fx = *state;
	static const char *const keys[] = {"a", "a/1", "b/1", "a/2", "a/1",
	    "ab", "b"};
	store_changes_page page;

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		(void) stt_put(fx->c, keys[i], "x"); /* rev i + 1 */
	}
	/* One key: its events only, not those of keys it prefixes. */
	assert_int_equal(sct_read(fx->c, "a", false, 0, 100, false, &page,
	                     NULL),
	    STORE_OK);
	assert_int_equal(page.n, 1);
	sct_assert_event(&page.events[0], STORE_EV_PUT, "a", 1, 1);
	store_changes_page_fini(&page);
	assert_int_equal(sct_read(fx->c, "a/1", false, 0, 100, false, &page,
	                     NULL),
	    STORE_OK);
	assert_int_equal(page.n, 2);
	sct_assert_event(&page.events[0], STORE_EV_PUT, "a/1", 1, 2);
	sct_assert_event(&page.events[1], STORE_EV_PUT, "a/1", 2, 5);
	store_changes_page_fini(&page);
	/* ...after a cursor. */
	assert_int_equal(sct_read(fx->c, "a/1", false, 2, 100, false, &page,
	                     NULL),
	    STORE_OK);
	assert_int_equal(page.n, 1);
	assert_int_equal(page.events[0].revision, 5);
	store_changes_page_fini(&page);
	/* A prefix: bytes, in revision order. */
	assert_int_equal(sct_read(fx->c, "a/", true, 0, 100, false, &page,
	                     NULL),
	    STORE_OK);
	assert_int_equal(page.n, 3);
	assert_int_equal(page.events[0].revision, 2);
	assert_int_equal(page.events[1].revision, 4);
	assert_int_equal(page.events[2].revision, 5);
	store_changes_page_fini(&page);
	assert_int_equal(sct_read(fx->c, "a", true, 1, 100, false, &page,
	                     NULL),
	    STORE_OK);
	assert_int_equal(page.n, 4); /* a/1, a/2, a/1, ab */
	assert_string_equal(page.events[3].record.key, "ab");
	store_changes_page_fini(&page);
	/* Everything. */
	assert_int_equal(sct_read(fx->c, NULL, true, 0, 100, false, &page,
	                     NULL),
	    STORE_OK);
	assert_int_equal(page.n, 7);
	sct_assert_gapless(&page, 1);
	store_changes_page_fini(&page);
	/* No match, and a cursor past the head: no events, no error. */
	assert_int_equal(sct_read(fx->c, "zz", false, 0, 100, false, &page,
	                     NULL),
	    STORE_OK);
	assert_int_equal(page.n, 0);
	assert_null(page.events);
	store_changes_page_fini(&page);
	assert_int_equal(sct_read(fx->c, "", true, 100, 100, false, &page,
	                     NULL),
	    STORE_OK);
	assert_int_equal(page.n, 0);
	assert_int_equal(page.revision, 7);
	store_changes_page_fini(&page);
}

static void
test_limit_pages_with_more(void **state)
{
	stt_fx *fx = *state;
	store_changes_page page;
	store_error err;
	uint64_t after = 0;
	size_t total = 0;
	int pages = 0;

	for (int i = 0; i < 10; i++) {
		(void) stt_put(fx->c, i % 2 ? "odd" : "even", "x");
	}
	for (;;) {
		assert_int_equal(sct_read(fx->c, "", true, after, 3, false,
		                     &page, NULL),
		    STORE_OK);
		pages++;
		assert_true(page.n <= 3);
		sct_assert_gapless(&page, after + 1);
		total += page.n;
		if (page.n > 0) {
			after = page.events[page.n - 1].revision;
		}
		if (!page.more) {
			store_changes_page_fini(&page);
			break;
		}
		assert_int_equal(page.n, 3);
		store_changes_page_fini(&page);
	}
	assert_int_equal(total, 10);
	assert_int_equal(pages, 4);
	/* Exactly the limit left: no more. */
	assert_int_equal(sct_read(fx->c, "odd", false, 4, 3, false, &page,
	                     NULL),
	    STORE_OK);
	assert_int_equal(page.n, 3);
	assert_false(page.more);
	store_changes_page_fini(&page);
	assert_int_equal(sct_read(fx->c, "odd", false, 4, 2, false, &page,
	                     NULL),
	    STORE_OK);
	assert_int_equal(page.n, 2);
	assert_true(page.more);
	store_changes_page_fini(&page);

	/* Bad requests name their field. */
	assert_int_equal(sct_read(fx->c, "", true, 0, 0, false, &page, &err),
	    STORE_EINVAL);
	assert_string_equal(err.field, "limit");
	assert_non_null(strstr(err.message, "STORE_CHANGES_LIMIT_MAX"));
	assert_int_equal(sct_read(fx->c, "", true, 0,
	                     STORE_CHANGES_LIMIT_MAX + 1, false, &page, &err),
	    STORE_EINVAL);
	assert_string_equal(err.field, "limit");
	assert_int_equal(sct_read(fx->c, "", true, 0, STORE_CHANGES_LIMIT_MAX,
	                     false, &page, &err),
	    STORE_OK);
	store_changes_page_fini(&page);
	assert_int_equal(sct_read(fx->c, "", false, 0, 10, false, &page, &err),
	    STORE_EINVAL);
	assert_string_equal(err.field, "key");
	assert_int_equal(sct_read(fx->c, "a\nb", false, 0, 10, false, &page,
	                     &err),
	    STORE_EINVAL);
	assert_string_equal(err.field, "key");
	assert_int_equal(sct_read(fx->c, "\xff", true, 0, 10, false, &page,
	                     &err),
	    STORE_EINVAL);
	assert_string_equal(err.field, "prefix");
}

static void
test_with_values_reads_the_history(void **state)
{
	store_limits lim = store_limits_default();
	store_changes_page page;
	store_write_result lk;
	stt_fx *fx;

	(void) state;
	lim.history = 2;
	fx = stt_fx_new(&lim, false);
	(void) stt_put(fx->c, "doc", "v1");                 /* 1 */
	(void) stt_put(fx->c, "doc", "v2");                 /* 2 */
	(void) stt_put(fx->c, "doc", "v3");                 /* 3: v1 trimmed */
	assert_int_equal(stt_apply(fx->c, stt_lock("doc", "ann", 0), &lk),
	    STORE_OK);                                      /* 4 */
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_token(stt_delete("doc",
	                                        STORE_PRECOND_IF_EXISTS, 0),
	                         &lk.token)),
	    STORE_OK);                                      /* 5 */
	(void) stt_put(fx->c, "empty", "");                 /* 6 */

	assert_int_equal(sct_read(fx->c, "", true, 0, 100, true, &page, NULL),
	    STORE_OK);
	assert_int_equal(page.n, 6);
	/* The tombstone (version 4) keeps versions 3 and 4 only. */
	for (size_t i = 0; i < 2; i++) {
		assert_null(page.events[i].record.value);
		assert_true(page.events[i].value_omitted);
	}
	stt_assert_value(&page.events[2].record, "v3");
	assert_false(page.events[2].value_omitted);
	/* A lock change shows the value of the version it locked. */
	assert_int_equal(page.events[3].type, STORE_EV_LOCK);
	stt_assert_value(&page.events[3].record, "v3");
	/* A deletion has no value to omit. */
	assert_int_equal(page.events[4].type, STORE_EV_DELETE);
	assert_null(page.events[4].record.value);
	assert_false(page.events[4].value_omitted);
	/* An empty value is a value. */
	assert_int_equal(page.events[5].record.value_len, 0);
	assert_false(page.events[5].value_omitted);
	store_changes_page_fini(&page);

	/* Without with_values nothing is read or omitted. */
	assert_int_equal(sct_read(fx->c, "doc", false, 0, 100, false, &page,
	                     NULL),
	    STORE_OK);
	for (size_t i = 0; i < page.n; i++) {
		assert_null(page.events[i].record.value);
		assert_false(page.events[i].value_omitted);
	}
	store_changes_page_fini(&page);
	store_write_result_fini(&lk);
	stt_fx_free(fx);
}

static void
test_value_bytes_bound_a_page(void **state)
{
	stt_fx *fx = *state;
	store_changes_req req;
	store_changes_page page;

	for (int i = 0; i < 5; i++) {
		(void) stt_put(fx->c, "big", "0123456789");  /* 1..5 */
	}
	memset(&req, 0, sizeof(req));
	memset(&page, 0, sizeof(page));
	req.key = "big";
	req.key_len = 3;
	req.limit = 100;
	req.with_values = true;
	req.max_value_bytes = 25;
	assert_int_equal(store_changes_read(fx->c, &req, &page, NULL), STORE_OK);
	/* 10 + 10 < 25, the third brings it to 30: it is the last. */
	assert_int_equal(page.n, 3);
	assert_true(page.more);
	sct_assert_gapless(&page, 1);
	store_changes_page_fini(&page);
	/* The rest, from where the page ended. */
	req.after = 3;
	assert_int_equal(store_changes_read(fx->c, &req, &page, NULL), STORE_OK);
	assert_int_equal(page.n, 2);
	assert_false(page.more);
	store_changes_page_fini(&page);
	/* Without values the bound does not apply. */
	req.after = 0;
	req.with_values = false;
	assert_int_equal(store_changes_read(fx->c, &req, &page, NULL), STORE_OK);
	assert_int_equal(page.n, 5);
	store_changes_page_fini(&page);
}

/* sct_rows counts the head rows of key in the file (records). */
static int
sct_rows(const char *path, const char *key)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int n;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
	                     "SELECT count(*) FROM records"
	                     " WHERE key = CAST(?1 AS BLOB)",
	                     -1, &st, NULL),
	    SQLITE_OK);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

static void
test_sweep_logs_expiries(void **state)
{
	stt_fx *fx = *state;
	store_write_result doc;
	store_write_result ghost;
	store_write_result later;
	store_changes_page page;
	store_record rec;
	store_error err;
	int64_t next;
	size_t n;

	(void) stt_put(fx->c, "doc", "v1"); /* 1 */
	assert_int_equal(stt_apply(fx->c, stt_lock("doc", "ann", 1000), &doc),
	    STORE_OK);                      /* 2 */
	assert_int_equal(stt_apply(fx->c, stt_lock("ghost", "bob", 2000),
	                     &ghost),
	    STORE_OK);                      /* 3 */
	assert_int_equal(stt_apply(fx->c, stt_lock("later", "cat", 60000),
	                     &later),
	    STORE_OK);                      /* 4 */
	assert_int_equal(sct_rows(fx->path, "ghost"), 1);

	/* Nothing expired yet. */
	assert_int_equal(store_sweep_expired(fx->c, 100, &n, &next, NULL),
	    STORE_OK);
	assert_int_equal(n, 0);
	assert_int_equal(next, STT_T0 + 1000);
	assert_int_equal(stt_revision(fx->c), 4);

	/* At expiry: doc's lease is swept. */
	ds_fake_clock_advance(&fx->clock, 1000);
	assert_int_equal(store_sweep_expired(fx->c, 100, &n, &next, NULL),
	    STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(next, STT_T0 + 2000);
	assert_int_equal(stt_revision(fx->c), 5);
	assert_int_equal(sct_read(fx->c, "doc", false, 2, 10, true, &page,
	                     NULL),
	    STORE_OK);
	assert_int_equal(page.n, 1);
	sct_assert_event(&page.events[0], STORE_EV_EXPIRE, "doc", 1, 5);
	assert_false(page.events[0].record.locked);
	stt_assert_value(&page.events[0].record, "v1");
	store_changes_page_fini(&page);
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(store_get(fx->c, "doc", 3, 0, &rec, NULL), STORE_OK);
	assert_false(rec.locked);
	assert_int_equal(rec.revision, 5);
	store_record_fini(&rec);
	/* Its former holder is still told its lease expired. */
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_token(stt_update("doc", "late",
	                                        STORE_PRECOND_IF_VERSION, 1),
	                         &doc.token)),
	    STORE_ELOCK_EXPIRED);
	/* Even if the clock steps back, a swept lease stays expired. */
	ds_fake_clock_advance(&fx->clock, -500);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_token(stt_update("doc", "late",
	                                        STORE_PRECOND_IF_VERSION, 1),
	                         &doc.token)),
	    STORE_ELOCK_EXPIRED);
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(store_get(fx->c, "doc", 3, 0, &rec, NULL), STORE_OK);
	assert_false(rec.locked);
	store_record_fini(&rec);
	ds_fake_clock_advance(&fx->clock, 500);

	/* The placeholder of a key never written goes with its lease. */
	ds_fake_clock_advance(&fx->clock, 5000);
	assert_int_equal(store_sweep_expired(fx->c, 100, &n, &next, NULL),
	    STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(next, STT_T0 + 60000);
	assert_int_equal(sct_rows(fx->path, "ghost"), 0);
	assert_int_equal(sct_read(fx->c, "ghost", false, 0, 10, true, &page,
	                     NULL),
	    STORE_OK);
	assert_int_equal(page.n, 2);
	sct_assert_event(&page.events[1], STORE_EV_EXPIRE, "ghost", 0, 6);
	assert_false(page.events[1].record.locked);
	assert_false(page.events[1].record.deleted);
	assert_false(page.events[1].value_omitted);
	store_changes_page_fini(&page);
	/* Swept once only. */
	assert_int_equal(store_sweep_expired(fx->c, 100, &n, &next, NULL),
	    STORE_OK);
	assert_int_equal(n, 0);
	assert_int_equal(stt_revision(fx->c), 6);
	/* The key is free for anyone, the counters go on. */
	assert_int_equal(stt_apply0(fx->c,
	                     stt_update("ghost", "g", STORE_PRECOND_IF_ABSENT,
	                         0)),
	    STORE_OK); /* 7 */

	/* max bounds one sweep; next then says "now". */
	assert_int_equal(stt_apply0(fx->c, stt_lock("doc", "dan", 1000)),
	    STORE_OK); /* 8 */
	ds_fake_clock_advance(&fx->clock, 60000);
	assert_int_equal(store_sweep_expired(fx->c, 1, &n, &next, NULL),
	    STORE_OK);
	assert_int_equal(n, 1);
	assert_true(next <= store_now_ms(fx->s));
	assert_int_equal(store_sweep_expired(fx->c, 1, &n, &next, NULL),
	    STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(next, INT64_MAX);
	assert_int_equal(stt_revision(fx->c), 10);
	sct_all(fx->c, 0, &page);
	assert_int_equal(page.n, 10);
	sct_assert_gapless(&page, 1);
	assert_int_equal(page.events[8].type, STORE_EV_EXPIRE);
	assert_int_equal(page.events[9].type, STORE_EV_EXPIRE);
	store_changes_page_fini(&page);

	assert_int_equal(store_sweep_expired(fx->c, 0, &n, &next, &err),
	    STORE_EINVAL);
	assert_string_equal(err.field, "max");
	assert_int_equal(store_integrity_check(fx->c, NULL), STORE_OK);
	store_write_result_fini(&doc);
	store_write_result_fini(&ghost);
	store_write_result_fini(&later);
}

/* An Unlock or a new Lock before the sweep leaves nothing to sweep. */
static void
test_sweep_skips_released_and_renewed_leases(void **state)
{
	stt_fx *fx = *state;
	store_write_result a;
	store_write_result b;
	int64_t next;
	size_t n;

	assert_int_equal(stt_apply(fx->c, stt_lock("a", "ann", 1000), &a),
	    STORE_OK);
	assert_int_equal(stt_apply(fx->c, stt_lock("b", "bob", 1000), &b),
	    STORE_OK);
	assert_int_equal(stt_apply0(fx->c, stt_unlock("a", &a.token)),
	    STORE_OK);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_with_token(stt_lock("b", "bob", 5000),
	                         &b.token)),
	    STORE_OK);
	ds_fake_clock_advance(&fx->clock, 2000);
	assert_int_equal(store_sweep_expired(fx->c, 10, &n, &next, NULL),
	    STORE_OK);
	assert_int_equal(n, 0);
	assert_int_equal(next, STT_T0 + 5000);
	assert_int_equal(stt_revision(fx->c), 4);
	store_write_result_fini(&a);
	store_write_result_fini(&b);
}

static void
test_compaction_keeps_revisions_and_time(void **state)
{
	stt_fx *fx = *state;
	store_changes_page page;
	store_error err;
	size_t n;

	/* Revision i + 1 logged at T0 + i s. */
	for (int i = 0; i < 10; i++) {
		(void) stt_put(fx->c, "k", "x");
		ds_fake_clock_advance(&fx->clock, 1000);
	}
	/* now = T0 + 10 s. Nothing is older than an hour. */
	assert_int_equal(store_compact_changes(fx->c, 0, 3600000, 100, &n,
	                     NULL),
	    STORE_OK);
	assert_int_equal(n, 0);
	/* The newest 8 revisions stay: 1 and 2 go. */
	assert_int_equal(store_compact_changes(fx->c, 8, 0, 100, &n, NULL),
	    STORE_OK);
	assert_int_equal(n, 2);
	/* 6.5 s: revisions logged before T0 + 3.5 s go (3 and 4). */
	assert_int_equal(store_compact_changes(fx->c, 0, 6500, 100, &n, NULL),
	    STORE_OK);
	assert_int_equal(n, 2);
	/* Both rules: the newest 3 revisions AND the last 9 s; 9 s wins. */
	assert_int_equal(store_compact_changes(fx->c, 3, 9000, 100, &n, NULL),
	    STORE_OK);
	assert_int_equal(n, 0);
	/* max bounds one call. */
	if (store_compact_changes(fx->c, 3, 0, 2, &n, &err) != STORE_OK) {
		fail_msg("%s", err.message);
	}
	assert_int_equal(n, 2);
	assert_int_equal(store_compact_changes(fx->c, 3, 0, 100, &n, NULL),
	    STORE_OK);
	assert_int_equal(n, 1); /* 7: the newest 3 are 8..10 */

	/* A cursor before compact_revision is refused, with where to go. */
	assert_int_equal(sct_read(fx->c, "", true, 6, 10, false, &page, &err),
	    STORE_EREV_COMPACTED);
	assert_string_equal(err.field, "after_revision");
	assert_string_equal(store_reason(err.code), "REVISION_COMPACTED");
	assert_non_null(strstr(err.message, "7"));
	assert_int_equal(page.compact_revision, 7);
	assert_int_equal(page.revision, 10);
	assert_int_equal(page.n, 0);
	store_changes_page_fini(&page);
	assert_int_equal(sct_read(fx->c, "k", false, 0, 10, false, &page,
	                     &err),
	    STORE_EREV_COMPACTED);
	store_changes_page_fini(&page);
	/* From compact_revision on, nothing is missing. */
	assert_int_equal(sct_read(fx->c, "", true, 7, 10, false, &page, NULL),
	    STORE_OK);
	assert_int_equal(page.n, 3);
	assert_int_equal(page.compact_revision, 7);
	sct_assert_gapless(&page, 8);
	store_changes_page_fini(&page);
	/* Compaction never takes the newest entries it was told to keep,
	 * and writes still log after it. */
	assert_int_equal(store_compact_changes(fx->c, 0, 0, 100, &n, NULL),
	    STORE_OK);
	assert_int_equal(n, 3);
	assert_int_equal(stt_put(fx->c, "k", "y"), 11);
	assert_int_equal(sct_read(fx->c, "k", false, 10, 10, false, &page,
	                     NULL),
	    STORE_OK);
	assert_int_equal(page.n, 1);
	assert_int_equal(page.events[0].revision, 11);
	store_changes_page_fini(&page);

	assert_int_equal(store_compact_changes(fx->c, 0, 0, 0, &n, &err),
	    STORE_EINVAL);
	assert_string_equal(err.field, "max");
	assert_int_equal(store_compact_changes(fx->c, 0, -1, 10, &n, &err),
	    STORE_EINVAL);
	assert_string_equal(err.field, "retain_ms");
}

static void
test_the_log_survives_a_reopen(void **state)
{
	stt_fx *fx = *state;
	store_changes_page page;
	store_write_result lk;
	size_t n;

	(void) stt_put(fx->c, "doc", "v1");
	assert_int_equal(stt_apply(fx->c, stt_lock("doc", "ann", 1000), &lk),
	    STORE_OK);
	assert_int_equal(stt_apply0(fx->c,
	                     stt_delete("other", STORE_PRECOND_UNCONDITIONAL,
	                         0)),
	    STORE_ENOTFOUND);
	(void) stt_put(fx->c, "x", "1");
	ds_fake_clock_advance(&fx->clock, 1); /* "older than 0 ms" */
	assert_int_equal(store_compact_changes(fx->c, 2, 0, 10, &n, NULL),
	    STORE_OK);
	assert_int_equal(n, 1);

	stt_fx_reopen(fx);
	assert_int_equal(sct_read(fx->c, "", true, 1, 10, true, &page, NULL),
	    STORE_OK);
	assert_int_equal(page.compact_revision, 1);
	assert_int_equal(page.n, 2);
	sct_assert_event(&page.events[0], STORE_EV_LOCK, "doc", 1, 2);
	assert_string_equal(page.events[0].record.lock.owner, "ann");
	stt_assert_value(&page.events[0].record, "v1");
	sct_assert_event(&page.events[1], STORE_EV_PUT, "x", 1, 3);
	store_changes_page_fini(&page);
	/* The sweep finds the lease after the reopen too. */
	ds_fake_clock_advance(&fx->clock, 1000);
	{
		int64_t next;

		assert_int_equal(store_sweep_expired(fx->c, 10, &n, &next,
		                     NULL),
		    STORE_OK);
		assert_int_equal(n, 1);
	}
	assert_int_equal(stt_revision(fx->c), 4);
	store_write_result_fini(&lk);
}

static void
test_get_rev_reads_the_revision_in_the_same_snapshot(void **state)
{
	stt_fx *fx = *state;
	store_record rec;
	uint64_t rev = 77;

	(void) stt_put(fx->c, "doc", "v1");
	(void) stt_put(fx->c, "doc", "v2");
	(void) stt_put(fx->c, "other", "x");
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(store_get_rev(fx->c, "doc", 3, 0, &rec, &rev, NULL),
	    STORE_OK);
	assert_int_equal(rec.revision, 2);
	assert_int_equal(rev, 3);
	stt_assert_value(&rec, "v2");
	store_record_fini(&rec);
	rev = 0;
	assert_int_equal(store_get_rev(fx->c, "doc", 3, 1, &rec, &rev, NULL),
	    STORE_OK);
	assert_int_equal(rec.revision, 1);
	assert_int_equal(rev, 3);
	store_record_fini(&rec);
	rev = 0;
	assert_int_equal(store_get_rev(fx->c, "doc", 3, 2, &rec, &rev, NULL),
	    STORE_OK);
	assert_int_equal(rev, 3);
	store_record_fini(&rec);
	/* Not found: untouched. */
	rev = 77;
	assert_int_equal(store_get_rev(fx->c, "none", 4, 0, &rec, &rev, NULL),
	    STORE_ENOTFOUND);
	assert_int_equal(rev, 77);
	assert_int_equal(store_get_rev(fx->c, "doc", 3, 9, &rec, &rev, NULL),
	    STORE_ENOTFOUND);
	assert_int_equal(rev, 77);
}

int
main(void)
{
#define M(t) cmocka_unit_test_setup_teardown(t, stt_setup_mem, stt_teardown)
#define F(t) cmocka_unit_test_setup_teardown(t, stt_setup_file, stt_teardown)
	const struct CMUnitTest tests[] = {
	    M(test_every_change_logs_one_event),
	    F(test_every_change_logs_one_event),
	    M(test_replays_and_refusals_log_nothing),
	    M(test_a_batch_logs_its_changes_in_order),
	    M(test_reads_by_key_prefix_or_everything),
	    F(test_reads_by_key_prefix_or_everything),
	    M(test_limit_pages_with_more),
	    M(test_value_bytes_bound_a_page),
	    cmocka_unit_test(test_with_values_reads_the_history),
	    F(test_sweep_logs_expiries),
	    M(test_sweep_skips_released_and_renewed_leases),
	    M(test_compaction_keeps_revisions_and_time),
	    F(test_the_log_survives_a_reopen),
	    M(test_get_rev_reads_the_revision_in_the_same_snapshot),
	    F(test_get_rev_reads_the_revision_in_the_same_snapshot),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
