//! The messages of the sync API (`streamhub-sync/1`), as JSON over HTTP/1.1 on a mutually
//! authenticated TLS connection. Changes pages and revisions are the notes domain's own
//! serde types (`notes::feed`); what is here is the handshake and the envelopes.
//!
//! Every decoder here reads what another node sent: sizes are bounded by the caller (a body
//! limit) and every field is checked before use (`Hello::nonce`, `Auth::proof`).

use serde::{Deserialize, Serialize};

use super::proof::NONCE_BYTES;
use crate::secret;

/// The sync API version this node speaks (also in the ALPN protocol and the mDNS TXT `api`).
pub const API: u32 = 1;
/// The most revision ids one `revs` request may ask for.
pub const MAX_REVS_PER_REQUEST: usize = 1000;
/// The most changes one page holds.
pub const MAX_PAGE: usize = 1000;
/// The longest node name taken from a peer, in bytes.
pub const MAX_NAME: usize = 63;

/// `POST /sync/v1/hello`, from the connecting node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub api: u32,
    /// URL-safe base64 of [`NONCE_BYTES`] random bytes.
    pub nonce: String,
}

/// The accepting node's answer: who it is, its nonce, and its proof (`proof::Role::Server`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloReply {
    pub api: u32,
    pub id: String,
    pub name: String,
    pub nonce: String,
    pub proof: String,
}

/// `POST /sync/v1/auth`: the connecting node's proof (`proof::Role::Client`) and its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Auth {
    pub proof: String,
    pub name: String,
}

/// `POST /sync/v1/revs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevsRequest {
    pub revs: Vec<String>,
}

/// The answer to `revs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevsReply {
    pub revs: Vec<crate::notes::WireRev>,
}

/// A nonce as sent: exactly [`NONCE_BYTES`] bytes, or None.
pub fn decode_nonce(text: &str) -> Option<[u8; NONCE_BYTES]> {
    secret::unb64(text)?.try_into().ok()
}

/// A proof as sent (32 bytes of HMAC), or None.
pub fn decode_proof(text: &str) -> Option<Vec<u8>> {
    secret::unb64(text).filter(|p| p.len() == 32)
}

/// A peer's node name, made safe to show and log: control and invisible or reordering
/// characters (`storage::path::invisible`: a U+202E turns "evil" around) dropped, at most
/// [`MAX_NAME`] bytes (cut at a character boundary).
pub fn clean_name(name: &str) -> String {
    clip(name, MAX_NAME)
}

/// Text from a peer made safe to show and log: control and invisible characters dropped, at most `max`
/// bytes.
pub fn clip(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text
        .chars()
        .filter(|c| !c.is_control() && !crate::storage::path::invisible(*c))
    {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_proofs_and_names_are_checked() {
        let n = secret::b64(&[7u8; NONCE_BYTES]);
        assert_eq!(decode_nonce(&n), Some([7u8; NONCE_BYTES]));
        assert_eq!(decode_nonce(&secret::b64(&[7u8; 31])), None);
        assert_eq!(decode_nonce("not base64!"), None);
        assert!(decode_proof(&secret::b64(&[1u8; 32])).is_some());
        assert!(decode_proof(&secret::b64(&[1u8; 33])).is_none());
        assert_eq!(clean_name("office\u{1b}[31m\n"), "office[31m");
        assert_eq!(clean_name("\u{202e}evil\u{202c}\u{200b}"), "evil");
        assert_eq!(clean_name(&"é".repeat(40)).len(), 62);
    }
}
