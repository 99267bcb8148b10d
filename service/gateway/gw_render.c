/*
 * gw_render.c - building responses: headers, JSON bodies, error bodies.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "ds_alloc.h"
#include "gw_int.h"

/* --- responses --- */

void
gw_response_init(gw_response *r)
{
	memset(r, 0, sizeof(*r));
	r->status = 200;
}

void
gw_response_fini(gw_response *r)
{
	for (size_t i = 0; i < r->n_headers; i++) {
		ds_free(r->headers[i].value);
	}
	ds_free(r->body_owned);
	memset(r, 0, sizeof(*r));
}

void
gw_response_reset(gw_response *r, int status)
{
	bool close = r->close;
	unsigned events = r->events;

	gw_response_fini(r);
	r->status = status;
	r->close = close;
	r->events = events;
}

void
gw_response_header(gw_response *r, const char *name, const char *value)
{
	char *dup;
	size_t i;

	if (r->broken) {
		return;
	}
	if ((dup = ds_strdup(value)) == NULL) {
		r->broken = true;
		return;
	}
	/* A header value is one line: whatever control character slipped
	 * into stored text must not split the response (CR LF injection). */
	for (char *p = dup; *p != '\0'; p++) {
		if ((unsigned char) *p < 0x20 || *p == 0x7f) {
			*p = '?';
		}
	}
	for (i = 0; i < r->n_headers; i++) {
		if (strcasecmp(r->headers[i].name, name) == 0) {
			ds_free(r->headers[i].value);
			r->headers[i].value = dup;
			return;
		}
	}
	if (DS_NEVER(r->n_headers == GW_MAX_RESPONSE_HEADERS)) {
		ds_free(dup);
		r->broken = true;
		return;
	}
	r->headers[r->n_headers].name = name;
	r->headers[r->n_headers].value = dup;
	r->n_headers++;
}

void
gw_response_headerf(gw_response *r, const char *name, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (DS_NEVER(n < 0 || (size_t) n >= sizeof(buf))) {
		r->broken = true;
		return;
	}
	gw_response_header(r, name, buf);
}

const char *
gw_response_get_header(const gw_response *r, const char *name)
{
	for (size_t i = 0; i < r->n_headers; i++) {
		if (strcasecmp(r->headers[i].name, name) == 0) {
			return r->headers[i].value;
		}
	}
	return NULL;
}

void
gw_response_body_take(gw_response *r, void *body, size_t len)
{
	ds_free(r->body_owned);
	r->body_owned = body;
	r->body = body;
	r->body_len = body != NULL ? len : 0;
}

void
gw_response_body_borrow(gw_response *r, const void *body, size_t len)
{
	ds_free(r->body_owned);
	r->body_owned = NULL;
	r->body = body;
	r->body_len = body != NULL ? len : 0;
}

void
gw_response_text(
    gw_response *r, int status, const char *ctype, const char *text)
{
	size_t n = strlen(text);
	char *copy = ds_memdup(text, n);

	gw_response_reset(r, status);
	if (copy == NULL) {
		r->broken = true;
		return;
	}
	gw_response_header(r, "Content-Type", ctype);
	gw_response_body_take(r, copy, n);
}

void
gw_response_seal(gw_response *r)
{
	static const char body[] =
	    "{\"code\":\"INTERNAL\",\"reason\":\"RESOURCE_EXHAUSTED\","
	    "\"message\":\"the gateway could not build its answer\"}";

	if (!r->broken) {
		return;
	}
	/* No allocation from here: the body is static and so are the
	 * header values (gw_http.c sends names and values as they are). */
	for (size_t i = 0; i < r->n_headers; i++) {
		ds_free(r->headers[i].value);
	}
	ds_free(r->body_owned);
	r->n_headers = 0;
	r->body_owned = NULL;
	r->status = 500;
	r->body = (const uint8_t *) body;
	r->body_len = sizeof(body) - 1;
	r->broken = false;
}

/* --- record and lock headers --- */

static void
gw_render_text_header(gw_response *r, const char *name, const char *text)
{
	ds_buf b;

	ds_buf_init(&b, GW_MAX_HEADER_VALUE_BYTES * 3);
	if (gw_pct_encode(&b, text, strlen(text)) != DS_OK) {
		r->broken = true;
	} else {
		gw_response_header(
		    r, name, b.ptr != NULL ? (char *) b.ptr : "");
	}
	ds_buf_fini(&b);
}

void
gw_render_lock_headers(gw_response *r, const Datasync__V1__LockInfo *l)
{
	gw_render_text_header(
	    r, "Lock-Owner", l->owner != NULL ? l->owner : "");
	gw_response_headerf(
	    r, "Lock-Expires-At", "%" PRId64, l->expires_at_ms);
	gw_response_headerf(
	    r, "Lock-Fencing-Token", "%" PRIu64, l->fencing_token);
}

void
gw_render_record_headers(
    gw_response *r, const Datasync__V1__Record *rec, bool etag)
{
	if (etag) {
		gw_response_headerf(
		    r, "ETag", "\"%" PRIu64 "\"", rec->version);
	}
	gw_response_headerf(r, "Record-Revision", "%" PRIu64, rec->revision);
	gw_response_headerf(
	    r, "Record-Updated-At", "%" PRId64, rec->updated_at_ms);
	if (rec->updated_by != NULL && rec->updated_by[0] != '\0') {
		gw_render_text_header(r, "Record-Updated-By", rec->updated_by);
	}
	gw_response_headerf(
	    r, "Record-Created-At", "%" PRId64, rec->created_at_ms);
	if (rec->lock != NULL) {
		gw_render_lock_headers(r, rec->lock);
	}
}

/* --- JSON --- */

void
gw_render_json(gw_response *r, int status, const ProtobufCMessage *m)
{
	char *text = NULL;
	size_t len = 0;
	pbjson_error perr;
	pbjson_err e;

	gw_response_reset(r, status);
	if ((e = pbjson_encode(m, NULL, &text, &len, &perr)) != PBJSON_OK) {
		nrpc_status st;

		memset(&st, 0, sizeof(st));
		(void) gw_status_set(&st, 500, NRPC_INTERNAL, "INTERNAL", NULL,
		    "cannot encode the reply as JSON: %s", perr.message);
		gw_render_error(NULL, r, 500, &st, NULL);
		nrpc_status_fini(&st);
		return;
	}
	gw_response_header(r, "Content-Type", "application/json");
	gw_response_body_take(r, text, len);
}

/* gw_json_text is json_string that never fails on bad UTF-8 (a message
 * from an upstream we do not control): it says so instead. */
static json_t *
gw_json_text(const char *s)
{
	json_t *j = json_string(s);

	return j != NULL ? j : json_string("(not UTF-8)");
}

/* gw_render_decode_detail unpacks st's detail by its type name (owned;
 * protobuf_c_message_free_unpacked), or NULL. */
static ProtobufCMessage *
gw_render_decode_detail(const gw_core *core, const nrpc_status *st)
{
	const ProtobufCMessageDescriptor *d;

	if (core == NULL || st->detail == NULL || st->detail_type[0] == '\0' ||
	    (d = gw_find_message(core, st->detail_type)) == NULL) {
		return NULL;
	}
	return protobuf_c_message_unpack(d, NULL, st->detail_len, st->detail);
}

void
gw_render_error(const gw_core *core, gw_response *r, int http,
    const nrpc_status *st, const ProtobufCMessage *current)
{
	ProtobufCMessage *decoded = NULL;
	json_t *o = NULL, *cj = NULL;
	char *text = NULL;
	size_t len = 0;
	bool conflict = strcmp(st->reason, "VERSION_CONFLICT") == 0;
	bool locked = strcmp(st->reason, "LOCKED") == 0;

	gw_response_reset(r, http);
	if (current == NULL) {
		current = decoded = gw_render_decode_detail(core, st);
	}
	if ((o = json_object()) == NULL ||
	    json_object_set_new(
	        o, "code", json_string(nrpc_code_name(st->code))) != 0 ||
	    json_object_set_new(o, "reason", gw_json_text(st->reason)) != 0 ||
	    json_object_set_new(o, "message", gw_json_text(st->message)) !=
	        0 ||
	    (st->field[0] != '\0' && json_object_set_new(o, "field",
	                                 gw_json_text(st->field)) != 0)) {
		r->broken = true;
		goto out;
	}
	/* A compacted watch cursor: the client needs the oldest revision
	 * it may watch from (and the current one), not a record. */
	if (current != NULL &&
	    current->descriptor == &datasync__v1__watch_response__descriptor) {
		const Datasync__V1__WatchResponse *w =
		    (const Datasync__V1__WatchResponse *) current;
		char num[24];

		(void) snprintf(num, sizeof(num), "%" PRIu64,
		    w->compact_revision); /* fits */
		if (json_object_set_new(o, "compactRevision", json_string(num)) !=
		    0) {
			r->broken = true;
			goto out;
		}
		(void) snprintf(num, sizeof(num), "%" PRIu64, w->revision);
		if (json_object_set_new(o, "revision", json_string(num)) != 0) {
			r->broken = true;
			goto out;
		}
		current = NULL;
	}
	/* A detail that does not encode is left out: the status itself
	 * still says what happened. */
	if (current != NULL &&
	    pbjson_to_json(current, NULL, &cj, NULL) == PBJSON_OK) {
		if (json_object_set_new(o, "current", cj) != 0) {
			r->broken = true;
			goto out;
		}
	}
	if (pbjson_dump(o, NULL, &text, &len, NULL) != PBJSON_OK) {
		r->broken = true;
		goto out;
	}
	gw_response_header(r, "Content-Type", "application/json");
	gw_response_body_take(r, text, len);

	if (current != NULL &&
	    current->descriptor == &datasync__v1__record__descriptor) {
		const Datasync__V1__Record *rec =
		    (const Datasync__V1__Record *) current;

		/* The ETag of what is there now, ready for an overwrite
		 * that is itself a compare-and-set (DESIGN §4 rule 2). A
		 * tombstone has no representation and so no ETag. */
		if (conflict && !rec->deleted && rec->version > 0) {
			gw_render_record_headers(r, rec, true);
		}
		if (locked && rec->lock != NULL) {
			int64_t now = core != NULL && core->wall != NULL
			                  ? ds_clock_now_ms(core->wall)
			                  : rec->lock->expires_at_ms;

			gw_render_lock_headers(r, rec->lock);
			gw_response_headerf(r, "Retry-After", "%" PRId64,
			    gw_retry_after_s(rec->lock->expires_at_ms, now));
		}
	}
	if (st->retry_after_ms > 0 &&
	    gw_response_get_header(r, "Retry-After") == NULL) {
		/* Whole seconds, rounded up: never earlier than asked. */
		gw_response_headerf(r, "Retry-After", "%u",
		    (st->retry_after_ms + 999) / 1000);
	}
	if ((http == 423 || http == 429 || http == 503) &&
	    gw_response_get_header(r, "Retry-After") == NULL) {
		gw_response_headerf(r, "Retry-After", "%d", GW_RETRY_AFTER_S);
	}
	if (conflict) {
		r->events |= GW_EV_CONFLICT;
	}
	if (locked) {
		r->events |= GW_EV_LOCK_REFUSED;
	}
out:
	json_decref(o);
	if (decoded != NULL) {
		protobuf_c_message_free_unpacked(decoded, NULL);
	}
}

void
gw_render_pbjson_error(const gw_core *core, gw_response *r, pbjson_err err,
    const pbjson_error *perr, const char *what)
{
	nrpc_status st;
	int http = 400;
	const char *reason = "INVALID_JSON";
	nrpc_code code = NRPC_INVALID_ARGUMENT;
	const char *field = perr->path[0] != '\0' ? perr->path : NULL;

	memset(&st, 0, sizeof(st));
	switch (err) {
	case PBJSON_EPARSE:
		reason = "MALFORMED_JSON";
		break;
	case PBJSON_EUNKNOWN_FIELD:
		reason = "UNKNOWN_FIELD";
		break;
	case PBJSON_ETOOLARGE:
		http = 413;
		reason = "TOO_LARGE";
		break;
	case PBJSON_ENOMEM:
		http = 500;
		code = NRPC_RESOURCE_EXHAUSTED;
		reason = "RESOURCE_EXHAUSTED";
		break;
	default:
		break;
	}
	if (err == PBJSON_EPARSE) {
		/* pbjson's message names line and column already. */
		(void) gw_status_set(&st, http, code, reason, field,
		    "%s: %s (position %zu)", what, perr->message,
		    perr->position);
	} else {
		(void) gw_status_set(&st, http, code, reason, field, "%s: %s",
		    what, perr->message);
	}
	gw_render_error(core, r, http, &st, NULL);
	nrpc_status_fini(&st);
}
