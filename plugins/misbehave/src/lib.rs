//! Deliberately broken plugins: `trap` panics, `spin` loops forever, `hog` allocates
//! without bound, on `extract-response` and stream `push` whenever the input contains
//! the word `misbehave`. Other input behaves, so the host's load-time self-test passes
//! and the fault shows on a call, where the host must contain it.
//!
//! The features of [`contract`] (`error-usage`, `price-down`, `slow-large`, `hog-large`) build a working
//! OpenAI-format plugin instead that breaks one contract check of `plugin check` each.

pub mod contract;

use xjp_plugin_sdk::{
    ApiFormat, Descriptor, ModelLimits, PluginResult, Provider, StreamOutcome, StreamParse, Usage, estimate,
};

/// The broken provider.
pub struct Misbehave;

/// Its stream parser, as broken as the provider.
pub struct MisbehaveStream;

const TRIGGER: &[u8] = b"misbehave";

/// The plugin's name: which way it is broken.
const NAME: &str = if cfg!(feature = "trap") {
    "misbehave-trap"
} else if cfg!(feature = "spin") {
    "misbehave-spin"
} else {
    "misbehave-hog"
};

fn misbehave(input: &[u8]) -> u64 {
    if !input.windows(TRIGGER.len()).any(|w| w == TRIGGER) {
        return 0;
    }
    if cfg!(feature = "trap") {
        panic!("misbehave: trap");
    }
    if cfg!(feature = "spin") {
        spin();
    }
    if cfg!(feature = "hog") {
        hoard();
    }
    0
}

/// Loops until the host's call deadline stops the instance.
pub(crate) fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Allocates a MiB at a time until the host's memory cap stops the instance.
pub(crate) fn hoard() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

impl StreamParse for MisbehaveStream {
    fn push(&mut self, chunk: &[u8]) -> PluginResult<()> {
        misbehave(chunk);
        Ok(())
    }

    fn finish(&mut self) -> PluginResult<StreamOutcome> {
        Ok(StreamOutcome { usage: None, complete: false, error: None, output_text_bytes: 0 })
    }
}

impl Provider for Misbehave {
    const DESCRIPTOR: Descriptor = xjp_plugin_sdk::descriptor!(NAME, &[ApiFormat::OpenaiChat]);

    type Stream = MisbehaveStream;

    fn extract_response(_format: ApiFormat, _status: u16, body: &[u8]) -> PluginResult<Option<Usage>> {
        misbehave(body);
        Ok(None)
    }

    fn estimate(_format: ApiFormat, request: &[u8], limits: ModelLimits) -> PluginResult<Usage> {
        estimate::upper_bound(request, &[&["max_tokens"]], &limits)
    }

    fn new_stream(_format: ApiFormat) -> MisbehaveStream {
        MisbehaveStream
    }
}

#[cfg(not(any(feature = "error-usage", feature = "price-down", feature = "slow-large", feature = "hog-large")))]
xjp_plugin_sdk::export_provider!(Misbehave);

#[cfg(any(feature = "error-usage", feature = "price-down", feature = "slow-large", feature = "hog-large"))]
xjp_plugin_sdk::export_provider!(contract::BreaksContract);
