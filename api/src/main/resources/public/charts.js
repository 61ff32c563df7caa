// A line chart in plain SVG: one series, axes with a few ticks. Enough for loss and learning-rate curves.
'use strict';
const SlopeCharts = (() => {
  const NS = 'http://www.w3.org/2000/svg';
  const el = (name, attrs, parent) => {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  };
  const fmt = v => (Math.abs(v) >= 1e3 || (Math.abs(v) < 1e-2 && v !== 0)) ? v.toExponential(1) : +v.toPrecision(3);

  /** Draws points [[x, y], ...] into the <svg> `svg`; sets data-points to how many were drawn. */
  function line(svg, points, {color = '#2e90fa', xLabel = 'step'} = {}) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const W = 600, H = 240, L = 56, R = 12, T = 12, B = 34;
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    svg.dataset.points = String(points.length);
    if (points.length === 0) {
      el('text', {x: W / 2, y: H / 2, 'text-anchor': 'middle', fill: '#6b7480'}, svg).textContent = 'no data yet';
      return;
    }
    const xs = points.map(p => p[0]), ys = points.map(p => p[1]);
    let [x0, x1] = [Math.min(...xs), Math.max(...xs)], [y0, y1] = [Math.min(...ys), Math.max(...ys)];
    if (x0 === x1) x1 = x0 + 1;
    if (y0 === y1) { y0 -= Math.abs(y0) * 0.1 || 1; y1 += Math.abs(y1) * 0.1 || 1; }
    const sx = x => L + (x - x0) / (x1 - x0) * (W - L - R);
    const sy = y => H - B - (y - y0) / (y1 - y0) * (H - T - B);
    const axes = el('g', {stroke: '#98a2b3', 'font-size': 11, fill: '#475467'}, svg);
    el('line', {x1: L, y1: H - B, x2: W - R, y2: H - B}, axes);
    el('line', {x1: L, y1: T, x2: L, y2: H - B}, axes);
    for (let i = 0; i <= 4; i++) {
      const yv = y0 + (y1 - y0) * i / 4, xv = x0 + (x1 - x0) * i / 4;
      el('line', {x1: L, x2: W - R, y1: sy(yv), y2: sy(yv), stroke: '#eaecf0'}, axes);
      el('text', {x: L - 6, y: sy(yv) + 4, 'text-anchor': 'end', stroke: 'none'}, axes).textContent = fmt(yv);
      el('text', {x: sx(xv), y: H - B + 16, 'text-anchor': 'middle', stroke: 'none'}, axes).textContent =
          Math.round(xv);
    }
    el('text', {x: (L + W - R) / 2, y: H - 4, 'text-anchor': 'middle', stroke: 'none'}, axes).textContent = xLabel;
    el('polyline', {points: points.map(p => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(' '),
      fill: 'none', stroke: color, 'stroke-width': 1.8, class: 'series'}, svg);
  }
  /** An empty <svg> (in the SVG namespace: one made by createElement('svg') draws nothing). */
  const svg = id => el('svg', {id});

  return {line, svg};
})();
