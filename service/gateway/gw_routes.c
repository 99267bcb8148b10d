/*
 * gw_routes.c - request-targets, percent-encoding, query strings, body
 * limits. Pure functions over borrowed bytes; fuzzed.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ds_alloc.h"
#include "ds_text.h"
#include "gw_int.h"

/* --- requests --- */

const char *const gw_request_header_names[GW_N_REQUEST_HEADERS] = {
    "Content-Length",
    "Transfer-Encoding",
    "Content-Type",
    "If-Match",
    "If-None-Match",
    "Lock-Token",
    "Idempotency-Key",
    "Author",
    "Origin",
    "Access-Control-Request-Method",
    "Access-Control-Request-Headers",
    "Host",
    "Last-Event-ID",
    "Authorization",
    "Cookie",
};

const char *
gw_request_header(const gw_request *r, const char *name)
{
	for (size_t i = 0; i < r->n_headers; i++) {
		if (r->headers[i].name != NULL &&
		    r->headers[i].value != NULL &&
		    strcasecmp(r->headers[i].name, name) == 0) {
			return r->headers[i].value;
		}
	}
	return NULL;
}

/* --- routes and methods --- */

static const char *const gw_route_names[GW_ROUTE_COUNT] = {
    [GW_ROUTE_OTHER] = "other",
    [GW_ROUTE_RECORD] = "record",
    [GW_ROUTE_LOCK] = "lock",
    [GW_ROUTE_UNLOCK] = "unlock",
    [GW_ROUTE_LIST] = "list",
    [GW_ROUTE_RPC] = "rpc",
    [GW_ROUTE_HEALTHZ] = "healthz",
    [GW_ROUTE_METRICS] = "metrics",
    [GW_ROUTE_WATCH] = "watch",
    [GW_ROUTE_EVENTS] = "events",
    [GW_ROUTE_STATIC] = "static",
    [GW_ROUTE_SESSION] = "session",
};

const char *
gw_route_name(gw_route r)
{
	return (unsigned) r < GW_ROUTE_COUNT ? gw_route_names[r] : "other";
}

static const char *const gw_method_names[GW_M_COUNT] = {
    "GET",
    "HEAD",
    "PUT",
    "POST",
    "DELETE",
    "OPTIONS",
    "other",
};

gw_method
gw_method_parse(const char *m)
{
	if (m == NULL) {
		return GW_M_OTHER;
	}
	for (int i = 0; i < GW_M_OTHER; i++) {
		if (strcmp(m, gw_method_names[i]) == 0) {
			return (gw_method) i;
		}
	}
	return GW_M_OTHER;
}

const char *
gw_method_name(gw_method m)
{
	return (unsigned) m < GW_M_COUNT ? gw_method_names[m] : "other";
}

#define GW_BIT(m) (1u << (m))

/* Which methods each route answers; OPTIONS everywhere (CORS). */
static const struct {
	unsigned methods;
	const char *allow;
} gw_route_methods[GW_ROUTE_COUNT] = {
    [GW_ROUTE_OTHER] = {GW_BIT(GW_M_OPTIONS), "OPTIONS"},
    [GW_ROUTE_RECORD] = {GW_BIT(GW_M_GET) | GW_BIT(GW_M_HEAD) |
                             GW_BIT(GW_M_PUT) | GW_BIT(GW_M_DELETE) |
                             GW_BIT(GW_M_OPTIONS),
        "GET, HEAD, PUT, DELETE, OPTIONS"},
    [GW_ROUTE_LOCK] = {GW_BIT(GW_M_POST) | GW_BIT(GW_M_DELETE) |
                           GW_BIT(GW_M_OPTIONS),
        "POST, DELETE, OPTIONS"},
    [GW_ROUTE_UNLOCK] = {GW_BIT(GW_M_POST) | GW_BIT(GW_M_OPTIONS),
        "POST, OPTIONS"},
    [GW_ROUTE_LIST] = {GW_BIT(GW_M_GET) | GW_BIT(GW_M_HEAD) |
                           GW_BIT(GW_M_OPTIONS),
        "GET, HEAD, OPTIONS"},
    [GW_ROUTE_RPC] = {GW_BIT(GW_M_POST) | GW_BIT(GW_M_OPTIONS),
        "POST, OPTIONS"},
    [GW_ROUTE_HEALTHZ] = {GW_BIT(GW_M_GET) | GW_BIT(GW_M_HEAD) |
                              GW_BIT(GW_M_OPTIONS),
        "GET, HEAD, OPTIONS"},
    [GW_ROUTE_METRICS] = {GW_BIT(GW_M_GET) | GW_BIT(GW_M_HEAD) |
                              GW_BIT(GW_M_OPTIONS),
        "GET, HEAD, OPTIONS"},
    /* A long poll or a stream has no meaningful HEAD: it would wait
     * for events it then drops. */
    [GW_ROUTE_WATCH] = {GW_BIT(GW_M_GET) | GW_BIT(GW_M_OPTIONS),
        "GET, OPTIONS"},
    [GW_ROUTE_EVENTS] = {GW_BIT(GW_M_GET) | GW_BIT(GW_M_OPTIONS),
        "GET, OPTIONS"},
    [GW_ROUTE_STATIC] = {GW_BIT(GW_M_GET) | GW_BIT(GW_M_HEAD) |
                             GW_BIT(GW_M_OPTIONS),
        "GET, HEAD, OPTIONS"},
    [GW_ROUTE_SESSION] = {GW_BIT(GW_M_GET) | GW_BIT(GW_M_POST) |
                              GW_BIT(GW_M_DELETE) | GW_BIT(GW_M_OPTIONS),
        "GET, POST, DELETE, OPTIONS"},
};

const char *
gw_route_allow(gw_route r)
{
	return (unsigned) r < GW_ROUTE_COUNT ? gw_route_methods[r].allow
	                                     : "OPTIONS";
}

bool
gw_route_allows(gw_route r, gw_method m)
{
	if ((unsigned) r >= GW_ROUTE_COUNT || (unsigned) m >= GW_M_OTHER) {
		return false;
	}
	return (gw_route_methods[r].methods & GW_BIT(m)) != 0;
}

/* --- request-targets --- */

static bool
gw_has_prefix(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && memcmp(s, prefix, n) == 0;
}

static bool
gw_has_suffix(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);

	return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

static bool
gw_equals(const char *s, size_t len, const char *lit)
{
	return len == strlen(lit) && memcmp(s, lit, len) == 0;
}

#define GW_RECORDS "/v1/records"

int
gw_target_parse(const char *uri, gw_target *t, nrpc_status *st)
{
	size_t len;
	const char *q;

	memset(t, 0, sizeof(*t));
	t->route = GW_ROUTE_OTHER;
	t->query = "";
	if (uri == NULL || uri[0] != '/') {
		return gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
		    "INVALID_PATH", NULL,
		    "the request-target must be a path starting with '/'");
	}
	/* strnlen: never scan an unbounded string further than the limit. */
	len = strnlen(uri, GW_MAX_URI_BYTES + 1);
	if (len > GW_MAX_URI_BYTES) {
		return gw_status_set(st, 414, NRPC_INVALID_ARGUMENT,
		    "TOO_LARGE", NULL,
		    "the request-target exceeds max_uri_bytes (%d)",
		    GW_MAX_URI_BYTES);
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char) uri[i];

		/* Bytes no URI may hold (RFC 3986): a backslash is how
		 * Windows paths sneak past a '/' check, '#' means a client
		 * sent a fragment it should have kept. Bytes >= 0x80 are
		 * tolerated and checked as UTF-8 once decoded. */
		if (c <= 0x20 || c == 0x7f || c == '\\' || c == '#') {
			return gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
			    "INVALID_PATH", NULL,
			    "the request-target holds a byte 0x%02x that no "
			    "URI may contain; percent-encode it",
			    c);
		}
	}
	t->path = uri;
	if ((q = memchr(uri, '?', len)) != NULL) {
		t->path_len = (size_t) (q - uri);
		t->query = q + 1;
		t->query_len = len - t->path_len - 1;
	} else {
		t->path_len = len;
	}

	if (gw_equals(t->path, t->path_len, GW_RECORDS)) {
		t->route = GW_ROUTE_LIST;
	} else if (gw_has_prefix(t->path, t->path_len, GW_RECORDS "/")) {
		const char *rest = t->path + strlen(GW_RECORDS "/");
		size_t n = t->path_len - strlen(GW_RECORDS "/");

		/* Only a literal "/lock" selects the lock route: the slash
		 * of a key that ends in "/lock" arrives as %2F. */
		if (gw_has_suffix(rest, n, "/lock")) {
			t->route = GW_ROUTE_LOCK;
			n -= strlen("/lock");
		} else if (gw_has_suffix(rest, n, "/unlock")) {
			t->route = GW_ROUTE_UNLOCK;
			n -= strlen("/unlock");
		} else {
			t->route = GW_ROUTE_RECORD;
		}
		t->key = rest;
		t->key_len = n;
	} else if (gw_equals(t->path, t->path_len, "/rpc") ||
	           gw_has_prefix(t->path, t->path_len, "/rpc/")) {
		t->route = GW_ROUTE_RPC;
		t->rpc = t->path + strlen("/rpc");
		t->rpc_len = t->path_len - strlen("/rpc");
	} else if (gw_equals(t->path, t->path_len, "/healthz")) {
		t->route = GW_ROUTE_HEALTHZ;
	} else if (gw_equals(t->path, t->path_len, "/metrics")) {
		t->route = GW_ROUTE_METRICS;
	} else if (gw_equals(t->path, t->path_len, "/v1/watch")) {
		t->route = GW_ROUTE_WATCH;
	} else if (gw_equals(t->path, t->path_len, "/v1/events")) {
		t->route = GW_ROUTE_EVENTS;
	} else if (gw_equals(t->path, t->path_len, "/v1/session")) {
		t->route = GW_ROUTE_SESSION;
	} else if (gw_equals(t->path, t->path_len, "/v1") ||
	           gw_has_prefix(t->path, t->path_len, "/v1/")) {
		t->route = GW_ROUTE_OTHER; /* API space: never a file */
	} else {
		t->route = GW_ROUTE_STATIC;
	}
	return 0;
}

/* --- percent-encoding --- */

const char *
gw_pct_strerror(gw_pct_err e)
{
	switch (e) {
	case GW_PCT_OK:
		return "ok";
	case GW_PCT_EESCAPE:
		return "'%' must be followed by two hex digits";
	case GW_PCT_ENUL:
		return "NUL (%00) is not allowed";
	case GW_PCT_EUTF8:
		return "the decoded text is not valid UTF-8";
	}
	return "invalid percent-encoding";
}

static int
gw_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	if (c >= 'A' && c <= 'F') {
		return c - 'A' + 10;
	}
	return -1;
}

gw_pct_err
gw_pct_decode(
    const char *s, size_t len, bool plus_is_space, char *out, size_t *out_len)
{
	size_t j = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char) s[i];

		if (c == '%') {
			int hi, lo;

			if (len - i < 3 ||
			    (hi = gw_hexval((unsigned char) s[i + 1])) < 0 ||
			    (lo = gw_hexval((unsigned char) s[i + 2])) < 0) {
				return GW_PCT_EESCAPE;
			}
			c = (unsigned char) (hi * 16 + lo);
			i += 2;
		} else if (c == '+' && plus_is_space) {
			c = ' ';
		}
		if (c == 0) {
			return GW_PCT_ENUL;
		}
		out[j++] = (char) c;
	}
	out[j] = '\0';
	if (!ds_utf8_valid((const uint8_t *) out, j)) {
		return GW_PCT_EUTF8;
	}
	*out_len = j;
	return GW_PCT_OK;
}

int
gw_decode_dup(const char *s, size_t len, bool plus_is_space, const char *what,
    char **out, size_t *out_len, nrpc_status *st)
{
	char *buf;
	size_t n = 0;
	gw_pct_err e;

	if ((buf = ds_alloc(len + 1)) == NULL) {
		return gw_status_set(st, 500, NRPC_RESOURCE_EXHAUSTED,
		    "RESOURCE_EXHAUSTED", NULL, "out of memory");
	}
	if ((e = gw_pct_decode(s, len, plus_is_space, buf, &n)) != GW_PCT_OK) {
		ds_free(buf);
		return gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
		    "INVALID_ENCODING", what, "%s: %s", what,
		    gw_pct_strerror(e));
	}
	*out = buf;
	if (out_len != NULL) {
		*out_len = n;
	}
	return 0;
}

ds_err
gw_pct_encode(ds_buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	ds_err rv = DS_OK;
	size_t run = 0; /* bytes copied as they are, not yet appended */

	for (size_t i = 0; i < len && rv == DS_OK; i++) {
		unsigned char c = (unsigned char) s[i];
		char esc[3];

		if (c >= 0x20 && c < 0x7f && c != '%') {
			run++;
			continue;
		}
		if (run > 0) {
			rv = ds_buf_append(b, s + i - run, run);
			run = 0;
		}
		esc[0] = '%';
		esc[1] = hex[c >> 4];
		esc[2] = hex[c & 15];
		if (rv == DS_OK) {
			rv = ds_buf_append(b, esc, 3);
		}
	}
	if (rv == DS_OK && run > 0) {
		rv = ds_buf_append(b, s + len - run, run);
	}
	return rv;
}

/* --- query strings --- */

int
gw_query_parse(const char *q, size_t len, gw_query *out, nrpc_status *st)
{
	size_t i = 0;

	out->n = 0;
	while (i < len) {
		const char *p = q + i;
		const char *amp = memchr(p, '&', len - i);
		size_t n = amp != NULL ? (size_t) (amp - p) : len - i;
		const char *eq = memchr(p, '=', n);
		gw_query_param *qp;

		i += n + 1;
		if (n == 0) {
			continue; /* "a=1&&b=2" */
		}
		if (out->n == GW_MAX_QUERY_PARAMS) {
			return gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
			    "TOO_LARGE", NULL,
			    "the query has more than max_query_params (%d) "
			    "parameters",
			    GW_MAX_QUERY_PARAMS);
		}
		qp = &out->p[out->n++];
		qp->name = p;
		if (eq != NULL) {
			qp->name_len = (size_t) (eq - p);
			qp->value = eq + 1;
			qp->value_len = n - qp->name_len - 1;
		} else {
			qp->name_len = n;
			qp->value = p + n;
			qp->value_len = 0;
		}
	}
	return 0;
}

int
gw_query_get(const gw_query *q, const char *name, const char *alt,
    char **value, nrpc_status *st)
{
	const gw_query_param *found = NULL;

	*value = NULL;
	for (size_t i = 0; i < q->n; i++) {
		const gw_query_param *p = &q->p[i];

		if (!gw_equals(p->name, p->name_len, name) &&
		    (alt == NULL || !gw_equals(p->name, p->name_len, alt))) {
			continue;
		}
		if (found != NULL) {
			return gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
			    "INVALID_ARGUMENT", name,
			    "query parameter %s given twice", name);
		}
		found = p;
	}
	if (found == NULL) {
		return 0;
	}
	return gw_decode_dup(
	    found->value, found->value_len, true, name, value, NULL, st);
}

bool
gw_parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 20) {
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9') {
			return false;
		}
		d = (unsigned) (s[i] - '0');
		if (v > (UINT64_MAX - d) / 10) {
			return false;
		}
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* --- bodies --- */

int
gw_body_check(const char *content_length, const char *transfer_encoding,
    size_t limit, const char *limit_name, size_t *len, nrpc_status *st)
{
	uint64_t n;

	if (transfer_encoding != NULL) {
		return gw_status_set(st, 411, NRPC_INVALID_ARGUMENT,
		    "LENGTH_REQUIRED", NULL,
		    "Transfer-Encoding is not supported: send the body with "
		    "Content-Length");
	}
	if (content_length == NULL) {
		*len = 0;
		return 0;
	}
	if (!gw_parse_u64(content_length, strlen(content_length), &n)) {
		return gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", NULL,
		    "Content-Length must be one decimal number");
	}
	if (n > limit) {
		return gw_status_set(st, 413, NRPC_INVALID_ARGUMENT,
		    "TOO_LARGE", NULL,
		    "request body of %llu bytes exceeds %s (%zu)",
		    (unsigned long long) n, limit_name, limit);
	}
	*len = (size_t) n;
	return 0;
}

size_t
gw_body_limit(const gw_core *core, gw_route r, const char **name)
{
	switch (r) {
	case GW_ROUTE_RECORD:
		*name = "max_value_bytes";
		return core->max_value_bytes;
	case GW_ROUTE_LOCK:
	case GW_ROUTE_UNLOCK:
		*name = "max_lock_body_bytes";
		return GW_MAX_LOCK_BODY_BYTES;
	case GW_ROUTE_RPC:
		*name = "max_rpc_body_bytes";
		return core->max_rpc_body_bytes;
	case GW_ROUTE_SESSION:
		*name = "max_session_body_bytes";
		return GW_MAX_SESSION_BODY_BYTES;
	default:
		*name = "max_small_body_bytes";
		return GW_MAX_SMALL_BODY_BYTES;
	}
}
