/*
 * dsh_auth.h - private to service/datasync: who is calling (a bearer
 * token from the call's "authorization" metadata) and may they (DESIGN
 * §11, auth.h's rules), for every handler.
 *
 * The tokens live in the store (so every node of a cluster agrees); each
 * node keeps all of them in memory, in an immutable set that is swapped
 * whole when store_auth_generation moves. The generation is re-read at
 * most every DSH_AUTH_CHECK_MS, by whichever call comes first after that
 * (the others keep using the set they have, never waiting), so a token
 * revoked on any node stops working here within DSH_AUTH_CHECK_MS plus
 * one reload: well within a second.
 *
 * Secrets never leave this file's functions: nothing here logs or
 * formats one, and only SHA-256 of a presented secret is compared.
 *
 * Threads: everything is thread-safe.
 */
#ifndef DSH_AUTH_H
#define DSH_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "auth.h"
#include "datasync/v1/datasync.pb-c.h"
#include "nrpc.h"
#include "store.h"

/* How often a node asks the store whether its tokens changed. */
#define DSH_AUTH_CHECK_MS 250
/* The metadata key and scheme a call carries its secret in. */
#define DSH_AUTH_METADATA "authorization"

typedef struct dsh_auth dsh_auth;
typedef struct dsh_auth_set dsh_auth_set;
typedef struct dsh_auth_tok dsh_auth_tok;

/* dsh_auth_create opens its own store connection (token reads and the
 * rare token writes), loads every token and makes the failure limiter.
 * *out owned (dsh_auth_destroy). On failure nothing is left and st says
 * why. */
nrpc_code dsh_auth_create(store *s, dsh_auth **out, nrpc_status *st);
void dsh_auth_destroy(dsh_auth *a);

/* dsh_principal: an authenticated caller, for the duration of a handler.
 * name is interned: valid as long as the dsh_auth, even after release
 * (a write's author and request-id scope outlive the handler). */
typedef struct dsh_principal {
	dsh_auth_set *set;       /* a reference held; NULL = none */
	const dsh_auth_tok *tok; /* in set */
	const char *name;        /* interned; NULL when auth is off */
} dsh_principal;

/* Flags of dsh_auth_authenticate. */
enum {
	/* A call without any authorization metadata is NRPC_OK with
	 * p->name NULL (WhoAmI). */
	DSH_AUTHN_OPTIONAL = 1u << 0,
	/* The server checks again a call it authenticated before (a parked
	 * watch, a lock wait): the peer guessed nothing new, so the limiter
	 * is neither consulted nor fed (else one revoked token's parked
	 * calls would block its whole address). */
	DSH_AUTHN_RECHECK = 1u << 1,
};

/* dsh_auth_authenticate: who sent call? NRPC_OK with *p filled (release
 * with dsh_principal_release), or the status (UNAUTHENTICATED with
 * TOKEN_MISSING / TOKEN_MALFORMED / TOKEN_UNKNOWN / TOKEN_REVOKED;
 * RESOURCE_EXHAUSTED TOO_MANY_AUTH_FAILURES with retry_after_ms when the
 * call's tcp/tls peer failed AUTH_LIMIT_FAILURES times) in st and *p
 * zeroed. Only TOKEN_MALFORMED and TOKEN_UNKNOWN count as failures: a
 * revoked token is a real token's secret, not a guess. a == NULL (auth
 * off): NRPC_OK, p->name NULL. flags: DSH_AUTHN_*. */
nrpc_code dsh_auth_authenticate(dsh_auth *a, nrpc_call *call, unsigned flags,
    dsh_principal *p, nrpc_status *st);

void dsh_principal_release(dsh_principal *p);

/* dsh_auth_authorize: may p exercise right on key (range: on every key
 * that starts with key)? NRPC_OK, or PERMISSION_DENIED, reason
 * PERMISSION_DENIED, message naming the token, the right, the key and the
 * deciding prefix's grants. p->name NULL (auth off): NRPC_OK. right
 * AUTH_ADMIN ignores key. */
nrpc_code dsh_auth_authorize(const dsh_principal *p, auth_right right,
    const char *key, size_t key_len, bool range, nrpc_status *st);

/* The token RPCs (the caller authorized admin). Each finishes call. */
void dsh_auth_create_token(dsh_auth *a, nrpc_call *call,
    const Datasync__V1__CreateTokenRequest *req);
void dsh_auth_list_tokens(dsh_auth *a, nrpc_call *call);
void dsh_auth_revoke_token(dsh_auth *a, nrpc_call *call,
    const Datasync__V1__RevokeTokenRequest *req);

/* dsh_auth_token_view fills *out to describe p's token (pointers borrow
 * from p and *grants, an owned array to ds_free: the grants' lines). -2
 * out of memory. */
int dsh_auth_token_view(const dsh_principal *p, Datasync__V1__Token *out,
    char ***grants);

#endif /* DSH_AUTH_H */
