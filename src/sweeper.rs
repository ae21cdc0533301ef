//! The expiry and retention sweeps (DESIGN §3): closing sessions idle longer than the
//! idle timeout or older than the absolute lifetime, each at the instant it expired,
//! and deleting closed sessions older than the retention.
//!
//! Expiry is exact without the sweep (every command judges it at its own `now`); the
//! sweep makes permanent what reads already show, so the indexes, the reuse slots and
//! the retention clock agree with it.
//!
//! Both are explicit, batched walks over every bucket of the store. Each batch is one
//! atomic store call that closes or deletes only what is still due, so any number of
//! replicas may sweep at once and each session is closed (or deleted) exactly once.
//! Every replica runs [`run`]; its first run comes after a random fraction of the
//! interval and later runs at the interval ± jitter, so replicas started together do
//! not all sweep in the same second.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::lifecycle::{At, Lifetimes};
use crate::metrics::{Metrics, Sweep, SweepOutcome};
use crate::model::{now_ms, Millis};
use crate::store::{Store, StoreError};

/// How and when to sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepConfig {
    /// An active session ends this long after its request_time.
    pub idle_timeout: Duration,
    /// An active session ends this long after its open_time however busy it is;
    /// `None`: no such limit (configured as 0).
    pub absolute_lifetime: Option<Duration>,
    /// Time between two sweeps of one replica (before jitter).
    pub interval: Duration,
    /// Each wait is `interval × (1 ± jitter)`, drawn uniformly; in `[0, 1)`.
    pub jitter: f64,
    /// Closed sessions older than this (by close_time) are deleted; `None` keeps them
    /// forever (configured as 0).
    pub retention: Option<Duration>,
    /// Sessions closed or deleted per store call.
    pub batch: usize,
    /// Store calls per bucket and sweep kind in one run: bounds one run's work to
    /// `buckets × batch × max_batches_per_bucket` sessions. What is left over is due
    /// next run.
    pub max_batches_per_bucket: usize,
}

impl Default for SweepConfig {
    fn default() -> Self {
        SweepConfig {
            idle_timeout: Duration::from_secs(24 * 60 * 60),
            absolute_lifetime: None,
            interval: Duration::from_secs(15 * 60),
            jitter: 0.2,
            retention: Some(Duration::from_secs(30 * 24 * 60 * 60)),
            batch: 500,
            max_batches_per_bucket: 20,
        }
    }
}

/// A [`SweepConfig`] that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SweepConfigError {
    #[error("idle timeout must be greater than 0")]
    ZeroIdleTimeout,
    #[error("sweep interval must be greater than 0")]
    ZeroInterval,
    #[error("sweep jitter must be at least 0 and below 1, got {0}")]
    BadJitter(f64),
    #[error("sweep batch size must be greater than 0")]
    ZeroBatch,
    #[error("sweep batches per bucket must be greater than 0")]
    ZeroMaxBatches,
}

impl SweepConfig {
    /// The lifetimes expiry is judged by, on every command and in the sweep.
    pub fn lifetimes(&self) -> Lifetimes {
        Lifetimes::new(self.idle_timeout, self.absolute_lifetime)
    }

    /// Checks the settings; for config loading to fail at start with a clear message.
    pub fn validate(&self) -> Result<(), SweepConfigError> {
        if self.idle_timeout.is_zero() {
            return Err(SweepConfigError::ZeroIdleTimeout);
        }
        if self.interval.is_zero() {
            return Err(SweepConfigError::ZeroInterval);
        }
        if !(0.0..1.0).contains(&self.jitter) {
            return Err(SweepConfigError::BadJitter(self.jitter));
        }
        if self.batch == 0 {
            return Err(SweepConfigError::ZeroBatch);
        }
        if self.max_batches_per_bucket == 0 {
            return Err(SweepConfigError::ZeroMaxBatches);
        }
        Ok(())
    }
}

/// What one [`sweep_once`] did (this caller's share when several sweep at once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Active sessions closed for inactivity or age.
    pub expired: u64,
    /// Closed sessions deleted for retention.
    pub purged: u64,
}

/// `now - d` in milliseconds, saturating (a huge duration means "nothing is due").
fn cutoff(now: Millis, d: Duration) -> Millis {
    let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    now.saturating_sub(ms)
}

/// Walks every bucket with `step(bucket, limit)`, repeating a bucket while a batch
/// says more may be due, up to the per-bucket bound. Stops at the first store error,
/// returning it with the count so far. `on_batch` sees each batch as it lands (so
/// metrics stay right even when a later batch fails) and answers its count and
/// whether more may be due.
async fn walk<S, T, F, Fut>(
    store: &S,
    cfg: &SweepConfig,
    mut step: F,
    on_batch: impl Fn(&T) -> (u64, bool),
) -> (u64, Result<(), StoreError>)
where
    S: Store,
    F: FnMut(u16, usize) -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut done = 0u64;
    for bucket in 0..store.buckets() {
        for _ in 0..cfg.max_batches_per_bucket {
            match step(bucket, cfg.batch).await {
                Ok(batch) => {
                    let (n, more) = on_batch(&batch);
                    done += n;
                    if !more {
                        break;
                    }
                }
                Err(e) => return (done, Err(e)),
            }
        }
    }
    (done, Ok(()))
}

/// Closes every active session that has expired by `now` (idle past the timeout, or
/// older than the absolute lifetime), each at the instant it expired, as
/// close_session does (within the per-run bound). Returns how many this call closed.
pub async fn expire_once<S: Store>(
    store: &S,
    cfg: &SweepConfig,
    now: Millis,
    metrics: &Metrics,
) -> Result<u64, StoreError> {
    let started = Instant::now();
    let at = At::new(now, cfg.lifetimes());
    let (n, res) = walk(
        store,
        cfg,
        |b, limit| store.expire_bucket(b, at, limit),
        |swept| {
            let n = swept.closed.expired();
            metrics.sessions_expired(n);
            metrics.sessions_closed(&swept.closed);
            (n, swept.more)
        },
    )
    .await;
    let outcome = if res.is_ok() {
        SweepOutcome::Ok
    } else {
        SweepOutcome::Error
    };
    metrics.observe_sweep(Sweep::Expiry, outcome, started.elapsed());
    res.map(|()| n)
}

/// Deletes every closed session closed before `now - retention` (within the per-run
/// bound); does nothing when retention is `None`. Returns how many this call deleted.
pub async fn purge_once<S: Store>(
    store: &S,
    cfg: &SweepConfig,
    now: Millis,
    metrics: &Metrics,
) -> Result<u64, StoreError> {
    let Some(retention) = cfg.retention else {
        return Ok(0);
    };
    let started = Instant::now();
    let cut = cutoff(now, retention);
    let (n, res) = walk(
        store,
        cfg,
        |b, limit| store.purge_bucket(b, cut, limit),
        |n: &u64| {
            metrics.sessions_purged(*n);
            (*n, *n >= cfg.batch as u64)
        },
    )
    .await;
    let outcome = if res.is_ok() {
        SweepOutcome::Ok
    } else {
        SweepOutcome::Error
    };
    metrics.observe_sweep(Sweep::Retention, outcome, started.elapsed());
    res.map(|()| n)
}

/// One full sweep: expiry, then retention. Retention runs even when expiry failed
/// (they touch different sessions); the first error is returned. Counters in
/// `metrics` include what was done before an error.
pub async fn sweep_once<S: Store>(
    store: &S,
    cfg: &SweepConfig,
    now: Millis,
    metrics: &Metrics,
) -> Result<SweepReport, StoreError> {
    let expired = expire_once(store, cfg, now, metrics).await;
    let purged = purge_once(store, cfg, now, metrics).await;
    Ok(SweepReport {
        expired: expired?,
        purged: purged?,
    })
}

/// A uniformly random fraction of `d`: the first wait, so replicas started together
/// spread their sweeps over one interval.
fn first_delay(d: Duration) -> Duration {
    d.mul_f64(rand::random::<f64>())
}

/// `interval × (1 ± jitter)`, drawn uniformly.
fn next_delay(interval: Duration, jitter: f64) -> Duration {
    let jitter = jitter.clamp(0.0, 0.999);
    let factor = 1.0 + jitter * (2.0 * rand::random::<f64>() - 1.0);
    interval.mul_f64(factor)
}

/// Runs [`sweep_once`] every interval ± jitter until `shutdown` completes. Store
/// errors are logged and counted, and the next run tries again. A sweep under way
/// when shutdown comes is abandoned between two store calls, which is safe: each call
/// is atomic and the rest is due next time, here or on another replica.
pub async fn run<S: Store>(
    store: Arc<S>,
    cfg: SweepConfig,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut delay = first_delay(cfg.interval);
    tracing::info!(
        first_in_ms = delay.as_millis() as u64,
        interval_s = cfg.interval.as_secs(),
        idle_timeout_s = cfg.idle_timeout.as_secs(),
        absolute_lifetime_s = cfg.absolute_lifetime.map(|a| a.as_secs()),
        retention_s = cfg.retention.map(|r| r.as_secs()),
        "sweeper started"
    );
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(delay) => {}
        }
        let started = Instant::now();
        tokio::select! {
            () = &mut shutdown => break,
            res = sweep_once(store.as_ref(), &cfg, now_ms(), &metrics) => {
                let took_ms = started.elapsed().as_millis() as u64;
                match res {
                    Ok(r) => tracing::info!(
                        expired = r.expired,
                        purged = r.purged,
                        took_ms,
                        "sweep finished"
                    ),
                    Err(e) => tracing::warn!(
                        error = %e,
                        took_ms,
                        "sweep failed; retrying next interval"
                    ),
                }
            }
        }
        delay = next_delay(cfg.interval, cfg.jitter);
    }
    tracing::info!("sweeper stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use crate::store::OpenRequest;
    use crate::testing::Faulty;

    #[tokio::test]
    async fn per_run_bound_leaves_the_rest_for_next_time() {
        let store = MemoryStore::new();
        let now: Millis = 1_800_000_000_000;
        for i in 0..10 {
            store
                .open(OpenRequest {
                    user_id: format!("u{i}"),
                    user_name: None,
                    address: None,
                    client: None,
                    user: None,
                    data: None,
                    reuse: false,
                    at: At::new(now - 2 * 24 * 3_600_000, Lifetimes::default()),
                    cap: Default::default(),
                })
                .await
                .unwrap();
        }
        let metrics = Metrics::new().unwrap();
        let cfg = SweepConfig {
            batch: 3,
            max_batches_per_bucket: 2,
            ..SweepConfig::default()
        };
        // MemoryStore has one bucket: at most 2 batches of 3 per run.
        assert_eq!(
            sweep_once(&store, &cfg, now, &metrics)
                .await
                .unwrap()
                .expired,
            6
        );
        assert_eq!(
            sweep_once(&store, &cfg, now, &metrics)
                .await
                .unwrap()
                .expired,
            4
        );
        assert_eq!(
            sweep_once(&store, &cfg, now, &metrics)
                .await
                .unwrap()
                .expired,
            0
        );
    }

    #[test]
    fn defaults_follow_the_design() {
        let d = SweepConfig::default();
        assert_eq!(d.idle_timeout, Duration::from_secs(86_400));
        assert_eq!(d.interval, Duration::from_secs(900));
        assert_eq!(d.retention, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(d.validate(), Ok(()));
        let bad = SweepConfig {
            jitter: 1.0,
            ..d.clone()
        };
        assert_eq!(bad.validate(), Err(SweepConfigError::BadJitter(1.0)));
        let bad = SweepConfig {
            batch: 0,
            ..d.clone()
        };
        assert_eq!(bad.validate(), Err(SweepConfigError::ZeroBatch));
        let bad = SweepConfig {
            interval: Duration::ZERO,
            ..d
        };
        assert_eq!(bad.validate(), Err(SweepConfigError::ZeroInterval));
    }

    #[test]
    fn delays_stay_within_their_ranges() {
        let i = Duration::from_secs(100);
        for _ in 0..1000 {
            let d = next_delay(i, 0.2);
            assert!(
                d >= Duration::from_secs(80) && d <= Duration::from_secs(120),
                "{d:?}"
            );
            assert!(first_delay(i) <= i);
        }
        assert_eq!(next_delay(i, 0.0), i);
    }

    #[test]
    fn cutoff_saturates() {
        assert_eq!(cutoff(1000, Duration::from_millis(400)), 600);
        assert_eq!(cutoff(-10, Duration::MAX), i64::MIN);
    }

    #[tokio::test(start_paused = true)]
    async fn run_sweeps_on_its_interval_and_stops_on_shutdown() {
        let store = Arc::new(MemoryStore::new());
        let metrics = Arc::new(Metrics::new().unwrap());
        let cfg = SweepConfig {
            interval: Duration::from_secs(60),
            ..SweepConfig::default()
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(store.clone(), cfg, metrics.clone(), async {
            let _ = rx.await;
        }));
        // Paused time: sleeping advances the clock once the runtime is idle. 10 min of
        // 60 s ± 20% intervals (first within 60 s) is at least 8 runs.
        tokio::time::sleep(Duration::from_secs(600)).await;
        let runs = counter(
            &metrics,
            r#"sessions_sweep_runs_total{outcome="ok",sweep="expiry"}"#,
        );
        assert!((8..=13).contains(&runs), "{runs} runs in 10 min");
        tx.send(()).unwrap();
        task.await.unwrap();
    }

    fn counter(metrics: &Metrics, name: &str) -> u64 {
        metrics
            .render()
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap()
    }

    #[tokio::test]
    async fn a_failing_store_fails_both_sweeps_and_counts_them() {
        let store = Faulty::default();
        store.set_down(true);
        let metrics = Metrics::new().unwrap();
        let res = sweep_once(&store, &SweepConfig::default(), 1_000, &metrics).await;
        assert!(matches!(res, Err(StoreError::Unavailable(_))));
        for sweep in ["expiry", "retention"] {
            let errors = format!(r#"sessions_sweep_runs_total{{outcome="error",sweep="{sweep}"}}"#);
            assert_eq!(counter(&metrics, &errors), 1, "{sweep} ran and failed");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn run_survives_store_errors() {
        let store = Arc::new(Faulty::default());
        store
            .inner
            .open(OpenRequest {
                user_id: "idle".into(),
                user_name: None,
                address: None,
                client: None,
                user: None,
                data: None,
                reuse: false,
                at: At::new(0, Lifetimes::default()),
                cap: Default::default(),
            })
            .await
            .unwrap();
        store.set_down(true);
        let metrics = Arc::new(Metrics::new().unwrap());
        let cfg = SweepConfig {
            interval: Duration::from_secs(60),
            ..SweepConfig::default()
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(store.clone(), cfg, metrics.clone(), async {
            let _ = rx.await;
        }));
        tokio::time::sleep(Duration::from_secs(300)).await;
        let failed = r#"sessions_sweep_runs_total{outcome="error",sweep="expiry"}"#;
        assert!(counter(&metrics, failed) >= 3);
        store.set_down(false);
        tokio::time::sleep(Duration::from_secs(300)).await;
        let ok = r#"sessions_sweep_runs_total{outcome="ok",sweep="expiry"}"#;
        assert!(
            counter(&metrics, ok) >= 3,
            "sweeps resumed after the outage"
        );
        assert_eq!(counter(&metrics, "sessions_sessions_expired_total"), 1);
        assert!(!task.is_finished());
        tx.send(()).unwrap();
        task.await.unwrap();
    }
}
