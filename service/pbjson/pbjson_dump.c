/*
 * pbjson_dump.c - JSON values -> text.
 *
 * jansson's json_dumps would do, but it prints every real with 17
 * significant digits (0.1 becomes 0.10000000000000001) and cannot cap
 * its output. This writer prints the shortest form that reads back as the
 * same double and writes into a ds_buf bounded by max_bytes.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ds_alloc.h"
#include "ds_buf.h"
#include "ds_text.h"
#include "pbjson_int.h"

typedef struct pbjson_writer {
	pbjson_ctx *c; /* borrowed */
	ds_buf buf;    /* owned until taken */
} pbjson_writer;

static pbjson_err
pbjson_put(pbjson_writer *w, const char *s, size_t n)
{
	switch (ds_buf_append(&w->buf, s, n)) {
	case DS_OK:
		return PBJSON_OK;
	case DS_ETOOLARGE:
		return pbjson_fail(w->c, PBJSON_ETOOLARGE, NULL,
		                   "encoded JSON exceeds max_bytes (%zu)",
		                   w->buf.max);
	default:
		return pbjson_fail(w->c, PBJSON_ENOMEM, NULL, "out of memory");
	}
}

static pbjson_err
pbjson_put_indent(pbjson_writer *w, unsigned level)
{
	static const char spaces[] = "                                ";
	size_t n = (size_t) level * 2;
	pbjson_err rv;

	if (!w->c->opts.pretty) {
		return PBJSON_OK;
	}
	if ((rv = pbjson_put(w, "\n", 1)) != PBJSON_OK) {
		return rv;
	}
	while (n > 0) {
		size_t k = n < sizeof(spaces) - 1 ? n : sizeof(spaces) - 1;

		if ((rv = pbjson_put(w, spaces, k)) != PBJSON_OK) {
			return rv;
		}
		n -= k;
	}
	return PBJSON_OK;
}

static pbjson_err
pbjson_put_string(pbjson_writer *w, const char *s, size_t n,
                  const pbjson_path *path)
{
	size_t i;
	size_t run = 0;
	pbjson_err rv;

	if (!ds_utf8_valid((const uint8_t *) s, n)) {
		return pbjson_fail(w->c, PBJSON_EUTF8, path,
		                   "string is not valid UTF-8");
	}
	if ((rv = pbjson_put(w, "\"", 1)) != PBJSON_OK) {
		return rv;
	}
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char) s[i];
		char esc[8];
		size_t k = 2;

		if (ch >= 0x20 && ch != '"' && ch != '\\') {
			continue;
		}
		switch (ch) {
		case '"':
			memcpy(esc, "\\\"", 2);
			break;
		case '\\':
			memcpy(esc, "\\\\", 2);
			break;
		case '\b':
			memcpy(esc, "\\b", 2);
			break;
		case '\f':
			memcpy(esc, "\\f", 2);
			break;
		case '\n':
			memcpy(esc, "\\n", 2);
			break;
		case '\r':
			memcpy(esc, "\\r", 2);
			break;
		case '\t':
			memcpy(esc, "\\t", 2);
			break;
		default:
			k = (size_t) snprintf(esc, sizeof(esc), "\\u%04x", ch);
			break;
		}
		if ((rv = pbjson_put(w, s + run, i - run)) != PBJSON_OK ||
		    (rv = pbjson_put(w, esc, k)) != PBJSON_OK) {
			return rv;
		}
		run = i + 1;
	}
	if ((rv = pbjson_put(w, s + run, n - run)) != PBJSON_OK) {
		return rv;
	}
	return pbjson_put(w, "\"", 1);
}

static pbjson_err
pbjson_put_real(pbjson_writer *w, double d, const pbjson_path *path)
{
	char buf[PBJSON_NUMBUF + 2];
	size_t n;

	if (!isfinite(d)) {
		return pbjson_fail(w->c, PBJSON_EINVAL, path,
		                   "a JSON number cannot be NaN or infinite");
	}
	n = pbjson_fmt_double(d, buf);
	/* Keep a real a real when read back, as jansson does: "5.0". */
	if (strpbrk(buf, ".eE") == NULL) {
		memcpy(buf + n, ".0", 3);
		n += 2;
	}
	return pbjson_put(w, buf, n);
}

static pbjson_err
pbjson_dump_value(pbjson_writer *w, const json_t *v, unsigned level,
                  const pbjson_path *path)
{
	char buf[PBJSON_NUMBUF];
	pbjson_err rv = PBJSON_OK;
	size_t i;
	void *it;
	int n;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
	case JSON_ARRAY:
		if (level >= PBJSON_MAX_JSON_DEPTH) {
			return pbjson_fail(w->c, PBJSON_EDEPTH, path,
			                   "JSON nests deeper than "
			                   "PBJSON_MAX_JSON_DEPTH (%d)",
			                   PBJSON_MAX_JSON_DEPTH);
		}
		break;
	case JSON_STRING:
		return pbjson_put_string(w, json_string_value(v),
		                         json_string_length(v), path);
	case JSON_INTEGER:
		n = snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT,
		             json_integer_value(v));
		return pbjson_put(w, buf, n < 0 ? 0 : (size_t) n);
	case JSON_REAL:
		return pbjson_put_real(w, json_real_value(v), path);
	case JSON_TRUE:
		return pbjson_put(w, "true", 4);
	case JSON_FALSE:
		return pbjson_put(w, "false", 5);
	case JSON_NULL:
		return pbjson_put(w, "null", 4);
	}
	if (json_is_array(v)) {
		if (json_array_size(v) == 0) {
			return pbjson_put(w, "[]", 2);
		}
		if ((rv = pbjson_put(w, "[", 1)) != PBJSON_OK) {
			return rv;
		}
		for (i = 0; i < json_array_size(v); i++) {
			pbjson_path step = {path, NULL, 0, i, false};

			if ((i > 0 &&
			     (rv = pbjson_put(w, ",", 1)) != PBJSON_OK) ||
			    (rv = pbjson_put_indent(w, level + 1)) !=
			        PBJSON_OK ||
			    (rv = pbjson_dump_value(w, json_array_get(v, i),
			                            level + 1, &step)) !=
			        PBJSON_OK) {
				return rv;
			}
		}
		if ((rv = pbjson_put_indent(w, level)) != PBJSON_OK) {
			return rv;
		}
		return pbjson_put(w, "]", 1);
	}
	if (json_object_size(v) == 0) {
		return pbjson_put(w, "{}", 2);
	}
	if ((rv = pbjson_put(w, "{", 1)) != PBJSON_OK) {
		return rv;
	}
	/* Iteration does not change the object; jansson's iterator API just
	 * is not const. Insertion order, so fields keep their numbering. */
	for (it = json_object_iter((json_t *) v), i = 0; it != NULL;
	     it = json_object_iter_next((json_t *) v, it), i++) {
		const char *key = json_object_iter_key(it);
		size_t klen = json_object_iter_key_len(it);
		pbjson_path step = {path, key, klen, 0, false};

		if ((i > 0 && (rv = pbjson_put(w, ",", 1)) != PBJSON_OK) ||
		    (rv = pbjson_put_indent(w, level + 1)) != PBJSON_OK ||
		    (rv = pbjson_put_string(w, key, klen, &step)) !=
		        PBJSON_OK ||
		    (rv = pbjson_put(w, ":", 1)) != PBJSON_OK ||
		    (w->c->opts.pretty &&
		     (rv = pbjson_put(w, " ", 1)) != PBJSON_OK) ||
		    (rv = pbjson_dump_value(w, json_object_iter_value(it),
		                            level + 1, &step)) != PBJSON_OK) {
			return rv;
		}
	}
	if ((rv = pbjson_put_indent(w, level)) != PBJSON_OK) {
		return rv;
	}
	return pbjson_put(w, "}", 1);
}

pbjson_err
pbjson_dump(const json_t *j, const pbjson_options *o, char **out,
            size_t *out_len, pbjson_error *err)
{
	pbjson_ctx c;
	pbjson_writer w;
	size_t len;
	pbjson_err rv;

	if (j == NULL || out == NULL) {
		return pbjson_report(err, PBJSON_EINVAL,
		                     "value and out must not be NULL");
	}
	if ((rv = pbjson_ctx_init(&c, o, err)) != PBJSON_OK) {
		return rv;
	}
	w.c = &c;
	ds_buf_init(&w.buf, c.opts.max_bytes);
	if ((rv = pbjson_dump_value(&w, j, 0, NULL)) == PBJSON_OK) {
		/* Something was always written, so ptr is not NULL. */
		*out = (char *) ds_buf_take(&w.buf, &len);
		if (out_len != NULL) {
			*out_len = len;
		}
	}
	ds_buf_fini(&w.buf);
	pbjson_ctx_fini(&c);
	return rv;
}
