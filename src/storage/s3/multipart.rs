//! The S3 multipart-upload requests, shared by one-shot uploads (`write`) and resumable
//! ones (`resumable`): create, upload a part, complete, abort.

use ::http::{Method, StatusCode};
use bytes::Bytes;

use super::stream::part_etag;
use super::{xml, Inner};
use crate::storage::{ObjectMeta, StorageError};

impl Inner {
    /// CreateMultipartUpload at `key`: its UploadId.
    pub(super) async fn create_multipart(&self, key: &str) -> Result<String, StorageError> {
        let url = self.url(&Method::POST, key, &[("uploads", "")], &[]);
        let a = self.send("upload", Method::POST, &url, &[]).await?;
        if !a.status.is_success() {
            return Err(self.http.error("upload", a).await);
        }
        let body = self.http.small_body("upload", a.body).await?;
        let text = std::str::from_utf8(&body).unwrap_or("");
        xml::field(text, "UploadId")
            .filter(|id| !id.is_empty())
            .ok_or_else(|| StorageError::Io("the S3 store sent no upload id".into()))
    }

    /// UploadPart number `index + 1` with a body in memory: its ETag.
    pub(super) async fn upload_part(
        &self,
        object: &str,
        upload_id: &str,
        index: usize,
        body: Bytes,
    ) -> Result<String, StorageError> {
        let number = u16::try_from(index + 1)
            .ok()
            .filter(|n| *n <= 10_000)
            .ok_or_else(|| StorageError::Invalid("more than 10,000 parts".into()))?
            .to_string();
        let query = [("partNumber", number.as_str()), ("uploadId", upload_id)];
        let url = self.url(&Method::PUT, object, &query, &[]);
        let timeout = self.timeout_for(body.len());
        let a = self
            .http
            .send_timed("upload", Method::PUT, &url, &[], body, timeout)
            .await?;
        if !a.status.is_success() {
            return Err(self.http.error("upload", a).await);
        }
        part_etag(&a.headers)
    }

    /// CompleteMultipartUpload with parts `1..=etags.len()`.
    pub(super) async fn complete(
        &self,
        key: &str,
        upload_id: &str,
        etags: &[&str],
    ) -> Result<(), StorageError> {
        let url = self.url(&Method::POST, key, &[("uploadId", upload_id)], &[]);
        let body = Bytes::from(complete_body(etags));
        let timeout = self.timeout_for(1 << 20);
        let a = self
            .http
            .send_timed("commit", Method::POST, &url, &[], body, timeout)
            .await?;
        let status = a.status;
        // CompleteMultipartUpload may answer 200 with an error in the body.
        let text = self
            .http
            .small_body("commit", a.body)
            .await
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        if !status.is_success() || xml::field(&text, "Code").is_some() {
            let code = xml::field(&text, "Code").unwrap_or_default();
            let status = if status.is_success() {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                status
            };
            return Err(self.http.error_of(status, &code));
        }
        Ok(())
    }

    /// ListParts (one): `UploadDropped` when the store has no such upload.
    pub(super) async fn list_parts(&self, key: &str, upload_id: &str) -> Result<(), StorageError> {
        let query = [("max-parts", "1"), ("uploadId", upload_id)];
        let url = self.url(&Method::GET, key, &query, &[]);
        let a = self.send("upload", Method::GET, &url, &[]).await?;
        if !a.status.is_success() {
            return Err(self.http.error("upload", a).await);
        }
        let _ = self.http.small_body("upload", a.body).await;
        Ok(())
    }

    /// AbortMultipartUpload; an upload already gone is fine.
    pub(super) async fn abort_upload(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<(), StorageError> {
        let url = self.url(&Method::DELETE, key, &[("uploadId", upload_id)], &[]);
        let a = self.send("upload", Method::DELETE, &url, &[]).await?;
        if a.status.is_success() || a.status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(self.http.error("upload", a).await)
    }

    /// The empty object at `key` (a multipart upload has at least one part, and Garage
    /// refuses an empty one), then its metadata.
    pub(super) async fn put_empty(&self, key: &str) -> Result<ObjectMeta, StorageError> {
        self.put(key, Bytes::new(), &[]).await?;
        self.head(key).await?.ok_or(StorageError::Changed)
    }
}

/// CompleteMultipartUpload's body: part `n` is the `n`-th ETag (already quoted by S3; an
/// ETag holds no `<` or `&`).
fn complete_body(etags: &[&str]) -> String {
    let mut body = String::from("<CompleteMultipartUpload>");
    for (i, etag) in etags.iter().enumerate() {
        body.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{etag}</ETag></Part>",
            i + 1
        ));
    }
    body.push_str("</CompleteMultipartUpload>");
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_body_numbers_parts_from_one() {
        let body = complete_body(&["\"a\"", "\"b\""]);
        assert_eq!(
            body,
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"a\"</ETag></Part>\
             <Part><PartNumber>2</PartNumber><ETag>\"b\"</ETag></Part></CompleteMultipartUpload>"
        );
    }
}
