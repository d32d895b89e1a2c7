// A stand-in for the C++ server that follows docs/api.md closely enough to
// work on the web UI without building the server (in memory, one process):
//   PORT=18599 ADMIN_TOKEN=e2e-token-0123456789abcdef node tests/e2e/mock-hub.mjs
//   HUB_URL=http://127.0.0.1:18599 HUB_TOKEN=e2e-token-0123456789abcdef node --test tests/e2e/
// It is a development aid only: the browser test's job is the real server (run.sh).
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';

const STATIC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../web/static');
const PORT = Number(process.env.PORT || 18599);
const TOKEN = process.env.ADMIN_TOKEN || 'e2e-token-0123456789abcdef';
const DIR = fs.mkdtempSync(path.join(os.tmpdir(), 'mock-hub-'));
const COOKIE = crypto.createHmac('sha256', TOKEN).update('session').digest('hex');
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml' };
const videos = new Map();
const clients = new Set();

const json = (res, status, body, headers = {}) => {
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
};
const error = (res, status, code, message) => json(res, status, { error: { code, message } });
const authed = (req) => req.headers.authorization === `Bearer ${TOKEN}` ||
  (req.headers.cookie || '').split(/;\s*/).includes(`hub_session=${COOKIE}`);
const readBody = (req) => new Promise((ok) => { let s = ''; req.on('data', (c) => { s += c; }); req.on('end', () => ok(s)); });

function view(v) {
  const { offset, file, ...rest } = v;
  return { ...rest, original_url: `/media/${v.id}/original`, upload_url: v.status === 'uploading' ? `/files/${v.id}` : undefined, hls_url: null, thumbnail_url: null, watch_url: `/watch/${v.id}` };
}
function emit(id, deleted) {
  const data = JSON.stringify({ id, deleted, video: deleted ? null : view(videos.get(id)) });
  for (const c of clients) c.write(`event: video\ndata: ${data}\n\n`);
}
function update(v, patch) { Object.assign(v, patch, { updated_at: new Date().toISOString() }); emit(v.id, false); }

const TUS = { 'Tus-Resumable': '1.0.0' };

async function handle(req, res) {
  const url = new URL(req.url, 'http://x');
  const p = url.pathname;
  let m;
  if (p === '/healthz') { res.writeHead(200, { 'Content-Type': 'text/plain' }); return res.end('ok'); }
  if (req.method === 'GET' && (p === '/' || p === '/upload' || p === '/signin' || /^\/watch\/[^/]+$/.test(p))) {
    if (p === '/signin' && url.searchParams.get('token') === TOKEN) {
      res.writeHead(302, { Location: '/', 'Set-Cookie': `hub_session=${COOKIE}; Path=/; HttpOnly; SameSite=Strict` });
      return res.end();
    }
    // A strict policy, so that the test notices the UI needing anything else.
    res.writeHead(200, { 'Content-Type': TYPES['.html'], 'Content-Security-Policy':
      "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'" });
    return res.end(fs.readFileSync(path.join(STATIC, 'index.html')));
  }
  if (req.method === 'GET' && p.startsWith('/static/')) {
    const f = path.join(STATIC, path.normalize(p.slice(8)));
    if (!f.startsWith(STATIC) || !fs.existsSync(f) || !fs.statSync(f).isFile()) return error(res, 404, 'not_found', 'No such file.');
    res.writeHead(200, { 'Content-Type': TYPES[path.extname(f)] || 'application/octet-stream' });
    return res.end(fs.readFileSync(f));
  }
  if (p === '/api/session') {
    if (req.method === 'GET') return json(res, 200, { signed_in: authed(req) });
    if (req.method === 'DELETE') { res.writeHead(204, { 'Set-Cookie': 'hub_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict' }); return res.end(); }
    if (req.method === 'POST') {
      let body = {};
      try { body = JSON.parse(await readBody(req)); } catch { /* empty */ }
      if (body.token !== TOKEN) return error(res, 401, 'unauthorized', 'That token is not this server\'s admin token; copy ADMIN_TOKEN exactly.');
      res.writeHead(204, { 'Set-Cookie': `hub_session=${COOKIE}; Path=/; HttpOnly; SameSite=Strict` });
      return res.end();
    }
  }
  if (p === '/api/events' && req.method === 'GET') {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store' });
    res.write(': hello\n\n');
    clients.add(res);
    const t = setInterval(() => res.write(': ping\n\n'), 15000);
    req.on('close', () => { clearInterval(t); clients.delete(res); });
    return;
  }
  if (p === '/api/videos' && req.method === 'GET') {
    const q = (url.searchParams.get('q') || '').toLowerCase();
    const sort = url.searchParams.get('sort') || 'newest';
    const limit = Number(url.searchParams.get('limit') || 24);
    const start = Number(Buffer.from(url.searchParams.get('cursor') || '', 'base64url').toString() || 0);
    let list = [...videos.values()].filter((v) => !q || v.title.toLowerCase().includes(q) || v.description.toLowerCase().includes(q));
    const cmp = { newest: (a, b) => b.created_at.localeCompare(a.created_at), oldest: (a, b) => a.created_at.localeCompare(b.created_at), title: (a, b) => a.title.localeCompare(b.title) }[sort];
    if (!cmp) return error(res, 400, 'invalid_argument', 'sort must be newest, oldest or title.');
    list.sort(cmp);
    const items = list.slice(start, start + limit).map(view);
    const next = start + limit < list.length ? Buffer.from(String(start + limit)).toString('base64url') : null;
    return json(res, 200, { items, next_cursor: next, total: list.length });
  }
  if ((m = /^\/api\/videos\/([^/]+)$/.exec(p))) {
    const v = videos.get(m[1]);
    if (!v) return error(res, 404, 'not_found', 'There is no video with this id; it may have been deleted.');
    if (req.method === 'GET') return json(res, 200, view(v));
    if (!authed(req)) return error(res, 401, 'unauthorized', 'Sign in first: POST /api/session with the admin token.');
    if (req.method === 'PATCH') {
      const body = JSON.parse(await readBody(req) || '{}');
      const patch = {};
      if (typeof body.title === 'string') patch.title = body.title;
      if (typeof body.description === 'string') patch.description = body.description;
      update(v, patch);
      return json(res, 200, view(v));
    }
    if (req.method === 'DELETE') { videos.delete(v.id); emit(v.id, true); res.writeHead(204); return res.end(); }
  }
  if ((m = /^\/media\/([^/]+)\/original$/.exec(p))) {
    const v = videos.get(m[1]);
    if (!v || v.status === 'uploading') return error(res, 404, 'not_found', 'No such media.');
    const size = fs.statSync(v.file).size;
    const r = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range || '');
    let start = 0, end = size - 1, status = 200;
    if (r) {
      if (r[1] === '') { start = Math.max(0, size - Number(r[2])); } else { start = Number(r[1]); if (r[2] !== '') end = Math.min(end, Number(r[2])); }
      if (start >= size) { res.writeHead(416, { 'Content-Range': `bytes */${size}` }); return res.end(); }
      status = 206;
    }
    res.writeHead(status, { 'Content-Type': v.content_type || 'application/octet-stream', 'Accept-Ranges': 'bytes', 'Content-Length': end - start + 1,
      ...(status === 206 ? { 'Content-Range': `bytes ${start}-${end}/${size}` } : {}) });
    if (req.method === 'HEAD') return res.end();
    return fs.createReadStream(v.file, { start, end }).pipe(res);
  }
  if (p === '/files/' || p === '/files') {
    if (req.method === 'OPTIONS') { res.writeHead(204, { ...TUS, 'Tus-Version': '1.0.0', 'Tus-Extension': 'creation,termination' }); return res.end(); }
    if (req.method === 'POST') {
      if (req.headers['tus-resumable'] !== '1.0.0') { res.writeHead(412, { 'Tus-Version': '1.0.0' }); return res.end(); }
      if (!authed(req)) return error(res, 401, 'unauthorized', 'Sign in to upload.');
      const len = Number(req.headers['upload-length']);
      if (!Number.isSafeInteger(len) || len < 0) return error(res, 400, 'bad_request', 'Upload-Length must be a non-negative integer');
      const meta = {};
      for (const pair of (req.headers['upload-metadata'] || '').split(',').filter(Boolean)) {
        const [k, b] = pair.trim().split(' ');
        meta[k] = Buffer.from(b || '', 'base64').toString('utf8');
      }
      const id = crypto.randomBytes(8).toString('hex');
      const now = new Date().toISOString();
      const file = path.join(DIR, id);
      fs.writeFileSync(file, '');
      videos.set(id, { id, title: meta.title || meta.filename || 'Untitled', description: meta.description || '', original_name: meta.filename || '',
        content_type: meta.filetype || 'application/octet-stream', size: len, status: 'uploading', error: null, created_at: now, updated_at: now, media: {}, offset: 0, file });
      emit(id, false);
      res.writeHead(201, { ...TUS, Location: `/files/${id}` });
      return res.end();
    }
  }
  if ((m = /^\/files\/([^/]+)$/.exec(p))) {
    const v = videos.get(m[1]);
    if (!v) { res.writeHead(404, TUS); return res.end(); }
    if (req.method === 'HEAD') { res.writeHead(200, { ...TUS, 'Upload-Offset': v.offset, 'Upload-Length': v.size, 'Cache-Control': 'no-store' }); return res.end(); }
    if (!authed(req)) return error(res, 401, 'unauthorized', 'Sign in to upload.');
    if (req.method === 'DELETE') { videos.delete(v.id); emit(v.id, true); res.writeHead(204, TUS); return res.end(); }
    if (req.method === 'PATCH') {
      if (req.headers['content-type'] !== 'application/offset+octet-stream') return error(res, 415, 'unsupported_media_type', 'PATCH needs Content-Type application/offset+octet-stream');
      if (Number(req.headers['upload-offset']) !== v.offset) { res.writeHead(409, TUS); return res.end(); }
      const out = fs.createWriteStream(v.file, { flags: 'a' });
      req.on('data', (c) => { v.offset += c.length; });
      req.pipe(out);
      req.on('aborted', () => out.end());
      out.on('finish', () => {
        if (res.destroyed) return;
        res.writeHead(204, { ...TUS, 'Upload-Offset': v.offset });
        res.end();
        if (v.offset >= v.size) {
          update(v, { status: 'processing' });
          setTimeout(() => videos.has(v.id) && update(v, { status: 'ready' }), 800);
        }
      });
      return;
    }
  }
  return error(res, 404, 'not_found', 'Nothing here.');
}

http.createServer((req, res) => handle(req, res).catch((e) => { console.error(e); if (!res.headersSent) error(res, 500, 'internal', 'Mock failed.'); }))
  .listen(PORT, '127.0.0.1', () => console.log(`mock hub on http://127.0.0.1:${PORT} (data ${DIR})`));
