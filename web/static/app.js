// Entry point: header (session), routing between the pages, in-page links.

import { api, session } from './api.js';
import { h, refreshTimes } from './util.js';
import { navigate } from './nav.js';
import * as library from './pages/library.js';
import * as upload from './pages/upload.js';
import * as watch from './pages/watch.js';
import * as signin from './pages/signin.js';
import * as notes from './pages/notes.js';
import * as note from './pages/note.js';
import * as cluster from './pages/cluster.js';

const ROUTES = [[/^\/$/, library, 'library'], [/^\/upload\/?$/, upload, 'upload'], [/^\/watch\/([^/]+)\/?$/, watch], [/^\/signin\/?$/, signin],
  [/^\/notes\/?$/, notes, 'notes'], [/^\/notes\/([^/]+)\/?$/, note, 'notes'],
  [/^\/cluster\/?$/, cluster, 'cluster']];
const main = document.getElementById('main');
const slot = document.getElementById('session');
let cleanup = null;
let first = true;

function render() {
  cleanup?.();
  main.replaceChildren();
  const [re, page, nav] = ROUTES.find(([r]) => r.test(location.pathname)) || [];
  for (const a of document.querySelectorAll('[data-nav]')) a.toggleAttribute('aria-current', a.dataset.nav === nav);
  if (page) {
    cleanup = page.render(main, re.exec(location.pathname).slice(1).map(decodeURIComponent), new URLSearchParams(location.search));
  } else {
    cleanup = null;
    document.title = 'Not found · stream-hub';
    main.append(h('section.page', h('h1', 'Page not found'), h('p', 'There is nothing at this address. ', h('a', { href: '/' }, 'Go to the library'), '.')));
  }
  signinLink();
  if (!first) { // moving focus to the new heading tells screen readers the page changed
    scrollTo(0, 0);
    const h1 = main.querySelector('h1');
    if (h1) { h1.tabIndex = -1; h1.focus({ preventScroll: true }); }
  }
  first = false;
}

document.addEventListener('click', (e) => {
  if (e.defaultPrevented || e.button || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download')) return;
  const url = new URL(a.href);
  if (url.origin !== location.origin || !ROUTES.some(([r]) => r.test(url.pathname))) return;
  e.preventDefault();
  if (url.href !== location.href) navigate(url.pathname + url.search + url.hash);
});
addEventListener('popstate', render);
addEventListener('hub:navigate', render);

// The header's sign-in link brings the person back to the page they were on.
function signinLink() {
  const a = document.getElementById('signin-link');
  const here = location.pathname + location.search;
  if (a) a.href = here === '/' || location.pathname.startsWith('/signin') ? '/signin' : `/signin?next=${encodeURIComponent(here)}`;
}

session.subscribe((signedIn) => {
  if (!signedIn) {
    slot.replaceChildren(signedIn === null ? '' : h('a.btn.small#signin-link', { href: '/signin' }, 'Sign in'));
    return signinLink();
  }
  const out = h('button.btn.small.secondary', { type: 'button', on: { click: async () => {
    out.disabled = true;
    try { await session.signOut(); } catch (err) {
      out.disabled = false;
      out.title = err.message;
      alert(err.message);
    }
  } } }, 'Sign out');
  slot.replaceChildren(h('span.who', h('span.dot'), h('span.who-text', 'Signed in')), out);
});
session.refresh();
// The "Notes" link stays hidden when the server has the notepad turned off.
api('/api/session').then((s) => {
  notes.setNotepadEnabled(s?.features?.notepad !== false);
  const link = document.querySelector('[data-nav="cluster"]');
  if (link) link.hidden = !s?.features?.cluster; // shown where clustering is on
}, () => {});
setInterval(() => refreshTimes(main), 30_000);
render();
