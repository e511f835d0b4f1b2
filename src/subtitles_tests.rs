//! `subtitles`: sidecar names, decoding, SubRip → WebVTT.

use super::*;

#[test]
fn sidecars_by_stem_and_language() {
    let t = sidecar("movie.mkv", "movie.srt").unwrap();
    assert_eq!(
        (t.label.as_str(), t.lang, t.format),
        ("movie", None, Format::Srt)
    );
    let t = sidecar("movie.mkv", "movie.en.vtt").unwrap();
    assert_eq!(
        (t.label.as_str(), t.lang.as_deref(), t.format),
        ("en", Some("en"), Format::Vtt)
    );
    let t = sidecar("movie.mkv", "movie.pt-BR.SRT").unwrap();
    assert_eq!(
        (t.label.as_str(), t.lang.as_deref()),
        ("pt-BR", Some("pt-BR"))
    );
    let t = sidecar("movie.mkv", "movie.forced.srt").unwrap();
    assert_eq!((t.label.as_str(), t.lang), ("forced", None));
    let t = sidecar("My.Film.2020.mp4", "My.Film.2020.es-419.srt").unwrap();
    assert_eq!(t.lang.as_deref(), Some("es-419"));
    for other in [
        "movie.mkv",
        "movie2.srt",
        "movies.srt",
        "Movie.srt",
        "movie..srt",
        "movie.txt",
        "other.en.srt",
        ".srt",
        "movie",
    ] {
        assert_eq!(sidecar("movie.mkv", other), None, "{other}");
    }
    assert_eq!(sidecar("noext", "noext.srt"), None);
}

#[test]
fn decodes_utf8_bom_utf16_and_windows_1252() {
    assert_eq!(decode(b"\xEF\xBB\xBFh\xC3\xA9"), "hé");
    assert_eq!(decode("déjà".as_bytes()), "déjà");
    // Windows-1252: é, the euro sign, curly quotes, a hole kept as its C1 code point.
    assert_eq!(decode(b"caf\xE9 \x80 \x93\x94 \x81"), "café € “” \u{81}");
    assert_eq!(decode(b"\xFF\xFEh\x00\xE9\x00"), "hé");
    assert_eq!(decode(b"\xFE\xFF\x00h\x00\xE9"), "hé");
}

const SRT: &str = "1\r\n00:00:01,600 --> 00:00:04,200\r\n<i>Hello</i> there\r\n\r\n2\r\n00:00:05,000 --> 00:00:06,5\r\nLine one\r\nLine two\r\n\r\n";

#[test]
fn srt_becomes_webvtt() {
    assert_eq!(
        srt_to_vtt(SRT),
        "WEBVTT\n\n1\n00:00:01.600 --> 00:00:04.200\n<i>Hello</i> there\n\n2\n00:00:05.000 --> 00:00:06.500\nLine one\nLine two\n"
    );
}

#[test]
fn srt_quirks_are_tolerated() {
    // BOM, CR-only line ends, no blank line between cues, no cue numbers, position extras,
    // a cue text that is a number, an arrow in the text, junk before the first cue.
    let srt = "\u{feff}junk\r1\r00:00:01,000 --> 00:00:02,000 X1:10 X2:20\rfirst\r2\r00:00:03,000 --> 00:00:04,000\r42\ra --> b\r\r00:01:00,000 --> 00:01:01,000\rno number\r";
    assert_eq!(
        srt_to_vtt(srt),
        "WEBVTT\n\n1\n00:00:01.000 --> 00:00:02.000\nfirst\n\n2\n00:00:03.000 --> 00:00:04.000\n42\na --&gt; b\n\n00:01:00.000 --> 00:01:01.000\nno number\n"
    );
    // Hours above 99 and missing hours.
    assert_eq!(
        srt_to_vtt("100:00:00,000 --> 100:00:01,000\nx\n"),
        "WEBVTT\n\n100:00:00.000 --> 100:00:01.000\nx\n"
    );
    assert_eq!(
        srt_to_vtt("01:02,003 --> 01:03,000\nx\n"),
        "WEBVTT\n\n00:01:02.003 --> 00:01:03.000\nx\n"
    );
    // Not timing lines: minutes or seconds past 59, letters.
    assert_eq!(srt_to_vtt("00:60:00,000 --> 00:61:00,000\nx\n"), "WEBVTT\n");
    assert_eq!(srt_to_vtt("aa:00:00,000 --> 00:00:01,000\nx\n"), "WEBVTT\n");
    assert_eq!(srt_to_vtt(""), "WEBVTT\n");
    assert_eq!(
        srt_to_vtt("00:00:01,000 --> 00:00:02,000\n--->\n"),
        "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n---&gt;\n"
    );
}

#[test]
fn vtt_is_checked_and_passed_through() {
    let vtt = "WEBVTT\n\n00:00.000 --> 00:01.000\nhi\n";
    assert_eq!(to_webvtt(Format::Vtt, vtt.as_bytes()).unwrap(), vtt);
    let with_bom = format!("\u{feff}{vtt}");
    assert_eq!(to_webvtt(Format::Vtt, with_bom.as_bytes()).unwrap(), vtt);
    assert_eq!(
        to_webvtt(Format::Vtt, b"WEBVTT - a title\n").unwrap(),
        "WEBVTT - a title\n"
    );
    assert_eq!(to_webvtt(Format::Vtt, b"WEBVTT").unwrap(), "WEBVTT");
    for bad in [
        &b"1\n00:00:01,000 --> 00:00:02,000\nx\n"[..],
        b"WEBVTTX",
        b"",
        b"webvtt\n",
    ] {
        assert_eq!(to_webvtt(Format::Vtt, bad), Err(SubtitleError::NotWebVtt));
    }
    assert_eq!(
        to_webvtt(
            Format::Srt,
            b"1\n00:00:01,000 --> 00:00:02,000\nfa\xE7ade\n"
        )
        .unwrap(),
        "WEBVTT\n\n1\n00:00:01.000 --> 00:00:02.000\nfaçade\n"
    );
}

proptest::proptest! {
    /// Whatever comes in, the output is a WebVTT file: the header, and no line that could
    /// end or forge a cue except the timing lines the converter wrote.
    #[test]
    fn any_input_gives_webvtt(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
        let out = to_webvtt(Format::Srt, &bytes).unwrap();
        proptest::prop_assert!(out.starts_with("WEBVTT\n"));
        for line in out.lines().skip(1) {
            if line.contains("-->") {
                proptest::prop_assert!(timing(line).is_some(), "{line:?}");
            }
            proptest::prop_assert!(!line.contains('\r'));
        }
    }
}
