/*
 * pgn.h - internals of protoc-gen-nrpc, the protoc plugin that writes
 * typed nrpc client stubs and a server skeleton for every service of a
 * .proto file (DESIGN §5, STYLE rule 37).
 *
 * Flow: main.c reads the CodeGeneratorRequest from stdin (size-capped) and
 * hands the bytes to pgn_run(), which checks their nesting depth, decodes
 * them with protobuf-c, builds a model of what to generate (pgn_model.c,
 * with names mangled exactly as protoc-c mangles them: pgn_names.c),
 * writes <name>.nrpc.h and <name>.nrpc.c through a bounded emitter
 * (pgn_emit.c; declarations and client stubs in pgn_stub.c, method table
 * and server skeleton in pgn_skel.c) and packs the CodeGeneratorResponse.
 *
 * Errors: a request that protoc could not have sent (undecodable, too
 * deep, names that are not identifiers, types that do not resolve) is
 * PGN_EBADREQ and ends the process with a message on stderr. A problem in
 * the .proto files themselves (a streaming method, two methods whose
 * generated names collide) is PGN_EPROTO: it goes into the response's
 * error field and the plugin exits 0, as plugin.proto asks.
 *
 * Memory: everything made while generating lives in one pgn_arena and is
 * released at once. A generator makes thousands of small strings that all
 * die together; per-string ownership would be all cost and no benefit.
 * Nothing here is thread-safe, and nothing needs to be.
 */
#ifndef PGN_H
#define PGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ds_assert.h"
#include "ds_buf.h"
#include "google/protobuf/compiler/plugin.pb-c.h"
#include "google/protobuf/descriptor.pb-c.h"
#include "pgn_limits.h"

/* --- errors --- */

typedef enum pgn_err {
	PGN_OK = 0,
	PGN_ENOMEM,   /* allocation failed */
	PGN_EBADREQ,  /* not a CodeGeneratorRequest protoc could have sent */
	PGN_EPROTO,   /* a problem in a .proto file: response.error */
} pgn_err;

/* pgn_strerror returns a static name for e; never NULL. */
const char *pgn_strerror(pgn_err e);

/* --- arena --- */

struct pgn_chunk;

/* pgn_arena hands out memory that lives until pgn_arena_fini. */
typedef struct pgn_arena {
	struct pgn_chunk *head; /* owned; the chunk being filled first */
} pgn_arena;

void pgn_arena_init(pgn_arena *a);

/* pgn_arena_fini releases everything; a zeroed arena is a no-op. */
void pgn_arena_fini(pgn_arena *a);

/* pgn_arena_alloc returns n zeroed bytes aligned for any type, or NULL on
 * allocation failure. Owned by the arena. */
DS_WUR void *pgn_arena_alloc(pgn_arena *a, size_t n);

/* pgn_arena_array is pgn_arena_alloc(n * size), NULL on overflow. */
DS_WUR void *pgn_arena_array(pgn_arena *a, size_t n, size_t size);

/* pgn_arena_strndup copies s[0..n) and a NUL; NULL on failure. */
DS_WUR char *pgn_arena_strndup(pgn_arena *a, const char *s, size_t n);

/* pgn_arena_printf formats into the arena; NULL on failure. */
DS_WUR char *pgn_arena_printf(pgn_arena *a, const char *fmt, ...)
    DS_PRINTF(2, 3);

/* --- names (protoc-c compatible) --- */

/* pgn_is_ident: s is [A-Za-z_][A-Za-z0-9_]* (ASCII), the only names that
 * protoc accepts and the only ones the plugin writes into C. */
bool pgn_is_ident(const char *s);

/* pgn_is_dotted: s is empty or ident(.ident)*: a package. */
bool pgn_is_dotted(const char *s);

/* The functions below return arena strings, NULL on allocation failure.
 * Their input must pass pgn_is_ident / pgn_is_dotted. */

/* pgn_camel_to_lower is protoc-c's CamelToLower: "DataSync" ->
 * "data_sync", "KV_Pair" -> "kv__pair", "HTTPGet" -> "httpget". It is the
 * snake case of every service and method name, so generated names split
 * words exactly where protoc-c's own (datasync__v1__data_sync__get) do. */
DS_WUR char *pgn_camel_to_lower(pgn_arena *a, const char *s);

/* pgn_to_upper upper-cases ASCII letters. */
DS_WUR char *pgn_to_upper(pgn_arena *a, const char *s);

/* pgn_c_full_name is protoc-c's OverrideFullName: full_name ("pkg.Msg",
 * no leading dot) with the file's package replaced by its
 * `option (pb_c_file).c_package`, when c_package is not NULL. */
DS_WUR char *pgn_c_full_name(pgn_arena *a, const char *full_name,
    const char *package, const char *c_package);

/* pgn_full_name_to_c is protoc-c's FullNameToC, the C type of a message:
 * "my_pkg.v1.Outer.Inner" -> "MyPkg__V1__Outer__Inner". */
DS_WUR char *pgn_full_name_to_c(pgn_arena *a, const char *full_name);

/* pgn_full_name_to_lower is protoc-c's FullNameToLower, the prefix of a
 * message's functions and descriptor: "my_pkg.v1.Outer.Inner" ->
 * "my_pkg__v1__outer__inner". */
DS_WUR char *pgn_full_name_to_lower(pgn_arena *a, const char *full_name);

/* pgn_api_prefix is the prefix of a service's generated API: the C
 * package with '.' -> '_', lower-cased, '_', the snake service name:
 * ("datasync.v1", "DataSync") -> "datasync_v1_data_sync". */
DS_WUR char *pgn_api_prefix(pgn_arena *a, const char *c_package,
    const char *service);

/* pgn_is_reserved: s cannot be a struct member as it is: a C keyword, or
 * a macro that a translation unit including nrpc.h may well see (bool,
 * errno, assert, linux, ...). */
bool pgn_is_reserved(const char *s);

/* pgn_member_name is the handler-table member for a snake method name:
 * the name itself, or with a trailing '_' when pgn_is_reserved. */
DS_WUR char *pgn_member_name(pgn_arena *a, const char *snake);

/* pgn_method_stem is what a method contributes to its stubs' names
 * (<prefix>_<stem>, <prefix>_<stem>_async, ...): the snake name, with a
 * trailing '_' when it is one of the names a service's own declarations
 * end in (methods, service, handlers, register, dispatch), so that a
 * method called Register gets <prefix>_register_() and the service keeps
 * <prefix>_register(). */
DS_WUR char *pgn_method_stem(pgn_arena *a, const char *snake);

/* pgn_strip_proto is protoc-c's StripProto: "a/b.proto" -> "a/b". */
DS_WUR char *pgn_strip_proto(pgn_arena *a, const char *file);

/* pgn_file_ident is protoc-c's FilenameIdentifier: alphanumerics kept,
 * every other byte as _<hex>: "a/b.proto" -> "a_2fb_2eproto". */
DS_WUR char *pgn_file_ident(pgn_arena *a, const char *file);

/* pgn_c_text_ok: s can be written inside a C string literal and a block
 * comment as it is: no control characters, '"' or '\\', and none of the
 * sequences that end a comment, open a nested one or form a trigraph. */
bool pgn_c_text_ok(const char *s);

/* --- model --- */

/* pgn_type is a message type as protoc-c names it. */
typedef struct pgn_type {
	const char *full_name; /* ".pkg.Outer.Inner", as in input_type */
	const Google__Protobuf__FileDescriptorProto *file; /* defines it */
	size_t file_index;     /* of file in request->proto_file */
	const char *c_name;    /* "Pkg__Outer__Inner"; NULL until used */
	const char *lower;     /* "pkg__outer__inner"; NULL until used */
} pgn_type;

typedef struct pgn_method {
	const char *name;        /* "Get" */
	const char *snake;       /* "get" */
	const char *stem;        /* in function and type names: "get",
	                          * "register_" (see pgn_method_stem) */
	const char *upper;       /* "GET" */
	const char *member;      /* handler member: "get", "default_" */
	const pgn_type *in;
	const pgn_type *out;
	bool idempotent;         /* idempotency_level set, see below */
	const char *idempotency; /* "NO_SIDE_EFFECTS", "IDEMPOTENT" or NULL */
	bool deprecated;         /* option deprecated = true */
	const char *comment;     /* leading .proto comment or NULL */
} pgn_method;

typedef struct pgn_service {
	const char *name;      /* "DataSync" */
	const char *full_name; /* "datasync.v1.DataSync" */
	const char *prefix;    /* "datasync_v1_data_sync" */
	const char *upper;     /* "DATASYNC_V1_DATA_SYNC" */
	pgn_method *methods;   /* n_methods, in .proto order */
	size_t n_methods;
	const char *comment;   /* leading .proto comment or NULL */
} pgn_service;

typedef struct pgn_file {
	const char *proto;     /* "datasync/v1/datasync.proto" */
	const char *base;      /* "datasync/v1/datasync" */
	const char *guard;     /* include guard of the .nrpc.h */
	const char **includes; /* .pb-c.h of the files defining request and
	                        * response types, in order of first use */
	size_t n_includes;
	pgn_service *services; /* n_services >= 1, in .proto order */
	size_t n_services;
} pgn_file;

/* pgn_ctx is one run of the generator. */
typedef struct pgn_ctx {
	pgn_arena arena;
	const Google__Protobuf__Compiler__CodeGeneratorRequest *req;
	pgn_type *types;       /* every message of every file, sorted */
	size_t n_types;
	const char **c_packages; /* per proto_file: (pb_c_file).c_package,
	                          * or NULL when the option is absent */
	bool *included;        /* per proto_file: scratch for includes */
	const char *error;     /* first problem found (arena), or NULL */
} pgn_ctx;

/* pgn_fail records the first problem (a formatted message) and returns
 * rv, or PGN_ENOMEM when even the message cannot be kept. */
pgn_err pgn_fail(pgn_ctx *ctx, pgn_err rv, const char *fmt, ...)
    DS_PRINTF(3, 4);

/* pgn_model_build builds the files to generate: one per
 * file_to_generate that has at least one service, in request order. On
 * PGN_OK *files (arena) and *n are set; otherwise ctx->error says why. */
pgn_err pgn_model_build(pgn_ctx *ctx, pgn_file **files, size_t *n);

/* --- emitter --- */

/* pgn_emit writes generated text into a bounded buffer. Errors are
 * sticky: after the first (DS_ENOMEM, DS_ETOOLARGE) every call does
 * nothing, and the caller checks err once at the end, so that emitting
 * code reads like the code it writes. */
typedef struct pgn_emit {
	ds_buf out;       /* the text; max fixed at init */
	pgn_arena *arena; /* borrowed; for pgn_emit_str */
	int depth;        /* indentation, in tabs */
	bool bol;         /* at the beginning of a line */
	ds_buf scratch;   /* formatting space of pgn_emitf */
	ds_buf comment;   /* lines of the comment being built */
	ds_err err;       /* first failure, or DS_OK */
} pgn_emit;

/* pgn_emit_init prepares an emitter of at most max bytes. */
void pgn_emit_init(pgn_emit *e, pgn_arena *arena, size_t max);

/* pgn_emit_fini frees the text; a finished emitter is a no-op. */
void pgn_emit_fini(pgn_emit *e);

/* pgn_emitf appends formatted text; each line that is not empty starts
 * with the current indentation. */
void pgn_emitf(pgn_emit *e, const char *fmt, ...) DS_PRINTF(2, 3);

/* pgn_emit_in / pgn_emit_out change the indentation by one tab. */
void pgn_emit_in(pgn_emit *e);
void pgn_emit_out(pgn_emit *e);

/* pgn_emit_str formats into the arena for use as an argument; on failure
 * it records DS_ENOMEM and returns "". */
const char *pgn_emit_str(pgn_emit *e, const char *fmt, ...) DS_PRINTF(2, 3);

/* pgn_emit_list writes head, then items separated by ", ", then tail,
 * wrapping before an item that would pass PGN_COLUMNS; continuation lines
 * are indented by four more spaces (the house style for parameters). */
void pgn_emit_list(pgn_emit *e, const char *head, const char *const *items,
    size_t n, const char *tail);

/* pgn_emit_decl writes "type rest" on one line, or "type" and "rest" on
 * a continuation line when one line would pass PGN_COLUMNS. */
void pgn_emit_decl(pgn_emit *e, const char *type, const char *rest);

/* Block comments: begin, any number of paragraphs (wrapped at
 * PGN_COLUMNS), verbatim lines and blank lines, then end, which writes
 * the comment. */
void pgn_emit_comment_begin(pgn_emit *e);
void pgn_emit_para(pgn_emit *e, const char *fmt, ...) DS_PRINTF(2, 3);
void pgn_emit_verbatim(pgn_emit *e, const char *lines);
void pgn_emit_blank(pgn_emit *e);
void pgn_emit_comment_end(pgn_emit *e);

/* --- generated code --- */

/* Header parts: the method enum and the tables' declarations; the client
 * stubs' declarations; the handler table, register and reply helpers. */
void pgn_skel_decl_tables(pgn_emit *e, const pgn_service *s);
void pgn_stub_decls(pgn_emit *e, const pgn_service *s);
void pgn_skel_decls(pgn_emit *e, const pgn_service *s);

/* Source parts, in the same order. */
void pgn_skel_def_tables(pgn_emit *e, const pgn_service *s);
void pgn_stub_defs(pgn_emit *e, const pgn_service *s);
void pgn_skel_defs(pgn_emit *e, const pgn_service *s);

/* --- driver --- */

/* pgn_run turns the bytes of a CodeGeneratorRequest (in, borrowed) into
 * those of a CodeGeneratorResponse. On PGN_OK, *out is the response
 * (owned; ds_free), which carries problems in the .proto files in its
 * error field. On failure (PGN_EBADREQ, PGN_ENOMEM) *out is untouched and
 * why (why_cap bytes, NUL-terminated) says what was wrong. */
pgn_err pgn_run(const uint8_t *in, size_t len, uint8_t **out,
    size_t *out_len, char *why, size_t why_cap);

#endif /* PGN_H */
