//! Server-side copies (the first half of a move): CopyObject up to S3's 5 GiB limit, and a
//! multipart copy above it (CreateMultipartUpload, UploadPartCopy of byte ranges of the
//! source, CompleteMultipartUpload), aborted on any failure so no part is left billed and no
//! object appears half-copied.

use std::ops::Range;

use ::http::{Method, StatusCode};
use bytes::Bytes;

use super::{write, xml, Inner};
use crate::storage::StorageError;

/// The largest object CopyObject copies in one request (S3's limit).
pub(super) const MAX_SINGLE_COPY: u64 = 5 << 30;
/// The size of the ranges a multipart copy asks for: large, since the server copies them
/// without the bytes passing through us, but well under S3's 5 GiB part limit.
const COPY_PART: u64 = 512 << 20;
/// S3's most parts per upload.
const MAX_PARTS: u64 = 10_000;

/// What `x-amz-copy-source` escapes: everything but unreserved characters and `/`.
const COPY_SOURCE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The byte ranges (end exclusive) a multipart copy of `size` bytes asks for: parts of
/// `COPY_PART` bytes, larger when that would make more than 10,000 of them, the last one
/// shorter.
pub(super) fn part_ranges(size: u64) -> Vec<Range<u64>> {
    let part = COPY_PART.max(size.div_ceil(MAX_PARTS));
    (0..size.div_ceil(part))
        .map(|i| i * part..((i + 1) * part).min(size))
        .collect()
}

impl Inner {
    fn copy_source(&self, from: &str) -> String {
        format!(
            "/{}/{}",
            self.bucket,
            percent_encoding::utf8_percent_encode(from, COPY_SOURCE)
        )
    }

    /// Copies object `from` (of `size` bytes) to `to` inside the bucket.
    pub(super) async fn copy(&self, from: &str, to: &str, size: u64) -> Result<(), StorageError> {
        let source = self.copy_source(from);
        if size <= MAX_SINGLE_COPY {
            return self
                .put(to, Bytes::new(), &[("x-amz-copy-source", source.as_str())])
                .await;
        }
        let upload_id = self.create_multipart(to).await?;
        match self.copy_parts(&source, to, &upload_id, size).await {
            Ok(etags) => {
                let etags: Vec<&str> = etags.iter().map(String::as_str).collect();
                let done = self.complete(to, &upload_id, &etags).await;
                if done.is_err() {
                    write::abort(self, to, &upload_id).await;
                }
                done
            }
            Err(e) => {
                write::abort(self, to, &upload_id).await;
                Err(e)
            }
        }
    }

    async fn copy_parts(
        &self,
        source: &str,
        to: &str,
        upload_id: &str,
        size: u64,
    ) -> Result<Vec<String>, StorageError> {
        let mut etags = Vec::new();
        for (i, r) in part_ranges(size).into_iter().enumerate() {
            let number = (i + 1).to_string();
            let range = format!("bytes={}-{}", r.start, r.end - 1);
            let headers = [
                ("x-amz-copy-source", source),
                ("x-amz-copy-source-range", range.as_str()),
            ];
            let query = [("partNumber", number.as_str()), ("uploadId", upload_id)];
            let url = self.url(&Method::PUT, to, &query, &headers);
            // The server reads and writes the whole part before it answers.
            let timeout = self.timeout_for((r.end - r.start) as usize);
            let a = self
                .http
                .send_timed("move", Method::PUT, &url, &headers, Bytes::new(), timeout)
                .await?;
            let status = a.status;
            if !status.is_success() {
                return Err(self.http.error("move", a).await);
            }
            // The part's ETag is in the body (CopyPartResult), which may also be an error.
            let body = self.http.small_body("move", a.body).await?;
            let text = String::from_utf8_lossy(&body);
            match xml::field(&text, "ETag") {
                Some(etag) if xml::field(&text, "Code").is_none() => etags.push(etag),
                _ => {
                    let code = xml::field(&text, "Code").unwrap_or_default();
                    return Err(self.http.error_of(StatusCode::INTERNAL_SERVER_ERROR, &code));
                }
            }
        }
        Ok(etags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_object_once_in_order() {
        for size in [
            MAX_SINGLE_COPY + 1,
            6 << 30,
            COPY_PART * 11,
            5 << 40, // 5 TiB, S3's largest object
        ] {
            let parts = part_ranges(size);
            assert!(
                parts.len() as u64 <= MAX_PARTS,
                "{size}: {} parts",
                parts.len()
            );
            assert_eq!(parts[0].start, 0);
            assert_eq!(parts.last().map(|r| r.end), Some(size));
            for w in parts.windows(2) {
                assert_eq!(w[0].end, w[1].start);
            }
            for r in &parts {
                // S3: every part but the last at least 5 MiB, none over 5 GiB.
                assert!(r.end - r.start <= MAX_SINGLE_COPY);
                assert!(r.end > r.start);
            }
            for r in &parts[..parts.len() - 1] {
                assert!(r.end - r.start >= 5 << 20);
            }
        }
        let six = part_ranges(6 << 30);
        assert_eq!(six.len(), 12);
        assert_eq!(six[1], COPY_PART..2 * COPY_PART);
    }
}
