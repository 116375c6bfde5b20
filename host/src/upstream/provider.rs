//! Providers: where a model's requests go and how they are addressed.
//!
//! Built once from the config. An `openai` provider holds its chat-completions URL and the API key
//! read from the environment variable the config names; the key lives only in a sensitive header
//! value here and is sent only to that provider. An `echo` provider is answered in-process.

use axum::http::HeaderValue;
use reqwest::Url;

use crate::config::{Env, ProviderConfig, ProviderKind};

/// A provider could not be set up from the config.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("provider `{provider}`: environment variable {var} is not set")]
    MissingKey { provider: String, var: String },
    #[error("provider `{provider}`: {message}")]
    Invalid { provider: String, message: String },
}

/// How a provider is reached.
#[derive(Debug)]
pub enum Endpoint {
    /// An OpenAI-compatible HTTP endpoint.
    Openai {
        chat_url: Url,
        authorization: Option<HeaderValue>,
    },
    /// Answered in-process.
    Echo,
}

/// One configured provider.
#[derive(Debug)]
pub struct Provider {
    pub name: String,
    pub endpoint: Endpoint,
}

impl Provider {
    pub fn from_config(config: &ProviderConfig, env: &dyn Env) -> Result<Self, SetupError> {
        let invalid = |message: String| SetupError::Invalid {
            provider: config.name.clone(),
            message,
        };
        let endpoint = match config.kind {
            ProviderKind::Echo => Endpoint::Echo,
            ProviderKind::Openai => {
                let base = config
                    .base_url
                    .as_deref()
                    .ok_or_else(|| invalid("base_url is required".into()))?;
                let chat_url =
                    Url::parse(&format!("{}/chat/completions", base.trim_end_matches('/')))
                        .map_err(|e| invalid(format!("base_url: {e}")))?;
                let authorization = match &config.api_key_env {
                    None => None,
                    Some(var) => {
                        let key = env.var(var).filter(|k| !k.is_empty()).ok_or_else(|| {
                            SetupError::MissingKey {
                                provider: config.name.clone(),
                                var: var.clone(),
                            }
                        })?;
                        let mut value =
                            HeaderValue::try_from(format!("Bearer {key}")).map_err(|_| {
                                invalid(format!("the key in {var} is not a valid header value"))
                            })?;
                        value.set_sensitive(true);
                        Some(value)
                    }
                };
                Endpoint::Openai {
                    chat_url,
                    authorization,
                }
            }
        };
        Ok(Self {
            name: config.name.clone(),
            endpoint,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn openai(key_env: Option<&str>) -> ProviderConfig {
        ProviderConfig {
            name: "up".into(),
            kind: ProviderKind::Openai,
            base_url: Some("http://127.0.0.1:9/v1/".into()),
            api_key_env: key_env.map(str::to_string),
        }
    }

    #[test]
    fn reads_the_key_from_the_named_variable() {
        let env = HashMap::from([("UP_KEY".to_string(), "sk-test".to_string())]);
        let p = Provider::from_config(&openai(Some("UP_KEY")), &env).unwrap();
        let Endpoint::Openai {
            chat_url,
            authorization,
        } = p.endpoint
        else {
            panic!()
        };
        assert_eq!(chat_url.as_str(), "http://127.0.0.1:9/v1/chat/completions");
        let auth = authorization.unwrap();
        assert_eq!(auth, "Bearer sk-test");
        assert!(auth.is_sensitive());
        assert!(
            !format!(
                "{:?}",
                Provider::from_config(&openai(Some("UP_KEY")), &env).unwrap()
            )
            .contains("sk-test")
        );
    }

    #[test]
    fn a_missing_key_names_provider_and_variable() {
        let e = Provider::from_config(&openai(Some("NOPE_KEY")), &HashMap::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "provider `up`: environment variable NOPE_KEY is not set"
        );
        assert!(Provider::from_config(&openai(None), &HashMap::new()).is_ok());
    }
}
