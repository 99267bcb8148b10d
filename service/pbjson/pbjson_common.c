/*
 * pbjson_common.c - what encode and decode share: the per-call context,
 * error reports with their JSON path, and field names.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "pbjson_int.h"

/* --- errors --- */

const char *
pbjson_strerror(pbjson_err e)
{
	switch (e) {
	case PBJSON_OK:
		return "ok";
	case PBJSON_EINVAL:
		return "invalid argument";
	case PBJSON_EPARSE:
		return "malformed JSON";
	case PBJSON_ETOOLARGE:
		return "JSON too large";
	case PBJSON_EDEPTH:
		return "nesting too deep";
	case PBJSON_ETYPE:
		return "wrong JSON type";
	case PBJSON_ERANGE:
		return "number out of range";
	case PBJSON_EUNKNOWN_FIELD:
		return "unknown field";
	case PBJSON_EDUPLICATE:
		return "duplicate field";
	case PBJSON_EONEOF:
		return "several members of one oneof";
	case PBJSON_EBASE64:
		return "invalid base64";
	case PBJSON_EENUM:
		return "unknown enum value";
	case PBJSON_EREQUIRED:
		return "missing required field";
	case PBJSON_EUTF8:
		return "invalid UTF-8";
	case PBJSON_ENOMEM:
		return "out of memory";
	}
	return "unknown error";
}

/* pbjson_path_put appends p's steps, outermost first, to dst. The
 * recursion is as deep as the path: a few steps per message level, and
 * message levels are capped by PBJSON_MAX_DEPTH. */
static void
pbjson_path_put(char *dst, size_t cap, size_t *len, const pbjson_path *p)
{
	char step[PBJSON_PATH_MAX];
	char key[PBJSON_PATH_MAX / 2];
	int n;

	if (p == NULL) {
		return;
	}
	pbjson_path_put(dst, cap, len, p->up);
	if (p->key == NULL) {
		n = snprintf(step, sizeof(step), "[%zu]", p->index);
	} else if (p->map_key) {
		pbjson_snippet(key, sizeof(key), p->key, p->key_len);
		n = snprintf(step, sizeof(step), "[%s]", key);
	} else {
		pbjson_safe_copyn(key, sizeof(key), p->key, p->key_len);
		n = snprintf(step, sizeof(step), "%s%s", *len == 0 ? "" : ".",
		             key);
	}
	if (n < 0) {
		return;
	}
	if (*len < cap - 1) {
		/* pbjson_safe_copy cuts on a character boundary. */
		pbjson_safe_copy(dst + *len, cap - *len, step);
		*len += strlen(dst + *len);
	}
}

static pbjson_err
pbjson_vreport(pbjson_error *err, pbjson_err code, const pbjson_path *path,
               const char *fmt, va_list ap)
{
	char text[PBJSON_MESSAGE_MAX];
	char whole[2 * PBJSON_MESSAGE_MAX];
	size_t len = 0;

	if (err == NULL) {
		return code;
	}
	memset(err, 0, sizeof(*err));
	pbjson_path_put(err->path, sizeof(err->path), &len, path);
	(void) vsnprintf(text, sizeof(text), fmt, ap); /* cut if long */
	(void) snprintf(whole, sizeof(whole), "%s%s%s", err->path,
	                err->path[0] != '\0' ? ": " : "", text);
	pbjson_safe_copy(err->message, sizeof(err->message), whole);
	return code;
}

pbjson_err
pbjson_fail(pbjson_ctx *c, pbjson_err code, const pbjson_path *path,
            const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void) pbjson_vreport(c->err, code, path, fmt, ap);
	va_end(ap);
	return code;
}

pbjson_err
pbjson_report(pbjson_error *err, pbjson_err code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void) pbjson_vreport(err, code, NULL, fmt, ap);
	va_end(ap);
	return code;
}

/* --- per-call context --- */

pbjson_err
pbjson_ctx_init(pbjson_ctx *c, const pbjson_options *o, pbjson_error *err)
{
	memset(c, 0, sizeof(*c));
	c->err = err;
	if (o != NULL) {
		c->opts = *o;
	}
	if (c->opts.max_bytes == 0) {
		c->opts.max_bytes = PBJSON_MAX_BYTES_DEFAULT;
	} else if (c->opts.max_bytes > PBJSON_MAX_BYTES_HARD) {
		return pbjson_report(
		    err, PBJSON_EINVAL,
		    "max_bytes (%zu) exceeds PBJSON_MAX_BYTES_HARD (%zu)",
		    c->opts.max_bytes, PBJSON_MAX_BYTES_HARD);
	}
	/* snprintf("%g") and strtod follow LC_NUMERIC: under a locale with
	 * a decimal comma they would write and expect "0,5". uselocale is
	 * per thread, so this does not disturb other threads; glibc hands
	 * out its static C locale here without allocating. */
	c->c_locale = newlocale(LC_ALL_MASK, "C", (locale_t) 0);
	if (c->c_locale == (locale_t) 0) {
		return pbjson_report(err, PBJSON_ENOMEM, "out of memory");
	}
	c->old_locale = uselocale(c->c_locale);
	if (c->old_locale == (locale_t) 0) {
		freelocale(c->c_locale);
		return pbjson_report(err, PBJSON_EINVAL,
		                     "cannot switch to the C locale");
	}
	return PBJSON_OK;
}

void
pbjson_ctx_fini(pbjson_ctx *c)
{
	if (c->c_locale != (locale_t) 0) {
		(void) uselocale(c->old_locale); /* the one we replaced */
		freelocale(c->c_locale);
		c->c_locale = (locale_t) 0;
	}
}

/* --- descriptors and names --- */

bool
pbjson_desc_ok(const ProtobufCMessageDescriptor *d)
{
	return d != NULL && d->magic == PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC &&
	       d->message_init != NULL &&
	       (d->n_fields == 0 || d->fields != NULL);
}

static char
pbjson_upper(char ch)
{
	/* Not toupper(): protoc's rule is ASCII-only, whatever the locale. */
	return ch >= 'a' && ch <= 'z' ? (char) (ch - 'a' + 'A') : ch;
}

size_t
pbjson_json_name(const char *name, char *buf, size_t cap)
{
	bool up = false;
	size_t n = 0;

	for (; *name != '\0'; name++) {
		char ch = *name;

		if (ch == '_') {
			up = true;
			continue;
		}
		if (up) {
			ch = pbjson_upper(ch);
			up = false;
		}
		if (n + 1 < cap) {
			buf[n] = ch;
		}
		n++;
	}
	if (cap > 0) {
		buf[n < cap ? n : cap - 1] = '\0';
	}
	return n;
}

/* pbjson_json_name_is compares name's JSON name with key without building
 * it. */
static bool
pbjson_json_name_is(const char *name, const char *key, size_t key_len)
{
	bool up = false;
	size_t i = 0;

	for (; *name != '\0'; name++) {
		char ch = *name;

		if (ch == '_') {
			up = true;
			continue;
		}
		if (up) {
			ch = pbjson_upper(ch);
			up = false;
		}
		if (i >= key_len || key[i] != ch) {
			return false;
		}
		i++;
	}
	return i == key_len;
}

const ProtobufCFieldDescriptor *
pbjson_field_by_key(const ProtobufCMessageDescriptor *d, const char *key,
                    size_t key_len)
{
	unsigned i;

	/* The proto name first: should a JSON name collide with another
	 * field's proto name (protoc rejects that in proto3), the exact
	 * spelling wins. */
	for (i = 0; i < d->n_fields; i++) {
		const char *name = d->fields[i].name;

		if (strlen(name) == key_len &&
		    memcmp(name, key, key_len) == 0) {
			return &d->fields[i];
		}
	}
	for (i = 0; i < d->n_fields; i++) {
		if (pbjson_json_name_is(d->fields[i].name, key, key_len)) {
			return &d->fields[i];
		}
	}
	return NULL;
}

/* pbjson_entry_name_is checks short against protoc's MapEntryName(field):
 * "by_id" -> "ByIdEntry". */
static bool
pbjson_entry_name_is(const char *field, const char *short_name)
{
	bool up = true;
	size_t i = 0;

	for (; *field != '\0'; field++) {
		char ch = *field;

		if (ch == '_') {
			up = true;
			continue;
		}
		if (up) {
			ch = pbjson_upper(ch);
			up = false;
		}
		if (short_name[i] != ch) {
			return false;
		}
		i++;
	}
	return strcmp(short_name + i, "Entry") == 0;
}

static bool
pbjson_map_key_type_ok(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_DOUBLE:
	case PROTOBUF_C_TYPE_BYTES:
	case PROTOBUF_C_TYPE_ENUM:
	case PROTOBUF_C_TYPE_MESSAGE:
		return false;
	default:
		return true;
	}
}

const ProtobufCMessageDescriptor *
pbjson_map_entry(const ProtobufCFieldDescriptor *f,
                 const ProtobufCFieldDescriptor **key,
                 const ProtobufCFieldDescriptor **value)
{
	const ProtobufCMessageDescriptor *d;
	const ProtobufCFieldDescriptor *k;
	const ProtobufCFieldDescriptor *v;
	size_t name_len;
	size_t short_len;

	if (f->label != PROTOBUF_C_LABEL_REPEATED ||
	    f->type != PROTOBUF_C_TYPE_MESSAGE) {
		return NULL;
	}
	d = f->descriptor;
	if (!pbjson_desc_ok(d) || d->n_fields != 2 || d->name == NULL ||
	    d->short_name == NULL ||
	    !pbjson_entry_name_is(f->name, d->short_name)) {
		return NULL;
	}
	/* Nested: "pkg.Outer.FooEntry", not a top-level "pkg.FooEntry". */
	name_len = strlen(d->name);
	short_len = strlen(d->short_name);
	if (name_len <= short_len + 1 ||
	    d->name[name_len - short_len - 1] != '.' ||
	    (d->package_name != NULL && d->package_name[0] != '\0' &&
	     name_len <= strlen(d->package_name) + 1 + short_len)) {
		return NULL;
	}
	k = protobuf_c_message_descriptor_get_field(d, 1);
	v = protobuf_c_message_descriptor_get_field(d, 2);
	if (k == NULL || v == NULL || strcmp(k->name, "key") != 0 ||
	    strcmp(v->name, "value") != 0 ||
	    k->label == PROTOBUF_C_LABEL_REPEATED ||
	    v->label == PROTOBUF_C_LABEL_REPEATED ||
	    (k->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0 ||
	    (v->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0 ||
	    !pbjson_map_key_type_ok(k->type)) {
		return NULL;
	}
	*key = k;
	*value = v;
	return d;
}

size_t
pbjson_elem_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_ENUM:
		return 4;
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	}
	return 0;
}

const char *
pbjson_type_name(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT32:
		return "int32";
	case PROTOBUF_C_TYPE_SINT32:
		return "sint32";
	case PROTOBUF_C_TYPE_SFIXED32:
		return "sfixed32";
	case PROTOBUF_C_TYPE_INT64:
		return "int64";
	case PROTOBUF_C_TYPE_SINT64:
		return "sint64";
	case PROTOBUF_C_TYPE_SFIXED64:
		return "sfixed64";
	case PROTOBUF_C_TYPE_UINT32:
		return "uint32";
	case PROTOBUF_C_TYPE_FIXED32:
		return "fixed32";
	case PROTOBUF_C_TYPE_UINT64:
		return "uint64";
	case PROTOBUF_C_TYPE_FIXED64:
		return "fixed64";
	case PROTOBUF_C_TYPE_FLOAT:
		return "float";
	case PROTOBUF_C_TYPE_DOUBLE:
		return "double";
	case PROTOBUF_C_TYPE_BOOL:
		return "bool";
	case PROTOBUF_C_TYPE_ENUM:
		return "enum";
	case PROTOBUF_C_TYPE_STRING:
		return "string";
	case PROTOBUF_C_TYPE_BYTES:
		return "bytes";
	case PROTOBUF_C_TYPE_MESSAGE:
		return "message";
	}
	return "unknown type";
}
