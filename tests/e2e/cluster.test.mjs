// Browser test of the cluster page (/cluster): two hubs of a cluster (started here, on loopback,
// joined by P2P_SEEDS) list each other alive; when one is killed (SIGKILL) its row turns suspect,
// then dead, live, without a reload. The run.sh hub runs alone: its nav hides the Cluster link.
//   HUB_BINARY=build/stream-hub HUB_URL=... HUB_TOKEN=... node --test tests/e2e/cluster.test.mjs
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import dgram from 'node:dgram';
import path from 'node:path';
import { spawn, execFileSync } from 'node:child_process';

import { OUT, BASE, SKIP, launchChromium } from './common.mjs';

const BIN = process.env.HUB_BINARY || '';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A port free for TCP and UDP on 127.0.0.1.
async function freePort() {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const s = net.createServer().once('error', reject).listen(0, '127.0.0.1', () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
    });
    const ok = await new Promise((resolve) => {
      const u = dgram.createSocket('udp4');
      u.once('error', () => resolve(false));
      u.bind(port, '127.0.0.1', () => u.close(() => resolve(true)));
    });
    if (ok) return port;
  }
}

async function startHub(name, home, http, gossip, seed, key) {
  fs.mkdirSync(home, { recursive: true });
  const log = fs.openSync(path.join(home, 'hub.log'), 'a');
  const env = { ...process.env, HTTP_BIND: '127.0.0.1', HTTP_PORT: String(http), DATA_DIR: path.join(home, 'data'),
    STATE_DIR: path.join(home, 'state'), LOGS_DIR: path.join(home, 'logs'), TEMP_DIR: path.join(home, 'tmp'),
    ADMIN_TOKEN: 'cluster-e2e-token-0123456789', P2P_ENABLED: 'true', P2P_BIND: '127.0.0.1', P2P_PORT: String(gossip),
    P2P_DISCOVERY: 'static', P2P_SEEDS: `127.0.0.1:${seed}`, P2P_CLUSTER_KEY: key, P2P_NODE_NAME: name };
  const child = spawn(BIN, ['serve'], { env, cwd: home, stdio: ['ignore', log, log] });
  fs.closeSync(log);
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`${name} exited: ${fs.readFileSync(path.join(home, 'hub.log'), 'utf8').slice(-2000)}`);
    try { if ((await fetch(`http://127.0.0.1:${http}/healthz`)).ok) return child; } catch { /* not yet */ }
    await sleep(100);
  }
  throw new Error(`${name} did not start`);
}

describe('cluster page', { skip: SKIP || (!BIN && 'set HUB_BINARY') }, () => {
  let browser, page, home, a, b, httpA;
  const problems = [];

  before(async () => {
    fs.mkdirSync(OUT, { recursive: true });
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-e2e-cluster-'));
    const key = execFileSync(BIN, ['keygen'], { encoding: 'utf8' }).trim();
    const [gA, gB] = [await freePort(), await freePort()];
    httpA = await freePort();
    a = await startHub('alpha', path.join(home, 'a'), httpA, gA, gA, key);
    b = await startHub('beta', path.join(home, 'b'), await freePort(), gB, gA, key);
    browser = await launchChromium();
    page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
    page.setDefaultTimeout(20_000);
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  });

  after(async () => {
    await browser?.close();
    for (const c of [a, b]) if (c && c.exitCode === null) c.kill('SIGKILL');
    if (home) fs.rmSync(home, { recursive: true, force: true });
  });

  it('hides the Cluster link on a hub that runs alone', async () => {
    await page.goto(`${BASE}/`);
    await page.waitForFunction(() => document.querySelector('[data-nav="cluster"]')?.hidden === true);
    await page.goto(`${BASE}/cluster`);
    await page.getByText('This hub runs alone').waitFor();
  });

  it('lists both hubs alive, with how each was found', async () => {
    await page.goto(`http://127.0.0.1:${httpA}/`);
    const link = page.locator('[data-nav="cluster"]');
    await link.waitFor({ state: 'visible' });
    await link.click();
    await page.getByRole('heading', { name: 'Cluster' }).waitFor();
    await page.locator('tr[data-name="beta"][data-state="alive"]').waitFor();
    const self = page.locator('tr[data-name="alpha"]');
    assert.match(await self.textContent(), /this hub/);
    assert.equal(await self.getAttribute('data-state'), 'alive');
    assert.match(await page.locator('tr[data-name="beta"]').textContent(), /gossip|P2P_SEEDS/);
    assert.match(await page.locator('p.count').textContent(), /2 alive/);
    await page.screenshot({ path: path.join(OUT, 'cluster.png'), fullPage: true });
  });

  it('shows a killed hub suspect, then dead, without a reload', { timeout: 60_000 }, async () => {
    await page.evaluate(() => {
      window.__states = [];
      new MutationObserver(() => {
        const s = document.querySelector('tr[data-name="beta"]')?.dataset.state;
        if (s && window.__states.at(-1) !== s) window.__states.push(s);
      }).observe(document.querySelector('table.peers'), { subtree: true, childList: true, attributes: true });
    });
    b.kill('SIGKILL');
    await page.locator('tr[data-name="beta"][data-state="dead"]').waitFor({ timeout: 45_000 });
    const seen = await page.evaluate(() => window.__states);
    assert.ok(seen.includes('suspect'), `states shown: ${seen}`);
    assert.ok(seen.indexOf('suspect') < seen.indexOf('dead'), `states shown: ${seen}`);
    assert.equal(await page.locator('tr[data-name="alpha"]').getAttribute('data-state'), 'alive');
    await page.screenshot({ path: path.join(OUT, 'cluster-dead.png'), fullPage: true });
  });

  it('left no console or page errors', () => {
    assert.deepEqual(problems, []);
  });
});
