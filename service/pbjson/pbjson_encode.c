/*
 * pbjson_encode.c - protobuf-c message -> proto3 JSON, by walking its
 * descriptor.
 *
 * Which fields appear follows protobuf-c's own packer, so that JSON and
 * the wire always carry the same fields: a oneof member when its case is
 * set, an optional scalar when its has_ flag is set, an optional string or
 * message when its pointer is neither NULL nor the descriptor's default,
 * a plain proto3 field when it is not zero / empty (or always, with
 * emit_defaults), a repeated field when it has elements.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ds_alloc.h"
#include "ds_text.h"
#include "pbjson_int.h"

static pbjson_err pbjson_enc_message(pbjson_ctx *c, const ProtobufCMessage *m,
                                     const pbjson_path *path, unsigned depth,
                                     json_t **out);

/* --- single values --- */

static pbjson_err
pbjson_enc_new(pbjson_ctx *c, json_t *v, const pbjson_path *path, json_t **out)
{
	if (v == NULL) {
		return pbjson_fail(c, PBJSON_ENOMEM, path, "out of memory");
	}
	*out = v;
	return PBJSON_OK;
}

static pbjson_err
pbjson_enc_string(pbjson_ctx *c, const char *s, const pbjson_path *path,
                  json_t **out)
{
	size_t n;

	if (s == NULL) {
		s = "";
	}
	n = strlen(s);
	/* protobuf-c copies string bytes from the wire without checking
	 * them; jansson holds only UTF-8 and JSON text must be UTF-8. */
	if (!ds_utf8_valid((const uint8_t *) s, n)) {
		return pbjson_fail(c, PBJSON_EUTF8, path,
		                   "string is not valid UTF-8");
	}
	return pbjson_enc_new(c, json_stringn_nocheck(s, n), path, out);
}

static pbjson_err
pbjson_enc_bytes(pbjson_ctx *c, const ProtobufCBinaryData *bd,
                 const pbjson_path *path, json_t **out)
{
	size_t n;
	char *text;
	json_t *v;

	if (bd->len > 0 && bd->data == NULL) {
		return pbjson_fail(c, PBJSON_EINVAL, path,
		                   "bytes field has length %zu but no data",
		                   bd->len);
	}
	/* Check the size before allocating: a huge value would only be
	 * refused by max_bytes after a huge allocation. */
	if (!pbjson_b64_len(bd->len, &n) || n > c->opts.max_bytes) {
		return pbjson_fail(
		    c, PBJSON_ETOOLARGE, path,
		    "%zu bytes exceed max_bytes (%zu) as base64", bd->len,
		    c->opts.max_bytes);
	}
	if ((text = ds_alloc(n)) == NULL) {
		return pbjson_fail(c, PBJSON_ENOMEM, path, "out of memory");
	}
	pbjson_b64_encode(bd->data, bd->len, text);
	v = json_stringn_nocheck(text, n);
	ds_free(text);
	return pbjson_enc_new(c, v, path, out);
}

static pbjson_err
pbjson_enc_double(pbjson_ctx *c, double d, const pbjson_path *path,
                  json_t **out)
{
	if (isnan(d)) {
		return pbjson_enc_new(c, json_string("NaN"), path, out);
	}
	if (isinf(d)) {
		return pbjson_enc_new(
		    c, json_string(d > 0 ? "Infinity" : "-Infinity"), path,
		    out);
	}
	return pbjson_enc_new(c, json_real(d), path, out);
}

static pbjson_err
pbjson_enc_enum(pbjson_ctx *c, const ProtobufCFieldDescriptor *f, int v,
                const pbjson_path *path, json_t **out)
{
	const ProtobufCEnumDescriptor *ed = f->descriptor;
	const ProtobufCEnumValue *ev = NULL;

	if (ed != NULL && ed->magic == PROTOBUF_C__ENUM_DESCRIPTOR_MAGIC) {
		ev = protobuf_c_enum_descriptor_get_value(ed, v);
	}
	/* proto3 enums are open: a number without a name stays a number. */
	if (ev == NULL) {
		return pbjson_enc_new(c, json_integer(v), path, out);
	}
	return pbjson_enc_string(c, ev->name, path, out);
}

/* pbjson_enc_value encodes the one value of type f->type stored at p. */
static pbjson_err
pbjson_enc_value(pbjson_ctx *c, const ProtobufCFieldDescriptor *f,
                 const void *p, const pbjson_path *path, unsigned depth,
                 json_t **out)
{
	char buf[PBJSON_NUMBUF];
	const ProtobufCMessage *sub;

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		return pbjson_enc_new(c, json_integer(*(const int32_t *) p),
		                      path, out);
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return pbjson_enc_new(c, json_integer(*(const uint32_t *) p),
		                      path, out);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		(void) snprintf(buf, sizeof(buf), "%" PRId64,
		                *(const int64_t *) p);
		return pbjson_enc_new(c, json_string(buf), path, out);
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		(void) snprintf(buf, sizeof(buf), "%" PRIu64,
		                *(const uint64_t *) p);
		return pbjson_enc_new(c, json_string(buf), path, out);
	case PROTOBUF_C_TYPE_FLOAT: {
		float fl = *(const float *) p;

		if (!isfinite(fl)) {
			return pbjson_enc_double(c, (double) fl, path, out);
		}
		return pbjson_enc_new(c, json_real(pbjson_float_as_double(fl)),
		                      path, out);
	}
	case PROTOBUF_C_TYPE_DOUBLE:
		return pbjson_enc_double(c, *(const double *) p, path, out);
	case PROTOBUF_C_TYPE_BOOL:
		return pbjson_enc_new(
		    c, json_boolean(*(const protobuf_c_boolean *) p != 0),
		    path, out);
	case PROTOBUF_C_TYPE_ENUM:
		return pbjson_enc_enum(c, f, *(const int *) p, path, out);
	case PROTOBUF_C_TYPE_STRING:
		return pbjson_enc_string(c, *(char *const *) p, path, out);
	case PROTOBUF_C_TYPE_BYTES:
		return pbjson_enc_bytes(c, p, path, out);
	case PROTOBUF_C_TYPE_MESSAGE:
		sub = *(ProtobufCMessage *const *) p;
		if (sub == NULL) {
			/* An unset map value: its default, the empty
			 * message. Callers skip unset singular fields. */
			return pbjson_enc_new(c, json_object(), path, out);
		}
		return pbjson_enc_message(c, sub, path, depth + 1, out);
	}
	return pbjson_fail(c, PBJSON_EINVAL, path, "unknown field type %d",
	                   (int) f->type);
}

/* --- repeated fields and maps --- */

static pbjson_err
pbjson_enc_array(pbjson_ctx *c, const ProtobufCFieldDescriptor *f,
                 const void *arr, size_t n, const pbjson_path *path,
                 unsigned depth, json_t **out)
{
	size_t size = pbjson_elem_size(f->type);
	json_t *a;
	size_t i;
	pbjson_err rv = PBJSON_OK;

	if ((a = json_array()) == NULL) {
		return pbjson_fail(c, PBJSON_ENOMEM, path, "out of memory");
	}
	for (i = 0; i < n; i++) {
		pbjson_path step = {path, NULL, 0, i, false};
		const void *p = (const char *) arr + i * size;
		json_t *v;

		if (f->type == PROTOBUF_C_TYPE_MESSAGE &&
		    *(ProtobufCMessage *const *) p == NULL) {
			rv = pbjson_fail(
			    c, PBJSON_EINVAL, &step,
			    "NULL element in a repeated message field");
			goto out;
		}
		if ((rv = pbjson_enc_value(c, f, p, &step, depth, &v)) !=
		    PBJSON_OK) {
			goto out;
		}
		if (json_array_append_new(a, v) != 0) {
			rv = pbjson_fail(c, PBJSON_ENOMEM, path,
			                 "out of memory");
			goto out;
		}
	}
	*out = a;
	return PBJSON_OK;
out:
	json_decref(a);
	return rv;
}

/* pbjson_enc_map_key writes a map entry's key as JSON object key text. */
static pbjson_err
pbjson_enc_map_key(pbjson_ctx *c, const ProtobufCFieldDescriptor *kf,
                   const ProtobufCMessage *entry, const pbjson_path *path,
                   char *buf, const char **key)
{
	const void *p = pbjson_member(entry, kf->offset);

	switch (kf->type) {
	case PROTOBUF_C_TYPE_STRING:
		*key = *(char *const *) p != NULL ? *(char *const *) p : "";
		if (!ds_utf8_valid((const uint8_t *) *key, strlen(*key))) {
			return pbjson_fail(c, PBJSON_EUTF8, path,
			                   "map key is not valid UTF-8");
		}
		return PBJSON_OK;
	case PROTOBUF_C_TYPE_BOOL:
		*key = *(const protobuf_c_boolean *) p ? "true" : "false";
		return PBJSON_OK;
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		(void) snprintf(buf, PBJSON_NUMBUF, "%" PRId32,
		                *(const int32_t *) p);
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		(void) snprintf(buf, PBJSON_NUMBUF, "%" PRIu32,
		                *(const uint32_t *) p);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		(void) snprintf(buf, PBJSON_NUMBUF, "%" PRId64,
		                *(const int64_t *) p);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		(void) snprintf(buf, PBJSON_NUMBUF, "%" PRIu64,
		                *(const uint64_t *) p);
		break;
	default:
		/* pbjson_map_entry admits no other key type. */
		return pbjson_fail(c, PBJSON_EINVAL, path,
		                   "unsupported map key type %s",
		                   pbjson_type_name(kf->type));
	}
	*key = buf;
	return PBJSON_OK;
}

static pbjson_err
pbjson_enc_map(pbjson_ctx *c, const ProtobufCFieldDescriptor *kf,
               const ProtobufCFieldDescriptor *vf,
               ProtobufCMessage *const *entries, size_t n,
               const pbjson_path *path, unsigned depth, json_t **out)
{
	json_t *obj;
	size_t i;
	pbjson_err rv = PBJSON_OK;

	if ((obj = json_object()) == NULL) {
		return pbjson_fail(c, PBJSON_ENOMEM, path, "out of memory");
	}
	for (i = 0; i < n; i++) {
		pbjson_path step = {path, NULL, 0, i, false};
		char buf[PBJSON_NUMBUF];
		const char *key = "";
		json_t *v;

		if (entries[i] == NULL) {
			rv = pbjson_fail(c, PBJSON_EINVAL, &step,
			                 "NULL entry in a map field");
			goto out;
		}
		if ((rv = pbjson_enc_map_key(c, kf, entries[i], &step, buf,
		                             &key)) != PBJSON_OK) {
			goto out;
		}
		step.key = key;
		step.key_len = strlen(key);
		step.map_key = true;
		if ((rv = pbjson_enc_value(
		         c, vf, pbjson_member(entries[i], vf->offset), &step,
		         depth, &v)) != PBJSON_OK) {
			goto out;
		}
		/* A key given twice keeps the last value, as protobuf's
		 * own map semantics do. */
		if (json_object_set_new_nocheck(obj, key, v) != 0) {
			rv = pbjson_fail(c, PBJSON_ENOMEM, path,
			                 "out of memory");
			goto out;
		}
	}
	*out = obj;
	return PBJSON_OK;
out:
	json_decref(obj);
	return rv;
}

/* --- messages --- */

/* pbjson_is_zero is protobuf-c's test for a proto3 field without
 * presence that holds its default and is not packed. */
static bool
pbjson_is_zero(const ProtobufCFieldDescriptor *f, const void *p)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_BOOL:
		return *(const protobuf_c_boolean *) p == 0;
	case PROTOBUF_C_TYPE_ENUM:
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return *(const uint32_t *) p == 0;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return *(const uint64_t *) p == 0;
	case PROTOBUF_C_TYPE_FLOAT:
		return *(const float *) p == 0;
	case PROTOBUF_C_TYPE_DOUBLE:
		return *(const double *) p == 0;
	case PROTOBUF_C_TYPE_STRING:
		return *(char *const *) p == NULL ||
		       **(char *const *) p == '\0';
	case PROTOBUF_C_TYPE_BYTES:
		return ((const ProtobufCBinaryData *) p)->len == 0;
	case PROTOBUF_C_TYPE_MESSAGE:
		return *(ProtobufCMessage *const *) p == NULL;
	}
	return true;
}

/* pbjson_enc_field decides whether f is present in m and, if so,
 * encodes it into *out (NULL when it is to be left out). */
static pbjson_err
pbjson_enc_field(pbjson_ctx *c, const ProtobufCMessage *m,
                 const ProtobufCFieldDescriptor *f, const pbjson_path *path,
                 unsigned depth, json_t **out)
{
	const void *p = pbjson_member(m, f->offset);
	bool ptr_type = f->type == PROTOBUF_C_TYPE_STRING ||
	                f->type == PROTOBUF_C_TYPE_MESSAGE;
	const void *ptr = ptr_type ? *(const void *const *) p : NULL;

	*out = NULL;
	if (f->label == PROTOBUF_C_LABEL_REPEATED) {
		size_t n =
		    *(const size_t *) pbjson_member(m, f->quantifier_offset);
		const void *arr = *(const void *const *) p;
		const ProtobufCFieldDescriptor *kf;
		const ProtobufCFieldDescriptor *vf;
		bool map = pbjson_map_entry(f, &kf, &vf) != NULL;

		if (n == 0) {
			if (!c->opts.emit_defaults) {
				return PBJSON_OK;
			}
			return pbjson_enc_new(
			    c, map ? json_object() : json_array(), path, out);
		}
		if (arr == NULL) {
			return pbjson_fail(
			    c, PBJSON_EINVAL, path,
			    "repeated field has %zu elements but no array", n);
		}
		if (map) {
			return pbjson_enc_map(c, kf, vf, arr, n, path, depth,
			                      out);
		}
		return pbjson_enc_array(c, f, arr, n, path, depth, out);
	}
	if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0) {
		uint32_t which =
		    *(const uint32_t *) pbjson_member(m, f->quantifier_offset);

		/* A set string member is emitted even when empty: unlike
		 * the packer, which drops a case whose pointer is the
		 * default "", JSON keeps which member was chosen. */
		if (which != f->id || (ptr_type && ptr == NULL)) {
			return PBJSON_OK;
		}
	} else if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
		if (ptr_type) {
			if (ptr == NULL || ptr == f->default_value) {
				return PBJSON_OK;
			}
		} else if (!*(const protobuf_c_boolean *) pbjson_member(
		               m, f->quantifier_offset)) {
			return PBJSON_OK;
		}
	} else if (f->label == PROTOBUF_C_LABEL_REQUIRED) {
		if (f->type == PROTOBUF_C_TYPE_MESSAGE && ptr == NULL) {
			return pbjson_fail(c, PBJSON_EINVAL, path,
			                   "required message field is NULL");
		}
	} else if (pbjson_is_zero(f, p)) {
		/* Messages have presence: emit_defaults leaves them out. */
		if (!c->opts.emit_defaults ||
		    f->type == PROTOBUF_C_TYPE_MESSAGE) {
			return PBJSON_OK;
		}
	}
	return pbjson_enc_value(c, f, p, path, depth, out);
}

static pbjson_err
pbjson_enc_message(pbjson_ctx *c, const ProtobufCMessage *m,
                   const pbjson_path *path, unsigned depth, json_t **out)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	json_t *obj;
	unsigned i;
	pbjson_err rv = PBJSON_OK;

	if (depth > PBJSON_MAX_DEPTH) {
		return pbjson_fail(
		    c, PBJSON_EDEPTH, path,
		    "messages nest deeper than PBJSON_MAX_DEPTH (%d)",
		    PBJSON_MAX_DEPTH);
	}
	if (!pbjson_desc_ok(d)) {
		return pbjson_fail(c, PBJSON_EINVAL, path,
		                   "not a protobuf-c message");
	}
	if ((obj = json_object()) == NULL) {
		return pbjson_fail(c, PBJSON_ENOMEM, path, "out of memory");
	}
	/* Fields go out in the descriptor's order, which protoc-c sorts by
	 * field number, as other proto3 JSON encoders do. */
	for (i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		char small[64];
		char *name = small;
		size_t len;
		json_t *v;
		pbjson_path step = {path, f->name, strlen(f->name), 0, false};

		if (!c->opts.original_names) {
			len = pbjson_json_name(f->name, small, sizeof(small));
			if (len >= sizeof(small)) {
				if ((name = ds_alloc(len + 1)) == NULL) {
					rv =
					    pbjson_fail(c, PBJSON_ENOMEM, path,
					                "out of memory");
					goto out;
				}
				(void) pbjson_json_name(f->name, name,
				                        len + 1);
			}
			step.key = name;
			step.key_len = len;
		}
		rv = pbjson_enc_field(c, m, f, &step, depth, &v);
		if (rv == PBJSON_OK && v != NULL &&
		    json_object_set_new_nocheck(obj, step.key, v) != 0) {
			rv = pbjson_fail(c, PBJSON_ENOMEM, path,
			                 "out of memory");
		}
		if (name != small) {
			ds_free(name);
		}
		if (rv != PBJSON_OK) {
			goto out;
		}
	}
	*out = obj;
	return PBJSON_OK;
out:
	json_decref(obj);
	return rv;
}

/* --- public --- */

static pbjson_err
pbjson_to_json_ctx(pbjson_ctx *c, const ProtobufCMessage *msg, json_t **out)
{
	if (msg == NULL || out == NULL) {
		return pbjson_fail(c, PBJSON_EINVAL, NULL,
		                   "message and out must not be NULL");
	}
	return pbjson_enc_message(c, msg, NULL, 1, out);
}

pbjson_err
pbjson_to_json(const ProtobufCMessage *msg, const pbjson_options *o,
               json_t **out, pbjson_error *err)
{
	pbjson_ctx c;
	pbjson_err rv;

	if ((rv = pbjson_ctx_init(&c, o, err)) != PBJSON_OK) {
		return rv;
	}
	rv = pbjson_to_json_ctx(&c, msg, out);
	pbjson_ctx_fini(&c);
	return rv;
}

pbjson_err
pbjson_encode(const ProtobufCMessage *msg, const pbjson_options *o, char **out,
              size_t *out_len, pbjson_error *err)
{
	pbjson_ctx c;
	json_t *j = NULL;
	pbjson_err rv;

	if (out == NULL) {
		return pbjson_report(err, PBJSON_EINVAL,
		                     "out must not be NULL");
	}
	if ((rv = pbjson_ctx_init(&c, o, err)) != PBJSON_OK) {
		return rv;
	}
	if ((rv = pbjson_to_json_ctx(&c, msg, &j)) == PBJSON_OK) {
		rv = pbjson_dump(j, &c.opts, out, out_len, err);
		json_decref(j);
	}
	pbjson_ctx_fini(&c);
	return rv;
}
