/*
 * ds_text.c - UTF-8, hex, constant-time compare, OS randomness, FNV-1a,
 * loopback addresses.
 */
#include <errno.h>
#include <sys/random.h>

#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include "ds_text.h"

bool
ds_utf8_valid(const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = p[i];
		size_t need;
		uint32_t cp;
		uint32_t min;

		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
			cp = c & 0x1f;
			min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			cp = c & 0x0f;
			min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			cp = c & 0x07;
			min = 0x10000;
		} else {
			return false; /* continuation byte, 0xc0/0xc1, > 0xf4 */
		}
		if (n - i - 1 < need) {
			return false;
		}
		for (size_t k = 1; k <= need; k++) {
			if ((p[i + k] & 0xc0) != 0x80) {
				return false;
			}
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
			return false;
		}
		i += need + 1;
	}
	return true;
}

bool
ds_utf8_has_control(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] < 0x20 || p[i] == 0x7f) {
			return true;
		}
		/* U+0080..U+009F encode as C2 80..C2 9F. */
		if (p[i] == 0xc2 && i + 1 < n && p[i + 1] >= 0x80 &&
		    p[i + 1] <= 0x9f) {
			return true;
		}
	}
	return false;
}

void
ds_hex_encode(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 0x0f];
	}
	out[2 * n] = '\0';
}

static int
ds_hex_digit(char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	if (c >= 'A' && c <= 'F') {
		return c - 'A' + 10;
	}
	return -1;
}

ds_err
ds_hex_decode(const char *s, size_t slen, uint8_t *out, size_t n)
{
	if (slen != 2 * n) {
		return DS_EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		int hi = ds_hex_digit(s[2 * i]);
		int lo = ds_hex_digit(s[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			return DS_EINVAL;
		}
		out[i] = (uint8_t) ((hi << 4) | lo);
	}
	return DS_OK;
}

bool
ds_ct_equal(const void *a, const void *b, size_t n)
{
	const volatile uint8_t *x = a;
	const volatile uint8_t *y = b;
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++) {
		acc |= (uint8_t) (x[i] ^ y[i]);
	}
	return acc == 0;
}

ds_err
ds_random_bytes(void *p, size_t n)
{
	uint8_t *out = p;

	while (n > 0) {
		ssize_t got = getrandom(out, n, 0);

		if (got < 0) {
			if (errno == EINTR) {
				continue;
			}
			return DS_EIO;
		}
		out += got;
		n -= (size_t) got;
	}
	return DS_OK;
}

uint64_t
ds_hash64(uint64_t seed, const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = seed;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

/* --- command-line numbers --- */

int
ds_parse_duration_ms(const char *s, int64_t *out)
{
	char *end;
	double v;
	double mult = 1000.0; /* a bare number is seconds */

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || v < 0) {
		return -1;
	}
	if (strcmp(end, "ms") == 0) {
		mult = 1.0;
	} else if (strcmp(end, "s") == 0 || *end == '\0') {
		mult = 1000.0;
	} else if (strcmp(end, "m") == 0) {
		mult = 60000.0;
	} else if (strcmp(end, "h") == 0) {
		mult = 3600000.0;
	} else {
		return -1;
	}
	v *= mult;
	if (v > 9.0e15) {
		return -1;
	}
	*out = (int64_t) v;
	return 0;
}

int
ds_parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s[0] == '-' || s[0] == '\0') {
		return -1;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0') {
		return -1;
	}
	*out = v;
	return 0;
}

/* ds_redact_append copies n bytes of p to out at *len, within cap - 1. */
static void
ds_redact_append(char *out, size_t cap, size_t *len, const char *p, size_t n)
{
	if (*len + n > cap - 1) {
		n = cap - 1 - *len;
	}
	memcpy(out + *len, p, n);
	*len += n;
}

void
ds_uri_redact(const char *uri, char *out, size_t cap)
{
	const char *p = uri, *scheme, *auth_end, *at = NULL;
	size_t len = 0;

	if (cap == 0) {
		return;
	}
	/* userinfo: scheme://user:password@host... (the authority ends at
	 * the first '/', '?' or '#'; the last '@' in it ends userinfo). */
	if ((scheme = strstr(p, "://")) != NULL) {
		const char *a = scheme + 3, *colon;

		auth_end = a + strcspn(a, "/?#");
		for (const char *q = a; q < auth_end; q++) {
			if (*q == '@') {
				at = q;
			}
		}
		if (at != NULL &&
		    (colon = memchr(a, ':', (size_t) (at - a))) != NULL) {
			ds_redact_append(out, cap, &len, p,
			    (size_t) (colon + 1 - p));
			ds_redact_append(out, cap, &len, "***", 3);
			p = at;
		}
	}
	/* password=... as a query parameter (&, ?) or a key=value word. */
	while (*p != '\0') {
		const char *hit = strstr(p, "password=");

		if (hit == NULL) {
			break;
		}
		if (hit != uri && strchr("?& \t", hit[-1]) == NULL) {
			ds_redact_append(out, cap, &len, p,
			    (size_t) (hit + 1 - p));
			p = hit + 1;
			continue;
		}
		ds_redact_append(out, cap, &len, p, (size_t) (hit + 9 - p));
		ds_redact_append(out, cap, &len, "***", 3);
		p = hit + 9 + strcspn(hit + 9, "& \t#");
	}
	ds_redact_append(out, cap, &len, p, strlen(p));
	out[len] = '\0';
}

/* --- loopback addresses (protected mode, DESIGN §11) --- */

/* ds_loopback_host: is host (of a URL or HOST:PORT, brackets allowed)
 * reachable from this machine only? An empty host or a wildcard is every
 * interface. */
bool
ds_loopback_host(const char *host, size_t len)
{
	static const char *const loop[] = {"127.0.0.1", "localhost", "::1",
	    "[::1]"};

	for (size_t i = 0; i < sizeof(loop) / sizeof(loop[0]); i++) {
		if (len == strlen(loop[i]) && memcmp(host, loop[i], len) == 0) {
			return true;
		}
	}
	return false;
}

/* ds_hostport_loopback: is "HOST:PORT" a loopback address? */
bool
ds_hostport_loopback(const char *hp)
{
	const char *colon = strrchr(hp, ':');

	return ds_loopback_host(hp, colon != NULL ? (size_t) (colon - hp) :
	                                             strlen(hp));
}

/* ds_url_local: does an RPC URL stay on this machine? ipc://, inproc://
 * and abstract:// always do; anything else (tcp://, tls+tcp://, ws://)
 * only on a loopback host. */
bool
ds_url_local(const char *url)
{
	const char *sep = strstr(url, "://");
	const char *host;
	const char *end;

	if (strncmp(url, "ipc://", 6) == 0 || strncmp(url, "inproc://", 9) == 0 ||
	    strncmp(url, "abstract://", 11) == 0) {
		return true;
	}
	if (sep == NULL) {
		return false;
	}
	host = sep + 3;
	if ((end = strchr(host, '/')) == NULL) {
		end = host + strlen(host);
	}
	{
		char hp[256];
		size_t n = (size_t) (end - host);

		if (n >= sizeof(hp)) {
			return false;
		}
		memcpy(hp, host, n);
		hp[n] = '\0';
		return ds_hostport_loopback(hp);
	}
}
