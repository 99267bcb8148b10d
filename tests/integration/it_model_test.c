/*
 * it_model_test.c - the model-based test against a live datasyncd: random
 * sequences of Get / Update / Delete / Lock / Unlock / List from several
 * simulated clients go through the generated stubs over ipc:// and are
 * compared reply by reply with the reference model (tests/support/
 * ds_model). Each sequence uses its own keys.
 *
 * The server's clock is real, so "advancing the clock" sleeps 1.1 s; the
 * generator only picks whole-second ttls, so a lease is never checked
 * within 100 ms of its expiry and the model's time and the server's agree.
 * Most sequences do not advance time (they run in milliseconds); a few
 * do, to cover leases expiring mid-sequence.
 *
 * DS_TEST_SEED replays; DS_MODEL_SEQUENCES sets the fast sequences
 * (default 1000), DS_MODEL_SLOW_SEQUENCES the ones with time (default 4).
 */
#include <inttypes.h>
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
#include "ds_model.h"
#include "ds_test.h"

#define SEQ_LEN 40
#define SLOW_SEQ_LEN 20

typedef struct rsut {
	datasync_client *c;
	int seq;
	char toks[DS_MODEL_CLIENTS][DS_MODEL_KEYS][33];
	bool fence_known;
	int64_t fence_offset;
} rsut;

static ds_daemon it_d;

static uint64_t
rs_value_id(const ProtobufCBinaryData *v)
{
	char buf[32];

	if (v->len == 0 || v->len >= sizeof(buf) || v->data[0] != 'v') {
		return UINT64_MAX;
	}
	memcpy(buf, v->data + 1, v->len - 1);
	buf[v->len - 1] = '\0';
	return strtoull(buf, NULL, 10);
}

static int
rs_owner_id(const char *owner)
{
	return owner != NULL && owner[0] == 'c' ? atoi(owner + 1) : -1;
}

static uint64_t
rs_fence(const rsut *t, uint64_t f)
{
	return t->fence_known ? (uint64_t) ((int64_t) f - t->fence_offset) : f;
}

static void
rs_lock_view(const rsut *t, const Datasync__V1__LockInfo *l,
    ds_model_reply *got)
{
	if (l != NULL) {
		got->locked = true;
		got->owner = rs_owner_id(l->owner);
		got->fence = rs_fence(t, l->fencing_token);
	}
}

/* rs_failed fills got from a failed call's status. */
static void
rs_failed(const rsut *t, const nrpc_status *st, ds_model_reply *got)
{
	Datasync__V1__Record *r = NULL;

	got->outcome = ds_model_outcome_of(st->reason);
	if (got->outcome == DS_M_OTHER) {
		fprintf(stderr, "unexpected status %s/%s: %s\n",
		    nrpc_code_name(st->code), st->reason, st->message);
	}
	if (datasync_status_record(st, &r) != NRPC_OK) {
		return;
	}
	if (got->outcome == DS_M_CONFLICT) {
		got->version = r->version;
		got->value = r->deleted || r->version == 0 ? 0 : rs_value_id(&r->value);
	} else if (got->outcome == DS_M_LOCKED) {
		rs_lock_view(t, r->lock, got);
	}
	datasync__v1__record__free_unpacked(r, NULL);
}

static void
rs_precondition(const ds_model_op *op, Datasync__V1__Precondition *p)
{
	datasync__v1__precondition__init(p);
	switch (op->pre) {
	case DS_M_PRE_IF_VERSION:
		p->kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_VERSION;
		p->if_version = op->if_version;
		break;
	case DS_M_PRE_IF_ABSENT:
		p->kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_ABSENT;
		p->if_absent = 1;
		break;
	case DS_M_PRE_IF_EXISTS:
		p->kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_EXISTS;
		p->if_exists = 1;
		break;
	case DS_M_PRE_UNCONDITIONAL:
		p->kind_case = DATASYNC__V1__PRECONDITION__KIND_UNCONDITIONAL;
		p->unconditional = 1;
		break;
	case DS_M_PRE_NONE:
		break;
	}
}

static void
rs_run(rsut *t, const ds_model_op *op, ds_model_reply *got)
{
	nrpc_client *rpc = datasync_rpc(t->c);
	nrpc_status st = {0};
	char key[64];
	char prefix[32];
	char val[32];
	char owner[8];
	const char *tok = "";
	Datasync__V1__Precondition pre;

	memset(got, 0, sizeof(*got));
	snprintf(prefix, sizeof(prefix), "model/s%d/", t->seq);
	snprintf(key, sizeof(key), "%sk%d", prefix, op->key);
	snprintf(owner, sizeof(owner), "c%d", op->client);
	if (op->tok == DS_M_TOK_OWN && op->tok_fence != 0) {
		tok = t->toks[op->client][op->key];
	} else if (op->tok == DS_M_TOK_BOGUS) {
		tok = "abababababababababababababababab";
	}
	rs_precondition(op, &pre);

	switch (op->kind) {
	case DS_M_ADVANCE: {
		struct timespec ts = {op->advance_ms / 1000,
		    (op->advance_ms % 1000) * 1000000L};

		nanosleep(&ts, NULL);
		return;
	}
	case DS_M_GET: {
		Datasync__V1__GetRequest req = DATASYNC__V1__GET_REQUEST__INIT;
		Datasync__V1__GetResponse *resp = NULL;

		req.key = key;
		if (datasync_v1_data_sync_get(rpc, &req, &resp, NULL, &st) !=
		    NRPC_OK) {
			rs_failed(t, &st, got);
			break;
		}
		got->version = resp->record->version;
		got->value = rs_value_id(&resp->record->value);
		rs_lock_view(t, resp->record->lock, got);
		datasync__v1__get_response__free_unpacked(resp, NULL);
		break;
	}
	case DS_M_LIST: {
		Datasync__V1__ListRequest req = DATASYNC__V1__LIST_REQUEST__INIT;
		Datasync__V1__ListResponse *resp = NULL;

		req.prefix = prefix;
		if (datasync_v1_data_sync_list(rpc, &req, &resp, NULL, &st) !=
		    NRPC_OK) {
			rs_failed(t, &st, got);
			break;
		}
		for (size_t i = 0; i < resp->n_records; i++) {
			int k = atoi(resp->records[i]->key + strlen(prefix) + 1);

			if (k >= 0 && k < DS_MODEL_KEYS) {
				got->list_version[k] = resp->records[i]->version;
			}
		}
		datasync__v1__list_response__free_unpacked(resp, NULL);
		break;
	}
	case DS_M_UPDATE: {
		Datasync__V1__UpdateRequest req = DATASYNC__V1__UPDATE_REQUEST__INIT;
		Datasync__V1__UpdateResponse *resp = NULL;

		snprintf(val, sizeof(val), "v%" PRIu64, op->value);
		req.key = key;
		req.value.data = (uint8_t *) val;
		req.value.len = strlen(val);
		req.precondition = op->pre == DS_M_PRE_NONE ? NULL : &pre;
		req.lock_token = (char *) tok;
		if (datasync_v1_data_sync_update(rpc, &req, &resp, NULL, &st) !=
		    NRPC_OK) {
			rs_failed(t, &st, got);
			break;
		}
		got->version = resp->record->version;
		datasync__v1__update_response__free_unpacked(resp, NULL);
		break;
	}
	case DS_M_DELETE: {
		Datasync__V1__DeleteRequest req = DATASYNC__V1__DELETE_REQUEST__INIT;
		Datasync__V1__DeleteResponse *resp = NULL;

		req.key = key;
		req.precondition = op->pre == DS_M_PRE_NONE ? NULL : &pre;
		req.lock_token = (char *) tok;
		if (datasync_v1_data_sync_delete(rpc, &req, &resp, NULL, &st) !=
		    NRPC_OK) {
			rs_failed(t, &st, got);
			break;
		}
		got->version = resp->version;
		datasync__v1__delete_response__free_unpacked(resp, NULL);
		break;
	}
	case DS_M_LOCK: {
		Datasync__V1__LockRequest req = DATASYNC__V1__LOCK_REQUEST__INIT;
		Datasync__V1__LockResponse *resp = NULL;

		req.key = key;
		req.owner = owner;
		req.ttl_ms = op->ttl_ms;
		req.lock_token = (char *) tok;
		if (datasync_v1_data_sync_lock(rpc, &req, &resp, NULL, &st) !=
		    NRPC_OK) {
			rs_failed(t, &st, got);
			break;
		}
		if (!t->fence_known) {
			t->fence_known = true;
			/* The model numbers this sequence's acquisitions 1, 2, ...
			 * and this is the first. */
			t->fence_offset = (int64_t) resp->lock->fencing_token - 1;
		}
		got->renewed = resp->renewed;
		rs_lock_view(t, resp->lock, got);
		snprintf(t->toks[op->client][op->key], 33, "%s", resp->lock_token);
		datasync__v1__lock_response__free_unpacked(resp, NULL);
		break;
	}
	case DS_M_UNLOCK: {
		Datasync__V1__UnlockRequest req = DATASYNC__V1__UNLOCK_REQUEST__INIT;
		Datasync__V1__UnlockResponse *resp = NULL;

		req.key = key;
		req.lock_token = (char *) tok;
		if (datasync_v1_data_sync_unlock(rpc, &req, &resp, NULL, &st) !=
		    NRPC_OK) {
			rs_failed(t, &st, got);
			break;
		}
		datasync__v1__unlock_response__free_unpacked(resp, NULL);
		break;
	}
	}
	nrpc_status_fini(&st);
}

static int
rs_sequence(int seq, int len, bool with_time, uint64_t *rng, uint64_t seed,
    unsigned long *by_outcome)
{
	ds_model m;
	rsut t;
	ds_model_op hist[SEQ_LEN];
	nrpc_status st = {0};

	memset(&t, 0, sizeof(t));
	t.seq = seq;
	if (datasync_connect((const char *const[]){it_d.ipc_url}, 1, 10000,
	        "it-model", &t.c, &st) != NRPC_OK) {
		fprintf(stderr, "connect: %s\n", st.message);
		return -1;
	}
	ds_model_init(&m, 0);
	for (int i = 0; i < len; i++) {
		ds_model_op op = ds_model_random_op(&m, rng, with_time);

		/* Sequences with time open with a lease that runs out under
		 * its holder, so every run covers LOCK_EXPIRED at least once;
		 * the random steps take it from there. The key is written
		 * first: the server's sweeper removes a lease on a key never
		 * written (below). */
		if (with_time && i < 4) {
			static const ds_model_kind open[] = {DS_M_UPDATE, DS_M_LOCK,
			    DS_M_ADVANCE, DS_M_UPDATE};

			memset(&op, 0, sizeof(op));
			op.key = 0;
			op.client = 0;
			op.kind = open[i];
			op.ttl_ms = 1000;
			op.advance_ms = 1100;
			op.pre = DS_M_PRE_UNCONDITIONAL;
			op.tok = i == 3 ? DS_M_TOK_OWN : DS_M_TOK_NONE;
			op.value = 1;
		}
		ds_model_reply want;
		ds_model_reply got;
		const char *diff;
		bool placeholder;

		ds_model_prepare(&m, &op);
		hist[i] = op;
		placeholder = !m.keys[op.key].exists && m.keys[op.key].version == 0;
		rs_run(&t, &op, &got);
		ds_model_apply(&m, &op, &want);
		/* DESIGN §9: the server's sweeper records a lease's expiry and
		 * removes the row of a key that was locked but never written,
		 * at some moment after the lease ran out; from then on its old
		 * token is NOT_LOCKED rather than LOCK_EXPIRED. */
		if (placeholder && want.outcome == DS_M_LOCK_EXPIRED &&
		    got.outcome == DS_M_NOT_LOCKED) {
			want.outcome = DS_M_NOT_LOCKED;
		}
		if ((diff = ds_model_compare(&op, &want, &got)) != NULL) {
			char line[256];

			fprintf(stderr, "sequence %d (seed %" PRIu64 ") diverged at step "
			        "%d: %s\n", seq, seed, i, diff);
			for (int j = 0; j <= i; j++) {
				ds_model_describe(&hist[j], line, sizeof(line));
				fprintf(stderr, "  %2d %s\n", j, line);
			}
			fprintf(stderr, "  want outcome %d version %" PRIu64 " value %"
			        PRIu64 " owner %d fence %" PRIu64 "\n", want.outcome,
			    want.version, want.value, want.owner, want.fence);
			fprintf(stderr, "  got  outcome %d version %" PRIu64 " value %"
			        PRIu64 " owner %d fence %" PRIu64 "\n", got.outcome,
			    got.version, got.value, got.owner, got.fence);
			datasync_close(t.c);
			return -1;
		}
		by_outcome[want.outcome]++;
	}
	datasync_close(t.c);
	return 0;
}

static void
test_random_sequences_against_a_live_server_match_the_model(void **state)
{
	uint64_t seed = ds_test_seed();
	uint64_t rng = seed | 1;
	const char *env = getenv("DS_MODEL_SEQUENCES");
	const char *slow_env = getenv("DS_MODEL_SLOW_SEQUENCES");
	int fast = env != NULL ? atoi(env) : 1000;
	int slow = slow_env != NULL ? atoi(slow_env) : 4;
	unsigned long by_outcome[DS_M_OTHER + 1] = {0};
	unsigned long ops = 0;

	(void) state;
	for (int s = 0; s < fast + slow; s++) {
		bool with_time = s >= fast;

		assert_int_equal(rs_sequence(s, with_time ? SLOW_SEQ_LEN : SEQ_LEN,
		                     with_time, &rng, seed, by_outcome),
		    0);
	}
	for (int o = 0; o <= DS_M_OTHER; o++) {
		ops += by_outcome[o];
	}
	printf("model (live server): %d sequences, %lu replies matched (ok %lu, "
	       "conflict %lu, locked %lu, lock_expired %lu, not_locked %lu, "
	       "token_mismatch %lu, not_found %lu, precondition_required %lu)\n",
	    fast + slow, ops, by_outcome[DS_M_OK], by_outcome[DS_M_CONFLICT],
	    by_outcome[DS_M_LOCKED], by_outcome[DS_M_LOCK_EXPIRED],
	    by_outcome[DS_M_NOT_LOCKED], by_outcome[DS_M_TOKEN_MISMATCH],
	    by_outcome[DS_M_NOT_FOUND], by_outcome[DS_M_PRECONDITION_REQUIRED]);
	assert_true(by_outcome[DS_M_LOCK_EXPIRED] > 0 || slow == 0);
}

static int
it_setup(void **state)
{
	(void) state;
	return ds_daemon_start(&it_d, false, NULL);
}

static int
it_teardown(void **state)
{
	int rc;

	(void) state;
	rc = ds_daemon_stop(&it_d);
	ds_daemon_fini(&it_d);
	return rc == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
	        test_random_sequences_against_a_live_server_match_the_model),
	};

	/* cmocka does not count a failed group teardown: a daemon that
	 * leaked or hung at exit fails the test here (ds_daemon.h). */
	return cmocka_run_group_tests(tests, it_setup, it_teardown) +
	       ds_daemon_failures();
}
