//! One matcher for the name patterns of all rules: a call's tool (or server) name is
//! matched once against every rule's globs and regexes together, so evaluation does not
//! run each rule's matcher in turn.

use globset::{GlobSet, GlobSetBuilder};
use regex::RegexSet;

use crate::compile::NameMatcher;

/// Rule indexes as bits.
#[derive(Debug, Clone, Default)]
pub struct RuleSet(Vec<u64>);

impl RuleSet {
    fn with_len(n: usize) -> RuleSet {
        RuleSet(vec![0; n.div_ceil(64)])
    }

    fn insert(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    /// True when rule `i` is in the set.
    pub fn contains(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
}

/// The patterns of one field (`tool_patterns` or `servers`) of every rule.
#[derive(Debug, Clone)]
pub struct NameIndex {
    rules: usize,
    globs: GlobSet,
    glob_owner: Vec<usize>,
    regexes: RegexSet,
    regex_owner: Vec<usize>,
    /// Rules that do not constrain this field: they always pass.
    unconstrained: Vec<usize>,
    /// Rules with a `*` pattern: they pass even when the name is unknown.
    wildcard: Vec<usize>,
}

impl NameIndex {
    /// Indexes `field` of `matchers` (one per rule, in evaluation order).
    pub fn build<'a>(matchers: impl Iterator<Item = &'a NameMatcher>) -> NameIndex {
        let mut globs = GlobSetBuilder::new();
        let (mut glob_owner, mut regex_sources, mut regex_owner) =
            (Vec::new(), Vec::new(), Vec::new());
        let (mut unconstrained, mut wildcard) = (Vec::new(), Vec::new());
        let mut rules = 0;
        for (i, m) in matchers.enumerate() {
            rules = i + 1;
            if m.is_empty() {
                unconstrained.push(i);
                continue;
            }
            if m.written.contains("*") {
                wildcard.push(i);
            }
            for pattern in &m.written {
                if let Some(re) = pattern.strip_prefix("re:") {
                    regex_sources.push(re.to_string());
                    regex_owner.push(i);
                } else if let Ok(g) = crate::compile::glob(pattern) {
                    globs.add(g);
                    glob_owner.push(i);
                }
            }
        }
        NameIndex {
            rules,
            // Every pattern compiled once already, so building the sets cannot fail; an
            // empty set stands in if it somehow did, and `Policy::evaluate` would then
            // simply match no pattern (rules with patterns never match: fail closed by
            // default_action, which the compile-time checks keep consistent).
            globs: globs.build().unwrap_or_else(|_| GlobSet::empty()),
            glob_owner,
            regexes: RegexSet::new(&regex_sources).unwrap_or_else(|_| RegexSet::empty()),
            regex_owner,
            unconstrained,
            wildcard,
        }
    }

    /// The rules this field lets through for a call whose name is any of `names` (none
    /// known: only unconstrained and `*` rules).
    pub fn passing(&self, names: &[&str]) -> RuleSet {
        let mut set = RuleSet::with_len(self.rules);
        for &i in &self.unconstrained {
            set.insert(i);
        }
        if names.is_empty() {
            for &i in &self.wildcard {
                set.insert(i);
            }
            return set;
        }
        for name in names {
            for p in self.globs.matches(name) {
                set.insert(self.glob_owner[p]);
            }
            for p in self.regexes.matches(name).iter() {
                set.insert(self.regex_owner[p]);
            }
        }
        set
    }
}
