//! [`Label`]: a name the request path writes on every request it serves (the team, the policy
//! version, the catalog model and its provider), made once where the name is configured or loaded.
//!
//! Every answer carries these names in its routing headers and its log line. A label is shared,
//! not copied: cloning one counts a reference, and it holds its header value, made with it, so
//! naming it in a header allocates nothing per request. A header value is printable ASCII only;
//! anything else in a name becomes `?` there ([`header_value`], which the request path also uses
//! for texts it gets per request, such as a policy's reason). This module depends on nothing else
//! in the crate.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use axum::http::HeaderValue;

/// A name and its header value, behind one pointer: the request's context holds several, and
/// every byte it holds is moved with its futures.
#[derive(Clone)]
pub struct Label(Arc<Named>);

struct Named {
    text: Arc<str>,
    header: HeaderValue,
}

impl Label {
    /// `text` as a label.
    pub fn new(text: &str) -> Self {
        Self(Arc::new(Named {
            text: Arc::from(text),
            header: header_value(text),
        }))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0.text
    }

    /// The name, shared.
    pub fn text(&self) -> &Arc<str> {
        &self.0.text
    }

    /// The name as a header value (a shared reference, not a copy).
    pub fn header(&self) -> HeaderValue {
        self.0.header.clone()
    }
}

impl Deref for Label {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Label {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Label {}

impl PartialEq<&str> for Label {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// `text` as a header value: printable ASCII, anything else as `?`. Text that is printable ASCII
/// already (as names and most reasons are) is copied once, not rebuilt.
pub fn header_value(text: &str) -> HeaderValue {
    let printable = |b: u8| b == b' ' || b.is_ascii_graphic();
    if text.bytes().all(printable) {
        return HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("?"));
    }
    let clean: String = text
        .chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect();
    HeaderValue::from_str(&clean).unwrap_or(HeaderValue::from_static("?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_carry_only_printable_ascii() {
        assert_eq!(header_value("cheap: simple prompt"), "cheap: simple prompt");
        assert_eq!(header_value("naïve\r\nx"), "na?ve??x");
    }

    #[test]
    fn a_label_keeps_its_name_and_shows_it_safely_in_a_header() {
        let label = Label::new("team-ü\n");
        assert_eq!(label.as_str(), "team-ü\n");
        assert_eq!(label.header(), "team-??");
        assert_eq!(label.to_string(), "team-ü\n");
        assert_eq!(format!("{label:?}"), "\"team-ü\\n\"");
        assert!(label == "team-ü\n" && label.clone() == label);
        assert_eq!(size_of::<Option<Label>>(), size_of::<usize>());
    }
}
