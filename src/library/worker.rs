//! The scanner's loop (scan at start, every `scan_interval_secs` and when asked, probe when
//! nudged) and the probe phase: ffprobe and posters for files the index has not probed yet.
//! A job's slow part (the external program, reading the file through storage) runs without
//! any database lock; its result is written only if the row still describes the same bytes.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::model::MediaClass;
use super::probe::{self, ProbeInput, Probed};
use super::scan;
use super::{Inner, LibraryError};
use crate::storage::MediaPath;

/// A file that still needs ffprobe and/or a poster.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub path: String,
    pub size: i64,
    pub mtime_ns: i64,
    pub class: MediaClass,
    pub duration: Option<f64>,
    pub need_probe: bool,
    pub need_thumb: bool,
}

#[derive(Debug, Default)]
pub struct Outcome {
    probe: Option<Result<Probed, String>>,
    thumb: Option<Result<String, String>>,
}

/// Poster file name: a hash of path, size and mtime, so changed bytes get a new name (and no
/// browser cache keeps showing the old poster).
pub fn thumb_name(path: &str, size: i64, mtime_ns: i64) -> String {
    let mut h = Sha256::new();
    h.update(path.as_bytes());
    h.update([0]);
    h.update(size.to_le_bytes());
    h.update(mtime_ns.to_le_bytes());
    let hex: String = h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{hex}.jpg")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// What the programs read for `job`: the file, through storage (None: gone, or a backend
/// that cannot give a program its bytes — the reason).
async fn input_of(inner: &Inner, job: &Job) -> Result<ProbeInput, String> {
    let path = MediaPath::from_decoded(&job.path).map_err(|e| e.to_string())?;
    match inner.storage.probe_source(&path).await {
        Ok(src) => ProbeInput::from_source(src)
            .ok_or_else(|| "the storage backend cannot hand this file to ffprobe".to_string()),
        Err(e) => {
            tracing::debug!(path = %job.path.escape_debug(), error = %e, "library: cannot open to probe");
            Err("the file could not be opened".to_string())
        }
    }
}

/// What a failed program run tells the API (`probe_error` is public): the kind of failure,
/// never the program's path or its raw output, which go to the log.
fn shown(job: &Job, e: &probe::ToolError) -> String {
    tracing::info!(path = %job.path.escape_debug(), error = %e, "library: probe failed");
    match e {
        probe::ToolError::Spawn(..) => "ffprobe/ffmpeg could not be run".to_string(),
        probe::ToolError::Timeout(_, secs) => format!("ffprobe/ffmpeg took longer than {secs} s"),
        probe::ToolError::Failed(..) | probe::ToolError::Parse(_) => {
            "not a media file ffprobe can read".to_string()
        }
    }
}

/// Runs ffprobe and/or ffmpeg for `job`. Blocking, bounded by `probe_timeout_secs` per run.
pub fn work(inner: &Inner, input: Result<ProbeInput, String>, job: &Job) -> Outcome {
    let timeout = Duration::from_secs(inner.config.probe_timeout_secs);
    let mut out = Outcome::default();
    let input = match input {
        Ok(i) => i,
        Err(why) => {
            out.probe = job.need_probe.then(|| Err(why.clone()));
            out.thumb = job.need_thumb.then_some(Err(why));
            return out;
        }
    };
    let mut duration = job.duration;
    let mut probe_failed = false;
    if job.need_probe {
        let r = input.try_clone().map_err(|e| e.to_string()).and_then(|i| {
            probe::ffprobe(&inner.config.ffprobe, i, timeout).map_err(|e| shown(job, &e))
        });
        if let Ok(p) = &r {
            duration = p.duration;
        }
        probe_failed = r.is_err();
        out.probe = Some(r);
    }
    if job.need_thumb {
        out.thumb = Some(if probe_failed {
            // ffprobe could not read it: ffmpeg will not find a frame either.
            Err("not a readable video or image".to_string())
        } else {
            let name = thumb_name(&job.path, job.size, job.mtime_ns);
            probe::make_thumb(
                &inner.config.ffmpeg,
                input,
                job.class,
                duration,
                &inner.thumbs_dir.join(&name),
                timeout,
            )
            .map(|()| name)
            .map_err(|e| shown(job, &e))
        });
    }
    out
}

/// Probes one job and stores the result (the programs on the blocking pool).
pub async fn run_job(inner: &Arc<Inner>, job: Job) -> Result<(), LibraryError> {
    let input = input_of(inner, &job).await;
    let inner = inner.clone();
    crate::blocking::run_unbounded("library probe", move || {
        let out = work(&inner, input, &job);
        let conn = inner.scan_conn()?;
        store(&conn, &job, &out, &inner.thumbs_dir)
    })
    .await
}

/// Writes `out` if the row still has the size and mtime the job was made from; otherwise the
/// result is about old bytes and is dropped (the poster file with it).
pub fn store(
    conn: &Connection,
    job: &Job,
    out: &Outcome,
    thumbs_dir: &Path,
) -> Result<(), LibraryError> {
    let guard = "id = ?1 AND size = ?2 AND mtime_ns = ?3";
    let mut stale = false;
    if let Some(r) = &out.probe {
        let (p, err) = match r {
            Ok(p) => (p.clone(), None),
            Err(e) => (Probed::default(), Some(e.as_str())),
        };
        let duration = if job.class == MediaClass::Image {
            None
        } else {
            p.duration
        };
        let n = conn.execute(
            &format!(
                "UPDATE media SET duration = ?4, video_codec = ?5, audio_codec = ?6, width = ?7,
                     height = ?8, probed_at = ?9, probe_error = ?10 WHERE {guard}"
            ),
            params![
                job.id,
                job.size,
                job.mtime_ns,
                duration,
                p.video_codec,
                p.audio_codec,
                p.width,
                p.height,
                now_ms(),
                err
            ],
        )?;
        stale |= n == 0;
    }
    if let Some(r) = &out.thumb {
        let (name, state) = match r {
            Ok(name) => (Some(name.as_str()), "ok"),
            Err(_) => (None, "failed"),
        };
        let n = conn.execute(
            &format!("UPDATE media SET thumb = ?4, thumb_state = ?5 WHERE {guard}"),
            params![job.id, job.size, job.mtime_ns, name, state],
        )?;
        if n == 0 {
            stale = true;
            if let Some(name) = name {
                scan::remove_thumbs(thumbs_dir, &[name.to_string()]);
            }
        }
    }
    if stale {
        tracing::debug!(path = %job.path.escape_debug(), "library: file changed while probed");
    }
    Ok(())
}

/// Files still to probe or to give a poster, given which tools we have.
fn pending(
    conn: &Connection,
    probe: bool,
    thumbs: bool,
    limit: usize,
) -> Result<Vec<Job>, LibraryError> {
    let mut st = conn.prepare_cached(
        "SELECT id, path, size, mtime_ns, media, duration, probed_at IS NULL, thumb_state IS NULL
         FROM media WHERE kind = 'file' AND (
             (?1 AND probed_at IS NULL AND media IN ('video', 'audio', 'image'))
          OR (?2 AND thumb_state IS NULL AND media IN ('video', 'image')))
         LIMIT ?3",
    )?;
    let rows = st.query_map(params![probe, thumbs, limit as i64], |r| {
        let class: String = r.get(4)?;
        let class = MediaClass::parse(&class).unwrap_or(MediaClass::Other);
        Ok(Job {
            id: r.get(0)?,
            path: r.get(1)?,
            size: r.get(2)?,
            mtime_ns: r.get(3)?,
            class,
            duration: r.get(5)?,
            need_probe: probe && r.get::<_, bool>(6)?,
            need_thumb: thumbs && class.has_poster() && r.get::<_, bool>(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Probes everything pending (stopping between files when `cancel` fires). Returns how many
/// files were processed.
pub async fn probe_pending(inner: &Arc<Inner>, cancel: &CancellationToken) -> u64 {
    let tools = {
        let i = inner.clone();
        crate::blocking::run_unbounded("library tools", move || {
            Ok::<_, LibraryError>((i.tools().ffprobe, i.thumbs_enabled()))
        })
        .await
    };
    let Ok((probe, thumbs)) = tools else {
        return 0;
    };
    if !probe && !thumbs {
        return 0;
    }
    let mut seen = HashSet::new();
    let mut done = 0;
    loop {
        let i = inner.clone();
        let jobs = crate::blocking::run_unbounded("library pending", move || {
            pending(&*i.scan_conn()?, probe, thumbs, 64)
        })
        .await;
        let jobs = match jobs {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(error = %e, "library: cannot list files to probe");
                return done;
            }
        };
        // A row that stays pending after its job (its write was dropped as stale) is not
        // retried in this pass: no busy loop on a file that keeps changing.
        let fresh: Vec<Job> = jobs.into_iter().filter(|j| seen.insert(j.id)).collect();
        if fresh.is_empty() {
            return done;
        }
        for job in fresh {
            if cancel.is_cancelled() {
                return done;
            }
            if let Err(e) = run_job(inner, job).await {
                tracing::error!(error = %e, "library: cannot store probe results");
            }
            done += 1;
        }
    }
}

/// One full scan with its bookkeeping in `status`.
pub async fn scan_once(
    inner: &Arc<Inner>,
    cancel: &CancellationToken,
) -> Result<scan::ScanReport, LibraryError> {
    inner.with_status(|s| s.scanning = true);
    let t = Instant::now();
    let result = scan::full_scan(inner, cancel).await;
    match &result {
        Ok(report) => {
            let i = inner.clone();
            let swept = crate::blocking::run_unbounded("library sweep", move || {
                scan::sweep_thumbs(&*i.scan_conn()?, &i.thumbs_dir)
            })
            .await;
            if let Err(e) = swept {
                tracing::warn!(error = %e, "library: cannot sweep posters");
            }
            tracing::info!(?report, ms = scan::ms_since(t), "library: scan finished");
        }
        Err(LibraryError::Cancelled) => {
            tracing::info!("library: scan stopped for shutdown");
        }
        Err(e @ (LibraryError::Unavailable(_) | LibraryError::RootEmpty(_))) => {
            tracing::warn!(error = %e, "library: media root not scanned; the index is kept as it was");
        }
        Err(e) => tracing::error!(error = %e, "library: scan failed"),
    }
    let i = inner.clone();
    let indexed = crate::blocking::run_unbounded("library count", move || {
        super::query::count(&*i.scan_conn()?)
    })
    .await
    .ok();
    inner.with_status(|s| {
        s.finish(&result, scan::ms_since(t));
        s.indexed = indexed.unwrap_or(s.indexed);
    });
    result
}

/// The scanner: a scan now, then every `scan_interval_secs`; nudges (after `record_*`) only
/// probe. Returns when `cancel` fires, at a checkpoint.
pub async fn run(inner: Arc<Inner>, cancel: CancellationToken) {
    {
        // Now, off the start-up path, so /readyz soon says what is there.
        let i = inner.clone();
        let _: Result<_, LibraryError> =
            crate::blocking::run_unbounded("library tools", move || Ok(i.tools())).await;
    }
    loop {
        let _ = scan_once(&inner, &cancel).await;
        probe_pending(&inner, &cancel).await;
        let interval = inner.config.scan_interval_secs;
        let next_scan = async {
            if interval > 0 {
                tokio::time::sleep(Duration::from_secs(interval)).await
            } else {
                std::future::pending().await
            }
        };
        tokio::pin!(next_scan);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = &mut next_scan => break,
                _ = inner.rescan.notified() => break,
                _ = inner.nudge.notified() => {
                    probe_pending(&inner, &cancel).await;
                }
            }
        }
    }
}
