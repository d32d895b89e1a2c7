// Chooses what a <video> plays, and the watch page's controls.
// attachSource(): hls_url through native HLS where the browser has it (Safari), else through
// hls.js (/static/vendor/hls.js, bundled from web/player, loaded here on first use only), else
// original_url (served with Range, so seeking works). Callers use only this seam:
// { kind: 'hls-native' | 'hls.js' | 'original', url, hls?, destroy() }.

let hlsModule = null;
const loadHls = () => (hlsModule ||= import('./vendor/hls.js').then((m) => m.default).catch((e) => { hlsModule = null; throw e; }));

// Native HLS: Safari (and iOS browsers). Chromium may claim some HLS support; it plays
// through hls.js (MSE), which gives the quality menu.
const nativeHls = (video) => !!video.canPlayType('application/vnd.apple.mpegurl') && !navigator.userAgentData;

// onFatal(): hls.js gave up (fatal error it could not recover from); the caller falls back.
export async function attachSource(video, v, { allowHls = true, onFatal = () => {}, onLevels = () => {} } = {}) {
  if (allowHls && v.hls_url) {
    if (nativeHls(video)) {
      video.src = v.hls_url;
      video.dataset.engine = 'hls-native';
      return { kind: 'hls-native', url: v.hls_url, destroy: () => { video.removeAttribute('src'); video.load(); } };
    }
    let Hls = null;
    try { Hls = await loadHls(); } catch { /* no bundle: the original plays */ }
    if (Hls?.isSupported()) {
      // No worker: the hub's CSP allows no blob: workers (the transmuxer runs on the page).
      const hls = new Hls({ enableWorker: false, capLevelToPlayerSize: false, startLevel: -1 });
      let recovered = false, dead = false;
      hls.on(Hls.Events.ERROR, (_, d) => {
        if (!d.fatal || dead) return;
        if (d.type === Hls.ErrorTypes.MEDIA_ERROR && !recovered) { recovered = true; hls.recoverMediaError(); return; }
        dead = true;
        onFatal(d);
      });
      hls.on(Hls.Events.MANIFEST_PARSED, () => onLevels(hls));
      hls.on(Hls.Events.LEVEL_SWITCHED, (_, d) => { video.dataset.level = String(d.level); onLevels(hls); });
      hls.loadSource(v.hls_url);
      hls.attachMedia(video);
      video.__hls = hls; // for tests and the page's quality menu
      video.dataset.engine = 'hls.js';
      return {
        kind: 'hls.js', url: v.hls_url, hls,
        destroy: () => {
          dead = true;
          hls.destroy();
          if (video.__hls === hls) { delete video.__hls; delete video.dataset.level; }
        },
      };
    }
  }
  const url = v.original_url;
  if (!url) return null;
  video.src = url;
  video.dataset.engine = 'original';
  return { kind: 'original', url, destroy: () => { video.removeAttribute('src'); video.load(); } };
}

// Seek previews: the cues of a WebVTT sprite index (`sprite_000.jpg#xywh=x,y,w,h`), each
// {start, end, url, x, y, w, h} with url resolved against the VTT's own URL.
export async function loadSpriteCues(vttUrl, signal) {
  const res = await fetch(vttUrl, { signal, credentials: 'same-origin' });
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return parseSpriteVtt(await res.text(), new URL(vttUrl, location.href));
}

const ts = (s) => {
  const p = s.trim().split(':').map(Number);
  return p.reduce((a, x) => a * 60 + x, 0);
};

export function parseSpriteVtt(text, base) {
  const cues = [];
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^\s*([\d:.]+)\s+-->\s+([\d:.]+)/.exec(lines[i]);
    if (!m) continue;
    const target = (lines[i + 1] || '').trim();
    const f = /^(.*)#xywh=(\d+),(\d+),(\d+),(\d+)$/.exec(target);
    if (!f) continue;
    cues.push({ start: ts(m[1]), end: ts(m[2]), url: new URL(f[1], base).href, x: +f[2], y: +f[3], w: +f[4], h: +f[5] });
  }
  return cues;
}

export function cueAt(cues, t) {
  let best = null;
  for (const c of cues) {
    if (t >= c.start && t < c.end) return c;
    if (c.start <= t) best = c;
  }
  return best || cues[0] || null;
}

export function formatTime(s) {
  if (!Number.isFinite(s) || s < 0) s = 0;
  s = Math.floor(s);
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = String(s % 60).padStart(2, '0');
  return hh ? `${hh}:${String(mm).padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}
