//! Turns merged measurements into results: per-command rows (count, throughput,
//! latency percentiles from the histogram, errors by code) and a total row, printed
//! as a text table or as JSON.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::scenario::Cmd;
use crate::stats::{CmdStats, ConnStats, ErrorTally};

/// Latency percentiles of successful replies, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

/// Results of one command (or of all together).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: &'static str,
    /// Measured requests that finished in any way (ok, error reply, timeout, ...).
    pub requests: u64,
    pub ok: u64,
    pub null_results: u64,
    pub errors: ErrorTally,
    /// `requests` per second of measured time.
    pub req_per_s: f64,
    /// `ok` per second of measured time.
    pub ok_per_s: f64,
    /// None when nothing succeeded.
    pub latency: Option<Latency>,
}

impl Row {
    fn new(name: &'static str, s: &CmdStats, elapsed: Duration) -> Row {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let h = &s.latency;
        let latency = (!h.is_empty()).then(|| Latency {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        });
        Row {
            name,
            requests: s.finished(),
            ok: s.ok(),
            null_results: s.null_results,
            errors: s.errors.clone(),
            req_per_s: s.finished() as f64 / secs,
            ok_per_s: s.ok() as f64 / secs,
            latency,
        }
    }

    fn to_json(&self) -> Value {
        let mut errors = Map::new();
        for (code, n) in self.errors.by_count() {
            errors.insert(code.to_owned(), json!(n));
        }
        json!({
            "requests": self.requests,
            "ok": self.ok,
            "errors": self.errors.total(),
            "null_results": self.null_results,
            "req_per_s": round2(self.req_per_s),
            "ok_per_s": round2(self.ok_per_s),
            "latency_us": self.latency.map(|l| json!({
                "p50": l.p50, "p90": l.p90, "p99": l.p99, "p99_9": l.p999,
                "max": l.max, "mean": round2(l.mean),
            })),
            "errors_by_code": errors,
        })
    }
}

/// The whole result of a run.
#[derive(Debug, Clone)]
pub struct Summary {
    pub rows: Vec<Row>,
    pub total: Row,
    pub elapsed: Duration,
    pub unmatched_replies: u64,
    pub unreadable_lines: u64,
    pub disconnects: u64,
}

/// Builds the rows: every command that was sent, plus the total over all of them.
pub fn summarize(stats: &ConnStats, elapsed: Duration) -> Summary {
    let mut all = CmdStats::default();
    let mut rows = Vec::new();
    for cmd in Cmd::ALL {
        let s = &stats.cmds[cmd.index()];
        all.merge(s);
        if s.finished() > 0 {
            rows.push(Row::new(cmd.name(), s, elapsed));
        }
    }
    Summary {
        rows,
        total: Row::new("total", &all, elapsed),
        elapsed,
        unmatched_replies: stats.unmatched_replies,
        unreadable_lines: stats.unreadable_lines,
        disconnects: stats.disconnects,
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

impl Summary {
    /// The JSON report; `config` describes the run (addresses, scenario, sizes).
    pub fn to_json(&self, config: Value) -> Value {
        let mut cmds = Map::new();
        for r in &self.rows {
            cmds.insert(r.name.to_owned(), r.to_json());
        }
        json!({
            "config": config,
            "elapsed_s": round_s(self.elapsed),
            "commands": cmds,
            "total": self.total.to_json(),
            "unmatched_replies": self.unmatched_replies,
            "unreadable_lines": self.unreadable_lines,
            "disconnects": self.disconnects,
        })
    }

    /// The human table; `title` is the first line.
    pub fn to_text(&self, title: &str) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "{title}");
        let _ = writeln!(o, "measured {:.2}s\n", self.elapsed.as_secs_f64());
        let _ = writeln!(
            o,
            "{:<6} {:>10} {:>8} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "cmd",
            "requests",
            "errors",
            "req/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms"
        );
        let rows = self.rows.iter().chain(
            // A total row only adds something when there are several commands.
            (self.rows.len() != 1).then_some(&self.total),
        );
        for r in rows {
            let lat = match r.latency {
                Some(l) => format!(
                    "{:>9} {:>9} {:>9} {:>9} {:>9}",
                    ms(l.p50),
                    ms(l.p90),
                    ms(l.p99),
                    ms(l.p999),
                    ms(l.max)
                ),
                None => format!("{:>9} {:>9} {:>9} {:>9} {:>9}", "-", "-", "-", "-", "-"),
            };
            let _ = writeln!(
                o,
                "{:<6} {:>10} {:>8} {:>10.1} {lat}",
                r.name,
                r.requests,
                r.errors.total(),
                r.req_per_s
            );
        }
        let _ = writeln!(
            o,
            "(latency of successful replies; req/s counts every finished request)"
        );
        if self.total.errors.total() > 0 {
            let _ = writeln!(o, "\nerrors by code:");
            for r in &self.rows {
                if r.errors.total() == 0 {
                    continue;
                }
                let list: Vec<String> = r
                    .errors
                    .by_count()
                    .into_iter()
                    .map(|(c, n)| format!("{c} {n}"))
                    .collect();
                let _ = writeln!(o, "  {:<6} {}", r.name, list.join(", "));
            }
        } else {
            let _ = writeln!(o, "\nno errors");
        }
        let nulls: Vec<String> = self
            .rows
            .iter()
            .filter(|r| r.null_results > 0)
            .map(|r| format!("{} {}", r.name, r.null_results))
            .collect();
        if !nulls.is_empty() {
            let _ = writeln!(o, "null results: {}", nulls.join(", "));
        }
        if self.unmatched_replies + self.unreadable_lines + self.disconnects > 0 {
            let _ = writeln!(
                o,
                "unmatched replies {}, unreadable lines {}, disconnects {}",
                self.unmatched_replies, self.unreadable_lines, self.disconnects
            );
        }
        o
    }
}

fn round_s(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::codes;

    fn sample() -> ConnStats {
        let mut s = ConnStats::default();
        // 1000 gets at 1..=1000 µs, 100 stores at 2 ms, one store error and a timeout.
        for us in 1..=1000u64 {
            s.cmd(Cmd::Get)
                .record_ok(Duration::from_micros(us), us % 100 == 0);
        }
        for _ in 0..100 {
            s.cmd(Cmd::Store).record_ok(Duration::from_millis(2), false);
        }
        s.cmd(Cmd::Store).errors.add("STORE_UNAVAILABLE", 1);
        s.cmd(Cmd::Get).errors.add(codes::TIMEOUT, 1);
        s.unmatched_replies = 3;
        s
    }

    #[test]
    fn rows_have_counts_rates_and_percentiles() {
        let sum = summarize(&sample(), Duration::from_secs(2));
        assert_eq!(sum.rows.len(), 2);
        let get = &sum.rows[0];
        assert_eq!(
            (get.name, get.requests, get.ok, get.null_results),
            ("get", 1001, 1000, 10)
        );
        assert_eq!(get.req_per_s, 500.5);
        assert_eq!(get.ok_per_s, 500.0);
        let l = get.latency.unwrap();
        // hdrhistogram with 3 significant digits: exact at this range.
        assert_eq!(
            (l.p50, l.p90, l.p99, l.p999, l.max),
            (500, 900, 990, 999, 1000)
        );
        assert!((l.mean - 500.5).abs() < 0.5);
        let store = &sum.rows[1];
        assert_eq!(store.errors.get("STORE_UNAVAILABLE"), 1);
        assert_eq!(store.latency.unwrap().p50, 2000);
        assert_eq!(sum.total.requests, 1102);
        assert_eq!(sum.total.errors.total(), 2);
        assert_eq!(sum.total.latency.unwrap().max, 2000);
    }

    #[test]
    fn json_report_carries_everything() {
        let sum = summarize(&sample(), Duration::from_secs(2));
        let j = sum.to_json(json!({"scenario": "mix"}));
        assert_eq!(j["config"]["scenario"], "mix");
        assert_eq!(j["commands"]["get"]["requests"], 1001);
        assert_eq!(j["commands"]["get"]["errors_by_code"]["timeout"], 1);
        assert_eq!(j["commands"]["get"]["latency_us"]["p99_9"], 999);
        assert_eq!(
            j["commands"]["store"]["errors_by_code"]["STORE_UNAVAILABLE"],
            1
        );
        assert!(j["commands"]["open"].is_null());
        assert_eq!(j["total"]["errors"], 2);
        assert_eq!(j["unmatched_replies"], 3);
        assert_eq!(j["elapsed_s"], 2.0);
    }

    #[test]
    fn text_report_shows_rows_and_errors() {
        let t = summarize(&sample(), Duration::from_secs(2)).to_text("title");
        assert!(t.starts_with("title\n"));
        assert!(t.contains("\nget "), "{t}");
        assert!(t.contains("\ntotal "), "{t}");
        assert!(t.contains("STORE_UNAVAILABLE 1"), "{t}");
        assert!(t.contains("timeout 1"), "{t}");
        assert!(t.contains("0.500"), "p50 in ms: {t}");
        assert!(t.contains("unmatched replies 3"), "{t}");
    }

    #[test]
    fn nothing_succeeded_means_no_latency() {
        let mut s = ConnStats::default();
        s.cmd(Cmd::Open).errors.add(codes::DISCONNECTED, 4);
        let sum = summarize(&s, Duration::from_secs(1));
        assert_eq!(sum.rows[0].latency, None);
        assert!(sum.to_text("t").contains("disconnected 4"));
        assert!(sum.to_json(Value::Null)["total"]["latency_us"].is_null());
    }
}
