// DESIGN §11 as an attacker makes it: a page served from a second origin
// tries, in real Chromium, every write a browser sends without a CORS
// preflight (a no-cors text/plain fetch, an HTML form POST, sendBeacon) at
// the record, lock and /rpc routes of a local datasyncd. Afterwards the
// record, its version and its lock are unchanged, the server's metrics
// show that the requests did arrive and were refused with 403, and the
// demo page on the server's own origin still saves and locks.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import { startDaemon, launchBrowser, openDemo, api, shot, textOf, until, freePort } from './lib/harness.js';

/** @type {import('./lib/harness.js').Daemon} */
let daemon;
/** @type {import('playwright-core').Browser} */
let browser;
/** @type {ReturnType<typeof api>} */
let rest;
/** @type {http.Server} */
let evil;
let evilUrl = '';

const VICTIM = 'victim/doc';
const ORIGINAL = { title: 'do not touch', status: 'open', assignee: 'cy', notes: '' };

// The attacker's page: each attempt is fire-and-forget, as a real one is
// (the browser hides cross-origin answers from it anyway).
function evilPage(target) {
	const key = encodeURIComponent(VICTIM);
	const rpc = `${target}/rpc/datasync.v1.DataSync`;
	const update = JSON.stringify({ key: VICTIM, value: btoa('pwned'), precondition: { unconditional: true } });
	const lock = JSON.stringify({ owner: 'mallory', ttlMs: 3600000 });
	const rpcLock = JSON.stringify({ key: VICTIM, owner: 'mallory', ttlMs: 3600000 });
	// A text/plain form turns name=value into the body: the classic way to
	// post JSON from a form.
	const formName = update.slice(0, -1) + ',"x":"';
	return `<!doctype html><meta charset="utf-8"><title>evil</title>
<iframe name="sink1" style="display:none"></iframe>
<iframe name="sink2" style="display:none"></iframe>
<form id="f1" method="POST" enctype="text/plain" target="sink1" action="${rpc}/Update">
  <input name='${formName}' value='"}'></form>
<form id="f2" method="POST" target="sink2" action="${target}/v1/records/${key}/lock">
  <input name="owner" value="mallory"></form>
<script>
window.attack = async () => {
  const tp = { 'Content-Type': 'text/plain' };
  const sent = [];
  const go = (what, p) => sent.push(p.then(() => what + ': sent', (e) => what + ': ' + e.message));
  go('no-cors rpc Update', fetch(${JSON.stringify(rpc)} + '/Update', { method: 'POST', mode: 'no-cors', headers: tp, body: ${JSON.stringify(update)} }));
  go('no-cors rpc Lock', fetch(${JSON.stringify(rpc)} + '/Lock', { method: 'POST', mode: 'no-cors', headers: tp, body: ${JSON.stringify(rpcLock)} }));
  go('no-cors lock', fetch(${JSON.stringify(`${target}/v1/records/${key}/lock`)}, { method: 'POST', mode: 'no-cors', headers: tp, body: ${JSON.stringify(lock)} }));
  go('no-cors unlock', fetch(${JSON.stringify(`${target}/v1/records/${key}/unlock`)}, { method: 'POST', mode: 'no-cors', headers: tp, body: '{"lockToken":"guess"}' }));
  const beacons = [
    navigator.sendBeacon(${JSON.stringify(rpc)} + '/Update', new Blob([${JSON.stringify(update)}], { type: 'text/plain' })),
    navigator.sendBeacon(${JSON.stringify(`${target}/v1/records/${key}/lock`)}, new Blob([${JSON.stringify(lock)}], { type: 'text/plain' })),
    navigator.sendBeacon(${JSON.stringify(rpc)} + '/Delete', ${JSON.stringify(JSON.stringify({ key: VICTIM, precondition: { unconditional: true } }))}),
  ];
  document.getElementById('f1').submit();
  document.getElementById('f2').submit();
  return { fetches: await Promise.all(sent), beacons };
};
</script>`;
}

/** refused403 sums the gateway's 403 answers per route from /metrics. */
async function refused403() {
	const text = await (await fetch(`${daemon.url}/metrics`)).text();
	/** @type {Record<string, number>} */
	const by = {};
	for (const m of text.matchAll(/^datasync_gateway_requests_total\{route="(\w+)",method="(\w+)",code="403"\} (\d+)$/gm)) {
		by[m[1]] = (by[m[1]] ?? 0) + Number(m[3]);
	}
	return by;
}

before(async () => {
	daemon = await startDaemon();
	rest = api(daemon.url);
	const port = await freePort();
	evil = http.createServer((req, res) => {
		res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
		res.end(evilPage(daemon.url));
	});
	await new Promise((resolve) => evil.listen(port, '127.0.0.1', () => resolve(undefined)));
	// Another port is another origin (scheme, host and port).
	evilUrl = `http://127.0.0.1:${port}`;
	browser = await launchBrowser();
});

after(async () => {
	await browser?.close();
	await new Promise((resolve) => (evil ? evil.close(() => resolve(undefined)) : resolve(undefined)));
	const r = await daemon?.stop();
	assert.deepEqual(r, { code: 0, signal: null }, `datasyncd exits 0 on SIGTERM; its log:\n${await daemon?.log().catch(() => '')}`);
});

test('a page on another origin cannot write, lock or call /rpc, and the demo still works', { timeout: 120000 }, async () => {
	const created = await rest.put(VICTIM, ORIGINAL, { 'If-None-Match': '*' });
	assert.equal(created.status, 201, `seeding: ${created.text}`);
	const before403 = await refused403();

	const context = await browser.newContext();
	const page = await context.newPage();
	await page.goto(`${evilUrl}/`);
	const outcome = await page.evaluate(() => /** @type {any} */ (window).attack());
	assert.deepEqual(outcome.beacons, [true, true, true], 'Chromium queued every beacon');

	// Every attempt reaches the server and is answered 403 there: 4 fetches
	// + 3 beacons + 2 forms = 9, on the rpc, lock and unlock routes.
	await until('the attacks to arrive and be refused', refused403, (by) => {
		const d = (r) => (by[r] ?? 0) - (before403[r] ?? 0);
		return d('rpc') >= 5 && d('lock') >= 3 && d('unlock') >= 1;
	}, { timeout: 20000 });
	await shot(page, 'cross-origin-01-evil-page');
	await context.close();

	const now = await rest.get(VICTIM);
	assert.equal(now.status, 200, 'the record is still there');
	assert.equal(now.version, 1, 'its version is unchanged');
	assert.deepEqual(now.body, ORIGINAL, 'its value is unchanged');
	assert.equal(now.headers.get('Lock-Owner'), null, 'nobody holds a lock on it');

	// The demo on the server's own origin: a save and a lock both work.
	const demo = await openDemo(browser, daemon.url, VICTIM, 'alice');
	try {
		await demo.page.getByTestId('field-title').fill('edited by the demo');
		await demo.page.getByTestId('btn-save').click();
		await textOf(demo.page.getByTestId('message'), /Saved as version 2\b/, 'the demo to save version 2');
		await demo.page.getByTestId('btn-lock').click();
		await textOf(demo.page.getByTestId('own-lock-text'), /You are editing with a lock until/, 'the demo to take its lock');
		await shot(demo.page, 'cross-origin-02-demo-still-works');
		const locked = await rest.get(VICTIM);
		assert.equal(locked.version, 2);
		assert.equal(locked.body.title, 'edited by the demo');
		assert.equal(decodeURIComponent(locked.headers.get('Lock-Owner') ?? ''), 'alice');
		assert.deepEqual(demo.problems, [], 'no script errors in the demo');
	} finally {
		await demo.context.close();
	}
});
