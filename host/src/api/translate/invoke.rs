//! Embeddings through AWS Bedrock's InvokeModel: an OpenAI embeddings request as the body of
//! Amazon Titan Text Embeddings (one text a call) or Cohere Embed (a list of texts), and their
//! answers as OpenAI's embeddings `list`, floats or base64 as the client asked.
//!
//! What the model cannot take is refused with a 400 naming the field: token ids, more than one
//! input for Titan, more than 96 for Cohere, `dimensions` for Cohere and Titan V1. Usage is
//! Bedrock's input token count, or the host's estimate when Bedrock reports none. Pure functions over bytes and `serde_json`
//! values; nothing does I/O.

use base64::Engine;
use serde_json::{Map, Value, json};

use super::fields::{invalid, parse_object};
use crate::api::ApiError;

/// The most texts Cohere Embed takes in one call.
pub const COHERE_MAX_TEXTS: usize = 96;

/// The embedding models InvokeModel serves here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddingFamily {
    /// Amazon Titan Text Embeddings V2 and later (`amazon.titan-embed-text-v2*`): sized and
    /// normalised as asked.
    Titan,
    /// Amazon Titan Text Embeddings V1 (`amazon.titan-embed-text-v1`), which takes the text
    /// alone.
    TitanV1,
    /// Cohere Embed (`cohere.embed-*`).
    Cohere,
}

impl EmbeddingFamily {
    /// The family of a Bedrock model id, inference profile id or ARN.
    pub fn of(model: &str) -> Option<Self> {
        if model.contains("amazon.titan-embed-text-v1") {
            Some(Self::TitanV1)
        } else if model.contains("amazon.titan-embed-text") {
            Some(Self::Titan)
        } else if model.contains("cohere.embed") {
            Some(Self::Cohere)
        } else {
            None
        }
    }
}

/// The texts of `input`: a string or a list of strings.
fn texts(input: Option<&Value>) -> Result<Vec<&str>, ApiError> {
    let refused = || {
        invalid(
            "input",
            "must be text (a string or strings) for a Bedrock embedding model, not token ids",
        )
    };
    match input {
        Some(Value::String(text)) => Ok(vec![text]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().ok_or_else(refused))
            .collect(),
        _ => Err(refused()),
    }
}

/// An OpenAI embeddings body as an InvokeModel body of `family`.
pub fn embeddings_to_invoke(body: &[u8], family: EmbeddingFamily) -> Result<Vec<u8>, ApiError> {
    let request = parse_object(body)?;
    let texts = texts(request.get("input"))?;
    let dimensions = request.get("dimensions").filter(|d| !d.is_null());
    let mut out = Map::new();
    match family {
        EmbeddingFamily::Titan | EmbeddingFamily::TitanV1 => {
            let [text] = texts[..] else {
                return Err(invalid(
                    "input",
                    "must be one text for an Amazon Titan embedding model",
                ));
            };
            out.insert("inputText".into(), text.into());
            if family == EmbeddingFamily::TitanV1 {
                if dimensions.is_some() {
                    return Err(invalid(
                        "dimensions",
                        "cannot be sent to Amazon Titan Text Embeddings V1",
                    ));
                }
            } else {
                out.insert("normalize".into(), true.into());
                if let Some(dimensions) = dimensions {
                    out.insert("dimensions".into(), dimensions.clone());
                }
            }
        }
        EmbeddingFamily::Cohere => {
            if texts.len() > COHERE_MAX_TEXTS {
                return Err(invalid(
                    "input",
                    &format!(
                        "must be at most {COHERE_MAX_TEXTS} texts for a Cohere embedding model"
                    ),
                ));
            }
            if dimensions.is_some() {
                return Err(invalid(
                    "dimensions",
                    "cannot be sent to a Cohere embedding model",
                ));
            }
            out.insert("texts".into(), json!(texts));
            out.insert("input_type".into(), "search_document".into());
            out.insert("embedding_types".into(), json!(["float"]));
        }
    }
    Ok(super::to_bytes(&Value::Object(out)))
}

/// An InvokeModel answer of `family` as OpenAI's embeddings list from `model`; `base64` when the
/// client asked for that encoding. `counted` is the input token count Bedrock's
/// `x-amzn-bedrock-input-token-count` header reported, else the answer's own (Titan's), else
/// `estimated`.
pub fn invoke_embeddings_answer(
    body: &[u8],
    family: EmbeddingFamily,
    model: &str,
    base64: bool,
    (counted, estimated): (Option<u64>, u64),
) -> Result<Vec<u8>, String> {
    let answer: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the embeddings answer is not JSON: {e}"))?;
    let (vectors, tokens): (Vec<&Value>, u64) = match family {
        EmbeddingFamily::Titan | EmbeddingFamily::TitanV1 => (
            vec![
                answer
                    .get("embedding")
                    .ok_or("a Titan answer has no `embedding`")?,
            ],
            counted
                .or(answer["inputTextTokenCount"].as_u64())
                .unwrap_or(estimated),
        ),
        EmbeddingFamily::Cohere => {
            let embeddings = answer
                .get("embeddings")
                .ok_or("a Cohere answer has no `embeddings`")?;
            let list = embeddings.get("float").unwrap_or(embeddings);
            let list = list
                .as_array()
                .ok_or("a Cohere answer's `embeddings` is not a list")?;
            (list.iter().collect(), counted.unwrap_or(estimated))
        }
    };
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding = if base64 {
                encode(vector)?
            } else {
                vector.clone()
            };
            Ok(json!({"object": "embedding", "index": index, "embedding": embedding}))
        })
        .collect::<Result<Vec<Value>, String>>()?;
    Ok(super::to_bytes(&json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })))
}

/// A vector of numbers as OpenAI's base64: little-endian 32-bit floats.
fn encode(vector: &Value) -> Result<Value, String> {
    let numbers = vector.as_array().ok_or("an embedding is not a list")?;
    let mut bytes = Vec::with_capacity(numbers.len() * 4);
    for number in numbers {
        let x = number.as_f64().ok_or("an embedding holds a non-number")? as f32;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    Ok(base64::engine::general_purpose::STANDARD
        .encode(bytes)
        .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invoke(body: Value, family: EmbeddingFamily) -> Result<Value, ApiError> {
        embeddings_to_invoke(body.to_string().as_bytes(), family)
            .map(|b| serde_json::from_slice(&b).expect("JSON"))
    }

    #[test]
    fn families_are_known_by_their_ids() {
        assert_eq!(
            EmbeddingFamily::of("amazon.titan-embed-text-v2:0"),
            Some(EmbeddingFamily::Titan)
        );
        assert_eq!(
            EmbeddingFamily::of("us.cohere.embed-english-v3"),
            Some(EmbeddingFamily::Cohere)
        );
        assert_eq!(EmbeddingFamily::of("amazon.nova-lite-v1:0"), None);
    }

    #[test]
    fn requests_take_each_models_shape() {
        let titan = invoke(
            json!({"model": "m", "input": "hello", "dimensions": 256}),
            EmbeddingFamily::Titan,
        )
        .expect("translates");
        assert_eq!(
            titan,
            json!({"inputText": "hello", "normalize": true, "dimensions": 256})
        );
        let cohere = invoke(
            json!({"model": "m", "input": ["a", "b"], "user": "u"}),
            EmbeddingFamily::Cohere,
        )
        .expect("translates");
        assert_eq!(
            cohere,
            json!({"texts": ["a", "b"], "input_type": "search_document", "embedding_types": ["float"]})
        );
        let two =
            invoke(json!({"input": ["a", "b"]}), EmbeddingFamily::Titan).expect_err("refused");
        assert_eq!(two.param.as_deref(), Some("input"));
        let tokens =
            invoke(json!({"input": [1, 2]}), EmbeddingFamily::Cohere).expect_err("refused");
        assert_eq!(tokens.param.as_deref(), Some("input"));
        let sized = invoke(
            json!({"input": "a", "dimensions": 8}),
            EmbeddingFamily::Cohere,
        )
        .expect_err("refused");
        assert_eq!(sized.param.as_deref(), Some("dimensions"));
    }

    #[test]
    fn answers_become_openai_lists() {
        let titan = br#"{"embedding":[0.5,-0.25],"inputTextTokenCount":3}"#;
        let out =
            invoke_embeddings_answer(titan, EmbeddingFamily::Titan, "titan", false, (None, 9))
                .expect("answer");
        let out: Value = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(
            out,
            json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -0.25]}],
                "model": "titan", "usage": {"prompt_tokens": 3, "total_tokens": 3}})
        );
        let cohere = br#"{"id":"x","response_type":"embeddings_by_type","embeddings":{"float":[[1.0],[0.5]]},"texts":["a","b"]}"#;
        let out = invoke_embeddings_answer(
            cohere,
            EmbeddingFamily::Cohere,
            "cohere",
            true,
            (Some(2), 7),
        )
        .expect("answer");
        let out: Value = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(out["data"][1]["embedding"], "AAAAPw==");
        assert_eq!(out["usage"]["prompt_tokens"], 2);
    }
}
