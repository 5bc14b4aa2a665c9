//! Token buckets, pure: the clock is passed in (milliseconds). A bucket holds up to
//! `burst` tokens and gains `rate` per second; a call takes one token from each of its
//! buckets, all or none, so a refused call consumes nothing.

/// One limit: `rate` tokens per second, at most `burst` saved up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Tokens added per second.
    pub rate: f64,
    /// The most tokens a bucket holds.
    pub burst: f64,
}

impl Limit {
    /// Tokens per millisecond.
    pub fn per_ms(&self) -> f64 {
        self.rate / 1000.0
    }

    /// How long an idle bucket takes to fill (after which it can be forgotten).
    pub fn fill_ms(&self) -> u64 {
        (self.burst / self.per_ms().max(f64::MIN_POSITIVE)).ceil() as u64
    }
}

/// A bucket's state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Tokens now (fractional).
    pub tokens: f64,
    /// When `tokens` was computed.
    pub updated_ms: u64,
}

impl Bucket {
    /// A full bucket.
    pub fn full(limit: Limit, now_ms: u64) -> Bucket {
        Bucket {
            tokens: limit.burst,
            updated_ms: now_ms,
        }
    }

    /// The tokens at `now_ms`.
    pub fn level(&self, limit: Limit, now_ms: u64) -> f64 {
        let elapsed = now_ms.saturating_sub(self.updated_ms) as f64;
        (self.tokens + elapsed * limit.per_ms()).min(limit.burst)
    }
}

/// The outcome of taking one token from several buckets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Take {
    /// Taken from all; the fewest whole tokens left in any of them.
    Allowed {
        /// Whole tokens left in the emptiest bucket.
        remaining: u64,
    },
    /// Refused (nothing taken): the `index`th bucket is empty for `retry_after_ms` more.
    Limited {
        /// Which bucket (index into the slice given).
        index: usize,
        /// How long until it holds a token.
        retry_after_ms: u64,
    },
}

/// Takes a token from every bucket, or from none when one is empty. Buckets that do not
/// exist yet (`None`) start full; the new states are written back.
pub fn take(buckets: &mut [(Option<Bucket>, Limit)], now_ms: u64) -> Take {
    let levels: Vec<f64> = buckets
        .iter()
        .map(|(bucket, limit)| bucket.map_or(limit.burst, |b| b.level(*limit, now_ms)))
        .collect();
    let mut worst: Option<(usize, u64)> = None;
    for (index, (level, (_, limit))) in levels.iter().zip(buckets.iter()).enumerate() {
        if *level < 1.0 {
            let wait = ((1.0 - level) / limit.per_ms().max(f64::MIN_POSITIVE)).ceil() as u64;
            if worst.is_none_or(|(_, w)| wait > w) {
                worst = Some((index, wait.max(1)));
            }
        }
    }
    if let Some((index, retry_after_ms)) = worst {
        return Take::Limited {
            index,
            retry_after_ms,
        };
    }
    let mut remaining = u64::MAX;
    for (level, (bucket, _)) in levels.iter().zip(buckets.iter_mut()) {
        let left = level - 1.0;
        remaining = remaining.min(left.max(0.0).floor() as u64);
        *bucket = Some(Bucket {
            tokens: left,
            updated_ms: now_ms,
        });
    }
    Take::Allowed { remaining }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_PER_SECOND: Limit = Limit {
        rate: 2.0,
        burst: 3.0,
    };

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let mut buckets = [(None, TWO_PER_SECOND)];
        for remaining in [2, 1, 0] {
            assert_eq!(take(&mut buckets, 0), Take::Allowed { remaining });
        }
        assert_eq!(
            take(&mut buckets, 0),
            Take::Limited {
                index: 0,
                retry_after_ms: 500
            }
        );
        assert!(matches!(take(&mut buckets, 499), Take::Limited { .. }));
        assert_eq!(take(&mut buckets, 500), Take::Allowed { remaining: 0 });
        // Long idle: full again, never more than the burst.
        assert_eq!(take(&mut buckets, 60_000), Take::Allowed { remaining: 2 });
    }

    #[test]
    fn a_refused_call_takes_nothing_from_any_bucket() {
        let wide = Limit {
            rate: 100.0,
            burst: 100.0,
        };
        let narrow = Limit {
            rate: 1.0,
            burst: 1.0,
        };
        let mut buckets = [(None, wide), (None, narrow)];
        assert_eq!(take(&mut buckets, 0), Take::Allowed { remaining: 0 });
        let before = buckets[0].0;
        assert_eq!(
            take(&mut buckets, 10),
            Take::Limited {
                index: 1,
                retry_after_ms: 990
            }
        );
        assert_eq!(
            buckets[0].0, before,
            "the wide bucket paid for a refused call"
        );
    }
}
