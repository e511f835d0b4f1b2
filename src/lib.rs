//! streamhub: media streaming and community notes for small Linux boxes.
//!
//! `main.rs` parses the command line, loads [`config::Config`] and calls [`serve`], which
//! prepares the service, binds and announces the configured listeners and serves until SIGTERM
//! or SIGINT. In-process callers (tests) bring their own listeners and shutdown future to
//! [`run`]; both go through [`Service::prepare`] and [`Service::serve`].
// No unsafe code, with audited exceptions: `memory::trim` and `memory::tune` (glibc calls
// without a safe wrapper in any crate we use), `storage::local::pread` (a read into a
// buffer's spare capacity, which rustix's `preadv2` does not offer),
// `storage::local::region` (`cachestat`, a syscall without a wrapper; the page size) and
// `http::acked::bytes_acked` (`getsockopt(TCP_INFO)`).
#![deny(unsafe_code)]

pub mod app;
pub mod auth;
pub mod blocking;
pub mod cli;
pub mod config;
pub mod db;
pub mod discovery;
pub mod hex;
pub mod http;
pub mod library;
pub mod media_types;
pub mod memory;
pub mod metrics;
pub mod notes;
pub mod open_files;
pub mod peers;
pub mod positions;
pub mod preflight;
pub mod range;
pub mod secret;
pub mod storage;
pub mod subtitles;
pub mod sync;
pub mod systemd;
pub mod tasks;
pub mod telemetry;
pub mod tls;
pub mod tus;

mod serve_lock;
mod start_storage;

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use config::Config;
use http::server::{Limits, Listener, ListenerKind};
use start_storage::{check_data_dir_fs, open_storage};
use storage::{Storage, StorageError};
use tasks::TaskSet;
use tls::{CertSource, TlsError, TlsState};
use tokio_util::sync::CancellationToken;

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
    #[error(transparent)]
    Identity(#[from] sync::IdentityError),
    #[error("library index: {0}")]
    Library(#[from] library::LibraryError),
    #[error("start-up task failed: {0}")]
    Task(String),
    #[error(transparent)]
    Blocking(#[from] blocking::BlockingError),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
    #[error("cannot print the listening addresses: {0}")]
    Announce(std::io::Error),
    #[error(
        "server.data_dir ({path}) is on a {kind} filesystem: the database (accounts, notes) \
         would not be safe there (SQLite's WAL locking and fsync are only reliable on a local \
         disk); put server.data_dir on a local disk (the media root may stay on the network)"
    )]
    DataDirNotLocal { path: PathBuf, kind: &'static str },
    #[error(transparent)]
    Lock(#[from] serve_lock::LockError),
}

/// How a served service ended (returned by [`run`] and [`serve`]; the drain is logged).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Stopped {
    /// The background tasks that were running when the shutdown began.
    pub tasks_at_shutdown: Vec<&'static str>,
    /// Those that had not ended when the grace period was over (logged, then left to the
    /// runtime, which drops them when it shuts down).
    pub unfinished: Vec<&'static str>,
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
    /// The node's sync identity (`<data_dir>/sync/identity.pem`): its id is what peers see.
    identity: sync::NodeIdentity,
    /// Every background task, owned: cancelled when the drain starts, awaited within the
    /// grace period.
    tasks: TaskSet,
    /// This data dir is this service's alone while it runs (`serve_lock`).
    _lock: serve_lock::ServeLock,
}

impl Service {
    /// Blocking (creates folders, reads or makes key files): call from `spawn_blocking` or
    /// before the runtime serves.
    pub fn prepare(config: Config, needs_tls: bool) -> Result<Self, StartError> {
        // Before anything is written there (the folder itself, keys, the database).
        check_data_dir_fs(&config.server.data_dir)?;
        std::fs::create_dir_all(&config.server.data_dir).map_err(|e| StartError::Dir {
            path: config.server.data_dir.clone(),
            reason: e.to_string(),
        })?;
        private_dir(&config.server.data_dir);
        // Before anything in the data dir is read or changed by a second service.
        let lock = serve_lock::take(&config.server.data_dir)?;
        let tls = if needs_tls {
            let source = if config.server.tls_cert.is_empty() {
                CertSource::SelfSigned {
                    dir: config.server.data_dir.join("tls"),
                    listen: config.server.tls_listen.clone(),
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
        // Before the database: a corrupt identity stops the start before anything is served.
        let identity = sync::NodeIdentity::load_or_create(&config.server.data_dir)?;
        let db = db::Db::open(&config.server.data_dir)?;
        let storage = open_storage(&config, &db, identity.id())?;
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
            Some(secret::random_token())
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
            identity,
            tasks: TaskSet::new(),
            _lock: lock,
        })
    }

    /// [`Service::prepare`] on the blocking pool (it creates folders and key files).
    async fn prepare_off_runtime(config: Config, needs_tls: bool) -> Result<Self, StartError> {
        blocking::run_unbounded("prepare", move || Service::prepare(config, needs_tls)).await
    }

    /// The service's task set, for parts that start background work of their own.
    pub fn tasks(&self) -> &TaskSet {
        &self.tasks
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
        // A reload in progress finishes; the loop ends at the next wait for a signal.
        self.tasks.spawn("sighup-reload", |cancel| async move {
            while let Some(Some(())) = cancel.run_until_cancelled(hup.recv()).await {
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

    /// Serves on already-bound `listeners` until `shutdown` resolves, then drains: the
    /// listeners close, in-flight requests get `server.shutdown_grace_secs` to finish, and the
    /// background tasks, cancelled when the drain starts, get what is left of that time.
    pub async fn serve(
        self,
        listeners: Vec<Listener>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Stopped {
        // Held until the drain has ended (the end of this function).
        let _held = self._lock;
        let config = self.config;
        let tasks = self.tasks;
        // Logged once serving starts (the listeners are bound): a start that fails, on a
        // port in use say, does not hand out a token nobody can use.
        if let Some(token) = &self.setup_token {
            tracing::warn!(
                "first run: no users yet. Create the first admin with \
                 POST /api/setup {{\"token\", \"name\", \"password\"}} — setup token: {token} — \
                 or run `streamhub user add NAME --admin` (from a checkout: \
                 `cargo run --release -- user add NAME --admin`)"
            );
        }
        let everywhere = config
            .server
            .listen
            .iter()
            .chain(&config.server.tls_listen)
            .any(|a| a.ip().is_unspecified());
        if everywhere && config.auth.anonymous_read {
            tracing::warn!(
                "listening on every network interface with auth.anonymous_read = true: anyone \
                 on the LAN can read (and download as zip) all media and public notes without \
                 logging in; set auth.anonymous_read = false, or listen on 127.0.0.1 only"
            );
        }
        // The scanner stops at its next checkpoint (between folders or files) when cancelled.
        let library = self.library.clone();
        tasks.spawn("library-scan", move |cancel| library.scanner(cancel));
        let tus = self.tus.clone();
        let mut state = http::AppState::new(
            config.clone(),
            self.storage,
            self.db,
            self.library,
            self.tus,
            self.setup_token,
        );
        let tls_bound: Vec<SocketAddr> = listeners
            .iter()
            .filter(|l| l.kind == ListenerKind::Https)
            .filter_map(|l| l.tcp.local_addr().ok())
            .collect();
        state.parts_mut().peers = discovery::start(
            &config,
            &self.identity,
            self.tls.clone(),
            &tls_bound,
            &tasks,
        );
        let sync = http::sync_api::start(&config, &self.identity, &mut state, &tasks);
        let limits = Limits {
            max_connections: config.server.max_connections,
            max_connections_per_ip: config.server.max_connections_per_ip,
            max_header_bytes: config.server.max_header_bytes,
            header_read_timeout: config.header_read_timeout(),
            body_read_timeout: config.body_read_timeout(),
            idle_timeout: config.idle_timeout(),
            tls_handshake_timeout: config.tls_handshake_timeout(),
            shutdown_grace: config.shutdown_grace(),
        };
        systemd::notify_ready();
        if let Some(watchdog) = systemd::watchdog() {
            tasks.spawn_until_cancelled("systemd-watchdog", watchdog);
        }
        if let Some(tls) = self.tls.clone().filter(|t| t.is_self_signed()) {
            tasks.spawn("tls-names", move |cancel| refresh_tls_names(tls, cancel));
        }
        // Dropped at its next await once cancelled; a sweep already on the blocking pool is
        // one transaction and completes there.
        tasks.spawn_until_cancelled("tus-sweep", tus.sweep_forever());
        tasks.spawn_until_cancelled("malloc-trim", memory::trim_forever());
        tasks.spawn_until_cancelled("trash-sweep", state.files.clone().sweep_trash_forever());
        // The background tasks are cancelled as the drain starts, not after it: none of them
        // serves a request, and discovery's goodbye (and, next, sync) should stop telling
        // peers we are here while connections drain. They share the drain's deadline.
        // The watchdog may stop with them: systemd stops watching once STOPPING=1 is sent.
        let drain_started = OnceLock::new();
        let mut tasks_at_shutdown = Vec::new();
        let shutdown = async {
            shutdown.await;
            let _ = drain_started.set(Instant::now());
            systemd::notify_stopping();
            tasks_at_shutdown = tasks.running();
            tasks.cancel();
        };
        let metrics_app = http::metrics_router(state.clone());
        http::server::serve(
            listeners,
            http::router(state),
            metrics_app,
            limits.clone(),
            self.tls,
            sync,
            shutdown,
        )
        .await;
        let grace = limits.shutdown_grace;
        let left = drain_started
            .get()
            .map_or(grace, |t| grace.saturating_sub(t.elapsed()));
        let unfinished = tasks.stop(left).await;
        Stopped {
            tasks_at_shutdown,
            unfinished,
        }
    }
}

async fn reload_tls(tls: Option<Arc<TlsState>>) {
    let Some(tls) = tls else {
        tracing::info!("SIGHUP: no TLS listener, nothing to reload");
        return;
    };
    let reloaded: Result<(), StartError> =
        blocking::run_unbounded("tls reload", move || Ok(tls.reload()?)).await;
    match reloaded {
        Ok(()) => tracing::info!("SIGHUP: certificate reloaded"),
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: reload failed; keeping the old certificate")
        }
    }
}

/// Every `tls::NAMES_EVERY`, the self-signed certificate is checked against the names wanted
/// then (a DHCP address that came after the start, or changed): replaced and served to new
/// handshakes if it does not cover them. A check in progress finishes; the loop ends at the
/// next wait once cancelled.
async fn refresh_tls_names(tls: Arc<TlsState>, cancel: CancellationToken) {
    let mut every = tokio::time::interval(tls::NAMES_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await; // the first tick is now: the start has just checked
    while cancel.run_until_cancelled(every.tick()).await.is_some() {
        let tls = tls.clone();
        let refreshed: Result<bool, StartError> =
            blocking::run_unbounded("tls names", move || Ok(tls.refresh()?)).await;
        if let Err(e) = refreshed {
            tracing::error!(error = %e, "the self-signed certificate could not be checked or replaced; \
                keeping the one in use");
        }
    }
}

/// The service as the binary runs it, from a loaded config: prepares it, installs the signal
/// handlers, binds the configured listeners (`server.listen`, `tls_listen`, `metrics_listen`),
/// prints one `listening on …` line per listener to stdout in that order, and serves until
/// SIGTERM or SIGINT. Nothing is printed before the certificate, the folders, the database and
/// the signal handlers are ready: a client or supervisor may rely on them from the first line.
pub async fn serve(config: Config) -> Result<Stopped, StartError> {
    let needs_tls = !config.server.tls_listen.is_empty();
    let service = Service::prepare_off_runtime(config.clone(), needs_tls).await?;
    let shutdown = service.install_signals()?;
    let mut listeners = Vec::new();
    for (addrs, kind) in [
        (&config.server.listen, ListenerKind::Http),
        (&config.server.tls_listen, ListenerKind::Https),
        (&config.server.metrics_listen, ListenerKind::Metrics),
    ] {
        let bound =
            http::server::bind(addrs, kind)
                .await
                .map_err(|(addr, e)| StartError::Listen {
                    addr,
                    reason: e.to_string(),
                })?;
        listeners.extend(bound);
    }
    announce(&listeners).map_err(StartError::Announce)?;
    Ok(service.serve(listeners, shutdown).await)
}

/// Writes the `listening on …` lines, flushed: they are the readiness signal. The start's log
/// lines are written first (at most a second's wait on a stalled log output).
fn announce(listeners: &[Listener]) -> std::io::Result<()> {
    telemetry::flush(std::time::Duration::from_secs(1));
    let mut out = std::io::stdout().lock();
    for l in listeners {
        writeln!(out, "{}", l.announce()?)?;
    }
    out.flush()
}

/// Prepares and serves in one call, for in-process callers (tests, embedding) that bring
/// already-bound `listeners` and own the signals: serving ends when `shutdown` resolves.
/// Returns once the drain is over and the background tasks have ended (or the grace period
/// has passed: see [`Stopped::unfinished`]).
pub async fn run(
    config: Config,
    listeners: Vec<Listener>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<Stopped, StartError> {
    let needs_tls = listeners.iter().any(|l| l.kind == ListenerKind::Https);
    let service = Service::prepare_off_runtime(config, needs_tls).await?;
    Ok(service.serve(listeners, shutdown).await)
}

/// The data dir holds the database and the TLS key: 0700, whatever the umask (a folder made
/// by systemd or an admin with other modes is tightened; if that is not allowed, say so).
fn private_dir(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(md) = std::fs::metadata(dir) else {
        return;
    };
    if md.permissions().mode() & 0o077 == 0 {
        return;
    }
    if let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
        tracing::warn!(dir = %dir.display(), error = %storage::errno_message(&e),
            "the data dir is readable by other users and could not be made private");
    }
}
