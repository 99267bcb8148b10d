/*
 * gw_auth.c - the gateway's side of authentication (DESIGN §11): where a
 * request's credential comes from, how it travels upstream, the browser
 * session cookie and the per-HTTP-peer failure limiter.
 *
 * The gateway is stateless and decides nothing about tokens: it forwards
 * the credential of every request as the RPC metadata "authorization"
 * ("Bearer <secret>") and datasyncd answers UNAUTHENTICATED or
 * PERMISSION_DENIED, which render as 401 and 403 like any other status.
 * What only the gateway can do is (1) turn the HttpOnly cookie a browser
 * sends into that metadata, so that EventSource and plain fetches of the
 * demo page authenticate without script ever seeing the secret, and (2)
 * count failures per HTTP peer: datasyncd sees every browser's calls
 * coming from the gateway's one inproc:// or loopback connection, which it
 * exempts from its own limiter, so without this one a guessing client
 * would never be slowed.
 *
 * Secrets are never formatted into a message or a log line here: an
 * error names the header or field, never its value.
 */
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "auth.h"
#include "ds_alloc.h"
#include "gw_int.h"

#define GW_BEARER "Bearer "

/* --- where the credential comes from --- */

static bool
gw_auth_ows(char c)
{
	return c == ' ' || c == '\t';
}

bool
gw_cookie_get(
    const char *header, const char *name, const char **value, size_t *len)
{
	size_t nlen = strlen(name);
	const char *p = header;

	if (header == NULL) {
		return false;
	}
	/* RFC 6265 §4.2.1: cookie-pair *( ";" SP cookie-pair ). Leniently:
	 * any whitespace, and ',' too, which is how two Cookie headers were
	 * joined (a cookie-octet is never ',' nor ';'). */
	while (*p != '\0') {
		const char *start, *end, *eq;

		while (*p == ';' || *p == ',' || gw_auth_ows(*p)) {
			p++;
		}
		start = p;
		while (*p != '\0' && *p != ';' && *p != ',') {
			p++;
		}
		end = p;
		while (end > start && gw_auth_ows(end[-1])) {
			end--;
		}
		eq = memchr(start, '=', (size_t) (end - start));
		if (eq != NULL) {
			const char *ne = eq;

			while (ne > start && gw_auth_ows(ne[-1])) {
				ne--;
			}
			if ((size_t) (ne - start) == nlen &&
			    memcmp(start, name, nlen) == 0) {
				const char *v = eq + 1;

				while (v < end && gw_auth_ows(*v)) {
					v++;
				}
				if (end - v >= 2 && v[0] == '"' &&
				    end[-1] == '"') {
					v++;
					end--;
				}
				*value = v;
				*len = (size_t) (end - v);
				return true;
			}
		}
	}
	return false;
}

void
gw_auth_cred(const gw_request *req, gw_cred *c)
{
	const char *h = gw_request_header(req, "Authorization");
	const char *v;
	size_t n;

	memset(c, 0, sizeof(*c));
	n = 0;
	if (h != NULL) {
		while (gw_auth_ows(*h)) {
			h++;
		}
		n = strlen(h);
		while (n > 0 && gw_auth_ows(h[n - 1])) {
			n--;
		}
	}
	/* An empty header is no credential: the cookie may still be. */
	if (n > 0) {
		c->from = GW_CRED_HEADER;
		if (n > 6 && strncasecmp(h, "Bearer", 6) == 0 &&
		    gw_auth_ows(h[6])) {
			v = h + 6;
			while (gw_auth_ows(*v)) {
				v++;
			}
			c->value = v;
			c->len = n - (size_t) (v - h);
			c->bearer = true;
		} else {
			c->value = h;
			c->len = n;
		}
		return;
	}
	if (gw_cookie_get(
	        gw_request_header(req, "Cookie"), GW_SESSION_COOKIE, &v, &n) &&
	    n > 0) {
		c->from = GW_CRED_COOKIE;
		c->value = v;
		c->len = n;
		c->bearer = true;
	}
}

int
gw_auth_metadata(const gw_cred *c, char **out, nrpc_status *st)
{
	size_t pre = c->bearer ? strlen(GW_BEARER) : 0;
	char *v;

	*out = NULL;
	if (c->from == GW_CRED_NONE) {
		return 0;
	}
	if (c->len > GW_MAX_AUTH_BYTES) {
		return gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
		    "TOO_LARGE",
		    c->from == GW_CRED_COOKIE ? "Cookie"
		    : c->from == GW_CRED_BODY ? "token"
		                              : "Authorization",
		    "the credential exceeds max_auth_bytes (%d); a token is "
		    "\"dst_\" and 64 hex digits",
		    GW_MAX_AUTH_BYTES);
	}
	if ((v = ds_alloc(pre + c->len + 1)) == NULL) {
		return gw_status_set(st, 500, NRPC_RESOURCE_EXHAUSTED,
		    "RESOURCE_EXHAUSTED", NULL, "out of memory");
	}
	memcpy(v, GW_BEARER, pre);
	memcpy(v + pre, c->value, c->len);
	v[pre + c->len] = '\0';
	*out = v;
	return 0;
}

/* --- 401s and cookies --- */

const char *
gw_auth_www_authenticate(bool had_credential)
{
	/* RFC 6750 §3.1: no error code when the request had none. */
	return had_credential
	           ? "Bearer realm=\"datasync\", error=\"invalid_token\""
	           : "Bearer realm=\"datasync\"";
}

/* gw_cookie_octets: may s[0..n) stand in a cookie value unquoted (RFC
 * 6265 cookie-octet)? A value that could not would let a sign-in's body
 * add attributes to Set-Cookie. */
static bool
gw_cookie_octets(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char) s[i];

		if (c <= 0x20 || c >= 0x7f || c == '"' || c == ',' ||
		    c == ';' || c == '\\') {
			return false;
		}
	}
	return n > 0;
}

char *
gw_auth_session_cookie(const char *secret, size_t len, bool tls)
{
	static const char attrs[] = "; Path=/; HttpOnly; SameSite=Strict";
	static const char clear[] = "; Max-Age=0";
	static const char secure[] = "; Secure";
	size_t n = strlen(GW_SESSION_COOKIE) + 1 + len + sizeof(attrs) +
	           sizeof(clear) + sizeof(secure);
	char *v;

	if (secret == NULL) {
		len = 0;
	}
	if ((v = ds_alloc(n)) == NULL) {
		return NULL;
	}
	v[0] = '\0';
	strcat(v, GW_SESSION_COOKIE "=");
	if (len > 0) {
		strncat(v, secret, len);
	}
	strcat(v, attrs);
	if (secret == NULL) {
		strcat(v, clear);
	}
	if (tls) {
		strcat(v, secure);
	}
	return v;
}

/* --- the limiter --- */

bool
gw_auth_blocked(const gw_core *core, const gw_plan *p, int64_t *retry_after_ms)
{
	*retry_after_ms = 0;
	return core->limiter != NULL && p->authorization != NULL &&
	       p->peer[0] != '\0' &&
	       auth_limiter_blocked(core->limiter, p->peer, retry_after_ms);
}

void
gw_auth_outcome(const gw_core *core, const gw_plan *p, const nrpc_status *st)
{
	/* A missing token (TOKEN_MISSING) guesses nothing: only a presented
	 * credential that was refused counts. Nor does a revoked one: it is
	 * a real token's secret (a parked watch ended by its revocation),
	 * not brute force. */
	if (core->limiter != NULL && p->authorization != NULL &&
	    p->peer[0] != '\0' && st->code == NRPC_UNAUTHENTICATED &&
	    strcmp(st->reason, "TOKEN_REVOKED") != 0) {
		(void) auth_limiter_fail(core->limiter, p->peer);
	}
}

void
gw_auth_decorate(const gw_core *core, gw_plan *p)
{
	gw_response *r = &p->resp;

	if (r->status != 401) {
		return;
	}
	gw_response_header(r, "WWW-Authenticate",
	    gw_auth_www_authenticate(p->authorization != NULL));
	/* A refused session cookie is cleared, so a revoked session goes
	 * away, but not by an event stream's 401: EventSource hides the
	 * status, so the client asks again with a long poll to learn why,
	 * and that poll must carry the same cookie to get the same reason
	 * (TOKEN_REVOKED, not TOKEN_MISSING); its 401 clears it. */
	if (p->cred_from == GW_CRED_COOKIE && !p->stream) {
		char *c = gw_auth_session_cookie(NULL, 0, core->tls);

		if (c == NULL) {
			r->broken = true;
			return;
		}
		gw_response_header(r, "Set-Cookie", c);
		ds_free(c);
	}
}

/* --- /v1/session --- */

/* gw_auth_body_token reads {"token": "..."} from a sign-in's body into
 * *out (owned; NULL when the body has no token). Returns 0, 400 for a
 * body that is not such an object, 500 out of memory. */
static int
gw_auth_body_token(const gw_request *req, char **out, nrpc_status *st)
{
	json_error_t jerr;
	json_t *o, *t;
	int http = 0;

	*out = NULL;
	if (req->body_len == 0) {
		return 0;
	}
	if ((o = json_loadb((const char *) req->body, req->body_len,
	         JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
		return gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
		    "MALFORMED_JSON", NULL,
		    "request body: %.128s (line %d, column %d)", jerr.text,
		    jerr.line, jerr.column);
	}
	t = json_object_get(o, "token");
	if (!json_is_object(o) || (t != NULL && !json_is_string(t))) {
		http = gw_status_set(st, 400, NRPC_INVALID_ARGUMENT,
		    "INVALID_ARGUMENT", "token",
		    "the body is {\"token\": \"dst_...\"}");
	} else if (t != NULL && json_string_length(t) > 0 &&
	           (*out = ds_memdup(json_string_value(t),
	                json_string_length(t))) == NULL) {
		http = gw_status_set(st, 500, NRPC_RESOURCE_EXHAUSTED,
		    "RESOURCE_EXHAUSTED", NULL, "out of memory");
	}
	json_decref(o);
	return http;
}

int
gw_auth_session_plan(
    const gw_core *core, const gw_request *req, gw_plan *p, nrpc_status *st)
{
	char *token = NULL;
	int http;

	if (p->method == GW_M_DELETE) {
		char *c = gw_auth_session_cookie(NULL, 0, core->tls);

		if (c == NULL) {
			return gw_status_set(st, 500, NRPC_RESOURCE_EXHAUSTED,
			    "RESOURCE_EXHAUSTED", NULL, "out of memory");
		}
		gw_response_reset(&p->resp, 204);
		gw_response_header(&p->resp, "Set-Cookie", c);
		gw_response_header(&p->resp, "Cache-Control", "no-store");
		ds_free(c);
		p->kind = GW_PLAN_RESPOND;
		return 0;
	}
	p->session =
	    p->method == GW_M_POST ? GW_SESSION_SIGNIN : GW_SESSION_GET;
	if (p->session == GW_SESSION_SIGNIN) {
		if ((http = gw_auth_body_token(req, &token, st)) != 0) {
			return http;
		}
		if (token != NULL) {
			gw_cred c = {GW_CRED_BODY, token, strlen(token), true};

			ds_free(p->authorization);
			p->authorization = NULL;
			http = gw_auth_metadata(&c, &p->authorization, st);
			ds_free(token);
			if (http != 0) {
				return http;
			}
			p->cred_from = GW_CRED_BODY;
		} else if (p->cred_from != GW_CRED_HEADER) {
			/* A sign-in rides on the token it is given, never on
			 * the session it would replace. */
			ds_free(p->authorization);
			p->authorization = NULL;
			p->cred_from = GW_CRED_NONE;
		}
		if (p->authorization == NULL) {
			return gw_status_set(st, 401, NRPC_UNAUTHENTICATED,
			    "TOKEN_MISSING", "token",
			    "sign in with a token: body {\"token\": "
			    "\"dst_...\"} or Authorization: Bearer");
		}
	}
	p->op = GW_OP_WHOAMI;
	if ((p->rpc = core->ops[GW_OP_WHOAMI]) == NULL) {
		return gw_status_set(st, 501, NRPC_UNIMPLEMENTED,
		    "UNIMPLEMENTED", NULL,
		    "the upstream service does not offer WhoAmI");
	}
	datasync__v1__who_am_irequest__init(&p->m.whoami);
	p->req = &p->m.whoami.base;
	p->kind = GW_PLAN_RPC;
	return 0;
}

/* gw_auth_session_json: {"authRequired","authenticated","token"}. */
static json_t *
gw_auth_session_json(const Datasync__V1__WhoAmIResponse *w)
{
	json_t *o = json_object(), *tok = NULL, *grants;
	bool ok = o != NULL;

	ok = ok && json_object_set_new(
	               o, "authRequired", json_boolean(w->auth_required)) == 0;
	ok = ok && json_object_set_new(o, "authenticated",
	               json_boolean(w->authenticated)) == 0;
	if (ok && w->authenticated && w->token != NULL) {
		ok = (tok = json_object()) != NULL &&
		     json_object_set_new(o, "token", tok) == 0;
		ok = ok && json_object_set_new(
		               tok, "name", json_string(w->token->name)) == 0;
		ok = ok && (grants = json_array()) != NULL &&
		     json_object_set_new(tok, "grants", grants) == 0;
		for (size_t i = 0; ok && i < w->token->n_grants; i++) {
			ok = json_array_append_new(grants,
			         json_string(w->token->grants[i])) == 0;
		}
	} else if (ok) {
		ok = json_object_set_new(o, "token", json_null()) == 0;
	}
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

void
gw_auth_session_render(
    const gw_core *core, gw_plan *p, const Datasync__V1__WhoAmIResponse *w)
{
	json_t *o;
	char *text;

	if (p->session == GW_SESSION_SIGNIN && !w->authenticated) {
		nrpc_status st;

		/* The server answered without checking the token: with
		 * authentication off there is no session to start. */
		memset(&st, 0, sizeof(st));
		(void) gw_status_set(&st, 401, NRPC_UNAUTHENTICATED,
		    w->auth_required ? "TOKEN_UNKNOWN" : "AUTH_DISABLED",
		    "token",
		    w->auth_required
		        ? "the server did not accept the token"
		        : "the server runs without authentication: there is "
		          "no session to sign in to");
		gw_render_error(core, &p->resp, 401, &st, NULL);
		nrpc_status_fini(&st);
		return;
	}
	gw_response_reset(&p->resp, 200);
	if ((o = gw_auth_session_json(w)) == NULL ||
	    (text = json_dumps(o, JSON_COMPACT)) == NULL) {
		json_decref(o);
		p->resp.broken = true;
		return;
	}
	json_decref(o);
	gw_response_header(&p->resp, "Content-Type", "application/json");
	gw_response_header(&p->resp, "Cache-Control", "no-store");
	{
		size_t n = strlen(text);
		char *body = ds_memdup(text, n);

		free(text); /* jansson's allocator */
		if (body == NULL) {
			p->resp.broken = true;
			return;
		}
		gw_response_body_take(&p->resp, body, n);
	}
	if (p->session == GW_SESSION_SIGNIN) {
		const size_t pre = strlen(GW_BEARER);
		const char *secret = "";
		size_t n = 0;
		char *c;

		/* Only a Bearer secret becomes a cookie: another scheme's
		 * header (which the server accepted only if it checks none)
		 * has nothing to keep. */
		if (strncmp(p->authorization, GW_BEARER, pre) == 0) {
			secret = p->authorization + pre;
			n = strlen(secret);
		}
		if (n == 0 || !gw_cookie_octets(secret, n)) {
			return; /* the server accepted it, a cookie cannot
			         * carry it: the caller keeps using its header
			         */
		}
		if ((c = gw_auth_session_cookie(secret, n, core->tls)) ==
		    NULL) {
			p->resp.broken = true;
			return;
		}
		gw_response_header(&p->resp, "Set-Cookie", c);
		/* ds_free after zeroing: the secret does not linger. */
		memset(c, 0, strlen(c));
		ds_free(c);
	}
}
