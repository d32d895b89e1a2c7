// The HTTP API of docs/api.md: JSON requests, readable errors, the session
// and the live event stream.

export class ApiError extends Error {
  constructor(message, status = 0, code = '') {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// A sentence for a response that carried no error message of its own.
export function describeStatus(s) {
  return s === 0 ? 'The server could not be reached. Check your connection and try again.'
    : { 401: 'You need to sign in first.', 403: 'You are not allowed to do that.', 404: 'That was not found; it may have been deleted.',
      413: 'That file is too large for this server.', 429: 'The server is busy. Wait a moment and try again.' }[s]
    || (s >= 500 ? `The server ran into a problem (HTTP ${s}). Try again in a moment.` : `The request failed (HTTP ${s}).`);
}

// Builds an ApiError from a failed Response, using the JSON error.message when there is one.
export async function errorFrom(res) {
  let message = '', code = '';
  try {
    const body = await res.json();
    message = body?.error?.message || '';
    code = body?.error?.code || '';
  } catch { /* not JSON */ }
  if (res.status === 401) session.set(false);
  return new ApiError(message || describeStatus(res.status), res.status, code);
}

// fetch + JSON; throws ApiError with a sentence a person understands.
export async function api(path, { method = 'GET', body, signal } = {}) {
  const init = { method, signal, headers: { Accept: 'application/json' }, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init).catch((e) => { throw e.name === 'AbortError' ? e : new ApiError(describeStatus(0)); });
  if (!res.ok) throw await errorFrom(res);
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

export const videoPath = (id) => `/api/videos/${encodeURIComponent(id)}`;

// The session: signedIn is null until known; subscribers hear every change.
const sessionFns = new Set();
export const session = {
  signedIn: null,
  set(v) {
    if (this.signedIn !== v) { this.signedIn = v; sessionFns.forEach((fn) => fn(v)); }
  },
  subscribe(fn) { sessionFns.add(fn); return () => sessionFns.delete(fn); },
  async refresh() {
    try { this.set(!!(await api('/api/session'))?.signed_in); } catch { if (this.signedIn === null) this.set(false); }
  },
  async signIn(token) { await api('/api/session', { method: 'POST', body: { token } }); this.set(true); },
  async signOut() { await api('/api/session', { method: 'DELETE' }); this.set(false); },
};

// Live events: one EventSource for the page. onVideoEvent(fn): fn gets
// {id, deleted, video} for each `event: video`, and 'resync' after a
// reconnect (events may have been missed meanwhile).
const eventFns = new Set();
let source = null;
export function onVideoEvent(fn) {
  if (!source) {
    let opened = false;
    source = new EventSource('/api/events');
    source.addEventListener('video', (e) => {
      let data = null;
      try { data = JSON.parse(e.data); } catch { /* ignore */ }
      if (data?.id) eventFns.forEach((f) => f(data));
    });
    source.addEventListener('open', () => {
      if (opened) eventFns.forEach((f) => f('resync'));
      opened = true;
    });
  }
  eventFns.add(fn);
  return () => eventFns.delete(fn);
}
