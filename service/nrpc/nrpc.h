/*
 * nrpc.h - a small RPC runtime: protobuf-c messages in the nrpc.v1
 * envelope over nng REQ/REP sockets, generic over any service.
 *
 * nrpc knows nothing of datasync. A service is described by an
 * nrpc_service_desc (its method table), which protoc-gen-nrpc generates
 * together with typed client stubs and a typed server skeleton that call
 * the functions below. Hand-written code normally uses the generated
 * stubs, not these generic entry points.
 *
 * Server: one REP socket listening on any number of URLs (ipc://, tcp://,
 * inproc://), many nng contexts each driven by an aio callback, and a pool
 * of worker threads that run handlers. A handler receives an nrpc_call and
 * must finish it exactly once, with nrpc_call_reply() or nrpc_call_fail(),
 * from any thread and at any later time (a handler may hand the call to
 * another thread, e.g. a group-commit writer).
 *
 * Client: thread-safe; every call uses its own nng context, so any number
 * of threads may call at once. Blocking calls must never be made from an
 * nng callback thread (an aio callback or an HTTP handler): when every nng
 * task thread waits on a reply that itself needs a task thread, the
 * process deadlocks. Such code uses nrpc_client_call_async().
 *
 * Status codes are gRPC's canonical numbers, so the gateway can use
 * grpc-gateway's HTTP mapping. Every failure has a code, a machine-readable
 * reason ("VERSION_CONFLICT", "DEADLINE_EXCEEDED") and a human message.
 */
#ifndef NRPC_H
#define NRPC_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "ds_assert.h"
#include "ds_clock.h"

/* --- status --- */

typedef enum nrpc_code {
	NRPC_OK = 0,
	NRPC_CANCELLED = 1,
	NRPC_UNKNOWN = 2,
	NRPC_INVALID_ARGUMENT = 3,
	NRPC_DEADLINE_EXCEEDED = 4,
	NRPC_NOT_FOUND = 5,
	NRPC_ALREADY_EXISTS = 6,
	NRPC_PERMISSION_DENIED = 7,
	NRPC_RESOURCE_EXHAUSTED = 8,
	NRPC_FAILED_PRECONDITION = 9,
	NRPC_ABORTED = 10,
	NRPC_OUT_OF_RANGE = 11,
	NRPC_UNIMPLEMENTED = 12,
	NRPC_INTERNAL = 13,
	NRPC_UNAVAILABLE = 14,
	NRPC_DATA_LOSS = 15,
	NRPC_UNAUTHENTICATED = 16,
} nrpc_code;

#define NRPC_REASON_MAX 64
#define NRPC_MESSAGE_MAX 256
#define NRPC_FIELD_MAX 64
#define NRPC_TYPE_MAX 128

/* nrpc_status: the outcome of a call. The strings are fixed-size so
 * filling them cannot fail. detail is owned by the status: release it
 * with nrpc_status_fini(). A zeroed status is OK with no detail. */
typedef struct nrpc_status {
	nrpc_code code;
	char reason[NRPC_REASON_MAX];    /* "VERSION_CONFLICT", or "" on OK */
	char message[NRPC_MESSAGE_MAX];  /* human, names the field or limit */
	char field[NRPC_FIELD_MAX];      /* request field at fault, or "" */
	char detail_type[NRPC_TYPE_MAX]; /* full message name of detail */
	uint8_t *detail;                 /* owned; protobuf bytes; or NULL */
	size_t detail_len;
	uint32_t retry_after_ms;         /* transient failure: wait this long
	                                  * before retrying; 0 = no hint.
	                                  * nrpc_status_set clears it */
} nrpc_status;

/* nrpc_code_name returns "OK", "INVALID_ARGUMENT", ...; static; "UNKNOWN"
 * for numbers outside the table. */
const char *nrpc_code_name(nrpc_code c);

/* nrpc_status_set sets code, reason, field (may be NULL) and a formatted
 * message; frees any previous detail. Strings too long are truncated. */
void nrpc_status_set(nrpc_status *st, nrpc_code code, const char *reason,
    const char *field, const char *fmt, ...) DS_PRINTF(5, 6);

/* nrpc_status_fini frees the detail and zeroes st; zeroed is a no-op. */
void nrpc_status_fini(nrpc_status *st);

/* nrpc_status_set_detail packs msg (borrowed) into st->detail (owned by
 * st) and sets detail_type to msg's full type name, replacing any previous
 * detail. On RESOURCE_EXHAUSTED (out of memory) st keeps no detail and is
 * otherwise unchanged. */
nrpc_code nrpc_status_set_detail(nrpc_status *st, const ProtobufCMessage *msg);

/* nrpc_status_set_detail_bytes copies len bytes of an already encoded
 * detail of type type_name (borrowed; may be NULL) into st, like
 * nrpc_status_set_detail. */
nrpc_code nrpc_status_set_detail_bytes(nrpc_status *st, const char *type_name,
    const uint8_t *bytes, size_t len);

/* --- limits (STYLE rule 16): defaults, hard maxima, reasons --- */

/* Envelope size: 1 MiB of value plus 64 KiB for everything else (DESIGN
 * §4). The hard maximum matches the store's 64 MiB value cap. A
 * configured value above a _HARD maximum is rejected, not clamped. */
#define NRPC_MAX_MESSAGE_BYTES_DEFAULT (1024 * 1024 + 64 * 1024)
#define NRPC_MAX_MESSAGE_BYTES_HARD (64 * 1024 * 1024 + 64 * 1024)
/* REP contexts: each is a few hundred bytes plus an nng aio (and, once
 * used, a 4 KiB decode arena chunk); 1024 is twice the per-connection cap
 * below, so one connection never holds more than half; 65536 bounds
 * memory. */
#define NRPC_CONTEXTS_DEFAULT 1024
#define NRPC_CONTEXTS_HARD 65536
/* Requests in flight on one connection (received, and nng's send
 * callback for the reply not yet run). Past it the server closes that
 * connection: a peer that sends without reading (or pipelines without
 * bound) holds at most this many contexts, never all of them (DESIGN §11,
 * hostile peers). The default is twice the deepest pipeline the project's
 * own tools use on one connection (`datasync bench --concurrency 256`):
 * the count ends in the send callback, which can run after the peer has
 * read the reply and sent its next request, so a client with N requests
 * outstanding can briefly count up to 2N (measured: at 256 in flight a
 * cap of 256 closed the bench's connection 45 times in a 5 s get and a
 * 5 s update run; 384 and 512 never). The default contexts are twice the
 * cap. inproc:// connections (the embedded gateway multiplexes every HTTP
 * client over one) are exempt. */
#define NRPC_MAX_INFLIGHT_PER_CONN_DEFAULT 512
#define NRPC_MAX_INFLIGHT_PER_CONN_HARD NRPC_CONTEXTS_HARD
/* Calls waiting for a worker. A REP context holds at most one call, so
 * the queue never holds more than `contexts` calls. */
#define NRPC_MAX_QUEUE_DEFAULT 4096
#define NRPC_MAX_QUEUE_HARD (1024 * 1024)
/* Worker threads. */
#define NRPC_WORKERS_HARD 1024
/* Parked calls: a handler that will answer after a long wait (a watch, a
 * lock wait) parks the call first (nrpc_call_park). The server then opens
 * a replacement REP context, so parked calls never reduce the contexts
 * receiving other calls; when the parked call finishes, its context is
 * closed (or reused if the pool is short). At most cfg.max_parked calls
 * are parked at once. Each costs a context (a few hundred bytes and an
 * nng aio) plus its request; 65536 bounds that memory, like contexts. */
#define NRPC_MAX_PARKED_DEFAULT 8192
#define NRPC_MAX_PARKED_HARD 65536
/* Envelope fields, checked on both sides: a request id is a UUID or our
 * 32 hex digits; names are for logs; metadata is for a few headers. */
#define NRPC_MAX_METHOD_BYTES 256
#define NRPC_MAX_REQUEST_ID_BYTES 128
#define NRPC_MAX_CLIENT_NAME_BYTES 128
#define NRPC_MAX_METADATA 64
#define NRPC_MAX_METADATA_BYTES 4096 /* one key or value */
/* Message nesting in a request (envelope and body), checked on the wire
 * before protobuf-c decodes it (nrpc_strings_check): protobuf-c recurses
 * once per level with no limit of its own, so a body of a million nested
 * empty messages would exhaust a worker's stack. The top message is depth
 * 1; datasync's requests nest 2 deep. The hard maximum is protobuf's own
 * parsers' default recursion limit; it also bounds the checker's stack
 * (one small frame per level). */
#define NRPC_MAX_BODY_DEPTH_DEFAULT 32
#define NRPC_MAX_BODY_DEPTH_HARD 100
/* Client per-call deadline when none is configured. */
#define NRPC_TIMEOUT_DEFAULT_MS 10000

/* --- method tables (generated by protoc-gen-nrpc) --- */

/* nrpc_method describes one unary method. Static, generated data. */
typedef struct nrpc_method {
	const char *full_name; /* "/datasync.v1.DataSync/Get" */
	const char *name;      /* "Get" */
	const ProtobufCMessageDescriptor *input;
	const ProtobufCMessageDescriptor *output;
	bool idempotent;       /* safe to resend without a request id
	                        * (reads); from `option idempotency_level` or
	                        * the method name (Get*, List*) */
} nrpc_method;

/* nrpc_service_desc is a service's method table. Static, generated. */
typedef struct nrpc_service_desc {
	const char *full_name; /* "datasync.v1.DataSync" */
	const char *name;      /* "DataSync" */
	size_t n_methods;
	const nrpc_method *methods; /* n_methods entries, in .proto order */
} nrpc_service_desc;

/* nrpc_service_find_method returns the method whose full_name is
 * name[0..len), or NULL. */
const nrpc_method *nrpc_service_find_method(const nrpc_service_desc *svc,
    const char *name, size_t len);

/* --- server --- */

typedef struct nrpc_server nrpc_server;
typedef struct nrpc_call nrpc_call;

/* nrpc_dispatch_fn is generated: it calls the typed handler at
 * method_index of the typed handler table `table` with the decoded
 * request (really of the method's input type). It returns NRPC_OK when a
 * handler ran (and so owns the call), or NRPC_UNIMPLEMENTED when the table
 * has no handler there (the runtime then fails the call). */
typedef nrpc_code (*nrpc_dispatch_fn)(const void *table, size_t method_index,
    nrpc_call *call, const ProtobufCMessage *req, void *arg);

/* Worker hooks: each worker thread may own per-thread state (a database
 * read connection). init runs on the worker thread before it takes work
 * and returns that state through *wstate (0 = ok, non-zero aborts
 * nrpc_server_start); fini runs on the same thread at shutdown. With
 * inline_handlers, init also runs lazily on each nng callback thread
 * (a failure there answers the call UNAVAILABLE), and those states are
 * finished by the thread that stops the server. */
typedef int (*nrpc_worker_init_fn)(void *arg, unsigned index, void **wstate);
typedef void (*nrpc_worker_fini_fn)(void *arg, void *wstate);

typedef struct nrpc_server_config {
	const char *const *urls;  /* borrowed during nrpc_server_start */
	size_t n_urls;
	unsigned workers;         /* 0 = number of CPUs */
	unsigned contexts;        /* REP contexts; 0 = default (256) */
	size_t max_message_bytes; /* envelope cap (RECVMAXSZ and our own
	                           * check, since inproc ignores RECVMAXSZ);
	                           * 0 = NRPC_MAX_MESSAGE_BYTES_DEFAULT */
	unsigned max_inflight_per_conn; /* requests in flight on one ipc://
	                           * or tcp:// connection; one more and the
	                           * connection is closed (stats:
	                           * conns_closed_inflight); 0 = default
	                           * (NRPC_MAX_INFLIGHT_PER_CONN_DEFAULT) */
	size_t max_queue;         /* calls waiting for a worker; beyond it
	                           * RESOURCE_EXHAUSTED, reason "OVERLOADED";
	                           * 0 = default */
	size_t max_parked;        /* calls parked at once (nrpc_call_park);
	                           * 0 = default (NRPC_MAX_PARKED_DEFAULT) */
	nrpc_worker_init_fn worker_init; /* may be NULL */
	nrpc_worker_fini_fn worker_fini; /* may be NULL */
	void *worker_arg;         /* borrowed for the server's lifetime */
	const ds_clock *clock;    /* monotonic, for deadlines; NULL = system */
	int64_t listener_check_ms; /* how often each ipc:// and tcp:// listener
	                           * is probed (see NRPC_PING_METHOD) and
	                           * re-created when it stopped accepting;
	                           * 0 = NRPC_LISTENER_CHECK_MS_DEFAULT,
	                           * < 0 = never */
	/* TLS for tls+tcp:// URLs (PEM files, read at nrpc_server_create;
	 * borrowed during it): the certificate chain and its unencrypted
	 * key, required when a URL is tls+tcp://; client_ca_file, when set,
	 * makes every client present a certificate signed by that CA. */
	const char *tls_cert_file;
	const char *tls_key_file;
	const char *tls_client_ca_file;
	bool inline_handlers;     /* run handlers on the nng callback thread
	                           * that received the call, not on a pool
	                           * worker: saves two thread hand-offs per
	                           * call. Only for handlers that never block
	                           * for long (a cached SQLite read, a queue
	                           * push). Each nng thread then gets its own
	                           * worker state from worker_init on its
	                           * first call (index NRPC_INLINE_WORKER),
	                           * released by worker_fini at stop on the
	                           * stopping thread. */
} nrpc_server_config;

/* NRPC_PING_METHOD is answered by the runtime itself, OK with an empty
 * body, whatever services are registered: a liveness probe for health
 * checks and for the listener watchdog.
 *
 * The watchdog exists because nng 1.5.2 (Debian 12's) stops accepting on
 * a listener for good when a peer disconnects in the middle of the SP
 * handshake (nng issue #1518, fixed in 1.6): one client that connects and
 * closes at once would make the server unreachable on that address. The
 * watchdog connects to each address, sends a ping and, when no answer comes
 * NRPC_LISTENER_CHECK_FAILURES times in a row, closes that listener and
 * listens again. Clients' REQ sockets reconnect and resend by themselves;
 * request ids keep the resent writes from applying twice. */
#define NRPC_PING_METHOD "/nrpc.v1.Server/Ping"
#define NRPC_LISTENER_CHECK_MS_DEFAULT 500
/* A busy server may take long to answer: only a listener that misses
 * several probes in a row, each with a generous timeout, is re-created.
 * A probe that goes unanswered while every context is in use (before,
 * during or after it) is not counted: the ping waits for a context like
 * any request, and an overloaded server (a slow commit with every
 * context holding a write) is not a broken listener. */
#define NRPC_LISTENER_PROBE_TIMEOUT_MS 1000
#define NRPC_LISTENER_CHECK_FAILURES 2

/* The worker index passed to worker_init for an nng callback thread's
 * state when inline_handlers is set. */
#define NRPC_INLINE_WORKER UINT32_MAX

/* nrpc_server_config_default zeroes cfg and fills the defaults. */
void nrpc_server_config_default(nrpc_server_config *cfg);

/* nrpc_server_create allocates a server that is not yet listening
 * (owned; nrpc_server_destroy). cfg is copied; cfg->urls are copied.
 * INVALID_ARGUMENT (field names the setting) when a value exceeds its
 * _HARD maximum or a URL is NULL; RESOURCE_EXHAUSTED when out of memory.
 * On failure *out is untouched. */
int nrpc_server_create(const nrpc_server_config *cfg, nrpc_server **out,
    nrpc_status *st);

/* nrpc_server_add_service registers a service before start. desc, table
 * and arg are borrowed for the server's lifetime. Fails with
 * ALREADY_EXISTS when a method name is taken, FAILED_PRECONDITION after
 * start. */
int nrpc_server_add_service(nrpc_server *srv, const nrpc_service_desc *desc,
    nrpc_dispatch_fn dispatch, const void *table, void *arg,
    nrpc_status *st);

/* nrpc_server_start starts the workers and listens on every URL. On
 * failure nothing is left running and start may be retried: a URL that
 * cannot be listened on gives UNAVAILABLE, reason "LISTEN_FAILED", with
 * the URL and nng's reason in the message (a URL nng cannot parse gives
 * INVALID_ARGUMENT, reason "INVALID_URL"); a worker_init that fails gives
 * INTERNAL, reason "WORKER_INIT_FAILED". Over ipc:// and tcp:// nng itself
 * drops a connection that sends more than max_message_bytes (plus a few
 * bytes of REQ/REP header): such a client gets no reply and times out.
 * Over inproc:// (where nng does not check) and for sizes nng lets
 * through, the reply is RESOURCE_EXHAUSTED, reason "TOO_LARGE". */
int nrpc_server_start(nrpc_server *srv, nrpc_status *st);

/* nrpc_server_stop stops accepting, lets calls already received finish
 * and be answered (up to grace_ms; later ones are cancelled), closes the
 * socket and joins the workers. While it waits, requests that arrive are
 * answered at once with UNAVAILABLE, reason "SHUTTING_DOWN"; calls still
 * queued when the grace ends are not run. After the grace it still waits
 * for handlers that hold a call to finish it (their reply is dropped):
 * handlers must finish every call eventually. Parked calls are waited for
 * the same way (their holders see nrpc_call_peer_gone() turn true when
 * stop begins), except that when only parked calls remain unfinished
 * NRPC_STOP_PARKED_WAIT_MS after the grace, stop logs an error and
 * returns with them abandoned: the server is then left to the process's
 * exit as below (finishing them later is safe; their replies are
 * dropped). When nng_close does not
 * return within NRPC_CLOSE_TIMEOUT_MS (an nng 1.5.2 bug, nrpc_int.h), it
 * logs an error and returns with the socket abandoned: no handler runs
 * any more, worker states are released, and nrpc_server_destroy leaves the
 * server to the process's exit. Safe to call from any
 * thread that is not a worker or an nng callback; a second call, or a
 * call on a server that is not running, is a no-op. */
void nrpc_server_stop(nrpc_server *srv, int64_t grace_ms);
/* Holders poll nrpc_call_peer_gone about once a second: a few polls. */
#define NRPC_STOP_PARKED_WAIT_MS 5000

/* nrpc_server_destroy stops the server if needed (as
 * nrpc_server_stop(srv, 0)) and frees it; NULL is a no-op. */
void nrpc_server_destroy(nrpc_server *srv);

/* nrpc_server_stats: counters for tests and metrics. */
typedef struct nrpc_server_stats {
	uint64_t received;     /* envelopes received */
	uint64_t replied;      /* replies sent */
	uint64_t bad_envelope; /* undecodable or oversized */
	uint64_t unimplemented;
	uint64_t deadline_exceeded;
	uint64_t in_flight;    /* received but not yet replied */
	uint64_t overloaded;   /* refused because the queue was full */
	uint64_t relistens;    /* listeners re-created by the watchdog */
	uint64_t conns_closed_inflight; /* connections closed: more than
	                                 * max_inflight_per_conn requests */
	uint64_t conns_closed_send_timeout; /* connections closed: a reply
	                                 * not taken within the send timeout */
	uint64_t probes;       /* watchdog probes made */
	uint64_t probes_busy;  /* watchdog probes unanswered while every
	                        * context was in use: overload, not counted
	                        * against the listener */
	uint64_t n_parked;     /* calls parked now (in_flight counts them
	                        * too), until their reply is handed over */
	uint64_t parked_total; /* calls ever parked */
	uint64_t parked_refused; /* parks refused: max_parked reached */
} nrpc_server_stats;

/* nrpc_server_stats_get copies the counters (each read atomically, the
 * set not as a snapshot). Thread-safe. */
void nrpc_server_stats_get(nrpc_server *srv, nrpc_server_stats *out);

/* Accessors for handlers. Everything returned is borrowed until the call
 * is finished. */
const nrpc_method *nrpc_call_method(const nrpc_call *call);
void *nrpc_call_worker_state(const nrpc_call *call); /* see worker_init;
                                                      * NULL off-pool */
const char *nrpc_call_request_id(const nrpc_call *call); /* "" if none */
const char *nrpc_call_client_name(const nrpc_call *call); /* "" if none */
/* metadata value for key, or NULL */
const char *nrpc_call_metadata(const nrpc_call *call, const char *key);
/* nrpc_call_peer writes who sent the call into buf (len bytes,
 * NRPC_PEER_MAX is enough; always NUL-terminated when len > 0): the
 * remote address without its port for tcp:// and tls+tcp:// ("10.1.2.3",
 * "::1"), so one host's many connections count as one; "inproc" or "ipc"
 * for those transports; "" when the call has no connection
 * (nrpc_server_process) or its connection has already gone. Returns what
 * kind of peer that is: failure limiters count NRPC_PEER_NET peers only
 * (a local process or the embedded gateway speaks for many callers).
 * Valid until the call is finished. Thread-safe. */
typedef enum nrpc_peer_kind {
	NRPC_PEER_NONE = 0, /* no connection, or it is gone */
	NRPC_PEER_LOCAL,    /* inproc:// or ipc:// */
	NRPC_PEER_NET,      /* tcp:// or tls+tcp:// (IPv4 or IPv6) */
} nrpc_peer_kind;
#define NRPC_PEER_MAX 64 /* an IPv6 address's text is at most 45 bytes */
nrpc_peer_kind nrpc_call_peer(const nrpc_call *call, char *buf, size_t len);
/* deadline on the server's monotonic clock, ms; INT64_MAX = none */
int64_t nrpc_call_deadline_ms(const nrpc_call *call);
bool nrpc_call_expired(const nrpc_call *call);

/* nrpc_call_park: a handler that will answer after a long wait (a watch,
 * a lock wait) parks the call first; the server then opens a replacement
 * REP context so the call no longer holds one of the cfg.contexts that
 * receive other calls (see NRPC_MAX_PARKED_DEFAULT). The handler may then
 * return and finish the call later from any thread, as always. NRPC_OK =
 * parked; NRPC_RESOURCE_EXHAUSTED, reason "TOO_MANY_PARKED", message
 * naming max_parked (N), when max_parked calls are parked already: the
 * call is not parked and the handler still finishes it (usually with that
 * status). Parking twice is a no-op OK. A call run without a REP context
 * (nrpc_server_process / detached) parks trivially. If no replacement
 * context can be opened (out of memory) the call is still parked and the
 * pool is one short until a parked call finishes (its context then
 * rejoins the pool instead of closing). A parked call does not count
 * against max_inflight_per_conn (max_parked bounds it instead). After the
 * handler returns, a parked call must not use nrpc_call_worker_state():
 * that state belongs to the worker, which runs other calls meanwhile.
 * Thread-safe. */
nrpc_code nrpc_call_park(nrpc_call *call, nrpc_status *st);

/* nrpc_call_peer_gone: true once the connection the call came on has
 * closed (nng pipe removed, learnt from NNG_PIPE_EV_REM_POST), and, for a
 * call on a REP context, also once nrpc_server_stop has begun: the holder
 * of a parked call should then finish it (a reply given within the stop's
 * grace still reaches the client) so that stop need not wait. Cheap (a
 * lookup in the connection table under a short mutex); meant to be polled
 * about once a second by whoever holds parked calls, so a watcher that
 * disappears is released. Valid until the call is finished. False for
 * calls with no connection (nrpc_server_process). Thread-safe. */
bool nrpc_call_peer_gone(const nrpc_call *call);

/* nrpc_call_reply finishes the call with OK and resp (borrowed; packed
 * before return). The call and its request message are freed: neither
 * may be used afterwards. Thread-safe; from any thread. */
void nrpc_call_reply(nrpc_call *call, const ProtobufCMessage *resp);

/* nrpc_call_finish finishes the call with st (borrowed; code, reason,
 * message, field and detail are sent). When st->code is NRPC_OK, resp is
 * the response (borrowed), otherwise ignored and may be NULL. Frees the
 * call like nrpc_call_reply. */
void nrpc_call_finish(nrpc_call *call, const nrpc_status *st,
    const ProtobufCMessage *resp);

/* nrpc_call_fail finishes the call with an error and no detail. */
void nrpc_call_fail(nrpc_call *call, nrpc_code code, const char *reason,
    const char *field, const char *fmt, ...) DS_PRINTF(5, 6);

/* --- client --- */

typedef struct nrpc_client nrpc_client;

typedef struct nrpc_client_config {
	const char *const *urls;   /* dialed, all of them; nng's REQ spreads
	                            * calls over live pipes; borrowed during
	                            * nrpc_client_open */
	size_t n_urls;
	int64_t timeout_ms;        /* default per-call deadline; 0 = 10 s */
	int64_t resend_ms;         /* NNG_OPT_REQ_RESENDTIME; 0 = nng's
	                            * default (60 s). A call whose timeout is
	                            * at least this long gets its own context's
	                            * resend time set to timeout +
	                            * NRPC_CLIENT_RESEND_MARGIN_MS, so nng
	                            * never resends it while the server is
	                            * still working on it (a parked watch or
	                            * lock wait would otherwise be parked
	                            * twice); a shorter call on a reused
	                            * context gets this value back. Calls with
	                            * no deadline keep this value. Resends
	                            * after a lost connection are unaffected */
	size_t max_message_bytes;  /* cap on requests (checked before
	                            * sending: RESOURCE_EXHAUSTED, reason
	                            * "TOO_LARGE") and replies; 0 = default */
	const char *client_name;   /* sent in every envelope; may be NULL */
	const char *authorization; /* sent as metadata "authorization" with
	                            * every call whose own metadata has none
	                            * ("Bearer dst_..."); copied at open; at
	                            * most NRPC_MAX_METADATA_BYTES; NULL =
	                            * none */
	bool dial_blocking;        /* true: fail open when no URL answers now */
	/* TLS for tls+tcp:// URLs (PEM files; borrowed during
	 * nrpc_client_open): the CAs trusted to sign the server's
	 * certificate (required for such a URL; the certificate must also
	 * name the URL's host), and an optional client certificate and key
	 * for a server that asks for one. A TLS failure of a blocking dial
	 * is UNAVAILABLE, reason "TLS_HANDSHAKE_FAILED". */
	const char *tls_ca_file;
	const char *tls_cert_file;
	const char *tls_key_file;
} nrpc_client_config;

/* nrpc_client_config_default zeroes cfg and fills the defaults. */
void nrpc_client_config_default(nrpc_client_config *cfg);

/* How far past a long call's deadline its resend timer is set (see
 * resend_ms): the deadline ends the call first, so nng never resends it.
 * The timer starts when the request is sent, never before the call's
 * own clock starts, so any positive margin suffices; a second absorbs
 * timer granularity. */
#define NRPC_CLIENT_RESEND_MARGIN_MS 1000

/* nrpc_client_open dials every URL (owned; nrpc_client_close). Without
 * dial_blocking, dialing continues in the background and calls wait for a
 * connection up to their deadline. Fails with INVALID_ARGUMENT for a bad
 * URL (reason "INVALID_URL") or setting, UNAVAILABLE (reason
 * "DIAL_FAILED") when dial_blocking and nothing answers. On failure *out
 * is untouched. */
int nrpc_client_open(const nrpc_client_config *cfg, nrpc_client **out,
    nrpc_status *st);

/* How long nrpc_client_close lets calls in flight end by themselves
 * before it cancels them (see nrpc_client.c for why it does not cancel at
 * once). */
#define NRPC_CLIENT_CLOSE_DRAIN_MS 500

/* nrpc_client_close refuses new calls, waits up to
 * NRPC_CLIENT_CLOSE_DRAIN_MS for the calls in flight, cancels the rest
 * (their callbacks run with CANCELLED, reason "CANCELLED"), waits for
 * those callbacks, and frees the client. Calls started meanwhile (from
 * those callbacks) fail at once with CANCELLED. Must not be called from
 * an nng callback thread. NULL is a no-op. */
void nrpc_client_close(nrpc_client *c);

/* Per-call options; NULL means all defaults. */
typedef struct nrpc_call_opts {
	int64_t timeout_ms;       /* 0 = the client's default; < 0 = none */
	const char *request_id;   /* NULL = generate one for every call, so a
	                           * resent write is applied once: 32 hex
	                           * digits, a random 64-bit prefix drawn once
	                           * per client followed by a 64-bit counter
	                           * (unique per client, no syscall per call) */
	const char *const *metadata; /* key, value, key, value, ...; borrowed */
	size_t n_metadata;           /* number of pairs */
	const char *caller;       /* NULL = the client's client_name; else
	                           * the client name this call's envelope
	                           * carries (a gateway speaking for many
	                           * callers: the server scopes request ids
	                           * by it). UTF-8, at most
	                           * NRPC_MAX_CLIENT_NAME_BYTES, else
	                           * INVALID_ARGUMENT naming "caller";
	                           * borrowed for the call's start */
} nrpc_call_opts;

/* nrpc_client_call sends req (borrowed) to method m and waits. On NRPC_OK
 * *resp is the decoded response (owned; protobuf_c_message_free_unpacked
 * with NULL allocator) and st->code == NRPC_OK. On failure *resp is
 * untouched and st holds the status (detail included; nrpc_status_fini).
 * st may be NULL; otherwise, as for nrpc_status_set, it must be zeroed or
 * hold a status, and a detail it held before is freed when it is
 * overwritten (a caller may reuse one status across calls). Transport
 * failures map to
 * UNAVAILABLE, deadlines to DEADLINE_EXCEEDED (reason
 * "DEADLINE_EXCEEDED"), client close to CANCELLED, undecodable replies to
 * INTERNAL (reason "MALFORMED_REPLY"). Returns the status code.
 * Blocking: never call it from an nng callback thread; called from within
 * an nrpc completion callback it fails at once with FAILED_PRECONDITION,
 * reason "BLOCKING_CALL_IN_CALLBACK", instead of risking a deadlock. */
nrpc_code nrpc_client_call(nrpc_client *c, const nrpc_method *m,
    const ProtobufCMessage *req, ProtobufCMessage **resp,
    const nrpc_call_opts *opts, nrpc_status *st);

/* A generic function pointer, so a typed callback can travel through the
 * runtime and be cast back to its own type by a generated trampoline
 * (converting between function pointer types and back is well-defined in
 * C; calling through the wrong type is not). */
typedef void (*nrpc_fnptr)(void);

/* nrpc_done_fn is called exactly once per successful
 * nrpc_client_call_async, on an nng thread: resp is owned by the callee
 * (NULL unless st->code == NRPC_OK); st is borrowed for the duration of
 * the callback. It must not block. */
typedef void (*nrpc_done_fn)(nrpc_fnptr user_cb, void *user_arg,
    ProtobufCMessage *resp, const nrpc_status *st);

/* nrpc_client_call_async sends req (borrowed: packed before return) and
 * returns at once. done(user_cb, user_arg, resp, st) runs later on an nng
 * thread (possibly before this function returns). Returns NRPC_OK when
 * the call was started (done will run), or an error code when it could
 * not be (done will not run; st, if not NULL, is set to why, freeing
 * the detail it held as nrpc_client_call does).
 * Thread-safe, and may be called from within a done callback. */
nrpc_code nrpc_client_call_async(nrpc_client *c, const nrpc_method *m,
    const ProtobufCMessage *req, const nrpc_call_opts *opts,
    nrpc_done_fn done, nrpc_fnptr user_cb, void *user_arg, nrpc_status *st);

/* --- envelope (pure; fuzzed) --- */

/* nrpc_envelope_check_size returns NRPC_OK when an envelope of len bytes
 * is within max, else RESOURCE_EXHAUSTED, reason "TOO_LARGE", with
 * "message exceeds max_message_bytes (N)" in st. The rest of the envelope
 * code (encode, decode, the server's request path without sockets, for
 * the fuzz harness) is declared in nrpc_int.h. */
nrpc_code nrpc_envelope_check_size(size_t len, size_t max, nrpc_status *st);

#endif /* NRPC_H */
