//! Helpers shared by the integration tests: real `redis-server` processes on free
//! ports, and free-port lookup.
#![allow(dead_code)]

pub mod redis_server;
pub mod sweep_suite;

use std::net::TcpListener;

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
