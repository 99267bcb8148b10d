/*
 * gw_http.c - libmicrohttpd <-> the pure gateway, and gw_start / gw_stop.
 *
 * One access handler takes every method and path; routing, limits and
 * everything else live in the pure layer (gw_plan.c). libmicrohttpd runs
 * an epoll loop on a pool of threads (one per CPU) and calls the handler
 * for each request several times:
 *
 *   1. headers complete: gw_plan_precheck decides from the headers (413,
 *      411, ... answered at once, body unread, Connection: close: an
 *      answer queued from this first call closes the connection); a
 *      declared body reserves its bytes from the body budget, or is
 *      answered 503 + Retry-After unread when it does not fit;
 *   2. each piece of the body: appended to a buffer that grows with what
 *      arrived (never sized from Content-Length up front);
 *   3. body complete: gw_plan_make; an RPC suspends the connection and
 *      starts nrpc_client_call_async; its callback (an nng thread) feeds
 *      gw_plan_step and resumes the connection;
 *   4. after the resume: the response is queued.
 *
 * GET /v1/events is a stream (gw_stream): its first Watch runs as any
 * RPC does, and its answer (events, or a 410 for a compacted cursor)
 * becomes a response whose body comes from a content reader. The reader
 * hands out the framed bytes; when it has none it suspends the
 * connection and starts the next Watch, whose callback frames the reply
 * and resumes. A stream is freed when both its response (libmicrohttpd's
 * free callback, after the connection is done with it) and its Watch in
 * flight (the callback) have let go of it, so a Watch that returns after
 * the client left touches nothing freed. libmicrohttpd notices a client
 * that left only when it writes, which it does at least once per
 * heartbeat.
 *
 * An exchange (one request) is created by the URI callback (which sees
 * the raw request-target) and freed exactly once, by the completion
 * callback, which libmicrohttpd runs for every request it started,
 * answered or not. A suspended connection is never closed by
 * libmicrohttpd, so gw_stop first ends every RPC (closing the client runs
 * each callback, which resumes its connection), and only then stops the
 * daemon, which closes the connections and completes their exchanges.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "datasync/v1/datasync.nrpc.h"
#include "auth.h"
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

struct gw_server {
	gw_core core;
	gw_metrics metrics;
	auth_limiter *limiter; /* owned: failed authentications per peer */
	nrpc_client *client;
	const char **dial;         /* owned array (strings borrowed from the
	                            * config): each upstream, once per pipe */
	struct MHD_Daemon *mhd;
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
	size_t budget; /* body_budget */
	ds_buf tls_cert;  /* HTTPS: PEM, NUL-terminated, kept while MHD runs */
	ds_buf tls_key;   /* HTTPS: PEM; zeroed before it is freed */

	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned active;    /* guarded by mu: threads inside gw_http_call */
	size_t live;        /* guarded by mu: exchanges not yet freed */
	size_t suspended;   /* guarded by mu: connections suspended and
	                     * not yet resumed (MHD_resume_connection
	                     * returned) */
	size_t budget_used; /* guarded by mu: body bytes reserved */
	bool stopping;      /* guarded by mu: no new RPC calls */
	size_t streams;     /* guarded by mu: event streams open or being
	                     * opened (a slot taken before their first
	                     * Watch) */
	size_t max_streams;
	uint32_t heartbeat_ms;
};

typedef enum gw_ex_state {
	GW_EX_HEAD = 0, /* created: headers not seen yet */
	GW_EX_BODY,     /* reading the body */
	GW_EX_WAIT,     /* suspended: an RPC in flight */
	GW_EX_READY,    /* resumed: plan.resp is final */
	GW_EX_SENT,     /* response queued */
} gw_ex_state;

typedef struct gw_exchange {
	gw_server *gw;
	struct MHD_Connection *conn; /* borrowed from libmicrohttpd */
	gw_ex_state state;           /* guarded by gw->mu while WAIT */
	bool begun;                  /* gw_metrics_begin done */
	bool ended;                  /* gw_metrics_end done */
	char *uri;                   /* owned: the raw request-target */
	char peer[INET6_ADDRSTRLEN];
	gw_request req;
	gw_header headers[GW_N_REQUEST_HEADERS];
	char *strs;       /* owned: method and header values */
	uint8_t *body;    /* owned; body_cap bytes */
	size_t body_len;  /* bytes arrived */
	size_t body_cap;
	size_t declared;  /* Content-Length */
	size_t reserved;  /* bytes of gw->budget_used held */
	int64_t body_deadline_us;
	ProtobufCMessage *msg; /* owned: the reply plan.resp may borrow */
	gw_plan plan;
	int64_t start_us;
	bool stream_slot; /* holds one of gw->streams until the stream
	                   * opens (the stream then holds it) */
} gw_exchange;

/* gw_stream: one GET /v1/events after its 200. */
typedef struct gw_stream {
	gw_server *gw;
	struct MHD_Connection *conn; /* borrowed; valid while refs include
	                              * the response's */
	unsigned refs; /* guarded by gw->mu: 1 for the response until its
	                * free callback, 1 for a Watch in flight */
	bool parked;   /* guarded by gw->mu: suspended by the reader and not
	                * yet resumed */
	bool end;      /* guarded by gw->mu: send out, then end the stream */
	ds_buf out;    /* guarded by gw->mu: framed bytes ... */
	size_t sent;   /* ... of which these went to libmicrohttpd */
	/* The next Watch; after is written by a Watch's callback and read
	 * by the reader that starts the next, never both at once. */
	uint64_t after;
	char *key;    /* owned; NULL = "" */
	char *prefix; /* owned; NULL = "" */
	uint32_t limit;
	bool with_values;
	char *caller; /* owned; NULL = the gateway's client name */
	char *authorization; /* owned; the credential each Watch forwards
	                      * (so a revoked token ends the stream) */
} gw_stream;

static int64_t
gw_http_now_us(void)
{
	struct timespec ts;

	(void) clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail */
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* --- exchanges --- */

/* gw_http_uri is libmicrohttpd's URI callback: the request line has
 * arrived. Its result becomes the request's context (*con_cls), freed by
 * gw_http_completed. NULL (out of memory) makes the handler drop the
 * connection. */
static void *
gw_http_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	gw_server *gw = cls;
	gw_exchange *ex;
	const union MHD_ConnectionInfo *ci;

	if ((ex = ds_calloc(1, sizeof(*ex))) == NULL) {
		return NULL;
	}
	if ((ex->uri = ds_strdup(uri != NULL ? uri : "")) == NULL) {
		ds_free(ex);
		return NULL;
	}
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci != NULL && ci->client_addr != NULL) {
		socklen_t len = ci->client_addr->sa_family == AF_INET6
		                    ? sizeof(struct sockaddr_in6)
		                    : sizeof(struct sockaddr_in);

		if (getnameinfo(ci->client_addr, len, ex->peer,
		        sizeof(ex->peer), NULL, 0, NI_NUMERICHOST) != 0) {
			ex->peer[0] = '\0';
		}
	}
	ex->gw = gw;
	ex->conn = conn;
	ex->start_us = gw_http_now_us();
	gw_plan_init(&ex->plan);
	pthread_mutex_lock(&gw->mu);
	gw->live++;
	pthread_mutex_unlock(&gw->mu);
	return ex;
}

/* gw_http_completed is libmicrohttpd's completion callback: the request
 * is over (answered, or its connection closed). The exchange ends here,
 * exactly once. */
static void
gw_http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	gw_server *gw = cls;
	gw_exchange *ex = *con_cls;
	size_t reserved;

	(void) conn;
	(void) toe;
	if (ex == NULL) {
		return;
	}
	*con_cls = NULL;
	if (ex->begun && !ex->ended) {
		/* 499: nginx's "client closed request", as grpc-gateway
		 * uses. */
		gw_metrics_end(&gw->metrics, ex->plan.route, ex->plan.method,
		    499, gw_http_now_us() - ex->start_us, 0);
	}
	gw_plan_fini(&ex->plan);
	if (ex->msg != NULL) {
		protobuf_c_message_free_unpacked(ex->msg, NULL);
	}
	ds_free(ex->body);
	ds_free(ex->strs);
	ds_free(ex->uri);
	reserved = ex->reserved;
	pthread_mutex_lock(&gw->mu);
	if (ex->stream_slot) {
		gw->streams--; /* refused or failed before it opened */
		pthread_cond_broadcast(&gw->cv);
	}
	pthread_mutex_unlock(&gw->mu);
	ds_free(ex);
	pthread_mutex_lock(&gw->mu);
	gw->budget_used -= reserved;
	if (--gw->live == 0) {
		pthread_cond_broadcast(&gw->cv);
	}
	pthread_mutex_unlock(&gw->mu);
}

/* Collecting the headers the pure layer reads, repeated ones joined by
 * ", " (two passes: sizes, then copies). */
typedef struct gw_hdr_pass {
	gw_exchange *ex;
	size_t len[GW_N_REQUEST_HEADERS]; /* pass 1: joined lengths + 1 */
	char *at[GW_N_REQUEST_HEADERS];   /* pass 2: where each goes */
	size_t used[GW_N_REQUEST_HEADERS];
	bool copy;
} gw_hdr_pass;

static enum MHD_Result
gw_http_header_cb(
    void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	gw_hdr_pass *hp = cls;

	(void) kind;
	if (key == NULL) {
		return MHD_YES;
	}
	if (value == NULL) {
		value = "";
	}
	for (int i = 0; i < GW_N_REQUEST_HEADERS; i++) {
		size_t n;

		if (strcasecmp(key, gw_request_header_names[i]) != 0) {
			continue;
		}
		n = strlen(value);
		if (!hp->copy) {
			hp->len[i] += (hp->len[i] > 0 ? 2 : 1) + n;
		} else {
			char *d = hp->at[i] + hp->used[i];

			if (hp->used[i] > 0) {
				memcpy(d, ", ", 2);
				d += 2;
				hp->used[i] += 2;
			}
			memcpy(d, value, n + 1);
			hp->used[i] += n;
		}
		break;
	}
	return MHD_YES;
}

/* gw_http_request fills ex->req from the connection: method, the raw
 * request-target, the headers, the peer. 0, or -1 out of memory. */
static int
gw_http_request(gw_exchange *ex, const char *method)
{
	gw_hdr_pass hp;
	size_t total, o;

	memset(&hp, 0, sizeof(hp));
	hp.ex = ex;
	(void) MHD_get_connection_values(
	    ex->conn, MHD_HEADER_KIND, gw_http_header_cb, &hp);
	total = strlen(method) + 1;
	for (int i = 0; i < GW_N_REQUEST_HEADERS; i++) {
		total += hp.len[i];
	}
	if ((ex->strs = ds_alloc(total)) == NULL) {
		return -1;
	}
	memcpy(ex->strs, method, strlen(method) + 1);
	o = strlen(method) + 1;
	for (int i = 0; i < GW_N_REQUEST_HEADERS; i++) {
		if (hp.len[i] > 0) {
			gw_header *h = &ex->headers[ex->req.n_headers++];

			hp.at[i] = ex->strs + o;
			hp.at[i][0] = '\0';
			h->name = gw_request_header_names[i];
			h->value = hp.at[i];
			o += hp.len[i];
		}
	}
	hp.copy = true;
	(void) MHD_get_connection_values(
	    ex->conn, MHD_HEADER_KIND, gw_http_header_cb, &hp);
	ex->req.method = ex->strs;
	ex->req.uri = ex->uri;
	ex->req.headers = ex->headers;
	ex->req.peer = ex->peer[0] != '\0' ? ex->peer : NULL;
	return 0;
}

/* --- event streams (GET /v1/events) --- */

/* gw_stream_reserve takes one of max_sse_streams for ex before its first
 * Watch; false with ex->plan a 503 when they are all taken. */
static bool
gw_stream_reserve(gw_exchange *ex)
{
	gw_server *gw = ex->gw;
	gw_plan *p = &ex->plan;
	nrpc_status st;
	bool ok;

	pthread_mutex_lock(&gw->mu);
	ok = gw->streams < gw->max_streams;
	if (ok) {
		gw->streams++;
		ex->stream_slot = true;
	}
	pthread_mutex_unlock(&gw->mu);
	if (ok) {
		return true;
	}
	atomic_fetch_add_explicit(&gw->metrics.sse_refused, 1,
	    memory_order_relaxed);
	memset(&st, 0, sizeof(st));
	(void) gw_status_set(&st, 503, NRPC_UNAVAILABLE, "UNAVAILABLE",
	    NULL, "max_sse_streams (%zu) event streams are open; retry later",
	    gw->max_streams);
	gw_render_error(&gw->core, &p->resp, 503, &st, NULL);
	nrpc_status_fini(&st);
	p->kind = GW_PLAN_RESPOND;
	gw_plan_decorate(&gw->core, p);
	return false;
}

/* gw_http_wipe_free frees a copy of a secret after zeroing it. */
static void
gw_http_wipe_free(char *s)
{
	if (s != NULL) {
		memset(s, 0, strlen(s));
		ds_free(s);
	}
}

/* gw_stream_free: nothing refers to s any more. */
static void
gw_stream_free(gw_stream *s)
{
	gw_server *gw = s->gw;

	ds_buf_fini(&s->out);
	ds_free(s->key);
	ds_free(s->prefix);
	ds_free(s->caller);
	gw_http_wipe_free(s->authorization);
	ds_free(s);
	atomic_fetch_sub_explicit(
	    &gw->metrics.sse_streams, 1, memory_order_relaxed);
	pthread_mutex_lock(&gw->mu);
	gw->streams--;
	pthread_cond_broadcast(&gw->cv);
	pthread_mutex_unlock(&gw->mu);
}

/* gw_stream_unref drops one reference under gw->mu (held); true when it
 * was the last: the caller frees s after unlocking. */
static bool
gw_stream_unref(gw_stream *s)
{
	return DS_ALWAYS(s->refs > 0) && --s->refs == 0;
}

/* gw_stream_settle takes a Watch's outcome (resp owned, may be NULL;
 * st borrowed) on any thread: frames it, drops the Watch's reference and
 * resumes the connection. s may be gone when it returns. */
static void
gw_stream_settle(gw_stream *s, ProtobufCMessage *resp, const nrpc_status *st)
{
	gw_server *gw = s->gw;
	struct MHD_Connection *conn;
	ds_buf b;
	gw_sse_next next;
	bool stopping, parked, last;

	pthread_mutex_lock(&gw->mu);
	stopping = gw->stopping;
	pthread_mutex_unlock(&gw->mu);
	ds_buf_init(&b, GW_SSE_MAX_PENDING_BYTES);
	if (stopping && st->code == NRPC_CANCELLED) {
		next = GW_SSE_END; /* gw_stop closed the client: just end */
	} else {
		/* Framed outside the lock: only this callback touches after
		 * while the Watch is in flight. */
		next = gw_sse_step(&gw->core, &b, resp, st, &s->after);
	}
	if (resp != NULL) {
		protobuf_c_message_free_unpacked(resp, NULL);
	}
	pthread_mutex_lock(&gw->mu);
	if (b.len > 0 && ds_buf_append(&s->out, b.ptr, b.len) != DS_OK) {
		next = GW_SSE_END; /* over max pending bytes: a bug guard */
	}
	if (next == GW_SSE_END) {
		s->end = true;
	}
	parked = s->parked;
	s->parked = false;
	conn = s->conn;
	last = gw_stream_unref(s);
	pthread_mutex_unlock(&gw->mu);
	ds_buf_fini(&b);
	if (parked) {
		/* The response's reference is still there: libmicrohttpd
		 * cannot finish a suspended connection. */
		MHD_resume_connection(conn);
		pthread_mutex_lock(&gw->mu);
		if (--gw->suspended == 0) {
			pthread_cond_broadcast(&gw->cv);
		}
		pthread_mutex_unlock(&gw->mu);
	}
	if (last) {
		gw_stream_free(s);
	}
}

static void
gw_stream_done(nrpc_fnptr user_cb, void *user_arg, ProtobufCMessage *resp,
    const nrpc_status *st)
{
	(void) user_cb;
	gw_stream_settle(user_arg, resp, st);
}

/* gw_stream_read is the stream's content reader (the connection's
 * thread): the framed bytes, or, when there are none, a suspend and the
 * next Watch (returning 0 with the connection suspended is how
 * libmicrohttpd waits for content without spinning). */
static ssize_t
gw_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	gw_stream *s = cls;
	gw_server *gw = s->gw;
	Datasync__V1__WatchRequest w = DATASYNC__V1__WATCH_REQUEST__INIT;
	nrpc_call_opts opts;
	nrpc_status st;
	const char *md[2] = {GW_AUTH_METADATA, NULL};
	size_t n;

	(void) pos;
	pthread_mutex_lock(&gw->mu);
	if (s->sent < s->out.len) {
		n = s->out.len - s->sent;
		if (n > max) {
			n = max;
		}
		memcpy(buf, s->out.ptr + s->sent, n);
		s->sent += n;
		if (s->sent == s->out.len) {
			ds_buf_reset(&s->out);
			s->sent = 0;
		}
		pthread_mutex_unlock(&gw->mu);
		return (ssize_t) n;
	}
	if (s->end || gw->stopping) {
		pthread_mutex_unlock(&gw->mu);
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
	/* Counted as active so that gw_stop does not close the client
	 * under the call being started. */
	gw->active++;
	gw->suspended++;
	s->parked = true;
	s->refs++;
	pthread_mutex_unlock(&gw->mu);

	MHD_suspend_connection(s->conn);
	w.key = s->key != NULL ? s->key : (char *) protobuf_c_empty_string;
	w.prefix =
	    s->prefix != NULL ? s->prefix : (char *) protobuf_c_empty_string;
	w.after_revision = s->after;
	w.timeout_ms = gw->heartbeat_ms;
	w.limit = s->limit;
	w.with_values = s->with_values;
	memset(&opts, 0, sizeof(opts));
	opts.timeout_ms = gw_wait_deadline_ms(gw->heartbeat_ms, gw->timeout_ms);
	opts.caller = s->caller;
	if (s->authorization != NULL) {
		md[1] = s->authorization;
		opts.metadata = md;
		opts.n_metadata = 1;
	}
	memset(&st, 0, sizeof(st));
	if (nrpc_client_call_async(gw->client, gw->core.ops[GW_OP_WATCH],
	        &w.base, &opts, gw_stream_done, NULL, s, &st) != NRPC_OK) {
		gw_stream_settle(s, NULL, &st); /* ends the stream */
	}
	nrpc_status_fini(&st);
	pthread_mutex_lock(&gw->mu);
	if (--gw->active == 0) {
		pthread_cond_broadcast(&gw->cv);
	}
	pthread_mutex_unlock(&gw->mu);
	return 0;
}

/* gw_stream_gone is the response's free callback: the connection is done
 * with the stream (ended, or the client went away). */
static void
gw_stream_gone(void *cls)
{
	gw_stream *s = cls;
	gw_server *gw = s->gw;
	bool last;

	pthread_mutex_lock(&gw->mu);
	s->conn = NULL;
	last = gw_stream_unref(s);
	pthread_mutex_unlock(&gw->mu);
	if (last) {
		gw_stream_free(s);
	}
}

static char *
gw_stream_dup(const char *s)
{
	return s != NULL && s[0] != '\0' ? ds_strdup(s) : NULL;
}

/* gw_stream_response turns ex's GW_PLAN_STREAM into the stream and its
 * response (headers added by the caller), or NULL (out of memory). The
 * stream takes ex's slot. */
static struct MHD_Response *
gw_stream_response(gw_exchange *ex)
{
	gw_server *gw = ex->gw;
	const gw_plan *p = &ex->plan;
	const Datasync__V1__WatchRequest *w = &p->m.watch;
	struct MHD_Response *res;
	gw_stream *s;

	if (gw->core.ops[GW_OP_WATCH] == NULL ||
	    (s = ds_calloc(1, sizeof(*s))) == NULL) {
		return NULL;
	}
	s->gw = gw;
	s->conn = ex->conn;
	s->refs = 1;
	s->after = p->stream_after;
	s->limit = w->limit;
	s->with_values = w->with_values;
	ds_buf_init(&s->out, GW_SSE_MAX_PENDING_BYTES);
	if ((w->key[0] != '\0' && (s->key = gw_stream_dup(w->key)) == NULL) ||
	    (w->prefix[0] != '\0' &&
	        (s->prefix = gw_stream_dup(w->prefix)) == NULL) ||
	    (p->caller != NULL && (s->caller = ds_strdup(p->caller)) == NULL) ||
	    (p->authorization != NULL &&
	        (s->authorization = ds_strdup(p->authorization)) == NULL) ||
	    ds_buf_append(&s->out, p->resp.body, p->resp.body_len) != DS_OK) {
		goto fail;
	}
	res = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN,
	    GW_SSE_BLOCK_BYTES, gw_stream_read, s, gw_stream_gone);
	if (res == NULL) {
		goto fail;
	}
	/* The slot is the stream's now; gw_stream_free gives it back. */
	ex->stream_slot = false;
	atomic_fetch_add_explicit(
	    &gw->metrics.sse_streams, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(
	    &gw->metrics.sse_opened, 1, memory_order_relaxed);
	return res;
fail:
	ds_buf_fini(&s->out);
	ds_free(s->key);
	ds_free(s->prefix);
	ds_free(s->caller);
	gw_http_wipe_free(s->authorization);
	ds_free(s);
	return NULL;
}

/* --- answering --- */

/* gw_http_queue sends the plan's response (libmicrohttpd copies it). */
static enum MHD_Result
gw_http_queue(gw_exchange *ex)
{
	gw_server *gw = ex->gw;
	gw_response *r = &ex->plan.resp;
	struct MHD_Response *res;
	enum MHD_Result rv;
	int status;

	gw_response_seal(r);
	status = r->status;
	if (ex->plan.kind == GW_PLAN_STREAM && status == 200) {
		res = gw_stream_response(ex);
		if (res == NULL) {
			status = 500;
		}
	} else {
		res = MHD_create_response_from_buffer(
		    r->body_len, (void *) r->body, MHD_RESPMEM_MUST_COPY);
	}
	for (size_t i = 0; res != NULL && i < r->n_headers; i++) {
		/* libmicrohttpd refuses values with CR or LF; gw_render
		 * never makes one, so a refusal is a bug: a bare 500. */
		if (MHD_add_response_header(
		        res, r->headers[i].name, r->headers[i].value) != MHD_YES) {
			MHD_destroy_response(res);
			res = MHD_create_response_from_buffer(
			    0, NULL, MHD_RESPMEM_PERSISTENT);
			status = 500;
			break;
		}
	}
	/* The body we refused is still in the socket: close after. */
	if (res != NULL && r->close) {
		(void) MHD_add_response_header(res, "Connection", "close");
	}
	if (ex->msg != NULL) {
		protobuf_c_message_free_unpacked(ex->msg, NULL);
		ex->msg = NULL;
	}
	gw_metrics_end(&gw->metrics, ex->plan.route, ex->plan.method,
	    res != NULL ? status : 500, gw_http_now_us() - ex->start_us,
	    r->events);
	ex->ended = true;
	ex->state = GW_EX_SENT;
	if (res == NULL) {
		return MHD_NO; /* not even a response: drop the connection */
	}
	rv = MHD_queue_response(ex->conn, (unsigned) status, res);
	MHD_destroy_response(res);
	return rv;
}

/* gw_http_ready: plan.resp is final (msg, owned, may be NULL: the reply
 * it borrows from); resume the connection, whose handler then queues it.
 * Any thread; ex may be gone when it returns. */
static void
gw_http_ready(gw_exchange *ex, ProtobufCMessage *msg)
{
	gw_server *gw = ex->gw;
	struct MHD_Connection *conn = ex->conn;

	pthread_mutex_lock(&gw->mu);
	ex->msg = msg;
	ex->state = GW_EX_READY;
	pthread_mutex_unlock(&gw->mu);
	MHD_resume_connection(conn);
	pthread_mutex_lock(&gw->mu);
	if (--gw->suspended == 0) {
		pthread_cond_broadcast(&gw->cv);
	}
	pthread_mutex_unlock(&gw->mu);
}

static void gw_http_rpc_done(nrpc_fnptr user_cb, void *user_arg,
    ProtobufCMessage *resp, const nrpc_status *st);

/* gw_http_call starts the plan's RPC; the connection is suspended. The
 * exchange may be gone when it returns. */
static void
gw_http_call(gw_exchange *ex)
{
	gw_server *gw = ex->gw;
	nrpc_status st;
	nrpc_call_opts opts;
	const char *md[2] = {GW_AUTH_METADATA, ex->plan.authorization};

	memset(&st, 0, sizeof(st));
	memset(&opts, 0, sizeof(opts));
	pthread_mutex_lock(&gw->mu);
	if (gw->stopping) {
		pthread_mutex_unlock(&gw->mu);
		nrpc_status_set(&st, NRPC_UNAVAILABLE, "UNAVAILABLE", NULL,
		    "the gateway is shutting down");
		gw_plan_fail(&gw->core, &ex->plan, &st);
		nrpc_status_fini(&st);
		gw_http_ready(ex, NULL);
		return;
	}
	gw->active++;
	pthread_mutex_unlock(&gw->mu);

	/* A Watch or a Lock that waits gets its wait plus a margin. */
	opts.timeout_ms = gw_plan_deadline_ms(&ex->plan, gw->timeout_ms);
	opts.request_id = ex->plan.call_request_id;
	opts.caller = ex->plan.caller;
	if (ex->plan.authorization != NULL) {
		/* Forwarded as sent: datasyncd decides (DESIGN §11). */
		opts.metadata = md;
		opts.n_metadata = 1;
	}
	if (nrpc_client_call_async(gw->client, ex->plan.rpc, ex->plan.req,
	        &opts, gw_http_rpc_done, NULL, ex, &st) != NRPC_OK) {
		gw_plan_fail(&gw->core, &ex->plan, &st);
		gw_http_ready(ex, NULL);
	}
	nrpc_status_fini(&st);

	pthread_mutex_lock(&gw->mu);
	if (--gw->active == 0) {
		pthread_cond_broadcast(&gw->cv);
	}
	pthread_mutex_unlock(&gw->mu);
}

static void
gw_http_rpc_done(nrpc_fnptr user_cb, void *user_arg, ProtobufCMessage *resp,
    const nrpc_status *st)
{
	gw_exchange *ex = user_arg;
	gw_server *gw = ex->gw;
	bool stopping;
	nrpc_status down;

	(void) user_cb;
	pthread_mutex_lock(&gw->mu);
	stopping = gw->stopping;
	pthread_mutex_unlock(&gw->mu);
	if (stopping && st->code == NRPC_CANCELLED) {
		/* gw_stop closed the client under this call: the client
		 * gets 503 (retry elsewhere), not the CANCELLED of a
		 * client that went away. */
		memset(&down, 0, sizeof(down));
		nrpc_status_set(&down, NRPC_UNAVAILABLE, "UNAVAILABLE", NULL,
		    "the gateway is shutting down");
		gw_plan_fail(&gw->core, &ex->plan, &down);
		nrpc_status_fini(&down);
		if (resp != NULL) {
			protobuf_c_message_free_unpacked(resp, NULL);
		}
		gw_http_ready(ex, NULL);
		return;
	}
	if (gw_plan_step(&ex->gw->core, &ex->plan, resp, st) == GW_PLAN_RPC) {
		if (resp != NULL) {
			protobuf_c_message_free_unpacked(resp, NULL);
		}
		gw_http_call(ex);
		return;
	}
	gw_http_ready(ex, resp);
}

/* gw_http_advance runs the plan made from the whole request, on the
 * connection's thread. */
static enum MHD_Result
gw_http_advance(gw_exchange *ex)
{
	gw_server *gw = ex->gw;

	if (ex->plan.kind == GW_PLAN_RPC && ex->plan.stream &&
	    !gw_stream_reserve(ex)) {
		return gw_http_queue(ex); /* 503: max_sse_streams */
	}
	switch (ex->plan.kind) {
	case GW_PLAN_RPC:
		pthread_mutex_lock(&gw->mu);
		ex->state = GW_EX_WAIT;
		gw->suspended++;
		pthread_mutex_unlock(&gw->mu);
		MHD_suspend_connection(ex->conn);
		gw_http_call(ex); /* resumes, now or from the callback */
		return MHD_YES;
	case GW_PLAN_STATIC:
		gw_static_respond(gw->web_root, gw->js_path,
		    ex->plan.static_rel, &ex->plan.resp);
		gw_plan_decorate(&gw->core, &ex->plan);
		break;
	case GW_PLAN_RESPOND:
	case GW_PLAN_STREAM: /* only gw_plan_step makes one */
		break;
	}
	return gw_http_queue(ex);
}

/* gw_http_budget_refuse answers a body that does not fit the budget: 503
 * with Retry-After, before reading it, and closes. */
static void
gw_http_budget_refuse(gw_exchange *ex, size_t len, size_t used)
{
	gw_server *gw = ex->gw;
	gw_plan *p = &ex->plan;
	const char *origin = gw_request_header(&ex->req, "Origin");
	gw_target t;
	nrpc_status st;

	memset(&st, 0, sizeof(st));
	if (gw_target_parse(ex->req.uri, &t, &st) != 0) {
		t.route = GW_ROUTE_OTHER;
	}
	nrpc_status_fini(&st);
	p->kind = GW_PLAN_RESPOND;
	p->route = t.route;
	p->method = gw_method_parse(ex->req.method);
	p->head = p->method == GW_M_HEAD;
	p->cors = gw_cors_check(&gw->core, origin);
	if (p->cors == GW_CORS_ALLOWED &&
	    (p->origin = ds_strdup(origin)) == NULL) {
		p->resp.broken = true; /* sealed into a 500 */
	}
	(void) gw_status_set(&st, 503, NRPC_UNAVAILABLE, "UNAVAILABLE", NULL,
	    "request body of %zu bytes does not fit body_budget (%zu bytes, "
	    "%zu held by requests in progress); retry later",
	    len, gw->budget, used);
	gw_render_error(&gw->core, &p->resp, 503, &st, NULL);
	p->resp.close = true;
	gw_plan_decorate(&gw->core, p);
	nrpc_status_fini(&st);
}

/* gw_http_headers: the first call of a request, headers complete. */
static enum MHD_Result
gw_http_headers(gw_exchange *ex, const char *method)
{
	gw_server *gw = ex->gw;
	size_t len = 0, used;
	bool fits;

	gw_metrics_begin(&gw->metrics);
	ex->begun = true;
	if (gw_http_request(ex, method) != 0) {
		gw_metrics_end(
		    &gw->metrics, GW_ROUTE_OTHER, GW_M_OTHER, 500, 0, 0);
		ex->ended = true;
		return MHD_NO;
	}
	if (!gw_plan_precheck(&gw->core, &ex->req, &len, &ex->plan)) {
		return gw_http_queue(ex); /* body unread, Connection: close */
	}
	if (len == 0) {
		/* Answered from the next call: a response queued from this
		 * first one makes libmicrohttpd close the connection. */
		ex->state = GW_EX_BODY;
		return MHD_YES;
	}
	pthread_mutex_lock(&gw->mu);
	used = gw->budget_used;
	fits = len <= gw->budget - used;
	if (fits) {
		gw->budget_used += len;
		ex->reserved = len;
	}
	pthread_mutex_unlock(&gw->mu);
	if (!fits) {
		gw_http_budget_refuse(ex, len, used);
		return gw_http_queue(ex);
	}
	ex->declared = len;
	ex->body_deadline_us =
	    gw_http_now_us() + (int64_t) GW_BODY_READ_TIMEOUT_MS * 1000;
	ex->state = GW_EX_BODY;
	return MHD_YES; /* libmicrohttpd sends 100 Continue if asked */
}

/* gw_http_body_piece appends n bytes; the buffer grows with what arrived,
 * at most to the declared length (the limit checked before reading). */
static enum MHD_Result
gw_http_body_piece(gw_exchange *ex, const char *data, size_t n)
{
	size_t want;
	uint8_t *nb;

	if (n > ex->declared - ex->body_len ||
	    gw_http_now_us() > ex->body_deadline_us) {
		return MHD_NO; /* more than announced, or too slow: close */
	}
	if (ex->body_len + n > ex->body_cap) {
		want = ex->body_cap < 4096 ? 4096 : ex->body_cap * 2;
		if (want < ex->body_len + n) {
			want = ex->body_len + n;
		}
		if (want > ex->declared) {
			want = ex->declared;
		}
		if ((nb = ds_realloc(ex->body, want)) == NULL) {
			return MHD_NO;
		}
		ex->body = nb;
		ex->body_cap = want;
	}
	memcpy(ex->body + ex->body_len, data, n);
	ex->body_len += n;
	return MHD_YES;
}

/* gw_http_handle is libmicrohttpd's access handler for every request. */
static enum MHD_Result
gw_http_handle(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	gw_server *gw = cls;
	gw_exchange *ex = *con_cls;
	gw_ex_state state;

	(void) url; /* decoded by libmicrohttpd: ex->uri is the raw one */
	(void) version;
	if (ex == NULL) {
		return MHD_NO; /* the URI callback ran out of memory */
	}
	pthread_mutex_lock(&gw->mu);
	state = ex->state;
	pthread_mutex_unlock(&gw->mu);
	switch (state) {
	case GW_EX_HEAD:
		return gw_http_headers(ex, method);
	case GW_EX_BODY:
		if (*upload_data_size > 0) {
			size_t n = *upload_data_size;

			*upload_data_size = 0;
			return gw_http_body_piece(ex, upload_data, n);
		}
		if (ex->body_len != ex->declared) {
			return MHD_NO; /* cannot happen with Content-Length */
		}
		ex->req.body = ex->body;
		ex->req.body_len = ex->body_len;
		gw_plan_make(&gw->core, &ex->req, &ex->plan);
		return gw_http_advance(ex);
	case GW_EX_WAIT:
		/* Only a resume calls again, after gw_http_ready. */
		*upload_data_size = 0;
		return MHD_YES;
	case GW_EX_READY:
		return gw_http_queue(ex);
	case GW_EX_SENT:
		break;
	}
	*upload_data_size = 0;
	return MHD_YES;
}

static void
gw_http_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	(void) cls;
	(void) vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) {
		msg[--n] = '\0';
	}
	ds_log(DS_LOG_DEBUG, "gateway", "libmicrohttpd: %s", msg);
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
	if ((cfg->tls_cert_file == NULL) != (cfg->tls_key_file == NULL)) {
		return gw_status_set(st, -1, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT",
		    cfg->tls_cert_file == NULL ? "tls_cert_file" : "tls_key_file",
		    "HTTPS needs both tls_cert_file and tls_key_file");
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

/* gw_start_limits checks the connection limits and the body budget. */
static int
gw_start_limits(const gw_config *cfg, nrpc_status *st)
{
	if (cfg->max_connections > GW_MAX_CONNECTIONS_HARD) {
		return gw_status_set(st, -1, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", "max_connections",
		    "max_connections: at most %d", GW_MAX_CONNECTIONS_HARD);
	}
	if (cfg->max_per_ip > GW_MAX_PER_IP_HARD) {
		return gw_status_set(st, -1, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", "max_per_ip", "max_per_ip: at most %d",
		    GW_MAX_PER_IP_HARD);
	}
	if (cfg->timeout_s > GW_TIMEOUT_S_HARD) {
		return gw_status_set(st, -1, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", "timeout_s",
		    "timeout_s: 0 (default) .. %d", GW_TIMEOUT_S_HARD);
	}
	if (cfg->body_budget > GW_BODY_BUDGET_HARD) {
		return gw_status_set(st, -1, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", "body_budget",
		    "body_budget: at most %zu bytes", GW_BODY_BUDGET_HARD);
	}
	if (cfg->max_sse_streams > GW_SSE_MAX_STREAMS_HARD) {
		return gw_status_set(st, -1, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", "max_sse_streams",
		    "max_sse_streams: at most %d", GW_SSE_MAX_STREAMS_HARD);
	}
	if (cfg->sse_heartbeat_ms != 0 &&
	    (cfg->sse_heartbeat_ms < GW_SSE_HEARTBEAT_MS_MIN ||
	        cfg->sse_heartbeat_ms > GW_SSE_HEARTBEAT_MS_MAX)) {
		return gw_status_set(st, -1, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", "sse_heartbeat_ms",
		    "sse_heartbeat_ms: 0 (default) or %d .. %d",
		    GW_SSE_HEARTBEAT_MS_MIN, GW_SSE_HEARTBEAT_MS_MAX);
	}
	return 0;
}

/* gw_start_addr resolves "HOST:PORT" ("[v6]:PORT" too) into *ss. */
static int
gw_start_addr(const char *hostport, struct sockaddr_storage *ss,
    socklen_t *sslen, nrpc_status *st)
{
	char host[260];
	const char *colon = strrchr(hostport, ':');
	struct addrinfo hints, *ai = NULL;
	size_t hl;
	int rv;

	if (strlen(hostport) > 256 || colon == NULL || colon[1] == '\0') {
		return gw_status_set(st, -1, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", "http",
		    "http: '%.256s' is not HOST:PORT", hostport);
	}
	hl = (size_t) (colon - hostport);
	memcpy(host, hostport, hl);
	host[hl] = '\0';
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rv = getaddrinfo(host[0] != '\0' ? host : NULL, colon + 1, &hints,
	         &ai)) != 0) {
		return gw_status_set(st, -1, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", "http",
		    "http: '%.256s' is not HOST:PORT (%s)", hostport,
		    gai_strerror(rv));
	}
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*sslen = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

/* gw_read_pem reads a PEM file for HTTPS into b (NUL-terminated, as
 * libmicrohttpd wants it). */
static int
gw_read_pem(ds_buf *b, const char *field, const char *path, nrpc_status *st)
{
	ds_err rv;

	ds_buf_init(b, GW_TLS_FILE_MAX);
	if ((rv = ds_buf_read_file(b, path)) == DS_OK && b->len > 0) {
		return 0;
	}
	return gw_status_set(st, -1, NRPC_INVALID_ARGUMENT, "TLS_FILE", field,
	    "cannot read %s %.256s: %s", field, path,
	    rv == DS_EIO ? strerror(errno)
	    : rv == DS_OK ? "it is empty"
	    : rv == DS_ETOOLARGE ? "larger than a certificate or key can be"
	                         : "out of memory");
}

static int
gw_start_http(gw_server *gw, const gw_config *cfg, nrpc_status *st)
{
	struct sockaddr_storage ss;
	socklen_t sslen = 0;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned threads, conns, per_ip, timeout_s;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	                 MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	const union MHD_DaemonInfo *di;
	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);

	if (gw_start_addr(cfg->http, &ss, &sslen, st) != 0) {
		return -1;
	}
	if (ss.ss_family == AF_INET6) {
		flags |= MHD_USE_IPv6;
	}
	threads = ncpu < 1 ? 1
	          : ncpu > GW_MAX_HTTP_THREADS ? GW_MAX_HTTP_THREADS
	                                       : (unsigned) ncpu;
	conns = cfg->max_connections != 0 ? cfg->max_connections
	                                   : GW_MAX_CONNECTIONS_DEFAULT;
	per_ip = cfg->max_per_ip != 0 ? cfg->max_per_ip : GW_MAX_PER_IP_DEFAULT;
	timeout_s =
	    cfg->timeout_s != 0 ? cfg->timeout_s : GW_TIMEOUT_S_DEFAULT;
	if (threads > conns) {
		threads = conns; /* each worker gets a share of the cap */
	}
	if (gw->core.tls) {
		if (gw_read_pem(&gw->tls_cert, "tls_cert_file",
		        cfg->tls_cert_file, st) != 0 ||
		    gw_read_pem(&gw->tls_key, "tls_key_file", cfg->tls_key_file,
		        st) != 0) {
			return -1;
		}
		flags |= MHD_USE_TLS;
	}
	/* Without TLS the first MHD_OPTION_END ends the list: the HTTPS
	 * options after it are not read. */
	gw->mhd = MHD_start_daemon(flags, 0, NULL, NULL, gw_http_handle, gw,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &ss,
	    MHD_OPTION_THREAD_POOL_SIZE, threads,
	    MHD_OPTION_CONNECTION_LIMIT, conns,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip,
	    MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) GW_CONN_MEMORY_BYTES,
	    MHD_OPTION_URI_LOG_CALLBACK, gw_http_uri, gw,
	    MHD_OPTION_NOTIFY_COMPLETED, gw_http_completed, gw,
	    MHD_OPTION_EXTERNAL_LOGGER, gw_http_log, gw,
	    gw->core.tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END,
	    (const char *) gw->tls_cert.ptr,
	    MHD_OPTION_HTTPS_MEM_KEY, (const char *) gw->tls_key.ptr,
	    MHD_OPTION_END);
	if (gw->mhd == NULL) {
		if (gw->core.tls) {
			/* libmicrohttpd says which in its log (gw_http_log). */
			return gw_status_set(st, -1, NRPC_INVALID_ARGUMENT,
			    "TLS_FILE", "tls_cert_file", "cannot serve HTTPS on "
			    "%.256s with tls_cert_file %.200s and tls_key_file "
			    "%.200s (not a PEM certificate and its key, or the "
			    "address is taken: %s)", cfg->http, cfg->tls_cert_file,
			    cfg->tls_key_file,
			    errno != 0 ? strerror(errno) : "see the log");
		}
		return gw_status_set(st, -1, NRPC_UNAVAILABLE, "UNAVAILABLE",
		    "http", "cannot listen on http://%.256s: %s", cfg->http,
		    errno != 0 ? strerror(errno) : "libmicrohttpd failed");
	}
	di = MHD_get_daemon_info(gw->mhd, MHD_DAEMON_INFO_LISTEN_FD);
	if (di != NULL &&
	    getsockname(di->listen_fd, (struct sockaddr *) &bound, &blen) ==
	        0) {
		if (bound.ss_family == AF_INET) {
			gw->port = ntohs(((struct sockaddr_in *) &bound)->sin_port);
		} else if (bound.ss_family == AF_INET6) {
			gw->port =
			    ntohs(((struct sockaddr_in6 *) &bound)->sin6_port);
		}
	}
	ds_log(DS_LOG_DEBUG, "gateway",
	    "libmicrohttpd: %u threads, max_connections %u, max_per_ip %u, "
	    "timeout %u s, body_budget %zu",
	    threads, conns, per_ip, timeout_s, gw->budget);
	return 0;
}

static void gw_free(gw_server *gw);

int
gw_start(const gw_config *cfg, gw_server **out, nrpc_status *st)
{
	gw_server *gw;
	nrpc_client_config ccfg;

	nrpc_status_fini(st);
	if (gw_start_check(cfg, st) != 0 || gw_start_limits(cfg, st) != 0) {
		return st->code;
	}
	if ((gw = ds_calloc(1, sizeof(*gw))) == NULL) {
		nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED,
		    "RESOURCE_EXHAUSTED", NULL, "out of memory");
		return st->code;
	}
	pthread_mutex_init(&gw->mu, NULL);
	pthread_cond_init(&gw->cv, NULL);
	gw->timeout_ms = cfg->rpc_timeout_ms != 0 ? cfg->rpc_timeout_ms
	                                          : GW_RPC_TIMEOUT_DEFAULT_MS;
	gw->max_streams = cfg->max_sse_streams != 0 ? cfg->max_sse_streams
	                                            : GW_SSE_MAX_STREAMS_DEFAULT;
	gw->heartbeat_ms = cfg->sse_heartbeat_ms != 0
	                       ? (uint32_t) cfg->sse_heartbeat_ms
	                       : GW_SSE_HEARTBEAT_MS_DEFAULT;
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
	gw->core.tls = cfg->tls_cert_file != NULL;
	if ((gw->limiter = auth_limiter_new(NULL)) == NULL) {
		nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED,
		    "RESOURCE_EXHAUSTED", NULL, "out of memory");
		goto fail;
	}
	gw->core.limiter = gw->limiter;
	/* The budget must admit the largest body one request may send
	 * (/rpc/'s), or that request could never be served. */
	if (cfg->body_budget != 0) {
		gw->budget = cfg->body_budget;
		if (gw->budget < gw->core.max_rpc_body_bytes) {
			(void) gw_status_set(st, -1, NRPC_INVALID_ARGUMENT,
			    "INVALID_ARGUMENT", "body_budget",
			    "body_budget (%zu) is below the largest request "
			    "body, max_rpc_body_bytes (%zu)",
			    gw->budget, gw->core.max_rpc_body_bytes);
			goto fail;
		}
	} else {
		gw->budget = GW_BODY_BUDGET_DEFAULT;
		if (gw->budget < gw->core.max_rpc_body_bytes) {
			gw->budget = gw->core.max_rpc_body_bytes;
		}
	}

	nrpc_client_config_default(&ccfg);
	{
		unsigned conns = cfg->max_connections != 0 ? cfg->max_connections
		                                           : GW_MAX_CONNECTIONS_DEFAULT;
		size_t pipes = conns / GW_UPSTREAM_CALLS_PER_PIPE + 1;

		if (pipes > GW_UPSTREAM_PIPES_MAX) {
			pipes = GW_UPSTREAM_PIPES_MAX;
		}
		/* Each upstream dialled `pipes` times: nng's REQ spreads the
		 * calls over the connections (GW_UPSTREAM_CALLS_PER_PIPE). */
		if ((gw->dial = ds_calloc(cfg->n_upstreams * pipes,
		         sizeof(*gw->dial))) == NULL) {
			(void) gw_status_set(st, -1, NRPC_RESOURCE_EXHAUSTED,
			    "RESOURCE_EXHAUSTED", NULL, "out of memory");
			goto fail;
		}
		for (size_t i = 0; i < cfg->n_upstreams * pipes; i++) {
			gw->dial[i] = cfg->upstreams[i % cfg->n_upstreams];
		}
		ccfg.urls = gw->dial;
		ccfg.n_urls = cfg->n_upstreams * pipes;
	}
	ccfg.timeout_ms = gw->timeout_ms;
	/* Above every waiting call's deadline: a parked Watch or Lock is
	 * not sent a second time while the first still waits. */
	ccfg.resend_ms = GW_RPC_RESEND_MS;
	ccfg.client_name = "datasync-gateway";
	ccfg.tls_ca_file = cfg->upstream_tls_ca_file;
	ccfg.tls_cert_file = cfg->upstream_tls_cert_file;
	ccfg.tls_key_file = cfg->upstream_tls_key_file;
	/* Replies carry values as large as requests (plus a record). */
	ccfg.max_message_bytes = gw->core.max_value_bytes + 64 * 1024;
	if (nrpc_client_open(&ccfg, &gw->client, st) != NRPC_OK) {
		goto fail;
	}
	if (gw_start_http(gw, cfg, st) != 0) {
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

/* gw_free: no RPC is being started (gw_stop). Every call in flight ends
 * (closing the client runs its callback, which resumes its connection),
 * then the daemon closes every connection and completes its exchange. */
static void
gw_free(gw_server *gw)
{
	nrpc_client_close(gw->client);
	pthread_mutex_lock(&gw->mu);
	while (gw->suspended > 0) {
		pthread_cond_wait(&gw->cv, &gw->mu);
	}
	pthread_mutex_unlock(&gw->mu);
	if (gw->mhd != NULL) {
		MHD_stop_daemon(gw->mhd);
		gw->mhd = NULL;
	}
	pthread_mutex_lock(&gw->mu);
	while (gw->live > 0 || gw->streams > 0) {
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
	ds_free(gw->dial);
	auth_limiter_free(gw->limiter);
	if (gw->tls_key.ptr != NULL) {
		memset(gw->tls_key.ptr, 0, gw->tls_key.len);
	}
	ds_buf_fini(&gw->tls_key);
	ds_buf_fini(&gw->tls_cert);
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
