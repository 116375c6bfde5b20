//! Typed readers of a request body's JSON for translation: each gives a field as the type it must
//! be, or a 400 whose `param` is the field's path in the client's own format and whose message
//! says what it must be. Pure functions over `serde_json` values.

use serde_json::{Map, Value};

use crate::api::ApiError;

/// A 400 naming `param`, whose message is the field in backquotes followed by `rest`.
pub(super) fn invalid(param: &str, rest: &str) -> ApiError {
    ApiError::invalid(Some(param), format!("`{param}` {rest}"))
}

pub(super) fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::invalid(None, "the body must be a JSON object")),
        Err(e) => Err(ApiError::invalid(
            None,
            format!("the body is not valid JSON: {e}"),
        )),
    }
}

pub(super) fn string<'a>(value: &'a Value, param: &str) -> Result<&'a str, ApiError> {
    value
        .as_str()
        .ok_or_else(|| invalid(param, "must be a string"))
}

pub(super) fn number(value: &Value, param: &str) -> Result<f64, ApiError> {
    value
        .as_f64()
        .ok_or_else(|| invalid(param, "must be a number"))
}

pub(super) fn boolean(value: &Value, param: &str) -> Result<bool, ApiError> {
    value
        .as_bool()
        .ok_or_else(|| invalid(param, "must be a boolean"))
}

pub(super) fn object<'a>(
    value: &'a Value,
    param: &str,
) -> Result<&'a Map<String, Value>, ApiError> {
    value
        .as_object()
        .ok_or_else(|| invalid(param, "must be an object"))
}

pub(super) fn array<'a>(value: &'a Value, param: &str) -> Result<&'a Vec<Value>, ApiError> {
    value
        .as_array()
        .ok_or_else(|| invalid(param, "must be an array"))
}

/// An array of strings, copied.
pub(super) fn strings(value: &Value, param: &str) -> Result<Vec<Value>, ApiError> {
    let list = value
        .as_array()
        .filter(|l| l.iter().all(Value::is_string))
        .ok_or_else(|| invalid(param, "must be a string or an array of strings"))?;
    Ok(list.clone())
}

/// The `type` of a content part or block.
pub(super) fn kind<'a>(value: &'a Value, param: &str) -> Result<&'a str, ApiError> {
    value
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(param, "must be an object with a string `type`"))
}

/// A field that must be there, as a string.
pub(super) fn required_string<'a>(
    parent: &'a Value,
    key: &str,
    parent_param: &str,
) -> Result<&'a str, ApiError> {
    let param = format!("{parent_param}.{key}");
    parent
        .get(key)
        .ok_or_else(|| invalid(&param, "is required"))
        .and_then(|v| string(v, &param))
}

/// A content block's base64 `source`: its media type and data; `target` says who takes no URLs
/// (`"a Bedrock model, which takes no URLs"`).
pub(super) fn base64_source<'a>(
    block: &'a Value,
    param: &str,
    target: &str,
) -> Result<(&'a str, &'a str), ApiError> {
    let source_param = format!("{param}.source");
    let source = block
        .get("source")
        .ok_or_else(|| invalid(&source_param, "is required"))?;
    if source.get("type").and_then(Value::as_str) != Some("base64") {
        return Err(invalid(
            &source_param,
            &format!("must be base64 data for {target}"),
        ));
    }
    Ok((
        required_string(source, "media_type", &source_param)?,
        required_string(source, "data", &source_param)?,
    ))
}

/// A Messages custom tool: its name, description (if any) and input schema.
pub(super) struct CustomTool<'a> {
    pub name: &'a str,
    pub description: Option<&'a Value>,
    pub schema: &'a Value,
}

/// The custom tools of a Messages `tools` list; any other kind of tool is refused with
/// `refusal` (`"cannot be sent to ..."`).
pub(super) fn custom_tools<'a>(
    value: &'a Value,
    refusal: &str,
) -> Result<Vec<CustomTool<'a>>, ApiError> {
    let mut out = Vec::new();
    for (i, tool) in array(value, "tools")?.iter().enumerate() {
        let param = format!("tools[{i}]");
        object(tool, &param)?;
        if let Some(kind) = tool.get("type").and_then(Value::as_str)
            && kind != "custom"
        {
            return Err(invalid(&param, &format!("of type `{kind}` {refusal}")));
        }
        let description = tool.get("description").filter(|d| !d.is_null());
        if let Some(description) = description {
            string(description, &format!("{param}.description"))?;
        }
        out.push(CustomTool {
            name: required_string(tool, "name", &param)?,
            description,
            schema: tool
                .get("input_schema")
                .ok_or_else(|| invalid(&format!("{param}.input_schema"), "is required"))?,
        });
    }
    Ok(out)
}
