//! The control socket `streamhub peers` reads: `<data_dir>/sync/control.sock`, a Unix socket
//! made 0600 in the 0700 data dir, so whoever may run the offline commands on the database
//! (the service's user, root) may read the peer table, and nobody else. A connection gets one
//! JSON document (this node and its peers) and is closed; nothing is read from it.
//!
//! A socket rather than the HTTP API: the CLI needs no account or token, and the answer is
//! the service's live table (it lives in memory; the database has none of it yet).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use super::{Peer, Peers, Source, SyncStatus};

/// The socket's name in `<data_dir>/sync/`.
pub const SOCKET: &str = "control.sock";

/// What the socket sends. Serde here is the control protocol between the service and its own
/// CLI (same binary), not the HTTP API (that is `http::wire`).
#[derive(Debug, Serialize, Deserialize)]
pub struct Snapshot {
    pub node: NodeInfo,
    pub peers: Vec<PeerInfo>,
    /// Boxes heard announcing another cluster key (or none): not peers.
    #[serde(default)]
    pub other_clusters: Vec<OtherInfo>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct OtherInfo {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: String,
    pub name: String,
    /// Why this node does not take part in mDNS (None: it does).
    pub discovery: Option<String>,
    /// The cluster tag it announces (None: `sync.cluster_key` is empty): public, so people
    /// can compare keys across boxes without showing them.
    #[serde(default)]
    pub cluster: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PeerInfo {
    pub id: Option<String>,
    pub name: String,
    pub addresses: Vec<String>,
    pub found_via: String,
    pub online: bool,
    /// Seconds since the Unix epoch.
    pub last_seen: Option<u64>,
    /// The last round that pulled everything (seconds since the Unix epoch).
    #[serde(default)]
    pub last_sync: Option<u64>,
    /// The peer's changes left after that round.
    #[serde(default)]
    pub changes_behind: Option<i64>,
    /// Why the last attempt failed.
    #[serde(default)]
    pub last_error: Option<String>,
}

fn secs(t: SystemTime) -> Option<u64> {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

impl PeerInfo {
    /// A peer as the table has it, with replication's view (`status`) when there is one:
    /// a static peer reached shows the id and name it proved, and whether it was reached.
    pub fn new(p: &Peer, status: Option<SyncStatus>) -> Self {
        let mut info = PeerInfo {
            id: p.id.clone(),
            name: p.name.clone(),
            addresses: p.addresses.clone(),
            found_via: p.source.as_str().to_string(),
            online: p.online,
            last_seen: p.last_seen.and_then(secs),
            last_sync: None,
            changes_behind: None,
            last_error: None,
        };
        if let Some(st) = status {
            // Heard from: announced, or answered a round (a static peer only the latter).
            info.last_seen = st.last_heard(p.last_seen).and_then(secs);
            if p.source == Source::Static {
                info.online = st.connected;
                info.id = info.id.or(st.id);
                if let Some(name) = st.name {
                    info.name = name;
                }
            }
            info.last_sync = st.last_sync.and_then(secs);
            info.changes_behind = st.behind;
            info.last_error = st.last_error;
        }
        info
    }
}

/// The socket's path for a data dir.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(crate::sync::identity::SYNC_DIR).join(SOCKET)
}

/// Serves the socket until cancelled, then removes it. A stale socket left by a crash is
/// replaced; anything else at that path is left alone (and the socket not served).
pub async fn serve(path: PathBuf, node: NodeInfo, peers: Peers, cancel: CancellationToken) {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(md) = std::fs::symlink_metadata(&path) {
        if !md.file_type().is_socket() {
            tracing::warn!(path = %path.display(),
                "not a socket: `streamhub peers` cannot reach this node");
            return;
        }
        let _ = std::fs::remove_file(&path);
    }
    let listener = match tokio::net::UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e,
                "cannot open the control socket: `streamhub peers` cannot reach this node");
            return;
        }
    };
    if let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
        tracing::warn!(path = %path.display(), error = %e, "cannot make the control socket private");
    }
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        let Ok((mut stream, _)) = accepted else {
            // Out of descriptors, say: try again a little later rather than spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let snapshot = Snapshot {
            node: NodeInfo {
                id: node.id.clone(),
                name: node.name.clone(),
                discovery: node.discovery.clone(),
                cluster: node.cluster.clone(),
            },
            peers: peers
                .list()
                .iter()
                .map(|p| PeerInfo::new(p, peers.status(p)))
                .collect(),
            other_clusters: peers
                .others()
                .into_iter()
                .map(|o| OtherInfo {
                    id: o.id,
                    name: o.name,
                })
                .collect(),
        };
        let Ok(body) = serde_json::to_vec(&snapshot) else {
            continue;
        };
        // One small write: a reader that does not read cannot hold the loop for long.
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(&body)).await;
    }
    let _ = std::fs::remove_file(&path);
}

/// Reads the snapshot from a running service (the CLI side). Blocking.
pub fn read(path: &Path) -> std::io::Result<Snapshot> {
    use std::io::Read;
    let s = std::os::unix::net::UnixStream::connect(path)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = Vec::new();
    s.take(1 << 20).read_to_end(&mut buf)?;
    serde_json::from_slice(&buf).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_cli_reads_what_the_service_serves() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join(SOCKET);
        let peers = Peers::new(&"a".repeat(64), None, &["box.lan:8443".into()], true);
        let cancel = CancellationToken::new();
        let node = NodeInfo {
            id: "a".repeat(64),
            name: "living-room".into(),
            discovery: None,
            cluster: None,
        };
        let task = tokio::spawn(serve(path.clone(), node, peers, cancel.clone()));
        // The socket is bound by the task: try until it answers (a bounded number of times,
        // so a bind that failed ends the test instead of hanging it).
        let mut snap = None;
        for _ in 0..10_000 {
            let p = path.clone();
            if let Ok(s) = tokio::task::spawn_blocking(move || read(&p))
                .await
                .expect("join")
            {
                snap = Some(s);
                break;
            }
            tokio::task::yield_now().await;
        }
        let snap = snap.expect("the control socket answers");
        assert_eq!(snap.node.name, "living-room");
        assert_eq!(snap.peers.len(), 1);
        assert_eq!(snap.peers[0].found_via, "static");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)
            .expect("socket")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        cancel.cancel();
        task.await.expect("ends");
        assert!(!path.exists(), "removed at shutdown");
    }
}
