/*
 * ds_linrec.c - see ds_linrec.h. The recorder follows
 * it_linearizability_test.c's: each CAS writes a value unique to its
 * thread and call, so a Get names the write it saw; a write with no
 * answer (timeout, node gone) is pending; a read with no answer is
 * dropped, since it constrains nothing.
 */
#include "ds_linrec.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "datasync.h"
#include "ds_lincheck.h"

typedef struct ds_linrec_thread {
	int id;
	uint64_t seed;
	const char *url;
	const char *prefix;
	int keys;
	int64_t until_ns;
	ds_lin_op *ops[DS_LINREC_MAX_KEYS];
	size_t n[DS_LINREC_MAX_KEYS];
	uint64_t seen_version[DS_LINREC_MAX_KEYS]; /* last version seen */
	bool seen_exists[DS_LINREC_MAX_KEYS];
	uint64_t counter;
	bool connect_failed;
} ds_linrec_thread;

static int64_t
ds_linrec_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t
ds_linrec_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static uint64_t
ds_linrec_value(const ProtobufCBinaryData *v)
{
	uint64_t x = 0;

	if (v->len == sizeof(x)) {
		memcpy(&x, v->data, sizeof(x));
	}
	return x;
}

/* ds_linrec_conflict: the current record a conflict carried, if any. */
static bool
ds_linrec_conflict(const nrpc_status *st, uint64_t *version, bool *exists)
{
	Datasync__V1__Record *r = NULL;

	if (datasync_status_record(st, &r) != NRPC_OK) {
		return false;
	}
	*version = r->version;
	*exists = !r->deleted && r->version > 0;
	datasync__v1__record__free_unpacked(r, NULL);
	return true;
}

static void
ds_linrec_get(ds_linrec_thread *t, datasync_client *c, int k,
    const char *key)
{
	Datasync__V1__GetRequest req = DATASYNC__V1__GET_REQUEST__INIT;
	Datasync__V1__GetResponse *resp = NULL;
	nrpc_status st = {0};
	ds_lin_op op;
	nrpc_code rv;

	memset(&op, 0, sizeof(op));
	req.key = (char *) key;
	op.kind = DS_LIN_GET;
	op.call_ns = ds_linrec_now_ns();
	rv = datasync_v1_data_sync_get(datasync_rpc(c), &req, &resp, NULL, &st);
	op.ret_ns = ds_linrec_now_ns();
	if (rv == NRPC_OK) {
		op.ok = true;
		op.version = resp->record->version;
		op.value = ds_linrec_value(&resp->record->value);
		t->seen_exists[k] = true;
		t->seen_version[k] = op.version;
		datasync__v1__get_response__free_unpacked(resp, NULL);
	} else if (rv == NRPC_NOT_FOUND) {
		t->seen_exists[k] = false;
	}
	if ((rv == NRPC_OK || rv == NRPC_NOT_FOUND) &&
	    t->n[k] < DS_LINREC_MAX_OPS) {
		t->ops[k][t->n[k]++] = op;
	}
	nrpc_status_fini(&st);
}

static void
ds_linrec_cas(ds_linrec_thread *t, datasync_client *c, int k,
    const char *key)
{
	Datasync__V1__UpdateRequest req = DATASYNC__V1__UPDATE_REQUEST__INIT;
	Datasync__V1__Precondition pre = DATASYNC__V1__PRECONDITION__INIT;
	Datasync__V1__UpdateResponse *resp = NULL;
	nrpc_status st = {0};
	uint64_t val = ((uint64_t) t->id << 40) | ++t->counter;
	ds_lin_op op;
	nrpc_code rv;

	memset(&op, 0, sizeof(op));
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
	op.call_ns = ds_linrec_now_ns();
	rv = datasync_v1_data_sync_update(datasync_rpc(c), &req, &resp, NULL,
	    &st);
	op.ret_ns = ds_linrec_now_ns();
	if (rv == NRPC_OK) {
		op.ok = true;
		op.version = resp->record->version;
		t->seen_exists[k] = true;
		t->seen_version[k] = op.version;
		datasync__v1__update_response__free_unpacked(resp, NULL);
	} else if (strcmp(st.reason, "VERSION_CONFLICT") == 0) {
		bool exists = false;
		uint64_t v = 0;

		if (ds_linrec_conflict(&st, &v, &exists)) {
			op.version = v;
			t->seen_exists[k] = exists;
			t->seen_version[k] = v;
		}
	} else {
		op.ret_ns = DS_LIN_PENDING;
	}
	if (t->n[k] < DS_LINREC_MAX_OPS) {
		t->ops[k][t->n[k]++] = op;
	}
	nrpc_status_fini(&st);
}

static void
ds_linrec_delete(ds_linrec_thread *t, datasync_client *c, int k,
    const char *key)
{
	Datasync__V1__DeleteRequest req = DATASYNC__V1__DELETE_REQUEST__INIT;
	Datasync__V1__Precondition pre = DATASYNC__V1__PRECONDITION__INIT;
	Datasync__V1__DeleteResponse *resp = NULL;
	nrpc_status st = {0};
	ds_lin_op op;
	nrpc_code rv;

	if (!t->seen_exists[k]) {
		return;
	}
	memset(&op, 0, sizeof(op));
	op.kind = DS_LIN_DELETE;
	op.if_version = t->seen_version[k];
	pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_VERSION;
	pre.if_version = op.if_version;
	req.key = (char *) key;
	req.precondition = &pre;
	op.call_ns = ds_linrec_now_ns();
	rv = datasync_v1_data_sync_delete(datasync_rpc(c), &req, &resp, NULL,
	    &st);
	op.ret_ns = ds_linrec_now_ns();
	if (rv == NRPC_OK) {
		op.ok = true;
		op.version = resp->version;
		t->seen_exists[k] = false;
		t->seen_version[k] = resp->version;
		datasync__v1__delete_response__free_unpacked(resp, NULL);
	} else if (strcmp(st.reason, "VERSION_CONFLICT") == 0) {
		bool exists = false;
		uint64_t v = 0;

		if (ds_linrec_conflict(&st, &v, &exists)) {
			op.version = v;
		}
	} else {
		op.ret_ns = DS_LIN_PENDING;
	}
	if (t->n[k] < DS_LINREC_MAX_OPS) {
		t->ops[k][t->n[k]++] = op;
	}
	nrpc_status_fini(&st);
}

static void *
ds_linrec_main(void *arg)
{
	ds_linrec_thread *t = arg;
	datasync_client *c = NULL;
	nrpc_status st = {0};
	char key[64];

	if (datasync_connect(&t->url, 1, 5000, "ds-linrec", &c, &st) !=
	    NRPC_OK) {
		t->connect_failed = true;
		nrpc_status_fini(&st);
		return NULL;
	}
	while (ds_linrec_now_ns() < t->until_ns) {
		int k = (int) (ds_linrec_rand(&t->seed) % (uint64_t) t->keys);
		uint64_t r = ds_linrec_rand(&t->seed) % 100;

		(void) snprintf(key, sizeof(key), "%sk%d", t->prefix, k);
		if (r < 40) {
			ds_linrec_get(t, c, k, key);
		} else if (r < 85) {
			ds_linrec_cas(t, c, k, key);
		} else {
			ds_linrec_delete(t, c, k, key);
		}
	}
	datasync_close(c);
	return NULL;
}

/* ds_linrec_check_key merges every thread's ops on key k and checks. */
static int
ds_linrec_check_key(const ds_linrec_config *cfg, ds_linrec_thread *th,
    int k, ds_linrec_report *out)
{
	ds_lin_result res;
	ds_lin_op *all;
	size_t n = 0;
	int rv = -1;

	for (int i = 0; i < cfg->threads; i++) {
		n += th[i].n[k];
	}
	if ((all = calloc(n + 1, sizeof(*all))) == NULL) {
		return -1;
	}
	n = 0;
	for (int i = 0; i < cfg->threads; i++) {
		memcpy(all + n, th[i].ops[k], th[i].n[k] * sizeof(*all));
		n += th[i].n[k];
	}
	for (size_t i = 0; i < n; i++) {
		out->pending += all[i].ret_ns == DS_LIN_PENDING;
	}
	if (ds_lin_check(all, n, cfg->max_states, &res) == 0) {
		printf("linearizability: key %sk%d: %zu operations, %llu states "
		       "explored: %s\n", cfg->key_prefix, k, n,
		    (unsigned long long) res.states,
		    res.linearizable ? "linearizable"
		    : (res.gave_up ? "GAVE UP" : "NOT LINEARIZABLE"));
		out->ops += n;
		out->states += res.states;
		out->keys_linearizable += res.linearizable;
		out->keys_gave_up += res.gave_up;
		rv = 0;
	}
	free(all);
	return rv;
}

int
ds_linrec_run(const ds_linrec_config *cfg, ds_linrec_report *out)
{
	ds_linrec_thread *th;
	pthread_t tid[DS_LINREC_MAX_THREADS];
	int started = 0;
	int rv = -1;

	memset(out, 0, sizeof(*out));
	if (cfg->threads < 1 || cfg->threads > DS_LINREC_MAX_THREADS ||
	    cfg->keys < 1 || cfg->keys > DS_LINREC_MAX_KEYS ||
	    cfg->n_urls == 0) {
		return -1;
	}
	if ((th = calloc((size_t) cfg->threads, sizeof(*th))) == NULL) {
		return -1;
	}
	for (int i = 0; i < cfg->threads; i++) {
		th[i].id = i + 1;
		th[i].seed = cfg->seed * 2654435761u + (uint64_t) i + 1;
		th[i].url = cfg->urls[(size_t) i % cfg->n_urls];
		th[i].prefix = cfg->key_prefix;
		th[i].keys = cfg->keys;
		th[i].until_ns =
		    ds_linrec_now_ns() + (int64_t) cfg->seconds * 1000000000;
		for (int k = 0; k < cfg->keys; k++) {
			th[i].ops[k] = calloc(DS_LINREC_MAX_OPS, sizeof(ds_lin_op));
			if (th[i].ops[k] == NULL) {
				goto out;
			}
		}
	}
	for (; started < cfg->threads; started++) {
		if (pthread_create(&tid[started], NULL, ds_linrec_main,
		        &th[started]) != 0) {
			break;
		}
	}
	for (int i = 0; i < started; i++) {
		(void) pthread_join(tid[i], NULL);
	}
	if (started < cfg->threads) {
		goto out;
	}
	for (int i = 0; i < cfg->threads; i++) {
		out->connect_failures += th[i].connect_failed;
	}
	rv = 0;
	for (int k = 0; k < cfg->keys && rv == 0; k++) {
		rv = ds_linrec_check_key(cfg, th, k, out);
	}
out:
	for (int i = 0; i < cfg->threads; i++) {
		for (int k = 0; k < cfg->keys; k++) {
			free(th[i].ops[k]);
		}
	}
	free(th);
	return rv;
}
