//! Logging: journald (structured fields, priorities from levels) when systemd connected our
//! output to the journal (`JOURNAL_STREAM`), readable lines on stderr otherwise. stdout is
//! reserved for the `listening on …` lines tools parse. Either way a thread of its own writes
//! the lines (`queue`), so an output that stops taking them drops lines, never requests.

mod journal;
mod queue;

use std::io::IsTerminal;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// A log filter: a level (`info`), or per-target levels with a default
/// (`streamhub=debug,hyper=warn,info`). `Targets` rather than `EnvFilter`: the same syntax
/// for what people write, without a regex engine in the binary (~0.2 MiB of resident code).
/// Every part must name a level (`off`, `error` … `trace`), so a typo is an error rather
/// than a target called "verbose".
pub fn parse_filter(s: &str) -> Option<Targets> {
    use tracing_subscriber::filter::LevelFilter;
    let mut t = Targets::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some((target, level)) if !target.trim().is_empty() => {
                let level: LevelFilter = level.trim().parse().ok()?;
                t = t.with_target(target.trim().to_string(), level);
            }
            Some(_) => return None,
            None => t = t.with_default(part.parse::<LevelFilter>().ok()?),
        }
    }
    Some(t)
}

/// The log writer's queue, once `init` has started it.
static QUEUE: std::sync::OnceLock<queue::Queue> = std::sync::OnceLock::new();

/// Waits, at most `wait`, until what was logged so far is written. Used before the
/// `listening on` lines (a start's log is complete when a tool sees them) and at exit.
pub fn flush(wait: std::time::Duration) -> bool {
    QUEUE.get().is_none_or(|q| q.flush(wait))
}

/// Flushes the log when dropped (held by `main` until the process exits).
pub struct LogGuard(());

impl Drop for LogGuard {
    fn drop(&mut self) {
        // Bounded: a stalled output must not keep a stopping service from exiting.
        flush(std::time::Duration::from_secs(2));
    }
}

fn started(queue: queue::Queue) -> Option<LogGuard> {
    let _ = QUEUE.set(queue);
    Some(LogGuard(()))
}

fn report_dropped(n: u64) {
    tracing::warn!(
        dropped = n,
        "log lines dropped: the log output (stderr or journald) was not taking them"
    );
}

/// `level` is `log.level` from the config; `RUST_LOG`, when set and valid, wins. Lines are
/// written by a thread of their own (`queue`): logging never waits on the output.
pub fn init(level: &str) -> Option<LogGuard> {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| parse_filter(&v))
        .or_else(|| parse_filter(level))
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Some(socket) = journal_socket() {
            let queue = queue::Queue::start(queue::Sink::Journal(socket), report_dropped).ok()?;
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(journal::JournalLayer::new(queue.clone()))
                .try_init();
            return started(queue);
        }
    }
    let ansi = std::io::stderr().is_terminal();
    let queue = match queue::Queue::start(
        queue::Sink::Text(Box::new(std::io::stderr())),
        report_dropped,
    ) {
        Ok(q) => q,
        Err(e) => {
            eprintln!("warning: no log thread ({e}); logging is off");
            return None;
        }
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(queue.clone())
                .with_ansi(ansi),
        )
        .try_init();
    started(queue)
}

/// journald's socket, when one answers (an empty datagram, which it ignores).
fn journal_socket() -> Option<std::os::unix::net::UnixDatagram> {
    let s = std::os::unix::net::UnixDatagram::unbound().ok()?;
    s.send_to(&[], journal::SOCKET).ok()?;
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::parse_filter;

    #[test]
    fn filters_name_levels() {
        for ok in [
            "info",
            "warn",
            "streamhub=debug,hyper=warn,info",
            "off",
            " debug ",
        ] {
            assert!(parse_filter(ok).is_some(), "{ok}");
        }
        for bad in ["verbose", "[[[", "streamhub=loud", "=info", "info,chatty"] {
            assert!(parse_filter(bad).is_none(), "{bad}");
        }
    }
}
