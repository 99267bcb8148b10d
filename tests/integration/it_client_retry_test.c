/*
 * it_client_retry_test.c - datasync_update_with_retry against an
 * in-process DataSync stand-in whose conflicts carry a record detail that
 * does not decode: the loop then re-reads the key with the status it
 * already holds, and that status's detail must be freed, not leaked
 * (review 80a70b6 #10, "an inconsistent out-parameter contract"). The
 * leak is what LeakSanitizer (build-asan) reports without the fix.
 */
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

#include "datasync.h"

typedef struct fake {
	atomic_uint gets;
	atomic_uint updates;
} fake;

static void
fake_get(nrpc_call *call, const Datasync__V1__GetRequest *req, void *arg)
{
	fake *f = arg;

	atomic_fetch_add(&f->gets, 1);
	nrpc_call_fail(call, NRPC_NOT_FOUND, "NOT_FOUND", "key",
	    "no record %s", req->key);
}

/* Every Update conflicts, with a Record detail that is an unterminated
 * varint: datasync_status_record fails with NRPC_INTERNAL. */
static void
fake_update(nrpc_call *call, const Datasync__V1__UpdateRequest *req,
    void *arg)
{
	static const uint8_t bad[] = {0xff, 0xff, 0xff};
	fake *f = arg;
	nrpc_status st = {0};

	(void) req;
	atomic_fetch_add(&f->updates, 1);
	nrpc_status_set(&st, NRPC_ABORTED, "VERSION_CONFLICT", "precondition",
	    "another writer got there first");
	assert_int_equal(nrpc_status_set_detail_bytes(&st,
	    datasync__v1__record__descriptor.name, bad, sizeof(bad)), NRPC_OK);
	nrpc_call_finish(call, &st, NULL);
	nrpc_status_fini(&st);
}

static const datasync_v1_data_sync_handlers fake_handlers = {
    .get = fake_get, .update = fake_update};

static int
mutate_x(void *ctx, const Datasync__V1__Record *cur, uint8_t **value,
    size_t *len)
{
	(void) ctx;
	(void) cur;
	if ((*value = malloc(1)) == NULL) {
		return 1;
	}
	(*value)[0] = 'x';
	*len = 1;
	return 0;
}

static void
test_retry_after_an_undecodable_conflict_detail_frees_it(void **state)
{
	char url[96];
	const char *urls[1] = {url};
	nrpc_server_config cfg;
	nrpc_server *srv = NULL;
	datasync_client *c = NULL;
	datasync_retry_stats stats;
	nrpc_status st = {0};
	fake f;

	(void) state;
	atomic_init(&f.gets, 0);
	atomic_init(&f.updates, 0);
	(void) snprintf(url, sizeof(url), "inproc://it-client-retry-%d",
	    (int) getpid());
	nrpc_server_config_default(&cfg);
	cfg.urls = urls;
	cfg.n_urls = 1;
	cfg.workers = 1;
	assert_int_equal(nrpc_server_create(&cfg, &srv, &st), NRPC_OK);
	assert_int_equal(datasync_v1_data_sync_register(srv, &fake_handlers, &f,
	    &st), NRPC_OK);
	assert_int_equal(nrpc_server_start(srv, &st), NRPC_OK);
	assert_int_equal(datasync_connect(urls, 1, 5000, "retry-test", &c, &st),
	    NRPC_OK);

	assert_int_equal(datasync_update_with_retry(c, "k", mutate_x, NULL, 3,
	    &stats, &st), NRPC_ABORTED);
	assert_string_equal(st.reason, "VERSION_CONFLICT");
	assert_int_equal(stats.attempts, 3);
	assert_int_equal(stats.conflicts, 2);
	assert_int_equal(atomic_load(&f.updates), 3);
	/* The first read, then one after each undecodable conflict: the
	 * path that used to overwrite the status's detail. */
	assert_int_equal(atomic_load(&f.gets), 3);
	nrpc_status_fini(&st);

	datasync_close(c);
	nrpc_server_destroy(srv);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
	        test_retry_after_an_undecodable_conflict_detail_frees_it),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
