//! Failures under load: three replicas of the built binary on one redis-server behind
//! HAProxy (TCP, round robin, health check on `/ready`), with eight clients opening
//! sessions and storing data through the balancer, reconnecting when a connection
//! breaks, and recording every acknowledged write (`common::load`).
//!
//! - A replica is killed with SIGKILL: clients reconnect through the balancer to the
//!   others, and afterwards every acknowledged open and store is readable with its
//!   newest acknowledged data.
//! - Redis is killed with SIGKILL for a few seconds and started again on the same
//!   port and directory with its append-only file: meanwhile requests fail fast with
//!   STORE_UNAVAILABLE, replicas stay up and report not ready; afterwards they recover
//!   without a restart and every acknowledged write is there. The test runs Redis with
//!   `appendfsync always` so that durability is exact; production runs `everysec`,
//!   where a Redis crash may lose up to about a second of acknowledged writes.
//!
//! Each test prints the errors its clients saw, by kind, and how long the disturbance
//! lasted (measured, not asserted), then runs `sessions check` and asserts it finds
//! the dataset consistent. Needs haproxy on PATH; fails (never skips) without it.

mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::fleet::{self, Fleet};
use common::haproxy::HaProxy;
use common::load::{print_failures, Load, LoadLog, LoadSpec, Outcome};
use common::redis_server::RedisServer;

/// What this suite runs besides the service (see `common::needs`).
const NEEDS: &[common::needs::Need] = &[
    common::needs::Need::RedisServer,
    common::needs::Need::Haproxy,
];

/// One fault test at a time: they measure disturbance on a small machine.
static SERIAL: Mutex<()> = Mutex::new(());

/// The replicas' SESSIONS_REQUEST_TIMEOUT.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// What a failing reply may take beyond the request timeout (scheduling, the
/// balancer, a loaded CI machine): a bound far below a Seneca client's 22 s timeout,
/// not a performance claim.
const REPLY_MARGIN: Duration = Duration::from_secs(2);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn start_fleet(redis: &RedisServer, prefix: &str) -> (Fleet, HaProxy) {
    let fleet = Fleet::start(
        3,
        &redis.url(),
        prefix,
        &[("SESSIONS_REQUEST_TIMEOUT", "1s")],
    );
    let lb = HaProxy::start(&fleet.backends());
    lb.wait_all_up(Duration::from_secs(15));
    (fleet, lb)
}

fn load_spec(lb: &HaProxy, tag: &str) -> LoadSpec {
    LoadSpec {
        addr: lb.addr(),
        clients: 8,
        tag: tag.to_string(),
        reply_wait: Duration::from_secs(10),
        pause: Duration::from_millis(2),
        max_requests: 50_000,
        max_time: Duration::from_secs(60),
    }
}

/// Polls (without blocking the runtime) until `f` holds or `wait` passes; returns
/// when it first held.
async fn until(wait: Duration, mut f: impl FnMut() -> bool) -> Option<Instant> {
    let deadline = Instant::now() + wait;
    loop {
        if f() {
            return Some(Instant::now());
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// Asserts the load did real work and lost no acknowledged write.
async fn assert_no_lost_writes(log: &LoadLog, lb: &HaProxy) {
    assert!(
        log.sessions.len() >= 20 && log.acknowledged() >= 200,
        "too little load to mean anything: {} sessions, {} acknowledged requests",
        log.sessions.len(),
        log.acknowledged()
    );
    let lost = log.lost_writes(lb.addr()).await;
    println!(
        "acknowledged: {} requests over {} sessions; lost acknowledged writes: {}",
        log.acknowledged(),
        log.sessions.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost, e.g.:\n{}",
        lost.len(),
        lost.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// What a client that connects through the balancer now sees for one request
/// (printed, not asserted: that is the balancer's behaviour, not the service's).
async fn new_connection_outcome(lb: &HaProxy) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let Ok(Ok(mut s)) = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(lb.addr()),
    )
    .await
    else {
        return "connection refused".into();
    };
    let act = serde_json::json!({"cmd": "get_session_by_id", "session_id": "0".repeat(32)});
    if s.write_all(common::seneca::line("probe", &act, true).as_bytes())
        .await
        .is_err()
    {
        return "connection closed before the request was written".into();
    }
    let mut reply = String::new();
    let mut reader = BufReader::new(s);
    match tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut reply)).await {
        Ok(Ok(0)) | Ok(Err(_)) => "connection closed without a reply".into(),
        Ok(Ok(_)) => {
            let v: serde_json::Value = serde_json::from_str(&reply).unwrap_or_default();
            format!("reply {}", v["error"]["orig"]["code"])
        }
        Err(_) => "no reply within 5 s".into(),
    }
}

#[test]
fn killing_a_replica_under_load_loses_no_acknowledged_write() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let redis = RedisServer::start();
    let prefix = common::unique_prefix("fault-replica");
    let (mut fleet, lb) = start_fleet(&redis, &prefix);
    let rt = runtime();
    rt.block_on(async {
        let load = Load::start(&load_spec(&lb, &prefix));
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(3)).await;

        let killed_at = Instant::now();
        fleet.kill9(1);
        assert!(!fleet.alive(1), "replica 1 is gone");
        let marked_down = until(Duration::from_secs(10), || {
            lb.statuses().get(1).is_some_and(|s| s.starts_with("DOWN"))
        })
        .await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        let stopped = Instant::now();
        let log = load.stop().await;

        println!("--- replica loss (kill -9 of 1 of 3 replicas behind HAProxy) ---");
        print_failures("errors before the kill", &log.failures(started, killed_at));
        let after = log.failures(killed_at, stopped + Duration::from_secs(60));
        print_failures("errors after the kill", &after);
        let disturbance = log.disturbance(killed_at);
        println!(
            "HAProxy marked the replica down after {} ms; disturbance (kill to last error): {} ms; \
             requests ok in the 3 s before the kill: {}, after the disturbance until stop: {}",
            marked_down.map_or(-1, |t| ms(t - killed_at) as i64),
            ms(disturbance),
            log.successes(killed_at - Duration::from_secs(3), killed_at),
            log.successes(killed_at + disturbance, stopped + Duration::from_secs(60)),
        );

        assert!(
            log.failures(started, killed_at).is_empty(),
            "errors before any fault: {:?}",
            log.failures(started, killed_at)
        );
        assert!(
            marked_down.is_some(),
            "HAProxy never marked the killed replica down: {:?}",
            lb.statuses()
        );
        // Losing a replica breaks connections; it never makes the others answer errors.
        let error_replies: Vec<&String> = after
            .keys()
            .filter(|k| k.starts_with("error reply") || k.starts_with("bad reply"))
            .collect();
        assert!(
            error_replies.is_empty(),
            "error replies after the kill: {after:?}"
        );
        assert!(
            log.steady_since(killed_at).is_some(),
            "requests never succeeded steadily after the kill"
        );
        assert!(
            log.successes(killed_at + disturbance, stopped + Duration::from_secs(60)) > 100,
            "the survivors carried the load after the kill"
        );
        for i in [0, 2] {
            assert!(fleet.alive(i), "replica {i} still runs");
        }
        assert_no_lost_writes(&log, &lb).await;
    });
    fleet::assert_consistent(&redis.url(), &prefix);
}

#[test]
fn redis_restart_under_load_fails_fast_then_recovers_without_losing_writes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // appendfsync always: every acknowledged write is on disk before its reply, so
    // the check below is exact (production: everysec, see the module doc).
    let mut redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let prefix = common::unique_prefix("fault-redis");
    let (mut fleet, lb) = start_fleet(&redis, &prefix);
    let rt = runtime();
    rt.block_on(async {
        let load = Load::start(&load_spec(&lb, &prefix));
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(2)).await;

        let killed_at = Instant::now();
        redis.kill();
        // Every replica reports not ready while Redis is away.
        let mut unready = Vec::new();
        for i in 0..3 {
            let seen = until(Duration::from_secs(8), || fleet.ready_status(i) == Some(503)).await;
            unready.push(seen.map(|t| t - killed_at));
        }
        let all_down = until(Duration::from_secs(5), || {
            lb.statuses().iter().all(|s| s.starts_with("DOWN"))
        })
        .await;
        let fresh = if all_down.is_some() {
            new_connection_outcome(&lb).await
        } else {
            "not tried (HAProxy still had a server up)".into()
        };
        let outage = Duration::from_secs(4);
        tokio::time::sleep((killed_at + outage).saturating_duration_since(Instant::now())).await;
        for i in 0..3 {
            assert!(fleet.alive(i), "replica {i} survived the Redis outage:\n{}", fleet.logs());
        }

        // Same port, same directory: Redis loads its append-only file.
        redis.restart();
        let back_at = Instant::now();
        let mut ready_again = Vec::new();
        for i in 0..3 {
            let seen = until(Duration::from_secs(20), || fleet.ready_status(i) == Some(200)).await;
            ready_again.push(seen.map(|t| t - back_at));
        }
        let all_up = until(Duration::from_secs(10), || {
            lb.statuses().iter().all(|s| s == "UP")
        })
        .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let stopped = Instant::now();
        let log = load.stop().await;

        println!("--- Redis restart (kill -9, {} s down, AOF always) ---", outage.as_secs());
        let during = log.failures(killed_at, back_at);
        print_failures("errors while Redis was down", &during);
        print_failures("errors after Redis was back", &log.failures(back_at, stopped + Duration::from_secs(60)));
        let failing: Vec<Duration> = log
            .events
            .iter()
            .filter(|e| e.outcome == Outcome::Error("STORE_UNAVAILABLE".into()))
            .map(|e| e.latency())
            .collect();
        let mut sorted = failing.clone();
        sorted.sort();
        let slowest = sorted.last().copied().unwrap_or_default();
        let fastest = sorted.first().copied().unwrap_or_default();
        let median = sorted.get(sorted.len() / 2).copied().unwrap_or_default();
        let steady = log.steady_since(killed_at);
        println!(
            "STORE_UNAVAILABLE replies: {}, reply time min {} / median {} / max {} ms \
             (request timeout {} ms); /ready 503 after {:?} ms; HAProxy all down after {:?} ms; \
             a new connection through HAProxy then: {fresh}",
            failing.len(),
            ms(fastest),
            ms(median),
            ms(slowest),
            ms(REQUEST_TIMEOUT),
            unready.iter().map(|d| d.map(ms)).collect::<Vec<_>>(),
            all_down.map(|t| ms(t - killed_at)),
        );
        println!(
            "recovery after Redis answered again: /ready 200 after {:?} ms, HAProxy all up after {:?} ms, \
             requests steadily ok after {} ms",
            ready_again.iter().map(|d| d.map(ms)).collect::<Vec<_>>(),
            all_up.map(|t| ms(t - back_at)),
            steady.map_or(-1, |t| ms(t.saturating_duration_since(back_at)) as i64),
        );

        assert!(
            log.failures(started, killed_at).is_empty(),
            "errors before any fault: {:?}",
            log.failures(started, killed_at)
        );
        assert!(
            failing.len() >= 3,
            "requests during the outage were answered with STORE_UNAVAILABLE: {during:?}"
        );
        let all = log.failures(started, stopped + Duration::from_secs(60));
        assert!(
            all.keys().all(|k| k == "error reply STORE_UNAVAILABLE"),
            "the only error clients see is STORE_UNAVAILABLE, answered: {all:?}"
        );
        assert!(
            slowest <= REQUEST_TIMEOUT + REPLY_MARGIN,
            "a STORE_UNAVAILABLE reply took {} ms, beyond the request timeout plus margin",
            ms(slowest)
        );
        for (i, d) in unready.iter().enumerate() {
            assert!(d.is_some(), "replica {i} never reported not ready during the outage");
        }
        for (i, d) in ready_again.iter().enumerate() {
            assert!(d.is_some(), "replica {i} did not become ready again:\n{}", fleet.logs());
        }
        let steady = steady.expect("requests succeed again after Redis is back");
        assert!(
            log.successes(steady, stopped + Duration::from_secs(60)) > 100,
            "the service carried the load after recovering"
        );
        for i in 0..3 {
            assert!(fleet.alive(i), "replica {i} still runs");
        }
        assert_no_lost_writes(&log, &lb).await;
    });
    fleet::assert_consistent(&redis.url(), &prefix);
}
