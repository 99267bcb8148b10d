/*
 * it_restart_test.c - durability (DESIGN §4 rule 7): writes acknowledged
 * before a kill -9 of datasyncd are all there after a restart, nothing
 * unacknowledged is half-applied, and the database passes
 * PRAGMA integrity_check.
 *
 * Writers update their own key with if_version in a loop; the value
 * spells out the version it was written at, so a record whose value and
 * version disagree would be a half-applied write. The daemon is killed
 * at a random moment while they run, IT_KILLS times.
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
#ifndef IT_KILLS
#define IT_KILLS 3
#endif

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

static void
test_acknowledged_writes_survive_kill_9(void **state)
{
	ds_daemon d;
	it_writer ws[IT_WRITERS];
	uint64_t seed = ds_test_seed();
	unsigned long total = 0;

	(void) state;
	srand((unsigned) seed);
	assert_int_equal(ds_daemon_start(&d, false, NULL), 0);
	for (int i = 0; i < IT_WRITERS; i++) {
		ws[i].id = i;
		ws[i].url = d.ipc_url;
		atomic_init(&ws[i].acked, 0);
		ws[i].writes = 0;
	}
	for (int k = 0; k < IT_KILLS; k++) {
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
		assert_int_equal(ds_daemon_restart(&d, false, NULL), 0);
		it_check(&d, ws);
	}
	for (int i = 0; i < IT_WRITERS; i++) {
		total += ws[i].writes;
	}
	printf("durability: %d kills survived, %lu acknowledged writes checked, "
	       "0 lost\n", IT_KILLS, total);
	assert_true(total > 0);
	assert_int_equal(ds_daemon_stop(&d), 0);
	it_integrity(d.db);
	ds_daemon_fini(&d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_acknowledged_writes_survive_kill_9),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
