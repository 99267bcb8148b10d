/*
 * dsh_handlers.c - the DataSync handlers and the group-commit writer.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "datasync/v1/datasync.nrpc.h"
#include "ds_alloc.h"
#include "ds_log.h"
#include "dsh_auth.h"
#include "dsh_int.h"

/* dsh_slot: one batch on its way through the pipeline: filled and
 * committed by the writer, then answered by the replier, which hands the
 * slot back. With DSH_SLOTS slots the writer commits the next batch
 * while the replier answers the last one. */
#define DSH_SLOTS 3

typedef struct dsh_slot {
	struct dsh_slot *next;      /* in the free list or the reply queue */
	dsh_pending **batch;        /* max_batch entries each */
	store_write *ws;
	store_write_result *results;
	const store_record **cur;   /* dsh_writer_from_cache's scratch */
	const store_write **peek;
	bool *seen;
	size_t n;                   /* entries in use */
} dsh_slot;

struct dsh_service {
	store *store;       /* borrowed */
	unsigned max_batch;
	pthread_t writer;
	pthread_t replier;
	bool threads_started;
	store_conn *wconn;  /* the writer's connection; writer thread only */
	dsh_headcache heads; /* owned; writer thread only */
	dsh_readers *readers; /* owned; NULL = reads run on the caller */
	dsh_watch_hub *watch; /* owned */
	dsh_auth *auth;       /* owned; NULL = authentication off */
	uint64_t watch_retain;
	int64_t watch_retain_ms;
	int64_t next_sweep_ms;   /* writer thread only; monotonic */
	int64_t next_compact_ms; /* writer thread only; monotonic */

	pthread_mutex_t mu;
	pthread_cond_t cv;
	dsh_pending *head;  /* guarded by mu: FIFO of waiting writes */
	dsh_pending *tail;  /* guarded by mu */
	bool stopping;      /* guarded by mu */

	pthread_mutex_t rmu;
	pthread_cond_t rcv;
	dsh_slot *free_slots;  /* guarded by rmu */
	dsh_slot *replies;     /* guarded by rmu: FIFO of committed batches */
	dsh_slot *replies_tail;
	bool writer_done;      /* guarded by rmu: no more batches will come */
	dsh_slot slots[DSH_SLOTS];

	_Atomic uint64_t n_batches;
	_Atomic uint64_t n_writes;
	_Atomic uint64_t n_max_batch;
	_Atomic uint64_t n_conflicts;
	_Atomic uint64_t n_cached_conflicts;
	_Atomic uint64_t n_locks;
	_Atomic uint64_t n_lock_refused;
	_Atomic uint64_t n_read_refused;
	_Atomic uint64_t n_swept;
	_Atomic uint64_t n_compacted;
};

/* --- replies --- */

void
dsh_fail_store(nrpc_call *call, const store_error *err,
    const store_record *rec, bool reader)
{
	nrpc_status st;

	memset(&st, 0, sizeof(st));
	(void) dsh_status_from_store(err, rec, reader, &st);
	nrpc_call_finish(call, &st, NULL);
	nrpc_status_fini(&st);
}

/* dsh_reply_write answers one applied write. An Update's record carries
 * its value only when the request asked (return_value); the value is then
 * the request's own bytes, borrowed by the result, which the call keeps
 * alive until it is finished here. */
static bool
dsh_reply_write(dsh_service *svc, dsh_pending *p, const store_write *w,
    const store_write_result *r)
{
	nrpc_call *call = p->call;

	Datasync__V1__Record rec;
	Datasync__V1__LockInfo lock;

	if (r->error.code == STORE_ELOCKED && p->wait_until_ms != 0) {
		/* A Lock that waits: in line behind the holder. */
		p->wait_since = r->record.revision;
		if (dsh_watch_lock_wait(svc->watch, p)) {
			return true;
		}
	}
	if (p->wait_attempt) {
		dsh_watch_lock_done(svc->watch, p);
		p->wait_attempt = false;
	}
	if (r->error.code != STORE_OK) {
		if (r->error.code == STORE_ECONFLICT) {
			atomic_fetch_add(&svc->n_conflicts, 1);
		} else if (r->error.code == STORE_ELOCKED) {
			atomic_fetch_add(&svc->n_lock_refused, 1);
		}
		dsh_fail_store(call, &r->error, &r->record, p->may_read);
		return false;
	}
	switch (w->op) {
	case STORE_OP_UPDATE: {
		Datasync__V1__UpdateResponse resp =
		    DATASYNC__V1__UPDATE_RESPONSE__INIT;

		dsh_record_view(&r->record, p->return_value, &rec, &lock);
		resp.record = &rec;
		resp.replayed = r->replayed;
		datasync_v1_data_sync_update_reply(call, &resp);
		break;
	}
	case STORE_OP_DELETE: {
		Datasync__V1__DeleteResponse resp =
		    DATASYNC__V1__DELETE_RESPONSE__INIT;

		resp.version = r->record.version;
		resp.revision = r->record.revision;
		resp.replayed = r->replayed;
		datasync_v1_data_sync_delete_reply(call, &resp);
		break;
	}
	case STORE_OP_LOCK: {
		Datasync__V1__LockResponse resp = DATASYNC__V1__LOCK_RESPONSE__INIT;
		char token[STORE_TOKEN_HEX_LEN + 1];

		atomic_fetch_add(&svc->n_locks, 1);
		store_token_format(&r->token, token);
		dsh_record_view(&r->record, false, &rec, &lock);
		resp.lock_token = token;
		resp.lock = rec.lock;
		resp.renewed = r->renewed;
		resp.version = r->record.deleted ? 0 : r->record.version;
		resp.replayed = r->replayed;
		datasync_v1_data_sync_lock_reply(call, &resp);
		break;
	}
	case STORE_OP_UNLOCK: {
		Datasync__V1__UnlockResponse resp =
		    DATASYNC__V1__UNLOCK_RESPONSE__INIT;

		resp.replayed = r->replayed;
		datasync_v1_data_sync_unlock_reply(call, &resp);
		break;
	}
	default:
		nrpc_call_fail(call, NRPC_INTERNAL, "INTERNAL", NULL,
		    "unknown write operation %d", (int) w->op);
		break;
	}
	return false;
}

/* --- the writer --- */

/* dsh_writer_take moves up to max_batch waiting writes into slot,
 * waiting for one until wake_ms (monotonic) at most. Returns how many;
 * 0 when stopping with nothing queued (*stopping) or at wake_ms. */
static size_t
dsh_writer_take(dsh_service *svc, dsh_slot *slot, int64_t wake_ms,
    bool *stopping)
{
	size_t n = 0;
	const ds_clock *mono = ds_clock_monotonic();
	int64_t now;

	pthread_mutex_lock(&svc->mu);
	while (svc->head == NULL && !svc->stopping &&
	    (now = ds_clock_now_ms(mono)) < wake_ms) {
		struct timespec ts;

		ds_clock_abstime(CLOCK_MONOTONIC, wake_ms - now, &ts);
		(void) pthread_cond_timedwait(&svc->cv, &svc->mu, &ts);
	}
	*stopping = svc->stopping;
	while (svc->head != NULL && n < svc->max_batch) {
		dsh_pending *p = svc->head;

		svc->head = p->next;
		slot->batch[n++] = p;
	}
	if (svc->head == NULL) {
		svc->tail = NULL;
	}
	pthread_mutex_unlock(&svc->mu);
	return n;
}

/* dsh_writer_cached_conflict answers p, a CAS that cannot succeed, with
 * cur, the committed head the cache holds: the reply the store would
 * give (DESIGN §4 rule 2: the current record, value included). */
static void
dsh_writer_cached_conflict(dsh_service *svc, dsh_pending *p,
    const store_record *cur)
{
	store_error err;

	memset(&err, 0, sizeof(err));
	(void) store_conflict_error(&err, cur->version);
	atomic_fetch_add(&svc->n_conflicts, 1);
	atomic_fetch_add(&svc->n_cached_conflicts, 1);
	dsh_fail_store(p->call, &err, cur, p->may_read);
	ds_free(p);
}

/* dsh_writer_from_cache answers from the head cache the writes of
 * slot->batch[0..n) it can refuse without SQL (dsh_headcache.c says why
 * that is safe) and packs the rest, in order, into slot->batch and
 * slot->ws. Returns how many are left for the store. */
static size_t
dsh_writer_from_cache(dsh_service *svc, dsh_slot *slot, size_t n)
{
	size_t k = 0;
	size_t m = 0;
	size_t j = 0;
	uint64_t dv = 0;
	bool ok = true;
	store_error err;

	dsh_pending *held = NULL;
	dsh_pending *held_last = NULL;

	if (svc->heads.n > 0) {
		int64_t now_ms = store_now_ms(svc->store);

		dsh_headcache_scan(&svc->heads);
		for (size_t i = 0; i < n; i++) {
			dsh_pending *p = slot->batch[i];
			bool later = false;

			slot->cur[i] = dsh_headcache_answer(&svc->heads, &p->w,
			    now_ms, &later);
			if (slot->cur[i] != NULL) {
				slot->peek[k++] = &p->w;
			} else if (later && !p->held) {
				/* A CAS behind another write to its key in
				 * this batch: under a hot key it can only
				 * fail against the head this batch commits,
				 * which the next scan knows without SQL. Held
				 * back once, to the front of the queue. */
				p->held = true;
				slot->batch[i] = NULL;
				if (held_last != NULL) {
					held_last->next = p;
				} else {
					held = p;
				}
				held_last = p;
			}
		}
	}
	if (held != NULL) {
		pthread_mutex_lock(&svc->mu);
		held_last->next = svc->head;
		if (svc->head == NULL) {
			svc->tail = held_last;
		}
		svc->head = held;
		pthread_mutex_unlock(&svc->mu);
	}
	if (k > 0) {
		memset(&err, 0, sizeof(err));
		ok = store_peek_requests(svc->wconn, slot->peek, k, &dv,
		         slot->seen, &err) == STORE_OK;
		if (!ok) {
			dsh_headcache_clear(&svc->heads); /* in doubt: SQL */
		} else {
			ok = dsh_headcache_valid(&svc->heads, dv);
		}
	}
	for (size_t i = 0; i < n; i++) {
		dsh_pending *p = slot->batch[i];
		bool fast = false;

		if (p == NULL) {
			continue; /* held back */
		}
		if (k > 0 && slot->cur[i] != NULL) {
			fast = ok && !slot->seen[j];
			j++;
		}
		if (fast) {
			dsh_writer_cached_conflict(svc, p, slot->cur[i]);
			continue;
		}
		slot->batch[m] = p;
		slot->ws[m] = p->w;
		m++;
	}
	return m;
}

/* dsh_sweep_at makes the writer record the expiry of a lease that runs
 * out at expires_ms (the store's clock) soon after it does. */
static void
dsh_sweep_at(dsh_service *svc, int64_t expires_ms)
{
	int64_t at = ds_clock_now_ms(ds_clock_monotonic()) +
	    (expires_ms - store_now_ms(svc->store)) + 1;

	if (at < svc->next_sweep_ms) {
		svc->next_sweep_ms = at;
	}
}

/* dsh_writer_maintain, between batches: records lease expiries in the
 * change log (so watchers and lock waiters learn of them) and compacts
 * the log, each when due. Returns when it should run next (monotonic). */
static int64_t
dsh_writer_maintain(dsh_service *svc)
{
	int64_t now = ds_clock_now_ms(ds_clock_monotonic());
	store_error err;
	size_t n = 0;

	memset(&err, 0, sizeof(err));
	if (now >= svc->next_sweep_ms) {
		int64_t next_expiry = INT64_MAX;

		svc->next_sweep_ms = now + DSH_SWEEP_INTERVAL_MS;
		if (store_sweep_expired(svc->wconn, DSH_SWEEP_MAX, &n,
		        &next_expiry, &err) != STORE_OK) {
			ds_log(DS_LOG_WARN, "datasync",
			    "recording lease expiries: %s", err.message);
		} else {
			if (n > 0) {
				/* The sweep changed heads the cache may hold. */
				dsh_headcache_clear(&svc->heads);
				atomic_fetch_add(&svc->n_swept, n);
				dsh_watch_notify(svc->watch);
			}
			if (n == DSH_SWEEP_MAX) {
				svc->next_sweep_ms = now; /* more are due */
			} else if (next_expiry != INT64_MAX) {
				dsh_sweep_at(svc, next_expiry);
			}
		}
	}
	if (now >= svc->next_compact_ms) {
		n = 0;
		svc->next_compact_ms = now + DSH_COMPACT_INTERVAL_MS;
		if (store_compact_changes(svc->wconn, svc->watch_retain,
		        svc->watch_retain_ms, DSH_COMPACT_MAX, &n, &err) !=
		    STORE_OK) {
			ds_log(DS_LOG_WARN, "datasync",
			    "compacting the change log: %s", err.message);
		} else {
			atomic_fetch_add(&svc->n_compacted, n);
			if (n == DSH_COMPACT_MAX) {
				svc->next_compact_ms = now;
			}
		}
	}
	return svc->next_sweep_ms < svc->next_compact_ms ? svc->next_sweep_ms
	                                                 : svc->next_compact_ms;
}

/* dsh_writer_run_batch applies the writes in slot in one transaction;
 * a CAS the head cache can refuse is answered first, without SQL.
 * Returns false when nothing is left to answer (all expired or
 * answered). */
static bool
dsh_writer_run_batch(dsh_service *svc, dsh_slot *slot, size_t n)
{
	size_t m = 0;
	store_err rv;
	uint64_t prev;

	/* Work whose deadline has passed is answered, not applied: the
	 * client has given up and may already be retrying. */
	for (size_t i = 0; i < n; i++) {
		dsh_pending *p = slot->batch[i];

		if (nrpc_call_expired(p->call)) {
			nrpc_call_fail(p->call, NRPC_DEADLINE_EXCEEDED,
			    "DEADLINE_EXCEEDED", NULL,
			    "the deadline passed before the write was applied");
			ds_free(p);
			continue;
		}
		slot->batch[m++] = p;
	}
	m = dsh_writer_from_cache(svc, slot, m);
	for (size_t i = 0; i < m; i++) {
		memset(&slot->results[i], 0, sizeof(slot->results[i]));
	}
	slot->n = m;
	if (m == 0) {
		return false;
	}
	rv = store_apply_batch(svc->wconn, slot->ws, m, slot->results);
	if (rv != STORE_OK) {
		ds_log(DS_LOG_ERROR, "datasync", "batch of %zu writes failed: %s",
		    m, store_strerror(rv));
		/* Nothing was applied, but a failed COMMIT leaves doubt. */
		dsh_headcache_clear(&svc->heads);
	} else {
		/* Committed (durably, per the store's configuration): only
		 * now may the cache answer from what the batch wrote. */
		for (size_t i = 0; i < m; i++) {
			const store_write_result *r = &slot->results[i];

			dsh_headcache_learn(&svc->heads, &slot->ws[i], r);
			if (slot->ws[i].op == STORE_OP_LOCK && r->error.code ==
			    STORE_OK && r->record.locked) {
				dsh_sweep_at(svc, r->record.lock.expires_at_ms);
			}
		}
		dsh_watch_notify(svc->watch);
	}
	atomic_fetch_add(&svc->n_batches, 1);
	atomic_fetch_add(&svc->n_writes, m);
	prev = atomic_load(&svc->n_max_batch);
	while (prev < m &&
	    !atomic_compare_exchange_weak(&svc->n_max_batch, &prev, m)) {
	}
	return true;
}

/* dsh_slot_get waits for a free slot (the replier returns them). */
static dsh_slot *
dsh_slot_get(dsh_service *svc)
{
	dsh_slot *slot;

	pthread_mutex_lock(&svc->rmu);
	while (svc->free_slots == NULL) {
		pthread_cond_wait(&svc->rcv, &svc->rmu);
	}
	slot = svc->free_slots;
	svc->free_slots = slot->next;
	pthread_mutex_unlock(&svc->rmu);
	return slot;
}

/* dsh_slot_put gives a slot back to the free list (answered) or queues it
 * for the replier. */
static void
dsh_slot_put(dsh_service *svc, dsh_slot *slot, bool answered)
{
	pthread_mutex_lock(&svc->rmu);
	slot->next = NULL;
	if (answered) {
		slot->next = svc->free_slots;
		svc->free_slots = slot;
	} else if (svc->replies_tail != NULL) {
		svc->replies_tail->next = slot;
		svc->replies_tail = slot;
	} else {
		svc->replies = svc->replies_tail = slot;
	}
	pthread_cond_broadcast(&svc->rcv);
	pthread_mutex_unlock(&svc->rmu);
}

static void *
dsh_writer_main(void *arg)
{
	dsh_service *svc = arg;

	int64_t wake = dsh_writer_maintain(svc);

	for (;;) {
		dsh_slot *slot = dsh_slot_get(svc);
		bool stopping = false;
		size_t n = dsh_writer_take(svc, slot, wake, &stopping);

		if (n == 0) {
			dsh_slot_put(svc, slot, true);
			if (stopping) {
				break;
			}
			wake = dsh_writer_maintain(svc);
			continue;
		}
		/* The batch is committed (durably, per the store's
		 * configuration) before the replier sees it: DESIGN §4
		 * rule 7. */
		dsh_slot_put(svc, slot, !dsh_writer_run_batch(svc, slot, n));
		if (ds_clock_now_ms(ds_clock_monotonic()) >= wake) {
			wake = dsh_writer_maintain(svc);
		}
	}
	pthread_mutex_lock(&svc->rmu);
	svc->writer_done = true;
	pthread_cond_broadcast(&svc->rcv);
	pthread_mutex_unlock(&svc->rmu);
	return NULL;
}

/* dsh_replier_main answers committed batches off the writer's thread, so
 * packing and sending replies overlaps the next commit. */
static void *
dsh_replier_main(void *arg)
{
	dsh_service *svc = arg;

	for (;;) {
		dsh_slot *slot;

		pthread_mutex_lock(&svc->rmu);
		while (svc->replies == NULL && !svc->writer_done) {
			pthread_cond_wait(&svc->rcv, &svc->rmu);
		}
		if ((slot = svc->replies) == NULL) {
			pthread_mutex_unlock(&svc->rmu);
			break; /* the writer is done and everything answered */
		}
		svc->replies = slot->next;
		if (svc->replies == NULL) {
			svc->replies_tail = NULL;
		}
		pthread_mutex_unlock(&svc->rmu);
		for (size_t i = 0; i < slot->n; i++) {
			bool kept = dsh_reply_write(svc, slot->batch[i],
			    &slot->ws[i], &slot->results[i]);

			store_write_result_fini(&slot->results[i]);
			if (!kept) {
				ds_free(slot->batch[i]);
			}
		}
		dsh_slot_put(svc, slot, true);
	}
	return NULL;
}

void
dsh_requeue(dsh_service *svc, dsh_pending *p)
{
	bool stopping;

	p->next = NULL;
	p->held = false;
	pthread_mutex_lock(&svc->mu);
	stopping = svc->stopping;
	if (!stopping) {
		if (svc->tail != NULL) {
			svc->tail->next = p;
		} else {
			svc->head = p;
		}
		svc->tail = p;
		pthread_cond_signal(&svc->cv);
	}
	pthread_mutex_unlock(&svc->mu);
	if (stopping) {
		nrpc_call_fail(p->call, NRPC_UNAVAILABLE, "UNAVAILABLE", NULL,
		    "the server is shutting down");
		ds_free(p);
	}
}

/* dsh_enqueue hands a validated write to the writer; return_value: the
 * reply carries an Update's value; may_read: the caller may read the key
 * (a refusal's detail shows the record); wait_ms: a Lock that waits in
 * line this long when the key is locked. */
static void
dsh_enqueue(dsh_service *svc, nrpc_call *call, const store_write *w,
    bool return_value, bool may_read, uint32_t wait_ms)
{
	dsh_pending *p;

	if ((p = ds_calloc(1, sizeof(*p))) == NULL) {
		nrpc_call_fail(call, NRPC_RESOURCE_EXHAUSTED,
		    "RESOURCE_EXHAUSTED", NULL, "out of memory queueing a write");
		return;
	}
	p->call = call;
	p->w = *w;
	p->return_value = return_value;
	p->may_read = may_read;
	if (wait_ms > 0) {
		p->wait_until_ms =
		    ds_clock_now_ms(ds_clock_monotonic()) + (int64_t) wait_ms;
	}
	dsh_requeue(svc, p);
}

/* --- handlers --- */

/* dsh_ids_of: the envelope's identity, or with authentication on the
 * token's name (who), which then also scopes request ids: nobody replays
 * or refuses another token's request id. */
static dsh_call_ids
dsh_ids_of(nrpc_call *call, const char *who)
{
	dsh_call_ids ids;

	ids.request_id = nrpc_call_request_id(call);
	ids.client_name = who != NULL ? who : nrpc_call_client_name(call);
	/* Without tokens the name is self-declared: it keeps one caller's
	 * ids (and a Lock's token) from answering another, not a forger. */
	ids.caller = ids.client_name;
	return ids;
}

/* dsh_guard_read: may p also read key? A write's refusal shows the
 * record only to a caller a Get would answer. */
static bool
dsh_guard_read(const dsh_principal *p, const char *key)
{
	nrpc_status st;
	bool ok;

	memset(&st, 0, sizeof(st));
	ok = dsh_auth_authorize(p, AUTH_READ, key, strlen(key), false, &st) ==
	    NRPC_OK;
	nrpc_status_fini(&st);
	return ok;
}

/* dsh_guard_as authenticates call and checks right on key (range: on
 * every key that starts with it; AUTH_ADMIN: token management). False:
 * the call was answered (UNAUTHENTICATED, PERMISSION_DENIED, 429). *who
 * is the token's name (interned: valid as long as the service), NULL when
 * authentication is off. authn_flags: DSH_AUTHN_*. may_read (may be
 * NULL): whether the token may also read key; true without
 * authentication. */
static bool
dsh_guard_as(dsh_service *svc, nrpc_call *call, unsigned authn_flags,
    auth_right right, const char *key, bool range, const char **who,
    bool *may_read)
{
	dsh_principal p;
	nrpc_status st;
	bool ok = false;

	*who = NULL;
	if (may_read != NULL) {
		*may_read = svc->auth == NULL;
	}
	if (svc->auth == NULL) {
		return true;
	}
	memset(&st, 0, sizeof(st));
	if (dsh_auth_authenticate(svc->auth, call, authn_flags, &p, &st) ==
	    NRPC_OK) {
		ok = dsh_auth_authorize(&p, right, key, strlen(key), range,
		    &st) == NRPC_OK;
		if (ok && may_read != NULL) {
			*may_read = dsh_guard_read(&p, key);
		}
		*who = p.name;
		dsh_principal_release(&p);
	}
	if (!ok) {
		nrpc_call_finish(call, &st, NULL);
		*who = NULL;
	}
	nrpc_status_fini(&st);
	return ok;
}

static bool
dsh_guard(dsh_service *svc, nrpc_call *call, auth_right right,
    const char *key, bool range, const char **who)
{
	return dsh_guard_as(svc, call, 0, right, key, range, who, NULL);
}

bool
dsh_still_allowed(dsh_service *svc, nrpc_call *call, auth_right right,
    const char *key, bool prefix)
{
	const char *who;

	return svc->auth == NULL ||
	    dsh_guard_as(svc, call, DSH_AUTHN_RECHECK, right, key, prefix,
	        &who, NULL);
}

/* dsh_as_author: with authentication on, a write's author (updated_by)
 * is the token's name whatever the request says. */
static void
dsh_as_author(store_write *w, const char *who)
{
	if (who != NULL) {
		w->author = who;
		w->author_len = strlen(who);
	}
}

/* dsh_submit validates and hashes a converted write here, on the thread
 * that received it (store_prepare), so that only valid writes reach the
 * single writer and it does neither again. */
static void
dsh_submit(dsh_service *svc, nrpc_call *call, store_err conv,
    store_write *w, const store_error *conv_err, bool return_value,
    bool may_read, uint32_t wait_ms)
{
	store_error err;

	memset(&err, 0, sizeof(err));
	if (conv != STORE_OK) {
		dsh_fail_store(call, conv_err, NULL, false);
		return;
	}
	if (store_prepare(store_limits_of(svc->store), w, &err) != STORE_OK) {
		dsh_fail_store(call, &err, NULL, false);
		return;
	}
	dsh_enqueue(svc, call, w, return_value, may_read, wait_ms);
}

static void
dsh_update(nrpc_call *call, const Datasync__V1__UpdateRequest *req, void *arg)
{
	dsh_call_ids ids;
	const char *who;
	bool may_read;
	store_write w;
	store_error err;
	store_err rv;

	if (!dsh_guard_as(arg, call, 0, AUTH_WRITE, req->key, false, &who,
	        &may_read)) {
		return;
	}
	ids = dsh_ids_of(call, who);
	memset(&err, 0, sizeof(err));
	rv = dsh_write_from_update(req, &ids, &w, &err);
	dsh_as_author(&w, who);
	dsh_submit(arg, call, rv, &w, &err, req->return_value, may_read, 0);
}

static void
dsh_delete(nrpc_call *call, const Datasync__V1__DeleteRequest *req, void *arg)
{
	dsh_call_ids ids;
	const char *who;
	bool may_read;
	store_write w;
	store_error err;
	store_err rv;

	if (!dsh_guard_as(arg, call, 0, AUTH_WRITE, req->key, false, &who,
	        &may_read)) {
		return;
	}
	ids = dsh_ids_of(call, who);
	memset(&err, 0, sizeof(err));
	rv = dsh_write_from_delete(req, &ids, &w, &err);
	dsh_as_author(&w, who);
	dsh_submit(arg, call, rv, &w, &err, false, may_read, 0);
}

static void
dsh_lock(nrpc_call *call, const Datasync__V1__LockRequest *req, void *arg)
{
	dsh_call_ids ids;
	const char *who;
	bool may_read;
	store_write w;
	store_error err;
	store_err rv;

	if (!dsh_guard_as(arg, call, 0, AUTH_LOCK, req->key, false, &who,
	        &may_read)) {
		return;
	}
	ids = dsh_ids_of(call, who);
	memset(&err, 0, sizeof(err));
	if (req->wait_ms > DSH_LOCK_WAIT_MAX_MS) {
		nrpc_call_fail(call, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    "wait_ms", "wait_ms %u exceeds the longest lock wait (%d ms)",
		    req->wait_ms, DSH_LOCK_WAIT_MAX_MS);
		return;
	}
	rv = dsh_write_from_lock(req, &ids, &w, &err);
	if (who != NULL) {
		/* the lock's owner is the token, whatever the request says */
		w.owner = who;
		w.owner_len = strlen(who);
	}
	dsh_submit(arg, call, rv, &w, &err, false, may_read, req->wait_ms);
}

static void
dsh_unlock(nrpc_call *call, const Datasync__V1__UnlockRequest *req, void *arg)
{
	dsh_call_ids ids;
	const char *who;
	bool may_read;
	store_write w;
	store_error err;
	store_err rv;

	if (!dsh_guard_as(arg, call, 0, AUTH_LOCK, req->key, false, &who,
	        &may_read)) {
		return;
	}
	ids = dsh_ids_of(call, who);
	memset(&err, 0, sizeof(err));
	rv = dsh_write_from_unlock(req, &ids, &w, &err);
	dsh_submit(arg, call, rv, &w, &err, false, may_read, 0);
}

/* dsh_read_conn returns the worker's read connection, or fails the call
 * (a handler run off the pool has none). */
static store_conn *
dsh_read_conn(nrpc_call *call)
{
	store_conn *c = nrpc_call_worker_state(call);

	if (DS_NEVER(c == NULL)) {
		nrpc_call_fail(call, NRPC_INTERNAL, "INTERNAL", NULL,
		    "no read connection on this thread");
	}
	return c;
}

/* dsh_get_on runs a Get on read connection c (a: the call, b: the
 * request); the reader pool's job function too. */
static void
dsh_get_on(void *a, const void *b, store_conn *c)
{
	nrpc_call *call = a;
	const Datasync__V1__GetRequest *req = b;
	store_record rec;
	store_error err;
	Datasync__V1__Record view;
	Datasync__V1__LockInfo lock;
	Datasync__V1__GetResponse resp = DATASYNC__V1__GET_RESPONSE__INIT;

	memset(&rec, 0, sizeof(rec));
	memset(&err, 0, sizeof(err));
	/* The snapshot's revision too: a watch after it misses nothing
	 * (DESIGN §9, re-reading after REVISION_COMPACTED). */
	if (store_get_rev(c, req->key, strlen(req->key), req->version, &rec,
	        &resp.revision, &err) != STORE_OK) {
		dsh_fail_store(call, &err, NULL, false);
		return;
	}
	dsh_record_view(&rec, true, &view, &lock);
	resp.record = &view;
	datasync_v1_data_sync_get_reply(call, &resp);
	store_record_fini(&rec);
}

/* dsh_offload hands a read to the reader pool, or answers the call when
 * the pool refuses it. Returns false when there is no pool (the caller
 * runs the read itself). */
static bool
dsh_offload(dsh_service *svc, nrpc_call *call, dsh_read_fn fn,
    const void *req)
{
	if (svc->readers == NULL) {
		return false;
	}
	switch (dsh_readers_submit(svc->readers, fn, call, req)) {
	case DSH_SUBMIT_OK:
		break;
	case DSH_SUBMIT_FULL: {
		nrpc_status st;

		atomic_fetch_add(&svc->n_read_refused, 1);
		memset(&st, 0, sizeof(st));
		nrpc_status_set(&st, NRPC_RESOURCE_EXHAUSTED, "OVERLOADED", NULL,
		    "%zu reads wait for a reader already (max_read_queue); "
		    "retry later", dsh_readers_max_queue(svc->readers));
		st.retry_after_ms = DSH_RETRY_AFTER_MS;
		nrpc_call_finish(call, &st, NULL);
		nrpc_status_fini(&st);
		break;
	}
	case DSH_SUBMIT_STOPPING:
		nrpc_call_fail(call, NRPC_UNAVAILABLE, "SHUTTING_DOWN", NULL,
		    "the server is shutting down");
		break;
	case DSH_SUBMIT_NOMEM:
		nrpc_call_fail(call, NRPC_RESOURCE_EXHAUSTED,
		    "RESOURCE_EXHAUSTED", NULL, "out of memory queueing a read");
		break;
	}
	return true;
}

static void
dsh_get(nrpc_call *call, const Datasync__V1__GetRequest *req, void *arg)
{
	store_conn *c;
	const char *who;

	if (!dsh_guard(arg, call, AUTH_READ, req->key, false, &who)) {
		return;
	}

	/* The current version is one cached point read: inline. An older
	 * one is a history lookup in a read transaction: the pool. */
	if (req->version != 0 && dsh_offload(arg, call, dsh_get_on, req)) {
		return;
	}
	if ((c = dsh_read_conn(call)) == NULL) {
		return;
	}
	dsh_get_on(call, req, c);
}

/* dsh_list_on runs a List on read connection c (a: the call, b: the
 * request); the reader pool's job function too. */
static void
dsh_list_on(void *a, const void *b, store_conn *c)
{
	nrpc_call *call = a;
	const Datasync__V1__ListRequest *req = b;
	store_list_req lr;
	store_list_page page;
	store_error err;
	Datasync__V1__ListResponse resp = DATASYNC__V1__LIST_RESPONSE__INIT;
	Datasync__V1__Record *views = NULL;
	Datasync__V1__Record **ptrs = NULL;
	Datasync__V1__LockInfo *locks = NULL;

	memset(&page, 0, sizeof(page));
	memset(&err, 0, sizeof(err));
	lr.prefix = req->prefix;
	lr.prefix_len = strlen(req->prefix);
	lr.page_size = req->page_size;
	lr.page_token = req->page_token;
	lr.page_token_len = strlen(req->page_token);
	if (store_list(c, &lr, &page, &err) != STORE_OK) {
		dsh_fail_store(call, &err, NULL, false);
		return;
	}
	if (page.n > 0 &&
	    ((views = ds_calloc(page.n, sizeof(*views))) == NULL ||
	        (ptrs = ds_calloc(page.n, sizeof(*ptrs))) == NULL ||
	        (locks = ds_calloc(page.n, sizeof(*locks))) == NULL)) {
		nrpc_call_fail(call, NRPC_RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED",
		    NULL, "out of memory building a page of %zu records", page.n);
		goto out;
	}
	for (size_t i = 0; i < page.n; i++) {
		dsh_record_view(&page.records[i], false, &views[i], &locks[i]);
		ptrs[i] = &views[i];
	}
	resp.n_records = page.n;
	resp.records = ptrs;
	resp.next_page_token =
	    page.next_page_token != NULL ? page.next_page_token : (char *) "";
	resp.revision = page.revision;
	datasync_v1_data_sync_list_reply(call, &resp);
out:
	ds_free(views);
	ds_free(ptrs);
	ds_free(locks);
	store_list_page_fini(&page);
}

static void
dsh_list(nrpc_call *call, const Datasync__V1__ListRequest *req, void *arg)
{
	store_conn *c;
	const char *who;

	if (!dsh_guard(arg, call, AUTH_READ, req->prefix, true, &who)) {
		return;
	}

	/* Up to max_page_size rows: the pool, never an nng thread. */
	if (dsh_offload(arg, call, dsh_list_on, req)) {
		return;
	}
	if ((c = dsh_read_conn(call)) == NULL) {
		return;
	}
	dsh_list_on(call, req, c);
}

static void
dsh_watch(nrpc_call *call, const Datasync__V1__WatchRequest *req, void *arg)
{
	dsh_service *svc = arg;
	store_conn *c;
	const char *who;
	bool one = req->key[0] != '\0';

	/* a key, or every key the prefix can hold; authorized once, here:
	 * a parked watch lasts at most DSH_WATCH_TIMEOUT_MAX_MS */
	if (!dsh_guard(svc, call, AUTH_READ, one ? req->key : req->prefix,
	        !one, &who)) {
		return;
	}
	/* The first read is one indexed range of the log, at most limit
	 * entries: inline, like a Get; the wait is the hub's. */
	if ((c = dsh_read_conn(call)) == NULL) {
		return;
	}
	dsh_watch_begin(svc->watch, call, req, c);
}

/* --- identity and tokens --- */

static void
dsh_who_am_i(nrpc_call *call, const Datasync__V1__WhoAmIRequest *req,
    void *arg)
{
	dsh_service *svc = arg;
	Datasync__V1__WhoAmIResponse resp = DATASYNC__V1__WHO_AM_IRESPONSE__INIT;
	Datasync__V1__Token tok;
	char **grants = NULL;
	dsh_principal p;
	nrpc_status st;

	(void) req;
	memset(&st, 0, sizeof(st));
	memset(&p, 0, sizeof(p));
	resp.auth_required = svc->auth != NULL;
	/* No token is an answer (authenticated = false); a bad one is
	 * UNAUTHENTICATED, so that the gateway can check a session's. */
	if (dsh_auth_authenticate(svc->auth, call, DSH_AUTHN_OPTIONAL, &p, &st) != NRPC_OK) {
		nrpc_call_finish(call, &st, NULL);
		goto out;
	}
	if (p.name != NULL) {
		if (dsh_auth_token_view(&p, &tok, &grants) != 0) {
			nrpc_call_fail(call, NRPC_RESOURCE_EXHAUSTED,
			    "RESOURCE_EXHAUSTED", NULL, "out of memory");
			goto out;
		}
		resp.authenticated = true;
		resp.token = &tok;
	}
	datasync_v1_data_sync_who_am_i_reply(call, &resp);
out:
	ds_free(grants);
	dsh_principal_release(&p);
	nrpc_status_fini(&st);
}

/* dsh_admin: may call manage tokens? False: answered. Token RPCs on a
 * server without --auth are refused: a token made where nobody checks
 * would silently become an admin's later. */
static bool
dsh_admin(dsh_service *svc, nrpc_call *call)
{
	const char *who;

	if (svc->auth == NULL) {
		nrpc_call_fail(call, NRPC_FAILED_PRECONDITION, "AUTH_DISABLED",
		    NULL, "this server runs without --auth: tokens are managed "
		    "with --auth, or offline with \"datasyncd token\"");
		return false;
	}
	/* Token RPCs write on the token cache's own connection: rare admin
	 * calls, answered where they arrive. */
	return dsh_guard(svc, call, AUTH_ADMIN, "", false, &who);
}

static void
dsh_create_token(nrpc_call *call, const Datasync__V1__CreateTokenRequest *req,
    void *arg)
{
	dsh_service *svc = arg;

	if (dsh_admin(svc, call)) {
		dsh_auth_create_token(svc->auth, call, req);
	}
}

static void
dsh_list_tokens(nrpc_call *call, const Datasync__V1__ListTokensRequest *req,
    void *arg)
{
	dsh_service *svc = arg;

	(void) req;
	if (dsh_admin(svc, call)) {
		dsh_auth_list_tokens(svc->auth, call);
	}
}

static void
dsh_revoke_token(nrpc_call *call, const Datasync__V1__RevokeTokenRequest *req,
    void *arg)
{
	dsh_service *svc = arg;

	if (dsh_admin(svc, call)) {
		dsh_auth_revoke_token(svc->auth, call, req);
	}
}

static const datasync_v1_data_sync_handlers dsh_table = {
    .get = dsh_get,
    .update = dsh_update,
    .delete = dsh_delete,
    .lock = dsh_lock,
    .unlock = dsh_unlock,
    .list = dsh_list,
    .watch = dsh_watch,
    .who_am_i = dsh_who_am_i,
    .create_token = dsh_create_token,
    .list_tokens = dsh_list_tokens,
    .revoke_token = dsh_revoke_token,
};

/* --- lifecycle --- */

int
dsh_worker_init(void *arg, unsigned index, void **wstate)
{
	dsh_service *svc = arg;
	store_conn *c;
	store_error err;

	(void) index;
	memset(&err, 0, sizeof(err));
	if (store_conn_open(svc->store, &c, &err) != STORE_OK) {
		ds_log(DS_LOG_ERROR, "datasync",
		    "worker %u: cannot open a read connection: %s", index,
		    err.message);
		return -1;
	}
	*wstate = c;
	return 0;
}

void
dsh_worker_fini(void *arg, void *wstate)
{
	(void) arg;
	store_conn_close(wstate);
}

int
dsh_service_create(const dsh_config *cfg, dsh_service **out, nrpc_status *st)
{
	dsh_service *svc;
	store_error err;
	unsigned max_batch = cfg->max_batch ? cfg->max_batch : DSH_MAX_BATCH_DEFAULT;

	if (cfg->store == NULL || max_batch > DSH_MAX_BATCH_HARD) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    "max_batch", "max_batch must be 1..%d", DSH_MAX_BATCH_HARD);
		return st->code;
	}
	if (cfg->readers > DSH_READERS_HARD ||
	    cfg->max_read_queue > DSH_MAX_READ_QUEUE_HARD) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    cfg->readers > DSH_READERS_HARD ? "readers" : "max_read_queue",
		    "readers must be 0..%d and max_read_queue 0..%d",
		    DSH_READERS_HARD, DSH_MAX_READ_QUEUE_HARD);
		return st->code;
	}
	if (cfg->watch_retain > DSH_WATCH_RETAIN_HARD ||
	    cfg->watch_retain_ms > DSH_WATCH_RETAIN_MS_HARD) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    cfg->watch_retain > DSH_WATCH_RETAIN_HARD ? "watch_retain"
		                                              : "watch_retain_ms",
		    "watch_retain must be at most %llu and watch_retain_ms at "
		    "most %lld", (unsigned long long) DSH_WATCH_RETAIN_HARD,
		    (long long) DSH_WATCH_RETAIN_MS_HARD);
		return st->code;
	}
	if (cfg->head_cache > DSH_HEAD_CACHE_HARD ||
	    cfg->head_cache_value > DSH_HEAD_CACHE_VALUE_HARD) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    cfg->head_cache > DSH_HEAD_CACHE_HARD ? "head_cache"
		                                          : "head_cache_value",
		    "head_cache must be 0..%d and head_cache_value 0..%d",
		    DSH_HEAD_CACHE_HARD, DSH_HEAD_CACHE_VALUE_HARD);
		return st->code;
	}
	if ((svc = ds_calloc(1, sizeof(*svc))) == NULL) {
		goto nomem;
	}
	svc->store = cfg->store;
	svc->max_batch = max_batch;
	svc->watch_retain =
	    cfg->watch_retain ? cfg->watch_retain : DSH_WATCH_RETAIN_DEFAULT;
	svc->watch_retain_ms = cfg->watch_retain_ms < 0 ? 0 :
	    cfg->watch_retain_ms ? cfg->watch_retain_ms
	                         : DSH_WATCH_RETAIN_MS_DEFAULT;
	pthread_mutex_init(&svc->mu, NULL);
	{
		pthread_condattr_t ca;

		/* The writer's timed waits (sweeps) are on the monotonic
		 * clock. */
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&svc->cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	pthread_mutex_init(&svc->rmu, NULL);
	pthread_cond_init(&svc->rcv, NULL);
	/* On a shared store (PostgreSQL, N nodes) other nodes commit all
	 * the time: the cache would be cleared before nearly every batch,
	 * and asking whether it may be trusted costs the round trip it
	 * saves. */
	if (!cfg->no_head_cache && !store_is_shared(cfg->store) &&
	    dsh_headcache_init(&svc->heads,
	        cfg->head_cache ? cfg->head_cache : DSH_HEAD_CACHE_DEFAULT,
	        cfg->head_cache_value ? cfg->head_cache_value
	                              : DSH_HEAD_CACHE_VALUE_DEFAULT) != 0) {
		dsh_service_destroy(svc);
		goto nomem;
	}
	for (int i = 0; i < DSH_SLOTS; i++) {
		dsh_slot *slot = &svc->slots[i];

		if ((slot->batch = ds_calloc(max_batch, sizeof(*slot->batch))) ==
		        NULL ||
		    (slot->ws = ds_calloc(max_batch, sizeof(*slot->ws))) == NULL ||
		    (slot->results = ds_calloc(max_batch,
		         sizeof(*slot->results))) == NULL ||
		    (slot->cur = ds_calloc(max_batch, sizeof(*slot->cur))) ==
		        NULL ||
		    (slot->peek = ds_calloc(max_batch, sizeof(*slot->peek))) ==
		        NULL ||
		    (slot->seen = ds_calloc(max_batch, sizeof(*slot->seen))) ==
		        NULL) {
			dsh_service_destroy(svc);
			goto nomem;
		}
		slot->next = svc->free_slots;
		svc->free_slots = slot;
	}
	memset(&err, 0, sizeof(err));
	if (store_conn_open(svc->store, &svc->wconn, &err) != STORE_OK) {
		nrpc_status_set(st, NRPC_INTERNAL, store_reason(err.code), NULL,
		    "cannot open the writer's connection: %s", err.message);
		dsh_service_destroy(svc);
		return st->code;
	}
	if (svc->heads.n > 0) {
		uint64_t dv;

		/* The state the cache learns from: a commit by any other
		 * connection after this moves data_version and clears it. */
		if (store_data_version(svc->wconn, &dv, &err) == STORE_OK) {
			dsh_headcache_baseline(&svc->heads, dv);
		} else {
			dsh_headcache_fini(&svc->heads); /* off */
		}
	}
	if (cfg->auth && dsh_auth_create(svc->store, &svc->auth, st) != NRPC_OK) {
		dsh_service_destroy(svc);
		return st->code;
	}
	if (dsh_watch_create(svc->store, svc, &svc->watch, st) != NRPC_OK) {
		dsh_service_destroy(svc);
		return st->code;
	}
	if (cfg->readers > 0 &&
	    dsh_readers_create(svc->store, cfg->readers, cfg->max_read_queue,
	        &svc->readers, st) != NRPC_OK) {
		dsh_service_destroy(svc);
		return st->code;
	}
	if (pthread_create(&svc->replier, NULL, dsh_replier_main, svc) != 0) {
		nrpc_status_set(st, NRPC_INTERNAL, "INTERNAL", NULL,
		    "cannot start the replier thread");
		dsh_service_destroy(svc);
		return st->code;
	}
	if (pthread_create(&svc->writer, NULL, dsh_writer_main, svc) != 0) {
		/* Let the replier see "no more batches" and end. */
		pthread_mutex_lock(&svc->rmu);
		svc->writer_done = true;
		pthread_cond_broadcast(&svc->rcv);
		pthread_mutex_unlock(&svc->rmu);
		pthread_join(svc->replier, NULL);
		nrpc_status_set(st, NRPC_INTERNAL, "INTERNAL", NULL,
		    "cannot start the writer thread");
		dsh_service_destroy(svc);
		return st->code;
	}
	svc->threads_started = true;
	*out = svc;
	return NRPC_OK;
nomem:
	nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED", NULL,
	    "out of memory creating the DataSync service");
	return st->code;
}

int
dsh_service_register(dsh_service *svc, nrpc_server *srv, nrpc_status *st)
{
	return datasync_v1_data_sync_register(srv, &dsh_table, svc, st);
}

void
dsh_service_stats_get(dsh_service *svc, dsh_stats *out)
{
	out->batches = atomic_load(&svc->n_batches);
	out->writes = atomic_load(&svc->n_writes);
	out->max_batch = atomic_load(&svc->n_max_batch);
	out->conflicts = atomic_load(&svc->n_conflicts);
	out->cached_conflicts = atomic_load(&svc->n_cached_conflicts);
	out->locks = atomic_load(&svc->n_locks);
	out->lock_refused = atomic_load(&svc->n_lock_refused);
	out->pool_reads =
	    svc->readers != NULL ? dsh_readers_ran(svc->readers) : 0;
	out->read_refused = atomic_load(&svc->n_read_refused);
	out->swept = atomic_load(&svc->n_swept);
	out->compacted = atomic_load(&svc->n_compacted);
	{
		dsh_watch_stats ws;

		dsh_watch_stats_get(svc->watch, &ws);
		out->parked_watches = ws.parked_watches;
		out->lock_waiters = ws.lock_waiters;
	}
}

void
dsh_service_drain(dsh_service *svc)
{
	if (svc != NULL) {
		dsh_watch_drain(svc->watch);
	}
}

void
dsh_service_destroy(dsh_service *svc)
{
	if (svc == NULL) {
		return;
	}
	/* Parked calls first: a lock waiter the hub sends back to the writer
	 * must find it running. */
	dsh_watch_drain(svc->watch);
	if (svc->threads_started) {
		/* The writer drains the queue before it sees stopping with an
		 * empty queue, so every accepted write is applied and
		 * answered. */
		pthread_mutex_lock(&svc->mu);
		svc->stopping = true;
		pthread_cond_broadcast(&svc->cv);
		pthread_mutex_unlock(&svc->mu);
		pthread_join(svc->writer, NULL);
		pthread_join(svc->replier, NULL);
	}
	dsh_watch_destroy(svc->watch);
	dsh_readers_destroy(svc->readers); /* answers what it queued */
	store_conn_close(svc->wconn);
	dsh_auth_destroy(svc->auth); /* names outlive every write: last */
	dsh_headcache_fini(&svc->heads);
	for (int i = 0; i < DSH_SLOTS; i++) {
		ds_free(svc->slots[i].batch);
		ds_free(svc->slots[i].ws);
		ds_free(svc->slots[i].results);
		ds_free(svc->slots[i].cur);
		ds_free(svc->slots[i].peek);
		ds_free(svc->slots[i].seen);
	}
	pthread_cond_destroy(&svc->rcv);
	pthread_mutex_destroy(&svc->rmu);
	pthread_cond_destroy(&svc->cv);
	pthread_mutex_destroy(&svc->mu);
	ds_free(svc);
}
