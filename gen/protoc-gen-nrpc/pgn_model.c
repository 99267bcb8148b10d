/*
 * pgn_model.c - from a decoded CodeGeneratorRequest to the services to
 * generate, with every name resolved and checked.
 *
 * Everything that later lands in C text is checked here, so the emitters
 * can print it as it is: names are identifiers (PGN_EBADREQ otherwise:
 * protoc never sends anything else), file names can stand in a string
 * literal and a comment, comments are defused. Lookups are sorted arrays
 * and bsearch, so a hostile request of 64 MiB costs n log n, not n^2.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgn.h"

/* FileOptions field of protobuf-c's `(pb_c_file)` extension
 * (protobuf-c/protobuf-c.proto), and c_package's number inside it. */
#define PGN_PB_C_FILE_FIELD 1019
#define PGN_PB_C_PACKAGE_FIELD 6

/* descriptor.proto field numbers, for source_code_info paths. */
#define PGN_PATH_FILE_SERVICE 6
#define PGN_PATH_SERVICE_METHOD 2

pgn_err
pgn_fail(pgn_ctx *ctx, pgn_err rv, const char *fmt, ...)
{
	va_list ap;
	char *msg;
	int n;

	if (ctx->error != NULL) {
		return rv;
	}
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || (msg = pgn_arena_alloc(&ctx->arena, (size_t) n + 1)) ==
	    NULL) {
		return PGN_ENOMEM;
	}
	va_start(ap, fmt);
	(void) vsnprintf(msg, (size_t) n + 1, fmt, ap); /* sized above */
	va_end(ap);
	ctx->error = msg;
	return rv;
}

static const char *
pgn_str(const char *s)
{
	return s != NULL ? s : "";
}

/* pgn_shown is s for an error message, or "?" when s is NULL or holds
 * control characters (it may come from a hostile request). */
static const char *
pgn_shown(const char *s)
{
	size_t i;

	if (s == NULL) {
		return "?";
	}
	for (i = 0; s[i] != 0; i++) {
		if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f) {
			return "?";
		}
	}
	return s;
}

/* --- (pb_c_file).c_package, from the options' unknown fields --- */

/* pgn_varint reads a varint from p[*i..n); false when malformed. */
static bool
pgn_varint(const uint8_t *p, size_t n, size_t *i, uint64_t *v)
{
	unsigned shift;

	*v = 0;
	for (shift = 0; shift < 64; shift += 7) {
		if (*i >= n) {
			return false;
		}
		*v |= (uint64_t) (p[*i] & 0x7f) << shift;
		if ((p[(*i)++] & 0x80) == 0) {
			return true;
		}
	}
	return false;
}

/* pgn_c_package_scan finds c_package in a serialized
 * ProtobufCFileOptions (the last one wins, as protobuf merges). */
static pgn_err
pgn_c_package_scan(pgn_ctx *ctx, const uint8_t *p, size_t n,
    const char **out)
{
	size_t i = 0;
	uint64_t key;
	uint64_t v;

	while (i < n) {
		if (!pgn_varint(p, n, &i, &key)) {
			return PGN_EBADREQ;
		}
		switch (key & 7) {
		case PROTOBUF_C_WIRE_TYPE_VARINT:
			if (!pgn_varint(p, n, &i, &v)) {
				return PGN_EBADREQ;
			}
			break;
		case PROTOBUF_C_WIRE_TYPE_64BIT:
			if (n - i < 8) {
				return PGN_EBADREQ;
			}
			i += 8;
			break;
		case PROTOBUF_C_WIRE_TYPE_32BIT:
			if (n - i < 4) {
				return PGN_EBADREQ;
			}
			i += 4;
			break;
		case PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED:
			if (!pgn_varint(p, n, &i, &v) || v > n - i) {
				return PGN_EBADREQ;
			}
			if ((key >> 3) == PGN_PB_C_PACKAGE_FIELD &&
			    (*out = pgn_arena_strndup(&ctx->arena,
			         (const char *) p + i, (size_t) v)) == NULL) {
				return PGN_ENOMEM;
			}
			i += (size_t) v;
			break;
		default: /* groups: not in protobuf-c.proto */
			return PGN_EBADREQ;
		}
	}
	return PGN_OK;
}

/* pgn_c_package reads `option (pb_c_file).c_package` of fd. protobuf-c
 * keeps extensions it does not know as unknown fields, whose data is the
 * value as on the wire: for a message, its length prefix and bytes. */
static pgn_err
pgn_c_package(pgn_ctx *ctx, const Google__Protobuf__FileDescriptorProto *fd,
    const char **out)
{
	const ProtobufCMessage *opts = (const ProtobufCMessage *) fd->options;
	unsigned u;
	pgn_err rv;

	*out = NULL;
	if (opts == NULL) {
		return PGN_OK;
	}
	for (u = 0; u < opts->n_unknown_fields; u++) {
		const ProtobufCMessageUnknownField *f = &opts->unknown_fields[u];
		size_t i = 0;
		uint64_t len;

		if (f->tag != PGN_PB_C_FILE_FIELD ||
		    f->wire_type != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED) {
			continue;
		}
		if (!pgn_varint(f->data, f->len, &i, &len) ||
		    len != f->len - i) {
			return pgn_fail(ctx, PGN_EBADREQ,
			    "%s: malformed (pb_c_file) option", pgn_shown(fd->name));
		}
		if ((rv = pgn_c_package_scan(ctx, f->data + i, (size_t) len,
		         out)) != PGN_OK) {
			return rv == PGN_EBADREQ
			           ? pgn_fail(ctx, rv,
			                 "%s: malformed (pb_c_file) option",
			                 pgn_shown(fd->name))
			           : rv;
		}
	}
	if (*out != NULL && !pgn_is_dotted(*out)) {
		return pgn_fail(ctx, PGN_EPROTO,
		    "%s: (pb_c_file).c_package \"%s\" is not a package name",
		    pgn_shown(fd->name), pgn_shown(*out));
	}
	return PGN_OK;
}

/* --- the type table --- */

/* pgn_count_types counts the messages of m and below. */
static pgn_err
pgn_count_types(pgn_ctx *ctx, const Google__Protobuf__DescriptorProto *m,
    const char *file, unsigned depth, size_t *count)
{
	size_t i;
	pgn_err rv;

	if (depth > PGN_MAX_DEPTH) {
		return pgn_fail(ctx, PGN_EBADREQ,
		    "%s: messages nested deeper than %d", file, PGN_MAX_DEPTH);
	}
	if (m->name == NULL || !pgn_is_ident(m->name)) {
		return pgn_fail(ctx, PGN_EBADREQ,
		    "%s: a message name is not an identifier", file);
	}
	(*count)++;
	for (i = 0; i < m->n_nested_type; i++) {
		if ((rv = pgn_count_types(ctx, m->nested_type[i], file,
		         depth + 1, count)) != PGN_OK) {
			return rv;
		}
	}
	return PGN_OK;
}

/* pgn_add_types appends m and its nested types under scope. */
static pgn_err
pgn_add_types(pgn_ctx *ctx, const Google__Protobuf__DescriptorProto *m,
    const char *scope, size_t file_index)
{
	const Google__Protobuf__FileDescriptorProto *fd =
	    ctx->req->proto_file[file_index];
	pgn_type *t = &ctx->types[ctx->n_types++];
	char *full;
	size_t i;
	pgn_err rv;

	if ((full = pgn_arena_printf(&ctx->arena, "%s.%s", scope, m->name)) ==
	    NULL) {
		return PGN_ENOMEM;
	}
	t->full_name = full;
	t->file = fd;
	t->file_index = file_index;
	for (i = 0; i < m->n_nested_type; i++) {
		if ((rv = pgn_add_types(ctx, m->nested_type[i], full,
		         file_index)) != PGN_OK) {
			return rv;
		}
	}
	return PGN_OK;
}

static int
pgn_type_cmp(const void *a, const void *b)
{
	return strcmp(((const pgn_type *) a)->full_name,
	    ((const pgn_type *) b)->full_name);
}

static int
pgn_type_key_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const pgn_type *) elem)->full_name);
}

/* pgn_types_build indexes every message of every file by its full name
 * (".pkg.Outer.Inner") and reads each file's c_package. */
static pgn_err
pgn_types_build(pgn_ctx *ctx)
{
	const Google__Protobuf__Compiler__CodeGeneratorRequest *req = ctx->req;
	size_t count = 0;
	size_t f;
	size_t i;
	pgn_err rv;

	ctx->c_packages =
	    pgn_arena_array(&ctx->arena, req->n_proto_file, sizeof(char *));
	ctx->included =
	    pgn_arena_array(&ctx->arena, req->n_proto_file, sizeof(bool));
	if (ctx->c_packages == NULL || ctx->included == NULL) {
		return PGN_ENOMEM;
	}
	for (f = 0; f < req->n_proto_file; f++) {
		const Google__Protobuf__FileDescriptorProto *fd =
		    req->proto_file[f];

		if (fd->name == NULL || fd->name[0] == 0) {
			return pgn_fail(ctx, PGN_EBADREQ,
			    "proto_file %zu has no name", f);
		}
		if (!pgn_is_dotted(pgn_str(fd->package))) {
			return pgn_fail(ctx, PGN_EBADREQ,
			    "%s: the package is not a dotted name",
			    pgn_shown(fd->name));
		}
		if ((rv = pgn_c_package(ctx, fd, &ctx->c_packages[f])) !=
		    PGN_OK) {
			return rv;
		}
		for (i = 0; i < fd->n_message_type; i++) {
			if ((rv = pgn_count_types(ctx, fd->message_type[i],
			         pgn_shown(fd->name), 1, &count)) != PGN_OK) {
				return rv;
			}
		}
	}
	if ((ctx->types = pgn_arena_array(&ctx->arena, count,
	         sizeof(pgn_type))) == NULL) {
		return PGN_ENOMEM;
	}
	for (f = 0; f < req->n_proto_file; f++) {
		const Google__Protobuf__FileDescriptorProto *fd =
		    req->proto_file[f];
		const char *scope = "";

		if (fd->package != NULL && fd->package[0] != 0 &&
		    (scope = pgn_arena_printf(&ctx->arena, ".%s",
		         fd->package)) == NULL) {
			return PGN_ENOMEM;
		}
		for (i = 0; i < fd->n_message_type; i++) {
			if ((rv = pgn_add_types(ctx, fd->message_type[i], scope,
			         f)) != PGN_OK) {
				return rv;
			}
		}
	}
	if (ctx->n_types > 1) {
		qsort(ctx->types, ctx->n_types, sizeof(pgn_type), pgn_type_cmp);
	}
	for (i = 1; i < ctx->n_types; i++) {
		if (strcmp(ctx->types[i - 1].full_name,
		        ctx->types[i].full_name) == 0) {
			return pgn_fail(ctx, PGN_EBADREQ,
			    "message %s is defined twice",
			    ctx->types[i].full_name + 1);
		}
	}
	return PGN_OK;
}

/* pgn_type_find resolves a method's input or output type and names it as
 * protoc-c does (once per type). */
static pgn_err
pgn_type_find(pgn_ctx *ctx, const char *name, const char *where,
    const pgn_type **out)
{
	pgn_type *t;
	const char *c_full;

	t = name == NULL ? NULL
	                 : bsearch(name, ctx->types, ctx->n_types,
	                       sizeof(pgn_type), pgn_type_key_cmp);
	if (t == NULL) {
		/* protoc sends fully qualified names of known types only */
		return pgn_fail(ctx, PGN_EBADREQ, "%s: unknown message type %s",
		    where, pgn_shown(name));
	}
	if (t->c_name == NULL) {
		if ((c_full = pgn_c_full_name(&ctx->arena, t->full_name + 1,
		         pgn_str(t->file->package),
		         ctx->c_packages[t->file_index])) == NULL ||
		    (t->c_name = pgn_full_name_to_c(&ctx->arena, c_full)) ==
		        NULL ||
		    (t->lower = pgn_full_name_to_lower(&ctx->arena, c_full)) ==
		        NULL) {
			return PGN_ENOMEM;
		}
	}
	*out = t;
	return PGN_OK;
}

/* --- comments --- */

/* pgn_comment_clean turns a .proto comment into lines that are safe in a
 * C block comment: one leading space and trailing blanks dropped per
 * line, control characters blanked, and a space put into every "*" "/",
 * "/" "*" and "??" (a trigraph, live in C11) so that nothing can end the
 * comment, nest one or splice lines. Leading and trailing empty lines go.
 * Returns NULL (and *out NULL) for a comment with no text. */
static pgn_err
pgn_comment_clean(pgn_ctx *ctx, const char *raw, const char **out)
{
	size_t n = strlen(raw);
	size_t o = 0;
	size_t line_start = 0;
	size_t last_text = 0; /* o just after the last non-blank line */
	bool at_bol = true;
	char *buf;
	char prev = 0;
	size_t i;

	*out = NULL;
	/* Worst case doubles every byte ("??" -> "? ?" ...). */
	if (n > SIZE_MAX / 2 - 1 ||
	    (buf = pgn_arena_alloc(&ctx->arena, 2 * n + 2)) == NULL) {
		return n > SIZE_MAX / 2 - 1 ? PGN_EBADREQ : PGN_ENOMEM;
	}
	for (i = 0; i <= n; i++) {
		char c = i < n ? raw[i] : '\n';

		if (c == '\n') {
			while (o > line_start &&
			       (buf[o - 1] == ' ' || buf[o - 1] == '\t')) {
				o--;
			}
			if (o > line_start) {
				last_text = o;
			}
			if (o > 0 || last_text > 0) {
				buf[o++] = '\n';
			}
			line_start = o;
			at_bol = true;
			prev = 0;
			continue;
		}
		if (at_bol && c == ' ') {
			at_bol = false;
			continue;
		}
		at_bol = false;
		if ((unsigned char) c < 0x20 || c == 0x7f) {
			c = ' ';
		}
		if ((prev == '*' && c == '/') || (prev == '/' && c == '*') ||
		    (prev == '?' && c == '?')) {
			buf[o++] = ' ';
		}
		buf[o++] = c;
		prev = c;
	}
	if (last_text == 0) {
		return PGN_OK;
	}
	buf[last_text] = 0;
	*out = buf;
	return PGN_OK;
}

/* pgn_comments attaches the leading comments of services and methods. */
static pgn_err
pgn_comments(pgn_ctx *ctx, const Google__Protobuf__FileDescriptorProto *fd,
    pgn_service *svcs)
{
	const Google__Protobuf__SourceCodeInfo *sci = fd->source_code_info;
	size_t i;
	pgn_err rv;

	if (sci == NULL) {
		return PGN_OK;
	}
	for (i = 0; i < sci->n_location; i++) {
		const Google__Protobuf__SourceCodeInfo__Location *loc =
		    sci->location[i];
		const char **dst = NULL;
		int32_t s;
		int32_t m;

		if (loc->leading_comments == NULL || loc->n_path < 2 ||
		    loc->path[0] != PGN_PATH_FILE_SERVICE) {
			continue;
		}
		s = loc->path[1];
		if (s < 0 || (size_t) s >= fd->n_service) {
			continue;
		}
		if (loc->n_path == 2) {
			dst = &svcs[s].comment;
		} else if (loc->n_path == 4 &&
		           loc->path[2] == PGN_PATH_SERVICE_METHOD) {
			m = loc->path[3];
			if (m >= 0 && (size_t) m < svcs[s].n_methods) {
				dst = &svcs[s].methods[m].comment;
			}
		}
		if (dst != NULL && (rv = pgn_comment_clean(ctx,
		                        loc->leading_comments, dst)) != PGN_OK) {
			return rv;
		}
	}
	return PGN_OK;
}

/* --- services --- */

/* Prefixes of the libraries the generated code includes: a service whose
 * API prefix starts with one could redefine their functions. */
static const char *const pgn_taken_prefixes[] = {"nrpc_", "ds_",
    "protobuf_c_"};

static pgn_err
pgn_method_build(pgn_ctx *ctx, const Google__Protobuf__FileDescriptorProto *fd,
    const pgn_service *s, const Google__Protobuf__MethodDescriptorProto *md,
    pgn_method *m)
{
	const Google__Protobuf__MethodOptions *o = md->options;
	const char *where;
	pgn_err rv;

	if (md->name == NULL || !pgn_is_ident(md->name)) {
		return pgn_fail(ctx, PGN_EBADREQ,
		    "%s: a method name of %s is not an identifier", fd->name,
		    s->full_name);
	}
	m->name = md->name;
	if ((where = pgn_arena_printf(&ctx->arena, "%s: %s.%s", fd->name,
	         s->full_name, md->name)) == NULL) {
		return PGN_ENOMEM;
	}
	if (md->client_streaming || md->server_streaming) {
		return pgn_fail(ctx, PGN_EPROTO,
		    "%s is a %s-streaming method: nrpc supports unary methods "
		    "only",
		    where,
		    md->client_streaming && md->server_streaming ? "bidi"
		    : md->client_streaming                      ? "client"
		                                                : "server");
	}
	if ((rv = pgn_type_find(ctx, md->input_type, where, &m->in)) !=
	        PGN_OK ||
	    (rv = pgn_type_find(ctx, md->output_type, where, &m->out)) !=
	        PGN_OK) {
		return rv;
	}
	if ((m->snake = pgn_camel_to_lower(&ctx->arena, md->name)) == NULL ||
	    (m->upper = pgn_to_upper(&ctx->arena, m->snake)) == NULL ||
	    (m->member = pgn_member_name(&ctx->arena, m->snake)) == NULL ||
	    (m->stem = pgn_method_stem(&ctx->arena, m->snake)) == NULL) {
		return PGN_ENOMEM;
	}
	if (o != NULL && o->has_idempotency_level) {
		switch (o->idempotency_level) {
		case GOOGLE__PROTOBUF__METHOD_OPTIONS__IDEMPOTENCY_LEVEL__NO_SIDE_EFFECTS:
			m->idempotent = true;
			m->idempotency = "NO_SIDE_EFFECTS";
			break;
		case GOOGLE__PROTOBUF__METHOD_OPTIONS__IDEMPOTENCY_LEVEL__IDEMPOTENT:
			m->idempotent = true;
			m->idempotency = "IDEMPOTENT";
			break;
		default:
			break;
		}
	}
	m->deprecated = o != NULL && o->has_deprecated && o->deprecated;
	return PGN_OK;
}

static pgn_err
pgn_service_build(pgn_ctx *ctx, size_t file_index,
    const Google__Protobuf__ServiceDescriptorProto *sd, pgn_service *s)
{
	const Google__Protobuf__FileDescriptorProto *fd =
	    ctx->req->proto_file[file_index];
	const char *pkg = pgn_str(fd->package);
	const char *c_pkg = ctx->c_packages[file_index];
	size_t i;
	pgn_err rv;

	if (sd->name == NULL || !pgn_is_ident(sd->name)) {
		return pgn_fail(ctx, PGN_EBADREQ,
		    "%s: a service name is not an identifier", fd->name);
	}
	s->name = sd->name;
	s->full_name = pkg[0] != 0
	                   ? pgn_arena_printf(&ctx->arena, "%s.%s", pkg,
	                         sd->name)
	                   : sd->name;
	/* The API prefix follows the C package, like protoc-c's names. */
	s->prefix = pgn_api_prefix(&ctx->arena, c_pkg != NULL ? c_pkg : pkg,
	    sd->name);
	if (s->full_name == NULL || s->prefix == NULL ||
	    (s->upper = pgn_to_upper(&ctx->arena, s->prefix)) == NULL) {
		return PGN_ENOMEM;
	}
	if (sd->n_method == 0) {
		return pgn_fail(ctx, PGN_EPROTO,
		    "%s: service %s has no methods: there is nothing to "
		    "generate for it",
		    fd->name, s->full_name);
	}
	for (i = 0; i < sizeof(pgn_taken_prefixes) / sizeof(char *); i++) {
		const char *t = pgn_taken_prefixes[i];

		if (strncmp(s->prefix, t, strlen(t)) == 0) {
			return pgn_fail(ctx, PGN_EPROTO,
			    "%s: service %s would be generated as %s_*, but %s* "
			    "names belong to a library the generated code uses",
			    fd->name, s->full_name, s->prefix, t);
		}
	}
	s->n_methods = sd->n_method;
	if ((s->methods = pgn_arena_array(&ctx->arena, sd->n_method,
	         sizeof(pgn_method))) == NULL) {
		return PGN_ENOMEM;
	}
	for (i = 0; i < sd->n_method; i++) {
		if ((rv = pgn_method_build(ctx, fd, s, sd->method[i],
		         &s->methods[i])) != PGN_OK) {
			return rv;
		}
	}
	return PGN_OK;
}

/* pgn_include adds the .pb-c.h of proto_file[f] once. */
static pgn_err
pgn_include(pgn_ctx *ctx, pgn_file *pf, size_t f)
{
	const char *name = ctx->req->proto_file[f]->name;
	char *base;

	if (ctx->included[f]) {
		return PGN_OK;
	}
	if (!pgn_c_text_ok(name)) {
		return pgn_fail(ctx, PGN_EPROTO,
		    "%s: the name of its import %s cannot be written in an "
		    "#include line",
		    pf->proto, pgn_shown(name));
	}
	if ((base = pgn_strip_proto(&ctx->arena, name)) == NULL ||
	    (pf->includes[pf->n_includes] = pgn_arena_printf(&ctx->arena,
	         "%s.pb-c.h", base)) == NULL) {
		return PGN_ENOMEM;
	}
	pf->n_includes++;
	ctx->included[f] = true;
	return PGN_OK;
}

static pgn_err
pgn_file_build(pgn_ctx *ctx, size_t f, pgn_file *pf)
{
	const Google__Protobuf__FileDescriptorProto *fd = ctx->req->proto_file[f];
	size_t max_includes;
	size_t i;
	size_t j;
	pgn_err rv = PGN_OK;

	pf->proto = fd->name;
	if (!pgn_c_text_ok(fd->name)) {
		/* A path with a quote, a backslash or a comment delimiter in
		 * it is legal on disk but cannot be put into C as it is. */
		return pgn_fail(ctx, PGN_EPROTO,
		    "the name of %s cannot be written in a C comment or "
		    "#include line; rename the file",
		    pgn_shown(fd->name));
	}
	if ((pf->base = pgn_strip_proto(&ctx->arena, fd->name)) == NULL ||
	    (pf->guard = pgn_file_ident(&ctx->arena, fd->name)) == NULL) {
		return PGN_ENOMEM;
	}
	pf->n_services = fd->n_service;
	if ((pf->services = pgn_arena_array(&ctx->arena, fd->n_service,
	         sizeof(pgn_service))) == NULL) {
		return PGN_ENOMEM;
	}
	max_includes = 0;
	for (i = 0; i < fd->n_service; i++) {
		if ((rv = pgn_service_build(ctx, f, fd->service[i],
		         &pf->services[i])) != PGN_OK) {
			return rv;
		}
		max_includes += 2 * pf->services[i].n_methods;
	}
	if ((rv = pgn_comments(ctx, fd, pf->services)) != PGN_OK) {
		return rv;
	}
	/* Includes: the .pb-c.h of each file that defines a request or
	 * response type, in order of first use; the file's own only when it
	 * defines one. Not including it otherwise matters: protoc-c writes
	 * its own service code into it, which is invalid C when a method is
	 * named after a C keyword (Default, Register), so such services can
	 * only be used from a .proto that holds no messages. */
	if ((pf->includes = pgn_arena_array(&ctx->arena, max_includes,
	         sizeof(char *))) == NULL) {
		return PGN_ENOMEM;
	}
	for (i = 0; rv == PGN_OK && i < pf->n_services; i++) {
		for (j = 0; rv == PGN_OK && j < pf->services[i].n_methods; j++) {
			const pgn_method *m = &pf->services[i].methods[j];

			if ((rv = pgn_include(ctx, pf, m->in->file_index)) ==
			    PGN_OK) {
				rv = pgn_include(ctx, pf, m->out->file_index);
			}
		}
	}
	/* Reset the scratch marks for the next file (every method is
	 * built by now, so in and out are set). */
	ctx->included[f] = false;
	for (i = 0; i < pf->n_services; i++) {
		for (j = 0; j < pf->services[i].n_methods; j++) {
			const pgn_method *m = &pf->services[i].methods[j];

			ctx->included[m->in->file_index] = false;
			ctx->included[m->out->file_index] = false;
		}
	}
	return rv;
}

/* --- name collisions --- */

/* Two methods may generate the same C name (Get + GetAsync: both make
 * x_get_async), two services may share a prefix (Foo.BarGet and
 * FooBar.Get), and two names may snake the same (GetHTTP, GetHttp). The
 * compiler would report a redefinition far from the cause; this names it.
 * Handler members are scoped to their table by a "->" in the key. */
typedef struct pgn_name {
	const char *name;
	const char *what;  /* "the async stub of pkg.Svc.Get" */
	const char *proto; /* the .proto file */
} pgn_name;

static int
pgn_name_cmp(const void *a, const void *b)
{
	const pgn_name *x = a;
	const pgn_name *y = b;
	int c = strcmp(x->name, y->name);

	/* Ties by description, so the message does not depend on qsort. */
	return c != 0 ? c : strcmp(x->what, y->what);
}

static const char *const pgn_service_names[][2] = {
    {"%s_methods", "the method table of %s"},
    {"%s_service", "the service descriptor of %s"},
    {"%s_handlers", "the handler table of %s"},
    {"%s_register", "the register function of %s"},
    {"%s_dispatch", "the dispatch function of %s"},
};

static const char *const pgn_method_names[][2] = {
    {"%s_%s", "the stub of %s.%s"},
    {"%s_%s_async", "the async stub of %s.%s"},
    {"%s_%s_cb", "the callback type of %s.%s"},
    {"%s_%s_done", "the callback trampoline of %s.%s"},
    {"%s_%s_reply", "the reply function of %s.%s"},
};

#define PGN_NSVC (sizeof(pgn_service_names) / sizeof(pgn_service_names[0]))
#define PGN_NMETH (sizeof(pgn_method_names) / sizeof(pgn_method_names[0]))

/* The format strings above are not literals: build them one by one. */
static pgn_err
pgn_names_add(pgn_ctx *ctx, pgn_name *names, size_t *n, const char *proto,
    const char *name, const char *what)
{
	if (name == NULL || what == NULL) {
		return PGN_ENOMEM;
	}
	names[*n].name = name;
	names[*n].what = what;
	names[*n].proto = proto;
	(*n)++;
	return PGN_OK;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static pgn_err
pgn_collisions(pgn_ctx *ctx, const pgn_file *files, size_t n_files)
{
	pgn_arena *a = &ctx->arena;
	pgn_name *names;
	size_t total = 0;
	size_t n = 0;
	size_t f, s, m, k;
	pgn_err rv = PGN_OK;

	for (f = 0; f < n_files; f++) {
		for (s = 0; s < files[f].n_services; s++) {
			size_t nm = files[f].services[s].n_methods;

			/* overflow: n_methods is bounded by the request */
			total += PGN_NSVC + 2 + nm * (PGN_NMETH + 2);
		}
	}
	if ((names = pgn_arena_array(a, total, sizeof(pgn_name))) == NULL) {
		return PGN_ENOMEM;
	}
	for (f = 0; rv == PGN_OK && f < n_files; f++) {
		const char *proto = files[f].proto;

		for (s = 0; rv == PGN_OK && s < files[f].n_services; s++) {
			const pgn_service *sv = &files[f].services[s];
			const char *sn = sv->full_name;

			for (k = 0; rv == PGN_OK && k < PGN_NSVC; k++) {
				rv = pgn_names_add(ctx, names, &n, proto,
				    pgn_arena_printf(a, pgn_service_names[k][0],
				        sv->prefix),
				    pgn_arena_printf(a, pgn_service_names[k][1],
				        sn));
			}
			if (rv == PGN_OK) {
				rv = pgn_names_add(ctx, names, &n, proto,
				    pgn_arena_printf(a, "%s_N_METHODS", sv->upper),
				    pgn_arena_printf(a, "the method count of %s",
				        sn));
			}
			for (m = 0; rv == PGN_OK && m < sv->n_methods; m++) {
				const pgn_method *me = &sv->methods[m];

				for (k = 0; rv == PGN_OK && k < PGN_NMETH; k++) {
					rv = pgn_names_add(ctx, names, &n, proto,
					    pgn_arena_printf(a,
					        pgn_method_names[k][0], sv->prefix,
					        me->stem),
					    pgn_arena_printf(a,
					        pgn_method_names[k][1], sn,
					        me->name));
				}
				if (rv == PGN_OK) {
					rv = pgn_names_add(ctx, names, &n, proto,
					    pgn_arena_printf(a, "%s_METHOD_%s",
					        sv->upper, me->upper),
					    pgn_arena_printf(a,
					        "the method index of %s.%s", sn,
					        me->name));
				}
				if (rv == PGN_OK) {
					rv = pgn_names_add(ctx, names, &n, proto,
					    pgn_arena_printf(a, "%s_handlers->%s",
					        sv->prefix, me->member),
					    pgn_arena_printf(a,
					        "the handler member of %s.%s", sn,
					        me->name));
				}
			}
		}
	}
	if (rv != PGN_OK) {
		return rv;
	}
	if (n > 1) {
		qsort(names, n, sizeof(pgn_name), pgn_name_cmp);
	}
	for (k = 1; k < n; k++) {
		if (strcmp(names[k - 1].name, names[k].name) == 0) {
			return pgn_fail(ctx, PGN_EPROTO,
			    "%s: %s and %s would both be named %s; rename one "
			    "of them",
			    names[k].proto, names[k - 1].what, names[k].what,
			    names[k].name);
		}
	}
	return PGN_OK;
}
#pragma GCC diagnostic pop

/* --- the model --- */

/* Files are found by name through an index sorted by name; an entry
 * holds the file and its position in proto_file, which types refer to. */
typedef struct pgn_file_ref {
	const Google__Protobuf__FileDescriptorProto *fd;
	size_t index;
} pgn_file_ref;

static int
pgn_file_cmp(const void *a, const void *b)
{
	const pgn_file_ref *x = a;
	const pgn_file_ref *y = b;
	int c = strcmp(x->fd->name, y->fd->name);

	/* Ties by position: duplicates are reported either way. */
	return c != 0 ? c : (x->index < y->index ? -1 : x->index > y->index);
}

static int
pgn_file_key_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const pgn_file_ref *) elem)->fd->name);
}

pgn_err
pgn_model_build(pgn_ctx *ctx, pgn_file **files, size_t *n)
{
	const Google__Protobuf__Compiler__CodeGeneratorRequest *req = ctx->req;
	pgn_file_ref *byname;
	bool *seen;
	pgn_file *out;
	size_t n_out = 0;
	size_t i;
	pgn_err rv;

	if (req->parameter != NULL && req->parameter[0] != 0) {
		return pgn_fail(ctx, PGN_EPROTO,
		    "unknown parameter \"%s\": protoc-gen-nrpc takes none",
		    pgn_shown(req->parameter));
	}
	if ((rv = pgn_types_build(ctx)) != PGN_OK) {
		return rv;
	}
	/* Files by name, to find each file_to_generate in log time. */
	if ((byname = pgn_arena_array(&ctx->arena, req->n_proto_file,
	         sizeof(*byname))) == NULL ||
	    (seen = pgn_arena_array(&ctx->arena, req->n_proto_file,
	         sizeof(bool))) == NULL ||
	    (out = pgn_arena_array(&ctx->arena, req->n_file_to_generate,
	         sizeof(pgn_file))) == NULL) {
		return PGN_ENOMEM;
	}
	for (i = 0; i < req->n_proto_file; i++) {
		byname[i].fd = req->proto_file[i];
		byname[i].index = i;
	}
	if (req->n_proto_file > 1) {
		qsort(byname, req->n_proto_file, sizeof(*byname), pgn_file_cmp);
	}
	for (i = 1; i < req->n_proto_file; i++) {
		if (strcmp(byname[i - 1].fd->name, byname[i].fd->name) == 0) {
			return pgn_fail(ctx, PGN_EBADREQ,
			    "proto_file holds %s twice",
			    pgn_shown(byname[i].fd->name));
		}
	}
	for (i = 0; i < req->n_file_to_generate; i++) {
		const char *name = pgn_str(req->file_to_generate[i]);
		const pgn_file_ref *hit;

		hit = bsearch(name, byname, req->n_proto_file, sizeof(*byname),
		    pgn_file_key_cmp);
		if (hit == NULL) {
			return pgn_fail(ctx, PGN_EBADREQ,
			    "file_to_generate %s is not in proto_file",
			    pgn_shown(name));
		}
		if (seen[hit->index]) {
			return pgn_fail(ctx, PGN_EBADREQ,
			    "file_to_generate names %s twice", pgn_shown(name));
		}
		seen[hit->index] = true;
		if (hit->fd->n_service == 0) {
			continue;
		}
		if ((rv = pgn_file_build(ctx, hit->index, &out[n_out])) !=
		    PGN_OK) {
			return rv;
		}
		n_out++;
	}
	if ((rv = pgn_collisions(ctx, out, n_out)) != PGN_OK) {
		return rv;
	}
	*files = out;
	*n = n_out;
	return PGN_OK;
}
