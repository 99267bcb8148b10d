/*
 * nrpc_envelope.c - the nrpc.v1 Request/Response envelope: encode and
 * decode with size checks, and the arena requests are decoded into.
 *
 * Pure: no sockets, no threads, no clock; fuzzed through
 * nrpc_server_process.
 *
 * Encoding packs the method's message straight into the output buffer
 * after the rest of the envelope (a protobuf parser accepts fields in any
 * order), so a body is serialised once and never copied. Decoding uses
 * protobuf-c into an arena that is bounded, because protobuf-c's memory
 * use can be many times the input size.
 */
#include <assert.h>
#include <stdalign.h>
#include <string.h>

#include "ds_alloc.h"
#include "ds_text.h"
#include "nrpc_int.h"

/* Field keys: (number << 3) | wire type 2 (length-delimited). */
#define NRPC_KEY_REQUEST_BODY 0x12  /* Request.body = 2 */
#define NRPC_KEY_RESPONSE_STATUS 0x0a /* Response.status = 1 */
#define NRPC_KEY_RESPONSE_BODY 0x12 /* Response.body = 2 */

/* --- varints --- */

size_t
nrpc_varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

size_t
nrpc_varint_put(uint8_t *out, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		out[n++] = (uint8_t) (v | 0x80);
		v >>= 7;
	}
	out[n++] = (uint8_t) v;
	return n;
}

/* --- arena --- */

struct nrpc_arena_chunk {
	nrpc_arena_chunk *next;
	size_t cap;  /* bytes in data */
	size_t used; /* bytes of data handed out */
	max_align_t data[];
};

#define NRPC_ARENA_ALIGN (alignof(max_align_t))

static void *
nrpc_arena_alloc(void *arg, size_t size)
{
	nrpc_arena *a = arg;
	nrpc_arena_chunk *c;
	size_t n;
	void *p;

	if (size > SIZE_MAX - NRPC_ARENA_ALIGN) {
		a->over_max = true;
		return NULL;
	}
	n = (size + NRPC_ARENA_ALIGN - 1) & ~(NRPC_ARENA_ALIGN - 1);
	if (n > a->max || a->used > a->max - n) {
		a->over_max = true;
		return NULL;
	}
	if (a->cur != NULL && a->cur->cap - a->cur->used >= n) {
		c = a->cur;
	} else if (n > NRPC_ARENA_CHUNK_BYTES / 4) {
		/* A big string or bytes field: its own chunk, freed at reset,
		 * so one large request does not keep memory pinned. */
		if ((c = ds_alloc(sizeof(*c) + n)) == NULL) {
			a->oom = true;
			return NULL;
		}
		c->cap = n;
		c->used = 0;
		c->next = a->big;
		a->big = c;
	} else {
		if ((c = ds_alloc(sizeof(*c) + NRPC_ARENA_CHUNK_BYTES)) == NULL) {
			a->oom = true;
			return NULL;
		}
		c->cap = NRPC_ARENA_CHUNK_BYTES;
		c->used = 0;
		c->next = NULL;
		if (a->first == NULL) {
			a->first = c;
		} else {
			a->cur->next = c;
		}
		a->cur = c;
	}
	p = (uint8_t *) c->data + c->used;
	c->used += n;
	a->used += n;
	return p;
}

static void
nrpc_arena_free(void *arg, void *p)
{
	/* Everything is released at once by nrpc_arena_reset. */
	(void) arg;
	(void) p;
}

void
nrpc_arena_init(nrpc_arena *a, size_t max)
{
	memset(a, 0, sizeof(*a));
	a->pa.alloc = nrpc_arena_alloc;
	a->pa.free = nrpc_arena_free;
	a->pa.allocator_data = a;
	a->max = max;
}

static void
nrpc_arena_free_list(nrpc_arena_chunk *c)
{
	while (c != NULL) {
		nrpc_arena_chunk *next = c->next;

		ds_free(c);
		c = next;
	}
}

void
nrpc_arena_reset(nrpc_arena *a)
{
	nrpc_arena_free_list(a->big);
	a->big = NULL;
	if (a->first != NULL) {
		nrpc_arena_free_list(a->first->next);
		a->first->next = NULL;
		a->first->used = 0;
	}
	a->cur = a->first;
	a->used = 0;
	a->over_max = false;
	a->oom = false;
}

void
nrpc_arena_fini(nrpc_arena *a)
{
	nrpc_arena_free_list(a->big);
	nrpc_arena_free_list(a->first);
	a->big = NULL;
	a->first = NULL;
	a->cur = NULL;
	a->used = 0;
}

/* --- encode --- */

/* nrpc_envelope_check_len checks an envelope string's length: at most
 * max bytes. A decoded envelope needs only this: nrpc_strings_check
 * already refused NUL and bad UTF-8 on the wire. */
static nrpc_code
nrpc_envelope_check_len(const char *s, size_t max, const char *field,
    const char *limit, const char *reason, nrpc_status *st, size_t *len)
{
	size_t n = strnlen(s, max + 1);

	if (n > max) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, reason, field,
		    "%s exceeds %s (%zu)", field, limit, max);
		return NRPC_INVALID_ARGUMENT;
	}
	*len = n;
	return NRPC_OK;
}

/* nrpc_envelope_check_text checks a caller-supplied envelope string: at
 * most max bytes of UTF-8. */
static nrpc_code
nrpc_envelope_check_text(const char *s, size_t max, const char *field,
    const char *limit, const char *reason, nrpc_status *st)
{
	size_t n;
	nrpc_code rv;

	if ((rv = nrpc_envelope_check_len(s, max, field, limit, reason, st,
	         &n)) != NRPC_OK) {
		return rv;
	}
	if (!ds_utf8_valid((const uint8_t *) s, n)) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, reason, field,
		    "%s is not valid UTF-8", field);
		return NRPC_INVALID_ARGUMENT;
	}
	return NRPC_OK;
}

nrpc_code
nrpc_envelope_plan_request(nrpc_request_plan *p, const char *method,
    const ProtobufCMessage *body, uint32_t timeout_ms, const char *request_id,
    const char *client_name, const char *const *metadata, size_t n_metadata,
    nrpc_status *st)
{
	static const char *const reason = "INVALID_ARGUMENT";
	nrpc_code rv;
	size_t i;

	nrpc__v1__request__init(&p->env);
	if (method == NULL || method[0] == '\0') {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, reason, "method",
		    "method is missing");
		return NRPC_INVALID_ARGUMENT;
	}
	if ((rv = nrpc_envelope_check_text(method, NRPC_MAX_METHOD_BYTES,
	    "method", "max_method_bytes", reason, st)) != NRPC_OK) {
		return rv;
	}
	if (request_id != NULL && (rv = nrpc_envelope_check_text(request_id,
	    NRPC_MAX_REQUEST_ID_BYTES, "request_id", "max_request_id_bytes",
	    reason, st)) != NRPC_OK) {
		return rv;
	}
	if (client_name != NULL && (rv = nrpc_envelope_check_text(client_name,
	    NRPC_MAX_CLIENT_NAME_BYTES, "client_name", "max_client_name_bytes",
	    reason, st)) != NRPC_OK) {
		return rv;
	}
	if (n_metadata > NRPC_MAX_METADATA) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, reason, "metadata",
		    "metadata exceeds max_metadata (%d pairs)", NRPC_MAX_METADATA);
		return NRPC_INVALID_ARGUMENT;
	}
	if (n_metadata > 0 && metadata == NULL) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, reason, "metadata",
		    "metadata is NULL but n_metadata is %zu", n_metadata);
		return NRPC_INVALID_ARGUMENT;
	}
	for (i = 0; i < n_metadata; i++) {
		const char *k = metadata[2 * i];
		const char *v = metadata[2 * i + 1];

		if (k == NULL || v == NULL) {
			nrpc_status_set(st, NRPC_INVALID_ARGUMENT, reason,
			    "metadata", "metadata pair %zu has a NULL %s", i,
			    k == NULL ? "key" : "value");
			return NRPC_INVALID_ARGUMENT;
		}
		if ((rv = nrpc_envelope_check_text(k, NRPC_MAX_METADATA_BYTES,
		    "metadata", "max_metadata_bytes", reason, st)) != NRPC_OK ||
		    (rv = nrpc_envelope_check_text(v, NRPC_MAX_METADATA_BYTES,
		    "metadata", "max_metadata_bytes", reason, st)) != NRPC_OK) {
			return rv;
		}
		nrpc__v1__metadata__init(&p->md[i]);
		/* protobuf-c's fields are not const; packing only reads. */
		p->md[i].key = (char *) k;
		p->md[i].value = (char *) v;
		p->mdp[i] = &p->md[i];
	}
	p->env.method = (char *) method;
	p->env.timeout_ms = timeout_ms;
	if (request_id != NULL) {
		p->env.request_id = (char *) request_id;
	}
	if (client_name != NULL) {
		p->env.client_name = (char *) client_name;
	}
	p->env.n_metadata = n_metadata;
	p->env.metadata = n_metadata > 0 ? p->mdp : NULL;
	p->body = body;
	p->env_len = nrpc__v1__request__get_packed_size(&p->env);
	p->body_len = body != NULL ? protobuf_c_message_get_packed_size(body) : 0;
	p->total = p->env_len;
	if (p->body_len > 0) {
		p->total += 1 + nrpc_varint_len(p->body_len) + p->body_len;
	}
	return NRPC_OK;
}

void
nrpc_envelope_write_request(const nrpc_request_plan *p, uint8_t *out)
{
	size_t n = nrpc__v1__request__pack(&p->env, out);

	assert(n == p->env_len);
	if (p->body_len > 0) {
		out[n++] = NRPC_KEY_REQUEST_BODY;
		n += nrpc_varint_put(out + n, p->body_len);
		n += protobuf_c_message_pack(p->body, out + n);
	}
	assert(n == p->total);
}

void
nrpc_envelope_plan_reply(nrpc_reply_plan *p, const nrpc_status *st,
    const ProtobufCMessage *body)
{
	nrpc__v1__status__init(&p->status);
	p->has_status = st->code != NRPC_OK;
	p->body = st->code == NRPC_OK ? body : NULL;
	p->status_len = 0;
	p->body_len = 0;
	p->total = 0;
	if (p->has_status) {
		p->status.code = (int32_t) st->code;
		p->status.reason = (char *) st->reason;
		p->status.message = (char *) st->message;
		p->status.field = (char *) st->field;
		p->status.detail_type = (char *) st->detail_type;
		p->status.detail.data = st->detail;
		p->status.detail.len = st->detail != NULL ? st->detail_len : 0;
		p->status.retry_after_ms = st->retry_after_ms;
		p->status_len = nrpc__v1__status__get_packed_size(&p->status);
		p->total += 1 + nrpc_varint_len(p->status_len) + p->status_len;
	}
	if (p->body != NULL) {
		p->body_len = protobuf_c_message_get_packed_size(p->body);
		if (p->body_len > 0) {
			p->total += 1 + nrpc_varint_len(p->body_len) + p->body_len;
		}
	}
}

void
nrpc_envelope_write_reply(const nrpc_reply_plan *p, uint8_t *out)
{
	size_t n = 0;

	if (p->has_status) {
		out[n++] = NRPC_KEY_RESPONSE_STATUS;
		n += nrpc_varint_put(out + n, p->status_len);
		n += nrpc__v1__status__pack(&p->status, out + n);
	}
	if (p->body_len > 0) {
		out[n++] = NRPC_KEY_RESPONSE_BODY;
		n += nrpc_varint_put(out + n, p->body_len);
		n += protobuf_c_message_pack(p->body, out + n);
	}
	assert(n == p->total);
}

/* --- decode --- */

/* nrpc_envelope_arena_failed reports why an unpack into a returned NULL,
 * when the arena is the reason. */
static nrpc_code
nrpc_envelope_arena_failed(const nrpc_arena *a, const char *what,
    nrpc_status *st)
{
	if (a->oom) {
		nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED, "OUT_OF_MEMORY",
		    NULL, "out of memory decoding the %s", what);
		return NRPC_RESOURCE_EXHAUSTED;
	}
	if (a->over_max) {
		nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED, "TOO_LARGE", NULL,
		    "decoded %s exceeds max_decoded_bytes (%zu)", what, a->max);
		return NRPC_RESOURCE_EXHAUSTED;
	}
	return NRPC_OK;
}

nrpc_code
nrpc_envelope_decode_request(const uint8_t *buf, size_t len, size_t max,
    nrpc_arena *a, Nrpc__V1__Request **out, nrpc_status *st)
{
	static const char *const reason = "MALFORMED_ENVELOPE";
	Nrpc__V1__Request *env;
	nrpc_code rv;
	size_t i, n;

	if ((rv = nrpc_envelope_check_size(len, max, st)) != NRPC_OK) {
		return rv;
	}
	/* protobuf-c cuts method and metadata at a NUL (the strnlen checks
	 * below cannot see past it): refuse such strings on the wire. */
	if ((rv = nrpc_strings_check(&nrpc__v1__request__descriptor, buf, len,
	    NRPC_MAX_BODY_DEPTH_DEFAULT, "envelope", reason, st)) != NRPC_OK) {
		return rv;
	}
	if ((env = nrpc__v1__request__unpack(&a->pa, len, buf)) == NULL) {
		if ((rv = nrpc_envelope_arena_failed(a, "envelope", st)) !=
		    NRPC_OK) {
			return rv;
		}
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, reason, NULL,
		    "envelope is not a valid nrpc.v1.Request (%zu bytes)", len);
		return NRPC_INVALID_ARGUMENT;
	}
	if (env->method[0] == '\0') {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, reason, "method",
		    "envelope has no method");
		return NRPC_INVALID_ARGUMENT;
	}
	if ((rv = nrpc_envelope_check_len(env->method, NRPC_MAX_METHOD_BYTES,
	    "method", "max_method_bytes", reason, st, &n)) != NRPC_OK ||
	    (rv = nrpc_envelope_check_len(env->request_id,
	    NRPC_MAX_REQUEST_ID_BYTES, "request_id", "max_request_id_bytes",
	    reason, st, &n)) != NRPC_OK ||
	    (rv = nrpc_envelope_check_len(env->client_name,
	    NRPC_MAX_CLIENT_NAME_BYTES, "client_name", "max_client_name_bytes",
	    reason, st, &n)) != NRPC_OK) {
		return rv;
	}
	if (env->n_metadata > NRPC_MAX_METADATA) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, reason, "metadata",
		    "metadata exceeds max_metadata (%d pairs)", NRPC_MAX_METADATA);
		return NRPC_INVALID_ARGUMENT;
	}
	for (i = 0; i < env->n_metadata; i++) {
		if ((rv = nrpc_envelope_check_len(env->metadata[i]->key,
		    NRPC_MAX_METADATA_BYTES, "metadata", "max_metadata_bytes",
		    reason, st, &n)) != NRPC_OK ||
		    (rv = nrpc_envelope_check_len(env->metadata[i]->value,
		    NRPC_MAX_METADATA_BYTES, "metadata", "max_metadata_bytes",
		    reason, st, &n)) != NRPC_OK) {
			return rv;
		}
	}
	*out = env;
	return NRPC_OK;
}

nrpc_code
nrpc_envelope_decode_body(const ProtobufCMessageDescriptor *d,
    const uint8_t *buf, size_t len, nrpc_arena *a, ProtobufCMessage **out,
    nrpc_status *st)
{
	ProtobufCMessage *m;
	nrpc_code rv;

	/* Every method of every service: a string cut at a NUL or not UTF-8
	 * never reaches a handler (review 80a70b6 #5). */
	if ((rv = nrpc_strings_check(d, buf, len, NRPC_MAX_BODY_DEPTH_DEFAULT,
	    "body", "MALFORMED_BODY", st)) != NRPC_OK) {
		return rv;
	}
	if ((m = protobuf_c_message_unpack(d, &a->pa, len, buf)) == NULL) {
		if ((rv = nrpc_envelope_arena_failed(a, "body", st)) != NRPC_OK) {
			return rv;
		}
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "MALFORMED_BODY",
		    NULL, "body is not a valid %s (%zu bytes)", d->name, len);
		return NRPC_INVALID_ARGUMENT;
	}
	*out = m;
	return NRPC_OK;
}

nrpc_code
nrpc_envelope_decode_reply(const uint8_t *buf, size_t len, size_t max,
    const ProtobufCMessageDescriptor *d, ProtobufCMessage **resp,
    nrpc_status *st)
{
	Nrpc__V1__Response *r;
	ProtobufCMessage *body;

	memset(st, 0, sizeof(*st));
	*resp = NULL;
	if (len > max) {
		nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED, "TOO_LARGE", NULL,
		    "reply exceeds max_message_bytes (%zu)", max);
		return NRPC_RESOURCE_EXHAUSTED;
	}
	if ((r = nrpc__v1__response__unpack(NULL, len, buf)) == NULL) {
		nrpc_status_set(st, NRPC_INTERNAL, "MALFORMED_REPLY", NULL,
		    "reply is not a valid nrpc.v1.Response (%zu bytes)", len);
		return NRPC_INTERNAL;
	}
	if (r->status != NULL && r->status->code != 0) {
		nrpc_status_from_wire(st, r->status);
		nrpc__v1__response__free_unpacked(r, NULL);
		return st->code;
	}
	body = protobuf_c_message_unpack(d, NULL, r->body.len, r->body.data);
	nrpc__v1__response__free_unpacked(r, NULL);
	if (body == NULL) {
		nrpc_status_set(st, NRPC_INTERNAL, "MALFORMED_REPLY", NULL,
		    "reply body is not a valid %s", d->name);
		return NRPC_INTERNAL;
	}
	*resp = body;
	return NRPC_OK;
}
