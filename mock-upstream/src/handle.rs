//! One request: record it, route it, pick the scenario, answer from it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde_json::json;

use crate::cut::CutSwitch;
use crate::error_body::{MockFailure, mock_error};
use crate::record::{RecordedRequest, Recorder};
use crate::replay::{ReplayPlan, ResponseBody, full};
use crate::routes::{Api, NoRoute, Route, route};
use crate::scenario::{Scenario, ScenarioTable};
use crate::shutdown::ShutdownSignal;
use crate::stream::StreamFormat;

/// Largest request body the mock reads.
const MAX_REQUEST_BODY: usize = 32 * 1024 * 1024;

/// State every connection of one mock shares.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Scenarios by model.
    pub(crate) scenarios: ScenarioTable,
    /// Requests received.
    pub(crate) recorder: Recorder,
    /// Ignore every configured delay.
    pub(crate) zero_delay: bool,
    /// Fires when the mock shuts down.
    pub(crate) shutdown: ShutdownSignal,
}

impl Shared {
    fn delay(&self, configured: Duration) -> Duration {
        if self.zero_delay { Duration::ZERO } else { configured }
    }
}

/// What a routed request selected.
struct Selection {
    api: Api,
    scenario: Arc<Scenario>,
    stream: bool,
    format: StreamFormat,
}

/// Answers one request; never fails (errors become responses).
pub(crate) async fn handle(
    shared: Arc<Shared>,
    cut: Arc<CutSwitch>,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            tracing::debug!(error = %e, "request body not read");
            return Ok(plain(400, mock_error(400, &format!("request body not read: {e}"))));
        }
    };
    shared.recorder.push(RecordedRequest::new(&parts, body.clone()));
    let routed = match route(&parts.method, parts.uri.path(), parts.uri.query()) {
        Ok(routed) => routed,
        Err(no) => {
            let (status, what) = if no == NoRoute::NotFound { (404, "no route") } else { (405, "method not allowed") };
            let message = format!("{what} for {} {}", parts.method, parts.uri.path());
            return Ok(plain(status, mock_error(status, &message)));
        }
    };
    let selection = match select(&shared, routed, &body) {
        Ok(selection) => selection,
        Err((status, body)) => return Ok(plain(status, body)),
    };
    Ok(answer(&shared, cut, selection).await)
}

/// Picks the scenario for a routed request, or the status and JSON body to answer instead.
fn select(shared: &Shared, routed: Route, body: &Bytes) -> Result<Selection, (u16, Bytes)> {
    match routed {
        Route::Models(api, key) => {
            let scenario = shared.scenarios.get(key).unwrap_or_else(|| Arc::new(models_list(api, shared)));
            Ok(Selection { api, scenario, stream: false, format: StreamFormat::Sse })
        }
        Route::BodyModel(api) => {
            let (model, stream) = body_model(body).map_err(|m| {
                let f = MockFailure::BadRequest(m);
                (f.status(), f.body(api))
            })?;
            match shared.scenarios.lookup(&model) {
                Some(scenario) => Ok(Selection { api, scenario, stream, format: StreamFormat::Sse }),
                None => {
                    let f = MockFailure::UnknownModel { resource: model.clone(), model };
                    Err((f.status(), f.body(api)))
                }
            }
        }
        Route::PathModel(api, target) => match shared.scenarios.lookup(&target.model) {
            Some(scenario) => Ok(Selection { api, scenario, stream: target.stream, format: target.format }),
            None => {
                let f = MockFailure::UnknownModel { model: target.model, resource: target.resource };
                let body = f.body(api);
                // Vertex wraps errors of JSON-array streams in an array.
                let vertex_array = api == Api::Vertex && target.stream && target.format == StreamFormat::JsonArray;
                let body = if vertex_array { [&b"["[..], &body, b"]"].concat().into() } else { body };
                Err((f.status(), body))
            }
        },
    }
}

/// `model` and `stream` from an OpenAI / Anthropic / OpenRouter JSON body.
fn body_model(body: &[u8]) -> Result<(String, bool), String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("request body is not JSON: {e}"))?;
    let model = value.get("model").and_then(|m| m.as_str()).ok_or("request body has no string `model`")?;
    Ok((model.to_owned(), value.get("stream") == Some(&json!(true))))
}

/// A models list generated from the registered scenarios.
fn models_list(api: Api, shared: &Shared) -> Scenario {
    let models = shared.scenarios.models();
    let value = if api == Api::OpenRouter {
        json!({"data": models.iter().map(|id| json!({"id": id, "name": id})).collect::<Vec<_>>()})
    } else {
        let data: Vec<_> =
            models.iter().map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "mock"})).collect();
        json!({"object": "list", "data": data})
    };
    Scenario::json(200, value.to_string())
}

/// The response for a selected scenario.
async fn answer(shared: &Shared, cut: Arc<CutSwitch>, selection: Selection) -> Response<ResponseBody> {
    let Selection { api, scenario, stream, format } = selection;
    let mut shutdown = shared.shutdown.clone();
    if !shutdown.sleep(shared.delay(scenario.first_byte_delay)).await {
        return plain(503, Bytes::new());
    }
    let recorded = scenario.stream_for(format);
    let use_stream = recorded.is_some() && (stream || scenario.body.is_none());
    let (content_type, body) = match (use_stream, recorded, &scenario.body) {
        (true, Some(recorded), _) => {
            let plan = ReplayPlan {
                chunks: recorded.chunks().to_vec(),
                interval: shared.delay(scenario.chunk_interval),
                cut_after: scenario.cut_after_chunks,
                stall_after: scenario.stall_after_chunks,
                cut,
                shutdown,
            };
            (Some(recorded.format().content_type()), plan.into_body())
        }
        (_, _, Some(body)) => (Some(scenario.body_content_type.as_str()), full(body.clone())),
        _ => (None, full(Bytes::new())),
    };
    build(&scenario, content_type, body).unwrap_or_else(|reason| failure(api, &MockFailure::BrokenScenario(reason)))
}

/// The response head of a scenario around `body`.
fn build(
    scenario: &Scenario,
    content_type: Option<&str>,
    body: ResponseBody,
) -> Result<Response<ResponseBody>, String> {
    let status = StatusCode::from_u16(scenario.status).map_err(|_| format!("invalid status {}", scenario.status))?;
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Some(content_type) = content_type {
        headers.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).map_err(|e| e.to_string())?);
    }
    let mut replaced_type = false;
    for (name, value) in &scenario.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("invalid header name {name:?}"))?;
        let value = HeaderValue::from_str(value).map_err(|_| format!("invalid value of header {name}"))?;
        if name == CONTENT_TYPE && !replaced_type {
            headers.remove(CONTENT_TYPE);
            replaced_type = true;
        }
        headers.append(name, value);
    }
    Ok(response)
}

/// A mock failure in `api`'s error shape.
fn failure(api: Api, f: &MockFailure) -> Response<ResponseBody> {
    plain(f.status(), f.body(api))
}

/// A JSON response the mock makes up itself.
fn plain(status: u16, body: Bytes) -> Response<ResponseBody> {
    let empty = body.is_empty();
    let mut response = Response::new(full(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if !empty {
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    response
}
