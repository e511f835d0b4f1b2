//! Content types by file extension. Our table covers the media people keep (and fixes the
//! types `mime_guess` gets wrong or lacks for players); anything else falls back to
//! `mime_guess`, then `application/octet-stream`.

/// The `Content-Type` to send for a file with this (lower-case) extension: a static string,
/// so the per-request header is made without an allocation or a validation.
pub fn content_type(ext: Option<&str>) -> &'static str {
    let Some(ext) = ext else {
        return "application/octet-stream";
    };
    let known = match ext {
        "mp4" | "m4v" => "video/mp4",
        "mkv" => "video/x-matroska",
        "mka" => "audio/x-matroska",
        "webm" => "video/webm",
        "mov" => "video/quicktime",
        "avi" => "video/x-msvideo",
        "ts" | "m2ts" => "video/mp2t",
        "mpg" | "mpeg" => "video/mpeg",
        "ogv" => "video/ogg",
        "mp3" => "audio/mpeg",
        "m4a" | "m4b" => "audio/mp4",
        "aac" => "audio/aac",
        "flac" => "audio/flac",
        "ogg" | "oga" => "audio/ogg",
        "opus" => "audio/opus",
        "wav" => "audio/wav",
        "vtt" => "text/vtt; charset=utf-8",
        "srt" => "application/x-subrip",
        "ass" | "ssa" => "text/x-ssa",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "avif" => "image/avif",
        "heic" => "image/heic",
        "pdf" => "application/pdf",
        "txt" | "log" => "text/plain; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "m3u8" => "application/vnd.apple.mpegurl",
        "epub" => "application/epub+zip",
        _ => "",
    };
    if !known.is_empty() {
        return known;
    }
    mime_guess::from_ext(ext)
        .first_raw()
        .unwrap_or("application/octet-stream")
}

#[cfg(test)]
mod tests {
    use super::content_type;

    #[test]
    fn media_types() {
        for (ext, ty) in [
            ("mp4", "video/mp4"),
            ("m4v", "video/mp4"),
            ("mkv", "video/x-matroska"),
            ("webm", "video/webm"),
            ("mov", "video/quicktime"),
            ("avi", "video/x-msvideo"),
            ("mp3", "audio/mpeg"),
            ("m4a", "audio/mp4"),
            ("flac", "audio/flac"),
            ("ogg", "audio/ogg"),
            ("opus", "audio/opus"),
            ("wav", "audio/wav"),
            ("vtt", "text/vtt; charset=utf-8"),
            ("srt", "application/x-subrip"),
            ("jpg", "image/jpeg"),
            ("png", "image/png"),
            ("webp", "image/webp"),
            ("pdf", "application/pdf"),
            ("txt", "text/plain; charset=utf-8"),
            ("zip", "application/zip"),
            ("qqqq", "application/octet-stream"),
        ] {
            assert_eq!(content_type(Some(ext)), ty, "{ext}");
        }
        assert_eq!(content_type(None), "application/octet-stream");
    }
}
