// A small tus 1.0 client (creation, HEAD to resume, PATCH with progress, termination).
// Each upload's URL is kept in localStorage under a fingerprint of the file and its target,
// so after a dropped connection or a page reload the same file resumes where the server has
// it (the server acknowledges only bytes it made durable).
import { csrfToken, ApiError } from './api.js';

const ENDPOINT = '/api/tus/';
const CHUNK = 32 * 1024 * 1024;
const RETRIES = [1000, 2000, 4000, 8000, 15000, 30000];
const STORE = 'streamhub-tus';

function b64(s) {
  const bytes = new TextEncoder().encode(s);
  let bin = '';
  bytes.forEach((b) => { bin += String.fromCharCode(b); });
  return btoa(bin);
}

function stored() {
  try {
    return JSON.parse(localStorage.getItem(STORE) || '{}');
  } catch (e) {
    return {};
  }
}

function remember(fp, entry) {
  const all = stored();
  if (entry) all[fp] = entry;
  else delete all[fp];
  localStorage.setItem(STORE, JSON.stringify(all));
}

/** Uploads left unfinished earlier (another page load): [{name, size, folder, url, at}]. */
export function unfinished() {
  return Object.values(stored());
}

export function forget(url) {
  const all = stored();
  for (const [k, v] of Object.entries(all)) if (v.url === url) delete all[k];
  localStorage.setItem(STORE, JSON.stringify(all));
}

function headers(extra = {}) {
  const h = { 'Tus-Resumable': '1.0.0', ...extra };
  const t = csrfToken();
  if (t) h['X-CSRF-Token'] = t;
  return h;
}

async function errorOf(resp) {
  let body = null;
  try {
    body = await resp.json();
  } catch (e) {
    body = null;
  }
  return new ApiError(resp.status, (body && body.error) || `http_${resp.status}`, (body && body.message) || resp.statusText, body);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class TusUpload {
  /** `folder`: where the file goes ('' = the top); `onProgress(sent, total)`; `onRetry(ms)`. */
  constructor(file, folder, { onProgress = () => {}, onRetry = () => {} } = {}) {
    this.file = file;
    this.folder = folder;
    this.onProgress = onProgress;
    this.onRetry = onRetry;
    this.fp = `${folder}\n${file.name}\n${file.size}\n${file.lastModified}`;
    this.url = null;
    this.offset = 0;
    this.xhr = null;
    this.stopped = false;
    this.resumed = false;
  }

  async start() {
    this.stopped = false;
    const old = stored()[this.fp];
    if (old && !this.url) this.url = old.url;
    if (this.url) {
      const r = await fetch(this.url, { method: 'HEAD', headers: headers(), credentials: 'same-origin' }).catch(() => null);
      if (r && r.ok) {
        this.offset = Number(r.headers.get('Upload-Offset'));
        this.resumed = this.offset > 0;
      } else if (r && [404, 410].includes(r.status)) {
        remember(this.fp, null);
        this.url = null;
        this.offset = 0;
      } else if (!r) {
        throw new ApiError(0, 'network', 'The server cannot be reached.', null);
      } else {
        throw await errorOf(r);
      }
    }
    if (!this.url) await this.create();
    this.onProgress(this.offset, this.file.size);
    let attempt = 0;
    while (this.offset < this.file.size) {
      if (this.stopped) throw new ApiError(0, 'cancelled', 'Stopped', null);
      try {
        await this.patch();
        attempt = 0;
      } catch (e) {
        if (this.stopped) throw e;
        // A dropped connection or a busy upload: wait, ask the server where it is, go on.
        if (!(e.status === 0 || e.status === 423 || e.status >= 500) || e.status === 507 || attempt >= RETRIES.length) throw e;
        this.onRetry(RETRIES[attempt]);
        await sleep(RETRIES[attempt]);
        attempt += 1;
        const r = await fetch(this.url, { method: 'HEAD', headers: headers(), credentials: 'same-origin' }).catch(() => null);
        if (r && r.ok) this.offset = Number(r.headers.get('Upload-Offset'));
        else if (r && [404, 410].includes(r.status)) {
          remember(this.fp, null);
          throw await errorOf(r);
        }
      }
    }
    remember(this.fp, null);
  }

  async create() {
    const meta = [`filename ${b64(this.file.name)}`];
    if (this.folder) meta.push(`folder ${b64(this.folder)}`);
    const r = await fetch(ENDPOINT, {
      method: 'POST',
      credentials: 'same-origin',
      headers: headers({ 'Upload-Length': String(this.file.size), 'Upload-Metadata': meta.join(',') }),
    }).catch(() => null);
    if (!r) throw new ApiError(0, 'network', 'The server cannot be reached.', null);
    if (r.status !== 201) throw await errorOf(r);
    this.url = new URL(r.headers.get('Location'), location.href).pathname;
    this.offset = 0;
    remember(this.fp, { url: this.url, name: this.file.name, size: this.file.size, folder: this.folder, at: Date.now() });
  }

  patch() {
    return new Promise((resolve, reject) => {
      const end = Math.min(this.file.size, this.offset + CHUNK);
      const xhr = new XMLHttpRequest();
      this.xhr = xhr;
      xhr.open('PATCH', this.url);
      const h = headers({ 'Upload-Offset': String(this.offset), 'Content-Type': 'application/offset+octet-stream' });
      Object.entries(h).forEach(([k, v]) => xhr.setRequestHeader(k, v));
      const base = this.offset;
      xhr.upload.onprogress = (ev) => this.onProgress(base + ev.loaded, this.file.size);
      xhr.onload = () => {
        if (xhr.status === 204) {
          this.offset = Number(xhr.getResponseHeader('Upload-Offset'));
          resolve();
        } else {
          let body = null;
          try {
            body = JSON.parse(xhr.responseText);
          } catch (e) {
            body = null;
          }
          reject(new ApiError(xhr.status, (body && body.error) || `http_${xhr.status}`, (body && body.message) || xhr.statusText, body));
        }
      };
      xhr.onerror = () => reject(new ApiError(0, 'network', 'The connection dropped.', null));
      xhr.onabort = () => reject(new ApiError(0, 'cancelled', 'Stopped', null));
      xhr.send(this.file.slice(this.offset, end));
    });
  }

  /** Stops sending; the upload can be started again (it resumes). */
  pause() {
    this.stopped = true;
    if (this.xhr) this.xhr.abort();
  }

  /** Stops and deletes what the server has of it. */
  async cancel() {
    this.pause();
    if (this.url) {
      await fetch(this.url, { method: 'DELETE', headers: headers(), credentials: 'same-origin' }).catch(() => null);
      remember(this.fp, null);
      this.url = null;
    }
  }
}
