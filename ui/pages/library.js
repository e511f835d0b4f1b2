import { html, useState } from '../vendor/preact-htm.js';
import { get, post, del, query, encPath, errorText } from '../lib/api.js';
import { canRead, canWrite, isAdmin, session } from '../lib/store.js';
import { useAsync, useFollow, ErrorBox, Loading, Crumbs, Prompt, Confirm, toast } from '../lib/ui.js';
import { bytes, duration, href, parent, basename, go, shortName } from '../lib/util.js';
import { ShareDialog } from './share.js';
import { Icon } from '../lib/icons.js';

const PER_PAGE = 60;

export function openHref(e) {
  if (e.kind === 'dir') return href('library', e.path);
  if (e.media === 'video' || e.media === 'audio') return href('play', e.path);
  return `/media/${encPath(e.path)}`;
}

export function MediaCard({ e, menu }) {
  const meta = e.kind === 'dir' ? 'folder' : [duration(e.duration), bytes(e.size)].filter(Boolean).join(' · ');
  return html`<div class="tile">
    <a class="thumb" href=${openHref(e)} tabindex="-1" aria-hidden="true">
      ${e.thumb ? html`<img src=${e.thumb} alt="" loading="lazy" />` : html`<span class="big-icon"><${Icon} name=${e.media} size=${48} /></span>`}
    </a>
    <div class="tile-text"><a href=${openHref(e)} class="name" title=${e.name} aria-label=${e.name}>${shortName(e.name)}</a>
      <span class="muted">${meta}</span></div>
    ${menu}
  </div>`;
}

function EntryMenu({ e, onAct, admin }) {
  // Members may change what they uploaded or made (the server checks again).
  const mine = admin || e.yours;
  // A chosen item, a click elsewhere or Escape closes the menu.
  const close = (ev) => {
    const d = ev.currentTarget.closest('details');
    if (d) d.open = false;
  };
  const keys = (ev) => {
    if (ev.key === 'Escape') {
      close(ev);
      ev.currentTarget.querySelector('summary').focus();
    }
  };
  return html`<details class="menu" onKeyDown=${keys} onFocusOut=${(ev) => !ev.currentTarget.contains(ev.relatedTarget) && ev.relatedTarget && close(ev)}>
    <summary aria-label=${`Actions for ${e.name}`}>⋯</summary>
    <div class="menu-items" role="menu" onClick=${close}>
      ${e.kind === 'file' && html`<a role="menuitem" href=${`/media/${encPath(e.path)}`} download=${e.name}>Download</a>`}
      ${e.kind === 'dir' && html`<a role="menuitem" href=${`/api/library/zip${query({ path: e.path })}`}>Download as zip</a>`}
      <button role="menuitem" onClick=${() => onAct('share', e)}>Share link…</button>
      ${mine && html`<button role="menuitem" onClick=${() => onAct('rename', e)}>Rename…</button>
        <button role="menuitem" onClick=${() => onAct('move', e)}>Move…</button>
        <button role="menuitem" class="danger" onClick=${() => onAct('delete', e)}>Delete…</button>`}
    </div>
  </details>`;
}

export function Library({ route, s }) {
  const path = route.path;
  const p = route.params;
  const q = p.get('q') || '';
  const type = p.get('type') || '';
  const sort = p.get('sort') || '';
  const page = Number(p.get('page') || 1);
  const [view, setView] = useState(localStorage.getItem('library-view') || 'grid');
  const [dialog, setDialog] = useState(null);
  // The field owns what is being typed: a listing that arrives meanwhile re-renders the page
  // and must not put the old query back (on a slow box that wiped half-typed searches).
  const [text, setText] = useFollow(q, `${path}\n${q}`);
  const list = useAsync(
    () => get(`/api/library${query({ path, q, type, sort, page, per_page: PER_PAGE })}`),
    [path, q, type, sort, page],
  );
  if (!canRead(s)) return html`<p>This box needs a login. <a href="#/login">Log in</a>.</p>`;

  const setParam = (k, v) => {
    const n = new URLSearchParams(p);
    if (v) n.set(k, v);
    else n.delete(k);
    if (k !== 'page') n.delete('page');
    go(href('library', path, n.toString() ? Object.fromEntries(n) : null));
  };
  const changeView = (v) => {
    localStorage.setItem('library-view', v);
    setView(v);
  };
  const done = (msg) => {
    setDialog(null);
    if (msg) toast(msg);
    list.reload();
  };
  const fail = (e) => {
    setDialog(null);
    toast(errorText(e), 'error');
  };
  const act = (what, e) => {
    if (what === 'share') return setDialog(html`<${ShareDialog} path=${e.path} onClose=${() => setDialog(null)} />`);
    if (what === 'rename') {
      return setDialog(html`<${Prompt} title=${`Rename ${e.name}`} label="New name" value=${e.name} action="Rename"
        onDone=${(v) => {
          if (!v || v === e.name) return setDialog(null);
          const to = parent(e.path) ? `${parent(e.path)}/${v}` : v;
          post('/api/library/move', { from: e.path, to }).then(() => done(`Renamed to ${v}`), fail);
        }} />`);
    }
    if (what === 'move') {
      return setDialog(html`<${Prompt} title=${`Move ${e.name}`} label="To folder (empty or / for the top)" value=${parent(e.path)} action="Move"
        onDone=${(v) => {
          if (v === null) return setDialog(null);
          const to = `${v.replace(/^\/+|\/+$/g, '')}/`;
          post('/api/library/move', { from: e.path, to: to === '/' ? '/' : to }).then((r) => done(`Moved to ${r.to}`), fail);
        }} />`);
    }
    if (what === 'delete') {
      // Without a trash (S3, or trash_days = 0) a delete is for good: say so.
      const trash = !!(session().info && session().info.trash);
      const what = e.kind === 'dir' ? `the folder "${e.name}" and everything in it` : `"${e.name}"`;
      const text = trash ? `Move ${what} to the trash?` : `Delete ${what} for good? There is no trash here: this cannot be undone.`;
      return setDialog(html`<${Confirm} title="Delete" text=${text} action="Delete" danger
        onAnswer=${(yes) => {
          if (!yes) return setDialog(null);
          del(`/media/${encPath(e.path)}${e.kind === 'dir' ? '?recursive=true' : ''}`).then(() => done(trash ? `"${e.name}" is in the trash` : `"${e.name}" is deleted`), fail);
        }} />`);
    }
    return null;
  };
  const newFolder = () => setDialog(html`<${Prompt} title="New folder" label="Name" action="Create"
    onDone=${(v) => {
      if (!v) return setDialog(null);
      const full = path ? `${path}/${v}` : v;
      post('/api/library/folder', { path: full }).then(() => done(`Folder ${v} created`), fail);
    }} />`);

  const d = list.data;
  const writable = canWrite(s);
  return html`
    <h1 class="offscreen">${path ? `Library: ${basename(path)}` : 'Library'}</h1>
    <div class="bar">
      <${Crumbs} path=${path} />
      <div class="tools">
        ${writable && html`<button onClick=${newFolder}>New folder</button>
          <a class="button" href=${href('upload', path)}>Upload here</a>`}
        <div class="seg" role="group" aria-label="View">
          <button aria-pressed=${view === 'grid'} onClick=${() => changeView('grid')}>Grid</button>
          <button aria-pressed=${view === 'list'} onClick=${() => changeView('list')}>List</button>
        </div>
      </div>
    </div>
    <form class="filters" role="search" onSubmit=${(e) => { e.preventDefault(); setParam('q', text.trim()); }}>
      <label class="offscreen" for="lib-q">Search in this folder</label>
      <input id="lib-q" name="q" type="search" placeholder=${path ? `Search in ${basename(path)}` : 'Search the library'} value=${text}
        onInput=${(e) => setText(e.target.value)} />
      <label>Type <select value=${type} onChange=${(e) => setParam('type', e.target.value)}>
        <option value="">All</option><option value="video">Video</option><option value="audio">Audio</option>
        <option value="image">Images</option><option value="other">Other</option><option value="dir">Folders</option>
      </select></label>
      <label>Sort <select value=${sort} onChange=${(e) => setParam('sort', e.target.value)}>
        <option value="">Name</option><option value="-mtime">Newest</option><option value="mtime">Oldest</option>
        <option value="-size">Largest</option><option value="-duration">Longest</option>
      </select></label>
      <button type="submit">Search</button>
    </form>
    ${list.loading && !d && html`<${Loading} />`}
    <${ErrorBox} error=${list.error} />
    ${d && (d.entries.length === 0
      ? html`<p class="muted">${q || type ? 'Nothing matches.' : 'This folder is empty.'}</p>`
      : view === 'grid'
        ? html`<div class="grid">${d.entries.map((e) => html`<${MediaCard} key=${e.path} e=${e} menu=${writable && html`<${EntryMenu} e=${e} onAct=${act} admin=${isAdmin(s)} />`} />`)}</div>`
        : html`<table class="list"><thead><tr><th scope="col">Name</th><th scope="col">Size</th><th scope="col">Length</th><th scope="col">Changed</th><th scope="col"><span class="offscreen">Actions</span></th></tr></thead>
          <tbody>${d.entries.map((e) => html`<tr key=${e.path}>
            <td><${Icon} name=${e.media} /> <a href=${openHref(e)}>${q || type ? e.path : e.name}</a></td>
            <td class="nowrap">${e.kind === 'file' ? bytes(e.size) : ''}</td><td class="nowrap">${duration(e.duration)}</td>
            <td class="nowrap">${new Date(e.mtime).toLocaleDateString()}</td>
            <td>${writable && html`<${EntryMenu} e=${e} onAct=${act} admin=${isAdmin(s)} />`}</td></tr>`)}</tbody></table>`)}
    ${d && d.pages > 1 && html`<nav class="pager" aria-label="Pages">
      <button disabled=${page <= 1} onClick=${() => setParam('page', String(page - 1))}>Previous</button>
      <span>Page ${d.page} of ${d.pages} (${d.total} ${d.total === 1 ? 'item' : 'items'})</span>
      <button disabled=${page >= d.pages} onClick=${() => setParam('page', String(page + 1))}>Next</button>
    </nav>`}
    ${d && html`<p class="muted"><a href=${`/api/library/zip${query({ path })}`}>Download this folder as zip</a></p>`}
    ${dialog}`;
}
