//! Log lines leave the thread that logs through a bounded queue to one writer thread, so a
//! log output that stops taking lines never stops the service. stderr to a pipe nobody reads,
//! a journald busy flushing to a slow SD card, a full disk under a log file: each used to
//! block the runtime worker that wrote an access line, and so every request on the box (a
//! service whose stderr was not drained froze after ~370 requests). When the queue is full a
//! line is dropped and counted; once the output takes lines again the writer logs how many.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// Lines waiting for the output at most: ~250 KiB of access lines, a few seconds of a flood.
pub const CAPACITY: usize = 1024;
/// Bytes waiting at most, whatever the lines' length (a flood of 6 KB paths held 6 MB).
pub const MAX_BYTES: usize = 512 * 1024;

thread_local! {
    /// On the writer thread: lines it logs itself (the dropped-lines report), written straight
    /// to the output rather than queued behind what may be a full queue.
    static OWN: std::cell::RefCell<Option<Vec<Vec<u8>>>> = const { std::cell::RefCell::new(None) };
}

/// Where the writer thread puts lines.
pub enum Sink {
    /// Text lines (stderr).
    Text(Box<dyn Write + Send>),
    /// journald's native protocol, one datagram per entry.
    Journal(UnixDatagram),
}

impl Sink {
    fn put(&mut self, line: &[u8]) {
        // Nothing is left to tell about an output that fails; the line is lost either way.
        match self {
            Sink::Text(w) => {
                let _ = w.write_all(line);
            }
            Sink::Journal(s) => {
                let _ = s.send_to(line, super::journal::SOCKET);
            }
        }
    }
}

enum Msg {
    Line(Vec<u8>),
    Flush(mpsc::Sender<()>),
}

/// The sending side, cloned into the layers; pushing never waits.
#[derive(Clone)]
pub struct Queue {
    tx: SyncSender<Msg>,
    dropped: Arc<Dropped>,
}

#[derive(Default)]
struct Dropped {
    /// Since the writer last reported.
    unreported: AtomicU64,
    total: AtomicU64,
    /// Bytes queued and not yet written.
    queued: std::sync::atomic::AtomicUsize,
}

impl Queue {
    /// Starts the writer thread. `report` logs a count of dropped lines (it runs on the
    /// writer thread, through the subscriber and so through this queue).
    pub fn start(sink: Sink, report: fn(u64)) -> std::io::Result<Queue> {
        let (tx, rx) = mpsc::sync_channel(CAPACITY);
        let dropped = Arc::new(Dropped::default());
        let counts = dropped.clone();
        std::thread::Builder::new()
            .name("log".into())
            .spawn(move || write_lines(rx, sink, &counts, report))?;
        Ok(Queue { tx, dropped })
    }

    pub fn push(&self, line: Vec<u8>) {
        let line = match OWN.with(|own| match own.borrow_mut().as_mut() {
            Some(lines) => {
                lines.push(line);
                None
            }
            None => Some(line),
        }) {
            Some(line) => line,
            None => return,
        };
        let len = line.len();
        let d = &self.dropped;
        let fits = d.queued.fetch_add(len, Ordering::Relaxed) + len <= MAX_BYTES;
        if !fits || self.tx.try_send(Msg::Line(line)).is_err() {
            d.queued.fetch_sub(len, Ordering::Relaxed);
            d.unreported.fetch_add(1, Ordering::Relaxed);
            d.total.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lines dropped since the start.
    #[cfg(test)]
    fn dropped(&self) -> u64 {
        self.dropped.total.load(Ordering::Relaxed)
    }

    /// Waits, at most `wait`, until every line queued so far is written (before exiting).
    pub fn flush(&self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let (ack, done) = mpsc::channel();
        let mut msg = Msg::Flush(ack);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return false,
            }
        }
        done.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }
}

fn write_lines(rx: Receiver<Msg>, mut sink: Sink, dropped: &Dropped, report: fn(u64)) {
    OWN.with(|own| *own.borrow_mut() = Some(Vec::new()));
    for msg in rx {
        match msg {
            Msg::Line(line) => {
                sink.put(&line);
                dropped.queued.fetch_sub(line.len(), Ordering::Relaxed);
                let n = dropped.unreported.swap(0, Ordering::Relaxed);
                if n > 0 {
                    // Logged through the subscriber (its format), written here at once.
                    report(n);
                    let own = OWN.with(|own| own.borrow_mut().as_mut().map(std::mem::take));
                    for line in own.unwrap_or_default() {
                        sink.put(&line);
                    }
                }
            }
            Msg::Flush(ack) => {
                let _ = ack.send(());
            }
        }
    }
}

/// What the text formatter writes one event into: the whole line goes to the queue at once.
pub struct Line<'a> {
    queue: &'a Queue,
    buf: Vec<u8>,
}

impl Write for Line<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.queue.push(std::mem::take(&mut self.buf));
        }
    }
}

impl<'a> MakeWriter<'a> for Queue {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line {
            queue: self,
            buf: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// An output that takes nothing until it is opened, then keeps what it is given.
    struct Gate {
        open: Arc<Mutex<bool>>,
        got: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gate {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            while !*self.open.lock().unwrap() {
                std::thread::sleep(Duration::from_millis(5));
            }
            self.got.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    static QUEUE: std::sync::OnceLock<Queue> = std::sync::OnceLock::new();

    /// As the service's report does: a line logged on the writer thread, through the queue.
    fn report(n: u64) {
        if let Some(q) = QUEUE.get() {
            q.push(format!("dropped {n}\n").into_bytes());
        }
    }

    #[test]
    fn a_stalled_output_drops_and_counts_lines_instead_of_blocking_the_logger() {
        let open = Arc::new(Mutex::new(false));
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink::Text(Box::new(Gate {
            open: open.clone(),
            got: got.clone(),
        }));
        let q = QUEUE.get_or_init(|| Queue::start(sink, report).unwrap());
        // Far more than the queue holds, while the output takes nothing: every push returns.
        let n = CAPACITY * 3;
        for i in 0..n {
            q.push(format!("line {i}\n").into_bytes());
        }
        let dropped = q.dropped();
        // The writer holds one line in its stalled write, the queue CAPACITY more.
        assert!(dropped >= (n - CAPACITY - 1) as u64, "{dropped} dropped");
        assert!(
            !q.flush(Duration::from_millis(50)),
            "flushed a stalled output"
        );
        *open.lock().unwrap() = true;
        assert!(q.flush(Duration::from_secs(10)));
        let text = String::from_utf8(got.lock().unwrap().clone()).unwrap();
        // The report follows the first line written after the stall, with every drop counted,
        // though the queue was full then.
        let head = format!("line 0\ndropped {dropped}\nline 1\n");
        assert!(text.starts_with(&head), "{}", &text[..60]);
        assert_eq!(text.matches("dropped").count(), 1);
        assert_eq!(text.lines().count() as u64, n as u64 - dropped + 1);
    }
}
