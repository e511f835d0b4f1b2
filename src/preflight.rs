//! `streamhub config check`: everything `serve` would refuse at start, found without
//! starting — the configuration itself, the TLS files (exist, parse, the key fits the
//! certificate), the media root and the data dir (there or creatable; the data dir
//! writable and on a local filesystem; the media root a mount point when
//! `storage.require_mount`; the node's sync identity in it usable, when there is one), the
//! S3 secret file readable. Nothing is created or changed.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::storage::errno_message;
use crate::tls::CertSource;

/// Why `serve` would not start with this configuration, naming the key.
#[derive(Debug)]
pub struct Problem {
    pub key: &'static str,
    pub reason: String,
}

/// `key: reason`, or the reason alone when it names the key first (`serve`'s own words).
impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.reason.starts_with(self.key) {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.key, self.reason)
        }
    }
}

impl std::error::Error for Problem {}

fn problem(key: &'static str, reason: impl Into<String>) -> Problem {
    Problem {
        key,
        reason: reason.into(),
    }
}

/// Every problem found (empty: `serve` would start).
pub fn check(config: &Config) -> Vec<Problem> {
    let mut found = Vec::new();
    let s = &config.server;
    if !s.tls_listen.is_empty() {
        let source = if s.tls_cert.is_empty() {
            CertSource::SelfSigned {
                dir: s.data_dir.join("tls"),
                listen: Vec::new(),
            }
        } else {
            CertSource::Files {
                cert: PathBuf::from(&s.tls_cert),
                key: PathBuf::from(&s.tls_key),
            }
        };
        if let Err(e) = source.check() {
            let key = match &e {
                _ if s.tls_cert.is_empty() => "server.data_dir",
                crate::tls::TlsError::File { path, .. } if *path == s.tls_key => "server.tls_key",
                _ => "server.tls_cert",
            };
            found.push(problem(key, e.to_string()));
        }
    }
    if config.storage.is_s3() {
        if let Err(e) = config.s3.secret() {
            found.push(problem("s3.secret_access_key_file", e.to_string()));
        }
    }
    if let Err(e) = dir_usable(&config.storage.media_root, false) {
        found.push(problem("storage.media_root", e));
    } else if config.storage.require_mount && !config.storage.is_s3() {
        // A missing root is no mount either: `serve` refuses both.
        let not_mounted = match std::fs::File::open(&config.storage.media_root) {
            Ok(d) => crate::storage::local::is_mount_point(&d) == Some(false),
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        };
        if not_mounted {
            found.push(problem(
                "storage.media_root",
                crate::storage::local::NOT_A_MOUNT,
            ));
        }
    }
    // The same refusal, in the same words, as `serve` (before anything is written there).
    if let Err(e) = crate::start_storage::check_data_dir_fs(&s.data_dir) {
        found.push(problem("server.data_dir", e.to_string()));
    } else if let Err(e) = dir_usable(&s.data_dir, true) {
        found.push(problem("server.data_dir", e));
    }
    if let Err(e) = crate::sync::NodeIdentity::check(&s.data_dir) {
        found.push(problem("server.data_dir", e.to_string()));
    }
    found
}

/// What `serve` starts with but warns about (the service's log, `config check`'s stderr).
pub fn warnings(config: &Config) -> Vec<String> {
    let mut found = Vec::new();
    if config.storage.is_s3() {
        found.extend(config.s3.secret_file_warning());
    }
    found
}

/// A folder that is there (and writable when `write`), or could be made: its nearest
/// existing ancestor is a writable folder.
fn dir_usable(dir: &Path, write: bool) -> Result<(), String> {
    match std::fs::metadata(dir) {
        Ok(md) if !md.is_dir() => return Err(format!("{} is not a folder", dir.display())),
        Ok(_) => {
            return if write {
                writable(dir).map_err(|e| format!("{} is not writable: {e}", dir.display()))
            } else {
                Ok(())
            }
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!("{}: {}", dir.display(), errno_message(&e)))
        }
        Err(_) => {}
    }
    let mut up = dir.parent();
    while let Some(p) = up.filter(|p| !p.as_os_str().is_empty()) {
        if p.is_dir() {
            return writable(p).map_err(|e| {
                format!(
                    "{} does not exist and cannot be made in {}: {e}",
                    dir.display(),
                    p.display()
                )
            });
        }
        if p.exists() {
            return Err(format!("{} is not a folder", p.display()));
        }
        up = p.parent();
    }
    Ok(())
}

fn writable(dir: &Path) -> Result<(), String> {
    rustix::fs::access(
        dir,
        rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
    )
    .map_err(|e| errno_message(&e.into()))
}
