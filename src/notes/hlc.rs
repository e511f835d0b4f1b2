//! Hybrid logical clock: the time stamp every revision carries. Pure (the caller supplies the
//! physical time and persists the clock state), so the skew rules are unit-tested here.
//!
//! An [`Hlc`] is `(wall_ms, logical, node)`, totally ordered in that order. [`Clock::now`]
//! never goes backwards, even when the physical clock does; [`Clock::update`] folds in a stamp
//! seen on a remote revision, but never lets it pull our clock more than `max_skew_ms` ahead of
//! our own physical time: a peer whose clock says 2040 cannot drag every later stamp of this
//! node into 2040. Nothing decides *ancestry* from time: see `tree` for the winner rule.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How far a remote stamp may move our clock ahead of our physical time (5 minutes).
pub const DEFAULT_MAX_SKEW_MS: u64 = 5 * 60 * 1000;

/// Longest node id accepted (ours are 32 hex digits).
const MAX_NODE_LEN: usize = 64;

/// A hybrid logical clock stamp. Serialised as `"<wall_ms>.<logical>@<node>"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hlc {
    pub wall_ms: u64,
    pub logical: u32,
    pub node: String,
}

impl Hlc {
    pub fn new(wall_ms: u64, logical: u32, node: impl Into<String>) -> Hlc {
        Hlc {
            wall_ms,
            logical,
            node: node.into(),
        }
    }

    /// The smallest stamp greater than `self` on the same node; used for merge revisions,
    /// whose stamp must be a function of their parents so every node computes the same one.
    pub fn successor(&self) -> Hlc {
        match self.logical.checked_add(1) {
            Some(l) => Hlc::new(self.wall_ms, l, self.node.clone()),
            None => Hlc::new(self.wall_ms.saturating_add(1), 0, self.node.clone()),
        }
    }
}

/// A node id: 1 to 64 characters of `0-9 a-z -`.
pub fn valid_node_id(s: &str) -> bool {
    (1..=MAX_NODE_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'-')
}

impl Ord for Hlc {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.wall_ms, self.logical, &self.node).cmp(&(other.wall_ms, other.logical, &other.node))
    }
}

impl PartialOrd for Hlc {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}@{}", self.wall_ms, self.logical, self.node)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid hybrid logical clock stamp (want <wall_ms>.<logical>@<node>)")]
pub struct HlcParseError;

impl FromStr for Hlc {
    type Err = HlcParseError;

    fn from_str(s: &str) -> Result<Hlc, HlcParseError> {
        let (time, node) = s.split_once('@').ok_or(HlcParseError)?;
        let (wall, logical) = time.split_once('.').ok_or(HlcParseError)?;
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(wall) || !digits(logical) || !valid_node_id(node) {
            return Err(HlcParseError);
        }
        let wall_ms: u64 = wall.parse().map_err(|_| HlcParseError)?;
        // Stamps are stored as SQLite INTEGERs.
        if wall_ms > i64::MAX as u64 {
            return Err(HlcParseError);
        }
        Ok(Hlc::new(
            wall_ms,
            logical.parse().map_err(|_| HlcParseError)?,
            node,
        ))
    }
}

/// Part of the persisted revision format (`Revision` in `revisions.jsonl`).
impl Serialize for Hlc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hlc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Hlc, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The clock state of this node: the last stamp it issued or observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clock {
    node: String,
    wall_ms: u64,
    logical: u32,
    max_skew_ms: u64,
}

impl Clock {
    pub fn new(node: impl Into<String>, wall_ms: u64, logical: u32, max_skew_ms: u64) -> Clock {
        Clock {
            node: node.into(),
            wall_ms,
            logical,
            max_skew_ms,
        }
    }

    /// The persisted part of the state: `(wall_ms, logical)`.
    pub fn state(&self) -> (u64, u32) {
        (self.wall_ms, self.logical)
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// A new stamp for a local event, greater than every stamp issued or observed before.
    pub fn now(&mut self, physical_ms: u64) -> Hlc {
        if physical_ms > self.wall_ms {
            self.wall_ms = physical_ms;
            self.logical = 0;
        } else {
            self.bump();
        }
        Hlc::new(self.wall_ms, self.logical, self.node.clone())
    }

    /// Folds in a stamp received from elsewhere. Returns false when the stamp was further
    /// ahead of `physical_ms` than `max_skew_ms` and was clamped to that bound instead of
    /// being adopted (the revision is still stored; only our clock refuses to follow it).
    pub fn update(&mut self, remote: &Hlc, physical_ms: u64) -> bool {
        let bound = physical_ms.saturating_add(self.max_skew_ms);
        let (r_wall, r_logical, adopted) = if remote.wall_ms > bound {
            (bound, 0, false)
        } else {
            (remote.wall_ms, remote.logical, true)
        };
        let wall = self.wall_ms.max(r_wall).max(physical_ms);
        let logical = if wall == self.wall_ms && wall == r_wall {
            Some(self.logical.max(r_logical))
        } else if wall == self.wall_ms {
            Some(self.logical)
        } else if wall == r_wall {
            Some(r_logical)
        } else {
            None
        };
        self.wall_ms = wall;
        match logical {
            Some(l) => {
                self.logical = l;
                self.bump();
            }
            None => self.logical = 0,
        }
        adopted
    }

    fn bump(&mut self) {
        match self.logical.checked_add(1) {
            Some(l) => self.logical = l,
            None => {
                self.wall_ms = self.wall_ms.saturating_add(1);
                self.logical = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YEAR_MS: u64 = 365 * 24 * 3600 * 1000;

    #[test]
    fn total_order_is_wall_then_logical_then_node() {
        let a = Hlc::new(10, 5, "b");
        assert!(Hlc::new(11, 0, "a") > a);
        assert!(Hlc::new(10, 6, "a") > a);
        assert!(Hlc::new(10, 5, "c") > a);
        assert!(a.successor() > a);
        assert!(Hlc::new(1, u32::MAX, "n").successor() > Hlc::new(1, u32::MAX, "n"));
    }

    #[test]
    fn display_parse_round_trip_and_rejects_junk() {
        let h = Hlc::new(1_700_000_000_000, 3, "0a1b");
        assert_eq!(h.to_string().parse::<Hlc>().unwrap(), h);
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<Hlc>(&json).unwrap(), h);
        for bad in [
            "", "1.2", "1@n", ".1@n", "1.@n", "a.1@n", "1.1@", "1.1@N!", "-1.1@n",
        ] {
            assert!(bad.parse::<Hlc>().is_err(), "{bad}");
        }
        assert!(format!("{}.0@n", u64::MAX).parse::<Hlc>().is_err());
    }

    #[test]
    fn now_is_monotonic_when_the_physical_clock_goes_back() {
        let mut c = Clock::new("n", 0, 0, DEFAULT_MAX_SKEW_MS);
        let a = c.now(1000);
        let b = c.now(500);
        let d = c.now(1000);
        let e = c.now(2000);
        assert!(a < b && b < d && d < e);
        assert_eq!((e.wall_ms, e.logical), (2000, 0));
    }

    #[test]
    fn update_adopts_a_remote_stamp_within_the_skew_bound() {
        let mut c = Clock::new("n", 0, 0, 60_000);
        let remote = Hlc::new(1030, 7, "m");
        assert!(c.update(&remote, 1000));
        let next = c.now(1000);
        assert!(
            next > remote,
            "a local event after receiving is later than the remote one"
        );
    }

    #[test]
    fn far_future_remote_stamp_is_clamped() {
        let now = 1_700_000_000_000;
        let mut c = Clock::new("n", 0, 0, 60_000);
        let future = Hlc::new(now + 20 * YEAR_MS, 0, "m");
        assert!(!c.update(&future, now));
        let next = c.now(now + 1);
        assert!(
            next.wall_ms <= now + 60_000 + 1,
            "clock stays near physical time"
        );
        // Once physical time passes the clamp, stamps follow physical time again.
        let later = c.now(now + 120_000);
        assert_eq!((later.wall_ms, later.logical), (now + 120_000, 0));
    }

    #[test]
    fn logical_overflow_moves_the_wall_forward() {
        let mut c = Clock::new("n", 5, u32::MAX, 0);
        let h = c.now(1);
        assert_eq!((h.wall_ms, h.logical), (6, 0));
        assert!(valid_node_id("0123abcd-x") && !valid_node_id("") && !valid_node_id("A"));
    }
}
