// datasync.js's watch() in headless Chromium against a real datasyncd,
// once per transport (Server-Sent Events, long polls): every change after
// the List's revision arrives once, in order, with its type, version,
// author, lock and value; a cursor the change log no longer keeps ends the
// watch with onReset (the 410 before a stream, or the long poll's 410).
// The daemon keeps only 5 revisions (--watch-retain 5 --watch-retain-time 0)
// so that compaction can be reached.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startDaemon, launchBrowser, api, until } from './lib/harness.js';

/** @type {import('./lib/harness.js').Daemon} */
let daemon;
/** @type {import('playwright-core').Browser} */
let browser;
/** @type {import('playwright-core').Page} */
let page;
/** @type {string[]} */
const problems = [];

before(async () => {
	daemon = await startDaemon(['--watch-retain', '5', '--watch-retain-time', '0']);
	browser = await launchBrowser();
	const context = await browser.newContext();
	page = await context.newPage();
	page.on('pageerror', (e) => problems.push(e.message));
	// Any same-origin document can import the module; this one runs no app.
	await page.goto(`${daemon.url}/healthz`);
	await page.evaluate(async () => {
		/** @type {any} */ (window).ds = await import('/datasync.js');
	});
});

after(async () => {
	await browser?.close();
	const r = await daemon?.stop();
	assert.deepEqual(problems, []);
	assert.deepEqual(r, { code: 0, signal: null }, `datasyncd exits 0 on SIGTERM; its log:\n${await daemon?.log().catch(() => '')}`);
});

for (const transport of ['sse', 'poll']) {
	test(`${transport}: every change after the List's revision, once, in order`, { timeout: 60000 }, async () => {
		const prefix = `cw-${transport}/`;
		const got = await page.evaluate(async ([p, t]) => {
			const ds = /** @type {any} */ (window).ds;
			const c = new ds.DataSyncClient({ author: 'alice' });
			await c.put(`${p}seed`, { n: 0 }, { ifAbsent: true });
			const { revision } = await c.list({ prefix: p });
			/** @type {any[]} */
			const events = [];
			/** @type {any[]} */
			const errors = [];
			/** @type {string[]} */
			const opened = [];
			let done = () => {};
			const all = new Promise((resolve) => { done = () => resolve(undefined); });
			const h = c.watch(p, (/** @type {any} */ e) => {
				events.push({
					type: e.type, revision: e.revision, key: e.key, version: e.record.version,
					by: e.record.updatedBy, lock: e.record.lock ? e.record.lock.owner : null,
					value: e.record.value,
				});
				if (events.length === 6) {
					done();
				}
			}, {
				after: revision, values: true, transport: t,
				onOpen: (/** @type {string} */ x) => opened.push(x),
				onError: (/** @type {any} */ e) => errors.push(`${e.reason}: ${e.message}`),
			});
			await c.put(`${p}a`, { n: 1 }, { ifAbsent: true });
			await c.put(`x${p}a`, { n: 1 }, { ifAbsent: true }); // not under the prefix
			await c.put(`${p}a`, { n: 2 }, { ifMatch: 1 });
			const lease = await c.lock(`${p}a`, 'bob', { ttlMs: 30000 });
			await lease.release();
			await c.put(`${p}b`, 'text', { ifAbsent: true });
			await c.del(`${p}a`, { ifMatch: 2 });
			await Promise.race([all, new Promise((r) => setTimeout(r, 20000))]);
			h.close();
			return { revision, events, errors, opened, transport: h.transport };
		}, [prefix, transport]);
		assert.equal(got.transport, transport);
		assert.deepEqual(got.errors, []);
		assert.ok(got.opened.length >= 1 && got.opened.every((/** @type {string} */ x) => x === transport), JSON.stringify(got.opened));
		assert.deepEqual(got.events.map((/** @type {any} */ e) => `${e.type} ${e.key} v${e.version}`), [
			`put ${prefix}a v1`, `put ${prefix}a v2`, `lock ${prefix}a v2`, `unlock ${prefix}a v2`,
			`put ${prefix}b v1`, `delete ${prefix}a v3`,
		]);
		let prev = got.revision;
		for (const e of got.events) {
			assert.ok(e.revision > prev, `revision ${e.revision} after ${prev}`);
			prev = e.revision;
		}
		assert.deepEqual(got.events[0].value, { n: 1 }, 'values: true delivers the value');
		assert.equal(got.events[0].by, 'alice');
		assert.equal(got.events[2].lock, 'bob', 'a lock event names the holder');
		assert.equal(got.events[4].value, 'text');
	});
}

test('a compacted cursor ends the watch with onReset, over either transport', { timeout: 60000 }, async () => {
	const http = api(daemon.url);
	// The log compacts as writes go on (at most once a second): write
	// until revision 1 is refused.
	let round = 0;
	assert.equal((await http.put('compact/k', { round }, { 'If-None-Match': '*' })).status, 201);
	await until('revision 1 to be compacted', async () => {
		assert.equal((await http.put('compact/k', { round: ++round }, { 'If-Match': '*' })).status, 200);
		return (await fetch(`${daemon.url}/v1/watch?after=1&timeout=1`)).status;
	}, (s) => s === 410, { timeout: 20000, interval: 200 });
	for (const transport of ['sse', 'poll']) {
		const got = await page.evaluate(async (t) => {
			const ds = /** @type {any} */ (window).ds;
			const c = new ds.DataSyncClient({});
			/** @type {any} */
			let reset = null;
			const h = c.watch('', () => {}, { after: 1, transport: t, onReset: (/** @type {any} */ e) => { reset = e; } });
			const why = await Promise.race([h.closed, new Promise((r) => setTimeout(() => r('still running'), 15000))]);
			h.close();
			return {
				why: why && typeof why === 'object' ? why.name : why,
				reset: reset && { name: reset.name, reason: reset.reason, compactRevision: reset.compactRevision, revision: reset.revision },
			};
		}, transport);
		assert.equal(got.why, 'RevisionCompactedError', `${transport}: the watch stopped for the compaction`);
		assert.equal(got.reset?.reason, 'REVISION_COMPACTED');
		assert.ok(got.reset.compactRevision > 1, `${transport}: compactRevision ${got.reset.compactRevision}`);
		assert.ok(got.reset.revision >= got.reset.compactRevision, `${transport}: the store's revision`);
	}
});
