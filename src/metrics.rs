//! Prometheus metrics: one [`Metrics`] value owns the registry and every metric handle.
//!
//! Every label value comes from a closed enum below, so the number of series is fixed
//! at start: no ids, user ids or addresses ever become labels. All known label
//! combinations are created up front, so every series exists (at 0) from the first
//! scrape and `rate()` works from the start. Hot-path methods index pre-built handles
//! by enum discriminant instead of hashing label values on every call.

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::lifecycle::{CloseReason, Closes};
use crate::store::Counts;

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// Request latency buckets, seconds: 50 µs (an in-memory get) up to 5 s (a timeout).
const REQUEST_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
];

/// Sweep duration buckets, seconds: a sweep walks every bucket, so it runs longer.
const SWEEP_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Declares a closed set of label values: an enum with `ALL`, `COUNT`, `as_str`.
macro_rules! label_set {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order (the order of the handle arrays).
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// How many values there are.
            pub const COUNT: usize = Self::ALL.len();

            /// The label value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The value with this label, if any.
            pub fn from_label(label: &str) -> Option<$name> {
                match label {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }

            const fn index(self) -> usize {
                self as usize
            }
        }
    };
}

label_set! {
    /// The `cmd` label: the ten Seneca commands, and `unknown` for anything else.
    Cmd {
        GetSessions => "get_sessions",
        GetSessionById => "get_session_by_id",
        OpenSession => "open_session",
        StoreSessionData => "store_session_data",
        UpdateSessionUser => "update_session_user",
        CloseSession => "close_session",
        CloseExpiredSessions => "close_expired_sessions",
        DeleteSession => "delete_session",
        DeleteSessionById => "delete_session_by_id",
        CloseUserSessions => "close_user_sessions",
        Unknown => "unknown",
    }
}

impl Cmd {
    /// The command a request names; anything not one of ours is [`Cmd::Unknown`], so
    /// a client cannot create series by sending made-up command names.
    pub fn from_name(name: &str) -> Cmd {
        Cmd::from_label(name).unwrap_or(Cmd::Unknown)
    }
}

label_set! {
    /// The `outcome` label of a request: `ok` or the application error code it got.
    Outcome {
        Ok => "ok",
        InvalidData => "invalid_data",
        DataTooLarge => "data_too_large",
        SessionClosed => "session_closed",
        /// open_session refused by the per-user cap.
        SessionLimit => "session_limit",
        StoreUnavailable => "store_unavailable",
        Internal => "internal",
        /// The act_not_found reply: unknown command or version.
        NotFound => "not_found",
    }
}

label_set! {
    /// The `kind` label of a line that could not be read as a Seneca message.
    ProtocolErrorKind {
        LineTooLong => "line_too_long",
        InvalidJson => "invalid_json",
        InvalidUtf8 => "invalid_utf8",
        NotAnObject => "not_an_object",
        BadEnvelope => "bad_envelope",
    }
}

label_set! {
    /// The `op` label of a store operation (one per Store trait method).
    RedisOp {
        Get => "get",
        List => "list",
        Open => "open",
        StoreData => "store_data",
        UpdateUser => "update_user",
        Close => "close",
        CloseUser => "close_user",
        Delete => "delete",
        Expire => "expire",
        Purge => "purge",
        Counts => "counts",
        Ping => "ping",
    }
}

label_set! {
    /// The `kind` label of a failed store operation.
    RedisErrorKind {
        Unavailable => "unavailable",
        Timeout => "timeout",
        Internal => "internal",
    }
}

label_set! {
    /// The `sweep` label: which background sweep ran.
    Sweep {
        Expiry => "expiry",
        Retention => "retention",
    }
}

label_set! {
    /// The `outcome` label of a sweep run.
    SweepOutcome {
        Ok => "ok",
        Error => "error",
    }
}

/// The registry and every metric handle of the service. Share it behind an `Arc`.
pub struct Metrics {
    registry: Registry,
    /// Indexed `cmd * Outcome::COUNT + outcome`.
    requests: Box<[IntCounter]>,
    request_duration: Box<[Histogram]>,
    requests_in_flight: IntGauge,
    connections_open: IntGauge,
    connections_accepted: IntCounter,
    connections_closed: IntCounter,
    protocol_errors: Box<[IntCounter]>,
    sessions_opened: IntCounter,
    sessions_reused: IntCounter,
    /// Indexed by [`CloseReason::index`].
    sessions_closed: Box<[IntCounter]>,
    sessions_refused: IntCounter,
    sessions_expired: IntCounter,
    sessions_deleted: IntCounter,
    sessions_purged: IntCounter,
    sessions_active: IntGauge,
    /// Not `sessions_sessions_total`: promtool reserves `_total` for counters.
    sessions_stored: IntGauge,
    store_up: IntGauge,
    redis_duration: Box<[Histogram]>,
    /// Indexed `op * RedisErrorKind::COUNT + kind`.
    redis_errors: Box<[IntCounter]>,
    /// Indexed `sweep * SweepOutcome::COUNT + outcome`.
    sweep_runs: Box<[IntCounter]>,
    sweep_duration: Box<[Histogram]>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Keeps `sessions_requests_in_flight` raised while alive; lowers it when dropped,
/// also when the request's future is cancelled.
#[derive(Debug)]
#[must_use = "the request counts as in flight only while the guard lives"]
pub struct InFlight(IntGauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Counts a connection as open while alive; counts it closed when dropped.
#[derive(Debug)]
#[must_use = "the connection counts as open only while the guard lives"]
pub struct ConnectionGuard {
    open: IntGauge,
    closed: IntCounter,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.open.dec();
        self.closed.inc();
    }
}

impl Metrics {
    /// Builds the registry with every metric registered and every known series
    /// created. Fails only on a programming error (a duplicate or invalid name).
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let r = &registry;

        let requests_vec = counter_vec(
            r,
            "sessions_requests_total",
            "Seneca requests answered, by command and outcome.",
            &["cmd", "outcome"],
        )?;
        let mut requests = Vec::with_capacity(Cmd::COUNT * Outcome::COUNT);
        for cmd in Cmd::ALL {
            for outcome in Outcome::ALL {
                requests.push(requests_vec.with_label_values(&[cmd.as_str(), outcome.as_str()]));
            }
        }

        let duration_vec = histogram_vec(
            r,
            "sessions_request_duration_seconds",
            "Time from a request line read to its reply written, by command.",
            &["cmd"],
            REQUEST_BUCKETS,
        )?;
        let request_duration = Cmd::ALL
            .iter()
            .map(|c| duration_vec.with_label_values(&[c.as_str()]))
            .collect();

        let protocol_vec = counter_vec(
            r,
            "sessions_protocol_errors_total",
            "Lines that could not be read as a Seneca message, by kind.",
            &["kind"],
        )?;
        let protocol_errors = ProtocolErrorKind::ALL
            .iter()
            .map(|k| protocol_vec.with_label_values(&[k.as_str()]))
            .collect();

        let redis_duration_vec = histogram_vec(
            r,
            "sessions_redis_command_duration_seconds",
            "Time a store operation took, by operation (successful or not).",
            &["op"],
            REQUEST_BUCKETS,
        )?;
        let redis_duration = RedisOp::ALL
            .iter()
            .map(|o| redis_duration_vec.with_label_values(&[o.as_str()]))
            .collect();

        let redis_errors_vec = counter_vec(
            r,
            "sessions_redis_errors_total",
            "Store operations that failed, by operation and kind.",
            &["op", "kind"],
        )?;
        let mut redis_errors = Vec::with_capacity(RedisOp::COUNT * RedisErrorKind::COUNT);
        for op in RedisOp::ALL {
            for kind in RedisErrorKind::ALL {
                redis_errors
                    .push(redis_errors_vec.with_label_values(&[op.as_str(), kind.as_str()]));
            }
        }

        let sweep_runs_vec = counter_vec(
            r,
            "sessions_sweep_runs_total",
            "Expiry and retention sweep runs, by sweep and outcome.",
            &["sweep", "outcome"],
        )?;
        let mut sweep_runs = Vec::with_capacity(Sweep::COUNT * SweepOutcome::COUNT);
        for sweep in Sweep::ALL {
            for outcome in SweepOutcome::ALL {
                sweep_runs
                    .push(sweep_runs_vec.with_label_values(&[sweep.as_str(), outcome.as_str()]));
            }
        }

        let sweep_duration_vec = histogram_vec(
            r,
            "sessions_sweep_duration_seconds",
            "Time one sweep run took, by sweep.",
            &["sweep"],
            SWEEP_BUCKETS,
        )?;
        let sweep_duration = Sweep::ALL
            .iter()
            .map(|s| sweep_duration_vec.with_label_values(&[s.as_str()]))
            .collect();

        let closed_vec = counter_vec(
            r,
            "sessions_sessions_closed_total",
            "Sessions closed for good, by reason (logout, idle, absolute, revoked, evicted); \
             each close counted once, by the replica that made it.",
            &["reason"],
        )?;
        let sessions_closed = CloseReason::ALL
            .iter()
            .map(|c| closed_vec.with_label_values(&[c.as_str()]))
            .collect();

        let build_info = IntGaugeVec::new(
            Opts::new(
                "sessions_build_info",
                "Always 1; the version label says which build is running.",
            ),
            &["version"],
        )?;
        registry.register(Box::new(build_info.clone()))?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);

        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;

        Ok(Metrics {
            requests: requests.into(),
            request_duration,
            requests_in_flight: gauge(
                r,
                "sessions_requests_in_flight",
                "Requests being handled right now.",
            )?,
            connections_open: gauge(
                r,
                "sessions_connections_open",
                "Seneca TCP connections open right now.",
            )?,
            connections_accepted: counter(
                r,
                "sessions_connections_accepted_total",
                "Seneca TCP connections accepted.",
            )?,
            connections_closed: counter(
                r,
                "sessions_connections_closed_total",
                "Seneca TCP connections closed (by either side).",
            )?,
            protocol_errors,
            sessions_opened: counter(
                r,
                "sessions_sessions_opened_total",
                "Sessions created by open_session (reuses not included).",
            )?,
            sessions_reused: counter(
                r,
                "sessions_sessions_reused_total",
                "open_session calls answered with an existing active session.",
            )?,
            sessions_closed,
            sessions_refused: counter(
                r,
                "sessions_sessions_refused_total",
                "open_session calls refused by the per-user session cap.",
            )?,
            sessions_expired: counter(
                r,
                "sessions_sessions_expired_total",
                "Sessions closed by this replica's expiry sweeps (idle or past the absolute lifetime).",
            )?,
            sessions_deleted: counter(
                r,
                "sessions_sessions_deleted_total",
                "Sessions deleted by delete_session or delete_session_by_id.",
            )?,
            sessions_purged: counter(
                r,
                "sessions_sessions_purged_total",
                "Closed sessions deleted by this replica's retention sweeps.",
            )?,
            sessions_active: gauge(
                r,
                "sessions_sessions_active",
                "Active sessions in the store (all replicas), refreshed periodically.",
            )?,
            sessions_stored: gauge(
                r,
                "sessions_sessions_stored",
                "Sessions in the store, active and closed (all replicas), refreshed periodically.",
            )?,
            store_up: gauge(
                r,
                "sessions_store_up",
                "1 when the last store health check answered in time, else 0.",
            )?,
            redis_duration,
            redis_errors: redis_errors.into(),
            sweep_runs: sweep_runs.into(),
            sweep_duration,
            registry,
        })
    }

    /// The registry, to register more collectors.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Every metric in the Prometheus text exposition format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut buf = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec fails only on a malformed family, which our own
        // registrations never produce; an empty scrape is the safe answer then.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "metrics encoding failed");
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }

    // --- requests ---------------------------------------------------------------

    /// Counts one answered request and records how long it took.
    pub fn observe_request(&self, cmd: Cmd, outcome: Outcome, seconds: f64) {
        self.requests[cmd.index() * Outcome::COUNT + outcome.index()].inc();
        self.request_duration[cmd.index()].observe(seconds);
    }

    /// Raises the in-flight gauge until the returned guard is dropped.
    pub fn request_started(&self) -> InFlight {
        self.requests_in_flight.inc();
        InFlight(self.requests_in_flight.clone())
    }

    /// Moves the in-flight gauge by `delta` (for callers that count without a guard).
    pub fn add_in_flight(&self, delta: i64) {
        self.requests_in_flight.add(delta);
    }

    /// Counts a line that could not be read as a Seneca message.
    pub fn protocol_error(&self, kind: ProtocolErrorKind) {
        self.protocol_errors[kind.index()].inc();
    }

    // --- connections ------------------------------------------------------------

    /// Counts an accepted connection; it counts as open until the guard is dropped.
    pub fn connection_opened(&self) -> ConnectionGuard {
        self.connections_accepted.inc();
        self.connections_open.inc();
        ConnectionGuard {
            open: self.connections_open.clone(),
            closed: self.connections_closed.clone(),
        }
    }

    /// Counts an accepted connection as open (for callers that count without a guard).
    pub fn connection_accepted(&self) {
        self.connections_accepted.inc();
        self.connections_open.inc();
    }

    /// Counts a connection closed (pairs with [`Metrics::connection_accepted`]).
    pub fn connection_ended(&self) {
        self.connections_open.dec();
        self.connections_closed.inc();
    }

    // --- session lifecycle ------------------------------------------------------

    /// Counts an open_session answer: a new session, or a reused one.
    pub fn session_opened(&self, reused: bool) {
        if reused {
            self.sessions_reused.inc();
        } else {
            self.sessions_opened.inc();
        }
    }

    /// Counts sessions closed for good, by reason.
    pub fn sessions_closed(&self, closes: &Closes) {
        for reason in CloseReason::ALL {
            let n = closes.get(reason);
            if n > 0 {
                self.sessions_closed[reason.index()].inc_by(n);
            }
        }
    }

    /// Counts an open_session refused by the per-user cap.
    pub fn session_refused(&self) {
        self.sessions_refused.inc();
    }

    /// Counts a session deleted by delete_session / delete_session_by_id.
    pub fn session_deleted(&self) {
        self.sessions_deleted.inc();
    }

    /// Counts sessions closed by an expiry sweep (also counted by reason in
    /// [`Metrics::sessions_closed`]).
    pub fn sessions_expired(&self, n: u64) {
        self.sessions_expired.inc_by(n);
    }

    /// Counts closed sessions deleted by a retention sweep.
    pub fn sessions_purged(&self, n: u64) {
        self.sessions_purged.inc_by(n);
    }

    /// Sets the active/total session gauges from the store's counts.
    pub fn set_session_counts(&self, counts: Counts) {
        self.sessions_active.set(saturating_i64(counts.active));
        self.sessions_stored.set(saturating_i64(counts.total));
    }

    // --- store ------------------------------------------------------------------

    /// Records how long a store operation took.
    pub fn observe_redis(&self, op: RedisOp, seconds: f64) {
        self.redis_duration[op.index()].observe(seconds);
    }

    /// Counts a failed store operation.
    pub fn redis_error(&self, op: RedisOp, kind: RedisErrorKind) {
        self.redis_errors[op.index() * RedisErrorKind::COUNT + kind.index()].inc();
    }

    /// Records whether the last store health check answered.
    pub fn set_store_up(&self, up: bool) {
        self.store_up.set(i64::from(up));
    }

    // --- sweeps -----------------------------------------------------------------

    /// Counts one sweep run and records how long it took.
    pub fn observe_sweep(&self, sweep: Sweep, outcome: SweepOutcome, took: Duration) {
        self.sweep_runs[sweep.index() * SweepOutcome::COUNT + outcome.index()].inc();
        self.sweep_duration[sweep.index()].observe(took.as_secs_f64());
    }
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn counter(r: &Registry, name: &str, help: &str) -> Result<IntCounter, prometheus::Error> {
    let c = IntCounter::new(name, help)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge(r: &Registry, name: &str, help: &str) -> Result<IntGauge, prometheus::Error> {
    let g = IntGauge::new(name, help)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

fn counter_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn histogram_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> Result<prometheus::HistogramVec, prometheus::Error> {
    let h = prometheus::HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )?;
    r.register(Box::new(h.clone()))?;
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line `series` (name with labels) in `text`.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn every_known_series_exists_at_zero() {
        let m = Metrics::new().unwrap();
        let text = m.render();
        for cmd in Cmd::ALL {
            for outcome in Outcome::ALL {
                let s = format!(
                    "sessions_requests_total{{cmd=\"{}\",outcome=\"{}\"}}",
                    cmd.as_str(),
                    outcome.as_str()
                );
                assert_eq!(sample(&text, &s), Some(0.0), "{s}");
            }
            let s = format!(
                "sessions_request_duration_seconds_count{{cmd=\"{}\"}}",
                cmd.as_str()
            );
            assert_eq!(sample(&text, &s), Some(0.0), "{s}");
        }
        for op in RedisOp::ALL {
            for kind in RedisErrorKind::ALL {
                let s = format!(
                    "sessions_redis_errors_total{{kind=\"{}\",op=\"{}\"}}",
                    kind.as_str(),
                    op.as_str()
                );
                assert_eq!(sample(&text, &s), Some(0.0), "{s}");
            }
        }
        for kind in ProtocolErrorKind::ALL {
            let s = format!(
                "sessions_protocol_errors_total{{kind=\"{}\"}}",
                kind.as_str()
            );
            assert_eq!(sample(&text, &s), Some(0.0), "{s}");
        }
        for reason in CloseReason::ALL {
            let s = format!(
                "sessions_sessions_closed_total{{reason=\"{}\"}}",
                reason.as_str()
            );
            assert_eq!(sample(&text, &s), Some(0.0), "{s}");
        }
        for sweep in Sweep::ALL {
            for outcome in SweepOutcome::ALL {
                let s = format!(
                    "sessions_sweep_runs_total{{outcome=\"{}\",sweep=\"{}\"}}",
                    outcome.as_str(),
                    sweep.as_str()
                );
                assert_eq!(sample(&text, &s), Some(0.0), "{s}");
            }
        }
        let build = format!(
            "sessions_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(sample(&text, &build), Some(1.0));
    }

    #[test]
    fn request_lands_in_its_own_series_only() {
        let m = Metrics::new().unwrap();
        m.observe_request(Cmd::OpenSession, Outcome::InvalidData, 0.000_2);
        m.observe_request(Cmd::OpenSession, Outcome::InvalidData, 0.003);
        m.observe_request(Cmd::GetSessions, Outcome::Ok, 0.001);
        let text = m.render();
        assert_eq!(
            sample(
                &text,
                r#"sessions_requests_total{cmd="open_session",outcome="invalid_data"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"sessions_requests_total{cmd="open_session",outcome="ok"}"#
            ),
            Some(0.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"sessions_requests_total{cmd="get_sessions",outcome="ok"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"sessions_request_duration_seconds_bucket{cmd="open_session",le="0.00025"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"sessions_request_duration_seconds_count{cmd="open_session"}"#
            ),
            Some(2.0)
        );
    }

    #[test]
    fn guards_undo_on_drop() {
        let m = Metrics::new().unwrap();
        let a = m.request_started();
        let b = m.request_started();
        let c = m.connection_opened();
        let text = m.render();
        assert_eq!(sample(&text, "sessions_requests_in_flight"), Some(2.0));
        assert_eq!(sample(&text, "sessions_connections_open"), Some(1.0));
        drop((a, b, c));
        let text = m.render();
        assert_eq!(sample(&text, "sessions_requests_in_flight"), Some(0.0));
        assert_eq!(sample(&text, "sessions_connections_open"), Some(0.0));
        assert_eq!(
            sample(&text, "sessions_connections_accepted_total"),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "sessions_connections_closed_total"),
            Some(1.0)
        );
    }

    #[test]
    fn session_counters_and_gauges() {
        let m = Metrics::new().unwrap();
        m.session_opened(false);
        m.session_opened(true);
        m.session_opened(true);
        let mut closes = Closes::one(CloseReason::Logout);
        closes.add(CloseReason::Absolute, 4);
        m.sessions_closed(&closes);
        m.session_refused();
        m.session_deleted();
        m.sessions_expired(7);
        m.sessions_purged(3);
        m.set_session_counts(Counts {
            active: 5,
            total: 9,
        });
        let text = m.render();
        assert_eq!(sample(&text, "sessions_sessions_opened_total"), Some(1.0));
        assert_eq!(sample(&text, "sessions_sessions_reused_total"), Some(2.0));
        assert_eq!(
            sample(&text, r#"sessions_sessions_closed_total{reason="logout"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"sessions_sessions_closed_total{reason="absolute"}"#
            ),
            Some(4.0)
        );
        assert_eq!(
            sample(&text, r#"sessions_sessions_closed_total{reason="revoked"}"#),
            Some(0.0)
        );
        assert_eq!(sample(&text, "sessions_sessions_refused_total"), Some(1.0));
        assert_eq!(sample(&text, "sessions_sessions_deleted_total"), Some(1.0));
        assert_eq!(sample(&text, "sessions_sessions_expired_total"), Some(7.0));
        assert_eq!(sample(&text, "sessions_sessions_purged_total"), Some(3.0));
        assert_eq!(sample(&text, "sessions_sessions_active"), Some(5.0));
        assert_eq!(sample(&text, "sessions_sessions_stored"), Some(9.0));
    }

    #[test]
    fn store_and_sweep_metrics() {
        let m = Metrics::new().unwrap();
        m.observe_redis(RedisOp::Expire, 0.002);
        m.redis_error(RedisOp::Ping, RedisErrorKind::Timeout);
        m.set_store_up(true);
        m.observe_sweep(
            Sweep::Retention,
            SweepOutcome::Error,
            Duration::from_millis(20),
        );
        let text = m.render();
        assert_eq!(
            sample(
                &text,
                r#"sessions_redis_command_duration_seconds_count{op="expire"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"sessions_redis_errors_total{kind="timeout",op="ping"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"sessions_redis_errors_total{kind="timeout",op="get"}"#
            ),
            Some(0.0)
        );
        assert_eq!(sample(&text, "sessions_store_up"), Some(1.0));
        assert_eq!(
            sample(
                &text,
                r#"sessions_sweep_runs_total{outcome="error",sweep="retention"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"sessions_sweep_duration_seconds_count{sweep="retention"}"#
            ),
            Some(1.0)
        );
    }

    #[test]
    fn unknown_command_names_collapse_to_unknown() {
        assert_eq!(Cmd::from_name("open_session"), Cmd::OpenSession);
        assert_eq!(
            Cmd::from_name("delete_session_by_id"),
            Cmd::DeleteSessionById
        );
        assert_eq!(Cmd::from_name("drop_tables"), Cmd::Unknown);
        assert_eq!(Cmd::from_name("unknown"), Cmd::Unknown);
        assert_eq!(Cmd::from_name(""), Cmd::Unknown);
        assert_eq!(Cmd::COUNT, 11);
        assert_eq!(
            Outcome::from_label("store_unavailable"),
            Some(Outcome::StoreUnavailable)
        );
        assert_eq!(Outcome::from_label("teapot"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_metrics_are_exported() {
        let text = Metrics::new().unwrap().render();
        assert!(text.contains("process_resident_memory_bytes"));
        assert!(text.contains("process_open_fds"));
        assert!(text.contains("process_cpu_seconds_total"));
    }
}
