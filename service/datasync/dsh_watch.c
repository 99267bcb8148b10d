/*
 * dsh_watch.c - the watch hub: parked Watch calls and queued lock waits.
 *
 * One thread owns every parked call. The writer tells it that something
 * committed (dsh_watch_notify); it then reads the change log ONCE from
 * where it was (metadata only, every key) and matches the new events
 * against the parked watches in memory, so an idle watcher costs a
 * comparison per change, never SQL. A matched watch without values is
 * answered from those same events: while parked, a watch has no
 * matching event in (after, seen], so its events are exactly the matches
 * of the hub's window. A watch that wants values reads them itself.
 *
 * Lock waits: a Lock with wait_ms that meets LOCKED is queued here, per
 * key, in the order the writer refused them. An UNLOCK or EXPIRE of the
 * key in the log sends the first waiter back to the writer (one attempt
 * in flight per key); LOCKED again puts it back at the front.
 *
 * The invariant that makes delivery exact: no event matching a parked
 * watch has a revision in (w->after, h->seen]. A watch that arrives with
 * after < seen is read once by the hub before it parks; a progress reply
 * may therefore say max(after, seen).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "datasync/v1/datasync.nrpc.h"
#include "ds_alloc.h"
#include "ds_clock.h"
#include "ds_log.h"
#include "dsh_int.h"

/* A watch reply holds events up to about this many bytes (values
 * included), at least one: the client's default message limit is 1 MiB +
 * 64 KiB (NRPC_MAX_MESSAGE_BYTES_DEFAULT). Each event counts its strings,
 * its value when sent, and a fixed overhead for the numbers and framing. */
#define DSH_WATCH_REPLY_BYTES (1024 * 1024)
#define DSH_WATCH_EVENT_OVERHEAD 96

/* Events of one key a new waiter's release check reads at most; with
 * more, it assumes a release. */
#define DSH_RELEASE_SCAN 64

typedef struct dsh_watch {
	struct dsh_watch *next;
	nrpc_call *call;
	const char *key;     /* borrowed from the request (alive until the
	                      * call is finished) */
	size_t key_len;
	bool prefix;
	bool with_values;
	uint64_t after;
	size_t limit;
	size_t matched;      /* events of the current window that match */
	int64_t end_ms;      /* monotonic: answer with progress then */
} dsh_watch;

/* dsh_waitq: the waiters of one key, oldest first (through wnext). */
typedef struct dsh_waitq {
	struct dsh_waitq *next;
	char *key;           /* owned copy: waiters come and go */
	size_t key_len;
	dsh_pending *head;
	dsh_pending *tail;
	const dsh_pending *attempt; /* the grant attempt in flight, or NULL;
	                             * compared, never dereferenced */
	bool kick;           /* released: try the first waiter */
} dsh_waitq;

struct dsh_watch_hub {
	store *store;        /* borrowed */
	dsh_service *svc;    /* borrowed */
	store_conn *conn;    /* hub thread only */
	const ds_clock *mono;
	pthread_t thread;
	bool started;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stopping;       /* guarded by mu */
	bool draining;       /* guarded by mu: refuse new parks */
	bool drained;        /* guarded by mu: the hub answered everything */
	bool dirty;          /* guarded by mu: something committed */
	dsh_watch *incoming; /* guarded by mu: watches to park */
	dsh_pending *wait_in; /* guarded by mu: waiters to queue (via wnext) */
	const dsh_pending **done; /* guarded by mu: finished attempts */
	size_t n_done;
	size_t cap_done;

	dsh_watch *parked;   /* hub thread only */
	dsh_waitq *queues;   /* hub thread only */
	uint64_t seen;       /* hub thread only: log read up to here */
	_Atomic uint64_t seen_pub; /* seen, published after the watches it
	                            * matched were answered (<= seen) */
	uint64_t compact;    /* hub thread only: last compact_revision */
	int64_t last_poll_ms;

	/* Other nodes' commits (a shared store, DESIGN §10): the listener
	 * thread waits on its own connection (store_changes_wait) and turns
	 * each wake into dsh_watch_notify; the change log stays the truth. */
	store_conn *lconn;   /* listener thread only */
	pthread_t lthread;
	bool lstarted;
	_Atomic bool lstop;

	_Atomic uint64_t n_parked;
	_Atomic uint64_t n_waiters;
	_Atomic uint64_t n_wakeups;
	_Atomic uint64_t n_delivered;
	_Atomic uint64_t n_progress;
	_Atomic uint64_t n_gone;
};

/* --- replies --- */

static Datasync__V1__EventType
dsh_event_type(store_event_type t)
{
	switch (t) {
	case STORE_EV_PUT:
		return DATASYNC__V1__EVENT_TYPE__EVENT_PUT;
	case STORE_EV_DELETE:
		return DATASYNC__V1__EVENT_TYPE__EVENT_DELETE;
	case STORE_EV_LOCK:
		return DATASYNC__V1__EVENT_TYPE__EVENT_LOCK;
	case STORE_EV_UNLOCK:
		return DATASYNC__V1__EVENT_TYPE__EVENT_UNLOCK;
	case STORE_EV_EXPIRE:
		return DATASYNC__V1__EVENT_TYPE__EVENT_EXPIRE;
	}
	return DATASYNC__V1__EVENT_TYPE__EVENT_TYPE_UNSPECIFIED;
}

/* dsh_events_reply_sel answers call with the events of evs selected by
 * sel (NULL = all n), as many as fit DSH_WATCH_REPLY_BYTES; when some do
 * not, the reply's revision is the last one sent instead of `revision`. */
static void
dsh_events_reply_sel(nrpc_call *call, const store_event *evs, size_t n,
    const bool *sel, size_t n_sel, bool with_values, uint64_t revision,
    uint64_t compact_revision)
{
	Datasync__V1__WatchResponse resp = DATASYNC__V1__WATCH_RESPONSE__INIT;
	Datasync__V1__Event *ev = NULL;
	Datasync__V1__Event **ptrs = NULL;
	Datasync__V1__Record *recs = NULL;
	Datasync__V1__LockInfo *locks = NULL;
	size_t k = 0;
	size_t bytes = 0;

	if (n_sel > 0 &&
	    ((ev = ds_calloc(n_sel, sizeof(*ev))) == NULL ||
	        (ptrs = ds_calloc(n_sel, sizeof(*ptrs))) == NULL ||
	        (recs = ds_calloc(n_sel, sizeof(*recs))) == NULL ||
	        (locks = ds_calloc(n_sel, sizeof(*locks))) == NULL)) {
		nrpc_call_fail(call, NRPC_RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED",
		    NULL, "out of memory building a reply of %zu events", n_sel);
		goto out;
	}
	for (size_t i = 0; i < n && k < n_sel; i++) {
		const store_record *r = &evs[i].record;
		size_t cost;

		if (sel != NULL && !sel[i]) {
			continue;
		}
		/* A reply must fit the client's message limit: stop before
		 * the event that would pass the budget (never before the
		 * first); the caller's next watch continues from here. */
		cost = DSH_WATCH_EVENT_OVERHEAD + r->key_len +
		    (with_values ? r->value_len : 0) +
		    (r->content_type != NULL ? strlen(r->content_type) : 0) +
		    (r->updated_by != NULL ? strlen(r->updated_by) : 0) +
		    (r->locked && r->lock.owner != NULL ? strlen(r->lock.owner) : 0);
		if (k > 0 && bytes + cost > DSH_WATCH_REPLY_BYTES) {
			revision = ev[k - 1].revision;
			break;
		}
		bytes += cost;
		datasync__v1__event__init(&ev[k]);
		ev[k].type = dsh_event_type(evs[i].type);
		ev[k].revision = evs[i].revision;
		dsh_record_view(&evs[i].record, with_values, &recs[k], &locks[k]);
		ev[k].record = &recs[k];
		ev[k].value_omitted = evs[i].value_omitted;
		ptrs[k] = &ev[k];
		k++;
	}
	resp.n_events = k;
	resp.events = ptrs;
	resp.revision = revision;
	resp.compact_revision = compact_revision;
	datasync_v1_data_sync_watch_reply(call, &resp);
out:
	ds_free(ev);
	ds_free(ptrs);
	ds_free(recs);
	ds_free(locks);
}

static void
dsh_events_reply(nrpc_call *call, const store_event *events, size_t n,
    bool with_values, uint64_t revision, uint64_t compact_revision)
{
	dsh_events_reply_sel(call, events, n, NULL, n, with_values, revision,
	    compact_revision);
}

/* dsh_fail_compacted answers a cursor the log no longer serves: the
 * details carry a WatchResponse with compact_revision, so a client knows
 * where it may watch from after re-reading. */
static void
dsh_fail_compacted(nrpc_call *call, const store_error *err,
    uint64_t revision, uint64_t compact_revision)
{
	Datasync__V1__WatchResponse detail = DATASYNC__V1__WATCH_RESPONSE__INIT;
	nrpc_status st;

	memset(&st, 0, sizeof(st));
	nrpc_status_set(&st, NRPC_OUT_OF_RANGE, "REVISION_COMPACTED",
	    "after_revision", "%s", err->message[0] != '\0' ? err->message :
	    "the change log no longer holds that revision");
	detail.revision = revision;
	detail.compact_revision = compact_revision;
	(void) nrpc_status_set_detail(&st, &detail.base);
	nrpc_call_finish(call, &st, NULL);
	nrpc_status_fini(&st);
}

/* dsh_watch_read reads w's events after w->after on c and answers w when
 * there are any (or the cursor failed). True when answered; else
 * *revision is the snapshot's revision (nothing matching up to it). */
static bool
dsh_watch_read(store_conn *c, dsh_watch *w, uint64_t *revision)
{
	store_changes_req rq;
	store_changes_page page;
	store_error err;
	store_err rv;
	bool answered = true;

	memset(&page, 0, sizeof(page));
	memset(&err, 0, sizeof(err));
	rq.key = w->key;
	rq.key_len = w->key_len;
	rq.prefix = w->prefix;
	rq.after = w->after;
	rq.limit = w->limit;
	rq.with_values = w->with_values;
	/* Values beyond one reply's budget would be read only to be left
	 * out of it. */
	rq.max_value_bytes = DSH_WATCH_REPLY_BYTES;
	rv = store_changes_read(c, &rq, &page, &err);
	if (rv == STORE_EREV_COMPACTED) {
		dsh_fail_compacted(w->call, &err, page.revision,
		    page.compact_revision);
	} else if (rv != STORE_OK) {
		dsh_fail_store(w->call, &err, NULL, false);
	} else if (page.n > 0) {
		dsh_events_reply(w->call, page.events, page.n, w->with_values,
		    page.events[page.n - 1].revision, page.compact_revision);
	} else {
		answered = false;
		*revision = page.revision;
	}
	store_changes_page_fini(&page);
	return answered;
}

/* --- the handler side --- */

static int64_t
dsh_end_ms(dsh_watch_hub *h, nrpc_call *call, uint32_t timeout_ms)
{
	int64_t now = ds_clock_now_ms(h->mono);
	int64_t end = now + (int64_t) timeout_ms;
	int64_t deadline = nrpc_call_deadline_ms(call);

	/* The call's deadline is on the server's clock, monotonic like
	 * ours: answer before the caller gives up. */
	if (deadline != INT64_MAX &&
	    deadline - DSH_WATCH_DEADLINE_MARGIN_MS < end) {
		end = deadline - DSH_WATCH_DEADLINE_MARGIN_MS;
	}
	return end;
}

void
dsh_watch_begin(dsh_watch_hub *h, nrpc_call *call,
    const Datasync__V1__WatchRequest *req, store_conn *c)
{
	dsh_watch *w = NULL;
	uint64_t rev = 0;
	uint32_t timeout_ms = req->timeout_ms ? req->timeout_ms
	                                      : DSH_WATCH_TIMEOUT_DEFAULT_MS;
	nrpc_status st;
	bool refuse;

	memset(&st, 0, sizeof(st));
	if (req->key[0] != '\0' && req->prefix[0] != '\0') {
		nrpc_call_fail(call, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    "key", "set key or prefix, not both");
		return;
	}
	if (req->timeout_ms > DSH_WATCH_TIMEOUT_MAX_MS) {
		nrpc_call_fail(call, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    "timeout_ms", "timeout_ms %u exceeds the maximum wait (%d ms)",
		    req->timeout_ms, DSH_WATCH_TIMEOUT_MAX_MS);
		return;
	}
	if (req->limit > STORE_CHANGES_LIMIT_MAX) {
		nrpc_call_fail(call, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    "limit", "limit %u exceeds max_watch_limit (%d)", req->limit,
		    STORE_CHANGES_LIMIT_MAX);
		return;
	}
	if (req->from_now && req->after_revision != 0) {
		nrpc_call_fail(call, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    "from_now", "set from_now or after_revision (%llu), not "
		    "both", (unsigned long long) req->after_revision);
		return;
	}
	if ((w = ds_calloc(1, sizeof(*w))) == NULL) {
		nrpc_call_fail(call, NRPC_RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED",
		    NULL, "out of memory starting a watch");
		return;
	}
	w->call = call;
	w->prefix = req->key[0] == '\0';
	w->key = w->prefix ? req->prefix : req->key;
	w->key_len = strlen(w->key);
	w->with_values = req->with_values;
	w->limit = req->limit ? req->limit : DSH_WATCH_LIMIT_DEFAULT;
	w->end_ms = dsh_end_ms(h, call, timeout_ms);
	if (req->from_now) {
		store_error err;

		/* From now: nothing old, whatever the log holds. */
		memset(&err, 0, sizeof(err));
		if (store_revision(c, &w->after, &err) != STORE_OK) {
			dsh_fail_store(call, &err, NULL, false);
			ds_free(w);
			return;
		}
	} else {
		w->after = req->after_revision;
	}
	if (w->after >= atomic_load(&h->seen_pub)) {
		/* Caught up (a watcher re-arming after its last reply): the
		 * hub has matched nothing after the cursor yet, so there is
		 * nothing to read; only the key's length is the store's
		 * rule to check here. */
		size_t max = store_limits_of(h->store)->max_key_bytes;

		if (w->key_len > max) {
			nrpc_call_fail(call, NRPC_INVALID_ARGUMENT, "TOO_LARGE",
			    w->prefix ? "prefix" : "key",
			    "%s exceeds max_key_bytes (%zu)",
			    w->prefix ? "prefix" : "key", max);
			ds_free(w);
			return;
		}
	} else {
		/* Also validates the key and answers a compacted cursor. */
		if (dsh_watch_read(c, w, &rev)) {
			ds_free(w);
			return;
		}
		if (rev > w->after) {
			w->after = rev;
		}
	}
	if (nrpc_call_park(call, &st) != NRPC_OK) {
		nrpc_call_finish(call, &st, NULL);
		nrpc_status_fini(&st);
		ds_free(w);
		return;
	}
	pthread_mutex_lock(&h->mu);
	refuse = h->draining;
	if (!refuse) {
		w->next = h->incoming;
		h->incoming = w;
		pthread_cond_signal(&h->cv);
	}
	pthread_mutex_unlock(&h->mu);
	if (refuse) {
		nrpc_call_fail(call, NRPC_UNAVAILABLE, "SHUTTING_DOWN", NULL,
		    "the server is shutting down");
		ds_free(w);
		return;
	}
	atomic_fetch_add(&h->n_parked, 1);
}

bool
dsh_watch_lock_wait(dsh_watch_hub *h, dsh_pending *p)
{
	nrpc_status st;
	bool taken;

	if (h == NULL || p->wait_until_ms <= ds_clock_now_ms(h->mono)) {
		return false;
	}
	memset(&st, 0, sizeof(st));
	if (!p->wait_attempt && nrpc_call_park(p->call, &st) != NRPC_OK) {
		nrpc_status_fini(&st);
		return false; /* answered LOCKED, as without a wait */
	}
	pthread_mutex_lock(&h->mu);
	taken = !h->draining;
	if (taken) {
		p->wnext = h->wait_in;
		h->wait_in = p;
		pthread_cond_signal(&h->cv);
	}
	pthread_mutex_unlock(&h->mu);
	return taken;
}

void
dsh_watch_lock_done(dsh_watch_hub *h, const dsh_pending *p)
{
	atomic_fetch_sub(&h->n_waiters, 1);
	pthread_mutex_lock(&h->mu);
	if (h->n_done == h->cap_done) {
		size_t cap = h->cap_done ? 2 * h->cap_done : 16;
		const dsh_pending **d = ds_calloc(cap, sizeof(*d));

		if (d == NULL) {
			/* The key's queue then waits for its next release;
			 * nothing is lost, a grant may come late. */
			pthread_mutex_unlock(&h->mu);
			ds_log(DS_LOG_WARN, "datasync",
			    "out of memory noting a lock grant");
			return;
		}
		if (h->n_done > 0) {
			memcpy(d, h->done, h->n_done * sizeof(*d));
		}
		ds_free(h->done);
		h->done = d;
		h->cap_done = cap;
	}
	h->done[h->n_done++] = p;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

void
dsh_watch_notify(dsh_watch_hub *h)
{
	pthread_mutex_lock(&h->mu);
	if (!h->dirty) {
		h->dirty = true;
		pthread_cond_signal(&h->cv);
	}
	pthread_mutex_unlock(&h->mu);
}

/* --- the hub thread --- */

static void
dsh_hub_publish(dsh_watch_hub *h)
{
	atomic_store(&h->seen_pub, h->seen);
}

static bool
dsh_watch_matches(const dsh_watch *w, const store_event *ev)
{
	const store_record *r = &ev->record;

	if (ev->revision <= w->after) {
		return false;
	}
	if (w->prefix) {
		return r->key_len >= w->key_len &&
		    memcmp(r->key, w->key, w->key_len) == 0;
	}
	return r->key_len == w->key_len && memcmp(r->key, w->key, w->key_len) == 0;
}

static void
dsh_watch_unpark(dsh_watch_hub *h, dsh_watch *w)
{
	atomic_fetch_sub(&h->n_parked, 1);
	ds_free(w);
}

static dsh_waitq *
dsh_waitq_find(dsh_watch_hub *h, const char *key, size_t len, bool create)
{
	dsh_waitq *q;

	for (q = h->queues; q != NULL; q = q->next) {
		if (q->key_len == len && memcmp(q->key, key, len) == 0) {
			return q;
		}
	}
	if (!create || (q = ds_calloc(1, sizeof(*q))) == NULL) {
		return NULL;
	}
	if ((q->key = ds_memdup(key, len)) == NULL) {
		ds_free(q);
		return NULL;
	}
	q->key_len = len;
	q->next = h->queues;
	h->queues = q;
	return q;
}

/* dsh_waitq_unlink removes p from q (p must be in it). */
static void
dsh_waitq_unlink(dsh_waitq *q, dsh_pending *p)
{
	dsh_pending **pp = &q->head;

	q->tail = NULL;
	while (*pp != NULL) {
		if (*pp == p) {
			*pp = p->wnext;
			continue;
		}
		q->tail = *pp;
		pp = &(*pp)->wnext;
	}
	p->wnext = NULL;
}

/* dsh_released_since: was p's key unlocked, expired or deleted after the
 * LOCKED answer p got (revision p->wait_since)? In doubt, true: an
 * attempt too many costs a LOCKED, a missed release a stuck waiter. */
static bool
dsh_released_since(dsh_watch_hub *h, const dsh_pending *p)
{
	store_changes_req rq;
	store_changes_page page;
	store_error err;
	bool released = true;

	memset(&rq, 0, sizeof(rq));
	memset(&page, 0, sizeof(page));
	memset(&err, 0, sizeof(err));
	rq.key = p->w.key;
	rq.key_len = p->w.key_len;
	rq.after = p->wait_since;
	rq.limit = DSH_RELEASE_SCAN;
	if (store_changes_read(h->conn, &rq, &page, &err) == STORE_OK &&
	    !page.more) {
		released = false;
		for (size_t i = 0; i < page.n; i++) {
			store_event_type t = page.events[i].type;

			if (t == STORE_EV_UNLOCK || t == STORE_EV_EXPIRE ||
			    t == STORE_EV_DELETE) {
				released = true;
			}
		}
	}
	store_changes_page_fini(&page);
	return released;
}

/* dsh_hub_queue_waiter files a waiter handed over by the replier: at the
 * front when it was the key's grant attempt (it keeps its turn), else
 * at the back. A waiter whose LOCKED predates a release the hub has
 * already read is tried again at once. */
static void
dsh_hub_queue_waiter(dsh_watch_hub *h, dsh_pending *p)
{
	dsh_waitq *q = dsh_waitq_find(h, p->w.key, p->w.key_len, true);

	if (q == NULL) {
		p->wait_until_ms = 0; /* out of memory: answer LOCKED */
		p->wait_attempt = false;
		atomic_fetch_sub(&h->n_waiters, 1);
		dsh_requeue(h->svc, p);
		return;
	}
	if (p->wait_attempt) {
		if (q->attempt == p) {
			q->attempt = NULL;
		}
		p->wait_attempt = false;
		p->wnext = q->head;
		q->head = p;
		if (q->tail == NULL) {
			q->tail = p;
		}
	} else {
		p->wnext = NULL;
		if (q->tail != NULL) {
			q->tail->wnext = p;
		} else {
			q->head = p;
		}
		q->tail = p;
	}
	/* A release logged between the refusal and now, which the hub's
	 * reads have passed already: look for it in the key's own log. */
	if (p->wait_since < h->seen && dsh_released_since(h, p)) {
		q->kick = true;
	}
}

/* dsh_hub_take_waiters files the waiters the replier handed over (a list
 * through wnext); a new one is counted, a returning attempt already is. */
static void
dsh_hub_take_waiters(dsh_watch_hub *h, dsh_pending *win)
{
	while (win != NULL) {
		dsh_pending *p = win;

		win = p->wnext;
		if (!p->wait_attempt) {
			atomic_fetch_add(&h->n_waiters, 1);
		}
		dsh_hub_queue_waiter(h, p);
	}
}

/* dsh_hub_grant sends the first waiter of every kicked queue without an
 * attempt in flight to the writer; frees empty queues. */
static void
dsh_hub_grant(dsh_watch_hub *h)
{
	dsh_waitq **qq = &h->queues;

	while (*qq != NULL) {
		dsh_waitq *q = *qq;

		while (q->kick && q->attempt == NULL && q->head != NULL) {
			dsh_pending *p = q->head;

			q->head = p->wnext;
			if (q->head == NULL) {
				q->tail = NULL;
			}
			p->wnext = NULL;
			/* A lock granted to a caller who left would be held
			 * by nobody until its lease ran out. */
			if (nrpc_call_peer_gone(p->call)) {
				atomic_fetch_sub(&h->n_waiters, 1);
				atomic_fetch_add(&h->n_gone, 1);
				nrpc_call_fail(p->call, NRPC_CANCELLED, "CANCELLED",
				    NULL, "the caller left while waiting");
				ds_free(p);
				continue;
			}
			/* Nor to one whose token was revoked meanwhile. */
			if (!dsh_still_allowed(h->svc, p->call, AUTH_LOCK, p->w.key,
			        false)) {
				atomic_fetch_sub(&h->n_waiters, 1);
				ds_free(p);
				continue;
			}
			p->wait_attempt = true;
			q->attempt = p;
			dsh_requeue(h->svc, p);
		}
		q->kick = false;
		if (q->head == NULL && q->attempt == NULL) {
			*qq = q->next;
			ds_free(q->key);
			ds_free(q);
			continue;
		}
		qq = &q->next;
	}
}

/* dsh_hub_expire_waiters: a waiter whose wait is over gets one last plain
 * attempt (granted, or LOCKED with the holder); a waiter whose peer left
 * is dropped. */
static void
dsh_hub_expire_waiters(dsh_watch_hub *h, int64_t now, bool poll)
{
	for (dsh_waitq *q = h->queues; q != NULL; q = q->next) {
		dsh_pending *p = q->head;

		while (p != NULL) {
			dsh_pending *next = p->wnext;

			if (poll && nrpc_call_peer_gone(p->call)) {
				dsh_waitq_unlink(q, p);
				atomic_fetch_sub(&h->n_waiters, 1);
				atomic_fetch_add(&h->n_gone, 1);
				nrpc_call_fail(p->call, NRPC_CANCELLED, "CANCELLED",
				    NULL, "the caller left while waiting");
				ds_free(p);
			} else if (p->wait_until_ms <= now) {
				dsh_waitq_unlink(q, p);
				atomic_fetch_sub(&h->n_waiters, 1);
				p->wait_until_ms = 0;
				if (dsh_still_allowed(h->svc, p->call, AUTH_LOCK,
				        p->w.key, false)) {
					dsh_requeue(h->svc, p);
				} else {
					ds_free(p); /* answered: revoked meanwhile */
				}
			}
			p = next;
		}
	}
}

/* dsh_hub_read reads the log from seen and answers the parked watches it
 * matches; kicks the lock queues of released keys. */
static void
dsh_hub_read(dsh_watch_hub *h)
{
	for (;;) {
		store_changes_req rq;
		store_changes_page page;
		store_error err;
		bool *sel = NULL;
		dsh_watch **ww;

		memset(&rq, 0, sizeof(rq));
		memset(&page, 0, sizeof(page));
		memset(&err, 0, sizeof(err));
		rq.key = "";
		rq.prefix = true;
		rq.after = h->seen;
		rq.limit = STORE_CHANGES_LIMIT_MAX;
		atomic_fetch_add(&h->n_wakeups, 1);
		if (store_changes_read(h->conn, &rq, &page, &err) != STORE_OK) {
			/* Compacted past us (a stalled hub) or an I/O error:
			 * every parked watch reads for itself, which answers
			 * each correctly, and the hub starts from now. */
			uint64_t rev = 0;

			ds_log(DS_LOG_WARN, "datasync",
			    "watch hub: reading the change log: %s", err.message);
			for (ww = &h->parked; *ww != NULL;) {
				dsh_watch *w = *ww;
				uint64_t r = 0;

				/* the read answers with events: only to a
				 * token that may still read them (else it is
				 * answered with the refusal) */
				if (!dsh_still_allowed(h->svc, w->call,
				        AUTH_READ, w->key, w->prefix)) {
					*ww = w->next;
					dsh_watch_unpark(h, w);
					continue;
				}
				if (dsh_watch_read(h->conn, w, &r)) {
					*ww = w->next;
					atomic_fetch_add(&h->n_delivered, 1);
					dsh_watch_unpark(h, w);
					continue;
				}
				w->after = r > w->after ? r : w->after;
				ww = &w->next;
			}
			if (store_revision(h->conn, &rev, &err) == STORE_OK) {
				h->seen = rev;
			}
			for (dsh_waitq *q = h->queues; q != NULL; q = q->next) {
				q->kick = true;
			}
			store_changes_page_fini(&page);
			return;
		}
		h->compact = page.compact_revision;
		if (page.n > 0 && (sel = ds_calloc(page.n, sizeof(*sel))) == NULL) {
			store_changes_page_fini(&page);
			return; /* out of memory: the next notify retries */
		}
		for (ww = &h->parked; *ww != NULL;) {
			dsh_watch *w = *ww;
			size_t k = 0;
			size_t end = 0;
			bool answered = true;

			for (size_t i = 0; i < page.n && k < w->limit; i++) {
				sel[i] = dsh_watch_matches(w, &page.events[i]);
				if (sel[i]) {
					k++;
					end = i + 1;
				}
			}
			if (k == 0) {
				ww = &w->next;
				continue;
			}
			if (!dsh_still_allowed(h->svc, w->call, AUTH_READ, w->key,
			        w->prefix)) {
				/* revoked while parked: answered with the
				 * refusal, and no event leaves */
				*ww = w->next;
				dsh_watch_unpark(h, w);
				continue;
			}
			if (w->with_values) {
				uint64_t r = 0;

				/* Values are not in the hub's read: its own. */
				answered = dsh_watch_read(h->conn, w, &r);
				if (!answered && r > w->after) {
					w->after = r;
				}
			} else {
				dsh_events_reply_sel(w->call, page.events, end, sel,
				    k, false, page.events[end - 1].revision,
				    page.compact_revision);
			}
			if (!answered) {
				ww = &w->next;
				continue;
			}
			*ww = w->next;
			atomic_fetch_add(&h->n_delivered, 1);
			dsh_watch_unpark(h, w);
		}
		for (size_t i = 0; i < page.n; i++) {
			const store_event *ev = &page.events[i];

			if (ev->type == STORE_EV_UNLOCK ||
			    ev->type == STORE_EV_EXPIRE ||
			    ev->type == STORE_EV_DELETE) {
				dsh_waitq *q = dsh_waitq_find(h, ev->record.key,
				    ev->record.key_len, false);

				if (q != NULL) {
					q->kick = true;
				}
			}
		}
		h->seen = page.n > 0 ? page.events[page.n - 1].revision
		                     : page.revision;
		if (page.revision > h->seen && !page.more) {
			h->seen = page.revision;
		}
		ds_free(sel);
		if (!page.more) {
			store_changes_page_fini(&page);
			return;
		}
		store_changes_page_fini(&page);
	}
}

/* dsh_hub_park files incoming watches: one read first for those whose
 * cursor is behind what the hub has matched. */
static void
dsh_hub_park(dsh_watch_hub *h, dsh_watch *in)
{
	while (in != NULL) {
		dsh_watch *w = in;
		uint64_t r = 0;

		in = w->next;
		if (w->after < h->seen) {
			/* as in dsh_hub_read: a token revoked since the
			 * Watch began reads nothing (answered refused) */
			if (!dsh_still_allowed(h->svc, w->call, AUTH_READ,
			        w->key, w->prefix)) {
				dsh_watch_unpark(h, w);
				continue;
			}
			if (dsh_watch_read(h->conn, w, &r)) {
				atomic_fetch_add(&h->n_delivered, 1);
				dsh_watch_unpark(h, w);
				continue;
			}
			w->after = r > w->after ? r : w->after;
		}
		w->next = h->parked;
		h->parked = w;
	}
}

/* dsh_hub_timeouts answers watches whose wait is over with a progress
 * reply and drops those whose peer left. Returns the earliest end of the
 * rest. */
static int64_t
dsh_hub_timeouts(dsh_watch_hub *h, int64_t now, bool poll, bool all)
{
	int64_t next = INT64_MAX;

	for (dsh_watch **ww = &h->parked; *ww != NULL;) {
		dsh_watch *w = *ww;

		if (all || w->end_ms <= now) {
			Datasync__V1__WatchResponse resp =
			    DATASYNC__V1__WATCH_RESPONSE__INIT;

			/* Nothing matched up to seen (the invariant). */
			resp.revision = h->seen > w->after ? h->seen : w->after;
			resp.compact_revision = h->compact;
			*ww = w->next;
			datasync_v1_data_sync_watch_reply(w->call, &resp);
			atomic_fetch_add(&h->n_progress, 1);
			dsh_watch_unpark(h, w);
			continue;
		}
		if (poll && nrpc_call_peer_gone(w->call)) {
			*ww = w->next;
			atomic_fetch_add(&h->n_gone, 1);
			nrpc_call_fail(w->call, NRPC_CANCELLED, "CANCELLED", NULL,
			    "the caller left while watching");
			dsh_watch_unpark(h, w);
			continue;
		}
		if (w->end_ms < next) {
			next = w->end_ms;
		}
		ww = &w->next;
	}
	return next;
}

static int64_t
dsh_hub_waiters_next(dsh_watch_hub *h)
{
	int64_t next = INT64_MAX;

	for (dsh_waitq *q = h->queues; q != NULL; q = q->next) {
		for (dsh_pending *p = q->head; p != NULL; p = p->wnext) {
			if (p->wait_until_ms < next) {
				next = p->wait_until_ms;
			}
		}
	}
	return next;
}

/* dsh_hub_drain_all answers everything parked (shutdown). */
static void
dsh_hub_drain_all(dsh_watch_hub *h, dsh_watch *in, dsh_pending *win)
{
	dsh_hub_park(h, in);
	(void) dsh_hub_timeouts(h, 0, false, true);
	dsh_hub_take_waiters(h, win);
	while (h->queues != NULL) {
		dsh_waitq *q = h->queues;

		h->queues = q->next;
		while (q->head != NULL) {
			dsh_pending *p = q->head;

			q->head = p->wnext;
			atomic_fetch_sub(&h->n_waiters, 1);
			nrpc_call_fail(p->call, NRPC_UNAVAILABLE, "SHUTTING_DOWN",
			    NULL, "the server is shutting down");
			ds_free(p);
		}
		ds_free(q->key);
		ds_free(q);
	}
}

static void *
dsh_hub_main(void *arg)
{
	dsh_watch_hub *h = arg;
	int64_t next = INT64_MAX;

	for (;;) {
		dsh_watch *in;
		dsh_pending *win;
		const dsh_pending **done = NULL;
		size_t n_done;
		bool dirty, drain, stop, poll;
		int64_t now = ds_clock_now_ms(h->mono);
		int64_t poll_at = h->last_poll_ms + DSH_PEER_POLL_MS;

		if (poll_at < next) {
			next = poll_at;
		}
		pthread_mutex_lock(&h->mu);
		while (!h->stopping && !h->dirty && h->incoming == NULL &&
		    h->wait_in == NULL && h->n_done == 0 &&
		    !(h->draining && !h->drained) &&
		    (now = ds_clock_now_ms(h->mono)) < next) {
			struct timespec ts;

			ds_clock_abstime(CLOCK_MONOTONIC, next - now, &ts);
			(void) pthread_cond_timedwait(&h->cv, &h->mu, &ts);
		}
		in = h->incoming;
		h->incoming = NULL;
		win = h->wait_in;
		h->wait_in = NULL;
		n_done = h->n_done;
		if (n_done > 0) {
			done = ds_calloc(n_done, sizeof(*done));
			if (done != NULL) {
				memcpy(done, h->done, n_done * sizeof(*done));
				h->n_done = 0;
			} else {
				n_done = 0;
			}
		}
		dirty = h->dirty;
		h->dirty = false;
		drain = h->draining && !h->drained;
		stop = h->stopping;
		pthread_mutex_unlock(&h->mu);

		if (drain || stop) {
			ds_free(done);
			dsh_hub_drain_all(h, in, win);
			pthread_mutex_lock(&h->mu);
			h->drained = true;
			pthread_cond_broadcast(&h->cv);
			stop = h->stopping;
			pthread_mutex_unlock(&h->mu);
			if (stop) {
				break;
			}
			next = INT64_MAX;
			continue;
		}
		for (size_t i = 0; i < n_done; i++) {
			for (dsh_waitq *q = h->queues; q != NULL; q = q->next) {
				if (q->attempt == done[i]) {
					q->attempt = NULL;
					q->kick = q->head != NULL;
				}
			}
		}
		ds_free(done);
		dsh_hub_park(h, in);
		dsh_hub_take_waiters(h, win);
		if (dirty && h->parked == NULL && h->queues == NULL) {
			store_error err;
			uint64_t rev;

			/* Nobody to match: the cursor alone moves (a read of
			 * one row, not of the new events). */
			memset(&err, 0, sizeof(err));
			if (store_revision(h->conn, &rev, &err) == STORE_OK) {
				h->seen = rev;
			} else {
				dsh_hub_read(h);
			}
		} else if (dirty) {
			dsh_hub_read(h);
		}
		now = ds_clock_now_ms(h->mono);
		poll = now >= h->last_poll_ms + DSH_PEER_POLL_MS;
		if (poll) {
			h->last_poll_ms = now;
		}
		/* Every watch the new events matched is answered: handlers
		 * may now park at these cursors without reading. */
		dsh_hub_publish(h);
		dsh_hub_expire_waiters(h, now, poll);
		dsh_hub_grant(h);
		next = dsh_hub_timeouts(h, now, poll, false);
		{
			int64_t wn = dsh_hub_waiters_next(h);

			if (wn < next) {
				next = wn;
			}
		}
	}
	return NULL;
}

/* --- other nodes' commits --- */

/* dsh_hub_listen_main wakes the hub for every commit another node (or
 * this one) makes to a shared store. The first wait subscribes and
 * returns at once; the hub then rereads the log, so a commit between the
 * hub's first read and the subscription is not missed. While the
 * database is down it retries every DSH_LISTEN_RETRY_MS; the wait that
 * reconnects reports a wake, and the hub rereads what it may have
 * missed; and it wakes the hub every DSH_LISTEN_POLL_MS in any case. */
static void *
dsh_hub_listen_main(void *arg)
{
	dsh_watch_hub *h = arg;
	int timeout = 0, idle_ms = 0;
	bool warned = false;

	while (!atomic_load(&h->lstop)) {
		store_error err;
		bool woke = false;

		memset(&err, 0, sizeof(err));
		if (store_changes_wait(h->lconn, timeout, &woke, &err) !=
		    STORE_OK) {
			if (!warned) {
				ds_log(DS_LOG_WARN, "datasync",
				    "watch hub: waiting for other nodes' "
				    "changes: %s (retrying)", err.message);
				warned = true;
			}
			for (int i = 0; i < DSH_LISTEN_RETRY_MS / 50 &&
			    !atomic_load(&h->lstop); i++) {
				struct timespec ts = {0, 50 * 1000 * 1000};

				(void) nanosleep(&ts, NULL);
			}
			continue;
		}
		if (warned) {
			ds_log(DS_LOG_INFO, "datasync",
			    "watch hub: listening for other nodes' changes "
			    "again");
			warned = false;
		}
		idle_ms += timeout;
		/* The fallback poll: a wake is a hint, and a reread that finds
		 * nothing new costs one small query a second. */
		if (woke || timeout == 0 || idle_ms >= DSH_LISTEN_POLL_MS) {
			dsh_watch_notify(h);
			idle_ms = 0;
		}
		timeout = DSH_LISTEN_WAIT_MS;
	}
	return NULL;
}

/* --- lifecycle --- */

int
dsh_watch_create(store *s, dsh_service *svc, dsh_watch_hub **out,
    nrpc_status *st)
{
	dsh_watch_hub *h;
	store_error err;
	pthread_condattr_t ca;

	memset(&err, 0, sizeof(err));
	if ((h = ds_calloc(1, sizeof(*h))) == NULL) {
		nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED",
		    NULL, "out of memory creating the watch hub");
		return st->code;
	}
	h->store = s;
	h->svc = svc;
	h->mono = ds_clock_monotonic();
	pthread_mutex_init(&h->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (store_conn_open(s, &h->conn, &err) != STORE_OK ||
	    store_revision(h->conn, &h->seen, &err) != STORE_OK) {
		nrpc_status_set(st, NRPC_INTERNAL, store_reason(err.code), NULL,
		    "watch hub: %s", err.message);
		dsh_watch_destroy(h);
		return st->code;
	}
	h->last_poll_ms = ds_clock_now_ms(h->mono);
	dsh_hub_publish(h);
	if (pthread_create(&h->thread, NULL, dsh_hub_main, h) != 0) {
		nrpc_status_set(st, NRPC_INTERNAL, "INTERNAL", NULL,
		    "cannot start the watch hub's thread");
		dsh_watch_destroy(h);
		return st->code;
	}
	h->started = true;
	if (store_is_shared(s)) {
		if (store_conn_open(s, &h->lconn, &err) != STORE_OK) {
			nrpc_status_set(st, NRPC_INTERNAL,
			    store_reason(err.code), NULL,
			    "watch hub: listening connection: %s",
			    err.message);
			dsh_watch_destroy(h);
			return st->code;
		}
		atomic_init(&h->lstop, false);
		if (pthread_create(&h->lthread, NULL, dsh_hub_listen_main,
		        h) != 0) {
			nrpc_status_set(st, NRPC_INTERNAL, "INTERNAL", NULL,
			    "cannot start the watch hub's listener thread");
			dsh_watch_destroy(h);
			return st->code;
		}
		h->lstarted = true;
	}
	*out = h;
	return NRPC_OK;
}

void
dsh_watch_drain(dsh_watch_hub *h)
{
	if (h == NULL) {
		return;
	}
	pthread_mutex_lock(&h->mu);
	if (!h->draining) {
		h->draining = true;
		pthread_cond_broadcast(&h->cv);
	}
	while (h->started && !h->drained) {
		pthread_cond_wait(&h->cv, &h->mu);
	}
	pthread_mutex_unlock(&h->mu);
}

void
dsh_watch_stats_get(dsh_watch_hub *h, dsh_watch_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (h == NULL) {
		return;
	}
	out->parked_watches = atomic_load(&h->n_parked);
	out->lock_waiters = atomic_load(&h->n_waiters);
	out->wakeups = atomic_load(&h->n_wakeups);
	out->delivered = atomic_load(&h->n_delivered);
	out->progress = atomic_load(&h->n_progress);
	out->gone = atomic_load(&h->n_gone);
}

void
dsh_watch_destroy(dsh_watch_hub *h)
{
	if (h == NULL) {
		return;
	}
	if (h->lstarted) {
		atomic_store(&h->lstop, true);
		pthread_join(h->lthread, NULL);
	}
	store_conn_close(h->lconn);
	if (h->started) {
		pthread_mutex_lock(&h->mu);
		h->draining = true;
		h->stopping = true;
		pthread_cond_broadcast(&h->cv);
		pthread_mutex_unlock(&h->mu);
		pthread_join(h->thread, NULL);
	}
	store_conn_close(h->conn);
	ds_free(h->done);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	ds_free(h);
}
