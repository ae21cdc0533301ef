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
//! store_data, update_user, close, delete, and the expire and purge batches. Each one
//! touches only keys of one bucket. Keys known before the call (the bucket's indexes,
//! the session hash, the user's active set at open) are passed as KEYS; keys a script
//! can only learn from data (the user sets named after the hash's user_id, the hashes
//! of ids found in an index) are built inside the script from the bucket base
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
//! # Reads
//!
//! get is one HGETALL (a malformed id is `None` without asking Redis). get_sessions is
//! described in `list.rs`: ids by rank from the indexes, rows by one pipelined
//! HGETALL, index entries whose hash is gone removed on the way (lazy repair). counts
//! is one pipelined ZCARD of every bucket's active and closed sets. ("One pipeline"
//! is one per node: on a cluster, one per primary, sent at once.)
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
use super::{Counts, ListQuery, OpenRequest, Opened, Page, Store, StoreError, StoreResult};
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

    /// store_data and update_user: one JSON field of an active session.
    async fn set_json(
        &self,
        lua: &Lua,
        id: &str,
        value: Option<JsonText>,
        now: Millis,
    ) -> StoreResult<Option<Session>> {
        let Some(bucket) = bucket_of_session(id) else {
            return Ok(None);
        };
        let deadline = self.redis.deadline();
        let skey = self.keys.session(bucket, id);
        let mut cmd = lua.evalsha(self.keys.bucket(bucket), &[&skey]);
        cmd.arg(id).arg(now);
        if let Some(v) = &value {
            cmd.arg(v.get());
        }
        match self.redis.script(lua, &cmd, deadline).await? {
            Value::Int(0) => Err(StoreError::SessionClosed),
            v => codec::session(v),
        }
    }

    /// close and delete: a script that returns the session or nothing.
    async fn by_id(
        &self,
        lua: &Lua,
        id: &str,
        now: Option<Millis>,
    ) -> StoreResult<Option<Session>> {
        let Some(bucket) = bucket_of_session(id) else {
            return Ok(None);
        };
        let deadline = self.redis.deadline();
        let skey = self.keys.session(bucket, id);
        let mut cmd = lua.evalsha(self.keys.bucket(bucket), &[&skey]);
        cmd.arg(id);
        if let Some(now) = now {
            cmd.arg(now);
        }
        codec::session(self.redis.script(lua, &cmd, deadline).await?)
    }

    /// The expire and purge batches: a script over one bucket that returns a count.
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

/// Whether a session passes the filters of a query (all but the id).
fn matches(q: &ListQuery, s: &Session) -> bool {
    q.user_id.as_deref().is_none_or(|u| s.user_id == u)
        && q.active.is_none_or(|a| s.active == a)
        && q.from.is_none_or(|f| s.open_time >= f)
        && q.to.is_none_or(|t| s.open_time < t)
}

/// How often open draws another id when the drawn one exists (120 random bits: never,
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

    async fn list(&self, q: &ListQuery) -> StoreResult<Page> {
        if let Some(id) = q.id.as_deref() {
            let hit = self.get(id).await?.filter(|s| matches(q, s));
            let total = q.total.then_some(u64::from(hit.is_some()));
            let data = match hit {
                Some(s) if q.skip == 0 && q.take > 0 => vec![s],
                _ => Vec::new(),
            };
            return Ok(Page { data, total });
        }
        let deadline = self.redis.deadline();
        list::list(&self.redis, &self.keys, q, deadline).await
    }

    async fn open(&self, req: OpenRequest) -> StoreResult<Opened> {
        let deadline = self.redis.deadline();
        let bucket = bucket_of_user(&req.user_id);
        let bk = self.keys.bucket(bucket);
        let rk = reuse_key(&req.user_id, req.address.as_deref(), req.client.as_deref());
        let user_key = self.keys.user(bucket, &req.user_id, true);
        let lua = &SCRIPTS.open;
        for _ in 0..OPEN_ATTEMPTS {
            let id = new_session_id(bucket);
            let skey = self.keys.session(bucket, &id);
            let mut cmd = lua.evalsha(bk, &[&skey, &user_key]);
            cmd.arg(&id)
                .arg(if req.reuse { "1" } else { "0" })
                .arg(req.now)
                .arg(&req.user_id)
                .arg(&rk);
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
                    // Redis holds exactly what was sent; no need to read it back.
                    let session = Session {
                        id,
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
                    return Ok(Opened {
                        session,
                        reused: false,
                    });
                }
                // 1: reused; 3: created by this call's own earlier run (sent twice).
                1 | 3 => {
                    let fields = parts.get_mut(1).map(std::mem::take).unwrap_or_default();
                    let session = codec::session(fields)?.ok_or_else(|| {
                        StoreError::Internal("opened session without fields".into())
                    })?;
                    return Ok(Opened {
                        session,
                        reused: flag == 1,
                    });
                }
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
        now: Millis,
    ) -> StoreResult<Option<Session>> {
        self.set_json(&SCRIPTS.store_data, id, data, now).await
    }

    async fn update_user(
        &self,
        id: &str,
        user: Option<JsonText>,
        now: Millis,
    ) -> StoreResult<Option<Session>> {
        self.set_json(&SCRIPTS.update_user, id, user, now).await
    }

    async fn close(&self, id: &str, now: Millis) -> StoreResult<Option<Session>> {
        self.by_id(&SCRIPTS.close, id, Some(now)).await
    }

    async fn delete(&self, id: &str) -> StoreResult<Option<Session>> {
        self.by_id(&SCRIPTS.delete, id, None).await
    }

    fn buckets(&self) -> u16 {
        BUCKETS
    }

    async fn expire_bucket(
        &self,
        bucket: u16,
        cutoff: Millis,
        now: Millis,
        limit: usize,
    ) -> StoreResult<u64> {
        if limit == 0 {
            return Ok(0);
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.sweep(&SCRIPTS.expire, bucket, &[cutoff, now, limit])
            .await
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
