/*
 * gw_int.h - the gateway's internals, private to service/gateway and its
 * tests.
 *
 * Everything here except gw_http.c is pure: plain structs in, plain
 * structs out, no sockets, no threads (gw_static_respond reads files).
 * A request is a gw_request (method, request-target, the headers the
 * gateway reads, body); gw_plan_make turns it into a gw_plan, which is
 * either a finished gw_response or an RPC to make; gw_plan_step feeds the
 * RPC's outcome back and yields the response (or, in principle, a next
 * RPC; no route needs one today: an If-Match list is one Update whose
 * precondition is the set of versions). gw_http.c only moves bytes
 * between libmicrohttpd and these functions, which is what the unit tests and the
 * fuzzer drive.
 *
 * Errors inside the pure layer travel as an nrpc_status (code, reason,
 * message, field) plus the HTTP status, so a refusal made by the gateway
 * renders exactly like one made by the service.
 */
#ifndef GW_INT_H
#define GW_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "datasync/v1/datasync.pb-c.h"
#include "ds_assert.h"
#include "ds_buf.h"
#include "ds_clock.h"
#include "gw_limits.h"
#include "nrpc.h"
#include "pbjson.h"

/* --- requests --- */

typedef struct gw_header {
	const char *name;  /* borrowed */
	const char *value; /* borrowed; NUL-terminated */
} gw_header;

/* gw_request: one HTTP request, everything borrowed from the caller. */
typedef struct gw_request {
	const char *method;       /* "GET"; case-sensitive (RFC 9110) */
	const char *uri;          /* request-target as received:
	                           * "/v1/records/a%2Fb?version=3" */
	const gw_header *headers; /* only those the gateway reads (below);
	                           * repeated headers already joined by ", " */
	size_t n_headers;
	const uint8_t *body; /* may be NULL when body_len is 0 */
	size_t body_len;
	const char *peer; /* the client's address as numeric text
	                   * ("127.0.0.1", "::1"); NULL when unknown */
} gw_request;

/* The request headers the gateway reads: gw_http.c copies exactly these
 * (repeated ones joined); a header not listed is ignored. */
#define GW_N_REQUEST_HEADERS 15
extern const char *const gw_request_header_names[GW_N_REQUEST_HEADERS];

/* gw_request_header returns the value of name (case-insensitive), or
 * NULL. Borrowed from r. */
const char *gw_request_header(const gw_request *r, const char *name);

/* --- responses --- */

typedef struct gw_resp_header {
	const char *name; /* static */
	char *value;      /* owned */
} gw_resp_header;

/* Events a response reports to the metrics. */
enum {
	GW_EV_CONFLICT = 1u << 0,      /* VERSION_CONFLICT answered */
	GW_EV_LOCK_ACQUIRED = 1u << 1, /* a Lock that took a new lease */
	GW_EV_LOCK_RENEWED = 1u << 2,  /* a Lock that renewed one */
	GW_EV_LOCK_REFUSED = 1u << 3,  /* LOCKED answered */
};

/* gw_response: status, headers, body. Building never fails loudly: a
 * failed step (out of memory, too many headers) marks it broken, and
 * gw_response_seal turns a broken response into a bare 500. */
typedef struct gw_response {
	int status;
	gw_resp_header headers[GW_MAX_RESPONSE_HEADERS];
	size_t n_headers;
	const uint8_t *body; /* == body_owned, or borrowed from a response
	                      * message the caller keeps alive until the
	                      * bytes are copied out */
	size_t body_len;
	uint8_t *body_owned; /* owned (ds_free) or NULL */
	bool close;          /* answer with Connection: close (the body was
	                      * not read) */
	bool broken;
	unsigned events; /* GW_EV_* */
} gw_response;

void gw_response_init(gw_response *r);
/* gw_response_fini frees headers and body; a zeroed response is fine. */
void gw_response_fini(gw_response *r);
/* gw_response_reset drops everything but close and events. */
void gw_response_reset(gw_response *r, int status);
/* gw_response_header sets name (a static string) to a copy of value,
 * replacing an earlier value of the same name. */
void gw_response_header(gw_response *r, const char *name, const char *value);
void gw_response_headerf(
    gw_response *r, const char *name, const char *fmt, ...) DS_PRINTF(3, 4);
/* gw_response_get_header returns the value or NULL (borrowed from r). */
const char *gw_response_get_header(const gw_response *r, const char *name);
/* gw_response_body_take makes body (ds_alloc'd; taken always) the body. */
void gw_response_body_take(gw_response *r, void *body, size_t len);
/* gw_response_body_borrow points at bytes the caller keeps alive. */
void gw_response_body_borrow(gw_response *r, const void *body, size_t len);
/* gw_response_text: status, Content-Type and a copy of text. */
void gw_response_text(
    gw_response *r, int status, const char *ctype, const char *text);
/* gw_response_seal replaces a broken response with a bare 500. */
void gw_response_seal(gw_response *r);

/* --- routes, methods (gw_routes.c) --- */

typedef enum gw_route {
	GW_ROUTE_OTHER = 0, /* unparseable request-target */
	GW_ROUTE_RECORD,    /* /v1/records/{key} */
	GW_ROUTE_LOCK,      /* /v1/records/{key}/lock */
	GW_ROUTE_UNLOCK,    /* /v1/records/{key}/unlock */
	GW_ROUTE_LIST,      /* /v1/records */
	GW_ROUTE_RPC,       /* /rpc/{package.Service}/{Method} */
	GW_ROUTE_HEALTHZ,
	GW_ROUTE_METRICS,
	GW_ROUTE_WATCH,  /* /v1/watch: long poll */
	GW_ROUTE_EVENTS, /* /v1/events: Server-Sent Events */
	GW_ROUTE_STATIC, /* everything else */
	GW_ROUTE_SESSION, /* /v1/session: sign in, who am I, sign out */
	GW_ROUTE_COUNT,
} gw_route;

typedef enum gw_method {
	GW_M_GET = 0,
	GW_M_HEAD,
	GW_M_PUT,
	GW_M_POST,
	GW_M_DELETE,
	GW_M_OPTIONS,
	GW_M_OTHER,
	GW_M_COUNT,
} gw_method;

const char *gw_route_name(gw_route r);    /* "record", ...; static */
gw_method gw_method_parse(const char *m); /* NULL -> GW_M_OTHER */
const char *gw_method_name(gw_method m);  /* "GET", ..., "other" */

/* gw_route_allow returns the route's Allow header value; static. */
const char *gw_route_allow(gw_route r);
bool gw_route_allows(gw_route r, gw_method m);

/* gw_target: a request-target split into its parts; every pointer is
 * borrowed from the uri given to gw_target_parse. */
typedef struct gw_target {
	gw_route route;
	const char *path; /* raw, from '/' to '?' or the end */
	size_t path_len;
	const char *query; /* raw, after '?'; "" if none */
	size_t query_len;
	const char *key; /* raw (still encoded) key: RECORD, LOCK, UNLOCK */
	size_t key_len;
	const char *rpc; /* "/package.Service/Method": RPC */
	size_t rpc_len;
} gw_target;

/* gw_target_parse routes uri. The path is matched before any decoding,
 * so an encoded "%2F" never splits a key and "/lock" names the lock route
 * only as a literal last segment (README: "keys in paths"). Returns 0, or
 * an HTTP status with st filled: 414 over GW_MAX_URI_BYTES, 400 when the
 * target does not start with '/' or holds bytes no URI may (controls,
 * space, '\', '#', DEL). */
int gw_target_parse(const char *uri, gw_target *t, nrpc_status *st);

/* --- percent-encoding (gw_routes.c) --- */

typedef enum gw_pct_err {
	GW_PCT_OK = 0,
	GW_PCT_EESCAPE, /* '%' not followed by two hex digits */
	GW_PCT_ENUL,    /* %00 */
	GW_PCT_EUTF8,   /* the decoded bytes are not UTF-8 */
} gw_pct_err;

const char *gw_pct_strerror(gw_pct_err e);

/* gw_pct_decode decodes s[0..len) into out (room for len + 1 bytes; the
 * result is never longer) and NUL-terminates it. plus_is_space maps '+'
 * to ' ' (query strings, as URLSearchParams writes them; paths keep '+').
 * On failure out holds garbage. */
gw_pct_err gw_pct_decode(
    const char *s, size_t len, bool plus_is_space, char *out, size_t *out_len);

/* gw_decode_dup is gw_pct_decode into a new string (owned; ds_free).
 * Returns 0, 400 (st names `what`) or 500 (out of memory). */
int gw_decode_dup(const char *s, size_t len, bool plus_is_space,
    const char *what, char **out, size_t *out_len, nrpc_status *st);

/* gw_pct_encode appends s[0..len) to b with '%', controls, DEL and every
 * byte >= 0x80 percent-encoded: user text (owner, author) in a header
 * stays one printable ASCII line, and decodeURIComponent() restores it. */
DS_WUR ds_err gw_pct_encode(ds_buf *b, const char *s, size_t len);

/* --- query strings (gw_routes.c) --- */

typedef struct gw_query_param {
	const char *name; /* raw, borrowed */
	size_t name_len;
	const char *value;
	size_t value_len;
} gw_query_param;

typedef struct gw_query {
	size_t n;
	gw_query_param p[GW_MAX_QUERY_PARAMS];
} gw_query;

/* gw_query_parse splits q[0..len) at '&' and '='. Returns 0 or 400 over
 * GW_MAX_QUERY_PARAMS. */
int gw_query_parse(const char *q, size_t len, gw_query *out, nrpc_status *st);

/* gw_query_get finds the parameter named name or alt (alt may be NULL;
 * names are compared encoded, as sent) and decodes its value into *value
 * (owned; NULL when absent). Returns 0, or 400 when it is given twice or
 * badly encoded, 500 out of memory. */
int gw_query_get(const gw_query *q, const char *name, const char *alt,
    char **value, nrpc_status *st);

/* gw_parse_u64 parses a decimal without sign, spaces or overflow. */
bool gw_parse_u64(const char *s, size_t len, uint64_t *out);

/* --- bodies (gw_routes.c) --- */

/* gw_body_check decides from the headers whether a body can be read:
 * returns 0 with *len (0 when there is none), 411 when Transfer-Encoding
 * is used (nng's server reads only Content-Length bodies), 400 for a bad
 * Content-Length, 413 when it exceeds limit (st names limit_name). */
int gw_body_check(const char *content_length, const char *transfer_encoding,
    size_t limit, const char *limit_name, size_t *len, nrpc_status *st);

/* --- preconditions and status mapping (gw_precond.c) --- */

typedef struct gw_etag {
	uint64_t version; /* when numeric */
	bool weak;        /* W/"..." */
	bool numeric;     /* "<decimal>" without leading zeros: one of ours */
} gw_etag;

typedef struct gw_etags {
	bool any; /* "*" */
	size_t n;
	gw_etag tags[GW_MAX_ETAGS];
} gw_etags;

/* gw_etags_parse reads an If-Match / If-None-Match value: "*" or a comma
 * list of entity-tags (RFC 9110 §8.8.3; empty elements allowed; tags that
 * are not ours parse and never match). Returns 0, or 400 naming header
 * for malformed input, "*" mixed with tags, more than GW_MAX_ETAGS tags or
 * more than GW_MAX_PRECOND_HEADER_BYTES bytes. */
int gw_etags_parse(
    const char *s, const char *header, gw_etags *out, nrpc_status *st);

/* Strong comparison (If-Match): a weak tag never matches. */
bool gw_etags_match_strong(const gw_etags *l, uint64_t version);
/* Weak comparison (If-None-Match): W/"3" matches version 3. */
bool gw_etags_match_weak(const gw_etags *l, uint64_t version);

typedef enum gw_precond_kind {
	GW_PRECOND_NONE = 0,      /* neither header: 428 for writes */
	GW_PRECOND_IF_VERSION,    /* If-Match: "N" */
	GW_PRECOND_IF_EXISTS,     /* If-Match: * */
	GW_PRECOND_IF_ABSENT,     /* If-None-Match: * */
	GW_PRECOND_IF_MATCH_LIST, /* If-Match with several tags, or only tags
	                           * that can never match strongly: one write
	                           * with if_version_in (the strong numeric
	                           * tags), or, when there are none, a Get
	                           * answered with 412 */
} gw_precond_kind;

typedef struct gw_precond {
	gw_precond_kind kind;
	uint64_t version; /* IF_VERSION */
	gw_etags etags;   /* IF_MATCH_LIST */
} gw_precond;

/* gw_precond_parse maps a write's If-Match / If-None-Match (either may be
 * NULL) to a precondition. Returns 0 (kind NONE when neither is given:
 * the caller answers 428), or 400: both headers at once, If-None-Match
 * with tags instead of "*", or a malformed value. */
int gw_precond_parse(const char *if_match, const char *if_none_match,
    gw_precond *out, nrpc_status *st);

/* gw_http_status maps an RPC outcome to HTTP (DESIGN §6, the README's
 * table): by reason first, then grpc-gateway's table by code.
 * VERSION_CONFLICT is 412 when http_precondition (the request used
 * If-Match / If-None-Match), else 409. */
int gw_http_status(const nrpc_status *st, bool http_precondition);

/* gw_http_reason is the reason phrase for status ("Precondition Failed");
 * static; "Unknown" outside the table. */
const char *gw_http_reason(int status);

/* gw_retry_after_s: whole seconds until expires_at_ms, at least 1. */
int64_t gw_retry_after_s(int64_t expires_at_ms, int64_t now_ms);

/* gw_status_set fills st (nrpc_status_set) and returns http, so error
 * paths read `return gw_status_set(st, 400, ...)`. */
int gw_status_set(nrpc_status *st, int http, nrpc_code code,
    const char *reason, const char *field, const char *fmt, ...)
    DS_PRINTF(6, 7);

/* --- core: what the pure layer knows of its configuration --- */

typedef enum gw_op {
	GW_OP_GET = 0,
	GW_OP_UPDATE,
	GW_OP_DELETE,
	GW_OP_LOCK,
	GW_OP_UNLOCK,
	GW_OP_LIST,
	GW_OP_WATCH,
	GW_OP_WHOAMI,
	GW_OP_COUNT,
	GW_OP_RPC = GW_OP_COUNT, /* /rpc/: any method */
} gw_op;

typedef struct gw_metrics gw_metrics;
typedef struct auth_limiter auth_limiter;

typedef struct gw_core {
	const nrpc_service_desc *const *services; /* borrowed */
	size_t n_services;
	const nrpc_method *ops[GW_OP_COUNT]; /* datasync's methods, found in
	                                      * services; NULL = not served
	                                      * (those REST routes are 501) */
	const char *const *cors_origins;     /* borrowed */
	size_t n_cors_origins;
	bool cors_any; /* "*" is among them */
	size_t max_value_bytes;
	size_t max_rpc_body_bytes; /* derived: base64 + overhead */
	const ds_clock *wall;      /* borrowed; Retry-After */
	gw_metrics *metrics;       /* borrowed; NULL: /metrics 404 */
	/* Host rules (gw_guard.c), set by gw_core_set_hosts: */
	char listen_host[GW_MAX_HOST_BYTES + 1]; /* host part of the listen
	                                          * address; "" = none */
	const char *const *allow_hosts;          /* borrowed; --allow-host */
	size_t n_allow_hosts;
	bool allow_any_host; /* "*" is among them */
	bool tls;            /* served over HTTPS: the own origin is https://,
	                      * and the session cookie is Secure */
	auth_limiter *limiter; /* borrowed; failed authentications per HTTP
	                        * peer (gw_auth.c); NULL: none */
} gw_core;

/* gw_core_init fills core; everything passed is borrowed for core's
 * lifetime. max_value_bytes 0 means the default. */
void gw_core_init(gw_core *core, const nrpc_service_desc *const *services,
    size_t n_services, const char *const *cors_origins, size_t n_cors_origins,
    size_t max_value_bytes, const ds_clock *wall, gw_metrics *metrics);

/* gw_find_method returns the method whose full name is
 * name[0..len) ("/pkg.Svc/Method") in any service, or NULL. */
const nrpc_method *gw_find_method(
    const gw_core *core, const char *name, size_t len);

/* gw_find_message returns the descriptor of the message type named
 * full_name ("datasync.v1.Record") reachable from the services' methods
 * (inputs, outputs and their message fields), or NULL. */
const ProtobufCMessageDescriptor *gw_find_message(
    const gw_core *core, const char *full_name);

/* gw_body_limit: the largest body route accepts, and the limit's name. */
size_t gw_body_limit(const gw_core *core, gw_route r, const char **name);

/* --- Host, Origin and Content-Type rules (gw_guard.c) --- */

/* gw_core_set_hosts sets the names the gateway answers to besides IP
 * literals and "localhost": the host part of listen ("HOST:PORT", may be
 * NULL) and allow_hosts ("*" = any Host; borrowed for core's lifetime). */
void gw_core_set_hosts(gw_core *core, const char *listen,
    const char *const *allow_hosts, size_t n_allow_hosts);

/* gw_host_split finds the host in a Host header or HOST:PORT v[0..n):
 * "a.b:80" -> "a.b", "[::1]:80" -> "[::1]" (brackets kept). Returns 0,
 * or -1 when v is empty or malformed (an unbracketed IPv6 address). */
int gw_host_split(const char *v, size_t n, const char **host, size_t *len);

/* gw_guard_host_allowed: may a request with this Host (NULL: none) be
 * served? IP literals, localhost, the listen host and --allow-host. */
bool gw_guard_host_allowed(const gw_core *core, const char *host);

/* gw_guard_check applies DESIGN §11 to req on route before anything
 * runs: a Host the gateway does not answer to is 421 HOST_NOT_ALLOWED; an
 * unsafe method (not GET, HEAD, OPTIONS) whose Origin is neither the
 * gateway's own nor allowed by --cors-origin is 403 ORIGIN_NOT_ALLOWED;
 * a body on /rpc/ or the lock route that is not labelled
 * application/json is 415 UNSUPPORTED_MEDIA_TYPE. Returns 0, or the HTTP
 * status with st set. */
int gw_guard_check(const gw_core *core, const gw_request *req,
    gw_route route, nrpc_status *st);

/* --- CORS (gw_cors.c) --- */

typedef enum gw_cors {
	GW_CORS_NONE = 0, /* no Origin header */
	GW_CORS_ALLOWED,
	GW_CORS_DENIED,
} gw_cors;

/* gw_cors_origin_valid: is o a serialized origin ("scheme://host[:port]",
 * no path, no trailing '/') or "*"? For checking the configuration. */
bool gw_cors_origin_valid(const char *o);

/* gw_cors_check: exact, case-sensitive comparison with the configured
 * origins (browsers serialize origins in lower case). */
gw_cors gw_cors_check(const gw_core *core, const char *origin);

/* gw_cors_decorate adds Access-Control-Allow-Origin and -Expose-Headers
 * when c is ALLOWED, and Vary: Origin whenever origins are configured (so
 * a cache never serves one origin's answer to another). */
void gw_cors_decorate(
    const gw_core *core, gw_cors c, const char *origin, gw_response *r);

/* gw_cors_options answers OPTIONS on route: a preflight from an allowed
 * origin gets 204 with the Access-Control-Allow-* headers; one from
 * another origin 403 without CORS headers; OPTIONS that is no preflight
 * 204 with Allow. */
void gw_cors_options(const gw_core *core, const gw_request *req,
    gw_route route, gw_response *r);

/* --- metrics (gw_metrics.c) --- */

#define GW_METRICS_N_CODES   28 /* the statuses the gateway answers, +other */
#define GW_METRICS_N_BUCKETS 14

struct gw_metrics {
	_Atomic uint64_t
	    requests[GW_ROUTE_COUNT][GW_M_COUNT][GW_METRICS_N_CODES];
	_Atomic uint64_t bucket[GW_ROUTE_COUNT][GW_METRICS_N_BUCKETS + 1];
	_Atomic uint64_t sum_us[GW_ROUTE_COUNT];
	_Atomic uint64_t conflicts;
	_Atomic uint64_t lock_acquired;
	_Atomic uint64_t lock_renewed;
	_Atomic uint64_t lock_refused;
	_Atomic int64_t in_flight;
	_Atomic int64_t sse_streams;      /* event streams open now */
	_Atomic uint64_t sse_opened;      /* event streams opened */
	_Atomic uint64_t sse_refused;     /* 503: over max_sse_streams */
};

/* gw_metrics_init zeroes m. */
void gw_metrics_init(gw_metrics *m);
/* gw_metrics_begin counts a request in flight. Thread-safe. */
void gw_metrics_begin(gw_metrics *m);
/* gw_metrics_end counts an answered request: route, method, status, time
 * from its headers to its answer (µs), its GW_EV_* events. */
void gw_metrics_end(gw_metrics *m, gw_route route, gw_method method,
    int status, int64_t latency_us, unsigned events);
/* gw_metrics_render appends the Prometheus text format (version 0.0.4)
 * to out. Counters are read one by one without a global lock: a scrape
 * taken during traffic may be off by the requests in between. */
DS_WUR ds_err gw_metrics_render(gw_metrics *m, ds_buf *out);

/* --- static files (gw_static.c) --- */

/* gw_static_sanitize turns the raw path of a static request into a
 * relative file name (owned; ds_free): decoded, dot segments refused,
 * "" and directories mapped to index.html. Returns 0, 400 for bad
 * encoding, NUL, '\', a ".." segment, a path over
 * GW_MAX_STATIC_PATH_BYTES, or 404 for hidden names (a segment starting
 * with '.'); 500 out of memory. */
int gw_static_sanitize(
    const char *path, size_t len, char **rel, nrpc_status *st);

/* gw_static_content_type: by extension, case-insensitive; static;
 * "application/octet-stream" for unknown ones. */
const char *gw_static_content_type(const char *name);

/* gw_static_respond serves rel (from gw_static_sanitize) below root, or
 * the file js_path for "datasync.js" when root has none. root is a
 * realpath (NULL: no static files). The resolved file must lie inside
 * root (realpath, so a symlink cannot lead out), be a regular file and at
 * most GW_MAX_STATIC_FILE_BYTES: else 404. Reads the file: call it where
 * blocking on the local disk is acceptable. */
void gw_static_respond(
    const char *root, const char *js_path, const char *rel, gw_response *r);

/* --- plans (gw_plan.c) and rendering (gw_render.c) --- */

/* GW_DEFAULT_AUTHOR: updated_by of a REST write without an Author header
 * (the gateway's client name, which is no longer what the envelope
 * carries: that is the caller). */
#define GW_DEFAULT_AUTHOR "datasync-gateway"

typedef enum gw_plan_kind {
	GW_PLAN_RESPOND = 0, /* resp is the answer */
	GW_PLAN_RPC,         /* call rpc with req, then gw_plan_step */
	GW_PLAN_STATIC,      /* gw_static_respond(static_rel), then
	                      * gw_plan_decorate */
	GW_PLAN_STREAM,      /* resp is the 200 of an event stream (headers,
	                      * and as body the stream's first bytes);
	                      * m.watch with stream_after is the next Watch */
} gw_plan_kind;

typedef struct gw_plan {
	gw_plan_kind kind;
	gw_route route;
	gw_method method;
	gw_op op;
	gw_cors cors;
	char *origin; /* owned copy of the Origin when allowed */
	bool head;
	bool read_current;      /* the RPC is the Get of an If-Match list
	                         * that no version can match: answer 412
	                         * with what it returns */
	bool http_precondition; /* If-Match / If-None-Match were used */
	gw_precond pc;
	bool has_inm; /* GET: If-None-Match given */
	gw_etags inm;

	const nrpc_method *rpc; /* GW_PLAN_RPC: what to call ... */
	ProtobufCMessage *req;  /* ... with this (borrowed from the plan) */
	char *call_request_id;  /* /rpc/: Idempotency-Key for the envelope */
	uint32_t wait_ms;       /* how long the RPC may wait in the service
	                         * (a Watch's timeout, a Lock's wait_ms): its
	                         * deadline is gw_plan_deadline_ms */
	bool stream;            /* GET /v1/events: the RPC is the stream's
	                         * first Watch (GW_SSE_PROBE_WAIT_MS) */
	uint64_t stream_after;  /* GW_PLAN_STREAM: the cursor to go on from */
	/* Authentication (gw_auth.c). */
	int cred_from;       /* gw_cred_from of the credential forwarded */
	char *authorization; /* owned: the metadata value forwarded on the
	                      * call, "Bearer <secret>" (or another scheme's
	                      * header as sent); NULL: none. Never logged */
	int session;         /* gw_session_op of a /v1/session request */
	char peer[GW_MAX_PEER_BYTES + 1]; /* the limiter's key; "" unknown */
	char *caller;           /* owned: "http:" and the peer, sent as the
	                         * call's client name (nrpc_call_opts.caller)
	                         * so that the service scopes Idempotency-Key
	                         * per peer, not one scope for every browser;
	                         * NULL when the peer is unknown (then the
	                         * gateway's own client name) */

	/* REST messages; their strings point to the owned copies below or
	 * to protobuf-c's "" and value to the request body (borrowed). */
	union {
		Datasync__V1__GetRequest get;
		Datasync__V1__UpdateRequest update;
		Datasync__V1__DeleteRequest del;
		Datasync__V1__LockRequest lock;
		Datasync__V1__UnlockRequest unlock;
		Datasync__V1__ListRequest list;
		Datasync__V1__WatchRequest watch;
		Datasync__V1__WhoAmIRequest whoami;
	} m;
	Datasync__V1__GetRequest current; /* read_current */
	Datasync__V1__Precondition precond;
	Datasync__V1__VersionSet version_in; /* IF_MATCH_LIST's set ... */
	uint64_t versions[GW_MAX_ETAGS];     /* ... of these */
	ProtobufCMessage *decoded; /* owned: /rpc/'s request (pbjson) */
	char *strs[8];             /* owned strings the messages point to */
	size_t n_strs;

	char *static_rel; /* GW_PLAN_STATIC: owned */
	gw_response resp;
} gw_plan;

/* gw_plan_init zeroes p. */
void gw_plan_init(gw_plan *p);
/* gw_plan_fini frees what p owns; a zeroed plan is fine. */
void gw_plan_fini(gw_plan *p);

/* gw_plan_precheck looks at the headers only (req->body is ignored): the
 * route's body limit and Content-Length / Transfer-Encoding. Returns true
 * with *body_len (0 for none) when the body may be read, or false with p
 * a finished GW_PLAN_RESPOND (411, 413, 400; close set: the body stays
 * unread). p must be freshly initialized. */
bool gw_plan_precheck(
    const gw_core *core, const gw_request *req, size_t *body_len, gw_plan *p);

/* gw_plan_make routes req (with its body) and fills p, which must be
 * freshly initialized. It never fails: a refusal or an out-of-memory is
 * a GW_PLAN_RESPOND. p borrows req->body until gw_plan_fini (a PUT's
 * value is sent from it) and nothing else of req. */
void gw_plan_make(const gw_core *core, const gw_request *req, gw_plan *p);

/* gw_plan_step feeds the outcome of p's RPC: resp (borrowed: NULL unless
 * st->code is OK; when the result is GW_PLAN_RESPOND p->resp may borrow
 * from it, so keep it until the response is copied out) and st
 * (borrowed). Returns GW_PLAN_RESPOND with p->resp final, or
 * GW_PLAN_RPC when another call is needed (p->rpc and p->req describe
 * it); no route needs a second call today, but callers keep handling it
 * so that one may. */
gw_plan_kind gw_plan_step(const gw_core *core, gw_plan *p,
    const ProtobufCMessage *resp, const nrpc_status *st);

/* gw_plan_fail finishes p with an error for a call that could not be
 * made (st borrowed). */
void gw_plan_fail(const gw_core *core, gw_plan *p, const nrpc_status *st);

/* gw_plan_decorate finishes p->resp: CORS headers, seal. gw_plan_make
 * and gw_plan_step call it; gw_http.c calls it after static files. */
void gw_plan_decorate(const gw_core *core, gw_plan *p);

/* gw_plan_request is precheck + make for callers that hold the whole
 * request (tests, the fuzzer): a body longer than the Content-Length
 * header claims is truncated to it, one without the header is used as is.
 */
void gw_plan_request(const gw_core *core, const gw_request *req, gw_plan *p);

/* gw_plan_deadline_ms: the deadline of p's RPC given the gateway's
 * default rpc_timeout_ms: a call that waits in the service gets its wait
 * plus GW_WAIT_DEADLINE_MARGIN_MS, never less than the default. */
int64_t gw_plan_deadline_ms(const gw_plan *p, int64_t rpc_timeout_ms);
/* gw_wait_deadline_ms is the same for a call that waits wait_ms (0: it
 * does not wait). */
int64_t gw_wait_deadline_ms(uint32_t wait_ms, int64_t rpc_timeout_ms);

/* --- authentication (gw_auth.c) --- */

/* The HttpOnly cookie a browser session rides on (DESIGN §11). */
#define GW_SESSION_COOKIE "ds_session"
/* The metadata key the credential travels under on the RPC. */
#define GW_AUTH_METADATA "authorization"

typedef enum gw_cred_from {
	GW_CRED_NONE = 0,
	GW_CRED_HEADER, /* Authorization (wins over the cookie) */
	GW_CRED_COOKIE, /* Cookie: ds_session=... */
	GW_CRED_BODY,   /* POST /v1/session {"token": ...} */
} gw_cred_from;

typedef enum gw_session_op {
	GW_SESSION_NONE = 0,
	GW_SESSION_GET,    /* GET /v1/session: WhoAmI */
	GW_SESSION_SIGNIN, /* POST: WhoAmI with the token, then the cookie */
} gw_session_op;

/* gw_cred: the credential of a request, borrowed from it. */
typedef struct gw_cred {
	gw_cred_from from;
	const char *value; /* the secret (Bearer, cookie), or the whole
	                    * Authorization value of another scheme */
	size_t len;
	bool bearer; /* value is a Bearer secret (or a cookie's) */
} gw_cred;

/* gw_cookie_get finds the first cookie called name in a Cookie header
 * value ("a=1; ds_session=x"; several Cookie headers joined by ", " as
 * gw_http.c joins them): *value, *len borrowed from header (DQUOTEs
 * around the value dropped). false when there is none. */
bool gw_cookie_get(const char *header, const char *name, const char **value,
    size_t *len);

/* gw_auth_cred reads req's credential: Authorization wins over the
 * ds_session cookie. A "Bearer <secret>" header gives the secret; a
 * header of another scheme is forwarded whole (datasyncd refuses it as
 * TOKEN_MALFORMED), so the gateway never decides who is authenticated. */
void gw_auth_cred(const gw_request *req, gw_cred *c);

/* gw_auth_metadata turns c into the value forwarded as the RPC metadata
 * "authorization": "Bearer <secret>" (owned; ds_free), NULL for none.
 * Returns 0, 400 when it exceeds GW_MAX_AUTH_BYTES, 500 out of memory. */
int gw_auth_metadata(const gw_cred *c, char **out, nrpc_status *st);

/* gw_auth_www_authenticate: the WWW-Authenticate of a 401 (RFC 6750 §3):
 * with error="invalid_token" when a credential was sent. Static. */
const char *gw_auth_www_authenticate(bool had_credential);

/* gw_auth_session_cookie writes the Set-Cookie value that starts a
 * session with secret (HttpOnly; SameSite=Strict; Path=/; Secure when
 * tls), or, with secret NULL, the one that ends it (Max-Age=0). Owned
 * (ds_free); NULL out of memory. */
char *gw_auth_session_cookie(const char *secret, size_t len, bool tls);

/* gw_auth_blocked: is the peer of p over the failure limit (core's
 * limiter)? Only requests that carry a credential are held back (one
 * without cannot guess); *retry_after_ms how long still. */
bool gw_auth_blocked(const gw_core *core, const gw_plan *p,
    int64_t *retry_after_ms);

/* gw_auth_outcome feeds the limiter with the outcome of p's call: an
 * UNAUTHENTICATED answer (other than TOKEN_REVOKED) to a request that
 * carried a credential counts as one failure of its peer. */
void gw_auth_outcome(const gw_core *core, const gw_plan *p,
    const nrpc_status *st);

/* gw_auth_decorate adds what a response about authentication needs:
 * WWW-Authenticate on a 401; on a 401 for a ds_session cookie, the
 * Set-Cookie that drops it (a revoked session does not linger). */
void gw_auth_decorate(const gw_core *core, gw_plan *p);

/* gw_auth_session_plan plans /v1/session (p->method GET, POST, DELETE):
 * GET and POST become a WhoAmI (POST with the token of its JSON body
 * {"token": "..."} when it has one, else its Authorization), DELETE
 * answers 204 with the cookie cleared. Returns 0 or an HTTP status with
 * st filled. */
int gw_auth_session_plan(const gw_core *core, const gw_request *req,
    gw_plan *p, nrpc_status *st);

/* gw_auth_session_render renders the WhoAmI reply w of a /v1/session
 * plan: 200 {"authRequired","authenticated","token"}, and for a sign-in
 * with a token the server accepted the session cookie; a sign-in the
 * server did not authenticate is 401. */
void gw_auth_session_render(const gw_core *core, gw_plan *p,
    const Datasync__V1__WhoAmIResponse *w);

/* --- watch over HTTP (gw_watch.c) --- */

/* gw_watch_args: the query of GET /v1/watch or /v1/events. */
typedef struct gw_watch_args {
	char *key;           /* owned (ds_free) or NULL */
	char *prefix;        /* owned (ds_free) or NULL */
	uint64_t after;      /* events after this revision */
	bool from_now;       /* neither after nor Last-Event-ID given */
	uint32_t timeout_ms; /* /v1/watch only; default 30 s */
	uint32_t limit;      /* 0 = the service's default */
	bool with_values;
} gw_watch_args;

void gw_watch_args_fini(gw_watch_args *a);

/* gw_watch_args_parse reads ?key= | ?prefix= (neither: every key; both:
 * 400), &after=N, &timeout= (milliseconds or a duration "30s"; 1 ms ..
 * GW_WATCH_TIMEOUT_MS_MAX; only when !stream, an event stream's waits are
 * its heartbeat), &limit=N (<= GW_WATCH_LIMIT_MAX), &values=1|0|true|
 * false. last_event_id (NULL when absent; only for streams) overrides
 * after. Returns 0 with *a filled (owned; gw_watch_args_fini), or 400
 * naming the parameter (500 out of memory) with *a left empty. */
int gw_watch_args_parse(const char *query, size_t len,
    const char *last_event_id, bool stream, gw_watch_args *a,
    nrpc_status *st);

/* gw_sse_event_name: the SSE event type of a change: "put", "delete",
 * "lock", "unlock", "expire"; "change" for a type this gateway does not
 * know yet. Static. */
const char *gw_sse_event_name(int type);

/* gw_sse_open appends what a stream starts with: "retry:" and a comment
 * (so a buffering proxy passes the headers on at once). */
DS_WUR ds_err gw_sse_open(ds_buf *b);

/* gw_sse_events appends one SSE event per change in w: "id: <revision>",
 * "event: <type>", "data: <the Event as proto3 JSON, one line>", blank
 * line. A reply without events (progress) appends the heartbeat comment
 * instead. */
DS_WUR ds_err gw_sse_events(ds_buf *b, const Datasync__V1__WatchResponse *w);

/* gw_sse_reset appends "event: reset" with {"compactRevision","revision"}:
 * the cursor fell out of the change log; the client re-reads. */
DS_WUR ds_err gw_sse_reset(ds_buf *b, uint64_t compact, uint64_t revision);

typedef enum gw_sse_next {
	GW_SSE_MORE = 0, /* run the next Watch from *after */
	GW_SSE_END,      /* send what b holds, then end the stream */
} gw_sse_next;

/* gw_sse_step frames the outcome of one of a stream's Watch calls into b:
 * events or a heartbeat (MORE, *after moved to the reply's revision,
 * never backwards), a reset when the cursor was compacted (END), or for
 * any other failure a comment naming it (END: EventSource reconnects with
 * Last-Event-ID). resp and st are borrowed; core finds the status
 * detail's type. */
gw_sse_next gw_sse_step(const gw_core *core, ds_buf *b,
    const ProtobufCMessage *resp, const nrpc_status *st, uint64_t *after);

/* gw_watch_compacted: when st is REVISION_COMPACTED with a WatchResponse
 * detail, its compact_revision and revision; else false. */
bool gw_watch_compacted(const nrpc_status *st, uint64_t *compact,
    uint64_t *revision);

/* Rendering helpers (gw_render.c). */

/* gw_render_error fills r with status http and the JSON error body
 * {"code","reason","message","field","current"}; current is st's detail
 * decoded by its detail_type, or `current` when not NULL (borrowed). For
 * a datasync.v1.Record it also sets ETag (VERSION_CONFLICT), Lock-* and
 * Retry-After (LOCKED). 423, 429 and 503 always get Retry-After. */
void gw_render_error(const gw_core *core, gw_response *r, int http,
    const nrpc_status *st, const ProtobufCMessage *current);

/* gw_render_record_headers sets ETag (when etag), Record-* and Lock-*. */
void gw_render_record_headers(
    gw_response *r, const Datasync__V1__Record *rec, bool etag);
void gw_render_lock_headers(gw_response *r, const Datasync__V1__LockInfo *l);

/* gw_render_json sets status, Content-Type: application/json and the
 * proto3 JSON of m (pbjson, default options) as the body. */
void gw_render_json(gw_response *r, int status, const ProtobufCMessage *m);

/* gw_render_pbjson_error maps a pbjson failure of a request body to 400
 * (413 for ETOOLARGE, 500 for ENOMEM) with the path and, for syntax
 * errors, line, column and byte position in the message. what names the
 * body ("request body"). */
void gw_render_pbjson_error(const gw_core *core, gw_response *r,
    pbjson_err err, const pbjson_error *perr, const char *what);

#endif /* GW_INT_H */
