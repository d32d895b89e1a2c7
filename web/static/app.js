// Entry point: header (session), routing between the four pages, link handling.

import { session } from './api.js';
import { h, refreshTimes, focusHeading } from './util.js';
import { navigate } from './nav.js';
import * as library from './pages/library.js';
import * as upload from './pages/upload.js';
import * as watch from './pages/watch.js';
import * as signin from './pages/signin.js';

const ROUTES = [
  [/^\/$/, library, 'library'],
  [/^\/upload\/?$/, upload, 'upload'],
  [/^\/watch\/([^/]+)\/?$/, watch, null],
  [/^\/signin\/?$/, signin, null],
];

const main = document.getElementById('main');
let cleanup = null;
let firstRender = true;

function render() {
  if (typeof cleanup === 'function') cleanup();
  cleanup = null;
  main.replaceChildren();
  const path = location.pathname;
  let page = null, params = [], navName = null;
  for (const [re, mod, name] of ROUTES) {
    const m = re.exec(path);
    if (m) { page = mod; params = m.slice(1).map(decodeURIComponent); navName = name; break; }
  }
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === navName) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  if (!page) {
    document.title = 'Not found · stream-hub';
    main.append(h('section.page', h('h1', 'Page not found'), h('p', 'There is nothing at this address. ', h('a', { href: '/' }, 'Go to the library'), '.')));
  } else {
    cleanup = page.render(main, params, new URLSearchParams(location.search));
  }
  updateSigninLink();
  if (!firstRender) { window.scrollTo(0, 0); focusHeading(main); }
  firstRender = false;
}

// Same-origin links to page routes stay in the page.
document.addEventListener('click', (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || /^\/(static|media|api|files)\//.test(url.pathname)) return;
  if (!ROUTES.some(([re]) => re.test(url.pathname))) return;
  e.preventDefault();
  if (url.href !== location.href) navigate(url.pathname + url.search + url.hash);
});

window.addEventListener('popstate', render);
window.addEventListener('hub:navigate', render);

// Header: signed-in state and sign-out.
const slot = document.getElementById('session');
function renderSession(signedIn) {
  if (signedIn === null) { slot.replaceChildren(); return; }
  if (signedIn) {
    const out = h('button.link', { type: 'button', on: { click: async () => {
      out.disabled = true;
      try { await session.signOut(); } catch (err) {
        out.disabled = false;
        slot.append(h('span.err', { role: 'alert' }, err.message));
      }
    } } }, 'Sign out');
    slot.replaceChildren(h('span.who', h('span.dot', { 'aria-hidden': 'true' }), 'Signed in'), out);
  } else {
    slot.replaceChildren(h('a.btn.small#signin-link', { href: '/signin' }, 'Sign in'));
    updateSigninLink();
  }
}

// The header's sign-in link brings the person back to the page they were on.
function updateSigninLink() {
  const a = document.getElementById('signin-link');
  const here = location.pathname + location.search;
  if (a) a.href = /^\/signin/.test(location.pathname) || here === '/' ? '/signin' : `/signin?next=${encodeURIComponent(here)}`;
}
session.subscribe(renderSession);
renderSession(session.signedIn);
session.refresh();

setInterval(() => refreshTimes(main), 30_000);
render();
