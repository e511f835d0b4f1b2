//! Changes that answered 503 because storage did not answer in time (a hung NFS/SMB share).
//! Their outcome is unknown when the client is told: the one filesystem call that hung may
//! still return and take effect when the share answers again (a call stuck in the kernel
//! cannot be cancelled), while storage stops any later step of its own (see
//! `storage::local::ops::go_on`) and takes back a late move that replaced nothing. So the
//! bookkeeping of such a change is neither done nor taken back at once: it waits until no
//! call storage gave up on is still running ([`crate::storage::Storage::overdue`]), then
//! follows what the media root shows. The rule for clients (docs/CONTRACT.md): after a 503
//! on a change, look before trying again.

use std::time::Duration;

use super::files::Files;
use crate::library::Recorded;
use crate::storage::{Found, MediaPath};

/// How often a settling change looks whether storage's given-up calls have returned.
const EVERY: Duration = Duration::from_millis(500);
/// Past this the change is left to the hourly trash sweep and the next scan.
const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

/// A change that answered 503 (`Stalled`), with what its bookkeeping needs.
pub(super) enum Late {
    /// A delete to the trash: its record `id` (written first) stays until the move is known.
    /// Landed: the entry leaves the index and is listed in the trash. Not: the record goes.
    Trash {
        id: i64,
        key: String,
        real: MediaPath,
    },
    /// A permanent delete: if the entry is gone, the index follows.
    Delete { path: MediaPath, real: MediaPath },
    /// A move that stood (storage moves back one that replaced nothing): the index follows.
    Move {
        from: MediaPath,
        to: MediaPath,
        real_from: MediaPath,
    },
    /// An upload's commit: its record stays if a file of that size is there, else it is
    /// taken back.
    Upload {
        rec: Recorded,
        target: MediaPath,
        size: u64,
    },
}

impl Files {
    /// Settles `late` in the background (see the module).
    pub(super) fn settle(&self, late: Late) {
        let files = self.clone();
        tokio::spawn(async move { files.settle_now(late).await });
    }

    async fn settle_now(&self, late: Late) {
        let start = tokio::time::Instant::now();
        // Until every call storage gave up on has returned, and storage answers.
        let landed = loop {
            while self.storage.overdue() > 0 && start.elapsed() < MAX_WAIT {
                tokio::time::sleep(EVERY).await;
            }
            match self.landed(&late).await {
                _ if start.elapsed() >= MAX_WAIT => return, // Left to the sweep and scans.
                Some(l) => break l,
                None => tokio::time::sleep(EVERY).await,
            }
        };
        let path = match &late {
            Late::Trash { real, .. } | Late::Delete { real, .. } => real,
            Late::Move { to, .. } | Late::Upload { target: to, .. } => to,
        };
        tracing::info!(path = %path.to_string().escape_debug(), landed,
            "a change answered 503 settled once the storage answered");
        let moving = match &late {
            Late::Move { real_from, .. } => Some(real_from.clone()),
            _ => None,
        };
        match (late, landed) {
            (Late::Trash { real, .. }, true) => self.library.trash_finish_out(&real).await,
            (Late::Trash { id, .. }, false) => {
                let _ = self.library.trash_forget(id).await;
            }
            (Late::Delete { real, .. }, true) => self.library.record_delete(&real).await,
            (Late::Move { to, real_from, .. }, true) => {
                let real_to = self.real(&to).await.unwrap_or(to);
                if self
                    .library
                    .try_record_move(&real_from, &real_to)
                    .await
                    .is_err()
                {
                    self.library.request_scan();
                }
            }
            (Late::Upload { rec, .. }, true) => {
                self.library.upload_landed(&rec);
                self.library.request_scan();
            }
            (Late::Upload { rec, .. }, false) => self.library.undo_upload(rec).await,
            (Late::Delete { .. } | Late::Move { .. }, false) => {}
        }
        if let Some(from) = moving {
            self.library.move_settled(&from);
        }
    }

    /// Whether `late` was carried out, as the media root shows now; None when storage does
    /// not answer.
    async fn landed(&self, late: &Late) -> Option<bool> {
        let there = async |p: &MediaPath| -> Option<bool> {
            Some(!matches!(
                self.storage.lookup(p).await.ok()?,
                Found::Nothing
            ))
        };
        Some(match late {
            Late::Trash { key, .. } => self.storage.trash_keys().await.ok()?.contains(key),
            Late::Delete { path, .. } => !there(path).await?,
            Late::Move { from, to, .. } => !there(from).await? && there(to).await?,
            Late::Upload { target, size, .. } => self
                .storage
                .stat(target)
                .await
                .ok()?
                .is_some_and(|e| e.size == *size),
        })
    }
}
