//! The two sides of `storage copy`, as written on the command line: `local:/path` or
//! `s3://bucket[/prefix]`, and whether one lies inside the other.

use std::path::{Component, Path, PathBuf};

use super::CliError;

/// One side of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(p) => write!(f, "local:{}", p.display()),
            Location::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// Parses `local:/path` or `s3://bucket[/prefix]`.
pub fn parse_location(text: &str) -> Result<Location, CliError> {
    let bad = || {
        CliError::Usage(format!(
            "'{text}' is not a storage location: use local:/path/to/media or s3://bucket/prefix"
        ))
    };
    if let Some(path) = text.strip_prefix("local:") {
        if path.is_empty() {
            return Err(bad());
        }
        let p = PathBuf::from(path);
        return Ok(Location::Local(std::path::absolute(&p).unwrap_or(p)));
    }
    let rest = text.strip_prefix("s3://").ok_or_else(bad)?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(bad());
    }
    Ok(Location::S3 {
        bucket: bucket.to_string(),
        prefix: prefix.trim_matches('/').to_string(),
    })
}

/// Refuses a destination inside the source or the source inside the destination (each
/// re-run would copy the last copy again, one level deeper), with `..`, `.`, doubled and
/// trailing slashes and (local) symbolic links resolved.
pub fn overlap(from: &Location, to: &Location) -> Result<(), CliError> {
    let inside = |a: &Location, b: &Location| match (a, b) {
        (Location::Local(a), Location::Local(b)) => real(a).starts_with(real(b)),
        (
            Location::S3 {
                bucket: ab,
                prefix: ap,
            },
            Location::S3 {
                bucket: bb,
                prefix: bp,
            },
        ) => {
            let seg = |p: &str| {
                p.split('/')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            };
            ab == bb && seg(ap).starts_with(&seg(bp))
        }
        _ => false,
    };
    let say = |a: &Location, b: &Location| {
        CliError::Usage(format!(
            "{a} is inside {b} (or the same place): a copy must go to a location outside its \
             source, and not around it"
        ))
    };
    if inside(to, from) {
        return Err(say(to, from));
    }
    if inside(from, to) {
        return Err(say(from, to));
    }
    Ok(())
}

/// The path with the longest existing start resolved (links, `..`), and the rest, which does
/// not exist yet, normalised by its spelling.
fn real(path: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut at = path.to_path_buf();
    let mut base = loop {
        if let Ok(r) = at.canonicalize() {
            break r;
        }
        match (at.file_name().map(|n| n.to_os_string()), at.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                at = parent.to_path_buf();
            }
            // `..` at the end, or the root itself: spelt as it is.
            _ => break at,
        }
    };
    for part in rest.iter().rev() {
        for c in Path::new(part).components() {
            match c {
                Component::ParentDir => {
                    base.pop();
                }
                Component::Normal(n) => base.push(n),
                _ => {}
            }
        }
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(
            parse_location("s3://media/lib/a/").unwrap(),
            Location::S3 {
                bucket: "media".into(),
                prefix: "lib/a".into()
            }
        );
        assert_eq!(
            parse_location("s3://media").unwrap(),
            Location::S3 {
                bucket: "media".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            parse_location("local:/srv/media").unwrap(),
            Location::Local(PathBuf::from("/srv/media"))
        );
        for bad in [
            "nonsense",
            "local:",
            "s3://",
            "s3:///x",
            "/srv/media",
            "S3://b",
        ] {
            let e = parse_location(bad).unwrap_err();
            assert!(
                matches!(e, CliError::Usage(ref m) if m.contains("local:/path")),
                "{bad}"
            );
        }
    }

    #[test]
    fn overlapping_locations() {
        let l = |t: &str| parse_location(t).unwrap();
        assert!(overlap(&l("s3://m/x"), &l("s3://m/x/y")).is_err());
        assert!(overlap(&l("s3://m/x/y/"), &l("s3://m//x")).is_err());
        assert!(overlap(&l("s3://m/x"), &l("s3://m")).is_err());
        assert!(overlap(&l("s3://m/x"), &l("s3://m/xy")).is_ok());
        assert!(overlap(&l("s3://m/x"), &l("s3://n/x/y")).is_ok());
        assert!(overlap(&l("local:/srv/a"), &l("local:/srv/a/b/../c")).is_err());
        assert!(overlap(&l("local:/srv/a"), &l("local:/srv/ab")).is_ok());
        assert!(overlap(&l("local:/srv/a"), &l("s3://m/srv/a")).is_ok());
    }
}
