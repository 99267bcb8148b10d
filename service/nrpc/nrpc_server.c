/*
 * nrpc_server.c - the RPC server: configuration, services and method
 * lookup, start, stop and statistics.
 *
 * The request path (a REP context's recv/send loop, the handler API, the
 * per-connection accounting, inline worker states, the socket-less path)
 * is in nrpc_call.c; the listener watchdog is in nrpc_watchdog.c. The
 * three share the server's types, declared in nrpc_int.h.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "ds_alloc.h"
#include "ds_log.h"
#include "nrpc_int.h"
#include "nrpc_tls.h"

/* srv_next_id numbers servers so that a thread's cached inline state can
 * never be mistaken for that of a later server at the same address. */
static atomic_uint_fast64_t srv_next_id = 1;

/* --- configuration --- */

void
nrpc_server_config_default(nrpc_server_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->contexts = NRPC_CONTEXTS_DEFAULT;
	cfg->max_message_bytes = NRPC_MAX_MESSAGE_BYTES_DEFAULT;
	cfg->max_queue = NRPC_MAX_QUEUE_DEFAULT;
	cfg->max_inflight_per_conn = NRPC_MAX_INFLIGHT_PER_CONN_DEFAULT;
	cfg->max_parked = NRPC_MAX_PARKED_DEFAULT;
}

static nrpc_code
srv_bad_config(nrpc_status *st, const char *field, uint64_t v, uint64_t max)
{
	nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT", field,
	    "%s (%" PRIu64 ") exceeds its hard maximum (%" PRIu64 ")", field, v,
	    max);
	return NRPC_INVALID_ARGUMENT;
}

int
nrpc_srv_listen(nrpc_server *srv, size_t u)
{
	int rv;

	if (!nrpc_url_is_tls(srv->urls[u])) {
		return nng_listen(srv->sock, srv->urls[u], &srv->lis[u], 0);
	}
	if ((rv = nng_listener_create(&srv->lis[u], srv->sock,
	         srv->urls[u])) != 0) {
		return rv;
	}
	if ((rv = nng_listener_set_ptr(srv->lis[u], NNG_OPT_TLS_CONFIG,
	         srv->tls)) != 0 ||
	    (rv = nng_listener_start(srv->lis[u], 0)) != 0) {
		(void) nng_listener_close(srv->lis[u]);
	}
	return rv;
}

static void
srv_free(nrpc_server *srv)
{
	for (size_t i = 0; i < srv->n_urls; i++) {
		ds_free(srv->urls[i]);
	}
	ds_free(srv->urls);
	if (srv->tls != NULL) {
		nng_tls_config_free(srv->tls);
	}
	ds_free(srv->services);
	ds_free(srv->methods);
	ds_free(srv->inl);
	ds_free(srv->lis);
	ds_free(srv->pipes);
	pthread_mutex_destroy(&srv->park_mtx);
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
	if (cfg->max_parked > NRPC_MAX_PARKED_HARD) {
		return srv_bad_config(st, "max_parked", cfg->max_parked,
		    NRPC_MAX_PARKED_HARD);
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
	if (pthread_mutex_init(&srv->park_mtx, NULL) != 0) {
		pthread_mutex_destroy(&srv->pipe_mtx);
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
	for (size_t i = 0; i < cfg->n_urls; i++) {
		nrpc_code rc;

		if (!nrpc_url_is_tls(cfg->urls[i]) || srv->tls != NULL) {
			continue;
		}
		if ((rc = nrpc_tls_server(cfg->tls_cert_file, cfg->tls_key_file,
		         cfg->tls_client_ca_file, &srv->tls, st)) != NRPC_OK) {
			srv_free(srv);
			return rc;
		}
	}
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
	srv->max_parked = cfg->max_parked > 0 ? cfg->max_parked :
	    NRPC_MAX_PARKED_DEFAULT;
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

const srv_method *
nrpc_srv_find(const nrpc_server *srv, const char *name, size_t len)
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
		if (nrpc_srv_find(srv, m->full_name, len) != NULL ||
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

/* --- start / stop --- */

static void
srv_ctxs_free(nrpc_server *srv)
{
	srv_ctx *d;

	while ((d = srv->dyn) != NULL) {
		srv->dyn = d->dyn_next;
		nng_aio_free(d->aio); /* waits for a callback returning */
		nrpc_arena_fini(&d->call.arena);
		ds_free(d);
	}
	srv->spare = NULL;
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
	ds_clock_abstime(CLOCK_MONOTONIC, NRPC_CLOSE_TIMEOUT_MS, &ts);
	if (pthread_clockjoin_np(t, NULL, CLOCK_MONOTONIC, &ts) != 0) {
		(void) pthread_detach(t);
		return false;
	}
	return true;
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
	/* Before any listener: every connection's removal is seen. */
	if ((rv = nng_pipe_notify(srv->sock, NNG_PIPE_EV_REM_POST,
	    nrpc_srv_pipe_removed, srv)) != 0) {
		rc = srv_nng_error(st, rv, "cannot watch connections");
		goto fail_sock;
	}
	if (srv->pipes == NULL) {
		size_t want = 2 * ((size_t) srv->n_ctx + srv->max_parked);

		for (srv->pipe_cap = 1; srv->pipe_cap < want;
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
		if ((rv = nng_aio_alloc(&sc->aio, nrpc_srv_ctx_cb, sc)) != 0) {
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
	         nrpc_srv_call_run, srv, srv->worker_init, srv->worker_fini,
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
		if ((rv = nrpc_srv_listen(srv, u)) != 0) {
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
	pthread_mutex_lock(&srv->park_mtx);
	srv->n_pool = srv->n_ctx;
	pthread_mutex_unlock(&srv->park_mtx);
	atomic_store(&srv->n_live, srv->n_ctx);
	for (i = 0; i < srv->n_ctx; i++) {
		nrpc_srv_ctx_recv(&srv->ctxs[i]);
	}
	if (srv->check_ms > 0 && nrpc_srv_dog_needed(srv)) {
		/* Without a watchdog the server still works; it just loses the
		 * defence against nng #1518. */
		if (pthread_create(&srv->dog, NULL, nrpc_srv_dog_main, srv) ==
		    0) {
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
	nrpc_srv_inline_fini(srv);
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
	nrpc_srv_dog_stop(srv);
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
	 * dropped and, once the socket is closed, their contexts retire.
	 * Parked calls get a bound: their holders were told (peer_gone) when
	 * stop began, and a holder that never lets go must not hang stop. */
	deadline = ds_clock_now_ms(mono) + NRPC_STOP_PARKED_WAIT_MS;
	while ((closed && atomic_load(&srv->n_live) > 0) ||
	    atomic_load(&srv->n_calls) > 0) {
		size_t parked = atomic_load(&srv->n_parked);

		if (parked > 0 && atomic_load(&srv->n_calls) <= parked &&
		    ds_clock_now_ms(mono) >= deadline) {
			ds_log(DS_LOG_ERROR, "nrpc", "%zu parked calls not "
			    "finished %d ms after the grace; leaving the server "
			    "to the process's exit", parked,
			    NRPC_STOP_PARKED_WAIT_MS);
			srv->abandoned = true;
			closed = false; /* their contexts stay allocated */
			break;
		}
		srv_sleep_ms(1);
	}
	nrpc_pool_stop(&srv->pool);
	nrpc_srv_inline_fini(srv);
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
	nrpc_srv_inline_fini(srv);
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
	out->n_parked = atomic_load(&srv->n_parked);
	out->parked_total = atomic_load(&srv->parked_total);
	out->parked_refused = atomic_load(&srv->parked_refused);
}
