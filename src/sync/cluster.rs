//! The cluster key (`sync.cluster_key`): the one secret every node of a cluster shares, and
//! the cluster *tag* derived from it, which discovery publishes so that nodes of other clusters
//! can be skipped without learning anything about the key.

use std::fmt;

use crate::secret;

/// Bytes of randomness in a key `streamhub cluster new` makes (256 bits).
pub const KEY_BYTES: usize = 32;
/// The label the tag is an HMAC of: fixed, so every node of a cluster derives the same tag.
const TAG_LABEL: &[u8] = b"streamhub-cluster-tag";
/// Hex characters of the tag kept (64 bits): enough to tell clusters on one LAN apart, and
/// short enough that it is obviously not the key.
pub const TAG_HEX: usize = 16;

/// A cluster key, decoded. Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterKey(Vec<u8>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a cluster key: expected {} URL-safe base64 characters (A-Z a-z 0-9 - _, no padding) \
     as `streamhub cluster new` prints them (keys of your own: {} to {} characters)",
    secret::b64(&[0; KEY_BYTES]).len(),
    secret::b64(&[0; KEY_BYTES]).len(),
    secret::b64(&[0; 2 * KEY_BYTES]).len()
)]
pub struct BadClusterKey;

impl ClusterKey {
    /// A new random key.
    pub fn generate() -> Self {
        ClusterKey(secret::random_bytes().to_vec())
    }

    /// Parses the text form (`sync.cluster_key`): URL-safe base64 without padding of at least
    /// 256 bits (longer keys, up to 512 bits, are accepted for operators who bring their own).
    /// Surrounding spaces (a key pasted with its newline) are ignored.
    pub fn parse(text: &str) -> Result<Self, BadClusterKey> {
        let bytes = secret::unb64(text.trim()).ok_or(BadClusterKey)?;
        if !(KEY_BYTES..=2 * KEY_BYTES).contains(&bytes.len()) {
            return Err(BadClusterKey);
        }
        Ok(ClusterKey(bytes))
    }

    /// The text form: one line, URL-safe base64 without padding.
    pub fn to_text(&self) -> String {
        secret::b64(&self.0)
    }

    /// The cluster tag: the first [`TAG_HEX`] hex digits of HMAC-SHA256(key,
    /// "streamhub-cluster-tag"). It identifies the cluster, and the key cannot be recovered
    /// from it (nor can a node prove membership with it: that takes the key itself).
    pub fn tag(&self) -> String {
        let mac = secret::hmac(&self.0, TAG_LABEL);
        let mut hex = crate::sync::hex(&mac);
        hex.truncate(TAG_HEX);
        hex
    }

    /// The key's bytes, for the membership proofs replication will add.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_and_differ() {
        let a = ClusterKey::generate();
        let text = a.to_text();
        assert_eq!(text.len(), 43);
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(ClusterKey::parse(&text), Ok(a.clone()));
        assert_eq!(ClusterKey::parse(&format!(" {text}\n")), Ok(a.clone()));
        assert_ne!(ClusterKey::generate(), a);
    }

    #[test]
    fn bad_keys_are_refused() {
        for bad in [
            "",
            "short",
            "not base64 at all!!!!!!!!!!!!!!!!!!!!!!!!!!",
            // 31 bytes: too little
            &secret::b64(&[7u8; 31]),
            // standard (not URL-safe) alphabet with padding
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+/==",
            &secret::b64(&[7u8; 65]),
        ] {
            assert_eq!(ClusterKey::parse(bad), Err(BadClusterKey), "{bad:?}");
        }
        assert!(ClusterKey::parse(&secret::b64(&[7u8; 64])).is_ok());
    }

    #[test]
    fn the_tag_is_stable_short_hex_and_differs_by_key() {
        let k = ClusterKey::parse(&secret::b64(&[1u8; 32])).expect("key");
        let tag = k.tag();
        assert_eq!(tag.len(), TAG_HEX);
        assert!(tag.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(tag, k.tag());
        // Pinned (computed independently, with Python's hmac): every node, of every
        // version, must derive the same tag from one key.
        assert_eq!(tag, "84492bbd57f037dd");
        let other = ClusterKey::parse(&secret::b64(&[2u8; 32])).expect("key");
        assert_ne!(other.tag(), tag);
        assert!(!tag.contains(&k.to_text()[..8]));
    }

    #[test]
    fn debug_hides_the_key() {
        let k = ClusterKey::generate();
        assert!(!format!("{k:?}").contains(&k.to_text()));
    }
}
