/*
 * datasync_handlers.h - the DataSync service: request message -> store
 * call -> response message, and store errors -> nrpc status.
 *
 * Where handlers run is the server's choice: by default (main.c, no
 * --workers) inline on nng's task threads (nrpc inline_handlers), with
 * --workers N on nrpc's worker pool. Either way each such thread has its
 * own store read connection (dsh_worker_init: WAL snapshots, never
 * blocked by the writer).
 * - A point Get of the current version (a cached read, ~2 us) runs right
 *   there, on the handler's thread.
 * - A List and a Get of an older version may read many or cold pages:
 *   with a reader pool (config.readers, dsh_readers.c; main.c starts one
 *   by default, none with --workers) they run on its threads instead, so
 *   nng's shared task threads (which also carry the gateway and every aio
 *   callback) never wait on the disk.
 * - Writes (Update, Delete, Lock, Unlock) are validated on the handler's
 *   thread, then handed to one writer thread that applies everything
 *   waiting in one store_apply_batch() transaction (group commit) and
 *   answers each call only after the batch is on disk.
 *
 * Wiring (service/main.c does this):
 *   dsh_service_create(store)          starts the writer (and readers)
 *   nrpc_server_config.worker_init = dsh_worker_init, .worker_fini =
 *   dsh_worker_fini, .worker_arg = the service
 *   nrpc_server_create, dsh_service_register, nrpc_server_start
 *   ... store_cancel_waits (a write waiting for another process's lock
 *   fails DB_BUSY at once instead of holding the shutdown),
 *   nrpc_server_stop (in-flight calls are answered: the writer and the
 *   readers are still running), dsh_service_destroy, nrpc_server_destroy,
 *   store_close
 */
#ifndef DATASYNC_HANDLERS_H
#define DATASYNC_HANDLERS_H

#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "datasync/v1/datasync.pb-c.h"
#include "nrpc.h"
#include "store.h"

typedef struct dsh_service dsh_service;

/* The writer applies at most this many writes per transaction: enough to
 * batch everything in flight at 1000 concurrent clients, small enough that
 * one batch's results stay in cache. */
#define DSH_MAX_BATCH_DEFAULT 1024
#define DSH_MAX_BATCH_HARD 65536

/* Reader pool threads: a List or historical Get mostly hits the page
 * cache, so two threads keep two cores busy; more only help when reads
 * wait on a slow disk. */
#define DSH_READERS_DEFAULT 2
#define DSH_READERS_HARD 64

/* Reads waiting for a reader thread; beyond it RESOURCE_EXHAUSTED, reason
 * "OVERLOADED", naming max_read_queue. A REP context holds one call, so
 * the default (the server's default 256 contexts, four times over) is
 * only reached with many more contexts than that. */
#define DSH_MAX_READ_QUEUE_DEFAULT 1024
#define DSH_MAX_READ_QUEUE_HARD (1024 * 1024)

/* The retry hint (nrpc_status.retry_after_ms) on DB_BUSY and on a full
 * reader queue: a second, as the gateway's Retry-After. */
#define DSH_RETRY_AFTER_MS 1000

/* The writer's head cache (dsh_headcache.c): how many recently updated
 * keys it remembers (each with its current record, for a conflict reply
 * given without SQL), and the largest value it keeps a copy of. Memory
 * is bounded by entries x (key + value + metadata). */
#define DSH_HEAD_CACHE_DEFAULT 4096
#define DSH_HEAD_CACHE_HARD (1024 * 1024)
#define DSH_HEAD_CACHE_VALUE_DEFAULT 4096
#define DSH_HEAD_CACHE_VALUE_HARD (64 * 1024)

/* Watch (DESIGN §9): the wait when the request names none, its maximum,
 * and the events per reply. A parked watch answers with a progress reply
 * this long before the caller's own deadline, so a client whose timeout
 * is just the wait still gets an answer, not DEADLINE_EXCEEDED. */
#define DSH_WATCH_TIMEOUT_DEFAULT_MS 30000
#define DSH_WATCH_TIMEOUT_MAX_MS 60000
#define DSH_WATCH_LIMIT_DEFAULT 1000
#define DSH_WATCH_DEADLINE_MARGIN_MS 200
/* Lock waits: the longest wait_ms. */
#define DSH_LOCK_WAIT_MAX_MS 60000
/* How often parked calls are checked for peers that left. */
#define DSH_PEER_POLL_MS 1000
/* A shared store (PostgreSQL): the hub's listener waits this long per
 * call for another node's commit (so that a stop is seen this fast), and
 * retries this often while the database is down. */
#define DSH_LISTEN_WAIT_MS 250
#define DSH_LISTEN_RETRY_MS 500
#define DSH_LISTEN_POLL_MS 1000

/* The writer records lease expiries (store_sweep_expired) at the next
 * expiry, and at least this often (a clock that jumps), at most
 * DSH_SWEEP_MAX leases per transaction. */
#define DSH_SWEEP_INTERVAL_MS 1000
#define DSH_SWEEP_MAX 256
/* Change-log retention (--watch-retain, --watch-retain-time): at least
 * this many revisions AND this long; compaction runs every
 * DSH_COMPACT_INTERVAL_MS, at most DSH_COMPACT_MAX entries a time. */
#define DSH_WATCH_RETAIN_DEFAULT 100000
#define DSH_WATCH_RETAIN_HARD (UINT64_C(1) << 40)
#define DSH_WATCH_RETAIN_MS_DEFAULT (10 * 60 * 1000)
#define DSH_WATCH_RETAIN_MS_HARD (INT64_C(365) * 24 * 3600 * 1000)
#define DSH_COMPACT_INTERVAL_MS 1000
#define DSH_COMPACT_MAX 10000

typedef struct dsh_config {
	store *store;       /* borrowed; must outlive the service */
	unsigned max_batch; /* 0 = DSH_MAX_BATCH_DEFAULT */
	unsigned readers;   /* reader pool threads for List and historical
	                     * Get, 1..DSH_READERS_HARD; 0 = no pool: they
	                     * run where the handler runs (right when
	                     * handlers already run on a worker pool) */
	size_t max_read_queue; /* 0 = DSH_MAX_READ_QUEUE_DEFAULT */
	size_t head_cache;     /* keys the writer remembers, 0 =
	                        * DSH_HEAD_CACHE_DEFAULT, at most
	                        * DSH_HEAD_CACHE_HARD */
	size_t head_cache_value; /* largest value remembered, 0 =
	                          * DSH_HEAD_CACHE_VALUE_DEFAULT, at most
	                          * DSH_HEAD_CACHE_VALUE_HARD */
	bool no_head_cache;    /* every CAS goes to SQL (A/B runs, tests) */
	uint64_t watch_retain;  /* revisions the change log keeps at least;
	                         * 0 = DSH_WATCH_RETAIN_DEFAULT */
	int64_t watch_retain_ms; /* and for at least this long; -1 = 0 ms
	                          * (tests), 0 = DSH_WATCH_RETAIN_MS_DEFAULT */
	bool auth;             /* every call needs a token with the right
	                        * (DESIGN §11, dsh_auth.h); false = as before
	                        * tokens existed: no checks at all */
} dsh_config;

typedef struct dsh_stats {
	uint64_t batches;      /* transactions committed by the writer */
	uint64_t writes;       /* writes applied or refused in them */
	uint64_t max_batch;    /* largest batch so far */
	uint64_t conflicts;    /* VERSION_CONFLICT outcomes */
	uint64_t cached_conflicts; /* of them, answered from the head cache
	                            * without SQL (not in `writes`) */
	uint64_t locks;        /* successful Lock acquisitions and renewals */
	uint64_t lock_refused; /* LOCKED outcomes */
	uint64_t pool_reads;   /* reads run on the reader pool */
	uint64_t read_refused; /* reads refused: reader queue full */
	uint64_t swept;        /* lease expiries recorded */
	uint64_t compacted;    /* change-log entries compacted */
	uint64_t parked_watches; /* watches parked now */
	uint64_t lock_waiters;   /* Lock calls waiting now */
} dsh_stats;

/* dsh_service_create opens the writer's store connection and starts the
 * writer thread. *out is owned (dsh_service_destroy). On failure nothing
 * is left running and st says why. */
int dsh_service_create(const dsh_config *cfg, dsh_service **out,
    nrpc_status *st);

/* dsh_service_register installs the DataSync handlers on srv (before
 * nrpc_server_start). The service is borrowed by srv until it is
 * destroyed. */
int dsh_service_register(dsh_service *svc, nrpc_server *srv, nrpc_status *st);

/* Worker hooks for nrpc_server_config: each worker opens its own read
 * connection. arg is the dsh_service. */
int dsh_worker_init(void *arg, unsigned index, void **wstate);
void dsh_worker_fini(void *arg, void *wstate);

/* dsh_service_stats_get copies the counters; thread-safe. */
void dsh_service_stats_get(dsh_service *svc, dsh_stats *out);

/* dsh_service_drain answers every parked call (watches, lock waits) and
 * refuses new ones: call it before nrpc_server_stop, which would
 * otherwise wait its grace for calls parked up to a minute. */
void dsh_service_drain(dsh_service *svc);

/* dsh_service_destroy answers every write still queued (applying it) and
 * every read still queued for the reader pool, stops the writer and the
 * readers and frees the service. Call it after nrpc_server_stop
 * and before nrpc_server_destroy. NULL is a no-op. */
void dsh_service_destroy(dsh_service *svc);

/* --- tokens, for datasyncd's offline "token" commands and
 * --bootstrap-token-file (the RPCs use them too) --- */

/* dsh_token_create validates name (auth_name_valid) and grants
 * (auth_grants_parse: n strings such as "read:docs/", "admin"), draws a
 * secret into secret (shown once: the caller prints it, nobody logs it)
 * and stores the token's hash on c. *out (owned, store_auth_token_fini)
 * is the stored token. INVALID_ARGUMENT with field "name" or "grants",
 * ALREADY_EXISTS reason TOKEN_EXISTS, or the store's status; secret is
 * zeroed on failure. */
nrpc_code dsh_token_create(store_conn *c, const char *name,
    const char *const *grants, size_t n, char secret[AUTH_SECRET_TEXT_LEN + 1],
    store_auth_token *out, nrpc_status *st);

/* dsh_token_revoke revokes name on c; *out as revoked (owned). NOT_FOUND
 * (field "name") for an unknown name. */
nrpc_code dsh_token_revoke(store_conn *c, const char *name,
    store_auth_token *out, nrpc_status *st);

/* dsh_token_bootstrap makes sure the secret in the file at path is an
 * admin token's: when the file does not exist it is created (mode 0600,
 * O_EXCL) with a fresh secret and one log line says so (never the
 * secret); when no token has that secret's hash, an admin token named
 * "bootstrap" (or "bootstrap-2", ... when taken) is created. A file that
 * holds anything but one secret (a newline after it allowed) is
 * INVALID_ARGUMENT, field "bootstrap-token-file". */
nrpc_code dsh_token_bootstrap(store *s, const char *path, nrpc_status *st);

/* --- pure conversions, exposed for tests and fuzzers --- */

/* dsh_status_from_store maps a store error to an nrpc status (code and
 * reason per DESIGN §4) with err's message and field. rec (may be NULL)
 * becomes the detail (a packed datasync.v1.Record) for VERSION_CONFLICT
 * and LOCKED. reader: the caller may read rec's key; only then does the
 * detail carry what a Get would show (a conflict's value, content type,
 * author, times). Without it the detail keeps what a writer needs to
 * retry its CAS (key, version, revision, deleted) and the lock, which any
 * caller may see. Returns st->code. */
nrpc_code dsh_status_from_store(const store_error *err,
    const store_record *rec, bool reader, nrpc_status *st);

/* dsh_record_view fills *out (and *lock, which out->lock may point to) to
 * describe rec without copying: every pointer in *out borrows from rec,
 * valid while rec is. include_value = false leaves the value empty. */
void dsh_record_view(const store_record *rec, bool include_value,
    Datasync__V1__Record *out, Datasync__V1__LockInfo *lock);

#endif /* DATASYNC_HANDLERS_H */
