//! The replay guard: remembers verified delivery ids within the timestamp window.

use std::collections::{BTreeSet, HashSet};

use super::verify::TOLERANCE_SECS;

/// Remembers the ids of recent deliveries so that a replayed one can be
/// refused.
///
/// An id is remembered until its timestamp leaves the tolerance window:
/// after that `verify` refuses any replay of it anyway. Memory is thus
/// bounded by the number of distinct messages within the window, and in
/// any case by `capacity`.
///
/// Feed it only verified deliveries: the id and timestamp must be
/// authenticated, or anyone could fill it or pre-empt a real id.
#[derive(Debug, Clone)]
pub struct ReplayGuard {
    /// Ids currently remembered.
    ids: HashSet<String>,
    /// The same entries ordered by timestamp, to forget the oldest first.
    by_time: BTreeSet<(i64, String)>,
    capacity: usize,
}

impl ReplayGuard {
    /// Default bound on the number of remembered ids.
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// A guard holding at most [`Self::DEFAULT_CAPACITY`] ids.
    pub fn new() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// A guard holding at most `capacity` ids (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            ids: HashSet::new(),
            by_time: BTreeSet::new(),
            capacity: capacity.max(1),
        }
    }

    /// Whether to process the message `id` sent at `ts`, at time `now`
    /// (unix seconds); remembers it if so.
    ///
    /// Returns `false` if `id` was already seen within the window, if `ts`
    /// is itself outside the window (such a message cannot be tracked, and
    /// `verify` refuses it), or if the guard is full of ids still within
    /// the window (it fails closed rather than forget one early).
    pub fn check_and_remember(&mut self, id: &str, ts: i64, now: i64) -> bool {
        self.forget_expired(now);
        if self.ids.contains(id) {
            return false;
        }
        if !within_window(ts, now) || self.ids.len() >= self.capacity {
            return false;
        }
        self.ids.insert(id.to_owned());
        self.by_time.insert((ts, id.to_owned()));
        true
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Drops every entry whose timestamp is out of the window at `now`.
    fn forget_expired(&mut self, now: i64) {
        while let Some((ts, _)) = self.by_time.first() {
            if within_window(*ts, now) {
                break;
            }
            if let Some((_, id)) = self.by_time.pop_first() {
                self.ids.remove(&id);
            }
        }
    }
}

impl Default for ReplayGuard {
    fn default() -> Self {
        Self::new()
    }
}

/// True if `ts` is at most [`TOLERANCE_SECS`] old at `now`, and not further
/// in the future than that. Entries are ordered by `ts`, so the oldest are
/// checked first; a future `ts` never expires before an older one.
fn within_window(ts: i64, now: i64) -> bool {
    now.saturating_sub(ts).unsigned_abs() <= TOLERANCE_SECS.unsigned_abs()
}

#[cfg(test)]
mod tests {
    use super::*;
    // --- replay guard -----------------------------------------------------

    #[test]
    fn replay_within_window_is_refused() {
        let mut g = ReplayGuard::new();
        assert!(g.check_and_remember("msg_1", 1000, 1000));
        assert!(!g.check_and_remember("msg_1", 1000, 1000));
        assert!(!g.check_and_remember("msg_1", 1000, 1300));
        // A retry of the same message (same id, new attempt time) too.
        assert!(!g.check_and_remember("msg_1", 1200, 1250));
        assert!(g.check_and_remember("msg_2", 1000, 1300));
        assert_eq!(g.len(), 2);
    }

    #[test]
    fn after_the_window_the_id_is_forgotten() {
        let mut g = ReplayGuard::new();
        assert!(g.check_and_remember("msg_1", 1000, 1000));
        // At 1301 the first delivery's timestamp is out of the window:
        // verify() refuses a replay of it, so the guard may forget it.
        assert!(g.check_and_remember("msg_1", 1301, 1301));
        assert_eq!(g.len(), 1);
        // And a replay of that stale delivery itself is refused.
        assert!(!g.check_and_remember("msg_1", 1000, 1301));
    }

    #[test]
    fn timestamps_outside_the_window_are_refused() {
        let mut g = ReplayGuard::new();
        assert!(!g.check_and_remember("old", 1000, 1301));
        assert!(!g.check_and_remember("future", 1302, 1001));
        assert!(g.check_and_remember("edge_old", 1000, 1300));
        assert!(g.check_and_remember("edge_future", 1300, 1000));
        assert_eq!(g.len(), 2);
    }

    #[test]
    fn future_timestamps_are_kept_until_they_expire() {
        let mut g = ReplayGuard::new();
        // Sent "from the future" (sender clock ahead by 300 s).
        assert!(g.check_and_remember("ahead", 1300, 1000));
        // 550 s later it is still only 250 s old: a replay is refused.
        assert!(!g.check_and_remember("ahead", 1300, 1550));
        assert_eq!(g.len(), 1);
        assert!(g.check_and_remember("later", 1601, 1601));
        assert_eq!(g.len(), 1, "ahead expired at 1601");
    }

    #[test]
    fn memory_stays_within_the_window() {
        let mut g = ReplayGuard::new();
        // One message a second for an hour: only the last 301 seconds'
        // worth may be held.
        for t in 0..3600_i64 {
            assert!(g.check_and_remember(&format!("msg_{t}"), t, t));
            assert!(g.len() <= 301, "len {} at {t}", g.len());
            assert_eq!(g.ids.len(), g.by_time.len());
        }
        assert_eq!(g.len(), 301);
        // Much later, the next call forgets everything old.
        assert!(g.check_and_remember("late", 100_000, 100_000));
        assert_eq!(g.len(), 1);
        assert_eq!(g.by_time.len(), 1);
    }

    #[test]
    fn capacity_bounds_memory_and_fails_closed() {
        let mut g = ReplayGuard::with_capacity(3);
        assert!(g.check_and_remember("a", 100, 100));
        assert!(g.check_and_remember("b", 100, 100));
        assert!(g.check_and_remember("c", 101, 101));
        assert!(!g.check_and_remember("d", 101, 101), "full: refuse");
        assert_eq!(g.len(), 3);
        // "a" and "b" expire at 401; room again.
        assert!(g.check_and_remember("d", 401, 401));
        assert_eq!(g.len(), 2);
        assert!(!g.check_and_remember("c", 101, 401), "c still remembered");
    }
}
