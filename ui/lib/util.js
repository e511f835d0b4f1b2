// Formatting and small browser helpers shared by the pages.

export function bytes(n) {
  if (n === null || n === undefined) return '';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function duration(secs) {
  if (secs === null || secs === undefined || !isFinite(secs)) return '';
  const s = Math.floor(secs % 60);
  const m = Math.floor((secs / 60) % 60);
  const h = Math.floor(secs / 3600);
  const two = (x) => String(x).padStart(2, '0');
  return h ? `${h}:${two(m)}:${two(s)}` : `${m}:${two(s)}`;
}

/** A date and time without seconds, in the reader's own format. */
export function shortDate(iso) {
  return iso ? new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }) : '';
}

/** A long name shortened in the middle, so the end (its extension) stays visible. */
export function shortName(name, max = 26) {
  if (name.length <= max) return name;
  const tail = Math.min(10, Math.floor(max / 3));
  return `${name.slice(0, max - tail - 1)}…${name.slice(-tail)}`;
}

export function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  const diff = (Date.now() - d.getTime()) / 1000;
  if (diff < 60 && diff > -60) return 'just now';
  if (diff > 0 && diff < 3600) return `${Math.floor(diff / 60)} min ago`;
  if (diff > 0 && diff < 86400) return `${Math.floor(diff / 3600)} h ago`;
  return d.toLocaleString();
}

/** The parent folder of a media path ('' is the root). */
export const parent = (p) => (p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '');
export const basename = (p) => p.slice(p.lastIndexOf('/') + 1);

/** The page's address: `#/<page>/<rest…>` with each name of rest percent-encoded. */
export function href(page, path = '', params = null) {
  const rest = path ? `/${path.split('/').map(encodeURIComponent).join('/')}` : '';
  const q = params ? `?${new URLSearchParams(params)}` : '';
  return `#/${page}${rest}${q}`;
}

export function parseRoute(hash) {
  const h = hash.replace(/^#\/?/, '');
  const [pathPart, q = ''] = h.split('?');
  const [page = '', ...rest] = pathPart.split('/');
  let path = '';
  try {
    path = rest.filter((x) => x !== '').map(decodeURIComponent).join('/');
  } catch (e) {
    path = '';
  }
  return { page, path, params: new URLSearchParams(q) };
}

export function go(to) {
  if (location.hash !== to) location.hash = to;
}

/**
 * Copies text. `navigator.clipboard` exists only in secure contexts (not on
 * http://pi:8080), so fall back to a selected textarea and execCommand.
 */
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch (e) {
      /* fall through */
    }
  }
  const ta = document.createElement('textarea');
  ta.value = text;
  ta.setAttribute('readonly', '');
  ta.className = 'offscreen';
  document.body.appendChild(ta);
  ta.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch (e) {
    ok = false;
  }
  ta.remove();
  return ok;
}

export function debounce(fn, ms) {
  let t = null;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}

/** Saves a text as a file the user downloads (used for .m3u playlists). */
export function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** The URL of one of the UI's own files (they live in a versioned folder). */
export const asset = (name) => new URL(`../${name}`, import.meta.url).pathname;
