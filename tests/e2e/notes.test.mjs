// Browser test of the community notepad against a running stream-hub: two
// signed-in people edit one note at the same time (docs/notes-api.md).
//   HUB_URL=http://127.0.0.1:18501 HUB_TOKEN=... node --test tests/e2e/notes.test.mjs
// Screenshots go to tests/e2e/out/.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { OUT, BASE, TOKEN, SKIP, RUN, hub, launchChromium } from './common.mjs';
const TITLE = `E2E note ${RUN}`;
const START_TEXT = 'First line of the note.\n\nLast line 😀 of the note.';
// Typed at the same time: at the start and at the end, then both at one place.
const S1 = 'Alpha bravo charlie delta. ';
const S2 = ' Zulu yankee xray whiskey.';
const S3 = 'One two three four five. ';
const S4 = 'Six seven eight nine ten. ';

async function serverText(id) {
  const res = await hub(`/api/notes/${encodeURIComponent(id)}`);
  assert.equal(res.status, 200);
  return (await res.json()).text;
}

// The editor's text, through CodeMirror's own API (the page's module instance).
const editorText = (page) => page.evaluate(async () => {
  const cm = await import('/static/vendor/editor.js');
  return cm.EditorView.findFromDOM(document.querySelector('.cm-editor')).state.doc.toString();
});

// This editor's selection and the others' as drawn (UTF-16 offsets).
const carets = (page) => page.evaluate(async () => {
  const cm = await import('/static/vendor/editor.js');
  const { state } = cm.EditorView.findFromDOM(document.querySelector('.cm-editor'));
  return { own: { anchor: state.selection.main.anchor, head: state.selection.main.head },
    peers: state.field(cm.peersField).map((p) => ({ name: p.name, anchor: p.anchor, head: p.head })) };
});

async function until(what, fn, timeout = 20_000) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    last = await fn();
    if (last?.ok) return last;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

describe('community notepad', { skip: SKIP }, () => {
  let browser, ctxA, ctxB, pageA, pageB, noteId;
  const problems = [];

  const watch = (page, who) => {
    page.setDefaultTimeout(20_000);
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`console (${who}): ${m.text()} (${page.url()})`); });
    page.on('pageerror', (e) => problems.push(`page error (${who}): ${e.message} (${page.url()})`));
  };

  async function signIn(page) {
    await page.goto(`${BASE}/signin`);
    await page.getByLabel('Admin token').fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#session', { hasText: 'Signed in' }).waitFor();
  }

  before(async () => {
    fs.mkdirSync(OUT, { recursive: true });
    browser = await launchChromium();
    ctxA = await browser.newContext({ viewport: { width: 1280, height: 860 }, colorScheme: 'light' });
    ctxB = await browser.newContext({ viewport: { width: 1100, height: 800 }, colorScheme: 'dark' });
    // Bob chose his name on an earlier visit; Ann is asked on the page.
    await ctxB.addInitScript(() => {
      localStorage.setItem('stream-hub.notes.name', 'Bob');
      localStorage.setItem('stream-hub.notes.name-asked', '1');
    });
    pageA = await ctxA.newPage();
    pageB = await ctxB.newPage();
    watch(pageA, 'Ann');
    watch(pageB, 'Bob');
    await Promise.all([signIn(pageA), signIn(pageB)]);
  });

  after(async () => {
    if (noteId) await hub(`/api/notes/${encodeURIComponent(noteId)}`, { method: 'DELETE' }).catch(() => {});
    await browser?.close();
  });

  const shot = (name, p) => p.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: true });

  it('creates a note over REST and finds it in the notepad list by search', async () => {
    const res = await hub('/api/notes', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ title: TITLE, text: START_TEXT }) });
    assert.equal(res.status, 201);
    const note = await res.json();
    noteId = note.id;
    assert.equal(note.text, START_TEXT);

    await pageA.getByRole('link', { name: 'Notes', exact: true }).click();
    await pageA.getByRole('heading', { name: 'Notes', level: 1 }).waitFor();
    await pageA.getByLabel('Search notes').fill(RUN);
    await pageA.locator('.count', { hasText: /^1 note matching/ }).waitFor();
    const row = pageA.locator(`.note-row[data-id="${noteId}"]`);
    await row.waitFor();
    assert.equal(await pageA.locator('.note-row').count(), 1);
    assert.match(await row.textContent(), /by /);
    await shot('notes-list', pageA);
    await row.getByRole('link', { name: TITLE }).click();
    await pageA.waitForURL(`${BASE}/notes/${encodeURIComponent(noteId)}`);
    await pageA.getByRole('heading', { name: TITLE }).waitFor();
  });

  it('asks Ann for her name once and shows both people with their colours', async () => {
    await pageA.getByLabel('What name should the others here see?').fill('Ann');
    await pageA.getByRole('button', { name: 'OK' }).click();
    await pageB.goto(`${BASE}/notes/${encodeURIComponent(noteId)}`);
    for (const p of [pageA, pageB]) {
      await p.locator('.conn', { hasText: /^connected$/ }).waitFor();
      await p.locator('.cm-content[contenteditable="true"]').waitFor();
      await p.getByRole('heading', { name: 'Here now (2)' }).waitFor();
    }
    assert.equal(await pageB.getByLabel('What name should the others here see?').count(), 0);
    assert.deepEqual(await pageA.locator('.people .peer-name').allTextContents(), ['Ann', 'Bob']);
    assert.deepEqual(await pageB.locator('.people .peer-name').allTextContents(), ['Bob', 'Ann']);
    const dots = await pageA.locator('.people .peer-dot').evaluateAll((els) => els.map((e) => getComputedStyle(e).backgroundColor));
    assert.equal(dots.length, 2);
    assert.notEqual(dots[0], dots[1]);
    assert.deepEqual([await editorText(pageA), await editorText(pageB)], [START_TEXT, START_TEXT]);
  });

  it('two people type at the same time: both editors and the server end with the same text, sentences whole', { timeout: 120_000 }, async () => {
    const focus = async (p, keys) => {
      await p.locator('.cm-content').click();
      for (const k of keys) await p.keyboard.press(k);
    };
    // Ann at the start, Bob at the end.
    await Promise.all([focus(pageA, ['Control+Home']), focus(pageB, ['Control+End'])]);
    await Promise.all([pageA.keyboard.type(S1), pageB.keyboard.type(S2)]);
    // Then both at one place: the end of the first line.
    await until('the first round to arrive', async () => {
      const [a, b] = await Promise.all([editorText(pageA), editorText(pageB)]);
      return { ok: a === b && a.includes(S1) && a.includes(S2), a, b };
    });
    await Promise.all([focus(pageA, ['Control+Home', 'End']), focus(pageB, ['Control+Home', 'End'])]);
    await Promise.all([pageA.keyboard.type(S3), pageB.keyboard.type(S4)]);

    const done = await until('both editors and the server to agree', async () => {
      const [a, b, s] = await Promise.all([editorText(pageA), editorText(pageB), serverText(noteId)]);
      return { ok: a === b && b === s && [S1, S2, S3, S4].every((x) => s.includes(x)), a, b, s };
    }, 30_000);
    const text = done.s;
    assert.ok(text.startsWith(S1), text);
    assert.ok(text.endsWith(S2), text);
    assert.ok(text.includes(`${S3}${S4}`) || text.includes(`${S4}${S3}`), `same-place sentences interleaved: ${JSON.stringify(text)}`);
    assert.ok(text.includes('Last line 😀 of the note.'), text);
    // At rest each one sees the other's caret where it is.
    await until('the carets to settle', async () => {
      const [a, b] = await Promise.all([carets(pageA), carets(pageB)]);
      return { ok: a.peers[0]?.head === b.own.head && b.peers[0]?.head === a.own.head, a, b };
    });
    await shot('note-ann', pageA);
    await shot('note-bob', pageB);
  });

  it('draws the other person\'s cursor and selection in their colour', async () => {
    // Bob selects the first word; Ann sees a caret labelled "Bob" and a selection mark.
    await pageB.locator('.cm-content').click();
    await pageB.keyboard.press('Control+Home');
    await pageB.keyboard.press('Shift+Control+ArrowRight');
    const caret = pageA.locator('.cm-peer-caret', { hasText: 'Bob' });
    await caret.waitFor();
    await pageA.locator('.cm-peer-selection', { hasText: 'Alpha' }).waitFor();
    assert.equal(await pageA.locator('.cm-peer-selection').textContent(), 'Alpha');
    const color = await caret.evaluate((e) => getComputedStyle(e).borderLeftColor);
    const dot = await pageA.locator('.people .peer', { hasText: 'Bob' }).locator('.peer-dot').evaluate((e) => getComputedStyle(e).backgroundColor);
    assert.equal(color, dot);
    await pageA.locator('.cm-peer-caret', { hasText: 'Bob' }).screenshot({ path: path.join(OUT, 'note-remote-caret.png') }).catch(() => {});
  });

  it('lists revisions in the history and restores an older one', { timeout: 60_000 }, async () => {
    await pageA.getByRole('button', { name: 'History' }).click();
    const revs = pageA.locator('.revisions .revision');
    await revs.first().waitFor();
    assert.ok(await revs.count() >= 2, `revisions: ${await revs.count()}`);
    const hist = await (await hub(`/api/notes/${encodeURIComponent(noteId)}/history`)).json();
    const oldest = hist.revisions[hist.revisions.length - 1];
    const oldText = (await (await hub(`/api/notes/${encodeURIComponent(noteId)}/text?version=${encodeURIComponent(oldest.version)}`)).json()).text;
    await pageA.locator(`.revision[data-version="${oldest.version}"]`).click();
    await pageA.locator('.revision-text').waitFor();
    assert.equal(await pageA.locator('.revision-text').textContent(), oldText);
    await shot('note-history', pageA);
    await pageA.getByRole('button', { name: 'Restore this version' }).click();
    await pageA.locator('.note-history .notice.ok', { hasText: 'Restored the version of' }).waitFor();
    await until('both editors to show the restored text', async () => {
      const [a, b, s] = await Promise.all([editorText(pageA), editorText(pageB), serverText(noteId)]);
      return { ok: a === oldText && b === oldText && s === oldText, a, b, s };
    });
    assert.ok(await revs.count() >= 3);
  });

  it('exports the note as .md and .txt', async () => {
    const want = await serverText(noteId);
    for (const [label, ext] of [['Export .md', '.md'], ['Export .txt', '.txt']]) {
      const [download] = await Promise.all([pageA.waitForEvent('download'), pageA.getByRole('link', { name: label }).click()]);
      assert.ok(download.suggestedFilename().endsWith(ext), download.suggestedFilename());
      const file = await download.path();
      assert.equal(fs.readFileSync(file, 'utf8'), want);
    }
  });

  it('renames, deletes and restores the note, live on the other page', async () => {
    await pageA.getByRole('button', { name: 'Rename' }).click();
    await pageA.getByRole('textbox', { name: 'Title' }).fill(`${TITLE} renamed`);
    await pageA.getByRole('button', { name: 'Save', exact: true }).click();
    await pageA.getByRole('heading', { name: `${TITLE} renamed` }).waitFor();
    await pageB.getByRole('heading', { name: `${TITLE} renamed` }).waitFor();
    await pageA.getByRole('button', { name: 'Delete' }).click();
    await pageA.getByRole('button', { name: 'Delete for everyone' }).click();
    await pageA.getByText('This note was deleted.').waitFor();
    await pageB.getByText('This note was deleted.').waitFor();
    assert.equal(await pageA.locator('.cm-content').getAttribute('contenteditable'), 'false');
    await pageA.getByRole('button', { name: 'Restore', exact: true }).click();
    await pageA.getByText('The note was restored.').waitFor();
    await pageA.locator('.cm-content[contenteditable="true"]').waitFor();
    await pageB.locator('.cm-content[contenteditable="true"]').waitFor();
    assert.equal((await (await hub(`/api/notes/${encodeURIComponent(noteId)}`)).json()).title, `${TITLE} renamed`);
  });

  it('shows the note read-only to someone signed out', async () => {
    const ctx = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const p = await ctx.newPage();
    watch(p, 'guest');
    await p.goto(`${BASE}/notes/${encodeURIComponent(noteId)}`);
    await p.locator('.conn', { hasText: /^connected$/ }).waitFor();
    await p.getByText('You are reading this note.').waitFor();
    assert.equal(await p.locator('.cm-content').getAttribute('contenteditable'), 'false');
    assert.equal(await editorText(p), await serverText(noteId));
    await pageA.getByRole('heading', { name: 'Here now (3)' }).waitFor();
    await shot('note-phone-signed-out', p);
    await ctx.close();
  });

  it('logged no console errors', () => {
    assert.deepEqual(problems, []);
  });
});
