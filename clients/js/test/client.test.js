// Unit tests for DataSyncClient against a fake fetch that returns real
// Response objects: request building, header parsing, error decoding,
// updateWithRetry and the lock handle's background renewal / release.
// Run: node --test clients/js/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
	DataSyncClient, DataSyncError, ConflictError, LockedError, LockExpiredError,
	PreconditionRequiredError, NotFoundError, VersionCompactedError, TooLargeError,
	encodeKey, parseETag, parseInt64, parseRetryAfter, isJsonType,
} from '../datasync.js';

/**
 * @typedef {{url: URL, method: string, headers: Headers, body: string|null, init: RequestInit}} SeenRequest
 * @param {(req: SeenRequest, n: number) => Response | Promise<Response>} handler
 */
function fakeFetch(handler) {
	/** @type {SeenRequest[]} */
	const calls = [];
	/** @param {string} url @param {RequestInit} [init] */
	const f = async (url, init = {}) => {
		const body = init.body === undefined || init.body === null ? null
			: typeof init.body === 'string' ? init.body
				: new TextDecoder().decode(/** @type {Uint8Array} */ (init.body));
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

/** @param {string} s */
const b64 = (s) => Buffer.from(s, 'utf8').toString('base64');

/** @param {ReturnType<typeof fakeFetch>} ff @param {object} [opts] */
function client(ff, opts = {}) {
	return new DataSyncClient({ baseUrl: 'http://gw.test', author: 'tab-1', fetch: ff.fetch, window: null, ...opts });
}

function recordHeaders(extra = {}) {
	return {
		'Content-Type': 'application/json', ETag: '"7"', 'Record-Revision': '41',
		'Record-Updated-At': '1700000000123', 'Record-Updated-By': 'bob',
		'Record-Created-At': '1600000000000', ...extra,
	};
}

/* --- pure helpers --------------------------------------------------------- */

test('encodeKey percent-encodes each segment and keeps the slashes', () => {
	assert.equal(encodeKey('demo/ticket 1'), 'demo/ticket%201');
	assert.equal(encodeKey('a?b#c/%/ü'), 'a%3Fb%23c/%25/%C3%BC');
	assert.throws(() => encodeKey(''), TypeError);
});

test('encodeKey sends the slash before a last segment lock/unlock as %2F', () => {
	assert.equal(encodeKey('a/b/lock'), 'a/b%2Flock');
	assert.equal(encodeKey('a/unlock'), 'a%2Funlock');
	assert.equal(encodeKey('lock'), 'lock');
	assert.equal(encodeKey('a/locks'), 'a/locks');
});

test('parseETag reads strong and weak version ETags and nothing else', () => {
	assert.equal(parseETag('"12"'), 12);
	assert.equal(parseETag('W/"3"'), 3);
	assert.equal(parseETag('"abc"'), undefined);
	assert.equal(parseETag(null), undefined);
});

test('parseInt64 accepts proto3 JSON strings and refuses unsafe integers', () => {
	assert.equal(parseInt64('9007199254740991', 'v'), 9007199254740991);
	assert.equal(parseInt64(5, 'v'), 5);
	assert.equal(parseInt64(undefined, 'v'), undefined);
	assert.throws(() => parseInt64('9007199254740993', 'version'),
		(e) => e instanceof DataSyncError && e.reason === 'BAD_RESPONSE' && /version/.test(e.message));
	assert.throws(() => parseInt64('1.5', 'v'), DataSyncError);
});

test('parseRetryAfter reads seconds and HTTP dates as milliseconds', () => {
	assert.equal(parseRetryAfter('3'), 3000);
	assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4_000), 6000);
	assert.equal(parseRetryAfter(null), undefined);
});

test('isJsonType recognises JSON media types with parameters and +json', () => {
	assert.equal(isJsonType('application/json; charset=utf-8'), true);
	assert.equal(isJsonType('application/merge-patch+json'), true);
	assert.equal(isJsonType('text/plain'), false);
	assert.equal(isJsonType(''), false);
});

/* --- get ------------------------------------------------------------------ */

test('get parses the value as JSON and the record headers into numbers', async () => {
	const ff = fakeFetch(() => new Response('{"title":"t"}', {
		status: 200,
		headers: recordHeaders({ 'Lock-Owner': 'ann', 'Lock-Expires-At': '1700000030000', 'Lock-Fencing-Token': '9' }),
	}));
	const r = await client(ff).get('demo/ticket 1');
	assert.equal(ff.calls[0].url.pathname, '/v1/records/demo/ticket%201');
	assert.equal(ff.calls[0].method, 'GET');
	assert.deepEqual(r.value, { title: 't' });
	assert.deepEqual(r.json(), { title: 't' });
	assert.equal(r.text, '{"title":"t"}');
	assert.equal(r.version, 7);
	assert.equal(r.revision, 41);
	assert.equal(r.updatedAt, 1700000000123);
	assert.equal(r.createdAt, 1600000000000);
	assert.equal(r.updatedBy, 'bob');
	assert.equal(r.notModified, false);
	assert.deepEqual(r.lock, { owner: 'ann', expiresAt: 1700000030000, fencingToken: 9 });
});

test('get returns text for a non-JSON content type and lock null when unlocked', async () => {
	const ff = fakeFetch(() => new Response('hello ü', { headers: recordHeaders({ 'Content-Type': 'text/plain; charset=utf-8' }) }));
	const r = await client(ff).get('k');
	assert.equal(r.value, 'hello ü');
	assert.equal(r.lock, null);
	assert.deepEqual([...(r.bytes ?? [])].length, Buffer.byteLength('hello ü'));
	assert.throws(() => r.json(), SyntaxError);
});

test('get with ifNoneMatch sends the quoted version and reports a 304 as notModified', async () => {
	const ff = fakeFetch(() => new Response(null, { status: 304, headers: { ETag: '"7"' } }));
	const r = await client(ff).get('k', { ifNoneMatch: 7 });
	assert.equal(ff.calls[0].headers.get('If-None-Match'), '"7"');
	assert.equal(ff.calls[0].init.cache, 'no-store');
	assert.equal(r.notModified, true);
	assert.equal(r.version, 7);
	assert.equal(r.value, undefined);
	assert.equal(r.lock, undefined, 'a 304 without record headers says nothing about the lock');
});

test('get on a 304 that carries record headers reports the lock state', async () => {
	const ff = fakeFetch(() => new Response(null, { status: 304, headers: recordHeaders() }));
	const r = await client(ff).get('k', { ifNoneMatch: 7 });
	assert.equal(r.lock, null);
	const ff2 = fakeFetch(() => new Response(null, {
		status: 304, headers: recordHeaders({ 'Lock-Owner': 'x', 'Lock-Expires-At': '5', 'Lock-Fencing-Token': '2' }),
	}));
	const r2 = await client(ff2).get('k', { ifNoneMatch: 7 });
	assert.deepEqual(r2.lock, { owner: 'x', expiresAt: 5, fencingToken: 2 });
});

test('get of a historical version sends ?version=N', async () => {
	const ff = fakeFetch(() => new Response('{}', { headers: recordHeaders({ ETag: '"2"' }) }));
	const r = await client(ff).get('a/b', { version: 2 });
	assert.equal(ff.calls[0].url.pathname + ff.calls[0].url.search, '/v1/records/a/b?version=2');
	assert.equal(r.version, 2);
});

test('get of an absent record throws NotFoundError with the reason', async () => {
	const ff = fakeFetch(() => json({ code: 'NOT_FOUND', reason: 'NOT_FOUND', message: 'no record "k"' }, 404));
	await assert.rejects(client(ff).get('k'), (e) => {
		assert.ok(e instanceof NotFoundError);
		assert.equal(e.status, 404);
		assert.equal(e.code, 'NOT_FOUND');
		assert.equal(e.message, 'no record "k"');
		return true;
	});
});

test('get of a compacted version throws VersionCompactedError', async () => {
	const ff = fakeFetch(() => json({ code: 'OUT_OF_RANGE', reason: 'VERSION_COMPACTED', message: 'gone' }, 410));
	await assert.rejects(client(ff).get('k', { version: 1 }), VersionCompactedError);
});

test('a network failure becomes DataSyncError with status 0 and NETWORK_ERROR', async () => {
	const ff = fakeFetch(() => { throw new TypeError('Failed to fetch'); });
	await assert.rejects(client(ff).get('k'), (e) => e instanceof DataSyncError &&
		e.status === 0 && e.code === 'UNAVAILABLE' && e.reason === 'NETWORK_ERROR' && e.cause instanceof TypeError);
});

test('an error body that is not JSON still yields the status and a message', async () => {
	const ff = fakeFetch(() => new Response('bad gateway\nmore', { status: 502 }));
	await assert.rejects(client(ff).get('k'), (e) => e instanceof DataSyncError &&
		e.status === 502 && e.message === 'HTTP 502: bad gateway');
});

/* --- put / del ------------------------------------------------------------ */

test('put without a precondition is refused locally and sends nothing', async () => {
	const ff = fakeFetch(() => json({}, 200));
	await assert.rejects(client(ff).put('k', { a: 1 }), (e) => e instanceof PreconditionRequiredError &&
		e.reason === 'PRECONDITION_REQUIRED' && e.status === 0 && /ifMatch/.test(e.message));
	await assert.rejects(client(ff).del('k'), PreconditionRequiredError);
	assert.equal(ff.calls.length, 0);
});

test('put refuses both ifMatch and ifAbsent, and a malformed version', async () => {
	const ff = fakeFetch(() => json({}, 200));
	await assert.rejects(client(ff).put('k', 'v', { ifMatch: 1, ifAbsent: true }), TypeError);
	await assert.rejects(client(ff).put('k', 'v', { ifMatch: 0 }), TypeError);
	await assert.rejects(client(ff).put('k', 'v', { ifMatch: '"3"' }), TypeError);
	assert.equal(ff.calls.length, 0);
});

test('put sends an object as JSON with If-Match, Author, Lock-Token and Idempotency-Key', async () => {
	const ff = fakeFetch(() => json({
		key: 'k', contentType: 'application/json', version: '4', revision: '12',
		createdAtMs: '1600000000000', updatedAtMs: '1700000000000', updatedBy: 'tab-1',
	}, 200, { ETag: '"4"' }));
	const w = await client(ff).put('k', { title: 'x' }, { ifMatch: 3, lockToken: 'tok', idempotencyKey: 'id-1' });
	const req = ff.calls[0];
	assert.equal(req.method, 'PUT');
	assert.equal(req.headers.get('If-Match'), '"3"');
	assert.equal(req.headers.get('If-None-Match'), null);
	assert.equal(req.headers.get('Content-Type'), 'application/json');
	assert.equal(req.headers.get('Author'), 'tab-1');
	assert.equal(req.headers.get('Lock-Token'), 'tok');
	assert.equal(req.headers.get('Idempotency-Key'), 'id-1');
	assert.equal(req.body, '{"title":"x"}');
	assert.deepEqual(w, {
		key: 'k', version: 4, revision: 12, createdAt: 1600000000000, updatedAt: 1700000000000,
		updatedBy: 'tab-1', contentType: 'application/json', created: false, etag: '"4"',
	});
});

test('put with ifAbsent sends If-None-Match: * and reports a 201 as created', async () => {
	const ff = fakeFetch(() => json({ key: 'k', version: '1' }, 201, { ETag: '"1"' }));
	const w = await client(ff).put('k', 'text', { ifAbsent: true });
	assert.equal(ff.calls[0].headers.get('If-None-Match'), '*');
	assert.equal(ff.calls[0].headers.get('If-Match'), null);
	assert.equal(ff.calls[0].headers.get('Content-Type'), 'text/plain; charset=utf-8');
	assert.equal(w.created, true);
	assert.equal(w.version, 1);
});

test("put with ifMatch '*' sends If-Match: *", async () => {
	const ff = fakeFetch(() => json({ version: '9' }, 200, { ETag: '"9"' }));
	await client(ff).put('k', new Uint8Array([1, 2]), { ifMatch: '*' });
	assert.equal(ff.calls[0].headers.get('If-Match'), '*');
	assert.equal(ff.calls[0].headers.get('Content-Type'), 'application/octet-stream');
});

test('a 412 becomes ConflictError carrying the decoded current record', async () => {
	const ff = fakeFetch(() => json({
		code: 'ABORTED', reason: 'VERSION_CONFLICT', message: 'version is 5, not 3',
		current: {
			key: 'k', value: b64('{"title":"theirs"}'), contentType: 'application/json',
			version: '5', revision: '20', updatedAtMs: '1700000000500', updatedBy: 'bob',
		},
	}, 412, { ETag: '"5"' }));
	await assert.rejects(client(ff).put('k', { title: 'mine' }, { ifMatch: 3 }), (e) => {
		assert.ok(e instanceof ConflictError);
		assert.equal(e.status, 412);
		assert.equal(e.reason, 'VERSION_CONFLICT');
		assert.equal(e.message, 'version is 5, not 3');
		assert.ok(e.current);
		assert.equal(e.current.version, 5);
		assert.equal(e.current.updatedBy, 'bob');
		assert.equal(e.current.updatedAt, 1700000000500);
		assert.deepEqual(e.current.value, { title: 'theirs' });
		assert.equal(e.current.text, '{"title":"theirs"}');
		assert.equal(e.current.deleted, false);
		return true;
	});
});

test('a conflict with a deleted current record says so', async () => {
	const ff = fakeFetch(() => json({
		code: 'ABORTED', reason: 'VERSION_CONFLICT', message: 'deleted',
		current: { key: 'k', version: '6', deleted: true, updatedBy: 'cy' },
	}, 412));
	await assert.rejects(client(ff).put('k', 'x', { ifMatch: 5 }),
		(e) => e instanceof ConflictError && e.current !== null && e.current.deleted && e.current.version === 6);
});

test('a conflict on a key that does not exist carries current null', async () => {
	const ff = fakeFetch(() => json({ code: 'ABORTED', reason: 'VERSION_CONFLICT', message: 'the key does not exist',
		current: { key: 'k' } }, 412));
	await assert.rejects(client(ff).put('k', 'x', { ifMatch: '*' }), (e) => e instanceof ConflictError && e.current === null);
});

test('a 409 VERSION_CONFLICT (the /rpc/ route) is a ConflictError too', async () => {
	const ff = fakeFetch(() => json({ code: 'ABORTED', reason: 'VERSION_CONFLICT', message: 'm' }, 409));
	await assert.rejects(client(ff).rpc('Update', { key: 'k' }), ConflictError);
	assert.equal(ff.calls[0].url.pathname, '/rpc/datasync.v1.DataSync/Update');
});

test('a 423 becomes LockedError with the holder, its lease and Retry-After', async () => {
	const ff = fakeFetch(() => json({
		code: 'FAILED_PRECONDITION', reason: 'LOCKED', message: 'locked by ann',
		current: { key: 'k', version: '2', lock: { owner: 'ann', expiresAtMs: '1700000030000', fencingToken: '17' } },
	}, 423, { 'Retry-After': '4' }));
	await assert.rejects(client(ff).put('k', 'x', { ifMatch: 2 }), (e) => {
		assert.ok(e instanceof LockedError);
		assert.equal(e.owner, 'ann');
		assert.equal(e.expiresAt, 1700000030000);
		assert.equal(e.fencingToken, 17);
		assert.equal(e.retryAfterMs, 4000);
		assert.equal(e.status, 423);
		return true;
	});
});

test('a 428 from the server is PreconditionRequiredError, a 413 TooLargeError', async () => {
	const ff428 = fakeFetch(() => json({ code: 'FAILED_PRECONDITION', reason: 'PRECONDITION_REQUIRED', message: 'm' }, 428));
	await assert.rejects(client(ff428).rpc('Update', {}), (e) => e instanceof PreconditionRequiredError && e.status === 428);
	const ff413 = fakeFetch(() => json({ code: 'RESOURCE_EXHAUSTED', reason: 'VALUE_TOO_LARGE', message: 'value exceeds max_value_bytes (10)', field: 'value' }, 413));
	await assert.rejects(client(ff413).put('k', 'x'.repeat(20), { ifMatch: 1 }),
		(e) => e instanceof TooLargeError && e.field === 'value' && /max_value_bytes/.test(e.message));
});

test('LOCK_EXPIRED is a LockExpiredError whatever the status', async () => {
	const ff = fakeFetch(() => json({ code: 'FAILED_PRECONDITION', reason: 'LOCK_EXPIRED', message: 'lease ran out' }, 412));
	await assert.rejects(client(ff).put('k', 'x', { ifMatch: 1, lockToken: 't' }), LockExpiredError);
});

test('del sends the precondition and returns the tombstone version from the ETag', async () => {
	const ff = fakeFetch(() => new Response(null, { status: 204, headers: { ETag: '"8"' } }));
	const r = await client(ff).del('a b', { ifMatch: 7 });
	assert.equal(ff.calls[0].method, 'DELETE');
	assert.equal(ff.calls[0].url.pathname, '/v1/records/a%20b');
	assert.equal(ff.calls[0].headers.get('If-Match'), '"7"');
	assert.deepEqual(r, { version: 8 });
});

test('an author travels percent-encoded and names in headers are decoded', async () => {
	const ff = fakeFetch(() => new Response('v', { status: 200, headers: {
		ETag: '"3"', 'Content-Type': 'text/plain', 'Record-Updated-By': 'Zo%C3%AB',
		'Lock-Owner': 'Bj%C3%B6rn', 'Lock-Expires-At': '99', 'Lock-Fencing-Token': '4' } }));
	const c = client(ff, { author: 'Zoë' });
	await c.put('k', 'v', { ifMatch: 2 });
	assert.equal(ff.calls[0].headers.get('Author'), 'Zo%C3%AB');
	const r = await c.get('k');
	assert.equal(r.updatedBy, 'Zoë');
	assert.equal(r.lock.owner, 'Björn');
});

test('an author with control characters is refused with a clear error', () => {
	const ff = fakeFetch(() => json({}));
	assert.throws(() => client(ff, { author: 'a\nb' }), /author must be text/);
});

test('list decodes records and the page token', async () => {
	const ff = fakeFetch(() => json({
		records: [{ key: 'a/1', version: '2', revision: '3', lock: { owner: 'o', expiresAtMs: '10', fencingToken: '1' } }],
		nextPageToken: 'p2', revision: '30',
	}));
	const r = await client(ff).list({ prefix: 'a/', pageSize: 1 });
	assert.equal(ff.calls[0].url.search, '?prefix=a%2F&pageSize=1');
	assert.equal(r.records[0].key, 'a/1');
	assert.equal(r.records[0].version, 2);
	assert.deepEqual(r.records[0].lock, { owner: 'o', expiresAt: 10, fencingToken: 1 });
	assert.equal(r.nextPageToken, 'p2');
	assert.equal(r.revision, 30);
});

/* --- updateWithRetry ------------------------------------------------------ */

test('updateWithRetry retries on the record the conflict carries, without another read', async () => {
	let stored = { n: 10 };
	let version = 3;
	const ff = fakeFetch((req, n) => {
		if (req.method === 'GET') {
			return new Response(JSON.stringify({ n: 1 }), { headers: recordHeaders({ ETag: '"1"' }) });
		}
		if (req.headers.get('If-Match') !== `"${version}"`) {
			return json({
				code: 'ABORTED', reason: 'VERSION_CONFLICT', message: 'stale',
				current: { key: 'k', value: b64(JSON.stringify(stored)), contentType: 'application/json', version: String(version) },
			}, 412);
		}
		stored = JSON.parse(req.body ?? '');
		version += 1;
		return json({ key: 'k', version: String(version) }, 200, { ETag: `"${version}"` });
	});
	/** @type {any[]} */
	const seen = [];
	const w = await client(ff).updateWithRetry('k', (v) => { seen.push(v); return { n: v.n + 1 }; });
	assert.deepEqual(seen, [{ n: 1 }, { n: 10 }]);
	assert.deepEqual(stored, { n: 11 });
	assert.equal(w?.version, 4);
	assert.deepEqual(ff.calls.map((c) => c.method), ['GET', 'PUT', 'PUT']);
});

test('updateWithRetry gives up after maxAttempts conflicts with the last ConflictError', async () => {
	const ff = fakeFetch((req) => {
		if (req.method === 'GET') {
			return new Response('{"n":0}', { headers: recordHeaders({ ETag: '"1"' }) });
		}
		return json({ code: 'ABORTED', reason: 'VERSION_CONFLICT', message: 'stale',
			current: { key: 'k', value: b64('{"n":0}'), contentType: 'application/json', version: '2' } }, 412);
	});
	await assert.rejects(client(ff).updateWithRetry('k', (v) => ({ n: v.n + 1 }), { maxAttempts: 3 }), ConflictError);
	assert.equal(ff.calls.filter((c) => c.method === 'PUT').length, 3);
});

test('updateWithRetry creates an absent record with If-None-Match: *', async () => {
	const ff = fakeFetch((req) => req.method === 'GET'
		? json({ code: 'NOT_FOUND', reason: 'NOT_FOUND', message: 'absent' }, 404)
		: json({ key: 'k', version: '1' }, 201, { ETag: '"1"' }));
	const w = await client(ff).updateWithRetry('k', (v, rec) => {
		assert.equal(v, undefined);
		assert.equal(rec, null);
		return { n: 1 };
	});
	assert.equal(ff.calls[1].headers.get('If-None-Match'), '*');
	assert.equal(w?.created, true);
});

test('updateWithRetry writes nothing when fn returns undefined', async () => {
	const ff = fakeFetch(() => new Response('{"n":1}', { headers: recordHeaders() }));
	assert.equal(await client(ff).updateWithRetry('k', () => undefined), undefined);
	assert.deepEqual(ff.calls.map((c) => c.method), ['GET']);
});

test('updateWithRetry does not retry a LockedError', async () => {
	const ff = fakeFetch((req) => req.method === 'GET'
		? new Response('{"n":1}', { headers: recordHeaders() })
		: json({ code: 'FAILED_PRECONDITION', reason: 'LOCKED', message: 'locked' }, 423));
	await assert.rejects(client(ff).updateWithRetry('k', (v) => v), LockedError);
	assert.equal(ff.calls.length, 2);
});

/* --- locks ---------------------------------------------------------------- */

/** @param {string} token @param {number} fencing @param {boolean} renewed */
function lockReply(token, fencing, renewed = false) {
	return json({
		lockToken: token, renewed, version: '3',
		lock: { owner: 'tab-1', expiresAtMs: String(Date.now() + 900), fencingToken: String(fencing) },
	}, 200, { 'Lock-Token': token });
}

test('lock sends owner and ttlMs and returns a handle with the lease', async () => {
	const ff = fakeFetch(() => lockReply('tok-1', 5));
	const h = await client(ff).lock('k', { ttlMs: 30000, autoRenew: false });
	assert.equal(ff.calls[0].method, 'POST');
	assert.equal(ff.calls[0].url.pathname, '/v1/records/k/lock');
	assert.deepEqual(JSON.parse(ff.calls[0].body ?? ''), { owner: 'tab-1', ttlMs: 30000 });
	assert.equal(ff.calls[0].headers.get('Lock-Token'), null);
	assert.equal(h.token, 'tok-1');
	assert.equal(h.fencingToken, 5);
	assert.equal(h.version, 3);
	assert.equal(h.held, true);
});

test('lock held by another throws LockedError naming the holder', async () => {
	const ff = fakeFetch(() => json({ code: 'FAILED_PRECONDITION', reason: 'LOCKED', message: 'held',
		current: { key: 'k', version: '1', lock: { owner: 'ann', expiresAtMs: '99', fencingToken: '4' } } }, 423));
	await assert.rejects(client(ff).lock('k'), (e) => e instanceof LockedError && e.owner === 'ann' && e.expiresAt === 99);
});

test('a lock handle renews in the background at ttl/3 with its token', async () => {
	const ff = fakeFetch((req, n) => lockReply('tok-1', 5, n > 1));
	/** @type {number[]} */
	const renewedAt = [];
	const start = Date.now();
	const twoRenewals = new Promise((resolve) => {
		void client(ff).lock('k', {
			ttlMs: 900,
			onRenew: (h) => { renewedAt.push(Date.now() - start); if (renewedAt.length === 2) { resolve(h); } },
		});
	});
	const h = /** @type {import('../datasync.js').LockHandle} */ (await twoRenewals);
	await h.release();
	const renewals = ff.calls.filter((c) => c.method === 'POST');
	assert.equal(renewals.length, 3);
	assert.equal(renewals[1].headers.get('Lock-Token'), 'tok-1');
	assert.ok(renewedAt[0] >= 290, `first renewal after ~300 ms, was ${renewedAt[0]}`);
	assert.equal(ff.calls.at(-1)?.method, 'DELETE');
	assert.equal(ff.calls.at(-1)?.headers.get('Lock-Token'), 'tok-1');
});

test('a lock handle stops and reports when another holder took the lock', async () => {
	const ff = fakeFetch((req, n) => n === 1 ? lockReply('tok-1', 5)
		: json({ code: 'FAILED_PRECONDITION', reason: 'LOCKED', message: 'held by bob',
			current: { key: 'k', version: '3', lock: { owner: 'bob', expiresAtMs: '1', fencingToken: '6' } } }, 423));
	/** @type {unknown[]} */
	const lost = [];
	const h = await client(ff).lock('k', { ttlMs: 900, onLost: (e) => lost.push(e) });
	const err = await h.closed;
	assert.ok(err instanceof LockedError);
	assert.equal(err.owner, 'bob');
	assert.deepEqual(lost, [err]);
	assert.equal(h.state, 'lost');
	assert.equal(h.held, false);
	assert.equal(ff.calls.length, 2, 'no renewal after the loss');
	await h.release(); // idempotent after a loss, sends nothing
	assert.equal(ff.calls.length, 2);
});

test('a lock handle retries a transient renewal failure and keeps the lease', async () => {
	const ff = fakeFetch((req, n) => {
		if (n === 2) {
			throw new TypeError('connection reset');
		}
		return lockReply('tok-1', 5, n > 1);
	});
	const h = await new Promise((resolve, reject) => {
		void client(ff).lock('k', { ttlMs: 900, onRenew: resolve, onLost: reject });
	});
	assert.equal(/** @type {any} */ (h).held, true);
	assert.equal(ff.calls.length, 3);
	await /** @type {any} */ (h).release();
});

test('a lock handle reports LockExpiredError when no renewal gets through before the lease ends', async () => {
	const ff = fakeFetch((req, n) => {
		if (n > 1) {
			return json({ code: 'UNAVAILABLE', reason: '', message: 'busy' }, 503);
		}
		return lockReply('tok-1', 5);
	});
	const h = await client(ff).lock('k', { ttlMs: 900 });
	const err = await h.closed;
	assert.ok(err instanceof LockExpiredError);
	assert.equal(err.reason, 'LOCK_EXPIRED');
	assert.ok(ff.calls.length >= 3, 'it retried before giving up');
});

test('a renewal that yields a fresh lease (renewed false) counts as a loss and gives it back', async () => {
	const ff = fakeFetch((req, n) => {
		if (req.method === 'DELETE') {
			return new Response(null, { status: 204 });
		}
		return n === 1 ? lockReply('tok-1', 5) : lockReply('tok-2', 8, false);
	});
	const h = await client(ff).lock('k', { ttlMs: 900 });
	const err = await h.closed;
	assert.ok(err instanceof LockExpiredError);
	await new Promise((r) => setImmediate(r));
	const del = ff.calls.find((c) => c.method === 'DELETE');
	assert.equal(del?.headers.get('Lock-Token'), 'tok-2');
});

test('pagehide releases the lock with a keepalive POST to /unlock carrying the token', async () => {
	const win = new EventTarget();
	const ff = fakeFetch((req) => req.method === 'POST' && req.url.pathname.endsWith('/unlock')
		? new Response(null, { status: 204 }) : lockReply('tok-1', 5));
	const h = await client(ff, { window: win }).lock('a/b c', { ttlMs: 30000 });
	win.dispatchEvent(new Event('pagehide'));
	assert.equal(await h.closed, null);
	assert.equal(h.state, 'released');
	const u = ff.calls[1];
	assert.equal(u.url.pathname, '/v1/records/a/b%20c/unlock');
	assert.equal(u.method, 'POST');
	assert.equal(u.init.keepalive, true);
	assert.deepEqual(JSON.parse(u.body ?? ''), { lockToken: 'tok-1' });
	win.dispatchEvent(new Event('pagehide'));
	assert.equal(ff.calls.length, 2, 'a second pagehide sends nothing');
});

test('release is quiet when the server no longer knows the lease', async () => {
	const ff = fakeFetch((req) => req.method === 'DELETE'
		? json({ code: 'FAILED_PRECONDITION', reason: 'NOT_LOCKED', message: 'nothing held' }, 412)
		: lockReply('tok-1', 5));
	const h = await client(ff).lock('k', { autoRenew: false });
	await h.release();
	assert.equal(h.state, 'released');
	assert.equal(await h.closed, null);
});

test('unlock with a wrong token surfaces LOCK_TOKEN_MISMATCH', async () => {
	const ff = fakeFetch(() => json({ code: 'PERMISSION_DENIED', reason: 'LOCK_TOKEN_MISMATCH', message: 'not yours' }, 403));
	await assert.rejects(client(ff).unlock('k', 'nope'),
		(e) => e instanceof DataSyncError && e.status === 403 && e.reason === 'LOCK_TOKEN_MISMATCH');
});
