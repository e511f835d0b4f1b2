//! Note content and revisions as plain values: visibility, the size limits and tag
//! normalisation, and the content hash that names a revision. Pure: no SQL.
//!
//! A revision id is `sha256` (hex) over a length-prefixed canonical encoding of
//! `note_id, gen, parents (sorted), hlc, title, body, tags (normalised, sorted), visibility,
//! deleted`. The author name is *not* hashed: it describes who made the revision, and two people
//! on two nodes who merge the same pair the same way must reach the same revision.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::hlc::{valid_node_id, Hlc};
use super::NoteError;

/// Serde here (and on `Content`, `Revision` and `Hlc`) is the persisted revision format, not
/// an API answer: `streamhub notes export` writes revisions as JSON lines that `import` (and
/// later sync) read back, so the format belongs to the domain. The API's JSON for notes and
/// revisions is `http::wire::notes`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Public,
    Private,
}

/// By hand rather than derived: serde_json reports a derived enum given `true` or `5` as a
/// syntax error, and a client deserves "visibility must be public or private" (422).
impl<'de> Deserialize<'de> for Visibility {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Visibility;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"public\" or \"private\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Visibility, E> {
                Visibility::parse(v)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_str(V)
    }
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
        }
    }

    pub fn parse(s: &str) -> Option<Visibility> {
        match s {
            "public" => Some(Visibility::Public),
            "private" => Some(Visibility::Private),
            _ => None,
        }
    }
}

/// What a person writes: everything of a revision that is not bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    pub title: String,
    pub body: String,
    pub tags: Vec<String>,
    pub visibility: Visibility,
}

/// A partial edit: fields left `None` keep their current value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub title: Option<String>,
    pub body: Option<String>,
    pub tags: Option<Vec<String>>,
    pub visibility: Option<Visibility>,
}

impl Changes {
    pub fn apply(self, base: &Content) -> Content {
        Content {
            title: self.title.unwrap_or_else(|| base.title.clone()),
            body: self.body.unwrap_or_else(|| base.body.clone()),
            tags: self.tags.unwrap_or_else(|| base.tags.clone()),
            visibility: self.visibility.unwrap_or(base.visibility),
        }
    }
}

/// The local user making a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    pub id: i64,
    pub name: String,
}

/// Size limits (from config; the defaults are the documented ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Characters (Unicode scalar values).
    pub title_chars: usize,
    /// Bytes of UTF-8.
    pub body_bytes: usize,
    pub tags: usize,
    /// Characters per tag, after trimming.
    pub tag_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            title_chars: 500,
            body_bytes: 1024 * 1024,
            tags: 64,
            tag_chars: 64,
        }
    }
}

impl Limits {
    /// Checks `content` and returns it with normalised tags (trimmed, lower-case, unique,
    /// sorted). Errors name the field.
    pub fn check(&self, content: Content) -> Result<Content, NoteError> {
        if content.title.chars().count() > self.title_chars {
            return Err(NoteError::TooLong {
                field: "title",
                max: self.title_chars,
            });
        }
        if content.title.chars().any(char::is_control) {
            return Err(invalid("title", "must not contain control characters"));
        }
        if content.body.len() > self.body_bytes {
            return Err(NoteError::TooLong {
                field: "body",
                max: self.body_bytes,
            });
        }
        if content.body.contains('\0') {
            return Err(invalid("body", "must not contain NUL characters"));
        }
        let tags = self.normalize_tags(&content.tags)?;
        Ok(Content { tags, ..content })
    }

    pub fn normalize_tags(&self, tags: &[String]) -> Result<Vec<String>, NoteError> {
        let mut out: Vec<String> = Vec::with_capacity(tags.len());
        for t in tags {
            let t = t.trim().to_lowercase();
            if t.is_empty() {
                return Err(invalid("tags", "a tag must not be empty"));
            }
            if t.chars().count() > self.tag_chars {
                return Err(NoteError::TooLong {
                    field: "tags",
                    max: self.tag_chars,
                });
            }
            if t.chars().any(char::is_control) {
                return Err(invalid("tags", "a tag must not contain control characters"));
            }
            out.push(t);
        }
        out.sort();
        out.dedup();
        if out.len() > self.tags {
            return Err(invalid("tags", &format!("at most {} tags", self.tags)));
        }
        Ok(out)
    }
}

fn invalid(field: &'static str, reason: &str) -> NoteError {
    NoteError::Invalid {
        field,
        reason: reason.to_string(),
    }
}

/// An immutable revision of a note, as stored and as replicated (serde: the export and
/// replication format, see `Visibility`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    pub note_id: String,
    pub rev: String,
    /// Sorted.
    pub parents: Vec<String>,
    /// 1 for a root, else 1 + the largest parent generation.
    pub gen: u64,
    /// Stamp; its `node` is the node that made the revision (for a merge: see `build`).
    pub hlc: Hlc,
    #[serde(flatten)]
    pub content: Content,
    pub deleted: bool,
    /// The author's name (user ids mean nothing on other nodes).
    pub author: String,
}

impl Revision {
    /// Builds a revision over `parents` (rev id and generation of each) and computes its id.
    /// With two or more parents (a merge) the `hlc` argument is ignored and the stamp is the
    /// successor of the greatest parent stamp, so that the id depends on content and parents
    /// only: every node that merges the same leaves the same way makes the same revision.
    pub fn build(
        note_id: &str,
        parents: &[(String, u64, Hlc)],
        content: Content,
        deleted: bool,
        hlc: Hlc,
        author: &str,
    ) -> Revision {
        let gen = parents.iter().map(|p| p.1).max().unwrap_or(0) + 1;
        let hlc = if parents.len() > 1 {
            parents
                .iter()
                .map(|p| &p.2)
                .max()
                .map(Hlc::successor)
                .unwrap_or(hlc)
        } else {
            hlc
        };
        let mut ids: Vec<String> = parents.iter().map(|p| p.0.clone()).collect();
        ids.sort();
        ids.dedup();
        let mut r = Revision {
            note_id: note_id.to_string(),
            rev: String::new(),
            parents: ids,
            gen,
            hlc,
            content,
            deleted,
            author: author.to_string(),
        };
        r.rev = r.compute_rev();
        r
    }

    /// The id this revision's content and parents hash to.
    pub fn compute_rev(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"streamhub-note-rev-v1\0");
        let mut field = |b: &[u8]| {
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        };
        field(self.note_id.as_bytes());
        field(&self.gen.to_be_bytes());
        let mut parents = self.parents.clone();
        parents.sort();
        field(&(parents.len() as u64).to_be_bytes());
        for p in &parents {
            field(p.as_bytes());
        }
        field(&self.hlc.wall_ms.to_be_bytes());
        field(&self.hlc.logical.to_be_bytes());
        field(self.hlc.node.as_bytes());
        field(self.content.title.as_bytes());
        field(self.content.body.as_bytes());
        let mut tags = self.content.tags.clone();
        tags.sort();
        field(&(tags.len() as u64).to_be_bytes());
        for t in &tags {
            field(t.as_bytes());
        }
        field(self.content.visibility.as_str().as_bytes());
        field(&[u8::from(self.deleted)]);
        hex(&h.finalize())
    }

    /// Checks a revision that came from elsewhere: well-formed ids, sorted unique parents, a
    /// generation consistent with having parents, content within `limits` and already
    /// normalised, and an id that matches the hash.
    pub fn verify(&self, limits: &Limits) -> Result<(), NoteError> {
        let bad = |why: &str| Err(NoteError::BadRevision(why.to_string()));
        check_shape(&self.note_id, &self.rev, &self.parents, self.gen, &self.hlc)?;
        if self.author.is_empty() || self.author.chars().count() > 64 {
            return bad("malformed author");
        }
        let checked = limits.check(self.content.clone())?;
        if checked.tags != self.content.tags {
            return bad("tags are not normalised");
        }
        if self.compute_rev() != self.rev {
            return bad("revision id does not match its content");
        }
        Ok(())
    }
}

/// The checks of a revision from elsewhere that need no content (a stub has none):
/// well-formed ids, sorted unique parents that do not include itself, a generation
/// consistent with having parents, a well-formed stamp.
pub(crate) fn check_shape(
    note_id: &str,
    rev: &str,
    parents: &[String],
    gen: u64,
    hlc: &Hlc,
) -> Result<(), NoteError> {
    let bad = |why: &str| Err(NoteError::BadRevision(why.to_string()));
    if !valid_note_id(note_id) {
        return bad("malformed note id");
    }
    if !valid_rev(rev) || !parents.iter().all(|p| valid_rev(p)) {
        return bad("malformed revision id");
    }
    if parents.windows(2).any(|w| w[0] >= w[1]) {
        return bad("parents must be sorted and unique");
    }
    if parents.iter().any(|p| p == rev) {
        return bad("a revision cannot be its own parent");
    }
    if (gen == 1) != parents.is_empty() || gen == 0 || gen > i64::MAX as u64 {
        return bad("generation does not match the parents");
    }
    if !valid_node_id(&hlc.node) || hlc.wall_ms > i64::MAX as u64 {
        return bad("malformed clock stamp");
    }
    Ok(())
}

/// Note ids: 1 to 64 characters of `0-9 a-z -` (ours are 32 hex digits).
pub fn valid_note_id(s: &str) -> bool {
    valid_node_id(s)
}

/// Revision ids: 64 lower-case hex digits.
pub fn valid_rev(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(body: &str) -> Content {
        Content {
            title: "t".into(),
            body: body.into(),
            tags: vec![],
            visibility: Visibility::Public,
        }
    }

    #[test]
    fn tags_are_trimmed_lowercased_deduplicated() {
        let l = Limits::default();
        let tags = vec![" Rust ".into(), "rust".into(), "Home Office".into()];
        assert_eq!(l.normalize_tags(&tags).unwrap(), ["home office", "rust"]);
    }

    #[test]
    fn limits_name_the_field() {
        let l = Limits::default();
        let field = |c: Content| match l.check(c) {
            Err(NoteError::TooLong { field, .. }) | Err(NoteError::Invalid { field, .. }) => field,
            other => panic!("unexpected {other:?}"),
        };
        let mut c = content("");
        c.title = "é".repeat(501);
        assert_eq!(field(c), "title");
        assert!(l
            .check(Content {
                title: "é".repeat(500),
                ..content("")
            })
            .is_ok());
        assert_eq!(field(content(&"x".repeat(1024 * 1024 + 1))), "body");
        let mut c = content("");
        c.tags = (0..65).map(|i| format!("t{i}")).collect();
        assert_eq!(field(c), "tags");
        let mut c = content("");
        c.tags = vec!["x".repeat(65)];
        assert_eq!(field(c), "tags");
        let mut c = content("");
        c.tags = vec!["  ".into()];
        assert_eq!(field(c), "tags");
        let mut c = content("");
        c.title = "a\nb".into();
        assert_eq!(field(c), "title");
    }

    #[test]
    fn rev_is_a_hash_of_content_and_parents() {
        let h = Hlc::new(1, 0, "n");
        let p1 = ("a".repeat(64), 1, h.clone());
        let p2 = ("b".repeat(64), 1, Hlc::new(5, 0, "m"));
        let one = Revision::build(
            "id",
            &[p1.clone(), p2.clone()],
            content("x"),
            false,
            h.clone(),
            "ann",
        );
        let two = Revision::build(
            "id",
            &[p2, p1.clone()],
            content("x"),
            false,
            Hlc::new(9, 9, "z"),
            "bob",
        );
        assert_eq!(
            one.rev, two.rev,
            "merge ids ignore parent order, the caller's clock and author"
        );
        assert_eq!(one.hlc, Hlc::new(5, 1, "m"));
        assert_eq!(one.gen, 2);
        let other = Revision::build("id", &[p1], content("y"), false, h, "ann");
        assert_ne!(one.rev, other.rev);
        assert!(valid_rev(&one.rev));
        one.verify(&Limits::default()).unwrap();
        let mut tampered = one.clone();
        tampered.content.body = "evil".into();
        assert!(matches!(
            tampered.verify(&Limits::default()),
            Err(NoteError::BadRevision(_))
        ));
        let mut tampered = one;
        tampered.gen = 1;
        assert!(matches!(
            tampered.verify(&Limits::default()),
            Err(NoteError::BadRevision(_))
        ));
    }
}
