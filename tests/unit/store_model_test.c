/*
 * store_model_test.c - model-based test of the store: thousands of random
 * sequences of Get / Update / Delete / Lock / Unlock / List from several
 * simulated clients, with a fake clock that moves so leases expire
 * mid-sequence, run against a fresh store and against the reference model
 * (tests/support/ds_model), compared reply by reply.
 *
 * DS_TEST_SEED=<n> replays a run; DS_MODEL_SEQUENCES=<n> changes how many
 * sequences run (default 2000).
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ds_model.h"
#include "ds_test.h"
#include "store.h"

#define SEQ_LEN 40

typedef struct sut {
	store *s;
	store_conn *c;
	ds_fake_clock clock;
	store_token toks[DS_MODEL_CLIENTS][DS_MODEL_KEYS];
	bool fence_known;
	int64_t fence_offset; /* store fence - model fence */
} sut;

static ds_model_outcome
sut_outcome(store_err e)
{
	switch (e) {
	case STORE_OK:
		return DS_M_OK;
	case STORE_ENOTFOUND:
		return DS_M_NOT_FOUND;
	case STORE_ECONFLICT:
		return DS_M_CONFLICT;
	case STORE_ELOCKED:
		return DS_M_LOCKED;
	case STORE_ELOCK_EXPIRED:
		return DS_M_LOCK_EXPIRED;
	case STORE_ETOKEN_MISMATCH:
		return DS_M_TOKEN_MISMATCH;
	case STORE_ENOT_LOCKED:
		return DS_M_NOT_LOCKED;
	case STORE_EPRECONDITION_REQUIRED:
		return DS_M_PRECONDITION_REQUIRED;
	default:
		return DS_M_OTHER;
	}
}

static uint64_t
sut_value_id(const uint8_t *p, size_t n)
{
	char buf[32];

	if (n == 0 || n >= sizeof(buf) || p[0] != 'v') {
		return UINT64_MAX;
	}
	memcpy(buf, p + 1, n - 1);
	buf[n - 1] = '\0';
	return strtoull(buf, NULL, 10);
}

static int
sut_owner_id(const char *owner)
{
	return owner != NULL && owner[0] == 'c' ? atoi(owner + 1) : -1;
}

static uint64_t
sut_fence(const sut *t, uint64_t f)
{
	return t->fence_known ? (uint64_t) ((int64_t) f - t->fence_offset) : f;
}

static void
sut_lock_view(const sut *t, const store_record *r, ds_model_reply *got)
{
	if (r->locked) {
		got->locked = true;
		got->owner = sut_owner_id(r->lock.owner);
		got->fence = sut_fence(t, r->lock.fencing_token);
	}
}

static void
sut_run(sut *t, const ds_model_op *op, ds_model_reply *got)
{
	char key[8];
	char val[32];
	char owner[8];
	store_write w;
	store_write_result res;
	store_error err;

	memset(got, 0, sizeof(*got));
	memset(&w, 0, sizeof(w));
	memset(&res, 0, sizeof(res));
	memset(&err, 0, sizeof(err));
	snprintf(key, sizeof(key), "k%d", op->key);
	snprintf(owner, sizeof(owner), "c%d", op->client);
	switch (op->kind) {
	case DS_M_ADVANCE:
		ds_fake_clock_advance(&t->clock, op->advance_ms);
		return;
	case DS_M_GET: {
		store_record r;

		memset(&r, 0, sizeof(r));
		got->outcome =
		    sut_outcome(store_get(t->c, key, strlen(key), 0, &r, &err));
		if (got->outcome == DS_M_OK) {
			got->version = r.version;
			got->value = sut_value_id(r.value, r.value_len);
			sut_lock_view(t, &r, got);
		}
		store_record_fini(&r);
		return;
	}
	case DS_M_LIST: {
		store_list_req lr;
		store_list_page page;

		memset(&lr, 0, sizeof(lr));
		memset(&page, 0, sizeof(page));
		lr.page_size = 100;
		got->outcome = sut_outcome(store_list(t->c, &lr, &page, &err));
		for (size_t i = 0; i < page.n; i++) {
			int k = atoi(page.records[i].key + 1);

			if (k >= 0 && k < DS_MODEL_KEYS) {
				got->list_version[k] = page.records[i].version;
			}
		}
		store_list_page_fini(&page);
		return;
	}
	default:
		break;
	}

	w.key = key;
	w.key_len = strlen(key);
	if (op->tok == DS_M_TOK_OWN && op->tok_fence != 0) {
		w.has_token = true;
		w.token = t->toks[op->client][op->key];
	} else if (op->tok == DS_M_TOK_BOGUS) {
		w.has_token = true;
		memset(w.token.b, 0xab, sizeof(w.token.b));
	}
	switch (op->kind) {
	case DS_M_UPDATE:
	case DS_M_DELETE:
		w.op = op->kind == DS_M_UPDATE ? STORE_OP_UPDATE : STORE_OP_DELETE;
		if (op->kind == DS_M_UPDATE) {
			snprintf(val, sizeof(val), "v%" PRIu64, op->value);
			w.value = (const uint8_t *) val;
			w.value_len = strlen(val);
		}
		w.precond.kind = (store_precond_kind) op->pre;
		w.precond.version = op->if_version;
		break;
	case DS_M_LOCK:
		w.op = STORE_OP_LOCK;
		w.owner = owner;
		w.owner_len = strlen(owner);
		w.ttl_ms = op->ttl_ms;
		break;
	case DS_M_UNLOCK:
		w.op = STORE_OP_UNLOCK;
		break;
	default:
		fail_msg("unexpected operation %d", (int) op->kind);
	}
	got->outcome = sut_outcome(store_apply(t->c, &w, &res));
	switch (got->outcome) {
	case DS_M_OK:
		got->version = res.record.version;
		if (op->kind == DS_M_LOCK) {
			got->renewed = res.renewed;
			got->owner = sut_owner_id(res.record.lock.owner);
			got->locked = true;
			if (!t->fence_known) {
				/* The model numbers acquisitions 1, 2, ...; the
				 * store's counter may start elsewhere. */
				t->fence_known = true;
				t->fence_offset =
				    (int64_t) res.record.lock.fencing_token - 1;
			}
			got->fence = sut_fence(t, res.record.lock.fencing_token);
			t->toks[op->client][op->key] = res.token;
		}
		break;
	case DS_M_CONFLICT:
		got->version = res.record.version;
		got->value = res.record.deleted || res.record.version == 0
		    ? 0
		    : sut_value_id(res.record.value, res.record.value_len);
		break;
	case DS_M_LOCKED:
		sut_lock_view(t, &res.record, got);
		break;
	default:
		break;
	}
	store_write_result_fini(&res);
}

static void
sut_open(sut *t)
{
	store_config cfg;
	store_error err;

	memset(t, 0, sizeof(*t));
	memset(&err, 0, sizeof(err));
	ds_fake_clock_init(&t->clock, 1700000000000);
	store_config_default(&cfg);
	cfg.path = ":memory:";
	cfg.clock = &t->clock.base;
	if (store_open(&cfg, &t->s, &err) != STORE_OK ||
	    store_conn_open(t->s, &t->c, &err) != STORE_OK) {
		fail_msg("cannot open a store: %s", err.message);
	}
}

static void
sut_close(sut *t)
{
	store_conn_close(t->c);
	store_close(t->s);
}

static void
test_random_sequences_match_the_model(void **state)
{
	uint64_t seed = ds_test_seed();
	uint64_t rng = seed | 1;
	const char *env = getenv("DS_MODEL_SEQUENCES");
	int sequences = env != NULL ? atoi(env) : 2000;
	unsigned long ops = 0;
	unsigned long by_outcome[DS_M_OTHER + 1] = {0};

	(void) state;
	for (int s = 0; s < sequences; s++) {
		ds_model m;
		sut t;
		ds_model_op hist[SEQ_LEN];

		sut_open(&t);
		ds_model_init(&m, 1700000000000);
		for (int i = 0; i < SEQ_LEN; i++) {
			ds_model_op op = ds_model_random_op(&m, &rng, true);
			ds_model_reply want;
			ds_model_reply got;
			const char *diff;

			ds_model_prepare(&m, &op);
			hist[i] = op;
			sut_run(&t, &op, &got);
			ds_model_apply(&m, &op, &want);
			if ((diff = ds_model_compare(&op, &want, &got)) != NULL) {
				char line[256];

				fprintf(stderr, "sequence %d (seed %" PRIu64 ") diverged at "
				        "step %d: %s\n", s, seed, i, diff);
				for (int j = 0; j <= i; j++) {
					ds_model_describe(&hist[j], line, sizeof(line));
					fprintf(stderr, "  %2d %s\n", j, line);
				}
				fprintf(stderr, "  want outcome %d version %" PRIu64
				        " value %" PRIu64 " owner %d fence %" PRIu64 "\n",
				    want.outcome, want.version, want.value, want.owner,
				    want.fence);
				fprintf(stderr, "  got  outcome %d version %" PRIu64
				        " value %" PRIu64 " owner %d fence %" PRIu64 "\n",
				    got.outcome, got.version, got.value, got.owner,
				    got.fence);
				sut_close(&t);
				fail();
			}
			by_outcome[want.outcome]++;
			ops++;
		}
		sut_close(&t);
	}
	printf("model: %d sequences, %lu operations matched (ok %lu, conflict "
	       "%lu, locked %lu, lock_expired %lu, not_locked %lu, "
	       "token_mismatch %lu, not_found %lu, precondition_required %lu)\n",
	    sequences, ops, by_outcome[DS_M_OK], by_outcome[DS_M_CONFLICT],
	    by_outcome[DS_M_LOCKED], by_outcome[DS_M_LOCK_EXPIRED],
	    by_outcome[DS_M_NOT_LOCKED], by_outcome[DS_M_TOKEN_MISMATCH],
	    by_outcome[DS_M_NOT_FOUND], by_outcome[DS_M_PRECONDITION_REQUIRED]);
	/* The generator must reach every outcome, or the test proves less
	 * than it claims. */
	for (int o = DS_M_OK; o < DS_M_OTHER; o++) {
		assert_true(by_outcome[o] > 0);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_random_sequences_match_the_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
