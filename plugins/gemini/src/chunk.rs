//! What one Gemini response object (a whole response or a stream chunk) says.
//!
//! [`Response`] is the typed read of one object: the fields billing uses, with
//! everything else (the candidates' content, safety ratings, ...) parsed but not kept.

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;
use xjp_plugin_sdk::StreamError;
use xjp_plugin_sdk::json::lenient::{
    Count, Fields, Fold, NonNullValue, Obj, Seq, Skip, Str, StrLen, TextPart, skip, value,
};
use xjp_plugin_sdk::json::{Value, number_text, str_at};

/// The token counts of `usageMetadata`, in the order [`Response::counts`] holds them.
pub const COUNTS: [&str; 5] = [
    "promptTokenCount",
    "cachedContentTokenCount",
    "candidatesTokenCount",
    "thoughtsTokenCount",
    "toolUsePromptTokenCount",
];

/// One response object as billing reads it.
#[derive(Debug, Default)]
pub struct Response<'a> {
    /// The top-level `error`, unless absent or null.
    error: NonNullValue,
    /// The top-level `type` (`"error"` marks an error body too).
    kind: Str<'a>,
    /// `modelVersion`.
    pub model_version: Str<'a>,
    /// `candidates`, folded.
    candidates: Candidates,
    /// `promptFeedback.blockReason` is a string.
    blocked: bool,
    /// `usageMetadata` counts (see [`COUNTS`]); `None` when it is absent or not an object.
    pub counts: Option<[Option<u64>; 5]>,
}

impl<'de> Fields<'de> for Response<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "error" => self.error = value(map)?,
            "type" => self.kind = value(map)?,
            "modelVersion" => self.model_version = value(map)?,
            "candidates" => self.candidates = value::<Seq<Candidates>, _>(map)?.0.unwrap_or_default(),
            "promptFeedback" => self.blocked = value::<Obj<PromptFeedback>, _>(map)?.0.is_some_and(|p| p.blocked),
            "usageMetadata" => self.counts = value::<Obj<UsageMetadata>, _>(map)?.0.map(|m| m.0),
            _ => skip(map)?,
        }
        Ok(())
    }
}

impl Response<'_> {
    /// Whether this is an error object (`xjp_plugin_sdk::json::is_error_body`).
    pub fn is_error(&self) -> bool {
        self.error.0.is_some() || self.kind.as_deref() == Some("error")
    }

    /// The error an error object (`{"error": {"code", "message", "status"}}`) describes.
    pub fn error(&self) -> Option<StreamError> {
        if !self.is_error() {
            return None;
        }
        let error = self.error.0.as_ref().unwrap_or(&Value::Null);
        let code = match (str_at(error, &["status"]), error.get("code")) {
            (Some(status), _) => Some(status.to_owned()),
            (None, Some(Value::Number(n))) => Some(number_text(n)),
            _ => None,
        };
        let message = str_at(error, &["message"]).or_else(|| error.as_str()).unwrap_or("upstream reported an error");
        Some(StreamError { code, message: message.to_owned() })
    }

    /// True when the response ends the generation: a candidate has a `finishReason`, or
    /// the prompt was blocked (`promptFeedback.blockReason`), after which nothing follows.
    pub fn is_final(&self) -> bool {
        self.candidates.finished || self.blocked
    }

    /// Bytes of generated text (`candidates[].content.parts[].text`, thought summaries too).
    pub fn text_bytes(&self) -> u64 {
        self.candidates.text_bytes
    }

    /// Whether a candidate was grounded with Google Search (it lists the queries it ran).
    pub fn searched(&self) -> bool {
        self.candidates.searched
    }
}

/// `candidates` folded over its elements (those that are not objects count for nothing).
#[derive(Debug, Default)]
struct Candidates {
    searched: bool,
    finished: bool,
    text_bytes: u64,
}

impl<'de> Fold<'de> for Candidates {
    type Item = Obj<Candidate>;

    fn add(&mut self, candidate: Obj<Candidate>) {
        let Some(c) = candidate.0 else { return };
        self.searched |= c.searched;
        self.finished |= c.finished;
        self.text_bytes = self.text_bytes.saturating_add(c.text_bytes);
    }
}

/// One candidate.
#[derive(Default)]
struct Candidate {
    /// `groundingMetadata.webSearchQueries` is a non-empty array.
    searched: bool,
    /// `finishReason` is a string.
    finished: bool,
    /// Summed `content.parts[].text` lengths.
    text_bytes: u64,
}

impl<'de> Fields<'de> for Candidate {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "groundingMetadata" => {
                self.searched = value::<Obj<Grounding>, _>(map)?.0.is_some_and(|g| g.searched);
            }
            "finishReason" => self.finished = value::<StrLen, _>(map)?.0.is_some(),
            "content" => self.text_bytes = value::<Obj<Content>, _>(map)?.0.map_or(0, |c| c.text_bytes),
            _ => skip(map)?,
        }
        Ok(())
    }
}

/// `groundingMetadata`: whether it lists web search queries.
#[derive(Default)]
struct Grounding {
    searched: bool,
}

impl<'de> Fields<'de> for Grounding {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "webSearchQueries" => self.searched = value::<Seq<Len>, _>(map)?.0.is_some_and(|n| n.0 > 0),
            _ => skip(map)?,
        }
        Ok(())
    }
}

/// The number of elements of an array.
#[derive(Default)]
struct Len(usize);

impl<'de> Fold<'de> for Len {
    type Item = Skip;

    fn add(&mut self, _: Skip) {
        self.0 += 1;
    }
}

/// `content`: the text lengths of its `parts`.
#[derive(Default)]
struct Content {
    text_bytes: u64,
}

impl<'de> Fields<'de> for Content {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "parts" => self.text_bytes = value::<Seq<PartsText>, _>(map)?.0.map_or(0, |p| p.0),
            _ => skip(map)?,
        }
        Ok(())
    }
}

/// Summed `text` lengths over `parts`.
#[derive(Default)]
struct PartsText(u64);

impl<'de> Fold<'de> for PartsText {
    type Item = Obj<TextPart>;

    fn add(&mut self, part: Obj<TextPart>) {
        let text = part.0.and_then(|p| p.text.0).unwrap_or(0);
        self.0 = self.0.saturating_add(text);
    }
}

/// `promptFeedback`: whether `blockReason` is a string.
#[derive(Default)]
struct PromptFeedback {
    blocked: bool,
}

impl<'de> Fields<'de> for PromptFeedback {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "blockReason" => self.blocked = value::<StrLen, _>(map)?.0.is_some(),
            _ => skip(map)?,
        }
        Ok(())
    }
}

/// `usageMetadata`: the counts of [`COUNTS`].
#[derive(Default)]
struct UsageMetadata([Option<u64>; 5]);

impl<'de> Fields<'de> for UsageMetadata {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match COUNTS.iter().position(|c| *c == key) {
            Some(i) => self.0[i] = value::<Count, _>(map)?.0,
            None => skip(map)?,
        }
        Ok(())
    }
}

/// A body or stream payload: one response object, or an array of them (Vertex wraps
/// some bodies in an array, and a whole buffered stream is one). Anything else reads
/// as one value that is not an object.
#[derive(Debug)]
pub enum Responses<'a> {
    /// A single value (`Obj(None)` when it is not an object).
    One(Obj<Response<'a>>),
    /// The elements of an array, in order.
    Many(Vec<Obj<Response<'a>>>),
}

impl<'a> Responses<'a> {
    /// The response objects, in order (values that are not objects are left out).
    pub fn iter(&self) -> impl Iterator<Item = &Response<'a>> {
        let items = match self {
            Responses::One(one) => std::slice::from_ref(one),
            Responses::Many(many) => many.as_slice(),
        };
        items.iter().filter_map(|item| item.0.as_ref())
    }
}

impl<'de> Deserialize<'de> for Responses<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Responses<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Responses::One(Obj(None)))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Responses::One(Obj(None)))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Responses::One(Obj(None)))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Responses::One(Obj(None)))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Responses::One(Obj(None)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Responses::One(Obj(None)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Responses::Many(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Obj::deserialize(de::value::MapAccessDeserializer::new(map)).map(Responses::One)
            }
        }
        d.deserialize_any(V)
    }
}

/// Reads one response object from a [`Value`] (any other value reads as an empty one).
fn response(value: &Value) -> Response<'_> {
    Obj::<Response>::deserialize(value).ok().and_then(|r| r.0).unwrap_or_default()
}

/// The error an error object (`{"error": {"code", "message", "status"}}`) describes.
pub fn error_of(response_value: &Value) -> Option<StreamError> {
    response(response_value).error()
}

/// True when the response ends the generation: a candidate has a `finishReason`, or
/// the prompt was blocked (`promptFeedback.blockReason`), after which nothing follows.
pub fn is_final(response_value: &Value) -> bool {
    response(response_value).is_final()
}

/// Bytes of generated text (`candidates[].content.parts[].text`, thought summaries too).
pub fn text_bytes(response_value: &Value) -> u64 {
    response(response_value).text_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_errors_with_status_or_numeric_code() {
        let e =
            error_of(&json!({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}))
                .unwrap();
        assert_eq!((e.code.as_deref(), e.message.as_str()), (Some("UNAVAILABLE"), "The model is overloaded."));
        let e = error_of(&json!({"error": {"code": 500}})).unwrap();
        assert_eq!((e.code.as_deref(), e.message.as_str()), (Some("500"), "upstream reported an error"));
        assert_eq!(error_of(&json!({"candidates": []})), None);
        assert_eq!(error_of(&json!({"error": null})), None);
    }

    #[test]
    fn final_on_finish_reason_or_blocked_prompt() {
        assert!(is_final(&json!({"candidates": [{"index": 0}, {"finishReason": "STOP"}]})));
        assert!(is_final(&json!({"promptFeedback": {"blockReason": "SAFETY"}})));
        assert!(!is_final(&json!({"candidates": [{"finishReason": null}]})));
        assert!(!is_final(&json!({"candidates": "nope"})));
    }

    #[test]
    fn counts_text_of_every_part_and_candidate() {
        let chunk = json!({"candidates": [
            {"content": {"parts": [{"text": "Thinking…", "thought": true}, {"text": "ab"}, {"functionCall": {"name": "f"}}]}},
            {"content": {"parts": [{"text": "c"}]}},
            {"content": {"role": "model"}}
        ]});
        assert_eq!(text_bytes(&chunk), 11 + 2 + 1);
        assert_eq!(text_bytes(&json!({})), 0);
    }
}
