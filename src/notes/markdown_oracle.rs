//! An oracle for the Markdown sanitiser's tests and fuzz target: what a browser takes as a
//! URL's scheme, written independently of `safe_url` so that a mistake there is caught.

/// The scheme a browser reads from an attribute value as written (independently of
/// `safe_url`): entities decoded, tabs and line breaks dropped, controls and spaces around
/// trimmed; a scheme is what comes before a `:` that precedes any `/`, `?` or `#`.
pub fn browser_scheme(value: &str) -> Option<String> {
    let decoded = value
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let url: String = decoded
        .trim_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let end = url.find([':', '/', '?', '#'])?;
    url[end..]
        .starts_with(':')
        .then(|| url[..end].to_ascii_lowercase())
}
