//! Boxes heard on the LAN that announce another cluster (or none): never peers, but a box
//! whose key was mistyped shows up here, so the table can say why it is not listed instead of
//! staying silent.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Enough to name the boxes of a household; a flood of fakes only rotates this list.
pub const MAX_OTHERS: usize = 8;
/// Forgotten when not heard for this long (announcements repeat well within it).
pub const OTHERS_TTL: Duration = Duration::from_secs(600);

/// A box of another cluster: its claimed id and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Other {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Default)]
pub struct Others(BTreeMap<String, (String, Instant)>);

impl Others {
    /// Notes an announcement of another cluster; true when it is news (worth one log line).
    pub fn note(&mut self, id: &str, name: &str, now: Instant) -> bool {
        self.0
            .retain(|_, (_, seen)| now.saturating_duration_since(*seen) < OTHERS_TTL);
        let new = !self.0.contains_key(id);
        if new && self.0.len() >= MAX_OTHERS {
            if let Some(oldest) = self
                .0
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone())
            {
                self.0.remove(&oldest);
            }
        }
        self.0.insert(id.to_string(), (name.to_string(), now));
        new
    }

    /// The boxes heard within the TTL.
    pub fn list(&self, now: Instant) -> Vec<Other> {
        self.0
            .iter()
            .filter(|(_, (_, seen))| now.saturating_duration_since(*seen) < OTHERS_TTL)
            .map(|(id, (name, _))| Other {
                id: id.clone(),
                name: name.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_of_other_clusters_are_remembered_capped_and_forgotten() {
        let t0 = Instant::now();
        let mut o = Others::default();
        assert!(o.note("aa", "attic", t0));
        assert!(!o.note("aa", "attic", t0 + Duration::from_secs(1)));
        for i in 0..20 {
            o.note(&format!("f{i:02}"), "fake", t0 + Duration::from_secs(2 + i));
        }
        let now = t0 + Duration::from_secs(30);
        assert_eq!(o.list(now).len(), MAX_OTHERS);
        // The flood pushed out the oldest, the real box among them; the newest stay.
        assert!(o.list(now).iter().all(|x| x.id != "aa"));
        assert!(o.list(now).iter().any(|x| x.id == "f19"));
        assert!(o.list(t0 + OTHERS_TTL + Duration::from_secs(60)).is_empty());
    }
}
