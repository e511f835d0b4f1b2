import { html } from '../vendor/preact-htm.js';
import { get, query } from '../lib/api.js';
import { canRead } from '../lib/store.js';
import { useAsync, useFollow, ErrorBox, Loading } from '../lib/ui.js';
import { href, when, go } from '../lib/util.js';

export function Snippet({ parts }) {
  if (!parts || !parts.length) return null;
  return html`<p class="snippet">${parts.map((p) => (p.hit ? html`<mark>${p.text}</mark>` : p.text))}</p>`;
}

export function Notes({ route, s }) {
  const p = route.params;
  const q = p.get('q') || '';
  const tags = p.getAll('tag');
  const page = Number(p.get('page') || 1);
  // Back/forward changes the query in the address: the field follows it.
  const [text, setText] = useFollow(q);
  const list = useAsync(() => get(`/api/notes${query({ q, tag: tags, page, per_page: 30 })}`), [q, tags.join('\n'), page]);
  const cloud = useAsync(() => get('/api/tags'), []);
  if (!canRead(s)) return html`<p>Log in to read notes. <a href="#/login">Log in</a>.</p>`;
  const nav = (params) => {
    const n = new URLSearchParams();
    if (params.q) n.set('q', params.q);
    (params.tags || []).forEach((t) => n.append('tag', t));
    if (params.page > 1) n.set('page', params.page);
    go(`#/notes${n.toString() ? `?${n}` : ''}`);
  };
  const toggleTag = (t) => nav({ q, tags: tags.includes(t) ? tags.filter((x) => x !== t) : [...tags, t] });
  const max = Math.max(1, ...((cloud.data && cloud.data.tags) || []).map((t) => t.count));
  return html`
    <div class="bar"><h1>Notes</h1>${s.me && html`<a class="button primary" href="#/note/new">New note</a>`}</div>
    <form role="search" class="filters" onSubmit=${(e) => { e.preventDefault(); nav({ q: text.trim(), tags }); }}>
      <label class="offscreen" for="notes-q">Search notes</label>
      <input id="notes-q" type="search" placeholder="Search notes (words, prefix*)" value=${text} onInput=${(e) => setText(e.target.value)} />
      <button type="submit">Search</button>
    </form>
    ${cloud.data && cloud.data.tags.length > 0 && html`<nav class="tags" aria-label="Tags">
      ${cloud.data.tags.map((t) => html`<button class=${`tag${tags.includes(t.tag) ? ' on' : ''}`} aria-pressed=${tags.includes(t.tag)}
        style=${{ fontSize: `${0.85 + (0.5 * t.count) / max}em` }} onClick=${() => toggleTag(t.tag)}>#${t.tag} <span class="muted">${t.count}</span></button>`)}
    </nav>`}
    ${list.loading && !list.data && html`<${Loading} />`}
    <${ErrorBox} error=${list.error} />
    ${list.data && (list.data.items.length === 0
      ? html`<p class="muted">${q || tags.length ? 'No notes match.' : 'No notes yet.'}</p>`
      : html`<ul class="notes">${list.data.items.map((n) => html`<li key=${n.id}>
          <a href=${href('note', n.id)} class="name">${n.title || '(untitled)'}</a>
          ${n.visibility === 'private' && html`<span class="badge">private</span>`}
          ${(Array.isArray(n.conflicts) ? n.conflicts.length : n.conflicts) > 0 && html`<span class="badge warn">conflict</span>`}
          <${Snippet} parts=${n.snippet} />
          <span class="muted">${n.author} · ${when(n.updated)}${n.tags.length ? ' · ' : ''}${n.tags.map((t) => `#${t}`).join(' ')}</span>
        </li>`)}</ul>`)}
    ${list.data && (page > 1 || list.data.has_more) && html`<nav class="pager" aria-label="Pages">
      <button disabled=${page <= 1} onClick=${() => nav({ q, tags, page: page - 1 })}>Previous</button>
      <span>Page ${page}</span>
      <button disabled=${!list.data.has_more} onClick=${() => nav({ q, tags, page: page + 1 })}>Next</button></nav>`}`;
}
