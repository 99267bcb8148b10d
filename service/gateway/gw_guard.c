/*
 * gw_guard.c - the browser rules of DESIGN §11, applied before a request
 * runs: Host (DNS rebinding), Origin (cross-site writes) and the JSON
 * Content-Type (CORS "simple requests").
 *
 * Why these three and in this order. A page on another site can make a
 * browser send a POST with a text/plain or form body to 127.0.0.1
 * without a preflight, and can make it send anything at all, with the
 * page's own origin, once it rebinds its name to 127.0.0.1. The gateway
 * has no credentials to protect, so its network position is the ambient
 * authority: it must refuse (1) a Host it does not answer to, which is
 * what a rebound name sends, (2) an unsafe method whose Origin is neither
 * its own nor configured, which is what a cross-site form, no-cors fetch
 * or sendBeacon sends, and (3) a JSON body labelled anything else, so
 * that even an Origin-less client (an old browser, a plugin) cannot
 * smuggle one past CORS: a JSON Content-Type is not "simple" and forces a
 * preflight, which (2) refuses. The beacon unlock route is exempt from
 * (3): sendBeacon cannot set a JSON type cross-origin, and that route
 * needs the lock's secret token anyway.
 *
 * An IP literal in Host is always accepted: a name can be rebound, an
 * address cannot (a request for http://10.1.2.3/ reaches 10.1.2.3), so
 * accepting literals costs no safety and keeps a wildcard listener
 * reachable by address.
 */
#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include "gw_int.h"

void
gw_core_set_hosts(gw_core *core, const char *listen,
    const char *const *allow_hosts, size_t n_allow_hosts)
{
	const char *host;
	size_t len;

	core->allow_hosts = allow_hosts;
	core->n_allow_hosts = n_allow_hosts;
	core->allow_any_host = false;
	for (size_t i = 0; i < n_allow_hosts; i++) {
		if (strcmp(allow_hosts[i], "*") == 0) {
			core->allow_any_host = true;
		}
	}
	core->listen_host[0] = '\0';
	if (listen != NULL &&
	    gw_host_split(listen, strlen(listen), &host, &len) == 0 &&
	    len < sizeof(core->listen_host)) {
		memcpy(core->listen_host, host, len);
		core->listen_host[len] = '\0';
	}
}

int
gw_host_split(const char *v, size_t n, const char **host, size_t *len)
{
	const char *colon;

	if (n == 0) {
		return -1;
	}
	if (v[0] == '[') {
		const char *end = memchr(v, ']', n);

		if (end == NULL ||
		    (end + 1 < v + n && end[1] != ':')) {
			return -1;
		}
		*host = v;
		*len = (size_t) (end + 1 - v);
		return 0;
	}
	colon = memchr(v, ':', n);
	if (colon != NULL && memchr(colon + 1, ':', n - (size_t) (colon + 1 - v)) != NULL) {
		return -1; /* an IPv6 address must be bracketed */
	}
	*host = v;
	*len = colon != NULL ? (size_t) (colon - v) : n;
	return *len > 0 ? 0 : -1;
}

/* gw_guard_ip_literal: "127.0.0.1" or "[::1]" (inet_pton accepts only
 * the plain dotted quad, not 0x7f.1 or 2130706433). */
static bool
gw_guard_ip_literal(const char *h, size_t n)
{
	char buf[INET6_ADDRSTRLEN + 2];
	unsigned char addr[16];

	if (n + 1 > sizeof(buf)) {
		return false;
	}
	if (h[0] == '[') {
		if (n < 3) {
			return false;
		}
		memcpy(buf, h + 1, n - 2);
		buf[n - 2] = '\0';
		return inet_pton(AF_INET6, buf, addr) == 1;
	}
	memcpy(buf, h, n);
	buf[n] = '\0';
	return inet_pton(AF_INET, buf, addr) == 1;
}

static bool
gw_guard_name_is(const char *h, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(h, name, n) == 0;
}

bool
gw_guard_host_allowed(const gw_core *core, const char *value)
{
	const char *h;
	size_t n;

	if (value == NULL) {
		/* HTTP/1.0 without Host: no browser sends that. */
		return true;
	}
	if (core->allow_any_host) {
		return true;
	}
	if (gw_host_split(value, strlen(value), &h, &n) != 0) {
		return false;
	}
	if (gw_guard_ip_literal(h, n) || gw_guard_name_is(h, n, "localhost") ||
	    (core->listen_host[0] != '\0' &&
	        gw_guard_name_is(h, n, core->listen_host))) {
		return true;
	}
	for (size_t i = 0; i < core->n_allow_hosts; i++) {
		if (gw_guard_name_is(h, n, core->allow_hosts[i])) {
			return true;
		}
	}
	return false;
}

/* gw_guard_same_origin: does origin equal "<scheme>://<Host header>"?
 * Host is already known to be one we answer to. */
static bool
gw_guard_same_origin(const gw_core *core, const char *origin,
    const char *host)
{
	const char *scheme = core->tls ? "https://" : "http://";
	size_t sl = strlen(scheme);

	if (host == NULL || strncasecmp(origin, scheme, sl) != 0) {
		return false;
	}
	return strcasecmp(origin + sl, host) == 0;
}

/* gw_guard_json_type: is the media type of ct application/json
 * (parameters such as charset allowed)? */
static bool
gw_guard_json_type(const char *ct)
{
	static const char json[] = "application/json";
	size_t n = sizeof(json) - 1;

	if (ct == NULL) {
		return false;
	}
	while (*ct == ' ' || *ct == '\t') {
		ct++;
	}
	if (strncasecmp(ct, json, n) != 0) {
		return false;
	}
	ct += n;
	while (*ct == ' ' || *ct == '\t') {
		ct++;
	}
	return *ct == '\0' || *ct == ';';
}

static bool
gw_guard_has_body(const gw_request *req)
{
	const char *cl = gw_request_header(req, "Content-Length");

	if (req->body_len > 0 ||
	    gw_request_header(req, "Transfer-Encoding") != NULL) {
		return true;
	}
	if (cl == NULL) {
		return false;
	}
	while (*cl == ' ' || *cl == '0') {
		cl++;
	}
	return *cl != '\0';
}

int
gw_guard_check(const gw_core *core, const gw_request *req, gw_route route,
    nrpc_status *st)
{
	const char *host = gw_request_header(req, "Host");
	const char *origin = gw_request_header(req, "Origin");
	gw_method m = gw_method_parse(req->method);
	bool unsafe = m != GW_M_GET && m != GW_M_HEAD && m != GW_M_OPTIONS;

	if (!gw_guard_host_allowed(core, host)) {
		return gw_status_set(st, 421, NRPC_PERMISSION_DENIED,
		    "HOST_NOT_ALLOWED", "Host",
		    "this server does not answer to Host '%.128s': it "
		    "answers to its listen address, localhost, IP "
		    "addresses and the names given by --allow-host",
		    host);
	}
	if (unsafe && origin != NULL &&
	    gw_cors_check(core, origin) != GW_CORS_ALLOWED &&
	    !gw_guard_same_origin(core, origin, host)) {
		return gw_status_set(st, 403, NRPC_PERMISSION_DENIED,
		    "ORIGIN_NOT_ALLOWED", "Origin",
		    "origin %.128s may not change data here: only this "
		    "server's own origin and those given by --cors-origin "
		    "may",
		    origin);
	}
	if (unsafe &&
	    (route == GW_ROUTE_RPC || route == GW_ROUTE_LOCK ||
	        route == GW_ROUTE_SESSION) &&
	    gw_guard_has_body(req) &&
	    !gw_guard_json_type(gw_request_header(req, "Content-Type"))) {
		const char *ct = gw_request_header(req, "Content-Type");

		return gw_status_set(st, 415, NRPC_INVALID_ARGUMENT,
		    "UNSUPPORTED_MEDIA_TYPE", "Content-Type",
		    "this route takes a JSON body: Content-Type must be "
		    "application/json, not '%.128s'",
		    ct != NULL ? ct : "(none)");
	}
	return 0;
}
