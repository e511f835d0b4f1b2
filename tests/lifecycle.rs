//! The service's lifecycle in-process, through the same entry point as the binary
//! (`streamhub::run` → `Service::prepare` → `Service::serve`): it serves a request on
//! `127.0.0.1:0`, and when shutdown is triggered it drains and ends every background task
//! within the grace period.

use std::time::{Duration, Instant};

use streamhub::config::Config;
use streamhub::http::server::{bind, ListenerKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const GRACE_SECS: u64 = 3;

/// One HTTP/1.1 request on a fresh connection; the whole response as text.
async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_then_drains_and_ends_its_background_tasks_within_the_grace() {
    let media = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(media.path().join("hello.txt"), "hello").unwrap();
    let mut config = Config::default();
    config.storage.media_root = media.path().to_path_buf();
    config.server.data_dir = data.path().to_path_buf();
    config.server.tls_listen = Vec::new();
    config.server.metrics_listen = Vec::new();
    config.server.shutdown_grace_secs = GRACE_SECS;
    config.discovery.enabled = false;

    let listeners = bind(&["127.0.0.1:0".parse().unwrap()], ListenerKind::Http)
        .await
        .unwrap();
    let addr = listeners[0].tcp.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(streamhub::run(config, listeners, async {
        let _ = stop_rx.await;
    }));

    let resp = get(addr, "/healthz").await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains(r#"{"status":"ok"}"#), "{resp}");

    let asked = Instant::now();
    stop_tx.send(()).unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(GRACE_SECS), service)
        .await
        .expect("run returned within the grace period")
        .expect("the service task did not panic")
        .expect("the service started");
    assert!(asked.elapsed() < Duration::from_secs(GRACE_SECS));
    assert!(
        stopped.tasks_at_shutdown.contains(&"tus-sweep"),
        "the sweep ran as an owned task: {stopped:?}"
    );
    assert_eq!(stopped.unfinished, Vec::<&str>::new(), "every task ended");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}
