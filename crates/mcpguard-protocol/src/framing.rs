//! Newline-delimited framing for the stdio transport: one JSON-RPC message per line.
//!
//! MCP's stdio transport forbids embedded newlines in messages, so a line is a message.
//! The decoder is incremental, tolerates `\r\n`, skips blank lines and bounds the length
//! of a line so a peer cannot grow the gateway's memory without limit.

use bytes::{Bytes, BytesMut};

/// Why a line could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// A line grew past the limit; the decoder skips to the next newline.
    #[error("a line exceeds the limit of {limit} bytes")]
    LineTooLong {
        /// The limit in bytes.
        limit: usize,
    },
}

/// Splits a byte stream into lines.
#[derive(Debug)]
pub struct LineDecoder {
    buf: BytesMut,
    max_line: usize,
    discarding: bool,
}

impl LineDecoder {
    /// A decoder refusing lines longer than `max_line` bytes.
    pub fn new(max_line: usize) -> LineDecoder {
        LineDecoder {
            buf: BytesMut::new(),
            max_line,
            discarding: false,
        }
    }

    /// Feeds bytes and returns the complete lines (without the line end), or an error for
    /// each line that was too long (its bytes are dropped).
    pub fn push(&mut self, mut chunk: &[u8]) -> Vec<Result<Bytes, FramingError>> {
        let mut out = Vec::new();
        while let Some(pos) = memchr::memchr(b'\n', chunk) {
            if self.discarding {
                self.discarding = false;
            } else if self.buf.len() + pos > self.max_line {
                self.buf.clear();
                out.push(Err(FramingError::LineTooLong {
                    limit: self.max_line,
                }));
            } else {
                self.buf.extend_from_slice(&chunk[..pos]);
                let mut line = self.buf.split().freeze();
                if line.last() == Some(&b'\r') {
                    line.truncate(line.len() - 1);
                }
                if line.iter().any(|b| !b.is_ascii_whitespace()) {
                    out.push(Ok(line));
                }
            }
            chunk = &chunk[pos + 1..];
        }
        if !self.discarding {
            if self.buf.len() + chunk.len() > self.max_line {
                self.buf.clear();
                self.discarding = true;
                out.push(Err(FramingError::LineTooLong {
                    limit: self.max_line,
                }));
            } else {
                self.buf.extend_from_slice(chunk);
            }
        }
        out
    }

    /// Bytes held for an unfinished line.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Frames one message for stdio: its bytes followed by `\n`. Raw line breaks can only sit
/// between JSON tokens (inside strings they are always escaped), so any are replaced by
/// spaces, which keeps the message's meaning.
pub fn encode_line(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(message.len() + 1);
    if memchr::memchr2(b'\n', b'\r', message).is_some() {
        // Raw line breaks can only sit between JSON tokens (inside strings they must be
        // escaped), so replacing them with spaces keeps the JSON identical in meaning.
        out.extend(
            message
                .iter()
                .map(|b| if matches!(b, b'\n' | b'\r') { b' ' } else { *b }),
        );
    } else {
        out.extend_from_slice(message);
    }
    out.extend_from_slice(b"\n");
    out.freeze()
}

#[cfg(test)]
mod tests;
