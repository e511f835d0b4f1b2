// Small line icons (system fonts on a Pi or a TV often have no emoji).
import { html } from '../vendor/preact-htm.js';

const PATHS = {
  dir: 'M3 6a2 2 0 0 1 2-2h4l2 2h8a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2z',
  video: 'M4 5h12a2 2 0 0 1 2 2v2l4-2v10l-4-2v2a2 2 0 0 1-2 2H4a2 2 0 0 1-2-2V7a2 2 0 0 1 2-2z',
  audio: 'M9 18V5l12-2v13 M9 18a3 3 0 1 1-6 0 3 3 0 0 1 6 0z M21 16a3 3 0 1 1-6 0 3 3 0 0 1 6 0z',
  image: 'M4 4h16v16H4z M4 16l5-5 4 4 3-3 4 4 M15 8.5a1.5 1.5 0 1 1-3 0 1.5 1.5 0 0 1 3 0z',
  other: 'M6 2h8l6 6v14H6z M14 2v6h6',
};

export function Icon({ name, size = 20 }) {
  return html`<svg class="icon-svg" width=${size} height=${size} viewBox="0 0 24 24" fill="none" stroke="currentColor"
    stroke-width="1.6" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false">
    <path d=${PATHS[name] || PATHS.other} /></svg>`;
}
