/*
 * nrpc_server_test.c - the server over real nng sockets (inproc:// and
 * ipc:// in a temporary directory): routing, statuses, limits, deadlines,
 * hand-offs to other threads, overload, shutdown.
 *
 * The test service is written by hand in the shape protoc-gen-nrpc
 * generates (a method table, a typed handler table, a dispatch switch),
 * with nrpc.v1.Metadata as every method's request and response so that
 * nrpc needs nothing of datasync.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "ds_alloc.h"
#include "ds_test.h"
#include "nrpc_int.h"

/* --- the test service --- */

typedef void (*test_md_fn)(nrpc_call *call, const Nrpc__V1__Metadata *req,
    void *arg);

enum {
	M_ECHO,
	M_SLOW,
	M_FAIL,
	M_MISSING,
	M_INFO,
	M_BLOCK,
	M_LATER,
	M_WRONG,
	M_WORKER,
	M_COUNT,
};

typedef struct test_handlers {
	test_md_fn echo;    /* reply with the request */
	test_md_fn slow;    /* finish from the finisher after value ms */
	test_md_fn conflict; /* ABORTED with reason, field, detail */
	test_md_fn missing; /* NULL: no handler */
	test_md_fn info;    /* key=request_id, value=metadata[req.key] */
	test_md_fn block;   /* wait on the gate on the worker, then echo */
	test_md_fn later;   /* hand to the finisher thread at once */
	test_md_fn wrong;   /* reply with the wrong message type */
	test_md_fn worker;  /* value = the worker state */
} test_handlers;

#define MD &nrpc__v1__metadata__descriptor
static const nrpc_method test_methods[M_COUNT] = {
    {"/nrpc.test.Test/Echo", "Echo", MD, MD, true},
    {"/nrpc.test.Test/Slow", "Slow", MD, MD, false},
    {"/nrpc.test.Test/Fail", "Fail", MD, MD, false},
    {"/nrpc.test.Test/Missing", "Missing", MD, MD, false},
    {"/nrpc.test.Test/Info", "Info", MD, MD, true},
    {"/nrpc.test.Test/Block", "Block", MD, MD, false},
    {"/nrpc.test.Test/Later", "Later", MD, MD, false},
    {"/nrpc.test.Test/Wrong", "Wrong", MD, MD, false},
    {"/nrpc.test.Test/Worker", "Worker", MD, MD, false},
};
#undef MD

static const nrpc_service_desc test_service = {
    "nrpc.test.Test", "Test", M_COUNT, test_methods};

/* Not registered: the client may call it, the server does not know it. */
static const nrpc_method test_unknown = {"/nrpc.test.Test/Nope", "Nope",
    &nrpc__v1__metadata__descriptor, &nrpc__v1__metadata__descriptor, false};

#define TEST_CASE(idx, field)                                                  \
	case idx:                                                              \
		if (h->field == NULL) {                                        \
			return NRPC_UNIMPLEMENTED;                             \
		}                                                              \
		h->field(call, (const Nrpc__V1__Metadata *) req, arg);         \
		return NRPC_OK;

static nrpc_code
test_dispatch(const void *table, size_t method_index, nrpc_call *call,
    const ProtobufCMessage *req, void *arg)
{
	const test_handlers *h = table;

	switch (method_index) {
		TEST_CASE(M_ECHO, echo)
		TEST_CASE(M_SLOW, slow)
		TEST_CASE(M_FAIL, conflict)
		TEST_CASE(M_MISSING, missing)
		TEST_CASE(M_INFO, info)
		TEST_CASE(M_BLOCK, block)
		TEST_CASE(M_LATER, later)
		TEST_CASE(M_WRONG, wrong)
		TEST_CASE(M_WORKER, worker)
	default:
		return NRPC_UNIMPLEMENTED;
	}
}

/* --- fixture --- */

#define FIN_MAX 1024

typedef struct fin_item {
	nrpc_call *call;
	const Nrpc__V1__Metadata *req;
	struct timespec due;
} fin_item;

typedef struct fx {
	char dir[256];
	char url[300];
	ds_fake_clock fake;
	nrpc_server *srv;
	nrpc_client *cli;

	pthread_mutex_t mtx;
	pthread_cond_t cv;
	bool gate_open;          /* Block handlers may finish */
	int block_entered;
	int slow_entered;
	int echo_runs;
	pthread_t handler_thread;
	pthread_t finisher_thread;
	int worker_state[8];
	int fini_calls;
	int init_fail_index;     /* -1: none */
	int inline_inits;        /* worker_init calls for nng threads */
	pthread_t inline_threads[8];

	/* the finisher: another thread that finishes calls (as the
	 * datasync writer thread will) */
	pthread_t fin;
	fin_item items[FIN_MAX];
	size_t n_items;
	bool fin_stop;
} fx;

static void
fx_lock(fx *f)
{
	pthread_mutex_lock(&f->mtx);
}

static void
fx_unlock(fx *f)
{
	pthread_mutex_unlock(&f->mtx);
}

static void *
fin_main(void *arg)
{
	fx *f = arg;

	fx_lock(f);
	for (;;) {
		struct timespec now;
		size_t best = 0;

		if (f->n_items == 0) {
			if (f->fin_stop) {
				break;
			}
			pthread_cond_wait(&f->cv, &f->mtx);
			continue;
		}
		for (size_t i = 1; i < f->n_items; i++) {
			if (f->items[i].due.tv_sec < f->items[best].due.tv_sec ||
			    (f->items[i].due.tv_sec == f->items[best].due.tv_sec &&
			    f->items[i].due.tv_nsec < f->items[best].due.tv_nsec)) {
				best = i;
			}
		}
		clock_gettime(CLOCK_REALTIME, &now);
		if (now.tv_sec < f->items[best].due.tv_sec ||
		    (now.tv_sec == f->items[best].due.tv_sec &&
		    now.tv_nsec < f->items[best].due.tv_nsec)) {
			pthread_cond_timedwait(&f->cv, &f->mtx,
			    &f->items[best].due);
			continue;
		}
		{
			fin_item it = f->items[best];
			Nrpc__V1__Metadata out = NRPC__V1__METADATA__INIT;

			f->items[best] = f->items[--f->n_items];
			f->finisher_thread = pthread_self();
			fx_unlock(f);
			out.key = "finished";
			out.value = it.req->value;
			nrpc_call_reply(it.call, &out.base);
			fx_lock(f);
		}
	}
	fx_unlock(f);
	return NULL;
}

static void
fin_add(fx *f, nrpc_call *call, const Nrpc__V1__Metadata *req, long ms)
{
	struct timespec due;

	clock_gettime(CLOCK_REALTIME, &due);
	due.tv_sec += ms / 1000;
	due.tv_nsec += (ms % 1000) * 1000000;
	if (due.tv_nsec >= 1000000000) {
		due.tv_sec++;
		due.tv_nsec -= 1000000000;
	}
	fx_lock(f);
	assert_true(f->n_items < FIN_MAX);
	f->items[f->n_items++] = (fin_item){call, req, due};
	pthread_cond_broadcast(&f->cv);
	fx_unlock(f);
}

/* --- handlers --- */

static void
h_echo(nrpc_call *call, const Nrpc__V1__Metadata *req, void *arg)
{
	fx *f = arg;

	fx_lock(f);
	f->echo_runs++;
	fx_unlock(f);
	nrpc_call_reply(call, &req->base);
}

static void
h_slow(nrpc_call *call, const Nrpc__V1__Metadata *req, void *arg)
{
	fx *f = arg;

	fin_add(f, call, req, atol(req->key));
	fx_lock(f);
	f->slow_entered++;
	pthread_cond_broadcast(&f->cv);
	fx_unlock(f);
}

static void
h_fail(nrpc_call *call, const Nrpc__V1__Metadata *req, void *arg)
{
	nrpc_status st = {0};
	Nrpc__V1__Metadata cur = NRPC__V1__METADATA__INIT;

	(void) arg;
	cur.key = req->key;
	cur.value = "current value";
	nrpc_status_set(&st, NRPC_ABORTED, "VERSION_CONFLICT", "key",
	    "version conflict on %s", req->key);
	if (nrpc_status_set_detail(&st, &cur.base) != NRPC_OK) {
		/* out of memory (fault injection) */
		nrpc_status_fini(&st);
		nrpc_call_fail(call, NRPC_RESOURCE_EXHAUSTED, "OUT_OF_MEMORY",
		    NULL, "no memory for the detail");
		return;
	}
	nrpc_call_finish(call, &st, NULL);
	nrpc_status_fini(&st);
}

static void
h_info(nrpc_call *call, const Nrpc__V1__Metadata *req, void *arg)
{
	Nrpc__V1__Metadata out = NRPC__V1__METADATA__INIT;
	const char *v;

	(void) arg;
	char peer[NRPC_PEER_MAX + 8];

	if (strcmp(req->key, "client_name") == 0) {
		v = nrpc_call_client_name(call);
	} else if (strcmp(req->key, "peer") == 0) {
		static const char *const kinds[] = {"none", "local", "net"};
		char addr[NRPC_PEER_MAX];
		nrpc_peer_kind k = nrpc_call_peer(call, addr, sizeof(addr));

		(void) snprintf(peer, sizeof(peer), "%s %s", kinds[k], addr);
		v = peer;
	} else {
		v = nrpc_call_metadata(call, req->key);
	}
	out.key = (char *) nrpc_call_request_id(call);
	out.value = (char *) (v != NULL ? v : "<none>");
	assert_string_equal(nrpc_call_method(call)->name, "Info");
	nrpc_call_reply(call, &out.base);
}

static void
h_block(nrpc_call *call, const Nrpc__V1__Metadata *req, void *arg)
{
	fx *f = arg;

	fx_lock(f);
	f->block_entered++;
	pthread_cond_broadcast(&f->cv);
	while (!f->gate_open) {
		pthread_cond_wait(&f->cv, &f->mtx);
	}
	fx_unlock(f);
	nrpc_call_reply(call, &req->base);
}

static void
h_later(nrpc_call *call, const Nrpc__V1__Metadata *req, void *arg)
{
	fx *f = arg;

	fx_lock(f);
	f->handler_thread = pthread_self();
	fx_unlock(f);
	fin_add(f, call, req, 0);
}

static void
h_wrong(nrpc_call *call, const Nrpc__V1__Metadata *req, void *arg)
{
	Nrpc__V1__Status s = NRPC__V1__STATUS__INIT;

	(void) req;
	(void) arg;
	nrpc_call_reply(call, &s.base);
}

static void
h_worker(nrpc_call *call, const Nrpc__V1__Metadata *req, void *arg)
{
	Nrpc__V1__Metadata out = NRPC__V1__METADATA__INIT;
	int *ws = nrpc_call_worker_state(call);
	char buf[32];

	(void) req;
	(void) arg;
	(void) snprintf(buf, sizeof(buf), "%d", ws != NULL ? *ws : -1);
	out.value = buf;
	nrpc_call_reply(call, &out.base);
}

static const test_handlers test_table = {
    h_echo, h_slow, h_fail, NULL, h_info, h_block, h_later, h_wrong,
    h_worker};

static int
w_init(void *arg, unsigned index, void **wstate)
{
	fx *f = arg;

	if ((int) index == f->init_fail_index) {
		return 7;
	}
	f->worker_state[index] = 100 + (int) index;
	*wstate = &f->worker_state[index];
	return 0;
}

static void
w_fini(void *arg, void *wstate)
{
	fx *f = arg;

	(void) wstate;
	fx_lock(f);
	f->fini_calls++;
	fx_unlock(f);
}

/* w_init_inline: the worker state of an nng callback thread (inline
 * handlers). Refuses pool indexes: inline mode must not start a pool. */
static int
w_init_inline(void *arg, unsigned index, void **wstate)
{
	fx *f = arg;
	int n;

	if (index != NRPC_INLINE_WORKER) {
		return 9;
	}
	fx_lock(f);
	n = f->inline_inits++;
	fx_unlock(f);
	if (n >= 8) {
		return 8;
	}
	f->inline_threads[n] = pthread_self();
	f->worker_state[n] = 500 + n;
	*wstate = &f->worker_state[n];
	return 0;
}

/* --- setup --- */

static int
fx_setup(void **state)
{
	static int seq;
	fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(ds_test_tmpdir(f->dir, sizeof(f->dir)), 0);
	(void) snprintf(f->url, sizeof(f->url), "inproc://nrpc-server-test-%d-%d",
	    (int) getpid(), ++seq);
	ds_fake_clock_init(&f->fake, 1000000);
	pthread_mutex_init(&f->mtx, NULL);
	pthread_cond_init(&f->cv, NULL);
	f->init_fail_index = -1;
	assert_int_equal(pthread_create(&f->fin, NULL, fin_main, f), 0);
	*state = f;
	return 0;
}

static int
fx_teardown(void **state)
{
	fx *f = *state;

	fx_lock(f);
	f->gate_open = true;
	pthread_cond_broadcast(&f->cv);
	fx_unlock(f);
	nrpc_client_close(f->cli);
	/* Stop while the finisher runs: stop waits for held calls. */
	nrpc_server_destroy(f->srv);
	fx_lock(f);
	f->fin_stop = true;
	pthread_cond_broadcast(&f->cv);
	fx_unlock(f);
	pthread_join(f->fin, NULL);
	ds_test_rmdir(f->dir);
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->mtx);
	free(f);
	return 0;
}

/* fx_start starts a server on f->url (and extra, if not NULL) with cfg
 * adjusted by the caller (NULL = defaults), and opens a client. */
static void
fx_start(fx *f, nrpc_server_config *cfg_in, const char *extra)
{
	nrpc_server_config cfg;
	nrpc_client_config ccfg;
	nrpc_status st = {0};
	const char *urls[2] = {f->url, extra};

	if (cfg_in != NULL) {
		cfg = *cfg_in;
	} else {
		nrpc_server_config_default(&cfg);
	}
	cfg.urls = urls;
	cfg.n_urls = extra != NULL ? 2 : 1;
	cfg.worker_arg = f;
	assert_int_equal(nrpc_server_create(&cfg, &f->srv, &st), NRPC_OK);
	assert_int_equal(nrpc_server_add_service(f->srv, &test_service,
	    test_dispatch, &test_table, f, &st), NRPC_OK);
	assert_int_equal(nrpc_server_start(f->srv, &st), NRPC_OK);
	nrpc_client_config_default(&ccfg);
	ccfg.urls = urls;
	ccfg.n_urls = 1;
	ccfg.client_name = "server-test";
	assert_int_equal(nrpc_client_open(&ccfg, &f->cli, &st), NRPC_OK);
}

static nrpc_code
call_md(nrpc_client *c, const nrpc_method *m, const char *key,
    const char *value, const nrpc_call_opts *opts, Nrpc__V1__Metadata **out,
    nrpc_status *st)
{
	Nrpc__V1__Metadata req = NRPC__V1__METADATA__INIT;
	ProtobufCMessage *resp = NULL;
	nrpc_code rc;

	req.key = (char *) key;
	req.value = (char *) value;
	rc = nrpc_client_call(c, m, &req.base, &resp, opts, st);
	if (rc == NRPC_OK) {
		*out = (Nrpc__V1__Metadata *) resp;
	}
	assert_true(rc == NRPC_OK || resp == NULL);
	return rc;
}

/* An async result, filled by async_done. */
typedef struct async_res {
	pthread_mutex_t mtx;
	pthread_cond_t cv;
	int done;
	nrpc_code code;
	char reason[NRPC_REASON_MAX];
	char value[64];
} async_res;

static void
async_init(async_res *r, int n)
{
	for (int i = 0; i < n; i++) {
		memset(&r[i], 0, sizeof(r[i]));
		pthread_mutex_init(&r[i].mtx, NULL);
		pthread_cond_init(&r[i].cv, NULL);
	}
}

static void
async_done(nrpc_fnptr cb, void *arg, ProtobufCMessage *resp,
    const nrpc_status *st)
{
	async_res *r = arg;
	Nrpc__V1__Metadata *md = (Nrpc__V1__Metadata *) resp;

	(void) cb;
	pthread_mutex_lock(&r->mtx);
	r->code = st->code;
	(void) snprintf(r->reason, sizeof(r->reason), "%s", st->reason);
	if (md != NULL) {
		(void) snprintf(r->value, sizeof(r->value), "%s", md->value);
		protobuf_c_message_free_unpacked(resp, NULL);
	}
	r->done++;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mtx);
}

static void
async_wait(async_res *r)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 30;
	pthread_mutex_lock(&r->mtx);
	while (r->done == 0) {
		assert_int_equal(pthread_cond_timedwait(&r->cv, &r->mtx, &ts), 0);
	}
	assert_int_equal(r->done, 1);
	pthread_mutex_unlock(&r->mtx);
}

static void
async_start(fx *f, const nrpc_method *m, const char *key, const char *value,
    const nrpc_call_opts *opts, async_res *r)
{
	Nrpc__V1__Metadata req = NRPC__V1__METADATA__INIT;
	nrpc_status st = {0};

	req.key = (char *) key;
	req.value = (char *) value;
	assert_int_equal(nrpc_client_call_async(f->cli, m, &req.base, opts,
	    async_done, NULL, r, &st), NRPC_OK);
}

static int64_t
now_ms(void)
{
	return ds_clock_now_ms(ds_clock_monotonic());
}

/* wait_stats polls until the server has received n envelopes. */
static void
wait_received(nrpc_server *srv, uint64_t n)
{
	nrpc_server_stats s;
	int64_t end = now_ms() + 10000;

	do {
		nrpc_server_stats_get(srv, &s);
		if (s.received >= n) {
			return;
		}
		usleep(1000);
	} while (now_ms() < end);
	fail_msg("server received %llu of %llu", (unsigned long long) s.received,
	    (unsigned long long) n);
}

static void
wait_block_entered(fx *f, int n)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	fx_lock(f);
	while (f->block_entered < n) {
		assert_int_equal(pthread_cond_timedwait(&f->cv, &f->mtx, &ts), 0);
	}
	fx_unlock(f);
}

static void
wait_slow_entered(fx *f, int n)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	fx_lock(f);
	while (f->slow_entered < n) {
		assert_int_equal(pthread_cond_timedwait(&f->cv, &f->mtx, &ts), 0);
	}
	fx_unlock(f);
}

static void
open_gate(fx *f)
{
	fx_lock(f);
	f->gate_open = true;
	pthread_cond_broadcast(&f->cv);
	fx_unlock(f);
}

/* raw_call sends buf with a plain nng REQ socket and decodes the reply's
 * status into st. Returns nng's result (0, or NNG_ETIMEDOUT when the
 * server dropped the connection instead of answering). */
static int
raw_call(const char *url, const void *buf, size_t len, int timeout_ms,
    nrpc_status *st)
{
	nng_socket s;
	char *reply = NULL;
	size_t reply_len = 0;
	ProtobufCMessage *resp = NULL;
	int rv;

	assert_int_equal(nng_req0_open(&s), 0);
	assert_int_equal(nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, timeout_ms), 0);
	/* When the server drops the connection (RECVMAXSZ over ipc), REQ
	 * reconnects and resends at once, over and over; nng 1.5.2 can then
	 * hang in nng_close() (a lost wake-up while a pipe is torn down). A
	 * long reconnect interval keeps that churn out of the test. */
	assert_int_equal(nng_socket_set_ms(s, NNG_OPT_RECONNMINT, 60000), 0);
	assert_int_equal(nng_socket_set_ms(s, NNG_OPT_RECONNMAXT, 60000), 0);
	assert_int_equal(nng_dial(s, url, NULL, 0), 0);
	assert_int_equal(nng_send(s, (void *) buf, len, 0), 0);
	if ((rv = nng_recv(s, &reply, &reply_len, NNG_FLAG_ALLOC)) == 0) {
		(void) nrpc_envelope_decode_reply((uint8_t *) reply, reply_len,
		    1 << 20, &nrpc__v1__metadata__descriptor, &resp, st);
		if (resp != NULL) {
			protobuf_c_message_free_unpacked(resp, NULL);
		}
		nng_free(reply, reply_len);
	}
	(void) nng_close(s);
	return rv;
}

/* request_of_size packs an Echo envelope of exactly size bytes (a valid
 * one), by padding the value. */
static uint8_t *
request_of_size(size_t size)
{
	for (size_t pad = 0; pad < size; pad++) {
		for (size_t name = 0; name < 4; name++) {
			Nrpc__V1__Request r = NRPC__V1__REQUEST__INIT;
			Nrpc__V1__Metadata md = NRPC__V1__METADATA__INIT;
			uint8_t *body;
			uint8_t *out;
			size_t blen;
			char *v = calloc(1, pad + 1);
			char cn[8] = "";

			assert_non_null(v);
			memset(v, 'p', pad);
			memset(cn, 'c', name);
			md.key = "k";
			md.value = v;
			blen = nrpc__v1__metadata__get_packed_size(&md);
			body = malloc(blen + 1);
			assert_non_null(body);
			(void) nrpc__v1__metadata__pack(&md, body);
			r.method = (char *) test_methods[M_ECHO].full_name;
			r.body.data = body;
			r.body.len = blen;
			r.client_name = cn;
			if (nrpc__v1__request__get_packed_size(&r) == size) {
				out = malloc(size);
				assert_non_null(out);
				(void) nrpc__v1__request__pack(&r, out);
				free(body);
				free(v);
				return out;
			}
			free(body);
			free(v);
		}
	}
	fail_msg("no request of %zu bytes", size);
	return NULL;
}

/* --- a peer that sends and never reads --- */

/* A raw REQ socket: it sends what it is given, with the REQ header we
 * choose, and never waits for (nor, unless asked, reads) a reply. */
typedef struct raw_peer {
	nng_socket s;
	atomic_int removed; /* its connections that went away */
} raw_peer;

static void
raw_peer_pipe_removed(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	raw_peer *rp = arg;

	(void) p;
	(void) ev;
	atomic_fetch_add(&rp->removed, 1);
}

static void
raw_peer_open(raw_peer *rp, const char *url)
{
	atomic_store(&rp->removed, 0);
	assert_int_equal(nng_req0_open_raw(&rp->s), 0);
	/* The server closing the connection must not be papered over by a
	 * reconnect within the test. */
	assert_int_equal(nng_socket_set_ms(rp->s, NNG_OPT_RECONNMINT, 60000), 0);
	assert_int_equal(nng_socket_set_ms(rp->s, NNG_OPT_RECONNMAXT, 60000), 0);
	assert_int_equal(nng_pipe_notify(rp->s, NNG_PIPE_EV_REM_POST,
	    raw_peer_pipe_removed, rp), 0);
	assert_int_equal(nng_dial(rp->s, url, NULL, 0), 0);
}

/* raw_peer_send sends method(key, value) as request number id. */
static void
raw_peer_send(raw_peer *rp, uint32_t id, const nrpc_method *m,
    const char *key, const char *value)
{
	Nrpc__V1__Request r = NRPC__V1__REQUEST__INIT;
	Nrpc__V1__Metadata md = NRPC__V1__METADATA__INIT;
	size_t blen;
	uint8_t *body;
	nng_msg *msg;

	md.key = (char *) key;
	md.value = (char *) value;
	blen = nrpc__v1__metadata__get_packed_size(&md);
	body = malloc(blen + 1);
	assert_non_null(body);
	(void) nrpc__v1__metadata__pack(&md, body);
	r.method = (char *) m->full_name;
	r.body.data = body;
	r.body.len = blen;
	assert_int_equal(nng_msg_alloc(&msg,
	    nrpc__v1__request__get_packed_size(&r)), 0);
	(void) nrpc__v1__request__pack(&r, nng_msg_body(msg));
	assert_int_equal(nng_msg_header_append_u32(msg, id | 0x80000000u), 0);
	assert_int_equal(nng_sendmsg(rp->s, msg, 0), 0);
	free(body);
}

/* wait_stat polls until field of the server's stats reaches n. */
#define wait_stat(srv, field, n)                                               \
	do {                                                                   \
		nrpc_server_stats ws_;                                         \
		int64_t end_ = now_ms() + 20000;                               \
		for (;;) {                                                     \
			nrpc_server_stats_get((srv), &ws_);                    \
			if (ws_.field >= (n)) {                                \
				break;                                         \
			}                                                      \
			if (now_ms() >= end_) {                                \
				fail_msg("stats." #field " is %llu, not %llu", \
				    (unsigned long long) ws_.field,            \
				    (unsigned long long) (n));                 \
			}                                                      \
			usleep(1000);                                          \
		}                                                              \
	} while (0)

static void
wait_removed(raw_peer *rp, int n)
{
	int64_t end = now_ms() + 20000;

	while (atomic_load(&rp->removed) < n) {
		if (now_ms() >= end) {
			fail_msg("%d of %d connections removed",
			    atomic_load(&rp->removed), n);
		}
		usleep(1000);
	}
}

/* --- tests: round trips --- */

static void
test_echo_round_trip_blocking(void **state)
{
	fx *f = *state;
	Nrpc__V1__Metadata *out = NULL;
	nrpc_status st = {0};

	fx_start(f, NULL, NULL);
	assert_int_equal(call_md(f->cli, &test_methods[M_ECHO], "hello",
	    "world", NULL, &out, &st), NRPC_OK);
	assert_int_equal(st.code, NRPC_OK);
	assert_string_equal(out->key, "hello");
	assert_string_equal(out->value, "world");
	protobuf_c_message_free_unpacked(&out->base, NULL);
}

static void
test_echo_round_trip_async(void **state)
{
	fx *f = *state;
	async_res r;

	fx_start(f, NULL, NULL);
	async_init(&r, 1);
	async_start(f, &test_methods[M_ECHO], "k", "async value", NULL, &r);
	async_wait(&r);
	assert_int_equal(r.code, NRPC_OK);
	assert_string_equal(r.value, "async value");
}

static void
test_echo_round_trip_over_ipc(void **state)
{
	fx *f = *state;
	char ipc[300];
	nrpc_client *c = NULL;
	nrpc_client_config ccfg;
	const char *urls[1] = {ipc};
	Nrpc__V1__Metadata *out = NULL;
	nrpc_status st = {0};

	(void) snprintf(ipc, sizeof(ipc), "ipc://%s/s.sock", f->dir);
	fx_start(f, NULL, ipc);
	nrpc_client_config_default(&ccfg);
	ccfg.urls = urls;
	ccfg.n_urls = 1;
	assert_int_equal(nrpc_client_open(&ccfg, &c, &st), NRPC_OK);
	assert_int_equal(call_md(c, &test_methods[M_ECHO], "over", "ipc", NULL,
	    &out, &st), NRPC_OK);
	assert_string_equal(out->value, "ipc");
	protobuf_c_message_free_unpacked(&out->base, NULL);
	nrpc_client_close(c);
}

/* peer_of asks the Info handler who c is. */
static void
peer_of(nrpc_client *c, char *out, size_t len)
{
	Nrpc__V1__Metadata *resp = NULL;
	nrpc_status st = {0};

	assert_int_equal(call_md(c, &test_methods[M_INFO], "peer", "", NULL,
	    &resp, &st), NRPC_OK);
	(void) snprintf(out, len, "%s", resp->value);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
}

static void
test_call_peer_names_the_transport_or_the_remote_address(void **state)
{
	fx *f = *state;
	char tcp[64];
	char ipc[300];
	char got[NRPC_PEER_MAX + 8];
	const char *urls[1];
	nrpc_client_config ccfg;
	nrpc_client *c = NULL;
	nrpc_status st = {0};
	nrpc_server_config cfg;

	/* the fixture's own client dials inproc:// */
	(void) snprintf(tcp, sizeof(tcp), "tcp://127.0.0.1:%d", ds_free_port());
	(void) snprintf(ipc, sizeof(ipc), "ipc://%s/p.sock", f->dir);
	nrpc_server_config_default(&cfg);
	fx_start(f, &cfg, tcp);
	peer_of(f->cli, got, sizeof(got));
	assert_string_equal(got, "local inproc");

	nrpc_client_config_default(&ccfg);
	ccfg.urls = urls;
	ccfg.n_urls = 1;
	urls[0] = tcp;
	assert_int_equal(nrpc_client_open(&ccfg, &c, &st), NRPC_OK);
	peer_of(c, got, sizeof(got));
	/* the address alone: every connection of one host is one peer */
	assert_string_equal(got, "net 127.0.0.1");
	nrpc_client_close(c);
	nrpc_client_close(f->cli);
	f->cli = NULL;
	nrpc_server_destroy(f->srv);
	f->srv = NULL;

	fx_start(f, NULL, ipc);
	urls[0] = ipc;
	assert_int_equal(nrpc_client_open(&ccfg, &c, &st), NRPC_OK);
	peer_of(c, got, sizeof(got));
	assert_string_equal(got, "local ipc");
	nrpc_client_close(c);
}

static void
test_call_peer_without_a_connection_is_none(void **state)
{
	(void) state;
	char buf[NRPC_PEER_MAX] = "x";

	assert_int_equal(nrpc_call_peer(NULL, buf, sizeof(buf)), NRPC_PEER_NONE);
	assert_string_equal(buf, "");
}

static void
test_error_status_round_trips_reason_message_field_detail(void **state)
{
	fx *f = *state;
	Nrpc__V1__Metadata *out = (Nrpc__V1__Metadata *) 1;
	Nrpc__V1__Metadata *cur;
	nrpc_status st = {0};

	fx_start(f, NULL, NULL);
	assert_int_equal(call_md(f->cli, &test_methods[M_FAIL], "rec/1", "",
	    NULL, &out, &st), NRPC_ABORTED);
	assert_ptr_equal(out, (void *) 1); /* untouched on failure */
	assert_int_equal(st.code, NRPC_ABORTED);
	assert_string_equal(st.reason, "VERSION_CONFLICT");
	assert_string_equal(st.message, "version conflict on rec/1");
	assert_string_equal(st.field, "key");
	assert_string_equal(st.detail_type, "nrpc.v1.Metadata");
	cur = nrpc__v1__metadata__unpack(NULL, st.detail_len, st.detail);
	assert_non_null(cur);
	assert_string_equal(cur->key, "rec/1");
	assert_string_equal(cur->value, "current value");
	nrpc__v1__metadata__free_unpacked(cur, NULL);
	nrpc_status_fini(&st);
}

static void
test_unknown_method_returns_unimplemented(void **state)
{
	fx *f = *state;
	Nrpc__V1__Metadata *out = NULL;
	nrpc_status st = {0};

	fx_start(f, NULL, NULL);
	assert_int_equal(call_md(f->cli, &test_unknown, "k", "v", NULL, &out,
	    &st), NRPC_UNIMPLEMENTED);
	assert_string_equal(st.reason, "UNIMPLEMENTED");
	assert_string_equal(st.message, "unknown method /nrpc.test.Test/Nope");
}

static void
test_null_handler_returns_unimplemented(void **state)
{
	fx *f = *state;
	Nrpc__V1__Metadata *out = NULL;
	nrpc_status st = {0};
	nrpc_server_stats s;

	fx_start(f, NULL, NULL);
	assert_int_equal(call_md(f->cli, &test_methods[M_MISSING], "k", "v",
	    NULL, &out, &st), NRPC_UNIMPLEMENTED);
	assert_string_equal(st.reason, "UNIMPLEMENTED");
	assert_string_equal(st.message,
	    "method /nrpc.test.Test/Missing has no handler");
	nrpc_server_stats_get(f->srv, &s);
	assert_int_equal(s.unimplemented, 1);
}

static void
test_wrong_reply_type_returns_internal(void **state)
{
	fx *f = *state;
	Nrpc__V1__Metadata *out = NULL;
	nrpc_status st = {0};

	fx_start(f, NULL, NULL);
	assert_int_equal(call_md(f->cli, &test_methods[M_WRONG], "k", "v",
	    NULL, &out, &st), NRPC_INTERNAL);
	assert_string_equal(st.reason, "WRONG_REPLY_TYPE");
}

/* --- tests: hostile input --- */

static void
test_malformed_envelope_from_raw_req_gets_invalid_argument(void **state)
{
	static const uint8_t junk[] = {0xff, 0xff, 0xff, 0x01};
	fx *f = *state;
	Nrpc__V1__Metadata *out = NULL;
	nrpc_status st = {0};
	nrpc_server_stats s;

	fx_start(f, NULL, NULL);
	assert_int_equal(raw_call(f->url, junk, sizeof(junk), 5000, &st), 0);
	assert_int_equal(st.code, NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.reason, "MALFORMED_ENVELOPE");
	assert_string_equal(st.message,
	    "envelope is not a valid nrpc.v1.Request (4 bytes)");
	/* And it keeps serving. */
	assert_int_equal(call_md(f->cli, &test_methods[M_ECHO], "still", "up",
	    NULL, &out, &st), NRPC_OK);
	protobuf_c_message_free_unpacked(&out->base, NULL);
	nrpc_server_stats_get(f->srv, &s);
	assert_int_equal(s.bad_envelope, 1);
}

static void
test_malformed_body_returns_invalid_argument(void **state)
{
	static const uint8_t badbody[] = {0x0a, 0x09, 'x'};
	fx *f = *state;
	Nrpc__V1__Request r = NRPC__V1__REQUEST__INIT;
	uint8_t buf[128];
	size_t len;
	nrpc_status st = {0};

	fx_start(f, NULL, NULL);
	r.method = (char *) test_methods[M_ECHO].full_name;
	r.body.data = (uint8_t *) badbody;
	r.body.len = sizeof(badbody);
	len = nrpc__v1__request__pack(&r, buf);
	assert_int_equal(raw_call(f->url, buf, len, 5000, &st), 0);
	assert_int_equal(st.code, NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.reason, "MALFORMED_BODY");
	assert_string_equal(st.message,
	    "body is not a valid nrpc.v1.Metadata (3 bytes)");
	assert_int_equal(f->echo_runs, 0);
}

static void
test_oversized_envelope_over_inproc_is_rejected_at_limit_plus_one(void **state)
{
	fx *f = *state;
	nrpc_server_config cfg;
	uint8_t *at = request_of_size(1024);
	uint8_t *over = request_of_size(1025);
	uint8_t *huge = calloc(1, 256 * 1024);
	Nrpc__V1__Metadata *out = NULL;
	nrpc_status st = {0};

	nrpc_server_config_default(&cfg);
	cfg.max_message_bytes = 1024;
	fx_start(f, &cfg, NULL);
	assert_int_equal(raw_call(f->url, at, 1024, 5000, &st), 0);
	assert_int_equal(st.code, NRPC_OK);
	assert_int_equal(raw_call(f->url, over, 1025, 5000, &st), 0);
	assert_int_equal(st.code, NRPC_RESOURCE_EXHAUSTED);
	assert_string_equal(st.reason, "TOO_LARGE");
	assert_string_equal(st.message,
	    "message exceeds max_message_bytes (1024)");
	/* inproc ignores RECVMAXSZ: our own check answers. */
	assert_int_equal(raw_call(f->url, huge, 256 * 1024, 5000, &st), 0);
	assert_int_equal(st.code, NRPC_RESOURCE_EXHAUSTED);
	assert_string_equal(st.reason, "TOO_LARGE");
	assert_int_equal(call_md(f->cli, &test_methods[M_ECHO], "k", "v", NULL,
	    &out, &st), NRPC_OK);
	protobuf_c_message_free_unpacked(&out->base, NULL);
	free(at);
	free(over);
	free(huge);
}

static void
test_oversized_envelope_over_ipc_is_rejected_and_client_keeps_working(
    void **state)
{
	fx *f = *state;
	nrpc_server_config cfg;
	char ipc[300];
	uint8_t *at = request_of_size(1024);
	uint8_t *over = request_of_size(1025);
	uint8_t *huge = calloc(1, 64 * 1024);
	nrpc_client *c = NULL;
	nrpc_client_config ccfg;
	const char *urls[1] = {ipc};
	Nrpc__V1__Metadata *out = NULL;
	nrpc_status st = {0};

	(void) snprintf(ipc, sizeof(ipc), "ipc://%s/s.sock", f->dir);
	nrpc_server_config_default(&cfg);
	cfg.max_message_bytes = 1024;
	fx_start(f, &cfg, ipc);
	nrpc_client_config_default(&ccfg);
	ccfg.urls = urls;
	ccfg.n_urls = 1;
	assert_int_equal(nrpc_client_open(&ccfg, &c, &st), NRPC_OK);

	assert_int_equal(raw_call(ipc, at, 1024, 5000, &st), 0);
	assert_int_equal(st.code, NRPC_OK);
	/* Just over: within nng's header slack, so our check answers. */
	assert_int_equal(raw_call(ipc, over, 1025, 5000, &st), 0);
	assert_int_equal(st.code, NRPC_RESOURCE_EXHAUSTED);
	assert_string_equal(st.reason, "TOO_LARGE");
	assert_string_equal(st.message,
	    "message exceeds max_message_bytes (1024)");
	/* Far over: nng drops the connection (RECVMAXSZ); no reply. */
	assert_int_equal(raw_call(ipc, huge, 64 * 1024, 300, &st),
	    NNG_ETIMEDOUT);
	assert_int_equal(call_md(c, &test_methods[M_ECHO], "k", "after", NULL,
	    &out, &st), NRPC_OK);
	assert_string_equal(out->value, "after");
	protobuf_c_message_free_unpacked(&out->base, NULL);
	nrpc_client_close(c);
	free(at);
	free(over);
	free(huge);
}

static void
test_ping_is_answered_by_the_runtime(void **state)
{
	fx *f = *state;
	nrpc_status st = {0};
	Nrpc__V1__Request req = NRPC__V1__REQUEST__INIT;
	uint8_t buf[64];
	char ipc[300];
	size_t n;

	(void) snprintf(ipc, sizeof(ipc), "ipc://%s/p.sock", f->dir);
	fx_start(f, NULL, ipc);
	req.method = NRPC_PING_METHOD;
	n = nrpc__v1__request__pack(&req, buf);
	assert_int_equal(raw_call(ipc, buf, n, 5000, &st), 0);
	assert_int_equal(st.code, NRPC_OK);
}

/* --- tests: deadlines --- */

static void
test_deadline_passed_in_queue_skips_the_handler(void **state)
{
	fx *f = *state;
	nrpc_server_config cfg;
	nrpc_call_opts opts = {0};
	async_res r[2];
	nrpc_server_stats s;

	nrpc_server_config_default(&cfg);
	cfg.workers = 1;
	cfg.clock = &f->fake.base;
	fx_start(f, &cfg, NULL);
	async_init(r, 2);
	async_start(f, &test_methods[M_BLOCK], "b", "blocker", NULL, &r[0]);
	wait_block_entered(f, 1);
	opts.timeout_ms = 5000;
	async_start(f, &test_methods[M_ECHO], "e", "late", &opts, &r[1]);
	wait_received(f->srv, 2);
	/* The echo waits behind the blocker; its 5 s pass on the server's
	 * clock before the worker gets to it. */
	ds_fake_clock_advance(&f->fake, 10000);
	open_gate(f);
	async_wait(&r[0]);
	async_wait(&r[1]);
	assert_int_equal(r[0].code, NRPC_OK);
	assert_int_equal(r[1].code, NRPC_DEADLINE_EXCEEDED);
	assert_string_equal(r[1].reason, "DEADLINE_EXCEEDED");
	assert_int_equal(f->echo_runs, 0);
	nrpc_server_stats_get(f->srv, &s);
	assert_int_equal(s.deadline_exceeded, 1);
}

static void
test_deadline_not_yet_passed_runs_the_handler(void **state)
{
	fx *f = *state;
	nrpc_server_config cfg;
	nrpc_call_opts opts = {0};
	async_res r[2];

	nrpc_server_config_default(&cfg);
	cfg.workers = 1;
	cfg.clock = &f->fake.base;
	fx_start(f, &cfg, NULL);
	async_init(r, 2);
	async_start(f, &test_methods[M_BLOCK], "b", "blocker", NULL, &r[0]);
	wait_block_entered(f, 1);
	opts.timeout_ms = 5000;
	async_start(f, &test_methods[M_ECHO], "e", "in time", &opts, &r[1]);
	wait_received(f->srv, 2);
	ds_fake_clock_advance(&f->fake, 4999);
	open_gate(f);
	async_wait(&r[1]);
	assert_int_equal(r[1].code, NRPC_OK);
	assert_string_equal(r[1].value, "in time");
	async_wait(&r[0]);
}

static void
test_client_deadline_against_slow_handler_returns_deadline_exceeded(
    void **state)
{
	fx *f = *state;
	nrpc_call_opts opts = {0};
	Nrpc__V1__Metadata *out = NULL;
	nrpc_status st = {0};
	int64_t t0;
	int64_t took;

	fx_start(f, NULL, NULL);
	opts.timeout_ms = 100;
	t0 = now_ms();
	assert_int_equal(call_md(f->cli, &test_methods[M_SLOW], "600", "v",
	    &opts, &out, &st), NRPC_DEADLINE_EXCEEDED);
	took = now_ms() - t0;
	assert_string_equal(st.reason, "DEADLINE_EXCEEDED");
	assert_true(took >= 90);
	assert_true(took < 500);
}

/* --- tests: threads --- */

static void
test_handler_finishing_from_another_thread_replies(void **state)
{
	fx *f = *state;
	Nrpc__V1__Metadata *out = NULL;
	nrpc_status st = {0};

	fx_start(f, NULL, NULL);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(call_md(f->cli, &test_methods[M_LATER], "k",
		    "from the finisher", NULL, &out, &st), NRPC_OK);
		assert_string_equal(out->key, "finished");
		assert_string_equal(out->value, "from the finisher");
		protobuf_c_message_free_unpacked(&out->base, NULL);
	}
	fx_lock(f);
	assert_false(pthread_equal(f->handler_thread, f->finisher_thread));
	assert_true(pthread_equal(f->finisher_thread, f->fin));
	fx_unlock(f);
}

static void
test_worker_state_reaches_handlers_and_fini_runs(void **state)
{
	fx *f = *state;
	nrpc_server_config cfg;
	Nrpc__V1__Metadata *out = NULL;
	nrpc_status st = {0};

	nrpc_server_config_default(&cfg);
	cfg.workers = 2;
	cfg.worker_init = w_init;
	cfg.worker_fini = w_fini;
	fx_start(f, &cfg, NULL);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(call_md(f->cli, &test_methods[M_WORKER], "", "",
		    NULL, &out, &st), NRPC_OK);
		assert_true(strcmp(out->value, "100") == 0 ||
		    strcmp(out->value, "101") == 0);
		protobuf_c_message_free_unpacked(&out->base, NULL);
	}
	nrpc_server_stop(f->srv, 1000);
	assert_int_equal(f->fini_calls, 2);
}

static void
test_inline_handlers_run_on_nng_threads_with_their_own_state(void **state)
{
	fx *f = *state;
	nrpc_server_config cfg;
	Nrpc__V1__Metadata *out = NULL;
	nrpc_status st = {0};
	int inits;

	nrpc_server_config_default(&cfg);
	cfg.inline_handlers = true;
	cfg.worker_init = w_init_inline;
	cfg.worker_fini = w_fini;
	fx_start(f, &cfg, NULL);
	for (int i = 0; i < 50; i++) {
		int v;

		assert_int_equal(call_md(f->cli, &test_methods[M_WORKER], "", "",
		    NULL, &out, &st), NRPC_OK);
		v = atoi(out->value);
		/* Each nng thread has its own state, made on its first call. */
		assert_true(v >= 500 && v < 508);
		protobuf_c_message_free_unpacked(&out->base, NULL);
	}
	/* A handler may still finish the call from another thread. */
	assert_int_equal(call_md(f->cli, &test_methods[M_ECHO], "k", "v", NULL,
	    &out, &st), NRPC_OK);
	protobuf_c_message_free_unpacked(&out->base, NULL);
	fx_lock(f);
	inits = f->inline_inits;
	fx_unlock(f);
	assert_true(inits >= 1 && inits <= 8);
	for (int i = 0; i < inits; i++) {
		for (int j = i + 1; j < inits; j++) {
			assert_false(pthread_equal(f->inline_threads[i],
			    f->inline_threads[j]));
		}
	}
	nrpc_server_stop(f->srv, 1000);
	assert_int_equal(f->fini_calls, inits);
}

/* fuzz_rpc finding: nrpc_server_process ran handlers with a NULL worker
 * state, so datasync's Get and List (which need their read connection)
 * tripped DS_NEVER. The calling thread now gets a state from worker_init
 * as an inline nng thread does, and destroying a server that was never
 * started still runs worker_fini for it. */
static void
test_fuzz_rpc_process_gives_handlers_a_worker_state(void **state)
{
	fx *f = *state;
	nrpc_server_config cfg;
	nrpc_status st = {0};
	Nrpc__V1__Request env = NRPC__V1__REQUEST__INIT;
	Nrpc__V1__Metadata body = NRPC__V1__METADATA__INIT;
	Nrpc__V1__Response *resp;
	Nrpc__V1__Metadata *out;
	uint8_t bbuf[64], ebuf[256];
	uint8_t *reply = NULL;
	size_t reply_len = 0;

	nrpc_server_config_default(&cfg);
	cfg.worker_init = w_init_inline;
	cfg.worker_fini = w_fini;
	cfg.worker_arg = f;
	assert_int_equal(nrpc_server_create(&cfg, &f->srv, &st), NRPC_OK);
	assert_int_equal(nrpc_server_add_service(f->srv, &test_service,
	    test_dispatch, &test_table, f, &st), NRPC_OK);
	env.method = (char *) test_methods[M_WORKER].full_name;
	env.body.data = bbuf;
	env.body.len = protobuf_c_message_pack(&body.base, bbuf);
	for (int i = 0; i < 2; i++) {
		size_t n = protobuf_c_message_pack(&env.base, ebuf);

		assert_int_equal(nrpc_server_process(f->srv, ebuf, n, &reply,
		    &reply_len), NRPC_OK);
		resp = nrpc__v1__response__unpack(NULL, reply_len, reply);
		assert_non_null(resp);
		assert_null(resp->status);
		out = nrpc__v1__metadata__unpack(NULL, resp->body.len,
		    resp->body.data);
		assert_non_null(out);
		/* One state for this thread, made on the first call. */
		assert_string_equal(out->value, "500");
		nrpc__v1__metadata__free_unpacked(out, NULL);
		nrpc__v1__response__free_unpacked(resp, NULL);
		ds_free(reply);
	}
	assert_int_equal(f->inline_inits, 1);
	nrpc_server_destroy(f->srv);
	f->srv = NULL;
	assert_int_equal(f->fini_calls, 1);
}

static void
test_worker_init_failure_aborts_start(void **state)
{
	fx *f = *state;
	nrpc_server_config cfg;
	const char *urls[1] = {f->url};
	nrpc_status st = {0};

	nrpc_server_config_default(&cfg);
	cfg.urls = urls;
	cfg.n_urls = 1;
	cfg.workers = 3;
	cfg.worker_init = w_init;
	cfg.worker_fini = w_fini;
	cfg.worker_arg = f;
	f->init_fail_index = 1;
	assert_int_equal(nrpc_server_create(&cfg, &f->srv, &st), NRPC_OK);
	assert_int_equal(nrpc_server_start(f->srv, &st), NRPC_INTERNAL);
	assert_string_equal(st.reason, "WORKER_INIT_FAILED");
	assert_string_equal(st.message,
	    "worker_init failed for worker 1 (returned 7)");
	assert_int_equal(f->fini_calls, 2); /* the two that succeeded */
	/* Nothing is left running: the URL is free again. */
	f->init_fail_index = -1;
	assert_int_equal(nrpc_server_start(f->srv, &st), NRPC_OK);
}

/* --- tests: envelope fields --- */

static void
test_generated_request_ids_differ_per_call(void **state)
{
	fx *f = *state;
	char seen[50][NRPC_MAX_REQUEST_ID_BYTES + 1];
	Nrpc__V1__Metadata *out = NULL;
	nrpc_status st = {0};

	fx_start(f, NULL, NULL);
	for (int i = 0; i < 50; i++) {
		assert_int_equal(call_md(f->cli, &test_methods[M_INFO], "x", "",
		    NULL, &out, &st), NRPC_OK);
		assert_int_equal(strlen(out->key), 32);
		(void) snprintf(seen[i], sizeof(seen[i]), "%s", out->key);
		for (int j = 0; j < i; j++) {
			assert_string_not_equal(seen[i], seen[j]);
		}
		protobuf_c_message_free_unpacked(&out->base, NULL);
	}
}

static void
test_given_request_id_arrives_unchanged(void **state)
{
	fx *f = *state;
	nrpc_call_opts opts = {0};
	Nrpc__V1__Metadata *out = NULL;
	nrpc_status st = {0};

	fx_start(f, NULL, NULL);
	opts.request_id = "my-id-0001";
	for (int i = 0; i < 2; i++) {
		assert_int_equal(call_md(f->cli, &test_methods[M_INFO], "x", "",
		    &opts, &out, &st), NRPC_OK);
		assert_string_equal(out->key, "my-id-0001");
		protobuf_c_message_free_unpacked(&out->base, NULL);
	}
}

static void
test_metadata_and_client_name_arrive(void **state)
{
	fx *f = *state;
	const char *md[] = {"authorization", "Bearer abc", "trace", "t-42"};
	nrpc_call_opts opts = {0};
	Nrpc__V1__Metadata *out = NULL;
	nrpc_status st = {0};

	fx_start(f, NULL, NULL);
	opts.metadata = md;
	opts.n_metadata = 2;
	assert_int_equal(call_md(f->cli, &test_methods[M_INFO], "trace", "",
	    &opts, &out, &st), NRPC_OK);
	assert_string_equal(out->value, "t-42");
	protobuf_c_message_free_unpacked(&out->base, NULL);
	assert_int_equal(call_md(f->cli, &test_methods[M_INFO],
	    "authorization", "", &opts, &out, &st), NRPC_OK);
	assert_string_equal(out->value, "Bearer abc");
	protobuf_c_message_free_unpacked(&out->base, NULL);
	assert_int_equal(call_md(f->cli, &test_methods[M_INFO], "client_name",
	    "", &opts, &out, &st), NRPC_OK);
	assert_string_equal(out->value, "server-test");
	protobuf_c_message_free_unpacked(&out->base, NULL);
	assert_int_equal(call_md(f->cli, &test_methods[M_INFO], "absent", "",
	    &opts, &out, &st), NRPC_OK);
	assert_string_equal(out->value, "<none>");
	protobuf_c_message_free_unpacked(&out->base, NULL);
}

static void
test_client_authorization_goes_with_every_call_unless_the_call_has_one(
    void **state)
{
	fx *f = *state;
	const char *urls[1] = {f->url};
	const char *own[] = {"authorization", "Bearer mine"};
	const char *other[] = {"trace", "t-1"};
	nrpc_client_config ccfg;
	nrpc_client *c = NULL;
	nrpc_call_opts opts = {0};
	Nrpc__V1__Metadata *out = NULL;
	nrpc_status st = {0};
	char big[NRPC_MAX_METADATA_BYTES + 2];

	fx_start(f, NULL, NULL);
	nrpc_client_config_default(&ccfg);
	ccfg.urls = urls;
	ccfg.n_urls = 1;
	ccfg.authorization = "Bearer default";
	assert_int_equal(nrpc_client_open(&ccfg, &c, &st), NRPC_OK);
	assert_int_equal(call_md(c, &test_methods[M_INFO], "authorization", "",
	    NULL, &out, &st), NRPC_OK);
	assert_string_equal(out->value, "Bearer default");
	protobuf_c_message_free_unpacked(&out->base, NULL);
	/* beside the call's own metadata */
	opts.metadata = other;
	opts.n_metadata = 1;
	assert_int_equal(call_md(c, &test_methods[M_INFO], "authorization", "",
	    &opts, &out, &st), NRPC_OK);
	assert_string_equal(out->value, "Bearer default");
	protobuf_c_message_free_unpacked(&out->base, NULL);
	assert_int_equal(call_md(c, &test_methods[M_INFO], "trace", "",
	    &opts, &out, &st), NRPC_OK);
	assert_string_equal(out->value, "t-1");
	protobuf_c_message_free_unpacked(&out->base, NULL);
	/* a call's own authorization wins */
	opts.metadata = own;
	assert_int_equal(call_md(c, &test_methods[M_INFO], "authorization", "",
	    &opts, &out, &st), NRPC_OK);
	assert_string_equal(out->value, "Bearer mine");
	protobuf_c_message_free_unpacked(&out->base, NULL);
	nrpc_client_close(c);
	/* the limit of one metadata value, and one past it */
	memset(big, 'a', sizeof(big) - 1);
	big[NRPC_MAX_METADATA_BYTES] = '\0';
	ccfg.authorization = big;
	assert_int_equal(nrpc_client_open(&ccfg, &c, &st), NRPC_OK);
	nrpc_client_close(c);
	big[NRPC_MAX_METADATA_BYTES] = 'a';
	big[NRPC_MAX_METADATA_BYTES + 1] = '\0';
	assert_int_equal(nrpc_client_open(&ccfg, &c, &st),
	    NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.field, "authorization");
}

/* --- tests: overload and shutdown --- */

static void
test_full_queue_returns_overloaded(void **state)
{
	fx *f = *state;
	nrpc_server_config cfg;
	async_res r[2];
	Nrpc__V1__Metadata *out = NULL;
	nrpc_status st = {0};
	nrpc_server_stats s;

	nrpc_server_config_default(&cfg);
	cfg.workers = 1;
	cfg.max_queue = 1;
	cfg.contexts = 4;
	fx_start(f, &cfg, NULL);
	async_init(r, 2);
	async_start(f, &test_methods[M_BLOCK], "a", "first", NULL, &r[0]);
	wait_block_entered(f, 1);
	async_start(f, &test_methods[M_BLOCK], "b", "queued", NULL, &r[1]);
	wait_received(f->srv, 2);
	assert_int_equal(call_md(f->cli, &test_methods[M_ECHO], "c", "refused",
	    NULL, &out, &st), NRPC_RESOURCE_EXHAUSTED);
	assert_string_equal(st.reason, "OVERLOADED");
	assert_string_equal(st.message, "server queue is full (max_queue 1)");
	open_gate(f);
	async_wait(&r[0]);
	async_wait(&r[1]);
	assert_int_equal(r[0].code, NRPC_OK);
	assert_int_equal(r[1].code, NRPC_OK);
	assert_string_equal(r[1].value, "queued");
	nrpc_server_stats_get(f->srv, &s);
	assert_int_equal(s.overloaded, 1);
}

static void
test_stop_with_calls_in_flight_answers_them(void **state)
{
	fx *f = *state;
	async_res r[8];
	char vals[8][16];
	nrpc_server_stats s;
	Nrpc__V1__Metadata *out = NULL;
	nrpc_call_opts opts = {0};
	nrpc_status st = {0};
	int64_t t0;

	fx_start(f, NULL, NULL);
	async_init(r, 8);
	for (int i = 0; i < 8; i++) {
		(void) snprintf(vals[i], sizeof(vals[i]), "v%d", i);
		async_start(f, &test_methods[M_SLOW], "200", vals[i], NULL, &r[i]);
	}
	/* All 8 are held by handlers (received alone is not enough: a call
	 * counted as received may still meet the draining check). */
	wait_slow_entered(f, 8);
	t0 = now_ms();
	nrpc_server_stop(f->srv, 5000);
	assert_true(now_ms() - t0 < 2000);
	for (int i = 0; i < 8; i++) {
		async_wait(&r[i]);
		assert_string_equal(r[i].reason, "");
		assert_int_equal(r[i].code, NRPC_OK);
		assert_string_equal(r[i].value, vals[i]);
	}
	nrpc_server_stats_get(f->srv, &s);
	assert_int_equal(s.replied, 8);
	assert_int_equal(s.in_flight, 0);
	/* Stopped: nobody answers any more. */
	opts.timeout_ms = 100;
	assert_int_equal(call_md(f->cli, &test_methods[M_ECHO], "k", "v",
	    &opts, &out, &st), NRPC_DEADLINE_EXCEEDED);
	nrpc_server_stop(f->srv, 0); /* second stop: no-op */
}

typedef struct stop_arg {
	nrpc_server *srv;
	int64_t grace;
} stop_arg;

static void *
stop_main(void *arg)
{
	stop_arg *sa = arg;

	nrpc_server_stop(sa->srv, sa->grace);
	return NULL;
}

static void
test_requests_during_drain_get_shutting_down(void **state)
{
	fx *f = *state;
	async_res r;
	pthread_t t;
	stop_arg sa;
	Nrpc__V1__Metadata *out = NULL;
	nrpc_status st = {0};
	bool saw = false;
	int64_t end;

	fx_start(f, NULL, NULL);
	async_init(&r, 1);
	async_start(f, &test_methods[M_BLOCK], "a", "held", NULL, &r);
	wait_block_entered(f, 1);
	sa.srv = f->srv;
	sa.grace = 10000;
	assert_int_equal(pthread_create(&t, NULL, stop_main, &sa), 0);
	end = now_ms() + 5000;
	while (!saw && now_ms() < end) {
		nrpc_code rc = call_md(f->cli, &test_methods[M_ECHO], "k", "v",
		    NULL, &out, &st);

		if (rc == NRPC_OK) {
			protobuf_c_message_free_unpacked(&out->base, NULL);
			usleep(1000);
			continue;
		}
		assert_int_equal(rc, NRPC_UNAVAILABLE);
		assert_string_equal(st.reason, "SHUTTING_DOWN");
		saw = true;
	}
	assert_true(saw);
	open_gate(f);
	async_wait(&r);
	assert_int_equal(r.code, NRPC_OK);
	assert_string_equal(r.value, "held");
	pthread_join(t, NULL);
}

static void
test_stop_after_grace_waits_for_the_holding_handler(void **state)
{
	fx *f = *state;
	async_res r;
	nrpc_call_opts opts = {0};
	pthread_t t;
	stop_arg sa;
	int64_t t0;

	fx_start(f, NULL, NULL);
	async_init(&r, 1);
	opts.timeout_ms = 2000;
	async_start(f, &test_methods[M_BLOCK], "a", "held", &opts, &r);
	wait_block_entered(f, 1);
	sa.srv = f->srv;
	sa.grace = 50;
	t0 = now_ms();
	assert_int_equal(pthread_create(&t, NULL, stop_main, &sa), 0);
	usleep(300 * 1000);
	open_gate(f); /* finishing after the grace: the reply is dropped */
	pthread_join(t, NULL);
	assert_true(now_ms() - t0 >= 250);
	async_wait(&r);
	assert_int_not_equal(r.code, NRPC_OK);
}

/* --- tests: configuration --- */

static void
test_listen_on_unusable_url_fails_start_with_unavailable(void **state)
{
	fx *f = *state;
	nrpc_server_config cfg;
	char bad[300];
	const char *urls[1] = {bad};
	nrpc_server *srv = NULL;
	nrpc_status st = {0};

	(void) snprintf(bad, sizeof(bad), "ipc://%s/no/such/dir/s.sock",
	    f->dir);
	nrpc_server_config_default(&cfg);
	cfg.urls = urls;
	cfg.n_urls = 1;
	assert_int_equal(nrpc_server_create(&cfg, &srv, &st), NRPC_OK);
	assert_int_equal(nrpc_server_start(srv, &st), NRPC_UNAVAILABLE);
	assert_string_equal(st.reason, "LISTEN_FAILED");
	assert_string_equal(st.field, "urls");
	assert_non_null(strstr(st.message, bad));
	nrpc_server_destroy(srv);
}

static void
test_listen_on_address_in_use_fails_start_with_unavailable(void **state)
{
	fx *f = *state;
	nrpc_server_config cfg;
	const char *urls[1] = {f->url};
	nrpc_server *srv = NULL;
	nrpc_status st = {0};

	fx_start(f, NULL, NULL);
	nrpc_server_config_default(&cfg);
	cfg.urls = urls;
	cfg.n_urls = 1;
	assert_int_equal(nrpc_server_create(&cfg, &srv, &st), NRPC_OK);
	assert_int_equal(nrpc_server_start(srv, &st), NRPC_UNAVAILABLE);
	assert_string_equal(st.reason, "LISTEN_FAILED");
	assert_non_null(strstr(st.message, f->url));
	nrpc_server_destroy(srv);
}

static void
test_malformed_url_fails_start_with_invalid_argument(void **state)
{
	nrpc_server_config cfg;
	const char *urls[1] = {"bogus://x"};
	nrpc_server *srv = NULL;
	nrpc_status st = {0};

	(void) state;
	nrpc_server_config_default(&cfg);
	cfg.urls = urls;
	cfg.n_urls = 1;
	assert_int_equal(nrpc_server_create(&cfg, &srv, &st), NRPC_OK);
	assert_int_equal(nrpc_server_start(srv, &st), NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.reason, "INVALID_URL");
	nrpc_server_destroy(srv);
}

static void
test_config_above_hard_maximum_is_rejected(void **state)
{
	nrpc_server_config cfg;
	nrpc_server *srv = NULL;
	nrpc_status st = {0};

	(void) state;
	nrpc_server_config_default(&cfg);
	cfg.max_message_bytes = NRPC_MAX_MESSAGE_BYTES_HARD + 1;
	assert_int_equal(nrpc_server_create(&cfg, &srv, &st),
	    NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.field, "max_message_bytes");
	assert_null(srv);
	nrpc_server_config_default(&cfg);
	cfg.max_message_bytes = NRPC_MAX_MESSAGE_BYTES_HARD;
	assert_int_equal(nrpc_server_create(&cfg, &srv, &st), NRPC_OK);
	nrpc_server_destroy(srv);
	srv = NULL;
	nrpc_server_config_default(&cfg);
	assert_int_equal(cfg.max_inflight_per_conn,
	    NRPC_MAX_INFLIGHT_PER_CONN_DEFAULT);
	cfg.max_inflight_per_conn = NRPC_MAX_INFLIGHT_PER_CONN_HARD + 1;
	assert_int_equal(nrpc_server_create(&cfg, &srv, &st),
	    NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.field, "max_inflight_per_conn");
	assert_string_equal(st.message, "max_inflight_per_conn (65537) exceeds "
	    "its hard maximum (65536)");
	assert_null(srv);
	cfg.max_inflight_per_conn = NRPC_MAX_INFLIGHT_PER_CONN_HARD;
	assert_int_equal(nrpc_server_create(&cfg, &srv, &st), NRPC_OK);
	nrpc_server_destroy(srv);
}

static void
test_duplicate_method_and_late_add_service_are_refused(void **state)
{
	fx *f = *state;
	nrpc_server_config cfg;
	nrpc_server *srv = NULL;
	nrpc_status st = {0};

	(void) f;
	nrpc_server_config_default(&cfg);
	assert_int_equal(nrpc_server_create(&cfg, &srv, &st), NRPC_OK);
	assert_int_equal(nrpc_server_add_service(srv, &test_service,
	    test_dispatch, &test_table, NULL, &st), NRPC_OK);
	assert_int_equal(nrpc_server_add_service(srv, &test_service,
	    test_dispatch, &test_table, NULL, &st), NRPC_ALREADY_EXISTS);
	assert_string_equal(st.reason, "ALREADY_EXISTS");
	assert_int_equal(nrpc_server_start(srv, &st), NRPC_OK);
	assert_int_equal(nrpc_server_add_service(srv, &test_service,
	    test_dispatch, &test_table, NULL, &st), NRPC_FAILED_PRECONDITION);
	nrpc_server_destroy(srv);
}

/* --- tests: allocation failures (STYLE rule 34) --- */

static void
test_setup_survives_every_allocation_failure(void **state)
{
	fx *f = *state;
	int ok = 0;

	for (long n = 0; n < 40; n++) {
		nrpc_server_config cfg;
		nrpc_client_config ccfg;
		const char *urls[1] = {f->url};
		nrpc_server *srv = NULL;
		nrpc_client *c = NULL;
		nrpc_status st = {0};
		Nrpc__V1__Metadata *out = NULL;
		nrpc_code rc;

		nrpc_server_config_default(&cfg);
		cfg.urls = urls;
		cfg.n_urls = 1;
		cfg.workers = 2;
		cfg.contexts = 4;
		nrpc_client_config_default(&ccfg);
		ccfg.urls = urls;
		ccfg.n_urls = 1;
		ccfg.client_name = "fault";
		ds_alloc_fail_after(n);
		rc = nrpc_server_create(&cfg, &srv, &st);
		if (rc == NRPC_OK) {
			rc = nrpc_server_add_service(srv, &test_service,
			    test_dispatch, &test_table, f, &st);
		}
		if (rc == NRPC_OK) {
			rc = nrpc_server_start(srv, &st);
		}
		if (rc == NRPC_OK) {
			rc = nrpc_client_open(&ccfg, &c, &st);
		}
		ds_alloc_fail_reset();
		if (rc == NRPC_OK) {
			ok++;
			assert_int_equal(call_md(c, &test_methods[M_ECHO], "k",
			    "v", NULL, &out, &st), NRPC_OK);
			protobuf_c_message_free_unpacked(&out->base, NULL);
		} else {
			assert_int_equal(rc, NRPC_RESOURCE_EXHAUSTED);
			assert_string_equal(st.reason, "OUT_OF_MEMORY");
			assert_null(c);
		}
		nrpc_client_close(c);
		nrpc_server_destroy(srv);
	}
	assert_true(ok > 0);
}

static void
test_calls_survive_allocation_failures_and_server_keeps_serving(void **state)
{
	fx *f = *state;
	Nrpc__V1__Metadata *out = NULL;
	nrpc_status st = {0};
	int failed = 0;

	fx_start(f, NULL, NULL);
	for (long n = 0; n < 12; n++) {
		nrpc_code rc;
		char value[32];

		(void) snprintf(value, sizeof(value), "v%ld", n);
		ds_alloc_fail_after(n);
		/* Fail gets a detail (one more allocation) on the worker. */
		rc = call_md(f->cli, &test_methods[n % 2 ? M_FAIL : M_ECHO],
		    "k", value, NULL, &out, &st);
		ds_alloc_fail_reset();
		if (rc == NRPC_OK) {
			assert_string_equal(out->value, value);
			protobuf_c_message_free_unpacked(&out->base, NULL);
		} else if (rc == NRPC_ABORTED) {
			nrpc_status_fini(&st);
		} else {
			assert_int_equal(rc, NRPC_RESOURCE_EXHAUSTED);
			assert_string_equal(st.reason, "OUT_OF_MEMORY");
			failed++;
		}
	}
	assert_true(failed > 0);
	assert_int_equal(call_md(f->cli, &test_methods[M_ECHO], "k", "after",
	    NULL, &out, &st), NRPC_OK);
	assert_string_equal(out->value, "after");
	protobuf_c_message_free_unpacked(&out->base, NULL);
}

/* --- tests: hostile peers --- */

static void
test_one_request_past_the_per_connection_cap_closes_that_connection(
    void **state)
{
	fx *f = *state;
	nrpc_server_config cfg;
	char ipc[300];
	raw_peer rp;
	nrpc_server_stats s;
	Nrpc__V1__Metadata *out = NULL;
	nrpc_status st = {0};

	(void) snprintf(ipc, sizeof(ipc), "ipc://%s/cap.sock", f->dir);
	nrpc_server_config_default(&cfg);
	cfg.workers = 6;
	cfg.contexts = 16;
	cfg.max_inflight_per_conn = 4;
	fx_start(f, &cfg, ipc);
	raw_peer_open(&rp, ipc);
	for (uint32_t i = 1; i <= 4; i++) {
		raw_peer_send(&rp, i, &test_methods[M_BLOCK], "k", "held");
	}
	/* At the cap: all four run, the connection stays. */
	wait_block_entered(f, 4);
	nrpc_server_stats_get(f->srv, &s);
	assert_int_equal(s.conns_closed_inflight, 0);
	assert_int_equal(atomic_load(&rp.removed), 0);

	raw_peer_send(&rp, 5, &test_methods[M_BLOCK], "k", "one too many");
	wait_stat(f->srv, conns_closed_inflight, 1);
	wait_removed(&rp, 1);
	fx_lock(f);
	assert_int_equal(f->block_entered, 4); /* the fifth never ran */
	fx_unlock(f);
	/* Everyone else is served meanwhile. */
	assert_int_equal(call_md(f->cli, &test_methods[M_ECHO], "k", "other",
	    NULL, &out, &st), NRPC_OK);
	assert_string_equal(out->value, "other");
	protobuf_c_message_free_unpacked(&out->base, NULL);
	open_gate(f);
	/* The held calls finish; their replies have nowhere to go. */
	wait_stat(f->srv, replied, 1);
	(void) nng_close(rp.s);
	nrpc_server_stats_get(f->srv, &s);
	assert_int_equal(s.conns_closed_inflight, 1);
	assert_int_equal(s.conns_closed_send_timeout, 0);
}

static void
test_inproc_connection_is_exempt_from_the_per_connection_cap(void **state)
{
	fx *f = *state;
	nrpc_server_config cfg;
	async_res r[4];
	nrpc_server_stats s;

	nrpc_server_config_default(&cfg);
	cfg.workers = 6;
	cfg.contexts = 16;
	cfg.max_inflight_per_conn = 2;
	fx_start(f, &cfg, NULL);
	async_init(r, 4);
	for (int i = 0; i < 4; i++) {
		async_start(f, &test_methods[M_BLOCK], "k", "inproc", NULL, &r[i]);
	}
	wait_block_entered(f, 4);
	open_gate(f);
	for (int i = 0; i < 4; i++) {
		async_wait(&r[i]);
		assert_int_equal(r[i].code, NRPC_OK);
	}
	nrpc_server_stats_get(f->srv, &s);
	assert_int_equal(s.conns_closed_inflight, 0);
}

static void
test_reply_not_taken_within_send_timeout_closes_the_connection(void **state)
{
	fx *f = *state;
	char ipc[300];
	raw_peer rp;
	char *big = calloc(1, 900 * 1024 + 1);
	nrpc_server_stats s;
	Nrpc__V1__Metadata *out = NULL;
	nrpc_status st = {0};

	assert_non_null(big);
	memset(big, 'v', 900 * 1024);
	(void) snprintf(ipc, sizeof(ipc), "ipc://%s/slow.sock", f->dir);
	fx_start(f, NULL, ipc);
	raw_peer_open(&rp, ipc);
	/* Echo sends each 900 KiB request back: more than the peer's socket
	 * and the kernel buffer; it reads nothing, so a reply waits. */
	for (uint32_t i = 1; i <= 8; i++) {
		raw_peer_send(&rp, i, &test_methods[M_ECHO], "k", big);
	}
	wait_stat(f->srv, conns_closed_send_timeout, 1);
	/* The peer notices only when it reads again: what it buffered, then
	 * the end of the connection. */
	assert_int_equal(nng_socket_set_ms(rp.s, NNG_OPT_RECVTIMEO, 2000), 0);
	for (;;) {
		nng_msg *m;

		if (nng_recvmsg(rp.s, &m, 0) != 0) {
			break;
		}
		nng_msg_free(m);
	}
	wait_removed(&rp, 1);
	nrpc_server_stats_get(f->srv, &s);
	assert_int_equal(s.conns_closed_inflight, 0);
	assert_int_equal(call_md(f->cli, &test_methods[M_ECHO], "k", "after",
	    NULL, &out, &st), NRPC_OK);
	protobuf_c_message_free_unpacked(&out->base, NULL);
	(void) nng_close(rp.s);
	free(big);
}

static void
test_watchdog_does_not_relisten_while_every_context_is_in_use(void **state)
{
	fx *f = *state;
	nrpc_server_config cfg;
	char ipc[300];
	async_res r[4];
	nrpc_server_stats s;

	(void) snprintf(ipc, sizeof(ipc), "ipc://%s/busy.sock", f->dir);
	nrpc_server_config_default(&cfg);
	cfg.workers = 4;
	cfg.contexts = 4;
	cfg.listener_check_ms = 100;
	fx_start(f, &cfg, ipc);
	async_init(r, 4);
	for (int i = 0; i < 4; i++) {
		async_start(f, &test_methods[M_BLOCK], "k", "busy", NULL, &r[i]);
	}
	wait_block_entered(f, 4);
	/* Every context holds a call: the watchdog's pings go unanswered
	 * as often as it takes to re-create a listener, and more. */
	nrpc_server_stats_get(f->srv, &s);
	wait_stat(f->srv, probes, s.probes + NRPC_LISTENER_CHECK_FAILURES + 2);
	nrpc_server_stats_get(f->srv, &s);
	assert_int_equal(s.relistens, 0);
	assert_true(s.probes_busy >= NRPC_LISTENER_CHECK_FAILURES + 1);
	open_gate(f);
	for (int i = 0; i < 4; i++) {
		async_wait(&r[i]);
		assert_int_equal(r[i].code, NRPC_OK);
	}
	nrpc_server_stats_get(f->srv, &s);
	assert_int_equal(s.relistens, 0);
}

/* A bare REP socket that answers every request with 64 KiB of bytes. */
typedef struct big_rep {
	nng_socket s;
	pthread_t th;
	atomic_int requests;
} big_rep;

static void *
big_rep_main(void *arg)
{
	big_rep *b = arg;
	static uint8_t junk[64 * 1024];

	for (;;) {
		nng_msg *m;

		if (nng_recvmsg(b->s, &m, 0) != 0) {
			return NULL; /* closed */
		}
		atomic_fetch_add(&b->requests, 1);
		nng_msg_clear(m);
		if (nng_msg_append(m, junk, sizeof(junk)) != 0 ||
		    nng_sendmsg(b->s, m, 0) != 0) {
			nng_msg_free(m);
		}
	}
}

static void
test_client_socket_refuses_a_reply_over_its_limit_without_reading_it(
    void **state)
{
	fx *f = *state;
	char ipc[300];
	big_rep b;
	nrpc_client *c = NULL;
	nrpc_client_config ccfg;
	const char *urls[1] = {ipc};
	nrpc_call_opts opts = {0};
	Nrpc__V1__Metadata req = NRPC__V1__METADATA__INIT;
	ProtobufCMessage *resp = NULL;
	nrpc_status st = {0};
	int64_t end;

	(void) snprintf(ipc, sizeof(ipc), "ipc://%s/big.sock", f->dir);
	atomic_store(&b.requests, 0);
	assert_int_equal(nng_rep0_open(&b.s), 0);
	assert_int_equal(nng_listen(b.s, ipc, NULL, 0), 0);
	assert_int_equal(pthread_create(&b.th, NULL, big_rep_main, &b), 0);
	nrpc_client_config_default(&ccfg);
	ccfg.urls = urls;
	ccfg.n_urls = 1;
	ccfg.max_message_bytes = 1024;
	assert_int_equal(nrpc_client_open(&ccfg, &c, &st), NRPC_OK);
	req.key = "k";
	req.value = "v";
	opts.timeout_ms = 500;
	/* The client's NNG_OPT_RECVMAXSZ (1024 + NRPC_RECVMAXSZ_SLACK) makes
	 * nng drop the connection at the reply's length prefix, before
	 * reading 64 KiB: the call times out. A socket without it would read
	 * the whole reply and refuse it afterwards (INTERNAL or
	 * RESOURCE_EXHAUSTED from the decoder). */
	assert_int_equal(nrpc_client_call(c, &test_methods[M_ECHO], &req.base,
	    &resp, &opts, &st), NRPC_DEADLINE_EXCEEDED);
	assert_null(resp);
	end = now_ms() + 10000;
	while (atomic_load(&b.requests) < 1 && now_ms() < end) {
		usleep(1000);
	}
	assert_true(atomic_load(&b.requests) >= 1); /* it was answered */
	nrpc_client_close(c);
	(void) nng_close(b.s);
	pthread_join(b.th, NULL);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_echo_round_trip_blocking),
	    T(test_echo_round_trip_async),
	    T(test_echo_round_trip_over_ipc),
	    T(test_call_peer_names_the_transport_or_the_remote_address),
	    T(test_call_peer_without_a_connection_is_none),
	    T(test_error_status_round_trips_reason_message_field_detail),
	    T(test_unknown_method_returns_unimplemented),
	    T(test_null_handler_returns_unimplemented),
	    T(test_wrong_reply_type_returns_internal),
	    T(test_malformed_envelope_from_raw_req_gets_invalid_argument),
	    T(test_malformed_body_returns_invalid_argument),
	    T(test_oversized_envelope_over_inproc_is_rejected_at_limit_plus_one),
	    T(test_oversized_envelope_over_ipc_is_rejected_and_client_keeps_working),
	    T(test_deadline_passed_in_queue_skips_the_handler),
	    T(test_deadline_not_yet_passed_runs_the_handler),
	    T(test_client_deadline_against_slow_handler_returns_deadline_exceeded),
	    T(test_handler_finishing_from_another_thread_replies),
	    T(test_worker_state_reaches_handlers_and_fini_runs),
	    T(test_inline_handlers_run_on_nng_threads_with_their_own_state),
	    T(test_ping_is_answered_by_the_runtime),
	    T(test_worker_init_failure_aborts_start),
	    T(test_fuzz_rpc_process_gives_handlers_a_worker_state),
	    T(test_generated_request_ids_differ_per_call),
	    T(test_given_request_id_arrives_unchanged),
	    T(test_metadata_and_client_name_arrive),
	    T(test_client_authorization_goes_with_every_call_unless_the_call_has_one),
	    T(test_full_queue_returns_overloaded),
	    T(test_stop_with_calls_in_flight_answers_them),
	    T(test_requests_during_drain_get_shutting_down),
	    T(test_stop_after_grace_waits_for_the_holding_handler),
	    T(test_listen_on_unusable_url_fails_start_with_unavailable),
	    T(test_listen_on_address_in_use_fails_start_with_unavailable),
	    T(test_malformed_url_fails_start_with_invalid_argument),
	    T(test_config_above_hard_maximum_is_rejected),
	    T(test_duplicate_method_and_late_add_service_are_refused),
	    T(test_setup_survives_every_allocation_failure),
	    T(test_calls_survive_allocation_failures_and_server_keeps_serving),
	    T(test_one_request_past_the_per_connection_cap_closes_that_connection),
	    T(test_inproc_connection_is_exempt_from_the_per_connection_cap),
	    T(test_reply_not_taken_within_send_timeout_closes_the_connection),
	    T(test_watchdog_does_not_relisten_while_every_context_is_in_use),
	    T(test_client_socket_refuses_a_reply_over_its_limit_without_reading_it),
	};

	/* NRPC_TEST_FILTER=<glob> runs a subset, e.g. to loop one test. */
	if (getenv("NRPC_TEST_FILTER") != NULL) {
		cmocka_set_test_filter(getenv("NRPC_TEST_FILTER"));
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
