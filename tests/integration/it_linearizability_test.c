/*
 * it_linearizability_test.c - real threads run concurrent Get, CAS-Update
 * and Delete on a few keys of a live datasyncd, half over tcp:// and half
 * over ipc://, recording when each call was invoked and when its reply
 * arrived (tests/support/ds_linrec); the checker (ds_lincheck) then
 * proves each key's history linearizable (DESIGN §4 rule 8). Calls that
 * time out are recorded as pending: they may or may not have taken
 * effect. it_cluster_test runs the same recorder across three nodes.
 *
 * DS_TEST_SEED replays the random choices; DS_LIN_SECONDS runs longer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ds_daemon.h"
#include "ds_linrec.h"
#include "ds_test.h"

#define LIN_THREADS 6
#define LIN_KEYS 3

static void
test_concurrent_history_is_linearizable(void **state)
{
	ds_daemon d;
	const char *urls[2];
	const char *secs_env = getenv("DS_LIN_SECONDS");
	ds_linrec_config cfg;
	ds_linrec_report rep;

	(void) state;
	assert_int_equal(ds_daemon_start(&d, false, NULL), 0);
	urls[0] = d.tcp_url; /* thread i dials urls[i % 2] */
	urls[1] = d.ipc_url;
	memset(&cfg, 0, sizeof(cfg));
	cfg.urls = urls;
	cfg.n_urls = 2;
	cfg.threads = LIN_THREADS;
	cfg.keys = LIN_KEYS;
	cfg.seconds = secs_env != NULL ? atoi(secs_env) : 3;
	cfg.seed = ds_test_seed();
	cfg.key_prefix = "lin/";
	cfg.max_states = 50000000;
	assert_int_equal(ds_linrec_run(&cfg, &rep), 0);
	printf("linearizability: %zu operations (%zu pending) by %d threads, "
	       "%llu states\n", rep.ops, rep.pending, LIN_THREADS,
	    (unsigned long long) rep.states);
	assert_int_equal(rep.connect_failures, 0);
	assert_int_equal(rep.keys_gave_up, 0);
	assert_int_equal(rep.keys_linearizable, LIN_KEYS);
	assert_true(rep.ops > 100);
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
