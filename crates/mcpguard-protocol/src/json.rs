//! Strict JSON validation at the trust boundary.
//!
//! `serde_json` accepts an object with the same key twice and keeps the last value. A
//! gateway that judged one `"name"` while the upstream used the other would be bypassed, so
//! every message is walked once and rejected when any object, at any depth, repeats a key
//! (compared after unescaping, so `"n\u0061me"` and `"name"` collide). The walk keeps no
//! values; nesting depth is bounded by `serde_json`'s recursion limit (128).

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::ops::Range;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Why a byte string is not acceptable JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// The bytes are not well-formed JSON (or nest deeper than 128 levels).
    #[error("malformed json at line {line} column {column}: {message}")]
    Syntax {
        /// 1-based line of the fault.
        line: usize,
        /// 1-based column of the fault.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// An object repeats a key.
    #[error(
        "duplicate key `{key}` in a json object (line {line} column {column}); each key may appear once"
    )]
    DuplicateKey {
        /// The repeated key, unescaped (truncated to 64 characters).
        key: String,
        /// 1-based line where the repeat was seen.
        line: usize,
        /// 1-based column where the repeat was seen.
        column: usize,
    },
}

const DUPLICATE_MARKER: &str = "\u{0}mcpguard-duplicate-key\u{0}";

/// Checks that `bytes` hold exactly one well-formed JSON value with no repeated object keys.
pub fn validate_strict(bytes: &[u8]) -> Result<(), JsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let outcome = StrictValue.deserialize(&mut de).and_then(|()| de.end());
    outcome.map_err(|err| {
        let message = err.to_string();
        match message.find(DUPLICATE_MARKER) {
            Some(at) => {
                let rest = &message[at + DUPLICATE_MARKER.len()..];
                let key = rest.split(DUPLICATE_MARKER).next().unwrap_or_default();
                JsonError::DuplicateKey {
                    key: truncate(key, 64),
                    line: err.line(),
                    column: err.column(),
                }
            }
            None => JsonError::Syntax {
                line: err.line(),
                column: err.column(),
                message: strip_position(&message),
            },
        }
    })
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// A seed that walks any JSON value and fails on a repeated key.
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any json value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_i128<E>(self, _: i128) -> Result<(), E> {
        Ok(())
    }
    fn visit_u128<E>(self, _: u128) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(StrictValue)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Keys are compared case-folded: some JSON parsers (Go's encoding/json among them)
        // match keys case-insensitively and with Unicode folding (`ſ` = `s`, `K` = `k`),
        // so `"name"` and `"Name"` in one object would let the gateway judge one value
        // while such an upstream uses the other.
        // Most objects are small: a linear scan beats hashing until a few dozen keys.
        const LINEAR_LIMIT: usize = 24;
        let mut small: smallvec::SmallVec<[Cow<'de, str>; 8]> = smallvec::SmallVec::new();
        let mut large: Option<HashSet<Cow<'de, str>>> = None;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let folded = fold(key.clone());
            let repeated = match large.as_mut() {
                Some(set) => !set.insert(folded),
                None => {
                    let repeated = small.contains(&folded);
                    small.push(folded);
                    if small.len() > LINEAR_LIMIT {
                        large = Some(small.drain(..).collect());
                    }
                    repeated
                }
            };
            if repeated {
                return Err(de::Error::custom(format_args!(
                    "{DUPLICATE_MARKER}{key}{DUPLICATE_MARKER}"
                )));
            }
            map.next_value_seed(StrictValue)?;
        }
        Ok(())
    }
}

/// A key folded for comparison: lowercase ASCII, and for other text Unicode case folding
/// by way of upper then lower case (which maps `ſ` to `s` and the Kelvin sign to `k`).
fn fold(key: Cow<'_, str>) -> Cow<'_, str> {
    if key.is_ascii() {
        if key.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(key.to_ascii_lowercase())
        } else {
            key
        }
    } else {
        Cow::Owned(
            key.chars()
                .flat_map(char::to_uppercase)
                .flat_map(char::to_lowercase)
                .collect(),
        )
    }
}

/// Reads an object key, borrowing it when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// Where the value of top-level member `key` sits in the JSON object text `object`.
/// `None` when `object` is not an object or lacks `key`; the first occurrence wins.
///
/// This runs several times per message, so it scans lexically instead of deserializing:
/// strings are skipped as strings (escapes included), nested values by bracket depth.
/// Text that is not well-formed JSON yields `None` or a best-effort span, never a panic;
/// messages are validated with [`validate_strict`] before anything reads their members.
pub fn member_span(object: &str, key: &str) -> Option<Range<usize>> {
    Members::new(object)?
        .find(|(raw_key, _)| key_matches(&object[raw_key.clone()], key))
        .map(|(_, value)| value)
}

/// Every top-level member of the JSON object text `object`, in order: the span of the key
/// as written (without its quotes, escapes kept) and the span of the value. Empty when
/// `object` is not an object.
pub fn members(object: &str) -> Vec<(Range<usize>, Range<usize>)> {
    Members::new(object)
        .map(Iterator::collect)
        .unwrap_or_default()
}

/// True when a key as written in JSON (escapes kept) names `key`.
pub fn key_is(raw: &str, key: &str) -> bool {
    key_matches(raw, key)
}

/// A lexical walk over the members of an object.
struct Members<'a> {
    b: &'a [u8],
    i: usize,
    done: bool,
}

impl<'a> Members<'a> {
    fn new(object: &'a str) -> Option<Members<'a>> {
        let b = object.as_bytes();
        let i = skip_ws(b, 0);
        (b.get(i) == Some(&b'{')).then_some(Members {
            b,
            i: i + 1,
            done: false,
        })
    }
}

impl Iterator for Members<'_> {
    type Item = (Range<usize>, Range<usize>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        self.done = true;
        let b = self.b;
        let mut i = skip_ws(b, self.i);
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(b, i)?;
        let key = i + 1..key_end - 1;
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let start = skip_ws(b, i + 1);
        let end = value_end(b, start)?;
        i = skip_ws(b, end);
        if b.get(i) == Some(&b',') {
            self.i = i + 1;
            self.done = false;
        }
        Some((key, start..end))
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// Given `b[i] == '"'`, the index just after the closing quote. (A plain loop: the strings
/// of a message are short, and a vectorized search costs more to set up than it saves.)
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        match b.get(j)? {
            b'"' => return Some(j + 1),
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
}

/// The index just after the JSON value starting at `i`.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while let Some(c) = b.get(j) {
                match c {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while let Some(c) = b.get(j) {
                if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

/// Compares a key as written (possibly with escapes) with `key`.
fn key_matches(raw: &str, key: &str) -> bool {
    if !raw.contains('\\') {
        return raw == key;
    }
    let quoted = format!("\"{raw}\"");
    string_value(&quoted).is_some_and(|decoded| decoded == key)
}

/// The raw JSON text of top-level member `key` of `object`.
pub fn member<'a>(object: &'a str, key: &str) -> Option<&'a str> {
    member_span(object, key).and_then(|range| object.get(range))
}

/// Top-level member `key` of `object` decoded as a string; `None` when absent or not a
/// string.
pub fn member_str<'a>(object: &'a str, key: &str) -> Option<Cow<'a, str>> {
    member(object, key).and_then(string_value)
}

/// Decodes a raw JSON string literal.
pub fn string_value(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.starts_with('"') {
        return None;
    }
    let mut de = serde_json::Deserializer::from_str(raw);
    KeySeed.deserialize(&mut de).ok()
}

/// True when `text` is one JSON object (surrounding whitespace aside), judged lexically.
pub fn is_object(text: &str) -> bool {
    let b = text.as_bytes();
    let start = skip_ws(b, 0);
    b.get(start) == Some(&b'{') && value_end(b, start).is_some_and(|end| skip_ws(b, end) == b.len())
}

/// `object` with top-level member `key` set to `value` (raw JSON): replaced in place when
/// present, otherwise appended. Everything else keeps its bytes. Text that is not an
/// object is returned unchanged.
pub fn set_member(object: &str, key: &str, value: &str) -> String {
    if !is_object(object) {
        return object.to_string();
    }
    if let Some(range) = member_span(object, key) {
        let mut out = String::with_capacity(object.len() + value.len());
        out.push_str(&object[..range.start]);
        out.push_str(value);
        out.push_str(&object[range.end..]);
        return out;
    }
    let Some(close) = object.rfind('}') else {
        return object.to_string();
    };
    let head = object[..close].trim_end();
    let mut out = String::with_capacity(object.len() + key.len() + value.len() + 4);
    out.push_str(head);
    if !head.ends_with('{') {
        out.push(',');
    }
    let mut key_text = Vec::new();
    push_json_string(&mut key_text, key);
    out.push_str(&String::from_utf8_lossy(&key_text));
    out.push(':');
    out.push_str(value);
    out.push_str(&object[close..]);
    out
}

/// `object` without top-level member `key` (unchanged when absent).
pub fn remove_member(object: &str, key: &str) -> String {
    let mut de = serde_json::Deserializer::from_str(object);
    let Ok(Some(spans)) = de.deserialize_map(MemberSpans { key, base: object }) else {
        return object.to_string();
    };
    let (key_start, value_end, prev_end, next_start) = spans;
    // Remove `,"key":value` when it is not first; `"key":value,` when first.
    let (from, to) = match (prev_end, next_start) {
        (Some(prev_end), _) => (prev_end, value_end),
        (None, Some(next_start)) => (key_start, next_start),
        (None, None) => (key_start, value_end),
    };
    let mut out = String::with_capacity(object.len());
    out.push_str(&object[..from]);
    out.push_str(&object[to..]);
    out
}

/// Finds a member's extent and its neighbours', for removal.
struct MemberSpans<'k, 'b> {
    key: &'k str,
    base: &'b str,
}

impl<'de> Visitor<'de> for MemberSpans<'_, '_> {
    /// (start of the key literal, end of the value, end of the previous value, start of
    /// the next key literal)
    type Value = Option<(usize, usize, Option<usize>, Option<usize>)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a json object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let offset = |s: &str| (s.as_ptr() as usize).saturating_sub(self.base.as_ptr() as usize);
        let mut prev_end: Option<usize> = None;
        let mut found: Self::Value = None;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let raw: &'de serde_json::value::RawValue = map.next_value()?;
            let value_start = offset(raw.get());
            let value_end = value_start + raw.get().len();
            // Between the previous value (or the opening brace) and this key there is only
            // whitespace and a comma, so the first quote there opens the key literal.
            let from = prev_end.unwrap_or_else(|| self.base.find('{').map_or(0, |i| i + 1));
            let key_start = self.base[from..value_start]
                .find('"')
                .map_or(value_start, |i| from + i);
            if let Some((_, _, _, next @ None)) = found.as_mut() {
                *next = Some(key_start);
            } else if found.is_none() && key == self.key {
                found = Some((key_start, value_end, prev_end, None));
            }
            prev_end = Some(value_end);
        }
        Ok(found)
    }
}

/// Writes `text` as a JSON string literal (with quotes and escapes) to `out`.
pub fn push_json_string(out: &mut Vec<u8>, text: &str) {
    // Serializing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

#[cfg(test)]
mod tests;
