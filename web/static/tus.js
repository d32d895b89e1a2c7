// A small tus 1.0.0 client (core, creation, termination) for one File:
// POST (Upload-Length, Upload-Metadata as base64 of UTF-8) -> Location; then
// sequential PATCHes of slices; HEAD to resume; DELETE to cancel. Network
// errors, 5xx, 423, 429: retried with backoff after a HEAD. 409: HEAD after a
// short backoff, then on. The upload URL is kept in localStorage under the
// file's fingerprint (name, size, lastModified), so choosing the same file
// after a reload resumes it.

import { ApiError, describeStatus, errorFrom, session } from './api.js';

const TUS = { 'Tus-Resumable': '1.0.0' };
const PREFIX = 'stream-hub.upload:';
const DELAYS = [500, 1000, 2000, 4000, 8000, 15000, 30000];
export const CHUNK = 32 * 1024 * 1024;  // large: fewer requests, fewer parts to assemble

class Retryable extends Error {
  constructor(message, status = 0) { super(message); this.status = status; }
}
const retryable = (s) => s === 0 || s === 423 || s === 429 || s >= 500;
const aborted = () => new DOMException('Stopped.', 'AbortError');
const sleep = (ms, signal) => new Promise((ok, fail) => {
  if (signal.aborted) return fail(aborted());
  const t = setTimeout(ok, ms);
  signal.addEventListener('abort', () => { clearTimeout(t); fail(aborted()); }, { once: true });
});

export function base64Utf8(s) {
  let bin = '';
  for (const b of new TextEncoder().encode(s)) bin += String.fromCharCode(b);
  return btoa(bin);
}
export const encodeMetadata = (meta) => Object.entries(meta).filter(([, v]) => v)
  .map(([k, v]) => `${k} ${base64Utf8(String(v))}`).join(',');

export const fingerprint = (f) => `${PREFIX}${f.name}:${f.size}:${f.lastModified}`;
function load(key) {
  try { return JSON.parse(localStorage.getItem(key)); } catch { return null; }
}
export function forget(key) {
  try { localStorage.removeItem(key); } catch { /* storage disabled */ }
}

// Unfinished uploads remembered by this browser, newest first.
export function storedUploads() {
  const out = [];
  try {
    for (let i = 0; i < localStorage.length; i++) {
      const key = localStorage.key(i);
      const e = key.startsWith(PREFIX) && load(key);
      if (e?.url) out.push({ key, ...e });
    }
  } catch { /* storage disabled */ }
  return out.sort((a, b) => b.updatedAt - a.updatedAt);
}

export function previousUpload(file) {
  const e = load(fingerprint(file));
  return e?.url && e.size === file.size ? e : null;
}

// Termination; an upload already gone counts as deleted.
export async function terminate(url) {
  const res = await fetch(url, { method: 'DELETE', headers: TUS }).catch(() => { throw new ApiError(describeStatus(0)); });
  if (!res.ok && res.status !== 404 && res.status !== 410) throw await errorFrom(res);
}

// States: idle, creating, resuming, uploading, retrying, paused, done, error, cancelled.
export class TusUpload {
  constructor(file, { endpoint = '/files/', metadata = {}, chunkSize = CHUNK, onProgress = () => {}, onState = () => {} } = {}) {
    Object.assign(this, { file, metadata, chunkSize, onProgress, onState });
    this.endpoint = new URL(endpoint, location.href).href;
    this.key = fingerprint(file);
    this.url = null;
    this.offset = 0;
    this.resumedAt = 0; // bytes the server already had when this page resumed it
    this.retryIn = 0;
    this.error = null;
    this.state = 'idle';
    this.ctl = null;
    this.sync = false;  // offset must be re-read with HEAD before the next PATCH
  }

  get size() { return this.file.size; }
  get id() { return this.url && decodeURIComponent(new URL(this.url).pathname.split('/').filter(Boolean).pop()); }
  get running() { return ['creating', 'resuming', 'uploading', 'retrying'].includes(this.state); }
  set(state) { this.state = state; this.onState(state, this); }

  // Starts or resumes; settles when complete, paused, cancelled or failed.
  async start() {
    if (this.running || this.state === 'done' || this.state === 'cancelled') return;
    const ctl = this.ctl = new AbortController();
    const { signal } = ctl;
    this.error = null;
    try {
      await this.ensureUrl(signal);
      this.set('uploading');
      for (let conflicts = 0; this.offset < this.size;) {
        const r = await this.retry(signal, async () => {
          if (this.sync) await this.head(signal);
          return this.offset < this.size ? this.patch(signal) : 'ok';
        });
        if (r !== 'conflict') { conflicts = 0; continue; }
        // Offset mismatch, or the server still finishing an interrupted PATCH: back off, HEAD, go on.
        if (++conflicts > 8) throw new ApiError('The server keeps refusing this upload’s next part. Press Resume to try again.', 409);
        this.sync = true;
        await sleep(Math.min(4000, 125 << conflicts), signal);
      }
      forget(this.key);
      this.set('done');
    } catch (e) {
      if (signal.aborted) return; // paused or cancelled
      this.error = e instanceof ApiError ? e : new ApiError(e.message, e.status);
      if (e.status === 404 || e.status === 410) { forget(this.key); this.url = null; this.offset = 0; }
      this.set('error');
    } finally {
      if (this.ctl === ctl) this.ctl = null;
    }
  }

  pause() {
    if (!this.running) return;
    this.ctl?.abort();
    this.sync = true;
    this.set('paused');
  }

  async cancel() {
    this.ctl?.abort();
    forget(this.key);
    this.set('cancelled');
    if (this.url) await terminate(this.url);
  }

  async ensureUrl(signal) {
    const prev = !this.url && previousUpload(this.file);
    if (prev) this.url = prev.url;
    if (this.url) {
      this.set('resuming');
      try {
        await this.retry(signal, () => this.head(signal));
        if (prev) this.resumedAt = this.offset;
        return this.save();
      } catch (e) {
        if (signal.aborted || !prev || !(e.status === 404 || e.status === 410 || e.code === 'wrong_file')) throw e;
        forget(this.key); // expired or deleted on the server, or another file: start over
      }
    }
    this.set('creating');
    await this.retry(signal, async () => {
      const res = await this.send('POST', this.endpoint, signal,
        { 'Upload-Length': String(this.size), 'Upload-Metadata': encodeMetadata(this.metadata) });
      if (res.status !== 201) throw await this.fail(res);
      const loc = res.headers.get('Location');
      if (!loc) throw new ApiError('The server accepted the upload but did not say where to send it.', 201);
      this.url = new URL(loc, this.endpoint).href;
      this.offset = 0;
      this.save(Date.now());
    });
  }

  async head(signal) {
    const res = await this.send('HEAD', this.url, signal);
    if (res.status === 404 || res.status === 410) {
      throw new ApiError('This upload is no longer on the server (it expired or was cancelled). Choose the file again to start over.', res.status);
    }
    if (!res.ok) throw await this.fail(res);
    const off = Number(res.headers.get('Upload-Offset'));
    const len = res.headers.get('Upload-Length');
    if (!Number.isSafeInteger(off) || off < 0 || off > this.size || (len !== null && Number(len) !== this.size)) {
      throw new ApiError('The upload on the server does not match this file.', res.status, 'wrong_file');
    }
    this.offset = off;
    this.sync = false;
    this.onProgress(off);
  }

  // One PATCH of the next slice; XHR because fetch reports no upload progress.
  patch(signal) {
    const start = this.offset;
    const end = Math.min(this.size, start + this.chunkSize);
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(aborted());
      const xhr = new XMLHttpRequest();
      const stop = () => xhr.abort();
      const settle = (fn) => { signal.removeEventListener('abort', stop); fn(); };
      signal.addEventListener('abort', stop, { once: true });
      xhr.open('PATCH', this.url);
      xhr.setRequestHeader('Tus-Resumable', '1.0.0');
      xhr.setRequestHeader('Upload-Offset', String(start));
      xhr.setRequestHeader('Content-Type', 'application/offset+octet-stream');
      xhr.upload.onprogress = (e) => this.onProgress(start + Math.min(e.loaded, end - start));
      xhr.onabort = () => settle(() => reject(aborted()));
      xhr.onerror = () => settle(() => { this.sync = true; reject(new Retryable(describeStatus(0))); });
      xhr.onload = () => settle(() => {
        const s = xhr.status;
        if (s === 204 || s === 200) {
          const off = Number(xhr.getResponseHeader('Upload-Offset'));
          this.offset = Number.isSafeInteger(off) && off >= start && off <= this.size ? off : end;
          this.save();
          this.onProgress(this.offset);
          return resolve('ok');
        }
        if (s === 409) return resolve('conflict');
        this.sync = true;
        let msg = '';
        try { msg = JSON.parse(xhr.responseText).error.message; } catch { /* not JSON */ }
        if (s === 401) session.set(false);
        msg ||= describeStatus(s);
        reject(retryable(s) ? new Retryable(msg, s) : new ApiError(msg, s));
      });
      xhr.send(this.file.slice(start, end));
    });
  }

  async send(method, url, signal, headers) {
    try {
      return await fetch(url, { method, signal, cache: 'no-store', headers: { ...TUS, ...headers } });
    } catch {
      if (signal.aborted) throw aborted();
      throw new Retryable(describeStatus(0));
    }
  }

  async fail(res) {
    const err = await errorFrom(res);
    return retryable(res.status) ? new Retryable(err.message, res.status) : err;
  }

  async retry(signal, fn) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (e) {
        if (signal.aborted) throw aborted();
        if (!(e instanceof Retryable)) throw e;
        if (attempt >= DELAYS.length) throw new ApiError(`${e.message} Gave up after ${attempt + 1} tries; press Resume to try again.`, e.status);
        const prev = this.state;
        this.retryIn = DELAYS[attempt];
        this.error = e;
        this.set('retrying');
        await sleep(this.retryIn, signal);
        this.error = null;
        this.set(prev);
      }
    }
  }

  save(createdAt) {
    const { url, offset, size, file } = this;
    try {
      localStorage.setItem(this.key, JSON.stringify({ url, offset, size, name: file.name, title: this.metadata.title || '',
        createdAt: createdAt || load(this.key)?.createdAt || Date.now(), updatedAt: Date.now() }));
    } catch { /* storage full or disabled */ }
  }
}
