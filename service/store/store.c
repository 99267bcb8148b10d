/*
 * store.c - the backend-independent half of the store: errors, limits,
 * validation, lock tokens, request hashing, result lifetimes and the
 * dispatch to the backend. Nothing here touches a database, so
 * store_validate() can be called (and fuzzed) without one.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ds_alloc.h"
#include "ds_text.h"
#include "store_int.h"

/* --- errors --- */

const char *
store_strerror(store_err e)
{
	switch (e) {
	case STORE_OK:
		return "ok";
	case STORE_EPRECONDITION_REQUIRED:
		return "a precondition is required";
	case STORE_ECONFLICT:
		return "version conflict";
	case STORE_ELOCKED:
		return "locked by another holder";
	case STORE_ELOCK_EXPIRED:
		return "lock expired";
	case STORE_ETOKEN_MISMATCH:
		return "lock token mismatch";
	case STORE_ENOT_LOCKED:
		return "not locked";
	case STORE_ENOTFOUND:
		return "not found";
	case STORE_ECOMPACTED:
		return "version compacted";
	case STORE_EINVAL:
		return "invalid argument";
	case STORE_ETOOLARGE:
		return "too large";
	case STORE_EREQUEST_ID_REUSED:
		return "request id reused";
	case STORE_ENOMEM:
		return "out of memory";
	case STORE_EIO:
		return "database error";
	case STORE_ECLOSED:
		return "store closed";
	case STORE_EBUSY:
		return "database busy";
	case STORE_EREV_COMPACTED:
		return "revision compacted";
	case STORE_EUNAVAILABLE:
		return "database unavailable";
	}
	return "unknown error";
}

const char *
store_reason(store_err e)
{
	switch (e) {
	case STORE_OK:
		return "";
	case STORE_EPRECONDITION_REQUIRED:
		return "PRECONDITION_REQUIRED";
	case STORE_ECONFLICT:
		return "VERSION_CONFLICT";
	case STORE_ELOCKED:
		return "LOCKED";
	case STORE_ELOCK_EXPIRED:
		return "LOCK_EXPIRED";
	case STORE_ETOKEN_MISMATCH:
		return "LOCK_TOKEN_MISMATCH";
	case STORE_ENOT_LOCKED:
		return "NOT_LOCKED";
	case STORE_ENOTFOUND:
		return "NOT_FOUND";
	case STORE_ECOMPACTED:
		return "VERSION_COMPACTED";
	case STORE_EINVAL:
		return "INVALID_ARGUMENT";
	case STORE_ETOOLARGE:
		return "TOO_LARGE";
	case STORE_EREQUEST_ID_REUSED:
		return "REQUEST_ID_REUSED";
	case STORE_ENOMEM:
		return "RESOURCE_EXHAUSTED";
	case STORE_EIO:
		return "INTERNAL";
	case STORE_ECLOSED:
		return "UNAVAILABLE";
	case STORE_EBUSY:
		return "DB_BUSY";
	case STORE_EREV_COMPACTED:
		return "REVISION_COMPACTED";
	case STORE_EUNAVAILABLE:
		return "DB_UNAVAILABLE";
	}
	return "INTERNAL";
}

store_err
store_error_set(store_error *err, store_err code, const char *field,
    const char *fmt, ...)
{
	va_list ap;

	if (err == NULL) {
		return code;
	}
	err->code = code;
	(void) snprintf(err->field, sizeof(err->field), "%s",
	    field != NULL ? field : ""); /* truncation is acceptable */
	va_start(ap, fmt);
	/* A message cut at 191 bytes still names the field and limit: they
	 * come first in every message. */
	(void) vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return code;
}

store_err
store_busy_error(const store *s, store_error *err, const char *what)
{
	if (atomic_load(&s->waits_cancelled)) {
		return store_error_set(err, STORE_EBUSY, "",
		    "%s: the database is locked by another connection and the "
		    "server is shutting down (waits cancelled)", what);
	}
	return store_error_set(err, STORE_EBUSY, "",
	    "%s: the database is locked by another connection; gave up "
	    "after busy_timeout_ms (%lld)", what,
	    (long long) s->limits.busy_timeout_ms);
}

void
store_error_clear(store_error *err)
{
	if (err != NULL) {
		memset(err, 0, sizeof(*err));
	}
}

/* --- configuration and limits --- */

store_limits
store_limits_default(void)
{
	store_limits l;

	memset(&l, 0, sizeof(l));
	l.max_key_bytes = STORE_MAX_KEY_BYTES_DEFAULT;
	l.max_value_bytes = STORE_MAX_VALUE_BYTES_DEFAULT;
	l.max_content_type_bytes = STORE_MAX_CONTENT_TYPE_BYTES_DEFAULT;
	l.max_owner_bytes = STORE_MAX_OWNER_BYTES_DEFAULT;
	l.max_request_id_bytes = STORE_MAX_REQUEST_ID_BYTES_DEFAULT;
	l.max_caller_bytes = STORE_MAX_CALLER_BYTES_DEFAULT;
	l.max_if_version_in = STORE_MAX_IF_VERSION_IN_DEFAULT;
	l.max_page_size = STORE_MAX_PAGE_SIZE_DEFAULT;
	l.default_page_size = STORE_DEFAULT_PAGE_SIZE;
	l.history = STORE_HISTORY_DEFAULT;
	l.lock_ttl_default_ms = STORE_LOCK_TTL_DEFAULT_MS;
	l.lock_ttl_min_ms = STORE_LOCK_TTL_MIN_MS;
	l.lock_ttl_max_ms = STORE_LOCK_TTL_MAX_MS;
	l.request_id_ttl_ms = STORE_REQUEST_ID_TTL_DEFAULT_MS;
	l.busy_timeout_ms = STORE_BUSY_TIMEOUT_DEFAULT_MS;
	return l;
}

void
store_config_default(store_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->path = "./datasync.db";
	cfg->clock = NULL;
	cfg->durability = STORE_DURABILITY_FULL;
	cfg->limits = store_limits_default();
}

/* store_limit_range checks lo <= v <= hi for a limit named name. */
static store_err
store_limit_range(const char *name, int64_t v, int64_t lo, int64_t hi,
    const char *hi_name, store_error *err)
{
	if (v < lo) {
		return store_error_set(err, STORE_EINVAL, name,
		    "%s (%lld) is below its minimum (%lld)", name,
		    (long long) v, (long long) lo);
	}
	if (v > hi) {
		return store_error_set(err, STORE_EINVAL, name,
		    "%s (%lld) exceeds %s (%lld)", name, (long long) v,
		    hi_name, (long long) hi);
	}
	return STORE_OK;
}

store_err
store_limits_check(const store_limits *l, store_error *err)
{
	store_err rv;

	if (DS_NEVER(l == NULL)) {
		return store_error_set(err, STORE_EINVAL, "limits",
		    "limits is NULL");
	}
	/* Keys, owners and page sizes need at least 1 or no request could
	 * ever pass; the other byte limits may be 0 (feature off). */
	if ((rv = store_limit_range("max_key_bytes", l->max_key_bytes, 1,
	         STORE_MAX_KEY_BYTES_HARD, "its hard maximum", err)) !=
	        STORE_OK ||
	    (rv = store_limit_range("max_value_bytes", l->max_value_bytes, 0,
	         STORE_MAX_VALUE_BYTES_HARD, "its hard maximum", err)) !=
	        STORE_OK ||
	    (rv = store_limit_range("max_content_type_bytes",
	         l->max_content_type_bytes, 0,
	         STORE_MAX_CONTENT_TYPE_BYTES_HARD, "its hard maximum",
	         err)) != STORE_OK ||
	    (rv = store_limit_range("max_owner_bytes", l->max_owner_bytes, 1,
	         STORE_MAX_OWNER_BYTES_HARD, "its hard maximum", err)) !=
	        STORE_OK ||
	    (rv = store_limit_range("max_request_id_bytes",
	         l->max_request_id_bytes, 0,
	         STORE_MAX_REQUEST_ID_BYTES_HARD, "its hard maximum", err)) !=
	        STORE_OK ||
	    (rv = store_limit_range("max_caller_bytes", l->max_caller_bytes,
	         0, STORE_MAX_CALLER_BYTES_HARD, "its hard maximum", err)) !=
	        STORE_OK ||
	    (rv = store_limit_range("max_if_version_in",
	         l->max_if_version_in, 1, STORE_MAX_IF_VERSION_IN_HARD,
	         "its hard maximum", err)) != STORE_OK ||
	    (rv = store_limit_range("max_page_size", l->max_page_size, 1,
	         STORE_MAX_PAGE_SIZE_HARD, "its hard maximum", err)) !=
	        STORE_OK ||
	    (rv = store_limit_range("default_page_size",
	         l->default_page_size, 1, l->max_page_size, "max_page_size",
	         err)) != STORE_OK ||
	    (rv = store_limit_range("history", l->history, 0,
	         STORE_HISTORY_HARD, "its hard maximum", err)) != STORE_OK ||
	    (rv = store_limit_range("lock_ttl_max_ms", l->lock_ttl_max_ms, 1,
	         STORE_LOCK_TTL_HARD_MAX_MS, "its hard maximum", err)) !=
	        STORE_OK ||
	    (rv = store_limit_range("lock_ttl_min_ms", l->lock_ttl_min_ms, 1,
	         l->lock_ttl_max_ms, "lock_ttl_max_ms", err)) != STORE_OK ||
	    (rv = store_limit_range("lock_ttl_default_ms",
	         l->lock_ttl_default_ms, l->lock_ttl_min_ms,
	         l->lock_ttl_max_ms, "lock_ttl_max_ms", err)) != STORE_OK ||
	    (rv = store_limit_range("request_id_ttl_ms", l->request_id_ttl_ms,
	         0, INT64_MAX, "its hard maximum", err)) != STORE_OK ||
	    (rv = store_limit_range("busy_timeout_ms", l->busy_timeout_ms, 0,
	         STORE_BUSY_TIMEOUT_HARD_MS, "its hard maximum", err)) !=
	        STORE_OK) {
		return rv;
	}
	return STORE_OK;
}

/* --- validation --- */

/* store_check_text checks a UTF-8 name (key, owner, author, prefix). */
static store_err
store_check_text(const char *field, const char *limit_name, uint32_t max,
    const char *p, size_t n, bool required, bool controls_ok,
    store_error *err)
{
	if (n == 0) {
		if (required) {
			return store_error_set(err, STORE_EINVAL, field,
			    "%s is empty", field);
		}
		return STORE_OK;
	}
	if (p == NULL) {
		return store_error_set(err, STORE_EINVAL, field,
		    "%s is NULL with length %zu", field, n);
	}
	if (n > max) {
		return store_error_set(err, STORE_ETOOLARGE, field,
		    "%s exceeds %s (%u)", field, limit_name, (unsigned) max);
	}
	if (!ds_utf8_valid((const uint8_t *) p, n)) {
		return store_error_set(err, STORE_EINVAL, field,
		    "%s is not valid UTF-8", field);
	}
	if (!controls_ok && ds_utf8_has_control((const uint8_t *) p, n)) {
		return store_error_set(err, STORE_EINVAL, field,
		    "%s contains a control character", field);
	}
	return STORE_OK;
}

/* store_check_ascii checks printable ASCII (content_type, request_id). */
static store_err
store_check_ascii(const char *field, const char *limit_name, uint32_t max,
    const char *p, size_t n, store_error *err)
{
	if (n == 0) {
		return STORE_OK;
	}
	if (p == NULL) {
		return store_error_set(err, STORE_EINVAL, field,
		    "%s is NULL with length %zu", field, n);
	}
	if (n > max) {
		return store_error_set(err, STORE_ETOOLARGE, field,
		    "%s exceeds %s (%u)", field, limit_name, (unsigned) max);
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char) p[i];

		if (ch < 0x20 || ch > 0x7e) {
			return store_error_set(err, STORE_EINVAL, field,
			    "%s must be printable ASCII", field);
		}
	}
	return STORE_OK;
}

store_err
store_validate_key(const store_limits *lim, const char *key, size_t key_len,
    store_error *err)
{
	return store_check_text("key", "max_key_bytes", lim->max_key_bytes,
	    key, key_len, true, false, err);
}

/* store_validate_version_in checks an if_version_in list: 1..max
 * entries, none 0 (versions start at 1). */
static store_err
store_validate_version_in(
    const store_limits *lim, const store_precond *p, store_error *err)
{
	if (p->n_versions == 0 || p->versions == NULL) {
		return store_error_set(err, STORE_EINVAL,
		    "precondition.if_version_in",
		    "precondition.if_version_in needs at least one version");
	}
	if (p->n_versions > lim->max_if_version_in) {
		return store_error_set(err, STORE_EINVAL,
		    "precondition.if_version_in",
		    "precondition.if_version_in has %zu versions, more than "
		    "max_if_version_in (%u)",
		    p->n_versions, (unsigned) lim->max_if_version_in);
	}
	for (size_t i = 0; i < p->n_versions; i++) {
		if (p->versions[i] == 0) {
			return store_error_set(err, STORE_EINVAL,
			    "precondition.if_version_in",
			    "precondition.if_version_in[%zu] is 0 (versions "
			    "start at 1; use if_absent to create)",
			    i);
		}
	}
	return STORE_OK;
}

static store_err
store_validate_precond(
    const store_limits *lim, const store_write *w, store_error *err)
{
	switch (w->precond.kind) {
	case STORE_PRECOND_IF_VERSION_IN:
		return store_validate_version_in(lim, &w->precond, err);
	case STORE_PRECOND_NONE:
		return store_error_set(err, STORE_EPRECONDITION_REQUIRED,
		    "precondition",
		    "precondition is required: if_version, if_absent, "
		    "if_exists or unconditional");
	case STORE_PRECOND_IF_ABSENT:
		if (w->op == STORE_OP_DELETE) {
			return store_error_set(err, STORE_EINVAL,
			    "precondition",
			    "precondition if_absent cannot delete anything");
		}
		return STORE_OK;
	case STORE_PRECOND_IF_VERSION:
	case STORE_PRECOND_IF_EXISTS:
	case STORE_PRECOND_UNCONDITIONAL:
		return STORE_OK;
	}
	return store_error_set(err, STORE_EINVAL, "precondition",
	    "precondition kind %d is unknown", (int) w->precond.kind);
}

static store_err
store_validate_ttl(const store_limits *lim, int64_t ttl, store_error *err)
{
	if (ttl == 0) {
		return STORE_OK;
	}
	if (ttl < lim->lock_ttl_min_ms) {
		return store_error_set(err, STORE_EINVAL, "ttl_ms",
		    "ttl_ms (%lld) is below lock_ttl_min_ms (%lld)",
		    (long long) ttl, (long long) lim->lock_ttl_min_ms);
	}
	if (ttl > lim->lock_ttl_max_ms) {
		return store_error_set(err, STORE_EINVAL, "ttl_ms",
		    "ttl_ms (%lld) exceeds lock_ttl_max_ms (%lld)",
		    (long long) ttl, (long long) lim->lock_ttl_max_ms);
	}
	return STORE_OK;
}

store_err
store_validate(const store_limits *lim, const store_write *w,
    store_error *err)
{
	store_err rv;

	if (DS_NEVER(lim == NULL || w == NULL)) {
		return store_error_set(err, STORE_EINVAL, "",
		    "write or limits is NULL");
	}
	if (w->op < STORE_OP_UPDATE || w->op > STORE_OP_UNLOCK) {
		return store_error_set(err, STORE_EINVAL, "op",
		    "op %d is unknown", (int) w->op);
	}
	if ((rv = store_validate_key(lim, w->key, w->key_len, err)) !=
	    STORE_OK) {
		return rv;
	}
	switch (w->op) {
	case STORE_OP_UPDATE:
		if (w->value == NULL && w->value_len > 0) {
			return store_error_set(err, STORE_EINVAL, "value",
			    "value is NULL with length %zu", w->value_len);
		}
		if (w->value_len > lim->max_value_bytes) {
			return store_error_set(err, STORE_ETOOLARGE, "value",
			    "value exceeds max_value_bytes (%u)",
			    (unsigned) lim->max_value_bytes);
		}
		if ((rv = store_check_ascii("content_type",
		         "max_content_type_bytes",
		         lim->max_content_type_bytes, w->content_type,
		         w->content_type_len, err)) != STORE_OK) {
			return rv;
		}
		/* FALLTHROUGH */
	case STORE_OP_DELETE:
		if ((rv = store_validate_precond(lim, w, err)) != STORE_OK ||
		    (rv = store_check_text("author", "max_owner_bytes",
		         lim->max_owner_bytes, w->author, w->author_len, false,
		         false, err)) != STORE_OK) {
			return rv;
		}
		break;
	case STORE_OP_LOCK:
		if ((rv = store_check_text("owner", "max_owner_bytes",
		         lim->max_owner_bytes, w->owner, w->owner_len, true,
		         false, err)) != STORE_OK ||
		    (rv = store_validate_ttl(lim, w->ttl_ms, err)) !=
		        STORE_OK) {
			return rv;
		}
		break;
	case STORE_OP_UNLOCK:
		if (!w->has_token) {
			return store_error_set(err, STORE_EINVAL, "lock_token",
			    "lock_token is required to unlock");
		}
		break;
	}
	if ((rv = store_check_ascii("request_id", "max_request_id_bytes",
	         lim->max_request_id_bytes, w->request_id, w->request_id_len,
	         err)) != STORE_OK) {
		return rv;
	}
	/* The caller only scopes a request_id: without one it is unused. */
	if (w->request_id_len > 0 &&
	    (rv = store_check_text("caller", "max_caller_bytes",
	         lim->max_caller_bytes, w->caller, w->caller_len, false,
	         false, err)) != STORE_OK) {
		return rv;
	}
	store_error_clear(err);
	return STORE_OK;
}

store_err
store_validate_changes(const store_limits *lim, const store_changes_req *req,
    store_error *err)
{
	store_err rv;

	if (req->prefix) {
		/* As List's prefix: it can only narrow the result. */
		rv = store_check_text("prefix", "max_key_bytes",
		    lim->max_key_bytes, req->key, req->key_len, false, true,
		    err);
	} else {
		rv = store_validate_key(lim, req->key, req->key_len, err);
	}
	if (rv != STORE_OK) {
		return rv;
	}
	if (req->limit < 1 || req->limit > STORE_CHANGES_LIMIT_MAX) {
		return store_error_set(err, STORE_EINVAL, "limit",
		    "limit must be 1..%d (STORE_CHANGES_LIMIT_MAX)",
		    STORE_CHANGES_LIMIT_MAX);
	}
	return STORE_OK;
}

store_err
store_validate_list(const store_limits *lim, const store_list_req *req,
    store_list_args *args, store_error *err)
{
	store_err rv;
	size_t n;

	/* A prefix may be any valid UTF-8, even with controls: it can only
	 * narrow the result, and keys never contain controls anyway. */
	if ((rv = store_check_text("prefix", "max_key_bytes",
	         lim->max_key_bytes, req->prefix, req->prefix_len, false, true,
	         err)) != STORE_OK) {
		return rv;
	}
	if (req->page_size > lim->max_page_size) {
		return store_error_set(err, STORE_ETOOLARGE, "page_size",
		    "page_size exceeds max_page_size (%u)",
		    (unsigned) lim->max_page_size);
	}
	args->page_size =
	    req->page_size == 0 ? lim->default_page_size : req->page_size;
	args->cursor = NULL;
	args->cursor_len = 0;
	n = req->page_token_len;
	if (n == 0) {
		return STORE_OK;
	}
	/* The token is the hex of the last key returned: check its length
	 * before decoding, then that it decodes to a key we could have
	 * returned (a forged token must not smuggle bytes into SQL). */
	if (req->page_token == NULL || n % 2 != 0 ||
	    n / 2 > lim->max_key_bytes ||
	    ds_hex_decode(req->page_token, n, args->cursor_buf, n / 2) !=
	        DS_OK ||
	    !ds_utf8_valid(args->cursor_buf, n / 2)) {
		return store_error_set(err, STORE_EINVAL, "page_token",
		    "page_token is malformed");
	}
	args->cursor = args->cursor_buf;
	args->cursor_len = n / 2;
	return STORE_OK;
}

char *
store_page_token_format(const uint8_t *key, size_t key_len)
{
	char *t;

	if (key_len > (SIZE_MAX - 1) / 2 ||
	    (t = ds_alloc(2 * key_len + 1)) == NULL) {
		return NULL;
	}
	ds_hex_encode(key, key_len, t);
	return t;
}

int64_t
store_effective_ttl(const store_limits *lim, int64_t ttl_ms)
{
	return ttl_ms == 0 ? lim->lock_ttl_default_ms : ttl_ms;
}

/* --- tokens --- */

store_err
store_token_parse(const char *s, size_t len, store_token *out,
    store_error *err)
{
	store_token t;

	if (s == NULL || len != STORE_TOKEN_HEX_LEN ||
	    ds_hex_decode(s, len, t.b, sizeof(t.b)) != DS_OK) {
		return store_error_set(err, STORE_EINVAL, "lock_token",
		    "lock_token must be %d hex digits", STORE_TOKEN_HEX_LEN);
	}
	*out = t;
	return STORE_OK;
}

void
store_token_format(const store_token *t, char out[STORE_TOKEN_HEX_LEN + 1])
{
	ds_hex_encode(t->b, sizeof(t->b), out);
}

/* --- request hashing --- */

/*
 * The request hash tells a retry (same caller, same request_id, same
 * request: replay the stored answer) from a reuse (same id, another
 * request: REQUEST_ID_REUSED). It runs over every write that carries a
 * request id - a whole value, up to max_value_bytes - so it is a word-wise
 * hash: four independent lanes of 8-byte little-endian words, each a
 * multiply-rotate round, folded, and one multiply-xorshift avalanche at
 * the end of the request (the construction of xxh64 and its relatives,
 * written here). About 0.85 instructions per byte in four independent
 * multiply chains (callgrind), against FNV-1a's 6 with one serial
 * multiply per byte.
 *
 * It is neither keyed nor collision-resistant, and need not be: it is
 * compared only with the hash stored under the same (caller, request_id),
 * and a collision can only make a different request answer as the
 * replay of the stored one. To aim a collision at a stored request one
 * must know that request (its hash is never shown); whoever knows it can
 * simply send it again and get the same replay, so a collision yields
 * nothing a plain retry does not. Accidental collisions of two requests
 * one caller sends under one id are 2^-64 events.
 *
 * Stable by contract: hashes are stored in the database (requests*.hash)
 * and must mean the same to the next release. Entries written by a
 * release that hashed with FNV-1a (store_request_hash_fnv) are still
 * recognised until they expire (request_id_ttl_ms): see
 * store_request_hash_matches.
 */
#define STORE_HASH_P1 UINT64_C(0x9e3779b97f4a7c15) /* 2^64 / golden ratio */
#define STORE_HASH_P2 UINT64_C(0xc2b2ae3d27d4eb4f) /* odd, dense bits */
#define STORE_HASH_P3 UINT64_C(0x165667b19e3779f9)

static inline uint64_t
store_rotl64(uint64_t x, unsigned r)
{
	return (x << r) | (x >> (64u - r));
}

/* store_load64 reads 8 bytes as a little-endian word, on any host: the
 * hashes live in a database file that may move between hosts. */
static inline uint64_t
store_load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

static inline uint64_t
store_hash_round(uint64_t acc, uint64_t word)
{
	return store_rotl64(acc + word * STORE_HASH_P2, 31) * STORE_HASH_P1;
}

/* store_hash_fold mixes one word into h; a bijection of h for each word,
 * so distinct streams stay distinct until the final avalanche. */
static inline uint64_t
store_hash_fold(uint64_t h, uint64_t word)
{
	h ^= store_hash_round(0, word);
	return store_rotl64(h, 27) * STORE_HASH_P1 + STORE_HASH_P3;
}

/* store_hash_mem folds p[0..n) into h; n is part of it. */
static uint64_t
store_hash_mem(uint64_t seed, const void *p, size_t n)
{
	const uint8_t *b = p;
	size_t left = n;
	uint64_t h;

	if (left >= 32) {
		uint64_t v0 = seed + STORE_HASH_P1 + STORE_HASH_P2;
		uint64_t v1 = seed + STORE_HASH_P2;
		uint64_t v2 = seed;
		uint64_t v3 = seed - STORE_HASH_P1;

		do {
			v0 = store_hash_round(v0, store_load64(b));
			v1 = store_hash_round(v1, store_load64(b + 8));
			v2 = store_hash_round(v2, store_load64(b + 16));
			v3 = store_hash_round(v3, store_load64(b + 24));
			b += 32;
			left -= 32;
		} while (left >= 32);
		h = store_rotl64(v0, 1) + store_rotl64(v1, 7) +
		    store_rotl64(v2, 12) + store_rotl64(v3, 18);
		h = (h ^ store_hash_round(0, v0)) * STORE_HASH_P1 + STORE_HASH_P3;
		h = (h ^ store_hash_round(0, v1)) * STORE_HASH_P1 + STORE_HASH_P3;
		h = (h ^ store_hash_round(0, v2)) * STORE_HASH_P1 + STORE_HASH_P3;
		h = (h ^ store_hash_round(0, v3)) * STORE_HASH_P1 + STORE_HASH_P3;
	} else {
		h = seed;
	}
	h = store_hash_fold(h, (uint64_t) n);
	for (; left >= 8; b += 8, left -= 8) {
		h = store_hash_fold(h, store_load64(b));
	}
	if (left > 0) {
		uint64_t w = 0;

		for (size_t i = 0; i < left; i++) {
			w |= (uint64_t) b[i] << (8 * i);
		}
		h = store_hash_fold(h, w);
	}
	return h;
}

/* store_hash_avalanche: the final mix, every input bit to every output
 * bit. */
static uint64_t
store_hash_avalanche(uint64_t h)
{
	h ^= h >> 33;
	h *= STORE_HASH_P2;
	h ^= h >> 29;
	h *= STORE_HASH_P3;
	h ^= h >> 32;
	return h;
}

/* store_hasher: how a request hash folds bytes and 64-bit words. The
 * word-wise hash and the FNV-1a one of earlier releases share the
 * encoding below (store_request_hash_with). */
typedef struct store_hasher {
	uint64_t (*bytes)(uint64_t h, const void *p, size_t n);
	uint64_t (*word)(uint64_t h, uint64_t v);
} store_hasher;

/* store_fnv_word: FNV-1a over v's 8 little-endian bytes, as stored by
 * earlier releases. */
static uint64_t
store_fnv_word(uint64_t h, uint64_t v)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++) {
		b[i] = (uint8_t) (v >> (8 * i));
	}
	return ds_hash64(h, b, sizeof(b));
}

static const store_hasher store_hasher_words = {store_hash_mem,
    store_hash_fold};
static const store_hasher store_hasher_fnv = {ds_hash64, store_fnv_word};

static uint64_t
store_hash_bytes(const store_hasher *f, uint64_t h, const void *p, size_t n)
{
	h = f->word(h, (uint64_t) n);
	return n > 0 ? f->bytes(h, p, n) : h;
}

static uint64_t
store_hash_token(const store_hasher *f, uint64_t h, const store_write *w)
{
	h = f->word(h, w->has_token ? 1 : 0);
	return w->has_token ? f->bytes(h, w->token.b, sizeof(w->token.b)) : h;
}

/* store_request_hash_with is the canonical encoding of w, hashed with f
 * from seed: only the fields that matter for w->op, each length-prefixed,
 * so two requests that mean the same write hash the same. */
static uint64_t
store_request_hash_with(const store_hasher *f, uint64_t seed,
    const store_limits *lim, const store_write *w)
{
	static const char tag[] = "datasync.store.request.v1";
	uint64_t h = f->bytes(seed, tag, sizeof(tag) - 1);

	h = f->word(h, (uint64_t) w->op);
	h = store_hash_bytes(f, h, w->key, w->key_len);
	switch (w->op) {
	case STORE_OP_UPDATE:
		h = store_hash_bytes(f, h, w->value, w->value_len);
		h = store_hash_bytes(f, h, w->content_type, w->content_type_len);
		/* FALLTHROUGH */
	case STORE_OP_DELETE:
		h = f->word(h, (uint64_t) w->precond.kind);
		h = f->word(h, w->precond.kind == STORE_PRECOND_IF_VERSION
		                   ? w->precond.version
		                   : 0);
		if (w->precond.kind == STORE_PRECOND_IF_VERSION_IN) {
			/* As given: a retry resends the same list. */
			h = f->word(h, (uint64_t) w->precond.n_versions);
			for (size_t i = 0; i < w->precond.n_versions; i++) {
				h = f->word(h, w->precond.versions[i]);
			}
		}
		h = store_hash_token(f, h, w);
		h = store_hash_bytes(f, h, w->author, w->author_len);
		break;
	case STORE_OP_LOCK:
		h = store_hash_bytes(f, h, w->owner, w->owner_len);
		/* The effective ttl: "0" and the default mean the same. */
		h = f->word(h, (uint64_t) store_effective_ttl(lim, w->ttl_ms));
		h = store_hash_token(f, h, w);
		break;
	case STORE_OP_UNLOCK:
		h = store_hash_token(f, h, w);
		break;
	}
	return h;
}

uint64_t
store_request_hash(const store_limits *lim, const store_write *w)
{
	return store_hash_avalanche(
	    store_request_hash_with(&store_hasher_words, 0, lim, w));
}

uint64_t
store_request_hash_fnv(const store_limits *lim, const store_write *w)
{
	return store_request_hash_with(&store_hasher_fnv, DS_HASH64_INIT, lim,
	    w);
}

bool
store_request_hash_matches(const store_limits *lim, const store_write *w,
    uint64_t hash, uint64_t stored)
{
	/* The FNV-1a pass runs only when the fast hash differs: a reused
	 * id, or an entry an earlier release stored. */
	return stored == hash || stored == store_request_hash_fnv(lim, w);
}

uint64_t
store_write_hash(const store_limits *lim, const store_write *w)
{
	return w->validated ? w->request_hash : store_request_hash(lim, w);
}

store_err
store_write_check(const store_limits *lim, const store_write *w,
    store_error *err)
{
	if (w->validated) {
		store_error_clear(err);
		return STORE_OK;
	}
	return store_validate(lim, w, err);
}

store_err
store_prepare(const store_limits *lim, store_write *w, store_error *err)
{
	store_err rv;

	w->validated = false;
	w->request_hash = 0;
	if ((rv = store_validate(lim, w, err)) != STORE_OK) {
		return rv;
	}
	if (w->request_id_len > 0) {
		w->request_hash = store_request_hash(lim, w);
	}
	w->validated = true;
	return STORE_OK;
}

/* --- results --- */

store_err
store_record_set_text(char **out, const void *p, size_t n)
{
	char *s;

	if ((s = ds_memdup(n > 0 ? p : "", n)) == NULL) {
		return STORE_ENOMEM;
	}
	*out = s;
	return STORE_OK;
}

void
store_record_fini(store_record *r)
{
	if (r == NULL) {
		return;
	}
	ds_free(r->key);
	ds_free(r->value);
	ds_free(r->content_type);
	ds_free(r->updated_by);
	ds_free(r->lock.owner);
	memset(r, 0, sizeof(*r));
}

void
store_write_result_fini(store_write_result *r)
{
	if (r == NULL) {
		return;
	}
	if (r->value_borrowed) {
		r->record.value = NULL; /* the request's bytes */
	}
	store_record_fini(&r->record);
	memset(r, 0, sizeof(*r));
}

void
store_result_borrow_value(store_write_result *res, const store_write *w)
{
	if (w->op != STORE_OP_UPDATE || w->value_len == 0) {
		return;
	}
	res->record.value = (uint8_t *) w->value; /* borrowed, never freed */
	res->record.value_len = w->value_len;
	res->value_borrowed = true;
}

void
store_list_page_fini(store_list_page *p)
{
	if (p == NULL) {
		return;
	}
	for (size_t i = 0; p->records != NULL && i < p->n; i++) {
		store_record_fini(&p->records[i]);
	}
	ds_free(p->records);
	ds_free(p->next_page_token);
	memset(p, 0, sizeof(*p));
}

/* --- handle and dispatch --- */

store_err
store_open(const store_config *cfg, store **out, store_error *err)
{
	store *s;
	store_err rv;

	if (cfg == NULL || out == NULL) {
		return store_error_set(err, STORE_EINVAL, "",
		    "config or out is NULL");
	}
	if (cfg->path == NULL || cfg->path[0] == '\0') {
		return store_error_set(err, STORE_EINVAL, "path",
		    "path is empty");
	}
	if (cfg->durability != STORE_DURABILITY_FULL &&
	    cfg->durability != STORE_DURABILITY_NORMAL) {
		return store_error_set(err, STORE_EINVAL, "durability",
		    "durability %d is unknown", (int) cfg->durability);
	}
	if ((rv = store_limits_check(&cfg->limits, err)) != STORE_OK) {
		return rv;
	}
	if ((s = ds_calloc(1, sizeof(*s))) == NULL) {
		return store_error_set(err, STORE_ENOMEM, "",
		    "out of memory opening the store");
	}
	if ((s->path = ds_strdup(cfg->path)) == NULL) {
		ds_free(s);
		return store_error_set(err, STORE_ENOMEM, "",
		    "out of memory opening the store");
	}
	/* A libpq connection URI selects PostgreSQL (DESIGN §10). */
	s->be = strncmp(cfg->path, "postgresql://", 13) == 0 ||
	        strncmp(cfg->path, "postgres://", 11) == 0
	    ? &store_pg_backend
	    : &store_sqlite_backend;
	s->clock = cfg->clock != NULL ? cfg->clock : ds_clock_wall();
	s->durability = cfg->durability;
	s->limits = cfg->limits;
	atomic_init(&s->nconns, 0);
	atomic_init(&s->waits_cancelled, false);
	if ((rv = s->be->open(s, err)) != STORE_OK) {
		ds_free(s->path);
		ds_free(s);
		return rv;
	}
	store_error_clear(err);
	*out = s;
	return STORE_OK;
}

void
store_close(store *s)
{
	if (s == NULL) {
		return;
	}
	/* Closing under open connections would free what they borrow. */
	assert(atomic_load(&s->nconns) == 0);
	s->be->close(s);
	ds_free(s->path);
	ds_free(s);
}

const char *
store_backend_name(const store *s)
{
	return s->be->name;
}

bool
store_is_shared(const store *s)
{
	return s->be->shared;
}

const store_limits *
store_limits_of(const store *s)
{
	return &s->limits;
}

void
store_cancel_waits(store *s)
{
	if (s != NULL) {
		atomic_store(&s->waits_cancelled, true);
	}
}

store_err
store_conn_open(store *s, store_conn **out, store_error *err)
{
	store_err rv;

	if (DS_NEVER(s == NULL || out == NULL)) {
		return store_error_set(err, STORE_EINVAL, "",
		    "store or out is NULL");
	}
	if ((rv = s->be->conn_open(s, out, err)) == STORE_OK) {
		atomic_fetch_add(&s->nconns, 1);
		store_error_clear(err);
	}
	return rv;
}

void
store_conn_close(store_conn *c)
{
	store *s;

	if (c == NULL) {
		return;
	}
	s = c->s;
	s->be->conn_close(c);
	atomic_fetch_sub(&s->nconns, 1);
}

store_err
store_get(store_conn *c, const char *key, size_t key_len, uint64_t version,
    store_record *out, store_error *err)
{
	store_err rv;

	if (DS_NEVER(c == NULL || out == NULL)) {
		return store_error_set(err, STORE_EINVAL, "",
		    "conn or out is NULL");
	}
	if ((rv = store_validate_key(&c->s->limits, key, key_len, err)) !=
	    STORE_OK) {
		return rv;
	}
	return c->s->be->get(c, key, key_len, version, out, NULL, err);
}

store_err
store_get_rev(store_conn *c, const char *key, size_t key_len,
    uint64_t version, store_record *out, uint64_t *revision,
    store_error *err)
{
	store_err rv;

	if (DS_NEVER(c == NULL || out == NULL || revision == NULL)) {
		return store_error_set(err, STORE_EINVAL, "",
		    "conn, out or revision is NULL");
	}
	if ((rv = store_validate_key(&c->s->limits, key, key_len, err)) !=
	    STORE_OK) {
		return rv;
	}
	return c->s->be->get(c, key, key_len, version, out, revision, err);
}

store_err
store_changes_read(store_conn *c, const store_changes_req *req,
    store_changes_page *page, store_error *err)
{
	store_err rv;

	if (DS_NEVER(c == NULL || req == NULL || page == NULL)) {
		return store_error_set(err, STORE_EINVAL, "",
		    "conn, req or page is NULL");
	}
	if ((rv = store_validate_changes(&c->s->limits, req, err)) !=
	    STORE_OK) {
		return rv;
	}
	return c->s->be->changes_read(c, req, page, err);
}

store_err
store_changes_wait(store_conn *c, int timeout_ms, bool *woke,
    store_error *err)
{
	if (DS_NEVER(c == NULL || woke == NULL)) {
		return store_error_set(err, STORE_EINVAL, "",
		    "conn or woke is NULL");
	}
	*woke = false;
	if (timeout_ms < 0) {
		return store_error_set(err, STORE_EINVAL, "timeout_ms",
		    "timeout_ms %d is negative", timeout_ms);
	}
	if (c->s->be->changes_wait == NULL) {
		return store_error_set(err, STORE_EINVAL, "",
		    "the %s backend has no other writers to wait for",
		    c->s->be->name);
	}
	return c->s->be->changes_wait(c, timeout_ms, woke, err);
}

void
store_changes_page_fini(store_changes_page *p)
{
	if (p == NULL) {
		return;
	}
	for (size_t i = 0; i < p->n; i++) {
		store_record_fini(&p->events[i].record);
	}
	ds_free(p->events);
	memset(p, 0, sizeof(*p));
}

store_err
store_sweep_expired(store_conn *c, size_t max, size_t *n,
    int64_t *next_expiry_ms, store_error *err)
{
	if (DS_NEVER(c == NULL || n == NULL || next_expiry_ms == NULL)) {
		return store_error_set(err, STORE_EINVAL, "",
		    "conn, n or next_expiry_ms is NULL");
	}
	if (max < 1 || max > STORE_SWEEP_MAX) {
		return store_error_set(err, STORE_EINVAL, "max",
		    "max must be 1..%d (STORE_SWEEP_MAX)", STORE_SWEEP_MAX);
	}
	return c->s->be->sweep_expired(c, max, n, next_expiry_ms, err);
}

store_err
store_compact_changes(store_conn *c, uint64_t retain_revisions,
    int64_t retain_ms, size_t max, size_t *n, store_error *err)
{
	if (DS_NEVER(c == NULL || n == NULL)) {
		return store_error_set(err, STORE_EINVAL, "",
		    "conn or n is NULL");
	}
	if (max < 1 || max > STORE_COMPACT_MAX) {
		return store_error_set(err, STORE_EINVAL, "max",
		    "max must be 1..%d (STORE_COMPACT_MAX)", STORE_COMPACT_MAX);
	}
	if (retain_ms < 0) {
		return store_error_set(err, STORE_EINVAL, "retain_ms",
		    "retain_ms must not be negative");
	}
	return c->s->be->compact_changes(c, retain_revisions, retain_ms, max,
	    n, err);
}

store_err
store_list(store_conn *c, const store_list_req *req, store_list_page *out,
    store_error *err)
{
	if (DS_NEVER(c == NULL || req == NULL || out == NULL)) {
		return store_error_set(err, STORE_EINVAL, "",
		    "conn, req or out is NULL");
	}
	return c->s->be->list(c, req, out, err);
}

store_err
store_apply(store_conn *c, const store_write *w, store_write_result *result)
{
	if (DS_NEVER(c == NULL || w == NULL || result == NULL)) {
		return STORE_EINVAL;
	}
	(void) c->s->be->apply_batch(c, w, 1, result); /* see result */
	return result->error.code;
}

store_err
store_apply_batch(store_conn *c, const store_write *ws, size_t n,
    store_write_result *results)
{
	if (n == 0) {
		return STORE_OK;
	}
	if (DS_NEVER(c == NULL || ws == NULL || results == NULL)) {
		return STORE_EINVAL;
	}
	return c->s->be->apply_batch(c, ws, n, results);
}

store_err
store_revision(store_conn *c, uint64_t *out, store_error *err)
{
	if (DS_NEVER(c == NULL || out == NULL)) {
		return store_error_set(err, STORE_EINVAL, "",
		    "conn or out is NULL");
	}
	return c->s->be->revision(c, out, err);
}

store_err
store_integrity_check(store_conn *c, store_error *err)
{
	if (DS_NEVER(c == NULL)) {
		return store_error_set(err, STORE_EINVAL, "", "conn is NULL");
	}
	return c->s->be->integrity_check(c, err);
}

store_err
store_data_version(store_conn *c, uint64_t *out, store_error *err)
{
	if (DS_NEVER(c == NULL || out == NULL)) {
		return store_error_set(err, STORE_EINVAL, "",
		    "conn or out is NULL");
	}
	return c->s->be->peek(c, NULL, 0, out, NULL, err);
}

store_err
store_peek_requests(store_conn *c, const store_write *const *ws, size_t n,
    uint64_t *data_version, bool *seen, store_error *err)
{
	if (DS_NEVER(c == NULL || data_version == NULL ||
	        (n > 0 && (ws == NULL || seen == NULL)))) {
		return store_error_set(err, STORE_EINVAL, "",
		    "conn, ws, data_version or seen is NULL");
	}
	return c->s->be->peek(c, ws, n, data_version, seen, err);
}

/* --- tokens: dispatch; the rules of names and grants are auth.h's --- */

/* store_auth_backend refuses a call the backend cannot serve. */
static store_err
store_auth_backend(store_conn *c, bool has, store_error *err)
{
	if (!has) {
		return store_error_set(err, STORE_EINVAL, "",
		    "the %s backend keeps no tokens", c->s->be->name);
	}
	return STORE_OK;
}

store_err
store_auth_create(store_conn *c, const char *name, const uint8_t hash[32],
    const char *grants, store_auth_token *out, store_error *err)
{
	store_err rv;

	if (DS_NEVER(c == NULL || hash == NULL)) {
		return store_error_set(err, STORE_EINVAL, "",
		    "conn or hash is NULL");
	}
	if (name == NULL || name[0] == '\0') {
		return store_error_set(err, STORE_EINVAL, "name",
		    "a token needs a name");
	}
	if (grants == NULL || grants[0] == '\0') {
		return store_error_set(err, STORE_EINVAL, "grants",
		    "a token needs at least one grant");
	}
	if ((rv = store_auth_backend(c, c->s->be->auth_create != NULL,
	         err)) != STORE_OK) {
		return rv;
	}
	return c->s->be->auth_create(c, name, hash, grants, out, err);
}

store_err
store_auth_revoke(store_conn *c, const char *name, store_auth_token *out,
    store_error *err)
{
	store_err rv;

	if (DS_NEVER(c == NULL)) {
		return store_error_set(err, STORE_EINVAL, "", "conn is NULL");
	}
	if (name == NULL || name[0] == '\0') {
		return store_error_set(err, STORE_EINVAL, "name",
		    "revoking needs a token name");
	}
	if ((rv = store_auth_backend(c, c->s->be->auth_revoke != NULL,
	         err)) != STORE_OK) {
		return rv;
	}
	return c->s->be->auth_revoke(c, name, out, err);
}

store_err
store_auth_list(store_conn *c, store_auth_token **out, size_t *n,
    uint64_t *generation, store_error *err)
{
	store_err rv;

	if (DS_NEVER(c == NULL || out == NULL || n == NULL ||
	        generation == NULL)) {
		return store_error_set(err, STORE_EINVAL, "",
		    "conn, out, n or generation is NULL");
	}
	if ((rv = store_auth_backend(c, c->s->be->auth_list != NULL,
	         err)) != STORE_OK) {
		return rv;
	}
	return c->s->be->auth_list(c, out, n, generation, err);
}

store_err
store_auth_generation(store_conn *c, uint64_t *generation, store_error *err)
{
	store_err rv;

	if (DS_NEVER(c == NULL || generation == NULL)) {
		return store_error_set(err, STORE_EINVAL, "",
		    "conn or generation is NULL");
	}
	if ((rv = store_auth_backend(c, c->s->be->auth_generation != NULL,
	         err)) != STORE_OK) {
		return rv;
	}
	return c->s->be->auth_generation(c, generation, err);
}

void
store_auth_token_fini(store_auth_token *t)
{
	if (t == NULL) {
		return;
	}
	ds_free(t->name);
	ds_free(t->grants);
	memset(t, 0, sizeof(*t));
}

void
store_auth_tokens_free(store_auth_token *t, size_t n)
{
	if (t == NULL) {
		return;
	}
	for (size_t i = 0; i < n; i++) {
		store_auth_token_fini(&t[i]);
	}
	ds_free(t);
}

int64_t
store_now_ms(const store *s)
{
	return ds_clock_now_ms(s->clock);
}

store_err
store_conflict_error(store_error *err, uint64_t version)
{
	return store_error_set(err, STORE_ECONFLICT, "precondition",
	    "version conflict: the key is at version %llu",
	    (unsigned long long) version);
}
