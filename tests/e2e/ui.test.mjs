// Browser test of the web UI against a running stream-hub.
//   HUB_URL=http://127.0.0.1:18501 HUB_TOKEN=... HUB_CLIP=/tmp/clip.mp4 [HUB_CLIP_LARGE=/tmp/big.mp4] \
//     node --test tests/e2e/
// HUB_CLIP / HUB_CLIP_LARGE are made with ffmpeg when not given. Screenshots go to tests/e2e/out/.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';

import { OUT, BASE, TOKEN, SKIP, RUN, hub, launchChromium } from './common.mjs';
const TITLE = `E2E clip ${RUN}`;

function clip(envName, file, seconds, extra) {
  if (process.env[envName]) return process.env[envName];
  const out = path.join(os.tmpdir(), `stream-hub-e2e-${file}`);
  if (!fs.existsSync(out)) {
    execFileSync('ffmpeg', ['-y', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=30',
      '-f', 'lavfi', '-i', 'sine=frequency=440', '-t', String(seconds), '-c:v', 'libx264', ...extra,
      '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-movflags', '+faststart', out]);
  }
  return out;
}

const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

describe('web UI', { skip: SKIP }, () => {
  let browser, context, page, clipPath, largePath, watchHref, videoId;
  const problems = [];

  before(async () => {
    fs.mkdirSync(OUT, { recursive: true });
    clipPath = clip('HUB_CLIP', 'clip.mp4', 10, []);
    largePath = clip('HUB_CLIP_LARGE', 'clip-large.mp4', 16, ['-preset', 'ultrafast', '-qp', '0']);
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1280, height: 860 }, colorScheme: 'light' });
    page = await context.newPage();
    page.setDefaultTimeout(20_000);
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()} (${page.url()})`); });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message} (${page.url()})`));
  });

  after(async () => { await browser?.close(); });

  const shot = (name, p = page) => p.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: true });

  it('signs in with the token and shows the signed-in state', async () => {
    await page.goto(`${BASE}/signin`);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await page.getByRole('link', { name: 'Sign in' }).waitFor(); // header: signed out
    await shot('signin');
    await page.getByLabel('Admin token').fill('not-the-token-0000000000');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('.form-error .notice.error').waitFor();
    problems.length = 0; // the 401 above is logged by the browser on purpose
    await page.getByLabel('Admin token').fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#session', { hasText: 'Signed in' }).waitFor();
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    await page.waitForURL(`${BASE}/`);
  });

  it('uploads a clip with tus and links to it', { timeout: 120_000 }, async () => {
    await page.getByRole('link', { name: 'Upload', exact: true }).click();
    await page.getByRole('heading', { name: 'Upload videos' }).waitFor();
    await page.setInputFiles('#file-input', clipPath);
    const item = page.locator('.upload-item').last();
    const title = item.getByLabel('Title');
    assert.equal(await title.inputValue(), path.basename(clipPath).replace(/\.[^.]+$/, ''));
    await title.fill(TITLE);
    await item.getByRole('button', { name: 'Start upload' }).click();
    await item.and(page.locator('[data-state=done]')).waitFor({ timeout: 90_000 });
    assert.match(await item.locator('.state').textContent(), /Done.*100%/);
    assert.equal(await item.locator('progress').evaluate((p) => p.value), 100);
    const link = item.locator('.done-link a');
    await link.waitFor();
    watchHref = await link.getAttribute('href');
    assert.match(watchHref, /^\/watch\/[^/]+$/);
    videoId = decodeURIComponent(watchHref.split('/').pop());
    await shot('upload-done');
    const v = await (await hub(`/api/videos/${encodeURIComponent(videoId)}`)).json();
    assert.equal(v.title, TITLE);
    assert.equal(v.size, fs.statSync(clipPath).size);
    assert.notEqual(v.status, 'failed', v.error);
  });

  it('lists the video in the library, searches, and updates live from /api/events', { timeout: 60_000 }, async () => {
    await page.getByRole('link', { name: 'Library' }).click();
    const cardEl = page.locator(`.card[data-id="${videoId}"]`);
    await cardEl.waitFor();
    assert.match(await cardEl.locator('.card-title').textContent(), new RegExp(TITLE));
    assert.equal(await cardEl.locator('a').getAttribute('href'), watchHref);
    await page.getByLabel('Search').fill(RUN);
    await page.locator('.count', { hasText: /^1 video matching/ }).waitFor();
    assert.equal(await page.locator('.card').count(), 1);
    await page.getByLabel('Search').fill('');
    await page.locator('.count', { hasText: /^\d+ videos?$/ }).waitFor();

    // Another client creates an upload: the card appears without a reload, then disappears on delete.
    const liveTitle = `Live ${RUN} ünïcødé`;
    const res = await hub('/files/', { method: 'POST', headers: { 'Tus-Resumable': '1.0.0', 'Upload-Length': '1000',
      'Upload-Metadata': `filename ${Buffer.from('live.mp4').toString('base64')},title ${Buffer.from(liveTitle).toString('base64')}` } });
    assert.equal(res.status, 201);
    const liveId = decodeURIComponent(new URL(res.headers.get('location'), BASE).pathname.split('/').pop());
    const live = page.locator(`.card[data-id="${liveId}"]`);
    await live.waitFor({ timeout: 15_000 });
    assert.match(await live.textContent(), new RegExp(`${liveTitle}.*Uploading`));
    await shot('library');
    const del = await hub(`/api/videos/${encodeURIComponent(liveId)}`, { method: 'DELETE' });
    assert.equal(del.status, 204);
    await live.waitFor({ state: 'detached', timeout: 15_000 });
  });

  it('plays the video on its watch page and seeks', { timeout: 90_000 }, async () => {
    await page.locator(`.card[data-id="${videoId}"] a`).click();
    await page.waitForURL(BASE + watchHref);
    await page.getByRole('heading', { name: TITLE }).waitFor();
    const video = page.locator('video');
    await video.waitFor();
    await video.evaluate((v) => { v.muted = true; return v.play(); });
    await page.waitForFunction(() => document.querySelector('video').currentTime > 1, null, { timeout: 20_000 });
    const at = await video.evaluate((v) => new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no seeked event within 15 s')), 15_000);
      v.addEventListener('seeked', () => { clearTimeout(t); resolve(v.currentTime); }, { once: true });
      v.currentTime = 5;
    }));
    assert.ok(Math.abs(at - 5) < 0.5, `currentTime after seeking is ${at}`);
    await page.waitForFunction((t) => document.querySelector('video').currentTime > t + 0.5, at, { timeout: 15_000 });
    assert.equal(await video.evaluate((v) => v.error), null);
    await video.evaluate((v) => v.pause());

    // Edit the description (signed in).
    await page.getByRole('button', { name: 'Edit details' }).click();
    await page.getByLabel('Description').fill(`Made by the browser test ${RUN}.`);
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('.description', { hasText: `Made by the browser test ${RUN}.` }).waitFor();
    await shot('watch');
  });

  it('resumes an upload after pause and reload, at a non-zero offset', { timeout: 180_000 }, async () => {
    const size = fs.statSync(largePath).size;
    assert.ok(size > 32 * 1024 * 1024 + 1, 'HUB_CLIP_LARGE must be larger than one 32 MiB chunk');
    await page.goto(`${BASE}/upload`);
    // Let the first PATCH through and hold the second one, so the pause lands after exactly one chunk.
    let patches = 0;
    let held;
    const secondPatch = new Promise((resolve) => { held = resolve; });
    await page.route('**/files/**', (route) => {
      if (route.request().method() === 'PATCH' && ++patches >= 2) { held(); return; } // never answered
      return route.continue();
    });
    await page.setInputFiles('#file-input', largePath);
    const item = page.locator('.upload-item').last();
    await item.getByRole('button', { name: 'Start upload' }).click();
    await secondPatch;
    await item.getByRole('button', { name: 'Pause' }).click();
    await item.and(page.locator('[data-state=paused]')).waitFor();
    await page.unrouteAll({ behavior: 'ignoreErrors' });

    await page.reload();
    const entry = page.locator('.unfinished li', { hasText: path.basename(largePath) });
    await entry.waitFor();
    assert.match(await entry.textContent(), /stopped at [1-9]\d*%/);
    await shot('upload-unfinished');
    await page.setInputFiles('#file-input', largePath);
    const again = page.locator('.upload-item').last();
    const note = again.locator('.note', { hasText: /Resuming at [1-9]\d*%/ });
    await note.waitFor({ timeout: 30_000 });
    const pct = Number(/Resuming at (\d+)%/.exec(await note.textContent())[1]);
    assert.ok(pct > 0 && pct < 100, `resumed at ${pct}%`);
    await again.and(page.locator('[data-state=done]')).waitFor({ timeout: 120_000 });
    await shot('upload-resumed');
    assert.equal(await page.locator('.unfinished li', { hasText: path.basename(largePath) }).count(), 0);

    // The server holds exactly the file's bytes.
    const href = await again.locator('.done-link a').getAttribute('href');
    const id = decodeURIComponent(href.split('/').pop());
    const v = await (await hub(`/api/videos/${encodeURIComponent(id)}`)).json();
    assert.equal(v.size, size);
    const body = Buffer.from(await (await hub(v.original_url)).arrayBuffer());
    assert.equal(body.length, size);
    assert.equal(sha256(body), sha256(fs.readFileSync(largePath)));
    await hub(`/api/videos/${encodeURIComponent(id)}`, { method: 'DELETE' });
  });

  it('retries after a 503, re-syncs after a 409, and cancels with a tus DELETE', { timeout: 120_000 }, async () => {
    await page.goto(`${BASE}/upload`);
    const before = problems.length;
    // The first PATCH gets a 503 (retried after a backoff), the second a 409 (HEAD, then go on).
    let patches = 0;
    await page.route('**/files/**', (route) => {
      if (route.request().method() !== 'PATCH') return route.continue();
      patches++;
      if (patches === 1) return route.fulfill({ status: 503, contentType: 'application/json', body: '{"error":{"code":"unavailable","message":"Busy, try again."}}' });
      if (patches === 2) return route.fulfill({ status: 409, headers: { 'Tus-Resumable': '1.0.0' }, body: '' });
      return route.continue();
    });
    await page.setInputFiles('#file-input', clipPath);
    let item = page.locator('.upload-item').last();
    await item.getByLabel('Title').fill(`${TITLE} retried`);
    await item.getByRole('button', { name: 'Start upload' }).click();
    await item.and(page.locator('[data-state=done]')).waitFor({ timeout: 60_000 });
    await page.unrouteAll({ behavior: 'ignoreErrors' });
    assert.ok(patches >= 3, `PATCH requests: ${patches}`);
    const href = await item.locator('.done-link a').getAttribute('href');
    const v = await (await hub(`/api/videos/${href.split('/').pop()}`)).json();
    assert.equal(v.size, fs.statSync(clipPath).size);
    const body = Buffer.from(await (await hub(v.original_url)).arrayBuffer());
    assert.equal(sha256(body), sha256(fs.readFileSync(clipPath)));
    await hub(`/api/videos/${v.id}`, { method: 'DELETE' });
    // The browser logs the 503 and 409 it was given on purpose.
    problems.splice(before, problems.length - before, ...problems.slice(before).filter((p) => !/status of (503|409)/.test(p)));

    // Cancel: hold the second PATCH, press Cancel, the upload is gone on the server.
    let held;
    const secondPatch = new Promise((resolve) => { held = resolve; });
    patches = 0;
    await page.route('**/files/**', (route) => {
      if (route.request().method() === 'PATCH' && ++patches >= 2) return held();
      return route.continue();
    });
    await page.setInputFiles('#file-input', largePath);
    item = page.locator('.upload-item').last();
    await item.getByRole('button', { name: 'Start upload' }).click();
    await secondPatch;
    const del = page.waitForRequest((r) => r.method() === 'DELETE' && /\/files\//.test(r.url()));
    await item.getByRole('button', { name: 'Cancel' }).click();
    const delReq = await del;
    await item.and(page.locator('[data-state=cancelled]')).waitFor();
    assert.equal((await delReq.response()).status(), 204);
    await page.unrouteAll({ behavior: 'ignoreErrors' });
    const id = new URL(delReq.url()).pathname.split('/').pop();
    assert.equal((await hub(`/api/videos/${id}`)).status, 404);
    assert.equal(await page.locator('.unfinished li', { hasText: path.basename(largePath) }).count(), 0);
  });

  it('looks right on a phone in dark mode', async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: 'dark', isMobile: true, hasTouch: true });
    const p = await phone.newPage();
    p.on('console', (m) => { if (m.type() === 'error') problems.push(`console (phone): ${m.text()}`); });
    p.on('pageerror', (e) => problems.push(`page error (phone): ${e.message}`));
    await p.goto(`${BASE}/`);
    await p.locator(`.card[data-id="${videoId}"]`).waitFor();
    await shot('library-phone-dark', p);
    await p.goto(BASE + watchHref);
    await p.getByRole('heading', { name: TITLE }).waitFor();
    await p.locator('video').evaluate((v) => v.readyState >= 1 || new Promise((r) => v.addEventListener('loadedmetadata', r, { once: true })));
    await shot('watch-phone-dark', p);
    await p.goto(`${BASE}/upload`);
    await p.getByText('You need to sign in to upload videos.').waitFor(); // this context is signed out
    await shot('upload-signed-out-phone-dark', p);
    await phone.close();
  });

  it('signs out', async () => {
    await page.goto(`${BASE}/`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.locator('#session').getByRole('link', { name: 'Sign in' }).waitFor();
    const s = await page.evaluate(() => fetch('/api/session').then((r) => r.json()));
    assert.equal(s.signed_in, false);
  });

  it('logged no console errors', () => {
    assert.deepEqual(problems, []);
  });
});
