// Live progress of one production: the whole job and each stage, with ETA,
// rebuilt from the job's event log (replayed on connect, then live).
import { h, replace } from '../dom.js';
import { t, tOr, formatSeconds } from '../i18n.js';

export const STAGES = ['plan', 'narrate', 'visuals', 'music', 'montage', 'qa'];
const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

export function progressPanel(job) {
  const stages = Object.fromEntries(STAGES.map((s) => [s, { state: 'pending', value: 0, cached: 0, units: 0 }]));
  let status = job.status;
  let progress = job.progress || 0;
  let eta = job.eta_seconds;
  // Before any event arrives, infer from the job itself.
  if (job.stage && STAGES.includes(job.stage)) {
    const idx = STAGES.indexOf(job.stage);
    STAGES.forEach((s, i) => {
      if (i < idx) stages[s].state = 'done';
      if (i === idx) stages[s].state = status === 'completed' ? 'done' : status === 'failed' ? 'failed' : status === 'processing' ? 'running' : 'done';
    });
    if (status === 'awaiting_approval') stages.plan.state = 'done';
  }
  if (status === 'completed') STAGES.forEach((s) => { stages[s].state = 'done'; });

  const overall = h('progress', { max: '100', value: String(progress), class: 'progress', id: 'overall-progress', 'aria-labelledby': 'overall-label' });
  const overallLabel = h('span', { id: 'overall-label' });
  const etaText = h('span', { class: 'eta', 'data-testid': 'eta' });
  const list = h('ol', { class: 'stages' });
  const announcer = h('p', { class: 'visually-hidden', 'aria-live': 'polite', 'data-testid': 'progress-announcer' });
  const node = h('section', { class: 'card progress-card', 'data-testid': 'stage-progress', 'aria-labelledby': 'progress-title' },
    h('h2', { id: 'progress-title' }, t('production.progress')),
    h('div', { class: 'overall' }, h('div', { class: 'overall__labels' }, overallLabel, etaText), overall),
    list, announcer);

  function paint() {
    overall.value = progress;
    overallLabel.textContent = t('production.overall', { p: progress });
    etaText.textContent = !TERMINAL.has(status) && status !== 'awaiting_approval' && eta !== null && eta !== undefined
      ? t('production.eta', { t: formatSeconds(eta) }) : '';
    replace(list, STAGES.map((s) => {
      const st = stages[s];
      const name = tOr(`stage.${s}`, s);
      let detail = t(`stage_state.${st.state}`);
      if (st.state === 'done' && st.cached && st.units && st.cached >= st.units) detail = t('stage_state.cached');
      const pct = Math.round(Math.min(1, st.value) * 100);
      if (st.state === 'running') detail = `${detail} · ${pct} %`;
      return h('li', { class: `stage stage--${st.state}`, 'data-stage': s, 'data-state': st.state },
        h('span', { class: 'stage__dot', 'aria-hidden': 'true' }),
        h('span', { class: 'stage__name' }, name),
        h('span', { class: 'stage__detail' }, detail),
        st.state === 'running' ? h('progress', { max: '100', value: String(pct), class: 'progress progress--small',
          'aria-label': t('production.stage_progress', { stage: name }) }) : null);
    }));
  }

  function say(text) { announcer.textContent = text; }

  /** Apply one job event (docs/websocket.md). */
  function apply(ev, { quiet = false } = {}) {
    status = ev.status || status;
    if (typeof ev.progress === 'number') progress = ev.progress;
    const d = ev.data || {};
    if ('eta_seconds' in d) eta = d.eta_seconds;
    const stage = d.stage || ev.stage;
    switch (ev.type) {
      case 'stage.started': {
        const idx = STAGES.indexOf(stage);
        STAGES.forEach((s, i) => { if (i > idx) stages[s] = { state: 'pending', value: 0, cached: 0, units: 0 }; });
        if (stages[stage]) stages[stage] = { state: 'running', value: 0, cached: 0, units: 0 };
        if (!quiet) say(t('production.stage_started', { stage: tOr(`stage.${stage}`, stage) }));
        break;
      }
      case 'stage.progress':
        if (stages[stage]) { stages[stage].state = 'running'; stages[stage].value = d.total ? d.value / d.total : 0; }
        break;
      case 'stage.completed':
        if (stages[stage]) stages[stage] = { state: 'done', value: 1, cached: d.cached || 0, units: d.units || 0 };
        break;
      case 'job.failed': {
        const failed = (d.error && d.error.stage) || ev.stage;
        if (stages[failed]) stages[failed].state = 'failed';
        eta = null;
        if (!quiet) say(t('production.failed_announce'));
        break;
      }
      case 'job.completed':
        STAGES.forEach((s) => { stages[s].state = 'done'; stages[s].value = 1; });
        eta = null;
        if (!quiet) say(t('production.completed_announce'));
        break;
      case 'job.cancelled':
        STAGES.forEach((s) => { if (stages[s].state === 'running') stages[s].state = 'cancelled'; });
        eta = null;
        break;
      case 'job.awaiting_approval':
        if (!quiet) say(t('production.awaiting_announce'));
        break;
      default:
        break;
    }
    paint();
  }

  paint();
  /** Whether a stage has finished (at least once), as far as the events tell. */
  const isDone = (stage) => stages[stage] && stages[stage].state === 'done';
  return { node, apply, isDone };
}
