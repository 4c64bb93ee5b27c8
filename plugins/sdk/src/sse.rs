//! Server-sent events framing, done once and right for every plugin.
//!
//! Handles LF, CRLF and lone CR line ends, comment lines (`: OPENROUTER PROCESSING`),
//! `event:` names, multi-line `data:` (joined with `\n`), events and lines split across
//! any chunk boundary, and an unterminated last event at end of input.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, when present.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: Vec<u8>,
}

/// Incremental SSE decoder.
#[derive(Debug, Default)]
pub struct SseDecoder {
    /// Bytes of an incomplete line.
    line: Vec<u8>,
    /// The previous chunk ended with CR: a following LF belongs to that line end.
    pending_cr: bool,
    event: Option<String>,
    data: Vec<u8>,
    has_data: bool,
}

impl SseDecoder {
    /// A decoder with no input yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes and calls `on_event` for every event they complete.
    pub fn push<E>(&mut self, mut chunk: &[u8], on_event: &mut impl FnMut(SseEvent) -> Result<(), E>) -> Result<(), E> {
        if self.pending_cr {
            self.pending_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        while let Some(pos) = chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (head, tail) = chunk.split_at(pos);
            let ends_with_cr = tail[0] == b'\r';
            chunk = &tail[1..];
            if ends_with_cr {
                match chunk.first() {
                    Some(b'\n') => chunk = &chunk[1..],
                    None => self.pending_cr = true,
                    _ => {}
                }
            }
            if self.line.is_empty() {
                self.process_line(head, on_event)?;
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(head);
                self.process_line(&line, on_event)?;
                line.clear();
                self.line = line;
            }
        }
        self.line.extend_from_slice(chunk);
        Ok(())
    }

    /// Ends the input: an unterminated last line and event are still dispatched.
    pub fn finish<E>(&mut self, on_event: &mut impl FnMut(SseEvent) -> Result<(), E>) -> Result<(), E> {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, on_event)?;
        }
        self.dispatch(on_event)
    }

    fn process_line<E>(&mut self, line: &[u8], on_event: &mut impl FnMut(SseEvent) -> Result<(), E>) -> Result<(), E> {
        if line.is_empty() {
            return self.dispatch(on_event);
        }
        if line[0] == b':' {
            return Ok(());
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {}
        }
        Ok(())
    }

    fn dispatch<E>(&mut self, on_event: &mut impl FnMut(SseEvent) -> Result<(), E>) -> Result<(), E> {
        if !self.has_data {
            self.event = None;
            return Ok(());
        }
        self.has_data = false;
        let event = SseEvent { event: self.event.take(), data: std::mem::take(&mut self.data) };
        on_event(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_split(input: &[u8], split: usize) -> Vec<SseEvent> {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        let mut sink = |e| {
            out.push(e);
            Ok::<(), ()>(())
        };
        d.push(&input[..split], &mut sink).unwrap();
        d.push(&input[split..], &mut sink).unwrap();
        d.finish(&mut sink).unwrap();
        out
    }

    #[test]
    fn every_split_gives_the_same_events() {
        let input = b": OPENROUTER PROCESSING\r\n\r\nevent: message_start\r\ndata: {\"a\":1}\r\n\r\ndata: line1\ndata: line2\n\ndata:x\rdata: [DONE]";
        let whole = decode_split(input, 0);
        assert_eq!(
            whole,
            vec![
                SseEvent { event: Some("message_start".into()), data: b"{\"a\":1}".to_vec() },
                SseEvent { event: None, data: b"line1\nline2".to_vec() },
                SseEvent { event: None, data: b"x\n[DONE]".to_vec() },
            ]
        );
        for split in 0..=input.len() {
            assert_eq!(decode_split(input, split), whole, "split at {split}");
        }
    }

    #[test]
    fn comment_only_stream_has_no_events() {
        assert!(decode_split(b": keepalive\n\n: again\n", 3).is_empty());
    }
}
