// datasync.js itself in headless Chromium against a real datasyncd: the
// module is imported from /datasync.js as a web app would, and each test
// runs a script in the page. This checks the module and the gateway's
// HTTP contract (ETag, Record-* and Lock-* headers, 412/423/428/413,
// history, keys with '/') together, as a browser sees them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startDaemon, launchBrowser } from './lib/harness.js';

/** @type {import('./lib/harness.js').Daemon} */
let daemon;
/** @type {import('playwright-core').Browser} */
let browser;
/** @type {import('playwright-core').Page} */
let page;
/** @type {string[]} */
const problems = [];

const MAX_VALUE = 4096;

before(async () => {
	daemon = await startDaemon(['--max-value-bytes', String(MAX_VALUE)]);
	browser = await launchBrowser();
	const context = await browser.newContext();
	page = await context.newPage();
	page.on('pageerror', (e) => problems.push(e.message));
	// Any same-origin page will do; the demo is what the gateway serves.
	await page.goto(`${daemon.url}/`);
	await page.evaluate(async () => {
		const m = await import('/datasync.js');
		/** @type {any} */ (window).ds = m;
	});
});

after(async () => {
	await browser?.close();
	const r = await daemon?.stop();
	assert.deepEqual(problems, []);
	assert.deepEqual(r, { code: 0, signal: null }, `datasyncd exits 0 on SIGTERM; its log:\n${await daemon?.log().catch(() => '')}`);
});

/**
 * inPage runs fn(ds, arg) in the page, where ds is the imported module.
 * Errors come back as {error: {name, status, reason, ...}} so assertions
 * can look at their fields.
 * @template T
 * @param {(ds: typeof import('../../clients/js/datasync.js'), arg: any) => Promise<T>} fn
 * @param {any} [arg]
 * @returns {Promise<any>}
 */
function inPage(fn, arg) {
	return page.evaluate(async ([src, a]) => {
		const ds = /** @type {any} */ (window).ds;
		// eslint-disable-next-line no-new-func
		const f = new Function(`return (${src})`)();
		try {
			return await f(ds, a);
		} catch (e) {
			const err = /** @type {any} */ (e);
			return {
				error: {
					name: err.name, message: err.message, status: err.status, code: err.code, reason: err.reason,
					owner: err.owner, expiresAt: err.expiresAt, fencingToken: err.fencingToken,
					retryAfterMs: err.retryAfterMs, field: err.field,
					current: err.current ? {
						version: err.current.version, value: err.current.value, text: err.current.text,
						updatedBy: err.current.updatedBy, updatedAt: err.current.updatedAt, deleted: err.current.deleted,
					} : err.current,
				},
			};
		}
	}, [fn.toString(), arg]);
}

/** A plain view of a RecordView (functions and bytes dropped). */
const plain = `(r) => ({ key: r.key, notModified: r.notModified, version: r.version, revision: r.revision,
	createdAt: r.createdAt, updatedAt: r.updatedAt, updatedBy: r.updatedBy, contentType: r.contentType,
	lock: r.lock, value: r.value, text: r.text, etag: r.etag })`;

test('put creates with If-None-Match, get reads value, version and record headers', async () => {
	const t0 = Date.now();
	const r = await inPage(async (ds, plainSrc) => {
		const c = new ds.DataSyncClient({ author: 'alice' });
		const w = await c.put('api/basic', { title: 't', n: 1 }, { ifAbsent: true });
		const g = await c.get('api/basic');
		return { w, g: new Function(`return ${plainSrc}`)()(g) };
	}, plain);
	assert.equal(r.error, undefined, JSON.stringify(r.error));
	assert.equal(r.w.created, true);
	assert.equal(r.w.version, 1);
	assert.equal(r.w.key, 'api/basic');
	assert.equal(r.w.updatedBy, 'alice');
	assert.equal(typeof r.w.revision, 'number');
	assert.deepEqual(r.g.value, { title: 't', n: 1 });
	assert.equal(r.g.version, 1);
	assert.equal(r.g.etag, '"1"');
	assert.equal(r.g.updatedBy, 'alice');
	assert.equal(r.g.revision, r.w.revision);
	assert.match(r.g.contentType, /^application\/json/);
	assert.ok(r.g.updatedAt >= t0 - 5000 && r.g.updatedAt <= Date.now() + 5000, `updatedAt ${r.g.updatedAt} is ms since the epoch`);
	assert.ok(r.g.createdAt >= t0 - 5000, 'createdAt is ms since the epoch');
	assert.equal(r.g.lock, null);
});

test('a text value round-trips as text with its content type', async () => {
	const r = await inPage(async (ds) => {
		const c = new ds.DataSyncClient({ author: 'alice' });
		await c.put('api/text', 'héllo\nwörld', { ifAbsent: true, contentType: 'text/plain; charset=utf-8' });
		const g = await c.get('api/text');
		return { value: g.value, contentType: g.contentType };
	});
	assert.deepEqual(r, { value: 'héllo\nwörld', contentType: 'text/plain; charset=utf-8' });
});

test('get with ifNoneMatch of the current version is a 304 (notModified)', async () => {
	const r = await inPage(async (ds, plainSrc) => {
		const c = new ds.DataSyncClient({ author: 'alice' });
		await c.put('api/etag', { a: 1 }, { ifAbsent: true });
		const same = await c.get('api/etag', { ifNoneMatch: 1 });
		await c.put('api/etag', { a: 2 }, { ifMatch: 1 });
		const changed = await c.get('api/etag', { ifNoneMatch: 1 });
		const p = new Function(`return ${plainSrc}`)();
		return { same: p(same), changed: p(changed) };
	}, plain);
	assert.equal(r.same.notModified, true);
	assert.equal(r.same.version, 1);
	assert.equal(r.same.value, undefined);
	assert.equal(r.changed.notModified, false);
	assert.equal(r.changed.version, 2);
	assert.deepEqual(r.changed.value, { a: 2 });
});

test('a stale If-Match is a ConflictError carrying the current record', async () => {
	const r = await inPage(async (ds) => {
		const a = new ds.DataSyncClient({ author: 'alice' });
		const b = new ds.DataSyncClient({ author: 'bob' });
		await a.put('api/conflict', { title: 'v1' }, { ifAbsent: true });
		await b.put('api/conflict', { title: 'bob was here' }, { ifMatch: 1 });
		await a.put('api/conflict', { title: 'alice' }, { ifMatch: 1 });
	});
	assert.ok(r.error, 'the stale write failed');
	assert.equal(r.error.name, 'ConflictError');
	assert.equal(r.error.status, 412);
	assert.equal(r.error.reason, 'VERSION_CONFLICT');
	assert.equal(r.error.current.version, 2);
	assert.deepEqual(r.error.current.value, { title: 'bob was here' });
	assert.equal(r.error.current.updatedBy, 'bob');
	assert.ok(r.error.current.updatedAt > 0);
});

test('create-only on an existing record is a ConflictError', async () => {
	const r = await inPage(async (ds) => {
		const c = new ds.DataSyncClient({ author: 'alice' });
		await c.put('api/create-twice', 'one', { ifAbsent: true });
		await c.put('api/create-twice', 'two', { ifAbsent: true });
	});
	assert.equal(r.error?.name, 'ConflictError');
	assert.equal(r.error.status, 412);
	assert.equal(r.error.current.version, 1);
	assert.equal(r.error.current.value, 'one');
});

test('a write without a precondition: refused locally, and the server answers 428', async () => {
	const r = await inPage(async (ds) => {
		const c = new ds.DataSyncClient({ author: 'alice' });
		await c.put('api/noprecond', 'x', { ifAbsent: true });
		/** @type {any} */
		const out = {};
		try {
			await c.put('api/noprecond', 'y');
		} catch (e) {
			out.local = { name: /** @type {any} */ (e).name, status: /** @type {any} */ (e).status };
		}
		const res = await fetch('/v1/records/api/noprecond', { method: 'PUT', body: 'y', headers: { 'Content-Type': 'text/plain' } });
		const err = await ds.errorFromResponse(res);
		out.server = { name: err.name, status: err.status, reason: err.reason, message: err.message };
		out.value = (await c.get('api/noprecond')).value;
		return out;
	});
	assert.deepEqual(r.local, { name: 'PreconditionRequiredError', status: 0 });
	assert.equal(r.server.name, 'PreconditionRequiredError');
	assert.equal(r.server.status, 428);
	assert.equal(r.server.reason, 'PRECONDITION_REQUIRED');
	assert.ok(r.server.message.length > 0);
	assert.equal(r.value, 'x', 'nothing was written');
});

test("If-Match: * overwrites any version but not an absent record", async () => {
	const r = await inPage(async (ds) => {
		const c = new ds.DataSyncClient({ author: 'alice' });
		await c.put('api/star', 'a', { ifAbsent: true });
		await c.put('api/star', 'b', { ifMatch: 1 });
		const w = await c.put('api/star', 'c', { ifMatch: '*' });
		let absent = null;
		try {
			await c.put('api/star-absent', 'x', { ifMatch: '*' });
		} catch (e) {
			absent = { name: /** @type {any} */ (e).name, status: /** @type {any} */ (e).status };
		}
		return { version: w.version, absent };
	});
	assert.equal(r.version, 3);
	assert.ok(r.absent, 'If-Match: * on an absent record fails');
	assert.ok([404, 412].includes(r.absent.status), `status ${r.absent.status}`);
});

test('a historical version is readable with ?version=N', async () => {
	const r = await inPage(async (ds) => {
		const c = new ds.DataSyncClient({ author: 'alice' });
		await c.put('api/history', { v: 1 }, { ifAbsent: true });
		await c.put('api/history', { v: 2 }, { ifMatch: 1 });
		await c.put('api/history', { v: 3 }, { ifMatch: 2 });
		const old = await c.get('api/history', { version: 1 });
		let missing = null;
		try {
			await c.get('api/history', { version: 99 });
		} catch (e) {
			missing = { name: /** @type {any} */ (e).name, status: /** @type {any} */ (e).status };
		}
		return { value: old.value, version: old.version, missing };
	});
	assert.deepEqual(r.value, { v: 1 });
	assert.equal(r.version, 1);
	assert.ok(r.missing && ['NotFoundError', 'VersionCompactedError', 'DataSyncError'].includes(r.missing.name),
		`a version that never existed fails: ${JSON.stringify(r.missing)}`);
});

test('keys with slashes, spaces and non-ASCII characters round-trip', async () => {
	const key = 'api/with space/ü?#&%/end';
	const r = await inPage(async (ds, k) => {
		const c = new ds.DataSyncClient({ author: 'alice' });
		const w = await c.put(k, { k }, { ifAbsent: true });
		const g = await c.get(k);
		const l = await c.list({ prefix: 'api/with space/' });
		return { wkey: w.key, value: g.value, listed: l.records.map((x) => x.key) };
	}, key);
	assert.equal(r.error, undefined, JSON.stringify(r.error));
	assert.equal(r.wkey, key);
	assert.deepEqual(r.value, { k: key });
	assert.deepEqual(r.listed, [key]);
});

test('a key whose last segment is "lock" is a record, not the lock route', async () => {
	const r = await inPage(async (ds) => {
		const c = new ds.DataSyncClient({ author: 'alice' });
		const w = await c.put('api/door/lock', { state: 'closed' }, { ifAbsent: true });
		const g = await c.get('api/door/lock');
		const h = await c.lock('api/door/lock', { ttlMs: 5000, autoRenew: false });
		const locked = (await c.get('api/door/lock')).lock;
		await h.release();
		let parent = null;
		try {
			await c.get('api/door');
		} catch (e) {
			parent = /** @type {any} */ (e).name;
		}
		await c.del('api/door/lock', { ifMatch: 1 });
		return { created: w.created, value: g.value, owner: locked?.owner, parent };
	});
	assert.equal(r.error, undefined, JSON.stringify(r.error));
	assert.deepEqual(r, { created: true, value: { state: 'closed' }, owner: 'alice', parent: 'NotFoundError' });
});

test('get of an absent key is NotFoundError; del removes a record under If-Match', async () => {
	const r = await inPage(async (ds) => {
		const c = new ds.DataSyncClient({ author: 'alice' });
		/** @type {any} */
		const out = {};
		try {
			await c.get('api/never');
		} catch (e) {
			out.absent = { name: /** @type {any} */ (e).name, status: /** @type {any} */ (e).status, reason: /** @type {any} */ (e).reason };
		}
		await c.put('api/del', 'x', { ifAbsent: true });
		try {
			await c.del('api/del', { ifMatch: 7 });
		} catch (e) {
			out.stale = /** @type {any} */ (e).name;
		}
		out.del = await c.del('api/del', { ifMatch: 1 });
		try {
			await c.get('api/del');
		} catch (e) {
			out.after = /** @type {any} */ (e).name;
		}
		// Versions are never reused: a re-create continues after the tombstone.
		out.recreated = (await c.put('api/del', 'again', { ifAbsent: true })).version;
		return out;
	});
	assert.deepEqual(r.absent, { name: 'NotFoundError', status: 404, reason: 'NOT_FOUND' });
	assert.equal(r.stale, 'ConflictError');
	assert.equal(r.after, 'NotFoundError');
	assert.ok(r.recreated > 1, `a re-created record does not start at version 1 again (got ${r.recreated})`);
});

test('a value over the limit is a TooLargeError (413)', async () => {
	const r = await inPage(async (ds, max) => {
		const c = new ds.DataSyncClient({ author: 'alice' });
		await c.put('api/big', 'x'.repeat(max), { ifAbsent: true });
		await c.put('api/big', 'x'.repeat(max + 1), { ifMatch: 1 });
	}, MAX_VALUE);
	assert.equal(r.error?.name, 'TooLargeError', JSON.stringify(r.error));
	assert.equal(r.error.status, 413);
});

test('a lock makes other writers fail with LockedError naming the holder; the holder writes with its token', async () => {
	const r = await inPage(async (ds) => {
		const a = new ds.DataSyncClient({ author: 'alice' });
		const b = new ds.DataSyncClient({ author: 'bob' });
		await a.put('api/locked-record', { n: 0 }, { ifAbsent: true });
		const h = await a.lock('api/locked-record', { owner: 'alice', ttlMs: 10000 });
		/** @type {any} */
		const out = { token: typeof h.token, fencingToken: h.fencingToken, expiresAt: h.expiresAt, version: h.version };
		const g = await b.get('api/locked-record');
		out.seen = g.lock;
		try {
			await b.put('api/locked-record', { n: 1 }, { ifMatch: 1 });
		} catch (e) {
			const err = /** @type {any} */ (e);
			out.write = { name: err.name, status: err.status, owner: err.owner, expiresAt: err.expiresAt, fencingToken: err.fencingToken, retryAfterMs: err.retryAfterMs };
		}
		try {
			await b.lock('api/locked-record', { owner: 'bob' });
		} catch (e) {
			const err = /** @type {any} */ (e);
			out.relock = { name: err.name, status: err.status, owner: err.owner };
		}
		out.holderWrite = (await a.put('api/locked-record', { n: 2 }, { ifMatch: 1, lockToken: h.token })).version;
		try {
			await a.put('api/locked-record', { n: 3 }, { ifMatch: 2 });
		} catch (e) {
			out.holderWithoutToken = /** @type {any} */ (e).name;
		}
		await h.renew();
		out.renewedFencing = h.fencingToken;
		await h.release();
		out.afterRelease = (await b.get('api/locked-record')).lock;
		const h2 = await b.lock('api/locked-record', { owner: 'bob', ttlMs: 5000 });
		out.nextFencing = h2.fencingToken;
		await h2.release();
		try {
			await b.unlock('api/locked-record', h.token);
		} catch (e) {
			out.unlockStale = { status: /** @type {any} */ (e).status, reason: /** @type {any} */ (e).reason };
		}
		return out;
	});
	assert.equal(r.error, undefined, JSON.stringify(r.error));
	assert.equal(r.token, 'string');
	assert.ok(r.fencingToken > 0);
	assert.equal(r.version, 1);
	assert.deepEqual(r.seen, { owner: 'alice', expiresAt: r.expiresAt, fencingToken: r.fencingToken });
	assert.equal(r.write.name, 'LockedError');
	assert.equal(r.write.status, 423);
	assert.equal(r.write.owner, 'alice');
	assert.equal(r.write.expiresAt, r.expiresAt);
	assert.equal(r.write.fencingToken, r.fencingToken);
	assert.ok(r.write.retryAfterMs !== undefined, '423 carries Retry-After');
	assert.deepEqual(r.relock, { name: 'LockedError', status: 423, owner: 'alice' });
	assert.equal(r.holderWrite, 2);
	assert.equal(r.holderWithoutToken, 'LockedError');
	assert.equal(r.renewedFencing, r.fencingToken, 'a renewal keeps the fencing token');
	assert.equal(r.afterRelease, null);
	assert.ok(r.nextFencing > r.fencingToken, 'each acquisition gets a larger fencing token');
	assert.ok(r.unlockStale && r.unlockStale.status >= 400 && r.unlockStale.status < 500, JSON.stringify(r.unlockStale));
	assert.ok(['LOCK_TOKEN_MISMATCH', 'NOT_LOCKED'].includes(r.unlockStale.reason), JSON.stringify(r.unlockStale));
});

test('POST /unlock with the token in a JSON body releases the lock (the sendBeacon route)', async () => {
	const r = await inPage(async (ds) => {
		const c = new ds.DataSyncClient({ author: 'alice' });
		await c.put('api/beacon', 'x', { ifAbsent: true });
		const h = await c.lock('api/beacon', { owner: 'alice', ttlMs: 30000, autoRenew: false, releaseOnPageHide: false });
		const queued = navigator.sendBeacon('/v1/records/api/beacon/unlock',
			new Blob([JSON.stringify({ lockToken: h.token })], { type: 'application/json' }));
		for (let i = 0; i < 100; i++) {
			if ((await c.get('api/beacon')).lock === null) {
				return { queued, released: true };
			}
			await new Promise((res) => setTimeout(res, 50));
		}
		return { queued, released: false };
	});
	assert.deepEqual(r, { queued: true, released: true });
});

test('updateWithRetry: concurrent increments from two clients all land', async () => {
	const r = await inPage(async (ds) => {
		const a = new ds.DataSyncClient({ author: 'alice' });
		const b = new ds.DataSyncClient({ author: 'bob' });
		await a.put('api/counter', { n: 0 }, { ifAbsent: true });
		const inc = (/** @type {any} */ c) => c.updateWithRetry('api/counter', (/** @type {any} */ v) => ({ n: v.n + 1 }), { maxAttempts: 50 });
		const runs = [];
		for (let i = 0; i < 10; i++) {
			runs.push(inc(a), inc(b));
		}
		await Promise.all(runs);
		return (await a.get('api/counter')).value;
	});
	assert.deepEqual(r, { n: 20 });
});

test('the /rpc/ route speaks proto3 JSON', async () => {
	const r = await inPage(async (ds) => {
		const c = new ds.DataSyncClient({ author: 'alice' });
		await c.put('api/rpc', { via: 'rest' }, { ifAbsent: true });
		const got = await c.rpc('Get', { key: 'api/rpc' });
		return { key: got.record.key, version: got.record.version, value: atob(got.record.value) };
	});
	assert.deepEqual(r, { key: 'api/rpc', version: '1', value: '{"via":"rest"}' });
});
