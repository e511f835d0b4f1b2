import { html, useEffect, useRef, useState } from '../vendor/preact-htm.js';
import { errorText } from '../lib/api.js';
import { Crumbs, useFollow } from '../lib/ui.js';
import { TusUpload, unfinished, forget } from '../lib/tus.js';
import { bytes, duration, href } from '../lib/util.js';

const PARALLEL = 2;

const MESSAGES = {
  401: 'You are not logged in (any more): log in, then add the file again to continue.',
  409: 'A file with this name is there already: rename yours, or delete the other one first.',
  413: 'The file is larger than this server accepts.',
  507: 'The disk is full (or below its reserve).',
};

function explain(e) {
  return MESSAGES[e.status] || errorText(e);
}

/** Reads dropped folders recursively: [{file, dir}] with dir relative to the drop. */
async function dropped(items) {
  const out = [];
  const walk = async (entry, dir) => {
    if (entry.isFile) {
      const file = await new Promise((res, rej) => entry.file(res, rej));
      out.push({ file, dir });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      const sub = dir ? `${dir}/${entry.name}` : entry.name;
      for (;;) {
        const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
        if (!batch.length) break;
        for (const e of batch) await walk(e, sub);
      }
    }
  };
  const entries = [...items].map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
  for (const e of entries) await walk(e, '');
  return out;
}

let nextId = 0;

export function Upload({ route, s }) {
  const [folder, setFolder] = useFollow(route.path);
  const [items, setItems] = useState([]);
  const [over, setOver] = useState(false);
  const [left] = useState(unfinished());
  const uploads = useRef(new Map());
  const fileInput = useRef(null);
  const dirInput = useRef(null);

  const set = (id, patch) => setItems((xs) => xs.map((x) => (x.id === id ? { ...x, ...patch } : x)));

  // A simple scheduler: at most PARALLEL uploads run; the rest wait their turn.
  useEffect(() => {
    const running = items.filter((x) => x.state === 'uploading').length;
    const waiting = items.filter((x) => x.state === 'waiting').slice(0, Math.max(0, PARALLEL - running));
    waiting.forEach((x) => run(x));
  }, [items]);

  if (!s.me) return html`<p>Log in to upload. <a href=${`#/login?next=${encodeURIComponent(location.hash)}`}>Log in</a></p>`;

  function run(x) {
    const started = Date.now();
    let samples = [];
    const up = new TusUpload(x.file, x.folder, {
      onProgress: (sent, total) => {
        const now = Date.now();
        samples.push([now, sent]);
        samples = samples.filter(([t]) => now - t < 5000);
        const [t0, b0] = samples[0];
        const speed = now > t0 ? ((sent - b0) * 1000) / (now - t0) : 0;
        set(x.id, { sent, total, speed, eta: speed > 0 ? (total - sent) / speed : null, note: null });
      },
      onRetry: (ms) => set(x.id, { note: `Connection lost; retrying in ${Math.round(ms / 1000)} s…` }),
    });
    uploads.current.set(x.id, up);
    set(x.id, { state: 'uploading', started });
    up.start().then(
      () => set(x.id, { state: 'done', sent: x.file.size, note: up.resumed ? 'resumed and finished' : null }),
      (e) => set(x.id, e.code === 'cancelled' ? {} : { state: 'error', error: explain(e) }),
    );
  }

  const add = (list) => {
    const base = folder.replace(/^\/+|\/+$/g, '');
    const fresh = list.map(({ file, dir }) => ({
      id: ++nextId,
      file,
      folder: [base, dir].filter(Boolean).join('/'),
      state: 'waiting',
      sent: 0,
      total: file.size,
    }));
    setItems((xs) => [...xs, ...fresh]);
  };
  const onDrop = async (e) => {
    e.preventDefault();
    setOver(false);
    const dt = e.dataTransfer;
    if (dt.items && dt.items.length && dt.items[0].webkitGetAsEntry) add(await dropped(dt.items));
    else add([...dt.files].map((file) => ({ file, dir: '' })));
  };
  const onPick = (e) => {
    add([...e.target.files].map((file) => {
      const rel = file.webkitRelativePath || '';
      return { file, dir: rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '' };
    }));
    e.target.value = '';
  };
  const cancel = async (x) => {
    const up = uploads.current.get(x.id);
    set(x.id, { state: 'cancelled' });
    if (up) await up.cancel();
  };
  const pause = (x) => {
    const up = uploads.current.get(x.id);
    if (up) up.pause();
    set(x.id, { state: 'paused' });
  };
  const retry = (x) => set(x.id, { state: 'waiting', error: null });

  const total = items.filter((x) => x.state !== 'cancelled').reduce((a, x) => a + x.total, 0);
  const sent = items.filter((x) => x.state !== 'cancelled').reduce((a, x) => a + (x.sent || 0), 0);
  const active = items.filter((x) => x.state === 'uploading');
  const speed = active.reduce((a, x) => a + (x.speed || 0), 0);
  const stale = left.filter((l) => !items.some((x) => x.folder === l.folder && x.file.name === l.name));

  return html`
    <h1>Upload</h1>
    <label>To folder <input value=${folder} onInput=${(e) => setFolder(e.target.value)} placeholder="(the top of the library)" /></label>

    <div class=${`drop${over ? ' over' : ''}`} onDragOver=${(e) => { e.preventDefault(); setOver(true); }}
      onDragLeave=${() => setOver(false)} onDrop=${onDrop}>
      <p>Drop files or folders here, or</p>
      <button class="primary" onClick=${() => fileInput.current.click()}>Choose files</button>
      <button onClick=${() => dirInput.current.click()}>Choose a folder</button>
      <input ref=${fileInput} class="offscreen" type="file" multiple onChange=${onPick} aria-hidden="true" tabindex="-1" />
      <input ref=${dirInput} class="offscreen" type="file" webkitdirectory multiple onChange=${onPick} aria-hidden="true" tabindex="-1" />
    </div>
    ${stale.length > 0 && html`<div class="card"><h2>Unfinished uploads</h2>
      <p>These stopped before they were complete. Choose the same files again (into the same folder) and they continue where they stopped.</p>
      <ul class="plain">${stale.map((l) => html`<li>${l.folder ? `${l.folder}/` : ''}${l.name} <span class="muted">(${bytes(l.size)})</span>
        <button class="link" onClick=${() => { forget(l.url); location.reload(); }}>Forget</button></li>`)}</ul></div>`}
    ${items.length > 0 && html`<section aria-label="Uploads">
      <p><progress max=${total || 1} value=${sent} aria-label="All uploads"></progress>
        ${bytes(sent)} of ${bytes(total)}${speed ? ` · ${bytes(speed)}/s` : ''}</p>
      <ul class="uploads">${items.map((x) => html`<li key=${x.id} class=${x.state}>
        <div class="row"><span class="name">${x.folder ? `${x.folder}/` : ''}${x.file.name}</span>
          <span class="muted">${x.state === 'uploading' ? `${bytes(x.speed || 0)}/s${x.eta ? ` · ${duration(x.eta)} left` : ''}` : x.state}</span></div>
        <progress max=${x.total || 1} value=${x.state === 'done' ? x.total || 1 : x.sent} aria-label=${`Upload of ${x.file.name}`}></progress>
        ${x.note && html`<span class="muted">${x.note}</span>`}
        ${x.error && html`<span class="error" role="alert">${x.error}</span>`}
        <span class="actions">
          ${x.state === 'uploading' && html`<button onClick=${() => pause(x)}>Pause</button>`}
          ${(x.state === 'paused' || x.state === 'error') && html`<button onClick=${() => retry(x)}>${x.state === 'paused' ? 'Resume' : 'Retry'}</button>`}
          ${['waiting', 'uploading', 'paused', 'error'].includes(x.state) && html`<button onClick=${() => cancel(x)}>Cancel</button>`}
          ${x.state === 'done' && html`<a href=${href('library', x.folder)}>Show in library</a>`}
        </span></li>`)}</ul></section>`}`;
}
