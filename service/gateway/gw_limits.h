/*
 * gw_limits.h - every limit the HTTP gateway enforces, with the reason for
 * it (STYLE rule 16). Requests over a limit get 400, 413 or 414 with a
 * message that names the limit; nothing is clamped.
 */
#ifndef GW_LIMITS_H
#define GW_LIMITS_H

/* GW_MAX_URI_BYTES bounds the request-target (path and query). A key is
 * at most 4096 bytes (STORE_MAX_KEY_BYTES_HARD), 12288 when every byte is
 * percent-encoded, plus the route and a query: 16 KiB is ample. Longer is
 * 414. */
#define GW_MAX_URI_BYTES (16 * 1024)

/* GW_MAX_QUERY_PARAMS bounds the parameters of one query string; the
 * routes know at most six, the rest (cache busters) is ignored. */
#define GW_MAX_QUERY_PARAMS 32

/* GW_MAX_ETAGS bounds the entity tags of one If-Match / If-None-Match
 * list. A client sends one, or the few versions it has seen. */
#define GW_MAX_ETAGS 32

/* GW_MAX_PEER_BYTES bounds the peer's numeric address that scopes
 * Idempotency-Key ("http:" + it is the call's client name, at most
 * NRPC_MAX_CLIENT_NAME_BYTES = 128): an IPv6 text form with a zone is
 * under 64. Not configurable: the HTTP server writes the address. */
#define GW_MAX_PEER_BYTES 96

/* GW_MAX_PRECOND_HEADER_BYTES bounds an If-Match / If-None-Match value
 * (GW_MAX_ETAGS tags of 20 digits, quotes, W/ and separators fit). */
#define GW_MAX_PRECOND_HEADER_BYTES 2048

/* GW_MAX_HEADER_VALUE_BYTES bounds every other request header the gateway
 * reads (Lock-Token, Idempotency-Key, Author, Content-Type, Origin). The
 * store's own limits are smaller; this one keeps copies cheap. */
#define GW_MAX_HEADER_VALUE_BYTES 4096

/* The credential forwarded upstream (Authorization, the session cookie,
 * a sign-in's token): a token is 68 bytes; this leaves room for another
 * scheme's header while staying far below NRPC_MAX_METADATA_BYTES. */
#define GW_MAX_AUTH_BYTES 1024

/* POST /v1/session's body: {"token": "dst_..."}. */
#define GW_MAX_SESSION_BODY_BYTES 4096

/* GW_MAX_SMALL_BODY_BYTES is the body cap of routes that take no value:
 * /healthz, /metrics, static files (they ignore a body). */
#define GW_MAX_SMALL_BODY_BYTES (64 * 1024)

/* GW_MAX_LOCK_BODY_BYTES is the body cap of the lock and unlock routes:
 * a JSON object with an owner, a TTL and a token. */
#define GW_MAX_LOCK_BODY_BYTES (64 * 1024)

/* GW_RPC_BODY_OVERHEAD is what /rpc/ allows on top of a value encoded as
 * base64 (4/3 of max_value_bytes): the other fields, escapes, spaces. The
 * same 64 KiB the RPC envelope allows (DESIGN §4). */
#define GW_RPC_BODY_OVERHEAD (64 * 1024)

/* GW_MAX_VALUE_BYTES_DEFAULT and _HARD mirror the store's value limits:
 * the gateway refuses a larger PUT before reading it (413). */
#define GW_MAX_VALUE_BYTES_DEFAULT (1024 * 1024)
#define GW_MAX_VALUE_BYTES_HARD    (64 * 1024 * 1024)

/* GW_MAX_STATIC_FILE_BYTES: the demo page's files are small; a bigger
 * file is refused (404) rather than read into memory. */
#define GW_MAX_STATIC_FILE_BYTES (16 * 1024 * 1024)

/* GW_MAX_STATIC_PATH_BYTES bounds the decoded path of a static file. */
#define GW_MAX_STATIC_PATH_BYTES 1024

/* GW_BODY_READ_TIMEOUT_MS: a client that announces a body must send it
 * within this time, or its connection is closed; 30 s is 1 MiB at 35
 * KiB/s, while a slowloris cannot hold an exchange forever (checked as
 * each piece arrives; a silent peer meets the idle timeout first). */
#define GW_BODY_READ_TIMEOUT_MS 30000

/* GW_UPSTREAM_CALLS_PER_PIPE: the RPC connections the gateway dials to
 * each upstream are one per this many HTTP connections it may hold
 * (max_connections), at least 1 and at most GW_UPSTREAM_PIPES_MAX. Every
 * HTTP connection has at most one RPC in flight, and a datasyncd closes an
 * RPC connection with more than --rpc-max-inflight-per-conn (512) requests
 * in flight: a thousand event streams re-arming their Watch at once after
 * a change must not all travel on one connection. */
#define GW_UPSTREAM_CALLS_PER_PIPE 256
#define GW_UPSTREAM_PIPES_MAX 64

/* GW_MAX_CONNECTIONS_DEFAULT / _HARD: HTTP connections open at once
 * (libmicrohttpd's MHD_OPTION_CONNECTION_LIMIT); one more is accepted and
 * closed at once. Each costs a socket and a GW_CONN_MEMORY_BYTES pool. */
#define GW_MAX_CONNECTIONS_DEFAULT 1024
#define GW_MAX_CONNECTIONS_HARD    65536

/* GW_MAX_PER_IP_DEFAULT / _HARD: connections from one address at once
 * (MHD_OPTION_PER_IP_CONNECTION_LIMIT). A browser opens 6 per host; a
 * proxy in front of the gateway needs it raised. */
#define GW_MAX_PER_IP_DEFAULT 256
#define GW_MAX_PER_IP_HARD    GW_MAX_CONNECTIONS_HARD

/* GW_TIMEOUT_S_DEFAULT / _HARD: a connection with no traffic for this long
 * (half a header, a stalled body, an idle keep-alive) is closed
 * (MHD_OPTION_CONNECTION_TIMEOUT, seconds). */
#define GW_TIMEOUT_S_DEFAULT 30
#define GW_TIMEOUT_S_HARD    3600

/* GW_BODY_BUDGET_DEFAULT / _HARD: request body bytes the gateway holds at
 * once, over all connections. A request whose Content-Length does not fit
 * what is left gets 503 and Retry-After before its body is read. The
 * default is raised to the largest body one request may send, so that
 * request can always be served alone. */
#define GW_BODY_BUDGET_DEFAULT ((size_t) 64 * 1024 * 1024)
#define GW_BODY_BUDGET_HARD    ((size_t) 16 * 1024 * 1024 * 1024)

/* GW_CONN_MEMORY_BYTES: libmicrohttpd's per-connection pool, which holds
 * the request line and headers: GW_MAX_URI_BYTES plus headers fit, so an
 * over-long target is answered 414 by the gateway. Bigger heads get
 * libmicrohttpd's own 414 or 431. */
#define GW_CONN_MEMORY_BYTES (64 * 1024)

/* GW_MAX_HTTP_THREADS bounds the thread pool (one per CPU). */
#define GW_MAX_HTTP_THREADS 64

/* GW_MAX_UPSTREAMS, GW_MAX_CORS_ORIGINS, GW_MAX_SERVICES bound the
 * configuration lists (copied at start). */
#define GW_MAX_UPSTREAMS    16
#define GW_MAX_CORS_ORIGINS 64
#define GW_MAX_SERVICES     16

/* GW_MAX_ORIGIN_BYTES: a serialized origin is scheme://host:port. */
#define GW_MAX_ORIGIN_BYTES 256

/* GW_MAX_HOST_BYTES bounds the host part of the listen address that the
 * Host check compares with (a DNS name is at most 253 bytes). */
#define GW_MAX_HOST_BYTES 256

/* GW_TLS_FILE_MAX bounds the HTTPS certificate and key files read. */
#define GW_TLS_FILE_MAX (1024 * 1024)

/* GW_MAX_ALLOW_HOSTS bounds the --allow-host list (copied at start). */
#define GW_MAX_ALLOW_HOSTS 64

/* GW_MAX_RESPONSE_HEADERS: the record route sets 12, CORS 3, preflight
 * 6; room to spare. Overflow is a bug (DS_NEVER) answered with 500. */
#define GW_MAX_RESPONSE_HEADERS 28

/* GW_CORS_MAX_AGE_S: browsers cache a preflight this long (10 min; Chrome
 * caps at 2 h, Firefox at 24 h). */
#define GW_CORS_MAX_AGE_S 600

/* GW_RPC_TIMEOUT_DEFAULT_MS: the deadline of every upstream call unless
 * configured; the same as the RPC client's default. */
#define GW_RPC_TIMEOUT_DEFAULT_MS 10000
#define GW_RPC_TIMEOUT_HARD_MS    (10 * 60 * 1000)

/* GW_RETRY_AFTER_S: Retry-After on 429 and 503 (seconds). 423 computes it
 * from the lease's expiry instead. */
#define GW_RETRY_AFTER_S 1

/* GW_MAX_DETAIL_DEPTH bounds the walk over the service descriptors that
 * finds a status detail's message type by name. */
#define GW_MAX_DETAIL_DEPTH 8

/* --- watch (DESIGN §9) --- */

/* GW_WATCH_TIMEOUT_MS_DEFAULT / _MAX: a long poll's wait when ?timeout=
 * is not given, and the most it may ask (WatchRequest.timeout_ms <=
 * 60000, the service's own cap). Beyond is 400 naming `timeout`. */
#define GW_WATCH_TIMEOUT_MS_DEFAULT 30000
#define GW_WATCH_TIMEOUT_MS_MAX     60000

/* GW_WATCH_LIMIT_MAX: events per reply a client may ask for
 * (WatchRequest.limit <= 10000); 0 is the service's default (1000). */
#define GW_WATCH_LIMIT_MAX 10000

/* GW_LOCK_WAIT_MS_MAX: LockRequest.wait_ms <= 60000 (the service's cap),
 * checked here too so the RPC deadline below stays bounded. */
#define GW_LOCK_WAIT_MS_MAX 60000

/* GW_WAIT_DEADLINE_MARGIN_MS: an RPC that waits in the service (a Watch's
 * timeout, a Lock's wait_ms) gets the wait plus this as its deadline
 * (never less than the gateway's rpc_timeout_ms): the service answers at
 * the end of the wait, and the answer must still have time to come back
 * before the call is cut as DEADLINE_EXCEEDED. */
#define GW_WAIT_DEADLINE_MARGIN_MS 10000

/* GW_RPC_RESEND_MS: nng's REQ resend time on the gateway's client. The
 * default (60 s) would resend a 60 s Watch or Lock wait while the first
 * is still parked; the longest wait plus twice the margin stays above
 * every deadline the gateway sets for a waiting call. */
#define GW_RPC_RESEND_MS \
	(GW_WATCH_TIMEOUT_MS_MAX + 2 * GW_WAIT_DEADLINE_MARGIN_MS)

/* GW_SSE_HEARTBEAT_MS_DEFAULT / _MIN / _MAX: a Server-Sent Events stream
 * runs Watch calls back to back, each waiting this long; a call that ends
 * without events sends a ": heartbeat" comment, so proxies that drop
 * silent connections keep the stream (WHATWG HTML §9.2: "every 15
 * seconds or so"). Configurable (gw_config.sse_heartbeat_ms) for tests. */
#define GW_SSE_HEARTBEAT_MS_DEFAULT 15000
#define GW_SSE_HEARTBEAT_MS_MIN     10
#define GW_SSE_HEARTBEAT_MS_MAX     GW_WATCH_TIMEOUT_MS_MAX

/* GW_SSE_PROBE_WAIT_MS: the first Watch of a stream waits only this
 * long, so a compacted cursor is answered 410 before the stream's 200 is
 * sent, and the stream opens at once either way. */
#define GW_SSE_PROBE_WAIT_MS 1

/* GW_SSE_RETRY_MS: the reconnection time the stream tells EventSource
 * (its "retry:" field). */
#define GW_SSE_RETRY_MS 2000

/* GW_SSE_MAX_STREAMS_DEFAULT / _HARD: event streams open at once. Each
 * holds a connection and, most of the time, a parked Watch in the
 * service; past the cap a new stream gets 503 + Retry-After. */
#define GW_SSE_MAX_STREAMS_DEFAULT 256
#define GW_SSE_MAX_STREAMS_HARD    GW_MAX_CONNECTIONS_HARD

/* GW_SSE_BLOCK_BYTES: the block size libmicrohttpd asks a stream for. */
#define GW_SSE_BLOCK_BYTES 4096

/* GW_SSE_MAX_PENDING_BYTES bounds the framed events a stream holds that
 * the client has not taken yet: one Watch reply (at most 10000 events
 * with values) fits; a stream is never asked for the next reply before
 * the last one is sent, so this is a guard, not a queue. */
#define GW_SSE_MAX_PENDING_BYTES ((size_t) 256 * 1024 * 1024)

#endif /* GW_LIMITS_H */
