/*
 * ds_text.h - small pure helpers on bytes: UTF-8 validation, hex, and a
 * constant-time comparison. No allocation; safe from any thread.
 */
#ifndef DS_TEXT_H
#define DS_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ds_err.h"

/* ds_utf8_valid is true when p[0..n) is well-formed UTF-8 (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF). */
bool ds_utf8_valid(const uint8_t *p, size_t n);

/* ds_utf8_has_control is true when p[0..n) contains a C0 control
 * character (U+0000..U+001F), DEL (U+007F) or a C1 control
 * (U+0080..U+009F). p must be valid UTF-8. */
bool ds_utf8_has_control(const uint8_t *p, size_t n);

/* ds_hex_encode writes 2*n lowercase hex digits and a NUL to out, which
 * must hold 2*n+1 bytes. */
void ds_hex_encode(const uint8_t *p, size_t n, char *out);

/* ds_hex_decode reads exactly 2*n hex digits (either case) from s[0..slen)
 * into out[0..n). DS_EINVAL when slen != 2*n or a digit is not hex; out
 * is then unspecified. */
ds_err ds_hex_decode(const char *s, size_t slen, uint8_t *out, size_t n);

/* ds_ct_equal compares n bytes in time that depends only on n, so a
 * secret (a lock token) cannot be guessed byte by byte from timing. */
bool ds_ct_equal(const void *a, const void *b, size_t n);

/* ds_random_bytes fills p with n bytes from the OS (getrandom(2)).
 * DS_EIO if the OS refuses; p is then unspecified. */
ds_err ds_random_bytes(void *p, size_t n);

/* ds_hash64 is FNV-1a over p[0..n), continuing from seed (use
 * DS_HASH64_INIT for a fresh hash). Not cryptographic: used to detect a
 * request id reused for a different request. */
#define DS_HASH64_INIT UINT64_C(0xcbf29ce484222325)
uint64_t ds_hash64(uint64_t seed, const void *p, size_t n);

/* ds_parse_duration_ms reads a command-line duration: "500ms", "30s",
 * "5m", "1h", or a bare number of seconds (fractions allowed). Returns 0
 * with *out in milliseconds, or -1 (out untouched) for anything else, a
 * negative value or more than ~285,000 years. */
int ds_parse_duration_ms(const char *s, int64_t *out);

/* ds_parse_u64 reads a decimal number without sign; 0 or -1. */
int ds_parse_u64(const char *s, uint64_t *out);

/* ds_uri_redact copies uri into out (cap bytes, always NUL-terminated,
 * truncated if need be) with any password replaced by "***": the
 * userinfo's "user:password@" of a URI and a "password=" query or
 * key=value parameter, so a libpq connection string can be logged. */
void ds_uri_redact(const char *uri, char *out, size_t cap);

/* ds_loopback_host: is host[0..len) (of a URL or HOST:PORT, brackets
 * allowed) reachable from this machine only? An empty host or a wildcard
 * (0.0.0.0, ::) is every interface: false. */
bool ds_loopback_host(const char *host, size_t len);

/* ds_hostport_loopback: is "HOST:PORT" a loopback address? */
bool ds_hostport_loopback(const char *hp);

/* ds_url_local: does an RPC URL stay on this machine? ipc://, inproc://
 * and abstract:// always do; anything else (tcp://, tls+tcp://, ws://)
 * only on a loopback host. */
bool ds_url_local(const char *url);

#endif /* DS_TEXT_H */
