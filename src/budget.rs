//! The memory budget of requests in progress: what a request may cost from the moment
//! its line is parsed until its reply has been written to the socket, reserved before
//! the request runs, from its connection's budget and from the process-wide one.
//! Reading from a connection pauses while its reservation cannot be had, so a client
//! that never reads its replies, or sends huge requests, is slowed down instead of
//! growing the process; and the process-wide budget bounds the total whatever the
//! number of connections.
//!
//! A request is charged the worst case it can reach, known from its line before it
//! runs: its parsed JSON (up to [`PARSE_FACTOR`] times the line), and its reply (the
//! envelope echoes parts of the line, plus the sessions the command can return, each
//! at most [`session_bytes`]). Once the reply is built, the reservation shrinks to the
//! reply's real size until it is written.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::commands::Limits;

/// Bytes a parsed JSON value can take in memory per byte of its text: measured on
/// lines built to be expensive (arrays of tiny values or objects: about 36 to 55).
pub const PARSE_FACTOR: usize = 56;

/// A reply's envelope and error object beyond what it echoes from the request.
pub const REPLY_SLACK: usize = 4096;

/// Budget unit: permits count KiB, so budgets beyond 4 GiB fit the semaphore.
const UNIT: usize = 1024;

fn units(bytes: usize) -> usize {
    bytes.div_ceil(UNIT).max(1)
}

/// The largest a session can be in a reply: `data` and `user` at their limit, the
/// five string fields at theirs with every character escaped (`\u0000` is six
/// bytes), and the keys, dates and flags.
pub fn session_bytes(limits: &Limits) -> usize {
    2 * limits.max_data_bytes + 5 * 6 * limits.max_field_bytes + 512
}

/// The worst-case memory of a request whose line is `line_len` bytes and whose reply
/// can hold up to `sessions` sessions.
pub fn request_cost(line_len: usize, sessions: usize, limits: &Limits) -> usize {
    PARSE_FACTOR * line_len + line_len + REPLY_SLACK + sessions * session_bytes(limits)
}

/// The process-wide budget, shared by every connection.
#[derive(Clone)]
pub struct Budget {
    sem: Arc<Semaphore>,
    cap: usize,
}

impl Budget {
    /// A budget of `bytes` (rounded up to whole KiB).
    pub fn new(bytes: usize) -> Self {
        let cap = units(bytes).min(Semaphore::MAX_PERMITS);
        Budget {
            sem: Arc::new(Semaphore::new(cap)),
            cap,
        }
    }

    /// A connection's share: `bytes` of its own, drawn from this budget too.
    pub fn connection(&self, bytes: usize) -> ConnBudget {
        let cap = units(bytes).min(Semaphore::MAX_PERMITS);
        ConnBudget {
            conn: Arc::new(Semaphore::new(cap)),
            conn_cap: cap,
            global: self.clone(),
        }
    }

    /// Bytes not reserved right now (for tests and metrics).
    pub fn available(&self) -> usize {
        self.sem.available_permits() * UNIT
    }
}

/// One connection's budget.
pub struct ConnBudget {
    conn: Arc<Semaphore>,
    conn_cap: usize,
    global: Budget,
}

impl ConnBudget {
    /// Units to take for `bytes`: a request dearer than a whole budget takes all of
    /// it (so it runs alone) rather than waiting forever.
    fn want(&self, bytes: usize) -> u32 {
        let n = units(bytes).min(self.conn_cap).min(self.global.cap);
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Reserves `bytes` if both budgets have room now.
    pub fn try_reserve(&self, bytes: usize) -> Option<Reservation> {
        let n = self.want(bytes);
        let conn = self.conn.clone().try_acquire_many_owned(n).ok()?;
        let global = self.global.sem.clone().try_acquire_many_owned(n).ok()?;
        Some(Reservation { conn, global })
    }

    /// Reserves `bytes`, waiting for room: first in this connection's budget, then in
    /// the process-wide one (always in that order, so waits cannot form a cycle).
    /// None only if a semaphore was closed, which this module never does.
    pub async fn reserve(&self, bytes: usize) -> Option<Reservation> {
        let n = self.want(bytes);
        let conn = self.conn.clone().acquire_many_owned(n).await.ok()?;
        let global = self.global.sem.clone().acquire_many_owned(n).await.ok()?;
        Some(Reservation { conn, global })
    }
}

/// Memory reserved for one request; given back when dropped.
pub struct Reservation {
    conn: OwnedSemaphorePermit,
    global: OwnedSemaphorePermit,
}

impl Reservation {
    /// Keeps only what `bytes` need (never grows), giving the rest back now.
    pub fn shrink_to(&mut self, bytes: usize) {
        let keep = units(bytes);
        let have = self.conn.num_permits();
        if keep < have {
            drop(self.conn.split(have - keep));
            drop(self.global.split(have - keep));
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.conn.num_permits() * UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_data_bytes: 64 * 1024,
            max_field_bytes: 1024,
            max_take: 100,
        }
    }

    #[test]
    fn cost_covers_parse_and_reply() {
        let l = limits();
        assert_eq!(session_bytes(&l), 131_072 + 30_720 + 512);
        let one = request_cost(400, 1, &l);
        assert_eq!(one, 57 * 400 + REPLY_SLACK + session_bytes(&l));
        assert!(request_cost(400, 100, &l) > 100 * session_bytes(&l));
    }

    #[tokio::test]
    async fn connection_and_global_budgets_both_bind() {
        let global = Budget::new(64 * 1024);
        let a = global.connection(32 * 1024);
        let b = global.connection(32 * 1024);
        let r1 = a.try_reserve(30 * 1024).unwrap();
        assert!(a.try_reserve(4 * 1024).is_none(), "connection budget binds");
        let r2 = b.try_reserve(30 * 1024).unwrap();
        let c = global.connection(32 * 1024);
        assert!(c.try_reserve(8 * 1024).is_none(), "global budget binds");
        drop(r1);
        assert!(c.try_reserve(8 * 1024).is_some());
        drop(r2);
        assert_eq!(global.available(), 64 * 1024);
    }

    #[tokio::test]
    async fn shrinking_gives_back_the_rest() {
        let global = Budget::new(100 * 1024);
        let c = global.connection(100 * 1024);
        let mut r = c.reserve(80 * 1024).await.unwrap();
        assert_eq!(global.available(), 20 * 1024);
        r.shrink_to(1500);
        assert_eq!(r.bytes(), 2 * 1024);
        assert_eq!(global.available(), 98 * 1024);
        r.shrink_to(1_000_000);
        assert_eq!(r.bytes(), 2 * 1024, "never grows");
        drop(r);
        assert_eq!(global.available(), 100 * 1024);
    }

    #[tokio::test]
    async fn oversized_requests_take_the_whole_budget_and_still_run() {
        let global = Budget::new(64 * 1024);
        let c = global.connection(16 * 1024);
        let r = c.reserve(10 << 20).await.unwrap();
        assert_eq!(r.bytes(), 16 * 1024);
        assert!(c.try_reserve(1).is_none());
    }
}
