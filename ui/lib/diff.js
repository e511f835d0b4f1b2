// A line diff (longest common subsequence) for revisions and stale edits. Notes are small;
// past a size where the table would be too large the caller shows both texts instead.
import { html } from '../vendor/preact-htm.js';

const LIMIT = 4000000;

/** [{op: ' '|'-'|'+', line}] or null when the texts are too large to compare here. */
export function diffLines(a, b) {
  const x = a.split('\n');
  const y = b.split('\n');
  // Common head and tail are cheap and make the table small for typical edits.
  let head = 0;
  while (head < x.length && head < y.length && x[head] === y[head]) head += 1;
  let tail = 0;
  while (tail < x.length - head && tail < y.length - head && x[x.length - 1 - tail] === y[y.length - 1 - tail]) tail += 1;
  const xs = x.slice(head, x.length - tail);
  const ys = y.slice(head, y.length - tail);
  const n = xs.length;
  const m = ys.length;
  if (n * m > LIMIT) return null;
  const t = new Array(n + 1);
  for (let i = 0; i <= n; i += 1) t[i] = new Uint32Array(m + 1);
  for (let i = n - 1; i >= 0; i -= 1) {
    for (let j = m - 1; j >= 0; j -= 1) {
      t[i][j] = xs[i] === ys[j] ? t[i + 1][j + 1] + 1 : Math.max(t[i + 1][j], t[i][j + 1]);
    }
  }
  const out = x.slice(0, head).map((line) => ({ op: ' ', line }));
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && xs[i] === ys[j]) {
      out.push({ op: ' ', line: xs[i] });
      i += 1;
      j += 1;
    } else if (j < m && (i === n || t[i][j + 1] >= t[i + 1][j])) {
      out.push({ op: '+', line: ys[j] });
      j += 1;
    } else {
      out.push({ op: '-', line: xs[i] });
      i += 1;
    }
  }
  x.slice(x.length - tail).forEach((line) => out.push({ op: ' ', line }));
  return out;
}

/** Shows a diff; unchanged runs longer than 6 lines are folded. */
export function Diff({ a, b, labelA = 'before', labelB = 'after' }) {
  const d = diffLines(a, b);
  if (!d) return html`<p class="muted">Too large to compare line by line.</p>`;
  if (!d.some((l) => l.op !== ' ')) return html`<p class="muted">No difference in the text.</p>`;
  const rows = [];
  let run = [];
  const flush = (end) => {
    if (run.length > 6) {
      rows.push(...run.slice(0, end ? 3 : 0).map((l) => ({ ...l })));
      rows.push({ op: '…', line: `${run.length - (end ? 6 : 3)} unchanged lines` });
      rows.push(...run.slice(-3));
    } else rows.push(...run);
    run = [];
  };
  d.forEach((l) => {
    if (l.op === ' ') run.push(l);
    else {
      flush(rows.length > 0);
      rows.push(l);
    }
  });
  flush(true);
  return html`<div class="diff" role="table" aria-label=${`Changes from ${labelA} to ${labelB}`}>
    ${rows.map((l) => html`<div role="row" class=${l.op === '+' ? 'add' : l.op === '-' ? 'del' : l.op === '…' ? 'fold' : ''}>
      <span role="cell" class="op" aria-label=${l.op === '+' ? 'added' : l.op === '-' ? 'removed' : ''}>${l.op}</span><span role="cell">${l.line}</span></div>`)}
  </div>`;
}
