//! Which provider API a request addresses, from its method and path.

use hyper::Method;

use crate::record::query_param;
use crate::scenario::{OPENAI_MODELS_KEY, OPENROUTER_MODELS_KEY};
use crate::stream::StreamFormat;

/// A provider API family; it decides the shape of the mock's own error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    /// OpenAI chat completions.
    OpenAi,
    /// Anthropic messages.
    Anthropic,
    /// Gemini through Google AI Studio (`/v1beta/models/...`).
    Gemini,
    /// Gemini through Vertex AI (`/v1/projects/.../models/...`).
    Vertex,
    /// OpenRouter (OpenAI format under `/api/v1`).
    OpenRouter,
}

/// A generation call whose model and stream flag are in the path (Gemini, Vertex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathModel {
    /// The model id from the path.
    pub(crate) model: String,
    /// The resource name errors mention (`models/x`, `projects/p/locations/l/.../models/x`).
    pub(crate) resource: String,
    /// `:streamGenerateContent`.
    pub(crate) stream: bool,
    /// How a stream is framed: SSE with `alt=sse`, a JSON array otherwise.
    pub(crate) format: StreamFormat,
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// A generation call with `model` and `stream` in its JSON body.
    BodyModel(Api),
    /// A Gemini or Vertex generation call.
    PathModel(Api, PathModel),
    /// A models list, served from the scenario under `key` or generated.
    Models(Api, &'static str),
}

/// Why no route matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoRoute {
    /// No such path.
    NotFound,
    /// The path exists for another method.
    MethodNotAllowed,
}

/// Routes a request.
pub(crate) fn route(method: &Method, path: &str, query: Option<&str>) -> Result<Route, NoRoute> {
    let (route, allowed) = match path {
        "/v1/chat/completions" => (Route::BodyModel(Api::OpenAi), Method::POST),
        "/v1/messages" => (Route::BodyModel(Api::Anthropic), Method::POST),
        "/api/v1/chat/completions" => (Route::BodyModel(Api::OpenRouter), Method::POST),
        "/v1/models" => (Route::Models(Api::OpenAi, OPENAI_MODELS_KEY), Method::GET),
        "/api/v1/models" => (Route::Models(Api::OpenRouter, OPENROUTER_MODELS_KEY), Method::GET),
        _ => {
            let (api, target) = gemini_target(path).ok_or(NoRoute::NotFound)?;
            (Route::PathModel(api, target_with_query(target, query)), Method::POST)
        }
    };
    if *method == allowed { Ok(route) } else { Err(NoRoute::MethodNotAllowed) }
}

fn target_with_query(mut target: PathModel, query: Option<&str>) -> PathModel {
    if query.and_then(|q| query_param(q, "alt")) == Some("sse") {
        target.format = StreamFormat::Sse;
    }
    target
}

/// Parses `/v1beta/models/{m}:{method}` (also `/v1/models/...`) and
/// `/{v1,v1beta1}/projects/{p}/locations/{l}/publishers/{pub}/models/{m}:{method}`.
fn gemini_target(path: &str) -> Option<(Api, PathModel)> {
    let (resource_path, method) = path.rsplit_once(':')?;
    let stream = match method {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => return None,
    };
    let segments: Vec<&str> = resource_path.trim_start_matches('/').split('/').collect();
    let (api, resource, model) = match segments.as_slice() {
        ["v1beta" | "v1", "models", model] => (Api::Gemini, format!("models/{model}"), *model),
        ["v1" | "v1beta1", "projects", _, "locations", _, "publishers", _, "models", model] => {
            let resource = resource_path.trim_start_matches('/').split_once('/')?.1;
            (Api::Vertex, resource.to_owned(), *model)
        }
        _ => return None,
    };
    let model = percent_decode(model)?;
    if model.is_empty() {
        return None;
    }
    Some((api, PathModel { model, resource, stream, format: StreamFormat::JsonArray }))
}

/// Decodes `%XX` escapes; `None` when an escape is malformed or the result is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(path: &str, query: Option<&str>) -> Result<Route, NoRoute> {
        route(&Method::POST, path, query)
    }

    #[test]
    fn body_model_routes() {
        assert_eq!(post("/v1/chat/completions", None), Ok(Route::BodyModel(Api::OpenAi)));
        assert_eq!(post("/v1/messages", None), Ok(Route::BodyModel(Api::Anthropic)));
        assert_eq!(post("/api/v1/chat/completions", None), Ok(Route::BodyModel(Api::OpenRouter)));
        assert_eq!(route(&Method::GET, "/v1/messages", None), Err(NoRoute::MethodNotAllowed));
        assert_eq!(
            route(&Method::GET, "/api/v1/models", None),
            Ok(Route::Models(Api::OpenRouter, OPENROUTER_MODELS_KEY))
        );
        assert_eq!(post("/v1/models", None), Err(NoRoute::MethodNotAllowed));
        assert_eq!(post("/v2/chat", None), Err(NoRoute::NotFound));
    }

    #[test]
    fn gemini_routes() {
        let Ok(Route::PathModel(Api::Gemini, t)) =
            post("/v1beta/models/gemini-2.5-flash:streamGenerateContent", Some("key=k&alt=sse"))
        else {
            panic!("not routed")
        };
        assert_eq!((t.model.as_str(), t.resource.as_str()), ("gemini-2.5-flash", "models/gemini-2.5-flash"));
        assert!(t.stream);
        assert_eq!(t.format, StreamFormat::Sse);
        let Ok(Route::PathModel(Api::Gemini, t)) = post("/v1beta/models/gemini%2D2.5:generateContent", None) else {
            panic!("not routed")
        };
        assert_eq!((t.model.as_str(), t.stream, t.format), ("gemini-2.5", false, StreamFormat::JsonArray));
        assert_eq!(post("/v1beta/models/x:countTokens", None), Err(NoRoute::NotFound));
        assert_eq!(post("/v1beta/models/:generateContent", None), Err(NoRoute::NotFound));
        assert_eq!(post("/v1beta/models/a/b:generateContent", None), Err(NoRoute::NotFound));
    }

    #[test]
    fn vertex_routes() {
        let path =
            "/v1/projects/p1/locations/us-central1/publishers/google/models/gemini-2.5-pro:streamGenerateContent";
        let Ok(Route::PathModel(Api::Vertex, t)) = post(path, None) else { panic!("not routed") };
        assert_eq!(t.model, "gemini-2.5-pro");
        assert_eq!(t.resource, "projects/p1/locations/us-central1/publishers/google/models/gemini-2.5-pro");
        assert_eq!((t.stream, t.format), (true, StreamFormat::JsonArray));
        assert_eq!(post("/v1/projects/p1/publishers/google/models/m:generateContent", None), Err(NoRoute::NotFound));
    }
}
