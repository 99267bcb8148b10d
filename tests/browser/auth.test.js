// Authentication in real Chromium (issue 13, DESIGN §11) against a
// datasyncd started with --bootstrap-token-file:
//   1. the demo shows its sign-in form, signs in with a token, says who it
//      is and saves under the token's name; script cannot read the
//      HttpOnly cookie; a revoked token sends the page back to the form;
//   2. pages on other origins (another port of 127.0.0.1: same site; and
//      localhost: another site) cannot use the session cookie to read or
//      write (credentials: 'include' gets no data, the record stays);
//   3. over HTTPS (mkcerts.sh) the demo signs in and its cookie is Secure.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';

import { startDaemon, launchBrowser, shot, textOf, until, freePort, repoRoot } from './lib/harness.js';

/** @type {import('playwright-core').Browser} */
let browser;
/** @type {string} */
let tmp;

before(async () => {
	tmp = await mkdtemp(path.join(os.tmpdir(), 'dsauth.'));
	browser = await launchBrowser();
});

after(async () => {
	await browser?.close();
	if (tmp && !process.env.DS_KEEP_TMP) {
		await rm(tmp, { recursive: true, force: true });
	}
});

/**
 * call makes one HTTP(S) request from Node (independent of the code under
 * test); resolves with status, headers and the parsed body.
 * @param {string} url @param {string} method @param {any} body
 * @param {Record<string, string>} headers @param {string} [caPem]
 * @returns {Promise<{status: number, headers: http.IncomingHttpHeaders, body: any}>}
 */
function call(url, method, body, headers, caPem) {
	const data = body === undefined ? undefined : JSON.stringify(body);
	const mod = url.startsWith('https:') ? https : http;
	return new Promise((resolve, reject) => {
		const req = mod.request(url, {
			method, ca: caPem,
			headers: { ...(data ? { 'Content-Type': 'application/json' } : {}), ...headers },
		}, (res) => {
			let text = '';
			res.setEncoding('utf8');
			res.on('data', (c) => { text += c; });
			res.on('end', () => {
				/** @type {any} */
				let j = text;
				try {
					j = JSON.parse(text);
				} catch { /* not JSON */ }
				resolve({ status: res.statusCode ?? 0, headers: res.headers, body: j });
			});
		});
		req.on('error', reject);
		req.end(data);
	});
}

/**
 * authDaemon starts datasyncd with a bootstrap token; admin(method, body)
 * calls /rpc/ as that admin.
 * @param {string} name @param {string[]} [args] @param {string} [caPem]
 */
async function authDaemon(name, args = [], caPem = undefined) {
	const file = path.join(tmp, `${name}.token`);
	const daemon = await startDaemon(['--bootstrap-token-file', file, ...args], { caPem });
	const secret = (await readFile(file, 'utf8')).trim();
	assert.match(secret, /^dst_[0-9a-f]{64}$/, 'the bootstrap file holds a secret');
	/** @param {string} method @param {any} body */
	const admin = async (method, body) => {
		const r = await call(`${daemon.url}/rpc/datasync.v1.DataSync/${method}`, 'POST', body,
			{ Authorization: `Bearer ${secret}` }, caPem);
		assert.equal(r.status, 200, `${method} as admin: ${JSON.stringify(r.body)}`);
		return r.body;
	};
	/** @param {string} tokenName @param {string[]} grants @returns {Promise<string>} */
	const mint = async (tokenName, grants) => (await admin('CreateToken', { name: tokenName, grants })).secret;
	return { daemon, admin, mint, secret, caPem };
}

/** stop stops a daemon and checks it exited 0 and logged no secret. */
async function stop(/** @type {import('./lib/harness.js').Daemon} */ daemon) {
	// Read the log after the exit: a sanitizer's report comes last.
	const r = await daemon.stop();
	const log = await daemon.log().catch(() => '(no log)');
	assert.deepEqual(r, { code: 0, signal: null }, `datasyncd exits 0 on SIGTERM; its log:\n${log}`);
	assert.doesNotMatch(log, /dst_[0-9a-f]{64}/, 'no secret in the log');
}

/**
 * signIn opens the demo, expects the sign-in form and signs in.
 * @param {import('playwright-core').BrowserContext} context
 * @param {string} base @param {string} key @param {string} token
 */
async function signIn(context, base, key, token) {
	const page = await context.newPage();
	/** @type {string[]} */
	const problems = [];
	page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
	await page.goto(`${base}/?${new URLSearchParams({ key })}`);
	await page.getByTestId('signin').waitFor({ state: 'visible', timeout: 15000 });
	assert.equal(await page.locator('#app-main').isVisible(), false, 'the ticket is hidden before sign-in');
	await page.getByTestId('signin-token').fill(token);
	await page.getByTestId('btn-signin').click();
	await page.getByTestId('session').waitFor({ state: 'visible', timeout: 15000 });
	return { page, problems };
}

test('the demo signs in with a token, shows who it is, and a revoked token returns to the form', { timeout: 120000 }, async () => {
	const { daemon, admin, mint } = await authDaemon('demo');
	try {
		const writer = await mint('alice', ['read:demo/', 'write:demo/', 'lock:demo/']);
		const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
		const page0 = await context.newPage();
		await page0.goto(`${daemon.url}/?key=demo/ticket`);
		await page0.getByTestId('signin').waitFor({ state: 'visible', timeout: 15000 });
		await page0.getByTestId('signin-token').fill('dst_wrong');
		await page0.getByTestId('btn-signin').click();
		await textOf(page0.getByTestId('signin-error'), /Not signed in: .*TOKEN_MALFORMED|Not signed in: .*token/i,
			'a bad token to be refused');
		await shot(page0, 'auth-01-sign-in-refused');
		await page0.close();

		const { page, problems } = await signIn(context, daemon.url, 'demo/ticket', writer);
		await textOf(page.getByTestId('session-name'), /^alice$/, 'the page to say who is signed in');
		await textOf(page.getByTestId('session-grants'), /read:demo\/.*write:demo\//, 'the grants');
		await until('the first read', () => page.getByTestId('version').textContent(), (t) => t !== null && t !== '–');
		assert.equal(await page.getByTestId('you-name').inputValue(), 'alice', 'the author is the token name');
		const cookies = await context.cookies(daemon.url);
		const c = cookies.find((k) => k.name === 'ds_session');
		assert.ok(c, 'a ds_session cookie is set');
		assert.equal(c.value, writer);
		assert.equal(c.httpOnly, true);
		assert.equal(c.sameSite, 'Strict');
		assert.equal(c.path, '/');
		assert.equal(c.secure, false, 'not Secure over plain HTTP');
		assert.doesNotMatch(await page.evaluate(() => document.cookie), /dst_/, 'script cannot read the session');

		await page.getByTestId('field-title').fill('signed-in edit');
		await page.getByTestId('btn-save').click();
		await textOf(page.getByTestId('message'), /Created the ticket \(version 1\)|Saved as version 1\b/, 'the save to go through');
		const got = await admin('Get', { key: 'demo/ticket' });
		assert.equal(got.record.updatedBy, 'alice', 'the write is the token\'s');
		await shot(page, 'auth-02-signed-in');

		// A reload keeps the session (the cookie), no form.
		await page.reload();
		await page.getByTestId('session').waitFor({ state: 'visible', timeout: 15000 });
		assert.equal(await page.getByTestId('signin').isVisible(), false);

		// Revoked: the next request is a 401 and the page shows the form.
		await admin('RevokeToken', { name: 'alice' });
		await until('the revocation to reach the gateway', async () =>
			(await call(`${daemon.url}/v1/records/demo%2Fticket`, 'GET', undefined, { Cookie: `ds_session=${writer}` })).status,
		(s) => s === 401, { timeout: 5000 });
		// The page may meet the 401 by itself first (its watch or a read);
		// else a save does.
		if (!(await page.getByTestId('signin').isVisible())) {
			try {
				await page.getByTestId('field-notes').fill('after revocation', { timeout: 3000 });
				await page.getByTestId('btn-save').click({ timeout: 3000 });
			} catch {
				// the form replaced the ticket meanwhile
			}
		}
		await page.getByTestId('signin').waitFor({ state: 'visible', timeout: 15000 });
		await textOf(page.getByTestId('signin-error'), /session ended.*TOKEN_REVOKED/, 'why the form is back');
		await shot(page, 'auth-03-revoked-back-to-form');

		// Sign-out with a fresh token clears the cookie.
		const bob = await mint('bob', ['read:demo/']);
		await page.getByTestId('signin-token').fill(bob);
		await page.getByTestId('btn-signin').click();
		await textOf(page.getByTestId('session-name'), /^bob$/, 'bob signed in');
		await page.getByTestId('btn-signout').click();
		await page.getByTestId('signin').waitFor({ state: 'visible', timeout: 15000 });
		await until('the cookie to be gone', async () =>
			(await context.cookies(daemon.url)).filter((k) => k.name === 'ds_session').length, (n) => n === 0);
		assert.deepEqual(problems, [], 'no script errors');
		await context.close();
	} finally {
		await stop(daemon);
	}
});

test('pages on other origins cannot use the session cookie to read or write', { timeout: 120000 }, async () => {
	const { daemon, admin, mint } = await authDaemon('xorigin');
	/** @type {http.Server[]} */
	const servers = [];
	try {
		const writer = await mint('carol', ['read:victim/', 'write:victim/', 'lock:victim/']);
		await admin('Update', { key: 'victim/doc', value: Buffer.from('"original"').toString('base64'),
			contentType: 'application/json', precondition: { ifAbsent: true } });
		const context = await browser.newContext();
		const { page } = await signIn(context, daemon.url, 'victim/doc', writer);
		await textOf(page.getByTestId('session-name'), /^carol$/, 'carol signed in');

		const target = daemon.url;
		const attackPage = `<!doctype html><meta charset="utf-8"><title>evil</title><script>
window.attack = async () => {
  const rec = ${JSON.stringify(`${target}/v1/records/victim%2Fdoc`)};
  const out = {};
  const tryIt = async (what, p) => {
    try {
      const res = await p;
      out[what] = { type: res.type, status: res.status, text: res.type === 'opaque' ? '' : await res.text() };
    } catch (e) {
      out[what] = { error: e.name };
    }
  };
  await tryIt('read', fetch(rec, { credentials: 'include' }));
  await tryIt('read-session', fetch(${JSON.stringify(`${target}/v1/session`)}, { credentials: 'include' }));
  await tryIt('write', fetch(rec, { method: 'PUT', credentials: 'include', headers: { 'If-Match': '*', 'Content-Type': 'application/json' }, body: '"pwned"' }));
  await tryIt('write-no-cors', fetch(rec, { method: 'PUT', mode: 'no-cors', credentials: 'include', headers: { 'Content-Type': 'text/plain' }, body: 'pwned' }));
  await tryIt('rpc-no-cors', fetch(${JSON.stringify(`${target}/rpc/datasync.v1.DataSync/Update`)}, { method: 'POST', mode: 'no-cors', credentials: 'include', headers: { 'Content-Type': 'text/plain' },
    body: JSON.stringify({ key: 'victim/doc', value: btoa('"pwned"'), precondition: { unconditional: true } }) }));
  await tryIt('sign-out', fetch(${JSON.stringify(`${target}/v1/session`)}, { method: 'DELETE', mode: 'no-cors', credentials: 'include' }));
  return out;
};
</script>`;
		for (const host of ['127.0.0.1', 'localhost']) {
			const port = await freePort();
			const srv = http.createServer((req, res) => {
				res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
				res.end(attackPage);
			});
			servers.push(srv);
			await new Promise((resolve) => srv.listen(port, '127.0.0.1', () => resolve(undefined)));
			const evil = await context.newPage();
			await evil.goto(`http://${host}:${port}/`);
			const out = await evil.evaluate(() => /** @type {any} */ (window).attack());
			for (const what of ['read', 'read-session', 'write']) {
				assert.ok(out[what].error === 'TypeError' || (out[what].status >= 400 && !/original|carol/.test(out[what].text)),
					`${host}: ${what} gets no data: ${JSON.stringify(out[what])}`);
			}
			for (const what of ['write-no-cors', 'rpc-no-cors', 'sign-out']) {
				assert.ok(out[what].type === 'opaque' || out[what].error, `${host}: ${what} is opaque: ${JSON.stringify(out[what])}`);
			}
			await shot(evil, `auth-04-evil-${host}`);
			await evil.close();
			const now = await admin('Get', { key: 'victim/doc' });
			assert.equal(Buffer.from(now.record.value, 'base64').toString(), '"original"', `${host}: the record is unchanged`);
			assert.equal(now.record.version, '1', `${host}: its version is unchanged`);
			// The session survived the cross-origin DELETE.
			const who = await page.evaluate(async () => (await fetch('/v1/session')).json());
			assert.equal(who.authenticated, true, `${host}: the victim's session is still there`);
		}
		await context.close();
	} finally {
		for (const s of servers) {
			await new Promise((resolve) => s.close(() => resolve(undefined)));
		}
		await stop(daemon);
	}
});

test('over HTTPS the demo signs in and its session cookie is Secure', { timeout: 120000 }, async () => {
	const certs = path.join(tmp, 'certs');
	execFileSync('bash', [path.join(repoRoot, 'tests/support/mkcerts.sh'), certs], { stdio: 'inherit' });
	const caPem = await readFile(path.join(certs, 'ca.pem'), 'utf8');
	const { daemon, mint } = await authDaemon('tls', ['--tls-cert', path.join(certs, 'server.pem'),
		'--tls-key', path.join(certs, 'server.key')], caPem);
	try {
		assert.match(daemon.url, /^https:/);
		const token = await mint('dave', ['read:tls/', 'write:tls/']);
		const signInReply = await call(`${daemon.url}/v1/session`, 'POST', { token },
			{ Origin: daemon.url }, caPem);
		assert.equal(signInReply.status, 200);
		assert.match(String(signInReply.headers['set-cookie']), /; Secure/, 'Set-Cookie is Secure over HTTPS');
		// The test CA is not in Chromium's store: accept the certificate.
		const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 900 } });
		const { page, problems } = await signIn(context, daemon.url, 'tls/ticket', token);
		await textOf(page.getByTestId('session-name'), /^dave$/, 'dave signed in over HTTPS');
		await until('the first read', () => page.getByTestId('version').textContent(), (t) => t !== null && t !== '–');
		const c = (await context.cookies(daemon.url)).find((k) => k.name === 'ds_session');
		assert.ok(c, 'a ds_session cookie');
		assert.equal(c.secure, true, 'Secure over HTTPS');
		assert.equal(c.httpOnly, true);
		assert.equal(c.sameSite, 'Strict');
		await page.getByTestId('field-title').fill('over tls');
		await page.getByTestId('btn-save').click();
		await textOf(page.getByTestId('message'), /Created the ticket \(version 1\)|Saved as version 1\b/, 'the save over HTTPS');
		await shot(page, 'auth-05-https');
		assert.deepEqual(problems, [], 'no script errors');
		await context.close();
	} finally {
		await stop(daemon);
	}
});
