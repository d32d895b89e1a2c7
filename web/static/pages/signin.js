// Sign in (`/signin`): POST /api/session with the admin token.
// (`/signin?token=...` is handled by the server before this page loads.)

import { session } from '../api.js';
import { h, pageTitle, notice } from '../util.js';
import { navigate } from '../nav.js';

export function render(main, _params, query) {
  pageTitle('Sign in');
  const asked = query.get('next') || '';
  const next = /^\/(?!\/)/.test(asked) ? asked : '/';
  const section = h('section.page.narrow');
  main.append(section);

  let shown;
  const draw = () => {
    if (shown === !!session.signedIn) return; // keep what the person typed
    shown = !!session.signedIn;
    if (shown) {
      return section.replaceChildren(h('h1', 'Sign in'), notice('ok', 'You are signed in. You can upload, edit and delete videos.'),
        h('p', h('a.btn', { href: next }, next === '/' ? 'Go to the library' : 'Continue')));
    }
    const token = h('input#token', { type: 'password', autocomplete: 'current-password', spellcheck: false, 'aria-describedby': 'token-help' });
    const err = h('div.form-error');
    const submit = h('button.btn', { type: 'submit' }, 'Sign in');
    const form = h('form.card-form', { on: { submit: async (e) => {
      e.preventDefault();
      err.replaceChildren();
      if (!token.value.trim()) { err.append(notice('error', 'Enter the admin token.')); return token.focus(); }
      submit.disabled = true;
      try {
        await session.signIn(token.value.trim());
        navigate(next, { replace: true });
      } catch (ex) {
        err.append(notice('error', ex.status === 401 && !ex.code ? 'That token was not accepted. Check it and try again.' : ex.message));
        submit.disabled = false;
        token.select();
      }
    } } },
      h('div.field', h('label', { for: 'token' }, 'Admin token'), token,
        h('p#token-help.help', 'The ADMIN_TOKEN of this server; it also prints a sign-in link when it starts.')),
      err, h('div.actions', submit));
    section.replaceChildren(h('h1', 'Sign in'), h('p.muted', 'Signing in lets you upload, edit and delete videos. Watching needs no sign-in.'), form);
    token.focus();
  };
  draw();
  return session.subscribe(draw);
}
