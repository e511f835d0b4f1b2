//! Which names this box answers to (the `Host` header, or HTTP/2's `:authority`). Without a
//! check, DNS rebinding lets any web page a LAN user opens rebind its own name to the box's
//! address and then read, as the same origin, everything anonymous users may read. Names an
//! outside attacker cannot point at the box are allowed by default: IP literals, `localhost`,
//! single-label names (`pi`, `nas`), names under suffixes that never resolve in public DNS
//! (`.local`, `.lan`, `.home.arpa`, `.internal`, …), the host's own name and `public_url`'s.
//! Anything else must be listed in `server.allowed_hosts` (`"*"` turns the check off).

use std::net::IpAddr;

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Suffixes reserved for private or local use (RFC 6762, RFC 8375, ICANN's `.internal`) and
/// the common home-router ones; public DNS never answers for them.
const PRIVATE_SUFFIXES: &[&str] = &[
    ".local",
    ".lan",
    ".home",
    ".home.arpa",
    ".internal",
    ".localdomain",
    ".localhost",
    ".intranet",
    ".corp",
    ".private",
];

#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    any: bool,
    /// Lower-case names, exact, or `*.suffix` kept as `.suffix`.
    exact: Vec<String>,
    suffixes: Vec<String>,
}

impl HostPolicy {
    /// `allowed`: `server.allowed_hosts`; `extra`: the host name and `public_url`'s host.
    pub fn new(allowed: &[String], extra: &[String]) -> Self {
        let mut p = HostPolicy::default();
        for a in allowed.iter().chain(extra) {
            let a = a.trim().trim_end_matches('.').to_ascii_lowercase();
            if a == "*" {
                p.any = true;
            } else if let Some(s) = a.strip_prefix("*.") {
                p.suffixes.push(format!(".{s}"));
            } else if !a.is_empty() {
                p.exact.push(a);
            }
        }
        p
    }

    /// Whether a request naming `authority` (`name`, `name:port`, `[v6]:port`) is for us.
    pub fn allows(&self, authority: &str) -> bool {
        if self.any {
            return true;
        }
        let name = host_part(authority)
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if name.is_empty() {
            return false;
        }
        if name.parse::<IpAddr>().is_ok() || name == "localhost" || !name.contains('.') {
            return true;
        }
        if self.exact.contains(&name) {
            return true;
        }
        PRIVATE_SUFFIXES
            .iter()
            .copied()
            .chain(self.suffixes.iter().map(String::as_str))
            .any(|s| name.ends_with(s) && name.len() > s.len())
    }
}

/// The host of an authority: `[::1]:8080` → `::1`, `pi.local:8443` → `pi.local`.
fn host_part(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

/// The answer to a request for a name this box does not answer to: 421 with the name and the
/// key to add it to; `None` lets the request through.
pub fn refused(policy: &HostPolicy, req: &Request) -> Option<Response> {
    // Every name the request carries must be ours: the `Host` header and the target's own
    // authority (an absolute-form target, HTTP/2's `:authority`). A server is to go by the
    // target's name over `Host` (RFC 9112 §3.2.2), so `GET http://elsewhere/…` with our
    // `Host` was served (attack pass F5).
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    let target = req.uri().authority().map(|a| a.as_str());
    if let Some(bad) = malformed(host, hosts.next().is_some(), target) {
        return Some(ApiError::bad_request("bad_host", bad).into_response());
    }
    let host = host.and_then(|v| v.to_str().ok()).filter(|h| !h.is_empty());
    // No name at all (HTTP/1.0 tools, an empty `Host`): no browser sends that, so no page
    // can rebind it.
    let h = [target, host]
        .into_iter()
        .flatten()
        .find(|h| !policy.allows(h))?;
    let shown: String = h.chars().take(100).collect();
    Some(
        ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "unknown_host",
            format!(
                "this box does not answer to the name {shown:?}; add it to server.allowed_hosts"
            ),
        )
        .into_response(),
    )
}

/// RFC 9112 §3.2: a request with two `Host` lines, or one that is not a valid
/// `host[:port]`, is answered 400; so is a target authority (absolute form, HTTP/2's
/// `:authority`) that is not one. Only the first line was checked, so a second line,
/// userinfo (`evil@pi.local`), a bad port, bytes that are not ASCII (the header then counted
/// as absent) or junk after an IPv6 literal went through (attack passes of stop 35 and 36).
/// An empty `Host` is valid.
fn malformed(
    host: Option<&header::HeaderValue>,
    twice: bool,
    target: Option<&str>,
) -> Option<&'static str> {
    if twice {
        return Some("the request has more than one Host header line");
    }
    if let Some(h) = host.filter(|h| !h.is_empty()) {
        if !h.to_str().is_ok_and(valid_authority) {
            return Some("the Host header is not a valid host[:port]");
        }
    }
    if target.is_some_and(|t| !valid_authority(t)) {
        return Some("the request target's authority is not a valid host[:port]");
    }
    None
}

/// `host[:port]` as a client may name a server: a DNS name or IPv4 address (letters, digits,
/// `-`, `.`, `_`), or an IPv6 address in brackets; a port of 1–5 digits up to 65535. No
/// userinfo, percent-encoding, zone id or other characters (RFC 3986 allows some in a
/// reg-name; no browser sends them).
fn valid_authority(s: &str) -> bool {
    let (host_ok, rest) = match s.strip_prefix('[') {
        Some(inner) => match inner.split_once(']') {
            Some((v6, rest)) => (v6.parse::<std::net::Ipv6Addr>().is_ok(), rest),
            None => return false,
        },
        None => {
            let (name, rest) = s.find(':').map_or((s, ""), |i| s.split_at(i));
            let ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
            (ok, rest)
        }
    };
    let port_ok = match rest.strip_prefix(':') {
        None => rest.is_empty(),
        Some(p) => {
            (1..=5).contains(&p.len())
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u32>().is_ok_and(|n| n <= 65535)
        }
    };
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_names_pass_and_public_ones_do_not() {
        let p = HostPolicy::new(&[], &["pi.example.org".into()]);
        for ok in [
            "127.0.0.1:8080",
            "[::1]:8443",
            "192.168.1.20",
            "localhost:8080",
            "pi",
            "pi:8080",
            "PI.LOCAL:8443",
            "nas.lan",
            "box.home.arpa.",
            "pi.example.org:8443",
        ] {
            assert!(p.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:80",
            "local",
            ".local",
            "x.local.evil.com",
            "",
        ] {
            if bad == "local" {
                // A single label is a LAN name.
                assert!(p.allows(bad));
                continue;
            }
            assert!(!p.allows(bad), "{bad}");
        }
    }

    #[test]
    fn configured_names_and_wildcards() {
        let p = HostPolicy::new(
            &["media.example.com".into(), "*.office.example".into()],
            &[],
        );
        assert!(p.allows("media.example.com:8443"));
        assert!(p.allows("a.office.example"));
        assert!(!p.allows("office.example"));
        assert!(!p.allows("other.example.com"));
        assert!(HostPolicy::new(&["*".into()], &[]).allows("anything.example"));
    }

    #[test]
    fn an_absolute_target_is_judged_by_its_own_name() {
        let p = HostPolicy::new(&[], &[]);
        let req = |target: &str, host: Option<&str>| {
            let mut b = Request::builder().uri(target);
            if let Some(h) = host {
                b = b.header(header::HOST, h);
            }
            b.body(axum::body::Body::empty()).expect("request")
        };
        let foreign = req("http://evil.example/media/a.mp4", Some("127.0.0.1:8080"));
        let answer = refused(&p, &foreign).expect("a foreign target is refused");
        assert_eq!(answer.status(), StatusCode::MISDIRECTED_REQUEST);
        assert!(refused(
            &p,
            &req("http://127.0.0.1:8080/media/a.mp4", Some("evil.example"))
        )
        .is_some());
        assert!(refused(
            &p,
            &req("http://127.0.0.1:8080/media/a.mp4", Some("127.0.0.1:8080"))
        )
        .is_none());
        assert!(refused(&p, &req("http://127.0.0.1:8080/media/a.mp4", None)).is_none());
        assert!(refused(&p, &req("/media/a.mp4", Some("127.0.0.1:8080"))).is_none());
        assert!(refused(&p, &req("/media/a.mp4", None)).is_none());
        assert!(refused(&p, &req("/media/a.mp4", Some(""))).is_none());
    }

    #[test]
    fn a_malformed_or_doubled_host_is_a_bad_request() {
        let p = HostPolicy::new(&["*".into()], &[]);
        let req = |hosts: &[&str]| {
            let mut b = Request::builder().uri("/media/a.mp4");
            for h in hosts {
                b = b.header(header::HOST, *h);
            }
            b.body(axum::body::Body::empty()).expect("request")
        };
        for bad in [
            &["127.0.0.1:8080", "evil.example"][..],
            &["evil@pi.local"],
            &["pi.local:http"],
            &["pi.local:"],
            &["pi.local:99999"],
            &["pi.local:008080"],
            &["pi local"],
            &["pi.local/x"],
            &[":8080"],
            &["[::1"],
            &["localhost:+80"],
            &["[::1]evil.com"],
            &["[::1].evil.com"],
            &["[1.2.3.4]"],
            &["[evil]"],
            &["[fe80::1%25eth0]"],
            &["local%68ost"],
            &["::1"],
        ] {
            let answer = refused(&p, &req(bad));
            assert_eq!(
                answer.map(|a| a.status()),
                Some(StatusCode::BAD_REQUEST),
                "{bad:?}"
            );
        }
        for ok in [
            "pi.local",
            "pi.local:8080",
            "[::1]:8080",
            "[::1]",
            "127.0.0.1",
            "my_nas:65535",
        ] {
            assert!(refused(&p, &req(&[ok])).is_none(), "{ok}");
        }
        // Bytes that are not ASCII: refused, not taken for no `Host` at all.
        let r = Request::builder()
            .uri("/media/a.mp4")
            .header(
                header::HOST,
                header::HeaderValue::from_bytes(b"evil.com\xff").expect("obs-text"),
            )
            .body(axum::body::Body::empty())
            .expect("request");
        assert_eq!(
            refused(&p, &r).map(|a| a.status()),
            Some(StatusCode::BAD_REQUEST)
        );
        // The target's authority is held to the same syntax.
        for bad in ["http://u@localhost/a", "http://localhost:99999/a"] {
            let r = Request::builder()
                .uri(bad)
                .header(header::HOST, "localhost")
                .body(axum::body::Body::empty())
                .expect("request");
            let answer = refused(&p, &r).map(|a| a.status());
            assert_eq!(answer, Some(StatusCode::BAD_REQUEST), "{bad}");
        }
    }
}
