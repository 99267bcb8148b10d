/*
 * fuzz_seeds.c - writes the generated seeds of corpus/rpc and corpus/http
 * (files named seed_*; findings keep their own names):
 *
 *   fuzz_seeds CORPUS_DIR     (e.g. tests/fuzz/corpus)
 *
 * rpc: a valid envelope for every method and precondition (mode 0), call
 * sequences that take a lock and write under it (mode 1), replies for the
 * client decoder (mode 3), and garbage. http: a request line and headers
 * for every route of the gateway, with fake outcomes that reach every
 * rendering path. The layouts are described in fuzz_rpc.c and
 * fuzz_http.c. Deterministic: running it again rewrites the same bytes.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasync/v1/datasync.pb-c.h"
#include "nrpc/v1/rpc.pb-c.h"

static const char *sd_dir;

static void
sd_write(const char *sub, const char *name, const uint8_t *b, size_t n)
{
	char path[1024];
	FILE *f;

	(void) snprintf(path, sizeof(path), "%s/%s/seed_%s", sd_dir, sub, name);
	if ((f = fopen(path, "wb")) == NULL ||
	    (n > 0 && fwrite(b, 1, n, f) != n)) {
		fprintf(stderr, "fuzz_seeds: cannot write %s\n", path);
		exit(1);
	}
	fclose(f);
}

/* sd_buf: a growing byte string. */
typedef struct sd_buf {
	uint8_t b[65536];
	size_t n;
} sd_buf;

static void
sd_put(sd_buf *s, const void *p, size_t n)
{
	if (s->n + n > sizeof(s->b)) {
		abort();
	}
	memcpy(s->b + s->n, p, n);
	s->n += n;
}

static void
sd_byte(sd_buf *s, unsigned v)
{
	uint8_t c = (uint8_t) v;

	sd_put(s, &c, 1);
}

static void
sd_msg(sd_buf *s, const ProtobufCMessage *m)
{
	uint8_t tmp[16384];
	size_t n = protobuf_c_message_get_packed_size(m);

	if (n > sizeof(tmp)) {
		abort();
	}
	(void) protobuf_c_message_pack(m, tmp);
	sd_put(s, tmp, n);
}

/* sd_env appends an envelope for method with body m. */
static void
sd_env(sd_buf *s, const char *method, const ProtobufCMessage *m,
    const char *rid)
{
	Nrpc__V1__Request env = NRPC__V1__REQUEST__INIT;
	Nrpc__V1__Metadata md = NRPC__V1__METADATA__INIT;
	Nrpc__V1__Metadata *mdp[1] = {&md};
	sd_buf body;

	body.n = 0;
	if (m != NULL) {
		sd_msg(&body, m);
	}
	env.method = (char *) method;
	env.body.data = body.b;
	env.body.len = body.n;
	env.timeout_ms = 5000;
	env.request_id = (char *) (rid != NULL ? rid : "");
	env.client_name = "fuzz-seed";
	md.key = "authorization";
	md.value = "Bearer seed";
	env.n_metadata = 1;
	env.metadata = mdp;
	sd_msg(s, &env.base);
}

/* sd_patch overwrites the first n bytes equal to from[0..n) in s with
 * to[0..n): protobuf-c's packer stops at a NUL, so a string holding one
 * is packed with placeholder bytes and patched afterwards. */
static void
sd_patch(sd_buf *s, const char *from, const char *to, size_t n)
{
	for (size_t i = 0; i + n <= s->n; i++) {
		if (memcmp(s->b + i, from, n) == 0) {
			memcpy(s->b + i, to, n);
			return;
		}
	}
	abort();
}

/* sd_rpc1 writes a mode-0 seed: flags byte 0, then one envelope. */
static void
sd_rpc1(const char *name, const char *method, const ProtobufCMessage *m,
    const char *rid)
{
	sd_buf s;

	s.n = 0;
	sd_byte(&s, 0x00);
	sd_env(&s, method, m, rid);
	sd_write("rpc", name, s.b, s.n);
}

/* sd_rec appends a sequence record: op, 16-bit length, body. */
static void
sd_rec(sd_buf *s, unsigned op, const ProtobufCMessage *m)
{
	sd_buf body;

	body.n = 0;
	if (m != NULL) {
		sd_msg(&body, m);
	}
	sd_byte(s, op);
	sd_byte(s, (unsigned) (body.n >> 8));
	sd_byte(s, (unsigned) (body.n & 0xff));
	sd_put(s, body.b, body.n);
}

#define M_GET "/datasync.v1.DataSync/Get"
#define M_UPDATE "/datasync.v1.DataSync/Update"
#define M_DELETE "/datasync.v1.DataSync/Delete"
#define M_LOCK "/datasync.v1.DataSync/Lock"
#define M_UNLOCK "/datasync.v1.DataSync/Unlock"
#define M_LIST "/datasync.v1.DataSync/List"

static void
sd_rpc(void)
{
	Datasync__V1__GetRequest get = DATASYNC__V1__GET_REQUEST__INIT;
	Datasync__V1__UpdateRequest up = DATASYNC__V1__UPDATE_REQUEST__INIT;
	Datasync__V1__DeleteRequest del = DATASYNC__V1__DELETE_REQUEST__INIT;
	Datasync__V1__LockRequest lk = DATASYNC__V1__LOCK_REQUEST__INIT;
	Datasync__V1__UnlockRequest ul = DATASYNC__V1__UNLOCK_REQUEST__INIT;
	Datasync__V1__ListRequest ls = DATASYNC__V1__LIST_REQUEST__INIT;
	Datasync__V1__Precondition pc = DATASYNC__V1__PRECONDITION__INIT;
	Datasync__V1__Precondition none = DATASYNC__V1__PRECONDITION__INIT;
	Datasync__V1__Record rec = DATASYNC__V1__RECORD__INIT;
	Datasync__V1__LockInfo li = DATASYNC__V1__LOCK_INFO__INIT;
	Datasync__V1__GetResponse gr = DATASYNC__V1__GET_RESPONSE__INIT;
	Nrpc__V1__Response resp = NRPC__V1__RESPONSE__INIT;
	Nrpc__V1__Status status = NRPC__V1__STATUS__INIT;
	sd_buf s, body;
	static const uint8_t value[] = "hello";

	/* Mode 0: one envelope per method and precondition. */
	get.key = "ticket/1";
	sd_rpc1("get", M_GET, &get.base, NULL);
	get.version = 1;
	sd_rpc1("get_version", M_GET, &get.base, NULL);

	up.key = "ticket/1";
	up.value.data = (uint8_t *) value;
	up.value.len = 5;
	up.content_type = "text/plain";
	up.author = "alice";
	up.precondition = &pc;
	pc.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_ABSENT;
	pc.if_absent = true;
	sd_rpc1("update_if_absent", M_UPDATE, &up.base, "rid-1");
	pc.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_VERSION;
	pc.if_version = 1;
	sd_rpc1("update_if_version", M_UPDATE, &up.base, NULL);
	{
		uint64_t vs[] = {1, 3};
		Datasync__V1__VersionSet set = DATASYNC__V1__VERSION_SET__INIT;

		set.versions = vs;
		set.n_versions = 2;
		pc.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_VERSION_IN;
		pc.if_version_in = &set;
		sd_rpc1("update_if_version_in", M_UPDATE, &up.base, "rid-2");
		pc.if_version_in = NULL;
	}
	pc.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_EXISTS;
	pc.if_exists = true;
	sd_rpc1("update_if_exists", M_UPDATE, &up.base, NULL);
	pc.kind_case = DATASYNC__V1__PRECONDITION__KIND_UNCONDITIONAL;
	pc.unconditional = true;
	sd_rpc1("update_unconditional", M_UPDATE, &up.base, NULL);
	up.precondition = &none;
	sd_rpc1("update_no_precondition", M_UPDATE, &up.base, NULL);
	up.precondition = NULL;
	sd_rpc1("update_null_precondition", M_UPDATE, &up.base, NULL);
	up.precondition = &pc;
	up.lock_token = "00112233445566778899aabbccddeeff";
	up.request_id = "body-rid";
	sd_rpc1("update_token", M_UPDATE, &up.base, NULL);
	up.lock_token = "";
	up.request_id = "";

	del.key = "ticket/1";
	del.precondition = &pc;
	pc.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_VERSION;
	pc.if_version = 2;
	sd_rpc1("delete", M_DELETE, &del.base, NULL);

	lk.key = "ticket/1";
	lk.owner = "alice";
	lk.ttl_ms = 30000;
	sd_rpc1("lock", M_LOCK, &lk.base, NULL);
	lk.lock_token = "00112233445566778899aabbccddeeff";
	sd_rpc1("lock_renew", M_LOCK, &lk.base, NULL);
	lk.lock_token = "";

	ul.key = "ticket/1";
	ul.lock_token = "00112233445566778899aabbccddeeff";
	sd_rpc1("unlock", M_UNLOCK, &ul.base, NULL);

	ls.prefix = "ticket/";
	ls.page_size = 2;
	sd_rpc1("list", M_LIST, &ls.base, NULL);
	ls.page_token = "ticket/1";
	sd_rpc1("list_token", M_LIST, &ls.base, NULL);

	{
		Datasync__V1__WatchRequest wr = DATASYNC__V1__WATCH_REQUEST__INIT;

		wr.prefix = "ticket/";
		wr.after_revision = 1;
		wr.timeout_ms = 5;
		wr.limit = 2;
		sd_rpc1("watch_prefix", "/datasync.v1.DataSync/Watch", &wr.base,
		    NULL);
		wr.prefix = "";
		wr.key = "ticket/1";
		wr.with_values = true;
		wr.after_revision = 0;
		sd_rpc1("watch_key_values", "/datasync.v1.DataSync/Watch",
		    &wr.base, NULL);
		wr.from_now = true;
		sd_rpc1("watch_from_now", "/datasync.v1.DataSync/Watch",
		    &wr.base, NULL);
		wr.from_now = false;
		lk.wait_ms = 2;
		sd_rpc1("lock_wait", M_LOCK, &lk.base, NULL);
		lk.wait_ms = 0;
	}
	sd_rpc1("ping", "/nrpc.v1.Server/Ping", NULL, NULL);
	sd_rpc1("unknown_method", "/datasync.v1.DataSync/Nope", &get.base, NULL);

	/* A body that is not the method's message. */
	s.n = 0;
	sd_byte(&s, 0x00);
	{
		Nrpc__V1__Request env = NRPC__V1__REQUEST__INIT;
		static uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01};

		env.method = M_UPDATE;
		env.body.data = junk;
		env.body.len = sizeof(junk);
		sd_msg(&s, &env.base);
	}
	sd_write("rpc", "garbage_body", s.b, s.n);

	/* Garbage envelopes. */
	{
		static const uint8_t g1[] = {0x00, 0x0a, 0xff, 0xff, 0xff, 0xff,
		    0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
		static const uint8_t g2[] = {0x00, 0xde, 0xad, 0xbe, 0xef};
		static const uint8_t g3[] = {0x00, 0x32, 0x00, 0x32, 0x00,
		    0x32, 0x00, 0x32, 0x00};

		sd_write("rpc", "garbage_varint", g1, sizeof(g1));
		sd_write("rpc", "garbage_bytes", g2, sizeof(g2));
		sd_write("rpc", "garbage_empty_metadata", g3, sizeof(g3));
	}
	/* Truncated: the Update envelope cut in half. */
	s.n = 0;
	sd_byte(&s, 0x00);
	sd_env(&s, M_UPDATE, &up.base, NULL);
	sd_write("rpc", "truncated_update", s.b, s.n / 2);

	/* Strict strings (issue 9 item 4): an Update of key "acc/nul\0tail"
	 * (protobuf-c used to write "acc/nul"), one whose author holds a
	 * surrogate, a Get whose envelope method has a NUL after the name,
	 * and the NUL-key Update in a sequence followed by a Get of
	 * "acc/nul". */
	pc.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_ABSENT;
	pc.if_absent = true;
	up.precondition = &pc;
	up.key = "acc/nul#tail";
	s.n = 0;
	sd_byte(&s, 0x00);
	sd_env(&s, M_UPDATE, &up.base, NULL);
	sd_patch(&s, "acc/nul#tail", "acc/nul\0tail", 12);
	sd_write("rpc", "strict_key_nul", s.b, s.n);
	up.key = "acc/utf8";
	up.author = "al@@@";
	s.n = 0;
	sd_byte(&s, 0x00);
	sd_env(&s, M_UPDATE, &up.base, NULL);
	sd_patch(&s, "al@@@", "al\xed\xa0\x80", 5);
	sd_write("rpc", "strict_author_surrogate", s.b, s.n);
	up.author = "alice";
	get.key = "acc/nul";
	get.version = 0;
	s.n = 0;
	sd_byte(&s, 0x00);
	sd_env(&s, M_GET "#zz", &get.base, NULL);
	sd_patch(&s, "Get#zz", "Get\0zz", 6);
	sd_write("rpc", "strict_method_nul", s.b, s.n);
	up.key = "acc/nul#tail";
	s.n = 0;
	sd_byte(&s, 0x01);
	sd_rec(&s, 1, &up.base);
	sd_rec(&s, 0, &get.base);
	sd_patch(&s, "acc/nul#tail", "acc/nul\0tail", 12);
	sd_write("rpc", "strict_seq_key_nul", s.b, s.n);
	up.key = "ticket/1";
	get.key = "ticket/1";
	get.version = 1;

	/* Mode 1: create, lock, write under the lock ("T" is replaced by
	 * the lock's token), unlock, read, list, delete; with request ids
	 * and every call sent twice (flags 0x19). */
	s.n = 0;
	sd_byte(&s, 0x01 | 0x08 | 0x10 | 0x20);
	pc.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_ABSENT;
	pc.if_absent = true;
	up.lock_token = "";
	sd_rec(&s, 1, &up.base);
	lk.lock_token = "";
	lk.ttl_ms = 1000;
	sd_rec(&s, 3, &lk.base);
	pc.kind_case = DATASYNC__V1__PRECONDITION__KIND_IF_EXISTS;
	pc.if_exists = true;
	up.lock_token = "T";
	sd_rec(&s, 1, &up.base);
	lk.lock_token = "T";
	sd_rec(&s, 3, &lk.base);
	ul.lock_token = "T";
	sd_rec(&s, 4, &ul.base);
	get.version = 0;
	sd_rec(&s, 0, &get.base);
	ls.page_token = "";
	sd_rec(&s, 5, &ls.base);
	pc.kind_case = DATASYNC__V1__PRECONDITION__KIND_UNCONDITIONAL;
	pc.unconditional = true;
	del.lock_token = "";
	sd_rec(&s, 2, &del.base);
	sd_write("rpc", "seq_lock_write_unlock", s.b, s.n);

	/* Mode 1: a lease that expires under its holder (the clock moves
	 * 31 x 0.5 s before the write), then a write with the old token. */
	s.n = 0;
	sd_byte(&s, 0x01);
	pc.kind_case = DATASYNC__V1__PRECONDITION__KIND_UNCONDITIONAL;
	up.lock_token = "";
	sd_rec(&s, 1, &up.base);
	lk.lock_token = "";
	lk.ttl_ms = 1000;
	sd_rec(&s, 3, &lk.base);
	up.lock_token = "T";
	sd_rec(&s, 1 | (31 << 3), &up.base);
	ul.lock_token = "T";
	sd_rec(&s, 4, &ul.base);
	sd_write("rpc", "seq_lease_expires", s.b, s.n);

	/* Mode 1: history: three versions, then read each. */
	s.n = 0;
	sd_byte(&s, 0x02);
	up.lock_token = "";
	for (int i = 0; i < 3; i++) {
		sd_rec(&s, 1, &up.base);
	}
	for (uint64_t v = 1; v <= 3; v++) {
		get.version = v;
		sd_rec(&s, 0, &get.base);
	}
	sd_rec(&s, 6, NULL); /* a Watch of everything, from now */
	sd_rec(&s, 7, &get.base);
	sd_write("rpc", "seq_history", s.b, s.n);

	/* Mode 1: writes, then a watch of them with values. */
	s.n = 0;
	sd_byte(&s, 0x01);
	pc.kind_case = DATASYNC__V1__PRECONDITION__KIND_UNCONDITIONAL;
	pc.unconditional = true;
	up.lock_token = "";
	sd_rec(&s, 1, &up.base);
	sd_rec(&s, 3, &lk.base);
	{
		Datasync__V1__WatchRequest wr = DATASYNC__V1__WATCH_REQUEST__INIT;

		wr.prefix = "";
		wr.after_revision = 1;
		wr.with_values = true;
		sd_rec(&s, 6, &wr.base);
	}
	sd_write("rpc", "seq_watch", s.b, s.n);

	/* Mode 3: replies for the client's decoder. */
	rec.key = "ticket/1";
	rec.value.data = (uint8_t *) value;
	rec.value.len = 5;
	rec.version = 3;
	rec.revision = 9;
	rec.lock = &li;
	li.owner = "alice";
	li.expires_at_ms = 1767225630000;
	li.fencing_token = 4;
	gr.record = &rec;
	body.n = 0;
	sd_msg(&body, &gr.base);
	resp.body.data = body.b;
	resp.body.len = body.n;
	s.n = 0;
	sd_byte(&s, 0x03);
	sd_byte(&s, 0); /* Get */
	sd_msg(&s, &resp.base);
	sd_write("rpc", "reply_get", s.b, s.n);

	body.n = 0;
	sd_msg(&body, &rec.base);
	status.code = 10;
	status.reason = "VERSION_CONFLICT";
	status.message = "version conflict";
	status.detail.data = body.b;
	status.detail.len = body.n;
	status.detail_type = "datasync.v1.Record";
	status.field = "precondition";
	resp.status = &status;
	resp.body.len = 0;
	s.n = 0;
	sd_byte(&s, 0x03);
	sd_byte(&s, 1); /* Update */
	sd_msg(&s, &resp.base);
	sd_write("rpc", "reply_conflict", s.b, s.n);
	status.code = 999;
	s.n = 0;
	sd_byte(&s, 0x03);
	sd_byte(&s, 1);
	sd_msg(&s, &resp.base);
	sd_write("rpc", "reply_code_out_of_range", s.b, s.n);
}

/* --- http --- */

static void
sd_http(const char *name, unsigned sel, unsigned flags, const ProtobufCMessage *reply,
    const char *text)
{
	sd_buf s, r;

	r.n = 0;
	if (reply != NULL) {
		sd_msg(&r, reply);
	}
	if (r.n > 255) {
		abort();
	}
	s.n = 0;
	sd_byte(&s, sel);
	sd_byte(&s, flags);
	sd_byte(&s, (unsigned) r.n);
	sd_put(&s, r.b, r.n);
	sd_put(&s, text, strlen(text));
	sd_write("http", name, s.b, s.n);
}

/* Outcome indexes of fuzz_http.c's table. */
enum { O_OK = 0, O_CONFLICT = 2, O_LOCKED = 3, O_NOT_FOUND = 4,
	O_INVALID = 5, O_TOO_LARGE = 7, O_OVERLOADED = 8, O_UNAVAILABLE = 9,
	O_DEADLINE = 10, O_MISMATCH = 11, O_COMPACTED = 14,
	O_BAD_UTF8 = 21,
	/* REVISION_COMPACTED (22) with the detail read as the 7th detail
	 * type, datasync.v1.WatchResponse: 22 + 28 * 6. */
	O_REV_COMPACTED = 190,
	O_TOKEN_MISSING = 23, O_TOKEN_UNKNOWN = 24, O_TOKEN_REVOKED = 25,
	O_DENIED = 26, O_AUTH_FAILURES = 27 };

#define SD_SECRET "dst_5e5e5e5e0123456789abcdef0123456789abcdef0123456789abcdef01234567"

/* Authentication: Authorization, the ds_session cookie among others, the
 * /v1/session routes; flags 32 = the limiter, 64 = HTTPS. */
static void
sd_http_auth(void)
{
	Datasync__V1__WhoAmIResponse who = DATASYNC__V1__WHO_AM_IRESPONSE__INIT;
	Datasync__V1__WhoAmIResponse anon = DATASYNC__V1__WHO_AM_IRESPONSE__INIT;
	Datasync__V1__Token tok = DATASYNC__V1__TOKEN__INIT;
	char *grants[] = {"read:docs/", "write:docs/"};

	tok.name = "ci";
	tok.grants = grants;
	tok.n_grants = 2;
	who.auth_required = true;
	who.authenticated = true;
	who.token = &tok;
	anon.auth_required = true;
	sd_http("auth_bearer", O_OK, 32, NULL,
	    "GET /v1/records/docs%2Fa HTTP/1.1\r\nAuthorization: Bearer " SD_SECRET
	    "\r\n\r\n");
	sd_http("auth_bearer_unknown", O_TOKEN_UNKNOWN, 32, NULL,
	    "GET /v1/records/docs%2Fa HTTP/1.1\r\nAuthorization: bearer  " SD_SECRET
	    "\r\n\r\n");
	sd_http("auth_basic", O_TOKEN_MISSING, 32, NULL,
	    "GET /v1/records HTTP/1.1\r\nAuthorization: Basic YWxhZGRpbjpvcGVu\r\n\r\n");
	sd_http("auth_cookie", O_TOKEN_REVOKED, 32, NULL,
	    "PUT /v1/records/docs%2Fa HTTP/1.1\r\nIf-Match: *\r\n"
	    "Cookie: theme=dark; ds_session=" SD_SECRET "; lang=en\r\n"
	    "Cookie: other=1\r\n\r\nvalue");
	sd_http("auth_cookie_quoted", O_DENIED, 0, NULL,
	    "DELETE /v1/records/docs%2Fa HTTP/1.1\r\nIf-Match: *\r\n"
	    "Cookie: ds_session=\"" SD_SECRET "\"\r\n\r\n");
	sd_http("auth_header_and_cookie", O_AUTH_FAILURES, 32, NULL,
	    "GET /v1/watch?prefix=docs/ HTTP/1.1\r\nAuthorization: Bearer " SD_SECRET
	    "\r\nCookie: ds_session=dst_other\r\n\r\n");
	sd_http("auth_events_cookie", O_OK, 0, NULL,
	    "GET /v1/events?prefix=docs/ HTTP/1.1\r\nCookie: ds_session=" SD_SECRET
	    "\r\n\r\n");
	sd_http("session_get", O_OK, 0, &anon.base,
	    "GET /v1/session HTTP/1.1\r\nCookie: ds_session=" SD_SECRET "\r\n\r\n");
	sd_http("session_sign_in", O_OK, 64, &who.base,
	    "POST /v1/session HTTP/1.1\r\nContent-Type: application/json\r\n"
	    "Origin: https://127.0.0.1:8080\r\nHost: 127.0.0.1:8080\r\n\r\n"
	    "{\"token\": \"" SD_SECRET "\"}");
	sd_http("session_sign_in_header", O_OK, 32, &who.base,
	    "POST /v1/session HTTP/1.1\r\nAuthorization: Bearer " SD_SECRET
	    "\r\n\r\n");
	sd_http("session_sign_in_other_scheme", O_OK, 0, &who.base,
	    "POST /v1/session HTTP/1.1\r\nAuthorization: x\r\n\r\n");
	sd_http("session_sign_in_refused", O_TOKEN_UNKNOWN, 32, NULL,
	    "POST /v1/session HTTP/1.1\r\nContent-Type: application/json\r\n\r\n"
	    "{\"token\":\"dst_nope\"}");
	sd_http("session_sign_in_no_token", O_OK, 0, NULL,
	    "POST /v1/session HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{}");
	sd_http("session_sign_out", O_OK, 64, NULL,
	    "DELETE /v1/session HTTP/1.1\r\nCookie: ds_session=" SD_SECRET "\r\n\r\n");
}

/* Watch over HTTP: long poll, event stream, Lock waitMs. */
static void
sd_http_watch(void)
{
	Datasync__V1__Record rec = DATASYNC__V1__RECORD__INIT;
	Datasync__V1__Event ev = DATASYNC__V1__EVENT__INIT;
	Datasync__V1__Event *evs[1] = {&ev};
	Datasync__V1__WatchResponse wr = DATASYNC__V1__WATCH_RESPONSE__INIT;
	Datasync__V1__WatchResponse cr = DATASYNC__V1__WATCH_RESPONSE__INIT;
	static const uint8_t value[] = "line\nbreak";

	rec.key = "ticket/1";
	rec.version = 4;
	rec.revision = 10;
	rec.updated_by = "al\nice";
	rec.value.data = (uint8_t *) value;
	rec.value.len = sizeof(value) - 1;
	ev.type = DATASYNC__V1__EVENT_TYPE__EVENT_PUT;
	ev.revision = 10;
	ev.record = &rec;
	wr.n_events = 1;
	wr.events = evs;
	wr.revision = 10;
	wr.compact_revision = 2;
	cr.compact_revision = 5;
	cr.revision = 10;

	sd_http("watch", O_OK, 0, &wr.base,
	    "GET /v1/watch?prefix=ticket%2F&after=3&timeout=5s&limit=2&values=1 "
	    "HTTP/1.1\r\nOrigin: https://app.example\r\n\r\n");
	sd_http("watch_compacted", O_REV_COMPACTED, 0, &cr.base,
	    "GET /v1/watch?key=ticket/1&after=1 HTTP/1.1\r\n\r\n");
	sd_http("watch_bad_query", O_OK, 0, NULL,
	    "GET /v1/watch?key=a&prefix=b&timeout=2m HTTP/1.1\r\n\r\n");
	sd_http("events", O_OK, 1, &wr.base,
	    "GET /v1/events?key=ticket/1&values=true HTTP/1.1\r\n"
	    "Last-Event-ID: 4\r\nOrigin: https://app.example\r\n\r\n");
	sd_http("events_compacted", O_REV_COMPACTED, 0, &cr.base,
	    "GET /v1/events?after=1 HTTP/1.1\r\n\r\n");
	sd_http("events_bad_id", O_OK, 0, NULL,
	    "GET /v1/events HTTP/1.1\r\nLast-Event-ID: x\r\n\r\n");
	sd_http("lock_wait", O_OK, 0, NULL,
	    "POST /v1/records/ticket/1/lock HTTP/1.1\r\n"
	    "Content-Type: application/json\r\n\r\n"
	    "{\"owner\":\"bob\",\"waitMs\":20000}");
	sd_http("rpc_watch", O_OK, 0, &wr.base,
	    "POST /rpc/datasync.v1.DataSync/Watch HTTP/1.1\r\n"
	    "Content-Type: application/json\r\n\r\n"
	    "{\"prefix\":\"ticket/\",\"timeoutMs\":59000}");
}

static void
sd_http_all(void)
{
	Datasync__V1__Record rec = DATASYNC__V1__RECORD__INIT;
	Datasync__V1__LockInfo li = DATASYNC__V1__LOCK_INFO__INIT;
	Datasync__V1__GetResponse gr = DATASYNC__V1__GET_RESPONSE__INIT;
	Datasync__V1__UpdateResponse ur = DATASYNC__V1__UPDATE_RESPONSE__INIT;
	Datasync__V1__DeleteResponse dr = DATASYNC__V1__DELETE_RESPONSE__INIT;
	Datasync__V1__LockResponse lr = DATASYNC__V1__LOCK_RESPONSE__INIT;
	Datasync__V1__ListResponse lsr = DATASYNC__V1__LIST_RESPONSE__INIT;
	Datasync__V1__Record *recs[1] = {&rec};
	static const uint8_t value[] = "{\"a\":1}";

	rec.key = "ticket/1";
	rec.value.data = (uint8_t *) value;
	rec.value.len = sizeof(value) - 1;
	rec.content_type = "application/json";
	rec.version = 3;
	rec.revision = 9;
	rec.created_at_ms = 1767225600000;
	rec.updated_at_ms = 1767225601000;
	rec.updated_by = "al\xc3\xaf" "ce\r\nX-Evil: 1";
	rec.lock = &li;
	li.owner = "bob \xe2\x9c\x93";
	li.expires_at_ms = 1767225630000;
	li.fencing_token = 4;
	gr.record = &rec;
	ur.record = &rec;
	dr.version = 4;
	dr.revision = 10;
	lr.lock_token = "00112233445566778899aabbccddeeff";
	lr.lock = &li;
	lr.version = 3;
	lsr.n_records = 1;
	lsr.records = recs;
	lsr.next_page_token = "ticket/1";
	lsr.revision = 10;

	/* GET /v1/records/{key} */
	sd_http("get", O_OK, 0, &gr.base,
	    "GET /v1/records/ticket%2F1 HTTP/1.1\r\nOrigin: https://app.example\r\n\r\n");
	sd_http("get_version", O_OK, 1, &gr.base,
	    "GET /v1/records/ticket/1?version=2&x=%20 HTTP/1.1\r\n\r\n");
	sd_http("get_if_none_match", O_OK, 0, &gr.base,
	    "GET /v1/records/ticket/1 HTTP/1.1\r\nIf-None-Match: W/\"3\", \"4\"\r\n\r\n");
	sd_http("head", O_OK, 0, &gr.base,
	    "HEAD /v1/records/a+b HTTP/1.1\r\n\r\n");
	sd_http("get_not_found", O_NOT_FOUND, 0, NULL,
	    "GET /v1/records/nope HTTP/1.1\r\n\r\n");
	sd_http("get_compacted", O_COMPACTED, 0, NULL,
	    "GET /v1/records/k?version=1 HTTP/1.1\r\n\r\n");
	sd_http("get_bad_encoding", O_OK, 0, NULL,
	    "GET /v1/records/%zz%00 HTTP/1.1\r\n\r\n");

	/* PUT /v1/records/{key} */
	sd_http("put_if_match", O_OK, 0, &ur.base,
	    "PUT /v1/records/ticket/1 HTTP/1.1\r\nIf-Match: \"3\"\r\n"
	    "Content-Type: text/plain\r\nAuthor: al%C3%AFce\r\n"
	    "Idempotency-Key: k-1\r\nContent-Length: 5\r\n\r\nhello");
	sd_http("put_if_none_match", O_OK, 0, &ur.base,
	    "PUT /v1/records/ticket/1 HTTP/1.1\r\nIf-None-Match: *\r\n"
	    "Content-Length: 5\r\n\r\nhello");
	sd_http("put_if_match_any", O_OK, 0, &ur.base,
	    "PUT /v1/records/ticket/1 HTTP/1.1\r\nIf-Match: *\r\n"
	    "Lock-Token: 00112233445566778899aabbccddeeff\r\n\r\nhello");
	sd_http("put_if_match_list", O_OK | (O_OK << 2), 0, &gr.base,
	    "PUT /v1/records/ticket/1 HTTP/1.1\r\nIf-Match: \"2\", \"3\", W/\"4\"\r\n\r\nhello");
	sd_http("put_no_precondition", O_OK, 0, NULL,
	    "PUT /v1/records/ticket/1 HTTP/1.1\r\n\r\nhello");
	sd_http("put_conflict", O_CONFLICT, 0, &rec.base,
	    "PUT /v1/records/ticket/1 HTTP/1.1\r\nIf-Match: \"2\"\r\n\r\nhello");
	sd_http("put_locked", O_LOCKED, 1, &rec.base,
	    "PUT /v1/records/ticket/1 HTTP/1.1\r\nIf-Match: \"3\"\r\n"
	    "Origin: https://app.example\r\n\r\nhello");
	sd_http("put_too_large", O_OK, 4, NULL,
	    "PUT /v1/records/k HTTP/1.1\r\nIf-Match: *\r\nContent-Length: 17\r\n\r\n"
	    "12345678901234567");
	sd_http("put_chunked", O_OK, 0, NULL,
	    "PUT /v1/records/k HTTP/1.1\r\nIf-Match: *\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "5\r\nhello\r\n0\r\n\r\n");
	sd_http("put_bad_length", O_OK, 0, NULL,
	    "PUT /v1/records/k HTTP/1.1\r\nIf-Match: *\r\nContent-Length: -1\r\n\r\n");
	sd_http("put_overloaded", O_OVERLOADED, 0, NULL,
	    "PUT /v1/records/k HTTP/1.1\r\nIf-Match: *\r\n\r\nx");

	/* DELETE /v1/records/{key} */
	sd_http("delete", O_OK, 0, &dr.base,
	    "DELETE /v1/records/ticket/1 HTTP/1.1\r\nIf-Match: \"3\"\r\n\r\n");
	sd_http("delete_unavailable", O_UNAVAILABLE, 0, NULL,
	    "DELETE /v1/records/ticket/1 HTTP/1.1\r\nIf-Match: *\r\n\r\n");

	/* lock and unlock */
	sd_http("lock", O_OK, 0, &lr.base,
	    "POST /v1/records/ticket/1/lock HTTP/1.1\r\nContent-Type: application/json\r\n\r\n"
	    "{\"owner\":\"alice\",\"ttlMs\":\"30000\"}");
	sd_http("lock_renew", O_OK, 0, &lr.base,
	    "POST /v1/records/ticket/1/lock HTTP/1.1\r\n"
	    "Lock-Token: 00112233445566778899aabbccddeeff\r\n\r\n{\"owner\":\"alice\"}");
	sd_http("lock_locked", O_LOCKED, 0, &rec.base,
	    "POST /v1/records/ticket/1/lock HTTP/1.1\r\n\r\n{\"owner\":\"bob\"}");
	sd_http("unlock", O_OK, 0, NULL,
	    "DELETE /v1/records/ticket/1/lock HTTP/1.1\r\n"
	    "Lock-Token: 00112233445566778899aabbccddeeff\r\n\r\n");
	sd_http("unlock_body", O_MISMATCH, 0, NULL,
	    "POST /v1/records/ticket/1/unlock HTTP/1.1\r\n\r\n"
	    "{\"lockToken\":\"00112233445566778899aabbccddeeff\"}");

	/* list */
	sd_http("list", O_OK, 0, &lsr.base,
	    "GET /v1/records?prefix=ticket%2F&pageSize=2&pageToken=ticket%2F0 HTTP/1.1\r\n\r\n");
	sd_http("list_bad_size", O_OK, 0, &lsr.base,
	    "GET /v1/records?pageSize=99999999999&page_size=1 HTTP/1.1\r\n\r\n");

	/* /rpc/ */
	sd_http("rpc_get", O_OK, 0, &gr.base,
	    "POST /rpc/datasync.v1.DataSync/Get HTTP/1.1\r\nContent-Type: application/json\r\n\r\n"
	    "{\"key\":\"ticket/1\",\"version\":\"0\"}");
	sd_http("rpc_update", O_OK, 0, &ur.base,
	    "POST /rpc/datasync.v1.DataSync/Update HTTP/1.1\r\nIdempotency-Key: abc\r\n\r\n"
	    "{\"key\":\"k\",\"value\":\"aGVsbG8=\",\"precondition\":{\"ifAbsent\":true}}");
	sd_http("rpc_lock", O_OK, 0, &lr.base,
	    "POST /rpc/datasync.v1.DataSync/Lock HTTP/1.1\r\n\r\n{\"key\":\"k\",\"owner\":\"a\"}");
	sd_http("rpc_conflict", O_CONFLICT, 0, &rec.base,
	    "POST /rpc/datasync.v1.DataSync/Update HTTP/1.1\r\n\r\n"
	    "{\"key\":\"k\",\"precondition\":{\"ifVersion\":\"2\"}}");
	sd_http("rpc_bad_utf8_reason", O_BAD_UTF8, 0, &rec.base,
	    "POST /rpc/datasync.v1.DataSync/List HTTP/1.1\r\n\r\n{}");
	sd_http("rpc_unknown", O_OK, 0, NULL,
	    "POST /rpc/datasync.v1.DataSync/Nope HTTP/1.1\r\n\r\n{}");
	sd_http("rpc_bad_json", O_OK, 0, NULL,
	    "POST /rpc/datasync.v1.DataSync/Get HTTP/1.1\r\n\r\n{\"key\":[1,2,{\"a\":");
	sd_http("rpc_deadline", O_DEADLINE, 0, NULL,
	    "POST /rpc/datasync.v1.DataSync/Get HTTP/1.1\r\n\r\n{\"key\":\"k\"}");
	sd_http("rpc_too_large", O_TOO_LARGE, 0, NULL,
	    "POST /rpc/datasync.v1.DataSync/Update HTTP/1.1\r\n\r\n{\"key\":\"k\"}");
	sd_http("rpc_invalid", O_INVALID, 16, NULL,
	    "POST /rpc/datasync.v1.DataSync/Get HTTP/1.1\r\n\r\n{\"key\":\"\"}");

	/* the rest */
	sd_http("healthz", O_OK, 0, NULL, "GET /healthz HTTP/1.1\r\n\r\n");
	sd_http("metrics", O_OK, 0, NULL, "GET /metrics HTTP/1.1\r\n\r\n");
	sd_http("metrics_off", O_OK, 8, NULL, "GET /metrics HTTP/1.1\r\n\r\n");
	sd_http("static_index", O_OK, 0, NULL, "GET / HTTP/1.1\r\n\r\n");
	sd_http("static_js", O_OK, 0, NULL, "GET /app.js?v=1 HTTP/1.1\r\n\r\n");
	sd_http("static_dotdot", O_OK, 0, NULL,
	    "GET /a/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\n\r\n");
	sd_http("static_hidden", O_OK, 0, NULL, "GET /.git/config HTTP/1.1\r\n\r\n");
	sd_http("preflight", O_OK, 1, NULL,
	    "OPTIONS /v1/records/k HTTP/1.1\r\nOrigin: https://app.example\r\n"
	    "Access-Control-Request-Method: PUT\r\n"
	    "Access-Control-Request-Headers: if-match, lock-token\r\n\r\n");
	sd_http("preflight_denied", O_OK, 1, NULL,
	    "OPTIONS /v1/records/k HTTP/1.1\r\nOrigin: https://evil.example\r\n"
	    "Access-Control-Request-Method: DELETE\r\n\r\n");
	sd_http("cors_any", O_OK, 2, &gr.base,
	    "GET /v1/records/k HTTP/1.1\r\nOrigin: null\r\n\r\n");
	sd_http("method_not_allowed", O_OK, 0, NULL,
	    "PATCH /v1/records/k HTTP/1.1\r\n\r\n");
	sd_http("bad_target", O_OK, 0, NULL, "GET v1/records HTTP/1.1\r\n\r\n");
	sd_http("fail_to_start", O_OK, 16, NULL,
	    "GET /v1/records/k HTTP/1.1\r\n\r\n");
	sd_http_watch();
	sd_http_auth();
}

int
main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: fuzz_seeds CORPUS_DIR\n");
		return 2;
	}
	sd_dir = argv[1];
	sd_rpc();
	sd_http_all();
	return 0;
}
