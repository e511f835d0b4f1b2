//! Fuzzes `subtitles::to_webvtt`: any bytes named `.srt` become a WebVTT file (the header,
//! no CR, and no `-->` outside the timing lines the converter writes); a `.vtt` is either
//! refused or passed through starting with `WEBVTT`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamhub::subtitles::{to_webvtt, Format};

fuzz_target!(|bytes: &[u8]| {
    let out = to_webvtt(Format::Srt, bytes).expect("SubRip always converts");
    assert!(out.starts_with("WEBVTT\n"));
    assert!(!out.contains('\r'));
    for line in out.lines().skip(1) {
        if let Some((start, end)) = line.split_once(" --> ") {
            for t in [start, end] {
                assert!(t.len() >= 12 && t.as_bytes()[t.len() - 4] == b'.', "{line:?}");
            }
        } else {
            assert!(!line.contains("-->"), "{line:?}");
        }
    }
    if let Ok(vtt) = to_webvtt(Format::Vtt, bytes) {
        assert!(vtt.starts_with("WEBVTT"));
    }
});
