import { html, useState } from '../vendor/preact-htm.js';
import { get, post, patch, del, errorText } from '../lib/api.js';
import { isAdmin } from '../lib/store.js';
import { useAsync, ErrorBox, Loading, Prompt, Confirm, toast } from '../lib/ui.js';
import { when, bytes, copyText, href, shortDate } from '../lib/util.js';
import { PeersTab } from './peers.js';

function Users({ s }) {
  const list = useAsync(() => get('/api/users'), []);
  const [dialog, setDialog] = useState(null);
  const [form, setForm] = useState({ name: '', password: '', role: 'member' });
  const [error, setError] = useState(null);
  // Reload either way: a refused role change must show the role that stayed.
  const act = (p) => p.then(() => { setDialog(null); list.reload(); }, (e) => { setDialog(null); toast(errorText(e), 'error'); list.reload(); });
  const add = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      await post('/api/users', form);
      toast(`User ${form.name} added`);
      setForm({ name: '', password: '', role: 'member' });
      list.reload();
    } catch (err) {
      setError(err);
    }
  };
  if (list.loading && !list.data) return html`<${Loading} />`;
  if (list.error) return html`<${ErrorBox} error=${list.error} />`;
  return html`<section aria-label="Users"><h2>Users</h2>
    <table class="list"><thead><tr><th scope="col">Name</th><th scope="col">Role</th><th scope="col">Since</th><th scope="col"><span class="offscreen">Actions</span></th></tr></thead>
    <tbody>${list.data.users.map((u) => html`<tr key=${u.name}><td>${u.name}${u.name === s.me.name ? ' (you)' : ''}</td>
      <td><label class="offscreen" for=${`role-${u.name}`}>Role of ${u.name}</label>
        <select id=${`role-${u.name}`} value=${u.role} onChange=${(e) => act(patch(`/api/users/${encodeURIComponent(u.name)}`, { role: e.target.value }).then(() => toast(`${u.name} is ${e.target.value} now`)))}>
          <option value="member">member</option><option value="admin">admin</option></select></td>
      <td>${when(u.created_at)}</td>
      <td><button onClick=${() => setDialog(html`<${Prompt} title=${`New password for ${u.name}`} label="Password (at least 8 characters)" type="password" action="Set password"
          onDone=${(v) => (v ? act(patch(`/api/users/${encodeURIComponent(u.name)}`, { password: v }).then(() => toast(`Password of ${u.name} changed; their sessions ended`))) : setDialog(null))} />`)}>Reset password</button>
        <button class="danger" onClick=${() => setDialog(html`<${Confirm} title="Delete user" text=${`Delete ${u.name}? Their sessions, tokens and share links end. Their files and notes stay.`} action="Delete" danger
          onAnswer=${(yes) => (yes ? act(del(`/api/users/${encodeURIComponent(u.name)}`)) : setDialog(null))} />`)}>Delete</button></td></tr>`)}</tbody></table>
    <form class="inline-form" onSubmit=${add}><h3>Add a user</h3>
      <label>Name<input value=${form.name} onInput=${(e) => { setError(null); setForm({ ...form, name: e.target.value }); }} required autocomplete="off"
        pattern="[A-Za-z0-9._-]{1,64}" title="1 to 64 letters (A–Z, a–z), digits, dots, dashes or underscores" aria-describedby="name-rule" /></label>
      <label>Password<input type="password" value=${form.password} minlength="8" onInput=${(e) => { setError(null); setForm({ ...form, password: e.target.value }); }} required autocomplete="new-password" /></label>
      <label>Role<select value=${form.role} onChange=${(e) => setForm({ ...form, role: e.target.value })}><option value="member">member</option><option value="admin">admin</option></select></label>
      <button class="primary" type="submit">Add</button>
      <p id="name-rule" class="muted hint">Names: letters A–Z, digits, <code>.</code> <code>_</code> <code>-</code> (no spaces); passwords at least 8 characters.</p>
      <${ErrorBox} error=${error} />
    </form>${dialog}</section>`;
}

function Tokens() {
  const list = useAsync(() => get('/api/tokens'), []);
  const [label, setLabel] = useState('');
  const [made, setMade] = useState(null);
  const create = async (e) => {
    e.preventDefault();
    try {
      setMade(await post('/api/tokens', { label }));
      setLabel('');
      list.reload();
    } catch (err) {
      toast(errorText(err), 'error');
    }
  };
  const revoke = (id) => del(`/api/tokens/${id}`).then(list.reload, (e) => toast(errorText(e), 'error'));
  return html`<section aria-label="API tokens"><h2>API tokens</h2>
    <p class="muted">For scripts and apps: <code>Authorization: Bearer …</code>.</p>
    ${made && html`<div class="card"><p>Copy the token now: it is shown only once.</p>
      <input readonly class="share-url" value=${made.token} onFocus=${(e) => e.target.select()} />
      <button onClick=${() => copyText(made.token).then((ok) => toast(ok ? 'Copied' : 'Select it and press Ctrl+C'))}>Copy</button></div>`}
    ${list.error ? html`<${ErrorBox} error=${list.error} />` : list.data && list.data.tokens.length === 0 ? html`<p class="muted">No API tokens yet.</p>` : list.data && html`<table class="list"><thead><tr><th scope="col">Label</th><th scope="col">User</th><th scope="col">Created</th><th scope="col">Expires</th><th scope="col"><span class="offscreen">Actions</span></th></tr></thead>
      <tbody>${list.data.tokens.map((t) => html`<tr key=${t.id}><td>${t.label}</td><td>${t.user}</td><td>${when(t.created_at)}</td><td>${t.expires_at ? when(t.expires_at) : 'never'}</td>
        <td><button class="danger" onClick=${() => revoke(t.id)}>Revoke</button></td></tr>`)}</tbody></table>`}
    <form class="inline-form" onSubmit=${create}><label>Label<input value=${label} onInput=${(e) => setLabel(e.target.value)} required /></label>
      <button class="primary" type="submit">Create token</button></form></section>`;
}

function Shares() {
  const list = useAsync(() => get('/api/shares'), []);
  const revoke = (id) => del(`/api/shares/${id}`).then(list.reload, (e) => toast(errorText(e), 'error'));
  if (list.loading && !list.data) return html`<${Loading} />`;
  if (list.error) return html`<${ErrorBox} error=${list.error} />`;
  const live = list.data.shares;
  return html`<section aria-label="Share links"><h2>Share links</h2>
    ${live.length === 0 ? html`<p class="muted">No share links. Make one from the library (⋯ → Share link).</p>`
      : html`<table class="list"><thead><tr><th scope="col">What</th><th scope="col">By</th><th scope="col">Expires</th><th scope="col"><span class="offscreen">Actions</span></th></tr></thead>
      <tbody>${live.map((x) => html`<tr key=${x.id} class=${x.revoked ? 'muted' : ''}><td><a href=${href('library', x.path)}>${x.path}</a></td><td>${x.user}</td>
        <td>${x.revoked ? 'revoked' : shortDate(x.expires_at)}</td>
        <td>${!x.revoked && html`<button onClick=${() => copyText(x.url).then((ok) => toast(ok ? 'Link copied' : x.url))}>Copy</button>
          <button class="danger" onClick=${() => revoke(x.id)}>Revoke</button>`}</td></tr>`)}</tbody></table>`}</section>`;
}

function StorageState() {
  const st = useAsync(() => get('/api/storage'), []);
  const status = useAsync(() => get('/api/library/status'), []);
  const rescan = () => post('/api/library/rescan').then(() => { toast('Scan started'); status.reload(); }, (e) => toast(errorText(e), 'error'));
  if (st.error) return html`<${ErrorBox} error=${st.error} />`;
  if (!st.data) return html`<${Loading} />`;
  const d = st.data;
  return html`<section aria-label="Storage"><h2>Storage</h2>
    <dl class="facts"><dt>Backend</dt><dd>${d.backend}</dd>${d.media_root && html`<dt>Media folder</dt><dd><code>${d.media_root}</code></dd>`}
      <dt>State</dt><dd>${d.healthy ? 'healthy' : html`<span class="bad">${d.error}</span>`}</dd>
      ${d.free_bytes !== null && html`<dt>Free</dt><dd>${bytes(d.free_bytes)} of ${bytes(d.total_bytes)}</dd>`}
      ${d.trash && html`<dt>Trash</dt><dd>${d.trash.entries} items, ${bytes(d.trash.bytes)}</dd>`}
      ${status.data && html`<dt>Library</dt><dd>${status.data.indexed} indexed${status.data.scanning ? ', scanning now' : ''}${status.data.message ? ` — ${status.data.message}` : ''}</dd>`}</dl>
    <button onClick=${rescan}>Scan the library now</button></section>`;
}

function Config() {
  const c = useAsync(() => get('/api/config'), []);
  if (c.error) return html`<${ErrorBox} error=${c.error} />`;
  if (!c.data) return html`<${Loading} />`;
  return html`<section aria-label="Configuration"><h2>Configuration in effect</h2>
    <p class="muted">Read-only: edit the config file (or <code>STREAMHUB_*</code> variables) and restart the service. Secrets are hidden${c.data.redacted && c.data.redacted.length ? ` (${c.data.redacted.join(', ')})` : ''}.</p>
    ${Object.entries(c.data.config).map(([sec, vals]) => html`<h3>[${sec}]</h3><dl class="facts">${
      Object.entries(vals || {}).map(([k, v]) => html`<dt>${k}</dt><dd><code>${JSON.stringify(v)}</code></dd>`)}</dl>`)}
  </section>`;
}

function Peers({ s }) {
  if (!(s.info && s.info.lan_peers)) {
    return html`<section aria-label="Peers"><h2>Peers</h2><p class="muted">This box has no LAN peers: mDNS discovery is off and
      <code>sync.peers</code> is empty (see the configuration).</p></section>`;
  }
  return html`<${PeersTab} />`;
}

const TABS = { users: ['Users', Users], tokens: ['API tokens', Tokens], shares: ['Share links', Shares], storage: ['Storage', StorageState], peers: ['Peers', Peers], config: ['Configuration', Config] };

export function Settings({ route, s }) {
  const tab = TABS[route.path] ? route.path : 'users';
  if (!s.me) return html`<p><a href="#/login">Log in</a> to change settings.</p>`;
  if (!isAdmin(s)) {
    return html`<h1>Settings</h1><${Tokens} />`;
  }
  const Tab = TABS[tab][1];
  return html`<h1>Settings</h1>
    <nav class="seg tabs" aria-label="Settings">${Object.entries(TABS).map(([k, [label]]) => html`<a href=${href('settings', k)} aria-current=${k === tab ? 'page' : null}>${label}</a>`)}</nav>
    <${Tab} s=${s} />`;
}
