// Live progress over WebSocket (docs/websocket.md). A ticket from
// POST /v1/ws-ticket authenticates each connection (it works once, so every
// reconnect asks for a new one). Events carry job_id and seq; we remember the
// last seq per job and resume after it when we reconnect, with backoff.
import { api, ApiError } from './api.js';
import { currentUser } from './auth.js';

const HEARTBEAT_DEAD_MS = 50000; // the server heartbeats every 15 s
const FATAL = new Set([1008, 4400, 4403, 4404]);

/**
 * new LiveSocket({jobId?, onEvent(ev), onState(state), onError(msg)})
 * jobId: one production's stream (/v1/productions/{id}/ws), else every
 * production of the caller (/v1/ws). state: 'connecting' | 'live' | 'retrying' | 'closed'.
 */
export class LiveSocket {
  constructor({ jobId = null, onEvent = () => {}, onState = () => {}, onError = () => {} }) {
    this.jobId = jobId;
    this.onEvent = onEvent;
    this.onState = onState;
    this.onError = onError;
    this.lastSeq = new Map();
    this.ws = null;
    this.attempt = 0;
    this.stopped = false;
    this.timer = null;
    this.watchdog = null;
    this.everSubscribed = false;
  }

  start() {
    this.stopped = false;
    this.connect();
    return this;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.watchdog);
    if (this.ws) {
      const ws = this.ws;
      ws.onclose = null;
      ws.onmessage = null;
      // Closing a socket still connecting makes the browser log an error:
      // let it open, then close it.
      if (ws.readyState === WebSocket.CONNECTING) ws.onopen = () => ws.close(1000, 'bye');
      else ws.close(1000, 'bye');
      this.ws = null;
    }
    this.onState('closed');
  }

  /** Forget a job's position, e.g. to replay its whole log on the next connection. */
  seen(jobId) { return this.lastSeq.get(jobId) || 0; }

  async connect() {
    // Signed out meanwhile (another tab, or this one): no ticket to ask for.
    if (!currentUser()) this.stopped = true;
    if (this.stopped) return;
    this.onState(this.attempt ? 'retrying' : 'connecting');
    let ticket;
    try {
      ticket = (await api.post('/v1/ws-ticket', {})).ticket;
    } catch (err) {
      if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
        this.onError(err.message);
        this.stopped = true;
        this.onState('closed');
        return;
      }
      this.schedule();
      return;
    }
    if (this.stopped) return;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const params = new URLSearchParams({ ticket });
    let path = '/v1/ws';
    if (this.jobId) {
      path = `/v1/productions/${encodeURIComponent(this.jobId)}/ws`;
      params.set('after', String(this.seen(this.jobId)));
    }
    const ws = new WebSocket(`${proto}//${location.host}${path}?${params}`);
    this.ws = ws;
    ws.onmessage = (msg) => this.receive(msg);
    ws.onclose = (ev) => this.closed(ev);
    ws.onerror = () => { /* onclose follows */ };
  }

  kick() {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => {
      if (this.ws) this.ws.close(4000, 'no heartbeat');
    }, HEARTBEAT_DEAD_MS);
  }

  receive(msg) {
    this.kick();
    let ev;
    try { ev = JSON.parse(msg.data); } catch { return; }
    if (!ev || typeof ev !== 'object') return;
    if (ev.type === 'subscribed') {
      this.attempt = 0;
      if (!this.jobId && this.lastSeq.size) {
        // Resume the jobs we were following from where we stopped.
        this.ws.send(JSON.stringify({ type: 'resume', jobs: Object.fromEntries(this.lastSeq) }));
      }
      const reconnected = this.everSubscribed;
      this.everSubscribed = true;
      this.onState('live', { reconnected, subscribed: ev });
      return;
    }
    if (ev.type === 'error') {
      this.onError(ev.message || ev.code);
      return;
    }
    if (typeof ev.seq === 'number' && ev.job_id) {
      const last = this.lastSeq.get(ev.job_id) || 0;
      if (ev.seq <= last) return; // already seen (a replay overlapping what we had)
      this.lastSeq.set(ev.job_id, ev.seq);
      this.onEvent(ev);
    }
  }

  closed(ev) {
    clearTimeout(this.watchdog);
    this.ws = null;
    if (this.stopped) return;
    if (FATAL.has(ev.code)) {
      this.stopped = true;
      this.onError(ev.reason || String(ev.code));
      this.onState('closed');
      return;
    }
    this.schedule();
  }

  schedule() {
    if (this.stopped) return;
    this.attempt += 1;
    const base = Math.min(30000, 1000 * 2 ** (this.attempt - 1));
    const delay = base / 2 + Math.random() * (base / 2);
    this.onState('retrying', { delay });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }
}
