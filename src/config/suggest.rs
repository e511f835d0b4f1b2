//! "Did you mean …?" for a mistyped section, key or variable: the closest known name, when
//! one is close enough to be the likely intent (a typo, not another word).

/// The known name closest to `word`, if it is within a typo of it.
pub(super) fn closest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    known
        .into_iter()
        .map(|k| (strsim::osa_distance(&word, &k.to_ascii_lowercase()), k))
        // A third of the name may be wrong (two letters of "bucket"); more is another word.
        .filter(|(d, k)| *d <= (k.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// `reason`, with the suggestion if there is one.
pub(super) fn with_hint(reason: &str, hint: Option<String>) -> String {
    match hint {
        Some(h) => format!("{reason} (did you mean {h}?)"),
        None => reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn a_typo_finds_the_key_and_another_word_finds_none() {
        let keys = ["bucket", "endpoint", "region", "prefix", "redirect"];
        assert_eq!(closest("bukcet", keys), Some("bucket"));
        assert_eq!(closest("endpiont", keys), Some("endpoint"));
        assert_eq!(closest("Region", keys), Some("region"));
        assert_eq!(closest("password", keys), None);
        assert_eq!(closest("x", keys), None);
    }
}
