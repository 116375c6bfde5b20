//! Errors as clients see them: an HTTP status and a JSON body in the client's API shape, OpenAI's
//! `{"error": {"message", "type", "param", "code"}}` or Anthropic's
//! `{"type": "error", "error": {"type", "message"}}` ([`ApiError::response_for`]).
//!
//! Every failure that reaches a client goes through [`ApiError`], so the shape is the same for a
//! malformed body, a rejected request and an upstream that could not be reached. Messages never
//! carry internals such as upstream URLs, keys or policy traps.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{Wire, translate};

/// An error answer to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// OpenAI's error `type`, e.g. `invalid_request_error`.
    pub kind: &'static str,
    pub message: String,
    /// The request field at fault, when there is one.
    pub param: Option<String>,
    /// A stable machine-readable code.
    pub code: Option<&'static str>,
}

impl ApiError {
    /// 400: the request body is wrong; `param` names the field.
    pub fn invalid(param: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            message: message.into(),
            param: param.map(str::to_string),
            code: None,
        }
    }

    /// Any status with a message, as a policy rejection or a gateway failure.
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            param: None,
            code: Some(code),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        #[derive(Serialize)]
        struct Body<'a> {
            error: Inner<'a>,
        }
        #[derive(Serialize)]
        struct Inner<'a> {
            message: &'a str,
            #[serde(rename = "type")]
            kind: &'a str,
            param: Option<&'a str>,
            code: Option<&'a str>,
        }
        let body = Body {
            error: Inner {
                message: &self.message,
                kind: self.kind,
                param: self.param.as_deref(),
                code: self.code,
            },
        };
        serde_json::to_string(&body).expect("error body serialises")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.kind,
            self.message
        )
    }
}

impl ApiError {
    /// The answer to a client of `wire`, with the body in that API's error shape.
    pub fn response_for(self, wire: Wire) -> Response {
        let body = match wire {
            Wire::Openai | Wire::Responses => self.body(),
            Wire::Anthropic => translate::error_json(
                wire,
                self.status,
                self.kind,
                self.code,
                self.param.as_deref(),
                &self.message,
            ),
        };
        (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            self.body(),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_openai_shape() {
        let e = ApiError::invalid(Some("messages"), "`messages` must not be empty");
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {
                "message": "`messages` must not be empty",
                "type": "invalid_request_error",
                "param": "messages",
                "code": null
            }})
        );
    }
}
