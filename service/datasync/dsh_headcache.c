/*
 * dsh_headcache.c - the writer's memory of recently written heads, which
 * answers a CAS that cannot succeed without SQL (issue 10, item 3).
 *
 * Under a hot key most CAS writes in a batch carry a version the key has
 * already left; the store would read the row and the current value only
 * to refuse them. The writer remembers, for recently updated keys, the
 * head record exactly as the store would return it on a conflict (DESIGN
 * §4 rule 2: value included), learned only from batches that COMMITTED,
 * so an answer from here never shows state that is not durable yet.
 *
 * Another process (or another store handle in this one) may write the
 * same SQLite file. The cache is trusted only after data_version on the
 * writer's connection (store_peek_requests) reports that no other
 * connection committed since the cache's baseline (PRAGMA data_version,
 * once per batch that has a candidate, no row read); any change clears
 * it. We chose this over
 * "only when the file is opened exclusively" because the store is not
 * opened exclusively (the CLI, backups and tests open the file next to
 * the server), and the check is as cheap as one WAL-index read.
 *
 * Why an answer is linearizable: the check and the decision happen on
 * the writer, between transactions, when the file holds exactly the
 * committed state the cache learned (no other connection committed since
 * the check, the writer is the only writer of this connection). The
 * refused CAS takes effect at that instant, which lies inside its call,
 * and the store would have refused it there with the same record.
 *
 * Request ids: a CAS that carries one (every nrpc client call does) is
 * answered here only when the store holds no entry for its (caller,
 * request_id), checked in the same read transaction (one indexed lookup,
 * store_peek_requests): then the store too would run the write, refuse
 * it and remember nothing (a refusal is not remembered). Any entry, even
 * an expired one, sends the write to SQL, which replays it, refuses it as
 * REQUEST_ID_REUSED or runs it, exactly as before. A key
 * an earlier write of the same batch touches is left to SQL, since the
 * answer would depend on that write.
 *
 * Threads: the writer thread only.
 */
#include <string.h>

#include "ds_alloc.h"
#include "dsh_int.h"

/* dsh_head: one remembered head. rec is owned (value included), live,
 * unlocked; at_ms is the store clock the write saw (a lease that had
 * expired then stays expired only while the clock does not go back). */
typedef struct dsh_head {
	bool used;
	uint64_t mark;      /* the batch scan that last left this key to SQL */
	int64_t at_ms;
	store_record rec;
} dsh_head;

static uint64_t
dsh_headcache_hash(const char *key, size_t len)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (size_t i = 0; i < len; i++) {
		h ^= (uint8_t) key[i];
		h *= 1099511628211ULL;
	}
	return h;
}

/* dsh_headcache_slot returns the slot key maps to (direct-mapped: a new
 * key evicts the slot's old one, which bounds memory without a list). */
static dsh_head *
dsh_headcache_slot(dsh_headcache *hc, const char *key, size_t len)
{
	return &hc->slots[dsh_headcache_hash(key, len) % hc->n];
}

static bool
dsh_head_is(const dsh_head *e, const char *key, size_t len)
{
	return e->used && e->rec.key_len == len &&
	    memcmp(e->rec.key, key, len) == 0;
}

static void
dsh_head_drop(dsh_head *e)
{
	store_record_fini(&e->rec);
	e->used = false;
	e->mark = 0;
}

int
dsh_headcache_init(dsh_headcache *hc, size_t entries, size_t max_value)
{
	memset(hc, 0, sizeof(*hc));
	if (entries == 0) {
		return 0; /* off: dsh_headcache_answer never answers */
	}
	if ((hc->slots = ds_calloc(entries, sizeof(*hc->slots))) == NULL) {
		return -1;
	}
	hc->n = entries;
	hc->max_value = max_value;
	return 0;
}

void
dsh_headcache_clear(dsh_headcache *hc)
{
	for (size_t i = 0; i < hc->n; i++) {
		if (hc->slots[i].used) {
			dsh_head_drop(&hc->slots[i]);
		}
	}
}

void
dsh_headcache_fini(dsh_headcache *hc)
{
	dsh_headcache_clear(hc);
	ds_free(hc->slots);
	memset(hc, 0, sizeof(*hc));
}

bool
dsh_headcache_candidate(const dsh_headcache *hc, const store_write *w)
{
	/* Everything else goes to SQL: a token (the lease rules decide
	 * first), if_absent / if_exists / if_version_in /
	 * unconditional (not a plain CAS), a write the store has not
	 * validated (it would validate first). */
	return hc->n > 0 && w->validated &&
	    (w->op == STORE_OP_UPDATE || w->op == STORE_OP_DELETE) &&
	    w->precond.kind == STORE_PRECOND_IF_VERSION && !w->has_token;
}

void
dsh_headcache_baseline(dsh_headcache *hc, uint64_t data_version)
{
	dsh_headcache_clear(hc);
	hc->dv = data_version;
	hc->dv_known = true;
}

void
dsh_headcache_scan(dsh_headcache *hc)
{
	hc->mark++;
}

bool
dsh_headcache_valid(dsh_headcache *hc, uint64_t data_version)
{
	if (!hc->dv_known || hc->dv != data_version) {
		/* Another connection committed: anything may have moved. */
		dsh_headcache_baseline(hc, data_version);
		return false;
	}
	return true;
}

const store_record *
dsh_headcache_answer(dsh_headcache *hc, const store_write *w, int64_t now_ms,
    bool *later)
{
	dsh_head *e;
	bool cand;

	*later = false;
	if (hc->n == 0) {
		return NULL;
	}
	e = dsh_headcache_slot(hc, w->key, w->key_len);
	if (!dsh_head_is(e, w->key, w->key_len)) {
		return NULL; /* unknown: SQL; nothing later can use the slot */
	}
	cand = dsh_headcache_candidate(hc, w);
	if (cand && e->mark == hc->mark) {
		/* An earlier write of this scan went to SQL: what this one
		 * meets depends on it. Once the batch has committed the cache
		 * knows; the caller may hold it for the next scan. */
		*later = true;
		return NULL;
	}
	if (cand && e->rec.version != w->precond.version &&
	    now_ms >= e->at_ms) {
		return &e->rec;
	}
	e->mark = hc->mark; /* this write goes to SQL before what follows */
	return NULL;
}

/* dsh_head_set copies r (an applied Update's record) into e. */
static int
dsh_head_set(dsh_head *e, const store_record *r)
{
	store_record c;

	memset(&c, 0, sizeof(c));
	c = *r;
	c.key = NULL;
	c.value = NULL;
	c.content_type = NULL;
	c.updated_by = NULL;
	memset(&c.lock, 0, sizeof(c.lock));
	if ((c.key = ds_alloc(r->key_len + 1)) == NULL ||
	    (r->value_len > 0 && (c.value = ds_alloc(r->value_len)) == NULL) ||
	    (c.content_type = ds_strdup(r->content_type ? r->content_type
	                                                : "")) == NULL ||
	    (c.updated_by = ds_strdup(r->updated_by ? r->updated_by : "")) ==
	        NULL) {
		store_record_fini(&c);
		return -1;
	}
	memcpy(c.key, r->key, r->key_len);
	c.key[r->key_len] = '\0';
	if (r->value_len > 0) {
		memcpy(c.value, r->value, r->value_len);
	}
	if (e->used) {
		store_record_fini(&e->rec);
	}
	e->rec = c;
	e->at_ms = r->updated_at_ms;
	e->used = true;
	e->mark = 0;
	return 0;
}

void
dsh_headcache_learn(dsh_headcache *hc, const store_write *w,
    const store_write_result *r)
{
	dsh_head *e;
	bool keep;

	if (hc->n == 0 || r->error.code == STORE_ECONFLICT ||
	    (r->error.code == STORE_OK && r->replayed)) {
		return; /* a refusal or a replay changed nothing */
	}
	e = dsh_headcache_slot(hc, w->key, w->key_len);
	/* Only an applied Update of an unlocked key is learned (a replay,
	 * above, carries the stored outcome, not the head); a Delete leaves
	 * a tombstone (SQL words its conflict); a lock holder's write, Lock
	 * and Unlock change the lease, which the store checks first. */
	keep = r->error.code == STORE_OK && w->op == STORE_OP_UPDATE &&
	    !r->record.locked && !r->record.deleted &&
	    r->record.value_len <= hc->max_value &&
	    r->record.key_len == w->key_len;
	if (keep && dsh_head_set(e, &r->record) == 0) {
		return;
	}
	if (dsh_head_is(e, w->key, w->key_len)) {
		dsh_head_drop(e); /* whatever it was, it is not the head now */
	}
}
