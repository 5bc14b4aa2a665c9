//! De-obfuscation: the other readings of a string that a detector should also see
//! (Unicode tricks folded, percent/HTML/backslash escapes undone, base64 and hex decoded).
//! Each reading is produced only when the string shows the sign of that encoding.

use base64::Engine;

use crate::profile::Profile;

/// One reading of a string, and how it was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// The decoded text.
    pub text: String,
    /// The decoding that produced it (`base64`, `hex`, `url`, `html`, `escape`, `unicode`).
    pub how: &'static str,
}

/// Shortest run worth trying as base64 or hex.
const MIN_ENCODED: usize = 12;

/// All readings of `text` other than itself (not recursive; the caller recurses).
pub fn views(text: &str) -> Vec<View> {
    let mut out = Vec::new();
    let profile = Profile::of(text);
    if profile.has(Profile::NON_ASCII)
        && !text.is_ascii()
        && let Some(folded) = fold_unicode(text)
    {
        out.push(View {
            text: folded,
            how: "unicode",
        });
    }
    let bytes = text.as_bytes();
    if profile.has(Profile::PERCENT)
        && has_percent_escape(bytes)
        && let Some(decoded) = percent_decode(text)
    {
        out.push(View {
            text: decoded,
            how: "url",
        });
    }
    if profile.has(Profile::AMPERSAND)
        && memchr::memchr(b'&', bytes).is_some()
        && let Some(decoded) = html_decode(text)
    {
        out.push(View {
            text: decoded,
            how: "html",
        });
    }
    if profile.has(Profile::BACKSLASH)
        && memchr::memchr(b'\\', bytes).is_some()
        && let Some(decoded) = backslash_decode(text)
    {
        out.push(View {
            text: decoded,
            how: "escape",
        });
    }
    encoded_runs(bytes, &mut out);
    out
}

/// Maps characters that imitate ASCII to ASCII: zero-width and invisible characters are
/// removed, fullwidth forms and common Cyrillic/Greek homoglyphs folded, Unicode tag
/// characters (U+E0020–U+E007E, invisible "ASCII smuggling") turned back into ASCII.
pub fn fold_unicode(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    for c in text.chars() {
        let mapped = match c {
            '\u{200B}'..='\u{200F}'
            | '\u{2060}'..='\u{2064}'
            | '\u{FEFF}'
            | '\u{00AD}'
            | '\u{180E}' => None,
            '\u{E0020}'..='\u{E007E}' => char::from_u32(c as u32 - 0xE0000),
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0),
            _ => Some(homoglyph(c).unwrap_or(c)),
        };
        if mapped != Some(c) {
            changed = true;
        }
        if let Some(m) = mapped {
            out.push(m);
        }
    }
    changed.then_some(out)
}

fn homoglyph(c: char) -> Option<char> {
    Some(match c {
        'А' | 'Α' => 'A',
        'В' | 'Β' => 'B',
        'С' | 'Ϲ' => 'C',
        'Е' | 'Ε' => 'E',
        'Н' | 'Η' => 'H',
        'І' | 'Ι' => 'I',
        'Ј' => 'J',
        'К' | 'Κ' => 'K',
        'М' | 'Μ' => 'M',
        'О' | 'Ο' => 'O',
        'Р' | 'Ρ' => 'P',
        'Ѕ' => 'S',
        'Т' | 'Τ' => 'T',
        'Х' | 'Χ' => 'X',
        'Υ' | 'Ү' => 'Y',
        'Ζ' => 'Z',
        'Ν' => 'N',
        'а' => 'a',
        'с' | 'ϲ' => 'c',
        'е' => 'e',
        'і' => 'i',
        'ј' => 'j',
        'о' | 'ο' => 'o',
        'р' | 'ρ' => 'p',
        'ѕ' => 's',
        'х' => 'x',
        'у' => 'y',
        'ԁ' => 'd',
        'ɡ' => 'g',
        'һ' => 'h',
        'ӏ' => 'l',
        'ν' => 'v',
        'ԝ' => 'w',
        _ => return None,
    })
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// True when `%XX` (two hex digits) occurs.
fn has_percent_escape(b: &[u8]) -> bool {
    memchr::memchr_iter(b'%', b).any(|at| {
        b.get(at + 1).is_some_and(u8::is_ascii_hexdigit)
            && b.get(at + 2).is_some_and(u8::is_ascii_hexdigit)
    })
}

/// `%41%4B` → `AK`; `None` when nothing was escaped.
pub fn percent_decode(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let mut changed = false;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex_value),
                b.get(i + 2).copied().and_then(hex_value),
            )
        {
            out.push(h * 16 + l);
            i += 3;
            changed = true;
        } else if b[i] == b'+' {
            out.push(b' ');
            i += 1;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    if !changed {
        return None;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// `&#65;&#x4B;&amp;` → `AK&`; `None` when there was no entity.
pub fn html_decode(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let end = tail.find(';').filter(|e| *e <= 10);
        let decoded = end.and_then(|e| {
            let entity = &tail[1..e];
            let c = if let Some(hex) = entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
            {
                u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)
            } else if let Some(dec) = entity.strip_prefix('#') {
                dec.parse::<u32>().ok().and_then(char::from_u32)
            } else {
                match entity {
                    "amp" => Some('&'),
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    "nbsp" => Some(' '),
                    "sol" => Some('/'),
                    "equals" => Some('='),
                    "plus" => Some('+'),
                    _ => None,
                }
            };
            c.map(|c| (c, e + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &tail[len..];
                changed = true;
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    changed.then_some(out)
}

/// `\u0041\x4B` → `AK` (with UTF-16 surrogate pairs); `None` when nothing was escaped.
pub fn backslash_decode(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    let mut changed = false;
    let hex_at = |at: usize, n: usize| -> Option<u32> {
        let digits = b.get(at..at + n)?;
        let s = std::str::from_utf8(digits).ok()?;
        u32::from_str_radix(s, 16).ok()
    };
    while i < b.len() {
        if b[i] == b'\\' {
            match b.get(i + 1) {
                Some(b'u') => {
                    if let Some(mut code) = hex_at(i + 2, 4) {
                        let mut len = 6;
                        if (0xD800..0xDC00).contains(&code)
                            && b.get(i + 6) == Some(&b'\\')
                            && b.get(i + 7) == Some(&b'u')
                            && let Some(low) =
                                hex_at(i + 8, 4).filter(|l| (0xDC00..0xE000).contains(l))
                        {
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                            len = 12;
                        }
                        let c = char::from_u32(code).unwrap_or('\u{FFFD}');
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        i += len;
                        changed = true;
                        continue;
                    }
                }
                Some(b'x') => {
                    if let Some(code) = hex_at(i + 2, 2) {
                        out.push(code as u8);
                        i += 4;
                        changed = true;
                        continue;
                    }
                }
                Some(b'n') => {
                    out.push(b'\n');
                    i += 2;
                    changed = true;
                    continue;
                }
                _ => {}
            }
        }
        out.push(b[i]);
        i += 1;
    }
    changed.then(|| String::from_utf8_lossy(&out).into_owned())
}

/// Bytes of base64 and base64url (both alphabets), and their padding `=`.
const ENCODED_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        table[c] = b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_' | b'=');
        c += 1;
    }
    table
};

/// Decodes runs of base64/base64url and of hex that decode to text.
fn encoded_runs(b: &[u8], out: &mut Vec<View>) {
    // A run and its padding are one stretch of encoding bytes; only stretches of at least
    // `MIN_ENCODED` bytes can hold a run worth decoding. Probing the last byte a stretch
    // that long would need skips most of plain prose without looking at every byte.
    let mut i = 0;
    while i + MIN_ENCODED <= b.len() {
        let probe = i + MIN_ENCODED - 1;
        if !ENCODED_BYTES[usize::from(b[probe])] {
            i = probe + 1;
            continue;
        }
        // `b[i - 1]`, when there is one, is not an encoding byte.
        let mut start = probe;
        while start > i && ENCODED_BYTES[usize::from(b[start - 1])] {
            start -= 1;
        }
        let mut end = probe + 1;
        while end < b.len() && ENCODED_BYTES[usize::from(b[end])] {
            end += 1;
        }
        if end - start >= MIN_ENCODED {
            stretch_runs(b, start, end, out);
        }
        i = end + 1;
    }
}

/// The runs inside one stretch `b[from..to]` of encoding bytes, decoded.
fn stretch_runs(b: &[u8], from: usize, to: usize, out: &mut Vec<View>) {
    // '=' only as trailing padding: `state=QUl6…` is a name, then a base64 run.
    let b64 = |c: u8| c != b'=';
    let b = &b[..to];
    // Decoded bytes, reused across runs: most runs (digests, ids) do not decode to text.
    let mut scratch = Vec::new();
    let mut i = from;
    while i < b.len() {
        if !b64(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && b64(b[i]) {
            i += 1;
        }
        let mut padding = 0;
        while i < b.len() && b[i] == b'=' && padding < 2 {
            i += 1;
            padding += 1;
        }
        if i - start < MIN_ENCODED {
            continue;
        }
        let run = &b[start..i];
        if run.iter().all(u8::is_ascii_hexdigit) && run.len().is_multiple_of(2) {
            // Digests and ids decode to bytes that are not UTF-8, which their first
            // bytes usually show: decoding the rest would be wasted.
            if run.len() > PREFIX_BYTES * 2
                && hex_decode(&run[..PREFIX_BYTES * 2], &mut scratch)
                && !could_be_text(&scratch)
            {
                continue;
            }
            if hex_decode(run, &mut scratch)
                && let Some(text) = textual(&scratch)
            {
                out.push(View { text, how: "hex" });
            }
            continue;
        }
        if run.len() > PREFIX_BYTES / 3 * 4
            && base64_decode(&run[..PREFIX_BYTES / 3 * 4], &mut scratch)
            && !could_be_text(&scratch)
        {
            continue;
        }
        if base64_decode(run, &mut scratch)
            && let Some(text) = textual(&scratch)
        {
            out.push(View {
                text,
                how: "base64",
            });
        }
    }
}

/// Decodes hex digit pairs into `into` (cleared first); false when one is not hex.
fn hex_decode(run: &[u8], into: &mut Vec<u8>) -> bool {
    into.clear();
    for pair in run.chunks_exact(2) {
        let (Some(high), Some(low)) = (hex_value(pair[0]), hex_value(pair[1])) else {
            return false;
        };
        into.push(high * 16 + low);
    }
    true
}

/// Decodes a base64 or base64url run into `into` (cleared first); false when the run is
/// not base64 or reads as a word.
fn base64_decode(run: &[u8], into: &mut Vec<u8>) -> bool {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let trimmed: &[u8] = {
        let mut end = run.len();
        while end > 0 && run[end - 1] == b'=' {
            end -= 1;
        }
        &run[..end]
    };
    if trimmed.contains(&b'=') {
        return false;
    }
    // A run mixing both alphabets is not base64.
    let standard = trimmed.iter().any(|c| matches!(c, b'+' | b'/'));
    let url = trimmed.iter().any(|c| matches!(c, b'-' | b'_'));
    if standard && url {
        return false;
    }
    // Words are prose, not base64: letters only, in one case or capitalised.
    let letters_only = trimmed.iter().all(u8::is_ascii_alphabetic);
    let tail_lower = trimmed.iter().skip(1).all(u8::is_ascii_lowercase);
    let all_upper = trimmed.iter().all(u8::is_ascii_uppercase);
    if letters_only && (tail_lower || all_upper) {
        return false;
    }
    let engine = if url {
        &URL_SAFE_NO_PAD
    } else {
        &STANDARD_NO_PAD
    };
    into.clear();
    if engine.decode_vec(trimmed, into).is_ok() {
        return true;
    }
    into.clear();
    engine
        .decode_vec(&trimmed[..trimmed.len() - trimmed.len() % 4], into)
        .is_ok()
}

/// How many decoded bytes are looked at before a long run is decoded whole (a multiple
/// of 3, so that a base64 prefix decodes to whole bytes).
const PREFIX_BYTES: usize = 12;

/// False when `prefix`, the first bytes a run decodes to, already breaks UTF-8 (then
/// the whole decoding does too, and [`textual`] would refuse it); a prefix that merely
/// ends inside a character may still be text.
fn could_be_text(prefix: &[u8]) -> bool {
    match std::str::from_utf8(prefix) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    }
}

/// The bytes as text when they are UTF-8 and nearly all printable.
fn textual(bytes: &[u8]) -> Option<String> {
    if bytes.len() < 8 {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let total = text.chars().count();
    let printable = text
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
        .count();
    (printable * 100 >= total * 95).then(|| text.to_owned())
}
