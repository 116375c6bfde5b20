//! Reading the request: its messages' text (from the host, on demand), headers and metadata, and
//! the token estimate policies keep needing (cue matching is in [`crate::cues`]).

use crate::{Pair, Request, Role, host};

/// Helpers on the [`Request`] view.
pub trait RequestExt {
    /// Up to `max_chars` characters of message `index`, read from the host on demand (the host
    /// applies its own cap too).
    fn message_text(&self, index: usize, max_chars: u32) -> Option<String>;
    /// Index of the last message written by the user.
    fn last_user_message(&self) -> Option<usize>;
    /// Up to `max_chars` characters of the last user message.
    fn last_user_text(&self, max_chars: u32) -> Option<String>;
    /// Value of an allow-listed header (names are lower case).
    fn header(&self, name: &str) -> Option<&str>;
    /// Value of a `metadata` entry.
    fn metadata(&self, name: &str) -> Option<&str>;
}

impl RequestExt for Request {
    fn message_text(&self, index: usize, max_chars: u32) -> Option<String> {
        host::message_text(u32::try_from(index).ok()?, max_chars)
    }

    fn last_user_message(&self) -> Option<usize> {
        self.messages.iter().rposition(|m| m.role == Role::User)
    }

    fn last_user_text(&self, max_chars: u32) -> Option<String> {
        self.message_text(self.last_user_message()?, max_chars)
    }

    fn header(&self, name: &str) -> Option<&str> {
        find_pair(&self.headers, name)
    }

    fn metadata(&self, name: &str) -> Option<&str> {
        find_pair(&self.metadata, name)
    }
}

fn find_pair<'a>(pairs: &'a [Pair], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.value.as_str())
}

/// Estimated tokens in `text`: about four characters a token, as the host counts. (A request's
/// `estimated_input_tokens` is that over all its messages plus four tokens a message.)
pub fn estimate_tokens(text: &str) -> u32 {
    u32::try_from(text.chars().count().div_ceil(4)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, MockHost};

    #[test]
    fn message_text_comes_from_the_mock_host_capped() {
        let req = testing::request()
            .system("Be brief.")
            .user("héllo world")
            .assistant("hi")
            .build();
        assert_eq!(req.message_text(1, 100).as_deref(), Some("héllo world"));
        assert_eq!(req.message_text(1, 3).as_deref(), Some("hél"));
        assert_eq!(req.message_text(3, 100), None);
        assert_eq!(req.last_user_message(), Some(1));
        assert_eq!(req.last_user_text(5).as_deref(), Some("héllo"));

        let _host = MockHost::new().message_text(["only", "these"]).install();
        assert_eq!(req.last_user_text(100).as_deref(), Some("these"));
    }

    #[test]
    fn headers_and_metadata_are_found_by_name() {
        let req = testing::request()
            .user("x")
            .header("X-Hint", "code")
            .metadata("task", "triage")
            .build();
        assert_eq!(req.header("x-hint"), Some("code"));
        assert_eq!(req.header("x-other"), None);
        assert_eq!(req.metadata("task"), Some("triage"));
    }

    #[test]
    fn tokens_are_about_four_characters() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
        assert_eq!(estimate_tokens("éééé"), 1, "characters, not bytes");
    }
}
