/*
 * it_rules_test.c - every rule of DESIGN §4, end to end: a real datasyncd
 * over ipc://, called through libdatasync's generated typed stubs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "datasync.h"
#include "ds_daemon.h"
#include "ds_rpc.h"

static ds_daemon it_d;
static datasync_client *it_c;

/* The daemon keeps 4 versions so compaction is quick to reach. */
static int
it_setup(void **state)
{
	static const char *const extra[] = {"--history", "4", NULL};
	nrpc_status st = {0};

	(void) state;
	if (ds_daemon_start(&it_d, false, extra) != 0) {
		return -1;
	}
	if (datasync_connect((const char *const[]){it_d.ipc_url}, 1, 5000,
	        "it-rules", &it_c, &st) != NRPC_OK) {
		fprintf(stderr, "connect: %s\n", st.message);
		return -1;
	}
	return 0;
}

static int
it_teardown(void **state)
{
	int rc;

	(void) state;
	datasync_close(it_c);
	/* SIGTERM must end in a clean exit 0 (DESIGN §7). */
	rc = ds_daemon_stop(&it_d);
	ds_daemon_fini(&it_d);
	if (rc != 0) {
		fprintf(stderr, "datasyncd exited with %d on SIGTERM\n", rc);
		return -1;
	}
	return 0;
}

/* --- helpers --- */

typedef struct it_pre {
	int kind; /* 0 none, 1 if_version, 2 if_absent, 3 if_exists, 4 force */
	uint64_t version;
} it_pre;

#define PRE_NONE ((it_pre){0, 0})
#define PRE_V(n) ((it_pre){1, (n)})
#define PRE_ABSENT ((it_pre){2, 0})
#define PRE_EXISTS ((it_pre){3, 0})
#define PRE_FORCE ((it_pre){4, 0})

static void
it_fill_pre(Datasync__V1__Precondition *p, it_pre pre)
{
	datasync__v1__precondition__init(p);
	switch (pre.kind) {
	case 1:
		p->kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_VERSION;
		p->if_version = pre.version;
		break;
	case 2:
		p->kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_ABSENT;
		p->if_absent = 1;
		break;
	case 3:
		p->kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_EXISTS;
		p->if_exists = 1;
		break;
	case 4:
		p->kind_case = DATASYNC__V1__PRECONDITION__KIND_UNCONDITIONAL;
		p->unconditional = 1;
		break;
	default:
		break;
	}
}

/* it_put writes value to key; on success *version is the new version.
 * Returns the code; st keeps the status (caller finishes it). */
static nrpc_code
it_put_full(const char *key, const void *value, size_t len, it_pre pre,
    const char *token, const char *request_id, uint64_t *version,
    bool *replayed, nrpc_status *st)
{
	Datasync__V1__UpdateRequest req = DATASYNC__V1__UPDATE_REQUEST__INIT;
	Datasync__V1__Precondition p;
	Datasync__V1__UpdateResponse *resp = NULL;
	nrpc_call_opts o = {0};
	nrpc_code rv;

	it_fill_pre(&p, pre);
	req.key = (char *) key;
	req.value.data = (uint8_t *) value;
	req.value.len = len;
	req.content_type = "text/plain";
	if (pre.kind != 0) {
		req.precondition = &p;
	}
	req.lock_token = (char *) (token ? token : "");
	req.author = "alice";
	o.request_id = request_id;
	rv = datasync_v1_data_sync_update(datasync_rpc(it_c), &req, &resp, &o,
	    st);
	if (rv == NRPC_OK) {
		assert_non_null(resp->record);
		if (version != NULL) {
			*version = resp->record->version;
		}
		if (replayed != NULL) {
			*replayed = resp->replayed;
		}
		datasync__v1__update_response__free_unpacked(resp, NULL);
	}
	return rv;
}

static nrpc_code
it_put(const char *key, const char *value, it_pre pre, const char *token,
    uint64_t *version, nrpc_status *st)
{
	return it_put_full(key, value, strlen(value), pre, token, NULL, version,
	    NULL, st);
}

static nrpc_code
it_get(const char *key, uint64_t version, Datasync__V1__Record **out,
    nrpc_status *st)
{
	Datasync__V1__GetRequest req = DATASYNC__V1__GET_REQUEST__INIT;
	Datasync__V1__GetResponse *resp = NULL;
	nrpc_code rv;

	req.key = (char *) key;
	req.version = version;
	rv = datasync_v1_data_sync_get(datasync_rpc(it_c), &req, &resp, NULL, st);
	if (rv == NRPC_OK) {
		*out = resp->record;
		resp->record = NULL;
		datasync__v1__get_response__free_unpacked(resp, NULL);
	}
	return rv;
}

static nrpc_code
it_del(const char *key, it_pre pre, const char *token, uint64_t *version,
    nrpc_status *st)
{
	Datasync__V1__DeleteRequest req = DATASYNC__V1__DELETE_REQUEST__INIT;
	Datasync__V1__Precondition p;
	Datasync__V1__DeleteResponse *resp = NULL;
	nrpc_code rv;

	it_fill_pre(&p, pre);
	req.key = (char *) key;
	req.precondition = &p;
	req.lock_token = (char *) (token ? token : "");
	rv = datasync_v1_data_sync_delete(datasync_rpc(it_c), &req, &resp, NULL,
	    st);
	if (rv == NRPC_OK) {
		if (version != NULL) {
			*version = resp->version;
		}
		datasync__v1__delete_response__free_unpacked(resp, NULL);
	}
	return rv;
}

/* it_lock returns the code; on success *token (33 bytes) and *fence. */
static nrpc_code
it_lock(const char *key, const char *owner, int64_t ttl_ms,
    const char *renew, char *token, uint64_t *fence, nrpc_status *st)
{
	Datasync__V1__LockRequest req = DATASYNC__V1__LOCK_REQUEST__INIT;
	Datasync__V1__LockResponse *resp = NULL;
	nrpc_code rv;

	req.key = (char *) key;
	req.owner = (char *) owner;
	req.ttl_ms = ttl_ms;
	req.lock_token = (char *) (renew ? renew : "");
	rv = datasync_v1_data_sync_lock(datasync_rpc(it_c), &req, &resp, NULL,
	    st);
	if (rv == NRPC_OK) {
		assert_int_equal(strlen(resp->lock_token), 32);
		if (token != NULL) {
			memcpy(token, resp->lock_token, 33);
		}
		assert_non_null(resp->lock);
		if (fence != NULL) {
			*fence = resp->lock->fencing_token;
		}
		datasync__v1__lock_response__free_unpacked(resp, NULL);
	}
	return rv;
}

static nrpc_code
it_unlock(const char *key, const char *token, nrpc_status *st)
{
	Datasync__V1__UnlockRequest req = DATASYNC__V1__UNLOCK_REQUEST__INIT;
	Datasync__V1__UnlockResponse *resp = NULL;
	nrpc_code rv;

	req.key = (char *) key;
	req.lock_token = (char *) token;
	rv = datasync_v1_data_sync_unlock(datasync_rpc(it_c), &req, &resp, NULL,
	    st);
	if (rv == NRPC_OK) {
		datasync__v1__unlock_response__free_unpacked(resp, NULL);
	}
	return rv;
}

#define assert_status(st, code_, reason_)                                 \
	do {                                                                  \
		if ((st)->code != (code_) ||                                      \
		    strcmp((st)->reason, (reason_)) != 0) {                       \
			fail_msg("expected %s/%s, got %s/%s: %s",                     \
			    nrpc_code_name(code_), reason_,                           \
			    nrpc_code_name((st)->code), (st)->reason,                 \
			    (st)->message);                                           \
		}                                                                 \
	} while (0)

static void
it_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* --- rule 1: a precondition on every write --- */

static void
test_update_without_precondition_is_refused(void **state)
{
	nrpc_status st = {0};

	(void) state;
	assert_int_equal(it_put("r1/none", "x", PRE_NONE, NULL, NULL, &st),
	    NRPC_FAILED_PRECONDITION);
	assert_status(&st, NRPC_FAILED_PRECONDITION, "PRECONDITION_REQUIRED");
	nrpc_status_fini(&st);
	assert_int_equal(it_del("r1/none", PRE_NONE, NULL, NULL, &st),
	    NRPC_FAILED_PRECONDITION);
	assert_status(&st, NRPC_FAILED_PRECONDITION, "PRECONDITION_REQUIRED");
	nrpc_status_fini(&st);
}

/* it_update_reply sends an Update of value under request_id (NULL: the
 * envelope's fresh one) and returns its reply (caller frees it). */
static Datasync__V1__UpdateResponse *
it_update_reply(const char *key, const char *value, it_pre pre,
    bool return_value, const char *request_id)
{
	Datasync__V1__UpdateRequest req = DATASYNC__V1__UPDATE_REQUEST__INIT;
	Datasync__V1__Precondition p;
	Datasync__V1__UpdateResponse *resp = NULL;
	nrpc_call_opts o = {0};
	nrpc_status st = {0};

	it_fill_pre(&p, pre);
	req.key = (char *) key;
	req.value.data = (uint8_t *) value;
	req.value.len = strlen(value);
	req.precondition = &p;
	req.return_value = return_value;
	o.request_id = request_id;
	assert_int_equal(datasync_v1_data_sync_update(datasync_rpc(it_c), &req,
	                     &resp, &o, &st),
	    NRPC_OK);
	assert_non_null(resp->record);
	nrpc_status_fini(&st);
	return resp;
}

static void
test_update_reply_carries_the_value_only_when_asked(void **state)
{
	Datasync__V1__UpdateResponse *r;
	Datasync__V1__Record *got = NULL;
	nrpc_status st = {0};

	(void) state;
	/* By default: the record as written, without the value. */
	r = it_update_reply("rv/plain", "written", PRE_ABSENT, false, NULL);
	assert_int_equal(r->record->version, 1);
	assert_string_equal(r->record->key, "rv/plain");
	assert_true(r->record->revision > 0);
	assert_int_equal(r->record->value.len, 0);
	datasync__v1__update_response__free_unpacked(r, NULL);
	/* The value was stored all the same. */
	assert_int_equal(it_get("rv/plain", 0, &got, &st), NRPC_OK);
	assert_int_equal(got->value.len, 7);
	assert_memory_equal(got->value.data, "written", 7);
	datasync__v1__record__free_unpacked(got, NULL);

	/* Asked for: the value written, on the write and on its replay. */
	r = it_update_reply("rv/plain", "second", PRE_V(1), true, "rv-1");
	assert_int_equal(r->record->version, 2);
	assert_false(r->replayed);
	assert_int_equal(r->record->value.len, 6);
	assert_memory_equal(r->record->value.data, "second", 6);
	datasync__v1__update_response__free_unpacked(r, NULL);
	r = it_update_reply("rv/plain", "second", PRE_V(1), true, "rv-1");
	assert_true(r->replayed);
	assert_int_equal(r->record->version, 2);
	assert_int_equal(r->record->value.len, 6);
	assert_memory_equal(r->record->value.data, "second", 6);
	datasync__v1__update_response__free_unpacked(r, NULL);
	/* The same replay without the flag: same outcome, no value. */
	r = it_update_reply("rv/plain", "second", PRE_V(1), false, "rv-1");
	assert_true(r->replayed);
	assert_int_equal(r->record->version, 2);
	assert_int_equal(r->record->value.len, 0);
	datasync__v1__update_response__free_unpacked(r, NULL);
	nrpc_status_fini(&st);
}

static void
test_update_if_absent_creates_version_one(void **state)
{
	nrpc_status st = {0};
	uint64_t v = 0;
	Datasync__V1__Record *r = NULL;

	(void) state;
	assert_int_equal(it_put("r1/new", "hello", PRE_ABSENT, NULL, &v, &st),
	    NRPC_OK);
	assert_int_equal(v, 1);
	assert_int_equal(it_get("r1/new", 0, &r, &st), NRPC_OK);
	assert_int_equal(r->value.len, 5);
	assert_memory_equal(r->value.data, "hello", 5);
	assert_string_equal(r->content_type, "text/plain");
	assert_string_equal(r->updated_by, "alice");
	assert_int_equal(r->version, 1);
	assert_true(r->revision > 0);
	assert_true(r->created_at_ms > 0);
	datasync__v1__record__free_unpacked(r, NULL);
}

/* --- rule 2: conflicts carry the current record --- */

static void
test_if_absent_on_existing_record_is_conflict(void **state)
{
	nrpc_status st = {0};

	(void) state;
	assert_int_equal(it_put("r2/exists", "a", PRE_ABSENT, NULL, NULL, &st),
	    NRPC_OK);
	assert_int_equal(it_put("r2/exists", "b", PRE_ABSENT, NULL, NULL, &st),
	    NRPC_ABORTED);
	assert_status(&st, NRPC_ABORTED, "VERSION_CONFLICT");
	nrpc_status_fini(&st);
}

static void
test_stale_if_version_gets_conflict_with_current_record(void **state)
{
	nrpc_status st = {0};
	uint64_t v = 0;
	Datasync__V1__Record *cur = NULL;

	(void) state;
	assert_int_equal(it_put("r2/stale", "one", PRE_ABSENT, NULL, &v, &st),
	    NRPC_OK);
	assert_int_equal(it_put("r2/stale", "two", PRE_V(1), NULL, &v, &st),
	    NRPC_OK);
	assert_int_equal(v, 2);
	/* A writer that read version 1 is late. */
	assert_int_equal(it_put("r2/stale", "late", PRE_V(1), NULL, NULL, &st),
	    NRPC_ABORTED);
	assert_status(&st, NRPC_ABORTED, "VERSION_CONFLICT");
	assert_int_equal(datasync_status_record(&st, &cur), NRPC_OK);
	assert_int_equal(cur->version, 2);
	assert_int_equal(cur->value.len, 3);
	assert_memory_equal(cur->value.data, "two", 3);
	assert_string_equal(cur->updated_by, "alice");
	assert_true(cur->updated_at_ms > 0);
	datasync__v1__record__free_unpacked(cur, NULL);
	nrpc_status_fini(&st);
	/* "Overwrite" is itself a CAS against the version the conflict
	 * showed. */
	assert_int_equal(it_put("r2/stale", "mine", PRE_V(2), NULL, &v, &st),
	    NRPC_OK);
	assert_int_equal(v, 3);
}

static void
test_if_exists_needs_a_live_record(void **state)
{
	nrpc_status st = {0};
	uint64_t v = 0;

	(void) state;
	assert_int_equal(it_put("r2/ifexists", "x", PRE_EXISTS, NULL, NULL, &st),
	    NRPC_ABORTED);
	assert_status(&st, NRPC_ABORTED, "VERSION_CONFLICT");
	nrpc_status_fini(&st);
	assert_int_equal(it_put("r2/ifexists", "x", PRE_FORCE, NULL, &v, &st),
	    NRPC_OK);
	assert_int_equal(it_put("r2/ifexists", "y", PRE_EXISTS, NULL, &v, &st),
	    NRPC_OK);
	assert_int_equal(v, 2);
}

/* --- versions, tombstones, history --- */

static void
test_delete_then_recreate_continues_the_version(void **state)
{
	nrpc_status st = {0};
	uint64_t v = 0;
	uint64_t tomb = 0;
	Datasync__V1__Record *r = NULL;

	(void) state;
	assert_int_equal(it_put("r3/phoenix", "a", PRE_ABSENT, NULL, &v, &st),
	    NRPC_OK);
	assert_int_equal(it_put("r3/phoenix", "b", PRE_V(1), NULL, &v, &st),
	    NRPC_OK);
	assert_int_equal(it_del("r3/phoenix", PRE_V(2), NULL, &tomb, &st),
	    NRPC_OK);
	assert_int_equal(tomb, 3);
	assert_int_equal(it_get("r3/phoenix", 0, &r, &st), NRPC_NOT_FOUND);
	assert_status(&st, NRPC_NOT_FOUND, "NOT_FOUND");
	nrpc_status_fini(&st);
	/* An ETag from the old incarnation can never match the new one. */
	assert_int_equal(it_put("r3/phoenix", "c", PRE_ABSENT, NULL, &v, &st),
	    NRPC_OK);
	assert_true(v > tomb);
	assert_int_equal(it_put("r3/phoenix", "d", PRE_V(1), NULL, NULL, &st),
	    NRPC_ABORTED);
	nrpc_status_fini(&st);
}

static void
test_history_keeps_the_last_versions_only(void **state)
{
	nrpc_status st = {0};
	uint64_t v = 0;
	char val[8];
	Datasync__V1__Record *r = NULL;

	(void) state;
	assert_int_equal(it_put("r3/hist", "v1", PRE_ABSENT, NULL, &v, &st),
	    NRPC_OK);
	for (int i = 2; i <= 6; i++) {
		snprintf(val, sizeof(val), "v%d", i);
		assert_int_equal(it_put("r3/hist", val, PRE_V(v), NULL, &v, &st),
		    NRPC_OK);
	}
	/* --history 4: versions 3..6 readable, 1..2 compacted. */
	assert_int_equal(it_get("r3/hist", 3, &r, &st), NRPC_OK);
	assert_memory_equal(r->value.data, "v3", 2);
	assert_int_equal(r->version, 3);
	datasync__v1__record__free_unpacked(r, NULL);
	assert_int_equal(it_get("r3/hist", 2, &r, &st), NRPC_OUT_OF_RANGE);
	assert_status(&st, NRPC_OUT_OF_RANGE, "VERSION_COMPACTED");
	nrpc_status_fini(&st);
	assert_int_equal(it_get("r3/hist", 7, &r, &st), NRPC_NOT_FOUND);
	nrpc_status_fini(&st);
}

/* --- rules 3-5: leases --- */

static void
test_locked_record_refuses_writes_without_its_token(void **state)
{
	nrpc_status st = {0};
	char tok[33];
	uint64_t v = 0;
	Datasync__V1__Record *cur = NULL;
	Datasync__V1__Record *r = NULL;

	(void) state;
	assert_int_equal(it_put("r4/doc", "draft", PRE_ABSENT, NULL, &v, &st),
	    NRPC_OK);
	assert_int_equal(it_lock("r4/doc", "bob", 30000, NULL, tok, NULL, &st),
	    NRPC_OK);
	assert_int_equal(it_put("r4/doc", "x", PRE_V(1), NULL, NULL, &st),
	    NRPC_FAILED_PRECONDITION);
	assert_status(&st, NRPC_FAILED_PRECONDITION, "LOCKED");
	assert_int_equal(datasync_status_record(&st, &cur), NRPC_OK);
	assert_non_null(cur->lock);
	assert_string_equal(cur->lock->owner, "bob");
	assert_true(cur->lock->expires_at_ms > 0);
	datasync__v1__record__free_unpacked(cur, NULL);
	nrpc_status_fini(&st);
	/* Reads are never blocked, and show who edits until when. */
	assert_int_equal(it_get("r4/doc", 0, &r, &st), NRPC_OK);
	assert_non_null(r->lock);
	assert_string_equal(r->lock->owner, "bob");
	datasync__v1__record__free_unpacked(r, NULL);
	/* The holder writes, still subject to its precondition. */
	assert_int_equal(it_put("r4/doc", "final", PRE_V(1), tok, &v, &st),
	    NRPC_OK);
	assert_int_equal(v, 2);
	assert_int_equal(it_put("r4/doc", "again", PRE_V(1), tok, NULL, &st),
	    NRPC_ABORTED);
	nrpc_status_fini(&st);
	assert_int_equal(it_unlock("r4/doc", tok, &st), NRPC_OK);
	assert_int_equal(it_put("r4/doc", "free", PRE_V(2), NULL, &v, &st),
	    NRPC_OK);
}

static void
test_lock_held_by_another_is_refused_with_owner(void **state)
{
	nrpc_status st = {0};
	char tok[33];
	uint64_t f1 = 0;
	uint64_t f2 = 0;
	uint64_t f3 = 0;

	(void) state;
	assert_int_equal(it_lock("r4/busy", "carol", 30000, NULL, tok, &f1, &st),
	    NRPC_OK);
	assert_int_equal(it_lock("r4/busy", "dave", 30000, NULL, NULL, NULL, &st),
	    NRPC_FAILED_PRECONDITION);
	assert_status(&st, NRPC_FAILED_PRECONDITION, "LOCKED");
	nrpc_status_fini(&st);
	/* Renewal keeps the fencing token; a new acquisition takes a larger
	 * one. */
	assert_int_equal(it_lock("r4/busy", "carol", 30000, tok, NULL, &f2, &st),
	    NRPC_OK);
	assert_int_equal(f2, f1);
	assert_int_equal(it_unlock("r4/busy", tok, &st), NRPC_OK);
	assert_int_equal(it_lock("r4/busy", "dave", 30000, NULL, tok, &f3, &st),
	    NRPC_OK);
	assert_true(f3 > f1);
	assert_int_equal(it_unlock("r4/busy", tok, &st), NRPC_OK);
}

static void
test_unlock_with_wrong_token_or_nothing_held(void **state)
{
	nrpc_status st = {0};
	char tok[33];

	(void) state;
	assert_int_equal(it_unlock("r5/none", "00000000000000000000000000000000",
	                     &st),
	    NRPC_FAILED_PRECONDITION);
	assert_status(&st, NRPC_FAILED_PRECONDITION, "NOT_LOCKED");
	nrpc_status_fini(&st);
	assert_int_equal(it_lock("r5/held", "erin", 30000, NULL, tok, NULL, &st),
	    NRPC_OK);
	assert_int_equal(it_unlock("r5/held", "0123456789abcdef0123456789abcdef",
	                     &st),
	    NRPC_PERMISSION_DENIED);
	assert_status(&st, NRPC_PERMISSION_DENIED, "LOCK_TOKEN_MISMATCH");
	nrpc_status_fini(&st);
	assert_int_equal(it_unlock("r5/held", "not-hex", &st),
	    NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.field, "lock_token");
	nrpc_status_fini(&st);
	assert_int_equal(it_unlock("r5/held", tok, &st), NRPC_OK);
}

static void
test_expired_lease_cannot_write_even_if_nobody_relocked(void **state)
{
	nrpc_status st = {0};
	char tok[33];
	char tok2[33];
	uint64_t v = 0;
	uint64_t f1 = 0;
	uint64_t f2 = 0;
	Datasync__V1__Record *r = NULL;

	(void) state;
	assert_int_equal(it_put("r4/lease", "a", PRE_ABSENT, NULL, &v, &st),
	    NRPC_OK);
	assert_int_equal(it_lock("r4/lease", "frank", 1000, NULL, tok, &f1, &st),
	    NRPC_OK);
	it_sleep_ms(1300);
	/* An expired lease is no lock at all... */
	assert_int_equal(it_get("r4/lease", 0, &r, &st), NRPC_OK);
	assert_null(r->lock);
	datasync__v1__record__free_unpacked(r, NULL);
	/* ...but the paused holder cannot write with its stale token. */
	assert_int_equal(it_put("r4/lease", "b", PRE_V(1), tok, NULL, &st),
	    NRPC_FAILED_PRECONDITION);
	assert_status(&st, NRPC_FAILED_PRECONDITION, "LOCK_EXPIRED");
	nrpc_status_fini(&st);
	/* Somebody else may take it, with a larger fencing token. */
	assert_int_equal(it_lock("r4/lease", "gina", 30000, NULL, tok2, &f2, &st),
	    NRPC_OK);
	assert_true(f2 > f1);
	assert_int_equal(it_unlock("r4/lease", tok2, &st), NRPC_OK);
}

/* --- rule 6: retries are safe --- */

static void
test_request_id_replay_returns_the_original_result(void **state)
{
	nrpc_status st = {0};
	uint64_t v1 = 0;
	uint64_t v2 = 0;
	bool replayed = true;
	Datasync__V1__Record *r = NULL;

	(void) state;
	assert_int_equal(it_put_full("r6/idem", "once", 4, PRE_ABSENT, NULL,
	                     "req-0001", &v1, &replayed, &st),
	    NRPC_OK);
	assert_false(replayed);
	/* The same request again (a resend): the original result, not a
	 * false VERSION_CONFLICT, and not applied twice. */
	assert_int_equal(it_put_full("r6/idem", "once", 4, PRE_ABSENT, NULL,
	                     "req-0001", &v2, &replayed, &st),
	    NRPC_OK);
	assert_true(replayed);
	assert_int_equal(v2, v1);
	assert_int_equal(it_get("r6/idem", 0, &r, &st), NRPC_OK);
	assert_int_equal(r->version, 1);
	datasync__v1__record__free_unpacked(r, NULL);
	/* The same id for a different request is a client bug. */
	assert_int_equal(it_put_full("r6/idem", "other", 5, PRE_V(1), NULL,
	                     "req-0001", NULL, NULL, &st),
	    NRPC_INVALID_ARGUMENT);
	assert_status(&st, NRPC_INVALID_ARGUMENT, "REQUEST_ID_REUSED");
	nrpc_status_fini(&st);
}

/* Request ids are scoped by caller (the envelope's client name): two
 * clients that pick the same id make two requests, and a Lock replayed by
 * another client with the holder's id is a new attempt, not the token. */

static nrpc_code
it_put_as(datasync_client *c, const char *key, const char *value,
    const Datasync__V1__Precondition *p, const char *request_id,
    uint64_t *version, bool *replayed, nrpc_status *st)
{
	Datasync__V1__UpdateRequest req = DATASYNC__V1__UPDATE_REQUEST__INIT;
	Datasync__V1__UpdateResponse *resp = NULL;
	nrpc_call_opts o = {0};
	nrpc_code rv;

	req.key = (char *) key;
	req.value.data = (uint8_t *) value;
	req.value.len = strlen(value);
	req.precondition = (Datasync__V1__Precondition *) p;
	o.request_id = request_id;
	rv = datasync_v1_data_sync_update(datasync_rpc(c), &req, &resp, &o, st);
	if (rv == NRPC_OK) {
		*version = resp->record->version;
		*replayed = resp->replayed;
		datasync__v1__update_response__free_unpacked(resp, NULL);
	}
	return rv;
}

static nrpc_code
it_lock_as(datasync_client *c, const char *key, const char *request_id,
    char *token, bool *replayed, nrpc_status *st)
{
	Datasync__V1__LockRequest req = DATASYNC__V1__LOCK_REQUEST__INIT;
	Datasync__V1__LockResponse *resp = NULL;
	nrpc_call_opts o = {0};
	nrpc_code rv;

	req.key = (char *) key;
	req.owner = "ann";
	req.ttl_ms = 60000;
	o.request_id = request_id;
	rv = datasync_v1_data_sync_lock(datasync_rpc(c), &req, &resp, &o, st);
	if (rv == NRPC_OK) {
		memcpy(token, resp->lock_token, 33);
		*replayed = resp->replayed;
		datasync__v1__lock_response__free_unpacked(resp, NULL);
	}
	return rv;
}

static void
test_request_ids_are_scoped_by_client_name(void **state)
{
	datasync_client *other = NULL;
	nrpc_status st = {0};
	Datasync__V1__Precondition force;
	uint64_t v = 0;
	bool replayed = true;
	char tok[33] = {0};
	char tok2[33] = {0};
	Datasync__V1__Record *r = NULL;

	(void) state;
	assert_int_equal(datasync_connect((const char *const[]){it_d.ipc_url},
	                     1, 5000, "it-rules-other", &other, &st),
	    NRPC_OK);
	datasync__v1__precondition__init(&force);
	force.kind_case = DATASYNC__V1__PRECONDITION__KIND_UNCONDITIONAL;
	force.unconditional = 1;

	assert_int_equal(it_put_as(it_c, "r6/scoped", "mine", &force,
	                     "same-id", &v, &replayed, &st),
	    NRPC_OK);
	assert_int_equal(v, 1);
	assert_false(replayed);
	/* Another client, the same id, another request: applied. */
	assert_int_equal(it_put_as(other, "r6/scoped", "theirs", &force,
	                     "same-id", &v, &replayed, &st),
	    NRPC_OK);
	assert_int_equal(v, 2);
	assert_false(replayed);
	/* Each one's retry replays its own answer. */
	assert_int_equal(it_put_as(it_c, "r6/scoped", "mine", &force,
	                     "same-id", &v, &replayed, &st),
	    NRPC_OK);
	assert_true(replayed);
	assert_int_equal(v, 1);
	assert_int_equal(it_get("r6/scoped", 0, &r, &st), NRPC_OK);
	assert_int_equal(r->version, 2);
	datasync__v1__record__free_unpacked(r, NULL);

	/* A Lock and its replay by someone else. */
	assert_int_equal(
	    it_lock_as(it_c, "r6/scoped", "lock-r6", tok, &replayed, &st),
	    NRPC_OK);
	assert_false(replayed);
	assert_int_equal(
	    it_lock_as(other, "r6/scoped", "lock-r6", tok2, &replayed, &st),
	    NRPC_FAILED_PRECONDITION);
	assert_status(&st, NRPC_FAILED_PRECONDITION, "LOCKED");
	assert_string_equal(tok2, "");
	nrpc_status_fini(&st);
	/* The holder's own retry still gets the token. */
	assert_int_equal(
	    it_lock_as(it_c, "r6/scoped", "lock-r6", tok2, &replayed, &st),
	    NRPC_OK);
	assert_true(replayed);
	assert_string_equal(tok2, tok);
	assert_int_equal(it_unlock("r6/scoped", tok, &st), NRPC_OK);
	datasync_close(other);
}

/* An If-Match list is checked in the write: a retry after the version
 * moved into the set replays instead of writing again. */
static void
test_if_version_in_retry_replays(void **state)
{
	nrpc_status st = {0};
	Datasync__V1__Precondition p;
	Datasync__V1__VersionSet set = DATASYNC__V1__VERSION_SET__INIT;
	uint64_t vs[] = {1, 2};
	uint64_t v = 0;
	bool replayed = true;

	(void) state;
	assert_int_equal(it_put("r6/set", "v1", PRE_ABSENT, NULL, &v, &st),
	    NRPC_OK);
	datasync__v1__precondition__init(&p);
	p.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_VERSION_IN;
	p.if_version_in = &set;
	set.versions = vs;
	set.n_versions = 2;
	assert_int_equal(it_put_as(it_c, "r6/set", "v2", &p, "set-id", &v,
	                     &replayed, &st),
	    NRPC_OK);
	assert_int_equal(v, 2);
	assert_false(replayed);
	assert_int_equal(it_put_as(it_c, "r6/set", "v2", &p, "set-id", &v,
	                     &replayed, &st),
	    NRPC_OK);
	assert_true(replayed);
	assert_int_equal(v, 2);
	/* Not in the set: VERSION_CONFLICT with the current record. */
	vs[1] = 1;
	assert_int_equal(it_put_as(it_c, "r6/set", "v3", &p, NULL, &v,
	                     &replayed, &st),
	    NRPC_ABORTED);
	assert_status(&st, NRPC_ABORTED, "VERSION_CONFLICT");
	assert_true(st.detail_len > 0);
	nrpc_status_fini(&st);
	/* Empty: INVALID_ARGUMENT naming the field. */
	set.n_versions = 0;
	assert_int_equal(it_put_as(it_c, "r6/set", "v3", &p, NULL, &v,
	                     &replayed, &st),
	    NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.field, "precondition.if_version_in");
	nrpc_status_fini(&st);
}

/* --- limits and bad input --- */

static void
test_key_limits_at_the_edge(void **state)
{
	nrpc_status st = {0};
	char key[600];

	(void) state;
	memset(key, 'k', 512);
	key[512] = '\0';
	assert_int_equal(it_put(key, "x", PRE_FORCE, NULL, NULL, &st), NRPC_OK);
	key[512] = 'k';
	key[513] = '\0';
	assert_int_equal(it_put(key, "x", PRE_FORCE, NULL, NULL, &st),
	    NRPC_INVALID_ARGUMENT);
	assert_status(&st, NRPC_INVALID_ARGUMENT, "TOO_LARGE");
	assert_string_equal(st.field, "key");
	assert_non_null(strstr(st.message, "max_key_bytes"));
	nrpc_status_fini(&st);
	assert_int_equal(it_put("", "x", PRE_FORCE, NULL, NULL, &st),
	    NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.field, "key");
	nrpc_status_fini(&st);
	assert_int_equal(it_put("tab\tkey", "x", PRE_FORCE, NULL, NULL, &st),
	    NRPC_INVALID_ARGUMENT);
	assert_string_equal(st.field, "key");
	nrpc_status_fini(&st);
	assert_int_equal(it_put("bad\xff", "x", PRE_FORCE, NULL, NULL, &st),
	    NRPC_INVALID_ARGUMENT);
	nrpc_status_fini(&st);
}

static void
test_value_limit_at_the_edge(void **state)
{
	nrpc_status st = {0};
	size_t max = 1024 * 1024;
	uint8_t *big = calloc(1, max + 1);

	(void) state;
	assert_non_null(big);
	assert_int_equal(it_put_full("r9/big", big, max, PRE_FORCE, NULL, NULL,
	                     NULL, NULL, &st),
	    NRPC_OK);
	assert_int_equal(it_put_full("r9/big", big, max + 1, PRE_FORCE, NULL,
	                     NULL, NULL, NULL, &st),
	    NRPC_INVALID_ARGUMENT);
	assert_status(&st, NRPC_INVALID_ARGUMENT, "TOO_LARGE");
	assert_string_equal(st.field, "value");
	assert_non_null(strstr(st.message, "max_value_bytes (1048576)"));
	nrpc_status_fini(&st);
	free(big);
}

static void
test_list_pages_return_every_key_once(void **state)
{
	nrpc_status st = {0};
	Datasync__V1__ListRequest req = DATASYNC__V1__LIST_REQUEST__INIT;
	char key[32];
	char token[512] = "";
	int seen[25] = {0};
	int total = 0;

	(void) state;
	for (int i = 0; i < 25; i++) {
		snprintf(key, sizeof(key), "r10/k%02d", i);
		assert_int_equal(it_put(key, "v", PRE_FORCE, NULL, NULL, &st),
		    NRPC_OK);
	}
	req.prefix = "r10/";
	req.page_size = 7;
	for (int page = 0; page < 10; page++) {
		Datasync__V1__ListResponse *resp = NULL;

		req.page_token = token;
		assert_int_equal(datasync_v1_data_sync_list(datasync_rpc(it_c), &req,
		                     &resp, NULL, &st),
		    NRPC_OK);
		assert_true(resp->n_records <= 7);
		for (size_t i = 0; i < resp->n_records; i++) {
			int k = atoi(resp->records[i]->key + 5);

			assert_true(k >= 0 && k < 25);
			seen[k]++;
			total++;
			assert_int_equal(resp->records[i]->value.len, 0);
		}
		/* A write between pages must not disturb the paging. */
		snprintf(key, sizeof(key), "r10/k%02d", page);
		assert_int_equal(it_put(key, "w", PRE_FORCE, NULL, NULL, &st),
		    NRPC_OK);
		snprintf(token, sizeof(token), "%s", resp->next_page_token);
		datasync__v1__list_response__free_unpacked(resp, NULL);
		if (token[0] == '\0') {
			break;
		}
	}
	assert_int_equal(total, 25);
	for (int i = 0; i < 25; i++) {
		assert_int_equal(seen[i], 1);
	}
	req.page_size = 1001;
	req.page_token = "";
	{
		Datasync__V1__ListResponse *resp = NULL;

		assert_int_equal(datasync_v1_data_sync_list(datasync_rpc(it_c), &req,
		                     &resp, NULL, &st),
		    NRPC_INVALID_ARGUMENT);
		assert_status(&st, NRPC_INVALID_ARGUMENT, "TOO_LARGE");
		assert_non_null(strstr(st.message, "max_page_size"));
		nrpc_status_fini(&st);
	}
}

static void
test_unknown_method_is_unimplemented(void **state)
{
	nrpc_status st = {0};
	nrpc_method m = datasync_v1_data_sync_methods[0];
	Datasync__V1__GetRequest req = DATASYNC__V1__GET_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;

	(void) state;
	m.full_name = "/datasync.v1.DataSync/Teleport";
	req.key = "x";
	assert_int_equal(nrpc_client_call(datasync_rpc(it_c), &m, &req.base,
	                     &resp, NULL, &st),
	    NRPC_UNIMPLEMENTED);
	assert_null(resp);
	assert_non_null(strstr(st.message, "Teleport"));
	nrpc_status_fini(&st);
}

/* it_raw_update sends an Update whose key is key[0..key_len) (NULs
 * allowed) as raw bytes, with if_absent: protobuf-c's packer stops at a
 * NUL, so the key is packed with a placeholder byte of the same length
 * and the bytes patched afterwards. Returns the decoded reply (owned). */
static Nrpc__V1__Response *
it_raw_update(const char *key, size_t key_len)
{
	Datasync__V1__UpdateRequest req = DATASYNC__V1__UPDATE_REQUEST__INIT;
	Datasync__V1__Precondition p;
	Nrpc__V1__Request env = NRPC__V1__REQUEST__INIT;
	Nrpc__V1__Response *r = NULL;
	char placeholder[64];
	uint8_t body[256];
	uint8_t buf[512];
	size_t body_len;
	size_t n;
	uint8_t *at;

	assert_true(key_len < sizeof(placeholder));
	memset(placeholder, '#', key_len);
	placeholder[key_len] = '\0';
	it_fill_pre(&p, PRE_ABSENT);
	req.key = placeholder;
	req.value.data = (uint8_t *) "v";
	req.value.len = 1;
	req.precondition = &p;
	assert_true(datasync__v1__update_request__get_packed_size(&req) <=
	    sizeof(body));
	body_len = datasync__v1__update_request__pack(&req, body);
	/* field 1, wire type 2, one-byte length, then the key */
	assert_int_equal(body[0], 0x0a);
	assert_int_equal(body[1], key_len);
	at = body + 2;
	assert_memory_equal(at, placeholder, key_len);
	memcpy(at, key, key_len);
	env.method = "/datasync.v1.DataSync/Update";
	env.body.data = body;
	env.body.len = body_len;
	env.timeout_ms = 5000;
	assert_true(nrpc__v1__request__get_packed_size(&env) <= sizeof(buf));
	n = nrpc__v1__request__pack(&env, buf);
	assert_int_equal(ds_rpc_raw(it_d.ipc_url, buf, n, 10000, &r),
	    DS_RPC_RAW_REPLY);
	assert_non_null(r);
	return r;
}

/* Issue 9 item 4 (review 80a70b6 #5): protobuf-c cut the key at the NUL,
 * so this Update wrote the record "acc/nul". */
static void
test_update_key_with_nul_is_refused_and_writes_nothing(void **state)
{
	static const char key[] = "acc/nul\0tail";
	Nrpc__V1__Response *r;
	Datasync__V1__Record *rec = NULL;
	nrpc_status st = {0};

	(void) state;
	r = it_raw_update(key, sizeof(key) - 1);
	assert_non_null(r->status);
	assert_int_equal(r->status->code, NRPC_INVALID_ARGUMENT);
	assert_string_equal(r->status->reason, "MALFORMED_BODY");
	assert_string_equal(r->status->field, "key");
	assert_non_null(strstr(r->status->message, "key contains a NUL byte"));
	nrpc__v1__response__free_unpacked(r, NULL);

	assert_int_equal(it_get("acc/nul", 0, &rec, &st), NRPC_NOT_FOUND);
	assert_null(rec);
	nrpc_status_fini(&st);

	/* Invalid UTF-8 (a surrogate) is refused the same way. */
	r = it_raw_update("acc/\xed\xa0\x80", 7);
	assert_non_null(r->status);
	assert_int_equal(r->status->code, NRPC_INVALID_ARGUMENT);
	assert_string_equal(r->status->reason, "MALFORMED_BODY");
	assert_string_equal(r->status->field, "key");
	nrpc__v1__response__free_unpacked(r, NULL);

	/* The same raw path with a clean key writes it. */
	r = it_raw_update("acc/nul", 7);
	assert_null(r->status);
	nrpc__v1__response__free_unpacked(r, NULL);
	assert_int_equal(it_get("acc/nul", 0, &rec, &st), NRPC_OK);
	assert_int_equal(rec->version, 1);
	datasync__v1__record__free_unpacked(rec, NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_update_without_precondition_is_refused),
	    cmocka_unit_test(test_update_if_absent_creates_version_one),
	    cmocka_unit_test(test_if_absent_on_existing_record_is_conflict),
	    cmocka_unit_test(
	        test_stale_if_version_gets_conflict_with_current_record),
	    cmocka_unit_test(test_if_exists_needs_a_live_record),
	    cmocka_unit_test(test_delete_then_recreate_continues_the_version),
	    cmocka_unit_test(test_history_keeps_the_last_versions_only),
	    cmocka_unit_test(test_locked_record_refuses_writes_without_its_token),
	    cmocka_unit_test(test_lock_held_by_another_is_refused_with_owner),
	    cmocka_unit_test(test_unlock_with_wrong_token_or_nothing_held),
	    cmocka_unit_test(
	        test_expired_lease_cannot_write_even_if_nobody_relocked),
	    cmocka_unit_test(test_request_id_replay_returns_the_original_result),
	    cmocka_unit_test(test_request_ids_are_scoped_by_client_name),
	    cmocka_unit_test(test_if_version_in_retry_replays),
	    cmocka_unit_test(test_update_reply_carries_the_value_only_when_asked),
	    cmocka_unit_test(test_key_limits_at_the_edge),
	    cmocka_unit_test(test_value_limit_at_the_edge),
	    cmocka_unit_test(test_list_pages_return_every_key_once),
	    cmocka_unit_test(test_unknown_method_is_unimplemented),
	    cmocka_unit_test(
	        test_update_key_with_nul_is_refused_and_writes_nothing),
	};

	/* cmocka does not count a failed group teardown: a daemon that
	 * leaked or hung at exit fails the test here (ds_daemon.h). */
	return cmocka_run_group_tests(tests, it_setup, it_teardown) +
	       ds_daemon_failures();
}
