//! How a stored file goes out to a browser: which types are downloaded rather than shown,
//! which are sent as plain text, and the CSP that keeps script out of whatever is shown.

/// Types a browser would execute (script in HTML/SVG/XML, or JS itself): always downloaded,
/// never rendered on our origin. Judged by the extension and by the type sent, so a rare
/// extension of an active type (`.xht`, `.xslt`, `.jsx`) counts too.
pub fn is_active_content(ext: Option<&str>, content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    matches!(
        ext,
        Some("html" | "htm" | "xhtml" | "shtml" | "svg" | "svgz" | "xml" | "xsl" | "js" | "mjs")
    ) || essence.contains("html")
        || essence.contains("xml")
        || essence.contains("javascript")
        || essence.contains("ecmascript")
}

/// The type sent for a stored file. Scripts and style sheets go out as plain text: with
/// `nosniff` a browser then refuses them as a `<script>` or style sheet, so nothing a user
/// uploads can ever run as script (or restyle a page) on our origin, whatever the page CSP
/// trusts.
pub fn served_type(content_type: String) -> String {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.contains("javascript") || essence.contains("ecmascript") || essence == "text/css" {
        "text/plain; charset=utf-8".to_string()
    } else {
        content_type
    }
}

/// Media a browser shows itself (its own player or image view) needs our origin to load the
/// bytes, so it is not sandboxed; no script may run in it all the same. Everything else is
/// rendered, if at all, in an opaque sandbox.
pub fn policy(content_type: &str) -> &'static str {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let viewable = (essence.starts_with("video/")
        || essence.starts_with("audio/")
        || essence.starts_with("image/"))
        && !essence.contains("svg");
    if viewable {
        "default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'"
    } else {
        "sandbox; default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'"
    }
}
