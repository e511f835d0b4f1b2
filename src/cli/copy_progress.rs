//! What `storage copy` shows: its progress on stderr, names made safe for a terminal, the
//! counts of its summary.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Progress on stderr: on a terminal an `indicatif` bar (done, rate, ETA) redrawn in place;
/// otherwise (a log, a pipe) a plain line per file, and one every few seconds during a long
/// one, each saying how far the copy is.
pub(super) struct Progress {
    total: u64,
    files: usize,
    done: u64,
    files_done: usize,
    started: Instant,
    last: Instant,
    bar: Option<ProgressBar>,
}

impl Progress {
    pub(super) fn new(total: u64, files: usize) -> Self {
        let now = Instant::now();
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template(
                "copy: {percent}% [{msg} files] {wide_bar} {binary_bytes} of \
                 {binary_total_bytes}, {binary_bytes_per_sec}, ETA {eta_precise}",
            ) {
                bar.set_style(style);
            }
            bar.set_message(format!("0/{files}"));
            bar
        });
        Progress {
            total,
            files,
            done: 0,
            files_done: 0,
            started: now,
            last: now,
            bar,
        }
    }

    pub(super) fn add(&mut self, n: u64) {
        self.done += n;
        if let Some(bar) = &self.bar {
            bar.inc(n);
        } else if self.last.elapsed() >= Duration::from_secs(5) {
            self.last = Instant::now();
            eprintln!("{}", self.line());
        }
    }

    pub(super) fn file_done(&mut self, what: &str, name: &str) {
        self.files_done += 1;
        match &self.bar {
            Some(bar) => bar.set_message(format!("{}/{}", self.files_done, self.files)),
            None => eprintln!("{}: {what} {name}", self.line()),
        }
    }

    /// The plain line (no terminal).
    pub(super) fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = self.done as f64 / secs;
        let pct = (self.done * 100).checked_div(self.total).unwrap_or(100);
        let eta = if rate > 0.0 {
            let left = (self.total.saturating_sub(self.done)) as f64 / rate;
            format!("ETA {}", clock(left as u64))
        } else {
            "ETA -".into()
        };
        format!(
            "copy: {pct}% [{}/{} files] {} of {}, {}/s, {eta}",
            self.files_done,
            self.files,
            mib(self.done),
            mib(self.total),
            mib(rate as u64)
        )
    }

    /// A line of its own, above the bar on a terminal.
    pub(super) fn say(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    /// Takes the bar away before the summary.
    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

fn clock(secs: u64) -> String {
    format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// A name as the terminal may show it: a name is whatever someone put in the source, and
/// control characters in it (escape sequences, a newline forging a report line) are written
/// as `\u{1b}`, never sent raw.
pub(super) fn shown(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// "1 file", "2 files".
pub(super) fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Names the entries the copy leaves out (on stderr; not failures): the service does not
/// serve them either, so they are not part of the library.
pub(super) fn report_left_out(left_out: &[String]) {
    const SHOWN: usize = 20;
    if left_out.is_empty() {
        return;
    }
    eprintln!(
        "left out {} entries that streamhub does not serve either (hidden names, links out of \
         the library or to folders, special files, names no path can carry):",
        left_out.len()
    );
    for name in left_out.iter().take(SHOWN) {
        eprintln!("  {}", shown(name));
    }
    if left_out.len() > SHOWN {
        eprintln!("  … and {} more", left_out.len() - SHOWN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line_says_how_far() {
        let mut p = Progress::new(4 << 20, 2);
        p.done = 1 << 20;
        p.files_done = 1;
        let l = p.line();
        assert!(
            l.starts_with("copy: 25% [1/2 files] 1.0 MiB of 4.0 MiB"),
            "{l}"
        );
        assert!(l.contains("ETA"), "{l}");
        assert_eq!(clock(3725), "1:02:05");
    }

    #[test]
    fn names_reach_the_terminal_without_control_characters() {
        let evil = "esc\u{1b}[31mRED\u{1b}[0m.txt\nFAILED forged\u{1}";
        let s = shown(evil);
        assert!(!s.chars().any(char::is_control), "{s:?}");
        assert_eq!(
            s,
            "esc\\u{1b}[31mRED\\u{1b}[0m.txt\\u{a}FAILED forged\\u{1}"
        );
        assert_eq!(shown("Sigur Rós/Ágætis byrjun"), "Sigur Rós/Ágætis byrjun");
        assert_eq!(counted(1, "file", "files"), "1 file");
        assert_eq!(counted(0, "file", "files"), "0 files");
    }
}
