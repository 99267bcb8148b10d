/*
 * it_watch_test.c - the change feed and lock waits (DESIGN §9, issue 11)
 * against a real datasyncd over ipc://:
 *   - a watch parks until a change it watches commits, and a change to
 *     another key does not wake it (a progress reply after the timeout);
 *   - every kind of change is one event: PUT, LOCK, PUT, UNLOCK, DELETE,
 *     EXPIRE, with increasing revisions, values only when asked;
 *   - completeness: 8 writers doing CAS increments on 16 keys and 4
 *     watchers (2 over RPC, 2 over Server-Sent Events from the gateway,
 *     resuming with Last-Event-ID) for IT_WATCH_SECONDS (default 20): every acknowledged
 *     write is in each watcher's stream exactly once, in revision order,
 *     with no gap; then the same across a kill -9 and restart, resuming
 *     from the last revision seen (writers retry with the same request
 *     id, so every write's outcome is known);
 *   - compaction: with --watch-retain 5 an old cursor fails OUT_OF_RANGE
 *     REVISION_COMPACTED carrying compact_revision, from which a watch
 *     works;
 *   - lock waits: 16 waiters are granted in arrival order, never two
 *     holders at once; a waiter that disconnects is skipped; a wait past
 *     its limit answers LOCKED; a lease that expires is granted to the
 *     waiter behind it.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <jansson.h>

#include "datasync.h"
#include "ds_daemon.h"
#include "ds_rpc.h"

#define IT_WRITERS 8
#define IT_KEYS 16
#define IT_WATCHERS 4  /* 0, 1 over RPC; 2, 3 over SSE (GET /v1/events) */
#define IT_RPC_WATCHERS 2
#define IT_MAX_ACKS 400000
#define IT_WAITERS 16

static ds_daemon it_d;
static datasync_client *it_c;

static int64_t
it_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
it_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static datasync_client *
it_connect(const char *name)
{
	datasync_client *c = NULL;
	nrpc_status st = {0};

	if (datasync_connect((const char *const[]){it_d.ipc_url}, 1, 90000,
	        name, &c, &st) != NRPC_OK) {
		fprintf(stderr, "connect: %s\n", st.message);
		nrpc_status_fini(&st);
		return NULL;
	}
	return c;
}

static int
it_setup(void **state)
{
	(void) state;
	if (ds_daemon_start(&it_d, true, NULL) != 0) {
		return -1;
	}
	return (it_c = it_connect("it-watch")) != NULL ? 0 : -1;
}

static int
it_teardown(void **state)
{
	int rc;

	(void) state;
	datasync_close(it_c);
	rc = ds_daemon_stop(&it_d);
	ds_daemon_fini(&it_d);
	return rc == 0 ? 0 : -1;
}

/* --- small calls --- */

static nrpc_code
it_watch(datasync_client *c, const char *key, const char *prefix,
    uint64_t after, uint32_t timeout_ms, bool values,
    Datasync__V1__WatchResponse **resp, nrpc_status *st)
{
	Datasync__V1__WatchRequest req = DATASYNC__V1__WATCH_REQUEST__INIT;
	nrpc_call_opts o = {0};

	req.key = (char *) (key != NULL ? key : "");
	req.prefix = (char *) (prefix != NULL ? prefix : "");
	req.after_revision = after;
	req.timeout_ms = timeout_ms;
	req.with_values = values;
	o.timeout_ms = (int64_t) timeout_ms + 5000;
	return datasync_v1_data_sync_watch(datasync_rpc(c), &req, resp, &o, st);
}

/* it_watch_now is it_watch from the store's current revision (from_now). */
static nrpc_code
it_watch_now(datasync_client *c, const char *prefix, uint32_t timeout_ms,
    Datasync__V1__WatchResponse **resp, nrpc_status *st)
{
	Datasync__V1__WatchRequest req = DATASYNC__V1__WATCH_REQUEST__INIT;
	nrpc_call_opts o = {0};

	req.prefix = (char *) prefix;
	req.from_now = true;
	req.timeout_ms = timeout_ms;
	o.timeout_ms = (int64_t) timeout_ms + 5000;
	return datasync_v1_data_sync_watch(datasync_rpc(c), &req, resp, &o, st);
}

/* it_put writes value to key unconditionally; returns the revision. */
static uint64_t
it_put(const char *key, const char *value, const char *token)
{
	Datasync__V1__UpdateRequest req = DATASYNC__V1__UPDATE_REQUEST__INIT;
	Datasync__V1__Precondition pre = DATASYNC__V1__PRECONDITION__INIT;
	Datasync__V1__UpdateResponse *resp = NULL;
	nrpc_status st = {0};
	uint64_t rev;

	req.key = (char *) key;
	req.value.data = (uint8_t *) value;
	req.value.len = strlen(value);
	pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_UNCONDITIONAL;
	pre.unconditional = true;
	req.precondition = &pre;
	req.lock_token = (char *) (token != NULL ? token : "");
	assert_int_equal(datasync_v1_data_sync_update(datasync_rpc(it_c), &req,
	                     &resp, NULL, &st), NRPC_OK);
	rev = resp->record->revision;
	datasync__v1__update_response__free_unpacked(resp, NULL);
	return rev;
}

/* it_lock takes key's lock for owner; the token goes to token[33]. */
static nrpc_code
it_lock(datasync_client *c, const char *key, const char *owner,
    int64_t ttl_ms, uint32_t wait_ms, char token[33], nrpc_status *st)
{
	Datasync__V1__LockRequest req = DATASYNC__V1__LOCK_REQUEST__INIT;
	Datasync__V1__LockResponse *resp = NULL;
	nrpc_call_opts o = {0};
	nrpc_code rv;

	req.key = (char *) key;
	req.owner = (char *) owner;
	req.ttl_ms = ttl_ms;
	req.wait_ms = wait_ms;
	o.timeout_ms = (int64_t) wait_ms + 10000;
	rv = datasync_v1_data_sync_lock(datasync_rpc(c), &req, &resp, &o, st);
	if (rv == NRPC_OK) {
		snprintf(token, 33, "%s", resp->lock_token);
		datasync__v1__lock_response__free_unpacked(resp, NULL);
	}
	return rv;
}

static void
it_unlock(datasync_client *c, const char *key, const char *token)
{
	Datasync__V1__UnlockRequest req = DATASYNC__V1__UNLOCK_REQUEST__INIT;
	Datasync__V1__UnlockResponse *resp = NULL;
	nrpc_status st = {0};

	req.key = (char *) key;
	req.lock_token = (char *) token;
	assert_int_equal(datasync_v1_data_sync_unlock(datasync_rpc(c), &req,
	                     &resp, NULL, &st), NRPC_OK);
	datasync__v1__unlock_response__free_unpacked(resp, NULL);
}

static uint64_t
it_revision_now(void)
{
	Datasync__V1__WatchResponse *resp = NULL;
	nrpc_status st = {0};
	uint64_t rev;

	/* A watch "from now" with a tiny wait answers the current one. */
	assert_int_equal(it_watch_now(it_c, "it/none", 1, &resp, &st), NRPC_OK);
	assert_int_equal(resp->n_events, 0);
	rev = resp->revision;
	datasync__v1__watch_response__free_unpacked(resp, NULL);
	return rev;
}

/* --- parking --- */

typedef struct it_parked {
	const char *key;
	const char *prefix;
	uint64_t after;
	uint32_t timeout_ms;
	Datasync__V1__WatchResponse *resp;
	nrpc_code rv;
	int64_t took_ms;
} it_parked;

static void *
it_parked_thread(void *arg)
{
	it_parked *p = arg;
	nrpc_status st = {0};
	int64_t t0 = it_now_ms();

	p->rv = it_watch(it_c, p->key, p->prefix, p->after, p->timeout_ms, false,
	    &p->resp, &st);
	p->took_ms = it_now_ms() - t0;
	nrpc_status_fini(&st);
	return NULL;
}

static void
test_watch_parks_until_a_change(void **state)
{
	pthread_t th[2];
	it_parked on_prefix = {NULL, "park/", 0, 20000, NULL, 0, 0};
	it_parked on_other = {"park/other", NULL, 0, 1500, NULL, 0, 0};
	uint64_t r0 = it_revision_now();
	uint64_t rev;

	(void) state;
	on_prefix.after = r0;
	on_other.after = r0;
	assert_int_equal(pthread_create(&th[0], NULL, it_parked_thread,
	                     &on_prefix), 0);
	assert_int_equal(pthread_create(&th[1], NULL, it_parked_thread,
	                     &on_other), 0);
	/* Long enough that both have parked: had they not, the events
	 * would still be delivered by their first read; the test is that
	 * the prefix watch gets exactly this event, the other none. */
	it_sleep_ms(300);
	rev = it_put("park/a", "1", NULL);
	pthread_join(th[0], NULL);
	pthread_join(th[1], NULL);

	assert_int_equal(on_prefix.rv, NRPC_OK);
	assert_int_equal(on_prefix.resp->n_events, 1);
	assert_int_equal(on_prefix.resp->events[0]->type,
	    DATASYNC__V1__EVENT_TYPE__EVENT_PUT);
	assert_int_equal(on_prefix.resp->events[0]->revision, rev);
	assert_string_equal(on_prefix.resp->events[0]->record->key, "park/a");
	assert_int_equal(on_prefix.resp->events[0]->record->value.len, 0);
	assert_int_equal(on_prefix.resp->revision, rev);
	/* Woken by the write, not by its timeout. */
	assert_true(on_prefix.took_ms < 15000);

	assert_int_equal(on_other.rv, NRPC_OK);
	assert_int_equal(on_other.resp->n_events, 0);
	assert_true(on_other.resp->revision >= rev); /* progress */
	datasync__v1__watch_response__free_unpacked(on_prefix.resp, NULL);
	datasync__v1__watch_response__free_unpacked(on_other.resp, NULL);
}

static void
test_watch_rejects_bad_requests(void **state)
{
	Datasync__V1__WatchResponse *resp = NULL;
	nrpc_status st = {0};

	(void) state;
	assert_int_equal(it_watch(it_c, "a", "b", 0, 10, false, &resp, &st),
	    NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.field, "key");
	nrpc_status_fini(&st);
	assert_int_equal(it_watch(it_c, "a", NULL, 0, 60001, false, &resp, &st),
	    NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.field, "timeout_ms");
	nrpc_status_fini(&st);
}

static void
test_get_revision_is_a_cursor(void **state)
{
	Datasync__V1__GetRequest g = DATASYNC__V1__GET_REQUEST__INIT;
	Datasync__V1__GetResponse *gr = NULL;
	Datasync__V1__WatchResponse *resp = NULL;
	nrpc_status st = {0};
	uint64_t r1 = it_put("cursor/k", "1", NULL);
	uint64_t r2;

	(void) state;
	g.key = (char *) "cursor/k";
	assert_int_equal(datasync_v1_data_sync_get(datasync_rpc(it_c), &g, &gr,
	                     NULL, &st), NRPC_OK);
	assert_true(gr->revision >= r1);
	assert_int_equal(gr->record->revision, r1);
	r2 = it_put("cursor/k", "2", NULL);
	assert_int_equal(it_watch(it_c, "cursor/k", NULL, gr->revision, 1000,
	                     false, &resp, &st), NRPC_OK);
	assert_int_equal(resp->n_events, 1);
	assert_int_equal(resp->events[0]->revision, r2);
	datasync__v1__watch_response__free_unpacked(resp, NULL);
	datasync__v1__get_response__free_unpacked(gr, NULL);
}

/* --- every kind of change --- */

/* it_collect watches key from after until n events arrived. */
static Datasync__V1__Event **
it_collect(const char *key, uint64_t after, size_t n, bool values,
    Datasync__V1__WatchResponse **keep, size_t *n_keep)
{
	Datasync__V1__Event **evs = calloc(n, sizeof(*evs));
	size_t got = 0;
	int64_t until = it_now_ms() + 20000;

	*n_keep = 0;
	while (got < n && it_now_ms() < until) {
		Datasync__V1__WatchResponse *resp = NULL;
		nrpc_status st = {0};

		assert_int_equal(it_watch(it_c, key, NULL, after, 2000, values,
		                     &resp, &st), NRPC_OK);
		for (size_t i = 0; i < resp->n_events && got < n; i++) {
			evs[got++] = resp->events[i];
		}
		after = resp->revision;
		keep[(*n_keep)++] = resp;
	}
	assert_int_equal(got, n);
	return evs;
}

static void
test_every_change_is_an_event(void **state)
{
	const char *key = "kinds/one";
	uint64_t r0 = it_revision_now();
	char token[33];
	nrpc_status st = {0};
	Datasync__V1__WatchResponse *keep[64];
	size_t n_keep = 0;
	Datasync__V1__Event **evs;
	size_t n = 8; /* PUT LOCK PUT UNLOCK LOCK EXPIRE LOCK DELETE */

	(void) state;
	(void) it_put(key, "v1", NULL);
	assert_int_equal(it_lock(it_c, key, "alice", 30000, 0, token, &st),
	    NRPC_OK);
	(void) it_put(key, "v2", token);
	it_unlock(it_c, key, token);
	/* A lease nobody releases: the server's sweeper records EXPIRE. */
	assert_int_equal(it_lock(it_c, key, "bob", 1000, 0, token, &st),
	    NRPC_OK);
	{
		/* Delete waits for the expiry by itself: a Lock that waits. */
		char t2[33];

		assert_int_equal(it_lock(it_c, key, "carol", 30000, 10000, t2,
		                     &st), NRPC_OK);
		/* carol's LOCK comes after bob's EXPIRE; delete under it. */
		{
			Datasync__V1__DeleteRequest dr =
			    DATASYNC__V1__DELETE_REQUEST__INIT;
			Datasync__V1__Precondition pre =
			    DATASYNC__V1__PRECONDITION__INIT;
			Datasync__V1__DeleteResponse *dresp = NULL;

			dr.key = (char *) key;
			pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_EXISTS;
			pre.if_exists = true;
			dr.precondition = &pre;
			dr.lock_token = t2;
			assert_int_equal(datasync_v1_data_sync_delete(
			                     datasync_rpc(it_c), &dr, &dresp, NULL,
			                     &st), NRPC_OK);
			datasync__v1__delete_response__free_unpacked(dresp, NULL);
		}
	}
	/* PUT LOCK PUT UNLOCK LOCK(bob) EXPIRE LOCK(carol) DELETE */
	evs = it_collect(key, r0, n, true, keep, &n_keep);
	{
		static const Datasync__V1__EventType all[] = {
		    DATASYNC__V1__EVENT_TYPE__EVENT_PUT,
		    DATASYNC__V1__EVENT_TYPE__EVENT_LOCK,
		    DATASYNC__V1__EVENT_TYPE__EVENT_PUT,
		    DATASYNC__V1__EVENT_TYPE__EVENT_UNLOCK,
		    DATASYNC__V1__EVENT_TYPE__EVENT_LOCK,
		    DATASYNC__V1__EVENT_TYPE__EVENT_EXPIRE,
		    DATASYNC__V1__EVENT_TYPE__EVENT_LOCK,
		    DATASYNC__V1__EVENT_TYPE__EVENT_DELETE,
		};

		for (size_t i = 0; i < n; i++) {
			assert_int_equal(evs[i]->type, all[i]);
			assert_string_equal(evs[i]->record->key, key);
			if (i > 0) {
				assert_true(evs[i]->revision > evs[i - 1]->revision);
			}
		}
	}
	assert_memory_equal(evs[0]->record->value.data, "v1", 2);
	assert_int_equal(evs[0]->record->version, 1);
	assert_memory_equal(evs[2]->record->value.data, "v2", 2);
	assert_int_equal(evs[2]->record->version, 2);
	assert_non_null(evs[1]->record->lock);
	assert_string_equal(evs[1]->record->lock->owner, "alice");
	assert_string_equal(evs[4]->record->lock->owner, "bob");
	assert_string_equal(evs[6]->record->lock->owner, "carol");
	assert_true(evs[7]->record->deleted);
	free(evs);
	for (size_t i = 0; i < n_keep; i++) {
		datasync__v1__watch_response__free_unpacked(keep[i], NULL);
	}
	nrpc_status_fini(&st);
}

/* --- completeness --- */

typedef struct it_ack {
	uint64_t revision;
	uint32_t key;
	uint32_t version;
} it_ack;

typedef struct it_run {
	atomic_bool stop_writers;
	atomic_bool stop_watchers;
	atomic_uint_fast64_t target; /* watchers stop once past it */
	atomic_int_fast64_t give_up_ms; /* ... or give up at this time */
	atomic_uint errors;
	it_ack *acks;               /* IT_MAX_ACKS */
	atomic_size_t n_acks;
	datasync_client *wc[IT_WRITERS];
	datasync_client *vc[IT_WATCHERS];
	it_ack *seen[IT_WATCHERS];   /* IT_MAX_ACKS each */
	size_t n_seen[IT_WATCHERS];
	uint64_t cursor[IT_WATCHERS];
	unsigned id;
	unsigned phase;              /* part of every request id */
} it_run;

typedef struct it_worker {
	it_run *run;
	unsigned id;
} it_worker;

static bool
it_retryable(const nrpc_status *st)
{
	return st->code == NRPC_UNAVAILABLE || st->code == NRPC_DEADLINE_EXCEEDED ||
	    st->code == NRPC_CANCELLED;
}

static void *
it_writer_thread(void *arg)
{
	it_worker *wk = arg;
	it_run *r = wk->run;
	datasync_client *c = r->wc[wk->id];
	uint64_t versions[IT_KEYS] = {0};
	unsigned seq = 0;

	while (!atomic_load(&r->stop_writers)) {
		uint32_t k = (wk->id * 7 + seq * 3) % IT_KEYS;
		char key[32];
		char value[32];
		char rid[64];
		bool done = false;
		int64_t started_ms = it_now_ms();

		snprintf(key, sizeof(key), "c/%02u", k);
		snprintf(rid, sizeof(rid), "w%u-%u-%u-%u", r->id, r->phase, wk->id,
		    seq++);
		while (!done) {
			Datasync__V1__UpdateRequest req =
			    DATASYNC__V1__UPDATE_REQUEST__INIT;
			Datasync__V1__Precondition pre =
			    DATASYNC__V1__PRECONDITION__INIT;
			Datasync__V1__UpdateResponse *resp = NULL;
			nrpc_call_opts o = {0};
			nrpc_status st = {0};
			nrpc_code rv;

			snprintf(value, sizeof(value), "%llu",
			    (unsigned long long) versions[k] + 1);
			req.key = key;
			req.value.data = (uint8_t *) value;
			req.value.len = strlen(value);
			if (versions[k] == 0) {
				pre.kind_case =
				    DATASYNC__V1__PRECONDITION__KIND_IF_ABSENT;
				pre.if_absent = true;
			} else {
				pre.kind_case =
				    DATASYNC__V1__PRECONDITION__KIND_IF_VERSION;
				pre.if_version = versions[k];
			}
			req.precondition = &pre;
			o.request_id = rid;
			o.timeout_ms = 5000;
			rv = datasync_v1_data_sync_update(datasync_rpc(c), &req,
			    &resp, &o, &st);
			if (rv == NRPC_OK) {
				size_t i = atomic_fetch_add(&r->n_acks, 1);

				if (i < IT_MAX_ACKS) {
					r->acks[i].revision = resp->record->revision;
					r->acks[i].key = k;
					r->acks[i].version =
					    (uint32_t) resp->record->version;
				}
				versions[k] = resp->record->version;
				datasync__v1__update_response__free_unpacked(resp,
				    NULL);
				done = true;
			} else if (strcmp(st.reason, "VERSION_CONFLICT") == 0) {
				Datasync__V1__Record *cur = NULL;

				/* A new attempt is a new request. */
				snprintf(rid, sizeof(rid), "w%u-%u-%u-%u", r->id,
				    r->phase, wk->id, seq++);
				if (datasync_status_record(&st, &cur) == NRPC_OK) {
					versions[k] = cur->deleted ? 0 : cur->version;
					datasync__v1__record__free_unpacked(cur, NULL);
				}
			} else if (it_retryable(&st) &&
			    it_now_ms() - started_ms < 60000) {
				/* Same request id: applied once, whatever
				 * happened to the reply. */
				it_sleep_ms(20);
			} else {
				fprintf(stderr, "writer: %s %s\n", st.reason,
				    st.message);
				atomic_fetch_add(&r->errors, 1);
				done = true;
			}
			nrpc_status_fini(&st);
		}
	}
	return NULL;
}

static void *
it_watcher_thread(void *arg)
{
	it_worker *wk = arg;
	it_run *r = wk->run;
	unsigned w = wk->id;

	for (;;) {
		Datasync__V1__WatchResponse *resp = NULL;
		nrpc_status st = {0};
		uint64_t target = atomic_load(&r->target);

		if (atomic_load(&r->stop_watchers) && r->cursor[w] >= target) {
			break;
		}
		if (atomic_load(&r->stop_watchers) &&
		    it_now_ms() > atomic_load(&r->give_up_ms)) {
			fprintf(stderr, "watcher %u stuck at revision %llu of %llu\n",
			    w, (unsigned long long) r->cursor[w],
			    (unsigned long long) target);
			atomic_fetch_add(&r->errors, 1);
			break;
		}
		if (it_watch(r->vc[w], NULL, "c/", r->cursor[w], 1000, false, &resp,
		        &st) != NRPC_OK) {
			if (!it_retryable(&st)) {
				fprintf(stderr, "watcher: %s %s\n", st.reason,
				    st.message);
				atomic_fetch_add(&r->errors, 1);
				nrpc_status_fini(&st);
				break;
			}
			nrpc_status_fini(&st);
			it_sleep_ms(20);
			continue;
		}
		for (size_t i = 0; i < resp->n_events; i++) {
			const Datasync__V1__Event *ev = resp->events[i];
			unsigned k = 0;

			if (r->n_seen[w] < IT_MAX_ACKS &&
			    sscanf(ev->record->key, "c/%u", &k) == 1) {
				it_ack *a = &r->seen[w][r->n_seen[w]++];

				a->revision = ev->revision;
				a->key = k;
				a->version = (uint32_t) ev->record->version;
			}
		}
		r->cursor[w] = resp->revision;
		datasync__v1__watch_response__free_unpacked(resp, NULL);
	}
	return NULL;
}

/* --- a Server-Sent Events watcher, over a plain socket --- */

/* it_sse_event records one event: data is the Event as proto3 JSON. */
static void
it_sse_event(it_run *r, unsigned w, const char *id, const char *data)
{
	json_error_t jerr;
	json_t *ev = json_loads(data, 0, &jerr);
	const char *key = NULL;
	const char *version = NULL;
	const char *rev = NULL;
	unsigned k = 0;

	if (ev == NULL ||
	    json_unpack(ev, "{s:s, s:{s:s, s?s}}", "revision", &rev, "record",
	        "key", &key, "version", &version) != 0 ||
	    strtoull(rev, NULL, 10) != strtoull(id, NULL, 10)) {
		fprintf(stderr, "sse watcher %u: bad event id %s data %s\n", w, id,
		    data);
		atomic_fetch_add(&r->errors, 1);
	} else if (r->n_seen[w] < IT_MAX_ACKS && sscanf(key, "c/%u", &k) == 1) {
		it_ack *a = &r->seen[w][r->n_seen[w]++];

		a->revision = strtoull(rev, NULL, 10);
		a->key = k;
		a->version = version != NULL ? (uint32_t) atoi(version) : 0;
	}
	r->cursor[w] = strtoull(id, NULL, 10);
	json_decref(ev);
}

/* it_sse_stream opens GET /v1/events from the cursor (Last-Event-ID) and
 * reads events until the stream ends, the server goes away, or the run
 * is over. HTTP/1.0, so the body is the stream itself (no chunks). */
static void
it_sse_stream(it_run *r, unsigned w)
{
	struct sockaddr_in sa;
	char req[512];
	char buf[65536];
	size_t have = 0;
	bool body = false;
	char id[32] = "";
	char *data = NULL;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t) it_d.http_port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0) {
		return;
	}
	if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
		close(fd);
		return;
	}
	snprintf(req, sizeof(req),
	    "GET /v1/events?prefix=c%%2F HTTP/1.0\r\nHost: 127.0.0.1:%d\r\n"
	    "Accept: text/event-stream\r\nLast-Event-ID: %llu\r\n\r\n",
	    it_d.http_port, (unsigned long long) r->cursor[w]);
	if (write(fd, req, strlen(req)) != (ssize_t) strlen(req)) {
		close(fd);
		return;
	}
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		ssize_t n;
		char *line;
		char *nl;

		if (atomic_load(&r->stop_watchers) &&
		    (r->cursor[w] >= atomic_load(&r->target) ||
		        it_now_ms() > atomic_load(&r->give_up_ms))) {
			break;
		}
		if (poll(&p, 1, 200) <= 0) {
			continue;
		}
		if (have == sizeof(buf) - 1 ||
		    (n = read(fd, buf + have, sizeof(buf) - 1 - have)) <= 0) {
			break;
		}
		have += (size_t) n;
		buf[have] = '\0';
		line = buf;
		while ((nl = strchr(line, '\n')) != NULL) {
			*nl = '\0';
			if (nl > line && nl[-1] == '\r') {
				nl[-1] = '\0';
			}
			if (!body) {
				if (strncmp(line, "HTTP/", 5) == 0 &&
				    strstr(line, " 200") == NULL) {
					fprintf(stderr, "sse watcher %u: %s\n", w, line);
					atomic_fetch_add(&r->errors, 1);
					goto out;
				}
				body = line[0] == '\0';
			} else if (strncmp(line, "id: ", 4) == 0) {
				snprintf(id, sizeof(id), "%s", line + 4);
			} else if (strncmp(line, "data: ", 6) == 0) {
				free(data);
				data = strdup(line + 6);
			} else if (strncmp(line, "event: reset", 12) == 0) {
				fprintf(stderr, "sse watcher %u: reset\n", w);
				atomic_fetch_add(&r->errors, 1);
				goto out;
			} else if (line[0] == '\0') {
				if (id[0] != '\0' && data != NULL) {
					it_sse_event(r, w, id, data);
				}
				id[0] = '\0';
				free(data);
				data = NULL;
			}
			line = nl + 1;
		}
		have = strlen(line);
		memmove(buf, line, have + 1);
	}
out:
	free(data);
	close(fd);
}

static void *
it_sse_thread(void *arg)
{
	it_worker *wk = arg;
	it_run *r = wk->run;

	while (!(atomic_load(&r->stop_watchers) &&
	    r->cursor[wk->id] >= atomic_load(&r->target))) {
		if (atomic_load(&r->stop_watchers) &&
		    it_now_ms() > atomic_load(&r->give_up_ms)) {
			fprintf(stderr, "sse watcher %u stuck at revision %llu of "
			        "%llu\n", wk->id,
			    (unsigned long long) r->cursor[wk->id],
			    (unsigned long long) atomic_load(&r->target));
			atomic_fetch_add(&r->errors, 1);
			break;
		}
		it_sse_stream(r, wk->id);
		it_sleep_ms(50); /* the server was restarting */
	}
	return NULL;
}

static int
it_cmp_ack(const void *a, const void *b)
{
	const it_ack *x = a;
	const it_ack *y = b;

	return x->revision < y->revision ? -1 : x->revision > y->revision;
}

/* it_check: each watcher's stream is exactly the acknowledged writes, in
 * revision order: none missing (no gap), none twice, none unasked.
 * Revisions between them may belong to other keys (a lease of an
 * earlier test expiring meanwhile). */
static void
it_check(it_run *r)
{
	size_t n = atomic_load(&r->n_acks);

	assert_true(n < IT_MAX_ACKS);
	assert_true(n > 0);
	qsort(r->acks, n, sizeof(*r->acks), it_cmp_ack);
	for (unsigned w = 0; w < IT_WATCHERS; w++) {
		for (size_t i = 0; i < n && i < r->n_seen[w]; i++) {
			const it_ack *a = &r->acks[i];
			const it_ack *s = &r->seen[w][i];

			if (s->revision != a->revision || s->key != a->key ||
			    s->version != a->version) {
				fail_msg("watcher %u event %zu: rev %llu key %u v%u, "
				         "acked rev %llu key %u v%u", w, i,
				    (unsigned long long) s->revision, s->key,
				    s->version, (unsigned long long) a->revision,
				    a->key, a->version);
			}
			if (i > 0 && s->revision <= r->seen[w][i - 1].revision) {
				fail_msg("watcher %u event %zu: revision %llu after %llu",
				    w, i, (unsigned long long) s->revision,
				    (unsigned long long) r->seen[w][i - 1].revision);
			}
		}
		if (r->n_seen[w] > n) {
			const it_ack *x = &r->seen[w][n];

			fail_msg("watcher %u (%s) saw an event past the last "
			         "acknowledged write: rev %llu key %u v%u", w,
			    w < IT_RPC_WATCHERS ? "RPC" : "SSE",
			    (unsigned long long) x->revision, x->key, x->version);
		}
		if (r->n_seen[w] != n) {
			fail_msg("watcher %u (%s) saw %zu events for %zu acknowledged "
			         "writes", w, w < IT_RPC_WATCHERS ? "RPC" : "SSE",
			    r->n_seen[w], n);
		}
	}
}

static void
it_run_phase(it_run *r, pthread_t *th, it_worker *wk, int seconds, bool kill)
{
	atomic_store(&r->stop_writers, false);
	r->phase++;
	for (unsigned i = 0; i < IT_WRITERS; i++) {
		wk[i].run = r;
		wk[i].id = i;
		assert_int_equal(pthread_create(&th[i], NULL, it_writer_thread,
		                     &wk[i]), 0);
	}
	if (kill) {
		it_sleep_ms(seconds * 500);
		ds_daemon_kill9(&it_d);
		assert_int_equal(ds_daemon_restart(&it_d, true, NULL), 0);
		it_sleep_ms(seconds * 500);
	} else {
		it_sleep_ms(seconds * 1000);
	}
	atomic_store(&r->stop_writers, true);
	for (unsigned i = 0; i < IT_WRITERS; i++) {
		pthread_join(th[i], NULL);
	}
}

static void
test_every_acknowledged_write_is_seen_once(void **state)
{
	it_run *r = calloc(1, sizeof(*r));
	pthread_t wth[IT_WRITERS];
	pthread_t vth[IT_WATCHERS];
	it_worker wk[IT_WRITERS];
	it_worker vk[IT_WATCHERS];
	const char *env = getenv("IT_WATCH_SECONDS");
	int seconds = env != NULL ? atoi(env) : 20;
	uint64_t first;

	(void) state;
	assert_non_null(r);
	r->id = (unsigned) getpid();
	r->acks = calloc(IT_MAX_ACKS, sizeof(*r->acks));
	assert_non_null(r->acks);
	first = it_revision_now();
	for (unsigned i = 0; i < IT_WRITERS; i++) {
		assert_non_null(r->wc[i] = it_connect("it-writer"));
	}
	for (unsigned w = 0; w < IT_WATCHERS; w++) {
		assert_non_null(r->vc[w] = it_connect("it-watcher"));
		r->seen[w] = calloc(IT_MAX_ACKS, sizeof(*r->seen[w]));
		assert_non_null(r->seen[w]);
		r->cursor[w] = first;
		vk[w].run = r;
		vk[w].id = w;
		assert_int_equal(pthread_create(&vth[w], NULL,
		                     w < IT_RPC_WATCHERS ? it_watcher_thread
		                                         : it_sse_thread,
		                     &vk[w]), 0);
	}
	/* Phase 1: a steady run. */
	it_run_phase(r, wth, wk, seconds, false);
	/* Phase 2: kill -9 in the middle of it; clients ride through. */
	it_run_phase(r, wth, wk, seconds > 4 ? seconds / 2 : 2, true);
	atomic_store(&r->target, it_revision_now());
	/* Every watcher catches up in seconds; a minute means it is stuck. */
	atomic_store(&r->give_up_ms, it_now_ms() + 60000);
	atomic_store(&r->stop_watchers, true);
	for (unsigned w = 0; w < IT_WATCHERS; w++) {
		pthread_join(vth[w], NULL);
	}
	assert_int_equal(atomic_load(&r->errors), 0);
	printf("completeness: %zu acknowledged writes, each seen once by %d "
	       "watchers (2 RPC, 2 SSE) in revision order (revisions %llu..%llu), across a "
	       "kill -9\n", atomic_load(&r->n_acks), IT_WATCHERS,
	    (unsigned long long) first + 1,
	    (unsigned long long) atomic_load(&r->target));
	it_check(r);
	for (unsigned i = 0; i < IT_WRITERS; i++) {
		datasync_close(r->wc[i]);
	}
	for (unsigned w = 0; w < IT_WATCHERS; w++) {
		datasync_close(r->vc[w]);
		free(r->seen[w]);
	}
	free(r->acks);
	free(r);
}

/* --- lock waits --- */

typedef struct it_waiter {
	unsigned id;
	const char *key;
	uint32_t wait_ms;
	atomic_uint *order;     /* grants so far */
	atomic_int *inside;     /* holders now */
	atomic_int *turn;       /* the waiter that may send its Lock now */
	atomic_bool ready;      /* connected, its pipe up */
	unsigned granted_as;    /* position of the grant, from 1 */
	bool overlap;
	nrpc_code rv;
	char reason[64];
} it_waiter;

static void *
it_waiter_thread(void *arg)
{
	it_waiter *w = arg;
	datasync_client *c = it_connect("it-waiter");
	nrpc_status st = {0};
	char token[33];

	if (c == NULL) {
		w->rv = NRPC_UNAVAILABLE;
		atomic_store(&w->ready, true);
		return NULL;
	}
	{
		/* One call first: dialling is asynchronous, and the Locks
		 * must leave in the order the test gives them their turn. */
		Datasync__V1__GetRequest g = DATASYNC__V1__GET_REQUEST__INIT;
		Datasync__V1__GetResponse *gr = NULL;

		g.key = (char *) "waits/warm-up";
		(void) datasync_v1_data_sync_get(datasync_rpc(c), &g, &gr, NULL,
		    &st);
		nrpc_status_fini(&st);
	}
	atomic_store(&w->ready, true);
	while (atomic_load(w->turn) < (int) w->id) {
		it_sleep_ms(1);
	}
	w->rv = it_lock(c, w->key, "waiter", 30000, w->wait_ms, token, &st);
	snprintf(w->reason, sizeof(w->reason), "%s", st.reason);
	if (w->rv == NRPC_OK) {
		w->overlap = atomic_fetch_add(w->inside, 1) != 0;
		w->granted_as = atomic_fetch_add(w->order, 1) + 1;
		it_sleep_ms(10);
		atomic_fetch_sub(w->inside, 1);
		it_unlock(c, w->key, token);
	}
	nrpc_status_fini(&st);
	datasync_close(c);
	return NULL;
}

/* it_raw_lock sends a waiting Lock from a raw SP peer (so the test can
 * vanish without reading the answer). */
static void
it_raw_lock(ds_sp_conn *conn, const char *key, uint32_t wait_ms)
{
	Datasync__V1__LockRequest req = DATASYNC__V1__LOCK_REQUEST__INIT;
	Nrpc__V1__Request env = NRPC__V1__REQUEST__INIT;
	uint8_t body[256];
	uint8_t msg[512];
	size_t n;

	req.key = (char *) key;
	req.owner = (char *) "ghost";
	req.ttl_ms = 30000;
	req.wait_ms = wait_ms;
	n = datasync__v1__lock_request__pack(&req, body);
	env.method = (char *) "/datasync.v1.DataSync/Lock";
	env.body.data = body;
	env.body.len = n;
	env.timeout_ms = wait_ms + 10000;
	n = nrpc__v1__request__pack(&env, msg);
	assert_int_equal(ds_sp_dial(conn, it_d.ipc_url, 5000, 5000), 0);
	assert_int_equal(ds_sp_send(conn, 1, msg, n), 0);
}

static void
test_lock_waiters_in_arrival_order(void **state)
{
	const char *key = "waits/one";
	it_waiter w[IT_WAITERS];
	pthread_t th[IT_WAITERS];
	atomic_uint order;
	atomic_int inside;
	atomic_int turn;
	char token[33];
	nrpc_status st = {0};
	ds_sp_conn ghost = {-1, 0};

	(void) state;
	atomic_init(&order, 0);
	atomic_init(&inside, 0);
	atomic_init(&turn, -1);
	assert_int_equal(it_lock(it_c, key, "holder", 30000, 0, token, &st),
	    NRPC_OK);
	for (unsigned i = 0; i < IT_WAITERS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].id = i;
		w[i].key = key;
		w[i].wait_ms = 30000;
		w[i].order = &order;
		w[i].inside = &inside;
		w[i].turn = &turn;
		atomic_init(&w[i].ready, false);
		assert_int_equal(pthread_create(&th[i], NULL, it_waiter_thread,
		                     &w[i]), 0);
	}
	for (unsigned i = 0; i < IT_WAITERS; i++) {
		while (!atomic_load(&w[i].ready)) {
			it_sleep_ms(1);
		}
	}
	for (unsigned i = 0; i < IT_WAITERS; i++) {
		/* Arrival order is the order the server refused them in:
		 * one Lock at a time, far enough apart. */
		atomic_store(&turn, (int) i);
		it_sleep_ms(200);
		if (i == 1) {
			/* A waiter between 1 and 2 that leaves. */
			it_raw_lock(&ghost, key, 30000);
			it_sleep_ms(200);
		}
	}
	ds_sp_close(&ghost);
	it_sleep_ms(300);
	it_unlock(it_c, key, token);
	for (unsigned i = 0; i < IT_WAITERS; i++) {
		pthread_join(th[i], NULL);
	}
	for (unsigned i = 0; i < IT_WAITERS; i++) {
		if (w[i].rv != NRPC_OK) {
			fail_msg("waiter %u: %s", i, w[i].reason);
		}
		assert_false(w[i].overlap);
		assert_int_equal(w[i].granted_as, i + 1);
	}
	/* The ghost's grant would have held the lock for 30 s: everybody
	 * was served, so it was skipped. */
	nrpc_status_fini(&st);
}

static void
test_lock_wait_limit_and_expiry(void **state)
{
	const char *key = "waits/two";
	char token[33];
	char t2[33];
	nrpc_status st = {0};
	int64_t t0;

	(void) state;
	assert_int_equal(it_lock(it_c, key, "holder", 30000, 0, token, &st),
	    NRPC_OK);
	t0 = it_now_ms();
	assert_int_not_equal(it_lock(it_c, key, "late", 30000, 800, t2, &st),
	    NRPC_OK);
	assert_string_equal(st.reason, "LOCKED");
	assert_true(it_now_ms() - t0 >= 700);
	nrpc_status_fini(&st);
	it_unlock(it_c, key, token);

	/* A lease that runs out goes to the waiter behind it. */
	assert_int_equal(it_lock(it_c, key, "short", 1000, 0, token, &st),
	    NRPC_OK);
	assert_int_equal(it_lock(it_c, key, "next", 30000, 20000, t2, &st),
	    NRPC_OK);
	it_unlock(it_c, key, t2);
	nrpc_status_fini(&st);
}

/* --- compaction (its own daemon) --- */

static void
test_compacted_cursor(void **state)
{
	ds_daemon d;
	datasync_client *c = NULL;
	nrpc_status st = {0};
	const char *extra[] = {"--watch-retain", "5", "--watch-retain-time", "0",
	    NULL};
	Datasync__V1__WatchResponse *resp = NULL;
	Datasync__V1__WatchResponse *detail = NULL;
	int64_t until;
	nrpc_code rv;

	(void) state;
	assert_int_equal(ds_daemon_start(&d, false, extra), 0);
	assert_int_equal(datasync_connect((const char *const[]){d.ipc_url}, 1,
	                     30000, "it-compact", &c, &st), NRPC_OK);
	for (int i = 0; i < 20; i++) {
		Datasync__V1__UpdateRequest req =
		    DATASYNC__V1__UPDATE_REQUEST__INIT;
		Datasync__V1__Precondition pre = DATASYNC__V1__PRECONDITION__INIT;
		Datasync__V1__UpdateResponse *u = NULL;

		req.key = (char *) "cmp/k";
		req.value.data = (uint8_t *) "x";
		req.value.len = 1;
		pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_UNCONDITIONAL;
		pre.unconditional = true;
		req.precondition = &pre;
		assert_int_equal(datasync_v1_data_sync_update(datasync_rpc(c), &req,
		                     &u, NULL, &st), NRPC_OK);
		datasync__v1__update_response__free_unpacked(u, NULL);
	}
	/* Compaction runs about once a second. */
	until = it_now_ms() + 10000;
	for (;;) {
		rv = it_watch(c, "cmp/k", NULL, 1, 10, false, &resp, &st);
		if (rv != NRPC_OK || it_now_ms() > until) {
			break;
		}
		datasync__v1__watch_response__free_unpacked(resp, NULL);
		resp = NULL;
		it_sleep_ms(100);
	}
	assert_int_equal(rv, NRPC_OUT_OF_RANGE);
	assert_string_equal(st.reason, "REVISION_COMPACTED");
	assert_string_equal(st.detail_type, "datasync.v1.WatchResponse");
	detail = datasync__v1__watch_response__unpack(NULL, st.detail_len,
	    st.detail);
	assert_non_null(detail);
	assert_true(detail->compact_revision > 1);
	assert_true(detail->compact_revision >= 20 - 5);
	nrpc_status_fini(&st);
	/* From compact_revision the log serves again. */
	assert_int_equal(it_watch(c, "cmp/k", NULL, detail->compact_revision, 10,
	                     false, &resp, &st), NRPC_OK);
	assert_true(resp->n_events > 0);
	assert_int_equal(resp->events[0]->revision, detail->compact_revision + 1);
	datasync__v1__watch_response__free_unpacked(resp, NULL);
	datasync__v1__watch_response__free_unpacked(detail, NULL);
	datasync_close(c);
	assert_int_equal(ds_daemon_stop(&d), 0);
	ds_daemon_fini(&d);
}

/* An empty store's List says revision 0; a write lands before the
 * client watches. after_revision 0 must be that cursor, not "from now",
 * or the write is never seen; from_now is asked for explicitly. */
static void
test_after_zero_is_a_cursor(void **state)
{
	ds_daemon d;
	datasync_client *c = NULL;
	nrpc_status st = {0};
	Datasync__V1__WatchResponse *resp = NULL;
	Datasync__V1__WatchRequest req = DATASYNC__V1__WATCH_REQUEST__INIT;
	uint64_t rev;

	(void) state;
	assert_int_equal(ds_daemon_start(&d, false, NULL), 0);
	assert_int_equal(datasync_connect((const char *const[]){d.ipc_url}, 1,
	                     30000, "it-zero", &c, &st), NRPC_OK);
	assert_int_equal(it_watch_now(c, "", 1, &resp, &st), NRPC_OK);
	assert_int_equal(resp->n_events, 0);
	assert_int_equal(resp->revision, 0); /* an empty store */
	datasync__v1__watch_response__free_unpacked(resp, NULL);
	{
		datasync_client *keep = it_c;

		it_c = c; /* it_put writes through it_c */
		rev = it_put("zero/first", "v", NULL);
		it_c = keep;
	}
	assert_int_equal(rev, 1);
	assert_int_equal(it_watch(c, NULL, "", 0, 1000, false, &resp, &st),
	    NRPC_OK);
	assert_int_equal(resp->n_events, 1);
	assert_string_equal(resp->events[0]->record->key, "zero/first");
	assert_int_equal(resp->events[0]->revision, 1);
	datasync__v1__watch_response__free_unpacked(resp, NULL);
	/* From now: the write is history. */
	assert_int_equal(it_watch_now(c, "", 1, &resp, &st), NRPC_OK);
	assert_int_equal(resp->n_events, 0);
	assert_int_equal(resp->revision, 1);
	datasync__v1__watch_response__free_unpacked(resp, NULL);
	/* Both at once is a mistake, named. */
	req.prefix = (char *) "";
	req.from_now = true;
	req.after_revision = 1;
	resp = NULL;
	assert_int_equal(datasync_v1_data_sync_watch(datasync_rpc(c), &req,
	                     &resp, NULL, &st), NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.field, "from_now");
	assert_null(resp);
	nrpc_status_fini(&st);
	datasync_close(c);
	assert_int_equal(ds_daemon_stop(&d), 0);
	ds_daemon_fini(&d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_watch_rejects_bad_requests),
	    cmocka_unit_test(test_after_zero_is_a_cursor),
	    cmocka_unit_test(test_watch_parks_until_a_change),
	    cmocka_unit_test(test_get_revision_is_a_cursor),
	    cmocka_unit_test(test_every_change_is_an_event),
	    cmocka_unit_test(test_lock_waiters_in_arrival_order),
	    cmocka_unit_test(test_lock_wait_limit_and_expiry),
	    cmocka_unit_test(test_every_acknowledged_write_is_seen_once),
	    cmocka_unit_test(test_compacted_cursor),
	};
	int rc = cmocka_run_group_tests(tests, it_setup, it_teardown);

	return rc + ds_daemon_failures();
}
