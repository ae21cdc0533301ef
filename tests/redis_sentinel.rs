//! The Redis store behind Redis Sentinel (a password-protected primary and replica,
//! three password-protected sentinels, all real processes on loopback): it follows
//! the primary through a manual failover and through the loss of the primary under
//! load, never keeps failing with READONLY, loses no write acknowledged with WAIT,
//! leaves the data consistent (`sessions check` against the primary the sentinels
//! name afterwards), and the binary configured for Sentinel never logs a password.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fleet;
use common::redis_sentinel::{conn, SentinelSetup, DATA_PASSWORD, MASTER, SENTINEL_PASSWORD};
use common::store_load::{
    assert_acknowledged, now, open_req, probe_every_bucket, read_every_bucket, since, spawn_load,
    user_per_bucket, Load,
};
use sessions::model::bucket_of_session;
use sessions::store::redis::{Credentials, RedisOptions, RedisStore, Secret, Topology};
use sessions::store::{Store, StoreError};

/// What this suite runs besides the service (see `common::needs`).
const NEEDS: &[common::needs::Need] = &[common::needs::Need::RedisServer];

fn store(setup: &SentinelSetup, prefix: &str, wait_replicas: u32) -> RedisStore {
    RedisStore::new(RedisOptions {
        url: setup.urls(),
        prefix: prefix.to_owned(),
        timeout: Duration::from_secs(2),
        topology: Topology::Sentinel {
            master: MASTER.into(),
        },
        auth: Credentials {
            username: None,
            password: Some(Secret::new(DATA_PASSWORD)),
        },
        wait_replicas,
        ..RedisOptions::default()
    })
    .unwrap()
}

/// Polls, on the side, until the node on `port` is the primary; returns when.
fn watch_promotion(port: u16) -> std::thread::JoinHandle<Option<Instant>> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if SentinelSetup::is_primary(port) {
                return Some(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    })
}

/// Waits until `probe` succeeds; returns when, relative to nothing (an Instant).
async fn until<F, Fut>(what: &str, mut probe: F) -> Instant
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if probe().await {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "{what} did not happen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Opens a session and tells whether it landed on the node on `port`.
async fn lands_on(s: &RedisStore, prefix: &str, port: u16) -> bool {
    let Ok(opened) = s.open(open_req("lands-on", now())).await else {
        return false;
    };
    let id = opened.session.id;
    let bucket = bucket_of_session(&id).unwrap();
    let key = format!("{prefix}:{{{bucket:02x}}}:s:{id}");
    let exists: redis::RedisResult<bool> = redis::cmd("EXISTS")
        .arg(key)
        .query(&mut conn(port, DATA_PASSWORD));
    exists.unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_store_follows_the_primary_through_failovers_under_load() {
    let mut setup = SentinelSetup::start();
    let first = setup.primary_port().unwrap();
    let plain_prefix = common::unique_prefix("sentinel");
    let plain = Arc::new(store(&setup, &plain_prefix, 0));
    let wait_prefix = common::unique_prefix("sentinel-wait");
    let waiting = Arc::new(store(&setup, &wait_prefix, 1));
    let reader = store(&setup, &wait_prefix, 0);
    let users = user_per_bucket("probe");
    assert!(probe_every_bucket(&plain, &users).await);
    let mut probe_ids = Vec::new();
    for u in &users {
        probe_ids.push(waiting.open(open_req(u, now())).await.unwrap().session.id);
    }

    // 1. A manual failover (SENTINEL FAILOVER) under load: the old primary is
    // demoted to replica, and Sentinel closes its clients.
    let stop = Arc::new(AtomicBool::new(false));
    let Load {
        out: plain_out,
        workers: mut plain_workers,
        ..
    } = spawn_load(&plain, 4, &stop);
    let wait_stop = Arc::new(AtomicBool::new(false));
    let Load {
        out: wait_out,
        written,
        workers: wait_workers,
    } = spawn_load(&waiting, 4, &wait_stop);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = setup
        .nodes
        .iter()
        .map(|n| n.port)
        .find(|p| *p != first)
        .unwrap();
    let promotion = watch_promotion(second);
    let t1 = Instant::now();
    setup.failover();
    println!("SENTINEL FAILOVER from {first} to {second} under load");
    let promoted = promotion.join().unwrap().expect("the replica is promoted");
    // Writes land on the new primary (until the store switches, they still go to the
    // old one, which Sentinel leaves writable for a while: those are lost).
    let plain_prefix = plain_prefix.clone();
    let switched = until("writes on the new primary", || {
        lands_on(&plain, &plain_prefix, second)
    })
    .await;
    let reads = until("reads after the manual failover", || {
        read_every_bucket(&reader, &probe_ids)
    })
    .await;
    let waited = until("WAIT writes on the new primary", || {
        lands_on(&waiting, &wait_prefix, second)
    })
    .await;
    setup.wait_ready(Duration::from_secs(30));
    println!(
        "manual failover: {second} primary after {}; the store wrote to it after {}, read \
         every bucket after {}, wrote to it with WAIT 1 after {} (once the old primary \
         was its replica)",
        since(t1, Some(promoted)),
        since(t1, Some(switched)),
        since(t1, Some(reads)),
        since(t1, Some(waited)),
    );
    // No lasting READONLY: a run of writes right after all succeed.
    for u in users.iter().take(32) {
        let r = plain.open(open_req(&format!("after-{u}"), now())).await;
        assert!(r.is_ok(), "write after the failover: {:?}", r.err());
    }
    wait_stop.store(true, Ordering::Relaxed);
    for w in wait_workers {
        w.await.unwrap();
    }

    // 2. The primary dies (kill -9), and so does the sentinel the store asked first:
    // the store asks the next sentinel and follows the promoted replica.
    drop(setup.sentinels.remove(0));
    let promotion = watch_promotion(first);
    let t2 = Instant::now();
    setup.kill(second);
    println!("killed primary {second} and a sentinel under load");
    let writes2 = until("writes after the primary died", || {
        probe_every_bucket(&plain, &users)
    })
    .await;
    let promoted2 = promotion.join().unwrap();
    println!(
        "primary lost: {first} primary after {}; the store wrote to every bucket again after {}",
        since(t2, promoted2),
        since(t2, Some(writes2)),
    );
    let ok_before = plain_out.ok.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for w in plain_workers.drain(..) {
        w.await.unwrap();
    }
    assert!(plain_out.ok.load(Ordering::Relaxed) > ok_before);

    for (name, out) in [("no WAIT", &plain_out), ("WAIT 1", &wait_out)] {
        let unavailable = out.unavailable.load(Ordering::Relaxed);
        println!(
            "  {name}: calls ok {}, unavailable {unavailable}, last failure ended {} after \
             the manual failover",
            out.ok.load(Ordering::Relaxed),
            since(t1, *out.last_failure.lock().unwrap()),
        );
        let stale = out.stale_reads.load(Ordering::Relaxed);
        println!("  {name}: acknowledged writes not seen by the next read: {stale}");
        if name == "WAIT 1" {
            assert_eq!(stale, 0, "a write acknowledged with WAIT 1 was lost");
        }
        let other = out.other.lock().unwrap().clone();
        assert!(
            other.is_empty(),
            "{name}: failover errors must be Unavailable: {other:?}"
        );
    }

    // Every write acknowledged with WAIT 1 survived both failovers.
    let checked = assert_acknowledged(&reader, &written).await;
    println!(
        "  {} sessions acknowledged with WAIT 1 all read back after both failovers",
        checked
    );

    // `sessions check`, configured for Sentinel, finds both datasets consistent on the
    // primary the sentinels name now: writes lost in the failovers are lost whole (a
    // script is atomic, and replicated as one transaction).
    for prefix in [plain_prefix.clone(), wait_prefix.clone()] {
        let urls = setup.urls();
        let run = tokio::task::spawn_blocking(move || {
            fleet::assert_consistent_with(&[
                ("REDIS_URL", urls.as_str()),
                ("SESSIONS_REDIS_MODE", "sentinel"),
                ("SESSIONS_REDIS_SENTINEL_MASTER", MASTER),
                ("REDIS_PASSWORD", DATA_PASSWORD),
                ("SESSIONS_KEY_PREFIX", prefix.as_str()),
            ])
        })
        .await
        .unwrap();
        assert!(
            run.stdout
                .contains(&format!("node 127.0.0.1:{first}: 64 buckets")),
            "the check read the current primary {first}:\n{}",
            run.stdout
        );
        assert!(!run.stdout.contains(" 0 sessions"), "{}", run.stdout);
    }
}

#[tokio::test]
async fn without_a_sentinel_the_store_is_unavailable_not_broken() {
    let dead = format!(
        "redis://127.0.0.1:{},redis://127.0.0.1:{}",
        common::free_port(),
        common::free_port()
    );
    let s = RedisStore::new(RedisOptions {
        url: dead,
        topology: Topology::Sentinel {
            master: MASTER.into(),
        },
        timeout: Duration::from_millis(500),
        ..RedisOptions::default()
    })
    .unwrap();
    assert!(matches!(s.ping().await, Err(StoreError::Unavailable(_))));
    assert!(matches!(
        s.get("0123456789abcdef0123456789abcdef").await,
        Err(StoreError::Unavailable(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_master_name_is_unavailable() {
    let setup = SentinelSetup::start();
    let s = RedisStore::new(RedisOptions {
        url: setup.urls(),
        topology: Topology::Sentinel {
            master: "no-such-master".into(),
        },
        auth: Credentials {
            username: None,
            password: Some(Secret::new(DATA_PASSWORD)),
        },
        ..RedisOptions::default()
    })
    .unwrap();
    let e = s.ping().await.unwrap_err();
    assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    // The right name works on the same sentinels.
    assert!(store(&setup, "x", 0).ping().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_runs_on_sentinel_and_never_logs_a_password() {
    let setup = SentinelSetup::start();
    let prefix = common::unique_prefix("sentinel-bin");
    // The sentinel password travels in the URL, the data password in its variable.
    let url = setup.urls();
    let log = common::binary::round_trip_then_stop(&[
        ("REDIS_URL", url.as_str()),
        ("SESSIONS_REDIS_MODE", "sentinel"),
        ("SESSIONS_REDIS_SENTINEL_MASTER", MASTER),
        ("REDIS_PASSWORD", DATA_PASSWORD),
        ("SESSIONS_KEY_PREFIX", prefix.as_str()),
        ("SESSIONS_LOG", "debug"),
    ])
    .await;
    assert!(log.contains("using Redis"), "{log}");
    assert!(log.contains("Sentinel"), "{log}");
    assert!(
        !log.contains(DATA_PASSWORD),
        "data password in the log:\n{log}"
    );
    assert!(
        !log.contains(SENTINEL_PASSWORD),
        "sentinel password in the log:\n{log}"
    );
}
