//! Token usage read from answers, and what it cost at the catalog's prices.
//!
//! An OpenAI-format answer reports `usage.prompt_tokens` and `usage.completion_tokens`; only that
//! object is read from the body (everything else is skipped unparsed). Cost is usage times the
//! model's price per million tokens, in US dollars. This module reads the bytes it is given.

use serde::Deserialize;

/// Tokens one answer used; deserialises from OpenAI's `usage` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct Usage {
    #[serde(rename = "prompt_tokens", default)]
    pub input_tokens: u64,
    #[serde(rename = "completion_tokens", default)]
    pub output_tokens: u64,
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

    /// The usage an OpenAI-format `chat.completion` body reports, if it reports one.
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
    fn answers_without_usage_have_none() {
        assert_eq!(Usage::from_completion(br#"{"choices": []}"#), None);
        assert_eq!(Usage::from_completion(b"not json"), None);
        assert_eq!(Usage::from_completion(br#"{"usage": null}"#), None);
    }
}
