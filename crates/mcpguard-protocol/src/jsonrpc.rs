//! A thin JSON-RPC 2.0 envelope over the original bytes.
//!
//! [`Message::parse`] validates the whole text (well-formed, one object, no repeated keys),
//! then records where `id`, `params`, `result` and `error` sit in the bytes. Nothing else is
//! interpreted, so forwarding a message sends exactly the bytes that arrived; a change (a
//! remapped id, rewritten params) is spliced into a copy, leaving the rest untouched.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use bytes::Bytes;
use bytestring::ByteString;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::json::{self, JsonError};

/// The kind of a JSON-RPC message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Has `method` and `id`: expects a response.
    Request,
    /// Has `method`, no `id`.
    Notification,
    /// Has `id` and `result`.
    Response,
    /// Has `id` (possibly null) and `error`.
    Error,
}

impl Kind {
    /// Lowercase name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Request => "request",
            Kind::Notification => "notification",
            Kind::Response => "response",
            Kind::Error => "error",
        }
    }
}

/// Why bytes are not a usable JSON-RPC message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON, or JSON with a repeated key.
    #[error(transparent)]
    Json(#[from] JsonError),
    /// A JSON array: a batch. MCP has carried one message per POST since 2025-06-18.
    #[error("json-rpc batches are not supported: send one message per request")]
    Batch,
    /// Well-formed JSON that is not a JSON-RPC 2.0 message.
    #[error("invalid json-rpc message: {0}")]
    Invalid(String),
}

impl ParseError {
    /// The JSON-RPC error code a peer should get for this fault.
    pub fn code(&self) -> i64 {
        match self {
            ParseError::Json(JsonError::Syntax { .. }) => crate::codes::PARSE_ERROR,
            ParseError::Json(JsonError::DuplicateKey { .. }) => crate::codes::INVALID_REQUEST,
            ParseError::Batch | ParseError::Invalid(_) => crate::codes::INVALID_REQUEST,
        }
    }
}

/// One parsed JSON-RPC message: its original bytes plus where its parts are.
#[derive(Clone)]
pub struct Message {
    /// The message text, known to be UTF-8 (checked once, at parse).
    bytes: ByteString,
    kind: Kind,
    method: Option<Box<str>>,
    id: Option<Range<usize>>,
    params: Option<Range<usize>>,
    result: Option<Range<usize>>,
    error: Option<Range<usize>>,
    /// The top-level members of `params` (key and value spans in `bytes`), indexed on
    /// first use: routing and checks read several of them per message.
    params_index: std::sync::OnceLock<Vec<(Range<usize>, Range<usize>)>>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "present")]
    params: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

/// Keeps an explicit `null` as `Some("null")` so it can be told apart from an absent field.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

impl Message {
    /// Parses and validates one JSON-RPC 2.0 message.
    pub fn parse(bytes: impl Into<Bytes>) -> Result<Message, ParseError> {
        let bytes: Bytes = bytes.into();
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'[') => {
                // Report malformed JSON as such before calling it a batch.
                json::validate_strict(&bytes)?;
                return Err(ParseError::Batch);
            }
            Some(b'{') => {}
            Some(_) | None => {
                json::validate_strict(&bytes)?;
                return Err(ParseError::Invalid(
                    "a json-rpc message must be a json object".into(),
                ));
            }
        }
        json::validate_strict(&bytes)?;
        let env: Envelope<'_> = serde_json::from_slice(&bytes)
            .map_err(|e| ParseError::Invalid(strip_position(&e.to_string())))?;
        if env.jsonrpc.as_deref() != Some("2.0") {
            return Err(ParseError::Invalid(
                "`jsonrpc` must be the string \"2.0\"".into(),
            ));
        }
        let text = ByteString::try_from(bytes.clone())
            .map_err(|_| ParseError::Invalid("the message is not utf-8".into()))?;
        let span = |raw: Option<&RawValue>| -> Result<Option<Range<usize>>, ParseError> {
            raw.map(|raw| span_of(&bytes, raw.get())).transpose()
        };
        let kind = match (&env.method, env.id, env.result, env.error) {
            (Some(_), Some(id), None, None) => {
                check_request_id(id.get())?;
                Kind::Request
            }
            (Some(_), None, None, None) => Kind::Notification,
            (None, Some(id), Some(_), None) => {
                check_request_id(id.get())?;
                Kind::Response
            }
            (None, Some(_), None, Some(_)) => Kind::Error,
            (Some(_), _, _, _) => {
                return Err(ParseError::Invalid(
                    "a message with `method` must not carry `result` or `error`".into(),
                ));
            }
            (None, None, _, _) => {
                return Err(ParseError::Invalid(
                    "a message needs `method` (request or notification) or `id` (response)".into(),
                ));
            }
            (None, Some(_), Some(_), Some(_)) => {
                return Err(ParseError::Invalid(
                    "a response carries `result` or `error`, not both".into(),
                ));
            }
            (None, Some(_), None, None) => {
                return Err(ParseError::Invalid(
                    "a response needs `result` or `error`".into(),
                ));
            }
        };
        if let Some(params) = env.params {
            let first = params.get().as_bytes().first();
            if !matches!(first, Some(b'{') | Some(b'[')) {
                return Err(ParseError::Invalid(
                    "`params` must be an object or an array".into(),
                ));
            }
        }
        let method = env.method.map(|m| m.into_owned().into_boxed_str());
        let id = span(env.id)?;
        let params = span(env.params)?;
        let result = span(env.result)?;
        let error = span(env.error)?;
        Ok(Message {
            kind,
            method,
            id,
            params,
            result,
            error,
            bytes: text,
            params_index: std::sync::OnceLock::new(),
        })
    }

    /// The exact bytes of the message.
    pub fn bytes(&self) -> &Bytes {
        self.bytes.as_bytes()
    }

    /// The exact bytes of the message, consuming it.
    pub fn into_bytes(self) -> Bytes {
        self.bytes.into_bytes()
    }

    /// Request, notification, response or error.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// True for requests and notifications.
    pub fn is_call(&self) -> bool {
        matches!(self.kind, Kind::Request | Kind::Notification)
    }

    /// True for responses and errors.
    pub fn is_reply(&self) -> bool {
        matches!(self.kind, Kind::Response | Kind::Error)
    }

    /// The method, unescaped; `None` for responses.
    pub fn method(&self) -> Option<&str> {
        self.method.as_deref()
    }

    /// The raw JSON text of `id` (e.g. `7` or `"abc"`), if present.
    pub fn id(&self) -> Option<&str> {
        self.slice(&self.id)
    }

    /// The raw JSON text of `params`, if present.
    pub fn params(&self) -> Option<&str> {
        self.slice(&self.params)
    }

    /// The raw JSON text of top-level member `key` of `params`.
    pub fn param(&self, key: &str) -> Option<&str> {
        let params = self.params.as_ref()?;
        let index = self.params_index.get_or_init(|| {
            let text = self.slice(&self.params).unwrap_or_default();
            json::members(text)
                .into_iter()
                .map(|(k, v)| {
                    (
                        k.start + params.start..k.end + params.start,
                        v.start + params.start..v.end + params.start,
                    )
                })
                .collect()
        });
        let text = self.as_str();
        index
            .iter()
            .find(|(k, _)| {
                text.get(k.clone())
                    .is_some_and(|raw| json::key_is(raw, key))
            })
            .and_then(|(_, v)| text.get(v.clone()))
    }

    /// Top-level member `key` of `params` decoded as a string.
    pub fn param_str(&self, key: &str) -> Option<Cow<'_, str>> {
        self.param(key).and_then(json::string_value)
    }

    /// The raw JSON text of `result`, if present.
    pub fn result(&self) -> Option<&str> {
        self.slice(&self.result)
    }

    /// The raw JSON text of `error`, if present.
    pub fn error(&self) -> Option<&str> {
        self.slice(&self.error)
    }

    /// The whole message as text (it was validated as JSON, hence UTF-8).
    pub fn as_str(&self) -> &str {
        &self.bytes
    }

    fn slice(&self, range: &Option<Range<usize>>) -> Option<&str> {
        let range = range.as_ref()?;
        self.bytes.get(range.clone())
    }

    /// A copy with `id` replaced by `new_id` (raw JSON text). A message without an id is
    /// returned unchanged.
    pub fn with_id(&self, new_id: &str) -> Message {
        match &self.id {
            Some(range) => self.splice(range.clone(), new_id),
            None => self.clone(),
        }
    }

    /// A copy with `params` replaced by `new_params` (raw JSON object text); when the
    /// message has no params, they are added.
    pub fn with_params(&self, new_params: &str) -> Message {
        match &self.params {
            Some(range) => self.splice(range.clone(), new_params),
            None => self.insert_member("params", new_params),
        }
    }

    /// A copy with `result` replaced by `new_result` (raw JSON text). A message without a
    /// result is returned unchanged.
    pub fn with_result(&self, new_result: &str) -> Message {
        match &self.result {
            Some(range) => self.splice(range.clone(), new_result),
            None => self.clone(),
        }
    }

    fn splice(&self, range: Range<usize>, replacement: &str) -> Message {
        let mut out = String::with_capacity(self.bytes.len() + replacement.len());
        out.push_str(&self.bytes[..range.start]);
        out.push_str(replacement);
        out.push_str(&self.bytes[range.end..]);
        let delta = replacement.len() as isize - (range.end - range.start) as isize;
        let shift = |r: &Option<Range<usize>>| -> Option<Range<usize>> {
            let r = r.as_ref()?;
            if r.start == range.start && r.end == range.end {
                Some(range.start..range.start + replacement.len())
            } else if r.start >= range.end {
                Some((r.start as isize + delta) as usize..(r.end as isize + delta) as usize)
            } else {
                Some(r.clone())
            }
        };
        Message {
            kind: self.kind,
            method: self.method.clone(),
            id: shift(&self.id),
            params: shift(&self.params),
            result: shift(&self.result),
            error: shift(&self.error),
            bytes: ByteString::from(out),
            params_index: std::sync::OnceLock::new(),
        }
    }

    fn insert_member(&self, key: &str, value: &str) -> Message {
        // The message is an object: insert right after the opening brace.
        let raw = self.bytes.as_bytes();
        let open = raw.iter().position(|b| *b == b'{').unwrap_or(0);
        let mut text = Vec::with_capacity(raw.len() + key.len() + value.len() + 4);
        text.extend_from_slice(&raw[..=open]);
        json::push_json_string(&mut text, key);
        text.push(b':');
        text.extend_from_slice(value.as_bytes());
        let rest = &raw[open + 1..];
        if rest.iter().any(|b| !b.is_ascii_whitespace() && *b != b'}') {
            text.push(b',');
        }
        text.extend_from_slice(rest);
        // Re-parse: the result is valid by construction, and the spans need recomputing.
        Message::parse(text).unwrap_or_else(|_| self.clone())
    }

    /// Builds a request from a raw id, a method and raw params.
    pub fn request(id: &str, method: &str, params: Option<&str>) -> Message {
        build(Some(id), Some(method), params.map(|p| ("params", p)))
    }

    /// Builds a notification.
    pub fn notification(method: &str, params: Option<&str>) -> Message {
        build(None, Some(method), params.map(|p| ("params", p)))
    }

    /// Builds a success response.
    pub fn response(id: &str, result: &str) -> Message {
        build(Some(id), None, Some(("result", result)))
    }

    /// Builds an error response; `id` is `None` when the request's id is unknown.
    pub fn error_response(id: Option<&str>, error: &RpcError) -> Message {
        let text = error.to_json();
        build(Some(id.unwrap_or("null")), None, Some(("error", &text)))
    }
}

fn build(id: Option<&str>, method: Option<&str>, member: Option<(&str, &str)>) -> Message {
    let mut text = Vec::with_capacity(64);
    text.extend_from_slice(br#"{"jsonrpc":"2.0""#);
    if let Some(id) = id {
        text.extend_from_slice(br#","id":"#);
        text.extend_from_slice(id.as_bytes());
    }
    if let Some(method) = method {
        text.extend_from_slice(br#","method":"#);
        json::push_json_string(&mut text, method);
    }
    if let Some((key, value)) = member {
        text.push(b',');
        json::push_json_string(&mut text, key);
        text.push(b':');
        text.extend_from_slice(value.as_bytes());
    }
    text.push(b'}');
    let bytes = Bytes::from(text);
    match Message::parse(bytes.clone()) {
        Ok(message) => message,
        // Callers pass raw JSON they produced; if it was not valid, keep the bytes so the
        // peer reports it rather than losing the message.
        Err(_) => Message {
            kind: if method.is_some() {
                Kind::Notification
            } else {
                Kind::Error
            },
            method: method.map(Into::into),
            id: None,
            params: None,
            result: None,
            error: None,
            bytes: ByteString::try_from(bytes).unwrap_or_default(),
            params_index: std::sync::OnceLock::new(),
        },
    }
}

fn check_request_id(raw: &str) -> Result<(), ParseError> {
    match raw.as_bytes().first() {
        Some(b'"') => Ok(()),
        Some(b'-' | b'0'..=b'9') if !raw.contains(['.', 'e', 'E']) => Ok(()),
        _ => Err(ParseError::Invalid(format!(
            "`id` must be a string or an integer, got `{}`",
            truncate(raw, 40)
        ))),
    }
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

fn span_of(base: &[u8], part: &str) -> Result<Range<usize>, ParseError> {
    // `part` borrows from `base` (serde_json hands out sub-slices of the input for
    // borrowed raw values), so its offset is the address difference.
    let start = (part.as_ptr() as usize)
        .checked_sub(base.as_ptr() as usize)
        .filter(|start| start + part.len() <= base.len())
        .ok_or_else(|| ParseError::Invalid("internal: raw value outside input".into()))?;
    Ok(start..start + part.len())
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print payloads: they may hold secrets.
        f.debug_struct("Message")
            .field("kind", &self.kind)
            .field("method", &self.method)
            .field("id", &self.id())
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// The error code.
    pub code: i64,
    /// One-line message.
    pub message: String,
    /// Optional structured detail (raw JSON).
    pub data: Option<serde_json::Value>,
}

impl RpcError {
    /// An error with a code and a message.
    pub fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// Attaches structured detail.
    pub fn with_data(mut self, data: serde_json::Value) -> RpcError {
        self.data = Some(data);
        self
    }

    /// The error as a JSON object text.
    pub fn to_json(&self) -> String {
        let mut object = serde_json::Map::new();
        object.insert("code".into(), self.code.into());
        object.insert("message".into(), self.message.clone().into());
        if let Some(data) = &self.data {
            object.insert("data".into(), data.clone());
        }
        serde_json::Value::Object(object).to_string()
    }
}

#[cfg(test)]
mod tests;
