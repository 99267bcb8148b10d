/*
 * ds_model.c - the reference model of DESIGN §4 (see ds_model.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ds_model.h"

void
ds_model_init(ds_model *m, int64_t start_ms)
{
	memset(m, 0, sizeof(*m));
	m->now_ms = start_ms;
}

static uint64_t
ds_model_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

ds_model_op
ds_model_random_op(const ds_model *m, uint64_t *rng, bool allow_advance)
{
	ds_model_op op;
	uint64_t r = ds_model_rand(rng) % 100;
	const ds_model_key *k;

	memset(&op, 0, sizeof(op));
	op.key = (int) (ds_model_rand(rng) % DS_MODEL_KEYS);
	op.client = (int) (ds_model_rand(rng) % DS_MODEL_CLIENTS);
	k = &m->keys[op.key];
	if (r < 18) {
		op.kind = DS_M_GET;
	} else if (r < 48) {
		op.kind = DS_M_UPDATE;
		op.value = ds_model_rand(rng) % 1000000;
	} else if (r < 56) {
		op.kind = DS_M_DELETE;
	} else if (r < 72) {
		op.kind = DS_M_LOCK;
		op.ttl_ms = 1000 * (int64_t) (1 + ds_model_rand(rng) % 3);
	} else if (r < 82) {
		op.kind = DS_M_UNLOCK;
	} else if (r < 88) {
		op.kind = DS_M_LIST;
	} else if (allow_advance) {
		op.kind = DS_M_ADVANCE;
		/* Steps of 1.1 s against ttls of whole seconds: a lease is
		 * never within 100 ms of its expiry when checked, so a live
		 * server's real clock agrees with the model's. */
		op.advance_ms = 1100;
	} else {
		op.kind = DS_M_GET;
	}
	if (op.kind == DS_M_UPDATE || op.kind == DS_M_DELETE) {
		uint64_t p = ds_model_rand(rng) % 100;

		if (p < 45) {
			op.pre = DS_M_PRE_IF_VERSION;
			/* Mostly the current version, sometimes a stale or future
			 * one. */
			op.if_version = k->version;
			if (p < 10 && op.if_version > 0) {
				op.if_version--;
			} else if (p < 15) {
				op.if_version++;
			}
			if (op.if_version == 0) {
				op.if_version = 1;
			}
		} else if (p < 65) {
			op.pre = DS_M_PRE_IF_ABSENT;
		} else if (p < 78) {
			op.pre = DS_M_PRE_IF_EXISTS;
		} else if (p < 95) {
			op.pre = DS_M_PRE_UNCONDITIONAL;
		} else {
			op.pre = DS_M_PRE_NONE;
		}
		if (op.kind == DS_M_DELETE && op.pre == DS_M_PRE_IF_ABSENT) {
			op.pre = DS_M_PRE_UNCONDITIONAL;
		}
	}
	if (op.kind == DS_M_UPDATE || op.kind == DS_M_DELETE ||
	    op.kind == DS_M_LOCK || op.kind == DS_M_UNLOCK) {
		uint64_t t = ds_model_rand(rng) % 100;

		/* Writers usually present what they hold; lockers usually
		 * present nothing (a fresh acquisition) or renew. */
		if (op.kind == DS_M_LOCK) {
			op.tok = t < 60 ? DS_M_TOK_NONE
			                : (t < 95 ? DS_M_TOK_OWN : DS_M_TOK_BOGUS);
		} else if (op.kind == DS_M_UNLOCK) {
			op.tok = t < 85 ? DS_M_TOK_OWN : DS_M_TOK_BOGUS;
		} else {
			op.tok = t < 50 ? DS_M_TOK_OWN
			                : (t < 95 ? DS_M_TOK_NONE : DS_M_TOK_BOGUS);
		}
	}
	return op;
}

void
ds_model_prepare(const ds_model *m, ds_model_op *op)
{
	op->tok_fence = 0;
	if (op->tok == DS_M_TOK_OWN) {
		op->tok_fence = m->client_tok[op->client][op->key];
		if (op->tok_fence == 0 && op->kind == DS_M_UNLOCK) {
			op->tok = DS_M_TOK_BOGUS;
		}
	}
}

static bool
ds_model_live(const ds_model *m, const ds_model_key *k)
{
	return k->has_lease && m->now_ms < k->expires_ms;
}

/* ds_model_presents: op carries some token (own with nothing held counts
 * as none: the runner sends no token then). */
static bool
ds_model_presents(const ds_model_op *op)
{
	return op->tok == DS_M_TOK_BOGUS ||
	    (op->tok == DS_M_TOK_OWN && op->tok_fence != 0);
}

static void
ds_model_conflict(const ds_model_key *k, ds_model_reply *out)
{
	out->outcome = DS_M_CONFLICT;
	out->version = k->version;
	out->value = k->exists ? k->value : 0;
}

static void
ds_model_locked(const ds_model_key *k, ds_model_reply *out)
{
	out->outcome = DS_M_LOCKED;
	out->locked = true;
	out->owner = k->owner;
	out->fence = k->fence;
}

/* ds_model_write_lock_check: the lock rules for Update and Delete.
 * Returns true when the write may proceed to its precondition. */
static bool
ds_model_write_lock_check(const ds_model *m, const ds_model_key *k,
    const ds_model_op *op, ds_model_reply *out)
{
	if (ds_model_live(m, k)) {
		if (!ds_model_presents(op) || op->tok_fence != k->fence) {
			ds_model_locked(k, out);
			return false;
		}
		return true;
	}
	if (ds_model_presents(op)) {
		out->outcome = k->has_lease && op->tok_fence == k->fence
		    ? DS_M_LOCK_EXPIRED
		    : DS_M_NOT_LOCKED;
		return false;
	}
	return true;
}

static bool
ds_model_holds(const ds_model_key *k, const ds_model_op *op)
{
	switch (op->pre) {
	case DS_M_PRE_IF_VERSION:
		return k->exists && k->version == op->if_version;
	case DS_M_PRE_IF_ABSENT:
		return !k->exists;
	case DS_M_PRE_IF_EXISTS:
		return k->exists;
	case DS_M_PRE_UNCONDITIONAL:
		return true;
	case DS_M_PRE_NONE:
		break;
	}
	return false;
}

void
ds_model_apply(ds_model *m, const ds_model_op *op, ds_model_reply *out)
{
	ds_model_key *k = &m->keys[op->key];

	memset(out, 0, sizeof(*out));
	switch (op->kind) {
	case DS_M_ADVANCE:
		m->now_ms += op->advance_ms;
		return;
	case DS_M_GET:
		if (!k->exists) {
			out->outcome = DS_M_NOT_FOUND;
			return;
		}
		out->version = k->version;
		out->value = k->value;
		if (ds_model_live(m, k)) {
			out->locked = true;
			out->owner = k->owner;
			out->fence = k->fence;
		}
		return;
	case DS_M_LIST:
		for (int i = 0; i < DS_MODEL_KEYS; i++) {
			out->list_version[i] =
			    m->keys[i].exists ? m->keys[i].version : 0;
		}
		return;
	case DS_M_UPDATE:
	case DS_M_DELETE:
		if (op->pre == DS_M_PRE_NONE) {
			out->outcome = DS_M_PRECONDITION_REQUIRED;
			return;
		}
		if (!ds_model_write_lock_check(m, k, op, out)) {
			return;
		}
		if (op->kind == DS_M_DELETE && !k->exists &&
		    op->pre == DS_M_PRE_UNCONDITIONAL) {
			out->outcome = DS_M_NOT_FOUND;
			return;
		}
		if (!ds_model_holds(k, op)) {
			ds_model_conflict(k, out);
			return;
		}
		k->version++;
		out->version = k->version;
		if (op->kind == DS_M_UPDATE) {
			k->exists = true;
			k->value = op->value;
		} else {
			k->exists = false;
			k->value = 0;
		}
		return;
	case DS_M_LOCK:
		if (ds_model_live(m, k)) {
			if (ds_model_presents(op) && op->tok_fence == k->fence) {
				k->expires_ms = m->now_ms + op->ttl_ms;
				out->fence = k->fence;
				out->renewed = true;
				out->owner = k->owner;
				out->locked = true;
				return;
			}
			ds_model_locked(k, out);
			return;
		}
		if (ds_model_presents(op)) {
			out->outcome = k->has_lease && op->tok_fence == k->fence
			    ? DS_M_LOCK_EXPIRED
			    : DS_M_NOT_LOCKED;
			return;
		}
		k->has_lease = true;
		k->owner = op->client;
		k->fence = ++m->fence_counter;
		k->expires_ms = m->now_ms + op->ttl_ms;
		m->client_tok[op->client][op->key] = k->fence;
		out->fence = k->fence;
		out->owner = op->client;
		out->locked = true;
		return;
	case DS_M_UNLOCK:
		if (!ds_model_live(m, k)) {
			out->outcome = DS_M_NOT_LOCKED;
			return;
		}
		if (!ds_model_presents(op) || op->tok_fence != k->fence) {
			out->outcome = DS_M_TOKEN_MISMATCH;
			return;
		}
		k->has_lease = false;
		return;
	}
}

const char *
ds_model_compare(const ds_model_op *op, const ds_model_reply *want,
    const ds_model_reply *got)
{
	if (want->outcome != got->outcome) {
		return "outcome differs";
	}
	switch (op->kind) {
	case DS_M_GET:
		if (want->outcome != DS_M_OK) {
			return NULL;
		}
		if (want->version != got->version) {
			return "version differs";
		}
		if (want->value != got->value) {
			return "value differs";
		}
		if (want->locked != got->locked) {
			return "lock state differs";
		}
		if (want->locked &&
		    (want->owner != got->owner || want->fence != got->fence)) {
			return "lock owner or fencing token differs";
		}
		return NULL;
	case DS_M_UPDATE:
	case DS_M_DELETE:
		if ((want->outcome == DS_M_OK || want->outcome == DS_M_CONFLICT) &&
		    want->version != got->version) {
			return "version differs";
		}
		if (want->outcome == DS_M_CONFLICT && want->value != got->value) {
			return "current value in the conflict differs";
		}
		if (want->outcome == DS_M_LOCKED &&
		    (want->owner != got->owner || want->fence != got->fence)) {
			return "lock holder differs";
		}
		return NULL;
	case DS_M_LOCK:
		if (want->outcome == DS_M_OK &&
		    (want->fence != got->fence || want->renewed != got->renewed)) {
			return "fencing token or renewed differs";
		}
		if (want->outcome == DS_M_LOCKED &&
		    (want->owner != got->owner || want->fence != got->fence)) {
			return "lock holder differs";
		}
		return NULL;
	case DS_M_LIST:
		for (int i = 0; i < DS_MODEL_KEYS; i++) {
			if (want->list_version[i] != got->list_version[i]) {
				return "listed versions differ";
			}
		}
		return NULL;
	case DS_M_UNLOCK:
	case DS_M_ADVANCE:
		return NULL;
	}
	return "unknown operation";
}

void
ds_model_describe(const ds_model_op *op, char *buf, size_t cap)
{
	static const char *kinds[] = {"?", "Get", "Update", "Delete", "Lock",
	    "Unlock", "List", "Advance"};
	static const char *pres[] = {"none", "if_version", "if_absent",
	    "if_exists", "unconditional"};
	static const char *toks[] = {"no token", "own token", "bogus token"};

	(void) snprintf(buf, cap,
	    "%s key=%d client=%d pre=%s(%" PRIu64 ") value=%" PRIu64
	    " %s(fence %" PRIu64 ") ttl=%" PRId64 " advance=%" PRId64,
	    kinds[op->kind], op->key, op->client, pres[op->pre], op->if_version,
	    op->value, toks[op->tok], op->tok_fence, op->ttl_ms, op->advance_ms);
}

ds_model_outcome
ds_model_outcome_of(const char *reason)
{
	static const struct {
		const char *reason;
		ds_model_outcome o;
	} map[] = {
	    {"", DS_M_OK},
	    {"NOT_FOUND", DS_M_NOT_FOUND},
	    {"VERSION_CONFLICT", DS_M_CONFLICT},
	    {"LOCKED", DS_M_LOCKED},
	    {"LOCK_EXPIRED", DS_M_LOCK_EXPIRED},
	    {"LOCK_TOKEN_MISMATCH", DS_M_TOKEN_MISMATCH},
	    {"NOT_LOCKED", DS_M_NOT_LOCKED},
	    {"PRECONDITION_REQUIRED", DS_M_PRECONDITION_REQUIRED},
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (strcmp(map[i].reason, reason) == 0) {
			return map[i].o;
		}
	}
	return DS_M_OTHER;
}
