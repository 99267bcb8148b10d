/*
 * store_auth_test.c - tokens in the store (store.h): create, list,
 * revoke and the auth generation; names never reused; the token limit;
 * only the hash is stored; other connections and processes see changes
 * through the generation. The in-memory fixtures also run on PostgreSQL
 * (store_auth_test_pg); the file fixtures are SQLite's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "auth.h"
#include "store_test_util.h"

static const char *sat_psql(const stt_fx *fx, const char *sql);

/* sat_hash: a recognisable 32-byte hash for token i. */
static void
sat_hash(unsigned i, uint8_t out[32])
{
	for (unsigned j = 0; j < 32; j++) {
		out[j] = (uint8_t) (i * 131u + j * 7u + (i >> 8));
	}
	out[0] = (uint8_t) i;
	out[1] = (uint8_t) (i >> 8);
}

static store_err
sat_create(store_conn *c, const char *name, unsigned hash_seed,
    const char *grants, store_error *err)
{
	uint8_t h[32];
	store_auth_token t = {0};
	store_err rv;

	sat_hash(hash_seed, h);
	rv = store_auth_create(c, name, h, grants, &t, err);
	store_auth_token_fini(&t);
	return rv;
}

static uint64_t
sat_gen(store_conn *c)
{
	uint64_t g = 12345;
	store_error err;

	if (store_auth_generation(c, &g, &err) != STORE_OK) {
		fail_msg("store_auth_generation: %s", err.message);
	}
	return g;
}

static void
test_a_new_store_has_no_tokens_and_generation_zero(void **state)
{
	stt_fx *fx = *state;
	store_auth_token *ts = (store_auth_token *) 1;
	uint64_t gen = 99;
	size_t n = 99;

	assert_int_equal(sat_gen(fx->c), 0);
	assert_int_equal(
	    store_auth_list(fx->c, &ts, &n, &gen, NULL), STORE_OK);
	assert_null(ts);
	assert_int_equal(n, 0);
	assert_int_equal(gen, 0);
}

static void
test_create_list_revoke_move_the_generation(void **state)
{
	stt_fx *fx = *state;
	store_auth_token t = {0};
	store_auth_token *ts = NULL;
	store_error err;
	uint8_t h[32];
	uint64_t gen = 0;
	size_t n = 0;

	sat_hash(1, h);
	assert_int_equal(store_auth_create(fx->c, "ci", h,
	                     "read:docs/\nwrite:docs/", &t, &err),
	    STORE_OK);
	assert_string_equal(t.name, "ci");
	assert_memory_equal(t.hash, h, 32);
	assert_string_equal(t.grants, "read:docs/\nwrite:docs/");
	assert_int_equal(t.created_at_ms, STT_T0);
	assert_false(t.revoked);
	store_auth_token_fini(&t);
	assert_int_equal(sat_gen(fx->c), 1);

	ds_fake_clock_advance(&fx->clock, 5000);
	assert_int_equal(
	    sat_create(fx->c, "admin", 2, "admin", &err), STORE_OK);
	assert_int_equal(sat_create(fx->c, "B", 3, "lock:", &err), STORE_OK);
	assert_int_equal(sat_gen(fx->c), 3);

	/* Listed by name in byte order, with what was stored. */
	assert_int_equal(
	    store_auth_list(fx->c, &ts, &n, &gen, &err), STORE_OK);
	assert_int_equal(n, 3);
	assert_int_equal(gen, 3);
	assert_string_equal(ts[0].name, "B");
	assert_string_equal(ts[1].name, "admin");
	assert_string_equal(ts[2].name, "ci");
	assert_string_equal(ts[1].grants, "admin");
	assert_int_equal(ts[1].created_at_ms, STT_T0 + 5000);
	assert_memory_equal(ts[2].hash, h, 32);
	for (size_t i = 0; i < n; i++) {
		assert_false(ts[i].revoked);
	}
	store_auth_tokens_free(ts, n);

	/* Revoking sets revoked_at by the store's clock and moves the
	 * generation; revoking again changes nothing. */
	ds_fake_clock_advance(&fx->clock, 1000);
	assert_int_equal(store_auth_revoke(fx->c, "ci", &t, &err), STORE_OK);
	assert_true(t.revoked);
	assert_int_equal(t.revoked_at_ms, STT_T0 + 6000);
	assert_string_equal(t.grants, "read:docs/\nwrite:docs/");
	assert_memory_equal(t.hash, h, 32);
	store_auth_token_fini(&t);
	assert_int_equal(sat_gen(fx->c), 4);
	ds_fake_clock_advance(&fx->clock, 1000);
	assert_int_equal(store_auth_revoke(fx->c, "ci", &t, &err), STORE_OK);
	assert_true(t.revoked);
	assert_int_equal(t.revoked_at_ms, STT_T0 + 6000);
	store_auth_token_fini(&t);
	assert_int_equal(sat_gen(fx->c), 4);

	/* A revoked token stays listed. */
	assert_int_equal(
	    store_auth_list(fx->c, &ts, &n, &gen, &err), STORE_OK);
	assert_int_equal(n, 3);
	assert_int_equal(gen, 4);
	assert_true(ts[2].revoked);
	assert_int_equal(ts[2].revoked_at_ms, STT_T0 + 6000);
	assert_false(ts[0].revoked);
	store_auth_tokens_free(ts, n);

	assert_int_equal(
	    store_auth_revoke(fx->c, "nobody", &t, &err), STORE_ENOTFOUND);
	assert_string_equal(err.field, "name");
	assert_non_null(strstr(err.message, "nobody"));
	assert_null(t.name);
	assert_int_equal(sat_gen(fx->c), 4);
}

static void
test_names_are_never_reused_and_secrets_name_one_token(void **state)
{
	stt_fx *fx = *state;
	store_auth_token *ts = NULL;
	store_error err;
	uint64_t gen = 0;
	size_t n = 0;

	assert_int_equal(sat_create(fx->c, "ci", 1, "read:", &err), STORE_OK);
	assert_int_equal(
	    sat_create(fx->c, "ci", 2, "read:", &err), STORE_ECONFLICT);
	assert_string_equal(err.field, "name");
	assert_int_equal(store_auth_revoke(fx->c, "ci", NULL, &err), STORE_OK);
	/* Revoked, the name is still taken. */
	assert_int_equal(
	    sat_create(fx->c, "ci", 3, "read:", &err), STORE_ECONFLICT);
	assert_string_equal(err.field, "name");
	/* Another name with a secret already in use is refused too. */
	assert_int_equal(
	    sat_create(fx->c, "other", 1, "read:", &err), STORE_ECONFLICT);
	assert_string_equal(err.field, "hash");
	/* Refusals move nothing. */
	assert_int_equal(
	    store_auth_list(fx->c, &ts, &n, &gen, &err), STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(gen, 2);
	store_auth_tokens_free(ts, n);
}

static void
test_create_refuses_an_empty_name_or_grants(void **state)
{
	stt_fx *fx = *state;
	store_error err;
	uint8_t h[32];

	sat_hash(1, h);
	assert_int_equal(store_auth_create(fx->c, "", h, "read:", NULL, &err),
	    STORE_EINVAL);
	assert_string_equal(err.field, "name");
	assert_int_equal(
	    store_auth_create(fx->c, NULL, h, "read:", NULL, &err),
	    STORE_EINVAL);
	assert_string_equal(err.field, "name");
	assert_int_equal(
	    store_auth_create(fx->c, "x", h, "", NULL, &err), STORE_EINVAL);
	assert_string_equal(err.field, "grants");
	assert_int_equal(
	    store_auth_revoke(fx->c, "", NULL, &err), STORE_EINVAL);
	assert_string_equal(err.field, "name");
	assert_int_equal(sat_gen(fx->c), 0);
}

static void
test_token_limit_counts_revoked_tokens(void **state)
{
	stt_fx *fx = *state;
	store_auth_token *ts = NULL;
	store_error err;
	char name[32];
	uint64_t gen = 0;
	unsigned first = 0;
	size_t n = 0;

	if (fx->pgdb[0] != '\0') {
		/* 10000 transactions of five round trips each would take most
		 * of a minute under ASan: all but the last 100 tokens go in
		 * at once, the generation set as their creates would have. */
		char sql[512];

		first = STORE_AUTH_TOKENS_MAX - 100;
		(void) snprintf(sql, sizeof(sql),
		    "INSERT INTO tokens SELECT 't' || lpad(i::text, 5, '0'),"
		    " sha256(i::text::bytea), 'read:', 0, NULL"
		    " FROM generate_series(0, %u) i;"
		    " UPDATE meta SET auth_gen = %u",
		    first - 1, first);
		(void) sat_psql(fx, sql);
	}
	for (unsigned i = first; i < STORE_AUTH_TOKENS_MAX; i++) {
		(void) snprintf(name, sizeof(name), "t%05u", i);
		if (sat_create(fx->c, name, i, "read:", &err) != STORE_OK) {
			fail_msg("token %u: %s", i, err.message);
		}
	}
	assert_int_equal(
	    store_auth_revoke(fx->c, "t00000", NULL, &err), STORE_OK);
	assert_int_equal(sat_create(fx->c, "one-more", STORE_AUTH_TOKENS_MAX,
	                     "read:", &err),
	    STORE_ETOOLARGE);
	assert_string_equal(err.field, "name");
	assert_non_null(strstr(err.message, "STORE_AUTH_TOKENS_MAX (10000)"));
	assert_int_equal(
	    store_auth_list(fx->c, &ts, &n, &gen, &err), STORE_OK);
	assert_int_equal(n, STORE_AUTH_TOKENS_MAX);
	assert_int_equal(gen, STORE_AUTH_TOKENS_MAX + 1);
	assert_string_equal(ts[0].name, "t00000");
	assert_true(ts[0].revoked);
	assert_string_equal(ts[n - 1].name, "t09999");
	store_auth_tokens_free(ts, n);
}

static void
test_another_connection_sees_changes_through_the_generation(void **state)
{
	stt_fx *fx = *state;
	store_conn *c2 = NULL;
	store_auth_token *ts = NULL;
	store_error err;
	uint64_t gen = 0;
	size_t n = 0;

	assert_int_equal(store_conn_open(fx->s, &c2, &err), STORE_OK);
	assert_int_equal(sat_gen(c2), 0);
	assert_int_equal(sat_create(fx->c, "ci", 1, "read:", &err), STORE_OK);
	assert_int_equal(sat_gen(c2), 1);
	assert_int_equal(store_auth_list(c2, &ts, &n, &gen, &err), STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(gen, 1);
	assert_false(ts[0].revoked);
	store_auth_tokens_free(ts, n);
	assert_int_equal(store_auth_revoke(c2, "ci", NULL, &err), STORE_OK);
	assert_int_equal(sat_gen(fx->c), 2);
	assert_int_equal(
	    store_auth_list(fx->c, &ts, &n, &gen, &err), STORE_OK);
	assert_true(ts[0].revoked);
	store_auth_tokens_free(ts, n);
	store_conn_close(c2);
}

static void
test_out_of_memory_changes_nothing_and_leaks_nothing(void **state)
{
	stt_fx *fx = *state;
	store_auth_token t = {0};
	store_auth_token *ts = NULL;
	store_error err;
	uint8_t h[32];
	uint64_t gen = 0;
	size_t n = 0;
	long k;
	store_err rv;

	assert_int_equal(sat_create(fx->c, "a", 1, "read:", &err), STORE_OK);
	assert_int_equal(sat_create(fx->c, "b", 2, "write:", &err), STORE_OK);
	sat_hash(3, h);
	/* The Nth allocation fails until none does: each failure leaves the
	 * tokens and the generation as they were. */
	for (k = 0;; k++) {
		ds_alloc_fail_after(k);
		rv = store_auth_create(fx->c, "c", h, "lock:", &t, &err);
		ds_alloc_fail_reset();
		if (rv == STORE_OK) {
			break;
		}
		assert_int_equal(rv, STORE_ENOMEM);
		assert_null(t.name);
		assert_int_equal(sat_gen(fx->c), 2);
	}
	store_auth_token_fini(&t);
	assert_int_equal(sat_gen(fx->c), 3);
	for (k = 0;; k++) {
		ds_alloc_fail_after(k);
		rv = store_auth_revoke(fx->c, "c", &t, &err);
		ds_alloc_fail_reset();
		if (rv == STORE_OK) {
			break;
		}
		assert_int_equal(rv, STORE_ENOMEM);
		assert_int_equal(sat_gen(fx->c), 3);
	}
	assert_true(t.revoked);
	store_auth_token_fini(&t);
	for (k = 0;; k++) {
		ds_alloc_fail_after(k);
		rv = store_auth_list(fx->c, &ts, &n, &gen, &err);
		ds_alloc_fail_reset();
		if (rv == STORE_OK) {
			break;
		}
		assert_int_equal(rv, STORE_ENOMEM);
	}
	assert_true(k > 3);
	assert_int_equal(n, 3);
	assert_int_equal(gen, 4);
	assert_true(ts[2].revoked);
	store_auth_tokens_free(ts, n);
}

/* --- SQLite files --- */

/* sat_file_holds: does the file at path contain needle anywhere? */
static bool
sat_file_holds(const char *path, const char *needle)
{
	size_t nl = strlen(needle), len = 0, cap = 0;
	char *buf = NULL;
	bool found = false;
	FILE *f;
	int ch;

	assert_non_null(f = fopen(path, "rb"));
	while ((ch = fgetc(f)) != EOF) {
		if (len == cap) {
			cap = cap == 0 ? 65536 : 2 * cap;
			assert_non_null(buf = realloc(buf, cap));
		}
		buf[len++] = (char) ch;
	}
	(void) fclose(f);
	for (size_t i = 0; i + nl <= len && !found; i++) {
		found = memcmp(buf + i, needle, nl) == 0;
	}
	free(buf);
	return found;
}

static void
test_only_the_hash_of_a_secret_is_stored(void **state)
{
	char secret[AUTH_SECRET_TEXT_LEN + 1];
	uint8_t h[AUTH_HASH_BYTES];
	stt_fx *fx = *state;
	char wal[400];
	sqlite3 *db;
	sqlite3_stmt *st;

	/* What datasyncd does: a fresh secret, its SHA-256 to the store. */
	assert_int_equal(auth_secret_new(secret), 0);
	auth_hash(secret, strlen(secret), h);
	assert_int_equal(
	    store_auth_create(fx->c, "ci", h, "read:", NULL, NULL), STORE_OK);
	assert_int_equal(
	    sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READONLY, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
	                     "SELECT hash, typeof(hash) FROM tokens"
	                     " WHERE name = 'ci'",
	                     -1, &st, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_bytes(st, 0), AUTH_HASH_BYTES);
	assert_memory_equal(sqlite3_column_blob(st, 0), h, AUTH_HASH_BYTES);
	assert_string_equal((const char *) sqlite3_column_text(st, 1), "blob");
	sqlite3_finalize(st);
	sqlite3_close(db);
	/* The secret's text is in neither the database nor its WAL. */
	(void) snprintf(wal, sizeof(wal), "%s-wal", fx->path);
	assert_false(sat_file_holds(fx->path, secret));
	assert_false(sat_file_holds(fx->path, secret + 4));
	if (access(wal, F_OK) == 0) {
		assert_false(sat_file_holds(wal, secret));
		assert_false(sat_file_holds(wal, secret + 4));
	}
}

static void
test_another_process_on_the_file_sees_changes(void **state)
{
	stt_fx *fx = *state;
	store *s2 = NULL;
	store_conn *c2 = NULL;
	store_error err;

	if (strcmp(fx->path, ":memory:") == 0) {
		skip(); /* private to its store: no second process */
	}
	/* A second store on the same file or database is what a second
	 * process (another node, on PostgreSQL) has. */
	assert_int_equal(store_open(&fx->cfg, &s2, &err), STORE_OK);
	assert_int_equal(store_conn_open(s2, &c2, &err), STORE_OK);
	assert_int_equal(sat_gen(c2), 0);
	assert_int_equal(sat_create(fx->c, "ci", 1, "read:", &err), STORE_OK);
	assert_int_equal(sat_gen(c2), 1);
	assert_int_equal(store_auth_revoke(c2, "ci", NULL, &err), STORE_OK);
	assert_int_equal(sat_gen(fx->c), 2);
	/* Both sides refuse the name now. */
	assert_int_equal(
	    sat_create(c2, "ci", 9, "read:", &err), STORE_ECONFLICT);
	store_conn_close(c2);
	store_close(s2);
	/* Tokens and the generation survive a reopen. */
	stt_fx_reopen(fx);
	assert_int_equal(sat_gen(fx->c), 2);
}

/* --- PostgreSQL databases --- */

/* sat_psql runs sql on fx's PostgreSQL database and returns its first
 * output line (static). */
static const char *
sat_psql(const stt_fx *fx, const char *sql)
{
	static char line[256];
	char cmd[2048];
	FILE *p;

	(void) snprintf(cmd, sizeof(cmd),
	    "psql -X -q -t -A -h '%s' -U datasync -d %s -c \"%s\"",
	    getenv("DATASYNC_TEST_PG_HOST"), fx->pgdb, sql);
	assert_non_null(p = popen(cmd, "r"));
	line[0] = '\0';
	if (fgets(line, sizeof(line), p) != NULL) {
		line[strcspn(line, "\n")] = '\0';
	}
	assert_int_equal(pclose(p), 0);
	return line;
}

/* A schema 1 database (before tokens) migrates on open, under the
 * schema lock, and then keeps tokens; the hash is stored, 32 bytes. */
static void
test_a_pg_schema1_database_migrates_to_tokens(void **state)
{
	stt_fx *fx = *state;
	char secret[AUTH_SECRET_TEXT_LEN + 1];
	uint8_t h[AUTH_HASH_BYTES];
	char sql[512];

	if (fx->pgdb[0] == '\0') {
		skip(); /* PostgreSQL only: store_auth_test_pg */
	}
	assert_int_equal(stt_put(fx->c, "doc", "kept"), 1);
	store_conn_close(fx->c);
	fx->c = NULL;
	store_close(fx->s);
	fx->s = NULL;
	(void) sat_psql(fx, "DROP TABLE tokens;"
	                    " ALTER TABLE meta DROP COLUMN auth_gen;"
	                    " UPDATE meta SET schema_version = 1");
	stt_fx_reopen(fx);
	assert_string_equal(
	    sat_psql(fx, "SELECT schema_version FROM meta"), "2");
	assert_int_equal(store_integrity_check(fx->c, NULL), STORE_OK);
	assert_int_equal(stt_version(fx->c, "doc"), 1);
	assert_int_equal(sat_gen(fx->c), 0);
	assert_int_equal(auth_secret_new(secret), 0);
	auth_hash(secret, strlen(secret), h);
	assert_int_equal(
	    store_auth_create(fx->c, "ci", h, "read:", NULL, NULL), STORE_OK);
	assert_int_equal(sat_gen(fx->c), 1);
	assert_string_equal(
	    sat_psql(fx, "SELECT octet_length(hash) FROM tokens"), "32");
	(void) snprintf(sql, sizeof(sql),
	    "SELECT count(*) FROM tokens WHERE name LIKE '%%%s%%'"
	    " OR grants LIKE '%%%s%%' OR encode(hash, 'escape') LIKE '%%%s%%'",
	    secret + 4, secret + 4, secret + 4);
	assert_string_equal(sat_psql(fx, sql), "0");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_a_new_store_has_no_tokens_and_generation_zero,
	        stt_setup_mem, stt_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_create_list_revoke_move_the_generation, stt_setup_mem,
	        stt_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_names_are_never_reused_and_secrets_name_one_token,
	        stt_setup_mem, stt_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_create_refuses_an_empty_name_or_grants, stt_setup_mem,
	        stt_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_token_limit_counts_revoked_tokens, stt_setup_mem,
	        stt_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_another_connection_sees_changes_through_the_generation,
	        stt_setup_mem, stt_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_out_of_memory_changes_nothing_and_leaks_nothing,
	        stt_setup_mem, stt_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_another_connection_sees_changes_through_the_generation,
	        stt_setup_file, stt_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_only_the_hash_of_a_secret_is_stored, stt_setup_file,
	        stt_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_a_pg_schema1_database_migrates_to_tokens, stt_setup_mem,
	        stt_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_another_process_on_the_file_sees_changes, stt_setup_file,
	        stt_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_another_process_on_the_file_sees_changes, stt_setup_mem,
	        stt_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
