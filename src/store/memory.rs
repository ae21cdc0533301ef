//! The embedded in-process store: everything in one process behind one lock, with the
//! same semantics as the Redis store. For a single replica (trying it out, development).

use std::collections::{BTreeSet, HashMap};
use std::iter::Peekable;
use std::ops::Bound;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{
    CapPolicy, Closed, Counts, ListQuery, OpenRequest, Opened, Page, SessionCap, Store, StoreError,
    StoreResult, Swept,
};
use crate::lifecycle::{self, At, CloseReason, Closes};
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

    /// Applies `f` to a live session, re-indexing it; errors when it is closed or
    /// has expired by `at`.
    fn touch_active(
        &mut self,
        id: &str,
        at: &At,
        f: impl FnOnce(&mut Session),
    ) -> StoreResult<Option<Session>> {
        match self.sessions.get(id) {
            None => return Ok(None),
            Some(st) if !st.session.active || at.expired(&st.session).is_some() => {
                return Err(StoreError::SessionClosed)
            }
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

    /// Closes the active session `id` at `when`; `None` when unknown or not active.
    fn close_at(&mut self, id: &str, when: Millis) -> Option<Session> {
        if !self.sessions.get(id)?.session.active {
            return None;
        }
        let mut stored = self.remove(id)?;
        lifecycle::close(&mut stored.session, when);
        let out = stored.session.clone();
        self.insert(stored.session, stored.reuse_key);
        Some(out)
    }

    /// Closes an active session at `at`: now (logout), or the instant it expired.
    fn close(&mut self, id: &str, at: &At) -> Option<Closed> {
        let st = self.sessions.get(id)?;
        if !st.session.active {
            return Some(Closed {
                session: st.session.clone(),
                reason: None,
            });
        }
        let (when, reason) = at
            .expired(&st.session)
            .unwrap_or((at.now, CloseReason::Logout));
        let session = self.close_at(id, when)?;
        Some(Closed {
            session,
            reason: Some(reason),
        })
    }

    /// Closes, each at the instant it expired, up to `limit` sessions that have
    /// expired by `at`: idle ones (by request_time), then ones past the lifetime.
    fn expire(&mut self, at: &At, limit: usize) -> Swept {
        let mut swept = Swept::default();
        let idle_cut = at.idle_cutoff();
        let mut due: Vec<String> = self
            .expiry
            .iter()
            .take_while(|(t, _)| *t <= idle_cut)
            .take(limit)
            .map(|(_, id)| id.clone())
            .collect();
        let mut examined = due.len();
        self.close_expired(&due, at, &mut swept.closed);
        if let Some(life_cut) = at.lifetime_cutoff() {
            due = self
                .open_active
                .iter()
                .take_while(|(t, _)| *t <= life_cut)
                .take(limit - examined)
                .map(|(_, id)| id.clone())
                .collect();
            examined += due.len();
            self.close_expired(&due, at, &mut swept.closed);
        }
        swept.more = examined == limit;
        swept
    }

    fn close_expired(&mut self, ids: &[String], at: &At, closes: &mut Closes) {
        for id in ids {
            let Some(st) = self.sessions.get(id) else {
                continue;
            };
            if let Some((when, why)) = at.expired(&st.session) {
                if self.close_at(id, when).is_some() {
                    closes.add(why, 1);
                }
            }
        }
    }

    /// The user's live sessions by (request_time, id), least recently used first.
    fn live_sessions(&self, user_id: &str, at: &At) -> Vec<Entry> {
        let Some((active, _)) = self.by_user.get(user_id) else {
            return Vec::new();
        };
        let mut live: Vec<Entry> = active
            .iter()
            .filter_map(|(_, id)| self.sessions.get(id))
            .filter(|st| at.expired(&st.session).is_none())
            .map(|st| (st.session.request_time, st.session.id.clone()))
            .collect();
        live.sort();
        live
    }

    /// Makes room for one more session of `user_id` under `cap`: closes the least
    /// recently used live sessions (close_oldest) or refuses. Returns how many it closed.
    fn make_room(&mut self, user_id: &str, cap: SessionCap, at: &At) -> StoreResult<u64> {
        if cap.max == 0 {
            return Ok(0);
        }
        let live = self.live_sessions(user_id, at);
        let max = usize::try_from(cap.max).unwrap_or(usize::MAX);
        if live.len() < max {
            return Ok(0);
        }
        if cap.policy == CapPolicy::Refuse {
            return Err(StoreError::SessionLimit);
        }
        let over = live.len() - max + 1;
        for (_, id) in &live[..over] {
            self.close_at(id, at.now);
        }
        Ok(over as u64)
    }

    /// A page of the query, each row presented as of `at`.
    fn page(&self, q: &ListQuery, at: &At) -> Page {
        let matches = |s: &Session| {
            q.id.as_deref().is_none_or(|id| s.id == id)
                && q.user_id.as_deref().is_none_or(|u| s.user_id == u)
                && q.active.is_none_or(|a| s.active == a)
                && q.from.is_none_or(|f| s.open_time >= f)
                && q.to.is_none_or(|t| s.open_time < t)
        };
        let empty_page = || Page {
            data: Vec::new(),
            total: q.total.then_some(0),
            closed: Closes::default(),
        };
        // Pick the smallest index that covers the query, walk it newest first within
        // the time bounds, and filter what the index does not cover.
        let empty = BTreeSet::new();
        let (active_set, closed_set) = match q.user_id.as_deref() {
            Some(u) => match self.by_user.get(u) {
                Some((a, c)) => (a, c),
                None => (&empty, &empty),
            },
            None => (&self.open_active, &self.open_closed),
        };
        if let (Some(from), Some(to)) = (q.from, q.to) {
            if from >= to {
                // An empty window (and BTreeSet::range panics on inverted bounds).
                return empty_page();
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
            let Some(st) = self.sessions.get(id) else {
                continue;
            };
            if !matches(&st.session) {
                continue;
            }
            if total >= q.skip && (data.len() as u64) < q.take {
                data.push(at.present(st.session.clone()));
            }
            total += 1;
            if !q.total && data.len() as u64 >= q.take {
                break;
            }
        }
        Page {
            data,
            total: q.total.then_some(total),
            closed: Closes::default(),
        }
    }
}

impl Store for MemoryStore {
    async fn get(&self, id: &str) -> StoreResult<Option<Session>> {
        if bucket_of_session(id).is_none() {
            return Ok(None);
        }
        Ok(self.read().sessions.get(id).map(|s| s.session.clone()))
    }

    async fn list(&self, q: &ListQuery, at: At) -> StoreResult<Page> {
        if q.active.is_none() {
            return Ok(self.read().page(q, &at));
        }
        // The active filter reads the indexes: make what has expired by `at` closed
        // in them first, under the same lock as the listing.
        let mut inner = self.write();
        let closed = inner.expire(&at, usize::MAX).closed;
        let mut page = inner.page(q, &at);
        page.closed = closed;
        Ok(page)
    }

    async fn open(&self, req: OpenRequest) -> StoreResult<Opened> {
        let key = reuse_key(&req.user_id, req.address.as_deref(), req.client.as_deref());
        let at = req.at;
        let mut inner = self.write();
        if req.reuse {
            if let Some(id) = inner.reuse.get(&key).cloned() {
                if let Ok(Some(session)) = inner.touch_active(&id, &at, |s| s.request_time = at.now)
                {
                    return Ok(Opened {
                        session,
                        reused: true,
                        evicted: 0,
                    });
                }
            }
        }
        let evicted = inner.make_room(&req.user_id, req.cap, &at)?;
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
            open_time: at.now,
            request_time: at.now,
            close_time: None,
            address: req.address,
            client: req.client,
            user: req.user,
            data: req.data,
        };
        // Takes the reuse slot even from an expired session still holding it.
        inner.reuse.insert(key.clone(), id);
        inner.insert(session.clone(), key);
        Ok(Opened {
            session,
            reused: false,
            evicted,
        })
    }

    async fn store_data(
        &self,
        id: &str,
        data: Option<JsonText>,
        at: At,
    ) -> StoreResult<Option<Session>> {
        self.write().touch_active(id, &at, |s| {
            s.data = data;
            s.request_time = at.now;
        })
    }

    async fn update_user(
        &self,
        id: &str,
        user: Option<JsonText>,
        at: At,
    ) -> StoreResult<Option<Session>> {
        self.write().touch_active(id, &at, |s| {
            s.user = user;
            s.request_time = at.now;
        })
    }

    async fn close(&self, id: &str, at: At) -> StoreResult<Option<Closed>> {
        Ok(self.write().close(id, &at))
    }

    async fn close_user(&self, user_id: &str, except: Option<&str>, at: At) -> StoreResult<Closes> {
        let mut inner = self.write();
        let ids: Vec<String> = match inner.by_user.get(user_id) {
            Some((active, _)) => active.iter().map(|(_, id)| id.clone()).collect(),
            None => return Ok(Closes::default()),
        };
        let mut closes = Closes::default();
        for id in ids {
            let Some(st) = inner.sessions.get(&id) else {
                continue;
            };
            let (when, why) = match at.expired(&st.session) {
                Some(expired) => expired,
                None if except == Some(id.as_str()) => continue,
                None => (at.now, CloseReason::Revoked),
            };
            if inner.close_at(&id, when).is_some() {
                closes.add(why, 1);
            }
        }
        Ok(closes)
    }

    async fn delete(&self, id: &str) -> StoreResult<Option<Session>> {
        Ok(self.write().remove(id).map(|s| s.session))
    }

    fn buckets(&self) -> u16 {
        1
    }

    async fn expire_bucket(&self, _bucket: u16, at: At, limit: usize) -> StoreResult<Swept> {
        Ok(self.write().expire(&at, limit))
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
