// Unit tests of the collaboration client (notesync.js + collab.js) against a
// simulated notepad server speaking docs/notes-api.md's WebSocket protocol
// (a linear authority: with live sync a push is applied only when its base is
// the current version, else `stale`). Messages are delivered in random
// interleavings, with disconnections; every client must end with the
// server's text.
//   node --test web/editor/notesync.test.mjs   (needs npm ci in web/editor)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EditorState, Transaction, ChangeSet } from '@codemirror/state';
import * as upstream from '@codemirror/collab';
import * as ours from './collab.js';
import { NoteSync } from './notesync.js';
import { editsToChanges, changesToEdits, composeAll, textOf, cpLength, cpToUtf16 } from './convert.js';
import { peersField } from './presence.js';
import { applyEdits, rng, randomText } from './testutil.mjs';

const clone = (m) => JSON.parse(JSON.stringify(m));

class SimServer {
  constructor(text, { autoSync = true } = {}) {
    this.text = text;
    this.n = 0;
    this.texts = new Map([['v0', text]]);
    this.log = []; // updates, in order: {from, version, edits, by}
    this.autoSync = autoSync;
    this.sessions = [];
    this.seq = 0;
    this.virtual = new Map(); // ack versions (live sync off): v → {base, changes}
    this.uids = new Set(); // uids of the pushes applied (idempotency keys)
  }

  get version() { return `v${this.n}`; }

  connect() {
    const s = { id: `s${++this.seq}`, inbox: [], outbox: [], open: true, name: '', anchor: null, head: null };
    this.sessions.push(s);
    return s;
  }

  close(s) {
    s.open = false;
    this.sessions = this.sessions.filter((x) => x !== s);
    this.presence();
  }

  out(s, m) { if (s.open) s.outbox.push(clone(m)); }

  presence() {
    const peers = this.sessions.filter((x) => x.ready).map((x) => ({ session: x.id, name: x.name, color: '#1864ab', anchor: x.anchor, head: x.head }));
    for (const x of this.sessions) if (x.ready) this.out(x, { t: 'presence', peers });
  }

  // The edits from the text at linear version `since` to the current text, as one ChangeSet.
  changesSince(since) {
    const i = Number(since.slice(1));
    let doc = textOf(this.texts.get(since)), all = ChangeSet.empty(doc.length);
    for (const u of this.log.slice(i)) {
      const r = editsToChanges(u.edits, doc);
      all = all.compose(r.changes);
      doc = r.doc;
    }
    return all;
  }

  apply(edits, by) {
    const from = this.version;
    this.text = applyEdits(this.text, edits);
    this.n++;
    this.texts.set(this.version, this.text);
    const u = { t: 'update', from, version: this.version, edits, by, name: by };
    this.log.push(u);
    for (const s of this.sessions) {
      if (!s.ready) continue;
      if (this.autoSync) this.out(s, u);
      else if (s.id !== by) this.out(s, { t: 'changed', version: this.version, name: by });
    }
  }

  // Edits relative to the text at `base` (linear or an ack version) → current edits.
  rebase(edits, base) {
    let baseText, over;
    if (this.virtual.has(base)) {
      const v = this.virtual.get(base); // view = text(v.base) + v.changes: go back, then forward
      baseText = v.view;
      over = v.changes.invert(textOf(this.texts.get(v.base))).compose(this.changesSince(v.base));
    } else {
      baseText = this.texts.get(base);
      over = this.changesSince(base);
    }
    const mine = editsToChanges(edits, textOf(baseText)).changes;
    return { edits: changesToEdits(mine.map(over), textOf(this.texts.get(this.version) ?? this.text)), view: applyEdits(baseText, edits) };
  }

  handle(s, m) {
    if (!s.open) return;
    if (m.t === 'hello') {
      s.name = m.name;
      let edits = null;
      if (m.inflight && this.refusePending && !this.uids.has(m.inflight.uid)) {
        this.out(s, { t: 'error', code: 'no_space', message: 'Your last edit could not be merged' });
      } else if (m.inflight) { // the push lost with the last connection: at most once, then the whole text
        if (!this.uids.has(m.inflight.uid)) {
          this.uids.add(m.inflight.uid);
          this.apply(this.rebase(m.inflight.edits, m.inflight.base).edits, '');
        }
      } else if (m.since && this.texts.has(m.since) && m.pending && this.refusePending) {
        this.out(s, { t: 'error', code: 'no_space', message: 'Your offline edits could not be merged' });
      } else if (m.since && this.texts.has(m.since)) {
        if (m.pending && m.pending.length) this.apply(this.rebase(m.pending, m.since).edits, '');
        else edits = this.log.slice(Number(m.since.slice(1))).flatMap((u) => u.edits);
      } else if (m.since && m.pending) { // as the hub: an error, then the whole text
        this.out(s, { t: 'error', code: 'unknown_version', message: 'Your offline edits could not be merged' });
      }
      s.ready = true;
      const init = { t: 'init', session: s.id, color: '#d9480f', name: m.name, version: this.version, title: 'T', auto_sync: this.autoSync, can_edit: true,
        peers: this.sessions.filter((x) => x.ready && x !== s).map((x) => ({ session: x.id, name: x.name, color: '#1864ab', anchor: x.anchor, head: x.head })) };
      if (edits) init.edits = edits; else init.text = this.text;
      this.out(s, init);
      this.presence();
    } else if (m.t === 'push') {
      if (m.uid && this.uids.has(m.uid)) return this.out(s, { t: 'error', id: m.id, code: 'duplicate', message: 'Applied before.' });
      if (m.uid && (!this.autoSync || m.base === this.version)) this.uids.add(m.uid);
      if (this.autoSync) {
        if (m.base !== this.version) return this.out(s, { t: 'stale', id: m.id });
        this.apply(m.edits, s.id);
      } else {
        const prev = this.virtual.get(m.base); // the client's own view after an earlier ack, or null
        const linear = prev ? prev.base : m.base;
        const viewText = prev ? prev.view : this.texts.get(m.base);
        const prior = prev ? prev.changes : ChangeSet.empty(textOf(this.texts.get(linear)).length);
        const r = this.rebase(m.edits, m.base);
        this.apply(r.edits, s.id);
        const v = `a${++this.seq}`;
        this.virtual.set(v, { base: linear, view: r.view, changes: prior.compose(editsToChanges(m.edits, textOf(viewText)).changes) });
        this.out(s, { t: 'ack', id: m.id, version: v });
      }
    } else if (m.t === 'sync') {
      this.out(s, { t: 'init', session: s.id, color: '#d9480f', name: s.name, version: this.version, text: this.text, title: 'T', auto_sync: this.autoSync, can_edit: true, peers: [] });
    } else if (m.t === 'cursor') {
      s.anchor = m.anchor; s.head = m.head;
      for (const x of this.sessions) if (x !== s && x.ready) this.out(x, { t: 'cursor', session: s.id, anchor: m.anchor, head: m.head });
    }
  }
}

// A view without DOM: the state and dispatch, telling the client about each transaction.
class FakeView {
  constructor(state) { this.state = state; this.sync = null; }
  dispatch(...args) {
    const tr = args[0] instanceof Transaction ? args[0] : this.state.update(...args);
    this.state = tr.state;
    this.sync?.viewUpdated({ transactions: [tr] });
  }
}

class World {
  constructor(seed, text, opts = {}) {
    this.r = rng(seed);
    this.server = new SimServer(text, opts);
    this.clients = [];
    this.timers = [];
  }

  addClient(name, { connect = true, clientID } = {}) {
    const c = { name, conn: null, events: [] };
    c.sync = new NoteSync({
      text: this.server.text, version: this.server.version, name, clientID,
      send: (m) => { if (!c.conn) return false; c.conn.inbox.push(clone(m)); return true; },
      emit: (type, d) => c.events.push([type, d]),
      setTimer: (fn) => { const t = { fn }; this.timers.push(t); return t; },
      clearTimer: (t) => { t.fn = null; },
    });
    c.view = new FakeView(EditorState.create({ doc: this.server.text, extensions: [EditorState.lineSeparator.of('\n'), c.sync.extensions({ listener: false })] }));
    c.sync.attach(c.view);
    c.view.sync = c.sync;
    this.clients.push(c);
    if (connect) this.connect(c);
    return c;
  }

  connect(c) { c.conn = this.server.connect(); c.sync.connected(); }

  // Drops the connection; messages on their way are lost (some client→server ones get through first).
  disconnect(c) {
    if (!c.conn) return;
    while (c.conn.inbox.length && this.r() < 0.5) this.server.handle(c.conn, c.conn.inbox.shift());
    this.server.close(c.conn);
    c.conn = null;
    c.sync.disconnected();
  }

  // One random step: a message either way, or a timer. False when nothing is left.
  step() {
    const choices = [];
    for (const c of this.clients) {
      if (!c.conn) continue;
      if (c.conn.inbox.length) choices.push(() => this.server.handle(c.conn, c.conn.inbox.shift()));
      if (c.conn.outbox.length) choices.push(() => c.sync.receive(c.conn.outbox.shift()));
    }
    const t = this.timers.findIndex((x) => x.fn);
    if (t >= 0) choices.push(() => { const [timer] = this.timers.splice(t, 1); timer.fn(); });
    else this.timers.length = 0;
    if (!choices.length) return false;
    choices[Math.floor(this.r() * choices.length)]();
    for (const c of this.clients) checkInvariant(c);
    return true;
  }

  settle() {
    for (let i = 0; i < 200000; i++) if (!this.step()) return;
    throw new Error('did not settle');
  }
}

// Editor doc = confirmed shadow + unconfirmed local changes.
function checkInvariant(c) {
  const ups = c.sync.unconfirmed;
  const expect = composeAll(ups.map((u) => u.changes), c.sync.shadow.length).apply(c.sync.shadow);
  assert.equal(c.view.state.doc.toString(), expect.toString(), `${c.name}: doc != shadow + unconfirmed`);
}

function typeAtCursor(c, s) {
  const pos = c.view.state.selection.main.head;
  c.view.dispatch({ changes: { from: pos, insert: s }, selection: { anchor: pos + s.length } });
}

function randomEdit(w, c) {
  const doc = c.view.state.doc, len = cpLength(doc.toString());
  const p = Math.floor(w.r() * (len + 1));
  const d = w.r() < 0.3 ? Math.floor(w.r() * Math.min(3, len - p + 1)) : 0;
  const from = cpToUtf16(doc, p), to = cpToUtf16(doc, d, from);
  const insert = d && w.r() < 0.5 ? '' : randomText(w.r, 1 + Math.floor(w.r() * 3));
  c.view.dispatch({ changes: { from, to, insert }, selection: { anchor: from + insert.length } });
}

// At rest, everyone sees everyone else's selection where it really is.
function assertCarets(w) {
  for (const c of w.clients) {
    const seen = c.view.state.field(peersField);
    for (const d of w.clients) {
      if (d === c) continue;
      const p = seen.find((x) => x.session === d.sync.session);
      assert.ok(p, `${c.name} does not list ${d.name}`);
      const sel = d.view.state.selection.main;
      assert.deepEqual([p.anchor, p.head], [sel.anchor, sel.head], `${d.name}'s selection on ${c.name}'s screen`);
    }
  }
}

function assertConverged(w) {
  for (const c of w.clients) {
    assert.equal(c.view.state.doc.toString(), w.server.text, `${c.name} differs from the server`);
    assert.equal(c.sync.shadow.toString(), w.server.text);
    assert.equal(c.sync.unconfirmed.length, 0, `${c.name} has unconfirmed changes`);
    assert.equal(c.sync.version, w.server.version);
  }
}

test('the fork differs from @codemirror/collab only in the order at equal positions', () => {
  // A typed "a" (confirmed) then "b" (not yet); B's "x", rebased after "a", arrives at position 1.
  for (const [lib, want, head] of [[upstream, 'axb', 3], [ours, 'abx', 2]]) {
    let state = EditorState.create({ doc: '', extensions: [lib.collab({ clientID: 'A' })] });
    state = state.update({ changes: { from: 0, insert: 'a' }, selection: { anchor: 1 } }).state;
    state = lib.receiveUpdates(state, [{ changes: lib.sendableUpdates(state)[0].changes, clientID: 'A' }]).state;
    state = state.update({ changes: { from: 1, insert: 'b' }, selection: { anchor: 2 } }).state;
    state = lib.receiveUpdates(state, [{ changes: ChangeSet.of({ from: 1, insert: 'x' }, 1), clientID: 'B' }]).state;
    assert.equal(state.doc.toString(), want);
    assert.equal(state.selection.main.head, head); // A's cursor after "b"
    assert.equal(lib.getSyncedVersion(state), 2);
  }
});

test('two people typing at the same place: both sentences stay whole', () => {
  const A = 'The quick brown fox jumps. ', B = 'Lorem ipsum 😀 dolor sit. ';
  for (let seed = 1; seed <= 150; seed++) {
    const w = new World(seed, 'start||end');
    const a = w.addClient('Ann'), b = w.addClient('Bob');
    w.settle();
    for (const c of [a, b]) c.view.dispatch({ selection: { anchor: 6 } });
    const qa = Array.from(A), qb = Array.from(B);
    while (qa.length || qb.length) {
      const x = w.r();
      if (x < 0.25 && qa.length) typeAtCursor(a, qa.shift());
      else if (x < 0.5 && qb.length) typeAtCursor(b, qb.shift());
      else if (!w.step() && !(qa.length || qb.length)) break;
    }
    w.settle();
    assertConverged(w);
    const text = w.server.text;
    assert.ok(text.includes(A) && text.includes(B), `seed ${seed}: ${JSON.stringify(text)}`);
    assert.ok(text === `start|${A}${B}|end` || text === `start|${B}${A}|end`, `seed ${seed}: ${JSON.stringify(text)}`);
    // At rest, each one sees the other's caret where it really is.
    assert.equal(a.view.state.field(peersField)[0].head, b.view.state.selection.main.head, `seed ${seed}: Bob's caret on Ann's screen`);
    assert.equal(b.view.state.field(peersField)[0].head, a.view.state.selection.main.head, `seed ${seed}: Ann's caret on Bob's screen`);
  }
});

test('random concurrent edits by three people with reconnections converge', () => {
  for (let seed = 1; seed <= 60; seed++) {
    const w = new World(1000 + seed, 'Hello 😀 world\nsecond line');
    const cs = [w.addClient('A'), w.addClient('B'), w.addClient('C')];
    for (let i = 0; i < 400; i++) {
      const x = w.r();
      const c = cs[Math.floor(w.r() * cs.length)];
      if (x < 0.3) { if (c.sync.editable) randomEdit(w, c); }
      else if (x < 0.32) w.disconnect(c);
      else if (x < 0.36) { if (!c.conn) w.connect(c); }
      else w.step();
    }
    for (const c of cs) if (!c.conn) w.connect(c);
    w.settle();
    assertConverged(w);
    assertCarets(w);
  }
});

test('a push lost with the connection is confirmed, not applied twice', () => {
  for (const applied of [true, false]) {
    const w = new World(5, 'abc');
    const a = w.addClient('A'), b = w.addClient('B');
    w.settle();
    a.view.dispatch({ changes: { from: 3, insert: 'XYZ' } });
    // run the push timer: the push is on its way
    while (!a.conn.inbox.some((m) => m.t === 'push')) w.step();
    if (applied) w.server.handle(a.conn, a.conn.inbox.shift()); // the server applies it, the answer is lost
    a.conn.inbox.length = 0;
    w.server.close(a.conn);
    a.conn = null;
    a.sync.disconnected();
    a.view.dispatch({ changes: { from: 0, insert: '>' } }); // typed while offline
    w.settle();
    w.connect(a);
    w.settle();
    assertConverged(w);
    assert.equal(w.server.text, '>abcXYZ');
    assert.equal(b.view.state.doc.toString(), '>abcXYZ');
  }
});

test('a push in flight when the connection drops, while another person edits, lands exactly once', () => {
  // Every insert is one distinct character: the final text must hold each exactly once.
  let fails = 0;
  for (let seed = 1; seed <= 80; seed++) {
    const w = new World(7000 + seed, '.');
    const a = w.addClient('A'), b = w.addClient('B');
    w.settle();
    let next = 0x4e00;
    const typed = [];
    const insert = (c) => {
      const ch = String.fromCodePoint(next++);
      typed.push(ch);
      const doc = c.view.state.doc.toString();
      const p = cpToUtf16(c.view.state.doc, Math.floor(w.r() * (cpLength(doc) + 1)));
      c.view.dispatch({ changes: { from: p, insert: ch } });
    };
    for (let round = 0; round < 6; round++) {
      insert(a);
      if (w.r() < 0.5) insert(a);
      // run until A's push is on its way (maybe already applied, maybe answered)
      for (let i = 0; i < 20 && !a.sync.inflight; i++) w.step();
      const steps = Math.floor(w.r() * 4);
      for (let i = 0; i < steps; i++) w.step();
      w.disconnect(a); // some of A's messages may reach the server; all answers are lost
      insert(b);
      if (w.r() < 0.5) insert(a); // typed while offline
      for (let i = 0; i < 10; i++) w.step();
      if (w.r() < 0.3) { w.connect(a); w.disconnect(a); } // a reconnection that drops again
      w.connect(a);
      w.settle();
    }
    w.settle();
    assertConverged(w);
    for (const ch of typed) {
      const n = Array.from(w.server.text).filter((x) => x === ch).length;
      if (n !== 1) fails++;
      assert.equal(n, 1, `seed ${seed}: ${ch} appears ${n} times in ${JSON.stringify(w.server.text)}`);
    }
  }
  assert.equal(fails, 0);
});

test('hello carries the lost push as `inflight` with its uid, and no `pending`', () => {
  const w = new World(11, 'abc');
  const a = w.addClient('A'), b = w.addClient('B');
  w.settle();
  a.view.dispatch({ changes: { from: 3, insert: 'XYZ' } });
  while (!a.conn.inbox.some((m) => m.t === 'push')) w.step();
  const push = a.conn.inbox.find((m) => m.t === 'push');
  assert.equal(typeof push.uid, 'string');
  w.server.handle(a.conn, a.conn.inbox.shift()); // applied; the answer is lost
  a.conn.inbox.length = 0;
  w.server.close(a.conn);
  a.conn = null;
  a.sync.disconnected();
  a.view.dispatch({ changes: { from: 0, insert: '>' } });
  b.view.dispatch({ changes: { from: 0, insert: 'B:' } });
  w.settle();
  w.connect(a);
  const hello = a.conn.inbox[0];
  assert.deepEqual(hello.inflight, { uid: push.uid, base: push.base, edits: push.edits });
  assert.equal(hello.pending, undefined);
  w.settle();
  assertConverged(w);
  assert.equal(w.server.text, '>B:abcXYZ');
});

test('offline edits go as `inflight` in hello and merge with what others did meanwhile', () => {
  const w = new World(9, 'one two three');
  const a = w.addClient('A'), b = w.addClient('B');
  w.settle();
  w.disconnect(a);
  a.view.dispatch({ changes: { from: 0, insert: 'ZERO ' } });
  b.view.dispatch({ changes: { from: 13, insert: ' four' } });
  w.settle();
  w.connect(a);
  const hello = a.conn.inbox[0];
  assert.equal(hello.t, 'hello');
  assert.deepEqual(hello.inflight.edits, [[0, 0, 'ZERO ']]);
  assert.equal(hello.pending, undefined);
  w.settle();
  assertConverged(w);
  assert.equal(w.server.text, 'ZERO one two three four');
});

test('offline edits the server could not merge in hello are kept and pushed again', () => {
  const w = new World(10, 'one two three');
  const a = w.addClient('A'), b = w.addClient('B');
  w.settle();
  w.disconnect(a);
  a.view.dispatch({ changes: { from: 0, insert: 'ZERO ' } });
  b.view.dispatch({ changes: { from: 13, insert: ' four' } });
  w.settle();
  w.server.refusePending = true;
  w.connect(a);
  w.settle();
  assert.ok(a.events.some(([t, d]) => t === 'error' && /could not be merged/.test(d.message)));
  assertConverged(w);
  assert.equal(w.server.text, 'ZERO one two three four');
});

test('an error for a push drops the refused change and reloads the text', () => {
  const w = new World(3, 'keep');
  const a = w.addClient('A');
  w.settle();
  const handle = w.server.handle.bind(w.server);
  w.server.handle = (s, m) => (m.t === 'push' ? w.server.out(s, { t: 'error', id: m.id, code: 'too_large', message: 'Too large.' }) : handle(s, m));
  a.view.dispatch({ changes: { from: 4, insert: ' huge' } });
  w.settle();
  assert.equal(a.view.state.doc.toString(), 'keep');
  assert.ok(a.events.some(([t, d]) => t === 'error' && d.message === 'Too large.'));
  assert.equal(a.sync.editable, true);
  assertConverged(w);
});

test('live sync off: ack confirms own pushes, `changed` then loadChanges brings the others\' text', () => {
  const w = new World(4, 'base', { autoSync: false });
  const a = w.addClient('A'), b = w.addClient('B');
  w.settle();
  assert.equal(a.sync.autoSync, false);
  a.view.dispatch({ changes: { from: 0, insert: 'A:' } });
  w.settle();
  assert.equal(w.server.text, 'A:base');
  assert.equal(a.sync.unconfirmed.length, 0);
  assert.ok(b.events.some(([t]) => t === 'changed'));
  assert.equal(b.view.state.doc.toString(), 'base'); // not shown until asked
  b.view.dispatch({ changes: { from: 4, insert: ':B' }, selection: { anchor: 6 } });
  b.sync.loadChanges();
  assert.equal(b.sync.editable, false); // typing blocked while syncing
  w.settle();
  assert.equal(w.server.text, 'A:base:B');
  assert.equal(b.view.state.doc.toString(), 'A:base:B');
  assert.equal(b.view.state.selection.main.head, 8); // the cursor stayed after ":B"
  assert.equal(b.sync.editable, true);
  a.sync.loadChanges();
  w.settle();
  assert.equal(a.view.state.doc.toString(), 'A:base:B');
});

test('presence: peers and their cursors, in UTF-16 positions of this editor', () => {
  const w = new World(2, '😀😀 text');
  const a = w.addClient('Ann'), b = w.addClient('Bob');
  w.settle();
  b.view.dispatch({ selection: { anchor: 2, head: 4 } }); // after the first emoji to after the second
  w.settle();
  const peers = a.view.state.field(peersField);
  assert.equal(peers.length, 1);
  assert.equal(peers[0].name, 'Bob');
  assert.deepEqual([peers[0].anchor, peers[0].head], [2, 4]);
  // mapped through a local change before it
  a.view.dispatch({ changes: { from: 0, insert: 'ab' } });
  assert.deepEqual([a.view.state.field(peersField)[0].anchor, a.view.state.field(peersField)[0].head], [4, 6]);
  w.settle();
  assertConverged(w);
});
