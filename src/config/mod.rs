//! Configuration: one typed struct, layered as built-in defaults → TOML file → `STREAMHUB_*`
//! environment variables, validated once at start with errors that name the key.
//!
//! The defaults live in `config/streamhub.toml` (embedded with `include_str!`), and a unit test
//! keeps that file and `Config::default()` equal, so the documented defaults cannot drift.
//! `env` reads the `STREAMHUB_*` overrides, `validate` the checks types cannot express.

mod env;
pub mod redact;
mod s3;
mod suggest;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The commented default configuration, printed by `streamhub config default`.
pub const DEFAULT_TOML: &str = include_str!("../../config/streamhub.toml");

pub use env::ENV_PREFIX;
pub use s3::S3Config;
pub use validate::MAX_TUS_UPLOADS;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("{path}: cannot read: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: not valid TOML: {reason}")]
    Syntax { path: String, reason: String },
    /// `key` is the dotted config key (or the environment variable) at fault.
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// Serde here is the config file's format (TOML), not an API answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub s3: S3Config,
    pub streaming: StreamingConfig,
    pub uploads: UploadsConfig,
    pub quotas: QuotasConfig,
    pub library: LibraryConfig,
    pub notes: NotesConfig,
    pub discovery: DiscoveryConfig,
    pub sync: SyncConfig,
    pub auth: AuthConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: Vec<SocketAddr>,
    pub tls_listen: Vec<SocketAddr>,
    pub metrics_listen: Vec<SocketAddr>,
    pub data_dir: PathBuf,
    pub tls_cert: String,
    pub tls_key: String,
    pub public_url: String,
    pub allowed_hosts: Vec<String>,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_header_bytes: usize,
    pub header_read_timeout_secs: u64,
    pub body_read_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    pub tls_handshake_timeout_secs: u64,
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `"local"` or `"s3"` (checked in `validate`).
    pub backend: String,
    pub media_root: PathBuf,
    pub allow_symlink_escape: bool,
    pub timeout_secs: u64,
    pub trash_days: u64,
    /// Storage calls that may run at once (storage's own threads, see `blocking::Pool`).
    pub max_threads: usize,
    /// The media root must be a mount point (an NFS or SMB root).
    pub require_mount: bool,
}

impl StorageConfig {
    /// Media lives in an S3 bucket (`[s3]`), not under `media_root`.
    pub fn is_s3(&self) -> bool {
        self.backend == "s3"
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamingConfig {
    pub max_ranges: usize,
    pub chunk_kib: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadsConfig {
    pub max_bytes: u64,
    pub tus_expiry_secs: u64,
}

/// Per-user limits (each user's own overrides are in the database) and the free-disk
/// reserve. 0 means unlimited for the per-user limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotasConfig {
    pub media_bytes: u64,
    pub tus_uploads: u64,
    pub notes_bytes: u64,
    pub min_free_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LibraryConfig {
    pub scan_interval_secs: u64,
    pub search_rescan_secs: u64,
    pub ffprobe: String,
    pub ffmpeg: String,
    pub thumbnails: bool,
    pub probe_timeout_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotesConfig {
    pub max_title_chars: usize,
    pub max_body_bytes: usize,
    pub max_tags: usize,
    pub max_tag_chars: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryConfig {
    pub enabled: bool,
    /// Interface names; empty: every up, non-loopback, multicast-capable interface.
    pub interfaces: Vec<String>,
    /// The node name people see; empty: the host name.
    pub name: String,
}

/// The cluster this node belongs to and how it reaches its peers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// `streamhub cluster new`'s output; empty: this node is in no cluster.
    pub cluster_key: String,
    /// Static peers, `host:port` (their HTTPS port), for networks without multicast.
    pub peers: Vec<String>,
    pub interval_secs: u64,
    pub max_clock_skew_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub anonymous_read: bool,
    pub session_days: u64,
    pub login_max_failures: u32,
    pub login_lockout_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig {
                listen: vec![SocketAddr::from(([0, 0, 0, 0], 8080))],
                tls_listen: vec![SocketAddr::from(([0, 0, 0, 0], 8443))],
                metrics_listen: Vec::new(),
                data_dir: PathBuf::from("./data"),
                tls_cert: String::new(),
                tls_key: String::new(),
                public_url: String::new(),
                allowed_hosts: Vec::new(),
                max_connections: 1024,
                max_connections_per_ip: 256,
                max_header_bytes: 16384,
                header_read_timeout_secs: 10,
                body_read_timeout_secs: 30,
                idle_timeout_secs: 60,
                tls_handshake_timeout_secs: 10,
                shutdown_grace_secs: 10,
            },
            storage: StorageConfig {
                backend: "local".to_string(),
                media_root: PathBuf::from("./media"),
                allow_symlink_escape: false,
                timeout_secs: 15,
                trash_days: 30,
                max_threads: 32,
                require_mount: false,
            },
            s3: S3Config::default(),
            streaming: StreamingConfig {
                max_ranges: 16,
                chunk_kib: 64,
            },
            uploads: UploadsConfig {
                max_bytes: 64 << 30,
                tus_expiry_secs: 86400,
            },
            quotas: QuotasConfig {
                media_bytes: 0,
                tus_uploads: 20,
                notes_bytes: 0,
                min_free_bytes: 1 << 30,
            },
            library: LibraryConfig {
                scan_interval_secs: 600,
                search_rescan_secs: 30,
                ffprobe: "ffprobe".to_string(),
                ffmpeg: "ffmpeg".to_string(),
                thumbnails: true,
                probe_timeout_secs: 30,
            },
            notes: NotesConfig {
                max_title_chars: 500,
                max_body_bytes: 1024 * 1024,
                max_tags: 64,
                max_tag_chars: 64,
            },
            discovery: DiscoveryConfig {
                enabled: true,
                interfaces: Vec::new(),
                name: String::new(),
            },
            sync: SyncConfig {
                cluster_key: String::new(),
                peers: Vec::new(),
                interval_secs: 30,
                max_clock_skew_secs: 86_400,
            },
            auth: AuthConfig {
                anonymous_read: true,
                session_days: 14,
                login_max_failures: 5,
                login_lockout_secs: 2,
            },
            log: LogConfig {
                level: "info".to_string(),
            },
        }
    }
}

impl Config {
    /// Loads defaults, then `file` (if any), then the `STREAMHUB_*` variables in `env`.
    /// Never writes anything.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let file_text = match file {
            Some(p) => Some((
                p.display().to_string(),
                std::fs::read_to_string(p).map_err(|e| ConfigError::Read {
                    path: p.display().to_string(),
                    reason: crate::storage::errno_message(&e),
                })?,
            )),
            None => None,
        };
        Self::from_parts(
            file_text.as_ref().map(|(p, t)| (p.as_str(), t.as_str())),
            env,
        )
    }

    /// Pure core of [`Config::load`]: `file` is `(name for messages, TOML text)`.
    pub fn from_parts(
        file: Option<(&str, &str)>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut merged = defaults_table();
        if let Some((name, text)) = file {
            let user: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
                path: name.to_string(),
                reason: syntax_reason(text, &e),
            })?;
            merge_file(&mut merged, user)?;
        }
        let env: Vec<(String, String)> = env.into_iter().collect();
        env::apply(&mut merged, env.iter().cloned())?;
        s3::aws_fallbacks(&mut merged, &env);
        let config: Config = serde_path_to_error::deserialize(toml::Value::Table(merged))
            .map_err(|e| invalid(&e.path().to_string(), e.inner().message().to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.server.header_read_timeout_secs)
    }
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_secs(self.server.body_read_timeout_secs)
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.server.idle_timeout_secs)
    }
    pub fn tls_handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.server.tls_handshake_timeout_secs)
    }
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.server.shutdown_grace_secs)
    }
    pub fn storage_timeout(&self) -> Duration {
        Duration::from_secs(self.storage.timeout_secs)
    }
    /// The cluster key, when one is set (validated at load, so a set key parses).
    pub fn cluster_key(&self) -> Option<crate::sync::ClusterKey> {
        crate::sync::ClusterKey::parse(&self.sync.cluster_key).ok()
    }
}

/// The default configuration with an installer's real paths written in, so the CLI on an
/// installed box (which reads the same file as the service) finds the service's database
/// without flags. Paths must be absolute: a relative one is what sent people to the wrong
/// database.
pub fn default_with_paths(
    data_dir: Option<PathBuf>,
    media_root: Option<PathBuf>,
) -> Result<String, ConfigError> {
    let mut text = DEFAULT_TOML.to_string();
    for (key, line, path) in [
        ("server.data_dir", "data_dir = \"./data\"\n", data_dir),
        (
            "storage.media_root",
            "media_root = \"./media\"\n",
            media_root,
        ),
    ] {
        let Some(path) = path else { continue };
        let Some(p) = path.to_str().filter(|_| path.is_absolute()) else {
            return Err(invalid(key, "must be an absolute UTF-8 path"));
        };
        let name = &line[..line.find(' ').unwrap_or(0)];
        let quoted = toml::Value::String(p.to_string()).to_string();
        text = text.replacen(line, &format!("{name} = {quoted}\n"), 1);
    }
    Ok(text)
}

fn defaults_table() -> toml::Table {
    // Serializing our own plain struct cannot fail; an empty table would only make every
    // key "unknown", which the config tests would catch at once.
    toml::Table::try_from(Config::default()).unwrap_or_default()
}

/// Overlays the user's file on the defaults, key by key, so a file may set just one key.
/// toml's message on one line, with where in the file it is (line and column, from 1).
fn syntax_reason(text: &str, e: &toml::de::Error) -> String {
    let what = e.message().trim().replace('\n', "; ");
    let Some(before) = e.span().and_then(|sp| text.get(..sp.start)) else {
        return what;
    };
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("{what} (line {line}, column {column})")
}

fn merge_file(merged: &mut toml::Table, user: toml::Table) -> Result<(), ConfigError> {
    for (section, value) in user {
        if !matches!(merged.get(&section), Some(toml::Value::Table(_))) {
            let hint = suggest::closest(&section, merged.keys().map(String::as_str));
            return Err(invalid(
                &section,
                suggest::with_hint("unknown section", hint.map(|h| format!("[{h}]"))),
            ));
        }
        let Some(toml::Value::Table(target)) = merged.get_mut(&section) else {
            return Err(invalid(&section, "unknown section"));
        };
        let toml::Value::Table(keys) = value else {
            return Err(invalid(&section, "must be a [section] table"));
        };
        for (key, v) in keys {
            if !target.contains_key(&key) {
                let hint = suggest::closest(&key, target.keys().map(String::as_str))
                    .map(|h| format!("{section}.{h}"));
                return Err(invalid(
                    &format!("{section}.{key}"),
                    suggest::with_hint("unknown key", hint),
                ));
            }
            target.insert(key, v);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
