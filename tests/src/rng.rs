//! A seeded random generator for tests that choose kill times, delays and names at random: the
//! seed comes from an environment variable or the clock and is printed by the test, so a failing
//! run can be replayed with the same choices.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// splitmix64: tiny, seedable, and spread well enough for kill times and delays (not for
/// anything that needs unpredictability).
#[derive(Debug, Clone)]
pub struct SeededRng {
    state: u64,
}

impl SeededRng {
    /// The generator that starts from `seed`; the same seed gives the same sequence.
    pub fn new(seed: u64) -> SeededRng {
        SeededRng { state: seed }
    }

    /// The generator for the test named `test` from the run's `seed`: the seed mixed with an
    /// FNV-1a hash of the name, so tests that share one seed still draw different sequences.
    pub fn for_test(seed: u64, test: &str) -> SeededRng {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in test.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        SeededRng::new(seed ^ h)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `[0, n)` (0 when `n` is 0); the modulo bias is negligible for the small `n`
    /// tests use.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A duration uniform in `[lo, hi)` times `base` (in steps of a millionth).
    pub fn fraction_of(&mut self, base: Duration, lo: f64, hi: f64) -> Duration {
        let f = lo + (hi - lo) * (self.below(1_000_000) as f64 / 1_000_000.0);
        base.mul_f64(f)
    }
}

/// The seed in the environment variable `var` (a decimal `u64`), else one from the clock.
/// The caller prints it, naming `var`, so the run can be replayed.
pub fn seed_from_env(var: &str) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}
