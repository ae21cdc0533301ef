//! The storage boundary: the [`Store`] trait every backend implements with the same
//! semantics, the query and result types that cross it, and the store error enum.
//! Backends: [`memory`] (embedded, single replica) and [`redis`] (shared by replicas).

pub mod memory;
pub mod redis;

use std::future::Future;

use crate::lifecycle::{At, CloseReason, Closes};
use crate::model::{JsonText, Millis, Session};

/// What can go wrong below the command layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A write to a session that is no longer active (closed, or past its lifetime).
    #[error("session is closed")]
    SessionClosed,
    /// open_session refused: the user has as many active sessions as the cap allows
    /// (policy `refuse`).
    #[error("the user has reached the per-user session limit")]
    SessionLimit,
    /// The backing store did not answer (down, refused, timed out, read-only replica).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or corrupt data. The text is for logs only.
    #[error("internal store error: {0}")]
    Internal(String),
}

/// Arguments of open_session once validated.
#[derive(Debug, Clone)]
pub struct OpenRequest {
    pub user_id: String,
    pub user_name: Option<String>,
    pub address: Option<String>,
    pub client: Option<String>,
    pub user: Option<JsonText>,
    pub data: Option<JsonText>,
    /// Reuse an active session of the same (user, address, client) when one exists.
    pub reuse: bool,
    /// When the open happens: the new session's open_time, and what has expired
    /// (an expired session is never reused, nor counted against the cap).
    pub at: At,
    /// The per-user cap on active sessions.
    pub cap: SessionCap,
}

/// The most active sessions one user may have, and what opening one more does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionCap {
    /// 0: no cap.
    pub max: u32,
    pub policy: CapPolicy,
}

/// What open_session does when a new session would exceed the per-user cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CapPolicy {
    /// Close the user's least recently used active sessions (reason `evicted`).
    #[default]
    CloseOldest,
    /// Refuse the open ([`StoreError::SessionLimit`]).
    Refuse,
}

impl CapPolicy {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CapPolicy::CloseOldest => "close_oldest",
            CapPolicy::Refuse => "refuse",
        }
    }
}

/// The result of open_session: the session, whether it was an existing one, and how
/// many of the user's sessions it closed to stay within the cap.
#[derive(Debug, Clone)]
pub struct Opened {
    pub session: Session,
    pub reused: bool,
    pub evicted: u64,
}

/// The result of close: the session as it is now, and the close this call made
/// (`None` when it was closed already).
#[derive(Debug, Clone)]
pub struct Closed {
    pub session: Session,
    pub reason: Option<CloseReason>,
}

/// What one expiry batch did: the sessions it closed, by reason, and whether it
/// stopped at its limit (more may be due).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub closed: Closes,
    pub more: bool,
}

/// A get_sessions query once validated. Time bounds apply to open_time:
/// `from` inclusive, `to` exclusive. Results are newest open_time first, ties by id
/// descending.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub id: Option<String>,
    pub user_id: Option<String>,
    pub active: Option<bool>,
    pub from: Option<Millis>,
    pub to: Option<Millis>,
    pub skip: u64,
    pub take: u64,
    pub total: bool,
}

/// One page of sessions; `total` is the count of every match when asked for.
/// `closed` is what the listing closed for good first (expired sessions, so that the
/// `active` filter, `total` and paging agree with exact expiry); not sent.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub data: Vec<Session>,
    pub total: Option<u64>,
    pub closed: Closes,
}

/// Counts for the gauges, across every replica's view of the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub active: u64,
    pub total: u64,
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A session store. Every mutating method is atomic: it either happens whole or not
/// at all, and never recreates a session that was deleted or swept meanwhile.
///
/// Expiry is judged at the [`At`] a call is given: a session past its lifetime then
/// is never written to, reused or counted as active, whether or not a sweep has
/// closed it yet. `get` and `delete` answer the stored session as it is; callers
/// present it with [`At::present`].
pub trait Store: Send + Sync + 'static {
    /// The session with this id as stored, or `None` (unknown or malformed id).
    fn get(&self, id: &str) -> impl Future<Output = StoreResult<Option<Session>>> + Send;

    /// Sessions matching `q` at `at`, newest first, each presented as of `at`. With
    /// `q.active` given, sessions of the listed buckets that have expired by `at` are
    /// closed for good first, so the filter, `total` and paging agree.
    fn list(&self, q: &ListQuery, at: At) -> impl Future<Output = StoreResult<Page>> + Send;

    /// Opens a session, or reuses the live one of the same user, address and client
    /// (when `req.reuse`), setting its request_time to `req.at.now`. A new session
    /// that would take the user past `req.cap` closes the least recently used ones
    /// first, or is refused with [`StoreError::SessionLimit`].
    fn open(&self, req: OpenRequest) -> impl Future<Output = StoreResult<Opened>> + Send;

    /// Replaces `data`; `None` for an unknown id; [`StoreError::SessionClosed`] when
    /// closed or expired.
    fn store_data(
        &self,
        id: &str,
        data: Option<JsonText>,
        at: At,
    ) -> impl Future<Output = StoreResult<Option<Session>>> + Send;

    /// Replaces `user`; `None` for an unknown id; [`StoreError::SessionClosed`] when
    /// closed or expired.
    fn update_user(
        &self,
        id: &str,
        user: Option<JsonText>,
        at: At,
    ) -> impl Future<Output = StoreResult<Option<Session>>> + Send;

    /// Closes an active session (active=false, close_time=request_time=now, user and
    /// data cleared; an expired one at the instant it expired instead). A closed
    /// session is returned unchanged; `None` when unknown.
    fn close(&self, id: &str, at: At) -> impl Future<Output = StoreResult<Option<Closed>>> + Send;

    /// Closes, in one atomic step, every active session of `user_id` but `except`:
    /// live ones as close does (reason `revoked`), expired ones at the instant they
    /// expired (reason `idle` or `absolute`, `except` included).
    fn close_user(
        &self,
        user_id: &str,
        except: Option<&str>,
        at: At,
    ) -> impl Future<Output = StoreResult<Closes>> + Send;

    /// Removes the session and every index entry for it; returns what was deleted.
    fn delete(&self, id: &str) -> impl Future<Output = StoreResult<Option<Session>>> + Send;

    /// Number of buckets the sweeps walk (the unit of bounded sweep work).
    fn buckets(&self) -> u16;

    /// Closes, each at the instant it expired, up to `limit` active sessions of
    /// `bucket` that have expired by `at` (idle past the timeout or older than the
    /// absolute lifetime). Concurrent callers never close the same session twice.
    fn expire_bucket(
        &self,
        bucket: u16,
        at: At,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Swept>> + Send;

    /// Deletes up to `limit` closed sessions of `bucket` whose close_time is before
    /// `cutoff`, with their index entries. Returns how many this call deleted.
    fn purge_bucket(
        &self,
        bucket: u16,
        cutoff: Millis,
        limit: usize,
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Active and total session counts.
    fn counts(&self) -> impl Future<Output = StoreResult<Counts>> + Send;

    /// Cheap liveness check of the backing store.
    fn ping(&self) -> impl Future<Output = StoreResult<()>> + Send;
}

/// The store the service runs on, chosen at start from the configuration.
pub enum AnyStore {
    Memory(memory::MemoryStore),
    /// Redis, with every call timed into the store metrics.
    Redis(crate::instrumented::Instrumented<redis::RedisStore>),
}

macro_rules! each_store {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnyStore::Memory($s) => $e,
            AnyStore::Redis($s) => $e,
        }
    };
}

impl Store for AnyStore {
    async fn get(&self, id: &str) -> StoreResult<Option<Session>> {
        each_store!(self, s => s.get(id).await)
    }
    async fn list(&self, q: &ListQuery, at: At) -> StoreResult<Page> {
        each_store!(self, s => s.list(q, at).await)
    }
    async fn open(&self, req: OpenRequest) -> StoreResult<Opened> {
        each_store!(self, s => s.open(req).await)
    }
    async fn store_data(
        &self,
        id: &str,
        data: Option<JsonText>,
        at: At,
    ) -> StoreResult<Option<Session>> {
        each_store!(self, s => s.store_data(id, data, at).await)
    }
    async fn update_user(
        &self,
        id: &str,
        user: Option<JsonText>,
        at: At,
    ) -> StoreResult<Option<Session>> {
        each_store!(self, s => s.update_user(id, user, at).await)
    }
    async fn close(&self, id: &str, at: At) -> StoreResult<Option<Closed>> {
        each_store!(self, s => s.close(id, at).await)
    }
    async fn close_user(&self, user_id: &str, except: Option<&str>, at: At) -> StoreResult<Closes> {
        each_store!(self, s => s.close_user(user_id, except, at).await)
    }
    async fn delete(&self, id: &str) -> StoreResult<Option<Session>> {
        each_store!(self, s => s.delete(id).await)
    }
    fn buckets(&self) -> u16 {
        each_store!(self, s => s.buckets())
    }
    async fn expire_bucket(&self, bucket: u16, at: At, limit: usize) -> StoreResult<Swept> {
        each_store!(self, s => s.expire_bucket(bucket, at, limit).await)
    }
    async fn purge_bucket(&self, bucket: u16, cutoff: Millis, limit: usize) -> StoreResult<u64> {
        each_store!(self, s => s.purge_bucket(bucket, cutoff, limit).await)
    }
    async fn counts(&self) -> StoreResult<Counts> {
        each_store!(self, s => s.counts().await)
    }
    async fn ping(&self) -> StoreResult<()> {
        each_store!(self, s => s.ping().await)
    }
}
