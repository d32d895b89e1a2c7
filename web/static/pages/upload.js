// Upload (`/upload`): drop or pick several files; each goes up with tus.js with
// its own title, progress, speed, pause/resume/cancel. Uploads live at module
// level, so they go on while the person browses other pages.

import { api, onVideoEvent, session, videoPath } from '../api.js';
import { h, svg, formatBytes, timeEl, pageTitle, notice } from '../util.js';
import { TusUpload, fingerprint, previousUpload, storedUploads, forget, terminate } from '../tus.js';

const items = [];
let listEl = null;
let refresh = () => {};
let seq = 0;

const pct = (a, b) => (b > 0 ? Math.floor((a / b) * 100) : 0);
const baseName = (name) => name.replace(/\.[^.]+$/, '') || name;
const ICON = '<svg aria-hidden="true" viewBox="0 0 24 24" width="40" height="40"><path d="M12 16V4m0 0L7 9m5-5 5 5M4 16v3a1 1 0 0 0 1 1h14a1 1 0 0 0 1-1v-3" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"/></svg>';

function guard(e) { e.preventDefault(); e.returnValue = ''; }
const updateGuard = () => window[items.some((it) => it.upload?.running) ? 'addEventListener' : 'removeEventListener']('beforeunload', guard);

class Item {
  constructor(file) {
    this.file = file;
    this.key = fingerprint(file);
    this.prev = previousUpload(file);
    this.upload = null;
    this.samples = [];
    this.sent = this.prev?.offset || 0;
    this.problem = file.size ? '' : 'This file is empty; there is nothing to upload.';
    const id = `up${++seq}`;
    const btn = (cls, label, click) => h(`button.btn${cls}`, { type: 'button', on: { click } }, label);
    this.title = h('input', { id, type: 'text', maxLength: 300, value: this.prev?.title || baseName(file.name) });
    this.bar = h('progress', { max: 100, value: 0, 'aria-label': `Upload progress of ${file.name}` });
    this.stateEl = h('span.state', { 'aria-live': 'polite' });
    this.numbers = h('span.numbers');
    this.note = h('p.note');
    this.err = h('p.error-text', { role: 'alert' });
    this.doneEl = h('p.done-link');
    this.bStart = btn('', 'Start upload', () => this.start());
    this.bPause = btn('.secondary', 'Pause', () => this.upload.pause());
    this.bResume = btn('', 'Resume', () => this.start());
    this.bCancel = btn('.danger', 'Cancel', () => this.cancel());
    this.bRemove = btn('.secondary', 'Remove', () => this.remove());
    this.el = h('li.upload-item',
      h('div.file-line', h('strong.file-name', file.name), h('span.muted', formatBytes(file.size))),
      h('div.field', h('label', { for: id }, 'Title'), this.title),
      this.bar, h('div.progress-line', this.stateEl, this.numbers), this.note, this.err, this.doneEl,
      h('div.actions', this.bStart, this.bPause, this.bResume, this.bCancel, this.bRemove));
    this.update();
  }

  get state() { return this.upload?.state || 'idle'; }

  start() {
    if (this.problem) return;
    const title = this.title.value.trim() || baseName(this.file.name);
    this.title.value = title;
    this.upload ||= new TusUpload(this.file, {
      metadata: { filename: this.file.name, filetype: this.file.type, title },
      onProgress: (sent) => {
        this.sent = sent;
        const now = performance.now();
        this.samples.push([now, sent]);
        while (this.samples.length > 2 && now - this.samples[0][0] > 3000) this.samples.shift();
        this.update();
      },
      onState: (s) => this.changed(s),
    });
    this.samples = [];
    this.upload.start();
  }

  async cancel() {
    try {
      if (this.upload) await this.upload.cancel();
      else { await terminate(this.prev.url); forget(this.key); this.remove(); }
    } catch (e) {
      this.failure = `The server did not confirm the cancellation: ${e.message}`;
      this.update();
    }
    refresh();
  }

  remove() {
    items.splice(items.indexOf(this), 1);
    this.el.remove();
    refresh();
  }

  async changed(s) {
    if (s === 'paused' || s === 'error') this.samples = [];
    updateGuard();
    this.update();
    if (s === 'done') {
      // Follow the video's own URLs; apply a title changed before resuming.
      const id = videoPath(this.upload.id);
      const title = this.title.value.trim();
      try {
        this.video = await api(id);
        if (title && this.video.title !== title) this.video = await api(id, { method: 'PATCH', body: { title } });
      } catch (e) {
        this.failure = `Uploaded, but: ${e.message}`;
      }
      this.update();
    }
    if (/done|cancelled|error/.test(s)) refresh();
  }

  update() {
    const st = this.state, u = this.upload, size = this.file.size;
    const sent = st === 'done' ? size : this.sent;
    const p = pct(sent, size);
    const fresh = st === 'idle' && !this.prev;
    this.el.dataset.state = st;
    this.bar.value = p;
    this.bar.hidden = fresh;
    const text = {
      idle: this.problem ? 'Cannot upload' : this.prev ? `Partly uploaded before (${pct(this.prev.offset, size)}%)` : 'Ready to upload',
      creating: 'Starting…',
      resuming: 'Checking what the server already has…',
      uploading: `Uploading… ${p}%`,
      retrying: `Connection problem; trying again in ${Math.round(u?.retryIn / 1000)} s…`,
      paused: `Paused at ${p}%`,
      done: 'Done — 100%',
      error: 'Stopped',
      cancelled: 'Cancelled',
    }[st];
    if (this.stateEl.textContent !== text) this.stateEl.textContent = text;
    const s = this.samples, dt = s.length > 1 ? (s[s.length - 1][0] - s[0][0]) / 1000 : 0;
    const speed = st === 'uploading' && dt > 0.2 ? (s[s.length - 1][1] - s[0][1]) / dt : 0;
    this.numbers.textContent = fresh ? '' : `${formatBytes(sent)} of ${formatBytes(size)}${speed ? ` · ${formatBytes(speed)}/s` : ''}`;
    this.note.textContent = u?.resumedAt ? `Resuming at ${pct(u.resumedAt, size)}% — ${formatBytes(u.resumedAt)} were already on the server.`
      : st === 'idle' && this.prev ? 'It continues where it stopped.' : '';
    this.note.hidden = !this.note.textContent;
    this.err.textContent = (st === 'error' || st === 'retrying' ? u.error?.message : '') || this.failure || this.problem;
    this.err.hidden = !this.err.textContent;
    this.title.readOnly = st !== 'idle';
    const running = u?.running, stopped = st === 'paused' || st === 'error';
    this.bStart.hidden = st !== 'idle' || !!this.problem;
    this.bStart.textContent = this.prev ? 'Resume upload' : 'Start upload';
    this.bPause.hidden = !running;
    this.bResume.hidden = !stopped;
    this.bCancel.hidden = !(running || stopped || (st === 'idle' && this.prev));
    this.bRemove.hidden = !(st === 'done' || st === 'cancelled' || fresh);
    this.doneEl.hidden = st !== 'done';
    if (st === 'done') {
      const v = this.video;
      // The pipeline's state, live from /api/events: "processing 42%", then "ready" (or why it failed).
      const ms = v?.media_status;
      const media = !v ? '' : v.status !== 'ready' ? (v.status === 'processing' ? 'still processing' : v.status)
        : ms === 'queued' || ms === 'processing' ? `processing ${v.progress ?? 0}%`
          : ms === 'failed' ? `processing failed: ${v.error || 'unknown error'}` : 'ready';
      this.doneEl.replaceChildren('Uploaded. ', h('a', { href: v?.watch_url || `/watch/${encodeURIComponent(u.id)}` }, `Watch “${v?.title || this.title.value}”`),
        ...(media ? [' — ', h('span.media-state', media)] : []));
    }
  }
}

function addFiles(files) {
  let first = null;
  for (const file of files) {
    let it = items.find((x) => x.key === fingerprint(file) && !/done|cancelled/.test(x.state));
    if (!it) {
      items.push(it = new Item(file));
      listEl?.append(it.el);
      if (it.prev) it.start(); // chosen again after a reload: go on right away
    }
    first ||= it;
  }
  refresh();
  first?.title.focus();
}

function unfinished() {
  const mine = new Set(items.map((it) => it.key));
  const rest = storedUploads().filter((e) => !mine.has(e.key));
  return rest.length ? h('section.unfinished', { 'aria-labelledby': 'unfinished-h' },
    h('h2#unfinished-h', 'Unfinished uploads'),
    h('p.muted', 'These uploads stopped before they were complete. Choose the same file again above to continue where it stopped.'),
    h('ul', rest.map((e) => {
      const discard = h('button.btn.small.secondary', { type: 'button', on: { click: async () => {
        discard.disabled = true;
        try { await terminate(e.url); forget(e.key); refresh(); } catch (err) {
          discard.disabled = false;
          discard.after(h('span.error-text', { role: 'alert' }, err.message));
        }
      } } }, 'Discard');
      return h('li', h('span', h('strong', e.title || e.name), h('span.muted', ` (${e.name}, ${formatBytes(e.size)})`)),
        h('span.muted', `stopped at ${pct(e.offset, e.size)}%`, e.updatedAt ? [', ', timeEl(new Date(e.updatedAt).toISOString())] : ''),
        discard);
    }))) : '';
}

export function render(main) {
  pageTitle('Upload');
  const section = h('section.page');
  main.append(section);

  const draw = () => {
    listEl = null;
    refresh = () => {};
    const head = h('h1', 'Upload videos');
    if (!session.signedIn) {
      section.replaceChildren(head, session.signedIn === null ? h('p.muted', 'Checking whether you are signed in…')
        : notice('info', h('p', 'You need to sign in to upload videos.'), h('p', h('a.btn', { href: '/signin?next=/upload' }, 'Sign in'))));
      return;
    }
    const input = h('input#file-input.visually-hidden', { type: 'file', multiple: true, accept: 'video/*' });
    input.addEventListener('change', () => { addFiles([...input.files]); input.value = ''; });
    const drop = h('div.drop', input, h('label', { for: input.id }, svg(ICON),
      h('span.drop-main', 'Drop video files here'), h('span.muted', 'or'), h('span.btn.secondary.fake', 'Choose files')));
    let depth = 0;
    const over = (on) => drop.classList.toggle('over', on);
    drop.addEventListener('dragenter', (e) => { e.preventDefault(); depth++; over(true); });
    drop.addEventListener('dragleave', () => { if (--depth <= 0) { depth = 0; over(false); } });
    drop.addEventListener('dragover', (e) => e.preventDefault());
    drop.addEventListener('drop', (e) => { e.preventDefault(); depth = 0; over(false); addFiles([...e.dataTransfer.files]); });

    listEl = h('ul.uploads', { 'aria-label': 'Files to upload' }, items.map((it) => it.el));
    const idle = () => items.filter((it) => it.state === 'idle' && !it.problem && !it.prev);
    const toolbar = h('div.toolbar', h('button.btn', { type: 'button', on: { click: () => idle().forEach((it) => it.start()) } }, 'Start all'));
    const slot = h('div');
    refresh = () => { toolbar.hidden = idle().length < 2; slot.replaceChildren(unfinished()); };
    section.replaceChildren(head,
      h('p.muted', 'Uploads continue where they stopped after a lost connection, a pause, or a reload of this page (choose the same file again).'),
      drop, toolbar, listEl, slot);
    refresh();
  };

  draw();
  const unsubscribe = session.subscribe(draw);
  // Finished uploads follow their video's processing without a reload.
  const unsubVideos = onVideoEvent((ev) => {
    for (const it of items) {
      if (it.state !== 'done' || !it.upload) continue;
      if (ev === 'resync') {
        api(videoPath(it.upload.id)).then((v) => { it.video = v; it.update(); }).catch(() => {});
      } else if (ev.id === it.upload.id && ev.video) {
        it.video = ev.video;
        it.update();
      }
    }
  });
  // A file dropped next to the drop area must not replace the page.
  const block = (e) => e.preventDefault();
  window.addEventListener('dragover', block);
  window.addEventListener('drop', block);
  return () => {
    unsubscribe();
    unsubVideos();
    window.removeEventListener('dragover', block);
    window.removeEventListener('drop', block);
    listEl = null;
    refresh = () => {};
  };
}
