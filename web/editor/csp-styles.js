// CodeMirror mounts its styles through style-mod, which for a document puts
// a <style> element in <head>. The hub's Content Security Policy
// (style-src 'self') refuses inline <style> elements, so the editor would be
// unstyled and the browser would log a violation. Constructed stylesheets
// (new CSSStyleSheet + insertRule, i.e. the CSSOM) are not inline styles and
// are allowed: this replaces StyleModule.mount with one that puts the rules in
// one constructed sheet per document, adopted by it (style-mod itself does
// this for shadow roots). Falls back to style-mod where the browser lacks
// adoptedStyleSheets.

import { StyleModule } from 'style-mod';

const original = StyleModule.mount;
const sets = new WeakMap(); // root → {sheet, modules, counts}

StyleModule.mount = function mount(root, modules, options) {
  const doc = root.ownerDocument || root;
  const win = doc.defaultView;
  if (!win || !win.CSSStyleSheet || !('adoptedStyleSheets' in root)) return original.call(this, root, modules, options);
  let set = sets.get(root);
  if (!set) {
    set = { sheet: new win.CSSStyleSheet(), modules: [], counts: new Map() };
    sets.set(root, set);
  }
  mountModules(set, Array.isArray(modules) ? modules : [modules]);
  if (!root.adoptedStyleSheets.includes(set.sheet)) root.adoptedStyleSheets = [set.sheet, ...root.adoptedStyleSheets];
};

// style-mod's StyleSet.mount for a sheet: rules follow the order of the modules.
function mountModules(set, modules) {
  let pos = 0, j = 0;
  for (const mod of modules) {
    let index = set.modules.indexOf(mod);
    if (index < j && index > -1) { // ordering conflict: mount it again further on
      set.modules.splice(index, 1);
      j--;
      index = -1;
    }
    if (index === -1) {
      set.modules.splice(j++, 0, mod);
      let n = 0;
      for (const rule of mod.rules) {
        try { set.sheet.insertRule(rule, pos + n); n++; } catch { /* a rule this browser does not parse */ }
      }
      set.counts.set(mod, n);
      pos += n;
    } else {
      while (j < index) pos += set.counts.get(set.modules[j++]) || 0;
      pos += set.counts.get(mod) || 0;
      j++;
    }
  }
}
