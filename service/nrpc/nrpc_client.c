/*
 * nrpc_client.c - the RPC client: one REQ socket, a context per call.
 *
 * A call is an nng context and an aio (an nrpc_cli_call) taken from a free list
 * and driven by one callback through two operations: send the envelope,
 * then receive the reply. Both carry the call's remaining time as the aio
 * timeout, so the deadline covers waiting for a connection too. The
 * callback decodes the reply and runs the caller's completion; the
 * blocking call is the same machinery plus a condition variable.
 *
 * nrpc_cli_calls are never freed while the client lives: an aio cannot be
 * freed from its own callback, which is where a call ends. The free list
 * therefore grows to the peak number of concurrent calls and is freed by
 * nrpc_client_close.
 *
 * nrpc_client_close refuses new calls, gives the ones in flight
 * NRPC_CLIENT_CLOSE_DRAIN_MS to end by themselves, cancels the rest and
 * closes every context before it closes the socket, then waits for the
 * count of calls in flight to reach zero. A call is counted from before
 * its first nng operation until after its completion has returned, so
 * close never frees what a callback still uses. Why not just nng_close:
 * closing the socket closes its pipes one by one, and nng 1.5.2's REQ
 * then resends every request still held by a context on the pipes left
 * (an in-flight call, or one whose deadline passed as its send completed)
 * while the server may answer into a pipe already closing. nng 1.5.2
 * loses such a message (nng #1713, fixed in 1.7): the leaks that
 * tests/integration/nng_*.supp name. A context closed first holds
 * nothing to resend.
 *
 * nng 1.5.2's nng_close() does not wait for a thread that is still inside
 * nng_ctx_send/nng_ctx_recv/nng_ctx_open on the socket (a completion can
 * run on another thread before that call returns, and its owner may close
 * the client at once): the context is then finalised after the socket, a
 * use-after-free inside nng. Every such call is bracketed by
 * nrpc_nng_enter/leave (nrpc_int.h), and close refuses new entries and
 * waits for the threads inside to leave before it closes the socket.
 */
#include <time.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "ds_alloc.h"
#include "ds_log.h"
#include "ds_text.h"
#include "nrpc_int.h"
#include "nrpc_tls.h"

/* Length of a generated request id: 16 hex digits of random prefix and 16
 * of counter. */
#define NRPC_CLI_REQUEST_ID_LEN 32

/* nrpc_cli_wait: a blocking caller waiting for its call. */
typedef struct nrpc_cli_wait {
	pthread_mutex_t mtx;
	pthread_cond_t cv;
	bool done;              /* guarded by mtx */
	ProtobufCMessage *resp; /* owned, handed to the caller */
	nrpc_status st;         /* detail owned, handed to the caller */
} nrpc_cli_wait;

typedef struct nrpc_cli_call nrpc_cli_call;
struct nrpc_cli_call {
	nrpc_client *c;
	nrpc_cli_call *next;     /* free list link */
	nrpc_cli_call *all_next; /* every call of the client (c->all) */
	nng_ctx ctx;
	nng_aio *aio;            /* owned */
	bool sending;            /* phase of the operation on aio */
	nng_duration resend_ms;  /* NNG_OPT_REQ_RESENDTIME set on ctx */
	const nrpc_method *m;
	int64_t deadline_ms;     /* monotonic; INT64_MAX = none */
	nrpc_done_fn done;       /* async completion, or NULL ... */
	nrpc_fnptr user_cb;
	void *user_arg;
	nrpc_cli_wait *wait;     /* ... the blocking caller */
};

struct nrpc_client {
	nng_socket sock;
	int64_t timeout_ms;     /* default per-call deadline */
	nng_duration resend_ms; /* the socket's NNG_OPT_REQ_RESENDTIME, which
	                         * a new context inherits */
	size_t max_msg;
	char *client_name;      /* owned, or NULL */
	char *authorization;    /* owned, or NULL: default metadata */
	char id_prefix[17];     /* 16 hex digits, random per client */
	atomic_uint_fast64_t id_seq;
	const ds_clock *clock;  /* monotonic */

	pthread_mutex_t mtx;    /* guards free, all, n_inflight */
	pthread_cond_t cv;      /* close waits for n_inflight == 0 */
	nrpc_cli_call *free;
	nrpc_cli_call *all;     /* every call ever made, idle or not */
	size_t n_inflight;
	atomic_bool closing;    /* set once by close; read anywhere */
	atomic_uint n_nng;      /* threads inside nng_ctx_* calls */
};

/* nrpc_cli_in_callback is true on a thread while it runs an nrpc client
 * completion: a blocking call there could wait for a reply that needs
 * the very thread it blocks. */
static _Thread_local bool nrpc_cli_in_callback;

/* --- configuration --- */

void
nrpc_client_config_default(nrpc_client_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->timeout_ms = NRPC_TIMEOUT_DEFAULT_MS;
	cfg->max_message_bytes = NRPC_MAX_MESSAGE_BYTES_DEFAULT;
}

static nrpc_code
nrpc_cli_bad(nrpc_status *st, const char *reason, const char *field,
    const char *msg)
{
	nrpc_status_set(st, NRPC_INVALID_ARGUMENT, reason, field, "%s", msg);
	return NRPC_INVALID_ARGUMENT;
}

static void
nrpc_cli_free(nrpc_client *c)
{
	nrpc_cli_call *cc;

	while ((cc = c->all) != NULL) {
		c->all = cc->all_next;
		/* nng_aio_free waits for a callback that is still returning. */
		nng_aio_free(cc->aio);
		ds_free(cc);
	}
	ds_free(c->client_name);
	if (c->authorization != NULL) {
		/* a credential: not left behind in freed memory */
		memset(c->authorization, 0, strlen(c->authorization));
		ds_free(c->authorization);
	}
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mtx);
	ds_free(c);
}

/* nrpc_cli_dial_tls dials a tls+tcp:// url with a configuration that
 * trusts cfg's CA and expects a certificate for the URL's host. */
static nrpc_code
nrpc_cli_dial_tls(nrpc_client *c, const nrpc_client_config *cfg,
    const char *url, nrpc_status *st)
{
	char host[256];
	nng_tls_config *tls = NULL;
	nng_dialer d;
	int rv;

	if (!nrpc_url_host(url, host, sizeof(host))) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "INVALID_URL", "urls",
		    "cannot read the host of %s", url);
		return st->code;
	}
	if (nrpc_tls_client(cfg->tls_ca_file, cfg->tls_cert_file,
	        cfg->tls_key_file, host, &tls, st) != NRPC_OK) {
		return st->code;
	}
	/* One blocking attempt first, even for a background dialer: a
	 * certificate that is not trusted will not become trusted by
	 * retrying, and the caller deserves to hear why at once rather than
	 * a deadline later. Any other failure (nobody listening yet) leaves
	 * a background dialer that keeps trying, as for tcp://. */
	for (int attempt = 0; attempt < 2; attempt++) {
		bool block = cfg->dial_blocking || attempt == 0;

		if ((rv = nng_dialer_create(&d, c->sock, url)) != 0) {
			break;
		}
		/* The dialer holds its own reference to tls. */
		if ((rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tls)) ==
		        0) {
			rv = nng_dialer_start(d, block ? 0 : NNG_FLAG_NONBLOCK);
		}
		if (rv == 0) {
			break;
		}
		(void) nng_dialer_close(d);
		if (cfg->dial_blocking || rv == NNG_EPEERAUTH ||
		    rv == NNG_ECRYPTO || rv == NNG_EADDRINVAL ||
		    rv == NNG_EINVAL || rv == NNG_ENOTSUP) {
			break;
		}
	}
	nng_tls_config_free(tls);
	return rv == 0 ? NRPC_OK : nrpc_tls_dial_error(url, rv, st);
}

int
nrpc_client_open(const nrpc_client_config *cfg, nrpc_client **out,
    nrpc_status *st)
{
	nrpc_client *c;
	uint8_t rnd[8];
	nrpc_code rc;
	int rv;

	if (cfg == NULL || out == NULL) {
		return nrpc_cli_bad(st, "INVALID_ARGUMENT", NULL,
		    "nrpc_client_open: NULL argument");
	}
	if (cfg->n_urls == 0 || cfg->urls == NULL) {
		return nrpc_cli_bad(st, "INVALID_ARGUMENT", "urls",
		    "urls: at least one URL is required");
	}
	if (cfg->timeout_ms < 0 || cfg->resend_ms < 0) {
		return nrpc_cli_bad(st, "INVALID_ARGUMENT",
		    cfg->timeout_ms < 0 ? "timeout_ms" : "resend_ms",
		    "timeout_ms and resend_ms must not be negative");
	}
	if (cfg->timeout_ms > INT32_MAX || cfg->resend_ms > INT32_MAX) {
		return nrpc_cli_bad(st, "INVALID_ARGUMENT",
		    cfg->timeout_ms > INT32_MAX ? "timeout_ms" : "resend_ms",
		    "timeout_ms and resend_ms must fit nng's 31-bit durations");
	}
	if (cfg->max_message_bytes > NRPC_MAX_MESSAGE_BYTES_HARD) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    "max_message_bytes", "max_message_bytes (%zu) exceeds its "
		    "hard maximum (%d)", cfg->max_message_bytes,
		    NRPC_MAX_MESSAGE_BYTES_HARD);
		return NRPC_INVALID_ARGUMENT;
	}
	if (cfg->client_name != NULL &&
	    (strlen(cfg->client_name) > NRPC_MAX_CLIENT_NAME_BYTES ||
	    !ds_utf8_valid((const uint8_t *) cfg->client_name,
	    strlen(cfg->client_name)))) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    "client_name", "client_name must be UTF-8 of at most "
		    "max_client_name_bytes (%d)", NRPC_MAX_CLIENT_NAME_BYTES);
		return NRPC_INVALID_ARGUMENT;
	}
	if (cfg->authorization != NULL &&
	    strlen(cfg->authorization) > NRPC_MAX_METADATA_BYTES) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    "authorization", "authorization exceeds max_metadata_bytes "
		    "(%d)", NRPC_MAX_METADATA_BYTES);
		return NRPC_INVALID_ARGUMENT;
	}
	for (size_t i = 0; i < cfg->n_urls; i++) {
		if (cfg->urls[i] == NULL) {
			return nrpc_cli_bad(st, "INVALID_ARGUMENT", "urls",
			    "urls: NULL entry");
		}
	}
	if (ds_random_bytes(rnd, sizeof(rnd)) != DS_OK) {
		nrpc_status_set(st, NRPC_INTERNAL, "INTERNAL", NULL,
		    "cannot read random bytes for request ids");
		return NRPC_INTERNAL;
	}
	if ((c = ds_calloc(1, sizeof(*c))) == NULL) {
		goto oom;
	}
	if ((cfg->client_name != NULL &&
	        (c->client_name = ds_strdup(cfg->client_name)) == NULL) ||
	    (cfg->authorization != NULL &&
	        (c->authorization = ds_strdup(cfg->authorization)) == NULL)) {
		ds_free(c->client_name);
		ds_free(c);
		goto oom;
	}
	pthread_mutex_init(&c->mtx, NULL);
	pthread_cond_init(&c->cv, NULL);
	ds_hex_encode(rnd, sizeof(rnd), c->id_prefix);
	c->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms :
	    NRPC_TIMEOUT_DEFAULT_MS;
	c->max_msg = cfg->max_message_bytes > 0 ? cfg->max_message_bytes :
	    NRPC_MAX_MESSAGE_BYTES_DEFAULT;
	c->clock = ds_clock_monotonic();

	if ((rv = nng_req0_open(&c->sock)) != 0) {
		nrpc_status_set(st, rv == NNG_ENOMEM ? NRPC_RESOURCE_EXHAUSTED :
		    NRPC_INTERNAL, "INTERNAL", NULL, "cannot open REQ socket: %s",
		    nng_strerror(rv));
		rc = rv == NNG_ENOMEM ? NRPC_RESOURCE_EXHAUSTED : NRPC_INTERNAL;
		nrpc_cli_free(c);
		return rc;
	}
	if ((rv = nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ,
	    c->max_msg + NRPC_RECVMAXSZ_SLACK)) != 0 ||
	    (cfg->resend_ms > 0 && (rv = nng_socket_set_ms(c->sock,
	    NNG_OPT_REQ_RESENDTIME, (nng_duration) cfg->resend_ms)) != 0)) {
		nrpc_status_set(st, NRPC_INTERNAL, "INTERNAL", NULL,
		    "cannot configure REQ socket: %s", nng_strerror(rv));
		(void) nng_close(c->sock); /* fresh socket: cannot fail */
		nrpc_cli_free(c);
		return NRPC_INTERNAL;
	}
	/* nng's default (60 s) when resend_ms is 0: ask rather than assume. */
	if ((rv = nng_socket_get_ms(c->sock, NNG_OPT_REQ_RESENDTIME,
	    &c->resend_ms)) != 0) {
		nrpc_status_set(st, NRPC_INTERNAL, "INTERNAL", NULL,
		    "cannot read the REQ resend time: %s", nng_strerror(rv));
		(void) nng_close(c->sock);
		nrpc_cli_free(c);
		return NRPC_INTERNAL;
	}
	for (size_t i = 0; i < cfg->n_urls; i++) {
		if (nrpc_url_is_tls(cfg->urls[i])) {
			if ((rc = nrpc_cli_dial_tls(c, cfg, cfg->urls[i], st)) !=
			    NRPC_OK) {
				(void) nng_close(c->sock);
				nrpc_cli_free(c);
				return rc;
			}
			continue;
		}
		rv = nng_dial(c->sock, cfg->urls[i], NULL,
		    cfg->dial_blocking ? 0 : NNG_FLAG_NONBLOCK);
		if (rv != 0) {
			rc = nrpc_tls_dial_error(cfg->urls[i], rv, st);
			(void) nng_close(c->sock); /* ours; cannot fail */
			nrpc_cli_free(c);
			return rc;
		}
	}
	*out = c;
	return NRPC_OK;
oom:
	nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED, "OUT_OF_MEMORY", NULL,
	    "out of memory opening the client");
	return NRPC_RESOURCE_EXHAUSTED;
}

/* nrpc_cli_drained waits up to ms for the calls in flight to end; true
 * when none is left. */
static bool
nrpc_cli_drained(nrpc_client *c, int ms)
{
	struct timespec ts;
	bool drained;

	ds_clock_abstime(CLOCK_REALTIME, ms, &ts);
	pthread_mutex_lock(&c->mtx);
	while (c->n_inflight > 0 &&
	    pthread_cond_timedwait(&c->cv, &c->mtx, &ts) == 0) {
	}
	drained = c->n_inflight == 0;
	pthread_mutex_unlock(&c->mtx);
	return drained;
}

void
nrpc_client_close(nrpc_client *c)
{
	if (c == NULL) {
		return;
	}
	atomic_store(&c->closing, true);
	while (atomic_load(&c->n_nng) > 0) {
		/* nng_ctx_* calls never block: this is a few microseconds. */
		struct timespec ts = {0, 100000};

		(void) nanosleep(&ts, NULL);
	}
	/* From here no call starts an nng operation (the file comment says
	 * why the contexts go before the socket). */
	if (!nrpc_cli_drained(c, NRPC_CLIENT_CLOSE_DRAIN_MS)) {
		nrpc_cli_call *all;

		pthread_mutex_lock(&c->mtx);
		all = c->all;
		pthread_mutex_unlock(&c->mtx);
		/* calls are never freed before close: the list is stable, and
		 * cancelling an aio with nothing pending does nothing */
		for (nrpc_cli_call *cc = all; cc != NULL; cc = cc->all_next) {
			nng_aio_cancel(cc->aio);
		}
		(void) nrpc_cli_drained(c, NRPC_CLIENT_CLOSE_DRAIN_MS);
	}
	pthread_mutex_lock(&c->mtx);
	for (nrpc_cli_call *cc = c->free; cc != NULL; cc = cc->next) {
		(void) nng_ctx_close(cc->ctx); /* idle: drops a held request */
	}
	pthread_mutex_unlock(&c->mtx);
	(void) nng_close(c->sock); /* pending operations end: ECLOSED */
	pthread_mutex_lock(&c->mtx);
	while (c->n_inflight > 0) {
		pthread_cond_wait(&c->cv, &c->mtx);
	}
	pthread_mutex_unlock(&c->mtx);
	nrpc_cli_free(c);
}

/* --- calls --- */

static void nrpc_cli_cb(void *arg);

/* nrpc_cli_release ends a call's use of cc; the last thing a call does. */
static void
nrpc_cli_release(nrpc_client *c, nrpc_cli_call *cc)
{
	pthread_mutex_lock(&c->mtx);
	if (cc != NULL) {
		cc->next = c->free;
		c->free = cc;
	}
	if (--c->n_inflight == 0 && atomic_load(&c->closing)) {
		pthread_cond_broadcast(&c->cv);
	}
	pthread_mutex_unlock(&c->mtx);
}

/* nrpc_cli_acquire counts a new call in flight and returns an
 * nrpc_cli_call for it. */
static nrpc_code
nrpc_cli_acquire(nrpc_client *c, nrpc_cli_call **out, nrpc_status *st)
{
	nrpc_cli_call *cc;
	int rv;

	pthread_mutex_lock(&c->mtx);
	if (atomic_load(&c->closing)) {
		pthread_mutex_unlock(&c->mtx);
		nrpc_status_set(st, NRPC_CANCELLED, "CANCELLED", NULL,
		    "client is closing");
		return NRPC_CANCELLED;
	}
	c->n_inflight++;
	if ((cc = c->free) != NULL) {
		c->free = cc->next;
	}
	pthread_mutex_unlock(&c->mtx);
	if (cc != NULL) {
		*out = cc;
		return NRPC_OK;
	}
	if ((cc = ds_calloc(1, sizeof(*cc))) == NULL) {
		nrpc_cli_release(c, NULL);
		nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED, "OUT_OF_MEMORY",
		    NULL, "out of memory starting a call");
		return NRPC_RESOURCE_EXHAUSTED;
	}
	cc->c = c;
	if ((rv = nng_aio_alloc(&cc->aio, nrpc_cli_cb, cc)) != 0) {
		ds_free(cc);
		nrpc_cli_release(c, NULL);
		nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED, "OUT_OF_MEMORY",
		    NULL, "cannot allocate an aio: %s", nng_strerror(rv));
		return NRPC_RESOURCE_EXHAUSTED;
	}
	if (!nrpc_nng_enter(&c->n_nng, &c->closing)) {
		rv = NNG_ECLOSED;
	} else {
		rv = nng_ctx_open(&cc->ctx, c->sock);
		nrpc_nng_leave(&c->n_nng);
	}
	if (rv != 0) {
		nng_aio_free(cc->aio);
		ds_free(cc);
		nrpc_cli_release(c, NULL);
		if (rv == NNG_ECLOSED) {
			nrpc_status_set(st, NRPC_CANCELLED, "CANCELLED", NULL,
			    "client is closing");
			return NRPC_CANCELLED;
		}
		nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED, "OUT_OF_MEMORY",
		    NULL, "cannot open a context: %s", nng_strerror(rv));
		return NRPC_RESOURCE_EXHAUSTED;
	}
	cc->resend_ms = c->resend_ms; /* inherited from the socket */
	pthread_mutex_lock(&c->mtx);
	cc->all_next = c->all;
	c->all = cc;
	pthread_mutex_unlock(&c->mtx);
	*out = cc;
	return NRPC_OK;
}

/* nrpc_cli_remaining returns the aio timeout for what is left of the call. */
static nng_duration
nrpc_cli_remaining(const nrpc_cli_call *cc, int64_t now)
{
	int64_t left;

	if (cc->deadline_ms == INT64_MAX) {
		return NNG_DURATION_INFINITE;
	}
	left = cc->deadline_ms - now;
	if (left > INT32_MAX) {
		return INT32_MAX;
	}
	return left > 0 ? (nng_duration) left : 0;
}

/* nrpc_cli_resend_for returns the resend time a call of timeout ms
 * (0 = no deadline) needs: the socket's, unless the call may outlast it,
 * in which case timeout + NRPC_CLIENT_RESEND_MARGIN_MS, so that nng never
 * resends a request the server is still working on (a parked call would
 * be parked twice). Resends after a lost connection do not use the timer. */
static nng_duration
nrpc_cli_resend_for(const nrpc_client *c, int64_t timeout)
{
	int64_t want;

	if (timeout <= 0 || c->resend_ms <= 0 || timeout < c->resend_ms) {
		return c->resend_ms;
	}
	want = timeout + NRPC_CLIENT_RESEND_MARGIN_MS;
	return want > INT32_MAX ? INT32_MAX : (nng_duration) want;
}

/* nrpc_cli_complete reports the outcome: resp (owned, or NULL) and st (its
 * detail is owned here) go to the blocking caller or the done callback. */
static void
nrpc_cli_complete(nrpc_cli_call *cc, ProtobufCMessage *resp, nrpc_status *st)
{
	nrpc_client *c = cc->c;
	nrpc_cli_wait *w = cc->wait;

	if (w != NULL) {
		pthread_mutex_lock(&w->mtx);
		w->resp = resp;
		nrpc_status_move(&w->st, st);
		w->done = true;
		pthread_cond_signal(&w->cv);
		pthread_mutex_unlock(&w->mtx);
	} else {
		nrpc_cli_in_callback = true;
		cc->done(cc->user_cb, cc->user_arg, resp, st);
		nrpc_cli_in_callback = false;
		nrpc_status_fini(st);
	}
	nrpc_cli_release(c, cc);
}

static void
nrpc_cli_status_from_nng(nrpc_status *st, int rv, bool sending,
    const char *method)
{
	switch (rv) {
	case NNG_ETIMEDOUT:
		nrpc_status_set(st, NRPC_DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED",
		    NULL, "%s: deadline exceeded %s", method, sending ?
		    "before any server accepted the request" :
		    "waiting for the reply");
		break;
	case NNG_ECLOSED:
	case NNG_ECANCELED:
		nrpc_status_set(st, NRPC_CANCELLED, "CANCELLED", NULL,
		    "%s: cancelled: client closed", method);
		break;
	case NNG_ENOMEM:
		nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED, "OUT_OF_MEMORY",
		    NULL, "%s: %s", method, nng_strerror(rv));
		break;
	default:
		/* Connection refused, reset, shut: REQ normally resends on
		 * another pipe, so these reach us only when no retry is
		 * possible. */
		nrpc_status_set(st, NRPC_UNAVAILABLE, "UNAVAILABLE", NULL,
		    "%s: %s", method, nng_strerror(rv));
		break;
	}
}

static void
nrpc_cli_cb(void *arg)
{
	nrpc_cli_call *cc = arg;
	nrpc_client *c = cc->c;
	int rv = nng_aio_result(cc->aio);
	nrpc_status st = {0};
	ProtobufCMessage *resp = NULL;
	nng_msg *msg;

	if (rv != 0) {
		if (cc->sending) {
			/* A failed send leaves the message with us. */
			nng_msg_free(nng_aio_get_msg(cc->aio));
			nng_aio_set_msg(cc->aio, NULL);
		}
		nrpc_cli_status_from_nng(&st, rv, cc->sending,
		    cc->m->full_name);
		nrpc_cli_complete(cc, NULL, &st);
		return;
	}
	if (cc->sending) {
		int64_t now = ds_clock_now_ms(c->clock);

		if (cc->deadline_ms != INT64_MAX && now >= cc->deadline_ms) {
			/* The context still holds the request; its next send
			 * resets it. */
			nrpc_cli_status_from_nng(&st, NNG_ETIMEDOUT, false,
			    cc->m->full_name);
			nrpc_cli_complete(cc, NULL, &st);
			return;
		}
		if (!nrpc_nng_enter(&c->n_nng, &c->closing)) {
			nrpc_cli_status_from_nng(&st, NNG_ECLOSED, false,
			    cc->m->full_name);
			nrpc_cli_complete(cc, NULL, &st);
			return;
		}
		cc->sending = false;
		nng_aio_set_timeout(cc->aio, nrpc_cli_remaining(cc, now));
		nng_ctx_recv(cc->ctx, cc->aio);
		/* The reply may have completed the call on another thread
		 * already (cc reused even); c stays valid until we leave. */
		nrpc_nng_leave(&c->n_nng);
		return;
	}
	msg = nng_aio_get_msg(cc->aio);
	nng_aio_set_msg(cc->aio, NULL);
	(void) nrpc_envelope_decode_reply(nng_msg_body(msg), nng_msg_len(msg),
	    c->max_msg, cc->m->output, &resp, &st); /* outcome is in st */
	nng_msg_free(msg);
	nrpc_cli_complete(cc, resp, &st);
}

/* nrpc_cli_start packs the envelope and starts the call. On failure nothing
 * was started and st says why. */
static nrpc_code
nrpc_cli_start(nrpc_client *c, const nrpc_method *m,
    const ProtobufCMessage *req, const nrpc_call_opts *opts,
    nrpc_done_fn done, nrpc_fnptr user_cb, void *user_arg, nrpc_cli_wait *w,
    nrpc_status *st)
{
	char gen_id[NRPC_CLI_REQUEST_ID_LEN + 1];
	const char *request_id;
	const char *client_name = c != NULL ? c->client_name : NULL;
	int64_t timeout;
	int64_t now;
	int64_t deadline;
	nrpc_request_plan plan; /* ~3.5 KiB: fine on nng's thread stacks */
	const char *md_all[2 * NRPC_MAX_METADATA];
	const char *const *md;
	size_t n_md;
	nng_msg *msg = NULL;
	nrpc_cli_call *cc = NULL;
	nrpc_code rc;
	nng_duration resend;
	int rv;

	if (c == NULL || m == NULL || req == NULL || (done == NULL && w == NULL)) {
		return nrpc_cli_bad(st, "INVALID_ARGUMENT", NULL,
		    "nrpc client call: NULL argument");
	}
	if (m->input == NULL || m->output == NULL ||
	    req->descriptor != m->input) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    NULL, "%s takes %s, not %s",
		    m->full_name != NULL ? m->full_name : "method",
		    m->input != NULL ? m->input->name : "?",
		    req->descriptor->name);
		return NRPC_INVALID_ARGUMENT;
	}
	timeout = opts != NULL && opts->timeout_ms != 0 ? opts->timeout_ms :
	    c->timeout_ms;
	now = ds_clock_now_ms(c->clock);
	if (timeout < 0) {
		deadline = INT64_MAX;
		timeout = 0;
	} else {
		if (timeout > INT32_MAX) {
			timeout = INT32_MAX;
		}
		deadline = now + timeout;
	}
	if (opts != NULL && opts->request_id != NULL) {
		request_id = opts->request_id;
	} else {
		uint64_t seq = atomic_fetch_add(&c->id_seq, 1);
		uint8_t b[8];

		for (int i = 0; i < 8; i++) {
			b[i] = (uint8_t) (seq >> (56 - 8 * i));
		}
		memcpy(gen_id, c->id_prefix, 16);
		ds_hex_encode(b, sizeof(b), gen_id + 16);
		request_id = gen_id;
	}
	if (opts != NULL && opts->caller != NULL) {
		size_t n = strnlen(opts->caller, NRPC_MAX_CLIENT_NAME_BYTES + 1);

		if (n > NRPC_MAX_CLIENT_NAME_BYTES ||
		    !ds_utf8_valid((const uint8_t *) opts->caller, n)) {
			nrpc_status_set(st, NRPC_INVALID_ARGUMENT,
			    "INVALID_ARGUMENT", "caller",
			    "caller must be UTF-8 of at most "
			    "max_client_name_bytes (%d)",
			    NRPC_MAX_CLIENT_NAME_BYTES);
			return NRPC_INVALID_ARGUMENT;
		}
		client_name = opts->caller;
	}
	md = opts != NULL ? opts->metadata : NULL;
	n_md = opts != NULL ? opts->n_metadata : 0;
	if (c->authorization != NULL && n_md < NRPC_MAX_METADATA &&
	    (n_md == 0 || md != NULL)) {
		bool own = false;

		for (size_t i = 0; i < n_md; i++) {
			own = own || (md[2 * i] != NULL &&
			    strcmp(md[2 * i], "authorization") == 0);
		}
		if (!own) {
			/* the call's pairs, then the client's credential */
			for (size_t i = 0; i < 2 * n_md; i++) {
				md_all[i] = md[i];
			}
			md_all[2 * n_md] = "authorization";
			md_all[2 * n_md + 1] = c->authorization;
			md = md_all;
			n_md++;
		}
	}
	if ((rc = nrpc_envelope_plan_request(&plan, m->full_name, req,
	    (uint32_t) timeout, request_id, client_name, md, n_md, st)) !=
	    NRPC_OK) {
		return rc;
	}
	if (plan.total > c->max_msg) {
		nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED, "TOO_LARGE", NULL,
		    "request exceeds max_message_bytes (%zu)", c->max_msg);
		return NRPC_RESOURCE_EXHAUSTED;
	}
	if ((rv = nng_msg_alloc(&msg, plan.total)) != 0) {
		nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED, "OUT_OF_MEMORY",
		    NULL, "cannot allocate the request: %s", nng_strerror(rv));
		return NRPC_RESOURCE_EXHAUSTED;
	}
	nrpc_envelope_write_request(&plan, nng_msg_body(msg));
	if ((rc = nrpc_cli_acquire(c, &cc, st)) != NRPC_OK) {
		nng_msg_free(msg);
		return rc;
	}
	cc->m = m;
	cc->deadline_ms = deadline;
	cc->done = done;
	cc->user_cb = user_cb;
	cc->user_arg = user_arg;
	cc->wait = w;
	cc->sending = true;
	if (!nrpc_nng_enter(&c->n_nng, &c->closing)) {
		nng_msg_free(msg);
		nrpc_cli_release(c, cc);
		nrpc_status_set(st, NRPC_CANCELLED, "CANCELLED", NULL,
		    "client is closing");
		return NRPC_CANCELLED;
	}
	resend = nrpc_cli_resend_for(c, deadline == INT64_MAX ? 0 : timeout);
	if (resend != cc->resend_ms) {
		/* Read by req0 when the request is sent: set it first. */
		if ((rv = nng_ctx_set_ms(cc->ctx, NNG_OPT_REQ_RESENDTIME,
		    resend)) != 0) {
			nrpc_nng_leave(&c->n_nng);
			nng_msg_free(msg);
			nrpc_cli_release(c, cc);
			nrpc_status_set(st, NRPC_INTERNAL, "INTERNAL", NULL,
			    "cannot set the context's resend time: %s",
			    nng_strerror(rv));
			return NRPC_INTERNAL;
		}
		cc->resend_ms = resend;
	}
	nng_aio_set_msg(cc->aio, msg);
	nng_aio_set_timeout(cc->aio, nrpc_cli_remaining(cc, now));
	nng_ctx_send(cc->ctx, cc->aio);
	/* cc may have completed already; c is valid until we leave. */
	nrpc_nng_leave(&c->n_nng);
	return NRPC_OK;
}

nrpc_code
nrpc_client_call_async(nrpc_client *c, const nrpc_method *m,
    const ProtobufCMessage *req, const nrpc_call_opts *opts,
    nrpc_done_fn done, nrpc_fnptr user_cb, void *user_arg, nrpc_status *st)
{
	nrpc_status tmp = {0};
	nrpc_code rc;

	if (done == NULL) {
		return nrpc_cli_bad(st, "INVALID_ARGUMENT", NULL,
		    "nrpc_client_call_async: NULL done");
	}
	rc = nrpc_cli_start(c, m, req, opts, done, user_cb, user_arg, NULL,
	    &tmp);
	if (st != NULL) {
		nrpc_status_move(st, &tmp);
	}
	nrpc_status_fini(&tmp);
	return rc;
}

nrpc_code
nrpc_client_call(nrpc_client *c, const nrpc_method *m,
    const ProtobufCMessage *req, ProtobufCMessage **resp,
    const nrpc_call_opts *opts, nrpc_status *st)
{
	nrpc_cli_wait w;
	nrpc_status tmp = {0};
	nrpc_code rc;

	if (nrpc_cli_in_callback) {
		nrpc_status_set(&tmp, NRPC_FAILED_PRECONDITION,
		    "BLOCKING_CALL_IN_CALLBACK", NULL,
		    "blocking nrpc_client_call from an nrpc callback; use "
		    "nrpc_client_call_async");
		rc = tmp.code;
		goto out;
	}
	if (resp == NULL) {
		rc = nrpc_cli_bad(&tmp, "INVALID_ARGUMENT", NULL,
		    "nrpc_client_call: NULL resp");
		goto out;
	}
	memset(&w, 0, sizeof(w));
	pthread_mutex_init(&w.mtx, NULL);
	pthread_cond_init(&w.cv, NULL);
	if ((rc = nrpc_cli_start(c, m, req, opts, NULL, NULL, NULL, &w,
	    &tmp)) ==
	    NRPC_OK) {
		pthread_mutex_lock(&w.mtx);
		while (!w.done) {
			pthread_cond_wait(&w.cv, &w.mtx);
		}
		pthread_mutex_unlock(&w.mtx);
		nrpc_status_move(&tmp, &w.st);
		rc = tmp.code;
		if (rc == NRPC_OK) {
			*resp = w.resp;
		} else if (w.resp != NULL) {
			protobuf_c_message_free_unpacked(w.resp, NULL);
		}
	}
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mtx);
out:
	if (st != NULL) {
		nrpc_status_move(st, &tmp);
	}
	nrpc_status_fini(&tmp);
	return rc;
}
