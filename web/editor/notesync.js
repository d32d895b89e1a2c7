// The notepad's WebSocket protocol (docs/notes-api.md) on the editor side,
// without the socket itself: the page opens and reopens the WebSocket, calls
// connected() / disconnected() and receive(message), and gives `send`.
//
// State kept here:
//   shadow, version — the last confirmed text (a Text) and its server version.
//   collab (./collab.js) — the local changes not confirmed yet, rebased over
//     every remote change. Invariant: editor doc = shadow + unconfirmed.
//   inflight — the one push on its way: {id, count, uid, base, edits} (count =
//     how many of the unconfirmed updates it carries; uid its idempotency key).
//   lost, uncertain — a push whose answer was lost (connection dropped, or a
//     resync abandoned it) and its count: it may or may not have been applied.
//
// Pushing: compose all unconfirmed updates, turn them into code-point edits
// against the shadow, push with base = version. Only one push at a time.
// Updates from the server (code points, relative to the previous confirmed
// state) become a ChangeSet against the shadow; an update whose `by` is this
// session confirms the push in flight (its updates are passed to
// receiveUpdates as our own, so nothing is applied twice); others are applied
// through receiveUpdates, which rebases the unconfirmed changes and maps the
// selection. `stale` → push again (the updates we missed came before it).
// `error` for a push → `sync`, dropping the local changes. Without live sync,
// `ack` confirms a push and `changed` tells that others changed the note.
// Reconnecting: hello with since = version; `init` brings either the edits
// since then or the whole text, which is applied as a diff against what the
// editor shows so the selection and scroll position stay where they were.
// Unconfirmed changes go with hello as `inflight` ({uid, base, edits}, never
// `pending`): the push whose answer was lost (same uid, so the server applies
// it at most once), or else all the changes made offline as a new push (its
// own uid, kept until init in case this connection drops too). Init then
// brings the whole text, which holds that push exactly once (its updates count
// as confirmed); later changes are rebased onto it and pushed normally.

import { Transaction } from '@codemirror/state';
import { EditorView } from '@codemirror/view';
import { collab, receiveUpdates, sendableUpdates, getSyncedVersion } from './collab.js';
import { changesToEdits, editsToChanges, composeAll, diffTexts, utf16ToCp, cpToUtf16, textOf } from './convert.js';
import { presence, setPeers, movePeer, safeColor } from './presence.js';

const CURSOR_MS = 50;
const SERVER = '~server';

export class NoteSync {
  // text, version: the note as loaded over REST (version may be null).
  // send(message) → true when sent. emit(type, detail): 'init', 'peers',
  // 'meta', 'changed', 'error', 'editable', 'pending' (unconfirmed count),
  // 'updated' (a change was confirmed: {name, own}).
  // setTimer/clearTimer: setTimeout/clearTimeout unless given (tests).
  constructor({ text = '', version = null, name = 'Guest', send, emit, clientID, setTimer, clearTimer } = {}) {
    this.setTimer = setTimer || ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = clearTimer || ((t) => clearTimeout(t));
    this.shadow = textOf(text);
    this.version = version;
    this.name = name;
    this.send = send || (() => false);
    this.emit = emit || (() => {});
    this.clientID = clientID || `c${Math.floor(Math.random() * 1e9).toString(36)}`;
    this.view = null;
    this.session = null;
    this.color = null;
    this.ready = false;          // init received on the current connection
    this.initialized = false;    // init received once
    this.autoSync = true;
    this.canEdit = false;
    this.blocked = false;        // set by the page (note deleted)
    this.inflight = null;
    this.pushSeq = 0;
    this.accounted = 0;          // unconfirmed updates the next init already contains
    this.uncertain = 0;          // updates of a push whose answer was lost
    this.lost = null;            // that push: {uid, base, edits, count}
    this.syncing = false;        // a `sync` is on its way: typing is blocked
    this.syncWanted = false;     // the person asked to load changes (live sync off)
    this.peers = [];             // others: {session, name, color, anchor, head}
    this.lastEditable = null;
    this.pushTimer = null;
    this.cursorTimer = null;
    this.cursorDirty = false;
    this.lastCursor = null;
  }

  // The editor extensions this needs; `listener: false` for a state without a view (tests).
  extensions({ listener = true } = {}) {
    const ext = [collab({ clientID: this.clientID }), presence()];
    if (listener) ext.push(EditorView.updateListener.of((u) => this.viewUpdated(u)));
    return ext;
  }

  attach(view) { this.view = view; }

  get state() { return this.view.state; }
  get unconfirmed() { return sendableUpdates(this.view.state); }
  get confirmedUpdates() { return getSyncedVersion(this.view.state); }
  get editable() { return this.initialized && this.canEdit && !this.syncing && !this.syncWanted && !this.blocked; }

  refreshEditable() {
    const e = this.editable;
    if (e !== this.lastEditable) { this.lastEditable = e; this.emit('editable', e); }
  }

  setBlocked(b) { this.blocked = b; this.refreshEditable(); if (!b) this.schedulePush(); }

  // Called for every view update (EditorView.updateListener).
  viewUpdated(u) {
    let local = false, moved = false;
    for (const tr of u.transactions) {
      if (tr.annotation(Transaction.remote)) continue;
      if (tr.docChanged) local = true;
      if (tr.docChanged || tr.selection) moved = true;
    }
    if (local) { this.emit('pending', this.unconfirmed.length); this.schedulePush(); }
    if (moved) this.scheduleCursor();
  }

  // ---- connection ----

  connected() {
    const msg = { t: 'hello', name: this.name };
    const ups = this.unconfirmed;
    this.accounted = 0;
    if (this.version) {
      msg.since = this.version;
      // Changes made offline become a push of this hello, with a uid: if
      // this connection drops before init too, the next hello sends the same.
      if (ups.length && !this.uncertain) {
        const edits = changesToEdits(composeAll(ups.map((u) => u.changes), this.shadow.length), this.shadow);
        this.lost = { uid: this.newUid(), base: this.version, edits, count: ups.length };
        this.uncertain = ups.length;
      }
      // A push whose answer was lost may have been applied: send it again
      // with its uid (the server applies it at most once), alone; init then
      // brings the whole text with it, and the later changes are pushed after.
      if (this.uncertain && this.lost && this.lost.base && this.uncertain <= ups.length) {
        msg.inflight = { uid: this.lost.uid, base: this.lost.base, edits: this.lost.edits };
        this.accounted = this.uncertain;
      }
    }
    this.send(msg);
  }

  disconnected() {
    this.abandonInflight();
    this.ready = false;
    this.syncing = false;
    this.session = null;
    this.setPeerList([]);
    this.refreshEditable();
  }

  // The push on its way will not be answered here: it becomes uncertain.
  abandonInflight() {
    if (!this.inflight) return;
    if (this.inflight.count >= this.uncertain) {
      this.uncertain = this.inflight.count;
      this.lost = this.inflight;
    }
    this.inflight = null;
  }

  settled() { this.uncertain = 0; this.lost = null; }

  newUid() {
    const c = globalThis.crypto;
    if (c && typeof c.randomUUID === 'function') return c.randomUUID();
    const b = new Uint8Array(16);
    if (c && typeof c.getRandomValues === 'function') c.getRandomValues(b); // also outside secure contexts
    else for (let i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
    return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  }

  destroy() {
    if (this.pushTimer != null) this.clearTimer(this.pushTimer);
    if (this.cursorTimer != null) this.clearTimer(this.cursorTimer);
    this.pushTimer = this.cursorTimer = null;
    this.send = () => false;
  }

  // ---- messages from the server ----

  receive(m) {
    if (!m || typeof m !== 'object') return;
    switch (m.t) {
      case 'init': return this.onInit(m);
      case 'update': return this.ready && this.onUpdate(m);
      case 'stale': return this.ready && this.onStale(m);
      case 'ack': return this.ready && this.onAck(m);
      case 'changed': return this.ready && this.emit('changed', { name: m.name || '', version: m.version });
      case 'presence': return this.ready && this.onPresence(m);
      case 'cursor': return this.ready && this.onCursor(m);
      case 'meta': return this.emit('meta', m);
      case 'error': return this.onError(m);
      default: return undefined;
    }
  }

  onInit(m) {
    this.session = String(m.session || '');
    this.color = safeColor(m.color);
    if (m.name) this.name = m.name;
    this.autoSync = m.auto_sync !== false;
    this.canEdit = !!m.can_edit;
    const ups = this.unconfirmed;
    let k = Math.min(this.accounted, ups.length);
    this.accounted = 0;
    let target, remote = null;
    try {
      if (typeof m.text === 'string') {
        target = textOf(m.text);
      } else {
        const r = editsToChanges(Array.isArray(m.edits) ? m.edits : [], this.shadow);
        target = r.doc;
        if (k === 0) remote = r.changes;
      }
    } catch (e) {
      this.emit('error', { code: 'bad_update', message: `The server sent changes that do not fit this note (${e.message}); loading it again.` });
      this.ready = true;
      return this.requestSync(false);
    }
    if (this.uncertain && k === 0) {
      // Was the push lost with the connection applied? If the server's text is
      // exactly ours with it, yes: confirm it instead of pushing it again.
      const c = Math.min(this.uncertain, ups.length);
      let mine = this.shadow;
      for (let i = 0; i < c; i++) mine = ups[i].changes.apply(mine);
      if (c && !mine.eq(this.shadow) && mine.eq(target)) { k = c; remote = null; }
    }
    this.settled();
    const own = ups.slice(0, k);
    if (!remote) {
      let base = this.shadow;
      for (const u of own) base = u.changes.apply(base);
      remote = diffTexts(base, target);
    }
    const updates = own.map((u) => ({ changes: u.changes, clientID: this.clientID }));
    updates.push({ changes: remote, clientID: SERVER });
    this.shadow = target;
    this.version = m.version || null;
    this.view.dispatch(receiveUpdates(this.view.state, updates));
    this.ready = true;
    this.initialized = true;
    this.syncing = false;
    this.syncWanted = false;
    this.setPeerList(Array.isArray(m.peers) ? m.peers : []);
    this.emit('init', { session: this.session, color: this.color, name: this.name, autoSync: this.autoSync, canEdit: this.canEdit, title: m.title });
    this.emit('pending', this.unconfirmed.length);
    this.refreshEditable();
    this.schedulePush();
    this.scheduleCursor();
  }

  onUpdate(m) {
    // Out of order (or not fitting): the whole text again. While a sync is on
    // its way, its init brings everything anyway.
    if (m.from !== this.version) return this.syncing ? undefined : this.requestSync(false);
    let r;
    try { r = editsToChanges(Array.isArray(m.edits) ? m.edits : [], this.shadow); } catch { return this.syncing ? undefined : this.requestSync(false); }
    let updates;
    const own = !!this.session && m.by === this.session;
    if (own) {
      // Confirms the push in flight (or, while a sync is on its way, the push
      // it made uncertain).
      const count = this.inflight ? this.inflight.count : this.uncertain;
      if (!count) return this.syncing ? undefined : this.requestSync(false);
      const ups = this.unconfirmed.slice(0, count);
      const mine = composeAll(ups.map((u) => u.changes), this.shadow.length);
      // The server applied what we pushed (base was current); check, cheaply first.
      if (JSON.stringify(mine.toJSON()) !== JSON.stringify(r.changes.toJSON()) && !mine.apply(this.shadow).eq(r.doc)) {
        return this.syncing ? undefined : this.requestSync(false);
      }
      this.inflight = null;
      this.settled();
      updates = ups.map((u) => ({ changes: u.changes, clientID: this.clientID }));
    } else {
      updates = [{ changes: r.changes, clientID: `~${m.by || 'server'}` }];
    }
    this.shadow = r.doc;
    this.version = m.version;
    this.view.dispatch(receiveUpdates(this.view.state, updates));
    this.emit('pending', this.unconfirmed.length);
    this.emit('updated', { name: own ? this.name : m.name || '', own });
    this.schedulePush();
    if (own) this.cursorAtRest();
    else this.cursorIfMoved();
  }

  onStale(m) {
    if (this.inflight && this.inflight.id === m.id) {
      this.inflight = null;
      this.schedulePush();
    }
  }

  onAck(m) {
    if (!this.inflight || this.inflight.id !== m.id) return;
    const ups = this.unconfirmed.slice(0, this.inflight.count);
    this.shadow = composeAll(ups.map((u) => u.changes), this.shadow.length).apply(this.shadow);
    this.version = m.version;
    this.inflight = null;
    this.view.dispatch(receiveUpdates(this.view.state, ups.map((u) => ({ changes: u.changes, clientID: this.clientID }))));
    this.emit('pending', this.unconfirmed.length);
    this.emit('updated', { name: this.name, own: true });
    if (this.syncWanted) this.maybeSync(); else this.schedulePush();
    this.cursorAtRest();
  }

  onPresence(m) {
    this.setPeerList(Array.isArray(m.peers) ? m.peers : []);
  }

  onCursor(m) {
    if (!m.session || m.session === this.session) return;
    const p = this.peers.find((x) => x.session === m.session);
    if (!p) return;
    const map = this.peerMapper();
    p.anchor = map(m.anchor);
    p.head = map(m.head);
    this.view.dispatch({ effects: movePeer.of({ session: p.session, anchor: p.anchor, head: p.head }) });
  }

  onError(m) {
    this.emit('error', m);
    if (m.id != null) {
      if (this.inflight && this.inflight.id === m.id) {
        this.inflight = null;
        this.requestSync(true);
      }
      return;
    }
    // Before init, an error is about hello's `pending`: the server could not
    // merge it and sends the whole text next. Keep the changes (they are then
    // rebased onto that text here and pushed again), unless we may not edit.
    // The same for hello's `inflight`: refused, so not applied; push it again.
    if (!this.ready && this.accounted && m.code !== 'unauthorized') {
      this.accounted = 0;
      this.settled();
    }
  }

  // ---- sync (the whole text again) ----

  // drop: forget the unconfirmed changes (they were refused).
  requestSync(drop) {
    if (!this.ready) return;
    this.abandonInflight();
    if (drop) { this.accounted = this.unconfirmed.length; this.settled(); } else if (!this.syncing) this.accounted = 0;
    if (this.syncing) return;
    this.syncing = true;
    this.refreshEditable();
    this.send({ t: 'sync' });
  }

  // Live sync off: load the others' changes once our own are acknowledged.
  loadChanges() {
    this.syncWanted = true;
    this.refreshEditable();
    this.maybeSync();
  }

  maybeSync() {
    if (!this.syncWanted || !this.ready) return;
    if (this.inflight || this.unconfirmed.length) { this.schedulePush(); return; }
    this.requestSync(false);
  }

  // ---- pushing ----

  schedulePush() {
    if (this.pushTimer == null) this.pushTimer = this.setTimer(() => { this.pushTimer = null; this.push(); }, 0);
  }

  push() {
    if (!this.ready || this.inflight || this.syncing || !this.canEdit || this.blocked) return;
    const ups = this.unconfirmed;
    if (!ups.length) return;
    const edits = changesToEdits(composeAll(ups.map((u) => u.changes), this.shadow.length), this.shadow);
    if (!edits.length) { // changes that cancel out: nothing to send
      this.view.dispatch(receiveUpdates(this.view.state, ups.map((u) => ({ changes: u.changes, clientID: this.clientID }))));
      this.emit('pending', 0);
      if (this.syncWanted) this.maybeSync();
      return;
    }
    const id = ++this.pushSeq;
    const uid = this.newUid(); // a new one per push: a stale push was not applied
    this.inflight = { id, count: ups.length, uid, base: this.version, edits };
    if (!this.send({ t: 'push', id, uid, base: this.version, edits })) this.inflight = null;
  }

  // ---- presence ----

  // Others' positions (code points) → offsets in this editor. They are read
  // against the confirmed text (the others send theirs again once their own
  // changes are confirmed, see cursorAtRest), then mapped through our
  // unconfirmed changes.
  peerMapper() {
    const shadow = this.shadow, ups = this.view ? this.unconfirmed : [];
    const local = ups.length ? composeAll(ups.map((u) => u.changes), shadow.length) : null;
    return (cp) => {
      if (!Number.isInteger(cp) || cp < 0) return null;
      let pos;
      try { pos = cpToUtf16(shadow, cp); } catch { pos = shadow.length; }
      return local ? local.mapPos(pos, -1) : pos;
    };
  }

  setPeerList(list) {
    const map = this.peerMapper();
    this.peers = list.filter((p) => p && p.session && p.session !== this.session).map((p) => ({
      session: String(p.session), name: String(p.name || 'Someone'), color: safeColor(p.color),
      anchor: map(p.anchor), head: map(p.head),
    }));
    if (this.view) this.view.dispatch({ effects: setPeers.of(this.peers) });
    this.emit('peers', this.peers);
  }

  scheduleCursor() {
    if (this.cursorTimer != null) { this.cursorDirty = true; return; }
    this.sendCursor();
    this.cursorTimer = this.setTimer(() => {
      this.cursorTimer = null;
      if (this.cursorDirty) { this.cursorDirty = false; this.scheduleCursor(); }
    }, CURSOR_MS);
  }

  // Our own changes are all confirmed: our text is the confirmed text, which
  // the others have too; send the selection again so they place it exactly.
  cursorAtRest() {
    if (this.ready && !this.inflight && !this.unconfirmed.length) this.scheduleCursor();
  }

  // Someone else's change moved our selection in code points: the others
  // read our last message against their newer text, so send it again.
  cursorIfMoved() {
    if (!this.ready || !this.lastCursor) return;
    const { anchor, head } = this.cursorNow();
    if (anchor !== this.lastCursor.anchor || head !== this.lastCursor.head) this.scheduleCursor();
  }

  cursorNow() {
    const { doc, selection } = this.view.state;
    return { anchor: utf16ToCp(doc, selection.main.anchor), head: utf16ToCp(doc, selection.main.head) };
  }

  sendCursor() {
    if (!this.ready) return;
    this.lastCursor = this.cursorNow();
    this.send({ t: 'cursor', ...this.lastCursor });
  }
}
