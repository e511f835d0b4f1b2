//! Data-ownership commands: `streamhub backup DEST` (a consistent copy of the database while
//! the service runs) and `streamhub notes export|import DIR` (Markdown for people, JSON lines
//! of every revision for machines — an import replays the revisions, so nothing is lost).

use std::io::{BufRead, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use rusqlite::OpenFlags;
use serde::{Deserialize, Serialize};

use super::{CliError, Target};
use crate::notes::{NotesStore, Revision, Viewer};
use crate::storage::errno_message;

fn failed(e: impl std::fmt::Display) -> CliError {
    CliError::Failed(e.to_string())
}

/// A file-system failure, by errno name (`ENOSPC: …`), naming the path.
fn io_failed(path: &Path) -> impl Fn(std::io::Error) -> CliError + '_ {
    move |e| CliError::Failed(format!("{}: {}", path.display(), errno_message(&e)))
}

/// `VACUUM INTO` reads one consistent snapshot (WAL readers do not block the writer), so the
/// copy is a valid database even while notes are being written; it is checked before we say so.
pub fn backup(target: &Target, dest: &Path) -> Result<String, CliError> {
    let src = target.existing_db()?;
    // A folder: a new, dated file in it.
    let dated;
    let dest = if dest.is_dir() {
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        dated = dest.join(format!("streamhub-{}.db", now.replace(':', "-")));
        dated.as_path()
    } else {
        dest
    };
    let dest_str = dest
        .to_str()
        .ok_or_else(|| CliError::Usage("the destination path must be UTF-8".into()))?;
    local_dest(dest)?;
    // Made empty and 0600 first (VACUUM INTO fills an empty file): a backup holds password
    // hashes and the share-link key, so it is never readable by others, whatever the umask.
    match crate::db::private_file(dest, false) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(CliError::Usage(format!(
                "{} exists already; choose a new file",
                dest.display()
            )))
        }
        Err(e) => return Err(io_failed(dest)(e)),
    }
    let written = backup_into(&src, dest, dest_str);
    if written.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    written
}

/// A backup is a SQLite database written by SQLite, so it goes where the live one may: on a
/// local filesystem (over NFS/SMB/FUSE its locking and fsync fail or lie, and a failed
/// `VACUUM INTO` leaves a `-journal` behind). Checked before the file is made.
fn local_dest(dest: &Path) -> Result<(), CliError> {
    let abs = std::path::absolute(dest).unwrap_or_else(|_| dest.to_path_buf());
    let existing = abs.ancestors().skip(1).find(|p| p.is_dir());
    let kind = existing.map_or("unknown", crate::storage::local::fs_kind_of);
    if matches!(kind, "local" | "unknown") {
        return Ok(());
    }
    Err(CliError::Usage(format!(
        "{} is on a {kind} filesystem: a backup is a SQLite database, and SQLite's locking \
         and fsync are only reliable on a local disk (the database never lives on a network \
         filesystem); write the backup to a local folder, then copy the file to the share",
        dest.display()
    )))
}

fn backup_into(src: &Path, dest: &Path, dest_str: &str) -> Result<String, CliError> {
    let conn = rusqlite::Connection::open_with_flags(src, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(failed)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(failed)?;
    conn.execute("VACUUM INTO ?1", [dest_str])
        .map_err(|e| CliError::Failed(format!("backup to {} failed: {e}", dest.display())))?;
    let copy = rusqlite::Connection::open_with_flags(dest, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(failed)?;
    let check: String = copy
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(failed)?;
    if check != "ok" {
        return Err(CliError::Failed(format!(
            "the copy failed its integrity check: {check}"
        )));
    }
    let size = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
    Ok(format!(
        "backup written to {} ({size} bytes, integrity ok)",
        dest.display()
    ))
}

/// A file of an export (created or replaced), readable by its owner only.
fn private_file(path: &Path) -> Result<std::fs::File, CliError> {
    crate::db::private_file(path, true).map_err(io_failed(path))
}

/// One line of `revisions.jsonl`.
#[derive(Serialize, Deserialize)]
struct ExportLine {
    /// Local owner's name (private notes are imported to the user of that name, if any).
    owner: Option<String>,
    revision: Revision,
}

fn front_matter_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// Writes `DIR/notes/<id>.md` (current version, front matter + body) and
/// `DIR/revisions.jsonl` (every revision of every note, for `import`).
pub fn export(target: &Target, dir: &Path) -> Result<String, CliError> {
    let db = target.open()?;
    let store = NotesStore::new(Default::default());
    // Private notes are in there: the folders 0700, the files 0600, whatever the umask.
    let notes_dir = dir.join("notes");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&notes_dir)
        .map_err(io_failed(&notes_dir))?;
    // One left by an earlier export keeps its mode through `create`: ours, so tightened.
    let md = std::fs::symlink_metadata(&notes_dir).map_err(io_failed(&notes_dir))?;
    if !md.is_dir() {
        return Err(CliError::Usage(format!(
            "{} is not a folder (a link?): choose another export folder",
            notes_dir.display()
        )));
    }
    std::fs::set_permissions(
        &notes_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .map_err(io_failed(&notes_dir))?;
    let notes: Vec<(String, Option<String>)> = db
        .with(|c| {
            let mut st = c.prepare(
                "SELECT n.id, u.name FROM notes n
                 LEFT JOIN users u ON u.id = n.owner_id ORDER BY n.id",
            )?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<Vec<_>, _>>()
        })
        .map_err(failed)?;
    let mut lines = std::io::BufWriter::new(private_file(&dir.join("revisions.jsonl"))?);
    let (mut n_notes, mut n_revs) = (0, 0);
    for (id, owner) in notes {
        let (note, revs, unpublished) = db
            .with(|c| {
                // Every note, whoever may read it: a private note whose owner was deleted
                // has no owner left that a user viewer could match. Stubs (a peer's private
                // revisions: no content, their ids cannot be checked, so an import would
                // refuse them) are not among the revisions listed.
                let note = store.get(c, &id, Viewer::Everything)?;
                let unpublished: bool = c.query_row(
                    "SELECT stub FROM note_revisions WHERE rev = ?1",
                    [&note.rev],
                    |r| r.get(0),
                )?;
                let infos = store.revisions(c, &id, Viewer::Everything)?;
                let revs = infos
                    .iter()
                    .map(|i| store.revision(c, &id, &i.rev, Viewer::Everything))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok::<_, crate::notes::NoteError>((note, revs, unpublished))
            })
            .map_err(failed)?;
        for revision in revs {
            let line = ExportLine {
                owner: owner.clone(),
                revision,
            };
            serde_json::to_writer(&mut lines, &line).map_err(failed)?;
            lines
                .write_all(b"\n")
                .map_err(io_failed(&dir.join("revisions.jsonl")))?;
            n_revs += 1;
        }
        if unpublished {
            // Withdrawn on another node (its winner is a stub): nothing here to show.
            continue;
        }
        let md = format!(
            "---\nid: {}\nrev: {}\ntitle: {}\ntags: {}\nvisibility: {}\nauthor: {}\nowner: {}\ndeleted: {}\n---\n{}\n",
            note.id,
            note.rev,
            front_matter_str(&note.title),
            serde_json::to_string(&note.tags).map_err(failed)?,
            note.visibility.as_str(),
            front_matter_str(&note.author),
            owner.as_deref().map(front_matter_str).unwrap_or_else(|| "null".into()),
            note.deleted,
            note.body
        );
        let md_path = dir.join("notes").join(format!("{}.md", note.id));
        private_file(&md_path)?
            .write_all(md.as_bytes())
            .map_err(io_failed(&md_path))?;
        n_notes += 1;
    }
    lines.flush().map_err(failed)?;
    Ok(format!(
        "exported {n_notes} notes ({n_revs} revisions) to {}",
        dir.display()
    ))
}

/// Replays `DIR/revisions.jsonl` (idempotent: importing twice changes nothing), then gives
/// each note to the local user named as its owner.
pub fn import(target: &Target, dir: &Path, owner_map: &[String]) -> Result<String, CliError> {
    let mut map = std::collections::HashMap::new();
    for m in owner_map {
        match m.split_once('=') {
            Some((old, new)) if !old.is_empty() && !new.is_empty() => {
                map.insert(old.to_string(), new.to_string());
            }
            _ => {
                return Err(CliError::Usage(format!(
                    "--owner-map takes OLD=NEW (an export's user and a local user), not '{m}'"
                )))
            }
        }
    }
    let file = std::fs::File::open(dir.join("revisions.jsonl")).map_err(|e| {
        CliError::Usage(format!(
            "{}: {}",
            dir.join("revisions.jsonl").display(),
            errno_message(&e)
        ))
    })?;
    let mut lines = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(failed)?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: ExportLine = serde_json::from_str(&line)
            .map_err(|e| CliError::Usage(format!("revisions.jsonl line {}: {e}", i + 1)))?;
        lines.push(parsed);
    }
    // Parents first: not required by the store, but it keeps conflict events meaningful.
    lines.sort_by_key(|l| l.revision.gen);
    for l in &mut lines {
        if let Some(new) = l.owner.as_ref().and_then(|o| map.get(o)) {
            l.owner = Some(new.clone());
        }
    }
    let db = target.open()?;
    // Every owner must be a user here, or their private notes would be nobody's and
    // visible to nobody: refuse before anything is written.
    let owners: std::collections::BTreeSet<&str> =
        lines.iter().filter_map(|l| l.owner.as_deref()).collect();
    let mut missing = Vec::new();
    for name in owners {
        let known: bool = db
            .with(|c| {
                c.query_row(
                    "SELECT EXISTS(SELECT 1 FROM users WHERE name = ?1)",
                    [name],
                    |r| r.get(0),
                )
            })
            .map_err(failed)?;
        if !known {
            missing.push(name.to_string());
        }
    }
    if !missing.is_empty() {
        return Err(CliError::Usage(format!(
            "nothing imported: the notes belong to users this box does not have: {}. Add them \
             first (streamhub user add NAME), or give their notes to local users with \
             --owner-map OLD=NEW",
            missing.join(", ")
        )));
    }
    let store = NotesStore::new(Default::default());
    let (mut added, mut known) = (0, 0);
    for l in &lines {
        let outcome = db
            .with(|c| store.put_revision(c, &l.revision))
            .map_err(|e| failed(format!("revision {}: {e}", l.revision.rev)))?;
        match outcome {
            crate::notes::PutOutcome::Inserted => added += 1,
            crate::notes::PutOutcome::AlreadyPresent => known += 1,
        }
    }
    for l in &lines {
        if let Some(owner) = &l.owner {
            db.with(|c| {
                c.execute(
                    "UPDATE notes SET owner_id = (SELECT id FROM users WHERE name = ?1)
                     WHERE id = ?2 AND owner_id IS NULL",
                    [owner, &l.revision.note_id],
                )
            })
            .map_err(failed)?;
        }
    }
    Ok(format!(
        "imported {added} revisions ({known} were already here) from {}",
        dir.display()
    ))
}
