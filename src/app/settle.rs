//! Changes that answered 503 because storage did not answer in time (a hung NFS/SMB share).
//! Their outcome is unknown when the client is told: the one filesystem call that hung may
//! still return and take effect when the share answers again (a call stuck in the kernel
//! cannot be cancelled), while storage stops any later step of its own (see
//! `storage::local::ops::go_on`). So the bookkeeping of such a change is neither done nor
//! taken back at once: it waits until no call storage gave up on is still running
//! ([`crate::storage::Storage::overdue`]), then follows what the media root shows. The rule
//! for clients (docs/CONTRACT.md): after a 503 on a change, look before trying again.

use std::time::Duration;

use super::files::Files;
use crate::library::Recorded;
use crate::storage::{Found, MediaPath};

/// How often a settling change looks whether storage's given-up calls have returned.
const EVERY: Duration = Duration::from_millis(500);
/// Past this the change is left to the hourly trash sweep and the next scan.
const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

/// Waits a moment; false once `MAX_WAIT` has passed since `start`.
async fn pause(start: tokio::time::Instant) -> bool {
    tokio::time::sleep(EVERY).await;
    start.elapsed() < MAX_WAIT
}

impl Files {
    /// Waits until every storage call whose caller gave up has returned: each such change
    /// has now either landed or stopped. False when that took longer than `MAX_WAIT`.
    async fn settled(&self) -> bool {
        let start = tokio::time::Instant::now();
        while self.storage.overdue() > 0 {
            if !pause(start).await {
                return false;
            }
        }
        true
    }

    /// A delete to the trash answered 503: its record (written first) stays until the move
    /// is known. Landed: the entry leaves the index and is listed in the trash. Not: the
    /// record goes (the file is where it was).
    pub(super) fn settle_trash(&self, id: i64, key: String, real: MediaPath) {
        let files = self.clone();
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            let landed = loop {
                if !files.settled().await {
                    return; // The sweep forgets the record if the key never shows up.
                }
                match files.storage.trash_keys().await {
                    Ok(keys) => break keys.contains(&key),
                    Err(_) if pause(start).await => {}
                    Err(_) => return,
                }
            };
            match landed {
                true => {
                    files.library.trash_finish_out(&real).await;
                    tracing::info!(path = %real.to_string().escape_debug(), trash = id,
                        "a delete answered 503 was carried out when the storage answered: in the trash");
                }
                false => {
                    let _ = files.library.trash_forget(id).await;
                    tracing::info!(path = %real.to_string().escape_debug(),
                        "a delete answered 503 did not happen: the file is where it was");
                }
            }
        });
    }

    /// A move answered 503: once settled, if it landed (the source gone, the target there)
    /// the index follows it.
    pub(super) fn settle_move(&self, from: MediaPath, to: MediaPath, real_from: MediaPath) {
        let files = self.clone();
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            let landed = loop {
                if !files.settled().await {
                    return; // The next scan corrects the index.
                }
                match (
                    files.storage.lookup(&from).await,
                    files.storage.lookup(&to).await,
                ) {
                    (Ok(f), Ok(t)) => break f == Found::Nothing && t != Found::Nothing,
                    _ if pause(start).await => {}
                    _ => return,
                }
            };
            if !landed {
                return;
            }
            let real_to = files.real(&to).await.unwrap_or_else(|_| to.clone());
            if files
                .library
                .try_record_move(&real_from, &real_to)
                .await
                .is_err()
            {
                files.library.request_scan();
            }
            tracing::info!(from = %from.to_string().escape_debug(), to = %to.to_string().escape_debug(),
                "a move answered 503 was carried out when the storage answered: index updated");
        });
    }

    /// An upload's commit answered 503: its index record stays while the rename may still
    /// land; once settled it stays (and a scan fixes the details) if the file of that size
    /// is there, else it is taken back.
    pub(super) fn settle_upload(&self, rec: Recorded, target: MediaPath, size: u64) {
        let files = self.clone();
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            let landed = loop {
                if !files.settled().await {
                    break false;
                }
                match files.storage.stat(&target).await {
                    Ok(st) => break st.is_some_and(|e| e.size == size),
                    Err(_) if pause(start).await => {}
                    Err(_) => break false,
                }
            };
            if landed {
                files.library.request_scan();
                tracing::info!(path = %target.to_string().escape_debug(),
                    "an upload answered 503 was committed when the storage answered");
            } else {
                files.library.undo_upload(rec).await;
            }
        });
    }
}
