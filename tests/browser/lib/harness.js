// harness.js - what every browser test file shares: a datasyncd of its
// own (temp database, temp ipc:// path, free HTTP port), Debian's
// headless Chromium through playwright-core, screenshots, and waiting
// helpers that poll a condition with a deadline instead of sleeping.
//
// Environment:
//   DATASYNCD     the server binary (default: build/datasyncd in the repo)
//   CHROMIUM      the browser (default: /usr/bin/chromium)
//   DS_ARTIFACTS  where screenshots go (default: build/browser-artifacts)
//   DS_WEB_ROOT   passed as --web-root when set (default: the server's own)
//   DS_KEEP_TMP   keep the temp directory (database, server log)
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const artifactsDir = path.resolve(process.env.DS_ARTIFACTS || path.join(repoRoot, 'build/browser-artifacts'));

const CHROMIUM_ARGS = [
	'--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
	// Without these Chromium dials out on its own, and this machine's
	// closed network refuses those connections noisily.
	'--disable-background-networking', '--disable-component-update', '--disable-sync',
	'--disable-default-apps', '--disable-extensions', '--mute-audio',
];

/** @returns {Promise<number>} a port the kernel just handed out on 127.0.0.1 */
export function freePort() {
	return new Promise((resolve, reject) => {
		const srv = net.createServer();
		srv.unref();
		srv.on('error', reject);
		srv.listen(0, '127.0.0.1', () => {
			const addr = srv.address();
			const port = addr && typeof addr === 'object' ? addr.port : 0;
			srv.close(() => resolve(port));
		});
	});
}

/**
 * until polls `probe` until `accept(value)` holds, or fails after timeout
 * naming what it waited for and the last value seen.
 * @template T
 * @param {string} what
 * @param {() => Promise<T>|T} probe
 * @param {(v: T) => boolean} [accept]
 * @param {{timeout?: number, interval?: number}} [opts]
 * @returns {Promise<T>}
 */
export async function until(what, probe, accept = (v) => Boolean(v), opts = {}) {
	const timeout = opts.timeout ?? 15000;
	const interval = opts.interval ?? 100;
	const deadline = Date.now() + timeout;
	/** @type {unknown} */
	let last;
	for (;;) {
		try {
			last = await probe();
			if (accept(/** @type {T} */ (last))) {
				return /** @type {T} */ (last);
			}
		} catch (e) {
			last = e;
		}
		if (Date.now() >= deadline) {
			throw new Error(`timed out after ${timeout} ms waiting for ${what}; last value: ${
				last instanceof Error ? last.message : JSON.stringify(last)}`);
		}
		await new Promise((r) => setTimeout(r, interval));
	}
}

/**
 * @typedef {object} Daemon
 * @property {string} url        http://127.0.0.1:PORT
 * @property {string} dir        its temp directory
 * @property {() => Promise<string>} log   what it printed so far
 * @property {() => Promise<{code: number|null, signal: NodeJS.Signals|null}>} stop
 *   SIGTERM, then wait (SIGKILL after 15 s)
 */

/**
 * startDaemon runs datasyncd on a temp database, a temp ipc:// path and a
 * free HTTP port, and resolves once /healthz answers 200.
 * @param {string[]} [extraArgs]
 * @param {{caPem?: string}} [opts] caPem: the gateway serves HTTPS
 *   (extraArgs hold --tls-cert and --tls-key) with a certificate this CA
 *   signed; url is then https://
 * @returns {Promise<Daemon>}
 */
export async function startDaemon(extraArgs = [], opts = {}) {
	const bin = path.resolve(repoRoot, process.env.DATASYNCD || 'build/datasyncd');
	if (!existsSync(bin)) {
		throw new Error(`datasyncd not found at ${bin}: build it (cmake --build build) or set DATASYNCD`);
	}
	const dir = await mkdtemp(path.join(os.tmpdir(), 'dsbrowser.'));
	const logPath = path.join(dir, 'datasyncd.log');
	const { open } = await import('node:fs/promises');
	const logFile = await open(logPath, 'w');
	/** @type {Error|null} */
	let lastErr = null;
	for (let attempt = 1; attempt <= 3; attempt++) {
		const port = await freePort();
		const args = [
			'--db', path.join(dir, `datasync-${attempt}.db`),
			'--listen', `ipc://${path.join(dir, `ds-${attempt}.sock`)}`,
			'--http', `127.0.0.1:${port}`,
			'--durability', 'normal',
			...(process.env.DS_WEB_ROOT ? ['--web-root', process.env.DS_WEB_ROOT] : []),
			...extraArgs,
		];
		const child = spawn(bin, args, { stdio: ['ignore', logFile.fd, logFile.fd] });
		/** @type {{code: number|null, signal: NodeJS.Signals|null}|null} */
		let exited = null;
		const exitP = new Promise((resolve) => child.on('exit', (code, signal) => {
			exited = { code, signal };
			resolve(exited);
		}));
		const url = `${opts.caPem ? 'https' : 'http'}://127.0.0.1:${port}`;
		try {
			await until(`${bin} to answer ${url}/healthz`, async () => {
				if (exited) {
					throw new Error(`exited early (${JSON.stringify(exited)})`);
				}
				if (opts.caPem) {
					return httpsStatus(`${url}/healthz`, opts.caPem);
				}
				const res = await fetch(`${url}/healthz`);
				return res.status;
			}, (s) => s === 200 || exited !== null, { timeout: 20000, interval: 50 });
			if (exited) {
				throw new Error(`datasyncd exited at start (${JSON.stringify(exited)})`);
			}
		} catch (e) {
			lastErr = /** @type {Error} */ (e);
			child.kill('SIGKILL');
			await exitP;
			continue; // most likely the port was taken meanwhile: try another
		}
		return {
			url, dir,
			log: () => readFile(logPath, 'utf8'),
			stop: async () => {
				if (!exited) {
					child.kill('SIGTERM');
					const t = setTimeout(() => child.kill('SIGKILL'), 15000);
					await exitP;
					clearTimeout(t);
				}
				await logFile.close();
				const result = /** @type {{code: number|null, signal: NodeJS.Signals|null}} */ (/** @type {unknown} */ (exited));
				if (!process.env.DS_KEEP_TMP && result.code === 0) {
					await rm(dir, { recursive: true, force: true });
				}
				return result;
			},
		};
	}
	const log = await readFile(logPath, 'utf8').catch(() => '');
	await logFile.close();
	throw new Error(`datasyncd did not start: ${lastErr?.message}\n--- its output ---\n${log}`);
}

/**
 * httpsStatus GETs url trusting only caPem; resolves with the status.
 * @param {string} url
 * @param {string} caPem
 * @returns {Promise<number>}
 */
export function httpsStatus(url, caPem) {
	return new Promise((resolve, reject) => {
		const req = https.get(url, { ca: caPem }, (res) => {
			res.resume();
			res.on('end', () => resolve(res.statusCode ?? 0));
		});
		req.on('error', reject);
	});
}

/**
 * launchBrowser starts Debian's Chromium headless (no browser download).
 * @returns {Promise<import('playwright-core').Browser>}
 */
export async function launchBrowser() {
	const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
	if (!existsSync(executablePath)) {
		throw new Error(`Chromium not found at ${executablePath}: apt-get install chromium (or set CHROMIUM)`);
	}
	const { chromium } = await import('playwright-core');
	return chromium.launch({ executablePath, args: CHROMIUM_ARGS, timeout: 60000 });
}

/**
 * shot saves a full-page screenshot under the artifacts directory.
 * @param {import('playwright-core').Page} page
 * @param {string} name  file name without .png
 * @returns {Promise<string>} the path written
 */
export async function shot(page, name) {
	await mkdir(artifactsDir, { recursive: true });
	const file = path.join(artifactsDir, `${name}.png`);
	await page.screenshot({ path: file, fullPage: true });
	return file;
}

/**
 * api: small raw-HTTP helpers for checking what the server holds,
 * independent of the code under test.
 * @param {string} base
 */
export function api(base) {
	/** @param {string} key */
	const rec = (key) => `${base}/v1/records/${key.split('/').map(encodeURIComponent).join('/')}`;
	return {
		rec,
		/** @param {string} key @returns {Promise<{status: number, version: number, body: any, headers: Headers}>} */
		async get(key) {
			const res = await fetch(rec(key));
			const text = await res.text();
			/** @type {any} */
			let body = text;
			try {
				body = JSON.parse(text);
			} catch { /* not JSON */ }
			const m = /"(\d+)"/.exec(res.headers.get('ETag') ?? '');
			return { status: res.status, version: m ? Number(m[1]) : 0, body, headers: res.headers };
		},
		/**
		 * @param {string} key @param {any} value
		 * @param {Record<string, string>} headers  preconditions etc.
		 */
		async put(key, value, headers) {
			const res = await fetch(rec(key), {
				method: 'PUT', body: JSON.stringify(value),
				headers: { 'Content-Type': 'application/json', Author: 'api-test', ...headers },
			});
			const text = await res.text();
			return { status: res.status, etag: res.headers.get('ETag'), text };
		},
	};
}

/**
 * openDemo opens the demo page for `key` in a fresh browser context, sets
 * the "you" name and waits for the first read.
 * @param {import('playwright-core').Browser} browser
 * @param {string} base
 * @param {string} key
 * @param {string} name
 * @param {Record<string, string>} [query]
 */
export async function openDemo(browser, base, key, name, query = {}) {
	const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
	const page = await context.newPage();
	/** @type {string[]} */
	const problems = [];
	page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
	page.on('console', (m) => {
		if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) {
			problems.push(`console.error: ${m.text()}`);
		}
	});
	const qs = new URLSearchParams({ key, ...query });
	await page.goto(`${base}/?${qs}`);
	const you = page.getByTestId('you-name');
	await you.fill(name);
	await until(`the demo (${name}) to read ${key}`, () => page.getByTestId('version').textContent(),
		(t) => t !== null && t !== '–');
	return { context, page, problems };
}

/**
 * textOf waits until a locator's text matches re and returns it.
 * @param {import('playwright-core').Locator} loc
 * @param {RegExp} re
 * @param {string} what
 * @param {number} [timeout]
 */
export function textOf(loc, re, what, timeout = 15000) {
	return until(what, async () => (await loc.textContent({ timeout: 2000 })) ?? '', (t) => re.test(t), { timeout });
}

/**
 * disabledOf waits until a button's disabled state is `want`.
 * @param {import('playwright-core').Locator} loc
 * @param {boolean} want
 * @param {string} what
 */
export function disabledOf(loc, want, what) {
	return until(what, () => loc.isDisabled({ timeout: 2000 }), (d) => d === want);
}
