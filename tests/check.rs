//! `sessions check` (the built binary) against a throwaway redis-server: a dataset
//! written by the service is clean, also while writes go on, and after every kind of
//! close exact expiry, revocation and the per-user cap make; hand-made breakage
//! (a deleted hash, index entries removed or added with ZREM / ZADD) is reported by
//! kind with exit code 1; no Redis is exit code 2. On a Redis Cluster of three
//! primaries it reads every primary: it counts the sessions of each, finds breakage
//! made on primaries other than the first, refuses (exit code 2) to judge a bucket
//! whose slot is being migrated, and follows the slot once it has moved.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fleet::{run_check, run_check_with, CheckRun};
use common::redis_cluster::RedisCluster;
use common::redis_server::RedisServer;
use common::seneca::Client;
use common::store_load::user_per_bucket;
use serde_json::{json, Value};

/// What this suite runs besides the service (see `common::needs`).
const NEEDS: &[common::needs::Need] = &[
    common::needs::Need::RedisServer,
    common::needs::Need::RedisCli,
];

async fn check(url: &str, prefix: &str) -> CheckRun {
    let (url, prefix) = (url.to_string(), prefix.to_string());
    tokio::task::spawn_blocking(move || run_check(&url, &prefix))
        .await
        .unwrap()
}

/// The key of a session hash (the bucket is the id's first two hex digits).
fn hash_key(prefix: &str, id: &str) -> String {
    format!("{prefix}:{{{}}}:s:{id}", &id[..2])
}

fn index_key(prefix: &str, id: &str, index: &str) -> String {
    format!("{prefix}:{{{}}}:{index}", &id[..2])
}

/// Opens `n` sessions (users u0.., data), closes every third; returns the sessions.
async fn populate(c: &mut Client, n: usize) -> (Vec<Value>, Vec<Value>) {
    let (mut active, mut closed) = (Vec::new(), Vec::new());
    for i in 0..n {
        let s = c
            .call(
                json!({"cmd": "open_session", "user_id": format!("u{i}"), "client": "web",
                         "address": "10.0.0.1", "data": {"i": i}}),
            )
            .await;
        if i % 3 == 0 {
            closed.push(
                c.call(json!({"cmd": "close_session", "session_id": s["id"]}))
                    .await,
            );
        } else {
            active.push(s);
        }
    }
    (active, closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_data_passes_and_breakage_is_reported_by_kind() {
    let redis = RedisServer::start();
    let prefix = common::unique_prefix("check");
    let url = redis.url();

    let empty = check(&url, &prefix).await;
    assert_eq!(empty.code, Some(0), "{empty:?}");
    assert!(empty.stdout.contains("0 sessions"), "{}", empty.stdout);

    let app = common::spawn_app(&[("REDIS_URL", &url), ("SESSIONS_KEY_PREFIX", &prefix)]).await;
    let mut c = Client::connect(app.seneca_addr).await;
    let (active, closed) = populate(&mut c, 30).await;
    // A second session of one user, another deleted, another with new data.
    c.call(json!({"cmd": "open_session", "user_id": "u1", "client": "mobile"}))
        .await;
    let gone = c
        .call(json!({"cmd": "open_session", "user_id": "u-deleted"}))
        .await;
    c.call(json!({"cmd": "delete_session_by_id", "session_id": gone["id"]}))
        .await;
    c.call(json!({"cmd": "store_session_data", "session_id": active[0]["id"], "data": {"x": 1}}))
        .await;
    assert_eq!((active.len(), closed.len()), (20, 10));
    // A user with more sessions than the checker reads in one go from a user index.
    let mut big = Vec::new();
    for i in 0..105 {
        big.push(
            c.call(json!({"cmd": "open_session", "user_id": "big", "client": format!("c{i}")}))
                .await,
        );
    }

    let clean = check(&url, &prefix).await;
    println!("{}{}", clean.stdout, clean.stderr);
    assert_eq!(clean.code, Some(0), "{clean:?}");
    assert!(
        clean
            .stdout
            .contains("136 sessions (126 active, 10 closed)"),
        "{}",
        clean.stdout
    );
    assert!(clean.stdout.contains("OK: no problems found"));

    // Another prefix on the same Redis is not looked at.
    let other = check(&url, &format!("{prefix}x")).await;
    assert!(other.stdout.contains("0 sessions"), "{}", other.stdout);

    // Breakage, one kind at a time.
    let id = |s: &Value| s["id"].as_str().unwrap().to_string();
    let (a0, a1) = (id(&active[1]), id(&active[2]));
    let (c0, c1, c2) = (id(&closed[0]), id(&closed[1]), id(&closed[2]));
    // The hash of an active session: its user, open-time, expiry and reuse entries dangle.
    assert_eq!(
        redis.command(&format!("DEL {}", hash_key(&prefix, &a0))),
        ":1"
    );
    // The same for one of the big user's sessions.
    let b0 = id(&big[50]);
    assert_eq!(
        redis.command(&format!("DEL {}", hash_key(&prefix, &b0))),
        ":1"
    );
    // An active session out of the expiry index.
    assert_eq!(
        redis.command(&format!("ZREM {} {a1}", index_key(&prefix, &a1, "exp"))),
        ":1"
    );
    // A closed session out of its user's closed index (user u3 of closed[1]).
    assert_eq!(
        redis.command(&format!("ZREM {} {c1}", index_key(&prefix, &c1, "uc:u3"))),
        ":1"
    );
    // A closed session in the active open-time index.
    assert_eq!(
        redis.command(&format!("ZADD {} 1 {c0}", index_key(&prefix, &c0, "oa"))),
        ":1"
    );
    // A closed session's retention entry with a wrong score.
    assert_eq!(
        redis.command(&format!("ZADD {} 5 {c2}", index_key(&prefix, &c2, "ret"))),
        ":0"
    );

    let broken = check(&url, &prefix).await;
    println!("{}{}", broken.stdout, broken.stderr);
    assert_eq!(broken.code, Some(1), "{broken:?}");
    let out = &broken.stdout;
    for (line, id) in [
        ("dangling_entry: 8 ", &a0),
        ("dangling_entry: 8 ", &b0),
        ("missing_from_expiry: 1 ", &a1),
        ("missing_from_index: 1 ", &c1),
        ("in_wrong_index: 1 ", &c0),
        ("wrong_score: 1 ", &c2),
    ] {
        assert!(out.contains(line), "expected {line:?} in:\n{out}");
        assert!(out.contains(id.as_str()), "expected {id} named in:\n{out}");
    }
    assert!(out.contains("FAILED: 12 problems found"), "{out}");
    app.shutdown();
}

/// Every close the session policy makes keeps the indexes consistent: evictions by
/// the per-user cap, revocations, a reuse slot taken over from an expired session
/// (which stays active in Redis until swept), an expired session closed by
/// close_session at the instant it expired, a listing that settles expiry first,
/// sessions left expired and unswept, and finally the sweep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_revocation_and_the_cap_leave_the_store_consistent() {
    use sessions::lifecycle::{At, Lifetimes};
    use sessions::model::Millis;
    use sessions::store::redis::{RedisOptions, RedisStore};
    use sessions::store::{CapPolicy, ListQuery, OpenRequest, SessionCap, Store};

    const T0: Millis = 1_800_000_000_000;
    let redis = RedisServer::start();
    let prefix = common::unique_prefix("check-policy");
    let url = redis.url();
    let s = RedisStore::new(RedisOptions {
        url: url.clone(),
        prefix: prefix.clone(),
        ..RedisOptions::default()
    })
    .unwrap();
    let life = Lifetimes {
        idle: 10_000,
        absolute: Some(60_000),
    };
    let at = |t: Millis| At::new(T0 + t, life);
    let open = |user: usize, client: usize, t: Millis| OpenRequest {
        user_id: format!("u{user}"),
        user_name: None,
        address: None,
        client: Some(format!("c{client}")),
        user: Some(serde_json::value::to_raw_value(&1).unwrap()),
        data: Some(serde_json::value::to_raw_value(&2).unwrap()),
        reuse: true,
        at: at(t),
        cap: SessionCap {
            max: 3,
            policy: CapPolicy::CloseOldest,
        },
    };
    // Five opens per user under a cap of three: two evictions each.
    let mut ids = vec![Vec::new(); 20];
    for (u, ids) in ids.iter_mut().enumerate() {
        for c in 0..5 {
            let o = s.open(open(u, c, c as Millis)).await.unwrap();
            assert!(!o.reused);
            ids.push(o.session.id);
        }
    }
    // Half the users revoke every other session.
    for (u, ids) in ids.iter().enumerate().take(10) {
        let closed = s
            .close_user(&format!("u{u}"), Some(&ids[4]), at(10))
            .await
            .unwrap();
        assert_eq!(closed.total(), 2);
    }
    // 20 s later every session is past its idle time.
    for (u, ids) in ids.iter().enumerate().take(15).skip(10) {
        let o = s.open(open(u, 4, 20_000)).await.unwrap();
        assert!(!o.reused, "an expired session is never reused");
        assert_ne!(o.session.id, ids[4]);
    }
    let closed = s.close(&ids[16][3], at(20_000)).await.unwrap().unwrap();
    assert_eq!(closed.session.close_time, Some(T0 + 3 + 10_000));
    let live = s
        .list(
            &ListQuery {
                user_id: Some("u15".into()),
                active: Some(true),
                take: 10,
                total: true,
                ..ListQuery::default()
            },
            at(20_000),
        )
        .await
        .unwrap();
    assert_eq!(live.total, Some(0));
    let run = check(&url, &prefix).await;
    println!("{}{}", run.stdout, run.stderr);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("105 sessions ("), "{}", run.stdout);

    // The sweep closes the rest, each at the instant it expired.
    for b in 0..s.buckets() {
        while s.expire_bucket(b, at(200_000), 50).await.unwrap().more {}
    }
    let run = check(&url, &prefix).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains("105 sessions (0 active, 105 closed)"),
        "{}",
        run.stdout
    );
}

/// Writes by the service go on while the check runs: each look is one atomic
/// snapshot per batch, so a live dataset is reported clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_during_writes_reports_no_false_problems() {
    let redis = RedisServer::start();
    let prefix = common::unique_prefix("check-live");
    let url = redis.url();
    let app = common::spawn_app(&[("REDIS_URL", &url), ("SESSIONS_KEY_PREFIX", &prefix)]).await;
    let mut c = Client::connect(app.seneca_addr).await;
    populate(&mut c, 200).await;

    let addr = app.seneca_addr;
    let done = Arc::new(AtomicU64::new(0));
    let progress = done.clone();
    let writer = tokio::spawn(async move {
        let mut c = Client::connect(addr).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut n = 0u64;
        // Open, write, close and delete, round and round, until told to stop.
        while Instant::now() < deadline && n < 100_000 {
            let s = c
                .call(json!({"cmd": "open_session", "user_id": format!("w{}", n % 500)}))
                .await;
            c.call(json!({"cmd": "store_session_data", "session_id": s["id"], "data": n}))
                .await;
            if n.is_multiple_of(2) {
                c.call(json!({"cmd": "close_session", "session_id": s["id"]}))
                    .await;
            }
            if n.is_multiple_of(3) {
                c.call(json!({"cmd": "delete_session_by_id", "session_id": s["id"]}))
                    .await;
            }
            n += 1;
            progress.store(n, Ordering::SeqCst);
            if n.is_multiple_of(64) {
                tokio::task::yield_now().await;
            }
        }
        n
    });
    // Let the writer get going, then check while it runs.
    let deadline = Instant::now() + Duration::from_secs(10);
    while done.load(Ordering::SeqCst) < 50 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = done.load(Ordering::SeqCst);
    for _ in 0..5 {
        let run = check(&url, &prefix).await;
        assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    }
    let during = done.load(Ordering::SeqCst) - before;
    println!("{during} write rounds ran during the checks");
    assert!(
        during > 0,
        "the writer made no progress while the checks ran"
    );
    writer.abort();
    app.shutdown();
}

#[test]
fn without_redis_the_check_fails_with_code_2() {
    let unset = run_check_with(&[]);
    assert_eq!(unset.code, Some(2), "{unset:?}");
    assert!(unset.stderr.contains("REDIS_URL"), "{}", unset.stderr);

    let port = common::free_port();
    let down = run_check(&format!("redis://127.0.0.1:{port}/"), "sessions");
    assert_eq!(down.code, Some(2), "{down:?}");
    assert!(down.stderr.contains("Redis"), "{}", down.stderr);

    let bad_prefix = run_check(&format!("redis://127.0.0.1:{port}/"), "a{b}");
    assert_eq!(bad_prefix.code, Some(2), "{bad_prefix:?}");
}

/// Runs `sessions check` in cluster mode, seeded with every node of `cluster`.
async fn check_cluster(cluster: &RedisCluster, prefix: &str) -> CheckRun {
    let (urls, prefix) = (cluster.urls(), prefix.to_string());
    tokio::task::spawn_blocking(move || {
        run_check_with(&[
            ("REDIS_URL", &urls),
            ("SESSIONS_REDIS_MODE", "cluster"),
            ("SESSIONS_KEY_PREFIX", &prefix),
        ])
    })
    .await
    .unwrap()
}

/// The `node 127.0.0.1:<port>: <b> buckets, <s> sessions` lines of a report, by port.
fn per_node(report: &str) -> BTreeMap<u16, (u64, u64)> {
    report
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("node 127.0.0.1:")?;
            let (port, counts) = rest.split_once(": ")?;
            let n: Vec<u64> = counts
                .split_whitespace()
                .filter_map(|w| w.trim_end_matches(',').parse().ok())
                .collect();
            Some((port.parse().ok()?, (*n.first()?, *n.get(1)?)))
        })
        .collect()
}

/// The primary holding `key` (the others answer MOVED).
fn holder(cluster: &RedisCluster, key: &str) -> u16 {
    cluster
        .primaries()
        .into_iter()
        .find(|p| {
            redis::cmd("EXISTS")
                .arg(key)
                .query::<bool>(&mut RedisCluster::conn(*p))
                .unwrap_or(false)
        })
        .unwrap_or_else(|| panic!("no primary holds {key}"))
}

/// Session hashes of `prefix` on the node on `port`, counted with SCAN.
fn sessions_on(port: u16, prefix: &str) -> u64 {
    let mut con = RedisCluster::conn(port);
    let (mut cursor, mut seen) = (0u64, std::collections::HashSet::new());
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*:s:*"))
            .arg("COUNT")
            .arg(1000)
            .query(&mut con)
            .unwrap();
        seen.extend(keys); // SCAN may return a key twice
        cursor = next;
        if cursor == 0 {
            return seen.len() as u64;
        }
    }
}

fn node_id(cluster: &RedisCluster, port: u16) -> String {
    RedisCluster::topology(cluster.primaries()[0])
        .into_iter()
        .find(|n| n.port == port)
        .map(|n| n.id)
        .unwrap()
}

fn cluster_cmd(port: u16, args: &[&str]) -> redis::Value {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut RedisCluster::conn(port))
        .unwrap_or_else(|e| panic!("{args:?} on {port}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_every_primary_is_checked() {
    let cluster = RedisCluster::start();
    let prefix = common::unique_prefix("check-cluster");
    let urls = cluster.urls();
    let app = common::spawn_app(&[
        ("REDIS_URL", &urls),
        ("SESSIONS_REDIS_MODE", "cluster"),
        ("SESSIONS_KEY_PREFIX", &prefix),
    ])
    .await;
    let mut c = Client::connect(app.seneca_addr).await;
    // Two sessions in every bucket, so on every primary; every third one closed.
    let mut active = Vec::new();
    let mut n = 0;
    for u in user_per_bucket("cc") {
        for k in 0..2 {
            let s = c
                .call(json!({"cmd": "open_session", "user_id": u, "client": format!("c{k}")}))
                .await;
            let id = s["id"].as_str().unwrap().to_string();
            if n % 3 == 0 {
                c.call(json!({"cmd": "close_session", "session_id": id}))
                    .await;
            } else {
                active.push(id);
            }
            n += 1;
        }
    }
    assert_eq!((n, active.len()), (128, 85));

    let clean = check_cluster(&cluster, &prefix).await;
    println!("{}{}", clean.stdout, clean.stderr);
    assert_eq!(clean.code, Some(0), "{clean:?}");
    assert!(
        clean
            .stdout
            .contains("64 buckets, 128 sessions (85 active, 43 closed)"),
        "{}",
        clean.stdout
    );
    // Every primary was read, and holds as many session hashes as reported for it.
    let primaries = cluster.primaries();
    let before = per_node(&clean.stdout);
    println!("checked per primary (port: (buckets, sessions)): {before:?}");
    assert_eq!(
        before.keys().copied().collect::<Vec<_>>(),
        primaries,
        "{}",
        clean.stdout
    );
    for (port, (buckets, sessions)) in &before {
        assert!(*buckets > 0 && *sessions > 0, "{port}: {before:?}");
        assert_eq!(*sessions, sessions_on(*port, &prefix), "primary {port}");
    }
    assert_eq!(before.values().map(|v| v.0).sum::<u64>(), 64);
    assert_eq!(before.values().map(|v| v.1).sum::<u64>(), 128);

    // A bucket whose slot is being migrated is not judged: exit code 2, no finding.
    let moved_key = format!("{prefix}:{{00}}:oa");
    let src = holder(&cluster, &moved_key);
    let dst = *primaries.iter().find(|p| **p != src).unwrap();
    let slot = match cluster_cmd(src, &["CLUSTER", "KEYSLOT", &moved_key]) {
        redis::Value::Int(s) => s.to_string(),
        other => panic!("KEYSLOT: {other:?}"),
    };
    let (src_id, dst_id) = (node_id(&cluster, src), node_id(&cluster, dst));
    cluster_cmd(dst, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &src_id]);
    cluster_cmd(src, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &dst_id]);
    let moving = check_cluster(&cluster, &prefix).await;
    println!("{}{}", moving.stdout, moving.stderr);
    assert_eq!(moving.code, Some(2), "{moving:?}");
    assert!(moving.stderr.contains("being moved"), "{}", moving.stderr);
    assert!(!moving.stdout.contains("FAILED"), "{}", moving.stdout);

    // Once the slot has moved, with its keys, the check reads the bucket on its new
    // primary and finds it clean.
    let keys: Vec<String> = redis::cmd("CLUSTER")
        .arg("GETKEYSINSLOT")
        .arg(&slot)
        .arg(1000)
        .query(&mut RedisCluster::conn(src))
        .unwrap();
    assert!(!keys.is_empty());
    let mut migrate = redis::cmd("MIGRATE");
    migrate
        .arg("127.0.0.1")
        .arg(dst)
        .arg("")
        .arg(0)
        .arg(5000)
        .arg("KEYS");
    for k in &keys {
        migrate.arg(k);
    }
    let _: () = migrate.query(&mut RedisCluster::conn(src)).unwrap();
    for port in [dst, src] {
        cluster_cmd(port, &["CLUSTER", "SETSLOT", &slot, "NODE", &dst_id]);
    }
    for port in primaries.iter().filter(|p| ![src, dst].contains(p)) {
        cluster_cmd(*port, &["CLUSTER", "SETSLOT", &slot, "NODE", &dst_id]);
    }
    cluster.wait_healthy(std::time::Duration::from_secs(30));
    let after = check_cluster(&cluster, &prefix).await;
    println!("{}{}", after.stdout, after.stderr);
    assert_eq!(after.code, Some(0), "{after:?}");
    assert!(
        after.stdout.contains("64 buckets, 128 sessions"),
        "{}",
        after.stdout
    );
    let moved = per_node(&after.stdout);
    println!("after moving bucket 00 from {src} to {dst}: {moved:?}");
    assert_eq!(moved[&src].0, before[&src].0 - 1);
    assert_eq!(moved[&dst].0, before[&dst].0 + 1);
    for port in &primaries {
        assert_eq!(moved[port].1, sessions_on(*port, &prefix), "primary {port}");
    }

    // Breakage on primaries other than the first is found.
    let first = primaries[0];
    let key_of = |id: &String| hash_key(&prefix, id);
    let gone = active
        .iter()
        .find(|id| holder(&cluster, &key_of(id)) != first)
        .unwrap()
        .clone();
    let gone_on = holder(&cluster, &key_of(&gone));
    let unexpiring = active
        .iter()
        .find(|id| {
            let on = holder(&cluster, &key_of(id));
            on != first && on != gone_on
        })
        .unwrap()
        .clone();
    let unexpiring_on = holder(&cluster, &key_of(&unexpiring));
    let del: i64 = redis::cmd("DEL")
        .arg(key_of(&gone))
        .query(&mut RedisCluster::conn(gone_on))
        .unwrap();
    assert_eq!(del, 1);
    let zrem: i64 = redis::cmd("ZREM")
        .arg(index_key(&prefix, &unexpiring, "exp"))
        .arg(&unexpiring)
        .query(&mut RedisCluster::conn(unexpiring_on))
        .unwrap();
    assert_eq!(zrem, 1);
    println!(
        "deleted the hash of {gone} on {gone_on}, removed {unexpiring} from exp on \
         {unexpiring_on} (first primary: {first})"
    );
    let broken = check_cluster(&cluster, &prefix).await;
    println!("{}{}", broken.stdout, broken.stderr);
    assert_eq!(broken.code, Some(1), "{broken:?}");
    let out = &broken.stdout;
    for (line, id) in [
        ("dangling_entry: 4 ", &gone),
        ("missing_from_expiry: 1 ", &unexpiring),
    ] {
        assert!(out.contains(line), "expected {line:?} in:\n{out}");
        assert!(out.contains(id.as_str()), "expected {id} named in:\n{out}");
    }
    assert!(out.contains("FAILED: 5 problems found"), "{out}");
    app.shutdown();
}
