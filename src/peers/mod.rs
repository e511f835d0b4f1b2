//! The peers this node knows of: the table (`table`, pure and capped) behind a cheap shared
//! handle that discovery writes and the API, the CLI's control socket and (next) replication
//! read. `control` serves the table to `streamhub peers` over a Unix socket in the data dir.

pub mod control;
mod find;
pub mod others;
pub mod table;

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

pub use find::FindError;
pub use table::{Announcement, Peer, PeerTable, Skipped, Source, MAX_PEERS};

/// A cheap handle on the peer table.
#[derive(Clone)]
pub struct Peers {
    table: Arc<Mutex<PeerTable>>,
    /// Whether LAN peers are configured at all (discovery on, or static peers).
    enabled: bool,
    /// This node's id and name, as peers see them.
    node: Arc<(String, String)>,
    /// Replication's view of a peer, once the sync engine runs (`set_status`).
    status: Arc<OnceLock<Box<StatusFn>>>,
}

/// What replication knows of one peer (the control socket shows it; the sync engine fills
/// it in, so this module needs to know nothing of sync).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStatus {
    /// The node id and name it proved (a static peer's are known once reached).
    pub id: Option<String>,
    pub name: Option<String>,
    pub connected: bool,
    pub last_sync: Option<std::time::SystemTime>,
    pub behind: Option<i64>,
    pub last_error: Option<String>,
    /// The last round that went through: with announcements, what "last seen" means.
    pub last_contact: Option<std::time::SystemTime>,
}

type StatusFn = dyn Fn(&Peer) -> Option<SyncStatus> + Send + Sync;

impl SyncStatus {
    /// When a peer last `announced` itself was last heard from: that, or the last round that
    /// went through, whichever is later (the one rule the API and `streamhub peers` show).
    pub fn last_heard(
        &self,
        announced: Option<std::time::SystemTime>,
    ) -> Option<std::time::SystemTime> {
        announced.max(self.last_contact)
    }
}

impl Peers {
    /// The table of node `own_id` in the cluster tagged `cluster`, with the static peers
    /// `statics`; `enabled` says whether peers are configured at all (discovery or static).
    pub fn new(own_id: &str, cluster: Option<String>, statics: &[String], enabled: bool) -> Self {
        Peers {
            table: Arc::new(Mutex::new(PeerTable::new(own_id, cluster, statics))),
            enabled,
            node: Arc::new((own_id.to_string(), String::new())),
            status: Arc::default(),
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

    /// Boxes heard announcing another cluster.
    pub fn others(&self) -> Vec<others::Other> {
        self.lock().others(Instant::now())
    }

    /// Where replication's view of each peer comes from (set once, by the sync engine).
    pub fn set_status(&self, f: impl Fn(&Peer) -> Option<SyncStatus> + Send + Sync + 'static) {
        let _ = self.status.set(Box::new(f));
    }

    /// Replication's view of `p` (None: no replication, or not tried yet).
    pub fn status(&self, p: &Peer) -> Option<SyncStatus> {
        self.status.get().and_then(|f| f(p))
    }
}
