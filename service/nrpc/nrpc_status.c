/*
 * nrpc_status.c - status codes, their names, and filling nrpc_status.
 *
 * The strings of an nrpc_status are fixed-size so that setting a status
 * cannot fail; text that does not fit is cut at a UTF-8 character
 * boundary so a truncated message is still valid proto3 string content.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ds_alloc.h"
#include "nrpc_int.h"

static const char *const nrpc_code_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *
nrpc_code_name(nrpc_code c)
{
	if ((unsigned) c >= sizeof(nrpc_code_names) / sizeof(nrpc_code_names[0])) {
		return "UNKNOWN";
	}
	return nrpc_code_names[c];
}

/* nrpc_status_cut makes buf[0..len) end on a character boundary: when the
 * text was truncated, a multi-byte sequence may have lost its tail. */
static void
nrpc_status_cut(char *buf, size_t len)
{
	size_t i = len;
	size_t need;
	unsigned char lead;

	/* Walk back over continuation bytes to the last lead byte. */
	while (i > 0 && ((unsigned char) buf[i - 1] & 0xc0) == 0x80) {
		i--;
	}
	if (i == 0) {
		buf[len] = '\0';
		return;
	}
	lead = (unsigned char) buf[i - 1];
	if (lead < 0x80) {
		buf[len] = '\0';
		return;
	}
	need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
	if (len - (i - 1) < need) {
		buf[i - 1] = '\0'; /* incomplete: drop the partial character */
	} else {
		buf[len] = '\0';
	}
}

/* nrpc_status_copy copies C string s (NULL = "") into a field of cap
 * bytes, truncating at a character boundary. */
static void
nrpc_status_copy(char *dst, size_t cap, const char *s)
{
	size_t n;

	if (s == NULL) {
		dst[0] = '\0';
		return;
	}
	n = strnlen(s, cap);
	if (n < cap) {
		memcpy(dst, s, n + 1);
		return;
	}
	memcpy(dst, s, cap - 1);
	nrpc_status_cut(dst, cap - 1);
}

void
nrpc_status_vset(nrpc_status *st, nrpc_code code, const char *reason,
    const char *field, const char *fmt, va_list ap)
{
	int n;

	if (st == NULL) {
		return;
	}
	ds_free(st->detail);
	st->detail = NULL;
	st->detail_len = 0;
	st->detail_type[0] = '\0';
	st->retry_after_ms = 0;
	st->code = code;
	nrpc_status_copy(st->reason, sizeof(st->reason), reason);
	nrpc_status_copy(st->field, sizeof(st->field), field);
	if (fmt == NULL) {
		st->message[0] = '\0';
		return;
	}
	n = vsnprintf(st->message, sizeof(st->message), fmt, ap);
	if (n < 0) {
		st->message[0] = '\0';
	} else if ((size_t) n >= sizeof(st->message)) {
		nrpc_status_cut(st->message, sizeof(st->message) - 1);
	}
}

void
nrpc_status_set(nrpc_status *st, nrpc_code code, const char *reason,
    const char *field, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	nrpc_status_vset(st, code, reason, field, fmt, ap);
	va_end(ap);
}

void
nrpc_status_fini(nrpc_status *st)
{
	if (st == NULL) {
		return;
	}
	ds_free(st->detail);
	memset(st, 0, sizeof(*st));
}

nrpc_code
nrpc_status_set_detail_bytes(nrpc_status *st, const char *type_name,
    const uint8_t *bytes, size_t len)
{
	uint8_t *copy = NULL;

	if (len > 0) {
		if ((copy = ds_alloc(len)) == NULL) {
			ds_free(st->detail);
			st->detail = NULL;
			st->detail_len = 0;
			st->detail_type[0] = '\0';
			return NRPC_RESOURCE_EXHAUSTED;
		}
		memcpy(copy, bytes, len);
	}
	ds_free(st->detail);
	st->detail = copy;
	st->detail_len = len;
	nrpc_status_copy(st->detail_type, sizeof(st->detail_type), type_name);
	return NRPC_OK;
}

nrpc_code
nrpc_status_set_detail(nrpc_status *st, const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf;

	if ((buf = ds_alloc(len)) == NULL) {
		ds_free(st->detail);
		st->detail = NULL;
		st->detail_len = 0;
		st->detail_type[0] = '\0';
		return NRPC_RESOURCE_EXHAUSTED;
	}
	if (!DS_ALWAYS(protobuf_c_message_pack(msg, buf) == len)) {
		ds_free(buf);
		return NRPC_INTERNAL;
	}
	ds_free(st->detail);
	st->detail = len > 0 ? buf : NULL;
	st->detail_len = len;
	if (len == 0) {
		ds_free(buf);
	}
	nrpc_status_copy(st->detail_type, sizeof(st->detail_type),
	    msg->descriptor->name);
	return NRPC_OK;
}

void
nrpc_status_from_wire(nrpc_status *st, const Nrpc__V1__Status *ws)
{
	memset(st, 0, sizeof(*st));
	if (ws == NULL) {
		return;
	}
	st->code = ws->code >= 0 && ws->code <= NRPC_UNAUTHENTICATED ?
	    (nrpc_code) ws->code : NRPC_UNKNOWN;
	nrpc_status_copy(st->reason, sizeof(st->reason), ws->reason);
	nrpc_status_copy(st->message, sizeof(st->message), ws->message);
	nrpc_status_copy(st->field, sizeof(st->field), ws->field);
	st->retry_after_ms = ws->retry_after_ms;
	if (ws->detail.len > 0) {
		if (nrpc_status_set_detail_bytes(st, ws->detail_type,
		    ws->detail.data, ws->detail.len) != NRPC_OK) {
			/* Keep the code: the caller's decision rests on it. */
			size_t n = strlen(st->message);
			const char *note = " (detail dropped: out of memory)";

			if (n + strlen(note) < sizeof(st->message)) {
				memcpy(st->message + n, note, strlen(note) + 1);
			}
		}
	} else {
		nrpc_status_copy(st->detail_type, sizeof(st->detail_type),
		    ws->detail_type);
	}
}

void
nrpc_status_printable(char *out, size_t cap, const char *s, size_t n)
{
	size_t i;

	if (cap == 0) {
		return;
	}
	for (i = 0; i < n && i < cap - 1; i++) {
		unsigned char c = (unsigned char) s[i];

		out[i] = c >= 0x20 && c < 0x7f ? (char) c : '?';
	}
	out[i] = '\0';
}

void
nrpc_status_move(nrpc_status *dst, nrpc_status *src)
{
	if (dst != src) {
		ds_free(dst->detail);
	}
	*dst = *src;
	memset(src, 0, sizeof(*src));
}

nrpc_code
nrpc_envelope_check_size(size_t len, size_t max, nrpc_status *st)
{
	if (len <= max) {
		return NRPC_OK;
	}
	nrpc_status_set(st, NRPC_RESOURCE_EXHAUSTED, "TOO_LARGE", NULL,
	    "message exceeds max_message_bytes (%zu)", max);
	return NRPC_RESOURCE_EXHAUSTED;
}
