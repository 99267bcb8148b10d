/*
 * fuzz_rpc.c - bytes -> envelope decode -> dispatch -> the real DataSync
 * handlers over an in-memory store, through nrpc_server_process (the
 * server's request path without sockets: size check, envelope decode,
 * method lookup, body decode, deadline, handler, group-commit writer,
 * reply packing). Every reply is decoded again as a client would
 * (nrpc_envelope_decode_reply) and checked:
 *
 *   - the server answers every input with a decodable nrpc.v1.Response;
 *   - an error has a gRPC code in 1..16, a reason and a message;
 *   - an OK reply's body decodes as the method's output type;
 *   - after a successful Update, a Get of the key returns that version
 *     and value; after a successful Delete, Get says NOT_FOUND;
 *   - a write that fails changes nothing: Get of its key answers the same
 *     bytes before and after (DESIGN §4 rule 9);
 *   - strict strings (issue 9 item 4): an envelope with a string field
 *     holding a NUL or invalid UTF-8 is answered INVALID_ARGUMENT
 *     "MALFORMED_ENVELOPE"; a clean envelope whose body has such a string
 *     field (at any depth) is answered INVALID_ARGUMENT "MALFORMED_BODY"
 *     (or refused earlier, for the envelope's own limits); a body that
 *     protobuf-c decodes and whose strings are clean is never answered
 *     MALFORMED_BODY. The strings are judged by fz_strings below, written
 *     apart from nrpc_strings.c (plain protobuf varints, RFC 3629's byte
 *     ranges) so the two check each other.
 *
 * Input layout. Byte 0 holds flags:
 *   bits 0-1  mode: 0 = the rest is one raw envelope; 1, 2 = a sequence
 *             of calls (below); 3 = the rest is a reply for the client's
 *             decoder (the method picked by byte 1)
 *   bit 2     reset the store first (a fresh database)
 *   bit 3     send every envelope twice (request-id replay)
 *   bit 4     sequence: give every envelope a request id
 *   bit 5     sequence: a client name and metadata in every envelope
 * A sequence is up to 8 records [op][len_hi][len_lo][body...]: op's low 3
 * bits pick the method (the seven DataSync methods, Watch last, or an
 * unknown one; the runtime's Ping is reached by name in raw mode; every
 * Watch the harness sends waits at most FZ_WATCH_MAX_MS), its high 5 bits advance the store's clock by that many
 * half-seconds first (leases expire). When the body decodes as the
 * method's input and its lock_token is "T", the harness puts in the last
 * token a Lock returned, so the fuzzer reaches writes under a lock.
 *
 * The store is reset every FZ_RESET_EVERY inputs so memory stays bounded.
 *
 * Leaks are checked once, at exit, after every thread is joined, not per
 * input: the service answers a call before it frees what it used for it
 * (the replier sends a conflict's reply, then frees the status detail),
 * so when the harness returns, another thread may still hold memory it is
 * about to free, and libFuzzer's per-input check reported such a detail
 * as a leak (rpc-leak-58b87f59, 54 bytes, not reproducible). A real leak
 * is still unreachable at exit.
 * FUZZ_VERBOSE=1 prints every call's outcome (to check what a seed
 * reaches: FUZZ_VERBOSE=1 fuzz_replay_rpc corpus/rpc/seed_lock).
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasync/v1/datasync.nrpc.h"
#include "datasync_handlers.h"
#include "ds_alloc.h"
#include "nrpc_int.h"
#include "store.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Only libFuzzer defines it: tells a fuzzing run from fuzz_replay. */
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max)
    __attribute__((weak));

#define FZ_RESET_EVERY 4096
#define FZ_MAX_MESSAGE 16384 /* small, so the fuzzer reaches TOO_LARGE */
#define FZ_MAX_VALUE 4096
#define FZ_MAX_CALLS 8

/* --- a clock that moves only when the harness says so --- */

typedef struct fz_clock {
	ds_clock base;
	_Atomic int64_t now;
} fz_clock;

static int64_t
fz_clock_now(const ds_clock *c)
{
	return atomic_load(&((fz_clock *) c->arg)->now);
}

static fz_clock fz_wall = {{fz_clock_now, &fz_wall}, 1767225600000};
static fz_clock fz_mono = {{fz_clock_now, &fz_mono}, 1000000};

/* --- the server --- */

static store *fz_store;
static dsh_service *fz_svc;
static nrpc_server *fz_srv;
static unsigned fz_runs;
static char fz_token[64]; /* the last lock token a Lock returned */
static int fz_verbose;

static void
fz_down(void)
{
	dsh_service_destroy(fz_svc);
	nrpc_server_destroy(fz_srv); /* worker_fini: the read connection */
	store_close(fz_store);
	fz_svc = NULL;
	fz_srv = NULL;
	fz_store = NULL;
}

static void
fz_up(void)
{
	store_config scfg;
	store_error serr;
	dsh_config dcfg;
	nrpc_server_config ncfg;
	nrpc_status st = {0};

	store_config_default(&scfg);
	scfg.path = ":memory:";
	scfg.clock = &fz_wall.base;
	scfg.limits.max_value_bytes = FZ_MAX_VALUE;
	scfg.limits.history = 2;
	memset(&serr, 0, sizeof(serr));
	if (store_open(&scfg, &fz_store, &serr) != STORE_OK) {
		fprintf(stderr, "fuzz_rpc: store_open: %s\n", serr.message);
		abort();
	}
	memset(&dcfg, 0, sizeof(dcfg));
	dcfg.store = fz_store;
	if (dsh_service_create(&dcfg, &fz_svc, &st) != NRPC_OK) {
		fprintf(stderr, "fuzz_rpc: service: %s\n", st.message);
		abort();
	}
	nrpc_server_config_default(&ncfg);
	ncfg.max_message_bytes = FZ_MAX_MESSAGE;
	ncfg.worker_init = dsh_worker_init;
	ncfg.worker_fini = dsh_worker_fini;
	ncfg.worker_arg = fz_svc;
	ncfg.clock = &fz_mono.base;
	ncfg.listener_check_ms = -1;
	if (nrpc_server_create(&ncfg, &fz_srv, &st) != NRPC_OK ||
	    dsh_service_register(fz_svc, fz_srv, &st) != NRPC_OK) {
		fprintf(stderr, "fuzz_rpc: server: %s\n", st.message);
		abort();
	}
	fz_token[0] = '\0';
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char *args[256];
	static char no_leaks[] = "-detect_leaks=0";
	bool given = false;

	/* libFuzzer parses its flags after this returns. */
	for (int i = 1; LLVMFuzzerMutate != NULL && i < *argc; i++) {
		given = given || strncmp((*argv)[i], "-detect_leaks=", 14) == 0;
	}
	if (LLVMFuzzerMutate != NULL && !given && *argc < 255) {
		for (int i = 0; i < *argc; i++) {
			args[i] = (*argv)[i];
		}
		args[(*argc)++] = no_leaks;
		args[*argc] = NULL;
		*argv = args;
	}
	fz_verbose = getenv("FUZZ_VERBOSE") != NULL;
	fz_up();
	/* LeakSanitizer runs at exit: leave nothing behind but leaks. */
	atexit(fz_down);
	return 0;
}

/* --- methods --- */

/* The seven DataSync methods are 0..6 (Watch is 6); 7 is an unknown
 * method. Ping is reached by name, in raw mode. */
enum { FZ_WATCH = 6, FZ_UNKNOWN = 7 };

/* A Watch waits up to its timeout_ms (0 = 30 s) for a change: the harness
 * makes every Watch it sends wait at most this long, or one input would
 * take seconds. */
#define FZ_WATCH_MAX_MS 3

static const nrpc_method fz_ping = {NRPC_PING_METHOD, "Ping",
    &datasync__v1__get_request__descriptor,
    &datasync__v1__get_request__descriptor, true};
static const nrpc_method fz_unknown = {"/datasync.v1.DataSync/Nope", "Nope",
    &datasync__v1__get_request__descriptor,
    &datasync__v1__get_request__descriptor, false};

static const nrpc_method *
fz_method(unsigned i)
{
	i &= 7;
	if (i < datasync_v1_data_sync_service.n_methods) {
		return &datasync_v1_data_sync_service.methods[i];
	}
	return &fz_unknown;
}

static const nrpc_method *
fz_method_by_name(const char *name)
{
	for (unsigned i = 0; i < 8; i++) {
		if (strcmp(fz_method(i)->full_name, name) == 0) {
			return fz_method(i);
		}
	}
	return strcmp(fz_ping.full_name, name) == 0 ? &fz_ping : NULL;
}

/* --- checks --- */

static void
fz_fail(const char *what, const nrpc_status *st)
{
	fprintf(stderr, "fuzz_rpc: %s (code %d reason '%s' message '%s')\n",
	    what, st != NULL ? (int) st->code : -1, st != NULL ? st->reason : "",
	    st != NULL ? st->message : "");
	abort();
}

/* fz_call runs one envelope and decodes the reply as m's output (m NULL:
 * as whatever the envelope names, if known). Returns the status code;
 * *out (may be NULL) receives the decoded response on OK. */
static nrpc_code
fz_call(const uint8_t *env, size_t len, const nrpc_method *m,
    ProtobufCMessage **out, nrpc_status *st)
{
	uint8_t *reply = NULL;
	size_t reply_len = 0;
	ProtobufCMessage *resp = NULL;
	const ProtobufCMessageDescriptor *d =
	    m != NULL ? m->output : &nrpc__v1__metadata__descriptor;
	nrpc_code rc;

	if (nrpc_server_process(fz_srv, env, len, &reply, &reply_len) !=
	    NRPC_OK) {
		fz_fail("nrpc_server_process gave no reply", NULL);
	}
	rc = nrpc_envelope_decode_reply(
	    reply, reply_len, SIZE_MAX, d, &resp, st);
	ds_free(reply);
	if (fz_verbose) {
		fprintf(stderr, "fuzz_rpc: %s -> %s %s %s\n",
		    m != NULL ? m->name : "?", nrpc_code_name(rc), st->reason,
		    st->message);
	}
	if (rc == NRPC_OK) {
		if (out != NULL) {
			*out = resp;
		} else {
			protobuf_c_message_free_unpacked(resp, NULL);
		}
		return rc;
	}
	if (strcmp(st->reason, "MALFORMED_REPLY") == 0 && m != NULL) {
		fz_fail("the server's reply does not decode", st);
	}
	if (rc < NRPC_CANCELLED || rc > NRPC_UNAUTHENTICATED ||
	    st->reason[0] == '\0' || st->message[0] == '\0') {
		fz_fail("an error without code, reason or message", st);
	}
	return rc;
}

/* --- strict strings: an independent judge --- */

/* fz_utf8_ok checks p[0..n) against RFC 3629's UTF8-octets grammar,
 * byte range by byte range (unlike ds_utf8_valid, which decodes code
 * points), and refuses NUL as protobuf-c cannot keep it. */
static bool
fz_utf8_ok(const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = p[i];
		uint8_t lo = 0x80, hi = 0xbf; /* range of the second byte */
		size_t tail;

		if (c == 0x00) {
			return false;
		}
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			tail = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			tail = 2;
			lo = c == 0xe0 ? 0xa0 : 0x80;
			hi = c == 0xed ? 0x9f : 0xbf;
		} else if (c >= 0xf0 && c <= 0xf4) {
			tail = 3;
			lo = c == 0xf0 ? 0x90 : 0x80;
			hi = c == 0xf4 ? 0x8f : 0xbf;
		} else {
			return false;
		}
		if (n - i <= tail || p[i + 1] < lo || p[i + 1] > hi) {
			return false;
		}
		for (size_t k = 2; k <= tail; k++) {
			if (p[i + k] < 0x80 || p[i + k] > 0xbf) {
				return false;
			}
		}
		i += tail + 1;
	}
	return true;
}

/* fz_varint reads a protobuf varint of at most max_bytes bytes at *p
 * (before end); false when it does not end in time. */
static bool
fz_varint(const uint8_t **p, const uint8_t *end, unsigned max_bytes,
    uint64_t *v)
{
	*v = 0;
	for (unsigned i = 0; i < max_bytes && *p < end; i++) {
		uint8_t b = *(*p)++;

		*v |= (uint64_t) (b & 0x7f) << (7 * i);
		if ((b & 0x80) == 0) {
			return true;
		}
	}
	return false;
}

enum { FZ_STR_CLEAN = 0, FZ_STR_BAD = 1, FZ_STR_UNSURE = -1 };

/* fz_strings judges a message of type d: FZ_STR_BAD when a string field
 * at any depth holds a NUL or invalid UTF-8 (before any framing error);
 * FZ_STR_UNSURE when the wire is malformed, oddly framed (tags over 5
 * bytes, where protobuf-c's reading differs from the spec) or deeper
 * than 64; else FZ_STR_CLEAN. */
static int
fz_strings(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n,
    unsigned depth)
{
	const uint8_t *end = p + n;

	if (depth > 64) {
		return FZ_STR_UNSURE;
	}
	while (p < end) {
		const ProtobufCFieldDescriptor *f;
		uint64_t key, len;
		int sub;

		if (!fz_varint(&p, end, 5, &key) || (key >> 3) == 0 ||
		    (key >> 3) > UINT32_MAX) {
			return FZ_STR_UNSURE;
		}
		switch (key & 7) {
		case 0:
			if (!fz_varint(&p, end, 10, &len)) {
				return FZ_STR_UNSURE;
			}
			continue;
		case 1:
		case 5:
			len = (key & 7) == 1 ? 8 : 4;
			if ((size_t) (end - p) < len) {
				return FZ_STR_UNSURE;
			}
			p += len;
			continue;
		case 2:
			if (!fz_varint(&p, end, 5, &len) || len > INT32_MAX ||
			    len > (size_t) (end - p)) {
				return FZ_STR_UNSURE;
			}
			break;
		default:
			return FZ_STR_UNSURE;
		}
		f = protobuf_c_message_descriptor_get_field(d,
		    (unsigned) (key >> 3));
		if (f != NULL && f->type == PROTOBUF_C_TYPE_STRING &&
		    !fz_utf8_ok(p, (size_t) len)) {
			return FZ_STR_BAD;
		}
		if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE &&
		    (sub = fz_strings(f->descriptor, p, (size_t) len,
		        depth + 1)) != FZ_STR_CLEAN) {
			return sub;
		}
		p += len;
	}
	return FZ_STR_CLEAN;
}

/* fz_sent: what one call sent, for the strict-strings checks. */
typedef struct fz_sent {
	int env_strings;     /* fz_strings of the envelope */
	int body_strings;    /* fz_strings of the body, as m's input */
	bool body_decodes;   /* protobuf-c unpacks the body as m's input */
} fz_sent;

/* fz_judge fills *sent for an envelope env[0..len) carrying body (as m's
 * input; m NULL: no body checks). */
static void
fz_judge(fz_sent *sent, const nrpc_method *m, const uint8_t *env,
    size_t len, const uint8_t *body, size_t body_len)
{
	ProtobufCMessage *b;

	sent->env_strings = fz_strings(&nrpc__v1__request__descriptor, env,
	    len, 1);
	sent->body_strings = FZ_STR_UNSURE;
	sent->body_decodes = false;
	if (m == NULL || body == NULL) {
		return;
	}
	sent->body_strings = fz_strings(m->input, body, body_len, 1);
	if ((b = protobuf_c_message_unpack(m->input, NULL, body_len, body)) !=
	    NULL) {
		sent->body_decodes = true;
		protobuf_c_message_free_unpacked(b, NULL);
	}
}

/* fz_check_strict: the strict-strings rules for one answer. */
static void
fz_check_strict(const fz_sent *sent, size_t len, nrpc_code rc,
    const nrpc_status *st)
{
	bool bad_arg = rc == NRPC_INVALID_ARGUMENT;

	if (len > FZ_MAX_MESSAGE) {
		return; /* refused TOO_LARGE before anything is read */
	}
	if (sent->env_strings == FZ_STR_BAD) {
		if (!bad_arg || strcmp(st->reason, "MALFORMED_ENVELOPE") != 0) {
			fz_fail("an envelope string with a NUL or invalid "
			    "UTF-8 was not refused MALFORMED_ENVELOPE", st);
		}
		return;
	}
	if (sent->env_strings != FZ_STR_CLEAN) {
		return;
	}
	if (sent->body_strings == FZ_STR_BAD &&
	    !(bad_arg && strcmp(st->reason, "MALFORMED_BODY") == 0) &&
	    /* refused earlier, for the envelope's own limits */
	    !(bad_arg && strcmp(st->reason, "MALFORMED_ENVELOPE") == 0) &&
	    !(rc == NRPC_RESOURCE_EXHAUSTED &&
	        strcmp(st->reason, "TOO_LARGE") == 0)) {
		fz_fail("a body string with a NUL or invalid UTF-8 was not "
		    "refused MALFORMED_BODY", st);
	}
	if (sent->body_strings == FZ_STR_CLEAN && sent->body_decodes &&
	    strcmp(st->reason, "MALFORMED_BODY") == 0) {
		fz_fail("a body protobuf-c decodes, with clean strings, was "
		    "refused MALFORMED_BODY", st);
	}
}

/* fz_pack_env packs an envelope for method name with body (borrowed). */
static uint8_t *
fz_pack_env(const char *method, const uint8_t *body, size_t body_len,
    unsigned flags, unsigned seq, size_t *len)
{
	Nrpc__V1__Request env = NRPC__V1__REQUEST__INIT;
	Nrpc__V1__Metadata md = NRPC__V1__METADATA__INIT;
	Nrpc__V1__Metadata *mdp[1] = {&md};
	char rid[32];
	uint8_t *buf;

	env.method = (char *) method;
	env.body.data = (uint8_t *) body;
	env.body.len = body_len;
	if (flags & 0x10) {
		(void) snprintf(rid, sizeof(rid), "fz-%u-%u", fz_runs, seq);
		env.request_id = rid;
	}
	if (flags & 0x20) {
		env.client_name = "fuzz_rpc";
		md.key = "authorization";
		md.value = "Bearer x";
		env.n_metadata = 1;
		env.metadata = mdp;
	}
	*len = protobuf_c_message_get_packed_size(&env.base);
	if ((buf = malloc(*len + 1)) == NULL) {
		abort();
	}
	(void) protobuf_c_message_pack(&env.base, buf);
	return buf;
}

static uint8_t *
fz_pack_msg(const ProtobufCMessage *msg, size_t *out_len)
{
	uint8_t *buf;

	*out_len = protobuf_c_message_get_packed_size(msg);
	if ((buf = malloc(*out_len + 1)) == NULL) {
		abort();
	}
	(void) protobuf_c_message_pack(msg, buf);
	return buf;
}

/* fz_clamp_waits shortens the waits a decoded request asks for (a
 * Watch's timeout, a Lock's wait_ms) to at most FZ_WATCH_MAX_MS, so that
 * one input never parks for seconds; true when it changed msg. */
static bool
fz_clamp_waits(const nrpc_method *m, ProtobufCMessage *msg)
{
	if (m == fz_method(FZ_WATCH)) {
		Datasync__V1__WatchRequest *w = (Datasync__V1__WatchRequest *) msg;

		w->timeout_ms = 1 + w->timeout_ms % FZ_WATCH_MAX_MS;
		return true;
	}
	if (m == fz_method(3)) {
		Datasync__V1__LockRequest *l = (Datasync__V1__LockRequest *) msg;

		if (l->wait_ms > 0) {
			l->wait_ms = 1 + l->wait_ms % FZ_WATCH_MAX_MS;
			return true;
		}
	}
	return false;
}

/* fz_body_fixup decodes body as m's input; when it has lock_token "T",
 * the last Lock's token goes in, and waits
 * are clamped (fz_clamp_waits). Returns a packed copy (malloc) or NULL
 * to send the bytes as they are. */
static uint8_t *
fz_body_fixup(const nrpc_method *m, const uint8_t *body, size_t len,
    size_t *out_len, ProtobufCMessage **decoded)
{
	ProtobufCMessage *msg;
	const ProtobufCFieldDescriptor *f;
	char **tok;
	uint8_t *buf;
	bool clamped;

	*decoded = NULL;
	if ((msg = protobuf_c_message_unpack(m->input, NULL, len, body)) ==
	    NULL) {
		return NULL;
	}
	*decoded = msg;
	clamped = fz_clamp_waits(m, msg);
	f = protobuf_c_message_descriptor_get_field_by_name(
	    m->input, "lock_token");
	if (f == NULL || fz_token[0] == '\0') {
		return clamped ? fz_pack_msg(msg, out_len) : NULL;
	}
	tok = (char **) ((char *) msg + f->offset);
	if (*tok == NULL || strcmp(*tok, "T") != 0) {
		return clamped ? fz_pack_msg(msg, out_len) : NULL;
	}
	/* protobuf-c frees the string with the message: swap ours in and
	 * restore before freeing. */
	{
		char *saved = *tok;

		*tok = fz_token;
		buf = fz_pack_msg(msg, out_len);
		*tok = saved;
	}
	return buf;
}

/* fz_check_after: the read-your-writes checks after a successful write. */
static void
fz_check_after(const nrpc_method *m, const ProtobufCMessage *req,
    const ProtobufCMessage *resp, unsigned flags)
{
	Datasync__V1__GetRequest g = DATASYNC__V1__GET_REQUEST__INIT;
	ProtobufCMessage *got = NULL;
	nrpc_status st = {0};
	uint8_t *gb, *env;
	size_t gl, el;
	nrpc_code rc;
	const nrpc_method *get = fz_method(0);

	if (req == NULL) {
		return;
	}
	if (m == fz_method(1)) {
		g.key = ((const Datasync__V1__UpdateRequest *) req)->key;
	} else if (m == fz_method(2)) {
		g.key = ((const Datasync__V1__DeleteRequest *) req)->key;
	} else {
		return;
	}
	gl = protobuf_c_message_get_packed_size(&g.base);
	if ((gb = malloc(gl + 1)) == NULL) {
		abort();
	}
	(void) protobuf_c_message_pack(&g.base, gb);
	env = fz_pack_env(get->full_name, gb, gl, flags & ~0x10u, 0, &el);
	rc = fz_call(env, el, get, &got, &st);
	if (m == fz_method(1)) {
		const Datasync__V1__UpdateRequest *u =
		    (const Datasync__V1__UpdateRequest *) req;
		const Datasync__V1__Record *w =
		    ((const Datasync__V1__UpdateResponse *) resp)->record;
		const Datasync__V1__Record *r =
		    rc == NRPC_OK
		        ? ((Datasync__V1__GetResponse *) got)->record
		        : NULL;

		/* A replayed answer describes the original write, which a
		 * later one may have superseded: only fresh writes count.
		 * The reply carries no value unless asked for one: the value
		 * written is the request's. */
		if (!((const Datasync__V1__UpdateResponse *) resp)->replayed &&
		    (w == NULL || r == NULL || r->version != w->version ||
		        r->value.len != u->value.len ||
		        (r->value.len > 0 &&
		            memcmp(r->value.data, u->value.data,
		                r->value.len) != 0))) {
			fz_fail("Get after Update does not see the write", &st);
		}
		if (w != NULL &&
		    (u->return_value
		            ? w->value.len != u->value.len ||
		                  (w->value.len > 0 &&
		                      memcmp(w->value.data, u->value.data,
		                          w->value.len) != 0)
		            : w->value.len != 0)) {
			fz_fail("Update's reply has the wrong value for "
			        "return_value", &st);
		}
	} else if (!((const Datasync__V1__DeleteResponse *) resp)->replayed &&
	           rc != NRPC_NOT_FOUND) {
		fz_fail("Get after Delete does not say NOT_FOUND", &st);
	}
	if (got != NULL) {
		protobuf_c_message_free_unpacked(got, NULL);
	}
	nrpc_status_fini(&st);
	free(env);
	free(gb);
}

/* fz_snapshot packs what Get answers for key (the reply bytes, status
 * included) into a malloc'd buffer. */
static uint8_t *
fz_snapshot(const char *key, size_t *len)
{
	Datasync__V1__GetRequest g = DATASYNC__V1__GET_REQUEST__INIT;
	uint8_t gb[8192], *env, *reply = NULL;
	size_t gl, el;

	g.key = (char *) key;
	if (protobuf_c_message_get_packed_size(&g.base) > sizeof(gb)) {
		return NULL;
	}
	gl = protobuf_c_message_pack(&g.base, gb);
	env = fz_pack_env(fz_method(0)->full_name, gb, gl, 0, 0, &el);
	if (nrpc_server_process(fz_srv, env, el, &reply, len) != NRPC_OK) {
		fz_fail("nrpc_server_process gave no reply", NULL);
	}
	free(env);
	return reply;
}

/* fz_write_key returns the key of a write request, or NULL. */
static const char *
fz_write_key(const nrpc_method *m, const ProtobufCMessage *req)
{
	const ProtobufCFieldDescriptor *f;

	if (m == NULL || req == NULL || m == fz_method(0) ||
	    m == fz_method(5) || m->input != req->descriptor ||
	    (f = protobuf_c_message_descriptor_get_field_by_name(
	         m->input, "key")) == NULL) {
		return NULL;
	}
	return *(const char *const *) ((const char *) req + f->offset);
}

/* fz_run_one sends one envelope (twice with flag 0x08) and checks. */
static void
fz_run_one(const nrpc_method *m, const uint8_t *env, size_t len,
    const ProtobufCMessage *req, const fz_sent *sent, unsigned flags)
{
	const char *key = fz_write_key(m, req);

	for (int round = 0; round < ((flags & 0x08) ? 2 : 1); round++) {
		ProtobufCMessage *resp = NULL;
		nrpc_status st = {0};
		uint8_t *before = NULL;
		size_t before_len = 0;
		nrpc_code rc;

		if (key != NULL) {
			before = fz_snapshot(key, &before_len);
		}
		rc = fz_call(env, len, m, &resp, &st);
		fz_check_strict(sent, len, rc, &st);
		if (rc != NRPC_OK && before != NULL) {
			size_t after_len = 0;
			uint8_t *after = fz_snapshot(key, &after_len);

			if (after == NULL || after_len != before_len ||
			    memcmp(after, before, before_len) != 0) {
				fz_fail("a write that failed changed the record", &st);
			}
			ds_free(after);
		}
		ds_free(before);
		if (rc == NRPC_OK && m != NULL) {
			if (m == fz_method(3)) {
				const Datasync__V1__LockResponse *l =
				    (const Datasync__V1__LockResponse *) resp;

				(void) snprintf(fz_token, sizeof(fz_token), "%s",
				    l->lock_token);
			}
			fz_check_after(m, req, resp, flags);
		}
		if (resp != NULL) {
			protobuf_c_message_free_unpacked(resp, NULL);
		}
		nrpc_status_fini(&st);
	}
}

/* fz_raw: the input is one envelope. The method it names, if it is one
 * of ours, decides how the reply is checked. */
static void
fz_raw(const uint8_t *data, size_t size, unsigned flags)
{
	Nrpc__V1__Request *env;
	const nrpc_method *m = NULL;
	ProtobufCMessage *req = NULL;
	uint8_t *rebuilt = NULL;
	fz_sent sent;

	if ((env = nrpc__v1__request__unpack(NULL, size, data)) != NULL) {
		m = fz_method_by_name(env->method);
		if (m != NULL && m != &fz_ping && m != &fz_unknown) {
			req = protobuf_c_message_unpack(
			    m->input, NULL, env->body.len, env->body.data);
		} else {
			m = NULL;
		}
	}
	if (req != NULL && fz_clamp_waits(m, req)) {
		uint8_t *body;

		/* As fz_body_fixup: short waits. The envelope is rebuilt. */
		body = fz_pack_msg(req, &env->body.len);
		free(env->body.data);
		env->body.data = body;
		size = nrpc__v1__request__get_packed_size(env);
		if ((rebuilt = malloc(size + 1)) == NULL) {
			abort();
		}
		(void) nrpc__v1__request__pack(env, rebuilt);
		data = rebuilt;
	}
	fz_judge(&sent, m, data, size, m != NULL ? env->body.data : NULL,
	    m != NULL ? env->body.len : 0);
	fz_run_one(m, data, size, size <= FZ_MAX_MESSAGE ? req : NULL, &sent,
	    flags);
	if (req != NULL) {
		protobuf_c_message_free_unpacked(req, NULL);
	}
	if (env != NULL) {
		nrpc__v1__request__free_unpacked(env, NULL);
	}
	free(rebuilt);
}

static void
fz_sequence(const uint8_t *data, size_t size, unsigned flags)
{
	size_t o = 0;

	for (unsigned i = 0; i < FZ_MAX_CALLS && o + 3 <= size; i++) {
		unsigned op = data[o];
		size_t n = (size_t) data[o + 1] << 8 | data[o + 2];
		const nrpc_method *m = fz_method(op);
		ProtobufCMessage *req = NULL;
		uint8_t *fixed, *env;
		size_t fixed_len = 0, env_len;
		const uint8_t *body;
		fz_sent sent;

		o += 3;
		if (n > size - o) {
			n = size - o;
		}
		body = data + o;
		o += n;
		atomic_fetch_add(&fz_wall.now, (int64_t) (op >> 3) * 500);
		fixed = fz_body_fixup(m, body, n, &fixed_len, &req);
		env = fz_pack_env(m->full_name, fixed != NULL ? fixed : body,
		    fixed != NULL ? fixed_len : n, flags, i, &env_len);
		if (m == &fz_ping || m == &fz_unknown) {
			m = NULL;
		}
		fz_judge(&sent, m, env, env_len, fixed != NULL ? fixed : body,
		    fixed != NULL ? fixed_len : n);
		fz_run_one(m, env, env_len, env_len <= FZ_MAX_MESSAGE ? req : NULL,
		    &sent, flags);
		free(env);
		free(fixed);
		if (req != NULL) {
			protobuf_c_message_free_unpacked(req, NULL);
		}
	}
}

/* fz_client: the bytes as a reply the client decodes. */
static void
fz_client(const uint8_t *data, size_t size)
{
	ProtobufCMessage *resp = NULL;
	nrpc_status st = {0};

	if (size < 1) {
		return;
	}
	if (nrpc_envelope_decode_reply(data + 1, size - 1, FZ_MAX_MESSAGE,
	        fz_method(data[0] % 7)->output, &resp, &st) == NRPC_OK) {
		protobuf_c_message_free_unpacked(resp, NULL);
	} else if (st.code < NRPC_CANCELLED ||
	           st.code > NRPC_UNAUTHENTICATED) {
		/* A hostile server's code outside gRPC's table must have
		 * become UNKNOWN, and an error can never read as OK. */
		fz_fail("client decode gave a code outside the table", &st);
	}
	nrpc_status_fini(&st);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned flags;

	if (size < 1) {
		return 0;
	}
	flags = data[0];
	if ((flags & 0x04) || ++fz_runs % FZ_RESET_EVERY == 0) {
		fz_down();
		fz_up();
	}
	switch (flags & 3) {
	case 0:
		fz_raw(data + 1, size - 1, flags);
		break;
	case 1:
	case 2:
		fz_sequence(data + 1, size - 1, flags);
		break;
	default:
		fz_client(data + 1, size - 1);
		break;
	}
	return 0;
}
