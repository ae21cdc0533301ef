//! One Redis at one address: a few connections used round-robin, created lazily
//! (building the store never waits for Redis) and reconnecting by themselves after a
//! drop. Over plain TCP they are the store's own batching connections (`pipe.rs`);
//! over TLS or a Unix socket, the redis crate's `ConnectionManager`s.
//!
//! The address may be a name that a managed service points at another node on
//! failover. A connection that stays open to the old primary, now a replica, would
//! answer every write with READONLY forever; so a READONLY reply replaces that
//! connection with a fresh one, which resolves the name again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Client;

use super::node::{self, NodeConn};
use super::pipe::{PipeConn, Target};
use crate::store::{StoreError, StoreResult};

/// Reconnect backoff: first retry after up to this long...
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(20);
/// ...growing to at most this, so a Redis that comes back is used again quickly.
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(500);
/// Attempts per reconnect round; the next request starts a new round.
const RECONNECT_ATTEMPTS: usize = 8;

/// How new connections are made.
enum Maker {
    Pipe(Target),
    Manager(Box<(Client, ConnectionManagerConfig)>),
}

impl Maker {
    fn make(&self) -> StoreResult<NodeConn> {
        match self {
            Maker::Pipe(t) => Ok(NodeConn::Pipe(PipeConn::new(t.clone()))),
            Maker::Manager(m) => {
                let (client, config) = &**m;
                ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
                    .map(NodeConn::Manager)
                    .map_err(|e| StoreError::Internal(format!("Redis connection setup: {e}")))
            }
        }
    }
}

pub(crate) struct Standalone {
    maker: Maker,
    conns: RwLock<Box<[NodeConn]>>,
    next: AtomicUsize,
}

impl Standalone {
    pub fn new(client: Client, connections: usize, timeout: Duration) -> StoreResult<Self> {
        let maker = match node::plain_tcp(client.get_connection_info(), timeout, true) {
            Some(target) => Maker::Pipe(target),
            None => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    // Requests are bounded by their own deadline in `conn.rs`.
                    .set_response_timeout(None)
                    .set_min_delay(RECONNECT_MIN_DELAY)
                    .set_max_delay(RECONNECT_MAX_DELAY)
                    .set_number_of_retries(RECONNECT_ATTEMPTS);
                Maker::Manager(Box::new((client, config)))
            }
        };
        let conns = (0..connections.max(1))
            .map(|_| maker.make())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Standalone {
            maker,
            conns: RwLock::new(conns.into_boxed_slice()),
            next: AtomicUsize::new(0),
        })
    }

    /// The next connection, and its slot for [`Standalone::replace`].
    pub fn pick(&self) -> (usize, NodeConn) {
        let conns = self.conns.read().unwrap_or_else(|p| p.into_inner());
        let i = self.next.fetch_add(1, Ordering::Relaxed) % conns.len();
        (i, conns[i].clone())
    }

    /// Puts a new connection in slot `i` (the old one closes when its last in-flight
    /// request is done). Returns the new connection.
    pub fn replace(&self, i: usize) -> Option<NodeConn> {
        let fresh = self.maker.make().ok()?;
        let mut conns = self.conns.write().unwrap_or_else(|p| p.into_inner());
        let slot = conns.get_mut(i)?;
        *slot = fresh.clone();
        Some(fresh)
    }
}
