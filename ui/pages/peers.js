// LAN peers and their sync state (GET /api/peers): the Home card everyone logged in sees,
// and the admins' Settings → Peers tab with "Sync now". One module so both read the same.
import { html, useEffect, useRef, useState } from '../vendor/preact-htm.js';
import { get, post } from '../lib/api.js';
import { useAsync, ErrorBox, Loading, toast } from '../lib/ui.js';
import { shortDate } from '../lib/util.js';

// The table changes on its own (rounds every sync.interval_secs, nudges), so it is asked
// again now and then while the page is in front; relative times are redrawn in between.
const REFETCH_MS = 15000;
const TICK_MS = 5000;
// After "Sync now" the server answers at once and the round runs on; the row is asked for
// a few times so its new last sync shows without a reload.
const AFTER_SYNC_MS = [400, 1000, 2000, 3200];

/** "5 s ago", "3 min ago", … from an RFC 3339 time (the box's clock, not the browser's). */
export function ago(iso, now = Date.now()) {
  const s = Math.round((now - Date.parse(iso)) / 1000);
  if (!isFinite(s)) return '';
  // A browser clock a little behind the box's would say "in 3 s": it is just now either way.
  if (s < 2 && s > -60) return 'just now';
  if (s < 0) return shortDate(iso);
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  if (s < 7 * 86400) return `${Math.floor(s / 86400)} d ago`;
  return shortDate(iso);
}

function usePeers() {
  const st = useAsync(() => get('/api/peers'), []);
  const [, setTick] = useState(0);
  useEffect(() => {
    let n = 0;
    const t = setInterval(() => {
      if (document.hidden) return;
      n += 1;
      if ((n * TICK_MS) % REFETCH_MS === 0) st.reload();
      else setTick(n);
    }, TICK_MS);
    return () => clearInterval(t);
  }, [st.reload]);
  return st;
}

/** A dot that differs in shape as well as colour, with its meaning in text for readers. */
function Online({ on, label = false }) {
  const word = on ? 'online' : 'offline';
  return html`<span class=${`dot ${on ? 'ok' : 'muted'}`} role="img" aria-label=${word} title=${word}>${on ? '●' : '○'}</span>${label ? html` <span class=${on ? '' : 'muted'}>${word}</span>` : ''}`;
}

function Synced({ iso, prefix = '' }) {
  if (!iso) return html`<span class="muted">never synced</span>`;
  return html`<span>${prefix}<time datetime=${iso} title=${shortDate(iso)}>${ago(iso)}</time></span>`;
}

/** Home: every logged-in user; members get names, state and last sync only. */
export function PeersCard() {
  const st = usePeers();
  let body;
  if (st.loading && !st.data) body = html`<${Loading} />`;
  else if (st.error) body = html`<${ErrorBox} error=${st.error} />`;
  else {
    const peers = st.data.peers || [];
    body = peers.length
      ? html`<ul class="plain peer-list">${peers.map((p, i) => html`<li key=${`${i}:${p.name}`}>
          <${Online} on=${p.online} /> <span class="peer-name">${p.name}</span>
          <span class="muted"> · <${Synced} iso=${p.last_sync} prefix="synced " /></span></li>`)}</ul>`
      : html`<p class="muted">No other streamhub boxes found on this network.</p>`;
  }
  return html`<div class="card"><h2>Peers</h2>${body}</div>`;
}

const NO_ID = 'Not reached yet: this box learns the peer’s node id when it first connects to it';

function PeerRow({ x, n, onSync, busy }) {
  // A static peer is named by its configured address: not said twice.
  const addrs = (x.addresses || []).filter((a) => a !== x.name);
  return html`<tr>
    <td data-label="Box"><span class="peer-name">${x.name}</span>
      ${addrs.length > 0 && html`<br /><span class="muted addr">${addrs.join(', ')}</span>`}
      ${x.id && html`<br /><code class="muted" title=${x.id}>${x.id.slice(0, 8)}</code>`}
      ${x.last_error && html`<p class="peer-error" role="alert"><strong>Last error: </strong>${x.last_error}</p>`}</td>
    <td data-label="Found">${x.found_via === 'static' ? 'configured' : x.found_via === 'mdns' ? 'mDNS' : x.found_via || ''}
      ${x.last_seen && html`<br /><span class="muted">seen <${Synced} iso=${x.last_seen} /></span>`}</td>
    <td data-label="State"><${Online} on=${x.online} label /></td>
    <td data-label="Last sync"><${Synced} iso=${x.last_sync} /></td>
    <td data-label="Behind">${x.changes_behind === null || x.changes_behind === undefined ? html`<span class="muted">–</span>`
      : x.changes_behind === 0 ? 'up to date' : `${x.changes_behind} changes`}</td>
    <td class="row-actions">${x.id
      ? html`<button onClick=${() => onSync(x)} disabled=${busy}>Sync now</button>`
      : html`<button disabled title=${NO_ID} aria-describedby=${`noid-${n}`}>Sync now</button>
        <span id=${`noid-${n}`} class="muted hint">not reached yet</span>`}</td></tr>`;
}

/** Settings → Peers (admins): this node, then every peer with its sync state. */
export function PeersTab() {
  const p = usePeers();
  const [busy, setBusy] = useState(null);
  const [failed, setFailed] = useState(null);
  const timers = useRef([]);
  useEffect(() => () => timers.current.forEach(clearTimeout), []);
  if (p.error) return html`<section aria-label="Peers"><h2>Peers</h2><${ErrorBox} error=${p.error} /></section>`;
  if (!p.data) return html`<${Loading} />`;
  const sync = async (x) => {
    setBusy(x.id);
    setFailed(null);
    try {
      await post(`/api/peers/${encodeURIComponent(x.id)}/sync`);
      toast(`Sync with ${x.name} started`);
      timers.current.forEach(clearTimeout);
      timers.current = AFTER_SYNC_MS.map((ms) => setTimeout(p.reload, ms));
    } catch (e) {
      // A 409 (this node is in no cluster) is a setting to fix, not a passing hiccup: it stays.
      setFailed(e);
      p.reload();
    } finally {
      setBusy(null);
    }
  };
  const { node, peers = [] } = p.data;
  return html`<section aria-label="Peers"><h2>Peers</h2>
    ${node && html`<p>This box: <strong class="peer-name">${node.name}</strong> <code class="muted" title=${node.id}>${node.id.slice(0, 8)}</code></p>`}
    <${ErrorBox} error=${failed} />
    ${peers.length === 0 ? html`<p class="muted">No other streamhub boxes found.</p>` : html`<table class="list peers">
      <thead><tr><th scope="col">Box</th><th scope="col">Found</th><th scope="col">State</th><th scope="col">Last sync</th><th scope="col">Behind</th><th scope="col"><span class="offscreen">Actions</span></th></tr></thead>
      <tbody>${peers.map((x, i) => html`<${PeerRow} key=${x.id || `${i}:${x.name}`} x=${x} n=${i} onSync=${sync} busy=${busy === x.id} />`)}</tbody></table>`}
  </section>`;
}
