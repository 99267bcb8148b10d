/*
 * nrpc_server.c - the RPC server: one REP socket, N contexts each driven
 * by its own aio callback, a worker pool for the handlers.
 *
 * A context's life is a loop of two aio operations:
 *
 *   recv --(callback: size check, decode, method lookup, body decode)-->
 *     worker queue --(worker: deadline check, dispatch)--> handler
 *     --(nrpc_call_finish, any thread: pack reply into the request's own
 *     nng_msg)--> send --(callback)--> recv ...
 *
 * Errors found in the receive callback (malformed, unknown method, too
 * large, overloaded, shutting down) are answered from the callback itself
 * without touching a worker. A context carries one call at a time, so the
 * nrpc_call handed to a handler is the context's own embedded struct and
 * the decode arena is reused from call to call: a steady stream of small
 * requests allocates only what nng allocates.
 *
 * Rules that keep this correct (STYLE rule 22):
 * - callbacks never block: the queue push is a short mutex, never a wait;
 * - no lock of ours is held while calling into nng;
 * - once nng_ctx_send/nng_ctx_recv is called, the context may already be
 *   running its next callback on another thread, so the caller touches
 *   nothing of the context afterwards (nrpc_call_finish, the dispatch path
 *   after a handler ran);
 * - shutdown closes the socket, which ends every pending operation with
 *   NNG_ECLOSED, and then counts contexts down to zero; no context is ever
 *   cancelled individually, so there is no cancel/complete race;
 * - nng 1.5.2's nng_close() does not wait for a thread that is inside
 *   nng_ctx_send/nng_ctx_recv on one of the socket's contexts (the
 *   context is then finalised after the socket: a use-after-free inside
 *   nng). Every such call is therefore bracketed by srv_nng_enter/leave,
 *   and stop closes the socket only once no thread is inside and none can
 *   enter;
 * - threads that finish work touch the server last with one atomic
 *   decrement, and stop polls those counters, so a finishing thread never
 *   touches memory stop has freed.
 *
 * Moving cheap handlers onto the callback (no worker hand-off) later only
 * means calling srv_call_run() from srv_ctx_recv_done() instead of
 * nrpc_pool_push(); nothing else assumes the handler runs on a worker.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "ds_alloc.h"
#include "ds_log.h"
#include "nrpc_int.h"
#include "nrpc_probe.h"

/* --- types --- */

typedef struct srv_service {
	const nrpc_service_desc *desc; /* borrowed for the server's life */
	nrpc_dispatch_fn dispatch;
	const void *table;
	void *arg;
} srv_service;

/* srv_method: one entry of the server-wide method table, sorted by
 * (length, bytes) of the full name for bsearch. */
typedef struct srv_method {
	const char *name;          /* == m->full_name */
	size_t len;
	const nrpc_method *m;
	size_t svc;                /* index into srv->services */
	size_t index;              /* method_index for dispatch */
} srv_method;

typedef struct srv_ctx srv_ctx;
typedef struct srv_detached srv_detached;

struct nrpc_call {
	nrpc_server *srv;
	nng_msg *msg;             /* request in; reused for the reply */
	nrpc_arena arena;         /* env and req live here */
	Nrpc__V1__Request *env;   /* NULL until decoded */
	ProtobufCMessage *req;    /* NULL until decoded */
	const srv_method *sm;     /* NULL until looked up */
	int64_t deadline_ms;      /* server clock; INT64_MAX = none */
	void *wstate;             /* the running worker's state, or NULL */
	bool counted;             /* included in srv->n_calls */
	nng_pipe pipe;            /* the connection it came on, counted in
	                           * srv->pipes; id 0 = not counted */
	srv_ctx *sc;              /* our REP context, or NULL ... */
	srv_detached *dt;         /* ... when run by nrpc_server_process */
};

enum srv_phase { SRV_PHASE_RECV, SRV_PHASE_SEND };

struct srv_ctx {
	nrpc_call call;           /* first: the handler's nrpc_call */
	nng_ctx ctx;
	nng_aio *aio;             /* owned */
	enum srv_phase phase;     /* operation in progress on aio */
	bool opened;              /* ctx is open */
};

struct srv_detached {
	nrpc_call call;
	pthread_mutex_t mtx;
	pthread_cond_t cv;
	bool done;                /* guarded by mtx */
	uint8_t *reply;           /* guarded by mtx; owned */
	size_t reply_len;
};

enum srv_state { SRV_CREATED, SRV_RUNNING, SRV_STOPPING, SRV_STOPPED };

/* srv_pipe_slot: one connection with requests in flight. The table
 * (open addressing, linear probing, id 0 = empty) has room for twice as
 * many entries as there are contexts: every counted request holds a
 * context, so it can never fill, and it is allocated once at start. */
typedef struct srv_pipe_slot {
	uint32_t id;              /* nng_pipe_id; 0 = empty */
	uint32_t n;               /* requests in flight on it */
} srv_pipe_slot;

struct nrpc_server {
	/* configuration, fixed after create */
	char **urls;              /* owned, n_urls strings */
	size_t n_urls;
	unsigned workers;
	unsigned n_ctx;
	size_t max_msg;
	size_t max_decoded;       /* arena cap, see NRPC_DECODE_SLACK_BYTES */
	size_t max_queue;
	unsigned max_inflight;    /* per connection */
	nrpc_worker_init_fn worker_init;
	nrpc_worker_fini_fn worker_fini;
	void *worker_arg;
	const ds_clock *clock;
	bool inline_handlers;
	int64_t check_ms;         /* listener watchdog period; < 0 = off */
	uint64_t id;              /* unique per server, for the TLS cache */

	/* listeners, one per URL; replaced by the watchdog */
	nng_listener *lis;        /* owned, n_urls entries */
	pthread_t dog;            /* the listener watchdog */
	bool dog_started;
	pthread_mutex_t dog_mtx;  /* guards dog_stop */
	pthread_cond_t dog_cv;
	bool dog_stop;
	atomic_uint_fast64_t relistens; /* listeners re-created */
	/* Times the contexts in use reached n_ctx: the watchdog does not
	 * judge a listener across a probe during which this changed. */
	atomic_uint_fast64_t saturations;
	atomic_uint_fast64_t probes;
	atomic_uint_fast64_t probes_busy;

	/* Requests in flight per connection (max_inflight). */
	pthread_mutex_t pipe_mtx; /* guards pipes */
	srv_pipe_slot *pipes;     /* owned, pipe_cap slots */
	size_t pipe_cap;          /* a power of two */

	/* Worker states of nng callback threads (inline_handlers). */
	pthread_mutex_t inl_mtx;  /* guards inl */
	struct srv_inline {
		pthread_t thread;
		void *wstate;
	} *inl;                   /* owned, n_inl entries */
	size_t n_inl;

	/* services; only changed before start (state CREATED) */
	srv_service *services;    /* owned */
	size_t n_services;
	srv_method *methods;      /* owned, sorted */
	size_t n_methods;

	/* running */
	nng_socket sock;
	srv_ctx *ctxs;            /* owned, n_ctx */
	nrpc_pool pool;

	pthread_mutex_t mtx;      /* guards state */
	enum srv_state state;
	atomic_uint n_live;       /* contexts that have not retired */
	atomic_size_t n_calls;    /* received and not yet handed back to
	                           * nng (reply sent or dropped) */
	atomic_uint n_nng;        /* threads inside nng_ctx_send/recv */
	atomic_bool nng_closing;  /* no new nng_ctx_send/recv: closing */
	atomic_bool draining;     /* stop began: new requests get
	                           * SHUTTING_DOWN */
	atomic_bool cancelling;   /* grace over: queued calls are not run */
	/* nng_close did not return (NRPC_CLOSE_TIMEOUT_MS): nng may still
	 * use the contexts, so the server is never freed; the closing thread
	 * holds a pointer to it, so it stays reachable. */
	bool abandoned;

	struct {
		atomic_uint_fast64_t received;
		atomic_uint_fast64_t replied;
		atomic_uint_fast64_t bad_envelope;
		atomic_uint_fast64_t unimplemented;
		atomic_uint_fast64_t deadline_exceeded;
		atomic_uint_fast64_t in_flight;
		atomic_uint_fast64_t overloaded;
		atomic_uint_fast64_t closed_inflight;
		atomic_uint_fast64_t closed_send_timeout;
	} stats;
};

static void srv_call_complete(nrpc_call *call);

/* srv_next_id numbers servers so that a thread's cached inline state can
 * never be mistaken for that of a later server at the same address. */
static atomic_uint_fast64_t srv_next_id = 1;

/* The calling nng thread's inline worker state for one server: a cache in
 * front of srv->inl, so the common case takes no lock. */
static _Thread_local uint64_t srv_tls_id;
static _Thread_local void *srv_tls_wstate;

/* srv_inline_state returns the calling thread's worker state for srv,
 * creating it with worker_init on first use. false when init fails. */
static bool
srv_inline_state(nrpc_server *srv, void **out)
{
	pthread_t self = pthread_self();
	struct srv_inline *grown;
	void *ws = NULL;
	bool ok = true;

	if (srv_tls_id == srv->id) {
		*out = srv_tls_wstate;
		return true;
	}
	pthread_mutex_lock(&srv->inl_mtx);
	for (size_t i = 0; i < srv->n_inl; i++) {
		if (pthread_equal(srv->inl[i].thread, self)) {
			ws = srv->inl[i].wstate;
			goto found;
		}
	}
	if ((grown = ds_realloc(srv->inl, (srv->n_inl + 1) *
	         sizeof(*srv->inl))) == NULL) {
		ok = false;
		goto out;
	}
	srv->inl = grown;
	if (srv->worker_init != NULL &&
	    srv->worker_init(srv->worker_arg, NRPC_INLINE_WORKER, &ws) != 0) {
		ok = false;
		goto out;
	}
	srv->inl[srv->n_inl].thread = self;
	srv->inl[srv->n_inl].wstate = ws;
	srv->n_inl++;
found:
	srv_tls_id = srv->id;
	srv_tls_wstate = ws;
	*out = ws;
out:
	pthread_mutex_unlock(&srv->inl_mtx);
	return ok;
}

/* srv_inline_fini releases every inline worker state (server stopped). */
static void
srv_inline_fini(nrpc_server *srv)
{
	pthread_mutex_lock(&srv->inl_mtx);
	for (size_t i = 0; i < srv->n_inl; i++) {
		if (srv->worker_fini != NULL) {
			srv->worker_fini(srv->worker_arg, srv->inl[i].wstate);
		}
	}
	ds_free(srv->inl);
	srv->inl = NULL;
	srv->n_inl = 0;
	pthread_mutex_unlock(&srv->inl_mtx);
}

/* --- configuration --- */

void
nrpc_server_config_default(nrpc_server_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->contexts = NRPC_CONTEXTS_DEFAULT;
	cfg->max_message_bytes = NRPC_MAX_MESSAGE_BYTES_DEFAULT;
	cfg->max_queue = NRPC_MAX_QUEUE_DEFAULT;
	cfg->max_inflight_per_conn = NRPC_MAX_INFLIGHT_PER_CONN_DEFAULT;
}

static nrpc_code
srv_bad_config(nrpc_status *st, const char *field, uint64_t v, uint64_t max)
{
	nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT", field,
	    "%s (%" PRIu64 ") exceeds its hard maximum (%" PRIu64 ")", field, v,
	    max);
	return NRPC_INVALID_ARGUMENT;
}

static void
srv_free(nrpc_server *srv)
{
	for (size_t i = 0; i < srv->n_urls; i++) {
		ds_free(srv->urls[i]);
	}
	ds_free(srv->urls);
	ds_free(srv->services);
	ds_free(srv->methods);
	ds_free(srv->inl);
	ds_free(srv->lis);
	ds_free(srv->pipes);
	pthread_mutex_destroy(&srv->pipe_mtx);
	pthread_cond_destroy(&srv->dog_cv);
	pthread_mutex_destroy(&srv->dog_mtx);
	pthread_mutex_destroy(&srv->inl_mtx);
	pthread_mutex_destroy(&srv->mtx);
	ds_free(srv);
}

int
nrpc_server_create(const nrpc_server_config *cfg, nrpc_server **out,
    nrpc_status *st)
{
	nrpc_server *srv;
	long ncpu;

	if (cfg == NULL || out == NULL || (cfg->n_urls > 0 && cfg->urls == NULL)) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    NULL, "nrpc_server_create: NULL argument");
		return NRPC_INVALID_ARGUMENT;
	}
	if (cfg->workers > NRPC_WORKERS_HARD) {
		return srv_bad_config(st, "workers", cfg->workers,
		    NRPC_WORKERS_HARD);
	}
	if (cfg->contexts > NRPC_CONTEXTS_HARD) {
		return srv_bad_config(st, "contexts", cfg->contexts,
		    NRPC_CONTEXTS_HARD);
	}
	if (cfg->max_message_bytes > NRPC_MAX_MESSAGE_BYTES_HARD) {
		return srv_bad_config(st, "max_message_bytes",
		    cfg->max_message_bytes, NRPC_MAX_MESSAGE_BYTES_HARD);
	}
	if (cfg->max_inflight_per_conn > NRPC_MAX_INFLIGHT_PER_CONN_HARD) {
		return srv_bad_config(st, "max_inflight_per_conn",
		    cfg->max_inflight_per_conn, NRPC_MAX_INFLIGHT_PER_CONN_HARD);
	}
	if (cfg->max_queue > NRPC_MAX_QUEUE_HARD) {
		return srv_bad_config(st, "max_queue", cfg->max_queue,
		    NRPC_MAX_QUEUE_HARD);
	}
	for (size_t i = 0; i < cfg->n_urls; i++) {
		if (cfg->urls[i] == NULL) {
			nrpc_status_set(st, NRPC_INVALID_ARGUMENT,
			    "INVALID_ARGUMENT", "urls", "urls[%zu] is NULL", i);
			return NRPC_INVALID_ARGUMENT;
		}
	}
	if ((srv = ds_calloc(1, sizeof(*srv))) == NULL) {
		goto oom;
	}
	if (pthread_mutex_init(&srv->mtx, NULL) != 0) {
		ds_free(srv);
		goto oom;
	}
	if (pthread_mutex_init(&srv->inl_mtx, NULL) != 0) {
		pthread_mutex_destroy(&srv->mtx);
		ds_free(srv);
		goto oom;
	}
	if (pthread_mutex_init(&srv->dog_mtx, NULL) != 0) {
		pthread_mutex_destroy(&srv->inl_mtx);
		pthread_mutex_destroy(&srv->mtx);
		ds_free(srv);
		goto oom;
	}
	if (pthread_mutex_init(&srv->pipe_mtx, NULL) != 0) {
		pthread_mutex_destroy(&srv->dog_mtx);
		pthread_mutex_destroy(&srv->inl_mtx);
		pthread_mutex_destroy(&srv->mtx);
		ds_free(srv);
		goto oom;
	}
	(void) pthread_cond_init(&srv->dog_cv, NULL); /* cannot fail: default */
	if (cfg->n_urls > 0 &&
	    (srv->urls = ds_calloc(cfg->n_urls, sizeof(char *))) == NULL) {
		srv_free(srv);
		goto oom;
	}
	for (size_t i = 0; i < cfg->n_urls; i++) {
		if ((srv->urls[i] = ds_strdup(cfg->urls[i])) == NULL) {
			srv->n_urls = i;
			srv_free(srv);
			goto oom;
		}
	}
	srv->n_urls = cfg->n_urls;
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	srv->workers = cfg->workers > 0 ? cfg->workers :
	    ncpu > 0 ? (unsigned) (ncpu > NRPC_WORKERS_HARD ? NRPC_WORKERS_HARD : ncpu) : 1;
	srv->n_ctx = cfg->contexts > 0 ? cfg->contexts : NRPC_CONTEXTS_DEFAULT;
	srv->max_msg = cfg->max_message_bytes > 0 ? cfg->max_message_bytes :
	    NRPC_MAX_MESSAGE_BYTES_DEFAULT;
	srv->max_decoded = 2 * srv->max_msg + NRPC_DECODE_SLACK_BYTES;
	srv->max_queue = cfg->max_queue > 0 ? cfg->max_queue :
	    NRPC_MAX_QUEUE_DEFAULT;
	srv->max_inflight = cfg->max_inflight_per_conn > 0 ?
	    cfg->max_inflight_per_conn : NRPC_MAX_INFLIGHT_PER_CONN_DEFAULT;
	srv->worker_init = cfg->worker_init;
	srv->worker_fini = cfg->worker_fini;
	srv->worker_arg = cfg->worker_arg;
	srv->clock = cfg->clock != NULL ? cfg->clock : ds_clock_monotonic();
	srv->inline_handlers = cfg->inline_handlers;
	srv->check_ms = cfg->listener_check_ms == 0
	    ? NRPC_LISTENER_CHECK_MS_DEFAULT
	    : cfg->listener_check_ms;
	srv->id = atomic_fetch_add(&srv_next_id, 1);
	srv->state = SRV_CREATED;
	*out = srv;
	return NRPC_OK;
oom:
	nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED, "OUT_OF_MEMORY", NULL,
	    "out of memory creating the server");
	return NRPC_RESOURCE_EXHAUSTED;
}

/* --- services and method lookup --- */

static int
srv_method_cmp_key(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen) {
		return alen < blen ? -1 : 1;
	}
	return memcmp(a, b, alen);
}

static int
srv_method_cmp(const void *va, const void *vb)
{
	const srv_method *a = va;
	const srv_method *b = vb;

	return srv_method_cmp_key(a->name, a->len, b->name, b->len);
}

static const srv_method *
srv_find(const nrpc_server *srv, const char *name, size_t len)
{
	size_t lo = 0;
	size_t hi = srv->n_methods;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const srv_method *m = &srv->methods[mid];
		int c = srv_method_cmp_key(name, len, m->name, m->len);

		if (c == 0) {
			return m;
		}
		if (c < 0) {
			hi = mid;
		} else {
			lo = mid + 1;
		}
	}
	return NULL;
}

const nrpc_method *
nrpc_service_find_method(const nrpc_service_desc *svc, const char *name,
    size_t len)
{
	if (svc == NULL || name == NULL) {
		return NULL;
	}
	for (size_t i = 0; i < svc->n_methods; i++) {
		const char *fn = svc->methods[i].full_name;

		if (fn != NULL && strlen(fn) == len && memcmp(fn, name, len) == 0) {
			return &svc->methods[i];
		}
	}
	return NULL;
}

int
nrpc_server_add_service(nrpc_server *srv, const nrpc_service_desc *desc,
    nrpc_dispatch_fn dispatch, const void *table, void *arg,
    nrpc_status *st)
{
	srv_service *svcs;
	srv_method *ms;
	size_t n;
	enum srv_state state;

	if (srv == NULL || desc == NULL || dispatch == NULL ||
	    (desc->n_methods > 0 && desc->methods == NULL)) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    NULL, "nrpc_server_add_service: NULL argument");
		return NRPC_INVALID_ARGUMENT;
	}
	pthread_mutex_lock(&srv->mtx);
	state = srv->state;
	pthread_mutex_unlock(&srv->mtx);
	if (state != SRV_CREATED) {
		nrpc_status_set(st, NRPC_FAILED_PRECONDITION,
		    "FAILED_PRECONDITION", NULL,
		    "services must be added before nrpc_server_start");
		return NRPC_FAILED_PRECONDITION;
	}
	for (size_t i = 0; i < desc->n_methods; i++) {
		const nrpc_method *m = &desc->methods[i];
		size_t len;

		if (m->full_name == NULL || m->input == NULL ||
		    m->output == NULL) {
			nrpc_status_set(st, NRPC_INVALID_ARGUMENT,
			    "INVALID_ARGUMENT", "methods",
			    "method %zu of %s lacks a name or a type", i,
			    desc->full_name != NULL ? desc->full_name : "?");
			return NRPC_INVALID_ARGUMENT;
		}
		len = strlen(m->full_name);
		if (len > NRPC_MAX_METHOD_BYTES) {
			nrpc_status_set(st, NRPC_INVALID_ARGUMENT,
			    "INVALID_ARGUMENT", "methods",
			    "method name exceeds max_method_bytes (%d)",
			    NRPC_MAX_METHOD_BYTES);
			return NRPC_INVALID_ARGUMENT;
		}
		if (srv_find(srv, m->full_name, len) != NULL ||
		    nrpc_service_find_method(desc, m->full_name, len) != m) {
			nrpc_status_set(st, NRPC_ALREADY_EXISTS,
			    "ALREADY_EXISTS", "methods",
			    "method %s is already registered", m->full_name);
			return NRPC_ALREADY_EXISTS;
		}
	}
	if ((svcs = ds_realloc(srv->services,
	    (srv->n_services + 1) * sizeof(*svcs))) == NULL) {
		goto oom;
	}
	srv->services = svcs;
	n = srv->n_methods + desc->n_methods;
	if (n > 0 && (ms = ds_realloc(srv->methods, n * sizeof(*ms))) == NULL) {
		goto oom;
	}
	if (n > 0) {
		srv->methods = ms;
	}
	svcs[srv->n_services] = (srv_service){desc, dispatch, table, arg};
	for (size_t i = 0; i < desc->n_methods; i++) {
		srv_method *e = &srv->methods[srv->n_methods + i];

		e->m = &desc->methods[i];
		e->name = e->m->full_name;
		e->len = strlen(e->name);
		e->svc = srv->n_services;
		e->index = i;
	}
	srv->n_services++;
	srv->n_methods = n;
	if (n > 0) {
		qsort(srv->methods, n, sizeof(*srv->methods), srv_method_cmp);
	}
	return NRPC_OK;
oom:
	nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED, "OUT_OF_MEMORY", NULL,
	    "out of memory adding service");
	return NRPC_RESOURCE_EXHAUSTED;
}

/* --- the request path --- */

/* srv_call_release drops the decoded request. Done before the reply is
 * handed to nng, because afterwards the context may already be decoding
 * its next request into the same arena. */
static void
srv_call_release(nrpc_call *call)
{
	call->env = NULL;
	call->req = NULL;
	call->sm = NULL;
	call->wstate = NULL;
	nrpc_arena_reset(&call->arena);
}

/* srv_msg_reserve makes call->msg exactly len bytes long, reusing the
 * request's buffer when it is large enough. */
static int
srv_msg_reserve(nrpc_call *call, size_t len)
{
	if (call->msg == NULL) {
		return nng_msg_alloc(&call->msg, len);
	}
	nng_msg_clear(call->msg);
	return nng_msg_realloc(call->msg, len);
}

/* srv_call_pack writes the reply for st (and resp when st is OK) into
 * call->msg. Never fails: a reply too large for the limit becomes
 * RESOURCE_EXHAUSTED, one that cannot be allocated becomes a short
 * INTERNAL status, and only when even that fails is call->msg NULL (the
 * client then times out). */
static void
srv_call_pack(nrpc_call *call, const nrpc_status *st,
    const ProtobufCMessage *resp)
{
	nrpc_server *srv = call->srv;
	nrpc_status alt = {0};
	nrpc_reply_plan plan;

	if (st->code == NRPC_OK && resp != NULL && call->sm != NULL &&
	    resp->descriptor != call->sm->m->output) {
		/* A handler bug, reported to the caller rather than sent as
		 * bytes the client would decode as the wrong type. */
		ds_log(DS_LOG_ERROR, "nrpc", "%s replied with a %s",
		    call->sm->name, resp->descriptor->name);
		nrpc_status_set(&alt, NRPC_INTERNAL, "WRONG_REPLY_TYPE", NULL,
		    "handler replied with %s, method returns %s",
		    resp->descriptor->name, call->sm->m->output->name);
		st = &alt;
	}
	nrpc_envelope_plan_reply(&plan, st, resp);
	if (plan.total > srv->max_msg) {
		nrpc_status_set(&alt, NRPC_RESOURCE_EXHAUSTED, "TOO_LARGE", NULL,
		    "reply exceeds max_message_bytes (%zu)", srv->max_msg);
		nrpc_envelope_plan_reply(&plan, &alt, NULL);
	}
	if (srv_msg_reserve(call, plan.total) != 0) {
		nrpc_status_set(&alt, NRPC_INTERNAL, "OUT_OF_MEMORY", NULL,
		    "out of memory building the reply");
		nrpc_envelope_plan_reply(&plan, &alt, NULL);
		if (srv_msg_reserve(call, plan.total) != 0) {
			nng_msg_free(call->msg);
			call->msg = NULL;
			nrpc_status_fini(&alt);
			return;
		}
	}
	nrpc_envelope_write_reply(&plan, nng_msg_body(call->msg));
	nrpc_status_fini(&alt);
}

/* srv_call_answer finishes a call the runtime itself answers. */
static void
srv_call_answer(nrpc_call *call, const nrpc_status *st)
{
	srv_call_pack(call, st, NULL);
	srv_call_release(call);
	srv_call_complete(call);
}

/* srv_call_begin decodes call->msg. True when the call is ready to run;
 * false when it has been answered already (and must not be touched). */
static bool
srv_call_begin(nrpc_call *call, int64_t now)
{
	nrpc_server *srv = call->srv;
	nrpc_status st = {0};
	const uint8_t *buf = nng_msg_body(call->msg);
	size_t len = nng_msg_len(call->msg);
	Nrpc__V1__Request *env;
	const srv_method *sm;

	if (call->sc != NULL && atomic_load(&srv->draining)) {
		nrpc_status_set(&st, NRPC_UNAVAILABLE, "SHUTTING_DOWN", NULL,
		    "server is shutting down");
		goto answer;
	}
	if (nrpc_envelope_decode_request(buf, len, srv->max_msg, &call->arena,
	    &env, &st) != NRPC_OK) {
		atomic_fetch_add(&srv->stats.bad_envelope, 1);
		goto answer;
	}
	call->env = env;
	if (strcmp(env->method, NRPC_PING_METHOD) == 0) {
		goto answer; /* st is OK: an empty, successful reply */
	}
	if ((sm = srv_find(srv, env->method, strlen(env->method))) == NULL) {
		char name[NRPC_MAX_METHOD_BYTES + 1];

		atomic_fetch_add(&srv->stats.unimplemented, 1);
		nrpc_status_printable(name, sizeof(name), env->method,
		    strlen(env->method));
		nrpc_status_set(&st, NRPC_UNIMPLEMENTED, "UNIMPLEMENTED",
		    NULL, "unknown method %s", name);
		goto answer;
	}
	call->sm = sm;
	if (nrpc_envelope_decode_body(sm->m->input, env->body.data,
	    env->body.len, &call->arena, &call->req, &st) != NRPC_OK) {
		atomic_fetch_add(&srv->stats.bad_envelope, 1);
		goto answer;
	}
	call->deadline_ms = env->timeout_ms == 0 ? INT64_MAX :
	    now + (int64_t) env->timeout_ms;
	return true;
answer:
	srv_call_answer(call, &st);
	nrpc_status_fini(&st);
	return false;
}

/* srv_call_run runs a decoded call: the worker side of the pool, and the
 * inline path of nrpc_server_process. */
static void
srv_call_run(void *item, void *wstate, void *arg)
{
	nrpc_call *call = item;
	nrpc_server *srv = call->srv;
	const srv_method *sm = call->sm;
	const srv_service *svc = &srv->services[sm->svc];
	nrpc_status st = {0};
	nrpc_code rc;

	(void) arg;
	call->wstate = wstate;
	if (atomic_load(&srv->cancelling)) {
		nrpc_status_set(&st, NRPC_UNAVAILABLE, "SHUTTING_DOWN", NULL,
		    "server stopped before the call started");
		srv_call_answer(call, &st);
		return;
	}
	if (call->deadline_ms != INT64_MAX &&
	    ds_clock_now_ms(srv->clock) >= call->deadline_ms) {
		atomic_fetch_add(&srv->stats.deadline_exceeded, 1);
		nrpc_status_set(&st, NRPC_DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED",
		    NULL, "deadline (%" PRIu32 " ms) passed before %s started",
		    call->env->timeout_ms, sm->name);
		srv_call_answer(call, &st);
		return;
	}
	/* After a handler ran, the call belongs to it: it may be finished
	 * and reused by the next request before dispatch returns. */
	rc = svc->dispatch(svc->table, sm->index, call, call->req, svc->arg);
	if (rc == NRPC_OK) {
		return;
	}
	if (rc == NRPC_UNIMPLEMENTED) {
		atomic_fetch_add(&srv->stats.unimplemented, 1);
		nrpc_status_set(&st, NRPC_UNIMPLEMENTED, "UNIMPLEMENTED", NULL,
		    "method %s has no handler", sm->name);
	} else {
		ds_log(DS_LOG_ERROR, "nrpc", "dispatch of %s returned %s",
		    sm->name, nrpc_code_name(rc));
		nrpc_status_set(&st, NRPC_INTERNAL, "DISPATCH_FAILED", NULL,
		    "dispatch of %s failed (%s)", sm->name, nrpc_code_name(rc));
	}
	srv_call_answer(call, &st);
}

/* --- handler API --- */

void
nrpc_call_finish(nrpc_call *call, const nrpc_status *st,
    const ProtobufCMessage *resp)
{
	if (!DS_ALWAYS(call != NULL && st != NULL && call->env != NULL)) {
		return;
	}
	srv_call_pack(call, st, resp);
	srv_call_release(call);
	srv_call_complete(call);
}

void
nrpc_call_reply(nrpc_call *call, const ProtobufCMessage *resp)
{
	static const nrpc_status ok = {0};

	nrpc_call_finish(call, &ok, resp);
}

void
nrpc_call_fail(nrpc_call *call, nrpc_code code, const char *reason,
    const char *field, const char *fmt, ...)
{
	nrpc_status st = {0};
	va_list ap;

	va_start(ap, fmt);
	nrpc_status_vset(&st, code, reason, field, fmt, ap);
	va_end(ap);
	nrpc_call_finish(call, &st, NULL);
}

const nrpc_method *
nrpc_call_method(const nrpc_call *call)
{
	return call->sm != NULL ? call->sm->m : NULL;
}

void *
nrpc_call_worker_state(const nrpc_call *call)
{
	return call->wstate;
}

const char *
nrpc_call_request_id(const nrpc_call *call)
{
	return call->env != NULL ? call->env->request_id : "";
}

const char *
nrpc_call_client_name(const nrpc_call *call)
{
	return call->env != NULL ? call->env->client_name : "";
}

const char *
nrpc_call_metadata(const nrpc_call *call, const char *key)
{
	if (call->env == NULL || key == NULL) {
		return NULL;
	}
	for (size_t i = 0; i < call->env->n_metadata; i++) {
		if (strcmp(call->env->metadata[i]->key, key) == 0) {
			return call->env->metadata[i]->value;
		}
	}
	return NULL;
}

int64_t
nrpc_call_deadline_ms(const nrpc_call *call)
{
	return call->deadline_ms;
}

bool
nrpc_call_expired(const nrpc_call *call)
{
	return call->deadline_ms != INT64_MAX &&
	    ds_clock_now_ms(call->srv->clock) >= call->deadline_ms;
}

/* --- REP contexts --- */

/* srv_ctx_retire: a context's last operation ended with the socket
 * closed; it will never start another. The decrement is the caller's
 * last touch of the server (stop polls n_live). */
static void
srv_ctx_retire(srv_ctx *sc)
{
	atomic_fetch_sub(&sc->call.srv->n_live, 1);
}

/* srv_calls_done: one call counted in n_calls has been handed back. Last
 * touch of the server, as above. */
static void
srv_calls_done(nrpc_server *srv)
{
	atomic_fetch_sub(&srv->n_calls, 1);
}

/* srv_nng_enter admits a thread into nng_ctx_send/recv; false once the
 * socket is closing. seq_cst on both sides: either stop sees this thread
 * inside, or this thread sees stop's flag. */
static bool
srv_nng_enter(nrpc_server *srv)
{
	atomic_fetch_add(&srv->n_nng, 1);
	if (atomic_load(&srv->nng_closing)) {
		atomic_fetch_sub(&srv->n_nng, 1);
		return false;
	}
	return true;
}

static void
srv_nng_leave(nrpc_server *srv)
{
	atomic_fetch_sub(&srv->n_nng, 1);
}

/* --- requests in flight per connection --- */

static size_t
srv_pipe_hash(uint32_t id, size_t cap)
{
	return (size_t) (id * 2654435761u) & (cap - 1);
}

/* srv_pipe_add counts one more request in flight on pipe id (> 0) and
 * returns the new count. */
static uint32_t
srv_pipe_add(nrpc_server *srv, uint32_t id)
{
	size_t mask = srv->pipe_cap - 1;
	size_t i = srv_pipe_hash(id, srv->pipe_cap);
	uint32_t n;

	pthread_mutex_lock(&srv->pipe_mtx);
	while (srv->pipes[i].id != 0 && srv->pipes[i].id != id) {
		i = (i + 1) & mask;
	}
	srv->pipes[i].id = id;
	n = ++srv->pipes[i].n;
	pthread_mutex_unlock(&srv->pipe_mtx);
	return n;
}

/* srv_pipe_sub counts one request on pipe id out; at zero the slot is
 * emptied by backward-shift deletion, so no probe chain is broken. */
static void
srv_pipe_sub(nrpc_server *srv, uint32_t id)
{
	size_t mask = srv->pipe_cap - 1;
	size_t i = srv_pipe_hash(id, srv->pipe_cap);
	size_t j;

	pthread_mutex_lock(&srv->pipe_mtx);
	while (srv->pipes[i].id != id) {
		if (!DS_ALWAYS(srv->pipes[i].id != 0)) {
			goto out; /* not counted: a bug, but harmless */
		}
		i = (i + 1) & mask;
	}
	if (--srv->pipes[i].n > 0) {
		goto out;
	}
	for (j = (i + 1) & mask; srv->pipes[j].id != 0; j = (j + 1) & mask) {
		size_t k = srv_pipe_hash(srv->pipes[j].id, srv->pipe_cap);

		/* An entry whose home k lies cyclically in (i, j] stays. */
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j)) {
			continue;
		}
		srv->pipes[i] = srv->pipes[j];
		i = j;
	}
	srv->pipes[i].id = 0;
	srv->pipes[i].n = 0;
out:
	pthread_mutex_unlock(&srv->pipe_mtx);
}

/* srv_pipe_done: the call's request is no longer in flight on its
 * connection (reply handed over, dropped, or never to be sent). */
static void
srv_pipe_done(nrpc_server *srv, nrpc_call *call)
{
	int id = nng_pipe_id(call->pipe);

	if (id > 0) {
		srv_pipe_sub(srv, (uint32_t) id);
	}
	call->pipe = (nng_pipe) NNG_PIPE_INITIALIZER;
}

/* srv_pipe_admit counts call->msg's request against its connection.
 * True when it may proceed; false when it is one past
 * max_inflight_per_conn on a connection that is not inproc://: the
 * connection has then been closed, and the caller drops the request. */
static bool
srv_pipe_admit(nrpc_server *srv, nrpc_call *call)
{
	nng_pipe p = nng_msg_get_pipe(call->msg);
	int id = nng_pipe_id(p);
	nng_sockaddr sa;
	uint32_t n;

	call->pipe = (nng_pipe) NNG_PIPE_INITIALIZER;
	if (id <= 0) {
		return true; /* no connection to count against */
	}
	call->pipe = p;
	if ((n = srv_pipe_add(srv, (uint32_t) id)) <= srv->max_inflight) {
		return true;
	}
	if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) == 0 &&
	    sa.s_family == NNG_AF_INPROC) {
		return true; /* in-process: our own gateway, exempt */
	}
	srv_pipe_done(srv, call);
	/* ENOENT when an earlier request already closed it. */
	if (nng_pipe_close(p) == 0) {
		atomic_fetch_add(&srv->stats.closed_inflight, 1);
		ds_log(DS_LOG_WARN, "nrpc", "connection closed: %" PRIu32
		    " requests in flight, over max_inflight_per_conn (%u)", n,
		    srv->max_inflight);
	}
	return false;
}

static void
srv_ctx_recv(srv_ctx *sc)
{
	nrpc_server *srv = sc->call.srv;

	if (!srv_nng_enter(srv)) {
		srv_ctx_retire(sc);
		return;
	}
	sc->phase = SRV_PHASE_RECV;
	nng_aio_set_timeout(sc->aio, NNG_DURATION_INFINITE);
	nng_ctx_recv(sc->ctx, sc->aio);
	srv_nng_leave(srv);
}

/* srv_call_complete hands the packed reply back: to nng for a context,
 * to the waiting thread for a detached call. */
static void
srv_call_complete(nrpc_call *call)
{
	nrpc_server *srv = call->srv;
	bool counted = call->counted;
	nng_msg *msg = call->msg;

	call->msg = NULL;
	call->counted = false;
	if (call->sc != NULL) {
		srv_ctx *sc = call->sc;

		if (msg == NULL) {
			srv_pipe_done(srv, call);
			atomic_fetch_sub(&srv->stats.in_flight, 1);
			srv_ctx_recv(sc);
		} else if (!srv_nng_enter(srv)) {
			/* Stopped after the grace: the reply is dropped. */
			nng_msg_free(msg);
			srv_pipe_done(srv, call);
			atomic_fetch_sub(&srv->stats.in_flight, 1);
			srv_ctx_retire(sc);
		} else {
			sc->phase = SRV_PHASE_SEND;
			nng_aio_set_msg(sc->aio, msg);
			nng_aio_set_timeout(sc->aio, NRPC_SEND_TIMEOUT_MS);
			nng_ctx_send(sc->ctx, sc->aio);
			srv_nng_leave(srv);
		}
		/* sc may be serving its next request by now. */
	} else {
		srv_detached *dt = call->dt;
		uint8_t *copy = NULL;
		size_t len = 0;

		if (msg != NULL) {
			len = nng_msg_len(msg);
			if ((copy = ds_alloc(len)) != NULL) {
				memcpy(copy, nng_msg_body(msg), len);
			}
			nng_msg_free(msg);
		}
		atomic_fetch_sub(&srv->stats.in_flight, 1);
		if (copy != NULL) {
			atomic_fetch_add(&srv->stats.replied, 1);
		}
		pthread_mutex_lock(&dt->mtx);
		dt->reply = copy;
		dt->reply_len = copy != NULL ? len : 0;
		dt->done = true;
		pthread_cond_signal(&dt->cv);
		pthread_mutex_unlock(&dt->mtx);
	}
	if (counted) {
		srv_calls_done(srv);
	}
}

static void
srv_ctx_recv_done(srv_ctx *sc, int rv)
{
	nrpc_call *call = &sc->call;
	nrpc_server *srv = call->srv;

	if (rv != 0) {
		if (rv == NNG_ECLOSED) {
			srv_ctx_retire(sc);
			return;
		}
		/* Nothing else is expected (no timeout is set on receives);
		 * treat it as transient rather than lose the context. */
		ds_log(DS_LOG_WARN, "nrpc", "receive failed: %s",
		    nng_strerror(rv));
		srv_ctx_recv(sc);
		return;
	}
	call->msg = nng_aio_get_msg(sc->aio);
	nng_aio_set_msg(sc->aio, NULL);
	if (!srv_pipe_admit(srv, call)) {
		nng_msg_free(call->msg);
		call->msg = NULL;
		srv_ctx_recv(sc);
		return;
	}
	atomic_fetch_add(&srv->stats.received, 1);
	if (atomic_fetch_add(&srv->stats.in_flight, 1) + 1 >= srv->n_ctx) {
		atomic_fetch_add(&srv->saturations, 1);
	}
	/* Counted before the draining check (both seq_cst): either stop
	 * sees this call and waits for it, or this call sees draining. */
	call->counted = true;
	atomic_fetch_add(&srv->n_calls, 1);
	if (!srv_call_begin(call, ds_clock_now_ms(srv->clock))) {
		return;
	}
	if (atomic_load(&srv->cancelling)) {
		/* Stopping: answered SHUTTING_DOWN without a worker state,
		 * whose worker_init may use what the service already freed
		 * (a stop whose nng_close was abandoned still receives). */
		srv_call_run(call, NULL, srv);
		return;
	}
	if (srv->inline_handlers) {
		void *ws;

		if (!srv_inline_state(srv, &ws)) {
			nrpc_status st = {0};

			nrpc_status_set(&st, NRPC_UNAVAILABLE, "WORKER_INIT_FAILED",
			    NULL, "cannot set up this thread's worker state");
			srv_call_answer(call, &st);
			return;
		}
		srv_call_run(call, ws, srv);
		return;
	}
	if (!nrpc_pool_push(&srv->pool, call)) {
		nrpc_status st = {0};

		atomic_fetch_add(&srv->stats.overloaded, 1);
		nrpc_status_set(&st, NRPC_RESOURCE_EXHAUSTED, "OVERLOADED", NULL,
		    "server queue is full (max_queue %zu)", srv->max_queue);
		srv_call_answer(call, &st);
	}
}

static void
srv_ctx_send_done(srv_ctx *sc, int rv)
{
	nrpc_server *srv = sc->call.srv;
	nng_pipe pipe = sc->call.pipe;

	srv_pipe_done(srv, &sc->call);
	atomic_fetch_sub(&srv->stats.in_flight, 1);
	if (rv != 0) {
		nng_msg *msg = nng_aio_get_msg(sc->aio);

		/* A failed send leaves the message with us. */
		nng_aio_set_msg(sc->aio, NULL);
		nng_msg_free(msg);
		if (rv == NNG_ECLOSED) {
			srv_ctx_retire(sc);
			return;
		}
		/* NNG_ETIMEDOUT: the peer stopped reading. Its connection
		 * goes too: otherwise it keeps holding the contexts whose
		 * replies queue behind this one. */
		if (nng_pipe_id(pipe) > 0 && nng_pipe_close(pipe) == 0) {
			atomic_fetch_add(&srv->stats.closed_send_timeout, 1);
			ds_log(DS_LOG_WARN, "nrpc", "reply dropped and connection "
			    "closed: %s (send timeout %d ms)", nng_strerror(rv),
			    NRPC_SEND_TIMEOUT_MS);
		} else {
			ds_log(DS_LOG_WARN, "nrpc", "reply dropped: %s",
			    nng_strerror(rv));
		}
	} else {
		atomic_fetch_add(&srv->stats.replied, 1);
	}
	srv_ctx_recv(sc);
}

static void
srv_ctx_cb(void *arg)
{
	srv_ctx *sc = arg;
	int rv = nng_aio_result(sc->aio);

	if (sc->phase == SRV_PHASE_RECV) {
		srv_ctx_recv_done(sc, rv);
	} else {
		srv_ctx_send_done(sc, rv);
	}
}

/* --- start / stop --- */

static void
srv_ctxs_free(nrpc_server *srv)
{
	if (srv->ctxs == NULL) {
		return;
	}
	for (unsigned i = 0; i < srv->n_ctx; i++) {
		srv_ctx *sc = &srv->ctxs[i];

		/* nng_aio_free waits for a callback still returning. */
		if (sc->aio != NULL) {
			nng_aio_free(sc->aio);
		}
		nrpc_arena_fini(&sc->call.arena);
	}
	ds_free(srv->ctxs);
	srv->ctxs = NULL;
}

static nrpc_code
srv_nng_error(nrpc_status *st, int rv, const char *what)
{
	nrpc_code code = rv == NNG_ENOMEM ? NRPC_RESOURCE_EXHAUSTED :
	    NRPC_INTERNAL;

	nrpc_status_set(st, code, rv == NNG_ENOMEM ? "OUT_OF_MEMORY" :
	    "INTERNAL", NULL, "%s: %s", what, nng_strerror(rv));
	return code;
}

/* --- the listener watchdog (see NRPC_PING_METHOD in nrpc.h) --- */

static bool
srv_url_streams(const char *url)
{
	/* inproc:// has no handshake on a wire and cannot be broken so. */
	return strncmp(url, "inproc://", 9) != 0;
}

static bool
srv_dog_needed(const nrpc_server *srv)
{
	for (size_t u = 0; u < srv->n_urls; u++) {
		if (srv_url_streams(srv->urls[u])) {
			return true;
		}
	}
	return false;
}

/* srv_probe connects to url afresh and pings it; true when the ping is
 * answered (any reply counts: the listener accepted and the server
 * answered) or when url cannot be probed. A plain OS socket, not an nng
 * one: nrpc_probe.h says why. */
static bool
srv_probe(const char *url)
{
	Nrpc__V1__Request req = NRPC__V1__REQUEST__INIT;
	uint8_t buf[64];
	size_t len;

	req.method = (char *) NRPC_PING_METHOD;
	req.timeout_ms = NRPC_LISTENER_PROBE_TIMEOUT_MS;
	len = nrpc__v1__request__get_packed_size(&req);
	if (len > sizeof(buf)) {
		return true; /* cannot probe: do not act on it */
	}
	(void) nrpc__v1__request__pack(&req, buf);
	return nrpc_probe_url(url, buf, len, NRPC_LISTENER_PROBE_TIMEOUT_MS) !=
	       NRPC_PROBE_NO_ANSWER;
}

/* srv_abstime sets *ts to ms from now on clock clk, for a timed wait. */
static void
srv_abstime(clockid_t clk, int64_t ms, struct timespec *ts)
{
	(void) clock_gettime(clk, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* srv_dog_wait sleeps ms unless the server stops; false when stopping. */
static bool
srv_dog_wait(nrpc_server *srv, int64_t ms)
{
	struct timespec ts;
	bool stop;

	srv_abstime(CLOCK_REALTIME, ms, &ts);
	pthread_mutex_lock(&srv->dog_mtx);
	while (!srv->dog_stop &&
	    pthread_cond_timedwait(&srv->dog_cv, &srv->dog_mtx, &ts) == 0) {
	}
	stop = srv->dog_stop;
	pthread_mutex_unlock(&srv->dog_mtx);
	return !stop;
}

/* srv_saturated: every context holds a request (none is receiving). */
static bool
srv_saturated(nrpc_server *srv)
{
	return atomic_load(&srv->stats.in_flight) >= srv->n_ctx;
}

static void *
srv_dog_main(void *arg)
{
	nrpc_server *srv = arg;
	unsigned *misses = ds_calloc(srv->n_urls, sizeof(*misses));

	if (misses == NULL) {
		ds_log(DS_LOG_WARN, "nrpc", "listener watchdog: out of memory");
		return NULL;
	}
	while (srv_dog_wait(srv, srv->check_ms)) {
		for (size_t u = 0; u < srv->n_urls; u++) {
			int rv;

			uint64_t sat;
			bool busy;

			if (!srv_url_streams(srv->urls[u])) {
				continue;
			}
			sat = atomic_load(&srv->saturations);
			busy = srv_saturated(srv);
			atomic_fetch_add(&srv->probes, 1);
			if (srv_probe(srv->urls[u])) {
				misses[u] = 0;
				continue;
			}
			if (busy || srv_saturated(srv) ||
			    atomic_load(&srv->saturations) != sat) {
				/* Every context was in use: the ping waited for
				 * one like any request. Overload, not #1518. */
				atomic_fetch_add(&srv->probes_busy, 1);
				continue;
			}
			if (++misses[u] < NRPC_LISTENER_CHECK_FAILURES) {
				continue;
			}
			ds_log(DS_LOG_WARN, "nrpc", "%s stopped accepting "
			    "connections (nng #1518); listening again",
			    srv->urls[u]);
			(void) nng_listener_close(srv->lis[u]); /* may be dead */
			if ((rv = nng_listen(srv->sock, srv->urls[u], &srv->lis[u],
			         0)) != 0) {
				ds_log(DS_LOG_ERROR, "nrpc", "cannot listen on %s again: "
				    "%s", srv->urls[u], nng_strerror(rv));
				continue; /* try again at the next check */
			}
			misses[u] = 0;
			atomic_fetch_add(&srv->relistens, 1);
		}
	}
	ds_free(misses);
	return NULL;
}

static void *
srv_closer_main(void *arg)
{
	nrpc_server *srv = arg;

	(void) nng_close(srv->sock); /* every pending op ends: ECLOSED */
	return NULL;
}

/* srv_close_socket closes the socket on a thread of its own, so that stop
 * can give up on an nng_close that never returns; false when it did not
 * return within NRPC_CLOSE_TIMEOUT_MS. The thread is then left to the
 * process's exit, and srv, which it uses, is never freed. */
static bool
srv_close_socket(nrpc_server *srv)
{
	struct timespec ts;
	pthread_t t;

	if (pthread_create(&t, NULL, srv_closer_main, srv) != 0) {
		(void) nng_close(srv->sock); /* unbounded, but closed */
		return true;
	}
	srv_abstime(CLOCK_MONOTONIC, NRPC_CLOSE_TIMEOUT_MS, &ts);
	if (pthread_clockjoin_np(t, NULL, CLOCK_MONOTONIC, &ts) != 0) {
		(void) pthread_detach(t);
		return false;
	}
	return true;
}

/* srv_dog_stop stops the watchdog before the socket closes. */
static void
srv_dog_stop(nrpc_server *srv)
{
	if (!srv->dog_started) {
		return;
	}
	pthread_mutex_lock(&srv->dog_mtx);
	srv->dog_stop = true;
	pthread_cond_broadcast(&srv->dog_cv);
	pthread_mutex_unlock(&srv->dog_mtx);
	pthread_join(srv->dog, NULL);
	srv->dog_started = false;
}

int
nrpc_server_start(nrpc_server *srv, nrpc_status *st)
{
	nrpc_code rc;
	int rv;
	unsigned i;

	if (srv == NULL) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    NULL, "nrpc_server_start: NULL server");
		return NRPC_INVALID_ARGUMENT;
	}
	pthread_mutex_lock(&srv->mtx);
	if (srv->state != SRV_CREATED) {
		pthread_mutex_unlock(&srv->mtx);
		nrpc_status_set(st, NRPC_FAILED_PRECONDITION,
		    "FAILED_PRECONDITION", NULL, "server was already started");
		return NRPC_FAILED_PRECONDITION;
	}
	pthread_mutex_unlock(&srv->mtx);
	atomic_store(&srv->draining, false);
	atomic_store(&srv->cancelling, false);
	atomic_store(&srv->nng_closing, false);
	atomic_store(&srv->n_calls, 0);
	atomic_store(&srv->n_nng, 0);

	if ((rv = nng_rep0_open(&srv->sock)) != 0) {
		return srv_nng_error(st, rv, "cannot open REP socket");
	}
	if ((rv = nng_socket_set_size(srv->sock, NNG_OPT_RECVMAXSZ,
	    srv->max_msg + NRPC_RECVMAXSZ_SLACK)) != 0) {
		rc = srv_nng_error(st, rv, "cannot set recv-size-max");
		goto fail_sock;
	}
	if (srv->pipes == NULL) {
		for (srv->pipe_cap = 1; srv->pipe_cap < 2 * (size_t) srv->n_ctx;
		    srv->pipe_cap *= 2) {
		}
		if ((srv->pipes = ds_calloc(srv->pipe_cap,
		         sizeof(*srv->pipes))) == NULL) {
			nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED,
			    "OUT_OF_MEMORY", NULL, "out of memory allocating the "
			    "connection table");
			rc = NRPC_RESOURCE_EXHAUSTED;
			goto fail_sock;
		}
	}
	if ((srv->ctxs = ds_calloc(srv->n_ctx, sizeof(*srv->ctxs))) == NULL) {
		nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED, "OUT_OF_MEMORY",
		    NULL, "out of memory allocating %u contexts", srv->n_ctx);
		rc = NRPC_RESOURCE_EXHAUSTED;
		goto fail_sock;
	}
	for (i = 0; i < srv->n_ctx; i++) {
		srv_ctx *sc = &srv->ctxs[i];

		sc->call.srv = srv;
		sc->call.sc = sc;
		sc->call.deadline_ms = INT64_MAX;
		nrpc_arena_init(&sc->call.arena, srv->max_decoded);
		if ((rv = nng_aio_alloc(&sc->aio, srv_ctx_cb, sc)) != 0) {
			rc = srv_nng_error(st, rv, "cannot allocate an aio");
			goto fail_ctxs;
		}
		if ((rv = nng_ctx_open(&sc->ctx, srv->sock)) != 0) {
			rc = srv_nng_error(st, rv, "cannot open a context");
			goto fail_ctxs;
		}
		sc->opened = true;
	}
	/* Inline handlers run on nng's threads: a pool would idle. */
	if (!srv->inline_handlers &&
	    (rc = nrpc_pool_start(&srv->pool, srv->workers, srv->max_queue,
	         srv_call_run, srv, srv->worker_init, srv->worker_fini,
	         srv->worker_arg, st)) != NRPC_OK) {
		goto fail_ctxs;
	}
	if (srv->n_urls > 0 &&
	    (srv->lis = ds_calloc(srv->n_urls, sizeof(*srv->lis))) == NULL) {
		rc = NRPC_RESOURCE_EXHAUSTED;
		nrpc_status_set(st, rc, "OUT_OF_MEMORY", NULL,
		    "out of memory starting the server");
		goto fail_pool;
	}
	for (size_t u = 0; u < srv->n_urls; u++) {
		if ((rv = nng_listen(srv->sock, srv->urls[u], &srv->lis[u], 0)) !=
		    0) {
			bool bad = rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP ||
			    rv == NNG_EINVAL;

			rc = bad ? NRPC_INVALID_ARGUMENT : NRPC_UNAVAILABLE;
			nrpc_status_set(st, rc, bad ? "INVALID_URL" :
			    "LISTEN_FAILED", "urls", "cannot listen on %s: %s",
			    srv->urls[u], nng_strerror(rv));
			goto fail_pool;
		}
	}
	pthread_mutex_lock(&srv->mtx);
	srv->state = SRV_RUNNING;
	pthread_mutex_unlock(&srv->mtx);
	atomic_store(&srv->n_live, srv->n_ctx);
	for (i = 0; i < srv->n_ctx; i++) {
		srv_ctx_recv(&srv->ctxs[i]);
	}
	if (srv->check_ms > 0 && srv_dog_needed(srv)) {
		/* Without a watchdog the server still works; it just loses the
		 * defence against nng #1518. */
		if (pthread_create(&srv->dog, NULL, srv_dog_main, srv) == 0) {
			srv->dog_started = true;
		} else {
			ds_log(DS_LOG_WARN, "nrpc",
			    "cannot start the listener watchdog");
		}
	}
	return NRPC_OK;

fail_pool:
	/* Closing first: no operation was started, so nothing calls back,
	 * and the listeners that did start are gone before workers stop. */
	(void) nng_close(srv->sock); /* ECLOSED only if already closed */
	nrpc_pool_stop(&srv->pool);
	srv_inline_fini(srv);
	srv_ctxs_free(srv);
	return rc;
fail_ctxs:
	(void) nng_close(srv->sock); /* closes the contexts too */
	srv_ctxs_free(srv);
	return rc;
fail_sock:
	(void) nng_close(srv->sock);
	return rc;
}

/* srv_sleep_ms sleeps about ms milliseconds (EINTR only shortens it). */
static void
srv_sleep_ms(int64_t ms)
{
	struct timespec ts;

	ts.tv_sec = (time_t) (ms / 1000);
	ts.tv_nsec = (long) (ms % 1000) * 1000000;
	(void) nanosleep(&ts, NULL);
}

/* Stop polls its counters every millisecond instead of waiting on a
 * condition variable: a thread finishing a call then never needs to touch
 * the server after its final decrement, which is what makes freeing the
 * server right after stop safe. Stopping is rare; a millisecond of
 * latency is nothing. */
void
nrpc_server_stop(nrpc_server *srv, int64_t grace_ms)
{
	const ds_clock *mono = ds_clock_monotonic();
	int64_t deadline;
	int64_t left;
	bool closed;

	if (srv == NULL) {
		return;
	}
	pthread_mutex_lock(&srv->mtx);
	if (srv->state != SRV_RUNNING) {
		pthread_mutex_unlock(&srv->mtx);
		return;
	}
	srv->state = SRV_STOPPING;
	pthread_mutex_unlock(&srv->mtx);

	if (grace_ms < 0) {
		grace_ms = 0;
	}
	deadline = ds_clock_now_ms(mono) + grace_ms;
	srv_dog_stop(srv);
	atomic_store(&srv->draining, true);
	while (atomic_load(&srv->n_calls) > 0 &&
	    ds_clock_now_ms(mono) < deadline) {
		srv_sleep_ms(1);
	}
	if ((left = deadline - ds_clock_now_ms(mono)) > 0) {
		srv_sleep_ms(left < NRPC_STOP_LINGER_MS ? left :
		    NRPC_STOP_LINGER_MS);
	}

	atomic_store(&srv->cancelling, true);
	atomic_store(&srv->nng_closing, true);
	while (atomic_load(&srv->n_nng) > 0) {
		srv_sleep_ms(1); /* nng_ctx_send/recv never block */
	}
	closed = srv_close_socket(srv);
	if (!closed) {
		/* Calls that arrive now are answered SHUTTING_DOWN without a
		 * worker state (cancelling was set before n_calls drained, so
		 * a call counted after that sees it); the ones running finish.
		 * Then the worker states can go (their read connections must
		 * close before the store does); the contexts stay: nng may
		 * still complete their operations. */
		ds_log(DS_LOG_ERROR, "nrpc", "nng_close did not return within "
		    "%d ms (nng 1.5.2 #1518 left a pipe that never finishes "
		    "negotiating); leaving the socket to the process's exit",
		    NRPC_CLOSE_TIMEOUT_MS);
		srv->abandoned = true;
	}
	/* Handlers still holding calls must finish them; their replies are
	 * dropped and, once the socket is closed, their contexts retire. */
	while ((closed && atomic_load(&srv->n_live) > 0) ||
	    atomic_load(&srv->n_calls) > 0) {
		srv_sleep_ms(1);
	}
	nrpc_pool_stop(&srv->pool);
	srv_inline_fini(srv);
	if (closed) {
		srv_ctxs_free(srv);
	}
	pthread_mutex_lock(&srv->mtx);
	srv->state = SRV_STOPPED;
	pthread_mutex_unlock(&srv->mtx);
}

void
nrpc_server_destroy(nrpc_server *srv)
{
	if (srv == NULL) {
		return;
	}
	nrpc_server_stop(srv, 0);
	if (srv->abandoned) {
		return; /* see srv_close_socket */
	}
	/* States made by nrpc_server_process on a server never started. */
	srv_inline_fini(srv);
	srv_free(srv);
}

void
nrpc_server_stats_get(nrpc_server *srv, nrpc_server_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (srv == NULL) {
		return;
	}
	out->received = atomic_load(&srv->stats.received);
	out->replied = atomic_load(&srv->stats.replied);
	out->bad_envelope = atomic_load(&srv->stats.bad_envelope);
	out->unimplemented = atomic_load(&srv->stats.unimplemented);
	out->deadline_exceeded = atomic_load(&srv->stats.deadline_exceeded);
	out->in_flight = atomic_load(&srv->stats.in_flight);
	out->overloaded = atomic_load(&srv->stats.overloaded);
	out->relistens = atomic_load(&srv->relistens);
	out->conns_closed_inflight = atomic_load(&srv->stats.closed_inflight);
	out->conns_closed_send_timeout =
	    atomic_load(&srv->stats.closed_send_timeout);
	out->probes = atomic_load(&srv->probes);
	out->probes_busy = atomic_load(&srv->probes_busy);
}

/* --- the request path without sockets --- */

nrpc_code
nrpc_server_process(nrpc_server *srv, const uint8_t *buf, size_t len,
    uint8_t **reply, size_t *reply_len)
{
	srv_detached *dt;
	nrpc_code rc = NRPC_OK;

	if ((dt = ds_calloc(1, sizeof(*dt))) == NULL) {
		return NRPC_RESOURCE_EXHAUSTED;
	}
	if (nng_msg_alloc(&dt->call.msg, len) != 0) {
		ds_free(dt);
		return NRPC_RESOURCE_EXHAUSTED;
	}
	if (len > 0) {
		memcpy(nng_msg_body(dt->call.msg), buf, len);
	}
	pthread_mutex_init(&dt->mtx, NULL);
	pthread_cond_init(&dt->cv, NULL);
	dt->call.srv = srv;
	dt->call.dt = dt;
	dt->call.deadline_ms = INT64_MAX;
	nrpc_arena_init(&dt->call.arena, srv->max_decoded);
	atomic_fetch_add(&srv->stats.received, 1);
	atomic_fetch_add(&srv->stats.in_flight, 1);
	if (srv_call_begin(&dt->call, ds_clock_now_ms(srv->clock))) {
		void *ws = NULL;

		/* Handlers may need their worker state (datasync's reads
		 * need a read connection): the caller's thread gets one
		 * the way an nng thread does with inline_handlers. */
		if (srv->worker_init != NULL && !srv_inline_state(srv, &ws)) {
			nrpc_status st = {0};

			nrpc_status_set(&st, NRPC_UNAVAILABLE, "WORKER_INIT_FAILED",
			    NULL, "cannot set up this thread's worker state");
			srv_call_answer(&dt->call, &st);
		} else {
			srv_call_run(&dt->call, ws, srv);
		}
	}
	pthread_mutex_lock(&dt->mtx);
	while (!dt->done) {
		pthread_cond_wait(&dt->cv, &dt->mtx);
	}
	pthread_mutex_unlock(&dt->mtx);
	if (dt->reply == NULL) {
		rc = NRPC_RESOURCE_EXHAUSTED;
	} else {
		*reply = dt->reply;
		*reply_len = dt->reply_len;
	}
	nrpc_arena_fini(&dt->call.arena);
	pthread_cond_destroy(&dt->cv);
	pthread_mutex_destroy(&dt->mtx);
	ds_free(dt);
	return rc;
}
