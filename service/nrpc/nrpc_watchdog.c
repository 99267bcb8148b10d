/*
 * nrpc_watchdog.c - the listener watchdog (see NRPC_PING_METHOD in
 * nrpc.h): a thread that pings each stream listener over a fresh
 * connection (nrpc_probe.c) and listens again on a URL whose listener
 * stopped accepting (nng 1.5.2 #1518).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>

#include "ds_alloc.h"
#include "ds_log.h"
#include "nrpc_int.h"
#include "nrpc_probe.h"

static bool
srv_url_streams(const char *url)
{
	/* inproc:// has no handshake on a wire and cannot be broken so. */
	return strncmp(url, "inproc://", 9) != 0;
}

bool
nrpc_srv_dog_needed(const nrpc_server *srv)
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

/* srv_dog_wait sleeps ms unless the server stops; false when stopping. */
static bool
srv_dog_wait(nrpc_server *srv, int64_t ms)
{
	struct timespec ts;
	bool stop;

	ds_clock_abstime(CLOCK_REALTIME, ms, &ts);
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
	/* Parked calls hold no pool context. */
	return atomic_load(&srv->stats.in_flight) >=
	    srv->n_ctx + atomic_load(&srv->n_parked);
}

void *
nrpc_srv_dog_main(void *arg)
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
			if ((rv = nrpc_srv_listen(srv, u)) != 0) {
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

/* nrpc_srv_dog_stop stops the watchdog before the socket closes. */
void
nrpc_srv_dog_stop(nrpc_server *srv)
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
