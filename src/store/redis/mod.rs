//! The Redis store: sessions as Redis hashes with sorted-set indexes, shared by every
//! replica. Same semantics as the embedded store ([`crate::store::memory`]).
//!
//! # Key layout
//!
//! `P` is the configured prefix (default `sessions`; [`check_prefix`] has the rule), `NN`
//! the bucket (0..64) as two lowercase hex digits. `{NN}` is the hash tag, so every key
//! of a bucket is in one cluster slot. A session's bucket is `bucket_of_user(user_id)`
//! and is also the first two hex digits of its id, so a command by id knows its slot.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:{NN}:s:<id>` | hash | the session: id, user_id, user_name, active (`1`/`0`), open_time, request_time, close_time (ms), address, client, user, data (JSON text), rk (reuse key) |
//! | `P:{NN}:ua:<user_id>` | zset | the user's active sessions, score open_time |
//! | `P:{NN}:uc:<user_id>` | zset | the user's closed sessions, score open_time |
//! | `P:{NN}:oa` / `P:{NN}:oc` | zset | the bucket's active / closed sessions by open_time |
//! | `P:{NN}:exp` | zset | active sessions by request_time (expiry sweep) |
//! | `P:{NN}:ret` | zset | closed sessions by close_time (retention) |
//! | `P:{NN}:reuse` | hash | reuse key -> id of the active session open_session reuses |
//!
//! A null value is an absent hash field; an empty string is stored as an empty string.
//! No Redis TTLs and no keyspace notifications: expiry and retention are the explicit,
//! batched [`Store::expire_bucket`] / [`Store::purge_bucket`] sweeps. Empty per-user
//! sets disappear by themselves (Redis deletes empty keys).
//!
//! # Writes
//!
//! One Lua script per mutating command (`lua/*.lua`, loaded by `scripts.rs`): open,
//! store_data, update_user, close, close_user, delete, and the expire and purge
//! batches. Each one touches only keys of one bucket. Keys known before the call (the
//! bucket's indexes, the session hash, the user's active set at open and close_user)
//! are passed as KEYS; keys a script can only learn from data (the user sets named
//! after the hash's user_id, the hashes of ids found in an index) are built inside the script from the bucket base
//! `P:{NN}:` passed as `ARGV[1]`. They carry the same hash tag, so they are in the slot
//! of the declared keys, which is what Redis Cluster requires; the scripts' `#!lua`
//! shebang makes Redis 7 enforce it. Every script checks the session exists before
//! changing it, so a write racing a delete or a sweep never recreates a hash. A
//! mutation is one EVALSHA; a NOSCRIPT reply (Redis restarted, failed over, flushed)
//! sends the script's text with EVAL instead, to the same node. A script is never
//! sent again after its connection broke (it may have run); should one run twice
//! anyway, open recognises its own earlier run, store_data, update_user, close and
//! the sweeps are idempotent, and a repeated delete answers null.
//!
//! Expiry is exact: every script that reads or changes a session gets the request's
//! `now`, the idle timeout and the absolute lifetime as arguments and applies the
//! rule of [`crate::lifecycle`] to the fields it reads anyway. A write to a session
//! that has expired fails as on a closed one and leaves it to the sweep; open never
//! reuses it nor counts it against the per-user cap; close and close_user close it
//! at the instant it expired. The expire batch closes each session at that instant,
//! not at the sweep's own time.
//!
//! # Reads
//!
//! get is one HGETALL (a malformed id is `None` without asking Redis); the caller
//! presents it as of its `now`. get_sessions is described in `list.rs`: ids by rank
//! from the indexes, rows by one pipelined HGETALL, index entries whose hash is gone
//! removed on the way (lazy repair); with the `active` filter, the expire batch runs
//! first on the buckets the query reads, at the query's `now`, so the active and
//! closed indexes agree with exact expiry. counts is one pipelined ZCARD of every
//! bucket's active and closed sets. ("One pipeline" is one per node: on a
//! cluster, one per primary, sent at once.)
//!
//! # Connections
//!
//! See `conn.rs`, the one place every request to Redis goes through, and `pipe.rs`,
//! the one connection every topology sends over: the store's own batching connection
//! (plain TCP, TLS or a Unix socket), lazily made and self-healing, which writes the
//! requests that arrive together in one write. The topologies ([`Topology`]) only
//! decide where requests go: one server (`standalone.rs`), Redis Cluster
//! (`cluster.rs`: its own slot map from `CLUSTER SLOTS`, commands and scripts routed
//! by the slot of their first key, MOVED and ASK followed, the map refreshed when the
//! topology changes, batches over many buckets split into one pipeline per primary,
//! so no request ever spans slots), or a primary found through Sentinel
//! (`sentinel.rs`, which follows failovers) — with passwords, ACL users and TLS
//! (`options.rs`, `node.rs`). Every operation is bounded by the configured timeout;
//! Redis being down, failing over or redirecting is [`StoreError::Unavailable`].
//! With [`RedisOptions::wait_replicas`], a mutation is acknowledged only once that
//! many replicas have it (Redis `WAIT`). Needs Redis 7.0 or newer (script shebangs,
//! `ZRANGE ... BYSCORE REV`).

mod cluster;
mod codec;
mod conn;
mod list;
mod node;
mod options;
mod pipe;
mod resp;
mod scripts;
mod sentinel;
mod standalone;

use redis::Value;
// The key layout, shared with `sessions check`.
use sessions_shared::keys;

use self::conn::{Batch, Redis, Retry};
use self::keys::{check_prefix, Keys};
pub use self::options::{
    check_url, split_urls, Credentials, RedisOptions, Secret, TlsPem, Topology,
};
use self::scripts::{Lua, SCRIPTS};
use super::{
    Closed, Counts, ListQuery, OpenRequest, Opened, Page, Store, StoreError, StoreResult, Swept,
};
use crate::lifecycle::{At, CloseReason, Closes};
use crate::model::{
    bucket_of_session, bucket_of_user, new_session_id, reuse_key, JsonText, Millis, Session,
    BUCKETS,
};

/// The Redis store. Cheap to share behind an `Arc`.
pub struct RedisStore {
    redis: Redis,
    keys: Keys,
}

impl RedisStore {
    /// Sets the store up without contacting Redis: an unreachable Redis is reported
    /// by the operations (as [`StoreError::Unavailable`]), not here. Fails on invalid
    /// options (URL, prefix, zero timeout or connections) or outside a Tokio runtime.
    pub fn new(opts: RedisOptions) -> Result<RedisStore, StoreError> {
        check_prefix(&opts.prefix).map_err(|rule| {
            StoreError::Internal(format!("the Redis key prefix {:?} {rule}", opts.prefix))
        })?;
        if opts.timeout.is_zero() {
            return Err(StoreError::Internal(
                "the Redis timeout must be above zero".into(),
            ));
        }
        if opts.connections == 0 {
            return Err(StoreError::Internal(
                "the number of Redis connections must be at least 1".into(),
            ));
        }
        Ok(RedisStore {
            redis: Redis::new(&opts)?,
            keys: Keys::new(&opts.prefix),
        })
    }

    /// store_data and update_user: one JSON field of a live session.
    async fn set_json(
        &self,
        lua: &Lua,
        id: &str,
        value: Option<JsonText>,
        at: At,
    ) -> StoreResult<Option<Session>> {
        let deadline = self.redis.deadline();
        let Some(mut cmd) = self.on_session(lua, id) else {
            return Ok(None);
        };
        cmd.arg(at.now);
        cutoffs(&mut cmd, &at);
        if let Some(v) = &value {
            cmd.arg(v.get());
        }
        match self.redis.script(lua, &cmd, deadline).await? {
            Value::Int(0) => Err(StoreError::SessionClosed),
            v => codec::session(v),
        }
    }

    /// An EVALSHA of `lua` on the hash of session `id` (KEYS[6]), with the id as its
    /// first argument after the bucket base; `None` for an id that is not one of ours.
    fn on_session(&self, lua: &Lua, id: &str) -> Option<redis::Cmd> {
        let bucket = bucket_of_session(id)?;
        let skey = self.keys.session(bucket, id);
        let mut cmd = lua.evalsha(self.keys.bucket(bucket), &[&skey]);
        cmd.arg(id);
        Some(cmd)
    }

    /// One expiry batch over a bucket (the sweep's step, and the settling a listing
    /// with the `active` filter does first).
    async fn expire(&self, bucket: u16, at: &At, limit: usize) -> StoreResult<Swept> {
        if bucket >= BUCKETS || limit == 0 {
            return Ok(Swept::default());
        }
        let deadline = self.redis.deadline();
        let lua = &SCRIPTS.expire;
        let mut cmd = lua.evalsha(self.keys.bucket(bucket), &[]);
        cmd.arg(at.now);
        lifetimes(&mut cmd, at);
        cmd.arg(limit);
        let counts = codec::counts(self.redis.script(lua, &cmd, deadline).await?)?;
        let [idle, absolute, more] = counts[..] else {
            return Err(StoreError::Internal(
                "an expire batch answered oddly".into(),
            ));
        };
        let mut closed = Closes::default();
        closed.add(CloseReason::Idle, idle);
        closed.add(CloseReason::Absolute, absolute);
        Ok(Swept {
            closed,
            more: more != 0,
        })
    }

    /// Closes, at `at`, what has expired in the buckets a listing of `user` (or of
    /// everyone) reads: expire batches until none stops at its limit, every bucket at
    /// once. Work is proportional to what was due; nothing due costs one script call
    /// per bucket.
    async fn settle(&self, user: Option<&str>, at: &At) -> StoreResult<Closes> {
        let bucket = |b: u16| async move {
            let mut closed = Closes::default();
            loop {
                let swept = self.expire(b, at, SETTLE_BATCH).await?;
                closed.merge(swept.closed);
                if !swept.more {
                    return Ok::<_, StoreError>(closed);
                }
            }
        };
        match user {
            Some(u) => bucket(bucket_of_user(u)).await,
            None => {
                let all = futures::future::try_join_all((0..BUCKETS).map(bucket)).await?;
                let mut closed = Closes::default();
                for c in all {
                    closed.merge(c);
                }
                Ok(closed)
            }
        }
    }

    /// The purge batch: a script over one bucket that returns a count.
    async fn sweep(&self, lua: &Lua, bucket: u16, args: &[i64]) -> StoreResult<u64> {
        if bucket >= BUCKETS {
            return Ok(0);
        }
        let deadline = self.redis.deadline();
        let mut cmd = lua.evalsha(self.keys.bucket(bucket), &[]);
        for a in args {
            cmd.arg(*a);
        }
        codec::count(&self.redis.script(lua, &cmd, deadline).await?)
    }
}

/// What a script that closes expired sessions takes after `now`: the idle timeout and
/// the absolute lifetime in milliseconds (0: none), to compute the instant each one
/// expired.
fn lifetimes(cmd: &mut redis::Cmd, at: &At) {
    cmd.arg(at.lifetimes.idle)
        .arg(at.lifetimes.absolute.unwrap_or(0));
}

/// What a script that only asks whether a session is live takes: the cutoffs
/// `now - idle` and `now - lifetime` (empty: no absolute lifetime). A session last
/// touched at or before the first, or opened at or before the second, has expired.
fn cutoffs(cmd: &mut redis::Cmd, at: &At) {
    cmd.arg(at.idle_cutoff());
    match at.lifetime_cutoff() {
        Some(c) => cmd.arg(c),
        None => cmd.arg(""),
    };
}

/// Sessions one expire batch of a listing's settling closes at most.
const SETTLE_BATCH: usize = 500;

/// Whether a session passes the filters of a query (all but the id).
fn matches(q: &ListQuery, s: &Session) -> bool {
    q.user_id.as_deref().is_none_or(|u| s.user_id == u)
        && q.active.is_none_or(|a| s.active == a)
        && q.from.is_none_or(|f| s.open_time >= f)
        && q.to.is_none_or(|t| s.open_time < t)
}

/// How often open draws another id when the drawn one exists (114 random bits: never,
/// in practice).
const OPEN_ATTEMPTS: usize = 3;

impl Store for RedisStore {
    async fn get(&self, id: &str) -> StoreResult<Option<Session>> {
        let Some(bucket) = bucket_of_session(id) else {
            return Ok(None);
        };
        let deadline = self.redis.deadline();
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(self.keys.session(bucket, id));
        codec::session(
            self.redis
                .cmd("get", &cmd, deadline, Retry::Idempotent)
                .await?,
        )
    }

    async fn list(&self, q: &ListQuery, at: At) -> StoreResult<Page> {
        if let Some(id) = q.id.as_deref() {
            let hit = self
                .get(id)
                .await?
                .map(|s| at.present(s))
                .filter(|s| matches(q, s));
            let total = q.total.then_some(u64::from(hit.is_some()));
            let data = match hit {
                Some(s) if q.skip == 0 && q.take > 0 => vec![s],
                _ => Vec::new(),
            };
            return Ok(Page {
                data,
                total,
                closed: Closes::default(),
            });
        }
        let closed = match q.active {
            Some(_) => Box::pin(self.settle(q.user_id.as_deref(), &at)).await?,
            None => Closes::default(),
        };
        let deadline = self.redis.deadline();
        let mut page = list::list(&self.redis, &self.keys, q, &at, deadline).await?;
        page.closed = closed;
        Ok(page)
    }

    async fn open(&self, req: OpenRequest) -> StoreResult<Opened> {
        let deadline = self.redis.deadline();
        let bucket = bucket_of_user(&req.user_id);
        let bk = self.keys.bucket(bucket);
        let rk = reuse_key(&req.user_id, req.address.as_deref(), req.client.as_deref());
        let user_key = self.keys.user(bucket, &req.user_id, true);
        let lua = &SCRIPTS.open;
        let now = req.at.now;
        for _ in 0..OPEN_ATTEMPTS {
            let id = new_session_id(bucket);
            let skey = self.keys.session(bucket, &id);
            let mut cmd = lua.evalsha(bk, &[&skey, &user_key]);
            cmd.arg(&id)
                .arg(if req.reuse { "1" } else { "0" })
                .arg(now)
                .arg(&req.user_id)
                .arg(&rk);
            cutoffs(&mut cmd, &req.at);
            cmd.arg(req.cap.max).arg(req.cap.policy.as_str());
            let optional = [
                ("user_name", req.user_name.as_deref()),
                ("address", req.address.as_deref()),
                ("client", req.client.as_deref()),
                ("user", req.user.as_deref().map(|v| v.get())),
                ("data", req.data.as_deref().map(|v| v.get())),
            ];
            for (field, value) in optional {
                if let Some(v) = value {
                    cmd.arg(field).arg(v);
                }
            }
            let reply = self.redis.script(lua, &cmd, deadline).await?;
            let Value::Array(mut parts) = reply else {
                return Err(codec::unexpected("an open result", &reply));
            };
            let flag = match parts.first() {
                Some(v) => codec::int(v)?,
                None => return Err(StoreError::Internal("empty open result".into())),
            };
            match flag {
                0 => {
                    let evicted = match parts.get(1) {
                        Some(v) => codec::count(v)?,
                        None => 0,
                    };
                    // Redis holds exactly what was sent; no need to read it back.
                    let session = Session {
                        id,
                        user_id: req.user_id,
                        user_name: req.user_name,
                        active: true,
                        open_time: now,
                        request_time: now,
                        close_time: None,
                        address: req.address,
                        client: req.client,
                        user: req.user,
                        data: req.data,
                    };
                    return Ok(Opened {
                        session,
                        reused: false,
                        evicted,
                    });
                }
                // 1: reused (its fields by position); 3: created by this call's own
                // earlier run (sent twice; HGETALL).
                1 | 3 => {
                    let fields = parts.get_mut(1).map(std::mem::take).unwrap_or_default();
                    let session = if flag == 1 {
                        codec::session_fields(fields)?
                    } else {
                        codec::session(fields)?
                    };
                    let session = session.ok_or_else(|| {
                        StoreError::Internal("opened session without fields".into())
                    })?;
                    return Ok(Opened {
                        session,
                        reused: flag == 1,
                        evicted: 0,
                    });
                }
                4 => return Err(StoreError::SessionLimit),
                // The drawn id exists already: draw another.
                _ => continue,
            }
        }
        Err(StoreError::Internal(
            "could not draw an unused session id".into(),
        ))
    }

    async fn store_data(
        &self,
        id: &str,
        data: Option<JsonText>,
        at: At,
    ) -> StoreResult<Option<Session>> {
        self.set_json(&SCRIPTS.store_data, id, data, at).await
    }

    async fn update_user(
        &self,
        id: &str,
        user: Option<JsonText>,
        at: At,
    ) -> StoreResult<Option<Session>> {
        self.set_json(&SCRIPTS.update_user, id, user, at).await
    }

    async fn close(&self, id: &str, at: At) -> StoreResult<Option<Closed>> {
        let deadline = self.redis.deadline();
        let lua = &SCRIPTS.close;
        let Some(mut cmd) = self.on_session(lua, id) else {
            return Ok(None);
        };
        cmd.arg(at.now);
        lifetimes(&mut cmd, &at);
        let reply = self.redis.script(lua, &cmd, deadline).await?;
        let mut parts = match reply {
            Value::Nil => return Ok(None),
            Value::Array(parts) if parts.len() == 2 => parts,
            other => return Err(codec::unexpected("a close result", &other)),
        };
        let reason = codec::close_reason(&parts[0])?;
        let session = codec::session(std::mem::take(&mut parts[1]))?;
        Ok(session.map(|session| Closed { session, reason }))
    }

    async fn close_user(&self, user_id: &str, except: Option<&str>, at: At) -> StoreResult<Closes> {
        let deadline = self.redis.deadline();
        let bucket = bucket_of_user(user_id);
        let lua = &SCRIPTS.close_user;
        let user_key = self.keys.user(bucket, user_id, true);
        let mut cmd = lua.evalsha(self.keys.bucket(bucket), &[&user_key]);
        cmd.arg(at.now);
        lifetimes(&mut cmd, &at);
        cmd.arg(except.unwrap_or(""));
        let counts = codec::counts(self.redis.script(lua, &cmd, deadline).await?)?;
        let [revoked, idle, absolute] = counts[..] else {
            return Err(StoreError::Internal("close_user answered oddly".into()));
        };
        let mut closed = Closes::default();
        closed.add(CloseReason::Revoked, revoked);
        closed.add(CloseReason::Idle, idle);
        closed.add(CloseReason::Absolute, absolute);
        Ok(closed)
    }

    async fn delete(&self, id: &str) -> StoreResult<Option<Session>> {
        let deadline = self.redis.deadline();
        let lua = &SCRIPTS.delete;
        let Some(cmd) = self.on_session(lua, id) else {
            return Ok(None);
        };
        codec::session(self.redis.script(lua, &cmd, deadline).await?)
    }

    fn buckets(&self) -> u16 {
        BUCKETS
    }

    async fn expire_bucket(&self, bucket: u16, at: At, limit: usize) -> StoreResult<Swept> {
        self.expire(bucket, &at, limit).await
    }

    async fn purge_bucket(&self, bucket: u16, cutoff: Millis, limit: usize) -> StoreResult<u64> {
        if limit == 0 {
            return Ok(0);
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.sweep(&SCRIPTS.purge, bucket, &[cutoff, limit]).await
    }

    async fn counts(&self) -> StoreResult<Counts> {
        let deadline = self.redis.deadline();
        let mut p = Batch::with_capacity(2 * usize::from(BUCKETS));
        for b in 0..BUCKETS {
            let k = self.keys.bucket(b);
            p.cmd(b, "ZCARD").arg(&k.oa);
            p.cmd(b, "ZCARD").arg(&k.oc);
        }
        let r = self
            .redis
            .pipe("counts", &p, deadline, Retry::Idempotent)
            .await?;
        let mut c = Counts::default();
        for pair in r.chunks(2) {
            let [oa, oc] = pair else {
                return Err(StoreError::Internal("short pipeline reply".into()));
            };
            let active = codec::count(oa)?;
            c.active += active;
            c.total += active + codec::count(oc)?;
        }
        Ok(c)
    }

    async fn ping(&self) -> StoreResult<()> {
        let deadline = self.redis.deadline();
        let v = self
            .redis
            .cmd("ping", &redis::cmd("PING"), deadline, Retry::Idempotent)
            .await?;
        match v {
            Value::SimpleString(_) | Value::Okay | Value::BulkString(_) => Ok(()),
            other => Err(codec::unexpected("PONG", &other)),
        }
    }
}
