//! The mock's own error responses, each in the JSON shape of the provider addressed.

use bytes::Bytes;
use serde_json::json;

use crate::routes::Api;

/// An error the mock itself answers (no scenario, bad request, no route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MockFailure {
    /// No scenario for the model (and no wildcard one); `resource` is what the error names.
    UnknownModel { model: String, resource: String },
    /// The request body is not what the API expects.
    BadRequest(String),
    /// The scenario itself is broken (invalid status or header).
    BrokenScenario(String),
}

impl MockFailure {
    /// The HTTP status.
    pub(crate) fn status(&self) -> u16 {
        match self {
            Self::UnknownModel { .. } => 404,
            Self::BadRequest(_) => 400,
            Self::BrokenScenario(_) => 500,
        }
    }

    /// The message, as the provider would word it where that matters.
    fn message(&self, api: Api) -> String {
        match (self, api) {
            (Self::UnknownModel { model, .. }, Api::OpenAi) => {
                format!("The model `{model}` does not exist or you do not have access to it.")
            }
            (Self::UnknownModel { model, .. }, Api::OpenRouter) => format!("{model} is not a valid model ID"),
            (Self::UnknownModel { model, .. }, Api::Anthropic) => format!("model: {model}"),
            (Self::UnknownModel { resource, .. }, Api::Gemini) => {
                format!("{resource} is not found for API version v1beta, or is not supported for generateContent.")
            }
            (Self::UnknownModel { resource, .. }, Api::Vertex) => {
                format!("Publisher Model `{resource}` was not found or your project does not have access to it.")
            }
            (Self::BadRequest(m) | Self::BrokenScenario(m), _) => format!("mock upstream: {m}"),
        }
    }

    /// The JSON body in `api`'s error shape.
    pub(crate) fn body(&self, api: Api) -> Bytes {
        let status = self.status();
        let message = self.message(api);
        let value = match api {
            Api::OpenAi => {
                let (kind, code) = match self {
                    Self::UnknownModel { .. } => ("invalid_request_error", json!("model_not_found")),
                    Self::BadRequest(_) => ("invalid_request_error", json!(null)),
                    Self::BrokenScenario(_) => ("server_error", json!(null)),
                };
                json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
            }
            Api::OpenRouter => json!({"error": {"message": message, "code": status}}),
            Api::Anthropic => {
                let kind = match self {
                    Self::UnknownModel { .. } => "not_found_error",
                    Self::BadRequest(_) => "invalid_request_error",
                    Self::BrokenScenario(_) => "api_error",
                };
                json!({"type": "error", "error": {"type": kind, "message": message}})
            }
            Api::Gemini | Api::Vertex => {
                let grpc = match self {
                    Self::UnknownModel { .. } => "NOT_FOUND",
                    Self::BadRequest(_) => "INVALID_ARGUMENT",
                    Self::BrokenScenario(_) => "INTERNAL",
                };
                json!({"error": {"code": status, "message": message, "status": grpc}})
            }
        };
        Bytes::from(value.to_string())
    }
}

/// A body in no provider's shape, for requests no provider route accepted.
pub(crate) fn mock_error(status: u16, message: &str) -> Bytes {
    let message = format!("mock upstream: {message}");
    Bytes::from(json!({"error": {"message": message, "type": "mock_error", "code": status}}).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(b: Bytes) -> serde_json::Value {
        serde_json::from_slice(&b).unwrap()
    }

    #[test]
    fn unknown_model_shapes_name_the_model() {
        let f = MockFailure::UnknownModel { model: "m-1".into(), resource: "models/m-1".into() };
        assert_eq!(f.status(), 404);
        let openai = parse(f.body(Api::OpenAi));
        assert_eq!(openai["error"]["code"], "model_not_found");
        assert!(openai["error"]["message"].as_str().unwrap().contains("`m-1`"));
        let anthropic = parse(f.body(Api::Anthropic));
        assert_eq!(
            (anthropic["type"].as_str(), anthropic["error"]["type"].as_str()),
            (Some("error"), Some("not_found_error"))
        );
        let gemini = parse(f.body(Api::Gemini));
        assert_eq!(
            (gemini["error"]["code"].as_u64(), gemini["error"]["status"].as_str()),
            (Some(404), Some("NOT_FOUND"))
        );
        assert!(gemini["error"]["message"].as_str().unwrap().starts_with("models/m-1 "));
        assert_eq!(parse(f.body(Api::OpenRouter))["error"]["code"], 404);
    }
}
