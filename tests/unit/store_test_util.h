/*
 * store_test_util.h - fixtures and write builders shared by the store's
 * unit tests (tests/unit/store_*_test.c). Header-only so that each test
 * file stays its own executable (ds_unit_tests) without a support library.
 *
 * Include after <cmocka.h>.
 */
#ifndef STORE_TEST_UTIL_H
#define STORE_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ds_alloc.h"
#include "ds_test.h"
#include "ds_text.h"
#include "store.h"

/* A fixed, recognisable start time: 2023-11-14T22:13:20Z. */
#define STT_T0 INT64_C(1700000000000)

/* stt_fx: one store with one connection and a fake clock. */
typedef struct stt_fx {
	ds_fake_clock clock;
	store_config cfg;
	store *s;
	store_conn *c;
	char dir[256];  /* temp dir when on a file, else "" */
	char pgdb[64];  /* PostgreSQL database made for it, else "" */
	char path[320]; /* database path, or ":memory:" */
} stt_fx;

/* stt_fx_new opens a store on ":memory:" (file == false) or on a file in
 * a fresh temp dir, with lim (NULL = defaults). */
static inline stt_fx *
stt_fx_new(const store_limits *lim, bool file)
{
	stt_fx *fx = calloc(1, sizeof(*fx));
	store_error err;

	assert_non_null(fx);
	ds_fake_clock_init(&fx->clock, STT_T0);
	store_config_default(&fx->cfg);
	fx->cfg.clock = &fx->clock.base;
	if (lim != NULL) {
		fx->cfg.limits = *lim;
	}
	if (file) {
		assert_int_equal(ds_test_tmpdir(fx->dir, sizeof(fx->dir)), 0);
		(void) snprintf(fx->path, sizeof(fx->path), "%s/store.db",
		    fx->dir);
	} else {
		(void) snprintf(fx->path, sizeof(fx->path), ":memory:");
	}
	fx->cfg.path = fx->path;
	/* One behaviour suite, two backends: with DATASYNC_TEST_PG_HOST (the
	 * ctest fixture "pg"), the in-memory fixtures run on a fresh
	 * PostgreSQL database each; file fixtures stay on SQLite. */
	if (!file && getenv("DATASYNC_TEST_PG_HOST") != NULL) {
		static int seq;
		const char *host = getenv("DATASYNC_TEST_PG_HOST");
		char cmd[512];

		(void) snprintf(fx->pgdb, sizeof(fx->pgdb), "stt_%d_%d",
		    (int) getpid(), seq++);
		(void) snprintf(cmd, sizeof(cmd),
		    "createdb -h '%s' -U datasync %s", host, fx->pgdb);
		assert_int_equal(system(cmd), 0);
		(void) snprintf(fx->path, sizeof(fx->path),
		    "postgresql:///%s?host=%s&user=datasync", fx->pgdb, host);
	}
	if (store_open(&fx->cfg, &fx->s, &err) != STORE_OK) {
		fail_msg("store_open: %s", err.message);
	}
	assert_int_equal(store_conn_open(fx->s, &fx->c, &err), STORE_OK);
	return fx;
}

/* stt_fx_reopen closes and reopens the same file. */
static inline void
stt_fx_reopen(stt_fx *fx)
{
	store_error err;

	store_conn_close(fx->c);
	store_close(fx->s);
	if (store_open(&fx->cfg, &fx->s, &err) != STORE_OK) {
		fail_msg("store_open: %s", err.message);
	}
	assert_int_equal(store_conn_open(fx->s, &fx->c, &err), STORE_OK);
}

static inline void
stt_fx_free(stt_fx *fx)
{
	if (fx == NULL) {
		return;
	}
	store_conn_close(fx->c);
	store_close(fx->s);
	if (fx->dir[0] != '\0') {
		ds_test_rmdir(fx->dir);
	}
	if (fx->pgdb[0] != '\0') {
		char cmd[512];

		(void) snprintf(cmd, sizeof(cmd), "dropdb -h '%s' -U datasync %s",
		    getenv("DATASYNC_TEST_PG_HOST"), fx->pgdb);
		(void) system(cmd);
	}
	free(fx);
}

static inline int
stt_setup_mem(void **state)
{
	*state = stt_fx_new(NULL, false);
	return 0;
}

static inline int
stt_setup_file(void **state)
{
	*state = stt_fx_new(NULL, true);
	return 0;
}

static inline int
stt_teardown(void **state)
{
	stt_fx_free(*state);
	return 0;
}

/* --- write builders --- */

static inline store_write
stt_update(const char *key, const char *value, store_precond_kind kind,
    uint64_t version)
{
	store_write w;

	memset(&w, 0, sizeof(w));
	w.op = STORE_OP_UPDATE;
	w.key = key;
	w.key_len = strlen(key);
	w.value = (const uint8_t *) value;
	w.value_len = value != NULL ? strlen(value) : 0;
	w.content_type = "text/plain";
	w.content_type_len = strlen(w.content_type);
	w.precond.kind = kind;
	w.precond.version = version;
	return w;
}

static inline store_write
stt_delete(const char *key, store_precond_kind kind, uint64_t version)
{
	store_write w;

	memset(&w, 0, sizeof(w));
	w.op = STORE_OP_DELETE;
	w.key = key;
	w.key_len = strlen(key);
	w.precond.kind = kind;
	w.precond.version = version;
	return w;
}

static inline store_write
stt_lock(const char *key, const char *owner, int64_t ttl_ms)
{
	store_write w;

	memset(&w, 0, sizeof(w));
	w.op = STORE_OP_LOCK;
	w.key = key;
	w.key_len = strlen(key);
	w.owner = owner;
	w.owner_len = strlen(owner);
	w.ttl_ms = ttl_ms;
	return w;
}

static inline store_write
stt_unlock(const char *key, const store_token *t)
{
	store_write w;

	memset(&w, 0, sizeof(w));
	w.op = STORE_OP_UNLOCK;
	w.key = key;
	w.key_len = strlen(key);
	w.has_token = true;
	w.token = *t;
	return w;
}

static inline store_write
stt_with_token(store_write w, const store_token *t)
{
	w.has_token = true;
	w.token = *t;
	return w;
}

static inline store_write
stt_with_rid(store_write w, const char *rid)
{
	w.request_id = rid;
	w.request_id_len = strlen(rid);
	return w;
}

/* stt_with_caller scopes w's request_id to caller. */
static inline store_write
stt_with_caller(store_write w, const char *caller)
{
	w.caller = caller;
	w.caller_len = strlen(caller);
	return w;
}

/* stt_if_version_in makes w's precondition "one of vs[0..n)" (borrowed:
 * vs must outlive w's use). */
static inline store_write
stt_if_version_in(store_write w, const uint64_t *vs, size_t n)
{
	w.precond.kind = STORE_PRECOND_IF_VERSION_IN;
	w.precond.version = 0;
	w.precond.versions = vs;
	w.precond.n_versions = n;
	return w;
}

static inline store_write
stt_with_author(store_write w, const char *author)
{
	w.author = author;
	w.author_len = strlen(author);
	return w;
}

/* --- helpers over the API --- */

/* stt_apply applies w into a zeroed *r and returns the outcome. */
static inline store_err
stt_apply(store_conn *c, store_write w, store_write_result *r)
{
	memset(r, 0, sizeof(*r));
	return store_apply(c, &w, r);
}

/* stt_apply0 applies w and discards the result. */
static inline store_err
stt_apply0(store_conn *c, store_write w)
{
	store_write_result r;
	store_err rv = stt_apply(c, w, &r);

	store_write_result_fini(&r);
	return rv;
}

/* stt_put writes key = value unconditionally and returns the version. */
static inline uint64_t
stt_put(store_conn *c, const char *key, const char *value)
{
	store_write_result r;
	uint64_t v;

	assert_int_equal(stt_apply(c,
	                     stt_update(key, value,
	                         STORE_PRECOND_UNCONDITIONAL, 0),
	                     &r),
	    STORE_OK);
	v = r.record.version;
	store_write_result_fini(&r);
	return v;
}

/* stt_version returns the live version of key, or 0 when not found. */
static inline uint64_t
stt_version(store_conn *c, const char *key)
{
	store_record rec;
	store_err rv;
	uint64_t v;

	memset(&rec, 0, sizeof(rec));
	rv = store_get(c, key, strlen(key), 0, &rec, NULL);
	if (rv == STORE_ENOTFOUND) {
		return 0;
	}
	assert_int_equal(rv, STORE_OK);
	v = rec.version;
	store_record_fini(&rec);
	return v;
}

static inline uint64_t
stt_revision(store_conn *c)
{
	uint64_t rev = 0;

	assert_int_equal(store_revision(c, &rev, NULL), STORE_OK);
	return rev;
}

/* stt_value_is asserts that record r holds the text value v. */
static inline void
stt_assert_value(const store_record *r, const char *v)
{
	assert_int_equal(r->value_len, strlen(v));
	if (r->value_len > 0) {
		assert_memory_equal(r->value, v, r->value_len);
	}
}

/* stt_digest hashes everything observable through the API: revision,
 * every live key with its metadata and lock, every current value and
 * every readable or refused historical version. Two equal digests mean
 * nothing visible changed. keys lists extra keys to probe (tombstones
 * and lock placeholders do not show in List). */
static inline uint64_t
stt_digest(store_conn *c, const char *const *keys, size_t nkeys)
{
	uint64_t h = DS_HASH64_INIT;
	uint64_t rev = stt_revision(c);
	store_list_req req;
	store_list_page page;

	h = ds_hash64(h, &rev, sizeof(rev));
	memset(&req, 0, sizeof(req));
	memset(&page, 0, sizeof(page));
	req.page_size = 1000;
	assert_int_equal(store_list(c, &req, &page, NULL), STORE_OK);
	assert_null(page.next_page_token);
	for (size_t i = 0; i < page.n + nkeys; i++) {
		const char *key =
		    i < page.n ? page.records[i].key : keys[i - page.n];
		size_t klen = strlen(key);
		store_record cur;
		uint64_t top;
		store_err rv;

		memset(&cur, 0, sizeof(cur));
		rv = store_get(c, key, klen, 0, &cur, NULL);
		h = ds_hash64(h, key, klen);
		h = ds_hash64(h, &rv, sizeof(rv));
		top = rv == STORE_OK ? cur.version : 64;
		if (rv == STORE_OK) {
			h = ds_hash64(h, &cur.version, sizeof(cur.version));
			h = ds_hash64(h, &cur.revision, sizeof(cur.revision));
			h = ds_hash64(h, &cur.updated_at_ms,
			    sizeof(cur.updated_at_ms));
			h = ds_hash64(h, cur.value, cur.value_len);
			h = ds_hash64(h, &cur.locked, sizeof(cur.locked));
			if (cur.locked) {
				h = ds_hash64(h, cur.lock.owner,
				    strlen(cur.lock.owner));
				h = ds_hash64(h, &cur.lock.fencing_token,
				    sizeof(cur.lock.fencing_token));
				h = ds_hash64(h, &cur.lock.expires_at_ms,
				    sizeof(cur.lock.expires_at_ms));
			}
		}
		store_record_fini(&cur);
		for (uint64_t v = 1; v <= top + 1; v++) {
			store_record old;

			memset(&old, 0, sizeof(old));
			rv = store_get(c, key, klen, v, &old, NULL);
			h = ds_hash64(h, &rv, sizeof(rv));
			if (rv == STORE_OK) {
				h = ds_hash64(h, old.value, old.value_len);
				h = ds_hash64(h, &old.revision,
				    sizeof(old.revision));
			}
			store_record_fini(&old);
		}
	}
	store_list_page_fini(&page);
	return h;
}

#endif /* STORE_TEST_UTIL_H */
