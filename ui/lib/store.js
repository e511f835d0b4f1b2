// The little state every page shares: who is logged in and what the server is.
import { useEffect, useState } from '../vendor/preact-htm.js';
import { get, setCsrf } from './api.js';

const state = { me: null, info: null, loaded: false };
const subs = new Set();

export function session() {
  return state;
}

export function update(patch) {
  Object.assign(state, patch);
  if ('me' in patch) setCsrf(patch.me && patch.me.csrf_token);
  subs.forEach((fn) => fn({ ...state }));
}

export function useSession() {
  const [s, set] = useState({ ...state });
  useEffect(() => {
    subs.add(set);
    return () => subs.delete(set);
  }, []);
  return s;
}

/**
 * Asks the server what it is and who we are (`user` is null when anonymous). A session that
 * ended answers 401 once and clears its cookie: ask again, anonymously.
 */
export async function refresh() {
  let info = null;
  for (let attempt = 0; attempt < 2 && !info; attempt += 1) {
    info = await get('/api/info').catch(() => null);
  }
  update({ info, me: info ? info.user : null, loaded: true });
}

export const isAdmin = (s) => !!(s.me && s.me.role === 'admin');
export const canWrite = (s) => !!s.me;
export const canRead = (s) => !!s.me || !!(s.info && s.info.anonymous_read);
