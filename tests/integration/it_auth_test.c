/*
 * it_auth_test.c - authentication and authorization against a real
 * datasyncd started with --bootstrap-token-file (DESIGN §11, issue 13):
 * every RPC method against every kind of caller (no token, malformed,
 * unknown, revoked, the right prefix without the right, another prefix,
 * the right one) with the exact code and reason; ranges wider than a
 * read grant; the token as author, lock owner and request-id scope; the
 * failure limiter per tcp peer (a revoked token, even many parked
 * watches of it ended by the revocation, never blocks its address); and,
 * with the ctest fixture "pg", a revocation on one node seen by a second
 * node of the same PostgreSQL database within a second.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <pthread.h>

#include "datasync.h"
#include "ds_daemon.h"
#include "ds_test.h"

#define M(x) (&datasync_v1_data_sync_methods[DATASYNC_V1_DATA_SYNC_METHOD_##x])
#define SECRET_LEN 68 /* "dst_" + 64 hex digits */
/* 10 = AUTH_LIMIT_FAILURES (service/auth/auth.h) */
#define LIMIT_FAILURES 10

typedef struct tok {
	char name[32];
	char secret[SECRET_LEN + 1];
	char bearer[SECRET_LEN + 16];
} tok;

static ds_daemon it_d;
static char it_dir[256];
static datasync_client *it_c; /* ipc://, no token of its own */
static tok t_admin;   /* bootstrap: admin */
static tok t_rw;      /* read, write, lock on docs/ */
static tok t_rw2;     /* the same grants, another name */
static tok t_ro;      /* read on docs/ */
static tok t_wo;      /* write on docs/ */
static tok t_other;   /* read, write, lock on other/ */
static tok t_gone;    /* read, write, lock on docs/, revoked */

/* --- calls --- */

/* call sends req to method m with authorization value auth (NULL: none)
 * over c; *resp (may be NULL to discard) on success. Returns the code. */
static nrpc_code
call(datasync_client *c, const nrpc_method *m, const ProtobufCMessage *req,
    const char *auth, const char *request_id, ProtobufCMessage **resp,
    nrpc_status *st)
{
	const char *md[2] = {"authorization", auth};
	nrpc_call_opts o;
	ProtobufCMessage *r = NULL;
	nrpc_code rc;

	memset(&o, 0, sizeof(o));
	o.timeout_ms = 5000;
	o.request_id = request_id;
	if (auth != NULL) {
		o.metadata = md;
		o.n_metadata = 1;
	}
	rc = nrpc_client_call(datasync_rpc(c), m, req, &r, &o, st);
	if (resp != NULL) {
		*resp = r;
	} else if (r != NULL) {
		protobuf_c_message_free_unpacked(r, NULL);
	}
	return rc;
}

static void
tok_set(tok *t, const char *name, const char *secret)
{
	(void) snprintf(t->name, sizeof(t->name), "%s", name);
	(void) snprintf(t->secret, sizeof(t->secret), "%s", secret);
	(void) snprintf(t->bearer, sizeof(t->bearer), "Bearer %s", secret);
}

static void
make_token_on(datasync_client *c, const tok *admin, tok *t, const char *name,
    const char *const *grants, size_t n)
{
	Datasync__V1__CreateTokenRequest req =
	    DATASYNC__V1__CREATE_TOKEN_REQUEST__INIT;
	Datasync__V1__CreateTokenResponse *resp = NULL;
	nrpc_status st = {0};

	req.name = (char *) name;
	req.grants = (char **) grants;
	req.n_grants = n;
	if (call(c, M(CREATE_TOKEN), &req.base, admin->bearer, NULL,
	        (ProtobufCMessage **) &resp, &st) != NRPC_OK) {
		fail_msg("CreateToken %s: %s %s", name, st.reason, st.message);
	}
	assert_int_equal(strlen(resp->secret), SECRET_LEN);
	assert_string_equal(resp->token->name, name);
	tok_set(t, name, resp->secret);
	datasync__v1__create_token_response__free_unpacked(resp, NULL);
	nrpc_status_fini(&st);
}

static void
make_token(tok *t, const char *name, const char *const *grants, size_t n)
{
	make_token_on(it_c, &t_admin, t, name, grants, n);
}

static void
put(const char *key, const char *value)
{
	Datasync__V1__UpdateRequest req = DATASYNC__V1__UPDATE_REQUEST__INIT;
	Datasync__V1__Precondition pre = DATASYNC__V1__PRECONDITION__INIT;
	nrpc_status st = {0};

	pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_UNCONDITIONAL;
	pre.unconditional = true;
	req.key = (char *) key;
	req.value.data = (uint8_t *) value;
	req.value.len = strlen(value);
	req.precondition = &pre;
	if (call(it_c, M(UPDATE), &req.base, t_admin.bearer, NULL, NULL, &st) !=
	    NRPC_OK) {
		fail_msg("put %s: %s %s", key, st.reason, st.message);
	}
	nrpc_status_fini(&st);
}

/* --- fixture --- */

static void
read_secret(const char *path, char out[SECRET_LEN + 1])
{
	FILE *f = fopen(path, "r");
	char buf[128] = "";

	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_int_equal(strlen(buf), SECRET_LEN + 1); /* and a newline */
	buf[SECRET_LEN] = '\0';
	memcpy(out, buf, SECRET_LEN + 1);
}

static int
group_setup(void **state)
{
	static const char *const rw[] = {"read:docs/", "write:docs/",
	    "lock:docs/"};
	static const char *const ro[] = {"read:docs/"};
	static const char *const wo[] = {"write:docs/"};
	static const char *const other[] = {"read:other/", "write:other/",
	    "lock:other/"};
	char file[300];
	char secret[SECRET_LEN + 1];
	const char *extra[3] = {"--bootstrap-token-file", file, NULL};
	nrpc_status st = {0};
	Datasync__V1__RevokeTokenRequest rv =
	    DATASYNC__V1__REVOKE_TOKEN_REQUEST__INIT;

	(void) state;
	if (ds_test_tmpdir(it_dir, sizeof(it_dir)) != 0) {
		return -1;
	}
	/* missing: datasyncd makes it, with a new secret */
	(void) snprintf(file, sizeof(file), "%s/bootstrap.token", it_dir);
	if (ds_daemon_start(&it_d, false, extra) != 0) {
		return -1;
	}
	read_secret(file, secret);
	tok_set(&t_admin, "bootstrap", secret);
	if (datasync_connect((const char *const[]){it_d.ipc_url}, 1, 5000,
	        "it-auth", &it_c, &st) != NRPC_OK) {
		fprintf(stderr, "connect: %s\n", st.message);
		return -1;
	}
	make_token(&t_rw, "rw", rw, 3);
	make_token(&t_rw2, "rw2", rw, 3);
	make_token(&t_ro, "ro", ro, 1);
	make_token(&t_wo, "wo", wo, 1);
	make_token(&t_other, "other", other, 3);
	make_token(&t_gone, "gone", rw, 3);
	rv.name = "gone";
	if (call(it_c, M(REVOKE_TOKEN), &rv.base, t_admin.bearer, NULL, NULL,
	        &st) != NRPC_OK) {
		fprintf(stderr, "revoke: %s\n", st.message);
		return -1;
	}
	nrpc_status_fini(&st);
	return 0;
}

static int
group_teardown(void **state)
{
	int rc;

	(void) state;
	datasync_close(it_c);
	it_c = NULL;
	rc = ds_daemon_stop(&it_d);
	ds_daemon_fini(&it_d);
	ds_test_rmdir(it_dir);
	return rc == 0 ? 0 : -1;
}

/* --- the matrix --- */

typedef enum who {
	W_NONE,      /* no authorization metadata */
	W_MALFORMED, /* "Bearer" and something that is no token */
	W_UNKNOWN,   /* a well-formed secret nobody has */
	W_REVOKED,
	W_WRONG_RIGHT, /* a grant on the key's prefix, not the right one */
	W_WRONG_PREFIX,
	W_RIGHT,
	W_COUNT,
} who;

static const char *const who_names[W_COUNT] = {"no token", "malformed",
    "unknown", "revoked", "wrong right", "wrong prefix", "right"};

/* One method: builds its request for a caller and says what must come
 * back. */
/* the right a method needs (service/auth's, by another name: this is a
 * client) */
typedef enum need {
	NEED_NONE = 0, /* WhoAmI */
	AUTH_READ,
	AUTH_WRITE,
	AUTH_LOCK,
	AUTH_ADMIN,
} need;

typedef struct mcase {
	const char *name;
	const nrpc_method *m;
	need right;
} mcase;

static const char *
bearer_of(who w, need nd)
{
	static const char unknown[] = "Bearer dst_"
	    "0000000000000000000000000000000000000000000000000000000000000000";

	switch (w) {
	case W_NONE:
		return NULL;
	case W_MALFORMED:
		return "Bearer not-a-token";
	case W_UNKNOWN:
		return unknown;
	case W_REVOKED:
		return t_gone.bearer;
	case W_WRONG_RIGHT:
		/* docs/ grants without the one needed */
		return nd == AUTH_READ ? t_wo.bearer :
		       nd == AUTH_ADMIN ? t_rw.bearer : t_ro.bearer;
	case W_WRONG_PREFIX:
		return nd == AUTH_ADMIN ? t_ro.bearer : t_other.bearer;
	case W_RIGHT:
	default:
		return nd == AUTH_ADMIN ? t_admin.bearer : t_rw.bearer;
	}
}

/* run_case calls m as w and checks the outcome; for W_RIGHT it also
 * returns the response (free it) through *resp. */
static void
run_case(const mcase *mc, who w, int i, ProtobufCMessage *req)
{
	nrpc_status st = {0};
	nrpc_code rc;
	const char *auth = bearer_of(w, mc->right);
	nrpc_code want = NRPC_OK;
	const char *reason = "";

	rc = call(it_c, mc->m, req, auth, NULL, NULL, &st);
	switch (w) {
	case W_NONE:
		if (mc->right != 0) {
			want = NRPC_UNAUTHENTICATED;
			reason = "TOKEN_MISSING";
		}
		break;
	case W_MALFORMED:
		want = NRPC_UNAUTHENTICATED;
		reason = "TOKEN_MALFORMED";
		break;
	case W_UNKNOWN:
		want = NRPC_UNAUTHENTICATED;
		reason = "TOKEN_UNKNOWN";
		break;
	case W_REVOKED:
		want = NRPC_UNAUTHENTICATED;
		reason = "TOKEN_REVOKED";
		break;
	case W_WRONG_RIGHT:
	case W_WRONG_PREFIX:
		if (mc->right != 0) {
			want = NRPC_PERMISSION_DENIED;
			reason = "PERMISSION_DENIED";
		}
		break;
	default:
		break;
	}
	if (rc != want || strcmp(st.reason, reason) != 0) {
		fail_msg("%s as %s (#%d): got %s %s (%s), want %s %s", mc->name,
		    who_names[w], i, nrpc_code_name(rc), st.reason, st.message,
		    nrpc_code_name(want), reason);
	}
	if (want == NRPC_PERMISSION_DENIED) {
		/* the message names the token and the right */
		const char *need_name = mc->right == AUTH_READ ? "read" :
		                        mc->right == AUTH_WRITE ? "write" :
		                        mc->right == AUTH_LOCK ? "lock" : "admin";

		assert_non_null(strstr(st.message, need_name));
		assert_non_null(strstr(st.message, "token \""));
	}
	nrpc_status_fini(&st);
}

static void
test_every_method_against_every_kind_of_caller(void **state)
{
	static const mcase cases[] = {
	    {"Get", M(GET), AUTH_READ},
	    {"Update", M(UPDATE), AUTH_WRITE},
	    {"Delete", M(DELETE), AUTH_WRITE},
	    {"Lock", M(LOCK), AUTH_LOCK},
	    {"Unlock", M(UNLOCK), AUTH_LOCK},
	    {"List", M(LIST), AUTH_READ},
	    {"Watch", M(WATCH), AUTH_READ},
	    {"WhoAmI", M(WHO_AM_I), 0},
	    {"CreateToken", M(CREATE_TOKEN), AUTH_ADMIN},
	    {"ListTokens", M(LIST_TOKENS), AUTH_ADMIN},
	    {"RevokeToken", M(REVOKE_TOKEN), AUTH_ADMIN},
	};
	(void) state;

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		for (int w = 0; w < W_COUNT; w++) {
			char key[64];
			char name[64];
			char lock_token[33] = "0123456789abcdef0123456789abcdef";
			Datasync__V1__Precondition pre =
			    DATASYNC__V1__PRECONDITION__INIT;
			Datasync__V1__GetRequest get =
			    DATASYNC__V1__GET_REQUEST__INIT;
			Datasync__V1__UpdateRequest upd =
			    DATASYNC__V1__UPDATE_REQUEST__INIT;
			Datasync__V1__DeleteRequest del =
			    DATASYNC__V1__DELETE_REQUEST__INIT;
			Datasync__V1__LockRequest lk =
			    DATASYNC__V1__LOCK_REQUEST__INIT;
			Datasync__V1__UnlockRequest ul =
			    DATASYNC__V1__UNLOCK_REQUEST__INIT;
			Datasync__V1__ListRequest ls =
			    DATASYNC__V1__LIST_REQUEST__INIT;
			Datasync__V1__WatchRequest wa =
			    DATASYNC__V1__WATCH_REQUEST__INIT;
			Datasync__V1__WhoAmIRequest wh =
			    DATASYNC__V1__WHO_AM_IREQUEST__INIT;
			Datasync__V1__CreateTokenRequest ct =
			    DATASYNC__V1__CREATE_TOKEN_REQUEST__INIT;
			Datasync__V1__ListTokensRequest lt =
			    DATASYNC__V1__LIST_TOKENS_REQUEST__INIT;
			Datasync__V1__RevokeTokenRequest rt =
			    DATASYNC__V1__REVOKE_TOKEN_REQUEST__INIT;
			char *grants[] = {"read:m/"};
			ProtobufCMessage *req = NULL;
			const char *prefix = w == W_WRONG_PREFIX ? "other/" :
			                                           "docs/";

			/* the wrong-prefix token has its rights on other/:
			 * it asks for docs/ */
			(void) prefix;
			(void) snprintf(key, sizeof(key), "docs/%s-%d",
			    cases[c].name, w);
			pre.kind_case =
			    DATASYNC__V1__PRECONDITION__KIND_UNCONDITIONAL;
			pre.unconditional = true;
			switch (c) {
			case 0:
				put(key, "v");
				get.key = key;
				req = &get.base;
				break;
			case 1:
				upd.key = key;
				upd.value.data = (uint8_t *) "v";
				upd.value.len = 1;
				upd.precondition = &pre;
				req = &upd.base;
				break;
			case 2:
				put(key, "v");
				del.key = key;
				del.precondition = &pre;
				req = &del.base;
				break;
			case 3:
				lk.key = key;
				lk.owner = "x";
				lk.ttl_ms = 5000;
				req = &lk.base;
				break;
			case 4:
				if (w == W_RIGHT) {
					Datasync__V1__LockResponse *lr = NULL;
					nrpc_status st = {0};

					lk.key = key;
					lk.ttl_ms = 5000;
					assert_int_equal(call(it_c, M(LOCK), &lk.base,
					    t_rw.bearer, NULL,
					    (ProtobufCMessage **) &lr, &st), NRPC_OK);
					(void) snprintf(lock_token, sizeof(lock_token),
					    "%s", lr->lock_token);
					datasync__v1__lock_response__free_unpacked(lr,
					    NULL);
				}
				ul.key = key;
				ul.lock_token = lock_token;
				req = &ul.base;
				break;
			case 5:
				ls.prefix = "docs/";
				req = &ls.base;
				break;
			case 6:
				wa.prefix = "docs/";
				wa.from_now = true;
				wa.timeout_ms = 1;
				req = &wa.base;
				break;
			case 7:
				req = &wh.base;
				break;
			case 8:
				(void) snprintf(name, sizeof(name), "made-%d", w);
				ct.name = name;
				ct.grants = grants;
				ct.n_grants = 1;
				req = &ct.base;
				break;
			case 9:
				req = &lt.base;
				break;
			default:
				/* revoking a token made for the purpose */
				(void) snprintf(name, sizeof(name), "victim-%d", w);
				{
					tok v;
					const char *const g[] = {"read:v/"};

					make_token(&v, name, g, 1);
				}
				rt.name = name;
				req = &rt.base;
				break;
			}
			run_case(&cases[c], (who) w, w, req);
		}
	}
}

static void
test_whoami_names_the_token_or_none(void **state)
{
	Datasync__V1__WhoAmIRequest req = DATASYNC__V1__WHO_AM_IREQUEST__INIT;
	Datasync__V1__WhoAmIResponse *resp = NULL;
	nrpc_status st = {0};

	(void) state;
	assert_int_equal(call(it_c, M(WHO_AM_I), &req.base, t_ro.bearer, NULL,
	    (ProtobufCMessage **) &resp, &st), NRPC_OK);
	assert_true(resp->auth_required);
	assert_true(resp->authenticated);
	assert_string_equal(resp->token->name, "ro");
	assert_int_equal(resp->token->n_grants, 1);
	assert_string_equal(resp->token->grants[0], "read:docs/");
	datasync__v1__who_am_iresponse__free_unpacked(resp, NULL);
	assert_int_equal(call(it_c, M(WHO_AM_I), &req.base, NULL, NULL,
	    (ProtobufCMessage **) &resp, &st), NRPC_OK);
	assert_true(resp->auth_required);
	assert_false(resp->authenticated);
	assert_null(resp->token);
	datasync__v1__who_am_iresponse__free_unpacked(resp, NULL);
}

static void
test_list_or_watch_wider_than_the_read_grant_is_refused(void **state)
{
	static const char *const wide[] = {"", "d", "doc", "docs"};
	nrpc_status st = {0};

	(void) state;
	for (size_t i = 0; i < sizeof(wide) / sizeof(wide[0]); i++) {
		Datasync__V1__ListRequest ls = DATASYNC__V1__LIST_REQUEST__INIT;
		Datasync__V1__WatchRequest wa = DATASYNC__V1__WATCH_REQUEST__INIT;

		ls.prefix = (char *) wide[i];
		assert_int_equal(call(it_c, M(LIST), &ls.base, t_rw.bearer, NULL,
		    NULL, &st), NRPC_PERMISSION_DENIED);
		assert_string_equal(st.reason, "PERMISSION_DENIED");
		wa.prefix = (char *) wide[i];
		wa.from_now = true;
		wa.timeout_ms = 1;
		assert_int_equal(call(it_c, M(WATCH), &wa.base, t_rw.bearer, NULL,
		    NULL, &st), NRPC_PERMISSION_DENIED);
		assert_string_equal(st.reason, "PERMISSION_DENIED");
		assert_non_null(strstr(st.message, "read"));
	}
	/* narrower than the grant is fine, so is one key under it */
	{
		Datasync__V1__ListRequest ls = DATASYNC__V1__LIST_REQUEST__INIT;
		Datasync__V1__WatchRequest wa = DATASYNC__V1__WATCH_REQUEST__INIT;

		ls.prefix = "docs/sub/";
		assert_int_equal(call(it_c, M(LIST), &ls.base, t_ro.bearer, NULL,
		    NULL, &st), NRPC_OK);
		wa.key = "docs/one";
		wa.from_now = true;
		wa.timeout_ms = 1;
		assert_int_equal(call(it_c, M(WATCH), &wa.base, t_ro.bearer, NULL,
		    NULL, &st), NRPC_OK);
	}
	nrpc_status_fini(&st);
}

static void
test_author_and_lock_owner_are_the_token_name(void **state)
{
	Datasync__V1__UpdateRequest upd = DATASYNC__V1__UPDATE_REQUEST__INIT;
	Datasync__V1__Precondition pre = DATASYNC__V1__PRECONDITION__INIT;
	Datasync__V1__GetRequest get = DATASYNC__V1__GET_REQUEST__INIT;
	Datasync__V1__GetResponse *g = NULL;
	Datasync__V1__LockRequest lk = DATASYNC__V1__LOCK_REQUEST__INIT;
	Datasync__V1__LockResponse *l = NULL;
	nrpc_status st = {0};

	(void) state;
	pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_UNCONDITIONAL;
	pre.unconditional = true;
	upd.key = "docs/author";
	upd.value.data = (uint8_t *) "x";
	upd.value.len = 1;
	upd.precondition = &pre;
	upd.author = "mallory";
	assert_int_equal(call(it_c, M(UPDATE), &upd.base, t_rw.bearer, NULL,
	    NULL, &st), NRPC_OK);
	get.key = "docs/author";
	assert_int_equal(call(it_c, M(GET), &get.base, t_ro.bearer, NULL,
	    (ProtobufCMessage **) &g, &st), NRPC_OK);
	assert_string_equal(g->record->updated_by, "rw");
	datasync__v1__get_response__free_unpacked(g, NULL);

	lk.key = "docs/author";
	lk.owner = "mallory";
	lk.ttl_ms = 5000;
	assert_int_equal(call(it_c, M(LOCK), &lk.base, t_rw.bearer, NULL,
	    (ProtobufCMessage **) &l, &st), NRPC_OK);
	assert_string_equal(l->lock->owner, "rw");
	datasync__v1__lock_response__free_unpacked(l, NULL);
	/* a reader sees the holder's name (as without auth) */
	assert_int_equal(call(it_c, M(GET), &get.base, t_ro.bearer, NULL,
	    (ProtobufCMessage **) &g, &st), NRPC_OK);
	assert_non_null(g->record->lock);
	assert_string_equal(g->record->lock->owner, "rw");
	datasync__v1__get_response__free_unpacked(g, NULL);
	nrpc_status_fini(&st);
}

static void
test_request_ids_are_scoped_per_token(void **state)
{
	Datasync__V1__UpdateRequest upd = DATASYNC__V1__UPDATE_REQUEST__INIT;
	Datasync__V1__Precondition pre = DATASYNC__V1__PRECONDITION__INIT;
	Datasync__V1__UpdateResponse *u = NULL;
	Datasync__V1__GetRequest get = DATASYNC__V1__GET_REQUEST__INIT;
	Datasync__V1__GetResponse *g = NULL;
	nrpc_status st = {0};
	const char *rid = "0123456789abcdef0123456789abcdef";

	(void) state;
	pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_UNCONDITIONAL;
	pre.unconditional = true;
	upd.precondition = &pre;
	upd.key = "docs/rid";
	upd.value.data = (uint8_t *) "from-a";
	upd.value.len = 6;
	assert_int_equal(call(it_c, M(UPDATE), &upd.base, t_rw.bearer, rid,
	    (ProtobufCMessage **) &u, &st), NRPC_OK);
	assert_false(u->replayed);
	assert_int_equal(u->record->version, 1);
	datasync__v1__update_response__free_unpacked(u, NULL);

	/* B, same id, another request: neither A's reply nor REUSED */
	upd.value.data = (uint8_t *) "from-b";
	assert_int_equal(call(it_c, M(UPDATE), &upd.base, t_rw2.bearer, rid,
	    (ProtobufCMessage **) &u, &st), NRPC_OK);
	assert_false(u->replayed);
	assert_int_equal(u->record->version, 2);
	assert_string_equal(u->record->updated_by, "rw2");
	datasync__v1__update_response__free_unpacked(u, NULL);

	/* B, same id, the same request: B's own replay */
	assert_int_equal(call(it_c, M(UPDATE), &upd.base, t_rw2.bearer, rid,
	    (ProtobufCMessage **) &u, &st), NRPC_OK);
	assert_true(u->replayed);
	assert_int_equal(u->record->version, 2);
	datasync__v1__update_response__free_unpacked(u, NULL);

	/* A's retry is A's replay, not B's write */
	upd.value.data = (uint8_t *) "from-a";
	assert_int_equal(call(it_c, M(UPDATE), &upd.base, t_rw.bearer, rid,
	    (ProtobufCMessage **) &u, &st), NRPC_OK);
	assert_true(u->replayed);
	assert_int_equal(u->record->version, 1);
	datasync__v1__update_response__free_unpacked(u, NULL);

	get.key = "docs/rid";
	assert_int_equal(call(it_c, M(GET), &get.base, t_rw.bearer, NULL,
	    (ProtobufCMessage **) &g, &st), NRPC_OK);
	assert_int_equal(g->record->version, 2);
	assert_memory_equal(g->record->value.data, "from-b", 6);
	datasync__v1__get_response__free_unpacked(g, NULL);
	nrpc_status_fini(&st);
}

static void
test_tcp_peer_blocked_after_failures_others_unaffected(void **state)
{
	static const char bad[] = "Bearer dst_"
	    "1111111111111111111111111111111111111111111111111111111111111111";
	datasync_client *tcp = NULL;
	Datasync__V1__GetRequest get = DATASYNC__V1__GET_REQUEST__INIT;
	nrpc_status st = {0};

	(void) state;
	put("docs/limited", "v");
	get.key = "docs/limited";
	assert_int_equal(datasync_connect((const char *const[]){it_d.tcp_url},
	    1, 5000, "it-auth-tcp", &tcp, &st), NRPC_OK);
	/* a good call first: the limiter counts failures, not calls */
	assert_int_equal(call(tcp, M(GET), &get.base, t_ro.bearer, NULL, NULL,
	    &st), NRPC_OK);
	for (int i = 0; i < LIMIT_FAILURES; i++) {
		assert_int_equal(call(tcp, M(GET), &get.base, bad, NULL, NULL,
		    &st), NRPC_UNAUTHENTICATED);
		assert_string_equal(st.reason, "TOKEN_UNKNOWN");
	}
	/* blocked now, even with a good token */
	assert_int_equal(call(tcp, M(GET), &get.base, t_ro.bearer, NULL, NULL,
	    &st), NRPC_RESOURCE_EXHAUSTED);
	assert_string_equal(st.reason, "TOO_MANY_AUTH_FAILURES");
	assert_true(st.retry_after_ms > 0);
	/* ipc:// (local processes, the gateway) is not limited ... */
	for (int i = 0; i < LIMIT_FAILURES + 2; i++) {
		assert_int_equal(call(it_c, M(GET), &get.base, bad, NULL, NULL,
		    &st), NRPC_UNAUTHENTICATED);
	}
	assert_int_equal(call(it_c, M(GET), &get.base, t_ro.bearer, NULL, NULL,
	    &st), NRPC_OK);
	datasync_close(tcp);
	nrpc_status_fini(&st);
}

static void
test_other_tcp_address_is_not_blocked(void **state)
{
	static const char bad[] = "Bearer dst_"
	    "2222222222222222222222222222222222222222222222222222222222222222";
	char url6[64];
	char url4[64];
	int port = ds_free_port();
	const char *extra[] = {"--auth", "--listen", url4, "--listen", url6,
	    NULL};
	ds_daemon d;
	datasync_client *c4 = NULL;
	datasync_client *c6 = NULL;
	Datasync__V1__WhoAmIRequest req = DATASYNC__V1__WHO_AM_IREQUEST__INIT;
	nrpc_status st = {0};

	(void) state;
	/* one daemon listening on 127.0.0.1 and ::1: two peers by address */
	(void) snprintf(url4, sizeof(url4), "tcp://127.0.0.1:%d", port);
	(void) snprintf(url6, sizeof(url6), "tcp://[::1]:%d", port);
	assert_int_equal(ds_daemon_start(&d, false, extra), 0);
	assert_int_equal(datasync_connect((const char *const[]){url4}, 1, 5000,
	    "v4", &c4, &st), NRPC_OK);
	assert_int_equal(datasync_connect((const char *const[]){url6}, 1, 5000,
	    "v6", &c6, &st), NRPC_OK);
	for (int i = 0; i < LIMIT_FAILURES; i++) {
		assert_int_equal(call(c4, M(WHO_AM_I), &req.base, bad, NULL, NULL,
		    &st), NRPC_UNAUTHENTICATED);
	}
	assert_int_equal(call(c4, M(WHO_AM_I), &req.base, bad, NULL, NULL, &st),
	    NRPC_RESOURCE_EXHAUSTED);
	assert_string_equal(st.reason, "TOO_MANY_AUTH_FAILURES");
	/* ::1 is another peer: one failure is just a failure */
	assert_int_equal(call(c6, M(WHO_AM_I), &req.base, bad, NULL, NULL, &st),
	    NRPC_UNAUTHENTICATED);
	assert_string_equal(st.reason, "TOKEN_UNKNOWN");
	assert_int_equal(call(c6, M(WHO_AM_I), &req.base, NULL, NULL, NULL,
	    &st), NRPC_OK);
	datasync_close(c4);
	datasync_close(c6);
	assert_int_equal(ds_daemon_stop(&d), 0);
	ds_daemon_fini(&d);
	nrpc_status_fini(&st);
}

/* --- a watch parked while its token is revoked --- */

typedef struct parked_watch {
	tok t;
	nrpc_code rc;
	char reason[64];
	size_t n_events;
} parked_watch;

static void *
parked_watch_main(void *arg)
{
	parked_watch *pw = arg;
	Datasync__V1__WatchRequest wa = DATASYNC__V1__WATCH_REQUEST__INIT;
	Datasync__V1__WatchResponse *resp = NULL;
	nrpc_status st = {0};

	wa.prefix = "docs/watched/";
	wa.from_now = true;
	wa.timeout_ms = 20000;
	pw->rc = call(it_c, M(WATCH), &wa.base, pw->t.bearer, NULL,
	    (ProtobufCMessage **) &resp, &st);
	(void) snprintf(pw->reason, sizeof(pw->reason), "%s", st.reason);
	if (resp != NULL) {
		pw->n_events = resp->n_events;
		datasync__v1__watch_response__free_unpacked(resp, NULL);
	}
	nrpc_status_fini(&st);
	return NULL;
}

static void
test_watch_parked_when_its_token_is_revoked_gets_no_event(void **state)
{
	static const char *const g[] = {"read:docs/watched/"};
	parked_watch pw;
	pthread_t th;
	Datasync__V1__RevokeTokenRequest rt =
	    DATASYNC__V1__REVOKE_TOKEN_REQUEST__INIT;
	nrpc_status st = {0};

	(void) state;
	memset(&pw, 0, sizeof(pw));
	make_token(&pw.t, "watcher", g, 1);
	assert_int_equal(pthread_create(&th, NULL, parked_watch_main, &pw), 0);
	/* Give the watch time to park (if it has not, it is refused at
	 * once instead: the outcome checked below is the same). */
	ds_test_sleep_ms(300);
	rt.name = "watcher";
	assert_int_equal(call(it_c, M(REVOKE_TOKEN), &rt.base, t_admin.bearer,
	    NULL, NULL, &st), NRPC_OK);
	put("docs/watched/x", "secret news");
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(pw.rc, NRPC_UNAUTHENTICATED);
	assert_string_equal(pw.reason, "TOKEN_REVOKED");
	assert_int_equal(pw.n_events, 0);
	nrpc_status_fini(&st);
}

typedef struct lock_waiter {
	tok t;
	nrpc_code rc;
	char reason[64];
} lock_waiter;

static void *
lock_waiter_main(void *arg)
{
	lock_waiter *lw = arg;
	Datasync__V1__LockRequest lk = DATASYNC__V1__LOCK_REQUEST__INIT;
	nrpc_status st = {0};

	lk.key = "docs/lw/k";
	lk.ttl_ms = 30000;
	lk.wait_ms = 20000;
	lw->rc = call(it_c, M(LOCK), &lk.base, lw->t.bearer, NULL, NULL, &st);
	(void) snprintf(lw->reason, sizeof(lw->reason), "%s", st.reason);
	nrpc_status_fini(&st);
	return NULL;
}

static void
test_lock_waiter_whose_token_is_revoked_is_not_granted(void **state)
{
	static const char *const g[] = {"lock:docs/lw/", "read:docs/lw/"};
	lock_waiter lw;
	pthread_t th;
	Datasync__V1__LockRequest lk = DATASYNC__V1__LOCK_REQUEST__INIT;
	Datasync__V1__LockResponse *held = NULL;
	Datasync__V1__UnlockRequest ul = DATASYNC__V1__UNLOCK_REQUEST__INIT;
	Datasync__V1__RevokeTokenRequest rt =
	    DATASYNC__V1__REVOKE_TOKEN_REQUEST__INIT;
	Datasync__V1__GetRequest get = DATASYNC__V1__GET_REQUEST__INIT;
	Datasync__V1__GetResponse *gr = NULL;
	nrpc_status st = {0};

	(void) state;
	memset(&lw, 0, sizeof(lw));
	make_token(&lw.t, "waiter", g, 2);
	put("docs/lw/k", "v");
	lk.key = "docs/lw/k";
	lk.ttl_ms = 30000;
	assert_int_equal(call(it_c, M(LOCK), &lk.base, t_admin.bearer, NULL,
	    (ProtobufCMessage **) &held, &st), NRPC_OK);
	assert_int_equal(pthread_create(&th, NULL, lock_waiter_main, &lw), 0);
	/* time to queue behind the holder (else it is refused at once:
	 * the same outcome) */
	ds_test_sleep_ms(300);
	rt.name = "waiter";
	assert_int_equal(call(it_c, M(REVOKE_TOKEN), &rt.base, t_admin.bearer,
	    NULL, NULL, &st), NRPC_OK);
	ul.key = "docs/lw/k";
	ul.lock_token = held->lock_token;
	assert_int_equal(call(it_c, M(UNLOCK), &ul.base, t_admin.bearer, NULL,
	    NULL, &st), NRPC_OK);
	datasync__v1__lock_response__free_unpacked(held, NULL);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(lw.rc, NRPC_UNAUTHENTICATED);
	assert_string_equal(lw.reason, "TOKEN_REVOKED");
	get.key = "docs/lw/k";
	assert_int_equal(call(it_c, M(GET), &get.base, t_admin.bearer, NULL,
	    (ProtobufCMessage **) &gr, &st), NRPC_OK);
	assert_null(gr->record->lock); /* nobody holds it */
	datasync__v1__get_response__free_unpacked(gr, NULL);
	nrpc_status_fini(&st);
}

/* --- a revoked token does not block its address --- */

#define N_PARKED (LIMIT_FAILURES + 2)

typedef struct tcp_watch {
	datasync_client *c;
	const char *bearer;
	nrpc_code rc;
	char reason[64];
} tcp_watch;

static void *
tcp_watch_main(void *arg)
{
	tcp_watch *tw = arg;
	Datasync__V1__WatchRequest wa = DATASYNC__V1__WATCH_REQUEST__INIT;
	nrpc_status st = {0};

	wa.prefix = "docs/rv/";
	wa.from_now = true;
	wa.timeout_ms = 20000;
	tw->rc = call(tw->c, M(WATCH), &wa.base, tw->bearer, NULL, NULL, &st);
	(void) snprintf(tw->reason, sizeof(tw->reason), "%s", st.reason);
	nrpc_status_fini(&st);
	return NULL;
}

/* whoami_over calls WhoAmI with bearer over c: the code, reason in st. */
static nrpc_code
whoami_over(datasync_client *c, const char *bearer, nrpc_status *st)
{
	Datasync__V1__WhoAmIRequest req = DATASYNC__V1__WHO_AM_IREQUEST__INIT;

	return call(c, M(WHO_AM_I), &req.base, bearer, NULL, NULL, st);
}

static void
test_revoked_token_does_not_block_its_tcp_peer(void **state)
{
	static const char *const g[] = {"read:docs/", "write:docs/"};
	static const char unknown[] = "Bearer dst_"
	    "3333333333333333333333333333333333333333333333333333333333333333";
	char dir[256];
	char file[300];
	const char *extra[] = {"--bootstrap-token-file", file, NULL};
	ds_daemon d;
	datasync_client *ipc = NULL;
	datasync_client *tcp = NULL;
	tok admin, doomed, fine;
	tcp_watch tw[N_PARKED];
	pthread_t th[N_PARKED];
	Datasync__V1__RevokeTokenRequest rt =
	    DATASYNC__V1__REVOKE_TOKEN_REQUEST__INIT;
	Datasync__V1__UpdateRequest up = DATASYNC__V1__UPDATE_REQUEST__INIT;
	Datasync__V1__Precondition pre = DATASYNC__V1__PRECONDITION__INIT;
	char secret[SECRET_LEN + 1];
	nrpc_status st = {0};

	(void) state;
	/* A daemon of its own: the group's has its 127.0.0.1 blocked by
	 * the test above. */
	assert_int_equal(ds_test_tmpdir(dir, sizeof(dir)), 0);
	(void) snprintf(file, sizeof(file), "%s/bootstrap.token", dir);
	assert_int_equal(ds_daemon_start(&d, false, extra), 0);
	read_secret(file, secret);
	tok_set(&admin, "bootstrap", secret);
	assert_int_equal(datasync_connect((const char *const[]){d.ipc_url}, 1,
	    5000, "rv-ipc", &ipc, &st), NRPC_OK);
	assert_int_equal(datasync_connect((const char *const[]){d.tcp_url}, 1,
	    5000, "rv-tcp", &tcp, &st), NRPC_OK);
	make_token_on(ipc, &admin, &doomed, "doomed", g, 2);
	make_token_on(ipc, &admin, &fine, "fine", g, 2);

	/* More watches of one token than the limiter's failures, parked
	 * from one tcp address, all ended by its revocation. */
	for (int i = 0; i < N_PARKED; i++) {
		memset(&tw[i], 0, sizeof(tw[i]));
		tw[i].c = tcp;
		tw[i].bearer = doomed.bearer;
		assert_int_equal(pthread_create(&th[i], NULL, tcp_watch_main,
		    &tw[i]), 0);
	}
	/* Time to park (a watch that has not is refused on arrival with
	 * TOKEN_REVOKED instead: that must not count either). */
	ds_test_sleep_ms(300);
	rt.name = "doomed";
	assert_int_equal(call(ipc, M(REVOKE_TOKEN), &rt.base, admin.bearer,
	    NULL, NULL, &st), NRPC_OK);
	pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_UNCONDITIONAL;
	pre.unconditional = true;
	up.key = "docs/rv/x";
	up.value.data = (uint8_t *) "news";
	up.value.len = 4;
	up.precondition = &pre;
	assert_int_equal(call(ipc, M(UPDATE), &up.base, admin.bearer, NULL,
	    NULL, &st), NRPC_OK);
	for (int i = 0; i < N_PARKED; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(tw[i].rc, NRPC_UNAUTHENTICATED);
		assert_string_equal(tw[i].reason, "TOKEN_REVOKED");
	}
	/* the address's other token still works */
	if (whoami_over(tcp, fine.bearer, &st) != NRPC_OK) {
		fail_msg("after %d parked watches of a revoked token: %s %s",
		    N_PARKED, st.reason, st.message);
	}

	/* Calls with the revoked token: refused, never blocking. */
	for (int i = 0; i < LIMIT_FAILURES + 1; i++) {
		assert_int_equal(whoami_over(tcp, doomed.bearer, &st),
		    NRPC_UNAUTHENTICATED);
		assert_string_equal(st.reason, "TOKEN_REVOKED");
	}
	if (whoami_over(tcp, fine.bearer, &st) != NRPC_OK) {
		fail_msg("after %d calls with a revoked token: %s %s",
		    LIMIT_FAILURES + 1, st.reason, st.message);
	}
	/* Unknown secrets are guesses: the address is blocked. */
	for (int i = 0; i < LIMIT_FAILURES + 1; i++) {
		(void) whoami_over(tcp, unknown, &st);
	}
	assert_int_equal(whoami_over(tcp, fine.bearer, &st),
	    NRPC_RESOURCE_EXHAUSTED);
	assert_string_equal(st.reason, "TOO_MANY_AUTH_FAILURES");

	datasync_close(tcp);
	datasync_close(ipc);
	assert_int_equal(ds_daemon_stop(&d), 0);
	ds_daemon_fini(&d);
	ds_test_rmdir(dir);
	nrpc_status_fini(&st);
}

/* --- two nodes on one PostgreSQL database --- */

static void
pg_exec(const char *uri, const char *sql)
{
	PGconn *c = PQconnectdb(uri);
	PGresult *r;

	if (PQstatus(c) != CONNECTION_OK) {
		fail_msg("cannot connect to %s: %s", uri, PQerrorMessage(c));
	}
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	}
	PQclear(r);
	PQfinish(c);
}

/* pg_uri_for: base's server, database db. */
static void
pg_uri_for(const char *base, const char *db, char *out, size_t n)
{
	PQconninfoOption *opts = PQconninfoParse(base, NULL);
	const char *host = "/tmp";
	const char *port = "5432";
	const char *user = "datasync";

	assert_non_null(opts);
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL) {
			continue;
		}
		if (strcmp(o->keyword, "host") == 0) {
			host = o->val;
		} else if (strcmp(o->keyword, "port") == 0) {
			port = o->val;
		} else if (strcmp(o->keyword, "user") == 0) {
			user = o->val;
		}
	}
	(void) snprintf(out, n, "postgresql:///%s?host=%s&port=%s&user=%s", db,
	    host, port, user);
	PQconninfoFree(opts);
}

/* revocation_crosses_nodes: two datasyncd on the database uri; a token
 * revoked through the first is refused by the second within a second. */
static void
revocation_crosses_nodes(const char *uri, const char *tag)
{
	char file[300];
	char secret[SECRET_LEN + 1];
	const char *extra[] = {"--db", uri, "--bootstrap-token-file", file,
	    NULL};
	ds_daemon a, b;
	datasync_client *ca = NULL;
	datasync_client *cb = NULL;
	tok admin;
	Datasync__V1__CreateTokenRequest ct =
	    DATASYNC__V1__CREATE_TOKEN_REQUEST__INIT;
	Datasync__V1__CreateTokenResponse *made = NULL;
	Datasync__V1__RevokeTokenRequest rt =
	    DATASYNC__V1__REVOKE_TOKEN_REQUEST__INIT;
	Datasync__V1__WhoAmIRequest wh = DATASYNC__V1__WHO_AM_IREQUEST__INIT;
	char *grants[] = {"read:"};
	char bearer[SECRET_LEN + 16];
	nrpc_status st = {0};
	int64_t revoked_at;
	int64_t seen_at;

	(void) snprintf(file, sizeof(file), "%s/%s-bootstrap.token", it_dir,
	    tag);
	assert_int_equal(ds_daemon_start(&a, false, extra), 0);
	assert_int_equal(ds_daemon_start(&b, false, extra), 0);
	read_secret(file, secret);
	tok_set(&admin, "bootstrap", secret);
	assert_int_equal(datasync_connect((const char *const[]){a.ipc_url}, 1,
	    5000, "node-a", &ca, &st), NRPC_OK);
	assert_int_equal(datasync_connect((const char *const[]){b.ipc_url}, 1,
	    5000, "node-b", &cb, &st), NRPC_OK);

	ct.name = "short-lived";
	ct.grants = grants;
	ct.n_grants = 1;
	assert_int_equal(call(ca, M(CREATE_TOKEN), &ct.base, admin.bearer, NULL,
	    (ProtobufCMessage **) &made, &st), NRPC_OK);
	(void) snprintf(bearer, sizeof(bearer), "Bearer %s", made->secret);
	datasync__v1__create_token_response__free_unpacked(made, NULL);
	/* node b learns of it (within its check interval) */
	{
		int64_t end = ds_test_now_ms() + 5000;

		while (call(cb, M(WHO_AM_I), &wh.base, bearer, NULL, NULL,
		    &st) != NRPC_OK) {
			assert_true(ds_test_now_ms() < end);
			ds_test_sleep_ms(10);
		}
	}
	rt.name = "short-lived";
	assert_int_equal(call(ca, M(REVOKE_TOKEN), &rt.base, admin.bearer, NULL,
	    NULL, &st), NRPC_OK);
	revoked_at = ds_test_now_ms();
	for (;;) {
		nrpc_code rc = call(cb, M(WHO_AM_I), &wh.base, bearer, NULL, NULL,
		    &st);

		if (rc == NRPC_UNAUTHENTICATED) {
			assert_string_equal(st.reason, "TOKEN_REVOKED");
			break;
		}
		assert_int_equal(rc, NRPC_OK);
		/* polled until refused; the bound below is the claim */
		assert_true(ds_test_now_ms() - revoked_at < 5000);
		ds_test_sleep_ms(10);
	}
	seen_at = ds_test_now_ms();
	printf("%s: revocation seen by the second node after %lld ms\n", tag,
	    (long long) (seen_at - revoked_at));
	assert_true(seen_at - revoked_at <= 1000);

	datasync_close(ca);
	datasync_close(cb);
	assert_int_equal(ds_daemon_stop(&a), 0);
	assert_int_equal(ds_daemon_stop(&b), 0);
	ds_daemon_fini(&a);
	ds_daemon_fini(&b);
	nrpc_status_fini(&st);
}

static void
test_revocation_reaches_a_second_process_on_sqlite_within_a_second(
    void **state)
{
	char db[300];

	(void) state;
	(void) snprintf(db, sizeof(db), "%s/shared.db", it_dir);
	revocation_crosses_nodes(db, "sqlite");
}

static void
test_revocation_reaches_a_second_node_on_postgresql_within_a_second(
    void **state)
{
	const char *base = getenv("DATASYNC_TEST_PG");
	char db[64];
	char uri[512];
	char sql[128];

	(void) state;
	if (base == NULL || base[0] == '\0') {
		fail_msg("DATASYNC_TEST_PG is not set: this test needs the ctest "
		         "fixture \"pg\"");
	}
	(void) snprintf(db, sizeof(db), "it_auth_%d", (int) getpid());
	(void) snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", db);
	pg_exec(base, sql);
	(void) snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
	pg_exec(base, sql);
	pg_uri_for(base, db, uri, sizeof(uri));
	revocation_crosses_nodes(uri, "postgresql");
	(void) snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", db);
	pg_exec(base, sql);
}

/* --- a refusal's detail --- */

/* conflict sends a CAS that must fail on key as bearer (del: a Delete
 * with a wrong if_version, else an Update if_absent) and returns the
 * detail's record (free it). */
static Datasync__V1__Record *
conflict(const char *key, const char *bearer, bool del)
{
	Datasync__V1__Precondition pre = DATASYNC__V1__PRECONDITION__INIT;
	nrpc_status st = {0};
	nrpc_code rc;
	Datasync__V1__Record *rec;

	if (del) {
		Datasync__V1__DeleteRequest req =
		    DATASYNC__V1__DELETE_REQUEST__INIT;

		pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_VERSION;
		pre.if_version = 999;
		req.key = (char *) key;
		req.precondition = &pre;
		rc = call(it_c, M(DELETE), &req.base, bearer, NULL, NULL, &st);
	} else {
		Datasync__V1__UpdateRequest req =
		    DATASYNC__V1__UPDATE_REQUEST__INIT;

		pre.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_ABSENT;
		pre.if_absent = true;
		req.key = (char *) key;
		req.value.data = (uint8_t *) "mine";
		req.value.len = 4;
		req.precondition = &pre;
		rc = call(it_c, M(UPDATE), &req.base, bearer, NULL, NULL, &st);
	}
	if (rc != NRPC_ABORTED) {
		fail_msg("%s %s: got %s %s (%s), want ABORTED",
		    del ? "Delete" : "Update", key, nrpc_code_name(rc), st.reason,
		    st.message);
	}
	assert_string_equal(st.detail_type, "datasync.v1.Record");
	rec = datasync__v1__record__unpack(NULL, st.detail_len, st.detail);
	assert_non_null(rec);
	nrpc_status_fini(&st);
	return rec;
}

/* A write-only token may not Get the key, so the conflict it provokes
 * must not show it the value either: only what a CAS retry needs. Each
 * CAS is sent three times, so that both the store's refusal and the
 * writer's head cache (which answers a known conflict without SQL) are
 * asked. */
static void
test_conflict_detail_shows_the_value_only_to_a_reader(void **state)
{
	static const char key[] = "docs/conflict-secret";
	static const char value[] = "the-secret-value";

	(void) state;
	put(key, value);
	for (int i = 0; i < 6; i++) {
		Datasync__V1__Record *r = conflict(key, t_wo.bearer, i % 2 == 1);

		assert_string_equal(r->key, key);
		assert_true(r->version >= 1);
		assert_true(r->revision >= 1);
		assert_int_equal(r->value.len, 0);
		assert_string_equal(r->content_type, "");
		assert_string_equal(r->updated_by, "");
		datasync__v1__record__free_unpacked(r, NULL);

		r = conflict(key, t_rw.bearer, i % 2 == 1);
		assert_true(r->version >= 1);
		assert_int_equal(r->value.len, strlen(value));
		assert_memory_equal(r->value.data, value, strlen(value));
		assert_string_equal(r->updated_by, "bootstrap");
		datasync__v1__record__free_unpacked(r, NULL);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_method_against_every_kind_of_caller),
	    cmocka_unit_test(test_whoami_names_the_token_or_none),
	    cmocka_unit_test(
	        test_list_or_watch_wider_than_the_read_grant_is_refused),
	    cmocka_unit_test(test_author_and_lock_owner_are_the_token_name),
	    cmocka_unit_test(test_request_ids_are_scoped_per_token),
	    cmocka_unit_test(
	        test_conflict_detail_shows_the_value_only_to_a_reader),
	    cmocka_unit_test(
	        test_tcp_peer_blocked_after_failures_others_unaffected),
	    cmocka_unit_test(test_other_tcp_address_is_not_blocked),
	    cmocka_unit_test(
	        test_watch_parked_when_its_token_is_revoked_gets_no_event),
	    cmocka_unit_test(
	        test_lock_waiter_whose_token_is_revoked_is_not_granted),
	    cmocka_unit_test(test_revoked_token_does_not_block_its_tcp_peer),
	    cmocka_unit_test(
	        test_revocation_reaches_a_second_process_on_sqlite_within_a_second),
	    cmocka_unit_test(
	        test_revocation_reaches_a_second_node_on_postgresql_within_a_second),
	};

	if (getenv("IT_AUTH_FILTER") != NULL) {
		cmocka_set_test_filter(getenv("IT_AUTH_FILTER"));
	}
	return cmocka_run_group_tests(tests, group_setup, group_teardown) +
	    ds_daemon_failures();
}
