// A shared folder opened in a browser (`/s/<token>/…`): a read-only listing for someone
// without an account, with the same link's files to open, play or download.
import { html, useState } from '../vendor/preact-htm.js';
import { request } from '../lib/api.js';
import { useAsync, ErrorBox, Loading } from '../lib/ui.js';
import { bytes } from '../lib/util.js';
import { Icon } from '../lib/icons.js';

const PLAYABLE = { webm: 'video', mp4: 'video', m4v: 'video', mov: 'video', ogv: 'video', mp3: 'audio', m4a: 'audio', ogg: 'audio', opus: 'audio', flac: 'audio', wav: 'audio' };

export function Shared() {
  const here = location.pathname;
  const list = useAsync(() => request('GET', here, { headers: { Accept: 'application/json' } }), [here]);
  const [playing, setPlaying] = useState(null);
  if (list.loading) return html`<${Loading} />`;
  if (list.error) return html`<h1>Shared folder</h1><${ErrorBox} error=${list.error} />`;
  const d = list.data;
  const top = here.split('/').slice(0, 3).join('/');
  const crumbs = d.path ? d.path.split('/') : [];
  const kindOf = (e) => (e.kind === 'dir' ? 'dir' : PLAYABLE[e.name.split('.').pop().toLowerCase()] || 'other');
  return html`
    <h1>${d.name}</h1>
    <p class="muted">A folder shared with you (read-only).</p>
    <nav class="crumbs" aria-label="Folder"><a href=${`${top}/`}>${d.name}</a>
      ${crumbs.map((c, i) => html`<span aria-hidden="true"> / </span><a href=${`${top}/${crumbs.slice(0, i + 1).map(encodeURIComponent).join('/')}/`}>${c}</a>`)}</nav>
    ${playing && html`<div class="player"><${playing.kind} controls autoplay src=${playing.url} aria-label=${`Player: ${playing.name}`} /></div>`}
    ${d.entries.length === 0 ? html`<p class="muted">This folder is empty.</p>` : html`<table class="list">
      <thead><tr><th scope="col">Name</th><th scope="col">Size</th><th scope="col"><span class="offscreen">Actions</span></th></tr></thead>
      <tbody>${d.entries.map((e) => {
        const k = kindOf(e);
        return html`<tr key=${e.url}><td><${Icon} name=${k} /> <a href=${e.kind === 'dir' ? `${e.url}/` : e.url}>${e.name}</a></td>
          <td>${e.kind === 'file' ? bytes(e.size) : ''}</td>
          <td>${(k === 'video' || k === 'audio') && html`<button onClick=${() => setPlaying({ kind: k, url: e.url, name: e.name })}>Play</button>`}
            ${e.kind === 'file' && html` <a class="button" href=${e.url} download=${e.name}>Download</a>`}</td></tr>`;
      })}</tbody></table>`}`;
}
