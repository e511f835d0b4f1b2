//! Sync between the nodes of a cluster. This slice holds what replication will build on: the
//! cluster key and its public tag (`cluster`) and the node's own sync identity (`identity`:
//! a key pair and certificate whose hash is the node id peers pin). Replication itself (the
//! changes feed, pulls, checkpoints) comes next; nothing here sends or accepts notes.

pub mod cluster;
pub mod identity;
pub mod state;

pub use cluster::{BadClusterKey, ClusterKey};
pub use identity::{IdentityError, NodeIdentity};

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

/// Whether `s` looks like a node id: 64 lower-case hex digits.
pub fn is_node_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
