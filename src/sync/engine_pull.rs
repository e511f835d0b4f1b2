//! The pull itself (`Engine::pull`) and where a peer is reached (`addresses`): the half of
//! the engine that talks to one peer, apart from the workers' scheduling in `engine`.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use super::{lock, Engine, RoundError, Worker, MAX_PAGES, PAGE};
use crate::notes::Cursor;
use crate::peers::Peer;
use crate::sync::client::{Connection, SyncError};
use crate::sync::state;
use crate::sync::wire::MAX_REVS_PER_REQUEST;

impl Engine {
    /// Pulls everything the peer has that this node lacks. Returns how many revisions were
    /// stored.
    pub(super) async fn pull(&self, c: &mut Connection, w: &Worker) -> Result<usize, RoundError> {
        let peer = c.peer_id.clone();
        let mut stored = 0;
        let mut restarted = false;
        for _ in 0..MAX_PAGES {
            let id = peer.clone();
            let st = self
                .0
                .db
                .call(move |c| state::load(c, &id))
                .await?
                .ok_or(RoundError::Gone)?;
            let page = c.changes(st.seq, PAGE, &st.instance).await?;
            let moved = !st.instance.is_empty() && st.instance != page.instance;
            if (moved || st.seq > page.max_seq) && !restarted {
                // A wiped or restored peer: its sequence numbers mean something else now.
                tracing::info!(peer = %c.peer_name, "the peer's database changed; pulling from the start");
                restarted = true;
                let (id, inst) = (peer.clone(), page.instance.clone());
                self.0.db.call(move |c| state::reset(c, &id, &inst)).await?;
                continue;
            }
            let revs: Vec<String> = page.changes.iter().map(|ch| ch.rev.clone()).collect();
            let notes = self.0.notes.clone();
            let mut want = self.0.db.call(move |c| notes.missing(c, &revs)).await?;
            // Fetched and stored a batch at a time (a batch is at most a few MiB): only the
            // last one moves the checkpoint to the end of the page.
            loop {
                let take = want.len().min(MAX_REVS_PER_REQUEST);
                let got = if take == 0 {
                    Vec::new()
                } else {
                    c.revs(&want[..take]).await?
                };
                // The peer answers a prefix of what was asked, in order, leaving out what
                // it may not share: continue after the last one it sent.
                let last = got
                    .last()
                    .and_then(|r| want[..take].iter().position(|x| x == r.rev()))
                    .map_or(take, |i| i + 1);
                want.drain(..last);
                let done = want.is_empty();
                let cursor_seq = if done { page.last_seq } else { st.seq };
                let (notes, id, inst, max) = (
                    self.0.notes.clone(),
                    peer.clone(),
                    page.instance.clone(),
                    page.max_seq,
                );
                let name = c.peer_name.clone();
                let applied = self
                    .0
                    .db
                    .call(move |c| {
                        let cursor = Cursor {
                            peer_id: &id,
                            peer_name: &name,
                            instance: &inst,
                            through_seq: cursor_seq,
                            max_seq: max,
                        };
                        notes.apply_from_peer(c, &cursor, &got)
                    })
                    .await?;
                stored += applied.stored + applied.merged;
                if let Some((rev, why)) = applied.refused.first() {
                    tracing::warn!(peer = %c.peer_name, %rev, reason = %why,
                        "refused a revision from a peer");
                    return Err(RoundError::Refused(why.clone()));
                }
                if done {
                    break;
                }
            }
            {
                let mut live = lock(&w.live);
                live.connected = true;
                live.last_error = None;
                live.last_sync = Some(SystemTime::now());
                live.behind = Some((page.max_seq - page.last_seq).max(0));
            }
            if page.last_seq >= page.max_seq || page.last_seq <= st.seq {
                return Ok(stored);
            }
        }
        // Caught up to here; the next round goes on from the checkpoint.
        Ok(stored)
    }
}

/// Where to reach a peer: its announced `ip:port`s (IPv4 first), or its configured
/// `host:port` resolved now.
pub(super) async fn addresses(p: &Peer) -> Result<(Vec<SocketAddr>, String), RoundError> {
    let mut out: Vec<SocketAddr> = Vec::new();
    let mut host = String::new();
    for a in &p.addresses {
        if let Ok(sa) = a.parse::<SocketAddr>() {
            host = sa.ip().to_string();
            out.push(sa);
            continue;
        }
        host = a
            .rsplit_once(':')
            .map_or(a.as_str(), |(h, _)| h)
            .to_string();
        match tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host(a.as_str()))
            .await
        {
            Ok(Ok(found)) => out.extend(found),
            Ok(Err(e)) => return Err(SyncError::Unreachable(format!("{a}: {e}")).into()),
            Err(_) => {
                return Err(SyncError::Unreachable(format!("{a}: name lookup timed out")).into())
            }
        }
    }
    // Link-local IPv6 needs an interface the announcement does not carry.
    out.retain(
        |a| !matches!(a.ip(), std::net::IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80),
    );
    out.sort_by_key(|a| a.is_ipv6());
    if out.is_empty() {
        return Err(SyncError::Unreachable("no usable address".into()).into());
    }
    Ok((out, host))
}
