// Throughput and failure rate, drawn as SVG from the events the page receives (no chart library).

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 600;
const HEIGHT = 160;
const PAD = { left: 36, right: 6, top: 10, bottom: 18 };

function svg(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

// Finished jobs per time bucket: the last `count` buckets of `bucketMs`, the newest last.
export class Series {
  constructor(count = 60, bucketMs = 10_000) {
    this.count = count;
    this.bucketMs = bucketMs;
    this.buckets = new Map(); // bucket index -> {done, failed}
  }

  add(event, at = Date.now()) {
    if (!['complete', 'failed', 'dead', 'aborted'].includes(event.name)) return;
    const index = Math.floor(at / this.bucketMs);
    const bucket = this.buckets.get(index) ?? { done: 0, failed: 0, failedIds: new Set() };
    if (event.name === 'failed' || event.name === 'dead') {
      // A job that fails for good may say so twice (failed, then dead): count it once.
      if (bucket.failedIds.has(event.jobId)) return;
      bucket.failedIds.add(event.jobId);
      bucket.failed += 1;
    }
    bucket.done += 1;
    this.buckets.set(index, bucket);
  }

  values(now = Date.now()) {
    const last = Math.floor(now / this.bucketMs);
    for (const index of this.buckets.keys()) if (index <= last - this.count) this.buckets.delete(index);
    const values = [];
    for (let index = last - this.count + 1; index <= last; index += 1) {
      const bucket = this.buckets.get(index);
      values.push({ done: bucket?.done ?? 0, failed: bucket?.failed ?? 0 });
    }
    return values;
  }
}

function frame(chart, top, unit) {
  chart.replaceChildren();
  const bottom = HEIGHT - PAD.bottom;
  chart.append(svg('line', { x1: PAD.left, y1: bottom, x2: WIDTH - PAD.right, y2: bottom, class: 'axis' }));
  chart.append(svg('line', { x1: PAD.left, y1: PAD.top, x2: WIDTH - PAD.right, y2: PAD.top, class: 'grid-line' }));
  chart.append(svg('text', { x: PAD.left - 4, y: PAD.top + 4, class: 'label', 'text-anchor': 'end' }, `${top}${unit}`));
  chart.append(svg('text', { x: PAD.left - 4, y: bottom, class: 'label', 'text-anchor': 'end' }, `0${unit}`));
  chart.append(svg('text', { x: PAD.left, y: HEIGHT - 3, class: 'label' }, '10 min ago'));
  chart.append(svg('text', { x: WIDTH - PAD.right, y: HEIGHT - 3, class: 'label', 'text-anchor': 'end' }, 'now'));
}

export function drawBars(chart, numbers) {
  const top = Math.max(1, ...numbers);
  frame(chart, top, '');
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const step = plotW / numbers.length;
  numbers.forEach((value, index) => {
    if (!value) return;
    const height = (value / top) * plotH;
    const bar = svg('rect', { x: PAD.left + index * step + 1, y: PAD.top + plotH - height, width: Math.max(1, step - 2),
      height, class: 'bar' });
    bar.append(svg('title', {}, `${value} finished`));
    chart.append(bar);
  });
  chart.dataset.total = String(numbers.reduce((a, b) => a + b, 0));
}

export function drawRate(chart, pairs) {
  frame(chart, 100, '%');
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const step = plotW / pairs.length;
  const points = [];
  pairs.forEach(({ done, failed }, index) => {
    if (!done) return;
    const rate = failed / done;
    const x = PAD.left + index * step + step / 2;
    const y = PAD.top + plotH - rate * plotH;
    points.push(`${x.toFixed(1)},${y.toFixed(1)}`);
    const dot = svg('circle', { cx: x, cy: y, r: 2.5, class: rate > 0 ? 'dot bad' : 'dot' });
    dot.append(svg('title', {}, `${Math.round(rate * 100)}% of ${done}`));
    chart.append(dot);
  });
  if (points.length > 1) chart.append(svg('polyline', { points: points.join(' '), class: 'rate-line' }));
}
