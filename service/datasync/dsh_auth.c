/*
 * dsh_auth.c - the per-node token cache, authentication, authorization,
 * the failure limiter, the token RPCs and the bootstrap token (DESIGN
 * §11). See dsh_auth.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasync/v1/datasync.nrpc.h"
#include "ds_alloc.h"
#include "ds_log.h"
#include "dsh_auth.h"
#include "dsh_int.h"

/* Keys and prefixes are quoted in messages up to this many bytes, so a
 * message naming a 512-byte key still fits NRPC_MESSAGE_MAX. */
#define DSH_AUTH_QUOTE_MAX 48

/* DSH_FAIL sets st (no field) and evaluates to its code. */
#define DSH_FAIL(st, code_, reason, ...)                                       \
	(nrpc_status_set((st), (code_), (reason), NULL, __VA_ARGS__),          \
	    (st)->code)

/* dsh_auth_name: an interned token name; never freed before the auth. */
typedef struct dsh_auth_name {
	struct dsh_auth_name *next;
	char text[];
} dsh_auth_name;

struct dsh_auth_tok {
	const char *name;        /* interned */
	uint8_t hash[AUTH_HASH_BYTES];
	auth_grants grants;      /* owned */
	char *grants_text;       /* owned, canonical */
	int64_t created_at_ms;
	bool revoked;
	int64_t revoked_at_ms;
};

/* dsh_auth_set: every token at one generation; immutable once published,
 * freed by whoever drops the last reference. */
struct dsh_auth_set {
	atomic_uint refs;
	uint64_t generation;
	dsh_auth_tok *toks;      /* owned; sorted by hash */
	size_t n;
};

struct dsh_auth {
	store *store;            /* borrowed */
	auth_limiter *limiter;   /* owned */
	const ds_clock *mono;
	_Atomic int64_t next_check_ms; /* monotonic */

	pthread_mutex_t set_mu;  /* guards set (the pointer and taking a
	                          * reference to it) */
	dsh_auth_set *set;       /* a reference held by the auth */

	pthread_mutex_t load_mu; /* guards conn and names: one thread reads
	                          * or writes tokens at a time */
	store_conn *conn;        /* owned */
	dsh_auth_name *names;    /* owned list */
};

/* --- sets --- */

static void
dsh_auth_set_unref(dsh_auth_set *s)
{
	if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1) {
		return;
	}
	for (size_t i = 0; i < s->n; i++) {
		auth_grants_fini(&s->toks[i].grants);
		ds_free(s->toks[i].grants_text);
	}
	ds_free(s->toks);
	ds_free(s);
}

static dsh_auth_set *
dsh_auth_set_get(dsh_auth *a)
{
	dsh_auth_set *s;

	pthread_mutex_lock(&a->set_mu);
	s = a->set;
	atomic_fetch_add(&s->refs, 1);
	pthread_mutex_unlock(&a->set_mu);
	return s;
}

static int
dsh_auth_tok_cmp(const void *x, const void *y)
{
	const dsh_auth_tok *a = x;
	const dsh_auth_tok *b = y;

	return memcmp(a->hash, b->hash, AUTH_HASH_BYTES);
}

/* dsh_auth_find: the token with hash, or NULL. The binary search's
 * timing says how SHA-256 of the presented secret orders against the
 * stored hashes, which says nothing usable about any stored secret; the
 * final match is auth_hash_equal's constant-time compare. */
static const dsh_auth_tok *
dsh_auth_find(const dsh_auth_set *s, const uint8_t hash[AUTH_HASH_BYTES])
{
	dsh_auth_tok key;
	const dsh_auth_tok *t;

	if (s->n == 0) {
		return NULL;
	}
	memcpy(key.hash, hash, AUTH_HASH_BYTES);
	t = bsearch(&key, s->toks, s->n, sizeof(*s->toks), dsh_auth_tok_cmp);
	if (t == NULL || !auth_hash_equal(t->hash, hash)) {
		return NULL;
	}
	return t;
}

/* dsh_auth_intern returns a stable copy of name: the old set's when it
 * knew the token, else a new one kept until the auth is destroyed (names
 * are never reused and at most STORE_AUTH_TOKENS_MAX exist, so this is
 * bounded). load_mu held. */
static const char *
dsh_auth_intern(dsh_auth *a, const dsh_auth_set *old,
    const store_auth_token *t)
{
	const dsh_auth_tok *known = old != NULL ? dsh_auth_find(old, t->hash) :
	                                          NULL;
	size_t len = strlen(t->name);
	dsh_auth_name *n;

	if (known != NULL && strcmp(known->name, t->name) == 0) {
		return known->name;
	}
	if ((n = ds_alloc(sizeof(*n) + len + 1)) == NULL) {
		return NULL;
	}
	memcpy(n->text, t->name, len + 1);
	n->next = a->names;
	a->names = n;
	return n->text;
}

/* dsh_auth_reload_locked reads every token and publishes them as the new
 * set. load_mu held. On failure the old set stays. */
static nrpc_code
dsh_auth_reload_locked(dsh_auth *a, nrpc_status *st)
{
	store_auth_token *toks = NULL;
	size_t n = 0;
	uint64_t gen = 0;
	store_error err;
	dsh_auth_set *s = NULL;
	dsh_auth_set *old;
	nrpc_code rv = NRPC_OK;

	memset(&err, 0, sizeof(err));
	if (store_auth_list(a->conn, &toks, &n, &gen, &err) != STORE_OK) {
		rv = DSH_FAIL(st, NRPC_UNAVAILABLE,
		    store_reason(err.code), "cannot read the tokens: %s",
		    err.message);
		goto out;
	}
	if ((s = ds_calloc(1, sizeof(*s))) == NULL ||
	    (n > 0 && (s->toks = ds_calloc(n, sizeof(*s->toks))) == NULL)) {
		goto nomem;
	}
	atomic_init(&s->refs, 1);
	s->generation = gen;
	old = a->set;
	for (size_t i = 0; i < n; i++) {
		dsh_auth_tok *t = &s->toks[s->n];
		auth_error aerr;

		if (auth_grants_parse_text(toks[i].grants, &t->grants,
		        &aerr) != 0) {
			/* Not one auth_grants_format wrote: a token nobody can
			 * use is safer than a guess at what it meant. */
			ds_log(DS_LOG_WARN, "auth",
			    "token \"%s\": its grants cannot be read (%s); it is "
			    "refused", toks[i].name, aerr.message);
			continue;
		}
		if ((t->name = dsh_auth_intern(a, old, &toks[i])) == NULL ||
		    (t->grants_text = ds_strdup(toks[i].grants)) == NULL) {
			auth_grants_fini(&t->grants);
			goto nomem;
		}
		memcpy(t->hash, toks[i].hash, AUTH_HASH_BYTES);
		t->created_at_ms = toks[i].created_at_ms;
		t->revoked = toks[i].revoked;
		t->revoked_at_ms = toks[i].revoked_at_ms;
		s->n++;
	}
	if (s->n > 1) {
		qsort(s->toks, s->n, sizeof(*s->toks), dsh_auth_tok_cmp);
	}
	pthread_mutex_lock(&a->set_mu);
	a->set = s;
	pthread_mutex_unlock(&a->set_mu);
	s = NULL;
	dsh_auth_set_unref(old);
	goto out;
nomem:
	rv = DSH_FAIL(st, NRPC_RESOURCE_EXHAUSTED,
	    "RESOURCE_EXHAUSTED", "out of memory loading %zu tokens", n);
out:
	dsh_auth_set_unref(s);
	store_auth_tokens_free(toks, n);
	return rv;
}

/* dsh_auth_refresh reloads the tokens when the store's generation moved,
 * at most every DSH_AUTH_CHECK_MS, by one thread; the others go on with
 * the set they have. */
static void
dsh_auth_refresh(dsh_auth *a)
{
	int64_t now = ds_clock_now_ms(a->mono);
	int64_t due = atomic_load(&a->next_check_ms);
	uint64_t gen;
	store_error err;
	nrpc_status st;

	if (now < due ||
	    !atomic_compare_exchange_strong(&a->next_check_ms, &due,
	        now + DSH_AUTH_CHECK_MS)) {
		return;
	}
	if (pthread_mutex_trylock(&a->load_mu) != 0) {
		return; /* a token write or reload is under way */
	}
	memset(&err, 0, sizeof(err));
	memset(&st, 0, sizeof(st));
	if (store_auth_generation(a->conn, &gen, &err) != STORE_OK) {
		/* Keep serving with what we have: the database being away
		 * must not lock everybody out (nor let anybody in). */
		ds_log(DS_LOG_WARN, "auth", "cannot check the tokens: %s",
		    err.message);
	} else if (gen != a->set->generation &&
	    dsh_auth_reload_locked(a, &st) != NRPC_OK) {
		ds_log(DS_LOG_WARN, "auth", "%s", st.message);
	}
	pthread_mutex_unlock(&a->load_mu);
}

/* --- lifecycle --- */

nrpc_code
dsh_auth_create(store *s, dsh_auth **out, nrpc_status *st)
{
	dsh_auth *a;
	store_error err;
	nrpc_code rv;

	memset(&err, 0, sizeof(err));
	if ((a = ds_calloc(1, sizeof(*a))) == NULL) {
		return DSH_FAIL(st, NRPC_RESOURCE_EXHAUSTED,
		    "RESOURCE_EXHAUSTED", "out of memory creating the token "
		    "cache");
	}
	a->store = s;
	a->mono = ds_clock_monotonic();
	pthread_mutex_init(&a->set_mu, NULL);
	pthread_mutex_init(&a->load_mu, NULL);
	if ((a->set = ds_calloc(1, sizeof(*a->set))) == NULL ||
	    (a->limiter = auth_limiter_new(NULL)) == NULL) {
		dsh_auth_destroy(a);
		return DSH_FAIL(st, NRPC_RESOURCE_EXHAUSTED,
		    "RESOURCE_EXHAUSTED", "out of memory creating the token "
		    "cache");
	}
	atomic_init(&a->set->refs, 1);
	if (store_conn_open(s, &a->conn, &err) != STORE_OK) {
		dsh_auth_destroy(a);
		return DSH_FAIL(st, NRPC_UNAVAILABLE,
		    store_reason(err.code), "cannot open the token cache's "
		    "connection: %s", err.message);
	}
	pthread_mutex_lock(&a->load_mu);
	rv = dsh_auth_reload_locked(a, st);
	pthread_mutex_unlock(&a->load_mu);
	if (rv != NRPC_OK) {
		dsh_auth_destroy(a);
		return rv;
	}
	atomic_store(&a->next_check_ms,
	    ds_clock_now_ms(a->mono) + DSH_AUTH_CHECK_MS);
	*out = a;
	return NRPC_OK;
}

void
dsh_auth_destroy(dsh_auth *a)
{
	if (a == NULL) {
		return;
	}
	dsh_auth_set_unref(a->set);
	store_conn_close(a->conn);
	auth_limiter_free(a->limiter);
	while (a->names != NULL) {
		dsh_auth_name *n = a->names;

		a->names = n->next;
		ds_free(n);
	}
	pthread_mutex_destroy(&a->load_mu);
	pthread_mutex_destroy(&a->set_mu);
	ds_free(a);
}

/* --- authentication --- */

/* dsh_auth_unauthenticated fails st with UNAUTHENTICATED and, when
 * count, counts a failure against a network peer. */
static nrpc_code
dsh_auth_unauthenticated(dsh_auth *a, nrpc_peer_kind kind, const char *peer,
    bool count, nrpc_status *st, const char *reason, const char *msg)
{
	if (count && kind == NRPC_PEER_NET) {
		(void) auth_limiter_fail(a->limiter, peer); /* the next call
		                                              * sees the block */
	}
	nrpc_status_set(st, NRPC_UNAUTHENTICATED, reason, DSH_AUTH_METADATA,
	    "%s", msg);
	return NRPC_UNAUTHENTICATED;
}

nrpc_code
dsh_auth_authenticate(dsh_auth *a, nrpc_call *call, unsigned flags,
    dsh_principal *p, nrpc_status *st)
{
	bool optional = (flags & DSH_AUTHN_OPTIONAL) != 0;
	bool recheck = (flags & DSH_AUTHN_RECHECK) != 0;
	char peer[NRPC_PEER_MAX];
	nrpc_peer_kind kind;
	const char *value;
	const char *secret;
	size_t len;
	uint8_t hash[AUTH_HASH_BYTES];
	int64_t retry = 0;
	dsh_auth_set *s;
	const dsh_auth_tok *t;

	memset(p, 0, sizeof(*p));
	if (a == NULL) {
		return NRPC_OK;
	}
	/* inproc:// and ipc:// are exempt: the embedded gateway (which
	 * limits each HTTP peer itself) and local tools speak for many. */
	kind = nrpc_call_peer(call, peer, sizeof(peer));
	if (!recheck && kind == NRPC_PEER_NET &&
	    auth_limiter_blocked(a->limiter, peer, &retry)) {
		nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED,
		    "TOO_MANY_AUTH_FAILURES", DSH_AUTH_METADATA,
		    "%d failed authentications from %s within %d ms: refused "
		    "for %lld ms more", AUTH_LIMIT_FAILURES, peer,
		    AUTH_LIMIT_WINDOW_MS, (long long) retry);
		st->retry_after_ms = retry > 0 ? (uint32_t) retry : 1;
		return NRPC_RESOURCE_EXHAUSTED;
	}
	if ((value = nrpc_call_metadata(call, DSH_AUTH_METADATA)) == NULL) {
		if (optional) {
			return NRPC_OK;
		}
		nrpc_status_set(st, NRPC_UNAUTHENTICATED, "TOKEN_MISSING",
		    DSH_AUTH_METADATA, "this server requires a token: "
		    "authorization metadata \"Bearer dst_...\"");
		return NRPC_UNAUTHENTICATED;
	}
	if (!auth_bearer(value, &secret, &len) ||
	    !auth_secret_well_formed(secret, len)) {
		return dsh_auth_unauthenticated(a, kind, peer, !recheck, st,
		    "TOKEN_MALFORMED", "authorization is not \"Bearer \" and "
		    "a token (\"dst_\" and 64 lowercase hex digits)");
	}
	dsh_auth_refresh(a);
	auth_hash(secret, len, hash);
	s = dsh_auth_set_get(a);
	if ((t = dsh_auth_find(s, hash)) == NULL || t->revoked) {
		bool revoked = t != NULL;

		dsh_auth_set_unref(s);
		/* A revoked token is a real token's secret, not brute
		 * force: refusing it costs the peer nothing more. */
		return dsh_auth_unauthenticated(a, kind, peer,
		    !recheck && !revoked, st, revoked ? "TOKEN_REVOKED" : "TOKEN_UNKNOWN",
		    revoked ? "this token was revoked" :
		              "no such token (unknown secret)");
	}
	/* No auth_limiter_ok here: a peer holding one valid token must not
	 * wipe its record of bad guesses by interleaving good calls; the
	 * failures age out of the window on their own. */
	p->set = s;
	p->tok = t;
	p->name = t->name;
	return NRPC_OK;
}

void
dsh_principal_release(dsh_principal *p)
{
	if (p == NULL) {
		return;
	}
	dsh_auth_set_unref(p->set);
	p->set = NULL;
	p->tok = NULL;
}

/* --- authorization --- */

/* dsh_auth_rights_text writes the rights of grants' prefix why ("read,
 * lock") into buf. */
static void
dsh_auth_rights_text(const auth_grants *g, const char *why, char *buf,
    size_t len)
{
	static const auth_right all[] = {AUTH_READ, AUTH_WRITE, AUTH_LOCK};
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < g->n; i++) {
		if (g->g[i].prefix != why && strcmp(g->g[i].prefix, why) != 0) {
			continue;
		}
		for (size_t r = 0; r < sizeof(all) / sizeof(all[0]); r++) {
			int k;

			if ((g->g[i].rights & all[r]) == 0 || used >= len) {
				continue;
			}
			k = snprintf(buf + used, len - used, "%s%s",
			    used > 0 ? ", " : "", auth_right_name(all[r]));
			used += k > 0 ? (size_t) k : 0;
		}
		break;
	}
	if (buf[0] == '\0') {
		(void) snprintf(buf, len, "none");
	}
}

nrpc_code
dsh_auth_authorize(const dsh_principal *p, auth_right right, const char *key,
    size_t key_len, bool range, nrpc_status *st)
{
	const auth_grants *g;
	const char *why = NULL;
	char rights[32];
	int klen = key_len > DSH_AUTH_QUOTE_MAX ? DSH_AUTH_QUOTE_MAX :
	                                          (int) key_len;
	const char *more = key_len > DSH_AUTH_QUOTE_MAX ? "..." : "";

	if (p->name == NULL) {
		return NRPC_OK;
	}
	g = &p->tok->grants;
	if (right == AUTH_ADMIN) {
		if (g->admin) {
			return NRPC_OK;
		}
		nrpc_status_set(st, NRPC_PERMISSION_DENIED, "PERMISSION_DENIED",
		    NULL, "token \"%s\" has no admin right (managing tokens "
		    "needs the grant \"admin\")", p->name);
		return NRPC_PERMISSION_DENIED;
	}
	if (range ? auth_allows_range(g, right, key, key_len, &why) :
	            auth_allows(g, right, key, key_len, &why)) {
		return NRPC_OK;
	}
	if (why == NULL) {
		nrpc_status_set(st, NRPC_PERMISSION_DENIED, "PERMISSION_DENIED",
		    range ? "prefix" : "key",
		    "token \"%s\" has no %s right on %s\"%.*s%s\" (no grant of "
		    "it covers that %s)", p->name, auth_right_name(right),
		    range ? "the keys under " : "", klen, key, more,
		    range ? "prefix" : "key");
		return NRPC_PERMISSION_DENIED;
	}
	dsh_auth_rights_text(g, why, rights, sizeof(rights));
	nrpc_status_set(st, NRPC_PERMISSION_DENIED, "PERMISSION_DENIED",
	    range ? "prefix" : "key",
	    "token \"%s\" has no %s right on %s\"%.*s%s\" (its grants for "
	    "prefix \"%.*s%s\" are %s)", p->name, auth_right_name(right),
	    range ? "the keys under " : "", klen, key, more,
	    DSH_AUTH_QUOTE_MAX, why,
	    strlen(why) > DSH_AUTH_QUOTE_MAX ? "..." : "", rights);
	return NRPC_PERMISSION_DENIED;
}

/* --- token messages --- */

/* dsh_auth_grant_lines splits canonical grants text (one grant a line)
 * into *out, ONE owned block (ds_free) holding the *n pointers and a copy
 * of the text they point into. */
static int
dsh_auth_grant_lines(const char *text, char ***out, size_t *n)
{
	size_t count = 1;
	size_t len = strlen(text);
	char **lines;
	char *s;

	*out = NULL;
	*n = 0;
	if (len == 0) {
		return 0;
	}
	for (const char *c = text; *c != '\0'; c++) {
		count += *c == '\n';
	}
	if ((lines = ds_alloc(count * sizeof(*lines) + len + 1)) == NULL) {
		return -2;
	}
	s = (char *) (lines + count);
	memcpy(s, text, len + 1);
	for (size_t i = 0; i < count; i++) {
		char *nl = strchr(s, '\n');

		lines[i] = s;
		if (nl != NULL) {
			*nl = '\0';
			s = nl + 1;
		}
	}
	*out = lines;
	*n = count;
	return 0;
}

/* dsh_token_msg fills *out from a token's fields (borrowed); *lines owned
 * (ds_free): the grants. */
static int
dsh_token_msg(const char *name, const char *grants, int64_t created_at_ms,
    bool revoked, int64_t revoked_at_ms, Datasync__V1__Token *out,
    char ***lines)
{
	size_t n;
	int rv;

	datasync__v1__token__init(out);
	if ((rv = dsh_auth_grant_lines(grants, lines, &n)) != 0) {
		return rv;
	}
	out->name = (char *) name;
	out->grants = *lines;
	out->n_grants = n;
	out->created_at_ms = created_at_ms;
	out->revoked = revoked;
	out->revoked_at_ms = revoked_at_ms;
	return 0;
}

static int
dsh_token_msg_of(const store_auth_token *t, Datasync__V1__Token *out,
    char ***lines)
{
	return dsh_token_msg(t->name, t->grants, t->created_at_ms, t->revoked,
	    t->revoked_at_ms, out, lines);
}

int
dsh_auth_token_view(const dsh_principal *p, Datasync__V1__Token *out,
    char ***grants)
{
	const dsh_auth_tok *t = p->tok;

	return dsh_token_msg(p->name, t->grants_text, t->created_at_ms,
	    t->revoked, t->revoked_at_ms, out, grants);
}

/* --- token management (RPCs and datasyncd token ...) --- */

static nrpc_code
dsh_token_store_status(const store_error *err, const char *name,
    nrpc_status *st)
{
	switch (err->code) {
	case STORE_ECONFLICT:
		nrpc_status_set(st, NRPC_ALREADY_EXISTS, "TOKEN_EXISTS", "name",
		    "a token named \"%s\" exists already (names are never "
		    "reused, revoked ones included)", name);
		return st->code;
	case STORE_ENOTFOUND:
		nrpc_status_set(st, NRPC_NOT_FOUND, "NOT_FOUND", "name",
		    "no token named \"%s\"", name);
		return st->code;
	default:
		return dsh_status_from_store(err, NULL, false, st);
	}
}

nrpc_code
dsh_token_create(store_conn *c, const char *name, const char *const *grants,
    size_t n, char secret[AUTH_SECRET_TEXT_LEN + 1], store_auth_token *out,
    nrpc_status *st)
{
	auth_error aerr;
	auth_grants g;
	char *text = NULL;
	uint8_t hash[AUTH_HASH_BYTES];
	store_error err;
	nrpc_code rv = NRPC_OK;

	memset(&g, 0, sizeof(g));
	memset(&err, 0, sizeof(err));
	memset(&aerr, 0, sizeof(aerr));
	if (!auth_name_valid(name, strlen(name), &aerr)) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    "name", "%s", aerr.message);
		return st->code;
	}
	switch (auth_grants_parse(grants, n, &g, &aerr)) {
	case 0:
		break;
	case -1:
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    "grants", "%s", aerr.message);
		return st->code;
	default:
		goto nomem;
	}
	if (auth_grants_format(&g, &text) != 0) {
		goto nomem;
	}
	if (auth_secret_new(secret) != 0) {
		nrpc_status_set(st, NRPC_UNAVAILABLE, "NO_RANDOMNESS", NULL,
		    "the system gave no randomness for a secret (getrandom)");
		rv = st->code;
		goto out;
	}
	auth_hash(secret, AUTH_SECRET_TEXT_LEN, hash);
	if (store_auth_create(c, name, hash, text, out, &err) != STORE_OK) {
		rv = dsh_token_store_status(&err, name, st);
		memset(secret, 0, AUTH_SECRET_TEXT_LEN + 1);
	}
	goto out;
nomem:
	nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED", NULL,
	    "out of memory creating a token");
	rv = st->code;
out:
	ds_free(text);
	auth_grants_fini(&g);
	return rv;
}

nrpc_code
dsh_token_revoke(store_conn *c, const char *name, store_auth_token *out,
    nrpc_status *st)
{
	store_error err;

	memset(&err, 0, sizeof(err));
	if (store_auth_revoke(c, name, out, &err) != STORE_OK) {
		return dsh_token_store_status(&err, name, st);
	}
	return NRPC_OK;
}

void
dsh_auth_create_token(dsh_auth *a, nrpc_call *call,
    const Datasync__V1__CreateTokenRequest *req)
{
	char secret[AUTH_SECRET_TEXT_LEN + 1];
	store_auth_token t;
	nrpc_status st;
	Datasync__V1__CreateTokenResponse resp =
	    DATASYNC__V1__CREATE_TOKEN_RESPONSE__INIT;
	Datasync__V1__Token tok;
	char **lines = NULL;
	nrpc_code rv;

	memset(&t, 0, sizeof(t));
	memset(&st, 0, sizeof(st));
	pthread_mutex_lock(&a->load_mu);
	rv = dsh_token_create(a->conn, req->name,
	    (const char *const *) req->grants, req->n_grants, secret, &t, &st);
	if (rv == NRPC_OK) {
		nrpc_status rst;

		/* This node sees its own change at once. */
		memset(&rst, 0, sizeof(rst));
		(void) dsh_auth_reload_locked(a, &rst); /* else: at the next
		                                         * check */
	}
	pthread_mutex_unlock(&a->load_mu);
	if (rv != NRPC_OK) {
		nrpc_call_finish(call, &st, NULL);
		goto out;
	}
	if (dsh_token_msg_of(&t, &tok, &lines) != 0) {
		nrpc_call_fail(call, NRPC_RESOURCE_EXHAUSTED,
		    "RESOURCE_EXHAUSTED", NULL, "out of memory answering; the "
		    "token \"%s\" was created: revoke it", req->name);
		goto out;
	}
	ds_log(DS_LOG_INFO, "auth", "token \"%s\" created", t.name);
	resp.token = &tok;
	resp.secret = secret;
	datasync_v1_data_sync_create_token_reply(call, &resp);
out:
	memset(secret, 0, sizeof(secret));
	ds_free(lines);
	store_auth_token_fini(&t);
	nrpc_status_fini(&st);
}

static int
dsh_token_name_cmp(const void *x, const void *y)
{
	const Datasync__V1__Token *const *a = x;
	const Datasync__V1__Token *const *b = y;

	return strcmp((*a)->name, (*b)->name);
}

void
dsh_auth_list_tokens(dsh_auth *a, nrpc_call *call)
{
	dsh_auth_set *s;
	Datasync__V1__ListTokensResponse resp =
	    DATASYNC__V1__LIST_TOKENS_RESPONSE__INIT;
	Datasync__V1__Token *toks = NULL;
	Datasync__V1__Token **ptrs = NULL;
	char ***lines = NULL;
	size_t n;

	/* The cache is the store's tokens as of at most DSH_AUTH_CHECK_MS
	 * ago (this node's own changes at once). */
	dsh_auth_refresh(a);
	s = dsh_auth_set_get(a);
	n = s->n;
	if (n > 0 &&
	    ((toks = ds_calloc(n, sizeof(*toks))) == NULL ||
	        (ptrs = ds_calloc(n, sizeof(*ptrs))) == NULL ||
	        (lines = ds_calloc(n, sizeof(*lines))) == NULL)) {
		goto nomem;
	}
	for (size_t i = 0; i < n; i++) {
		const dsh_auth_tok *t = &s->toks[i];

		if (dsh_token_msg(t->name, t->grants_text, t->created_at_ms,
		        t->revoked, t->revoked_at_ms, &toks[i], &lines[i]) != 0) {
			goto nomem;
		}
		ptrs[i] = &toks[i];
	}
	/* by name, as the store lists them (the set is by hash) */
	if (n > 1) {
		qsort(ptrs, n, sizeof(*ptrs), dsh_token_name_cmp);
	}
	resp.tokens = ptrs;
	resp.n_tokens = n;
	datasync_v1_data_sync_list_tokens_reply(call, &resp);
	goto out;
nomem:
	nrpc_call_fail(call, NRPC_RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED", NULL,
	    "out of memory listing %zu tokens", n);
out:
	for (size_t i = 0; lines != NULL && i < n; i++) {
		ds_free(lines[i]);
	}
	ds_free(lines);
	ds_free(ptrs);
	ds_free(toks);
	dsh_auth_set_unref(s);
}

void
dsh_auth_revoke_token(dsh_auth *a, nrpc_call *call,
    const Datasync__V1__RevokeTokenRequest *req)
{
	store_auth_token t;
	nrpc_status st;
	Datasync__V1__RevokeTokenResponse resp =
	    DATASYNC__V1__REVOKE_TOKEN_RESPONSE__INIT;
	Datasync__V1__Token tok;
	char **lines = NULL;
	nrpc_code rv;

	memset(&t, 0, sizeof(t));
	memset(&st, 0, sizeof(st));
	pthread_mutex_lock(&a->load_mu);
	rv = dsh_token_revoke(a->conn, req->name, &t, &st);
	if (rv == NRPC_OK) {
		nrpc_status rst;

		memset(&rst, 0, sizeof(rst));
		(void) dsh_auth_reload_locked(a, &rst); /* else: at the next
		                                         * check */
	}
	pthread_mutex_unlock(&a->load_mu);
	if (rv != NRPC_OK) {
		nrpc_call_finish(call, &st, NULL);
		goto out;
	}
	if (dsh_token_msg_of(&t, &tok, &lines) != 0) {
		nrpc_call_fail(call, NRPC_RESOURCE_EXHAUSTED,
		    "RESOURCE_EXHAUSTED", NULL, "out of memory answering; the "
		    "token \"%s\" was revoked", req->name);
		goto out;
	}
	ds_log(DS_LOG_INFO, "auth", "token \"%s\" revoked", t.name);
	resp.token = &tok;
	datasync_v1_data_sync_revoke_token_reply(call, &resp);
out:
	ds_free(lines);
	store_auth_token_fini(&t);
	nrpc_status_fini(&st);
}

/* --- the bootstrap token --- */

#define DSH_BOOTSTRAP_NAME "bootstrap"
/* Names tried when "bootstrap" is taken by another secret. */
#define DSH_BOOTSTRAP_TRIES 100

/* Permission bits a file holding an admin secret must not have: any
 * access for group or other. */
#define DSH_BOOTSTRAP_OPEN_BITS ((mode_t) (S_IRWXG | S_IRWXO))

/* dsh_bootstrap_read reads the secret from path: *found false when the
 * file does not exist. A file that group or other may read or write is
 * refused (INVALID_ARGUMENT): the secret is an admin's, and anyone who
 * may write it chooses the admin's secret. */
static nrpc_code
dsh_bootstrap_read(const char *path, char secret[AUTH_SECRET_TEXT_LEN + 1],
    bool *found, nrpc_status *st)
{
	char buf[AUTH_SECRET_TEXT_LEN + 4];
	size_t n = 0;
	ssize_t got;
	struct stat sb;
	int fd;

	*found = false;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		if (errno == ENOENT) {
			return NRPC_OK;
		}
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    "bootstrap-token-file", "cannot read %s: %s", path,
		    strerror(errno));
		return st->code;
	}
	/* fstat on the open file: no window for a swap after the check */
	if (fstat(fd, &sb) != 0) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    "bootstrap-token-file", "cannot stat %s: %s", path,
		    strerror(errno));
		(void) close(fd);
		return st->code;
	}
	if (!S_ISREG(sb.st_mode)) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    "bootstrap-token-file", "%s is not a regular file", path);
		(void) close(fd);
		return st->code;
	}
	if ((sb.st_mode & DSH_BOOTSTRAP_OPEN_BITS) != 0) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    "bootstrap-token-file", "%s has mode %04o: group or other "
		    "may read or write the admin secret; chmod 600 %s", path,
		    (unsigned) (sb.st_mode & 07777), path);
		(void) close(fd);
		return st->code;
	}
	while (n < sizeof(buf) - 1 &&
	    (got = read(fd, buf + n, sizeof(buf) - 1 - n)) != 0) {
		if (got < 0) {
			if (errno == EINTR) {
				continue;
			}
			nrpc_status_set(st, NRPC_INVALID_ARGUMENT,
			    "INVALID_ARGUMENT", "bootstrap-token-file",
			    "cannot read %s: %s", path, strerror(errno));
			(void) close(fd);
			return st->code;
		}
		n += (size_t) got;
	}
	(void) close(fd); /* read-only */
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\n') {
		buf[--n] = '\0';
	}
	if (!auth_secret_well_formed(buf, n)) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    "bootstrap-token-file", "%s must hold one token alone "
		    "(\"dst_\" and 64 lowercase hex digits, a newline after "
		    "it allowed)", path);
		return st->code;
	}
	memcpy(secret, buf, AUTH_SECRET_TEXT_LEN + 1);
	memset(buf, 0, sizeof(buf));
	*found = true;
	return NRPC_OK;
}

/* dsh_bootstrap_write creates path (mode 0600, never over an existing
 * file) holding a fresh secret. */
static nrpc_code
dsh_bootstrap_write(const char *path, char secret[AUTH_SECRET_TEXT_LEN + 1],
    bool *raced, nrpc_status *st)
{
	char line[AUTH_SECRET_TEXT_LEN + 2];
	int fd;
	bool ok;

	*raced = false;
	if (auth_secret_new(secret) != 0) {
		nrpc_status_set(st, NRPC_UNAVAILABLE, "NO_RANDOMNESS", NULL,
		    "the system gave no randomness for a secret (getrandom)");
		return st->code;
	}
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) <
	    0) {
		*raced = errno == EEXIST;
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    "bootstrap-token-file", "cannot create %s: %s", path,
		    strerror(errno));
		return st->code;
	}
	(void) snprintf(line, sizeof(line), "%s\n", secret);
	ok = write(fd, line, AUTH_SECRET_TEXT_LEN + 1) ==
	        AUTH_SECRET_TEXT_LEN + 1 &&
	    fsync(fd) == 0;
	memset(line, 0, sizeof(line));
	if (close(fd) != 0 || !ok) {
		nrpc_status_set(st, NRPC_UNAVAILABLE, "IO_ERROR",
		    "bootstrap-token-file", "cannot write %s: %s", path,
		    strerror(errno));
		(void) unlink(path); /* half a file is no secret */
		return st->code;
	}
	return NRPC_OK;
}

/* dsh_bootstrap_known: has a token the hash? (a revoked one is
 * reported: it admits nobody) */
static bool
dsh_bootstrap_known(const store_auth_token *toks, size_t n,
    const uint8_t hash[AUTH_HASH_BYTES], const char *path)
{
	for (size_t i = 0; i < n; i++) {
		if (auth_hash_equal(toks[i].hash, hash)) {
			if (toks[i].revoked) {
				ds_log(DS_LOG_WARN, "auth", "the token in %s "
				    "(\"%s\") is revoked: it admits nobody",
				    path, toks[i].name);
			}
			return true;
		}
	}
	return false;
}

nrpc_code
dsh_token_bootstrap(store *s, const char *path, nrpc_status *st)
{
	char secret[AUTH_SECRET_TEXT_LEN + 1];
	uint8_t hash[AUTH_HASH_BYTES];
	bool found;
	bool made = false;
	store_conn *c = NULL;
	store_auth_token *toks = NULL;
	size_t n = 0;
	uint64_t gen;
	store_error err;
	nrpc_code rv;

	memset(&err, 0, sizeof(err));
	if ((rv = dsh_bootstrap_read(path, secret, &found, st)) != NRPC_OK) {
		goto out;
	}
	if (!found) {
		bool raced;

		rv = dsh_bootstrap_write(path, secret, &raced, st);
		if (rv != NRPC_OK && raced) {
			/* another node sharing the file made it just now */
			rv = dsh_bootstrap_read(path, secret, &found, st);
			if (rv == NRPC_OK && !found) {
				rv = DSH_FAIL(st, NRPC_UNAVAILABLE, "IO_ERROR",
				    "%s appeared and went away", path);
			}
		}
		if (rv != NRPC_OK) {
			goto out;
		}
		made = !found;
	}
	auth_hash(secret, AUTH_SECRET_TEXT_LEN, hash);
	if (store_conn_open(s, &c, &err) != STORE_OK ||
	    store_auth_list(c, &toks, &n, &gen, &err) != STORE_OK) {
		rv = dsh_status_from_store(&err, NULL, false, st);
		goto out;
	}
	if (dsh_bootstrap_known(toks, n, hash, path)) {
		goto out; /* there already */
	}
	for (int i = 0; i < DSH_BOOTSTRAP_TRIES; i++) {
		char name[AUTH_NAME_MAX + 1];
		store_auth_token t;

		if (i == 0) {
			(void) snprintf(name, sizeof(name), DSH_BOOTSTRAP_NAME);
		} else {
			(void) snprintf(name, sizeof(name), DSH_BOOTSTRAP_NAME
			    "-%d", i + 1);
		}
		memset(&t, 0, sizeof(t));
		memset(&err, 0, sizeof(err));
		if (store_auth_create(c, name, hash, "admin", &t, &err) ==
		    STORE_OK) {
			store_auth_token_fini(&t);
			ds_log(DS_LOG_INFO, "auth", "%s admin token \"%s\" from "
			    "%s (mode 0600; it holds the secret)",
			    made ? "created a new" : "added the", name, path);
			goto out;
		}
		store_auth_token_fini(&t);
		if (err.code != STORE_ECONFLICT) {
			rv = dsh_status_from_store(&err, NULL, false, st);
			goto out;
		}
		/* The name is taken, or the secret is: another node sharing
		 * the database and the file may have just made it. */
		store_auth_tokens_free(toks, n);
		toks = NULL;
		n = 0;
		if (store_auth_list(c, &toks, &n, &gen, &err) != STORE_OK) {
			rv = dsh_status_from_store(&err, NULL, false, st);
			goto out;
		}
		if (dsh_bootstrap_known(toks, n, hash, path)) {
			goto out;
		}
	}
	rv = DSH_FAIL(st, NRPC_ALREADY_EXISTS, "TOKEN_EXISTS",
	    "tokens \"%s\" to \"%s-%d\" exist already", DSH_BOOTSTRAP_NAME,
	    DSH_BOOTSTRAP_NAME, DSH_BOOTSTRAP_TRIES);
out:
	memset(secret, 0, sizeof(secret));
	store_auth_tokens_free(toks, n);
	store_conn_close(c);
	return rv;
}
