//! The writer thread of a staged upload, and its durable checkpoints.
//!
//! Without checkpoints (one-shot uploads, a tus body with a checksum) the file is made durable
//! once, at the end. With them, what arrived is made durable about once a second and the
//! offset reported, so a crash loses at most about a second of transfer. Not per so many
//! bytes: on a fast link an fsync every few MiB stalls the writer more than the disk needs
//! (measured: every 16 MiB cost ~15 % against `dd` on a 4 GiB upload). A slow link still
//! checkpoints once at least `SYNC_MIN_BYTES` are pending. The flush runs on a `tus-sync`
//! thread of its own so the writer keeps taking the body (an inline fsync measured ~0.75x of
//! a PUT).

use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustix::fs::AtFlags;
use tokio::sync::mpsc;

use super::super::write_err;
use crate::storage::{OnDurable, StorageError};

const SYNC_INTERVAL: Duration = Duration::from_secs(1);
const SYNC_MIN_BYTES: u64 = 1 << 20;
/// How often a body of unknown length looks at the free space left (`Job::floor`): a statfs
/// per 16 MiB costs nothing next to writing them, and overshoots the reserve by at most that.
const FLOOR_CHECK_BYTES: u64 = 16 << 20;

/// What a writer thread works on.
pub(super) struct Job {
    pub file: File,
    /// Durable length at start; the file is positioned there.
    pub start: u64,
    pub rx: mpsc::Receiver<Bytes>,
    /// How the writer ends when the channel closes: [`FINISH`], [`DISCARD`], or left at
    /// [`DROPPED`] when the handle went away without a word (a cancelled request).
    pub ending: Arc<AtomicU8>,
    pub on_durable: Option<OnDurable>,
    pub dir: Arc<File>,
    pub name: String,
    pub resumable: bool,
    pub shown: String,
    /// Free space the filesystem must keep while a body of unknown length streams in (the
    /// `[quotas] min_free_bytes` reserve); 0 for none. Announced lengths were judged at start.
    pub floor: u64,
}

/// The handle was dropped: what arrived is kept when durable progress is being reported
/// (a tus body without checksum, whose request was cut off), otherwise discarded.
pub(super) const DROPPED: u8 = 0;
/// Everything was handed over: make it durable.
pub(super) const FINISH: u8 = 1;
/// Ended on purpose uncommitted: keep only what was already durable.
pub(super) const DISCARD: u8 = 2;

pub(super) struct WriterDone {
    pub file: File,
    pub end: u64,
}

/// Makes written bytes durable on a thread of its own. At most one flush is in flight; a
/// request while one runs is skipped and retried with the writer's next chunk. Started on the
/// first checkpoint, so short bodies never spawn it.
struct Checkpoints {
    report: Option<OnDurable>,
    durable: Arc<AtomicU64>,
    worker: Option<(
        SyncSender<u64>,
        std::thread::JoinHandle<std::io::Result<()>>,
    )>,
}

impl Checkpoints {
    fn new(start: u64, report: Option<OnDurable>) -> Self {
        Checkpoints {
            report,
            durable: Arc::new(AtomicU64::new(start)),
            worker: None,
        }
    }

    fn enabled(&self) -> bool {
        self.report.is_some()
    }

    /// Asks for everything written to `file` up to `end` to be made durable (and then
    /// reported). False when a flush is still running.
    fn request(&mut self, file: &File, end: u64) -> std::io::Result<bool> {
        let Some(report) = self.report.clone() else {
            return Ok(false);
        };
        if self.worker.is_none() {
            let (tx, rx) = sync_channel::<u64>(0);
            let file = file.try_clone()?;
            let durable = self.durable.clone();
            let thread = std::thread::Builder::new()
                .name("tus-sync".into())
                .spawn(move || {
                    for end in rx {
                        file.sync_data()?;
                        durable.store(end, Ordering::Release);
                        report(end);
                    }
                    Ok(())
                })?;
            self.worker = Some((tx, thread));
        }
        Ok(matches!(
            self.worker.as_ref().map(|(tx, _)| tx.try_send(end)),
            Some(Ok(()))
        ))
    }

    /// The flush thread only ends early (its sender still held here) when a flush failed.
    fn failed(&self) -> bool {
        self.worker.as_ref().is_some_and(|(_, t)| t.is_finished())
    }

    fn durable(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Waits for the flush in flight; the durable offset, or the flush's error.
    fn settle(&mut self) -> std::io::Result<u64> {
        if let Some((tx, thread)) = self.worker.take() {
            drop(tx);
            thread
                .join()
                .map_err(|_| std::io::Error::other("the upload's flush thread panicked"))??;
        }
        Ok(self.durable())
    }

    /// Flushes everything up to `end` on this thread (the final step) and reports it.
    fn sync_now(&mut self, file: &File, end: u64) -> std::io::Result<u64> {
        self.settle()?;
        file.sync_all()?;
        self.durable.store(end, Ordering::Release);
        if let Some(r) = &self.report {
            r(end);
        }
        Ok(end)
    }
}

/// `NoSpace` once the filesystem holding `file` has less than `floor` bytes free, so a body
/// with no announced length stops at the reserve instead of filling the disk.
fn above_floor(file: &File, floor: u64) -> Result<(), StorageError> {
    match rustix::fs::fstatvfs(file) {
        Ok(st) if st.f_bavail.saturating_mul(st.f_frsize) < floor => Err(StorageError::NoSpace),
        _ => Ok(()),
    }
}

/// The blocking half: drains the channel into the file. Ends with the file made durable on
/// [`FINISH`] (or on [`DROPPED`] while reporting durable progress); otherwise (discarded, or
/// an error) bytes past the durable offset are cut off — a one-shot file is removed — and an
/// error is returned.
pub(super) fn write_loop(job: Job) -> Result<WriterDone, StorageError> {
    let Job {
        mut file,
        start,
        mut rx,
        ending,
        on_durable,
        dir,
        name,
        resumable,
        shown,
        floor,
    } = job;
    let mut checkpoints = Checkpoints::new(start, on_durable);
    let (mut end, mut asked, mut floor_checked) = (start, start, start);
    let mut last_sync = Instant::now();
    let result = (|| {
        while let Some(chunk) = rx.blocking_recv() {
            file.write_all(&chunk).map_err(|e| write_err(&e, &shown))?;
            end += chunk.len() as u64;
            if floor > 0 && end - floor_checked >= FLOOR_CHECK_BYTES {
                floor_checked = end;
                above_floor(&file, floor)?;
            }
            if checkpoints.failed() {
                break; // settle() below returns the flush's error
            }
            if checkpoints.enabled()
                && end - asked >= SYNC_MIN_BYTES
                && last_sync.elapsed() >= SYNC_INTERVAL
                && checkpoints
                    .request(&file, end)
                    .map_err(|e| write_err(&e, &shown))?
            {
                asked = end;
                last_sync = Instant::now();
            }
        }
        checkpoints.settle().map_err(|e| write_err(&e, &shown))?;
        let keep = match ending.load(Ordering::Acquire) {
            FINISH => true,
            DROPPED => checkpoints.enabled(),
            _ => false,
        };
        if !keep {
            return Err(StorageError::ClientGone("the upload was abandoned".into()));
        }
        checkpoints
            .sync_now(&file, end)
            .map_err(|e| write_err(&e, &shown))
    })();
    match result {
        Ok(end) => Ok(WriterDone { file, end }),
        Err(e) => {
            // Nothing may report an offset past the cut: the flush thread is joined first.
            let _ = checkpoints.settle();
            if resumable {
                // Unacknowledged bytes go (this also gives the space back after ENOSPC).
                let _ = file.set_len(checkpoints.durable());
            } else {
                let _ = rustix::fs::unlinkat(&*dir, name.as_str(), AtFlags::empty());
            }
            Err(e)
        }
    }
}
