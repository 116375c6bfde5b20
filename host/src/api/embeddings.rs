//! An OpenAI embeddings request (`POST /v1/embeddings`), read into the same compact view as a
//! chat request: each input is a user "message" whose text a policy may ask for, and whose size
//! counts towards the token estimate. `input` is a string, a list of strings, a list of token ids
//! or a list of such lists; `dimensions` and `encoding_format` (`float` or `base64`) are checked
//! and passed through untouched, like every other field. Pure functions over the body's bytes.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::raw::{Ranges, TextAt, optional, value};
use super::{ApiError, ClientRequest, MessageInfo, Role};

/// A string borrowed from the body when it has no escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// Read one top-level field of an embeddings request; the rest are kept as bytes, unread.
pub(super) fn field(
    request: &mut ClientRequest,
    key: &str,
    raw: &RawValue,
    ranges: &Ranges,
) -> Result<(), ApiError> {
    match key {
        "input" => inputs(request, raw, ranges)?,
        "dimensions" => {
            optional::<u32>(raw, key, "a positive integer")?;
        }
        "encoding_format" => {
            let format: Option<String> = optional(raw, key, "`float` or `base64`")?;
            if format.is_some_and(|f| f != "float" && f != "base64") {
                return Err(ApiError::invalid(
                    Some(key),
                    "`encoding_format` must be `float` or `base64`",
                ));
            }
        }
        "user" => {
            optional::<Text<'_>>(raw, key, "a string")?;
        }
        _ => {}
    }
    Ok(())
}

/// Summarise `input`: one message per string or per list of token ids.
fn inputs(request: &mut ClientRequest, raw: &RawValue, ranges: &Ranges) -> Result<(), ApiError> {
    const EXPECTED: &str =
        "a string, an array of strings, or an array of token ids or of such arrays";
    let invalid = || ApiError::invalid(Some("input"), format!("`input` must be {EXPECTED}"));
    match raw.get().as_bytes().first() {
        Some(b'"') => text(request, raw, ranges),
        Some(b'[') => {
            let items: Vec<&RawValue> = value(raw, "input", EXPECTED)?;
            if items.is_empty() {
                return Err(ApiError::invalid(
                    Some("input"),
                    "`input` must not be empty",
                ));
            }
            match items[0].get().as_bytes().first() {
                // One input of token ids.
                Some(b'0'..=b'9') => {
                    let tokens: Vec<u32> = value(raw, "input", EXPECTED)?;
                    push_tokens(request, tokens.len());
                    Ok(())
                }
                _ => items
                    .into_iter()
                    .try_for_each(|item| match item.get().as_bytes().first() {
                        Some(b'"') => text(request, item, ranges),
                        Some(b'[') => {
                            let tokens: Vec<u32> = value(item, "input", EXPECTED)?;
                            push_tokens(request, tokens.len());
                            Ok(())
                        }
                        _ => Err(invalid()),
                    }),
            }
        }
        _ => Err(invalid()),
    }
}

/// One text input, whose text a policy may read.
fn text(request: &mut ClientRequest, raw: &RawValue, ranges: &Ranges) -> Result<(), ApiError> {
    let Text(text): Text<'_> = value(raw, "input", "a string")?;
    request.messages.push(MessageInfo {
        role: Role::User,
        chars: u32::try_from(text.chars().count()).unwrap_or(u32::MAX),
        has_image: false,
        has_tool_call: false,
    });
    request.texts.push(TextAt::Content(ranges.of(raw)));
    Ok(())
}

/// One input of `count` token ids, counted as four characters a token; it has no text.
fn push_tokens(request: &mut ClientRequest, count: usize) {
    request.messages.push(MessageInfo {
        role: Role::User,
        chars: u32::try_from(count.saturating_mul(4)).unwrap_or(u32::MAX),
        has_image: false,
        has_tool_call: false,
    });
    request.texts.push(TextAt::NoText);
}
