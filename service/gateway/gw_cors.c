/*
 * gw_cors.c - cross-origin decisions (Fetch standard, CORS protocol).
 *
 * The gateway has no cookies or credentials, so an allowed origin is
 * echoed back without Access-Control-Allow-Credentials. Reads from other
 * origins are served without the headers, so the browser hides the answer
 * from the page; unsafe requests from them never get here (gw_guard.c
 * refuses them first: network position is ambient authority). Preflights
 * from other origins are refused with 403 so that the refusal is visible
 * in the browser's network panel.
 */
#include <string.h>

#include "gw_int.h"

#define GW_CORS_ALLOW_HEADERS                                                 \
	"Content-Type, If-Match, If-None-Match, Lock-Token, "                 \
	"Idempotency-Key, "                                                   \
	"Author, Last-Event-ID, Authorization"
#define GW_CORS_EXPOSE_HEADERS                                                \
	"ETag, Lock-Token, Lock-Owner, Lock-Expires-At, "                     \
	"Lock-Fencing-Token, Record-Revision, Record-Updated-At, "            \
	"Record-Updated-By, Record-Created-At, Retry-After, "                 \
	"WWW-Authenticate"

static bool
gw_cors_scheme_char(char c, bool first)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
		return true;
	}
	return !first &&
	       ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.');
}

bool
gw_cors_origin_valid(const char *o)
{
	const char *sep;
	size_t len;

	if (o == NULL) {
		return false;
	}
	if (strcmp(o, "*") == 0) {
		return true;
	}
	len = strnlen(o, GW_MAX_ORIGIN_BYTES + 1);
	if (len == 0 || len > GW_MAX_ORIGIN_BYTES ||
	    (sep = strstr(o, "://")) == NULL || sep == o) {
		return false;
	}
	for (const char *p = o; p < sep; p++) {
		if (!gw_cors_scheme_char(*p, p == o)) {
			return false;
		}
	}
	if (sep[3] == '\0') {
		return false; /* no host */
	}
	for (const char *p = sep + 3; *p != '\0'; p++) {
		unsigned char c = (unsigned char) *p;

		/* An origin has no path, query, fragment or userinfo. */
		if (c <= 0x20 || c >= 0x7f || c == '/' || c == '?' ||
		    c == '#' || c == '@' || c == '\\' || c == ',') {
			return false;
		}
	}
	return true;
}

gw_cors
gw_cors_check(const gw_core *core, const char *origin)
{
	if (origin == NULL) {
		return GW_CORS_NONE;
	}
	if (core->cors_any) {
		return GW_CORS_ALLOWED;
	}
	for (size_t i = 0; i < core->n_cors_origins; i++) {
		if (strcmp(core->cors_origins[i], origin) == 0) {
			return GW_CORS_ALLOWED;
		}
	}
	return GW_CORS_DENIED;
}

void
gw_cors_decorate(
    const gw_core *core, gw_cors c, const char *origin, gw_response *r)
{
	if (core->n_cors_origins > 0 &&
	    gw_response_get_header(r, "Vary") == NULL) {
		gw_response_header(r, "Vary", "Origin");
	}
	if (c != GW_CORS_ALLOWED || origin == NULL) {
		return;
	}
	gw_response_header(r, "Access-Control-Allow-Origin", origin);
	gw_response_header(
	    r, "Access-Control-Expose-Headers", GW_CORS_EXPOSE_HEADERS);
}

void
gw_cors_options(
    const gw_core *core, const gw_request *req, gw_route route, gw_response *r)
{
	const char *origin = gw_request_header(req, "Origin");
	const char *want =
	    gw_request_header(req, "Access-Control-Request-Method");
	gw_cors c = gw_cors_check(core, origin);

	if (origin == NULL || want == NULL) {
		/* Plain OPTIONS: say what the route answers. */
		gw_response_reset(r, 204);
		gw_response_header(r, "Allow", gw_route_allow(route));
		gw_cors_decorate(core, c, origin, r);
		return;
	}
	if (c != GW_CORS_ALLOWED) {
		nrpc_status st;

		memset(&st, 0, sizeof(st));
		(void) gw_status_set(&st, 403, NRPC_PERMISSION_DENIED,
		    "CORS_ORIGIN_DENIED", "Origin",
		    "origin %.128s may not call this server (see "
		    "--cors-origin)",
		    origin);
		gw_render_error(core, r, 403, &st, NULL);
		nrpc_status_fini(&st);
		gw_cors_decorate(core, c, origin, r);
		return;
	}
	gw_response_reset(r, 204);
	gw_response_header(r, "Access-Control-Allow-Origin", origin);
	gw_response_header(
	    r, "Access-Control-Allow-Methods", gw_route_allow(route));
	gw_response_header(
	    r, "Access-Control-Allow-Headers", GW_CORS_ALLOW_HEADERS);
	gw_response_headerf(
	    r, "Access-Control-Max-Age", "%d", GW_CORS_MAX_AGE_S);
	gw_response_header(r, "Vary",
	    "Origin, Access-Control-Request-Method, "
	    "Access-Control-Request-Headers");
}
