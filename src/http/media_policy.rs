//! How a stored file goes out to a browser: which types are downloaded rather than shown,
//! which are sent as plain text, and the CSP that keeps script out of whatever is shown.

use axum::http::HeaderValue;

/// Types a browser would execute (script in HTML/SVG/XML, or JS itself): always downloaded,
/// never rendered on our origin. Judged by the extension and by the type sent, so a rare
/// extension of an active type (`.jsx`) counts too. The extensions of every XML-family file a
/// browser renders as a document (XHTML, XSLT, schemas, DTDs, feeds) are listed as well, so
/// they stay attachments even if the type table ever names them otherwise.
pub fn is_active_content(ext: Option<&str>, content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    matches!(
        ext,
        Some(
            "html"
                | "htm"
                | "xhtml"
                | "xht"
                | "shtml"
                | "svg"
                | "svgz"
                | "xml"
                | "xsl"
                | "xslt"
                | "xsd"
                | "dtd"
                | "rss"
                | "atom"
                | "rdf"
                | "xul"
                | "js"
                | "mjs"
        )
    ) || essence.contains("html")
        || essence.contains("xml")
        || essence.contains("javascript")
        || essence.contains("ecmascript")
}

/// The type sent for a stored file. Scripts and style sheets go out as plain text: with
/// `nosniff` a browser then refuses them as a `<script>` or style sheet, so nothing a user
/// uploads can ever run as script (or restyle a page) on our origin, whatever the page CSP
/// trusts.
pub fn served_type(content_type: &'static str) -> &'static str {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.contains("javascript") || essence.contains("ecmascript") || essence == "text/css" {
        "text/plain; charset=utf-8"
    } else {
        content_type
    }
}

/// Whether a file of this type may be sent to the store by a redirect (S3 redirect mode):
/// only media a browser plays or shows itself (video, audio, raster images), where the
/// store's answer needs no policy of ours. Everything else — script-capable documents, SVG,
/// PDF, text — is proxied with the sandbox CSP and attachment disposition a store cannot
/// be made to send.
pub fn may_redirect(ext: Option<&str>, content_type: &str) -> bool {
    is_viewable(content_type) && !is_active_content(ext, content_type)
}

fn is_viewable(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    (essence.starts_with("video/")
        || essence.starts_with("audio/")
        || essence.starts_with("image/"))
        && !essence.contains("svg")
}

/// Media a browser shows itself (its own player or image view) needs our origin to load the
/// bytes, so it is not sandboxed; no script may run in it all the same. Everything else is
/// rendered, if at all, in an opaque sandbox.
pub fn policy(content_type: &str) -> HeaderValue {
    // Constants: checked once at compile time, not per request.
    const SHOWN: HeaderValue = HeaderValue::from_static(
        "default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    );
    const SANDBOXED: HeaderValue = HeaderValue::from_static(
        "sandbox; default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    );
    if is_viewable(content_type) {
        SHOWN
    } else {
        SANDBOXED
    }
}

#[cfg(test)]
mod tests {
    use super::{is_active_content, may_redirect};
    use crate::media_types::content_type;

    #[test]
    fn script_capable_types_are_active_by_extension_and_by_type() {
        for ext in [
            "html", "htm", "xhtml", "xht", "svg", "xml", "xsl", "xslt", "xsd", "dtd", "rss",
            "atom", "rdf", "js", "mjs",
        ] {
            let ty = content_type(Some(ext));
            assert!(is_active_content(Some(ext), ty), "{ext} ({ty})");
            assert!(
                is_active_content(None, ty) || ty == "application/octet-stream",
                "{ty}"
            );
        }
        for ext in ["mp4", "png", "txt", "pdf", "bin"] {
            assert!(
                !is_active_content(Some(ext), content_type(Some(ext))),
                "{ext}"
            );
        }
    }

    #[test]
    fn only_plain_media_is_redirected() {
        for ext in ["mp4", "mkv", "webm", "mp3", "flac", "jpg", "png", "webp"] {
            assert!(may_redirect(Some(ext), content_type(Some(ext))), "{ext}");
        }
        for ext in [
            "svg", "html", "xml", "js", "css", "pdf", "txt", "md", "bin", "srt",
        ] {
            assert!(!may_redirect(Some(ext), content_type(Some(ext))), "{ext}");
        }
    }
}
