//! The command semantics of DESIGN.md §3, one suite run against every store:
//! the embedded store, Redis (a real redis-server on a free port per test) and a
//! Redis Cluster (six redis-server processes, shared by the tests that overlap).
//! Commands are driven in-process through `commands::execute`, the same path the
//! wire takes after parsing.

mod common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use sessions::commands::{self, Cmd, CommandError, Context, Limits};
use sessions::metrics::Metrics;
use sessions::store::AnyStore;
use sessions::sweeper::SweepConfig;

/// What this suite runs besides the service (see `common::needs`).
const NEEDS: &[common::needs::Need] = &[common::needs::Need::RedisServer];

/// A store under test, plus whatever keeps it alive (a redis-server).
pub struct Fixture {
    pub store: Arc<AnyStore>,
    _guard: Option<Box<dyn std::any::Any>>,
}

pub fn settings() -> (Limits, SweepConfig) {
    (
        Limits {
            max_data_bytes: 1024,
            max_field_bytes: 256,
            max_take: 50,
        },
        SweepConfig {
            idle_timeout: Duration::from_secs(3600),
            retention: Some(Duration::from_secs(86_400)),
            batch: 7,
            ..SweepConfig::default()
        },
    )
}

pub struct T {
    ctx: Context,
    _fixture: Fixture,
}

impl T {
    fn new(fixture: Fixture) -> T {
        Self::with(fixture, |_| {})
    }

    fn with(fixture: Fixture, tweak: impl FnOnce(&mut Context)) -> T {
        let (limits, sweep) = settings();
        let mut ctx = Context {
            store: fixture.store.clone(),
            limits,
            reuse: true,
            sweep,
            request_timeout: Duration::from_secs(5),
            metrics: Arc::new(Metrics::new().expect("metrics")),
        };
        tweak(&mut ctx);
        T {
            ctx,
            _fixture: fixture,
        }
    }

    async fn call(&self, act: Value) -> Result<Value, CommandError> {
        let mut act: Map<String, Value> = act.as_object().cloned().expect("act is an object");
        act.insert("role".into(), json!("sessions"));
        let cmd = commands::route(&act).expect("known command");
        let out = commands::execute(&self.ctx, cmd, &act).await?;
        Ok(serde_json::to_value(&out).expect("serializable"))
    }

    async fn ok(&self, act: Value) -> Value {
        match self.call(act.clone()).await {
            Ok(v) => v,
            Err(e) => panic!("{act} failed: {e:?}"),
        }
    }

    async fn open(&self, user: &str, address: Option<&str>, client: Option<&str>) -> Value {
        self.ok(
            json!({"cmd": "open_session", "user_id": user, "address": address, "client": client}),
        )
        .await
    }

    async fn get(&self, id: &Value) -> Value {
        self.ok(json!({"cmd": "get_session_by_id", "session_id": id}))
            .await
    }

    async fn list(&self, filter: Value, paging: Value) -> Value {
        self.ok(json!({"cmd": "get_sessions", "filter": filter, "paging": paging}))
            .await
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .expect("data array")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect()
}

fn invalid_field(e: CommandError) -> String {
    match e {
        CommandError::InvalidData { field, message } => {
            assert!(
                message.contains(&field),
                "message {message:?} names {field}"
            );
            field
        }
        other => panic!("expected INVALID_DATA, got {other:?}"),
    }
}

/// Pause so consecutive opens get distinct open_time milliseconds.
async fn tick() {
    tokio::time::sleep(Duration::from_millis(3)).await;
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::cases::$name(super::T::new(super::fixtures::memory())).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $name() {
                    super::cases::$name(super::T::new(super::fixtures::redis())).await;
                }
            )*
        }
        mod cluster {
            $(
                #[tokio::test]
                async fn $name() {
                    super::cases::$name(super::T::new(super::fixtures::cluster())).await;
                }
            )*
        }
    };
}

mod fixtures {
    use super::*;
    use common::redis_server::RedisServer;
    use sessions::instrumented::Instrumented;
    use sessions::store::memory::MemoryStore;
    use sessions::store::redis::{RedisOptions, RedisStore, Topology};

    /// A Redis store on its own redis-server (stopped when the test ends).
    pub fn redis() -> Fixture {
        let server = RedisServer::start();
        let store = RedisStore::new(RedisOptions {
            url: server.url(),
            prefix: common::unique_prefix("semantics"),
            timeout: Duration::from_secs(5),
            connections: 2,
            ..RedisOptions::default()
        })
        .expect("redis store");
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        Fixture {
            store: Arc::new(AnyStore::Redis(Instrumented::new(store, metrics))),
            _guard: Some(Box::new(server)),
        }
    }

    /// A Redis store on a Redis Cluster (three primaries, three replicas) shared by
    /// the cluster tests that run at the same time, under a prefix of its own.
    pub fn cluster() -> Fixture {
        let cluster = common::redis_cluster::shared();
        let store = RedisStore::new(RedisOptions {
            url: cluster.urls(),
            prefix: common::unique_prefix("semantics"),
            timeout: Duration::from_secs(5),
            topology: Topology::Cluster,
            ..RedisOptions::default()
        })
        .expect("redis cluster store");
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        Fixture {
            store: Arc::new(AnyStore::Redis(Instrumented::new(store, metrics))),
            _guard: Some(Box::new(cluster)),
        }
    }

    pub fn memory() -> Fixture {
        Fixture {
            store: Arc::new(AnyStore::Memory(MemoryStore::new())),
            _guard: None,
        }
    }
}

suite!(
    open_creates_a_session,
    open_reuses_the_active_session,
    reuse_can_be_switched_off,
    reads_do_not_touch_request_time,
    unknown_ids_give_null,
    store_session_data_replaces_data,
    update_session_user_replaces_user,
    writes_to_closed_sessions_fail,
    close_clears_and_is_idempotent,
    delete_removes_everywhere,
    list_filters,
    list_order_and_paging,
    list_validation,
    argument_validation,
    data_size_limit,
    expiry_and_retention,
    payloads_round_trip_exactly,
    routing,
);

mod cases {
    use super::*;

    pub async fn open_creates_a_session(t: T) {
        let s = t
            .ok(
                json!({"cmd": "open_session", "user_id": "u1", "user_name": "Ann",
                        "address": "10.0.0.1", "client": "web",
                        "user": {"roles": ["admin"]}, "data": {"cart": 3}}),
            )
            .await;
        let id = s["id"].as_str().unwrap();
        assert_eq!(id.len(), 32);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(s["user_id"], "u1");
        assert_eq!(s["user_name"], "Ann");
        assert_eq!(s["active"], true);
        assert_eq!(s["open_time"], s["request_time"]);
        assert!(s["close_time"].is_null());
        let t0 = s["open_time"].as_str().unwrap();
        assert_eq!(t0.len(), 24, "ISO with milliseconds: {t0}");
        assert!(t0.ends_with('Z'));
        assert_eq!(s["address"], "10.0.0.1");
        assert_eq!(s["client"], "web");
        assert_eq!(s["user"], json!({"roles": ["admin"]}));
        assert_eq!(s["data"], json!({"cart": 3}));
        assert_eq!(t.get(&s["id"]).await, s);
    }

    pub async fn open_reuses_the_active_session(t: T) {
        let a = t.open("u1", Some("1.1.1.1"), Some("web")).await;
        tick().await;
        let again = t.open("u1", Some("1.1.1.1"), Some("web")).await;
        assert_eq!(again["id"], a["id"]);
        assert_eq!(again["open_time"], a["open_time"]);
        assert!(again["request_time"].as_str() > a["request_time"].as_str());
        // A different address, client or user is another session.
        assert_ne!(
            t.open("u1", Some("2.2.2.2"), Some("web")).await["id"],
            a["id"]
        );
        assert_ne!(
            t.open("u1", Some("1.1.1.1"), Some("app")).await["id"],
            a["id"]
        );
        assert_ne!(
            t.open("u2", Some("1.1.1.1"), Some("web")).await["id"],
            a["id"]
        );
        // A missing value equals a missing value, and differs from an empty string.
        let none = t.open("u3", None, None).await;
        assert_eq!(t.open("u3", None, None).await["id"], none["id"]);
        assert_ne!(t.open("u3", Some(""), None).await["id"], none["id"]);
        // A closed session is never reused.
        t.ok(json!({"cmd": "close_session", "session_id": a["id"]}))
            .await;
        let fresh = t.open("u1", Some("1.1.1.1"), Some("web")).await;
        assert_ne!(fresh["id"], a["id"]);
        assert_eq!(fresh["active"], true);
        let page = t
            .list(json!({"user_id": "u1"}), json!({"total": true}))
            .await;
        assert_eq!(page["total"], 4);
    }

    pub async fn reuse_can_be_switched_off(t: T) {
        let t = T::with(t._fixture, |c| c.reuse = false);
        let a = t.open("u1", Some("x"), Some("y")).await;
        let b = t.open("u1", Some("x"), Some("y")).await;
        assert_ne!(a["id"], b["id"]);
        let page = t
            .list(
                json!({"user_id": "u1", "active": true}),
                json!({"total": true}),
            )
            .await;
        assert_eq!(page["total"], 2);
    }

    pub async fn reads_do_not_touch_request_time(t: T) {
        let s = t.open("u1", None, None).await;
        tick().await;
        assert_eq!(t.get(&s["id"]).await["request_time"], s["request_time"]);
        let page = t.list(json!({}), json!({})).await;
        assert_eq!(page["data"][0]["request_time"], s["request_time"]);
        assert_eq!(t.get(&s["id"]).await["request_time"], s["request_time"]);
    }

    pub async fn unknown_ids_give_null(t: T) {
        for id in [
            "0123456789abcdef0123456789abcdef",
            "nope",
            "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
        ] {
            for cmd in [
                "get_session_by_id",
                "close_session",
                "delete_session",
                "delete_session_by_id",
            ] {
                assert!(
                    t.ok(json!({"cmd": cmd, "session_id": id})).await.is_null(),
                    "{cmd}"
                );
            }
            let v = t
                .ok(json!({"cmd": "store_session_data", "session_id": id, "data": 1}))
                .await;
            assert!(v.is_null());
            let v = t
                .ok(json!({"cmd": "update_session_user", "session_id": id, "user": {}}))
                .await;
            assert!(v.is_null());
        }
    }

    pub async fn store_session_data_replaces_data(t: T) {
        let s = t
            .ok(json!({"cmd": "open_session", "user_id": "u", "data": {"a": 1}, "user": {"n": 1}}))
            .await;
        tick().await;
        let v = t
            .ok(json!({"cmd": "store_session_data", "session_id": s["id"], "data": {"b": [2]}}))
            .await;
        assert_eq!(v["data"], json!({"b": [2]}));
        assert_eq!(v["user"], json!({"n": 1}));
        assert!(v["request_time"].as_str() > s["request_time"].as_str());
        assert_eq!(v["open_time"], s["open_time"]);
        assert_eq!(t.get(&s["id"]).await, v);
        let cleared = t
            .ok(json!({"cmd": "store_session_data", "session_id": s["id"], "data": null}))
            .await;
        assert!(cleared["data"].is_null());
    }

    pub async fn update_session_user_replaces_user(t: T) {
        let s = t
            .ok(json!({"cmd": "open_session", "user_id": "u", "data": {"a": 1}}))
            .await;
        tick().await;
        let v = t
            .ok(json!({"cmd": "update_session_user", "session_id": s["id"], "user": {"name": "Bo"}}))
            .await;
        assert_eq!(v["user"], json!({"name": "Bo"}));
        assert_eq!(v["data"], json!({"a": 1}));
        assert!(v["request_time"].as_str() > s["request_time"].as_str());
        assert_eq!(t.get(&s["id"]).await, v);
    }

    pub async fn writes_to_closed_sessions_fail(t: T) {
        let s = t.open("u", None, None).await;
        t.ok(json!({"cmd": "close_session", "session_id": s["id"]}))
            .await;
        for act in [
            json!({"cmd": "store_session_data", "session_id": s["id"], "data": {"x": 1}}),
            json!({"cmd": "update_session_user", "session_id": s["id"], "user": {"x": 1}}),
        ] {
            let e = t.call(act).await.unwrap_err();
            assert_eq!(e.code(), "SESSION_CLOSED");
            assert_eq!(e.status(), 409);
        }
        let after = t.get(&s["id"]).await;
        assert!(after["data"].is_null() && after["user"].is_null());
    }

    pub async fn close_clears_and_is_idempotent(t: T) {
        let s = t
            .ok(json!({"cmd": "open_session", "user_id": "u", "data": {"a": 1}, "user": {"b": 2}}))
            .await;
        tick().await;
        let c = t
            .ok(json!({"cmd": "close_session", "session_id": s["id"]}))
            .await;
        assert_eq!(c["active"], false);
        assert!(c["data"].is_null());
        assert!(c["user"].is_null());
        assert!(c["close_time"].is_string());
        assert_eq!(c["close_time"], c["request_time"]);
        assert!(c["close_time"].as_str() > s["open_time"].as_str());
        assert_eq!(c["open_time"], s["open_time"]);
        tick().await;
        let again = t
            .ok(json!({"cmd": "close_session", "session_id": s["id"]}))
            .await;
        assert_eq!(again, c);
        assert_eq!(t.get(&s["id"]).await, c);
    }

    pub async fn delete_removes_everywhere(t: T) {
        let a = t.open("u", Some("a"), None).await;
        let b = t.open("u", Some("b"), None).await;
        t.ok(json!({"cmd": "close_session", "session_id": b["id"]}))
            .await;
        let d = t
            .ok(json!({"cmd": "delete_session", "session_id": a["id"]}))
            .await;
        assert_eq!(d["id"], a["id"]);
        let d2 = t
            .ok(json!({"cmd": "delete_session_by_id", "session_id": b["id"]}))
            .await;
        assert_eq!(d2["id"], b["id"]);
        assert_eq!(d2["active"], false);
        assert!(t.get(&a["id"]).await.is_null());
        assert!(t.get(&b["id"]).await.is_null());
        let page = t
            .list(json!({"user_id": "u"}), json!({"total": true}))
            .await;
        assert_eq!(page["total"], 0);
        let page = t.list(json!({}), json!({"total": true})).await;
        assert_eq!(page["total"], 0);
        // The reuse slot is free again: the next open creates a session.
        let n = t.open("u", Some("a"), None).await;
        assert_ne!(n["id"], a["id"]);
    }

    pub async fn list_filters(t: T) {
        let mut opened = Vec::new();
        for (i, user) in ["u1", "u2", "u1", "u3", "u1"].iter().enumerate() {
            opened.push(t.open(user, Some(&format!("addr{i}")), None).await);
            tick().await;
        }
        t.ok(json!({"cmd": "close_session", "session_id": opened[2]["id"]}))
            .await;
        let all = t.list(json!({}), json!({"total": true})).await;
        assert_eq!(all["total"], 5);
        let u1 = t
            .list(json!({"user_id": "u1"}), json!({"total": true}))
            .await;
        assert_eq!(u1["total"], 3);
        let expect: Vec<String> = [4, 2, 0]
            .iter()
            .map(|i| opened[*i]["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids(&u1), expect);
        for active in [json!(true), json!("true"), json!("1"), json!("yes")] {
            let p = t
                .list(json!({"user_id": "u1", "active": active}), json!({}))
                .await;
            assert_eq!(p["data"].as_array().unwrap().len(), 2);
        }
        for inactive in [json!(false), json!("false"), json!("0"), json!("no")] {
            let p = t.list(json!({"active": inactive}), json!({})).await;
            assert_eq!(ids(&p), vec![opened[2]["id"].as_str().unwrap().to_string()]);
        }
        // from_time inclusive, to_time exclusive, on open_time.
        let t1 = opened[1]["open_time"].clone();
        let t3 = opened[3]["open_time"].clone();
        let window = t
            .list(
                json!({"from_time": t1, "to_time": t3}),
                json!({"total": true}),
            )
            .await;
        let expect: Vec<String> = [2, 1]
            .iter()
            .map(|i| opened[*i]["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids(&window), expect);
        assert_eq!(window["total"], 2);
        let inverted = t
            .list(
                json!({"from_time": t3, "to_time": t1}),
                json!({"total": true}),
            )
            .await;
        assert_eq!(inverted["total"], 0);
        let from = t.list(json!({"from_time": t3}), json!({})).await;
        assert_eq!(from["data"].as_array().unwrap().len(), 2);
        let by_id = t
            .list(json!({"id": opened[3]["id"]}), json!({"total": true}))
            .await;
        assert_eq!(by_id["total"], 1);
        let by_id_other_user = t
            .list(json!({"id": opened[3]["id"], "user_id": "u1"}), json!({}))
            .await;
        assert!(by_id_other_user["data"].as_array().unwrap().is_empty());
        let combined = t
            .list(
                json!({"user_id": "u1", "active": true, "from_time": opened[1]["open_time"]}),
                json!({"total": true}),
            )
            .await;
        assert_eq!(
            ids(&combined),
            vec![opened[4]["id"].as_str().unwrap().to_string()]
        );
    }

    pub async fn list_order_and_paging(t: T) {
        for i in 0..60 {
            t.open(&format!("user{}", i % 7), Some(&format!("a{i}")), None)
                .await;
        }
        let all = t
            .list(json!({}), json!({"take": 1000, "total": true}))
            .await;
        assert_eq!(all["total"], 60);
        // take is clamped to the maximum (50 in these settings).
        let first = ids(&all);
        assert_eq!(first.len(), 50);
        let rows = all["data"].as_array().unwrap();
        for w in rows.windows(2) {
            let a = (
                w[0]["open_time"].as_str().unwrap(),
                w[0]["id"].as_str().unwrap(),
            );
            let b = (
                w[1]["open_time"].as_str().unwrap(),
                w[1]["id"].as_str().unwrap(),
            );
            assert!(a > b, "newest first, ties by id: {a:?} then {b:?}");
        }
        // total is null unless asked for; default take is 100 clamped to 50.
        let p = t.list(json!({}), json!({})).await;
        assert!(p["total"].is_null());
        assert_eq!(ids(&p), first);
        // Pages line up with the full ordering.
        let mut paged = Vec::new();
        for skip in (0..60).step_by(13) {
            let p = t.list(json!({}), json!({"skip": skip, "take": 13})).await;
            paged.extend(ids(&p));
        }
        assert_eq!(paged.len(), 60);
        assert_eq!(&paged[..50], &first[..]);
        let mut dedup = paged.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), 60);
        // Negative skip is 0; strings are accepted for numbers; skip past the end is empty.
        assert_eq!(
            ids(&t.list(json!({}), json!({"skip": -5, "take": "3"})).await),
            first[..3].to_vec()
        );
        assert!(ids(&t.list(json!({}), json!({"skip": 60})).await).is_empty());
        // Per-user paging matches the same order.
        let u = t
            .list(json!({"user_id": "user3"}), json!({"total": true}))
            .await;
        let uids = ids(&u);
        let p2 = t
            .list(json!({"user_id": "user3"}), json!({"skip": 2, "take": 3}))
            .await;
        assert_eq!(ids(&p2), uids[2..5].to_vec());
    }

    pub async fn list_validation(t: T) {
        for (filter, paging, field) in [
            (
                json!({"from_time": "not a date"}),
                json!({}),
                "filter.from_time",
            ),
            (json!({"to_time": true}), json!({}), "filter.to_time"),
            (json!({"active": "perhaps"}), json!({}), "filter.active"),
            (json!({"user_id": 5}), json!({}), "filter.user_id"),
            (json!({}), json!({"skip": "x"}), "paging.skip"),
            (json!({}), json!({"take": 1.5}), "paging.take"),
            (json!({}), json!({"total": "sometimes"}), "paging.total"),
            (json!("str"), json!({}), "filter"),
            (json!({}), json!([1]), "paging"),
        ] {
            let e = t
                .call(json!({"cmd": "get_sessions", "filter": filter, "paging": paging}))
                .await
                .unwrap_err();
            assert_eq!(invalid_field(e), field);
        }
        // Absent and null filter and paging are fine.
        t.ok(json!({"cmd": "get_sessions"})).await;
        t.ok(json!({"cmd": "get_sessions", "filter": null, "paging": null}))
            .await;
    }

    pub async fn argument_validation(t: T) {
        for (act, field) in [
            (json!({"cmd": "open_session"}), "user_id"),
            (json!({"cmd": "open_session", "user_id": ""}), "user_id"),
            (json!({"cmd": "open_session", "user_id": 42}), "user_id"),
            (
                json!({"cmd": "open_session", "user_id": "u", "address": 1}),
                "address",
            ),
            (
                json!({"cmd": "open_session", "user_id": "u", "client": []}),
                "client",
            ),
            (
                json!({"cmd": "open_session", "user_id": "u", "user_name": {}}),
                "user_name",
            ),
            (
                json!({"cmd": "open_session", "user_id": "x".repeat(300)}),
                "user_id",
            ),
            (json!({"cmd": "get_session_by_id"}), "session_id"),
            (
                json!({"cmd": "get_session_by_id", "session_id": 7}),
                "session_id",
            ),
            (
                json!({"cmd": "store_session_data", "data": {}}),
                "session_id",
            ),
            (
                json!({"cmd": "update_session_user", "session_id": null}),
                "session_id",
            ),
            (json!({"cmd": "close_session"}), "session_id"),
            (json!({"cmd": "delete_session"}), "session_id"),
            (
                json!({"cmd": "delete_session_by_id", "session_id": false}),
                "session_id",
            ),
        ] {
            let e = t.call(act.clone()).await.unwrap_err();
            assert_eq!(e.status(), 400, "{act}");
            assert_eq!(invalid_field(e), field, "{act}");
        }
    }

    pub async fn data_size_limit(t: T) {
        // The limit is 1024 bytes of compact JSON: a string of 1022 chars plus quotes.
        let at = "d".repeat(1022);
        let over = "d".repeat(1023);
        let s = t
            .ok(json!({"cmd": "open_session", "user_id": "u", "data": at}))
            .await;
        assert_eq!(s["data"].as_str().unwrap().len(), 1022);
        for act in [
            json!({"cmd": "open_session", "user_id": "u", "data": over}),
            json!({"cmd": "open_session", "user_id": "u", "user": over}),
            json!({"cmd": "store_session_data", "session_id": s["id"], "data": over}),
            json!({"cmd": "update_session_user", "session_id": s["id"], "user": over}),
        ] {
            let e = t.call(act).await.unwrap_err();
            assert_eq!(e.code(), "DATA_TOO_LARGE");
            assert_eq!(e.status(), 413);
        }
        let v = t
            .ok(json!({"cmd": "store_session_data", "session_id": s["id"], "data": at}))
            .await;
        assert_eq!(v["data"].as_str().unwrap().len(), 1022);
    }

    pub async fn expiry_and_retention(t: T) {
        let keep = t.open("keeper", None, None).await;
        let t = T::with(t._fixture, |c| {
            c.sweep.idle_timeout = Duration::from_millis(1000);
            c.sweep.retention = None;
        });
        let mut old = Vec::new();
        for i in 0..20 {
            old.push(
                t.ok(json!({"cmd": "open_session", "user_id": format!("u{i}"), "data": {"i": i}}))
                    .await,
            );
        }
        // Margins are wide so a slow machine cannot expire `fresh` by accident.
        tokio::time::sleep(Duration::from_millis(1300)).await;
        let fresh = t
            .ok(json!({"cmd": "open_session", "user_id": "fresh", "data": 1}))
            .await;
        // `keep` was opened before the idle window too; touch it so it stays.
        t.ok(json!({"cmd": "store_session_data", "session_id": keep["id"], "data": 2}))
            .await;
        assert!(t
            .ok(json!({"cmd": "close_expired_sessions"}))
            .await
            .is_null());
        for s in &old {
            let now = t.get(&s["id"]).await;
            assert_eq!(now["active"], false, "expired session closed");
            assert!(now["data"].is_null());
            assert!(now["close_time"].is_string());
        }
        assert_eq!(t.get(&fresh["id"]).await["active"], true);
        assert_eq!(t.get(&keep["id"]).await["active"], true);
        // With retention None, closed sessions stay.
        t.ok(json!({"cmd": "close_expired_sessions"})).await;
        assert_eq!(
            t.list(json!({"active": false}), json!({"total": true}))
                .await["total"],
            20
        );
        // With a short retention, they are deleted with their index entries.
        let t = T::with(t._fixture, |c| {
            c.sweep.idle_timeout = Duration::from_secs(3600);
            c.sweep.retention = Some(Duration::from_millis(1));
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        t.ok(json!({"cmd": "close_expired_sessions"})).await;
        for s in &old {
            assert!(t.get(&s["id"]).await.is_null());
        }
        let page = t.list(json!({}), json!({"total": true})).await;
        assert_eq!(page["total"], 2);
        assert_eq!(
            t.list(json!({"user_id": "u3"}), json!({"total": true}))
                .await["total"],
            0
        );
    }

    pub async fn payloads_round_trip_exactly(t: T) {
        let data = json!({
            "z": 1, "a": [1, -2, 3.5, 1e300, -9007199254740993i64, 18446744073709551615u64],
            "nested": {"deep": {"deeper": [null, true, false, {}]}},
            "text": "ünïcødé 😀 \u{0000} \"quoted\" \\ \n line",
            "empty": ""
        });
        let user = json!(["a", {"b": null}]);
        let s = t
            .ok(json!({"cmd": "open_session", "user_id": "ü😀", "user_name": "Zoë", "data": data, "user": user}))
            .await;
        let back = t.get(&s["id"]).await;
        assert_eq!(back["data"], data);
        assert_eq!(back["user"], user);
        assert_eq!(back["user_id"], "ü😀");
        // Key order is kept.
        let keys: Vec<&String> = back["data"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["z", "a", "nested", "text", "empty"]);
        // Scalars are fine as data too.
        let v = t
            .ok(json!({"cmd": "store_session_data", "session_id": s["id"], "data": 0}))
            .await;
        assert_eq!(v["data"], 0);
        let v = t
            .ok(json!({"cmd": "store_session_data", "session_id": s["id"], "data": "s"}))
            .await;
        assert_eq!(t.get(&v["id"]).await["data"], "s");
    }

    pub async fn routing(_t: T) {
        let route = |v: Value| commands::route(v.as_object().unwrap());
        assert_eq!(
            route(json!({"role": "sessions", "version": 1, "cmd": "get_sessions"})),
            Ok(Cmd::GetSessions)
        );
        assert_eq!(
            route(json!({"role": "sessions", "version": "1", "cmd": "close_session"})),
            Ok(Cmd::CloseSession)
        );
        assert_eq!(
            route(json!({"role": "sessions", "cmd": "delete_session_by_id"})),
            Ok(Cmd::DeleteSessionById)
        );
        assert!(route(json!({"role": "sessions", "version": 2, "cmd": "get_sessions"})).is_err());
        assert!(
            route(json!({"role": "sessions", "version": "01", "cmd": "get_sessions"})).is_err()
        );
        assert!(route(json!({"role": "other", "version": 1, "cmd": "get_sessions"})).is_err());
        assert!(route(json!({"role": "sessions", "version": 1, "cmd": "drop_all"})).is_err());
        assert!(route(json!({"role": "sessions", "version": 1})).is_err());
    }
}
