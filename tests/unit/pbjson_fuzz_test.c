/*
 * pbjson_fuzz_test.c - a deterministic fuzz smoke for the transcoder,
 * until the libFuzzer harness runs in CI (STYLE rule 33).
 *
 * Three sources of input, each run against every message type of
 * datasync.proto, rpc.proto and the test proto:
 *  - valid documents, randomly mutated (bytes flipped, tokens inserted,
 *    ranges deleted or duplicated);
 *  - random JSON built from the field names the descriptors know, with
 *    values picked to sit on the edges of the mapping;
 *  - random messages built by reflection, encoded and decoded back.
 * Nothing may crash or leak (run under ASan); whatever decodes must
 * encode, decode again and pack to the same bytes.
 *
 * The seed is fixed so that ctest runs are repeatable; DS_TEST_SEED
 * picks another, DS_FUZZ_ITERATIONS scales the run. Both are printed.
 */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "datasync/v1/datasync.pb-c.h"
#include "ds_alloc.h"
#include "ds_buf.h"
#include "ds_test.h"
#include "nrpc/v1/rpc.pb-c.h"
#include "pbjson.h"
#include "pbjson_test.pb-c.h"

#define FUZZ_DEFAULT_SEED       UINT64_C(20240611)
#define FUZZ_DEFAULT_ITERATIONS 3000
#define FUZZ_MAX_TEXT           8192

static const ProtobufCMessageDescriptor *all[] = {
    &datasync__v1__lock_info__descriptor,
    &datasync__v1__record__descriptor,
    &datasync__v1__precondition__descriptor,
    &datasync__v1__get_request__descriptor,
    &datasync__v1__get_response__descriptor,
    &datasync__v1__update_request__descriptor,
    &datasync__v1__update_response__descriptor,
    &datasync__v1__delete_request__descriptor,
    &datasync__v1__delete_response__descriptor,
    &datasync__v1__lock_request__descriptor,
    &datasync__v1__lock_response__descriptor,
    &datasync__v1__unlock_request__descriptor,
    &datasync__v1__unlock_response__descriptor,
    &datasync__v1__list_request__descriptor,
    &datasync__v1__list_response__descriptor,
    &nrpc__v1__metadata__descriptor,
    &nrpc__v1__request__descriptor,
    &nrpc__v1__status__descriptor,
    &nrpc__v1__response__descriptor,
    &pbjson__test__inner__descriptor,
    &pbjson__test__scalars__descriptor,
    &pbjson__test__repeated__descriptor,
    &pbjson__test__choice__descriptor,
    &pbjson__test__maps__descriptor,
};
#define N_ALL (sizeof(all) / sizeof(all[0]))

static const pbjson_options option_sets[] = {
    {0},
    {.ignore_unknown = true},
    {.original_names = true, .emit_defaults = true},
    {.pretty = true, .ignore_unknown = true},
};
#define N_OPTION_SETS (sizeof(option_sets) / sizeof(option_sets[0]))

/* --- randomness --- */

typedef struct fuzz_rng {
	uint64_t s;
} fuzz_rng;

static uint64_t
fuzz_next(fuzz_rng *r)
{
	/* xorshift64*: small, fast, good enough to pick mutations. */
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * UINT64_C(2685821657736338717);
}

/* fuzz_rng_init spreads any seed (0, 1, 2, ...) over the state with
 * splitmix64, so neighbouring seeds give unrelated runs. */
static fuzz_rng
fuzz_rng_init(uint64_t seed)
{
	fuzz_rng r;
	uint64_t z = seed + UINT64_C(0x9e3779b97f4a7c15);

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	r.s = (z ^ (z >> 31)) | 1;
	return r;
}

static size_t
fuzz_below(fuzz_rng *r, size_t n)
{
	return n == 0 ? 0 : (size_t) (fuzz_next(r) % n);
}

#define PICK(r, arr) ((arr)[fuzz_below((r), sizeof(arr) / sizeof((arr)[0]))])

/* --- the property --- */

typedef struct fuzz_stats {
	long decoded;  /* inputs that decoded */
	long refused;  /* inputs refused with an error */
	long messages; /* random messages round-tripped */
} fuzz_stats;

static void
assert_same_packing(const ProtobufCMessage *a, const ProtobufCMessage *b,
                    const char *what)
{
	size_t la = protobuf_c_message_get_packed_size(a);
	size_t lb = protobuf_c_message_get_packed_size(b);
	uint8_t *pa = malloc(la + 1);
	uint8_t *pb = malloc(lb + 1);

	assert_non_null(pa);
	assert_non_null(pb);
	assert_int_equal(protobuf_c_message_pack(a, pa), la);
	assert_int_equal(protobuf_c_message_pack(b, pb), lb);
	if (la != lb || memcmp(pa, pb, la) != 0) {
		fail_msg("%s: %s does not survive a round trip",
		         a->descriptor->name, what);
	}
	free(pa);
	free(pb);
}

/* check_round_trip: m encodes, the text decodes, and the result packs
 * like m. */
static void
check_round_trip(const ProtobufCMessage *m, const pbjson_options *o,
                 const char *what)
{
	char *text = NULL;
	size_t len = 0;
	ProtobufCMessage *back = NULL;
	pbjson_error err;

	if (pbjson_encode(m, o, &text, &len, &err) != PBJSON_OK) {
		fail_msg("%s: %s: encode: %s", m->descriptor->name, what,
		         err.message);
	}
	if (pbjson_decode(m->descriptor, text, len, o, &back, &err) !=
	    PBJSON_OK) {
		fail_msg("%s: re-decoding %s (from %s): %s",
		         m->descriptor->name, text, what, err.message);
	}
	assert_same_packing(m, back, text);
	protobuf_c_message_free_unpacked(back, NULL);
	ds_free(text);
}

/* check_text decodes text as every message type. */
static void
check_text(const char *text, size_t len, fuzz_rng *r, fuzz_stats *st)
{
	size_t i;

	for (i = 0; i < N_ALL; i++) {
		const pbjson_options *o = &PICK(r, option_sets);
		ProtobufCMessage *m = NULL;
		pbjson_error err;
		pbjson_err rv;

		memset(&err, 0, sizeof(err));
		rv = pbjson_decode(all[i], text, len, o, &m, &err);
		if (rv != PBJSON_OK) {
			assert_null(m);
			assert_true(err.message[0] != '\0');
			assert_true(strlen(err.message) < PBJSON_MESSAGE_MAX);
			st->refused++;
			continue;
		}
		st->decoded++;
		check_round_trip(m, o, text);
		protobuf_c_message_free_unpacked(m, NULL);
	}
}

/* --- source 1: mutated documents --- */

static const char *seeds[] = {
    "{}",
    "{\"key\":\"doc/1\",\"value\":\"aGVsbG8=\",\"contentType\":"
    "\"text/plain\",\"precondition\":{\"ifVersion\":\"7\"},"
    "\"lockToken\":\"t\",\"requestId\":\"r\",\"author\":\"me\"}",
    "{\"key\":\"k\",\"precondition\":{\"ifAbsent\":true}}",
    "{\"key\":\"k\",\"version\":\"3\"}",
    "{\"record\":{\"key\":\"a\",\"value\":\"\",\"version\":\"1\","
    "\"revision\":\"9\",\"createdAtMs\":\"1\",\"updatedAtMs\":\"2\","
    "\"lock\":{\"owner\":\"o\",\"expiresAtMs\":\"3\",\"fencingToken\":\"4\"},"
    "\"deleted\":false,\"updatedBy\":\"b\"},\"replayed\":true}",
    "{\"records\":[{\"key\":\"a\"},{\"key\":\"b\",\"lock\":{}}],"
    "\"nextPageToken\":\"n\",\"revision\":\"18446744073709551615\"}",
    "{\"prefix\":\"p/\",\"pageSize\":1000,\"pageToken\":\"\"}",
    "{\"key\":\"k\",\"owner\":\"me\",\"ttlMs\":\"30000\"}",
    "{\"lockToken\":\"t\",\"lock\":{\"owner\":\"me\"},\"renewed\":true,"
    "\"version\":\"1\"}",
    "{\"method\":\"/datasync.v1.DataSync/Get\",\"body\":\"CgFr\","
    "\"timeoutMs\":100,\"metadata\":[{\"key\":\"a\",\"value\":\"b\"}]}",
    "{\"status\":{\"code\":10,\"reason\":\"VERSION_CONFLICT\","
    "\"detail\":\"AP8=\",\"detailType\":\"datasync.v1.Record\"}}",
    "{\"fDouble\":\"NaN\",\"fFloat\":1.5,\"fInt32\":-1,\"fInt64\":\"-1\","
    "\"fUint64\":\"18446744073709551615\",\"fBool\":true,\"fString\":\"s\","
    "\"fBytes\":\"-_8\",\"fEnum\":\"COLOR_RED\",\"fInner\":{\"n\":1,"
    "\"child\":{\"s\":\"x\"}},\"aLongField2Name\":1e2}",
    "{\"rInt32\":[1,2],\"rString\":[\"a\"],\"rInner\":[{}],\"rEnum\":[1,"
    "\"COLOR_GREEN\"],\"rBytes\":[\"AQ\"],\"rDouble\":[\"-Infinity\"]}",
    "{\"name\":\"n\",\"pickText\":\"t\",\"maybeCount\":3}",
    "{\"counts\":{\"a\":1},\"byId\":{\"-1\":{\"n\":2}},\"flags\":{\"true\":"
    "\"y\"},\"colors\":{\"3\":2},\"blobs\":{\"b\":\"AA==\"}}",
};

static const char *tokens[] = {
    "null",
    "true",
    "false",
    "{}",
    "[]",
    "\"\"",
    "0",
    "-0",
    "1e999",
    "-1e-999",
    "1.5",
    "\"NaN\"",
    "\"Infinity\"",
    "9223372036854775808",
    "18446744073709551616",
    "\"AP8=\"",
    "\"A\"",
    "{\"a\":1}",
    "\\u0000",
    "\\ud800",
    "\"\\u00e9\"",
    "\xc3\xa9",
    "\xff",
    ",",
    ":",
    "\"",
    "{",
    "[",
    "}",
    "]",
    "\"key\":",
    "\"value\":",
    "\"precondition\":",
    "\"ifVersion\":",
    "\"records\":",
    "\"lock\":",
    "\"child\":",
    "\"byId\":",
    "\"counts\":",
    "\"pickText\":",
    "\"pickNumber\":",
    "\"1\":",
    "\"-9223372036854775809\":",
    "\"true\":",
};

static const char interesting[] = "{}[]\",:0123456789-+.eE\\ntfaulrsAZ_/=";

static size_t
mutate(char *buf, size_t len, fuzz_rng *r)
{
	size_t rounds = 1 + fuzz_below(r, 4);

	while (rounds-- > 0) {
		size_t at = fuzz_below(r, len + 1);

		switch (fuzz_below(r, 5)) {
		case 0: /* overwrite one byte */
			if (len > 0) {
				at = fuzz_below(r, len);
				buf[at] = fuzz_below(r, 4) == 0
				              ? (char) fuzz_below(r, 256)
				              : PICK(r, interesting);
			}
			break;
		case 1: { /* insert a token */
			const char *t = PICK(r, tokens);
			size_t n = strlen(t);

			if (len + n < FUZZ_MAX_TEXT) {
				memmove(buf + at + n, buf + at, len - at);
				memcpy(buf + at, t, n);
				len += n;
			}
			break;
		}
		case 2: { /* delete a range */
			size_t n = 1 + fuzz_below(r, 8);

			if (at + n <= len) {
				memmove(buf + at, buf + at + n, len - at - n);
				len -= n;
			}
			break;
		}
		default: { /* duplicate a range somewhere */
			size_t from = fuzz_below(r, len + 1);
			size_t n = fuzz_below(r, 16);

			if (from + n <= len && len + n < FUZZ_MAX_TEXT) {
				char tmp[16];

				memcpy(tmp, buf + from, n);
				memmove(buf + at + n, buf + at, len - at);
				memcpy(buf + at, tmp, n);
				len += n;
			}
			break;
		}
		}
	}
	return len;
}

/* --- source 2: generated JSON --- */

/* The names the descriptors know, proto and JSON spellings. */
typedef struct fuzz_names {
	char *v[512];
	size_t n;
} fuzz_names;

static void
names_add(fuzz_names *nm, const char *s)
{
	size_t i;

	for (i = 0; i < nm->n; i++) {
		if (strcmp(nm->v[i], s) == 0) {
			return;
		}
	}
	if (nm->n < sizeof(nm->v) / sizeof(nm->v[0])) {
		nm->v[nm->n] = strdup(s);
		assert_non_null(nm->v[nm->n]);
		nm->n++;
	}
}

static void
names_collect(fuzz_names *nm)
{
	size_t i;
	unsigned f;

	memset(nm, 0, sizeof(*nm));
	for (i = 0; i < N_ALL; i++) {
		for (f = 0; f < all[i]->n_fields; f++) {
			const char *name = all[i]->fields[f].name;
			char camel[128];
			size_t o = 0;
			int up = 0;

			names_add(nm, name);
			for (; *name != '\0' && o + 1 < sizeof(camel);
			     name++) {
				if (*name == '_') {
					up = 1;
				} else {
					camel[o++] =
					    up && *name >= 'a' && *name <= 'z'
					        ? (char) (*name - 'a' + 'A')
					        : *name;
					up = 0;
				}
			}
			camel[o] = '\0';
			names_add(nm, camel);
		}
	}
	/* Map keys and a stranger. */
	names_add(nm, "1");
	names_add(nm, "-5");
	names_add(nm, "true");
	names_add(nm, "a");
	names_add(nm, "nope");
}

static void
names_free(fuzz_names *nm)
{
	size_t i;

	for (i = 0; i < nm->n; i++) {
		free(nm->v[i]);
	}
}

static const char *gen_strings[] = {
    "",
    "NaN",
    "Infinity",
    "-Infinity",
    "nan",
    "1",
    "-1",
    "0",
    "-0",
    "1.5",
    "1e3",
    "1.0e1",
    "1e-1",
    "4294967296",
    "-2147483649",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "1e20",
    "AP8Q",
    "AP8=",
    "AP8",
    "-_8",
    "+/8=",
    "A",
    "AP9=",
    "====",
    "COLOR_RED",
    "COLOR_UNSPECIFIED",
    "BLUE",
    "true",
    "caf\xc3\xa9",
    "\\u0001",
    "/datasync.v1.DataSync/Get",
    "\\\"",
};

static const char *gen_numbers[] = {
    "0",
    "-0",
    "1",
    "-1",
    "7",
    "1.5",
    "-2.5",
    "1e3",
    "1E+2",
    "0.5e1",
    "2147483647",
    "2147483648",
    "-2147483648",
    "-2147483649",
    "4294967295",
    "4294967296",
    "9007199254740992",
    "9007199254740993",
    "9223372036854775807",
    "-9223372036854775808",
    "1e17",
    "1e308",
    "1e-320",
    "3.4028235e38",
    "3.5e38",
    "0.1",
    "123456789.25",
};

/* gen_put appends to a generated document. Past FUZZ_MAX_TEXT the text
 * is cut short, which only makes it one more malformed input. */
static void gen_put(ds_buf *b, const char *fmt, ...) DS_PRINTF(2, 3);

static void
gen_put(ds_buf *b, const char *fmt, ...)
{
	va_list ap;
	ds_err rv;

	va_start(ap, fmt);
	rv = ds_buf_vprintf(b, fmt, ap);
	va_end(ap);
	(void) rv;
}

static void
gen_value(ds_buf *b, fuzz_rng *r, const fuzz_names *nm, int depth)
{
	size_t kind = fuzz_below(r, depth >= 5 ? 6 : 8);
	size_t i;
	size_t n;

	switch (kind) {
	case 0:
		gen_put(b, "\"%s\"", PICK(r, gen_strings));
		break;
	case 1:
		gen_put(b, "%s", PICK(r, gen_numbers));
		break;
	case 2:
		gen_put(b, "%s", fuzz_below(r, 2) ? "true" : "false");
		break;
	case 3:
		gen_put(b, "%s", "null");
		break;
	case 4:
		gen_put(b, "\"%s\"", nm->v[fuzz_below(r, nm->n)]);
		break;
	case 5:
		gen_put(b, "%" PRId64,
		        (int64_t) fuzz_next(r) >> fuzz_below(r, 64));
		break;
	case 6:
		gen_put(b, "%s", "[");
		n = fuzz_below(r, 4);
		for (i = 0; i < n; i++) {
			if (i > 0) {
				gen_put(b, "%s", ",");
			}
			gen_value(b, r, nm, depth + 1);
		}
		gen_put(b, "%s", "]");
		break;
	default:
		gen_put(b, "%s", "{");
		n = fuzz_below(r, 5);
		for (i = 0; i < n; i++) {
			gen_put(b, "%s\"%s\":", i > 0 ? "," : "",
			        nm->v[fuzz_below(r, nm->n)]);
			gen_value(b, r, nm, depth + 1);
		}
		gen_put(b, "%s", "}");
		break;
	}
}

/* --- source 3: random messages --- */

static ProtobufCMessage *gen_message(const ProtobufCMessageDescriptor *d,
                                     fuzz_rng *r, int depth);

static char *
gen_utf8(fuzz_rng *r)
{
	static const char *pieces[] = {"a",
	                               "Z",
	                               " ",
	                               "\"",
	                               "\\",
	                               "/",
	                               "\x01",
	                               "\x1f",
	                               "\x7f",
	                               "\xc3\xa9",
	                               "\xe2\x82\xac",
	                               "\xf0\x9f\x98\x80",
	                               "\xef\xbf\xbf",
	                               "0"};
	char buf[64];
	size_t n = fuzz_below(r, 6);
	size_t o = 0;
	char *s;

	while (n-- > 0) {
		const char *p = PICK(r, pieces);
		size_t k = strlen(p);

		memcpy(buf + o, p, k);
		o += k;
	}
	s = malloc(o + 1);
	assert_non_null(s);
	memcpy(s, buf, o);
	s[o] = '\0';
	return s;
}

static double
gen_double(fuzz_rng *r)
{
	static const double pick[] = {0.0,
	                              -0.0,
	                              0.1,
	                              -1.5,
	                              1e300,
	                              -1e-300,
	                              DBL_MAX,
	                              DBL_MIN,
	                              4.9406564584124654e-324,
	                              1.0 / 3.0,
	                              9007199254740993.0};
	uint64_t bits;
	double d;

	switch (fuzz_below(r, 4)) {
	case 0:
		return PICK(r, pick);
	case 1:
		return fuzz_below(r, 2) ? INFINITY : NAN;
	default:
		bits = fuzz_next(r);
		memcpy(&d, &bits, sizeof(d));
		/* NaN payloads do not survive text; the canonical NaN does. */
		return isfinite(d) ? d : 1.0;
	}
}

static float
gen_float(fuzz_rng *r)
{
	static const float pick[] = {0.0f,    -0.0f,   0.1f,   -2.5f,
	                             FLT_MAX, FLT_MIN, 1e-45f, 16777217.0f};
	uint32_t bits;
	float f;

	switch (fuzz_below(r, 4)) {
	case 0:
		return PICK(r, pick);
	case 1:
		return fuzz_below(r, 2) ? -INFINITY : NAN;
	default:
		bits = (uint32_t) fuzz_next(r);
		memcpy(&f, &bits, sizeof(f));
		return isfinite(f) ? f : 1.0f;
	}
}

static uint64_t
gen_int(fuzz_rng *r)
{
	static const uint64_t pick[] = {0,
	                                1,
	                                UINT64_MAX,
	                                INT64_MAX,
	                                (uint64_t) INT64_MIN,
	                                INT32_MAX,
	                                (uint64_t) INT32_MIN,
	                                UINT32_MAX,
	                                UINT64_C(9007199254740993)};

	return fuzz_below(r, 2) ? PICK(r, pick)
	                        : fuzz_next(r) >> fuzz_below(r, 64);
}

/* gen_scalar writes a random value of f's type at p. key_index >= 0
 * asks for a distinct map key. */
static void
gen_scalar(const ProtobufCFieldDescriptor *f, void *p, fuzz_rng *r, int depth,
           long key_index)
{
	uint64_t v =
	    key_index >= 0 ? (uint64_t) (key_index * 7 - 3) : gen_int(r);

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		*(uint32_t *) p = (uint32_t) v;
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		*(uint64_t *) p = v;
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		*(float *) p = gen_float(r);
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		*(double *) p = gen_double(r);
		break;
	case PROTOBUF_C_TYPE_BOOL:
		*(protobuf_c_boolean *) p =
		    key_index >= 0 ? (protobuf_c_boolean) key_index
		                   : (protobuf_c_boolean) fuzz_below(r, 2);
		break;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumDescriptor *ed = f->descriptor;

		*(int *) p =
		    fuzz_below(r, 4) == 0
		        ? (int) (int32_t) v
		        : ed->values[fuzz_below(r, ed->n_values)].value;
		break;
	}
	case PROTOBUF_C_TYPE_STRING:
		if (key_index >= 0) {
			char k[32];

			(void) snprintf(k, sizeof(k), "k%ld", key_index);
			*(char **) p = strdup(k);
			assert_non_null(*(char **) p);
		} else {
			*(char **) p = gen_utf8(r);
		}
		break;
	case PROTOBUF_C_TYPE_BYTES: {
		ProtobufCBinaryData *bd = p;
		size_t i;

		bd->len = fuzz_below(r, 9);
		bd->data = NULL;
		if (bd->len > 0) {
			bd->data = malloc(bd->len);
			assert_non_null(bd->data);
			for (i = 0; i < bd->len; i++) {
				bd->data[i] = (uint8_t) fuzz_next(r);
			}
		}
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE:
		*(ProtobufCMessage **) p =
		    gen_message(f->descriptor, r, depth + 1);
		break;
	}
}

static bool
is_map_field(const ProtobufCFieldDescriptor *f)
{
	const ProtobufCMessageDescriptor *d = f->descriptor;
	size_t n;

	if (f->type != PROTOBUF_C_TYPE_MESSAGE ||
	    f->label != PROTOBUF_C_LABEL_REPEATED) {
		return false;
	}
	n = strlen(d->short_name);
	return n > 5 && strcmp(d->short_name + n - 5, "Entry") == 0;
}

static size_t
elem_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_MESSAGE:
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	default:
		return 4;
	}
}

/* gen_map_entry makes entry number k of a map: its key is distinct from
 * every other entry's. */
static ProtobufCMessage *
gen_map_entry(const ProtobufCMessageDescriptor *ed, fuzz_rng *r, int depth,
              long k)
{
	const ProtobufCFieldDescriptor *kf = &ed->fields[0];
	const ProtobufCFieldDescriptor *vf = &ed->fields[1];
	ProtobufCMessage *e = malloc(ed->sizeof_message);

	assert_non_null(e);
	protobuf_c_message_init(ed, e);
	gen_scalar(kf, (char *) e + kf->offset, r, depth, k);
	/* A missing message value reads back as an empty one, which packs
	 * differently: always give one. */
	if (vf->type == PROTOBUF_C_TYPE_MESSAGE || fuzz_below(r, 4) != 0) {
		gen_scalar(vf, (char *) e + vf->offset, r, depth, -1);
	}
	return e;
}

static void
gen_repeated(const ProtobufCFieldDescriptor *f, ProtobufCMessage *m,
             fuzz_rng *r, int depth)
{
	size_t n = depth > 3 ? 0 : fuzz_below(r, 4);
	size_t size = elem_size(f->type);
	bool map = is_map_field(f);
	char *arr;
	size_t k;

	if (map && ((const ProtobufCMessageDescriptor *) f->descriptor)
	                   ->fields[0]
	                   .type == PROTOBUF_C_TYPE_BOOL) {
		n = n > 2 ? 2 : n; /* only two distinct bool keys */
	}
	if (n == 0) {
		return;
	}
	arr = calloc(n, size);
	assert_non_null(arr);
	for (k = 0; k < n; k++) {
		if (map) {
			((ProtobufCMessage **) arr)[k] =
			    gen_map_entry(f->descriptor, r, depth, (long) k);
		} else {
			gen_scalar(f, arr + k * size, r, depth, -1);
		}
	}
	*(size_t *) ((char *) m + f->quantifier_offset) = n;
	*(void **) ((char *) m + f->offset) = arr;
}

/* gen_message builds a random d by reflection, allocated the way
 * protobuf_c_message_unpack allocates, so free_unpacked frees it. */
static ProtobufCMessage *
gen_message(const ProtobufCMessageDescriptor *d, fuzz_rng *r, int depth)
{
	ProtobufCMessage *m = malloc(d->sizeof_message);
	unsigned i;

	assert_non_null(m);
	protobuf_c_message_init(d, m);
	for (i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		void *p = (char *) m + f->offset;
		bool deep = f->type == PROTOBUF_C_TYPE_MESSAGE && depth > 3;

		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			gen_repeated(f, m, r, depth);
		} else if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0) {
			uint32_t *which =
			    (uint32_t *) ((char *) m + f->quantifier_offset);

			if (*which == 0 && fuzz_below(r, 3) == 0 && !deep) {
				gen_scalar(f, p, r, depth, -1);
				*which = f->id;
			}
		} else if (fuzz_below(r, 2) == 0 && !deep) {
			gen_scalar(f, p, r, depth, -1);
		}
	}
	return m;
}

/* --- the test --- */

static long
fuzz_iterations(void)
{
	const char *s = getenv("DS_FUZZ_ITERATIONS");
	long n = s != NULL ? strtol(s, NULL, 10) : 0;

	return n > 0 ? n : FUZZ_DEFAULT_ITERATIONS;
}

static uint64_t
fuzz_seed(void)
{
	const char *s = getenv("DS_TEST_SEED");

	if (s != NULL && s[0] != '\0') {
		return ds_test_seed(); /* prints it */
	}
	fprintf(stderr,
	        "seed=%" PRIu64 " (replay with DS_TEST_SEED=%" PRIu64 ")\n",
	        FUZZ_DEFAULT_SEED, FUZZ_DEFAULT_SEED);
	return FUZZ_DEFAULT_SEED;
}

static void
test_mutated_and_generated_json_never_crashes_or_leaks(void **state)
{
	fuzz_rng r = fuzz_rng_init(fuzz_seed());
	long iterations = fuzz_iterations();
	fuzz_stats st = {0, 0, 0};
	fuzz_names nm;
	char buf[FUZZ_MAX_TEXT];
	ds_buf gen;
	long it;

	(void) state;
	fprintf(stderr, "iterations=%ld (DS_FUZZ_ITERATIONS)\n", iterations);
	names_collect(&nm);
	ds_buf_init(&gen, FUZZ_MAX_TEXT);
	for (it = 0; it < iterations; it++) {
		const char *seed = PICK(&r, seeds);
		size_t len = strlen(seed);

		/* 1: a mutated valid document. */
		memcpy(buf, seed, len);
		len = mutate(buf, len, &r);
		check_text(buf, len, &r, &st);

		/* 2: a generated document. The buffer's cap bounds it;
		 * a truncated one is just more malformed input. */
		ds_buf_reset(&gen);
		gen_value(&gen, &r, &nm, 0);
		check_text(gen.ptr != NULL ? (const char *) gen.ptr : "",
		           gen.len, &r, &st);
	}
	ds_buf_fini(&gen);
	names_free(&nm);
	fprintf(stderr, "decoded=%ld refused=%ld\n", st.decoded, st.refused);
	/* A smoke test that never gets past the parser proves little. */
	assert_true(st.decoded > iterations / 10);
	assert_true(st.refused > iterations);
}

static void
test_random_messages_round_trip(void **state)
{
	fuzz_rng r = fuzz_rng_init(~fuzz_seed());
	long iterations = fuzz_iterations() / 4;
	long it;
	size_t i;

	(void) state;
	for (it = 0; it < iterations; it++) {
		for (i = 0; i < N_ALL; i++) {
			ProtobufCMessage *m = gen_message(all[i], &r, 0);

			check_round_trip(m, &PICK(&r, option_sets),
			                 "a random message");
			protobuf_c_message_free_unpacked(m, NULL);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
	        test_mutated_and_generated_json_never_crashes_or_leaks),
	    cmocka_unit_test(test_random_messages_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
