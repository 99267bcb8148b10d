/*
 * pbjson_text.c - text pieces of the mapping: base64, exact number
 * parsing and shortest number formatting, and input snippets that are
 * safe to put into error messages.
 */
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds_alloc.h"
#include "ds_text.h"
#include "pbjson_int.h"

/* --- safe snippets --- */

/* pbjson_utf8_unit returns the length of the valid UTF-8 character at
 * s[0..n), or 0 when it is not one. */
static size_t
pbjson_utf8_unit(const char *s, size_t n)
{
	unsigned char b = (unsigned char) s[0];
	size_t k;

	if (b < 0x80) {
		return 1;
	}
	k = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 0;
	if (k == 0 || k > n || !ds_utf8_valid((const uint8_t *) s, k)) {
		return 0;
	}
	return k;
}

/* pbjson_sanitize copies at most limit bytes of src[0..n) into dst (cap
 * bytes, always NUL-terminated when cap > 0), whole characters only;
 * control characters and bytes that are not UTF-8 become '?'. When
 * something was left out it ends with "...". */
static void
pbjson_sanitize(char *dst, size_t cap, const char *src, size_t n, size_t limit)
{
	size_t i = 0;
	size_t o = 0;
	bool cut = false;

	if (cap == 0) {
		return;
	}
	while (i < n) {
		size_t k = pbjson_utf8_unit(src + i, n - i);
		size_t w = k == 0 ? 1 : k;

		if (i + w > limit || o + w + 1 > cap) {
			cut = true;
			break;
		}
		if (k == 0 || (unsigned char) src[i] < 0x20 ||
		    src[i] == 0x7f) {
			dst[o++] = '?';
		} else {
			memcpy(dst + o, src + i, k);
			o += k;
		}
		i += w;
	}
	if (cut) {
		/* Make room for "..." by dropping whole characters. */
		while (o > 0 && o + 4 > cap) {
			o--;
			while (o > 0 &&
			       ((unsigned char) dst[o] & 0xc0) == 0x80) {
				o--;
			}
		}
		if (o + 4 <= cap) {
			memcpy(dst + o, "...", 3);
			o += 3;
		}
	}
	dst[o] = '\0';
}

void
pbjson_safe_copy(char *dst, size_t cap, const char *src)
{
	pbjson_sanitize(dst, cap, src, strlen(src), SIZE_MAX);
}

void
pbjson_safe_copyn(char *dst, size_t cap, const char *src, size_t n)
{
	pbjson_sanitize(dst, cap, src, n, PBJSON_SNIPPET_MAX);
}

void
pbjson_snippet(char *buf, size_t cap, const char *s, size_t n)
{
	size_t len;

	if (cap < 3) {
		if (cap > 0) {
			buf[0] = '\0';
		}
		return;
	}
	buf[0] = '"';
	pbjson_sanitize(buf + 1, cap - 2, s, n, PBJSON_SNIPPET_MAX);
	len = strlen(buf);
	buf[len] = '"';
	buf[len + 1] = '\0';
}

void
pbjson_describe(char *buf, size_t cap, const json_t *v)
{
	char tmp[PBJSON_SNIPPET_MAX + 8];

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		(void) snprintf(buf, cap, "an object");
		break;
	case JSON_ARRAY:
		(void) snprintf(buf, cap, "an array");
		break;
	case JSON_STRING:
		pbjson_snippet(tmp, sizeof(tmp), json_string_value(v),
		               json_string_length(v));
		(void) snprintf(buf, cap, "string %s", tmp);
		break;
	case JSON_INTEGER:
		(void) snprintf(buf, cap, "number %" JSON_INTEGER_FORMAT,
		                json_integer_value(v));
		break;
	case JSON_REAL:
		if (isfinite(json_real_value(v))) {
			(void) pbjson_fmt_double(json_real_value(v), tmp);
		} else {
			(void) snprintf(tmp, sizeof(tmp), "%s",
			                "(not finite)");
		}
		(void) snprintf(buf, cap, "number %s", tmp);
		break;
	case JSON_TRUE:
		(void) snprintf(buf, cap, "true");
		break;
	case JSON_FALSE:
		(void) snprintf(buf, cap, "false");
		break;
	case JSON_NULL:
		(void) snprintf(buf, cap, "null");
		break;
	}
}

/* --- base64 (RFC 4648 sections 4 and 5) --- */

static const char pbjson_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

bool
pbjson_b64_len(size_t n, size_t *out)
{
	size_t groups = n / 3 + (n % 3 != 0);

	if (groups > SIZE_MAX / 4) {
		return false;
	}
	*out = groups * 4;
	return true;
}

void
pbjson_b64_encode(const uint8_t *p, size_t n, char *out)
{
	size_t i;

	for (i = 0; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t) p[i] << 16 | (uint32_t) p[i + 1] << 8 |
		             p[i + 2];

		*out++ = pbjson_b64_alphabet[v >> 18];
		*out++ = pbjson_b64_alphabet[(v >> 12) & 63];
		*out++ = pbjson_b64_alphabet[(v >> 6) & 63];
		*out++ = pbjson_b64_alphabet[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t) p[i] << 16;

		*out++ = pbjson_b64_alphabet[v >> 18];
		*out++ = pbjson_b64_alphabet[(v >> 12) & 63];
		*out++ = '=';
		*out++ = '=';
	} else if (n - i == 2) {
		uint32_t v = (uint32_t) p[i] << 16 | (uint32_t) p[i + 1] << 8;

		*out++ = pbjson_b64_alphabet[v >> 18];
		*out++ = pbjson_b64_alphabet[(v >> 12) & 63];
		*out++ = pbjson_b64_alphabet[(v >> 6) & 63];
		*out++ = '=';
	}
}

/* pbjson_b64_value maps both alphabets: "+/" (standard) and "-_"
 * (URL-safe) alike. -1 for anything else. */
static int
pbjson_b64_value(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z') {
		return ch - 'A';
	}
	if (ch >= 'a' && ch <= 'z') {
		return ch - 'a' + 26;
	}
	if (ch >= '0' && ch <= '9') {
		return ch - '0' + 52;
	}
	if (ch == '+' || ch == '-') {
		return 62;
	}
	if (ch == '/' || ch == '_') {
		return 63;
	}
	return -1;
}

pbjson_err
pbjson_b64_decode(const char *s, size_t n, uint8_t **out, size_t *out_len,
                  char *why, size_t cap)
{
	size_t pad = 0;
	size_t m;
	size_t len;
	size_t i;
	size_t o = 0;
	uint32_t acc = 0;
	unsigned bits = 0;
	uint8_t *p = NULL;

	while (pad < 2 && pad < n && s[n - 1 - pad] == '=') {
		pad++;
	}
	m = n - pad;
	if (m % 4 == 1) {
		(void) snprintf(why, cap,
		                "%zu characters of data cannot be base64", m);
		return PBJSON_EBASE64;
	}
	if (pad > 0 && (n % 4 != 0 || (m % 4 == 2) != (pad == 2))) {
		(void) snprintf(why, cap, "wrong padding");
		return PBJSON_EBASE64;
	}
	for (i = 0; i < m; i++) {
		if (pbjson_b64_value((unsigned char) s[i]) < 0) {
			unsigned char ch = (unsigned char) s[i];

			if (ch >= 0x21 && ch < 0x7f) {
				(void) snprintf(
				    why, cap,
				    "invalid character '%c' at offset %zu", ch,
				    i);
			} else {
				(void) snprintf(
				    why, cap,
				    "invalid byte 0x%02x at offset %zu", ch,
				    i);
			}
			return PBJSON_EBASE64;
		}
	}
	len = m / 4 * 3 + (m % 4 == 0 ? 0 : m % 4 - 1);
	/* The bits after the last whole byte must be zero: otherwise
	 * several texts would decode to the same bytes. */
	if (m % 4 != 0) {
		int last = pbjson_b64_value((unsigned char) s[m - 1]);

		if ((m % 4 == 2 && (last & 0x0f) != 0) ||
		    (m % 4 == 3 && (last & 0x03) != 0)) {
			(void) snprintf(why, cap, "non-zero trailing bits");
			return PBJSON_EBASE64;
		}
	}
	if (len > 0 && (p = ds_alloc(len)) == NULL) {
		(void) snprintf(why, cap, "out of memory");
		return PBJSON_ENOMEM;
	}
	for (i = 0; i < m; i++) {
		acc = acc << 6 |
		      (uint32_t) pbjson_b64_value((unsigned char) s[i]);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			p[o++] = (uint8_t) (acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	DS_ALWAYS(o == len);
	*out = p;
	*out_len = len;
	return PBJSON_OK;
}

/* --- numbers --- */

/* pbjson_numparts is a JSON number taken apart:
 * -? int(.frac)?([eE][+-]?exp)? */
typedef struct pbjson_numparts {
	bool neg;
	const char *ip; /* integer digits */
	size_t il;
	const char *fp; /* fraction digits */
	size_t fl;
	long exp; /* saturated at +-PBJSON_EXP_CAP */
} pbjson_numparts;

/* PBJSON_EXP_CAP: exponents beyond it are as good as infinite here, and
 * capping keeps the arithmetic below from overflowing. */
#define PBJSON_EXP_CAP 100000L

static bool
pbjson_is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

static bool
pbjson_num_split(const char *s, size_t n, pbjson_numparts *np)
{
	size_t i = 0;

	memset(np, 0, sizeof(*np));
	if (i < n && s[i] == '-') {
		np->neg = true;
		i++;
	}
	np->ip = s + i;
	if (i < n && s[i] == '0') {
		i++;
	} else if (i < n && s[i] >= '1' && s[i] <= '9') {
		while (i < n && pbjson_is_digit(s[i])) {
			i++;
		}
	} else {
		return false;
	}
	np->il = (size_t) (s + i - np->ip);
	if (i < n && s[i] == '.') {
		i++;
		np->fp = s + i;
		while (i < n && pbjson_is_digit(s[i])) {
			i++;
		}
		np->fl = (size_t) (s + i - np->fp);
		if (np->fl == 0) {
			return false;
		}
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		bool eneg = false;
		size_t start;

		i++;
		if (i < n && (s[i] == '+' || s[i] == '-')) {
			eneg = s[i] == '-';
			i++;
		}
		start = i;
		while (i < n && pbjson_is_digit(s[i])) {
			if (np->exp < PBJSON_EXP_CAP) {
				np->exp = np->exp * 10 + (s[i] - '0');
			}
			i++;
		}
		if (i == start) {
			return false;
		}
		if (np->exp > PBJSON_EXP_CAP) {
			np->exp = PBJSON_EXP_CAP;
		}
		if (eneg) {
			np->exp = -np->exp;
		}
	}
	return i == n;
}

static char
pbjson_digit_at(const pbjson_numparts *np, size_t k)
{
	return k < np->il ? np->ip[k] : np->fp[k - np->il];
}

pbjson_num
pbjson_parse_int_text(const char *s, size_t n, bool *neg, uint64_t *mag)
{
	pbjson_numparts np;
	size_t total;
	size_t start;
	size_t end;
	long e10;
	uint64_t v = 0;
	size_t k;

	if (!pbjson_num_split(s, n, &np)) {
		return PBJSON_NUM_SYNTAX;
	}
	total = np.il + np.fl;
	/* The value is digits * 10^e10. n is bounded by the input, far
	 * below LONG_MAX - PBJSON_EXP_CAP, so this cannot overflow. */
	e10 = np.exp - (long) np.fl;
	for (start = 0; start < total && pbjson_digit_at(&np, start) == '0';
	     start++) {
	}
	end = total;
	if (start == total) {
		*neg = false; /* -0 is 0 */
		*mag = 0;
		return PBJSON_NUM_OK;
	}
	if (e10 < 0) {
		size_t drop = (size_t) -e10;

		if (drop > end - start) {
			return PBJSON_NUM_FRACTION;
		}
		for (k = end - drop; k < end; k++) {
			if (pbjson_digit_at(&np, k) != '0') {
				return PBJSON_NUM_FRACTION;
			}
		}
		end -= drop;
		e10 = 0;
	}
	/* UINT64_MAX has 20 digits. */
	if (end - start + (size_t) e10 > 20) {
		return PBJSON_NUM_RANGE;
	}
	for (k = start; k < end; k++) {
		unsigned d = (unsigned) (pbjson_digit_at(&np, k) - '0');

		if (v > (UINT64_MAX - d) / 10) {
			return PBJSON_NUM_RANGE;
		}
		v = v * 10 + d;
	}
	for (; e10 > 0; e10--) {
		if (v > UINT64_MAX / 10) {
			return PBJSON_NUM_RANGE;
		}
		v *= 10;
	}
	*neg = np.neg;
	*mag = v;
	return PBJSON_NUM_OK;
}

pbjson_num
pbjson_parse_real_text(const char *s, size_t n, double *out)
{
	pbjson_numparts np;
	char *end = NULL;
	double d;

	if (!pbjson_num_split(s, n, &np)) {
		return PBJSON_NUM_SYNTAX;
	}
	/* The grammar check above keeps strtod from reading "inf", "nan",
	 * hex floats or leading blanks; s[n] ends the number (see the
	 * header), so strtod stops exactly at n. */
	errno = 0;
	d = strtod(s, &end);
	if (end != s + n) {
		return PBJSON_NUM_SYNTAX;
	}
	if (isinf(d)) {
		return PBJSON_NUM_RANGE;
	}
	*out = d;
	return PBJSON_NUM_OK;
}

size_t
pbjson_fmt_double(double d, char *buf)
{
	int len = 0;
	int p;

	/* For a normal double, when k <= 15 digits read back, "%.15g" is
	 * those k digits (the double is closer to them than 15-digit
	 * decimals are spaced, and %g drops trailing zeros): start there.
	 * Subnormals carry fewer bits, so try every precision. */
	for (p = fabs(d) < DBL_MIN ? 1 : 15; p <= 17; p++) {
		len = snprintf(buf, PBJSON_NUMBUF, "%.*g", p, d);
		if (strtod(buf, NULL) == d) {
			break;
		}
	}
	return len < 0 ? 0 : (size_t) len;
}

double
pbjson_float_as_double(float f)
{
	char buf[PBJSON_NUMBUF];
	double d;
	int p;

	/* As in pbjson_fmt_double, with 6 digits for a float. */
	for (p = fabsf(f) < FLT_MIN ? 1 : 6; p <= 9; p++) {
		(void) snprintf(buf, sizeof(buf), "%.*g", p, (double) f);
		if (strtof(buf, NULL) == f) {
			break;
		}
	}
	d = strtod(buf, NULL);
	/* Reading the decimal as a double and then narrowing rounds twice;
	 * in the rare case that lands elsewhere, keep the exact value. */
	if ((float) d != f) {
		d = (double) f;
	}
	return d;
}
