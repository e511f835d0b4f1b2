// A note's past: revisions with a diff and restore, the event log, and conflicts between
// versions made apart (on two boxes, or by two people offline) with a resolve view.
import { html, useState } from '../vendor/preact-htm.js';
import { get, post, request, errorText } from '../lib/api.js';
import { useAsync, ErrorBox, Loading, toast } from '../lib/ui.js';
import { when } from '../lib/util.js';
import { Diff } from '../lib/diff.js';

export function Revisions({ note, s, onRestored }) {
  const list = useAsync(() => get(`/api/notes/${note.id}/revisions`), [note.id, note.rev]);
  const [open, setOpen] = useState(null);
  const rev = useAsync(() => (open ? get(`/api/notes/${note.id}/revisions/${open}`) : null), [open]);
  if (list.loading && !list.data) return html`<${Loading} />`;
  if (list.error) return html`<${ErrorBox} error=${list.error} />`;
  const restore = async (r) => {
    try {
      await post(`/api/notes/${note.id}/restore`, { rev: r });
      toast('Restored as a new revision');
      setOpen(null);
      onRestored();
    } catch (e) {
      toast(errorText(e), 'error');
    }
  };
  // Newest first: by generation, then by time.
  const revs = [...list.data.revisions].sort((a, b) => b.gen - a.gen || (b.at > a.at ? 1 : b.at < a.at ? -1 : 0));
  return html`<section aria-label="History"><h2>History (${revs.length} revisions)</h2>
    <ol class="revisions">${revs.map((r) => html`<li key=${r.rev} class=${r.current ? 'current' : ''}>
      <button class="link" aria-expanded=${open === r.rev} onClick=${() => setOpen(open === r.rev ? null : r.rev)}>
        ${when(r.at)} · ${r.author}${r.deleted ? ' · deleted' : ''}${r.current ? ' · current' : ''}${r.leaf && !r.current ? ' · conflicting' : ''}</button>
      ${open === r.rev && html`<div class="rev">
        ${rev.loading ? html`<${Loading} />` : rev.error ? html`<${ErrorBox} error=${rev.error} />` : rev.data && html`
          <p>Title then: <strong>${rev.data.title}</strong></p>
          <p class="muted">Changes from this revision to the current text:</p>
          <${Diff} a=${rev.data.body || ''} b=${note.body} labelA="this revision" labelB="the current text" />
          ${s.me && !r.current && html`<button class="primary" onClick=${() => restore(r.rev)}>Restore this revision</button>`}`}
      </div>`}
    </li>`)}</ol></section>`;
}

export function Events({ note }) {
  const ev = useAsync(() => get(`/api/notes/${note.id}/events?limit=100`), [note.id, note.rev]);
  if (ev.loading && !ev.data) return html`<${Loading} />`;
  if (ev.error) return html`<${ErrorBox} error=${ev.error} />`;
  return html`<section aria-label="Events"><h2>Events</h2>
    <table class="list"><thead><tr><th scope="col">When</th><th scope="col">What</th><th scope="col">Who</th></tr></thead>
    <tbody>${ev.data.events.map((e) => html`<tr key=${e.id}><td>${when(e.at)}</td><td>${e.kind}</td><td>${e.actor || ''}</td></tr>`)}</tbody></table>
  </section>`;
}

/** The newest revision both `a` and `b` descend from (by generation), from the history. */
function commonBase(revisions, a, b) {
  const byRev = new Map(revisions.map((r) => [r.rev, r]));
  const ancestors = (start) => {
    const seen = new Set();
    const todo = [start];
    while (todo.length) {
      const r = todo.pop();
      if (seen.has(r) || !byRev.has(r)) continue;
      seen.add(r);
      byRev.get(r).parents.forEach((p) => todo.push(p));
    }
    return seen;
  };
  const left = ancestors(a);
  let best = null;
  ancestors(b).forEach((r) => {
    if (left.has(r) && (!best || byRev.get(r).gen > byRev.get(best).gen)) best = r;
  });
  return best;
}

/** Conflicting versions: try the server's three-way merge; if edits overlap, the user writes the result. */
export function Resolve({ note, s, onDone }) {
  const [other, setOther] = useState(null);
  const [base, setBase] = useState(null);
  const [merged, setMerged] = useState(null);
  const [error, setError] = useState(null);
  const revs = note.conflicts;
  const open = async (r) => {
    setError(null);
    try {
      const [o, hist] = await Promise.all([
        get(`/api/notes/${note.id}/revisions/${r}`),
        get(`/api/notes/${note.id}/revisions`),
      ]);
      const b = commonBase(hist.revisions, note.rev, r);
      setBase(b ? await get(`/api/notes/${note.id}/revisions/${b}`) : null);
      setOther(o);
      setMerged({ title: note.title, body: note.body });
    } catch (e) {
      setError(e);
    }
  };
  const auto = async (r) => {
    try {
      await post(`/api/notes/${note.id}/merge`, { rev: r });
      toast('Merged: both versions are combined');
      onDone();
    } catch (e) {
      if (e.status === 409) {
        toast('The versions change the same lines: combine them by hand below', 'error');
        open(r);
      } else setError(e);
    }
  };
  const resolve = async () => {
    try {
      await request('POST', `/api/notes/${note.id}/resolve`, {
        body: { merged: { title: merged.title, body: merged.body, tags: note.tags, visibility: note.visibility }, resolves: [other.rev] },
        headers: { 'If-Match': `"${note.rev}"` },
      });
      toast('Conflict resolved');
      setOther(null);
      onDone();
    } catch (e) {
      setError(e);
    }
  };
  return html`<div class="conflict" role="alert">
    <h2>This note has ${revs.length === 1 ? 'a conflicting version' : `${revs.length} conflicting versions`}</h2>
    <p>Two edits were made apart (on two boxes, or offline). Nothing is lost: combine them.</p>
    ${s.me ? html`<ul class="plain">${revs.map((r) => html`<li><code>${r.slice(0, 10)}</code>
      <button onClick=${() => auto(r)}>Merge automatically</button> <button onClick=${() => open(r)}>Compare and resolve…</button></li>`)}</ul>`
      : html`<p><a href="#/login">Log in</a> to resolve it.</p>`}
    <${ErrorBox} error=${error} />
    ${other && merged && html`<div class="three">
      ${base && html`<section><h3>Before both edits</h3><pre>${base.body}</pre></section>`}
      <section><h3>This version (current)</h3><pre>${note.body}</pre></section>
      <section><h3>The other version (${other.author})</h3><pre>${other.body}</pre></section>
      <section><h3>Result</h3>
        <label>Title<input value=${merged.title} onInput=${(e) => setMerged({ ...merged, title: e.target.value })} /></label>
        <label class="offscreen" for="merged-body">Merged text</label>
        <textarea id="merged-body" rows="14" value=${merged.body} onInput=${(e) => setMerged({ ...merged, body: e.target.value })}></textarea>
        <button class="primary" onClick=${resolve}>Save the result</button></section>
    </div>
    <h3>What the other version changed</h3><${Diff} a=${note.body} b=${other.body} labelA="current" labelB="other" />`}
  </div>`;
}
