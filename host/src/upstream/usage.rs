//! Token usage read from answers, and what it cost at the catalog's prices.
//!
//! An OpenAI-format answer reports `usage.prompt_tokens` and `usage.completion_tokens`; an
//! Anthropic one `usage.input_tokens` (plus the cache's `cache_creation_input_tokens` and
//! `cache_read_input_tokens`) and `usage.output_tokens`. Only that object is read from the body
//! (everything else is skipped unparsed). Cost is usage times the
//! model's price per million tokens, in US dollars. This module reads the bytes it is given.

use serde::Deserialize;

/// Tokens one answer used; deserialises from OpenAI's or Anthropic's `usage` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(from = "UsageWire")]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// A `usage` object of either API.
#[derive(Deserialize)]
struct UsageWire {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

impl From<UsageWire> for Usage {
    fn from(w: UsageWire) -> Self {
        let anthropic_input = w.input_tokens.unwrap_or(0)
            + w.cache_creation_input_tokens.unwrap_or(0)
            + w.cache_read_input_tokens.unwrap_or(0);
        Self {
            input_tokens: w.prompt_tokens.unwrap_or(anthropic_input),
            output_tokens: w.completion_tokens.or(w.output_tokens).unwrap_or(0),
        }
    }
}

/// A model's prices, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Prices {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

impl Usage {
    /// What this usage costs at `prices`, in US dollars.
    pub fn cost(&self, prices: Prices) -> f64 {
        (self.input_tokens as f64 * prices.input_per_mtok
            + self.output_tokens as f64 * prices.output_per_mtok)
            / 1_000_000.0
    }

    /// The usage an answer of either API (`chat.completion` or `message`) reports, if any.
    pub fn from_completion(body: &[u8]) -> Option<Usage> {
        // Unknown fields are skipped without being parsed into values.
        #[derive(Deserialize)]
        struct Completion {
            #[serde(default)]
            usage: Option<Usage>,
        }
        serde_json::from_slice::<Completion>(body).ok()?.usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_read_and_priced() {
        let body = br#"{"id": "x", "choices": [{"message": {"content": "hi"}}], "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500}}"#;
        let usage = Usage::from_completion(body).unwrap();
        assert_eq!(
            usage,
            Usage {
                input_tokens: 1200,
                output_tokens: 300
            }
        );
        let prices = Prices {
            input_per_mtok: 2.5,
            output_per_mtok: 10.0,
        };
        assert!((usage.cost(prices) - 0.006).abs() < 1e-12);
    }

    #[test]
    fn anthropic_usage_counts_cached_input() {
        let body = br#"{"type":"message","usage":{"input_tokens":100,"cache_creation_input_tokens":20,"cache_read_input_tokens":5,"output_tokens":7}}"#;
        assert_eq!(
            Usage::from_completion(body),
            Some(Usage {
                input_tokens: 125,
                output_tokens: 7
            })
        );
    }

    #[test]
    fn answers_without_usage_have_none() {
        assert_eq!(Usage::from_completion(br#"{"choices": []}"#), None);
        assert_eq!(Usage::from_completion(b"not json"), None);
        assert_eq!(Usage::from_completion(br#"{"usage": null}"#), None);
    }
}
