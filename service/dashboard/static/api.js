// The page's only ways out: the API under /v1 (with the session cookie the browser sends on its own, and the
// session's CSRF token on every state-changing call) and its event streams. No key ever reaches this script.

const CSRF = document.querySelector('meta[name="csrf-token"]')?.content ?? '';
export const EVENT_NAMES = ['queued', 'deferred', 'started', 'progress', 'retrying', 'complete', 'failed', 'dead',
  'aborted', 'requeued', 'pending', 'not_run', 'limited'];
export const TERMINAL = new Set(['complete', 'failed', 'dead', 'aborted', 'not_run']);

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail.map((problem) => problem.msg).join('; ') || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

function signIn() {
  const here = location.pathname + location.search;
  location.assign(`/dashboard/login?next=${encodeURIComponent(here)}`);
}

export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') headers['X-CSRF-Token'] = CSRF;
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    signIn();
    throw new ApiError(401, []);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const detail = Array.isArray(data?.detail) ? data.detail : [];
    throw new ApiError(response.status, detail);
  }
  return { status: response.status, data };
}

export function setLive(state) {
  const badge = document.getElementById('live');
  if (!badge) return;
  badge.dataset.state = state;
  badge.textContent = state;
}

// One event as the page uses it, whether the stream names its events (`event: progress`) or not.
function normalize(message) {
  let payload;
  try {
    payload = JSON.parse(message.data);
  } catch {
    return null;
  }
  if (payload === null || typeof payload !== 'object') return null;
  const name = message.type !== 'message' ? message.type : (payload.event ?? payload.type);
  const data = payload.data && typeof payload.data === 'object' ? payload.data : payload;
  const at = Number((message.lastEventId ?? '').split('-')[0]) || Date.now(); // an id is `<ms>-<seq>`
  return { id: message.lastEventId, at, name, jobId: payload.job_id, function: payload.function, data };
}

// Follow an SSE stream; `onEvent` gets each event. A job's stream ends after its terminal event: closed
// here, so the browser does not reconnect to a finished job. `onDrop(source)` runs when the connection drops
// (the browser then reconnects with Last-Event-ID unless it is closed).
export function follow(url, onEvent, { closeOnTerminal = false, onDrop = null } = {}) {
  const source = new EventSource(url);
  setLive('connecting');
  source.onopen = () => setLive('live');
  source.onerror = () => {
    setLive(source.readyState === EventSource.CLOSED ? 'offline' : 'reconnecting');
    onDrop?.(source);
  };
  const handle = (message) => {
    const event = normalize(message);
    if (event === null || !event.name) return;
    onEvent(event);
    if (closeOnTerminal && TERMINAL.has(event.name)) {
      source.close();
      setLive('done');
    }
  };
  source.onmessage = handle;
  for (const name of EVENT_NAMES) source.addEventListener(name, handle);
  return source;
}

// Run `fn` at most once per `ms`, and always once more after the last call (so the last change shows).
export function throttle(fn, ms) {
  let running = false;
  let again = false;
  const run = async () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      await fn();
    } catch (error) {
      notify(error.message, 'error');
    }
    setTimeout(() => {
      running = false;
      if (again) {
        again = false;
        run();
      }
    }, ms);
  };
  return run;
}

let noticeTimer = null;

export function notify(text, kind = 'info') {
  const notice = document.getElementById('notice');
  if (!notice) return;
  notice.textContent = text;
  notice.dataset.kind = kind;
  notice.hidden = !text;
  clearTimeout(noticeTimer);
  if (kind !== 'error') noticeTimer = setTimeout(() => { notice.hidden = true; }, 8000);
}

export function can(scope) {
  return (document.body.dataset.scopes ?? '').split(' ').includes(scope);
}
