/*
 * watch_bench.c - the change feed under load (issue 11, tests/bench/
 * watch.sh): how long a committed write takes to reach N watchers, and
 * N idle watchers held open so the caller can measure what they cost.
 *
 *   watch_bench latency --url URL [--http HOST:PORT] --transport rpc|sse
 *                       --watchers N --writes W [--interval-ms MS]
 *   watch_bench idle    --url URL [--http HOST:PORT] --transport rpc|sse
 *                       --watchers N
 *
 * latency: N watchers on the prefix "lat/" (RPC: Watch long polls through
 * the async stubs, spread over one connection per WB_WATCHERS_PER_CONN
 * watchers; SSE: N GET /v1/events streams in one poll loop). A warm-up
 * write must reach every watcher before the measured run, which proves
 * each one's call or stream reached the server. Then one writer does W
 * sequential CAS Updates of "lat/k", about --interval-ms apart, noting the
 * send time of each version before sending it and its ack time after.
 * Each watcher records, per event, now - send_time[version]. It prints
 * one line of key=value pairs: p50/p99/max of sent -> delivered over all
 * watchers' events, p50/p99 of sent -> acked (the commit), and the events
 * received against N x W. A missing, duplicate or out-of-order event is
 * an error: exit 1.
 *
 * idle: N watchers on "idle/" (nobody writes there). RPC: each watcher's
 * first Watch waits 1 ms, so its progress reply proves the server parked
 * and answered it; the next one waits WB_WATCH_WAIT_MS; then a Get on each
 * connection, queued behind those Watches, is answered. SSE: every stream
 * has its 200 and the gateway's "retry:" line. Then it prints "ready" and
 * holds the watchers until stdin closes or SIGTERM/SIGINT, and exits 0.
 *
 * Exit: 0 ok, 1 a failure (named on stderr), 2 usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

#include "bench.h"
#include "datasync.h"

enum {
	WB_EXIT_OK = 0,
	WB_EXIT_FAIL = 1,
	WB_EXIT_USAGE = 2,
};

/* --- limits --- */

/* Watchers: each SSE watcher is a socket, each RPC one a parked call;
 * datasyncd parks 65536 at most (NRPC_MAX_PARKED_HARD). */
#define WB_WATCHERS_MAX 20000
/* Writes: each costs a send-time slot and, per watcher, a latency slot. */
#define WB_WRITES_MAX 100000
#define WB_INTERVAL_MS_MAX 1000
/* RPC watchers per connection: a burst of re-armed Watches counts
 * against the server's per-connection in-flight cap (512 by default)
 * until each is parked, so stay well below it. */
#define WB_WATCHERS_PER_CONN 100
/* A Watch's wait (the server allows 60 s); the call's own deadline is
 * this plus WB_CALL_MARGIN_MS. */
#define WB_WATCH_WAIT_MS 30000
#define WB_CALL_MARGIN_MS 5000
/* How long the warm-up event may take to reach every watcher, and the
 * last measured event after the last write: generous, as the machine is
 * shared; running out is a failure, not a wait. */
#define WB_READY_TIMEOUT_MS 60000
#define WB_DRAIN_TIMEOUT_MS 20000
/* An SSE connection's line buffer: one Event's JSON without its value
 * is a few hundred bytes. */
#define WB_SSE_BUF 8192
#define WB_SSE_POLL_MS 100
#define WB_HOST_MAX 256
#define WB_ERR_MAX 512
#define WB_PREFIX_LAT "lat/"
#define WB_KEY_LAT "lat/k"
#define WB_PREFIX_IDLE "idle/"
#define WB_CLIENT_NAME "watch-bench"

typedef enum wb_mode { WB_LATENCY, WB_IDLE } wb_mode;
typedef enum wb_transport { WB_RPC, WB_SSE } wb_transport;

typedef struct wb_opts {
	wb_mode mode;
	wb_transport transport;
	const char *url;   /* borrowed from argv */
	const char *http;  /* HOST:PORT; borrowed from argv */
	unsigned watchers;
	unsigned writes;
	unsigned interval_ms;
} wb_opts;

typedef struct wb_run wb_run;

/* wb_watcher: one watcher. An RPC watcher's fields are used by one
 * callback at a time (each reply starts the next call); an SSE watcher's
 * by the SSE thread only. */
typedef struct wb_watcher {
	wb_run *run;
	unsigned id;
	datasync_client *c;  /* borrowed from run->clients */
	uint64_t cursor;     /* after_revision of the next Watch */
	bool anchored;       /* a reply has set cursor (else: from now) */
	uint64_t last_version; /* the last version seen, for order */
	bool warm_seen;
	bool armed;          /* idle: the 1 ms first round is over */
	uint64_t *lat;       /* owned; writes slots of ns */
	unsigned n_lat;
	/* SSE */
	int fd;
	char buf[WB_SSE_BUF];
	size_t have;
	bool in_body;
	bool streaming;
} wb_watcher;

struct wb_run {
	const wb_opts *o;
	datasync_client *writer;    /* owned */
	datasync_client **clients;  /* owned; n_clients (RPC watchers) */
	unsigned n_clients;
	wb_watcher *w;              /* owned; o->watchers */
	const char *prefix;
	uint64_t start_revision;    /* watchers see what follows it */
	uint64_t v_warm;            /* the warm-up write's version */
	uint64_t v_first;           /* the first measured version */
	_Atomic uint64_t *send_ns;  /* owned; o->writes, by version - v_first */
	bench_hist ack;             /* writer thread only */
	atomic_bool stop;
	atomic_uint_fast64_t events;  /* measured events received */
	atomic_uint warm;             /* watchers that saw the warm-up */
	atomic_uint rearmed;          /* RPC: re-armed after warm / round 1 */
	atomic_uint ready;            /* SSE: streams open */
	atomic_uint_fast64_t errors;
	pthread_mutex_t mtx;
	pthread_cond_t cv;          /* signalled when a counter above moves;
	                             * mtx guards no field, it orders the
	                             * signal after a waiter's check */
	atomic_flag err_claimed;
	char first_err[WB_ERR_MAX];
};

static uint64_t
wb_now_ns(void)
{
	return bench_now_ns();
}

static void
wb_signal(wb_run *r)
{
	pthread_mutex_lock(&r->mtx);
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mtx);
}

/* wb_fail counts an error; the first one is kept for the report. */
static void wb_fail(wb_run *r, const char *fmt, ...) DS_PRINTF(2, 3);

static void
wb_fail(wb_run *r, const char *fmt, ...)
{
	va_list ap;

	atomic_fetch_add(&r->errors, 1);
	if (!atomic_flag_test_and_set(&r->err_claimed)) {
		va_start(ap, fmt);
		(void) vsnprintf(r->first_err, sizeof(r->first_err), fmt, ap);
		va_end(ap);
	}
	wb_signal(r);
}

/* wb_event handles one event of watcher w seen at now. */
static void
wb_event(wb_watcher *w, const char *key, uint64_t version, uint64_t now)
{
	wb_run *r = w->run;
	uint64_t i;
	uint64_t sent;

	if (strcmp(key, WB_KEY_LAT) != 0) {
		wb_fail(r, "watcher %u: event for unexpected key %s", w->id, key);
		return;
	}
	if (version <= w->last_version) {
		wb_fail(r, "watcher %u: version %" PRIu64 " after %" PRIu64
		    " (duplicate or out of order)", w->id, version,
		    w->last_version);
		return;
	}
	w->last_version = version;
	if (version == r->v_warm) {
		w->warm_seen = true;
		atomic_fetch_add(&r->warm, 1);
		wb_signal(r);
		return;
	}
	if (version < r->v_first || version - r->v_first >= r->o->writes) {
		wb_fail(r, "watcher %u: unexpected version %" PRIu64, w->id,
		    version);
		return;
	}
	i = version - r->v_first;
	/* The writer stores the send time before sending, and the event
	 * exists only once the write committed. */
	sent = atomic_load(&r->send_ns[i]);
	if (sent == 0 || w->n_lat >= r->o->writes) {
		wb_fail(r, "watcher %u: version %" PRIu64 " before it was sent",
		    w->id, version);
		return;
	}
	w->lat[w->n_lat++] = now > sent ? now - sent : 0;
	if (atomic_fetch_add(&r->events, 1) + 1 ==
	    (uint64_t) r->o->watchers * r->o->writes) {
		wb_signal(r);
	}
}

/* --- RPC watchers --- */

static void wb_rpc_done(void *arg, Datasync__V1__WatchResponse *resp,
    const nrpc_status *st);

/* wb_rpc_watch starts w's next Watch; wait_ms is its wait. On failure
 * the watcher stops (an error). */
static void
wb_rpc_watch(wb_watcher *w, uint32_t wait_ms)
{
	wb_run *r = w->run;
	Datasync__V1__WatchRequest req = DATASYNC__V1__WATCH_REQUEST__INIT;
	nrpc_call_opts co = {0};
	nrpc_status st = {0};

	req.prefix = (char *) r->prefix;
	/* Idle watchers start from now (their first reply names the
	 * cursor); latency watchers from the revision of lat/k's v0. */
	req.from_now = r->o->mode == WB_IDLE && !w->anchored;
	req.after_revision = req.from_now ? 0 : w->cursor;
	req.timeout_ms = wait_ms;
	co.timeout_ms = (int64_t) wait_ms + WB_CALL_MARGIN_MS;
	if (datasync_v1_data_sync_watch_async(datasync_rpc(w->c), &req, &co,
	        wb_rpc_done, w, &st) != NRPC_OK && !atomic_load(&r->stop)) {
		wb_fail(r, "watcher %u: Watch: %s: %s", w->id, st.reason,
		    st.message);
	}
	nrpc_status_fini(&st);
}

static void
wb_rpc_done(void *arg, Datasync__V1__WatchResponse *resp,
    const nrpc_status *st)
{
	wb_watcher *w = arg;
	wb_run *r = w->run;
	uint64_t now = wb_now_ns();
	bool stop = atomic_load(&r->stop);
	bool was_warm = w->warm_seen;
	bool first_round = !w->armed;

	if (st->code != NRPC_OK) {
		if (!stop) {
			wb_fail(r, "watcher %u: Watch: %s: %s", w->id, st->reason,
			    st->message);
		}
	} else {
		for (size_t i = 0; i < resp->n_events; i++) {
			const Datasync__V1__Event *ev = resp->events[i];

			if (ev->record != NULL) {
				wb_event(w, ev->record->key, ev->record->version, now);
			}
		}
		w->cursor = resp->revision;
		w->anchored = true;
		datasync__v1__watch_response__free_unpacked(resp, NULL);
		if (!stop) {
			w->armed = true;
			wb_rpc_watch(w, WB_WATCH_WAIT_MS);
			/* Counted after the next call is on its way. */
			if ((r->o->mode == WB_LATENCY && !was_warm && w->warm_seen) ||
			    (r->o->mode == WB_IDLE && first_round)) {
				atomic_fetch_add(&r->rearmed, 1);
				wb_signal(r);
			}
		}
	}
}

/* wb_barrier makes one Get on every watcher connection: answered, it
 * was queued behind the Watches sent before it. */
static int
wb_barrier(wb_run *r)
{
	for (unsigned i = 0; i < r->n_clients; i++) {
		Datasync__V1__GetRequest req = DATASYNC__V1__GET_REQUEST__INIT;
		Datasync__V1__GetResponse *resp = NULL;
		nrpc_status st = {0};
		nrpc_code rc;

		req.key = (char *) WB_KEY_LAT;
		rc = datasync_v1_data_sync_get(datasync_rpc(r->clients[i]), &req,
		    &resp, NULL, &st);
		if (rc == NRPC_OK) {
			datasync__v1__get_response__free_unpacked(resp, NULL);
		} else if (rc != NRPC_NOT_FOUND) {
			wb_fail(r, "barrier Get: %s: %s", st.reason, st.message);
			nrpc_status_fini(&st);
			return -1;
		}
		nrpc_status_fini(&st);
	}
	return 0;
}

static int
wb_rpc_start(wb_run *r, uint32_t first_wait_ms)
{
	const wb_opts *o = r->o;
	nrpc_status st = {0};

	r->n_clients = (o->watchers + WB_WATCHERS_PER_CONN - 1) /
	    WB_WATCHERS_PER_CONN;
	if ((r->clients = calloc(r->n_clients, sizeof(*r->clients))) == NULL) {
		wb_fail(r, "out of memory");
		return -1;
	}
	for (unsigned i = 0; i < r->n_clients; i++) {
		if (datasync_connect(&o->url, 1, 0, WB_CLIENT_NAME,
		        &r->clients[i], &st) != NRPC_OK) {
			wb_fail(r, "connect %s: %s", o->url, st.message);
			nrpc_status_fini(&st);
			return -1;
		}
	}
	for (unsigned i = 0; i < o->watchers; i++) {
		r->w[i].c = r->clients[i / WB_WATCHERS_PER_CONN];
		r->w[i].cursor = r->start_revision;
		wb_rpc_watch(&r->w[i], first_wait_ms);
	}
	return atomic_load(&r->errors) == 0 ? 0 : -1;
}

/* wb_rpc_stop cancels the parked calls and waits for their callbacks. */
static void
wb_rpc_stop(wb_run *r)
{
	atomic_store(&r->stop, true);
	for (unsigned i = 0; i < r->n_clients; i++) {
		datasync_close(r->clients[i]);
		r->clients[i] = NULL;
	}
}

/* --- SSE watchers, one thread, one poll loop --- */

static int
wb_split_hostport(const char *hp, char host[WB_HOST_MAX], uint16_t *port)
{
	const char *colon = strrchr(hp, ':');
	unsigned long p;
	char *end;

	if (colon == NULL || (size_t) (colon - hp) >= WB_HOST_MAX) {
		return -1;
	}
	memcpy(host, hp, (size_t) (colon - hp));
	host[colon - hp] = '\0';
	p = strtoul(colon + 1, &end, 10);
	if (*end != '\0' || p == 0 || p > 65535) {
		return -1;
	}
	*port = (uint16_t) p;
	return 0;
}

static int
wb_sse_open(wb_run *r, wb_watcher *w)
{
	char host[WB_HOST_MAX];
	uint16_t port;
	struct sockaddr_in sa;
	char req[512];
	int n;

	if (wb_split_hostport(r->o->http, host, &port) != 0) {
		wb_fail(r, "--http %s: not HOST:PORT", r->o->http);
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		wb_fail(r, "--http %s: not an IPv4 address", r->o->http);
		return -1;
	}
	if ((w->fd = socket(AF_INET, SOCK_STREAM, 0)) < 0) {
		wb_fail(r, "watcher %u: socket: %s", w->id, strerror(errno));
		return -1;
	}
	if (connect(w->fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
		wb_fail(r, "watcher %u: connect %s: %s", w->id, r->o->http,
		    strerror(errno));
		return -1;
	}
	/* HTTP/1.0: the body is the stream itself, no chunked framing. The
	 * prefix's "/" is %2F. */
	/* Idle streams start from now: no after. */
	if (r->o->mode == WB_IDLE) {
		n = snprintf(req, sizeof(req),
		    "GET /v1/events?prefix=%.*s%%2F HTTP/1.0\r\n"
		    "Host: %s\r\nAccept: text/event-stream\r\n\r\n",
		    (int) strlen(r->prefix) - 1, r->prefix, r->o->http);
	} else {
		n = snprintf(req, sizeof(req),
		    "GET /v1/events?prefix=%.*s%%2F&after=%" PRIu64
		    " HTTP/1.0\r\n"
		    "Host: %s\r\nAccept: text/event-stream\r\n\r\n",
		    (int) strlen(r->prefix) - 1, r->prefix, r->start_revision,
		    r->o->http);
	}
	if (n < 0 || (size_t) n >= sizeof(req) ||
	    write(w->fd, req, (size_t) n) != n) {
		wb_fail(r, "watcher %u: sending the request failed", w->id);
		return -1;
	}
	return 0;
}

/* wb_sse_line handles one line of w's response (CR LF stripped). */
static int
wb_sse_line(wb_watcher *w, char *line, uint64_t now)
{
	wb_run *r = w->run;

	if (!w->in_body) {
		if (strncmp(line, "HTTP/", 5) == 0 && strstr(line, " 200") == NULL) {
			wb_fail(r, "watcher %u: %s", w->id, line);
			return -1;
		}
		w->in_body = line[0] == '\0';
		return 0;
	}
	if (strncmp(line, "retry:", 6) == 0 && !w->streaming) {
		w->streaming = true;
		atomic_fetch_add(&r->ready, 1);
		wb_signal(r);
	} else if (strncmp(line, "data: ", 6) == 0) {
		/* The Event as proto3 JSON: the record's key and version (a
		 * uint64, so a string) are enough here. */
		const char *k = strstr(line, "\"key\":\"");
		const char *v = strstr(line, "\"version\":\"");
		char key[128];
		size_t kl;

		if (k == NULL || v == NULL) {
			wb_fail(r, "watcher %u: event without key or version: %s",
			    w->id, line);
			return -1;
		}
		k += 7;
		kl = strcspn(k, "\"");
		if (kl >= sizeof(key)) {
			wb_fail(r, "watcher %u: key too long", w->id);
			return -1;
		}
		memcpy(key, k, kl);
		key[kl] = '\0';
		wb_event(w, key, strtoull(v + 11, NULL, 10), now);
	} else if (strncmp(line, "event: reset", 12) == 0 ||
	    strncmp(line, ": error", 7) == 0) {
		wb_fail(r, "watcher %u: %s", w->id, line);
		return -1;
	}
	return 0;
}

/* wb_sse_read reads what w's socket has; -1 when the stream ended. */
static int
wb_sse_read(wb_watcher *w)
{
	wb_run *r = w->run;
	ssize_t n;
	uint64_t now;
	char *line;
	char *nl;

	if (w->have == sizeof(w->buf) - 1) {
		wb_fail(r, "watcher %u: line over %d bytes", w->id, WB_SSE_BUF);
		return -1;
	}
	n = read(w->fd, w->buf + w->have, sizeof(w->buf) - 1 - w->have);
	now = wb_now_ns();
	if (n <= 0) {
		if (!atomic_load(&r->stop)) {
			wb_fail(r, "watcher %u: stream ended (%s)", w->id,
			    n == 0 ? "closed by the server" : strerror(errno));
		}
		return -1;
	}
	w->have += (size_t) n;
	w->buf[w->have] = '\0';
	line = w->buf;
	while ((nl = strchr(line, '\n')) != NULL) {
		*nl = '\0';
		if (nl > line && nl[-1] == '\r') {
			nl[-1] = '\0';
		}
		if (wb_sse_line(w, line, now) != 0) {
			return -1;
		}
		line = nl + 1;
	}
	w->have = strlen(line);
	memmove(w->buf, line, w->have + 1);
	return 0;
}

static void *
wb_sse_thread(void *arg)
{
	wb_run *r = arg;
	unsigned n = r->o->watchers;
	struct pollfd *p = calloc(n, sizeof(*p));

	if (p == NULL) {
		wb_fail(r, "out of memory");
		return NULL;
	}
	for (unsigned i = 0; i < n; i++) {
		p[i].fd = r->w[i].fd;
		p[i].events = POLLIN;
	}
	while (!atomic_load(&r->stop)) {
		int rc = poll(p, n, WB_SSE_POLL_MS);

		if (rc < 0 && errno != EINTR) {
			wb_fail(r, "poll: %s", strerror(errno));
			break;
		}
		for (unsigned i = 0; rc > 0 && i < n; i++) {
			if (p[i].fd >= 0 && p[i].revents != 0) {
				if (wb_sse_read(&r->w[i]) != 0) {
					p[i].fd = -1; /* poll skips it */
				}
			}
		}
	}
	free(p);
	return NULL;
}

static int
wb_sse_start(wb_run *r, pthread_t *th)
{
	for (unsigned i = 0; i < r->o->watchers; i++) {
		if (wb_sse_open(r, &r->w[i]) != 0) {
			return -1;
		}
	}
	if (pthread_create(th, NULL, wb_sse_thread, r) != 0) {
		wb_fail(r, "pthread_create failed");
		return -1;
	}
	return 0;
}

/* --- the writer --- */

/* wb_put writes lat/k: if_version > 0 a CAS on it, else unconditional.
 * *version and *revision are the write's. */
static int
wb_put(wb_run *r, uint64_t if_version, uint64_t *version,
    uint64_t *revision)
{
	Datasync__V1__UpdateRequest req = DATASYNC__V1__UPDATE_REQUEST__INIT;
	Datasync__V1__Precondition pre = DATASYNC__V1__PRECONDITION__INIT;
	Datasync__V1__UpdateResponse *resp = NULL;
	nrpc_status st = {0};
	static const uint8_t value[] = "watch-bench";

	req.key = (char *) WB_KEY_LAT;
	req.value.data = (uint8_t *) value;
	req.value.len = sizeof(value) - 1;
	if (if_version > 0) {
		pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_VERSION;
		pre.if_version = if_version;
	} else {
		pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_UNCONDITIONAL;
		pre.unconditional = true;
	}
	req.precondition = &pre;
	if (datasync_v1_data_sync_update(datasync_rpc(r->writer), &req, &resp,
	        NULL, &st) != NRPC_OK) {
		wb_fail(r, "Update %s (if_version %" PRIu64 "): %s: %s",
		    WB_KEY_LAT, if_version, st.reason, st.message);
		nrpc_status_fini(&st);
		return -1;
	}
	*version = resp->record->version;
	*revision = resp->record->revision;
	datasync__v1__update_response__free_unpacked(resp, NULL);
	nrpc_status_fini(&st);
	return 0;
}

/* wb_wait_until waits until done(r) or an error or the deadline. */
static bool
wb_wait_until(wb_run *r, bool (*done)(wb_run *), int64_t timeout_ms)
{
	struct timespec dl;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&r->mtx);
	while (!(ok = done(r)) && atomic_load(&r->errors) == 0) {
		if (pthread_cond_timedwait(&r->cv, &r->mtx, &dl) == ETIMEDOUT) {
			ok = done(r);
			break;
		}
	}
	pthread_mutex_unlock(&r->mtx);
	return ok && atomic_load(&r->errors) == 0;
}

static bool
wb_all_warm(wb_run *r)
{
	return atomic_load(&r->warm) == r->o->watchers &&
	    (r->o->transport == WB_SSE ||
	        atomic_load(&r->rearmed) == r->o->watchers);
}

static bool
wb_all_events(wb_run *r)
{
	return atomic_load(&r->events) ==
	    (uint64_t) r->o->watchers * r->o->writes;
}

static bool
wb_idle_ready(wb_run *r)
{
	return r->o->transport == WB_SSE
	    ? atomic_load(&r->ready) == r->o->watchers
	    : atomic_load(&r->rearmed) == r->o->watchers;
}

static void
wb_sleep_until(uint64_t t_ns)
{
	uint64_t now = wb_now_ns();
	struct timespec ts;

	if (t_ns > now) {
		ts.tv_sec = (time_t) ((t_ns - now) / 1000000000u);
		ts.tv_nsec = (long) ((t_ns - now) % 1000000000u);
		/* Pacing, not synchronisation. */
		(void) nanosleep(&ts, NULL); /* EINTR: the next write is early */
	}
}

/* wb_write_all does the measured writes; the watchers are warm. */
static int
wb_write_all(wb_run *r)
{
	uint64_t next = wb_now_ns();

	for (unsigned i = 0; i < r->o->writes; i++) {
		uint64_t v = r->v_first + i;
		uint64_t got_v, rev, t0;

		wb_sleep_until(next);
		t0 = wb_now_ns();
		atomic_store(&r->send_ns[i], t0);
		if (wb_put(r, v - 1, &got_v, &rev) != 0) {
			return -1;
		}
		bench_hist_record(&r->ack, wb_now_ns() - t0);
		if (got_v != v) {
			wb_fail(r, "Update wrote version %" PRIu64 ", not %" PRIu64,
			    got_v, v);
			return -1;
		}
		next = t0 + (uint64_t) r->o->interval_ms * 1000000u;
	}
	return 0;
}

static void
wb_report(wb_run *r)
{
	bench_hist *h = calloc(1, sizeof(*h));
	uint64_t expected = (uint64_t) r->o->watchers * r->o->writes;

	if (h == NULL) {
		wb_fail(r, "out of memory");
		return;
	}
	for (unsigned i = 0; i < r->o->watchers; i++) {
		for (unsigned j = 0; j < r->w[i].n_lat; j++) {
			bench_hist_record(h, r->w[i].lat[j]);
		}
	}
	printf("watch-latency transport=%s watchers=%u writes=%u "
	    "events=%" PRIu64 " expected=%" PRIu64 " deliver_p50_us=%.1f "
	    "deliver_p99_us=%.1f deliver_max_us=%.1f ack_p50_us=%.1f "
	    "ack_p99_us=%.1f errors=%" PRIu64 "\n",
	    r->o->transport == WB_RPC ? "rpc" : "sse", r->o->watchers,
	    r->o->writes, atomic_load(&r->events), expected,
	    bench_hist_us(h, 0.5), bench_hist_us(h, 0.99),
	    (double) h->max_ns / 1000.0, bench_hist_us(&r->ack, 0.5),
	    bench_hist_us(&r->ack, 0.99), atomic_load(&r->errors));
	fflush(stdout);
	free(h);
}

/* wb_report_missing names the first watchers short of W events. */
static void
wb_report_missing(wb_run *r)
{
	unsigned shown = 0;
	unsigned short_n = 0;

	for (unsigned i = 0; i < r->o->watchers; i++) {
		wb_watcher *w = &r->w[i];

		if (w->n_lat < r->o->writes) {
			short_n++;
			if (shown++ < 10) {
				fprintf(stderr, "watch_bench: watcher %u has %u of %u "
				    "events (last version %" PRIu64 ", cursor %" PRIu64
				    ")\n", w->id, w->n_lat, r->o->writes,
				    w->last_version, w->cursor);
			}
		}
	}
	fprintf(stderr, "watch_bench: %u of %u watchers missed events "
	    "(measured versions %" PRIu64 "..%" PRIu64 ")\n", short_n,
	    r->o->watchers, r->v_first, r->v_first + r->o->writes - 1);
}

/* wb_hold waits for stdin to close or SIGTERM/SIGINT (blocked in every
 * thread, read here from a signalfd). */
static int
wb_hold(wb_run *r, const sigset_t *sigs)
{
	int sfd = signalfd(-1, sigs, SFD_CLOEXEC);
	struct pollfd p[2] = {{STDIN_FILENO, POLLIN, 0}, {sfd, POLLIN, 0}};
	char buf[256];

	if (sfd < 0) {
		wb_fail(r, "signalfd: %s", strerror(errno));
		return -1;
	}
	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR) {
				continue;
			}
			wb_fail(r, "poll: %s", strerror(errno));
			break;
		}
		if (p[1].revents != 0) {
			break;
		}
		if (p[0].revents != 0 && read(STDIN_FILENO, buf, sizeof(buf)) <= 0) {
			break;
		}
	}
	close(sfd);
	return 0;
}

/* --- main --- */

static int
wb_usage(const char *msg)
{
	fprintf(stderr, "watch_bench: %s\n"
	    "usage: watch_bench latency|idle --url URL [--http HOST:PORT]\n"
	    "         --transport rpc|sse --watchers N [--writes W]\n"
	    "         [--interval-ms MS]\n", msg);
	return WB_EXIT_USAGE;
}

static int
wb_parse_uint(const char *flag, const char *s, unsigned min, unsigned max,
    unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || s[0] == '\0' || s[0] == '-' ||
	    v < min || v > max) {
		fprintf(stderr, "watch_bench: %s must be %u..%u, not %s\n", flag,
		    min, max, s);
		return -1;
	}
	*out = (unsigned) v;
	return 0;
}

static int
wb_parse(int argc, char **argv, wb_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->writes = 200;
	o->interval_ms = 5;
	if (argc < 2) {
		return wb_usage("no mode");
	}
	if (strcmp(argv[1], "latency") == 0) {
		o->mode = WB_LATENCY;
	} else if (strcmp(argv[1], "idle") == 0) {
		o->mode = WB_IDLE;
	} else {
		return wb_usage("the mode is latency or idle");
	}
	for (int i = 2; i < argc; i++) {
		const char *f = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (v == NULL) {
			return wb_usage("a flag without its value");
		}
		i++;
		if (strcmp(f, "--url") == 0) {
			o->url = v;
		} else if (strcmp(f, "--http") == 0) {
			o->http = v;
		} else if (strcmp(f, "--transport") == 0) {
			if (strcmp(v, "rpc") == 0) {
				o->transport = WB_RPC;
			} else if (strcmp(v, "sse") == 0) {
				o->transport = WB_SSE;
			} else {
				return wb_usage("--transport is rpc or sse");
			}
		} else if (strcmp(f, "--watchers") == 0) {
			if (wb_parse_uint(f, v, 1, WB_WATCHERS_MAX, &o->watchers) != 0) {
				return WB_EXIT_USAGE;
			}
		} else if (strcmp(f, "--writes") == 0) {
			if (wb_parse_uint(f, v, 1, WB_WRITES_MAX, &o->writes) != 0) {
				return WB_EXIT_USAGE;
			}
		} else if (strcmp(f, "--interval-ms") == 0) {
			if (wb_parse_uint(f, v, 0, WB_INTERVAL_MS_MAX,
			        &o->interval_ms) != 0) {
				return WB_EXIT_USAGE;
			}
		} else {
			return wb_usage("unknown flag");
		}
	}
	if (o->url == NULL || o->watchers == 0) {
		return wb_usage("--url and --watchers are needed");
	}
	if (o->transport == WB_SSE && o->http == NULL) {
		return wb_usage("--transport sse needs --http HOST:PORT");
	}
	return WB_EXIT_OK;
}

/* wb_raise_nofile lifts the soft descriptor limit to the hard one when
 * n sockets would not fit under it. */
static int
wb_raise_nofile(unsigned n)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		return -1;
	}
	if (rl.rlim_cur >= (rlim_t) n + 64) {
		return 0;
	}
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < (rlim_t) n + 64) {
		fprintf(stderr, "watch_bench: %u sockets need RLIMIT_NOFILE >= %u "
		    "(hard limit %llu)\n", n, n + 64,
		    (unsigned long long) rl.rlim_max);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	wb_opts o;
	wb_run *r = NULL;
	sigset_t sigs;
	pthread_t sse_th;
	bool sse_started = false;
	bool measured = false; /* the writes were made: report */
	bool missing = false;  /* some events never came: name them */
	nrpc_status st = {0};
	uint64_t v0, rev;
	int rc;

	if ((rc = wb_parse(argc, argv, &o)) != WB_EXIT_OK) {
		return rc;
	}
	rc = WB_EXIT_FAIL;
	if (wb_raise_nofile(o.watchers) != 0) {
		return WB_EXIT_FAIL;
	}
	/* Before nng starts threads: they inherit the mask, so SIGTERM
	 * reaches only wb_hold's signalfd. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		fprintf(stderr, "watch_bench: out of memory\n");
		return WB_EXIT_FAIL;
	}
	r->o = &o;
	r->prefix = o.mode == WB_LATENCY ? WB_PREFIX_LAT : WB_PREFIX_IDLE;
	pthread_mutex_init(&r->mtx, NULL);
	pthread_cond_init(&r->cv, NULL);
	r->w = calloc(o.watchers, sizeof(*r->w));
	r->send_ns = calloc(o.writes, sizeof(*r->send_ns));
	if (r->w == NULL || r->send_ns == NULL) {
		wb_fail(r, "out of memory");
		goto out;
	}
	for (unsigned i = 0; i < o.watchers; i++) {
		r->w[i].run = r;
		r->w[i].id = i;
		r->w[i].fd = -1;
		if (o.mode == WB_LATENCY &&
		    (r->w[i].lat = calloc(o.writes, sizeof(uint64_t))) == NULL) {
			wb_fail(r, "out of memory");
			goto out;
		}
	}
	if (datasync_connect(&o.url, 1, 0, WB_CLIENT_NAME, &r->writer, &st) !=
	    NRPC_OK) {
		wb_fail(r, "connect %s: %s", o.url, st.message);
		goto out;
	}

	if (o.mode == WB_IDLE) {
		/* Idle watchers watch from now (from_now). */
		if ((o.transport == WB_RPC ? wb_rpc_start(r, 1)
		                           : wb_sse_start(r, &sse_th)) != 0) {
			goto out;
		}
		sse_started = o.transport == WB_SSE;
		if (!wb_wait_until(r, wb_idle_ready, WB_READY_TIMEOUT_MS)) {
			wb_fail(r, "%u watchers not ready after %d ms", o.watchers,
			    WB_READY_TIMEOUT_MS);
			goto out;
		}
		if (o.transport == WB_RPC && wb_barrier(r) != 0) {
			goto out;
		}
		printf("ready\n");
		fflush(stdout);
		if (wb_hold(r, &sigs) != 0 || atomic_load(&r->errors) != 0) {
			goto out;
		}
		rc = WB_EXIT_OK;
		goto out;
	}

	/* latency: lat/k exists at v0; the watchers follow its revision. */
	if (wb_put(r, 0, &v0, &rev) != 0) {
		goto out;
	}
	r->start_revision = rev;
	r->v_warm = v0 + 1;
	r->v_first = v0 + 2;
	if ((o.transport == WB_RPC ? wb_rpc_start(r, WB_WATCH_WAIT_MS)
	                           : wb_sse_start(r, &sse_th)) != 0) {
		goto out;
	}
	sse_started = o.transport == WB_SSE;
	if (wb_put(r, v0, &v0, &rev) != 0) {
		goto out;
	}
	if (!wb_wait_until(r, wb_all_warm, WB_READY_TIMEOUT_MS)) {
		wb_fail(r, "the warm-up write reached %u of %u watchers in %d ms",
		    atomic_load(&r->warm), o.watchers, WB_READY_TIMEOUT_MS);
		goto out;
	}
	if (o.transport == WB_RPC && wb_barrier(r) != 0) {
		goto out;
	}
	if (wb_write_all(r) != 0) {
		goto out;
	}
	measured = true;
	if (!wb_wait_until(r, wb_all_events, WB_DRAIN_TIMEOUT_MS)) {
		missing = true;
		wb_fail(r, "%" PRIu64 " of %" PRIu64 " events delivered within "
		    "%d ms of the last write", atomic_load(&r->events),
		    (uint64_t) o.watchers * o.writes, WB_DRAIN_TIMEOUT_MS);
		goto out;
	}
	rc = WB_EXIT_OK;

out:
	/* Stop the watchers before reading what they recorded. */
	if (r->clients != NULL) {
		wb_rpc_stop(r);
	}
	atomic_store(&r->stop, true);
	if (sse_started) {
		pthread_join(sse_th, NULL);
	}
	if (measured) {
		wb_report(r);
	}
	if (missing) {
		wb_report_missing(r);
	}
	if (atomic_load(&r->errors) != 0) {
		fprintf(stderr, "watch_bench: %s (%" PRIu64 " errors)\n",
		    r->first_err, atomic_load(&r->errors));
		rc = WB_EXIT_FAIL;
	}
	datasync_close(r->writer);
	if (r->w != NULL) {
		for (unsigned i = 0; i < o.watchers; i++) {
			if (r->w[i].fd >= 0) {
				close(r->w[i].fd);
			}
			free(r->w[i].lat);
		}
	}
	free(r->w);
	free(r->send_ns);
	free(r->clients);
	nrpc_status_fini(&st);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mtx);
	free(r);
	return rc;
}
