// What a production made: the video with its subtitle track, the files, the
// exports, the QA report (qa.json) and the cost (estimate and cost.json).
import { h, replace } from '../dom.js';
import { t, tOr, formatBytes, formatMoney, formatSeconds } from '../i18n.js';
import { api, seg, withQuery } from '../api.js';
import { can } from '../auth.js';
import { emptyState, errorBox, pill, scrollBox } from '../ui.js';

function artifactUrl(jobId, a) {
  return a.url && a.url.startsWith('/') ? a.url : `/v1/productions/${seg(jobId)}/artifacts/${a.name.split('/').map(seg).join('/')}`;
}

async function json(jobId, name) {
  try { return await api.get(`/v1/productions/${seg(jobId)}/artifacts/${seg(name)}`); } catch { return null; }
}

export function resultsPanel(jobId) {
  const player = h('div', { class: 'player-wrap' });
  const files = h('div');
  const qa = h('div');
  const cost = h('div');
  const playerCard = h('section', { class: 'card', 'aria-labelledby': 'video-title' }, h('h2', { id: 'video-title' }, t('production.video')), player);
  const filesCard = h('section', { class: 'card', 'aria-labelledby': 'files-title' }, h('h2', { id: 'files-title' }, t('production.downloads')), files);
  const qaCard = h('section', { class: 'card', 'aria-labelledby': 'qa-title', 'data-testid': 'qa-report' }, h('h2', { id: 'qa-title' }, t('qa.title')), qa);
  const costCard = h('section', { class: 'card', 'aria-labelledby': 'cost-title', 'data-testid': 'cost-panel' }, h('h2', { id: 'cost-title' }, t('cost.title')), cost);

  async function load(job, language) {
    if (!can('results:read')) {
      replace(player, emptyState(t('production.no_results_permission')));
      replace(files); replace(qa); replace(cost, renderCost(job, null));
      return;
    }
    let artifacts = [];
    try {
      artifacts = (await api.get(`/v1/productions/${seg(jobId)}/artifacts`)).items;
    } catch (err) {
      replace(files, errorBox(err));
    }
    const byName = Object.fromEntries(artifacts.map((a) => [a.name, a]));
    renderPlayer(job, byName, language);
    renderFiles(artifacts);
    const [report, costReport] = await Promise.all([
      byName['qa.json'] ? json(jobId, 'qa.json') : null,
      byName['cost.json'] ? json(jobId, 'cost.json') : null,
    ]);
    replace(qa, renderQa(job, report));
    replace(cost, renderCost(job, costReport));
  }

  function renderPlayer(job, byName, language) {
    const video = byName['video.mp4'];
    if (!video) {
      replace(player, emptyState(job.status === 'completed' ? t('production.no_video') : t('production.video_pending')));
      return;
    }
    const el = h('video', { controls: true, preload: 'metadata', class: 'player', 'data-testid': 'video-player',
      src: `${artifactUrl(jobId, video)}?v=${video.sha256.slice(0, 12)}`, playsinline: true,
      poster: byName['poster.jpg'] ? `${artifactUrl(jobId, byName['poster.jpg'])}?v=${byName['poster.jpg'].sha256.slice(0, 12)}` : null,
      'aria-label': t('production.video_label', { title: job.title || t('productions.untitled') }) });
    const vtt = byName['subtitles.vtt'];
    if (vtt) {
      el.append(h('track', { kind: 'subtitles', src: `${artifactUrl(jobId, vtt)}?v=${vtt.sha256.slice(0, 12)}`,
        srclang: language || 'en', label: t('production.subtitles_label'),
        // Burned-in subtitles are already in the picture: the track stays off until asked for.
        default: job.subtitles_burned === false }));
    }
    replace(player, el);
  }

  function renderFiles(artifacts) {
    if (!artifacts.length) { replace(files, emptyState(t('production.no_files'))); return; }
    const item = (a) => h('li', { class: 'file' },
      h('a', { href: artifactUrl(jobId, a), download: a.name.split('/').pop(), 'data-testid': 'artifact-link' }, a.name),
      h('span', { class: 'muted' }, ` ${formatBytes(a.bytes)} · ${tOr(`stage.${a.stage}`, a.stage)}`));
    const main = artifacts.filter((a) => !a.name.startsWith('work/') && !a.name.startsWith('thumbs/'));
    const extra = artifacts.filter((a) => a.name.startsWith('work/') || a.name.startsWith('thumbs/'));
    const exportBase = `/v1/productions/${seg(jobId)}/export`;
    replace(files,
      h('ul', { class: 'files' }, main.map(item)),
      extra.length ? h('details', null, h('summary', null, t('production.more_files', { n: extra.length })), h('ul', { class: 'files' }, extra.map(item))) : null,
      h('h3', null, t('production.exports')),
      h('ul', { class: 'exports' }, ['json', 'csv', 'zip'].map((f) => h('li', null,
        h('a', { class: 'btn btn--ghost btn--small', href: withQuery(exportBase, { format: f }), download: `aiprod-${jobId}.${f}`, 'data-testid': `export-${f}` },
          t(`production.export_${f}`))))));
  }

  return { nodes: [playerCard, qaCard, costCard, filesCard], load };
}

function renderQa(job, report) {
  if (!report) {
    if (job.qa) return qaSummary(job.qa);
    return emptyState(job.status === 'completed' ? t('qa.none') : t('qa.pending'));
  }
  const rows = report.checks.map((c) => {
    const state = c.passed ? 'pass' : c.blocking ? 'fail' : 'warn';
    return h('tr', { 'data-testid': 'qa-check', 'data-state': state },
      h('th', { scope: 'row' }, tOr(`qa.check.${c.name}`, c.name.replace(/_/g, ' '))),
      h('td', null, pill(t(`qa.${state}`), state === 'pass' ? 'ok' : state === 'fail' ? 'bad' : 'warn')),
      h('td', null, c.measured || '—'), h('td', null, c.expected || '—'));
  });
  return h('div', null,
    h('p', null, pill(report.passed ? t('qa.passed') : t('qa.failed'), report.passed ? 'ok' : 'bad')),
    scrollBox(t('qa.checks'), h('table', { class: 'table table--compact' },
      h('thead', null, h('tr', null, [t('qa.check'), t('qa.result'), t('qa.measured'), t('qa.expected')].map((l) => h('th', { scope: 'col' }, l)))),
      h('tbody', null, rows))));
}

function qaSummary(s) {
  return h('div', null, h('p', null, pill(s.passed ? t('qa.passed') : t('qa.failed'), s.passed ? 'ok' : 'bad')),
    s.failed.length ? h('p', null, `${t('qa.failed_checks')}: ${s.failed.join(', ')}`) : null,
    s.warnings.length ? h('p', null, `${t('qa.warnings')}: ${s.warnings.join(', ')}`) : null);
}

function renderCost(job, report) {
  const est = job.estimate;
  const facts = [h('dt', null, t('cost.estimated')), h('dd', null, formatMoney(est && est.total))];
  if (report) {
    facts.push(h('dt', null, t('cost.actual')), h('dd', { 'data-testid': 'actual-cost' }, formatMoney(report.actual_total)));
    if (report.budget !== null && report.budget !== undefined) facts.push(h('dt', null, t('cost.budget')), h('dd', null, formatMoney(report.budget)));
  }
  if (job.duration) facts.push(h('dt', null, t('cost.length')), h('dd', null, formatSeconds(job.duration)));
  if (est) facts.push(h('dt', null, t('cost.render_time')), h('dd', null, formatSeconds(est.seconds)));
  const actual = Boolean(report && report.actual && report.actual.length);
  const stageCell = (stage, backend) => h('th', { scope: 'row' }, tOr(`stage.${stage}`, stage), h('span', { class: 'cell-sub' }, backend));
  const stageRows = actual ? report.actual.map((s) => h('tr', null, stageCell(s.stage, s.backend),
    h('td', { class: 'num' }, formatSeconds(s.wall_seconds)), h('td', { class: 'num' }, formatMoney(s.cost))))
    : est ? est.stages.map((s) => h('tr', null, stageCell(s.stage, s.backend),
      h('td', { class: 'num' }, formatSeconds(s.seconds)), h('td', { class: 'num' }, formatMoney(s.cost)))) : [];
  const caption = actual ? t('cost.by_stage_actual') : t('cost.by_stage_estimate');
  return h('div', null, h('dl', { class: 'facts' }, facts),
    stageRows.length ? scrollBox(caption, h('table', { class: 'table table--compact' },
      h('caption', null, caption),
      h('thead', null, h('tr', null, [t('cost.stage'), t('cost.time'), t('cost.amount')].map((l) => h('th', { scope: 'col', class: l === t('cost.stage') ? null : 'num' }, l)))),
      h('tbody', null, stageRows))) : null);
}
