// Translations and locale-aware formatting. Only the language preference is
// stored (localStorage 'aiprod.lang'); nothing else ever is.
import en from './i18n/en.js';
import fr from './i18n/fr.js';

export const LANGUAGES = { en, fr };
const KEY = 'aiprod.lang';
let lang = initial();
const listeners = new Set();

function initial() {
  let stored = null;
  try { stored = localStorage.getItem(KEY); } catch { /* storage disabled */ }
  if (stored && LANGUAGES[stored]) return stored;
  const nav = (navigator.languages && navigator.languages[0]) || navigator.language || 'en';
  const primary = nav.toLowerCase().split('-')[0];
  return LANGUAGES[primary] ? primary : 'en';
}

export function getLang() { return lang; }

export function setLang(next) {
  if (!LANGUAGES[next] || next === lang) return;
  lang = next;
  try { localStorage.setItem(KEY, next); } catch { /* storage disabled */ }
  document.documentElement.lang = next;
  for (const fn of listeners) fn(next);
}

export function onLangChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** t('key', {name: 'x'}) — `{name}` placeholders; a value may be a function of params. */
export function t(key, params = {}) {
  let value = LANGUAGES[lang][key];
  if (value === undefined) value = en[key];
  if (value === undefined) {
    console.warn(`i18n: missing key ${key}`);
    return key;
  }
  if (typeof value === 'function') value = value(params);
  return value.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

/** t() when the key exists, else the fallback (for server-provided enums). */
export function tOr(key, fallback, params) {
  return key in LANGUAGES[lang] || key in en ? t(key, params) : fallback;
}

export function formatDate(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'short' }).format(d);
}

export function formatNumber(n, digits = 0) {
  if (n === null || n === undefined) return '—';
  return new Intl.NumberFormat(lang, { maximumFractionDigits: digits }).format(n);
}

export function formatMoney(n) {
  if (n === null || n === undefined) return '—';
  if (n !== 0 && Math.abs(n) < 0.01) {
    // Tiny amounts (built-in backends cost fractions of a cent): two significant digits.
    return new Intl.NumberFormat(lang, { style: 'currency', currency: 'USD', maximumSignificantDigits: 2 }).format(n);
  }
  return new Intl.NumberFormat(lang, {
    style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: Math.abs(n) < 1 ? 4 : 2,
  }).format(n);
}

export function formatBytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i += 1; }
  return `${formatNumber(v, i === 0 ? 0 : 1)} ${units[i]}`;
}

/** 75 → "1 min 15 s" */
export function formatSeconds(s) {
  if (s === null || s === undefined || Number.isNaN(s)) return '—';
  const total = Math.max(0, Math.round(s));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  if (h) return t('time.hm', { h, m });
  if (m) return t('time.ms', { m, s: sec });
  return t('time.s', { s: sec });
}
