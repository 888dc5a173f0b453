// Uploads (POST /v1/media, multipart with `file` and optional `license`).
import { h, nextId } from './dom.js';
import { t, formatBytes, formatSeconds } from './i18n.js';
import { api } from './api.js';
import { errorMessage } from './ui.js';

/**
 * uploader({label, accept, onUploaded(media), testid}) → {wrap, input}
 * Sends the chosen file at once and reports progress/errors beside the input.
 */
export function uploader({ label, accept, hint, onUploaded, testid }) {
  const id = nextId('upload');
  const statusId = `${id}-status`;
  const input = h('input', { type: 'file', id, accept, 'data-testid': testid, 'aria-describedby': statusId });
  const status = h('p', { class: 'field__hint', id: statusId, role: 'status' }, hint || '');
  input.addEventListener('change', async () => {
    const file = input.files && input.files[0];
    if (!file) return;
    const data = new FormData();
    data.append('file', file, file.name);
    input.disabled = true;
    status.textContent = t('media.uploading', { name: file.name, size: formatBytes(file.size) });
    status.classList.remove('field__error');
    try {
      const media = await api.upload('/v1/media', data);
      status.textContent = t('media.uploaded', { name: media.filename || file.name });
      input.value = '';
      onUploaded(media);
    } catch (err) {
      status.textContent = errorMessage(err);
      status.classList.add('field__error');
    } finally {
      input.disabled = false;
    }
  });
  const wrap = h('div', { class: 'field' }, h('label', { htmlFor: id, class: 'field__label' }, label), input, status);
  return { wrap, input };
}

/** One line describing an upload: name, kind, size, dimensions or length. */
export function describeMedia(m) {
  const bits = [t(`media.kind_${m.kind}`), formatBytes(m.bytes)];
  if (m.width && m.height) bits.push(`${m.width}×${m.height}`);
  if (m.duration) bits.push(formatSeconds(m.duration));
  return `${m.filename || m.id} — ${bits.join(', ')}`;
}
