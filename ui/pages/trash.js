import { html, useState } from '../vendor/preact-htm.js';
import { get, post, del, request, errorText } from '../lib/api.js';
import { useAsync, ErrorBox, Loading, Confirm, toast } from '../lib/ui.js';
import { Icon } from '../lib/icons.js';
import { bytes, when, href, parent, basename } from '../lib/util.js';

export function Trash({ s }) {
  const list = useAsync(() => get('/api/trash'), []);
  const [ask, setAsk] = useState(null);
  if (!s.me) return html`<p><a href="#/login">Log in</a> to see the trash.</p>`;
  if (list.loading && !list.data) return html`<${Loading} />`;
  if (list.error) return html`<${ErrorBox} error=${list.error} />`;
  const d = list.data;
  const restore = (x) => post(`/api/trash/${x.id}/restore`).then((r) => { toast(`Restored to ${r.path}`); list.reload(); }, (e) => toast(errorText(e), 'error'));
  const purge = (x) => setAsk(html`<${Confirm} title="Delete for good" text=${`Delete "${x.path}" for good? This cannot be undone.`} action="Delete for good" danger
    onAnswer=${(yes) => { setAsk(null); if (yes) del(`/api/trash/${x.id}`).then(list.reload, (e) => toast(errorText(e), 'error')); }} />`);
  const empty = () => setAsk(html`<${Confirm} title="Empty the trash" text="Delete everything in the trash for good?" action="Empty trash" danger
    onAnswer=${(yes) => { setAsk(null); if (yes) request('DELETE', '/api/trash').then((r) => { toast(`${r.purged} items deleted`); list.reload(); }, (e) => toast(errorText(e), 'error')); }} />`);
  return html`<div class="bar"><h1>Trash</h1>${d.items.length > 0 && html`<button class="danger" onClick=${empty}>Empty trash</button>`}</div>
    ${s.info && s.info.trash === false
      ? html`<p class="muted">This storage has no trash: a delete is for good.${d.items.length > 0 ? ' What is listed below was deleted before the switch to this storage and cannot be restored here.' : ''}</p>`
      : html`<p class="muted">Deleted files stay here ${d.trash_days} days (${bytes(d.total_bytes)} now).</p>`}
    ${d.items.length === 0 ? html`<p class="muted">The trash is empty.</p>`
      : html`<table class="list"><thead><tr><th scope="col">What</th><th scope="col">Size</th><th scope="col">Deleted</th><th scope="col">Gone for good</th><th scope="col"><span class="offscreen">Actions</span></th></tr></thead>
      <tbody>${d.items.map((x) => html`<tr key=${x.id}><td>${x.kind === 'dir' ? html`<${Icon} name="dir" /> ` : ''}${basename(x.path)} <span class="muted">in <a href=${href('library', parent(x.path))}>${parent(x.path) || 'the top folder'}</a></span></td>
        <td class="nowrap">${bytes(x.size)}</td><td>${when(x.deleted_at)} by ${x.deleted_by}</td><td class="nowrap">${new Date(x.expires_at).toLocaleDateString()}</td>
        <td class="row-actions"><button onClick=${() => restore(x)}>Restore</button> <button class="danger" onClick=${() => purge(x)}>Delete for good</button></td></tr>`)}</tbody></table>`}
    ${ask}`;
}
