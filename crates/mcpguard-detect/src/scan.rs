//! Scanning one piece of text: anchored patterns, personal-data shapes, and
//! `name = value` assignments. Returns spans; the caller turns them into findings.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use memchr::memmem;
use regex_automata::{Input, meta::Regex};

use crate::catalog::{KEYED_RULES, KeyedRule, Label, PATTERN_RULES, PatternRule, SquashedName};
use crate::pii;
use crate::profile::Profile;

/// A match inside one text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Hit {
    pub start: usize,
    pub end: usize,
    pub detector: &'static str,
    pub kind: &'static str,
    pub label: Label,
    pub confidence: f32,
}

/// Name fragments that start an assignment scan in plain text (case-insensitive).
const NAME_ANCHORS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "api-key",
    "apikey",
    "access_key",
    "accesskey",
    "access-key",
    "private_key",
    "privatekey",
    "credential",
    "auth_key",
    "authkey",
    "bearer",
    "ssn",
    "social_security",
    "connection_string",
    "connectionstring",
    "signing_key",
    "encryption_key",
    "master_key",
    "session_key",
    "client_key",
];

/// The AWS CLI's name for a secret key, which it takes after a space
/// (`aws configure set aws_secret_access_key …`).
const AWS_SECRET_KEY_NAME: &[u8] = b"secret_access_key";

/// Most pattern rules the scanner tracks (a fixed array per scan).
const MAX_PATTERN_RULES: usize = 64;

/// Longest span a pattern may cover after its anchor.
const MAX_MATCH: usize = 40_000;

/// Rules are searched in tiers by their shortest anchor: a vectorised multi-literal
/// search (Teddy) fingerprints as many leading bytes as its shortest literal has (at most
/// four), so one two-byte anchor among sixty would make every search match on two-byte
/// fingerprints and verify candidates all the time. A rule's tier is the first whose
/// length its shortest anchor reaches.
const TIER_MIN_LEN: &[usize] = &[4, 3, 0];

/// Texts shorter than this are searched for all anchors at once with a plain automaton:
/// the vectorised search needs a few dozen bytes to start, and below that falls back to
/// a slower hashing search once per tier. The same threshold as byte profiles, so that
/// one padding in the tests crosses both.
const SHORT_TEXT: usize = crate::profile::PROFILED_LEN;

/// The compiled detectors.
pub(crate) struct Engine {
    tiers: Vec<AnchorTier>,
    /// Every rule's anchors in one automaton, for short texts.
    all_anchors: AnchorTier,
    regexes: Vec<Regex>,
    /// The shortest text any pattern rule can match.
    shortest_match: usize,
    names: AhoCorasick,
    /// Literals that end a candidate name in plain text (see `assignments`).
    to_word: memmem::Finder<'static>,
    flag_dashes: memmem::Finder<'static>,
    aws_secret_key: memmem::Finder<'static>,
}

/// The anchors of the rules of one tier, searched together.
struct AnchorTier {
    anchors: AhoCorasick,
    /// For each anchor pattern, the rules it starts.
    anchor_rules: Vec<Vec<usize>>,
}

/// A detector failed to compile (a bug in the catalogue; tests catch it).
#[derive(Debug, thiserror::Error)]
#[error("detector `{detector}` does not compile: {reason}")]
pub struct BuildError {
    /// The detector.
    pub detector: String,
    /// Why.
    pub reason: String,
}

impl Engine {
    pub(crate) fn new() -> Result<Engine, BuildError> {
        if PATTERN_RULES.len() > MAX_PATTERN_RULES {
            return Err(BuildError {
                detector: "catalogue".into(),
                reason: format!(
                    "more than {MAX_PATTERN_RULES} pattern rules; raise MAX_PATTERN_RULES"
                ),
            });
        }
        let mut regexes = Vec::with_capacity(PATTERN_RULES.len());
        let mut shortest_match = usize::MAX;
        let syntax = regex_automata::util::syntax::Config::new()
            .unicode(false)
            .utf8(false);
        for rule in PATTERN_RULES {
            let failed = |reason: String| BuildError {
                detector: rule.detector.into(),
                reason,
            };
            let regex = Regex::builder()
                .syntax(syntax)
                .build(rule.pattern)
                .map_err(|e| failed(e.to_string()))?;
            let hir = regex_automata::util::syntax::parse_with(rule.pattern, &syntax)
                .map_err(|e| failed(e.to_string()))?;
            shortest_match = shortest_match.min(hir.properties().minimum_len().unwrap_or(0));
            regexes.push(regex);
        }
        let tier_of = |rule: &PatternRule| {
            let shortest = rule.anchors.iter().map(|a| a.len()).min().unwrap_or(0);
            TIER_MIN_LEN
                .iter()
                .position(|min| shortest >= *min)
                .unwrap_or(TIER_MIN_LEN.len() - 1)
        };
        let mut tiers = Vec::new();
        for tier in 0..TIER_MIN_LEN.len() {
            let rules = PATTERN_RULES
                .iter()
                .enumerate()
                .filter(|(_, rule)| tier_of(rule) == tier);
            if let Some(built) = AnchorTier::new(rules, None)? {
                tiers.push(built);
            }
        }
        let all_anchors =
            AnchorTier::new(PATTERN_RULES.iter().enumerate(), Some(AhoCorasickKind::DFA))?
                .ok_or_else(|| BuildError {
                    detector: "catalogue".into(),
                    reason: "no pattern rules".into(),
                })?;
        let build = |e: aho_corasick::BuildError| BuildError {
            detector: "anchors".into(),
            reason: e.to_string(),
        };
        let names = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(NAME_ANCHORS)
            .map_err(build)?;
        Ok(Engine {
            tiers,
            all_anchors,
            regexes,
            shortest_match,
            names,
            to_word: memmem::Finder::new(b" to "),
            flag_dashes: memmem::Finder::new(b"--"),
            aws_secret_key: memmem::Finder::new(AWS_SECRET_KEY_NAME),
        })
    }

    /// All hits in `text`, overlaps resolved.
    pub(crate) fn scan(&self, text: &str, out: &mut Vec<Hit>) {
        let first = out.len();
        let profile = Profile::of(text);
        if text.len() >= self.shortest_match {
            self.patterns(text, out);
        }
        pii::scan(text, profile, out);
        // Assignments end names at `=`, `:`, ` to `, after `--` or at the AWS name.
        if profile.has(Profile::EQUALS | Profile::COLON | Profile::SPACE | Profile::DASH)
            || text.len() >= AWS_SECRET_KEY_NAME.len()
        {
            self.assignments(text, profile, out);
        }
        resolve_overlaps(out, first);
    }

    fn patterns(&self, text: &str, out: &mut Vec<Hit>) {
        // Per rule, where its last match ended: hits inside it are the same match. A rule
        // belongs to one tier, so its anchors are met in order.
        let mut covered = [0usize; MAX_PATTERN_RULES];
        if text.len() < SHORT_TEXT {
            self.tier_patterns(&self.all_anchors, text, &mut covered, out);
            return;
        }
        for tier in &self.tiers {
            self.tier_patterns(tier, text, &mut covered, out);
        }
    }

    fn tier_patterns(
        &self,
        tier: &AnchorTier,
        text: &str,
        covered: &mut [usize; MAX_PATTERN_RULES],
        out: &mut Vec<Hit>,
    ) {
        let bytes = text.as_bytes();
        let mut pos = 0;
        // Leftmost-longest search (fast, prefiltered), restarted one byte after each
        // anchor so that anchors overlapping it are still seen.
        while let Some(anchor) = tier
            .anchors
            .find(aho_corasick::Input::new(bytes).range(pos..bytes.len()))
        {
            pos = anchor.start() + 1;
            for &index in &tier.anchor_rules[anchor.pattern().as_usize()] {
                if anchor.start() < covered[index] {
                    continue;
                }
                let rule = &PATTERN_RULES[index];
                let from = anchor.start().saturating_sub(rule.back);
                let to = bytes.len().min(anchor.end() + MAX_MATCH);
                let input = Input::new(bytes).range(from..to);
                for m in self.regexes[index].find_iter(input) {
                    if m.start() > anchor.start() {
                        break;
                    }
                    if m.end() < anchor.end() {
                        continue;
                    }
                    covered[index] = m.end();
                    if rule.bounded
                        && (m.start() > 0 && bytes[m.start() - 1].is_ascii_alphanumeric()
                            || m.end() < bytes.len() && bytes[m.end()].is_ascii_alphanumeric())
                    {
                        break;
                    }
                    // Matching runs on bytes: a match may end inside a multi-byte
                    // character; end it at the character boundary before.
                    let mut end = m.end();
                    while end > m.start() && !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    let Some(matched) = text.get(m.start()..end) else {
                        break;
                    };
                    // Rules with their own validator judge the value themselves; the rest
                    // drop fillers and placeholders (`ghp_xxxx…`, `<your-key>`).
                    let plausible = match rule.validate {
                        Some(check) => check(matched),
                        None => {
                            !crate::validate::low_variety(matched)
                                && !crate::validate::placeholder(matched)
                        }
                    };
                    if plausible {
                        out.push(Hit {
                            start: m.start(),
                            end,
                            detector: rule.detector,
                            kind: rule.kind,
                            label: Label::Secret,
                            confidence: rule.confidence,
                        });
                    }
                    break;
                }
            }
        }
    }

    /// `name = value`, `name: value`, `"name": "value"` in plain text.
    fn assignments(&self, text: &str, profile: Profile, out: &mut Vec<Hit>) {
        let b = text.as_bytes();
        let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.';
        // Candidate names end just before a separator (`=`, `:`, ` to `) or are flags
        // (`--password value`). Finding separators first is far cheaper than looking
        // for every name hint everywhere.
        let mut ends: Vec<usize> = Vec::new();
        for sep in memchr::memchr2_iter(b'=', b':', b) {
            let mut e = sep;
            while e > 0 && (b[e - 1] == b' ' || b[e - 1] == b'\t') {
                e -= 1;
            }
            if e > 0 && matches!(b[e - 1], b'"' | b'\'' | b'`') {
                e -= 1;
            }
            ends.push(e);
        }
        if profile.has(Profile::SPACE) {
            for at in self.to_word.find_iter(b) {
                let mut e = at;
                if e > 0 && matches!(b[e - 1], b'"' | b'\'' | b'`') {
                    e -= 1;
                }
                ends.push(e);
            }
        }
        if profile.has(Profile::DASH) {
            for at in self.flag_dashes.find_iter(b) {
                let mut e = at + 2;
                while e < b.len() && ident(b[e]) {
                    e += 1;
                }
                ends.push(e);
            }
        }
        for at in self.aws_secret_key.find_iter(b) {
            ends.push(at + AWS_SECRET_KEY_NAME.len());
        }
        ends.sort_unstable();
        ends.dedup();
        let mut next_free = 0;
        for e in ends {
            if e < next_free || e == 0 {
                continue;
            }
            let mut s = e;
            while s > 0 && ident(b[s - 1]) {
                s -= 1;
            }
            if s == e || e - s > 128 {
                continue;
            }
            let Some(name) = text.get(s..e) else { continue };
            if !self.names.is_match(name) {
                continue;
            }
            let flag_style =
                name.starts_with('-') || name.to_ascii_lowercase().ends_with("secret_access_key");
            let Some((value_start, value_end)) = assigned_value(b, e, flag_style) else {
                continue;
            };
            next_free = value_end;
            let Some(value) = text.get(value_start..value_end) else {
                continue;
            };
            if let Some(hit) = keyed(name, value, value_start) {
                out.push(hit);
            }
        }
    }

    /// A string `value` under the name `name` (a JSON member, a header, a variable).
    pub(crate) fn named_value(&self, name: &str, value: &str, out: &mut Vec<Hit>) {
        let trimmed = value.trim();
        let start = value.len() - value.trim_start().len();
        if let Some(hit) = keyed(name, trimmed, start) {
            out.push(hit);
        }
    }
}

impl AnchorTier {
    /// The tier searching the anchors of `rules` (index into `PATTERN_RULES`, rule) with
    /// an automaton of `kind` (the library's choice when `None`); `None` when there are
    /// no rules.
    fn new<'r>(
        rules: impl Iterator<Item = (usize, &'r PatternRule)>,
        kind: Option<AhoCorasickKind>,
    ) -> Result<Option<AnchorTier>, BuildError> {
        let mut literals: Vec<&str> = Vec::new();
        let mut anchor_rules: Vec<Vec<usize>> = Vec::new();
        for (index, rule) in rules {
            for anchor in rule.anchors {
                match literals.iter().position(|l| l == anchor) {
                    Some(at) => anchor_rules[at].push(index),
                    None => {
                        literals.push(anchor);
                        anchor_rules.push(vec![index]);
                    }
                }
            }
        }
        if literals.is_empty() {
            return Ok(None);
        }
        // An anchor that begins with a shorter anchor also starts the shorter one's rules:
        // the search reports only the longest anchor at each position.
        for (i, long) in literals.iter().enumerate() {
            for (j, short) in literals.iter().enumerate() {
                if i != j && long.len() > short.len() && long.starts_with(short) {
                    let extra = anchor_rules[j].clone();
                    anchor_rules[i].extend(extra);
                }
            }
        }
        let anchors = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .kind(kind)
            // A chosen automaton is for short texts, where a prefilter costs more
            // than it saves.
            .prefilter(kind.is_none())
            .build(&literals)
            .map_err(|e| BuildError {
                detector: "anchors".into(),
                reason: e.to_string(),
            })?;
        Ok(Some(AnchorTier {
            anchors,
            anchor_rules,
        }))
    }
}

fn keyed(name: &str, value: &str, offset: usize) -> Option<Hit> {
    // Squashed once, and only when a rule gets as far as the name.
    let mut squashed: Option<SquashedName> = None;
    let mut name_fits = |rule: &KeyedRule| {
        let squashed = squashed.get_or_insert_with(|| SquashedName::new(name));
        (rule.name)(name, squashed.as_str())
    };
    KEYED_RULES
        .iter()
        .find(|rule| {
            if rule.name_first && !name_fits(rule) {
                return false;
            }
            (rule.value)(value) && (rule.name_first || name_fits(rule))
        })
        .map(|rule| Hit {
            start: offset,
            end: offset + value.len(),
            detector: rule.detector,
            kind: rule.kind,
            label: if rule.kind.starts_with("pii.") {
                Label::Pii
            } else {
                Label::Secret
            },
            confidence: rule.confidence,
        })
}

/// After a name ending at `at`: optional closing quote, `:`/`=`/`:=`/`=>`, optional
/// opening quote, then the value up to its quote or the first delimiter.
fn assigned_value(b: &[u8], mut at: usize, space_separates: bool) -> Option<(usize, usize)> {
    let skip_ws = |at: &mut usize| {
        while *at < b.len() && (b[*at] == b' ' || b[*at] == b'\t') {
            *at += 1;
        }
    };
    if at < b.len() && matches!(b[at], b'"' | b'\'' | b'`') {
        at += 1;
    }
    skip_ws(&mut at);
    let spaced = at > 0 && b[at - 1] == b' ';
    // Prose: set `NAME` to `value`.
    if spaced
        && b.get(at..at + 3) == Some(b"to ".as_slice())
        && matches!(b.get(at + 3), Some(b'`' | b'"' | b'\''))
    {
        at += 3;
    } else {
        match (b.get(at), b.get(at + 1)) {
            (Some(b':'), Some(b'=')) | (Some(b'='), Some(b'>')) => at += 2,
            (Some(b':' | b'='), _) => at += 1,
            // `--password hunter2`, `aws configure set aws_secret_access_key …`
            (Some(c), _) if space_separates && spaced && !c.is_ascii_whitespace() => {}
            _ => return None,
        }
    }
    skip_ws(&mut at);
    let quote = match b.get(at) {
        Some(&q @ (b'"' | b'\'' | b'`')) => {
            at += 1;
            Some(q)
        }
        _ => None,
    };
    let start = at;
    let limit = b.len().min(start + 512);
    while at < limit {
        let c = b[at];
        let stop = match quote {
            Some(q) => c == q,
            None => {
                c.is_ascii_whitespace()
                    || matches!(
                        c,
                        b',' | b';' | b'}' | b')' | b'(' | b'[' | b'&' | b'"' | b'\''
                    )
            }
        };
        if stop {
            break;
        }
        at += 1;
    }
    (at > start).then_some((start, at))
}

/// Drops hits contained in a stronger (or equal and longer) hit, and keyed generic hits
/// that overlap any specific one.
fn resolve_overlaps(out: &mut Vec<Hit>, first: usize) {
    let hits = &mut out[first..];
    if hits.len() < 2 {
        return;
    }
    hits.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let snapshot: Vec<Hit> = hits.to_vec();
    let keep: Vec<bool> = snapshot
        .iter()
        .enumerate()
        .map(|(i, h)| {
            !snapshot.iter().enumerate().any(|(j, o)| {
                if i == j {
                    return false;
                }
                let contains = o.start <= h.start && h.end <= o.end;
                let overlaps = o.start < h.end && h.start < o.end;
                let generic = h.detector == "generic_high_entropy" && o.detector != h.detector;
                (generic && overlaps)
                    || contains
                        && (o.confidence > h.confidence
                            || o.confidence == h.confidence
                                && (o.end - o.start > h.end - h.start || j < i))
            })
        })
        .collect();
    let mut index = 0;
    out.retain(|_| {
        let keep_this = index < first || keep[index - first];
        index += 1;
        keep_this
    });
}
