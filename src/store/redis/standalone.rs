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

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Cmd, ConnectionAddr, Pipeline, RedisFuture, Value};

use super::pipe::{PipeConn, Target};
use crate::store::{StoreError, StoreResult};

/// Reconnect backoff: first retry after up to this long...
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(20);
/// ...growing to at most this, so a Redis that comes back is used again quickly.
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(500);
/// Attempts per reconnect round; the next request starts a new round.
const RECONNECT_ATTEMPTS: usize = 8;

/// One connection of the pool.
#[derive(Clone)]
pub(crate) enum Conn {
    Pipe(PipeConn),
    Manager(ConnectionManager),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Pipe(c) => c.req_packed_command(cmd),
            Conn::Manager(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Pipe(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Manager(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Pipe(c) => c.get_db(),
            Conn::Manager(c) => c.get_db(),
        }
    }
}

/// How new connections are made.
enum Maker {
    Pipe(Target),
    Manager(Box<(Client, ConnectionManagerConfig)>),
}

impl Maker {
    fn make(&self) -> StoreResult<Conn> {
        match self {
            Maker::Pipe(t) => Ok(Conn::Pipe(PipeConn::new(t.clone()))),
            Maker::Manager(m) => {
                let (client, config) = &**m;
                ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
                    .map(Conn::Manager)
                    .map_err(|e| StoreError::Internal(format!("Redis connection setup: {e}")))
            }
        }
    }
}

pub(crate) struct Standalone {
    maker: Maker,
    conns: RwLock<Box<[Conn]>>,
    next: AtomicUsize,
}

impl Standalone {
    pub fn new(client: Client, connections: usize, timeout: Duration) -> StoreResult<Self> {
        let info = client.get_connection_info();
        let maker = match info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                let settings = info.redis_settings();
                Maker::Pipe(Target {
                    host: host.clone(),
                    port: *port,
                    username: settings.username().map(str::to_owned),
                    password: settings.password().map(str::to_owned),
                    db: settings.db(),
                    connect_timeout: timeout,
                })
            }
            _ => {
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
    pub fn pick(&self) -> (usize, Conn) {
        let conns = self.conns.read().unwrap_or_else(|p| p.into_inner());
        let i = self.next.fetch_add(1, Ordering::Relaxed) % conns.len();
        (i, conns[i].clone())
    }

    /// Puts a new connection in slot `i` (the old one closes when its last in-flight
    /// request is done). Returns the new connection.
    pub fn replace(&self, i: usize) -> Option<Conn> {
        let fresh = self.maker.make().ok()?;
        let mut conns = self.conns.write().unwrap_or_else(|p| p.into_inner());
        let slot = conns.get_mut(i)?;
        *slot = fresh.clone();
        Some(fresh)
    }
}
