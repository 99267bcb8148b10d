/*
 * nrpc_int.h - private to service/nrpc: the envelope codec, the decode
 * arena, the worker pool, the server's types shared by nrpc_server.c,
 * nrpc_call.c and nrpc_watchdog.c, and the server's request path without
 * sockets (for the fuzz harness and socket-free tests).
 *
 * Nothing outside service/nrpc includes this header except nrpc's own
 * tests and fuzz harness (STYLE §4: tests may include anything).
 */
#ifndef NRPC_INT_H
#define NRPC_INT_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>
#include <protobuf-c/protobuf-c.h>

#include "nrpc.h"
#include "nrpc/v1/rpc.pb-c.h"

/* --- internal limits --- */

/* nng counts the REQ/REP backtrace (4 bytes per hop, at most 8 hops by
 * default) in NNG_OPT_RECVMAXSZ but not in the message body we see, so
 * the socket limit is max_message_bytes plus this slack and our own check
 * enforces the exact limit on the envelope. */
#define NRPC_RECVMAXSZ_SLACK 64

/* Decoding copies strings and bytes and allocates a struct per repeated
 * submessage, so the memory a request decodes into can be many times its
 * wire size (a 2-byte empty metadata entry becomes ~48 bytes). The arena
 * that holds a decoded request is capped at twice the envelope limit (the
 * envelope's body is copied, then the message decoded from it) plus this
 * much; beyond it the call fails with RESOURCE_EXHAUSTED "TOO_LARGE". */
#define NRPC_DECODE_SLACK_BYTES (64 * 1024)

/* Arena chunk size: a typical request (envelope, a key, a small value)
 * fits in the first chunk, which is kept between calls. */
#define NRPC_ARENA_CHUNK_BYTES 4096

/* A reply that nng cannot hand to the peer within this time (a client
 * that stopped reading) is dropped so the context can serve others. */
#define NRPC_SEND_TIMEOUT_MS 10000

/* nng 1.5.2 has no linger: closing the socket can drop a reply that was
 * handed to a pipe but not yet written. nrpc_server_stop waits this long
 * (bounded by the grace) between the last answer and the close. */
#define NRPC_STOP_LINGER_MS 20

/* nng 1.5.2 can block for good in nng_close of a socket one of whose
 * listeners #1518 broke (seen under the socket fuzzer: the reaper waits
 * on a pipe that never finishes negotiating). nrpc_server_stop waits this
 * long for the close, then abandons the socket to the process's exit. */
#define NRPC_CLOSE_TIMEOUT_MS 5000

/* Connections whose removal (NNG_PIPE_EV_REM_POST) was notified are
 * remembered in a ring this long: a request nng delivered just before its
 * connection closed can reach our receive callback after the
 * notification, when no connection-table entry existed to mark, and is
 * marked gone when it parks. It would take this many other connections
 * closing between that request's delivery and its park to miss one. */
#define NRPC_GONE_RING 256

/* --- varints (protobuf base-128) --- */

/* nrpc_varint_len returns the encoded size of v: 1..10 bytes. */
size_t nrpc_varint_len(uint64_t v);

/* nrpc_varint_put writes v to out (room for nrpc_varint_len(v) bytes)
 * and returns the number of bytes written. */
size_t nrpc_varint_put(uint8_t *out, uint64_t v);

/* --- decode arena --- */

typedef struct nrpc_arena_chunk nrpc_arena_chunk;

/* nrpc_arena is a bump allocator behind a ProtobufCAllocator: everything
 * decoded for one call lives in it and is released at once by
 * nrpc_arena_reset, so a steady stream of small requests allocates
 * nothing. Not thread-safe: one call uses it at a time. */
typedef struct nrpc_arena {
	ProtobufCAllocator pa;   /* pass &arena->pa to *__unpack */
	nrpc_arena_chunk *first; /* owned; kept across resets */
	nrpc_arena_chunk *cur;   /* chunk being filled */
	nrpc_arena_chunk *big;   /* owned; oversized allocations, freed on
	                          * reset */
	size_t used;             /* bytes handed out since the last reset */
	size_t max;              /* used never exceeds this */
	bool over_max;           /* an allocation was refused: max */
	bool oom;                /* an allocation failed: out of memory */
} nrpc_arena;

/* nrpc_arena_init prepares an empty arena holding at most max bytes.
 * Allocates nothing. */
void nrpc_arena_init(nrpc_arena *a, size_t max);

/* nrpc_arena_reset releases everything allocated since the last reset
 * (keeping the first chunk) and clears the failure flags. */
void nrpc_arena_reset(nrpc_arena *a);

/* nrpc_arena_fini frees everything; a zeroed arena is a no-op. */
void nrpc_arena_fini(nrpc_arena *a);

/* --- envelope: encode --- */

/* nrpc_request_plan: a Request to be written by nrpc_envelope_write_
 * request. Every pointer is borrowed from the arguments of
 * nrpc_envelope_plan_request and must stay valid until the write. */
typedef struct nrpc_request_plan {
	Nrpc__V1__Request env; /* everything but the body */
	Nrpc__V1__Metadata md[NRPC_MAX_METADATA];
	Nrpc__V1__Metadata *mdp[NRPC_MAX_METADATA];
	const ProtobufCMessage *body;
	size_t env_len;  /* packed size of env */
	size_t body_len; /* packed size of body */
	size_t total;    /* bytes nrpc_envelope_write_request writes */
} nrpc_request_plan;

/* nrpc_envelope_plan_request sizes a Request for method (a C string),
 * body (borrowed), timeout, request_id and client_name (C strings, may be
 * NULL) and n_metadata key/value pairs (metadata[2i], metadata[2i+1]).
 * INVALID_ARGUMENT (field names the envelope field) when a field exceeds
 * its NRPC_MAX_* limit or a metadata entry is NULL. */
nrpc_code nrpc_envelope_plan_request(nrpc_request_plan *p, const char *method,
    const ProtobufCMessage *body, uint32_t timeout_ms, const char *request_id,
    const char *client_name, const char *const *metadata, size_t n_metadata,
    nrpc_status *st);

/* nrpc_envelope_write_request writes exactly p->total bytes to out. The
 * body is packed straight into out after the rest of the envelope (field
 * order does not matter in protobuf), so it is never copied. */
void nrpc_envelope_write_request(const nrpc_request_plan *p, uint8_t *out);

/* nrpc_reply_plan: a Response to be written by nrpc_envelope_write_reply;
 * borrows from the status and message given to nrpc_envelope_plan_reply. */
typedef struct nrpc_reply_plan {
	Nrpc__V1__Status status;
	bool has_status;              /* false for OK: an absent status is OK */
	const ProtobufCMessage *body; /* NULL: no body */
	size_t status_len;
	size_t body_len;
	size_t total;
} nrpc_reply_plan;

/* nrpc_envelope_plan_reply sizes a Response carrying st (borrowed) and,
 * when st->code is OK, body (borrowed; may be NULL). */
void nrpc_envelope_plan_reply(nrpc_reply_plan *p, const nrpc_status *st,
    const ProtobufCMessage *body);

/* nrpc_envelope_write_reply writes exactly p->total bytes to out. */
void nrpc_envelope_write_reply(const nrpc_reply_plan *p, uint8_t *out);

/* --- envelope: decode --- */

/* nrpc_envelope_decode_request decodes buf[0..len) into *out (allocated
 * in a; valid until a is reset) and checks it: size against max first
 * (RESOURCE_EXHAUSTED "TOO_LARGE"), then protobuf (INVALID_ARGUMENT
 * "MALFORMED_ENVELOPE"; a string field with a NUL or invalid UTF-8 is
 * refused the same way, naming it: nrpc_strings_check), then the fields
 * (method present, within the NRPC_MAX_* limits: INVALID_ARGUMENT
 * "MALFORMED_ENVELOPE" with the field). Arena exhaustion gives RESOURCE_EXHAUSTED "TOO_LARGE" (or
 * "OUT_OF_MEMORY"). *out is written only on NRPC_OK. Pure. */
nrpc_code nrpc_envelope_decode_request(const uint8_t *buf, size_t len,
    size_t max, nrpc_arena *a, Nrpc__V1__Request **out, nrpc_status *st);

/* nrpc_envelope_decode_body decodes a method's request body of type d
 * into *out (in a). INVALID_ARGUMENT "MALFORMED_BODY" naming the type when
 * it does not decode, and naming the field (st->field is its path) when a
 * string field at any depth holds a NUL byte or invalid UTF-8 or messages
 * nest deeper than NRPC_MAX_BODY_DEPTH_DEFAULT (nrpc_strings_check, run
 * before protobuf-c sees the bytes); arena exhaustion as above. Pure. */
nrpc_code nrpc_envelope_decode_body(const ProtobufCMessageDescriptor *d,
    const uint8_t *buf, size_t len, nrpc_arena *a, ProtobufCMessage **out,
    nrpc_status *st);

/* nrpc_envelope_decode_reply decodes a Response of len bytes (checked
 * against max first). When its status is OK, *resp is the body decoded as
 * d (owned; protobuf_c_message_free_unpacked with NULL allocator) and st
 * is OK; otherwise *resp is NULL and st holds the remote status, detail
 * included (owned by st). An undecodable reply or body gives INTERNAL
 * "MALFORMED_REPLY". st is overwritten, never read. Pure. */
nrpc_code nrpc_envelope_decode_reply(const uint8_t *buf, size_t len,
    size_t max, const ProtobufCMessageDescriptor *d, ProtobufCMessage **resp,
    nrpc_status *st);

/* --- strict strings --- */

/* nrpc_strings_check walks the protobuf wire bytes buf[0..len) of a
 * message of type d (both borrowed) and refuses, with INVALID_ARGUMENT,
 * the given reason and st->field naming the field path ("key",
 * "precondition.x", "items[3].owner"):
 *   - a `string` field, at any depth (repeated, oneof, map entry), that
 *     contains a NUL byte or is not UTF-8 (overlong, surrogate,
 *     > U+10FFFF, truncated): protobuf-c would keep it cut at the NUL;
 *   - a message nested deeper than max_depth (the top message is depth 1;
 *     message "... nests deeper than max_body_depth (N)");
 *   - wire that protobuf-c's unpack refuses ("<what> is not a valid
 *     <type> (N bytes)", no field), framed exactly as protobuf-c 1.4.1
 *     frames it so nothing it would decode escapes the check.
 * Unknown fields, bytes and scalars are skipped by their length. A
 * max_depth outside 1..NRPC_MAX_BODY_DEPTH_HARD is refused (INVALID_
 * ARGUMENT, reason "INVALID_ARGUMENT", field "max_body_depth"). One pass,
 * no allocation; st is written only on failure. Pure; thread-safe. */
nrpc_code nrpc_strings_check(const ProtobufCMessageDescriptor *d,
    const uint8_t *buf, size_t len, unsigned max_depth, const char *what,
    const char *reason, nrpc_status *st);

/* --- status helpers --- */

/* nrpc_status_from_wire overwrites st with the wire status ws (borrowed;
 * NULL means OK): strings are truncated to fit, a code outside gRPC's
 * table becomes UNKNOWN, the detail is copied (dropped, with a note in the
 * message, when out of memory). */
void nrpc_status_from_wire(nrpc_status *st, const Nrpc__V1__Status *ws);

/* nrpc_status_printable copies at most cap-1 bytes of s[0..n) to out,
 * replacing bytes outside printable ASCII with '?', so a peer-chosen name
 * can be quoted in a message or log. Always NUL-terminates (cap > 0). */
void nrpc_status_printable(char *out, size_t cap, const char *s, size_t n);

/* nrpc_status_vset is nrpc_status_set with a va_list. */
void nrpc_status_vset(nrpc_status *st, nrpc_code code, const char *reason,
    const char *field, const char *fmt, va_list ap);

/* nrpc_status_move overwrites dst with src, transferring the detail, and
 * leaves src zeroed. Like nrpc_status_set it frees the detail dst held:
 * dst must be zeroed or hold a status. */
void nrpc_status_move(nrpc_status *dst, nrpc_status *src);

/* --- worker pool --- */

/* nrpc_pool_run_fn runs one item on a worker thread; wstate is that
 * worker's state from worker_init (or NULL). */
typedef void (*nrpc_pool_run_fn)(void *item, void *wstate, void *arg);

/* nrpc_pool: worker threads taking items from a bounded FIFO. The
 * producer side (nrpc_pool_push) never blocks, so nng callbacks can use
 * it. */
typedef struct nrpc_pool {
	pthread_mutex_t mtx;
	pthread_cond_t work_cv;  /* workers wait here for items */
	pthread_cond_t start_cv; /* nrpc_pool_start waits for the inits */
	/* guarded by mtx: */
	void **ring;             /* cap slots; owned */
	size_t cap;
	size_t head;             /* index of the oldest item */
	size_t count;            /* items queued */
	unsigned idle;           /* workers waiting on work_cv */
	unsigned inits_done;     /* workers whose init returned */
	unsigned inits_failed;
	int first_fail_rc;       /* rc of the first failed init */
	unsigned first_fail_idx;
	bool go;                 /* every init succeeded: take work */
	bool stopping;           /* no new items; exit when empty */
	/* fixed after start: */
	pthread_t *threads;      /* owned */
	unsigned n_threads;
	nrpc_pool_run_fn run;
	void *run_arg;
	nrpc_worker_init_fn init;
	nrpc_worker_fini_fn fini;
	void *worker_arg;
	bool started;
} nrpc_pool;

/* nrpc_pool_start starts n workers (each runs init on its own thread)
 * and waits for every init. On failure (INTERNAL "WORKER_INIT_FAILED", or
 * RESOURCE_EXHAUSTED/INTERNAL when memory or threads run out) every
 * worker is joined, each successful init has been matched by its fini,
 * and the pool is as zeroed. */
nrpc_code nrpc_pool_start(nrpc_pool *p, unsigned n, size_t max_queue,
    nrpc_pool_run_fn run, void *run_arg, nrpc_worker_init_fn init,
    nrpc_worker_fini_fn fini, void *worker_arg, nrpc_status *st);

/* nrpc_pool_push queues item; false when the queue is full or the pool
 * is stopping (the caller keeps the item). Never blocks beyond the
 * queue's mutex. */
bool nrpc_pool_push(nrpc_pool *p, void *item);

/* nrpc_pool_stop lets the workers run what is queued, then joins them
 * (each runs fini) and frees the pool. Not from a worker. A pool that was
 * never started is a no-op. */
void nrpc_pool_stop(nrpc_pool *p);

/* --- threads inside nng (nng 1.5.2), for the server and the client --- */

/* nng 1.5.2's nng_close() does not wait for a thread that is still inside
 * nng_ctx_send/nng_ctx_recv/nng_ctx_open on one of the socket's contexts:
 * the context is then finalised after the socket, a use-after-free inside
 * nng. Every such call is bracketed by nrpc_nng_enter/nrpc_nng_leave on
 * the socket owner's counter *inside; the closer sets *closing, waits for
 * *inside to reach zero, and only then closes the socket.
 *
 * nrpc_nng_enter admits the calling thread; false once *closing is set
 * (the thread must then not call nng). seq_cst on both sides: either the
 * closer sees this thread inside, or this thread sees the closer's flag. */
static inline bool
nrpc_nng_enter(atomic_uint *inside, atomic_bool *closing)
{
	atomic_fetch_add(inside, 1);
	if (atomic_load(closing)) {
		atomic_fetch_sub(inside, 1);
		return false;
	}
	return true;
}

/* nrpc_nng_leave: the thread admitted by nrpc_nng_enter is out of nng. */
static inline void
nrpc_nng_leave(atomic_uint *inside)
{
	atomic_fetch_sub(inside, 1);
}

/* --- the server: nrpc_server.c, nrpc_call.c, nrpc_watchdog.c --- */

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
	bool parked;              /* nrpc_call_park'ed; counted in
	                           * srv->n_parked until its context is done
	                           * with the reply */
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
	bool dyn;                 /* allocated beyond srv->ctxs (a parked
	                           * call's replacement), on srv->dyn */
	srv_ctx *dyn_next;        /* srv->dyn link; fixed once linked */
	srv_ctx *spare_next;      /* srv->spare link, guarded by park_mtx */
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
	uint32_t n_parked;        /* of which parked: not held against
	                           * max_inflight_per_conn */
	bool gone;                /* its connection closed */
	uint8_t peer_kind;        /* nrpc_peer_kind + 1 once learnt (the
	                           * first nrpc_call_peer), 0 = not yet: the
	                           * remote address costs a getpeername() */
	char peer[NRPC_PEER_MAX]; /* ... and its text */
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
	nng_tls_config *tls;      /* owned; NULL without a tls+tcp:// URL */

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

	/* Requests in flight per connection (max_inflight), and whether
	 * the connection has closed (nrpc_call_peer_gone). Every counted
	 * request holds a pool context or is parked, so the table (twice
	 * n_ctx + max_parked slots) never fills. */
	pthread_mutex_t pipe_mtx; /* guards pipes, gone_ring, gone_next */
	srv_pipe_slot *pipes;     /* owned, pipe_cap slots */
	size_t pipe_cap;          /* a power of two */
	uint32_t gone_ring[NRPC_GONE_RING]; /* closed connections' ids */
	size_t gone_next;         /* next gone_ring slot to write */

	/* Parked calls (nrpc_call_park) and the contexts that replace them
	 * in the receive pool. Leaf lock: nothing calls nng while holding
	 * park_mtx, and it is never held with another of our locks. */
	size_t max_parked;
	pthread_mutex_t park_mtx; /* guards n_pool, spare, dyn */
	unsigned n_pool;          /* contexts cycling receive/handle/send:
	                           * n_ctx less parked ones not yet replaced */
	srv_ctx *spare;           /* closed contexts kept for the next
	                           * replacement (fixed or dyn) */
	srv_ctx *dyn;             /* owned: every context allocated beyond
	                           * ctxs, freed by stop */
	atomic_size_t n_parked;   /* changed under park_mtx */
	atomic_uint_fast64_t parked_total;
	atomic_uint_fast64_t parked_refused;

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

/* nrpc_server.c: nrpc_srv_find looks name[0..len) up in the server's
 * method table; NULL when no service registered it. */
const srv_method *nrpc_srv_find(const nrpc_server *srv, const char *name,
    size_t len);

/* nrpc_call.c: the pool's run function (and the inline path), a context's
 * first receive and its aio callback, and the release of every inline
 * worker state once the server has stopped. */
void nrpc_srv_call_run(void *item, void *wstate, void *arg);
void nrpc_srv_ctx_recv(srv_ctx *sc);
void nrpc_srv_ctx_cb(void *arg);
void nrpc_srv_inline_fini(nrpc_server *srv);
/* nrpc_call.c: the NNG_PIPE_EV_REM_POST callback (arg is the server): a
 * connection closed; runs on an nng thread. */
void nrpc_srv_pipe_removed(nng_pipe p, nng_pipe_ev ev, void *arg);

/* nrpc_watchdog.c: whether any URL needs the watchdog, its thread, its
 * stop (before the socket closes), and an absolute time ms from now on
 * clock clk for a timed wait. */
/* nrpc_srv_listen (re)starts the listener of srv->urls[u] in srv->lis[u]
 * (with srv->tls for a tls+tcp:// URL); nng's error code or 0. */
int nrpc_srv_listen(nrpc_server *srv, size_t u);

bool nrpc_srv_dog_needed(const nrpc_server *srv);
void *nrpc_srv_dog_main(void *arg);
void nrpc_srv_dog_stop(nrpc_server *srv);


/* --- the server's request path without sockets --- */

/* nrpc_server_process runs one envelope through the server's request path
 * on the calling thread: size check, envelope decode, method lookup, body
 * decode, deadline, dispatch (handlers run inline; worker state NULL) -
 * exactly what a REP context does with a received message. If the handler
 * hands the call to another thread, this waits until it is finished.
 * srv needs its services added but need not be started. On NRPC_OK *reply
 * is the packed nrpc.v1.Response (owned; ds_free) of *reply_len bytes;
 * RESOURCE_EXHAUSTED when memory ran out (nothing is returned). This is
 * the fuzz harness's entry point ("bytes -> envelope decode -> dispatch"). */
nrpc_code nrpc_server_process(nrpc_server *srv, const uint8_t *buf,
    size_t len, uint8_t **reply, size_t *reply_len);

#endif /* NRPC_INT_H */
