/*
 * nrpc_tls_test.c - tls+tcp:// end to end with certificates made at test
 * time (tests/support/mkcerts.sh): a client that trusts the right CA
 * works; another CA, an expired server certificate, a plaintext peer on
 * the TLS port and a missing client certificate all fail, clearly, and
 * leave the server serving the good client; bad configuration is
 * refused naming the option.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "ds_test.h"
#include "nrpc_int.h"

#ifndef DS_MKCERTS
#error "DS_MKCERTS names tests/support/mkcerts.sh"
#endif

#define MD &nrpc__v1__metadata__descriptor
static const nrpc_method echo_method = {"/nrpc.test.Tls/Echo", "Echo", MD,
    MD, true};
#undef MD
static const nrpc_service_desc echo_service = {"nrpc.test.Tls", "Tls", 1,
    &echo_method};

static nrpc_code
echo_dispatch(const void *table, size_t method_index, nrpc_call *call,
    const ProtobufCMessage *req, void *arg)
{
	(void) table;
	(void) arg;
	if (method_index != 0) {
		return NRPC_UNIMPLEMENTED;
	}
	nrpc_call_reply(call, req);
	return NRPC_OK;
}

typedef struct tfx {
	char dir[256];
	char path[8][320];
	char url[64];
	nrpc_server *srv;
} tfx;

enum { CA, OTHER_CA, SERVER, SERVER_KEY, EXPIRED, CLIENT, CLIENT_KEY };

static const char *const tfx_names[] = {"ca.pem", "other-ca.pem",
    "server.pem", "server.key", "expired.pem", "client.pem", "client.key"};

static tfx *
tfx_new(void)
{
	tfx *f = calloc(1, sizeof(*f));
	char cmd[600];

	assert_non_null(f);
	assert_int_equal(ds_test_tmpdir(f->dir, sizeof(f->dir)), 0);
	(void) snprintf(cmd, sizeof(cmd), "%s %s", DS_MKCERTS, f->dir);
	assert_int_equal(system(cmd), 0);
	for (size_t i = 0; i < sizeof(tfx_names) / sizeof(tfx_names[0]); i++) {
		(void) snprintf(f->path[i], sizeof(f->path[i]), "%s/%s", f->dir,
		    tfx_names[i]);
	}
	/* By name: mbed TLS 2.28 (Debian 12's nng) matches the host against
	 * the certificate's DNS names and CN, not its IP addresses. */
	(void) snprintf(f->url, sizeof(f->url), "tls+tcp://localhost:%d",
	    ds_free_port());
	return f;
}

/* tfx_serve starts an echo server on f->url with cert (its key is
 * server.key) and, when client_ca is set, client certificates required. */
static void
tfx_serve(tfx *f, const char *cert, const char *client_ca)
{
	nrpc_server_config cfg;
	nrpc_status st = {0};
	const char *urls[1] = {f->url};

	nrpc_server_config_default(&cfg);
	cfg.urls = urls;
	cfg.n_urls = 1;
	cfg.tls_cert_file = cert;
	cfg.tls_key_file = f->path[SERVER_KEY];
	cfg.tls_client_ca_file = client_ca;
	assert_int_equal(nrpc_server_create(&cfg, &f->srv, &st), NRPC_OK);
	assert_int_equal(nrpc_server_add_service(f->srv, &echo_service,
	                     echo_dispatch, NULL, NULL, &st), NRPC_OK);
	assert_int_equal(nrpc_server_start(f->srv, &st), NRPC_OK);
}

static void
tfx_free(tfx *f)
{
	nrpc_server_destroy(f->srv);
	ds_test_rmdir(f->dir);
	free(f);
}

/* tfx_open opens a blocking-dial client of url trusting ca (and with a
 * client certificate when cert is set); returns the code. */
static nrpc_code
tfx_open(const char *url, const char *ca, const char *cert, const char *key,
    nrpc_client **out, nrpc_status *st)
{
	nrpc_client_config ccfg;
	const char *urls[1] = {url};

	nrpc_client_config_default(&ccfg);
	ccfg.urls = urls;
	ccfg.n_urls = 1;
	ccfg.timeout_ms = 3000;
	ccfg.dial_blocking = true;
	ccfg.tls_ca_file = ca;
	ccfg.tls_cert_file = cert;
	ccfg.tls_key_file = key;
	return nrpc_client_open(&ccfg, out, st);
}

/* echo_ok: one call through c answers with what it sent. */
static void
echo_ok(nrpc_client *c)
{
	Nrpc__V1__Metadata req = NRPC__V1__METADATA__INIT;
	ProtobufCMessage *resp = NULL;
	nrpc_status st = {0};

	req.key = (char *) "k";
	req.value = (char *) "over tls";
	assert_int_equal(nrpc_client_call(c, &echo_method, &req.base, &resp,
	                     NULL, &st), NRPC_OK);
	assert_string_equal(((Nrpc__V1__Metadata *) resp)->value, "over tls");
	protobuf_c_message_free_unpacked(resp, NULL);
}

static void
test_right_ca_works_and_other_ca_fails_clearly(void **state)
{
	tfx *f = tfx_new();
	nrpc_client *good = NULL, *bad = NULL;
	nrpc_status st = {0};

	(void) state;
	tfx_serve(f, f->path[SERVER], NULL);
	assert_int_equal(tfx_open(f->url, f->path[CA], NULL, NULL, &good, &st),
	    NRPC_OK);
	echo_ok(good);
	assert_int_equal(tfx_open(f->url, f->path[OTHER_CA], NULL, NULL, &bad,
	                     &st), NRPC_UNAVAILABLE);
	assert_null(bad);
	assert_string_equal(st.reason, "TLS_HANDSHAKE_FAILED");
	assert_non_null(strstr(st.message, f->url));
	echo_ok(good); /* the server still serves the good client */
	nrpc_client_close(good);
	tfx_free(f);
}

static void
test_expired_server_certificate_fails(void **state)
{
	tfx *f = tfx_new();
	nrpc_client *c = NULL;
	nrpc_status st = {0};

	(void) state;
	tfx_serve(f, f->path[EXPIRED], NULL);
	assert_int_equal(tfx_open(f->url, f->path[CA], NULL, NULL, &c, &st),
	    NRPC_UNAVAILABLE);
	assert_string_equal(st.reason, "TLS_HANDSHAKE_FAILED");
	tfx_free(f);
}

/* A peer that speaks plaintext (or nothing) to the TLS port: its
 * connection fails, the listener keeps accepting TLS clients. */
static void
test_plaintext_peers_do_not_break_the_listener(void **state)
{
	tfx *f = tfx_new();
	nrpc_client *good = NULL, *plain = NULL;
	nrpc_status st = {0};
	char plain_url[64];
	struct sockaddr_in sa;
	int port = atoi(strrchr(f->url, ':') + 1);

	(void) state;
	tfx_serve(f, f->path[SERVER], NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t) port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int i = 0; i < 20; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		assert_true(fd >= 0);
		assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)),
		    0);
		if (i % 2 == 0) {
			/* An SP header in clear, as a tcp:// peer sends. */
			(void) ds_test_send_all(fd, "\0SP\0\0\x30\0\0", 8);
		}
		(void) close(fd); /* mid-handshake */
	}
	(void) snprintf(plain_url, sizeof(plain_url), "tcp://127.0.0.1:%d",
	    port);
	{
		nrpc_client_config ccfg;
		const char *urls[1] = {plain_url};
		Nrpc__V1__Metadata req = NRPC__V1__METADATA__INIT;
		ProtobufCMessage *resp = NULL;
		nrpc_call_opts o = {0};

		nrpc_client_config_default(&ccfg);
		ccfg.urls = urls;
		ccfg.n_urls = 1;
		assert_int_equal(nrpc_client_open(&ccfg, &plain, &st), NRPC_OK);
		req.key = (char *) "k";
		req.value = (char *) "v";
		o.timeout_ms = 300;
		assert_int_not_equal(nrpc_client_call(plain, &echo_method,
		                         &req.base, &resp, &o, &st), NRPC_OK);
		assert_null(resp);
		nrpc_status_fini(&st);
	}
	assert_int_equal(tfx_open(f->url, f->path[CA], NULL, NULL, &good, &st),
	    NRPC_OK);
	echo_ok(good);
	nrpc_client_close(plain);
	nrpc_client_close(good);
	tfx_free(f);
}

static void
test_client_certificate_required(void **state)
{
	tfx *f = tfx_new();
	nrpc_client *with = NULL, *without = NULL;
	nrpc_status st = {0};

	(void) state;
	tfx_serve(f, f->path[SERVER], f->path[CA]);
	assert_int_equal(tfx_open(f->url, f->path[CA], f->path[CLIENT],
	                     f->path[CLIENT_KEY], &with, &st), NRPC_OK);
	echo_ok(with);
	assert_int_not_equal(tfx_open(f->url, f->path[CA], NULL, NULL, &without,
	                         &st), NRPC_OK);
	assert_null(without);
	nrpc_status_fini(&st);
	echo_ok(with);
	nrpc_client_close(with);
	tfx_free(f);
}

static void
test_bad_configuration_names_the_option(void **state)
{
	tfx *f = tfx_new();
	nrpc_server_config cfg;
	nrpc_status st = {0};
	nrpc_client *c = NULL;
	const char *urls[1] = {f->url};
	char missing[400];

	(void) state;
	nrpc_server_config_default(&cfg);
	cfg.urls = urls;
	cfg.n_urls = 1;
	assert_int_equal(nrpc_server_create(&cfg, &f->srv, &st),
	    NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.field, "tls_cert_file");
	(void) snprintf(missing, sizeof(missing), "%s/nope.pem", f->dir);
	cfg.tls_cert_file = missing;
	cfg.tls_key_file = f->path[SERVER_KEY];
	assert_int_equal(nrpc_server_create(&cfg, &f->srv, &st),
	    NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.field, "tls_cert_file");
	assert_non_null(strstr(st.message, missing));
	/* Not PEM at all. */
	cfg.tls_cert_file = f->path[SERVER_KEY];
	cfg.tls_key_file = f->path[SERVER];
	assert_int_equal(nrpc_server_create(&cfg, &f->srv, &st),
	    NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.field, "tls_cert_file");
	assert_null(f->srv);
	/* A client of a tls+tcp:// URL without a CA. */
	assert_int_equal(tfx_open(f->url, NULL, NULL, NULL, &c, &st),
	    NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.field, "tls_ca_file");
	tfx_free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_right_ca_works_and_other_ca_fails_clearly),
	    cmocka_unit_test(test_expired_server_certificate_fails),
	    cmocka_unit_test(test_plaintext_peers_do_not_break_the_listener),
	    cmocka_unit_test(test_client_certificate_required),
	    cmocka_unit_test(test_bad_configuration_names_the_option),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
