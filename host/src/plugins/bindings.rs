//! The one place that generates host bindings for the `xjp:billing` WIT world.

wasmtime::component::bindgen!({
    world: "billing-plugin",
    path: "../wit",
    additional_derives: [PartialEq, Eq],
});

pub use exports::xjp::billing::budget::{BudgetRequest, Decision, DenyReason};
pub use exports::xjp::billing::pricing::{Cost, FeeRate, LongContextTier, PriceEntry, PricedUsage, TokenRates};
pub use exports::xjp::billing::types::{ApiFormat, Fee, PluginError, PluginInfo, Usage};
pub use exports::xjp::billing::usage_extract::{ModelLimits, StreamError, StreamOutcome};

impl ApiFormat {
    /// The stable name used in config, CLI flags and JSON (`openai-chat`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ApiFormat::OpenaiChat => "openai-chat",
            ApiFormat::AnthropicMessages => "anthropic-messages",
            ApiFormat::GeminiGenerate => "gemini-generate",
        }
    }

    /// Every format the contract knows.
    pub const ALL: [ApiFormat; 3] = [ApiFormat::OpenaiChat, ApiFormat::AnthropicMessages, ApiFormat::GeminiGenerate];
}

impl std::str::FromStr for ApiFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ApiFormat::ALL.into_iter().find(|f| f.as_str() == s).ok_or_else(|| {
            format!("unknown API format `{s}` (expected openai-chat, anthropic-messages or gemini-generate)")
        })
    }
}

impl std::fmt::Display for ApiFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
