//! The ceiling for issue 17's range benchmark: the least a hyper 1 server can do per range
//! request, measured the same way as streamhub and nginx (`scripts/bench/ab-ranges.sh`).
//!
//! It reads the whole file into memory once, then answers every GET with `206` and the
//! requested slice of that memory (a `Bytes` slice: no read, no copy before the socket), on the
//! same runtime shape as `serve` (2 worker threads, HTTP/1.1 keep-alive, `TCP_NODELAY`). No
//! routing, no validators, no limits, no logging, no metrics. If this cannot reach nginx's
//! requests per second, nothing built on hyper and tokio can on this machine.
//!
//! With `--read`, each request instead opens the file, reads its range into a new buffer with
//! `pread` and closes it, inline on the worker: the least a server must do that sends file
//! bytes from user memory (hyper has no sendfile). Against nginx, which sends with `sendfile`,
//! this shows what the two copies cost on their own.
//!
//! `cargo run --release --example hyper_ceiling -- FILE 127.0.0.1:PORT [--read]`

use std::convert::Infallible;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(file), Some(addr)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: hyper_ceiling FILE 127.0.0.1:PORT");
    };
    let addr: SocketAddr = addr.parse()?;
    let source = match args.next().as_deref() {
        Some("--read") => Source::File(Arc::new(PathBuf::from(file))),
        None => Source::Memory(Bytes::from(std::fs::read(&file)?)),
        Some(other) => anyhow::bail!("unknown argument {other}"),
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(serve(addr, source))
}

#[derive(Clone)]
enum Source {
    Memory(Bytes),
    File(Arc<PathBuf>),
}

impl Source {
    fn len(&self) -> std::io::Result<u64> {
        match self {
            Source::Memory(data) => Ok(data.len() as u64),
            Source::File(path) => Ok(std::fs::metadata(path.as_path())?.len()),
        }
    }

    /// Bytes `a..=b`, or the whole source when `range` is `None`.
    fn bytes(&self, range: Option<(u64, u64)>) -> std::io::Result<Bytes> {
        match (self, range) {
            (Source::Memory(data), Some((a, b))) => Ok(data.slice(a as usize..=b as usize)),
            (Source::Memory(data), None) => Ok(data.clone()),
            (Source::File(path), range) => {
                let file = std::fs::File::open(path.as_path())?;
                let (a, b) = match range {
                    Some(r) => r,
                    None => (0, file.metadata()?.len().saturating_sub(1)),
                };
                let mut buf = vec![0; (b - a + 1) as usize];
                file.read_exact_at(&mut buf, a)?;
                Ok(Bytes::from(buf))
            }
        }
    }
}

async fn serve(addr: SocketAddr, data: Source) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let data = data.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(req, data.clone()));
            // A client that goes away mid-request is not an error worth reporting here.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

async fn answer(req: Request<Incoming>, data: Source) -> Result<Response<Full<Bytes>>, Infallible> {
    let Ok(len) = data.len() else {
        return Ok(error());
    };
    // A readiness probe (`curl -I`) must not read the whole file in `--read` mode.
    if req.method() == http::Method::HEAD {
        return Ok(Response::new(Full::new(Bytes::new())));
    }
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
        .filter(|&(a, b)| a <= b && b < len);
    let mut response = Response::builder().header(header::ACCEPT_RANGES, "bytes");
    if let Some((a, b)) = range {
        response = response
            .status(StatusCode::PARTIAL_CONTENT)
            .header(header::CONTENT_RANGE, format!("bytes {a}-{b}/{len}"));
    }
    let Ok(body) = data.bytes(range) else {
        return Ok(error());
    };
    Ok(response.body(Full::new(body)).unwrap_or_else(|_| error()))
}

fn error() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}
