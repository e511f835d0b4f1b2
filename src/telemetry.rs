//! Logging: journald (structured fields, priorities from levels) when systemd connected our
//! output to the journal (`JOURNAL_STREAM`), readable lines on stderr otherwise. stdout is
//! reserved for the `listening on …` lines tools parse.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// `level` is `log.level` from the config; `RUST_LOG`, when set and valid, wins.
pub fn init(level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
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
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
