//! Raw SSE event framing for the relay: splits a byte stream into whole events, every
//! byte kept, so one event can be withheld (the usage chunk a client did not ask for).

use bytes::{Bytes, BytesMut};

/// Collects bytes until a blank line ends an event.
#[derive(Debug, Default)]
pub struct RawEvents {
    buf: BytesMut,
}

/// The end of the first event in `buf` (index just past its blank line).
fn event_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            match buf.get(i + 1) {
                Some(b'\n') => return Some(i + 2),
                Some(b'\r') if buf.get(i + 2) == Some(&b'\n') => return Some(i + 3),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

impl RawEvents {
    /// A splitter with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes; returns every event they complete, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Bytes> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = event_end(&self.buf) {
            events.push(self.buf.split_to(end).freeze());
        }
        events
    }

    /// Whatever is left (an unterminated last event).
    pub fn finish(&mut self) -> Bytes {
        std::mem::take(&mut self.buf).freeze()
    }
}

/// Whether an OpenAI-format event is the usage-only chunk (`"choices": []` + `usage`).
pub fn is_usage_only_chunk(event: &[u8]) -> bool {
    let text = String::from_utf8_lossy(event);
    let data: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect::<Vec<_>>()
        .join("\n");
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&data) else { return false };
    v.get("choices").and_then(|c| c.as_array()).is_some_and(Vec::is_empty)
        && v.get("usage").is_some_and(|u| u.is_object())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_keeps_every_byte() {
        let input =
            b"data: {\"a\":1}\n\ndata: {\"choices\":[],\"usage\":{\"total_tokens\":3}}\r\n\r\ndata: [DONE]\n\n: tail";
        for split in 0..input.len() {
            let mut r = RawEvents::new();
            let mut out: Vec<Bytes> = r.push(&input[..split]);
            out.extend(r.push(&input[split..]));
            let rest = r.finish();
            assert_eq!(out.len(), 3, "split {split}");
            let joined: Vec<u8> = out.iter().flat_map(|b| b.to_vec()).chain(rest.to_vec()).collect();
            assert_eq!(joined, input.to_vec());
            assert!(!is_usage_only_chunk(&out[0]));
            assert!(is_usage_only_chunk(&out[1]));
            assert!(!is_usage_only_chunk(&out[2]));
        }
    }
}
