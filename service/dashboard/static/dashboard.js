// The dashboard's pages. Each reads the API once, then stays current from the event stream: an event redraws
// what it changed (a progress bar directly, a table by reading it again, at most once a second). Nothing polls.

import { ApiError, api, can, follow, notify, setLive, throttle } from './api.js';
import { Series, drawBars, drawRate } from './charts.js';
import { ago, el, fill, jobLink, json, params, seconds, setText, status, when } from './dom.js';
import { buildFields, clearErrors, readKwargs, showErrors } from './schema-form.js';

const JOB_STATES = ['queued', 'deferred', 'in_progress', 'complete', 'failed', 'dead', 'aborted'];
const REFRESH_MS = 1000;
const SETTLE_MS = 2500;

function feedItem(event) {
  const feed = document.getElementById('feed');
  if (!feed) return;
  const detail = event.name === 'progress' && event.data.percent != null ? ` ${Math.round(event.data.percent)}%` : '';
  feed.prepend(el('li', {}, el('time', {}, new Date(event.at).toISOString().slice(11, 19)), ' ',
    status(event.name), ' ', event.function ?? '', ' ', event.jobId ? jobLink(event.jobId) : '', detail));
  while (feed.children.length > 30) feed.lastElementChild.remove();
}

function guardButtons() {
  for (const button of document.querySelectorAll('[data-needs]')) {
    if (!can(button.dataset.needs)) {
      button.disabled = true;
      button.title = `needs the '${button.dataset.needs}' scope`;
    }
  }
}

async function functionNames() {
  const { data } = await api('GET', '/v1/functions');
  return data;
}

function fillSelect(select, values, chosen) {
  for (const value of values) select.append(el('option', { value, selected: value === chosen }, value));
}

// --- overview -------------------------------------------------------------------------------------------

function queueRow(queue) {
  const oldest = queue.oldest_waiting_age_s;
  return el('tr', { dataset: { queue: queue.name } },
    el('td', {}, queue.name), el('td', { class: 'num', dataset: { cell: 'queued' } }, queue.queued),
    el('td', { class: 'num', dataset: { cell: 'running' } }, queue.in_progress),
    el('td', { class: 'num', dataset: { cell: 'deferred' } }, queue.deferred),
    el('td', { class: 'num', dataset: { cell: 'oldest' } }, oldest == null ? '—' : seconds(oldest)),
    el('td', { class: 'num', dataset: { cell: 'minute' } }, queue.finished_last_minute ?? '—'),
    el('td', { class: 'num', dataset: { cell: 'hour' } }, queue.finished_last_hour ?? '—'),
    el('td', { class: 'num' }, queue.workers));
}

function workerRow(worker) {
  return el('tr', {},
    el('td', {}, el('code', {}, worker.worker_id)), el('td', {}, worker.host), el('td', { class: 'num' }, worker.pid),
    el('td', { class: 'nowrap' }, when(worker.started_at)), el('td', { dataset: { seen: worker.last_seen } }, ago(worker.last_seen)),
    el('td', { class: 'num' }, worker.jobs.ongoing), el('td', { class: 'num', dataset: { cell: 'complete' } }, worker.jobs.complete),
    el('td', { class: 'num' }, worker.jobs.failed), el('td', { class: 'num' }, worker.jobs.retried));
}

async function overview() {
  const refresh = throttle(async () => {
    const [queues, workers] = await Promise.all([api('GET', '/v1/queues'), api('GET', '/v1/workers')]);
    fill(document.querySelector('#queues tbody'), queues.data.map(queueRow), 'No queue.', 8);
    fill(document.querySelector('#workers tbody'), workers.data.map(workerRow), 'No live worker.', 9);
  }, REFRESH_MS);
  const series = new Series();
  const draw = () => {
    const values = series.values();
    drawBars(document.getElementById('throughput-chart'), values.map((v) => v.done));
    drawRate(document.getElementById('failure-chart'), values);
  };
  draw();
  await refresh();
  // Worker counters and the queue's throughput reach Redis up to a heartbeat after the events that changed
  // them: read once more when the events settle.
  let settle = null;
  follow('/v1/events', (event) => {
    series.add(event);
    feedItem(event);
    draw();
    refresh();
    clearTimeout(settle);
    settle = setTimeout(refresh, SETTLE_MS);
  });
  setInterval(() => {  // the clock moves the charts and ages along; no request is made
    draw();
    for (const cell of document.querySelectorAll('[data-seen]')) cell.textContent = ago(cell.dataset.seen);
  }, 5000);
}

// --- jobs -----------------------------------------------------------------------------------------------

function jobRow(job) {
  return el('tr', { dataset: { jobId: job.job_id } },
    el('td', {}, jobLink(job.job_id)), el('td', {}, job.function ?? '—'), el('td', {}, status(job.status)),
    el('td', { class: 'nowrap' }, when(job.enqueued_at)), el('td', { class: 'nowrap' }, when(job.started_at)),
    el('td', { class: 'nowrap' }, when(job.finished_at)));
}

// Counts per status and per function, each a link that sets that filter.
function showCounts(counts, onPick) {
  const box = document.getElementById('counts');
  const group = (title, entries, field) => el('span', { class: 'count-group' }, `${title}: `,
    Object.entries(entries ?? {}).length
      ? Object.entries(entries).map(([name, n]) => el('button', { type: 'button', class: 'link', dataset: { [field]: name },
        onclick: () => onPick(field, name) }, `${name} ${n}`))
      : '—');
  box.replaceChildren(group('By status', counts?.status, 'status'), ' · ', group('By function', counts?.function, 'function'));
}

async function jobs() {
  const query = params();
  const statusSelect = document.getElementById('filter-status');
  const functionSelect = document.getElementById('filter-function');
  fillSelect(statusSelect, JOB_STATES, query.get('status') ?? '');
  fillSelect(functionSelect, (await functionNames()).map((f) => f.name), query.get('function') ?? '');
  document.getElementById('job-search').addEventListener('submit', (event) => {
    event.preventDefault();
    const id = document.getElementById('search-id').value.trim();
    if (id) location.assign(`/dashboard/jobs/${encodeURIComponent(id)}`);
  });
  const more = document.getElementById('more');
  let cursor = null;
  const url = (next) => {
    const search = new URLSearchParams({ limit: '50' });
    if (statusSelect.value) search.set('status', statusSelect.value);
    if (functionSelect.value) search.set('function', functionSelect.value);
    if (next) search.set('cursor', next);
    return `/v1/jobs?${search}`;
  };
  const show = (page, append) => {
    const tbody = document.querySelector('#jobs tbody');
    if (append) tbody.append(...page.items.map(jobRow));
    else fill(tbody, page.items.map(jobRow), 'No job matches.', 6);
    cursor = page.next_cursor;
    more.hidden = !cursor;
    showCounts(page.counts, pick);
  };
  const refresh = throttle(async () => {
    try {
      show((await api('GET', url())).data, false);
    } catch (error) {
      if (error instanceof ApiError && (error.status === 404 || error.status === 405)) {
        notify('Job search (GET /v1/jobs) is not available on this API; open a job by its id.', 'error');
        return;
      }
      throw error;
    }
  }, REFRESH_MS);
  more.addEventListener('click', async () => show((await api('GET', url(cursor))).data, true));
  const filtersChanged = () => {
    const search = new URLSearchParams();
    if (statusSelect.value) search.set('status', statusSelect.value);
    if (functionSelect.value) search.set('function', functionSelect.value);
    history.replaceState(null, '', `?${search}`);
    refresh();
  };
  function pick(field, value) {
    (field === 'status' ? statusSelect : functionSelect).value = value;
    filtersChanged();
  }
  for (const select of [statusSelect, functionSelect]) select.addEventListener('change', filtersChanged);
  await refresh();
  follow('/v1/events', (event) => {
    if (!functionSelect.value || event.function === functionSelect.value) refresh();
  });
}

// --- one job --------------------------------------------------------------------------------------------

function showProgress(bar, text, progress) {
  if (!progress) return;
  const percent = progress.percent ?? (progress.total ? (100 * progress.done) / progress.total : null);
  if (percent != null) bar.value = Math.min(100, percent);
  bar.dataset.percent = percent == null ? '' : String(Math.round(percent));
  text.textContent = [percent == null ? null : `${Math.round(percent)}%`, progress.message].filter(Boolean).join(' · ');
}

function attemptRow(attempt) {
  return el('tr', {},
    el('td', { class: 'num' }, attempt.try), el('td', {}, when(attempt.at)), el('td', {}, attempt.kind),
    el('td', {}, `${attempt.error_type}: ${attempt.message}`,
      attempt.traceback ? el('details', {}, el('summary', {}, 'traceback'), el('pre', { class: 'code traceback' }, attempt.traceback)) : null),
    el('td', {}, seconds(attempt.duration_s)), el('td', {}, seconds(attempt.retry_in_s)));
}

function childRow(child) {
  return el('tr', {}, el('td', {}, jobLink(child.job_id)), el('td', {}, child.function), el('td', {}, child.result_arg));
}

// Chains (README "Chains"): a job's parent, the argument its parent's result fills, why it did not run, its children.
function showChain(job) {
  const children = job.children ?? [];
  document.getElementById('chain-box').hidden = !job.parent && children.length === 0;
  const parent = document.getElementById('job-parent');
  parent.replaceChildren(job.parent ? jobLink(job.parent) : '—');
  setText('job-result-arg', job.result_arg ?? '—');
  setText('job-reason', job.reason ?? '—');
  fill(document.querySelector('#children tbody'), children.map(childRow), 'No child.', 3);
}

function showJob(job) {
  showChain(job);
  setText('job-function', job.function);
  const badge = document.getElementById('job-status');
  badge.textContent = job.status;
  badge.dataset.status = job.status;
  setText('job-tries', job.tries);
  setText('job-priority', job.priority || '—');  // while it waits or runs
  setText('job-waiting-on', job.waiting_on ? job.waiting_on.replace('_', ' ') : '—');  // its function's limit
  setText('job-unique-key', job.unique_key || '—');  // held while it waits or runs
  setText('job-enqueued', when(job.enqueued_at));
  setText('job-scheduled', when(job.scheduled_at));
  setText('job-started', when(job.started_at));
  setText('job-finished', when(job.finished_at));
  document.getElementById('job-kwargs').textContent = json(job.kwargs);
  const bar = document.getElementById('job-progress');
  showProgress(bar, document.getElementById('job-progress-text'), job.progress);
  if (job.status === 'complete' && !job.progress) {
    bar.value = 100;
    setText('job-progress-text', 'done');
  }
  document.getElementById('result-box').hidden = job.status !== 'complete';
  document.getElementById('job-result').textContent = job.status === 'complete' ? json(job.result) : '';
  document.getElementById('error-box').hidden = !job.error;
  if (job.error) {
    setText('job-error', `${job.error.type} (${job.error.kind}): ${job.error.message}`);
    document.getElementById('job-traceback').textContent = job.error.traceback ?? '';
  }
  fill(document.querySelector('#attempts tbody'), (job.attempts ?? []).map(attemptRow), 'No failed try.', 6);
  const finished = ['complete', 'failed', 'aborted', 'not_run'].includes(job.status);
  const abort = document.getElementById('abort');
  if (abort) abort.hidden = finished || !can('admin');
}

async function job() {
  const jobId = document.getElementById('job-id').dataset.jobId;
  const path = `/v1/jobs/${encodeURIComponent(jobId)}`;
  let finished = false;
  const load = async () => {
    try {
      const { data } = await api('GET', path);
      showJob(data);
      finished = ['complete', 'failed', 'aborted', 'not_run'].includes(data.status);
      return true;
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        notify(`No job with id ${jobId} (its record may have expired).`, 'error');
        return false;
      }
      throw error;
    }
  };
  const refresh = throttle(load, 250);
  // Where abort lives (`abort_job`) is the server's to say: the page carries its method and path.
  document.getElementById('abort')?.addEventListener('click', async (event) => {
    if (!confirm(`Abort job ${jobId}?`)) return;
    try {
      showJob((await api(event.target.dataset.method, event.target.dataset.path)).data);
    } catch (error) {
      notify(error.message, 'error');
    }
  });
  if (!(await load())) return;
  const bar = document.getElementById('job-progress');
  const text = document.getElementById('job-progress-text');
  follow(`${path}/events`, (event) => {
    feedItem(event);
    if (event.name === 'progress') showProgress(bar, text, event.data);
    else refresh();
  }, {
    closeOnTerminal: true,
    // A stream also ends when the job ended before its events could say so (its history expired): then the
    // job itself says it is finished, and the page stops reconnecting.
    onDrop: async (source) => {
      try {
        if ((await load()) && finished) {
          source.close();
          setLive('done');
        }
      } catch {
        // the API is out of reach too: the browser keeps reconnecting
      }
    },
  });
}

// --- dead letters ---------------------------------------------------------------------------------------

async function dead() {
  const functionSelect = document.getElementById('dead-function');
  fillSelect(functionSelect, (await functionNames()).map((f) => f.name), params().get('function') ?? '');
  const tbody = document.querySelector('#dead tbody');
  const more = document.getElementById('more');
  const selected = () => [...tbody.querySelectorAll('input[type=checkbox]:checked')].map((box) => box.value);
  const syncButtons = () => {
    const none = selected().length === 0 || !can('admin');
    document.getElementById('requeue-selected').disabled = none;
    document.getElementById('delete-selected').disabled = none;
    const noFunction = !functionSelect.value || !can('admin');
    document.getElementById('requeue-function').disabled = noFunction;
    document.getElementById('delete-function').disabled = noFunction;
  };
  let loaded = 0;
  const requeue = async (body) => {
    const { data } = await api('POST', '/v1/dead/requeue', body);
    const skipped = Object.entries(data.not_requeued).map(([id, why]) => `${id}: ${why}`);
    notify([`Requeued ${data.requeued.length}.`, data.not_found.length ? `Not found: ${data.not_found.length}.` : '',
      skipped.length ? `Not requeued: ${skipped.join(', ')}` : ''].filter(Boolean).join(' '));
    refresh();
  };
  const remove = async (ids) => {
    let deleted = 0;
    for (const id of ids) {
      try {
        await api('DELETE', `/v1/dead/${encodeURIComponent(id)}`);
        deleted += 1;
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 404)) throw error;
      }
    }
    notify(`Deleted ${deleted}.`);
    refresh();
  };
  const row = (letter) => el('tr', { dataset: { jobId: letter.job_id } },
    el('td', {}, el('input', { type: 'checkbox', value: letter.job_id, 'aria-label': `select ${letter.job_id}`, onchange: syncButtons })),
    el('td', {}, jobLink(letter.job_id)), el('td', {}, letter.function ?? '—'), el('td', { class: 'nowrap' }, when(letter.failed_at)),
    el('td', { class: 'num' }, letter.tries), el('td', {}, letter.reason),
    el('td', {}, `${letter.error.type}: ${letter.error.message}`,
      letter.error.traceback ? el('details', {}, el('summary', {}, 'traceback'), el('pre', { class: 'code traceback' }, letter.error.traceback)) : null),
    el('td', { class: 'actions' },
      el('button', { type: 'button', class: 'requeue', disabled: !can('admin') || !letter.requeueable,
        onclick: () => requeue({ job_ids: [letter.job_id] }).catch((e) => notify(e.message, 'error')) }, 'Requeue'),
      el('button', { type: 'button', class: 'danger delete', disabled: !can('admin'),
        onclick: () => remove([letter.job_id]).catch((e) => notify(e.message, 'error')) }, 'Delete')));
  const url = (offset, limit) => {
    const search = new URLSearchParams({ offset: String(offset), limit: String(limit) });
    if (functionSelect.value) search.set('function', functionSelect.value);
    return `/v1/dead?${search}`;
  };
  const refresh = throttle(async () => {
    const { data } = await api('GET', url(0, Math.max(50, loaded)));
    fill(tbody, data.items.map(row), 'No dead letter.', 8);
    loaded = data.items.length;
    more.hidden = loaded >= data.total;
    setText('dead-total', `${data.total} dead`);
    document.getElementById('select-all').checked = false;
    syncButtons();
  }, REFRESH_MS);
  more.addEventListener('click', async () => {
    const { data } = await api('GET', url(loaded, 50));
    tbody.append(...data.items.map(row));
    loaded += data.items.length;
    more.hidden = loaded >= data.total;
  });
  document.getElementById('select-all').addEventListener('change', (event) => {
    for (const box of tbody.querySelectorAll('input[type=checkbox]')) box.checked = event.target.checked;
    syncButtons();
  });
  functionSelect.addEventListener('change', () => {
    history.replaceState(null, '', functionSelect.value ? `?function=${encodeURIComponent(functionSelect.value)}` : '?');
    refresh();
  });
  const act = (id, action) => document.getElementById(id).addEventListener('click', () => action().catch((e) => notify(e.message, 'error')));
  act('requeue-selected', () => requeue({ job_ids: selected() }));
  act('delete-selected', async () => {
    const ids = selected();
    if (confirm(`Delete ${ids.length} dead letters?`)) await remove(ids);
  });
  act('requeue-function', () => requeue({ function: functionSelect.value }));
  act('delete-function', async () => {
    if (!confirm(`Delete every dead letter of ${functionSelect.value}?`)) return;
    const { data } = await api('DELETE', `/v1/dead?function=${encodeURIComponent(functionSelect.value)}`);
    notify(`Deleted ${data.deleted}.`);
    refresh();
  });
  await refresh();
  follow('/v1/events', (event) => {
    if (['dead', 'requeued', 'failed'].includes(event.name)) refresh();
  });
}

// --- cron -----------------------------------------------------------------------------------------------

function schedule(fields) {
  return Object.entries(fields).map(([name, value]) => `${name}=${Array.isArray(value) ? value.join(',') : value}`).join(' ');
}

async function cron() {
  const row = (entry) => el('tr', { dataset: { cron: entry.name } },
    el('td', {}, entry.name, el('div', { class: 'muted' }, entry.description)), el('td', {}, el('code', {}, schedule(entry.schedule))),
    el('td', { class: 'nowrap', dataset: { next: entry.next_run ?? '' } }, when(entry.next_run)),
    el('td', {}, entry.last_run?.job_id ? jobLink(entry.last_run.job_id) : '—', el('div', { class: 'muted nowrap' }, when(entry.last_run?.started_at))),
    el('td', {}, entry.last_run ? status(entry.last_run.status) : '—', entry.last_run?.error ? el('div', { class: 'error' }, entry.last_run.error) : null),
    el('td', {}, seconds(entry.last_run?.duration_s)), el('td', { class: 'num' }, entry.last_run?.runs ?? 0),
    el('td', { class: entry.missed_runs ? 'num bad' : 'num' }, entry.missed_runs,
      entry.last_missed_at ? el('div', { class: 'muted' }, `last ${when(entry.last_missed_at)}`) : null));
  const refresh = throttle(async () => {
    const { data } = await api('GET', '/v1/cron');
    fill(document.querySelector('#cron tbody'), data.map(row), 'No cron job.', 8);
  }, REFRESH_MS);
  await refresh();
  follow('/v1/events', (event) => {
    if (event.jobId?.startsWith('platform:cron:')) refresh();
  });
}

// --- enqueue --------------------------------------------------------------------------------------------

function followAccepted(jobId) {
  const box = document.getElementById('accepted');
  const link = document.getElementById('accepted-link');
  const badge = document.getElementById('accepted-status');
  const bar = document.getElementById('accepted-progress');
  const text = document.getElementById('accepted-progress-text');
  box.hidden = false;
  link.textContent = jobId;
  link.href = `/dashboard/jobs/${encodeURIComponent(jobId)}`;
  bar.value = 0;
  bar.dataset.percent = '0';
  text.textContent = '';
  const setStatus = (state) => {
    badge.textContent = state;
    badge.dataset.status = state;
  };
  return follow(`/v1/jobs/${encodeURIComponent(jobId)}/events`, (event) => {
    if (event.name === 'progress') showProgress(bar, text, event.data);
    else setStatus(event.name === 'started' ? 'in_progress' : event.name);
    if (event.name === 'complete') {
      bar.value = 100;
      bar.dataset.percent = '100';
    }
  }, { closeOnTerminal: true });
}

async function enqueue() {
  setLive('idle'); // no stream until a job is enqueued
  const functions = await functionNames();
  const select = document.getElementById('function');
  const form = document.getElementById('enqueue');
  const fields = document.getElementById('arguments');
  fillSelect(select, functions.map((f) => f.name), params().get('function') ?? functions[0]?.name);
  const choose = () => {
    const chosen = functions.find((f) => f.name === select.value);
    setText('function-description', chosen?.description ?? '');
    buildFields(fields, chosen?.arguments_schema ?? {});
    clearErrors(form);
  };
  select.addEventListener('change', () => {
    history.replaceState(null, '', `?function=${encodeURIComponent(select.value)}`);
    choose();
  });
  choose();
  let current = null;
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const { kwargs, problems } = readKwargs(fields);
    if (problems.length) {
      showErrors(form, problems);
      return;
    }
    const body = { function: select.value, kwargs };
    const jobId = document.getElementById('opt-job_id').value.trim();
    const deferBy = document.getElementById('opt-defer_by').value;
    if (jobId) body.job_id = jobId;
    if (deferBy !== '') body.defer_by = Number(deferBy);
    try {
      const { data } = await api('POST', '/v1/jobs', body);
      notify(`Enqueued ${data.job_id} (${data.status}).`);
      current?.close();
      current = followAccepted(data.job_id);
      document.getElementById('accepted-status').textContent = data.status;
      document.getElementById('accepted-status').dataset.status = data.status;
    } catch (error) {
      if (error instanceof ApiError && error.detail.length) showErrors(form, error.detail);
      else showErrors(form, [{ loc: [], msg: error.message }]);
    }
  });
}

const PAGES = { overview, jobs, job, dead, cron, enqueue };
guardButtons();
const page = PAGES[document.body.dataset.page];
if (page) {
  page()
    .then(() => {
      document.body.dataset.ready = 'true';
    })
    .catch((error) => notify(error.message, 'error'));
}
