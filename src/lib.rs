//! streamhub: media streaming and community notes for small Linux boxes.
//!
//! `main.rs` parses the command line, loads [`config::Config`], binds the listeners and calls
//! [`run`]; tests do the same in-process on `127.0.0.1:0`.
#![forbid(unsafe_code)]

pub mod admin_cli;
pub mod app;
pub mod auth;
pub mod blocking;
pub mod config;
pub mod db;
pub mod http;
pub mod library;
pub mod media_types;
pub mod metrics;
pub mod notes;
pub mod range;
pub mod secret;
pub mod storage;
pub mod systemd;
pub mod telemetry;
pub mod tls;
pub mod tus;
pub mod user_cli;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use config::Config;
use http::server::{Limits, Listener};
use storage::local::{Established, LocalOptions, LocalStorage};
use storage::{Storage, StorageError};
use tls::{CertSource, TlsError, TlsState};

/// `node_state` key of the media root's volume id (see `storage::local::identity`).
const VOLUME_KEY: &str = "media_root_volume";

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create {path}: {reason}")]
    Dir { path: PathBuf, reason: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error("library index: {0}")]
    Library(#[from] library::LibraryError),
    #[error("start-up task failed: {0}")]
    Task(String),
}

/// The service, prepared and ready to serve: folders exist, storage is open, the TLS
/// certificate is loaded (or made). Build it before announcing the listeners, so that whatever
/// a client may do after `listening on …` (read the certificate, send a signal) already works.
pub struct Service {
    config: Arc<Config>,
    storage: Arc<dyn Storage>,
    tls: Option<Arc<TlsState>>,
    db: db::Db,
    library: library::Library,
    tus: Arc<tus::Tus>,
    setup_token: Option<String>,
}

impl Service {
    /// Blocking (creates folders, reads or makes key files): call from `spawn_blocking` or
    /// before the runtime serves.
    pub fn prepare(config: Config, needs_tls: bool) -> Result<Self, StartError> {
        std::fs::create_dir_all(&config.server.data_dir).map_err(|e| StartError::Dir {
            path: config.server.data_dir.clone(),
            reason: e.to_string(),
        })?;
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
        // SQLite's locking and fsync are only trustworthy on a local filesystem.
        let data_fs = storage::local::fs_kind_of(&config.server.data_dir);
        if data_fs != "local" {
            tracing::error!(
                data_dir = %config.server.data_dir.display(),
                filesystem = data_fs,
                "THE DATA DIR IS ON A NETWORK FILESYSTEM: the database (accounts, notes) can be \
                 corrupted there; put server.data_dir on a local disk"
            );
        }
        let db = db::Db::open(&config.server.data_dir)?;
        let storage = open_storage(&config, &db)?;
        let library = library::Library::open(
            &config.server.data_dir,
            storage.clone(),
            &config.library,
            config.storage_timeout(),
        )?;
        let tus = Arc::new(tus::Tus::new(
            tus::TusStore::new(db.clone(), config.uploads.tus_expiry_secs),
            storage.clone(),
        ));
        let accounts = auth::Accounts::new(db.clone());
        let setup_token = if accounts
            .user_count()
            .map_err(|e| StartError::Task(e.to_string()))?
            == 0
        {
            let token = secret::random_token();
            tracing::warn!(
                "first run: no users yet. Create the first admin with \
                 POST /api/setup {{\"token\", \"name\", \"password\"}} — setup token: {token} — \
                 or run `streamhub user add NAME --admin`"
            );
            Some(token)
        } else {
            None
        };
        Ok(Service {
            config: Arc::new(config),
            storage,
            tls,
            db,
            library,
            tus,
            setup_token,
        })
    }

    /// Installs the signal handlers now (so a signal sent right after start-up is handled)
    /// and returns the shutdown future: SIGTERM or SIGINT. SIGHUP reloads the certificate.
    /// Must be called inside the runtime.
    pub fn install_signals(&self) -> Result<impl Future<Output = ()> + Send + 'static, StartError> {
        use tokio::signal::unix::{signal, SignalKind};
        let sig = |kind, name: &str| {
            signal(kind).map_err(|e| StartError::Task(format!("cannot handle {name}: {e}")))
        };
        let mut term = sig(SignalKind::terminate(), "SIGTERM")?;
        let mut int = sig(SignalKind::interrupt(), "SIGINT")?;
        let mut hup = sig(SignalKind::hangup(), "SIGHUP")?;
        let tls = self.tls.clone();
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                reload_tls(tls.clone()).await;
            }
        });
        Ok(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
        })
    }

    /// Serves on already-bound `listeners` until `shutdown` resolves, then drains.
    pub async fn serve(self, listeners: Vec<Listener>, shutdown: impl Future<Output = ()> + Send) {
        let config = self.config;
        let scanner_cancel = tokio_util::sync::CancellationToken::new();
        tokio::spawn(self.library.scanner(scanner_cancel.clone()));
        let state = http::AppState::new(
            config.clone(),
            self.storage,
            self.db,
            self.library,
            self.tus.clone(),
            self.setup_token,
        );
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
        tokio::spawn(self.tus.clone().sweep_forever());
        let metrics_app = http::metrics_router(state.clone());
        http::server::serve(
            listeners,
            http::router(state),
            metrics_app,
            limits,
            self.tls,
            shutdown,
        )
        .await;
    }
}

/// Opens the media storage and settles the root's identity against the database: the volume
/// id is recorded the first time, and checked on every start after. A root that is not the
/// recorded volume (an unmounted disk, another disk) does not stop the service: storage
/// reports it (503 for media, `/readyz` says why) and recovers when the disk is back.
fn open_storage(config: &Config, db: &db::Db) -> Result<Arc<dyn Storage>, StartError> {
    let storage = LocalStorage::new(
        &config.storage.media_root,
        LocalOptions {
            allow_symlink_escape: config.storage.allow_symlink_escape,
            timeout: config.storage_timeout(),
            chunk_size: config.streaming.chunk_kib * 1024,
        },
    );
    let recorded = db.state(VOLUME_KEY)?;
    let indexed: u64 = db
        .with(|c| {
            c.query_row("SELECT count(*) FROM media WHERE path <> ''", [], |r| {
                r.get(0)
            })
        })
        .map_err(db::DbError::from)?;
    match storage.establish(recorded.as_deref(), indexed) {
        Ok(Established::Volume(id)) => {
            if recorded.is_none() {
                db.set_state(VOLUME_KEY, &id)?;
            }
            tracing::info!(
                media_root = %config.storage.media_root.display(),
                filesystem = storage.fs_kind(),
                volume = %id,
                "media root ready"
            );
        }
        Ok(Established::Unchecked(why)) => tracing::warn!(
            media_root = %config.storage.media_root.display(),
            "{why}"
        ),
        Err(e) => tracing::error!(
            media_root = %config.storage.media_root.display(),
            error = %e,
            "MEDIA ROOT UNAVAILABLE: media answers 503 until it is back"
        ),
    }
    Ok(Arc::new(storage))
}

async fn reload_tls(tls: Option<Arc<TlsState>>) {
    let Some(tls) = tls else {
        tracing::info!("SIGHUP: no TLS listener, nothing to reload");
        return;
    };
    match tokio::task::spawn_blocking(move || tls.reload()).await {
        Ok(Ok(())) => tracing::info!("SIGHUP: certificate reloaded"),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "SIGHUP: reload failed; keeping the old certificate")
        }
        Err(e) => tracing::error!(error = %e, "SIGHUP: reload task failed"),
    }
}

/// Prepares and serves in one call (for tests and embedding): the caller owns signals.
pub async fn run(
    config: Config,
    listeners: Vec<Listener>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), StartError> {
    let needs_tls = listeners
        .iter()
        .any(|l| l.kind == http::server::ListenerKind::Https);
    let service = tokio::task::spawn_blocking(move || Service::prepare(config, needs_tls))
        .await
        .map_err(|e| StartError::Task(e.to_string()))??;
    service.serve(listeners, shutdown).await;
    Ok(())
}
