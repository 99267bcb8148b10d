// The demo page in two browser contexts editing one record: optimistic
// saves, the conflict dialog, automatic and field-by-field merges, and
// Overwrite as a compare-and-set. Each state is saved as a screenshot.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startDaemon, launchBrowser, openDemo, api, shot, textOf, until } from './lib/harness.js';

/** @type {import('./lib/harness.js').Daemon} */
let daemon;
/** @type {import('playwright-core').Browser} */
let browser;
/** @type {ReturnType<typeof api>} */
let http;
/** @type {{context: import('playwright-core').BrowserContext, problems: string[]}[]} */
let opened = [];

const TICKET = { title: 'Printer on fire', status: 'open', assignee: 'ann', notes: 'third floor' };

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
 * twoTabs seeds `key` with TICKET and opens it as alice (A) and bob (B).
 * @param {string} key
 */
async function twoTabs(key) {
	const created = await http.put(key, TICKET, { 'If-None-Match': '*' });
	assert.equal(created.status, 201, `seeding ${key}: ${created.text}`);
	const a = await openDemo(browser, daemon.url, key, 'alice');
	const b = await openDemo(browser, daemon.url, key, 'bob');
	opened.push(a, b);
	for (const t of [a, b]) {
		await textOf(t.page.getByTestId('version'), /^1$/, 'both tabs to show version 1');
		assert.equal(await t.page.getByTestId('field-title').inputValue(), TICKET.title);
	}
	return { A: a.page, B: b.page };
}

/** closeTabs fails the test on page errors, then closes the contexts. */
async function closeTabs() {
	const problems = opened.flatMap((o) => o.problems);
	for (const o of opened) {
		await o.context.close();
	}
	opened = [];
	assert.deepEqual(problems, [], 'no script errors in the demo');
}

/**
 * saveIn types into fields of a tab and saves, waiting for the version.
 * @param {import('playwright-core').Page} page
 * @param {Record<string, string>} fields
 * @param {number} version  expected after the save
 */
async function saveIn(page, fields, version) {
	await fill(page, fields);
	await page.getByTestId('btn-save').click();
	await textOf(page.getByTestId('message'), new RegExp(`Saved as version ${version}\\b`), `a save to version ${version}`);
	await textOf(page.getByTestId('version'), new RegExp(`^${version}$`), `version ${version} shown`);
}

/** @param {import('playwright-core').Page} page @param {Record<string, string>} fields */
async function fill(page, fields) {
	for (const [f, v] of Object.entries(fields)) {
		const loc = page.getByTestId(`field-${f}`);
		if (f === 'status') {
			await loc.selectOption(v);
		} else {
			await loc.fill(v);
		}
	}
}

test('a save from a stale version opens the conflict dialog naming who saved', { timeout: 90000 }, async () => {
	const key = 'browser/stale-save';
	const { A, B } = await twoTabs(key);
	try {
		await fill(B, { title: 'Printer smoking' });           // B starts from version 1
		await saveIn(A, { title: 'Printer burnt out' }, 2);    // A saves version 2 meanwhile
		// B's poll shows version 2 but must not clobber B's edited title.
		await textOf(B.getByTestId('version'), /^2$/, 'B to see version 2 by polling');
		assert.equal(await B.getByTestId('field-title').inputValue(), 'Printer smoking');
		await shot(B, 'conflict-01-stale-before-save');

		await B.getByTestId('btn-save').click();
		const dialog = B.getByTestId('conflict-dialog');
		await dialog.waitFor({ state: 'visible', timeout: 15000 });
		const summary = await textOf(B.getByTestId('conflict-summary'), /alice saved version 2/, 'the conflict summary');
		assert.match(summary, /editing version 1/);
		assert.match(summary, /You both changed Title/);
		for (const name of ['Discard mine', 'Merge', 'Overwrite']) {
			assert.ok(await B.getByRole('button', { name, exact: true }).isVisible(), `${name} offered`);
		}
		const row = B.locator('[data-testid="conflict-table"] tr[data-field="title"] td');
		assert.deepEqual(await row.allTextContents(), ['Printer on fire', 'Printer smoking', 'Printer burnt out']);
		await shot(B, 'conflict-02-dialog');

		// The server still holds A's version: nothing was written by B.
		const now = await http.get(key);
		assert.equal(now.version, 2);
		assert.equal(now.body.title, 'Printer burnt out');

		// Discard mine: B shows A's version and is clean again.
		await B.getByTestId('btn-discard-mine').click();
		await dialog.waitFor({ state: 'hidden' });
		assert.equal(await B.getByTestId('field-title').inputValue(), 'Printer burnt out');
		assert.equal(await B.getByTestId('btn-save').isDisabled(), true, 'nothing left to save');
		await shot(B, 'conflict-03-discarded');
	} finally {
		await closeTabs();
	}
});

test('merging edits to different fields saves without asking and keeps both', { timeout: 90000 }, async () => {
	const key = 'browser/merge-clean';
	const { A, B } = await twoTabs(key);
	try {
		await fill(B, { notes: 'moved to the basement' });
		await saveIn(A, { title: 'Printer burnt out', status: 'in progress' }, 2);
		await textOf(B.getByTestId('version'), /^2$/, 'B to see version 2');
		// Fields B did not edit follow the server while B edits notes.
		await until('B to show A\'s title in the field B did not edit',
			() => B.getByTestId('field-title').inputValue(), (v) => v === 'Printer burnt out');

		await B.getByTestId('btn-save').click();
		await B.getByTestId('conflict-dialog').waitFor({ state: 'visible' });
		await textOf(B.getByTestId('conflict-summary'), /different fields: Merge keeps both/, 'the no-overlap summary');
		await shot(B, 'merge-01-dialog-no-overlap');
		await B.getByTestId('btn-merge').click();

		await B.getByTestId('conflict-dialog').waitFor({ state: 'hidden' });
		assert.equal(await B.getByTestId('merge-choices').isVisible(), false, 'no field-by-field question');
		await textOf(B.getByTestId('message'), /Merged your edits with alice's version 2\. Saved as version 3/, 'the merge message');
		await shot(B, 'merge-02-saved');

		const rec = await http.get(key);
		assert.equal(rec.status, 200);
		assert.equal(rec.version, 3);
		assert.deepEqual(rec.body, {
			title: 'Printer burnt out', status: 'in progress', assignee: 'ann', notes: 'moved to the basement',
		});
		assert.equal(rec.headers.get('Record-Updated-By'), 'bob');
		// A picks B's merged save up by polling.
		await textOf(A.getByTestId('version'), /^3$/, 'A to see version 3');
		assert.equal(await A.getByTestId('field-notes').inputValue(), 'moved to the basement');
	} finally {
		await closeTabs();
	}
});

test('overlapping edits ask field by field and save the chosen mix', { timeout: 90000 }, async () => {
	const key = 'browser/merge-overlap';
	const { A, B } = await twoTabs(key);
	try {
		await fill(B, { title: 'B title', notes: 'B notes', assignee: 'bob' });
		await saveIn(A, { title: 'A title', notes: 'A notes', status: 'blocked' }, 2);
		await textOf(B.getByTestId('version'), /^2$/, 'B to see version 2');

		await B.getByTestId('btn-save').click();
		await B.getByTestId('conflict-dialog').waitFor({ state: 'visible' });
		await textOf(B.getByTestId('conflict-summary'), /You both changed Title, Notes/, 'the overlap summary');
		await B.getByTestId('btn-merge').click();
		const choices = B.getByTestId('merge-choices');
		await choices.waitFor({ state: 'visible' });
		const fields = await choices.locator('.choice').evaluateAll((rows) => rows.map((r) => r instanceof HTMLElement ? r.dataset.field : ''));
		assert.deepEqual(fields, ['title', 'notes'], 'only the fields both changed are asked about');
		await B.getByTestId('choice-title-theirs').check();      // keep A's title
		await B.getByTestId('choice-notes-mine').check();        // keep B's notes
		await shot(B, 'merge-03-field-by-field');
		await B.getByTestId('btn-apply-merge').click();

		await B.getByTestId('conflict-dialog').waitFor({ state: 'hidden' });
		await textOf(B.getByTestId('message'), /Merged field by field\. Saved as version 3/, 'the merge message');
		const rec = await http.get(key);
		assert.equal(rec.version, 3);
		assert.deepEqual(rec.body, { title: 'A title', status: 'blocked', assignee: 'bob', notes: 'B notes' });
		await shot(B, 'merge-04-saved');
	} finally {
		await closeTabs();
	}
});

test('Overwrite is a compare-and-set: a third writer still causes a conflict', { timeout: 90000 }, async () => {
	const key = 'browser/overwrite';
	const { A, B } = await twoTabs(key);
	try {
		await fill(B, { title: 'B wins' });
		await saveIn(A, { title: 'A was here' }, 2);
		await B.getByTestId('btn-save').click();
		const dialog = B.getByTestId('conflict-dialog');
		await dialog.waitFor({ state: 'visible' });
		await textOf(B.getByTestId('conflict-summary'), /saved version 2/, 'the conflict on version 2');

		// A third writer saves version 3 while B looks at version 2.
		const third = await http.put(key, { ...TICKET, title: 'third writer' }, { 'If-Match': '"2"' });
		assert.equal(third.status, 200, third.text);

		await B.getByTestId('btn-overwrite').click();
		await textOf(B.getByTestId('conflict-error'), /saved again meanwhile \(version 3\): nothing was overwritten/, 'the second conflict');
		await textOf(B.getByTestId('conflict-summary'), /api-test saved version 3/, 'the dialog to show version 3');
		assert.equal(await dialog.isVisible(), true);
		let rec = await http.get(key);
		assert.equal(rec.version, 3);
		assert.equal(rec.body.title, 'third writer', 'the overwrite against version 2 did not land');
		await shot(B, 'overwrite-01-third-writer-conflict');

		await B.getByTestId('btn-overwrite').click();
		await dialog.waitFor({ state: 'hidden' });
		await textOf(B.getByTestId('message'), /Overwrote their version with yours\. Saved as version 4/, 'the overwrite message');
		rec = await http.get(key);
		assert.equal(rec.version, 4);
		assert.deepEqual(rec.body, { ...TICKET, title: 'B wins' });
		assert.equal(rec.headers.get('Record-Updated-By'), 'bob');
		await shot(B, 'overwrite-02-saved');
	} finally {
		await closeTabs();
	}
});

test('a new ticket is created with If-None-Match and a second creator gets a conflict', { timeout: 90000 }, async () => {
	const key = 'browser/create';
	const a = await openDemo(browser, daemon.url, key, 'alice');
	const b = await openDemo(browser, daemon.url, key, 'bob');
	opened.push(a, b);
	try {
		for (const p of [a.page, b.page]) {
			await p.getByTestId('absent-note').waitFor({ state: 'visible' });
			await textOf(p.getByTestId('btn-save'), /Create ticket/, 'the create button');
		}
		await shot(a.page, 'create-01-absent');
		await fill(b.page, { title: 'from bob' });
		await fill(a.page, { title: 'from alice', assignee: 'alice' });
		await a.page.getByTestId('btn-save').click();
		await textOf(a.page.getByTestId('message'), /Created the ticket \(version 1\)/, 'the create message');
		let rec = await http.get(key);
		assert.equal(rec.status, 200);
		assert.equal(rec.body.title, 'from alice');

		await b.page.getByTestId('btn-save').click();
		await b.page.getByTestId('conflict-dialog').waitFor({ state: 'visible' });
		await textOf(b.page.getByTestId('conflict-summary'), /alice saved version 1/, 'the create conflict');
		rec = await http.get(key);
		assert.equal(rec.body.title, 'from alice', 'the second create did not overwrite');
		await shot(b.page, 'create-02-second-creator-conflict');
	} finally {
		await closeTabs();
	}
});

test('a save after someone deleted the ticket is a conflict, and Overwrite creates it again', { timeout: 90000 }, async () => {
	const key = 'browser/deleted';
	const { A, B } = await twoTabs(key);
	try {
		await fill(B, { notes: 'still needed' });
		const del = await fetch(http.rec(key), { method: 'DELETE', headers: { 'If-Match': '"1"', Author: 'api-test' } });
		assert.equal(del.status, 204);
		await B.getByTestId('absent-note').waitFor({ state: 'visible', timeout: 15000 });
		await textOf(B.getByTestId('absent-note-text'), /deleted while you were editing version 1/, 'the deleted note');
		await textOf(A.getByTestId('btn-save'), /Create ticket/, 'the clean tab offers to create');
		assert.equal(await B.getByTestId('field-notes').inputValue(), 'still needed', 'B kept its edit');

		await B.getByTestId('btn-save').click();
		await B.getByTestId('conflict-dialog').waitFor({ state: 'visible' });
		await textOf(B.getByTestId('conflict-summary'), /api-test deleted the ticket/, 'the deleted summary');
		assert.equal(await B.getByTestId('btn-merge').isDisabled(), true, 'nothing to merge with');
		assert.equal((await http.get(key)).status, 404, 'the save did not re-create it on its own');
		await shot(B, 'deleted-01-conflict');

		await B.getByTestId('btn-overwrite').click();
		await B.getByTestId('conflict-dialog').waitFor({ state: 'hidden' });
		const rec = await http.get(key);
		assert.equal(rec.status, 200);
		assert.ok(rec.version > 2, `versions continue after the tombstone (got ${rec.version})`);
		assert.deepEqual(rec.body, { ...TICKET, notes: 'still needed' });
	} finally {
		await closeTabs();
	}
});
