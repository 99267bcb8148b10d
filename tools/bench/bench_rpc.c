/*
 * bench_rpc.c - the load generator: the machines that drive datasync
 * ops through the async C client, and the raw nng echo client
 * (--baseline echo) on the same machinery.
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "bench.h"
#include "ds_alloc.h"

const char *
bench_key(const bench_run *r, size_t i)
{
	return r->keys + i * BENCH_KEY_STRIDE;
}

void
bench_count(atomic_uint_fast64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static uint64_t
bench_read(atomic_uint_fast64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

bool
bench_in_window(const bench_run *r, uint64_t now)
{
	return now >= r->t_begin_ns && now < r->t_end_ns;
}

/* bench_note_error keeps the first error's text for the report. */
static void
bench_note_error(bench_run *r, const char *what, const nrpc_status *st)
{
	if (atomic_flag_test_and_set(&r->err_claimed)) {
		return;
	}
	(void) snprintf(r->first_err, sizeof(r->first_err), "%s: %s: %s", what,
	    st->reason[0] != '\0' ? st->reason : nrpc_code_name(st->code),
	    st->message); /* truncation is fine */
}

static void
bench_note_text(bench_run *r, const char *what, const char *msg)
{
	if (atomic_flag_test_and_set(&r->err_claimed)) {
		return;
	}
	(void) snprintf(r->first_err, sizeof(r->first_err), "%s: %s", what,
	    msg); /* truncation is fine */
}

/* bench_machine_stop ends a machine: the last thing it does. */
static void
bench_machine_stop(bench_machine *m)
{
	bench_run *r = m->run;

	pthread_mutex_lock(&r->mtx);
	if (--r->active == 0) {
		pthread_cond_broadcast(&r->cv);
	}
	pthread_mutex_unlock(&r->mtx);
}

static void bench_begin(bench_machine *m);

/* bench_finish ends the current op and starts the next. */
static void
bench_finish(bench_machine *m, bool ok, const char *what,
    const nrpc_status *st)
{
	bench_run *r = m->run;
	uint64_t now = bench_now_ns();

	bench_count(&m->completed);
	if (!ok) {
		bench_count(&m->errors);
		if (st != NULL) {
			bench_note_error(r, what, st);
		}
	} else if (bench_in_window(r, now)) {
		bench_count(&m->ops);
		bench_hist_record(m->hist, now - m->op_start_ns);
	}
	bench_begin(m);
}

/* bench_conflict counts a conflict; true when the op may retry. */
static bool
bench_conflict(bench_machine *m)
{
	uint64_t now = bench_now_ns();

	if (bench_in_window(m->run, now)) {
		bench_count(&m->conflicts);
	}
	if (now >= m->run->t_end_ns || atomic_load(&m->run->abort)) {
		bench_count(&m->abandoned);
		return false;
	}
	if (bench_in_window(m->run, now)) {
		bench_count(&m->retries);
	}
	return true;
}

/* --- datasync ops --- */

static void bench_issue(bench_machine *m);

/* bench_cache_version stores a version seen in a reply. Concurrent
 * machines may race on a key; the cache only saves round trips, so a
 * stale entry costs a conflict, never correctness. The hot key keeps the
 * highest version seen, so a slow reply does not move it back. */
static void
bench_cache_version(bench_run *r, size_t key, uint64_t v)
{
	if (key == r->hot) {
		uint64_t cur = atomic_load(&r->versions[key]);

		while (cur < v &&
		    !atomic_compare_exchange_weak(&r->versions[key], &cur, v)) {
		}
		return;
	}
	atomic_store_explicit(&r->versions[key], v, memory_order_relaxed);
}

/* bench_conflict_version reads the current version a VERSION_CONFLICT
 * or LOCKED status carries: 0 when the record is absent or deleted.
 * False when the status carries no record. */
static bool
bench_conflict_version(const nrpc_status *st, uint64_t *out)
{
	Datasync__V1__Record *rec = NULL;

	if (datasync_status_record(st, &rec) != NRPC_OK) {
		return false;
	}
	*out = rec->deleted ? 0 : rec->version;
	datasync__v1__record__free_unpacked(rec, NULL);
	return true;
}

static bool
bench_is_conflict(const nrpc_status *st)
{
	return st->code == NRPC_ABORTED &&
	    strcmp(st->reason, "VERSION_CONFLICT") == 0;
}

/* bench_outcome_unknown: a write that failed this way may still have
 * been applied (the reply, not the request, was lost). */
static bool
bench_outcome_unknown(const nrpc_status *st)
{
	return st->code == NRPC_DEADLINE_EXCEEDED ||
	    st->code == NRPC_UNAVAILABLE || st->code == NRPC_CANCELLED;
}

static void
bench_on_get(void *arg, Datasync__V1__GetResponse *resp,
    const nrpc_status *st)
{
	bench_machine *m = arg;

	if (resp != NULL) {
		datasync__v1__get_response__free_unpacked(resp, NULL);
	}
	bench_finish(m, st->code == NRPC_OK, "Get", st);
}

static void
bench_on_preload(bench_machine *m, Datasync__V1__UpdateResponse *resp,
    const nrpc_status *st)
{
	bench_run *r = m->run;
	uint64_t v;

	bench_count(&m->completed);
	if (st->code == NRPC_OK && resp->record != NULL) {
		bench_cache_version(r, m->key, resp->record->version);
	} else if ((bench_is_conflict(st) ||
	    strcmp(st->reason, "LOCKED") == 0) &&
	    bench_conflict_version(st, &v)) {
		/* It exists already (an earlier run): learn its version. */
		bench_cache_version(r, m->key, v);
	} else {
		bench_count(&m->errors);
		bench_note_error(r, "preload", st);
		atomic_store(&r->abort, true);
	}
	bench_begin(m);
}

static void
bench_on_update(void *arg, Datasync__V1__UpdateResponse *resp,
    const nrpc_status *st)
{
	bench_machine *m = arg;
	bench_run *r = m->run;
	uint64_t v;

	if (m->step == BENCH_STEP_PRELOAD) {
		bench_on_preload(m, resp, st);
		goto out;
	}
	if (st->code == NRPC_OK) {
		bench_count(&m->succeeded);
		if (resp->record != NULL) {
			bench_cache_version(r, m->key, resp->record->version);
		}
		if (m->step == BENCH_STEP_LOCKED_UPDATE) {
			m->step = BENCH_STEP_UNLOCK;
			bench_issue(m);
		} else {
			bench_finish(m, true, NULL, NULL);
		}
		goto out;
	}
	if (bench_outcome_unknown(st)) {
		bench_count(&m->unknown);
	}
	if (m->step == BENCH_STEP_LOCKED_UPDATE) {
		/* Even a conflict is an error under the lock: nobody else
		 * could write. The lease is released all the same. */
		bench_note_error(r, "Update under lock", st);
		m->op_failed = true;
		m->step = BENCH_STEP_UNLOCK;
		bench_issue(m);
		goto out;
	}
	if (bench_is_conflict(st) && bench_conflict_version(st, &v)) {
		bench_cache_version(r, m->key, v);
		if (bench_conflict(m)) {
			m->if_version = v;
			bench_issue(m);
		} else {
			bench_begin(m); /* the run is over: it stops */
		}
		goto out;
	}
	bench_finish(m, false, "Update", st);
out:
	if (resp != NULL) {
		datasync__v1__update_response__free_unpacked(resp, NULL);
	}
}

/* bench_lock_key picks a key of the machine's own share (keys i with
 * i % machines == id), so lock cycles of different machines do not
 * collide; with fewer keys than machines, any key. */
static size_t
bench_lock_key(bench_machine *m)
{
	bench_run *r = m->run;
	size_t n = r->n_machines;
	size_t share;

	if (r->n_keys < n) {
		return (size_t) (bench_rand(&m->rng) % r->n_keys);
	}
	share = (r->n_keys - m->id + n - 1) / n;
	return m->id + n * (size_t) (bench_rand(&m->rng) % share);
}

static void
bench_on_lock(void *arg, Datasync__V1__LockResponse *resp,
    const nrpc_status *st)
{
	bench_machine *m = arg;
	size_t len;

	if (st->code == NRPC_OK &&
	    (len = strlen(resp->lock_token)) < sizeof(m->token)) {
		memcpy(m->token, resp->lock_token, len + 1);
		m->if_version = resp->version;
		m->step = BENCH_STEP_LOCKED_UPDATE;
		bench_issue(m);
	} else if (st->code == NRPC_OK) {
		nrpc_status bad = {0};

		nrpc_status_set(&bad, NRPC_INTERNAL, "BENCH_TOKEN_TOO_LONG",
		    NULL, "lock token longer than %zu bytes", sizeof(m->token) - 1);
		bench_finish(m, false, "Lock", &bad);
	} else if (strcmp(st->reason, "LOCKED") == 0) {
		if (bench_conflict(m)) {
			m->key = bench_lock_key(m);
			bench_issue(m);
		} else {
			bench_begin(m);
		}
	} else {
		bench_finish(m, false, "Lock", st);
	}
	if (resp != NULL) {
		datasync__v1__lock_response__free_unpacked(resp, NULL);
	}
}

static void
bench_on_unlock(void *arg, Datasync__V1__UnlockResponse *resp,
    const nrpc_status *st)
{
	bench_machine *m = arg;

	if (resp != NULL) {
		datasync__v1__unlock_response__free_unpacked(resp, NULL);
	}
	if (st->code != NRPC_OK) {
		bench_finish(m, false, "Unlock", st);
	} else {
		/* A failed update was noted already; count it once, here. */
		bench_finish(m, !m->op_failed, NULL, NULL);
	}
}

/* bench_issue sends the call of the machine's current step. When the
 * call cannot even start (the client is closing, out of memory) the
 * machine stops rather than spin. */
static void
bench_issue(bench_machine *m)
{
	bench_run *r = m->run;
	const char *key = bench_key(r, m->key);
	nrpc_status st = {0};
	nrpc_code rc = NRPC_INTERNAL;

	switch (m->step) {
	case BENCH_STEP_GET: {
		Datasync__V1__GetRequest req = DATASYNC__V1__GET_REQUEST__INIT;

		req.key = (char *) key;
		rc = datasync_v1_data_sync_get_async(r->rpc, &req, NULL,
		    bench_on_get, m, &st);
		break;
	}
	case BENCH_STEP_PRELOAD:
	case BENCH_STEP_UPDATE:
	case BENCH_STEP_LOCKED_UPDATE: {
		Datasync__V1__UpdateRequest req =
		    DATASYNC__V1__UPDATE_REQUEST__INIT;
		Datasync__V1__Precondition pre = DATASYNC__V1__PRECONDITION__INIT;

		req.key = (char *) key;
		req.value.data = r->value;
		req.value.len = r->o->value_bytes;
		req.content_type = BENCH_CONTENT_TYPE;
		req.precondition = &pre;
		if (m->step == BENCH_STEP_PRELOAD || m->if_version == 0) {
			pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_ABSENT;
			pre.if_absent = 1;
		} else {
			pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_VERSION;
			pre.if_version = m->if_version;
		}
		if (m->step == BENCH_STEP_LOCKED_UPDATE) {
			req.lock_token = m->token;
		}
		rc = datasync_v1_data_sync_update_async(r->rpc, &req, NULL,
		    bench_on_update, m, &st);
		break;
	}
	case BENCH_STEP_LOCK: {
		Datasync__V1__LockRequest req = DATASYNC__V1__LOCK_REQUEST__INIT;

		req.key = (char *) key;
		req.owner = BENCH_OWNER;
		req.ttl_ms = BENCH_LOCK_TTL_MS;
		rc = datasync_v1_data_sync_lock_async(r->rpc, &req, NULL,
		    bench_on_lock, m, &st);
		break;
	}
	case BENCH_STEP_UNLOCK: {
		Datasync__V1__UnlockRequest req =
		    DATASYNC__V1__UNLOCK_REQUEST__INIT;

		req.key = (char *) key;
		req.lock_token = m->token;
		rc = datasync_v1_data_sync_unlock_async(r->rpc, &req, NULL,
		    bench_on_unlock, m, &st);
		break;
	}
	}
	if (rc != NRPC_OK) {
		bench_count(&m->errors);
		bench_note_error(r, "cannot start a call", &st);
		nrpc_status_fini(&st);
		bench_machine_stop(m);
	}
}

static void bench_echo_begin(bench_machine *m);

/* bench_begin starts the machine's next op, or stops it. */
static void
bench_begin(bench_machine *m)
{
	bench_run *r = m->run;
	uint64_t now;

	if (atomic_load(&r->abort)) {
		bench_machine_stop(m);
		return;
	}
	if (r->preloading) {
		size_t k = atomic_fetch_add(&r->preload_next, 1);

		if (k >= r->preload_end) {
			bench_machine_stop(m);
			return;
		}
		m->key = k;
		m->step = BENCH_STEP_PRELOAD;
		bench_issue(m);
		return;
	}
	if (r->o->mode == BENCH_MODE_ECHO) {
		bench_echo_begin(m);
		return;
	}
	now = bench_now_ns();
	if (now >= r->t_end_ns) {
		bench_machine_stop(m);
		return;
	}
	m->op_start_ns = now;
	m->op_failed = false;
	switch (r->o->op) {
	case BENCH_OP_GET:
		m->key = (size_t) (bench_rand(&m->rng) % r->n_keys);
		m->step = BENCH_STEP_GET;
		break;
	case BENCH_OP_MIXED:
		m->key = (size_t) (bench_rand(&m->rng) % r->n_keys);
		if (bench_rand(&m->rng) % 10 != 0) {
			m->step = BENCH_STEP_GET;
			break;
		}
		m->if_version = atomic_load_explicit(&r->versions[m->key],
		    memory_order_relaxed);
		m->step = BENCH_STEP_UPDATE;
		break;
	case BENCH_OP_UPDATE:
		m->key = (size_t) (bench_rand(&m->rng) % r->n_keys);
		m->if_version = atomic_load_explicit(&r->versions[m->key],
		    memory_order_relaxed);
		m->step = BENCH_STEP_UPDATE;
		break;
	case BENCH_OP_UPDATE_HOT:
		m->key = r->hot;
		m->if_version = atomic_load(&r->versions[r->hot]);
		m->step = BENCH_STEP_UPDATE;
		break;
	case BENCH_OP_LOCK_CYCLE:
		m->key = bench_lock_key(m);
		m->step = BENCH_STEP_LOCK;
		break;
	}
	bench_issue(m);
}

/* --- echo client --- */

/* bench_echo_size is the size of the envelope of an Update carrying
 * value_bytes of value (key, precondition, content type, request id,
 * client name and deadline included): the echo sends that many bytes
 * each way, what an Update sends and about what a Get of that value
 * receives. */
static size_t
bench_echo_size(const bench_run *r)
{
	Datasync__V1__UpdateRequest req = DATASYNC__V1__UPDATE_REQUEST__INIT;
	Datasync__V1__Precondition pre = DATASYNC__V1__PRECONDITION__INIT;
	Nrpc__V1__Request env = NRPC__V1__REQUEST__INIT;

	req.key = (char *) bench_key(r, 0);
	req.value.data = r->value;
	req.value.len = r->o->value_bytes;
	req.content_type = BENCH_CONTENT_TYPE;
	pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_VERSION;
	pre.if_version = 1;
	req.precondition = &pre;
	env.method = (char *) datasync_v1_data_sync_methods
	    [DATASYNC_V1_DATA_SYNC_METHOD_UPDATE].full_name;
	/* get_packed_size reads only the length of a bytes field. */
	env.body.len = datasync__v1__update_request__get_packed_size(&req);
	env.body.data = r->value;
	env.timeout_ms = 10000;
	env.request_id = "0123456789abcdef0123456789abcdef";
	env.client_name = BENCH_OWNER;
	return nrpc__v1__request__get_packed_size(&env);
}

static void
bench_echo_begin(bench_machine *m)
{
	bench_run *r = m->run;
	nng_msg *msg;
	uint64_t now = bench_now_ns();
	int rv;

	if (now >= r->t_end_ns || atomic_load(&r->abort)) {
		bench_machine_stop(m);
		return;
	}
	m->op_start_ns = now;
	if ((rv = nng_msg_alloc(&msg, r->value_len)) != 0) {
		bench_count(&m->errors);
		bench_note_text(r, "echo", nng_strerror(rv));
		bench_machine_stop(m);
		return;
	}
	memcpy(nng_msg_body(msg), r->value, r->value_len);
	nng_aio_set_msg(m->aio, msg);
	m->echo_sending = true;
	nng_ctx_send(m->ctx, m->aio);
}

static void
bench_echo_cb(void *arg)
{
	bench_machine *m = arg;
	bench_run *r = m->run;
	int rv = nng_aio_result(m->aio);
	nng_msg *msg;
	uint64_t now;

	if (rv != 0) {
		if (m->echo_sending) {
			nng_msg_free(nng_aio_get_msg(m->aio));
			nng_aio_set_msg(m->aio, NULL);
		}
		bench_count(&m->completed);
		bench_count(&m->errors);
		bench_note_text(r, "echo", nng_strerror(rv));
		if (rv == NNG_ECLOSED) {
			bench_machine_stop(m);
			return;
		}
		bench_echo_begin(m);
		return;
	}
	if (m->echo_sending) {
		m->echo_sending = false;
		nng_ctx_recv(m->ctx, m->aio);
		return;
	}
	msg = nng_aio_get_msg(m->aio);
	nng_aio_set_msg(m->aio, NULL);
	now = bench_now_ns();
	bench_count(&m->completed);
	if (nng_msg_len(msg) != r->value_len) {
		bench_count(&m->errors);
		bench_note_text(r, "echo", "reply of the wrong size");
	} else if (bench_in_window(r, now)) {
		bench_count(&m->ops);
		bench_hist_record(m->hist, now - m->op_start_ns);
	}
	nng_msg_free(msg);
	bench_echo_begin(m);
}

/* --- driving a run --- */

void
bench_run_fini(bench_run *r)
{
	if (r->m != NULL) {
		for (unsigned i = 0; i < r->n_alloc; i++) {
			/* Every machine has stopped: no operation is pending. */
			if (r->m[i].aio != NULL) {
				nng_aio_free(r->m[i].aio);
			}
			ds_free(r->m[i].hist);
		}
	}
	if (r->o->mode == BENCH_MODE_ECHO && nng_socket_id(r->sock) > 0) {
		(void) nng_close(r->sock); /* ours; nothing to report */
	}
	datasync_close(r->ds);
	ds_free(r->m);
	ds_free(r->versions);
	ds_free(r->keys);
	ds_free(r->value);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mtx);
}

/* bench_run_init allocates the keys, the value and the machines. */
int
bench_run_init(bench_run *r, const bench_opts *o)
{
	pthread_condattr_t ca;

	memset(r, 0, sizeof(*r));
	r->o = o;
	pthread_mutex_init(&r->mtx, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cv, &ca);
	pthread_condattr_destroy(&ca);
	atomic_flag_clear(&r->err_claimed);
	r->n_keys = o->keys;
	r->hot = o->keys;
	r->n_machines = o->concurrency;
	r->n_alloc = o->concurrency;
	if (o->mode == BENCH_MODE_SERVICE &&
	    r->n_alloc < BENCH_PRELOAD_MIN_INFLIGHT) {
		r->n_alloc = BENCH_PRELOAD_MIN_INFLIGHT;
	}
	if ((r->value = ds_alloc(o->value_bytes)) == NULL ||
	    (r->keys = ds_calloc(r->n_keys + 1, BENCH_KEY_STRIDE)) == NULL ||
	    (r->versions = ds_calloc(r->n_keys + 1,
	    sizeof(*r->versions))) == NULL ||
	    (r->m = ds_calloc(r->n_alloc, sizeof(*r->m))) == NULL) {
		fprintf(stderr, "datasync bench: out of memory\n");
		return BENCH_EXIT_ERROR;
	}
	/* Printable, so values read well in the demo page and curl. */
	for (size_t i = 0; i < o->value_bytes; i++) {
		r->value[i] = (uint8_t) ('a' + i % 26);
	}
	for (size_t i = 0; i < r->n_keys; i++) {
		(void) snprintf(r->keys + i * BENCH_KEY_STRIDE,
		    BENCH_KEY_STRIDE, "%s%06zu", o->prefix, i); /* fits */
	}
	(void) snprintf(r->keys + r->hot * BENCH_KEY_STRIDE,
	    BENCH_KEY_STRIDE, "%shot", o->prefix); /* fits */
	for (unsigned i = 0; i < r->n_alloc; i++) {
		bench_machine *m = &r->m[i];

		m->run = r;
		m->id = i;
		m->rng = bench_seed(i);
		if ((m->hist = ds_calloc(1, sizeof(*m->hist))) == NULL) {
			fprintf(stderr, "datasync bench: out of memory\n");
			return BENCH_EXIT_ERROR;
		}
	}
	return BENCH_EXIT_OK;
}

static uint64_t
bench_sum(bench_run *r, size_t offset)
{
	uint64_t s = 0;

	for (unsigned i = 0; i < r->n_machines; i++) {
		s += bench_read((atomic_uint_fast64_t *) ((char *) &r->m[i] +
		    offset));
	}
	return s;
}

#define BENCH_SUM(r, field) \
	bench_sum((r), offsetof(bench_machine, field))

/* bench_drive starts n machines and waits for all of them to stop,
 * printing a progress line each second on stderr. */
static void
bench_drive(bench_run *r, unsigned n, const char *label)
{
	uint64_t t0 = bench_now_ns();
	uint64_t last_t = t0;
	uint64_t last_done = BENCH_SUM(r, completed);
	struct timespec ts;

	pthread_mutex_lock(&r->mtx);
	r->active = n;
	pthread_mutex_unlock(&r->mtx);
	for (unsigned i = 0; i < n; i++) {
		bench_begin(&r->m[i]);
	}
	(void) clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec++;
	pthread_mutex_lock(&r->mtx);
	while (r->active > 0) {
		uint64_t now;

		if (pthread_cond_timedwait(&r->cv, &r->mtx, &ts) != ETIMEDOUT) {
			continue;
		}
		ts.tv_sec++;
		pthread_mutex_unlock(&r->mtx);
		now = bench_now_ns();
		{
			uint64_t done = BENCH_SUM(r, completed);
			uint64_t ops = BENCH_SUM(r, ops);
			double rate = (double) (done - last_done) * 1e9 /
			    (double) (now - last_t);
			const char *phase = label != NULL ? label :
			    now < r->t_begin_ns ? "warmup" :
			    now < r->t_end_ns ? "measure" : "draining";
			double in_win = now > r->t_begin_ns && label == NULL ?
			    (double) ((now < r->t_end_ns ? now : r->t_end_ns) -
			    r->t_begin_ns) / 1e9 : 0.0;

			fprintf(stderr, "bench: %5.1fs %-8s %10.0f ops/s", (double)
			    (now - t0) / 1e9, phase, rate);
			if (in_win > 0.0) {
				fprintf(stderr, " (%.0f ops/s so far)",
				    (double) ops / in_win);
			}
			fprintf(stderr, ", %" PRIu64 " errors, %" PRIu64
			    " conflicts\n", BENCH_SUM(r, errors),
			    BENCH_SUM(r, conflicts));
			last_done = done;
			last_t = now;
		}
		pthread_mutex_lock(&r->mtx);
	}
	pthread_mutex_unlock(&r->mtx);
}

/* bench_window fixes the measured window from now. */
void
bench_window(bench_run *r)
{
	uint64_t now = bench_now_ns();

	r->t_begin_ns = now + (uint64_t) r->o->warmup_ms * 1000000u;
	r->t_end_ns = r->t_begin_ns + (uint64_t) r->o->duration_ms * 1000000u;
}

void
bench_collect(bench_run *r, bench_result *res, const char *op)
{
	memset(res, 0, sizeof(*res));
	(void) snprintf(res->op, sizeof(res->op), "%s", op); /* fits */
	res->url = r->o->url;
	res->concurrency = r->n_machines;
	res->seconds = (double) (r->t_end_ns - r->t_begin_ns) / 1e9;
	res->ops = BENCH_SUM(r, ops);
	res->errors = BENCH_SUM(r, errors);
	res->conflicts = BENCH_SUM(r, conflicts);
	res->retries = BENCH_SUM(r, retries);
	res->abandoned = BENCH_SUM(r, abandoned);
	for (unsigned i = 0; i < r->n_machines; i++) {
		bench_hist_merge(&res->hist, r->m[i].hist);
	}
}

/* bench_preload creates the keys the op uses (if_absent) or learns
 * the versions of those that exist. */
static int
bench_preload(bench_run *r)
{
	const bench_opts *o = r->o;
	size_t begin = o->op == BENCH_OP_UPDATE_HOT ? r->hot : 0;
	size_t end = o->op == BENCH_OP_UPDATE_HOT ? r->hot + 1 : r->n_keys;
	uint64_t t0 = bench_now_ns();

	/* Every allocated machine, at least a few dozen: 100,000 keys load
	 * in seconds even for a run at --concurrency 1. */
	r->preloading = true;
	atomic_store(&r->preload_next, begin);
	r->preload_end = end;
	bench_drive(r, r->n_alloc, "preload");
	r->preloading = false;
	if (atomic_load(&r->abort)) {
		fprintf(stderr, "datasync bench: preload failed: %s\n",
		    r->first_err);
		return BENCH_EXIT_ERROR;
	}
	fprintf(stderr, "bench: preloaded %zu keys in %.2f s\n", end - begin,
	    (double) (bench_now_ns() - t0) / 1e9);
	/* Preload calls are not benchmark ops. */
	for (unsigned i = 0; i < r->n_alloc; i++) {
		atomic_store(&r->m[i].completed, 0);
		atomic_store(&r->m[i].succeeded, 0);
		atomic_store(&r->m[i].errors, 0);
	}
	return BENCH_EXIT_OK;
}

/* bench_check_hot verifies no increment was lost: the hot key's
 * version moved by exactly the successful updates (plus, at most, those
 * whose outcome is unknown). It fills res's hot_ fields once the key
 * was read. */
static int
bench_check_hot(bench_run *r, uint64_t start, bool json, bench_result *res)
{
	Datasync__V1__GetRequest req = DATASYNC__V1__GET_REQUEST__INIT;
	Datasync__V1__GetResponse *resp = NULL;
	nrpc_status st = {0};
	uint64_t ok = BENCH_SUM(r, succeeded);
	uint64_t unknown = BENCH_SUM(r, unknown);
	uint64_t final;
	FILE *out = json ? stderr : stdout;
	int rc = BENCH_EXIT_OK;

	req.key = (char *) bench_key(r, r->hot);
	if (datasync_v1_data_sync_get(r->rpc, &req, &resp, NULL, &st) !=
	    NRPC_OK) {
		fprintf(stderr, "datasync bench: cannot read %s to check the "
		    "increments: %s: %s\n", req.key, st.reason, st.message);
		nrpc_status_fini(&st);
		return BENCH_EXIT_ERROR;
	}
	final = resp->record != NULL ? resp->record->version : 0;
	datasync__v1__get_response__free_unpacked(resp, NULL);
	res->hot_checked = true;
	res->hot_start = start;
	res->hot_final = final;
	res->hot_acked = ok;
	res->hot_unknown = unknown;
	if (final < start + ok) {
		fprintf(stderr, "datasync bench: LOST INCREMENTS on %s: start "
		    "version %" PRIu64 " + %" PRIu64 " successful increments = %"
		    PRIu64 ", but the version is %" PRIu64 "\n", req.key, start, ok,
		    start + ok, final);
		rc = BENCH_EXIT_ERROR;
	} else if (final > start + ok + unknown) {
		fprintf(stderr, "datasync bench: EXTRA INCREMENTS on %s: start "
		    "version %" PRIu64 " + %" PRIu64 " successful (+ %" PRIu64
		    " unknown) increments, but the version is %" PRIu64 "\n",
		    req.key, start, ok, unknown, final);
		rc = BENCH_EXIT_ERROR;
	} else {
		fprintf(out, "update-hot: %s went from version %" PRIu64 " to %"
		    PRIu64 ": %" PRIu64 " successful increments%s, none lost\n",
		    req.key, start, final, ok, unknown > 0 ?
		    " (+ some of unknown outcome)" : "");
	}
	return rc;
}

int
bench_service(const bench_opts *o)
{
	bench_run r;
	bench_result *res = NULL;
	nrpc_status st = {0};
	const char *urls[1] = {o->url};
	uint64_t hot_start = 0;
	int hot_rc = BENCH_EXIT_OK;
	int rc;

	if ((rc = bench_run_init(&r, o)) != BENCH_EXIT_OK) {
		goto out;
	}
	{
		datasync_options dop;

		datasync_options_default(&dop);
		dop.urls = urls;
		dop.n_urls = 1;
		dop.timeout_ms = o->timeout_ms;
		dop.client_name = BENCH_OWNER;
		dop.token = o->token;
		dop.tls_ca_file = o->tls_ca;
		if (datasync_connect_opts(&dop, &r.ds, &st) != NRPC_OK) {
			fprintf(stderr, "datasync bench: cannot connect to %s: "
			    "%s\n", o->url, st.message);
			rc = BENCH_EXIT_ERROR;
			goto out;
		}
	}
	r.rpc = datasync_rpc(r.ds);
	if (o->preload || o->preload_only) {
		if ((rc = bench_preload(&r)) != BENCH_EXIT_OK) {
			goto out;
		}
		if (o->preload_only) {
			goto out;
		}
	}
	hot_start = atomic_load(&r.versions[r.hot]);
	bench_window(&r);
	bench_drive(&r, r.n_machines, NULL);
	if ((res = ds_calloc(1, sizeof(*res))) == NULL) {
		fprintf(stderr, "datasync bench: out of memory\n");
		rc = BENCH_EXIT_ERROR;
		goto out;
	}
	bench_collect(&r, res, bench_op_names[o->op]);
	if (r.first_err[0] != '\0') {
		fprintf(stderr, "bench: first error: %s\n", r.first_err);
	}
	/* The check first, so that the JSON result carries its figures. */
	if (o->op == BENCH_OP_UPDATE_HOT && o->preload) {
		hot_rc = bench_check_hot(&r, hot_start, o->json, res);
	}
	rc = bench_report(o, res);
	if (hot_rc != BENCH_EXIT_OK) {
		rc = BENCH_EXIT_ERROR;
	}
out:
	ds_free(res);
	nrpc_status_fini(&st);
	bench_run_fini(&r);
	return rc;
}

int
bench_echo(const bench_opts *o)
{
	bench_run r;
	bench_result *res = NULL;
	size_t len;
	uint8_t *msg;
	int rv;
	int rc;

	if ((rc = bench_run_init(&r, o)) != BENCH_EXIT_OK) {
		goto out;
	}
	len = bench_echo_size(&r);
	if ((msg = ds_alloc(len)) == NULL) {
		fprintf(stderr, "datasync bench: out of memory\n");
		rc = BENCH_EXIT_ERROR;
		goto out;
	}
	for (size_t i = 0; i < len; i++) {
		msg[i] = (uint8_t) ('a' + i % 26);
	}
	ds_free(r.value);
	r.value = msg;
	r.value_len = len;
	rc = BENCH_EXIT_ERROR;
	if ((rv = nng_req0_open(&r.sock)) != 0 ||
	    (rv = nng_socket_set_size(r.sock, NNG_OPT_RECVMAXSZ,
	    len + 1024)) != 0) {
		fprintf(stderr, "datasync bench: cannot open a REQ socket: %s\n",
		    nng_strerror(rv));
		goto out;
	}
	if ((rv = nng_dial(r.sock, o->url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
		fprintf(stderr, "datasync bench: cannot dial %s: %s\n", o->url,
		    nng_strerror(rv));
		goto out;
	}
	for (unsigned i = 0; i < r.n_machines; i++) {
		bench_machine *m = &r.m[i];

		if ((rv = nng_aio_alloc(&m->aio, bench_echo_cb, m)) != 0 ||
		    (rv = nng_ctx_open(&m->ctx, r.sock)) != 0) {
			fprintf(stderr, "datasync bench: cannot set up request %u: "
			    "%s\n", i, nng_strerror(rv));
			goto out;
		}
		nng_aio_set_timeout(m->aio, (nng_duration) o->timeout_ms);
	}
	if (!o->json) {
		fprintf(stderr, "bench: echo of %zu-byte messages (an Update "
		    "envelope with a %zu-byte value)\n", len, o->value_bytes);
	}
	bench_window(&r);
	bench_drive(&r, r.n_machines, NULL);
	if ((res = ds_calloc(1, sizeof(*res))) == NULL) {
		fprintf(stderr, "datasync bench: out of memory\n");
		goto out;
	}
	bench_collect(&r, res, "echo");
	if (r.first_err[0] != '\0') {
		fprintf(stderr, "bench: first error: %s\n", r.first_err);
	}
	rc = bench_report(o, res);
out:
	ds_free(res);
	bench_run_fini(&r);
	return rc;
}
