// One production: status, live progress, storyboard (edit/approve/re-render),
// actions (cancel/retry/delete), video, files, exports, QA and cost.
import { h, replace, debounce } from '../dom.js';
import { t, formatDate, tOr } from '../i18n.js';
import { api, seg, ApiError } from '../api.js';
import { can } from '../auth.js';
import { LiveSocket } from '../live.js';
import { statusBadge, pageHeader, loading, errorBox, button, busy, confirmDialog, toast } from '../ui.js';
import { progressPanel } from './production-progress.js';
import { storyboardPanel } from './production-storyboard.js';
import { resultsPanel } from './production-results.js';

const RELOAD_ON = new Set(['job.queued', 'job.awaiting_approval', 'job.storyboard_updated', 'job.completed',
  'job.failed', 'job.cancelled', 'job.cancel_requested', 'job.retry_scheduled']);

export default {
  title: () => t('production.title'),
  async render(main, { params, navigate }) {
    const id = params.id;
    main.append(loading());
    let job;
    try {
      job = await api.get(`/v1/productions/${seg(id)}`);
    } catch (err) {
      replace(main, pageHeader(t('production.title')), errorBox(err),
        h('p', null, h('a', { href: '#/productions' }, t('notfound.back'))));
      return undefined;
    }
    const head = h('div');
    const banner = h('div', { 'aria-live': 'polite' });
    const liveNote = h('p', { class: 'muted live-note', 'aria-live': 'polite' });
    const progress = progressPanel(job);
    const storyboard = storyboardPanel({ jobId: id, onChanged: (next) => { setJob(next); reloadAll(); } });
    const results = resultsPanel(id);
    let language = 'en';
    let storyboardShown = false;

    replace(main, head, banner, liveNote,
      h('div', { class: 'detail-grid' },
        h('div', { class: 'detail-main' }, results.nodes[0], storyboard.node, results.nodes[1]),
        h('div', { class: 'detail-progress' }, progress.node),
        h('div', { class: 'detail-side' }, results.nodes[2], results.nodes[3])));

    function setJob(next) {
      job = next;
      document.title = `${job.title || t('productions.untitled')} · AIPROD`;
      renderHead();
      renderBanner();
    }

    const stageEl = h('span', { class: 'muted', 'data-testid': 'job-stage' });
    function renderStage() {
      stageEl.textContent = job.stage && job.status !== 'completed' ? `${t('production.stage')}: ${tOr(`stage.${job.stage}`, job.stage)}` : '';
    }

    function renderHead() {
      renderStage();
      const actions = [];
      const act = (label, fn, opts) => { const b = button(label, () => busy(b, fn), opts); actions.push(b); };
      if (can('jobs:update') && ['queued', 'processing', 'awaiting_approval'].includes(job.status)) {
        act(t('production.cancel'), async () => {
          if (!(await confirmDialog({ title: t('production.cancel_title'), message: t('production.cancel_body'), confirmLabel: t('production.cancel'), danger: true }))) return;
          setJob(await api.post(`/v1/productions/${seg(id)}/cancel`, {}));
          toast(t('production.cancel_done'), 'success');
        }, { testid: 'cancel-button' });
      }
      if (can('jobs:update') && job.status === 'failed') {
        act(t('production.retry'), async () => {
          setJob(await api.post(`/v1/productions/${seg(id)}/retry`, {}));
          toast(t('production.retry_done'), 'success');
        }, { testid: 'retry-button', kind: 'primary' });
      }
      if (can('jobs:delete')) {
        act(t('production.delete'), async () => {
          if (!(await confirmDialog({ title: t('production.delete_title'), message: t('production.delete_body'), confirmLabel: t('production.delete'), danger: true }))) return;
          await api.del(`/v1/productions/${seg(id)}`);
          toast(t('production.deleted'), 'success');
          navigate('/productions');
        }, { testid: 'delete-button', kind: 'danger' });
      }
      const focused = document.activeElement && head.contains(document.activeElement) && document.activeElement.tagName === 'H1';
      replace(head,
        h('p', { class: 'breadcrumb' }, h('a', { href: '#/productions' }, `← ${t('nav.productions')}`)),
        pageHeader(job.title || t('productions.untitled'), ...actions),
        h('div', { class: 'job-meta' }, statusBadge(job.status),
          stageEl,
          h('span', { class: 'muted' }, `${t('production.created')}: ${formatDate(job.created_at)}`),
          job.completed_at ? h('span', { class: 'muted' }, `${t('production.completed_at')}: ${formatDate(job.completed_at)}`) : null,
          job.fast_track ? h('span', { class: 'pill pill--ok' }, t('production.fast_track')) : null));
      if (focused) head.querySelector('h1').focus();
    }

    function renderBanner() {
      const parts = [];
      if (job.status === 'awaiting_approval') {
        const approve = can('jobs:approve') ? button(t('production.approve'), () => busy(approve, async () => {
          await storyboard.flush();
          setJob(await api.post(`/v1/productions/${seg(id)}/approve`, {}));
          toast(t('production.approved'), 'success');
          reloadAll();
        }), { kind: 'primary', testid: 'approve-button' }) : null;
        parts.push(h('div', { class: 'alert alert--info banner' },
          h('p', null, can('jobs:approve') ? t('production.awaiting') : t('production.awaiting_viewer')), approve));
      }
      if (job.status === 'failed' && job.error) {
        parts.push(h('div', { class: 'alert alert--error banner', 'data-testid': 'job-error' },
          h('p', null, h('strong', null, t('production.failed_heading')), ' ', job.error.message),
          h('p', { class: 'muted' }, [job.error.code, job.error.stage && tOr(`stage.${job.error.stage}`, job.error.stage)].filter(Boolean).join(' · '))));
      }
      replace(banner, parts);
    }

    async function reloadAll() {
      try { setJob(await api.get(`/v1/productions/${seg(id)}`)); } catch (err) {
        if (err instanceof ApiError && err.status === 404) { navigate('/productions'); return; }
      }
      // The server says whether planning is done: no request that would 404.
      const board = await storyboard.load(job, Boolean(job.has_storyboard));
      storyboardShown = Boolean(board);
      language = (board && board.language) || job.language || 'en';
      await results.load(job, language);
    }
    const reloadSoon = debounce(reloadAll, 400);

    let replayUntil = 0;
    const live = new LiveSocket({
      jobId: id,
      onEvent: (ev) => {
        const replaying = ev.seq <= replayUntil;
        progress.apply(ev, { quiet: replaying });
        if (replaying) {
          // The log is replayed: now we know whether planning finished.
          if (ev.seq === replayUntil && progress.isDone('plan') && !storyboardShown) reloadSoon();
          return;
        }
        if (RELOAD_ON.has(ev.type) || (ev.type === 'stage.completed' && ev.data && ev.data.stage === 'plan')) reloadSoon();
        else if (ev.status !== job.status) { job = { ...job, status: ev.status, stage: ev.stage, progress: ev.progress }; renderHead(); }
        else if (ev.stage !== job.stage) { job = { ...job, stage: ev.stage }; renderStage(); }
      },
      onState: (s, info) => {
        liveNote.textContent = s === 'live' ? t('live.on') : s === 'retrying' ? t('live.retrying') : '';
        liveNote.dataset.state = s;
        if (s === 'live' && info && info.subscribed && !info.reconnected) replayUntil = info.subscribed.last_seq || 0;
        if (s === 'live' && info && info.reconnected) reloadSoon();
      },
      onError: () => {
        // No live stream (refused, or the socket cannot be opened): poll instead.
        liveNote.textContent = t('live.polling');
        liveNote.dataset.state = 'polling';
        startPolling();
      },
    });

    let pollTimer = null;
    function startPolling() {
      if (pollTimer) return;
      pollTimer = setInterval(async () => {
        if (['completed', 'failed', 'cancelled'].includes(job.status)) return;
        try {
          const next = await api.get(`/v1/productions/${seg(id)}`);
          const changed = next.status !== job.status;
          setJob(next);
          progress.apply({ type: 'poll', status: next.status, stage: next.stage, progress: next.progress, data: { eta_seconds: next.eta_seconds } }, { quiet: true });
          if (changed) reloadAll();
        } catch { /* try again next time */ }
      }, 5000);
    }

    setJob(job);
    await reloadAll();
    live.start();
    return () => { live.stop(); reloadSoon.cancel(); clearInterval(pollTimer); };
  },
};
