// The storyboard of a production: read-only cards, editable while the job
// awaits approval (PATCH …/storyboard), and a per-scene re-render dialog for
// completed or failed jobs (POST …/scenes/{index}/rerender).
import { h, replace } from '../dom.js';
import { t, tOr, formatSeconds } from '../i18n.js';
import { api, seg, ApiError } from '../api.js';
import { can } from '../auth.js';
import { field, openDialog, showFieldErrors, toast, errorBox, emptyState, button } from '../ui.js';

const CAMERAS = ['static', 'pan_left', 'pan_right', 'zoom_in', 'zoom_out'];
const TRANSITIONS = ['cut', 'crossfade', 'slide'];

function sceneFields(scene, prefix) {
  const label = (k) => t(`scene.${k}`);
  return {
    narration: field({ label: label('narration'), name: `${prefix}narration`, type: 'textarea', rows: '3', maxlength: '2000', value: scene.narration || '', wide: true }),
    visual: field({ label: label('visual'), name: `${prefix}visual`, type: 'textarea', rows: '2', maxlength: '1000', value: scene.visual || '', wide: true }),
    on_screen_text: field({ label: label('on_screen_text'), name: `${prefix}text`, maxlength: '200', value: scene.on_screen_text || '' }),
    duration: field({ label: label('duration'), name: `${prefix}duration`, type: 'number', min: '0.51', max: '120', step: 'any', value: String(scene.duration) }),
    camera: field({ label: label('camera'), name: `${prefix}camera`, type: 'select', value: scene.camera || 'static', options: CAMERAS.map((c) => [c, t(`camera.${c}`)]) }),
    transition: field({ label: label('transition'), name: `${prefix}transition`, type: 'select', value: scene.transition || 'crossfade', options: TRANSITIONS.map((c) => [c, t(`transition.${c}`)]) }),
  };
}

function readFields(f) {
  return {
    narration: f.narration.input.value,
    visual: f.visual.input.value,
    on_screen_text: f.on_screen_text.input.value,
    duration: Number(f.duration.input.value),
    camera: f.camera.input.value,
    transition: f.transition.input.value,
  };
}

function sceneHeading(scene) {
  return `${t('scene.title', { n: scene.index + 1 })} · ${tOr(`scene_kind.${scene.kind}`, scene.kind)} · ${formatSeconds(scene.duration)}`;
}

/**
 * storyboardPanel({job, onChanged}) → {node, load(job)}
 * onChanged(job) is called after an approve, a save or a re-render.
 */
export function storyboardPanel({ jobId, onChanged }) {
  const body = h('div', { class: 'storyboard__body' });
  const node = h('section', { class: 'card storyboard', 'aria-labelledby': 'storyboard-title', id: 'storyboard' },
    h('h2', { id: 'storyboard-title' }, t('storyboard.title')), body);
  let editors = null;
  let board = null;

  async function save() {
    const next = { ...board, scenes: board.scenes.map((s, i) => ({ ...s, ...readFields(editors.scenes[i]) })) };
    if (editors.title) next.title = editors.title.input.value;
    try {
      const job = await api.patch(`/v1/productions/${seg(jobId)}/storyboard`, next);
      board = next;
      editors.dirty = false;
      return job;
    } catch (err) {
      const fields = {};
      editors.scenes.forEach((f, i) => { for (const [k, v] of Object.entries(f)) fields[`scenes.${i}.${k}`] = v; });
      if (editors.title) fields.title = editors.title;
      showFieldErrors(err, fields, editors.summary);
      throw err;
    }
  }

  function renderReadOnly(job) {
    const rerender = can('jobs:update') && (job.status === 'completed' || job.status === 'failed');
    return h('ol', { class: 'scenes' }, board.scenes.map((scene) => h('li', { class: 'scene', 'data-testid': 'storyboard-scene', 'data-index': String(scene.index) },
      h('div', { class: 'scene__head' }, h('h3', null, sceneHeading(scene)),
        rerender ? button(t('scene.rerender'), () => rerenderDialog(scene), { small: true, testid: 'rerender-button',
          ariaLabel: t('scene.rerender_n', { n: scene.index + 1 }) }) : null),
      scene.narration ? h('blockquote', { class: 'scene__narration' }, scene.narration) : null,
      h('dl', { class: 'facts facts--compact' },
        scene.visual ? [h('dt', null, t('scene.visual')), h('dd', null, scene.visual)] : null,
        scene.on_screen_text ? [h('dt', null, t('scene.on_screen_text')), h('dd', null, scene.on_screen_text)] : null,
        h('dt', null, t('scene.camera')), h('dd', null, t(`camera.${scene.camera || 'static'}`)),
        h('dt', null, t('scene.transition')), h('dd', null, t(`transition.${scene.transition || 'crossfade'}`))))));
  }

  function renderEditor(job) {
    editors = { scenes: [], dirty: false, summary: h('div', { class: 'form-summary' }) };
    editors.title = field({ label: t('storyboard.video_title'), name: 'sb-title', maxlength: '120', value: board.title });
    const items = board.scenes.map((scene, i) => {
      const f = sceneFields(scene, `s${i}-`);
      editors.scenes.push(f);
      return h('li', { class: 'scene scene--edit', 'data-testid': 'storyboard-scene', 'data-index': String(scene.index) },
        h('fieldset', null, h('legend', null, sceneHeading(scene)),
          h('div', { class: 'grid' }, f.narration.wrap, f.visual.wrap, f.on_screen_text.wrap, f.duration.wrap, f.camera.wrap, f.transition.wrap)));
    });
    const saveBtn = button(t('storyboard.save'), async () => {
      saveBtn.disabled = true;
      try { onChanged(await save()); toast(t('storyboard.saved'), 'success'); } catch { /* shown */ } finally { saveBtn.disabled = false; }
    }, { testid: 'save-storyboard' });
    const form = h('form', { class: 'storyboard-form', novalidate: true }, editors.title.wrap, h('ol', { class: 'scenes' }, items),
      editors.summary, h('div', { class: 'form-actions' }, saveBtn));
    form.addEventListener('input', () => { editors.dirty = true; });
    form.addEventListener('submit', (ev) => ev.preventDefault());
    return form;
  }

  async function rerenderDialog(scene) {
    const f = sceneFields(scene, 'rr-');
    const summary = h('div', { class: 'form-summary' });
    const before = readFields(f);
    await openDialog({
      title: t('scene.rerender_title', { n: scene.index + 1 }),
      body: [h('p', { class: 'muted' }, t('scene.rerender_intro')), h('div', { class: 'grid' },
        f.narration.wrap, f.visual.wrap, f.on_screen_text.wrap, f.duration.wrap, f.camera.wrap, f.transition.wrap), summary],
      actions: [{ label: t('common.cancel'), value: 'cancel' },
        { label: t('scene.rerender_submit'), value: 'ok', kind: 'primary', submit: true, testid: 'rerender-submit' }],
      initialFocus: f.narration.input,
      onSubmit: async () => {
        const now = readFields(f);
        const changes = {};
        for (const [k, v] of Object.entries(now)) if (v !== before[k]) changes[k] = v;
        if (!Object.keys(changes).length) {
          replace(summary, h('p', { class: 'alert alert--error', role: 'alert' }, t('scene.no_changes')));
          return false;
        }
        try {
          const job = await api.post(`/v1/productions/${seg(jobId)}/scenes/${scene.index}/rerender`, changes);
          toast(t('scene.rerender_queued', { n: scene.index + 1 }), 'success');
          onChanged(job);
          return true;
        } catch (err) {
          showFieldErrors(err, f, summary);
          return false;
        }
      },
    });
  }

  async function load(job, planned) {
    if (!planned) {
      // No storyboard before planning has finished: do not ask (a 404 is noise).
      board = null;
      editors = null;
      replace(body, emptyState(job.status === 'failed' || job.status === 'cancelled' ? t('storyboard.none') : t('storyboard.pending')));
      return null;
    }
    try {
      board = await api.get(`/v1/productions/${seg(jobId)}/storyboard`);
    } catch (err) {
      board = null;
      replace(body, err instanceof ApiError && err.status === 404
        ? emptyState(job.status === 'failed' || job.status === 'cancelled' ? t('storyboard.none') : t('storyboard.pending'))
        : errorBox(err));
      return null;
    }
    const editable = job.status === 'awaiting_approval' && can('jobs:update');
    const meta = h('p', { class: 'muted' }, t('storyboard.meta', {
      n: board.scenes.length, s: formatSeconds(board.scenes.reduce((a, s) => a + s.duration, 0)),
      by: tOr(`written_by.${board.written_by}`, board.written_by || '—'),
    }));
    const notes = board.notes && board.notes.length
      ? h('div', { class: 'alert alert--info' }, h('p', null, t('storyboard.notes')), h('ul', null, board.notes.map((n) => h('li', null, n)))) : null;
    replace(body, meta, notes, editable ? renderEditor(job) : renderReadOnly(job));
    if (!editable) editors = null;
    return board;
  }

  /** Save pending edits (if any) before approving. */
  async function flush() {
    if (editors && editors.dirty) await save();
  }

  return { node, load, flush };
}
