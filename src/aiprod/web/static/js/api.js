// Fetch wrapper for the AIPROD API with the browser session (cookie):
// JSON in and out, X-CSRF-Token on unsafe methods, one serialized refresh on
// 401 (navigator.locks, so that tabs never present the same refresh token
// twice), and every error thrown as an ApiError {status, code, message, details}.

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const CSRF_RETRY = new Set(['csrf_missing', 'csrf_invalid', 'csrf_expired']);

let csrfToken = null;
let onSession = () => {};
let onSignedOut = () => {};

export class ApiError extends Error {
  constructor(status, code, message, details = null, headers = null) {
    super(message || code || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = code || 'http_error';
    this.details = details;
    this.headers = headers;
  }

  /** Seconds from Retry-After, or null. */
  get retryAfter() {
    const raw = this.headers && this.headers.get('Retry-After');
    const n = raw ? Number.parseInt(raw, 10) : NaN;
    return Number.isFinite(n) ? n : null;
  }
}

/** Hooks: onSession(payload) after a sign-in/refresh, onSignedOut() when the session is gone. */
export function configure({ session, signedOut }) {
  if (session) onSession = session;
  if (signedOut) onSignedOut = signedOut;
}

let refreshTimer = null;
let csrfTimer = null;
const MAX_DELAY = 2 ** 31 - 1;

/**
 * Renew ahead of time what is about to expire, so that normal use never meets
 * a 401 or a csrf_expired: the CSRF token at 80 % of its life, and the access
 * cookie at 80 % of its life when the server says how long that is.
 */
export function scheduleRenewals(payload) {
  if (!payload) { clearTimeout(refreshTimer); clearTimeout(csrfTimer); return; }
  const csrfIn = payload.csrf_expires_in ?? payload.expires_in;
  if (csrfIn > 0) {
    clearTimeout(csrfTimer);
    csrfTimer = setTimeout(() => { loadCsrf().catch(() => {}); }, Math.min(csrfIn * 800, MAX_DELAY));
  }
  const accessIn = payload.access_expires_in;
  if (accessIn > 0) {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => { withLock(() => refreshSession()).catch(() => {}); }, Math.min(accessIn * 800, MAX_DELAY));
  }
}

export function setCsrf(token) {
  csrfToken = token || null;
  if (!csrfToken) scheduleRenewals(null);
}
export function hasCsrf() { return csrfToken !== null; }

function send(method, path, opts) {
  const headers = new Headers(opts.headers || {});
  headers.set('Accept', 'application/json');
  let body;
  if (opts.json !== undefined) {
    headers.set('Content-Type', 'application/json');
    body = JSON.stringify(opts.json);
  } else if (opts.body !== undefined) {
    body = opts.body; // FormData: the browser sets the multipart boundary
  }
  if (UNSAFE.has(method) && csrfToken && !opts.noCsrf) headers.set('X-CSRF-Token', csrfToken);
  return fetch(path, {
    method, headers, body, credentials: 'same-origin', signal: opts.signal, cache: 'no-store',
  });
}

async function errorFrom(res) {
  let payload = null;
  try { payload = await res.json(); } catch { /* not JSON */ }
  const err = payload && payload.error;
  if (err) return new ApiError(res.status, err.code, err.message, err.details, res.headers);
  return new ApiError(res.status, null, `${res.status} ${res.statusText}`, null, res.headers);
}

async function peekCode(res) {
  try {
    const payload = await res.clone().json();
    return payload && payload.error ? payload.error.code : null;
  } catch { return null; }
}

function withLock(fn) {
  if (navigator.locks && navigator.locks.request) {
    return navigator.locks.request('aiprod-refresh', fn);
  }
  // Fallback (no Web Locks): serialize within this page at least.
  const run = withLock.chain.then(fn, fn);
  withLock.chain = run.catch(() => {});
  return run;
}
withLock.chain = Promise.resolve();

/** POST /v1/auth/session/refresh; true when a new session payload arrived. */
async function refreshSession() {
  const res = await send('POST', '/v1/auth/session/refresh', { noCsrf: true });
  if (!res.ok) return false;
  const payload = await res.json();
  csrfToken = payload.csrf_token || null;
  scheduleRenewals(payload);
  onSession(payload);
  return true;
}

/** Renew the session now (within the cross-tab lock); true when signed in afterwards. */
export function refreshNow() {
  return withLock(() => refreshSession());
}

/** GET /v1/csrf-token into memory. */
export async function loadCsrf() {
  const payload = await request('GET', '/v1/csrf-token');
  csrfToken = payload.csrf_token || null;
  scheduleRenewals({ csrf_expires_in: payload.expires_in });
  return csrfToken;
}

/**
 * request(method, path, {json, body, headers, signal, raw, noRefresh, noCsrf})
 * Resolves with the parsed JSON (null for 204), or the Response with `raw: true`.
 */
export async function request(method, path, opts = {}) {
  method = method.toUpperCase();
  let res = await send(method, path, opts);

  if (res.status === 403 && UNSAFE.has(method) && !opts.noCsrf && !opts.csrfRetried) {
    const code = await peekCode(res);
    if (CSRF_RETRY.has(code)) {
      await loadCsrf();
      return request(method, path, { ...opts, csrfRetried: true });
    }
  }

  if (res.status === 401 && !opts.noRefresh) {
    res = await withLock(async () => {
      // Another tab (or call) may have refreshed meanwhile: try again first.
      const again = await send(method, path, opts);
      if (again.status !== 401) return again;
      if (!(await refreshSession())) return again;
      return send(method, path, opts);
    });
    if (res.status === 401) {
      csrfToken = null;
      onSignedOut();
    }
  }

  if (!res.ok) throw await errorFrom(res);
  if (opts.raw) return res;
  if (res.status === 204) return null;
  const type = res.headers.get('Content-Type') || '';
  return type.includes('json') ? res.json() : res.text();
}

export const api = {
  get: (path, opts) => request('GET', path, opts),
  post: (path, json, opts = {}) => request('POST', path, { ...opts, json }),
  put: (path, json, opts = {}) => request('PUT', path, { ...opts, json }),
  patch: (path, json, opts = {}) => request('PATCH', path, { ...opts, json }),
  del: (path, opts) => request('DELETE', path, opts),
  upload: (path, formData, opts = {}) => request('POST', path, { ...opts, body: formData }),
};

/** Build a path with a query string, skipping empty values. */
export function withQuery(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === null || v === undefined || v === '') continue;
    q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/** Encode one path segment (ids come from the server, still never trust them). */
export const seg = (s) => encodeURIComponent(String(s));
