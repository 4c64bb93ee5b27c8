//! Deliberately broken plugins: `trap` panics, `spin` loops forever, `hog` allocates
//! without bound, each on `extract-response` and on stream `push`. `describe` and
//! `estimate` behave, so the host's self-test passes and the fault shows on a call.

use xjp_plugin_sdk::{
    ApiFormat, ModelLimits, PluginInfo, PluginResult, Provider, StreamOutcome, StreamParse, Usage, estimate,
};

/// The broken provider.
pub struct Misbehave;

/// Its stream parser, as broken as the provider.
pub struct MisbehaveStream;

fn misbehave() -> u64 {
    if cfg!(feature = "trap") {
        panic!("misbehave: trap");
    }
    if cfg!(feature = "spin") {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
    if cfg!(feature = "hog") {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![1u8; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }
    0
}

impl StreamParse for MisbehaveStream {
    fn push(&mut self, _chunk: &[u8]) -> PluginResult<()> {
        misbehave();
        Ok(())
    }

    fn finish(&mut self) -> PluginResult<StreamOutcome> {
        Ok(StreamOutcome { usage: None, complete: false, error: None, output_text_bytes: misbehave() })
    }
}

impl Provider for Misbehave {
    type Stream = MisbehaveStream;

    fn info() -> PluginInfo {
        let name = if cfg!(feature = "trap") {
            "misbehave-trap"
        } else if cfg!(feature = "spin") {
            "misbehave-spin"
        } else {
            "misbehave-hog"
        };
        PluginInfo { name: name.into(), version: env!("CARGO_PKG_VERSION").into(), formats: vec![ApiFormat::OpenaiChat] }
    }

    fn extract_response(_format: ApiFormat, _status: u16, _body: &[u8]) -> PluginResult<Option<Usage>> {
        misbehave();
        Ok(None)
    }

    fn estimate(_format: ApiFormat, request: &[u8], limits: ModelLimits) -> PluginResult<Usage> {
        estimate::upper_bound(request, &[&["max_tokens"]], &limits)
    }

    fn new_stream(_format: ApiFormat) -> MisbehaveStream {
        MisbehaveStream
    }
}

xjp_plugin_sdk::export_provider!(Misbehave);
