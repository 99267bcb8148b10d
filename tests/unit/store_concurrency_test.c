/*
 * store_concurrency_test.c - concurrency tested by counting (DESIGN §8):
 * read-modify-write increments from several threads, each on its own
 * connection, end at exactly N x M; lock holders never overlap.
 */
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "store_test_util.h"

enum { SCT_THREADS = 4, SCT_INCREMENTS = 500, SCT_LOCK_ROUNDS = 50 };

typedef struct sct_worker {
	store *s;
	int id;
	long conflicts;
	long failures; /* anything but OK / expected refusals */
	store_err last_failure;
	atomic_int *in_critical;
	atomic_int *overlaps;
} sct_worker;

/* sct_increment reads "counter", adds one and writes it back with
 * if_version, retrying on conflict: the client side of update_with_retry. */
static void *
sct_increment(void *arg)
{
	sct_worker *w = arg;
	store_conn *c;

	if (store_conn_open(w->s, &c, NULL) != STORE_OK) {
		w->failures++;
		return NULL;
	}
	for (int i = 0; i < SCT_INCREMENTS; i++) {
		for (;;) {
			store_record rec;
			store_write_result r;
			store_write u;
			char buf[32];
			long n = 0;
			store_err rv;

			memset(&rec, 0, sizeof(rec));
			rv = store_get(c, "counter", 7, 0, &rec, NULL);
			if (rv != STORE_OK) {
				w->failures++;
				break;
			}
			(void) snprintf(buf, sizeof(buf), "%.*s",
			    (int) rec.value_len, (const char *) rec.value);
			n = strtol(buf, NULL, 10);
			(void) snprintf(buf, sizeof(buf), "%ld", n + 1);
			u = stt_update("counter", buf, STORE_PRECOND_IF_VERSION,
			    rec.version);
			store_record_fini(&rec);
			memset(&r, 0, sizeof(r));
			rv = store_apply(c, &u, &r);
			store_write_result_fini(&r);
			if (rv == STORE_OK) {
				break;
			}
			if (rv != STORE_ECONFLICT) {
				w->failures++;
				break;
			}
			w->conflicts++;
		}
	}
	store_conn_close(c);
	return NULL;
}

static double
sct_now(void)
{
	struct timespec ts;

	(void) clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void
test_four_threads_of_if_version_increments_end_at_exactly_2000(void **state)
{
	stt_fx *fx = *state;
	sct_worker w[SCT_THREADS];
	pthread_t t[SCT_THREADS];
	store_record rec;
	long conflicts = 0;
	double t0;
	double t1;

	(void) stt_put(fx->c, "counter", "0");
	memset(w, 0, sizeof(w));
	t0 = sct_now();
	for (int i = 0; i < SCT_THREADS; i++) {
		w[i].s = fx->s;
		w[i].id = i;
		assert_int_equal(pthread_create(&t[i], NULL, sct_increment,
		                     &w[i]),
		    0);
	}
	for (int i = 0; i < SCT_THREADS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
	}
	for (int i = 0; i < SCT_THREADS; i++) {
		assert_int_equal(w[i].failures, 0);
		conflicts += w[i].conflicts;
	}
	t1 = sct_now();
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(store_get(fx->c, "counter", 7, 0, &rec, NULL),
	    STORE_OK);
	stt_assert_value(&rec, "2000");
	/* One version per successful increment, after the initial put. */
	assert_int_equal(rec.version, 1 + SCT_THREADS * SCT_INCREMENTS);
	store_record_fini(&rec);
	assert_int_equal(stt_revision(fx->c), 1 + SCT_THREADS * SCT_INCREMENTS);
	printf("%d threads x %d increments: %.2f s, %ld conflicts retried "
	       "(file, synchronous=FULL)\n",
	    SCT_THREADS, SCT_INCREMENTS, t1 - t0, conflicts);
}

/* sct_lock_loop takes the lock on "mutex" (retrying while another holds
 * it), checks nobody else is inside, writes the record with its token,
 * unlocks. */
static void *
sct_lock_loop(void *arg)
{
	sct_worker *w = arg;
	store_conn *c;
	char owner[16];

	(void) snprintf(owner, sizeof(owner), "worker-%d", w->id);
	if (store_conn_open(w->s, &c, NULL) != STORE_OK) {
		w->failures++;
		return NULL;
	}
	for (int i = 0; i < SCT_LOCK_ROUNDS; i++) {
		store_write_result l;
		store_write lw = stt_lock("mutex", owner, 60000);
		store_err rv;

		for (;;) {
			memset(&l, 0, sizeof(l));
			rv = store_apply(c, &lw, &l);
			if (rv == STORE_OK) {
				break;
			}
			store_write_result_fini(&l);
			if (rv != STORE_ELOCKED) {
				w->last_failure = rv;
				w->failures++;
				goto out;
			}
			w->conflicts++;
			sched_yield();
		}
		if (atomic_fetch_add(w->in_critical, 1) != 0) {
			atomic_fetch_add(w->overlaps, 1);
		}
		if (stt_apply0(c, stt_with_token(stt_update("mutex", owner,
		                                     STORE_PRECOND_UNCONDITIONAL,
		                                     0),
		                      &l.token)) != STORE_OK) {
			w->failures++;
		}
		atomic_fetch_sub(w->in_critical, 1);
		if (stt_apply0(c, stt_unlock("mutex", &l.token)) != STORE_OK) {
			w->failures++;
		}
		store_write_result_fini(&l);
	}
out:
	store_conn_close(c);
	return NULL;
}

static void
test_lock_holders_never_overlap(void **state)
{
	stt_fx *fx = *state;
	sct_worker w[SCT_THREADS];
	pthread_t t[SCT_THREADS];
	atomic_int in_critical = 0;
	atomic_int overlaps = 0;
	long waits = 0;

	memset(w, 0, sizeof(w));
	for (int i = 0; i < SCT_THREADS; i++) {
		w[i].s = fx->s;
		w[i].id = i;
		w[i].in_critical = &in_critical;
		w[i].overlaps = &overlaps;
		assert_int_equal(pthread_create(&t[i], NULL, sct_lock_loop,
		                     &w[i]),
		    0);
	}
	for (int i = 0; i < SCT_THREADS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
	}
	for (int i = 0; i < SCT_THREADS; i++) {
		if (w[i].failures != 0) {
			fail_msg("worker %d: %ld failures, last %s", i,
			    w[i].failures, store_reason(w[i].last_failure));
		}
		waits += w[i].conflicts;
	}
	assert_int_equal(atomic_load(&overlaps), 0);
	assert_int_equal(stt_version(fx->c, "mutex"),
	    SCT_THREADS * SCT_LOCK_ROUNDS);
	printf("%d threads x %d lock rounds: %ld LOCKED refusals, no "
	       "overlap\n",
	    SCT_THREADS, SCT_LOCK_ROUNDS, waits);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_four_threads_of_if_version_increments_end_at_exactly_2000,
	        stt_setup_file, stt_teardown),
	    cmocka_unit_test_setup_teardown(test_lock_holders_never_overlap,
	        stt_setup_file, stt_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
