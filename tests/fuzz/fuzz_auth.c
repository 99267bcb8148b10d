/*
 * fuzz_auth.c - the parsers of auth.h: grants text, rights on keys and
 * ranges, bearer values, secret form and token names. Nothing may crash,
 * leak or trip a sanitizer, and these must hold:
 *   - grants that parse format to text that parses to the same grants
 *     (format(parse(format(g))) == format(g));
 *   - a right on a range (prefix P) implies it on the key P itself;
 *   - a refusal's *why is NULL or one of the grants' prefixes;
 *   - a bearer secret lies inside the value and holds no space.
 *
 * Input layout: byte 0 selects the right (bits 0-1: read, write, lock,
 * admin); the rest is fields separated by 0xFF bytes (which UTF-8 never
 * contains): grants text, key / prefix, Authorization value.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "ds_alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fz_field {
	const char *p;
	size_t n;
} fz_field;

/* fz_check aborts on a broken invariant: that is the finding. */
static void
fz_check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_auth: %s\n", what);
		abort();
	}
}

static void
fz_why(const auth_grants *g, const char *why)
{
	int found = why == NULL;

	for (size_t i = 0; i < g->n && !found; i++) {
		found = why == g->g[i].prefix;
	}
	fz_check(found, "why is not a grant's prefix");
}

static void
fz_rights(const auth_grants *g, auth_right right, const fz_field *key)
{
	const char *why = NULL;
	bool on_key, on_range;

	on_key = auth_allows(g, right, key->p, key->n, &why);
	if (!on_key) {
		fz_why(g, why);
	}
	why = NULL;
	on_range = auth_allows_range(g, right, key->p, key->n, &why);
	if (!on_range) {
		fz_why(g, why);
	}
	fz_check(!on_range || on_key, "a range allowed, its first key not");
}

static void
fz_grants(const char *text, auth_right right, const fz_field *key)
{
	auth_grants g = {0}, h = {0};
	char *once = NULL, *twice = NULL;
	auth_error err;

	if (auth_grants_parse_text(text, &g, &err) != 0) {
		fz_check(
		    memchr(err.message, '\0', sizeof(err.message)) != NULL,
		    "error message not terminated");
		return;
	}
	fz_rights(&g, right, key);
	if (auth_grants_format(&g, &once) == 0) {
		fz_check(auth_grants_parse_text(once, &h, &err) == 0,
		    "formatted grants do not parse");
		fz_check(
		    auth_grants_format(&h, &twice) == 0, "formatting failed");
		fz_check(strcmp(once, twice) == 0, "format is not canonical");
	}
	ds_free(once);
	ds_free(twice);
	auth_grants_fini(&g);
	auth_grants_fini(&h);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const auth_right rights[] = {
	    AUTH_READ, AUTH_WRITE, AUTH_LOCK, AUTH_ADMIN};
	fz_field f[3] = {{"", 0}, {"", 0}, {"", 0}};
	char *copy, *grants, *value;
	const char *secret = NULL;
	size_t at = 1, nf = 0, len = 0;
	uint8_t hash[AUTH_HASH_BYTES];

	if (size == 0) {
		return 0;
	}
	/* The fields, NUL-terminated, in one copy. */
	if ((copy = malloc(size)) == NULL) {
		return 0;
	}
	memcpy(copy, data + 1, size - 1);
	copy[size - 1] = '\0';
	for (size_t i = 0; i < size - 1 && nf < 3; i++) {
		if ((uint8_t) copy[i] == 0xff) {
			f[nf].p = copy + at - 1;
			f[nf].n = i - (at - 1);
			copy[i] = '\0';
			nf++;
			at = i + 2;
		}
	}
	if (nf < 3) {
		f[nf].p = copy + at - 1;
		f[nf].n = size - at;
	}
	grants = (char *) f[0].p;
	value = (char *) f[2].p;

	fz_grants(grants, rights[data[0] & 3], &f[1]);
	(void) auth_name_valid(f[1].p, f[1].n, NULL);
	(void) auth_secret_well_formed(f[1].p, f[1].n);
	if (auth_bearer(value, &secret, &len)) {
		fz_check(
		    secret >= value && secret + len <= value + strlen(value),
		    "bearer secret outside its value");
		fz_check(memchr(secret, ' ', len) == NULL,
		    "bearer secret holds a space");
		if (auth_secret_well_formed(secret, len)) {
			auth_hash(secret, len, hash);
			fz_check(auth_hash_equal(hash, hash), "hash unequal");
		}
	}
	free(copy);
	return 0;
}
