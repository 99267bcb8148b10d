/*
 * gw_plan.c - request -> plan -> response: what each route does. Pure;
 * fuzzed through gw_plan_request.
 */
#include <inttypes.h>
#include <string.h>

#include "auth.h"
#include "ds_alloc.h"
#include "gw_int.h"

/* --- core --- */

static const struct {
	gw_op op;
	const char *name;
	const ProtobufCMessageDescriptor *input;
	const ProtobufCMessageDescriptor *output;
} gw_core_ops[GW_OP_COUNT] = {
    {GW_OP_GET, "/datasync.v1.DataSync/Get",
        &datasync__v1__get_request__descriptor,
        &datasync__v1__get_response__descriptor},
    {GW_OP_UPDATE, "/datasync.v1.DataSync/Update",
        &datasync__v1__update_request__descriptor,
        &datasync__v1__update_response__descriptor},
    {GW_OP_DELETE, "/datasync.v1.DataSync/Delete",
        &datasync__v1__delete_request__descriptor,
        &datasync__v1__delete_response__descriptor},
    {GW_OP_LOCK, "/datasync.v1.DataSync/Lock",
        &datasync__v1__lock_request__descriptor,
        &datasync__v1__lock_response__descriptor},
    {GW_OP_UNLOCK, "/datasync.v1.DataSync/Unlock",
        &datasync__v1__unlock_request__descriptor,
        &datasync__v1__unlock_response__descriptor},
    {GW_OP_LIST, "/datasync.v1.DataSync/List",
        &datasync__v1__list_request__descriptor,
        &datasync__v1__list_response__descriptor},
    {GW_OP_WATCH, "/datasync.v1.DataSync/Watch",
        &datasync__v1__watch_request__descriptor,
        &datasync__v1__watch_response__descriptor},
    {GW_OP_WHOAMI, "/datasync.v1.DataSync/WhoAmI",
        &datasync__v1__who_am_irequest__descriptor,
        &datasync__v1__who_am_iresponse__descriptor},
};

void
gw_core_init(gw_core *core, const nrpc_service_desc *const *services,
    size_t n_services, const char *const *cors_origins, size_t n_cors_origins,
    size_t max_value_bytes, const ds_clock *wall, gw_metrics *metrics)
{
	memset(core, 0, sizeof(*core));
	core->services = services;
	core->n_services = n_services;
	core->cors_origins = cors_origins;
	core->n_cors_origins = n_cors_origins;
	core->max_value_bytes = max_value_bytes != 0
	                            ? max_value_bytes
	                            : GW_MAX_VALUE_BYTES_DEFAULT;
	/* A value travels as base64 in /rpc/ JSON: 4 bytes per 3. */
	core->max_rpc_body_bytes =
	    (core->max_value_bytes + 2) / 3 * 4 + GW_RPC_BODY_OVERHEAD;
	core->wall = wall;
	core->metrics = metrics;
	for (size_t i = 0; i < n_cors_origins; i++) {
		if (strcmp(cors_origins[i], "*") == 0) {
			core->cors_any = true;
		}
	}
	for (int i = 0; i < GW_OP_COUNT; i++) {
		const nrpc_method *m = gw_find_method(
		    core, gw_core_ops[i].name, strlen(gw_core_ops[i].name));

		/* The REST routes are datasync's: a service that merely
		 * shares the name does not get them. */
		if (m != NULL && m->input == gw_core_ops[i].input &&
		    m->output == gw_core_ops[i].output) {
			core->ops[gw_core_ops[i].op] = m;
		}
	}
}

const nrpc_method *
gw_find_method(const gw_core *core, const char *name, size_t len)
{
	for (size_t s = 0; s < core->n_services; s++) {
		const nrpc_method *m =
		    nrpc_service_find_method(core->services[s], name, len);

		if (m != NULL) {
			return m;
		}
	}
	return NULL;
}

static const ProtobufCMessageDescriptor *
gw_find_in(const ProtobufCMessageDescriptor *d, const char *name, int depth)
{
	if (d == NULL || depth > GW_MAX_DETAIL_DEPTH) {
		return NULL;
	}
	if (strcmp(d->name, name) == 0) {
		return d;
	}
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const ProtobufCMessageDescriptor *found;

		if (f->type == PROTOBUF_C_TYPE_MESSAGE &&
		    (found = gw_find_in(f->descriptor, name, depth + 1)) !=
		        NULL) {
			return found;
		}
	}
	return NULL;
}

const ProtobufCMessageDescriptor *
gw_find_message(const gw_core *core, const char *full_name)
{
	for (size_t s = 0; s < core->n_services; s++) {
		const nrpc_service_desc *svc = core->services[s];

		for (size_t i = 0; svc != NULL && i < svc->n_methods; i++) {
			const ProtobufCMessageDescriptor *d;

			if ((d = gw_find_in(svc->methods[i].output, full_name,
			         1)) != NULL ||
			    (d = gw_find_in(svc->methods[i].input, full_name,
			         1)) != NULL) {
				return d;
			}
		}
	}
	return NULL;
}

/* --- plans --- */

void
gw_plan_init(gw_plan *p)
{
	memset(p, 0, sizeof(*p));
	gw_response_init(&p->resp);
}

void
gw_plan_fini(gw_plan *p)
{
	ds_free(p->origin);
	ds_free(p->call_request_id);
	ds_free(p->caller);
	if (p->authorization != NULL) {
		/* The secret does not outlive the request in freed memory. */
		memset(p->authorization, 0, strlen(p->authorization));
		ds_free(p->authorization);
	}
	ds_free(p->static_rel);
	for (size_t i = 0; i < p->n_strs; i++) {
		ds_free(p->strs[i]);
	}
	if (p->decoded != NULL) {
		protobuf_c_message_free_unpacked(p->decoded, NULL);
	}
	gw_response_fini(&p->resp);
	memset(p, 0, sizeof(*p));
}

void
gw_plan_decorate(const gw_core *core, gw_plan *p)
{
	gw_auth_decorate(core, p);
	gw_cors_decorate(core, p->cors, p->origin, &p->resp);
	gw_response_seal(&p->resp);
}

/* gw_plan_error finishes p with st rendered as status http. */
static void
gw_plan_error(const gw_core *core, gw_plan *p, int http, const nrpc_status *st)
{
	gw_render_error(core, &p->resp, http, st, NULL);
	p->kind = GW_PLAN_RESPOND;
}

/* gw_plan_keep records s (owned) for gw_plan_fini; false (and s freed)
 * when the table is full, which would be a bug. */
static bool
gw_plan_keep(gw_plan *p, char *s)
{
	if (DS_NEVER(p->n_strs == sizeof(p->strs) / sizeof(p->strs[0]))) {
		ds_free(s);
		return false;
	}
	p->strs[p->n_strs++] = s;
	return true;
}

/* gw_plan_header copies the request header name into *out (owned by p;
 * protobuf-c's "" when absent). Returns 0, 400 over
 * GW_MAX_HEADER_VALUE_BYTES, 500 out of memory. decode: percent-decode
 * it (Author: user text, see gw_pct_encode). */
static int
gw_plan_header(gw_plan *p, const gw_request *req, const char *name,
    bool decode, char **out, nrpc_status *st)
{
	const char *v = gw_request_header(req, name);
	size_t len;
	char *copy = NULL;
	int http;

	*out = (char *) protobuf_c_empty_string;
	if (v == NULL) {
		return 0;
	}
	if ((len = strnlen(v, GW_MAX_HEADER_VALUE_BYTES + 1)) >
	    GW_MAX_HEADER_VALUE_BYTES) {
		return gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
		    "TOO_LARGE", name,
		    "%s exceeds max_header_value_bytes (%d)", name,
		    GW_MAX_HEADER_VALUE_BYTES);
	}
	if (decode) {
		if ((http = gw_decode_dup(
		         v, len, false, name, &copy, NULL, st)) != 0) {
			return http;
		}
	} else if ((copy = ds_memdup(v, len)) == NULL) {
		return gw_status_set(st, 500, NRPC_RESOURCE_EXHAUSTED,
		    "RESOURCE_EXHAUSTED", NULL, "out of memory");
	}
	if (!gw_plan_keep(p, copy)) {
		return gw_status_set(st, 500, NRPC_INTERNAL, "INTERNAL", NULL,
		    "too many strings");
	}
	*out = copy;
	return 0;
}

/* gw_plan_key decodes the key of a record or lock route. */
static int
gw_plan_key(gw_plan *p, const gw_target *t, char **out, nrpc_status *st)
{
	char *key;
	size_t n;
	int http;

	if (t->key_len == 0) {
		return gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", "key",
		    "the key is empty: /v1/records/{key}");
	}
	if ((http = gw_decode_dup(
	         t->key, t->key_len, false, "key", &key, &n, st)) != 0) {
		return http;
	}
	if (!gw_plan_keep(p, key)) {
		return gw_status_set(st, 500, NRPC_INTERNAL, "INTERNAL", NULL,
		    "too many strings");
	}
	*out = key;
	return 0;
}

/* gw_plan_call makes p an RPC of op with msg, or a 501 when the service
 * behind the gateway does not offer op. */
static int
gw_plan_call(const gw_core *core, gw_plan *p, gw_op op, ProtobufCMessage *msg,
    nrpc_status *st)
{
	p->op = op;
	if ((p->rpc = core->ops[op]) == NULL) {
		return gw_status_set(st, 501, NRPC_UNIMPLEMENTED,
		    "UNIMPLEMENTED", NULL,
		    "the upstream service does not offer %s",
		    gw_core_ops[op].name);
	}
	p->req = msg;
	p->kind = GW_PLAN_RPC;
	return 0;
}

/* --- routes --- */

static int
gw_plan_get(const gw_core *core, const gw_request *req, const gw_target *t,
    gw_plan *p, nrpc_status *st)
{
	Datasync__V1__GetRequest init = DATASYNC__V1__GET_REQUEST__INIT;
	const char *inm = gw_request_header(req, "If-None-Match");
	gw_query q;
	char *version = NULL;
	int http;

	p->m.get = init;
	if ((http = gw_plan_key(p, t, &p->m.get.key, st)) != 0 ||
	    (http = gw_query_parse(t->query, t->query_len, &q, st)) != 0 ||
	    (http = gw_query_get(&q, "version", NULL, &version, st)) != 0) {
		return http;
	}
	if (version != NULL &&
	    !gw_parse_u64(version, strlen(version), &p->m.get.version)) {
		ds_free(version);
		return gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", "version",
		    "version must be a decimal number (0 = latest)");
	}
	ds_free(version);
	if (inm != NULL) {
		if ((http = gw_etags_parse(
		         inm, "If-None-Match", &p->inm, st)) != 0) {
			return http;
		}
		p->has_inm = true;
	}
	return gw_plan_call(core, p, GW_OP_GET, &p->m.get.base, st);
}

/* gw_plan_version_in fills p->versions with the If-Match list's tags that
 * can match strongly (ours, not weak; "0" names no version) and returns
 * how many. */
static size_t
gw_plan_version_in(gw_plan *p)
{
	size_t n = 0;

	for (size_t i = 0; i < p->pc.etags.n; i++) {
		const gw_etag *t = &p->pc.etags.tags[i];

		if (t->numeric && !t->weak && t->version > 0) {
			p->versions[n++] = t->version;
		}
	}
	return n;
}

/* gw_plan_precondition fills p->precond from p->pc. An If-Match list is
 * one write with if_version_in, checked by the store in the write's
 * transaction: a retry with the same Idempotency-Key then replays the
 * first answer (a Get followed by a CAS against what it read would hash
 * differently on the retry). A list that no version can match is a Get
 * answered with 412. */
static int
gw_plan_precondition(const gw_core *core, gw_plan *p, gw_op op,
    ProtobufCMessage *msg, const char *key, nrpc_status *st)
{
	Datasync__V1__Precondition pinit = DATASYNC__V1__PRECONDITION__INIT;
	Datasync__V1__GetRequest ginit = DATASYNC__V1__GET_REQUEST__INIT;
	Datasync__V1__VersionSet vinit = DATASYNC__V1__VERSION_SET__INIT;
	size_t n;
	int http;

	p->precond = pinit;
	switch (p->pc.kind) {
	case GW_PRECOND_IF_VERSION:
		p->precond.kind_case =
		    DATASYNC__V1__PRECONDITION__KIND_IF_VERSION;
		p->precond.if_version = p->pc.version;
		break;
	case GW_PRECOND_IF_EXISTS:
		p->precond.kind_case =
		    DATASYNC__V1__PRECONDITION__KIND_IF_EXISTS;
		p->precond.if_exists = true;
		break;
	case GW_PRECOND_IF_ABSENT:
		p->precond.kind_case =
		    DATASYNC__V1__PRECONDITION__KIND_IF_ABSENT;
		p->precond.if_absent = true;
		break;
	case GW_PRECOND_IF_MATCH_LIST:
		if ((n = gw_plan_version_in(p)) > 0) {
			p->version_in = vinit;
			p->version_in.versions = p->versions;
			p->version_in.n_versions = n;
			p->precond.kind_case =
			    DATASYNC__V1__PRECONDITION__KIND_IF_VERSION_IN;
			p->precond.if_version_in = &p->version_in;
			break;
		}
		if ((http = gw_plan_call(core, p, op, msg, st)) != 0) {
			return http; /* 501 names the write, not the Get */
		}
		p->current = ginit;
		p->current.key = (char *) key;
		p->read_current = true;
		if ((http = gw_plan_call(
		         core, p, GW_OP_GET, &p->current.base, st)) != 0) {
			return http;
		}
		p->op = op; /* what follows the Get */
		return 0;
	case GW_PRECOND_NONE:
		return gw_status_set(st, 428, NRPC_FAILED_PRECONDITION,
		    "PRECONDITION_REQUIRED", "If-Match",
		    "a write needs a precondition: If-Match: \"<version>\", "
		    "If-Match: * (any version) or If-None-Match: * (create "
		    "only)");
	}
	return gw_plan_call(core, p, op, msg, st);
}

/* gw_plan_default_author: a write without an Author header is stored as
 * written by the gateway, as it was before the call's client name became
 * the peer ("http:<address>"): updated_by is shown to every reader, and
 * a client's address is not theirs to see. */
static void
gw_plan_default_author(char **author)
{
	if ((*author)[0] == '\0') {
		*author = (char *) GW_DEFAULT_AUTHOR;
	}
}

static int
gw_plan_put(const gw_core *core, const gw_request *req, const gw_target *t,
    gw_plan *p, nrpc_status *st)
{
	Datasync__V1__UpdateRequest init = DATASYNC__V1__UPDATE_REQUEST__INIT;
	Datasync__V1__UpdateRequest *u = &p->m.update;
	int http;

	*u = init;
	if ((http = gw_plan_key(p, t, &u->key, st)) != 0 ||
	    (http = gw_precond_parse(gw_request_header(req, "If-Match"),
	         gw_request_header(req, "If-None-Match"), &p->pc, st)) != 0 ||
	    (http = gw_plan_header(
	         p, req, "Content-Type", false, &u->content_type, st)) != 0 ||
	    (http = gw_plan_header(
	         p, req, "Lock-Token", false, &u->lock_token, st)) != 0 ||
	    (http = gw_plan_header(
	         p, req, "Idempotency-Key", false, &u->request_id, st)) != 0 ||
	    (http = gw_plan_header(p, req, "Author", true, &u->author, st)) !=
	        0) {
		return http;
	}
	p->http_precondition = p->pc.kind != GW_PRECOND_NONE;
	gw_plan_default_author(&u->author);
	u->value.data = (uint8_t *) req->body;
	u->value.len = req->body != NULL ? req->body_len : 0;
	u->precondition = &p->precond;
	return gw_plan_precondition(
	    core, p, GW_OP_UPDATE, &u->base, u->key, st);
}

static int
gw_plan_delete(const gw_core *core, const gw_request *req, const gw_target *t,
    gw_plan *p, nrpc_status *st)
{
	Datasync__V1__DeleteRequest init = DATASYNC__V1__DELETE_REQUEST__INIT;
	Datasync__V1__DeleteRequest *d = &p->m.del;
	int http;

	*d = init;
	if ((http = gw_plan_key(p, t, &d->key, st)) != 0 ||
	    (http = gw_precond_parse(gw_request_header(req, "If-Match"),
	         gw_request_header(req, "If-None-Match"), &p->pc, st)) != 0 ||
	    (http = gw_plan_header(
	         p, req, "Lock-Token", false, &d->lock_token, st)) != 0 ||
	    (http = gw_plan_header(
	         p, req, "Idempotency-Key", false, &d->request_id, st)) != 0 ||
	    (http = gw_plan_header(p, req, "Author", true, &d->author, st)) !=
	        0) {
		return http;
	}
	p->http_precondition = p->pc.kind != GW_PRECOND_NONE;
	gw_plan_default_author(&d->author);
	d->precondition = &p->precond;
	return gw_plan_precondition(
	    core, p, GW_OP_DELETE, &d->base, d->key, st);
}

/* gw_plan_body decodes a JSON body of type d into p->decoded (kept for
 * p's lifetime); an empty body is "{}". Returns 0, or -1 with p->resp
 * finished. */
static int
gw_plan_body(const gw_core *core, const gw_request *req,
    const ProtobufCMessageDescriptor *d, gw_plan *p)
{
	pbjson_error perr;
	pbjson_err e;
	const char *text = "{}";
	size_t len = 2;

	if (req->body != NULL && req->body_len > 0) {
		text = (const char *) req->body;
		len = req->body_len;
	}
	if ((e = pbjson_decode(d, text, len, NULL, &p->decoded, &perr)) !=
	    PBJSON_OK) {
		gw_render_pbjson_error(
		    core, &p->resp, e, &perr, "request body");
		p->kind = GW_PLAN_RESPOND;
		return -1;
	}
	return 0;
}

/* gw_plan_one picks the value of a field that may come from a header or
 * from the JSON body: both may be given only when they agree. */
static int
gw_plan_one(const char *header_name, char *from_header, char *from_body,
    const char *field, char **out, nrpc_status *st)
{
	if (from_header[0] != '\0' && from_body[0] != '\0' &&
	    strcmp(from_header, from_body) != 0) {
		return gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", field,
		    "%s header and %s in the body differ", header_name, field);
	}
	*out = from_header[0] != '\0' ? from_header : from_body;
	return 0;
}

static int
gw_plan_lock(const gw_core *core, const gw_request *req, const gw_target *t,
    gw_plan *p, nrpc_status *st)
{
	Datasync__V1__LockRequest init = DATASYNC__V1__LOCK_REQUEST__INIT;
	Datasync__V1__LockRequest *l = &p->m.lock;
	const Datasync__V1__LockRequest *in;
	char *token, *rid;
	int http;

	*l = init;
	if ((http = gw_plan_key(p, t, &l->key, st)) != 0 ||
	    (http = gw_plan_header(p, req, "Lock-Token", false, &token, st)) !=
	        0 ||
	    (http = gw_plan_header(
	         p, req, "Idempotency-Key", false, &rid, st)) != 0) {
		return http;
	}
	if (gw_plan_body(
	        core, req, &datasync__v1__lock_request__descriptor, p) != 0) {
		return -1;
	}
	in = (const Datasync__V1__LockRequest *) p->decoded;
	if (in->key[0] != '\0') {
		return gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", "key",
		    "the key comes from the URL path, not the body");
	}
	if ((http = gw_plan_one("Lock-Token", token, in->lock_token,
	         "lockToken", &l->lock_token, st)) != 0 ||
	    (http = gw_plan_one("Idempotency-Key", rid, in->request_id,
	         "requestId", &l->request_id, st)) != 0) {
		return http;
	}
	if (in->wait_ms > GW_LOCK_WAIT_MS_MAX) {
		return gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", "waitMs",
		    "waitMs exceeds max_lock_wait_ms (%d)",
		    GW_LOCK_WAIT_MS_MAX);
	}
	l->owner = in->owner;
	l->ttl_ms = in->ttl_ms;
	l->wait_ms = in->wait_ms;
	p->wait_ms = in->wait_ms;
	return gw_plan_call(core, p, GW_OP_LOCK, &l->base, st);
}

static int
gw_plan_unlock(const gw_core *core, const gw_request *req, const gw_target *t,
    gw_plan *p, nrpc_status *st)
{
	Datasync__V1__UnlockRequest init = DATASYNC__V1__UNLOCK_REQUEST__INIT;
	Datasync__V1__UnlockRequest *u = &p->m.unlock;
	const Datasync__V1__UnlockRequest *in;
	char *token, *rid;
	int http;

	*u = init;
	if ((http = gw_plan_key(p, t, &u->key, st)) != 0 ||
	    (http = gw_plan_header(p, req, "Lock-Token", false, &token, st)) !=
	        0 ||
	    (http = gw_plan_header(
	         p, req, "Idempotency-Key", false, &rid, st)) != 0) {
		return http;
	}
	if (gw_plan_body(core, req, &datasync__v1__unlock_request__descriptor,
	        p) != 0) {
		return -1;
	}
	in = (const Datasync__V1__UnlockRequest *) p->decoded;
	if (in->key[0] != '\0') {
		return gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", "key",
		    "the key comes from the URL path, not the body");
	}
	if ((http = gw_plan_one("Lock-Token", token, in->lock_token,
	         "lockToken", &u->lock_token, st)) != 0 ||
	    (http = gw_plan_one("Idempotency-Key", rid, in->request_id,
	         "requestId", &u->request_id, st)) != 0) {
		return http;
	}
	if (u->lock_token[0] == '\0') {
		return gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", "lockToken",
		    "unlock needs the token: a Lock-Token header or "
		    "{\"lockToken\": \"...\"} in the body");
	}
	return gw_plan_call(core, p, GW_OP_UNLOCK, &u->base, st);
}

static int
gw_plan_list(
    const gw_core *core, const gw_target *t, gw_plan *p, nrpc_status *st)
{
	Datasync__V1__ListRequest init = DATASYNC__V1__LIST_REQUEST__INIT;
	Datasync__V1__ListRequest *l = &p->m.list;
	gw_query q;
	char *prefix = NULL, *size = NULL, *token = NULL;
	uint64_t n = 0;
	int http;

	*l = init;
	if ((http = gw_query_parse(t->query, t->query_len, &q, st)) != 0) {
		return http;
	}
	if ((http = gw_query_get(&q, "prefix", NULL, &prefix, st)) != 0) {
		return http;
	}
	if (prefix != NULL && !gw_plan_keep(p, prefix)) {
		return gw_status_set(st, 500, NRPC_INTERNAL, "INTERNAL", NULL,
		    "too many strings");
	}
	if ((http = gw_query_get(&q, "pageToken", "page_token", &token, st)) !=
	    0) {
		return http;
	}
	if (token != NULL && !gw_plan_keep(p, token)) {
		return gw_status_set(st, 500, NRPC_INTERNAL, "INTERNAL", NULL,
		    "too many strings");
	}
	if ((http = gw_query_get(&q, "pageSize", "page_size", &size, st)) !=
	    0) {
		return http;
	}
	if (size != NULL &&
	    (!gw_parse_u64(size, strlen(size), &n) || n > UINT32_MAX)) {
		ds_free(size);
		return gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", "pageSize",
		    "pageSize must be a decimal number (0 = the server's "
		    "default)");
	}
	ds_free(size);
	if (prefix != NULL) {
		l->prefix = prefix;
	}
	if (token != NULL) {
		l->page_token = token;
	}
	l->page_size = (uint32_t) n;
	return gw_plan_call(core, p, GW_OP_LIST, &l->base, st);
}

/* gw_plan_rpc_wait: a Watch or a Lock with wait_ms sent to /rpc/ waits
 * in the service as the REST routes' do, and needs the same deadline.
 * The service refuses waits over its caps; the deadline stays bounded
 * by them meanwhile. */
static void
gw_plan_rpc_wait(const gw_core *core, gw_plan *p)
{
	uint32_t w = 0;

	if (p->rpc == NULL) {
		return;
	}
	if (p->rpc == core->ops[GW_OP_WATCH]) {
		w = ((const Datasync__V1__WatchRequest *) p->req)->timeout_ms;
		if (w == 0) {
			w = GW_WATCH_TIMEOUT_MS_DEFAULT; /* the service's */
		}
		if (w > GW_WATCH_TIMEOUT_MS_MAX) {
			w = GW_WATCH_TIMEOUT_MS_MAX;
		}
	} else if (p->rpc == core->ops[GW_OP_LOCK]) {
		w = ((const Datasync__V1__LockRequest *) p->req)->wait_ms;
		if (w > GW_LOCK_WAIT_MS_MAX) {
			w = GW_LOCK_WAIT_MS_MAX;
		}
	}
	p->wait_ms = w;
}

int64_t
gw_wait_deadline_ms(uint32_t wait_ms, int64_t rpc_timeout_ms)
{
	int64_t d;

	if (wait_ms == 0) {
		return rpc_timeout_ms;
	}
	d = (int64_t) wait_ms + GW_WAIT_DEADLINE_MARGIN_MS;
	return d > rpc_timeout_ms ? d : rpc_timeout_ms;
}

int64_t
gw_plan_deadline_ms(const gw_plan *p, int64_t rpc_timeout_ms)
{
	return gw_wait_deadline_ms(p->wait_ms, rpc_timeout_ms);
}

/* gw_plan_watch: GET /v1/watch (a long poll: one Watch) and GET
 * /v1/events (a stream: its first Watch waits GW_SSE_PROBE_WAIT_MS, so
 * a compacted cursor is a 410 before the stream opens). */
static int
gw_plan_watch(const gw_core *core, const gw_request *req, const gw_target *t,
    gw_plan *p, nrpc_status *st)
{
	Datasync__V1__WatchRequest init = DATASYNC__V1__WATCH_REQUEST__INIT;
	Datasync__V1__WatchRequest *w = &p->m.watch;
	bool stream = t->route == GW_ROUTE_EVENTS;
	gw_watch_args a;
	int http;

	*w = init;
	if ((http = gw_watch_args_parse(t->query, t->query_len,
	         stream ? gw_request_header(req, "Last-Event-ID") : NULL,
	         stream, &a, st)) != 0) {
		return http;
	}
	if (a.key != NULL) {
		if (!gw_plan_keep(p, a.key)) {
			a.key = NULL;
			gw_watch_args_fini(&a);
			return gw_status_set(st, 500, NRPC_INTERNAL, "INTERNAL",
			    NULL, "too many strings");
		}
		w->key = a.key;
		a.key = NULL;
	}
	if (a.prefix != NULL) {
		if (!gw_plan_keep(p, a.prefix)) {
			a.prefix = NULL;
			gw_watch_args_fini(&a);
			return gw_status_set(st, 500, NRPC_INTERNAL, "INTERNAL",
			    NULL, "too many strings");
		}
		w->prefix = a.prefix;
		a.prefix = NULL;
	}
	w->after_revision = a.after;
	w->from_now = a.from_now;
	w->limit = a.limit;
	w->with_values = a.with_values;
	w->timeout_ms = stream ? GW_SSE_PROBE_WAIT_MS : a.timeout_ms;
	p->wait_ms = w->timeout_ms;
	p->stream = stream;
	gw_watch_args_fini(&a);
	return gw_plan_call(core, p, GW_OP_WATCH, &w->base, st);
}

static int
gw_plan_rpc(const gw_core *core, const gw_request *req, const gw_target *t,
    gw_plan *p, nrpc_status *st)
{
	const nrpc_method *m = gw_find_method(core, t->rpc, t->rpc_len);
	const char *rid = gw_request_header(req, "Idempotency-Key");

	p->op = GW_OP_RPC;
	if (m == NULL) {
		return gw_status_set(st, 404, NRPC_UNIMPLEMENTED,
		    "UNKNOWN_METHOD", NULL,
		    "no method %.*s: use /rpc/{package.Service}/{Method}",
		    t->rpc_len > 128 ? 128 : (int) t->rpc_len, t->rpc);
	}
	if (rid != NULL) {
		if (strnlen(rid, GW_MAX_HEADER_VALUE_BYTES + 1) >
		    GW_MAX_HEADER_VALUE_BYTES) {
			return gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
			    "TOO_LARGE", "Idempotency-Key",
			    "Idempotency-Key exceeds max_header_value_bytes "
			    "(%d)",
			    GW_MAX_HEADER_VALUE_BYTES);
		}
		if ((p->call_request_id = ds_strdup(rid)) == NULL) {
			return gw_status_set(st, 500, NRPC_RESOURCE_EXHAUSTED,
			    "RESOURCE_EXHAUSTED", NULL, "out of memory");
		}
	}
	if (gw_plan_body(core, req, m->input, p) != 0) {
		return -1;
	}
	p->rpc = m;
	p->req = p->decoded;
	p->kind = GW_PLAN_RPC;
	gw_plan_rpc_wait(core, p);
	return 0;
}

static int
gw_plan_metrics(const gw_core *core, gw_plan *p, nrpc_status *st)
{
	ds_buf b;
	uint8_t *text;
	size_t len;

	if (core->metrics == NULL) {
		return gw_status_set(st, 404, NRPC_NOT_FOUND, "NOT_FOUND",
		    NULL, "metrics are not collected");
	}
	ds_buf_init(&b, 4 * 1024 * 1024);
	if (gw_metrics_render(core->metrics, &b) != DS_OK) {
		ds_buf_fini(&b);
		return gw_status_set(st, 500, NRPC_RESOURCE_EXHAUSTED,
		    "RESOURCE_EXHAUSTED", NULL, "out of memory");
	}
	text = ds_buf_take(&b, &len);
	gw_response_reset(&p->resp, 200);
	gw_response_header(&p->resp, "Content-Type",
	    "text/plain; version=0.0.4; charset=utf-8");
	gw_response_header(&p->resp, "Cache-Control", "no-store");
	gw_response_body_take(&p->resp, text, len);
	p->kind = GW_PLAN_RESPOND;
	return 0;
}

/* gw_plan_route dispatches on the route; a non-zero return is an HTTP
 * status with st filled (-1: p->resp is already finished). */
static int
gw_plan_route(const gw_core *core, const gw_request *req, const gw_target *t,
    gw_plan *p, nrpc_status *st)
{
	switch (t->route) {
	case GW_ROUTE_RECORD:
		switch (p->method) {
		case GW_M_GET:
		case GW_M_HEAD:
			return gw_plan_get(core, req, t, p, st);
		case GW_M_PUT:
			return gw_plan_put(core, req, t, p, st);
		default:
			return gw_plan_delete(core, req, t, p, st);
		}
	case GW_ROUTE_LOCK:
		if (p->method == GW_M_POST) {
			return gw_plan_lock(core, req, t, p, st);
		}
		return gw_plan_unlock(core, req, t, p, st);
	case GW_ROUTE_UNLOCK:
		return gw_plan_unlock(core, req, t, p, st);
	case GW_ROUTE_LIST:
		return gw_plan_list(core, t, p, st);
	case GW_ROUTE_RPC:
		return gw_plan_rpc(core, req, t, p, st);
	case GW_ROUTE_HEALTHZ:
		gw_response_text(
		    &p->resp, 200, "text/plain; charset=utf-8", "ok\n");
		gw_response_header(&p->resp, "Cache-Control", "no-store");
		p->kind = GW_PLAN_RESPOND;
		return 0;
	case GW_ROUTE_METRICS:
		return gw_plan_metrics(core, p, st);
	case GW_ROUTE_WATCH:
	case GW_ROUTE_EVENTS:
		return gw_plan_watch(core, req, t, p, st);
	case GW_ROUTE_SESSION:
		return gw_auth_session_plan(core, req, p, st);
	case GW_ROUTE_STATIC: {
		int http = gw_static_sanitize(
		    t->path, t->path_len, &p->static_rel, st);

		if (http == 0) {
			p->kind = GW_PLAN_STATIC;
		}
		return http;
	}
	case GW_ROUTE_OTHER:
	case GW_ROUTE_COUNT:
		break;
	}
	return gw_status_set(st, 404, NRPC_NOT_FOUND, "NOT_FOUND", NULL,
	    "no such route: %.*s", t->path_len > 128 ? 128 : (int) t->path_len,
	    t->path);
}

/* gw_plan_start sets what every plan knows before routing. */
static void
gw_plan_start(const gw_core *core, const gw_request *req, gw_plan *p)
{
	const char *origin = gw_request_header(req, "Origin");

	p->kind = GW_PLAN_RESPOND;
	p->method = gw_method_parse(req->method);
	p->head = p->method == GW_M_HEAD;
	p->cors = gw_cors_check(core, origin);
	if (p->cors == GW_CORS_ALLOWED && p->origin == NULL &&
	    (p->origin = ds_strdup(origin)) == NULL) {
		p->resp.broken = true; /* sealed into a 500 */
	}
}

/* gw_plan_caller sets p->caller from the peer: the scope in which the
 * service remembers Idempotency-Keys. Returns 0, or 500 out of memory. */
static int
gw_plan_caller(const gw_request *req, gw_plan *p, nrpc_status *st)
{
	static const char prefix[] = "http:";
	size_t n;

	if (req->peer == NULL) {
		return 0;
	}
	n = strnlen(req->peer, GW_MAX_PEER_BYTES + 1);
	if (DS_NEVER(n > GW_MAX_PEER_BYTES)) {
		return gw_status_set(st, 500, NRPC_INTERNAL, "INTERNAL", NULL,
		    "the peer address exceeds max_peer_bytes (%d)",
		    GW_MAX_PEER_BYTES);
	}
	if ((p->caller = ds_alloc(sizeof(prefix) + n)) == NULL) {
		return gw_status_set(st, 500, NRPC_RESOURCE_EXHAUSTED,
		    "RESOURCE_EXHAUSTED", NULL, "out of memory");
	}
	memcpy(p->caller, prefix, sizeof(prefix) - 1);
	memcpy(p->caller + sizeof(prefix) - 1, req->peer, n);
	p->caller[sizeof(prefix) - 1 + n] = '\0';
	return 0;
}

/* gw_plan_auth takes the request's credential (gw_auth.c) for the call
 * and its peer for the limiter. Returns 0 or an HTTP status. */
static int
gw_plan_auth(const gw_request *req, gw_plan *p, nrpc_status *st)
{
	gw_cred c;

	if (req->peer != NULL) {
		size_t n = strnlen(req->peer, GW_MAX_PEER_BYTES);

		memcpy(p->peer, req->peer, n);
		p->peer[n] = '\0';
	}
	gw_auth_cred(req, &c);
	p->cred_from = c.from;
	return gw_auth_metadata(&c, &p->authorization, st);
}

/* gw_plan_auth_limit: a peer over the failure limit gets 429 before any
 * call is made for it. */
static void
gw_plan_auth_limit(const gw_core *core, gw_plan *p)
{
	int64_t retry_ms;
	nrpc_status st;

	if (p->kind != GW_PLAN_RPC || !gw_auth_blocked(core, p, &retry_ms)) {
		return;
	}
	memset(&st, 0, sizeof(st));
	(void) gw_status_set(&st, 429, NRPC_RESOURCE_EXHAUSTED,
	    "TOO_MANY_AUTH_FAILURES", "authorization",
	    "%d failed authentications from this address within %d s: "
	    "refused for %d s",
	    AUTH_LIMIT_FAILURES, AUTH_LIMIT_WINDOW_MS / 1000,
	    AUTH_LIMIT_BLOCK_MS / 1000);
	st.retry_after_ms = retry_ms > 0 && retry_ms < UINT32_MAX
	                        ? (uint32_t) retry_ms
	                        : 1000;
	p->read_current = false;
	gw_plan_error(core, p, 429, &st);
	nrpc_status_fini(&st);
}

void
gw_plan_make(const gw_core *core, const gw_request *req, gw_plan *p)
{
	gw_target t;
	nrpc_status st;
	int http;

	memset(&st, 0, sizeof(st));
	gw_plan_start(core, req, p);
	if ((http = gw_plan_caller(req, p, &st)) != 0) {
		p->route = GW_ROUTE_OTHER;
		gw_plan_error(core, p, http, &st);
		goto out;
	}
	if ((http = gw_target_parse(req->uri, &t, &st)) != 0) {
		p->route = GW_ROUTE_OTHER;
		gw_plan_error(core, p, http, &st);
		goto out;
	}
	p->route = t.route;
	if ((http = gw_guard_check(core, req, t.route, &st)) != 0) {
		gw_plan_error(core, p, http, &st);
		goto out;
	}
	if (p->method == GW_M_OPTIONS) {
		gw_cors_options(core, req, t.route, &p->resp);
		goto out;
	}
	if (t.route == GW_ROUTE_OTHER) {
		http = gw_status_set(&st, 404, NRPC_NOT_FOUND, "NOT_FOUND",
		    NULL, "no such route: %.*s",
		    t.path_len > 128 ? 128 : (int) t.path_len, t.path);
		gw_plan_error(core, p, http, &st);
		goto out;
	}
	if (!gw_route_allows(t.route, p->method)) {
		http = gw_status_set(&st, 405, NRPC_UNIMPLEMENTED,
		    "METHOD_NOT_ALLOWED", NULL,
		    "%s is not allowed here; allowed: "
		    "%s",
		    p->method == GW_M_OTHER ? "this method"
		                            : gw_method_name(p->method),
		    gw_route_allow(t.route));
		gw_plan_error(core, p, http, &st);
		gw_response_header(&p->resp, "Allow", gw_route_allow(t.route));
		goto out;
	}
	if ((http = gw_plan_auth(req, p, &st)) != 0) {
		gw_plan_error(core, p, http, &st);
		goto out;
	}
	if ((http = gw_plan_route(core, req, &t, p, &st)) > 0) {
		gw_plan_error(core, p, http, &st);
	}
	gw_plan_auth_limit(core, p);
out:
	if (p->kind == GW_PLAN_RESPOND) {
		gw_plan_decorate(core, p);
	}
	nrpc_status_fini(&st);
}

bool
gw_plan_precheck(
    const gw_core *core, const gw_request *req, size_t *body_len, gw_plan *p)
{
	gw_target t;
	nrpc_status st;
	const char *limit_name;
	size_t limit;
	int http;

	memset(&st, 0, sizeof(st));
	if (gw_target_parse(req->uri, &t, &st) != 0) {
		t.route = GW_ROUTE_OTHER; /* gw_plan_make reports it */
	}
	nrpc_status_fini(&st);
	limit = gw_body_limit(core, t.route, &limit_name);
	/* Refused before a body byte is read: nothing runs for it. */
	if ((http = gw_guard_check(core, req, t.route, &st)) == 0 &&
	    (http = gw_body_check(gw_request_header(req, "Content-Length"),
	         gw_request_header(req, "Transfer-Encoding"), limit,
	         limit_name, body_len, &st)) == 0) {
		return true;
	}
	gw_plan_start(core, req, p);
	p->route = t.route;
	p->resp.close = true;
	gw_plan_error(core, p, http, &st);
	gw_plan_decorate(core, p);
	nrpc_status_fini(&st);
	return false;
}

void
gw_plan_request(const gw_core *core, const gw_request *req, gw_plan *p)
{
	gw_request r = *req;
	size_t n = 0;

	if (!gw_plan_precheck(core, req, &n, p)) {
		return;
	}
	if (gw_request_header(req, "Content-Length") != NULL &&
	    n < r.body_len) {
		r.body_len = n;
	}
	gw_plan_make(core, &r, p);
}

/* --- after the call --- */

static void
gw_plan_conflict(
    const gw_core *core, gw_plan *p, const Datasync__V1__Record *current)
{
	nrpc_status st;

	memset(&st, 0, sizeof(st));
	if (current != NULL) {
		(void) gw_status_set(&st, 412, NRPC_ABORTED,
		    "VERSION_CONFLICT", NULL,
		    "If-Match: no entity-tag matches the current version "
		    "%" PRIu64 " strongly",
		    current->version);
	} else {
		(void) gw_status_set(&st, 412, NRPC_ABORTED,
		    "VERSION_CONFLICT", NULL,
		    "If-Match: the record does not exist");
	}
	gw_render_error(
	    core, &p->resp, 412, &st, current != NULL ? &current->base : NULL);
	nrpc_status_fini(&st);
}

/* gw_plan_after_current: the Get of an If-Match list without a tag that
 * can match came back: whatever is there, the answer is 412 with it. */
static void
gw_plan_after_current(const gw_core *core, gw_plan *p,
    const ProtobufCMessage *resp, const nrpc_status *st)
{
	const Datasync__V1__Record *rec = NULL;

	p->read_current = false;
	if (st->code == NRPC_NOT_FOUND) {
		gw_plan_conflict(core, p, NULL);
		return;
	}
	if (st->code != NRPC_OK || resp == NULL) {
		gw_render_error(
		    core, &p->resp, gw_http_status(st, true), st, NULL);
		return;
	}
	/* No assertion on rec->version: the reply is the service's input to
	 * us, and a list whose only strong tag is "0" (never a version) does
	 * match a reply claiming version 0 (found by fuzz_http). 412 either
	 * way: the list held no version a write could have matched. */
	rec = ((const Datasync__V1__GetResponse *) resp)->record;
	gw_plan_conflict(core, p, rec);
}

/* gw_plan_content_type: what a GET answers with; stored text that could
 * not be a header value becomes octet-stream. */
static const char *
gw_plan_content_type(const char *ct)
{
	if (ct == NULL || ct[0] == '\0') {
		return "application/octet-stream";
	}
	for (const char *c = ct; *c != '\0'; c++) {
		if ((unsigned char) *c < 0x20 || (unsigned char) *c >= 0x7f) {
			return "application/octet-stream";
		}
	}
	return ct;
}

/* gw_plan_bad_reply: the upstream answered OK with a reply we cannot
 * use; that is its fault, hence 502. */
static void
gw_plan_bad_reply(const gw_core *core, gw_plan *p, const char *what)
{
	nrpc_status st;

	memset(&st, 0, sizeof(st));
	gw_render_error(core, &p->resp,
	    gw_status_set(&st, 502, NRPC_INTERNAL, "INTERNAL", NULL,
	        "the service answered %s without a record", what),
	    &st, NULL);
	nrpc_status_fini(&st);
}

static void
gw_plan_render_get(
    const gw_core *core, gw_plan *p, const Datasync__V1__GetResponse *g)
{
	const Datasync__V1__Record *rec = g->record;
	gw_response *r = &p->resp;

	if (rec == NULL) {
		gw_plan_bad_reply(core, p, "Get");
		return;
	}
	if (p->has_inm && gw_etags_match_weak(&p->inm, rec->version)) {
		gw_response_reset(r, 304);
	} else {
		gw_response_reset(r, 200);
		gw_response_header(r, "Content-Type",
		    gw_plan_content_type(rec->content_type));
		/* The value is user data served from the demo page's origin:
		 * never sniffed, never run as that origin's script. */
		gw_response_header(r, "X-Content-Type-Options", "nosniff");
		gw_response_header(r, "Content-Security-Policy", "sandbox");
		gw_response_body_borrow(r, rec->value.data, rec->value.len);
	}
	gw_render_record_headers(r, rec, true);
	gw_response_header(r, "Cache-Control", "no-cache");
}

static void
gw_plan_render_update(
    const gw_core *core, gw_plan *p, const Datasync__V1__UpdateResponse *u)
{
	Datasync__V1__Record view;

	if (u->record == NULL) {
		gw_plan_bad_reply(core, p, "Update");
		return;
	}
	/* The answer describes the record; the client has the value. */
	view = *u->record;
	view.value.data = NULL;
	view.value.len = 0;
	gw_render_json(&p->resp,
	    p->pc.kind == GW_PRECOND_IF_ABSENT ? 201 : 200, &view.base);
	if (p->resp.status < 300) {
		gw_render_record_headers(&p->resp, u->record, true);
	}
}

static void
gw_plan_render_lock(gw_plan *p, const Datasync__V1__LockResponse *l, bool json)
{
	if (json) {
		gw_render_json(&p->resp, 200, &l->base);
	}
	if (p->resp.status != 200) {
		return;
	}
	p->resp.events |=
	    l->renewed ? GW_EV_LOCK_RENEWED : GW_EV_LOCK_ACQUIRED;
	if (!json) {
		return; /* /rpc/: the token is in the body already */
	}
	gw_response_header(&p->resp, "Lock-Token", l->lock_token);
	if (l->lock != NULL) {
		gw_render_lock_headers(&p->resp, l->lock);
	}
	/* The body holds a secret: no cache may keep it. */
	gw_response_header(&p->resp, "Cache-Control", "no-store");
}

/* gw_plan_stream_open: the first Watch of an event stream came back
 * OK: the answer is the stream's 200, its first bytes the opening and
 * whatever events that Watch found. */
static void
gw_plan_stream_open(const gw_core *core, gw_plan *p,
    const ProtobufCMessage *resp, const nrpc_status *st)
{
	ds_buf b;
	uint64_t after = p->m.watch.after_revision;
	uint8_t *body;
	size_t len;

	ds_buf_init(&b, GW_SSE_MAX_PENDING_BYTES);
	if (gw_sse_open(&b) != DS_OK ||
	    gw_sse_step(core, &b, resp, st, &after) != GW_SSE_MORE) {
		nrpc_status e;

		ds_buf_fini(&b);
		memset(&e, 0, sizeof(e));
		(void) gw_status_set(&e, 500, NRPC_INTERNAL, "INTERNAL", NULL,
		    "cannot frame the first events of the stream");
		gw_render_error(core, &p->resp, 500, &e, NULL);
		nrpc_status_fini(&e);
		p->kind = GW_PLAN_RESPOND;
		gw_plan_decorate(core, p);
		return;
	}
	body = ds_buf_take(&b, &len);
	gw_response_reset(&p->resp, 200);
	gw_response_header(
	    &p->resp, "Content-Type", "text/event-stream; charset=utf-8");
	gw_response_header(&p->resp, "Cache-Control", "no-cache");
	/* nginx buffers proxied responses unless told not to. */
	gw_response_header(&p->resp, "X-Accel-Buffering", "no");
	gw_response_body_take(&p->resp, body, len);
	p->stream_after = after;
	p->kind = GW_PLAN_STREAM;
	gw_plan_decorate(core, p);
}

gw_plan_kind
gw_plan_step(const gw_core *core, gw_plan *p, const ProtobufCMessage *resp,
    const nrpc_status *st)
{
	gw_auth_outcome(core, p, st);
	if (p->read_current) {
		gw_plan_after_current(core, p, resp, st);
	} else if (st->code != NRPC_OK || resp == NULL) {
		gw_render_error(core, &p->resp,
		    gw_http_status(st, p->http_precondition), st, NULL);
	} else {
		switch (p->op) {
		case GW_OP_GET:
			gw_plan_render_get(
			    core, p, (const Datasync__V1__GetResponse *) resp);
			break;
		case GW_OP_UPDATE:
			gw_plan_render_update(core, p,
			    (const Datasync__V1__UpdateResponse *) resp);
			break;
		case GW_OP_DELETE: {
			const Datasync__V1__DeleteResponse *d =
			    (const Datasync__V1__DeleteResponse *) resp;

			gw_response_reset(&p->resp, 204);
			gw_response_headerf(
			    &p->resp, "ETag", "\"%" PRIu64 "\"", d->version);
			gw_response_headerf(&p->resp, "Record-Revision",
			    "%" PRIu64, d->revision);
			break;
		}
		case GW_OP_LOCK:
			gw_plan_render_lock(p,
			    (const Datasync__V1__LockResponse *) resp, true);
			break;
		case GW_OP_UNLOCK:
			gw_response_reset(&p->resp, 204);
			break;
		case GW_OP_WATCH:
			if (p->stream) {
				gw_plan_stream_open(core, p, resp, st);
				return p->kind;
			}
			gw_render_json(&p->resp, 200, resp);
			/* Events are news: no cache may answer a later poll. */
			gw_response_header(&p->resp, "Cache-Control", "no-store");
			break;
		case GW_OP_WHOAMI:
			gw_auth_session_render(core, p,
			    (const Datasync__V1__WhoAmIResponse *) resp);
			break;
		case GW_OP_LIST:
		case GW_OP_RPC:
			gw_render_json(&p->resp, 200, resp);
			if (p->op == GW_OP_RPC &&
			    p->rpc == core->ops[GW_OP_LOCK] &&
			    p->rpc != NULL) {
				gw_plan_render_lock(p,
				    (const Datasync__V1__LockResponse *) resp,
				    false);
			}
			break;
		}
	}
	p->kind = GW_PLAN_RESPOND;
	gw_plan_decorate(core, p);
	return GW_PLAN_RESPOND;
}

void
gw_plan_fail(const gw_core *core, gw_plan *p, const nrpc_status *st)
{
	gw_render_error(core, &p->resp, gw_http_status(st, false), st, NULL);
	p->kind = GW_PLAN_RESPOND;
	p->read_current = false;
	gw_plan_decorate(core, p);
}
