//! Logging: journald (structured fields, priorities from levels) when systemd connected our
//! output to the journal (`JOURNAL_STREAM`), readable lines on stderr otherwise. stdout is
//! reserved for the `listening on …` lines tools parse.

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

/// `level` is `log.level` from the config; `RUST_LOG`, when set and valid, wins.
pub fn init(level: &str) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| parse_filter(&v))
        .or_else(|| parse_filter(level))
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(journald) = tracing_journald::layer() {
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(
                    journald
                        .with_syslog_identifier("streamhub".to_string())
                        // Our fields become plain journal fields (REQUEST_ID, STATUS, PATH…),
                        // so `journalctl -u streamhub STATUS=500` works; none starts with `_`,
                        // so none can pose as a trusted journald field.
                        .with_field_prefix(None),
                )
                .try_init();
            return;
        }
    }
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .try_init();
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
