// Small DOM and formatting helpers shared by the pages.

// h('div.card#x', {attrs, on: {click}}, ...children) — builds an element.
export function h(tag, props, ...children) {
  const [, name, rest] = /^([a-z0-9-]+)(.*)$/i.exec(tag);
  const el = document.createElement(name);
  for (const m of rest.matchAll(/([.#])([^.#]+)/g)) {
    if (m[1] === '.') el.classList.add(m[2]); else el.id = m[2];
  }
  if (props?.constructor !== Object) {
    children.unshift(props);
    props = {};
  }
  for (const [k, v] of Object.entries(props)) {
    if (v == null || v === false) continue;
    if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

const UNITS = ['B', 'KB', 'MB', 'GB', 'TB'];
export function formatBytes(n) {
  if (!Number.isFinite(n) || n < 0) return '';
  let i = 0;
  while (n >= 1000 && i < UNITS.length - 1) { n /= 1000; i++; }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)} ${UNITS[i]}`;
}

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const STEPS = [[60, 'second'], [60, 'minute'], [24, 'hour'], [7, 'day'], [4.345, 'week'], [12, 'month'], [Infinity, 'year']];
export function relativeTime(iso, now = Date.now()) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  let d = (t - now) / 1000;
  if (Math.abs(d) < 45) return 'just now';
  for (const [size, unit] of STEPS) {
    if (Math.abs(d) < size) return rtf.format(Math.round(d), unit);
    d /= size;
  }
  return '';
}

// <time> that says "3 hours ago" and shows the exact date on hover; kept fresh by refreshTimes().
export function timeEl(iso) {
  const d = new Date(iso);
  return h('time', { datetime: iso, title: Number.isNaN(+d) ? '' : d.toLocaleString() }, relativeTime(iso));
}
export function refreshTimes(root = document) {
  for (const t of root.querySelectorAll('time[datetime]')) t.textContent = relativeTime(t.getAttribute('datetime'));
}

export function debounce(fn, ms) {
  let timer;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

const STATUS_TEXT = { uploading: 'Uploading', processing: 'Processing', ready: 'Ready', failed: 'Failed' };
export function statusBadge(status) {
  return h(`span.badge.s-${STATUS_TEXT[status] ? status : 'unknown'}`, STATUS_TEXT[status] || status || 'Unknown');
}

export const pageTitle = (text) => { document.title = text ? `${text} · stream-hub` : 'stream-hub'; };

// A status/error box. kind: 'error' | 'info' | 'ok'.
export function notice(kind, ...content) {
  return h(`div.notice.${kind}`, { role: kind === 'error' ? 'alert' : 'status' }, ...content);
}

// An inline SVG from trusted markup (icons written in this code).
export function svg(markup) {
  const t = document.createElement('template');
  t.innerHTML = markup.trim();
  return t.content.firstChild;
}
