//! What one connection records while measuring (a latency histogram, counts and an
//! error tally per command), how records of many connections add up, and the live
//! counters behind the once-a-second progress line.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::scenario::Cmd;

/// Latencies are recorded in microseconds, from 1 µs to 10 minutes, 3 significant digits.
const HIST_MAX_US: u64 = 600_000_000;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3)
        .unwrap_or_else(|e| unreachable!("constant histogram bounds are valid: {e}"))
}

/// Error codes the bench itself assigns (application and Seneca codes come from replies).
pub mod codes {
    /// No reply within --timeout.
    pub const TIMEOUT: &str = "timeout";
    /// The connection closed or failed with the request unanswered.
    pub const DISCONNECTED: &str = "disconnected";
    /// A reply for this id that a v8 client would drop (wrong `kind` or `origin`).
    pub const BAD_REPLY: &str = "bad_reply";
}

/// Counts by error code, sorted by code for stable output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorTally(BTreeMap<String, u64>);

impl ErrorTally {
    pub fn add(&mut self, code: &str, n: u64) {
        if let Some(c) = self.0.get_mut(code) {
            *c += n;
        } else {
            self.0.insert(code.to_owned(), n);
        }
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    #[cfg(test)]
    pub fn get(&self, code: &str) -> u64 {
        self.0.get(code).copied().unwrap_or(0)
    }

    pub fn merge(&mut self, other: &ErrorTally) {
        for (code, n) in &other.0 {
            self.add(code, *n);
        }
    }

    /// Codes with counts, largest count first (ties by code).
    pub fn by_count(&self) -> Vec<(&str, u64)> {
        let mut v: Vec<_> = self.0.iter().map(|(c, n)| (c.as_str(), *n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v
    }
}

/// Measured results of one command.
#[derive(Debug, Clone)]
pub struct CmdStats {
    /// Latency of successful replies, µs.
    pub latency: Histogram<u64>,
    /// Successful replies whose `res` was null (e.g. session not found).
    pub null_results: u64,
    pub errors: ErrorTally,
}

impl Default for CmdStats {
    fn default() -> Self {
        CmdStats {
            latency: new_histogram(),
            null_results: 0,
            errors: ErrorTally::default(),
        }
    }
}

impl CmdStats {
    pub fn ok(&self) -> u64 {
        self.latency.len()
    }

    /// Requests that finished one way or another.
    pub fn finished(&self) -> u64 {
        self.ok() + self.errors.total()
    }

    pub fn record_ok(&mut self, latency: Duration, null_result: bool) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency.saturating_record(us.max(1));
        if null_result {
            self.null_results += 1;
        }
    }

    pub fn merge(&mut self, other: &CmdStats) {
        // Both histograms have the same bounds, so adding cannot fail; saturate anyway.
        if self.latency.add(&other.latency).is_err() {
            for v in other.latency.iter_recorded() {
                self.latency
                    .saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
        self.null_results += other.null_results;
        self.errors.merge(&other.errors);
    }
}

/// Everything one connection measured.
#[derive(Debug, Clone, Default)]
pub struct ConnStats {
    pub cmds: [CmdStats; 4],
    /// Reply lines that were not JSON objects with a string id.
    pub unreadable_lines: u64,
    /// Replies whose id matched nothing in flight (late after a timeout, duplicate, foreign).
    pub unmatched_replies: u64,
    /// Times the connection was lost (and re-opened while the run was still sending).
    pub disconnects: u64,
    /// When the last measured reply arrived (timeouts excluded).
    pub last_reply: Option<Instant>,
}

impl ConnStats {
    pub fn cmd(&mut self, cmd: Cmd) -> &mut CmdStats {
        &mut self.cmds[cmd.index()]
    }

    pub fn merge(&mut self, other: &ConnStats) {
        for (a, b) in self.cmds.iter_mut().zip(&other.cmds) {
            a.merge(b);
        }
        self.unreadable_lines += other.unreadable_lines;
        self.unmatched_replies += other.unmatched_replies;
        self.disconnects += other.disconnects;
        self.last_reply = match (self.last_reply, other.last_reply) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Live totals over all connections, warm-up included, for the progress line.
#[derive(Debug, Default)]
pub struct Progress {
    pub finished: AtomicU64,
    pub errors: AtomicU64,
}

impl Progress {
    pub fn finished(&self, error: bool) {
        self.finished.fetch_add(1, Ordering::Relaxed);
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.finished.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_adds_merges_and_sorts() {
        let mut a = ErrorTally::default();
        a.add("timeout", 2);
        a.add("STORE_UNAVAILABLE", 5);
        let mut b = ErrorTally::default();
        b.add("timeout", 3);
        b.add("act_not_found", 1);
        a.merge(&b);
        assert_eq!(a.total(), 11);
        assert_eq!(a.get("timeout"), 5);
        assert_eq!(a.get("nope"), 0);
        assert_eq!(
            a.by_count(),
            vec![
                ("STORE_UNAVAILABLE", 5),
                ("timeout", 5),
                ("act_not_found", 1)
            ]
        );
    }

    #[test]
    fn cmd_stats_count_ok_nulls_and_errors() {
        let mut s = CmdStats::default();
        s.record_ok(Duration::from_micros(100), false);
        s.record_ok(Duration::from_nanos(10), true);
        s.errors.add(codes::TIMEOUT, 1);
        assert_eq!(s.ok(), 2);
        assert_eq!(s.null_results, 1);
        assert_eq!(s.finished(), 3);
        // Sub-microsecond latencies are kept as 1 µs, not dropped.
        assert_eq!(s.latency.min(), 1);
    }

    #[test]
    fn merging_connections_adds_everything() {
        let mut a = ConnStats::default();
        let mut b = ConnStats::default();
        for us in 1..=500u64 {
            a.cmd(Cmd::Get).record_ok(Duration::from_micros(us), false);
        }
        for us in 501..=1000u64 {
            b.cmd(Cmd::Get).record_ok(Duration::from_micros(us), false);
        }
        b.cmd(Cmd::Store).errors.add("SESSION_CLOSED", 4);
        b.unmatched_replies = 2;
        let t0 = Instant::now();
        a.last_reply = Some(t0);
        b.last_reply = Some(t0 + Duration::from_secs(1));
        a.merge(&b);
        let get = &a.cmds[Cmd::Get.index()];
        assert_eq!(get.ok(), 1000);
        let p50 = get.latency.value_at_quantile(0.5);
        assert!((499..=501).contains(&p50), "p50 {p50}");
        assert_eq!(get.latency.max(), 1000);
        assert_eq!(a.cmds[Cmd::Store.index()].errors.get("SESSION_CLOSED"), 4);
        assert_eq!(a.unmatched_replies, 2);
        assert_eq!(a.last_reply, Some(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn huge_latencies_saturate() {
        let mut s = CmdStats::default();
        s.record_ok(Duration::from_secs(100_000), false);
        assert_eq!(s.ok(), 1);
        assert!(s.latency.max() >= HIST_MAX_US);
    }
}
