//! Server-Sent Events, as the WHATWG HTML standard defines the `text/event-stream` format.
//!
//! The decoder is incremental (feed it chunks as they arrive), accepts `\n`, `\r\n` and `\r`
//! line ends, ignores comments, and yields events with empty `data` too: MCP servers send a
//! "priming" event with an `id` and no data so a client can resume from it.

use bytes::{Bytes, BytesMut};

/// One event from a stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The `id:` field, if the event set one.
    pub id: Option<String>,
    /// The `event:` field (`message` when absent).
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The `retry:` field in milliseconds, if set.
    pub retry: Option<u64>,
}

impl Event {
    /// True when the event carries a message (type `message`, non-empty data).
    pub fn is_message(&self) -> bool {
        !self.data.is_empty() && self.event.as_deref().is_none_or(|e| e == "message")
    }
}

/// Why a stream cannot be decoded further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// One event grew beyond the configured limit.
    #[error("an sse event exceeds the limit of {limit} bytes")]
    EventTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The stream is not UTF-8.
    #[error("the sse stream is not valid utf-8")]
    NotUtf8,
}

/// Incremental `text/event-stream` decoder.
#[derive(Debug)]
pub struct Decoder {
    buf: BytesMut,
    current: Event,
    has_fields: bool,
    event_bytes: usize,
    max_event_bytes: usize,
    last_was_cr: bool,
    data_lines: usize,
}

impl Decoder {
    /// A decoder that refuses events larger than `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Decoder {
        Decoder {
            buf: BytesMut::new(),
            current: Event::default(),
            has_fields: false,
            event_bytes: 0,
            max_event_bytes,
            last_was_cr: false,
            data_lines: 0,
        }
    }

    /// Feeds bytes; returns the events completed by them.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Event>, SseError> {
        let mut events = Vec::new();
        let mut rest = chunk;
        // A `\r\n` split across chunks: drop the `\n` that completes an already-ended line.
        if self.last_was_cr {
            if let Some(b'\n') = rest.first() {
                rest = &rest[1..];
            }
            self.last_was_cr = false;
        }
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', rest) {
            let ending = rest[pos];
            self.buf.extend_from_slice(&rest[..pos]);
            let line = self.buf.split().freeze();
            rest = &rest[pos + 1..];
            if ending == b'\r' {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.last_was_cr = true,
                }
            }
            if let Some(event) = self.line(&line)? {
                events.push(event);
            }
        }
        self.buf.extend_from_slice(rest);
        if self.buf.len() + self.event_bytes > self.max_event_bytes {
            return Err(SseError::EventTooLarge {
                limit: self.max_event_bytes,
            });
        }
        Ok(events)
    }

    fn line(&mut self, line: &Bytes) -> Result<Option<Event>, SseError> {
        if line.is_empty() {
            // Blank line: dispatch. (Comments alone, such as keep-alive pings, make no event
            // but must not count towards the next event's size.)
            if !self.has_fields {
                self.event_bytes = 0;
                return Ok(None);
            }
            self.has_fields = false;
            self.event_bytes = 0;
            self.data_lines = 0;
            return Ok(Some(std::mem::take(&mut self.current)));
        }
        self.event_bytes += line.len();
        if self.event_bytes > self.max_event_bytes {
            return Err(SseError::EventTooLarge {
                limit: self.max_event_bytes,
            });
        }
        let text = std::str::from_utf8(line).map_err(|_| SseError::NotUtf8)?;
        if text.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match text.find(':') {
            Some(at) => {
                let value = &text[at + 1..];
                (&text[..at], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (text, ""),
        };
        match field {
            "data" => {
                if self.data_lines > 0 {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.data_lines += 1;
            }
            "event" => self.current.event = Some(value.to_string()),
            "id" if !value.contains('\0') => self.current.id = Some(value.to_string()),
            "retry" => {
                if let Ok(ms) = value.parse() {
                    self.current.retry = Some(ms);
                }
            }
            _ => return Ok(None),
        }
        self.has_fields = true;
        Ok(None)
    }
}

/// Encodes one event. Multi-line data is split into several `data:` lines.
pub fn encode(id: Option<&str>, data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 32);
    out.extend_from_slice(b"event: message\n");
    if let Some(id) = id {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(b"\n");
    }
    for line in split_lines(data) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.extend_from_slice(b"\n");
    }
    out.extend_from_slice(b"\n");
    out.freeze()
}

/// Encodes a priming event: an id and empty data, so the client can resume from it.
pub fn encode_priming(id: &str, retry_ms: Option<u64>) -> Bytes {
    let mut text = format!("id: {id}\n");
    if let Some(ms) = retry_ms {
        text.push_str(&format!("retry: {ms}\n"));
    }
    text.push_str("data: \n\n");
    Bytes::from(text)
}

fn split_lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let current = rest?;
        match memchr::memchr2(b'\n', b'\r', current) {
            Some(pos) => {
                let line = &current[..pos];
                let mut next = &current[pos + 1..];
                if current[pos] == b'\r' && next.first() == Some(&b'\n') {
                    next = &next[1..];
                }
                rest = Some(next);
                Some(line)
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

#[cfg(test)]
mod tests;
