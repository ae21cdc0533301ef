//! The storage boundary: the [`Store`] trait every backend implements with the same
//! semantics, the query and result types that cross it, and the store error enum.
//! Backends: [`memory`] (embedded, single replica) and [`redis`] (shared by replicas).

pub mod memory;
pub mod redis;

use std::future::Future;

use crate::model::{JsonText, Millis, Session};

/// What can go wrong below the command layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A write to a session that is no longer active.
    #[error("session is closed")]
    SessionClosed,
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
    pub now: Millis,
}

/// The result of open_session: the session and whether it was an existing one.
#[derive(Debug, Clone)]
pub struct Opened {
    pub session: Session,
    pub reused: bool,
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
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub data: Vec<Session>,
    pub total: Option<u64>,
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
pub trait Store: Send + Sync + 'static {
    /// The session with this id, or `None` (unknown or malformed id).
    fn get(&self, id: &str) -> impl Future<Output = StoreResult<Option<Session>>> + Send;

    /// Sessions matching `q`, newest first.
    fn list(&self, q: &ListQuery) -> impl Future<Output = StoreResult<Page>> + Send;

    /// Opens a session, or reuses the active one of the same user, address and client
    /// (when `req.reuse`), setting its request_time to `req.now`.
    fn open(&self, req: OpenRequest) -> impl Future<Output = StoreResult<Opened>> + Send;

    /// Replaces `data`; `None` for an unknown id; [`StoreError::SessionClosed`] when closed.
    fn store_data(
        &self,
        id: &str,
        data: Option<JsonText>,
        now: Millis,
    ) -> impl Future<Output = StoreResult<Option<Session>>> + Send;

    /// Replaces `user`; `None` for an unknown id; [`StoreError::SessionClosed`] when closed.
    fn update_user(
        &self,
        id: &str,
        user: Option<JsonText>,
        now: Millis,
    ) -> impl Future<Output = StoreResult<Option<Session>>> + Send;

    /// Closes an active session (active=false, close_time=request_time=now, user and
    /// data cleared). A closed session is returned unchanged; `None` when unknown.
    fn close(
        &self,
        id: &str,
        now: Millis,
    ) -> impl Future<Output = StoreResult<Option<Session>>> + Send;

    /// Removes the session and every index entry for it; returns what was deleted.
    fn delete(&self, id: &str) -> impl Future<Output = StoreResult<Option<Session>>> + Send;

    /// Number of buckets the sweeps walk (the unit of bounded sweep work).
    fn buckets(&self) -> u16;

    /// Closes, as close does, up to `limit` active sessions of `bucket` whose
    /// request_time is before `cutoff`. Returns how many this call closed; concurrent
    /// callers never close the same session twice.
    fn expire_bucket(
        &self,
        bucket: u16,
        cutoff: Millis,
        now: Millis,
        limit: usize,
    ) -> impl Future<Output = StoreResult<u64>> + Send;

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
    async fn list(&self, q: &ListQuery) -> StoreResult<Page> {
        each_store!(self, s => s.list(q).await)
    }
    async fn open(&self, req: OpenRequest) -> StoreResult<Opened> {
        each_store!(self, s => s.open(req).await)
    }
    async fn store_data(
        &self,
        id: &str,
        data: Option<JsonText>,
        now: Millis,
    ) -> StoreResult<Option<Session>> {
        each_store!(self, s => s.store_data(id, data, now).await)
    }
    async fn update_user(
        &self,
        id: &str,
        user: Option<JsonText>,
        now: Millis,
    ) -> StoreResult<Option<Session>> {
        each_store!(self, s => s.update_user(id, user, now).await)
    }
    async fn close(&self, id: &str, now: Millis) -> StoreResult<Option<Session>> {
        each_store!(self, s => s.close(id, now).await)
    }
    async fn delete(&self, id: &str) -> StoreResult<Option<Session>> {
        each_store!(self, s => s.delete(id).await)
    }
    fn buckets(&self) -> u16 {
        each_store!(self, s => s.buckets())
    }
    async fn expire_bucket(
        &self,
        bucket: u16,
        cutoff: Millis,
        now: Millis,
        limit: usize,
    ) -> StoreResult<u64> {
        each_store!(self, s => s.expire_bucket(bucket, cutoff, now, limit).await)
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
