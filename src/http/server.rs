//! Connection handling: accept loops for plain and TLS listeners, the limits that keep a small
//! box responsive (connection cap, header and idle timeouts, TLS handshake timeout, accept
//! back-off), hyper's HTTP/1.1 + HTTP/2 server, and graceful drain on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

use super::auth::ConnMeta;
use super::idle::IdleTimeout;
use crate::tls::TlsState;

/// Limits applied to every connection.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
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

fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // The read-buffer cap is the request-head limit (hyper answers 431 past it); it is
        // also hyper's write-queue cap, so a slow reader holds about one chunk in hyper, not
        // the default ~400 KiB.
        .max_buf_size(limits.max_header_bytes)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes as u32)
        .max_concurrent_streams(64)
        .max_send_buf_size(128 * 1024)
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
    shutdown: impl Future<Output = ()>,
) {
    let graceful = Arc::new(GracefulShutdown::new());
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let builder = Arc::new(builder(&limits));
    let mut loops = tokio::task::JoinSet::new();
    for l in listeners {
        let acceptor = if l.kind == ListenerKind::Https {
            match &tls {
                Some(t) => Some(t.acceptor()),
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
            app,
            limits: limits.clone(),
            slots: slots.clone(),
            graceful: graceful.clone(),
            builder: builder.clone(),
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
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    limits: Limits,
    slots: Arc<Semaphore>,
    graceful: Arc<GracefulShutdown>,
    builder: Arc<auto::Builder<TokioExecutor>>,
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
        let _ = stream.set_nodelay(true);
        let watcher = ctx.graceful.watcher();
        let app = ctx.app.clone();
        let builder = ctx.builder.clone();
        let limits = ctx.limits.clone();
        let acceptor = ctx.acceptor.clone();
        let meta = ConnMeta {
            peer,
            tls: acceptor.is_some(),
        };
        tokio::spawn(async move {
            let _permit = permit;
            let io = IdleTimeout::new(stream, limits.idle_timeout);
            let svc = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(meta);
                    app.clone().oneshot(req)
                },
            );
            let result = match acceptor {
                None => {
                    watcher
                        .watch(builder.serve_connection(TokioIo::new(io), svc))
                        .await
                }
                Some(acceptor) => {
                    let tls = match tokio::time::timeout(
                        limits.tls_handshake_timeout,
                        acceptor.accept(io),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "tls handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "tls handshake timed out");
                            return;
                        }
                    };
                    watcher
                        .watch(builder.serve_connection(TokioIo::new(tls), svc))
                        .await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
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
