//! Recorded streams and how they are split into chunks at event boundaries, byte for byte.

use bytes::Bytes;

/// The framing of a recorded stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamFormat {
    /// Server-sent events (`text/event-stream`): OpenAI, Anthropic, OpenRouter, Gemini `alt=sse`.
    Sse,
    /// A JSON array streamed element by element (`application/json`): Gemini and Vertex
    /// `:streamGenerateContent` without `alt=sse`.
    JsonArray,
}

impl StreamFormat {
    /// Guesses the framing of recorded bytes: a JSON array when the first non-whitespace byte
    /// is `[`, SSE otherwise.
    pub fn sniff(bytes: &[u8]) -> Self {
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'[') => Self::JsonArray,
            _ => Self::Sse,
        }
    }

    /// The `content-type` the mock serves this framing with.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Sse => "text/event-stream",
            Self::JsonArray => "application/json",
        }
    }
}

/// A recorded stream, split once into the chunks the mock sends as separate body frames.
///
/// The concatenation of [`RecordedStream::chunks`] is always exactly [`RecordedStream::bytes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedStream {
    format: StreamFormat,
    bytes: Bytes,
    chunks: Vec<Bytes>,
}

impl RecordedStream {
    /// A stream whose framing is sniffed from its bytes (see [`StreamFormat::sniff`]).
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self::with_format(StreamFormat::sniff(&bytes), bytes)
    }

    /// A stream with an explicit framing.
    pub fn with_format(format: StreamFormat, bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        let ends = match format {
            StreamFormat::Sse => sse_boundaries(&bytes),
            StreamFormat::JsonArray => json_array_boundaries(&bytes),
        };
        let chunks = split_at(&bytes, &ends);
        Self { format, bytes, chunks }
    }

    /// The framing of this stream.
    pub fn format(&self) -> StreamFormat {
        self.format
    }

    /// The recorded bytes, unchanged.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The chunks, in order; each is sent as its own body frame.
    pub fn chunks(&self) -> &[Bytes] {
        &self.chunks
    }
}

/// Cuts `bytes` at the given increasing end offsets; the remainder (if any) is the last chunk.
fn split_at(bytes: &Bytes, ends: &[usize]) -> Vec<Bytes> {
    let mut chunks = Vec::with_capacity(ends.len() + 1);
    let mut start = 0;
    for &end in ends {
        if end > start {
            chunks.push(bytes.slice(start..end));
            start = end;
        }
    }
    if start < bytes.len() {
        chunks.push(bytes.slice(start..));
    }
    chunks
}

/// Offsets just after each blank line (the end of an SSE event). Lines end with `\r\n`, `\n`
/// or `\r`, as the SSE specification allows.
fn sse_boundaries(bytes: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut line_empty = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' | b'\n' => {
                let end = if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') { i + 2 } else { i + 1 };
                if line_empty {
                    ends.push(end);
                }
                line_empty = true;
                i = end;
            }
            _ => {
                line_empty = false;
                i += 1;
            }
        }
    }
    ends
}

/// Offsets where each top-level array element after the first begins: a chunk runs from an
/// element through its trailing separator (`\r\n,\r\n` in Gemini's streams). Strings and
/// nesting are tracked, so commas inside elements never split.
fn json_array_boundaries(bytes: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut after_separator = false;
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        if after_separator && !b.is_ascii_whitespace() {
            ends.push(i);
            after_separator = false;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => after_separator = true,
            _ => {}
        }
    }
    ends
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(format: StreamFormat, text: &str) -> Vec<String> {
        RecordedStream::with_format(format, text.to_owned())
            .chunks()
            .iter()
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn sse_splits_after_blank_lines_lf() {
        let got = chunks(StreamFormat::Sse, "data: a\n\nevent: x\ndata: b\n\ndata: [DONE]\n\n");
        assert_eq!(got, ["data: a\n\n", "event: x\ndata: b\n\n", "data: [DONE]\n\n"]);
    }

    #[test]
    fn sse_splits_after_blank_lines_crlf_and_keeps_partial_tail() {
        let got = chunks(StreamFormat::Sse, ": ping\r\n\r\ndata: {\"a\":1}\r\n\r\ndata: {\"cut");
        assert_eq!(got, [": ping\r\n\r\n", "data: {\"a\":1}\r\n\r\n", "data: {\"cut"]);
    }

    #[test]
    fn sse_handles_bare_cr_and_extra_blank_lines() {
        let got = chunks(StreamFormat::Sse, "data: a\r\rdata: b\n\n\ndata: c\n");
        assert_eq!(got, ["data: a\r\r", "data: b\n\n", "\n", "data: c\n"]);
    }

    #[test]
    fn json_array_splits_after_separators_only_at_top_level() {
        let text = "[{\"a\": [1, 2], \"s\": \"x,]}\\\"\"}\r\n,\r\n{\"b\": {\"c\": 3}}\r\n,\r\n{\"d\": 4}\r\n]";
        let got = chunks(StreamFormat::JsonArray, text);
        assert_eq!(
            got,
            ["[{\"a\": [1, 2], \"s\": \"x,]}\\\"\"}\r\n,\r\n", "{\"b\": {\"c\": 3}}\r\n,\r\n", "{\"d\": 4}\r\n]"]
        );
    }

    #[test]
    fn json_array_truncated_keeps_every_byte() {
        let text = "[{\"a\": 1}\r\n,\r\n{\"b\": \"tru";
        assert_eq!(chunks(StreamFormat::JsonArray, text), ["[{\"a\": 1}\r\n,\r\n", "{\"b\": \"tru"]);
    }

    #[test]
    fn sniff_recognises_arrays_and_sse() {
        assert_eq!(StreamFormat::sniff(b"\r\n [{}]"), StreamFormat::JsonArray);
        assert_eq!(StreamFormat::sniff(b"data: {}\n\n"), StreamFormat::Sse);
        assert_eq!(StreamFormat::sniff(b": OPENROUTER PROCESSING\n\n"), StreamFormat::Sse);
        assert_eq!(StreamFormat::sniff(b""), StreamFormat::Sse);
    }

    #[test]
    fn empty_stream_has_no_chunks() {
        assert!(RecordedStream::new(Bytes::new()).chunks().is_empty());
    }

    /// Every recorded stream in the repository's fixtures splits into chunks that concatenate
    /// back to the file, and every SSE chunk but the last ends with a blank line.
    #[test]
    fn repository_fixtures_split_losslessly() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
        let (mut checked, mut multi_chunk) = (0, 0);
        for provider in std::fs::read_dir(&root).unwrap() {
            let provider = provider.unwrap().path();
            if !provider.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(&provider).unwrap() {
                let path = file.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if name.ends_with(".case.json") || !(name.ends_with(".sse") || name.ends_with(".json")) {
                    continue;
                }
                let bytes = std::fs::read(&path).unwrap();
                let stream = RecordedStream::new(bytes.clone());
                assert_eq!(stream.chunks().concat(), bytes, "{}", path.display());
                if name.ends_with(".sse") {
                    let (_, complete) = stream.chunks().split_last().unwrap();
                    for chunk in complete {
                        assert!(chunk.ends_with(b"\n\n") || chunk.ends_with(b"\r\n\r\n"), "{}", path.display());
                    }
                    multi_chunk += usize::from(stream.chunks().len() > 1);
                }
                checked += 1;
            }
        }
        assert!(checked > 0 && multi_chunk > 0, "no stream fixtures found under {}", root.display());
    }
}
