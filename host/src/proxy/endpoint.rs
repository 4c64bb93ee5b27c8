//! Which client API a request came in on, and what that fixes: its error format and the
//! upstream path it maps to.

use crate::plugins::ApiFormat;

/// Which client API a request came in on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/chat/completions`
    OpenAiChat,
    /// `POST /v1/messages`
    AnthropicMessages,
    /// `POST /v1beta/models/{model}:generateContent` or `:streamGenerateContent`
    Gemini { model: String, stream: bool },
}

impl Endpoint {
    /// The API format of the endpoint (and of its errors).
    pub fn format(&self) -> ApiFormat {
        match self {
            Endpoint::OpenAiChat => ApiFormat::OpenaiChat,
            Endpoint::AnthropicMessages => ApiFormat::AnthropicMessages,
            Endpoint::Gemini { .. } => ApiFormat::GeminiGenerate,
        }
    }

    /// Stable label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Endpoint::OpenAiChat => "chat_completions",
            Endpoint::AnthropicMessages => "messages",
            Endpoint::Gemini { .. } => "generate_content",
        }
    }
}
