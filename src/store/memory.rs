//! The embedded in-process store: everything in one process behind one lock, with the
//! same semantics as the Redis store. For a single replica (trying it out, development).

use std::collections::{BTreeSet, HashMap};
use std::iter::Peekable;
use std::ops::Bound;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{Counts, ListQuery, OpenRequest, Opened, Page, Store, StoreError, StoreResult};
use crate::model::{
    bucket_of_session, bucket_of_user, new_session_id, reuse_key, JsonText, Millis, Session,
};

/// An index entry ordered by time then id, so reverse iteration is "newest first,
/// ties by id descending" exactly like a Redis sorted set read with REV.
type Entry = (Millis, String);

#[derive(Default)]
struct Inner {
    sessions: HashMap<String, Stored>,
    /// Active sessions by open_time.
    open_active: BTreeSet<Entry>,
    /// Closed sessions by open_time.
    open_closed: BTreeSet<Entry>,
    /// Per user: (active, closed) sessions by open_time.
    by_user: HashMap<String, (BTreeSet<Entry>, BTreeSet<Entry>)>,
    /// Active sessions by request_time, for the expiry sweep.
    expiry: BTreeSet<Entry>,
    /// Closed sessions by close_time, for retention.
    retention: BTreeSet<Entry>,
    /// Reuse key -> id of the active session open_session hands out again.
    reuse: HashMap<String, String>,
}

struct Stored {
    session: Session,
    reuse_key: String,
}

/// The embedded store. Cheap to share behind an `Arc`.
#[derive(Default)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    // A panic while holding the lock cannot leave half-applied state behind (every
    // mutation below completes without panicking), so a poisoned lock is still usable.
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    fn user_sets(&mut self, user_id: &str) -> &mut (BTreeSet<Entry>, BTreeSet<Entry>) {
        self.by_user.entry(user_id.to_owned()).or_default()
    }

    fn insert(&mut self, session: Session, reuse_key: String) {
        let entry = (session.open_time, session.id.clone());
        let sets = self.user_sets(&session.user_id);
        if session.active {
            sets.0.insert(entry.clone());
            self.open_active.insert(entry);
            self.expiry
                .insert((session.request_time, session.id.clone()));
        } else {
            sets.1.insert(entry.clone());
            self.open_closed.insert(entry);
            self.retention.insert((
                session.close_time.unwrap_or(session.request_time),
                session.id.clone(),
            ));
        }
        self.sessions
            .insert(session.id.clone(), Stored { session, reuse_key });
    }

    /// Takes a session out of the map and every index.
    fn remove(&mut self, id: &str) -> Option<Stored> {
        let stored = self.sessions.remove(id)?;
        let s = &stored.session;
        let entry = (s.open_time, s.id.clone());
        self.open_active.remove(&entry);
        self.open_closed.remove(&entry);
        self.expiry.remove(&(s.request_time, s.id.clone()));
        if let Some(ct) = s.close_time {
            self.retention.remove(&(ct, s.id.clone()));
        }
        if let Some(sets) = self.by_user.get_mut(&s.user_id) {
            sets.0.remove(&entry);
            sets.1.remove(&entry);
            if sets.0.is_empty() && sets.1.is_empty() {
                self.by_user.remove(&s.user_id);
            }
        }
        if self.reuse.get(&stored.reuse_key).map(String::as_str) == Some(id) {
            self.reuse.remove(&stored.reuse_key);
        }
        Some(stored)
    }

    /// Applies `f` to an active session, re-indexing it; errors when it is closed.
    fn touch_active(
        &mut self,
        id: &str,
        f: impl FnOnce(&mut Session),
    ) -> StoreResult<Option<Session>> {
        match self.sessions.get(id) {
            None => return Ok(None),
            Some(st) if !st.session.active => return Err(StoreError::SessionClosed),
            Some(_) => {}
        }
        let Some(mut stored) = self.remove(id) else {
            return Ok(None);
        };
        f(&mut stored.session);
        let out = stored.session.clone();
        let key = stored.reuse_key.clone();
        if out.active {
            self.reuse
                .entry(key.clone())
                .or_insert_with(|| out.id.clone());
        }
        self.insert(stored.session, key);
        Ok(Some(out))
    }

    fn close(&mut self, id: &str, now: Millis) -> Option<Session> {
        let st = self.sessions.get(id)?;
        if !st.session.active {
            return Some(st.session.clone());
        }
        let mut stored = self.remove(id)?;
        close_fields(&mut stored.session, now);
        let out = stored.session.clone();
        self.insert(stored.session, stored.reuse_key);
        Some(out)
    }
}

fn close_fields(s: &mut Session, now: Millis) {
    s.active = false;
    s.close_time = Some(now);
    s.request_time = now;
    s.user = None;
    s.data = None;
}

impl Store for MemoryStore {
    async fn get(&self, id: &str) -> StoreResult<Option<Session>> {
        if bucket_of_session(id).is_none() {
            return Ok(None);
        }
        Ok(self.read().sessions.get(id).map(|s| s.session.clone()))
    }

    async fn list(&self, q: &ListQuery) -> StoreResult<Page> {
        let inner = self.read();
        let matches = |s: &Session| {
            q.id.as_deref().is_none_or(|id| s.id == id)
                && q.user_id.as_deref().is_none_or(|u| s.user_id == u)
                && q.active.is_none_or(|a| s.active == a)
                && q.from.is_none_or(|f| s.open_time >= f)
                && q.to.is_none_or(|t| s.open_time < t)
        };
        // Pick the smallest index that covers the query, walk it newest first within
        // the time bounds, and filter what the index does not cover.
        let empty = BTreeSet::new();
        let (active_set, closed_set) = match q.user_id.as_deref() {
            Some(u) => match inner.by_user.get(u) {
                Some((a, c)) => (a, c),
                None => (&empty, &empty),
            },
            None => (&inner.open_active, &inner.open_closed),
        };
        if let (Some(from), Some(to)) = (q.from, q.to) {
            if from >= to {
                // An empty window (and BTreeSet::range panics on inverted bounds).
                return Ok(Page {
                    data: Vec::new(),
                    total: q.total.then_some(0),
                });
            }
        }
        let lo = Bound::Included((q.from.unwrap_or(Millis::MIN), String::new()));
        let hi =
            q.to.map_or(Bound::Unbounded, |t| Bound::Excluded((t, String::new())));
        let candidates = MergeDesc::new(
            window(active_set, q.active != Some(false), &lo, &hi),
            window(closed_set, q.active != Some(true), &lo, &hi),
        );
        let mut total = 0u64;
        let mut data = Vec::new();
        for (_, id) in candidates {
            let Some(st) = inner.sessions.get(id) else {
                continue;
            };
            if !matches(&st.session) {
                continue;
            }
            if total >= q.skip && (data.len() as u64) < q.take {
                data.push(st.session.clone());
            }
            total += 1;
            if !q.total && data.len() as u64 >= q.take {
                break;
            }
        }
        Ok(Page {
            data,
            total: q.total.then_some(total),
        })
    }

    async fn open(&self, req: OpenRequest) -> StoreResult<Opened> {
        let key = reuse_key(&req.user_id, req.address.as_deref(), req.client.as_deref());
        let mut inner = self.write();
        if req.reuse {
            if let Some(id) = inner.reuse.get(&key).cloned() {
                if let Ok(Some(session)) = inner.touch_active(&id, |s| s.request_time = req.now) {
                    return Ok(Opened {
                        session,
                        reused: true,
                    });
                }
            }
        }
        let bucket = bucket_of_user(&req.user_id);
        let mut id = new_session_id(bucket);
        while inner.sessions.contains_key(&id) {
            id = new_session_id(bucket);
        }
        let session = Session {
            id: id.clone(),
            user_id: req.user_id,
            user_name: req.user_name,
            active: true,
            open_time: req.now,
            request_time: req.now,
            close_time: None,
            address: req.address,
            client: req.client,
            user: req.user,
            data: req.data,
        };
        inner.reuse.insert(key.clone(), id);
        inner.insert(session.clone(), key);
        Ok(Opened {
            session,
            reused: false,
        })
    }

    async fn store_data(
        &self,
        id: &str,
        data: Option<JsonText>,
        now: Millis,
    ) -> StoreResult<Option<Session>> {
        self.write().touch_active(id, |s| {
            s.data = data;
            s.request_time = now;
        })
    }

    async fn update_user(
        &self,
        id: &str,
        user: Option<JsonText>,
        now: Millis,
    ) -> StoreResult<Option<Session>> {
        self.write().touch_active(id, |s| {
            s.user = user;
            s.request_time = now;
        })
    }

    async fn close(&self, id: &str, now: Millis) -> StoreResult<Option<Session>> {
        Ok(self.write().close(id, now))
    }

    async fn delete(&self, id: &str) -> StoreResult<Option<Session>> {
        Ok(self.write().remove(id).map(|s| s.session))
    }

    fn buckets(&self) -> u16 {
        1
    }

    async fn expire_bucket(
        &self,
        _bucket: u16,
        cutoff: Millis,
        now: Millis,
        limit: usize,
    ) -> StoreResult<u64> {
        let mut inner = self.write();
        let due: Vec<String> = inner
            .expiry
            .iter()
            .take_while(|(t, _)| *t < cutoff)
            .take(limit)
            .map(|(_, id)| id.clone())
            .collect();
        for id in &due {
            inner.close(id, now);
        }
        Ok(due.len() as u64)
    }

    async fn purge_bucket(&self, _bucket: u16, cutoff: Millis, limit: usize) -> StoreResult<u64> {
        let mut inner = self.write();
        let due: Vec<String> = inner
            .retention
            .iter()
            .take_while(|(t, _)| *t < cutoff)
            .take(limit)
            .map(|(_, id)| id.clone())
            .collect();
        for id in &due {
            inner.remove(id);
        }
        Ok(due.len() as u64)
    }

    async fn counts(&self) -> StoreResult<Counts> {
        let inner = self.read();
        Ok(Counts {
            active: inner.open_active.len() as u64,
            total: inner.sessions.len() as u64,
        })
    }

    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }
}

/// The entries of `set` within the bounds, newest first (nothing when not `wanted`).
fn window<'s>(
    set: &'s BTreeSet<Entry>,
    wanted: bool,
    lo: &Bound<Entry>,
    hi: &Bound<Entry>,
) -> impl Iterator<Item = &'s Entry> {
    wanted
        .then(|| set.range((lo.clone(), hi.clone())).rev())
        .into_iter()
        .flatten()
}

/// Merges two iterators that each yield entries in descending order into one
/// descending sequence.
struct MergeDesc<'a, A: Iterator<Item = &'a Entry>, B: Iterator<Item = &'a Entry>> {
    a: Peekable<A>,
    b: Peekable<B>,
}

impl<'a, A: Iterator<Item = &'a Entry>, B: Iterator<Item = &'a Entry>> MergeDesc<'a, A, B> {
    fn new(a: A, b: B) -> Self {
        MergeDesc {
            a: a.peekable(),
            b: b.peekable(),
        }
    }
}

impl<'a, A: Iterator<Item = &'a Entry>, B: Iterator<Item = &'a Entry>> Iterator
    for MergeDesc<'a, A, B>
{
    type Item = &'a Entry;

    fn next(&mut self) -> Option<&'a Entry> {
        match (self.a.peek(), self.b.peek()) {
            (Some(x), Some(y)) if x >= y => self.a.next(),
            (Some(_), Some(_)) => self.b.next(),
            (Some(_), None) => self.a.next(),
            (None, _) => self.b.next(),
        }
    }
}
