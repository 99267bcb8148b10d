/*
 * store_batch_test.c - store_apply_batch: one transaction, independent
 * results, later writes seeing earlier ones; and a throughput printout
 * (not an assertion) for group commit at 64 writes per transaction.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "store_test_util.h"

static void
test_batch_with_mixed_outcomes(void **state)
{
	stt_fx *fx = *state;
	store_write_result lk;
	store_write ws[11];
	store_write_result rs[11];

	(void) stt_put(fx->c, "a", "a1");      /* rev 1 */
	(void) stt_put(fx->c, "locked", "l1"); /* rev 2 */
	assert_int_equal(stt_apply(fx->c, stt_lock("locked", "ann", 0), &lk),
	    STORE_OK);                         /* rev 3: a lock is a change */
	ws[0] = stt_update("a", "a2", STORE_PRECOND_IF_VERSION, 1);
	/* Sees write 0: stale now. */
	ws[1] = stt_update("a", "lost", STORE_PRECOND_IF_VERSION, 1);
	ws[2] = stt_update("locked", "x", STORE_PRECOND_IF_VERSION, 1);
	ws[3] = stt_with_rid(stt_update("b", "b1", STORE_PRECOND_IF_ABSENT, 0),
	    "r1");
	/* A retry inside the same batch replays write 3. */
	ws[4] = ws[3];
	ws[5] = stt_update("c", "c1", STORE_PRECOND_NONE, 0);
	ws[6] = stt_delete("a", STORE_PRECOND_IF_VERSION, 2);
	ws[7] = stt_update("", "x", STORE_PRECOND_UNCONDITIONAL, 0);
	ws[8] = stt_with_rid(stt_update("b", "b2", STORE_PRECOND_IF_VERSION,
	                         1),
	    "r1");
	ws[9] = stt_lock("c", "bob", 0);
	ws[10] = stt_with_token(stt_update("locked", "l2",
	                            STORE_PRECOND_IF_VERSION, 1),
	    &lk.token);
	memset(rs, 0, sizeof(rs));
	assert_int_equal(store_apply_batch(fx->c, ws, 11, rs), STORE_OK);

	assert_int_equal(rs[0].error.code, STORE_OK);
	assert_int_equal(rs[0].record.version, 2);
	assert_int_equal(rs[0].record.revision, 4);
	assert_int_equal(rs[1].error.code, STORE_ECONFLICT);
	assert_int_equal(rs[1].record.version, 2);
	stt_assert_value(&rs[1].record, "a2");
	assert_int_equal(rs[2].error.code, STORE_ELOCKED);
	assert_string_equal(rs[2].record.lock.owner, "ann");
	assert_int_equal(rs[3].error.code, STORE_OK);
	assert_false(rs[3].replayed);
	assert_int_equal(rs[3].record.revision, 5);
	assert_int_equal(rs[4].error.code, STORE_OK);
	assert_true(rs[4].replayed);
	assert_int_equal(rs[4].record.version, 1);
	assert_int_equal(rs[4].record.revision, 5);
	assert_int_equal(rs[5].error.code, STORE_EPRECONDITION_REQUIRED);
	assert_int_equal(rs[6].error.code, STORE_OK);
	assert_int_equal(rs[6].record.version, 3);
	assert_true(rs[6].record.deleted);
	assert_int_equal(rs[6].record.revision, 6);
	assert_int_equal(rs[7].error.code, STORE_EINVAL);
	assert_string_equal(rs[7].error.field, "key");
	assert_int_equal(rs[8].error.code, STORE_EREQUEST_ID_REUSED);
	assert_int_equal(rs[9].error.code, STORE_OK);
	assert_int_equal(rs[9].record.lock.fencing_token, 2);
	assert_int_equal(rs[9].record.revision, 7);
	assert_int_equal(rs[10].error.code, STORE_OK);
	assert_int_equal(rs[10].record.version, 2);
	assert_int_equal(rs[10].record.revision, 8);
	for (size_t i = 0; i < 11; i++) {
		store_write_result_fini(&rs[i]);
	}

	assert_int_equal(stt_revision(fx->c), 8);
	assert_int_equal(stt_version(fx->c, "a"), 0);
	assert_int_equal(stt_version(fx->c, "b"), 1);
	assert_int_equal(stt_version(fx->c, "c"), 0);
	assert_int_equal(stt_version(fx->c, "locked"), 2);
	/* The fencing counter written by the batch persists in memory
	 * and on the next acquisition. */
	store_write_result_fini(&lk);
	assert_int_equal(stt_apply(fx->c, stt_lock("d", "carl", 0), &lk),
	    STORE_OK);
	assert_int_equal(lk.record.lock.fencing_token, 3);
	store_write_result_fini(&lk);
}

static void
test_batch_writes_to_one_key_chain_versions(void **state)
{
	stt_fx *fx = *state;
	enum { N = 20 };
	store_write ws[N];
	store_write_result rs[N];
	store_record rec;

	for (int i = 0; i < N; i++) {
		ws[i] = stt_update("k", "x", STORE_PRECOND_IF_VERSION,
		    (uint64_t) i);
	}
	ws[0].precond.kind = STORE_PRECOND_IF_ABSENT;
	memset(rs, 0, sizeof(rs));
	assert_int_equal(store_apply_batch(fx->c, ws, N, rs), STORE_OK);
	for (int i = 0; i < N; i++) {
		assert_int_equal(rs[i].error.code, STORE_OK);
		assert_int_equal(rs[i].record.version, (uint64_t) i + 1);
		assert_int_equal(rs[i].record.revision, (uint64_t) i + 1);
		store_write_result_fini(&rs[i]);
	}
	/* History was trimmed inside the batch too (default 16). */
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(store_get(fx->c, "k", 1, N - 15, &rec, NULL),
	    STORE_OK);
	store_record_fini(&rec);
	assert_int_equal(store_get(fx->c, "k", 1, N - 16, &rec, NULL),
	    STORE_ECOMPACTED);
}

static void
test_batch_of_only_invalid_writes_touches_nothing(void **state)
{
	stt_fx *fx = *state;
	store_write ws[2];
	store_write_result rs[2];

	ws[0] = stt_update("k", "x", STORE_PRECOND_NONE, 0);
	ws[1] = stt_lock("k", "", 0);
	memset(rs, 0, sizeof(rs));
	assert_int_equal(store_apply_batch(fx->c, ws, 2, rs), STORE_OK);
	assert_int_equal(rs[0].error.code, STORE_EPRECONDITION_REQUIRED);
	assert_int_equal(rs[1].error.code, STORE_EINVAL);
	assert_string_equal(rs[1].error.field, "owner");
	assert_int_equal(store_apply_batch(fx->c, ws, 0, rs), STORE_OK);
	assert_int_equal(stt_revision(fx->c), 0);
}

static double
sbt_now(void)
{
	struct timespec ts;

	(void) clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* sbt_run applies nbatch batches of size writes over nkeys keys and
 * returns writes per second. */
static double
sbt_run(stt_fx *fx, int nbatch, int size, int nkeys, bool rids)
{
	store_write *ws = calloc((size_t) size, sizeof(*ws));
	store_write_result *rs = calloc((size_t) size, sizeof(*rs));
	char (*keys)[32] = calloc((size_t) size, sizeof(*keys));
	char (*ids)[32] = calloc((size_t) size, sizeof(*ids));
	static const char value[100] = "a value of a hundred bytes......";
	uint64_t rng = 88172645463325252ull;
	static unsigned serial;
	double t0;
	double t1;

	assert_non_null(ws);
	assert_non_null(rs);
	assert_non_null(keys);
	assert_non_null(ids);
	t0 = sbt_now();
	for (int b = 0; b < nbatch; b++) {
		for (int i = 0; i < size; i++) {
			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			(void) snprintf(keys[i], sizeof(keys[i]), "bench/%06d",
			    (int) (rng % (uint64_t) nkeys));
			ws[i] = stt_update(keys[i], NULL,
			    STORE_PRECOND_UNCONDITIONAL, 0);
			ws[i].value = (const uint8_t *) value;
			ws[i].value_len = sizeof(value);
			if (rids) {
				(void) snprintf(ids[i], sizeof(ids[i]),
				    "bench-%u", serial++);
				ws[i] = stt_with_rid(ws[i], ids[i]);
			}
		}
		memset(rs, 0, (size_t) size * sizeof(*rs));
		assert_int_equal(store_apply_batch(fx->c, ws, (size_t) size,
		                     rs),
		    STORE_OK);
		for (int i = 0; i < size; i++) {
			assert_int_equal(rs[i].error.code, STORE_OK);
			store_write_result_fini(&rs[i]);
		}
	}
	t1 = sbt_now();
	free(ws);
	free(rs);
	free(keys);
	free(ids);
	return (double) nbatch * size / (t1 - t0);
}

/* test_batch_throughput_is_printed: a measurement, never an assertion
 * (timed assertions flake on a shared machine). */
static void
test_batch_throughput_is_printed(void **state)
{
	stt_fx *fx = *state;
	double plain;
	double idem;
	double single;

	(void) sbt_run(fx, 20, 64, 10000, false); /* warm up */
	plain = sbt_run(fx, 200, 64, 10000, false);
	idem = sbt_run(fx, 200, 64, 10000, true);
	single = sbt_run(fx, 300, 1, 10000, false);
	printf("store_apply_batch, file, synchronous=FULL, history=16, "
	       "100 B values:\n");
	printf("  64 writes/txn:                 %8.0f writes/s\n", plain);
	printf("  64 writes/txn with request_id: %8.0f writes/s\n", idem);
	printf("   1 write/txn:                  %8.0f writes/s\n", single);
}

#define T(f) cmocka_unit_test_setup_teardown(f, stt_setup_mem, stt_teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_batch_with_mixed_outcomes),
	    T(test_batch_writes_to_one_key_chain_versions),
	    T(test_batch_of_only_invalid_writes_touches_nothing),
	    cmocka_unit_test_setup_teardown(test_batch_throughput_is_printed,
	        stt_setup_file, stt_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
