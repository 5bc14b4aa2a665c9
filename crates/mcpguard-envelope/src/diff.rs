//! A structural diff of two JSON values, for replay drift reports: one line per change,
//! addressed by JSON pointer.

use serde_json::Value;

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Only in the new value.
    Added {
        /// Where.
        pointer: String,
        /// The new value (JSON).
        value: String,
    },
    /// Only in the old value.
    Removed {
        /// Where.
        pointer: String,
        /// The old value (JSON).
        value: String,
    },
    /// In both, different.
    Changed {
        /// Where.
        pointer: String,
        /// Before (JSON).
        old: String,
        /// After (JSON).
        new: String,
    },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |s: &str| -> String {
            if s.chars().count() > 120 {
                format!("{}…", s.chars().take(120).collect::<String>())
            } else {
                s.to_string()
            }
        };
        match self {
            Change::Added { pointer, value } => write!(f, "+ {pointer}: {}", show(value)),
            Change::Removed { pointer, value } => write!(f, "- {pointer}: {}", show(value)),
            Change::Changed { pointer, old, new } => {
                write!(f, "~ {pointer}: {} -> {}", show(old), show(new))
            }
        }
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The changes from `old` to `new`, in document order.
pub fn diff(old: &Value, new: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk(old, new, String::new(), &mut out);
    out
}

fn walk(old: &Value, new: &Value, at: String, out: &mut Vec<Change>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                let p = format!("{at}/{}", escape(k));
                match b.get(k) {
                    Some(vb) => walk(va, vb, p, out),
                    None => out.push(Change::Removed {
                        pointer: p,
                        value: va.to_string(),
                    }),
                }
            }
            for (k, vb) in b {
                if !a.contains_key(k) {
                    out.push(Change::Added {
                        pointer: format!("{at}/{}", escape(k)),
                        value: vb.to_string(),
                    });
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                let p = format!("{at}/{i}");
                match (a.get(i), b.get(i)) {
                    (Some(va), Some(vb)) => walk(va, vb, p, out),
                    (Some(va), None) => out.push(Change::Removed {
                        pointer: p,
                        value: va.to_string(),
                    }),
                    (None, Some(vb)) => out.push(Change::Added {
                        pointer: p,
                        value: vb.to_string(),
                    }),
                    (None, None) => {}
                }
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(Change::Changed {
            pointer: if at.is_empty() { "/".into() } else { at },
            old: a.to_string(),
            new: b.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_are_addressed_by_json_pointer() {
        let old = json!({"content": [{"type": "text", "text": "a"}], "isError": false, "x/y": 1});
        let new = json!({"content": [{"type": "text", "text": "b"}, {"type": "text", "text": "c"}], "x/y": 1, "z": null});
        let lines: Vec<String> = diff(&old, &new).iter().map(|c| c.to_string()).collect();
        assert_eq!(
            lines,
            vec![
                "~ /content/0/text: \"a\" -> \"b\"",
                "+ /content/1: {\"text\":\"c\",\"type\":\"text\"}",
                "- /isError: false",
                "+ /z: null",
            ]
        );
        assert!(diff(&old, &old).is_empty());
        assert_eq!(
            diff(&json!(1), &json!("1"))[0].to_string(),
            "~ /: 1 -> \"1\""
        );
    }
}
