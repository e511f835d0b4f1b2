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
    last_seen: Option<String>,
    /// The sync API version it announces.
    api: Option<u32>,
    /// Replication is not built yet: these stay null.
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
            last_seen: p.last_seen.map(|t| {
                let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                super::time::from_secs(i64::try_from(secs).unwrap_or(i64::MAX))
            }),
            api: p.api,
            last_sync: None,
            changes_behind: None,
            last_error: None,
        }
    }
}

/// The admin answer.
#[derive(Debug, Serialize)]
pub struct PeersJson {
    pub node: NodeJson,
    pub peers: Vec<PeerJson>,
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
