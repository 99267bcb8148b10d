/*
 * pbjson_int.h - private to service/pbjson: what its source files share.
 *
 * pbjson_common.c: per-call context, locale, error reports, field names.
 * pbjson_text.c:   base64, number text, safe snippets for messages.
 * pbjson_encode.c, pbjson_decode.c, pbjson_dump.c: the public calls.
 */
#ifndef PBJSON_INT_H
#define PBJSON_INT_H

#include <locale.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ds_assert.h"
#include "pbjson.h"

/* --- per-call context --- */

/* pbjson_path is one step of the JSON path to the value being worked on.
 * Steps live on the stack of the recursion and point up to their parent;
 * the path is formatted only when an error is reported, so the success
 * path pays nothing for it. */
typedef struct pbjson_path pbjson_path;
struct pbjson_path {
	const pbjson_path *up; /* borrowed; NULL for the outermost step */
	const char *key;       /* borrowed; NULL for an array index */
	size_t key_len;        /* bytes of key */
	size_t index;          /* array index, when key is NULL */
	bool map_key;          /* key is a map key: shown as ["key"] */
};

/* pbjson_ctx is the state of one public call. */
typedef struct pbjson_ctx {
	pbjson_options opts; /* copy; max_bytes resolved, never 0 */
	pbjson_error *err;   /* borrowed; NULL when the caller wants none */
	locale_t c_locale;   /* owned; the thread's locale during the call */
	locale_t old_locale; /* borrowed; restored by pbjson_ctx_fini */
} pbjson_ctx;

/* pbjson_ctx_init validates o (NULL = defaults), remembers err and
 * switches the calling thread to the "C" locale until pbjson_ctx_fini.
 * PBJSON_EINVAL or PBJSON_ENOMEM (reported in err); nothing to undo then. */
DS_WUR pbjson_err pbjson_ctx_init(pbjson_ctx *c, const pbjson_options *o,
                                  pbjson_error *err);

/* pbjson_ctx_fini restores the thread's locale. */
void pbjson_ctx_fini(pbjson_ctx *c);

/* pbjson_fail fills c->err (when not NULL) with the path and a message
 * "<path>: <fmt...>" and returns code, so callers can write
 * `return pbjson_fail(...)`. Every string from the input that goes into
 * fmt must be made safe with pbjson_snippet first. */
pbjson_err pbjson_fail(pbjson_ctx *c, pbjson_err code, const pbjson_path *path,
                       const char *fmt, ...) DS_PRINTF(4, 5);

/* pbjson_report is pbjson_fail for callers without a context (argument
 * checks before pbjson_ctx_init). */
pbjson_err pbjson_report(pbjson_error *err, pbjson_err code, const char *fmt,
                         ...) DS_PRINTF(3, 4);

/* --- descriptors and names --- */

/* pbjson_desc_ok is true when d looks like a message descriptor. */
bool pbjson_desc_ok(const ProtobufCMessageDescriptor *d);

/* pbjson_json_name writes protoc's default json_name of a proto field
 * name ("if_version" -> "ifVersion") into buf (cap bytes, NUL-terminated,
 * truncated if need be) and returns its full length. */
size_t pbjson_json_name(const char *name, char *buf, size_t cap);

/* pbjson_field_by_key finds the field called key[0..key_len), by its
 * proto name or by its JSON name; NULL when there is none. */
const ProtobufCFieldDescriptor *
pbjson_field_by_key(const ProtobufCMessageDescriptor *d, const char *key,
                    size_t key_len);

/* pbjson_map_entry returns the entry descriptor when f is a map field
 * (see pbjson.h), else NULL. *key and *value get the entry's fields. */
const ProtobufCMessageDescriptor *
pbjson_map_entry(const ProtobufCFieldDescriptor *f,
                 const ProtobufCFieldDescriptor **key,
                 const ProtobufCFieldDescriptor **value);

/* pbjson_elem_size is the size of one element of a repeated field of
 * type t in protobuf-c's arrays. */
size_t pbjson_elem_size(ProtobufCType t);

/* pbjson_type_name names a field type for messages ("int64"). */
const char *pbjson_type_name(ProtobufCType t);

/* pbjson_member points at a field's storage (or quantifier) in m. */
static inline void *
pbjson_member(const ProtobufCMessage *m, unsigned offset)
{
	return (char *) m + offset;
}

/* --- text --- */

/* PBJSON_SNIPPET_MAX is how much of an input string a message quotes. */
#define PBJSON_SNIPPET_MAX 40

/* pbjson_snippet writes s[0..n) into buf (cap bytes) for an error
 * message: quoted, at most PBJSON_SNIPPET_MAX bytes of it, cut on a UTF-8
 * boundary with "..." after it, control characters and invalid UTF-8 as
 * '?'. */
void pbjson_snippet(char *buf, size_t cap, const char *s, size_t n);

/* pbjson_describe writes what v is, for "got ..." in messages: "number
 * 1.5", "string \"abc\"", "an array", "an object", "true", "null". */
void pbjson_describe(char *buf, size_t cap, const json_t *v);

/* pbjson_safe_copy copies the C string src into dst (cap bytes) with
 * pbjson_snippet's rules but no quotes, limited only by cap. */
void pbjson_safe_copy(char *dst, size_t cap, const char *src);

/* pbjson_safe_copyn is pbjson_safe_copy of src[0..n), at most
 * PBJSON_SNIPPET_MAX bytes of it: for keys in paths. */
void pbjson_safe_copyn(char *dst, size_t cap, const char *src, size_t n);

/* pbjson_b64_len stores the length of the padded standard base64 text of
 * n bytes in *out; false when that overflows size_t. */
bool pbjson_b64_len(size_t n, size_t *out);

/* pbjson_b64_encode writes the padded standard base64 text of p[0..n)
 * into out, which holds pbjson_b64_len(n) bytes; no NUL is added. */
void pbjson_b64_encode(const uint8_t *p, size_t n, char *out);

/* pbjson_b64_decode decodes s[0..n) (standard or URL-safe alphabet,
 * padding optional) into a new buffer: *out is owned (ds_free) or NULL
 * when the result is empty. PBJSON_EBASE64 with a reason in why (cap
 * bytes), or PBJSON_ENOMEM; outputs untouched then. */
DS_WUR pbjson_err pbjson_b64_decode(const char *s, size_t n, uint8_t **out,
                                    size_t *out_len, char *why, size_t cap);

/* pbjson_num is the verdict of the number-text parsers. */
typedef enum pbjson_num {
	PBJSON_NUM_OK = 0,
	PBJSON_NUM_SYNTAX,   /* not a JSON number */
	PBJSON_NUM_FRACTION, /* a number, but not an integer */
	PBJSON_NUM_RANGE,    /* too large in magnitude */
} pbjson_num;

/* pbjson_parse_int_text reads a JSON number in s[0..n) (exponents
 * allowed: "1e3", "1.50e1") as an exact integer: sign in *neg, magnitude
 * in *mag. No double is involved, so all 64 bits are exact. */
pbjson_num pbjson_parse_int_text(const char *s, size_t n, bool *neg,
                                 uint64_t *mag);

/* pbjson_parse_real_text reads a JSON number in s[0..n) as a double;
 * PBJSON_NUM_RANGE when it overflows. s[n] must be readable and not a
 * digit or one of ".eE+-" (jansson's strings end with NUL). */
pbjson_num pbjson_parse_real_text(const char *s, size_t n, double *out);

/* PBJSON_NUMBUF is enough for any number pbjson formats. */
#define PBJSON_NUMBUF 40

/* pbjson_fmt_double writes the shortest "%.Ng" form of d that reads back
 * as d (d finite) into buf (PBJSON_NUMBUF bytes); returns its length. */
size_t pbjson_fmt_double(double d, char *buf);

/* pbjson_float_as_double returns the double nearest to the shortest
 * decimal form of f (f finite): 0.1f -> 0.1, not 0.100000001490116. */
double pbjson_float_as_double(float f);

#endif /* PBJSON_INT_H */
