//! AWS Signature Version 4 in the query string (presigned URLs), for every request to the
//! store and for the URLs handed to ffprobe. Hand-written (about 150 lines over the `hmac`
//! and `sha2` the program already links) because rusty-s3 with `url`, `jiff`, `instant-xml`
//! and second copies of `hmac`/`sha2` added 553 KB to the stripped binary, which has no
//! such room (measured in docs/PERFORMANCE.md). Payloads are `UNSIGNED-PAYLOAD`, as in
//! every presigned URL; TLS protects them in transit.

use std::time::SystemTime;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::storage::StorageError;

type HmacSha256 = Hmac<Sha256>;

/// Where and as whom requests are signed.
pub(super) struct Signer {
    access_key: String,
    secret: String,
    region: String,
    /// `http` or `https`.
    scheme: &'static str,
    /// The `Host` header: `host[:port]` (the port only when not the scheme's default).
    pub(super) authority: String,
    /// Path before object keys: `/bucket/` (path style) or `/` (virtual host).
    base_path: String,
}

impl Signer {
    /// From a validated `http(s)://host[:port][/]` endpoint.
    pub(super) fn new(
        endpoint: &str,
        bucket: &str,
        region: &str,
        path_style: bool,
        access_key: &str,
        secret: &str,
    ) -> Result<Self, StorageError> {
        let (scheme, rest) = if let Some(r) = endpoint.strip_prefix("https://") {
            ("https", r)
        } else if let Some(r) = endpoint.strip_prefix("http://") {
            ("http", r)
        } else {
            return Err(StorageError::Invalid(
                "s3.endpoint must start with http:// or https://".into(),
            ));
        };
        let mut authority = rest.trim_end_matches('/').to_ascii_lowercase();
        let default_port = if scheme == "https" { ":443" } else { ":80" };
        if let Some(a) = authority.strip_suffix(default_port) {
            authority = a.to_string();
        }
        let base_path = if path_style {
            format!("/{}/", uri_encode(bucket, true))
        } else {
            authority = format!("{bucket}.{authority}");
            "/".to_string()
        };
        Ok(Signer {
            access_key: access_key.to_string(),
            secret: secret.to_string(),
            region: region.to_string(),
            scheme,
            authority,
            base_path,
        })
    }

    pub(super) fn https(&self) -> bool {
        self.scheme == "https"
    }

    /// `scheme://host[:port]`, as a browser names the origin of the URLs signed here.
    pub(super) fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }

    /// `host` and `port` to connect to.
    pub(super) fn host_port(&self) -> (String, u16) {
        let default = if self.https() { 443 } else { 80 };
        // An IPv6 literal is bracketed: its port follows the closing bracket.
        let (host, port) = match self.authority.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') && p.bytes().all(|b| b.is_ascii_digit()) => {
                (h, p.parse().unwrap_or(default))
            }
            _ => (self.authority.as_str(), default),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        (host.to_string(), port)
    }

    /// A presigned URL for `method` on object `key` (empty: the bucket), with `query`
    /// parameters and `headers` (lowercase names) that the request must carry as signed.
    pub(super) fn presign(
        &self,
        method: &str,
        key: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        expires_secs: u64,
        now: SystemTime,
    ) -> String {
        let stamp = amz_date(now);
        let date = &stamp[..8];
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let mut signed: Vec<(String, String)> = vec![("host".into(), self.authority.clone())];
        signed.extend(
            headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string())),
        );
        signed.sort();
        let signed_names = signed
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(";");
        let credential = format!("{}/{scope}", self.access_key);
        let expires = expires_secs.to_string();
        let mut q: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
            .collect();
        for (k, v) in [
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("X-Amz-Credential", credential.as_str()),
            ("X-Amz-Date", stamp.as_str()),
            ("X-Amz-Expires", expires.as_str()),
            ("X-Amz-SignedHeaders", signed_names.as_str()),
        ] {
            q.push((uri_encode(k, false), uri_encode(v, false)));
        }
        q.sort();
        let query_text = q
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let path = format!("{}{}", self.base_path, uri_encode(key, true));
        let headers_text: String = signed.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
        let canonical = format!(
            "{method}\n{path}\n{query_text}\n{headers_text}\n{signed_names}\nUNSIGNED-PAYLOAD"
        );
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
            hex(&Sha256::digest(canonical.as_bytes()))
        );
        let mut k = hmac(format!("AWS4{}", self.secret).as_bytes(), date.as_bytes());
        for part in [self.region.as_str(), "s3", "aws4_request"] {
            k = hmac(&k, part.as_bytes());
        }
        let signature = hex(&hmac(&k, to_sign.as_bytes()));
        format!(
            "{}://{}{path}?{query_text}&X-Amz-Signature={signature}",
            self.scheme, self.authority
        )
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `20130524T000000Z`.
fn amz_date(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace(['-', ':'], "")
}

/// SigV4's URI encoding: everything but `A-Za-z0-9-_.~` as `%XX` (and `/` kept in paths).
pub(super) fn uri_encode(s: &str, path: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (path && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// AWS's own example of a presigned URL ("Authenticating Requests: Using Query
    /// Parameters", S3 API reference).
    #[test]
    fn aws_example_presigned_url() {
        let s = Signer::new(
            "https://s3.amazonaws.com",
            "examplebucket",
            "us-east-1",
            false,
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        )
        .unwrap();
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_369_353_600); // 2013-05-24
        let url = s.presign("GET", "test.txt", &[], &[], 86400, t);
        assert_eq!(
            url,
            "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
             &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
    }

    #[test]
    fn path_style_keys_and_ports() {
        let s = Signer::new("http://127.0.0.1:3900/", "media", "garage", true, "k", "s").unwrap();
        assert_eq!(s.authority, "127.0.0.1:3900");
        assert_eq!(s.host_port(), ("127.0.0.1".to_string(), 3900));
        let url = s.presign(
            "GET",
            "a b/é?.txt",
            &[("list-type", "2")],
            &[],
            60,
            SystemTime::now(),
        );
        assert!(
            url.starts_with("http://127.0.0.1:3900/media/a%20b/%C3%A9%3F.txt?X-Amz-Algorithm"),
            "{url}"
        );
        assert!(url.contains("&list-type=2&"), "{url}");
        let s = Signer::new("https://[::1]:443", "m", "r", true, "k", "s").unwrap();
        assert_eq!(s.host_port(), ("::1".to_string(), 443));
    }
}
