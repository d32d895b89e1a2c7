// Library (`/`): search, sort, cursor pagination, live updates from /api/events.

import { api, onVideoEvent } from '../api.js';
import { h, formatBytes, timeEl, debounce, statusBadge, pageTitle, notice } from '../util.js';
import { takeFlash } from '../nav.js';

const PAGE_SIZE = 24;
const SORTS = { newest: 'Newest first', oldest: 'Oldest first', title: 'Title (A–Z)' };

export function displayTitle(v) {
  return v.title || v.original_name || 'Untitled video';
}

function card(v) {
  return h('li.card', { 'data-id': v.id },
    h('a.card-link', { href: v.watch_url || `/watch/${encodeURIComponent(v.id)}` },
      h('div.thumb', { 'aria-hidden': 'true' },
        v.thumbnail_url ? h('img', { src: v.thumbnail_url, alt: '', loading: 'lazy' })
          : h('span.play')),
      h('div.card-body',
        h('h2.card-title', displayTitle(v)),
        h('p.meta', statusBadge(v.status), mediaBadge(v), h('span', formatBytes(v.size)), v.created_at ? timeEl(v.created_at) : null),
        (v.status === 'failed' || v.media_status === 'failed') && v.error ? h('p.card-error', v.error) : null)));
}

// The pipeline's progress, live (cards are redrawn on every event): "processing 42%".
export function mediaBadge(v) {
  if (v.status !== 'ready' || !['queued', 'processing'].includes(v.media_status)) return null;
  return h('span.badge.s-processing.media-progress', `processing ${v.progress ?? 0}%`);
}

// Where a card from a live event goes: the order of the server's sorts.
const COMPARE = {
  newest: (a, b) => `${b.created_at}`.localeCompare(a.created_at),
  oldest: (a, b) => `${a.created_at}`.localeCompare(b.created_at),
  title: (a, b) => displayTitle(a).localeCompare(displayTitle(b), undefined, { sensitivity: 'base' }),
};

export function render(main, _params, query) {
  pageTitle('Library');
  let q = query.get('q') || '';
  let sort = SORTS[query.get('sort')] ? query.get('sort') : 'newest';
  let videos = [];          // loaded, in display order
  let nextCursor = null;
  let total = 0;
  let seq = 0;
  let loading = false;

  const search = h('input#q', { type: 'search', name: 'q', value: q, placeholder: 'Title or description', autocomplete: 'off' });
  const sortSel = h('select#sort', { name: 'sort' },
    Object.entries(SORTS).map(([k, label]) => h('option', { value: k, selected: k === sort }, label)));
  const count = h('p.count', { 'aria-live': 'polite' });
  const status = h('div.status');
  const grid = h('ul.grid', { 'aria-label': 'Videos' });
  const more = h('button.btn.secondary', { type: 'button', hidden: true, on: { click: () => load(false) } }, 'Load more');
  const empty = h('div.empty', { hidden: true });
  const flash = takeFlash();

  main.append(h('section.page.library',
    h('div.page-head', h('h1', 'Library'), h('a.btn', { href: '/upload' }, 'Upload videos')),
    h('form.tools', { role: 'search', on: { submit: (e) => { e.preventDefault(); apply(); } } },
      h('div.field.grow', h('label', { for: 'q' }, 'Search'), search),
      h('div.field', h('label', { for: 'sort' }, 'Sort'), sortSel)),
    flash ? notice('ok', flash) : null,
    count, status, grid, empty, h('div.more', more)));

  function updateChrome() {
    count.textContent = loading && !videos.length ? 'Loading…'
      : `${total} ${total === 1 ? 'video' : 'videos'}${q ? ` matching “${q}”` : ''}`;
    more.hidden = !nextCursor;
    more.disabled = loading;
    const none = !loading && !videos.length && !status.childElementCount;
    empty.hidden = !none;
    if (none) {
      empty.replaceChildren(q
        ? h('p', 'No videos match your search. Try other words.')
        : h('p', 'No videos yet. ', h('a', { href: '/upload' }, 'Upload the first one'), '.'));
    }
  }

  async function load(reset) {
    const my = ++seq;
    loading = true;
    updateChrome();
    const params = new URLSearchParams({ limit: PAGE_SIZE, sort });
    if (q) params.set('q', q);
    if (!reset && nextCursor) params.set('cursor', nextCursor);
    try {
      const page = await api(`/api/videos?${params}`);
      if (my !== seq) return;
      status.replaceChildren();
      if (reset) { videos = []; grid.replaceChildren(); }
      for (const v of page.items || []) upsert(v, true);
      nextCursor = page.next_cursor || null;
      total = Number.isFinite(page.total) ? page.total : videos.length;
    } catch (e) {
      if (my !== seq) return;
      status.replaceChildren(notice('error', e.message, ' ', h('button.link', { type: 'button', on: { click: () => load(reset) } }, 'Try again')));
    } finally {
      if (my === seq) { loading = false; updateChrome(); }
    }
  }

  // Adds or replaces a card. append=true: from a page, in server order;
  // else placed by the sort order (a live event).
  function upsert(v, append) {
    const i = videos.findIndex((x) => x.id === v.id);
    const el = card(v);
    if (i >= 0) return grid.children[i].replaceWith(el), videos[i] = v;
    let at = videos.length;
    if (!append) {
      at = videos.findIndex((x) => COMPARE[sort](v, x) < 0);
      if (at < 0) {
        if (nextCursor) return; // belongs to a page not loaded yet
        at = videos.length;
      }
      el.classList.add('new');
    }
    videos.splice(at, 0, v);
    grid.insertBefore(el, grid.children[at] || null);
  }

  function remove(id) {
    const i = videos.findIndex((x) => x.id === id);
    if (i >= 0) { videos.splice(i, 1); grid.children[i].remove(); }
    return i >= 0;
  }

  const matches = (v) => `${v.title}\n${v.description || ''}`.toLowerCase().includes(q.toLowerCase());

  const unsubscribe = onVideoEvent((ev) => {
    if (ev === 'resync') return load(true);
    const known = videos.some((x) => x.id === ev.id);
    if (ev.deleted || !ev.video || !matches(ev.video)) {
      if (remove(ev.id)) total = Math.max(0, total - 1);
    } else {
      upsert(ev.video, false);
      if (!known) total++;
    }
    updateChrome();
  });

  let alive = true;
  function apply() {
    if (!alive) return;
    if (search.value.trim() === q && sortSel.value === sort) return;
    q = search.value.trim();
    sort = sortSel.value;
    const qs = String(new URLSearchParams(Object.entries({ q, sort: sort === 'newest' ? '' : sort }).filter(([, x]) => x)));
    history.replaceState(null, '', qs ? `/?${qs}` : '/');
    nextCursor = null;
    load(true);
  }
  search.addEventListener('input', debounce(apply, 300));
  sortSel.addEventListener('change', apply);

  load(true);
  return () => { alive = false; unsubscribe(); seq++; };
}
