// Watch (`/watch/{id}`): player, details, live status, edit and delete.

import { api, onVideoEvent, session, videoPath } from '../api.js';
import { h, formatBytes, timeEl, statusBadge, pageTitle, notice } from '../util.js';
import { attachSource, loadSpriteCues, cueAt, formatTime } from '../player.js';
import { navigate } from '../nav.js';
import { displayTitle } from './library.js';

export function render(main, [id]) {
  const path = videoPath(id);
  let video = null, gone = false, editing = false, source = null, attaching = false, alive = true;
  let hlsFailed = false, pendingSwitch = null, renditionsKey = '', wantHls = false, cuesUrl = '', chosenLevel = -1;
  const player = h('video', { preload: 'metadata', playsInline: true });
  const controls = playerControls();
  const box = h('div.player', { hidden: true }, player, controls.el);
  const heading = h('h1', 'Loading…'), details = h('div');
  const statusEl = h('div'), info = h('div.video-info', heading, details), actions = h('div.actions'), slot = h('div');
  main.append(h('section.page.watch', box, statusEl, info, actions, slot));
  pageTitle('Video');

  player.addEventListener('error', async () => {
    if (!source) return;
    if (source.kind !== 'original' && video.original_url) return fallBack();
    statusEl.replaceChildren(notice('error', 'This browser cannot play this video. ',
      h('a', { href: video.original_url, download: '' }, 'Download the original file'), ' instead.'));
  });

  // HLS failed for good: play the original, at the same time.
  function fallBack() {
    if (hlsFailed) return;
    hlsFailed = true;
    attach(false);
  }

  // (Re)attaches the source, keeping the position and whether it was playing.
  async function attach(allowHls) {
    const t = player.currentTime, playing = source && !player.paused;
    attaching = true;
    try {
      source?.destroy();
      source = null;
      controls.levels(null);
      source = await attachSource(player, video, {
        allowHls, onFatal: () => fallBack(), onLevels: (hls) => controls.levels(hls),
      });
      if (!alive) { source?.destroy(); return; }
      wantHls = source?.kind !== 'original';
      if (source && t > 0) {
        player.addEventListener('loadedmetadata', () => {
          player.currentTime = t;
          if (playing) player.play().catch(() => {});
        }, { once: true });
      }
    } finally { attaching = false; }
  }

  async function ensurePlayer() {
    const ok = !gone && ['ready', 'processing'].includes(video.status) && (video.original_url || video.hls_url);
    box.hidden = !ok;
    if (!ok) { source?.destroy(); source = null; return; }
    const poster = video.poster_urls?.large || video.thumbnail_url;
    if (poster && player.getAttribute('poster') !== poster) player.poster = poster;
    loadPreviews();
    if (attaching) return;
    const useHls = !!video.hls_url && !hlsFailed;
    const key = (video.media?.renditions || []).join(',') + '|' + (video.media_status || '');
    if (!source) { renditionsKey = key; return attach(useHls); }
    // The HLS playlist appeared (upgrade from the original), or the ladder replaced the first
    // rendition in the master playlist (reload it to get every quality): switch at the same time.
    // While it plays, the switch waits for a pause or the end, so that nothing stutters or
    // interrupts a play() in progress.
    const upgrade = useHls && !wantHls;
    const reload = useHls && source.kind === 'hls.js' && key !== renditionsKey && video.media_status === 'ready';
    if (!upgrade && !reload) { renditionsKey = key; return; }
    if (!player.paused && !player.ended) {
      if (!pendingSwitch) {
        pendingSwitch = () => { pendingSwitch = null; if (alive && video) ensurePlayer(); };
        player.addEventListener('pause', pendingSwitch, { once: true });
      }
      return;
    }
    renditionsKey = key;
    return attach(true);
  }

  async function loadPreviews() {
    const url = video.sprite_vtt_url;
    if (!url || url === cuesUrl) return;
    cuesUrl = url;
    try { controls.cues(await loadSpriteCues(url)); } catch { cuesUrl = ''; }
  }

  // The control bar: play, time, seek bar with previews, quality menu, mute, full screen.
  function playerControls() {
    const play = h('button.ctl.ctl-play', { type: 'button', 'aria-label': 'Play' }, 'Play');
    const time = h('span.ctl-time', '0:00 / 0:00');
    const fill = h('div.seek-fill');
    const thumb = h('div.seek-thumb'), thumbTime = h('span.seek-time');
    const preview = h('div.seek-preview', { hidden: true, 'aria-hidden': 'true' }, thumb, thumbTime);
    const seek = h('div.seek', { role: 'slider', tabIndex: 0, 'aria-label': 'Seek', 'aria-valuemin': '0', 'aria-valuenow': '0' }, fill, preview);
    const quality = h('select.ctl.quality', { 'aria-label': 'Quality', hidden: true });
    const mute = h('button.ctl.mute', { type: 'button', 'aria-label': 'Mute' }, 'Mute');
    const full = h('button.ctl.full', { type: 'button', 'aria-label': 'Full screen' }, 'Full screen');
    let myCues = [], hls = null;
    const toggle = () => (player.paused ? player.play().catch(() => {}) : player.pause());
    play.addEventListener('click', toggle);
    player.addEventListener('click', toggle);
    const sync = () => {
      const d = player.duration, t = player.currentTime;
      time.textContent = `${formatTime(t)} / ${formatTime(d)}`;
      fill.style.width = Number.isFinite(d) && d > 0 ? `${Math.min(100, (t / d) * 100)}%` : '0%';
      seek.setAttribute('aria-valuenow', String(Math.floor(t)));
      if (Number.isFinite(d)) seek.setAttribute('aria-valuemax', String(Math.floor(d)));
      seek.setAttribute('aria-valuetext', time.textContent);
    };
    const playState = () => {
      const p = player.paused;
      play.textContent = p ? 'Play' : 'Pause';
      play.setAttribute('aria-label', p ? 'Play' : 'Pause');
    };
    ['timeupdate', 'durationchange', 'loadedmetadata', 'seeked', 'emptied'].forEach((e) => player.addEventListener(e, sync));
    ['play', 'pause', 'emptied'].forEach((e) => player.addEventListener(e, playState));
    const frac = (e) => {
      const r = seek.getBoundingClientRect();
      return Math.min(1, Math.max(0, (e.clientX - r.left) / r.width));
    };
    seek.addEventListener('click', (e) => {
      if (Number.isFinite(player.duration)) player.currentTime = frac(e) * player.duration;
    });
    seek.addEventListener('keydown', (e) => {
      const step = { ArrowLeft: -5, ArrowRight: 5, ArrowDown: -5, ArrowUp: 5 }[e.key];
      if (step == null || !Number.isFinite(player.duration)) return;
      e.preventDefault();
      player.currentTime = Math.min(player.duration, Math.max(0, player.currentTime + step));
    });
    seek.addEventListener('mousemove', (e) => {
      const d = player.duration;
      if (!Number.isFinite(d) || d <= 0) { preview.hidden = true; return; }
      const f = frac(e), t = f * d, c = cueAt(myCues, t);
      thumbTime.textContent = formatTime(t);
      thumb.hidden = !c;
      if (c) {
        thumb.style.width = `${c.w}px`;
        thumb.style.height = `${c.h}px`;
        thumb.style.backgroundImage = `url("${c.url}")`;
        thumb.style.backgroundPosition = `-${c.x}px -${c.y}px`;
      }
      const w = c ? c.w : 60, bw = seek.clientWidth;
      preview.style.left = `${Math.min(Math.max(0, f * bw - w / 2), Math.max(0, bw - w))}px`;
      preview.hidden = false;
    });
    seek.addEventListener('mouseleave', () => { preview.hidden = true; });
    mute.addEventListener('click', () => {
      player.muted = !player.muted;
      mute.textContent = player.muted ? 'Unmute' : 'Mute';
      mute.setAttribute('aria-label', mute.textContent);
    });
    full.addEventListener('click', () => {
      if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
      else box.requestFullscreen?.().catch(() => {});
    });
    full.hidden = !document.fullscreenEnabled;
    quality.addEventListener('change', () => {
      if (!hls) return;
      chosenLevel = Number(quality.value);
      hls.currentLevel = chosenLevel; // -1: automatic; else switch now (flushes the buffer)
      drawQuality();
    });
    const label = (l) => (l.height ? `${l.height}p` : `${Math.round((l.bitrate || 0) / 1000)} kb/s`);
    function drawQuality() {
      const levels = hls?.levels || [];
      quality.hidden = !levels.length;
      if (!levels.length) { quality.replaceChildren(); return; }
      const playing = levels[hls.currentLevel];
      const order = levels.map((l, i) => i).sort((a, b) => (levels[b].height - levels[a].height) || (levels[b].bitrate - levels[a].bitrate));
      const opts = [h('option', { value: '-1' }, hls.autoLevelEnabled && playing ? `Auto (${label(playing)})` : 'Auto'),
        ...order.map((i) => h('option', { value: String(i) }, label(levels[i])))];
      quality.replaceChildren(...opts);
      quality.value = String(hls.autoLevelEnabled ? -1 : chosenLevel);
    }
    return {
      el: h('div.controls', seek, h('div.ctl-row', play, time, h('span.ctl-gap'), quality, mute, full)),
      levels(x) {
        if (x !== hls) chosenLevel = -1;
        hls = x;
        drawQuality();
      },
      cues(c) { myCues = c; },
    };
  }

  function draw() {
    const v = video;
    pageTitle(displayTitle(v));
    statusEl.replaceChildren(
      gone ? notice('info', 'This video was deleted. ', h('a', { href: '/' }, 'Back to the library'), '.')
        : v.status === 'uploading' ? notice('info', 'This video is still being uploaded. It plays here as soon as the upload is complete.')
          : v.status === 'processing' ? notice('info', 'The server is still processing this video; meanwhile the original file plays.')
            : v.status === 'failed' ? notice('error', v.error || 'Processing this video failed.')
              : mediaStatus(v));
    info.hidden = editing;
    heading.textContent = displayTitle(v); // kept: it holds the focus after navigation
    details.replaceChildren(
      h('p.meta', statusBadge(v.status), h('span', formatBytes(v.size)),
        v.created_at ? h('span', 'Added ', timeEl(v.created_at)) : '', v.original_name ? h('span', v.original_name) : ''),
      v.description ? h('p.description', v.description) : h('p.muted', 'No description.'));
    drawActions();
    ensurePlayer();
  }

  // The pipeline's state: "processing 42%" live, or why it failed (the original still plays).
  function mediaStatus(v) {
    if (v.media_status === 'failed') {
      return notice('error', v.error || 'Processing this video failed.', v.original_url ? ' The original file plays instead.' : '');
    }
    if (v.media_status === 'queued' || v.media_status === 'processing') {
      return notice('info', h('span.media-progress', `processing ${v.progress ?? 0}%`),
        v.hls_url ? ' — it plays already; more qualities follow.' : ' — meanwhile the original file plays.');
    }
    return '';
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
