//! Test support (compiled for unit tests only): [`Faulty`], the embedded store with
//! switches that make it fail or stop answering, for the code that must react to a
//! store outage. Integration tests get real outages from stopping a redis-server.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::lifecycle::{At, Closes};
use crate::model::{JsonText, Millis, Session};
use crate::store::memory::MemoryStore;
use crate::store::{
    Closed, Counts, ListQuery, OpenRequest, Opened, Page, Store, StoreError, StoreResult, Swept,
};

/// A real [`MemoryStore`] behind two switches: `down` makes every call fail with
/// [`StoreError::Unavailable`], `hang` makes every call wait forever.
#[derive(Default)]
pub struct Faulty {
    pub inner: MemoryStore,
    pub down: AtomicBool,
    pub hang: AtomicBool,
}

impl Faulty {
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    pub fn set_hang(&self, hang: bool) {
        self.hang.store(hang, Ordering::SeqCst);
    }

    async fn gate(&self) -> StoreResult<()> {
        if self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("switched off by the test".into()));
        }
        Ok(())
    }
}

impl Store for Faulty {
    async fn get(&self, id: &str) -> StoreResult<Option<Session>> {
        self.gate().await?;
        self.inner.get(id).await
    }
    async fn list(&self, q: &ListQuery, at: At) -> StoreResult<Page> {
        self.gate().await?;
        self.inner.list(q, at).await
    }
    async fn open(&self, req: OpenRequest) -> StoreResult<Opened> {
        self.gate().await?;
        self.inner.open(req).await
    }
    async fn store_data(
        &self,
        id: &str,
        data: Option<JsonText>,
        at: At,
    ) -> StoreResult<Option<Session>> {
        self.gate().await?;
        self.inner.store_data(id, data, at).await
    }
    async fn update_user(
        &self,
        id: &str,
        user: Option<JsonText>,
        at: At,
    ) -> StoreResult<Option<Session>> {
        self.gate().await?;
        self.inner.update_user(id, user, at).await
    }
    async fn close(&self, id: &str, at: At) -> StoreResult<Option<Closed>> {
        self.gate().await?;
        self.inner.close(id, at).await
    }
    async fn close_user(&self, user_id: &str, except: Option<&str>, at: At) -> StoreResult<Closes> {
        self.gate().await?;
        self.inner.close_user(user_id, except, at).await
    }
    async fn delete(&self, id: &str) -> StoreResult<Option<Session>> {
        self.gate().await?;
        self.inner.delete(id).await
    }
    fn buckets(&self) -> u16 {
        self.inner.buckets()
    }
    async fn expire_bucket(&self, bucket: u16, at: At, limit: usize) -> StoreResult<Swept> {
        self.gate().await?;
        self.inner.expire_bucket(bucket, at, limit).await
    }
    async fn purge_bucket(&self, bucket: u16, cutoff: Millis, limit: usize) -> StoreResult<u64> {
        self.gate().await?;
        self.inner.purge_bucket(bucket, cutoff, limit).await
    }
    async fn counts(&self) -> StoreResult<Counts> {
        self.gate().await?;
        self.inner.counts().await
    }
    async fn ping(&self) -> StoreResult<()> {
        self.gate().await?;
        self.inner.ping().await
    }
}
