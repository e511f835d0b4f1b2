//! The peers this node knows of: the table (`table`, pure and capped) behind a cheap shared
//! handle that discovery writes and the API, the CLI's control socket and (next) replication
//! read. `control` serves the table to `streamhub peers` over a Unix socket in the data dir.

pub mod control;
pub mod table;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

pub use table::{Announcement, Peer, PeerTable, Skipped, Source, MAX_PEERS};

/// A cheap handle on the peer table.
#[derive(Clone)]
pub struct Peers {
    table: Arc<Mutex<PeerTable>>,
    /// Whether LAN peers are configured at all (discovery on, or static peers).
    enabled: bool,
    /// This node's id and name, as peers see them.
    node: Arc<(String, String)>,
}

impl Peers {
    /// The table of node `own_id` in the cluster tagged `cluster`, with the static peers
    /// `statics`; `enabled` says whether peers are configured at all (discovery or static).
    pub fn new(own_id: &str, cluster: Option<String>, statics: &[String], enabled: bool) -> Self {
        Peers {
            table: Arc::new(Mutex::new(PeerTable::new(own_id, cluster, statics))),
            enabled,
            node: Arc::new((own_id.to_string(), String::new())),
        }
    }

    /// The same, with this node's name (what peers list it as).
    pub fn named(mut self, name: &str) -> Self {
        self.node = Arc::new((self.node.0.clone(), name.to_string()));
        self
    }

    /// No peers: for in-process users that start no discovery (handler tests).
    pub fn disabled() -> Self {
        Self::new("", None, &[], false)
    }

    /// This node's id (empty when disabled).
    pub fn node_id(&self) -> &str {
        &self.node.0
    }

    /// This node's name.
    pub fn node_name(&self) -> &str {
        &self.node.1
    }

    /// Whether LAN peers are configured (`/api/info`'s `lan_peers`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The table, locked. Never held across an await.
    pub fn lock(&self) -> MutexGuard<'_, PeerTable> {
        // Every change is a whole-entry insert or removal: a panic cannot leave it torn.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The peers now.
    pub fn list(&self) -> Vec<Peer> {
        self.lock().list(Instant::now())
    }
}
