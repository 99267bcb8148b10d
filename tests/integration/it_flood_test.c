/*
 * it_flood_test.c - the RPC server under a peer that floods and never
 * reads (DESIGN §11, hostile peers), against a real datasyncd.
 *
 * One raw SP peer dials the daemon and writes 20,000 Get requests for a
 * 256 KiB record on one connection without ever reading a reply. Meanwhile
 * a well-behaved client (an nng REQ socket, one request at a time, the
 * client's normal 10 s deadline) makes Gets and Updates on a connection
 * of its own. Every well-behaved call must succeed and its connection must
 * never be dropped: before the per-connection cap, the flooder held every
 * REP context, the listener watchdog took the unanswered pings for nng
 * #1518 and re-created the listener, which closed every client's
 * connection (the well-behaved client saw its calls stall ~3 s and its
 * connection go). The flooder's own connection must be closed by the
 * server. The test prints the well-behaved calls' p50 / p99 / max latency
 * and how the flooder was treated; it asserts no timing (the deadline is
 * the bound).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "datasync.h"
#include "ds_daemon.h"
#include "ds_rpc.h"
#include "ds_test.h"
#include "nrpc/v1/rpc.pb-c.h"

#define IT_FLOOD_REQUESTS 20000
#define IT_BIG_VALUE_BYTES (256 * 1024)
#define IT_GOOD_MIN_CALLS 200
#define IT_GOOD_MAX_CALLS 20000
#define IT_DEADLINE_MS 10000 /* the client's normal deadline */
#define IT_FLOOD_QUIET_WAIT_MS 12000 /* past the 10 s send timeout */
#define IT_FLOOD_CLOSE_WAIT_MS 30000

static ds_daemon it_d;

/* --- envelopes --- */

/* it_envelope packs a Request for method with body (packed msg) into a
 * malloc'd buffer. */
static uint8_t *
it_envelope(const char *method, const ProtobufCMessage *msg,
    const char *request_id, size_t *len)
{
	Nrpc__V1__Request r = NRPC__V1__REQUEST__INIT;
	uint8_t *body = malloc(protobuf_c_message_get_packed_size(msg) + 1);
	uint8_t *out;

	assert_non_null(body);
	r.method = (char *) method;
	r.body.len = protobuf_c_message_pack(msg, body);
	r.body.data = body;
	r.timeout_ms = IT_DEADLINE_MS;
	r.request_id = (char *) (request_id != NULL ? request_id : "");
	*len = nrpc__v1__request__get_packed_size(&r);
	out = malloc(*len);
	assert_non_null(out);
	(void) nrpc__v1__request__pack(&r, out);
	free(body);
	return out;
}

static uint8_t *
it_get_envelope(const char *key, size_t *len)
{
	Datasync__V1__GetRequest g = DATASYNC__V1__GET_REQUEST__INIT;

	g.key = (char *) key;
	return it_envelope("/datasync.v1.DataSync/Get", &g.base, NULL, len);
}

static uint8_t *
it_update_envelope(const char *key, const char *value, const char *rid,
    size_t *len)
{
	Datasync__V1__UpdateRequest u = DATASYNC__V1__UPDATE_REQUEST__INIT;
	Datasync__V1__Precondition pc = DATASYNC__V1__PRECONDITION__INIT;

	pc.kind_case = DATASYNC__V1__PRECONDITION__KIND_UNCONDITIONAL;
	pc.unconditional = true;
	u.key = (char *) key;
	u.value.data = (uint8_t *) value;
	u.value.len = strlen(value);
	u.content_type = "text/plain";
	u.precondition = &pc;
	return it_envelope("/datasync.v1.DataSync/Update", &u.base, rid, len);
}

/* --- the flooder --- */

typedef struct it_flood {
	const char *url;
	pthread_t th;
	atomic_bool connected;  /* handshake done, flood under way */
	atomic_bool finished;
	int sent;               /* requests written */
	int send_err;           /* errno of the write that failed, or 0 */
	bool closed;            /* the server closed the connection */
	bool drained;           /* its end was seen only after reading */
	int64_t closed_after_ms; /* from the first request */
} it_flood;

static int64_t
it_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void *
it_flood_main(void *arg)
{
	it_flood *f = arg;
	ds_sp_conn c;
	size_t len;
	uint8_t *req = it_get_envelope("flood/big", &len);
	int64_t t0;

	if (ds_sp_dial(&c, f->url, 5000, IT_FLOOD_CLOSE_WAIT_MS) != 0) {
		free(req);
		atomic_store(&f->finished, true);
		return NULL;
	}
	atomic_store(&f->connected, true);
	t0 = it_now_us();
	for (f->sent = 0; f->sent < IT_FLOOD_REQUESTS; f->sent++) {
		if ((f->send_err = ds_sp_send(&c, (uint32_t) f->sent + 1, req,
		         len)) != 0) {
			break;
		}
	}
	/* A failed write means the server closed the connection (EPIPE,
	 * ECONNRESET); otherwise wait, still reading nothing, for it to.
	 * If nothing shows, the server's FIN may sit behind the replies that
	 * fill the socket buffers: read them, then the end must come. */
	f->closed = (f->send_err != 0 && f->send_err != EAGAIN) ||
	    ds_sp_wait_closed(&c, IT_FLOOD_QUIET_WAIT_MS);
	f->drained = !f->closed;
	if (!f->closed) {
		f->closed = ds_sp_drain_closed(&c, IT_FLOOD_CLOSE_WAIT_MS);
	}
	f->closed_after_ms = (it_now_us() - t0) / 1000;
	ds_sp_close(&c);
	free(req);
	atomic_store(&f->finished, true);
	return NULL;
}

/* --- the well-behaved client --- */

static void
it_pipe_removed(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	(void) p;
	(void) ev;
	atomic_fetch_add((atomic_int *) arg, 1);
}

static int
it_cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *) a;
	int64_t y = *(const int64_t *) b;

	return x < y ? -1 : x > y;
}

/* it_call sends one envelope on s and checks the reply is OK. */
static bool
it_call(nng_socket s, const uint8_t *req, size_t len)
{
	void *reply = NULL;
	size_t rlen = 0;
	Nrpc__V1__Response *resp;
	bool ok;

	if (nng_send(s, (void *) req, len, 0) != 0 ||
	    nng_recv(s, &reply, &rlen, NNG_FLAG_ALLOC) != 0) {
		return false;
	}
	resp = nrpc__v1__response__unpack(NULL, rlen, reply);
	ok = resp != NULL && (resp->status == NULL || resp->status->code == 0);
	if (resp != NULL && !ok) {
		fprintf(stderr, "it_flood: call failed: %s\n",
		    resp->status->message);
	}
	if (resp != NULL) {
		nrpc__v1__response__free_unpacked(resp, NULL);
	}
	nng_free(reply, rlen);
	return ok;
}

/* it_log_count counts the lines of the daemon's log that contain what. */
static int
it_log_count(const char *what)
{
	FILE *fp = fopen(it_d.log, "r");
	char line[1024];
	int n = 0;

	if (fp == NULL) {
		return -1;
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		n += strstr(line, what) != NULL;
	}
	fclose(fp);
	return n;
}

/* it_flood_while_calling runs the flood against url and the well-behaved
 * client beside it, and checks and prints the outcome. */
static void
it_flood_while_calling(const char *url, const char *name)
{
	it_flood f = {.url = url};
	nng_socket s;
	atomic_int removed = 0;
	int64_t *lat = calloc(IT_GOOD_MAX_CALLS, sizeof(*lat));
	int n = 0;
	int failed = 0;
	size_t glen;
	uint8_t *get = it_get_envelope("flood/small", &glen);
	bool after;
	int dropped;

	assert_non_null(lat);
	assert_int_equal(nng_req0_open(&s), 0);
	assert_int_equal(nng_socket_set_ms(s, NNG_OPT_RECVTIMEO,
	                     IT_DEADLINE_MS), 0);
	assert_int_equal(nng_socket_set_ms(s, NNG_OPT_SENDTIMEO,
	                     IT_DEADLINE_MS), 0);
	assert_int_equal(nng_pipe_notify(s, NNG_PIPE_EV_REM_POST,
	                     it_pipe_removed, &removed), 0);
	assert_int_equal(nng_dial(s, url, NULL, 0), 0);
	/* One call before the flood: the connection is up. */
	assert_true(it_call(s, get, glen));

	assert_int_equal(pthread_create(&f.th, NULL, it_flood_main, &f), 0);
	while (!atomic_load(&f.connected) && !atomic_load(&f.finished)) {
		ds_test_sleep_ms(1);
	}
	assert_true(atomic_load(&f.connected));
	while (n < IT_GOOD_MAX_CALLS &&
	    (n < IT_GOOD_MIN_CALLS || !atomic_load(&f.finished))) {
		int64_t t0 = it_now_us();
		bool ok;

		if (n % 2 == 0) {
			ok = it_call(s, get, glen);
		} else {
			char rid[64];
			char value[32];
			size_t ulen;
			uint8_t *upd;

			(void) snprintf(rid, sizeof(rid), "it-flood-%s-%d", name, n);
			(void) snprintf(value, sizeof(value), "v%d", n);
			upd = it_update_envelope("flood/small", value, rid, &ulen);
			ok = it_call(s, upd, ulen);
			free(upd);
		}
		lat[n++] = it_now_us() - t0;
		failed += ok ? 0 : 1;
	}
	assert_int_equal(pthread_join(f.th, NULL), 0);

	qsort(lat, (size_t) n, sizeof(*lat), it_cmp_i64);
	printf("it_flood %s: well-behaved client: %d calls, %d failed, %d "
	       "connection(s) dropped; latency p50 %.3f ms, p99 %.3f ms, max "
	       "%.3f ms\n",
	    name, n, failed, atomic_load(&removed), lat[n / 2] / 1000.0,
	    lat[(n * 99) / 100] / 1000.0, lat[n - 1] / 1000.0);
	printf("it_flood %s: flooder wrote %d of %d requests (%s), its "
	       "connection %s after %" PRId64 " ms%s\n",
	    name, f.sent, IT_FLOOD_REQUESTS,
	    f.send_err != 0 ? strerror(f.send_err) : "all written",
	    f.closed ? "closed by the server" : "still open", f.closed_after_ms,
	    f.drained ? " (seen once it read the buffered replies)" : "");
	printf("it_flood %s: daemon log so far: %d connection(s) closed over "
	       "max_inflight_per_conn, %d on a send timeout, %d listener(s) "
	       "re-created\n",
	    name, it_log_count("over max_inflight_per_conn"),
	    it_log_count("reply dropped and connection closed"),
	    it_log_count("listening again"));
	fflush(stdout);
	/* The server still serves. */
	after = it_call(s, get, glen);
	dropped = atomic_load(&removed); /* closing removes its pipe too */
	(void) nng_close(s);
	free(get);
	free(lat);

	assert_int_equal(failed, 0);
	/* Its connection stayed: the watchdog did not re-create the
	 * listener, which closes every connection made through it. */
	assert_int_equal(dropped, 0);
	assert_true(f.closed);
	assert_true(after);
}

static void
test_flood_without_reading_over_ipc_leaves_other_clients_served(void **state)
{
	(void) state;
	it_flood_while_calling(it_d.ipc_url, "ipc");
}

static void
test_flood_without_reading_over_tcp_leaves_other_clients_served(void **state)
{
	(void) state;
	it_flood_while_calling(it_d.tcp_url, "tcp");
}

/* --- setup --- */

static int
it_setup(void **state)
{
	const char *url;
	datasync_client *c = NULL;
	nrpc_status st = {0};
	Datasync__V1__UpdateRequest u = DATASYNC__V1__UPDATE_REQUEST__INIT;
	Datasync__V1__Precondition pc = DATASYNC__V1__PRECONDITION__INIT;
	Datasync__V1__UpdateResponse *resp = NULL;
	uint8_t *big = malloc(IT_BIG_VALUE_BYTES);
	int rc = -1;

	(void) state;
	if (big == NULL || ds_daemon_start(&it_d, false, NULL) != 0) {
		free(big);
		return -1;
	}
	url = it_d.ipc_url;
	if (datasync_connect(&url, 1, IT_DEADLINE_MS, "it-flood", &c, &st) !=
	    NRPC_OK) {
		free(big);
		return -1;
	}
	memset(big, 'x', IT_BIG_VALUE_BYTES);
	pc.kind_case = DATASYNC__V1__PRECONDITION__KIND_UNCONDITIONAL;
	pc.unconditional = true;
	u.precondition = &pc;
	u.content_type = "application/octet-stream";
	u.key = "flood/big";
	u.value.data = big;
	u.value.len = IT_BIG_VALUE_BYTES;
	if (datasync_v1_data_sync_update(datasync_rpc(c), &u, &resp, NULL,
	        &st) == NRPC_OK) {
		datasync__v1__update_response__free_unpacked(resp, NULL);
		u.key = "flood/small";
		u.value.data = (uint8_t *) "v";
		u.value.len = 1;
		if (datasync_v1_data_sync_update(datasync_rpc(c), &u, &resp, NULL,
		        &st) == NRPC_OK) {
			datasync__v1__update_response__free_unpacked(resp, NULL);
			rc = 0;
		}
	}
	nrpc_status_fini(&st);
	datasync_close(c);
	free(big);
	return rc;
}

static int
it_teardown(void **state)
{
	(void) state;
	(void) ds_daemon_stop(&it_d);
	ds_daemon_fini(&it_d);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
	        test_flood_without_reading_over_ipc_leaves_other_clients_served),
	    cmocka_unit_test(
	        test_flood_without_reading_over_tcp_leaves_other_clients_served),
	};

	return cmocka_run_group_tests(tests, it_setup, it_teardown) +
	    ds_daemon_failures();
}
