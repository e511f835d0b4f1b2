//! Proof of cluster membership on a sync connection. TLS already showed that each end holds
//! the key of the certificate it presented (so each knows the other's node id); the cluster
//! key shows that the other node belongs to this cluster. Each side sends a fresh nonce, and
//! each proves with an HMAC under the cluster key over a transcript binding both node ids and
//! both nonces, with the prover's role inside it:
//!
//! - a proof made for one connection is worth nothing on another (the accepting side's nonce
//!   is new for every connection): a recorded exchange cannot be replayed;
//! - a stolen certificate and key without the cluster key cannot make a proof;
//! - the accepting side proves first, so a connecting node never sends its proof to a node
//!   outside the cluster, and the role label keeps one side's proof from being reflected as
//!   the other's.

use crate::secret;

use super::ClusterKey;

/// Bytes of a nonce.
pub const NONCE_BYTES: usize = 32;

/// Which side a proof is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The node that accepted the connection.
    Server,
    /// The node that opened it.
    Client,
}

/// Both ends of one connection: ids and nonces, named by role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript<'a> {
    pub server_id: &'a str,
    pub client_id: &'a str,
    pub server_nonce: &'a [u8],
    pub client_nonce: &'a [u8],
}

impl Transcript<'_> {
    /// The proof `role` makes with `key`.
    pub fn proof(&self, key: &ClusterKey, role: Role) -> [u8; 32] {
        let mut msg = Vec::with_capacity(64 + 2 * 64 + 2 * NONCE_BYTES);
        msg.extend_from_slice(b"streamhub-sync/1 membership\0");
        msg.extend_from_slice(match role {
            Role::Server => b"server\0",
            Role::Client => b"client\0",
        });
        for part in [
            self.server_id.as_bytes(),
            self.client_id.as_bytes(),
            self.server_nonce,
            self.client_nonce,
        ] {
            msg.extend_from_slice(&(part.len() as u64).to_be_bytes());
            msg.extend_from_slice(part);
        }
        secret::hmac(key.as_bytes(), &msg)
    }

    /// Whether `proof` (as received, any length) is `role`'s proof; constant time.
    pub fn check(&self, key: &ClusterKey, role: Role, proof: &[u8]) -> bool {
        secret::ct_eq(&self.proof(key, role), proof)
    }
}

/// A fresh nonce.
pub fn nonce() -> [u8; NONCE_BYTES] {
    secret::random_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcript<'a>(sn: &'a [u8], cn: &'a [u8]) -> Transcript<'a> {
        Transcript {
            server_id: "aa",
            client_id: "bb",
            server_nonce: sn,
            client_nonce: cn,
        }
    }

    #[test]
    fn a_proof_is_bound_to_key_role_ids_and_both_nonces() {
        let key = ClusterKey::generate();
        let (sn, cn) = (nonce(), nonce());
        let t = transcript(&sn, &cn);
        let p = t.proof(&key, Role::Client);
        assert!(t.check(&key, Role::Client, &p));
        // Reflected as the other role, under another key, on another connection (new server
        // nonce), with the ids swapped, or cut short: refused.
        assert!(!t.check(&key, Role::Server, &p));
        assert!(!t.check(&ClusterKey::generate(), Role::Client, &p));
        let other = nonce();
        assert!(!transcript(&other, &cn).check(&key, Role::Client, &p));
        let swapped = Transcript {
            server_id: "bb",
            client_id: "aa",
            ..t.clone()
        };
        assert!(!swapped.check(&key, Role::Client, &p));
        assert!(!t.check(&key, Role::Client, &p[..31]));
        assert!(!t.check(&key, Role::Client, &[]));
    }
}
