// Unit tests for the authentication side of DataSyncClient against a fake
// fetch: the Bearer option, signIn / signOut / whoami over /v1/session,
// errors carrying status and reason, onUnauthenticated, and watch() over
// long polls when a header token must travel.
// Run: node --test clients/js/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
	DataSyncClient, DataSyncError, UnauthenticatedError, PermissionDeniedError, decodeSession,
} from '../datasync.js';

const SECRET = 'dst_' + '0123456789abcdef'.repeat(4);

/**
 * @typedef {{url: URL, method: string, headers: Headers, body: string|null, init: RequestInit}} SeenRequest
 * @param {(req: SeenRequest, n: number) => Response | Promise<Response>} handler
 */
function fakeFetch(handler) {
	/** @type {SeenRequest[]} */
	const calls = [];
	/** @param {string} url @param {RequestInit} [init] */
	const f = async (url, init = {}) => {
		const body = typeof init.body === 'string' ? init.body : null;
		const req = { url: new URL(url), method: init.method ?? 'GET', headers: new Headers(init.headers), body, init };
		calls.push(req);
		return handler(req, calls.length);
	};
	return { fetch: /** @type {typeof fetch} */ (/** @type {unknown} */ (f)), calls };
}

/** @param {any} obj @param {number} status @param {Record<string,string>} [headers] */
function json(obj, status = 200, headers = {}) {
	return new Response(JSON.stringify(obj), { status, headers: { 'Content-Type': 'application/json', ...headers } });
}

/** @param {ReturnType<typeof fakeFetch>} ff @param {object} [opts] */
function client(ff, opts = {}) {
	return new DataSyncClient({ baseUrl: 'http://gw.test', fetch: ff.fetch, window: null, EventSource: null, ...opts });
}

const WHO = { authRequired: true, authenticated: true, token: { name: 'ci', grants: ['read:docs/', 'write:docs/'] } };

test('a token option sends Authorization: Bearer on every request', async () => {
	const ff = fakeFetch(() => json({ records: [], revision: '3' }));
	const c = client(ff, { token: SECRET });
	await c.list({ prefix: 'docs/' }).catch(() => {});
	assert.equal(ff.calls[0].headers.get('Authorization'), `Bearer ${SECRET}`);
	c.setToken(null);
	await c.list({ prefix: 'docs/' }).catch(() => {});
	assert.equal(ff.calls[1].headers.get('Authorization'), null);
	assert.throws(() => c.setToken('has space'), TypeError);
	assert.throws(() => c.setToken(''), TypeError);
});

test('without a token nothing is sent but the same-origin cookie', async () => {
	const ff = fakeFetch(() => json(WHO));
	const c = client(ff);
	await c.whoami();
	assert.equal(ff.calls[0].headers.get('Authorization'), null);
	assert.equal(ff.calls[0].init.credentials, 'same-origin');
});

test('signIn posts the token as JSON and returns who it is', async () => {
	const ff = fakeFetch(() => json(WHO, 200, { 'Set-Cookie': 'ds_session=x; HttpOnly' }));
	const c = client(ff);
	const who = await c.signIn(` ${SECRET} `);
	assert.equal(ff.calls[0].method, 'POST');
	assert.equal(ff.calls[0].url.pathname, '/v1/session');
	assert.equal(ff.calls[0].headers.get('Content-Type'), 'application/json');
	assert.deepEqual(JSON.parse(ff.calls[0].body ?? ''), { token: SECRET });
	assert.deepEqual(who, WHO);
	await assert.rejects(c.signIn(''), TypeError);
});

test('signIn with a refused token rejects with UnauthenticatedError, status and reason', async () => {
	let notified = 0;
	const ff = fakeFetch(() => json({ code: 'UNAUTHENTICATED', reason: 'TOKEN_UNKNOWN', message: 'unknown token' }, 401,
		{ 'WWW-Authenticate': 'Bearer realm="datasync", error="invalid_token"' }));
	const c = client(ff, { onUnauthenticated: () => { notified++; } });
	await assert.rejects(c.signIn(SECRET), (/** @type {any} */ e) => {
		assert.ok(e instanceof UnauthenticatedError);
		assert.ok(e instanceof DataSyncError);
		assert.equal(e.status, 401);
		assert.equal(e.reason, 'TOKEN_UNKNOWN');
		assert.equal(e.message, 'unknown token');
		return true;
	});
	assert.equal(notified, 0, 'a failed sign-in is not a lost session');
});

test('whoami: a session, none, and a revoked cookie', async () => {
	/** @type {Response[]} */
	const replies = [
		json(WHO),
		json({ authRequired: true, authenticated: false, token: null }),
		json({ code: 'UNAUTHENTICATED', reason: 'TOKEN_REVOKED', message: 'revoked' }, 401),
		json({ authRequired: false, authenticated: false, token: null }),
	];
	const ff = fakeFetch((req, n) => replies[n - 1]);
	const c = client(ff);
	assert.deepEqual(await c.whoami(), WHO);
	assert.deepEqual(await c.whoami(), { authRequired: true, authenticated: false, token: null });
	assert.deepEqual(await c.whoami(), { authRequired: true, authenticated: false, token: null });
	assert.deepEqual(await c.whoami(), { authRequired: false, authenticated: false, token: null });
	assert.ok(ff.calls.every((r) => r.method === 'GET' && r.url.pathname === '/v1/session'));
});

test('signOut deletes the session and forgets the token', async () => {
	const ff = fakeFetch(() => new Response(null, { status: 204 }));
	const c = client(ff, { token: SECRET });
	await c.signOut();
	assert.equal(ff.calls[0].method, 'DELETE');
	assert.equal(ff.calls[0].url.pathname, '/v1/session');
	assert.equal(c._token, null);
});

test('401 during use calls onUnauthenticated; 403 is PermissionDeniedError', async () => {
	/** @type {DataSyncError[]} */
	const seen = [];
	const replies = [
		json({ code: 'UNAUTHENTICATED', reason: 'TOKEN_REVOKED', message: 'token "ci" is revoked' }, 401),
		json({ code: 'PERMISSION_DENIED', reason: 'PERMISSION_DENIED',
			message: 'token "ci" has no write right on "docs/a" (its grants for prefix "docs/" are read)' }, 403),
		json({ code: 'RESOURCE_EXHAUSTED', reason: 'TOO_MANY_AUTH_FAILURES', message: 'slow down' }, 429,
			{ 'Retry-After': '7' }),
	];
	const ff = fakeFetch((req, n) => replies[n - 1]);
	const c = client(ff, { onUnauthenticated: (/** @type {DataSyncError} */ e) => { seen.push(e); } });
	await assert.rejects(c.get('docs/a'), UnauthenticatedError);
	assert.equal(seen.length, 1);
	assert.equal(seen[0].reason, 'TOKEN_REVOKED');
	await assert.rejects(c.put('docs/a', 'x', { ifMatch: '*' }), (/** @type {any} */ e) => {
		assert.ok(e instanceof PermissionDeniedError);
		assert.equal(e.status, 403);
		assert.match(e.message, /no write right on "docs\/a"/);
		return true;
	});
	await assert.rejects(c.get('docs/a'), (/** @type {any} */ e) => {
		assert.equal(e.status, 429);
		assert.equal(e.reason, 'TOO_MANY_AUTH_FAILURES');
		assert.equal(e.retryAfterMs, 7000);
		return true;
	});
	assert.equal(seen.length, 1, 'only 401s notify');
});

test('watch with a token polls (EventSource cannot send the header) and stops on 403', async () => {
	class FakeES {
		constructor() { throw new Error('EventSource must not be used with a header token'); }
	}
	const ff = fakeFetch(() => json({ code: 'PERMISSION_DENIED', reason: 'PERMISSION_DENIED', message: 'no read' }, 403));
	const c = new DataSyncClient({ baseUrl: 'http://gw.test', fetch: ff.fetch, window: null, token: SECRET,
		EventSource: /** @type {any} */ (FakeES) });
	/** @type {{fatal: boolean}[]} */
	const errs = [];
	const w = c.watch('', () => {}, { onError: (_e, info) => { errs.push(info); } });
	assert.equal(w.transport, 'poll');
	const why = await w.closed;
	assert.ok(why instanceof PermissionDeniedError);
	assert.equal(errs[0].fatal, true);
	assert.equal(ff.calls[0].url.pathname, '/v1/watch');
	assert.equal(ff.calls[0].headers.get('Authorization'), `Bearer ${SECRET}`);
});

test('decodeSession tolerates missing fields', () => {
	assert.deepEqual(decodeSession(null), { authRequired: false, authenticated: false, token: null });
	assert.deepEqual(decodeSession({ authenticated: true, token: { name: 'a', grants: ['admin', 3] } }),
		{ authRequired: false, authenticated: true, token: { name: 'a', grants: ['admin'] } });
});
