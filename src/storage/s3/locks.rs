//! Per-name locks: commits, renames and new folders to one name on this node happen one at
//! a time, so the HEAD check before them is not raced by this node's own requests (S3 has
//! no rename-without-replace, and not every server has conditional writes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Per-name commit locks of one backend; entries go when no commit holds them.
#[derive(Default)]
pub(super) struct NameLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl NameLocks {
    pub(super) async fn lock(&self, key: &str) -> NameGuard<'_> {
        let m = {
            let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(key.to_string()).or_default().clone()
        };
        let guard = m.clone().lock_owned().await;
        NameGuard {
            locks: self,
            key: key.to_string(),
            _guard: guard,
        }
    }
}

pub(super) struct NameGuard<'a> {
    locks: &'a NameLocks,
    key: String,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for NameGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.locks.0.lock().unwrap_or_else(|p| p.into_inner());
        // Two references: the map's and this guard's; no one else waits for it.
        if map
            .get(&self.key)
            .is_some_and(|m| Arc::strong_count(m) <= 2)
        {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    #[tokio::test]
    async fn one_commit_per_name_and_the_map_empties() {
        let locks = NameLocks::default();
        let a = locks.lock("media/x").await;
        assert!(
            locks.lock("media/x").now_or_never().is_none(),
            "same name waits"
        );
        let b = locks.lock("media/y").now_or_never();
        assert!(b.is_some(), "another name does not wait");
        drop(b);
        drop(a);
        assert!(locks.lock("media/x").now_or_never().is_some());
        assert!(locks.0.lock().unwrap().is_empty(), "no entry left behind");
    }
}
