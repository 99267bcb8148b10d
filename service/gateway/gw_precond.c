/*
 * gw_precond.c - entity-tags, If-Match / If-None-Match -> precondition,
 * RPC status -> HTTP status. Pure; fuzzed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "gw_int.h"

int
gw_status_set(nrpc_status *st, int http, nrpc_code code, const char *reason,
    const char *field, const char *fmt, ...)
{
	char msg[NRPC_MESSAGE_MAX];
	va_list ap;

	va_start(ap, fmt);
	(void) vsnprintf(msg, sizeof(msg), fmt, ap); /* truncation is fine */
	va_end(ap);
	nrpc_status_set(st, code, reason, field, "%s", msg);
	return http;
}

/* --- entity-tags --- */

static size_t
gw_skip_ows(const char *s, size_t i, size_t len)
{
	while (i < len && (s[i] == ' ' || s[i] == '\t')) {
		i++;
	}
	return i;
}

static int
gw_etags_bad(nrpc_status *st, const char *header, const char *why)
{
	return gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
	    "INVALID_ARGUMENT", header,
	    "%s: %s (expected * or a list of \"<version>\")", header, why);
}

int
gw_etags_parse(
    const char *s, const char *header, gw_etags *out, nrpc_status *st)
{
	size_t len = strnlen(s, GW_MAX_PRECOND_HEADER_BYTES + 1);
	size_t i;

	memset(out, 0, sizeof(*out));
	if (len > GW_MAX_PRECOND_HEADER_BYTES) {
		return gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
		    "TOO_LARGE", header,
		    "%s exceeds max_precond_header_bytes "
		    "(%d)",
		    header, GW_MAX_PRECOND_HEADER_BYTES);
	}
	i = gw_skip_ows(s, 0, len);
	if (i < len && s[i] == '*') {
		i = gw_skip_ows(s, i + 1, len);
		if (i != len) {
			return gw_etags_bad(
			    st, header, "'*' must stand alone");
		}
		out->any = true;
		return 0;
	}
	for (;;) {
		size_t start;
		gw_etag tag = {0, false, false};

		/* Empty list elements are allowed (RFC 9110 §5.6.1). */
		while (
		    i < len && (s[i] == ',' || s[i] == ' ' || s[i] == '\t')) {
			i++;
		}
		if (i == len) {
			break;
		}
		if (len - i >= 2 && s[i] == 'W' && s[i + 1] == '/') {
			tag.weak = true;
			i += 2;
		}
		if (i == len || s[i] != '"') {
			return gw_etags_bad(
			    st, header, "an entity-tag must be quoted");
		}
		start = ++i;
		while (i < len && s[i] != '"') {
			unsigned char c = (unsigned char) s[i];

			if (c != 0x21 && (c < 0x23 || c == 0x7f)) {
				return gw_etags_bad(st, header,
				    "invalid character in an entity-tag");
			}
			i++;
		}
		if (i == len) {
			return gw_etags_bad(
			    st, header, "unterminated entity-tag");
		}
		/* Our tags are versions in canonical decimal: "03" is some
		 * other server's tag and, compared as a string, not "3". */
		tag.numeric =
		    gw_parse_u64(s + start, i - start, &tag.version) &&
		    (i - start == 1 || s[start] != '0');
		i++;
		if (out->n == GW_MAX_ETAGS) {
			return gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
			    "TOO_LARGE", header,
			    "%s has more than max_etags (%d) entity-tags",
			    header, GW_MAX_ETAGS);
		}
		out->tags[out->n++] = tag;
		i = gw_skip_ows(s, i, len);
		if (i < len && s[i] != ',') {
			return gw_etags_bad(st, header,
			    "entity-tags must be separated by ','");
		}
	}
	if (out->n == 0) {
		return gw_etags_bad(st, header, "empty");
	}
	return 0;
}

bool
gw_etags_match_strong(const gw_etags *l, uint64_t version)
{
	for (size_t i = 0; i < l->n; i++) {
		if (!l->tags[i].weak && l->tags[i].numeric &&
		    l->tags[i].version == version) {
			return true;
		}
	}
	return false;
}

bool
gw_etags_match_weak(const gw_etags *l, uint64_t version)
{
	if (l->any) {
		return true;
	}
	for (size_t i = 0; i < l->n; i++) {
		if (l->tags[i].numeric && l->tags[i].version == version) {
			return true;
		}
	}
	return false;
}

/* --- preconditions --- */

int
gw_precond_parse(const char *if_match, const char *if_none_match,
    gw_precond *out, nrpc_status *st)
{
	int http;

	memset(out, 0, sizeof(*out));
	if (if_match != NULL && if_none_match != NULL) {
		return gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", "If-Match",
		    "send If-Match or If-None-Match, not both");
	}
	if (if_match != NULL) {
		if ((http = gw_etags_parse(
		         if_match, "If-Match", &out->etags, st)) != 0) {
			return http;
		}
		if (out->etags.any) {
			out->kind = GW_PRECOND_IF_EXISTS;
		} else if (out->etags.n == 1 && !out->etags.tags[0].weak &&
		           out->etags.tags[0].numeric) {
			out->kind = GW_PRECOND_IF_VERSION;
			out->version = out->etags.tags[0].version;
		} else {
			out->kind = GW_PRECOND_IF_MATCH_LIST;
		}
		return 0;
	}
	if (if_none_match != NULL) {
		gw_etags l;

		if ((http = gw_etags_parse(
		         if_none_match, "If-None-Match", &l, st)) != 0) {
			return http;
		}
		if (!l.any) {
			return gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
			    "INVALID_ARGUMENT", "If-None-Match",
			    "on a write If-None-Match must be * (create "
			    "only); "
			    "use If-Match: \"<version>\" to replace a "
			    "version");
		}
		out->kind = GW_PRECOND_IF_ABSENT;
	}
	return 0;
}

/* --- status mapping --- */

static const struct {
	const char *reason;
	int http;
} gw_reason_status[] = {
    {"LOCKED", 423},
    {"PRECONDITION_REQUIRED", 428},
    {"LOCK_TOKEN_MISMATCH", 403},
    {"VERSION_COMPACTED", 410},
    {"REVISION_COMPACTED", 410}, /* a watch cursor out of the change log */
    /* Nothing to unlock, or a lease that ran out under its holder: the
     * request is fine, the record's state is not what it assumed. */
    {"NOT_LOCKED", 409},
    {"LOCK_EXPIRED", 409},
    /* draft-ietf-httpapi-idempotency-key-header: a key reused with a
     * different request. */
    {"REQUEST_ID_REUSED", 422},
    {"NOT_FOUND", 404},
};

/* grpc-gateway's runtime.HTTPStatusFromCode. */
static int
gw_status_of_code(nrpc_code c)
{
	switch (c) {
	case NRPC_OK:
		return 200;
	case NRPC_CANCELLED:
		return 499;
	case NRPC_UNKNOWN:
		return 500;
	case NRPC_INVALID_ARGUMENT:
		return 400;
	case NRPC_DEADLINE_EXCEEDED:
		return 504;
	case NRPC_NOT_FOUND:
		return 404;
	case NRPC_ALREADY_EXISTS:
		return 409;
	case NRPC_PERMISSION_DENIED:
		return 403;
	case NRPC_RESOURCE_EXHAUSTED:
		return 429;
	case NRPC_FAILED_PRECONDITION:
		return 400;
	case NRPC_ABORTED:
		return 409;
	case NRPC_OUT_OF_RANGE:
		return 400;
	case NRPC_UNIMPLEMENTED:
		return 501;
	case NRPC_INTERNAL:
		return 500;
	case NRPC_UNAVAILABLE:
		return 503;
	case NRPC_DATA_LOSS:
		return 500;
	case NRPC_UNAUTHENTICATED:
		return 401;
	}
	return 500;
}

int
gw_http_status(const nrpc_status *st, bool http_precondition)
{
	if (st->code == NRPC_OK) {
		return 200;
	}
	if (strcmp(st->reason, "VERSION_CONFLICT") == 0) {
		return http_precondition ? 412 : 409;
	}
	/* A value (or the whole message) over its limit is content too
	 * large; a key or page size over its limit is a bad argument. */
	if (strcmp(st->reason, "TOO_LARGE") == 0) {
		return st->field[0] == '\0' || strcmp(st->field, "value") == 0
		           ? 413
		           : 400;
	}
	for (size_t i = 0;
	     i < sizeof(gw_reason_status) / sizeof(gw_reason_status[0]); i++) {
		if (strcmp(st->reason, gw_reason_status[i].reason) == 0) {
			return gw_reason_status[i].http;
		}
	}
	return gw_status_of_code(st->code);
}

const char *
gw_http_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 204:
		return "No Content";
	case 304:
		return "Not Modified";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 409:
		return "Conflict";
	case 410:
		return "Gone";
	case 411:
		return "Length Required";
	case 412:
		return "Precondition Failed";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
	case 415:
		return "Unsupported Media Type";
	case 421:
		return "Misdirected Request";
	case 422:
		return "Unprocessable Content";
	case 423:
		return "Locked";
	case 428:
		return "Precondition Required";
	case 429:
		return "Too Many Requests";
	case 499:
		return "Client Closed Request";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	}
	return "Unknown";
}

int64_t
gw_retry_after_s(int64_t expires_at_ms, int64_t now_ms)
{
	int64_t left;

	if (expires_at_ms <= now_ms) {
		return 1;
	}
	left = expires_at_ms - now_ms;
	/* Round up: retrying a moment before the lease ends is useless. */
	left = left / 1000 + (left % 1000 != 0);
	return left < 1 ? 1 : left;
}
