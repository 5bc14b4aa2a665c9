//! Masking findings inside a JSON document, keeping it the same shape: only string
//! values change, so an MCP result stays valid (text content, `structuredContent`).

use std::collections::HashMap;

use crate::walk::{PathSeg, render_path};
use crate::{Finding, ScanError};

/// How a finding is masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Redaction {
    /// `[REDACTED:secret.aws_access_key]`.
    #[default]
    Full,
    /// All but the last four characters masked with `*` (`************1111`).
    Partial,
    /// `[REDACTED:pii.email:hmac-sha256:…]`: the keyed digest, so equal values stay
    /// recognisable without being readable.
    Hash,
}

fn mask(finding: &Finding, value: &str, how: Redaction) -> String {
    match how {
        Redaction::Full => format!("[REDACTED:{}]", finding.kind),
        Redaction::Hash => format!("[REDACTED:{}:{}]", finding.kind, &finding.digest),
        Redaction::Partial => {
            let chars: Vec<char> = value.chars().collect();
            let keep = if chars.len() > 8 { 4 } else { 0 };
            let mut out: String = "*".repeat(chars.len() - keep);
            out.extend(&chars[chars.len() - keep..]);
            out
        }
    }
}

/// `json` with each finding masked: a finding with a span is masked in place, one found
/// only in a decoded or joined reading masks its whole string.
pub fn redact_json(json: &str, findings: &[(&Finding, Redaction)]) -> Result<String, ScanError> {
    let mut value: serde_json::Value = serde_json::from_str(json).map_err(|e| ScanError::Json {
        line: e.line(),
        column: e.column(),
        reason: e.to_string(),
    })?;
    let mut by_location: HashMap<&str, Vec<(&Finding, Redaction)>> = HashMap::new();
    for (f, how) in findings {
        by_location
            .entry(f.location.as_str())
            .or_default()
            .push((f, *how));
    }
    let mut path = Vec::new();
    apply(&mut value, &mut path, &by_location, &mut false);
    Ok(value.to_string())
}

fn apply(
    value: &mut serde_json::Value,
    path: &mut Vec<PathSeg>,
    by_location: &HashMap<&str, Vec<(&Finding, Redaction)>>,
    changed: &mut bool,
) {
    match value {
        serde_json::Value::String(s) => {
            let here = render_path(path);
            let Some(findings) = by_location.get(here.as_str()) else {
                return;
            };
            // Whole-string masks first (a decoded reading has no span).
            if let Some((f, how)) = findings.iter().find(|(f, _)| f.span.is_none()) {
                *s = mask(f, s, *how);
                *changed = true;
                return;
            }
            let mut spans: Vec<(usize, usize, &Finding, Redaction)> = findings
                .iter()
                .filter_map(|(f, how)| f.span.map(|(a, b)| (a, b, *f, *how)))
                .filter(|(a, b, _, _)| {
                    *b <= s.len() && s.is_char_boundary(*a) && s.is_char_boundary(*b)
                })
                .collect();
            spans.sort_by_key(|(a, _, _, _)| std::cmp::Reverse(*a));
            let mut last_start = usize::MAX;
            for (a, b, f, how) in spans {
                if b > last_start {
                    continue;
                }
                let masked = mask(f, &s[a..b], how);
                s.replace_range(a..b, &masked);
                last_start = a;
                *changed = true;
            }
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(PathSeg::Index(i));
                apply(item, path, by_location, changed);
                path.pop();
            }
        }
        serde_json::Value::Object(map) => {
            // Joined findings belong to the container: mask every short string in it.
            let here = render_path(path);
            if let Some((f, how)) = by_location.get(here.as_str()).and_then(|fs| {
                fs.iter()
                    .find(|(f, _)| f.encoding.as_deref() == Some("joined"))
            }) {
                for v in map.values_mut() {
                    if let serde_json::Value::String(s) = v {
                        *s = mask(f, s, *how);
                    }
                }
                *changed = true;
            }
            for (k, v) in map.iter_mut() {
                path.push(PathSeg::Key(k.clone()));
                apply(v, path, by_location, changed);
                path.pop();
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::{Detector, DigestKey, Limits};

    fn redacted(json: &str, how: Redaction) -> String {
        let d = Detector::new(DigestKey::new([5; 32]), Limits::default()).unwrap();
        let findings = d.scan_json_occurrences(json).unwrap();
        let pairs: Vec<(&Finding, Redaction)> = findings.iter().map(|f| (f, how)).collect();
        redact_json(json, &pairs).unwrap()
    }

    #[test]
    fn masks_in_place_and_keeps_the_shape() {
        let result = r#"{"content":[{"type":"text","text":"ssn 078-05-1120, card 4111 1111 1111 1111."}],"structuredContent":{"card":"4111111111111111"},"isError":false}"#;
        let out: serde_json::Value =
            serde_json::from_str(&redacted(result, Redaction::Full)).unwrap();
        assert_eq!(
            out["content"][0]["text"],
            "ssn [REDACTED:pii.ssn], card [REDACTED:pii.credit_card]."
        );
        assert_eq!(out["content"][0]["type"], "text");
        assert_eq!(
            out["structuredContent"]["card"],
            "[REDACTED:pii.credit_card]"
        );
        assert_eq!(out["isError"], false);
        let partial: serde_json::Value =
            serde_json::from_str(&redacted(result, Redaction::Partial)).unwrap();
        assert_eq!(partial["structuredContent"]["card"], "************1111");
        let hashed = redacted(result, Redaction::Hash);
        assert!(
            hashed.contains("[REDACTED:pii.ssn:hmac-sha256:"),
            "{hashed}"
        );
        assert!(!hashed.contains("078-05-1120"));
    }

    #[test]
    fn hidden_values_mask_the_whole_string() {
        let b64 = "QUtJQVEzWlJUN1dYMllVVjRBQkM="; // base64 of an AWS key id
        let out = redacted(
            &format!(r#"{{"body":"{b64}","other":"fine"}}"#),
            Redaction::Full,
        );
        assert_eq!(
            out,
            r#"{"body":"[REDACTED:secret.aws_access_key]","other":"fine"}"#
        );
        let key = ["AKIAQ3ZR", "T7WX2YUV4ABC"];
        let out = redacted(
            &format!(r#"{{"a":"{}","b":"{}"}}"#, key[0], key[1]),
            Redaction::Full,
        );
        assert!(!out.contains(key[0]) && !out.contains(key[1]), "{out}");
    }
}
