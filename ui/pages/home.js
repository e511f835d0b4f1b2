import { html, useEffect, useRef, useState } from '../vendor/preact-htm.js';
import { get, query } from '../lib/api.js';
import { canRead } from '../lib/store.js';
import { useAsync, ErrorBox, Loading } from '../lib/ui.js';
import { bytes, when, href, duration, debounce } from '../lib/util.js';
import { MediaCard } from './library.js';
import { PeersCard } from './peers.js';

function Storage() {
  const st = useAsync(() => get('/api/storage'), []);
  if (st.loading) return html`<${Loading} what="Checking storage" />`;
  if (st.error) return html`<${ErrorBox} error=${st.error} />`;
  const d = st.data;
  // An object store has no capacity: the API reports it as unlimited (2^63 - 1).
  const unlimited = d.total_bytes !== null && d.total_bytes >= 2 ** 62;
  const known = !unlimited && d.total_bytes !== null && d.free_bytes !== null;
  const used = known && d.total_bytes ? 1 - d.free_bytes / d.total_bytes : 0;
  return html`<div class="card">
    <h2>Storage</h2>
    <p>${d.healthy ? html`<span class="ok">● healthy</span>` : html`<span class="bad" role="alert">● ${d.error || 'not available'}</span>`}
      <span class="muted"> · ${d.backend}</span></p>
    ${known && html`<progress max="1" value=${used} aria-label="Disk used"></progress>
      <p>${bytes(d.free_bytes)} free of ${bytes(d.total_bytes)}</p>`}
    ${unlimited && html`<p class="muted">Object storage: no fixed size (per-user limits still apply)</p>`}
    ${d.library && html`<p class="muted">${d.library.files} files in the library (${bytes(d.library.bytes)})</p>`}
    ${d.trash && d.trash.entries > 0 && html`<p class="muted"><a href="#/trash">Trash</a>: ${d.trash.entries} items, ${bytes(d.trash.bytes)}</p>`}
  </div>`;
}

function Continue() {
  const st = useAsync(() => get('/api/positions').catch(() => ({ items: [] })), []);
  const items = (st.data && st.data.items) || [];
  if (!items.length) return null;
  return html`<section><h2>Continue watching</h2>
    <ul class="plain">${items.slice(0, 6).map((p) => html`<li><a href=${href('play', p.path)}>${p.path}</a>
      <span class="muted"> at ${duration(p.position)}${p.duration ? ` of ${duration(p.duration)}` : ''}</span></li>`)}</ul></section>`;
}

function Recent() {
  const st = useAsync(() => get(`/api/library${query({ type: 'video', sort: '-mtime', per_page: 8 })}`), []);
  if (st.loading) return html`<${Loading} />`;
  if (st.error) return html`<${ErrorBox} error=${st.error} />`;
  const entries = st.data.entries;
  return html`<section><h2>Recent videos</h2>
    ${entries.length ? html`<div class="grid">${entries.map((e) => html`<${MediaCard} e=${e} />`)}</div>`
      : html`<p class="muted">No videos yet. ${html`<a href="#/upload">Upload some</a>`} or copy them into the media folder.</p>`}
  </section>`;
}

function RecentNotes() {
  const st = useAsync(() => get('/api/notes?per_page=8'), []);
  if (st.loading) return html`<${Loading} />`;
  if (st.error) return html`<${ErrorBox} error=${st.error} />`;
  return html`<section><h2>Recently edited notes</h2>
    ${st.data.items.length ? html`<ul class="plain">${st.data.items.map((n) => html`<li><a href=${href('note', n.id)}>${n.title || '(untitled)'}</a>
      <span class="muted"> · ${n.author} · ${when(n.updated)}</span></li>`)}</ul>`
      : html`<p class="muted">No notes yet. <a href="#/note/new">Write one</a>.</p>`}
  </section>`;
}

function Search({ initial }) {
  const [q, setQ] = useState(initial);
  const [res, setRes] = useState(null);
  const run = useRef(debounce(async (text) => {
    // Kept in the address (without a new history entry), so reload and Back keep it.
    history.replaceState(null, '', text.trim() ? `#/?q=${encodeURIComponent(text)}` : '#/');
    if (!text.trim()) return setRes(null);
    const [media, notes] = await Promise.all([
      get(`/api/library${query({ q: text, per_page: 10 })}`).catch((e) => ({ error: e })),
      get(`/api/notes${query({ q: text, per_page: 10 })}`).catch((e) => ({ error: e })),
    ]);
    setRes({ media, notes });
  }, 250)).current;
  useEffect(() => {
    if (initial) run(initial);
  }, []);
  return html`<form role="search" class="search" onSubmit=${(e) => e.preventDefault()}>
      <label class="offscreen" for="home-q">Search media and notes</label>
      <input id="home-q" type="search" placeholder="Search media and notes" value=${q}
        onInput=${(e) => { setQ(e.target.value); run(e.target.value); }} />
    </form>
    ${res && html`<div class="columns results">
      <section aria-label="Media found"><h2>Media</h2>
        ${res.media.error ? html`<${ErrorBox} error=${res.media.error} />` : res.media.entries.length
          ? html`<ul class="plain">${res.media.entries.map((e) => html`<li><a href=${e.kind === 'dir' ? href('library', e.path) : href('play', e.path)}>${e.path}</a></li>`)}</ul>`
          : html`<p class="muted">No media matches.</p>`}</section>
      <section aria-label="Notes found"><h2>Notes</h2>
        ${res.notes.error ? html`<${ErrorBox} error=${res.notes.error} />` : res.notes.items.length
          ? html`<ul class="plain">${res.notes.items.map((n) => html`<li><a href=${href('note', n.id)}>${n.title || '(untitled)'}</a></li>`)}</ul>`
          : html`<p class="muted">No notes match.</p>`}</section>
    </div>`}`;
}

export function Home({ route, s }) {
  if (!canRead(s)) {
    return html`<section class="narrow"><h1>streamhub</h1><p>This box needs a login. <a href="#/login">Log in</a>.</p></section>`;
  }
  return html`<h1 class="offscreen">Home</h1>
    <${Search} initial=${route.params.get('q') || ''} />
    ${s.me && s.me.role === 'admin' && s.info && s.info.anonymous_read && html`<p class="muted notice">Anyone on your network can browse the
      media and read public notes here without logging in (<code>auth.anonymous_read</code> in the configuration).</p>`}
    ${s.me && html`<div class="columns"><${Storage} />${s.info && s.info.lan_peers && html`<${PeersCard} />`}</div>`}
    ${s.me && html`<${Continue} />`}
    <${Recent} />
    <${RecentNotes} />`;
}
