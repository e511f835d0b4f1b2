//! The library's state as `/readyz` shows it (`checks.library`). Fields in alphabetical
//! order, as this answer has always had them.

use serde::Serialize;

use crate::library::{LibraryStatus, ScanReport};

#[derive(Serialize)]
pub struct StatusJson {
    ffmpeg: Option<bool>,
    ffprobe: Option<bool>,
    indexed: u64,
    last_scan: Option<LastScanJson>,
    message: Option<&'static str>,
    /// Never a reason to be unready: the library works without ffmpeg.
    ok: bool,
    scanning: bool,
    scans: u64,
    thumbnails: Option<bool>,
    warning: Option<String>,
}

#[derive(Serialize)]
struct LastScanJson {
    finished: String,
    ms: Option<u64>,
    report: Option<ReportJson>,
}

#[derive(Serialize)]
struct ReportJson {
    added: u64,
    changed: u64,
    dirs: u64,
    errors: u64,
    files: u64,
    removed: u64,
}

impl From<&ScanReport> for ReportJson {
    fn from(r: &ScanReport) -> Self {
        ReportJson {
            added: r.added,
            changed: r.changed,
            dirs: r.dirs,
            errors: r.errors,
            files: r.files,
            removed: r.removed,
        }
    }
}

impl From<&LibraryStatus> for StatusJson {
    fn from(s: &LibraryStatus) -> Self {
        StatusJson {
            ffmpeg: s.ffmpeg,
            ffprobe: s.ffprobe,
            indexed: s.indexed,
            last_scan: s.last_scan.as_ref().map(|l| LastScanJson {
                finished: humantime::format_rfc3339_seconds(l.finished).to_string(),
                ms: l.ms,
                report: l.report.as_ref().map(ReportJson::from),
            }),
            message: s.message,
            ok: true,
            scanning: s.scanning,
            scans: s.scans,
            thumbnails: s.thumbnails,
            warning: s.warning.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bytes_readyz_has_always_sent() {
        let s = LibraryStatus {
            ffprobe: Some(true),
            ffmpeg: Some(false),
            thumbnails: Some(false),
            message: Some("ffmpeg not installed: no thumbnails"),
            scanning: false,
            scans: 2,
            last_scan: Some(crate::library::LastScan {
                finished: std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000),
                ms: Some(12),
                report: Some(ScanReport {
                    dirs: 3,
                    files: 4,
                    added: 5,
                    changed: 0,
                    removed: 1,
                    errors: 0,
                }),
            }),
            warning: None,
            indexed: 7,
        };
        assert_eq!(
            serde_json::to_string(&StatusJson::from(&s)).unwrap(),
            r#"{"ffmpeg":false,"ffprobe":true,"indexed":7,"last_scan":{"finished":"2027-01-15T08:00:00Z","ms":12,"report":{"added":5,"changed":0,"dirs":3,"errors":0,"files":4,"removed":1}},"message":"ffmpeg not installed: no thumbnails","ok":true,"scanning":false,"scans":2,"thumbnails":false,"warning":null}"#
        );
    }
}
