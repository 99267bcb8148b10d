/*
 * ds_lincheck.c - Wing & Gong search with Lowe's memoization, for a
 * versioned compare-and-set register.
 */
#include <stdlib.h>
#include <string.h>

#include "ds_lincheck.h"

typedef struct lin_state {
	bool exists;
	uint64_t version;
	uint64_t value;
} lin_state;

/* --- memo: a set of (linearized bitset, state) --- */

typedef struct lin_entry {
	struct lin_entry *next;
	uint64_t hash;
	lin_state st;
	uint64_t bits[]; /* words of the bitset */
} lin_entry;

typedef struct lin_memo {
	lin_entry **slots;
	size_t n_slots; /* power of two */
	size_t count;
	size_t words;
} lin_memo;

static uint64_t
lin_hash(const uint64_t *bits, size_t words, const lin_state *st)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (size_t i = 0; i < words; i++) {
		h ^= bits[i];
		h *= UINT64_C(0x100000001b3);
		h ^= h >> 29;
	}
	h ^= st->version * UINT64_C(0x9e3779b97f4a7c15);
	h ^= st->value + (st->exists ? 0x51ed27 : 0);
	h *= UINT64_C(0x100000001b3);
	return h;
}

static int
lin_memo_grow(lin_memo *m)
{
	size_t n = m->n_slots ? m->n_slots * 2 : 1024;
	lin_entry **slots = calloc(n, sizeof(*slots));

	if (slots == NULL) {
		return -1;
	}
	for (size_t i = 0; i < m->n_slots; i++) {
		lin_entry *e = m->slots[i];

		while (e != NULL) {
			lin_entry *next = e->next;
			size_t k = e->hash & (n - 1);

			e->next = slots[k];
			slots[k] = e;
			e = next;
		}
	}
	free(m->slots);
	m->slots = slots;
	m->n_slots = n;
	return 0;
}

/* lin_memo_add returns 1 when (bits, st) was new (and is now recorded),
 * 0 when seen before, -1 when out of memory. */
static int
lin_memo_add(lin_memo *m, const uint64_t *bits, const lin_state *st)
{
	uint64_t h = lin_hash(bits, m->words, st);
	lin_entry *e;

	if (m->count * 2 >= m->n_slots && lin_memo_grow(m) != 0) {
		return -1;
	}
	for (e = m->slots[h & (m->n_slots - 1)]; e != NULL; e = e->next) {
		if (e->hash == h && e->st.exists == st->exists &&
		    e->st.version == st->version && e->st.value == st->value &&
		    memcmp(e->bits, bits, m->words * sizeof(uint64_t)) == 0) {
			return 0;
		}
	}
	e = malloc(sizeof(*e) + m->words * sizeof(uint64_t));
	if (e == NULL) {
		return -1;
	}
	e->hash = h;
	e->st = *st;
	memcpy(e->bits, bits, m->words * sizeof(uint64_t));
	e->next = m->slots[h & (m->n_slots - 1)];
	m->slots[h & (m->n_slots - 1)] = e;
	m->count++;
	return 1;
}

static void
lin_memo_free(lin_memo *m)
{
	for (size_t i = 0; i < m->n_slots; i++) {
		lin_entry *e = m->slots[i];

		while (e != NULL) {
			lin_entry *next = e->next;

			free(e);
			e = next;
		}
	}
	free(m->slots);
}

/* --- the model --- */

/* lin_apply returns true when op is legal in *st and updates *st. */
static bool
lin_apply(const ds_lin_op *op, lin_state *st)
{
	bool pending = op->ret_ns == DS_LIN_PENDING;
	bool holds;

	switch (op->kind) {
	case DS_LIN_GET:
		if (op->ok != st->exists) {
			return false;
		}
		return !op->ok ||
		    (op->version == st->version && op->value == st->value);
	case DS_LIN_CAS:
		holds = op->if_absent ? !st->exists
		                      : st->exists && st->version == op->if_version;
		if (pending) {
			/* Executed here: applied exactly when it holds. */
			if (holds) {
				st->exists = true;
				st->version++;
				st->value = op->write_value;
			}
			return true;
		}
		if (op->ok) {
			if (!holds || op->version != st->version + 1) {
				return false;
			}
			st->exists = true;
			st->version++;
			st->value = op->write_value;
			return true;
		}
		return !holds && (op->version == 0 || op->version == st->version);
	case DS_LIN_DELETE:
		holds = st->exists && st->version == op->if_version;
		if (pending) {
			if (holds) {
				st->exists = false;
				st->version++;
			}
			return true;
		}
		if (op->ok) {
			if (!holds) {
				return false;
			}
			st->exists = false;
			st->version++;
			return true;
		}
		return !holds && (op->version == 0 || op->version == st->version);
	}
	return false;
}

/* --- the search --- */

typedef struct lin_frame {
	size_t op;      /* sorted position of the op linearized to get here */
	lin_state prev; /* state before it */
	size_t next;    /* next sorted position to try at this level */
} lin_frame;

static const ds_lin_op *lin_sort_base;

static int
lin_by_call(const void *a, const void *b)
{
	const ds_lin_op *x = &lin_sort_base[*(const size_t *) a];
	const ds_lin_op *y = &lin_sort_base[*(const size_t *) b];

	return (x->call_ns > y->call_ns) - (x->call_ns < y->call_ns);
}

int
ds_lin_check(const ds_lin_op *ops, size_t n, uint64_t max_states,
    ds_lin_result *out)
{
	size_t *order = NULL;
	uint64_t *bits = NULL;
	lin_frame *stack = NULL;
	lin_memo memo;
	size_t words = (n + 63) / 64 + 1;
	size_t depth = 0;
	size_t finite = 0;
	size_t done_finite = 0;
	lin_state st = {false, 0, 0};
	int rv = -1;

	memset(out, 0, sizeof(*out));
	memset(&memo, 0, sizeof(memo));
	memo.words = words;
	if (max_states == 0) {
		max_states = 10000000;
	}
	if ((order = calloc(n + 1, sizeof(*order))) == NULL ||
	    (bits = calloc(words, sizeof(*bits))) == NULL ||
	    (stack = calloc(n + 1, sizeof(*stack))) == NULL) {
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		order[i] = i;
		finite += ops[i].ret_ns != DS_LIN_PENDING;
	}
	/* qsort has no context argument; the checker is not reentrant, which
	 * is fine for a test tool. */
	lin_sort_base = ops;
	qsort(order, n, sizeof(*order), lin_by_call);

	stack[0].op = SIZE_MAX;
	stack[0].next = 0;
	for (;;) {
		lin_frame *f = &stack[depth];
		int64_t minret = DS_LIN_PENDING;
		bool pushed = false;

		if (done_finite == finite) {
			out->linearizable = true;
			break;
		}
		if (out->states >= max_states) {
			out->gave_up = true;
			break;
		}
		for (size_t p = 0; p < n; p++) {
			const ds_lin_op *o = &ops[order[p]];

			if (!(bits[p / 64] & (UINT64_C(1) << (p % 64))) &&
			    o->ret_ns < minret) {
				minret = o->ret_ns;
			}
		}
		/* Candidates: not yet linearized, invoked no later than the
		 * earliest pending response (nothing must precede them). */
		for (size_t p = f->next; p < n; p++) {
			const ds_lin_op *o = &ops[order[p]];
			lin_state next = st;
			int added;

			if (o->call_ns > minret) {
				break;
			}
			if (bits[p / 64] & (UINT64_C(1) << (p % 64))) {
				continue;
			}
			if (!lin_apply(o, &next)) {
				continue;
			}
			bits[p / 64] |= UINT64_C(1) << (p % 64);
			added = lin_memo_add(&memo, bits, &next);
			if (added < 0) {
				goto out;
			}
			if (added == 0) {
				bits[p / 64] &= ~(UINT64_C(1) << (p % 64));
				continue;
			}
			out->states++;
			f->next = p + 1;
			depth++;
			stack[depth].op = p;
			stack[depth].prev = st;
			stack[depth].next = 0;
			st = next;
			done_finite += o->ret_ns != DS_LIN_PENDING;
			if (depth > out->longest_prefix) {
				out->longest_prefix = depth;
			}
			pushed = true;
			break;
		}
		if (pushed) {
			continue;
		}
		if (depth == 0) {
			out->linearizable = false;
			break;
		}
		{
			size_t p = stack[depth].op;

			bits[p / 64] &= ~(UINT64_C(1) << (p % 64));
			st = stack[depth].prev;
			done_finite -= ops[order[p]].ret_ns != DS_LIN_PENDING;
			depth--;
		}
	}
	rv = 0;
out:
	lin_memo_free(&memo);
	free(order);
	free(bits);
	free(stack);
	return rv;
}
