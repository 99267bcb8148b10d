/*
 * nrpc_probe_test.c - the watchdog's plain-socket probe (nrpc_probe.h):
 * it gets a real nrpc server's answer over ipc:// and tcp://, and it
 * reports no answer, within its timeout, for a path nobody listens on and
 * for a listener that accepts but never speaks (what nng #1518 leaves).
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
#include "nrpc_probe.h"

typedef struct npt_fixture {
	char dir[256];
	char ipc_url[300];
	char tcp_url[64];
	nrpc_server *srv;
	size_t ping_len;
	uint8_t ping[64];
} npt_fixture;

static int
npt_setup(void **state)
{
	static npt_fixture f;
	const char *urls[2];
	nrpc_server_config cfg;
	nrpc_status st = {0};
	Nrpc__V1__Request req = NRPC__V1__REQUEST__INIT;
	int port = ds_free_port();

	memset(&f, 0, sizeof(f));
	if (port < 0 || ds_test_tmpdir(f.dir, sizeof(f.dir)) != 0) {
		return -1;
	}
	(void) snprintf(f.ipc_url, sizeof(f.ipc_url), "ipc://%s/p.sock", f.dir);
	(void) snprintf(f.tcp_url, sizeof(f.tcp_url), "tcp://127.0.0.1:%d",
	    port);
	urls[0] = f.ipc_url;
	urls[1] = f.tcp_url;
	nrpc_server_config_default(&cfg);
	cfg.urls = urls;
	cfg.n_urls = 2;
	if (nrpc_server_create(&cfg, &f.srv, &st) != NRPC_OK ||
	    nrpc_server_start(f.srv, &st) != NRPC_OK) {
		nrpc_status_fini(&st);
		return -1;
	}
	req.method = (char *) NRPC_PING_METHOD;
	f.ping_len = nrpc__v1__request__pack(&req, f.ping);
	*state = &f;
	return 0;
}

static int
npt_teardown(void **state)
{
	npt_fixture *f = *state;

	nrpc_server_destroy(f->srv);
	ds_test_rmdir(f->dir);
	return 0;
}

static void
test_probe_is_answered_by_a_live_server_over_ipc_and_tcp(void **state)
{
	npt_fixture *f = *state;
	char wild[64];

	assert_int_equal(nrpc_probe_url(f->ipc_url, f->ping, f->ping_len, 2000),
	    NRPC_PROBE_ANSWERED);
	assert_int_equal(nrpc_probe_url(f->tcp_url, f->ping, f->ping_len, 2000),
	    NRPC_PROBE_ANSWERED);
	/* A wildcard listen address is probed on the loopback. */
	(void) snprintf(wild, sizeof(wild), "tcp://*:%s",
	    strrchr(f->tcp_url, ':') + 1);
	assert_int_equal(nrpc_probe_url(wild, f->ping, f->ping_len, 2000),
	    NRPC_PROBE_ANSWERED);
}

static void
test_probe_of_a_path_nobody_listens_on_has_no_answer(void **state)
{
	npt_fixture *f = *state;
	char url[320];

	(void) snprintf(url, sizeof(url), "ipc://%s/nobody.sock", f->dir);
	assert_int_equal(nrpc_probe_url(url, f->ping, f->ping_len, 2000),
	    NRPC_PROBE_NO_ANSWER);
}

/* A socket that is listened on but never accepted: connect succeeds
 * (the kernel's backlog), the handshake never comes back. */
static void
test_probe_of_a_silent_listener_gives_up_at_its_timeout(void **state)
{
	npt_fixture *f = *state;
	struct sockaddr_un sa;
	char url[320];
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	int64_t t0;
	int64_t took;

	assert_true(fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	assert_true(strlen(f->dir) + 13 < sizeof(sa.sun_path));
	memcpy(sa.sun_path, f->dir, strlen(f->dir));
	memcpy(sa.sun_path + strlen(f->dir), "/silent.sock", 13);
	assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 8), 0);
	(void) snprintf(url, sizeof(url), "ipc://%s", sa.sun_path);
	t0 = ds_test_now_ms();
	assert_int_equal(nrpc_probe_url(url, f->ping, f->ping_len, 300),
	    NRPC_PROBE_NO_ANSWER);
	took = ds_test_now_ms() - t0;
	close(fd);
	/* It waited for the answer (not a refusal) and stopped at its
	 * timeout; the upper bound only catches a probe that ignores it. */
	assert_true(took >= 250);
	assert_true(took < 5000);
}

static void
test_probe_of_other_transports_is_unsupported(void **state)
{
	npt_fixture *f = *state;

	assert_int_equal(nrpc_probe_url("inproc://x", f->ping, f->ping_len, 100),
	    NRPC_PROBE_UNSUPPORTED);
	assert_int_equal(nrpc_probe_url("ws://127.0.0.1:1/x", f->ping,
	                     f->ping_len, 100),
	    NRPC_PROBE_UNSUPPORTED);
	assert_int_equal(nrpc_probe_url("tcp://no-port", f->ping, f->ping_len,
	                     100),
	    NRPC_PROBE_UNSUPPORTED);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
	        test_probe_is_answered_by_a_live_server_over_ipc_and_tcp),
	    cmocka_unit_test(test_probe_of_a_path_nobody_listens_on_has_no_answer),
	    cmocka_unit_test(
	        test_probe_of_a_silent_listener_gives_up_at_its_timeout),
	    cmocka_unit_test(test_probe_of_other_transports_is_unsupported),
	};

	return cmocka_run_group_tests(tests, npt_setup, npt_teardown);
}
