/*
 * pbjson.h - proto3 JSON <-> protobuf-c messages, by reflection.
 *
 * pbjson converts any protobuf-c message to proto3 JSON and back by
 * walking the descriptors protoc-c generates; nothing is written per
 * message type. It is what the gateway's /rpc/ routes, the CLI's --json
 * and the fuzzers use (DESIGN §2, §6). JSON values are jansson's json_t.
 *
 * It is pure: no I/O and no globals. Every function is reentrant and may
 * run on any thread at the same time as any other, as long as no thread
 * changes a message or json_t while pbjson reads it. Each call switches
 * its own thread to the "C" locale for its duration (uselocale), so
 * numbers use '.' whatever the program's locale.
 *
 * The mapping is https://protobuf.dev/programming-guides/proto3/#json:
 * lowerCamelCase names (the proto name is also accepted), 64-bit integers
 * as decimal strings, bytes as base64, enums by name, NaN and +-Infinity as
 * strings, default values of implicit-presence fields omitted. Where this
 * implementation differs or chooses:
 *
 *  - JSON names are computed from the proto name the way protoc computes
 *    the default json_name ("if_version" -> "ifVersion"): protoc-c's
 *    descriptors do not carry a custom `json_name` option.
 *  - Maps: protoc-c represents a map as a repeated field of nested
 *    "<Name>Entry" messages with fields key = 1 and value = 2, and its
 *    descriptors do not say "map". A repeated message field is treated as
 *    a map (a JSON object) when its message is nested, has exactly those
 *    two fields, a valid key type, and is named as protoc names map
 *    entries after the field ("by_id" -> "ByIdEntry"). A hand-written
 *    message of exactly that shape and name would be taken for a map too.
 *    Integer map keys must be in canonical decimal form ("7", "-7"; not
 *    "07", "7e0" or "-0"), so that no two JSON keys name one entry.
 *  - Well-known types (Timestamp, Duration, Any, Struct, wrappers) get no
 *    special form: they are encoded as ordinary messages.
 *  - Unsigned 64-bit values above INT64_MAX must be sent as strings, as
 *    every proto3 JSON encoder does: jansson cannot hold such a number
 *    literal and it is rejected with PBJSON_ERANGE. An integer field also
 *    rejects a JSON number written with a fraction or exponent ("1e3" is
 *    fine) whose magnitude is 2^53 or more, because the double jansson
 *    read it into may already have lost digits. Below 2^53 a fraction too
 *    small for that double to hold (4503599627370496.5) goes unnoticed:
 *    jansson keeps no number text. Strings are parsed exactly.
 *  - Duplicate JSON keys, and one field given by both of its names, are
 *    errors (PBJSON_EDUPLICATE), as in Go's and Java's parsers: different
 *    parsers keep different duplicates, so accepting them lets a gateway
 *    and a backend disagree about a request.
 *  - Strings may not contain U+0000 (protobuf-c strings are C strings).
 *  - Base64 input may use the standard or the URL-safe alphabet, with or
 *    without padding, but no whitespace, and its unused trailing bits must
 *    be zero, so that every value has one encoding.
 *  - Unknown fields protobuf-c kept from the wire are not emitted.
 *  - -0.0 counts as a default value and is omitted, as protobuf-c's packer
 *    does, so JSON and the wire agree.
 *  - emit_defaults affects only fields without presence (plain proto3
 *    scalars, repeated fields, maps); unset messages, oneof members and
 *    optional fields stay absent.
 *  - ignore_unknown skips unknown field names, not unknown enum names.
 *  - proto2 descriptors work too (optional with has_*, defaults, required
 *    fields: a missing one is PBJSON_EREQUIRED). Groups and extensions are
 *    not supported; protobuf-c has no descriptors for them.
 */
#ifndef PBJSON_H
#define PBJSON_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include "ds_assert.h"

/* --- limits --- */

/* PBJSON_MAX_DEPTH is how deeply messages may nest, the outermost message
 * counting as 1: deeper input is PBJSON_EDEPTH, checked before recursing,
 * when encoding and when decoding. datasync's deepest message is 3 levels;
 * 64 leaves room for any sane schema while bounding the stack a hostile
 * request can consume. jansson's own parser stops at 2048 levels of
 * arrays and objects, which is reported as PBJSON_EDEPTH too. */
#define PBJSON_MAX_DEPTH 64

/* PBJSON_MAX_JSON_DEPTH bounds pbjson_dump's recursion over arbitrary
 * JSON. A message nests at most two JSON levels per message level (an
 * array or map object, then the element), plus room for an envelope. */
#define PBJSON_MAX_JSON_DEPTH (2 * PBJSON_MAX_DEPTH + 16)

/* PBJSON_MAX_BYTES_DEFAULT is the JSON size cap when the options leave
 * max_bytes at 0: it applies to decode's input text and to encode's
 * output text. 4 MiB holds a maximal datasync message (1 MiB value, 4/3
 * larger as base64, plus 64 KiB of other fields even if every byte of
 * them were escaped as \uXXXX) with room to spare. */
#define PBJSON_MAX_BYTES_DEFAULT ((size_t) 4 << 20)

/* PBJSON_MAX_BYTES_HARD is the largest max_bytes accepted: a bigger value
 * is PBJSON_EINVAL, not clamped. jansson builds the whole document in
 * memory first, and that tree can be 16 times the text (measured: 4 MiB
 * of "[0,0,...]" takes 64 MiB), so callers should keep max_bytes near
 * what their messages need. */
#define PBJSON_MAX_BYTES_HARD ((size_t) 256 << 20)

/* --- errors --- */

/* pbjson_err: what a call returns. 0 is success. */
typedef enum pbjson_err {
	PBJSON_OK = 0,
	PBJSON_EINVAL,         /* bad argument: NULL, not a descriptor,
	                          max_bytes over the hard maximum, a message
	                          with a NULL array element */
	PBJSON_EPARSE,         /* the text is not JSON */
	PBJSON_ETOOLARGE,      /* input or output over max_bytes */
	PBJSON_EDEPTH,         /* nesting deeper than PBJSON_MAX_DEPTH */
	PBJSON_ETYPE,          /* wrong JSON type or form for the field */
	PBJSON_ERANGE,         /* number outside the field's range */
	PBJSON_EUNKNOWN_FIELD, /* no field by that name */
	PBJSON_EDUPLICATE,     /* a key or field given twice */
	PBJSON_EONEOF,         /* two members of one oneof */
	PBJSON_EBASE64,        /* invalid base64 in a bytes field */
	PBJSON_EENUM,          /* unknown enum value name */
	PBJSON_EREQUIRED,      /* proto2 required field missing */
	PBJSON_EUTF8,          /* a string is not valid UTF-8 */
	PBJSON_ENOMEM,         /* out of memory */
} pbjson_err;

/* PBJSON_PATH_MAX and PBJSON_MESSAGE_MAX size pbjson_error's texts. */
#define PBJSON_PATH_MAX    128
#define PBJSON_MESSAGE_MAX 256

/* pbjson_error describes a failure for people and for programs. Both
 * texts are NUL-terminated, valid UTF-8 (truncated on a character
 * boundary, control characters replaced by '?'), so they can go into a
 * JSON error body as they are. */
typedef struct pbjson_error {
	char path[PBJSON_PATH_MAX];       /* JSON path of the value at fault,
	                                     "precondition.ifVersion",
	                                     "records[2].key", "counts[\"a\"]";
	                                     "" for the document itself. Keys
	                                     are spelled as in the input. */
	char message[PBJSON_MESSAGE_MAX]; /* the whole story, starting with
	                                     the path when there is one:
	                                     "precondition.ifVersion: expected
	                                     an integer, got number 1.5" */
	int line;        /* EPARSE (and other errors jansson's parser finds):
	                    1-based line; otherwise 0. jansson points just
	                    past the token it could not use. */
	int column;      /* same, 1-based column (in characters) */
	size_t position; /* same, byte offset into the input */
} pbjson_error;

/* pbjson_strerror returns a static English name for e; never NULL. */
const char *pbjson_strerror(pbjson_err e);

/* --- options --- */

/* pbjson_options: a zeroed struct, or a NULL pointer, means the proto3
 * defaults. */
typedef struct pbjson_options {
	bool original_names; /* encode: proto names ("if_version"), not
	                        lowerCamelCase; decode accepts both always */
	bool emit_defaults;  /* encode: also emit fields without presence
	                        that hold their default (0, "", [], {}) */
	bool pretty;         /* encode: indent by 2 spaces; else compact */
	bool ignore_unknown; /* decode: skip fields the message lacks */
	size_t max_bytes;    /* text cap in bytes, input for decode, output
	                        for encode; 0 = PBJSON_MAX_BYTES_DEFAULT, at
	                        most PBJSON_MAX_BYTES_HARD */
} pbjson_options;

/* --- encode --- */

/* pbjson_encode writes msg as proto3 JSON text.
 *  msg: borrowed for the call; any protobuf-c message (generated, built
 *       on the stack with *__INIT, or unpacked).
 *  o:   borrowed; NULL = defaults.
 *  out: on success an owned, NUL-terminated string (free with ds_free);
 *       out_len (may be NULL) gets its length without the NUL.
 *  err: may be NULL; written only on failure.
 * Fails with PBJSON_ETOOLARGE when the text would exceed max_bytes,
 * PBJSON_EUTF8 when a string field or string map key is not UTF-8
 * (protobuf-c does not check strings it unpacks), PBJSON_EDEPTH,
 * PBJSON_EINVAL, PBJSON_ENOMEM. On failure *out and *out_len are
 * untouched and nothing is leaked. */
DS_WUR pbjson_err pbjson_encode(const ProtobufCMessage *msg,
                                const pbjson_options *o, char **out,
                                size_t *out_len, pbjson_error *err);

/* pbjson_to_json is pbjson_encode's first half: msg as a jansson value,
 * for embedding into a larger document (the gateway's error bodies).
 * On success *out is a new reference (release with json_decref). A float
 * field holds the double nearest to the float's shortest decimal form
 * (0.1f becomes 0.1), which reads back as the same float. Failures as for
 * pbjson_encode, except that max_bytes does not apply. */
DS_WUR pbjson_err pbjson_to_json(const ProtobufCMessage *msg,
                                 const pbjson_options *o, json_t **out,
                                 pbjson_error *err);

/* pbjson_dump serializes any JSON value the way pbjson_encode does:
 * compact or pretty (o->pretty), reals in their shortest round-trip form
 * (jansson's json_dumps prints 17 digits: 0.1 as 0.10000000000000001),
 * object keys in insertion order, output capped by max_bytes.
 *  j: borrowed for the call.
 *  out/out_len/err: as for pbjson_encode.
 * Fails with PBJSON_ETOOLARGE, PBJSON_EDEPTH (nesting deeper than
 * PBJSON_MAX_JSON_DEPTH), PBJSON_EUTF8, PBJSON_EINVAL (a real that is not
 * finite), PBJSON_ENOMEM. */
DS_WUR pbjson_err pbjson_dump(const json_t *j, const pbjson_options *o,
                              char **out, size_t *out_len, pbjson_error *err);

/* --- decode --- */

/* pbjson_decode parses proto3 JSON text into a new message of type d.
 *  d:    borrowed; a generated descriptor (&foo__bar__descriptor).
 *  json: borrowed for the call; len bytes, need not be NUL-terminated.
 *        len over max_bytes is PBJSON_ETOOLARGE before anything is read.
 *  o:    borrowed; NULL = defaults.
 *  out:  on success an owned message (its descriptor is d): free it with
 *        protobuf_c_message_free_unpacked(msg, NULL). It is built exactly
 *        like protobuf_c_message_unpack's result with the default
 *        allocator, so the generated *__free_unpacked works too.
 *  err:  may be NULL; written only on failure.
 * The text must be one JSON object; duplicate keys are rejected. Fails
 * with PBJSON_EPARSE (err has line, column and position),
 * PBJSON_ETOOLARGE, PBJSON_EDEPTH, or any error of pbjson_from_json. On
 * failure *out is untouched and nothing is leaked. */
DS_WUR pbjson_err pbjson_decode(const ProtobufCMessageDescriptor *d,
                                const char *json, size_t len,
                                const pbjson_options *o,
                                ProtobufCMessage **out, pbjson_error *err);

/* pbjson_from_json is pbjson_decode after parsing: j (borrowed for the
 * call, not modified, its reference count untouched) becomes a new
 * message of type d, owned by the caller as for pbjson_decode. max_bytes
 * does not apply. Errors name the path of the value at fault:
 * PBJSON_EUNKNOWN_FIELD, PBJSON_ETYPE, PBJSON_ERANGE, PBJSON_EDUPLICATE,
 * PBJSON_EONEOF, PBJSON_EBASE64, PBJSON_EENUM, PBJSON_EREQUIRED,
 * PBJSON_EUTF8, PBJSON_EDEPTH, PBJSON_EINVAL, PBJSON_ENOMEM. On failure
 * *out is untouched and nothing is leaked. */
DS_WUR pbjson_err pbjson_from_json(const ProtobufCMessageDescriptor *d,
                                   const json_t *j, const pbjson_options *o,
                                   ProtobufCMessage **out, pbjson_error *err);

#endif /* PBJSON_H */
