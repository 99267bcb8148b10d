/*
 * pgn_stub.c - typed client stubs: a blocking and an asynchronous one per
 * method, over nrpc_client_call() and nrpc_client_call_async().
 *
 * Messages go to the runtime as (const ProtobufCMessage *) casts, not as
 * &req->base: the first member of every protoc-c message is its
 * ProtobufCMessage, but its name can be changed with
 * `option (pb_c_msg).base_field_name`. The asynchronous stub passes its
 * typed callback as an nrpc_fnptr and a generated trampoline converts it
 * back before calling it, so a function is never called through a pointer
 * of another type.
 */
#include <string.h>

#include "pgn.h"

/* --- declarations (.nrpc.h) --- */

static void
pgn_stub_decl_call(pgn_emit *e, const pgn_service *s, const pgn_method *m)
{
	const char *params[5];

	pgn_emit_comment_begin(e);
	pgn_emit_para(e, "%s_%s calls %s.%s and waits for the reply.",
	    s->prefix, m->stem, s->name, m->name);
	if (strcmp(m->stem, m->snake) != 0) {
		pgn_emit_para(e,
		    "(The trailing underscore keeps its names apart from %s_%s, "
		    "which belongs to the service.)",
		    s->prefix, m->snake);
	}
	if (m->comment != NULL) {
		pgn_emit_verbatim(e, m->comment);
	}
	pgn_emit_blank(e);
	pgn_emit_para(e,
	    "req is borrowed; opts may be NULL. On NRPC_OK *resp is the "
	    "response (owned: free it with %s__free_unpacked(*resp, NULL)); on "
	    "failure *resp is untouched. Either way st, unless NULL, is "
	    "overwritten with the status, detail included: release it with "
	    "nrpc_status_fini(). Returns the status code.",
	    m->out->lower);
	pgn_emit_para(e,
	    "Thread-safe. It blocks, so never call it from an nng callback "
	    "thread: use %s_%s_async() there.%s%s%s",
	    s->prefix, m->stem,
	    m->idempotency != NULL ? " Idempotent (" : "",
	    m->idempotency != NULL ? m->idempotency : "",
	    m->idempotency != NULL ? "): nrpc may resend it without a request "
	                              "id."
	                            : "");
	if (m->deprecated) {
		pgn_emit_para(e, "Deprecated in the .proto file.");
	}
	pgn_emit_comment_end(e);
	params[0] = "nrpc_client *c";
	params[1] = pgn_emit_str(e, "const %s *req", m->in->c_name);
	params[2] = pgn_emit_str(e, "%s **resp", m->out->c_name);
	params[3] = "const nrpc_call_opts *opts";
	params[4] = "nrpc_status *st";
	pgn_emit_list(e, pgn_emit_str(e, "nrpc_code %s_%s(", s->prefix, m->stem),
	    params, 5, ");");
	pgn_emitf(e, "\n\n");
}

static void
pgn_stub_decl_cb(pgn_emit *e, const pgn_service *s, const pgn_method *m)
{
	const char *params[3];

	pgn_emit_comment_begin(e);
	pgn_emit_para(e,
	    "%s_%s_cb receives the outcome of %s_%s_async(), exactly once, on "
	    "an nng thread; it must not block. resp is the response (owned by "
	    "the callback: free it with %s__free_unpacked(resp, NULL)), NULL "
	    "unless st->code is NRPC_OK. st is borrowed until the callback "
	    "returns.",
	    s->prefix, m->stem, s->prefix, m->stem, m->out->lower);
	pgn_emit_comment_end(e);
	params[0] = "void *arg";
	params[1] = pgn_emit_str(e, "%s *resp", m->out->c_name);
	params[2] = "const nrpc_status *st";
	pgn_emit_list(e,
	    pgn_emit_str(e, "typedef void (*%s_%s_cb)(", s->prefix, m->stem),
	    params, 3, ");");
	pgn_emitf(e, "\n\n");
}

static void
pgn_stub_decl_async(pgn_emit *e, const pgn_service *s, const pgn_method *m)
{
	const char *params[6];

	pgn_emit_comment_begin(e);
	pgn_emit_para(e,
	    "%s_%s_async starts %s.%s and returns at once. req is borrowed "
	    "(packed before the return); opts may be NULL. On NRPC_OK the "
	    "call is under way and cb(arg, resp, st) will run exactly once, "
	    "possibly before this returns. Otherwise cb will not run and st "
	    "(which may be NULL) says why. A NULL cb discards the reply.",
	    s->prefix, m->stem, s->name, m->name);
	pgn_emit_para(e,
	    "Thread-safe and never blocks: the stub to use on nng callback "
	    "threads.");
	pgn_emit_comment_end(e);
	params[0] = "nrpc_client *c";
	params[1] = pgn_emit_str(e, "const %s *req", m->in->c_name);
	params[2] = "const nrpc_call_opts *opts";
	params[3] = pgn_emit_str(e, "%s_%s_cb cb", s->prefix, m->stem);
	params[4] = "void *arg";
	params[5] = "nrpc_status *st";
	pgn_emit_list(e,
	    pgn_emit_str(e, "nrpc_code %s_%s_async(", s->prefix, m->stem),
	    params, 6, ");");
	pgn_emitf(e, "\n\n");
}

void
pgn_stub_decls(pgn_emit *e, const pgn_service *s)
{
	size_t i;

	pgn_emitf(e, "/* --- %s: client --- */\n\n", s->full_name);
	for (i = 0; i < s->n_methods; i++) {
		pgn_stub_decl_call(e, s, &s->methods[i]);
		pgn_stub_decl_cb(e, s, &s->methods[i]);
		pgn_stub_decl_async(e, s, &s->methods[i]);
	}
}

/* --- definitions (.nrpc.c) --- */

/* pgn_stub_method_ref is "&<prefix>_methods[<UPPER>_METHOD_<M>]". */
static const char *
pgn_stub_method_ref(pgn_emit *e, const pgn_service *s, const pgn_method *m)
{
	return pgn_emit_str(e, "&%s_methods[%s_METHOD_%s]", s->prefix,
	    s->upper, m->upper);
}

static void
pgn_stub_def_call(pgn_emit *e, const pgn_service *s, const pgn_method *m)
{
	const char *params[5];
	const char *args[6];

	params[0] = "nrpc_client *c";
	params[1] = pgn_emit_str(e, "const %s *req", m->in->c_name);
	params[2] = pgn_emit_str(e, "%s **resp", m->out->c_name);
	params[3] = "const nrpc_call_opts *opts";
	params[4] = "nrpc_status *st";
	pgn_emitf(e, "nrpc_code\n");
	pgn_emit_list(e, pgn_emit_str(e, "%s_%s(", s->prefix, m->stem), params,
	    5, ")");
	pgn_emitf(e, "\n{\n");
	pgn_emit_in(e);
	pgn_emitf(e, "ProtobufCMessage *out = NULL;\n");
	pgn_emitf(e, "nrpc_code rv;\n\n");
	args[0] = "c";
	args[1] = pgn_stub_method_ref(e, s, m);
	args[2] = "(const ProtobufCMessage *) req";
	args[3] = "&out";
	args[4] = "opts";
	args[5] = "st";
	pgn_emit_list(e, "rv = nrpc_client_call(", args, 6, ");");
	pgn_emitf(e, "\n");
	/* *resp is written on success only (STYLE rule 7). */
	pgn_emitf(e, "if (rv == NRPC_OK) {\n");
	pgn_emit_in(e);
	pgn_emitf(e, "*resp = (%s *) out;\n", m->out->c_name);
	pgn_emit_out(e);
	pgn_emitf(e, "}\n");
	pgn_emitf(e, "return rv;\n");
	pgn_emit_out(e);
	pgn_emitf(e, "}\n\n");
}

static void
pgn_stub_def_done(pgn_emit *e, const pgn_service *s, const pgn_method *m)
{
	const char *params[4];
	const char *args[3];

	pgn_emit_comment_begin(e);
	pgn_emit_para(e,
	    "The nrpc_done_fn of %s_%s_async(): converts the callback back to "
	    "its own type before calling it.",
	    s->prefix, m->stem);
	pgn_emit_comment_end(e);
	params[0] = "nrpc_fnptr user_cb";
	params[1] = "void *user_arg";
	params[2] = "ProtobufCMessage *resp";
	params[3] = "const nrpc_status *st";
	pgn_emitf(e, "static void\n");
	pgn_emit_list(e, pgn_emit_str(e, "%s_%s_done(", s->prefix, m->stem),
	    params, 4, ")");
	pgn_emitf(e, "\n{\n");
	pgn_emit_in(e);
	pgn_emit_decl(e, pgn_emit_str(e, "%s_%s_cb cb =", s->prefix, m->stem),
	    pgn_emit_str(e, "(%s_%s_cb) user_cb;", s->prefix, m->stem));
	pgn_emitf(e, "\n");
	pgn_emitf(e, "if (cb == NULL) {\n");
	pgn_emit_in(e);
	pgn_emitf(e, "if (resp != NULL) {\n");
	pgn_emit_in(e);
	pgn_emitf(e, "protobuf_c_message_free_unpacked(resp, NULL);\n");
	pgn_emit_out(e);
	pgn_emitf(e, "}\n");
	pgn_emitf(e, "return;\n");
	pgn_emit_out(e);
	pgn_emitf(e, "}\n");
	args[0] = "user_arg";
	args[1] = pgn_emit_str(e, "(%s *) resp", m->out->c_name);
	args[2] = "st";
	pgn_emit_list(e, "cb(", args, 3, ");");
	pgn_emitf(e, "\n");
	pgn_emit_out(e);
	pgn_emitf(e, "}\n\n");
}

static void
pgn_stub_def_async(pgn_emit *e, const pgn_service *s, const pgn_method *m)
{
	const char *params[6];
	const char *args[8];

	params[0] = "nrpc_client *c";
	params[1] = pgn_emit_str(e, "const %s *req", m->in->c_name);
	params[2] = "const nrpc_call_opts *opts";
	params[3] = pgn_emit_str(e, "%s_%s_cb cb", s->prefix, m->stem);
	params[4] = "void *arg";
	params[5] = "nrpc_status *st";
	pgn_emitf(e, "nrpc_code\n");
	pgn_emit_list(e, pgn_emit_str(e, "%s_%s_async(", s->prefix, m->stem),
	    params, 6, ")");
	pgn_emitf(e, "\n{\n");
	pgn_emit_in(e);
	args[0] = "c";
	args[1] = pgn_stub_method_ref(e, s, m);
	args[2] = "(const ProtobufCMessage *) req";
	args[3] = "opts";
	args[4] = pgn_emit_str(e, "%s_%s_done", s->prefix, m->stem);
	args[5] = "(nrpc_fnptr) cb";
	args[6] = "arg";
	args[7] = "st";
	pgn_emit_list(e, "return nrpc_client_call_async(", args, 8, ");");
	pgn_emitf(e, "\n");
	pgn_emit_out(e);
	pgn_emitf(e, "}\n\n");
}

void
pgn_stub_defs(pgn_emit *e, const pgn_service *s)
{
	size_t i;

	pgn_emitf(e, "/* --- %s: client --- */\n\n", s->full_name);
	for (i = 0; i < s->n_methods; i++) {
		pgn_stub_def_call(e, s, &s->methods[i]);
		pgn_stub_def_done(e, s, &s->methods[i]);
		pgn_stub_def_async(e, s, &s->methods[i]);
	}
}
