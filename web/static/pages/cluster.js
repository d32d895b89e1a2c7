// Cluster (`/cluster`): the peers this hub gossips with, their state changing live (the setup
// guide's "Show P2P Stats"). Polls GET /api/peers every second while the page is open.

import { api } from '../api.js';
import { h, pageTitle, notice, relativeTime } from '../util.js';

const STATE_CLASS = { alive: 's-ready', suspect: 's-processing', dead: 's-failed', left: 's-uploading' };
const SOURCE_TEXT = { self: 'this hub', avahi: 'Avahi (mDNS)', mdns: 'mDNS', static: 'P2P_SEEDS', gossip: 'gossip' };

function memberRow(m) {
  return h('tr', { 'data-name': m.name, 'data-state': m.state },
    h('th', { scope: 'row' }, m.name, m.self ? h('span.muted', ' (this hub)') : ''),
    h('td', h(`span.badge.${STATE_CLASS[m.state] || 's-unknown'}`, m.state)),
    h('td.mono', m.address),
    h('td', SOURCE_TEXT[m.source] || m.source || ''),
    h('td.num', m.rtt_ms == null ? '–' : `${m.rtt_ms} ms`),
    h('td.num', String(m.incarnation)),
    h('td', m.version || '–'),
    h('td', m.self ? 'now' : m.last_seen ? h('time', { datetime: m.last_seen }, relativeTime(m.last_seen)) : 'never'));
}

export function render(main) {
  pageTitle('Cluster');
  const status = h('div.status');
  const summary = h('p.count', { 'aria-live': 'polite' });
  const body = h('tbody');
  const table = h('table.peers', { 'aria-label': 'Cluster members' },
    h('thead', h('tr', ...['Name', 'State', 'Address', 'Found by', 'Round trip', 'Incarnation', 'Version', 'Last heard'].map((t) => h('th', { scope: 'col' }, t)))),
    body);
  const stats = h('p.meta.cluster-stats');
  main.append(h('section.page', h('h1', 'Cluster'), summary, status, table, stats));

  let alive = true, timer = null, last = null;
  async function poll() {
    try {
      const p = await api('/api/peers');
      if (!alive) return;
      status.replaceChildren();
      if (!p.enabled) {
        table.hidden = true;
        summary.textContent = '';
        status.replaceChildren(notice('info', 'This hub runs alone: clustering is turned off (P2P_ENABLED=false).'));
      } else {
        table.hidden = false;
        const count = (s) => p.members.filter((m) => m.state === s).length;
        summary.textContent = `${p.node} · ${count('alive')} alive, ${count('suspect')} suspect, ${count('dead')} dead, ${count('left')} left` +
          ` · discovery: ${(p.discovery || []).join(', ') || 'none'}${p.label ? ` · label ${p.label}` : ''}`;
        const order = { alive: 0, suspect: 1, dead: 2, left: 3 };
        const members = [...p.members].sort((a, b) => (b.self - a.self) || (order[a.state] - order[b.state]) || a.name.localeCompare(b.name));
        body.replaceChildren(...members.map(memberRow));
        if (p.stats) {
          const s = p.stats, now = Date.now();
          const rate = last ? ((s.packets_in + s.packets_out - last.n) * 1000) / Math.max(1, now - last.t) : null;
          last = { n: s.packets_in + s.packets_out, t: now };
          const rejected = Object.entries(s.rejected || {}).map(([k, v]) => `${v} ${k}`).join(', ');
          stats.textContent = `Gossip: ${s.packets_in} packets in, ${s.packets_out} out${rate == null ? '' : ` (${rate.toFixed(1)}/s)`}` +
            ` · rejected: ${rejected || 'none'} · dropped: ${s.dropped}`;
        }
      }
    } catch (err) {
      if (alive) status.replaceChildren(notice('error', `Cannot read the cluster's state: ${err.message}`));
    }
    if (alive) timer = setTimeout(poll, 1000);
  }
  poll();
  return () => { alive = false; clearTimeout(timer); };
}
