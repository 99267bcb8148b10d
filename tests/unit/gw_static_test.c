/*
 * gw_static_test.c - static file paths: sanitizing (traversal, encoding,
 * hidden files), content types, and serving below a real directory with a
 * symlink that leads out.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ds_alloc.h"
#include "ds_test.h"
#include "gw_int.h"

static int
sanitize(const char *path, char **rel)
{
	nrpc_status st;
	int http;

	memset(&st, 0, sizeof(st));
	*rel = NULL;
	http = gw_static_sanitize(path, strlen(path), rel, &st);
	nrpc_status_fini(&st);
	return http;
}

static void
assert_rel(const char *path, const char *want)
{
	char *rel;

	assert_int_equal(sanitize(path, &rel), 0);
	assert_string_equal(rel, want);
	ds_free(rel);
}

static void
test_sanitize_maps_paths_and_directories(void **state)
{
	(void) state;
	assert_rel("/", "index.html");
	assert_rel("/app.js", "app.js");
	assert_rel("/css/site.css", "css/site.css");
	assert_rel("//css//site.css", "css/site.css");
	assert_rel("/docs/", "docs/index.html");
	assert_rel("/a%20b.html", "a b.html");
	assert_rel("/a..b/c.d", "a..b/c.d");
}

static void
test_sanitize_refuses_traversal_in_every_spelling(void **state)
{
	static const char *const bad[] = {
	    "/../etc/passwd",
	    "/a/../../etc/passwd",
	    "/%2e%2e/etc/passwd",
	    "/%2E%2E%2Fetc%2Fpasswd",
	    "/..%2f..%2fetc/passwd",
	    "/./index.html",
	    "/a\\..\\b",
	    "/a%5c..%5cb",
	    "/index.html%00.png",
	    "/%zz",
	    "/%C0%AE%C0%AE/etc",
	    "relative",
	};
	char *rel;

	(void) state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(sanitize(bad[i], &rel), 400);
		assert_null(rel);
	}
}

static void
test_sanitize_hides_dotfiles(void **state)
{
	char *rel;

	(void) state;
	assert_int_equal(sanitize("/.git/config", &rel), 404);
	assert_int_equal(sanitize("/a/.env", &rel), 404);
	assert_int_equal(sanitize("/..foo", &rel), 404); /* a name, hidden */
}

static void
test_sanitize_path_at_limit_and_over(void **state)
{
	char path[GW_MAX_STATIC_PATH_BYTES + 2];
	char *rel;

	(void) state;
	memset(path, 'a', sizeof(path));
	path[0] = '/';
	path[GW_MAX_STATIC_PATH_BYTES] = '\0';
	assert_int_equal(sanitize(path, &rel), 0);
	ds_free(rel);
	path[GW_MAX_STATIC_PATH_BYTES] = 'a';
	path[GW_MAX_STATIC_PATH_BYTES + 1] = '\0';
	assert_int_equal(sanitize(path, &rel), 414);
}

static void
test_content_types(void **state)
{
	(void) state;
	assert_string_equal(
	    gw_static_content_type("index.html"), "text/html; charset=utf-8");
	assert_string_equal(
	    gw_static_content_type("a/SITE.CSS"), "text/css; charset=utf-8");
	assert_string_equal(gw_static_content_type("datasync.js"),
	    "text/javascript; charset=utf-8");
	assert_string_equal(
	    gw_static_content_type("x.json"), "application/json");
	assert_string_equal(gw_static_content_type("logo.png"), "image/png");
	assert_string_equal(
	    gw_static_content_type("logo.svg"), "image/svg+xml");
	assert_string_equal(
	    gw_static_content_type("favicon.ico"), "image/x-icon");
	assert_string_equal(
	    gw_static_content_type("README"), "application/octet-stream");
	assert_string_equal(
	    gw_static_content_type(".js"), "application/octet-stream");
}

static void
write_file(const char *dir, const char *name, const char *text)
{
	char path[1024];
	FILE *f;

	(void) snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
}

static void
serve(const char *root, const char *js, const char *rel, gw_response *r)
{
	gw_response_init(r);
	gw_static_respond(root, js, rel, r);
	gw_response_seal(r);
}

static void
test_respond_serves_inside_root_only(void **state)
{
	char tmp[512], root[600], sub[700], path[800];
	char *real;
	gw_response r;

	(void) state;
	assert_int_equal(ds_test_tmpdir(tmp, sizeof(tmp)), 0);
	(void) snprintf(root, sizeof(root), "%s/web", tmp);
	assert_int_equal(mkdir(root, 0755), 0);
	(void) snprintf(sub, sizeof(sub), "%s/docs", root);
	assert_int_equal(mkdir(sub, 0755), 0);
	write_file(root, "index.html", "<h1>hi</h1>");
	write_file(sub, "index.html", "docs");
	write_file(tmp, "secret.txt", "secret");
	write_file(tmp, "lib.js", "export {}");
	(void) snprintf(path, sizeof(path), "%s/secret.txt", tmp);
	assert_int_equal(
	    symlink(path, strcat(strcpy(sub, root), "/leak.txt")), 0);
	assert_non_null(real = realpath(root, NULL));

	serve(real, NULL, "index.html", &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, strlen("<h1>hi</h1>"));
	assert_memory_equal(r.body, "<h1>hi</h1>", r.body_len);
	assert_string_equal(gw_response_get_header(&r, "Content-Type"),
	    "text/html; charset=utf-8");
	gw_response_fini(&r);

	serve(real, NULL, "docs", &r); /* a directory: its index */
	assert_int_equal(r.status, 200);
	assert_memory_equal(r.body, "docs", 4);
	gw_response_fini(&r);

	serve(real, NULL, "leak.txt", &r); /* symlink out of the root */
	assert_int_equal(r.status, 404);
	gw_response_fini(&r);

	serve(real, NULL, "missing.html", &r);
	assert_int_equal(r.status, 404);
	gw_response_fini(&r);

	(void) snprintf(path, sizeof(path), "%s/lib.js", tmp);
	serve(real, path, "datasync.js", &r); /* the JS client beside */
	assert_int_equal(r.status, 200);
	assert_string_equal(gw_response_get_header(&r, "Content-Type"),
	    "text/javascript; charset=utf-8");
	gw_response_fini(&r);

	serve(NULL, NULL, "index.html", &r); /* no web root at all */
	assert_int_equal(r.status, 404);
	gw_response_fini(&r);

	free(real);
	ds_test_rmdir(tmp);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sanitize_maps_paths_and_directories),
	    cmocka_unit_test(
	        test_sanitize_refuses_traversal_in_every_spelling),
	    cmocka_unit_test(test_sanitize_hides_dotfiles),
	    cmocka_unit_test(test_sanitize_path_at_limit_and_over),
	    cmocka_unit_test(test_content_types),
	    cmocka_unit_test(test_respond_serves_inside_root_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
