//! `streamhub storage copy --from A --to B [--dry-run]`: moves a library between backends
//! (`local:/path`, `s3://bucket/prefix`; S3 endpoint and credentials from `[s3]`). The work
//! is `storage::copy`; here are the locations, the progress bar, the identity marker and
//! the summary.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::copy_location::{overlap, parse_location, Location};
use super::copy_progress::{counted, report_left_out, shown, Progress};
use super::CliError;
use crate::config::Config;
use crate::storage::copy::{self, CopyError, Decision};
use crate::storage::local::{LocalOptions, LocalStorage, NodeDir};
use crate::storage::s3::S3Storage;
use crate::storage::{Storage, StorageError};

/// The staging folder the copy writes a local destination through (a node id of its own,
/// so it never touches a running service's staged uploads).
const COPY_NODE: &str = "c09e";

/// An opened side: the trait object the copy goes through, and the concrete backend for
/// the identity marker (which no listing shows).
enum Side {
    Local(Arc<LocalStorage>),
    S3(S3Storage),
    /// A `--dry-run` into a local folder that does not exist (and is not made).
    Empty,
}

impl Side {
    /// None for `Empty`, which only a dry run (that writes nothing) sees.
    fn storage(&self) -> Option<&dyn Storage> {
        Some(match self {
            Side::Local(l) => &**l,
            Side::S3(s) => s,
            Side::Empty => return None,
        })
    }

    async fn volume_id(&self) -> Result<Option<String>, StorageError> {
        match self {
            Side::Local(l) => {
                let l = l.clone();
                blocking(move || l.volume_id()).await
            }
            Side::S3(s) => s.volume_id().await,
            Side::Empty => Ok(None),
        }
    }

    /// Why this place may not get a marker (another library's lies below it), if so.
    async fn nesting(&self) -> Result<Option<String>, StorageError> {
        match self {
            Side::Local(_) | Side::Empty => Ok(None),
            Side::S3(s) => s.nesting().await,
        }
    }

    async fn write_volume_id(&self, id: &str) -> Result<(), StorageError> {
        match self {
            Side::Local(l) => {
                let (l, id) = (l.clone(), id.to_string());
                blocking(move || l.write_volume_id(&id)).await
            }
            Side::S3(s) => s.write_volume_id(id).await,
            Side::Empty => Ok(()),
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Io(e.to_string()))?
}

async fn open(cfg: &Config, at: &Location, source: bool, dry_run: bool) -> Result<Side, CliError> {
    match at {
        Location::Local(path) => {
            if source && !path.is_dir() {
                return Err(CliError::Usage(format!(
                    "the source {at} is not a folder (or does not exist)"
                )));
            }
            if !source && dry_run && !path.exists() {
                return Ok(Side::Empty);
            }
            if !source {
                std::fs::create_dir_all(path).map_err(|e| {
                    CliError::Failed(format!(
                        "cannot create {}: {}",
                        path.display(),
                        crate::storage::errno_message(&e)
                    ))
                })?;
            }
            let local = LocalStorage::new(
                path,
                LocalOptions {
                    allow_symlink_escape: false,
                    timeout: cfg.storage_timeout(),
                    chunk_size: cfg.streaming.chunk_kib * 1024,
                    node: NodeDir::new(COPY_NODE).map_err(|e| CliError::Failed(e.to_string()))?,
                },
            );
            let local = Arc::new(local);
            // What an earlier copy killed mid-file left staged goes first.
            let l = local.clone();
            let _ = blocking(move || {
                l.tidy();
                Ok(())
            })
            .await;
            Ok(Side::Local(local))
        }
        Location::S3 { bucket, prefix } => {
            let mut c = cfg.clone();
            c.storage.backend = "s3".into();
            c.s3.bucket = bucket.clone();
            c.s3.prefix = prefix.clone();
            // Not "s3.endpoint must be set when storage.backend = "s3"": nobody set that.
            if c.s3.endpoint.is_empty() {
                return Err(CliError::Usage(format!(
                    "{at}: no S3 store is configured: set s3.endpoint and the credentials in \
                     the config's [s3] section (--config FILE) or as STREAMHUB_S3_ENDPOINT, \
                     STREAMHUB_S3_ACCESS_KEY_ID and STREAMHUB_S3_SECRET_ACCESS_KEY \
                     (docs/DEPLOY.md, \"Moving a library\")"
                )));
            }
            c.validate()
                .map_err(|e| CliError::Usage(format!("{at}: {e}")))?;
            let s3 = S3Storage::new(&c.s3, c.storage_timeout(), &c.server.data_dir)
                .map_err(|e| CliError::Usage(format!("{at}: {e}")))?;
            // The bucket comes from the URL here, not from the `s3.bucket` the message names.
            s3.check_at_start().await.map_err(|e| {
                let e = e
                    .to_string()
                    .replace("(s3.bucket)", "(the bucket in the URL)");
                CliError::Failed(format!("{at}: {e}"))
            })?;
            Ok(Side::S3(s3))
        }
    }
}

/// `storage copy`: returns the summary (stdout); failures are on stderr and make it an error.
pub fn run(
    cfg: &Config,
    from: &str,
    to: &str,
    dry_run: bool,
    marker_only: bool,
) -> Result<String, CliError> {
    let (from, to) = (parse_location(from)?, parse_location(to)?);
    if from == to {
        return Err(CliError::Usage(
            "--from and --to are the same location".into(),
        ));
    }
    overlap(&from, &to)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start the runtime: {e}")))?;
    let stop = Arc::new(AtomicBool::new(false));
    let out = rt.block_on(async {
        let s = stop.clone();
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let term = async {
                match term.as_mut() {
                    Some(t) => t.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term => {}
            }
            s.store(true, Ordering::Relaxed);
        });
        let src = open(cfg, &from, true, dry_run).await?;
        let dst = open(cfg, &to, false, dry_run).await?;
        if marker_only {
            return copy_marker(&src, &dst, &from, &to, dry_run).await;
        }
        let out = copy_all(&src, &dst, (&from, &to), dry_run, &stop).await;
        // The copy's own staging folder does not stay behind in the new library (a part a
        // failure left keeps it, for the next run to tidy).
        if let Side::Local(l) = &dst {
            let l = l.clone();
            let _ = blocking(move || {
                l.release_staging();
                Ok(())
            })
            .await;
        }
        out
    });
    // S3 aborts of uploads cut short run on the runtime: give them a moment.
    rt.shutdown_timeout(Duration::from_secs(5));
    out
}

/// A side's volume id, an error naming the side (no server log here to point to).
async fn marker_of(side: &Side, at: &Location) -> Result<Option<String>, CliError> {
    side.volume_id().await.map_err(|e| {
        let e = e.to_string().replace(" (the server log says why)", "");
        CliError::Failed(format!(
            "the identity marker of {at}: {e}; nothing was copied"
        ))
    })
}

/// `--marker-only`: marks the destination as the source's library without copying a file
/// (the upgrade of a box switched to S3 before the bucket had a marker, where a full copy
/// would stop at files changed in the bucket since, and bring back ones deleted there).
async fn copy_marker(
    src: &Side,
    dst: &Side,
    from: &Location,
    to: &Location,
    dry_run: bool,
) -> Result<String, CliError> {
    let failed = |e: StorageError| CliError::Failed(e.to_string());
    let Some(id) = marker_of(src, from).await? else {
        return Err(CliError::Failed(format!(
            "{from} has no identity marker (.streamhub-root): there is nothing to copy"
        )));
    };
    match marker_of(dst, to).await? {
        Some(d) if d == id => return Ok("identity marker already there".into()),
        Some(_) => {
            return Err(CliError::Failed(format!(
                "{to} holds another library's identity marker: not replaced"
            )))
        }
        None => {}
    }
    if let Some(why) = dst.nesting().await.map_err(failed)? {
        return Err(CliError::Failed(why));
    }
    if dry_run {
        return Ok("would copy the identity marker (no files)".into());
    }
    claim(dst, &id, to).await?;
    Ok("identity marker copied (no files)".into())
}

/// Writes `id` as the destination's marker, judged again at the last moment: the checks at
/// the start do not see another copy into the same place, or into a prefix above or below,
/// that finished meanwhile (the attack pass ran two at once: both said "identity marker
/// copied", over each other or nested). Read back after the write, so that of two copies
/// finishing together the one whose marker did not stay says so. One copy per destination
/// at a time is still the rule (docs/DEPLOY.md): this narrows the race to milliseconds.
async fn claim(dst: &Side, id: &str, to: &Location) -> Result<(), CliError> {
    let failed = |e: StorageError| CliError::Failed(format!("the identity marker of {to}: {e}"));
    let mixed = |what: &str| {
        CliError::Failed(format!(
            "{to} {what} while this copy ran (another `storage copy` at once?): this library's \
             identity marker was not written, and the destination may hold files of two \
             libraries; copy into an empty destination, one copy at a time"
        ))
    };
    match dst.volume_id().await.map_err(failed)? {
        Some(other) if other != id => return Err(mixed("got another library's identity marker")),
        Some(_) => return Ok(()),
        None => {}
    }
    if let Some(why) = dst.nesting().await.map_err(failed)? {
        return Err(CliError::Failed(format!(
            "{why} (it did not when this copy began): this library's identity marker was not \
             written"
        )));
    }
    dst.write_volume_id(id)
        .await
        .map_err(|e| CliError::Failed(format!("writing the identity marker: {e}")))?;
    match dst.volume_id().await.map_err(failed)? {
        Some(now) if now == id => Ok(()),
        _ => Err(mixed("got another library's identity marker")),
    }
}

#[derive(Default)]
struct Tally {
    copied: u64,
    copied_bytes: u64,
    skipped: u64,
    skipped_bytes: u64,
    dirs: u64,
    failed: Vec<(String, String)>,
}

async fn copy_all(
    src: &Side,
    dst: &Side,
    (from, to): (&Location, &Location),
    dry_run: bool,
    stop: &AtomicBool,
) -> Result<String, CliError> {
    let failed = |e: StorageError| CliError::Failed(e.to_string());
    let src_id = marker_of(src, from).await?;
    let dst_id = marker_of(dst, to).await?;
    if let (Some(a), Some(b)) = (&src_id, &dst_id) {
        if a != b {
            return Err(CliError::Failed(format!(
                "{to} holds another library's identity marker: it is not a copy of this one; \
                 nothing was copied (choose an empty destination)"
            )));
        }
    }
    if dst_id.is_none() {
        if let Some(why) = dst.nesting().await.map_err(failed)? {
            return Err(CliError::Failed(format!("{why}; nothing was copied")));
        }
    }
    eprintln!("listing the source…");
    let s = src
        .storage()
        .ok_or_else(|| CliError::Failed("no source".into()))?;
    let plan = copy::walk(s)
        .await
        .map_err(|e| CliError::Failed(format!("listing the source: {e}")))?;
    let mut progress = Progress::new(plan.total, plan.files.len());
    let mut t = Tally::default();
    let d = dst.storage();
    for (path, size) in &plan.files {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let name = shown(&path.to_string());
        let decided = match d {
            Some(d) => copy::decide(s, d, path, *size, stop).await,
            None => Ok(Decision::Copy),
        };
        let done = match decided {
            Ok(Decision::Skip) => {
                t.skipped += 1;
                t.skipped_bytes += size;
                progress.add(*size);
                progress.file_done("already there", &name);
                continue;
            }
            Ok(Decision::Conflict(why)) => Err(format!("{why}; not overwritten")),
            Ok(Decision::Copy) if dry_run => {
                println!("would copy {name} ({size} bytes)");
                t.copied += 1;
                t.copied_bytes += size;
                continue;
            }
            Ok(Decision::Copy) => {
                let mut on = |n| progress.add(n);
                match d {
                    Some(d) => copy::copy_file(s, d, path, stop, &mut on)
                        .await
                        .map_err(|e| e.to_string()),
                    None => Err("no destination".into()),
                }
            }
            Err(CopyError::Interrupted) => break,
            Err(e) => Err(e.to_string()),
        };
        match done {
            Ok(n) => {
                t.copied += 1;
                t.copied_bytes += n;
                progress.file_done("copied", &name);
            }
            Err(_) if stop.load(Ordering::Relaxed) => break,
            Err(why) => {
                progress.say(&format!("FAILED {name}: {why}"));
                t.failed.push((name, why));
            }
        }
    }
    progress.finish();
    for dir in &plan.empty_dirs {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if dry_run {
            println!("would make folder {}/", shown(&dir.to_string()));
            continue;
        }
        let made = match d {
            Some(d) => copy::make_dir(d, dir).await,
            None => Err(StorageError::NotFound),
        };
        match made {
            Ok(()) => t.dirs += 1,
            Err(e) => {
                let dir = shown(&dir.to_string());
                eprintln!("FAILED {dir}/: {e}");
                t.failed.push((format!("{dir}/"), e.to_string()));
            }
        }
    }
    let interrupted = stop.load(Ordering::Relaxed);
    let mut marker = String::new();
    let mut unclaimed = None;
    if let Some(id) = &src_id {
        if dst_id.is_none() && !interrupted && t.failed.is_empty() {
            if dry_run {
                marker = "; would copy the identity marker".into();
            } else if let Err(e) = claim(dst, id, to).await {
                marker = "; identity marker NOT written".into();
                unclaimed = Some(e);
            } else {
                marker = "; identity marker copied".into();
            }
        } else if dst_id.is_some() {
            marker = "; identity marker already there".into();
        }
    }
    let verb = if dry_run { "would copy" } else { "copied" };
    report_left_out(&plan.left_out);
    let dirs = if dry_run {
        plan.empty_dirs.len() as u64
    } else {
        t.dirs
    };
    let summary = format!(
        "{verb} {} ({}), skipped {} identical ({}), failed {}, {}, left out {}{marker}",
        counted(t.copied, "file", "files"),
        counted(t.copied_bytes, "byte", "bytes"),
        t.skipped,
        counted(t.skipped_bytes, "byte", "bytes"),
        t.failed.len(),
        counted(dirs, "empty folder", "empty folders"),
        plan.left_out.len()
    );
    // The summary is on stdout whatever the outcome (a script reads it there); what went
    // wrong follows on stderr.
    if let Some(e) = unclaimed {
        println!("{summary}");
        return Err(e);
    }
    if interrupted {
        println!("{summary}");
        return Err(CliError::Failed(
            "interrupted; run it again to resume".into(),
        ));
    }
    if !t.failed.is_empty() {
        let list: Vec<String> = t
            .failed
            .iter()
            .map(|(n, w)| format!("  {n}: {w}"))
            .collect();
        println!("{summary}");
        return Err(CliError::Failed(format!(
            "these failed:\n{}",
            list.join("\n")
        )));
    }
    Ok(summary)
}
