//! Logging a failure that repeats (a broker that stays away) without
//! flooding the log: the first few are logged, then every Nth; the rest
//! are only counted. Pure: the caller counts, this decides.

/// Failures logged in full before thinning out, for connection problems.
pub const CONNECTION_FIRST: u64 = 5;
/// After [`CONNECTION_FIRST`], every this many-th connection failure is logged.
pub const CONNECTION_EVERY: u64 = 20;

/// Counts consecutive (or, if never reset, all) failures and says which to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureLog {
    first: u64,
    every: u64,
    failures: u64,
}

impl FailureLog {
    /// Log failures `1..=first`, then every `every`-th (none if `every` is 0).
    pub const fn new(first: u64, every: u64) -> FailureLog {
        FailureLog { first, every, failures: 0 }
    }

    /// The policy both binaries use for broker connection failures.
    pub const fn connection() -> FailureLog {
        FailureLog::new(CONNECTION_FIRST, CONNECTION_EVERY)
    }

    /// Count one failure; `true` when this one should be logged.
    pub fn fail(&mut self) -> bool {
        self.failures += 1;
        self.logs(self.failures)
    }

    /// Whether the `nth` failure (counting from 1) is logged, for a caller
    /// that keeps the count itself (e.g. in a shared counter).
    pub fn logs(&self, nth: u64) -> bool {
        nth <= self.first || (self.every > 0 && nth % self.every == 0)
    }

    /// Failures counted since the start or the last [`FailureLog::reset`].
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// Start counting again (e.g. once connected).
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged(log: &mut FailureLog, n: u64) -> Vec<u64> {
        let mut out = Vec::new();
        for _ in 0..n {
            if log.fail() {
                out.push(log.failures());
            }
        }
        out
    }

    #[test]
    fn first_five_then_every_twentieth() {
        let mut log = FailureLog::connection();
        assert_eq!(logged(&mut log, 100), vec![1, 2, 3, 4, 5, 20, 40, 60, 80, 100]);
        assert_eq!(log.failures(), 100);
    }

    #[test]
    fn reset_starts_over_and_zero_every_means_only_the_first() {
        let mut log = FailureLog::connection();
        logged(&mut log, 30);
        log.reset();
        assert_eq!(log.failures(), 0);
        assert_eq!(logged(&mut log, 6), vec![1, 2, 3, 4, 5]);
        let mut once = FailureLog::new(1, 0);
        assert_eq!(logged(&mut once, 50), vec![1]);
        assert!(once.logs(1) && !once.logs(2) && FailureLog::connection().logs(40));
    }
}
