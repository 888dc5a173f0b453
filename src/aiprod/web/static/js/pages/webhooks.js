// Settings → webhooks: endpoints (create with the secret shown once,
// enable/disable, rotate the secret, delete) and each one's deliveries with replay.
import { h, replace, append } from '../dom.js';
import { t, formatDate } from '../i18n.js';
import { api, seg, withQuery } from '../api.js';
import { can } from '../auth.js';
import { pageHeader, loading, errorBox, emptyState, table, tableRow, field, checkbox, button, busy, confirmDialog,
  secretDialog, showFieldErrors, toast, pill } from '../ui.js';

const EVENT_TYPES = ['job.queued', 'job.started', 'job.resumed', 'stage.started', 'stage.progress', 'stage.completed',
  'stage.fallback', 'job.awaiting_approval', 'job.storyboard_updated', 'job.cancel_requested', 'job.retry_scheduled',
  'job.completed', 'job.failed', 'job.cancelled'];
const DELIVERY_KIND = { succeeded: 'ok', failed: 'bad', pending: 'warn', delivering: 'warn' };

export default {
  title: () => t('webhooks.title'),
  async render(main) {
    const writable = can('webhooks:write');
    const listWrap = h('div', null, loading());
    main.append(pageHeader(t('webhooks.title')), h('p', { class: 'muted lead' }, t('webhooks.lead')));
    if (!can('webhooks:read')) { main.append(h('p', { class: 'alert alert--info' }, t('webhooks.not_allowed'))); return undefined; }
    if (writable) main.append(createForm());
    main.append(h('div', { class: 'card' }, h('h2', { id: 'hooks-title' }, t('webhooks.list_title')), listWrap));

    function createForm() {
      const url = field({ label: t('webhooks.url'), name: 'url', type: 'url', maxlength: '2048', required: true, placeholder: 'https://example.com/hooks/aiprod', testid: 'webhook-url', wide: true });
      const description = field({ label: t('webhooks.description'), name: 'description', maxlength: '200', hint: t('common.optional') });
      const all = checkbox({ label: t('webhooks.all_events'), name: 'ev-all', checked: true });
      const boxes = EVENT_TYPES.map((e) => ({ e, c: checkbox({ label: e, name: `ev-${e}` }) }));
      const grid = h('div', { class: 'scopes__grid', hidden: true }, boxes.map((b) => b.c.wrap));
      all.input.addEventListener('change', () => { grid.hidden = all.input.checked; });
      const enabled = checkbox({ label: t('webhooks.enabled'), name: 'enabled', checked: true });
      const summary = h('div', { class: 'form-summary' });
      const events = h('fieldset', { class: 'scopes field--wide' }, h('legend', null, t('webhooks.events')), all.wrap, grid);
      const form = h('form', { class: 'card', novalidate: true, 'aria-labelledby': 'new-hook-title', 'data-testid': 'create-webhook-form' },
        h('h2', { id: 'new-hook-title' }, t('webhooks.create_title')),
        h('div', { class: 'grid' }, url.wrap, description.wrap, enabled.wrap, events), summary,
        h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn--primary', 'data-testid': 'create-webhook' }, t('webhooks.create'))));
      const fields = { url, description, event_types: { setError: (m) => { if (m) toast(m, 'error'); } } };
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        const body = { url: url.input.value.trim(), enabled: enabled.input.checked,
          event_types: all.input.checked ? ['*'] : boxes.filter((b) => b.c.input.checked).map((b) => b.e) };
        if (description.input.value.trim()) body.description = description.input.value.trim();
        if (!body.url) { url.setError(t('webhooks.url_required')); url.input.focus(); return; }
        if (!body.event_types.length) { summary.textContent = ''; summary.append(h('p', { class: 'alert alert--error', role: 'alert' }, t('webhooks.events_required'))); return; }
        const submit = form.querySelector('button[type="submit"]');
        submit.disabled = true;
        try {
          const created = await api.post('/v1/webhooks', body);
          showFieldErrors(null, fields, null);
          replace(summary);
          form.reset(); grid.hidden = true;
          await secretDialog({ title: t('webhooks.secret_title'), intro: t('webhooks.secret_intro', { url: created.url }), secret: created.secret, testid: 'webhook-secret' });
          await loadList();
        } catch (err) { showFieldErrors(err, fields, summary); } finally { submit.disabled = false; }
      });
      return form;
    }

    async function loadList() {
      let items;
      try { items = (await api.get('/v1/webhooks')).items; } catch (err) { replace(listWrap, errorBox(err)); return; }
      if (!items.length) { replace(listWrap, emptyState(t('webhooks.none'))); return; }
      replace(listWrap, h('ul', { class: 'hooks' }, items.map(hookItem)));
    }

    function hookItem(w) {
      const deliveries = h('div', { class: 'deliveries' });
      const panel = h('details', { class: 'hook__deliveries' }, h('summary', null, t('webhooks.deliveries')), deliveries);
      let loaded = false;
      panel.addEventListener('toggle', () => { if (panel.open && !loaded) { loaded = true; deliveryList(w, deliveries); } });
      const actions = h('div', { class: 'row-actions' });
      if (writable) {
        const toggle = button(w.enabled ? t('webhooks.disable') : t('webhooks.enable'), () => busy(toggle, async () => {
          await api.patch(`/v1/webhooks/${seg(w.id)}`, { enabled: !w.enabled });
          toast(w.enabled ? t('webhooks.disabled_done') : t('webhooks.enabled_done'), 'success');
          await loadList();
        }), { small: true, testid: 'toggle-webhook' });
        const rotate = button(t('webhooks.rotate'), () => busy(rotate, async () => {
          if (!(await confirmDialog({ title: t('webhooks.rotate_title'), message: t('webhooks.rotate_body'), confirmLabel: t('webhooks.rotate') }))) return;
          const res = await api.post(`/v1/webhooks/${seg(w.id)}/rotate-secret`, {});
          await secretDialog({ title: t('webhooks.secret_title'), intro: t('webhooks.secret_intro', { url: res.url }), secret: res.secret, testid: 'webhook-secret' });
        }), { small: true });
        const del = button(t('common.delete'), () => busy(del, async () => {
          if (!(await confirmDialog({ title: t('webhooks.delete_title'), message: t('webhooks.delete_body', { url: w.url }), confirmLabel: t('common.delete'), danger: true }))) return;
          await api.del(`/v1/webhooks/${seg(w.id)}`);
          toast(t('webhooks.deleted'), 'success');
          await loadList();
        }), { small: true, kind: 'danger', testid: 'delete-webhook' });
        actions.append(toggle, rotate, del);
      }
      return h('li', { class: 'hook card card--flat', 'data-testid': 'webhook-row', 'data-id': w.id },
        h('div', { class: 'hook__head' },
          h('div', null, h('p', { class: 'hook__url' }, h('code', null, w.url)),
            w.description ? h('p', { class: 'muted' }, w.description) : null,
            h('p', { class: 'hook__meta' }, pill(w.enabled ? t('webhooks.on') : t('webhooks.off'), w.enabled ? 'ok' : 'neutral'),
              ' ', h('span', { class: 'muted' }, w.event_types.includes('*') ? t('webhooks.all_events') : w.event_types.join(', ')))),
          actions),
        panel);
    }

    async function deliveryList(w, wrap) {
      let cursor = null;
      const status = field({ label: t('webhooks.delivery_status'), name: `ds-${w.id}`, type: 'select',
        options: [['', t('webhooks.any_status')], ...Object.keys(DELIVERY_KIND).map((s) => [s, t(`delivery.${s}`)])] });
      const tbody = h('tbody');
      const cols = [
        { label: t('webhooks.col_event'), cell: (d) => h('code', null, d.event_type) },
        { label: t('webhooks.col_status'), cell: (d) => pill(t(`delivery.${d.status}`), DELIVERY_KIND[d.status]) },
        { label: t('webhooks.col_attempts'), cell: (d) => String(d.attempts), class: 'num' },
        { label: t('webhooks.col_last'), cell: (d) => [d.last_status_code, d.last_error].filter(Boolean).join(' · ') || '—' },
        { label: t('webhooks.col_created'), cell: (d) => formatDate(d.created_at) },
        { label: t('common.actions'), cell: (d) => (writable ? replayButton(w, d) : '') },
      ];
      const more = button(t('productions.more'), () => load(true), { small: true });
      const body = h('div');
      status.input.addEventListener('change', () => load(false));
      replace(wrap, h('div', { class: 'inline-filters' }, status.wrap), body, h('div', { class: 'more' }, more));
      async function load(append_) {
        if (!append_) { replace(body, loading()); cursor = null; }
        try {
          const page = await api.get(withQuery(`/v1/webhooks/${seg(w.id)}/deliveries`, { status: status.input.value, cursor: append_ ? cursor : '', limit: 20 }));
          cursor = page.next_cursor;
          if (!append_) {
            replace(tbody);
            replace(body, page.items.length ? table(cols, [], { caption: t('webhooks.deliveries') }) : emptyState(t('webhooks.no_deliveries')));
            const tb = body.querySelector('tbody');
            if (tb) tb.replaceWith(tbody);
          }
          append(tbody, page.items.map((d) => tableRow(cols, d, () => ({ 'data-testid': 'delivery-row' }))));
          more.hidden = !cursor;
        } catch (err) { replace(body, errorBox(err)); }
      }
      await load(false);
    }

    function replayButton(w, d) {
      const b = button(t('webhooks.replay'), () => busy(b, async () => {
        await api.post(`/v1/webhooks/${seg(w.id)}/deliveries/${seg(d.id)}/replay`, {});
        toast(t('webhooks.replayed'), 'success');
      }), { small: true, testid: 'replay-delivery' });
      return b;
    }

    await loadList();
    return undefined;
  },
};
