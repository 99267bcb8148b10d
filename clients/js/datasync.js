// datasync.js - browser client for datasync's HTTP + JSON gateway.
//
// One ES module, no build step, no dependencies. Import it from the
// gateway that serves it:
//
//   import { DataSyncClient, ConflictError } from '/datasync.js';
//
// It speaks the REST routes of DESIGN.md §6: every record has a version,
// every write says which version it expects (If-Match / If-None-Match),
// conflicts come back as ConflictError carrying the current record, and
// leased locks come back as LockHandle objects that renew themselves while
// held and are released when the page goes away.
//
// Decisions a caller should know:
// - A write without a precondition is refused locally with a
//   PreconditionRequiredError (no request is sent): a 428 can only ever
//   mean a bug in the caller, and refusing early keeps the stack trace at
//   the call site. A 428 from the server still maps to the same class.
// - Versions, revisions, timestamps and fencing tokens are JavaScript
//   numbers. The gateway sends 64-bit integers as strings (proto3 JSON);
//   a value beyond Number.MAX_SAFE_INTEGER is rejected as BAD_RESPONSE
//   rather than silently rounded, because a rounded version would be sent
//   back in If-Match.
// - Names travel in HTTP headers percent-encoded as UTF-8 (the gateway's
//   convention: Author is sent encodeURIComponent'd; Lock-Owner and
//   Record-Updated-By come back encoded and are decoded here), so any text
//   works as an author or owner name.
// - merge3 recurses into nested plain objects; arrays and every other
//   value are compared and taken whole (see merge3).
//
// The module works unchanged in Node.js 18+ (fetch, Response, TextDecoder
// and atob are globals there), which is how its unit tests run.

/* --- types ------------------------------------------------------------ */

/**
 * Who holds a lock and until when. Never contains the secret token.
 * @typedef {object} LockState
 * @property {string} owner         shown to everybody
 * @property {number} expiresAt     ms since the Unix epoch (server clock)
 * @property {number} fencingToken  store-wide, grows on every acquisition
 */

/**
 * A record as read with get(), or as carried by a ConflictError.
 * @typedef {object} RecordView
 * @property {string} key
 * @property {boolean} notModified  true for a 304 (If-None-Match matched);
 *   then value, text and bytes are undefined
 * @property {number} version       per key; 1 on create, never reused
 * @property {number|undefined} revision  store-wide revision of the last
 *   change (undefined when the response did not carry it)
 * @property {number|undefined} createdAt ms since the epoch
 * @property {number|undefined} updatedAt ms since the epoch
 * @property {string} updatedBy     author of the last change ('' if unknown)
 * @property {string} contentType
 * @property {LockState|null|undefined} lock  null when unlocked; undefined
 *   when the response said nothing about the lock (a 304 without record
 *   headers)
 * @property {boolean} deleted      a tombstone (only in conflicts)
 * @property {string|undefined} etag the ETag exactly as sent
 * @property {Uint8Array|undefined} bytes  the raw value
 * @property {string|undefined} text the value decoded as UTF-8
 * @property {any} value            parsed JSON when the content type is
 *   JSON (and parses), the text otherwise
 * @property {() => any} json       parses text as JSON (throws if it is not)
 */

/**
 * What a successful put() returns: the record as written, without value.
 * @typedef {object} WriteResult
 * @property {string} key
 * @property {number} version
 * @property {number|undefined} revision
 * @property {number|undefined} createdAt
 * @property {number|undefined} updatedAt
 * @property {string} updatedBy
 * @property {string} contentType
 * @property {boolean} created      true for 201 (the record did not exist)
 * @property {string|undefined} etag
 */

/**
 * Who the caller is, as GET /v1/session (WhoAmI) says.
 * @typedef {object} SessionInfo
 * @property {boolean} authRequired  the server requires tokens
 * @property {boolean} authenticated the request carried a valid token
 * @property {{name: string, grants: string[]}|null} token when authenticated
 */

/**
 * A precondition for put() and del(): exactly one of ifMatch / ifAbsent.
 * @typedef {object} WriteOptions
 * @property {number|string} [ifMatch]  the version the write expects, or
 *   '*' for "exists, any version" (an overwrite on purpose)
 * @property {boolean} [ifAbsent]   create only (If-None-Match: *)
 * @property {string} [lockToken]   the token of a lock this caller holds
 * @property {string} [contentType] overrides the derived content type
 * @property {string} [idempotencyKey] makes a retried write safe
 * @property {AbortSignal} [signal]
 */

/**
 * @typedef {object} ClientOptions
 * @property {string} [baseUrl]   gateway origin (and path prefix); default:
 *   the page's own origin
 * @property {string} [author]    sent as Author on writes (stored as
 *   updatedBy); any text of at most 128 UTF-8 bytes
 * @property {string|null} [token] a token secret ("dst_..."): sent as
 *   `Authorization: Bearer` on every request, for callers outside a
 *   browser (Node, scripts). In a page prefer signIn(), whose HttpOnly
 *   cookie script cannot read. With a token, watch() uses long polls
 *   (EventSource cannot send a header)
 * @property {(err: DataSyncError) => void} [onUnauthenticated] called
 *   when a request is answered 401 (no token, or one refused or revoked):
 *   where a page shows its sign-in form again
 * @property {typeof fetch} [fetch] a fetch implementation (tests, Node)
 * @property {EventTarget|null} [window] where to listen for pagehide;
 *   default globalThis when it has addEventListener
 * @property {typeof EventSource|null} [EventSource] for watch() (tests);
 *   default the global one; null = long polls only
 */

/* --- errors ----------------------------------------------------------- */

/**
 * DataSyncError is every failure this module reports: an HTTP error with
 * the gateway's JSON body, a network failure (status 0, code UNAVAILABLE,
 * reason NETWORK_ERROR) or a request refused locally (status 0).
 */
export class DataSyncError extends Error {
	/**
	 * @param {string} message
	 * @param {object} [init]
	 * @param {number} [init.status]   HTTP status; 0 when no reply
	 * @param {string} [init.code]     gRPC-style code name, e.g. ABORTED
	 * @param {string} [init.reason]   machine reason, e.g. VERSION_CONFLICT
	 * @param {string} [init.field]    the offending field, when named
	 * @param {any} [init.body]        the decoded error body
	 * @param {number} [init.retryAfterMs] from Retry-After
	 * @param {unknown} [init.cause]
	 */
	constructor(message, init = {}) {
		super(message, init.cause === undefined ? undefined : { cause: init.cause });
		this.name = 'DataSyncError';
		/** @type {number} */
		this.status = init.status ?? 0;
		/** @type {string} */
		this.code = init.code ?? '';
		/** @type {string} */
		this.reason = init.reason ?? '';
		/** @type {string|undefined} */
		this.field = init.field;
		/** @type {any} */
		this.body = init.body;
		/** @type {number|undefined} */
		this.retryAfterMs = init.retryAfterMs;
	}
}

/**
 * ConflictError: the write's precondition failed (HTTP 412, or 409 on the
 * /rpc/ route). `current` is the record as it is now, decoded, so the
 * caller can discard, merge or overwrite without another request. An
 * overwrite should be put(key, mine, {ifMatch: err.current.version}) so
 * that a third writer still causes a conflict. `current` is null when the
 * key does not exist, and has deleted: true (no value) when it was deleted;
 * either way the overwrite is put(key, mine, {ifAbsent: true}).
 */
export class ConflictError extends DataSyncError {
	/**
	 * @param {string} message
	 * @param {ConstructorParameters<typeof DataSyncError>[1] & {current?: RecordView|null}} init
	 */
	constructor(message, init) {
		super(message, init);
		this.name = 'ConflictError';
		/** @type {RecordView|null} the current record; null if absent */
		this.current = init.current ?? null;
	}
}

/**
 * LockedError: another holder's lease blocks this request (HTTP 423).
 * owner / expiresAt / fencingToken describe that lease.
 */
export class LockedError extends DataSyncError {
	/**
	 * @param {string} message
	 * @param {ConstructorParameters<typeof DataSyncError>[1] & {current?: RecordView|null, lock?: LockState|null}} init
	 */
	constructor(message, init) {
		super(message, init);
		this.name = 'LockedError';
		const lock = init.lock ?? null;
		/** @type {RecordView|null} */
		this.current = init.current ?? null;
		/** @type {string} */
		this.owner = lock ? lock.owner : '';
		/** @type {number|undefined} ms since the epoch */
		this.expiresAt = lock ? lock.expiresAt : undefined;
		/** @type {number|undefined} */
		this.fencingToken = lock ? lock.fencingToken : undefined;
	}
}

/**
 * LockExpiredError: this caller's lease ran out: the server said
 * LOCK_EXPIRED, or a renewal could not get through before the lease's end
 * (then status is 0).
 */
export class LockExpiredError extends DataSyncError {
	/** @param {string} message @param {ConstructorParameters<typeof DataSyncError>[1]} [init] */
	constructor(message, init) {
		super(message, { code: 'FAILED_PRECONDITION', reason: 'LOCK_EXPIRED', ...init });
		this.name = 'LockExpiredError';
	}
}

/** PreconditionRequiredError: a write without If-Match / If-None-Match. */
export class PreconditionRequiredError extends DataSyncError {
	/** @param {string} message @param {ConstructorParameters<typeof DataSyncError>[1]} [init] */
	constructor(message, init) {
		super(message, { code: 'FAILED_PRECONDITION', reason: 'PRECONDITION_REQUIRED', ...init });
		this.name = 'PreconditionRequiredError';
	}
}

/** NotFoundError: the record (or that version of it) does not exist. */
export class NotFoundError extends DataSyncError {
	/** @param {string} message @param {ConstructorParameters<typeof DataSyncError>[1]} [init] */
	constructor(message, init) {
		super(message, init);
		this.name = 'NotFoundError';
	}
}

/** VersionCompactedError: that version fell out of history (HTTP 410). */
export class VersionCompactedError extends DataSyncError {
	/** @param {string} message @param {ConstructorParameters<typeof DataSyncError>[1]} [init] */
	constructor(message, init) {
		super(message, init);
		this.name = 'VersionCompactedError';
	}
}

/**
 * RevisionCompactedError: a watch cursor older than the server's change
 * log keeps (HTTP 410, reason REVISION_COMPACTED). Re-read (list() or
 * get() return their revision) and watch again from there.
 */
export class RevisionCompactedError extends DataSyncError {
	/**
	 * @param {string} message
	 * @param {ConstructorParameters<typeof DataSyncError>[1] & {compactRevision?: number, revision?: number}} [init]
	 */
	constructor(message, init = {}) {
		super(message, { code: 'OUT_OF_RANGE', reason: 'REVISION_COMPACTED', ...init });
		this.name = 'RevisionCompactedError';
		/** @type {number|undefined} the oldest revision a cursor may name */
		this.compactRevision = init.compactRevision;
		/** @type {number|undefined} the store's revision, when told */
		this.revision = init.revision;
	}
}

/** TooLargeError: the value exceeds the server's limit (HTTP 413). */
export class TooLargeError extends DataSyncError {
	/** @param {string} message @param {ConstructorParameters<typeof DataSyncError>[1]} [init] */
	constructor(message, init) {
		super(message, init);
		this.name = 'TooLargeError';
	}
}

/**
 * UnauthenticatedError: no token, or one the server refused (HTTP 401,
 * reason TOKEN_MISSING, TOKEN_MALFORMED, TOKEN_UNKNOWN or TOKEN_REVOKED):
 * sign in (again).
 */
export class UnauthenticatedError extends DataSyncError {
	/** @param {string} message @param {ConstructorParameters<typeof DataSyncError>[1]} [init] */
	constructor(message, init) {
		super(message, init);
		this.name = 'UnauthenticatedError';
	}
}

/**
 * PermissionDeniedError: the token is valid but lacks the right (HTTP 403,
 * reason PERMISSION_DENIED); the message names the right and the prefix.
 */
export class PermissionDeniedError extends DataSyncError {
	/** @param {string} message @param {ConstructorParameters<typeof DataSyncError>[1]} [init] */
	constructor(message, init) {
		super(message, init);
		this.name = 'PermissionDeniedError';
	}
}

/**
 * decodeSession reads a /v1/session body into a SessionInfo.
 * @param {any} j
 * @returns {SessionInfo}
 */
export function decodeSession(j) {
	const t = j && typeof j.token === 'object' && j.token !== null ? j.token : null;
	return {
		authRequired: !!(j && j.authRequired === true),
		authenticated: !!(j && j.authenticated === true),
		token: t && typeof t.name === 'string'
			? { name: t.name, grants: Array.isArray(t.grants) ? t.grants.filter((/** @type {any} */ g) => typeof g === 'string') : [] }
			: null,
	};
}

/* --- small pure helpers (exported for tests and advanced callers) ----- */

/**
 * encodeKey turns a record key into its URL path: each '/'-separated
 * segment percent-encoded, the slashes kept, except one: the gateway reads
 * a path ending in a literal "/lock" or "/unlock" as the lock routes, so
 * the slash before a last segment "lock" / "unlock" is sent as %2F (the
 * gateway decodes it back into the key).
 * @param {string} key
 * @returns {string}
 */
export function encodeKey(key) {
	if (typeof key !== 'string' || key.length === 0) {
		throw new TypeError('datasync: key must be a non-empty string');
	}
	const segs = key.split('/').map(encodeURIComponent);
	const last = segs[segs.length - 1];
	if (segs.length > 1 && (last === 'lock' || last === 'unlock')) {
		return `${segs.slice(0, -1).join('/')}%2F${last}`;
	}
	return segs.join('/');
}

/**
 * parseInt64 reads a proto3 JSON / header integer (string or number).
 * Returns undefined for undefined, null or ''. Throws a DataSyncError
 * (reason BAD_RESPONSE) for anything that is not a safe integer.
 * @param {unknown} v
 * @param {string} what   named in the error
 * @returns {number|undefined}
 */
export function parseInt64(v, what) {
	if (v === undefined || v === null || v === '') {
		return undefined;
	}
	const n = typeof v === 'number' ? v :
		(typeof v === 'string' && /^-?\d+$/.test(v.trim())) ? Number(v.trim()) : NaN;
	if (!Number.isSafeInteger(n)) {
		throw new DataSyncError(`datasync: ${what} is not a safe integer: ${String(v)}`,
			{ code: 'INTERNAL', reason: 'BAD_RESPONSE' });
	}
	return n;
}

/**
 * parseETag reads the version out of an ETag ("3" or W/"3").
 * Returns undefined when there is none or it is not a version.
 * @param {string|null|undefined} etag
 * @returns {number|undefined}
 */
export function parseETag(etag) {
	if (!etag) {
		return undefined;
	}
	const m = /^\s*(?:W\/)?"(\d+)"\s*$/.exec(etag);
	return m ? parseInt64(m[1], 'ETag') : undefined;
}

/**
 * parseRetryAfter reads Retry-After (seconds or an HTTP date) as ms.
 * @param {string|null} v
 * @param {number} [now]
 * @returns {number|undefined}
 */
export function parseRetryAfter(v, now = Date.now()) {
	if (!v) {
		return undefined;
	}
	if (/^\s*\d+\s*$/.test(v)) {
		return Number(v) * 1000;
	}
	const t = Date.parse(v);
	return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

/**
 * isJsonType tells whether a content type is JSON (application/json,
 * application/x+json, with or without parameters).
 * @param {string|null|undefined} ct
 * @returns {boolean}
 */
export function isJsonType(ct) {
	if (!ct) {
		return false;
	}
	const base = ct.split(';')[0].trim().toLowerCase();
	return base === 'application/json' || /^application\/[^/]+\+json$/.test(base);
}

/**
 * parseLockHeaders reads Lock-Owner / Lock-Expires-At / Lock-Fencing-Token.
 * @param {Headers} h
 * @returns {LockState|null}
 */
export function parseLockHeaders(h) {
	const owner = decodeHeaderText(h.get('Lock-Owner'));
	const expires = h.get('Lock-Expires-At');
	if (owner === null && expires === null) {
		return null;
	}
	return {
		owner: owner ?? '',
		expiresAt: parseInt64(expires, 'Lock-Expires-At') ?? 0,
		fencingToken: parseInt64(h.get('Lock-Fencing-Token'), 'Lock-Fencing-Token') ?? 0,
	};
}

/**
 * decodeLockJson reads a proto3 JSON LockInfo.
 * @param {any} l
 * @returns {LockState|null}
 */
export function decodeLockJson(l) {
	if (!l || typeof l !== 'object') {
		return null;
	}
	return {
		owner: typeof l.owner === 'string' ? l.owner : '',
		expiresAt: parseInt64(l.expiresAtMs, 'lock.expiresAtMs') ?? 0,
		fencingToken: parseInt64(l.fencingToken, 'lock.fencingToken') ?? 0,
	};
}

const utf8 = new TextDecoder('utf-8');

/**
 * base64ToBytes decodes standard or URL-safe base64, padded or not
 * (proto3 JSON accepts both).
 * @param {string} s
 * @returns {Uint8Array}
 */
export function base64ToBytes(s) {
	let t = s.replace(/-/g, '+').replace(/_/g, '/').replace(/\s+/g, '');
	while (t.length % 4 !== 0) {
		t += '=';
	}
	const bin = atob(t);
	const out = new Uint8Array(bin.length);
	for (let i = 0; i < bin.length; i++) {
		out[i] = bin.charCodeAt(i);
	}
	return out;
}

/**
 * viewOf builds a RecordView around a value's bytes.
 * @param {Omit<RecordView, 'text'|'value'|'json'|'bytes'>} meta
 * @param {Uint8Array|undefined} bytes
 * @returns {RecordView}
 */
function viewOf(meta, bytes) {
	const text = bytes === undefined ? undefined : utf8.decode(bytes);
	let value = text;
	if (text !== undefined && isJsonType(meta.contentType)) {
		try {
			value = JSON.parse(text);
		} catch {
			value = text; // a JSON content type with a body that is not JSON
		}
	}
	return {
		...meta,
		bytes,
		text,
		value,
		json() {
			if (text === undefined) {
				throw new TypeError('datasync: this response has no value (304)');
			}
			return JSON.parse(text);
		},
	};
}

/**
 * decodeRecordJson turns a proto3 JSON Record (value in base64) into a
 * RecordView. Used for the `current` record of conflicts.
 * @param {any} r
 * @returns {RecordView|null}
 */
export function decodeRecordJson(r) {
	if (!r || typeof r !== 'object') {
		return null;
	}
	const version = parseInt64(r.version, 'current.version') ?? 0;
	return viewOf({
		key: typeof r.key === 'string' ? r.key : '',
		notModified: false,
		version,
		revision: parseInt64(r.revision, 'current.revision'),
		createdAt: parseInt64(r.createdAtMs, 'current.createdAtMs'),
		updatedAt: parseInt64(r.updatedAtMs, 'current.updatedAtMs'),
		updatedBy: typeof r.updatedBy === 'string' ? r.updatedBy : '',
		contentType: typeof r.contentType === 'string' ? r.contentType : '',
		lock: decodeLockJson(r.lock),
		deleted: r.deleted === true,
		etag: version ? `"${version}"` : undefined,
	}, typeof r.value === 'string' ? base64ToBytes(r.value) : (r.deleted ? undefined : new Uint8Array(0)));
}

/**
 * errorFromResponse decodes a non-2xx reply into the matching error class.
 * The body is the gateway's JSON error {code, reason, message, field?,
 * current?}; a body that is not JSON still yields an error with the status
 * and the body's first line as message.
 * @param {Response} res
 * @returns {Promise<DataSyncError>}
 */
export async function errorFromResponse(res) {
	let text = '';
	try {
		text = await res.text();
	} catch {
		text = '';
	}
	/** @type {any} */
	let body = null;
	try {
		body = text ? JSON.parse(text) : null;
	} catch {
		body = null;
	}
	if (!body || typeof body !== 'object') {
		body = {};
	}
	const status = res.status;
	const code = typeof body.code === 'string' ? body.code : '';
	const reason = typeof body.reason === 'string' ? body.reason : '';
	const firstLine = text.split('\n')[0].slice(0, 200);
	const message = typeof body.message === 'string' && body.message
		? body.message
		: `HTTP ${status}${firstLine ? `: ${firstLine}` : ''}`;
	/** @type {RecordView|null} */
	let current = null;
	try {
		current = decodeRecordJson(body.current);
	} catch {
		current = null; // a malformed detail must not hide the error itself
	}
	const init = {
		status, code, reason, body,
		field: typeof body.field === 'string' ? body.field : undefined,
		retryAfterMs: parseRetryAfter(res.headers.get('Retry-After')),
	};
	// The reason decides; the status only where the reason is unknown.
	/** @type {Record<string, string>} */
	const byReason = {
		VERSION_CONFLICT: 'conflict', LOCK_EXPIRED: 'expired', LOCKED: 'locked',
		PRECONDITION_REQUIRED: 'required', VERSION_COMPACTED: 'compacted', NOT_FOUND: 'notfound',
		REVISION_COMPACTED: 'revcompacted',
		TOKEN_MISSING: 'unauth', TOKEN_MALFORMED: 'unauth', TOKEN_UNKNOWN: 'unauth',
		TOKEN_REVOKED: 'unauth', AUTH_DISABLED: 'unauth', PERMISSION_DENIED: 'denied',
	};
	/** @type {Record<number, string>} */
	const byStatus = {
		412: 'conflict', 423: 'locked', 428: 'required', 410: 'compacted', 404: 'notfound', 413: 'toolarge',
		401: 'unauth',
	};
	const kind = byReason[reason] ?? byStatus[status];
	switch (kind) {
	case 'conflict':
		if (current && current.version === 0) {
			current.version = parseETag(res.headers.get('ETag')) ?? 0;
		}
		if (current && current.version === 0) {
			current = null; // {"key": K} alone: the key does not exist
		}
		return new ConflictError(message, { ...init, current });
	case 'expired':
		return new LockExpiredError(message, init);
	case 'locked': {
		let lock = current ? current.lock ?? null : null;
		if (!lock) {
			lock = decodeLockJson(body.lock) ?? parseLockHeaders(res.headers);
		}
		return new LockedError(message, { ...init, current, lock });
	}
	case 'required':
		return new PreconditionRequiredError(message, init);
	case 'compacted':
		return new VersionCompactedError(message, init);
	case 'revcompacted': {
		// The gateway puts the WatchResponse detail's fields in the body;
		// accept them nested too.
		const d = body.compactRevision !== undefined ? body
			: (body.detail && typeof body.detail === 'object' ? body.detail : {});
		return new RevisionCompactedError(message, {
			...init,
			compactRevision: parseInt64(d.compactRevision, 'compactRevision'),
			revision: parseInt64(d.revision, 'revision'),
		});
	}
	case 'notfound':
		return new NotFoundError(message, init);
	case 'toolarge':
		return new TooLargeError(message, init);
	case 'unauth':
		return new UnauthenticatedError(message, init);
	case 'denied':
		return new PermissionDeniedError(message, init);
	default:
		return new DataSyncError(message, init);
	}
}

/**
 * recordFromResponse reads a GET reply (200 or 304) into a RecordView.
 * @param {string} key
 * @param {Response} res
 * @returns {Promise<RecordView>}
 */
export async function recordFromResponse(key, res) {
	const h = res.headers;
	const etag = h.get('ETag') ?? undefined;
	const notModified = res.status === 304;
	const revision = parseInt64(h.get('Record-Revision'), 'Record-Revision');
	// A 304 that carries no record headers tells nothing about the lock;
	// one that does is as complete as a 200.
	const lock = notModified && revision === undefined ? undefined : parseLockHeaders(h);
	const bytes = notModified ? undefined : new Uint8Array(await res.arrayBuffer());
	return viewOf({
		key,
		notModified,
		version: parseETag(etag) ?? 0,
		revision,
		createdAt: parseInt64(h.get('Record-Created-At'), 'Record-Created-At'),
		updatedAt: parseInt64(h.get('Record-Updated-At'), 'Record-Updated-At'),
		updatedBy: decodeHeaderText(h.get('Record-Updated-By')) ?? '',
		contentType: notModified ? '' : (h.get('Content-Type') ?? ''),
		lock,
		deleted: false,
		etag,
	}, bytes);
}

/**
 * encodeValue derives the body and content type of a write: strings as
 * text/plain, bytes as application/octet-stream, anything else (objects,
 * arrays, numbers, booleans, null) as JSON.
 * @param {unknown} value
 * @param {string} [contentType]  overrides the derived type
 * @returns {{body: BodyInit, contentType: string}}
 */
export function encodeValue(value, contentType) {
	if (typeof value === 'string') {
		return { body: value, contentType: contentType ?? 'text/plain; charset=utf-8' };
	}
	if (value instanceof Uint8Array || value instanceof ArrayBuffer ||
	    (typeof Blob !== 'undefined' && value instanceof Blob)) {
		return { body: /** @type {BodyInit} */ (value), contentType: contentType ?? 'application/octet-stream' };
	}
	if (value === undefined || typeof value === 'function' || typeof value === 'symbol' ||
	    typeof value === 'bigint') {
		throw new TypeError(`datasync: cannot store a value of type ${typeof value}`);
	}
	return { body: JSON.stringify(value), contentType: contentType ?? 'application/json' };
}

/**
 * preconditionHeaders turns WriteOptions into If-Match / If-None-Match.
 * Throws PreconditionRequiredError when there is none, TypeError when
 * both or a malformed version are given.
 * @param {WriteOptions} opts
 * @param {string} what  'put' or 'del', named in the error
 * @returns {Record<string, string>}
 */
export function preconditionHeaders(opts, what) {
	const hasMatch = opts.ifMatch !== undefined && opts.ifMatch !== null;
	if (hasMatch && opts.ifAbsent) {
		throw new TypeError(`datasync: ${what}: give ifMatch or ifAbsent, not both`);
	}
	if (opts.ifAbsent) {
		return { 'If-None-Match': '*' };
	}
	if (!hasMatch) {
		throw new PreconditionRequiredError(
			`datasync: ${what} needs a precondition: {ifMatch: version} to write ` +
			`only if nobody else did, {ifAbsent: true} to create, or {ifMatch: '*'} ` +
			'to overwrite any version on purpose');
	}
	if (opts.ifMatch === '*') {
		return { 'If-Match': '*' };
	}
	const v = typeof opts.ifMatch === 'number' ? opts.ifMatch
		: (typeof opts.ifMatch === 'string' && /^\d+$/.test(opts.ifMatch)) ? Number(opts.ifMatch) : NaN;
	if (!Number.isSafeInteger(v) || v < 1) {
		throw new TypeError(`datasync: ${what}: ifMatch must be a version >= 1 or '*', ` +
			`got ${String(opts.ifMatch)}`);
	}
	return { 'If-Match': `"${v}"` };
}

/**
 * @param {string} s
 * @param {string} what  named in the error
 * @returns {string}
 */
function checkHeaderText(s, what) {
	// fetch refuses non-Latin-1 header values with a TypeError that names
	// no field; say which one and why instead.
	if (!/^[\x20-\x7e]*$/.test(s) || s.length > 128) {
		throw new TypeError(`datasync: ${what} must be printable ASCII of at most 128 ` +
			`characters (it travels in an HTTP header), got ${JSON.stringify(s)}`);
	}
	return s;
}

/**
 * decodeHeaderText undoes the gateway's percent-encoding of a name in a
 * header; a malformed escape is returned as received rather than thrown.
 * @param {string|null} s
 * @returns {string|null}
 */
export function decodeHeaderText(s) {
	if (s === null) {
		return null;
	}
	try {
		return decodeURIComponent(s);
	} catch {
		return s;
	}
}

/**
 * checkName validates a name sent percent-encoded in a header.
 * @param {string} s
 * @param {string} what  named in the error
 * @returns {string}
 */
function checkName(s, what) {
	if (typeof s !== 'string' || new TextEncoder().encode(s).length > 128 ||
	    /[\u0000-\u001f\u007f]/.test(s)) {
		throw new TypeError(`datasync: ${what} must be text of at most 128 UTF-8 ` +
			`bytes without control characters, got ${JSON.stringify(s)}`);
	}
	return s;
}

/* --- merge3 --------------------------------------------------------------- */

/**
 * isPlainObject: a JSON object (not null, not an array).
 * @param {unknown} v
 * @returns {v is Record<string, any>}
 */
function isPlainObject(v) {
	return typeof v === 'object' && v !== null && !Array.isArray(v) &&
		(Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null);
}

/**
 * deepEqual compares JSON values structurally; object key order does not
 * matter, array order does. undefined means "absent".
 * @param {unknown} a
 * @param {unknown} b
 * @returns {boolean}
 */
export function deepEqual(a, b) {
	if (a === b) {
		return true;
	}
	if (Array.isArray(a)) {
		return Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
	}
	if (isPlainObject(a) && isPlainObject(b)) {
		const ka = Object.keys(a).filter((k) => a[k] !== undefined);
		const kb = Object.keys(b).filter((k) => b[k] !== undefined);
		return ka.length === kb.length && ka.every((k) => deepEqual(a[k], b[k]));
	}
	return Number.isNaN(a) && Number.isNaN(b);
}

/**
 * One field both sides changed differently.
 * @typedef {object} MergeConflict
 * @property {string} field   dotted path ('' for the whole value); keys
 *   that contain '.' make it ambiguous, so use `path` to act on it
 * @property {string[]} path  the keys from the root
 * @property {any} base       undefined = the field was absent
 * @property {any} mine
 * @property {any} theirs
 */

/**
 * @typedef {object} MergeResult
 * @property {any} merged     both sides' changes; a conflicting field holds
 *   `mine` until the caller decides (see resolveMerge)
 * @property {MergeConflict[]} conflicts  empty when the merge is clean
 */

/**
 * merge3 is a field-level three-way merge of JSON values against their
 * common ancestor `base`:
 * - a field changed on one side only takes that side's value (a removal,
 *   i.e. the field absent, is a change like any other);
 * - a field changed identically on both sides takes that value;
 * - a field changed differently on both sides is a conflict, reported in
 *   `conflicts`, and `merged` holds `mine` there;
 * - nested plain objects are merged recursively when both sides changed
 *   them (`{nested: 'recurse'}`, the default), so edits to different
 *   sub-fields combine and conflicts name a dotted path such as
 *   'owner.email'; with `{nested: 'value'}` a nested object is one value
 *   like any other. A field that both sides turned into objects although
 *   the base had none (or a non-object) is merged against {}.
 * - arrays, strings, numbers, booleans and null are values: compared
 *   whole, never merged element-wise.
 * A base of undefined or null means "no common ancestor": every field the
 * two sides disagree on is then a conflict. Inputs are not modified;
 * `merged` shares unchanged sub-objects with the inputs.
 * @param {any} base
 * @param {any} mine
 * @param {any} theirs
 * @param {{nested?: 'recurse'|'value'}} [options]
 * @returns {MergeResult}
 */
export function merge3(base, mine, theirs, options = {}) {
	const recurse = (options.nested ?? 'recurse') === 'recurse';
	if (options.nested !== undefined && options.nested !== 'recurse' && options.nested !== 'value') {
		throw new TypeError(`datasync: merge3: nested must be 'recurse' or 'value'`);
	}
	/** @type {MergeConflict[]} */
	const conflicts = [];
	const merged = mergeValue(base === null ? undefined : base, mine, theirs, [], recurse, conflicts, 0);
	return { merged, conflicts };
}

const MERGE_MAX_DEPTH = 64; // deeper than any sane document; stops cycles

/**
 * @param {any} b @param {any} m @param {any} t @param {string[]} path
 * @param {boolean} recurse @param {MergeConflict[]} conflicts @param {number} depth
 * @returns {any}
 */
function mergeValue(b, m, t, path, recurse, conflicts, depth) {
	if (deepEqual(m, t)) {
		return m;
	}
	if (deepEqual(m, b)) {
		return t;
	}
	if (deepEqual(t, b)) {
		return m;
	}
	if ((recurse || path.length === 0) && isPlainObject(m) && isPlainObject(t) &&
	    depth < MERGE_MAX_DEPTH) {
		const bo = isPlainObject(b) ? b : {};
		/** @type {Record<string, any>} */
		const out = {};
		const keys = new Set([...Object.keys(t), ...Object.keys(m), ...Object.keys(bo)]);
		for (const k of keys) {
			const v = mergeValue(bo[k], m[k], t[k], [...path, k], recurse, conflicts, depth + 1);
			if (v !== undefined) {
				out[k] = v;
			}
		}
		return out;
	}
	conflicts.push({ field: path.join('.'), path, base: b, mine: m, theirs: t });
	return m;
}

/**
 * resolveMerge applies the caller's choices to a merge3 result: for each
 * conflict, `choose(conflict)` returns 'mine', 'theirs' or {value}.
 * Returns a new merged value.
 * @param {MergeResult} result
 * @param {(c: MergeConflict) => 'mine'|'theirs'|{value: any}} choose
 * @returns {any}
 */
export function resolveMerge(result, choose) {
	let out = structuredClone(result.merged);
	for (const c of result.conflicts) {
		const pick = choose(c);
		const v = pick === 'mine' ? c.mine : pick === 'theirs' ? c.theirs : pick.value;
		if (c.path.length === 0) {
			out = structuredClone(v);
			continue;
		}
		let o = out;
		for (const k of c.path.slice(0, -1)) {
			if (!isPlainObject(o[k])) {
				o[k] = {};
			}
			o = o[k];
		}
		const last = c.path[c.path.length - 1];
		if (v === undefined) {
			delete o[last];
		} else {
			o[last] = structuredClone(v);
		}
	}
	return out;
}

/* --- watch: the change feed (DESIGN §9) ------------------------------- */

/**
 * A change as watch() delivers it.
 * @typedef {object} WatchEvent
 * @property {'put'|'delete'|'lock'|'unlock'|'expire'|'unknown'} type
 * @property {number} revision   the store revision of this change
 * @property {string} key
 * @property {RecordView} record the record after the change (version,
 *   updatedBy, lock, ...); its value only when watching with values
 *   (else value, text and bytes are undefined)
 * @property {boolean} valueOmitted  asked for values, but this version has
 *   left the history
 */

/**
 * @typedef {object} WatchOptions
 * @property {number} [after]     deliver changes after this revision (the
 *   revision a list() or get() returned; 0, an empty store's, is every
 *   change the log keeps); absent = from now
 * @property {string} [key]       watch this one key instead of the prefix
 * @property {boolean} [values]   deliver each change's value too
 * @property {'auto'|'sse'|'poll'} [transport] 'auto' (default): Server-Sent
 *   Events, falling back to long polls when EventSource is missing or
 *   fails to open WATCH_SSE_FALLBACK_AFTER times in a row
 * @property {(err: RevisionCompactedError) => void} [onReset] the cursor
 *   was compacted: the watch has stopped; re-read and watch again from
 *   the read's revision. Without onReset, onError gets the error.
 * @property {(err: DataSyncError, info: {fatal: boolean, retryInMs: number}) => void} [onError]
 *   a failure; the watch retries (with capped, jittered backoff) unless
 *   fatal (a 4xx that a retry cannot fix: it has stopped then)
 * @property {(transport: 'sse'|'poll') => void} [onOpen] a stream opened,
 *   or a long poll answered, after a start or a failure
 * @property {number} [pollTimeoutMs] one long poll's wait (default 30000)
 */

/** First reconnect delay; doubles per failure up to WATCH_BACKOFF_MAX_MS. */
export const WATCH_BACKOFF_MIN_MS = 250;
/** The longest wait between reconnects. */
export const WATCH_BACKOFF_MAX_MS = 15000;
/** auto transport: SSE failures to open in a row before long polling. */
export const WATCH_SSE_FALLBACK_AFTER = 3;
/** One long poll's wait; the server allows up to 60 s. */
export const WATCH_POLL_TIMEOUT_MS = 30000;

/** @type {Record<string, WatchEvent['type']>} */
const WATCH_TYPES = {
	EVENT_PUT: 'put', EVENT_DELETE: 'delete', EVENT_LOCK: 'lock',
	EVENT_UNLOCK: 'unlock', EVENT_EXPIRE: 'expire',
	1: 'put', 2: 'delete', 3: 'lock', 4: 'unlock', 5: 'expire',
};

/**
 * watchBackoffMs: the wait before reconnect number `failures` (1 = the
 * first after a failure): "full jitter", a uniform draw below
 * min(max, min * 2^(failures-1)), so that many pages dropped by one
 * server restart do not all come back in the same millisecond.
 * @param {number} failures >= 1
 * @param {() => number} [random] in [0, 1)
 * @returns {number}
 */
export function watchBackoffMs(failures, random = Math.random) {
	const ceiling = Math.min(WATCH_BACKOFF_MAX_MS,
		WATCH_BACKOFF_MIN_MS * 2 ** Math.min(30, Math.max(0, failures - 1)));
	// Never 0: a server that fails at once must not be hammered.
	return Math.max(WATCH_BACKOFF_MIN_MS / 2, Math.floor(random() * ceiling));
}

/**
 * decodeEventJson reads one proto3 JSON Event (an SSE `data:` line or an
 * element of a WatchResponse's events).
 * @param {any} e
 * @param {boolean} withValues whether the watch asked for values: without
 *   them, a missing value means "not sent", not "empty"
 * @returns {WatchEvent}
 */
export function decodeEventJson(e, withValues) {
	if (!e || typeof e !== 'object') {
		throw new DataSyncError('datasync: watch: an event is not a JSON object',
			{ code: 'INTERNAL', reason: 'BAD_RESPONSE', body: e });
	}
	const revision = parseInt64(e.revision, 'event.revision');
	if (revision === undefined || revision <= 0) {
		throw new DataSyncError('datasync: watch: an event has no revision',
			{ code: 'INTERNAL', reason: 'BAD_RESPONSE', body: e });
	}
	const r = e.record && typeof e.record === 'object' ? e.record : {};
	const omitted = e.valueOmitted === true;
	let record = /** @type {RecordView} */ (decodeRecordJson(r));
	if (!withValues || omitted) {
		// proto3 JSON omits an empty value: without values asked for (or
		// with the version gone from history) there is none, not "".
		record = { ...record, bytes: undefined, text: undefined, value: undefined };
	}
	return {
		type: WATCH_TYPES[e.type] ?? 'unknown',
		revision,
		key: record.key,
		record,
		valueOmitted: omitted,
	};
}

/**
 * WatchCursor is where a watch stands, so that a reconnect resumes with
 * no event twice and none missed. A cursor names a revision and the
 * server sends what comes after it; one revision may hold several events,
 * and a stream can break inside one. So the cursor remembers how many
 * events of its newest revision it delivered: until that revision is
 * known complete (a long poll's reply is whole; on a stream, a higher
 * revision closes the one before), it resumes one revision earlier and
 * skips those.
 */
export class WatchCursor {
	/** @param {number} after */
	constructor(after) {
		/** @type {number} the newest revision delivered (or the start) */
		this.revision = after;
		/** @type {number} events of `revision` delivered, while partial */
		this._partial = 0;
		/** @type {number} events of `revision` still to skip on a resume */
		this._skip = 0;
	}

	/** after: the revision to ask for events after. */
	get after() {
		// A partial revision is asked for again (its delivered events are
		// skipped); after=0 is a cursor like any other (the server's "from
		// now" is the absence of after).
		return this._partial > 0 ? this.revision - 1 : this.revision;
	}

	/** resumed: a new request (with `after`) is starting. */
	resumed() {
		this._skip = this._partial;
	}

	/**
	 * accept says whether ev is new (true: deliver it) or one this cursor
	 * already delivered (false), and moves the cursor.
	 * @param {{revision: number}} ev
	 * @returns {boolean}
	 */
	accept(ev) {
		if (ev.revision < this.revision || (ev.revision === this.revision && this._partial === 0)) {
			return false;
		}
		if (ev.revision === this.revision) {
			if (this._skip > 0) {
				this._skip--;
				return false;
			}
			this._partial++;
			return true;
		}
		this.revision = ev.revision;
		this._partial = 1;
		this._skip = 0;
		return true;
	}

	/**
	 * complete: everything up to `revision` was delivered (a long poll's
	 * reply; a progress reply names where the wait ended).
	 * @param {number|undefined} revision
	 */
	complete(revision) {
		if (revision !== undefined && revision > this.revision) {
			this.revision = revision;
		}
		this._partial = 0;
		this._skip = 0;
	}
}

/**
 * watchQuery builds the query string of /v1/watch and /v1/events.
 * @param {{prefix: string, key?: string, after?: number, values?: boolean, timeoutMs?: number}} q
 *   after absent = from now
 * @returns {string}
 */
export function watchQuery(q) {
	const p = new URLSearchParams();
	if (q.key !== undefined) {
		p.set('key', q.key);
	} else {
		p.set('prefix', q.prefix);
	}
	if (q.after !== undefined) {
		p.set('after', String(q.after));
	}
	if (q.timeoutMs !== undefined) {
		p.set('timeout', String(q.timeoutMs));
	}
	if (q.values) {
		p.set('values', '1');
	}
	return p.toString();
}

/**
 * WatchHandle is a running watch (DataSyncClient.watch). close() stops
 * it; `closed` resolves when it has stopped, for any reason.
 */
export class WatchHandle {
	/**
	 * @param {DataSyncClient} client
	 * @param {string} prefix
	 * @param {(ev: WatchEvent) => void} onEvent
	 * @param {WatchOptions} opts
	 */
	constructor(client, prefix, onEvent, opts) {
		this.client = client;
		this.prefix = prefix;
		this._onEvent = onEvent;
		this._opts = opts;
		this._values = opts.values === true;
		this.cursor = new WatchCursor(opts.after ?? 0);
		const ES = client._EventSource;
		/** @type {'sse'|'poll'} the transport in use */
		// EventSource cannot send Authorization: a client with a token
		// polls (a signed-in page's cookie rides on EventSource).
		this.transport = opts.transport === 'poll' || (opts.transport !== 'sse' && (!ES || client._token)) ? 'poll' : 'sse';
		/** @type {boolean} */
		this.stopped = false;
		this._failures = 0;      // in a row, since the last open
		this._sseOpenFailures = 0;
		this._everOpened = false;
		// "From now" (no after) must be pinned to a revision before
		// anything can break: else a reconnect would be "from now" again
		// and lose what happened in between. A short long poll tells it.
		this._anchored = opts.after !== undefined;
		/** @type {ReturnType<typeof setTimeout>|undefined} */
		this._timer = undefined;
		/** @type {EventSource|null} */
		this._es = null;
		/** @type {AbortController|null} */
		this._abort = null;
		/** @type {(v: DataSyncError|null) => void} */
		this._resolveClosed = () => {};
		/** @type {Promise<DataSyncError|null>} null after close(), else why it stopped */
		this.closed = new Promise((resolve) => { this._resolveClosed = resolve; });
	}

	/** revision: the newest revision delivered (or the start). */
	get revision() {
		return this.cursor.revision;
	}

	/** close stops the watch; no callback runs after it returns. */
	close() {
		this._stop(null);
	}

	/** @param {DataSyncError|null} why */
	_stop(why) {
		if (this.stopped) {
			return;
		}
		this.stopped = true;
		clearTimeout(this._timer);
		this._timer = undefined;
		if (this._es) {
			this._es.close();
			this._es = null;
		}
		if (this._abort) {
			this._abort.abort();
			this._abort = null;
		}
		this._resolveClosed(why);
	}

	_next() {
		if (this.stopped) {
			return;
		}
		this.cursor.resumed();
		if (!this._anchored) {
			void this._poll(1);
		} else if (this.transport === 'sse') {
			this._openSse();
		} else {
			void this._poll();
		}
	}

	/** @param {WatchEvent} ev */
	_deliver(ev) {
		if (this.stopped || !this.cursor.accept(ev)) {
			return;
		}
		try {
			this._onEvent(ev);
		} catch (e) {
			setTimeout(() => { throw e; }); // report, but keep watching
		}
	}

	/** @param {'sse'|'poll'} transport */
	_opened(transport) {
		const wasFailing = this._failures > 0 || !this._everOpened;
		this._failures = 0;
		this._sseOpenFailures = 0;
		this._everOpened = true;
		if (wasFailing && this._opts.onOpen) {
			try {
				this._opts.onOpen(transport);
			} catch (e) {
				setTimeout(() => { throw e; });
			}
		}
	}

	/**
	 * _failed reports err and schedules the next attempt (or stops).
	 * @param {DataSyncError} err
	 */
	_failed(err) {
		if (this.stopped) {
			return;
		}
		if (err instanceof RevisionCompactedError) {
			this._stop(err);
			if (this._opts.onReset) {
				this._opts.onReset(err);
			} else if (this._opts.onError) {
				this._opts.onError(err, { fatal: true, retryInMs: 0 });
			}
			return;
		}
		// A request the server refuses as such (bad prefix, too many
		// parameters, a forbidden origin) fails the same way again.
		const fatal = err.status >= 400 && err.status < 500 && ![408, 425, 429].includes(err.status);
		this._failures++;
		const retryInMs = fatal ? 0 : Math.max(err.retryAfterMs ?? 0, watchBackoffMs(this._failures));
		if (fatal) {
			this._stop(err);
		}
		if (this._opts.onError) {
			try {
				this._opts.onError(err, { fatal, retryInMs });
			} catch (e) {
				setTimeout(() => { throw e; });
			}
		}
		if (!fatal && !this.stopped) {
			clearTimeout(this._timer);
			this._timer = setTimeout(() => this._next(), retryInMs);
		}
	}

	/* --- Server-Sent Events --- */

	_openSse() {
		const ES = /** @type {typeof EventSource} */ (this.client._EventSource);
		const q = watchQuery({ prefix: this.prefix, key: this._opts.key, after: this.cursor.after, values: this._values });
		/** @type {EventSource} */
		let es;
		try {
			es = new ES(this.client.url(`/v1/events?${q}`));
		} catch (e) {
			this._sseBroken(new DataSyncError(`datasync: watch: EventSource: ${e instanceof Error ? e.message : String(e)}`,
				{ code: 'UNAVAILABLE', reason: 'NETWORK_ERROR', cause: e }));
			return;
		}
		this._es = es;
		let open = false;
		es.onopen = () => {
			if (this._es !== es) {
				return;
			}
			open = true;
			this._opened('sse');
		};
		/** @param {MessageEvent} m */
		const onChange = (m) => {
			if (this._es !== es) {
				return;
			}
			let ev;
			try {
				ev = decodeEventJson(JSON.parse(m.data), this._values);
			} catch (e) {
				this._closeEs();
				this._failed(e instanceof DataSyncError ? e : new DataSyncError(
					`datasync: watch: an event is not JSON: ${e instanceof Error ? e.message : String(e)}`,
					{ code: 'INTERNAL', reason: 'BAD_RESPONSE', cause: e }));
				return;
			}
			this._deliver(ev);
		};
		for (const t of ['put', 'delete', 'lock', 'unlock', 'expire', 'message']) {
			es.addEventListener(t, /** @type {EventListener} */ (onChange));
		}
		es.addEventListener('reset', /** @type {EventListener} */ ((/** @type {MessageEvent} */ m) => {
			if (this._es !== es) {
				return;
			}
			/** @type {any} */
			let d = {};
			try {
				d = JSON.parse(m.data);
			} catch {
				d = {};
			}
			this._closeEs();
			this._failed(new RevisionCompactedError(
				`datasync: watch: revision ${this.cursor.after} was compacted`, {
					status: 410,
					compactRevision: parseInt64(d?.compactRevision, 'compactRevision'),
					revision: parseInt64(d?.revision, 'revision'),
				}));
		}));
		es.onerror = () => {
			if (this._es !== es) {
				return;
			}
			// EventSource would reconnect by itself, without backoff and
			// with Last-Event-ID naming a revision that may be partial:
			// reconnect here instead, from the cursor.
			this._closeEs();
			if (open) {
				this._failed(new DataSyncError('datasync: watch: the event stream broke',
					{ code: 'UNAVAILABLE', reason: 'NETWORK_ERROR' }));
			} else {
				this._sseBroken(new DataSyncError('datasync: watch: the event stream did not open',
					{ code: 'UNAVAILABLE', reason: 'NETWORK_ERROR' }));
			}
		};
	}

	_closeEs() {
		if (this._es) {
			this._es.close();
			this._es = null;
		}
	}

	/**
	 * _sseBroken: the stream failed before it opened. EventSource does not
	 * say why, and a 410 (compacted cursor) looks like any other failure:
	 * one short long poll tells (and delivers what it finds). In auto
	 * mode, after WATCH_SSE_FALLBACK_AFTER such failures, poll for good.
	 * @param {DataSyncError} err
	 */
	_sseBroken(err) {
		this._sseOpenFailures++;
		if (this._opts.transport !== 'sse' && this._sseOpenFailures >= WATCH_SSE_FALLBACK_AFTER) {
			this.transport = 'poll';
		}
		void this._poll(1, err);
	}

	/* --- long polls --- */

	/**
	 * _poll makes one GET /v1/watch and schedules what follows.
	 * @param {number} [timeoutMs] the wait; default the option or 30 s
	 * @param {DataSyncError} [sseErr] set when this is the probe after an
	 *   SSE failure: report that failure if the probe finds nothing wrong
	 */
	async _poll(timeoutMs, sseErr) {
		const ctl = new AbortController();
		this._abort = ctl;
		const q = watchQuery({
			prefix: this.prefix, key: this._opts.key,
			after: this._anchored ? this.cursor.after : undefined, values: this._values,
			timeoutMs: timeoutMs ?? this._opts.pollTimeoutMs ?? WATCH_POLL_TIMEOUT_MS,
		});
		/** @type {any} */
		let j;
		try {
			const res = await this.client._request(`/v1/watch?${q}`, { method: 'GET', signal: ctl.signal });
			j = await res.json();
			if (!j || typeof j !== 'object') {
				throw new DataSyncError('datasync: watch: the reply is not a JSON object',
					{ status: res.status, code: 'INTERNAL', reason: 'BAD_RESPONSE' });
			}
		} catch (e) {
			if (this.stopped || this._abort !== ctl) {
				return;
			}
			this._abort = null;
			this._failed(e instanceof DataSyncError ? e : new DataSyncError(
				`datasync: watch: ${e instanceof Error ? e.message : String(e)}`,
				{ code: 'UNAVAILABLE', reason: 'NETWORK_ERROR', cause: e }));
			return;
		}
		if (this.stopped || this._abort !== ctl) {
			return;
		}
		this._abort = null;
		let events;
		try {
			events = (Array.isArray(j.events) ? j.events : [])
				.map((/** @type {any} */ e) => decodeEventJson(e, this._values));
		} catch (e) {
			this._failed(/** @type {DataSyncError} */ (e));
			return;
		}
		for (const ev of events) {
			this._deliver(ev);
		}
		if (this.stopped) {
			return; // closed from onEvent
		}
		// A reply never splits a revision: what it holds is complete.
		let rev;
		try {
			rev = parseInt64(j.revision, 'revision');
		} catch (e) {
			this._failed(/** @type {DataSyncError} */ (e));
			return;
		}
		this.cursor.complete(rev);
		this._anchored = true;
		if (sseErr) {
			// The probe worked, so the stream's failure was the stream's.
			this._failed(sseErr);
			return;
		}
		if (this.transport === 'poll') {
			this._opened('poll');
		}
		this._next();
	}
}

/* --- the client ----------------------------------------------------------- */

const LOCK_RETRY_MIN_MS = 250; // first retry after a failed renewal
/** The longest lock() waitMs: the server's bound on wait_ms (DESIGN §9). */
export const LOCK_WAIT_MAX_MS = 60000;

/**
 * @typedef {object} LockOptions
 * @property {string} [owner]   shown to everybody; default the author
 * @property {number} [ttlMs]   lease length; default 30000
 * @property {number} [waitMs]  when held by another, wait in line up to
 *   this long (0, the default: LockedError at once)
 * @property {boolean} [autoRenew]
 * @property {boolean} [releaseOnPageHide]
 * @property {(err: DataSyncError) => void} [onLost]
 * @property {(h: LockHandle) => void} [onRenew]
 * @property {AbortSignal} [signal]
 */

/**
 * DataSyncClient talks to one gateway. Thread-safety is not a question in
 * a page; one client may serve any number of concurrent calls.
 */
export class DataSyncClient {
	/** @param {ClientOptions} [options] */
	constructor(options = {}) {
		const base = options.baseUrl ??
			(typeof location !== 'undefined' ? location.origin : '');
		/** @type {string} */
		this.baseUrl = base.replace(/\/+$/, '');
		/** @type {string} */
		this.author = '';
		this.setAuthor(options.author ?? '');
		const f = options.fetch ?? globalThis.fetch;
		if (typeof f !== 'function') {
			throw new TypeError('datasync: no fetch available; pass options.fetch');
		}
		/** @type {typeof fetch} */
		this._fetch = f.bind(globalThis);
		/** @type {typeof EventSource|null} for watch(); null: long polls only */
		this._EventSource = options.EventSource !== undefined ? options.EventSource
			: (typeof globalThis.EventSource === 'function' ? globalThis.EventSource : null);
		/** @type {EventTarget|null} */
		this._window = options.window !== undefined ? options.window
			: (typeof globalThis.addEventListener === 'function' ? globalThis : null);
		/** @type {string|null} sent as Authorization: Bearer; null = none */
		this._token = null;
		this.setToken(options.token ?? null);
		/** @type {((err: DataSyncError) => void)|null} */
		this.onUnauthenticated = options.onUnauthenticated ?? null;
	}

	/**
	 * setToken sets (or, with null, drops) the secret sent as
	 * `Authorization: Bearer` on every request.
	 * @param {string|null} token
	 */
	setToken(token) {
		if (token !== null && (typeof token !== 'string' || token === '' || /[^\x21-\x7e]/.test(token))) {
			throw new TypeError('datasync: token: a non-empty string of printable ASCII ("dst_...")');
		}
		this._token = token;
	}

	/**
	 * _authHeaders: Authorization for a client holding a token.
	 * @returns {Record<string, string>}
	 */
	_authHeaders() {
		return this._token ? { Authorization: `Bearer ${this._token}` } : {};
	}

	/**
	 * whoami asks who the caller is (GET /v1/session): with a token, the
	 * session cookie, or neither. A refused or revoked token is not an
	 * error here: it answers authenticated: false.
	 * @param {{signal?: AbortSignal}} [opts]
	 * @returns {Promise<SessionInfo>}
	 */
	async whoami(opts = {}) {
		const res = await this._request('/v1/session', { method: 'GET', signal: opts.signal }, [401]);
		if (res.status === 401) {
			await res.text().catch(() => '');
			return { authRequired: true, authenticated: false, token: null };
		}
		return decodeSession(await res.json().catch(() => null));
	}

	/**
	 * signIn starts a browser session with a token (POST /v1/session): the
	 * gateway checks it and sets the HttpOnly ds_session cookie, which
	 * every later request of this page (fetch and EventSource) carries, so
	 * the secret need not stay in script. Throws UnauthenticatedError for
	 * a token the server refuses.
	 * @param {string} token
	 * @param {{signal?: AbortSignal}} [opts]
	 * @returns {Promise<SessionInfo>}
	 */
	async signIn(token, opts = {}) {
		if (typeof token !== 'string' || token.trim() === '') {
			throw new TypeError('datasync: signIn: token must be a non-empty string');
		}
		const res = await this._request('/v1/session', {
			method: 'POST', headers: { 'Content-Type': 'application/json' },
			body: JSON.stringify({ token: token.trim() }), signal: opts.signal,
		}, [], false);
		return decodeSession(await res.json().catch(() => null));
	}

	/**
	 * signOut ends the browser session (DELETE /v1/session clears the
	 * cookie) and forgets a token given to this client.
	 * @param {{signal?: AbortSignal}} [opts]
	 */
	async signOut(opts = {}) {
		this._token = null;
		await this._request('/v1/session', { method: 'DELETE', signal: opts.signal });
	}

	/**
	 * setAuthor changes the name sent as Author on writes.
	 * @param {string} author any text of at most 128 UTF-8 bytes
	 */
	setAuthor(author) {
		this.author = checkName(author, 'author');
	}

	/**
	 * url builds an absolute URL for a gateway path.
	 * @param {string} path   starting with '/'
	 * @returns {string}
	 */
	url(path) {
		return this.baseUrl + path;
	}

	/**
	 * _request sends one request; network failures become DataSyncError
	 * (status 0, code UNAVAILABLE, reason NETWORK_ERROR), non-2xx replies
	 * (other than those in `accept`) become their error class.
	 * @param {string} path
	 * @param {RequestInit} init
	 * @param {number[]} [accept] non-2xx statuses to return, not throw
	 * @param {boolean} [notify] call onUnauthenticated on a 401
	 * @returns {Promise<Response>}
	 */
	async _request(path, init, accept = [], notify = true) {
		/** @type {Response} */
		let res;
		const auth = this._authHeaders();
		if (auth.Authorization) {
			init = { ...init, headers: { ...(/** @type {Record<string, string>} */ (init.headers ?? {})), ...auth } };
		}
		try {
			res = await this._fetch(this.url(path), { cache: 'no-store', credentials: 'same-origin', ...init });
		} catch (e) {
			if (e instanceof Error && e.name === 'AbortError') {
				throw e;
			}
			throw new DataSyncError(`datasync: ${init.method ?? 'GET'} ${path}: network error: ` +
				`${e instanceof Error ? e.message : String(e)}`,
			{ status: 0, code: 'UNAVAILABLE', reason: 'NETWORK_ERROR', cause: e });
		}
		if (res.ok || accept.includes(res.status)) {
			return res;
		}
		const err = await errorFromResponse(res);
		if (notify && err instanceof UnauthenticatedError && this.onUnauthenticated) {
			try {
				this.onUnauthenticated(err);
			} catch (e) {
				setTimeout(() => { throw e; });
			}
		}
		throw err;
	}

	/**
	 * get reads a record: the latest version, or `version` from history.
	 * With `ifNoneMatch` (a version the caller already has) an unchanged
	 * record comes back as {notModified: true} without a value.
	 * Throws NotFoundError (absent or deleted), VersionCompactedError.
	 * @param {string} key
	 * @param {{version?: number, ifNoneMatch?: number|string, signal?: AbortSignal}} [opts]
	 * @returns {Promise<RecordView>}
	 */
	async get(key, opts = {}) {
		/** @type {Record<string, string>} */
		const headers = {};
		if (opts.ifNoneMatch !== undefined && opts.ifNoneMatch !== null) {
			headers['If-None-Match'] = opts.ifNoneMatch === '*' ? '*' : `"${opts.ifNoneMatch}"`;
		}
		let path = `/v1/records/${encodeKey(key)}`;
		if (opts.version !== undefined && opts.version !== null) {
			path += `?version=${encodeURIComponent(String(opts.version))}`;
		}
		const res = await this._request(path, { method: 'GET', headers, signal: opts.signal }, [304]);
		return recordFromResponse(key, res);
	}

	/**
	 * put writes a value under a precondition (see WriteOptions); a value
	 * that is not a string or bytes is sent as JSON. Resolves with the
	 * record as written. Throws ConflictError (412, with the current
	 * record), LockedError (423), LockExpiredError, TooLargeError (413),
	 * PreconditionRequiredError (no precondition: refused locally).
	 * @param {string} key
	 * @param {unknown} value
	 * @param {WriteOptions} [opts]
	 * @returns {Promise<WriteResult>}
	 */
	async put(key, value, opts = {}) {
		const path = `/v1/records/${encodeKey(key)}`;
		const { body, contentType } = encodeValue(value, opts.contentType);
		const headers = { ...preconditionHeaders(opts, 'put'), ...this._writeHeaders(opts) };
		headers['Content-Type'] = contentType;
		const res = await this._request(path, { method: 'PUT', headers, body, signal: opts.signal });
		/** @type {any} */
		let j = {};
		try {
			j = await res.json();
		} catch {
			j = {};
		}
		const r = j && typeof j.record === 'object' && j.record !== null ? j.record : (j ?? {});
		const etag = res.headers.get('ETag') ?? undefined;
		return {
			key: typeof r.key === 'string' ? r.key : key,
			version: parseETag(etag) ?? parseInt64(r.version, 'version') ?? 0,
			revision: parseInt64(r.revision, 'revision'),
			createdAt: parseInt64(r.createdAtMs, 'createdAtMs'),
			updatedAt: parseInt64(r.updatedAtMs, 'updatedAtMs'),
			updatedBy: typeof r.updatedBy === 'string' ? r.updatedBy : this.author,
			contentType: typeof r.contentType === 'string' ? r.contentType : contentType,
			created: res.status === 201,
			etag,
		};
	}

	/**
	 * del deletes a record under a precondition (ifMatch; '*' for any
	 * version). Resolves with the tombstone's version when the gateway
	 * says it (ETag), else undefined.
	 * @param {string} key
	 * @param {WriteOptions} [opts]
	 * @returns {Promise<{version: number|undefined}>}
	 */
	async del(key, opts = {}) {
		const path = `/v1/records/${encodeKey(key)}`;
		const headers = { ...preconditionHeaders(opts, 'del'), ...this._writeHeaders(opts) };
		const res = await this._request(path, { method: 'DELETE', headers, signal: opts.signal });
		return { version: parseETag(res.headers.get('ETag')) };
	}

	/**
	 * @param {WriteOptions} opts
	 * @returns {Record<string, string>}
	 */
	_writeHeaders(opts) {
		/** @type {Record<string, string>} */
		const h = {};
		if (opts.lockToken) {
			h['Lock-Token'] = checkHeaderText(opts.lockToken, 'lockToken');
		}
		if (opts.idempotencyKey) {
			h['Idempotency-Key'] = checkHeaderText(opts.idempotencyKey, 'idempotencyKey');
		}
		if (this.author) {
			h.Author = encodeURIComponent(this.author);
		}
		return h;
	}

	/**
	 * lock takes a leased lock and returns a LockHandle that renews it in
	 * the background (every ttl/3) until release() or until a renewal fails
	 * for good, and releases it when the page is hidden for unloading
	 * (pagehide). Throws LockedError when another holder has it.
	 * With waitMs (at most LOCK_WAIT_MAX_MS), a lock held by someone else
	 * is waited for in line, in arrival order, up to waitMs, before
	 * LockedError.
	 * Called as lock(key, owner, opts) or lock(key, opts).
	 * @param {string} key
	 * @param {string|LockOptions} [ownerOrOpts]
	 * @param {LockOptions} [moreOpts] with an owner as second argument
	 * @returns {Promise<LockHandle>}
	 */
	async lock(key, ownerOrOpts, moreOpts) {
		/** @type {LockOptions} */
		const opts = typeof ownerOrOpts === 'string'
			? { ...(moreOpts ?? {}), owner: ownerOrOpts } : (ownerOrOpts ?? {});
		const owner = opts.owner ?? this.author;
		const ttlMs = opts.ttlMs ?? 30000;
		const waitMs = opts.waitMs ?? 0;
		if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) {
			throw new TypeError(`datasync: lock: ttlMs must be a positive integer, got ${ttlMs}`);
		}
		if (!Number.isSafeInteger(waitMs) || waitMs < 0 || waitMs > LOCK_WAIT_MAX_MS) {
			throw new TypeError(`datasync: lock: waitMs must be an integer from 0 to LOCK_WAIT_MAX_MS (${LOCK_WAIT_MAX_MS}), got ${waitMs}`);
		}
		const grant = await this._lockRequest(key, owner, ttlMs, undefined, opts.signal, waitMs);
		const handle = new LockHandle(this, key, owner, ttlMs, grant, opts);
		// After a wait in line the local deadline (from when the request
		// was sent) may be far earlier than the lease's real end: renew at
		// once, which measures it again from a request that did not wait.
		handle._start(waitMs > 0 && Date.now() - grant.sentAt > ttlMs / 3 ? 0 : undefined);
		return handle;
	}

	/**
	 * _lockRequest: one Lock call (acquire, or renew with token).
	 * @param {string} key @param {string} owner @param {number} ttlMs
	 * @param {string|undefined} token @param {AbortSignal} [signal]
	 * @param {number} [waitMs] wait in line this long when held (acquire only)
	 * @returns {Promise<{token: string, lock: LockState, renewed: boolean, version: number, sentAt: number}>}
	 */
	async _lockRequest(key, owner, ttlMs, token, signal, waitMs = 0) {
		/** @type {Record<string, string>} */
		const headers = { 'Content-Type': 'application/json' };
		if (token) {
			headers['Lock-Token'] = checkHeaderText(token, 'lockToken');
		}
		const sentAt = Date.now();
		const res = await this._request(`/v1/records/${encodeKey(key)}/lock`, {
			method: 'POST', headers, body: JSON.stringify(waitMs > 0 ? { owner, ttlMs, waitMs } : { owner, ttlMs }), signal,
		});
		/** @type {any} */
		const j = await res.json().catch(() => ({}));
		const tok = (typeof j.lockToken === 'string' && j.lockToken) || res.headers.get('Lock-Token') || '';
		if (!tok) {
			throw new DataSyncError('datasync: lock reply carries no lock token',
				{ status: res.status, code: 'INTERNAL', reason: 'BAD_RESPONSE', body: j });
		}
		const lock = decodeLockJson(j.lock) ?? { owner, expiresAt: sentAt + ttlMs, fencingToken: 0 };
		return {
			token: tok, lock, renewed: j.renewed === true,
			version: parseInt64(j.version, 'version') ?? 0, sentAt,
		};
	}

	/**
	 * unlock releases a lock by its token. Throws DataSyncError with reason
	 * LOCK_TOKEN_MISMATCH (403) or NOT_LOCKED when there is nothing of
	 * this token's to release.
	 * @param {string} key
	 * @param {string} token
	 * @returns {Promise<void>}
	 */
	async unlock(key, token) {
		await this._request(`/v1/records/${encodeKey(key)}/lock`, {
			method: 'DELETE', headers: { 'Lock-Token': checkHeaderText(token, 'lockToken') },
		});
	}

	/**
	 * unlockOnUnload releases a lock from a pagehide / visibilitychange
	 * handler: a keepalive POST to /unlock with the token in the body (the
	 * request outlives the page), falling back to navigator.sendBeacon.
	 * Fire and forget: it returns at once and never throws.
	 * @param {string} key
	 * @param {string} token
	 */
	unlockOnUnload(key, token) {
		const url = this.url(`/v1/records/${encodeKey(key)}/unlock`);
		const body = JSON.stringify({ lockToken: token });
		// Cross-origin, a JSON content type would need a CORS preflight,
		// which a keepalive request cannot wait for: label the same JSON
		// text/plain there (datasyncd reads the body either way).
		const sameOrigin = typeof location === 'undefined' ||
			new URL(url, location.href).origin === location.origin;
		const type = sameOrigin ? 'application/json' : 'text/plain;charset=UTF-8';
		try {
			this._fetch(url, {
				method: 'POST', keepalive: true, cache: 'no-store', credentials: 'same-origin',
				headers: { 'Content-Type': type, ...this._authHeaders() }, body,
			}).catch(() => { /* the page is gone; the lease runs out anyway */ });
		} catch {
			if (typeof navigator !== 'undefined' && typeof navigator.sendBeacon === 'function') {
				navigator.sendBeacon(url, new Blob([body], { type }));
			}
		}
	}

	/**
	 * watch delivers every change to the keys under `prefix` (or to
	 * opts.key) after opts.after, in revision order, each exactly once,
	 * until close(): over Server-Sent Events (GET /v1/events), or long
	 * polls (GET /v1/watch) where EventSource is missing or keeps failing.
	 * It reconnects by itself with capped, jittered backoff, resuming
	 * from the last revision delivered. When the cursor has been
	 * compacted it stops and calls onReset: re-read (list() returns its
	 * revision) and watch again from there.
	 * @param {string} prefix  '' for every key; ignored with opts.key
	 * @param {(ev: WatchEvent) => void} onEvent
	 * @param {WatchOptions} [opts]
	 * @returns {WatchHandle}
	 */
	watch(prefix, onEvent, opts = {}) {
		if (typeof prefix !== 'string') {
			throw new TypeError('datasync: watch: prefix must be a string (\'\' for every key)');
		}
		if (typeof onEvent !== 'function') {
			throw new TypeError('datasync: watch: onEvent must be a function');
		}
		if (opts.key !== undefined && (typeof opts.key !== 'string' || opts.key === '')) {
			throw new TypeError('datasync: watch: key must be a non-empty string');
		}
		const after = opts.after;
		if (after !== undefined && (!Number.isSafeInteger(after) || after < 0)) {
			throw new TypeError(`datasync: watch: after must be a revision >= 0, got ${after}`);
		}
		if (opts.transport !== undefined && !['auto', 'sse', 'poll'].includes(opts.transport)) {
			throw new TypeError(`datasync: watch: transport must be auto, sse or poll, got ${opts.transport}`);
		}
		if (opts.transport === 'sse' && !this._EventSource) {
			throw new TypeError('datasync: watch: transport sse, but there is no EventSource here');
		}
		const h = new WatchHandle(this, prefix, onEvent, { ...opts, after });
		h._next();
		return h;
	}

	/**
	 * list reads one page of records under a prefix (values omitted).
	 * @param {{prefix?: string, pageSize?: number, pageToken?: string}} [opts]
	 * @returns {Promise<{records: RecordView[], nextPageToken: string, revision: number|undefined}>}
	 */
	async list(opts = {}) {
		const q = new URLSearchParams();
		if (opts.prefix) {
			q.set('prefix', opts.prefix);
		}
		if (opts.pageSize) {
			q.set('pageSize', String(opts.pageSize));
		}
		if (opts.pageToken) {
			q.set('pageToken', opts.pageToken);
		}
		const qs = q.toString();
		const res = await this._request(`/v1/records${qs ? `?${qs}` : ''}`, { method: 'GET' });
		/** @type {any} */
		const j = await res.json();
		const recs = Array.isArray(j.records) ? j.records : [];
		return {
			records: recs.map((/** @type {any} */ r) => /** @type {RecordView} */ (decodeRecordJson(r))),
			nextPageToken: typeof j.nextPageToken === 'string' ? j.nextPageToken : '',
			revision: parseInt64(j.revision, 'revision'),
		};
	}

	/**
	 * rpc calls any method on the transcoded /rpc/ route with proto3 JSON.
	 * An Update's answer (`{record, replayed}`) has no `record.value`
	 * unless the request sets `returnValue: true`; a conflict's
	 * `current` record carries its value either way. (put() never
	 * returns the value: see WriteResult.)
	 * @param {string} method   e.g. 'Get' (on datasync.v1.DataSync) or a
	 *   full 'package.Service/Method'
	 * @param {object} request
	 * @returns {Promise<any>}
	 */
	async rpc(method, request) {
		const full = method.includes('/') ? method : `datasync.v1.DataSync/${method}`;
		const res = await this._request(`/rpc/${full}`, {
			method: 'POST', headers: { 'Content-Type': 'application/json' },
			body: JSON.stringify(request),
		});
		return res.json();
	}

	/**
	 * updateWithRetry is a read-modify-write that survives concurrent
	 * writers: it reads the record, calls fn(value, record) for the new
	 * value, and writes it with If-Match on the version it read. On a
	 * conflict it calls fn again on the current record the conflict
	 * carries (no extra read), up to maxAttempts writes in all.
	 * - fn receives the parsed JSON (or text) and may return a new value or
	 *   a Promise of one; returning undefined cancels (resolves undefined,
	 *   nothing written).
	 * - A record that does not exist is passed as undefined (record null)
	 *   and created with If-None-Match: *.
	 * - Lock errors, TooLarge etc. are not retried; after maxAttempts
	 *   conflicts the last ConflictError is thrown.
	 * @param {string} key
	 * @param {(value: any, record: RecordView|null) => any} fn
	 * @param {{maxAttempts?: number, lockToken?: string, contentType?: string}} [opts]
	 * @returns {Promise<WriteResult|undefined>}
	 */
	async updateWithRetry(key, fn, opts = {}) {
		const maxAttempts = opts.maxAttempts ?? 8;
		if (!Number.isSafeInteger(maxAttempts) || maxAttempts < 1) {
			throw new TypeError('datasync: updateWithRetry: maxAttempts must be >= 1');
		}
		/** @type {RecordView|null} */
		let cur;
		try {
			cur = await this.get(key);
		} catch (e) {
			if (!(e instanceof NotFoundError)) {
				throw e;
			}
			cur = null;
		}
		for (let attempt = 1; ; attempt++) {
			const live = cur && !cur.deleted ? cur : null;
			const next = await fn(live ? live.value : undefined, live);
			if (next === undefined) {
				return undefined;
			}
			/** @type {WriteOptions} */
			const w = live ? { ifMatch: live.version } : { ifAbsent: true };
			try {
				return await this.put(key, next, {
					...w, lockToken: opts.lockToken,
					contentType: opts.contentType ?? (live && typeof next === 'string' ? live.contentType || undefined : undefined),
				});
			} catch (e) {
				if (!(e instanceof ConflictError) || attempt >= maxAttempts) {
					throw e;
				}
				cur = e.current;
				if (cur === null && live) {
					// A conflict without its detail: read once more.
					cur = await this.get(key).catch((err) => {
						if (err instanceof NotFoundError) {
							return null;
						}
						throw err;
					});
				}
			}
		}
	}
}

/**
 * LockHandle is a held lease. It renews itself every ttl/3 while held;
 * when a renewal fails for good (another holder, LOCK_EXPIRED, token
 * mismatch, or no successful renewal before the lease's end) it stops,
 * sets `lostError`, calls onLost and resolves `closed` with the error.
 * release() (or pagehide) ends it normally: `closed` resolves with null.
 */
export class LockHandle {
	/**
	 * @param {DataSyncClient} client
	 * @param {string} key @param {string} owner @param {number} ttlMs
	 * @param {{token: string, lock: LockState, renewed: boolean, version: number, sentAt: number}} grant
	 * @param {{autoRenew?: boolean, releaseOnPageHide?: boolean,
	 *   onLost?: (err: DataSyncError) => void, onRenew?: (h: LockHandle) => void}} opts
	 */
	constructor(client, key, owner, ttlMs, grant, opts) {
		this.client = client;
		this.key = key;
		this.owner = owner;
		this.ttlMs = ttlMs;
		/** @type {string} secret: present it on writes (lockToken) */
		this.token = grant.token;
		/** @type {number} ms since the epoch, server clock */
		this.expiresAt = grant.lock.expiresAt;
		/** @type {number} */
		this.fencingToken = grant.lock.fencingToken;
		/** @type {number} the record's version when locked (0 if absent) */
		this.version = grant.version;
		/** @type {'held'|'released'|'lost'} */
		this.state = 'held';
		/** @type {DataSyncError|null} */
		this.lostError = null;
		// The local deadline: the lease's end by this machine's clock,
		// measured from when the request was sent (conservative).
		this._deadline = grant.sentAt + ttlMs;
		this._autoRenew = opts.autoRenew ?? true;
		this._releaseOnPageHide = opts.releaseOnPageHide ?? true;
		this._onLost = opts.onLost;
		this._onRenew = opts.onRenew;
		/** @type {ReturnType<typeof setTimeout>|undefined} */
		this._timer = undefined;
		this._onPageHide = () => this._pageHide();
		/** @type {(v: DataSyncError|null) => void} */
		this._resolveClosed = () => {};
		/** @type {Promise<DataSyncError|null>} null after release, the error when lost */
		this.closed = new Promise((resolve) => { this._resolveClosed = resolve; });
	}

	/** held: true until released or lost. */
	get held() {
		return this.state === 'held';
	}

	/** @param {number} [firstRenewMs] default ttl/3 */
	_start(firstRenewMs) {
		if (this._releaseOnPageHide && this.client._window) {
			this.client._window.addEventListener('pagehide', this._onPageHide);
		}
		this._schedule(firstRenewMs ?? Math.max(LOCK_RETRY_MIN_MS, Math.floor(this.ttlMs / 3)));
	}

	/** @param {number} ms */
	_schedule(ms) {
		if (!this._autoRenew || this.state !== 'held') {
			return;
		}
		clearTimeout(this._timer);
		this._timer = setTimeout(() => { void this._renewInBackground(); }, ms);
	}

	/**
	 * renew extends the lease now (the background timer does this on its
	 * own). Throws like lock(); a definitive failure also marks the handle
	 * lost.
	 * @returns {Promise<void>}
	 */
	async renew() {
		if (this.state !== 'held') {
			throw this.lostError ?? new LockExpiredError('datasync: this lock was released');
		}
		let g;
		try {
			g = await this.client._lockRequest(this.key, this.owner, this.ttlMs, this.token);
		} catch (e) {
			if (isLeaseGone(e)) {
				this._lose(/** @type {DataSyncError} */ (e));
			}
			throw e;
		}
		if (this.state !== 'held') {
			return; // released while the renewal was in flight
		}
		if (!g.renewed && g.token !== this.token) {
			// The old lease had lapsed and the server granted a new one:
			// continuity is broken (someone may have written in between).
			// Give the new lease back and report the loss.
			const err = new LockExpiredError('datasync: the lease lapsed before it could be renewed');
			this.client.unlock(this.key, g.token).catch(() => {});
			this._lose(err);
			throw err;
		}
		this.token = g.token;
		this.expiresAt = g.lock.expiresAt;
		this.fencingToken = g.lock.fencingToken || this.fencingToken;
		this._deadline = g.sentAt + this.ttlMs;
		if (this._onRenew) {
			this._onRenew(this);
		}
	}

	async _renewInBackground() {
		if (this.state !== 'held') {
			return;
		}
		try {
			await this.renew();
			this._schedule(Math.max(LOCK_RETRY_MIN_MS, Math.floor(this.ttlMs / 3)));
		} catch (e) {
			if (this.state !== 'held') {
				return; // lost (reported) or released meanwhile
			}
			// Transient (network, 5xx, 429): try again sooner, as long as
			// the lease may still be alive.
			const left = this._deadline - Date.now();
			if (left <= 0) {
				this._lose(new LockExpiredError(
					`datasync: could not renew the lease before it ran out: ${e instanceof Error ? e.message : String(e)}`,
					{ cause: e }));
				return;
			}
			const retry = e instanceof DataSyncError && e.retryAfterMs !== undefined
				? e.retryAfterMs : Math.max(LOCK_RETRY_MIN_MS, Math.floor(this.ttlMs / 10));
			this._schedule(Math.min(retry, left));
		}
	}

	/** @param {DataSyncError} err */
	_lose(err) {
		if (this.state !== 'held') {
			return;
		}
		this.state = 'lost';
		this.lostError = err;
		this._stop();
		this._resolveClosed(err);
		if (this._onLost) {
			try {
				this._onLost(err);
			} catch (e) {
				setTimeout(() => { throw e; }); // report, but don't break us
			}
		}
	}

	_stop() {
		clearTimeout(this._timer);
		this._timer = undefined;
		if (this.client._window) {
			this.client._window.removeEventListener('pagehide', this._onPageHide);
		}
	}

	_pageHide() {
		if (this.state !== 'held') {
			return;
		}
		this.state = 'released';
		this._stop();
		this.client.unlockOnUnload(this.key, this.token);
		this._resolveClosed(null);
	}

	/**
	 * release gives the lock back. Idempotent: releasing a lock that was
	 * already released or lost, or whose lease the server no longer knows
	 * (NOT_LOCKED, LOCK_TOKEN_MISMATCH, LOCK_EXPIRED), resolves quietly.
	 * A network failure is thrown after the handle is marked released (the
	 * lease then simply runs out).
	 * @returns {Promise<void>}
	 */
	async release() {
		if (this.state !== 'held') {
			return;
		}
		this.state = 'released';
		this._stop();
		this._resolveClosed(null);
		try {
			await this.client.unlock(this.key, this.token);
		} catch (e) {
			if (!isLeaseGone(e)) {
				throw e;
			}
		}
	}
}

/**
 * isLeaseGone: the server says this token's lease no longer exists.
 * @param {unknown} e
 * @returns {boolean}
 */
function isLeaseGone(e) {
	return e instanceof LockedError || e instanceof LockExpiredError ||
		(e instanceof DataSyncError &&
		 ['LOCK_TOKEN_MISMATCH', 'NOT_LOCKED', 'LOCK_EXPIRED'].includes(e.reason));
}
