/*
 * ds_model.h - a small reference model of DESIGN §4, for model-based
 * testing: random operation sequences from K simulated clients are run
 * both against the system under test (the store, or a live server) and
 * against this model, and the replies are compared one by one.
 *
 * The model is deliberately naive (arrays, linear scans) so that it is
 * obviously right. It knows nothing of store.h or protobuf: the adapters
 * in the tests translate. Lock tokens are secrets the model never sees;
 * a client's token is identified by the fencing token of the acquisition
 * that issued it, which is unique per acquisition.
 */
#ifndef DS_MODEL_H
#define DS_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DS_MODEL_KEYS 3
#define DS_MODEL_CLIENTS 3

typedef enum ds_model_kind {
	DS_M_GET = 1,
	DS_M_UPDATE,
	DS_M_DELETE,
	DS_M_LOCK,
	DS_M_UNLOCK,
	DS_M_LIST,
	DS_M_ADVANCE, /* move the clock forward */
} ds_model_kind;

typedef enum ds_model_pre {
	DS_M_PRE_NONE = 0,
	DS_M_PRE_IF_VERSION,
	DS_M_PRE_IF_ABSENT,
	DS_M_PRE_IF_EXISTS,
	DS_M_PRE_UNCONDITIONAL,
} ds_model_pre;

/* Which token an operation presents. */
typedef enum ds_model_tok {
	DS_M_TOK_NONE = 0,
	DS_M_TOK_OWN,   /* the client's latest token for the key (if any) */
	DS_M_TOK_BOGUS, /* a well-formed token nobody was ever given */
} ds_model_tok;

typedef enum ds_model_outcome {
	DS_M_OK = 0,
	DS_M_NOT_FOUND,
	DS_M_CONFLICT,
	DS_M_LOCKED,
	DS_M_LOCK_EXPIRED,
	DS_M_TOKEN_MISMATCH,
	DS_M_NOT_LOCKED,
	DS_M_PRECONDITION_REQUIRED,
	DS_M_OTHER, /* anything else: always a test failure */
} ds_model_outcome;

typedef struct ds_model_op {
	ds_model_kind kind;
	int key;             /* 0..DS_MODEL_KEYS-1 */
	int client;          /* 0..DS_MODEL_CLIENTS-1 */
	ds_model_pre pre;
	uint64_t if_version;
	uint64_t value;      /* UPDATE: value id, written as "v<id>" */
	ds_model_tok tok;
	uint64_t tok_fence;  /* filled by the runner: the fence of the token
	                      * presented (0 for none or bogus) */
	int64_t ttl_ms;      /* LOCK */
	int64_t advance_ms;  /* ADVANCE */
} ds_model_op;

typedef struct ds_model_reply {
	ds_model_outcome outcome;
	uint64_t version;    /* GET/UPDATE ok, DELETE ok (tombstone), CONFLICT:
	                      * the current version (0 = none) */
	uint64_t value;      /* GET ok, CONFLICT on a live record: value id */
	bool locked;         /* GET ok / LOCKED: a live lease is shown */
	int owner;           /* client holding it */
	uint64_t fence;      /* LOCK ok / GET locked / LOCKED */
	bool renewed;        /* LOCK ok */
	/* LIST: version of each key, 0 = not listed */
	uint64_t list_version[DS_MODEL_KEYS];
} ds_model_reply;

typedef struct ds_model_key {
	bool exists;
	uint64_t version;     /* includes tombstones; 0 = never written */
	uint64_t value;
	bool has_lease;       /* a lease record exists (live or expired) */
	int owner;
	uint64_t fence;       /* of the lease record */
	int64_t expires_ms;
} ds_model_key;

typedef struct ds_model {
	int64_t now_ms;
	uint64_t fence_counter;
	ds_model_key keys[DS_MODEL_KEYS];
	/* the latest token each client holds per key (its fence; 0 = none) */
	uint64_t client_tok[DS_MODEL_CLIENTS][DS_MODEL_KEYS];
} ds_model;

/* ds_model_init: an empty store at time start_ms. */
void ds_model_init(ds_model *m, int64_t start_ms);

/* ds_model_random_op draws a random operation (xorshift state *rng),
 * biased towards interesting cases: versions near the current one,
 * tokens that just expired, contended locks. The caller then calls
 * ds_model_prepare before running it. */
ds_model_op ds_model_random_op(const ds_model *m, uint64_t *rng,
    bool allow_advance);

/* ds_model_prepare fills op->tok_fence with the fence identifying the
 * token op presents (0 when none or bogus); an Unlock whose client holds
 * nothing presents a bogus token (Unlock always carries one). */
void ds_model_prepare(const ds_model *m, ds_model_op *op);

/* ds_model_apply runs op on the model and writes the expected reply. */
void ds_model_apply(ds_model *m, const ds_model_op *op, ds_model_reply *out);

/* ds_model_compare returns NULL when got matches want for op, else a
 * static description of the first difference. */
const char *ds_model_compare(const ds_model_op *op,
    const ds_model_reply *want, const ds_model_reply *got);

/* ds_model_describe writes a one-line description of op into buf. */
void ds_model_describe(const ds_model_op *op, char *buf, size_t cap);

/* ds_model_outcome_of maps a reason string ("VERSION_CONFLICT", ...,
 * "" for success) to an outcome. */
ds_model_outcome ds_model_outcome_of(const char *reason);

#endif /* DS_MODEL_H */
