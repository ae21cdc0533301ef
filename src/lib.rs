//! sessions: a Seneca TCP sessions service backed by Redis, or by an embedded store.
//!
//! Layers point one way: `server` (accept, limits, drain) → `connection` (bytes ↔
//! lines, concurrency per connection) → `service` (one request to one reply) →
//! `protocol` (Seneca messages and errors, no I/O) and `commands` (arguments,
//! semantics) → `store` (the Store trait, Redis and embedded backends).

pub mod admin;
pub mod app;
pub mod budget;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod connection;
pub mod gauges;
pub mod instrumented;
pub mod lifecycle;
pub mod lines;
pub mod metrics;
pub mod model;
pub mod observe;
pub mod protocol;
pub mod server;
pub mod service;
pub mod store;
pub mod sweeper;
pub mod telemetry;
#[cfg(test)]
mod testing;
