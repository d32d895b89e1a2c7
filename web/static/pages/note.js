// One note (`/notes/{id}`): the shared editor (CodeMirror, /static/vendor/editor.js)
// kept in sync over the note's WebSocket, who is here and where their cursors
// are, rename, delete / restore, history with restore, export. Protocol:
// docs/notes-api.md; the sync algorithm: web/editor/notesync.js.

import { api, session } from '../api.js';
import { h, formatBytes, timeEl, pageTitle, notice } from '../util.js';
import { notePath, noteTitle, setNotepadEnabled, DISABLED_TEXT, presenceName, nameAsked, saveName } from './notes.js';

const STATUS = {
  connecting: 'connecting…', connected: 'connected', reconnecting: 'reconnecting…', offline: 'offline, your edits are kept',
};

let editorModule = null;
const loadEditor = () => (editorModule ||= import('../vendor/editor.js').catch((e) => { editorModule = null; throw e; }));

// UTF-8 bytes of a CodeMirror Text.
function bytes(text) {
  const enc = new TextEncoder();
  let n = 0;
  for (const it = text.iter(); !it.next().done;) n += enc.encode(it.value).length;
  return n;
}

const dot = (color) => { const d = h('span.peer-dot', { 'aria-hidden': 'true' }); d.style.backgroundColor = color || '#6b7280'; return d; };

export function render(main, [id]) {
  const path = notePath(id);
  let note = null, alive = true, deleted = false, canEdit = false, autoSync = true;
  let cm = null, sync = null, editor = null;
  let ws = null, attempts = 0, retryTimer = null, pollTimer = null, metaTimer = null, conn = 'connecting', pending = 0;
  let me = { name: presenceName(), color: null }, peers = [];

  const heading = h('h1.note-title', 'Loading…');
  const renameBtn = h('button.btn.small.secondary', { type: 'button', hidden: true, on: { click: rename } }, 'Rename');
  const titleRow = h('div.note-title-row', heading, renameBtn);
  const connEl = h('span.conn', { role: 'status', 'data-state': 'connecting' }, STATUS.connecting);
  const metaEl = h('p.meta.note-meta');
  const banners = h('div.note-banners');
  const host = h('div.note-editor');
  const peopleList = h('ul.people', { 'aria-label': 'People here' });
  const peopleHead = h('h2#people-head', 'Here now');
  const nameSlot = h('div.name-slot');
  const side = h('aside.note-side', { 'aria-labelledby': 'people-head' }, peopleHead, peopleList, nameSlot);
  const historyBtn = h('button.btn.small.secondary', { type: 'button', 'aria-expanded': 'false', 'aria-controls': 'note-history', on: { click: toggleHistory } }, 'History');
  const deleteBtn = h('button.btn.small.danger', { type: 'button', hidden: true, on: { click: askDelete } }, 'Delete');
  const exportTxt = h('a.btn.small.secondary', { href: `${path}/export?format=txt`, download: '' }, 'Export .txt');
  const exportMd = h('a.btn.small.secondary', { href: `${path}/export?format=md`, download: '' }, 'Export .md');
  const actions = h('div.actions.note-actions', historyBtn, exportTxt, exportMd, deleteBtn);
  const confirmSlot = h('div');
  const historyPanel = h('section#note-history.note-history', { hidden: true, 'aria-labelledby': 'history-head' });
  const body = h('div.note-body', { hidden: true },
    h('div.note-bar', connEl, metaEl), banners,
    h('div.note-layout', host, side), actions, confirmSlot, historyPanel);
  const problem = h('div');
  main.append(h('section.page.note-page', h('p.crumbs', h('a', { href: '/notes' }, 'Notes')), titleRow, problem, body));
  pageTitle('Note');

  // ---- header ----

  function drawTitle() {
    heading.textContent = noteTitle(note);
    pageTitle(noteTitle(note));
    const mayWrite = !!session.signedIn && !deleted;
    renameBtn.hidden = !mayWrite;
    deleteBtn.hidden = !mayWrite;
  }

  function drawMeta() {
    if (!note) return;
    metaEl.replaceChildren(
      note.updated_at ? h('span', 'Edited ', timeEl(note.updated_at), note.updated_by ? ` by ${note.updated_by}` : '') : '',
      h('span', formatBytes(note.size)));
  }

  function setConn(state) {
    conn = state;
    connEl.dataset.state = state;
    connEl.textContent = state === 'offline' && !(canEdit && !deleted) ? 'offline' : STATUS[state];
  }

  function rename() {
    const input = h('input#rename-title', { type: 'text', maxLength: 200, value: noteTitle(note) });
    const err = h('div');
    const save = h('button.btn.small', { type: 'submit' }, 'Save');
    const stop = () => { titleRow.replaceChildren(heading, renameBtn); drawTitle(); renameBtn.focus(); };
    const form = h('form.rename', { on: { submit: async (e) => {
      e.preventDefault();
      err.replaceChildren();
      const t = input.value.trim();
      if (!t) { err.append(notice('error', 'The title cannot be empty.')); return input.focus(); }
      save.disabled = true;
      try {
        note = { ...note, ...(await api(path, { method: 'PATCH', body: { title: t, author: me.name } })) };
        stop();
      } catch (ex) {
        err.append(notice('error', ex.message));
        save.disabled = false;
      }
    }, keydown: (e) => { if (e.key === 'Escape') stop(); } } },
      h('label.visually-hidden', { for: 'rename-title' }, 'Title'), input, save,
      h('button.btn.small.secondary', { type: 'button', on: { click: stop } }, 'Cancel'), err);
    titleRow.replaceChildren(form);
    input.select();
  }

  // ---- banners ----

  function banner(key, kind, ...content) {
    banners.querySelector(`[data-key="${key}"]`)?.remove();
    if (!content.length) return null;
    const el = notice(kind, ...content);
    el.dataset.key = key;
    banners.append(el);
    return el;
  }

  function setDeleted(on) {
    deleted = on;
    drawTitle();
    sync?.setBlocked(on);
    setConn(conn);
    if (!on) {
      clearTimeout(pollTimer);
      if (sync && !ws && !retryTimer) connect();
      return banner('deleted');
    }
    const restore = h('button.btn.small', { type: 'button', on: { click: async () => {
      restore.disabled = true;
      try {
        note = { ...note, ...(await api(`${path}/restore`, { method: 'POST' })) };
        setDeleted(false);
        banner('done', 'ok', 'The note was restored.');
      } catch (ex) {
        restore.disabled = false;
        banner('deleted-error', 'error', ex.message);
      }
    } } }, 'Restore');
    banner('deleted', 'info', 'This note was deleted. ', session.signedIn ? restore : 'Someone who is signed in can restore it.');
  }

  function askDelete() {
    const err = h('div');
    const yes = h('button.btn.danger', { type: 'button', on: { click: async () => {
      yes.disabled = true;
      try {
        await api(path, { method: 'DELETE' });
        confirmSlot.replaceChildren();
        setDeleted(true);
      } catch (ex) {
        err.replaceChildren(notice('error', ex.message));
        yes.disabled = false;
      }
    } } }, 'Delete for everyone');
    const no = h('button.btn.secondary', { type: 'button', on: { click: () => { confirmSlot.replaceChildren(); deleteBtn.focus(); } } }, 'Keep it');
    confirmSlot.replaceChildren(h('div.confirm', { role: 'alertdialog', 'aria-labelledby': 'del-q' },
      h('p#del-q', 'Delete this note for everyone? It can be restored for a while afterwards.'), err, h('div.actions', yes, no)));
    no.focus();
  }

  // ---- people ----

  function drawPeople() {
    const items = [h('li.peer.me', dot(me.color), h('span.peer-name', me.name), h('span.muted', ' (you)'))];
    for (const p of peers) items.push(h('li.peer', { 'data-session': p.session }, dot(p.color), h('span.peer-name', p.name)));
    peopleList.replaceChildren(...items);
    peopleHead.textContent = `Here now (${items.length})`;
  }

  function drawName(ask) {
    const input = h('input#presence-name', { type: 'text', maxLength: 60, value: me.name, autocomplete: 'nickname' });
    const form = h('form.name-form', { on: { submit: (e) => {
      e.preventDefault();
      const n = input.value.trim().slice(0, 60) || me.name;
      saveName(n);
      const changed = n !== me.name;
      me.name = n;
      banner('ask-name');
      drawName(false);
      if (changed) { drawPeople(); if (sync) { sync.name = n; reconnectNow(); } }
    } } },
      h('label', { for: ask ? 'ask-name' : 'presence-name' }, ask ? 'What name should the others here see?' : 'Your name here'),
      h('div.inline', input, h('button.btn.small', { type: 'submit' }, ask ? 'OK' : 'Save name')));
    if (ask) {
      input.id = 'ask-name';
      nameSlot.replaceChildren(h('button.link', { type: 'button', on: { click: () => drawName(false) } }, 'Change your name'));
      banner('ask-name', 'info', form);
    } else {
      nameSlot.replaceChildren(form);
    }
  }

  // ---- history ----

  async function toggleHistory() {
    const open = historyPanel.hidden;
    historyPanel.hidden = !open;
    historyBtn.setAttribute('aria-expanded', String(open));
    if (open) loadHistory();
  }

  async function loadHistory(message) {
    const list = h('ol.revisions');
    const preview = h('div.revision-preview');
    historyPanel.replaceChildren(h('h2#history-head', 'History'), message || '', h('p.muted', 'Loading…'));
    try {
      const res = await api(`${path}/history`);
      if (!alive) return;
      const revs = res?.revisions || [];
      for (const r of revs) {
        list.append(h('li', h('button.revision', { type: 'button', 'data-version': r.version, on: { click: () => show(r) } },
          timeEl(r.at), h('span', r.author || 'someone'), h('span.muted', formatBytes(r.size)))));
      }
      historyPanel.replaceChildren(h('h2#history-head', 'History'), message || '',
        revs.length ? list : h('p.muted', 'No earlier versions yet.'), preview);
    } catch (ex) {
      historyPanel.replaceChildren(h('h2#history-head', 'History'), notice('error', ex.message));
    }

    async function show(r) {
      for (const b of list.querySelectorAll('.revision')) b.toggleAttribute('aria-current', b.dataset.version === r.version);
      preview.replaceChildren(h('p.muted', 'Loading this version…'));
      try {
        const res = await api(`${path}/text?version=${encodeURIComponent(r.version)}`);
        const err = h('div');
        const restore = h('button.btn.small', { type: 'button', on: { click: async () => {
          restore.disabled = true;
          try {
            await api(`${path}/revert`, { method: 'POST', body: { version: r.version, author: me.name } });
            loadHistory(notice('ok', 'Restored the version of ', timeEl(r.at), '.'));
          } catch (ex) {
            err.replaceChildren(notice('error', ex.message));
            restore.disabled = false;
          }
        } } }, 'Restore this version');
        preview.replaceChildren(
          h('h3', 'Version of ', timeEl(r.at), r.author ? ` by ${r.author}` : ''),
          h('pre.revision-text', { tabIndex: 0, 'aria-label': 'Text of this version' }, res?.text ?? ''),
          err,
          h('div.actions', session.signedIn && !deleted ? restore : null,
            h('button.btn.small.secondary', { type: 'button', on: { click: () => { preview.replaceChildren(); } } }, 'Close')));
      } catch (ex) {
        preview.replaceChildren(notice('error', ex.message));
      }
    }
  }

  // The note's title and state again (after `meta`, or a refusal).
  async function refresh() {
    clearTimeout(pollTimer);
    try {
      const n = await api(`${path}?deleted=1`);
      if (!alive) return;
      delete n.text;
      note = { ...note, ...n };
      drawTitle();
      drawMeta();
      if (!!n.deleted !== deleted) setDeleted(!!n.deleted);
      else if (deleted && !ws) pollTimer = setTimeout(refresh, 15_000);
    } catch (e) {
      if (!alive) return;
      if (e.status === 404 || e.status === 410) {
        if (ws) { const old = ws; ws = null; old.close(1000); sync?.disconnected(); }
        setDeleted(true);
        clearTimeout(pollTimer);
        banner('deleted', 'info', e.status === 410 ? 'This note was deleted too long ago to be restored.' : 'This note no longer exists.');
      } else if (deleted && !ws) {
        pollTimer = setTimeout(refresh, 15_000);
      }
    }
  }

  // ---- connection ----

  function send(m) {
    if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(m)); return true; }
    return false;
  }

  function connect() {
    clearTimeout(retryTimer);
    retryTimer = null;
    if (!alive) return;
    setConn(attempts ? (attempts > 2 || !navigator.onLine ? 'offline' : 'reconnecting') : 'connecting');
    const sock = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}/ws`);
    ws = sock;
    sock.addEventListener('open', () => { if (ws === sock) sync.connected(); });
    sock.addEventListener('message', (e) => {
      if (ws !== sock) return;
      let m;
      try { m = JSON.parse(e.data); } catch { return; }
      sync.receive(m);
    });
    sock.addEventListener('close', () => {
      if (ws !== sock) return;
      ws = null;
      sync.disconnected();
      if (!alive) return;
      if (deleted) { // the hub refuses sockets on a deleted note: look again now and then
        setConn('offline');
        pollTimer = setTimeout(refresh, 15_000);
        return;
      }
      attempts++;
      setConn(attempts > 2 || !navigator.onLine ? 'offline' : 'reconnecting');
      const delay = Math.min(30_000, 500 * 2 ** Math.min(attempts - 1, 6)) * (0.75 + Math.random() * 0.5);
      retryTimer = setTimeout(connect, delay);
    });
  }

  function reconnectNow() {
    if (ws) { const old = ws; ws = null; old.close(1000); sync.disconnected(); }
    attempts = 0;
    connect();
  }
  const online = () => { if (!ws && !deleted && sync) { attempts = Math.min(attempts, 1); connect(); } };
  addEventListener('online', online);
  const guard = (e) => { if (pending) { e.preventDefault(); e.returnValue = ''; } };
  addEventListener('beforeunload', guard);

  function onSync(type, d) {
    if (!alive) return;
    if (type === 'init') {
      attempts = 0;
      canEdit = d.canEdit;
      autoSync = d.autoSync;
      me = { name: d.name || me.name, color: d.color };
      if (d.title != null && note) { note.title = d.title; drawTitle(); }
      setConn('connected');
      banner('changed');
      banner('autosync', 'info', ...(autoSync ? [] : ['Live updates are off on this server: changes by others show up when you choose to load them.']));
      banner('readonly', 'info', ...(canEdit ? [] : session.signedIn
        ? ['You can read this note; this server does not let you edit it.']
        : ['You are reading this note. ', h('a', { href: `/signin?next=${encodeURIComponent(location.pathname)}` }, 'Sign in'), ' to write in it.']));
      drawPeople();
    } else if (type === 'peers') {
      peers = d;
      drawPeople();
    } else if (type === 'editable') {
      editor.setEditable(d);
      host.classList.toggle('read-only', !d);
    } else if (type === 'pending') {
      pending = d;
    } else if (type === 'updated') {
      if (d.name) note.updated_by = d.name;
      note.updated_at = new Date().toISOString();
      if (!metaTimer) metaTimer = setTimeout(() => { metaTimer = null; if (alive) { note.size = bytes(sync.shadow); drawMeta(); } }, 1000);
    } else if (type === 'meta') {
      // Renamed, deleted or restored: the hub says which only over REST.
      if (typeof d.title === 'string' && note) { note.title = d.title; drawTitle(); }
      if (typeof d.deleted === 'boolean' && d.deleted !== deleted) setDeleted(d.deleted);
      if (typeof d.title !== 'string' || typeof d.deleted !== 'boolean') refresh();
    } else if (type === 'changed') {
      const show = h('button.btn.small', { type: 'button', on: { click: () => {
        show.disabled = true;
        show.textContent = 'Loading…';
        sync.loadChanges();
      } } }, 'Show');
      banner('changed', 'info', `New changes${d.name ? ` by ${d.name}` : ''}. `, show);
    } else if (type === 'error') {
      if (d.id == null && /^(not_found|gone|deleted)$/.test(d.code || '')) return refresh();
      const close = h('button.link', { type: 'button', on: { click: () => banner('error') } }, 'Dismiss');
      banner('error', 'error', d.message || 'The server refused a change.', ' ', d.id != null ? 'The note was loaded again. ' : '', close);
    }
  }

  // ---- load ----

  async function load() {
    let n;
    try {
      [n, cm] = await Promise.all([api(`${path}?deleted=1`), loadEditor()]);
    } catch (e) {
      if (!alive) return;
      const disabled = e.code === 'notepad_disabled';
      if (disabled) setNotepadEnabled(false);
      const missing = e.status === 404 || e.status === 410;
      heading.textContent = disabled ? 'Notepad turned off' : missing ? 'Note not found' : 'Could not open the note';
      pageTitle(heading.textContent);
      problem.replaceChildren(notice(missing ? 'info' : 'error',
        disabled ? DISABLED_TEXT : e.status === 410 ? 'This note was deleted too long ago to be restored. '
          : missing ? 'There is no note at this address; it may have been deleted. ' : `${e.message} `,
        disabled ? '' : h('a', { href: '/notes' }, 'Back to the notes'), disabled ? '' : '.'));
      return;
    }
    if (!alive) return;
    note = n;
    body.hidden = false;
    drawTitle();
    drawMeta();
    sync = new cm.NoteSync({ text: n.text || '', version: n.version || null, name: me.name, send, emit: onSync });
    editor = cm.createNoteEditor(host, { text: n.text || '', sync, label: `Text of ${noteTitle(n)}`, placeholderText: 'Empty note.' });
    host.classList.add('read-only');
    drawPeople();
    drawName(!nameAsked());
    if (n.deleted) {
      setDeleted(true);
      setConn('offline');
      pollTimer = setTimeout(refresh, 15_000);
    } else {
      connect();
    }
  }

  const unsubSession = session.subscribe((signedIn) => {
    if (!note) return;
    drawTitle();
    if (deleted) setDeleted(true);
    // can_edit is decided when connecting: connect again after signing in or out.
    if (sync?.ready && alive && !!signedIn !== canEdit) reconnectNow();
  });
  load();

  return () => {
    alive = false;
    clearTimeout(retryTimer);
    clearTimeout(pollTimer);
    clearTimeout(metaTimer);
    removeEventListener('online', online);
    removeEventListener('beforeunload', guard);
    unsubSession();
    if (ws) { const old = ws; ws = null; old.close(1000); }
    sync?.destroy();
    editor?.view.destroy();
  };
}
