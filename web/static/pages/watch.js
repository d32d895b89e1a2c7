// Watch (`/watch/{id}`): player, details, live status, edit and delete.

import { api, onVideoEvent, session, videoPath } from '../api.js';
import { h, formatBytes, timeEl, statusBadge, pageTitle, notice } from '../util.js';
import { attachSource } from '../player.js';
import { navigate } from '../nav.js';
import { displayTitle } from './library.js';

export function render(main, [id]) {
  const path = videoPath(id);
  let video = null, gone = false, editing = false, source = null, attaching = false, alive = true;
  const player = h('video', { controls: true, preload: 'metadata', playsInline: true });
  const box = h('div.player', { hidden: true }, player);
  const heading = h('h1', 'Loading…'), details = h('div');
  const statusEl = h('div'), info = h('div.video-info', heading, details), actions = h('div.actions'), slot = h('div');
  main.append(h('section.page.watch', box, statusEl, info, actions, slot));
  pageTitle('Video');

  player.addEventListener('error', async () => {
    if (!source) return;
    if (source.kind !== 'original' && video.original_url) { // HLS failed: play the original
      source = await attachSource(player, video, { allowHls: false });
      return;
    }
    statusEl.replaceChildren(notice('error', 'This browser cannot play this video. ',
      h('a', { href: video.original_url, download: '' }, 'Download the original file'), ' instead.'));
  });

  async function ensurePlayer() {
    const ok = !gone && ['ready', 'processing'].includes(video.status) && (video.original_url || video.hls_url);
    box.hidden = !ok;
    if (!ok) { source?.destroy(); source = null; return; }
    if (video.thumbnail_url) player.poster = video.thumbnail_url;
    if (source || attaching) return;
    attaching = true;
    try { source = await attachSource(player, video); } finally { attaching = false; }
  }

  function draw() {
    const v = video;
    pageTitle(displayTitle(v));
    statusEl.replaceChildren(
      gone ? notice('info', 'This video was deleted. ', h('a', { href: '/' }, 'Back to the library'), '.')
        : v.status === 'uploading' ? notice('info', 'This video is still being uploaded. It plays here as soon as the upload is complete.')
          : v.status === 'processing' ? notice('info', 'The server is still processing this video; meanwhile the original file plays.')
            : v.status === 'failed' ? notice('error', v.error || 'Processing this video failed.') : '');
    info.hidden = editing;
    heading.textContent = displayTitle(v); // kept: it holds the focus after navigation
    details.replaceChildren(
      h('p.meta', statusBadge(v.status), h('span', formatBytes(v.size)),
        v.created_at ? h('span', 'Added ', timeEl(v.created_at)) : '', v.original_name ? h('span', v.original_name) : ''),
      v.description ? h('p.description', v.description) : h('p.muted', 'No description.'));
    drawActions();
    ensurePlayer();
  }

  function drawActions() {
    actions.replaceChildren();
    if (gone || editing) return;
    if (video.original_url && video.status !== 'uploading') {
      actions.append(h('a.btn.secondary', { href: video.original_url, download: video.original_name || '' }, 'Download original'));
    }
    if (session.signedIn) {
      actions.append(h('button.btn.secondary', { type: 'button', on: { click: edit } }, 'Edit details'),
        h('button.btn.danger', { type: 'button', on: { click: askDelete } }, 'Delete'));
    }
  }

  function edit() {
    editing = true;
    const title = h('input#edit-title', { type: 'text', value: video.title || '', maxLength: 300 });
    const desc = h('textarea#edit-desc', { rows: 5, maxLength: 10000 }, video.description || '');
    const err = h('div'), save = h('button.btn', { type: 'submit' }, 'Save');
    const stop = () => { editing = false; slot.replaceChildren(); draw(); actions.querySelector('button')?.focus(); };
    slot.replaceChildren(h('form.card-form.edit', { on: { submit: async (e) => {
      e.preventDefault();
      err.replaceChildren();
      if (!title.value.trim()) { err.append(notice('error', 'The title cannot be empty.')); return title.focus(); }
      save.disabled = true;
      try {
        video = await api(path, { method: 'PATCH', body: { title: title.value.trim(), description: desc.value } });
        stop();
      } catch (ex) {
        err.append(notice('error', ex.message));
        save.disabled = false;
      }
    } } },
      h('h2', 'Edit details'),
      h('div.field', h('label', { for: 'edit-title' }, 'Title'), title),
      h('div.field', h('label', { for: 'edit-desc' }, 'Description'), desc),
      err, h('div.actions', save, h('button.btn.secondary', { type: 'button', on: { click: stop } }, 'Cancel'))));
    draw();
    title.focus();
  }

  function askDelete() {
    const err = h('div');
    const yes = h('button.btn.danger', { type: 'button', on: { click: async () => {
      yes.disabled = true;
      try {
        await api(path, { method: 'DELETE' });
        navigate('/', { flash: `“${displayTitle(video)}” was deleted.` });
      } catch (ex) {
        err.replaceChildren(notice('error', ex.message));
        yes.disabled = false;
      }
    } } }, 'Delete for everyone');
    const no = h('button.btn.secondary', { type: 'button', on: { click: () => slot.replaceChildren() } }, 'Keep it');
    slot.replaceChildren(h('div.confirm', { role: 'alertdialog', 'aria-labelledby': 'del-q' },
      h('p#del-q', 'Delete this video? It disappears from the hub on every node.'), err, h('div.actions', yes, no)));
    no.focus();
  }

  async function load() {
    try {
      const v = await api(path);
      if (alive) { video = v; gone = false; draw(); }
    } catch (e) {
      if (!alive) return;
      const missing = e.status === 404;
      pageTitle('Video not found');
      heading.textContent = missing ? 'Video not found' : 'Could not load the video';
      details.replaceChildren(notice(missing ? 'info' : 'error', missing ? 'There is no video at this address; it may have been deleted. ' : `${e.message} `,
          h('a', { href: '/' }, 'Back to the library'), '.'));
    }
  }

  const unsubscribe = onVideoEvent((ev) => {
    if (ev === 'resync') return load();
    if (ev.id !== id) return;
    if (ev.deleted || !ev.video) {
      gone = true;
      editing = false;
      slot.replaceChildren();
      player.pause();
    } else {
      video = ev.video;
    }
    if (video) draw();
  });
  const unsubSession = session.subscribe(() => video && drawActions());
  load();
  return () => { alive = false; unsubscribe(); unsubSession(); source?.destroy(); };
}
