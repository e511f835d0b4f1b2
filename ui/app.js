// The web UI: one page, routed by the address's fragment (#/library/films, #/notes/<id>),
// so every view is a link that can be bookmarked and shared.
import { html, render, useEffect, useState } from './vendor/preact-htm.js';
import { onUnauthorized, post } from './lib/api.js';
import { refresh, update, useSession, isAdmin } from './lib/store.js';
import { Toasts, toast, Loading } from './lib/ui.js';
import { parseRoute, go, asset } from './lib/util.js';
import { Login, Setup } from './pages/login.js';
import { Home } from './pages/home.js';
import { Library } from './pages/library.js';
import { Player } from './pages/player.js';
import { Upload } from './pages/upload.js';
import { Notes } from './pages/notes.js';
import { Note } from './pages/note.js';
import { Settings } from './pages/settings.js';
import { Trash } from './pages/trash.js';
import { Shared } from './pages/shared.js';

const PAGES = {
  '': Home,
  library: Library,
  play: Player,
  upload: Upload,
  notes: Notes,
  note: Note,
  settings: Settings,
  trash: Trash,
  login: Login,
  setup: Setup,
};

function useRoute() {
  const [route, set] = useState(parseRoute(location.hash));
  useEffect(() => {
    const on = () => set(parseRoute(location.hash));
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

function Nav({ route, s }) {
  const link = (page, label) => html`<a href=${`#/${page}`}
    aria-current=${route.page === page || (page === 'notes' && route.page === 'note') || (page === 'library' && route.page === 'play') ? 'page' : null}>${label}</a>`;
  const logout = async () => {
    try {
      await post('/api/logout');
    } catch (e) {
      /* the cookie is cleared either way */
    }
    update({ me: null });
    go('#/login');
  };
  return html`<header class="top">
    <a class="brand" href="#/" aria-label="streamhub home"><img src=${asset('icon.svg')} alt="" width="24" height="24" />
      <span>${(s.info && s.info.name) || 'streamhub'}</span></a>
    <nav class="main" aria-label="Main">
      ${link('', 'Home')}${link('library', 'Library')}
      ${s.me && link('upload', 'Upload')}${link('notes', 'Notes')}
      ${s.me && link('trash', 'Trash')}${s.me && link('settings', isAdmin(s) ? 'Settings' : 'Tokens')}
    </nav>
    <div class="who">
      ${s.me
        ? html`<span class="muted" title=${`Logged in as ${s.me.name} (${s.me.role})`}>${s.me.name}</span>
            <button class="link" onClick=${logout}>Log out</button>`
        : html`<a href="#/login">Log in</a>`}
    </div>
  </header>`;
}

function App() {
  const s = useSession();
  const route = useRoute();
  useEffect(() => {
    // On a phone the page list scrolls sideways: keep the current page's tab in view.
    const cur = document.querySelector('nav.main [aria-current="page"]');
    if (cur && cur.scrollIntoView) cur.scrollIntoView({ block: 'nearest', inline: 'nearest' });
  }, [route.page]);
  useEffect(() => {
    refresh();
    return onUnauthorized(() => {
      update({ me: null });
      toast('Your session has ended: log in again.', 'error');
    });
  }, []);
  if (!s.loaded) return html`<main><${Loading} /></main>`;
  let Page = Object.hasOwn(PAGES, route.page) ? PAGES[route.page] : NotFound;
  if (s.info && s.info.setup_required && !s.me && route.page !== 'setup') Page = Setup;
  return html`
    <a class="skip" href="#content" onClick=${(e) => { e.preventDefault(); document.getElementById('content').focus(); }}>Skip to content</a>
    <${Nav} route=${route} s=${s} />
    <main id="content" tabindex="-1"><${Page} route=${route} s=${s} /></main>
    <${Toasts} />`;
}

function NotFound() {
  return html`<h1>Not found</h1><p>There is no such page. <a href="#/">Go home</a>.</p>`;
}

// A shared folder's link opened in a browser: the page for people without an account.
const shared = location.pathname.startsWith('/s/');
render(shared ? html`<main id="content"><${Shared} /></main><${Toasts} />` : html`<${App} />`, document.getElementById('app'));
