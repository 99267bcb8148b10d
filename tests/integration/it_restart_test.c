/*
 * it_restart_test.c - durability (DESIGN §4 rule 7): writes acknowledged
 * before a kill -9 of datasyncd are all there after a restart, nothing
 * unacknowledged is half-applied, the database passes
 * PRAGMA integrity_check, and lock state after a restart follows the
 * leases (a live lease survives, an expired one is no lock).
 *
 * Writers update their own key with if_version in a loop; the value
 * spells out the version it was written at, so a record whose value and
 * version disagree would be a half-applied write. The daemon is killed
 * at a random moment while they run, DS_KILLS times (default 20), once
 * with --durability full and once with --durability normal (which may lose
 * the last commits on a power loss, but nothing on a process crash: the
 * WAL is in the OS page cache either way).
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
#include <time.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "datasync.h"
#include "ds_daemon.h"
#include "ds_test.h"

#define IT_WRITERS 4
#define IT_KILLS_DEFAULT 20

typedef struct it_writer {
	int id;
	const char *url;
	atomic_ullong acked;   /* last version acknowledged to us */
	atomic_bool stop;
	unsigned long writes;
} it_writer;

static void *
it_writer_main(void *arg)
{
	it_writer *w = arg;
	datasync_client *c = NULL;
	nrpc_status st = {0};
	char key[32];
	char val[64];

	snprintf(key, sizeof(key), "restart/w%d", w->id);
	if (datasync_connect(&w->url, 1, 2000, "it-restart", &c, &st) !=
	    NRPC_OK) {
		nrpc_status_fini(&st);
		return NULL;
	}
	while (!atomic_load(&w->stop)) {
		Datasync__V1__UpdateRequest req = DATASYNC__V1__UPDATE_REQUEST__INIT;
		Datasync__V1__Precondition pre = DATASYNC__V1__PRECONDITION__INIT;
		Datasync__V1__UpdateResponse *resp = NULL;
		uint64_t have = atomic_load(&w->acked);

		snprintf(val, sizeof(val), "w%d@%llu", w->id,
		    (unsigned long long) have + 1);
		req.key = key;
		req.value.data = (uint8_t *) val;
		req.value.len = strlen(val);
		if (have == 0) {
			pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_ABSENT;
			pre.if_absent = 1;
		} else {
			pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_VERSION;
			pre.if_version = have;
		}
		req.precondition = &pre;
		if (datasync_v1_data_sync_update(datasync_rpc(c), &req, &resp, NULL,
		        &st) != NRPC_OK) {
			/* The server is gone (or the write conflicted with our own
			 * unacknowledged one after a restart): stop here. */
			nrpc_status_fini(&st);
			break;
		}
		if (resp->record->version != have + 1) {
			fprintf(stderr, "writer %d: wrote version %llu, expected %llu\n",
			    w->id, (unsigned long long) resp->record->version,
			    (unsigned long long) have + 1);
		}
		atomic_store(&w->acked, resp->record->version);
		w->writes++;
		datasync__v1__update_response__free_unpacked(resp, NULL);
	}
	datasync_close(c);
	return NULL;
}

/* it_check verifies every writer's key after a restart. */
static void
it_check(const ds_daemon *d, it_writer *ws)
{
	datasync_client *c = NULL;
	nrpc_status st = {0};

	assert_int_equal(datasync_connect((const char *const[]){d->ipc_url}, 1,
	                     5000, "it-check", &c, &st),
	    NRPC_OK);
	for (int i = 0; i < IT_WRITERS; i++) {
		Datasync__V1__GetRequest req = DATASYNC__V1__GET_REQUEST__INIT;
		Datasync__V1__GetResponse *resp = NULL;
		char key[32];
		char want[64];
		uint64_t acked = atomic_load(&ws[i].acked);
		uint64_t v;

		snprintf(key, sizeof(key), "restart/w%d", i);
		req.key = key;
		if (acked == 0) {
			continue;
		}
		assert_int_equal(datasync_v1_data_sync_get(datasync_rpc(c), &req,
		                     &resp, NULL, &st),
		    NRPC_OK);
		v = resp->record->version;
		/* Every acknowledged write is there; at most the one write in
		 * flight at the kill was applied without its reply. */
		if (v < acked || v > acked + 1) {
			fail_msg("%s: version %llu after restart, %llu acknowledged",
			    key, (unsigned long long) v, (unsigned long long) acked);
		}
		snprintf(want, sizeof(want), "w%d@%llu", i, (unsigned long long) v);
		assert_int_equal(resp->record->value.len, strlen(want));
		assert_memory_equal(resp->record->value.data, want, strlen(want));
		atomic_store(&ws[i].acked, v);
		datasync__v1__get_response__free_unpacked(resp, NULL);
	}
	datasync_close(c);
}

static void
it_integrity(const char *db)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *s = NULL;

	assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &s,
	                     NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_string_equal((const char *) sqlite3_column_text(s, 0), "ok");
	sqlite3_finalize(s);
	sqlite3_close(h);
}

/* it_lock takes a lease; returns its fencing token. */
static uint64_t
it_lock(const ds_daemon *d, const char *key, int64_t ttl_ms)
{
	datasync_client *c = NULL;
	nrpc_status st = {0};
	Datasync__V1__LockRequest req = DATASYNC__V1__LOCK_REQUEST__INIT;
	Datasync__V1__LockResponse *resp = NULL;
	uint64_t fence;

	assert_int_equal(datasync_connect((const char *const[]){d->ipc_url}, 1,
	                     5000, "it-lock", &c, &st),
	    NRPC_OK);
	req.key = (char *) key;
	req.owner = "restart-holder";
	req.ttl_ms = ttl_ms;
	assert_int_equal(datasync_v1_data_sync_lock(datasync_rpc(c), &req, &resp,
	                     NULL, &st),
	    NRPC_OK);
	fence = resp->lock->fencing_token;
	datasync__v1__lock_response__free_unpacked(resp, NULL);
	datasync_close(c);
	return fence;
}

/* it_lock_shown returns the fencing token of the live lease on key, or 0
 * when the record shows no lock. */
static uint64_t
it_lock_shown(const ds_daemon *d, const char *key)
{
	datasync_client *c = NULL;
	nrpc_status st = {0};
	Datasync__V1__ListRequest req = DATASYNC__V1__LIST_REQUEST__INIT;
	Datasync__V1__ListResponse *resp = NULL;
	uint64_t fence = 0;

	assert_int_equal(datasync_connect((const char *const[]){d->ipc_url}, 1,
	                     5000, "it-lock", &c, &st),
	    NRPC_OK);
	req.prefix = (char *) key;
	assert_int_equal(datasync_v1_data_sync_list(datasync_rpc(c), &req, &resp,
	                     NULL, &st),
	    NRPC_OK);
	for (size_t i = 0; i < resp->n_records; i++) {
		if (strcmp(resp->records[i]->key, key) == 0 &&
		    resp->records[i]->lock != NULL) {
			fence = resp->records[i]->lock->fencing_token;
		}
	}
	datasync__v1__list_response__free_unpacked(resp, NULL);
	datasync_close(c);
	return fence;
}

static void
it_put_plain(const ds_daemon *d, const char *key)
{
	datasync_client *c = NULL;
	nrpc_status st = {0};
	Datasync__V1__UpdateRequest req = DATASYNC__V1__UPDATE_REQUEST__INIT;
	Datasync__V1__Precondition pre = DATASYNC__V1__PRECONDITION__INIT;
	Datasync__V1__UpdateResponse *resp = NULL;

	assert_int_equal(datasync_connect((const char *const[]){d->ipc_url}, 1,
	                     5000, "it-lock", &c, &st),
	    NRPC_OK);
	req.key = (char *) key;
	pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_UNCONDITIONAL;
	pre.unconditional = 1;
	req.precondition = &pre;
	assert_int_equal(datasync_v1_data_sync_update(datasync_rpc(c), &req,
	                     &resp, NULL, &st),
	    NRPC_OK);
	datasync__v1__update_response__free_unpacked(resp, NULL);
	datasync_close(c);
}

static void
it_kill_cycles(const char *durability)
{
	ds_daemon d;
	it_writer ws[IT_WRITERS];
	uint64_t seed = ds_test_seed();
	unsigned long total = 0;
	const char *env = getenv("DS_KILLS");
	int kills = env != NULL ? atoi(env) : IT_KILLS_DEFAULT;
	const char *const extra[] = {"--durability", durability, NULL};
	uint64_t long_fence;
	struct timespec gap = {1, 300000000L};

	srand((unsigned) seed);
	assert_int_equal(ds_daemon_start(&d, false, extra), 0);
	/* A lease that outlives the test, and one that expires before the
	 * first restart is checked. */
	it_put_plain(&d, "restart/held");
	it_put_plain(&d, "restart/lapsed");
	long_fence = it_lock(&d, "restart/held", 600000);
	(void) it_lock(&d, "restart/lapsed", 1000);
	nanosleep(&gap, NULL);
	for (int i = 0; i < IT_WRITERS; i++) {
		ws[i].id = i;
		ws[i].url = d.ipc_url;
		atomic_init(&ws[i].acked, 0);
		ws[i].writes = 0;
	}
	for (int k = 0; k < kills; k++) {
		pthread_t th[IT_WRITERS];
		struct timespec pause;
		long ms = 100 + rand() % 400;

		for (int i = 0; i < IT_WRITERS; i++) {
			atomic_store(&ws[i].stop, false);
			assert_int_equal(
			    pthread_create(&th[i], NULL, it_writer_main, &ws[i]), 0);
		}
		pause.tv_sec = ms / 1000;
		pause.tv_nsec = (ms % 1000) * 1000000L;
		nanosleep(&pause, NULL);
		ds_daemon_kill9(&d);
		for (int i = 0; i < IT_WRITERS; i++) {
			atomic_store(&ws[i].stop, true);
		}
		for (int i = 0; i < IT_WRITERS; i++) {
			pthread_join(th[i], NULL);
		}
		assert_int_equal(ds_daemon_restart(&d, false, extra), 0);
		it_check(&d, ws);
		assert_int_equal(it_lock_shown(&d, "restart/held"), long_fence);
		assert_int_equal(it_lock_shown(&d, "restart/lapsed"), 0);
	}
	for (int i = 0; i < IT_WRITERS; i++) {
		total += ws[i].writes;
	}
	printf("durability %s: %d kills survived, %lu acknowledged writes "
	       "checked, 0 lost\n", durability, kills, total);
	assert_true(total > 0);
	assert_int_equal(ds_daemon_stop(&d), 0);
	it_integrity(d.db);
	ds_daemon_fini(&d);
}

static void
test_acknowledged_writes_survive_kill_9_with_full_durability(void **state)
{
	(void) state;
	it_kill_cycles("full");
}

static void
test_acknowledged_writes_survive_kill_9_with_normal_durability(void **state)
{
	(void) state;
	it_kill_cycles("normal");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
	        test_acknowledged_writes_survive_kill_9_with_full_durability),
	    cmocka_unit_test(
	        test_acknowledged_writes_survive_kill_9_with_normal_durability),
	};

	/* cmocka does not count a failed group teardown: a daemon that
	 * leaked or hung at exit fails the test here (ds_daemon.h). */
	return cmocka_run_group_tests(tests, NULL, NULL) +
	       ds_daemon_failures();
}
