// Boot, the app shell (header, nav, language switcher) and the hash router.
import { h, replace, clear } from './dom.js';
import { t, getLang, setLang, onLangChange, LANGUAGES } from './i18n.js';
import * as auth from './auth.js';
import { mountToasts, toastError, loading, errorBox, pageHeader } from './ui.js';
import signin from './pages/signin.js';
import productions from './pages/productions.js';
import newProduction from './pages/new.js';
import production from './pages/production.js';
import apiKeys from './pages/keys.js';
import webhooks from './pages/webhooks.js';
import users from './pages/users.js';
import audit from './pages/audit.js';

const ROUTES = [
  { pattern: /^\/signin$/, page: signin, public: true },
  { pattern: /^\/productions$/, page: productions, nav: 'productions' },
  { pattern: /^\/new$/, page: newProduction, nav: 'new' },
  { pattern: /^\/productions\/([^/]+)$/, page: production, nav: 'productions', keys: ['id'] },
  { pattern: /^\/settings\/keys$/, page: apiKeys, nav: 'keys' },
  { pattern: /^\/settings\/webhooks$/, page: webhooks, nav: 'webhooks' },
  { pattern: /^\/admin\/users$/, page: users, nav: 'users', admin: true },
  { pattern: /^\/admin\/audit$/, page: audit, nav: 'audit', admin: true },
];

const shell = {};
let cleanup = null;
let firstRender = true;
let renderToken = 0;

export function navigate(path, { replace: rep = false } = {}) {
  const target = `#${path}`;
  if (location.hash === target) { route(); return; }
  if (rep) history.replaceState(null, '', target); else location.hash = target;
  if (rep) route();
}

function parseHash() {
  const raw = location.hash.startsWith('#') ? location.hash.slice(1) : '';
  const [path, qs] = raw.split('?');
  return { path: path || '/', query: new URLSearchParams(qs || '') };
}

function buildShell() {
  const app = document.getElementById('app');
  shell.skip = h('a', { class: 'skip-link', href: '#' }, '');
  shell.skip.addEventListener('click', (ev) => { ev.preventDefault(); shell.main.focus(); });
  shell.header = h('header', { class: 'topbar' });
  shell.main = h('main', { id: 'main', class: 'main', tabindex: '-1' });
  shell.toasts = h('div', { class: 'toasts', 'aria-live': 'polite', 'aria-atomic': 'false' });
  shell.footer = h('footer', { class: 'footer' });
  replace(app, shell.header, shell.main, shell.footer, shell.toasts);
  mountToasts(shell.toasts);
}

function navLink(path, label, key, current) {
  return h('li', null, h('a', {
    href: `#${path}`, class: 'nav__link', 'aria-current': key === current ? 'page' : null,
  }, label));
}

function renderHeader(current) {
  const user = auth.currentUser();
  shell.skip.textContent = t('shell.skip');
  const langId = 'lang-switch';
  const langSelect = h('select', { id: langId, class: 'lang-select', 'data-testid': 'language-select' },
    Object.keys(LANGUAGES).map((code) => h('option', { value: code, selected: code === getLang() },
      LANGUAGES[code]['lang.name'])));
  langSelect.addEventListener('change', () => setLang(langSelect.value));
  const brand = h('a', { href: user ? '#/productions' : '#/signin', class: 'brand' },
    h('span', { class: 'brand__mark', 'aria-hidden': 'true' }, '▶'),
    h('span', { class: 'brand__name' }, 'AIPROD'), h('span', { class: 'brand__sub' }, t('shell.studio')));
  const tools = h('div', { class: 'topbar__tools' },
    h('label', { htmlFor: langId, class: 'visually-hidden' }, t('shell.language')), langSelect);
  let nav = null;
  let menuBtn = null;
  if (user) {
    const links = [navLink('/productions', t('nav.productions'), 'productions', current)];
    if (auth.can('jobs:create')) links.push(navLink('/new', t('nav.new'), 'new', current));
    links.push(navLink('/settings/keys', t('nav.keys'), 'keys', current));
    if (auth.can('webhooks:read')) links.push(navLink('/settings/webhooks', t('nav.webhooks'), 'webhooks', current));
    if (auth.isAdmin()) {
      links.push(navLink('/admin/users', t('nav.users'), 'users', current));
      links.push(navLink('/admin/audit', t('nav.audit'), 'audit', current));
    }
    nav = h('nav', { class: 'nav', 'aria-label': t('nav.label') }, h('ul', { class: 'nav__list' }, links));
    menuBtn = h('button', { type: 'button', class: 'btn btn--icon menu-toggle', 'aria-expanded': 'false',
      'aria-controls': 'main-menu' }, h('span', { 'aria-hidden': 'true' }, '☰'),
    h('span', { class: 'visually-hidden' }, t('nav.menu')));
    const signOut = h('button', { type: 'button', class: 'btn btn--ghost', 'data-testid': 'signout-button' }, t('shell.signout'));
    signOut.addEventListener('click', async () => {
      signOut.disabled = true;
      await auth.signOut();
      navigate('/signin');
    });
    tools.append(h('span', { class: 'whoami', 'data-testid': 'current-user' },
      h('span', { class: 'whoami__email' }, user.email), h('span', { class: 'whoami__role' }, t(`role.${user.role}`))),
    signOut);
  }
  const panel = h('div', { class: ['topbar__panel', !user && 'topbar__panel--static'], id: 'main-menu' }, nav, tools);
  if (menuBtn) {
    menuBtn.addEventListener('click', () => {
      const open = menuBtn.getAttribute('aria-expanded') !== 'true';
      menuBtn.setAttribute('aria-expanded', String(open));
      panel.classList.toggle('topbar__panel--open', open);
    });
  }
  replace(shell.header, shell.skip, h('div', { class: 'topbar__inner' }, brand, menuBtn, panel));
  replace(shell.footer, h('p', null, t('shell.footer')));
}

async function route() {
  const token = ++renderToken;
  const { path, query } = parseHash();
  if (cleanup) { try { cleanup(); } catch { /* ignore */ } cleanup = null; }
  const user = auth.currentUser();
  if (path === '/' || path === '') { navigate(user ? '/productions' : '/signin', { replace: true }); return; }
  const match = ROUTES.map((r) => ({ r, m: path.match(r.pattern) })).find((x) => x.m);
  if (match && !match.r.public && !user) {
    navigate(`/signin?next=${encodeURIComponent(path + (query.toString() ? `?${query}` : ''))}`, { replace: true });
    return;
  }
  if (match && match.r.public && user) { navigate('/productions', { replace: true }); return; }
  renderHeader(match ? match.r.nav : null);
  clear(shell.main);
  const focusTitle = () => {
    if (firstRender) { firstRender = false; return; }
    const title = shell.main.querySelector('h1');
    if (title) title.focus({ preventScroll: false });
  };
  if (!match) {
    document.title = `${t('notfound.title')} · AIPROD`;
    shell.main.append(pageHeader(t('notfound.title')), h('p', null, t('notfound.body')),
      h('p', null, h('a', { href: '#/productions' }, t('notfound.back'))));
    focusTitle();
    return;
  }
  if (match.r.admin && !auth.isAdmin()) {
    document.title = `${t('forbidden.title')} · AIPROD`;
    shell.main.append(pageHeader(t('forbidden.title')), h('p', null, t('forbidden.body')));
    focusTitle();
    return;
  }
  const params = {};
  (match.r.keys || []).forEach((k, i) => { params[k] = decodeURIComponent(match.m[i + 1]); });
  document.title = `${match.r.page.title(params)} · AIPROD`;
  try {
    const result = await match.r.page.render(shell.main, { params, query, navigate, path });
    if (token !== renderToken) { if (typeof result === 'function') result(); return; }
    cleanup = typeof result === 'function' ? result : null;
  } catch (err) {
    if (token !== renderToken) return;
    clear(shell.main);
    shell.main.append(pageHeader(t('error.page')), errorBox(err));
  }
  focusTitle();
}

async function boot() {
  document.documentElement.lang = getLang();
  buildShell();
  renderHeader(null);
  shell.main.append(loading());
  auth.init(() => {
    const { path } = parseHash();
    if (path !== '/signin') navigate(`/signin?next=${encodeURIComponent(path)}`, { replace: true });
  });
  onLangChange(() => route());
  window.addEventListener('hashchange', () => {
    if (location.hash.startsWith('#/') || location.hash === '') route();
  });
  try {
    await auth.restore();
  } catch (err) {
    toastError(err);
  }
  route();
}

boot();
