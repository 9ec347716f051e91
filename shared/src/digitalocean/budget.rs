//! The token's request budget as a client knows it: the last `ratelimit-*` headers (or a
//! budget another run saw), less the requests this client let through since. DigitalOcean
//! counts 5,000 requests an hour per token; `ratelimit-reset` is when the oldest of them
//! expires, so it is never more than an hour away (DigitalOcean API reference, Introduction, "Rate Limit";
//! vendored in `tests/fixtures/do-api/README.md`).

use serde::{Deserialize, Serialize};

/// The token's request budget (`ratelimit-*` headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Requests per hour (`ratelimit-limit`; DigitalOcean: 5,000).
    pub limit: u64,
    /// Requests left this hour (`ratelimit-remaining`).
    pub remaining: u64,
    /// Unix seconds when the budget resets (`ratelimit-reset`).
    pub reset: u64,
}

/// How far past its look a budget's reset may lie, in seconds: the hour the API counts, and
/// 5 minutes for clocks that disagree. A reset further out is not believed.
const MAX_RESET_AHEAD: u64 = 3600 + 300;

impl RateLimit {
    /// Whether the values can be true of a budget seen at `at` (unix seconds): a limit, no
    /// more left than it, and a reset within the hour after the look. An API answer or a
    /// kept budget that says otherwise is not used: believing a reset years away would hold
    /// every run back until someone deleted it.
    pub fn plausible(&self, at: u64) -> bool {
        self.limit > 0
            && self.remaining <= self.limit
            && self.reset <= at.saturating_add(MAX_RESET_AHEAD)
    }
}

/// What a client (and its clones) knows of the budget, behind one lock so that each
/// request's admission and each answer's headers are seen whole.
///
/// Concurrent answers come back in any order, so the lowest `ratelimit-remaining` heard in
/// the current window is the API's latest count; every request admitted and not yet
/// answered may not be in it, and is taken off.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// The lowest budget heard (or seeded) in its window.
    known: Option<RateLimit>,
    /// Requests admitted, and requests that came back (answered or failed), so far.
    admitted: u64,
    settled: u64,
    /// Unix seconds `known` is as of (its answer, or another run's look).
    at: u64,
    /// An answer to this client (not a seed) gave `known`.
    heard: bool,
    /// `at` of the budget last handed out to be kept.
    kept_at: u64,
}

/// Why a request was not admitted: what was left and what is kept.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Refusal {
    pub remaining: u64,
    pub limit: u64,
    pub reserve: u64,
    pub reset: u64,
}

impl Ledger {
    /// The budget now: the lowest known, less the requests on their way.
    pub fn estimate(&self) -> Option<RateLimit> {
        let in_flight = self.admitted.saturating_sub(self.settled);
        self.known.map(|k| RateLimit {
            remaining: k.remaining.saturating_sub(in_flight),
            ..k
        })
    }

    /// Lets one request through unless the estimate is at or below `reserve_percent` of
    /// the limit (nothing is held back once the reset time has passed, or with no reserve).
    pub fn admit(&mut self, reserve_percent: Option<u8>, now: u64) -> Result<(), Refusal> {
        if let (Some(rate), Some(percent)) = (self.estimate(), reserve_percent) {
            let reserve = rate.limit.saturating_mul(u64::from(percent)) / 100;
            if rate.remaining <= reserve && reserve > 0 && rate.reset > now {
                return Err(Refusal {
                    remaining: rate.remaining,
                    limit: rate.limit,
                    reserve,
                    reset: rate.reset,
                });
            }
        }
        self.admitted += 1;
        Ok(())
    }

    /// Whether `n` more requests, sent at once, leave the estimate above the reserve.
    pub fn has_room_for(&self, n: u64, reserve_percent: Option<u8>, now: u64) -> bool {
        let (Some(rate), Some(percent)) = (self.estimate(), reserve_percent) else {
            return true;
        };
        let reserve = rate.limit.saturating_mul(u64::from(percent)) / 100;
        rate.reset <= now || rate.remaining > reserve.saturating_add(n)
    }

    /// An admitted request came back: with what its answer's headers said, if anything
    /// plausible. Kept when lower than what is known, or when the known one's window is over.
    pub fn settle(&mut self, rate: Option<RateLimit>, now: u64) {
        self.settled = (self.settled + 1).min(self.admitted);
        let Some(rate) = rate.filter(|r| r.plausible(now)) else {
            return;
        };
        let newer = match self.known {
            None => true,
            Some(k) => rate.remaining < k.remaining || k.reset <= now,
        };
        if newer {
            self.known = Some(rate);
            self.at = now;
        }
        self.heard = true;
    }

    /// Starts from a budget another run saw at `seen_at`, when newer than what is known,
    /// plausible, and its hour not over.
    pub fn seed(&mut self, seen: RateLimit, seen_at: u64, now: u64) {
        let known_at = self.known.map_or(0, |_| self.at);
        if seen_at <= known_at
            || seen_at > now + 300
            || seen.reset <= now
            || !seen.plausible(seen_at)
        {
            return;
        }
        self.known = Some(seen);
        self.at = seen_at;
    }

    /// Unix seconds the known budget is as of.
    pub fn at(&self) -> Option<u64> {
        self.known.map(|_| self.at)
    }

    /// The estimate, when an answer to this client gave a budget.
    pub fn heard(&self) -> Option<RateLimit> {
        self.estimate().filter(|_| self.heard)
    }

    /// [`Ledger::heard`] and when, once per change.
    pub fn take_to_keep(&mut self) -> Option<(RateLimit, u64)> {
        let rate = self.heard()?;
        let fresh = self.kept_at != self.at;
        self.kept_at = self.at;
        fresh.then_some((rate, self.at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn budget(remaining: u64) -> RateLimit {
        RateLimit {
            limit: 5_000,
            remaining,
            reset: NOW + 1_800,
        }
    }

    #[test]
    fn requests_in_flight_count_against_the_reserve() {
        // The first page of each list (5) answered, the lowest saying 1,004 left; then 14
        // pages go out at once. Each used to be checked against 1,004 and all went.
        let mut l = Ledger::default();
        for _ in 0..5 {
            l.admit(Some(20), NOW).expect("no budget known yet");
        }
        for r in [1_007, 1_004, 1_008, 1_005, 1_006] {
            l.settle(Some(budget(r)), NOW);
        }
        let sent = (0..14).filter(|_| l.admit(Some(20), NOW).is_ok()).count();
        assert_eq!(sent, 4, "4 go, leaving the 1,000 kept");
        let refused = l.admit(Some(20), NOW).expect_err("at the reserve");
        assert_eq!((refused.remaining, refused.reserve), (1_000, 1_000));
        // Incident response may spend it.
        assert!(l.admit(None, NOW).is_ok());
        // A higher count in the same window is an older one; once the window is over, the
        // next answer is believed.
        l.settle(Some(budget(1_003)), NOW);
        assert_eq!(l.estimate().map(|r| r.remaining), Some(1_003 - 4));
        l.settle(Some(budget(4_000)), NOW + 1_801);
        assert_eq!(l.estimate().map(|r| r.remaining), Some(4_000 - 3));
    }

    #[test]
    fn implausible_budgets_are_not_believed() {
        let mut l = Ledger::default();
        let years_away = RateLimit {
            reset: NOW + 400_000_000,
            ..budget(0)
        };
        l.admit(None, NOW).expect("admitted");
        l.settle(Some(years_away), NOW);
        l.seed(years_away, NOW, NOW);
        let above_limit = RateLimit {
            remaining: 999_999,
            ..budget(0)
        };
        l.admit(None, NOW).expect("admitted");
        l.settle(Some(above_limit), NOW);
        l.seed(budget(0), NOW + 86_400, NOW);
        assert_eq!(l.estimate(), None);
        assert!(l.admit(Some(20), NOW).is_ok());
        // A look from the past whose hour is not over is believed.
        l.seed(budget(900), NOW - 60, NOW);
        assert!(l.admit(Some(20), NOW).is_err());
        assert!(l.has_room_for(1_000_000, None, NOW));
        assert!(!l.has_room_for(1, Some(20), NOW));
    }
}
