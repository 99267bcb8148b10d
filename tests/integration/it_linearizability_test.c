/*
 * it_linearizability_test.c - real threads run concurrent Get, CAS-Update
 * and Delete on a few keys of a live datasyncd, recording when each call
 * was invoked and when its reply arrived; the checker (tests/support/
 * ds_lincheck) then proves each key's history linearizable (DESIGN §4
 * rule 8). Calls that time out are recorded as pending: they may or may
 * not have taken effect.
 *
 * DS_TEST_SEED replays the random choices; DS_LIN_SECONDS runs longer.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "datasync.h"
#include "ds_daemon.h"
#include "ds_lincheck.h"
#include "ds_test.h"

#define LIN_THREADS 6
#define LIN_KEYS 3
#define LIN_MAX_OPS 20000

typedef struct lin_thread {
	int id;
	uint64_t seed;
	const char *url;
	int64_t until_ns;
	ds_lin_op *ops[LIN_KEYS];
	size_t n[LIN_KEYS];
	uint64_t seen_version[LIN_KEYS]; /* last version this thread saw */
	bool seen_exists[LIN_KEYS];
	uint64_t counter;
} lin_thread;

static int64_t
lin_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t
lin_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static uint64_t
lin_decode_value(const ProtobufCBinaryData *v)
{
	uint64_t x = 0;

	if (v->len == sizeof(x)) {
		memcpy(&x, v->data, sizeof(x));
	}
	return x;
}

/* lin_conflict_version: the current version a conflict reported. */
static uint64_t
lin_conflict_version(const nrpc_status *st)
{
	Datasync__V1__Record *r = NULL;
	uint64_t v = 0;

	if (datasync_status_record(st, &r) == NRPC_OK) {
		v = r->version;
		datasync__v1__record__free_unpacked(r, NULL);
	}
	return v;
}

static void
lin_one(lin_thread *t, datasync_client *c, int k, const char *key)
{
	ds_lin_op op;
	nrpc_status st = {0};
	uint64_t r = lin_rand(&t->seed) % 100;
	nrpc_code rv;

	memset(&op, 0, sizeof(op));
	if (r < 40) {
		Datasync__V1__GetRequest req = DATASYNC__V1__GET_REQUEST__INIT;
		Datasync__V1__GetResponse *resp = NULL;

		req.key = (char *) key;
		op.kind = DS_LIN_GET;
		op.call_ns = lin_now_ns();
		rv = datasync_v1_data_sync_get(datasync_rpc(c), &req, &resp, NULL,
		    &st);
		op.ret_ns = lin_now_ns();
		if (rv == NRPC_OK) {
			op.ok = true;
			op.version = resp->record->version;
			op.value = lin_decode_value(&resp->record->value);
			t->seen_exists[k] = true;
			t->seen_version[k] = op.version;
			datasync__v1__get_response__free_unpacked(resp, NULL);
		} else if (rv == NRPC_NOT_FOUND) {
			op.ok = false;
			t->seen_exists[k] = false;
		} else {
			goto skip; /* a read with no answer constrains nothing */
		}
	} else if (r < 85) {
		Datasync__V1__UpdateRequest req = DATASYNC__V1__UPDATE_REQUEST__INIT;
		Datasync__V1__Precondition pre = DATASYNC__V1__PRECONDITION__INIT;
		Datasync__V1__UpdateResponse *resp = NULL;
		uint64_t val = ((uint64_t) t->id << 40) | ++t->counter;

		op.kind = DS_LIN_CAS;
		op.write_value = val;
		if (!t->seen_exists[k]) {
			op.if_absent = true;
			pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_ABSENT;
			pre.if_absent = 1;
		} else {
			op.if_version = t->seen_version[k];
			pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_VERSION;
			pre.if_version = op.if_version;
		}
		req.key = (char *) key;
		req.value.data = (uint8_t *) &val;
		req.value.len = sizeof(val);
		req.precondition = &pre;
		op.call_ns = lin_now_ns();
		rv = datasync_v1_data_sync_update(datasync_rpc(c), &req, &resp, NULL,
		    &st);
		op.ret_ns = lin_now_ns();
		if (rv == NRPC_OK) {
			op.ok = true;
			op.version = resp->record->version;
			t->seen_exists[k] = true;
			t->seen_version[k] = op.version;
			datasync__v1__update_response__free_unpacked(resp, NULL);
		} else if (strcmp(st.reason, "VERSION_CONFLICT") == 0) {
			Datasync__V1__Record *cur = NULL;

			op.ok = false;
			op.version = lin_conflict_version(&st);
			if (datasync_status_record(&st, &cur) == NRPC_OK) {
				t->seen_exists[k] = !cur->deleted && cur->version > 0;
				t->seen_version[k] = cur->version;
				datasync__v1__record__free_unpacked(cur, NULL);
			}
		} else {
			op.ret_ns = DS_LIN_PENDING;
		}
	} else {
		Datasync__V1__DeleteRequest req = DATASYNC__V1__DELETE_REQUEST__INIT;
		Datasync__V1__Precondition pre = DATASYNC__V1__PRECONDITION__INIT;
		Datasync__V1__DeleteResponse *resp = NULL;

		if (!t->seen_exists[k]) {
			goto skip;
		}
		op.kind = DS_LIN_DELETE;
		op.if_version = t->seen_version[k];
		pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_VERSION;
		pre.if_version = op.if_version;
		req.key = (char *) key;
		req.precondition = &pre;
		op.call_ns = lin_now_ns();
		rv = datasync_v1_data_sync_delete(datasync_rpc(c), &req, &resp, NULL,
		    &st);
		op.ret_ns = lin_now_ns();
		if (rv == NRPC_OK) {
			op.ok = true;
			op.version = resp->version;
			t->seen_exists[k] = false;
			t->seen_version[k] = resp->version;
			datasync__v1__delete_response__free_unpacked(resp, NULL);
		} else if (strcmp(st.reason, "VERSION_CONFLICT") == 0) {
			op.ok = false;
			op.version = lin_conflict_version(&st);
		} else {
			op.ret_ns = DS_LIN_PENDING;
		}
	}
	if (t->n[k] < LIN_MAX_OPS) {
		t->ops[k][t->n[k]++] = op;
	}
skip:
	nrpc_status_fini(&st);
}

static void *
lin_thread_main(void *arg)
{
	lin_thread *t = arg;
	datasync_client *c = NULL;
	nrpc_status st = {0};
	char key[32];

	if (datasync_connect(&t->url, 1, 5000, "it-lin", &c, &st) != NRPC_OK) {
		nrpc_status_fini(&st);
		return NULL;
	}
	while (lin_now_ns() < t->until_ns) {
		int k = (int) (lin_rand(&t->seed) % LIN_KEYS);

		snprintf(key, sizeof(key), "lin/k%d", k);
		lin_one(t, c, k, key);
	}
	datasync_close(c);
	return NULL;
}

static void
test_concurrent_history_is_linearizable(void **state)
{
	ds_daemon d;
	lin_thread th[LIN_THREADS];
	pthread_t tid[LIN_THREADS];
	uint64_t seed = ds_test_seed();
	const char *secs_env = getenv("DS_LIN_SECONDS");
	int secs = secs_env ? atoi(secs_env) : 3;
	size_t total = 0;
	uint64_t states = 0;

	(void) state;
	assert_int_equal(ds_daemon_start(&d, false, NULL), 0);
	for (int i = 0; i < LIN_THREADS; i++) {
		memset(&th[i], 0, sizeof(th[i]));
		th[i].id = i + 1;
		th[i].seed = seed * 2654435761u + (uint64_t) i + 1;
		th[i].url = i % 2 ? d.ipc_url : d.tcp_url;
		th[i].until_ns = lin_now_ns() + (int64_t) secs * 1000000000;
		for (int k = 0; k < LIN_KEYS; k++) {
			th[i].ops[k] = calloc(LIN_MAX_OPS, sizeof(ds_lin_op));
			assert_non_null(th[i].ops[k]);
		}
	}
	for (int i = 0; i < LIN_THREADS; i++) {
		assert_int_equal(pthread_create(&tid[i], NULL, lin_thread_main, &th[i]),
		    0);
	}
	for (int i = 0; i < LIN_THREADS; i++) {
		pthread_join(tid[i], NULL);
	}
	for (int k = 0; k < LIN_KEYS; k++) {
		size_t n = 0;
		ds_lin_op *all;
		ds_lin_result res;

		for (int i = 0; i < LIN_THREADS; i++) {
			n += th[i].n[k];
		}
		all = calloc(n + 1, sizeof(*all));
		assert_non_null(all);
		n = 0;
		for (int i = 0; i < LIN_THREADS; i++) {
			memcpy(all + n, th[i].ops[k], th[i].n[k] * sizeof(*all));
			n += th[i].n[k];
		}
		assert_int_equal(ds_lin_check(all, n, 50000000, &res), 0);
		printf("linearizability: key lin/k%d: %zu operations, %llu states "
		       "explored: %s\n", k, n, (unsigned long long) res.states,
		    res.linearizable ? "linearizable"
		                     : (res.gave_up ? "GAVE UP" : "NOT LINEARIZABLE"));
		assert_false(res.gave_up);
		assert_true(res.linearizable);
		total += n;
		states += res.states;
		free(all);
	}
	assert_true(total > 100);
	for (int i = 0; i < LIN_THREADS; i++) {
		for (int k = 0; k < LIN_KEYS; k++) {
			free(th[i].ops[k]);
		}
	}
	assert_int_equal(ds_daemon_stop(&d), 0);
	ds_daemon_fini(&d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_concurrent_history_is_linearizable),
	};

	/* cmocka does not count a failed group teardown: a daemon that
	 * leaked or hung at exit fails the test here (ds_daemon.h). */
	return cmocka_run_group_tests(tests, NULL, NULL) +
	       ds_daemon_failures();
}
