//! `GET /api/peers`: the peer table as admins see it (everything the table knows, and the
//! sync fields replication will fill) and as members see it (name, online, last sync).

use std::time::UNIX_EPOCH;

use serde::Serialize;

use crate::peers::Peer;

/// This node, as peers see it.
#[derive(Debug, Serialize)]
pub struct NodeJson {
    pub id: String,
    pub name: String,
}

/// One peer, for admins.
#[derive(Debug, Serialize)]
pub struct PeerJson {
    /// The node id it claims (null: a static peer not reached yet).
    id: Option<String>,
    name: String,
    addresses: Vec<String>,
    /// `mdns` or `static`.
    found_via: &'static str,
    online: bool,
    /// Last heard from: an announcement, or a sync round that went through.
    last_seen: Option<String>,
    /// When it last announced itself (`last_seen` before replication's view is added).
    #[serde(skip)]
    announced: Option<std::time::SystemTime>,
    /// The sync API version it announces.
    api: Option<u32>,
    /// The last round that pulled everything (null: none yet).
    last_sync: Option<String>,
    changes_behind: Option<u64>,
    last_error: Option<String>,
}

impl From<&Peer> for PeerJson {
    fn from(p: &Peer) -> Self {
        PeerJson {
            id: p.id.clone(),
            name: p.name.clone(),
            addresses: p.addresses.clone(),
            found_via: p.source.as_str(),
            online: p.online,
            last_seen: p.last_seen.map(from_system),
            announced: p.last_seen,
            api: p.api,
            last_sync: None,
            changes_behind: None,
            last_error: None,
        }
    }
}

/// Unix milliseconds as the API's time strings.
fn from_ms(ms: i64) -> String {
    super::time::from_secs(ms.div_euclid(1000))
}

fn from_system(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    super::time::from_secs(i64::try_from(secs).unwrap_or(i64::MAX))
}

/// What replication knows of a peer: live (this run) and stored (`sync_peers`).
#[derive(Debug, Default, Clone)]
pub struct SyncView {
    pub live: Option<crate::peers::SyncStatus>,
    pub stored: Option<crate::sync::state::PeerState>,
}

impl SyncView {
    fn last_sync(&self) -> Option<String> {
        self.live
            .as_ref()
            .and_then(|l| l.last_sync)
            .map(from_system)
            .or_else(|| self.stored.as_ref().and_then(|s| s.last_sync).map(from_ms))
    }
}

impl PeerJson {
    /// Adds replication's view: the proved id of a static peer, whether it was reached, the
    /// last sync, how far behind, the last error.
    pub fn with_sync(mut self, v: &SyncView) -> Self {
        if let Some(live) = &v.live {
            if self.id.is_none() {
                self.id = live.id.clone();
            }
            if self.found_via == "static" {
                self.online = live.connected;
                // Reached: the name it proved, not the configured address (that stays in
                // `addresses`).
                if let Some(name) = &live.name {
                    self.name = name.clone();
                }
            }
            self.last_error = live.last_error.clone();
            self.last_seen = live.last_heard(self.announced).map(from_system);
        } else if let Some(st) = &v.stored {
            self.last_error = st.last_error.clone();
        }
        self.last_sync = v.last_sync();
        self.changes_behind = v
            .live
            .as_ref()
            .and_then(|l| l.behind)
            .or_else(|| v.stored.as_ref().map(|s| s.behind))
            .map(|b| u64::try_from(b).unwrap_or(0));
        self
    }
}

impl PeerBriefJson {
    pub fn with_sync(mut self, v: &SyncView, static_peer: bool) -> Self {
        if static_peer {
            self.online = v.live.as_ref().is_some_and(|l| l.connected);
            if let Some(name) = v.live.as_ref().and_then(|l| l.name.clone()) {
                self.name = name;
            }
        }
        self.last_sync = v.last_sync();
        self
    }
}

/// The admin answer.
#[derive(Debug, Serialize)]
pub struct PeersJson {
    pub node: NodeJson,
    pub peers: Vec<PeerJson>,
    /// Boxes heard announcing another cluster key (or none): not peers, listed so a
    /// mistyped key shows.
    pub other_clusters: Vec<OtherJson>,
}

#[derive(Debug, Serialize)]
pub struct OtherJson {
    pub id: String,
    pub name: String,
}

/// One peer, for members (the home page's card).
#[derive(Debug, Serialize)]
pub struct PeerBriefJson {
    name: String,
    online: bool,
    last_sync: Option<String>,
}

impl From<&Peer> for PeerBriefJson {
    fn from(p: &Peer) -> Self {
        PeerBriefJson {
            name: p.name.clone(),
            online: p.online,
            last_sync: None,
        }
    }
}

/// The member answer.
#[derive(Debug, Serialize)]
pub struct PeersBriefJson {
    pub peers: Vec<PeerBriefJson>,
}
