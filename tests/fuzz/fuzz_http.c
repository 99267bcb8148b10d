/*
 * fuzz_http.c - bytes -> an HTTP request (method, request-target with
 * path and query, headers, body) -> the gateway's parsing and routing
 * (gw_plan_request) -> a fake RPC outcome -> gw_plan_step -> the
 * response, without sockets. Static files are served from a temporary
 * web root. Checked on every response:
 *
 *   - the plan ends in a response with a status in 100..599;
 *   - no header value holds a control character (no CR LF injection);
 *   - an error body, and the JSON of the lock, list and /rpc/ routes,
 *     is valid JSON;
 *   - 204 and 304 have no body; 423, 429 and 503 carry Retry-After;
 *   - an event stream (GET /v1/events) is 200 text/event-stream, and its
 *     bytes, and those gw_sse_step frames for three more fake Watch
 *     outcomes, are well-formed SSE: every line a field we send (retry,
 *     id, event, data) or a comment, every data line one JSON value;
 *   - a 401 carries WWW-Authenticate;
 *   - a secret-like credential ("dst_..." of the secret alphabet) of
 *     Authorization or the ds_session cookie, when the input holds it
 *     only once, never shows in the response's body or a
 *     header other than Set-Cookie (a sign-in's cookie is the one place
 *     a secret may go back).
 *
 * Input layout: byte 0 picks the fake RPC outcome of each step (a status
 * from a table of the ones the service gives, with the reply bytes as
 * the response message or as the status detail); byte 1 holds flags
 * (bit 0: CORS origin https://app.example; bit 1: CORS "*"; bit 2: a
 * 16-byte max_value_bytes; bit 3: no metrics; bit 4: the first RPC fails
 * to start, gw_plan_fail; bit 5: the failure limiter, the peer one of
 * four addresses picked by byte 0; bit 6: HTTPS, Secure cookies); byte 2
 * is the length of the reply bytes that
 * follow; then the request as text: "METHOD TARGET\r\n", header lines
 * "Name: value\r\n", an empty line, the body. FUZZ_VERBOSE=1 prints
 * every response's status, headers and the start of its body.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

#include "auth.h"
#include "datasync/v1/datasync.nrpc.h"
#include "ds_alloc.h"
#include "gw_int.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fz_root[256];
static char fz_root_real[4096];
static gw_metrics fz_metrics;
static auth_limiter *fz_limiter;
/* The input being run, for fz_check's secret check (fz_check runs
 * while a response may still borrow from the fake reply). */
static const gw_request *fz_cur_req;
static const uint8_t *fz_cur_data;
static size_t fz_cur_size;
static int fz_verbose;

static void
fz_cleanup(void)
{
	char path[512];

	(void) snprintf(path, sizeof(path), "%s/index.html", fz_root);
	(void) unlink(path);
	(void) snprintf(path, sizeof(path), "%s/app.js", fz_root);
	(void) unlink(path);
	(void) rmdir(fz_root);
	auth_limiter_free(fz_limiter);
	fz_limiter = NULL;
}

static void
fz_write(const char *name, const char *text)
{
	char path[512];
	FILE *f;

	(void) snprintf(path, sizeof(path), "%s/%s", fz_root, name);
	if ((f = fopen(path, "w")) == NULL) {
		abort();
	}
	fputs(text, f);
	fclose(f);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");

	(void) argc;
	(void) argv;
	fz_verbose = getenv("FUZZ_VERBOSE") != NULL;
	(void) snprintf(fz_root, sizeof(fz_root), "%s/fuzz_http.XXXXXX",
	    tmp != NULL ? tmp : "/tmp");
	if (mkdtemp(fz_root) == NULL || realpath(fz_root, fz_root_real) == NULL) {
		abort();
	}
	fz_write("index.html", "<!doctype html><title>x</title>\n");
	fz_write("app.js", "export const x = 1;\n");
	atexit(fz_cleanup);
	gw_metrics_init(&fz_metrics);
	/* One for the whole run: a peer's failures add up across inputs as
	 * they do across requests. */
	if ((fz_limiter = auth_limiter_new(NULL)) == NULL) {
		abort();
	}
	return 0;
}

/* --- fake outcomes --- */

typedef struct fz_outcome {
	nrpc_code code;
	const char *reason;
	const char *field;
	bool detail; /* the reply bytes become the detail */
} fz_outcome;

static const fz_outcome fz_outcomes[] = {
    {NRPC_OK, "", NULL, false},
    {NRPC_OK, "", NULL, false},
    {NRPC_ABORTED, "VERSION_CONFLICT", NULL, true},
    {NRPC_FAILED_PRECONDITION, "LOCKED", NULL, true},
    {NRPC_NOT_FOUND, "NOT_FOUND", "key", false},
    {NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT", "key", false},
    {NRPC_INVALID_ARGUMENT, "TOO_LARGE", "value", false},
    {NRPC_RESOURCE_EXHAUSTED, "TOO_LARGE", NULL, false},
    {NRPC_RESOURCE_EXHAUSTED, "OVERLOADED", NULL, false},
    {NRPC_UNAVAILABLE, "UNAVAILABLE", NULL, false},
    {NRPC_DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED", NULL, false},
    {NRPC_PERMISSION_DENIED, "LOCK_TOKEN_MISMATCH", "lock_token", false},
    {NRPC_FAILED_PRECONDITION, "NOT_LOCKED", NULL, false},
    {NRPC_FAILED_PRECONDITION, "LOCK_EXPIRED", NULL, true},
    {NRPC_OUT_OF_RANGE, "VERSION_COMPACTED", "version", false},
    {NRPC_FAILED_PRECONDITION, "PRECONDITION_REQUIRED", NULL, false},
    {NRPC_INVALID_ARGUMENT, "REQUEST_ID_REUSED", "request_id", false},
    {NRPC_INTERNAL, "MALFORMED_REPLY", NULL, false},
    {NRPC_UNIMPLEMENTED, "UNIMPLEMENTED", NULL, false},
    {NRPC_CANCELLED, "CANCELLED", NULL, false},
    {NRPC_UNAUTHENTICATED, "UNAUTHENTICATED", NULL, false},
    {NRPC_UNKNOWN, "\xff\xfe not utf-8", NULL, true},
    {NRPC_OUT_OF_RANGE, "REVISION_COMPACTED", "after_revision", true},
    {NRPC_UNAUTHENTICATED, "TOKEN_MISSING", "authorization", false},
    {NRPC_UNAUTHENTICATED, "TOKEN_UNKNOWN", "authorization", false},
    {NRPC_UNAUTHENTICATED, "TOKEN_REVOKED", "authorization", false},
    {NRPC_PERMISSION_DENIED, "PERMISSION_DENIED", "key", false},
    {NRPC_RESOURCE_EXHAUSTED, "TOO_MANY_AUTH_FAILURES", "authorization",
        false},
};
#define FZ_N_OUTCOMES (sizeof(fz_outcomes) / sizeof(fz_outcomes[0]))

static const char *const fz_detail_types[] = {
    "datasync.v1.Record",
    "datasync.v1.Record",
    "datasync.v1.LockInfo",
    "datasync.v1.GetResponse",
    "nrpc.v1.Status",
    "no.such.Type",
    "datasync.v1.WatchResponse",
};

/* --- checks --- */

static void
fz_fail(const char *what, const gw_response *r)
{
	fprintf(stderr, "fuzz_http: %s (status %d)\n", what, r->status);
	abort();
}

/* fz_count: how often needle occurs in s[0..n). */
static size_t
fz_count(const uint8_t *s, size_t n, const char *needle, size_t len)
{
	size_t c = 0;

	for (size_t i = 0; len > 0 && i + len <= n; i++) {
		if (memcmp(s + i, needle, len) == 0) {
			c++;
		}
	}
	return c;
}

/* fz_check_secret: a credential the input holds once (in its header) is
 * not echoed: not in the body, not in a header but Set-Cookie. */
static void
fz_check_secret(const gw_plan *p, const gw_request *req, const uint8_t *data,
    size_t size)
{
	const gw_response *r = &p->resp;
	gw_cred c;

	gw_auth_cred(req, &c);
	/* Only a secret-like value ("dst_" and at least 16 more bytes of the
	 * secret alphabet) is checked: a shorter or wordier one may be text
	 * the gateway writes anyway ("METHOD_NOT_ALLOWED"). */
	if (c.from == GW_CRED_NONE || c.len < 20 ||
	    memcmp(c.value, AUTH_SECRET_PREFIX, 4) != 0 ||
	    fz_count(data, size, c.value, c.len) != 1) {
		return;
	}
	for (size_t i = 0; i < c.len; i++) {
		char ch = c.value[i];

		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
		        (ch >= 'A' && ch <= 'Z') || ch == '_' || ch == '-')) {
			return;
		}
	}
	if (r->body != NULL &&
	    fz_count(r->body, r->body_len, c.value, c.len) > 0) {
		fz_fail("the credential is echoed in the body", r);
	}
	for (size_t i = 0; i < r->n_headers; i++) {
		if (strcmp(r->headers[i].name, "Set-Cookie") != 0 &&
		    fz_count((const uint8_t *) r->headers[i].value,
		        strlen(r->headers[i].value), c.value, c.len) > 0) {
			fz_fail("the credential is echoed in a header", r);
		}
	}
}

static void
fz_check(const gw_plan *p)
{
	const gw_response *r = &p->resp;
	const char *ct = gw_response_get_header(r, "Content-Type");
	bool json_route = p->route == GW_ROUTE_LOCK ||
	                  p->route == GW_ROUTE_LIST || p->route == GW_ROUTE_RPC;

	if (p->kind != GW_PLAN_RESPOND || r->broken) {
		fz_fail("the plan did not end in a response", r);
	}
	if (fz_verbose) {
		fprintf(stderr, "fuzz_http: %s %s -> %d\n",
		    gw_method_name(p->method), gw_route_name(p->route),
		    r->status);
		for (size_t i = 0; i < r->n_headers; i++) {
			fprintf(stderr, "  %s: %s\n", r->headers[i].name,
			    r->headers[i].value);
		}
		fprintf(stderr, "  %.*s\n",
		    (int) (r->body_len > 200 ? 200 : r->body_len),
		    r->body != NULL ? (const char *) r->body : "");
	}
	if (r->status < 100 || r->status > 599) {
		fz_fail("status outside 100..599", r);
	}
	for (size_t i = 0; i < r->n_headers; i++) {
		for (const char *c = r->headers[i].value; *c != '\0'; c++) {
			if ((unsigned char) *c < 0x20 || *c == 0x7f) {
				fprintf(stderr, "fuzz_http: header %s\n",
				    r->headers[i].name);
				fz_fail("a control character in a header", r);
			}
		}
	}
	if ((r->status == 204 || r->status == 304) && r->body_len != 0) {
		fz_fail("a body on 204 or 304", r);
	}
	if ((r->status == 423 || r->status == 429 || r->status == 503) &&
	    gw_response_get_header(r, "Retry-After") == NULL) {
		fz_fail("no Retry-After", r);
	}
	if (r->status == 401 &&
	    gw_response_get_header(r, "WWW-Authenticate") == NULL) {
		fz_fail("a 401 without WWW-Authenticate", r);
	}
	if (fz_cur_req != NULL) {
		fz_check_secret(p, fz_cur_req, fz_cur_data, fz_cur_size);
	}
	if (ct != NULL && strcmp(ct, "application/json") == 0 &&
	    (r->status >= 400 || json_route) && r->body_len > 0) {
		json_error_t je;
		json_t *j = json_loadb((const char *) r->body, r->body_len,
		    JSON_DECODE_ANY, &je);

		if (j == NULL) {
			fprintf(stderr, "fuzz_http: %s: %.*s\n", je.text,
			    (int) (r->body_len > 300 ? 300 : r->body_len),
			    (const char *) r->body);
			fz_fail("a JSON body that does not parse", r);
		}
		json_decref(j);
	}
}

/* fz_check_sse checks n bytes of an event stream, line by line. */
static void
fz_check_sse(const uint8_t *b, size_t n, const gw_response *r)
{
	size_t o = 0;

	while (o < n) {
		const uint8_t *nl = memchr(b + o, '\n', n - o);
		size_t len = nl != NULL ? (size_t) (nl - (b + o)) : n - o;
		const char *l = (const char *) b + o;

		if (nl == NULL) {
			fz_fail("an event stream line without its newline", r);
		}
		if (memchr(l, '\r', len) != NULL || memchr(l, '\0', len) != NULL) {
			fz_fail("CR or NUL inside an event stream line", r);
		}
		if (len > 6 && memcmp(l, "data: ", 6) == 0) {
			json_error_t je;
			json_t *j = json_loadb(l + 6, len - 6, 0, &je);

			if (j == NULL) {
				fz_fail("an SSE data line that is not JSON", r);
			}
			json_decref(j);
		} else if (!(len == 0 || l[0] == ':' ||
		               (len > 7 && memcmp(l, "retry: ", 7) == 0) ||
		               (len > 4 && memcmp(l, "id: ", 4) == 0) ||
		               (len > 7 && memcmp(l, "event: ", 7) == 0))) {
			fz_fail("an event stream line we never send", r);
		}
		o += len + 1;
	}
}

/* fz_stream checks an opened stream, then frames three more outcomes as
 * the stream's later Watch calls would. */
static void
fz_stream(const gw_core *core, gw_plan *p, unsigned sel, const uint8_t *reply,
    size_t reply_len)
{
	const gw_response *r = &p->resp;
	const char *ct = gw_response_get_header(r, "Content-Type");
	uint64_t after = p->stream_after;

	if (r->status != 200 || ct == NULL ||
	    strncmp(ct, "text/event-stream", 17) != 0) {
		fz_fail("a stream that is not 200 text/event-stream", r);
	}
	if (fz_verbose) {
		fprintf(stderr, "fuzz_http: GET events -> stream from %" PRIu64
		    "\n%.*s", after, (int) (r->body_len > 400 ? 400 : r->body_len),
		    (const char *) r->body);
	}
	fz_check_sse(r->body, r->body_len, r);
	for (int i = 0; i < 3; i++) {
		const fz_outcome *oc = &fz_outcomes[(sel >> i) % FZ_N_OUTCOMES];
		ProtobufCMessage *resp = NULL;
		nrpc_status st;
		ds_buf b;
		uint64_t before = after;
		gw_sse_next next;

		memset(&st, 0, sizeof(st));
		if (oc->code == NRPC_OK) {
			resp = protobuf_c_message_unpack(
			    &datasync__v1__watch_response__descriptor, NULL,
			    reply_len, reply);
		} else {
			nrpc_status_set(&st, oc->code, oc->reason, oc->field,
			    "fake %s\nfrom the fuzzer", oc->reason);
			if (oc->detail) {
				(void) nrpc_status_set_detail_bytes(&st,
				    "datasync.v1.WatchResponse", reply,
				    reply_len);
			}
		}
		ds_buf_init(&b, GW_SSE_MAX_PENDING_BYTES);
		next = gw_sse_step(core, &b, resp, &st, &after);
		if (after < before) {
			fz_fail("a stream's cursor went backwards", r);
		}
		fz_check_sse(b.ptr, b.len, r);
		ds_buf_fini(&b);
		if (resp != NULL) {
			protobuf_c_message_free_unpacked(resp, NULL);
		}
		nrpc_status_fini(&st);
		if (next == GW_SSE_END) {
			break;
		}
	}
}

/* --- request parsing (what nng's server does before the gateway) --- */

#define FZ_MAX_LINE 20000

typedef struct fz_req {
	char method[64];
	char *uri;
	gw_header headers[GW_N_REQUEST_HEADERS];
	char *values[GW_N_REQUEST_HEADERS];
	gw_request req;
} fz_req;

/* fz_line returns the next line of s[*o..n) (without CR LF) in a new
 * string, or NULL at the end. */
static char *
fz_line(const uint8_t *s, size_t n, size_t *o, size_t *len)
{
	size_t start = *o, end;
	char *out;

	if (*o >= n) {
		return NULL;
	}
	while (*o < n && s[*o] != '\n') {
		(*o)++;
	}
	end = *o;
	if (*o < n) {
		(*o)++; /* the '\n' */
	}
	if (end > start && s[end - 1] == '\r') {
		end--;
	}
	*len = end - start;
	if ((out = malloc(*len + 1)) == NULL) {
		abort();
	}
	memcpy(out, s + start, *len);
	out[*len] = '\0';
	return out;
}

static void
fz_req_parse(fz_req *q, const uint8_t *s, size_t n)
{
	size_t o = 0, len = 0;
	char *line = fz_line(s, n, &o, &len);
	char *sp;

	memset(q, 0, sizeof(*q));
	q->req.headers = q->headers;
	if (line == NULL) {
		q->uri = strdup("/");
		(void) snprintf(q->method, sizeof(q->method), "GET");
		q->req.method = q->method;
		q->req.uri = q->uri;
		return;
	}
	/* "METHOD TARGET[ VERSION]"; nng refuses anything else, so the
	 * gateway only ever sees a method token and a target without
	 * spaces. */
	if ((sp = strchr(line, ' ')) == NULL) {
		(void) snprintf(q->method, sizeof(q->method), "GET");
		q->uri = strdup(line);
	} else {
		*sp = '\0';
		(void) snprintf(q->method, sizeof(q->method), "%s", line);
		q->uri = strdup(sp + 1);
		if ((sp = strchr(q->uri, ' ')) != NULL) {
			*sp = '\0';
		}
	}
	free(line);
	if (q->uri == NULL) {
		abort();
	}
	while ((line = fz_line(s, n, &o, &len)) != NULL) {
		char *colon, *v;

		if (len == 0) {
			free(line);
			break;
		}
		if ((colon = strchr(line, ':')) == NULL) {
			free(line);
			continue;
		}
		*colon = '\0';
		v = colon + 1;
		while (*v == ' ' || *v == '\t') {
			v++;
		}
		for (int i = 0; i < GW_N_REQUEST_HEADERS; i++) {
			if (strcasecmp(line, gw_request_header_names[i]) != 0) {
				continue;
			}
			if (q->values[i] == NULL) {
				q->values[i] = strdup(v);
			} else {
				/* Repeated headers arrive joined by ", ". */
				size_t a = strlen(q->values[i]), b = strlen(v);
				char *j = realloc(q->values[i], a + b + 3);

				if (j == NULL) {
					abort();
				}
				memcpy(j + a, ", ", 2);
				memcpy(j + a + 2, v, b + 1);
				q->values[i] = j;
			}
			break;
		}
		free(line);
	}
	for (int i = 0; i < GW_N_REQUEST_HEADERS; i++) {
		if (q->values[i] != NULL) {
			gw_header *h = &q->headers[q->req.n_headers++];

			h->name = gw_request_header_names[i];
			h->value = q->values[i];
		}
	}
	q->req.method = q->method;
	q->req.uri = q->uri;
	q->req.body = o < n ? s + o : NULL;
	q->req.body_len = o < n ? n - o : 0;
}

static void
fz_req_fini(fz_req *q)
{
	free(q->uri);
	for (int i = 0; i < GW_N_REQUEST_HEADERS; i++) {
		free(q->values[i]);
	}
}

/* --- one exchange --- */

static void
fz_step(const gw_core *core, gw_plan *p, unsigned sel, const uint8_t *reply,
    size_t reply_len)
{
	const fz_outcome *oc = &fz_outcomes[sel % FZ_N_OUTCOMES];
	nrpc_status st;
	ProtobufCMessage *resp = NULL;

	memset(&st, 0, sizeof(st));
	if (oc->code == NRPC_OK) {
		resp = protobuf_c_message_unpack(
		    p->rpc->output, NULL, reply_len, reply);
		if (resp == NULL) {
			/* An OK reply always has a body message; an empty
			 * one when the bytes do not decode. */
			resp = protobuf_c_message_unpack(
			    p->rpc->output, NULL, 0, NULL);
		}
		if (resp == NULL) {
			abort();
		}
	} else {
		nrpc_status_set(&st, oc->code, oc->reason, oc->field,
		    "fake %s from the fuzzer", oc->reason);
		if (oc->code == NRPC_RESOURCE_EXHAUSTED) {
			st.retry_after_ms = (uint32_t) reply_len * 997;
		}
		if (oc->detail) {
			(void) nrpc_status_set_detail_bytes(&st,
			    fz_detail_types[(sel / FZ_N_OUTCOMES) %
			                    (sizeof(fz_detail_types) /
			                        sizeof(fz_detail_types[0]))],
			    reply, reply_len);
		}
	}
	(void) gw_plan_step(core, p, resp, &st);
	/* p->resp may borrow from resp (a GET's value): check it first. */
	if (p->kind == GW_PLAN_RESPOND) {
		fz_check(p);
	} else if (p->kind == GW_PLAN_STREAM) {
		fz_stream(core, p, sel, reply, reply_len);
	}
	if (resp != NULL) {
		protobuf_c_message_free_unpacked(resp, NULL);
	}
	nrpc_status_fini(&st);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const one[] = {"https://app.example"};
	static const char *const any[] = {"https://app.example", "*"};
	const nrpc_service_desc *services[] = {&datasync_v1_data_sync_service};
	gw_core core;
	gw_plan p;
	fz_req q;
	unsigned sel, flags;
	size_t reply_len;
	const uint8_t *reply;
	bool checked = false;

	if (size < 3) {
		return 0;
	}
	sel = data[0];
	flags = data[1];
	reply_len = data[2];
	if (reply_len > size - 3) {
		reply_len = size - 3;
	}
	reply = data + 3;
	gw_core_init(&core, services, 1,
	    (flags & 2) ? any : (flags & 1) ? one : NULL,
	    (flags & 2) ? 2 : (flags & 1) ? 1 : 0, (flags & 4) ? 16 : 0,
	    ds_clock_wall(), (flags & 8) ? NULL : &fz_metrics);
	core.limiter = (flags & 32) ? fz_limiter : NULL;
	core.tls = (flags & 64) != 0;
	fz_req_parse(&q, reply + reply_len, size - 3 - reply_len);
	fz_cur_req = &q.req;
	fz_cur_data = data;
	fz_cur_size = size;
	if (flags & 32) {
		static const char *const peers[] = {
		    "10.0.0.1", "10.0.0.2", "::1", "192.0.2.255"};

		q.req.peer = peers[sel & 3];
	}

	gw_plan_init(&p);
	gw_plan_request(&core, &q.req, &p);
	for (int step = 0;
	     step < 4 && p.kind != GW_PLAN_RESPOND && p.kind != GW_PLAN_STREAM;
	     step++) {
		if (p.kind == GW_PLAN_STATIC) {
			gw_static_respond(fz_root_real, NULL, p.static_rel,
			    &p.resp);
			p.kind = GW_PLAN_RESPOND;
			gw_plan_decorate(&core, &p);
			break;
		}
		if (p.rpc == NULL || p.req == NULL) {
			fprintf(stderr, "fuzz_http: an RPC plan without a call\n");
			abort();
		}
		if (step == 0 && (flags & 16)) {
			nrpc_status st;

			memset(&st, 0, sizeof(st));
			nrpc_status_set(&st, NRPC_UNAVAILABLE, "UNAVAILABLE",
			    NULL, "the call could not be started");
			gw_plan_fail(&core, &p, &st);
			nrpc_status_fini(&st);
			break;
		}
		fz_step(&core, &p, sel >> (step * 2), reply, reply_len);
		/* Checked inside: the body may borrow from the reply. */
		checked = p.kind == GW_PLAN_RESPOND || p.kind == GW_PLAN_STREAM;
	}
	if (p.kind != GW_PLAN_RESPOND && p.kind != GW_PLAN_STREAM) {
		fprintf(stderr, "fuzz_http: no response after four RPCs\n");
		abort();
	}
	if (!checked) {
		fz_check(&p);
	}
	fz_cur_req = NULL;
	gw_metrics_end(&fz_metrics, p.route, p.method, p.resp.status, 1,
	    p.resp.events);
	gw_plan_fini(&p);
	fz_req_fini(&q);
	return 0;
}
