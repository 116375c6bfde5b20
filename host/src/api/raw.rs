//! Reading a chat request's raw JSON without copying it, for both client APIs (`request`,
//! `openai`, `anthropic`): a `content` value's text pieces borrowed from the body, a field as the
//! type it must be (or a 400 naming it), and the byte range of a value within the body, which is
//! how a message's text is found again later. Pure functions over borrowed bytes.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use super::ApiError;

/// Where a message's text lives in the body.
#[derive(Debug, Clone)]
pub enum TextAt {
    /// A message object with a `content` field (a Responses API item; a chat message without
    /// content).
    Message(Range<usize>),
    /// A bare content value (a chat message's `content`, Anthropic's top-level `system`, an
    /// embeddings input string, the Responses API's `instructions` or a tool's `output`).
    Content(Range<usize>),
    /// Nothing a policy may read as text: token ids (an embeddings input), a tool call or a
    /// reasoning item (Responses).
    NoText,
}

/// A field's place in the request as an error names it, such as `messages[2].content`: written
/// out only when there is an error, so that reading a valid request formats nothing.
#[derive(Debug, Clone, Copy)]
pub struct Param<'a> {
    /// The array's name.
    pub list: &'a str,
    pub index: usize,
    /// The element's field, or "" for the element itself.
    pub field: &'a str,
}

impl<'a> Param<'a> {
    /// Element `index` of `list`.
    pub fn at(list: &'a str, index: usize) -> Self {
        Self {
            list,
            index,
            field: "",
        }
    }

    /// The element's `field`.
    pub fn field(self, field: &'a str) -> Self {
        Self { field, ..self }
    }
}

impl fmt::Display for Param<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.list, self.index)?;
        if !self.field.is_empty() {
            write!(f, ".{}", self.field)?;
        }
        Ok(())
    }
}

/// A JSON string, borrowed from the body when it has no escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// One part of a multi-part content array (OpenAI content part or Anthropic content block).
#[derive(Deserialize)]
struct PartWire<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

/// What a `content` value holds.
#[derive(Default)]
pub struct Content<'a> {
    /// Its text pieces, in order.
    pub pieces: Vec<Cow<'a, str>>,
    pub has_image: bool,
    /// It holds a tool call or a tool result block (Anthropic `tool_use`, `tool_result`).
    pub has_tool_block: bool,
}

impl Content<'_> {
    /// Characters of text, counting one for each line break that joins two pieces.
    pub fn chars(&self) -> u32 {
        let chars: usize = self.pieces.iter().map(|p| p.chars().count()).sum::<usize>()
            + self.pieces.len().saturating_sub(1);
        u32::try_from(chars).unwrap_or(u32::MAX)
    }
}

/// Read a `content` value: a string, an array of parts or blocks, or null; `param` names it in
/// the error.
pub fn content<'a>(
    content: Option<&'a RawValue>,
    param: impl fmt::Display,
) -> Result<Content<'a>, ApiError> {
    let Some(raw) = content else {
        return Ok(Content::default());
    };
    let invalid = || must_be(&param, "a string, an array of content parts or null");
    match raw.get().as_bytes().first() {
        Some(b'"') => {
            let Text(text) = serde_json::from_str(raw.get()).map_err(|_| invalid())?;
            Ok(Content {
                pieces: vec![text],
                ..Content::default()
            })
        }
        Some(b'[') => {
            let parts: Vec<PartWire<'a>> =
                serde_json::from_str(raw.get()).map_err(|_| invalid())?;
            let has_image = parts
                .iter()
                .any(|p| matches!(&*p.kind, "image_url" | "input_image" | "image"));
            let has_tool_block = parts
                .iter()
                .any(|p| matches!(&*p.kind, "tool_use" | "tool_result"));
            Ok(Content {
                pieces: parts.into_iter().filter_map(|p| p.text).collect(),
                has_image,
                has_tool_block,
            })
        }
        Some(b'n') => Ok(Content::default()),
        _ => Err(invalid()),
    }
}

/// A 400 naming `param` and saying it must be `expected`; the name is written only here.
pub fn must_be(param: impl fmt::Display, expected: &str) -> ApiError {
    let param = param.to_string();
    ApiError::invalid(Some(&param), format!("`{param}` must be {expected}"))
}

/// `raw` as a `T`, or a 400 saying `param` must be `expected`.
pub fn value<'a, T: Deserialize<'a>>(
    raw: &'a RawValue,
    param: impl fmt::Display,
    expected: &str,
) -> Result<T, ApiError> {
    serde_json::from_str(raw.get()).map_err(|_| must_be(param, expected))
}

/// `raw` as a `T` or null.
pub fn optional<'a, T: Deserialize<'a>>(
    raw: &'a RawValue,
    param: &str,
    expected: &str,
) -> Result<Option<T>, ApiError> {
    value(raw, param, expected)
}

/// Whether `raw` (an array or null) has any element, such as a tool declaration.
pub fn declares_any(raw: &RawValue, param: &str) -> Result<bool, ApiError> {
    let list: Option<Vec<IgnoredAny>> = optional(raw, param, "an array")?;
    Ok(list.is_some_and(|l| !l.is_empty()))
}

/// The byte range of a raw value within the body it was parsed from.
pub struct Ranges(usize);

impl Ranges {
    /// Ranges within `body`, which the values asked about must have been parsed from.
    pub fn within(body: &[u8]) -> Self {
        Self(body.as_ptr() as usize)
    }

    /// Where `raw` sits in the body.
    pub fn of(&self, raw: &RawValue) -> Range<usize> {
        let start = raw.get().as_ptr() as usize - self.0;
        start..start + raw.get().len()
    }

    /// Where the text of chat message `message` lives: its `content` value, read later by
    /// `message_text` without parsing the message again; the message itself when it has none.
    pub fn message_text(&self, message: &RawValue, content: Option<&RawValue>) -> TextAt {
        match content {
            Some(content) => TextAt::Content(self.of(content)),
            None => TextAt::Message(self.of(message)),
        }
    }
}
