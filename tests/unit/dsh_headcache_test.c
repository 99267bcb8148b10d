/*
 * dsh_headcache_test.c - the writer's head cache (issue 10, item 3): a CAS
 * that cannot succeed is refused with the committed current record
 * without reaching the store, and never answers from state the store no
 * longer holds: another process's or connection's commit, a Lock, a
 * Delete, a request id the store remembers. The cache stays bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "datasync/v1/datasync.nrpc.h"
#include "ds_test.h"
#include "dsh_int.h"

typedef struct hc_fx {
	char dir[256];
	char db[300];
	store *s;
	dsh_service *svc;
	nrpc_server *srv;
	nrpc_client *cli;
	char url[320];
} hc_fx;

static int
hc_setup(void **state)
{
	hc_fx *fx = calloc(1, sizeof(*fx));
	store_config scfg;
	dsh_config dcfg;
	nrpc_server_config ncfg;
	nrpc_client_config ccfg;
	nrpc_status st;
	const char *urls[1];

	assert_non_null(fx);
	memset(&st, 0, sizeof(st));
	assert_int_equal(ds_test_tmpdir(fx->dir, sizeof(fx->dir)), 0);
	(void) snprintf(fx->db, sizeof(fx->db), "%s/hc.db", fx->dir);
	(void) snprintf(fx->url, sizeof(fx->url), "ipc://%s/hc.sock", fx->dir);
	store_config_default(&scfg);
	scfg.path = fx->db;
	scfg.durability = STORE_DURABILITY_NORMAL;
	assert_int_equal(store_open(&scfg, &fx->s, NULL), STORE_OK);
	memset(&dcfg, 0, sizeof(dcfg));
	dcfg.store = fx->s;
	assert_int_equal(dsh_service_create(&dcfg, &fx->svc, &st), NRPC_OK);
	urls[0] = fx->url;
	nrpc_server_config_default(&ncfg);
	ncfg.urls = urls;
	ncfg.n_urls = 1;
	ncfg.inline_handlers = true;
	ncfg.worker_init = dsh_worker_init;
	ncfg.worker_fini = dsh_worker_fini;
	ncfg.worker_arg = fx->svc;
	assert_int_equal(nrpc_server_create(&ncfg, &fx->srv, &st), NRPC_OK);
	assert_int_equal(dsh_service_register(fx->svc, fx->srv, &st), NRPC_OK);
	assert_int_equal(nrpc_server_start(fx->srv, &st), NRPC_OK);
	nrpc_client_config_default(&ccfg);
	ccfg.urls = urls;
	ccfg.n_urls = 1;
	ccfg.dial_blocking = true;
	ccfg.client_name = "hc-test";
	assert_int_equal(nrpc_client_open(&ccfg, &fx->cli, &st), NRPC_OK);
	nrpc_status_fini(&st);
	*state = fx;
	return 0;
}

static int
hc_teardown(void **state)
{
	hc_fx *fx = *state;

	nrpc_client_close(fx->cli);
	nrpc_server_stop(fx->srv, 1000);
	dsh_service_destroy(fx->svc);
	nrpc_server_destroy(fx->srv);
	store_close(fx->s);
	ds_test_rmdir(fx->dir);
	free(fx);
	return 0;
}

static dsh_stats
hc_stats(hc_fx *fx)
{
	dsh_stats s;

	dsh_service_stats_get(fx->svc, &s);
	return s;
}

/* hc_update sends an Update of key to value under if_version (0 =
 * if_absent), with request id rid (NULL = the client's own). Returns the
 * code; st holds the status (caller finishes it); *version the new
 * version on OK, *replayed whether it was a replay. */
static nrpc_code
hc_update(hc_fx *fx, const char *key, const char *value, uint64_t if_version,
    const char *rid, nrpc_status *st, uint64_t *version, bool *replayed)
{
	Datasync__V1__UpdateRequest req = DATASYNC__V1__UPDATE_REQUEST__INIT;
	Datasync__V1__Precondition pre = DATASYNC__V1__PRECONDITION__INIT;
	Datasync__V1__UpdateResponse *resp = NULL;
	nrpc_call_opts opts;
	nrpc_code rv;

	memset(&opts, 0, sizeof(opts));
	opts.request_id = rid;
	req.key = (char *) key;
	req.value.data = (uint8_t *) value;
	req.value.len = strlen(value);
	req.content_type = (char *) "text/plain";
	req.author = (char *) "alice";
	if (if_version == 0) {
		pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_ABSENT;
		pre.if_absent = true;
	} else {
		pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_VERSION;
		pre.if_version = if_version;
	}
	req.precondition = &pre;
	memset(st, 0, sizeof(*st));
	rv = datasync_v1_data_sync_update(fx->cli, &req, &resp, &opts, st);
	if (rv == NRPC_OK) {
		if (version != NULL) {
			*version = resp->record->version;
		}
		if (replayed != NULL) {
			*replayed = resp->replayed;
		}
		datasync__v1__update_response__free_unpacked(resp, NULL);
	}
	return rv;
}

/* hc_put: an Update that must succeed at version want. */
static void
hc_put(hc_fx *fx, const char *key, const char *value, uint64_t if_version,
    uint64_t want)
{
	nrpc_status st;
	uint64_t v = 0;

	assert_int_equal(hc_update(fx, key, value, if_version, NULL, &st, &v,
	                     NULL),
	    NRPC_OK);
	assert_int_equal(v, want);
	nrpc_status_fini(&st);
}

/* hc_conflict_record decodes the record a VERSION_CONFLICT carries. */
static Datasync__V1__Record *
hc_conflict_record(const nrpc_status *st)
{
	assert_string_equal(st->reason, "VERSION_CONFLICT");
	assert_non_null(st->detail);
	assert_string_equal(st->detail_type,
	    datasync__v1__record__descriptor.name);
	return datasync__v1__record__unpack(NULL, st->detail_len, st->detail);
}

/* hc_direct_put writes key through a store handle of its own (another
 * connection to the same file than the server's). */
static void
hc_direct_put(const char *db, const char *key, const char *value)
{
	store_config scfg;
	store *s = NULL;
	store_conn *c = NULL;
	store_write w;
	store_write_result r;

	store_config_default(&scfg);
	scfg.path = db;
	assert_int_equal(store_open(&scfg, &s, NULL), STORE_OK);
	assert_int_equal(store_conn_open(s, &c, NULL), STORE_OK);
	memset(&w, 0, sizeof(w));
	memset(&r, 0, sizeof(r));
	w.op = STORE_OP_UPDATE;
	w.key = key;
	w.key_len = strlen(key);
	w.value = (const uint8_t *) value;
	w.value_len = strlen(value);
	w.precond.kind = STORE_PRECOND_UNCONDITIONAL;
	assert_int_equal(store_apply(c, &w, &r), STORE_OK);
	store_write_result_fini(&r);
	store_conn_close(c);
	store_close(s);
}

static void
test_a_hopeless_cas_on_a_cached_key_gets_the_current_record_without_sql(
    void **state)
{
	hc_fx *fx = *state;
	nrpc_status fast;
	Datasync__V1__Record *a;
	Datasync__V1__Record *b;
	dsh_stats s0;
	dsh_stats s1;

	hc_put(fx, "k", "v1", 0, 1);
	hc_put(fx, "k", "the second value", 1, 2);
	s0 = hc_stats(fx);
	/* if_version 1 cannot succeed: the writer knows the head is 2. */
	assert_int_not_equal(hc_update(fx, "k", "zzz", 1, NULL, &fast, NULL,
	                         NULL),
	    NRPC_OK);
	s1 = hc_stats(fx);
	assert_int_equal(s1.writes, s0.writes);   /* the store saw nothing */
	assert_int_equal(s1.batches, s0.batches); /* no transaction */
	assert_int_equal(s1.cached_conflicts, s0.cached_conflicts + 1);
	assert_int_equal(s1.conflicts, s0.conflicts + 1);
	a = hc_conflict_record(&fast);
	assert_non_null(a);
	assert_string_equal(a->key, "k");
	assert_int_equal(a->version, 2);
	assert_int_equal(a->value.len, strlen("the second value"));
	assert_memory_equal(a->value.data, "the second value", a->value.len);
	assert_string_equal(a->content_type, "text/plain");
	assert_string_equal(a->updated_by, "alice");
	assert_false(a->deleted);
	assert_null(a->lock);

	/* The store's own answer to the same write, through SQL on a
	 * connection of its own: the same status, byte for byte. */
	{
		store_conn *c = NULL;
		store_write w;
		store_write_result r;
		nrpc_status st;

		memset(&st, 0, sizeof(st));
		assert_int_equal(store_conn_open(fx->s, &c, NULL), STORE_OK);
		memset(&w, 0, sizeof(w));
		memset(&r, 0, sizeof(r));
		w.op = STORE_OP_UPDATE;
		w.key = "k";
		w.key_len = 1;
		w.value = (const uint8_t *) "zzz";
		w.value_len = 3;
		w.precond.kind = STORE_PRECOND_IF_VERSION;
		w.precond.version = 1;
		assert_int_equal(store_apply(c, &w, &r), STORE_ECONFLICT);
		assert_string_equal(r.error.field, "precondition");
		(void) dsh_status_from_store(&r.error, &r.record, true, &st);
		assert_string_equal(st.message, fast.message);
		assert_string_equal(st.reason, fast.reason);
		assert_int_equal(st.code, fast.code);
		b = hc_conflict_record(&st);
		assert_non_null(b);
		assert_int_equal(b->version, a->version);
		assert_int_equal(b->revision, a->revision);
		assert_int_equal(b->created_at_ms, a->created_at_ms);
		assert_int_equal(b->updated_at_ms, a->updated_at_ms);
		assert_string_equal(b->updated_by, a->updated_by);
		assert_string_equal(b->content_type, a->content_type);
		assert_int_equal(b->value.len, a->value.len);
		assert_memory_equal(b->value.data, a->value.data, a->value.len);
		assert_int_equal(st.detail_len, fast.detail_len);
		assert_memory_equal(st.detail, fast.detail, st.detail_len);
		datasync__v1__record__free_unpacked(b, NULL);
		store_write_result_fini(&r);
		store_conn_close(c);
		nrpc_status_fini(&st);
	}
	datasync__v1__record__free_unpacked(a, NULL);
	nrpc_status_fini(&fast);
}

static void
test_a_stored_request_id_is_replayed_and_a_refused_one_is_not_remembered(
    void **state)
{
	hc_fx *fx = *state;
	nrpc_status st;
	uint64_t v = 0;
	bool replayed = false;
	dsh_stats s0;

	hc_put(fx, "r", "v1", 0, 1);
	assert_int_equal(hc_update(fx, "r", "v2", 1, "rid-1", &st, &v,
	                     &replayed),
	    NRPC_OK);
	assert_int_equal(v, 2);
	assert_false(replayed);
	nrpc_status_fini(&st);
	hc_put(fx, "r", "v3", 2, 3);
	/* The retry of rid-1 looks hopeless (if_version 1, head 3) but the
	 * store remembers it: it must be replayed, not refused. */
	assert_int_equal(hc_update(fx, "r", "v2", 1, "rid-1", &st, &v,
	                     &replayed),
	    NRPC_OK);
	assert_int_equal(v, 2);
	assert_true(replayed);
	nrpc_status_fini(&st);
	/* A fresh id that cannot succeed: refused from the cache, and, as
	 * the store does, not remembered: the same id may then succeed. */
	s0 = hc_stats(fx);
	assert_int_not_equal(hc_update(fx, "r", "v4", 1, "rid-2", &st, NULL,
	                         NULL),
	    NRPC_OK);
	assert_string_equal(st.reason, "VERSION_CONFLICT");
	nrpc_status_fini(&st);
	assert_int_equal(hc_stats(fx).cached_conflicts, s0.cached_conflicts + 1);
	if (hc_update(fx, "r", "v4", 3, "rid-2", &st, &v, &replayed) !=
	    NRPC_OK) {
		fail_msg("rid-2 after its refusal: %s %s", st.reason,
		    st.message);
	}
	assert_int_equal(v, 4);
	assert_false(replayed);
	nrpc_status_fini(&st);
}

static void
test_a_write_by_another_process_or_connection_is_not_hidden(void **state)
{
	hc_fx *fx = *state;
	nrpc_status st;
	Datasync__V1__Record *rec;
	pid_t pid;
	int status = 0;
	uint64_t v = 0;

	hc_put(fx, "x", "v1", 0, 1);
	hc_put(fx, "x", "v2", 1, 2); /* cached at 2 */
	if ((pid = fork()) == 0) {
		hc_direct_put(fx->db, "x", "from the child"); /* -> 3 */
		_exit(0);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* Hopeless by the cache AND by the store; the record must be the
	 * child's, not the remembered one. */
	assert_int_not_equal(hc_update(fx, "x", "zzz", 1, NULL, &st, NULL,
	                         NULL),
	    NRPC_OK);
	rec = hc_conflict_record(&st);
	assert_non_null(rec);
	assert_int_equal(rec->version, 3);
	assert_int_equal(rec->value.len, strlen("from the child"));
	assert_memory_equal(rec->value.data, "from the child", rec->value.len);
	datasync__v1__record__free_unpacked(rec, NULL);
	nrpc_status_fini(&st);
	/* Another connection of this process, then a CAS that the stale
	 * memory (3) would refuse but the store accepts (4). */
	hc_put(fx, "x", "v4", 3, 4); /* the cache learns 4 */
	hc_direct_put(fx->db, "x", "from a second handle"); /* -> 5 */
	assert_int_equal(hc_update(fx, "x", "v6", 5, NULL, &st, &v, NULL),
	    NRPC_OK);
	assert_int_equal(v, 6);
	nrpc_status_fini(&st);
}

static void
test_a_lock_or_a_delete_drops_the_cached_head(void **state)
{
	hc_fx *fx = *state;
	Datasync__V1__LockRequest lreq = DATASYNC__V1__LOCK_REQUEST__INIT;
	Datasync__V1__LockResponse *lresp = NULL;
	Datasync__V1__DeleteRequest dreq = DATASYNC__V1__DELETE_REQUEST__INIT;
	Datasync__V1__DeleteResponse *dresp = NULL;
	Datasync__V1__Precondition pre = DATASYNC__V1__PRECONDITION__INIT;
	Datasync__V1__Record *rec;
	nrpc_status st;

	hc_put(fx, "l", "v1", 0, 1);
	hc_put(fx, "l", "v2", 1, 2); /* cached at 2 */
	memset(&st, 0, sizeof(st));
	lreq.key = (char *) "l";
	lreq.owner = (char *) "bob";
	lreq.ttl_ms = 60000;
	assert_int_equal(datasync_v1_data_sync_lock(fx->cli, &lreq, &lresp,
	                     NULL, &st),
	    NRPC_OK);
	datasync__v1__lock_response__free_unpacked(lresp, NULL);
	nrpc_status_fini(&st);
	/* The store checks the lease first: LOCKED, not VERSION_CONFLICT. */
	assert_int_not_equal(hc_update(fx, "l", "zzz", 1, NULL, &st, NULL,
	                         NULL),
	    NRPC_OK);
	assert_string_equal(st.reason, "LOCKED");
	nrpc_status_fini(&st);

	hc_put(fx, "d", "v1", 0, 1);
	hc_put(fx, "d", "v2", 1, 2); /* cached at 2 */
	dreq.key = (char *) "d";
	pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_VERSION;
	pre.if_version = 2;
	dreq.precondition = &pre;
	assert_int_equal(datasync_v1_data_sync_delete(fx->cli, &dreq, &dresp,
	                     NULL, &st),
	    NRPC_OK);
	assert_int_equal(dresp->version, 3);
	datasync__v1__delete_response__free_unpacked(dresp, NULL);
	nrpc_status_fini(&st);
	/* A tombstone: the conflict names the deletion, the record says
	 * deleted (the store's words, not the remembered live head). */
	assert_int_not_equal(hc_update(fx, "d", "zzz", 1, NULL, &st, NULL,
	                         NULL),
	    NRPC_OK);
	rec = hc_conflict_record(&st);
	assert_non_null(rec);
	assert_true(rec->deleted);
	assert_int_equal(rec->version, 3);
	assert_non_null(strstr(st.message, "deleted"));
	datasync__v1__record__free_unpacked(rec, NULL);
	nrpc_status_fini(&st);
}

/* --- the cache alone --- */

static void
hc_learn_update(dsh_headcache *hc, const char *key, size_t value_len,
    uint64_t version)
{
	static uint8_t buf[8192];
	store_write w;
	store_write_result r;

	memset(&w, 0, sizeof(w));
	memset(&r, 0, sizeof(r));
	w.op = STORE_OP_UPDATE;
	w.key = key;
	w.key_len = strlen(key);
	w.value = buf;
	w.value_len = value_len;
	r.record.key = (char *) key;
	r.record.key_len = strlen(key);
	r.record.value = buf;
	r.record.value_len = value_len;
	r.record.content_type = (char *) "";
	r.record.updated_by = (char *) "";
	r.record.version = version;
	r.record.updated_at_ms = 1000;
	r.value_borrowed = true;
	dsh_headcache_learn(hc, &w, &r); /* copies; r stays the caller's */
}

static bool hc_later; /* the last hc_ask's *later */

static const store_record *
hc_ask(dsh_headcache *hc, const char *key, uint64_t if_version, int64_t now)
{
	store_write w;

	memset(&w, 0, sizeof(w));
	w.op = STORE_OP_UPDATE;
	w.key = key;
	w.key_len = strlen(key);
	w.precond.kind = STORE_PRECOND_IF_VERSION;
	w.precond.version = if_version;
	w.validated = true;
	return dsh_headcache_answer(hc, &w, now, &hc_later);
}

static void
test_the_cache_is_bounded_and_answers_only_a_plain_hopeless_cas(void **state)
{
	dsh_headcache hc;
	char key[16];
	size_t remembered = 0;
	store_write w;

	(void) state;
	assert_int_equal(dsh_headcache_init(&hc, 8, 100), 0);
	dsh_headcache_baseline(&hc, 7);
	for (int i = 0; i < 100; i++) {
		(void) snprintf(key, sizeof(key), "key%d", i);
		hc_learn_update(&hc, key, 10, 5);
	}
	dsh_headcache_scan(&hc);
	for (int i = 0; i < 100; i++) {
		(void) snprintf(key, sizeof(key), "key%d", i);
		remembered += hc_ask(&hc, key, 1, 2000) != NULL;
	}
	assert_true(remembered >= 1 && remembered <= 8); /* the bound */

	hc_learn_update(&hc, "big", 101, 5); /* over max_value: not kept */
	hc_learn_update(&hc, "ok", 100, 5);
	dsh_headcache_scan(&hc);
	assert_null(hc_ask(&hc, "big", 1, 2000));
	assert_non_null(hc_ask(&hc, "ok", 1, 2000));
	assert_null(hc_ask(&hc, "ok", 5, 2000));   /* could succeed: SQL */
	assert_null(hc_ask(&hc, "ok", 1, 999));    /* clock went back */
	/* An earlier write to the key in this scan went to SQL: so must
	 * every later one. */
	dsh_headcache_scan(&hc);
	assert_null(hc_ask(&hc, "ok", 5, 2000));
	assert_false(hc_later);
	assert_null(hc_ask(&hc, "ok", 1, 2000));
	assert_true(hc_later); /* may wait for the next scan */
	dsh_headcache_scan(&hc);
	assert_non_null(hc_ask(&hc, "ok", 1, 2000));
	/* Not a plain CAS: a token, if_version_in, an unvalidated write. */
	memset(&w, 0, sizeof(w));
	w.op = STORE_OP_UPDATE;
	w.key = "ok";
	w.key_len = 2;
	w.precond.kind = STORE_PRECOND_IF_VERSION;
	w.precond.version = 1;
	w.validated = true;
	w.has_token = true;
	assert_false(dsh_headcache_candidate(&hc, &w));
	w.has_token = false;
	w.precond.kind = STORE_PRECOND_IF_VERSION_IN;
	assert_false(dsh_headcache_candidate(&hc, &w));
	w.precond.kind = STORE_PRECOND_IF_ABSENT;
	assert_false(dsh_headcache_candidate(&hc, &w));
	w.precond.kind = STORE_PRECOND_IF_VERSION;
	w.validated = false;
	assert_false(dsh_headcache_candidate(&hc, &w));
	/* Another connection committed: everything is forgotten. */
	assert_true(dsh_headcache_valid(&hc, 7));
	assert_false(dsh_headcache_valid(&hc, 8));
	dsh_headcache_scan(&hc);
	assert_null(hc_ask(&hc, "ok", 1, 2000));
	dsh_headcache_fini(&hc);
}

static void
test_head_cache_limits_over_their_hard_maximum_are_refused(void **state)
{
	hc_fx *fx = *state;
	dsh_config dcfg;
	dsh_service *svc = NULL;
	nrpc_status st;

	memset(&dcfg, 0, sizeof(dcfg));
	memset(&st, 0, sizeof(st));
	dcfg.store = fx->s;
	dcfg.head_cache = DSH_HEAD_CACHE_HARD + 1;
	assert_int_equal(dsh_service_create(&dcfg, &svc, &st),
	    NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.field, "head_cache");
	assert_non_null(strstr(st.message, "head_cache"));
	nrpc_status_fini(&st);
	dcfg.head_cache = 0;
	dcfg.head_cache_value = DSH_HEAD_CACHE_VALUE_HARD + 1;
	assert_int_equal(dsh_service_create(&dcfg, &svc, &st),
	    NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.field, "head_cache_value");
	assert_null(svc);
	nrpc_status_fini(&st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_a_hopeless_cas_on_a_cached_key_gets_the_current_record_without_sql,
	        hc_setup, hc_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_a_stored_request_id_is_replayed_and_a_refused_one_is_not_remembered,
	        hc_setup, hc_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_a_write_by_another_process_or_connection_is_not_hidden,
	        hc_setup, hc_teardown),
	    cmocka_unit_test_setup_teardown(
	        test_a_lock_or_a_delete_drops_the_cached_head, hc_setup,
	        hc_teardown),
	    cmocka_unit_test(
	        test_the_cache_is_bounded_and_answers_only_a_plain_hopeless_cas),
	    cmocka_unit_test_setup_teardown(
	        test_head_cache_limits_over_their_hard_maximum_are_refused,
	        hc_setup, hc_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
