/*
 * ds_lincheck.h - a linearizability checker for one versioned register
 * with compare-and-set, the model of one datasync key.
 *
 * A history is the list of operations threads performed on one key, each
 * with the time it was invoked and the time its response arrived. The
 * history is linearizable when some total order of the operations (a)
 * respects real time — an operation that returned before another was
 * invoked comes first — and (b) is a legal sequential run of the model.
 * The search is Wing & Gong's, with Lowe's memoization of (set of
 * linearized operations, model state) so equivalent prefixes are explored
 * once. Keys are independent (a register per key), so callers check each
 * key's sub-history separately.
 *
 * Model state: exists, version, value. Version 0 = never written. A
 * successful write or delete takes version + 1 (a delete leaves a
 * tombstone whose version a re-create continues), exactly as the store.
 *
 * An operation whose outcome is unknown (the call timed out) has
 * ret_ns = DS_LIN_PENDING: it may have taken effect at any point after its
 * invocation, or never.
 */
#ifndef DS_LINCHECK_H
#define DS_LINCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DS_LIN_PENDING INT64_MAX

typedef enum ds_lin_kind {
	DS_LIN_GET = 1,
	DS_LIN_CAS,    /* Update with if_version (or if_absent) */
	DS_LIN_DELETE, /* Delete with if_version */
} ds_lin_kind;

typedef struct ds_lin_op {
	int64_t call_ns;  /* invocation, any monotonic clock */
	int64_t ret_ns;   /* response, or DS_LIN_PENDING */
	ds_lin_kind kind;
	/* input */
	bool if_absent;       /* CAS: create only */
	uint64_t if_version;  /* CAS (unless if_absent) and DELETE */
	uint64_t write_value; /* CAS: the value written (unique per write) */
	/* output (ignored when pending) */
	bool ok;              /* GET: found; CAS/DELETE: applied */
	uint64_t version;     /* GET found / CAS ok: the record's version;
	                       * CAS/DELETE conflict: the current version the
	                       * conflict reported (0 = not reported) */
	uint64_t value;       /* GET found: the value read */
} ds_lin_op;

typedef struct ds_lin_result {
	bool linearizable;
	bool gave_up;         /* explored max_states without an answer */
	uint64_t states;      /* states explored */
	size_t longest_prefix;/* most operations linearized in one attempt */
} ds_lin_result;

/* ds_lin_check decides whether ops[0..n) is linearizable, exploring at
 * most max_states states (0 = 10 million). ops may be in any order; the
 * array is not modified. Returns 0, or -1 when out of memory. */
int ds_lin_check(const ds_lin_op *ops, size_t n, uint64_t max_states,
    ds_lin_result *out);

#endif /* DS_LINCHECK_H */
