//! Moves (`mv`): where an entry goes, who may move it, and the index kept in step — a
//! move whose index record cannot be written is moved back and refused.

use super::files::{Files, FilesError};
use super::settle::Late;
use crate::auth::User;
use crate::storage::{EntryKind, Found, LinkEnd, MediaPath, StorageError};

impl Files {
    /// Moves a file or folder, like `mv`: a target that is an existing folder (the root
    /// included) means "into it", under the same name. Replacing an existing target needs
    /// `overwrite` and the right to change it. Returns where it went.
    pub async fn move_entry(
        &self,
        who: &User,
        from: &MediaPath,
        to: &MediaPath,
        overwrite: bool,
    ) -> Result<MediaPath, FilesError> {
        if from.is_root() {
            return Err(StorageError::Invalid("the media root cannot be moved".into()).into());
        }
        if from == to {
            return Err(
                StorageError::Invalid("the source and the target are the same".into()).into(),
            );
        }
        // The rest of a folder move that stopped half-way: the same move finishes it.
        let resuming = match to.for_create() {
            Ok(t) => self.storage.resumes_move(from, &t).await?,
            Err(_) => false,
        };
        let to = match resuming {
            true => to.for_create()?,
            false => self.move_destination(from, to).await?,
        };
        if *from == to {
            return Err(StorageError::Invalid(format!("'{from}' is already there")).into());
        }
        // `mv link its-target` would replace the file by the link, now a loop: data lost.
        if let Found::Link(LinkEnd::File(r) | LinkEnd::Dir(r)) =
            self.may_change_entry(who, from, "move").await?
        {
            if r == self.real(&to).await? {
                return Err(StorageError::Invalid(format!(
                    "'{from}' is a link to '{to}': moving it onto what it leads to would destroy the file"
                ))
                .into());
            }
        }
        if !resuming {
            self.may_replace_entry(who, &to, overwrite).await?;
        }
        let replacing = !matches!(self.storage.lookup(&to).await?, Found::Nothing);
        let real_from = self.real(from).await?;
        self.library.moving(&real_from);
        let moved = self
            .rename_recorded(from, to, overwrite, replacing, real_from.clone())
            .await;
        // A move that answered 503 is settled by `settle` once the share answers.
        if !matches!(
            moved,
            Err(FilesError::Storage(StorageError::Stalled { .. }))
        ) {
            self.library.move_settled(&real_from);
        }
        moved
    }

    /// The rename, then its record; a record that cannot be written moves it back.
    async fn rename_recorded(
        &self,
        from: &MediaPath,
        to: MediaPath,
        overwrite: bool,
        replacing: bool,
        real_from: MediaPath,
    ) -> Result<MediaPath, FilesError> {
        if let Err(e) = self.storage.rename(from, &to, overwrite).await {
            if matches!(e, StorageError::Stalled { .. }) {
                self.settle(Late::Move {
                    from: from.clone(),
                    to: to.clone(),
                    real_from,
                });
            }
            return Err(e.into());
        }
        let real_to = self.real(&to).await.unwrap_or_else(|_| to.clone());
        if let Err(e) = self.library.try_record_move(&real_from, &real_to).await {
            // Moved back, the entry is where its index rows (and owners) still say. A move
            // that replaced something cannot be undone (the old entry is gone): it stands,
            // and the next scan corrects the index.
            if replacing {
                tracing::error!(error = %e, "library: cannot record a move that replaced an entry; the next scan corrects the index");
                return Ok(to);
            }
            match self.storage.rename(&to, from, false).await {
                Ok(()) => return Err(e.into()),
                Err(back) => {
                    tracing::error!(error = %e, back = %back, "library: cannot record a move nor undo it; the next scan corrects the index");
                    return Ok(to);
                }
            }
        }
        Ok(to)
    }

    /// Whether `path` is a folder now (a link to one inside the root counts).
    pub async fn is_folder(&self, path: &MediaPath) -> Result<bool, FilesError> {
        Ok(match self.storage.lookup(path).await? {
            Found::Entry(e) => e.kind == EntryKind::Dir,
            Found::Link(LinkEnd::Dir(_)) => true,
            _ => false,
        })
    }

    /// `to` itself, or `to/<name of from>` when `to` is a folder already there; checked as
    /// a new name either way.
    async fn move_destination(
        &self,
        from: &MediaPath,
        to: &MediaPath,
    ) -> Result<MediaPath, FilesError> {
        let into = to.is_root() || self.is_folder(to).await?;
        let dest = match (into, from.split_last()) {
            (true, Some((_, name))) => to.join(name)?,
            _ => to.clone(),
        };
        Ok(dest.for_create()?)
    }
}
