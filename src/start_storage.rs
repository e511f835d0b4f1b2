//! Start-up's storage steps: the data dir must be on a local filesystem, and the media
//! storage (local disk or S3) is opened and its identity settled before anything is served.

use std::sync::Arc;

use crate::config::Config;
use crate::db;
use crate::storage::local::{Established, LocalOptions, LocalStorage, NodeDir};
use crate::storage::{self, Storage, StorageError};
use crate::StartError;

/// `node_state` key of the media root's volume id (see `storage::local::identity`).
const VOLUME_KEY: &str = "media_root_volume";

/// Refuses a data dir on a network or FUSE filesystem: SQLite's locks and fsync are only
/// trustworthy on a local one. One not made yet is judged by where it would be made (its
/// nearest existing folder), so `config check` and the CLI refuse before creating anything.
pub(crate) fn check_data_dir_fs(dir: &std::path::Path) -> Result<(), StartError> {
    let existing = dir
        .ancestors()
        .map(|p| {
            if p.as_os_str().is_empty() {
                std::path::Path::new(".")
            } else {
                p
            }
        })
        .find(|p| p.exists())
        .unwrap_or(dir);
    match storage::local::fs_kind_of(existing) {
        "local" | "unknown" => Ok(()),
        kind => Err(StartError::DataDirNotLocal {
            path: dir.to_path_buf(),
            kind,
        }),
    }
}

/// Opens the media storage and settles the root's identity against the database: the volume
/// id is recorded the first time, and checked on every start after. A root that is not the
/// recorded volume (an unmounted disk, another disk) does not stop the service: storage
/// reports it (503 for media, `/readyz` says why) and recovers when the disk is back.
pub(crate) fn open_storage(
    config: &Config,
    db: &db::Db,
    node_id: &str,
) -> Result<Arc<dyn Storage>, StartError> {
    if config.storage.is_s3() {
        return open_s3(config, db);
    }
    let storage = Arc::new(
        LocalStorage::new(
            &config.storage.media_root,
            LocalOptions {
                allow_symlink_escape: config.storage.allow_symlink_escape,
                timeout: config.storage_timeout(),
                chunk_size: config.streaming.chunk_kib * 1024,
                // Staged uploads go into a folder of this node's own (a shared media folder).
                node: NodeDir::new(node_id)?,
            },
        )
        .with_max_threads(config.storage.max_threads)
        .with_require_mount(config.storage.require_mount),
    );
    let (recorded, indexed) = recorded_identity(db)?;
    match establish_bounded(
        &storage,
        recorded.clone(),
        indexed,
        config.storage_timeout(),
    )? {
        Ok(Established::Volume(id)) => {
            if recorded.is_none() {
                db.set_state(VOLUME_KEY, &id)?;
            }
            tracing::info!(
                media_root = %config.storage.media_root.display(),
                filesystem = storage.fs_kind(),
                volume = %id,
                "media root ready"
            );
        }
        Ok(Established::Unchecked(why)) => tracing::warn!(
            media_root = %config.storage.media_root.display(),
            "{why}"
        ),
        // Not a mount point: start-up fails, so an unmounted NFS root is seen at once and
        // nothing is ever written to the folder beneath it.
        Err(e) if storage::local::not_mounted(&e) => return Err(e.into()),
        Err(e) => tracing::error!(
            media_root = %config.storage.media_root.display(),
            error = %e,
            "MEDIA ROOT UNAVAILABLE: media answers 503 until it is back"
        ),
    }
    Ok(storage)
}

/// The volume id the database recorded (the same key for either backend, so it follows a
/// library copied between them) and how many entries the library index holds.
fn recorded_identity(db: &db::Db) -> Result<(Option<String>, u64), StartError> {
    let recorded = db.state(VOLUME_KEY)?;
    let indexed: u64 = db
        .with(|c| {
            c.query_row("SELECT count(*) FROM media WHERE path <> ''", [], |r| {
                r.get(0)
            })
        })
        .map_err(db::DbError::from)?;
    Ok((recorded, indexed))
}

/// [`LocalStorage::establish`] within `timeout`: a mount whose server hangs at start delays
/// the start by at most that, then media answers 503 until it is back. The identity recorded
/// in the database is in force from the first moment; the establishing thread finishes by
/// itself when the server answers (a new root's volume id is then recorded at the next
/// start).
fn establish_bounded(
    storage: &Arc<LocalStorage>,
    recorded: Option<String>,
    indexed: u64,
    timeout: std::time::Duration,
) -> Result<Result<Established, StorageError>, StartError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let s = storage.clone();
    std::thread::Builder::new()
        .name("storage-establish".into())
        .spawn(move || {
            let _ = tx.send(s.establish(recorded.as_deref(), indexed));
        })
        .map_err(|e| StartError::Task(format!("cannot start a thread: {e}")))?;
    Ok(rx
        .recv_timeout(timeout)
        .unwrap_or(Err(StorageError::Stalled {
            op: "establish",
            secs: timeout.as_secs(),
        })))
}

/// The S3 backend, checked before anything is served: a wrong secret, a missing bucket or an
/// unreachable endpoint stops the start with a message naming the key to fix (a local disk
/// that is missing only makes media answer 503, because it may be mounted later; a bucket
/// that does not answer at start is a configuration error far more often).
///
/// Its identity is then settled as a local root's: the marker object's id is recorded the
/// first time and checked after; a bucket that is not this library's makes media answer 503
/// (never pruning the index against it) until fixed and restarted.
fn open_s3(config: &Config, db: &db::Db) -> Result<Arc<dyn Storage>, StartError> {
    if let Some(warning) = config.s3.secret_file_warning() {
        tracing::warn!("{warning}");
    }
    let storage = storage::s3::S3Storage::new(
        &config.s3,
        config.storage_timeout(),
        &config.server.data_dir,
    )?;
    storage.track_uploads();
    // `prepare` runs on the blocking pool, where waiting on the runtime is allowed.
    let rt = tokio::runtime::Handle::try_current().map_err(|e| StartError::Task(e.to_string()))?;
    rt.block_on(storage.check_at_start())
        .map_err(|e| name_secret_file(e, &config.s3))?;
    let (recorded, indexed) = recorded_identity(db)?;
    match rt.block_on(storage.establish(recorded.as_deref(), indexed)) {
        Ok(id) => {
            if recorded.is_none() {
                db.set_state(VOLUME_KEY, &id)?;
            }
            tracing::info!(
                endpoint = %config.s3.endpoint,
                bucket = %config.s3.bucket,
                prefix = %config.s3.key_prefix(),
                "media bucket ready"
            );
        }
        Err(StorageError::Unavailable(why)) => tracing::error!(
            bucket = %config.s3.bucket,
            prefix = %config.s3.key_prefix(),
            "MEDIA STORAGE UNAVAILABLE: media answers 503 until fixed: {why}"
        ),
        Err(e) => return Err(e.into()),
    }
    Ok(Arc::new(storage))
}

/// A refusal of the credentials names the file the secret was read from, if it was: the
/// store's answer can only name the keys, and a stale file is the usual cause.
fn name_secret_file(e: StorageError, s3: &crate::config::S3Config) -> StorageError {
    match e {
        StorageError::Unavailable(m)
            if !s3.secret_access_key_file.is_empty() && m.contains("s3.secret_access_key") =>
        {
            StorageError::Unavailable(format!(
                "{m} (the secret was read from s3.secret_access_key_file = {})",
                s3.secret_access_key_file
            ))
        }
        e => e,
    }
}
