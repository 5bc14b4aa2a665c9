//! The taint ledger: fingerprints of sensitive values a session has seen in tool
//! outputs, with where they came from, and the check that finds them again in a later
//! call's arguments — verbatim, re-cased, re-encoded (base64, hex, URL, …) or inside a
//! longer string.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::fingerprint::{self, Fingerprint, canonical};
use crate::walk::{self, PathSeg, render_path};
use crate::{Detector, Finding, Label, ScanError};

/// Where a tainted value was first seen.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Provenance {
    /// The tool (or method) whose output held it.
    pub tool: String,
    /// The upstream that served that call.
    pub server: String,
    /// The call's id, as the agent sent it.
    pub call: String,
}

#[derive(Debug, Clone)]
struct Entry {
    kind: &'static str,
    label: Label,
    fingerprint: Fingerprint,
    source: Arc<Provenance>,
}

/// One ledger value as replicas of the gateway exchange it: its type, label, keyed
/// fingerprint and provenance — never the value. Only replicas sharing the digest key
/// can use each other's entries.
///
/// Fields a newer replica adds are ignored, and a label this build does not know counts
/// as `secret`: a rolling upgrade never makes an entry unreadable.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SharedEntry {
    /// The finding's type (`secret.aws_access_key`).
    #[serde(rename = "type")]
    pub kind: String,
    /// `secret` or `pii` (anything else is taken as `secret`).
    pub label: String,
    /// Length of the canonical form.
    pub len: u32,
    /// Keyed rolling hash of the canonical form.
    pub rolling: u64,
    /// The keyed digest (32 hex digits).
    pub mac: String,
    /// Where it was first seen.
    pub source: Provenance,
}

impl SharedEntry {
    /// What identifies the value: its length, rolling hash and digest.
    pub fn fingerprint_id(&self) -> String {
        format!("{}:{}:{}", self.len, self.rolling, self.mac)
    }
}

/// The catalogue's type name for `kind`; types this build does not know (a newer
/// replica's) are kept as `unknown` rather than dropped: more taint, never less.
fn static_kind(kind: &str) -> &'static str {
    static KINDS: std::sync::OnceLock<std::collections::HashSet<&'static str>> =
        std::sync::OnceLock::new();
    let kinds = KINDS.get_or_init(|| crate::all_types().into_iter().map(|(_, k)| k).collect());
    kinds.get(kind).copied().unwrap_or("unknown")
}

/// A sensitive value from an earlier output found in a new call.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TaintFlow {
    /// `secret` or `pii`.
    pub label: Label,
    /// The type it had when first seen.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Where it came from.
    pub source: Arc<Provenance>,
    /// Where in the new call's JSON it is.
    pub location: String,
    /// The decodings that revealed it, when re-encoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// Its digest.
    pub digest: String,
}

/// Values shorter than this are not followed (too many accidental matches).
pub const MIN_TRACKED_LEN: usize = 6;

/// A session's taint ledger: bounded, oldest entries leave first.
#[derive(Debug, Clone, Default)]
pub struct TaintLedger {
    entries: VecDeque<Entry>,
    capacity: usize,
    /// length → rolling hash → entry count (to know which windows to confirm).
    index: HashMap<u32, HashMap<u64, usize>>,
}

impl TaintLedger {
    /// An empty ledger holding up to `capacity` values.
    pub fn new(capacity: usize) -> TaintLedger {
        TaintLedger {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
            index: HashMap::new(),
        }
    }

    /// Number of values held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records the findings of one output.
    pub fn record(&mut self, findings: &[Finding], source: Provenance) {
        let source = Arc::new(source);
        let prints = findings
            .iter()
            .flat_map(|f| std::iter::once((f, f.fingerprint)).chain(f.compact.map(|c| (f, c))));
        for (finding, fp) in prints {
            self.insert(Entry {
                kind: finding.kind,
                label: finding.label,
                fingerprint: fp,
                source: source.clone(),
            });
        }
    }

    /// What [`record`](Self::record) would remember of these findings, in the form
    /// replicas exchange.
    pub fn shareable(findings: &[Finding], source: &Provenance) -> Vec<SharedEntry> {
        findings
            .iter()
            .flat_map(|f| std::iter::once((f, f.fingerprint)).chain(f.compact.map(|c| (f, c))))
            .filter(|(_, fp)| fp.len as usize >= MIN_TRACKED_LEN)
            .map(|(f, fp)| SharedEntry {
                kind: f.kind.to_string(),
                label: f.label.as_str().to_string(),
                len: fp.len,
                rolling: fp.rolling,
                mac: hex_of(&fp.mac),
                source: source.clone(),
            })
            .collect()
    }

    /// Remembers entries another replica recorded. An entry whose digest is not 32 hex
    /// digits is refused (the count of refused entries is returned).
    pub fn import(&mut self, entries: impl IntoIterator<Item = SharedEntry>) -> usize {
        let mut refused = 0;
        for entry in entries {
            let Some(mac) = mac_of(&entry.mac) else {
                refused += 1;
                continue;
            };
            self.insert(Entry {
                kind: static_kind(&entry.kind),
                label: if entry.label == Label::Pii.as_str() {
                    Label::Pii
                } else {
                    Label::Secret
                },
                fingerprint: Fingerprint {
                    len: entry.len,
                    rolling: entry.rolling,
                    mac,
                },
                source: Arc::new(entry.source),
            });
        }
        refused
    }

    fn insert(&mut self, entry: Entry) {
        let fp = entry.fingerprint;
        // The index says whether a value of this length and rolling hash is held at all:
        // only then look for it.
        let indexed = self
            .index
            .get(&fp.len)
            .is_some_and(|by_hash| by_hash.contains_key(&fp.rolling));
        if (fp.len as usize) < MIN_TRACKED_LEN
            || (indexed && self.entries.iter().any(|e| e.fingerprint == fp))
        {
            return;
        }
        if self.entries.len() == self.capacity
            && let Some(old) = self.entries.pop_front()
        {
            self.unindex(&old);
        }
        *self
            .index
            .entry(fp.len)
            .or_default()
            .entry(fp.rolling)
            .or_default() += 1;
        self.entries.push_back(entry);
    }

    fn unindex(&mut self, entry: &Entry) {
        if let Some(by_hash) = self.index.get_mut(&entry.fingerprint.len) {
            if let Some(count) = by_hash.get_mut(&entry.fingerprint.rolling) {
                *count -= 1;
                if *count == 0 {
                    by_hash.remove(&entry.fingerprint.rolling);
                }
            }
            if by_hash.is_empty() {
                self.index.remove(&entry.fingerprint.len);
            }
        }
    }

    /// Finds values of this ledger in the JSON document `json` (a call's arguments).
    pub fn flows(&self, detector: &Detector, json: &str) -> Result<Vec<TaintFlow>, ScanError> {
        if self.entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut search = Search {
            ledger: self,
            detector,
            flows: Vec::new(),
            budget: detector.limits().max_decoded_bytes,
            error: None,
        };
        walk::walk(json, detector.limits().max_depth, &mut search)?;
        match search.error {
            Some(e) => Err(e),
            None => Ok(search.flows),
        }
    }

    /// The fingerprints of the values of `text` that are in the ledger.
    fn find_in(&self, detector: &Detector, text: &str, mut found: impl FnMut(&Entry)) {
        let key = detector.key();
        let lower: Vec<u8> = canonical("", text);
        let has_separator = lower.iter().any(|b| fingerprint::is_separator(*b));
        let compact: Option<Vec<u8>> = has_separator.then(|| {
            lower
                .iter()
                .copied()
                .filter(|b| !fingerprint::is_separator(*b))
                .collect()
        });
        for (len, by_hash) in &self.index {
            for candidate in std::iter::once(&lower).chain(compact.as_ref()) {
                let mut starts = Vec::new();
                fingerprint::windows(
                    key,
                    candidate,
                    *len as usize,
                    &|h| by_hash.contains_key(&h),
                    &mut |s| starts.push(s),
                );
                for start in starts {
                    let window = &candidate[start..start + *len as usize];
                    let fp = Fingerprint::of_canonical(key, window);
                    for entry in self.entries.iter().filter(|e| e.fingerprint == fp) {
                        found(entry);
                    }
                }
            }
        }
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn mac_of(text: &str) -> Option<[u8; 16]> {
    if text.len() != 32 || !text.is_ascii() {
        return None;
    }
    let mut mac = [0u8; 16];
    for (i, byte) in mac.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(mac)
}

struct Search<'l> {
    ledger: &'l TaintLedger,
    detector: &'l Detector,
    flows: Vec<TaintFlow>,
    budget: usize,
    error: Option<ScanError>,
}

impl Search<'_> {
    fn check(&mut self, path: &[PathSeg], text: &str, encoding: Option<String>) {
        let mut hits: Vec<Entry> = Vec::new();
        self.ledger
            .find_in(self.detector, text, |e| hits.push(e.clone()));
        for entry in hits {
            if self
                .flows
                .iter()
                .any(|f| f.digest == entry.fingerprint.digest() && f.source == entry.source)
            {
                continue;
            }
            self.flows.push(TaintFlow {
                label: entry.label,
                kind: entry.kind,
                source: entry.source.clone(),
                location: render_path(path),
                encoding: encoding.clone(),
                digest: entry.fingerprint.digest(),
            });
        }
    }
}

impl walk::Visit for Search<'_> {
    fn string(&mut self, path: &[PathSeg], _name: Option<&str>, value: &str, _is_key: bool) {
        self.check(path, value, None);
        match self.detector.readings(value, &mut self.budget) {
            Ok(readings) => {
                for (reading, how) in readings {
                    self.check(path, &reading, Some(how));
                }
            }
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
    }

    fn joined(&mut self, path: &[PathSeg], value: &str, _cuts: &[usize]) {
        self.check(path, value, Some("joined".into()));
    }
}
