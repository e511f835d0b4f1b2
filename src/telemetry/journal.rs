//! journald's native protocol (systemd.io/JOURNAL_NATIVE_PROTOCOL): each entry a datagram of
//! fields, sent by the log thread (`queue`). Written here rather than with tracing-journald,
//! which sends from the thread that logs on a blocking socket and offers no way to hand the
//! send to another thread: a journald that fell behind (its queue holds 10 to 512 datagrams)
//! stopped every runtime worker that logged a request, and so the service.
//!
//! The fields are what tracing-journald wrote and `journalctl` users rely on: `MESSAGE`, the
//! event's own fields by name in capitals (`STATUS`, `PATH`, `REQUEST_ID`…), the fields of
//! the spans it is in (`ID` of the request span) with `SPAN_NAME`, `PRIORITY` from the level
//! (ERROR 3, WARN 4, INFO 5, DEBUG 6, TRACE 7), `SYSLOG_IDENTIFIER`, `TARGET`, `CODE_FILE`
//! and `CODE_LINE`. Every value is length-prefixed, so a newline in a path or a message can
//! never start a field of its own; names lose everything but letters, digits and `_`, and a
//! leading `_`, so no field can pose as one journald sets itself.

use std::io::Write;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::queue::Queue;

pub const SOCKET: &str = "/run/systemd/journal/socket";

pub struct JournalLayer {
    queue: Queue,
}

impl JournalLayer {
    pub fn new(queue: Queue) -> Self {
        JournalLayer { queue }
    }
}

/// A span's fields, encoded once when it is made and added to each event inside it.
struct SpanFields(Vec<u8>);

impl<S> tracing_subscriber::Layer<S> for JournalLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut buf = Vec::new();
        put(&mut buf, "SPAN_NAME", span.name().as_bytes());
        attrs.record(&mut Fields(&mut buf));
        span.extensions_mut().insert(SpanFields(buf));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(SpanFields(buf)) = ext.get_mut::<SpanFields>() {
            values.record(&mut Fields(buf));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut buf = Vec::with_capacity(512);
        for span in ctx
            .event_scope(event)
            .into_iter()
            .flat_map(|s| s.from_root())
        {
            if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                buf.extend_from_slice(fields);
            }
        }
        let meta = event.metadata();
        put(&mut buf, "PRIORITY", &[priority(*meta.level())]);
        put(&mut buf, "SYSLOG_IDENTIFIER", b"streamhub");
        put(&mut buf, "TARGET", meta.target().as_bytes());
        if let Some(file) = meta.file() {
            put(&mut buf, "CODE_FILE", file.as_bytes());
        }
        if let Some(line) = meta.line() {
            put(&mut buf, "CODE_LINE", line.to_string().as_bytes());
        }
        event.record(&mut Fields(&mut buf));
        self.queue.push(buf);
    }
}

fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => b'3',
        Level::WARN => b'4',
        Level::INFO => b'5',
        Level::DEBUG => b'6',
        Level::TRACE => b'7',
    }
}

struct Fields<'a>(&'a mut Vec<u8>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        put(self.0, field.name(), value.as_bytes());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        put_with(self.0, field.name(), |buf| {
            let _ = write!(buf, "{value:?}");
        });
    }
}

fn put(buf: &mut Vec<u8>, name: &str, value: &[u8]) {
    put_with(buf, name, |buf| buf.extend_from_slice(value));
}

/// `NAME\n`, the value's length (64-bit little-endian), the value, `\n`.
fn put_with(buf: &mut Vec<u8>, name: &str, value: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend(
        name.bytes()
            .map(|c| if c == b'.' { b'_' } else { c })
            .filter(|c| c.is_ascii_alphanumeric() || *c == b'_')
            .skip_while(|c| *c == b'_' || c.is_ascii_digit())
            .map(|c| c.to_ascii_uppercase()),
    );
    if buf.len() == start {
        buf.extend_from_slice(b"FIELD");
    }
    buf.push(b'\n');
    let len_at = buf.len();
    buf.extend_from_slice(&[0; 8]);
    value(buf);
    let len = (buf.len() - len_at - 8) as u64;
    buf[len_at..len_at + 8].copy_from_slice(&len.to_le_bytes());
    buf.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_length_prefixed_and_names_cannot_pose_as_trusted_fields() {
        let mut buf = Vec::new();
        put(&mut buf, "_pid", b"1\nMESSAGE=forged");
        put(&mut buf, "http.path", b"/a");
        let mut want = b"PID\n".to_vec();
        want.extend_from_slice(&16u64.to_le_bytes());
        want.extend_from_slice(b"1\nMESSAGE=forged\nHTTP_PATH\n");
        want.extend_from_slice(&2u64.to_le_bytes());
        want.extend_from_slice(b"/a\n");
        assert_eq!(buf, want);
    }
}
