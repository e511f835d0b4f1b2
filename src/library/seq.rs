//! The write order of the index, and what a reader of the disk must know about changes made
//! while it was reading. A reader (the scanner, a listing's refresh) reads a folder, then
//! applies what it read in a later transaction; in between, streamhub may have changed the
//! same entries. Three marks keep such a stale reading from undoing those changes:
//!
//! - every write stamps the next number into `media.seq`; a reading takes a number *before*
//!   it reads, and leaves alone rows stamped later (written by someone who knew more);
//! - a path whose change is on its way (an upload recorded before its rename, a move in
//!   flight) is *in flux*: a reading that misses its file keeps its row, because it may
//!   have read the folder between the record and the rename;
//! - a path removed through streamhub (a delete, the source of a move) is *gone* from the
//!   number of its removal on: a reading taken before that does not bring it back. These
//!   marks last only while such an older reading is still open.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Gone marks kept at most: a reading held long (a folder on a hung share, until the storage
/// timeout) while a client deletes thousands of files must not grow memory without bound.
/// Past it the oldest mark goes; at worst an old reading then brings one path back, which the
/// next listing of its folder removes again.
const MAX_GONE: usize = 16 * 1024;

#[derive(Debug, Default)]
struct Marks {
    /// Path -> how many changes of it are on their way.
    in_flux: HashMap<String, usize>,
    /// Path -> the number stamped when it was removed through streamhub.
    gone: HashMap<String, i64>,
    /// The numbers of the readings still open, with how many hold each.
    readers: BTreeMap<i64, usize>,
}

impl Marks {
    /// Forgets removals that no open reading predates.
    fn prune(&mut self) {
        match self.readers.keys().next().copied() {
            None => self.gone.clear(),
            Some(oldest) => self.gone.retain(|_, at| *at > oldest),
        }
    }
}

#[derive(Debug)]
pub struct Seq {
    next: AtomicI64,
    marks: Arc<Mutex<Marks>>,
}

/// An open reading of the disk, taken before the read: dropped once what it read is applied.
#[derive(Debug)]
pub struct Reading {
    pub at: i64,
    marks: Arc<Mutex<Marks>>,
}

impl Drop for Reading {
    fn drop(&mut self) {
        let mut m = lock(&self.marks);
        if let Some(n) = m.readers.get_mut(&self.at) {
            *n -= 1;
            if *n == 0 {
                m.readers.remove(&self.at);
            }
        }
        m.prune();
    }
}

/// The marks are plain maps, consistent after every statement: a panic elsewhere while the
/// lock was held leaves nothing half-done, so a poisoned lock is used as it is.
fn lock(marks: &Mutex<Marks>) -> MutexGuard<'_, Marks> {
    marks.lock().unwrap_or_else(|p| p.into_inner())
}

impl Seq {
    pub fn starting_after(max: i64) -> Seq {
        Seq {
            next: AtomicI64::new(max + 1),
            marks: Arc::default(),
        }
    }

    pub fn next(&self) -> i64 {
        self.next.fetch_add(1, Ordering::SeqCst)
    }

    /// A reading starting now: take it before reading the disk.
    pub fn reading(&self) -> Reading {
        // Numbered and registered under the lock: a removal numbered after it cannot be
        // pruned before it is registered.
        let mut m = lock(&self.marks);
        let at = self.next();
        *m.readers.entry(at).or_default() += 1;
        Reading {
            at,
            marks: self.marks.clone(),
        }
    }

    /// A change of `path` is on its way: readings that miss its file keep its row.
    pub fn in_flux(&self, path: &str) {
        *lock(&self.marks)
            .in_flux
            .entry(path.to_owned())
            .or_default() += 1;
    }

    /// That change of `path` is settled (carried out, or taken back).
    pub fn settled(&self, path: &str) {
        let mut m = lock(&self.marks);
        if let Some(n) = m.in_flux.get_mut(path) {
            *n -= 1;
            if *n == 0 {
                m.in_flux.remove(path);
            }
        }
    }

    pub fn is_in_flux(&self, path: &str) -> bool {
        lock(&self.marks).in_flux.contains_key(path)
    }

    /// `path` (with everything under it) was removed through streamhub just now.
    pub fn removed(&self, path: &str) {
        let mut m = lock(&self.marks);
        if m.readers.is_empty() {
            return; // No reading predates it.
        }
        let at = self.next();
        if m.gone.len() >= MAX_GONE && !m.gone.contains_key(path) {
            if let Some(oldest) = m
                .gone
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(p, _)| p.clone())
            {
                m.gone.remove(&oldest);
            }
        }
        m.gone.insert(path.to_owned(), at);
    }

    /// Whether `path`, or a folder above it, was removed through streamhub after a reading
    /// numbered `read_at` began: that reading's view of it is older than the removal.
    pub fn gone_since(&self, path: &str, read_at: i64) -> bool {
        let m = lock(&self.marks);
        if m.gone.is_empty() {
            return false;
        }
        let later = |p: &str| m.gone.get(p).is_some_and(|at| *at > read_at);
        later(path) || path.match_indices('/').any(|(i, _)| later(&path[..i]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removal_hides_the_path_and_below_from_older_readings_only() {
        let seq = Seq::starting_after(0);
        let old = seq.reading();
        seq.removed("a/b");
        let new = seq.reading();
        assert!(seq.gone_since("a/b", old.at));
        assert!(seq.gone_since("a/b/c.mp4", old.at));
        assert!(!seq.gone_since("a/bc", old.at));
        assert!(!seq.gone_since("a", old.at));
        assert!(!seq.gone_since("a/b", new.at));
    }

    #[test]
    fn removals_are_forgotten_once_no_older_reading_is_open() {
        let seq = Seq::starting_after(0);
        seq.removed("x"); // No reading open: nothing to remember.
        assert!(lock(&seq.marks).gone.is_empty());
        let old = seq.reading();
        seq.removed("y");
        let new = seq.reading();
        drop(old);
        assert!(lock(&seq.marks).gone.is_empty(), "`new` began after it");
        drop(new);
        assert!(lock(&seq.marks).readers.is_empty());
    }

    #[test]
    fn gone_marks_are_bounded_and_the_oldest_goes_first() {
        let seq = Seq::starting_after(0);
        let old = seq.reading();
        for i in 0..MAX_GONE + 10 {
            seq.removed(&format!("f{i}"));
        }
        assert_eq!(lock(&seq.marks).gone.len(), MAX_GONE);
        assert!(!seq.gone_since("f0", old.at), "the oldest went");
        assert!(seq.gone_since(&format!("f{}", MAX_GONE + 9), old.at));
    }

    #[test]
    fn a_path_stays_in_flux_until_each_of_its_changes_settles() {
        let seq = Seq::starting_after(0);
        seq.in_flux("m.mp4");
        seq.in_flux("m.mp4");
        seq.settled("m.mp4");
        assert!(seq.is_in_flux("m.mp4"));
        seq.settled("m.mp4");
        assert!(!seq.is_in_flux("m.mp4"));
        seq.settled("m.mp4"); // An extra settle is harmless.
        assert!(!seq.is_in_flux("m.mp4"));
    }
}
