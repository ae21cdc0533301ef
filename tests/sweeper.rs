//! The expiry and retention sweeps against the embedded store (the shared suite in
//! `common/sweep_suite.rs`), and the same functions against Redis.

mod common;

use std::sync::Arc;

use common::sweep_suite;
use sessions::store::memory::MemoryStore;

/// What this suite runs besides the service (see `common::needs`).
const NEEDS: &[common::needs::Need] = &[common::needs::Need::RedisServer];

#[tokio::test]
async fn memory_expires_idle_sessions_only() {
    sweep_suite::expires_idle_sessions_only(&MemoryStore::new(), "exp").await;
}

#[tokio::test]
async fn memory_retention_deletes_old_closed_sessions() {
    sweep_suite::retention_deletes_old_closed_sessions(&MemoryStore::new(), "ret").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_concurrent_sweeps_close_each_once() {
    sweep_suite::concurrent_sweeps_close_each_once(Arc::new(MemoryStore::new()), "conc").await;
}

mod redis {
    use super::*;
    use common::redis_server::RedisServer;
    use sessions::store::redis::{RedisOptions, RedisStore};
    use std::time::Duration;

    fn store(server: &RedisServer) -> RedisStore {
        RedisStore::new(RedisOptions {
            url: server.url(),
            prefix: common::unique_prefix("sweep"),
            timeout: Duration::from_secs(5),
            connections: 2,
            ..RedisOptions::default()
        })
        .expect("redis store")
    }

    #[tokio::test]
    async fn expires_idle_sessions_only() {
        let server = RedisServer::start();
        sweep_suite::expires_idle_sessions_only(&store(&server), "exp").await;
    }

    #[tokio::test]
    async fn retention_deletes_old_closed_sessions() {
        let server = RedisServer::start();
        sweep_suite::retention_deletes_old_closed_sessions(&store(&server), "ret").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_sweeps_close_each_once() {
        let server = RedisServer::start();
        sweep_suite::concurrent_sweeps_close_each_once(Arc::new(store(&server)), "conc").await;
    }
}
