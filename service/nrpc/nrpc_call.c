/*
 * nrpc_call.c - the server's request path and the handler API: one REP
 * socket, N contexts each driven by its own aio callback, a worker pool
 * (or nng's own threads, inline_handlers) for the handlers.
 *
 * A context's life is a loop of two aio operations:
 *
 *   recv --(callback: size check, decode, method lookup, body decode)-->
 *     worker queue --(worker: deadline check, dispatch)--> handler
 *     --(nrpc_call_finish, any thread: pack reply into the request's own
 *     nng_msg)--> send --(callback)--> recv ...
 *
 * With inline_handlers there is no worker queue: the receive callback
 * runs the handler itself (nrpc_srv_call_run) with the calling nng thread's
 * own worker state (srv_inline_state).
 *
 * A parked call (nrpc_call_park: a watch, a lock wait) keeps its context,
 * since the reply must go out on the nng context that received the
 * request; a replacement context (a spare closed one, else a new one on
 * srv->dyn) is opened and starts receiving, so the pool of n_ctx
 * receiving contexts stays whole. When the parked call's reply has been
 * handed over, its context rejoins the pool if the pool is short (a
 * replacement could not be opened), and is otherwise closed and kept as
 * a spare. Connections' removal (NNG_PIPE_EV_REM_POST) marks their entry
 * in the per-connection table, which nrpc_call_peer_gone reads.
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
 *   nng). Every such call is therefore bracketed by nrpc_nng_enter/leave,
 *   and stop closes the socket only once no thread is inside and none can
 *   enter;
 * - threads that finish work touch the server last with one atomic
 *   decrement, and stop polls those counters, so a finishing thread never
 *   touches memory stop has freed.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdatomic.h>
#include <string.h>

#include <nng/nng.h>

#include "ds_alloc.h"
#include "ds_log.h"
#include "nrpc_int.h"

static void srv_call_complete(nrpc_call *call);
static void srv_ctx_next(srv_ctx *sc);
static void srv_park_drop(srv_ctx *sc);

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

/* nrpc_srv_inline_fini releases every inline worker state (server stopped). */
void
nrpc_srv_inline_fini(nrpc_server *srv)
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
	if ((sm = nrpc_srv_find(srv, env->method,
	         strlen(env->method))) == NULL) {
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

/* nrpc_srv_call_run runs a decoded call: the worker side of the pool, and the
 * inline path of nrpc_server_process. */
void
nrpc_srv_call_run(void *item, void *wstate, void *arg)
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

nrpc_peer_kind
nrpc_call_peer(const nrpc_call *call, char *buf, size_t len)
{
	nrpc_peer_kind kind = NRPC_PEER_NONE;
	nng_sockaddr sa;
	char text[INET6_ADDRSTRLEN] = "";

	if (call == NULL || nng_pipe_id(call->pipe) <= 0 ||
	    nng_pipe_get_addr(call->pipe, NNG_OPT_REMADDR, &sa) != 0) {
		goto out;
	}
	switch (sa.s_family) {
	case NNG_AF_INPROC:
		(void) snprintf(text, sizeof(text), "inproc");
		kind = NRPC_PEER_LOCAL;
		break;
	case NNG_AF_IPC:
	case NNG_AF_ABSTRACT:
		(void) snprintf(text, sizeof(text), "ipc");
		kind = NRPC_PEER_LOCAL;
		break;
	case NNG_AF_INET:
		/* sa_addr is in network byte order, as inet_ntop wants */
		if (inet_ntop(AF_INET, &sa.s_in.sa_addr, text,
		    sizeof(text)) != NULL) {
			kind = NRPC_PEER_NET;
		}
		break;
	case NNG_AF_INET6:
		if (inet_ntop(AF_INET6, sa.s_in6.sa_addr, text,
		    sizeof(text)) != NULL) {
			kind = NRPC_PEER_NET;
		}
		break;
	default:
		break; /* zerotier, abstract sockets: not ours */
	}
out:
	if (len > 0) {
		(void) snprintf(buf, len, "%s", kind != NRPC_PEER_NONE ? text : "");
	}
	return kind;
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

/* --- requests in flight per connection --- */

static size_t
srv_pipe_hash(uint32_t id, size_t cap)
{
	return (size_t) (id * 2654435761u) & (cap - 1);
}

/* srv_pipe_slot_find returns pipe id's slot, or NULL. pipe_mtx held. */
static srv_pipe_slot *
srv_pipe_slot_find(nrpc_server *srv, uint32_t id)
{
	size_t mask = srv->pipe_cap - 1;
	size_t i = srv_pipe_hash(id, srv->pipe_cap);

	while (srv->pipes[i].id != 0) {
		if (srv->pipes[i].id == id) {
			return &srv->pipes[i];
		}
		i = (i + 1) & mask;
	}
	return NULL;
}

/* srv_pipe_add counts one more request in flight on pipe id (> 0) and
 * returns how many of those on it are not parked. */
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
	n = ++srv->pipes[i].n - srv->pipes[i].n_parked;
	pthread_mutex_unlock(&srv->pipe_mtx);
	return n;
}

/* srv_pipe_park: one of pipe id's requests is parked. Its entry was
 * made when the request was counted; a removal notified before that is
 * in the ring (NRPC_GONE_RING), one after it marked the entry. Checked
 * here rather than per request, to keep the ring off the hot path. */
static void
srv_pipe_park(nrpc_server *srv, uint32_t id)
{
	srv_pipe_slot *s;

	pthread_mutex_lock(&srv->pipe_mtx);
	if (DS_ALWAYS((s = srv_pipe_slot_find(srv, id)) != NULL)) {
		s->n_parked++;
		for (size_t k = 0; k < NRPC_GONE_RING && !s->gone; k++) {
			s->gone = srv->gone_ring[k] == id;
		}
	}
	pthread_mutex_unlock(&srv->pipe_mtx);
}

/* nrpc_srv_pipe_removed marks the connection's entry gone, and remembers
 * the id for a request of it not yet counted (NRPC_GONE_RING). */
void
nrpc_srv_pipe_removed(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	nrpc_server *srv = arg;
	int id = nng_pipe_id(p);
	srv_pipe_slot *s;

	if (ev != NNG_PIPE_EV_REM_POST || id <= 0) {
		return;
	}
	pthread_mutex_lock(&srv->pipe_mtx);
	if ((s = srv_pipe_slot_find(srv, (uint32_t) id)) != NULL) {
		s->gone = true;
	}
	srv->gone_ring[srv->gone_next] = (uint32_t) id;
	srv->gone_next = (srv->gone_next + 1) % NRPC_GONE_RING;
	pthread_mutex_unlock(&srv->pipe_mtx);
}

/* srv_pipe_sub counts one request on pipe id out; at zero the slot is
 * emptied by backward-shift deletion, so no probe chain is broken. */
static void
srv_pipe_sub(nrpc_server *srv, uint32_t id, bool parked)
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
	if (parked && DS_ALWAYS(srv->pipes[i].n_parked > 0)) {
		srv->pipes[i].n_parked--;
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
	srv->pipes[i].n_parked = 0;
	srv->pipes[i].gone = false;
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
		srv_pipe_sub(srv, (uint32_t) id, call->parked);
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

void
nrpc_srv_ctx_recv(srv_ctx *sc)
{
	nrpc_server *srv = sc->call.srv;

	if (!nrpc_nng_enter(&srv->n_nng, &srv->nng_closing)) {
		srv_ctx_retire(sc);
		return;
	}
	sc->phase = SRV_PHASE_RECV;
	nng_aio_set_timeout(sc->aio, NNG_DURATION_INFINITE);
	nng_ctx_recv(sc->ctx, sc->aio);
	nrpc_nng_leave(&srv->n_nng);
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
			srv_ctx_next(sc);
		} else if (!nrpc_nng_enter(&srv->n_nng, &srv->nng_closing)) {
			/* Stopped after the grace: the reply is dropped. */
			nng_msg_free(msg);
			srv_pipe_done(srv, call);
			atomic_fetch_sub(&srv->stats.in_flight, 1);
			srv_park_drop(sc);
			srv_ctx_retire(sc);
		} else {
			sc->phase = SRV_PHASE_SEND;
			nng_aio_set_msg(sc->aio, msg);
			nng_aio_set_timeout(sc->aio, NRPC_SEND_TIMEOUT_MS);
			nng_ctx_send(sc->ctx, sc->aio);
			nrpc_nng_leave(&srv->n_nng);
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
		nrpc_srv_ctx_recv(sc);
		return;
	}
	call->msg = nng_aio_get_msg(sc->aio);
	nng_aio_set_msg(sc->aio, NULL);
	if (!srv_pipe_admit(srv, call)) {
		nng_msg_free(call->msg);
		call->msg = NULL;
		nrpc_srv_ctx_recv(sc);
		return;
	}
	atomic_fetch_add(&srv->stats.received, 1);
	if (atomic_fetch_add(&srv->stats.in_flight, 1) + 1 >=
	    srv->n_ctx + atomic_load(&srv->n_parked)) {
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
		nrpc_srv_call_run(call, NULL, srv);
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
		nrpc_srv_call_run(call, ws, srv);
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
			srv_park_drop(sc);
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
	srv_ctx_next(sc);
}

void
nrpc_srv_ctx_cb(void *arg)
{
	srv_ctx *sc = arg;
	int rv = nng_aio_result(sc->aio);

	if (sc->phase == SRV_PHASE_RECV) {
		srv_ctx_recv_done(sc, rv);
	} else {
		srv_ctx_send_done(sc, rv);
	}
}

/* --- parked calls --- */

/* srv_ctx_new allocates a context beyond srv->ctxs, linked on srv->dyn
 * (freed by stop); NULL when out of memory. Its nng context is not open. */
static srv_ctx *
srv_ctx_new(nrpc_server *srv)
{
	srv_ctx *sc;

	if ((sc = ds_calloc(1, sizeof(*sc))) == NULL) {
		return NULL;
	}
	sc->call.srv = srv;
	sc->call.sc = sc;
	sc->call.deadline_ms = INT64_MAX;
	sc->dyn = true;
	nrpc_arena_init(&sc->call.arena, srv->max_decoded);
	if (nng_aio_alloc(&sc->aio, nrpc_srv_ctx_cb, sc) != 0) {
		ds_free(sc);
		return NULL;
	}
	pthread_mutex_lock(&srv->park_mtx);
	sc->dyn_next = srv->dyn;
	srv->dyn = sc;
	pthread_mutex_unlock(&srv->park_mtx);
	return sc;
}

/* srv_spare_put keeps a closed context for the next replacement. */
static void
srv_spare_put(nrpc_server *srv, srv_ctx *sc)
{
	pthread_mutex_lock(&srv->park_mtx);
	sc->spare_next = srv->spare;
	srv->spare = sc;
	pthread_mutex_unlock(&srv->park_mtx);
}

/* srv_pool_refill opens a context (spare, else new) and starts it
 * receiving, replacing a parked one in the pool. Called by a handler
 * that holds a counted call, so stop cannot free contexts meanwhile.
 * On failure the pool stays one short (srv_ctx_next makes up for it). */
static void
srv_pool_refill(nrpc_server *srv, srv_ctx *sc)
{
	int rv = NNG_ECLOSED;
	bool full;

	/* A parked context that finished meanwhile may have rejoined. */
	pthread_mutex_lock(&srv->park_mtx);
	if (!(full = srv->n_pool >= srv->n_ctx)) {
		srv->n_pool++; /* reserved; given back on failure */
	}
	pthread_mutex_unlock(&srv->park_mtx);
	if (full) {
		if (sc != NULL) {
			srv_spare_put(srv, sc);
		}
		return;
	}
	if (sc == NULL && (sc = srv_ctx_new(srv)) == NULL) {
		ds_log(DS_LOG_WARN, "nrpc", "out of memory replacing a parked "
		    "call's context; the pool is one short");
		goto fail;
	}
	if (nrpc_nng_enter(&srv->n_nng, &srv->nng_closing)) {
		rv = nng_ctx_open(&sc->ctx, srv->sock);
		nrpc_nng_leave(&srv->n_nng);
	}
	if (rv != 0) {
		if (rv != NNG_ECLOSED) {
			ds_log(DS_LOG_WARN, "nrpc", "cannot open a context to "
			    "replace a parked call's: %s; the pool is one short",
			    nng_strerror(rv));
		}
		srv_spare_put(srv, sc);
		goto fail;
	}
	sc->opened = true;
	/* Counted live before its first operation, as start does. */
	atomic_fetch_add(&srv->n_live, 1);
	nrpc_srv_ctx_recv(sc);
	return;
fail:
	pthread_mutex_lock(&srv->park_mtx);
	srv->n_pool--;
	pthread_mutex_unlock(&srv->park_mtx);
}

/* srv_park_drop: a parked call's context is done with it (reply handed
 * over or dropped) while the server stops: only the count changes. */
static void
srv_park_drop(srv_ctx *sc)
{
	nrpc_server *srv = sc->call.srv;

	if (!sc->call.parked) {
		return;
	}
	sc->call.parked = false;
	pthread_mutex_lock(&srv->park_mtx);
	atomic_fetch_sub(&srv->n_parked, 1);
	pthread_mutex_unlock(&srv->park_mtx);
}

/* srv_ctx_next: the context is done with its call (reply handed over or
 * dropped). An ordinary context receives again. A parked call's context
 * rejoins the pool when the pool is short, and is otherwise closed and
 * kept as a spare, so the pool stays at n_ctx contexts. */
static void
srv_ctx_next(srv_ctx *sc)
{
	nrpc_server *srv = sc->call.srv;
	bool rejoin;

	if (!sc->call.parked) {
		nrpc_srv_ctx_recv(sc);
		return;
	}
	sc->call.parked = false;
	pthread_mutex_lock(&srv->park_mtx);
	atomic_fetch_sub(&srv->n_parked, 1);
	if ((rejoin = srv->n_pool < srv->n_ctx)) {
		srv->n_pool++;
	}
	pthread_mutex_unlock(&srv->park_mtx);
	if (rejoin) {
		nrpc_srv_ctx_recv(sc);
		return;
	}
	/* Closing while stop closes the socket is left to the socket. */
	if (nrpc_nng_enter(&srv->n_nng, &srv->nng_closing)) {
		(void) nng_ctx_close(sc->ctx);
		nrpc_nng_leave(&srv->n_nng);
	}
	sc->opened = false;
	/* A spare keeps no decode memory (the first chunk is 4 KiB). */
	nrpc_arena_fini(&sc->call.arena);
	nrpc_arena_init(&sc->call.arena, srv->max_decoded);
	/* Once spare, another thread may reuse sc: srv was read before. */
	srv_spare_put(srv, sc);
	atomic_fetch_sub(&srv->n_live, 1); /* retired; last touch */
}

nrpc_code
nrpc_call_park(nrpc_call *call, nrpc_status *st)
{
	nrpc_server *srv;
	srv_ctx *spare;
	int id;

	if (!DS_ALWAYS(call != NULL)) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    NULL, "nrpc_call_park: NULL call");
		return NRPC_INVALID_ARGUMENT;
	}
	if (call->sc == NULL || call->parked) {
		return NRPC_OK; /* detached: holds no context; or again */
	}
	srv = call->srv;
	pthread_mutex_lock(&srv->park_mtx);
	if (atomic_load(&srv->n_parked) >= srv->max_parked) {
		pthread_mutex_unlock(&srv->park_mtx);
		atomic_fetch_add(&srv->parked_refused, 1);
		nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED, "TOO_MANY_PARKED",
		    NULL, "too many parked calls: max_parked (%zu)",
		    srv->max_parked);
		return NRPC_RESOURCE_EXHAUSTED;
	}
	atomic_fetch_add(&srv->n_parked, 1);
	srv->n_pool--;
	if ((spare = srv->spare) != NULL) {
		srv->spare = spare->spare_next;
	}
	pthread_mutex_unlock(&srv->park_mtx);
	call->parked = true;
	atomic_fetch_add(&srv->parked_total, 1);
	if ((id = nng_pipe_id(call->pipe)) > 0) {
		srv_pipe_park(srv, (uint32_t) id);
	}
	srv_pool_refill(srv, spare);
	return NRPC_OK;
}

bool
nrpc_call_peer_gone(const nrpc_call *call)
{
	nrpc_server *srv;
	srv_pipe_slot *s;
	bool gone = false;
	int id;

	if (call == NULL || call->sc == NULL) {
		return false;
	}
	srv = call->srv;
	if (atomic_load(&srv->draining)) {
		return true; /* stopping: let go (nrpc_server_stop) */
	}
	if ((id = nng_pipe_id(call->pipe)) <= 0) {
		return false;
	}
	pthread_mutex_lock(&srv->pipe_mtx);
	if ((s = srv_pipe_slot_find(srv, (uint32_t) id)) != NULL) {
		gone = s->gone;
	}
	pthread_mutex_unlock(&srv->pipe_mtx);
	return gone;
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
			nrpc_srv_call_run(&dt->call, ws, srv);
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
