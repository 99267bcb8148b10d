/*
 * nrpc_strings.c - strict protobuf strings: walks a message's wire bytes
 * against its descriptor and refuses a `string` field (at any depth) that
 * holds a NUL byte or is not UTF-8, before protobuf-c decodes it.
 *
 * Why before: protobuf-c keeps a string as a NUL-terminated char * with
 * no length (protobuf-c #203) and does not validate UTF-8 (#726), so
 * after unpack "acc/nul\0tail" is indistinguishable from "acc/nul" and a
 * handler would act on the truncated key. It also recurses once per
 * nesting level with no limit of its own; the depth check here keeps a
 * deeply nested body from reaching it.
 *
 * The framing mirrors protobuf-c 1.4.1's unpack exactly (tag of at most
 * 5 bytes, length prefix of at most 5 bytes and at most INT_MAX, varint
 * of at most 10 bytes, wire types 0, 1, 2 and 5 only, field lookup by
 * the descriptor's ranges), so every string protobuf-c would store has
 * been checked here. Wire that protobuf-c would refuse is refused here
 * with the answer its unpack failure gets.
 *
 * One pass, no allocation: bytes fields, scalars and unknown fields are
 * skipped by their length; only string bytes are scanned. The path of
 * the offending field is rebuilt only on error, from the frames of the
 * recursion (each on its own stack frame).
 *
 * Pure: no sockets, no threads, no clock.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "ds_assert.h"
#include "ds_text.h"
#include "nrpc_int.h"

/* Wire types (protobuf encoding). */
#define NRPC_WT_VARINT 0
#define NRPC_WT_64BIT 1
#define NRPC_WT_LEN 2
#define NRPC_WT_32BIT 5

/* nrpc_strings_frame: one level of the walk. fr->f and fr->key name the
 * field of fr's message being descended into (set just before the
 * recursion), so an error deep down can name its whole path. */
typedef struct nrpc_strings_frame nrpc_strings_frame;
struct nrpc_strings_frame {
	const nrpc_strings_frame *parent;   /* NULL at the top */
	const uint8_t *msg;                 /* first byte of this message */
	const ProtobufCFieldDescriptor *f;  /* field descended into */
	const uint8_t *key;                 /* that field's key, in msg */
};

/* nrpc_strings_walk: what stays the same over one check. */
typedef struct nrpc_strings_walk {
	const ProtobufCMessageDescriptor *top;
	size_t len;          /* bytes of the top message */
	unsigned max_depth;
	const char *what;    /* "body", "envelope": for messages */
	const char *reason;  /* reason of every refusal */
	nrpc_status *st;
} nrpc_strings_walk;

/* nrpc_strings_item: one field as the wire frames it. */
typedef struct nrpc_strings_item {
	uint32_t tag;        /* field number, as protobuf-c computes it */
	unsigned wire_type;
	const uint8_t *data; /* NRPC_WT_LEN: the payload; else unused */
	size_t data_len;
} nrpc_strings_item;

/* --- wire framing --- */

/* nrpc_strings_next frames the field at p[0..n): its size (key and
 * payload), or 0 when protobuf-c's unpack would refuse it. n > 0. */
static size_t
nrpc_strings_next(const uint8_t *p, size_t n, nrpc_strings_item *it)
{
	size_t max = n < 5 ? n : 5;
	size_t k;
	size_t i;
	uint64_t v;
	unsigned shift;

	/* Tag: as protobuf-c's parse_tag_and_wiretype, which tests only the
	 * first byte for tag 0 and keeps the low 32 bits of a 5-byte tag. */
	if ((p[0] & 0xf8) == 0) {
		return 0;
	}
	it->wire_type = p[0] & 7;
	it->tag = (p[0] & 0x7fu) >> 3;
	if ((p[0] & 0x80) == 0) {
		k = 1;
	} else {
		shift = 4;
		for (k = 1; k < max; k++) {
			it->tag |= (uint32_t) (p[k] & 0x7f) << shift;
			if ((p[k] & 0x80) == 0) {
				break;
			}
			shift += 7;
		}
		if (k == max) {
			return 0;
		}
		k++;
	}
	n -= k;
	p += k;
	switch (it->wire_type) {
	case NRPC_WT_VARINT:
		max = n < 10 ? n : 10;
		i = 0;
		while (i < max && (p[i] & 0x80) != 0) {
			i++;
		}
		return i == max ? 0 : k + i + 1;
	case NRPC_WT_64BIT:
		return n < 8 ? 0 : k + 8;
	case NRPC_WT_32BIT:
		return n < 4 ? 0 : k + 4;
	case NRPC_WT_LEN:
		max = n < 5 ? n : 5;
		v = 0;
		shift = 0;
		for (i = 0; i < max; i++) {
			v |= (uint64_t) (p[i] & 0x7f) << shift;
			shift += 7;
			if ((p[i] & 0x80) == 0) {
				break;
			}
		}
		if (i == max || v > INT_MAX || v > n - (i + 1)) {
			return 0;
		}
		it->data = p + i + 1;
		it->data_len = (size_t) v;
		return k + i + 1 + (size_t) v;
	default:
		return 0; /* groups (3, 4) and 6, 7: protobuf-c refuses them */
	}
}

/* --- errors --- */

/* nrpc_strings_index counts the occurrences of field number id in
 * msg[0..upto) (already walked, so well framed): the index of a repeated
 * field's element that starts at upto. */
static size_t
nrpc_strings_index(const uint8_t *msg, const uint8_t *upto, uint32_t id)
{
	nrpc_strings_item it;
	size_t count = 0;
	size_t k;

	while (msg < upto &&
	    (k = nrpc_strings_next(msg, (size_t) (upto - msg), &it)) != 0) {
		if (it.tag == id) {
			count++;
		}
		msg += k;
	}
	return count;
}

/* nrpc_strings_append appends one path element (name, with [index] when
 * repeated) to path; cut to fit, never overflowing. */
static void
nrpc_strings_append(char *path, size_t cap, const uint8_t *msg,
    const ProtobufCFieldDescriptor *f, const uint8_t *key)
{
	size_t used = strlen(path);
	int n;

	if (used + 1 >= cap) {
		return;
	}
	if (f->label == PROTOBUF_C_LABEL_REPEATED) {
		n = snprintf(path + used, cap - used, "%s%s[%zu]",
		    used > 0 ? "." : "", f->name,
		    nrpc_strings_index(msg, key, f->id));
	} else {
		n = snprintf(path + used, cap - used, "%s%s",
		    used > 0 ? "." : "", f->name);
	}
	(void) n; /* snprintf truncates; a cut path still names the field */
}

/* nrpc_strings_path writes the dotted path of field f (key at key in the
 * message of frame fr) to path: "key", "precondition.x", "items[3].owner". */
static void
nrpc_strings_path(char *path, size_t cap, const nrpc_strings_frame *fr,
    const ProtobufCFieldDescriptor *f, const uint8_t *key)
{
	const nrpc_strings_frame *chain[NRPC_MAX_BODY_DEPTH_HARD + 1];
	size_t n = 0;

	path[0] = '\0';
	for (const nrpc_strings_frame *p = fr->parent; p != NULL &&
	    n < NRPC_MAX_BODY_DEPTH_HARD + 1; p = p->parent) {
		chain[n++] = p;
	}
	while (n > 0) {
		const nrpc_strings_frame *p = chain[--n];

		nrpc_strings_append(path, cap, p->msg, p->f, p->key);
	}
	nrpc_strings_append(path, cap, fr->msg, f, key);
}

static nrpc_code
nrpc_strings_malformed(const nrpc_strings_walk *w)
{
	nrpc_status_set(w->st, NRPC_INVALID_ARGUMENT, w->reason, NULL,
	    "%s is not a valid %s (%zu bytes)", w->what, w->top->name, w->len);
	return NRPC_INVALID_ARGUMENT;
}

/* --- the walk --- */

/* nrpc_strings_ascii returns the length of the longest prefix of s[0..n)
 * that is ASCII without a NUL, looking at 8 bytes at a time: keys, tokens
 * and names almost always are, and this is the check's hot loop. */
static size_t
nrpc_strings_ascii(const uint8_t *s, size_t n)
{
	const uint64_t ones = UINT64_C(0x0101010101010101);
	const uint64_t highs = UINT64_C(0x8080808080808080);
	size_t i = 0;

	for (; n - i >= 8; i += 8) {
		uint64_t w;

		memcpy(&w, s + i, 8);
		/* a byte >= 0x80, or a zero byte (w - ones) & ~w flags */
		if (((w | ((w - ones) & ~w)) & highs) != 0) {
			break;
		}
	}
	while (i < n && s[i] != 0 && s[i] < 0x80) {
		i++;
	}
	return i;
}

/* nrpc_strings_text is true when s[0..n) is a string protobuf-c keeps
 * whole and we accept: UTF-8 without a NUL. *nul is set to the offset of
 * the first NUL, or n when there is none. */
static bool
nrpc_strings_text(const uint8_t *s, size_t n, size_t *nul)
{
	size_t i = nrpc_strings_ascii(s, n);
	const uint8_t *z;

	*nul = n;
	if (i == n) {
		return true;
	}
	/* s[i] is the first non-ASCII byte or NUL, on a character boundary. */
	if ((z = memchr(s + i, 0, n - i)) != NULL) {
		*nul = (size_t) (z - s);
		return false;
	}
	return ds_utf8_valid(s + i, n - i);
}

static nrpc_code
nrpc_strings_message(const nrpc_strings_walk *w,
    const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n,
    nrpc_strings_frame *fr, unsigned depth)
{
	const uint8_t *end = p + n;
	const ProtobufCFieldDescriptor *f = NULL;
	uint32_t last_tag = 0; /* f's number; 0 (no field has it): none */
	nrpc_strings_item it;
	nrpc_strings_frame sub;
	char path[NRPC_FIELD_MAX];
	size_t nul;
	size_t k;
	nrpc_code rv;

	fr->msg = p;
	while (p < end) {
		if ((k = nrpc_strings_next(p, (size_t) (end - p), &it)) == 0) {
			return nrpc_strings_malformed(w);
		}
		if (it.wire_type != NRPC_WT_LEN) {
			p += k;
			continue;
		}
		/* protobuf-c's lookup; repeated fields come in runs. */
		if (it.tag != last_tag || f == NULL) {
			f = protobuf_c_message_descriptor_get_field(d, it.tag);
			last_tag = it.tag;
		}
		if (f == NULL) {
			p += k; /* unknown: skipped, as protobuf-c keeps it */
			continue;
		}
		if (f->type == PROTOBUF_C_TYPE_STRING &&
		    !nrpc_strings_text(it.data, it.data_len, &nul)) {
			nrpc_strings_path(path, sizeof(path), fr, f, p);
			if (nul < it.data_len) {
				nrpc_status_set(w->st, NRPC_INVALID_ARGUMENT,
				    w->reason, path, "%s contains a NUL byte "
				    "(at byte %zu)", path, nul);
			} else {
				nrpc_status_set(w->st, NRPC_INVALID_ARGUMENT,
				    w->reason, path, "%s is not valid UTF-8",
				    path);
			}
			return NRPC_INVALID_ARGUMENT;
		}
		if (f->type == PROTOBUF_C_TYPE_MESSAGE &&
		    DS_ALWAYS(f->descriptor != NULL)) {
			fr->f = f;
			fr->key = p;
			if (depth >= w->max_depth) {
				/* Names the field that would nest too deep. */
				nrpc_strings_path(path, sizeof(path), fr, f, p);
				nrpc_status_set(w->st, NRPC_INVALID_ARGUMENT,
				    w->reason, path, "%s nests deeper than "
				    "max_body_depth (%u)", path, w->max_depth);
				return NRPC_INVALID_ARGUMENT;
			}
			sub.parent = fr;
			sub.f = NULL;
			sub.key = NULL;
			if ((rv = nrpc_strings_message(w, f->descriptor, it.data,
			    it.data_len, &sub, depth + 1)) != NRPC_OK) {
				return rv;
			}
		}
		p += k;
	}
	return NRPC_OK;
}

nrpc_code
nrpc_strings_check(const ProtobufCMessageDescriptor *d, const uint8_t *buf,
    size_t len, unsigned max_depth, const char *what, const char *reason,
    nrpc_status *st)
{
	nrpc_strings_walk w = {
		.top = d,
		.len = len,
		.max_depth = max_depth,
		.what = what,
		.reason = reason,
		.st = st,
	};
	nrpc_strings_frame top = {0};

	if (max_depth < 1 || max_depth > NRPC_MAX_BODY_DEPTH_HARD) {
		nrpc_status_set(st, NRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT",
		    "max_body_depth", "max_body_depth %u is outside 1..%d",
		    max_depth, NRPC_MAX_BODY_DEPTH_HARD);
		return NRPC_INVALID_ARGUMENT;
	}
	if (len == 0) {
		return NRPC_OK;
	}
	return nrpc_strings_message(&w, d, buf, len, &top, 1);
}
