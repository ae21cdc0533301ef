//! sessions: a Seneca TCP sessions service backed by Redis, or by an embedded store.
//!
//! Layers point one way: `server` (accept, limits) → `connection` (bytes ↔ lines) →
//! `protocol` (Seneca messages, no I/O) → `commands` (arguments, semantics) → `store`.

pub mod admin;
pub mod gauges;
pub mod instrumented;
pub mod metrics;
pub mod model;
pub mod store;
pub mod sweeper;
pub mod telemetry;
#[cfg(test)]
mod testing;
