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

/** Asks the server who we are (401 = anonymous) and what it offers. */
export async function refresh() {
  const [info, me] = await Promise.all([
    get('/api/info').catch(() => null),
    get('/api/me').catch(() => null),
  ]);
  update({ info, me, loaded: true });
}

export const isAdmin = (s) => !!(s.me && s.me.role === 'admin');
export const canWrite = (s) => !!s.me;
export const canRead = (s) => !!s.me || !!(s.info && s.info.anonymous_read);
