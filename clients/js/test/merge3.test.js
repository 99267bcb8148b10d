// Unit tests for merge3 / resolveMerge / deepEqual: pure, no network.
// Run: node --test clients/js/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { merge3, resolveMerge, deepEqual } from '../datasync.js';

const base = { title: 'Printer on fire', status: 'open', assignee: 'ann', notes: '' };

test('merge3 takes changes to different fields from both sides', () => {
	const mine = { ...base, notes: 'bring an extinguisher' };
	const theirs = { ...base, status: 'in progress' };
	const r = merge3(base, mine, theirs);
	assert.deepEqual(r.conflicts, []);
	assert.deepEqual(r.merged, {
		title: 'Printer on fire', status: 'in progress', assignee: 'ann',
		notes: 'bring an extinguisher',
	});
});

test('merge3 reports a field both sides changed differently, with all three values', () => {
	const mine = { ...base, title: 'Printer smoking', notes: 'mine' };
	const theirs = { ...base, title: 'Printer burnt', assignee: 'bob' };
	const r = merge3(base, mine, theirs);
	assert.deepEqual(r.conflicts, [{
		field: 'title', path: ['title'],
		base: 'Printer on fire', mine: 'Printer smoking', theirs: 'Printer burnt',
	}]);
	// merged holds both sides' clean changes, and mine where they conflict
	assert.equal(r.merged.title, 'Printer smoking');
	assert.equal(r.merged.notes, 'mine');
	assert.equal(r.merged.assignee, 'bob');
});

test('merge3 treats the same change on both sides as no conflict', () => {
	const mine = { ...base, status: 'done' };
	const theirs = { ...base, status: 'done', assignee: 'cy' };
	const r = merge3(base, mine, theirs);
	assert.deepEqual(r.conflicts, []);
	assert.deepEqual(r.merged, { ...base, status: 'done', assignee: 'cy' });
});

test('merge3 keeps fields neither side changed', () => {
	const r = merge3(base, { ...base }, { ...base });
	assert.deepEqual(r, { merged: base, conflicts: [] });
});

test('merge3 keeps a field added by one side', () => {
	const r = merge3(base, { ...base, priority: 2 }, { ...base });
	assert.deepEqual(r.conflicts, []);
	assert.equal(r.merged.priority, 2);
	const r2 = merge3(base, { ...base }, { ...base, due: '2024-01-01' });
	assert.equal(r2.merged.due, '2024-01-01');
});

test('merge3 reports a field both sides added with different values, base undefined', () => {
	const r = merge3(base, { ...base, priority: 1 }, { ...base, priority: 3 });
	assert.deepEqual(r.conflicts, [{ field: 'priority', path: ['priority'], base: undefined, mine: 1, theirs: 3 }]);
});

test('merge3 removes a field one side removed and the other left alone', () => {
	const { notes: _n, ...mine } = base;
	const r = merge3(base, mine, { ...base, status: 'done' });
	assert.deepEqual(r.conflicts, []);
	assert.equal('notes' in r.merged, false);
	assert.equal(r.merged.status, 'done');
	const { assignee: _a, ...theirs } = base;
	const r2 = merge3(base, { ...base }, theirs);
	assert.equal('assignee' in r2.merged, false);
});

test('merge3 reports a field removed on one side and changed on the other', () => {
	const { notes: _n, ...mine } = base;
	const r = merge3(base, mine, { ...base, notes: 'changed' });
	assert.deepEqual(r.conflicts, [{ field: 'notes', path: ['notes'], base: '', mine: undefined, theirs: 'changed' }]);
	assert.equal('notes' in r.merged, false, 'merged holds mine (removed) until resolved');
});

test('merge3 recurses into nested objects and merges different sub-fields', () => {
	const b = { owner: { name: 'ann', email: 'a@x' }, tags: ['x'] };
	const m = { owner: { name: 'Ann', email: 'a@x' }, tags: ['x'] };
	const t = { owner: { name: 'ann', email: 'ann@y' }, tags: ['x'] };
	const r = merge3(b, m, t);
	assert.deepEqual(r.conflicts, []);
	assert.deepEqual(r.merged, { owner: { name: 'Ann', email: 'ann@y' }, tags: ['x'] });
});

test('merge3 names a nested conflict by its dotted path', () => {
	const b = { owner: { name: 'ann', email: 'a@x' } };
	const m = { owner: { name: 'ann', email: 'mine@x' } };
	const t = { owner: { name: 'ann', email: 'theirs@x' } };
	const r = merge3(b, m, t);
	assert.deepEqual(r.conflicts, [{
		field: 'owner.email', path: ['owner', 'email'], base: 'a@x', mine: 'mine@x', theirs: 'theirs@x',
	}]);
});

test("merge3 with nested: 'value' treats a nested object as one value", () => {
	const b = { owner: { name: 'ann', email: 'a@x' } };
	const m = { owner: { name: 'Ann', email: 'a@x' } };
	const t = { owner: { name: 'ann', email: 'ann@y' } };
	const r = merge3(b, m, t, { nested: 'value' });
	assert.equal(r.conflicts.length, 1);
	assert.equal(r.conflicts[0].field, 'owner');
	assert.deepEqual(r.conflicts[0].theirs, { name: 'ann', email: 'ann@y' });
	assert.deepEqual(r.merged.owner, m.owner);
});

test('merge3 merges objects both sides added against an empty base', () => {
	const r = merge3({}, { meta: { a: 1 } }, { meta: { b: 2 } });
	assert.deepEqual(r, { merged: { meta: { a: 1, b: 2 } }, conflicts: [] });
});

test('merge3 compares arrays whole and never merges them element-wise', () => {
	const b = { tags: ['a'] };
	const one = merge3(b, { tags: ['a', 'b'] }, { tags: ['a'] });
	assert.deepEqual(one, { merged: { tags: ['a', 'b'] }, conflicts: [] });
	const both = merge3(b, { tags: ['a', 'b'] }, { tags: ['a', 'c'] });
	assert.deepEqual(both.conflicts.map((c) => c.field), ['tags']);
});

test('merge3 without a base reports every disagreement', () => {
	const r = merge3(null, { a: 1, b: 2 }, { a: 1, b: 3 });
	assert.deepEqual(r.conflicts, [{ field: 'b', path: ['b'], base: undefined, mine: 2, theirs: 3 }]);
	assert.equal(r.merged.a, 1);
});

test('merge3 on plain values reports a conflict at the empty path', () => {
	assert.deepEqual(merge3('a', 'b', 'a'), { merged: 'b', conflicts: [] });
	assert.deepEqual(merge3('a', 'a', 'c'), { merged: 'c', conflicts: [] });
	const r = merge3('a', 'b', 'c');
	assert.deepEqual(r.conflicts, [{ field: '', path: [], base: 'a', mine: 'b', theirs: 'c' }]);
});

test('merge3 does not modify its inputs', () => {
	const b = { a: { x: 1 }, n: 1 };
	const m = { a: { x: 2 }, n: 1 };
	const t = { a: { x: 1, y: 1 }, n: 2 };
	const snap = JSON.stringify([b, m, t]);
	merge3(b, m, t);
	assert.equal(JSON.stringify([b, m, t]), snap);
});

test('merge3 rejects an unknown nested mode', () => {
	assert.throws(() => merge3({}, {}, {}, /** @type {any} */ ({ nested: 'deep' })), TypeError);
});

test('resolveMerge applies per-field choices, removals and nested paths', () => {
	const b = { title: 't', notes: 'n', owner: { email: 'a' } };
	const m = { title: 'mine', owner: { email: 'm' } };              // notes removed
	const t = { title: 'theirs', notes: 'N', owner: { email: 't' } };
	const r = merge3(b, m, t);
	assert.deepEqual(r.conflicts.map((c) => c.field).sort(), ['notes', 'owner.email', 'title']);
	const choice = { title: 'theirs', notes: 'mine', 'owner.email': { value: 'chosen' } };
	const out = resolveMerge(r, (c) => /** @type {any} */ (choice)[c.field]);
	assert.deepEqual(out, { title: 'theirs', owner: { email: 'chosen' } });
	assert.equal(r.merged.title, 'mine', 'the merge result itself is left alone');
});

test('deepEqual ignores object key order but not array order', () => {
	assert.equal(deepEqual({ a: 1, b: [1, 2] }, { b: [1, 2], a: 1 }), true);
	assert.equal(deepEqual([1, 2], [2, 1]), false);
	assert.equal(deepEqual({ a: undefined }, {}), true);
	assert.equal(deepEqual(null, {}), false);
	assert.equal(deepEqual(1, '1'), false);
});
