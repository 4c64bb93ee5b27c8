//! Pipeline probe (replaced by the OpenAI plugin).
use xjp_plugin_sdk::*;
pub struct P;
pub struct S;
impl StreamParse for S {
    fn push(&mut self, _c: &[u8]) -> PluginResult<()> { Ok(()) }
    fn finish(&mut self) -> PluginResult<StreamOutcome> { Ok(StreamOutcome { usage: None, complete: false, error: None, output_text_bytes: 0 }) }
}
impl Provider for P {
    type Stream = S;
    fn info() -> PluginInfo { PluginInfo { name: "openai".into(), version: "0".into(), formats: vec![ApiFormat::OpenaiChat] } }
    fn extract_response(_f: ApiFormat, _s: u16, b: &[u8]) -> PluginResult<Option<Usage>> { let v = json::parse(b)?; let mut u = empty_usage(); u.output_tokens = json::u64_or_zero(&v, &["usage","completion_tokens"]); Ok(Some(u)) }
    fn estimate(_f: ApiFormat, r: &[u8], l: ModelLimits) -> PluginResult<Usage> { estimate::upper_bound(r, &[&["max_tokens"]], &l) }
    fn new_stream(_f: ApiFormat) -> S { S }
}
export_provider!(P);
