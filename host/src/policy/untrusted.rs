//! Text that came out of a policy, made safe to keep and to write anywhere.
//!
//! Everything a policy hands the host (its error string, a target's model name, a rejection
//! message, a reason, a panic message on stderr, a log line) is untrusted, and passes through
//! this module before the host keeps it: it is cut to a bound, then every control or otherwise
//! invisible character is escaped (`\n`, `\r`, `\u{1b}`, `\u{202e}`), so that no log line,
//! header, admin answer or terminal can be forged or hidden by it. [`text`] keeps the rest as the
//! policy wrote it (quotes and backslashes included); [`log_line`] escapes quotes and
//! backslashes too. This module touches nothing but the string it is given.

/// `text` cut to at most `max_bytes` at a character boundary (with `…` appended when cut), then
/// escaped: for what a policy says to people (reasons, messages, errors). Printable ASCII, what
/// reasons nearly always are, needs no escape and is copied as it is.
pub fn text(text: &str, max_bytes: usize) -> String {
    let (kept, cut) = cut(text, max_bytes);
    let mut shown = String::with_capacity(kept.len() + 3);
    if kept.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        shown.push_str(kept);
    } else {
        for c in kept.chars() {
            match c {
                '\\' | '\'' | '"' => shown.push(c),
                c => shown.extend(c.escape_debug()),
            }
        }
    }
    if cut {
        shown.push('…');
    }
    shown
}

/// A line a policy logged or printed, cut like [`text`] and escaped as Rust's `escape_debug`
/// does (quotes and backslashes too), so that what the policy wrote can be told apart from the
/// escapes: for the log, where a policy's lines are free text.
pub fn log_line(line: &str, max_bytes: usize) -> String {
    let (kept, cut) = cut(line, max_bytes);
    let mut shown = kept.escape_debug().to_string();
    if cut {
        shown.push('…');
    }
    shown
}

/// `text` cut to at most `max_bytes` at a character boundary, and whether it was cut.
fn cut(text: &str, max_bytes: usize) -> (&str, bool) {
    if text.len() > max_bytes {
        (&text[..text.floor_char_boundary(max_bytes)], true)
    } else {
        (text, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_and_invisible_characters_are_escaped() {
        assert_eq!(
            text("x\nFORGED level=INFO\r", 100),
            "x\\nFORGED level=INFO\\r"
        );
        assert_eq!(text("\u{1b}[2Jgone", 100), "\\u{1b}[2Jgone");
        assert_eq!(text("abc\u{202e}def", 100), "abc\\u{202e}def");
    }

    #[test]
    fn printable_text_is_kept_as_written() {
        let reason = "reasoning: multi-step cue 'step by step' (\"plan\") C:\\ naïve 日本";
        assert_eq!(text(reason, 1000), reason);
    }

    #[test]
    fn printable_ascii_copied_as_is_agrees_with_escaping_each_character() {
        let escaped = |s: &str| -> String {
            s.chars()
                .map(|c| match c {
                    '\\' | '\'' | '"' => c.to_string(),
                    c => c.escape_debug().to_string(),
                })
                .collect()
        };
        for c in (0..=0x7f_u8)
            .map(char::from)
            .chain(['é', '\u{85}', '\u{202e}'])
        {
            let reason = format!("cheap: {c} (~12 tokens)");
            assert_eq!(text(&reason, 100), escaped(&reason), "{c:?}");
        }
    }

    #[test]
    fn log_lines_escape_quotes_and_backslashes_too() {
        assert_eq!(log_line("say \"hi\"\\n\n", 100), "say \\\"hi\\\"\\\\n\\n");
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        assert_eq!(text("ééé", 3), "é…");
        assert_eq!(text("abc", 3), "abc");
    }
}
