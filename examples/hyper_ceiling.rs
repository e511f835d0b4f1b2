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
//! With `--sendfile`, each request opens the file and the range goes out with `sendfile(2)`,
//! inline on the worker, as nginx sends it: hyper is handed a placeholder body of the range's
//! length (a slice of one reserved, never-sent buffer), and the connection's writer, meeting
//! that slice in a `writev`, sends the file region in its place. What a hyper server gains
//! from zero-copy sends, before any of streamhub's own work.
//!
//! With `--open-once` after `--read` or `--sendfile`, the file is opened (and its length
//! taken) once at start, as a server with a cache of open files would (nginx's
//! `open_file_cache`, off in the benchmark): no open, stat or close per request, only the
//! read or the sendfile.
//!
//! With `--guarded` after `--sendfile`, each request opens the file as streamhub must to keep
//! its guarantees, and no more: the media root by its path (`openat2`, dentry cache only), its
//! device checked (`fstat`: an unmounted disk is never read), the file beneath it (`openat2`
//! with `RESOLVE_BENEATH | NO_XDEV | NO_SYMLINKS`), its `statx`, the root closed, and the two
//! `cachestat(2)` checks of a zero-copy send (at the frame, at the write). What those
//! guarantees cost a bare server, against nginx, which checks none of them.
//!
//! `cargo run --release --example hyper_ceiling -- FILE 127.0.0.1:PORT [--read|--sendfile [--open-once|--guarded]]`

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
    let mode = args.next();
    let at = match args.next().as_deref() {
        None => FileAt::Path(Arc::new(PathBuf::from(&file))),
        Some("--open-once") => {
            let f = std::fs::File::open(&file)?;
            let len = f.metadata()?.len();
            FileAt::Open(Arc::new(f), len)
        }
        Some("--guarded") => {
            use std::os::unix::fs::MetadataExt;
            let path = PathBuf::from(&file).canonicalize()?;
            let (Some(root), Some(name)) = (path.parent(), path.file_name()) else {
                anyhow::bail!("{file}: not a file in a folder");
            };
            let dev = std::fs::metadata(root)?.dev();
            let name = name.to_string_lossy().into_owned();
            FileAt::Guarded(Arc::new((root.to_path_buf(), name, dev)))
        }
        Some(other) => anyhow::bail!("unknown argument {other}"),
    };
    let source = match mode.as_deref() {
        Some("--read") => Source::File(at),
        Some("--sendfile") => Source::Sendfile(at),
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
    File(FileAt),
    Sendfile(FileAt),
}

/// The file, opened per request (`Path`), once (`Open`, with its length), or per request
/// beneath its folder's checked device (`Guarded`: the folder, the file's name, the device).
#[derive(Clone)]
enum FileAt {
    Path(Arc<PathBuf>),
    Open(Arc<std::fs::File>, u64),
    Guarded(Arc<(PathBuf, String, u64)>),
}

impl FileAt {
    fn open(&self) -> std::io::Result<Arc<std::fs::File>> {
        match self {
            FileAt::Path(p) => Ok(Arc::new(std::fs::File::open(p.as_path())?)),
            FileAt::Open(f, _) => Ok(f.clone()),
            FileAt::Guarded(g) => {
                use rustix::fs::{fstat, openat2, Mode, OFlags, ResolveFlags};
                let (root, name, dev) = &**g;
                let dir = openat2(
                    rustix::fs::CWD,
                    root,
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                    ResolveFlags::CACHED,
                )?;
                if fstat(&dir)?.st_dev != *dev {
                    return Err(std::io::Error::other("another volume"));
                }
                let how = ResolveFlags::CACHED
                    | ResolveFlags::NO_XDEV
                    | ResolveFlags::NO_MAGICLINKS
                    | ResolveFlags::NO_SYMLINKS
                    | ResolveFlags::BENEATH;
                let fd = openat2(
                    &dir,
                    name.as_str(),
                    OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
                    Mode::empty(),
                    how,
                )?;
                Ok(Arc::new(std::fs::File::from(fd)))
            }
        }
    }

    /// The open file and its length, as a request sees them.
    fn open_len(&self) -> std::io::Result<(Arc<std::fs::File>, u64)> {
        match self {
            FileAt::Open(f, len) => Ok((f.clone(), *len)),
            _ => {
                let f = self.open()?;
                let len = f.metadata()?.len();
                Ok((f, len))
            }
        }
    }
}

/// Pages of `len` bytes at `off` in the page cache (`cachestat(2)`), as streamhub asks.
fn cachestat(file: &std::fs::File, off: u64, len: u64) -> std::io::Result<u64> {
    use std::os::fd::AsRawFd;
    let range = [off, len];
    let mut stat = [0u64; 5];
    // SAFETY: both buffers are live and laid out as the kernel's structs (u64 fields).
    let r = unsafe {
        libc::syscall(
            451,
            file.as_raw_fd(),
            range.as_ptr(),
            stat.as_mut_ptr(),
            0u32,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stat[0])
}

impl Source {
    fn len(&self) -> std::io::Result<u64> {
        match self {
            Source::Memory(data) => Ok(data.len() as u64),
            Source::File(FileAt::Path(p)) => Ok(std::fs::metadata(p.as_path())?.len()),
            Source::File(at) | Source::Sendfile(at) => Ok(at.open_len()?.1),
        }
    }

    /// Bytes `a..=b`, or the whole source when `range` is `None`.
    fn bytes(&self, range: Option<(u64, u64)>) -> std::io::Result<Bytes> {
        match (self, range) {
            (Source::Memory(data), Some((a, b))) => Ok(data.slice(a as usize..=b as usize)),
            (Source::Memory(data), None) => Ok(data.clone()),
            (Source::Sendfile(_), _) => Err(std::io::Error::other("sent by `region`")),
            (Source::File(at), range) => {
                let file = at.open()?;
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
            let regions = Regions::default();
            let queue = regions.clone();
            let service = service_fn(move |req| answer(req, data.clone(), queue.clone()));
            // A client that goes away mid-request is not an error worth reporting here.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(SendfileIo { tcp, regions }), service)
                .await;
        });
    }
}

async fn answer(
    req: Request<Incoming>,
    data: Source,
    regions: Regions,
) -> Result<Response<Full<Bytes>>, Infallible> {
    // `--sendfile` opens once per request and takes the length from the open file.
    let (len, opened) = match &data {
        Source::Sendfile(at) => match at.open_len() {
            Ok((f, len)) => (len, Some(f)),
            Err(_) => return Ok(error()),
        },
        _ => match data.len() {
            Ok(len) => (len, None),
            Err(_) => return Ok(error()),
        },
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
    if let (Source::Sendfile(at), Some(file), Some((a, b))) = (&data, opened, range) {
        let len = (b - a + 1) as usize;
        if matches!(at, FileAt::Guarded(_)) {
            // streamhub's two checks: at the frame and at the write.
            for _ in 0..2 {
                if cachestat(&file, a, len as u64).is_err() {
                    return Ok(error());
                }
            }
        }
        if len > PLACEHOLDER_LEN {
            return Ok(error());
        }
        lock(&regions).push_back(Region {
            file,
            off: a as i64,
            left: len,
        });
        let body = Bytes::from_static(&placeholder()[..len]);
        return Ok(response.body(Full::new(body)).unwrap_or_else(|_| error()));
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

/// The largest range `--sendfile` sends.
const PLACEHOLDER_LEN: usize = 4 << 20;

/// The reserved buffer whose slices stand for file regions: zeroed by the allocator's
/// `calloc` (an untouched mapping, no resident pages), never written, never sent.
fn placeholder() -> &'static [u8] {
    static P: std::sync::OnceLock<&'static [u8]> = std::sync::OnceLock::new();
    P.get_or_init(|| vec![0u8; PLACEHOLDER_LEN].leak())
}

fn is_placeholder(s: &[u8]) -> bool {
    let p = placeholder().as_ptr_range();
    p.contains(&s.as_ptr())
}

struct Region {
    file: Arc<std::fs::File>,
    off: i64,
    left: usize,
}

/// The file regions a connection's responses stand for, in the order hyper writes them.
type Regions = Arc<std::sync::Mutex<std::collections::VecDeque<Region>>>;

fn lock(r: &Regions) -> std::sync::MutexGuard<'_, std::collections::VecDeque<Region>> {
    r.lock().unwrap_or_else(|p| p.into_inner())
}

struct SendfileIo {
    tcp: tokio::net::TcpStream,
    regions: Regions,
}

impl SendfileIo {
    fn send_region(
        &mut self,
        cx: &mut std::task::Context<'_>,
        slice: usize,
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::os::fd::AsRawFd;
        loop {
            std::task::ready!(self.tcp.poll_write_ready(cx))?;
            let mut q = lock(&self.regions);
            let Some(r) = q.front_mut() else {
                return std::task::Poll::Ready(Err(std::io::Error::other(
                    "placeholder without a region",
                )));
            };
            if slice != r.left {
                return std::task::Poll::Ready(Err(std::io::Error::other(
                    "placeholder out of step",
                )));
            }
            let (fd, file) = (self.tcp.as_raw_fd(), r.file.as_raw_fd());
            let sent = self.tcp.try_io(tokio::io::Interest::WRITABLE, || {
                // SAFETY: both descriptors are open for the call; `off` is a valid pointer.
                let n = unsafe { libc::sendfile(fd, file, &mut r.off, r.left) };
                if n < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match sent {
                Ok(0) => return std::task::Poll::Ready(Err(std::io::Error::other("file shrank"))),
                Ok(n) => {
                    r.left -= n;
                    if r.left == 0 {
                        q.pop_front();
                    }
                    return std::task::Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return std::task::Poll::Ready(Err(e)),
            }
        }
    }
}

impl tokio::io::AsyncRead for SendfileIo {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for SendfileIo {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.poll_write_vectored(cx, &[std::io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match bufs.iter().position(|b| is_placeholder(b)) {
            Some(0) => self.send_region(cx, bufs[0].len()),
            Some(i) => std::pin::Pin::new(&mut self.tcp).poll_write_vectored(cx, &bufs[..i]),
            None => std::pin::Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
