/*
 * gw_http.c - nng's HTTP server <-> the pure gateway, and gw_start /
 * gw_stop.
 *
 * One tree handler at "/" takes every method and path; routing, limits
 * and everything else live in the pure layer (gw_plan.c). The handler
 * never blocks: a request body is read with an aio of our own, the RPC is
 * started with nrpc_client_call_async, and the handler's aio is finished
 * from whichever callback produces the answer.
 *
 * An exchange (one request) ends exactly once, in gw_http_respond or
 * gw_http_abort. The handler's aio is shared with a cancel function (the
 * server closing a connection): both take it under gw->mu, and whoever
 * takes it finishes it. The exchange is findable from the aio through
 * input slot 3, which the server leaves unused, and that slot is cleared
 * under the same lock, so a cancel arriving late finds nothing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "datasync/v1/datasync.nrpc.h"
#include "ds_alloc.h"
#include "ds_log.h"
#include "gateway.h"
#include "gw_int.h"

#ifndef GW_DEFAULT_WEB_ROOT
#define GW_DEFAULT_WEB_ROOT "clients/web"
#endif
#ifndef GW_DEFAULT_JS_PATH
#define GW_DEFAULT_JS_PATH "clients/js/datasync.js"
#endif

/* The aio input slot that leads from the handler's aio to its exchange;
 * nng's server sets 0..2. */
#define GW_AIO_SLOT 3

struct gw_server {
	gw_core core;
	gw_metrics metrics;
	nrpc_client *client;
	nng_http_server *http;
	nng_http_handler *handler; /* the main handler once added: the
	                            * server holds it until gw_free takes
	                            * it back */
	char *web_root;            /* realpath, owned; NULL: no static files */
	char *js_path;             /* owned */
	char *cors[GW_MAX_CORS_ORIGINS]; /* owned copies */
	size_t n_cors;
	char *allow_hosts[GW_MAX_ALLOW_HOSTS]; /* owned copies */
	size_t n_allow_hosts;
	const nrpc_service_desc *services[GW_MAX_SERVICES];
	size_t n_services;
	int64_t timeout_ms;
	int port;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned active; /* guarded by mu: threads inside gw_http_call */
	size_t live;     /* guarded by mu: exchanges not yet freed */
	bool stopping;   /* guarded by mu: no new RPC calls */
	bool nng_done;   /* guarded by mu: nng finalized the server, so
	                  * no handler runs or will run (see
	                  * gw_http_sentinel) */
};

typedef struct gw_exchange {
	gw_server *gw;
	nng_aio *aio;        /* guarded by gw->mu: the handler's aio until
	                      * someone finishes it, then NULL */
	bool deferred;       /* nng_aio_defer done */
	nng_aio *body_aio;   /* owned; reads the body */
	nng_http_conn *conn; /* borrowed from nng while aio is pending */
	gw_request req;
	gw_header headers[GW_N_REQUEST_HEADERS];
	char *strs;    /* owned: method, uri, header values */
	uint8_t *body; /* owned */
	size_t body_len;
	gw_plan plan;
	int64_t start_us;
} gw_exchange;

static int64_t
gw_http_now_us(void)
{
	struct timespec ts;

	(void) clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail */
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* --- exchanges --- */

static void
gw_exchange_free(gw_exchange *ex)
{
	gw_server *gw = ex->gw;

	gw_plan_fini(&ex->plan);
	if (ex->body_aio != NULL) {
		/* Possibly from its own callback: reap, never free. */
		nng_aio_reap(ex->body_aio);
	}
	ds_free(ex->body);
	ds_free(ex->strs);
	ds_free(ex);
	pthread_mutex_lock(&gw->mu);
	if (--gw->live == 0) {
		pthread_cond_broadcast(&gw->cv);
	}
	pthread_mutex_unlock(&gw->mu); /* gw may be freed from here on */
}

/* gw_exchange_new copies what the pure layer reads from nng's request:
 * the exchange must not depend on nng's request object, which the server
 * frees when it closes the connection. */
static gw_exchange *
gw_exchange_new(
    gw_server *gw, nng_aio *aio, nng_http_req *hreq, nng_http_conn *conn)
{
	const char *method = nng_http_req_get_method(hreq);
	const char *uri = nng_http_req_get_uri(hreq);
	const char *vals[GW_N_REQUEST_HEADERS];
	size_t total, o = 0;
	gw_exchange *ex;

	total = strlen(method) + strlen(uri) + 2;
	for (int i = 0; i < GW_N_REQUEST_HEADERS; i++) {
		vals[i] =
		    nng_http_req_get_header(hreq, gw_request_header_names[i]);
		if (vals[i] != NULL) {
			total += strlen(vals[i]) + 1;
		}
	}
	if ((ex = ds_calloc(1, sizeof(*ex))) == NULL) {
		return NULL;
	}
	if ((ex->strs = ds_alloc(total)) == NULL) {
		ds_free(ex);
		return NULL;
	}
#define GW_COPY(dst, src)                                                     \
	do {                                                                  \
		size_t n_ = strlen(src) + 1;                                  \
		memcpy(ex->strs + o, (src), n_);                              \
		(dst) = ex->strs + o;                                         \
		o += n_;                                                      \
	} while (0)
	GW_COPY(ex->req.method, method);
	GW_COPY(ex->req.uri, uri);
	for (int i = 0; i < GW_N_REQUEST_HEADERS; i++) {
		if (vals[i] != NULL) {
			gw_header *h = &ex->headers[ex->req.n_headers++];

			h->name = gw_request_header_names[i];
			GW_COPY(h->value, vals[i]);
		}
	}
#undef GW_COPY
	ex->req.headers = ex->headers;
	ex->gw = gw;
	ex->aio = aio;
	ex->conn = conn;
	ex->start_us = gw_http_now_us();
	gw_plan_init(&ex->plan);
	pthread_mutex_lock(&gw->mu);
	gw->live++;
	pthread_mutex_unlock(&gw->mu);
	return ex;
}

/* gw_exchange_take_aio returns the handler's aio if nobody finished it
 * yet, and makes sure nobody else will. */
static nng_aio *
gw_exchange_take_aio(gw_exchange *ex)
{
	nng_aio *aio;

	pthread_mutex_lock(&ex->gw->mu);
	if ((aio = ex->aio) != NULL) {
		ex->aio = NULL;
		(void) nng_aio_set_input(aio, GW_AIO_SLOT, NULL); /* < 4 */
	}
	pthread_mutex_unlock(&ex->gw->mu);
	return aio;
}

/* gw_http_cancel: nng closes the connection (server stop) while we wait
 * for a body or an RPC. The exchange goes on and ends on its own; only
 * the aio is given back now. */
static void
gw_http_cancel(nng_aio *aio, void *arg, int err)
{
	gw_server *gw = arg;
	gw_exchange *ex;

	pthread_mutex_lock(&gw->mu);
	if ((ex = nng_aio_get_input(aio, GW_AIO_SLOT)) != NULL) {
		(void) nng_aio_set_input(aio, GW_AIO_SLOT, NULL);
		ex->aio = NULL;
	}
	pthread_mutex_unlock(&gw->mu);
	if (ex != NULL) {
		nng_aio_finish(aio, err);
	}
}

/* gw_exchange_defer registers the cancel function once, before the
 * exchange waits for anything. */
static void
gw_exchange_defer(gw_exchange *ex)
{
	nng_aio *aio;

	if (ex->deferred) {
		return;
	}
	ex->deferred = true;
	pthread_mutex_lock(&ex->gw->mu);
	if ((aio = ex->aio) != NULL) {
		(void) nng_aio_set_input(aio, GW_AIO_SLOT, ex);
	}
	pthread_mutex_unlock(&ex->gw->mu);
	if (aio != NULL) {
		nng_aio_defer(aio, gw_http_cancel, ex->gw);
	}
}

/* --- answering --- */

static int
gw_http_res_build(const gw_response *r, nng_http_res **out)
{
	nng_http_res *res;
	int rv;

	if ((rv = nng_http_res_alloc(&res)) != 0) {
		return rv;
	}
	if ((rv = nng_http_res_set_status(res, (uint16_t) r->status)) != 0 ||
	    (rv = nng_http_res_set_reason(res, gw_http_reason(r->status))) !=
	        0) {
		goto fail;
	}
	for (size_t i = 0; i < r->n_headers; i++) {
		if ((rv = nng_http_res_set_header(
		         res, r->headers[i].name, r->headers[i].value)) != 0) {
			goto fail;
		}
	}
	/* nng closes the connection after a response that says so: the
	 * body we refused is still in the socket. */
	if (r->close &&
	    (rv = nng_http_res_set_header(res, "Connection", "close")) != 0) {
		goto fail;
	}
	if (r->body_len > 0 &&
	    (rv = nng_http_res_copy_data(res, r->body, r->body_len)) != 0) {
		goto fail;
	}
	*out = res;
	return 0;
fail:
	nng_http_res_free(res);
	return rv;
}

/* gw_http_respond sends the plan's response and ends the exchange. msg
 * (owned, may be NULL) is the RPC reply the response may borrow from. */
static void
gw_http_respond(gw_exchange *ex, ProtobufCMessage *msg)
{
	gw_server *gw = ex->gw;
	gw_response *r = &ex->plan.resp;
	nng_http_res *res = NULL;
	nng_aio *aio;
	int rv;

	gw_response_seal(r);
	rv = gw_http_res_build(r, &res);
	if (msg != NULL) {
		protobuf_c_message_free_unpacked(msg, NULL);
	}
	gw_metrics_end(&gw->metrics, ex->plan.route, ex->plan.method,
	    rv == 0 ? r->status : 500, gw_http_now_us() - ex->start_us,
	    r->events);
	if ((aio = gw_exchange_take_aio(ex)) != NULL) {
		if (rv == 0) {
			(void) nng_aio_set_output(aio, 0, res); /* 0 < 4 */
			nng_aio_finish(aio, 0);
		} else {
			/* Not even a response: nng drops the connection. */
			nng_aio_finish(aio, rv);
		}
	} else if (res != NULL) {
		nng_http_res_free(res); /* the connection is gone */
	}
	gw_exchange_free(ex);
}

/* gw_http_abort ends an exchange whose connection failed (err). */
static void
gw_http_abort(gw_exchange *ex, int err)
{
	nng_aio *aio;

	/* 499: nginx's "client closed request", as grpc-gateway uses. */
	gw_metrics_end(&ex->gw->metrics, ex->plan.route, ex->plan.method, 499,
	    gw_http_now_us() - ex->start_us, 0);
	if ((aio = gw_exchange_take_aio(ex)) != NULL) {
		nng_aio_finish(aio, err != 0 ? err : NNG_ECLOSED);
	}
	gw_exchange_free(ex);
}

static void gw_http_rpc_done(nrpc_fnptr user_cb, void *user_arg,
    ProtobufCMessage *resp, const nrpc_status *st);

/* gw_http_call starts the plan's RPC. The exchange may be gone when it
 * returns (the callback can run before nrpc_client_call_async returns). */
static void
gw_http_call(gw_exchange *ex)
{
	gw_server *gw = ex->gw;
	nrpc_status st;
	nrpc_call_opts opts;

	memset(&st, 0, sizeof(st));
	memset(&opts, 0, sizeof(opts));
	pthread_mutex_lock(&gw->mu);
	if (gw->stopping) {
		pthread_mutex_unlock(&gw->mu);
		nrpc_status_set(&st, NRPC_UNAVAILABLE, "UNAVAILABLE", NULL,
		    "the gateway is shutting down");
		gw_plan_fail(&gw->core, &ex->plan, &st);
		gw_http_respond(ex, NULL);
		nrpc_status_fini(&st);
		return;
	}
	gw->active++;
	pthread_mutex_unlock(&gw->mu);

	gw_exchange_defer(ex);
	opts.timeout_ms = gw->timeout_ms;
	opts.request_id = ex->plan.call_request_id;
	opts.caller = ex->plan.caller;
	if (nrpc_client_call_async(gw->client, ex->plan.rpc, ex->plan.req,
	        &opts, gw_http_rpc_done, NULL, ex, &st) != NRPC_OK) {
		gw_plan_fail(&gw->core, &ex->plan, &st);
		gw_http_respond(ex, NULL);
	}
	nrpc_status_fini(&st);

	pthread_mutex_lock(&gw->mu);
	if (--gw->active == 0) {
		pthread_cond_broadcast(&gw->cv);
	}
	pthread_mutex_unlock(&gw->mu);
}

static void
gw_http_advance(gw_exchange *ex)
{
	gw_server *gw = ex->gw;

	switch (ex->plan.kind) {
	case GW_PLAN_RPC:
		gw_http_call(ex);
		return;
	case GW_PLAN_STATIC:
		gw_static_respond(gw->web_root, gw->js_path,
		    ex->plan.static_rel, &ex->plan.resp);
		gw_plan_decorate(&gw->core, &ex->plan);
		break;
	case GW_PLAN_RESPOND:
		break;
	}
	gw_http_respond(ex, NULL);
}

static void
gw_http_rpc_done(nrpc_fnptr user_cb, void *user_arg, ProtobufCMessage *resp,
    const nrpc_status *st)
{
	gw_exchange *ex = user_arg;

	(void) user_cb;
	if (gw_plan_step(&ex->gw->core, &ex->plan, resp, st) == GW_PLAN_RPC) {
		if (resp != NULL) {
			protobuf_c_message_free_unpacked(resp, NULL);
		}
		gw_http_call(ex);
		return;
	}
	gw_http_respond(ex, resp);
}

static void
gw_http_body_done(void *arg)
{
	gw_exchange *ex = arg;
	int rv = nng_aio_result(ex->body_aio);

	if (rv == 0 && nng_aio_count(ex->body_aio) != ex->body_len) {
		rv = NNG_ECONNSHUT;
	}
	if (rv != 0) {
		gw_http_abort(ex, rv);
		return;
	}
	ex->req.body = ex->body;
	ex->req.body_len = ex->body_len;
	gw_plan_make(&ex->gw->core, &ex->req, &ex->plan);
	gw_http_advance(ex);
}

/* gw_http_handle is nng's handler for every request. */
static void
gw_http_handle(nng_aio *aio)
{
	nng_http_req *hreq = nng_aio_get_input(aio, 0);
	nng_http_handler *h = nng_aio_get_input(aio, 1);
	nng_http_conn *conn = nng_aio_get_input(aio, 2);
	gw_server *gw = nng_http_handler_get_data(h);
	gw_exchange *ex;
	size_t len = 0;
	nng_iov iov;
	int rv;

	gw_metrics_begin(&gw->metrics);
	if ((ex = gw_exchange_new(gw, aio, hreq, conn)) == NULL) {
		gw_metrics_end(
		    &gw->metrics, GW_ROUTE_OTHER, GW_M_OTHER, 500, 0, 0);
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	if (!gw_plan_precheck(&gw->core, &ex->req, &len, &ex->plan)) {
		gw_http_respond(ex, NULL);
		return;
	}
	if (len == 0) {
		gw_plan_make(&gw->core, &ex->req, &ex->plan);
		gw_http_advance(ex);
		return;
	}
	if ((ex->body = ds_alloc(len)) == NULL ||
	    (rv = nng_aio_alloc(&ex->body_aio, gw_http_body_done, ex)) != 0) {
		/* Unread body: answer and close. */
		gw_http_abort(ex, NNG_ENOMEM);
		return;
	}
	ex->body_len = len;
	iov.iov_buf = ex->body;
	iov.iov_len = len;
	(void) nng_aio_set_iov(ex->body_aio, 1, &iov); /* 1 iov: cannot fail */
	nng_aio_set_timeout(ex->body_aio, GW_BODY_READ_TIMEOUT_MS);
	gw_exchange_defer(ex);
	nng_http_conn_read_all(conn, ex->body_aio);
}

/* The sentinel: a second handler that no request reaches (its method is
 * not a method anybody sends), registered only for its destructor. nng
 * finalizes a server after the last connection is reaped, and reaping a
 * connection waits for its receive callback, which is where handlers run;
 * the finalizer then drops the handlers. So the sentinel's destructor
 * means "no handler runs any more". The main handler's own destructor
 * cannot say that: nng 1.5.2 keeps a reference to a handler when a
 * request arrives just as the connection closes, and that handler is then
 * never freed. */
#define GW_SENTINEL_PATH   "/.well-known/datasync-gateway-sentinel"
#define GW_SENTINEL_METHOD "X-DATASYNC-GATEWAY-SENTINEL"

static void
gw_http_sentinel(nng_aio *aio)
{
	nng_http_res *res;
	int rv;

	if ((rv = nng_http_res_alloc_error(&res, 404)) != 0) {
		nng_aio_finish(aio, rv);
		return;
	}
	(void) nng_aio_set_output(aio, 0, res); /* 0 < 4 */
	nng_aio_finish(aio, 0);
}

static void
gw_http_sentinel_dtor(void *arg)
{
	gw_server *gw = arg;

	pthread_mutex_lock(&gw->mu);
	gw->nng_done = true;
	pthread_cond_broadcast(&gw->cv);
	pthread_mutex_unlock(&gw->mu); /* gw may be freed from here on */
}

/* --- start and stop --- */

void
gw_config_default(gw_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->http = "127.0.0.1:8080";
}

static int
gw_start_check(const gw_config *cfg, nrpc_status *st)
{
	if (cfg->http == NULL || cfg->http[0] == '\0') {
		return gw_status_set(st, -1, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", "http", "http: HOST:PORT is required");
	}
	if (cfg->n_upstreams == 0 || cfg->n_upstreams > GW_MAX_UPSTREAMS ||
	    cfg->upstreams == NULL) {
		return gw_status_set(st, -1, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", "upstreams",
		    "upstreams: between 1 and %d RPC URLs are required",
		    GW_MAX_UPSTREAMS);
	}
	for (size_t i = 0; i < cfg->n_upstreams; i++) {
		if (cfg->upstreams[i] == NULL) {
			return gw_status_set(st, -1, NRPC_INVALID_ARGUMENT,
			    "INVALID_ARGUMENT", "upstreams",
			    "upstreams: entry %zu is NULL", i);
		}
	}
	if (cfg->n_cors_origins > GW_MAX_CORS_ORIGINS) {
		return gw_status_set(st, -1, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", "cors_origins",
		    "cors_origins: at most %d", GW_MAX_CORS_ORIGINS);
	}
	for (size_t i = 0; i < cfg->n_cors_origins; i++) {
		if (!gw_cors_origin_valid(cfg->cors_origins[i])) {
			return gw_status_set(st, -1, NRPC_INVALID_ARGUMENT,
			    "INVALID_ARGUMENT", "cors_origins",
			    "cors origin '%.128s' is not scheme://host[:port] "
			    "(no path, no trailing '/') or *",
			    cfg->cors_origins[i] != NULL ? cfg->cors_origins[i]
			                                 : "(null)");
		}
	}
	if (cfg->n_allow_hosts > GW_MAX_ALLOW_HOSTS ||
	    (cfg->n_allow_hosts > 0 && cfg->allow_hosts == NULL)) {
		return gw_status_set(st, -1, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", "allow_hosts",
		    "allow_hosts: at most %d", GW_MAX_ALLOW_HOSTS);
	}
	for (size_t i = 0; i < cfg->n_allow_hosts; i++) {
		const char *h = cfg->allow_hosts[i];

		if (h == NULL || h[0] == '\0' ||
		    strlen(h) > GW_MAX_HOST_BYTES || strchr(h, ':') != NULL) {
			return gw_status_set(st, -1, NRPC_INVALID_ARGUMENT,
			    "INVALID_ARGUMENT", "allow_hosts",
			    "allow host '%.128s' is not a host name (no port; "
			    "at most %d bytes) or *",
			    h != NULL ? h : "(null)", GW_MAX_HOST_BYTES);
		}
	}
	if (cfg->max_value_bytes > GW_MAX_VALUE_BYTES_HARD) {
		return gw_status_set(st, -1, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", "max_value_bytes",
		    "max_value_bytes: at most %d", GW_MAX_VALUE_BYTES_HARD);
	}
	if (cfg->rpc_timeout_ms < 0 ||
	    cfg->rpc_timeout_ms > GW_RPC_TIMEOUT_HARD_MS) {
		return gw_status_set(st, -1, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", "rpc_timeout_ms",
		    "rpc_timeout_ms: 0 (default) .. %d",
		    GW_RPC_TIMEOUT_HARD_MS);
	}
	if (cfg->n_services > GW_MAX_SERVICES ||
	    (cfg->n_services > 0 && cfg->services == NULL)) {
		return gw_status_set(st, -1, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", "services", "services: at most %d",
		    GW_MAX_SERVICES);
	}
	return 0;
}

/* gw_start_static resolves the web root: a configured one must exist, the
 * compiled-in one may be missing (then there is no demo page). */
static int
gw_start_static(gw_server *gw, const gw_config *cfg, nrpc_status *st)
{
	const char *root =
	    cfg->web_root != NULL ? cfg->web_root : GW_DEFAULT_WEB_ROOT;
	struct stat sb;

	if ((gw->js_path = ds_strdup(
	         cfg->js_path != NULL ? cfg->js_path : GW_DEFAULT_JS_PATH)) ==
	    NULL) {
		return gw_status_set(st, -1, NRPC_RESOURCE_EXHAUSTED,
		    "RESOURCE_EXHAUSTED", NULL, "out of memory");
	}
	gw->web_root = realpath(root, NULL);
	if (gw->web_root != NULL &&
	    (stat(gw->web_root, &sb) != 0 || !S_ISDIR(sb.st_mode))) {
		free(gw->web_root);
		gw->web_root = NULL;
		errno = ENOTDIR;
	}
	if (gw->web_root == NULL) {
		if (cfg->web_root != NULL) {
			return gw_status_set(st, -1, NRPC_INVALID_ARGUMENT,
			    "INVALID_ARGUMENT", "web_root",
			    "web_root %.128s: %s", cfg->web_root,
			    strerror(errno));
		}
		ds_log(DS_LOG_INFO, "gateway",
		    "no demo page: %s is not a directory", root);
	}
	return 0;
}

static int
gw_start_http(gw_server *gw, const char *hostport, nrpc_status *st)
{
	char url[300];
	nng_url *u = NULL;
	nng_http_handler *h = NULL;
	nng_sockaddr sa;
	int rv;

	if (strlen(hostport) > 256) {
		return gw_status_set(st, -1, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", "http", "http: address too long");
	}
	(void) snprintf(url, sizeof(url), "http://%s", hostport);
	if ((rv = nng_url_parse(&u, url)) != 0) {
		return gw_status_set(st, -1, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", "http",
		    "http: '%.256s' is not HOST:PORT "
		    "(%s)",
		    hostport, nng_strerror(rv));
	}
	if ((rv = nng_http_server_hold(&gw->http, u)) != 0) {
		nng_url_free(u);
		return gw_status_set(st, -1, NRPC_UNAVAILABLE, "UNAVAILABLE",
		    "http", "cannot serve http://%.256s: %s", hostport,
		    nng_strerror(rv));
	}
	nng_url_free(u);
	if ((rv = nng_http_handler_alloc(
	         &h, GW_SENTINEL_PATH, gw_http_sentinel)) != 0) {
		goto fail;
	}
	if ((rv = nng_http_handler_set_data(h, gw, gw_http_sentinel_dtor)) !=
	    0) {
		nng_http_handler_free(h);
		goto fail;
	}
	gw->nng_done = false; /* nng runs the dtor when it lets go of h */
	if ((rv = nng_http_handler_set_method(h, GW_SENTINEL_METHOD)) != 0 ||
	    (rv = nng_http_handler_collect_body(h, false, 0)) != 0 ||
	    (rv = nng_http_server_add_handler(gw->http, h)) != 0) {
		nng_http_handler_free(h); /* runs the dtor */
		goto fail;
	}
	if ((rv = nng_http_handler_alloc(&h, "/", gw_http_handle)) != 0) {
		goto fail;
	}
	/* Every method, every path, and no body collection: the pure
	 * layer decides, and answers 413 itself (nng's own limit answers
	 * 400 and reads nothing we could report). */
	if ((rv = nng_http_handler_set_data(h, gw, NULL)) != 0 ||
	    (rv = nng_http_handler_set_method(h, NULL)) != 0 ||
	    (rv = nng_http_handler_set_tree(h)) != 0 ||
	    (rv = nng_http_handler_collect_body(h, false, 0)) != 0 ||
	    (rv = nng_http_server_add_handler(gw->http, h)) != 0) {
		nng_http_handler_free(h);
		goto fail;
	}
	gw->handler = h;
	if ((rv = nng_http_server_start(gw->http)) != 0) {
		goto fail;
	}
	if (nng_http_server_get_addr(gw->http, &sa) == 0) {
		if (sa.s_family == NNG_AF_INET) {
			gw->port = ntohs(sa.s_in.sa_port);
		} else if (sa.s_family == NNG_AF_INET6) {
			gw->port = ntohs(sa.s_in6.sa_port);
		}
	}
	return 0;
fail:
	(void) gw_status_set(st, -1, NRPC_UNAVAILABLE, "UNAVAILABLE", "http",
	    "cannot listen on http://%.256s: %s", hostport, nng_strerror(rv));
	return -1; /* gw_free releases the server */
}

static void gw_free(gw_server *gw);

int
gw_start(const gw_config *cfg, gw_server **out, nrpc_status *st)
{
	gw_server *gw;
	nrpc_client_config ccfg;

	nrpc_status_fini(st);
	if (gw_start_check(cfg, st) != 0) {
		return st->code;
	}
	if ((gw = ds_calloc(1, sizeof(*gw))) == NULL) {
		nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED,
		    "RESOURCE_EXHAUSTED", NULL, "out of memory");
		return st->code;
	}
	pthread_mutex_init(&gw->mu, NULL);
	pthread_cond_init(&gw->cv, NULL);
	gw->nng_done = true; /* until the sentinel is registered */
	gw->timeout_ms = cfg->rpc_timeout_ms != 0 ? cfg->rpc_timeout_ms
	                                          : GW_RPC_TIMEOUT_DEFAULT_MS;
	for (size_t i = 0; i < cfg->n_cors_origins; i++) {
		if ((gw->cors[i] = ds_strdup(cfg->cors_origins[i])) == NULL) {
			nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED,
			    "RESOURCE_EXHAUSTED", NULL, "out of memory");
			goto fail;
		}
		gw->n_cors++;
	}
	for (size_t i = 0; i < cfg->n_allow_hosts; i++) {
		if ((gw->allow_hosts[i] = ds_strdup(cfg->allow_hosts[i])) ==
		    NULL) {
			nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED,
			    "RESOURCE_EXHAUSTED", NULL, "out of memory");
			goto fail;
		}
		gw->n_allow_hosts++;
	}
	if (cfg->n_services > 0) {
		for (size_t i = 0; i < cfg->n_services; i++) {
			gw->services[i] = cfg->services[i];
		}
		gw->n_services = cfg->n_services;
	} else {
		gw->services[0] = &datasync_v1_data_sync_service;
		gw->n_services = 1;
	}
	if (gw_start_static(gw, cfg, st) != 0) {
		goto fail;
	}
	gw_metrics_init(&gw->metrics);
	gw_core_init(&gw->core, gw->services, gw->n_services,
	    (const char *const *) gw->cors, gw->n_cors, cfg->max_value_bytes,
	    cfg->wall_clock != NULL ? cfg->wall_clock : ds_clock_wall(),
	    &gw->metrics);
	gw_core_set_hosts(&gw->core, cfg->http,
	    (const char *const *) gw->allow_hosts, gw->n_allow_hosts);

	nrpc_client_config_default(&ccfg);
	ccfg.urls = cfg->upstreams;
	ccfg.n_urls = cfg->n_upstreams;
	ccfg.timeout_ms = gw->timeout_ms;
	ccfg.client_name = "datasync-gateway";
	/* Replies carry values as large as requests (plus a record). */
	ccfg.max_message_bytes = gw->core.max_value_bytes + 64 * 1024;
	if (nrpc_client_open(&ccfg, &gw->client, st) != NRPC_OK) {
		goto fail;
	}
	if (gw_start_http(gw, cfg->http, st) != 0) {
		goto fail;
	}
	*out = gw;
	return NRPC_OK;
fail:
	gw_free(gw);
	return st->code;
}

int
gw_port(const gw_server *gw)
{
	return gw != NULL ? gw->port : 0;
}

static void
gw_free(gw_server *gw)
{
	bool took = false;

	if (gw->http != NULL) {
		/* Take the main handler out first: a request that arrives
		 * while nng closes its connection would otherwise pin the
		 * handler forever (see the sentinel). Requests arriving
		 * from now on get nng's own 404. */
		took = gw->handler != NULL &&
		       nng_http_server_del_handler(gw->http, gw->handler) == 0;
		nng_http_server_stop(gw->http);
		nng_http_server_release(gw->http);
		gw->http = NULL;
	}
	pthread_mutex_lock(&gw->mu);
	while (!gw->nng_done) {
		pthread_cond_wait(&gw->cv, &gw->mu);
	}
	pthread_mutex_unlock(&gw->mu);
	if (took) {
		/* del_handler gave us the server's reference; every
		 * dispatch has dropped its own by now. */
		nng_http_handler_free(gw->handler);
	}
	nrpc_client_close(gw->client);
	pthread_mutex_lock(&gw->mu);
	while (gw->live > 0) {
		pthread_cond_wait(&gw->cv, &gw->mu);
	}
	pthread_mutex_unlock(&gw->mu);
	for (size_t i = 0; i < gw->n_cors; i++) {
		ds_free(gw->cors[i]);
	}
	for (size_t i = 0; i < gw->n_allow_hosts; i++) {
		ds_free(gw->allow_hosts[i]);
	}
	free(gw->web_root); /* from realpath */
	ds_free(gw->js_path);
	pthread_cond_destroy(&gw->cv);
	pthread_mutex_destroy(&gw->mu);
	ds_free(gw);
}

void
gw_stop(gw_server *gw)
{
	if (gw == NULL) {
		return;
	}
	/* No new RPC calls, and none being started: after this, closing
	 * the client cannot race with nrpc_client_call_async. */
	pthread_mutex_lock(&gw->mu);
	gw->stopping = true;
	while (gw->active > 0) {
		pthread_cond_wait(&gw->cv, &gw->mu);
	}
	pthread_mutex_unlock(&gw->mu);
	gw_free(gw);
}
