//! MCPGuard's detectors: secrets (48 provider formats plus name-driven ones), personal
//! data with validators (Luhn, mod-97, SSN ranges, JWT structure, entropy), readings of
//! obfuscated text (base64, hex, URL, HTML, `\u` escapes, Unicode tricks, values split
//! across fields), and the taint ledger that follows sensitive values from one tool's
//! output into another tool's input.
//!
//! Pure: no I/O, no clock. A finding never holds the value it found, only a keyed digest.

mod catalog;
pub mod decode;
mod fingerprint;
mod ledger;
mod pii;
mod profile;
mod redact;
mod scan;
mod tools;
pub mod validate;
mod walk;

use std::collections::HashSet;

pub use catalog::{Label, all_types};
pub use fingerprint::{DigestKey, Fingerprint};
pub use ledger::{Provenance, SharedEntry, TaintFlow, TaintLedger};
pub use redact::{Redaction, redact_json};
pub use scan::BuildError;
pub use tools::{Indicator, ToolReport, indicators_in, inspect_tool};
pub use walk::{PathSeg, render_path};

use scan::{Engine, Hit};

/// Limits that keep a scan bounded. Exceeding one is an error (fail closed), never a
/// silent partial scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest input, in bytes.
    pub max_bytes: usize,
    /// Deepest JSON nesting.
    pub max_depth: usize,
    /// How many decodings deep to look (base64 of hex of ...).
    pub max_decode_depth: usize,
    /// Most decoded text produced for one input, in bytes.
    pub max_decoded_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_bytes: 16 << 20,
            max_depth: 64,
            max_decode_depth: 2,
            max_decoded_bytes: 32 << 20,
        }
    }
}

/// Why a scan could not finish. The caller must treat the input as unsafe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// The input is larger than [`Limits::max_bytes`].
    #[error("input of {size} bytes is over the scan limit of {limit} bytes")]
    TooLarge {
        /// Input size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// JSON nested deeper than [`Limits::max_depth`].
    #[error("JSON nested deeper than {limit} levels at `{location}`")]
    TooDeep {
        /// The limit.
        limit: usize,
        /// Where.
        location: String,
    },
    /// Decoding produced more than [`Limits::max_decoded_bytes`].
    #[error("decoding obfuscated text produced over {limit} bytes")]
    DecodeBudget {
        /// The limit.
        limit: usize,
    },
    /// A finding could not be masked in place (in a key, a number, or split across an
    /// array).
    #[error("a `{kind}` at `{location}` cannot be masked in place")]
    Unredactable {
        /// The finding's type.
        kind: &'static str,
        /// Where it is.
        location: String,
    },
    /// The input is not JSON.
    #[error("not valid JSON at line {line}, column {column}: {reason}")]
    Json {
        /// Line (1-based).
        line: usize,
        /// Column (1-based).
        column: usize,
        /// What the parser said.
        reason: String,
    },
}

/// One sensitive value found. Holds no part of the value.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Finding {
    /// `secret` or `pii`.
    pub label: Label,
    /// The type, e.g. `secret.aws_access_key`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The detector that found it.
    pub detector: &'static str,
    /// Where: a JSON path (`$.arguments.body`) or `line L, column C` in text.
    pub location: String,
    /// The decodings that revealed it (`base64`, `url+hex`, `joined`), when it was hidden.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// How sure the detector is (0–1).
    pub confidence: f32,
    /// Keyed digest of the value (`hmac-sha256:` + 32 hex digits), for correlation.
    pub digest: String,
    /// Byte range inside the string at `location`, when found in its plain reading.
    #[serde(skip)]
    pub span: Option<(usize, usize)>,
    /// The value's fingerprint, for the taint ledger.
    #[serde(skip)]
    pub fingerprint: Fingerprint,
    /// The fingerprint of the value without separators (spaces, dashes, dots…), when it
    /// has any: a copy with separators added or removed is still the same value.
    #[serde(skip)]
    pub compact: Option<Fingerprint>,
}

/// The compiled detectors with their digest key and limits. Build once, share.
pub struct Detector {
    engine: Engine,
    key: DigestKey,
    limits: Limits,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Detector {
    /// Compiles every detector.
    pub fn new(key: DigestKey, limits: Limits) -> Result<Detector, BuildError> {
        Ok(Detector {
            engine: Engine::new()?,
            key,
            limits,
        })
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The digest key.
    pub fn key(&self) -> &DigestKey {
        &self.key
    }

    /// Scans plain text. Locations are `line L, column C`.
    pub fn scan_text(&self, text: &str) -> Result<Vec<Finding>, ScanError> {
        self.check_size(text)?;
        let mut collector = Collector::new(self);
        collector.string_at(text, None, &|hit: &Hit| line_col(text, hit.start));
        collector.finish()
    }

    /// Scans a JSON document: every key, string and long number, plus the short strings
    /// of each object or array joined. Locations are JSON paths.
    pub fn scan_json(&self, json: &str) -> Result<Vec<Finding>, ScanError> {
        self.check_size(json)?;
        let mut collector = Collector::new(self);
        walk::walk(json, self.limits.max_depth, &mut collector)?;
        collector.finish()
    }

    /// Like [`Detector::scan_json`], but every occurrence is reported, not one per value
    /// (what redaction needs).
    pub fn scan_json_occurrences(&self, json: &str) -> Result<Vec<Finding>, ScanError> {
        self.check_size(json)?;
        let mut collector = Collector::new(self);
        collector.every_occurrence = true;
        walk::walk(json, self.limits.max_depth, &mut collector)?;
        collector.finish()
    }

    fn check_size(&self, input: &str) -> Result<(), ScanError> {
        if input.len() > self.limits.max_bytes {
            return Err(ScanError::TooLarge {
                size: input.len(),
                limit: self.limits.max_bytes,
            });
        }
        Ok(())
    }

    /// The readings of `text` to look at: itself, then its decodings up to the depth
    /// limit, with the chain of decodings that produced each.
    fn readings(&self, text: &str, budget: &mut usize) -> Result<Vec<(String, String)>, ScanError> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut frontier: Vec<(String, String)> = decode::views(text)
            .into_iter()
            .map(|v| (v.text, v.how.to_string()))
            .collect();
        for depth in 0..self.limits.max_decode_depth {
            let mut next = Vec::new();
            for (reading, how) in frontier {
                *budget = budget
                    .checked_sub(reading.len())
                    .ok_or(ScanError::DecodeBudget {
                        limit: self.limits.max_decoded_bytes,
                    })?;
                if depth + 1 < self.limits.max_decode_depth {
                    next.extend(
                        decode::views(&reading)
                            .into_iter()
                            .map(|v| (v.text, format!("{how}+{}", v.how))),
                    );
                }
                out.push((reading, how));
            }
            frontier = next;
            if frontier.is_empty() {
                break;
            }
        }
        Ok(out)
    }
}

/// `line L, column C` (1-based; columns in characters) of byte `offset`.
fn line_col(text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.bytes().filter(|b| *b == b'\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}")
}

/// Turns hits into findings, de-duplicated by type and digest.
struct Collector<'d> {
    detector: &'d Detector,
    findings: Vec<Finding>,
    seen: HashSet<(&'static str, [u8; 16])>,
    budget: usize,
    hits: Vec<Hit>,
    error: Option<ScanError>,
    every_occurrence: bool,
}

impl<'d> Collector<'d> {
    fn new(detector: &'d Detector) -> Collector<'d> {
        Collector {
            detector,
            findings: Vec::new(),
            seen: HashSet::new(),
            budget: detector.limits.max_decoded_bytes,
            hits: Vec::new(),
            error: None,
            every_occurrence: false,
        }
    }

    fn finish(self) -> Result<Vec<Finding>, ScanError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.findings),
        }
    }

    fn add(
        &mut self,
        text: &str,
        hit: &Hit,
        location: String,
        encoding: Option<String>,
        plain: bool,
    ) {
        let Some(value) = text.get(hit.start..hit.end) else {
            // Spans always fall on character boundaries; should one not, report the
            // whole string rather than nothing.
            let fingerprint = Fingerprint::of_value(&self.detector.key, hit.kind, text);
            self.push(hit, location, encoding, false, fingerprint);
            return;
        };
        let fingerprint = Fingerprint::of_value(&self.detector.key, hit.kind, value);
        let compact = fingerprint::compact(&self.detector.key, hit.kind, value);
        self.push(hit, location, encoding, plain, fingerprint);
        if let Some(last) = self.findings.last_mut()
            && last.fingerprint == fingerprint
        {
            last.compact = compact;
        }
    }

    fn push(
        &mut self,
        hit: &Hit,
        location: String,
        encoding: Option<String>,
        plain: bool,
        fingerprint: Fingerprint,
    ) {
        if !self.seen.insert((hit.kind, fingerprint.mac)) && !self.every_occurrence {
            return;
        }
        self.findings.push(Finding {
            label: hit.label,
            kind: hit.kind,
            detector: hit.detector,
            location,
            encoding,
            confidence: if plain {
                hit.confidence
            } else {
                hit.confidence * 0.95
            },
            digest: fingerprint.digest(),
            span: plain.then_some((hit.start, hit.end)),
            fingerprint,
            compact: None,
        });
    }

    /// Scans one string and its readings; `locate` names where a plain hit is.
    fn string_at(&mut self, text: &str, name: Option<&str>, locate: &dyn Fn(&Hit) -> String) {
        let engine = &self.detector.engine;
        let mut hits = std::mem::take(&mut self.hits);
        hits.clear();
        engine.scan(text, &mut hits);
        if let Some(name) = name {
            engine.named_value(name, text, &mut hits);
        }
        for hit in &hits {
            self.add(text, hit, locate(hit), None, true);
        }
        let readings = match self.detector.readings(text, &mut self.budget) {
            Ok(readings) => readings,
            Err(e) => {
                self.error.get_or_insert(e);
                Vec::new()
            }
        };
        for (reading, how) in &readings {
            hits.clear();
            engine.scan(reading, &mut hits);
            if let Some(name) = name {
                engine.named_value(name, reading, &mut hits);
            }
            for hit in &hits {
                let location = locate(&Hit {
                    start: 0,
                    ..hit.clone()
                });
                let location = location
                    .split(", column")
                    .next()
                    .unwrap_or_default()
                    .to_string();
                self.add(reading, hit, location, Some(how.clone()), false);
            }
        }
        self.hits = hits;
    }
}

impl walk::Visit for Collector<'_> {
    fn string(&mut self, path: &[PathSeg], name: Option<&str>, value: &str, _is_key: bool) {
        self.string_at(value, name, &|_| render_path(path));
    }

    fn joined(&mut self, path: &[PathSeg], value: &str, cuts: &[usize]) {
        let mut hits = std::mem::take(&mut self.hits);
        hits.clear();
        self.detector.engine.scan(value, &mut hits);
        for hit in hits
            .iter()
            .filter(|h| cuts.iter().any(|c| h.start < *c && *c < h.end))
        {
            self.add(value, hit, render_path(path), Some("joined".into()), false);
        }
        self.hits = hits;
    }
}

#[cfg(test)]
mod tests;
