// The signed-in user and what their role may do. The session itself lives in
// an HttpOnly cookie the studio never sees; the CSRF token only in memory.
import { api, ApiError, configure, loadCsrf, setCsrf, scheduleRenewals, refreshNow } from './api.js';

export const ROLES = ['admin', 'user', 'viewer', 'service'];

let user = null;
const listeners = new Set();

function setUser(next) {
  user = next || null;
  for (const fn of listeners) fn(user);
}

export function onUserChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function currentUser() { return user; }

// What the role allows, as the server says with the user (it refuses anyway).
export function can(permission) {
  return Boolean(user && user.permissions && user.permissions.includes(permission));
}

export function isAdmin() { return Boolean(user && user.role === 'admin'); }

/** Wire the API client to this module; `signedOut` is called when the session ends. */
export function init(signedOut) {
  configure({
    session: (payload) => { if (payload && payload.user) setUser(payload.user); },
    signedOut: () => { setUser(null); setCsrf(null); signedOut(); },
  });
}

/**
 * On page load: GET /v1/auth/session says, always with a 200, whether this
 * browser is signed in (so a visitor's console shows no 401). Signed in: a
 * CSRF token; an expired access cookie that can be renewed: one refresh
 * (serialized across tabs); otherwise nobody is signed in.
 */
export async function restore() {
  let state;
  try {
    state = await api.get('/v1/auth/session', { noRefresh: true });
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return restoreWithMe(); // an older server
    throw err;
  }
  if (state.signed_in && state.user) {
    setUser(state.user);
    await loadCsrf();
    return state.user;
  }
  if (state.renewable && (await refreshNow())) return user;
  return null;
}

async function restoreWithMe() {
  try {
    const me = await api.get('/v1/me');
    setUser(me);
    await loadCsrf();
    return me;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return null;
    throw err;
  }
}

/** The identity providers offered as "Sign in with …" (empty when none). */
export async function signInProviders() {
  try {
    return (await api.get('/v1/auth/oidc/providers', { noRefresh: true })).items || [];
  } catch {
    return [];
  }
}

export async function signIn(email, password) {
  const payload = await api.post('/v1/auth/session', { email, password },
    { noRefresh: true, noCsrf: true });
  setCsrf(payload.csrf_token);
  scheduleRenewals(payload);
  setUser(payload.user);
  return payload.user;
}

export async function signOut() {
  try {
    await api.del('/v1/auth/session', { noRefresh: true });
  } catch { /* the session may already be gone: sign out locally anyway */ }
  setCsrf(null);
  setUser(null);
}
