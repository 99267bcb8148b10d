/*
 * dsh_int.h - private to service/datasync: the pure request -> store_write
 * conversions shared by the handlers, the writer and the fuzz harness.
 */
#ifndef DSH_INT_H
#define DSH_INT_H

#include "datasync_handlers.h"

/* dsh_call_ids: identity that the envelope supplies when the message does
 * not (request_id, author), and the caller that scopes request ids.
 * Borrowed strings, never NULL. */
typedef struct dsh_call_ids {
	const char *request_id;
	const char *client_name;
	const char *caller; /* the envelope's client name today; the
	                     * authenticated principal once there is one */
} dsh_call_ids;

/* The dsh_write_from_* functions fill *w to borrow from the request (and
 * ids), valid while they are. They check what the store cannot see in a
 * store_write (the precondition oneof, the token's text form) and return
 * STORE_OK or the error also written to err. */
store_err dsh_write_from_update(const Datasync__V1__UpdateRequest *req,
    const dsh_call_ids *ids, store_write *w, store_error *err);
store_err dsh_write_from_delete(const Datasync__V1__DeleteRequest *req,
    const dsh_call_ids *ids, store_write *w, store_error *err);
store_err dsh_write_from_lock(const Datasync__V1__LockRequest *req,
    const dsh_call_ids *ids, store_write *w, store_error *err);
store_err dsh_write_from_unlock(const Datasync__V1__UnlockRequest *req,
    const dsh_call_ids *ids, store_write *w, store_error *err);

/* --- the reader pool (dsh_readers.c) --- */

typedef struct dsh_readers dsh_readers;

/* dsh_read_fn runs a job on a reader thread with that thread's read
 * connection c. a and b are the submitter's (a call and its request). */
typedef void (*dsh_read_fn)(void *a, const void *b, store_conn *c);

typedef enum dsh_submit_result {
	DSH_SUBMIT_OK = 0,   /* queued: fn will run exactly once */
	DSH_SUBMIT_FULL,     /* max_read_queue jobs wait already */
	DSH_SUBMIT_STOPPING, /* the pool is being destroyed */
	DSH_SUBMIT_NOMEM,
} dsh_submit_result;

/* dsh_readers_create starts n (1..DSH_READERS_HARD) reader threads, each
 * with its own store connection, fed by a FIFO of at most max_queue jobs
 * (0 = DSH_MAX_READ_QUEUE_DEFAULT). *out is owned (dsh_readers_destroy).
 * On failure nothing is left running and st says why. */
int dsh_readers_create(store *s, unsigned n, size_t max_queue,
    dsh_readers **out, nrpc_status *st);

/* dsh_readers_submit queues fn(a, b, conn) for a reader thread. On any
 * result but DSH_SUBMIT_OK nothing was queued and fn will not run: the
 * caller answers the call itself. Thread-safe. */
dsh_submit_result dsh_readers_submit(dsh_readers *r, dsh_read_fn fn, void *a,
    const void *b);

/* dsh_readers_max_queue returns the queue bound in force. */
size_t dsh_readers_max_queue(const dsh_readers *r);

/* dsh_readers_ran counts the jobs a reader has taken (counted as it
 * starts one, so before its answer is sent); thread-safe. */
uint64_t dsh_readers_ran(dsh_readers *r);

/* dsh_readers_destroy runs every job still queued, stops the threads
 * (closing their connections) and frees r. NULL is a no-op. */
void dsh_readers_destroy(dsh_readers *r);

/* dsh_store_error sets err to code with a field and formatted message. */
void dsh_store_error(store_error *err, store_err code, const char *field,
    const char *fmt, ...) DS_PRINTF(4, 5);

/* --- the writer's head cache (dsh_headcache.c) --- */

/* dsh_headcache: owned by the writer thread. Zeroed = off. */
typedef struct dsh_headcache {
	struct dsh_head *slots; /* owned; n of them */
	size_t n;               /* 0 = off */
	size_t max_value;       /* longer values are not remembered */
	uint64_t dv;            /* store_data_version() the cache matches */
	bool dv_known;
	uint64_t mark;          /* the current batch scan */
} dsh_headcache;

/* dsh_headcache_init sets hc up with `entries` slots (0 = off) remembering
 * values of at most max_value bytes. -1 when out of memory (hc is then
 * off). */
int dsh_headcache_init(dsh_headcache *hc, size_t entries, size_t max_value);

/* dsh_headcache_clear forgets everything (a failed batch, another
 * connection's commit). */
void dsh_headcache_clear(dsh_headcache *hc);

/* dsh_headcache_fini frees hc; zeroed is a no-op. */
void dsh_headcache_fini(dsh_headcache *hc);

/* dsh_headcache_candidate: could the cache ever answer w? (a validated
 * Update or Delete with if_version and no token). Pure. */
bool dsh_headcache_candidate(const dsh_headcache *hc, const store_write *w);

/* dsh_headcache_baseline forgets everything and records data_version, the
 * writer connection's store_data_version() now, as the state it learns
 * from (at start, before the first batch). */
void dsh_headcache_baseline(dsh_headcache *hc, uint64_t data_version);

/* dsh_headcache_scan starts a batch scan (see dsh_headcache_answer). */
void dsh_headcache_scan(dsh_headcache *hc);

/* dsh_headcache_valid: is data_version (read just now on the writer's
 * connection) the one the cache learned under? If not, the cache is
 * cleared, takes it as its new baseline, and false says: answer nothing
 * from this scan. */
bool dsh_headcache_valid(dsh_headcache *hc, uint64_t data_version);

/* dsh_headcache_answer, for each write of the batch in order after
 * dsh_headcache_scan: the current record (borrowed until the next
 * dsh_headcache_learn, _clear or _valid) when w is a CAS that cannot
 * succeed and may be refused with it without SQL, provided
 * dsh_headcache_valid() then holds and the store has no entry for w's
 * request id. Else NULL, and either *later = true: w is a plain CAS of
 * a cached key an earlier write of this scan sends to SQL, which the
 * caller may hold back to the next scan (or send to SQL); or w goes to
 * SQL, and later writes of this scan to its key depend on it. now_ms:
 * store_now_ms(). */
const store_record *dsh_headcache_answer(dsh_headcache *hc,
    const store_write *w, int64_t now_ms, bool *later);

/* dsh_headcache_learn, for each write of a COMMITTED batch in order:
 * remembers the head an applied Update wrote, forgets the key on any
 * other change. */
void dsh_headcache_learn(dsh_headcache *hc, const store_write *w,
    const store_write_result *r);

/* dsh_fail_store finishes call with the status of a store error; rec
 * (may be NULL) is the conflict's or refusal's record detail, in full
 * only when reader (dsh_status_from_store). */
void dsh_fail_store(nrpc_call *call, const store_error *err,
    const store_record *rec, bool reader);

/* --- the write queue (dsh_handlers.c) --- */

/* dsh_pending: a write waiting for the writer. It borrows the request
 * message through w, which the call keeps alive until it is finished. */
typedef struct dsh_pending {
	struct dsh_pending *next;  /* the writer's FIFO */
	nrpc_call *call;
	store_write w;
	bool return_value;  /* UpdateRequest.return_value: echo the value */
	/* The caller may also read the key (always, without auth): decided
	 * when the call was authorized, it lets a refusal's detail carry the
	 * record's value (dsh_status_from_store). */
	bool may_read;
	bool held;          /* held back once already (dsh_writer_from_cache) */
	/* Lock waits (dsh_watch.c): a Lock with wait_ms that meets LOCKED
	 * before wait_until_ms (monotonic) is handed to the watch hub
	 * instead of answered. 0 = answer whatever happens. */
	int64_t wait_until_ms;
	uint64_t wait_since;       /* revision of the LOCKED record seen */
	bool wait_attempt;         /* this run is the hub's grant attempt */
	struct dsh_pending *wnext; /* the hub's queue of one key's waiters */
} dsh_pending;

/* dsh_still_allowed: may call, parked since it was authorized (a watch,
 * a lock wait), still exercise right on key (prefix: on every key under
 * it)? Its token is checked again against the current token set
 * (revoked, rights changed). False: call has been answered
 * (UNAUTHENTICATED, PERMISSION_DENIED) and is gone. Always true without
 * authentication. Any thread. */
bool dsh_still_allowed(dsh_service *svc, nrpc_call *call, auth_right right,
    const char *key, bool prefix);

/* dsh_requeue hands p (owned by the caller until now) back to the writer,
 * at the tail of its queue; the writer then owns it. When the service is
 * stopping, p's call is answered UNAVAILABLE and p freed. */
void dsh_requeue(dsh_service *svc, dsh_pending *p);

/* --- watches and lock waits (dsh_watch.c) --- */

typedef struct dsh_watch_hub dsh_watch_hub;

/* dsh_watch_create opens the hub's read connection and starts its
 * thread. The hub parks Watch calls until a change they watch commits or
 * their timeout runs out, and queues Lock calls that wait, in arrival
 * order per key. svc is borrowed (for dsh_requeue). *out is owned
 * (dsh_watch_destroy). */
int dsh_watch_create(store *s, dsh_service *svc, dsh_watch_hub **out,
    nrpc_status *st);

/* dsh_watch_notify: a transaction committed (a batch, a sweep); the hub
 * reads the change log from where it was. Cheap; any thread. */
void dsh_watch_notify(dsh_watch_hub *h);

/* dsh_watch_begin runs a Watch call: validates req, reads the log on c
 * (the caller's read connection) and answers at once when there are
 * events, else parks the call with the hub. The call is always finished
 * exactly once, here or later by the hub. */
void dsh_watch_begin(dsh_watch_hub *h, nrpc_call *call,
    const Datasync__V1__WatchRequest *req, store_conn *c);

/* dsh_watch_lock_wait: p, a Lock that waits, met LOCKED (result record's
 * revision in p->wait_since). True: the hub took p (and will requeue it
 * when the lock is released or expires, or answer it); false: the caller
 * answers it as usual (deadline past, too many parked, draining). */
bool dsh_watch_lock_wait(dsh_watch_hub *h, dsh_pending *p);

/* dsh_watch_lock_done: p, a grant attempt of the hub (p->wait_attempt),
 * is answered now (granted, or failed otherwise than LOCKED); the next
 * waiter of its key may be tried after the next release. */
void dsh_watch_lock_done(dsh_watch_hub *h, const dsh_pending *p);

/* dsh_watch_drain answers every parked call (watches with a progress
 * reply, lock waiters UNAVAILABLE) and refuses new ones, so that
 * nrpc_server_stop need not wait for them. Returns when done. */
void dsh_watch_drain(dsh_watch_hub *h);

typedef struct dsh_watch_stats {
	uint64_t parked_watches;  /* now */
	uint64_t lock_waiters;    /* now */
	uint64_t wakeups;         /* change-log reads by the hub */
	uint64_t delivered;       /* watch replies with events */
	uint64_t progress;        /* watch replies without (timeouts) */
	uint64_t gone;            /* calls dropped: the peer left */
} dsh_watch_stats;

void dsh_watch_stats_get(dsh_watch_hub *h, dsh_watch_stats *out);

/* dsh_watch_destroy drains (as dsh_watch_drain), stops the thread and
 * frees h. NULL is a no-op. */
void dsh_watch_destroy(dsh_watch_hub *h);


#endif /* DSH_INT_H */
