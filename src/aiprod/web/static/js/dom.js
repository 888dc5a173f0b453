// Tiny DOM helpers. Everything is built with createElement/textContent:
// no innerHTML, no style attributes (the studio runs under a strict CSP).

const PROPS = new Set(['value', 'checked', 'disabled', 'selected', 'hidden', 'open',
  'multiple', 'required', 'readOnly', 'indeterminate', 'htmlFor']);

/**
 * h('button', {class: 'btn', onclick: fn, 'aria-label': 'x'}, 'text', child, [more])
 * Attributes whose value is null/undefined/false are skipped; `true` sets an empty attribute.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith('on') && typeof value === 'function') {
        el.addEventListener(key.slice(2), value);
      } else if (key === 'class') {
        el.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
      } else if (key === 'dataset') {
        Object.assign(el.dataset, value);
      } else if (key === 'style') {
        throw new Error('style attributes are not allowed under the CSP; use a class');
      } else if (PROPS.has(key)) {
        el[key] = value;
      } else {
        el.setAttribute(key, value === true ? '' : String(value));
      }
    }
  }
  append(el, ...children);
  return el;
}

export function append(el, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  return append(el, children);
}

let uid = 0;
/** A unique id for label/aria wiring. */
export function nextId(prefix = 'f') {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** Debounce a function; the returned function has .cancel(). */
export function debounce(fn, ms) {
  let timer = null;
  const wrapped = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  wrapped.cancel = () => clearTimeout(timer);
  return wrapped;
}
