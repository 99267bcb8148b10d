// The demo page's pessimistic mode in two browser contexts: a lock in one
// shows a banner with a live countdown and disables saving in the other,
// the lease is renewed in the background while held, and it is released
// by the button or when the holder's page closes (pagehide).
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

const TICKET = { title: 'Quarterly report', status: 'open', assignee: 'cy', notes: '' };
const BANNER = /^Being edited by alice until \d\d:\d\d:\d\d \((\d+) s left\)/;

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

/** @param {string} key @param {Record<string, string>} [query] */
async function twoTabs(key, query = {}) {
	const created = await http.put(key, TICKET, { 'If-None-Match': '*' });
	assert.equal(created.status, 201, `seeding ${key}: ${created.text}`);
	const a = await openDemo(browser, daemon.url, key, 'alice', query);
	const b = await openDemo(browser, daemon.url, key, 'bob', query);
	opened.push(a, b);
	return { A: a.page, B: b.page };
}

async function closeTabs() {
	const problems = opened.flatMap((o) => o.problems);
	for (const o of opened) {
		await o.context.close();
	}
	opened = [];
	assert.deepEqual(problems, [], 'no script errors in the demo');
}

/** @param {import('playwright-core').Page} page */
async function takeLock(page) {
	await page.getByTestId('btn-lock').click();
	await page.getByTestId('own-lock').waitFor({ state: 'visible' });
	await textOf(page.getByTestId('own-lock-text'), /You are editing with a lock until \d\d:\d\d:\d\d/, 'the holder\'s own lock note');
}

test('a lock in one tab shows who edits until when and disables saving in the other', { timeout: 90000 }, async () => {
	const key = 'browser/lock-banner';
	const { A, B } = await twoTabs(key);
	try {
		await B.getByTestId('field-notes').fill('bob wants to add this');
		await takeLock(A);
		await shot(A, 'lock-01-holder');

		const banner = B.getByTestId('lock-banner');
		await banner.waitFor({ state: 'visible', timeout: 10000 });
		const first = await textOf(B.getByTestId('lock-banner-text'), BANNER, 'the banner in the other tab');
		await disabledOf(B.getByTestId('btn-save'), true, 'Save disabled in the other tab');
		// "Edit with lock" turns into waiting in line for it.
		await textOf(B.getByTestId('btn-lock'), /^Wait for alice's lock$/, 'the lock button offers to wait');
		assert.match(await B.getByTestId('save-hint').textContent() ?? '', /alice holds the lock/);
		// The countdown is live: it changes without any action.
		await until('the countdown to tick', async () => B.getByTestId('lock-banner-text').textContent(),
			(t) => t !== first && BANNER.test(t ?? ''), { timeout: 5000 });
		await shot(B, 'lock-02-other-tab-banner');

		// The server refuses a write without the token, whatever the version.
		const blocked = await http.put(key, { ...TICKET, notes: 'sneaky' }, { 'If-Match': '"1"' });
		assert.equal(blocked.status, 423, blocked.text);
		assert.equal(JSON.parse(blocked.text).reason, 'LOCKED');

		// The holder saves with its token.
		await A.getByTestId('field-title').fill('Quarterly report (final)');
		await A.getByTestId('btn-save').click();
		await textOf(A.getByTestId('message'), /Saved as version 2/, 'the holder\'s save');
		const rec = await http.get(key);
		assert.equal(rec.body.title, 'Quarterly report (final)');
		assert.equal(rec.headers.get('Lock-Owner'), 'alice');

		await A.getByTestId('btn-release').click();
		await textOf(A.getByTestId('message'), /Lock released/, 'the release message');
		await banner.waitFor({ state: 'hidden', timeout: 10000 });
		await disabledOf(B.getByTestId('btn-save'), false, 'Save enabled again in the other tab');
		assert.equal(await B.getByTestId('field-notes').inputValue(), 'bob wants to add this', 'B kept its edit');
		assert.equal(await B.getByTestId('field-title').inputValue(), 'Quarterly report (final)', 'B shows A\'s save');
		await shot(B, 'lock-03-released');
		const after = await http.get(key);
		assert.equal(after.headers.get('Lock-Owner'), null, 'no lock on the server');
	} finally {
		await closeTabs();
	}
});

test('the lease is renewed in the background while held', { timeout: 90000 }, async () => {
	const key = 'browser/lock-renew';
	const { A, B } = await twoTabs(key, { ttl: '3000' });
	try {
		await takeLock(A);
		const first = await until('a lock on the server', async () => (await http.get(key)).headers.get('Lock-Expires-At'), Boolean);
		const firstToken = (await http.get(key)).headers.get('Lock-Fencing-Token');
		// Past the first lease's end the lock is still held, with a later
		// expiry and the same fencing token (renewed, not re-acquired).
		await until('the first lease to have ended', () => Date.now(), (t) => t > Number(first) + 500, { timeout: 10000, interval: 250 });
		const now = await http.get(key);
		assert.equal(now.headers.get('Lock-Owner'), 'alice');
		assert.ok(Number(now.headers.get('Lock-Expires-At')) > Number(first), 'expiry moved forward');
		assert.equal(now.headers.get('Lock-Fencing-Token'), firstToken);
		await B.getByTestId('lock-banner').waitFor({ state: 'visible' });
		await A.getByTestId('btn-release').click();
		await B.getByTestId('lock-banner').waitFor({ state: 'hidden', timeout: 10000 });
	} finally {
		await closeTabs();
	}
});

test('closing the holder\'s page releases the lock for the other tab', { timeout: 90000 }, async () => {
	const key = 'browser/lock-pagehide';
	const { A, B } = await twoTabs(key);
	try {
		await takeLock(A);
		await B.getByTestId('lock-banner').waitFor({ state: 'visible', timeout: 10000 });
		await shot(B, 'lock-04-before-close');

		// The lease is 30 s: only the pagehide release can free it this soon.
		await A.close({ runBeforeUnload: true });
		await B.getByTestId('lock-banner').waitFor({ state: 'hidden', timeout: 10000 });
		const rec = await http.get(key);
		assert.equal(rec.headers.get('Lock-Owner'), null, 'the server holds no lock');
		await shot(B, 'lock-05-after-holder-closed');

		// The record is free: the other tab can take the lock now.
		await takeLock(B);
		await textOf(B.getByTestId('own-lock-text'), /You are editing with a lock/, 'B holding the lock');
	} finally {
		await closeTabs();
	}
});
