// Unit tests for watch(): event decoding, the cursor's resume rules, the
// backoff, and both transports against a fake fetch / fake EventSource
// (real Response objects, real timers: the waits are the module's own
// backoff, at most a few hundred ms here).
// Run: node --test clients/js/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
	DataSyncClient, DataSyncError, RevisionCompactedError, WatchCursor,
	decodeEventJson, watchBackoffMs, watchQuery, errorFromResponse,
	WATCH_BACKOFF_MIN_MS, WATCH_BACKOFF_MAX_MS, WATCH_SSE_FALLBACK_AFTER, LOCK_WAIT_MAX_MS,
} from '../datasync.js';

/** @param {any} obj @param {number} [status] */
function json(obj, status = 200) {
	return new Response(JSON.stringify(obj), { status, headers: { 'Content-Type': 'application/json' } });
}

/** @param {string} s */
const b64 = (s) => Buffer.from(s, 'utf8').toString('base64');

/** @param {number} rev @param {string} key @param {string} [type] @param {object} [rec] */
function ev(rev, key, type = 'EVENT_PUT', rec = {}) {
	return { type, revision: String(rev), record: { key, version: '1', ...rec } };
}

/**
 * A fetch whose answers come from `answer(url, n)`; `undefined` means
 * "hold the long poll" until the request is aborted.
 * @param {(url: URL, n: number) => Response | Error | undefined} answer
 */
function pollFetch(answer) {
	/** @type {URL[]} */
	const urls = [];
	/** @param {string} u @param {RequestInit} [init] */
	const f = (u, init = {}) => {
		const url = new URL(u);
		urls.push(url);
		const a = answer(url, urls.length);
		if (a instanceof Error) {
			return Promise.reject(a);
		}
		if (a !== undefined) {
			return Promise.resolve(a);
		}
		return new Promise((_, reject) => {
			init.signal?.addEventListener('abort', () => {
				const e = new Error('aborted');
				e.name = 'AbortError';
				reject(e);
			});
		});
	};
	return { fetch: /** @type {typeof fetch} */ (/** @type {unknown} */ (f)), urls };
}

/** until: resolves once cond() holds (checked every few ms; 5 s cap). */
async function until(/** @type {() => boolean} */ cond, what = 'condition') {
	const end = Date.now() + 5000;
	while (!cond()) {
		if (Date.now() > end) {
			throw new Error(`timed out waiting for ${what}`);
		}
		await new Promise((r) => setTimeout(r, 5));
	}
}

/* --- pure parts ----------------------------------------------------------- */

test('decodeEventJson maps the proto3 JSON event and its record', () => {
	const e = decodeEventJson({
		type: 'EVENT_LOCK', revision: '12',
		record: { key: 'k', version: '5', updatedBy: 'alice', lock: { owner: 'bob', expiresAtMs: '1700000000000', fencingToken: '3' } },
	}, false);
	assert.equal(e.type, 'lock');
	assert.equal(e.revision, 12);
	assert.equal(e.key, 'k');
	assert.equal(e.record.version, 5);
	assert.equal(e.record.updatedBy, 'alice');
	assert.deepEqual(e.record.lock, { owner: 'bob', expiresAt: 1700000000000, fencingToken: 3 });
	assert.equal(e.record.value, undefined, 'no value unless asked for');
	for (const [t, want] of [['EVENT_PUT', 'put'], ['EVENT_DELETE', 'delete'], ['EVENT_UNLOCK', 'unlock'],
		['EVENT_EXPIRE', 'expire'], ['EVENT_SOMETHING_NEW', 'unknown']]) {
		assert.equal(decodeEventJson(ev(1, 'k', t), false).type, want);
	}
});

test('decodeEventJson decodes values when asked, and an omitted one as none', () => {
	const withV = decodeEventJson(ev(3, 'k', 'EVENT_PUT', { contentType: 'application/json', value: b64('{"a":1}') }), true);
	assert.deepEqual(withV.record.value, { a: 1 });
	const empty = decodeEventJson(ev(3, 'k'), true);
	assert.equal(empty.record.text, '', 'proto3 JSON omits an empty value');
	const gone = decodeEventJson({ ...ev(3, 'k'), valueOmitted: true }, true);
	assert.equal(gone.valueOmitted, true);
	assert.equal(gone.record.text, undefined);
});

test('decodeEventJson refuses events without a revision or not objects', () => {
	assert.throws(() => decodeEventJson({ type: 'EVENT_PUT', record: { key: 'k' } }, false),
		(e) => e instanceof DataSyncError && e.reason === 'BAD_RESPONSE');
	assert.throws(() => decodeEventJson('x', false), DataSyncError);
	assert.throws(() => decodeEventJson({ revision: '9007199254740993' }, false), DataSyncError);
});

test('WatchCursor delivers each event once and never goes back', () => {
	const c = new WatchCursor(10);
	assert.equal(c.after, 10);
	assert.equal(c.accept({ revision: 9 }), false);
	assert.equal(c.accept({ revision: 10 }), false, 'the start revision itself is not after it');
	assert.equal(c.accept({ revision: 11 }), true);
	assert.equal(c.accept({ revision: 13 }), true);
	assert.equal(c.accept({ revision: 12 }), false);
	assert.equal(c.revision, 13);
});

test('WatchCursor resumes a revision broken mid-way without repeating or skipping', () => {
	const c = new WatchCursor(4);
	assert.ok(c.accept({ revision: 5 }));
	assert.ok(c.accept({ revision: 5 }), 'a second event of the same revision');
	// The stream breaks here: maybe revision 5 had a third event.
	assert.equal(c.after, 4, 'resume before the partial revision');
	c.resumed();
	assert.equal(c.accept({ revision: 5 }), false, 'first one again: skipped');
	assert.equal(c.accept({ revision: 5 }), false, 'second one again: skipped');
	assert.equal(c.accept({ revision: 5 }), true, 'the third is new');
	assert.equal(c.accept({ revision: 6 }), true);
	c.complete(6);
	assert.equal(c.after, 6, 'a complete revision resumes after itself');
	c.complete(9);
	assert.equal(c.after, 9, 'a progress reply moves the cursor');
	c.complete(7);
	assert.equal(c.after, 9, 'never backwards');
});

test('WatchCursor resumes a partial first revision after 0 (0 is a cursor; "from now" is no after)', () => {
	const c = new WatchCursor(0);
	assert.ok(c.accept({ revision: 1 }));
	assert.equal(c.after, 0, 'revision 1 is asked for again');
	c.resumed();
	assert.ok(!c.accept({ revision: 1 }), 'its delivered event is skipped');
	assert.ok(c.accept({ revision: 1 }), 'the rest of revision 1 is delivered');
	c.complete(1);
	assert.equal(c.after, 1);
});

test('watchBackoffMs doubles from the minimum up to the cap, with jitter, never 0', () => {
	assert.equal(watchBackoffMs(1, () => 0.999999), WATCH_BACKOFF_MIN_MS - 1);
	assert.equal(watchBackoffMs(3, () => 0.999999), 4 * WATCH_BACKOFF_MIN_MS - 1);
	assert.equal(watchBackoffMs(100, () => 0.999999), WATCH_BACKOFF_MAX_MS - 1);
	assert.equal(watchBackoffMs(1, () => 0), WATCH_BACKOFF_MIN_MS / 2);
	for (let i = 1; i < 40; i++) {
		const d = watchBackoffMs(i);
		assert.ok(d > 0 && d <= WATCH_BACKOFF_MAX_MS, `failure ${i}: ${d}`);
	}
});

test('watchQuery names the key or the prefix, the cursor, timeout and values', () => {
	assert.equal(watchQuery({ prefix: 'a/', after: 7 }), 'prefix=a%2F&after=7');
	assert.equal(watchQuery({ prefix: 'ignored', key: 'k 1', after: 0, timeoutMs: 30000, values: true }),
		'key=k+1&after=0&timeout=30000&values=1');
});

test('a 410 REVISION_COMPACTED becomes RevisionCompactedError with compactRevision', async () => {
	const e = await errorFromResponse(json({
		code: 'OUT_OF_RANGE', reason: 'REVISION_COMPACTED', message: 'revision 3 was compacted', compactRevision: '40',
	}, 410));
	assert.ok(e instanceof RevisionCompactedError);
	assert.equal(e.compactRevision, 40);
	assert.equal(e.status, 410);
});

/* --- long polls ----------------------------------------------------------- */

test('poll: after 0 (an empty store\'s revision) is sent as is, not pinned to now', async () => {
	const ff = pollFetch((url, n) => {
		if (n === 1) {
			assert.equal(url.searchParams.get('after'), '0');
			assert.notEqual(url.searchParams.get('timeout'), '1', 'no pinning poll');
			return json({ events: [ev(1, 'demo/first')], revision: '1' });
		}
		return undefined;
	});
	/** @type {string[]} */
	const seen = [];
	const h = client(ff).watch('demo/', (e) => seen.push(`${e.revision} ${e.key}`), { after: 0 });
	await until(() => ff.urls.length >= 2, 'the second poll');
	assert.deepEqual(seen, ['1 demo/first'], 'the write made before the watch started');
	assert.equal(new URL(ff.urls[1]).searchParams.get('after'), '1');
	h.close();
	assert.equal(await h.closed, null);
});

/** @param {ReturnType<typeof pollFetch>} ff @param {object} [opts] */
function client(ff, opts = {}) {
	return new DataSyncClient({ baseUrl: 'http://gw.test', fetch: ff.fetch, window: null, EventSource: null, ...opts });
}

test('poll: "from now" (no after) is pinned first, then events arrive once, in order', async () => {
	const ff = pollFetch((url, n) => {
		if (n === 1) {
			assert.equal(url.searchParams.get('after'), null, 'from now: no after');
			assert.equal(url.searchParams.get('timeout'), '1', 'the pinning poll does not wait');
			return json({ revision: '20' });
		}
		if (n === 2) {
			assert.equal(url.searchParams.get('after'), '20');
			assert.equal(url.searchParams.get('prefix'), 'demo/');
			return json({ events: [ev(21, 'demo/a'), ev(22, 'demo/b', 'EVENT_LOCK')], revision: '22' });
		}
		if (n === 3) {
			assert.equal(url.searchParams.get('after'), '22');
			return json({ revision: '25' }); // progress: nothing to deliver
		}
		if (n === 4) {
			assert.equal(url.searchParams.get('after'), '25', 'a progress reply moves the cursor');
			return json({ events: [ev(24, 'demo/old'), ev(26, 'demo/c')], revision: '26' });
		}
		return undefined;
	});
	/** @type {string[]} */
	const seen = [];
	/** @type {string[]} */
	const opened = [];
	const h = client(ff).watch('demo/', (e) => seen.push(`${e.revision} ${e.type} ${e.key}`),
		{ onOpen: (t) => opened.push(t) });
	assert.equal(h.transport, 'poll', 'no EventSource: long polls');
	await until(() => ff.urls.length >= 5, 'the fifth poll');
	assert.deepEqual(seen, ['21 put demo/a', '22 lock demo/b', '26 put demo/c']);
	assert.deepEqual(opened, ['poll'], 'onOpen once, not per poll');
	assert.equal(h.revision, 26);
	h.close();
	assert.equal(await h.closed, null);
});

test('poll: after a network error it backs off and resumes from the last revision', async () => {
	/** @type {number[]} */
	const at = [];
	const ff = pollFetch((url, n) => {
		at.push(Date.now());
		if (n === 1) {
			return json({ events: [ev(8, 'k', 'EVENT_PUT', { updatedBy: 'alice' })], revision: '8' });
		}
		if (n === 2) {
			return new TypeError('Failed to fetch');
		}
		if (n === 3) {
			return json({ code: 'UNAVAILABLE', reason: 'OVERLOADED', message: 'busy' }, 503);
		}
		if (n === 4) {
			assert.equal(url.searchParams.get('after'), '8', 'resumes where it was');
			return json({ events: [ev(8, 'k'), ev(9, 'k', 'EVENT_DELETE')], revision: '9' });
		}
		return undefined;
	});
	/** @type {string[]} */
	const seen = [];
	/** @type {{fatal: boolean, retryInMs: number, reason: string}[]} */
	const errors = [];
	const h = client(ff).watch('', (e) => seen.push(`${e.revision} ${e.type}`), {
		key: 'k', after: 7,
		onError: (err, info) => errors.push({ ...info, reason: err.reason }),
	});
	await until(() => ff.urls.length >= 5, 'the fifth poll');
	assert.equal(ff.urls[0].searchParams.get('key'), 'k');
	assert.equal(ff.urls[0].searchParams.has('prefix'), false);
	assert.deepEqual(seen, ['8 put', '9 delete'], 'nothing twice, nothing lost');
	assert.deepEqual(errors.map((e) => [e.reason, e.fatal]), [['NETWORK_ERROR', false], ['OVERLOADED', false]]);
	assert.ok(errors.every((e) => e.retryInMs >= WATCH_BACKOFF_MIN_MS / 2));
	assert.ok(at[2] - at[1] >= WATCH_BACKOFF_MIN_MS / 2 - 5, 'it waited before retrying');
	h.close();
});

test('poll: a compacted cursor stops the watch and calls onReset', async () => {
	const ff = pollFetch(() => json({ code: 'OUT_OF_RANGE', reason: 'REVISION_COMPACTED', message: 'gone', compactRevision: '50' }, 410));
	/** @type {RevisionCompactedError[]} */
	const resets = [];
	const h = client(ff).watch('p/', () => assert.fail('no events'), { after: 3, onReset: (e) => resets.push(e) });
	const why = await h.closed;
	assert.ok(why instanceof RevisionCompactedError);
	assert.equal(resets.length, 1);
	assert.equal(resets[0].compactRevision, 50);
	assert.equal(ff.urls.length, 1, 'no retry after a reset');
});

test('poll: a 400 is fatal: reported once, not retried', async () => {
	const ff = pollFetch(() => json({ code: 'INVALID_ARGUMENT', reason: 'TOO_LARGE', message: 'prefix', field: 'prefix' }, 400));
	/** @type {boolean[]} */
	const fatal = [];
	const h = client(ff).watch('x', () => {}, { after: 1, onError: (_, i) => fatal.push(i.fatal) });
	const why = await h.closed;
	assert.equal(why?.reason, 'TOO_LARGE');
	assert.deepEqual(fatal, [true]);
	assert.equal(ff.urls.length, 1);
});

test('poll: close() from onEvent stops at once; nothing more is delivered', async () => {
	const ff = pollFetch((_, n) => (n === 1 ? json({ events: [ev(2, 'a'), ev(3, 'b')], revision: '3' }) : undefined));
	/** @type {number[]} */
	const seen = [];
	const h = client(ff).watch('', (e) => { seen.push(e.revision); h.close(); }, { after: 1 });
	assert.equal(await h.closed, null);
	assert.deepEqual(seen, [2]);
	assert.equal(ff.urls.length, 1);
});

/* --- Server-Sent Events ---------------------------------------------------- */

/** A stand-in EventSource the test drives by hand. */
class FakeEventSource {
	/** @type {FakeEventSource[]} */
	static all = [];
	/** @param {string} url */
	constructor(url) {
		this.url = new URL(url);
		this.closed = false;
		/** @type {Record<string, ((m: {data: string}) => void)[]>} */
		this.listeners = {};
		/** @type {(() => void) | null} */
		this.onopen = null;
		/** @type {(() => void) | null} */
		this.onerror = null;
		FakeEventSource.all.push(this);
	}

	/** @param {string} t @param {(m: {data: string}) => void} fn */
	addEventListener(t, fn) {
		(this.listeners[t] ??= []).push(fn);
	}

	close() {
		this.closed = true;
	}

	/** @param {string} t @param {any} data */
	emit(t, data) {
		for (const fn of this.listeners[t] ?? []) {
			fn({ data: JSON.stringify(data) });
		}
	}
}

/** @param {ReturnType<typeof pollFetch>} ff */
function sseClient(ff) {
	FakeEventSource.all = [];
	return client(ff, { EventSource: /** @type {any} */ (FakeEventSource) });
}

test('sse: events by type name, then a broken stream resumes from the cursor', async () => {
	const ff = pollFetch(() => assert.fail('no long poll while the stream works'));
	/** @type {string[]} */
	const seen = [];
	/** @type {string[]} */
	const opened = [];
	const h = sseClient(ff).watch('t/', (e) => seen.push(`${e.revision} ${e.type} ${e.key}`),
		{ after: 5, values: true, onOpen: (t) => opened.push(t) });
	assert.equal(h.transport, 'sse');
	const es = FakeEventSource.all[0];
	assert.equal(es.url.pathname, '/v1/events');
	assert.equal(es.url.searchParams.get('after'), '5');
	assert.equal(es.url.searchParams.get('values'), '1');
	es.onopen?.();
	es.emit('put', ev(6, 't/1', 'EVENT_PUT', { value: b64('x') }));
	es.emit('lock', ev(7, 't/1', 'EVENT_LOCK'));
	es.emit('lock', ev(7, 't/2', 'EVENT_LOCK')); // a revision with two events
	es.onerror?.();
	assert.ok(es.closed, 'the broken stream is closed, not left to reconnect itself');
	await until(() => FakeEventSource.all.length === 2, 'a new stream');
	const es2 = FakeEventSource.all[1];
	assert.equal(es2.url.searchParams.get('after'), '6', 'revision 7 may be partial: from before it');
	es2.onopen?.();
	es2.emit('lock', ev(7, 't/1', 'EVENT_LOCK'));
	es2.emit('lock', ev(7, 't/2', 'EVENT_LOCK'));
	es2.emit('unlock', ev(7, 't/3', 'EVENT_UNLOCK'));
	es2.emit('expire', ev(8, 't/1', 'EVENT_EXPIRE'));
	assert.deepEqual(seen, ['6 put t/1', '7 lock t/1', '7 lock t/2', '7 unlock t/3', '8 expire t/1']);
	assert.deepEqual(opened, ['sse', 'sse']);
	h.close();
	assert.ok(es2.closed);
});

test('sse: event: reset stops the watch and calls onReset', async () => {
	const ff = pollFetch(() => assert.fail('no long poll'));
	/** @type {RevisionCompactedError[]} */
	const resets = [];
	const h = sseClient(ff).watch('', () => {}, { after: 2, onReset: (e) => resets.push(e) });
	const es = FakeEventSource.all[0];
	es.onopen?.();
	es.emit('reset', { compactRevision: '30', revision: '44' });
	assert.ok(await h.closed instanceof RevisionCompactedError);
	assert.equal(resets[0].compactRevision, 30);
	assert.equal(resets[0].revision, 44);
	assert.ok(es.closed);
});

test('sse: a stream that does not open is probed with a short poll, which finds a 410', async () => {
	const ff = pollFetch((url) => {
		assert.equal(url.searchParams.get('timeout'), '1');
		return json({ code: 'OUT_OF_RANGE', reason: 'REVISION_COMPACTED', message: 'gone', compactRevision: '9' }, 410);
	});
	/** @type {number[]} */
	const resets = [];
	const h = sseClient(ff).watch('', () => {}, { after: 2, onReset: (e) => resets.push(e.compactRevision ?? -1) });
	FakeEventSource.all[0].onerror?.();
	await h.closed;
	assert.deepEqual(resets, [9]);
});

test('auto: SSE that keeps failing to open falls back to long polls; the probes deliver', async () => {
	const ff = pollFetch((url, n) => {
		if (n === 1) {
			return json({ events: [ev(4, 'k')], revision: '4' });
		}
		if (n < WATCH_SSE_FALLBACK_AFTER + 2) {
			return json({ revision: '4' });
		}
		assert.equal(url.searchParams.get('after'), '4');
		return undefined;
	});
	/** @type {number[]} */
	const seen = [];
	const h = sseClient(ff).watch('', (e) => seen.push(e.revision), { after: 3 });
	for (let i = 0; i < WATCH_SSE_FALLBACK_AFTER; i++) {
		await until(() => FakeEventSource.all.length === i + 1, `stream ${i + 1}`);
		FakeEventSource.all[i].onerror?.();
	}
	await until(() => h.transport === 'poll' && ff.urls.length >= WATCH_SSE_FALLBACK_AFTER + 1, 'long polls');
	await until(() => ff.urls.some((u) => u.searchParams.get('timeout') === '30000'), 'a real long poll');
	assert.equal(FakeEventSource.all.length, WATCH_SSE_FALLBACK_AFTER, 'no more streams');
	assert.deepEqual(seen, [4]);
	h.close();
});

test('transport: "poll" forces long polls even with EventSource; "sse" without it throws', () => {
	const ff = pollFetch(() => undefined);
	const h = sseClient(ff).watch('', () => {}, { after: 1, transport: 'poll' });
	assert.equal(h.transport, 'poll');
	assert.equal(FakeEventSource.all.length, 0);
	h.close();
	assert.throws(() => client(ff).watch('', () => {}, { transport: 'sse' }), TypeError);
	assert.throws(() => client(ff).watch('', () => {}, { transport: 'ws' }), TypeError);
	assert.throws(() => client(ff).watch('', () => {}, { after: -1 }), TypeError);
});

/* --- lock waits ------------------------------------------------------------ */

test('lock(key, owner, {ttlMs, waitMs}) sends waitMs; lock(key, opts) still works', async () => {
	/** @type {any[]} */
	const bodies = [];
	/** @param {string} _u @param {RequestInit} [init] */
	const f = async (_u, init = {}) => {
		bodies.push(JSON.parse(String(init.body)));
		return json({ lockToken: 'ab'.repeat(16), lock: { owner: 'bob', expiresAtMs: '1', fencingToken: '1' } });
	};
	const c = new DataSyncClient({ baseUrl: 'http://gw.test', fetch: /** @type {any} */ (f), window: null });
	const h1 = await c.lock('k', 'bob', { ttlMs: 5000, waitMs: 20000, autoRenew: false });
	const h2 = await c.lock('k', { owner: 'ann', autoRenew: false });
	assert.deepEqual(bodies, [{ owner: 'bob', ttlMs: 5000, waitMs: 20000 }, { owner: 'ann', ttlMs: 30000 }]);
	assert.equal(h1.owner, 'bob');
	assert.equal(h2.owner, 'ann');
	await assert.rejects(c.lock('k', 'bob', { waitMs: LOCK_WAIT_MAX_MS + 1 }), TypeError);
});

test('a lock that waited in line longer than ttl/3 is renewed at once (its local deadline re-measured)', async () => {
	/** @type {(string|null)[]} */
	const seen = [];
	const realNow = Date.now;
	let offset = 0;
	Date.now = () => realNow() + offset;
	try {
		/** @param {string} _u @param {RequestInit} [init] */
		const f = async (_u, init = {}) => {
			const token = new Headers(init.headers).get('Lock-Token');
			seen.push(token);
			if (!token) {
				offset += 20000; // the clock moves on while the request waits in line
			}
			return json({ lockToken: 'cd'.repeat(16), renewed: !!token, lock: { owner: 'bob', expiresAtMs: '1', fencingToken: '1' } });
		};
		const c = new DataSyncClient({ baseUrl: 'http://gw.test', fetch: /** @type {any} */ (f), window: null });
		// ttl/3 is 10 s: only the immediate renewal can come within until()'s 5 s.
		const h = await c.lock('k', 'bob', { ttlMs: 30000, waitMs: 30000 });
		await until(() => seen.length === 2, 'the renewal right after the wait');
		assert.deepEqual(seen, [null, 'cd'.repeat(16)]);
		await h.release();
	} finally {
		Date.now = realNow;
	}
});
