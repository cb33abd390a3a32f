// Building the page from data: text always goes in as text (never as HTML), times are shown in UTC.

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'dataset') Object.assign(node.dataset, value);
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function fill(tbody, rows, emptyText, columns) {
  tbody.replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: columns, class: 'muted' }, emptyText))]));
}

export function setText(id, text) {
  const node = document.getElementById(id);
  if (node) node.textContent = text ?? '—';
}

export function when(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function seconds(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return '—';
  if (value < 1) return `${Math.round(value * 1000)} ms`;
  if (value < 120) return `${value.toFixed(1)} s`;
  if (value < 7200) return `${Math.round(value / 60)} min`;
  return `${(value / 3600).toFixed(1)} h`;
}

export function ago(iso) {
  if (!iso) return '—';
  return `${seconds(Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000))} ago`;
}

export function json(value) {
  return JSON.stringify(value, null, 2);
}

export function status(state) {
  return el('span', { class: 'status', dataset: { status: state ?? 'unknown' } }, state ?? '—');
}

export function jobLink(jobId) {
  return el('a', { href: `/dashboard/jobs/${encodeURIComponent(jobId)}` }, jobId);
}

export function params() {
  return new URLSearchParams(location.search);
}
