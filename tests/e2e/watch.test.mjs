// Browser test of the watch page's HLS player against a running stream-hub (with its media pipeline):
// uploads a generated 8 s 640x360 H.264/AAC clip on the upload page (which follows the processing live),
// waits until the pipeline has the full ladder (media_status ready, hls_url), then in Chromium: plays
// through hls.js (MSE), switches
// to each rendition from the quality menu, seeks with the seek bar, and hovers it for a sprite preview.
//   HUB_URL=http://127.0.0.1:18501 HUB_TOKEN=... [HUB_WATCH_CLIP=/tmp/c.mp4] node --test tests/e2e/watch.test.mjs
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

import { OUT, BASE, TOKEN, SKIP, RUN, hub, launchChromium } from './common.mjs';
const TITLE = `Watch clip ${RUN}`;

function makeClip() {
  if (process.env.HUB_WATCH_CLIP) return process.env.HUB_WATCH_CLIP;
  const out = path.join(os.tmpdir(), `stream-hub-e2e-watch-${RUN}.mp4`);
  execFileSync('ffmpeg', ['-nostdin', '-y', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=25',
    '-f', 'lavfi', '-i', 'sine=frequency=440', '-t', '8', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-c:a', 'aac',
    '-movflags', '+faststart', out]);
  return out;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The page's own parsing, for the expected preview positions.
function vttCues(text) {
  const cues = [], lines = text.replace(/\r\n?/g, '\n').split('\n');
  const ts = (s) => s.split(':').map(Number).reduce((a, x) => a * 60 + x, 0);
  for (let i = 0; i < lines.length; i++) {
    const m = /^\s*([\d:.]+)\s+-->\s+([\d:.]+)/.exec(lines[i]);
    const f = m && /^(.*)#xywh=(\d+),(\d+),(\d+),(\d+)$/.exec((lines[i + 1] || '').trim());
    if (f) cues.push({ start: ts(m[1]), end: ts(m[2]), file: f[1], x: +f[2], y: +f[3], w: +f[4], h: +f[5] });
  }
  return cues;
}

describe('watch page (HLS)', { skip: SKIP }, () => {
  let browser, page, id, video, clipPath, ownClip = null;
  const problems = [];

  before(async () => {
    fs.mkdirSync(OUT, { recursive: true });
    clipPath = makeClip();
    if (!process.env.HUB_WATCH_CLIP) ownClip = clipPath;
    browser = await launchChromium();
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
    page = await context.newPage();
    page.setDefaultTimeout(20_000);
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()} (${page.url()})`); });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message} (${page.url()})`));
  });

  after(async () => {
    await browser?.close();
    if (id) await hub(`/api/videos/${encodeURIComponent(id)}`, { method: 'DELETE' }).catch(() => {});
    if (ownClip) fs.rmSync(ownClip, { force: true });
  });

  it('uploads on the upload page, which shows "processing N%" then "ready" live', { timeout: 180_000 }, async () => {
    await page.goto(`${BASE}/signin`);
    await page.getByLabel('Admin token').fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#session', { hasText: 'Signed in' }).waitFor();
    await page.goto(`${BASE}/upload`);
    await page.setInputFiles('#file-input', clipPath);
    const item = page.locator('.upload-item').last();
    await item.getByLabel('Title').fill(TITLE);
    // Every text the item's processing state shows, in order (it changes without a reload).
    await page.evaluate(() => {
      window.__states = [];
      new MutationObserver(() => {
        for (const e of document.querySelectorAll('.upload-item .media-state')) {
          if (window.__states.at(-1) !== e.textContent) window.__states.push(e.textContent);
        }
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    });
    await item.getByRole('button', { name: 'Start upload' }).click();
    await item.and(page.locator('[data-state=done]')).waitFor({ timeout: 60_000 });
    const href = await item.locator('.done-link a').getAttribute('href');
    id = decodeURIComponent(href.split('/').pop());
    await item.locator('.media-state', { hasText: /^ready$/ }).waitFor({ timeout: 120_000 });
    const states = await page.evaluate(() => window.__states);
    assert.ok(states.some((x) => /^processing \d+%$/.test(x)), `states shown: ${states}`);
    assert.equal(states.at(-1), 'ready');
  });

  it('the pipeline made HLS, posters and the sprite', { timeout: 130_000 }, async () => {
    const end = Date.now() + 120_000;
    for (;;) {
      video = await (await hub(`/api/videos/${encodeURIComponent(id)}`)).json();
      if (video.media_status === 'failed') assert.fail(`processing failed: ${video.error}`);
      if (video.hls_url && video.media_status === 'ready' && video.sprite_vtt_url) break;
      if (Date.now() > end) assert.fail(`not ready after 120 s: ${JSON.stringify(video)}`);
      await sleep(500);
    }
    assert.ok(video.poster_urls?.large || video.thumbnail_url);
  });

  it('plays through hls.js, with the poster', { timeout: 60_000 }, async () => {
    await page.goto(`${BASE}/watch/${encodeURIComponent(id)}`);
    await page.getByRole('heading', { name: TITLE }).waitFor();
    const v = page.locator('.player video[data-engine="hls.js"]');
    await v.waitFor({ state: 'attached' });
    assert.match(await v.evaluate((el) => el.src), /^blob:/); // MSE
    assert.equal(await v.evaluate((el) => el.getAttribute('poster')), video.poster_urls?.large || video.thumbnail_url);
    await page.waitForFunction(() => document.querySelector('.player video').__hls?.levels?.length > 0);
    await v.evaluate((el) => { el.muted = true; });
    await page.locator('.player .controls button.ctl-play').click();
    await page.waitForFunction(() => document.querySelector('.player video').currentTime > 1, null, { timeout: 20_000 });
    await page.screenshot({ path: path.join(OUT, 'watch-hls.png'), fullPage: true });
  });

  it('switches to each rendition from the quality menu, then back to Auto', { timeout: 90_000 }, async () => {
    const levels = await page.evaluate(() => document.querySelector('.player video').__hls.levels.map((l) => l.height));
    assert.deepEqual([...levels].sort(), video.media.renditions.map((r) => parseInt(r, 10)).sort(),
      `levels ${levels} vs renditions ${video.media.renditions}`);
    const menu = page.getByLabel('Quality');
    const options = await menu.locator('option').evaluateAll((os) => os.map((o) => [o.value, o.textContent]));
    assert.match(options[0][1], /^Auto/);
    assert.equal(options.length, levels.length + 1);
    for (const [value, label] of options.slice(1)) {
      const i = Number(value);
      assert.equal(label, `${levels[i]}p`);
      await page.evaluate(() => { const el = document.querySelector('.player video'); el.currentTime = 0.5; return el.play(); });
      await menu.selectOption(value);
      await page.waitForFunction((n) => {
        const el = document.querySelector('.player video');
        return el.__hls.currentLevel === n && el.dataset.level === String(n) && !el.__hls.autoLevelEnabled;
      }, i, { timeout: 20_000 });
      // and it goes on playing in that rendition
      const t = await page.evaluate(() => document.querySelector('.player video').currentTime);
      await page.waitForFunction((x) => document.querySelector('.player video').currentTime > x + 0.3, t, { timeout: 20_000 });
    }
    await menu.selectOption('-1');
    await page.waitForFunction(() => document.querySelector('.player video').__hls.autoLevelEnabled);
    // Auto shows the level that plays.
    await page.waitForFunction(() => /^Auto \(\d+p\)$/.test(document.querySelector('.player select.quality option[value="-1"]').textContent));
  });

  it('seeks to 5 s with the seek bar and plays from there', { timeout: 60_000 }, async () => {
    const el = page.locator('.player video');
    const duration = await el.evaluate((v) => v.duration);
    assert.ok(duration > 7 && duration < 9, `duration ${duration}`);
    await el.evaluate((v) => v.play());
    const bar = page.locator('.player .seek');
    const box = await bar.boundingBox();
    // The listener is in place before the click (a locator's evaluate could come after it).
    await el.evaluate((v) => {
      window.__seeked = new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no seeked event within 15 s')), 15_000);
        v.addEventListener('seeked', () => { clearTimeout(t); resolve(v.currentTime); }, { once: true });
      });
    });
    await page.mouse.click(box.x + (box.width * 5) / duration, box.y + box.height / 2);
    const seeked = page.evaluate(() => window.__seeked);
    const at = await seeked;
    assert.ok(Math.abs(at - 5) < 0.3, `currentTime after seeking is ${at}`);
    await page.waitForFunction((t) => document.querySelector('.player video').currentTime > t + 0.5, at, { timeout: 15_000 });
    assert.equal(await el.evaluate((v) => v.error), null);
    await el.evaluate((v) => v.pause());
  });

  it('shows a sprite preview when hovering the seek bar', async () => {
    const vtt = await (await fetch(BASE + video.sprite_vtt_url)).text();
    const cues = vttCues(vtt);
    assert.ok(cues.length > 1, vtt);
    const duration = await page.locator('.player video').evaluate((v) => v.duration);
    const bar = page.locator('.player .seek');
    const box = await bar.boundingBox();
    for (const c of [cues[0], cues.find((x) => x.start <= 4 && x.end > 4) || cues[1]]) {
      const t = (c.start + Math.min(c.end, duration)) / 2;
      await page.mouse.move(box.x + (box.width * t) / duration, box.y + box.height / 2);
      const thumb = page.locator('.player .seek-preview:not([hidden]) .seek-thumb');
      await thumb.waitFor();
      const got = await thumb.evaluate((e) => {
        const cs = getComputedStyle(e);
        return { pos: cs.backgroundPosition, img: cs.backgroundImage, w: cs.width };
      });
      const [x, y] = got.pos.split(' ').map(parseFloat);
      assert.deepEqual([Math.abs(x), Math.abs(y)], [c.x, c.y], `background-position ${got.pos} for cue ${JSON.stringify(c)}`);
      assert.ok(got.img.includes(`/thumbs/${c.file}`), got.img);
      assert.equal(got.w, `${c.w}px`);
    }
    // the sprite image itself loads
    const img = await page.locator('.player .seek-thumb').evaluate((e) => getComputedStyle(e).backgroundImage.slice(5, -2));
    assert.equal((await fetch(img)).status, 200);
    await page.screenshot({ path: path.join(OUT, 'watch-preview.png') });
    await page.mouse.move(box.x + box.width / 2, box.y + 200);
    await page.locator('.player .seek-preview').waitFor({ state: 'hidden' });
  });

  it('falls back to the original through range requests when HLS fails for good', { timeout: 60_000 }, async () => {
    // A separate page whose every HLS request fails (as when the streams storage is lost): hls.js
    // gives up, the page plays original_url, and the browser fetches it with Range requests.
    const context = await browser.newContext();
    const broken = await context.newPage();
    broken.setDefaultTimeout(20_000);
    const ranges = [];
    await broken.route('**/media/*/hls/**', (route) => route.fulfill({ status: 503, body: 'storage lost' }));
    broken.on('request', (r) => { if (r.url().endsWith('/original') && r.headers().range) ranges.push(r.headers().range); });
    try {
      await broken.goto(`${BASE}/watch/${encodeURIComponent(id)}`);
      const v = broken.locator('.player video[data-engine="original"]');
      await v.waitFor({ state: 'attached', timeout: 30_000 });
      assert.equal(await v.evaluate((el) => new URL(el.src).pathname), new URL(video.original_url, BASE).pathname);
      await v.evaluate((el) => { el.muted = true; return el.play(); });
      await broken.waitForFunction(() => document.querySelector('.player video').currentTime > 1, null, { timeout: 20_000 });
      await v.evaluate((el) => { el.currentTime = 6; });
      await broken.waitForFunction(() => document.querySelector('.player video').currentTime > 6.3, null, { timeout: 20_000 });
      assert.ok(ranges.length > 0, 'the original was fetched with Range requests');
      assert.equal(await v.evaluate((el) => el.error), null);
    } finally {
      await context.close();
    }
  });

  it('left no console or page errors', () => {
    assert.deepEqual(problems, []);
  });
});
