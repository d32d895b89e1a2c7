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
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(describeStatus(0));
  }
  if (!res.ok) throw await errorFrom(res);
  if (res.status === 204) return null;
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

export const videoPath = (id) => `/api/videos/${encodeURIComponent(id)}`;

// --- session ---------------------------------------------------------------
const sessionListeners = new Set();
export const session = {
  signedIn: null, // null = not known yet
  set(v) {
    if (this.signedIn === v) return;
    this.signedIn = v;
    for (const fn of sessionListeners) fn(v);
  },
  subscribe(fn) { sessionListeners.add(fn); return () => sessionListeners.delete(fn); },
  async refresh() {
    try {
      const s = await api('/api/session');
      this.set(!!s?.signed_in);
    } catch {
      if (this.signedIn === null) this.set(false);
    }
    return this.signedIn;
  },
  async signIn(token) {
    await api('/api/session', { method: 'POST', body: { token } });
    this.set(true);
  },
  async signOut() {
    await api('/api/session', { method: 'DELETE' });
    this.set(false);
  },
};

// --- live events -----------------------------------------------------------
// One EventSource for the whole page. subscribe(fn) gets {id, deleted, video}
// for each `event: video`; fn('resync') after a reconnect, when events may have
// been missed.
const eventListeners = new Set();
let source = null;
let everOpen = false;
function connect() {
  source = new EventSource('/api/events');
  source.addEventListener('video', (e) => {
    let data;
    try { data = JSON.parse(e.data); } catch { return; }
    if (!data || !data.id) return;
    for (const fn of eventListeners) fn(data);
  });
  source.addEventListener('open', () => {
    if (everOpen) for (const fn of eventListeners) fn('resync');
    everOpen = true;
  });
}
export function onVideoEvent(fn) {
  if (!source) connect();
  eventListeners.add(fn);
  return () => eventListeners.delete(fn);
}
