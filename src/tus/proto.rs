//! Pure parsing of tus header values: `Upload-Metadata` and `Upload-Checksum`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtoError {
    #[error("Upload-Metadata: {0}")]
    Metadata(String),
    #[error("Upload-Checksum: {0}")]
    Checksum(String),
    #[error("Upload-Checksum algorithm '{0}' is not supported (use sha1 or sha256)")]
    Algorithm(String),
}

/// Decoded `Upload-Metadata`: keys in the order sent, values base64-decoded (absent for a
/// key sent without a value).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Metadata(Vec<(String, Option<Vec<u8>>)>);

/// Largest `Upload-Metadata` we keep (it is echoed on every HEAD).
pub const MAX_METADATA: usize = 4096;

impl Metadata {
    /// Parses `key base64,key2 base64,key3` (tus 1.0.0, creation extension).
    pub fn parse(header: &str) -> Result<Metadata, ProtoError> {
        let bad = |m: String| ProtoError::Metadata(m);
        if header.len() > MAX_METADATA {
            return Err(bad(format!("longer than {MAX_METADATA} bytes")));
        }
        let mut out: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        if header.trim().is_empty() {
            return Ok(Metadata(out));
        }
        for pair in header.split(',') {
            let pair = pair.trim();
            let mut parts = pair.split(' ');
            let key = parts.next().unwrap_or("");
            let value = parts.next();
            if parts.next().is_some() {
                return Err(bad(format!("'{pair}' is not 'key base64value'")));
            }
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(bad("a key is empty or not printable ASCII".into()));
            }
            if out.iter().any(|(k, _)| k == key) {
                return Err(bad(format!("key '{key}' is repeated")));
            }
            let value = match value {
                None | Some("") => None,
                Some(v) => Some(
                    STANDARD
                        .decode(v)
                        .map_err(|_| bad(format!("the value of '{key}' is not base64")))?,
                ),
            };
            out.push((key.to_string(), value));
        }
        Ok(Metadata(out))
    }

    /// The UTF-8 text of `key` (None when absent or sent without a value).
    pub fn text(&self, key: &str) -> Result<Option<String>, ProtoError> {
        match self.0.iter().find(|(k, _)| k == key) {
            Some((_, Some(v))) => String::from_utf8(v.clone())
                .map(Some)
                .map_err(|_| ProtoError::Metadata(format!("'{key}' is not UTF-8 text"))),
            _ => Ok(None),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumAlgo {
    Sha1,
    Sha256,
}

/// `Upload-Checksum: <algorithm> <base64 digest>` of one PATCH body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub algo: ChecksumAlgo,
    pub digest: Vec<u8>,
}

impl Checksum {
    pub fn parse(header: &str) -> Result<Checksum, ProtoError> {
        let (name, b64) = header
            .trim()
            .split_once(' ')
            .ok_or_else(|| ProtoError::Checksum("expected '<algorithm> <base64>'".into()))?;
        let algo = match name.to_ascii_lowercase().as_str() {
            "sha1" => ChecksumAlgo::Sha1,
            "sha256" => ChecksumAlgo::Sha256,
            _ => return Err(ProtoError::Algorithm(name.chars().take(32).collect())),
        };
        let digest = STANDARD
            .decode(b64.trim())
            .map_err(|_| ProtoError::Checksum("the digest is not base64".into()))?;
        let want = match algo {
            ChecksumAlgo::Sha1 => 20,
            ChecksumAlgo::Sha256 => 32,
        };
        if digest.len() != want {
            return Err(ProtoError::Checksum(format!(
                "a {name} digest has {want} bytes, not {}",
                digest.len()
            )));
        }
        Ok(Checksum { algo, digest })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_as_tus_clients_send_it() {
        let m = Metadata::parse("filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential")
            .unwrap();
        assert_eq!(
            m.text("filename").unwrap().as_deref(),
            Some("world_domination_plan.pdf")
        );
        assert_eq!(m.text("is_confidential").unwrap(), None);
        assert_eq!(m.text("folder").unwrap(), None);
        assert_eq!(Metadata::parse("").unwrap(), Metadata::default());
    }

    #[test]
    fn metadata_refuses_garbage() {
        for bad in [
            "filename not!base64",
            "filename a b",
            ",filename eA==",
            "filename eA==,filename eQ==",
            "k\u{e9}y eA==",
        ] {
            assert!(Metadata::parse(bad).is_err(), "{bad}");
        }
        let m = Metadata::parse("filename /w==").unwrap(); // 0xff: not UTF-8
        assert!(m.text("filename").is_err());
        assert!(Metadata::parse(&"a".repeat(MAX_METADATA + 1)).is_err());
    }

    #[test]
    fn checksums() {
        let c = Checksum::parse("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=").unwrap();
        assert_eq!((c.algo, c.digest.len()), (ChecksumAlgo::Sha1, 20));
        assert!(matches!(
            Checksum::parse("md5 Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
            Err(ProtoError::Algorithm(_))
        ));
        assert!(Checksum::parse("sha256 Kq5sNclPz7QV2+lfQIuc6R7oRu0=").is_err());
        assert!(Checksum::parse("sha1").is_err());
        assert!(Checksum::parse("sha1 ***").is_err());
    }
}
