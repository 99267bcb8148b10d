/*
 * gateway.h - the HTTP + JSON gateway (DESIGN §6).
 *
 * The gateway serves browsers: REST routes over records with ETags and
 * If-Match, lock routes, a generic /rpc/{package.Service}/{Method} route
 * that transcodes proto3 JSON for every method of the services it is
 * given, /healthz, /metrics and the static demo page. It runs on
 * libmicrohttpd (epoll, a thread pool) and is a *client* of the RPC service (DESIGN §2): it dials
 * the upstream URLs with the nrpc client, inproc:// when embedded in
 * datasyncd, ipc:// or tcp:// when it runs as datasync-gateway. It never
 * touches the store.
 *
 * Threads: handlers run on libmicrohttpd's threads and never block on the
 * RPC: they suspend the connection, start an asynchronous call, and the
 * call's completion callback resumes it with the answer.
 *
 * The route and header table is in service/gateway/README.md.
 */
#ifndef GATEWAY_H
#define GATEWAY_H

#include <stddef.h>
#include <stdint.h>

#include "ds_clock.h"
#include "nrpc.h"

typedef struct gw_server gw_server;

/* gw_config: everything is borrowed during gw_start only (copied). */
typedef struct gw_config {
	const char *const *upstreams; /* RPC URLs to dial, 1..16 */
	size_t n_upstreams;
	const char *http;     /* "HOST:PORT" to listen on; port 0
	                       * picks a free one (see gw_port) */
	const char *web_root; /* static files; NULL = the compiled-in
	                       * clients/web (missing: static 404) */
	const char *js_path;  /* GET /datasync.js when web_root has
	                       * none; NULL = compiled-in
	                       * clients/js/datasync.js */
	const char *const *cors_origins; /* allowed Origins ("https://a.b",
	                                  * or "*" for any); none = same-origin
	                                  * only */
	size_t n_cors_origins;
	const char *const *allow_hosts; /* Host names answered besides the
	                                 * listen host, localhost and IP
	                                 * literals; "*" = any (behind a
	                                 * proxy that checks Host) */
	size_t n_allow_hosts;           /* at most 64 */
	size_t max_value_bytes; /* PUT bodies above it are refused with
	                         * 413 unread; 0 = 1 MiB; at most
	                         * 64 MiB */
	int64_t rpc_timeout_ms; /* deadline of each upstream call;
	                         * 0 = 10 s */
	const nrpc_service_desc *const *services; /* served on /rpc/; NULL =
	                                           * datasync.v1.DataSync */
	size_t n_services;
	const ds_clock *wall_clock; /* for Retry-After; NULL = system */
	unsigned max_connections; /* open HTTP connections; 0 = 1024, at
	                           * most 65536 */
	unsigned max_per_ip;      /* from one address; 0 = 256 */
	unsigned timeout_s;       /* idle connection closed after; 0 =
	                           * 30 s, at most 3600 */
	size_t body_budget;       /* request body bytes held at once over
	                           * all requests; 0 = 64 MiB (at least the
	                           * largest body); at most 16 GiB */
	unsigned max_sse_streams; /* GET /v1/events streams open at once
	                           * (more: 503); 0 = 256, at most 65536 */
	/* HTTPS (libmicrohttpd with GnuTLS): PEM certificate (chain) and
	 * its unencrypted key; both or neither. With them the gateway serves
	 * HTTPS only and its own origin is https://. Read at gw_start. */
	const char *tls_cert_file;
	const char *tls_key_file;
	/* tls+tcp:// upstreams: the CA that signed their certificates (and
	 * an optional client certificate and key). */
	const char *upstream_tls_ca_file;
	const char *upstream_tls_cert_file;
	const char *upstream_tls_key_file;
	int64_t sse_heartbeat_ms; /* each stream's Watch waits this long; a
	                           * quiet one sends a heartbeat comment;
	                           * 0 = 15 s; 10 ms .. 60 s */
} gw_config;

/* gw_config_default zeroes cfg and sets the defaults (http
 * "127.0.0.1:8080", everything else "use the default"). */
void gw_config_default(gw_config *cfg);

/* gw_start validates cfg, opens the RPC client, and starts the HTTP
 * server. On NRPC_OK *out is the running server (owned; gw_stop). On
 * failure nothing is left running, *out is untouched and st holds the
 * reason: INVALID_ARGUMENT for a bad config (the message names the field),
 * UNAVAILABLE when the address cannot be listened on (the reason in the
 * message). Returns st->code. Call it from an ordinary thread, not from an
 * nng callback. */
int gw_start(const gw_config *cfg, gw_server **out, nrpc_status *st);

/* gw_port returns the TCP port the server listens on (useful with port
 * 0), or 0 if unknown. */
int gw_port(const gw_server *gw);

/* gw_stop stops accepting, aborts the HTTP requests in flight (their
 * connections are closed), cancels their RPC calls, waits for every
 * callback, and frees the server. NULL is a no-op. Must not be called
 * from an nng callback thread. */
void gw_stop(gw_server *gw);

#endif /* GATEWAY_H */
