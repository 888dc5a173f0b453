// New production: the ProductionRequest form, a live cost estimate
// (POST /v1/cost-estimate, debounced), voice preview, uploads, submit.
import { h, replace, append, debounce, nextId } from '../dom.js';
import { t, getLang, formatMoney, formatSeconds, tOr } from '../i18n.js';
import { api, withQuery, seg } from '../api.js';
import { can } from '../auth.js';
import { field, checkbox, pageHeader, showFieldErrors, loading, errorMessage, button } from '../ui.js';
import { uploader, describeMedia } from '../media.js';

const LANGS = ['en', 'fr', 'de', 'es', 'it', 'pt', 'nl', 'sv', 'da', 'nb', 'fi', 'pl', 'ru', 'tr', 'el', 'hu', 'ro', 'ja', 'cmn', 'ko', 'ar', 'hi'];
const MOODS = ['uplifting', 'calm', 'dramatic', 'corporate', 'playful', 'dark'];

function langName(code) {
  try { return new Intl.DisplayNames([getLang()], { type: 'language' }).of(code === 'cmn' ? 'zh' : code) || code; } catch { return code; }
}

export default {
  title: () => t('new.title'),
  async render(main, { navigate }) {
    if (!can('jobs:create')) {
      main.append(pageHeader(t('new.title')), h('p', { class: 'alert alert--info' }, t('new.not_allowed')));
      return undefined;
    }
    main.append(pageHeader(t('new.title')), loading());
    const presets = await api.get('/v1/presets');
    const presetByName = Object.fromEntries(presets.map((p) => [p.name, p]));
    let voiceReq = 0;
    const sceneMedia = []; // {media, scene (0-based)}
    let song = null;

    // ---- what to make
    let modeValue = 'prompt';
    const modeButton = (value, label) => h('button', { type: 'button', class: 'segmented__item', 'aria-pressed': String(value === modeValue),
      'data-mode': value, 'data-testid': `mode-${value}` }, label);
    const modeLabel = nextId('mode');
    const mode = h('div', { class: 'segmented', role: 'group', 'aria-labelledby': modeLabel },
      h('span', { id: modeLabel, class: 'segmented__label' }, t('new.mode')),
      modeButton('prompt', t('new.mode_prompt')), modeButton('script', t('new.mode_script')));
    const prompt = field({ label: t('new.prompt'), name: 'prompt', type: 'textarea', rows: '4', maxlength: '4000',
      hint: t('new.prompt_hint'), testid: 'prompt-input', wide: true });
    const script = field({ label: t('new.script'), name: 'script', type: 'textarea', rows: '10', maxlength: '50000',
      hint: t('new.script_hint'), testid: 'script-input', wide: true });
    script.wrap.hidden = true;
    const title = field({ label: t('new.title_field'), name: 'title', maxlength: '120', hint: t('common.optional'), testid: 'title-input' });
    const language = field({ label: t('new.language'), name: 'language', type: 'select', value: 'en', testid: 'production-language',
      options: LANGS.map((c) => [c, langName(c)]) });

    // ---- look and sound
    const preset = field({ label: t('new.preset'), name: 'preset', type: 'select', value: 'brand_campaign',
      options: presets.map((p) => [p.name, tOr(`preset.${p.name}`, p.name)]), hint: ' ' });
    const duration = field({ label: t('new.duration'), name: 'duration', type: 'number', min: '5', step: 'any', inputmode: 'decimal' });
    const aspect = field({ label: t('new.aspect'), name: 'aspect', type: 'select', value: '16:9',
      options: ['16:9', '9:16', '1:1'].map((a) => [a, t(`aspect.${a}`)]) });
    const resolution = field({ label: t('new.resolution'), name: 'resolution', type: 'select', value: '720p', options: [] });
    const voice = field({ label: t('new.voice'), name: 'voice', type: 'select', options: [['', t('new.voice_default')]], testid: 'voice-select' });
    const preview = h('audio', { controls: true, preload: 'none', class: 'voice-preview', 'data-testid': 'voice-preview', 'aria-label': t('new.voice_preview') });
    const previewWrap = h('div', { class: 'field' }, h('p', { class: 'field__label', 'aria-hidden': 'true' }, t('new.voice_preview')), preview);
    const music = field({ label: t('new.music'), name: 'music', type: 'select', value: 'auto',
      options: [['auto', t('music.auto')], ...MOODS.map((m) => [m, t(`music.${m}`)]), ['none', t('music.none')],
        ...(can('media:write') ? [['upload', t('music.upload')]] : [])] });
    const songInfo = h('p', { class: 'field__hint' });
    const songUpload = uploader({ label: t('new.song'), accept: 'audio/*', testid: 'song-upload',
      onUploaded: (m) => { song = m; songInfo.textContent = describeMedia(m); changed(); } });
    const songWrap = h('div', { class: 'field-group', hidden: true }, songUpload.wrap, songInfo);
    const subtitles = checkbox({ label: t('new.subtitles'), name: 'subtitles', checked: true });
    const budget = field({ label: t('new.budget'), name: 'budget', type: 'number', min: '0.01', max: '1000000', step: 'any',
      hint: t('new.budget_hint') });
    const review = checkbox({ label: t('new.review'), name: 'review', hint: t('new.review_hint'), testid: 'review-checkbox' });

    // ---- your pictures and clips
    const mediaList = h('ul', { class: 'media-list' });
    const renderMedia = () => {
      replace(mediaList, sceneMedia.map((entry, i) => {
        const sceneField = field({ label: t('new.media_scene', { name: entry.media.filename || '' }), name: `media-${i}`,
          type: 'number', min: '1', max: '100', value: String(entry.scene + 1) });
        sceneField.input.addEventListener('change', () => { entry.scene = Math.max(0, (Number(sceneField.input.value) || 1) - 1); changed(); });
        return h('li', { class: 'media-item' }, h('span', { class: 'media-item__name' }, describeMedia(entry.media)), sceneField.wrap,
          button(t('common.remove'), () => { sceneMedia.splice(i, 1); renderMedia(); changed(); }, { small: true,
            ariaLabel: t('new.media_remove', { name: entry.media.filename || '' }) }));
      }));
    };
    const mediaUpload = uploader({ label: t('new.media_add'), accept: 'image/*,video/*', hint: t('new.media_hint'), testid: 'media-upload',
      onUploaded: (m) => { sceneMedia.push({ media: m, scene: sceneMedia.length }); renderMedia(); changed(); } });

    // ---- estimate
    const estimateBody = h('div', { class: 'estimate__body', 'aria-live': 'polite', 'data-testid': 'cost-estimate' }, h('p', { class: 'muted' }, t('new.estimate_empty')));
    const estimate = h('aside', { class: 'estimate card', 'aria-labelledby': 'estimate-title' },
      h('h2', { id: 'estimate-title' }, t('new.estimate')), estimateBody);

    const summary = h('div', { class: 'form-summary' });
    const submit = h('button', { type: 'submit', class: 'btn btn--primary', 'data-testid': 'submit-production' }, t('new.submit'));
    const fields = { prompt, script, title, language, preset, duration, aspect, resolution, voice, music, budget,
      music_media_id: music, 'voice.name': voice };
    const section = (titleKey, ...children) => h('fieldset', { class: 'form-section' }, h('legend', null, t(titleKey)), h('div', { class: 'grid' }, children));
    const form = h('form', { class: 'production-form', novalidate: true, 'data-testid': 'new-production-form' },
      section('new.section_what', mode, prompt.wrap, script.wrap, title.wrap, language.wrap),
      section('new.section_format', preset.wrap, duration.wrap, aspect.wrap, resolution.wrap),
      section('new.section_sound', voice.wrap, previewWrap, music.wrap, songWrap, subtitles.wrap),
      can('media:write') ? section('new.section_media', h('div', { class: 'field--wide' }, mediaUpload.wrap, mediaList)) : null,
      section('new.section_budget', budget.wrap, review.wrap),
      summary, h('div', { class: 'form-actions' }, submit));

    replace(main, pageHeader(t('new.title')), h('div', { class: 'new-layout' }, form, estimate));

    // ---- behaviour
    const currentMode = () => modeValue;
    mode.addEventListener('click', (ev) => {
      const btn = ev.target.closest('button[data-mode]');
      if (!btn || btn.dataset.mode === modeValue) return;
      modeValue = btn.dataset.mode;
      mode.querySelectorAll('button[data-mode]').forEach((b) => b.setAttribute('aria-pressed', String(b.dataset.mode === modeValue)));
      const isScript = modeValue === 'script';
      prompt.wrap.hidden = isScript;
      script.wrap.hidden = !isScript;
      (isScript ? script : prompt).input.focus();
      changed();
    });
    const syncPreset = () => {
      const p = presetByName[preset.input.value];
      if (!p) return;
      preset.wrap.querySelector('.field__hint').textContent = tOr(`preset.${p.name}.description`, p.description);
      duration.input.max = String(p.max_duration);
      duration.input.placeholder = t('new.duration_default', { s: p.default_duration });
      const keep = resolution.input.value;
      replace(resolution.input, p.resolutions.map((r) => h('option', { value: r }, r)));
      resolution.input.value = p.resolutions.includes(keep) ? keep : (p.resolutions.includes('720p') ? '720p' : p.resolutions[0]);
    };
    const syncPreview = () => {
      const name = voice.input.value || (language.input.value === 'en' ? 'hibari-heart' : '');
      previewWrap.hidden = !name;
      if (name) preview.src = `/v1/voices/${seg(name)}/preview`; else preview.removeAttribute('src');
    };
    const loadVoices = async () => {
      const mine = ++voiceReq;
      try {
        const list = await api.get(withQuery('/v1/voices', { language: language.input.value }));
        if (mine !== voiceReq) return;
        replace(voice.input, h('option', { value: '' }, t('new.voice_default')),
          list.items.map((v) => h('option', { value: v.name },
            [v.name, v.gender ? t(`gender.${v.gender}`) : null, v.engine === 'hibari' ? t('new.neural') : null].filter(Boolean).join(' · '))));
      } catch (err) {
        voice.setError(errorMessage(err));
      }
      syncPreview();
    };
    preset.input.addEventListener('change', () => { syncPreset(); changed(); });
    language.input.addEventListener('change', () => { loadVoices(); changed(); });
    voice.input.addEventListener('change', () => { syncPreview(); changed(); });
    music.input.addEventListener('change', () => { songWrap.hidden = music.input.value !== 'upload'; changed(); });
    form.addEventListener('input', (ev) => { if (ev.target.type !== 'file') changed(); });
    form.addEventListener('change', (ev) => { if (ev.target.tagName === 'INPUT' && ev.target.type === 'checkbox') changed(); });

    function body() {
      const b = {};
      const text = currentMode() === 'script' ? script.input.value.trim() : prompt.input.value.trim();
      b[currentMode()] = text;
      if (title.input.value.trim()) b.title = title.input.value.trim();
      b.language = language.input.value;
      b.preset = preset.input.value;
      if (duration.input.value !== '') b.duration = Number(duration.input.value);
      b.aspect = aspect.input.value;
      b.resolution = resolution.input.value;
      if (voice.input.value) b.voice = { name: voice.input.value };
      if (music.input.value === 'none') b.music = null;
      else if (music.input.value === 'upload') { b.music = null; if (song) b.music_media_id = song.id; }
      else b.music = music.input.value;
      b.subtitles = { enabled: subtitles.input.checked };
      if (budget.input.value !== '') b.budget = Number(budget.input.value);
      b.review = review.input.checked;
      if (sceneMedia.length) b.media = sceneMedia.map((e) => ({ scene: e.scene, media_id: e.media.id }));
      return b;
    }

    let estimateAbort = null;
    const runEstimate = debounce(async () => {
      const b = body();
      if ((b.prompt || b.script || '').length < 3) {
        replace(estimateBody, h('p', { class: 'muted' }, t('new.estimate_empty')));
        return;
      }
      // Values the server would refuse anyway: say so here instead of asking it.
      const p = presetByName[b.preset];
      const outOfRange = (b.duration !== undefined && !(b.duration >= 5 && b.duration <= (p ? p.max_duration : 300)))
        || (b.budget !== undefined && !(b.budget > 0 && b.budget <= 1000000))
        || (music.input.value === 'upload' && !song);
      if (outOfRange) {
        replace(estimateBody, h('p', { class: 'muted' }, t('new.estimate_incomplete')));
        return;
      }
      if (estimateAbort) estimateAbort.abort();
      estimateAbort = new AbortController();
      estimateBody.setAttribute('aria-busy', 'true');
      try {
        const res = await api.post('/v1/cost-estimate', b, { signal: estimateAbort.signal });
        replace(estimateBody, renderEstimate(res));
      } catch (err) {
        if (err.name === 'AbortError') return;
        replace(estimateBody, h('p', { class: 'estimate__error' }, errorMessage(err)));
      } finally {
        estimateBody.removeAttribute('aria-busy');
      }
    }, 700);
    function changed() { runEstimate(); }

    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const b = body();
      const target = currentMode() === 'script' ? script : prompt;
      if ((b.prompt || b.script || '').length < 3) {
        showFieldErrors(null, fields, null);
        target.setError(t('new.text_required'));
        target.input.focus();
        return;
      }
      submit.disabled = true;
      try {
        const res = await api.post('/v1/productions', b, { headers: { 'Idempotency-Key': crypto.randomUUID() } });
        runEstimate.cancel();
        navigate(`/productions/${seg(res.job.id)}`);
      } catch (err) {
        showFieldErrors(err, fields, summary);
        if (err.code === 'budget_exceeded') budget.setError(err.message);
        summary.scrollIntoView({ block: 'nearest' });
        const firstBad = form.querySelector('[aria-invalid="true"]');
        (firstBad || summary).focus?.();
      } finally {
        submit.disabled = false;
      }
    });

    syncPreset();
    await loadVoices();
    return () => { runEstimate.cancel(); if (estimateAbort) estimateAbort.abort(); };
  },
};

function renderEstimate(res) {
  const e = res.estimate;
  const time = e.stages.reduce((a, s) => a + (s.seconds || 0), 0);
  const out = [
    h('p', { class: 'estimate__total' }, h('span', { class: 'estimate__amount' }, formatMoney(e.total)),
      h('span', { class: 'muted' }, ` ${t('new.estimate_total')}`)),
    h('dl', { class: 'facts' },
      h('dt', null, t('new.estimate_length')), h('dd', null, formatSeconds(e.duration)),
      h('dt', null, t('new.estimate_time')), h('dd', null, formatSeconds(time)),
      h('dt', null, t('new.estimate_format')), h('dd', null, `${e.spec.width}×${e.spec.height} · ${e.spec.fps} fps · ${tOr(`quality.${e.spec.quality}`, e.spec.quality)}`)),
    res.fast_track ? h('p', { class: 'pill pill--ok' }, t('new.fast_track')) : null,
  ];
  if (e.downgrades && e.downgrades.length) {
    out.push(h('div', { class: 'alert alert--warn' }, h('p', null, t('new.downgrades')), h('ul', null, e.downgrades.map((d) => h('li', null, d)))));
  }
  out.push(h('details', null, h('summary', null, t('new.estimate_stages')),
    h('ul', { class: 'stage-costs' }, e.stages.map((s) => h('li', null,
      h('span', null, `${tOr(`stage.${s.stage}`, s.stage)} (${s.backend})`), h('span', null, formatMoney(s.cost)))))));
  return append(h('div'), out);
}
