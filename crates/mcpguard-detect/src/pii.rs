//! Personal-data scanners that are driven by the shape of numbers and addresses rather
//! than by a literal anchor: SSN, payment cards, IBAN, phone numbers, IP addresses and
//! e-mail addresses. Each candidate is validated (ranges, Luhn, mod-97, parsing).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::catalog::Label;
use crate::profile::Profile;
use crate::scan::Hit;
use crate::validate;

/// The personal-data detectors: `(detector id, type)`.
pub static PII_DETECTORS: &[(&str, &str)] = &[
    ("ssn", "pii.ssn"),
    ("credit_card", "pii.credit_card"),
    ("iban", "pii.iban"),
    ("email", "pii.email"),
    ("phone", "pii.phone"),
    ("ipv4", "pii.ip_address"),
    ("ipv6", "pii.ip_address"),
];

fn hit(
    start: usize,
    end: usize,
    detector: &'static str,
    kind: &'static str,
    confidence: f32,
) -> Hit {
    Hit {
        start,
        end,
        detector,
        kind,
        label: Label::Pii,
        confidence,
    }
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Finds personal data in `text` (whose byte kinds are `profile`), appending to `out`.
pub(crate) fn scan(text: &str, profile: Profile, out: &mut Vec<Hit>) {
    let bytes = text.as_bytes();
    if profile.has(Profile::DIGIT) {
        numbers(bytes, out);
    }
    if profile.has(Profile::AT) {
        emails(bytes, out);
    }
    if profile.has(Profile::COLON) {
        ipv6(text, out);
    }
}

/// Bytes that can begin a number token.
fn may_start_number(c: u8) -> bool {
    c.is_ascii_digit() || c == b'+' || c == b'('
}

/// The first index at or after `from` whose byte may begin a number, or `b.len()`.
fn next_number_start(b: &[u8], mut from: usize) -> usize {
    // Sixteen bytes at a time, without branching per byte (the compiler vectorises
    // the fold): most text has long stretches without a digit.
    const LANES: usize = 16;
    while let Some(chunk) = b.get(from..).and_then(|rest| rest.first_chunk::<LANES>()) {
        if chunk
            .iter()
            .fold(false, |any, &c| any | may_start_number(c))
        {
            break;
        }
        from += LANES;
    }
    while from < b.len() && !may_start_number(b[from]) {
        from += 1;
    }
    from
}

/// Numbers: SSN, cards, phones, IPv4, and IBANs (letters then digits).
fn numbers(b: &[u8], out: &mut Vec<Hit>) {
    let mut i = 0;
    loop {
        i = next_number_start(b, i);
        let Some(&c) = b.get(i) else { break };
        let starts_number = c.is_ascii_digit()
            || (c == b'+' || c == b'(') && b.get(i + 1).is_some_and(u8::is_ascii_digit);
        if !starts_number {
            i += 1;
            continue;
        }
        if i > 0 && (is_word(b[i - 1]) || b[i - 1] == b'.' || b[i - 1] == b'-') {
            // Digits inside a word: maybe an IBAN ("DE89 3704…"), otherwise skip the word.
            if c.is_ascii_digit()
                && i >= 2
                && let Some(end) = iban_at(b, i - 2)
            {
                out.push(hit(i - 2, end, "iban", "pii.iban", 0.95));
                i = end;
                continue;
            }
            i += 1;
            while i < b.len() && (is_word(b[i]) || b[i] == b'.' || b[i] == b'-') {
                i += 1;
            }
            continue;
        }
        let end = number_token_end(b, i);
        if end < b.len() && (is_word(b[end]) || b[end] == b'@') {
            i = end + 1;
            while i < b.len() && is_word(b[i]) {
                i += 1;
            }
            continue;
        }
        if let Some(h) = classify_number(&b[i..end], i)
            && !(h.detector == "ipv4" && after_version_word(b, i))
        {
            out.push(h);
        }
        i = end.max(i + 1);
    }
}

/// True when the text just before `at` names a version (`Version: 1.2.3.4`, `v1.2.3.4`).
fn after_version_word(b: &[u8], at: usize) -> bool {
    let from = at.saturating_sub(16);
    let before = String::from_utf8_lossy(&b[from..at]).to_ascii_lowercase();
    let trimmed = before.trim_end_matches([' ', ':', '=', '"', '\'', '\t']);
    trimmed.ends_with("version")
        || trimmed.ends_with("ver")
        || trimmed.ends_with('v')
        || trimmed.ends_with("release")
}

/// The end of a number token: digit groups joined by single separators.
fn number_token_end(b: &[u8], start: usize) -> usize {
    let mut j = start;
    if b[j] == b'+' || b[j] == b'(' {
        j += 1;
    }
    loop {
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        // A separator (or ") " / ")") followed by a digit continues the token.
        let sep_len = match (b.get(j), b.get(j + 1)) {
            (Some(b')'), Some(b' ' | b'-')) => 2,
            (Some(b' ' | b'-' | b'.' | b')'), _) => 1,
            _ => 0,
        };
        if sep_len == 0 || !b.get(j + sep_len).is_some_and(u8::is_ascii_digit) {
            return j;
        }
        j += sep_len;
    }
}

/// Most digit groups a number token may have and still be personal data (a card in
/// groups of four has five at most; a phone number six).
const MAX_GROUPS: usize = 8;
/// Most digits a number token may have and still be personal data (a 19-digit card).
const MAX_DIGITS: usize = 19;
/// Shortest number token that can be personal data (`1.2.3.4`).
const MIN_TOKEN: usize = 7;
/// Longest number token that can still be personal data: the digits, a separator of at
/// most two bytes (`) `) between groups, and a leading `+` or `(`.
const MAX_TOKEN: usize = MAX_DIGITS + 2 * (MAX_GROUPS - 1) + 1;

/// The shape of a number token, read in one pass without allocating: its digit groups,
/// its digits run together, and the separators between them.
struct NumberShape<'t> {
    text: &'t str,
    /// `(start, len)` of each digit group within `text` (which is at most `MAX_TOKEN`
    /// bytes long).
    groups: [(u8, u8); MAX_GROUPS],
    group_count: usize,
    digits: [u8; MAX_DIGITS],
    digit_count: usize,
    /// The first separator seen, and whether every separator equals it.
    first_sep: Option<u8>,
    uniform: bool,
    /// Which separators occur: bit per `SEPARATORS` entry.
    seps: u8,
}

/// The separators a number token can hold (see `number_token_end`).
const SEPARATORS: &[u8] = b".- ()+";

fn sep_bit(c: u8) -> u8 {
    SEPARATORS
        .iter()
        .position(|s| *s == c)
        .map_or(0x80, |at| 1 << at)
}

impl<'t> NumberShape<'t> {
    /// `None` when the token has more groups or digits than any personal number.
    fn read(text: &'t str) -> Option<NumberShape<'t>> {
        if !(MIN_TOKEN..=MAX_TOKEN).contains(&text.len()) {
            return None;
        }
        let mut shape = NumberShape {
            text,
            groups: [(0, 0); MAX_GROUPS],
            group_count: 0,
            digits: [0; MAX_DIGITS],
            digit_count: 0,
            first_sep: None,
            uniform: true,
            seps: 0,
        };
        let mut in_group = false;
        for (at, c) in text.bytes().enumerate() {
            if c.is_ascii_digit() {
                if !in_group {
                    if shape.group_count == MAX_GROUPS {
                        return None;
                    }
                    shape.groups[shape.group_count] = (u8::try_from(at).ok()?, 0);
                    shape.group_count += 1;
                    in_group = true;
                }
                shape.groups[shape.group_count - 1].1 += 1;
                *shape.digits.get_mut(shape.digit_count)? = c;
                shape.digit_count += 1;
            } else {
                in_group = false;
                shape.seps |= sep_bit(c);
                match shape.first_sep {
                    None => shape.first_sep = Some(c),
                    Some(first) => shape.uniform &= first == c,
                }
            }
        }
        Some(shape)
    }

    fn lens(&self) -> impl Iterator<Item = usize> + '_ {
        self.groups[..self.group_count]
            .iter()
            .map(|g| usize::from(g.1))
    }

    fn lens_are(&self, expected: &[usize]) -> bool {
        self.group_count == expected.len() && self.lens().eq(expected.iter().copied())
    }

    fn group(&self, index: usize) -> &'t str {
        let (start, len) = self.groups[index];
        let start = usize::from(start);
        self.text
            .get(start..start + usize::from(len))
            .unwrap_or_default()
    }

    fn digits(&self) -> &str {
        std::str::from_utf8(&self.digits[..self.digit_count]).unwrap_or_default()
    }

    /// True when every separator is one of `allowed` (also when there is none).
    fn only(&self, allowed: &[u8]) -> bool {
        let mask = allowed.iter().fold(0, |m, c| m | sep_bit(*c));
        self.seps & !mask == 0
    }
}

fn classify_number(token: &[u8], offset: usize) -> Option<Hit> {
    if !(MIN_TOKEN..=MAX_TOKEN).contains(&token.len()) {
        return None;
    }
    let text = std::str::from_utf8(token).ok()?;
    let end = offset + token.len();
    let shape = NumberShape::read(text)?;
    let lens = |expected: &[usize]| shape.lens_are(expected);
    let digit_count = shape.digit_count;

    if shape.only(b".") && shape.group_count == 4 && !text.starts_with('+') {
        let ip: Ipv4Addr = text.parse().ok()?;
        let public = !(ip.is_private()
            || ip.is_loopback()
            || ip.is_link_local()
            || ip.is_unspecified()
            || ip.is_broadcast()
            || ip.is_multicast()
            || ip.octets()[0] == 0);
        return public.then(|| hit(offset, end, "ipv4", "pii.ip_address", 0.8));
    }
    if lens(&[3, 2, 4]) && (shape.only(b"-") || shape.only(b" ")) {
        return validate::ssn(shape.group(0), shape.group(1), shape.group(2))
            .then(|| hit(offset, end, "ssn", "pii.ssn", 0.9));
    }
    if (13..=19).contains(&digit_count) && !text.starts_with('+') && !text.starts_with('(') {
        let uniform = shape.uniform && shape.only(b" -");
        let grouping = shape.group_count == 1
            || shape.lens().take(shape.group_count - 1).all(|l| l == 4)
            || lens(&[4, 6, 5])
            || lens(&[4, 6, 4]);
        let digits = shape.digits();
        if uniform && grouping && validate::card_issuer(digits) && validate::luhn(digits) {
            return Some(hit(offset, end, "credit_card", "pii.credit_card", 0.95));
        }
    }
    if text.starts_with('+') {
        let first = shape.digits.first().copied().unwrap_or(b'0');
        let well_grouped =
            shape.group_count == 1 || shape.group_count <= 6 && shape.lens().all(|l| l <= 8);
        return ((8..=15).contains(&digit_count) && first != b'0' && well_grouped)
            .then(|| hit(offset, end, "phone", "pii.phone", 0.85));
    }
    // North American numbers: (415) 555-0132, 415-555-0132, 415.555.0132, 1-415-555-0132.
    let nanp = if lens(&[3, 3, 4]) {
        Some(0)
    } else if lens(&[1, 3, 3, 4]) && shape.group(0) == "1" {
        Some(1)
    } else {
        None
    };
    if let Some(skip) = nanp {
        let area = shape.group(skip).as_bytes();
        let exchange = shape.group(skip + 1).as_bytes();
        let consistent = shape.only(b"-") || shape.only(b".") || text.contains(')');
        if consistent && area[0] >= b'2' && exchange[0] >= b'2' {
            return Some(hit(offset, end, "phone", "pii.phone", 0.8));
        }
    }
    None
}

/// An IBAN starting at `start` (two capital letters, two digits, then groups), returning
/// its end when it validates.
fn iban_at(b: &[u8], start: usize) -> Option<usize> {
    if !(b[start].is_ascii_uppercase() && b[start + 1].is_ascii_uppercase()) {
        return None;
    }
    if start > 0 && is_word(b[start - 1]) {
        return None;
    }
    let mut compact = Vec::with_capacity(34);
    let mut j = start;
    let mut last_good = None;
    while j < b.len() && compact.len() < 34 {
        let c = b[j];
        if c.is_ascii_uppercase() || c.is_ascii_digit() {
            compact.push(c);
            j += 1;
            let boundary = j >= b.len() || !is_word(b[j]);
            if boundary
                && compact.len() >= 15
                && validate::iban(std::str::from_utf8(&compact).ok()?)
            {
                last_good = Some(j);
            }
        } else if c == b' ' && b.get(j + 1).is_some_and(|n| n.is_ascii_alphanumeric()) {
            j += 1;
        } else {
            break;
        }
    }
    last_good
}

/// E-mail addresses, found from each `@`.
fn emails(b: &[u8], out: &mut Vec<Hit>) {
    let local_char = |c: u8| c.is_ascii_alphanumeric() || b"._%+-".contains(&c);
    let domain_char = |c: u8| c.is_ascii_alphanumeric() || c == b'.' || c == b'-';
    for at in memchr::memchr_iter(b'@', b) {
        let mut s = at;
        while s > 0 && at - s < 64 && local_char(b[s - 1]) {
            s -= 1;
        }
        if s == at || b[s] == b'.' || (s > 0 && matches!(b[s - 1], b':' | b'/')) {
            continue;
        }
        let mut e = at + 1;
        while e < b.len() && e - at < 255 && domain_char(b[e]) {
            e += 1;
        }
        while e > at + 1 && matches!(b[e - 1], b'.' | b'-') {
            e -= 1;
        }
        let domain = &b[at + 1..e];
        let Some(dot) = domain.iter().rposition(|c| *c == b'.') else {
            continue;
        };
        let tld = &domain[dot + 1..];
        if dot == 0 || tld.len() < 2 || !tld.iter().all(u8::is_ascii_alphabetic) {
            continue;
        }
        out.push(hit(s, e, "email", "pii.email", 0.9));
    }
}

/// IPv6 addresses (global ones; loopback and unspecified are not personal).
fn ipv6(text: &str, out: &mut Vec<Hit>) {
    let b = text.as_bytes();
    let token_char = |c: u8| c.is_ascii_hexdigit() || c == b':' || c == b'.';
    let mut next_free = 0;
    for colon in memchr::memchr_iter(b':', b) {
        if colon < next_free {
            continue;
        }
        let mut s = colon;
        while s > 0 && token_char(b[s - 1]) {
            s -= 1;
        }
        let mut e = colon;
        while e < b.len() && token_char(b[e]) {
            e += 1;
        }
        next_free = e;
        if (s > 0 && is_word(b[s - 1])) || (e < b.len() && is_word(b[e])) {
            continue;
        }
        let token = &text[s..e];
        let colons = token.bytes().filter(|c| *c == b':').count();
        if colons < 2 || !(token.contains("::") || colons == 7) {
            continue;
        }
        let Ok(ip) = token.parse::<Ipv6Addr>() else {
            continue;
        };
        if ip.is_loopback() || ip.is_unspecified() {
            continue;
        }
        out.push(hit(s, e, "ipv6", "pii.ip_address", 0.8));
    }
}
