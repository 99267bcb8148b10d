// app.js - the datasync demo: one shared ticket edited from several tabs.
//
// Optimistic by default: the tab remembers the version it started editing
// from (the base) and saves with If-Match on it. A conflict opens a dialog:
// Discard mine, Merge (three-way against the base, fetched from history)
// or Overwrite (a compare-and-set against the version the conflict shows).
// Pessimistic on demand: "Edit with lock" takes a lease that datasync.js
// renews in the background; other tabs see who edits until when and
// cannot save; "Edit with lock" on a locked ticket waits in line for it.
// Changes arrive at once through datasync.watch() (Server-Sent Events, or
// long polls); only while the watch is failing does the page poll with
// If-None-Match (about once a second). It never overwrites a field the
// user has edited.
//
// Query parameters: ?key=K (default demo/ticket-1), ?ttl=MS lock lease
// (1000..3600000, default 30000), ?poll=MS the fallback poll's period
// (200..10000, default 1000; 0 = no polling, not even as a fallback),
// ?watch=auto|sse|poll|off (default auto: SSE, long polls where SSE
// fails; off = poll only), ?wait=MS how long "Edit with lock" waits for
// another holder (0..60000, default 30000).
//
// Authentication: when GET /v1/session says the server requires tokens and
// this browser has no session, the page shows a sign-in form; the token
// goes to POST /v1/session, which sets an HttpOnly cookie that every later
// request (fetch and EventSource) carries, so script never keeps the
// secret. A 401 during use (a revoked token) stops reads, the watch and the
// lock, and shows the form again.
import {
	DataSyncClient, DataSyncError, ConflictError, LockedError, LockExpiredError,
	NotFoundError, RevisionCompactedError, merge3, resolveMerge,
} from '/datasync.js';

/** @typedef {import('/datasync.js').RecordView} RecordView */
/** @typedef {import('/datasync.js').LockState} LockState */
/** @typedef {import('/datasync.js').LockHandle} LockHandle */
/** @typedef {import('/datasync.js').MergeResult} MergeResult */
/** @typedef {import('/datasync.js').WatchEvent} WatchEvent */
/** @typedef {import('/datasync.js').WatchHandle} WatchHandle */
/** @typedef {{title: string, status: string, assignee: string, notes: string}} TicketFields */

/** @type {(keyof TicketFields)[]} */
const FIELDS = ['title', 'status', 'assignee', 'notes'];
/** @type {Record<keyof TicketFields, string>} */
const LABELS = { title: 'Title', status: 'Status', assignee: 'Assignee', notes: 'Notes' };
const NAME_STORAGE = 'datasync-demo.name';

const params = new URLSearchParams(location.search);
const KEY = params.get('key') || 'demo/ticket-1';
const LOCK_TTL_MS = clampParam('ttl', 30000, 1000, 3600000);
const POLL_MS = params.get('poll') === '0' ? 0 : clampParam('poll', 1000, 200, 10000);
const LOCK_WAIT_MS = clampParam('wait', 30000, 0, 60000);
const WATCH_MODE = /** @type {'auto'|'sse'|'poll'|'off'} */ (
	['auto', 'sse', 'poll', 'off'].includes(params.get('watch') ?? '') ? params.get('watch') : 'auto');

/** @param {string} name @param {number} dflt @param {number} min @param {number} max */
function clampParam(name, dflt, min, max) {
	const raw = params.get(name);
	const v = raw === null || raw === '' ? NaN : Number(raw); // Number(null) is 0
	return Number.isFinite(v) && v >= min && v <= max ? Math.round(v) : dflt;
}

/* --- elements ------------------------------------------------------------- */

/**
 * @template {HTMLElement} T
 * @param {string} id
 * @returns {T}
 */
function $(id) {
	const el = document.getElementById(id);
	if (!el) {
		throw new Error(`demo: missing #${id}`);
	}
	return /** @type {T} */ (el);
}

const el = {
	you: /** @type {HTMLInputElement} */ ($('you-name')),
	key: $('record-key'),
	meta: $('record-meta'),
	version: $('version'),
	conn: $('conn'),
	lockBanner: $('lock-banner'),
	lockBannerText: $('lock-banner-text'),
	ownLock: $('own-lock'),
	ownLockText: $('own-lock-text'),
	absentNote: $('absent-note'),
	absentNoteText: $('absent-note-text'),
	form: /** @type {HTMLFormElement} */ ($('ticket-form')),
	save: /** @type {HTMLButtonElement} */ ($('btn-save')),
	revert: /** @type {HTMLButtonElement} */ ($('btn-revert')),
	lock: /** @type {HTMLButtonElement} */ ($('btn-lock')),
	release: /** @type {HTMLButtonElement} */ ($('btn-release')),
	saveHint: $('save-hint'),
	message: $('message'),
	openTab: /** @type {HTMLAnchorElement} */ ($('open-tab')),
	dialog: /** @type {HTMLDialogElement} */ ($('conflict-dialog')),
	conflictTitle: $('conflict-title'),
	conflictSummary: $('conflict-summary'),
	conflictBody: /** @type {HTMLTableSectionElement} */ ($('conflict-table').querySelector('tbody')),
	mergeChoices: $('merge-choices'),
	mergeChoiceList: $('merge-choice-list'),
	conflictError: $('conflict-error'),
	discardMine: /** @type {HTMLButtonElement} */ ($('btn-discard-mine')),
	merge: /** @type {HTMLButtonElement} */ ($('btn-merge')),
	applyMerge: /** @type {HTMLButtonElement} */ ($('btn-apply-merge')),
	overwrite: /** @type {HTMLButtonElement} */ ($('btn-overwrite')),
	conflictCancel: /** @type {HTMLButtonElement} */ ($('btn-conflict-cancel')),
	main: $('app-main'),
	signin: $('signin'),
	signinForm: /** @type {HTMLFormElement} */ ($('signin-form')),
	signinToken: /** @type {HTMLInputElement} */ ($('signin-token')),
	signinButton: /** @type {HTMLButtonElement} */ ($('btn-signin')),
	signinError: $('signin-error'),
	session: $('session'),
	sessionName: $('session-name'),
	sessionGrants: $('session-grants'),
	signout: /** @type {HTMLButtonElement} */ ($('btn-signout')),
};

/** @type {Record<keyof TicketFields, HTMLInputElement|HTMLSelectElement|HTMLTextAreaElement>} */
const inputs = {
	title: /** @type {HTMLInputElement} */ ($('field-title')),
	status: /** @type {HTMLSelectElement} */ ($('field-status')),
	assignee: /** @type {HTMLInputElement} */ ($('field-assignee')),
	notes: /** @type {HTMLTextAreaElement} */ ($('field-notes')),
};

/* --- state ---------------------------------------------------------------- */

/**
 * @typedef {object} Conflict
 * @property {RecordView|null} current  the record now (null / deleted: gone)
 * @property {Record<string, any>} mine the document this tab tried to save
 * @property {number} baseVersion       the version this tab started from (0: none)
 * @property {Record<string, any>|null} baseValue  its value (null: unknown)
 * @property {string} baseNote          why the base is missing, if it is
 * @property {MergeResult} merge
 */

const state = {
	/** @type {RecordView|null} latest record seen; null while absent or unknown */
	server: null,
	/** @type {boolean} the record does not exist (404) */
	absent: false,
	/** @type {boolean} at least one read answered */
	loaded: false,
	/** @type {{version: number, value: Record<string, any>}|null} what editing started from */
	base: null,
	/** @type {Record<string, string>} what the app last put in each input */
	shown: {},
	/** @type {Set<keyof TicketFields>} fields the user changed from what was shown */
	dirty: new Set(),
	/** @type {LockHandle|null} the lease this tab holds */
	myLock: null,
	/** @type {LockState|null} the lock as the server last showed it */
	serverLock: null,
	/** @type {Conflict|null} */
	conflict: null,
	busy: false,
	/** @type {ReturnType<typeof setTimeout>|undefined} */
	pollTimer: undefined,
	/** a 304 without record headers says nothing about locks: read fully */
	blind304: false,
	pollCount: 0,
	/** a read is in flight; pollAgain: another was asked for meanwhile */
	polling: false,
	pollAgain: false,
	/** @type {WatchHandle|null} */
	watch: null,
	/** the watch delivers changes: no polling needed */
	watchLive: false,
	/** @type {string} whose lock "Edit with lock" is waiting for ('' = not waiting) */
	waitingFor: '',
	/** reads and the watch run (false while signed out) */
	active: false,
};

/* --- helpers -------------------------------------------------------------- */

/** @param {number} n */
const pad2 = (n) => String(n).padStart(2, '0');

/** @param {number} ms  @returns {string} HH:MM:SS local time */
function clock(ms) {
	const d = new Date(ms);
	return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

/** @param {number} ms @returns {string} */
function left(ms) {
	const s = Math.max(0, Math.ceil((ms - Date.now()) / 1000));
	return s >= 60 ? `${Math.floor(s / 60)} min ${pad2(s % 60)} s` : `${s} s`;
}

/**
 * ticketOf: the record's value as a document (unknown fields kept), with
 * the four ticket fields as strings.
 * @param {unknown} v
 * @returns {Record<string, any>}
 */
function ticketOf(v) {
	/** @type {Record<string, any>} */
	const doc = v && typeof v === 'object' && !Array.isArray(v) ? { ...v } : {};
	for (const f of FIELDS) {
		if (typeof doc[f] !== 'string') {
			doc[f] = doc[f] === undefined || doc[f] === null ? '' : String(doc[f]);
		}
	}
	if (!doc.status) {
		doc.status = 'open';
	}
	return doc;
}

/** @param {string} name */
function validName(name) {
	// Any text: names travel percent-encoded (see datasync.js).
	return name.length >= 1 && name.length <= 64 && !/[\u0000-\u001f\u007f]/.test(name) &&
		name.trim() !== '';
}

/** @param {string} text @param {'info'|'ok'|'error'} [kind] */
function say(text, kind = 'info') {
	el.message.textContent = text;
	el.message.dataset.kind = kind;
}

/** @param {unknown} e */
function errText(e) {
	if (e instanceof DataSyncError) {
		return `${e.message}${e.reason ? ` (${e.reason})` : ''}`;
	}
	return e instanceof Error ? e.message : String(e);
}

/** @returns {LockState|null} a live lock held by someone other than this tab */
function foreignLock() {
	const l = state.serverLock;
	if (!l || l.expiresAt <= Date.now()) {
		return null; // an expired lease is no lock at all
	}
	if (state.myLock && state.myLock.held && l.fencingToken === state.myLock.fencingToken) {
		return null;
	}
	return l;
}

/* --- the form ------------------------------------------------------------- */

/** @returns {TicketFields} */
function readForm() {
	return {
		title: inputs.title.value, status: inputs.status.value,
		assignee: inputs.assignee.value, notes: inputs.notes.value,
	};
}

/**
 * showValue puts a document into the inputs; with onlyClean, fields the
 * user is editing are left alone.
 * @param {Record<string, any>} doc
 * @param {boolean} onlyClean
 */
function showValue(doc, onlyClean) {
	const t = ticketOf(doc);
	for (const f of FIELDS) {
		if (onlyClean && state.dirty.has(f)) {
			continue;
		}
		const input = inputs[f];
		if (input instanceof HTMLSelectElement && ![...input.options].some((o) => o.value === t[f])) {
			input.add(new Option(t[f], t[f])); // a status some other client invented
		}
		if (input.value !== t[f]) {
			input.value = t[f];
		}
		state.shown[f] = t[f];
		state.dirty.delete(f);
	}
	renderDirty();
}

/** @param {keyof TicketFields} f */
function onFieldInput(f) {
	if (inputs[f].value === state.shown[f]) {
		state.dirty.delete(f);
	} else {
		state.dirty.add(f);
	}
	if (state.dirty.size === 0 && state.server && state.base && state.server.version !== state.base.version) {
		// Back to clean while the server moved on: follow it again.
		rebase(state.server);
	}
	renderDirty();
	render();
}

function renderDirty() {
	for (const f of FIELDS) {
		const isDirty = state.dirty.has(f);
		inputs[f].dataset.dirty = String(isDirty);
		const mark = document.querySelector(`[data-dirty-for="${f}"]`);
		if (mark instanceof HTMLElement) {
			mark.hidden = !isDirty;
		}
	}
}

/** rebase: start editing from this record; the form shows it entirely. */
function rebase(/** @type {RecordView} */ r) {
	state.base = { version: r.version, value: ticketOf(r.value) };
	showValue(state.base.value, false);
}

/** @returns {Record<string, any>} what Save writes: the base's other fields plus the form */
function composeMine() {
	return { ...(state.base ? state.base.value : {}), ...readForm() };
}

/* --- rendering ------------------------------------------------------------ */

function render() {
	const foreign = foreignLock();
	const mine = state.myLock && state.myLock.held ? state.myLock : null;

	el.version.textContent = state.server ? String(state.server.version) : (state.absent ? 'none' : '–');
	if (state.server) {
		const s = state.server;
		const by = s.updatedBy ? ` by ${s.updatedBy}` : '';
		const at = s.updatedAt ? ` at ${clock(s.updatedAt)}` : '';
		el.meta.textContent = `Version ${s.version}, saved${by}${at}.` +
			(state.base && state.base.version !== s.version ? ` You are editing from version ${state.base.version}.` : '');
	} else {
		el.meta.textContent = !state.absent ? 'Loading…'
			: state.base ? 'Deleted by someone else.' : 'Not created yet.';
	}
	el.absentNote.hidden = !state.absent;
	if (state.absent && state.base) {
		el.absentNoteText.textContent = `This ticket was deleted while you were editing version ${state.base.version}. Saving asks whether to create it again.`;
	} else if (state.absent) {
		el.absentNoteText.replaceChildren('This ticket does not exist yet. Fill it in and press ',
			Object.assign(document.createElement('strong'), { textContent: 'Create ticket' }), '.');
	}

	if (foreign) {
		el.lockBanner.hidden = false;
		const self = foreign.owner === el.you.value ? ' (your name, in another tab)' : '';
		el.lockBannerText.textContent =
			`Being edited by ${foreign.owner || 'someone'}${self} until ${clock(foreign.expiresAt)} (${left(foreign.expiresAt)} left). Saving is disabled until the lock is released or runs out.`;
		el.lockBanner.dataset.owner = foreign.owner;
	} else {
		el.lockBanner.hidden = true;
		el.lockBannerText.textContent = '';
		delete el.lockBanner.dataset.owner;
	}
	if (mine) {
		el.ownLock.hidden = false;
		el.ownLockText.textContent =
			`You are editing with a lock until ${clock(mine.expiresAt)} (${left(mine.expiresAt)} left, renewed automatically).`;
	} else {
		el.ownLock.hidden = true;
	}

	const nothingToSave = !!state.base && state.dirty.size === 0;
	el.save.textContent = state.base ? 'Save' : 'Create ticket';
	el.save.disabled = state.busy || !state.loaded || !!foreign || nothingToSave || !validName(el.you.value);
	el.save.title = foreign ? `Locked by ${foreign.owner}` : '';
	el.saveHint.textContent = foreign ? `Saving is disabled: ${foreign.owner || 'someone'} holds the lock.`
		: nothingToSave ? 'No changes to save.'
			: mine ? 'Saving with your lock.' : (!state.base ? 'Creates the ticket (only if nobody else did first).'
				: `Saves only if nobody else saved since version ${state.base ? state.base.version : '?'}.`);
	el.revert.disabled = state.busy || state.dirty.size === 0;
	el.lock.hidden = !!mine;
	// A foreign lock can be waited for, in line (lock with waitMs).
	el.lock.textContent = state.waitingFor ? `Waiting for ${state.waitingFor}'s lock…`
		: foreign && LOCK_WAIT_MS > 0 ? `Wait for ${foreign.owner ? `${foreign.owner}'s` : 'the'} lock` : 'Edit with lock';
	el.lock.disabled = state.busy || !state.loaded || (!!foreign && LOCK_WAIT_MS === 0) || !validName(el.you.value);
	el.release.hidden = !mine;
	el.release.disabled = state.busy;
	document.body.dataset.lock = mine ? 'mine' : foreign ? 'foreign' : 'none';
}

/** @param {'online'|'offline'|'connecting'} s @param {string} [why] */
function setConn(s, why) {
	el.conn.dataset.state = s;
	// "live": changes are pushed (watch); "polling": read every POLL_MS.
	el.conn.textContent = s !== 'online' ? s : state.watchLive ? 'live' : 'polling';
	el.conn.title = why ?? '';
}

/* --- polling -------------------------------------------------------------- */

/** applyServer takes in a full read of the record. */
function applyServer(/** @type {RecordView} */ r) {
	if (state.server && r.version < state.server.version) {
		return; // an older read overtaken by a newer one (versions only grow)
	}
	state.server = r;
	state.absent = false;
	state.loaded = true;
	if (r.lock !== undefined) {
		state.serverLock = r.lock;
	}
	if (!state.conflict && state.dirty.size === 0) {
		rebase(r);
	} else {
		showValue(ticketOf(r.value), true);
	}
}

function applyAbsent() {
	state.server = null;
	state.absent = true;
	state.loaded = true;
	state.serverLock = null;
	if (state.base && state.dirty.size === 0 && !state.conflict) {
		state.base = null;
		showValue(ticketOf({}), false);
	}
	if (!state.base && state.dirty.size === 0) {
		showValue(ticketOf({}), false);
	}
}

async function poll() {
	clearTimeout(state.pollTimer);
	if (!state.active) {
		return; // signed out: nothing to read until signed in again
	}
	if (state.polling) {
		state.pollAgain = true; // one read at a time, so answers stay in order
		return;
	}
	state.polling = true;
	state.pollCount++;
	try {
		// Normally a conditional read (mostly 304s); when the gateway's 304s
		// carry no lock headers, every third read is a full one instead.
		const conditional = state.server && !(state.blind304 && state.pollCount % 3 === 0);
		const r = await client.get(KEY, conditional && state.server ? { ifNoneMatch: state.server.version } : {});
		if (r.notModified) {
			if (r.lock === undefined) {
				state.blind304 = true;
			} else {
				state.serverLock = r.lock;
			}
		} else {
			applyServer(r);
		}
		setConn('online');
	} catch (e) {
		if (e instanceof NotFoundError) {
			applyAbsent();
			setConn('online');
		} else {
			setConn('offline', errText(e));
		}
	}
	state.polling = false;
	render();
	clearTimeout(state.pollTimer);
	if (state.pollAgain) {
		state.pollAgain = false;
		void poll();
	} else if (state.active && !state.watchLive && POLL_MS > 0) {
		// The fallback: only while the watch is not delivering.
		state.pollTimer = setTimeout(() => { void poll(); }, POLL_MS);
	}
}

/* --- the watch ------------------------------------------------------------ */

/** @param {WatchEvent} ev */
function onWatchEvent(ev) {
	if (ev.key !== KEY) {
		return; // the prefix also matches longer keys (KEY + '0', KEY + '/x')
	}
	const r = ev.record;
	switch (ev.type) {
	case 'put': {
		const own = state.base && state.base.version === r.version && state.server && state.server.version === r.version;
		state.serverLock = r.lock ?? null;
		if (ev.valueOmitted) {
			void poll(); // too old for the history: read the latest
		} else if (!state.server || r.version > state.server.version) {
			applyServer(asJson(r));
		}
		if (!own) {
			say(`${r.updatedBy || 'Someone'} saved version ${r.version}.`);
		}
		break;
	}
	case 'delete':
		applyAbsent();
		say(`${r.updatedBy || 'Someone'} deleted the ticket.`);
		break;
	case 'lock':
		state.serverLock = r.lock ?? null;
		break;
	case 'unlock':
	case 'expire':
		state.serverLock = null;
		break;
	default:
		void poll(); // a kind of change this page does not know: read
	}
	setConn('online');
	render();
}

/**
 * asJson: an event's record with its value parsed as JSON even when the
 * event did not name the content type (the ticket is always JSON).
 * @param {RecordView} r
 * @returns {RecordView}
 */
function asJson(r) {
	if (typeof r.value !== 'string' || r.text === undefined) {
		return r;
	}
	try {
		return { ...r, value: JSON.parse(r.text) };
	} catch {
		return r;
	}
}

function startWatch() {
	if (WATCH_MODE === 'off' || !state.active) {
		return;
	}
	// The prefix, not {key}: the key form of /v1/events is not promised
	// by every gateway; other keys are filtered out above.
	state.watch = client.watch(KEY, onWatchEvent, {
		values: true,
		transport: WATCH_MODE,
		onOpen: () => {
			state.watchLive = true;
			clearTimeout(state.pollTimer);
			// What changed before the watch was in place (or while it was
			// down, before it resumed): one read covers it.
			void poll();
		},
		onError: (err, info) => {
			const wasLive = state.watchLive;
			state.watchLive = false;
			setConn('offline', errText(err));
			if (wasLive || info.fatal) {
				void poll(); // fall back to polling while the watch is down
			}
		},
		onReset: () => {
			// The cursor fell out of the change log: read again and watch
			// from now.
			state.watchLive = false;
			void poll();
			startWatch();
		},
	});
}

/* --- saving --------------------------------------------------------------- */

/**
 * saved: a write succeeded; the written document is the new base.
 * @param {import('/datasync.js').WriteResult} w
 * @param {Record<string, any>} doc
 */
function saved(w, doc) {
	state.base = { version: w.version, value: ticketOf(doc) };
	state.server = {
		...(state.server ?? {}),
		key: KEY, notModified: false, version: w.version, revision: w.revision,
		createdAt: w.createdAt, updatedAt: w.updatedAt, updatedBy: w.updatedBy,
		contentType: w.contentType, lock: state.serverLock, deleted: false, etag: w.etag,
		bytes: undefined, text: JSON.stringify(doc), value: doc, json: () => doc,
	};
	state.absent = false;
	showValue(state.base.value, false);
}

async function save() {
	if (state.busy || foreignLock()) {
		return;
	}
	const mine = composeMine();
	const lockToken = state.myLock && state.myLock.held ? state.myLock.token : undefined;
	state.busy = true;
	render();
	try {
		// Without a base this tab creates; with one it saves against it,
		// even when the record was deleted meanwhile (a conflict then,
		// never a silent re-create over someone's delete).
		const creating = !state.base;
		const w = await client.put(KEY, mine, creating ? { ifAbsent: true, lockToken } : { ifMatch: state.base?.version, lockToken });
		saved(w, mine);
		say(creating ? `Created the ticket (version ${w.version}).` : `Saved as version ${w.version}.`, 'ok');
	} catch (e) {
		await handleWriteError(e, mine);
	} finally {
		state.busy = false;
		render();
	}
}

/**
 * handleWriteError: a conflict opens the dialog; a lock shows who has it.
 * @param {unknown} e @param {Record<string, any>} mine
 */
async function handleWriteError(e, mine) {
	if (e instanceof ConflictError) {
		await openConflict(e.current, mine);
	} else if (e instanceof LockedError) {
		if (state.myLock && state.myLock.fencingToken !== e.fencingToken) {
			// We thought we held it: our lease is gone. Let go locally.
			const h = state.myLock;
			dropMyLock();
			h.release().catch(() => {});
		}
		state.serverLock = { owner: e.owner, expiresAt: e.expiresAt ?? 0, fencingToken: e.fencingToken ?? 0 };
		say(`Not saved: ${e.owner || 'someone'} holds the lock${e.expiresAt ? ` until ${clock(e.expiresAt)}` : ''}.`, 'error');
	} else if (e instanceof LockExpiredError) {
		dropMyLock();
		say(`Not saved: your lock ran out (${e.message}). Save again to save optimistically.`, 'error');
	} else {
		say(`Not saved: ${errText(e)}`, 'error');
	}
}

/* --- conflicts ------------------------------------------------------------ */

/**
 * openConflict shows the dialog for a failed write. The three-way merge
 * is computed at once (base fetched from history with ?version=N), so the
 * dialog can say whether the edits overlap.
 * @param {RecordView|null} current @param {Record<string, any>} mine
 */
async function openConflict(current, mine) {
	const baseVersion = state.conflict ? state.conflict.baseVersion : (state.base ? state.base.version : 0);
	/** @type {Record<string, any>|null} */
	let baseValue = null;
	let baseNote = '';
	if (baseVersion > 0) {
		try {
			const b = await client.get(KEY, { version: baseVersion });
			baseValue = ticketOf(b.value);
		} catch (e) {
			// Compacted (410) or unreachable: the copy this tab kept is the
			// same version, so the merge can still be three-way.
			if (state.base && state.base.version === baseVersion) {
				baseValue = state.base.value;
				baseNote = ` (version ${baseVersion} is no longer in history: using this tab's copy)`;
			} else {
				baseNote = ` (version ${baseVersion} is no longer available: every difference counts as a conflict)`;
			}
		}
	}
	const theirs = current && !current.deleted ? ticketOf(current.value) : null;
	const merge = merge3(baseValue, mine, theirs ?? {});
	state.conflict = { current, mine, baseVersion, baseValue, baseNote, merge };
	if (current && !current.deleted) {
		state.server = current;
		if (current.lock !== undefined) {
			state.serverLock = current.lock;
		}
	}
	renderConflict();
	if (!el.dialog.open) {
		el.dialog.showModal();
	}
	say('Someone else saved meanwhile: choose how to go on.', 'error');
}

function renderConflict() {
	const c = state.conflict;
	if (!c) {
		return;
	}
	const cur = c.current;
	const who = cur && cur.updatedBy ? cur.updatedBy : 'someone';
	const when = cur && cur.updatedAt ? ` at ${clock(cur.updatedAt)}` : '';
	const overlap = c.merge.conflicts.map((x) => LABELS[/** @type {keyof TicketFields} */ (x.field)] ?? x.field);
	let text;
	if (!cur || cur.deleted) {
		text = `${who} deleted the ticket${when} while you were editing version ${c.baseVersion}. Overwrite creates it again with your values.`;
	} else {
		text = `${who} saved version ${cur.version}${when} while you were editing version ${c.baseVersion}${c.baseNote}. ` +
			(overlap.length === 0
				? 'Your edits and theirs touch different fields: Merge keeps both.'
				: `You both changed ${overlap.join(', ')}: Merge lets you choose field by field.`);
	}
	el.conflictSummary.textContent = text;
	el.conflictTitle.textContent = !cur || cur.deleted ? 'Someone else deleted this ticket' : 'Someone else saved this ticket';
	el.dialog.dataset.overlap = String(overlap.length > 0);
	el.dialog.dataset.theirsVersion = cur ? String(cur.version) : '';

	const theirs = cur && !cur.deleted ? ticketOf(cur.value) : null;
	el.conflictBody.replaceChildren();
	for (const f of FIELDS) {
		const b = c.baseValue ? c.baseValue[f] : undefined;
		const m = c.mine[f];
		const t = theirs ? theirs[f] : undefined;
		const tr = document.createElement('tr');
		tr.dataset.field = f;
		const conflicted = c.merge.conflicts.some((x) => x.field === f);
		tr.className = conflicted ? 'both' : '';
		const th = document.createElement('th');
		th.scope = 'row';
		th.textContent = LABELS[f];
		tr.append(th);
		// "Yours" is marked only where it differs from theirs too: a field
		// this tab did not edit shows (and sends) their value already.
		for (const [v, changed] of [[b, false], [m, b !== m && m !== t], [t, b !== t]]) {
			const td = document.createElement('td');
			td.textContent = v === undefined ? '—' : String(v);
			if (changed && c.baseValue) {
				td.className = 'changed';
			}
			tr.append(td);
		}
		el.conflictBody.append(tr);
	}
	el.mergeChoices.hidden = true;
	el.applyMerge.hidden = true;
	el.merge.hidden = false;
	el.merge.disabled = !theirs;
	el.conflictError.textContent = '';
}

function showMergeChoices() {
	const c = state.conflict;
	if (!c) {
		return;
	}
	el.mergeChoiceList.replaceChildren();
	for (const x of c.merge.conflicts) {
		const f = x.field;
		const row = document.createElement('div');
		row.className = 'choice';
		row.dataset.field = f;
		const title = document.createElement('span');
		title.className = 'choice-field';
		title.textContent = LABELS[/** @type {keyof TicketFields} */ (f)] ?? f;
		row.append(title);
		for (const side of /** @type {const} */ (['mine', 'theirs'])) {
			const id = `choice-${f}-${side}`;
			const label = document.createElement('label');
			label.htmlFor = id;
			const radio = document.createElement('input');
			radio.type = 'radio';
			radio.name = `choice-${f}`;
			radio.id = id;
			radio.value = side;
			radio.dataset.testid = id;
			radio.checked = side === 'mine';
			const v = side === 'mine' ? x.mine : x.theirs;
			const span = document.createElement('span');
			span.textContent = `${side === 'mine' ? 'Yours' : 'Theirs'}: ${v === undefined ? '(removed)' : String(v)}`;
			label.append(radio, span);
			row.append(label);
		}
		el.mergeChoiceList.append(row);
	}
	el.mergeChoices.hidden = false;
	el.applyMerge.hidden = false;
	el.merge.hidden = true;
	const first = el.mergeChoiceList.querySelector('input');
	if (first instanceof HTMLInputElement) {
		first.focus();
	}
}

/**
 * writeResolved saves a resolution of the conflict as a compare-and-set
 * against the version the conflict showed: a third writer arriving
 * meanwhile causes a new conflict (the dialog then shows that one).
 * @param {Record<string, any>} doc @param {string} what
 */
async function writeResolved(doc, what) {
	const c = state.conflict;
	if (!c) {
		return;
	}
	const lockToken = state.myLock && state.myLock.held ? state.myLock.token : undefined;
	const cur = c.current;
	setDialogBusy(true);
	try {
		const w = await client.put(KEY, doc, cur && !cur.deleted ? { ifMatch: cur.version, lockToken } : { ifAbsent: true, lockToken });
		closeConflict();
		saved(w, doc);
		say(`${what} Saved as version ${w.version}.`, 'ok');
	} catch (e) {
		if (e instanceof ConflictError) {
			await openConflict(e.current, c.mine);
			el.conflictError.textContent = `${e.current?.updatedBy || 'Someone'} saved again meanwhile (version ${e.current?.version ?? '?'}): nothing was overwritten. Choose again.`;
		} else {
			el.conflictError.textContent = `Not saved: ${errText(e)}`;
			if (e instanceof LockedError) {
				state.serverLock = { owner: e.owner, expiresAt: e.expiresAt ?? 0, fencingToken: e.fencingToken ?? 0 };
			}
		}
	} finally {
		setDialogBusy(false);
		render();
	}
}

/** @param {boolean} busy */
function setDialogBusy(busy) {
	state.busy = busy;
	for (const b of [el.discardMine, el.merge, el.applyMerge, el.overwrite, el.conflictCancel]) {
		b.disabled = busy;
	}
	if (!busy && state.conflict) {
		const cur = state.conflict.current;
		el.merge.disabled = !cur || cur.deleted;
	}
}

function closeConflict() {
	state.conflict = null;
	if (el.dialog.open) {
		el.dialog.close();
	}
}

async function onMerge() {
	const c = state.conflict;
	if (!c) {
		return;
	}
	if (c.merge.conflicts.length === 0) {
		const who = c.current && c.current.updatedBy ? c.current.updatedBy : 'the other writer';
		await writeResolved(c.merge.merged, `Merged your edits with ${who}'s version ${c.current ? c.current.version : ''}.`);
	} else {
		showMergeChoices();
	}
}

async function onApplyMerge() {
	const c = state.conflict;
	if (!c) {
		return;
	}
	const doc = resolveMerge(c.merge, (x) => {
		const picked = el.mergeChoiceList.querySelector(`input[name="choice-${CSS.escape(x.field)}"]:checked`);
		return picked instanceof HTMLInputElement && picked.value === 'theirs' ? 'theirs' : 'mine';
	});
	await writeResolved(doc, 'Merged field by field.');
}

async function onOverwrite() {
	const c = state.conflict;
	if (!c) {
		return;
	}
	await writeResolved(c.mine, 'Overwrote their version with yours.');
}

function onDiscardMine() {
	const c = state.conflict;
	if (!c) {
		return;
	}
	closeConflict();
	if (c.current && !c.current.deleted) {
		rebase(c.current);
		say(`Discarded your edits: showing version ${c.current.version}.`);
	} else {
		state.base = null;
		state.absent = true;
		showValue(ticketOf({}), false);
		say('Discarded your edits: the ticket was deleted.');
	}
	render();
}

/* --- locks ---------------------------------------------------------------- */

function dropMyLock() {
	const h = state.myLock;
	state.myLock = null;
	if (h && state.serverLock && state.serverLock.fencingToken === h.fencingToken) {
		state.serverLock = null; // ours, and gone: the next read tells who has it now
	}
	render();
}

async function takeLock() {
	if (state.busy || !validName(el.you.value)) {
		return;
	}
	const foreign = foreignLock();
	state.busy = true;
	if (foreign) {
		state.waitingFor = foreign.owner || 'someone';
		say(`Waiting for ${state.waitingFor}'s lock… (up to ${Math.round(LOCK_WAIT_MS / 1000)} s)`);
	}
	render();
	try {
		const h = await client.lock(KEY, el.you.value, {
			ttlMs: LOCK_TTL_MS,
			// Also without a known holder: another tab may have just taken it.
			waitMs: LOCK_WAIT_MS,
			onRenew: () => render(),
			onLost: (err) => {
				if (state.myLock === h) {
					dropMyLock();
					say(`Your lock was lost: ${errText(err)}. Saving is optimistic again.`, 'error');
				}
			},
		});
		state.myLock = h;
		state.serverLock = { owner: h.owner, expiresAt: h.expiresAt, fencingToken: h.fencingToken };
		say(`You hold the lock until ${clock(h.expiresAt)}; others cannot save meanwhile.`, 'ok');
		// Nobody can write now: if nothing is edited, start from the latest.
		if (state.dirty.size === 0) {
			await poll();
		}
	} catch (e) {
		if (e instanceof LockedError) {
			state.serverLock = { owner: e.owner, expiresAt: e.expiresAt ?? 0, fencingToken: e.fencingToken ?? 0 };
			say(`${e.owner || 'Someone'} is editing${e.expiresAt ? ` until ${clock(e.expiresAt)}` : ''}` +
				`${LOCK_WAIT_MS > 0 ? ` (still, after waiting ${Math.round(LOCK_WAIT_MS / 1000)} s)` : ''}.`, 'error');
		} else {
			say(`Could not lock: ${errText(e)}`, 'error');
		}
	} finally {
		state.busy = false;
		state.waitingFor = '';
		render();
	}
}

async function releaseLock() {
	const h = state.myLock;
	if (!h) {
		return;
	}
	state.myLock = null;
	state.serverLock = null;
	render();
	try {
		await h.release();
		say('Lock released.', 'ok');
	} catch (e) {
		say(`Released locally; the server did not answer (${errText(e)}): the lease runs out on its own.`, 'error');
	}
	if (!state.watchLive) {
		void poll();
	}
}

/* --- wiring --------------------------------------------------------------- */

function initName() {
	let name = '';
	try {
		name = localStorage.getItem(NAME_STORAGE) ?? '';
	} catch {
		name = ''; // storage disabled: a fresh name per load
	}
	if (!validName(name)) {
		name = `tab-${1000 + Math.floor(Math.random() * 9000)}`;
		try {
			localStorage.setItem(NAME_STORAGE, name);
		} catch { /* storage disabled */ }
	}
	el.you.value = name;
}

function onNameInput() {
	const name = el.you.value;
	if (!validName(name)) {
		el.you.setCustomValidity('Use 1 to 64 characters, not only spaces.');
		el.you.setAttribute('aria-invalid', 'true');
	} else {
		el.you.setCustomValidity('');
		el.you.removeAttribute('aria-invalid');
		client.setAuthor(name);
		try {
			localStorage.setItem(NAME_STORAGE, name);
		} catch { /* storage disabled */ }
	}
	render();
}

/* --- signing in ----------------------------------------------------------- */

/**
 * showSignIn stops reading and watching and shows the sign-in form.
 * @param {string} why shown above the form ('' = nothing)
 */
function showSignIn(why) {
	state.active = false;
	clearTimeout(state.pollTimer);
	if (state.watch) {
		state.watch.close();
		state.watch = null;
	}
	state.watchLive = false;
	if (state.myLock) {
		dropMyLock(); // its renewals would only meet 401s
	}
	el.main.hidden = true;
	el.session.hidden = true;
	el.signin.hidden = false;
	el.signinError.textContent = why;
	el.signinButton.disabled = false;
	el.signinToken.focus();
}

/**
 * begin shows the ticket and starts reading and watching.
 * @param {import('/datasync.js').SessionInfo|null} who null: no session API
 */
function begin(who) {
	el.signin.hidden = true;
	el.main.hidden = false;
	if (who && who.authenticated && who.token) {
		el.sessionName.textContent = who.token.name;
		el.sessionGrants.textContent = who.token.grants.join(', ') || 'no grants';
		el.session.hidden = false;
		// With authentication the server names writes and locks after the
		// token, whatever Author says: show that name.
		el.you.value = who.token.name;
		el.you.readOnly = true;
		client.setAuthor(who.token.name);
	} else {
		el.session.hidden = true;
		el.you.readOnly = false;
	}
	state.active = true;
	render();
	void poll();
	startWatch();
}

async function start() {
	/** @type {import('/datasync.js').SessionInfo|null} */
	let who = null;
	try {
		who = await client.whoami();
	} catch (e) {
		// 404, 501: a gateway or server older than /v1/session and WhoAmI.
		if (!(e instanceof DataSyncError && [404, 501].includes(e.status))) {
			say(`Cannot ask who you are: ${errText(e)}`, 'error');
		}
		who = null; // a gateway without /v1/session: no authentication
	}
	if (who && who.authRequired && !who.authenticated) {
		showSignIn('');
		return;
	}
	begin(who);
}

async function onSignIn() {
	const token = el.signinToken.value.trim();
	if (!token) {
		el.signinError.textContent = 'Paste a token first.';
		return;
	}
	el.signinButton.disabled = true;
	try {
		const who = await client.signIn(token);
		el.signinToken.value = '';
		say('');
		begin(who);
	} catch (e) {
		el.signinError.textContent = `Not signed in: ${errText(e)}`;
	} finally {
		el.signinButton.disabled = false;
	}
}

async function onSignOut() {
	if (state.myLock) {
		await releaseLock();
	}
	try {
		await client.signOut();
		showSignIn('Signed out.');
	} catch (e) {
		say(`Sign-out failed: ${errText(e)}`, 'error');
	}
}

initName();
const client = new DataSyncClient({
	author: validName(el.you.value) ? el.you.value : '',
	onUnauthenticated: (err) => {
		if (state.active) {
			showSignIn(`Your session ended: ${errText(err)}. Sign in again.`);
		}
	},
});

el.key.textContent = KEY;
document.title = `${KEY} · datasync demo`;
el.openTab.href = location.href;
el.you.addEventListener('input', onNameInput);
for (const f of FIELDS) {
	inputs[f].addEventListener('input', () => onFieldInput(f));
	inputs[f].addEventListener('change', () => onFieldInput(f));
}
el.form.addEventListener('submit', (ev) => {
	ev.preventDefault();
	void save();
});
el.revert.addEventListener('click', () => {
	if (state.server) {
		rebase(state.server);
	} else {
		showValue(state.base ? state.base.value : ticketOf({}), false);
	}
	say('Discarded your edits.');
	render();
});
el.lock.addEventListener('click', () => { void takeLock(); });
el.release.addEventListener('click', () => { void releaseLock(); });
el.merge.addEventListener('click', () => { void onMerge(); });
el.applyMerge.addEventListener('click', () => { void onApplyMerge(); });
el.overwrite.addEventListener('click', () => { void onOverwrite(); });
el.discardMine.addEventListener('click', onDiscardMine);
el.conflictCancel.addEventListener('click', () => {
	closeConflict();
	say('Still editing: saving again will meet the same conflict.');
	render();
});
el.dialog.addEventListener('cancel', () => { state.conflict = null; render(); });
// Countdowns, and locks whose lease ran out, without waiting for a poll.
setInterval(render, 250);
el.signinForm.addEventListener('submit', (ev) => {
	ev.preventDefault();
	void onSignIn();
});
el.signout.addEventListener('click', () => { void onSignOut(); });
render();
void start();
