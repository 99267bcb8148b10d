/*
 * dsh_readers_test.c - reads that may block on disk leave nng's threads:
 * with a reader pool, List and historical Get run on its threads while a
 * Get of the current version stays inline; the pool's queue is bounded
 * and refuses past max_read_queue; DB_BUSY is UNAVAILABLE.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "datasync/v1/datasync.nrpc.h"
#include "dsh_int.h"

/* --- a real server with inline handlers over inproc:// --- */

typedef struct drt_fx {
	store *s;
	dsh_service *svc;
	nrpc_server *srv;
	nrpc_client *cli;
	char url[64];
} drt_fx;

static void
drt_put(store *s, const char *key, const char *value)
{
	store_conn *c;
	store_write_result r;
	store_write w;

	memset(&w, 0, sizeof(w));
	w.op = STORE_OP_UPDATE;
	w.key = key;
	w.key_len = strlen(key);
	w.value = (const uint8_t *) value;
	w.value_len = strlen(value);
	w.precond.kind = STORE_PRECOND_UNCONDITIONAL;
	memset(&r, 0, sizeof(r));
	assert_int_equal(store_conn_open(s, &c, NULL), STORE_OK);
	assert_int_equal(store_apply(c, &w, &r), STORE_OK);
	store_write_result_fini(&r);
	store_conn_close(c);
}

static int
drt_setup(void **state)
{
	drt_fx *fx = calloc(1, sizeof(*fx));
	store_config scfg;
	dsh_config dcfg;
	nrpc_server_config ncfg;
	nrpc_client_config ccfg;
	nrpc_status st = {0};
	const char *urls[1];

	assert_non_null(fx);
	memset(&st, 0, sizeof(st));
	store_config_default(&scfg);
	scfg.path = ":memory:";
	assert_int_equal(store_open(&scfg, &fx->s, NULL), STORE_OK);
	drt_put(fx->s, "a/1", "v1");
	drt_put(fx->s, "a/1", "v2");
	memset(&dcfg, 0, sizeof(dcfg));
	dcfg.store = fx->s;
	dcfg.readers = 2;
	assert_int_equal(dsh_service_create(&dcfg, &fx->svc, &st), NRPC_OK);
	(void) snprintf(fx->url, sizeof(fx->url), "inproc://dsh_readers_%d",
	    (int) getpid());
	urls[0] = fx->url;
	nrpc_server_config_default(&ncfg);
	ncfg.urls = urls;
	ncfg.n_urls = 1;
	ncfg.inline_handlers = true; /* as datasyncd by default */
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
	assert_int_equal(nrpc_client_open(&ccfg, &fx->cli, &st), NRPC_OK);
	nrpc_status_fini(&st);
	*state = fx;
	return 0;
}

static int
drt_teardown(void **state)
{
	drt_fx *fx = *state;

	nrpc_client_close(fx->cli);
	nrpc_server_stop(fx->srv, 1000);
	dsh_service_destroy(fx->svc);
	nrpc_server_destroy(fx->srv);
	store_close(fx->s);
	free(fx);
	return 0;
}

static uint64_t
drt_pool_reads(drt_fx *fx)
{
	dsh_stats stats;

	dsh_service_stats_get(fx->svc, &stats);
	return stats.pool_reads;
}

static void
drt_get(drt_fx *fx, uint64_t version, const char *want)
{
	Datasync__V1__GetRequest req = DATASYNC__V1__GET_REQUEST__INIT;
	Datasync__V1__GetResponse *resp = NULL;
	nrpc_status st = {0};

	memset(&st, 0, sizeof(st));
	req.key = (char *) "a/1";
	req.version = version;
	assert_int_equal(datasync_v1_data_sync_get(fx->cli, &req, &resp, NULL,
	                     &st),
	    NRPC_OK);
	assert_non_null(resp->record);
	assert_int_equal(resp->record->value.len, strlen(want));
	assert_memory_equal(resp->record->value.data, want, strlen(want));
	datasync__v1__get_response__free_unpacked(resp, NULL);
	nrpc_status_fini(&st);
}

static void
test_list_and_historical_get_run_on_the_reader_pool(void **state)
{
	drt_fx *fx = *state;
	Datasync__V1__ListRequest lreq = DATASYNC__V1__LIST_REQUEST__INIT;
	Datasync__V1__ListResponse *lresp = NULL;
	nrpc_status st = {0};

	memset(&st, 0, sizeof(st));
	/* A Get of the current version stays on the calling thread. */
	drt_get(fx, 0, "v2");
	assert_int_equal(drt_pool_reads(fx), 0);
	/* An older version is read by the pool. */
	drt_get(fx, 1, "v1");
	assert_int_equal(drt_pool_reads(fx), 1);
	/* And so is a List. */
	lreq.prefix = (char *) "a/";
	assert_int_equal(datasync_v1_data_sync_list(fx->cli, &lreq, &lresp,
	                     NULL, &st),
	    NRPC_OK);
	assert_int_equal(lresp->n_records, 1);
	assert_string_equal(lresp->records[0]->key, "a/1");
	datasync__v1__list_response__free_unpacked(lresp, NULL);
	assert_int_equal(drt_pool_reads(fx), 2);
	nrpc_status_fini(&st);
}

/* --- the pool itself --- */

typedef struct drt_job {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool release;
	int started;
	int ran;
	pthread_t thread[4];
	bool had_conn[4];
} drt_job;

static void
drt_block(void *a, const void *b, store_conn *c)
{
	drt_job *j = a;
	int i;

	(void) b;
	pthread_mutex_lock(&j->mu);
	i = j->started++;
	j->thread[i] = pthread_self();
	j->had_conn[i] = c != NULL;
	pthread_cond_broadcast(&j->cv);
	while (!j->release) {
		pthread_cond_wait(&j->cv, &j->mu);
	}
	j->ran++;
	pthread_mutex_unlock(&j->mu);
}

static void
test_a_full_reader_queue_refuses_past_max_read_queue(void **state)
{
	store_config scfg;
	store *s;
	dsh_readers *r;
	drt_job j;
	nrpc_status st = {0};

	(void) state;
	memset(&st, 0, sizeof(st));
	memset(&j, 0, sizeof(j));
	pthread_mutex_init(&j.mu, NULL);
	pthread_cond_init(&j.cv, NULL);
	store_config_default(&scfg);
	scfg.path = ":memory:";
	assert_int_equal(store_open(&scfg, &s, NULL), STORE_OK);
	assert_int_equal(dsh_readers_create(s, 1, 1, &r, &st), NRPC_OK);
	assert_int_equal(dsh_readers_max_queue(r), 1);

	/* The one reader takes the first job and blocks in it... */
	assert_int_equal(dsh_readers_submit(r, drt_block, &j, NULL),
	    DSH_SUBMIT_OK);
	pthread_mutex_lock(&j.mu);
	while (j.started < 1) {
		pthread_cond_wait(&j.cv, &j.mu);
	}
	pthread_mutex_unlock(&j.mu);
	/* ...one more fits the queue, the next one does not. */
	assert_int_equal(dsh_readers_submit(r, drt_block, &j, NULL),
	    DSH_SUBMIT_OK);
	assert_int_equal(dsh_readers_submit(r, drt_block, &j, NULL),
	    DSH_SUBMIT_FULL);

	pthread_mutex_lock(&j.mu);
	j.release = true;
	pthread_cond_broadcast(&j.cv);
	pthread_mutex_unlock(&j.mu);
	dsh_readers_destroy(r); /* runs the queued job first */
	assert_int_equal(j.ran, 2);
	for (int i = 0; i < 2; i++) {
		assert_false(pthread_equal(j.thread[i], pthread_self()));
		assert_true(j.had_conn[i]);
	}
	store_close(s);
	pthread_cond_destroy(&j.cv);
	pthread_mutex_destroy(&j.mu);
	nrpc_status_fini(&st);
}

static void
test_reader_pool_limits_are_enforced(void **state)
{
	store_config scfg;
	store *s;
	dsh_readers *r = NULL;
	dsh_service *svc = NULL;
	dsh_config dcfg;
	nrpc_status st = {0};

	(void) state;
	memset(&st, 0, sizeof(st));
	store_config_default(&scfg);
	scfg.path = ":memory:";
	assert_int_equal(store_open(&scfg, &s, NULL), STORE_OK);
	assert_int_equal(dsh_readers_create(s, DSH_READERS_HARD + 1, 0, &r,
	                     &st),
	    NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.field, "readers");
	assert_int_equal(dsh_readers_create(s, 1,
	                     (size_t) DSH_MAX_READ_QUEUE_HARD + 1, &r, &st),
	    NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.field, "max_read_queue");
	assert_non_null(strstr(st.message, "max_read_queue"));
	assert_null(r);
	memset(&dcfg, 0, sizeof(dcfg));
	dcfg.store = s;
	dcfg.readers = DSH_READERS_HARD + 1;
	assert_int_equal(dsh_service_create(&dcfg, &svc, &st),
	    NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.field, "readers");
	assert_null(svc);
	store_close(s);
	nrpc_status_fini(&st);
}

static void
test_db_busy_is_unavailable_with_its_reason(void **state)
{
	store_error err;
	nrpc_status st = {0};

	(void) state;
	memset(&err, 0, sizeof(err));
	memset(&st, 0, sizeof(st));
	err.code = STORE_EBUSY;
	(void) snprintf(err.message, sizeof(err.message),
	    "beginning a write: gave up after busy_timeout_ms (5000)");
	assert_int_equal(dsh_status_from_store(&err, NULL, false, &st),
	    NRPC_UNAVAILABLE);
	assert_string_equal(st.reason, "DB_BUSY");
	assert_non_null(strstr(st.message, "busy_timeout_ms (5000)"));
	assert_int_equal(st.retry_after_ms, DSH_RETRY_AFTER_MS);
	nrpc_status_fini(&st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_list_and_historical_get_run_on_the_reader_pool, drt_setup,
	        drt_teardown),
	    cmocka_unit_test(
	        test_a_full_reader_queue_refuses_past_max_read_queue),
	    cmocka_unit_test(test_reader_pool_limits_are_enforced),
	    cmocka_unit_test(test_db_busy_is_unavailable_with_its_reason),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
