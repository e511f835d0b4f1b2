//! Three-way merge of note content, pure. The body is merged line by line with `diffy`
//! (non-overlapping edits of a common ancestor merge cleanly, overlapping ones are a
//! conflict: no merge, and no conflict markers stored in a note); title and visibility merge
//! as single values; tags merge as sets (an addition or removal on either side is kept).
//!
//! The result does not depend on which side is "ours": for a clean merge both orders give the
//! same content, so nodes that merge the same pair agree.

use std::collections::BTreeSet;

use super::model::Content;

/// Fields that changed differently on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeConflict {
    pub fields: Vec<&'static str>,
}

/// Merges `ours` and `theirs`, both descended from `base`.
pub fn merge_content(
    base: &Content,
    ours: &Content,
    theirs: &Content,
) -> Result<Content, MergeConflict> {
    let mut fields = Vec::new();
    let title = merge_value(&base.title, &ours.title, &theirs.title);
    if title.is_none() {
        fields.push("title");
    }
    let body = merge_text(&base.body, &ours.body, &theirs.body);
    if body.is_none() {
        fields.push("body");
    }
    let visibility = merge_value(&base.visibility, &ours.visibility, &theirs.visibility);
    if visibility.is_none() {
        fields.push("visibility");
    }
    match (title, body, visibility) {
        (Some(title), Some(body), Some(visibility)) => Ok(Content {
            title,
            body,
            tags: merge_tags(&base.tags, &ours.tags, &theirs.tags),
            visibility,
        }),
        _ => Err(MergeConflict { fields }),
    }
}

/// Line-based three-way merge; `None` when edits overlap.
pub fn merge_text(base: &str, ours: &str, theirs: &str) -> Option<String> {
    if ours == theirs || theirs == base {
        return Some(ours.to_string());
    }
    if ours == base {
        return Some(theirs.to_string());
    }
    diffy::merge(base, ours, theirs).ok()
}

/// A single value: the side that changed it wins; both changing it differently is a conflict.
fn merge_value<T: Clone + PartialEq>(base: &T, ours: &T, theirs: &T) -> Option<T> {
    if ours == theirs || theirs == base {
        Some(ours.clone())
    } else if ours == base {
        Some(theirs.clone())
    } else {
        None
    }
}

/// A tag is kept when both sides have it, or one side added it; a removal on either side
/// sticks. Sorted, like normalised tags.
fn merge_tags(base: &[String], ours: &[String], theirs: &[String]) -> Vec<String> {
    let b: BTreeSet<&String> = base.iter().collect();
    let o: BTreeSet<&String> = ours.iter().collect();
    let t: BTreeSet<&String> = theirs.iter().collect();
    o.union(&t)
        .filter(|tag| (o.contains(*tag) && t.contains(*tag)) || !b.contains(*tag))
        .map(|tag| (*tag).clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notes::model::Visibility;

    fn c(title: &str, body: &str, tags: &[&str]) -> Content {
        Content {
            title: title.into(),
            body: body.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            visibility: Visibility::Public,
        }
    }

    const BASE: &str = "one\ntwo\nthree\nfour\nfive\n";

    #[test]
    fn non_overlapping_edits_merge_cleanly_either_way_round() {
        let base = c("t", BASE, &["a", "b"]);
        let ours = c("T", "ONE\ntwo\nthree\nfour\nfive\n", &["a", "b", "c"]);
        let theirs = c("t", "one\ntwo\nthree\nfour\nFIVE\nsix\n", &["b"]);
        let m = merge_content(&base, &ours, &theirs).unwrap();
        assert_eq!(m.title, "T");
        assert_eq!(m.body, "ONE\ntwo\nthree\nfour\nFIVE\nsix\n");
        assert_eq!(m.tags, ["b", "c"]);
        assert_eq!(merge_content(&base, &theirs, &ours).unwrap(), m);
    }

    #[test]
    fn overlapping_edits_are_a_conflict() {
        let base = c("t", BASE, &[]);
        let ours = c("t", "one\nTWO\nthree\nfour\nfive\n", &[]);
        let theirs = c("t", "one\ndos\nthree\nfour\nfive\n", &[]);
        assert_eq!(
            merge_content(&base, &ours, &theirs),
            Err(MergeConflict {
                fields: vec!["body"]
            })
        );
        // Visibility has two values, so two changes of it always agree; titles can differ.
        let a = c("a", BASE, &[]);
        let mut b = c("b", BASE, &[]);
        b.visibility = Visibility::Private;
        assert_eq!(merge_content(&base, &a, &b).unwrap_err().fields, ["title"]);
        b.title = "t".into();
        assert_eq!(
            merge_content(&base, &a, &b).unwrap().visibility,
            Visibility::Private
        );
    }

    #[test]
    fn text_without_final_newline_and_identical_changes() {
        assert_eq!(
            merge_text("a\nb\nc", "A\nb\nc", "a\nb\nC").as_deref(),
            Some("A\nb\nC")
        );
        assert_eq!(merge_text("x", "y", "y").as_deref(), Some("y"));
        assert_eq!(merge_text("x", "x", "z").as_deref(), Some("z"));
        assert_eq!(merge_text("x", "y", "z"), None);
    }
}
