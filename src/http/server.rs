//! Connection handling: accept loops for plain and TLS listeners, the limits that keep a small
//! box responsive (connection cap, per-address cap, a deadline for the first request, header
//! and idle timeouts, TLS handshake timeout, accept back-off, the send budget on every response
//! body), hyper's HTTP/1.1 + HTTP/2 server, and graceful drain on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

use super::auth::ConnMeta;
use super::clients::Clients;
use super::idle::IdleTimeout;
use super::json::BodyDeadline;
use super::sendfile::{SendFrom, SendfileIo};
use super::stall::Conn;
use crate::sync::session::Session;
use crate::sync::tlsconf::ALPN;
use crate::tls::TlsState;

/// Sync connections on the HTTPS listeners: the TLS configuration that presents the node's
/// sync identity and asks for the peer's, and the sync API's router.
pub struct SyncAccept {
    pub config: Arc<rustls::ServerConfig>,
    pub app: Router,
}

/// Limits applied to every connection.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    /// Connections one client address may hold; 0: no per-address limits.
    pub max_connections_per_ip: usize,
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
    /// For bodies read whole (`http::json`); handed to handlers as a `BodyDeadline`.
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    Http,
    Https,
    /// Plain HTTP serving only `/metrics` (`server.metrics_listen`).
    Metrics,
}

/// A bound listener and what it serves.
pub struct Listener {
    pub tcp: TcpListener,
    pub kind: ListenerKind,
}

impl Listener {
    /// The line printed when it is bound, e.g. `listening on https://127.0.0.1:8443`.
    pub fn announce(&self) -> std::io::Result<String> {
        let addr = self.tcp.local_addr()?;
        Ok(match self.kind {
            ListenerKind::Http => format!("listening on http://{addr}"),
            ListenerKind::Https => format!("listening on https://{addr}"),
            ListenerKind::Metrics => format!("metrics on http://{addr}/metrics"),
        })
    }
}

/// How long a member's sync connection may wait for its next request (see `serve`).
const SYNC_KEEP: Duration = Duration::from_secs(90);

fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    builder_with(limits, limits.header_read_timeout)
}

fn builder_with(limits: &Limits, header_read: Duration) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read)
        // The read-buffer cap is the request-head limit (hyper answers 431 past it); it is
        // also hyper's write-queue cap, so a slow reader holds about one chunk in hyper, not
        // the default ~400 KiB.
        .max_buf_size(limits.max_header_bytes)
        // Queued writes keep body frames as they are, which zero-copy sends rely on
        // (`sendfile`): never flatten them into hyper's own buffer.
        .writev(true)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes as u32)
        // Each stream costs its state and, while its window is open, a frame of the send
        // budget; 32 is more than a browser's page of thumbnails needs at once (the rest
        // queue in the client).
        .max_concurrent_streams(32)
        .max_send_buf_size(128 * 1024)
        // What a client may send before we read it: bounded per connection, so a client that
        // opens many connections and stalls our reads holds little.
        .initial_stream_window_size(256 * 1024)
        .initial_connection_window_size(512 * 1024)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

/// Serves `app` on every listener until `shutdown` resolves, then drains in-flight requests
/// for up to `limits.shutdown_grace`.
pub async fn serve(
    listeners: Vec<Listener>,
    app: Router,
    metrics_app: Router,
    limits: Limits,
    tls: Option<Arc<TlsState>>,
    sync: Option<Arc<SyncAccept>>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = Arc::new(GracefulShutdown::new());
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let clients = Clients::new(limits.max_connections_per_ip);
    let (stop_tx, stop_rx) = watch::channel(false);
    let builder = Arc::new(builder(&limits));
    // A member's connection waits between pull rounds (30 s by default) for its next
    // request: hyper's header timeout, which also runs while a kept connection is idle,
    // must outlast that, or every round pays a new handshake.
    let sync_builder = Arc::new(builder_with(&limits, SYNC_KEEP));
    let mut loops = tokio::task::JoinSet::new();
    for l in listeners {
        let acceptor = if l.kind == ListenerKind::Https {
            match &tls {
                Some(t) => Some(t.config.clone()),
                None => {
                    tracing::error!("tls listener without a certificate; not serving it");
                    continue;
                }
            }
        } else {
            None
        };
        let app = if l.kind == ListenerKind::Metrics {
            metrics_app.clone()
        } else {
            app.clone()
        };
        loops.spawn(accept_loop(AcceptCtx {
            tcp: l.tcp,
            acceptor,
            sync: sync.clone(),
            app,
            limits: limits.clone(),
            slots: slots.clone(),
            clients: clients.clone(),
            graceful: graceful.clone(),
            builder: builder.clone(),
            sync_builder: sync_builder.clone(),
            stop: stop_rx.clone(),
        }));
    }
    shutdown.await;
    tracing::info!("shutting down: no new connections, draining in-flight requests");
    let _ = stop_tx.send(true);
    while loops.join_next().await.is_some() {}
    // Accept loops are gone, so only connection watchers hold the graceful handle's receivers.
    let Ok(graceful) = Arc::try_unwrap(graceful) else {
        tracing::warn!("graceful handle still shared; closing without drain");
        return;
    };
    let open = graceful.count();
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!(connections = open, "drained"),
        _ = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!(
                grace_secs = limits.shutdown_grace.as_secs(),
                "grace period over; closing remaining connections"
            );
        }
    }
}

struct AcceptCtx {
    tcp: TcpListener,
    acceptor: Option<Arc<rustls::ServerConfig>>,
    sync: Option<Arc<SyncAccept>>,
    app: Router,
    limits: Limits,
    slots: Arc<Semaphore>,
    clients: Arc<Clients>,
    graceful: Arc<GracefulShutdown>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    sync_builder: Arc<auto::Builder<TokioExecutor>>,
    stop: watch::Receiver<bool>,
}

async fn accept_loop(mut ctx: AcceptCtx) {
    let mut backoff = Duration::from_millis(5);
    loop {
        // Take a slot before accepting: at the cap, clients wait in the kernel's backlog.
        let permit = tokio::select! {
            p = ctx.slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = ctx.stop.changed() => return,
        };
        let accepted = tokio::select! {
            r = ctx.tcp.accept() => r,
            _ = ctx.stop.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => {
                backoff = Duration::from_millis(5);
                x
            }
            Err(e) => {
                // EMFILE/ENFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "accept failed");
                drop(permit);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {},
                    _ = ctx.stop.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Some(client) = ctx.clients.admit(peer.ip(), Some(stream.as_raw_fd())) else {
            tracing::debug!(%peer, "connection refused: this address holds its share of connections");
            if ctx.acceptor.is_none() {
                tokio::spawn(refuse(stream, permit));
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let watcher = ctx.graceful.watcher();
        let app = ctx.app.clone();
        let builder = ctx.builder.clone();
        let sync_builder = ctx.sync_builder.clone();
        let limits = ctx.limits.clone();
        let acceptor = ctx.acceptor.clone();
        let sync = ctx.sync.clone();
        let deadline = BodyDeadline(ctx.limits.body_read_timeout);
        let meta = ConnMeta {
            peer,
            tls: acceptor.is_some(),
        };
        tokio::spawn(async move {
            let _permit = permit;
            let budget = client.budget().clone();
            let stalled = client.conn().clone();
            let _client = client;
            let started = Arc::new(AtomicBool::new(false));
            let service = |app: Router, session: Option<Arc<Session>>, zc: Option<SendFrom>| {
                let started = started.clone();
                hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                    started.store(true, Ordering::Relaxed);
                    req.extensions_mut().insert(meta);
                    req.extensions_mut().insert(deadline);
                    if let Some(s) = &session {
                        req.extensions_mut().insert(s.clone());
                    }
                    if let Some(zc) = &zc {
                        req.extensions_mut().insert(zc.clone());
                    }
                    let response = app.clone().oneshot(req);
                    let budget = budget.clone();
                    async move {
                        response.await.map(|mut res| {
                            // axum gives an empty body `Content-Length: 0`, which hyper
                            // keeps on a HEAD; a 304 has none (RFC 9110 §8.6, attack pass).
                            if res.status() == http::StatusCode::NOT_MODIFIED {
                                res.headers_mut().remove(http::header::CONTENT_LENGTH);
                            }
                            res.map(|body| budget.wrap(body))
                        })
                    }
                })
            };
            let first = limits.header_read_timeout;
            let result = match acceptor {
                None => {
                    let (io, zc) = SendfileIo::new(stream);
                    let io = IdleTimeout::new(io, limits.idle_timeout);
                    let svc = service(app, None, Some(zc));
                    let conn = watcher.watch(builder.serve_connection(TokioIo::new(io), svc));
                    close_unless(first, || started.load(Ordering::Relaxed), &stalled, conn).await
                }
                Some(config) => {
                    let Some((tls, session)) = handshake(
                        IdleTimeout::new(stream, limits.idle_timeout),
                        config,
                        sync.as_deref(),
                        limits.tls_handshake_timeout,
                        peer,
                    )
                    .await
                    else {
                        return;
                    };
                    match (session, &sync) {
                        (Some(s), Some(sync)) => {
                            let svc = service(sync.app.clone(), Some(s.clone()), None);
                            let conn = watcher
                                .watch(sync_builder.serve_connection(TokioIo::new(tls), svc));
                            close_unless(first, || s.member().is_ok(), &stalled, conn).await
                        }
                        _ => {
                            let svc = service(app, None, None);
                            let conn =
                                watcher.watch(builder.serve_connection(TokioIo::new(tls), svc));
                            close_unless(first, || started.load(Ordering::Relaxed), &stalled, conn)
                                .await
                        }
                    }
                }
            };
            match result {
                Some(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "connection ended with an error")
                }
                None => tracing::debug!(%peer, "no request within the header timeout; closed"),
                Some(Ok(())) => {}
            }
        });
    }
}

/// The TLS handshake, with the configuration the client's hello asks for: the sync one when
/// it offers the sync ALPN (and this node is in a cluster), the user-facing one otherwise.
/// A sync connection comes with its session, named by the client certificate's hash.
async fn handshake(
    io: IdleTimeout<TcpStream>,
    config: Arc<rustls::ServerConfig>,
    sync: Option<&SyncAccept>,
    limit: Duration,
    peer: SocketAddr,
) -> Option<(
    tokio_rustls::server::TlsStream<IdleTimeout<TcpStream>>,
    Option<Arc<Session>>,
)> {
    let shake = async {
        let start =
            tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io).await?;
        let wants_sync = start
            .client_hello()
            .alpn()
            .is_some_and(|mut offered| offered.any(|p| p == ALPN));
        match sync.filter(|_| wants_sync) {
            Some(sync) => {
                let tls = start.into_stream(sync.config.clone()).await?;
                // The configuration demands a certificate: a handshake without one fails
                // before this, so none here is a bug to refuse, not a connection to serve.
                let id = crate::sync::tlsconf::peer_id(tls.get_ref().1.peer_certificates())
                    .ok_or_else(|| {
                        std::io::Error::other("sync connection without a certificate")
                    })?;
                Ok::<_, std::io::Error>((tls, Some(Arc::new(Session::new(id)))))
            }
            None => Ok((start.into_stream(config).await?, None)),
        }
    };
    match tokio::time::timeout(limit, shake).await {
        Ok(Ok((tls, session))) => Some((tls, session)),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "tls handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "tls handshake timed out");
            None
        }
    }
}

/// Runs `conn` but closes it (`None`) when, at `limit`, `keep` says no: a client that
/// connects and says nothing must not hold a slot for the idle timeout (`keep`: a request
/// has started — hyper's own header timeout starts only once it reads a request, and the
/// protocol sniffing of HTTP/2 before it waits without one), and only a peer that proved
/// membership may keep a sync connection open between requests (`keep`: it is a member;
/// `SYNC_KEEP`).
async fn close_unless<F, E>(
    limit: Duration,
    keep: impl FnOnce() -> bool,
    stalled: &Conn,
    conn: F,
) -> Option<Result<(), E>>
where
    F: Future<Output = Result<(), E>>,
{
    // A connection the stall scan closes ends here: dropping it frees the frames it held
    // (`stall`, which logs it).
    tokio::pin!(conn);
    tokio::select! {
        r = &mut conn => return Some(r),
        _ = tokio::time::sleep(limit) => {}
        _ = stalled.closed() => return Some(Ok(())),
    }
    if !keep() {
        return None;
    }
    tokio::select! {
        r = conn => Some(r),
        _ = stalled.closed() => Some(Ok(())),
    }
}

/// A plain-HTTP client over its address's share of connections gets a 429 it can read, then
/// the connection is closed. The global slot is held until then (at most a second), so a
/// flood of refused connections is bounded like any other.
async fn refuse(mut stream: TcpStream, permit: OwnedSemaphorePermit) {
    const BODY: &str = "{\"error\":\"too_many_connections\",\"message\":\"this address has too many connections open (server.max_connections_per_ip); close some and retry\"}";
    let head = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 5\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(BODY.as_bytes()).await?;
        stream.shutdown().await?;
        // Read what the client sent until it closes, so the close is a FIN after our answer
        // rather than a reset that could discard it.
        let mut sink = [0u8; 1024];
        loop {
            let n = tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await?;
            if n == 0 {
                break;
            }
        }
        Ok::<(), std::io::Error>(())
    })
    .await;
    drop(permit);
}

/// Binds every address; a failure names the address.
pub async fn bind(
    addrs: &[SocketAddr],
    kind: ListenerKind,
) -> Result<Vec<Listener>, (SocketAddr, std::io::Error)> {
    let mut out = Vec::new();
    for a in addrs {
        let tcp = TcpListener::bind(a).await.map_err(|e| (*a, e))?;
        out.push(Listener { tcp, kind });
    }
    Ok(out)
}
