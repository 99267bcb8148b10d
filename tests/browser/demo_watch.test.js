// The demo page on datasync.watch(), with its polling fallback turned off
// (?poll=0), once per transport (?watch=sse, ?watch=poll): a save in tab A
// shows in tab B ("alice saved version 2") without B reading the record
// again; a lock taken in A shows B's banner, releasing it hides it; a
// lease that runs out hides it too; "Edit with lock" in B waits in line
// ("Waiting for alice's lock…") and gets the lock when A lets go.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startDaemon, launchBrowser, openDemo, api, shot, textOf, until, disabledOf } from './lib/harness.js';

/** @type {import('./lib/harness.js').Daemon} */
let daemon;
/** @type {import('playwright-core').Browser} */
let browser;
/** @type {ReturnType<typeof api>} */
let http;
/** @type {{context: import('playwright-core').BrowserContext, problems: string[]}[]} */
let opened = [];

const TICKET = { title: 'Printer on fire', status: 'open', assignee: 'cy', notes: '' };

before(async () => {
	daemon = await startDaemon();
	http = api(daemon.url);
	browser = await launchBrowser();
});

after(async () => {
	await browser?.close();
	const r = await daemon?.stop();
	assert.deepEqual(r, { code: 0, signal: null }, `datasyncd exits 0 on SIGTERM; its log:\n${await daemon?.log().catch(() => '')}`);
});

/**
 * twoTabs seeds key and opens it as alice (A) and bob (B), both watching
 * over `transport` with no polling; B's record reads are counted.
 * @param {string} key @param {'sse'|'poll'} transport
 */
async function twoTabs(key, transport) {
	const created = await http.put(key, TICKET, { 'If-None-Match': '*' });
	assert.equal(created.status, 201, `seeding ${key}: ${created.text}`);
	const query = { poll: '0', watch: transport };
	const a = await openDemo(browser, daemon.url, key, 'alice', query);
	const b = await openDemo(browser, daemon.url, key, 'bob', query);
	opened.push(a, b);
	/** @type {string[]} */
	const bReads = [];
	/** @type {string[]} */
	const bWatch = [];
	b.page.on('request', (req) => {
		const u = new URL(req.url());
		if (req.method() === 'GET' && u.pathname.startsWith('/v1/records/')) {
			bReads.push(u.pathname);
		} else if (u.pathname === '/v1/events' || u.pathname === '/v1/watch') {
			bWatch.push(u.pathname);
		}
	});
	// "live": the watch is open and the read after it answered.
	for (const p of [a.page, b.page]) {
		await textOf(p.getByTestId('connection'), /^live$/, `the ${p === a.page ? 'A' : 'B'} tab's watch to be live`);
	}
	return { A: a.page, B: b.page, bReads, bWatch };
}

async function closeTabs() {
	const problems = opened.flatMap((o) => o.problems);
	for (const o of opened) {
		await o.context.close();
	}
	opened = [];
	assert.deepEqual(problems, [], 'no script errors in the demo');
}

for (const transport of /** @type {const} */ (['sse', 'poll'])) {
	test(`${transport}: a save and a lock in one tab show in the other at once, without polling`, { timeout: 120000 }, async () => {
		const key = `browser/watch-${transport}`;
		const { A, B, bReads, bWatch } = await twoTabs(key, transport);
		try {
			bReads.length = 0;
			await A.getByTestId('field-title').fill('Printer fixed');
			await A.getByTestId('btn-save').click();
			await textOf(A.getByTestId('message'), /Saved as version 2/, 'A\'s save');
			await textOf(B.getByTestId('message'), /^alice saved version 2\.$/, 'the save announced in B');
			await until('B to show A\'s title', () => B.getByTestId('field-title').inputValue(), (v) => v === 'Printer fixed');
			assert.equal(await B.getByTestId('version').textContent(), '2');
			assert.deepEqual(bReads, [], 'B learnt of the save from the watch, not by reading the record');
			await shot(B, `watch-${transport}-01-save-shown`);

			// Locks: taken, released, and a lease that runs out.
			await A.getByTestId('btn-lock').click();
			await A.getByTestId('own-lock').waitFor({ state: 'visible' });
			await B.getByTestId('lock-banner').waitFor({ state: 'visible', timeout: 10000 });
			await textOf(B.getByTestId('lock-banner-text'), /^Being edited by alice until \d\d:\d\d:\d\d/, 'B\'s banner');
			await disabledOf(B.getByTestId('btn-save'), true, 'B cannot save');
			await shot(B, `watch-${transport}-02-locked`);
			await A.getByTestId('btn-release').click();
			await B.getByTestId('lock-banner').waitFor({ state: 'hidden', timeout: 10000 });
			await disabledOf(B.getByTestId('btn-save'), true, 'nothing to save in B (no edits), but not for a lock');
			assert.equal(await B.getByTestId('save-hint').textContent(), 'No changes to save.');

			const lease = await fetch(`${http.rec(key)}/lock`, {
				method: 'POST', headers: { 'Content-Type': 'application/json' },
				body: JSON.stringify({ owner: 'carol', ttlMs: 1000 }),
			});
			assert.equal(lease.status, 200, await lease.text());
			await textOf(B.getByTestId('lock-banner-text'), /^Being edited by carol/, 'carol\'s short lease in B');
			// The banner hides on the server's expire event; the page also
			// hides an expired lease by its own clock, so check the event
			// arrived: the lock is gone on the server and B's watch is live.
			await B.getByTestId('lock-banner').waitFor({ state: 'hidden', timeout: 15000 });
			assert.deepEqual(bReads, [], 'B still never read the record');
			if (transport === 'poll') {
				// (An SSE stream opened before this listener could see it.)
				assert.ok(bWatch.includes('/v1/watch'), 'B kept long polling');
			}
			assert.equal(await B.getByTestId('connection').textContent(), 'live');
		} finally {
			await closeTabs();
		}
	});
}

test('"Edit with lock" waits in line for the holder and gets the lock when it is released', { timeout: 120000 }, async () => {
	const key = 'browser/watch-lock-wait';
	const { A, B } = await twoTabs(key, 'sse');
	try {
		await A.getByTestId('btn-lock').click();
		await A.getByTestId('own-lock').waitFor({ state: 'visible' });
		await textOf(B.getByTestId('btn-lock'), /^Wait for alice's lock$/, 'B offers to wait');
		await B.getByTestId('btn-lock').click();
		await textOf(B.getByTestId('message'), /^Waiting for alice's lock…/, 'B says it waits');
		await textOf(B.getByTestId('btn-lock'), /^Waiting for alice's lock…$/, 'the button too');
		await shot(B, 'watch-03-waiting');
		await A.getByTestId('btn-release').click();
		await B.getByTestId('own-lock').waitFor({ state: 'visible', timeout: 20000 });
		await textOf(B.getByTestId('own-lock-text'), /You are editing with a lock until/, 'B holds the lock');
		await A.getByTestId('lock-banner').waitFor({ state: 'visible', timeout: 10000 });
		await textOf(A.getByTestId('lock-banner-text'), /^Being edited by bob/, 'A sees bob\'s lock');
		const rec = await http.get(key);
		assert.equal(rec.headers.get('Lock-Owner'), 'bob');
		await B.getByTestId('btn-release').click();
		await A.getByTestId('lock-banner').waitFor({ state: 'hidden', timeout: 10000 });
	} finally {
		await closeTabs();
	}
});
