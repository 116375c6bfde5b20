//! The text log line's fields, written byte for byte as `tracing-subscriber`'s default field
//! formatter writes them without colours (`name=value`, a string quoted and escaped as `{:?}`
//! escapes it), but without its per-field styling passes, and with a string that needs no
//! escaping (printable ASCII, no quote, no backslash: every team, model and reason in practice)
//! copied as it is instead of escaped character by character. Lines with colours (a terminal),
//! the `message` field, errors and raw identifiers go to the default formatter unchanged. It
//! touches nothing but the line being written.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultFields, DefaultVisitor, Writer};

/// The field formatter of text log lines (`LogFormat::Text`).
pub struct LineFields;

impl<'w> FormatFields<'w> for LineFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        if writer.has_ansi_escapes() {
            return DefaultFields::new().format_fields(writer, fields);
        }
        let mut visitor = Plain {
            writer,
            is_empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Writes fields as [`DefaultVisitor`] does on a writer without colours.
struct Plain<'w> {
    writer: Writer<'w>,
    is_empty: bool,
    result: fmt::Result,
}

impl Plain<'_> {
    /// Fields the default visitor treats specially: it writes the message bare and sanitised,
    /// strips `r#` and skips `log.` metadata (with `tracing-subscriber`'s `tracing-log` feature,
    /// which the workspace turns on by name).
    fn special(name: &str) -> bool {
        name == "message" || name.starts_with("r#") || name.starts_with("log.")
    }

    /// Let the default visitor write one field.
    fn delegate(&mut self, field: &Field, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if field.name().starts_with("log.") {
            return;
        }
        let mut visitor = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut visitor);
        self.result = visitor.finish();
        self.is_empty = false;
    }

    /// The separating space and `name=`.
    fn start(&mut self, name: &str) -> fmt::Result {
        if !std::mem::take(&mut self.is_empty) {
            self.writer.write_char(' ')?;
        }
        self.writer.write_str(name)?;
        self.writer.write_char('=')
    }
}

/// Whether `{:?}` would write `value` between quotes unchanged.
fn needs_no_escaping(value: &str) -> bool {
    value
        .bytes()
        .all(|b| matches!(b, b' '..=b'~') && b != b'"' && b != b'\\')
}

impl Visit for Plain<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        if Self::special(field.name()) {
            return self.delegate(field, |v| v.record_str(field, value));
        }
        self.result = self.start(field.name()).and_then(|()| {
            if needs_no_escaping(value) {
                self.writer.write_char('"')?;
                self.writer.write_str(value)?;
                self.writer.write_char('"')
            } else {
                write!(self.writer, "{value:?}")
            }
        });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.result.is_ok() {
            self.delegate(field, |v| v.record_error(field, value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        if Self::special(field.name()) {
            return self.delegate(field, |v| v.record_debug(field, value));
        }
        self.result = self
            .start(field.name())
            .and_then(|()| write!(self.writer, "{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::fmt::format::DefaultFields;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer \"failure\"")]
    struct Outer(#[source] std::io::Error);

    /// The lines `emit` logs, with the fields written by `fields`.
    fn lines<N>(fields: N, emit: impl Fn()) -> String
    where
        N: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(buffer.clone())
            .with_ansi(false)
            .without_time()
            .fmt_fields(fields)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span =
                tracing::info_span!("span", team = "a\tb", n = 3, later = tracing::field::Empty);
            span.record("later", "set \"afterwards\"");
            span.in_scope(emit)
        });
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    fn emit() {
        let error = Outer(std::io::Error::other("inner"));
        let none: Option<u64> = None;
        tracing::info!(
            target: "switchyard::request",
            request_id = %"req-1",
            status = 200u16,
            team = "team a",
            reason = "said \"why\" \\ here",
            model = "modèle",
            control = "line\nbreak\u{1b}[31m",
            empty = "",
            cost_usd = 0.000_125,
            latency_ms = 12.5f64,
            missing = none,
            tokens = Some(42u64),
            negative = -3i64,
            big = u128::MAX,
            flag = true,
            r#type = "raw",
            attempts = %"gpt-4o=200 in 3ms, other: timed out",
            debugged = ?vec!["x"],
            error = &error as &(dyn std::error::Error + 'static),
            "request {} done", 7
        );
        tracing::warn!("only a message with \u{1b}[1m escape");
        tracing::info!(plain = "first", "then the message");
    }

    #[test]
    fn lines_are_written_byte_for_byte_as_the_default_formatter_writes_them() {
        let ours = lines(LineFields, emit);
        let default = lines(DefaultFields::new(), emit);
        assert_eq!(ours, default);
        for expected in [
            "team=\"team a\"",
            "reason=\"said \\\"why\\\" \\\\ here\"",
            "model=\"modèle\"",
            "control=\"line\\nbreak\\u{1b}[31m\"",
            "empty=\"\"",
            "request_id=req-1 status=200",
            "type=\"raw\"",
            "tokens=42 negative=-3 big=340282366920938463463374607431768211455 flag=true",
            "span{team=\"a\\tb\" n=3 later=\"set \\\"afterwards\\\"\"}",
        ] {
            assert!(ours.contains(expected), "{expected} missing from {ours}");
        }
        assert!(!ours.contains("missing="), "{ours}");
    }

    #[test]
    fn only_printable_ascii_without_quotes_or_backslashes_is_copied_unescaped() {
        assert!(needs_no_escaping("gpt-4o: cheap, fits (~120 tokens) 'x'"));
        assert!(needs_no_escaping(""));
        for escaped in ["a\"b", "a\\b", "tab\t", "é", "\u{7f}", "\u{1b}[0m"] {
            assert!(!needs_no_escaping(escaped), "{escaped:?}");
        }
    }
}
