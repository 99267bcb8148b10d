/*
 * nrpc_listener_test.c - the listener watchdog against nng #1518.
 *
 * nng 1.5.2 stops accepting on an ipc listener for good when clients
 * disconnect in the middle of the SP handshake, and leaks that listener's
 * negotiating pipes inside nng. The server's watchdog must notice and
 * listen again. This test triggers the nng bug on purpose, so it lives in
 * its own executable whose LeakSanitizer run suppresses allocations made
 * inside libnng (tests/unit/nng_1518.supp); every other test runs with no
 * suppression at all.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "ds_test.h"
#include "nrpc.h"
#include "nrpc/v1/rpc.pb-c.h"

/* The ping, called like any method: empty request, empty reply. */
static const nrpc_method nlt_ping = {
    NRPC_PING_METHOD, "Ping", &nrpc__v1__metadata__descriptor,
    &nrpc__v1__metadata__descriptor, true};

/* nlt_half_open connects to a unix socket and closes at once, in the
 * middle of nng's SP handshake: what a crashed or hostile client does. */
static void
nlt_half_open(const char *path, int times)
{
	for (int i = 0; i < times; i++) {
		struct sockaddr_un sa;
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);

		assert_true(fd >= 0);
		memset(&sa, 0, sizeof(sa));
		sa.sun_family = AF_UNIX;
		assert_true(strlen(path) < sizeof(sa.sun_path));
		memcpy(sa.sun_path, path, strlen(path) + 1);
		(void) connect(fd, (struct sockaddr *) &sa, sizeof(sa));
		close(fd);
	}
}

static void
test_listener_broken_by_half_open_handshakes_is_recreated(void **state)
{
	char dir[256];
	char path[108];
	char url[128];
	const char *urls[1] = {url};
	nrpc_server_config cfg;
	nrpc_server *srv = NULL;
	nrpc_server_stats stats;
	nrpc_client_config ccfg;
	nrpc_client *c = NULL;
	Nrpc__V1__Metadata req = NRPC__V1__METADATA__INIT;
	ProtobufCMessage *resp = NULL;
	nrpc_status st = {0};

	(void) state;
	assert_int_equal(ds_test_tmpdir(dir, sizeof(dir)), 0);
	assert_true(strlen(dir) + 8 < sizeof(path));
	(void) snprintf(path, sizeof(path), "%s/l.sock", dir);
	(void) snprintf(url, sizeof(url), "ipc://%s", path);
	nrpc_server_config_default(&cfg);
	cfg.urls = urls;
	cfg.n_urls = 1;
	cfg.listener_check_ms = 100;
	assert_int_equal(nrpc_server_create(&cfg, &srv, &st), NRPC_OK);
	assert_int_equal(nrpc_server_start(srv, &st), NRPC_OK);

	nlt_half_open(path, 40);
	/* nng 1.5.2 may now have stopped accepting on ipc; the watchdog
	 * notices within a few checks and listens again. */
	nrpc_client_config_default(&ccfg);
	ccfg.urls = urls;
	ccfg.n_urls = 1;
	ccfg.timeout_ms = 8000;
	assert_int_equal(nrpc_client_open(&ccfg, &c, &st), NRPC_OK);
	assert_int_equal(nrpc_client_call(c, &nlt_ping, &req.base, &resp, NULL,
	                     &st),
	    NRPC_OK);
	protobuf_c_message_free_unpacked(resp, NULL);
	nrpc_server_stats_get(srv, &stats);
	printf("half-open handshakes: listener re-created %llu time(s)\n",
	    (unsigned long long) stats.relistens);
	nrpc_client_close(c);
	nrpc_server_destroy(srv);
	ds_test_rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
	        test_listener_broken_by_half_open_handshakes_is_recreated),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
