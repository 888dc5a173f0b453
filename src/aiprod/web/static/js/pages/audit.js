// Admin → audit log: filters (event, outcome, actor, subject, IP, period) and
// pagination towards older events (next_before).
import { h, replace, append } from '../dom.js';
import { t, formatDate } from '../i18n.js';
import { api, withQuery } from '../api.js';
import { pageHeader, loading, errorBox, emptyState, field, button, pill, tableRow, showFieldErrors, scrollBox } from '../ui.js';

const OUTCOME_KIND = { success: 'ok', failure: 'bad', denied: 'warn' };

function toUtc(local) {
  if (!local) return '';
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

export default {
  title: () => t('audit.title'),
  async render(main) {
    let before = null;
    const f = {
      event: field({ label: t('audit.event'), name: 'event', maxlength: '48', placeholder: 'login.', hint: t('audit.event_hint') }),
      outcome: field({ label: t('audit.outcome'), name: 'outcome', type: 'select',
        options: [['', t('audit.any_outcome')], ...Object.keys(OUTCOME_KIND).map((o) => [o, t(`outcome.${o}`)])] }),
      actor_id: field({ label: t('audit.actor_id'), name: 'actor_id', maxlength: '36' }),
      subject_id: field({ label: t('audit.subject_id'), name: 'subject_id', maxlength: '64' }),
      ip: field({ label: t('audit.ip'), name: 'ip', maxlength: '64' }),
      since: field({ label: t('audit.since'), name: 'since', type: 'datetime-local' }),
      until: field({ label: t('audit.until'), name: 'until', type: 'datetime-local' }),
    };
    const summary = h('div', { class: 'form-summary' });
    const form = h('form', { class: 'card filters', novalidate: true, role: 'search', 'aria-label': t('audit.filters') },
      h('div', { class: 'grid grid--dense' }, Object.values(f).map((x) => x.wrap)), summary,
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn--primary' }, t('audit.apply')),
        h('button', { type: 'reset', class: 'btn btn--ghost' }, t('audit.clear'))));
    const body = h('div');
    const tbody = h('tbody');
    const more = button(t('audit.older'), () => load(true), { testid: 'load-more' });
    const moreWrap = h('div', { class: 'more', hidden: true }, more);
    form.addEventListener('submit', (ev) => { ev.preventDefault(); load(false); });
    form.addEventListener('reset', () => setTimeout(() => load(false), 0));
    main.append(pageHeader(t('audit.title')), form, body, moreWrap);

    const cols = [
      { label: t('audit.col_seq'), cell: (e) => String(e.seq), class: 'num' },
      { label: t('audit.col_time'), cell: (e) => formatDate(e.occurred_at) },
      { label: t('audit.event'), cell: (e) => h('code', null, e.event) },
      { label: t('audit.outcome'), cell: (e) => pill(t(`outcome.${e.outcome}`), OUTCOME_KIND[e.outcome] || 'neutral') },
      { label: t('audit.col_actor'), cell: (e) => e.actor || e.actor_id || '—' },
      { label: t('audit.col_subject'), cell: (e) => [e.subject_type, e.subject_id].filter(Boolean).join(' ') || '—' },
      { label: t('audit.ip'), cell: (e) => e.ip || '—' },
      { label: t('audit.col_details'), cell: (e) => (e.details && Object.keys(e.details).length
        ? h('details', null, h('summary', null, t('audit.show')), h('pre', { class: 'json' }, JSON.stringify(e.details, null, 2))) : '—') },
    ];

    function params() {
      return {
        event: f.event.input.value.trim(), outcome: f.outcome.input.value, actor_id: f.actor_id.input.value.trim(),
        subject_id: f.subject_id.input.value.trim(), ip: f.ip.input.value.trim(),
        since: toUtc(f.since.input.value), until: toUtc(f.until.input.value),
      };
    }

    async function load(older) {
      if (!older) { replace(body, loading()); before = null; }
      try {
        const page = await api.get(withQuery('/v1/admin/audit', { ...params(), before: older ? before : '', limit: 50 }));
        showFieldErrors(null, f, summary);
        before = page.next_before;
        if (!older) {
          replace(tbody);
          replace(body, page.items.length ? scrollBox(t('audit.title'), h('table', { class: 'table table--compact table--cards' },
            h('caption', { class: 'visually-hidden' }, t('audit.title')),
            h('thead', null, h('tr', null, cols.map((c) => h('th', { scope: 'col' }, c.label)))), tbody)) : emptyState(t('audit.none')));
        }
        append(tbody, page.items.map((e) => tableRow(cols, e, () => ({ 'data-testid': 'audit-row' }))));
        moreWrap.hidden = before === null || before === undefined;
      } catch (err) {
        showFieldErrors(err, f, summary);
        replace(body, errorBox(err));
      }
    }
    await load(false);
    return undefined;
  },
};
