// Shared widgets: toasts, dialogs, badges, fields, tables, error display.
import { h, append, clear, nextId } from './dom.js';
import { t, tOr } from './i18n.js';
import { ApiError } from './api.js';

// ---------------------------------------------------------------- toasts

let toastRegion = null;
export function mountToasts(region) { toastRegion = region; }

/** toast('Saved', 'success' | 'error' | 'info') */
export function toast(message, kind = 'info', ms = 5000) {
  if (!toastRegion) return;
  const close = h('button', { type: 'button', class: 'toast__close', 'aria-label': t('common.dismiss') }, '×');
  const node = h('div', { class: `toast toast--${kind}`, role: kind === 'error' ? 'alert' : null },
    h('span', { class: 'toast__text' }, message), close);
  const remove = () => node.remove();
  close.addEventListener('click', remove);
  toastRegion.append(node);
  if (ms) setTimeout(remove, kind === 'error' ? ms * 2 : ms);
}

/** A readable sentence for any error (ApiError or not). */
export function errorMessage(err) {
  if (err instanceof ApiError) {
    if (err.code === 'rate_limited' || err.status === 429) {
      const s = err.retryAfter;
      return s ? t('error.rate_limited_in', { s }) : t('error.rate_limited');
    }
    const known = tOr(`error.${err.code}`, null);
    if (err.code === 'validation_error' && Array.isArray(err.details) && err.details.length) {
      return `${known || err.message}: ${err.details.map((d) => d.msg).join('; ')}`;
    }
    if (known && !err.message) return known;
    return err.message || known || t('error.generic');
  }
  if (err && err.name === 'TypeError') return t('error.network');
  return (err && err.message) || t('error.generic');
}

export function toastError(err) { toast(errorMessage(err), 'error'); }

// ---------------------------------------------------------------- dialogs

/**
 * openDialog({title, body: Node|[Node], actions: [{label, value, kind, testid}], describedBy})
 * → Promise of the chosen action's value (null when dismissed with Escape or ×).
 * `onSubmit(value)` may return false (or a promise of false) to keep the dialog open.
 */
export function openDialog({ title, body, actions = [], onSubmit, initialFocus, initialFocusIndex, testid }) {
  const previous = document.activeElement;
  const titleId = nextId('dlg');
  const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': titleId, 'data-testid': testid });
  const form = h('form', { method: 'dialog', class: 'dialog__form', novalidate: true });
  const closeBtn = h('button', { type: 'button', class: 'btn btn--icon dialog__x', 'aria-label': t('common.close') }, '×');
  const buttons = actions.map((a) => h('button', {
    type: a.submit ? 'submit' : 'button', class: `btn ${a.kind ? `btn--${a.kind}` : ''}`,
    'data-testid': a.testid, value: a.value,
  }, a.label));
  append(form,
    h('div', { class: 'dialog__head' }, h('h2', { id: titleId, class: 'dialog__title' }, title), closeBtn),
    h('div', { class: 'dialog__body' }, body),
    buttons.length ? h('div', { class: 'dialog__actions' }, buttons) : null);
  dialog.append(form);
  document.body.append(dialog);

  return new Promise((resolve) => {
    let result = null;
    const finish = () => {
      dialog.close();
      dialog.remove();
      if (previous && previous.focus && document.contains(previous)) previous.focus();
      resolve(result);
    };
    const choose = async (value, btn) => {
      if (onSubmit && value !== null && value !== 'cancel') {
        if (btn) btn.disabled = true;
        let ok;
        try { ok = await onSubmit(value); } finally { if (btn) btn.disabled = false; }
        if (ok === false) return;
      }
      result = value === 'cancel' ? null : value;
      finish();
    };
    closeBtn.addEventListener('click', () => choose(null));
    dialog.addEventListener('cancel', (ev) => { ev.preventDefault(); choose(null); });
    actions.forEach((a, i) => {
      if (!a.submit) buttons[i].addEventListener('click', () => choose(a.value, buttons[i]));
    });
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const submitter = ev.submitter || buttons.find((b, i) => actions[i].submit);
      choose(submitter ? submitter.value : 'submit', submitter);
    });
    dialog.showModal();
    const focus = initialFocus || buttons[initialFocusIndex ?? buttons.length - 1] || closeBtn;
    focus.focus();
  });
}

export async function confirmDialog({ title, message, confirmLabel, danger = false }) {
  const cancel = { label: t('common.cancel'), value: 'cancel' };
  const value = await openDialog({
    initialFocusIndex: danger ? 0 : 1,
    title,
    body: h('p', null, message),
    actions: [
      cancel,
      { label: confirmLabel || t('common.confirm'), value: 'ok', kind: danger ? 'danger' : 'primary', testid: 'confirm-button' },
    ],
  });
  return value === 'ok';
}

/** Shows a secret once, with a copy button. */
export function secretDialog({ title, intro, secret, testid = 'api-key-secret' }) {
  const code = h('code', { class: 'secret', 'data-testid': testid }, secret);
  const copy = copyButton(() => secret, t('common.copy_secret'));
  return openDialog({
    title,
    body: [h('p', null, intro), h('p', { class: 'warning' }, t('secret.once')),
      h('div', { class: 'secret-row' }, code, copy)],
    actions: [{ label: t('secret.done'), value: 'ok', kind: 'primary' }],
    initialFocus: copy,
  });
}

export function copyButton(getText, label = t('common.copy')) {
  const btn = h('button', { type: 'button', class: 'btn btn--small' }, label);
  btn.addEventListener('click', async () => {
    const text = getText();
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const area = h('textarea', { class: 'visually-hidden', readOnly: true }, text);
      document.body.append(area);
      area.select();
      document.execCommand('copy');
      area.remove();
    }
    btn.textContent = t('common.copied');
    setTimeout(() => { btn.textContent = label; }, 2000);
  });
  return btn;
}

// ---------------------------------------------------------------- bits

export function statusBadge(status) {
  return h('span', { class: `badge badge--${status}`, 'data-testid': 'status-badge', 'data-status': status },
    tOr(`status.${status}`, status));
}

export function pill(text, kind = 'neutral') {
  return h('span', { class: `pill pill--${kind}` }, text);
}

export function pageHeader(title, ...actions) {
  return h('div', { class: 'page-head' },
    h('h1', { tabindex: '-1', class: 'page-title' }, title),
    actions.length ? h('div', { class: 'page-actions' }, actions) : null);
}

export function loading(label = t('common.loading')) {
  return h('p', { class: 'loading', role: 'status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), label);
}

export function emptyState(text) { return h('p', { class: 'empty' }, text); }

export function errorBox(err) {
  return h('div', { class: 'alert alert--error', role: 'alert' }, errorMessage(err));
}

export function button(label, onClick, { kind, testid, type = 'button', small, ariaLabel } = {}) {
  return h('button', {
    type, class: ['btn', kind && `btn--${kind}`, small && 'btn--small'], onclick: onClick,
    'data-testid': testid, 'aria-label': ariaLabel,
  }, label);
}

/** Runs an async action with the button disabled; errors become toasts. */
export async function busy(btn, fn) {
  // aria-disabled, not disabled: a disabled button loses the focus (and a
  // dialog opened from it could not give it back).
  if (btn.getAttribute('aria-disabled') === 'true') return undefined;
  btn.setAttribute('aria-disabled', 'true');
  btn.setAttribute('aria-busy', 'true');
  try { return await fn(); } catch (err) { toastError(err); return undefined; } finally {
    btn.removeAttribute('aria-disabled');
    btn.removeAttribute('aria-busy');
  }
}

// ---------------------------------------------------------------- fields

/**
 * field({label, name, type, value, hint, options: [[value, label]], ...attrs})
 * → {wrap, input, setError(msg)}; type 'textarea' and 'select' supported.
 */
export function field({ label, name, type = 'text', value, hint, options, testid, wide, ...attrs }) {
  const id = nextId(name || 'f');
  const hintId = hint ? `${id}-hint` : null;
  const errId = `${id}-err`;
  let input;
  if (type === 'textarea') {
    input = h('textarea', { id, name, 'data-testid': testid, ...attrs });
    if (value !== undefined && value !== null) input.value = value;
  } else if (type === 'select') {
    input = h('select', { id, name, 'data-testid': testid, ...attrs },
      (options || []).map(([v, l]) => h('option', { value: v }, l)));
    if (value !== undefined && value !== null) input.value = value;
  } else {
    input = h('input', { id, name, type, 'data-testid': testid, ...attrs });
    if (value !== undefined && value !== null) input.value = value;
  }
  input.setAttribute('aria-describedby', [hintId, errId].filter(Boolean).join(' '));
  const err = h('p', { class: 'field__error', id: errId });
  const wrap = h('div', { class: ['field', wide && 'field--wide'] },
    h('label', { htmlFor: id, class: 'field__label' }, label),
    input,
    hint ? h('p', { class: 'field__hint', id: hintId }, hint) : null,
    err);
  const setError = (msg) => {
    err.textContent = msg || '';
    if (msg) input.setAttribute('aria-invalid', 'true'); else input.removeAttribute('aria-invalid');
  };
  return { wrap, input, setError };
}

export function checkbox({ label, name, checked = false, hint, testid }) {
  const id = nextId(name || 'c');
  const input = h('input', { type: 'checkbox', id, name, checked, 'data-testid': testid });
  input.defaultChecked = checked; // form.reset() comes back to this
  const wrap = h('div', { class: 'check' }, input, h('label', { htmlFor: id }, label),
    hint ? h('p', { class: 'field__hint' }, hint) : null);
  return { wrap, input };
}

/** Shows the server's validation errors next to fields; returns what matched none. */
export function showFieldErrors(err, fields, summary) {
  for (const f of Object.values(fields)) f.setError('');
  if (summary) clear(summary);
  const rest = [];
  if (err instanceof ApiError && Array.isArray(err.details)) {
    for (const d of err.details) {
      const loc = (d.loc || []).filter((p) => p !== 'body');
      const key = loc.join('.');
      const target = fields[key] || fields[loc[0]];
      if (target) target.setError(d.msg); else rest.push(loc.length ? `${key}: ${d.msg}` : d.msg);
    }
  }
  if (summary && err) {
    const head = errorMessage(err instanceof ApiError && err.code === 'validation_error'
      ? new ApiError(422, 'validation_error', t('error.validation_error')) : err);
    append(summary, h('div', { class: 'alert alert--error', role: 'alert' },
      h('p', null, head), rest.length ? h('ul', null, rest.map((r) => h('li', null, r))) : null));
  }
  return rest;
}

// ---------------------------------------------------------------- tables

/** A horizontally scrollable box for a wide table: focusable (keyboard scrolling) and named. */
export function scrollBox(label, child) {
  return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': label }, child);
}

/** table([{label, cell: row => Node|string, class}], rows, {caption, rowAttrs}) */
export function table(columns, rows, { caption, rowAttrs } = {}) {
  const body = h('tbody', null, rows.map((row) => tableRow(columns, row, rowAttrs)));
  return scrollBox(caption || '', h('table', { class: 'table table--cards' },
    caption ? h('caption', { class: 'visually-hidden' }, caption) : null,
    h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col', class: c.class }, c.label)))),
    body));
}

export function tableRow(columns, row, rowAttrs) {
  return h('tr', rowAttrs ? rowAttrs(row) : null,
    columns.map((c) => h('td', { class: c.class, 'data-label': c.label }, c.cell(row))));
}
