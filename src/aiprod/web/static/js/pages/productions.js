// Productions: search (q), filters (status, filter grammar), sort, keyset
// pagination, live status over one /v1/ws socket.
import { h, replace, append } from '../dom.js';
import { t, formatDate, formatMoney, formatSeconds, tOr } from '../i18n.js';
import { api, withQuery, seg, ApiError } from '../api.js';
import { can } from '../auth.js';
import { LiveSocket } from '../live.js';
import { statusBadge, pageHeader, loading, emptyState, errorBox, field, button, toastError, scrollBox } from '../ui.js';

export const STATUSES = ['queued', 'processing', 'awaiting_approval', 'completed', 'failed', 'cancelled'];
const SORTS = ['-created', 'created', '-updated', '-completed', '-cost', 'cost', '-duration', 'duration'];
const PRESETS = ['quick_social', 'brand_campaign', 'premium_spot'];
const TERMINAL = new Set(['completed', 'failed', 'cancelled']);
const PAGE = 20;

function jobTitle(job) { return job.title || t('productions.untitled'); }

function statusCell(job) {
  const wrap = h('div', { class: 'status-cell' }, statusBadge(job.status));
  if (job.status === 'processing' || job.status === 'queued') {
    wrap.append(h('progress', { max: '100', value: String(job.progress || 0), class: 'progress progress--small',
      'aria-label': t('production.progress_of', { title: jobTitle(job) }) }));
  }
  return wrap;
}

function stageText(job) {
  if (!job.stage || job.status === 'completed') return '—';
  const stage = tOr(`stage.${job.stage}`, job.stage);
  return job.status === 'processing' ? `${stage} · ${job.progress || 0} %` : stage;
}

export default {
  title: () => t('productions.title'),
  async render(main, { query, navigate }) {
    const state = {
      q: query.get('q') || '', status: query.get('status') || '', filter: query.get('filter') || '',
      sort: query.get('sort') || '-created', preset: query.get('preset') || '', aspect: query.get('aspect') || '',
      from: query.get('from') || '', to: query.get('to') || '',
    };
    const rows = new Map();
    let cursor = null;

    const q = field({ label: t('productions.search'), name: 'q', type: 'search', value: state.q,
      placeholder: t('productions.search_placeholder'), maxlength: '500', testid: 'search-input' });
    const status = field({ label: t('productions.status'), name: 'status', type: 'select', value: state.status,
      options: [['', t('productions.any_status')], ...STATUSES.map((s) => [s, t(`status.${s}`)])], testid: 'status-filter' });
    const sort = field({ label: t('productions.sort'), name: 'sort', type: 'select', value: state.sort,
      options: SORTS.map((s) => [s, t(`sort.${s}`)]), testid: 'sort-select' });
    const filter = field({ label: t('productions.filter'), name: 'filter', value: state.filter, maxlength: '2000',
      placeholder: 'status:failed|cancelled, created:>=2026-03', hint: t('productions.filter_hint'), testid: 'filter-input' });
    const preset = field({ label: t('productions.preset'), name: 'preset', type: 'select', value: state.preset,
      options: [['', t('productions.any')], ...PRESETS.map((p) => [p, t(`preset.${p}`)])] });
    const aspect = field({ label: t('productions.aspect'), name: 'aspect', type: 'select', value: state.aspect,
      options: [['', t('productions.any')], ...['16:9', '9:16', '1:1'].map((a) => [a, t(`aspect.${a}`)])] });
    const from = field({ label: t('productions.from'), name: 'from', type: 'date', value: state.from });
    const to = field({ label: t('productions.to'), name: 'to', type: 'date', value: state.to });
    const advancedOn = Boolean(state.filter || state.preset || state.aspect || state.from || state.to);
    const advanced = h('details', { class: 'advanced', open: advancedOn },
      h('summary', null, t('productions.advanced')),
      h('div', { class: 'grid grid--dense' }, preset.wrap, aspect.wrap, from.wrap, to.wrap), filter.wrap,
      h('p', { class: 'field__hint' }, t('productions.filter_fields')));
    const form = h('form', { class: 'searchbar', role: 'search', 'aria-label': t('productions.search_form') },
      h('div', { class: 'searchbar__row' }, q.wrap, status.wrap, sort.wrap,
        h('div', { class: 'searchbar__buttons' }, h('button', { type: 'submit', class: 'btn btn--primary' }, t('productions.search_button')))),
      advanced);

    const apply = () => {
      const next = { q: q.input.value.trim(), status: status.input.value, filter: filter.input.value.trim(), sort: sort.input.value,
        preset: preset.input.value, aspect: aspect.input.value, from: from.input.value, to: to.input.value };
      const path = withQuery('/productions', { ...next, sort: next.sort === '-created' ? '' : next.sort });
      navigate(path);
    };
    form.addEventListener('submit', (ev) => { ev.preventDefault(); apply(); });
    status.input.addEventListener('change', apply);
    sort.input.addEventListener('change', apply);

    // The structured fields are clauses of the `filter` grammar, and'ed with what is typed.
    const filterParam = () => [
      state.preset && `preset:${state.preset}`, state.aspect && `aspect:${state.aspect}`,
      state.from && `created:>=${state.from}`, state.to && `created:<=${state.to}`, state.filter,
    ].filter(Boolean).join(',');
    const listParams = () => ({ q: state.q, status: state.status, filter: filterParam(),
      sort: state.sort === '-created' ? '' : state.sort });
    const exportLink = (format) => h('a', { class: 'btn btn--ghost btn--small', download: '',
      href: withQuery('/v1/exports/productions', { format, ...listParams() }) }, t('productions.export', { format: format.toUpperCase() }));

    const tbody = h('tbody');
    const tableEl = scrollBox(t('productions.title'), h('table', { class: 'table table--productions table--cards' },
      h('caption', { class: 'visually-hidden' }, t('productions.title')),
      h('thead', null, h('tr', null, [t('productions.col_title'), t('productions.col_status'), t('productions.col_stage'),
        t('productions.col_created')].map((l) => h('th', { scope: 'col' }, l)),
      [t('productions.col_cost'), t('productions.col_length')].map((l) => h('th', { scope: 'col', class: 'num' }, l)))),
      tbody));
    const results = h('div', { class: 'results', 'aria-busy': 'true' });
    const count = h('p', { class: 'visually-hidden', role: 'status', 'data-testid': 'result-count' });
    const moreBtn = button(t('productions.more'), () => loadPage(true), { testid: 'load-more' });
    const moreWrap = h('div', { class: 'more', hidden: true }, moreBtn);
    const liveNote = h('p', { class: 'live-note muted', 'aria-live': 'polite' });

    const newBtn = can('jobs:create') ? h('a', { href: '#/new', class: 'btn btn--primary' }, t('productions.new')) : null;
    main.append(pageHeader(t('productions.title'), newBtn), form,
      h('div', { class: 'toolbar' }, liveNote, h('div', { class: 'toolbar__end' }, exportLink('csv'), exportLink('ndjson'))),
      count, results, moreWrap);

    function rowFor(job) {
      const statusTd = h('td', { 'data-label': t('productions.col_status') }, statusCell(job));
      const stageTd = h('td', { 'data-label': t('productions.col_stage') }, stageText(job));
      const tr = h('tr', { 'data-testid': 'production-row', 'data-id': job.id },
        h('td', { 'data-label': t('productions.col_title'), class: 'cell-title' },
          h('a', { href: `#/productions/${seg(job.id)}`, class: 'row-link' }, jobTitle(job))),
        statusTd, stageTd,
        h('td', { 'data-label': t('productions.col_created') }, formatDate(job.created_at)),
        h('td', { 'data-label': t('productions.col_cost'), class: 'num' }, formatMoney(job.estimate && job.estimate.total)),
        h('td', { 'data-label': t('productions.col_length'), class: 'num' }, formatSeconds(job.duration)));
      const entry = { tr, job, update(next) {
        entry.job = { ...entry.job, ...next };
        replace(statusTd, statusCell(entry.job));
        replace(stageTd, stageText(entry.job));
      } };
      rows.set(job.id, entry);
      return tr;
    }

    async function loadPage(more) {
      results.setAttribute('aria-busy', 'true');
      if (!more) replace(results, loading());
      moreBtn.disabled = true;
      try {
        const page = await api.get(withQuery('/v1/productions', { ...listParams(), limit: PAGE, cursor: more ? cursor : '' }));
        cursor = page.next_cursor;
        if (!more) {
          rows.clear();
          replace(tbody);
          replace(results, page.items.length ? tableEl : emptyState(
            state.q || state.status || filterParam() ? t('productions.none_match') : t('productions.none_yet')));
        }
        append(tbody, page.items.map(rowFor));
        moreWrap.hidden = !cursor;
        count.textContent = t('productions.shown', { n: rows.size });
      } catch (err) {
        if (err instanceof ApiError && err.code === 'invalid_filter') {
          const d = err.details || {};
          const target = d.parameter === 'q' ? q : filter;
          if (target === filter) advanced.open = true;
          target.setError(err.message);
          replace(results, emptyState(t('productions.fix_filter')));
          target.input.focus();
        } else if (!more) {
          replace(results, errorBox(err));
        } else {
          toastError(err);
        }
      } finally {
        moreBtn.disabled = false;
        results.setAttribute('aria-busy', 'false');
      }
    }

    const plainListing = () => !state.q && !filterParam() && state.sort === '-created';
    async function onEvent(ev) {
      const entry = rows.get(ev.job_id);
      if (entry) {
        entry.update({ status: ev.status, stage: ev.stage, progress: ev.progress });
        if (state.status && ev.status !== state.status && TERMINAL.has(ev.status)) entry.tr.classList.add('row--stale');
        return;
      }
      if (ev.type === 'job.queued' && plainListing() && (!state.status || state.status === ev.status)) {
        try {
          const job = await api.get(`/v1/productions/${seg(ev.job_id)}`);
          if (rows.has(job.id)) return;
          if (!tbody.isConnected) replace(results, tableEl);
          tbody.prepend(rowFor(job));
        } catch { /* not visible to us, or gone */ }
      }
    }

    async function refreshOpen() {
      const open = [...rows.values()].filter((e) => !TERMINAL.has(e.job.status)).slice(0, 50);
      await Promise.all(open.map(async (e) => {
        try { e.update(await api.get(`/v1/productions/${seg(e.job.id)}`)); } catch { /* ignore */ }
      }));
    }

    const live = new LiveSocket({
      onEvent,
      onState: (s, info) => {
        liveNote.textContent = s === 'live' ? t('live.on') : s === 'retrying' ? t('live.retrying') : '';
        liveNote.dataset.state = s;
        if (s === 'live' && info && info.reconnected) refreshOpen();
      },
      onError: () => {},
    });

    await loadPage(false);
    live.start();
    return () => live.stop();
  },
};
