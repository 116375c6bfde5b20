//! Who is calling: a client's virtual API key, mapped to its team.
//!
//! Clients send their key as `Authorization: Bearer KEY` (OpenAI style) or `x-api-key: KEY`
//! (Anthropic style). [`Keys`] holds only SHA-256 digests of keys, whether the config gave a key
//! or its digest, and looks a request's key up by its digest. A request without a key goes to the
//! config's anonymous team if there is one; an unknown key never does. This module reads the
//! request headers and nothing else.

use axum::http::{HeaderMap, StatusCode, header};

use crate::api::ApiError;
use crate::config::{Config, parse_digest, sha256};

/// Why a request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no API key was provided: send it as `Authorization: Bearer KEY` or `x-api-key: KEY`")]
    Missing,
    #[error("the API key is not valid")]
    Unknown,
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            match error {
                AuthError::Missing => "missing_api_key",
                AuthError::Unknown => "invalid_api_key",
            },
            error.to_string(),
        )
    }
}

/// Key digests to team indices (positions in `config.teams`).
#[derive(Debug, Clone, Default)]
pub struct Keys {
    teams: foldhash::HashMap<[u8; 32], usize>,
    anonymous: Option<usize>,
}

impl Keys {
    /// The keys of a validated config.
    pub fn from_config(config: &Config) -> Self {
        let mut teams = foldhash::HashMap::default();
        for (i, team) in config.teams.iter().enumerate() {
            for key in &team.keys {
                teams.insert(sha256(key.as_bytes()), i);
            }
            for digest in &team.key_sha256 {
                if let Some(digest) = parse_digest(&digest.to_ascii_lowercase()) {
                    teams.insert(digest, i);
                }
            }
        }
        let anonymous = config
            .auth
            .anonymous_team
            .as_ref()
            .and_then(|name| config.teams.iter().position(|t| &t.name == name));
        Self { teams, anonymous }
    }

    /// The team index of the request with `headers`.
    pub fn team(&self, headers: &HeaderMap) -> Result<usize, AuthError> {
        match presented_key(headers) {
            Presented::Key(key) => self
                .teams
                .get(&sha256(key.as_bytes()))
                .copied()
                .ok_or(AuthError::Unknown),
            Presented::Malformed => Err(AuthError::Unknown),
            Presented::Nothing => self.anonymous.ok_or(AuthError::Missing),
        }
    }
}

/// The SHA-256 of the key the request with `headers` presents, if it presents one: an identity
/// for the key that does not reveal it.
pub fn key_digest(headers: &HeaderMap) -> Option<[u8; 32]> {
    match presented_key(headers) {
        Presented::Key(key) => Some(sha256(key.as_bytes())),
        _ => None,
    }
}

/// The credentials a request carries.
enum Presented<'a> {
    Key(&'a str),
    /// Credentials that are not a key we could look up (another scheme, bad bytes).
    Malformed,
    Nothing,
}

fn presented_key(headers: &HeaderMap) -> Presented<'_> {
    let found = match (headers.get(header::AUTHORIZATION), headers.get("x-api-key")) {
        (Some(value), _) => value.to_str().ok().and_then(bearer_key),
        (None, Some(value)) => value.to_str().ok().map(str::trim).filter(|k| !k.is_empty()),
        (None, None) => return Presented::Nothing,
    };
    found.map_or(Presented::Malformed, Presented::Key)
}

/// The key of an `Authorization: Bearer KEY` value.
fn bearer_key(value: &str) -> Option<&str> {
    let (scheme, key) = value.trim().split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use axum::http::HeaderValue;

    use super::*;
    use crate::config::hex;

    fn config(anonymous: bool) -> Config {
        let digest = hex(&sha256(b"sk-team-b-secret"));
        let text = format!(
            r#"
            listen = "127.0.0.1:0"
            {}
            [[policies]]
            name = "p"
            path = "p.wasm"
            [[teams]]
            name = "a"
            policy = "p"
            fallback = ["m"]
            keys = ["sk-team-a-secret"]
            [[teams]]
            name = "b"
            policy = "p"
            fallback = ["m"]
            key_sha256 = ["{}"]
            [[providers]]
            name = "echo"
            kind = "echo"
            [[models]]
            id = "m"
            provider = "echo"
            context_window = 1000
            "#,
            if anonymous {
                "[auth]\nanonymous_team = \"b\""
            } else {
                ""
            },
            digest.to_uppercase()
        );
        Config::parse(&text, Path::new("t.toml")).unwrap()
    }

    fn with(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn keys_and_digests_find_their_team() {
        let keys = Keys::from_config(&config(false));
        assert_eq!(
            keys.team(&with("authorization", "Bearer sk-team-a-secret")),
            Ok(0)
        );
        assert_eq!(
            keys.team(&with("authorization", "bearer  sk-team-b-secret ")),
            Ok(1)
        );
        assert_eq!(keys.team(&with("x-api-key", "sk-team-b-secret")), Ok(1));
        assert_eq!(
            keys.team(&with("authorization", "Bearer sk-nobody")),
            Err(AuthError::Unknown)
        );
        assert_eq!(
            keys.team(&with("authorization", "Basic c2stdGVhbS1h")),
            Err(AuthError::Unknown)
        );
        assert_eq!(keys.team(&HeaderMap::new()), Err(AuthError::Missing));
    }

    #[test]
    fn only_a_missing_key_may_be_anonymous() {
        let keys = Keys::from_config(&config(true));
        assert_eq!(keys.team(&HeaderMap::new()), Ok(1));
        assert_eq!(
            keys.team(&with("x-api-key", "sk-wrong-key")),
            Err(AuthError::Unknown)
        );
        assert_eq!(
            keys.team(&with("authorization", "Basic c2stdGVhbS1h")),
            Err(AuthError::Unknown),
            "credentials of another kind are not a missing key"
        );
    }

    #[test]
    fn errors_have_the_openai_shape_and_401() {
        let e = ApiError::from(AuthError::Unknown);
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert_eq!(e.code, Some("invalid_api_key"));
    }
}
