/*
 * gw_watch.c - watch over HTTP (DESIGN §9): the query of /v1/watch and
 * /v1/events, and the framing of Server-Sent Events (WHATWG HTML §9.2).
 * Pure; gw_http.c moves the framed bytes.
 */
#include <inttypes.h>
#include <string.h>

#include "ds_alloc.h"
#include "ds_text.h"
#include "gw_int.h"

void
gw_watch_args_fini(gw_watch_args *a)
{
	ds_free(a->key);
	ds_free(a->prefix);
	memset(a, 0, sizeof(*a));
}

/* gw_watch_u64 parses the decimal parameter name (value may be NULL:
 * absent, *out untouched). */
static int
gw_watch_u64(const char *name, const char *value, uint64_t max,
    uint64_t *out, nrpc_status *st)
{
	uint64_t n;

	if (value == NULL) {
		return 0;
	}
	if (!gw_parse_u64(value, strlen(value), &n) || n > max) {
		return gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", name,
		    "%s must be a decimal number, at most %" PRIu64, name,
		    max);
	}
	*out = n;
	return 0;
}

/* gw_watch_timeout reads ?timeout=: bare digits are milliseconds (what
 * the JavaScript client sends), anything else a duration ("30s",
 * "500ms", "1m"). */
static int
gw_watch_timeout(const char *value, uint32_t *out, nrpc_status *st)
{
	int64_t ms = -1;
	uint64_t n;

	if (value == NULL) {
		*out = GW_WATCH_TIMEOUT_MS_DEFAULT;
		return 0;
	}
	if (gw_parse_u64(value, strlen(value), &n)) {
		ms = n > INT64_MAX ? INT64_MAX : (int64_t) n;
	} else if (ds_parse_duration_ms(value, &ms) != 0) {
		ms = -1;
	}
	if (ms < 1 || ms > GW_WATCH_TIMEOUT_MS_MAX) {
		return gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", "timeout",
		    "timeout must be milliseconds or a duration (\"30s\") "
		    "from 1 ms to max_watch_timeout_ms (%d)",
		    GW_WATCH_TIMEOUT_MS_MAX);
	}
	*out = (uint32_t) ms;
	return 0;
}

static int
gw_watch_bool(const char *name, const char *value, bool *out, nrpc_status *st)
{
	if (value == NULL) {
		return 0;
	}
	if (strcmp(value, "1") == 0 || strcmp(value, "true") == 0) {
		*out = true;
	} else if (strcmp(value, "0") == 0 || strcmp(value, "false") == 0) {
		*out = false;
	} else {
		return gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", name, "%s must be 1, 0, true or false",
		    name);
	}
	return 0;
}

int
gw_watch_args_parse(const char *query, size_t len, const char *last_event_id,
    bool stream, gw_watch_args *a, nrpc_status *st)
{
	gw_query q;
	gw_watch_args r;
	char *after = NULL, *timeout = NULL, *limit = NULL, *values = NULL;
	uint64_t n;
	int http;

	memset(&r, 0, sizeof(r));
	memset(a, 0, sizeof(*a));
	if ((http = gw_query_parse(query, len, &q, st)) != 0 ||
	    (http = gw_query_get(&q, "key", NULL, &r.key, st)) != 0 ||
	    (http = gw_query_get(&q, "prefix", NULL, &r.prefix, st)) != 0 ||
	    (http = gw_query_get(&q, "after", NULL, &after, st)) != 0 ||
	    (http = gw_query_get(&q, "limit", NULL, &limit, st)) != 0 ||
	    (http = gw_query_get(&q, "values", NULL, &values, st)) != 0 ||
	    (!stream &&
	        (http = gw_query_get(&q, "timeout", NULL, &timeout, st)) !=
	            0)) {
		goto out;
	}
	if (r.key != NULL && r.prefix != NULL) {
		http = gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", "prefix",
		    "give key or prefix, not both (neither: every key)");
		goto out;
	}
	if (r.key != NULL && r.key[0] == '\0') {
		http = gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", "key",
		    "key is empty (to watch every key give neither key nor "
		    "prefix)");
		goto out;
	}
	n = 0;
	if ((http = gw_watch_u64("after", after, UINT64_MAX, &n, st)) != 0) {
		goto out;
	}
	r.after = n;
	/* Neither after nor Last-Event-ID: from now. after=0 is a cursor
	 * (every event the log keeps), as from an empty store's List. */
	r.from_now = after == NULL && last_event_id == NULL;
	/* EventSource resends the last id: the stream goes on from it,
	 * whatever after the page's URL still carries. */
	if (last_event_id != NULL) {
		if (!gw_parse_u64(
		        last_event_id, strlen(last_event_id), &r.after)) {
			http = gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
			    "INVALID_ARGUMENT", "Last-Event-ID",
			    "Last-Event-ID must be a revision (a decimal "
			    "number), as the stream's ids are");
			goto out;
		}
	}
	n = 0;
	if ((http = gw_watch_u64(
	         "limit", limit, GW_WATCH_LIMIT_MAX, &n, st)) != 0) {
		goto out;
	}
	r.limit = (uint32_t) n;
	if ((http = gw_watch_bool("values", values, &r.with_values, st)) !=
	    0) {
		goto out;
	}
	if (!stream &&
	    (http = gw_watch_timeout(timeout, &r.timeout_ms, st)) != 0) {
		goto out;
	}
	*a = r;
	memset(&r, 0, sizeof(r));
out:
	gw_watch_args_fini(&r);
	ds_free(after);
	ds_free(timeout);
	ds_free(limit);
	ds_free(values);
	return http;
}

/* --- Server-Sent Events --- */

const char *
gw_sse_event_name(int type)
{
	switch (type) {
	case DATASYNC__V1__EVENT_TYPE__EVENT_PUT:
		return "put";
	case DATASYNC__V1__EVENT_TYPE__EVENT_DELETE:
		return "delete";
	case DATASYNC__V1__EVENT_TYPE__EVENT_LOCK:
		return "lock";
	case DATASYNC__V1__EVENT_TYPE__EVENT_UNLOCK:
		return "unlock";
	case DATASYNC__V1__EVENT_TYPE__EVENT_EXPIRE:
		return "expire";
	default:
		return "change";
	}
}

ds_err
gw_sse_open(ds_buf *b)
{
	/* A comment right after the headers: a buffering proxy sees body
	 * bytes and passes the response on before the first event. */
	return ds_buf_printf(
	    b, "retry: %d\n: datasync event stream\n\n", GW_SSE_RETRY_MS);
}

static ds_err
gw_sse_heartbeat(ds_buf *b)
{
	return ds_buf_appends(b, ": heartbeat\n\n");
}

ds_err
gw_sse_events(ds_buf *b, const Datasync__V1__WatchResponse *w)
{
	ds_err rv = DS_OK;

	if (w->n_events == 0) {
		return gw_sse_heartbeat(b);
	}
	for (size_t i = 0; i < w->n_events && rv == DS_OK; i++) {
		const Datasync__V1__Event *e = w->events[i];
		char *json = NULL;
		size_t len = 0;

		/* Compact proto3 JSON is one line: a newline inside a
		 * string is written as \n. */
		if (pbjson_encode(&e->base, NULL, &json, &len, NULL) !=
		    PBJSON_OK) {
			return DS_ENOMEM; /* or not UTF-8: the service's bug */
		}
		if ((rv = ds_buf_printf(b, "id: %" PRIu64 "\nevent: %s\ndata: ",
		         e->revision, gw_sse_event_name((int) e->type))) ==
		        DS_OK &&
		    (rv = ds_buf_append(b, json, len)) == DS_OK) {
			rv = ds_buf_appends(b, "\n\n");
		}
		ds_free(json);
	}
	return rv;
}

ds_err
gw_sse_reset(ds_buf *b, uint64_t compact, uint64_t revision)
{
	return ds_buf_printf(b,
	    "event: reset\ndata: {\"compactRevision\":\"%" PRIu64
	    "\",\"revision\":\"%" PRIu64 "\"}\n\n",
	    compact, revision);
}

bool
gw_watch_compacted(
    const nrpc_status *st, uint64_t *compact, uint64_t *revision)
{
	Datasync__V1__WatchResponse *w;

	if (st->code == NRPC_OK ||
	    strcmp(st->reason, "REVISION_COMPACTED") != 0) {
		return false;
	}
	*compact = 0;
	*revision = 0;
	if (st->detail != NULL &&
	    strcmp(st->detail_type, "datasync.v1.WatchResponse") == 0 &&
	    (w = datasync__v1__watch_response__unpack(
	         NULL, st->detail_len, st->detail)) != NULL) {
		*compact = w->compact_revision;
		*revision = w->revision;
		datasync__v1__watch_response__free_unpacked(w, NULL);
	}
	return true;
}

/* gw_sse_line appends s as comment text: a line break or NUL inside
 * would end the comment early (and could forge a field), so those become
 * spaces. */
static ds_err
gw_sse_line(ds_buf *b, const char *s)
{
	ds_err rv = DS_OK;

	for (; *s != '\0' && rv == DS_OK; s++) {
		char c = *s == '\n' || *s == '\r' ? ' ' : *s;

		rv = ds_buf_append(b, &c, 1);
	}
	return rv;
}

gw_sse_next
gw_sse_step(const gw_core *core, ds_buf *b, const ProtobufCMessage *resp,
    const nrpc_status *st, uint64_t *after)
{
	const Datasync__V1__WatchResponse *w;
	uint64_t compact, revision;

	(void) core;
	if (st->code == NRPC_OK && resp != NULL &&
	    resp->descriptor == &datasync__v1__watch_response__descriptor) {
		w = (const Datasync__V1__WatchResponse *) resp;
		if (gw_sse_events(b, w) != DS_OK) {
			return GW_SSE_END;
		}
		/* A progress reply moves the cursor too, so that a resume
		 * after a quiet hour is not already compacted. */
		if (w->revision > *after) {
			*after = w->revision;
		}
		return GW_SSE_MORE;
	}
	if (gw_watch_compacted(st, &compact, &revision)) {
		/* Out of memory: the stream ends all the same, without it;
		 * the client's reconnect then gets the 410. */
		if (gw_sse_reset(b, compact, revision) != DS_OK) {
			return GW_SSE_END;
		}
		return GW_SSE_END;
	}
	/* Anything else ends this stream; EventSource reconnects with
	 * Last-Event-ID and goes on where it stopped. */
	if (ds_buf_printf(b, ": error %s %s: ",
	        nrpc_code_name(st->code != NRPC_OK ? st->code : NRPC_INTERNAL),
	        st->reason[0] != '\0' ? st->reason : "MALFORMED_REPLY") ==
	        DS_OK &&
	    gw_sse_line(b, st->message) == DS_OK &&
	    ds_buf_appends(b, "\n\n") == DS_OK) {
		return GW_SSE_END;
	}
	return GW_SSE_END; /* a partial comment is dropped at the end */
}
