// Other people's cursors and selections in the editor, each in its person's
// colour: a StateField of peers (positions in this editor's document, mapped
// through every change) drawn as decorations. Colours are applied through the
// CSSOM (style.cssText / element.style), which the page's Content Security
// Policy allows, never through a style attribute in markup.

import { StateField, StateEffect, RangeSetBuilder } from '@codemirror/state';
import { EditorView, Decoration, WidgetType } from '@codemirror/view';

// [{session, name, color, anchor, head}] — replaces the peers (positions in the current document).
export const setPeers = StateEffect.define();
// {session, anchor, head} — one peer's selection moved.
export const movePeer = StateEffect.define();

// "#rgb" / "#rrggbb" → "#rrggbb"; anything else → grey.
export function safeColor(c) {
  const m = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(c || '');
  if (!m) return '#6b7280';
  return m[1].length === 3 ? `#${[...m[1]].map((x) => x + x).join('')}` : c;
}

const clamp = (n, len) => (Number.isInteger(n) ? Math.max(0, Math.min(n, len)) : 0);

export const peersField = StateField.define({
  create: () => [],
  update(peers, tr) {
    const len = tr.newDoc.length;
    if (tr.docChanged && peers.length) {
      peers = peers.map((p) => ({ ...p, anchor: tr.changes.mapPos(p.anchor, -1), head: tr.changes.mapPos(p.head, -1) }));
    }
    for (const e of tr.effects) {
      if (e.is(setPeers)) {
        peers = e.value.map((p) => ({ session: String(p.session), name: String(p.name || 'Someone'), color: safeColor(p.color),
          anchor: clamp(p.anchor, len), head: clamp(p.head, len), hasCursor: Number.isInteger(p.head) }));
      } else if (e.is(movePeer)) {
        const v = e.value;
        peers = peers.map((p) => (p.session === v.session ? { ...p, anchor: clamp(v.anchor, len), head: clamp(v.head, len), hasCursor: true } : p));
      }
    }
    return peers;
  },
  provide: (f) => EditorView.decorations.from(f, decorate),
});

class CaretWidget extends WidgetType {
  constructor(color, name) {
    super();
    this.color = color;
    this.name = name;
  }
  eq(other) { return other.color === this.color && other.name === this.name; }
  toDOM() {
    const caret = document.createElement('span');
    caret.className = 'cm-peer-caret';
    caret.style.borderLeftColor = this.color;
    caret.setAttribute('aria-hidden', 'true');
    const label = document.createElement('span');
    label.className = 'cm-peer-label';
    label.style.backgroundColor = this.color;
    label.textContent = this.name;
    caret.append(label);
    caret.title = this.name;
    return caret;
  }
  ignoreEvent() { return true; }
}

function decorate(peers) {
  const items = [];
  for (const p of peers) {
    if (!p.hasCursor) continue;
    const from = Math.min(p.anchor, p.head), to = Math.max(p.anchor, p.head);
    if (from < to) {
      items.push([from, to, Decoration.mark({ class: 'cm-peer-selection', attributes: { style: `background-color: ${p.color}33` } })]);
    }
    items.push([p.head, p.head, Decoration.widget({ widget: new CaretWidget(p.color, p.name), side: p.head === from && from < to ? -1 : 1 })]);
  }
  items.sort((a, b) => a[0] - b[0] || a[2].startSide - b[2].startSide);
  const builder = new RangeSetBuilder();
  for (const [from, to, deco] of items) builder.add(from, to, deco);
  return builder.finish();
}

const presenceTheme = EditorView.baseTheme({
  '.cm-peer-caret': { position: 'relative', borderLeft: '2px solid', marginLeft: '-1px', marginRight: '-1px', pointerEvents: 'none' },
  '.cm-peer-label': {
    position: 'absolute', left: '-2px', bottom: '100%', padding: '0 4px', borderRadius: '3px 3px 3px 0', color: '#fff',
    font: '600 11px/1.4 system-ui, sans-serif', whiteSpace: 'nowrap', opacity: '0.9', userSelect: 'none', zIndex: '2',
  },
});

// The extension: the field and its look.
export function presence() {
  return [peersField, presenceTheme];
}
