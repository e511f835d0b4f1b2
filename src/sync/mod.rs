//! Sync between the nodes of a cluster: the cluster key and its public tag (`cluster`), the
//! node's own sync identity (`identity`: a key pair and certificate whose hash is the node id
//! peers pin), the TLS configurations of sync connections (`tlsconf`), the membership proof
//! (`proof`, `session`), the messages (`wire`), the connecting side (`client`), per-peer
//! checkpoints (`state`) and the pulling workers (`engine`). The feed and the store of what
//! is pulled are the notes domain's (`notes::feed`, `notes::apply`); the accepting side's
//! routes are `http::sync_api`.

pub mod client;
pub mod cluster;
pub mod engine;
pub mod identity;
pub mod proof;
pub mod session;
pub mod state;
pub mod tlsconf;
pub mod wire;

pub use cluster::{BadClusterKey, ClusterKey};
pub use engine::Engine;
pub use identity::{IdentityError, NodeIdentity};

/// Now, in unix milliseconds (what `sync_peers` stores).
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Whether `s` looks like a database instance id (`node.id`: 32 lower-case hex digits), as
/// it may go into a query string.
pub fn is_instance(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `s` looks like a node id: 64 lower-case hex digits.
pub fn is_node_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
