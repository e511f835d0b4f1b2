//! What `streamhub config check` says beside `config ok`: where the configuration came from,
//! and facts a valid configuration may still surprise with.

/// What `config check` read: the file (or none) and the variables that override it.
pub fn sources(file: Option<&std::path::Path>) -> String {
    let file = match file {
        Some(f) => format!("read {}", f.display()),
        None => format!(
            "no config file ({} does not exist): the built-in defaults",
            super::SYSTEM_CONFIG
        ),
    };
    let mut vars: Vec<String> = std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("STREAMHUB_"))
        .collect();
    vars.sort();
    if vars.is_empty() {
        format!("{file}, no STREAMHUB_* variables")
    } else {
        format!("{file}, overridden by {}", vars.join(" "))
    }
}

/// Facts a valid configuration may still surprise with, on stderr so `config ok` stays the
/// one line scripts read: that peers are listed but the box is in no cluster (a single box
/// needs no key, so it hears nothing of it), and that systemd's environment file (where the
/// deploy guide offers to put the cluster key) is not read by this command, and that an S3
/// store is not contacted.
pub fn notes(cfg: &crate::config::Config) {
    if cfg.storage.backend == "s3" {
        eprintln!(
            "note: the S3 store was not contacted: the endpoint, the credentials, the region \
             and the bucket are checked when `serve` starts, which names the key that is wrong"
        );
    }
    if cfg.sync.cluster_key.is_empty() && !cfg.sync.peers.is_empty() {
        eprintln!(
            "note: sync.peers is set but sync.cluster_key is empty: this box is in no cluster \
             and syncs with none of them (streamhub cluster new)"
        );
    }
    let env_file = std::path::Path::new("/etc/streamhub/streamhub.env");
    if env_file.exists() {
        eprintln!(
            "note: {} is read by systemd for the service, not by this command; to check it too: \
             sudo sh -c 'set -a; . {0}; streamhub config check'",
            env_file.display()
        );
    }
}
