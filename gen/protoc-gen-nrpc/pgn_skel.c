/*
 * pgn_skel.c - the method table, the service descriptor and the server
 * skeleton: a typed handler table, its dispatch function, register and a
 * typed reply function per method.
 *
 * The dispatch function is the one place where the runtime's untyped
 * request becomes typed: the runtime decoded it with the descriptor of
 * the same table entry, so the cast names the type it really has.
 * Handlers are called as (h->name)(...), so that a function-like macro
 * that happens to share a method's name cannot expand there.
 */
#include "pgn.h"

/* --- declarations (.nrpc.h) --- */

void
pgn_skel_decl_tables(pgn_emit *e, const pgn_service *s)
{
	size_t i;

	pgn_emitf(e, "/* --- %s --- */\n\n", s->full_name);
	if (s->comment != NULL) {
		pgn_emit_comment_begin(e);
		pgn_emit_para(e, "%s:", s->full_name);
		pgn_emit_verbatim(e, s->comment);
		pgn_emit_comment_end(e);
		pgn_emitf(e, "\n");
	}
	pgn_emit_comment_begin(e);
	pgn_emit_para(e,
	    "%s_METHOD_* number the methods of %s in .proto order: they index "
	    "%s_methods and are the method_index the runtime passes to the "
	    "dispatch function.",
	    s->upper, s->name, s->prefix);
	pgn_emit_comment_end(e);
	pgn_emitf(e, "enum {\n");
	pgn_emit_in(e);
	for (i = 0; i < s->n_methods; i++) {
		pgn_emitf(e, "%s_METHOD_%s = %zu,\n", s->upper,
		    s->methods[i].upper, i);
	}
	pgn_emitf(e, "%s_N_METHODS = %zu\n", s->upper, s->n_methods);
	pgn_emit_out(e);
	pgn_emitf(e, "};\n\n");

	pgn_emit_comment_begin(e);
	pgn_emit_para(e,
	    "%s_methods is the method table of %s: full name, name, request "
	    "and response descriptors and idempotency of each method. Static "
	    "data.",
	    s->prefix, s->name);
	pgn_emit_comment_end(e);
	pgn_emit_decl(e, "extern const nrpc_method",
	    pgn_emit_str(e, "%s_methods[%s_N_METHODS];", s->prefix, s->upper));
	pgn_emitf(e, "\n");

	pgn_emit_comment_begin(e);
	pgn_emit_para(e,
	    "%s_service describes %s to nrpc_server_add_service() and "
	    "nrpc_service_find_method(). Static data.",
	    s->prefix, s->full_name);
	pgn_emit_comment_end(e);
	pgn_emit_decl(e, "extern const nrpc_service_desc",
	    pgn_emit_str(e, "%s_service;", s->prefix));
	pgn_emitf(e, "\n");
}

void
pgn_skel_decls(pgn_emit *e, const pgn_service *s)
{
	const char *params[4];
	size_t i;

	pgn_emitf(e, "/* --- %s: server --- */\n\n", s->full_name);
	pgn_emit_comment_begin(e);
	pgn_emit_para(e,
	    "%s_handlers is the typed handler table of %s. A handler runs on a "
	    "worker thread with the call, the request (borrowed until the call "
	    "is finished) and the arg given to %s_register(). It must finish "
	    "the call exactly once, from any thread and at any later time: "
	    "with its _reply function, nrpc_call_finish() or nrpc_call_fail(). "
	    "A NULL member makes its method answer UNIMPLEMENTED.",
	    s->prefix, s->name, s->prefix);
	pgn_emit_comment_end(e);
	pgn_emitf(e, "typedef struct %s_handlers {\n", s->prefix);
	pgn_emit_in(e);
	for (i = 0; i < s->n_methods; i++) {
		const pgn_method *m = &s->methods[i];

		pgn_emit_comment_begin(e);
		if (pgn_is_reserved(m->snake)) {
			pgn_emit_para(e,
			    "%s (%s: %s is reserved in C): reply with %s_%s_reply()",
			    m->name, m->member, m->snake, s->prefix, m->stem);
		} else {
			pgn_emit_para(e, "%s: reply with %s_%s_reply()", m->name,
			    s->prefix, m->stem);
		}
		pgn_emit_comment_end(e);
		params[0] = "nrpc_call *call";
		params[1] = pgn_emit_str(e, "const %s *req", m->in->c_name);
		params[2] = "void *arg";
		pgn_emit_list(e, pgn_emit_str(e, "void (*%s)(", m->member), params,
		    3, ");");
		pgn_emitf(e, "\n");
	}
	pgn_emit_out(e);
	pgn_emitf(e, "} %s_handlers;\n\n", s->prefix);

	pgn_emit_comment_begin(e);
	pgn_emit_para(e,
	    "%s_register adds %s to srv, before nrpc_server_start(). h and arg "
	    "are borrowed for the server's lifetime. Returns what "
	    "nrpc_server_add_service() returns: NRPC_OK, or the failure with "
	    "st set (ALREADY_EXISTS when a method is registered already, "
	    "FAILED_PRECONDITION after the start).",
	    s->prefix, s->full_name);
	pgn_emit_comment_end(e);
	params[0] = "nrpc_server *srv";
	params[1] = pgn_emit_str(e, "const %s_handlers *h", s->prefix);
	params[2] = "void *arg";
	params[3] = "nrpc_status *st";
	pgn_emit_list(e, pgn_emit_str(e, "int %s_register(", s->prefix), params,
	    4, ");");
	pgn_emitf(e, "\n\n");

	for (i = 0; i < s->n_methods; i++) {
		const pgn_method *m = &s->methods[i];

		pgn_emit_comment_begin(e);
		pgn_emit_para(e,
		    "%s_%s_reply finishes a %s.%s call with OK and resp "
		    "(borrowed; packed before the return). The call and its "
		    "request are freed: use neither afterwards. Thread-safe.",
		    s->prefix, m->stem, s->name, m->name);
		pgn_emit_comment_end(e);
		params[0] = "nrpc_call *call";
		params[1] = pgn_emit_str(e, "const %s *resp", m->out->c_name);
		pgn_emit_list(e,
		    pgn_emit_str(e, "void %s_%s_reply(", s->prefix, m->stem),
		    params, 2, ");");
		pgn_emitf(e, "\n\n");
	}
}

/* --- definitions (.nrpc.c) --- */

void
pgn_skel_def_tables(pgn_emit *e, const pgn_service *s)
{
	size_t i;

	pgn_emitf(e, "/* --- %s --- */\n\n", s->full_name);
	pgn_emit_decl(e, "const nrpc_method",
	    pgn_emit_str(e, "%s_methods[%s_N_METHODS] = {", s->prefix,
	        s->upper));
	pgn_emit_in(e);
	for (i = 0; i < s->n_methods; i++) {
		const pgn_method *m = &s->methods[i];

		pgn_emitf(e, "[%s_METHOD_%s] = {\n", s->upper, m->upper);
		pgn_emit_in(e);
		pgn_emitf(e, ".full_name = \"/%s/%s\",\n", s->full_name, m->name);
		pgn_emitf(e, ".name = \"%s\",\n", m->name);
		pgn_emitf(e, ".input = &%s__descriptor,\n", m->in->lower);
		pgn_emitf(e, ".output = &%s__descriptor,\n", m->out->lower);
		pgn_emitf(e, ".idempotent = %s,\n",
		    m->idempotent ? "true" : "false");
		pgn_emit_out(e);
		pgn_emitf(e, "},\n");
	}
	pgn_emit_out(e);
	pgn_emitf(e, "};\n\n");

	pgn_emitf(e, "const nrpc_service_desc %s_service = {\n", s->prefix);
	pgn_emit_in(e);
	pgn_emitf(e, ".full_name = \"%s\",\n", s->full_name);
	pgn_emitf(e, ".name = \"%s\",\n", s->name);
	pgn_emitf(e, ".n_methods = %s_N_METHODS,\n", s->upper);
	pgn_emitf(e, ".methods = %s_methods,\n", s->prefix);
	pgn_emit_out(e);
	pgn_emitf(e, "};\n\n");
}

static void
pgn_skel_def_dispatch(pgn_emit *e, const pgn_service *s)
{
	const char *params[5];
	const char *args[3];
	size_t i;

	params[0] = "const void *table";
	params[1] = "size_t method_index";
	params[2] = "nrpc_call *call";
	params[3] = "const ProtobufCMessage *req";
	params[4] = "void *arg";
	pgn_emit_comment_begin(e);
	pgn_emit_para(e,
	    "The nrpc_dispatch_fn of %s: calls the typed handler for "
	    "method_index, or answers UNIMPLEMENTED for an empty slot.",
	    s->full_name);
	pgn_emit_comment_end(e);
	pgn_emitf(e, "static nrpc_code\n");
	pgn_emit_list(e, pgn_emit_str(e, "%s_dispatch(", s->prefix), params, 5,
	    ")");
	pgn_emitf(e, "\n{\n");
	pgn_emit_in(e);
	pgn_emitf(e, "const %s_handlers *h = table;\n\n", s->prefix);
	pgn_emitf(e, "switch (method_index) {\n");
	for (i = 0; i < s->n_methods; i++) {
		const pgn_method *m = &s->methods[i];

		pgn_emitf(e, "case %s_METHOD_%s:\n", s->upper, m->upper);
		pgn_emit_in(e);
		pgn_emitf(e, "if (h->%s == NULL) {\n", m->member);
		pgn_emit_in(e);
		pgn_emitf(e, "break;\n");
		pgn_emit_out(e);
		pgn_emitf(e, "}\n");
		args[0] = "call";
		args[1] = pgn_emit_str(e, "(const %s *) req", m->in->c_name);
		args[2] = "arg";
		pgn_emit_list(e, pgn_emit_str(e, "(h->%s)(", m->member), args, 3,
		    ");");
		pgn_emitf(e, "\n");
		pgn_emitf(e, "return NRPC_OK;\n");
		pgn_emit_out(e);
	}
	pgn_emitf(e, "default:\n");
	pgn_emit_in(e);
	pgn_emitf(e, "break;\n");
	pgn_emit_out(e);
	pgn_emitf(e, "}\n");
	pgn_emitf(e, "return NRPC_UNIMPLEMENTED;\n");
	pgn_emit_out(e);
	pgn_emitf(e, "}\n\n");
}

void
pgn_skel_defs(pgn_emit *e, const pgn_service *s)
{
	const char *params[4];
	const char *args[6];
	size_t i;

	pgn_emitf(e, "/* --- %s: server --- */\n\n", s->full_name);
	pgn_skel_def_dispatch(e, s);

	params[0] = "nrpc_server *srv";
	params[1] = pgn_emit_str(e, "const %s_handlers *h", s->prefix);
	params[2] = "void *arg";
	params[3] = "nrpc_status *st";
	pgn_emitf(e, "int\n");
	pgn_emit_list(e, pgn_emit_str(e, "%s_register(", s->prefix), params, 4,
	    ")");
	pgn_emitf(e, "\n{\n");
	pgn_emit_in(e);
	args[0] = "srv";
	args[1] = pgn_emit_str(e, "&%s_service", s->prefix);
	args[2] = pgn_emit_str(e, "%s_dispatch", s->prefix);
	args[3] = "h";
	args[4] = "arg";
	args[5] = "st";
	pgn_emit_list(e, "return nrpc_server_add_service(", args, 6, ");");
	pgn_emitf(e, "\n");
	pgn_emit_out(e);
	pgn_emitf(e, "}\n\n");

	for (i = 0; i < s->n_methods; i++) {
		const pgn_method *m = &s->methods[i];

		params[0] = "nrpc_call *call";
		params[1] = pgn_emit_str(e, "const %s *resp", m->out->c_name);
		pgn_emitf(e, "void\n");
		pgn_emit_list(e, pgn_emit_str(e, "%s_%s_reply(", s->prefix, m->stem),
		    params, 2, ")");
		pgn_emitf(e, "\n{\n");
		pgn_emit_in(e);
		pgn_emitf(e, "nrpc_call_reply(call, (const ProtobufCMessage *) resp);\n");
		pgn_emit_out(e);
		pgn_emitf(e, "}\n\n");
	}
}
