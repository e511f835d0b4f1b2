import { html, useState } from '../vendor/preact-htm.js';
import { post } from '../lib/api.js';
import { refresh } from '../lib/store.js';
import { ErrorBox } from '../lib/ui.js';
import { go } from '../lib/util.js';

export function Login({ route, s }) {
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await post('/api/login', { name, password });
      await refresh();
      go(route.params.get('next') || '#/');
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  if (s.me) {
    return html`<h1>Logged in</h1><p>You are logged in as <strong>${s.me.name}</strong> (${s.me.role}). <a href="#/">Go home</a>.</p>`;
  }
  return html`<section class="narrow">
    <h1>Log in</h1>
    <form onSubmit=${submit}>
      <label>Name<input name="name" autocomplete="username" value=${name} onInput=${(e) => setName(e.target.value)} required /></label>
      <label>Password<input name="password" type="password" autocomplete="current-password" value=${password}
        onInput=${(e) => setPassword(e.target.value)} required /></label>
      <${ErrorBox} error=${error} />
      <button class="primary" type="submit" disabled=${busy}>Log in</button>
    </form>
    ${s.info && s.info.anonymous_read && html`<p class="muted">You can also <a href="#/library">browse without logging in</a>.</p>`}
  </section>`;
}

export function Setup({ s }) {
  const [token, setToken] = useState('');
  const [name, setName] = useState('admin');
  const [password, setPassword] = useState('');
  const [again, setAgain] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  if (s.info && !s.info.setup_required) {
    return html`<h1>Set-up is done</h1><p>This box has an admin already. <a href="#/login">Log in</a>.</p>`;
  }
  const mismatch = again && password !== again;
  const submit = async (e) => {
    e.preventDefault();
    if (password !== again) return;
    setBusy(true);
    setError(null);
    try {
      await post('/api/setup', { token: token.trim(), name, password });
      await post('/api/login', { name, password });
      await refresh();
      go('#/');
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<section class="narrow">
    <h1>Welcome to streamhub</h1>
    <p>Create the first admin account. The one-time <strong>setup token</strong> is in the
      service's log: <code>journalctl -u streamhub | grep "setup token"</code> (or the terminal
      where <code>streamhub serve</code> runs).</p>
    <form onSubmit=${submit}>
      <label>Setup token<input name="token" autocomplete="off" value=${token} onInput=${(e) => setToken(e.target.value)} required /></label>
      <label>Admin name<input name="name" autocomplete="username" value=${name} onInput=${(e) => setName(e.target.value)} required /></label>
      <label>Password (at least 8 characters)<input name="password" type="password" autocomplete="new-password" minlength="8"
        value=${password} onInput=${(e) => setPassword(e.target.value)} required /></label>
      <label>Password again<input name="again" type="password" autocomplete="new-password" value=${again}
        onInput=${(e) => setAgain(e.target.value)} required aria-invalid=${mismatch ? 'true' : null} /></label>
      ${mismatch && html`<p class="error" role="alert">The passwords differ.</p>`}
      <${ErrorBox} error=${error} />
      <button class="primary" type="submit" disabled=${busy || mismatch}>Create admin</button>
    </form>
  </section>`;
}
