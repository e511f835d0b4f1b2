import { html, useEffect, useRef, useState } from '../vendor/preact-htm.js';
import { get, put, post, query, encPath, errorText, request } from '../lib/api.js';
import { useAsync, ErrorBox, Loading, Crumbs, toast } from '../lib/ui.js';
import { duration, href, parent, basename, go, download, bytes } from '../lib/util.js';

// Codecs no mainstream browser decodes: warn before the user waits for an error.
const UNPLAYABLE = new Set(['hevc', 'h265', 'mpeg2video', 'mpeg4', 'msmpeg4v3', 'wmv3', 'vc1', 'ac3', 'eac3', 'dts', 'truehd', 'wmav2']);

function savePosition(path, video, keepalive = false) {
  if (!video || !isFinite(video.currentTime) || video.currentTime < 1) return;
  const body = { path, position: video.currentTime, duration: isFinite(video.duration) ? video.duration : null };
  if (keepalive) {
    // The page is going away: a fetch that outlives it (sendBeacon cannot send the CSRF header).
    request('PUT', '/api/positions', { body, keepalive: true }).catch(() => {});
    return;
  }
  put('/api/positions', body).catch(() => {});
}

async function vlcPlaylist(item, s) {
  let url = `${location.origin}/media/${encPath(item.path)}`;
  if (!(s.info && s.info.anonymous_read)) {
    // VLC has no session: give it a link of its own that works for a day.
    const link = await post('/api/shares', { path: item.path, expires_in: 86400 });
    url = link.url;
  }
  const name = item.name.replace(/[\r\n]/g, ' ');
  download(`${name}.m3u`, 'audio/x-mpegurl', `#EXTM3U\n#EXTINF:${Math.round(item.duration || -1)},${name}\n${url}\n`);
}

function useSiblings(path) {
  return useAsync(async () => {
    const r = await get(`/api/library${query({ path: parent(path), per_page: 1000 })}`);
    return r.entries.filter((e) => e.media === 'video' || e.media === 'audio');
  }, [parent(path)]);
}

export function Player({ route, s }) {
  const path = route.path;
  const item = useAsync(() => get(`/api/library/item${query({ path })}`), [path]);
  const subs = useAsync(() => get(`/api/library/subtitles${query({ path })}`).catch(() => ({ tracks: [] })), [path]);
  const sib = useSiblings(path);
  const ref = useRef(null);
  const [failure, setFailure] = useState(null);
  const [resumed, setResumed] = useState(null);
  const i = item.data;
  const list = sib.data || [];
  const at = list.findIndex((e) => e.path === path);
  const prev = at > 0 ? list[at - 1] : null;
  const next = at >= 0 && at < list.length - 1 ? list[at + 1] : null;

  useEffect(() => {
    setFailure(null);
    setResumed(null);
  }, [path]);

  useEffect(() => {
    const v = ref.current;
    if (!v || !s.me) return undefined;
    let timer = setInterval(() => !v.paused && savePosition(path, v), 10000);
    const onPause = () => savePosition(path, v);
    // Whether the viewer moved before the stored place arrived: a seek, or a position that
    // playback alone could not have reached since the player appeared.
    let moved = false;
    const shownAt = performance.now();
    const onSeek = () => { moved = true; };
    const movedAlready = () => moved || v.currentTime > ((performance.now() - shownAt) / 1000) * (v.playbackRate || 1) + 1;
    v.addEventListener('seeking', onSeek, { once: true });
    const onHide = () => savePosition(path, v, true);
    const onMeta = async () => {
      try {
        const pos = await get(`/api/positions${query({ path })}`);
        // The server forgets finished files; anything it still has is worth resuming.
        // Not if the viewer has already moved: their seek wins over the stored place.
        if (pos && pos.position !== null && pos.position >= 1 && !movedAlready()
          && (!v.duration || pos.position < v.duration - 0.5)) {
          v.currentTime = pos.position;
          setResumed(pos.position);
        }
      } catch (e) {
        /* no position stored */
      }
    };
    v.addEventListener('pause', onPause);
    // From the cache the metadata may be there before this effect runs.
    if (v.readyState >= 1) onMeta();
    else v.addEventListener('loadedmetadata', onMeta, { once: true });
    addEventListener('pagehide', onHide);
    return () => {
      clearInterval(timer);
      savePosition(path, v);
      v.removeEventListener('pause', onPause);
      v.removeEventListener('seeking', onSeek);
      v.removeEventListener('loadedmetadata', onMeta);
      removeEventListener('pagehide', onHide);
    };
  }, [path, i && i.path, item.loading, s.me && s.me.name]);

  useEffect(() => {
    const key = (e) => {
      const v = ref.current;
      if (!v || e.ctrlKey || e.metaKey || e.altKey) return;
      if (['INPUT', 'TEXTAREA', 'SELECT', 'BUTTON'].includes(e.target.tagName) && e.key !== 'Escape') return;
      const seek = (d) => { v.currentTime = Math.max(0, Math.min((v.duration || 0), v.currentTime + d)); };
      const acts = {
        ' ': () => (v.paused ? v.play() : v.pause()),
        k: () => (v.paused ? v.play() : v.pause()),
        j: () => seek(-10),
        l: () => seek(10),
        ArrowLeft: () => seek(-5),
        ArrowRight: () => seek(5),
        m: () => { v.muted = !v.muted; },
        f: () => (document.fullscreenElement ? document.exitFullscreen() : v.requestFullscreen && v.requestFullscreen()),
        c: () => { const t = v.textTracks[0]; if (t) t.mode = t.mode === 'showing' ? 'hidden' : 'showing'; },
        n: () => next && go(href('play', next.path)),
        p: () => prev && go(href('play', prev.path)),
      };
      const act = acts[e.key];
      if (act) {
        e.preventDefault();
        act();
      }
    };
    document.addEventListener('keydown', key);
    return () => document.removeEventListener('keydown', key);
  }, [next && next.path, prev && prev.path]);

  // Never a player for one file with another's data (right after a route change).
  if (item.loading || (i && i.path !== path.replace(/^\/+/, ''))) return html`<${Loading} />`;
  if (item.error) return html`<${Crumbs} path=${parent(path)} /><${ErrorBox} error=${item.error} />`;
  const codecs = [i.video_codec, i.audio_codec].filter(Boolean);
  const suspect = codecs.filter((c) => UNPLAYABLE.has(c.toLowerCase()));
  const src = `/media/${encPath(path)}`;
  const tracks = (subs.data && subs.data.tracks) || [];
  const Tag = i.media === 'audio' ? 'audio' : 'video';
  const onError = () => {
    const err = ref.current && ref.current.error;
    const why = err && err.code === 4
      ? `This browser cannot play this file${codecs.length ? ` (${codecs.join(' / ')}, from the library index)` : ''}.`
      : 'The file could not be played.';
    setFailure(why);
  };
  const vlc = () => vlcPlaylist(i, s).catch((e) => toast(errorText(e), 'error'));
  return html`
    <${Crumbs} path=${parent(path)} />
    <h1 class="title">${i.name}</h1>
    <div class="player">
      <${Tag} ref=${ref} controls preload="metadata" src=${src} poster=${i.thumb || undefined} onError=${onError}
        aria-label=${`Player: ${i.name}`} autoplay>
        ${tracks.map((t, n) => html`<track kind="subtitles" src=${t.url} srclang=${t.lang || undefined} label=${t.label} default=${n === 0} />`)}
      <//>
    </div>
    ${failure && html`<div class="error" role="alert">${failure} <button onClick=${vlc}>Open in VLC</button></div>`}
    ${!failure && suspect.length > 0 && html`<p class="warn">Your browser may not play ${suspect.join(' and ')} (from the library index).
      <button onClick=${vlc}>Open in VLC</button></p>`}
    ${resumed !== null && html`<p class="muted" role="status">Resumed at ${duration(resumed)}.${' '}
      <button class="link" onClick=${() => { ref.current.currentTime = 0; setResumed(null); }}>Start over</button></p>`}
    <div class="bar">
      <div>
        ${prev ? html`<a class="button" href=${href('play', prev.path)} title="Previous (p)">◀ ${prev.name}</a>` : ''}
        ${next ? html`<a class="button" href=${href('play', next.path)} title="Next (n)">${next.name} ▶</a>` : ''}
      </div>
      <div class="tools">
        <a class="button" href=${src} download=${i.name}>Download</a>
        <button onClick=${vlc}>Open in VLC</button>
      </div>
    </div>
    <p class="muted">${[duration(i.duration), i.width && `${i.width}×${i.height}`, codecs.join(' / '), bytes(i.size)].filter(Boolean).join(' · ')}</p>
    <details><summary>Keyboard shortcuts</summary>
      <p>Space or k: play/pause · j / l: back/forward 10 s · ← / →: 5 s · m: mute · f: full screen · c: subtitles · n / p: next/previous</p>
    </details>`;
}
