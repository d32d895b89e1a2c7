// Sign in (`/signin`): POST /api/session with the admin token.
// (`/signin?token=...` is handled by the server before this page loads.)

import { session } from '../api.js';
import { h, pageTitle, notice } from '../util.js';
import { navigate } from '../nav.js';

function safeNext(query) {
  const next = query.get('next') || '/';
  return next.startsWith('/') && !next.startsWith('//') ? next : '/';
}

export function render(main, _params, query) {
  pageTitle('Sign in');
  const next = safeNext(query);
  const section = h('section.page.narrow');
  main.append(section);

  const draw = () => {
    if (session.signedIn) {
      section.replaceChildren(h('h1', 'Sign in'),
        notice('ok', 'You are signed in. You can upload, edit and delete videos.'),
        h('p.actions', h('a.btn', { href: next }, next === '/' ? 'Go to the library' : 'Continue'),
          h('button.btn.secondary', { type: 'button', on: { click: () => session.signOut().catch((e) => section.append(notice('error', e.message))) } }, 'Sign out')));
      return;
    }
    const token = h('input#token', { type: 'password', name: 'token', autocomplete: 'current-password', required: true,
      spellcheck: false, 'aria-describedby': 'token-help' });
    const err = h('div.form-error');
    const submit = h('button.btn', { type: 'submit' }, 'Sign in');
    const form = h('form.card-form', { on: { submit: async (e) => {
      e.preventDefault();
      const value = token.value.trim();
      err.replaceChildren();
      if (!value) { err.append(notice('error', 'Enter the admin token.')); token.focus(); return; }
      submit.disabled = true;
      submit.textContent = 'Signing in…';
      try {
        await session.signIn(value);
        unsubscribe();
        navigate(next, { replace: true });
      } catch (ex) {
        err.append(notice('error', ex.status === 401 && !ex.code ? 'That token was not accepted. Check it and try again.' : ex.message));
        submit.disabled = false;
        submit.textContent = 'Sign in';
        token.select();
        token.focus();
      }
    } } },
      h('div.field', h('label', { for: 'token' }, 'Admin token'), token,
        h('p#token-help.help', 'The token is the ADMIN_TOKEN of this server; the server also prints a sign-in link when it starts.')),
      err,
      h('div.actions', submit));
    section.replaceChildren(h('h1', 'Sign in'), h('p.muted', 'Signing in lets you upload, edit and delete videos. Watching needs no sign-in.'), form);
    if (document.activeElement === document.body) token.focus();
  };
  draw();
  const unsubscribe = session.subscribe(draw);
  return unsubscribe;
}
