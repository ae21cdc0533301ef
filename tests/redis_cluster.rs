//! The Redis store on a real Redis Cluster (six redis-server processes: three
//! primaries with a replica each): keys spread over every primary, no request ever
//! spans slots, the service runs on a cluster from its configuration, and a primary
//! killed under load is failed over without losing an acknowledged write, leaving
//! data that `sessions check` (in cluster mode, reading every primary) finds
//! consistent. The command semantics on a cluster are in `semantics.rs`
//! (`cluster::*`).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fleet;
use common::redis_cluster::{self, RedisCluster};
use common::store_load::{
    assert_acknowledged, json, now, open_req, probe_every_bucket, read_every_bucket, since,
    spawn_load, user_per_bucket, Load,
};
use sessions::model::Millis;
use sessions::store::redis::{RedisOptions, RedisStore, Topology};
use sessions::store::{ListQuery, Store, StoreError};

/// What this suite runs besides the service (see `common::needs`).
const NEEDS: &[common::needs::Need] = &[
    common::needs::Need::RedisServer,
    common::needs::Need::RedisCli,
];

fn store(cluster: &RedisCluster, prefix: &str, wait_replicas: u32) -> RedisStore {
    RedisStore::new(RedisOptions {
        url: cluster.urls(),
        prefix: prefix.to_owned(),
        timeout: Duration::from_secs(2),
        topology: Topology::Cluster,
        wait_replicas,
        ..RedisOptions::default()
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_primary_holds_keys_and_no_request_spans_slots() {
    let cluster = redis_cluster::shared();
    let prefix = common::unique_prefix("spread");
    let s = store(&cluster, &prefix, 0);
    let t0 = now();
    let users = user_per_bucket("spread");
    let mut ids = Vec::new();
    for (i, u) in users.iter().enumerate() {
        for k in 0..3 {
            let mut r = open_req(u, t0 + (i * 3 + k) as Millis);
            r.client = Some(format!("c{k}"));
            ids.push(s.open(r).await.unwrap().session.id);
        }
    }
    // Every kind of call: writes by id, listings over all buckets (one pipeline per
    // bucket), counts, sweeps, the lazy repair of a listing.
    for (i, id) in ids.iter().enumerate() {
        match i % 4 {
            0 => {
                s.store_data(id, Some(json("[1]")), common::at(t0 + 1000))
                    .await
                    .unwrap();
            }
            1 => {
                s.close(id, common::at(t0 + 1000)).await.unwrap();
            }
            2 => {
                s.delete(id).await.unwrap();
            }
            _ => {}
        }
    }
    let all = s
        .list(
            &ListQuery {
                take: 1000,
                total: true,
                ..ListQuery::default()
            },
            common::at(t0 + 1000),
        )
        .await
        .unwrap();
    let expected = ids.len() - ids.len().div_ceil(4);
    assert_eq!(all.data.len(), expected);
    assert_eq!(all.total, Some(expected as u64));
    let deep = s
        .list(
            &ListQuery {
                skip: 50,
                take: 20,
                active: Some(true),
                ..ListQuery::default()
            },
            common::at(t0 + 1000),
        )
        .await
        .unwrap();
    assert_eq!(deep.data.len(), 20);
    let counts = s.counts().await.unwrap();
    assert_eq!(counts.total, expected as u64);
    for b in 0..s.buckets() {
        // Untouched since t0 + 500 or before: expired by t0 + 2000.
        s.expire_bucket(b, common::at_idle(t0 + 2000, 1500), 100)
            .await
            .unwrap();
        s.purge_bucket(b, t0 + 1500, 100).await.unwrap();
    }
    let after = s.counts().await.unwrap();
    assert_eq!(
        after.active,
        ids.len().div_ceil(4) as u64,
        "touched ones stay"
    );

    let per_primary = cluster.keys_per_primary();
    println!("keys per primary (port: keys): {per_primary:?}");
    assert_eq!(per_primary.len(), 3);
    for (port, n) in &per_primary {
        assert!(*n > 0, "primary {port} holds no key: {per_primary:?}");
    }
    assert_eq!(
        cluster.error_count("CROSSSLOT"),
        0,
        "a request spanned slots"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_runs_on_a_cluster_from_its_configuration() {
    let cluster = redis_cluster::shared();
    let prefix = common::unique_prefix("wire");
    let app = common::spawn_app(&[
        ("REDIS_URL", cluster.urls().as_str()),
        ("SESSIONS_REDIS_MODE", "cluster"),
        ("SESSIONS_KEY_PREFIX", prefix.as_str()),
    ])
    .await;
    let mut c = common::seneca::Client::connect(app.seneca_addr).await;
    let p = serde_json::json!({"role": "sessions", "version": 1});
    let act = |extra: serde_json::Value| {
        let mut a = p.clone();
        a.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        a
    };
    let mut opened = Vec::new();
    for u in user_per_bucket("wire").iter().take(16) {
        let s = c
            .call(act(
                serde_json::json!({"cmd": "open_session", "user_id": u, "data": {"u": u}}),
            ))
            .await;
        opened.push(s["id"].as_str().unwrap().to_owned());
    }
    let page = c
        .call(act(
            serde_json::json!({"cmd": "get_sessions", "paging": {"total": true}}),
        ))
        .await;
    assert_eq!(page["total"], 16);
    let got = c
        .call(act(
            serde_json::json!({"cmd": "get_session_by_id", "session_id": opened[3]}),
        ))
        .await;
    assert_eq!(got["id"], opened[3].as_str());
    let (status, _) = common::http::get(app.admin_addr, "/ready").await;
    assert_eq!(status, 200);
    app.shutdown();
    app.wait().await;
}

/// Kills (SIGKILL) a primary while two stores write: one acknowledging writes as
/// soon as the primary has them, one waiting for a replica (WAIT 1). The killed node
/// is restarted once its replica has taken over, as an orchestrator would, and comes
/// back as the new primary's replica.
///
/// Asserts: every failed call is Unavailable (never Internal), both stores recover by
/// themselves, and every write the WAIT store acknowledged survives the kill with the
/// data acknowledged (the replica that takes over has it; Redis guarantees that much,
/// not more: the other store's last writes before the kill may be lost, since
/// replication is asynchronous).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_primary_killed_under_load_fails_over_without_losing_acknowledged_writes() {
    let mut cluster = RedisCluster::start();
    let plain_prefix = common::unique_prefix("failover");
    let plain = Arc::new(store(&cluster, &plain_prefix, 0));
    let wait_prefix = common::unique_prefix("failover-wait");
    let waiting = Arc::new(store(&cluster, &wait_prefix, 1));
    // Reads the WAIT store's sessions on connections of its own: a WAIT that cannot be
    // satisfied holds up every request behind it on its connection.
    let reader = store(&cluster, &wait_prefix, 0);
    let probe_users = user_per_bucket("probe");
    assert!(probe_every_bucket(&plain, &probe_users).await);
    let mut probe_ids = Vec::new();
    for u in &probe_users {
        probe_ids.push(waiting.open(open_req(u, now())).await.unwrap().session.id);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let Load {
        out: plain_out,
        workers: plain_workers,
        ..
    } = spawn_load(&plain, 4, &stop);
    let Load {
        out: wait_out,
        written,
        workers: wait_workers,
    } = spawn_load(&waiting, 4, &stop);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(plain_out.ok.load(Ordering::Relaxed) > 0, "the load runs");
    assert!(wait_out.ok.load(Ordering::Relaxed) > 0, "the load runs");

    let victim = cluster.primaries()[0];
    let heir = cluster
        .replica_of(victim)
        .expect("the primary has a replica");
    // Watches, on the side, when the replica becomes primary.
    let promotion = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let me = RedisCluster::topology(heir)
                .into_iter()
                .find(|n| n.port == heir);
            if me.is_some_and(|n| n.primary) {
                return Some(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    });
    let killed = Instant::now();
    cluster.kill(victim);
    println!("killed primary {victim} (its replica {heir} takes over) under load");

    let (mut reads_back, mut writes_back, mut restarted, mut waited_back) =
        (None, None, None, None);
    while waited_back.is_none() {
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "the stores did not recover from the failover"
        );
        if reads_back.is_none() && read_every_bucket(&reader, &probe_ids).await {
            reads_back = Some(Instant::now());
        }
        if writes_back.is_none() && probe_every_bucket(&plain, &probe_users).await {
            writes_back = Some(Instant::now());
        }
        if writes_back.is_some() && restarted.is_none() {
            // The replica took over; bring the killed node back (as a replica).
            cluster.restart(victim);
            restarted = Some(Instant::now());
        }
        if restarted.is_some() && probe_every_bucket(&waiting, &probe_users).await {
            waited_back = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Keep the load on a while after recovery: requests keep succeeding.
    let ok_at_recovery = (
        plain_out.ok.load(Ordering::Relaxed),
        wait_out.ok.load(Ordering::Relaxed),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for w in plain_workers.into_iter().chain(wait_workers) {
        w.await.unwrap();
    }
    let promoted = promotion.join().unwrap();
    println!(
        "failover after kill -9: replica promoted after {}; every bucket readable again \
         after {}, writable again after {} (no WAIT); killed node restarted at {}, \
         writable with WAIT 1 again after {}",
        since(killed, promoted),
        since(killed, reads_back),
        since(killed, writes_back),
        since(killed, restarted),
        since(killed, waited_back),
    );
    for (name, out) in [("no WAIT", &plain_out), ("WAIT 1", &wait_out)] {
        println!(
            "  {name}: calls ok {}, unavailable {}, last failure ended {} after the kill",
            out.ok.load(Ordering::Relaxed),
            out.unavailable.load(Ordering::Relaxed),
            since(killed, *out.last_failure.lock().unwrap()),
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
    assert!(plain_out.ok.load(Ordering::Relaxed) > ok_at_recovery.0);
    assert!(wait_out.ok.load(Ordering::Relaxed) > ok_at_recovery.1);
    assert!(!cluster.primaries().contains(&victim));
    assert!(cluster.primaries().contains(&heir));

    // Everything the WAIT store acknowledged is there, with the data acknowledged (or
    // a later attempt that failed on the wire but was applied).
    let checked = assert_acknowledged(&reader, &written).await;
    println!(
        "  {} sessions acknowledged with WAIT 1 all read back after the failover",
        checked
    );
    // The listing over every bucket and the counts work on the new topology.
    let page = plain
        .list(
            &ListQuery {
                take: 10,
                total: true,
                ..ListQuery::default()
            },
            common::at(now()),
        )
        .await
        .unwrap();
    assert!(page.total.unwrap() > 0);
    plain.counts().await.unwrap();
    assert_eq!(cluster.error_count("CROSSSLOT"), 0);

    // `sessions check` in cluster mode reads every primary of the new topology (the
    // promoted replica among them) and finds both datasets consistent: a write lost
    // with the killed primary is lost whole (a script is atomic, and replicated as one
    // transaction).
    for prefix in [plain_prefix, wait_prefix] {
        let urls = cluster.urls();
        let run = tokio::task::spawn_blocking(move || {
            fleet::assert_consistent_with(&[
                ("REDIS_URL", urls.as_str()),
                ("SESSIONS_REDIS_MODE", "cluster"),
                ("SESSIONS_KEY_PREFIX", prefix.as_str()),
            ])
        })
        .await
        .unwrap();
        for port in cluster.primaries() {
            assert!(
                run.stdout.contains(&format!("node 127.0.0.1:{port}: ")),
                "primary {port} was read:\n{}",
                run.stdout
            );
        }
        assert!(
            !run.stdout.contains(&format!("node 127.0.0.1:{victim}: ")),
            "the old primary {victim}, now a replica, was not read:\n{}",
            run.stdout
        );
        assert!(!run.stdout.contains(" 0 sessions"), "{}", run.stdout);
    }
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

fn node_id(port: u16) -> String {
    RedisCluster::topology(port)
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

fn migrate(from: u16, to: u16, keys: &[String]) {
    let mut m = redis::cmd("MIGRATE");
    m.arg("127.0.0.1")
        .arg(to)
        .arg("")
        .arg(0)
        .arg(5000)
        .arg("KEYS");
    for k in keys {
        m.arg(k);
    }
    let _: () = m.query(&mut RedisCluster::conn(from)).unwrap();
}

/// A bucket's slot is moved to another primary, key by key, while the store uses it.
/// During the migration a session already moved is read through ASK (the source
/// answers ASK, the store asks the target with ASKING) and one not moved yet is
/// read on the source; once the slot has moved, the old primary answers
/// MOVED and the store follows it and refreshes its map: every command of that
/// bucket works again, and no request ever spanned slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_moved_under_the_store_is_followed_through_ask_and_moved() {
    let cluster = RedisCluster::start();
    let prefix = common::unique_prefix("moving");
    let s = store(&cluster, &prefix, 0);
    let user = &user_per_bucket("moving")[0];
    let t0 = now();
    let mut ids = Vec::new();
    for k in 0..3 {
        let mut r = open_req(user, t0 + k);
        r.client = Some(format!("c{k}"));
        ids.push(s.open(r).await.unwrap().session.id);
    }
    let hash = |id: &str| format!("{prefix}:{{00}}:s:{id}");
    let src = holder(&cluster, &hash(&ids[0]));
    let dst = *cluster.primaries().iter().find(|p| **p != src).unwrap();
    let slot = match cluster_cmd(src, &["CLUSTER", "KEYSLOT", &hash(&ids[0])]) {
        redis::Value::Int(s) => s.to_string(),
        other => panic!("KEYSLOT: {other:?}"),
    };
    let (src_id, dst_id) = (node_id(src), node_id(dst));
    cluster_cmd(dst, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &src_id]);
    cluster_cmd(src, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &dst_id]);
    migrate(src, dst, &[hash(&ids[0])]);

    // Mid-migration: the moved hash is on the target only, the other on the source.
    let moved = s.get(&ids[0]).await.unwrap().expect("read through ASK");
    assert_eq!(moved.user_id, *user);
    let stayed = s.get(&ids[1]).await.unwrap().expect("read on the source");
    assert_eq!(stayed.user_id, *user);
    // A script may span keys on both sides (an index set not created yet counts as
    // moved): Redis answers TRYAGAIN, which is Unavailable, never an internal error.
    match s
        .store_data(&ids[1], Some(json("[\"mid\"]")), common::at(t0 + 10))
        .await
    {
        Ok(written) => assert_eq!(written.unwrap().data.unwrap().get(), "[\"mid\"]"),
        Err(StoreError::Unavailable(_)) => {}
        Err(other) => panic!("mid-migration write: {other:?}"),
    }

    // The rest of the slot moves; every primary learns its new owner.
    let rest: Vec<String> = redis::cmd("CLUSTER")
        .arg("GETKEYSINSLOT")
        .arg(&slot)
        .arg(1000)
        .query(&mut RedisCluster::conn(src))
        .unwrap();
    assert!(!rest.is_empty());
    migrate(src, dst, &rest);
    for port in cluster.primaries() {
        cluster_cmd(port, &["CLUSTER", "SETSLOT", &slot, "NODE", &dst_id]);
    }
    cluster.wait_healthy(Duration::from_secs(30));
    assert_eq!(holder(&cluster, &hash(&ids[1])), dst);

    // After: reads, every kind of write and the listings of that bucket work, first
    // through MOVED, then through the refreshed map.
    for id in &ids {
        assert!(s.get(id).await.unwrap().is_some(), "{id}");
    }
    let data = s
        .store_data(&ids[2], Some(json("[\"after\"]")), common::at(t0 + 20))
        .await
        .unwrap()
        .expect("written on the new primary");
    assert_eq!(data.data.unwrap().get(), "[\"after\"]");
    s.close(&ids[0], common::at(t0 + 30))
        .await
        .unwrap()
        .expect("closed");
    let mut again = open_req(user, t0 + 40);
    again.client = Some("c9".into());
    let fresh = s.open(again).await.unwrap().session;
    assert_eq!(holder(&cluster, &hash(&fresh.id)), dst);
    let page = s
        .list(
            &ListQuery {
                user_id: Some(user.clone()),
                take: 10,
                total: true,
                ..ListQuery::default()
            },
            common::at(t0 + 50),
        )
        .await
        .unwrap();
    assert_eq!(page.total, Some(4));
    assert_eq!(s.counts().await.unwrap().total, 4);
    assert_eq!(cluster.error_count("CROSSSLOT"), 0);
}
