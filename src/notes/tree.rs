//! The revision tree of one note, pure: which revisions are leaves, which leaf is the current
//! note (the winner), which are conflicts, and the common ancestor a merge starts from.
//!
//! # The winner rule
//! Among the leaves (revisions no other stored revision names as a parent), the winner is the
//! greatest by, in order:
//! 1. **not deleted** beats deleted, so a concurrent edit is never hidden by a concurrent
//!    delete (the tombstone stays as a conflict);
//! 2. **generation** (`gen`: 1 + the largest parent generation): a descendant always has a
//!    greater generation than each of its ancestors, so this order is consistent with
//!    causality, and a longer line of edits beats a shorter concurrent one whatever the clocks;
//! 3. **HLC stamp**, only between concurrent leaves of the same generation: the later edit;
//! 4. **revision id**, which makes the order total.
//!
//! Every input to the rule is part of the hashed revision, so every node that holds the same
//! set of revisions picks the same winner, whatever order they arrived in. A revision stamped
//! years in the future wins only against concurrent leaves of its own generation; any edit made
//! on top of it (or on top of anything later) supersedes it by ancestry (it stops being a leaf)
//! and by generation, so a bad clock cannot freeze a note.
//!
//! A merge revision's stamp is derived from its parents (`Revision::build`), so a merge with a
//! far-future parent carries that stamp too; again it only decides ties between concurrent
//! leaves of one generation. Separately, `hlc::Clock::update` never lets such a stamp pull
//! this node's own clock more than the skew bound ahead of physical time.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use super::hlc::Hlc;

/// What the winner rule looks at in a leaf.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub rev: &'a str,
    pub gen: u64,
    pub hlc: &'a Hlc,
    pub deleted: bool,
}

/// `Greater` when `a` beats `b`.
pub fn compare(a: &Candidate<'_>, b: &Candidate<'_>) -> Ordering {
    (!a.deleted, a.gen, a.hlc, a.rev).cmp(&(!b.deleted, b.gen, b.hlc, b.rev))
}

/// The winner and the conflicts (best first) among `leaves`, as indexes into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub winner: usize,
    pub conflicts: Vec<usize>,
}

pub fn choose(leaves: &[Candidate<'_>]) -> Option<Choice> {
    let mut order: Vec<usize> = (0..leaves.len()).collect();
    order.sort_by(|&a, &b| compare(&leaves[b], &leaves[a]));
    let (&winner, rest) = order.split_first()?;
    Some(Choice {
        winner,
        conflicts: rest.to_vec(),
    })
}

/// The revisions of `graph` (rev → parents) that no revision in it names as a parent.
pub fn leaves(graph: &HashMap<String, Vec<String>>) -> Vec<&str> {
    let parents: HashSet<&str> = graph.values().flatten().map(String::as_str).collect();
    let mut out: Vec<&str> = graph
        .keys()
        .map(String::as_str)
        .filter(|r| !parents.contains(r))
        .collect();
    out.sort_unstable();
    out
}

/// The best common ancestor of `a` and `b` in `graph` (rev → (gen, parents)): the common
/// ancestor (a revision counts as its own ancestor) with the greatest generation, ties broken
/// by revision id so every node picks the same one.
pub fn common_ancestor<'a>(
    graph: &'a HashMap<String, (u64, Vec<String>)>,
    a: &str,
    b: &str,
) -> Option<&'a str> {
    let of_a = ancestors(graph, a);
    ancestors(graph, b)
        .into_iter()
        .filter(|r| of_a.contains(r))
        .filter_map(|r| graph.get_key_value(r).map(|(k, v)| (v.0, k.as_str())))
        .max()
        .map(|(_, r)| r)
}

/// `start` and every revision reachable through parents (those present in `graph`).
fn ancestors<'a>(graph: &'a HashMap<String, (u64, Vec<String>)>, start: &str) -> HashSet<&'a str> {
    let mut seen = HashSet::new();
    let mut stack: Vec<&'a str> = graph
        .get_key_value(start)
        .map(|(k, _)| k.as_str())
        .into_iter()
        .collect();
    while let Some(r) = stack.pop() {
        if !seen.insert(r) {
            continue;
        }
        if let Some((_, ps)) = graph.get(r) {
            stack.extend(
                ps.iter()
                    .filter_map(|p| graph.get_key_value(p.as_str()).map(|(k, _)| k.as_str())),
            );
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    const YEAR_MS: u64 = 365 * 24 * 3600 * 1000;

    fn hlc(ms: u64) -> Hlc {
        Hlc::new(ms, 0, "n")
    }

    fn winner<'a>(c: &[Candidate<'a>]) -> &'a str {
        c[choose(c).unwrap().winner].rev
    }

    #[test]
    fn rule_order_deleted_then_generation_then_clock_then_id() {
        let (early, late) = (hlc(1), hlc(2));
        let c = |rev, gen, hlc, deleted| Candidate {
            rev,
            gen,
            hlc,
            deleted,
        };
        assert_eq!(
            winner(&[c("a", 9, &late, true), c("b", 2, &early, false)]),
            "b"
        );
        assert_eq!(
            winner(&[c("a", 3, &early, false), c("b", 2, &late, false)]),
            "a"
        );
        assert_eq!(
            winner(&[c("a", 2, &late, false), c("b", 2, &early, false)]),
            "a"
        );
        assert_eq!(
            winner(&[c("a", 2, &late, false), c("b", 2, &late, false)]),
            "b"
        );
        assert!(choose(&[]).is_none());
        let ch = choose(&[
            c("a", 1, &early, false),
            c("b", 3, &early, false),
            c("c", 2, &early, false),
        ])
        .unwrap();
        assert_eq!((ch.winner, ch.conflicts), (1, vec![2, 0]));
    }

    #[test]
    fn far_future_stamp_does_not_beat_a_causally_later_line() {
        // root(1) ← future(2, stamped 20 years ahead); root ← a(2) ← b(3), concurrent.
        let now = 1_700_000_000_000;
        let future = hlc(now + 20 * YEAR_MS);
        let (ha, hb) = (hlc(now), hlc(now + 1));
        let cands = [
            Candidate {
                rev: "future",
                gen: 2,
                hlc: &future,
                deleted: false,
            },
            Candidate {
                rev: "b",
                gen: 3,
                hlc: &hb,
                deleted: false,
            },
        ];
        assert_eq!(winner(&cands), "b");
        // And an edit on top of the future revision, stamped with today's clock, wins too.
        let child = Candidate {
            rev: "child",
            gen: 3,
            hlc: &ha,
            deleted: false,
        };
        assert_eq!(compare(&child, &cands[0]), Ordering::Greater);
    }

    #[test]
    fn choice_does_not_depend_on_input_order() {
        let h: Vec<Hlc> = (0..4).map(|i| hlc(10 - i)).collect();
        let base = [
            Candidate {
                rev: "w",
                gen: 2,
                hlc: &h[0],
                deleted: false,
            },
            Candidate {
                rev: "x",
                gen: 2,
                hlc: &h[1],
                deleted: false,
            },
            Candidate {
                rev: "y",
                gen: 4,
                hlc: &h[2],
                deleted: true,
            },
            Candidate {
                rev: "z",
                gen: 2,
                hlc: &h[0],
                deleted: false,
            },
        ];
        fn names<'a>(c: &[Candidate<'a>]) -> (&'a str, Vec<&'a str>) {
            let ch = choose(c).unwrap();
            let conf: Vec<&str> = ch.conflicts.iter().map(|&i| c[i].rev).collect();
            (c[ch.winner].rev, conf)
        }
        let expected = names(&base);
        assert_eq!(expected, ("z", vec!["w", "x", "y"]));
        let mut v = base.to_vec();
        for _ in 0..4 {
            v.rotate_left(1);
            assert_eq!(names(&v), expected);
            v.reverse();
            assert_eq!(names(&v), expected);
        }
    }

    fn graph(edges: &[(&str, u64, &[&str])]) -> HashMap<String, (u64, Vec<String>)> {
        edges
            .iter()
            .map(|(r, g, ps)| {
                (
                    r.to_string(),
                    (*g, ps.iter().map(|p| p.to_string()).collect()),
                )
            })
            .collect()
    }

    #[test]
    fn leaves_and_common_ancestor() {
        let g = graph(&[
            ("r", 1, &[]),
            ("a", 2, &["r"]),
            ("b", 2, &["r"]),
            ("c", 3, &["a"]),
            ("m", 3, &["a", "b"]),
        ]);
        let plain: HashMap<String, Vec<String>> =
            g.iter().map(|(k, v)| (k.clone(), v.1.clone())).collect();
        assert_eq!(leaves(&plain), ["c", "m"]);
        assert_eq!(common_ancestor(&g, "c", "m"), Some("a"));
        assert_eq!(common_ancestor(&g, "a", "b"), Some("r"));
        assert_eq!(common_ancestor(&g, "c", "a"), Some("a"));
        assert_eq!(common_ancestor(&g, "c", "nope"), None);
        // A parent we do not hold is skipped, not followed.
        let g = graph(&[("x", 2, &["missing"]), ("y", 2, &["missing"])]);
        assert_eq!(common_ancestor(&g, "x", "y"), None);
    }
}
