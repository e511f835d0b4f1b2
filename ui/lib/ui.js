// Shared pieces of the pages: notices, dialogs, loading state, breadcrumbs.
import { html, useEffect, useRef, useState, useCallback } from '../vendor/preact-htm.js';
import { errorText } from './api.js';
import { href } from './util.js';

const toastSubs = new Set();
let toastId = 0;

/** A short notice at the bottom of the screen, read out by screen readers. */
export function toast(text, kind = 'info') {
  const t = { id: ++toastId, text, kind };
  toastSubs.forEach((fn) => fn(t));
}

export function Toasts() {
  const [items, setItems] = useState([]);
  useEffect(() => {
    const add = (t) => {
      setItems((xs) => [...xs, t]);
      setTimeout(() => setItems((xs) => xs.filter((x) => x.id !== t.id)), t.kind === 'error' ? 8000 : 4000);
    };
    toastSubs.add(add);
    return () => toastSubs.delete(add);
  }, []);
  return html`<div class="toasts" role="status" aria-live="polite">
    ${items.map((t) => html`<div key=${t.id} class=${`toast ${t.kind}`}>${t.text}</div>`)}
  </div>`;
}

/** Runs `fn` now and whenever `deps` change; `reload` runs it again. */
export function useAsync(fn, deps) {
  const [st, set] = useState({ data: null, error: null, loading: true });
  const seq = useRef(0);
  const run = useCallback(() => {
    const n = ++seq.current;
    set((s) => ({ ...s, loading: true }));
    Promise.resolve()
      .then(fn)
      .then(
        (data) => n === seq.current && set({ data, error: null, loading: false }),
        (error) => n === seq.current && set({ data: null, error, loading: false }),
      );
  }, deps);
  useEffect(run, [run]);
  return { ...st, reload: run };
}

/**
 * A field's own state that follows `value` when `value` changes (back/forward, a link), but
 * never on mount: effects run after paint, so syncing on mount could wipe what someone typed
 * in the first frames (a headless browser types that fast; so does a paste on a slow phone).
 */
export function useFollow(value, key = value) {
  const [v, set] = useState(value);
  const seen = useRef(key);
  useEffect(() => {
    if (seen.current !== key) {
      seen.current = key;
      set(value);
    }
  }, [key]);
  return [v, set];
}

export function ErrorBox({ error }) {
  if (!error) return null;
  return html`<div class="error" role="alert">${errorText(error)}</div>`;
}

export function Loading({ what = 'Loading' }) {
  return html`<p class="muted" aria-busy="true">${what}…</p>`;
}

/** A modal dialog: Escape or the close button ends it; focus starts inside. */
export function Modal({ title, onClose, children }) {
  const ref = useRef(null);
  useEffect(() => {
    const el = ref.current;
    const first = el && el.querySelector('input, textarea, select, button.primary, button');
    if (first) first.focus();
    const before = document.activeElement;
    const key = (e) => {
      if (e.key === 'Escape') onClose();
      if (e.key !== 'Tab' || !el) return;
      // Keep Tab inside the dialog while it is open.
      const all = Array.from(el.querySelectorAll('a[href], button, input, select, textarea, summary'))
        .filter((x) => !x.disabled && x.tabIndex >= 0);
      if (!all.length) return;
      const [first1, last] = [all[0], all[all.length - 1]];
      if (e.shiftKey && document.activeElement === first1) {
        e.preventDefault();
        last.focus();
      } else if (!e.shiftKey && (document.activeElement === last || !el.contains(document.activeElement))) {
        e.preventDefault();
        first1.focus();
      }
    };
    document.addEventListener('keydown', key);
    return () => {
      document.removeEventListener('keydown', key);
      // Back to where the user was (the button that opened it), if it is still there.
      if (before && document.contains(before)) before.focus();
    };
  }, []);
  return html`<div class="backdrop" onClick=${(e) => e.target === e.currentTarget && onClose()}>
    <div class="modal" role="dialog" aria-modal="true" aria-label=${title} ref=${ref}>
      <header><h2>${title}</h2>
        <button class="icon" aria-label="Close" onClick=${onClose}>✕</button></header>
      ${children}
    </div>
  </div>`;
}

/** Asks a question in a modal; resolves when the user answers. */
export function Confirm({ title, text, action = 'OK', danger, onAnswer }) {
  return html`<${Modal} title=${title} onClose=${() => onAnswer(false)}>
    <p>${text}</p>
    <div class="actions">
      <button onClick=${() => onAnswer(false)}>Cancel</button>
      <button class=${danger ? 'danger primary' : 'primary'} onClick=${() => onAnswer(true)}>${action}</button>
    </div>
  <//>`;
}

/** A one-field form in a modal (new folder, rename, reset password). */
export function Prompt({ title, label, value = '', type = 'text', action = 'OK', onDone }) {
  const [v, setV] = useState(value);
  const submit = (e) => {
    e.preventDefault();
    onDone(v);
  };
  return html`<${Modal} title=${title} onClose=${() => onDone(null)}>
    <form onSubmit=${submit}>
      <label>${label}<input type=${type} value=${v} onInput=${(e) => setV(e.target.value)} required /></label>
      <div class="actions">
        <button type="button" onClick=${() => onDone(null)}>Cancel</button>
        <button class="primary" type="submit">${action}</button>
      </div>
    </form>
  <//>`;
}

export function Crumbs({ path, page = 'library' }) {
  const parts = path ? path.split('/') : [];
  return html`<nav class="crumbs" aria-label="Folder">
    <a href=${href(page)}>Media</a>
    ${parts.map((name, i) => {
      const p = parts.slice(0, i + 1).join('/');
      const last = i === parts.length - 1;
      return html`<span aria-hidden="true"> / </span>${last
        ? html`<span aria-current="page">${name}</span>`
        : html`<a href=${href(page, p)}>${name}</a>`}`;
    })}
  </nav>`;
}
