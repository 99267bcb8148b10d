/*
 * auth.h - bearer tokens and per-prefix rights (DESIGN §11), pure: no
 * store, no RPC, no HTTP. datasyncd's handlers (dsh_auth.c) and the
 * gateway build on it.
 *
 * Secrets. A token's secret is "dst_" followed by 64 lowercase hex
 * digits: 256 bits from getrandom(2), shown once. The server keeps only
 * SHA-256 of the secret's text; a presented secret is hashed and the
 * hashes are compared in constant time. Secrets are never logged: no
 * function here formats one into a message.
 *
 * Grants. A token holds grants "read:PREFIX", "write:PREFIX",
 * "lock:PREFIX" (PREFIX may be empty: every key) and "admin". For one key
 * the rights are those of the LONGEST granted prefix the key starts with
 * (several grants on the same prefix add up); no granted prefix matches,
 * no right. admin is every right on every key and token management. A
 * range (List or Watch of a prefix P) needs the right on every key that
 * starts with P: the prefix deciding P itself must give it, and so must
 * every granted prefix longer than P that starts with P.
 *
 * Threads: everything is reentrant except auth_limiter, which locks
 * itself. No global state.
 */
#ifndef AUTH_H
#define AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ds_clock.h"

#define AUTH_SECRET_PREFIX "dst_"
#define AUTH_SECRET_BYTES 32                       /* 256 bits */
#define AUTH_SECRET_TEXT_LEN (4 + 2 * AUTH_SECRET_BYTES) /* "dst_" + hex */
#define AUTH_HASH_BYTES 32                         /* SHA-256 */
#define AUTH_NAME_MAX 64      /* token names: 1..64 of [A-Za-z0-9._@-] */
#define AUTH_GRANTS_MAX 64    /* grants per token */
#define AUTH_PREFIX_MAX 512   /* = the store's max_key_bytes default */
#define AUTH_MESSAGE_MAX 192  /* auth_error.message */

typedef enum auth_right {
	AUTH_READ = 1u << 0,
	AUTH_WRITE = 1u << 1,
	AUTH_LOCK = 1u << 2,
	AUTH_ADMIN = 1u << 3,
} auth_right;

/* auth_right_name: "read", "write", "lock", "admin"; static. */
const char *auth_right_name(auth_right r);

/* auth_error: why a name, a grant or a secret was refused. */
typedef struct auth_error {
	char field[32];                 /* "name", "grants", "authorization" */
	char message[AUTH_MESSAGE_MAX]; /* one line, names the limit */
} auth_error;

/* --- names --- */

/* auth_name_valid checks a token name (1..AUTH_NAME_MAX bytes of
 * [A-Za-z0-9._@-]); false with err filled (field "name"). */
bool auth_name_valid(const char *name, size_t len, auth_error *err);

/* --- grants --- */

typedef struct auth_grant {
	char *prefix;     /* owned, NUL-terminated */
	size_t prefix_len;
	unsigned rights;  /* AUTH_READ | AUTH_WRITE | AUTH_LOCK */
} auth_grant;

typedef struct auth_grants {
	auth_grant *g;    /* owned; one entry per distinct prefix, sorted by
	                   * prefix (byte order) */
	size_t n;
	bool admin;
} auth_grants;

/* auth_grants_parse reads n grant strings ("read:docs/", "admin", ...)
 * into *out (owned; auth_grants_fini). Duplicates merge. Refused, with
 * err naming the grant (field "grants"): an unknown right, a missing
 * ':' after read/write/lock, a prefix over AUTH_PREFIX_MAX or not UTF-8
 * or with a control character, n == 0 or n > AUTH_GRANTS_MAX. Returns
 * 0, -1 on a refusal, -2 out of memory (err says so). */
int auth_grants_parse(const char *const *specs, size_t n, auth_grants *out,
    auth_error *err);

/* auth_grants_parse_text is auth_grants_parse of the lines of text
 * (grants joined by '\n', as auth_grants_format writes them and the store
 * keeps them). */
int auth_grants_parse_text(const char *text, auth_grants *out,
    auth_error *err);

/* auth_grants_format writes the canonical grants, one per line joined by
 * '\n' ("admin" first, then per prefix in byte order "read:P", "write:P",
 * "lock:P"), into an owned string (*out, ds_free). 0 or -2 (memory). */
int auth_grants_format(const auth_grants *g, char **out);

void auth_grants_fini(auth_grants *g);

/* auth_allows: may g exercise right on key? On false, *why (may be NULL)
 * points at the deciding grant's prefix, or NULL when no granted prefix
 * matches (for the error: "token X has no write right on prefix P"). */
bool auth_allows(const auth_grants *g, auth_right right, const char *key,
    size_t key_len, const char **why);

/* auth_allows_range: may g exercise right on every key that starts with
 * prefix (List, Watch)? *why as for auth_allows: the prefix that lacks
 * the right. */
bool auth_allows_range(const auth_grants *g, auth_right right,
    const char *prefix, size_t prefix_len, const char **why);

/* --- secrets --- */

/* auth_secret_new writes a fresh secret and its NUL into out. -1 when the
 * OS gives no randomness (getrandom failed): never a weak secret. */
int auth_secret_new(char out[AUTH_SECRET_TEXT_LEN + 1]);

/* auth_secret_well_formed: s is "dst_" + 64 lowercase hex digits. Cheap,
 * and says nothing about whether it is a token's. */
bool auth_secret_well_formed(const char *s, size_t len);

/* auth_hash: SHA-256 of the secret's text. */
void auth_hash(const char *secret, size_t len, uint8_t out[AUTH_HASH_BYTES]);

/* auth_hash_equal compares two hashes in constant time. */
bool auth_hash_equal(const uint8_t a[AUTH_HASH_BYTES],
    const uint8_t b[AUTH_HASH_BYTES]);

/* auth_bearer extracts the secret from an Authorization value "Bearer
 * <secret>" (scheme case-insensitive, one or more spaces): *secret points
 * into value, *len its length. false for anything else (no scheme, another
 * scheme, nothing after it). Does not check the secret's form. */
bool auth_bearer(const char *value, const char **secret, size_t *len);

/* --- failed attempts per peer (the 429 of DESIGN §11) --- */

#define AUTH_LIMIT_FAILURES 10      /* failures within the window ... */
#define AUTH_LIMIT_WINDOW_MS 10000  /* ... block the peer ... */
#define AUTH_LIMIT_BLOCK_MS 30000   /* ... for this long */
#define AUTH_LIMIT_PEERS 4096       /* peers remembered (see below) */
#define AUTH_PEER_MAX 64            /* peer key bytes ("10.1.2.3") */

typedef struct auth_limiter auth_limiter;

/* auth_limiter_new: clock is borrowed (monotonic; NULL = the system's).
 * NULL when out of memory. */
auth_limiter *auth_limiter_new(const ds_clock *clock);
void auth_limiter_free(auth_limiter *l);

/* auth_limiter_blocked: is peer blocked now? *retry_after_ms (may be
 * NULL) = how long it still is. Thread-safe. */
bool auth_limiter_blocked(auth_limiter *l, const char *peer,
    int64_t *retry_after_ms);

/* auth_limiter_fail records a failed authentication from peer; true when
 * it has now reached AUTH_LIMIT_FAILURES within the window (blocked from
 * now on). auth_limiter_ok forgets peer's failures. Thread-safe.
 * At most AUTH_LIMIT_PEERS peers are remembered: a new one evicts the
 * least recently failed peer that is not blocked now (a running block is
 * never evicted, so fresh addresses cannot flush it); when every one
 * remembered is blocked, the new peer's failure is not remembered (false)
 * until a block ends. */
bool auth_limiter_fail(auth_limiter *l, const char *peer);
void auth_limiter_ok(auth_limiter *l, const char *peer);

#endif /* AUTH_H */
