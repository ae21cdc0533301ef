//! The sweep tests, written over any `Store` so every backend runs the same suite:
//! `tests/sweeper.rs` runs it on the embedded store; a Redis run passes a store on a
//! throwaway redis-server. `tag` keeps user ids apart when a store is shared.

use std::sync::Arc;

use sessions::metrics::Metrics;
use sessions::model::Millis;
use sessions::store::{ListQuery, OpenRequest, Store};
use sessions::sweeper::{sweep_once, SweepConfig, SweepReport};

const HOUR: Millis = 60 * 60 * 1000;
const DAY: Millis = 24 * HOUR;
/// A fixed "now" (2027-01-15), so the tests do not depend on the clock.
const NOW: Millis = 1_800_000_000_000;

fn open_req(user: &str, now: Millis) -> OpenRequest {
    OpenRequest {
        user_id: user.to_owned(),
        user_name: None,
        address: None,
        client: None,
        user: Some(serde_json::value::to_raw_value(&serde_json::json!({"n": 1})).unwrap()),
        data: Some(serde_json::value::to_raw_value(&serde_json::json!([1, 2])).unwrap()),
        reuse: false,
        at: super::at(now),
        cap: Default::default(),
    }
}

/// Small batches, so the walk repeats buckets and the tests cover that loop.
fn small_batches() -> SweepConfig {
    SweepConfig {
        batch: 3,
        max_batches_per_bucket: 1000,
        ..SweepConfig::default()
    }
}

/// The value of one series in the rendered metrics.
pub fn sample(metrics: &Metrics, series: &str) -> u64 {
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{series} not in the rendered metrics"))
}

async fn user_total<S: Store>(store: &S, user: &str, active: Option<bool>) -> u64 {
    let page = store
        .list(
            &ListQuery {
                user_id: Some(user.to_owned()),
                active,
                take: 10,
                total: true,
                ..ListQuery::default()
            },
            super::at(NOW),
        )
        .await
        .unwrap();
    page.total.unwrap()
}

/// Idle sessions are closed as by close_session, at the instant they expired (not the
/// sweep's own time); fresh ones stay untouched.
pub async fn expires_idle_sessions_only<S: Store>(store: &S, tag: &str) {
    let metrics = Metrics::new().unwrap();
    let cfg = small_batches();
    let mut stale = Vec::new();
    for i in 0..10 {
        let user = format!("{tag}-old-{i}");
        stale.push(
            store
                .open(open_req(&user, NOW - DAY - 1))
                .await
                .unwrap()
                .session
                .id,
        );
    }
    let mut fresh = Vec::new();
    for i in 0..4 {
        let user = format!("{tag}-new-{i}");
        fresh.push(
            store
                .open(open_req(&user, NOW - DAY + 1))
                .await
                .unwrap()
                .session
                .id,
        );
    }

    let report = sweep_once(store, &cfg, NOW, &metrics).await.unwrap();
    assert_eq!(
        report,
        SweepReport {
            expired: 10,
            purged: 0
        }
    );
    for id in &stale {
        let s = store.get(id).await.unwrap().unwrap();
        assert!(!s.active, "{id} should be closed");
        // Opened (and last touched) at NOW - DAY - 1: expired at NOW - 1.
        assert_eq!(s.close_time, Some(NOW - 1));
        assert_eq!(s.request_time, NOW - 1);
        assert!(
            s.data.is_none() && s.user.is_none(),
            "closing clears data and user"
        );
    }
    for id in &fresh {
        let s = store.get(id).await.unwrap().unwrap();
        assert!(s.active, "{id} is not idle yet");
        assert!(s.data.is_some() && s.user.is_some());
        assert_eq!(s.close_time, None);
    }
    for i in 0..10 {
        let user = format!("{tag}-old-{i}");
        assert_eq!(user_total(store, &user, Some(true)).await, 0);
        assert_eq!(user_total(store, &user, Some(false)).await, 1);
    }
    assert_eq!(sample(&metrics, "sessions_sessions_expired_total"), 10);
    assert_eq!(
        sample(
            &metrics,
            r#"sessions_sweep_runs_total{outcome="ok",sweep="expiry"}"#
        ),
        1
    );

    // Nothing left to do: a second sweep changes nothing.
    let again = sweep_once(store, &cfg, NOW, &metrics).await.unwrap();
    assert_eq!(again, SweepReport::default());
    assert_eq!(sample(&metrics, "sessions_sessions_expired_total"), 10);
}

/// Retention deletes sessions closed before the cutoff with their index entries,
/// keeps newer closed ones and active ones; with retention `None` nothing goes.
pub async fn retention_deletes_old_closed_sessions<S: Store>(store: &S, tag: &str) {
    let retention = 30 * DAY;
    // Opened a moment before they are closed, so they close as logouts then (not at
    // an earlier idle expiry).
    let mut old = Vec::new();
    for i in 0..7 {
        let s = store
            .open(open_req(&format!("{tag}-a-{i}"), NOW - retention - 2))
            .await
            .unwrap();
        store
            .close(&s.session.id, super::at(NOW - retention - 1))
            .await
            .unwrap();
        old.push(s.session.id);
    }
    let mut recent = Vec::new();
    for i in 0..3 {
        let s = store
            .open(open_req(&format!("{tag}-b-{i}"), NOW - retention))
            .await
            .unwrap();
        store
            .close(&s.session.id, super::at(NOW - retention + 1))
            .await
            .unwrap();
        recent.push(s.session.id);
    }
    let live = store
        .open(open_req(&format!("{tag}-c"), NOW))
        .await
        .unwrap()
        .session
        .id;

    let metrics = Metrics::new().unwrap();
    let keep_forever = SweepConfig {
        retention: None,
        ..small_batches()
    };
    let report = sweep_once(store, &keep_forever, NOW, &metrics)
        .await
        .unwrap();
    assert_eq!(report, SweepReport::default());
    for id in old.iter().chain(&recent) {
        assert!(
            store.get(id).await.unwrap().is_some(),
            "retention None keeps {id}"
        );
    }

    let report = sweep_once(store, &small_batches(), NOW, &metrics)
        .await
        .unwrap();
    assert_eq!(
        report,
        SweepReport {
            expired: 0,
            purged: 7
        }
    );
    for id in &old {
        assert!(
            store.get(id).await.unwrap().is_none(),
            "{id} is past retention"
        );
    }
    for i in 0..7 {
        assert_eq!(
            user_total(store, &format!("{tag}-a-{i}"), None).await,
            0,
            "index entries go with the session"
        );
    }
    for id in &recent {
        assert!(
            store.get(id).await.unwrap().is_some(),
            "{id} is within retention"
        );
    }
    assert!(store.get(&live).await.unwrap().unwrap().active);
    assert_eq!(sample(&metrics, "sessions_sessions_purged_total"), 7);
    assert_eq!(
        sample(
            &metrics,
            r#"sessions_sweep_runs_total{outcome="ok",sweep="retention"}"#
        ),
        1
    );
}

/// Two sweeps started together over the same expired sessions, on separate tasks
/// (parallel on a multi-thread runtime), close each session exactly once.
pub async fn concurrent_sweeps_close_each_once<S: Store>(store: Arc<S>, tag: &str) {
    let n = 300u64;
    for i in 0..n {
        store
            .open(open_req(&format!("{tag}-{i}"), NOW - 2 * DAY))
            .await
            .unwrap();
    }
    let metrics = Arc::new(Metrics::new().unwrap());
    let cfg = SweepConfig {
        batch: 7,
        max_batches_per_bucket: 10_000,
        retention: None,
        ..SweepConfig::default()
    };
    let sweep = || {
        let (store, cfg, metrics) = (store.clone(), cfg.clone(), metrics.clone());
        tokio::spawn(async move { sweep_once(store.as_ref(), &cfg, NOW, &metrics).await })
    };
    let (a, b) = tokio::join!(sweep(), sweep());
    let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
    assert_eq!(a.expired + b.expired, n, "each session closed exactly once");
    assert_eq!(sample(&metrics, "sessions_sessions_expired_total"), n);
    assert_eq!(
        sample(
            &metrics,
            r#"sessions_sweep_runs_total{outcome="ok",sweep="expiry"}"#
        ),
        2
    );
    for i in 0..n {
        assert_eq!(
            user_total(store.as_ref(), &format!("{tag}-{i}"), Some(true)).await,
            0
        );
    }
}
