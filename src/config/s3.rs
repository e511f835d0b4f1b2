//! `[storage] backend` and the `[s3]` section: where media lives when it is in an
//! S3-compatible object store (Garage, MinIO, Ceph RGW, AWS), and the checks that keep a
//! bad value from surfacing only at the first upload (a part size S3 refuses, or too small
//! to reach `uploads.max_bytes` within S3's 10,000 parts).

use serde::{Deserialize, Serialize};

use super::{invalid, Config, ConfigError};

/// S3's smallest part (all but the last); Garage does not enforce it, AWS does.
pub const MIN_PART_MIB: u64 = 5;
/// S3's largest part.
pub const MAX_PART_MIB: u64 = 5 * 1024;
/// S3's most parts in one multipart upload.
pub const MAX_PARTS: u64 = 10_000;
/// SigV4 presigned URLs live at most 7 days.
pub const MAX_PRESIGN_SECS: u64 = 7 * 86_400;

/// `storage.backend` values. A string, not an enum: the first enum in the config would
/// bring serde's enum plumbing for TOML values into the binary (about 20 KB).
pub const BACKENDS: &[&str] = &["local", "s3"];

/// Serde here is the config file's format (TOML). Empty strings mean "not set", so every
/// key exists in the defaults and has a `STREAMHUB_S3_*` override.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// `http://` or `https://` address of the S3 API, e.g. `http://127.0.0.1:3900`.
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    /// Key prefix the media lives under (a folder in the bucket); empty: the whole bucket.
    pub prefix: String,
    /// Falls back to `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// Falls back to `secret_access_key_file`, then `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    pub secret_access_key_file: String,
    /// `endpoint/bucket/key` (self-hosted stores) instead of `bucket.endpoint/key`.
    pub path_style: bool,
    /// Answer media GETs with a 307 to a presigned URL instead of proxying the bytes.
    pub redirect: bool,
    /// Where browsers reach the store in redirect mode; empty: `endpoint`.
    pub public_endpoint: String,
    pub redirect_expiry_secs: u64,
    /// Size of each part of a multipart upload, in MiB (memory held per upload).
    pub part_size_mib: u64,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            endpoint: String::new(),
            region: "garage".to_string(),
            bucket: String::new(),
            prefix: String::new(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            secret_access_key_file: String::new(),
            path_style: true,
            redirect: false,
            public_endpoint: String::new(),
            redirect_expiry_secs: 4 * 3600,
            part_size_mib: 16,
        }
    }
}

impl S3Config {
    /// The prefix as stored keys start with it: empty, or `a/b/`.
    pub fn key_prefix(&self) -> String {
        let p = self.prefix.trim_matches('/');
        if p.is_empty() {
            String::new()
        } else {
            format!("{p}/")
        }
    }

    pub fn part_size(&self) -> u64 {
        self.part_size_mib << 20
    }

    /// The secret key: `secret_access_key`, else the first line of `secret_access_key_file`
    /// (read now, so a rotated file is picked up at the next start).
    pub fn secret(&self) -> Result<String, ConfigError> {
        if !self.secret_access_key.is_empty() {
            return Ok(self.secret_access_key.clone());
        }
        let key = "s3.secret_access_key_file";
        let path = &self.secret_access_key_file;
        let text = std::fs::read_to_string(path).map_err(|e| {
            invalid(
                key,
                format!("cannot read {path}: {}", crate::storage::errno_message(&e)),
            )
        })?;
        let secret = text.lines().next().unwrap_or("").trim().to_string();
        if secret.is_empty() {
            return Err(invalid(key, format!("{path} is empty")));
        }
        Ok(secret)
    }

    /// What is wrong with `secret_access_key_file` being readable by users other than its
    /// owner, as ssh says of a private key; None when it is private (or not in use). A
    /// warning, not a refusal: the project refuses no secret file for its mode, and the
    /// sync identity the service makes itself is only tightened, never refused.
    pub fn secret_file_warning(&self) -> Option<String> {
        use std::os::unix::fs::PermissionsExt;
        let path = &self.secret_access_key_file;
        if !self.secret_access_key.is_empty() || path.is_empty() {
            return None;
        }
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then(|| {
            format!(
                "s3.secret_access_key_file ({path}) is readable by other users (mode \
                 {mode:04o}): whoever reads it can use the store; make it private to the \
                 user the service runs as: chmod 600 {path}; chown streamhub {path}"
            )
        })
    }
}

/// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` fill the keys the file and the
/// `STREAMHUB_S3_*` variables left empty (a secret file counts as set).
pub(super) fn aws_fallbacks(merged: &mut toml::Table, env: &[(String, String)]) {
    let Some(toml::Value::Table(s3)) = merged.get_mut("s3") else {
        return;
    };
    let unset = |s3: &toml::Table, k: &str| s3.get(k).and_then(|v| v.as_str()) == Some("");
    for (var, key) in [
        ("AWS_ACCESS_KEY_ID", "access_key_id"),
        ("AWS_SECRET_ACCESS_KEY", "secret_access_key"),
    ] {
        let mut empty = unset(s3, key);
        if key == "secret_access_key" {
            empty = empty && unset(s3, "secret_access_key_file");
        }
        if let Some((_, v)) = env.iter().find(|(k, _)| k == var) {
            if empty && !v.is_empty() {
                s3.insert(key.to_string(), toml::Value::String(v.clone()));
            }
        }
    }
}

fn endpoint_ok(u: &str) -> bool {
    let rest = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"));
    match rest {
        Some(r) => {
            let host = r.trim_end_matches('/');
            !host.is_empty()
                && !host.contains(['/', '?', '#', '@', ' '])
                && !host.chars().any(char::is_control)
        }
        None => false,
    }
}

impl Config {
    /// `[s3]`, checked only when `storage.backend = "s3"` (the section is inert otherwise).
    pub(super) fn validate_s3(&self) -> Result<(), ConfigError> {
        if !BACKENDS.contains(&self.storage.backend.as_str()) {
            return Err(invalid(
                "storage.backend",
                format!(
                    "'{}' is not a backend: \"local\" or \"s3\"",
                    self.storage.backend
                ),
            ));
        }
        if !self.storage.is_s3() {
            return Ok(());
        }
        let s = &self.s3;
        let url_hint = "an http:// or https:// address with a host and at most a port, \
                        e.g. http://127.0.0.1:3900 (no path: the bucket is s3.bucket)";
        if s.endpoint.is_empty() {
            return Err(invalid(
                "s3.endpoint",
                "must be set when storage.backend = \"s3\"",
            ));
        }
        if !endpoint_ok(&s.endpoint) {
            return Err(invalid("s3.endpoint", url_hint));
        }
        if !s.public_endpoint.is_empty() && !endpoint_ok(&s.public_endpoint) {
            return Err(invalid("s3.public_endpoint", url_hint));
        }
        if s.region.is_empty() {
            return Err(invalid(
                "s3.region",
                "must not be empty (Garage: \"garage\")",
            ));
        }
        // S3 bucket names: 3–63 of lower-case letters, digits, '.', '-'.
        let bucket_ok = (3..=63).contains(&s.bucket.len())
            && s.bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !bucket_ok {
            return Err(invalid(
                "s3.bucket",
                "must be a bucket name: 3 to 63 lower-case letters, digits, '.' or '-'",
            ));
        }
        let p = s.prefix.trim_end_matches('/');
        let bad_part = |seg: &str| seg.is_empty() || seg == "." || seg == "..";
        if s.prefix.starts_with('/')
            || (!p.is_empty() && p.split('/').any(bad_part))
            || p.chars().any(char::is_control)
        {
            return Err(invalid(
                "s3.prefix",
                "must be empty or folder names separated by '/' (no leading '/', no empty, \
                 '.' or '..' part), e.g. \"streamhub/media\"",
            ));
        }
        if s.access_key_id.is_empty() {
            return Err(invalid(
                "s3.access_key_id",
                "must be set (or AWS_ACCESS_KEY_ID) when storage.backend = \"s3\"",
            ));
        }
        match (
            s.secret_access_key.is_empty(),
            s.secret_access_key_file.is_empty(),
        ) {
            (true, true) => {
                return Err(invalid(
                    "s3.secret_access_key",
                    "must be set (or s3.secret_access_key_file, or AWS_SECRET_ACCESS_KEY) \
                     when storage.backend = \"s3\"",
                ))
            }
            (false, false) => {
                return Err(invalid(
                    "s3.secret_access_key_file",
                    "set either s3.secret_access_key or s3.secret_access_key_file, not both",
                ))
            }
            _ => {}
        }
        if !(1..=MAX_PRESIGN_SECS).contains(&s.redirect_expiry_secs) {
            return Err(invalid(
                "s3.redirect_expiry_secs",
                format!("must be between 1 and {MAX_PRESIGN_SECS} (7 days, the most S3 allows)"),
            ));
        }
        if !(MIN_PART_MIB..=MAX_PART_MIB).contains(&s.part_size_mib) {
            return Err(invalid(
                "s3.part_size_mib",
                format!("must be between {MIN_PART_MIB} and {MAX_PART_MIB} (S3's part sizes)"),
            ));
        }
        if s.part_size().saturating_mul(MAX_PARTS) < self.uploads.max_bytes {
            let need = self.uploads.max_bytes.div_ceil(MAX_PARTS).div_ceil(1 << 20);
            return Err(invalid(
                "s3.part_size_mib",
                format!(
                    "{} MiB parts × {MAX_PARTS} (S3's most parts) cannot hold \
                     uploads.max_bytes = {}: use at least {need}",
                    s.part_size_mib, self.uploads.max_bytes
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3_env(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = [
            ("STREAMHUB_STORAGE_BACKEND", "s3"),
            ("STREAMHUB_S3_ENDPOINT", "http://127.0.0.1:3900"),
            ("STREAMHUB_S3_BUCKET", "media"),
            ("STREAMHUB_S3_ACCESS_KEY_ID", "GK1"),
            ("STREAMHUB_S3_SECRET_ACCESS_KEY", "s"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, val) in extra {
            v.retain(|(kk, _)| kk != k);
            v.push((k.to_string(), val.to_string()));
        }
        v
    }

    fn key_of(r: Result<Config, ConfigError>) -> String {
        match r {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected an invalid key, got {other:?}"),
        }
    }

    #[test]
    fn s3_loads_from_env_with_defaults() {
        let c = Config::from_parts(None, s3_env(&[])).expect("valid");
        assert!(c.storage.is_s3());
        assert_eq!(c.s3.part_size_mib, 16);
        assert!(c.s3.path_style);
        assert!(!c.s3.redirect);
        assert_eq!(c.s3.key_prefix(), "");
        let c = Config::from_parts(None, s3_env(&[("STREAMHUB_S3_PREFIX", "a/b/")])).unwrap();
        assert_eq!(c.s3.key_prefix(), "a/b/");
    }

    #[test]
    fn s3_section_is_inert_for_local() {
        let c = Config::from_parts(Some(("f", "[s3]\npart_size_mib = 1\n")), vec![]).unwrap();
        assert_eq!(c.storage.backend, "local");
    }

    #[test]
    fn part_size_bounds() {
        for (v, ok) in [("4", false), ("5", true), ("5120", true), ("5121", false)] {
            // Small parts need a small max_bytes to fit in 10,000 parts.
            let r = Config::from_parts(
                None,
                s3_env(&[
                    ("STREAMHUB_S3_PART_SIZE_MIB", v),
                    ("STREAMHUB_UPLOADS_MAX_BYTES", "1000000"),
                ]),
            );
            assert_eq!(r.is_ok(), ok, "part_size_mib = {v}: {r:?}");
            if !ok {
                assert_eq!(key_of(r), "s3.part_size_mib");
            }
        }
    }

    #[test]
    fn parts_must_cover_max_bytes() {
        // 64 GiB in 5 MiB parts needs 13,108 parts: refused, with the smallest size that fits.
        let r = Config::from_parts(None, s3_env(&[("STREAMHUB_S3_PART_SIZE_MIB", "5")]));
        let Err(ConfigError::Invalid { key, reason }) = r else {
            panic!("expected an error")
        };
        assert_eq!(key, "s3.part_size_mib");
        assert!(reason.contains("at least 7"), "{reason}");
        // Exactly 10,000 full parts is enough.
        let max = (7u64 << 20) * MAX_PARTS;
        let ok = Config::from_parts(
            None,
            s3_env(&[
                ("STREAMHUB_S3_PART_SIZE_MIB", "7"),
                ("STREAMHUB_UPLOADS_MAX_BYTES", &max.to_string()),
            ]),
        );
        assert!(ok.is_ok(), "{ok:?}");
        let over = Config::from_parts(
            None,
            s3_env(&[
                ("STREAMHUB_S3_PART_SIZE_MIB", "7"),
                ("STREAMHUB_UPLOADS_MAX_BYTES", &(max + 1).to_string()),
            ]),
        );
        assert_eq!(key_of(over), "s3.part_size_mib");
    }

    #[test]
    fn bad_values_name_their_key() {
        for (var, val, key) in [
            ("STREAMHUB_S3_ENDPOINT", "", "s3.endpoint"),
            ("STREAMHUB_S3_ENDPOINT", "127.0.0.1:3900", "s3.endpoint"),
            ("STREAMHUB_S3_ENDPOINT", "http://h:1/bucket", "s3.endpoint"),
            (
                "STREAMHUB_S3_PUBLIC_ENDPOINT",
                "ftp://x",
                "s3.public_endpoint",
            ),
            ("STREAMHUB_S3_BUCKET", "", "s3.bucket"),
            ("STREAMHUB_S3_BUCKET", "Media", "s3.bucket"),
            ("STREAMHUB_S3_REGION", "", "s3.region"),
            ("STREAMHUB_S3_PREFIX", "/abs", "s3.prefix"),
            ("STREAMHUB_S3_PREFIX", "a//b", "s3.prefix"),
            ("STREAMHUB_S3_PREFIX", "a/../b", "s3.prefix"),
            ("STREAMHUB_S3_ACCESS_KEY_ID", "", "s3.access_key_id"),
            ("STREAMHUB_S3_SECRET_ACCESS_KEY", "", "s3.secret_access_key"),
            (
                "STREAMHUB_S3_SECRET_ACCESS_KEY_FILE",
                "/x",
                "s3.secret_access_key_file",
            ),
            (
                "STREAMHUB_S3_REDIRECT_EXPIRY_SECS",
                "0",
                "s3.redirect_expiry_secs",
            ),
            (
                "STREAMHUB_S3_REDIRECT_EXPIRY_SECS",
                "604801",
                "s3.redirect_expiry_secs",
            ),
            ("STREAMHUB_STORAGE_BACKEND", "ftp", "storage.backend"),
        ] {
            let r = Config::from_parts(None, s3_env(&[(var, val)]));
            assert_eq!(key_of(r), key, "{var}={val}");
        }
    }

    #[test]
    fn aws_variables_are_fallbacks_only() {
        let aws = |extra: &[(&str, &str)]| {
            let mut e = s3_env(extra);
            e.retain(|(k, _)| {
                k != "STREAMHUB_S3_ACCESS_KEY_ID" && k != "STREAMHUB_S3_SECRET_ACCESS_KEY"
            });
            e.push(("AWS_ACCESS_KEY_ID".into(), "AKIA".into()));
            e.push(("AWS_SECRET_ACCESS_KEY".into(), "awssecret".into()));
            e
        };
        let c = Config::from_parts(None, aws(&[])).expect("valid");
        assert_eq!(c.s3.access_key_id, "AKIA");
        assert_eq!(c.s3.secret_access_key, "awssecret");
        let mut e = aws(&[]);
        e.push(("STREAMHUB_S3_ACCESS_KEY_ID".into(), "mine".into()));
        let c = Config::from_parts(None, e).expect("valid");
        assert_eq!(c.s3.access_key_id, "mine");
        // A secret file wins over the AWS variable (and the two do not clash).
        let c = Config::from_parts(None, aws(&[("STREAMHUB_S3_SECRET_ACCESS_KEY_FILE", "/k")]))
            .expect("valid");
        assert_eq!(c.s3.secret_access_key, "");
    }

    #[test]
    fn secret_comes_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("secret");
        std::fs::write(&f, "s3cr3t\n").unwrap();
        let mut c = S3Config {
            secret_access_key_file: f.display().to_string(),
            ..S3Config::default()
        };
        assert_eq!(c.secret().unwrap(), "s3cr3t");
        c.secret_access_key_file = dir.path().join("nope").display().to_string();
        let Err(ConfigError::Invalid { key, reason }) = c.secret() else {
            panic!("expected an error")
        };
        assert_eq!(key, "s3.secret_access_key_file");
        assert!(reason.contains("nope"), "names the file: {reason}");
    }

    #[test]
    fn a_secret_file_others_can_read_is_warned_about() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("secret");
        std::fs::write(&f, "s3cr3t\n").unwrap();
        let c = S3Config {
            secret_access_key_file: f.display().to_string(),
            ..S3Config::default()
        };
        for (mode, warned) in [(0o600, false), (0o400, false), (0o640, true), (0o644, true)] {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
            let w = c.secret_file_warning();
            assert_eq!(w.is_some(), warned, "{mode:o}: {w:?}");
            if let Some(w) = w {
                assert!(
                    w.contains(&c.secret_access_key_file) && w.contains("chmod 600"),
                    "{w}"
                );
            }
        }
    }

    #[test]
    fn secrets_are_redacted() {
        let c = Config::from_parts(None, s3_env(&[])).unwrap();
        let r = crate::config::redact::redacted(&c).unwrap();
        assert_eq!(r.config["s3"]["secret_access_key"], "<redacted>");
        assert_eq!(r.config["s3"]["access_key_id"], "GK1");
    }
}
