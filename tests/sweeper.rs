//! The expiry and retention sweeps against the embedded store (the shared suite in
//! `common/sweep_suite.rs`; the Redis backend runs the same functions).

mod common;

use std::sync::Arc;

use common::sweep_suite;
use sessions::store::memory::MemoryStore;

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
