/*
 * gw_static.c - the demo page: path sanitizing (pure, fuzzed), content
 * types, and reading a file that provably lies below the web root.
 *
 * Two fences, either of which suffices: the sanitizer refuses dot
 * segments, backslashes and NUL after decoding, and the resolved
 * realpath must still start with the root's realpath. The second catches
 * symlinks that point out of the tree.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ds_alloc.h"
#include "gw_int.h"

#define GW_INDEX "index.html"

int
gw_static_sanitize(const char *path, size_t len, char **rel, nrpc_status *st)
{
	char *dec = NULL;
	char *out = NULL;
	size_t n = 0, o = 0, i = 0;
	int http;

	if (len == 0 || path[0] != '/') {
		return gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
		    "INVALID_PATH", NULL, "the path must start with '/'");
	}
	if ((http = gw_decode_dup(path, len, false, "path", &dec, &n, st)) !=
	    0) {
		return http;
	}
	if (n > GW_MAX_STATIC_PATH_BYTES) {
		http =
		    gw_status_set(st, 414, NRPC_INVALID_ARGUMENT, "TOO_LARGE",
		        NULL, "the path exceeds max_static_path_bytes (%d)",
		        GW_MAX_STATIC_PATH_BYTES);
		goto out;
	}
	if (memchr(dec, '\\', n) != NULL) {
		http = gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
		    "INVALID_PATH", NULL, "the path may not contain '\\'");
		goto out;
	}
	if ((out = ds_alloc(n + sizeof(GW_INDEX) + 1)) == NULL) {
		http = gw_status_set(st, 500, NRPC_RESOURCE_EXHAUSTED,
		    "RESOURCE_EXHAUSTED", NULL, "out of memory");
		goto out;
	}
	while (i < n) {
		size_t s = i;
		size_t sl;

		while (i < n && dec[i] != '/') {
			i++;
		}
		sl = i - s;
		i++; /* the '/' */
		if (sl == 0) {
			continue;
		}
		if ((sl == 1 && dec[s] == '.') ||
		    (sl == 2 && dec[s] == '.' && dec[s + 1] == '.')) {
			http = gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
			    "INVALID_PATH", NULL,
			    "the path may not contain '.' or '..' segments");
			goto out;
		}
		if (dec[s] == '.') {
			/* .git, .env: never served, whatever the root holds.
			 */
			http = gw_status_set(st, 404, NRPC_NOT_FOUND,
			    "NOT_FOUND", NULL, "no such file");
			goto out;
		}
		if (o > 0) {
			out[o++] = '/';
		}
		memcpy(out + o, dec + s, sl);
		o += sl;
	}
	if (o == 0 || dec[n - 1] == '/') {
		if (o > 0) {
			out[o++] = '/';
		}
		memcpy(out + o, GW_INDEX, sizeof(GW_INDEX) - 1);
		o += sizeof(GW_INDEX) - 1;
	}
	out[o] = '\0';
	*rel = out;
	out = NULL;
	http = 0;
out:
	ds_free(out);
	ds_free(dec);
	return http;
}

static const struct {
	const char *ext;
	const char *type;
} gw_static_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".htm", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".json", "application/json"},
    {".map", "application/json"},
    {".png", "image/png"},
    {".svg", "image/svg+xml"},
    {".ico", "image/x-icon"},
    {".txt", "text/plain; charset=utf-8"},
    {".jpg", "image/jpeg"},
    {".jpeg", "image/jpeg"},
    {".gif", "image/gif"},
    {".webp", "image/webp"},
    {".woff2", "font/woff2"},
    {".wasm", "application/wasm"},
};

const char *
gw_static_content_type(const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0;
	     i < sizeof(gw_static_types) / sizeof(gw_static_types[0]); i++) {
		size_t e = strlen(gw_static_types[i].ext);

		if (n > e &&
		    strcasecmp(name + n - e, gw_static_types[i].ext) == 0) {
			return gw_static_types[i].type;
		}
	}
	return "application/octet-stream";
}

static void
gw_static_not_found(gw_response *r)
{
	nrpc_status st;

	memset(&st, 0, sizeof(st));
	(void) gw_status_set(
	    &st, 404, NRPC_NOT_FOUND, "NOT_FOUND", NULL, "no such file");
	gw_render_error(NULL, r, 404, &st, NULL);
	nrpc_status_fini(&st);
}

/* gw_static_read answers with the regular file at path (a realpath). */
static void
gw_static_read(const char *path, gw_response *r)
{
	int fd;
	struct stat sb;
	uint8_t *buf = NULL;
	size_t got = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		gw_static_not_found(r);
		return;
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size < 0 ||
	    sb.st_size > GW_MAX_STATIC_FILE_BYTES ||
	    (buf = ds_alloc((size_t) sb.st_size)) == NULL) {
		(void) close(fd); /* read-only: nothing to flush */
		gw_static_not_found(r);
		return;
	}
	while (got < (size_t) sb.st_size) {
		ssize_t n = read(fd, buf + got, (size_t) sb.st_size - got);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			break; /* shrank under us: serve what is there */
		}
		got += (size_t) n;
	}
	(void) close(fd);
	gw_response_reset(r, 200);
	gw_response_header(r, "Content-Type", gw_static_content_type(path));
	gw_response_header(r, "Cache-Control", "no-cache");
	gw_response_header(r, "X-Content-Type-Options", "nosniff");
	gw_response_body_take(r, buf, got);
}

/* gw_static_resolve: the realpath of root/rel if it lies inside root, a
 * directory mapped to its index.html; owned (free()), or NULL. */
static char *
gw_static_resolve(const char *root, const char *rel)
{
	size_t rl = strlen(root);
	char *joined, *real;
	struct stat sb;

	if ((joined = ds_alloc(rl + strlen(rel) + sizeof(GW_INDEX) + 3)) ==
	    NULL) {
		return NULL;
	}
	memcpy(joined, root, rl);
	joined[rl] = '/';
	strcpy(joined + rl + 1, rel);
	real = realpath(joined, NULL);
	if (real != NULL && stat(real, &sb) == 0 && S_ISDIR(sb.st_mode)) {
		free(real);
		strcat(joined, "/" GW_INDEX);
		real = realpath(joined, NULL);
	}
	ds_free(joined);
	if (real == NULL) {
		return NULL;
	}
	if (strncmp(real, root, rl) != 0 || real[rl] != '/') {
		free(real); /* outside the root: a symlink led out */
		return NULL;
	}
	return real;
}

void
gw_static_respond(
    const char *root, const char *js_path, const char *rel, gw_response *r)
{
	char *real = NULL;

	if (root != NULL) {
		real = gw_static_resolve(root, rel);
	}
	if (real == NULL && js_path != NULL &&
	    strcmp(rel, "datasync.js") == 0) {
		real = realpath(js_path, NULL);
	}
	if (real == NULL) {
		gw_static_not_found(r);
		return;
	}
	gw_static_read(real, r);
	free(real);
}
