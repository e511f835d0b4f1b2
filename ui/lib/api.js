// The one way the pages talk to the server: the documented JSON API, with the session
// cookie and its CSRF token. Errors become ApiError with the server's code and message.

let csrf = null;
const listeners = new Set();

export function setCsrf(token) {
  csrf = token || null;
}

/** Called with the error whenever the server says the session is gone (401). */
export function onUnauthorized(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

const FALLBACK = {
  0: 'The server cannot be reached. Check the connection and try again.',
  401: 'You need to log in for this.',
  403: 'You are not allowed to do this.',
  404: 'Not found.',
  409: 'Something is in the way (it exists already, or changed meanwhile).',
  413: 'That is too large for this server.',
  429: 'Too many attempts; wait a little and try again.',
  503: 'The storage is not answering right now.',
  507: 'The disk is full.',
};

export function errorText(e) {
  if (e instanceof ApiError) return e.message || FALLBACK[e.status] || `Error ${e.status}`;
  return FALLBACK[0];
}

/** Encodes a media path for a URL path (`/media/…`): each name on its own. */
export function encPath(path) {
  return path.split('/').map(encodeURIComponent).join('/');
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

export async function request(method, url, { body, headers = {}, raw = false, keepalive = false } = {}) {
  const h = { ...headers };
  let payload = body;
  if (body !== undefined && !(body instanceof Blob) && typeof body !== 'string') {
    h['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  if (!['GET', 'HEAD'].includes(method) && csrf) h['X-CSRF-Token'] = csrf;
  let resp;
  try {
    resp = await fetch(url, { method, headers: h, body: payload, credentials: 'same-origin', keepalive });
  } catch (e) {
    throw new ApiError(0, 'network', FALLBACK[0], null);
  }
  let data = null;
  if ((resp.headers.get('content-type') || '').includes('json')) {
    data = await resp.json().catch(() => null);
  }
  if (!resp.ok && resp.status !== 304) {
    const err = new ApiError(
      resp.status,
      (data && data.error) || `http_${resp.status}`,
      (data && data.message) || FALLBACK[resp.status] || resp.statusText,
      data,
    );
    if (resp.status === 401 && url !== '/api/login' && url !== '/api/me') {
      listeners.forEach((fn) => fn(err));
    }
    throw err;
  }
  return raw ? { data, resp } : data;
}

export const csrfToken = () => csrf;
export const get = (url) => request('GET', url);
export const post = (url, body) => request('POST', url, { body });
export const put = (url, body, headers) => request('PUT', url, { body, headers });
export const patch = (url, body) => request('PATCH', url, { body });
export const del = (url, headers) => request('DELETE', url, { headers });
