//! The semantic checks of a loaded config that types alone do not express (ranges, pairs that
//! go together, a parseable log filter); every error names its key.

use super::{invalid, Config, ConfigError};

/// The most unfinished tus uploads a limit may allow (each is a row and a staging file).
pub const MAX_TUS_UPLOADS: u64 = 1_000_000;

impl Config {
    /// Semantic checks that types alone do not express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if s.listen.is_empty() && s.tls_listen.is_empty() {
            return Err(invalid(
                "server.listen",
                "no listen address: set server.listen or server.tls_listen",
            ));
        }
        if s.data_dir.as_os_str().is_empty() {
            return Err(invalid("server.data_dir", "must not be empty"));
        }
        if s.tls_cert.is_empty() != s.tls_key.is_empty() {
            return Err(invalid(
                "server.tls_cert",
                "tls_cert and tls_key must be set together (or both left empty)",
            ));
        }
        if !s.public_url.is_empty() && !public_url_ok(&s.public_url) {
            return Err(invalid(
                "server.public_url",
                "an http:// or https:// address with a host and at most a port, e.g. \
                 https://pi.local:8443 (no path, query or spaces)",
            ));
        }
        if s.max_connections == 0 {
            return Err(invalid("server.max_connections", "must be at least 1"));
        }
        if !(8192..=1 << 20).contains(&s.max_header_bytes) {
            return Err(invalid(
                "server.max_header_bytes",
                "must be between 8192 and 1048576",
            ));
        }
        for (key, v) in [
            (
                "server.header_read_timeout_secs",
                s.header_read_timeout_secs,
            ),
            ("server.body_read_timeout_secs", s.body_read_timeout_secs),
            ("server.idle_timeout_secs", s.idle_timeout_secs),
            (
                "server.tls_handshake_timeout_secs",
                s.tls_handshake_timeout_secs,
            ),
            ("storage.timeout_secs", self.storage.timeout_secs),
        ] {
            if v == 0 || v > 86_400 {
                return Err(invalid(key, "must be between 1 and 86400 seconds"));
            }
        }
        if s.shutdown_grace_secs > 3600 {
            return Err(invalid(
                "server.shutdown_grace_secs",
                "must be at most 3600 seconds",
            ));
        }
        // The runtime's blocking pool has 128 threads (`main`): storage (these, and half as
        // many upload writers) never takes the share the database, password hashing and the
        // rest need.
        if !(1..=64).contains(&self.storage.max_threads) {
            return Err(invalid("storage.max_threads", "must be between 1 and 64"));
        }
        if self.storage.media_root.as_os_str().is_empty() {
            return Err(invalid("storage.media_root", "must not be empty"));
        }
        if !(1..=1000).contains(&self.streaming.max_ranges) {
            return Err(invalid(
                "streaming.max_ranges",
                "must be between 1 and 1000",
            ));
        }
        if !(8..=1024).contains(&self.streaming.chunk_kib) {
            return Err(invalid("streaming.chunk_kib", "must be between 8 and 1024"));
        }
        if self.uploads.max_bytes == 0 {
            return Err(invalid("uploads.max_bytes", "must be at least 1"));
        }
        if !(1..=365 * 86400).contains(&self.uploads.tus_expiry_secs) {
            return Err(invalid(
                "uploads.tus_expiry_secs",
                "must be between 1 and 31536000 (a year)",
            ));
        }
        // Stored and summed as SQLite integers (i64).
        for (key, v) in [
            ("quotas.media_bytes", self.quotas.media_bytes),
            ("quotas.notes_bytes", self.quotas.notes_bytes),
            ("quotas.min_free_bytes", self.quotas.min_free_bytes),
        ] {
            if v > i64::MAX as u64 {
                return Err(invalid(key, format!("must be at most {}", i64::MAX)));
            }
        }
        if self.quotas.tus_uploads > MAX_TUS_UPLOADS {
            return Err(invalid(
                "quotas.tus_uploads",
                format!("must be between 0 (unlimited) and {MAX_TUS_UPLOADS}"),
            ));
        }
        if self.library.scan_interval_secs != 0 && self.library.scan_interval_secs < 10 {
            return Err(invalid(
                "library.scan_interval_secs",
                "must be 0 (no periodic scan) or at least 10",
            ));
        }
        if !(1..=3600).contains(&self.library.probe_timeout_secs) {
            return Err(invalid(
                "library.probe_timeout_secs",
                "must be between 1 and 3600",
            ));
        }
        for (key, v, max) in [
            ("notes.max_title_chars", self.notes.max_title_chars, 10_000),
            ("notes.max_body_bytes", self.notes.max_body_bytes, 4 << 20),
            ("notes.max_tags", self.notes.max_tags, 1000),
            ("notes.max_tag_chars", self.notes.max_tag_chars, 1000),
        ] {
            if !(1..=max).contains(&v) {
                return Err(invalid(key, format!("must be between 1 and {max}")));
            }
        }
        if !(1..=365).contains(&self.auth.session_days) {
            return Err(invalid("auth.session_days", "must be between 1 and 365"));
        }
        if !(1..=1000).contains(&self.auth.login_max_failures) {
            return Err(invalid(
                "auth.login_max_failures",
                "must be between 1 and 1000",
            ));
        }
        if !(1..=900).contains(&self.auth.login_lockout_secs) {
            return Err(invalid(
                "auth.login_lockout_secs",
                "must be between 1 and 900",
            ));
        }
        self.validate_peers()?;
        self.validate_s3()?;
        if crate::telemetry::parse_filter(&self.log.level).is_none() {
            return Err(invalid(
                "log.level",
                format!("'{}' is not a log level or filter", self.log.level),
            ));
        }
        Ok(())
    }
}

impl Config {
    /// `[sync]` and `[discovery]`.
    fn validate_peers(&self) -> Result<(), ConfigError> {
        let key = &self.sync.cluster_key;
        if !key.is_empty() {
            crate::sync::ClusterKey::parse(key)
                .map_err(|e| invalid("sync.cluster_key", e.to_string()))?;
        }
        if self.sync.peers.len() > MAX_STATIC_PEERS {
            return Err(invalid(
                "sync.peers",
                format!("at most {MAX_STATIC_PEERS} static peers"),
            ));
        }
        for p in &self.sync.peers {
            if !peer_address_ok(p) {
                return Err(invalid(
                    "sync.peers",
                    format!(
                        "'{p}' is not host:port (a name, an IPv4 address or an [IPv6] address, \
                         and the peer's HTTPS port), e.g. \"office.local:8443\""
                    ),
                ));
            }
        }
        if !(1..=86_400).contains(&self.sync.interval_secs) {
            return Err(invalid(
                "sync.interval_secs",
                "must be between 1 and 86400 seconds",
            ));
        }
        if !(1..=MAX_CLOCK_SKEW_SECS).contains(&self.sync.max_clock_skew_secs) {
            return Err(invalid(
                "sync.max_clock_skew_secs",
                format!("must be between 1 and {MAX_CLOCK_SKEW_SECS} seconds (ten years)"),
            ));
        }
        for name in &self.discovery.interfaces {
            // IFNAMSIZ is 16 with the NUL; '/' and spaces are never in an interface name.
            if name.is_empty()
                || name.len() > 15
                || name
                    .bytes()
                    .any(|b| b == b'/' || b.is_ascii_whitespace() || b.is_ascii_control())
            {
                return Err(invalid(
                    "discovery.interfaces",
                    format!("'{name}' is not a network interface name (e.g. \"eth0\")"),
                ));
            }
        }
        let name = &self.discovery.name;
        if name.len() > crate::discovery::advert::MAX_NODE_NAME
            || name.chars().any(char::is_control)
        {
            return Err(invalid(
                "discovery.name",
                format!(
                    "at most {} bytes, no control characters",
                    crate::discovery::advert::MAX_NODE_NAME
                ),
            ));
        }
        Ok(())
    }
}

/// The most static peers (`sync.peers`).
pub const MAX_STATIC_PEERS: usize = 64;
/// The largest `sync.max_clock_skew_secs`: ten years.
const MAX_CLOCK_SKEW_SECS: u64 = 10 * 365 * 86_400;

/// `host:port` with a port from 1 and a host that is a DNS name, an IPv4 address or a
/// bracketed IPv6 address.
fn peer_address_ok(p: &str) -> bool {
    let Some((host, port)) = p.rsplit_once(':') else {
        return false;
    };
    if !matches!(port.parse::<u16>(), Ok(1..)) {
        return false;
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// `scheme://host[:port]` with an optional trailing slash: share links are this plus
/// `/s/<token>`, so anything else would make links that lead nowhere.
fn public_url_ok(u: &str) -> bool {
    let Some(rest) = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
    else {
        return false;
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    !rest.is_empty()
        && !rest.starts_with(':')
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}
