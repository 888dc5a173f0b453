// Settings → API keys: list, create (secret shown once), rotate, claim, revoke.
import { h, replace } from '../dom.js';
import { t, formatDate } from '../i18n.js';
import { api, seg } from '../api.js';
import { currentUser } from '../auth.js';
import { pageHeader, loading, errorBox, emptyState, table, field, checkbox, button, busy, confirmDialog,
  secretDialog, showFieldErrors, toast, pill } from '../ui.js';

const STATUS_KIND = { active: 'ok', grace: 'warn', pending: 'warn', expired: 'neutral', revoked: 'bad' };

export default {
  title: () => t('keys.title'),
  async render(main) {
    const listWrap = h('div', null, loading());
    const perms = currentUser().permissions || [];

    const name = field({ label: t('keys.name'), name: 'name', maxlength: '100', required: true, testid: 'key-name' });
    const expires = field({ label: t('keys.expires'), name: 'expires_in_days', type: 'number', min: '1', max: '365', step: '1',
      hint: t('keys.expires_hint') });
    const scopeBoxes = perms.map((p) => ({ p, c: checkbox({ label: p, name: `scope-${p}` }) }));
    const scopes = h('fieldset', { class: 'scopes field--wide' }, h('legend', null, t('keys.scopes')),
      h('p', { class: 'field__hint' }, t('keys.scopes_hint')),
      h('div', { class: 'scopes__grid' }, scopeBoxes.map((s) => s.c.wrap)));
    const summary = h('div', { class: 'form-summary' });
    const form = h('form', { class: 'card', novalidate: true, 'aria-labelledby': 'new-key-title', 'data-testid': 'create-key-form' },
      h('h2', { id: 'new-key-title' }, t('keys.create_title')),
      h('div', { class: 'grid' }, name.wrap, expires.wrap, scopes), summary,
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn--primary', 'data-testid': 'create-key' }, t('keys.create'))));

    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const body = { name: name.input.value.trim() };
      if (!body.name) { name.setError(t('keys.name_required')); name.input.focus(); return; }
      if (expires.input.value) body.expires_in_days = Number(expires.input.value);
      const chosen = scopeBoxes.filter((s) => s.c.input.checked).map((s) => s.p);
      if (chosen.length) body.scopes = chosen;
      const submit = form.querySelector('button[type="submit"]');
      submit.disabled = true;
      try {
        const created = await api.post('/v1/api-keys', body);
        showFieldErrors(null, { name, expires_in_days: expires }, null);
        form.reset();
        await secretDialog({ title: t('keys.secret_title'), intro: t('keys.secret_intro', { name: created.key.name }), secret: created.secret });
        await loadList();
      } catch (err) {
        showFieldErrors(err, { name, expires_in_days: expires }, summary);
      } finally { submit.disabled = false; }
    });

    main.append(pageHeader(t('keys.title')), h('p', { class: 'muted lead' }, t('keys.lead')), form,
      h('div', { class: 'card' }, h('h2', { id: 'keys-list-title' }, t('keys.list_title')), listWrap));

    async function loadList() {
      let items;
      try { items = (await api.get('/v1/api-keys')).items; } catch (err) { replace(listWrap, errorBox(err)); return; }
      if (!items.length) { replace(listWrap, emptyState(t('keys.none'))); return; }
      const me = currentUser().id;
      replace(listWrap, table([
        { label: t('keys.name'), cell: (k) => h('span', null, h('strong', null, k.name), k.user_id !== me ? h('span', { class: 'muted' }, ` (${t('keys.other_user')})`) : null) },
        { label: t('keys.prefix'), cell: (k) => (k.prefix ? h('code', null, `${k.prefix}…`) : '—') },
        { label: t('keys.version'), cell: (k) => String(k.version), class: 'num' },
        { label: t('keys.status'), cell: (k) => pill(t(`key_status.${k.status}`), STATUS_KIND[k.status] || 'neutral') },
        { label: t('keys.scopes'), cell: (k) => h('span', { class: 'scope-list' }, k.scopes.join(', ')) },
        { label: t('keys.created'), cell: (k) => formatDate(k.created_at) },
        { label: t('keys.expires_at'), cell: (k) => formatDate(k.expires_at) },
        { label: t('common.actions'), cell: (k) => actions(k) },
      ], items, { caption: t('keys.list_title'), rowAttrs: (k) => ({ 'data-testid': 'api-key-row', 'data-id': k.id }) }));
    }

    function actions(k) {
      const out = h('div', { class: 'row-actions' });
      if (k.status === 'active') {
        const rotate = button(t('keys.rotate'), () => busy(rotate, async () => {
          if (!(await confirmDialog({ title: t('keys.rotate_title', { name: k.name }), message: t('keys.rotate_body'), confirmLabel: t('keys.rotate') }))) return;
          const res = await api.post(`/v1/api-keys/${seg(k.id)}/rotate`, {});
          await secretDialog({ title: t('keys.secret_title'), intro: t('keys.rotated_intro', { name: res.key.name }), secret: res.secret });
          await loadList();
        }), { small: true, testid: 'rotate-key', ariaLabel: t('keys.rotate_named', { name: k.name }) });
        out.append(rotate);
      }
      if (k.status === 'pending' && k.user_id === currentUser().id) {
        const claim = button(t('keys.claim'), () => busy(claim, async () => {
          const res = await api.post(`/v1/api-keys/${seg(k.id)}/claim`, {});
          await secretDialog({ title: t('keys.secret_title'), intro: t('keys.claimed_intro', { name: res.key.name }), secret: res.secret });
          await loadList();
        }), { small: true, ariaLabel: t('keys.claim_named', { name: k.name }) });
        out.append(claim);
      }
      if (['active', 'grace', 'pending'].includes(k.status)) {
        const revoke = button(t('keys.revoke'), () => busy(revoke, async () => {
          if (!(await confirmDialog({ title: t('keys.revoke_title', { name: k.name }), message: t('keys.revoke_body'), confirmLabel: t('keys.revoke'), danger: true }))) return;
          await api.del(`/v1/api-keys/${seg(k.id)}`);
          toast(t('keys.revoked'), 'success');
          await loadList();
        }), { small: true, kind: 'danger', testid: 'revoke-key', ariaLabel: t('keys.revoke_named', { name: k.name }) });
        out.append(revoke);
      }
      return out;
    }

    await loadList();
    return undefined;
  },
};
