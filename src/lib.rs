//! streamhub: media streaming and community notes for small Linux boxes.
//!
//! `main.rs` parses the command line, loads [`config::Config`], binds the listeners and calls
//! [`run`]; tests do the same in-process on `127.0.0.1:0`.
#![forbid(unsafe_code)]

pub mod config;
pub mod http;
pub mod media_types;
pub mod range;
pub mod storage;
pub mod systemd;
pub mod telemetry;
pub mod tls;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use config::Config;
use http::server::{Limits, Listener};
use storage::local::{LocalOptions, LocalStorage};
use storage::StorageError;
use tls::{CertSource, TlsError, TlsState};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create {path}: {reason}")]
    Dir { path: PathBuf, reason: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("start-up task failed: {0}")]
    Task(String),
}

/// What `run` builds before serving. Blocking (creates folders, reads or makes key files).
struct Prepared {
    storage: Arc<LocalStorage>,
    tls: Option<Arc<TlsState>>,
}

fn prepare(config: &Config, needs_tls: bool) -> Result<Prepared, StartError> {
    for dir in [&config.storage.media_root, &config.server.data_dir] {
        std::fs::create_dir_all(dir).map_err(|e| StartError::Dir {
            path: dir.clone(),
            reason: e.to_string(),
        })?;
    }
    let storage = LocalStorage::new(
        &config.storage.media_root,
        LocalOptions {
            allow_symlink_escape: config.storage.allow_symlink_escape,
            timeout: config.storage_timeout(),
            chunk_size: config.streaming.chunk_kib * 1024,
        },
    )?;
    let tls = if needs_tls {
        let source = if config.server.tls_cert.is_empty() {
            CertSource::SelfSigned {
                dir: config.server.data_dir.join("tls"),
                names: tls::default_names(&config.server.tls_listen),
            }
        } else {
            CertSource::Files {
                cert: PathBuf::from(&config.server.tls_cert),
                key: PathBuf::from(&config.server.tls_key),
            }
        };
        Some(Arc::new(TlsState::new(source)?))
    } else {
        None
    };
    Ok(Prepared {
        storage: Arc::new(storage),
        tls,
    })
}

/// Serves on already-bound `listeners` until `shutdown` resolves, then drains.
pub async fn run(
    config: Config,
    listeners: Vec<Listener>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), StartError> {
    let config = Arc::new(config);
    let needs_tls = listeners.iter().any(|l| l.tls);
    let prepared = {
        let c = config.clone();
        tokio::task::spawn_blocking(move || prepare(&c, needs_tls))
            .await
            .map_err(|e| StartError::Task(e.to_string()))??
    };
    let state = http::AppState {
        storage: prepared.storage,
        config: config.clone(),
        data_dir: config.server.data_dir.clone(),
    };
    if let Some(tls) = &prepared.tls {
        spawn_reload_on_sighup(tls.clone());
    }
    let limits = Limits {
        max_connections: config.server.max_connections,
        max_header_bytes: config.server.max_header_bytes,
        header_read_timeout: config.header_read_timeout(),
        idle_timeout: config.idle_timeout(),
        tls_handshake_timeout: config.tls_handshake_timeout(),
        shutdown_grace: config.shutdown_grace(),
    };
    systemd::notify_ready();
    systemd::spawn_watchdog();
    let shutdown = async {
        shutdown.await;
        systemd::notify_stopping();
    };
    http::server::serve(
        listeners,
        http::router(state),
        limits,
        prepared.tls,
        shutdown,
    )
    .await;
    Ok(())
}

fn spawn_reload_on_sighup(tls: Arc<TlsState>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; certificate reload disabled");
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let t = tls.clone();
            match tokio::task::spawn_blocking(move || t.reload()).await {
                Ok(Ok(())) => tracing::info!("SIGHUP: certificate reloaded"),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "SIGHUP: reload failed; keeping the old certificate")
                }
                Err(e) => tracing::error!(error = %e, "SIGHUP: reload task failed"),
            }
        }
    });
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => tracing::info!("SIGTERM received"),
                _ = i.recv() => tracing::info!("SIGINT received"),
            }
        }
        _ => {
            tracing::warn!("cannot install signal handlers; stop with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}
