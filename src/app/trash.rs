//! Deleting, and the trash: a delete moves the entry to the backend's trash (one rename, so a
//! folder vanishes whole) and records it with the index rows of everything in it; its owner
//! or an admin can list, restore or purge it, and entries older than `storage.trash_days`
//! are purged by the sweep. Permanent deletes (`permanent`, or a backend or config without a
//! trash) remove at once.

use std::time::{SystemTime, UNIX_EPOCH};

use super::files::{Files, FilesError};
use super::settle::Late;
use crate::auth::User;
use crate::library::{LibraryError, TrashEntry};
use crate::storage::{EntryKind, Found, MediaPath, StorageError};

/// How a delete was asked for (`DELETE /media/<path>?recursive=&permanent=`).
#[derive(Debug, Clone, Copy, Default)]
pub struct DeleteOptions {
    /// A folder with something in it may be deleted (never without asking).
    pub recursive: bool,
    /// Skip the trash.
    pub permanent: bool,
}

/// What became of a deleted entry. `key` names where its bytes went (in the trash, or
/// removed from it): links that were made for it are pointed there, so they never serve
/// whatever is put at its old name next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    /// In the trash, as entry `id`.
    Trashed { id: i64, key: String },
    /// Removed for good.
    Gone { key: Option<String> },
}

/// The name a share link is pointed at while its entry is in the trash (or gone): reserved,
/// so it resolves to nothing.
pub fn trash_share_path(key: &str) -> String {
    format!("{}/{key}", crate::storage::local::TRASH_DIR)
}

/// One request at a time on a trash entry: restore, purge and the sweep claim it first.
struct Claim<'a> {
    files: &'a Files,
    id: i64,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut busy = self
            .files
            .trash_busy
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        busy.remove(&self.id);
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn index(e: LibraryError) -> FilesError {
    e.into()
}

/// A fresh trash key: 128 random bits, hex.
fn new_key() -> Result<String, FilesError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| FilesError::Index(format!("no randomness: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

impl Files {
    /// Deletes a file, a link, or a folder (one with something in it only with `recursive`,
    /// and for a member only if everything in it is theirs).
    pub async fn delete(
        &self,
        who: &User,
        path: &MediaPath,
        opts: DeleteOptions,
    ) -> Result<Deleted, FilesError> {
        if path.is_root() {
            return Err(FilesError::Forbidden(
                "the media root cannot be deleted".into(),
            ));
        }
        let found = self.may_change_entry(who, path, "delete").await?;
        let is_dir = matches!(&found, Found::Entry(e) if e.kind == EntryKind::Dir);
        if is_dir && !opts.recursive {
            let listing = self.storage.list(path).await?;
            if !listing.entries.is_empty() || listing.hidden {
                return Err(StorageError::NotEmpty.into());
            }
        }
        let real = self.real(path).await?;
        let shown = path.to_string();
        let keep = self.trash_days > 0 && !opts.permanent;
        if self.storage.has_trash() && (keep || is_dir) {
            // Out of sight in one step, recorded first: a permanent delete that fails halfway
            // leaves a trash entry that can be seen and purged again, never hidden leftovers.
            let key = new_key()?;
            let kind = if is_dir { "dir" } else { "file" };
            let id = self
                .library
                .trash_out(&real, &key, kind, who.id, now_secs())
                .await
                .map_err(index)?;
            match self.storage.trash(path, &key).await {
                Ok(()) => {}
                // The move may still land: its record stays until that is known.
                Err(e @ StorageError::Stalled { .. }) => {
                    self.settle(Late::Trash { id, key, real });
                    return Err(e.into());
                }
                Err(e) => {
                    let _ = self.library.trash_forget(id).await;
                    return Err(e.into());
                }
            }
            self.library.trash_finish_out(&real).await;
            if keep {
                tracing::info!(path = %shown.escape_debug(), trash = id, "deleted to the trash");
                return Ok(Deleted::Trashed { id, key });
            }
            let entry = self
                .library
                .trash_get(id)
                .await
                .map_err(index)?
                .ok_or(StorageError::NotFound)?;
            self.purge_entry(&entry).await?;
            return Ok(Deleted::Gone { key: Some(key) });
        }
        let removed = if is_dir && opts.recursive {
            self.storage.delete_tree(path).await
        } else {
            self.storage.delete(path).await
        };
        if let Err(e) = removed {
            if matches!(e, StorageError::Stalled { .. }) {
                self.settle(Late::Delete {
                    path: path.clone(),
                    real,
                });
                return Err(e.into());
            }
            if is_dir && opts.recursive {
                // Part of the folder may be gone: the next scan brings the index in line.
                self.library.request_scan();
            }
            return Err(e.into());
        }
        self.library.record_delete(&real).await;
        tracing::info!(path = %shown.escape_debug(), "deleted for good");
        Ok(Deleted::Gone { key: None })
    }

    /// Claims entry `id` for this request, or says another one has it.
    fn claim(&self, id: i64) -> Result<Claim<'_>, FilesError> {
        let mut busy = self.trash_busy.lock().unwrap_or_else(|p| p.into_inner());
        if !busy.insert(id) {
            return Err(FilesError::Busy(
                "another request is restoring or removing this trash entry".into(),
            ));
        }
        Ok(Claim { files: self, id })
    }

    /// The trash as `who` may see it: everything for an admin, their own entries for a member.
    pub async fn trash_list(&self, who: &User) -> Result<Vec<TrashEntry>, FilesError> {
        let owner = (!who.is_admin()).then_some(who.id);
        self.library.trash_list(owner).await.map_err(index)
    }

    /// Entry `id` if `who` may act on it (others' entries are "not found", as in the list).
    async fn trash_entry(&self, who: &User, id: i64) -> Result<TrashEntry, FilesError> {
        match self.library.trash_get(id).await.map_err(index)? {
            Some(e) if who.is_admin() || e.owner_id == Some(who.id) => Ok(e),
            _ => Err(StorageError::NotFound.into()),
        }
    }

    /// Puts entry `id` back where it was, or at `to`; never over something there now.
    pub async fn restore(
        &self,
        who: &User,
        id: i64,
        to: Option<MediaPath>,
    ) -> Result<(MediaPath, String), FilesError> {
        let _claim = self.claim(id)?;
        let entry = self.trash_entry(who, id).await?;
        let to = match to {
            // Like a move: an existing folder (or the root) means into it, under its name.
            Some(t) if t.is_root() || self.is_folder(&t).await? => {
                let original = MediaPath::from_decoded(&entry.path)?;
                t.join(original.name().unwrap_or_default())?
            }
            Some(t) => t,
            None => MediaPath::from_decoded(&entry.path)?,
        }
        .for_create()?;
        self.may_replace_entry(who, &to, false).await?;
        let created = match self.storage.untrash(&entry.key, &to).await {
            Err(StorageError::NotFound)
                if !self.storage.trash_keys().await?.contains(&entry.key) =>
            {
                // Its bytes are gone from the trash (removed by hand): so is the entry.
                let _ = self.library.trash_forget(id).await;
                return Err(StorageError::NotFound.into());
            }
            r => r?,
        };
        let real = self.real(&to).await.unwrap_or_else(|_| to.clone());
        if let Err(e) = self.library.trash_back(id, &real).await {
            // Its rows (and owners) could not return: back into the trash it goes, so the
            // entry is never in the library without its owner (issue 12).
            match self.storage.trash(&to, &entry.key).await {
                Ok(()) => {
                    for dir in created.iter().rev() {
                        if self.storage.delete(dir).await.is_err() {
                            break;
                        }
                    }
                }
                Err(back) => tracing::error!(error = %e, back = %back,
                    "a restored entry's rows cannot be recorded nor the entry trashed again; the next scan indexes it with no owner"),
            }
            return Err(index(e));
        }
        for dir in created {
            self.library.record_folder(&dir, Some(who.id)).await;
        }
        tracing::info!(path = %to.to_string().escape_debug(), trash = id, "restored");
        Ok((to, entry.key))
    }

    /// Removes entry `id` for good.
    pub async fn purge(&self, who: &User, id: i64) -> Result<(), FilesError> {
        let entry = self.trash_entry(who, id).await?;
        self.purge_entry(&entry).await
    }

    async fn purge_entry(&self, entry: &TrashEntry) -> Result<(), FilesError> {
        let _claim = self.claim(entry.id)?;
        // Gone meanwhile (restored or purged by another request): nothing to do.
        if self
            .library
            .trash_get(entry.id)
            .await
            .map_err(index)?
            .is_none()
        {
            return Ok(());
        }
        self.storage.purge(&entry.key).await?;
        self.library.trash_forget(entry.id).await.map_err(index)?;
        tracing::info!(path = %entry.path.escape_debug(), trash = entry.id, "purged");
        Ok(())
    }

    /// Empties what `who` may see of the trash; returns how many entries went.
    pub async fn empty_trash(&self, who: &User) -> Result<usize, FilesError> {
        let entries = self.trash_list(who).await?;
        for e in &entries {
            self.purge_entry(e).await?;
        }
        Ok(entries.len())
    }

    /// The sweep, soon after start and then hourly (a trash entry lives for days).
    pub async fn sweep_trash_forever(self) {
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + std::time::Duration::from_secs(5),
            std::time::Duration::from_secs(3600),
        );
        loop {
            tick.tick().await;
            match self.sweep_trash().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(entries = n, "trash: swept"),
                Err(e) => tracing::warn!(error = %e, "trash: sweep failed; trying again later"),
            }
        }
    }

    /// Purges entries older than `trash_days` (all of them when the trash is off), and
    /// forgets records whose bytes are no longer in the trash. Returns how many went.
    pub async fn sweep_trash(&self) -> Result<usize, FilesError> {
        let now = now_secs();
        let days = i64::try_from(self.trash_days).unwrap_or(i64::MAX / 86_400);
        let expired = self
            .library
            .trash_older_than(now.saturating_sub(days.saturating_mul(86_400)))
            .await
            .map_err(index)?;
        let mut n = 0;
        for e in &expired {
            self.purge_entry(e).await?;
            n += 1;
        }
        // A record a minute old whose key is missing was never moved (a crash between the
        // record and the move) or was removed by hand — unless a move answered 503 may
        // still land (see `settle`).
        if self.storage.overdue() > 0 {
            return Ok(n);
        }
        let keys = self.storage.trash_keys().await?;
        for e in self
            .library
            .trash_older_than(now - 60)
            .await
            .map_err(index)?
        {
            if !keys.contains(&e.key) && self.storage.has_trash() {
                self.library.trash_forget(e.id).await.map_err(index)?;
                n += 1;
            }
        }
        Ok(n)
    }
}
