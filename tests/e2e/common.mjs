// What every browser test shares: the hub under test, the Chromium flags of
// shared/TESTING.md, the authenticated fetch, the output directory.
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const OUT = path.join(HERE, 'out');
export const BASE = (process.env.HUB_URL || '').replace(/\/+$/, '');
export const TOKEN = process.env.HUB_TOKEN || '';
export const SKIP = !BASE || !TOKEN ? 'set HUB_URL and HUB_TOKEN to a running stream-hub' : false;

// Exactly the flags of shared/TESTING.md (Chromium + Playwright): without
// --host-resolver-rules Chromium sends DNS look-ups out at every start.
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--autoplay-policy=no-user-gesture-required', '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1'];

export const launchChromium = () =>
  chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });

// A name unique to this run, for titles.
export const RUN = `${Date.now().toString(36)}${crypto.randomBytes(2).toString('hex')}`;

// fetch against the hub with the admin token.
export function hub(pathname, init = {}) {
  const headers = { Authorization: `Bearer ${TOKEN}`, ...(init.headers || {}) };
  return fetch(BASE + pathname, { ...init, headers });
}
