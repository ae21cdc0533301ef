//! Deploy checks: the Dockerfile, docker-compose.yml, the Helm chart, the HAProxy and
//! Prometheus configurations, the alert rules and the Grafana dashboards, each checked
//! with the real tool that will read it (hadolint, Docker Compose, Helm's engine,
//! kubernetes-validate, promtool, Prometheus, HAProxy, TypeScript with
//! @grafana/schema) and against the service itself, started in-process.
//!
//! The tools are installed by `./test.sh --provision`; when one is missing the suite
//! stops with that hint.

#[path = "../common/mod.rs"]
mod common;

mod chart;
mod compose;
mod dashboards;
mod docker;
mod haproxy;
mod prometheus;
mod promql;
mod tools;

use std::net::SocketAddr;
use std::time::Duration;

use common::needs::Need;
use common::redis_server::RedisServer;
use common::seneca::Client;
use serde_json::json;
use sessions::app::App;

/// What this suite runs besides the service (see `common::needs`).
const NEEDS: &[Need] = &[
    Need::RedisServer,
    Need::Promtool,
    Need::Prometheus,
    Need::Haproxy,
    Need::Node,
    Need::DeployVenv,
    Need::GrafanaSchema,
];

/// Service replicas running in-process on loopback port 0, sharing one throwaway
/// redis-server as production replicas share Redis, on a runtime of their own so the
/// test thread may block.
pub struct Replicas {
    pub apps: Vec<App>,
    pub redis: RedisServer,
    rt: tokio::runtime::Runtime,
}

impl Replicas {
    /// Starts `n` replicas, sends each some traffic touching every command, and
    /// waits until each reports ready.
    pub fn start(n: usize) -> Replicas {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let redis = RedisServer::start();
        let url = redis.url();
        let prefix = common::unique_prefix("deploy");
        let apps = rt.block_on(async {
            let mut apps = Vec::new();
            for _ in 0..n {
                let app =
                    common::spawn_app(&[("REDIS_URL", &url), ("SESSIONS_KEY_PREFIX", &prefix)])
                        .await;
                traffic(app.seneca_addr).await;
                apps.push(app);
            }
            apps
        });
        let replicas = Replicas { apps, redis, rt };
        for app in &replicas.apps {
            let ready = tools::poll(Duration::from_secs(10), || {
                (tools::http_get(app.admin_addr, "/ready")?.0 == 200).then_some(())
            });
            assert!(
                ready.is_some(),
                "replica {} never became ready",
                app.admin_addr
            );
        }
        replicas
    }

    pub fn admin(&self, i: usize) -> SocketAddr {
        self.apps[i].admin_addr
    }

    pub fn seneca(&self, i: usize) -> SocketAddr {
        self.apps[i].seneca_addr
    }

    /// Runs a future on the replicas' runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// The replica's current /metrics text.
    pub fn scrape(&self, i: usize) -> String {
        let (status, body) =
            tools::http_get(self.admin(i), "/metrics").expect("admin port answers");
        assert_eq!(status, 200, "GET /metrics");
        body
    }
}

/// Every command once, a reuse, an error and an unknown command, so counters move.
pub async fn traffic(addr: SocketAddr) {
    let mut c = Client::connect(addr).await;
    let s = c
        .call(json!({"cmd": "open_session", "user_id": "u-1", "address": "10.0.0.7", "client": "web"}))
        .await;
    c.call(
        json!({"cmd": "open_session", "user_id": "u-1", "address": "10.0.0.7", "client": "web"}),
    )
    .await;
    let id = s["id"].clone();
    c.call(json!({"cmd": "get_session_by_id", "session_id": id}))
        .await;
    c.call(json!({"cmd": "store_session_data", "session_id": id, "data": {"cart": [1]}}))
        .await;
    c.call(json!({"cmd": "update_session_user", "session_id": id, "user": {"name": "Ann"}}))
        .await;
    c.call(json!({"cmd": "get_sessions", "filter": {"user_id": "u-1"}, "paging": {"total": true}}))
        .await;
    c.call(json!({"cmd": "close_session", "session_id": id}))
        .await;
    c.call(json!({"cmd": "delete_session_by_id", "session_id": id}))
        .await;
    c.call(json!({"cmd": "close_expired_sessions"})).await;
    c.send(json!({"cmd": "open_session"}), true).await; // INVALID_DATA: no user_id
    c.reply().await;
    c.send(json!({"cmd": "no_such_command"}), true).await;
    c.reply().await;
}
