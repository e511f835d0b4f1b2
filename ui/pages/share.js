import { html, useState } from '../vendor/preact-htm.js';
import { post } from '../lib/api.js';
import { Modal, ErrorBox, toast } from '../lib/ui.js';
import { copyText, basename, shortDate } from '../lib/util.js';

const EXPIRY = [
  [3600, '1 hour'],
  [86400, '1 day'],
  [604800, '7 days'],
  [2592000, '30 days'],
  [31536000, '1 year'],
];

export function ShareDialog({ path, onClose }) {
  const [expires, setExpires] = useState(604800);
  const [link, setLink] = useState(null);
  const [error, setError] = useState(null);
  const make = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      setLink(await post('/api/shares', { path, expires_in: Number(expires) }));
    } catch (err) {
      setError(err);
    }
  };
  const copy = async () => {
    const ok = await copyText(link.url);
    toast(ok ? 'Link copied' : 'Copy the link from the box (Ctrl+C)', ok ? 'info' : 'error');
  };
  return html`<${Modal} title=${`Share ${basename(path)}`} onClose=${onClose}>
    ${link
      ? html`<label>Link (anyone with it can ${path.includes('.') ? 'download this file' : 'open this'} until ${shortDate(link.expires_at)})
          <input class="share-url" readonly value=${link.url} onFocus=${(e) => e.target.select()} /></label>
          <div class="actions"><button onClick=${onClose}>Close</button><button class="primary" onClick=${copy}>Copy link</button></div>`
      : html`<form onSubmit=${make}>
          <label>Link works for <select value=${expires} onChange=${(e) => setExpires(e.target.value)}>
            ${EXPIRY.map(([v, t]) => html`<option value=${v}>${t}</option>`)}</select></label>
          <${ErrorBox} error=${error} />
          <div class="actions"><button type="button" onClick=${onClose}>Cancel</button><button class="primary" type="submit">Create link</button></div>
        </form>`}
  <//>`;
}
