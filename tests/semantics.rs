//! The command semantics of DESIGN.md §3, one suite run against every store and
//! topology: the embedded store, Redis (a real redis-server on a free port per
//! test), a Redis Cluster (six redis-server processes) and Redis behind Sentinel (a
//! primary, a replica and three sentinels); the cluster and the Sentinel deployment
//! are shared by the tests that overlap, each test under its own key prefix.
//! Commands are driven in-process through `commands::execute`, the same path the
//! wire takes after parsing, on a clock the test sets: expiry is checked to the
//! millisecond without sleeping.

mod common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use sessions::clock::Clock;
use sessions::commands::{self, Cmd, CommandError, Context, Limits};
use sessions::metrics::Metrics;
use sessions::model::{format_iso, Millis};
use sessions::store::redis::RedisOptions;
use sessions::store::{AnyStore, CapPolicy, SessionCap};
use sessions::sweeper::SweepConfig;

/// What this suite runs besides the service (see `common::needs`).
const NEEDS: &[common::needs::Need] = &[common::needs::Need::RedisServer];

/// Where the test clock starts (2027-01-15T08:00:00Z).
const START: Millis = 1_800_000_000_000;

/// A store under test, plus whatever keeps it alive (a redis-server).
pub struct Fixture {
    pub store: Arc<AnyStore>,
    /// How to reach the same data from another replica (`None`: the embedded store,
    /// which is its own only replica).
    replica: Option<RedisOptions>,
    _guard: Option<Box<dyn std::any::Any>>,
}

impl Fixture {
    /// Another replica of the service's store: a store of its own on the same Redis
    /// and prefix (the embedded store itself, for the embedded fixture).
    fn replica(&self) -> Arc<AnyStore> {
        match &self.replica {
            None => self.store.clone(),
            Some(opts) => {
                let store =
                    sessions::store::redis::RedisStore::new(opts.clone()).expect("replica store");
                let metrics = Arc::new(Metrics::new().expect("metrics"));
                Arc::new(AnyStore::Redis(sessions::instrumented::Instrumented::new(
                    store, metrics,
                )))
            }
        }
    }
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
        let (limits, sweep) = settings();
        let ctx = Context {
            store: fixture.store.clone(),
            limits,
            reuse: true,
            sweep,
            cap: SessionCap::default(),
            request_timeout: Duration::from_secs(5),
            metrics: Arc::new(Metrics::new().expect("metrics")),
            clock: Clock::manual(START),
        };
        T {
            ctx,
            _fixture: fixture,
        }
    }

    /// The same store, clock and metrics with other settings.
    fn reconfigure(self, tweak: impl FnOnce(&mut Context)) -> T {
        let mut t = self;
        tweak(&mut t.ctx);
        t
    }

    /// A context for another replica of the service: its own store connection (same
    /// data), the same settings, clock and metrics.
    fn replica(&self) -> Context {
        Context {
            store: self._fixture.replica(),
            limits: self.ctx.limits.clone(),
            reuse: self.ctx.reuse,
            sweep: self.ctx.sweep.clone(),
            cap: self.ctx.cap,
            request_timeout: self.ctx.request_timeout,
            metrics: self.ctx.metrics.clone(),
            clock: self.ctx.clock.clone(),
        }
    }

    fn now(&self) -> Millis {
        self.ctx.clock.now()
    }

    fn advance(&self, ms: u64) {
        self.ctx.clock.advance(Duration::from_millis(ms));
    }

    /// Moves the clock on a little, so consecutive calls get distinct times.
    fn tick(&self) {
        self.advance(3);
    }

    /// The value of one series in this test's metrics.
    fn metric(&self, series: &str) -> u64 {
        self.ctx
            .metrics
            .render()
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{series} not in the metrics"))
    }

    fn closed_by(&self, reason: &str) -> u64 {
        self.metric(&format!(
            "sessions_sessions_closed_total{{reason=\"{reason}\"}}"
        ))
    }

    async fn call(&self, act: Value) -> Result<Value, CommandError> {
        call_on(&self.ctx, act).await
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

async fn call_on(ctx: &Context, act: Value) -> Result<Value, CommandError> {
    let mut act: Map<String, Value> = act.as_object().cloned().expect("act is an object");
    act.insert("role".into(), json!("sessions"));
    let cmd = commands::route(&act).expect("known command");
    let out = commands::execute(ctx, cmd, &act).await?;
    Ok(serde_json::to_value(&out).expect("serializable"))
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .expect("data array")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect()
}

fn id_list(sessions: &[&Value]) -> Vec<String> {
    sessions
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect()
}

fn iso(ms: Millis) -> Value {
    json!(format_iso(ms))
}

/// Asserts `s` reads closed at `at`: not active, close_time and request_time `at`,
/// data and user wiped.
#[track_caller]
fn assert_closed_at(s: &Value, at: Millis) {
    assert_eq!(s["active"], false, "{s}");
    assert_eq!(s["close_time"], iso(at), "{s}");
    assert_eq!(s["request_time"], iso(at), "{s}");
    assert!(s["data"].is_null() && s["user"].is_null(), "{s}");
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
        mod sentinel {
            $(
                #[tokio::test]
                async fn $name() {
                    super::cases::$name(super::T::new(super::fixtures::sentinel())).await;
                }
            )*
        }
    };
}

mod fixtures {
    use super::*;
    use common::redis_sentinel::{DATA_PASSWORD, MASTER};
    use common::redis_server::RedisServer;
    use sessions::instrumented::Instrumented;
    use sessions::store::memory::MemoryStore;
    use sessions::store::redis::{Credentials, RedisStore, Secret, Topology};

    fn on(opts: RedisOptions, guard: Box<dyn std::any::Any>) -> Fixture {
        let store = RedisStore::new(opts.clone()).expect("redis store");
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        Fixture {
            store: Arc::new(AnyStore::Redis(Instrumented::new(store, metrics))),
            replica: Some(opts),
            _guard: Some(guard),
        }
    }

    /// A Redis store on its own redis-server (stopped when the test ends).
    pub fn redis() -> Fixture {
        let server = RedisServer::start();
        let opts = RedisOptions {
            url: server.url(),
            prefix: common::unique_prefix("semantics"),
            timeout: Duration::from_secs(5),
            connections: 2,
            ..RedisOptions::default()
        };
        on(opts, Box::new(server))
    }

    /// A Redis store on a Redis Cluster (three primaries, three replicas) shared by
    /// the cluster tests that run at the same time, under a prefix of its own.
    pub fn cluster() -> Fixture {
        let cluster = common::redis_cluster::shared();
        let opts = RedisOptions {
            url: cluster.urls(),
            prefix: common::unique_prefix("semantics"),
            timeout: Duration::from_secs(5),
            topology: Topology::Cluster,
            ..RedisOptions::default()
        };
        on(opts, Box::new(cluster))
    }

    /// A Redis store on the primary three sentinels name (password-protected nodes
    /// and sentinels), shared by the sentinel tests that run at the same time.
    pub fn sentinel() -> Fixture {
        let setup = common::redis_sentinel::shared();
        let opts = RedisOptions {
            url: setup.urls(),
            prefix: common::unique_prefix("semantics"),
            timeout: Duration::from_secs(5),
            topology: Topology::Sentinel {
                master: MASTER.into(),
            },
            auth: Credentials {
                username: None,
                password: Some(Secret::new(DATA_PASSWORD)),
            },
            ..RedisOptions::default()
        };
        on(opts, Box::new(setup))
    }

    pub fn memory() -> Fixture {
        Fixture {
            store: Arc::new(AnyStore::Memory(MemoryStore::new())),
            replica: None,
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
    expiry_is_exact_on_reads,
    writes_to_expired_sessions_fail,
    open_never_reuses_an_expired_session,
    active_filter_total_and_paging_follow_exact_expiry,
    absolute_lifetime_ends_busy_sessions,
    the_sweep_closes_at_the_instant_of_expiry,
    close_user_sessions_revokes_all_but_the_kept_one,
    close_user_sessions_closes_expired_ones_at_their_instant,
    cap_close_oldest_evicts_the_least_recently_used,
    cap_refuse_answers_session_limit,
    concurrent_opens_never_exceed_the_cap,
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
        t.tick();
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
        let t = t.reconfigure(|c| c.reuse = false);
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
        t.tick();
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
        t.tick();
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
        t.tick();
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
        t.tick();
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
        t.tick();
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
            t.tick();
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
            (json!({"cmd": "close_user_sessions"}), "user_id"),
            (
                json!({"cmd": "close_user_sessions", "user_id": ""}),
                "user_id",
            ),
            (
                json!({"cmd": "close_user_sessions", "user_id": 5}),
                "user_id",
            ),
            (
                json!({"cmd": "close_user_sessions", "user_id": "u", "except_session_id": 7}),
                "except_session_id",
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
        let t = t.reconfigure(|c| {
            c.sweep.idle_timeout = Duration::from_millis(1000);
            c.sweep.retention = None;
        });
        let t0 = t.now();
        let keep = t.open("keeper", None, None).await;
        let mut old = Vec::new();
        for i in 0..20 {
            old.push(
                t.ok(json!({"cmd": "open_session", "user_id": format!("u{i}"), "data": {"i": i}}))
                    .await,
            );
        }
        t.advance(900);
        // Touched in time: `keep` lives until t0 + 1900.
        t.ok(json!({"cmd": "store_session_data", "session_id": keep["id"], "data": 2}))
            .await;
        t.advance(400);
        let fresh = t
            .ok(json!({"cmd": "open_session", "user_id": "fresh", "data": 1}))
            .await;
        assert!(t
            .ok(json!({"cmd": "close_expired_sessions"}))
            .await
            .is_null());
        for s in &old {
            // Closed as of the instant it expired, not the sweep's time.
            assert_closed_at(&t.get(&s["id"]).await, t0 + 1000);
        }
        assert_eq!(t.metric("sessions_sessions_expired_total"), 20);
        assert_eq!(t.closed_by("idle"), 20);
        assert_eq!(t.get(&fresh["id"]).await["active"], true);
        assert_eq!(t.get(&keep["id"]).await["active"], true);
        // With retention None, closed sessions stay.
        t.ok(json!({"cmd": "close_expired_sessions"})).await;
        assert_eq!(t.metric("sessions_sessions_expired_total"), 20, "once each");
        assert_eq!(
            t.list(json!({"active": false}), json!({"total": true}))
                .await["total"],
            20
        );
        // With a short retention, they are deleted with their index entries.
        let t = t.reconfigure(|c| {
            c.sweep.idle_timeout = Duration::from_secs(3600);
            c.sweep.retention = Some(Duration::from_millis(1));
        });
        t.advance(5);
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
        assert_eq!(
            route(json!({"role": "sessions", "version": 1, "cmd": "close_user_sessions"})),
            Ok(Cmd::CloseUserSessions)
        );
        assert!(route(json!({"role": "sessions", "version": 2, "cmd": "get_sessions"})).is_err());
        assert!(
            route(json!({"role": "sessions", "version": "01", "cmd": "get_sessions"})).is_err()
        );
        assert!(route(json!({"role": "other", "version": 1, "cmd": "get_sessions"})).is_err());
        assert!(route(json!({"role": "sessions", "version": 1, "cmd": "drop_all"})).is_err());
        assert!(route(json!({"role": "sessions", "version": 1})).is_err());
    }

    pub async fn expiry_is_exact_on_reads(t: T) {
        let t = t.reconfigure(|c| c.sweep.idle_timeout = Duration::from_secs(10));
        let t0 = t.now();
        let s = t
            .ok(json!({"cmd": "open_session", "user_id": "u", "data": {"x": 1}, "user": {"y": 2}}))
            .await;
        t.advance(4_000);
        let touched = t
            .ok(json!({"cmd": "store_session_data", "session_id": s["id"], "data": {"x": 2}}))
            .await;
        assert_eq!(touched["request_time"], iso(t0 + 4_000));
        // One millisecond before the idle time is up, it is live.
        t.advance(9_999);
        let live = t.get(&s["id"]).await;
        assert_eq!(live["active"], true);
        assert_eq!(live["data"], json!({"x": 2}));
        // From the instant it is up, every read shows it closed then, with no sweep.
        t.advance(1);
        let g = t.get(&s["id"]).await;
        assert_closed_at(&g, t0 + 14_000);
        assert_eq!(g["open_time"], s["open_time"]);
        assert_eq!((&g["id"], &g["user_id"]), (&s["id"], &s["user_id"]));
        // ... the same much later: the instant it expired, not the instant of the read.
        t.advance(60_000);
        assert_eq!(t.get(&s["id"]).await, g);
        let page = t.list(json!({"user_id": "u"}), json!({})).await;
        assert_eq!(page["data"][0], g);
        let by_id = t.list(json!({"id": s["id"]}), json!({"total": true})).await;
        assert_eq!(by_id["data"][0], g);
        let by_id_active = t
            .list(
                json!({"id": s["id"], "active": true}),
                json!({"total": true}),
            )
            .await;
        assert_eq!(by_id_active["total"], 0);
        // Deleting it answers it as it reads.
        let d = t
            .ok(json!({"cmd": "delete_session", "session_id": s["id"]}))
            .await;
        assert_eq!(d, g);
        assert_eq!(
            t.metric("sessions_sessions_expired_total"),
            0,
            "no sweep ran"
        );
    }

    pub async fn writes_to_expired_sessions_fail(t: T) {
        let t = t.reconfigure(|c| c.sweep.idle_timeout = Duration::from_secs(10));
        let t0 = t.now();
        let s = t
            .ok(json!({"cmd": "open_session", "user_id": "u", "data": {"a": 1}}))
            .await;
        t.advance(10_000);
        for act in [
            json!({"cmd": "store_session_data", "session_id": s["id"], "data": {"x": 1}}),
            json!({"cmd": "update_session_user", "session_id": s["id"], "user": {"x": 1}}),
        ] {
            let e = t.call(act).await.unwrap_err();
            assert_eq!(e.code(), "SESSION_CLOSED");
            assert_eq!(e.status(), 409);
        }
        let g = t.get(&s["id"]).await;
        assert_closed_at(&g, t0 + 10_000);
        // close_session closes it for good at the instant it expired, as idle.
        t.advance(5_000);
        let c = t
            .ok(json!({"cmd": "close_session", "session_id": s["id"]}))
            .await;
        assert_eq!(c, g);
        assert_eq!(t.closed_by("idle"), 1);
        assert_eq!(t.closed_by("logout"), 0);
        let again = t
            .ok(json!({"cmd": "close_session", "session_id": s["id"]}))
            .await;
        assert_eq!(again, g);
        assert_eq!(t.closed_by("idle"), 1, "counted once");
        // Nothing left for the sweep.
        t.ok(json!({"cmd": "close_expired_sessions"})).await;
        assert_eq!(t.metric("sessions_sessions_expired_total"), 0);
        assert_eq!(t.get(&s["id"]).await, g);
        // A live session closed by close_session is a logout, at now.
        let live = t.open("v", None, None).await;
        t.tick();
        let c = t
            .ok(json!({"cmd": "close_session", "session_id": live["id"]}))
            .await;
        assert_closed_at(&c, t.now());
        assert_eq!(t.closed_by("logout"), 1);
    }

    pub async fn open_never_reuses_an_expired_session(t: T) {
        let t = t.reconfigure(|c| c.sweep.idle_timeout = Duration::from_secs(10));
        let t0 = t.now();
        let a = t.open("u", Some("10.0.0.1"), Some("web")).await;
        t.advance(9_999);
        assert_eq!(
            t.open("u", Some("10.0.0.1"), Some("web")).await["id"],
            a["id"],
            "live: reused (and touched)"
        );
        t.advance(10_000);
        let b = t.open("u", Some("10.0.0.1"), Some("web")).await;
        assert_ne!(b["id"], a["id"]);
        assert_eq!(b["active"], true);
        assert_eq!(b["open_time"], iso(t0 + 19_999));
        let old = t.get(&a["id"]).await;
        assert_closed_at(&old, t0 + 19_999);
        // The new session holds the reuse slot, before the sweep and after it.
        t.tick();
        assert_eq!(
            t.open("u", Some("10.0.0.1"), Some("web")).await["id"],
            b["id"]
        );
        t.ok(json!({"cmd": "close_expired_sessions"})).await;
        assert_eq!(t.get(&a["id"]).await, old);
        assert_eq!(t.metric("sessions_sessions_expired_total"), 1);
        assert_eq!(t.closed_by("idle"), 1);
        t.tick();
        let again = t.open("u", Some("10.0.0.1"), Some("web")).await;
        assert_eq!(again["id"], b["id"]);
        assert_eq!(again["active"], true);
        assert_eq!(t.metric("sessions_sessions_reused_total"), 3);
        assert_eq!(t.metric("sessions_sessions_opened_total"), 2);
    }

    pub async fn active_filter_total_and_paging_follow_exact_expiry(t: T) {
        let t = t.reconfigure(|c| c.sweep.idle_timeout = Duration::from_secs(10));
        let t0 = t.now();
        // Six sessions of one user, opened a second apart, and ten of other users
        // (other buckets too).
        let mut u = Vec::new();
        for i in 0..6 {
            u.push(t.open("u", Some(&format!("a{i}")), None).await);
            t.advance(1_000);
        }
        let mut others = Vec::new();
        for i in 0..10 {
            others.push(t.open(&format!("other{i}"), None, None).await);
        }
        // Touched at t0 + 6000: u[0] lives until t0 + 16000.
        t.ok(json!({"cmd": "store_session_data", "session_id": u[0]["id"], "data": 1}))
            .await;
        // At t0 + 12500, u[1] (expired at t0 + 11000) and u[2] (t0 + 12000) are over.
        t.advance(6_500);
        let live = t
            .list(
                json!({"user_id": "u", "active": true}),
                json!({"total": true}),
            )
            .await;
        assert_eq!(ids(&live), id_list(&[&u[5], &u[4], &u[3], &u[0]]));
        assert_eq!(live["total"], 4);
        let page = t
            .list(
                json!({"user_id": "u", "active": "true"}),
                json!({"skip": 1, "take": 2, "total": true}),
            )
            .await;
        assert_eq!(ids(&page), id_list(&[&u[4], &u[3]]));
        assert_eq!(page["total"], 4);
        let over = t
            .list(
                json!({"user_id": "u", "active": false}),
                json!({"total": true}),
            )
            .await;
        assert_eq!(ids(&over), id_list(&[&u[2], &u[1]]));
        assert_eq!(over["total"], 2);
        assert_closed_at(&over["data"][0], t0 + 12_000);
        assert_closed_at(&over["data"][1], t0 + 11_000);
        let everyone = t
            .list(json!({"active": true}), json!({"total": true}))
            .await;
        assert_eq!(everyone["total"], 14);
        let mut paged = Vec::new();
        for skip in [0, 5, 10] {
            let p = t
                .list(
                    json!({"active": true}),
                    json!({"skip": skip, "take": 5, "total": true}),
                )
                .await;
            assert_eq!(p["total"], 14);
            paged.extend(ids(&p));
        }
        assert_eq!(paged, ids(&everyone));
        assert_eq!(
            t.list(json!({"active": false}), json!({"total": true}))
                .await["total"],
            2
        );
        let all = t
            .list(json!({"user_id": "u"}), json!({"total": true}))
            .await;
        assert_eq!(all["total"], 6);
        assert_closed_at(&all["data"][3], t0 + 12_000);
        // At t0 + 16000 everything is over.
        t.advance(3_500);
        assert_eq!(
            t.list(json!({"active": true}), json!({"total": true}))
                .await["total"],
            0
        );
        let closed = t
            .list(json!({"active": false}), json!({"total": true}))
            .await;
        assert_eq!(closed["total"], 16);
        for s in closed["data"].as_array().unwrap() {
            assert_eq!(s["active"], false);
            assert_eq!(s["close_time"], s["request_time"]);
        }
        assert_closed_at(&t.get(&u[0]["id"]).await, t0 + 16_000);
        // The listings made the expiry permanent: each close counted once, and the
        // sweep finds nothing left.
        assert_eq!(t.closed_by("idle"), 16);
        t.ok(json!({"cmd": "close_expired_sessions"})).await;
        assert_eq!(t.metric("sessions_sessions_expired_total"), 0);
        assert_eq!(t.closed_by("idle"), 16);
    }

    pub async fn absolute_lifetime_ends_busy_sessions(t: T) {
        let t = t.reconfigure(|c| {
            c.sweep.idle_timeout = Duration::from_secs(3);
            c.sweep.absolute_lifetime = Some(Duration::from_secs(5));
        });
        let t0 = t.now();
        let s = t.open("u", Some("ip"), None).await;
        for _ in 0..2 {
            t.advance(2_000);
            t.ok(json!({"cmd": "store_session_data", "session_id": s["id"], "data": 1}))
                .await;
        }
        t.advance(999);
        assert_eq!(
            t.get(&s["id"]).await["active"],
            true,
            "busy, and young enough"
        );
        t.advance(1);
        let g = t.get(&s["id"]).await;
        assert_closed_at(&g, t0 + 5_000);
        let e = t
            .call(json!({"cmd": "store_session_data", "session_id": s["id"], "data": 2}))
            .await
            .unwrap_err();
        assert_eq!(e.code(), "SESSION_CLOSED");
        let fresh = t.open("u", Some("ip"), None).await;
        assert_ne!(fresh["id"], s["id"], "never reused");
        let over = t
            .list(
                json!({"user_id": "u", "active": false}),
                json!({"total": true}),
            )
            .await;
        assert_eq!(over["data"], json!([g]));
        assert_eq!(t.closed_by("absolute"), 1);
        // The sweep closes a busy session at its open_time + the lifetime too.
        let t1 = t.now();
        let v = t.open("v", None, None).await;
        for _ in 0..2 {
            t.advance(2_000);
            t.ok(json!({"cmd": "update_session_user", "session_id": v["id"], "user": 1}))
                .await;
        }
        t.advance(1_000);
        t.ok(json!({"cmd": "close_expired_sessions"})).await;
        assert_closed_at(&t.get(&v["id"]).await, t1 + 5_000);
        // ... and `fresh`, opened at t1 and never touched, at its idle time.
        assert_closed_at(&t.get(&fresh["id"]).await, t1 + 3_000);
        assert_eq!(t.metric("sessions_sessions_expired_total"), 2);
        assert_eq!(t.closed_by("absolute"), 2);
        assert_eq!(t.closed_by("idle"), 1);
    }

    pub async fn the_sweep_closes_at_the_instant_of_expiry(t: T) {
        let t = t.reconfigure(|c| {
            c.sweep.idle_timeout = Duration::from_secs(10);
            c.sweep.absolute_lifetime = Some(Duration::from_secs(60));
        });
        let t0 = t.now();
        let idle = t.open("idle", None, None).await;
        let busy = t.open("busy", None, None).await;
        for _ in 0..6 {
            t.advance(9_000);
            t.ok(json!({"cmd": "store_session_data", "session_id": busy["id"], "data": 1}))
                .await;
        }
        t.advance(100_000);
        t.ok(json!({"cmd": "close_expired_sessions"})).await;
        assert_closed_at(&t.get(&idle["id"]).await, t0 + 10_000);
        assert_closed_at(&t.get(&busy["id"]).await, t0 + 60_000);
        assert_eq!(t.metric("sessions_sessions_expired_total"), 2);
        assert_eq!(t.closed_by("idle"), 1);
        assert_eq!(t.closed_by("absolute"), 1);
        t.ok(json!({"cmd": "close_expired_sessions"})).await;
        assert_eq!(t.metric("sessions_sessions_expired_total"), 2);
        // Retention counts from the instant they ended, not from the sweep: with one
        // day of it, at t0 + 1 day + 30 s the idle one (ended at t0 + 10 s) is gone,
        // the busy one (t0 + 60 s) still there.
        t.advance(86_400_000 + 30_000 - 154_000);
        t.ok(json!({"cmd": "close_expired_sessions"})).await;
        assert!(t.get(&idle["id"]).await.is_null());
        assert_eq!(t.get(&busy["id"]).await["active"], false);
    }

    pub async fn close_user_sessions_revokes_all_but_the_kept_one(t: T) {
        let s1 = t.open("u", Some("a1"), None).await;
        t.tick();
        let s2 = t.open("u", Some("a2"), None).await;
        t.tick();
        let s3 = t
            .ok(json!({"cmd": "open_session", "user_id": "u", "address": "a3", "data": {"d": 1}, "user": {"n": 1}}))
            .await;
        let other = t.open("v", Some("a1"), None).await;
        t.tick();
        let r = t
            .ok(json!({"cmd": "close_user_sessions", "user_id": "u", "except_session_id": s2["id"]}))
            .await;
        assert_eq!(r, json!({"closed": 2}));
        let now = t.now();
        for s in [&s1, &s3] {
            let g = t.get(&s["id"]).await;
            assert_closed_at(&g, now);
            assert_eq!(g["open_time"], s["open_time"]);
        }
        assert_eq!(t.get(&s2["id"]).await, s2, "the kept session is untouched");
        assert_eq!(
            t.get(&other["id"]).await,
            other,
            "other users are untouched"
        );
        let live = t
            .list(
                json!({"user_id": "u", "active": true}),
                json!({"total": true}),
            )
            .await;
        assert_eq!(ids(&live), id_list(&[&s2]));
        assert_eq!(t.closed_by("revoked"), 2);
        // Revoked sessions are never reused; writes to them fail.
        assert_ne!(t.open("u", Some("a1"), None).await["id"], s1["id"]);
        let e = t
            .call(json!({"cmd": "store_session_data", "session_id": s3["id"], "data": 2}))
            .await
            .unwrap_err();
        assert_eq!(e.code(), "SESSION_CLOSED");
        // Without except_session_id every active session goes.
        t.tick();
        let r = t
            .ok(json!({"cmd": "close_user_sessions", "user_id": "u"}))
            .await;
        assert_eq!(r, json!({"closed": 2}));
        assert_eq!(t.get(&s2["id"]).await["active"], false);
        let r = t
            .ok(json!({"cmd": "close_user_sessions", "user_id": "u"}))
            .await;
        assert_eq!(r, json!({"closed": 0}));
        let r = t
            .ok(json!({"cmd": "close_user_sessions", "user_id": "nobody", "except_session_id": s1["id"]}))
            .await;
        assert_eq!(r, json!({"closed": 0}));
        assert_eq!(t.closed_by("revoked"), 4);
        assert_eq!(t.get(&other["id"]).await["active"], true);
    }

    pub async fn close_user_sessions_closes_expired_ones_at_their_instant(t: T) {
        let t = t.reconfigure(|c| c.sweep.idle_timeout = Duration::from_secs(10));
        let t0 = t.now();
        let old = t.open("u", Some("a1"), None).await;
        t.advance(5_000);
        let live = t.open("u", Some("a2"), None).await;
        t.advance(5_000);
        // `old` expired at t0 + 10000 (now): closed as expired, not counted as revoked.
        let r = t
            .ok(json!({"cmd": "close_user_sessions", "user_id": "u"}))
            .await;
        assert_eq!(r, json!({"closed": 1}));
        assert_closed_at(&t.get(&old["id"]).await, t0 + 10_000);
        assert_closed_at(&t.get(&live["id"]).await, t.now());
        assert_eq!(t.closed_by("revoked"), 1);
        assert_eq!(t.closed_by("idle"), 1);
        // The kept session, once expired, is closed as expired too.
        let kept = t.open("w", None, None).await;
        let t1 = t.now();
        t.advance(12_000);
        let r = t
            .ok(json!({"cmd": "close_user_sessions", "user_id": "w", "except_session_id": kept["id"]}))
            .await;
        assert_eq!(r, json!({"closed": 0}));
        assert_closed_at(&t.get(&kept["id"]).await, t1 + 10_000);
        assert_eq!(t.closed_by("idle"), 2);
    }

    pub async fn cap_close_oldest_evicts_the_least_recently_used(t: T) {
        let t = t.reconfigure(|c| {
            c.sweep.idle_timeout = Duration::from_secs(10);
            c.cap = SessionCap {
                max: 3,
                policy: CapPolicy::CloseOldest,
            };
        });
        let s1 = t.open("u", None, Some("c1")).await;
        t.tick();
        let s2 = t.open("u", None, Some("c2")).await;
        t.tick();
        let s3 = t.open("u", None, Some("c3")).await;
        t.tick();
        // s1 is used again: s2 is now the least recently used.
        t.ok(json!({"cmd": "store_session_data", "session_id": s1["id"], "data": 1}))
            .await;
        t.tick();
        let s4 = t.open("u", None, Some("c4")).await;
        assert_eq!(s4["active"], true);
        assert_closed_at(&t.get(&s2["id"]).await, t.now());
        let live = t
            .list(
                json!({"user_id": "u", "active": true}),
                json!({"total": true}),
            )
            .await;
        assert_eq!(ids(&live), id_list(&[&s4, &s3, &s1]));
        assert_eq!(t.closed_by("evicted"), 1);
        // A reuse is not a new session: nothing is evicted.
        t.tick();
        assert_eq!(t.open("u", None, Some("c3")).await["id"], s3["id"]);
        assert_eq!(t.closed_by("evicted"), 1);
        // Other users have caps of their own.
        for c in ["c1", "c2", "c3"] {
            t.open("v", None, Some(c)).await;
        }
        assert_eq!(t.get(&s1["id"]).await["active"], true);
        // Expired sessions do not count, and are closed as expired, not evicted.
        let t1 = t.now();
        t.advance(10_000);
        let fresh = t.open("u", None, Some("c5")).await;
        let live = t
            .list(
                json!({"user_id": "u", "active": true}),
                json!({"total": true}),
            )
            .await;
        assert_eq!(ids(&live), id_list(&[&fresh]));
        assert_closed_at(&t.get(&s3["id"]).await, t1 + 10_000);
        assert_eq!(t.closed_by("evicted"), 1);
    }

    pub async fn cap_refuse_answers_session_limit(t: T) {
        let t = t.reconfigure(|c| {
            c.sweep.idle_timeout = Duration::from_secs(10);
            c.cap = SessionCap {
                max: 2,
                policy: CapPolicy::Refuse,
            };
        });
        let s1 = t.open("u", None, Some("c1")).await;
        t.tick();
        let s2 = t.open("u", None, Some("c2")).await;
        t.tick();
        let e = t
            .call(json!({"cmd": "open_session", "user_id": "u", "client": "c3"}))
            .await
            .unwrap_err();
        assert_eq!(e.code(), "SESSION_LIMIT");
        assert_eq!(e.status(), 409);
        assert_eq!(e.category(), "Conflict");
        assert_eq!(e.details(), Some(json!({"limit": 2})));
        assert_eq!(e.outcome(), "session_limit");
        assert_eq!(t.metric("sessions_sessions_refused_total"), 1);
        let all = t
            .list(json!({"user_id": "u"}), json!({"total": true}))
            .await;
        assert_eq!(all["total"], 2, "a refused open creates nothing");
        // A reuse is not a new session.
        assert_eq!(t.open("u", None, Some("c1")).await["id"], s1["id"]);
        // Closing one makes room.
        t.ok(json!({"cmd": "close_session", "session_id": s1["id"]}))
            .await;
        let s3 = t.open("u", None, Some("c3")).await;
        assert_eq!(s3["active"], true);
        assert_eq!(t.get(&s2["id"]).await["active"], true, "nothing evicted");
        // Sessions past their lifetime do not count.
        t.advance(10_000);
        t.open("u", None, Some("c4")).await;
        t.open("u", None, Some("c5")).await;
        let e = t
            .call(json!({"cmd": "open_session", "user_id": "u", "client": "c6"}))
            .await
            .unwrap_err();
        assert_eq!(e.code(), "SESSION_LIMIT");
        assert_eq!(t.metric("sessions_sessions_refused_total"), 2);
    }

    pub async fn concurrent_opens_never_exceed_the_cap(t: T) {
        for (user, policy) in [("lru", CapPolicy::CloseOldest), ("no", CapPolicy::Refuse)] {
            let t = &t;
            let cap = SessionCap { max: 3, policy };
            let replicas: Vec<Context> = (0..4)
                .map(|_| {
                    let mut c = t.replica();
                    c.cap = cap;
                    c
                })
                .collect();
            let opens = replicas.iter().enumerate().flat_map(|(r, ctx)| {
                (0..5).map(move |k| {
                    call_on(
                        ctx,
                        json!({"cmd": "open_session", "user_id": user, "client": format!("c{r}-{k}")}),
                    )
                })
            });
            let results = futures::future::join_all(opens).await;
            let ok = results.iter().filter(|r| r.is_ok()).count();
            for r in &results {
                if let Err(e) = r {
                    assert_eq!(e.code(), "SESSION_LIMIT", "{e:?}");
                }
            }
            let live = t
                .list(
                    json!({"user_id": user, "active": true}),
                    json!({"total": true}),
                )
                .await;
            assert_eq!(live["total"], 3, "{policy:?}: never more than the cap");
            match policy {
                CapPolicy::CloseOldest => assert_eq!(ok, 20),
                CapPolicy::Refuse => assert_eq!(ok, 3),
            }
        }
        assert_eq!(t.closed_by("evicted"), 17);
        assert_eq!(t.metric("sessions_sessions_refused_total"), 17);
    }
}
