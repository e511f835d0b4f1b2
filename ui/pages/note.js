import { html, useEffect, useRef, useState } from '../vendor/preact-htm.js';
import { get, post, request, errorText } from '../lib/api.js';
import { useAsync, useFollow, ErrorBox, Loading, Confirm, toast } from '../lib/ui.js';
import { when, href, go, debounce } from '../lib/util.js';
import { Diff } from '../lib/diff.js';
import { Resolve, Revisions, Events } from './note_history.js';

const splitTags = (t) => t.split(/[,\s]+/).map((x) => x.trim().replace(/^#/, '')).filter(Boolean);

/** Markdown rendered and sanitised by the server; never the note's text as HTML here. */
function Rendered({ html: h }) {
  return html`<div class="markdown" dangerouslySetInnerHTML=${{ __html: h }}></div>`;
}

function Preview({ body }) {
  const [out, setOut] = useState(null);
  const [error, setError] = useState(null);
  const run = useRef(debounce((b) => post('/api/notes/render', { body: b }).then((r) => { setOut(r.html); setError(null); }, setError), 300));
  useEffect(() => run.current(body), [body]);
  if (error) return html`<${ErrorBox} error=${error} />`;
  return out === null ? html`<p class="muted">Rendering…</p>` : html`<${Rendered} html=${out} />`;
}

function Editor({ note, s, onSaved, onCancel }) {
  const isNew = !note;
  const [title, setTitle] = useState(note ? note.title : '');
  const [body, setBody] = useState(note ? note.body : '');
  const [tags, setTags] = useState(note ? note.tags.join(', ') : '');
  const [vis, setVis] = useState(note ? note.visibility : 'private');
  const [tab, setTab] = useState('write');
  const [error, setError] = useState(null);
  const [stale, setStale] = useState(null);
  const [busy, setBusy] = useState(false);
  const base = useRef(note);
  const owner = isNew || note.owner === (s.me && s.me.name);

  const save = async (e, overRev) => {
    if (e) e.preventDefault();
    setBusy(true);
    setError(null);
    const fields = { title, body, tags: splitTags(tags) };
    if (owner) fields.visibility = vis;
    try {
      let saved;
      if (isNew) saved = await post('/api/notes', fields);
      else {
        // Once the page has shown what changed meanwhile, saving means "over that version".
        const rev = overRev || (stale ? stale.rev : base.current.rev);
        saved = await request('PUT', `/api/notes/${note.id}`, { body: fields, headers: { 'If-Match': `"${rev}"` } });
      }
      base.current = saved;
      setStale(null);
      onSaved(saved);
    } catch (err) {
      if (err.status === 412 && err.body && err.body.current) setStale(err.body.current);
      else setError(err);
    } finally {
      setBusy(false);
    }
  };
  const takeTheirs = () => {
    base.current = stale;
    setTitle(stale.title);
    setBody(stale.body);
    setTags(stale.tags.join(', '));
    setStale(null);
    toast('Their version is in the editor now');
  };
  return html`<form class="editor" onSubmit=${save}>
    <label>Title<input name="title" value=${title} onInput=${(e) => setTitle(e.target.value)} required maxlength="500" /></label>
    <label>Tags (comma-separated)<input name="tags" value=${tags} onInput=${(e) => setTags(e.target.value)} /></label>
    ${owner && html`<fieldset class="inline"><legend>Who can read it</legend>
      <label><input type="radio" name="vis" checked=${vis === 'private'} onChange=${() => setVis('private')} /> Only me</label>
      <label><input type="radio" name="vis" checked=${vis === 'public'} onChange=${() => setVis('public')} /> Everyone who can open this box</label>
    </fieldset>`}
    <div class="seg" role="tablist">
      <button type="button" role="tab" aria-selected=${tab === 'write'} onClick=${() => setTab('write')}>Write</button>
      <button type="button" role="tab" aria-selected=${tab === 'preview'} onClick=${() => setTab('preview')}>Preview</button>
    </div>
    ${tab === 'write'
      ? html`<label for="note-body">Text <span class="muted">(Markdown: **bold**, # heading, - list, [link](https://…))</span></label>
        <textarea id="note-body" name="body" rows="18" value=${body} onInput=${(e) => setBody(e.target.value)}></textarea>`
      : html`<div class="preview" role="tabpanel"><${Preview} body=${body} /></div>`}
    ${stale && html`<div class="stale" role="alert">
      <h2>Someone else saved this note while you were editing</h2>
      <p>${stale.author} saved it ${when(stale.updated)}. What they changed (from the version you started with):</p>
      <${Diff} a=${base.current.body} b=${stale.body} labelA="your starting point" labelB="their version" />
      ${stale.title !== base.current.title && html`<p>Their title: <strong>${stale.title}</strong></p>`}
      <p>Your text is still in the editor. Combine the two there, then save; or:</p>
      <div class="actions">
        <button type="button" onClick=${takeTheirs}>Discard mine, take theirs</button>
        <button type="button" class="primary" onClick=${() => { base.current = stale; save(null, stale.rev); }}>Save mine over theirs</button>
      </div>
    </div>`}
    <${ErrorBox} error=${error} />
    <div class="actions">
      <button type="button" onClick=${onCancel}>Cancel</button>
      <button class="primary" type="submit" disabled=${busy}>${isNew ? 'Create note' : 'Save'}</button>
    </div>
  </form>`;
}

export function Note({ route, s }) {
  const id = route.path;
  const isNew = id === 'new';
  const [mode, setMode] = useFollow(isNew ? 'edit' : 'view', id);
  const [tab, setTab] = useState(null);
  const [ask, setAsk] = useState(null);
  const note = useAsync(() => (isNew ? null : get(`/api/notes/${encodeURIComponent(id)}`)), [id]);
  const rendered = useAsync(() => (isNew || !note.data ? null : get(`/api/notes/${encodeURIComponent(id)}/html`)), [id, note.data && note.data.rev]);

  if (isNew) {
    if (!s.me) return html`<p>Log in to write notes. <a href="#/login">Log in</a>.</p>`;
    return html`<h1>New note</h1><${Editor} s=${s} onSaved=${(n) => go(href('note', n.id))} onCancel=${() => go('#/notes')} />`;
  }
  if (note.loading && !note.data) return html`<${Loading} />`;
  if (note.error) return html`<${ErrorBox} error=${note.error} /><p><a href="#/notes">All notes</a></p>`;
  const n = note.data;
  const saved = (x) => {
    toast('Saved');
    setMode('view');
    note.reload();
    return x;
  };
  const remove = () => setAsk(html`<${Confirm} title="Delete note" text=${`Delete "${n.title}"? It can be restored from its history.`} action="Delete" danger
    onAnswer=${async (yes) => {
      setAsk(null);
      if (!yes) return;
      try {
        await request('DELETE', `/api/notes/${n.id}`, { headers: { 'If-Match': `"${n.rev}"` } });
        toast('Note deleted');
        note.reload();
      } catch (e) {
        toast(errorText(e), 'error');
      }
    }} />`);
  return html`
    <p><a href="#/notes">← All notes</a></p>
    ${mode === 'edit' && s.me
      ? html`<h1>Edit note</h1><${Editor} note=${n} s=${s} onSaved=${saved} onCancel=${() => setMode('view')} />`
      : html`<article class="note">
        <div class="bar"><h1>${n.title || '(untitled)'}</h1>
          <div class="tools">${s.me && !n.deleted && html`<button class="primary" onClick=${() => setMode('edit')}>Edit</button>
            <button class="danger" onClick=${remove}>Delete</button>`}</div></div>
        <p class="muted">${n.visibility === 'private' ? html`<span class="badge">private</span> ` : html`<span class="badge">public</span> `}
          by ${n.author} · ${when(n.updated)}${n.owner && n.owner !== n.author ? ` · owner ${n.owner}` : ''} · ${n.views} views
          ${n.tags.map((t) => html` <a class="tag" href=${`#/notes?tag=${encodeURIComponent(t)}`}>#${t}</a>`)}</p>
        ${n.deleted && html`<p class="warn" role="alert">This note is deleted. Restore an earlier revision from its history to bring it back.</p>`}
        ${n.conflicts.length > 0 && html`<${Resolve} note=${n} s=${s} onDone=${note.reload} />`}
        ${rendered.data ? html`<${Rendered} html=${rendered.data.html} />` : html`<pre class="plain-body">${n.body}</pre>`}
        <p class="muted">Contributors: ${n.contributors.map((c) => `${c.name} (${c.revisions})`).join(', ')}</p>
      </article>`}
    <div class="seg" role="tablist" aria-label="More about this note">
      <button role="tab" aria-selected=${tab === 'history'} onClick=${() => setTab(tab === 'history' ? null : 'history')}>History</button>
      <button role="tab" aria-selected=${tab === 'events'} onClick=${() => setTab(tab === 'events' ? null : 'events')}>Events</button>
    </div>
    ${tab === 'history' && html`<${Revisions} note=${n} s=${s} onRestored=${note.reload} />`}
    ${tab === 'events' && html`<${Events} note=${n} />`}
    ${ask}`;
}
