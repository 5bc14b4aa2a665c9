//! Validators that turn a pattern match into a finding: checksums, ranges, structure,
//! entropy and placeholder checks. All pure functions over the matched text.

use base64::Engine;

/// True when the digits of `text` (other characters ignored) pass the Luhn check.
pub fn luhn(text: &str) -> bool {
    let digits: Vec<u32> = text.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() < 2 {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// True when a 13–19 digit number belongs to a card issuer's range (Visa, Mastercard,
/// American Express, Discover, JCB, Diners Club, UnionPay) with that issuer's length.
pub fn card_issuer(digits: &str) -> bool {
    let len = digits.len();
    let prefix = |n: usize| {
        digits
            .get(..n)
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(0)
    };
    match digits.as_bytes().first() {
        Some(b'4') => matches!(len, 13 | 16 | 19),
        Some(b'5') => (51..=55).contains(&prefix(2)) && len == 16,
        Some(b'2') => (2221..=2720).contains(&prefix(4)) && len == 16,
        Some(b'3') => {
            let p2 = prefix(2);
            ((p2 == 34 || p2 == 37) && len == 15)
                || ((3528..=3589).contains(&prefix(4)) && (16..=19).contains(&len))
                || ((300..=305).contains(&prefix(3)) || p2 == 36 || p2 == 38) && len == 14
        }
        Some(b'6') => {
            (prefix(4) == 6011 || prefix(2) == 65 || (644..=649).contains(&prefix(3)))
                && (16..=19).contains(&len)
                || prefix(2) == 62 && (16..=19).contains(&len)
        }
        _ => false,
    }
}

/// True for a US Social Security number outside the never-issued ranges: area 000, 666
/// and 900–999, group 00, serial 0000 (SSA rules).
pub fn ssn(area: &str, group: &str, serial: &str) -> bool {
    let (Ok(a), Ok(g), Ok(s)) = (
        area.parse::<u32>(),
        group.parse::<u32>(),
        serial.parse::<u32>(),
    ) else {
        return false;
    };
    area.len() == 3
        && group.len() == 2
        && serial.len() == 4
        && a != 0
        && a != 666
        && a < 900
        && g != 0
        && s != 0
}

/// IBAN lengths by country (ISO 13616 registry).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NL", 18),
    ("NO", 15),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SC", 31),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
];

/// True for an IBAN (spaces ignored) with its country's length and a valid mod-97 check.
pub fn iban(text: &str) -> bool {
    let compact: Vec<u8> = text.bytes().filter(|b| *b != b' ').collect();
    let Some(country) = compact.get(..2).and_then(|c| std::str::from_utf8(c).ok()) else {
        return false;
    };
    let Some(&(_, len)) = IBAN_LENGTHS.iter().find(|(c, _)| *c == country) else {
        return false;
    };
    if compact.len() != len || !compact.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let mut remainder: u32 = 0;
    for &b in compact[4..].iter().chain(&compact[..4]) {
        let value = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}

/// True when `token` is a structurally valid JWT: a base64url JSON header naming an
/// algorithm, a base64url JSON object payload, and a base64url signature (empty only for
/// `alg: none`).
pub fn jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let decode = |part: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
    };
    let Some(header) = decode(header) else {
        return false;
    };
    let Some(alg) = header.get("alg").and_then(|a| a.as_str()) else {
        return false;
    };
    if !decode(payload).is_some_and(|p| p.is_object()) {
        return false;
    }
    signature.is_empty() == alg.eq_ignore_ascii_case("none")
}

/// Shannon entropy of `text`, in bits per character.
pub fn entropy(text: &str) -> f64 {
    let mut counts = [0u32; 256];
    let mut total = 0u32;
    for b in text.bytes() {
        counts[usize::from(b)] += 1;
        total += 1;
    }
    if total == 0 {
        return 0.0;
    }
    let total = f64::from(total);
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / total;
            -p * p.log2()
        })
        .sum()
}

/// How many of lower case, upper case, digits and symbols `text` uses.
pub fn char_classes(text: &str) -> usize {
    let mut classes = [false; 4];
    for b in text.bytes() {
        let i = match b {
            b'a'..=b'z' => 0,
            b'A'..=b'Z' => 1,
            b'0'..=b'9' => 2,
            _ => 3,
        };
        classes[i] = true;
    }
    classes.iter().filter(|c| **c).count()
}

/// True for values that stand in for a secret rather than being one: template variables,
/// angle-bracket hints, masks and well-known dummies.
pub fn placeholder(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    lower.is_empty()
        || lower.starts_with("${")
        || lower.starts_with("{{")
        || lower.starts_with('<')
        || lower.starts_with('$')
        || lower.starts_with("%(")
        || lower.contains("xxxx")
        || lower.contains("****")
        || lower.contains("....")
        || lower.contains("your")
        || lower.contains("example")
        || lower.contains("placeholder")
        || lower.contains("changeme")
        || lower.contains("redacted")
        || value.bytes().all(|b| b == value.as_bytes()[0])
}

/// True when one character makes up so much of `text` that it is a mask or filler
/// (`ghp_xxxxxxxx…`, `sk_live_000000…`), not a credential.
pub fn low_variety(text: &str) -> bool {
    if text.len() < 16 {
        return false;
    }
    let mut counts = [0usize; 256];
    for b in text.bytes() {
        counts[usize::from(b)] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(0);
    top * 10 > text.len() * 4
}

/// True for references to where a secret lives rather than the secret:
/// `process.env.API_KEY`, `os.environ["X"]`, `config.db.password`.
pub fn reference(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    if [
        "process.env",
        "os.environ",
        "getenv",
        "env.",
        "secrets.",
        "vault:",
        "ssm:",
        "arn:aws:",
    ]
    .iter()
    .any(|p| lower.contains(p))
    {
        return true;
    }
    // A dotted path of identifiers.
    value.contains('.')
        && value.split('.').all(|part| {
            !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !part.as_bytes()[0].is_ascii_digit()
        })
}

/// True when `value` looks like a random secret: long enough, varied, not a placeholder,
/// not a plain word, path, URL, digest or UUID.
pub fn random_secret(value: &str) -> bool {
    // Cheapest checks first: this runs on every string that has a secret-like name.
    let len = value.len();
    if !(8..=512).contains(&len)
        || value
            .bytes()
            .any(|b| b.is_ascii_whitespace() || !b.is_ascii_graphic())
    {
        return false;
    }
    if value.contains("://") || value.starts_with('/') || value.starts_with("./") {
        return false;
    }
    if low_variety(value) || placeholder(value) || reference(value) {
        return false;
    }
    let classes = char_classes(value);
    let h = entropy(value);
    match len {
        8..=11 => classes >= 3 && h >= 2.8,
        12..=19 => classes >= 2 && h >= 3.0,
        _ => classes >= 2 && h >= 3.3,
    }
}

#[cfg(test)]
mod tests;
