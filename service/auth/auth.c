/*
 * auth.c - tokens, grants and the failure limiter of auth.h.
 */
#include "auth.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mbedtls/sha256.h>

#include "ds_alloc.h"
#include "ds_assert.h"
#include "ds_text.h"

/* Buckets of the limiter's peer index: twice the peers, so chains stay
 * short when the table is full. */
#define AUTH_LIMIT_BUCKETS (2 * AUTH_LIMIT_PEERS)

static void auth_fail(auth_error *err, const char *field, const char *fmt, ...)
    DS_PRINTF(3, 4);

static void
auth_fail(auth_error *err, const char *field, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL) {
		return;
	}
	(void) snprintf(err->field, sizeof(err->field), "%s", field);
	va_start(ap, fmt);
	/* Truncation is fine: the message is one line for a person. */
	(void) vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

const char *
auth_right_name(auth_right r)
{
	switch (r) {
	case AUTH_READ:
		return "read";
	case AUTH_WRITE:
		return "write";
	case AUTH_LOCK:
		return "lock";
	case AUTH_ADMIN:
		return "admin";
	}
	return "unknown";
}

/* --- names --- */

static bool
auth_name_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '@' ||
	       c == '-';
}

bool
auth_name_valid(const char *name, size_t len, auth_error *err)
{
	size_t i;

	if (name == NULL || len == 0 || len > AUTH_NAME_MAX) {
		auth_fail(err, "name",
		    "token name must be 1..%d bytes (AUTH_NAME_MAX), got %zu",
		    AUTH_NAME_MAX, name == NULL ? (size_t) 0 : len);
		return false;
	}
	for (i = 0; i < len; i++) {
		if (!auth_name_char((unsigned char) name[i])) {
			auth_fail(err, "name",
			    "token name may hold only [A-Za-z0-9._@-]; byte "
			    "%zu "
			    "is not one of them",
			    i);
			return false;
		}
	}
	return true;
}

/* --- grants --- */

static int
auth_grant_cmp(const void *a, const void *b)
{
	const auth_grant *x = a, *y = b;
	size_t n =
	    x->prefix_len < y->prefix_len ? x->prefix_len : y->prefix_len;
	int c = memcmp(x->prefix, y->prefix, n);

	if (c != 0) {
		return c;
	}
	return (x->prefix_len > y->prefix_len) -
	       (x->prefix_len < y->prefix_len);
}

/* auth_grant_show names grant number idx (from 0) for a message: its
 * position, and its text when that is short printable ASCII (user text of
 * any length and bytes must not reach a log line or a JSON error). */
static void
auth_grant_show(const char *spec, size_t idx, char out[64])
{
	size_t n = strnlen(spec, 41), i;
	bool plain = n <= 40;

	for (i = 0; i < n && plain; i++) {
		plain = spec[i] >= 0x20 && spec[i] < 0x7f && spec[i] != '"' &&
		        spec[i] != '\\';
	}
	if (plain) {
		(void) snprintf(out, 64, "%zu \"%s\"", idx + 1, spec);
	} else {
		(void) snprintf(out, 64, "%zu", idx + 1);
	}
}

/* auth_grant_spec reads grant number idx; on success *rights is its right
 * (0 for "admin") and *prefix / *plen its prefix (borrowed from spec). */
static int
auth_grant_spec(const char *spec, size_t idx, unsigned *rights,
    const char **prefix, size_t *plen, auth_error *err)
{
	static const struct {
		const char *name;
		unsigned right;
	} names[] = {
	    {"read", AUTH_READ},
	    {"write", AUTH_WRITE},
	    {"lock", AUTH_LOCK},
	};
	const char *colon;
	size_t wlen, i, n;
	char shown[64];

	if (spec == NULL) {
		auth_fail(
		    err, "grants", "grant %zu is missing (NULL)", idx + 1);
		return -1;
	}
	auth_grant_show(spec, idx, shown);
	if (strcmp(spec, "admin") == 0) {
		*rights = 0;
		*prefix = NULL;
		*plen = 0;
		return 0;
	}
	colon = strchr(spec, ':');
	wlen = colon != NULL ? (size_t) (colon - spec) : strlen(spec);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strlen(names[i].name) == wlen &&
		    memcmp(names[i].name, spec, wlen) == 0) {
			break;
		}
	}
	if (i == sizeof(names) / sizeof(names[0])) {
		auth_fail(err, "grants",
		    "grant %s has an unknown right (want read:PREFIX, "
		    "write:PREFIX, lock:PREFIX or admin)",
		    shown);
		return -1;
	}
	if (colon == NULL) {
		auth_fail(err, "grants",
		    "grant %s needs ':' and a prefix (\"%s:\" is every key)",
		    shown, names[i].name);
		return -1;
	}
	n = strlen(colon + 1);
	if (n > AUTH_PREFIX_MAX) {
		auth_fail(err, "grants",
		    "grant %s: its prefix is %zu bytes, over "
		    "AUTH_PREFIX_MAX (%d)",
		    shown, n, AUTH_PREFIX_MAX);
		return -1;
	}
	if (!ds_utf8_valid((const uint8_t *) colon + 1, n)) {
		auth_fail(
		    err, "grants", "grant %s: its prefix is not UTF-8", shown);
		return -1;
	}
	if (ds_utf8_has_control((const uint8_t *) colon + 1, n)) {
		auth_fail(err, "grants",
		    "grant %s: its prefix holds a control character", shown);
		return -1;
	}
	*rights = names[i].right;
	*prefix = colon + 1;
	*plen = n;
	return 0;
}

void
auth_grants_fini(auth_grants *g)
{
	size_t i;

	if (g == NULL) {
		return;
	}
	for (i = 0; i < g->n; i++) {
		ds_free(g->g[i].prefix);
	}
	ds_free(g->g);
	g->g = NULL;
	g->n = 0;
	g->admin = false;
}

int
auth_grants_parse(
    const char *const *specs, size_t n, auth_grants *out, auth_error *err)
{
	auth_grants g = {0};
	const char *prefix;
	size_t plen, i, j;
	unsigned rights;
	int rv = 0;

	if (n == 0 || n > AUTH_GRANTS_MAX) {
		auth_fail(err, "grants",
		    "a token needs 1..%d grants (AUTH_GRANTS_MAX), got %zu",
		    AUTH_GRANTS_MAX, n);
		rv = -1;
		goto out;
	}
	if ((g.g = ds_calloc(n, sizeof(*g.g))) == NULL) {
		auth_fail(err, "grants", "out of memory");
		rv = -2;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if ((rv = auth_grant_spec(
		         specs[i], i, &rights, &prefix, &plen, err)) != 0) {
			goto out;
		}
		if (rights == 0) {
			g.admin = true;
			continue;
		}
		/* Duplicates merge; n <= AUTH_GRANTS_MAX keeps this small. */
		for (j = 0; j < g.n; j++) {
			if (g.g[j].prefix_len == plen &&
			    memcmp(g.g[j].prefix, prefix, plen) == 0) {
				break;
			}
		}
		if (j < g.n) {
			g.g[j].rights |= rights;
			continue;
		}
		if ((g.g[g.n].prefix = ds_memdup(prefix, plen)) == NULL) {
			auth_fail(err, "grants", "out of memory");
			rv = -2;
			goto out;
		}
		g.g[g.n].prefix_len = plen;
		g.g[g.n].rights = rights;
		g.n++;
	}
	qsort(g.g, g.n, sizeof(*g.g), auth_grant_cmp);
	*out = g;
	g = (auth_grants){0};
out:
	auth_grants_fini(&g);
	return rv;
}

int
auth_grants_parse_text(const char *text, auth_grants *out, auth_error *err)
{
	char *copy = NULL;
	const char **specs = NULL;
	size_t len, n = 1, i, k = 0;
	int rv;

	if (text == NULL) {
		auth_fail(err, "grants", "grants are missing");
		return -1;
	}
	len = strlen(text);
	/* One trailing newline is the end of the last line, not an empty
	 * grant. */
	if (len > 0 && text[len - 1] == '\n') {
		len--;
	}
	if (len == 0) {
		return auth_grants_parse(NULL, 0, out, err);
	}
	for (i = 0; i < len; i++) {
		n += text[i] == '\n';
	}
	if (n > AUTH_GRANTS_MAX) {
		/* Refused before allocating anything for it. */
		return auth_grants_parse(NULL, n, out, err);
	}
	if ((copy = ds_memdup(text, len)) == NULL ||
	    (specs = ds_calloc(n, sizeof(*specs))) == NULL) {
		auth_fail(err, "grants", "out of memory");
		rv = -2;
		goto out;
	}
	specs[k++] = copy;
	for (i = 0; i < len; i++) {
		if (copy[i] == '\n') {
			copy[i] = '\0';
			specs[k++] = copy + i + 1;
		}
	}
	rv = auth_grants_parse(specs, n, out, err);
out:
	ds_free(specs);
	ds_free(copy);
	return rv;
}

int
auth_grants_format(const auth_grants *g, char **out)
{
	static const auth_right order[] = {AUTH_READ, AUTH_WRITE, AUTH_LOCK};
	size_t need = 1, i, r, at = 0;
	char *s;

	if (g->admin) {
		need += sizeof("admin");
	}
	/* Bounded: n <= AUTH_GRANTS_MAX, prefixes <= AUTH_PREFIX_MAX, so
	 * this cannot overflow for grants auth_grants_parse made. */
	for (i = 0; i < g->n; i++) {
		need += 3 * (sizeof("write:") + g->g[i].prefix_len);
	}
	if ((s = ds_alloc(need)) == NULL) {
		return -2;
	}
	if (g->admin) {
		memcpy(s, "admin", 5);
		at = 5;
	}
	for (i = 0; i < g->n; i++) {
		for (r = 0; r < sizeof(order) / sizeof(order[0]); r++) {
			const char *name = auth_right_name(order[r]);
			size_t nl = strlen(name);

			if ((g->g[i].rights & order[r]) == 0) {
				continue;
			}
			if (at > 0) {
				s[at++] = '\n';
			}
			memcpy(s + at, name, nl);
			at += nl;
			s[at++] = ':';
			memcpy(s + at, g->g[i].prefix, g->g[i].prefix_len);
			at += g->g[i].prefix_len;
		}
	}
	s[at] = '\0';
	*out = s;
	return 0;
}

static bool
auth_starts_with(const char *s, size_t slen, const char *p, size_t plen)
{
	return plen <= slen && memcmp(s, p, plen) == 0;
}

/* auth_decider: the grant with the longest prefix that key starts with,
 * or NULL. */
static const auth_grant *
auth_decider(const auth_grants *g, const char *key, size_t key_len)
{
	const auth_grant *best = NULL;
	size_t i;

	for (i = 0; i < g->n; i++) {
		if (auth_starts_with(
		        key, key_len, g->g[i].prefix, g->g[i].prefix_len) &&
		    (best == NULL || g->g[i].prefix_len > best->prefix_len)) {
			best = &g->g[i];
		}
	}
	return best;
}

bool
auth_allows(const auth_grants *g, auth_right right, const char *key,
    size_t key_len, const char **why)
{
	const auth_grant *d;

	if (g->admin) {
		return true;
	}
	if (right == AUTH_ADMIN) {
		/* Token management is admin's alone; no prefix decides it. */
		if (why != NULL) {
			*why = NULL;
		}
		return false;
	}
	d = auth_decider(g, key, key_len);
	if (d != NULL && (d->rights & (unsigned) right) == (unsigned) right) {
		return true;
	}
	if (why != NULL) {
		*why = d != NULL ? d->prefix : NULL;
	}
	return false;
}

bool
auth_allows_range(const auth_grants *g, auth_right right, const char *prefix,
    size_t prefix_len, const char **why)
{
	size_t i;

	if (!auth_allows(g, right, prefix, prefix_len, why)) {
		return false;
	}
	if (g->admin) {
		return true;
	}
	/* Every longer grant under the range decides some of its keys. */
	for (i = 0; i < g->n; i++) {
		const auth_grant *x = &g->g[i];

		if (x->prefix_len > prefix_len &&
		    auth_starts_with(
		        x->prefix, x->prefix_len, prefix, prefix_len) &&
		    (x->rights & (unsigned) right) != (unsigned) right) {
			if (why != NULL) {
				*why = x->prefix;
			}
			return false;
		}
	}
	return true;
}

/* --- secrets --- */

int
auth_secret_new(char out[AUTH_SECRET_TEXT_LEN + 1])
{
	uint8_t raw[AUTH_SECRET_BYTES];
	char hex[2 * AUTH_SECRET_BYTES + 1];
	int rv = -1;

	if (ds_random_bytes(raw, sizeof(raw)) != DS_OK) {
		goto out;
	}
	ds_hex_encode(raw, sizeof(raw), hex);
	memcpy(out, AUTH_SECRET_PREFIX, 4);
	memcpy(out + 4, hex, 2 * AUTH_SECRET_BYTES + 1);
	rv = 0;
out:
	/* The secret must not outlive this call anywhere but in out. */
	explicit_bzero(raw, sizeof(raw));
	explicit_bzero(hex, sizeof(hex));
	return rv;
}

bool
auth_secret_well_formed(const char *s, size_t len)
{
	size_t i;

	if (s == NULL || len != AUTH_SECRET_TEXT_LEN ||
	    memcmp(s, AUTH_SECRET_PREFIX, 4) != 0) {
		return false;
	}
	for (i = 4; i < len; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') ||
		        (s[i] >= 'a' && s[i] <= 'f'))) {
			return false;
		}
	}
	return true;
}

void
auth_hash(const char *secret, size_t len, uint8_t out[AUTH_HASH_BYTES])
{
	/* The software SHA-256 of mbed TLS 2.28 cannot fail; if a future
	 * one did, a hash of all 0xff matches no stored SHA-256 output
	 * anyone can find a preimage for. */
	if (DS_NEVER(mbedtls_sha256_ret(
	                 (const unsigned char *) secret, len, out, 0) != 0)) {
		memset(out, 0xff, AUTH_HASH_BYTES);
	}
}

bool
auth_hash_equal(
    const uint8_t a[AUTH_HASH_BYTES], const uint8_t b[AUTH_HASH_BYTES])
{
	return ds_ct_equal(a, b, AUTH_HASH_BYTES);
}

bool
auth_bearer(const char *value, const char **secret, size_t *len)
{
	static const char scheme[] = "bearer";
	size_t i, start, end;

	if (value == NULL || strncasecmp(value, scheme, 6) != 0 ||
	    value[6] != ' ') {
		return false;
	}
	for (i = 6; value[i] == ' '; i++) {
	}
	start = i;
	for (; value[i] != '\0' && value[i] != ' ' && value[i] != '\t'; i++) {
		if ((unsigned char) value[i] < 0x20 || value[i] == 0x7f) {
			return false;
		}
	}
	end = i;
	/* Trailing whitespace is the header's, not the secret's; anything
	 * after it means two words, not "Bearer <secret>". */
	for (; value[i] == ' ' || value[i] == '\t'; i++) {
	}
	if (end == start || value[i] != '\0') {
		return false;
	}
	*secret = value + start;
	*len = end - start;
	return true;
}

/* --- failed attempts per peer --- */

typedef struct auth_peer {
	char key[AUTH_PEER_MAX + 1];
	int64_t fail_ms[AUTH_LIMIT_FAILURES]; /* ring of failure times */
	unsigned nfail;                       /* entries of fail_ms in use */
	unsigned head;                        /* oldest entry of fail_ms */
	int64_t blocked_until; /* ms on the clock; 0 = not blocked */
	int32_t prev, next;    /* recency list, -1 ends */
	int32_t hnext;         /* bucket chain, -1 ends */
	bool used;
} auth_peer;

struct auth_limiter {
	pthread_mutex_t mu;
	const ds_clock *clock; /* borrowed */
	/* Guarded by mu: */
	auth_peer *peers;       /* AUTH_LIMIT_PEERS entries */
	int32_t *buckets;       /* AUTH_LIMIT_BUCKETS heads, -1 empty */
	int32_t oldest, newest; /* recency list ends, -1 when empty */
	int32_t nfree;          /* next never-used entry */
	int32_t free_head;      /* forgotten entries, chained by hnext */
};

auth_limiter *
auth_limiter_new(const ds_clock *clock)
{
	auth_limiter *l;
	size_t i;

	if ((l = ds_calloc(1, sizeof(*l))) == NULL) {
		return NULL;
	}
	l->peers = ds_calloc(AUTH_LIMIT_PEERS, sizeof(*l->peers));
	l->buckets = ds_calloc(AUTH_LIMIT_BUCKETS, sizeof(*l->buckets));
	if (l->peers == NULL || l->buckets == NULL ||
	    pthread_mutex_init(&l->mu, NULL) != 0) {
		ds_free(l->peers);
		ds_free(l->buckets);
		ds_free(l);
		return NULL;
	}
	for (i = 0; i < AUTH_LIMIT_BUCKETS; i++) {
		l->buckets[i] = -1;
	}
	l->clock = clock != NULL ? clock : ds_clock_monotonic();
	l->oldest = l->newest = -1;
	l->free_head = -1;
	return l;
}

void
auth_limiter_free(auth_limiter *l)
{
	if (l == NULL) {
		return;
	}
	(void) pthread_mutex_destroy(&l->mu); /* nobody holds it now */
	ds_free(l->peers);
	ds_free(l->buckets);
	ds_free(l);
}

/* auth_peer_key copies peer into a key of at most AUTH_PEER_MAX bytes:
 * longer keys (none a real address is) share their first bytes' entry. */
static size_t
auth_peer_key(const char *peer, char key[AUTH_PEER_MAX + 1])
{
	size_t n = peer != NULL ? strnlen(peer, AUTH_PEER_MAX) : 0;

	if (n > 0) {
		memcpy(key, peer, n);
	}
	key[n] = '\0';
	return n;
}

static size_t
auth_bucket(const char *key, size_t n)
{
	return (
	    size_t) (ds_hash64(DS_HASH64_INIT, key, n) % AUTH_LIMIT_BUCKETS);
}

static int32_t
auth_find(const auth_limiter *l, const char *key, size_t n)
{
	int32_t i;

	for (i = l->buckets[auth_bucket(key, n)]; i >= 0;
	     i = l->peers[i].hnext) {
		if (strcmp(l->peers[i].key, key) == 0) {
			return i;
		}
	}
	return -1;
}

static void
auth_unlink(auth_limiter *l, int32_t i)
{
	auth_peer *p = &l->peers[i];

	if (p->prev >= 0) {
		l->peers[p->prev].next = p->next;
	} else {
		l->oldest = p->next;
	}
	if (p->next >= 0) {
		l->peers[p->next].prev = p->prev;
	} else {
		l->newest = p->prev;
	}
	p->prev = p->next = -1;
}

static void
auth_push_newest(auth_limiter *l, int32_t i)
{
	auth_peer *p = &l->peers[i];

	p->prev = l->newest;
	p->next = -1;
	if (l->newest >= 0) {
		l->peers[l->newest].next = i;
	} else {
		l->oldest = i;
	}
	l->newest = i;
}

/* auth_forget drops entry i from the index and the recency list; it is
 * then free for another peer. */
static void
auth_forget(auth_limiter *l, int32_t i)
{
	auth_peer *p = &l->peers[i];
	int32_t *at = &l->buckets[auth_bucket(p->key, strlen(p->key))];

	while (*at != i) {
		at = &l->peers[*at].hnext;
	}
	*at = p->hnext;
	auth_unlink(l, i);
	p->used = false;
	p->hnext = l->free_head;
	l->free_head = i;
}

/* auth_take returns an entry for key: a never-used one, one forgotten,
 * or the least recently failed peer's whose block (if any) is over
 * (evicted); -1 when every entry is a peer blocked now. A running block
 * is never evicted: else a flood of one-off failures from fresh
 * addresses would lift it. */
static int32_t
auth_take(auth_limiter *l, const char *key, size_t n, int64_t now)
{
	int32_t i;
	size_t b;

	if (l->free_head < 0 && l->nfree == AUTH_LIMIT_PEERS) {
		for (i = l->oldest; i >= 0 && l->peers[i].blocked_until > now;
		     i = l->peers[i].next) {
		}
		if (i < 0) {
			return -1;
		}
		auth_forget(l, i);
	}
	if (l->free_head >= 0) {
		i = l->free_head;
		l->free_head = l->peers[i].hnext;
	} else {
		i = l->nfree++;
	}
	memset(&l->peers[i], 0, sizeof(l->peers[i]));
	memcpy(l->peers[i].key, key, n + 1);
	l->peers[i].used = true;
	b = auth_bucket(key, n);
	l->peers[i].hnext = l->buckets[b];
	l->buckets[b] = i;
	l->peers[i].prev = l->peers[i].next = -1;
	auth_push_newest(l, i);
	return i;
}

bool
auth_limiter_blocked(
    auth_limiter *l, const char *peer, int64_t *retry_after_ms)
{
	char key[AUTH_PEER_MAX + 1];
	size_t n = auth_peer_key(peer, key);
	int64_t now, left = 0;
	int32_t i;

	pthread_mutex_lock(&l->mu);
	now = ds_clock_now_ms(l->clock);
	if ((i = auth_find(l, key, n)) >= 0 &&
	    l->peers[i].blocked_until > now) {
		left = l->peers[i].blocked_until - now;
	}
	pthread_mutex_unlock(&l->mu);
	if (retry_after_ms != NULL) {
		*retry_after_ms = left;
	}
	return left > 0;
}

bool
auth_limiter_fail(auth_limiter *l, const char *peer)
{
	char key[AUTH_PEER_MAX + 1];
	size_t n = auth_peer_key(peer, key);
	bool blocked = false;
	auth_peer *p;
	int64_t now;
	int32_t i;

	pthread_mutex_lock(&l->mu);
	now = ds_clock_now_ms(l->clock);
	if ((i = auth_find(l, key, n)) < 0) {
		if ((i = auth_take(l, key, n, now)) < 0) {
			/* the table is all running blocks: not remembered */
			goto out;
		}
	} else {
		auth_unlink(l, i);
		auth_push_newest(l, i);
	}
	p = &l->peers[i];
	if (p->blocked_until > now) {
		/* Already blocked: the block runs its course, not longer. */
		blocked = true;
		goto out;
	}
	p->blocked_until = 0;
	/* A ring of the last AUTH_LIMIT_FAILURES failures: the window
	 * slides, so failures split across a boundary still count. */
	if (p->nfail < AUTH_LIMIT_FAILURES) {
		p->fail_ms[(p->head + p->nfail) % AUTH_LIMIT_FAILURES] = now;
		p->nfail++;
	} else {
		p->fail_ms[p->head] = now;
		p->head = (p->head + 1) % AUTH_LIMIT_FAILURES;
	}
	if (p->nfail == AUTH_LIMIT_FAILURES &&
	    now - p->fail_ms[p->head] < AUTH_LIMIT_WINDOW_MS) {
		p->blocked_until = now + AUTH_LIMIT_BLOCK_MS;
		p->nfail = 0;
		p->head = 0;
		blocked = true;
	}
out:
	pthread_mutex_unlock(&l->mu);
	return blocked;
}

void
auth_limiter_ok(auth_limiter *l, const char *peer)
{
	char key[AUTH_PEER_MAX + 1];
	size_t n = auth_peer_key(peer, key);
	int64_t now;
	int32_t i;

	pthread_mutex_lock(&l->mu);
	now = ds_clock_now_ms(l->clock);
	if ((i = auth_find(l, key, n)) >= 0) {
		/* A block stands until it expires: one good token must not
		 * lift it for every guess that comes from the same peer. */
		if (l->peers[i].blocked_until > now) {
			l->peers[i].nfail = 0;
			l->peers[i].head = 0;
		} else {
			auth_forget(l, i);
		}
	}
	pthread_mutex_unlock(&l->mu);
}
