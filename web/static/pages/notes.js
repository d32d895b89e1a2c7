// Notepad (`/notes`): the community notes, newest edit first, with search;
// signed-in people create notes here. See docs/notes-api.md.

import { api, session } from '../api.js';
import { h, formatBytes, timeEl, debounce, pageTitle, notice } from '../util.js';
import { navigate, takeFlash } from '../nav.js';

export const notePath = (id) => `/api/notes/${encodeURIComponent(id)}`;
export const noteTitle = (n) => (n?.title || '').trim() || 'Untitled note';

// The top bar's "Notes" link is hidden while the server has the notepad turned off.
export function setNotepadEnabled(on) {
  const link = document.querySelector('[data-nav="notes"]');
  if (link) link.hidden = !on;
}
export const DISABLED_TEXT = 'The community notepad is turned off on this server.';

// The name others see in a note (and the author of what one does here):
// asked once on a note's page, kept in localStorage ("Guest 123" until then).
const NAME_KEY = 'stream-hub.notes.name';
const ASKED_KEY = 'stream-hub.notes.name-asked';
export function presenceName() {
  let n = '';
  try { n = localStorage.getItem(NAME_KEY) || ''; } catch { /* storage off */ }
  if (!n) {
    n = `Guest ${100 + Math.floor(Math.random() * 900)}`;
    try { localStorage.setItem(NAME_KEY, n); } catch { /* storage off */ }
  }
  return n;
}
export const nameAsked = () => { try { return !!localStorage.getItem(ASKED_KEY); } catch { return true; } };
export function saveName(n) {
  try { localStorage.setItem(NAME_KEY, n); localStorage.setItem(ASKED_KEY, '1'); } catch { /* storage off */ }
}

function row(n, onRestore) {
  const link = h('a.note-link', { href: `/notes/${encodeURIComponent(n.id)}` }, noteTitle(n));
  return h('li.note-row', { 'data-id': n.id },
    h('div.note-row-main', h('h2.note-row-title', link),
      h('p.meta',
        n.deleted ? h('span.badge.s-failed', 'Deleted') : null,
        h('span', formatBytes(n.size)),
        n.updated_at ? h('span', 'Edited ', timeEl(n.updated_at)) : null,
        n.updated_by ? h('span', 'by ', n.updated_by) : null)),
    n.deleted && session.signedIn ? h('button.btn.small.secondary', { type: 'button', on: { click: (e) => onRestore(n, e.currentTarget) } }, 'Restore') : null);
}

export function render(main, _params, query) {
  pageTitle('Notes');
  let q = query.get('q') || '';
  let showDeleted = query.get('deleted') === '1';
  let seq = 0, alive = true, notes = [];

  const search = h('input#notes-q', { type: 'search', name: 'q', value: q, placeholder: 'Words in the title or the text', autocomplete: 'off' });
  const deletedBox = h('input#notes-deleted', { type: 'checkbox', checked: showDeleted });
  const count = h('p.count', { 'aria-live': 'polite' });
  const status = h('div.status');
  const list = h('ul.note-list', { 'aria-label': 'Notes' });
  const empty = h('div.empty', { hidden: true });
  const create = h('div.note-create');
  const flash = takeFlash();

  main.append(h('section.page.notes',
    h('div.page-head', h('h1', 'Notes'), create),
    h('p.muted.lead', 'Shared notes anyone here can read; signed-in people write in them together, live.'),
    h('form.tools', { role: 'search', on: { submit: (e) => { e.preventDefault(); apply(); } } },
      h('div.field.grow', h('label', { for: 'notes-q' }, 'Search notes'), search),
      h('div.field.check', deletedBox, h('label', { for: 'notes-deleted' }, 'Include deleted notes'))),
    flash ? notice('ok', flash) : null,
    count, status, list, empty));

  function drawCreate() {
    if (!session.signedIn) {
      create.replaceChildren(session.signedIn === null ? '' : h('p.muted.small-print', h('a', { href: '/signin?next=%2Fnotes' }, 'Sign in'), ' to create notes.'));
      return;
    }
    const title = h('input#new-note-title', { type: 'text', maxLength: 200, placeholder: 'Title of the new note', required: true });
    const err = h('div.form-error');
    const btn = h('button.btn', { type: 'submit' }, 'New note');
    create.replaceChildren(h('form.new-note', { on: { submit: async (e) => {
      e.preventDefault();
      err.replaceChildren();
      const t = title.value.trim();
      if (!t) { err.append(notice('error', 'Give the note a title.')); return title.focus(); }
      btn.disabled = true;
      try {
        const n = await api('/api/notes', { method: 'POST', body: { title: t, author: presenceName() } });
        navigate(`/notes/${encodeURIComponent(n.id)}`);
      } catch (ex) {
        err.append(notice('error', ex.message));
        btn.disabled = false;
      }
    } } },
      h('label.visually-hidden', { for: 'new-note-title' }, 'Title of the new note'), title, btn, err));
  }

  async function restore(n, btn) {
    btn.disabled = true;
    try {
      await api(`${notePath(n.id)}/restore`, { method: 'POST' });
      load();
    } catch (ex) {
      btn.disabled = false;
      status.replaceChildren(notice('error', ex.message));
    }
  }

  async function load() {
    const my = ++seq;
    count.textContent = notes.length ? count.textContent : 'Loading…';
    const params = new URLSearchParams({ limit: 200 });
    if (q) params.set('q', q);
    if (showDeleted) params.set('deleted', '1');
    try {
      const res = await api(`/api/notes?${params}`);
      if (my !== seq || !alive) return;
      setNotepadEnabled(true);
      status.replaceChildren();
      notes = res?.notes || [];
      list.replaceChildren(...notes.map((n) => row(n, restore)));
      count.textContent = `${notes.length} ${notes.length === 1 ? 'note' : 'notes'}${q ? ` matching “${q}”` : ''}`;
      empty.hidden = notes.length > 0;
      empty.replaceChildren(q ? h('p', 'No notes match your search. Try other words.')
        : h('p', 'No notes yet.', session.signedIn ? ' Create the first one with “New note”.' : ''));
    } catch (e) {
      if (my !== seq || !alive) return;
      count.textContent = '';
      list.replaceChildren();
      empty.hidden = true;
      if (e.code === 'notepad_disabled') {
        setNotepadEnabled(false);
        create.replaceChildren();
        status.replaceChildren(notice('info', DISABLED_TEXT));
        return;
      }
      status.replaceChildren(notice('error', e.message, ' ', h('button.link', { type: 'button', on: { click: load } }, 'Try again')));
    }
  }

  function apply() {
    if (!alive) return;
    const nq = search.value.trim();
    if (nq === q && deletedBox.checked === showDeleted) return;
    q = nq;
    showDeleted = deletedBox.checked;
    const qs = String(new URLSearchParams(Object.entries({ q, deleted: showDeleted ? '1' : '' }).filter(([, x]) => x)));
    history.replaceState(null, '', qs ? `/notes?${qs}` : '/notes');
    load();
  }
  search.addEventListener('input', debounce(apply, 250));
  deletedBox.addEventListener('change', apply);

  drawCreate();
  const unsub = session.subscribe(() => { drawCreate(); if (notes.length) list.replaceChildren(...notes.map((n) => row(n, restore))); });
  load();
  return () => { alive = false; seq++; unsub(); };
}
