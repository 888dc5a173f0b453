// Sign in with email and password (POST /v1/auth/session → cookie session).
import { h } from '../dom.js';
import { t, tOr } from '../i18n.js';
import { ApiError } from '../api.js';
import * as auth from '../auth.js';
import { field, errorMessage } from '../ui.js';

function safeNext(raw) {
  // Only a path inside the studio (never an absolute URL).
  return raw && raw.startsWith('/') && !raw.startsWith('//') && raw !== '/signin' ? raw : '/productions';
}

export default {
  title: () => t('signin.title'),
  render(main, { query, navigate }) {
    const email = field({ label: t('signin.email'), name: 'email', type: 'email', autocomplete: 'username', required: true, testid: 'signin-email' });
    const password = field({ label: t('signin.password'), name: 'password', type: 'password', autocomplete: 'current-password', required: true, testid: 'signin-password' });
    const error = h('div', { class: 'form-error', 'data-testid': 'signin-error', 'aria-live': 'assertive' });
    const submit = h('button', { type: 'submit', class: 'btn btn--primary btn--block' }, t('signin.submit'));
    const form = h('form', { class: 'signin-form', 'data-testid': 'signin-form', novalidate: true },
      email.wrap, password.wrap, error, submit);
    let countdown = null;

    const showError = (msg) => {
      error.textContent = '';
      if (msg) error.append(h('p', { class: 'alert alert--error', role: 'alert' }, msg));
    };

    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      email.setError(''); password.setError('');
      if (!email.input.value.trim()) { email.setError(t('signin.email_required')); email.input.focus(); return; }
      if (!password.input.value) { password.setError(t('signin.password_required')); password.input.focus(); return; }
      submit.disabled = true;
      showError('');
      try {
        await auth.signIn(email.input.value.trim(), password.input.value);
        navigate(safeNext(query.get('next')), { replace: true });
      } catch (err) {
        submit.disabled = false;
        password.input.value = '';
        if (err instanceof ApiError && err.status === 401) {
          showError(t('signin.bad_credentials'));
        } else if (err instanceof ApiError && err.status === 429) {
          const s = err.retryAfter;
          showError(s ? t('signin.throttled_in', { s }) : t('signin.throttled'));
          if (s) {
            // Keep the button off until the server lets us try again.
            submit.disabled = true;
            clearTimeout(countdown);
            countdown = setTimeout(() => { submit.disabled = false; }, s * 1000);
          }
        } else if (err instanceof ApiError && err.status === 422) {
          showError(t('signin.invalid'));
        } else {
          showError(errorMessage(err));
        }
        password.input.focus();
      }
    });

    // Coming back from an external provider that did not sign us in.
    const oidcError = query.get('error');
    if (oidcError) showError(tOr(`signin.${oidcError}`, t('signin.oidc_failed')));
    const external = h('div', { class: 'signin__external' });
    main.append(h('section', { class: 'signin' },
      h('div', { class: 'signin__card card' },
        h('p', { class: 'signin__brand', 'aria-hidden': 'true' }, '▶ AIPROD'),
        h('h1', { tabindex: '-1' }, t('signin.title')),
        h('p', { class: 'muted' }, t('signin.lead')),
        form, external)));
    auth.signInProviders().then((providers) => {
      if (!providers.length || !external.isConnected) return;
      external.append(h('p', { class: 'signin__or' }, t('signin.or')),
        h('ul', { class: 'signin__providers' }, providers.map((p) => h('li', null,
          // A plain navigation: the server sends the browser on to the provider.
          h('a', { class: 'btn btn--block', href: p.start_url, 'data-testid': 'signin-provider' },
            t('signin.with', { name: p.name }))))));
    });
    setTimeout(() => email.input.focus(), 0);
    return () => clearTimeout(countdown);
  },
};
