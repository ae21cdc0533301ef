//! Helpers shared by the integration tests: real `redis-server` processes on free
//! ports, a raw Seneca client, and the service started in-process on free ports.
#![allow(dead_code)]

pub mod binary;
pub mod fleet;
pub mod haproxy;
pub mod http;
pub mod load;
pub mod needs;
pub mod node;
pub mod redis_cluster;
pub mod redis_sentinel;
pub mod redis_server;
pub mod seneca;
pub mod store_load;
pub mod sweep_suite;

use std::collections::HashMap;
use std::net::TcpListener;

use sessions::config::Config;

/// A TCP port nobody listens on right now (bound once on 127.0.0.1:0, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// A key prefix no other test uses, so tests can share one Redis.
pub fn unique_prefix(name: &str) -> String {
    format!("t-{name}-{}", uuid::Uuid::new_v4().simple())
}

/// Configuration for a test service on loopback port 0, with `overrides` applied.
pub fn config(overrides: &[(&str, &str)]) -> Config {
    let mut map: HashMap<String, String> = HashMap::new();
    map.insert("SESSIONS_LISTEN".into(), "127.0.0.1:0".into());
    map.insert("SESSIONS_ADMIN_LISTEN".into(), "127.0.0.1:0".into());
    for (k, v) in overrides {
        map.insert(k.to_string(), v.to_string());
    }
    Config::from_source(&map).expect("valid test configuration")
}

/// Starts the whole service in-process.
pub async fn spawn_app(overrides: &[(&str, &str)]) -> sessions::app::App {
    needs::check();
    sessions::app::start(config(overrides))
        .await
        .expect("service starts")
}

/// `now` with the service's default lifetimes (24 h idle, no absolute lifetime).
pub fn at(now: sessions::model::Millis) -> sessions::lifecycle::At {
    sessions::lifecycle::At::new(now, sessions::lifecycle::Lifetimes::default())
}

/// `now` with an idle timeout of `idle_ms` and no absolute lifetime: a sweep at this
/// instant closes what was last touched at or before `now - idle_ms`.
pub fn at_idle(
    now: sessions::model::Millis,
    idle_ms: sessions::model::Millis,
) -> sessions::lifecycle::At {
    sessions::lifecycle::At::new(
        now,
        sessions::lifecycle::Lifetimes {
            idle: idle_ms,
            absolute: None,
        },
    )
}
