/*
 * pgn_names.c - names as protoc-c makes them, and the generated API's.
 *
 * The stubs name types and descriptors that protoc-c generated, so the
 * mangling here must agree with protoc-c 1.4's c_helpers.cc to the byte
 * (CamelToLower, ToCamel, FullNameToC, FullNameToLower, OverrideFullName,
 * StripProto). The tests prove it by compiling generated stubs against
 * protoc-c's output for deliberately awkward names.
 *
 * Every function works on ASCII identifiers only: pgn_model.c rejects any
 * other name before it gets here, so protoc-c's locale-dependent isupper()
 * and our ASCII tests cannot disagree.
 */
#include <stdlib.h>
#include <string.h>

#include "pgn.h"

/* --- character classes (ASCII; no locale) --- */

static bool
pgn_ch_upper(char c)
{
	return c >= 'A' && c <= 'Z';
}

static bool
pgn_ch_lower(char c)
{
	return c >= 'a' && c <= 'z';
}

static bool
pgn_ch_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
pgn_ch_alnum(char c)
{
	return pgn_ch_upper(c) || pgn_ch_lower(c) || pgn_ch_digit(c);
}

static char
pgn_ch_to_lower(char c)
{
	return pgn_ch_upper(c) ? (char) (c - 'A' + 'a') : c;
}

static char
pgn_ch_to_upper(char c)
{
	return pgn_ch_lower(c) ? (char) (c - 'a' + 'A') : c;
}

/* pgn_ident_len is the length of the identifier at s, 0 if none. */
static size_t
pgn_ident_len(const char *s)
{
	size_t n = 0;

	if (!(pgn_ch_upper(s[0]) || pgn_ch_lower(s[0]) || s[0] == '_')) {
		return 0;
	}
	while (pgn_ch_alnum(s[n]) || s[n] == '_') {
		n++;
	}
	return n;
}

bool
pgn_is_ident(const char *s)
{
	size_t n = pgn_ident_len(s);

	return n > 0 && s[n] == 0;
}

bool
pgn_is_dotted(const char *s)
{
	size_t n;

	if (s[0] == 0) {
		return true;
	}
	for (;;) {
		if ((n = pgn_ident_len(s)) == 0) {
			return false;
		}
		s += n;
		if (s[0] == 0) {
			return true;
		}
		if (s[0] != '.') {
			return false;
		}
		s++;
	}
}

/* --- protoc-c's mangling --- */

/* pgn_camel_to_lower_n writes CamelToLower(s[0..n)) to out, which has
 * room for 2n bytes, and returns the length written. protoc-c: an
 * underscore goes before every upper-case letter that follows a
 * character that is not upper-case ("was_upper" starts true, so never
 * before the first). */
static size_t
pgn_camel_to_lower_n(const char *s, size_t n, char *out)
{
	bool was_upper = true;
	size_t o = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		bool is_upper = pgn_ch_upper(s[i]);

		if (is_upper && !was_upper) {
			out[o++] = '_';
		}
		out[o++] = pgn_ch_to_lower(s[i]);
		was_upper = is_upper;
	}
	return o;
}

/* pgn_to_camel_n writes ToCamel(s[0..n)): underscores dropped, the first
 * character and every one after an underscore upper-cased. */
static size_t
pgn_to_camel_n(const char *s, size_t n, char *out)
{
	bool next_upper = true;
	size_t o = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] == '_') {
			next_upper = true;
		} else if (next_upper) {
			out[o++] = pgn_ch_to_upper(s[i]);
			next_upper = false;
		} else {
			out[o++] = s[i];
		}
	}
	return o;
}

char *
pgn_camel_to_lower(pgn_arena *a, const char *s)
{
	size_t n = strlen(s);
	char *out;

	if (n > (SIZE_MAX - 1) / 2 ||
	    (out = pgn_arena_alloc(a, 2 * n + 1)) == NULL) {
		return NULL;
	}
	out[pgn_camel_to_lower_n(s, n, out)] = 0;
	return out;
}

char *
pgn_to_upper(pgn_arena *a, const char *s)
{
	char *out;
	size_t i;

	if ((out = pgn_arena_strndup(a, s, strlen(s))) == NULL) {
		return NULL;
	}
	for (i = 0; out[i] != 0; i++) {
		out[i] = pgn_ch_to_upper(out[i]);
	}
	return out;
}

char *
pgn_c_full_name(pgn_arena *a, const char *full_name, const char *package,
    const char *c_package)
{
	size_t plen = strlen(package);

	if (c_package == NULL) {
		return pgn_arena_strndup(a, full_name, strlen(full_name));
	}
	/* protoc-c: c_package + (package empty ? "." : "") +
	 * full_name.substr(package.length()). */
	if (strncmp(full_name, package, plen) != 0) {
		plen = 0; /* not in package: cannot happen from protoc */
	}
	return pgn_arena_printf(a, "%s%s%s", c_package,
	    package[0] == 0 ? "." : "", full_name + plen);
}

/* pgn_mangle splits full_name at dots, skips empty pieces, converts each
 * with one of the functions above and joins them with "__". */
static char *
pgn_mangle(pgn_arena *a, const char *full_name,
    size_t (*conv)(const char *, size_t, char *))
{
	size_t n = strlen(full_name);
	size_t o = 0;
	char *out;
	const char *p = full_name;

	/* Each byte becomes at most 2, each dot 2 ("__"). */
	if (n > (SIZE_MAX - 1) / 2 ||
	    (out = pgn_arena_alloc(a, 2 * n + 1)) == NULL) {
		return NULL;
	}
	while (*p != 0) {
		const char *dot = strchr(p, '.');
		size_t len = dot != NULL ? (size_t) (dot - p) : strlen(p);

		if (len > 0) {
			if (o > 0) {
				out[o++] = '_';
				out[o++] = '_';
			}
			o += conv(p, len, out + o);
		}
		p += len;
		if (*p == '.') {
			p++;
		}
	}
	out[o] = 0;
	return out;
}

char *
pgn_full_name_to_c(pgn_arena *a, const char *full_name)
{
	return pgn_mangle(a, full_name, pgn_to_camel_n);
}

char *
pgn_full_name_to_lower(pgn_arena *a, const char *full_name)
{
	return pgn_mangle(a, full_name, pgn_camel_to_lower_n);
}

char *
pgn_strip_proto(pgn_arena *a, const char *file)
{
	static const char *const suffixes[] = {".protodevel", ".proto"};
	size_t n = strlen(file);
	size_t i;

	for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		size_t sl = strlen(suffixes[i]);

		if (n >= sl && strcmp(file + n - sl, suffixes[i]) == 0) {
			return pgn_arena_strndup(a, file, n - sl);
		}
	}
	return pgn_arena_strndup(a, file, n);
}

char *
pgn_file_ident(pgn_arena *a, const char *file)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = strlen(file);
	size_t o = 0;
	size_t i;
	char *out;

	/* Each byte becomes at most 3 ("_2f"). */
	if (n > (SIZE_MAX - 1) / 3 ||
	    (out = pgn_arena_alloc(a, 3 * n + 1)) == NULL) {
		return NULL;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char) file[i];

		if (pgn_ch_alnum((char) c)) {
			out[o++] = (char) c;
			continue;
		}
		/* protoc-c's FastHexToBuffer: lower-case, no leading 0 */
		out[o++] = '_';
		if (c >= 16) {
			out[o++] = hex[c >> 4];
		}
		out[o++] = hex[c & 15];
	}
	out[o] = 0;
	return out;
}

/* --- the generated API's names --- */

char *
pgn_api_prefix(pgn_arena *a, const char *c_package, const char *service)
{
	char *pkg;
	char *svc;
	size_t i;

	if ((svc = pgn_camel_to_lower(a, service)) == NULL) {
		return NULL;
	}
	if (c_package[0] == 0) {
		return svc;
	}
	if ((pkg = pgn_arena_strndup(a, c_package, strlen(c_package))) ==
	    NULL) {
		return NULL;
	}
	for (i = 0; pkg[i] != 0; i++) {
		pkg[i] = pkg[i] == '.' ? '_' : pgn_ch_to_lower(pkg[i]);
	}
	return pgn_arena_printf(a, "%s_%s", pkg, svc);
}

/* Names a handler-table member cannot have as they are. Snake names are
 * lower case, so only lower-case words matter: C11's keywords, C23's new
 * ones (bool, true, ... are macros before C23, keywords after), and
 * lower-case object-like macros that nrpc.h's includes or common system
 * headers define (errno; linux and unix in GNU modes). Function-like
 * macros cannot bite the generated code, which calls members as
 * (h->name)(...), but a few common ones are listed for the sake of
 * callers who write h->name(...). Sorted for bsearch. */
static const char *const pgn_reserved[] = {
    "alignas", "alignof", "asm", "assert", "auto", "bool", "break",
    "case", "char", "complex", "const", "constexpr", "continue",
    "default", "do", "double", "else", "enum", "environ", "errno",
    "extern", "false", "float", "for", "goto", "i386", "if",
    "imaginary", "inline", "int", "linux", "long", "major", "makedev",
    "minor", "noreturn", "nullptr", "offsetof", "register", "restrict",
    "return", "setjmp", "short", "signed", "sizeof", "static",
    "static_assert", "stderr", "stdin", "stdout", "struct", "switch",
    "thread_local", "true", "typedef", "typeof", "typeof_unqual",
    "union", "unix", "unsigned", "va_arg", "va_copy", "va_end",
    "va_start", "void", "volatile", "while",
};

static int
pgn_strcmp_ptr(const void *key, const void *elem)
{
	return strcmp(key, *(const char *const *) elem);
}

bool
pgn_is_reserved(const char *s)
{
	return bsearch(s, pgn_reserved,
	           sizeof(pgn_reserved) / sizeof(pgn_reserved[0]),
	           sizeof(pgn_reserved[0]), pgn_strcmp_ptr) != NULL;
}

char *
pgn_member_name(pgn_arena *a, const char *snake)
{
	return pgn_arena_printf(a, "%s%s", snake,
	    pgn_is_reserved(snake) ? "_" : "");
}

char *
pgn_method_stem(pgn_arena *a, const char *snake)
{
	/* Must match the service-level names pgn_skel.c writes. */
	static const char *const taken[] = {"dispatch", "handlers", "methods",
	    "register", "service"};
	size_t i;
	bool clash = false;

	for (i = 0; i < sizeof(taken) / sizeof(taken[0]); i++) {
		clash = clash || strcmp(snake, taken[i]) == 0;
	}
	return pgn_arena_printf(a, "%s%s", snake, clash ? "_" : "");
}

bool
pgn_c_text_ok(const char *s)
{
	size_t i;

	for (i = 0; s[i] != 0; i++) {
		unsigned char c = (unsigned char) s[i];

		if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') {
			return false;
		}
		if ((c == '*' && s[i + 1] == '/') ||
		    (c == '/' && s[i + 1] == '*') ||
		    (c == '?' && s[i + 1] == '?')) {
			return false;
		}
	}
	return true;
}
