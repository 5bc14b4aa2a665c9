//! Which kinds of bytes a text holds, found in one pass, so that scanners that cannot
//! match (no digit, no `@`, no `:` …) are skipped on short texts. Most strings in JSON
//! are short (keys, enum values, names, timestamps): for them, starting each scanner's
//! own search costs more than one look at every byte.

/// Texts shorter than this get a profile; longer ones are searched by each scanner
/// (whose vectorised searches are cheap per byte there).
pub(crate) const PROFILED_LEN: usize = 64;

/// A set of byte kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Profile(u16);

impl Profile {
    pub(crate) const DIGIT: Profile = Profile(1);
    pub(crate) const AT: Profile = Profile(1 << 1);
    pub(crate) const COLON: Profile = Profile(1 << 2);
    pub(crate) const EQUALS: Profile = Profile(1 << 3);
    pub(crate) const SPACE: Profile = Profile(1 << 4);
    pub(crate) const DASH: Profile = Profile(1 << 5);
    pub(crate) const PERCENT: Profile = Profile(1 << 6);
    pub(crate) const AMPERSAND: Profile = Profile(1 << 7);
    pub(crate) const BACKSLASH: Profile = Profile(1 << 8);
    pub(crate) const NON_ASCII: Profile = Profile(1 << 9);
    /// Every kind: what a text without a profile is assumed to hold.
    pub(crate) const ALL: Profile = Profile(u16::MAX);

    /// The profile of `text` when it is short, [`Profile::ALL`] otherwise.
    pub(crate) fn of(text: &str) -> Profile {
        if text.len() >= PROFILED_LEN {
            return Profile::ALL;
        }
        Profile(
            text.bytes()
                .fold(0, |kinds, b| kinds | KIND_OF_BYTE[usize::from(b)]),
        )
    }

    /// True when the text may hold a byte of any kind in `kinds`.
    pub(crate) fn has(self, kinds: Profile) -> bool {
        self.0 & kinds.0 != 0
    }
}

impl std::ops::BitOr for Profile {
    type Output = Profile;

    fn bitor(self, other: Profile) -> Profile {
        Profile(self.0 | other.0)
    }
}

/// The kind bit of every byte value (0 for kinds no scanner asks about).
const KIND_OF_BYTE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = match b as u8 {
            b'0'..=b'9' => Profile::DIGIT.0,
            b'@' => Profile::AT.0,
            b':' => Profile::COLON.0,
            b'=' => Profile::EQUALS.0,
            b' ' => Profile::SPACE.0,
            b'-' => Profile::DASH.0,
            b'%' => Profile::PERCENT.0,
            b'&' => Profile::AMPERSAND.0,
            b'\\' => Profile::BACKSLASH.0,
            0x80..=0xFF => Profile::NON_ASCII.0,
            _ => 0,
        };
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_texts_are_profiled_and_long_ones_hold_everything() {
        let p = Profile::of("user@example.com:8080");
        assert!(p.has(Profile::AT) && p.has(Profile::COLON) && p.has(Profile::DIGIT));
        assert!(!p.has(Profile::EQUALS | Profile::SPACE | Profile::NON_ASCII));
        assert!(Profile::of("é").has(Profile::NON_ASCII));
        assert!(!Profile::of("plain_words").has(Profile::DIGIT | Profile::DASH));
        let long = "a".repeat(PROFILED_LEN);
        assert_eq!(Profile::of(&long), Profile::ALL);
    }
}
