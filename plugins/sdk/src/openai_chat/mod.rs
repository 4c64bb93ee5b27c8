//! OpenAI Chat Completions (`api-format::openai-chat`): usage, responses, streams, estimates.
//!
//! Everything here is generic over a [`Dialect`], so an OpenAI-compatible upstream that
//! adds fields to `usage` (OpenRouter's `cost` and `cache_write_tokens`) reuses the
//! response reader and the stream state machine and only supplies its own usage reader.

pub mod request;
pub mod response;
pub mod stream;
pub mod upstream_error;
pub mod usage;

pub use request::{estimate, estimate_body};
pub use response::extract_response;
pub use stream::ChatStream;
pub use usage::{UsageObject, usage_from_object, usage_from_value};

use crate::json::lenient::Fields;
use crate::{ApiFormat, PluginResult, Usage};

/// What differs between OpenAI and an OpenAI-compatible upstream.
pub trait Dialect: 'static {
    /// The `usage` object as this dialect reads it (see [`crate::json::lenient`]:
    /// fields that are absent or of the wrong type read as absent).
    type UsageObject: for<'de> Fields<'de>;

    /// Usage buckets from a `usage` object (without `served_model`, which the caller
    /// fills from the body's `model`). `None` when the object carries no token counts.
    fn usage(usage: &Self::UsageObject) -> Option<Usage>;
}

/// Plain OpenAI: the usage reader of [`usage_from_object`].
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenAiDialect;

impl Dialect for OpenAiDialect {
    type UsageObject = UsageObject;

    fn usage(usage: &UsageObject) -> Option<Usage> {
        usage_from_object(usage)
    }
}

/// The API formats these parsers read: `openai-chat`.
pub const FORMATS: &[ApiFormat] = &[ApiFormat::OpenaiChat];

/// `Ok(())` for `openai-chat`, the unsupported-format error for anything else.
pub fn check_format(format: ApiFormat) -> PluginResult<()> {
    crate::check_format(format, FORMATS)
}
