//! One `serve` per data dir: `<data_dir>/serve.lock`, held with `flock` for the life of the
//! service. Two services on one data dir would share the database, the staging records and
//! the control socket (the second one's exit removes the first one's socket), so the second
//! start is refused, naming the first one's pid. The offline commands (`user`, `notes`,
//! `backup`) do not take it: they are made to run beside the service.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

const LOCK: &str = "serve.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another streamhub is serving with this data dir ({path}{pid}): stop it first (e.g. \
         `systemctl stop streamhub`), or give this one its own server.data_dir"
    )]
    InUse { path: PathBuf, pid: String },
    #[error("cannot lock {path}: {reason}")]
    Io { path: PathBuf, reason: String },
}

/// Held while the service runs; the lock goes with the file (and with the process).
#[derive(Debug)]
pub struct ServeLock {
    _file: File,
}

/// Takes the data dir's lock, or says who holds it. Blocking.
pub fn take(data_dir: &Path) -> Result<ServeLock, LockError> {
    let path = data_dir.join(LOCK);
    let io = |e: std::io::Error| LockError::Io {
        path: path.clone(),
        reason: crate::storage::errno_message(&e),
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let pid = match text.trim().parse::<u32>() {
                Ok(p) => format!(", pid {p}"),
                Err(_) => String::new(),
            };
            return Err(LockError::InUse { path, pid });
        }
        Err(e) => return Err(io(e.into())),
    }
    // The pid, for the message a second start gives (informative only: the lock decides).
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    write!(file, "{}", std::process::id()).map_err(io)?;
    Ok(ServeLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = take(dir.path()).unwrap();
        let e = take(dir.path()).unwrap_err().to_string();
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        assert!(e.contains("another streamhub is serving"), "{e}");
        drop(first);
        take(dir.path()).unwrap();
    }
}
