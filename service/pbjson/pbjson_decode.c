/*
 * pbjson_decode.c - proto3 JSON -> a new protobuf-c message, by walking
 * its descriptor.
 *
 * The result must be freeable by protobuf_c_message_free_unpacked(m,
 * NULL), so it is built the way protobuf_c_message_unpack builds one with
 * the default allocator (malloc, which is what ds_alloc is):
 *  - every message, sub-message and map entry is malloc'd and set up by
 *    its descriptor's message_init;
 *  - a string that is present gets its own malloc'd copy. The one
 *    exception, an empty plain proto3 string, keeps the descriptor's
 *    default pointer (protobuf_c_empty_string), which free_unpacked knows
 *    not to free; a oneof or optional string is always copied, because
 *    the packer takes the default pointer to mean "not set";
 *  - bytes get a malloc'd copy, or data = NULL when empty;
 *  - a repeated field gets a malloc'd array of exactly its length, or
 *    stays NULL when empty.
 * The message under construction is consistent at every step: arrays are
 * attached with a count of the elements filled so far, sub-messages are
 * attached only when complete, a oneof case is set only once its member
 * is. On any error the whole message goes to free_unpacked, which then
 * frees exactly what was allocated.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ds_alloc.h"
#include "ds_text.h"
#include "pbjson_int.h"

static pbjson_err pbjson_dec_message(pbjson_ctx *c,
                                     const ProtobufCMessageDescriptor *d,
                                     const json_t *j, const pbjson_path *path,
                                     unsigned depth, ProtobufCMessage **out);

static pbjson_err pbjson_dec_field(pbjson_ctx *c, ProtobufCMessage *m,
                                   const ProtobufCFieldDescriptor *f,
                                   const json_t *v, const pbjson_path *path,
                                   unsigned depth);

/* --- errors --- */

static pbjson_err
pbjson_type_error(pbjson_ctx *c, const pbjson_path *path, const char *expected,
                  const char *detail, const json_t *v)
{
	char got[PBJSON_SNIPPET_MAX + 32];

	pbjson_describe(got, sizeof(got), v);
	return pbjson_fail(c, PBJSON_ETYPE, path, "expected %s (%s), got %s",
	                   expected, detail, got);
}

static pbjson_err
pbjson_enomem(pbjson_ctx *c, const pbjson_path *path)
{
	return pbjson_fail(c, PBJSON_ENOMEM, path, "out of memory");
}

/* --- integers --- */

/* 2^53: from there on a double no longer holds every integer, so a
 * JSON number that jansson had to read as a real (it has a fraction or
 * an exponent) may have lost digits: 9007199254740993.0 reads as 2^53.
 * jansson keeps no number text, so below 2^53 a fraction too small for
 * the double to hold (4503599627370496.5) still reads as an integer. */
#define PBJSON_EXACT_DOUBLE_INT 9007199254740992.0

/* pbjson_dec_int reads v as an integer: a JSON integer, a real with no
 * fraction, or a string holding a JSON number with no fraction. */
static pbjson_err
pbjson_dec_int(pbjson_ctx *c, const ProtobufCFieldDescriptor *f,
               const json_t *v, const pbjson_path *path, bool *neg,
               uint64_t *mag)
{
	const char *tn = pbjson_type_name(f->type);
	char got[PBJSON_SNIPPET_MAX + 32];
	json_int_t i;
	double d;

	switch (json_typeof(v)) {
	case JSON_INTEGER:
		i = json_integer_value(v);
		*neg = i < 0;
		*mag = i < 0 ? (uint64_t) 0 - (uint64_t) i : (uint64_t) i;
		return PBJSON_OK;
	case JSON_REAL:
		d = json_real_value(v);
		if (!isfinite(d) || d != floor(d)) {
			return pbjson_type_error(c, path, "an integer", tn, v);
		}
		if (fabs(d) >= PBJSON_EXACT_DOUBLE_INT) {
			pbjson_describe(got, sizeof(got), v);
			return pbjson_fail(
			    c, PBJSON_ERANGE, path,
			    "%s is not below 2^53 and not a plain integer, so "
			    "it may be inexact; send it as a string",
			    got);
		}
		*neg = d < 0;
		*mag = (uint64_t) fabs(d);
		return PBJSON_OK;
	case JSON_STRING:
		switch (pbjson_parse_int_text(
		    json_string_value(v), json_string_length(v), neg, mag)) {
		case PBJSON_NUM_OK:
			return PBJSON_OK;
		case PBJSON_NUM_RANGE:
			pbjson_describe(got, sizeof(got), v);
			return pbjson_fail(c, PBJSON_ERANGE, path,
			                   "%s is out of range for %s", got,
			                   tn);
		default:
			return pbjson_type_error(c, path, "an integer", tn, v);
		}
	default:
		return pbjson_type_error(c, path, "an integer", tn, v);
	}
}

/* pbjson_int_fits is true when neg/mag is in range for type t (an
 * integer type, or an enum, which is an int32). */
static bool
pbjson_int_fits(ProtobufCType t, bool neg, uint64_t mag)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_ENUM:
		return mag <= (neg ? (uint64_t) INT32_MAX + 1 : INT32_MAX);
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return mag <= (neg ? 0 : UINT32_MAX);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		return mag <= (neg ? (uint64_t) INT64_MAX + 1 : INT64_MAX);
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return !neg || mag == 0;
	default:
		return false;
	}
}

/* pbjson_int_store writes neg/mag, which pbjson_int_fits accepted, as a
 * value of type t at dst. */
static void
pbjson_int_store(ProtobufCType t, bool neg, uint64_t mag, void *dst)
{
	/* -mag computed in 64 bits: mag <= 2^63 here, and 2^63 itself is
	 * only possible for the 64-bit types. */
	int64_t sv = !neg                              ? (int64_t) mag
	             : mag == (uint64_t) INT64_MAX + 1 ? INT64_MIN
	                                               : -(int64_t) mag;

	switch (t) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		*(int32_t *) dst = (int32_t) sv;
		break;
	case PROTOBUF_C_TYPE_ENUM:
		*(int *) dst = (int) sv;
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		*(uint32_t *) dst = (uint32_t) mag;
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		*(int64_t *) dst = sv;
		break;
	default:
		*(uint64_t *) dst = mag;
		break;
	}
}

/* pbjson_store_int range-checks neg/mag for type t and stores it at dst.
 * v is the input, described in the message when out of range. */
static pbjson_err
pbjson_store_int(pbjson_ctx *c, ProtobufCType t, bool neg, uint64_t mag,
                 const json_t *v, const pbjson_path *path, void *dst)
{
	char got[PBJSON_SNIPPET_MAX + 32];

	if (!pbjson_int_fits(t, neg, mag)) {
		pbjson_describe(got, sizeof(got), v);
		return pbjson_fail(
		    c, PBJSON_ERANGE, path, "%s is out of range for %s", got,
		    t == PROTOBUF_C_TYPE_ENUM ? "an enum (int32)"
		                              : pbjson_type_name(t));
	}
	pbjson_int_store(t, neg, mag, dst);
	return PBJSON_OK;
}

/* --- other scalars --- */

/* Above this a double rounds to float infinity (round-to-nearest-even
 * at FLT_MAX + half an ulp). Comparing first also keeps the conversion
 * defined: narrowing an out-of-range double is undefined in C. */
#define PBJSON_FLOAT_LIMIT 0x1.ffffffp+127

static pbjson_err
pbjson_dec_real(pbjson_ctx *c, const ProtobufCFieldDescriptor *f,
                const json_t *v, const pbjson_path *path, void *dst)
{
	const char *tn = pbjson_type_name(f->type);
	char got[PBJSON_SNIPPET_MAX + 32];
	const char *s;
	double d;

	switch (json_typeof(v)) {
	case JSON_INTEGER:
		d = (double) json_integer_value(v);
		break;
	case JSON_REAL:
		d = json_real_value(v);
		break;
	case JSON_STRING:
		s = json_string_value(v);
		if (strcmp(s, "NaN") == 0) {
			d = NAN;
		} else if (strcmp(s, "Infinity") == 0) {
			d = INFINITY;
		} else if (strcmp(s, "-Infinity") == 0) {
			d = -INFINITY;
		} else {
			switch (pbjson_parse_real_text(
			    s, json_string_length(v), &d)) {
			case PBJSON_NUM_OK:
				break;
			case PBJSON_NUM_RANGE:
				pbjson_describe(got, sizeof(got), v);
				return pbjson_fail(c, PBJSON_ERANGE, path,
				                   "%s is out of range for %s",
				                   got, tn);
			default:
				return pbjson_type_error(
				    c, path,
				    "a number, \"NaN\", \"Infinity\" or "
				    "\"-Infinity\"",
				    tn, v);
			}
		}
		break;
	default:
		return pbjson_type_error(c, path, "a number", tn, v);
	}
	if (f->type == PROTOBUF_C_TYPE_FLOAT) {
		if (isfinite(d) && fabs(d) >= PBJSON_FLOAT_LIMIT) {
			pbjson_describe(got, sizeof(got), v);
			return pbjson_fail(c, PBJSON_ERANGE, path,
			                   "%s is out of range for float",
			                   got);
		}
		*(float *) dst = (float) d;
	} else {
		*(double *) dst = d;
	}
	return PBJSON_OK;
}

static pbjson_err
pbjson_dec_enum(pbjson_ctx *c, const ProtobufCFieldDescriptor *f,
                const json_t *v, const pbjson_path *path, void *dst)
{
	const ProtobufCEnumDescriptor *ed = f->descriptor;
	const char *en = ed != NULL ? ed->name : "enum";
	char got[PBJSON_SNIPPET_MAX + 32];
	const ProtobufCEnumValue *ev = NULL;
	bool neg;
	uint64_t mag;
	pbjson_err rv;

	if (ed == NULL || ed->magic != PROTOBUF_C__ENUM_DESCRIPTOR_MAGIC) {
		return pbjson_fail(c, PBJSON_EINVAL, path,
		                   "enum field without an enum descriptor");
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v);

		if (strlen(s) == json_string_length(v)) {
			ev = protobuf_c_enum_descriptor_get_value_by_name(ed,
			                                                  s);
		}
		if (ev == NULL) {
			pbjson_snippet(got, sizeof(got), s,
			               json_string_length(v));
			return pbjson_fail(c, PBJSON_EENUM, path,
			                   "unknown value %s for enum %s", got,
			                   en);
		}
		*(int *) dst = ev->value;
		return PBJSON_OK;
	}
	if (!json_is_number(v)) {
		return pbjson_type_error(c, path, "an enum name or number", en,
		                         v);
	}
	/* proto3 enums are open: any int32 is a valid value. */
	if ((rv = pbjson_dec_int(c, f, v, path, &neg, &mag)) != PBJSON_OK) {
		return rv;
	}
	return pbjson_store_int(c, PROTOBUF_C_TYPE_ENUM, neg, mag, v, path,
	                        dst);
}

/* pbjson_dec_string checks and copies a string value: *out is owned. */
static pbjson_err
pbjson_dec_string(pbjson_ctx *c, const char *s, size_t n,
                  const pbjson_path *path, char **out)
{
	if (memchr(s, '\0', n) != NULL) {
		return pbjson_fail(
		    c, PBJSON_ETYPE, path,
		    "string contains U+0000, which a protobuf-c string "
		    "cannot hold");
	}
	/* jansson checks text it parses, but a json_t built by a caller
	 * with json_stringn_nocheck may hold anything. */
	if (!ds_utf8_valid((const uint8_t *) s, n)) {
		return pbjson_fail(c, PBJSON_EUTF8, path,
		                   "string is not valid UTF-8");
	}
	if ((*out = ds_memdup(s, n)) == NULL) {
		return pbjson_enomem(c, path);
	}
	return PBJSON_OK;
}

/* pbjson_dec_value decodes v as one value of f's type into dst, which is
 * written only on success. keep_empty leaves an empty string at the
 * default pointer dst already holds. */
static pbjson_err
pbjson_dec_value(pbjson_ctx *c, const ProtobufCFieldDescriptor *f,
                 const json_t *v, const pbjson_path *path, unsigned depth,
                 bool keep_empty, void *dst)
{
	const char *tn = pbjson_type_name(f->type);
	char why[96];
	pbjson_err rv;
	bool neg;
	uint64_t mag;

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		if ((rv = pbjson_dec_int(c, f, v, path, &neg, &mag)) !=
		    PBJSON_OK) {
			return rv;
		}
		return pbjson_store_int(c, f->type, neg, mag, v, path, dst);
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_DOUBLE:
		return pbjson_dec_real(c, f, v, path, dst);
	case PROTOBUF_C_TYPE_BOOL:
		if (!json_is_boolean(v)) {
			return pbjson_type_error(c, path, "true or false", tn,
			                         v);
		}
		*(protobuf_c_boolean *) dst = json_is_true(v);
		return PBJSON_OK;
	case PROTOBUF_C_TYPE_ENUM:
		return pbjson_dec_enum(c, f, v, path, dst);
	case PROTOBUF_C_TYPE_STRING: {
		char *s;

		if (!json_is_string(v)) {
			return pbjson_type_error(c, path, "a string", tn, v);
		}
		if (keep_empty && json_string_length(v) == 0) {
			return PBJSON_OK;
		}
		if ((rv = pbjson_dec_string(c, json_string_value(v),
		                            json_string_length(v), path,
		                            &s)) != PBJSON_OK) {
			return rv;
		}
		*(char **) dst = s;
		return PBJSON_OK;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		ProtobufCBinaryData bd = {0, NULL};

		if (!json_is_string(v)) {
			return pbjson_type_error(c, path, "a base64 string",
			                         tn, v);
		}
		why[0] = '\0';
		rv = pbjson_b64_decode(json_string_value(v),
		                       json_string_length(v), &bd.data,
		                       &bd.len, why, sizeof(why));
		if (rv == PBJSON_ENOMEM) {
			return pbjson_enomem(c, path);
		}
		if (rv != PBJSON_OK) {
			return pbjson_fail(c, rv, path, "invalid base64: %s",
			                   why);
		}
		*(ProtobufCBinaryData *) dst = bd;
		return PBJSON_OK;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		ProtobufCMessage *sub;

		if ((rv = pbjson_dec_message(c, f->descriptor, v, path,
		                             depth + 1, &sub)) != PBJSON_OK) {
			return rv;
		}
		*(ProtobufCMessage **) dst = sub;
		return PBJSON_OK;
	}
	}
	return pbjson_fail(c, PBJSON_EINVAL, path, "unknown field type %d",
	                   (int) f->type);
}

/* --- repeated fields and maps --- */

static pbjson_err
pbjson_dec_array(pbjson_ctx *c, ProtobufCMessage *m,
                 const ProtobufCFieldDescriptor *f, const json_t *v,
                 const pbjson_path *path, unsigned depth)
{
	size_t *count = pbjson_member(m, f->quantifier_offset);
	size_t size = pbjson_elem_size(f->type);
	size_t n;
	char *arr;
	size_t i;
	pbjson_err rv;

	if (!json_is_array(v)) {
		return pbjson_type_error(c, path, "an array",
		                         pbjson_type_name(f->type), v);
	}
	if ((n = json_array_size(v)) == 0) {
		return PBJSON_OK;
	}
	/* n is bounded by the parsed input; ds_calloc checks n * size. */
	if ((arr = ds_calloc(n, size)) == NULL) {
		return pbjson_enomem(c, path);
	}
	*(void **) pbjson_member(m, f->offset) = arr;
	*count = 0;
	for (i = 0; i < n; i++) {
		const json_t *e = json_array_get(v, i);
		pbjson_path step = {path, NULL, 0, i, false};

		if (json_is_null(e)) {
			return pbjson_fail(
			    c, PBJSON_ETYPE, &step,
			    "null is not allowed in a repeated field");
		}
		if ((rv = pbjson_dec_value(c, f, e, &step, depth, false,
		                           arr + i * size)) != PBJSON_OK) {
			return rv;
		}
		(*count)++;
	}
	return PBJSON_OK;
}

/* pbjson_canonical_int is true for -?(0|[1-9][0-9]*), except "-0". */
static bool
pbjson_canonical_int(const char *s, size_t n)
{
	size_t i = 0;

	if (n > 0 && s[0] == '-') {
		i = 1;
	}
	if (i == n || (s[i] == '0' && (n > i + 1 || i == 1))) {
		return false;
	}
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9') {
			return false;
		}
	}
	return true;
}

/* pbjson_dec_map_key stores a JSON object key as the key of a map
 * entry. Keys are strings in JSON whatever the key type. */
static pbjson_err
pbjson_dec_map_key(pbjson_ctx *c, const ProtobufCFieldDescriptor *kf,
                   const char *key, size_t klen, const pbjson_path *path,
                   ProtobufCMessage *entry)
{
	void *dst = pbjson_member(entry, kf->offset);
	char shown[PBJSON_SNIPPET_MAX + 16];
	bool neg;
	uint64_t mag;
	pbjson_err rv;

	pbjson_snippet(shown, sizeof(shown), key, klen);
	switch (kf->type) {
	case PROTOBUF_C_TYPE_STRING: {
		char *s;

		if (klen == 0 && kf->label == PROTOBUF_C_LABEL_NONE) {
			return PBJSON_OK;
		}
		if ((rv = pbjson_dec_string(c, key, klen, path, &s)) !=
		    PBJSON_OK) {
			return rv;
		}
		*(char **) dst = s;
		return PBJSON_OK;
	}
	case PROTOBUF_C_TYPE_BOOL:
		if (klen == 4 && memcmp(key, "true", 4) == 0) {
			*(protobuf_c_boolean *) dst = 1;
		} else if (klen == 5 && memcmp(key, "false", 5) == 0) {
			*(protobuf_c_boolean *) dst = 0;
		} else {
			return pbjson_fail(
			    c, PBJSON_ETYPE, path,
			    "expected map key \"true\" or \"false\", got %s",
			    shown);
		}
		break;
	default:
		/* Canonical decimal only ("7", "-7"; not "07", "7e0", "-0"):
		 * then one integer has one spelling, and jansson's refusal
		 * of duplicate keys is also a refusal of duplicate map keys,
		 * with no search through the entries so far. */
		if (!pbjson_canonical_int(key, klen)) {
			return pbjson_fail(
			    c, PBJSON_ETYPE, path,
			    "expected an integer map key in canonical decimal "
			    "form (%s), got %s",
			    pbjson_type_name(kf->type), shown);
		}
		switch (pbjson_parse_int_text(key, klen, &neg, &mag)) {
		case PBJSON_NUM_OK:
			break;
		case PBJSON_NUM_RANGE:
			return pbjson_fail(c, PBJSON_ERANGE, path,
			                   "map key %s is out of range for %s",
			                   shown, pbjson_type_name(kf->type));
		default:
			return pbjson_fail(
			    c, PBJSON_ETYPE, path,
			    "expected an integer map key (%s), got %s",
			    pbjson_type_name(kf->type), shown);
		}
		if (!pbjson_int_fits(kf->type, neg, mag)) {
			return pbjson_fail(c, PBJSON_ERANGE, path,
			                   "map key %s is out of range for %s",
			                   shown, pbjson_type_name(kf->type));
		}
		pbjson_int_store(kf->type, neg, mag, dst);
		break;
	}
	if (kf->label == PROTOBUF_C_LABEL_OPTIONAL) {
		*(protobuf_c_boolean *) pbjson_member(
		    entry, kf->quantifier_offset) = 1;
	}
	return PBJSON_OK;
}

static pbjson_err
pbjson_dec_map(pbjson_ctx *c, ProtobufCMessage *m,
               const ProtobufCFieldDescriptor *f,
               const ProtobufCMessageDescriptor *ed,
               const ProtobufCFieldDescriptor *kf,
               const ProtobufCFieldDescriptor *vf, const json_t *v,
               const pbjson_path *path, unsigned depth)
{
	size_t *count = pbjson_member(m, f->quantifier_offset);
	ProtobufCMessage **arr;
	size_t n;
	void *it;
	pbjson_err rv;

	if (!json_is_object(v)) {
		return pbjson_type_error(c, path, "an object", "map", v);
	}
	if ((n = json_object_size(v)) == 0) {
		return PBJSON_OK;
	}
	if ((arr = ds_calloc(n, sizeof(*arr))) == NULL) {
		return pbjson_enomem(c, path);
	}
	*(ProtobufCMessage ***) pbjson_member(m, f->offset) = arr;
	*count = 0;
	for (it = json_object_iter((json_t *) v); it != NULL && *count < n;
	     it = json_object_iter_next((json_t *) v, it)) {
		const char *key = json_object_iter_key(it);
		size_t klen = json_object_iter_key_len(it);
		const json_t *val = json_object_iter_value(it);
		pbjson_path step = {path, key, klen, 0, true};
		ProtobufCMessage *entry;

		if (json_is_null(val)) {
			return pbjson_fail(
			    c, PBJSON_ETYPE, &step,
			    "null is not allowed as a map value");
		}
		if ((entry = ds_alloc(ed->sizeof_message)) == NULL) {
			return pbjson_enomem(c, &step);
		}
		protobuf_c_message_init(ed, entry);
		/* Attached at once: a half-filled entry is still a valid
		 * message for free_unpacked. */
		arr[(*count)++] = entry;
		if ((rv = pbjson_dec_map_key(c, kf, key, klen, &step,
		                             entry)) != PBJSON_OK ||
		    (rv = pbjson_dec_field(c, entry, vf, val, &step, depth)) !=
		        PBJSON_OK) {
			return rv;
		}
	}
	return PBJSON_OK;
}

/* --- messages --- */

/* pbjson_dec_field decodes v (not null) into field f of m, setting the
 * oneof case or has_ flag once the value is in place. */
static pbjson_err
pbjson_dec_field(pbjson_ctx *c, ProtobufCMessage *m,
                 const ProtobufCFieldDescriptor *f, const json_t *v,
                 const pbjson_path *path, unsigned depth)
{
	void *dst = pbjson_member(m, f->offset);
	const ProtobufCMessageDescriptor *ed;
	const ProtobufCFieldDescriptor *kf;
	const ProtobufCFieldDescriptor *vf;
	pbjson_err rv;

	if (f->label == PROTOBUF_C_LABEL_REPEATED) {
		if ((ed = pbjson_map_entry(f, &kf, &vf)) != NULL) {
			return pbjson_dec_map(c, m, f, ed, kf, vf, v, path,
			                      depth);
		}
		return pbjson_dec_array(c, m, f, v, path, depth);
	}
	if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0) {
		if ((rv = pbjson_dec_value(c, f, v, path, depth, false,
		                           dst)) == PBJSON_OK) {
			*(uint32_t *) pbjson_member(m, f->quantifier_offset) =
			    f->id;
		}
		return rv;
	}
	if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
		if ((rv = pbjson_dec_value(c, f, v, path, depth, false,
		                           dst)) == PBJSON_OK &&
		    f->type != PROTOBUF_C_TYPE_STRING &&
		    f->type != PROTOBUF_C_TYPE_MESSAGE) {
			*(protobuf_c_boolean *) pbjson_member(
			    m, f->quantifier_offset) = 1;
		}
		return rv;
	}
	return pbjson_dec_value(c, f, v, path, depth,
	                        f->label == PROTOBUF_C_LABEL_NONE, dst);
}

/* pbjson_field_label names f for messages: its JSON name, or its proto
 * name with original_names. */
static void
pbjson_field_label(pbjson_ctx *c, const ProtobufCFieldDescriptor *f, char *buf,
                   size_t cap)
{
	if (c->opts.original_names) {
		(void) snprintf(buf, cap, "%s", f->name);
	} else {
		(void) pbjson_json_name(f->name, buf, cap);
	}
}

static pbjson_err
pbjson_dec_fields(pbjson_ctx *c, ProtobufCMessage *m, const json_t *j,
                  const pbjson_path *path, unsigned depth)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	uint8_t small[32];
	uint8_t *seen = small;
	size_t nbytes = (d->n_fields + 7) / 8;
	char a[64];
	char b[PBJSON_SNIPPET_MAX + 16];
	pbjson_err rv = PBJSON_OK;
	unsigned i;
	void *it;

	if (nbytes > sizeof(small)) {
		if ((seen = ds_calloc(nbytes, 1)) == NULL) {
			return pbjson_enomem(c, path);
		}
	} else {
		memset(small, 0, sizeof(small));
	}
	for (it = json_object_iter((json_t *) j); it != NULL;
	     it = json_object_iter_next((json_t *) j, it)) {
		const char *key = json_object_iter_key(it);
		size_t klen = json_object_iter_key_len(it);
		const json_t *val = json_object_iter_value(it);
		pbjson_path step = {path, key, klen, 0, false};
		const ProtobufCFieldDescriptor *f;
		size_t idx;

		if ((f = pbjson_field_by_key(d, key, klen)) == NULL) {
			if (c->opts.ignore_unknown) {
				continue;
			}
			pbjson_snippet(b, sizeof(b), key, klen);
			rv = pbjson_fail(c, PBJSON_EUNKNOWN_FIELD, &step,
			                 "unknown field %s in %s", b, d->name);
			goto out;
		}
		/* null means "the default": nothing to do. */
		if (json_is_null(val)) {
			continue;
		}
		idx = (size_t) (f - d->fields);
		if ((seen[idx / 8] & (1u << (idx % 8))) != 0) {
			pbjson_field_label(c, f, a, sizeof(a));
			rv = pbjson_fail(
			    c, PBJSON_EDUPLICATE, &step,
			    "field %s is given twice, by its JSON name and by "
			    "its proto name",
			    a);
			goto out;
		}
		seen[idx / 8] |= (uint8_t) (1u << (idx % 8));
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0) {
			uint32_t which = *(const uint32_t *) pbjson_member(
			    m, f->quantifier_offset);
			const ProtobufCFieldDescriptor *other;

			if (which != 0 && which != f->id) {
				other =
				    protobuf_c_message_descriptor_get_field(
				        d, which);
				pbjson_field_label(c,
				                   other != NULL ? other : f,
				                   a, sizeof(a));
				pbjson_snippet(b, sizeof(b), key, klen);
				rv = pbjson_fail(c, PBJSON_EONEOF, &step,
				                 "%s and \"%s\" are members "
				                 "of the same oneof; "
				                 "at most one may be set",
				                 b, a);
				goto out;
			}
		}
		if ((rv = pbjson_dec_field(c, m, f, val, &step, depth)) !=
		    PBJSON_OK) {
			goto out;
		}
	}
	/* proto2: a required field without a default must be there, or
	 * protobuf-c's own unpacker would refuse the message later. */
	for (i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];

		if (f->label == PROTOBUF_C_LABEL_REQUIRED &&
		    f->default_value == NULL &&
		    (seen[i / 8] & (1u << (i % 8))) == 0) {
			pbjson_field_label(c, f, a, sizeof(a));
			rv = pbjson_fail(c, PBJSON_EREQUIRED, path,
			                 "missing required field \"%s\" of %s",
			                 a, d->name);
			goto out;
		}
	}
out:
	if (seen != small) {
		ds_free(seen);
	}
	return rv;
}

static pbjson_err
pbjson_dec_message(pbjson_ctx *c, const ProtobufCMessageDescriptor *d,
                   const json_t *j, const pbjson_path *path, unsigned depth,
                   ProtobufCMessage **out)
{
	ProtobufCMessage *m;
	pbjson_err rv;

	if (depth > PBJSON_MAX_DEPTH) {
		return pbjson_fail(
		    c, PBJSON_EDEPTH, path,
		    "messages nest deeper than PBJSON_MAX_DEPTH (%d)",
		    PBJSON_MAX_DEPTH);
	}
	if (!pbjson_desc_ok(d)) {
		return pbjson_fail(c, PBJSON_EINVAL, path,
		                   "not a message descriptor");
	}
	if (!json_is_object(j)) {
		return pbjson_type_error(c, path, "an object", d->name, j);
	}
	if ((m = ds_alloc(d->sizeof_message)) == NULL) {
		return pbjson_enomem(c, path);
	}
	protobuf_c_message_init(d, m);
	if ((rv = pbjson_dec_fields(c, m, j, path, depth)) != PBJSON_OK) {
		protobuf_c_message_free_unpacked(m, NULL);
		return rv;
	}
	*out = m;
	return PBJSON_OK;
}

/* --- public --- */

pbjson_err
pbjson_from_json(const ProtobufCMessageDescriptor *d, const json_t *j,
                 const pbjson_options *o, ProtobufCMessage **out,
                 pbjson_error *err)
{
	pbjson_ctx c;
	ProtobufCMessage *m = NULL;
	pbjson_err rv;

	if (!pbjson_desc_ok(d) || j == NULL || out == NULL) {
		return pbjson_report(
		    err, PBJSON_EINVAL,
		    "descriptor, value and out must be valid");
	}
	if ((rv = pbjson_ctx_init(&c, o, err)) != PBJSON_OK) {
		return rv;
	}
	if ((rv = pbjson_dec_message(&c, d, j, NULL, 1, &m)) == PBJSON_OK) {
		*out = m;
	}
	pbjson_ctx_fini(&c);
	return rv;
}

/* pbjson_parse_error turns jansson's report into ours. jansson's text
 * quotes the input near the error, so it is sanitized first. */
static pbjson_err
pbjson_parse_error(pbjson_ctx *c, const json_error_t *je)
{
	char text[sizeof(je->text) + 1];
	pbjson_err rv;

	pbjson_safe_copy(text, sizeof(text), je->text);
	switch (json_error_code(je)) {
	case json_error_out_of_memory:
		rv = pbjson_fail(c, PBJSON_ENOMEM, NULL, "out of memory");
		break;
	case json_error_stack_overflow:
		rv = pbjson_fail(
		    c, PBJSON_EDEPTH, NULL,
		    "JSON nests too deeply at line %d, column %d: %s",
		    je->line, je->column, text);
		break;
	case json_error_duplicate_key:
		rv = pbjson_fail(c, PBJSON_EDUPLICATE, NULL,
		                 "duplicate key at line %d, column %d: %s",
		                 je->line, je->column, text);
		break;
	case json_error_numeric_overflow:
		rv = pbjson_fail(
		    c, PBJSON_ERANGE, NULL,
		    "number out of range at line %d, column %d: %s (send "
		    "64-bit integers as strings)",
		    je->line, je->column, text);
		break;
	default:
		rv = pbjson_fail(c, PBJSON_EPARSE, NULL,
		                 "malformed JSON at line %d, column %d: %s",
		                 je->line, je->column, text);
		break;
	}
	if (c->err != NULL) {
		c->err->line = je->line;
		c->err->column = je->column;
		c->err->position =
		    (size_t) (je->position < 0 ? 0 : je->position);
	}
	return rv;
}

pbjson_err
pbjson_decode(const ProtobufCMessageDescriptor *d, const char *json,
              size_t len, const pbjson_options *o, ProtobufCMessage **out,
              pbjson_error *err)
{
	pbjson_ctx c;
	json_error_t je;
	json_t *j;
	ProtobufCMessage *m = NULL;
	pbjson_err rv;

	if (!pbjson_desc_ok(d) || out == NULL || (json == NULL && len > 0)) {
		return pbjson_report(err, PBJSON_EINVAL,
		                     "descriptor, text and out must be valid");
	}
	if ((rv = pbjson_ctx_init(&c, o, err)) != PBJSON_OK) {
		return rv;
	}
	/* Before parsing: jansson would build the whole tree first. */
	if (len > c.opts.max_bytes) {
		rv = pbjson_fail(
		    &c, PBJSON_ETOOLARGE, NULL,
		    "JSON input of %zu bytes exceeds max_bytes (%zu)", len,
		    c.opts.max_bytes);
		goto out;
	}
	/* JSON_DECODE_ANY so that `[]` or `1` gets "expected an object"
	 * rather than a syntax error; NUL in strings stays refused. */
	j = json_loadb(json != NULL ? json : "", len,
	               JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
	if (j == NULL) {
		rv = pbjson_parse_error(&c, &je);
		goto out;
	}
	if ((rv = pbjson_dec_message(&c, d, j, NULL, 1, &m)) == PBJSON_OK) {
		*out = m;
	}
	json_decref(j);
out:
	pbjson_ctx_fini(&c);
	return rv;
}
