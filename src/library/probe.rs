//! ffprobe and ffmpeg: detecting them, running them with a hard time limit (a corrupt file
//! must not wedge the scanner), reading ffprobe's JSON, and making poster thumbnails.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::storage::ProbeSource;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::model::MediaClass;

/// The demuxers ffprobe and ffmpeg may use: media containers, raw streams and single
/// images. Playlist and script formats (HLS, DASH, concat, ffconcat, …) are left out on
/// purpose: ffmpeg picks a demuxer from a file's content, and those would open the paths
/// written inside a member's upload — anywhere on the host.
const DEMUXERS: &str = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,flv,mpegts,mpeg,mpegvideo,m4v,\
                        h264,hevc,ivf,obu,av1,nut,asf,rm,ogg,wav,w64,mp3,flac,aac,ac3,eac3,dts,\
                        truehd,aiff,ape,wv,tta,caf,amr,au,dsf,image2,jpeg_pipe,png_pipe,\
                        webp_pipe,gif,gif_pipe,bmp_pipe,tiff_pipe,jpegxl_pipe,mjpeg";

/// Posters are this wide (height keeps the aspect ratio, rounded to even).
pub const THUMB_WIDTH: u32 = 320;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ToolError {
    #[error("cannot run {0}: {1}")]
    Spawn(String, String),
    #[error("{0} did not finish within {1} s (killed)")]
    Timeout(String, u64),
    #[error("{0} failed: {1}")]
    Failed(String, String),
    #[error("unreadable ffprobe output: {0}")]
    Parse(String),
}

/// What ffprobe tells about a file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Probed {
    pub duration: Option<f64>,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
}

/// What a program reads: an open file as its standard input (`file:/dev/stdin` re-opens the
/// same file and seeks in it, so no path is ever handed over), or a URL it fetches.
pub enum ProbeInput {
    Stdin(std::fs::File),
    Url(String),
}

impl ProbeInput {
    /// From what storage gives; None when the backend cannot give a program the bytes.
    pub fn from_source(src: ProbeSource) -> Option<ProbeInput> {
        match src {
            ProbeSource::File(f) => Some(ProbeInput::Stdin(f)),
            ProbeSource::Url(u) => Some(ProbeInput::Url(u)),
            ProbeSource::Unsupported => None,
        }
    }

    /// A second handle for a second program run.
    pub fn try_clone(&self) -> std::io::Result<ProbeInput> {
        Ok(match self {
            ProbeInput::Stdin(f) => ProbeInput::Stdin(f.try_clone()?),
            ProbeInput::Url(u) => ProbeInput::Url(u.clone()),
        })
    }

    /// The options that confine what the program may open, then `-i` and the input (ffmpeg
    /// reads `file:` URLs literally).
    fn args(&self) -> Vec<OsString> {
        let (protocols, input) = match self {
            ProbeInput::Stdin(_) => ("file,pipe", OsString::from("file:/dev/stdin")),
            ProbeInput::Url(u) => ("http,https,tcp,tls", OsString::from(u)),
        };
        vec![
            "-format_whitelist".into(),
            DEMUXERS.into(),
            "-protocol_whitelist".into(),
            protocols.into(),
            "-i".into(),
            input,
        ]
    }

    fn stdin(self) -> Stdio {
        match self {
            ProbeInput::Stdin(f) => Stdio::from(f),
            ProbeInput::Url(_) => Stdio::null(),
        }
    }
}

/// Runs `program args…` with `stdin`, killing it after `timeout`. Returns stdout on exit
/// status 0. stdout and stderr are drained on their own threads so a chatty child cannot
/// block on a full pipe; both are capped so a hostile file cannot make us buffer without
/// bound.
pub fn run(program: &str, args: &[OsString], timeout: Duration) -> Result<Vec<u8>, ToolError> {
    run_with(program, args, Stdio::null(), timeout)
}

fn run_with(
    program: &str,
    args: &[OsString],
    stdin: Stdio,
    timeout: Duration,
) -> Result<Vec<u8>, ToolError> {
    const CAP: u64 = 4 << 20;
    let mut child = Command::new(program)
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ToolError::Spawn(program.to_string(), e.to_string()))?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::Builder::new()
            .name("library-tool-io".into())
            .spawn(move || {
                let mut buf = Vec::new();
                if let Some(p) = pipe {
                    let _ = p.take(CAP).read_to_end(&mut buf);
                }
                buf
            })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => break None,
        }
    };
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(ToolError::Timeout(program.to_string(), timeout.as_secs()));
    };
    let join = |h: std::io::Result<std::thread::JoinHandle<Vec<u8>>>| {
        h.ok().and_then(|h| h.join().ok()).unwrap_or_default()
    };
    let stdout = join(out);
    let stderr = join(err);
    if !status.success() {
        let msg = String::from_utf8_lossy(&stderr);
        let line = without_query_strings(msg.lines().last().unwrap_or(""))
            .chars()
            .take(300)
            .collect::<String>();
        return Err(ToolError::Failed(
            program.to_string(),
            format!("{status}: {line}"),
        ));
    }
    Ok(stdout)
}

/// `line` with the query string of every URL cut off: ffprobe names its input in its errors,
/// and on S3 that is a presigned URL, a working credential for the file until it expires
/// (its signature and access key id are in the query), which must not reach the log.
fn without_query_strings(line: &str) -> String {
    line.split(' ')
        .map(|word| match word.find("://").and(word.find('?')) {
            Some(q) => {
                let tail = if word.ends_with(':') { ":" } else { "" };
                format!("{}?…{tail}", &word[..q])
            }
            None => word.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `program -version` runs.
pub fn available(program: &str) -> bool {
    run(program, &["-version".into()], Duration::from_secs(10)).is_ok()
}

pub fn ffprobe(program: &str, input: ProbeInput, timeout: Duration) -> Result<Probed, ToolError> {
    let mut args: Vec<OsString> = [
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    args.extend(input.args());
    parse_ffprobe(&run_with(program, &args, input.stdin(), timeout)?)
}

#[derive(Deserialize)]
struct FfOut {
    #[serde(default)]
    streams: Vec<FfStream>,
    format: Option<FfFormat>,
}

#[derive(Deserialize)]
struct FfStream {
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<i64>,
    height: Option<i64>,
    duration: Option<String>,
    #[serde(default)]
    disposition: std::collections::HashMap<String, i64>,
}

#[derive(Deserialize)]
struct FfFormat {
    duration: Option<String>,
}

fn seconds(s: &Option<String>) -> Option<f64> {
    s.as_deref()
        .and_then(|d| d.parse::<f64>().ok())
        .filter(|d| d.is_finite() && *d >= 0.0)
}

/// Pure: ffprobe's `-print_format json -show_format -show_streams` output to `Probed`.
/// A cover picture inside an audio file (`attached_pic`) is not a video stream.
pub fn parse_ffprobe(json: &[u8]) -> Result<Probed, ToolError> {
    let out: FfOut = serde_json::from_slice(json).map_err(|e| ToolError::Parse(e.to_string()))?;
    let video = out.streams.iter().find(|s| {
        s.codec_type.as_deref() == Some("video")
            && s.disposition.get("attached_pic").copied().unwrap_or(0) == 0
    });
    let audio = out
        .streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("audio"));
    let duration = out
        .format
        .as_ref()
        .and_then(|f| seconds(&f.duration))
        .or_else(|| video.and_then(|v| seconds(&v.duration)))
        .or_else(|| audio.and_then(|a| seconds(&a.duration)));
    Ok(Probed {
        duration,
        video_codec: video.and_then(|v| v.codec_name.clone()),
        audio_codec: audio.and_then(|a| a.codec_name.clone()),
        width: video.and_then(|v| v.width),
        height: video.and_then(|v| v.height),
    })
}

/// Where in a video the poster frame is taken: 10% in, at most a minute (past intros and
/// black leaders, without seeking far on a slow disk); the first frame when unknown.
pub fn poster_time(duration: Option<f64>) -> f64 {
    duration.map(|d| (d * 0.1).clamp(0.0, 60.0)).unwrap_or(0.0)
}

/// Makes a JPEG poster of `file` at `dest` (written to a temporary name, then renamed, so a
/// killed ffmpeg never leaves a half poster under the real name).
pub fn make_thumb(
    ffmpeg: &str,
    input: ProbeInput,
    class: MediaClass,
    duration: Option<f64>,
    dest: &Path,
    timeout: Duration,
) -> Result<(), ToolError> {
    // One temporary name per run: the scanner and an on-demand request may make the same
    // poster at once; each renames its own complete file over the (identical) other.
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run_id = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp: PathBuf = dest.with_extension(format!("{}-{run_id}.tmp.jpg", std::process::id()));
    let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
    // -nostdin: no interactive commands from stdin (which may be the file being read).
    let mut args = os(&["-nostdin", "-v", "error"]);
    if class == MediaClass::Video {
        args.extend(os(&["-ss", &format!("{:.3}", poster_time(duration))]));
    }
    args.extend(input.args());
    args.extend(os(&[
        "-frames:v",
        "1",
        "-vf",
        &format!("scale={THUMB_WIDTH}:-2"),
        "-q:v",
        "5",
        "-f",
        "image2",
        "-c:v",
        "mjpeg",
        "-y",
    ]));
    args.push(tmp.clone().into_os_string());
    let result = run_with(ffmpeg, &args, input.stdin(), timeout).and_then(|_| {
        // ffmpeg exits 0 without writing anything when the seek lands past the last frame.
        match std::fs::metadata(&tmp) {
            Ok(md) if md.len() > 0 => std::fs::rename(&tmp, dest)
                .map_err(|e| ToolError::Failed("rename".into(), e.to_string())),
            _ => Err(ToolError::Failed(
                ffmpeg.to_string(),
                "no frame was written".into(),
            )),
        }
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_presigned_url_in_an_error_loses_its_query_string() {
        let line = "http://127.1:3900/mmm/b.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=\
                    GK1234%2F20261201%2Fgarage&X-Amz-Signature=814ee02a: Invalid data found";
        let got = without_query_strings(line);
        assert_eq!(got, "http://127.1:3900/mmm/b.mp4?…: Invalid data found");
        assert!(!got.contains("GK1234") && !got.contains("814ee02a"));
        assert_eq!(
            without_query_strings("a.mp4: why? no idea"),
            "a.mp4: why? no idea"
        );
    }

    #[test]
    fn parses_video_audio_and_cover_art() {
        let j = br#"{"streams":[
            {"codec_type":"video","codec_name":"mjpeg","width":600,"height":600,
             "disposition":{"attached_pic":1}},
            {"codec_type":"audio","codec_name":"mp3","duration":"3.5"}],
            "format":{"duration":"3.500000"}}"#;
        let p = parse_ffprobe(j).unwrap();
        assert_eq!(p.video_codec, None, "cover art is not video");
        assert_eq!(p.audio_codec.as_deref(), Some("mp3"));
        assert_eq!(p.duration, Some(3.5));
        let j = br#"{"streams":[{"codec_type":"video","codec_name":"h264","width":640,
            "height":360,"duration":"2.0"}],"format":{"duration":"N/A"}}"#;
        let p = parse_ffprobe(j).unwrap();
        assert_eq!(
            (p.width, p.height, p.duration),
            (Some(640), Some(360), Some(2.0))
        );
        assert!(parse_ffprobe(b"not json").is_err());
        assert_eq!(parse_ffprobe(b"{}").unwrap(), Probed::default());
    }

    #[test]
    fn poster_time_is_bounded() {
        assert_eq!(poster_time(None), 0.0);
        assert!((poster_time(Some(5.0)) - 0.5).abs() < 1e-9);
        assert_eq!(poster_time(Some(7200.0)), 60.0);
    }

    #[test]
    fn missing_program_and_timeout() {
        assert!(!available("/nonexistent/ffprobe-xyz"));
        let err = run("sleep", &["5".into()], Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, ToolError::Timeout(..)), "{err:?}");
        assert!(matches!(
            run("false", &[], Duration::from_secs(5)),
            Err(ToolError::Failed(..))
        ));
    }
}
