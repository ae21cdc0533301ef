//! The session gauges (`sessions_sessions_active`, `sessions_sessions_stored`): set
//! from the store's counts on an interval, never per request, so their cost does not
//! grow with traffic. Every replica reports the same store-wide numbers; dashboards
//! take `max` across replicas, not `sum`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::metrics::Metrics;
use crate::store::Store;

/// The default refresh interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);

/// Reads `store.counts()` once and sets the gauges. Bounded by `timeout`; on error or
/// timeout the gauges keep their last values and the error is returned for logging.
pub async fn refresh_once<S: Store>(
    store: &S,
    metrics: &Metrics,
    timeout: Duration,
) -> Result<(), String> {
    match tokio::time::timeout(timeout, store.counts()).await {
        Ok(Ok(counts)) => {
            metrics.set_session_counts(counts);
            Ok(())
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// Refreshes the gauges at once and then every `interval` until `shutdown`
/// completes. Failures are logged when they start and when they end, not on every
/// tick, so an outage does not flood the log.
pub async fn refresh_counts<S: Store>(
    store: Arc<S>,
    metrics: Arc<Metrics>,
    interval: Duration,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = ticker.tick() => {}
        }
        let res = tokio::select! {
            () = &mut shutdown => break,
            res = refresh_once(store.as_ref(), &metrics, interval) => res,
        };
        match res {
            Ok(()) if failing => {
                tracing::info!("session counts readable again");
                failing = false;
            }
            Ok(()) => {}
            Err(e) if !failing => {
                tracing::warn!(error = %e, "cannot read session counts; gauges keep their last values");
                failing = true;
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::{At, Lifetimes};
    use crate::store::memory::MemoryStore;
    use crate::store::OpenRequest;

    fn value(metrics: &Metrics, series: &str) -> Option<u64> {
        metrics
            .render()
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    async fn open(store: &MemoryStore, user: &str) -> String {
        let req = OpenRequest {
            user_id: user.to_owned(),
            user_name: None,
            address: None,
            client: None,
            user: None,
            data: None,
            reuse: false,
            at: At::new(1_000, Lifetimes::default()),
            cap: Default::default(),
        };
        store.open(req).await.unwrap().session.id
    }

    #[tokio::test]
    async fn refresh_once_sets_both_gauges() {
        let store = MemoryStore::new();
        let metrics = Metrics::new().unwrap();
        let a = open(&store, "a").await;
        open(&store, "b").await;
        open(&store, "c").await;
        store
            .close(&a, At::new(2_000, Lifetimes::default()))
            .await
            .unwrap();
        refresh_once(&store, &metrics, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(value(&metrics, "sessions_sessions_active"), Some(2));
        assert_eq!(value(&metrics, "sessions_sessions_stored"), Some(3));
    }

    #[tokio::test(start_paused = true)]
    async fn refresh_counts_follows_the_store_and_stops_on_shutdown() {
        let store = Arc::new(MemoryStore::new());
        let metrics = Arc::new(Metrics::new().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(refresh_counts(
            store.clone(),
            metrics.clone(),
            Duration::from_secs(15),
            async {
                let _ = rx.await;
            },
        ));
        // Paused clock: the first refresh happens at once.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(value(&metrics, "sessions_sessions_stored"), Some(0));
        open(&store, "x").await;
        // Not per request: unchanged until the next tick.
        assert_eq!(value(&metrics, "sessions_sessions_stored"), Some(0));
        tokio::time::sleep(Duration::from_secs(15)).await;
        assert_eq!(value(&metrics, "sessions_sessions_stored"), Some(1));
        assert_eq!(value(&metrics, "sessions_sessions_active"), Some(1));
        tx.send(()).unwrap();
        task.await.unwrap();
    }
}
