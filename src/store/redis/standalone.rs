//! One Redis at one address: a few of the store's own connections (`pipe.rs`) used
//! round-robin, created lazily (building the store never waits for Redis) and
//! reconnecting by themselves after a drop.
//!
//! The address may be a name that a managed service points at another node on
//! failover. A connection that stays open to the old primary, now a replica, would
//! answer every write with READONLY forever; so a READONLY reply replaces that
//! connection with a fresh one, which resolves the name again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::RwLock;

use super::pipe::{PipeConn, Target};

pub(crate) struct Standalone {
    target: Target,
    conns: RwLock<Box<[PipeConn]>>,
    next: AtomicUsize,
}

impl Standalone {
    /// `connections` connections to `target` (at least one). Must be called inside a
    /// Tokio runtime.
    pub fn new(target: Target, connections: usize) -> Self {
        let conns: Vec<PipeConn> = (0..connections.max(1))
            .map(|_| PipeConn::new(target.clone()))
            .collect();
        Standalone {
            target,
            conns: RwLock::new(conns.into_boxed_slice()),
            next: AtomicUsize::new(0),
        }
    }

    /// The next connection, and its slot for [`Standalone::replace`].
    pub fn pick(&self) -> (usize, PipeConn) {
        let conns = self.conns.read().unwrap_or_else(|p| p.into_inner());
        let i = self.next.fetch_add(1, Ordering::Relaxed) % conns.len();
        (i, conns[i].clone())
    }

    /// Puts a new connection in slot `i` (the old one closes when its last in-flight
    /// request is done). Returns the new connection.
    pub fn replace(&self, i: usize) -> Option<PipeConn> {
        let fresh = PipeConn::new(self.target.clone());
        let mut conns = self.conns.write().unwrap_or_else(|p| p.into_inner());
        let slot = conns.get_mut(i)?;
        *slot = fresh.clone();
        Some(fresh)
    }
}
