// The notepad's editor bundle: CodeMirror 6 and the collaboration client,
// bundled by esbuild into /static/vendor/editor.js (web/CMakeLists.txt).
// Pages import it with `await import('/static/vendor/editor.js')`.

import './csp-styles.js'; // first: CodeMirror's styles through the CSSOM (CSP)
import { EditorState, EditorSelection, Compartment, ChangeSet, Text, StateField, StateEffect } from '@codemirror/state';
import {
  EditorView, keymap, drawSelection, highlightActiveLine, highlightSpecialChars, placeholder, Decoration, WidgetType,
} from '@codemirror/view';
import { defaultKeymap, history, historyKeymap, indentWithTab } from '@codemirror/commands';
import { syntaxHighlighting, defaultHighlightStyle, HighlightStyle } from '@codemirror/language';
import { markdownLanguage, insertNewlineContinueMarkup, deleteMarkupBackward } from '@codemirror/lang-markdown';
import { tags } from '@lezer/highlight';
import { LINE_SEP } from './convert.js';

export { EditorState, EditorSelection, Compartment, ChangeSet, Text, StateField, StateEffect };
export { EditorView, keymap, drawSelection, highlightActiveLine, placeholder, Decoration, WidgetType };
export { defaultKeymap, history, historyKeymap, indentWithTab };
export { markdownLanguage };
export { collab, receiveUpdates, sendableUpdates, getSyncedVersion, getClientID } from './collab.js';
export { presence, setPeers, movePeer, peersField, safeColor } from './presence.js';
export { cpLength, utf16ToCp, cpToUtf16, changesToEdits, editsToChanges, composeAll, diffTexts, textOf } from './convert.js';
export { NoteSync } from './notesync.js';

// Headings and emphasis a little stronger than the default style.
const markdownStyle = HighlightStyle.define([
  { tag: tags.heading1, fontWeight: '700', fontSize: '1.25em' },
  { tag: tags.heading2, fontWeight: '700', fontSize: '1.12em' },
  { tag: [tags.heading3, tags.heading4, tags.heading5, tags.heading6], fontWeight: '700' },
]);

const theme = EditorView.theme({
  '&': { backgroundColor: 'var(--surface)', color: 'var(--text)', fontSize: '15px', height: '100%' },
  '&.cm-focused': { outline: 'none' },
  '.cm-scroller': { fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, monospace', lineHeight: '1.6', overflow: 'auto' },
  '.cm-content': { padding: '12px 0', caretColor: 'var(--text)' },
  '.cm-line': { padding: '0 14px' },
  '.cm-cursor, .cm-dropCursor': { borderLeftColor: 'var(--text)' },
  '&.cm-focused > .cm-scroller > .cm-selectionLayer .cm-selectionBackground, .cm-selectionBackground, ::selection': {
    backgroundColor: 'color-mix(in srgb, var(--accent) 28%, transparent)',
  },
  '.cm-activeLine': { backgroundColor: 'color-mix(in srgb, var(--surface-2) 55%, transparent)' },
  '.cm-placeholder': { color: 'var(--muted)' },
});

// An editor for a note: the collaboration extensions of `sync` (a NoteSync),
// markdown highlighting, history, the usual keys. Read-only until
// setEditable(true). Returns {view, setEditable}.
export function createNoteEditor(parent, { text = '', sync = null, label = 'Note text', placeholderText = '' } = {}) {
  const editable = new Compartment();
  const readOnly = (on) => [EditorState.readOnly.of(!on), EditorView.editable.of(on)];
  const state = EditorState.create({
    doc: text,
    extensions: [
      EditorState.lineSeparator.of(LINE_SEP),
      highlightSpecialChars(),
      history(),
      drawSelection(),
      highlightActiveLine(),
      EditorView.lineWrapping,
      markdownLanguage,
      syntaxHighlighting(markdownStyle),
      syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
      keymap.of([
        { key: 'Enter', run: insertNewlineContinueMarkup },
        { key: 'Backspace', run: deleteMarkupBackward },
        ...defaultKeymap, ...historyKeymap, indentWithTab,
      ]),
      placeholderText ? placeholder(placeholderText) : [],
      EditorView.contentAttributes.of({ 'aria-label': label, 'aria-multiline': 'true' }),
      theme,
      editable.of(readOnly(false)),
      sync ? sync.extensions() : [],
    ],
  });
  const view = new EditorView({ state, parent });
  if (sync) sync.attach(view);
  return {
    view,
    setEditable(on) { view.dispatch({ effects: editable.reconfigure(readOnly(on)) }); },
  };
}
