/*
 * store_lease.c - the lease and fencing rules of DESIGN §4 rules 3-5, as
 * pure functions of (stored lease, now, presented token). The backend
 * reads the lease, asks here, and writes what was decided; the clock is
 * the caller's, so tests move time instead of sleeping.
 *
 * Why an expired lease is kept at all: it is no lock (reads show none and
 * anybody may acquire), but its token is remembered until it is replaced
 * so that the holder who lost it gets LOCK_EXPIRED rather than a write
 * that silently succeeds. A paused client therefore can never write after
 * its lease ran out, even when nobody took the lock meanwhile: the store
 * is its own fencing check.
 */
#include "ds_text.h"
#include "store_int.h"

bool
store_lease_live(const store_lease *l, int64_t now_ms)
{
	return l->held && !l->swept && now_ms < l->expires_at_ms;
}

/* store_lease_token_is: constant time, so the secret cannot be probed. */
static bool
store_lease_token_is(const store_lease *l, const store_token *t)
{
	return l->held && ds_ct_equal(l->token.b, t->b, sizeof(t->b));
}

store_err
store_lease_check_write(const store_lease *l, int64_t now_ms, bool has_token,
    const store_token *token)
{
	if (store_lease_live(l, now_ms)) {
		if (!has_token || !store_lease_token_is(l, token)) {
			return STORE_ELOCKED;
		}
		return STORE_OK;
	}
	if (!has_token) {
		return STORE_OK;
	}
	/* A token but no live lease: the caller believes it holds a lock it
	 * does not. Never let that write through. */
	return store_lease_token_is(l, token) ? STORE_ELOCK_EXPIRED
	                                      : STORE_ENOT_LOCKED;
}

store_err
store_lease_check_lock(const store_lease *l, int64_t now_ms, bool has_token,
    const store_token *token, store_lease_action *action)
{
	store_err rv;

	if (!has_token) {
		if (store_lease_live(l, now_ms)) {
			return STORE_ELOCKED;
		}
		*action = STORE_LEASE_ACQUIRE;
		return STORE_OK;
	}
	/* Renewal follows the write rule: only the live holder renews. */
	if ((rv = store_lease_check_write(l, now_ms, true, token)) !=
	    STORE_OK) {
		return rv;
	}
	*action = STORE_LEASE_RENEW;
	return STORE_OK;
}

store_err
store_lease_check_unlock(const store_lease *l, int64_t now_ms,
    const store_token *token)
{
	if (!store_lease_live(l, now_ms)) {
		return STORE_ENOT_LOCKED;
	}
	return store_lease_token_is(l, token) ? STORE_OK
	                                      : STORE_ETOKEN_MISMATCH;
}

int64_t
store_lease_expiry(int64_t now_ms, int64_t ttl_ms)
{
	if (ttl_ms > 0 && now_ms > INT64_MAX - ttl_ms) {
		return INT64_MAX;
	}
	return now_ms + ttl_ms;
}

store_err
store_lease_error(store_error *err, store_err code, const char *owner,
    const store_lease *l)
{
	switch (code) {
	case STORE_ELOCKED:
		return store_error_set(err, code, "lock_token",
		    "locked by \"%s\" until %lld (fencing token %llu)",
		    owner != NULL ? owner : "", (long long) l->expires_at_ms,
		    (unsigned long long) l->fencing_token);
	case STORE_ELOCK_EXPIRED:
		return store_error_set(err, code, "lock_token",
		    "the lease of lock_token expired at %lld",
		    (long long) l->expires_at_ms);
	case STORE_ENOT_LOCKED:
		return store_error_set(err, code, "lock_token",
		    "no live lock is held on the key");
	case STORE_ETOKEN_MISMATCH:
		return store_error_set(err, code, "lock_token",
		    "lock_token is not the token of the held lock");
	default:
		return store_error_set(err, code, "lock_token", "%s",
		    store_strerror(code));
	}
}
